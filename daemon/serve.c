/* A manager's side of the cluster port (net/transport/port.h): joins
 * (manager/join.h) and the sessions of remote agents with the dispatcher.
 *
 * Lifetime: the server owns its port and a list of the agent connections
 * it took over. Closing the server detaches every agent from the
 * dispatcher at once (the dispatcher closes right after) and closes the
 * port; the connections report `closed` later, from the loop, and free only
 * what is theirs. A joiner is independent of the server: it lives until
 * both its connection closed and the raft log answered its admission. */
#include "common/alloc.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "common/timeutil.h"
#include "daemon/internal.h"
#include "manager/ca/ca.h"
#include "manager/join.h"
#include "manager/raft/raft.h"
#include "net/transport/port.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_LISTEN_ADDR "0.0.0.0:2377"

struct remote_agent {
    struct cluster_server *srv; /* NULL once the server closed */
    struct chan_conn *conn;
    struct dispatcher_session *sess; /* NULL once detached */
    char node_id[SWM_ID_LEN + 1];
    bool closing;
    struct remote_agent *next, **prev;
};

struct cluster_server {
    struct node_daemon *nd;
    struct chan_port *port;
    bool leading;
    struct ca_revoked revoked; /* removed nodes; borrowed by the port's channels */
    struct remote_agent *agents;
};

/* Rebuilds the revoked set from the cluster's CA; the agents of nodes
 * revoked since are disconnected. */
static void agent_detach(struct remote_agent *ra);

static void load_revoked(struct cluster_server *srv, const Swarmc__RootCA *ca)
{
    ca_revoked_free(&srv->revoked);
    for (size_t i = 0; ca != NULL && i < ca->n_revoked_nodes; i++) {
        if (ca_revoked_add(&srv->revoked, ca->revoked_nodes[i]) < 0)
            swm_log_error("serve: out of memory loading the removed nodes");
    }
    struct remote_agent *ra = srv->agents;
    while (ra != NULL) {
        struct remote_agent *next = ra->next;
        if (ca_revoked_contains(&srv->revoked, ra->node_id)) {
            swm_log_info("serve: node %s was removed; closing its session", ra->node_id);
            agent_detach(ra);
            ra->closing = true;
            chan_conn_close(ra->conn);
        }
        ra = next;
    }
}

/* The channel configuration of the port: this manager's key material, the
 * removed nodes and, while it leads (it admits joins), the current join
 * secrets (wiped by the caller). The cluster object is absent until the
 * log has been replayed. */
static int port_config(struct cluster_server *srv, struct ca_join_secrets *secrets,
                       struct chan_config *cfg, struct swm_err *err)
{
    struct node_daemon *nd = srv->nd;
    struct store_read *r = NULL;
    Swarmc__Cluster *c = NULL;
    *cfg = (struct chan_config){.side = CHAN_RESPONDER,
                                .identity = &nd->identity.key,
                                .cert = &nd->identity.cert,
                                .root_pk = nd->identity.root_pk,
                                .revoked = &srv->revoked,
                                .wall_clock = daemon__wall_clock,
                                /* raft frames (snapshot chunks, batches) are the largest */
                                .max_frame = RAFT_MESSAGE_MAX_SIZE};
    int rc = store_read_begin(nd->store, &r, err);
    if (rc == 0 && store_get_cluster(r, &c) < 0)
        c = NULL;
    store_read_end(r);
    if (rc == 0 && c != NULL)
        load_revoked(srv, c->root_ca);
    if (rc == 0 && srv->leading && c == NULL)
        rc = swm_err_set(err, SWM_ENOTFOUND, "the store holds no cluster object");
    if (rc == 0 && srv->leading)
        rc = casvc_join_secrets(c->root_ca, secrets, err);
    if (c != NULL)
        casvc_root_redact(c->root_ca);
    proto_free(c);
    cfg->join_secrets = rc == 0 && srv->leading ? secrets : NULL;
    return rc;
}

/* Applies port_config to connections accepted from now on. */
static int refresh_config(struct cluster_server *srv, struct swm_err *err)
{
    struct ca_join_secrets secrets;
    struct chan_config cfg;
    int rc = port_config(srv, &secrets, &cfg, err);
    if (rc == 0)
        rc = chan_port_set_config(srv->port, &cfg, err);
    sodium_memzero(&secrets, sizeof(secrets));
    return rc;
}

/* ------------------------------------------------------------- joins -- */

struct joiner {
    struct chan_conn *conn; /* NULL once closed */
    char remote[SWM_ADDR_STRLEN];
    int refs; /* the connection + the admission */
};

static void joiner_unref(struct joiner *j)
{
    if (--j->refs == 0)
        swm_free(j);
}

static void joiner_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct joiner *j = arg;
    j->conn = NULL;
    joiner_unref(j);
}

static void admitted(void *arg, int status, const struct ca_cert *cert, const struct swm_err *err)
{
    struct joiner *j = arg;
    struct swm_err send_err = {0};
    if (status == 0 && j->conn != NULL &&
        (status = chan_conn_send_cert(j->conn, cert, &send_err)) < 0)
        err = &send_err;
    if (status == 0 && j->conn != NULL)
        swm_log_info("serve: node joined node=%s role=%s remote=%s", cert->node_id,
                     ca_role_name(cert->role), j->remote);
    else if (status == 0)
        swm_log_warn("serve: node %s admitted but its connection closed remote=%s", cert->node_id,
                     j->remote);
    else
        swm_log_warn("serve: join failed remote=%s error=\"%s\"", j->remote, err->msg);
    if (status < 0 && j->conn != NULL)
        chan_conn_close(j->conn);
    joiner_unref(j);
}

static void on_join(struct chan_conn *conn, const uint8_t pk[CA_PUBKEY_LEN], int role, void *arg)
{
    struct cluster_server *srv = arg;
    struct node_daemon *nd = srv->nd;
    struct joiner *j = swm_calloc(1, sizeof(*j));
    if (j == NULL) {
        swm_log_error("serve: out of memory admitting a node remote=%s", chan_conn_remote(conn));
        chan_conn_close(conn);
        return;
    }
    j->conn = conn;
    j->refs = 2;
    snprintf(j->remote, sizeof(j->remote), "%s", chan_conn_remote(conn));
    chan_conn_set_callbacks(conn, &(struct chan_conn_callbacks){.closed = joiner_closed, .arg = j});
    char host[SWM_ADDR_STRLEN];
    swm_addr_host(j->remote, host, sizeof(host));
    struct swm_err err = {0};
    if (manager_admit_node(nd->store, raft_node_log(nd->raft), pk, role, host, swm_now_ns(),
                           admitted, j, &err) < 0) {
        swm_log_warn("serve: join failed remote=%s error=\"%s\"", j->remote, err.msg);
        chan_conn_close(conn);
        joiner_unref(j);
    }
}

/* ---------------------------------------------- remote agent sessions -- */

static void agent_detach(struct remote_agent *ra)
{
    if (ra->sess != NULL)
        dispatcher_session_close(ra->sess);
    ra->sess = NULL;
    if (ra->srv != NULL && (*ra->prev = ra->next) != NULL)
        ra->next->prev = ra->prev;
    ra->srv = NULL;
}

/* dispatcher_send_fn. A message the channel cannot take (the agent stopped
 * reading) would leave the agent behind the dispatcher: the connection is
 * closed instead, and the agent reconnects and gets the whole set. */
static void send_to_agent(void *arg, const uint8_t *frame, size_t len)
{
    struct remote_agent *ra = arg;
    struct swm_err err = {0};
    if (ra->closing || chan_conn_send(ra->conn, frame, len, &err) == 0)
        return;
    swm_log_warn("serve: closing the session of node %s error=\"%s\"", ra->node_id, err.msg);
    ra->closing = true;
    chan_conn_close(ra->conn);
}

static void agent_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct remote_agent *ra = arg;
    if (ra->sess != NULL && !ra->closing)
        dispatcher_session_receive(ra->sess, data, len);
}

static void agent_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct remote_agent *ra = arg;
    if (ra->srv != NULL)
        swm_log_info("serve: agent disconnected node=%s reason=\"%s\"", ra->node_id,
                     status == 0 ? "closed" : reason);
    agent_detach(ra);
    swm_free(ra);
}

static void on_agent(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct cluster_server *srv = arg;
    struct remote_agent *ra = swm_calloc(1, sizeof(*ra));
    if (ra != NULL)
        ra->sess = dispatcher_session_open(srv->nd->dispatcher, peer->node_id, send_to_agent, ra);
    if (ra == NULL || ra->sess == NULL) {
        swm_log_error("serve: out of memory for the session of node %s", peer->node_id);
        swm_free(ra);
        chan_conn_close(conn);
        return;
    }
    ra->srv = srv;
    ra->conn = conn;
    snprintf(ra->node_id, sizeof(ra->node_id), "%s", peer->node_id);
    if ((ra->next = srv->agents) != NULL)
        srv->agents->prev = &ra->next;
    srv->agents = ra;
    ra->prev = &srv->agents;
    chan_conn_set_callbacks(
        conn, &(struct chan_conn_callbacks){.data = agent_data, .closed = agent_closed, .arg = ra});
    swm_log_info("serve: agent connected node=%s remote=%s", peer->node_id, chan_conn_remote(conn));
}

/* ---------------------------------------------- control from managers -- */

/* A manager's control connection. Requests are answered in order of their
 * completion; a reply after the connection closed is dropped. */
struct control_peer {
    struct cluster_server *srv; /* borrowed: closing the server closes conn first */
    struct chan_conn *conn;     /* NULL once closed */
    char node_id[SWM_ID_LEN + 1];
    int refs; /* the connection + every request not yet answered */
};

static void control_unref(struct control_peer *cp)
{
    if (--cp->refs == 0)
        swm_free(cp);
}

static void control_reply(void *arg, const Swarmc__ControlResponse *resp)
{
    struct control_peer *cp = arg;
    struct swm_buf buf = {0};
    struct swm_err err = {0};
    if (cp->conn != NULL && (proto_pack(&resp->base, &buf) < 0 ||
                             chan_conn_send(cp->conn, buf.data, buf.len, &err) < 0)) {
        swm_log_warn("serve: cannot answer manager %s: %s", cp->node_id,
                     err.msg[0] != '\0' ? err.msg : "out of memory");
        chan_conn_close(cp->conn);
    }
    swm_buf_free(&buf);
    control_unref(cp);
}

/* Requests about the node itself, which its own control socket answers. */
static bool local_request(const Swarmc__ControlRequest *req)
{
    switch (req->op_case) {
    case SWARMC__CONTROL_REQUEST__OP_IMAGE_LOAD:
    case SWARMC__CONTROL_REQUEST__OP_IMAGE_LIST:
    case SWARMC__CONTROL_REQUEST__OP_IMAGE_REMOVE:
    case SWARMC__CONTROL_REQUEST__OP_SERVICE_LOGS:
    case SWARMC__CONTROL_REQUEST__OP_LEAVE:
        return true;
    default:
        return false;
    }
}

static void control_reply_owned(void *arg, Swarmc__ControlResponse *resp)
{
    if (resp == NULL)
        resp = controlapi_error_response(-ENOMEM, "out of memory");
    if (resp != NULL) {
        control_reply(arg, resp);
        proto_free(resp);
    } else {
        control_unref(arg);
    }
}

static void control_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct control_peer *cp = arg;
    struct swm_err err = {0};
    Swarmc__ControlRequest *req =
        PROTO_UNPACK(Swarmc__ControlRequest, swarmc__control_request, data, len, &err);
    cp->refs++;
    if (req == NULL) {
        swm_log_warn("serve: malformed control request from manager %s: %s", cp->node_id, err.msg);
        chan_conn_close(conn);
        control_unref(cp);
    } else if (req->op_case == SWARMC__CONTROL_REQUEST__OP_RAFT_JOIN) {
        daemon__managers_raft_join(cp->srv->nd, cp->node_id, req->raft_join, control_reply, cp);
    } else if (local_request(req)) {
        Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
        resp.has_code = resp.has_last = resp.last = 1;
        resp.code = SWM_ENOTSUP;
        resp.error = "this request is answered by each node, not over the cluster port";
        control_reply(cp, &resp);
    } else {
        daemon__cluster_request(cp->srv->nd, req, false, control_reply_owned, cp);
        return;
    }
    proto_free(req);
}

static void control_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct control_peer *cp = arg;
    cp->conn = NULL;
    control_unref(cp);
}

static void on_control(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct control_peer *cp = swm_calloc(1, sizeof(*cp));
    if (cp == NULL) {
        chan_conn_close(conn);
        return;
    }
    cp->srv = arg;
    cp->conn = conn;
    cp->refs = 1;
    snprintf(cp->node_id, sizeof(cp->node_id), "%s", peer->node_id);
    chan_conn_set_callbacks(conn, &(struct chan_conn_callbacks){
                                      .data = control_data, .closed = control_closed, .arg = cp});
}

/* ------------------------------------------------ certificate renewal -- */

/* Any message asks for a renewed certificate; the answer is its 208-byte
 * encoding (or a REJECT-like close: the node retries later). */
static void ca_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct cluster_server *srv = arg;
    const struct ca_cert *peer = chan_peer_cert(chan_conn_channel(conn));
    struct ca_cert cert;
    struct swm_err err = {0};
    uint8_t out[CA_CERT_LEN];
    int rc = peer != NULL
                 ? manager_renew_certificate(srv->nd->store, peer, swm_now_ns(), &cert, &err)
                 : swm_err_set(&err, -EPERM, "no verified peer");
    if (rc == 0) {
        ca_cert_encode(&cert, out);
        rc = chan_conn_send(conn, out, sizeof(out), &err);
    }
    if (rc == 0)
        swm_log_info("serve: certificate renewed node=%s role=%s", cert.node_id,
                     ca_role_name(cert.role));
    else
        swm_log_warn("serve: certificate not renewed remote=%s error=\"%s\"",
                     chan_conn_remote(conn), err.msg);
    if (rc < 0)
        chan_conn_close(conn);
}

static void ca_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
}

static void on_ca(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    chan_conn_set_callbacks(
        conn, &(struct chan_conn_callbacks){.data = ca_data, .closed = ca_closed, .arg = arg});
}

/* ------------------------------------------------------------ server -- */

static void on_store_events(void *arg, const struct store_event *events, size_t n)
{
    struct cluster_server *srv = arg;
    size_t i = 0;
    while (i < n && events[i].kind != STORE_KIND_CLUSTER)
        i++;
    /* A rotated join token (joins from now on need the new secret), or a
     * node removed. */
    struct swm_err err = {0};
    if (i < n && refresh_config(srv, &err) < 0)
        swm_log_error("serve: cannot update the port's configuration: %s", err.msg);
}

int daemon__serve_open(struct node_daemon *nd, struct cluster_server **out, struct swm_err *err)
{
    struct cluster_server *srv = swm_calloc(1, sizeof(*srv));
    if (srv == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    srv->nd = nd;
    struct ca_join_secrets secrets;
    struct chan_config cfg;
    const char *addr = nd->conf.listen_addr[0] != '\0' ? nd->conf.listen_addr : DEFAULT_LISTEN_ADDR;
    int rc = port_config(srv, &secrets, &cfg, err);
    if (rc == 0 && (rc = chan_port_open(&nd->loop, addr, &cfg, NULL, &srv->port, err)) < 0)
        swm_err_wrap(err, rc, "listening on %s", addr);
    if (rc == 0 && (rc = store_watch(nd->store, on_store_events, srv)) < 0) {
        chan_port_close(srv->port);
        swm_err_set(err, rc, "watching the store: %s", swm_strerror(rc));
    }
    if (rc < 0) {
        ca_revoked_free(&srv->revoked);
        swm_free(srv);
        return rc;
    }
    swm_log_info("serve: listening on %s", addr);
    *out = srv;
    return 0;
}

int daemon__serve_lead(struct cluster_server *srv, struct swm_err *err)
{
    srv->leading = true;
    int rc = refresh_config(srv, err);
    if (rc < 0)
        return rc;
    chan_port_set_join(srv->port, on_join, srv);
    if ((rc = chan_port_offer(srv->port, CHAN_SERVICE_DISPATCHER, on_agent, CA_ROLES_ANY, srv)) <
            0 ||
        (rc = chan_port_offer(srv->port, CHAN_SERVICE_CONTROL, on_control,
                              CA_ROLE_BIT(CA_ROLE_MANAGER), srv)) < 0 ||
        (rc = chan_port_offer(srv->port, CHAN_SERVICE_CA, on_ca, CA_ROLES_ANY, srv)) < 0)
        return swm_err_set(err, rc, "offering the leader's services: %s", swm_strerror(rc));
    return 0;
}

void daemon__serve_follow(struct cluster_server *srv)
{
    if (srv == NULL || !srv->leading)
        return;
    struct swm_err err = {0};
    srv->leading = false;
    if (refresh_config(srv, &err) < 0)
        swm_log_error("serve: cannot drop the join secrets: %s", err.msg);
    chan_port_set_join(srv->port, NULL, NULL);
    chan_port_offer(srv->port, CHAN_SERVICE_DISPATCHER, NULL, 0, NULL);
    chan_port_offer(srv->port, CHAN_SERVICE_CONTROL, NULL, 0, NULL);
    chan_port_offer(srv->port, CHAN_SERVICE_CA, NULL, 0, NULL);
    while (srv->agents != NULL) {
        struct remote_agent *ra = srv->agents;
        agent_detach(ra);
        ra->closing = true;
        chan_conn_close(ra->conn);
    }
}

void daemon__serve_close(struct cluster_server *srv)
{
    if (srv == NULL)
        return;
    store_unwatch(srv->nd->store, on_store_events, srv);
    while (srv->agents != NULL)
        agent_detach(srv->agents);
    chan_port_close(srv->port);
    ca_revoked_free(&srv->revoked);
    swm_free(srv);
}

void daemon__serve_identity_changed(struct cluster_server *srv)
{
    struct swm_err err = {0};
    if (srv != NULL && refresh_config(srv, &err) < 0)
        swm_log_error("serve: the renewed certificate is not in use: %s", err.msg);
}

struct chan_port *daemon__serve_port(struct cluster_server *srv)
{
    return srv->port;
}
