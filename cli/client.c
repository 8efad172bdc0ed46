#include "cli/client.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/alloc.h"
#include "proto/codec.h"

/* Responses of a non-streaming call are merged in memory; this bounds how
 * much a misbehaving daemon can make us hold. */
#define CLI_MAX_RESPONSE (4u * CLI_MAX_FRAME)

int cli_client_connect(const char *sock_path, int *fd, struct swm_err *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(sock_path) >= sizeof(addr.sun_path))
        return swm_err_set(err, -ENAMETOOLONG, "socket path too long: %s", sock_path);
    memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return swm_err_set(err, -errno, "socket: %s", strerror(errno));
    if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int e = errno;
        close(s);
        if (e == EACCES || e == EPERM)
            return swm_err_set(err, -e,
                               "permission denied while trying to connect to the swarmc daemon "
                               "socket at unix://%s",
                               sock_path);
        return swm_err_set(err, -e,
                           "Cannot connect to the swarmc daemon at unix://%s. Is the daemon "
                           "running?",
                           sock_path);
    }
    *fd = s;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Returns the number of bytes read: less than n only at end of stream. */
static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int cli_frame_write(int fd, const ProtobufCMessage *msg, struct swm_err *err)
{
    struct swm_buf buf = {0};
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > CLI_MAX_FRAME)
        return swm_err_set(err, -EMSGSIZE, "request of %zu bytes exceeds the %u MiB frame limit",
                           len, CLI_MAX_FRAME >> 20);
    uint8_t header[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                         (uint8_t)len};
    int rc = swm_buf_append(&buf, header, sizeof(header));
    if (rc == 0)
        rc = proto_pack(msg, &buf);
    if (rc < 0) {
        swm_buf_free(&buf);
        return swm_err_set(err, rc, "out of memory");
    }
    rc = write_all(fd, buf.data, buf.len);
    swm_buf_free(&buf);
    if (rc < 0)
        return swm_err_set(err, rc, "sending to the swarmc daemon: %s", strerror(-rc));
    return 0;
}

int cli_frame_read(int fd, struct swm_buf *out, struct swm_err *err)
{
    uint8_t header[4];
    ssize_t n = read_full(fd, header, sizeof(header));
    if (n < 0)
        return swm_err_set(err, (int)n, "reading from the swarmc daemon: %s", strerror((int)-n));
    if (n < (ssize_t)sizeof(header))
        return swm_err_set(err, -ECONNRESET,
                           "the swarmc daemon closed the connection before the end of the "
                           "response");
    uint32_t len = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
                   (uint32_t)header[2] << 8 | header[3];
    if (len > CLI_MAX_FRAME)
        return swm_err_set(err, -EMSGSIZE,
                           "response frame of %u bytes exceeds the %u MiB frame limit", len,
                           CLI_MAX_FRAME >> 20);
    out->len = 0;
    if (swm_buf_reserve(out, len) < 0)
        return swm_err_set(err, -ENOMEM, "out of memory");
    n = read_full(fd, out->data, len);
    if (n < 0)
        return swm_err_set(err, (int)n, "reading from the swarmc daemon: %s", strerror((int)-n));
    if ((size_t)n < len)
        return swm_err_set(err, -ECONNRESET,
                           "the swarmc daemon closed the connection in the middle of a frame");
    out->len = len;
    out->data[len] = '\0';
    return 0;
}

static int daemon_error(const Swarmc__ControlResponse *resp, struct swm_err *err)
{
    int code = resp->code < 0 ? resp->code : SWM_EPROTO;
    const char *msg =
        resp->error != NULL && resp->error[0] != '\0' ? resp->error : swm_strerror(code);
    return swm_err_set(err, code, "Error response from daemon: %s", msg);
}

/* Sends req on a new connection and reads frames: each raw frame is handed
 * to on_raw (may be NULL) and each decoded one to fn (may be NULL), until
 * `last`. */
static int exchange(const char *sock_path, const Swarmc__ControlRequest *req,
                    int (*on_raw)(void *arg, const struct swm_buf *raw, struct swm_err *err),
                    cli_frame_fn fn, void *arg, struct swm_err *err)
{
    int fd = -1;
    int rc = cli_client_connect(sock_path, &fd, err);
    if (rc < 0)
        return rc;
    struct swm_buf raw = {0};
    rc = cli_frame_write(fd, &req->base, err);
    bool last = false;
    while (rc == 0 && !last) {
        rc = cli_frame_read(fd, &raw, err);
        if (rc < 0)
            break;
        Swarmc__ControlResponse *frame =
            PROTO_UNPACK(Swarmc__ControlResponse, swarmc__control_response, raw.data, raw.len, err);
        if (frame == NULL) {
            rc = err != NULL ? err->code : SWM_EPROTO;
            break;
        }
        last = frame->last;
        if (frame->has_code && frame->code != 0)
            rc = daemon_error(frame, err);
        if (rc == 0 && on_raw != NULL)
            rc = on_raw(arg, &raw, err);
        if (rc == 0 && fn != NULL)
            rc = fn(arg, frame, err);
        proto_free(frame);
    }
    swm_buf_free(&raw);
    close(fd);
    return rc;
}

int cli_client_stream(const char *sock_path, const Swarmc__ControlRequest *req, cli_frame_fn fn,
                      void *arg, struct swm_err *err)
{
    return exchange(sock_path, req, NULL, fn, arg, err);
}

static int append_raw(void *arg, const struct swm_buf *raw, struct swm_err *err)
{
    struct swm_buf *all = arg;
    if (all->len + raw->len > CLI_MAX_RESPONSE)
        return swm_err_set(err, -EMSGSIZE, "response exceeds %u MiB", CLI_MAX_RESPONSE >> 20);
    if (swm_buf_append(all, raw->data, raw->len) < 0)
        return swm_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

int cli_client_call(const char *sock_path, const Swarmc__ControlRequest *req,
                    Swarmc__ControlResponse **out, struct swm_err *err)
{
    struct swm_buf all = {0};
    int rc = exchange(sock_path, req, append_raw, NULL, &all, err);
    if (rc == 0) {
        /* Concatenated encodings decode as the merge of the frames. */
        Swarmc__ControlResponse *resp =
            PROTO_UNPACK(Swarmc__ControlResponse, swarmc__control_response, all.data, all.len, err);
        if (resp == NULL)
            rc = err != NULL ? err->code : SWM_EPROTO;
        else
            *out = resp;
    }
    swm_buf_free(&all);
    return rc;
}
