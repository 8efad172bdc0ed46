/* A node's agent's session with the dispatcher of the leading manager,
 * over the secure channel (service "dispatcher" of the cluster port,
 * net/transport/port.h). Every node's agent uses one, a manager's own
 * included: the dispatcher runs on the leader only, and a manager that does
 * not lead does not offer the service, so a session that reaches it is
 * refused and the next manager is tried.
 *
 * The session dials the managers in turn: a worker those of its node.conf,
 * a manager those the store names (ManagerStatus.addr). Once the channel is
 * up it sends the service hello and hands the agent a connection
 * (agent_connect: register, then every task's state). When the connection
 * goes, the agent is told (agent_disconnect) and the next manager is
 * dialed after a backoff that doubles from 100 ms to 5 s and resets once a
 * session was established.
 *
 * Lifetime: the session owns at most one connection; closing the session
 * closes it, and the connection's `closed` (always from the loop) frees the
 * session if it was closed meanwhile. */
#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/internal.h"
#include "net/transport/port.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct agent_session {
    struct node_daemon *nd;
    struct chan_conn *conn; /* NULL between connections */
    bool established;
    bool closing;
    bool timer_closed;
    uv_timer_t retry;
    uint64_t backoff_ms;
    size_t next_manager; /* index in nd->conf.managers */
    char manager[SWM_ADDR_STRLEN];
};

static void session_free(struct agent_session *s)
{
    if (s->conn == NULL && s->timer_closed)
        swm_free(s);
}

static void send_to_dispatcher(void *arg, const uint8_t *frame, size_t len)
{
    struct agent_session *s = arg;
    struct swm_err err = {0};
    if (s->conn == NULL || chan_conn_send(s->conn, frame, len, &err) == 0)
        return;
    /* A lost report would never be sent again on this connection: start a
     * new session, which reports every task's state. */
    swm_log_warn("session: cannot send to manager %s (%s); reconnecting", s->manager, err.msg);
    chan_conn_close(s->conn);
}

static void on_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct agent_session *s = arg;
    struct swm_err err = {0};
    if (chan_service_hello(conn, CHAN_SERVICE_DISPATCHER, &err) < 0) {
        swm_log_warn("session: manager %s: %s", s->manager, err.msg);
        chan_conn_close(conn);
        return;
    }
    s->established = true;
    s->backoff_ms = BACKOFF_MIN_MS;
    swm_log_info("session: connected to manager %s node=%s", s->manager, peer->node_id);
    agent_connect(s->nd->agent, send_to_dispatcher, s);
}

static void on_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct agent_session *s = arg;
    if (!s->closing)
        agent_receive(s->nd->agent, data, len);
}

static void dial(uv_timer_t *timer);

static void on_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct agent_session *s = arg;
    s->conn = NULL;
    if (s->closing) {
        session_free(s);
        return;
    }
    if (s->established)
        agent_disconnect(s->nd->agent);
    swm_log_warn("session: %s manager %s: %s; retrying in %" PRIu64 " ms",
                 s->established ? "lost" : "cannot reach", s->manager,
                 status == 0 ? "connection closed" : reason, s->backoff_ms);
    s->established = false;
    uv_timer_start(&s->retry, dial, s->backoff_ms, 0);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* A manager's view of the managers: their addresses in the store. */
static int store_managers(struct node_daemon *nd, struct node_conf *out)
{
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0;
    int rc = store_read_begin(nd->store, &r, NULL);
    if (rc == 0)
        rc = store_list_nodes(r, &nodes, &n);
    store_read_end(r);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Swarmc__ManagerStatus *m = nodes[i]->manager_status;
        if (nodes[i]->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER && m != NULL &&
            m->addr != NULL && strlen(m->addr) < SWM_ADDR_STRLEN)
            node_conf_add_manager(out, m->addr);
    }
    if (rc == 0)
        store_free_list(nodes, n);
    return rc;
}

int daemon__manager_addrs(struct node_daemon *nd, size_t index, char out[SWM_ADDR_STRLEN])
{
    struct node_conf managers = {0};
    const struct node_conf *list = &nd->conf;
    if (!nd->worker) {
        if (store_managers(nd, &managers) < 0)
            return -ENOENT;
        list = &managers;
    }
    if (list->n_managers == 0)
        return -ENOENT;
    snprintf(out, SWM_ADDR_STRLEN, "%s", list->managers[index % list->n_managers]);
    return 0;
}

/* Picks the next manager to dial into s->manager. Returns 0 or -ENOENT if
 * none is known. */
static int next_manager(struct agent_session *s)
{
    return daemon__manager_addrs(s->nd, s->next_manager++, s->manager);
}

static void dial(uv_timer_t *timer)
{
    struct agent_session *s = timer->data;
    struct node_daemon *nd = s->nd;
    if (next_manager(s) < 0) {
        snprintf(s->manager, sizeof(s->manager), "(none known)");
        on_closed(NULL, -ENOENT, "no manager address is known", s);
        return;
    }
    struct chan_conn_callbacks cbs = {
        .established = on_established, .data = on_data, .closed = on_closed, .arg = s};
    struct swm_err err = {0};
    if (daemon__dial_manager(nd, s->manager, &cbs, &s->conn, &err) < 0) {
        s->conn = NULL;
        on_closed(NULL, err.code, err.msg, s);
    }
}

int daemon__session_open(struct node_daemon *nd, struct agent_session **out, struct swm_err *err)
{
    if (nd->worker && nd->conf.n_managers == 0)
        return swm_err_set(err, SWM_ECORRUPT,
                           "%s/" NODECONF_FILE " names no manager: this worker cannot reach the "
                           "swarm; leave it and join again",
                           nd->opts->data_dir != NULL ? nd->opts->data_dir : "the data dir");
    struct agent_session *s = swm_calloc(1, sizeof(*s));
    if (s == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    s->nd = nd;
    s->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(&nd->loop, &s->retry);
    s->retry.data = s;
    uv_timer_start(&s->retry, dial, 0, 0);
    *out = s;
    return 0;
}

static void retry_closed(uv_handle_t *handle)
{
    struct agent_session *s = handle->data;
    s->timer_closed = true;
    session_free(s);
}

void daemon__session_close(struct agent_session *s)
{
    if (s == NULL)
        return;
    s->closing = true;
    if (s->established)
        agent_disconnect(s->nd->agent);
    if (s->conn != NULL)
        chan_conn_close(s->conn);
    uv_close((uv_handle_t *)&s->retry, retry_closed);
}
