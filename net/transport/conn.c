/* The libuv driver of the secure channel (conn.h, docs/protocol.md "libuv
 * driver").
 *
 * Lifetime: a connection owns two handles (its TCP stream and its tick
 * timer) and frees itself in the close callback of the last one, after
 * reporting `closed`. libuv runs a closing stream's cancelled connect and
 * write callbacks (UV_ECANCELED) before its close callback, so request
 * callbacks may always touch their connection. A listener holds one
 * reference per handle of its own and one per accepted connection, and is
 * freed when the last goes; accepted connections share its read buffer
 * (libuv calls alloc then read for one stream at a time). */
#include "net/transport/conn.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/netaddr.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define READ_BUF_SIZE (64u << 10)
#define LISTEN_BACKLOG 128
#define ACCEPT_RETRY_MS 100
#define REASON_LEN 256
#define TICK_MIN_MS 5
#define TICK_MAX_MS 1000

enum conn_state {
    CONN_CONNECTING, /* outbound, TCP connect pending */
    CONN_OPEN,       /* reading; handshake or established */
    CONN_CLOSING,    /* reads stopped, flushing queued output until linger */
    CONN_CLOSED,     /* uv_close called on both handles */
};

/* A configuration with everything it points to copied in (except
 * `revoked`, which is borrowed as chan_config documents). Pointers refer
 * into the struct, so it never moves once filled. */
struct cfg_copy {
    struct chan_config cfg;
    struct ca_keypair identity;
    struct ca_cert cert;
    uint8_t root_pk[CA_PUBKEY_LEN];
    struct ca_join_secrets secrets;
    char peer_node_id[SWM_ID_LEN + 1];
};

/* One uv_write with its own copy of the bytes: the channel's output is
 * only valid until its next call. */
struct write_req {
    uv_write_t req;
    struct chan_conn *conn;
    size_t len;
    uint8_t bytes[];
};

struct chan_conn {
    uv_loop_t *loop;
    struct chan_listener *listener; /* NULL for an outbound connection */
    struct chan_conn *next, *prev;  /* in the listener's list, if linked */
    bool linked;
    struct chan *ch; /* NULL for a connection refused at accept */
    struct chan_conn_callbacks cbs;
    struct chan_conn_limits limits; /* defaults filled in */
    void *user;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    int open_handles;
    enum conn_state state;
    bool visible;             /* the caller has seen it: `closed` is owed */
    bool counted_handshaking; /* counted in the listener's n_handshaking */
    bool want_drain;
    bool has_reason;
    int status;
    char reason[REASON_LEN];
    char remote[SWM_ADDR_STRLEN];
    size_t inflight;          /* bytes handed to uv_write, not yet done */
    size_t last_queue;        /* libuv's write queue size when last looked */
    uint64_t last_progress;   /* uv_hrtime of the last write progress */
    uint64_t linger_deadline; /* uv_hrtime, while CLOSING */
    uint64_t tick_ms;
    char *readbuf;     /* the listener's, or own_readbuf */
    char *own_readbuf; /* outbound only */
};

struct chan_listener {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t retry; /* retries an accept that failed for memory */
    unsigned refs;
    bool closing;
    int port;
    char addr[SWM_ADDR_STRLEN];
    struct cfg_copy *cfg;
    struct chan_conn_limits limits;
    struct chan_conn_callbacks cbs;
    struct chan_conn *conns;
    unsigned n_conns, n_handshaking;
    /* Rejection warnings: at most WARN_BURST per second, the rest counted,
     * so a peer reconnecting in a loop cannot grow the daemon's log. */
    uint64_t warn_window_ms;
    unsigned warned, suppressed;
    char readbuf[READ_BUF_SIZE];
};

/* --------------------------------------------------------- helpers -- */

static void resolve_limits(struct chan_conn_limits *out, const struct chan_conn_limits *in)
{
    *out = in != NULL ? *in : (struct chan_conn_limits){0};
    if (out->max_handshaking == 0)
        out->max_handshaking = CHAN_CONN_MAX_HANDSHAKING_DEFAULT;
    if (out->max_conns == 0)
        out->max_conns = CHAN_CONN_MAX_CONNS_DEFAULT;
    if (out->max_write_bytes == 0)
        out->max_write_bytes = CHAN_CONN_MAX_WRITE_DEFAULT;
    if (out->write_timeout <= 0)
        out->write_timeout = CHAN_CONN_WRITE_TIMEOUT_DEFAULT;
    if (out->linger_timeout <= 0)
        out->linger_timeout = CHAN_CONN_LINGER_DEFAULT;
}

static int64_t or_default(int64_t v, int64_t def)
{
    return v > 0 ? v : def;
}

/* The tick must be fine enough for the shortest deadline the channel or
 * the driver keeps; a quarter of it bounds the lateness to 25%. */
static uint64_t tick_interval_ms(const struct chan_config *cfg, const struct chan_conn_limits *lim)
{
    int64_t t = or_default(cfg->handshake_timeout, CHAN_HANDSHAKE_TIMEOUT_DEFAULT);
    int64_t k = or_default(cfg->keepalive_interval, CHAN_KEEPALIVE_DEFAULT);
    int64_t i = or_default(cfg->idle_timeout, CHAN_IDLE_TIMEOUT_DEFAULT);
    if (k < t)
        t = k;
    if (i < t)
        t = i;
    if (lim->write_timeout < t)
        t = lim->write_timeout;
    if (lim->linger_timeout < t)
        t = lim->linger_timeout;
    int64_t ms = t / 4 / 1000000;
    if (ms < TICK_MIN_MS)
        ms = TICK_MIN_MS;
    if (ms > TICK_MAX_MS)
        ms = TICK_MAX_MS;
    return (uint64_t)ms;
}

/* Checks cfg the way chan_new will (by making a throwaway channel), so that
 * a bad configuration fails at open rather than at every accept. */
static int check_config(const struct chan_config *cfg, enum chan_side side, struct swm_err *err)
{
    struct chan_config c = *cfg;
    c.side = side;
    struct chan *ch = NULL;
    int rc = chan_new(&ch, &c, err);
    chan_free(ch);
    return rc;
}

static struct cfg_copy *copy_config(const struct chan_config *src, enum chan_side side)
{
    struct cfg_copy *d = swm_calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->cfg = *src;
    d->cfg.side = side;
    d->cfg.join_token = NULL; /* responder only */
    if (src->identity != NULL) {
        d->identity = *src->identity;
        d->cfg.identity = &d->identity;
    }
    if (src->cert != NULL) {
        d->cert = *src->cert;
        d->cfg.cert = &d->cert;
    }
    if (src->root_pk != NULL) {
        memcpy(d->root_pk, src->root_pk, CA_PUBKEY_LEN);
        d->cfg.root_pk = d->root_pk;
    }
    if (src->join_secrets != NULL) {
        d->secrets = *src->join_secrets;
        d->cfg.join_secrets = &d->secrets;
    }
    if (src->peer_node_id != NULL) {
        snprintf(d->peer_node_id, sizeof(d->peer_node_id), "%s", src->peer_node_id);
        d->cfg.peer_node_id = d->peer_node_id;
    }
    return d;
}

static void free_config(struct cfg_copy *c)
{
    if (c == NULL)
        return;
    sodium_memzero(c, sizeof(*c));
    swm_free(c);
}

/* ------------------------------------------------------ connections -- */

static void conn_tick(uv_timer_t *timer);
static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void listener_unref(struct chan_listener *l);

#define WARN_BURST 10

static void warn_rejected(struct chan_listener *l, const struct chan_conn *c, int status)
{
    uint64_t now = uv_now(l->loop);
    if (now - l->warn_window_ms >= 1000) {
        l->warn_window_ms = now;
        l->warned = 0;
    }
    if (l->warned == WARN_BURST) {
        l->suppressed++;
        return;
    }
    l->warned++;
    swm_log_warn("secure channel: %s remote=%s status=\"%s\" reason=\"%s\" "
                 "suppressed_before=%u",
                 c->visible ? "connection failed" : "connection rejected", c->remote,
                 swm_strerror(status), c->reason, l->suppressed);
    l->suppressed = 0;
}

/* Records why the connection ends; the first cause wins. Accepted
 * connections that fail are logged here, once (the caller of an outbound
 * connection gets the reason through `closed`). */
__attribute__((format(printf, 3, 4))) static void conn_reason(struct chan_conn *c, int status,
                                                              const char *fmt, ...)
{
    if (c->has_reason)
        return;
    c->has_reason = true;
    c->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
    if (c->listener == NULL)
        return;
    if (status != 0 && status != SWM_ESHUTDOWN)
        warn_rejected(c->listener, c, status);
    else
        swm_log_debug("secure channel: connection closed remote=%s reason=\"%s\"", c->remote,
                      c->reason);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct chan_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct chan_listener *l = c->listener;
    if (l != NULL) {
        if (c->linked) {
            if (c->prev != NULL)
                c->prev->next = c->next;
            else
                l->conns = c->next;
            if (c->next != NULL)
                c->next->prev = c->prev;
            l->n_conns--;
        }
        if (c->counted_handshaking)
            l->n_handshaking--;
    }
    /* Unlinked first, so that the callback sees the listener's counts
     * without this connection and may close the listener. */
    if (c->visible && c->cbs.closed != NULL)
        c->cbs.closed(c, c->status, c->reason, c->cbs.arg);
    chan_free(c->ch);
    swm_free(c->own_readbuf);
    swm_free(c);
    if (l != NULL)
        listener_unref(l);
}

/* Closes both handles now; queued writes are cancelled (and freed in their
 * callbacks). Idempotent. */
static void conn_shutdown(struct chan_conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

__attribute__((format(printf, 3, 4))) static void conn_abort(struct chan_conn *c, int status,
                                                             const char *fmt, ...)
{
    if (c->state == CONN_CLOSED)
        return;
    if (!c->has_reason) {
        char reason[REASON_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        conn_reason(c, status, "%s", reason);
    }
    conn_shutdown(c);
}

static void write_done(uv_write_t *req, int status)
{
    struct write_req *w = container_of(req, struct write_req, req);
    struct chan_conn *c = w->conn;
    c->inflight -= w->len;
    swm_free(w);
    if (c->state == CONN_CLOSED)
        return;
    if (status < 0) {
        conn_abort(c, status, "writing to the peer: %s", uv_strerror(status));
        return;
    }
    c->last_progress = uv_hrtime();
    if (c->state == CONN_CLOSING) {
        if (c->inflight == 0)
            conn_shutdown(c);
        return;
    }
    if (c->want_drain && c->inflight <= c->limits.max_write_bytes / 2) {
        c->want_drain = false;
        if (c->cbs.drain != NULL)
            c->cbs.drain(c, c->cbs.arg);
    }
}

/* Hands everything the channel has produced to the socket. */
static void conn_flush(struct chan_conn *c)
{
    if (c->state != CONN_OPEN && c->state != CONN_CLOSING)
        return;
    const uint8_t *out;
    size_t n = chan_output(c->ch, &out);
    if (n == 0)
        return;
    struct write_req *w = swm_malloc(sizeof(*w) + n);
    if (w == NULL) {
        conn_abort(c, -ENOMEM, "out of memory writing %zu bytes to the peer", n);
        return;
    }
    memcpy(w->bytes, out, n);
    chan_output_consume(c->ch, n);
    w->conn = c;
    w->len = n;
    if (c->inflight == 0)
        c->last_progress = uv_hrtime();
    /* Frames are at most 4 GiB and output is flushed after every call, so
     * n fits the unsigned length of a uv_buf_t. */
    uv_buf_t b = uv_buf_init((char *)w->bytes, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_done);
    if (rc < 0) {
        swm_free(w);
        conn_abort(c, rc, "writing to the peer: %s", uv_strerror(rc));
        return;
    }
    c->inflight += n;
    c->last_queue = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

/* Ends the connection gracefully: stops reading and delivering, writes what
 * is queued (a REJECT, the last messages) for up to linger_timeout, then
 * closes. */
static void conn_close_gracefully(struct chan_conn *c)
{
    if (c->state == CONN_CLOSING || c->state == CONN_CLOSED)
        return;
    if (c->state == CONN_CONNECTING) {
        conn_shutdown(c); /* cancels the connect */
        return;
    }
    c->state = CONN_CLOSING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->linger_deadline = uv_hrtime() + (uint64_t)c->limits.linger_timeout;
    conn_flush(c);
    if (c->state == CONN_CLOSING && c->inflight == 0)
        conn_shutdown(c);
}

static void handshake_done(struct chan_conn *c)
{
    if (c->counted_handshaking) {
        c->counted_handshaking = false;
        c->listener->n_handshaking--;
    }
}

/* Turns the channel's events into callbacks, stopping as soon as the
 * connection starts closing (a callback may close it). */
static void conn_deliver(struct chan_conn *c)
{
    struct chan_event ev;
    while (c->state == CONN_OPEN && chan_next_event(c->ch, &ev) == 1) {
        switch (ev.type) {
        case CHAN_EV_ESTABLISHED:
            handshake_done(c);
            c->visible = true;
            if (c->cbs.established != NULL)
                c->cbs.established(c, chan_peer_cert(c->ch), c->cbs.arg);
            break;
        case CHAN_EV_JOIN_REQUEST: {
            handshake_done(c);
            uint8_t pk[CA_PUBKEY_LEN];
            int role = 0;
            if (c->cbs.join_request == NULL || chan_join_request(c->ch, pk, &role) < 0) {
                conn_reason(c, -EPERM, "this node does not accept joins");
                conn_close_gracefully(c);
                break;
            }
            c->visible = true;
            c->cbs.join_request(c, pk, role, c->cbs.arg);
            break;
        }
        case CHAN_EV_CERT:
            if (c->cbs.joined != NULL)
                c->cbs.joined(c, chan_issued_cert(c->ch), c->cbs.arg);
            conn_reason(c, 0, "joined: the certificate arrived");
            conn_close_gracefully(c);
            break;
        case CHAN_EV_DATA:
            if (c->cbs.data != NULL)
                c->cbs.data(c, ev.data, ev.len, c->cbs.arg);
            break;
        }
    }
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct chan_conn *c = h->data;
    *buf = uv_buf_init(c->readbuf, READ_BUF_SIZE);
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct chan_conn *c = s->data;
    if (nread == 0 || c->state != CONN_OPEN)
        return;
    struct swm_err err = {0};
    if (nread == UV_EOF) {
        int rc = chan_feed_eof(c->ch, &err);
        if (rc < 0)
            conn_reason(c, rc, "%s", err.msg);
        else
            conn_reason(c, 0, "the peer closed the connection");
        conn_close_gracefully(c);
        return;
    }
    if (nread < 0) {
        conn_abort(c, (int)nread, "reading from the peer: %s", uv_strerror((int)nread));
        return;
    }
    int rc = chan_feed(c->ch, buf->base, (size_t)nread, (int64_t)uv_hrtime(), &err);
    /* Frames before a bad one are delivered, in order, before it fails. */
    conn_deliver(c);
    if (rc < 0 && c->state == CONN_OPEN) {
        conn_reason(c, rc, "%s", err.msg);
        conn_close_gracefully(c); /* writes the REJECT, if any */
        return;
    }
    conn_flush(c);
}

static void conn_tick(uv_timer_t *timer)
{
    struct chan_conn *c = timer->data;
    uint64_t now = uv_hrtime();
    if (c->state == CONN_CLOSING) {
        if (now >= c->linger_deadline)
            conn_shutdown(c);
        return;
    }
    if (c->state != CONN_OPEN && c->state != CONN_CONNECTING)
        return;
    struct swm_err err = {0};
    int rc = chan_tick(c->ch, (int64_t)now, &err);
    if (rc < 0) {
        conn_reason(c, rc, "%s", err.msg);
        conn_close_gracefully(c);
        return;
    }
    if (c->state != CONN_OPEN)
        return;
    conn_flush(c);
    if (c->state != CONN_OPEN || c->inflight == 0)
        return;
    /* libuv's queue shrinks as the kernel takes bytes, even inside one
     * large write; no shrinking for write_timeout means the peer stopped
     * reading. */
    size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (q < c->last_queue)
        c->last_progress = now;
    c->last_queue = q;
    /* conn_flush above stamps last_progress after `now` when it starts a
     * write (a keepalive on an idle connection): that is no stall. */
    uint64_t stalled = now > c->last_progress ? now - c->last_progress : 0;
    if (stalled >= (uint64_t)c->limits.write_timeout)
        conn_abort(c, -ETIMEDOUT, "peer is not reading: %zu bytes unwritten for %" PRIu64 " ms",
                   c->inflight, stalled / 1000000);
}

/* Makes a connection with both handles initialised; from here on it is
 * freed by conn_shutdown. */
static struct chan_conn *conn_alloc(uv_loop_t *loop, struct chan_listener *l,
                                    const struct chan_conn_callbacks *cbs,
                                    const struct chan_conn_limits *limits)
{
    struct chan_conn *c = swm_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->listener = l;
    c->cbs = *cbs;
    c->limits = *limits;
    c->state = CONN_CONNECTING;
    snprintf(c->remote, sizeof(c->remote), "?");
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    if (l != NULL) {
        l->refs++;
        c->readbuf = l->readbuf;
    }
    return c;
}

static void conn_connected(uv_connect_t *req, int status)
{
    struct chan_conn *c = req->handle->data;
    if (c->state != CONN_CONNECTING)
        return; /* cancelled by a close */
    if (status < 0) {
        conn_abort(c, status, "connecting to %s: %s", c->remote, uv_strerror(status));
        return;
    }
    c->state = CONN_OPEN;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read);
    if (rc < 0) {
        conn_abort(c, rc, "reading from %s: %s", c->remote, uv_strerror(rc));
        return;
    }
    conn_flush(c); /* the HELLO */
}

int chan_conn_connect(uv_loop_t *loop, const char *addr, const struct chan_config *cfg,
                      const struct chan_conn_limits *limits, const struct chan_conn_callbacks *cbs,
                      struct chan_conn **out, struct swm_err *err)
{
    struct sockaddr_storage sa;
    if (swm_addr_parse(addr, &sa) < 0)
        return swm_err_set(err, -EINVAL, "invalid address \"%s\" (want host:port)",
                           addr != NULL ? addr : "");
    if (cbs == NULL || cbs->closed == NULL)
        return swm_err_set(err, -EINVAL, "a connection needs a closed callback");
    struct chan_conn_limits lim;
    resolve_limits(&lim, limits);
    struct chan_config c_cfg = *cfg;
    c_cfg.side = CHAN_INITIATOR;
    struct chan *ch = NULL;
    int rc = chan_new(&ch, &c_cfg, err);
    if (rc < 0)
        return rc;
    struct chan_conn *c = conn_alloc(loop, NULL, cbs, &lim);
    char *readbuf = swm_malloc(READ_BUF_SIZE);
    if (c == NULL || readbuf == NULL) {
        swm_free(readbuf);
        chan_free(ch);
        if (c != NULL)
            conn_shutdown(c);
        return swm_err_set(err, -ENOMEM, "out of memory connecting to %s", addr);
    }
    c->ch = ch;
    c->own_readbuf = c->readbuf = readbuf;
    c->tick_ms = tick_interval_ms(&c_cfg, &lim);
    snprintf(c->remote, sizeof(c->remote), "%s", addr);
    /* The loop's clock may be stale (the loop has not run yet); the
     * handshake deadline counts from now. */
    uv_update_time(loop);
    if ((rc = chan_start(ch, (int64_t)uv_hrtime(), err)) < 0) {
        conn_shutdown(c);
        return rc;
    }
    rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&sa, conn_connected);
    if (rc < 0) {
        conn_shutdown(c);
        return swm_err_set(err, rc, "connecting to %s: %s", addr, uv_strerror(rc));
    }
    uv_timer_start(&c->timer, conn_tick, c->tick_ms, c->tick_ms);
    c->visible = true;
    *out = c;
    return 0;
}

int chan_conn_send(struct chan_conn *c, const void *data, size_t len, struct swm_err *err)
{
    if (c->state == CONN_CLOSING || c->state == CONN_CLOSED)
        return swm_err_set(err, -EPIPE, "the connection to %s is closing", c->remote);
    if (c->state == CONN_CONNECTING)
        return swm_err_set(err, -EAGAIN, "the handshake is not complete");
    if (c->inflight > 0 && c->inflight + len > c->limits.max_write_bytes) {
        c->want_drain = true;
        return swm_err_set(err, -ENOBUFS,
                           "%zu bytes are still being written to %s (limit %zu); wait for drain",
                           c->inflight, c->remote, c->limits.max_write_bytes);
    }
    int rc = chan_send(c->ch, data, len, err);
    if (rc < 0)
        return rc;
    conn_flush(c);
    return 0;
}

int chan_conn_send_cert(struct chan_conn *c, const struct ca_cert *cert, struct swm_err *err)
{
    if (c->state != CONN_OPEN)
        return swm_err_set(err, -EPIPE, "the connection to %s is closing", c->remote);
    int rc = chan_send_cert(c->ch, cert, err);
    if (rc < 0)
        return rc;
    conn_flush(c);
    return 0;
}

int chan_conn_recheck(struct chan_conn *c, struct swm_err *err)
{
    if (c->state != CONN_OPEN)
        return 0;
    struct swm_err e = {0};
    int rc = chan_recheck(c->ch, &e);
    if (rc < 0) {
        conn_reason(c, rc, "%s", e.msg);
        conn_close_gracefully(c);
        if (err != NULL)
            *err = e;
    }
    return rc;
}

void chan_conn_close(struct chan_conn *c)
{
    if (c == NULL || c->state == CONN_CLOSING || c->state == CONN_CLOSED)
        return;
    conn_reason(c, 0, "closed by this side");
    conn_close_gracefully(c);
}

const struct chan *chan_conn_channel(const struct chan_conn *c)
{
    return c->ch;
}

const char *chan_conn_remote(const struct chan_conn *c)
{
    return c->remote;
}

size_t chan_conn_write_pending(const struct chan_conn *c)
{
    return c->inflight;
}

/* conn_deliver and the write and close paths read c->cbs at each call, so
 * a new set takes effect at the next callback, even for events left over
 * from the read being delivered. */
void chan_conn_set_callbacks(struct chan_conn *c, const struct chan_conn_callbacks *cbs)
{
    c->cbs = *cbs;
}

const struct chan_conn_callbacks *chan_conn_callbacks(const struct chan_conn *c)
{
    return &c->cbs;
}

void chan_conn_set_user(struct chan_conn *c, void *user)
{
    c->user = user;
}

void *chan_conn_user(const struct chan_conn *c)
{
    return c->user;
}

/* -------------------------------------------------------- listeners -- */

static void listener_unref(struct chan_listener *l)
{
    if (--l->refs > 0)
        return;
    free_config(l->cfg);
    swm_free(l);
}

static void listener_handle_closed(uv_handle_t *h)
{
    listener_unref(h->data);
}

static void accept_one(struct chan_listener *l);

static void accept_retry(uv_timer_t *timer)
{
    struct chan_listener *l = timer->data;
    if (!l->closing)
        accept_one(l);
}

/* Takes the connection libuv holds for us. Over a limit it is accepted,
 * logged and closed at once, so that the peer learns it now rather than
 * from a timeout. Out of memory it stays in the backlog (libuv stops
 * accepting until uv_accept) and is retried. */
static void accept_one(struct chan_listener *l)
{
    struct chan_conn *c = conn_alloc(l->loop, l, &l->cbs, &l->limits);
    if (c == NULL) {
        uv_timer_start(&l->retry, accept_retry, ACCEPT_RETRY_MS, 0);
        return;
    }
    int rc = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        swm_log_warn("secure channel: accept failed listen=%s error=\"%s\"", l->addr,
                     uv_strerror(rc));
        conn_shutdown(c);
        return;
    }
    struct sockaddr_storage sa;
    int salen = sizeof(sa);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0)
        swm_addr_format(&sa, c->remote, sizeof(c->remote));
    if (l->n_handshaking >= l->limits.max_handshaking) {
        conn_abort(c, -EBUSY, "too many connections in their handshake (limit %u)",
                   l->limits.max_handshaking);
        return;
    }
    if (l->n_conns >= l->limits.max_conns) {
        conn_abort(c, -EBUSY, "too many connections (limit %u)", l->limits.max_conns);
        return;
    }
    struct swm_err err = {0};
    if ((rc = chan_new(&c->ch, &l->cfg->cfg, &err)) < 0 ||
        (rc = chan_start(c->ch, (int64_t)uv_hrtime(), &err)) < 0) {
        conn_abort(c, rc, "%s", err.msg);
        return;
    }
    c->tick_ms = tick_interval_ms(&l->cfg->cfg, &l->limits);
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    c->linked = true;
    l->n_conns++;
    c->counted_handshaking = true;
    l->n_handshaking++;
    c->state = CONN_OPEN;
    uv_tcp_nodelay(&c->tcp, 1);
    rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read);
    if (rc < 0) {
        conn_abort(c, rc, "reading: %s", uv_strerror(rc));
        return;
    }
    uv_timer_start(&c->timer, conn_tick, c->tick_ms, c->tick_ms);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct chan_listener *l = server->data;
    if (status < 0) {
        swm_log_warn("secure channel: listen error listen=%s error=\"%s\"", l->addr,
                     uv_strerror(status));
        return;
    }
    if (!l->closing)
        accept_one(l);
}

int chan_listener_open(uv_loop_t *loop, const char *addr, const struct chan_config *cfg,
                       const struct chan_conn_limits *limits, const struct chan_conn_callbacks *cbs,
                       struct chan_listener **out, struct swm_err *err)
{
    struct sockaddr_storage sa;
    if (swm_addr_parse(addr, &sa) < 0)
        return swm_err_set(err, -EINVAL, "invalid listen address \"%s\" (want host:port)",
                           addr != NULL ? addr : "");
    if (cbs == NULL || cbs->closed == NULL)
        return swm_err_set(err, -EINVAL, "a listener needs a closed callback");
    int rc = check_config(cfg, CHAN_RESPONDER, err);
    if (rc < 0)
        return rc;
    struct chan_listener *l = swm_calloc(1, sizeof(*l));
    struct cfg_copy *copy = copy_config(cfg, CHAN_RESPONDER);
    if (l == NULL || copy == NULL) {
        swm_free(l);
        free_config(copy);
        return swm_err_set(err, -ENOMEM, "out of memory opening a listener");
    }
    l->loop = loop;
    l->cfg = copy;
    l->cbs = *cbs;
    resolve_limits(&l->limits, limits);
    snprintf(l->addr, sizeof(l->addr), "%s", addr);
    uv_tcp_init(loop, &l->tcp);
    uv_timer_init(loop, &l->retry);
    l->tcp.data = l;
    l->retry.data = l;
    l->refs = 2;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if (rc == 0)
        rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
    if (rc < 0) {
        swm_err_set(err, rc, "listening on %s: %s", addr, uv_strerror(rc));
        chan_listener_close(l);
        return rc;
    }
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = l;
    return 0;
}

int chan_listener_port(const struct chan_listener *l)
{
    return l->port;
}

int chan_listener_set_config(struct chan_listener *l, const struct chan_config *cfg,
                             struct swm_err *err)
{
    int rc = check_config(cfg, CHAN_RESPONDER, err);
    if (rc < 0)
        return rc;
    struct cfg_copy *copy = copy_config(cfg, CHAN_RESPONDER);
    if (copy == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory changing the listener's configuration");
    free_config(l->cfg);
    l->cfg = copy;
    return 0;
}

unsigned chan_listener_conn_count(const struct chan_listener *l)
{
    return l->n_conns;
}

void chan_listener_close(struct chan_listener *l)
{
    if (l == NULL || l->closing)
        return;
    l->closing = true;
    uv_close((uv_handle_t *)&l->tcp, listener_handle_closed);
    uv_close((uv_handle_t *)&l->retry, listener_handle_closed);
    for (struct chan_conn *c = l->conns; c != NULL; c = c->next) {
        conn_reason(c, SWM_ESHUTDOWN, "the listener was closed");
        conn_close_gracefully(c);
    }
}
