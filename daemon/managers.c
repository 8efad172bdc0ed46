/* A manager's raft membership (docs/architecture.md "Managers"):
 *
 *  - the raft node runs over the cluster port (service "raft", managers'
 *    certificates only, raft ids bound to node ids);
 *  - its peers are the managers the store names (ManagerStatus: raft id and
 *    address), kept up to date from store events;
 *  - a manager that joined starts with an empty store and asks the leader,
 *    over the control service, to add it (RaftJoin): the answer names the
 *    managers, so it can reply to the leader, which then brings it up to
 *    date as a learner and promotes it to voter;
 *  - the leader answers RaftJoin: it records the manager's raft id and
 *    address in its node object and starts the membership change. */
#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/internal.h"
#include "manager/raft/transport_chan.h"
#include "net/transport/port.h"
#include "store/raftlog.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define JOIN_RETRY_MIN_MS 200
#define JOIN_RETRY_MAX_MS 5000

static uint64_t raft_id_of(const char *node_id, void *arg)
{
    return daemon__raft_id(node_id);
}

/* ------------------------------------------------------------- peers -- */

static void set_peer(struct node_daemon *nd, const Swarmc__Node *node)
{
    const Swarmc__ManagerStatus *m = node->manager_status;
    if (node->role != SWARMC__NODE_ROLE__NODE_ROLE_MANAGER || m == NULL || !m->has_raft_id ||
        m->raft_id == daemon__raft_id(nd->node_id) || m->addr == NULL)
        return;
    int rc = raft_chan_transport_set_peer(nd->raft_transport, m->raft_id, m->addr);
    if (rc < 0)
        swm_log_warn("managers: cannot reach manager %s at %s: %s", node->id, m->addr,
                     swm_strerror(rc));
}

static void on_node_events(void *arg, const struct store_event *events, size_t n)
{
    struct node_daemon *nd = arg;
    for (size_t i = 0; i < n; i++) {
        if (events[i].kind == STORE_KIND_NODE &&
            events[i].action != SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE)
            set_peer(nd, (const Swarmc__Node *)events[i].object);
    }
}

static void load_peers(struct node_daemon *nd)
{
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0;
    if (store_read_begin(nd->store, &r, NULL) == 0 && store_list_nodes(r, &nodes, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            set_peer(nd, nodes[i]);
        store_free_list(nodes, n);
    }
    store_read_end(r);
}

/* --------------------------------------------- joining: the new manager -- */

struct raft_joiner {
    struct node_daemon *nd;
    struct chan_conn *conn;
    uv_timer_t retry;
    uint64_t backoff_ms;
    size_t attempt;
    bool done, closing, timer_closed;
};

static void joiner_try(uv_timer_t *timer);

static void joiner_maybe_free(struct raft_joiner *j)
{
    if (j->closing && j->conn == NULL && j->timer_closed)
        swm_free(j);
}

static void joiner_send_request(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct raft_joiner *j = arg;
    char addr[SWM_ADDR_STRLEN];
    daemon__manager_addr(&j->nd->conf, addr);
    Swarmc__RaftJoinRequest rj = SWARMC__RAFT_JOIN_REQUEST__INIT;
    rj.addr = addr;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_RAFT_JOIN;
    req.raft_join = &rj;
    struct swm_buf buf = {0};
    struct swm_err err = {0};
    int rc = chan_service_hello(conn, CHAN_SERVICE_CONTROL, &err);
    if (rc == 0 && (rc = proto_pack(&req.base, &buf)) < 0)
        swm_err_set(&err, rc, "out of memory");
    if (rc == 0)
        rc = chan_conn_send(conn, buf.data, buf.len, &err);
    swm_buf_free(&buf);
    if (rc < 0) {
        swm_log_warn("managers: raft join request not sent: %s", err.msg);
        chan_conn_close(conn);
    }
}

static void joiner_response(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct raft_joiner *j = arg;
    struct swm_err err = {0};
    Swarmc__ControlResponse *resp =
        PROTO_UNPACK(Swarmc__ControlResponse, swarmc__control_response, data, len, &err);
    if (resp != NULL && resp->code == 0 && resp->raft_join != NULL) {
        for (size_t i = 0; i < resp->raft_join->n_members; i++) {
            const Swarmc__RaftMember *m = resp->raft_join->members[i];
            if (m->raft_id != daemon__raft_id(j->nd->node_id) && m->addr != NULL)
                raft_chan_transport_set_peer(j->nd->raft_transport, m->raft_id, m->addr);
        }
        j->done = true;
        swm_log_info("managers: the leader is adding this manager to the raft membership");
    } else {
        swm_log_warn("managers: raft join refused: %s", resp == NULL ? err.msg
                                                        : resp->error != NULL && resp->code != 0
                                                            ? resp->error
                                                            : "no answer");
    }
    proto_free(resp);
    chan_conn_close(conn);
}

static void joiner_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct raft_joiner *j = arg;
    j->conn = NULL;
    if (j->closing) {
        joiner_maybe_free(j);
        return;
    }
    if (j->done)
        return;
    if (status != 0)
        swm_log_warn("managers: raft join: %s; retrying in %" PRIu64 " ms", reason, j->backoff_ms);
    uv_timer_start(&j->retry, joiner_try, j->backoff_ms, 0);
    j->backoff_ms = j->backoff_ms * 2 > JOIN_RETRY_MAX_MS ? JOIN_RETRY_MAX_MS : j->backoff_ms * 2;
}

static void joiner_try(uv_timer_t *timer)
{
    struct raft_joiner *j = timer->data;
    struct node_daemon *nd = j->nd;
    const char *addr = nd->conf.managers[j->attempt++ % nd->conf.n_managers];
    struct chan_conn_callbacks cbs = {.established = joiner_send_request,
                                      .data = joiner_response,
                                      .closed = joiner_closed,
                                      .arg = j};
    struct swm_err err = {0};
    if (daemon__dial_manager(nd, addr, &cbs, &j->conn, &err) < 0) {
        j->conn = NULL;
        joiner_closed(NULL, err.code, err.msg, j);
    }
}

static int joiner_start(struct node_daemon *nd, struct swm_err *err)
{
    if (nd->conf.n_managers == 0)
        return swm_err_set(err, SWM_ECORRUPT,
                           "this manager holds no raft state and its node.conf names no manager "
                           "to join: leave and join again");
    struct raft_joiner *j = swm_calloc(1, sizeof(*j));
    if (j == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    j->nd = nd;
    j->backoff_ms = JOIN_RETRY_MIN_MS;
    uv_timer_init(&nd->loop, &j->retry);
    j->retry.data = j;
    uv_timer_start(&j->retry, joiner_try, 0, 0);
    nd->raft_joiner = j;
    return 0;
}

static void joiner_timer_closed(uv_handle_t *handle)
{
    struct raft_joiner *j = handle->data;
    j->timer_closed = true;
    joiner_maybe_free(j);
}

static void joiner_stop(struct raft_joiner *j)
{
    if (j == NULL)
        return;
    j->closing = true;
    if (j->conn != NULL)
        chan_conn_close(j->conn);
    uv_close((uv_handle_t *)&j->retry, joiner_timer_closed);
}

/* ------------------------------------------------ the node and its log -- */

/* The cluster's --snapshot-interval. At the first start of a new cluster
 * the cluster object is still in the log, so `swarmc init`'s own option
 * counts first. 0: the raft default. */
static uint64_t snapshot_interval(struct node_daemon *nd)
{
    if (nd->opts->snapshot_interval > 0)
        return nd->opts->snapshot_interval;
    struct store_read *r = NULL;
    Swarmc__Cluster *c = NULL;
    uint64_t n = 0;
    if (store_read_begin(nd->store, &r, NULL) == 0 && store_get_cluster(r, &c) == 0 &&
        c->spec != NULL && c->spec->has_snapshot_interval)
        n = c->spec->snapshot_interval;
    proto_free(c);
    store_read_end(r);
    return n;
}

static int open_transport(struct node_daemon *nd, struct raft_transport **out, struct swm_err *err)
{
    struct chan_config cfg = {.identity = &nd->identity.key,
                              .cert = &nd->identity.cert,
                              .root_pk = nd->identity.root_pk,
                              .wall_clock = daemon__wall_clock};
    int rc = raft_chan_transport_open(&nd->loop, daemon__raft_id(nd->node_id),
                                      daemon__serve_port(nd->server), &cfg, out, err);
    if (rc == 0 && (rc = raft_chan_transport_bind_ids(*out, raft_id_of, NULL)) < 0) {
        raft_transport_close(*out);
        return swm_err_set(err, rc, "this node's certificate does not match its raft id");
    }
    return rc;
}

int daemon__managers_open(struct node_daemon *nd,
                          void (*on_leadership)(void *arg, bool leader, uint64_t leader_id),
                          struct swm_err *err)
{
    /* Stores of earlier builds, written without raft, are converted on the
     * first start with this node as the only voter; a manager that joined
     * starts with nothing and waits for the leader. */
    struct raft_server self = {.id = daemon__raft_id(nd->node_id), .role = RAFT_VOTER};
    struct raft_configuration conf = {.servers = &self, .n_servers = 1};
    bool has_state = false;
    int rc = store_raft_exists(nd->store, &has_state, err);
    struct raft_node_options ro = {
        .id = self.id,
        .bootstrap = store_applied_index(nd->store) > 0 ? &conf : NULL,
        .snapshot_threshold = snapshot_interval(nd),
        .on_leadership = on_leadership,
        .on_leadership_arg = nd,
    };
    struct raft_transport *t = NULL;
    if (rc == 0 && nd->server != NULL && (rc = open_transport(nd, &t, err)) == 0)
        nd->raft_transport = t;
    if (rc == 0 && (rc = raft_node_open(&nd->loop, nd->store, &ro, t, &nd->raft, err)) < 0) {
        raft_transport_close(t);
        nd->raft_transport = NULL;
    }
    if (rc == 0 && t != NULL) {
        load_peers(nd);
        if ((rc = store_watch(nd->store, on_node_events, nd)) < 0)
            swm_err_set(err, rc, "watching the store: %s", swm_strerror(rc));
    }
    if (rc == 0 && !has_state && ro.bootstrap == NULL)
        rc = joiner_start(nd, err);
    return rc;
}

void daemon__managers_close(struct node_daemon *nd)
{
    joiner_stop(nd->raft_joiner);
    nd->raft_joiner = NULL;
    if (nd->raft_transport != NULL)
        store_unwatch(nd->store, on_node_events, nd);
    /* The node closes its transport. */
    raft_node_close(nd->raft);
    nd->raft = NULL;
    nd->raft_transport = NULL;
}

/* ------------------------------------------------------- leadership -- */

static void leader_recorded(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    if (status < 0 || err->code != 0)
        swm_log_warn("managers: leadership not recorded: %s", err->msg);
}

/* Adds to entry an update of node with its leader flag set to `leader`.
 * Takes node. Returns 0 or -ENOMEM. */
static int add_leader_flag(Swarmc__StoreEntry *entry, Swarmc__Node *node, bool leader)
{
    Swarmc__StoreAction *a = swm_malloc(sizeof(*a));
    Swarmc__StoreAction **grown =
        swm_realloc(entry->actions, (entry->n_actions + 1) * sizeof(*grown));
    if (a == NULL || grown == NULL) {
        swm_free(a);
        proto_free(node);
        if (grown != NULL)
            entry->actions = grown;
        return -ENOMEM;
    }
    swarmc__store_action__init(a);
    node->manager_status->has_leader = 1;
    node->manager_status->leader = leader;
    a->has_kind = 1;
    a->kind = SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE;
    a->target_case = SWARMC__STORE_ACTION__TARGET_NODE;
    a->node = node;
    entry->actions = grown;
    entry->actions[entry->n_actions++] = a;
    return 0;
}

void daemon__managers_record_leader(struct node_daemon *nd)
{
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0;
    if (store_read_begin(nd->store, &r, NULL) < 0 || store_list_nodes(r, &nodes, &n) < 0)
        n = 0;
    store_read_end(r);
    Swarmc__StoreEntry *entry = swm_malloc(sizeof(*entry));
    int rc = entry != NULL ? 0 : -ENOMEM;
    if (entry != NULL)
        swarmc__store_entry__init(entry);
    for (size_t i = 0; i < n; i++) {
        Swarmc__ManagerStatus *m = nodes[i]->manager_status;
        bool self = strcmp(nodes[i]->id, nd->node_id) == 0;
        if (rc == 0 && m != NULL && m->leader != self) {
            rc = add_leader_flag(entry, nodes[i], self);
            nodes[i] = NULL;
        }
    }
    store_free_list(nodes, n);
    if (rc == 0 && entry->n_actions > 0 &&
        (rc = store_log_propose(raft_node_log(nd->raft), entry, leader_recorded, NULL)) == 0)
        return;
    proto_free(entry);
    if (rc < 0)
        swm_log_warn("managers: leadership not recorded: %s", swm_strerror(rc));
}

/* ------------------------------------------- joining: the leader's side -- */

struct join_request {
    struct node_daemon *nd;
    char node_id[SWM_ID_LEN + 1];
    uint64_t raft_id;
    char addr[SWM_ADDR_STRLEN];
    daemon_reply_fn reply;
    void *reply_arg;
};

static void reply_error(daemon_reply_fn reply, void *arg, int code, const char *msg)
{
    Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
    resp.has_code = resp.has_last = resp.last = 1;
    resp.code = code;
    resp.error = (char *)msg;
    reply(arg, &resp);
}

/* Answers with every manager the store knows, the new one included. */
static void reply_members(struct join_request *jr)
{
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0, k = 0;
    if (store_read_begin(jr->nd->store, &r, NULL) < 0 || store_list_nodes(r, &nodes, &n) < 0)
        n = 0;
    store_read_end(r);
    Swarmc__RaftMember *members = swm_calloc(n + 1, sizeof(*members));
    Swarmc__RaftMember **ptrs = swm_calloc(n + 1, sizeof(*ptrs));
    for (size_t i = 0; members != NULL && ptrs != NULL && i < n; i++) {
        const Swarmc__ManagerStatus *m = nodes[i]->manager_status;
        if (m == NULL || !m->has_raft_id || m->addr == NULL)
            continue;
        swarmc__raft_member__init(&members[k]);
        members[k].has_raft_id = 1;
        members[k].raft_id = m->raft_id;
        members[k].addr = m->addr;
        ptrs[k] = &members[k];
        k++;
    }
    if (members == NULL || ptrs == NULL) {
        reply_error(jr->reply, jr->reply_arg, -ENOMEM, "out of memory");
    } else {
        Swarmc__RaftJoinResponse rj = SWARMC__RAFT_JOIN_RESPONSE__INIT;
        rj.members = ptrs;
        rj.n_members = k;
        Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
        resp.has_last = resp.last = 1;
        resp.raft_join = &rj;
        jr->reply(jr->reply_arg, &resp);
    }
    swm_free(members);
    swm_free(ptrs);
    store_free_list(nodes, n);
}

static void voter_added(void *arg, int status, const struct swm_err *err)
{
    struct join_request *jr = arg;
    if (status == 0)
        swm_log_info("managers: manager %s is a raft voter (raft id %" PRIx64 ")", jr->node_id,
                     jr->raft_id);
    else
        swm_log_warn("managers: adding manager %s to raft failed: %s", jr->node_id, err->msg);
    swm_free(jr);
}

/* The node now names its raft id and address: start the change and tell
 * the new manager who the members are. */
static void status_recorded(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct join_request *jr = arg;
    if (status == 0 && err->code != 0)
        status = err->code;
    if (status == 0 && jr->nd->raft == NULL) /* committed while the daemon stops */
        status = SWM_ESHUTDOWN;
    if (status < 0) {
        reply_error(jr->reply, jr->reply_arg, status,
                    status == SWM_ESHUTDOWN ? "shutting down" : err->msg);
        swm_free(jr);
        return;
    }
    raft_chan_transport_set_peer(jr->nd->raft_transport, jr->raft_id, jr->addr);
    int rc = raft_node_add_voter(jr->nd->raft, jr->raft_id, voter_added, jr);
    if (rc < 0 && rc != SWM_EEXISTS) {
        reply_error(jr->reply, jr->reply_arg, rc, swm_strerror(rc));
        swm_free(jr);
        return;
    }
    reply_members(jr);
    if (rc == SWM_EEXISTS)
        swm_free(jr);
}

/* Proposes the node's ManagerStatus. Returns 0 (status_recorded runs) or
 * a negative code with msg. */
static int record_status(struct join_request *jr, const char **msg)
{
    struct store_read *r = NULL;
    Swarmc__Node *node = NULL;
    *msg = "this node is not a manager of the swarm";
    if (store_read_begin(jr->nd->store, &r, NULL) < 0 ||
        store_get_node(r, jr->node_id, &node) < 0 ||
        node->role != SWARMC__NODE_ROLE__NODE_ROLE_MANAGER) {
        store_read_end(r);
        proto_free(node);
        return -EPERM;
    }
    store_read_end(r);
    Swarmc__ManagerStatus ms = SWARMC__MANAGER_STATUS__INIT;
    ms.has_raft_id = 1;
    ms.raft_id = jr->raft_id;
    ms.addr = jr->addr;
    ms.reachability = "reachable";
    proto_free(node->manager_status);
    node->manager_status = proto_clone(&ms);
    Swarmc__StoreAction act = SWARMC__STORE_ACTION__INIT;
    Swarmc__StoreAction *acts[1] = {&act};
    act.has_kind = 1;
    act.kind = SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE;
    act.target_case = SWARMC__STORE_ACTION__TARGET_NODE;
    act.node = node;
    Swarmc__StoreEntry tmp = SWARMC__STORE_ENTRY__INIT;
    tmp.actions = acts;
    tmp.n_actions = 1;
    Swarmc__StoreEntry *entry = node->manager_status != NULL ? proto_clone(&tmp) : NULL;
    proto_free(node);
    *msg = "out of memory";
    if (entry == NULL)
        return -ENOMEM;
    int rc = store_log_propose(raft_node_log(jr->nd->raft), entry, status_recorded, jr);
    if (rc < 0) {
        proto_free(entry);
        *msg = swm_strerror(rc);
    }
    return rc;
}

void daemon__managers_raft_join(struct node_daemon *nd, const char *node_id,
                                const Swarmc__RaftJoinRequest *req, daemon_reply_fn reply,
                                void *arg)
{
    struct sockaddr_storage sa;
    if (req->addr == NULL || strlen(req->addr) >= SWM_ADDR_STRLEN ||
        swm_addr_parse(req->addr, &sa) < 0) {
        reply_error(reply, arg, -EINVAL, "raft join: the address is not a numeric ip:port");
        return;
    }
    struct join_request *jr = swm_calloc(1, sizeof(*jr));
    if (jr == NULL) {
        reply_error(reply, arg, -ENOMEM, "out of memory");
        return;
    }
    *jr = (struct join_request){
        .nd = nd, .raft_id = daemon__raft_id(node_id), .reply = reply, .reply_arg = arg};
    snprintf(jr->node_id, sizeof(jr->node_id), "%s", node_id);
    snprintf(jr->addr, sizeof(jr->addr), "%s", req->addr);
    const char *msg = NULL;
    int rc = record_status(jr, &msg);
    if (rc < 0) {
        reply_error(reply, arg, rc, msg);
        swm_free(jr);
    }
}
