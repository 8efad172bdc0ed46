/* The cluster port (port.h, docs/protocol.md "Cluster port").
 *
 * Ownership: the listener reports every connection to the port. On
 * `established` (or `join_request`) the port gives the connection
 * callbacks of its own whose arg is a `port_conn`, so that each
 * connection's state reaches its callbacks without a lookup; it keeps them
 * until the service (or join handler) takes the connection over with
 * chan_conn_set_callbacks, which the port sees by looking at
 * chan_conn_callbacks after the handler returns. Connections waiting for
 * their hello are on a list that a sweep timer checks against their
 * deadlines.
 *
 * Lifetime: the port holds one reference for itself (dropped by
 * chan_port_close), one for its sweep timer (dropped in the timer's close
 * callback) and one per connection it owns (dropped on hand-over or in its
 * `closed`, which conn.h promises exactly once, also after the listener has
 * closed). It frees itself when the last goes. */
#include "net/transport/port.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"

#define HELLO_VERSION 1
#define HELLO_LEN 2
#define SWEEP_MIN_MS 5
#define SWEEP_MAX_MS 1000
#define REASON_LEN 160
/* Refusal warnings: at most WARN_BURST per second, the rest counted (like
 * the listener's rejections in conn.c), so that a peer reconnecting in a
 * loop cannot grow the daemon's log. */
#define WARN_BURST 10

struct port_service {
    chan_port_accept_fn accept; /* NULL: not offered */
    unsigned roles;
    void *arg;
};

/* A connection the port owns: past its handshake, not yet handed over. */
struct port_conn {
    struct chan_port *port;
    struct chan_conn *conn;
    struct port_conn *next, *prev; /* in port->waiting while `waiting` */
    bool waiting;                  /* for its hello */
    uint64_t deadline_ms;          /* uv_now of the hello deadline */
};

struct chan_port {
    uv_loop_t *loop;
    struct chan_listener *listener; /* NULL once closed */
    struct port_service services[CHAN_SERVICE_COUNT];
    chan_port_join_fn join;
    void *join_arg;
    uint64_t hello_timeout_ms;
    uv_timer_t sweep;
    struct port_conn *waiting;
    unsigned refs;
    bool closing;
    uint64_t warn_window_ms;
    unsigned warned, suppressed;
};

static const char *service_name(unsigned svc)
{
    switch (svc) {
    case CHAN_SERVICE_RAFT:
        return "raft";
    case CHAN_SERVICE_DISPATCHER:
        return "dispatcher";
    case CHAN_SERVICE_CONTROL:
        return "control";
    case CHAN_SERVICE_CA:
        return "ca";
    }
    return "unknown";
}

static bool valid_service(unsigned svc)
{
    return svc >= CHAN_SERVICE_RAFT && svc < CHAN_SERVICE_COUNT;
}

static void port_unref(struct chan_port *p)
{
    if (--p->refs > 0)
        return;
    swm_free(p);
}

static uint64_t hello_timeout_ms(const struct chan_config *cfg)
{
    int64_t ns =
        cfg->handshake_timeout > 0 ? cfg->handshake_timeout : CHAN_HANDSHAKE_TIMEOUT_DEFAULT;
    return (uint64_t)((ns + 999999) / 1000000);
}

/* Logs one refusal and closes the connection; its `closed` comes later. */
__attribute__((format(printf, 3, 4))) static void
refuse(struct chan_port *p, struct chan_conn *conn, const char *fmt, ...)
{
    char reason[REASON_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    chan_conn_close(conn);
    uint64_t now = uv_now(p->loop);
    if (now - p->warn_window_ms >= 1000) {
        p->warn_window_ms = now;
        p->warned = 0;
    }
    if (p->warned == WARN_BURST) {
        p->suppressed++;
        return;
    }
    p->warned++;
    const struct ca_cert *peer = chan_peer_cert(chan_conn_channel(conn));
    swm_log_warn("cluster port: connection refused remote=%s node=%s reason=\"%s\" "
                 "suppressed_before=%u",
                 chan_conn_remote(conn), peer != NULL ? peer->node_id : "-", reason, p->suppressed);
    p->suppressed = 0;
}

static void unlink_waiting(struct port_conn *pc)
{
    if (!pc->waiting)
        return;
    pc->waiting = false;
    if (pc->prev != NULL)
        pc->prev->next = pc->next;
    else
        pc->port->waiting = pc->next;
    if (pc->next != NULL)
        pc->next->prev = pc->prev;
    pc->next = pc->prev = NULL;
    if (pc->port->waiting == NULL)
        uv_timer_stop(&pc->port->sweep);
}

static void sweep_tick(uv_timer_t *timer)
{
    struct chan_port *p = timer->data;
    uint64_t now = uv_now(p->loop);
    struct port_conn *next;
    for (struct port_conn *pc = p->waiting; pc != NULL; pc = next) {
        next = pc->next;
        if (now < pc->deadline_ms)
            continue;
        unlink_waiting(pc);
        refuse(p, pc->conn, "no service hello within %" PRIu64 " ms", p->hello_timeout_ms);
    }
}

/* Whether `pc`'s connection still reports to the port: a handler that
 * returns without chan_conn_set_callbacks has not taken it over. */
static bool still_ours(const struct port_conn *pc)
{
    return chan_conn_callbacks(pc->conn)->arg == pc;
}

/* After a service's accept or the join handler returned: frees our state
 * if the connection was taken over, else closes it (the handler broke its
 * contract, or closed it itself, which chan_conn_close tolerates). */
static void after_handler(struct port_conn *pc)
{
    if (still_ours(pc)) {
        chan_conn_close(pc->conn);
        return;
    }
    struct chan_port *p = pc->port;
    swm_free(pc);
    port_unref(p);
}

/* ------------------------------------------- an owned connection -- */

static void owned_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct port_conn *pc = arg;
    struct chan_port *p = pc->port;
    if (!pc->waiting)
        return; /* refused: nothing more is read */
    unlink_waiting(pc);
    const struct ca_cert *peer = chan_peer_cert(chan_conn_channel(conn));
    if (len != HELLO_LEN) {
        refuse(p, conn, "no service hello: the first message has %zu bytes, not %d", len,
               HELLO_LEN);
        return;
    }
    if (data[0] != HELLO_VERSION) {
        refuse(p, conn, "unsupported service hello version %u", (unsigned)data[0]);
        return;
    }
    unsigned svc = data[1];
    if (!valid_service(svc)) {
        refuse(p, conn, "unknown service %u", svc);
        return;
    }
    const struct port_service *s = &p->services[svc];
    if (s->accept == NULL) {
        refuse(p, conn, "service %s is not offered", service_name(svc));
        return;
    }
    if (peer == NULL) {
        refuse(p, conn, "no verified peer certificate");
        return;
    }
    if ((s->roles & CA_ROLE_BIT(peer->role)) == 0) {
        refuse(p, conn, "role %s may not use service %s", ca_role_name(peer->role),
               service_name(svc));
        return;
    }
    swm_log_debug("cluster port: connection accepted remote=%s node=%s service=%s",
                  chan_conn_remote(conn), peer->node_id, service_name(svc));
    s->accept(conn, peer, s->arg);
    after_handler(pc);
}

static void owned_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct port_conn *pc = arg;
    struct chan_port *p = pc->port;
    unlink_waiting(pc);
    swm_free(pc);
    port_unref(p);
}

/* Makes the port the owner of a connection the listener just reported.
 * Returns NULL out of memory (the connection is then closed, and its
 * `closed` reaches port_conn_closed). */
static struct port_conn *own(struct chan_port *p, struct chan_conn *conn)
{
    p->refs++;
    struct port_conn *pc = swm_calloc(1, sizeof(*pc));
    if (pc == NULL) {
        refuse(p, conn, "out of memory");
        return NULL;
    }
    pc->port = p;
    pc->conn = conn;
    struct chan_conn_callbacks cbs = {
        .data = owned_data,
        .closed = owned_closed,
        .arg = pc,
    };
    chan_conn_set_callbacks(conn, &cbs);
    return pc;
}

/* ------------------------------------------ the listener's callbacks -- */

static void port_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct chan_port *p = arg;
    struct port_conn *pc = own(p, conn);
    if (pc == NULL)
        return;
    pc->waiting = true;
    pc->deadline_ms = uv_now(p->loop) + p->hello_timeout_ms;
    pc->next = p->waiting;
    if (p->waiting != NULL)
        p->waiting->prev = pc;
    p->waiting = pc;
    if (!uv_is_active((uv_handle_t *)&p->sweep)) {
        uint64_t every = p->hello_timeout_ms / 4;
        if (every < SWEEP_MIN_MS)
            every = SWEEP_MIN_MS;
        if (every > SWEEP_MAX_MS)
            every = SWEEP_MAX_MS;
        uv_timer_start(&p->sweep, sweep_tick, every, every);
    }
}

static void port_join_request(struct chan_conn *conn, const uint8_t pk[CA_PUBKEY_LEN], int role,
                              void *arg)
{
    struct chan_port *p = arg;
    struct port_conn *pc = own(p, conn);
    if (pc == NULL)
        return;
    if (p->join == NULL) {
        refuse(p, conn, "this node does not accept joins");
        return;
    }
    p->join(conn, pk, role, p->join_arg);
    after_handler(pc);
}

/* Only for a connection `own` could not take (out of memory). */
static void port_conn_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    port_unref(arg);
}

/* ------------------------------------------------------------- API -- */

int chan_port_open(uv_loop_t *loop, const char *addr, const struct chan_config *cfg,
                   const struct chan_conn_limits *limits, struct chan_port **out,
                   struct swm_err *err)
{
    struct chan_port *p = swm_calloc(1, sizeof(*p));
    if (p == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory opening the cluster port");
    p->loop = loop;
    p->hello_timeout_ms = hello_timeout_ms(cfg);
    struct chan_conn_callbacks cbs = {
        .established = port_established,
        .closed = port_conn_closed,
        .join_request = port_join_request,
        .arg = p,
    };
    int rc = chan_listener_open(loop, addr, cfg, limits, &cbs, &p->listener, err);
    if (rc < 0) {
        swm_free(p);
        return rc;
    }
    uv_timer_init(loop, &p->sweep);
    p->sweep.data = p;
    p->refs = 2; /* itself and the sweep timer */
    *out = p;
    return 0;
}

int chan_port_offer(struct chan_port *p, enum chan_service svc, chan_port_accept_fn accept,
                    unsigned roles, void *arg)
{
    if (!valid_service((unsigned)svc))
        return -EINVAL;
    p->services[svc] =
        accept != NULL ? (struct port_service){accept, roles, arg} : (struct port_service){0};
    return 0;
}

void chan_port_set_join(struct chan_port *p, chan_port_join_fn join, void *arg)
{
    p->join = join;
    p->join_arg = join != NULL ? arg : NULL;
}

int chan_port_set_config(struct chan_port *p, const struct chan_config *cfg, struct swm_err *err)
{
    int rc = chan_listener_set_config(p->listener, cfg, err);
    if (rc < 0)
        return rc;
    p->hello_timeout_ms = hello_timeout_ms(cfg);
    return 0;
}

int chan_port_port(const struct chan_port *p)
{
    return chan_listener_port(p->listener);
}

static void sweep_closed(uv_handle_t *h)
{
    port_unref(h->data);
}

void chan_port_close(struct chan_port *p)
{
    if (p == NULL || p->closing)
        return;
    p->closing = true;
    /* Closes every connection it accepted, handed over or not; those we
     * own report `closed` to owned_closed, later, from the loop. */
    chan_listener_close(p->listener);
    p->listener = NULL;
    uv_close((uv_handle_t *)&p->sweep, sweep_closed);
    port_unref(p);
}

int chan_service_hello(struct chan_conn *conn, enum chan_service svc, struct swm_err *err)
{
    if (!valid_service((unsigned)svc))
        return swm_err_set(err, -EINVAL, "%d is not a service", (int)svc);
    uint8_t hello[HELLO_LEN] = {HELLO_VERSION, (uint8_t)svc};
    return chan_conn_send(conn, hello, sizeof(hello), err);
}
