/* The control socket: length-prefixed ControlRequest frames in, response
 * frames out (proto/control.proto). A malformed or oversized frame closes
 * that connection only; the daemon keeps serving. */
#include "common/alloc.h"
#include "common/log.h"
#include "daemon/images.h"
#include "daemon/internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)

/* The server is freed once its pipe and every connection's pipe are
 * closed (refs); closing it closes its connections. */
struct api_server {
    struct node_daemon *nd;
    uv_pipe_t pipe;
    char path[108];
    struct api_conn *conns; /* open connections */
    int refs;               /* the listening pipe + every open connection */
};

struct api_conn {
    struct node_daemon *nd; /* outlives the connection, unlike srv */
    struct api_server *srv; /* NULL once the pipe is closed */
    struct api_conn *next, **prev;
    uv_pipe_t pipe;
    struct swm_buf in;
    int refs; /* the pipe handle + every request still being answered */
    int closed;
};

struct write_req {
    uv_write_t req;
    struct api_conn *conn;
    uv_buf_t buf;
};

void daemon__api_conn_ref(struct api_conn *conn)
{
    conn->refs++;
}

void daemon__api_conn_unref(struct api_conn *conn)
{
    if (--conn->refs == 0) {
        swm_buf_free(&conn->in);
        swm_free(conn);
    }
}

int daemon__api_conn_closed(const struct api_conn *conn)
{
    return conn->closed;
}

static void server_unref(struct api_server *srv)
{
    if (--srv->refs == 0)
        swm_free(srv);
}

static void conn_closed(uv_handle_t *handle)
{
    struct api_conn *conn = handle->data;
    if ((*conn->prev = conn->next) != NULL)
        conn->next->prev = conn->prev;
    server_unref(conn->srv);
    conn->srv = NULL;
    daemon__api_conn_unref(conn);
}

static void conn_close(struct api_conn *conn)
{
    if (conn->closed)
        return;
    conn->closed = 1;
    uv_close((uv_handle_t *)&conn->pipe, conn_closed);
}

static void write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    swm_free(w->buf.base);
    if (status < 0)
        conn_close(w->conn);
    daemon__api_conn_unref(w->conn);
    swm_free(w);
}

int daemon__api_send(struct api_conn *conn, const Swarmc__ControlResponse *resp)
{
    if (conn->closed)
        return -EPIPE;
    struct swm_buf out = {0};
    uint8_t hdr[4] = {0};
    struct write_req *w = swm_malloc(sizeof(*w));
    if (w == NULL || swm_buf_append(&out, hdr, 4) < 0 || proto_pack(&resp->base, &out) < 0) {
        swm_free(w);
        swm_buf_free(&out);
        return -ENOMEM;
    }
    uint32_t len = (uint32_t)(out.len - 4);
    out.data[0] = (uint8_t)(len >> 24);
    out.data[1] = (uint8_t)(len >> 16);
    out.data[2] = (uint8_t)(len >> 8);
    out.data[3] = (uint8_t)len;
    w->conn = conn;
    w->buf = uv_buf_init((char *)out.data, (unsigned)out.len);
    daemon__api_conn_ref(conn);
    int rc = uv_write(&w->req, (uv_stream_t *)&conn->pipe, &w->buf, 1, write_done);
    if (rc < 0) {
        swm_free(w->buf.base);
        swm_free(w);
        daemon__api_conn_unref(conn);
        conn_close(conn);
    }
    return rc;
}

/* Answers and releases the connection reference taken for the request. */
static void reply(void *arg, Swarmc__ControlResponse *resp)
{
    struct api_conn *conn = arg;
    if (resp == NULL)
        resp = controlapi_error_response(-ENOMEM, "out of memory");
    if (resp != NULL)
        daemon__api_send(conn, resp);
    proto_free(resp);
    daemon__api_conn_unref(conn);
}

static void reply_error(struct api_conn *conn, int code, const char *msg)
{
    daemon__api_conn_ref(conn);
    reply(conn, controlapi_error_response(code, msg));
}

/* The managers this node's store knows of. */
static size_t count_managers(struct node_daemon *nd)
{
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0, managers = 0;
    if (store_read_begin(nd->store, &r, NULL) < 0 || store_list_nodes(r, &nodes, &n) < 0)
        n = 0;
    store_read_end(r);
    for (size_t i = 0; i < n; i++)
        managers += nodes[i]->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    store_free_list(nodes, n);
    return managers;
}

/* A manager leaves only with --force, told what it costs (Docker's words). */
static void refuse_manager_leave(struct api_conn *conn)
{
    size_t managers = count_managers(conn->nd);
    char msg[640];
    if (managers <= 1)
        snprintf(msg, sizeof(msg),
                 "You are attempting to leave the swarm on a node that is participating as a "
                 "manager. Removing the last manager erases all current state of the swarm. Use "
                 "`--force` to ignore this message.");
    else
        snprintf(msg, sizeof(msg),
                 "You are attempting to leave the swarm on a node that is participating as a "
                 "manager. Removing this node leaves %zu managers out of %zu. Without a Raft "
                 "quorum your swarm will be inaccessible. The only way to restore a swarm that "
                 "has lost consensus is to reinitialize it with `--force-new-cluster`. Use "
                 "`--force` to suppress this message.",
                 managers - 1, managers);
    reply_error(conn, -EPERM, msg);
}

static void handle_leave(struct api_conn *conn, const Swarmc__LeaveRequest *req)
{
    struct node_daemon *nd = conn->nd;
    if (!req->force && !nd->worker) {
        refuse_manager_leave(conn);
        return;
    }
    daemon__api_conn_ref(conn);
    reply(conn, controlapi_ok_response());
    daemon__stop(nd, 1);
}

/* What a worker knows about itself; the cluster's state lives on the
 * managers. */
static void worker_info(struct api_conn *conn)
{
    struct node_daemon *nd = conn->nd;
    Swarmc__InfoResponse info = SWARMC__INFO_RESPONSE__INIT;
    info.node_id = nd->node_id;
    info.cluster_id = nd->identity.cert.cluster_id;
    info.version = SWARMC_VERSION;
    info.has_is_manager = 1;
    info.is_manager = 0;
    info.data_dir = (char *)daemon__data_dir(nd->opts);
    Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
    resp.has_last = resp.last = 1;
    resp.info = &info;
    daemon__api_send(conn, &resp);
}

/* A request only a manager answers, sent to a worker: Docker's words. */
static void handle_worker_request(struct api_conn *conn, const Swarmc__ControlRequest *req)
{
    if (req->op_case == SWARMC__CONTROL_REQUEST__OP_INFO) {
        worker_info(conn);
        return;
    }
    reply_error(conn, SWM_ENOTMANAGER,
                "This node is not a swarm manager. Worker nodes can't be used to view or modify "
                "cluster state. Please run this command on a manager node or promote the current "
                "node to a manager.");
}

/* Takes ownership of req. */
static void handle_request(struct api_conn *conn, Swarmc__ControlRequest *req)
{
    struct node_daemon *nd = conn->nd;
    if (nd->stopping) {
        reply_error(conn, SWM_ESHUTDOWN, "the daemon is shutting down");
        proto_free(req);
        return;
    }
    switch (req->op_case) {
    case SWARMC__CONTROL_REQUEST__OP_IMAGE_LOAD:
    case SWARMC__CONTROL_REQUEST__OP_IMAGE_LIST:
    case SWARMC__CONTROL_REQUEST__OP_IMAGE_REMOVE:
        daemon__api_conn_ref(conn);
        daemon__images(nd, req, reply, conn);
        break;
    case SWARMC__CONTROL_REQUEST__OP_SERVICE_LOGS:
        /* Logs name a service: the store resolves it (managers only). */
        if (nd->worker)
            handle_worker_request(conn, req);
        else
            daemon__logs(nd, conn, req->service_logs);
        break;
    case SWARMC__CONTROL_REQUEST__OP_LEAVE:
        handle_leave(conn, req->leave);
        break;
    default:
        if (nd->worker) {
            handle_worker_request(conn, req);
            break;
        }
        daemon__api_conn_ref(conn);
        daemon__cluster_request(nd, req, true, reply, conn);
        return;
    }
    proto_free(req);
}

/* Consumes every complete frame in conn->in. */
static void parse_frames(struct api_conn *conn)
{
    size_t off = 0;
    while (!conn->closed && conn->in.len - off >= 4) {
        const uint8_t *p = conn->in.data + off;
        uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (len > MAX_FRAME) {
            swm_log_warn("api: frame of %u bytes exceeds the %u limit; closing", len, MAX_FRAME);
            conn_close(conn);
            return;
        }
        if (conn->in.len - off - 4 < len)
            break;
        struct swm_err err = {0};
        Swarmc__ControlRequest *req =
            PROTO_UNPACK(Swarmc__ControlRequest, swarmc__control_request, p + 4, len, &err);
        off += 4 + len;
        if (req == NULL) {
            swm_log_warn("api: %s", err.msg);
            reply_error(conn, SWM_EPROTO, err.msg);
            continue;
        }
        handle_request(conn, req);
    }
    memmove(conn->in.data, conn->in.data + off, conn->in.len - off);
    conn->in.len -= off;
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct api_conn *conn = handle->data;
    if (swm_buf_reserve(&conn->in, 65536) < 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)conn->in.data + conn->in.len,
                       (unsigned)(conn->in.cap - conn->in.len - 1));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct api_conn *conn = stream->data;
    if (nread < 0) {
        conn_close(conn);
        return;
    }
    conn->in.len += (size_t)nread;
    daemon__api_conn_ref(conn);
    parse_frames(conn);
    daemon__api_conn_unref(conn);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct api_server *srv = server->data;
    if (status < 0)
        return;
    struct api_conn *conn = swm_calloc(1, sizeof(*conn));
    if (conn == NULL)
        return;
    conn->nd = srv->nd;
    conn->srv = srv;
    conn->refs = 1;
    conn->next = srv->conns;
    conn->prev = &srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = &conn->next;
    srv->conns = conn;
    srv->refs++;
    uv_pipe_init(&srv->nd->loop, &conn->pipe, 0);
    conn->pipe.data = conn;
    if (uv_accept(server, (uv_stream_t *)&conn->pipe) < 0 ||
        uv_read_start((uv_stream_t *)&conn->pipe, alloc_cb, read_cb) < 0)
        conn_close(conn);
}

static void server_closed(uv_handle_t *handle);

int daemon__api_open(struct node_daemon *nd, const char *path, struct api_server **out,
                     struct swm_err *err)
{
    struct api_server *srv = swm_calloc(1, sizeof(*srv));
    if (srv == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    if (strlen(path) >= sizeof(srv->path)) {
        swm_free(srv);
        return swm_err_set(err, -ENAMETOOLONG, "control socket path too long: %s", path);
    }
    snprintf(srv->path, sizeof(srv->path), "%s", path);
    srv->nd = nd;
    srv->refs = 1;
    uv_pipe_init(&nd->loop, &srv->pipe, 0);
    srv->pipe.data = srv;
    unlink(path);
    mode_t old = umask(0177); /* the socket is created 0600 */
    int rc = uv_pipe_bind(&srv->pipe, path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->pipe, 128, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&srv->pipe, server_closed);
        return swm_err_set(err, rc, "listening on %s: %s", path, uv_strerror(rc));
    }
    *out = srv;
    return 0;
}

static void server_closed(uv_handle_t *handle)
{
    server_unref(handle->data);
}

void daemon__api_close(struct api_server *srv)
{
    if (srv == NULL)
        return;
    unlink(srv->path);
    /* Requests still being answered keep their connection's memory (refs);
     * their replies are dropped. Idle clients no longer hold the loop. */
    for (struct api_conn *c = srv->conns; c != NULL; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&srv->pipe, server_closed);
}
