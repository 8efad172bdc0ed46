/* etcd_load: a put load generator for etcd's reference numbers (issue 3),
 * for bench/etcd.sh. etcd's own `benchmark` tool is not packaged in Debian,
 * so this one speaks etcd's v3 API itself, either way an etcd 3.4 member
 * serves it on its client port:
 *   -g   native gRPC (etcdserverpb.KV/Put) over cleartext HTTP/2, what
 *        etcd's Go clients and its benchmark tool use;
 *   else JSON over HTTP/1.1 through the grpc-gateway (POST /v3/kv/put,
 *        base64 key and value), which costs the server more CPU.
 *
 * `clients` keep-alive connections (spread over the endpoints in turn),
 * each with one put in flight at a time, back to back; one thread, epoll.
 * Each connection first does one put that is not timed (connection set-up,
 * HTTP/2 settings, the gateway's first dial), then `requests` puts are timed in total, from
 * the request's first byte written to its response's last byte read.
 * Distinct keys: 'k' and a zero-padded sequence number.
 *
 *   etcd_load [-g] [-c clients] [-n requests] [-t seconds] [-k key_bytes]
 *             [-v value_bytes] [-p path] HOST:PORT[,HOST:PORT...]
 *
 * Prints one line; asserts nothing (DESIGN.md §12). Stops at the time limit
 * (default 60 s) with whatever completed. Exits 1 if no put succeeded or
 * some failed. Talks only to the endpoints given (loopback in etcd.sh).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENDPOINTS 16
#define MAX_KEY 64
#define MAX_VALUE 4096
#define REQ_CAP (1024 + 2 * (MAX_KEY + MAX_VALUE))
#define RESP_CAP 65536

enum conn_state { CONN_CONNECTING, CONN_SENDING, CONN_RECEIVING, CONN_IDLE };

struct conn {
    int fd;
    int endpoint;
    enum conn_state state;
    int timed; /* the put in flight counts */
    double t0_us;
    char req[REQ_CAP];
    size_t req_len, req_off;
    char resp[RESP_CAP];
    size_t resp_len;
    int fresh;          /* gRPC: the connection preface is still to send */
    uint32_t stream_id; /* gRPC: the put's HTTP/2 stream */
    int saw_message;    /* gRPC: the put's response message came */
};

struct load {
    struct sockaddr_in endpoints[MAX_ENDPOINTS];
    char hosts[MAX_ENDPOINTS][64];
    int n_endpoints;
    const char *path;
    int grpc;
    size_t key_bytes, value_bytes;
    unsigned char value[MAX_VALUE];
    char value_b64[(MAX_VALUE + 2) / 3 * 4 + 1];
    int epfd;
    struct conn *conns;
    size_t clients;
    size_t warm;         /* connections done with their untimed put */
    int timing;          /* the timed phase has started */
    size_t issued;       /* timed puts started */
    size_t done;         /* timed puts that succeeded */
    size_t errors;       /* failed puts, untimed ones included */
    size_t timed_errors; /* failed timed puts */
    size_t requests;     /* timed puts wanted */
    double *lat_us;      /* done entries */
    unsigned long seq;   /* next key */
    int printed_error;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static size_t base64(char *out, const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int epoll_set(struct load *l, struct conn *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(l->epfd, op, c->fd, &ev);
}

static void conn_close(struct load *l, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = CONN_IDLE;
}

static int conn_open(struct load *l, struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = CONN_CONNECTING;
    c->resp_len = 0;
    c->fresh = 1;
    c->stream_id = 1;
    const struct sockaddr_in *sa = &l->endpoints[c->endpoint];
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 && errno != EINPROGRESS) {
        int rc = -errno;
        conn_close(l, c);
        return rc;
    }
    if (epoll_set(l, c, EPOLLOUT, EPOLL_CTL_ADD) != 0) {
        int rc = -errno;
        conn_close(l, c);
        return rc;
    }
    return 0;
}

/* Writes what is left of the request; 1 when all of it went out. */
static int conn_send(struct conn *c)
{
    while (c->req_off < c->req_len) {
        ssize_t w = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN ? 0 : -errno;
        c->req_off += (size_t)w;
    }
    return 1;
}

/* gRPC over cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3), which
 * etcd's client port accepts next to HTTP/1.1. Just enough of it for one
 * unary call at a time per connection: headers are sent as HPACK literals
 * that never touch the dynamic table, so the server's header blocks can be
 * skipped undecoded. A put succeeded when its response message arrived
 * before the stream ended (a failed call ends with trailers only). */
enum {
    H2_DATA = 0x0,
    H2_HEADERS = 0x1,
    H2_RST_STREAM = 0x3,
    H2_SETTINGS = 0x4,
    H2_PING = 0x6,
    H2_GOAWAY = 0x7,
    H2_WINDOW_UPDATE = 0x8,
    H2_FLAG_END_STREAM = 0x1,
    H2_FLAG_ACK = 0x1,
    H2_FLAG_END_HEADERS = 0x4,
};

static void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static size_t h2_frame_head(char *p, size_t len, int type, int flags, uint32_t stream)
{
    p[0] = (char)(len >> 16);
    p[1] = (char)(len >> 8);
    p[2] = (char)len;
    p[3] = (char)type;
    p[4] = (char)flags;
    put32(p + 5, stream);
    return 9;
}

/* An HPACK string literal without Huffman coding; every one here is
 * shorter than 127 bytes. */
static size_t hpack_string(char *p, const char *str)
{
    size_t n = strlen(str);
    p[0] = (char)n;
    memcpy(p + 1, str, n);
    return n + 1;
}

static size_t varint(char *p, size_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (char)(v | 0x80);
    p[n++] = (char)v;
    return n;
}

/* The frames of one etcdserverpb.KV/Put call (PutRequest: key = 1,
 * value = 2), after the connection preface on a fresh connection. */
static size_t grpc_request(struct load *l, struct conn *c, const char *key)
{
    char *p = c->req;
    size_t o = 0;
    if (c->fresh) {
        memcpy(p, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
        o = 24;
        o += h2_frame_head(p + o, 0, H2_SETTINGS, 0, 0);
        /* Open the connection's receive window wide once; each stream's
         * 64 KiB is far more than one response. */
        o += h2_frame_head(p + o, 4, H2_WINDOW_UPDATE, 0, 0);
        put32(p + o, 1u << 30);
        o += 4;
        c->fresh = 0;
    }
    size_t head = o;
    o += 9;
    p[o++] = (char)0x83; /* :method: POST (static table 3) */
    p[o++] = (char)0x86; /* :scheme: http (static table 6) */
    p[o++] = 0x04;       /* :path, literal not indexed, name from static table 4 */
    o += hpack_string(p + o, "/etcdserverpb.KV/Put");
    p[o++] = 0x01; /* :authority (static table 1) */
    o += hpack_string(p + o, l->hosts[c->endpoint]);
    p[o++] = 0x0f; /* content-type (static table 31 = 15 + 16) */
    p[o++] = 0x10;
    o += hpack_string(p + o, "application/grpc");
    p[o++] = 0x00; /* te, literal name */
    o += hpack_string(p + o, "te");
    o += hpack_string(p + o, "trailers");
    h2_frame_head(p + head, o - head - 9, H2_HEADERS, H2_FLAG_END_HEADERS, c->stream_id);
    char varint_buf[10];
    size_t msg_len = 2 + l->key_bytes + 1 + varint(varint_buf, l->value_bytes) + l->value_bytes;
    size_t data = o;
    o += 9;
    p[o++] = 0; /* not compressed */
    put32(p + o, (uint32_t)msg_len);
    o += 4;
    p[o++] = 0x0a; /* field 1, bytes */
    p[o++] = (char)l->key_bytes;
    memcpy(p + o, key, l->key_bytes);
    o += l->key_bytes;
    p[o++] = 0x12; /* field 2, bytes */
    o += varint(p + o, l->value_bytes);
    memcpy(p + o, l->value, l->value_bytes);
    o += l->value_bytes;
    h2_frame_head(p + data, o - data - 9, H2_DATA, H2_FLAG_END_STREAM, c->stream_id);
    return o;
}

/* Consumes the whole frames received on c: answers SETTINGS and PING, and
 * watches c's stream. Returns 1 when the stream ended (*ok: with a response
 * message), 0 when more is to come, -1 when the connection failed. */
static int grpc_response(struct conn *c, int *ok)
{
    size_t off = 0;
    int ended = 0;
    while (!ended && c->resp_len - off >= 9) {
        const unsigned char *f = (const unsigned char *)c->resp + off;
        size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
        int type = f[3], flags = f[4];
        uint32_t stream =
            ((uint32_t)f[5] << 24 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 8 | f[8]) &
            0x7fffffffu;
        if (len > sizeof(c->resp) - 9)
            return -1;
        if (c->resp_len - off < 9 + len)
            break;
        if (type == H2_SETTINGS && !(flags & H2_FLAG_ACK)) {
            char ack[9];
            h2_frame_head(ack, 0, H2_SETTINGS, H2_FLAG_ACK, 0);
            if (send(c->fd, ack, sizeof(ack), MSG_NOSIGNAL) != (ssize_t)sizeof(ack))
                return -1;
        } else if (type == H2_PING && !(flags & H2_FLAG_ACK) && len == 8) {
            char pong[17];
            h2_frame_head(pong, 8, H2_PING, H2_FLAG_ACK, 0);
            memcpy(pong + 9, f + 9, 8);
            if (send(c->fd, pong, sizeof(pong), MSG_NOSIGNAL) != (ssize_t)sizeof(pong))
                return -1;
        } else if (type == H2_GOAWAY) {
            return -1;
        } else if (stream != 0 && stream == c->stream_id) {
            if (type == H2_DATA && len >= 5)
                c->saw_message = 1;
            if (type == H2_RST_STREAM) {
                ended = 1;
                *ok = 0;
            } else if ((type == H2_DATA || type == H2_HEADERS) && (flags & H2_FLAG_END_STREAM)) {
                ended = 1;
                *ok = c->saw_message;
            }
        }
        off += 9 + len;
    }
    memmove(c->resp, c->resp + off, c->resp_len - off);
    c->resp_len -= off;
    return ended;
}

/* One POST of the put as JSON (base64 key and value) to the gateway. */
static size_t http_request(struct load *l, struct conn *c, const char *key)
{
    char key_b64[(MAX_KEY + 2) / 3 * 4 + 1];
    base64(key_b64, (const unsigned char *)key, l->key_bytes);
    char body[REQ_CAP / 2];
    int body_len =
        snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", key_b64, l->value_b64);
    int n = snprintf(c->req, sizeof(c->req),
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     l->path, l->hosts[c->endpoint], body_len, body);
    return (size_t)n;
}

/* Starts the next put on c, or leaves c idle when there is none to do. */
static int conn_start(struct load *l, struct conn *c)
{
    if (l->timing) {
        if (l->issued >= l->requests) {
            c->state = CONN_IDLE;
            return epoll_set(l, c, 0, EPOLL_CTL_MOD);
        }
        l->issued++;
    }
    c->timed = l->timing;
    char key[MAX_KEY + 1];
    snprintf(key, sizeof(key), "k%0*lu", (int)l->key_bytes - 1, l->seq++);
    key[l->key_bytes] = '\0'; /* a sequence wider than the key wraps */
    if (l->grpc) {
        c->req_len = grpc_request(l, c, key);
        c->saw_message = 0;
    } else {
        c->req_len = http_request(l, c, key);
        c->resp_len = 0;
    }
    c->req_off = 0;
    c->t0_us = now_us();
    int rc = conn_send(c);
    if (rc < 0)
        return rc;
    c->state = rc == 1 ? CONN_RECEIVING : CONN_SENDING;
    return epoll_set(l, c, rc == 1 ? EPOLLIN : EPOLLOUT, EPOLL_CTL_MOD);
}

/* Case-insensitive search for a header line in the head [buf, end). */
static const char *find_header(const char *buf, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = buf; p + n + 2 < end; p++)
        if (p[0] == '\r' && p[1] == '\n' && strncasecmp(p + 2, name, n) == 0)
            return p + 2 + n;
    return NULL;
}

/* Whether the buffer holds a whole response: 1 yes (status and whether the
 * server will close set), 0 not yet, -1 malformed. */
static int parse_response(const struct conn *c, int *status, int *closing)
{
    const char *buf = c->resp, *end = c->resp + c->resp_len;
    const char *head_end = memmem(buf, c->resp_len, "\r\n\r\n", 4);
    if (head_end == NULL)
        return c->resp_len == sizeof(c->resp) ? -1 : 0;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1)
        return -1;
    const char *body = head_end + 4;
    const char *conn_hdr = find_header(buf, head_end + 2, "connection:");
    *closing = conn_hdr != NULL && strncasecmp(conn_hdr + strspn(conn_hdr, " "), "close", 5) == 0;
    const char *cl = find_header(buf, head_end + 2, "content-length:");
    if (cl != NULL) {
        size_t len = strtoul(cl, NULL, 10);
        return (size_t)(end - body) >= len ? 1 : 0;
    }
    const char *te = find_header(buf, head_end + 2, "transfer-encoding:");
    if (te == NULL || strncasecmp(te + strspn(te, " "), "chunked", 7) != 0)
        return -1; /* a body up to EOF: the gateway never sends one */
    const char *p = body;
    for (;;) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL)
            return 0;
        size_t size = strtoul(p, NULL, 16);
        if (size == 0) /* no trailers from the gateway */
            return memmem(eol + 2, (size_t)(end - eol - 2), "\r\n", 2) == eol + 2 ? 1 : 0;
        if ((size_t)(end - eol - 2) < size + 2)
            return 0;
        p = eol + 2 + size + 2;
    }
}

static void put_failed(struct load *l, struct conn *c, const char *why)
{
    if (!l->printed_error) {
        fprintf(stderr, "etcd_load: a put failed: %s\n", why);
        l->printed_error = 1;
    }
    l->errors++;
    if (c->timed)
        l->timed_errors++;
    else
        l->warm++;
}

/* A put ended (well or not): record it and start the next. */
static int put_done(struct load *l, struct conn *c, int ok, int reconnect)
{
    if (ok && c->timed)
        l->lat_us[l->done++] = now_us() - c->t0_us;
    else if (ok)
        l->warm++;
    if (reconnect) {
        conn_close(l, c);
        int rc = conn_open(l, c);
        if (rc < 0)
            fprintf(stderr, "etcd_load: reconnecting: %s\n", strerror(-rc));
        return rc;
    }
    if (!l->timing) {
        c->state = CONN_IDLE;
        return epoll_set(l, c, 0, EPOLL_CTL_MOD);
    }
    return conn_start(l, c);
}

static int on_event(struct load *l, struct conn *c, uint32_t events)
{
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            fprintf(stderr, "etcd_load: connecting to %s: %s\n", l->hosts[c->endpoint],
                    strerror(err));
            return -err;
        }
        /* A reconnect after a failed timed put goes on with the next one;
         * a first connect does its untimed put. */
        return conn_start(l, c);
    }
    if (c->state == CONN_SENDING) {
        int rc = conn_send(c);
        if (rc < 0) {
            put_failed(l, c, strerror(-rc));
            return put_done(l, c, 0, 1);
        }
        if (rc == 1) {
            c->state = CONN_RECEIVING;
            return epoll_set(l, c, EPOLLIN, EPOLL_CTL_MOD);
        }
        return 0;
    }
    if (c->state == CONN_IDLE) {
        if (events & (EPOLLHUP | EPOLLERR)) /* closed while idle: reopened when needed */
            conn_close(l, c);
        return 0;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return 0;
    ssize_t r = recv(c->fd, c->resp + c->resp_len, sizeof(c->resp) - c->resp_len, 0);
    if (r < 0 && errno == EAGAIN)
        return 0;
    if (r <= 0) {
        put_failed(l, c, r == 0 ? "connection closed by the server" : strerror(errno));
        return put_done(l, c, 0, 1);
    }
    c->resp_len += (size_t)r;
    if (l->grpc) {
        int ok = 0, ended = grpc_response(c, &ok);
        if (ended < 0)
            put_failed(l, c, "HTTP/2 connection error or GOAWAY");
        else if (ended == 1 && !ok)
            put_failed(l, c, "the call ended without a response (gRPC error)");
        if (ended == 1)
            c->stream_id += 2;
        return ended == 0 ? 0 : put_done(l, c, ended == 1 && ok, ended < 0);
    }
    int status = 0, closing = 0;
    int rc = parse_response(c, &status, &closing);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        put_failed(l, c, "malformed response");
        return put_done(l, c, 0, 1);
    }
    if (status != 200) {
        char why[256];
        const char *body = memmem(c->resp, c->resp_len, "\r\n\r\n", 4);
        snprintf(
            why, sizeof(why), "HTTP %d %.*s", status,
            (int)(c->resp + c->resp_len - body - 4 < 160 ? c->resp + c->resp_len - body - 4 : 160),
            body + 4);
        put_failed(l, c, why);
        return put_done(l, c, 0, closing);
    }
    return put_done(l, c, 1, closing);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return sorted[(rank > n ? n : rank) - 1];
}

static int parse_endpoints(struct load *l, char *list)
{
    for (char *save = NULL, *ep = strtok_r(list, ",", &save); ep != NULL;
         ep = strtok_r(NULL, ",", &save)) {
        if (l->n_endpoints == MAX_ENDPOINTS)
            return -1;
        char *colon = strrchr(ep, ':');
        if (colon == NULL || strlen(ep) >= sizeof(l->hosts[0]))
            return -1;
        struct sockaddr_in *sa = &l->endpoints[l->n_endpoints];
        *sa = (struct sockaddr_in){.sin_family = AF_INET,
                                   .sin_port = htons((uint16_t)atoi(colon + 1))};
        snprintf(l->hosts[l->n_endpoints], sizeof(l->hosts[0]), "%s", ep);
        *colon = '\0';
        if (inet_pton(AF_INET, ep, &sa->sin_addr) != 1)
            return -1;
        l->n_endpoints++;
    }
    return l->n_endpoints > 0 ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: etcd_load [-g] [-c clients] [-n requests] [-t seconds] [-k key_bytes] "
                    "[-v value_bytes] [-p path] HOST:PORT[,HOST:PORT...]\n");
}

int main(int argc, char **argv)
{
    static struct load l = {.path = "/v3/kv/put", .key_bytes = 8, .value_bytes = 64};
    size_t clients = 1, requests = 1000;
    double seconds = 60;
    int opt;
    while ((opt = getopt(argc, argv, "gc:n:t:k:v:p:")) != -1) {
        switch (opt) {
        case 'c':
            clients = strtoul(optarg, NULL, 10);
            break;
        case 'n':
            requests = strtoul(optarg, NULL, 10);
            break;
        case 't':
            seconds = strtod(optarg, NULL);
            break;
        case 'k':
            l.key_bytes = strtoul(optarg, NULL, 10);
            break;
        case 'v':
            l.value_bytes = strtoul(optarg, NULL, 10);
            break;
        case 'p':
            l.path = optarg;
            break;
        case 'g':
            l.grpc = 1;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind + 1 != argc || clients == 0 || clients > 10000 || requests == 0 ||
        requests > 100000000 || seconds <= 0 || l.key_bytes < 2 || l.key_bytes > MAX_KEY ||
        l.value_bytes > MAX_VALUE || strlen(l.path) > 200 ||
        parse_endpoints(&l, argv[optind]) < 0) {
        usage();
        return 2;
    }
    memset(l.value, 'v', l.value_bytes);
    base64(l.value_b64, l.value, l.value_bytes);
    l.clients = clients;
    l.requests = requests;
    l.conns = calloc(clients, sizeof(*l.conns));
    l.lat_us = calloc(requests, sizeof(*l.lat_us));
    l.epfd = epoll_create1(EPOLL_CLOEXEC);
    int rc = 1;
    if (l.conns == NULL || l.lat_us == NULL || l.epfd < 0) {
        fprintf(stderr, "etcd_load: out of memory or epoll: %s\n", strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < clients; i++) {
        l.conns[i].fd = -1;
        l.conns[i].endpoint = (int)(i % (size_t)l.n_endpoints);
    }
    for (size_t i = 0; i < clients; i++) {
        int err = conn_open(&l, &l.conns[i]);
        if (err < 0) {
            fprintf(stderr, "etcd_load: connecting: %s\n", strerror(-err));
            goto out;
        }
    }
    double deadline = now_us() + seconds * 1e6, start = 0, stop = 0;
    struct epoll_event events[256];
    int timed_out = 0;
    for (;;) {
        if (!l.timing && l.warm >= clients) {
            l.timing = 1;
            start = now_us();
            for (size_t i = 0; i < clients; i++) {
                struct conn *c = &l.conns[i];
                if (c->state == CONN_IDLE && (c->fd < 0 ? conn_open(&l, c) : conn_start(&l, c)) < 0)
                    goto out;
            }
        }
        if (l.timing && l.done + l.timed_errors >= requests)
            break;
        if (now_us() > deadline) {
            timed_out = 1;
            break;
        }
        if (l.errors > requests) {
            fprintf(stderr, "etcd_load: too many failed puts (%zu), giving up\n", l.errors);
            break;
        }
        int n = epoll_wait(l.epfd, events, 256, 100);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "etcd_load: epoll_wait: %s\n", strerror(errno));
            goto out;
        }
        for (int i = 0; i < n; i++)
            if (on_event(&l, events[i].data.ptr, events[i].events) < 0)
                goto out;
    }
    stop = now_us();
    if (!l.timing || l.done == 0) {
        fprintf(stderr, "etcd_load: no put succeeded%s\n", timed_out ? " (time limit)" : "");
        goto out;
    }
    qsort(l.lat_us, l.done, sizeof(*l.lat_us), cmp_double);
    printf(
        "etcd put (%s), %zu clients, %d endpoint(s), key %zu B, value %zu B: %zu puts in %.3f s, "
        "%.0f puts/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, failed %zu%s\n",
        l.grpc ? "gRPC" : "JSON gateway", clients, l.n_endpoints, l.key_bytes, l.value_bytes,
        l.done, (stop - start) / 1e6, (double)l.done / ((stop - start) / 1e6),
        percentile(l.lat_us, l.done, 50) / 1e3, percentile(l.lat_us, l.done, 99) / 1e3,
        l.lat_us[l.done - 1] / 1e3, l.timed_errors,
        timed_out ? " (stopped at the time limit)" : "");
    rc = l.timed_errors > 0;
out:
    if (l.conns != NULL)
        for (size_t i = 0; i < clients; i++)
            if (l.conns[i].fd >= 0)
                close(l.conns[i].fd);
    if (l.epfd >= 0)
        close(l.epfd);
    free(l.conns);
    free(l.lat_us);
    return rc;
}
