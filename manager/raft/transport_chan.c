/* The raft transport over the secure channel, on a cluster port
 * (transport_chan.h).
 *
 * Lifetime: the transport holds one reference for itself (dropped by
 * close), one per peer (dropped in the close callback of the peer's backoff
 * timer) and one per connection it has seen (dropped in that connection's
 * `closed` callback, which conn.h promises exactly once: for an outbound
 * connection once chan_conn_connect returned 0, for an inbound one once
 * in_accept took it over from the port with chan_conn_set_callbacks). An
 * inbound connection in_accept refuses is closed without being taken over:
 * its `closed` goes to the port. Close withdraws the service, so the port
 * hands over nothing after it, and closes the inbound connections we hold:
 * their `closed` still comes to us, later, from the loop (with
 * SWM_ESHUTDOWN if the caller closes the port meanwhile, which it may only
 * do after closing us: we never touch the port after our close). The
 * transport frees itself when the last reference goes. */
#include "manager/raft/transport_chan.h"

#include "common/alloc.h"
#include "common/log.h"
#include "manager/raft/peers.h"
#include "manager/raft/raft.h"
#include "net/transport/conn.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct chan_transport;

/* A peer's connection. */
struct out_conn {
    struct chan_transport *t;
    struct raft_peer *peer; /* NULL once detached (the connection is closing) */
    struct chan_conn *conn;
};

/* An inbound connection, from the moment we took it over from the port. */
struct in_conn {
    struct chan_transport *t;
    struct chan_conn *conn;
    struct in_conn *next, *prev;  /* in t->inbound */
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
    bool closing;
    unsigned refs;
    struct chan_port *port; /* borrowed; not used once closing */
    struct in_conn *inbound;
    unsigned n_inbound;
    struct raft_peers peers; /* a peer is CONNECTED once established */
    /* Our side of every outbound channel; pointers refer into this struct. */
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

static struct chan_transport *peers_chan(struct raft_peers *s)
{
    return container_of(s, struct chan_transport, peers);
}

/* The peer has let go of c: close it; `closed` follows from the loop and
 * only frees c. */
static void out_conn_drop(struct raft_peer *p, void *conn)
{
    struct out_conn *c = conn;
    c->peer = NULL;
    chan_conn_close(c->conn);
}

/* The channel copies f unless it pushes back (-ENOBUFS: `drain` flushes
 * again). */
static bool out_write(struct raft_peer *p, struct raft_peer_frame *f)
{
    struct out_conn *c = p->conn;
    struct swm_err err = {0};
    int rc = chan_conn_send(c->conn, f->bytes, f->size, &err);
    if (rc == -ENOBUFS)
        return false;
    raft_peer_frame_done(p, f);
    if (rc < 0)
        raft_peer_fail(p, err.msg, rc);
    return true;
}

static void out_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct out_conn *c = chan_conn_user(conn);
    struct raft_peer *p = c->peer;
    if (p == NULL)
        return;
    struct chan_transport *t = peers_chan(p->set);
    if (t->id_of != NULL && t->id_of(peer->node_id, t->id_arg) != p->id) {
        swm_log_warn("raft chan: peer certificate names another member peer=%" PRIu64
                     " addr=%s node=%s",
                     p->id, p->addr, peer->node_id);
        raft_peer_fail(p, "certificate of another node", SWM_EAUTH);
        return;
    }
    /* The hello goes before any frame: frames wait in the peer's queue
     * until raft_peer_connected flushes them. */
    struct swm_err err = {0};
    int rc = chan_service_hello(conn, CHAN_SERVICE_RAFT, &err);
    if (rc < 0) {
        raft_peer_fail(p, err.msg, rc);
        return;
    }
    swm_log_debug("raft chan: connected peer=%" PRIu64 " addr=%s node=%s", p->id, p->addr,
                  peer->node_id);
    raft_peer_connected(p);
}

/* The receiver never sends on our connection: data means a confused peer. */
static void out_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct out_conn *c = chan_conn_user(conn);
    if (c->peer == NULL)
        return;
    swm_log_warn("raft chan: peer wrote on an outbound connection peer=%" PRIu64 " addr=%s",
                 c->peer->id, c->peer->addr);
    raft_peer_fail(c->peer, "unexpected data", SWM_EPROTO);
}

static void out_drain(struct chan_conn *conn, void *arg)
{
    struct out_conn *c = chan_conn_user(conn);
    if (c->peer != NULL)
        raft_peer_flush(c->peer);
}

static void out_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct out_conn *c = chan_conn_user(conn);
    struct chan_transport *t = arg;
    struct raft_peer *p = c->peer;
    if (p != NULL) {
        p->conn = NULL;
        c->peer = NULL;
        raft_peer_fail(p, reason, status != 0 ? status : -ECONNRESET);
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

static void out_connect(struct raft_peer *p)
{
    struct chan_transport *t = peers_chan(p->set);
    struct out_conn *c = swm_calloc(1, sizeof(*c));
    if (c == NULL) {
        raft_peer_fail(p, "connect", -ENOMEM);
        return;
    }
    struct chan_conn_callbacks cbs = out_cbs;
    cbs.arg = t;
    struct chan_conn_limits lim = {.max_write_bytes = t->limits.peer_queue_bytes};
    struct swm_err err = {0};
    int rc = chan_conn_connect(t->loop, p->addr, &t->cfg, &lim, &cbs, &c->conn, &err);
    if (rc < 0) {
        swm_free(c);
        raft_peer_fail(p, err.msg, rc);
        return;
    }
    /* Callbacks come from the loop, never from inside connect. */
    chan_conn_set_user(c->conn, c);
    c->t = t;
    c->peer = p;
    t->refs++;
    p->conn = c;
    p->state = RAFT_PEER_CONNECTING;
}

/* The encrypted bytes the channel is still writing count against the bound
 * as well. */
static size_t out_pending(const struct raft_peer *p)
{
    const struct out_conn *c = p->conn;
    return p->state == RAFT_PEER_CONNECTED ? chan_conn_write_pending(c->conn) : 0;
}

static void peers_ref(struct raft_peers *s)
{
    peers_chan(s)->refs++;
}

static void peers_unref(struct raft_peers *s)
{
    transport_unref(peers_chan(s));
}

static const struct raft_peer_ops chan_peer_ops = {
    .connect = out_connect,
    .write = out_write,
    .drop = out_conn_drop,
    .pending = out_pending,
    .ref = peers_ref,
    .unref = peers_unref,
};

static int chan_tr_send(struct raft_transport *base, uint64_t to, const void *frame, size_t len)
{
    struct chan_transport *t = to_chan(base);
    if (t->closing)
        return SWM_ESHUTDOWN;
    if (len == 0 || len > t->max_frame)
        return -EMSGSIZE;
    struct raft_peer *p;
    int rc = raft_peers_reserve(&t->peers, to, len, &p);
    if (rc < 0)
        return rc;
    if (p->state == RAFT_PEER_CONNECTED && p->head == NULL) {
        struct out_conn *c = p->conn;
        struct swm_err err = {0};
        rc = chan_conn_send(c->conn, frame, len, &err);
        if (rc == 0)
            return 0;
        if (rc == -ENOMEM)
            return rc;
        if (rc != -ENOBUFS) {
            /* The connection is closing or failed: the frame is lost like
             * one in flight, and the next send reconnects. */
            raft_peer_fail(p, err.msg, rc);
            return 0;
        }
        /* The channel pushed back before our bound: queue for `drain`. */
    }
    struct raft_peer_frame *f = raft_peer_frame_new(frame, len, 0);
    if (f == NULL)
        return -ENOMEM;
    raft_peer_push(p, f);
    return 0;
}

/* --- inbound ------------------------------------------------------------ */

static void in_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct in_conn *c = arg;
    struct chan_transport *t = c->t;
    if (t->closing)
        return;
    if (len > t->max_frame) {
        swm_log_warn("raft chan: frame over the limit, closing remote=%s node=%s len=%zu "
                     "max=%zu",
                     chan_conn_remote(conn), c->node_id, len, t->max_frame);
        chan_conn_close(conn);
        return;
    }
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
    struct in_conn *c = arg;
    struct chan_transport *t = c->t;
    if (status != 0 && status != SWM_ESHUTDOWN)
        swm_log_debug("raft chan: inbound connection ended remote=%s node=%s reason=\"%s\"",
                      chan_conn_remote(conn), c->node_id, reason);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        t->inbound = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    t->n_inbound--;
    swm_free(c);
    transport_unref(t);
}

/* The port's accept callback: a manager's connection past its RAFT hello.
 * We take it over, or close it and leave its `closed` to the port. */
static void in_accept(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct chan_transport *t = arg;
    struct in_conn *c = NULL;
    const char *why = NULL;
    if (t->closing)
        why = "closing";
    else if (t->n_inbound >= t->limits.max_inbound)
        why = "too many inbound connections";
    else if ((c = swm_calloc(1, sizeof(*c))) == NULL)
        why = "out of memory";
    if (why != NULL) {
        swm_log_warn("raft chan: refusing connection remote=%s node=%s reason=\"%s\"",
                     chan_conn_remote(conn), peer->node_id, why);
        chan_conn_close(conn);
        return;
    }
    c->t = t;
    c->conn = conn;
    snprintf(c->node_id, sizeof(c->node_id), "%s", peer->node_id);
    c->raft_id = t->id_of != NULL ? t->id_of(peer->node_id, t->id_arg) : 0;
    c->next = t->inbound;
    if (t->inbound != NULL)
        t->inbound->prev = c;
    t->inbound = c;
    t->n_inbound++;
    t->refs++; /* `closed` is owed to us from now on */
    struct chan_conn_callbacks cbs = {
        .data = in_data,
        .closed = in_closed,
        .arg = c,
    };
    chan_conn_set_callbacks(conn, &cbs);
    swm_log_debug("raft chan: peer connected remote=%s node=%s", chan_conn_remote(conn),
                  c->node_id);
}

/* --- lifetime ----------------------------------------------------------- */

static void chan_tr_close(struct raft_transport *base)
{
    struct chan_transport *t = to_chan(base);
    if (t->closing)
        return;
    t->closing = true;
    /* The port hands us nothing more; the connections it handed over stay
     * ours until their `closed`, which chan_conn_close brings from the
     * loop. */
    chan_port_offer(t->port, CHAN_SERVICE_RAFT, NULL, 0, NULL);
    t->port = NULL;
    for (struct in_conn *c = t->inbound; c != NULL; c = c->next)
        chan_conn_close(c->conn);
    raft_peers_clear(&t->peers);
    transport_unref(t);
}

static const struct raft_transport_ops chan_ops = {
    .send = chan_tr_send,
    .close = chan_tr_close,
};

int raft_chan_transport_open(uv_loop_t *loop, uint64_t self_id, struct chan_port *port,
                             const struct chan_config *cfg, struct raft_transport **out,
                             struct swm_err *err)
{
    if (self_id == 0)
        return swm_err_set(err, -EINVAL, "raft chan: member id 0");
    if (port == NULL)
        return swm_err_set(err, -EINVAL, "raft chan: no cluster port");
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
    t->peers.ops = &chan_peer_ops;
    t->peers.loop = loop;
    t->peers.log_name = "raft chan";
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
    t->cfg.side = CHAN_INITIATOR;
    /* A bad configuration fails here rather than at every dial: check it
     * the way chan_conn_connect will, with a throwaway channel. */
    struct chan *probe = NULL;
    struct swm_err cerr = {0};
    int rc = chan_new(&probe, &t->cfg, &cerr);
    chan_free(probe);
    if (rc < 0) {
        transport_unref(t);
        return swm_err_set(err, rc, "raft chan: %s", cerr.msg);
    }
    /* After every check that can fail: a failed open offers nothing. */
    rc = chan_port_offer(port, CHAN_SERVICE_RAFT, in_accept, CA_ROLE_BIT(CA_ROLE_MANAGER), t);
    if (rc < 0) {
        transport_unref(t);
        return swm_err_set(err, rc, "raft chan: cannot offer the raft service");
    }
    t->port = port;
    *out = &t->base;
    return 0;
}

void raft_chan_transport_set_limits(struct raft_transport *base, const struct raft_chan_limits *l)
{
    struct chan_transport *t = to_chan(base);
    t->limits.peer_queue_bytes =
        l->peer_queue_bytes ? l->peer_queue_bytes : RAFT_CHAN_PEER_QUEUE_BYTES;
    t->peers.queue_bytes = t->limits.peer_queue_bytes;
    t->limits.max_inbound = l->max_inbound ? l->max_inbound : RAFT_CHAN_MAX_INBOUND;
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

int raft_chan_transport_set_peer(struct raft_transport *base, uint64_t id, const char *addr)
{
    struct chan_transport *t = to_chan(base);
    if (t->closing)
        return SWM_ESHUTDOWN;
    return raft_peers_set(&t->peers, id, addr);
}

int raft_chan_transport_remove_peer(struct raft_transport *base, uint64_t id)
{
    return raft_peers_remove(&to_chan(base)->peers, id);
}

int raft_chan_transport_set_cert(struct raft_transport *base, const struct ca_cert *cert)
{
    struct chan_transport *t = to_chan(base);
    if (strcmp(cert->node_id, t->cert.node_id) != 0 ||
        memcmp(cert->node_pk, t->cert.node_pk, CA_PUBKEY_LEN) != 0)
        return -EINVAL;
    t->cert = *cert;
    return 0;
}
