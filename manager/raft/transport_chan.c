/* The raft transport over the secure channel (transport_chan.h).
 *
 * Lifetime: the transport holds one reference for itself (dropped by
 * close), one per peer (dropped in the close callback of the peer's backoff
 * timer) and one per connection it has seen (dropped in that connection's
 * `closed` callback, which conn.h promises exactly once: for an outbound
 * connection once chan_conn_connect returned 0, for an inbound one after
 * `established`). The listener frees itself; once chan_listener_close
 * returned, it raises no callback other than `closed` for connections we
 * have seen. The transport frees itself when the last reference goes. */
#include "manager/raft/transport_chan.h"

#include "common/alloc.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "manager/raft/raft.h"
#include "net/transport/conn.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

enum peer_state {
    PEER_IDLE,       /* no connection; the next send opens one */
    PEER_CONNECTING, /* dialed; frames wait for the handshake */
    PEER_CONNECTED,  /* established; frames go to the channel */
    PEER_BACKOFF,    /* timer: when to try again */
};

struct chan_transport;
struct out_conn;

/* A frame waiting for the handshake or for the channel to drain. */
struct out_frame {
    struct out_frame *next;
    size_t len;
    uint8_t bytes[];
};

struct peer {
    struct chan_transport *t;
    struct peer *next;
    uint64_t id;
    struct sockaddr_storage sa;
    char addr[SWM_ADDR_STRLEN];
    enum peer_state state;
    struct out_conn *conn; /* NULL while IDLE or BACKOFF */
    uv_timer_t timer;
    uint64_t backoff_ms;           /* delay after the next failure */
    struct out_frame *head, *tail; /* waiting */
    size_t queued_bytes;           /* bytes of the waiting frames */
};

struct out_conn {
    struct chan_transport *t;
    struct peer *peer; /* NULL once detached (the connection is closing) */
    struct chan_conn *conn;
};

/* An inbound connection, from its handshake on. */
struct in_conn {
    char node_id[SWM_ID_LEN + 1]; /* from the peer's verified certificate */
    uint64_t raft_id;             /* its raft id; 0 if ids are not bound */
};

struct chan_transport {
    struct raft_transport base;
    uv_loop_t *loop;
    uint64_t self_id;
    size_t max_frame;
    struct raft_chan_limits limits;
    raft_chan_id_fn id_of;
    void *id_arg;
    int port;
    bool closing;
    unsigned refs;
    struct chan_listener *listener;
    struct peer *peers;
    /* Our side of every channel; pointers refer into this struct. */
    struct chan_config cfg;
    struct ca_keypair identity;
    struct ca_cert cert;
    uint8_t root_pk[CA_PUBKEY_LEN];
};

static struct chan_transport *to_chan(struct raft_transport *base)
{
    return container_of(base, struct chan_transport, base);
}

static void transport_unref(struct chan_transport *t)
{
    if (--t->refs > 0)
        return;
    sodium_memzero(&t->identity, sizeof(t->identity));
    swm_free(t);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    size_t n = a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    return a->ss_family == b->ss_family && memcmp(a, b, n) == 0;
}

/* libuv codes are -errno or in (-4096, 0); ours are below -5000. */
static const char *err_text(int status)
{
    return status <= -5000 ? swm_strerror(status) : uv_strerror(status);
}

/* Reads the `from` field (number 2, a varint) of an encoded RaftMessage
 * without decoding the rest: the last occurrence wins, as in protobuf.
 * Returns 0 and sets *from (0 if absent), or -1 if the top level is not
 * well-formed (the node's decoder would refuse the frame as well). */
static int frame_from(const uint8_t *p, size_t n, uint64_t *from)
{
    uint64_t found = 0;
    size_t i = 0;
    while (i < n) {
        uint64_t v[2] = {0, 0}; /* the key, then a varint value or length */
        int want = 1;
        for (int k = 0; k < want; k++) {
            unsigned shift = 0;
            for (;;) {
                if (i >= n || shift > 63)
                    return -1;
                uint8_t b = p[i++];
                v[k] |= (uint64_t)(b & 0x7f) << shift;
                shift += 7;
                if ((b & 0x80) == 0)
                    break;
            }
            if (k == 0 && ((v[0] & 7) == 0 || (v[0] & 7) == 2))
                want = 2;
        }
        switch (v[0] & 7) {
        case 0:
            if (v[0] >> 3 == 2)
                found = v[1];
            break;
        case 1:
            if (n - i < 8)
                return -1;
            i += 8;
            break;
        case 2:
            if (v[1] > n - i)
                return -1;
            i += (size_t)v[1];
            break;
        case 5:
            if (n - i < 4)
                return -1;
            i += 4;
            break;
        default:
            return -1;
        }
    }
    *from = found;
    return 0;
}

/* --- outbound ----------------------------------------------------------- */

static void peer_fail(struct peer *p, const char *why, int status);
static void peer_timer_fired(uv_timer_t *timer);

static void peer_drop_queue(struct peer *p)
{
    while (p->head != NULL) {
        struct out_frame *f = p->head;
        p->head = f->next;
        swm_free(f);
    }
    p->tail = NULL;
    p->queued_bytes = 0;
}

/* Separates c from its peer and closes it; `closed` follows from the loop
 * and only frees c. */
static void out_conn_drop(struct out_conn *c)
{
    struct peer *p = c->peer;
    if (p == NULL)
        return;
    p->conn = NULL;
    c->peer = NULL;
    chan_conn_close(c->conn);
}

/* Closes the current connection, drops what was waiting (Raft retries) and
 * schedules the next attempt. */
static void peer_fail(struct peer *p, const char *why, int status)
{
    if (p->state == PEER_CONNECTED)
        swm_log_info("raft chan: connection lost peer=%" PRIu64 " addr=%s reason=\"%s: %s\"", p->id,
                     p->addr, why, err_text(status));
    else
        swm_log_debug("raft chan: connect failed peer=%" PRIu64 " addr=%s reason=\"%s: %s\"", p->id,
                      p->addr, why, err_text(status));
    if (p->conn != NULL)
        out_conn_drop(p->conn);
    peer_drop_queue(p);
    p->state = PEER_BACKOFF;
    uv_timer_start(&p->timer, peer_timer_fired, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

/* Hands waiting frames to the channel, in order, until it pushes back
 * (-ENOBUFS: `drain` resumes) or the queue is empty. */
static void peer_flush(struct peer *p)
{
    while (p->head != NULL && p->state == PEER_CONNECTED) {
        struct out_frame *f = p->head;
        struct swm_err err = {0};
        int rc = chan_conn_send(p->conn->conn, f->bytes, f->len, &err);
        if (rc == -ENOBUFS)
            return;
        p->head = f->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued_bytes -= f->len;
        swm_free(f);
        if (rc < 0) {
            peer_fail(p, err.msg, rc);
            return;
        }
    }
}

static void out_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct out_conn *c = chan_conn_user(conn);
    struct peer *p = c->peer;
    if (p == NULL)
        return;
    struct chan_transport *t = p->t;
    if (t->id_of != NULL && t->id_of(peer->node_id, t->id_arg) != p->id) {
        swm_log_warn("raft chan: peer certificate names another member peer=%" PRIu64
                     " addr=%s node=%s",
                     p->id, p->addr, peer->node_id);
        peer_fail(p, "certificate of another node", SWM_EAUTH);
        return;
    }
    swm_log_debug("raft chan: connected peer=%" PRIu64 " addr=%s node=%s", p->id, p->addr,
                  peer->node_id);
    p->state = PEER_CONNECTED;
    p->backoff_ms = BACKOFF_MIN_MS;
    peer_flush(p);
}

/* The receiver never sends on our connection: data means a confused peer. */
static void out_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct out_conn *c = chan_conn_user(conn);
    if (c->peer == NULL)
        return;
    swm_log_warn("raft chan: peer wrote on an outbound connection peer=%" PRIu64 " addr=%s",
                 c->peer->id, c->peer->addr);
    peer_fail(c->peer, "unexpected data", SWM_EPROTO);
}

static void out_drain(struct chan_conn *conn, void *arg)
{
    struct out_conn *c = chan_conn_user(conn);
    if (c->peer != NULL)
        peer_flush(c->peer);
}

static void out_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct out_conn *c = chan_conn_user(conn);
    struct chan_transport *t = arg;
    struct peer *p = c->peer;
    if (p != NULL) {
        p->conn = NULL;
        c->peer = NULL;
        peer_fail(p, reason, status != 0 ? status : -ECONNRESET);
    }
    swm_free(c);
    transport_unref(t);
}

static const struct chan_conn_callbacks out_cbs = {
    .established = out_established,
    .data = out_data,
    .closed = out_closed,
    .drain = out_drain,
};

static void peer_connect(struct peer *p)
{
    struct chan_transport *t = p->t;
    struct out_conn *c = swm_calloc(1, sizeof(*c));
    if (c == NULL) {
        peer_fail(p, "connect", -ENOMEM);
        return;
    }
    struct chan_conn_callbacks cbs = out_cbs;
    cbs.arg = t;
    struct chan_conn_limits lim = {.max_write_bytes = t->limits.peer_queue_bytes};
    struct swm_err err = {0};
    int rc = chan_conn_connect(t->loop, p->addr, &t->cfg, &lim, &cbs, &c->conn, &err);
    if (rc < 0) {
        swm_free(c);
        peer_fail(p, err.msg, rc);
        return;
    }
    /* Callbacks come from the loop, never from inside connect. */
    chan_conn_set_user(c->conn, c);
    c->t = t;
    c->peer = p;
    t->refs++;
    p->conn = c;
    p->state = PEER_CONNECTING;
}

static void peer_timer_fired(uv_timer_t *timer)
{
    struct peer *p = timer->data;
    if (p->state != PEER_BACKOFF)
        return;
    p->state = PEER_IDLE;
    if (p->head != NULL)
        peer_connect(p);
}

static struct peer *peer_find(struct chan_transport *t, uint64_t id)
{
    for (struct peer *p = t->peers; p != NULL; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void peer_closed(uv_handle_t *h)
{
    struct peer *p = h->data;
    struct chan_transport *t = p->t;
    swm_free(p);
    transport_unref(t);
}

static void peer_remove(struct chan_transport *t, struct peer *p)
{
    for (struct peer **pp = &t->peers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    if (p->conn != NULL)
        out_conn_drop(p->conn);
    peer_drop_queue(p);
    uv_close((uv_handle_t *)&p->timer, peer_closed);
}

static size_t peer_pending(const struct peer *p)
{
    size_t n = p->queued_bytes;
    if (p->state == PEER_CONNECTED)
        n += chan_conn_write_pending(p->conn->conn);
    return n;
}

static int chan_tr_send(struct raft_transport *base, uint64_t to, const void *frame, size_t len)
{
    struct chan_transport *t = to_chan(base);
    if (t->closing)
        return SWM_ESHUTDOWN;
    if (len == 0 || len > t->max_frame)
        return -EMSGSIZE;
    struct peer *p = peer_find(t, to);
    if (p == NULL)
        return SWM_ENOTFOUND;
    size_t pending = peer_pending(p);
    if (pending > 0 && pending + len > t->limits.peer_queue_bytes)
        return -ENOBUFS;
    if (p->state == PEER_CONNECTED && p->head == NULL) {
        struct swm_err err = {0};
        int rc = chan_conn_send(p->conn->conn, frame, len, &err);
        if (rc == 0)
            return 0;
        if (rc == -ENOMEM)
            return rc;
        if (rc != -ENOBUFS) {
            /* The connection is closing or failed: the frame is lost like
             * one in flight, and the next send reconnects. */
            peer_fail(p, err.msg, rc);
            return 0;
        }
        /* The channel pushed back before our bound: queue for `drain`. */
    }
    struct out_frame *f = swm_malloc(sizeof(*f) + len);
    if (f == NULL)
        return -ENOMEM;
    f->next = NULL;
    f->len = len;
    memcpy(f->bytes, frame, len);
    p->queued_bytes += len;
    if (p->tail != NULL)
        p->tail->next = f;
    else
        p->head = f;
    p->tail = f;
    if (p->state == PEER_IDLE)
        peer_connect(p);
    return 0;
}

/* --- inbound ------------------------------------------------------------ */

static void in_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct chan_transport *t = arg;
    t->refs++; /* `closed` is owed from now on */
    struct in_conn *c = swm_calloc(1, sizeof(*c));
    if (c == NULL || t->closing) {
        swm_free(c);
        swm_log_warn("raft chan: refusing connection remote=%s reason=\"%s\"",
                     chan_conn_remote(conn), t->closing ? "closing" : "out of memory");
        chan_conn_close(conn);
        return;
    }
    snprintf(c->node_id, sizeof(c->node_id), "%s", peer->node_id);
    c->raft_id = t->id_of != NULL ? t->id_of(peer->node_id, t->id_arg) : 0;
    chan_conn_set_user(conn, c);
    swm_log_debug("raft chan: peer connected remote=%s node=%s", chan_conn_remote(conn),
                  c->node_id);
}

static void in_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct chan_transport *t = arg;
    struct in_conn *c = chan_conn_user(conn);
    if (c == NULL || t->closing)
        return;
    uint64_t from = 0;
    if (c->raft_id != 0 && (frame_from(data, len, &from) < 0 || from != c->raft_id)) {
        swm_log_warn("raft chan: frame from another member, closing remote=%s node=%s "
                     "want=%" PRIu64 " from=%" PRIu64,
                     chan_conn_remote(conn), c->node_id, c->raft_id, from);
        chan_conn_close(conn);
        return;
    }
    if (t->base.recv != NULL)
        t->base.recv(t->base.recv_arg, data, len);
}

static void in_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct chan_transport *t = arg;
    struct in_conn *c = chan_conn_user(conn);
    if (c != NULL && status != 0 && status != SWM_ESHUTDOWN)
        swm_log_debug("raft chan: inbound connection ended remote=%s node=%s reason=\"%s\"",
                      chan_conn_remote(conn), c->node_id, reason);
    swm_free(c);
    transport_unref(t);
}

/* --- lifetime ----------------------------------------------------------- */

static void chan_tr_close(struct raft_transport *base)
{
    struct chan_transport *t = to_chan(base);
    if (t->closing)
        return;
    t->closing = true;
    while (t->peers != NULL)
        peer_remove(t, t->peers);
    chan_listener_close(t->listener);
    t->listener = NULL;
    transport_unref(t);
}

static const struct raft_transport_ops chan_ops = {
    .send = chan_tr_send,
    .close = chan_tr_close,
};

int raft_chan_transport_open(uv_loop_t *loop, uint64_t self_id, const char *listen_addr,
                             const struct chan_config *cfg, struct raft_transport **out,
                             struct swm_err *err)
{
    if (self_id == 0)
        return swm_err_set(err, -EINVAL, "raft chan: member id 0");
    if (cfg == NULL || cfg->identity == NULL || cfg->cert == NULL || cfg->root_pk == NULL)
        return swm_err_set(err, -EINVAL,
                           "raft chan: the channel needs a key, certificate and root");
    if (cfg->cert->role != CA_ROLE_MANAGER)
        return swm_err_set(err, -EINVAL,
                           "raft chan: node %s holds a %s certificate, not a manager's",
                           cfg->cert->node_id, ca_role_name(cfg->cert->role));
    struct chan_transport *t = swm_calloc(1, sizeof(*t));
    if (t == NULL)
        return swm_err_set(err, -ENOMEM, "raft chan: out of memory");
    t->base.ops = &chan_ops;
    t->loop = loop;
    t->self_id = self_id;
    t->refs = 1;
    raft_chan_transport_set_limits(&t->base, &(struct raft_chan_limits){0});
    t->identity = *cfg->identity;
    t->cert = *cfg->cert;
    memcpy(t->root_pk, cfg->root_pk, CA_PUBKEY_LEN);
    t->cfg = *cfg;
    t->cfg.identity = &t->identity;
    t->cfg.cert = &t->cert;
    t->cfg.root_pk = t->root_pk;
    t->cfg.join_token = NULL;
    t->cfg.join_role = 0;
    t->cfg.join_secrets = NULL;
    t->cfg.peer_node_id = NULL;
    t->cfg.peer_roles = CA_ROLE_BIT(CA_ROLE_MANAGER);
    if (t->cfg.max_frame == 0)
        t->cfg.max_frame = RAFT_MESSAGE_MAX_SIZE;
    t->max_frame = t->cfg.max_frame;

    struct chan_conn_callbacks cbs = {
        .established = in_established,
        .data = in_data,
        .closed = in_closed,
        .arg = t,
    };
    struct chan_conn_limits lim = {.max_conns = RAFT_CHAN_MAX_INBOUND};
    struct swm_err lerr = {0};
    int rc = chan_listener_open(loop, listen_addr, &t->cfg, &lim, &cbs, &t->listener, &lerr);
    if (rc < 0) {
        transport_unref(t);
        return swm_err_set(err, rc, "raft chan: %s", lerr.msg);
    }
    t->port = chan_listener_port(t->listener);
    *out = &t->base;
    return 0;
}

int raft_chan_transport_port(const struct raft_transport *t)
{
    return container_of(t, const struct chan_transport, base)->port;
}

void raft_chan_transport_set_limits(struct raft_transport *base, const struct raft_chan_limits *l)
{
    struct chan_transport *t = to_chan(base);
    t->limits.peer_queue_bytes =
        l->peer_queue_bytes ? l->peer_queue_bytes : RAFT_CHAN_PEER_QUEUE_BYTES;
}

int raft_chan_transport_bind_ids(struct raft_transport *base, raft_chan_id_fn id_of, void *arg)
{
    struct chan_transport *t = to_chan(base);
    if (id_of != NULL && id_of(t->cert.node_id, arg) != t->self_id)
        return -EINVAL;
    t->id_of = id_of;
    t->id_arg = arg;
    return 0;
}

/* Points p at a new address: the old connection and any pending attempt
 * go; waiting frames are sent to the new address right away. */
static void peer_readdress(struct peer *p, const struct sockaddr_storage *sa, const char *addr)
{
    p->sa = *sa;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    if (p->conn != NULL)
        out_conn_drop(p->conn);
    uv_timer_stop(&p->timer);
    p->state = PEER_IDLE;
    p->backoff_ms = BACKOFF_MIN_MS;
    if (p->head != NULL)
        peer_connect(p);
}

int raft_chan_transport_set_peer(struct raft_transport *base, uint64_t id, const char *addr)
{
    struct chan_transport *t = to_chan(base);
    struct sockaddr_storage sa;
    if (t->closing)
        return SWM_ESHUTDOWN;
    if (id == 0 || addr == NULL || swm_addr_parse(addr, &sa) < 0 || strlen(addr) >= SWM_ADDR_STRLEN)
        return -EINVAL;
    struct peer *p = peer_find(t, id);
    if (p != NULL) {
        if (!same_addr(&p->sa, &sa))
            peer_readdress(p, &sa, addr);
        return 0;
    }
    p = swm_calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->t = t;
    p->id = id;
    p->sa = sa;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->state = PEER_IDLE;
    p->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(t->loop, &p->timer);
    p->timer.data = p;
    t->refs++;
    p->next = t->peers;
    t->peers = p;
    return 0;
}

int raft_chan_transport_remove_peer(struct raft_transport *base, uint64_t id)
{
    struct chan_transport *t = to_chan(base);
    struct peer *p = peer_find(t, id);
    if (p == NULL)
        return SWM_ENOTFOUND;
    peer_remove(t, p);
    return 0;
}
