/* Sends the control socket what a broken or hostile client might: random
 * bytes, a length over the limit, a truncated frame, frames that do not
 * decode, requests with missing fields. After each, the daemon must still
 * answer an `info` request on a new connection. Exit 0 if it always did.
 *
 * usage: control_garbage SOCKET_PATH SEED
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/codec.h"

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_frame(int fd, const void *data, uint32_t len, uint32_t claimed)
{
    uint8_t hdr[4] = {claimed >> 24, claimed >> 16, claimed >> 8, claimed};
    if (write(fd, hdr, 4) != 4 || (len > 0 && write(fd, data, len) < 0))
        return; /* the daemon may close on us: that is allowed */
}

static int read_exact(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t got = read(fd, p, n);
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* A fresh connection's info request answers with code 0. */
static int daemon_alive(const char *path)
{
    int fd = connect_to(path);
    if (fd < 0)
        return 0;
    Swarmc__InfoRequest info = SWARMC__INFO_REQUEST__INIT;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_INFO;
    req.info = &info;
    struct swm_buf buf = {0};
    proto_pack(&req.base, &buf);
    send_frame(fd, buf.data, (uint32_t)buf.len, (uint32_t)buf.len);
    swm_buf_free(&buf);
    uint8_t hdr[4];
    int ok = 0;
    if (read_exact(fd, hdr, 4) == 0) {
        uint32_t len = (uint32_t)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 | hdr[3];
        uint8_t *body = len < (1u << 20) ? malloc(len + 1) : NULL;
        if (body != NULL && read_exact(fd, body, len) == 0) {
            Swarmc__ControlResponse *resp =
                PROTO_UNPACK(Swarmc__ControlResponse, swarmc__control_response, body, len, NULL);
            ok = resp != NULL && resp->code == 0 && resp->info != NULL;
            proto_free(resp);
        }
        free(body);
    }
    close(fd);
    return ok;
}

/* A request of a random kind whose sub-message is empty: every field the
 * handlers read is missing. */
static void send_empty_request(int fd, unsigned op)
{
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field(&swarmc__control_request__descriptor, (int)op);
    if (field == NULL)
        return;
    const ProtobufCMessageDescriptor *sub = field->descriptor;
    ProtobufCMessage *body = calloc(1, sub->sizeof_message);
    sub->message_init(body);
    req.op_case = (Swarmc__ControlRequest__OpCase)op;
    memcpy((char *)&req + field->offset, &body, sizeof(body));
    struct swm_buf buf = {0};
    proto_pack(&req.base, &buf);
    send_frame(fd, buf.data, (uint32_t)buf.len, (uint32_t)buf.len);
    swm_buf_free(&buf);
    free(body);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: control_garbage SOCKET SEED\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* the daemon may hang up on garbage */
    srand((unsigned)strtoul(argv[2], NULL, 10));
    uint8_t junk[4096];
    for (int round = 0; round < 200; round++) {
        int fd = connect_to(argv[1]);
        if (fd < 0) {
            fprintf(stderr, "round %d: cannot connect\n", round);
            return 1;
        }
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)rand();
        uint32_t len = (uint32_t)(rand() % (int)sizeof(junk));
        switch (round % 5) {
        case 0: /* random bytes as a well-framed message */
            send_frame(fd, junk, len, len);
            break;
        case 1: /* a length far over the limit */
            send_frame(fd, junk, len, 0x7fffffffu);
            break;
        case 2: /* a frame cut short, then the client goes away */
            send_frame(fd, junk, len / 2, len + 1);
            break;
        case 3: /* raw noise, no framing at all */
            if (write(fd, junk, len) < 0)
                break;
            break;
        case 4: /* every request kind with its fields missing */
            send_empty_request(fd, 1 + (unsigned)round / 5 % 16);
            break;
        }
        /* Read whatever comes back (an error frame or EOF), briefly. */
        struct timeval tv = {.tv_usec = 20000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while (read(fd, junk, sizeof(junk)) > 0)
            ;
        close(fd);
        if (!daemon_alive(argv[1])) {
            fprintf(stderr, "round %d (kind %d): the daemon stopped answering\n", round, round % 5);
            return 1;
        }
    }
    printf("200 rounds of garbage; the daemon answered after each\n");
    return 0;
}
