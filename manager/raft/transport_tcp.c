/* The plain-TCP raft transport (transport_tcp.h, docs/protocol.md "Raft
 * transport").
 *
 * Lifetime: every object that owns libuv handles (the transport's listener
 * and retry timer, each peer's timer, each outbound and inbound connection)
 * holds one reference on the transport and frees itself in its last close
 * callback; the transport frees itself when the last reference goes, which
 * only happens after close() because the listener's reference is dropped in
 * its close callback. libuv cancels a closing stream's pending connect and
 * write requests (status UV_ECANCELED) before that stream's close callback,
 * so request callbacks may always touch their connection. */
#include "manager/raft/transport_tcp.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "manager/raft/peers.h"
#include "manager/raft/raft.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define HELLO_MAGIC "SWMRAFT1"
#define HELLO_SIZE 16 /* magic + sender id, u64 big-endian */
#define FRAME_HEADER 4
#define CONNECT_TIMEOUT_MS 5000
#define HELLO_TIMEOUT_MS 5000
#define ACCEPT_RETRY_MS 100
#define KEEPALIVE_DELAY_S 15
#define LISTEN_BACKLOG 128
#define READ_BUF_SIZE (64u << 10)

struct tcp_transport;

/* A peer's connection: its frames (raft_peer_frame, the hello or a frame
 * with its length header) are written with their own uv_write_t. */
struct out_conn {
    struct tcp_transport *t;
    struct raft_peer *peer; /* NULL once detached (the handle is then closing) */
    uv_tcp_t tcp;
    uv_connect_t connect;
    size_t inflight; /* bytes handed to uv_write, counted in the peer */
};

struct in_conn {
    struct tcp_transport *t;
    struct in_conn *next, *prev;
    uv_tcp_t tcp;
    uv_timer_t timer; /* hello deadline, then idle timeout */
    int open_handles;
    bool closing;
    bool hello_done;
    char remote[SWM_ADDR_STRLEN];
    uint64_t peer_id;
    uint8_t head[HELLO_SIZE]; /* the hello, then each length header */
    size_t head_len;
    uint32_t frame_len;   /* length of the frame being read; 0 in a header */
    struct swm_buf frame; /* a frame split across reads */
};

struct tcp_transport {
    struct raft_transport base;
    uv_loop_t *loop;
    uint64_t self_id;
    size_t max_frame;
    struct raft_tcp_limits limits;
    int port;
    bool closing;
    bool accept_pending; /* a connection waits in the backlog */
    bool inbound_full_logged;
    unsigned refs;
    uv_tcp_t listener;
    uv_timer_t retry;        /* retries an accept that failed for memory */
    struct raft_peers peers; /* a peer is CONNECTED once its hello is queued */
    struct in_conn *inbound;
    unsigned n_inbound;
    /* Reads never nest (libuv calls alloc then read for one stream at a
     * time), so all connections share one buffer. */
    char readbuf[READ_BUF_SIZE];
};

static const struct raft_transport_ops tcp_ops;

/* --- helpers ------------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static struct tcp_transport *to_tcp(struct raft_transport *base)
{
    return container_of(base, struct tcp_transport, base);
}

static void transport_unref(struct tcp_transport *t)
{
    if (--t->refs == 0)
        swm_free(t);
}

static void handle_unref(uv_handle_t *h)
{
    transport_unref(h->data);
}

static void alloc_out(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct out_conn *c = h->data;
    *buf = uv_buf_init(c->t->readbuf, sizeof(c->t->readbuf));
}

static void alloc_in(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct in_conn *c = h->data;
    *buf = uv_buf_init(c->t->readbuf, sizeof(c->t->readbuf));
}

/* --- outbound ----------------------------------------------------------- */

static struct tcp_transport *peers_tcp(struct raft_peers *s)
{
    return container_of(s, struct tcp_transport, peers);
}

static void out_conn_closed(uv_handle_t *h)
{
    struct out_conn *c = h->data;
    struct tcp_transport *t = c->t;
    swm_free(c);
    transport_unref(t);
}

/* The peer has let go of c: the bytes it was writing no longer count against
 * the peer's queue. Its pending writes are cancelled by libuv. */
static void out_conn_drop(struct raft_peer *p, void *conn)
{
    struct out_conn *c = conn;
    p->queued_bytes -= c->inflight;
    c->inflight = 0;
    c->peer = NULL;
    uv_close((uv_handle_t *)&c->tcp, out_conn_closed);
}

static void frame_written(uv_write_t *req, int status)
{
    struct raft_peer_frame *f = container_of(req, struct raft_peer_frame, req);
    struct out_conn *c = f->conn;
    struct raft_peer *p = c->peer;
    if (p != NULL) {
        p->queued_bytes -= f->accounted;
        c->inflight -= f->accounted;
        if (status < 0)
            raft_peer_fail(p, "write failed", status);
    }
    swm_free(f);
}

/* Hands f to c's socket. On failure f is freed and the peer fails. */
static int conn_write(struct out_conn *c, struct raft_peer_frame *f)
{
    uv_buf_t buf = uv_buf_init((char *)f->bytes, (unsigned)f->size);
    f->conn = c;
    f->next = NULL;
    int rc = uv_write(&f->req, (uv_stream_t *)&c->tcp, &buf, 1, frame_written);
    if (rc < 0) {
        raft_peer_frame_done(c->peer, f);
        raft_peer_fail(c->peer, "write failed", rc);
        return rc;
    }
    c->inflight += f->accounted;
    return 0;
}

/* The socket takes every frame: a failed write fails the peer. */
static bool out_write(struct raft_peer *p, struct raft_peer_frame *f)
{
    conn_write(p->conn, f);
    return true;
}

/* The receiver never writes back: bytes mean a confused peer, EOF or an
 * error mean the connection is gone. */
static void out_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct out_conn *c = s->data;
    if (nread == 0 || c->peer == NULL)
        return;
    if (nread > 0) {
        swm_log_warn("raft tcp: peer wrote on an outbound connection peer=%" PRIu64 " addr=%s",
                     c->peer->id, c->peer->addr);
        raft_peer_fail(c->peer, "unexpected data", SWM_EPROTO);
        return;
    }
    raft_peer_fail(c->peer, "read", (int)nread);
}

/* Starts watching for EOF and queues the hello. Returns 0, or an error
 * after failing the peer. */
static int conn_greet(struct out_conn *c)
{
    struct raft_peer *p = c->peer;
    uint8_t hello[HELLO_SIZE];
    memcpy(hello, HELLO_MAGIC, 8);
    put_be64(hello + 8, c->t->self_id);
    struct raft_peer_frame *h = raft_peer_frame_new(hello, sizeof(hello), 0);
    int rc = h == NULL ? -ENOMEM : uv_read_start((uv_stream_t *)&c->tcp, alloc_out, out_conn_read);
    if (rc < 0) {
        swm_free(h);
        raft_peer_fail(p, "start", rc);
        return rc;
    }
    return conn_write(c, h);
}

static void out_conn_connected(uv_connect_t *req, int status)
{
    struct out_conn *c = container_of(req, struct out_conn, connect);
    struct raft_peer *p = c->peer;
    if (p == NULL)
        return; /* dropped while connecting; the handle is closing */
    if (status < 0) {
        raft_peer_fail(p, "connect", status);
        return;
    }
    uv_timer_stop(&p->timer);
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_DELAY_S);
    if (conn_greet(c) < 0)
        return;
    raft_peer_connected(p);
}

static void out_connect(struct raft_peer *p)
{
    struct tcp_transport *t = peers_tcp(p->set);
    struct out_conn *c = swm_calloc(1, sizeof(*c));
    if (c == NULL) {
        raft_peer_fail(p, "connect", -ENOMEM);
        return;
    }
    c->t = t;
    uv_tcp_init(t->loop, &c->tcp);
    c->tcp.data = c;
    t->refs++;
    c->peer = p;
    p->conn = c;
    p->state = RAFT_PEER_CONNECTING;
    int rc =
        uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&p->sa, out_conn_connected);
    if (rc < 0) {
        raft_peer_fail(p, "connect", rc);
        return;
    }
    /* The loop's clock is only refreshed once per iteration; a send made
     * after a long callback (or before the loop runs) would otherwise start
     * the deadline in the past and time out a connect never polled. */
    uv_update_time(t->loop);
    raft_peer_arm(p, CONNECT_TIMEOUT_MS);
}

/* libuv runs timers before polling, so after the loop was busy for longer
 * than the deadline the timer can fire although the connection is up and
 * only its callback is pending; the socket knows. */
static bool connect_done(struct out_conn *c)
{
    uv_os_fd_t fd;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    return uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
           getpeername(fd, (struct sockaddr *)&sa, &len) == 0;
}

static void out_connect_timeout(struct raft_peer *p)
{
    if (connect_done(p->conn))
        raft_peer_arm(p, CONNECT_TIMEOUT_MS);
    else
        raft_peer_fail(p, "connect", UV_ETIMEDOUT);
}

static void peers_ref(struct raft_peers *s)
{
    peers_tcp(s)->refs++;
}

static void peers_unref(struct raft_peers *s)
{
    transport_unref(peers_tcp(s));
}

static const struct raft_peer_ops tcp_peer_ops = {
    .connect = out_connect,
    .write = out_write,
    .drop = out_conn_drop,
    .timeout = out_connect_timeout,
    .ref = peers_ref,
    .unref = peers_unref,
};

static int tcp_send(struct raft_transport *base, uint64_t to, const void *frame, size_t len)
{
    struct tcp_transport *t = to_tcp(base);
    if (t->closing)
        return SWM_ESHUTDOWN;
    if (len == 0 || len > t->max_frame)
        return -EMSGSIZE;
    /* Frames being written count against the bound as well (queued_bytes). */
    struct raft_peer *p;
    int rc = raft_peers_reserve(&t->peers, to, FRAME_HEADER + len, &p);
    if (rc < 0)
        return rc;
    struct raft_peer_frame *f = raft_peer_frame_new(frame, len, FRAME_HEADER);
    if (f == NULL)
        return -ENOMEM;
    put_be32(f->bytes, (uint32_t)len);
    raft_peer_push(p, f);
    /* Connected, nothing else waits: the frame goes to the socket now. */
    if (p->state == RAFT_PEER_CONNECTED)
        raft_peer_flush(p);
    return 0;
}

/* --- inbound ------------------------------------------------------------ */

static void accept_one(struct tcp_transport *t);

static void in_conn_closed(uv_handle_t *h)
{
    struct in_conn *c = h->data;
    struct tcp_transport *t = c->t;
    if (--c->open_handles > 0)
        return;
    swm_buf_free(&c->frame);
    swm_free(c);
    /* A slot is free: take the connection that waits in the backlog. */
    if (t->accept_pending && !t->closing)
        accept_one(t);
    transport_unref(t);
}

static void in_conn_close(struct in_conn *c)
{
    struct tcp_transport *t = c->t;
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        t->inbound = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    t->n_inbound--;
    uv_close((uv_handle_t *)&c->tcp, in_conn_closed);
    uv_close((uv_handle_t *)&c->timer, in_conn_closed);
}

static void in_conn_timeout(uv_timer_t *timer)
{
    struct in_conn *c = timer->data;
    swm_log_info("raft tcp: closing silent connection remote=%s peer=%" PRIu64 " hello=%s",
                 c->remote, c->peer_id, c->hello_done ? "yes" : "no");
    in_conn_close(c);
}

static void deliver(struct tcp_transport *t, const void *frame, size_t len)
{
    if (!t->closing && t->base.recv != NULL)
        t->base.recv(t->base.recv_arg, frame, len);
}

/* Collects the hello or a length header into c->head; returns the bytes
 * used. Closes c on a bad hello or length. */
static size_t consume_head(struct in_conn *c, const uint8_t *p, size_t n)
{
    size_t want = (c->hello_done ? FRAME_HEADER : HELLO_SIZE) - c->head_len;
    size_t take = n < want ? n : want;
    memcpy(c->head + c->head_len, p, take);
    c->head_len += take;
    if (take < want)
        return take;
    c->head_len = 0;
    if (!c->hello_done) {
        c->peer_id = get_be64(c->head + 8);
        if (memcmp(c->head, HELLO_MAGIC, 8) != 0 || c->peer_id == 0) {
            swm_log_warn("raft tcp: bad hello, closing remote=%s", c->remote);
            in_conn_close(c);
            return take;
        }
        c->hello_done = true;
        swm_log_debug("raft tcp: peer connected remote=%s peer=%" PRIu64, c->remote, c->peer_id);
        return take;
    }
    uint32_t len = get_be32(c->head);
    if (len == 0 || len > c->t->max_frame) {
        swm_log_warn("raft tcp: bad frame length, closing remote=%s peer=%" PRIu64 " len=%" PRIu32
                     " max=%zu",
                     c->remote, c->peer_id, len, c->t->max_frame);
        in_conn_close(c);
        return take;
    }
    c->frame_len = len;
    return take;
}

/* Adds to the frame being read; returns the bytes used. A frame that is
 * whole in this read is delivered without a copy. */
static size_t consume_body(struct in_conn *c, const uint8_t *p, size_t n)
{
    size_t len = c->frame_len;
    if (c->frame.len == 0 && n >= len) {
        c->frame_len = 0;
        deliver(c->t, p, len);
        return len;
    }
    size_t take = len - c->frame.len < n ? len - c->frame.len : n;
    /* The buffer grows with what arrives, not with the announced length, so
     * a peer cannot make us reserve max_frame bytes per connection for free. */
    if (swm_buf_append(&c->frame, p, take) < 0) {
        swm_log_warn("raft tcp: out of memory, closing remote=%s peer=%" PRIu64, c->remote,
                     c->peer_id);
        in_conn_close(c);
        return take;
    }
    if (c->frame.len == len) {
        c->frame_len = 0;
        deliver(c->t, c->frame.data, len);
        swm_buf_free(&c->frame);
    }
    return take;
}

static void in_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct in_conn *c = s->data;
    if (nread < 0) {
        if (nread != UV_EOF || c->head_len > 0 || c->frame_len > 0)
            swm_log_debug("raft tcp: inbound connection ended remote=%s peer=%" PRIu64
                          " error=\"%s\"",
                          c->remote, c->peer_id, uv_strerror((int)nread));
        in_conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    uv_timer_start(&c->timer, in_conn_timeout, c->t->limits.idle_timeout_ms, 0);
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    /* recv may close the transport, which closes c: stop at once then. */
    while (n > 0 && !c->closing) {
        size_t used = c->frame_len == 0 ? consume_head(c, p, n) : consume_body(c, p, n);
        p += used;
        n -= used;
    }
}

static void in_conn_start(struct tcp_transport *t, struct in_conn *c)
{
    struct sockaddr_storage sa;
    int namelen = sizeof(sa);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &namelen) == 0)
        swm_addr_format(&sa, c->remote, sizeof(c->remote));
    else
        snprintf(c->remote, sizeof(c->remote), "unknown");
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_DELAY_S);
    uint64_t hello_ms =
        t->limits.idle_timeout_ms < HELLO_TIMEOUT_MS ? t->limits.idle_timeout_ms : HELLO_TIMEOUT_MS;
    uv_timer_start(&c->timer, in_conn_timeout, hello_ms, 0);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_in, in_conn_read);
    if (rc < 0) {
        swm_log_warn("raft tcp: cannot read remote=%s error=\"%s\"", c->remote, uv_strerror(rc));
        in_conn_close(c);
    }
}

static void accept_retry(uv_timer_t *timer)
{
    struct tcp_transport *t = timer->data;
    if (t->accept_pending)
        accept_one(t);
}

/* Takes the connection libuv holds for us. When full or out of memory it is
 * left there: libuv stops accepting until we call uv_accept, so a flood
 * waits in the kernel's backlog instead of costing descriptors. */
static void accept_one(struct tcp_transport *t)
{
    t->accept_pending = true;
    if (t->n_inbound >= t->limits.max_inbound) {
        if (!t->inbound_full_logged)
            swm_log_warn("raft tcp: too many inbound connections, new ones wait max=%u",
                         t->limits.max_inbound);
        t->inbound_full_logged = true;
        return;
    }
    struct in_conn *c = swm_calloc(1, sizeof(*c));
    if (c == NULL) {
        uv_timer_start(&t->retry, accept_retry, ACCEPT_RETRY_MS, 0);
        return;
    }
    t->accept_pending = false;
    t->inbound_full_logged = false;
    c->t = t;
    c->open_handles = 2;
    uv_tcp_init(t->loop, &c->tcp);
    uv_timer_init(t->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    t->refs++;
    c->next = t->inbound;
    if (t->inbound != NULL)
        t->inbound->prev = c;
    t->inbound = c;
    t->n_inbound++;
    int rc = uv_accept((uv_stream_t *)&t->listener, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        swm_log_warn("raft tcp: accept failed error=\"%s\"", uv_strerror(rc));
        in_conn_close(c);
        return;
    }
    in_conn_start(t, c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct tcp_transport *t = server->data;
    if (status < 0) {
        swm_log_warn("raft tcp: listen error error=\"%s\"", uv_strerror(status));
        return;
    }
    if (!t->closing)
        accept_one(t);
}

/* --- lifetime ----------------------------------------------------------- */

static void tcp_close(struct raft_transport *base)
{
    struct tcp_transport *t = to_tcp(base);
    if (t->closing)
        return;
    t->closing = true;
    raft_peers_clear(&t->peers);
    while (t->inbound != NULL)
        in_conn_close(t->inbound);
    uv_close((uv_handle_t *)&t->listener, handle_unref);
    uv_close((uv_handle_t *)&t->retry, handle_unref);
}

static const struct raft_transport_ops tcp_ops = {
    .send = tcp_send,
    .close = tcp_close,
};

static int start_listening(struct tcp_transport *t, const char *addr, struct swm_err *err)
{
    struct sockaddr_storage sa;
    if (swm_addr_parse(addr, &sa) < 0)
        return swm_err_set(err, -EINVAL, "raft tcp: bad listen address \"%s\"",
                           addr != NULL ? addr : "");
    int rc = uv_tcp_bind(&t->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&t->listener, LISTEN_BACKLOG, on_connection);
    if (rc < 0)
        return swm_err_set(err, rc, "raft tcp: listen on %s: %s", addr, uv_strerror(rc));
    int namelen = sizeof(sa);
    rc = uv_tcp_getsockname(&t->listener, (struct sockaddr *)&sa, &namelen);
    if (rc < 0)
        return swm_err_set(err, rc, "raft tcp: listen on %s: %s", addr, uv_strerror(rc));
    t->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    return 0;
}

int raft_tcp_transport_open(uv_loop_t *loop, uint64_t self_id, const char *listen_addr,
                            size_t max_frame, struct raft_transport **out, struct swm_err *err)
{
    if (self_id == 0 || max_frame > UINT32_MAX)
        return swm_err_set(err, -EINVAL, "raft tcp: bad member id or frame limit");
    struct tcp_transport *t = swm_calloc(1, sizeof(*t));
    if (t == NULL)
        return swm_err_set(err, -ENOMEM, "raft tcp: out of memory");
    t->base.ops = &tcp_ops;
    t->loop = loop;
    t->self_id = self_id;
    t->peers.ops = &tcp_peer_ops;
    t->peers.loop = loop;
    t->peers.log_name = "raft tcp";
    t->max_frame = max_frame != 0 ? max_frame : RAFT_MESSAGE_MAX_SIZE;
    raft_tcp_transport_set_limits(&t->base, &(struct raft_tcp_limits){0});
    /* Neither init can fail for AF_UNSPEC and a timer; from here on the
     * transport frees itself through tcp_close. */
    uv_tcp_init(loop, &t->listener);
    uv_timer_init(loop, &t->retry);
    t->listener.data = t;
    t->retry.data = t;
    t->refs = 2;
    int rc = start_listening(t, listen_addr, err);
    if (rc < 0) {
        tcp_close(&t->base);
        return rc;
    }
    *out = &t->base;
    return 0;
}

int raft_tcp_transport_port(const struct raft_transport *t)
{
    return container_of(t, const struct tcp_transport, base)->port;
}

void raft_tcp_transport_set_limits(struct raft_transport *base, const struct raft_tcp_limits *l)
{
    struct tcp_transport *t = to_tcp(base);
    t->limits.peer_queue_bytes =
        l->peer_queue_bytes ? l->peer_queue_bytes : RAFT_TCP_PEER_QUEUE_BYTES;
    t->limits.max_inbound = l->max_inbound ? l->max_inbound : RAFT_TCP_MAX_INBOUND;
    t->limits.idle_timeout_ms = l->idle_timeout_ms ? l->idle_timeout_ms : RAFT_TCP_IDLE_TIMEOUT_MS;
    t->peers.queue_bytes = t->limits.peer_queue_bytes;
    /* A raised bound admits a connection waiting in the backlog now. */
    if (t->accept_pending && !t->closing && t->n_inbound < t->limits.max_inbound)
        accept_one(t);
}

int raft_tcp_transport_set_peer(struct raft_transport *base, uint64_t id, const char *addr)
{
    struct tcp_transport *t = to_tcp(base);
    if (t->closing)
        return SWM_ESHUTDOWN;
    return raft_peers_set(&t->peers, id, addr);
}

int raft_tcp_transport_remove_peer(struct raft_transport *base, uint64_t id)
{
    return raft_peers_remove(&to_tcp(base)->peers, id);
}
