/* Cluster requests (the control API): answered by the leader, after a read
 * barrier; a follower forwards them to the leader over the cluster port's
 * control service and relays the answer, so the CLI works on any manager
 * (like Docker's managers proxying to the leader). */
#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/internal.h"
#include "net/transport/port.h"

#include <errno.h>
#include <string.h>

#define NO_LEADER_MSG                                                                              \
    "The swarm does not have a leader. It's possible that too few managers are online. Make "      \
    "sure more than half of the managers are online."

static void reply_error(controlapi_reply_cb reply, void *arg, int code, const char *msg)
{
    reply(arg, controlapi_error_response(code, msg));
}

/* ---------------------------------------------------------- the leader -- */

/* A request waiting for its read barrier. */
struct barrier_wait {
    struct node_daemon *nd;
    Swarmc__ControlRequest *req;
    controlapi_reply_cb reply;
    void *arg;
};

static void barrier_passed(void *arg, int status, const struct swm_err *err)
{
    struct barrier_wait *w = arg;
    struct node_daemon *nd = w->nd;
    if (status < 0)
        reply_error(w->reply, w->arg, status, err->msg);
    else if (nd->stopping || nd->controlapi == NULL)
        reply_error(w->reply, w->arg, SWM_ENOTLEADER, "this node stopped leading the swarm");
    else if (controlapi_handle(nd->controlapi, w->req, w->reply, w->arg) == SWM_ENOTSUP)
        reply_error(w->reply, w->arg, SWM_ENOTSUP, "unknown request");
    proto_free(w->req);
    swm_free(w);
}

/* The read barrier (Raft read-index): the node confirms it still leads and
 * has applied everything committed before the request arrived, so what the
 * request reads is never older than a write already acknowledged. */
static void answer(struct node_daemon *nd, Swarmc__ControlRequest *req, controlapi_reply_cb reply,
                   void *arg)
{
    struct barrier_wait *w = swm_malloc(sizeof(*w));
    if (w == NULL) {
        proto_free(req);
        reply_error(reply, arg, -ENOMEM, "out of memory");
        return;
    }
    *w = (struct barrier_wait){.nd = nd, .req = req, .reply = reply, .arg = arg};
    int rc = raft_node_read_barrier(nd->raft, barrier_passed, w);
    if (rc < 0) {
        struct swm_err err;
        swm_err_set(&err, rc, "%s", swm_strerror(rc));
        barrier_passed(w, rc, &err);
    }
}

/* -------------------------------------------------------- a follower -- */

struct forward {
    struct node_daemon *nd; /* this node: the leader would read "self" as itself */
    struct chan_conn *conn;
    struct swm_buf req; /* the packed request */
    controlapi_reply_cb reply;
    void *arg;
    bool answered;
    char leader[SWM_ADDR_STRLEN];
};

static void forward_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct forward *f = arg;
    struct swm_err err = {0};
    if (chan_service_hello(conn, CHAN_SERVICE_CONTROL, &err) < 0 ||
        chan_conn_send(conn, f->req.data, f->req.len, &err) < 0) {
        swm_log_warn("forward: to the leader at %s: %s", f->leader, err.msg);
        chan_conn_close(conn);
    }
}

/* Cluster requests have one answer (streams are local requests). */
static void forward_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct forward *f = arg;
    struct swm_err err = {0};
    if (f->answered)
        return;
    Swarmc__ControlResponse *resp =
        PROTO_UNPACK(Swarmc__ControlResponse, swarmc__control_response, data, len, &err);
    if (resp == NULL)
        resp = controlapi_error_response(SWM_EPROTO, "the leader sent a malformed answer");
    if (resp != NULL && resp->info != NULL) { /* about this node, not the leader */
        swm_free(resp->info->node_id);
        resp->info->node_id = swm_strdup(f->nd->node_id);
        resp->info->has_raft_applied_index = 1;
        resp->info->raft_applied_index = store_applied_index(f->nd->store);
    }
    f->answered = true;
    f->reply(f->arg, resp);
    chan_conn_close(conn);
}

static void forward_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct forward *f = arg;
    if (!f->answered) {
        char msg[512];
        snprintf(msg, sizeof(msg), "cannot reach the leader at %s: %s", f->leader,
                 status == 0 ? "it closed the connection" : reason);
        reply_error(f->reply, f->arg, status < 0 ? status : -ECONNRESET, msg);
    }
    swm_buf_free(&f->req);
    swm_free(f);
}

/* The leader's address from its node's ManagerStatus. Returns 0 or
 * SWM_ENOTLEADER (no leader known, or not in the store yet). */
static int leader_addr(struct node_daemon *nd, char out[SWM_ADDR_STRLEN])
{
    uint64_t id = raft_node_leader(nd->raft);
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0;
    int rc = SWM_ENOTLEADER;
    if (id == 0 || store_read_begin(nd->store, &r, NULL) < 0 || store_list_nodes(r, &nodes, &n) < 0)
        n = 0;
    store_read_end(r);
    for (size_t i = 0; i < n; i++) {
        const Swarmc__ManagerStatus *m = nodes[i]->manager_status;
        if (m != NULL && m->has_raft_id && m->raft_id == id && m->addr != NULL &&
            strlen(m->addr) < SWM_ADDR_STRLEN) {
            snprintf(out, SWM_ADDR_STRLEN, "%s", m->addr);
            rc = 0;
        }
    }
    store_free_list(nodes, n);
    return rc;
}

static void forward(struct node_daemon *nd, Swarmc__ControlRequest *req, controlapi_reply_cb reply,
                    void *arg)
{
    struct forward *f = swm_calloc(1, sizeof(*f));
    if (req->op_case == SWARMC__CONTROL_REQUEST__OP_GET_NODE && req->get_node->ref != NULL &&
        strcmp(req->get_node->ref, "self") == 0) {
        swm_free(req->get_node->ref);
        req->get_node->ref = swm_strdup(nd->node_id);
    }
    int rc = f == NULL ? -ENOMEM : proto_pack(&req->base, &f->req);
    proto_free(req);
    if (f != NULL) {
        f->reply = reply;
        f->arg = arg;
        f->nd = nd;
    }
    if (rc == 0 && leader_addr(nd, f->leader) < 0) {
        swm_buf_free(&f->req);
        swm_free(f);
        reply_error(reply, arg, SWM_ENOTLEADER, NO_LEADER_MSG);
        return;
    }
    struct chan_conn_callbacks cbs = {.established = forward_established,
                                      .data = forward_data,
                                      .closed = forward_closed,
                                      .arg = f};
    struct swm_err err = {0};
    if (rc == 0 && (rc = daemon__dial_manager(nd, f->leader, &cbs, &f->conn, &err)) == 0)
        return;
    if (f != NULL)
        swm_buf_free(&f->req);
    swm_free(f);
    reply_error(reply, arg, rc, rc == -ENOMEM ? "out of memory" : err.msg);
}

void daemon__cluster_request(struct node_daemon *nd, Swarmc__ControlRequest *req, bool may_forward,
                             controlapi_reply_cb reply, void *arg)
{
    if (nd->raft != NULL && raft_node_is_leader(nd->raft)) {
        answer(nd, req, reply, arg);
    } else if (may_forward && nd->raft != NULL && nd->has_identity) {
        forward(nd, req, reply, arg);
    } else {
        proto_free(req);
        reply_error(reply, arg, SWM_ENOTLEADER, NO_LEADER_MSG);
    }
}
