#include "fake_daemon.h"

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/control.pb-c.h"

#define MAX_REQUESTS 64

struct fake_daemon {
    char dir[64];
    char path[128];
    int listen_fd;
    int stop_pipe[2];
    pthread_t thread;
    fake_handler handler;
    void *arg;
    pthread_mutex_t lock;
    Swarmc__ControlRequest *requests[MAX_REQUESTS];
    size_t n_requests;
};

void fake_out_append(struct fake_out *out, const void *data, size_t n)
{
    out->data = realloc(out->data, out->len + n + 1);
    if (out->data == NULL)
        abort();
    memcpy(out->data + out->len, data, n);
    out->len += n;
}

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* One request frame, unpacked with the system allocator. */
static Swarmc__ControlRequest *read_request(int fd)
{
    unsigned char header[4];
    if (read_full(fd, header, 4) < 0)
        return NULL;
    size_t len =
        (size_t)header[0] << 24 | (size_t)header[1] << 16 | (size_t)header[2] << 8 | header[3];
    unsigned char *body = malloc(len + 1);
    Swarmc__ControlRequest *req = NULL;
    if (body != NULL && read_full(fd, body, len) == 0)
        req = swarmc__control_request__unpack(NULL, len, body);
    free(body);
    return req;
}

static void serve_one(struct fake_daemon *d, int fd)
{
    struct fake_out out = {0};
    bool left = false;
    {
        Swarmc__ControlRequest *req = read_request(fd);
        if (req != NULL) {
            d->handler(d->arg, req, &out);
            left = req->op_case == SWARMC__CONTROL_REQUEST__OP_LEAVE && req->leave->force;
            pthread_mutex_lock(&d->lock);
            if (d->n_requests < MAX_REQUESTS)
                d->requests[d->n_requests++] = req;
            else
                swarmc__control_request__free_unpacked(req, NULL);
            pthread_mutex_unlock(&d->lock);
        }
    }
    size_t off = 0;
    while (off < out.len) {
        ssize_t w = send(fd, out.data + off, out.len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(out.data);
    close(fd);
    /* Like the real daemon, which removes its socket as it exits after a
     * forced leave (the CLI waits for that). */
    if (left)
        unlink(d->path);
}

static void *serve(void *arg)
{
    struct fake_daemon *d = arg;
    for (;;) {
        struct pollfd p[2] = {{d->listen_fd, POLLIN, 0}, {d->stop_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents != 0)
            break;
        int fd = accept(d->listen_fd, NULL, NULL);
        if (fd >= 0)
            serve_one(d, fd);
    }
    return NULL;
}

struct fake_daemon *fake_daemon_start(fake_handler handler, void *arg)
{
    struct fake_daemon *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    snprintf(d->dir, sizeof(d->dir), "/tmp/swarmc-cli-test-XXXXXX");
    if (mkdtemp(d->dir) == NULL) {
        free(d);
        return NULL;
    }
    snprintf(d->path, sizeof(d->path), "%s/swarmc.sock", d->dir);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", d->path);
    d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(d->listen_fd, 16) < 0 || pipe(d->stop_pipe) < 0) {
        rmdir(d->dir);
        free(d);
        return NULL;
    }
    d->handler = handler;
    d->arg = arg;
    pthread_mutex_init(&d->lock, NULL);
    pthread_create(&d->thread, NULL, serve, d);
    return d;
}

const char *fake_daemon_run_dir(const struct fake_daemon *d)
{
    return d->dir;
}

void fake_daemon_stop(struct fake_daemon *d)
{
    if (d == NULL)
        return;
    if (write(d->stop_pipe[1], "x", 1) != 1)
        abort();
    pthread_join(d->thread, NULL);
    close(d->listen_fd);
    close(d->stop_pipe[0]);
    close(d->stop_pipe[1]);
    unlink(d->path);
    rmdir(d->dir);
    for (size_t i = 0; i < d->n_requests; i++)
        swarmc__control_request__free_unpacked(d->requests[i], NULL);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

size_t fake_daemon_n_requests(const struct fake_daemon *d)
{
    return d->n_requests;
}

const Swarmc__ControlRequest *fake_daemon_request(const struct fake_daemon *d, size_t i)
{
    return i < d->n_requests ? d->requests[i] : NULL;
}

void fake_reply(struct fake_out *raw, const Swarmc__ControlResponse *resp)
{
    size_t len = protobuf_c_message_get_packed_size(&resp->base);
    unsigned char header[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                               (unsigned char)(len >> 8), (unsigned char)len};
    unsigned char *body = malloc(len + 1);
    if (body == NULL)
        abort();
    protobuf_c_message_pack(&resp->base, body);
    fake_out_append(raw, header, 4);
    fake_out_append(raw, body, len);
    free(body);
}

void fake_reply_error(struct fake_out *raw, int code, const char *error)
{
    Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
    resp.has_code = 1;
    resp.code = code;
    resp.error = (char *)error;
    resp.has_last = 1;
    resp.last = 1;
    fake_reply(raw, &resp);
}

void fake_reply_ok(struct fake_out *raw)
{
    Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
    resp.has_last = 1;
    resp.last = 1;
    fake_reply(raw, &resp);
}
