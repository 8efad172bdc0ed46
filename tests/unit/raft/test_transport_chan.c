/* manager/raft/transport_chan.c on 127.0.0.1 with test certificates, each
 * member on a cluster port of its own (net/transport/port.h): frames both
 * ways, the raft service of the port (a manager's hello accepted, a
 * worker's refused), refusal of another cluster's manager, binding of raft
 * ids to certificates, reconnect after a peer restart, the queue and
 * inbound bounds and leak-free close. Loops are bounded by iteration
 * counts; nothing asserts timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../transport/identities.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "manager/raft/raft.h"
#include "manager/raft/transport_chan.h"
#include "net/transport/conn.h"
#include "net/transport/port.h"
#include "transport_fixture.h"

#define SEC INT64_C(1000000000)

/* --- certificates ------------------------------------------------------- */

static struct ca_keypair root, other_root;
/* m[1..3]: managers; wkr: a worker; rogue: a manager of another cluster. */
static struct test_node m[4], wkr, rogue;

static const char *const node_ids[4] = {NULL, "manager000000000000000001",
                                        "manager000000000000000002", "manager000000000000000003"};

static struct chan_config config_of(const struct test_node *n)
{
    return (struct chan_config){
        .identity = &n->key,
        .cert = &n->cert,
        .root_pk = n->root_pk,
        .wall_clock = test_wall_clock,
    };
}

/* Raft ids of the test: manager N has raft id N. */
static uint64_t test_raft_id_of(const char *node_id, void *arg)
{
    for (uint64_t i = 1; i < 4; i++)
        if (strcmp(node_id, node_ids[i]) == 0)
            return i;
    return 999;
}

static int group_setup(void **state)
{
    uint8_t seed[32] = {100};
    ca_keypair_from_seed(&root, seed);
    seed[0] = 101;
    ca_keypair_from_seed(&other_root, seed);
    for (int i = 1; i < 4; i++)
        test_node_make(&m[i], &root, CA_ROLE_MANAGER, i, node_ids[i]);
    test_node_make(&wkr, &root, CA_ROLE_WORKER, 9, "worker0000000000000000009");
    /* A manager certificate with our cluster id, but from another root. */
    test_node_make(&rogue, &other_root, CA_ROLE_MANAGER, 10, node_ids[2]);
    return 0;
}

/* --- members: a transport on its own cluster port ----------------------- */

#define MAX_MEMBERS 8

struct member {
    struct raft_transport *t;
    struct chan_port *port;
};

static struct member members[MAX_MEMBERS];

static int setup(void **state)
{
    memset(members, 0, sizeof(members));
    return tfx_setup(state);
}

/* A cluster port as n's daemon would open it: n's certificate, any peer
 * role (the services choose), raft-sized frames. */
static struct chan_port *open_port(const struct test_node *n, const char *addr)
{
    struct chan_config cfg = config_of(n);
    cfg.max_frame = RAFT_MESSAGE_MAX_SIZE;
    struct chan_port *p = NULL;
    struct swm_err err = {0};
    if (chan_port_open(&F->loop, addr, &cfg, NULL, &p, &err) != 0)
        fail_msg("port: %s", err.msg);
    assert_true(chan_port_port(p) > 0);
    return p;
}

static void remember(struct raft_transport *t, struct chan_port *port)
{
    for (size_t i = 0; i < MAX_MEMBERS; i++) {
        if (members[i].t == NULL) {
            members[i] = (struct member){t, port};
            return;
        }
    }
    fail_msg("too many members");
}

static struct member *member_of(const struct raft_transport *t)
{
    for (size_t i = 0; i < MAX_MEMBERS; i++)
        if (members[i].t == t)
            return &members[i];
    fail_msg("not a member");
    return NULL;
}

/* The port number t's peers dial. */
static int port_of(const struct raft_transport *t)
{
    return chan_port_port(member_of(t)->port);
}

static struct raft_transport *open_as(uint64_t id, const struct test_node *n, const char *addr,
                                      struct sink *s)
{
    struct chan_port *port = open_port(n, addr);
    struct raft_transport *t = NULL;
    struct swm_err err = {0};
    struct chan_config cfg = config_of(n);
    int rc = raft_chan_transport_open(&F->loop, id, port, &cfg, &t, &err);
    if (rc != 0)
        fail_msg("open: %s", err.msg);
    t->recv = sink_recv;
    t->recv_arg = s;
    remember(t, port);
    return t;
}

static struct raft_transport *open_tr(uint64_t id, struct sink *s)
{
    return open_as(id, &m[id], "127.0.0.1:0", s);
}

/* Closes the port of t, whose transport is closed already. */
static void close_port_of(struct raft_transport *t)
{
    struct member *mb = member_of(t);
    chan_port_close(mb->port);
    *mb = (struct member){0};
}

/* Closes t, then its port: the order the transport requires. */
static void close_member(struct raft_transport *t)
{
    raft_transport_close(t);
    close_port_of(t);
}

/* Closes members and runs the loop until they have freed themselves. */
static void close_members(struct raft_transport **ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close_member(ts[i]);
    close_all(NULL, 0);
}

static void point_at(struct raft_transport *from, uint64_t id, struct raft_transport *to)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_of(to));
    assert_int_equal(raft_chan_transport_set_peer(from, id, addr), 0);
}

/* --- tests -------------------------------------------------------------- */

static void test_exchange_both_ways(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, &sa);
    struct raft_transport *b = open_tr(2, &sb);
    point_at(a, 2, b);
    point_at(b, 1, a);
    for (uint32_t i = 1; i <= 3; i++) {
        assert_int_equal(send_tagged(a, 2, 100 * i, i), 0);
        assert_int_equal(send_tagged(b, 1, 50 * i, 10 + i), 0);
    }
    /* Never delivered from inside send. */
    assert_int_equal(sa.frames + sb.frames, 0);
    wait_frames(&sb, 3);
    wait_frames(&sa, 3);
    assert_int_equal(sb.bytes, 600);
    assert_int_equal(sa.bytes, 300);
    assert_int_equal(sa.corrupt + sb.corrupt + sa.out_of_order + sb.out_of_order, 0);
    assert_int_equal(sa.last_tag, 13);
    /* Once connected, many frames and a large one go through in order. */
    for (uint32_t tag = 100; tag < 400; tag++)
        assert_int_equal(send_tagged(a, 2, 64 + tag, tag), 0);
    assert_int_equal(send_tagged(a, 2, 3u << 20, 400), 0);
    wait_frames(&sb, 304);
    assert_int_equal(sb.last_len, 3u << 20);
    assert_int_equal(sb.corrupt + sb.out_of_order, 0);
    assert_int_equal(send_tagged(a, 2, 0, 1), -EMSGSIZE);
    assert_int_equal(send_tagged(a, 3, 10, 1), SWM_ENOTFOUND);
    struct raft_transport *ts[] = {a, b};
    close_members(ts, 2);
}

static void test_open_checks(void **state)
{
    struct raft_transport *x = NULL;
    struct swm_err err = {0};
    struct chan_port *port = open_port(&m[1], "127.0.0.1:0");
    struct chan_config cfg = config_of(&wkr);
    /* A worker certificate cannot serve raft. */
    assert_int_equal(raft_chan_transport_open(&F->loop, 1, port, &cfg, &x, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "worker"));
    cfg = config_of(&m[1]);
    assert_int_equal(raft_chan_transport_open(&F->loop, 0, port, &cfg, &x, &err), -EINVAL);
    assert_int_equal(raft_chan_transport_open(&F->loop, 1, NULL, &cfg, &x, &err), -EINVAL);
    cfg.wall_clock = NULL;
    assert_int_equal(raft_chan_transport_open(&F->loop, 1, port, &cfg, &x, &err), -EINVAL);
    /* A key that is not the certificate's. */
    cfg = config_of(&m[1]);
    cfg.identity = &m[2].key;
    assert_int_equal(raft_chan_transport_open(&F->loop, 1, port, &cfg, &x, &err), -EINVAL);
    assert_null(x);
    chan_port_close(port);
    struct sink sa = {0};
    struct raft_transport *a = open_tr(1, &sa);
    assert_int_equal(raft_chan_transport_set_peer(a, 2, "localhost:1"), -EINVAL);
    assert_int_equal(raft_chan_transport_set_peer(a, 0, "127.0.0.1:1"), -EINVAL);
    /* Our own certificate must map to our raft id. */
    struct raft_transport *b = open_as(2, &m[1], "127.0.0.1:0", &sa);
    assert_int_equal(raft_chan_transport_bind_ids(b, test_raft_id_of, NULL), -EINVAL);
    assert_int_equal(raft_chan_transport_bind_ids(a, test_raft_id_of, NULL), 0);
    struct raft_transport *ts[] = {a, b};
    close_members(ts, 2);
}

/* What a raw channel client saw. */
struct client {
    struct chan_conn *conn;
    enum chan_service hello; /* sent first if not 0 */
    uint32_t tag;            /* of the frame sent next */
    int established, closed, status;
};

static void cl_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct client *c = arg;
    c->established++;
    if (c->hello != 0)
        assert_int_equal(chan_service_hello(conn, c->hello, NULL), 0);
    /* Then a frame, in the same write: delivered only if the port hands
     * the connection to the transport. */
    uint8_t *b = make_frame(64, c->tag);
    chan_conn_send(conn, b, 64, NULL);
    free(b);
}

static void cl_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct client *c = arg;
    c->closed++;
    c->status = status;
    c->conn = NULL;
}

static bool client_closed(void *arg)
{
    return ((struct client *)arg)->closed > 0;
}

/* Dials 127.0.0.1:port with n's certificate; sends `hello` (if not 0) and
 * a frame tagged `tag` once established. */
static void dial(struct client *cl, const struct test_node *n, int port, enum chan_service hello,
                 uint32_t tag)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct chan_config cfg = config_of(n);
    struct chan_conn_callbacks cbs = {
        .established = cl_established, .closed = cl_closed, .arg = cl};
    cl->hello = hello;
    cl->tag = tag;
    assert_int_equal(chan_conn_connect(&F->loop, addr, &cfg, NULL, &cbs, &cl->conn, NULL), 0);
}

static void wait_log(const char *needle)
{
    for (int i = 0; i < MAX_ITERS && log_count(needle) == 0; i++)
        uv_run(&F->loop, UV_RUN_ONCE);
    if (log_count(needle) == 0) {
        fflush(F->log);
        fprintf(stderr, "log:\n%s", F->logbuf != NULL ? F->logbuf : "");
        fail_msg("no log line with \"%s\"", needle);
    }
}

/* The raft service of the port: a manager that says hello RAFT reaches
 * recv; a worker, a connection without a hello, and (once the transport
 * closed) anyone, are refused by the port. */
static void test_port_raft_service(void **state)
{
    struct sink sa = {0};
    struct raft_transport *a = open_tr(1, &sa);
    int port = port_of(a);

    struct client mgr = {0};
    dial(&mgr, &m[3], port, CHAN_SERVICE_RAFT, 7);
    wait_frames(&sa, 1);
    assert_int_equal(sa.last_tag, 7);
    assert_int_equal(sa.corrupt, 0);
    assert_int_equal(mgr.closed, 0);

    /* A worker of the cluster passes the port's handshake but may not use
     * raft. */
    struct client wk = {0};
    dial(&wk, &wkr, port, CHAN_SERVICE_RAFT, 8);
    assert_true(run_until(client_closed, &wk));
    assert_int_equal(wk.established, 1);
    assert_int_equal(log_count("role worker may not use service raft"), 1);

    /* A manager that sends a frame without a hello. */
    struct client bare = {0};
    dial(&bare, &m[2], port, 0, 9);
    assert_true(run_until(client_closed, &bare));
    assert_int_equal(log_count("no service hello"), 1);
    run_iters(10);
    assert_int_equal(sa.frames, 1);

    /* Closing the transport closes the connections it took over and
     * withdraws the service; the port stays open. */
    struct member *ma = member_of(a);
    struct chan_port *p = ma->port;
    *ma = (struct member){0};
    raft_transport_close(a);
    assert_true(run_until(client_closed, &mgr));
    struct client late = {0};
    dial(&late, &m[3], port, CHAN_SERVICE_RAFT, 10);
    assert_true(run_until(client_closed, &late));
    assert_int_equal(late.established, 1);
    assert_int_equal(log_count("service raft is not offered"), 1);
    assert_int_equal(sa.frames, 1);
    chan_port_close(p);
    close_all(NULL, 0);
}

/* Inbound connections past max_inbound are closed with a warning. */
static void test_inbound_bound(void **state)
{
    struct sink sa = {0};
    struct raft_transport *a = open_tr(1, &sa);
    raft_chan_transport_set_limits(a, &(struct raft_chan_limits){.max_inbound = 1});
    struct client c1 = {0}, c2 = {0};
    dial(&c1, &m[2], port_of(a), CHAN_SERVICE_RAFT, 1);
    wait_frames(&sa, 1);
    dial(&c2, &m[3], port_of(a), CHAN_SERVICE_RAFT, 2);
    assert_true(run_until(client_closed, &c2));
    assert_int_equal(log_count("too many inbound connections"), 1);
    assert_int_equal(c1.closed, 0);
    /* Once the first has gone, another is served. */
    chan_conn_close(c1.conn);
    assert_true(run_until(client_closed, &c1));
    struct client c3 = {0};
    dial(&c3, &m[3], port_of(a), CHAN_SERVICE_RAFT, 3);
    wait_frames(&sa, 2);
    assert_int_equal(sa.last_tag, 3);
    close_members(&a, 1);
    assert_int_equal(c3.closed, 1);
}

static void test_refuses_other_cluster(void **state)
{
    struct sink sa = {0}, sr = {0};
    struct raft_transport *a = open_tr(1, &sa);

    /* A manager of another cluster, both ways: each side's handshake
     * refuses the other's certificate. */
    struct raft_transport *r = open_as(2, &rogue, "127.0.0.1:0", &sr);
    point_at(a, 2, r);
    point_at(r, 1, a);
    for (uint32_t tag = 1; tag <= 20; tag++) {
        assert_int_equal(send_tagged(a, 2, 32, tag), 0);
        assert_int_equal(send_tagged(r, 1, 32, tag), 0);
        run_iters(10);
    }
    run_iters(50);
    assert_int_equal(sa.frames, 0);
    assert_int_equal(sr.frames, 0);
    assert_true(log_count("connection rejected") >= 2);
    struct raft_transport *ts[] = {a, r};
    close_members(ts, 2);
}

static int send_raft(struct raft_transport *t, uint64_t to, uint64_t from)
{
    struct raft_message msg = {.type = RAFT_MSG_HEARTBEAT, .from = from, .to = to, .term = 1};
    struct swm_buf b = {0};
    assert_int_equal(raft_message_encode(&msg, &b), 0);
    int rc = raft_transport_send(t, to, b.data, b.len);
    swm_buf_free(&b);
    return rc;
}

struct raft_sink {
    int frames;
    uint64_t last_from;
    int to_3; /* frames addressed to member 3 */
};

static void raft_recv(void *arg, const void *frame, size_t len)
{
    struct raft_sink *s = arg;
    struct raft_message *msg = NULL;
    assert_int_equal(raft_message_decode(frame, len, 0, &msg, NULL), 0);
    s->frames++;
    s->last_from = msg->from;
    if (msg->to == 3)
        s->to_3++;
    raft_message_free(msg);
}

static bool raft_frames(void *arg)
{
    return ((struct raft_sink *)arg)->frames > 0;
}

/* With ids bound, a manager can only speak as itself, and a member found
 * at a peer's address must be that peer. */
static void test_bound_ids(void **state)
{
    struct sink unused = {0};
    struct raft_sink sb = {0};
    struct raft_transport *a = open_tr(1, &unused);
    struct raft_transport *b = open_tr(2, &unused);
    b->recv = raft_recv;
    b->recv_arg = &sb;
    assert_int_equal(raft_chan_transport_bind_ids(a, test_raft_id_of, NULL), 0);
    assert_int_equal(raft_chan_transport_bind_ids(b, test_raft_id_of, NULL), 0);
    point_at(a, 2, b);
    assert_int_equal(send_raft(a, 2, 1), 0);
    assert_true(run_until(raft_frames, &sb));
    assert_int_equal(sb.last_from, 1);
    /* Manager 1 claims to be member 3: refused, and the connection goes. */
    assert_int_equal(send_raft(a, 2, 3), 0);
    wait_log("frame from another member");
    assert_int_equal(log_count("frame from another member"), 1);
    assert_int_equal(sb.frames, 1);
    /* Later frames under its own id go through on a new connection. */
    for (int i = 0; i < MAX_ITERS && sb.frames < 2; i++) {
        send_raft(a, 2, 1);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_int_equal(sb.last_from, 1);

    /* Member 3's address serves manager 2: a refuses to send there. */
    point_at(a, 3, b);
    assert_int_equal(send_raft(a, 3, 1), 0);
    wait_log("names another member");
    assert_int_equal(log_count("names another member"), 1);
    run_iters(20);
    assert_int_equal(sb.to_3, 0);
    struct raft_transport *ts[] = {a, b};
    close_members(ts, 2);
}

static void test_reconnect_after_peer_restart(void **state)
{
    struct sink sa = {0}, sb = {0}, sb2 = {0};
    struct raft_transport *a = open_tr(1, &sa);
    struct raft_transport *b = open_tr(2, &sb);
    int port = port_of(b);
    point_at(a, 2, b);
    assert_int_equal(send_tagged(a, 2, 64, 1), 0);
    wait_frames(&sb, 1);

    close_member(b);
    /* Frames sent while the peer is down may be lost; send never fails. */
    for (uint32_t tag = 2; tag < 40; tag++) {
        assert_int_equal(send_tagged(a, 2, 64, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct raft_transport *b2 = open_as(2, &m[2], addr, &sb2);
    /* Frames queued while a was backing off may arrive first; later ones
     * follow. */
    for (uint32_t tag = 1000; tag < 1000 + MAX_ITERS && sb2.last_tag < 1000; tag++) {
        assert_int_equal(send_tagged(a, 2, 64, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_true(sb2.frames > 0);
    assert_true(sb2.last_tag >= 1000);
    assert_int_equal(sb.frames, 1);
    assert_int_equal(sb2.corrupt, 0);
    assert_true(log_count("raft chan: connection lost") >= 1);
    struct raft_transport *ts[] = {a, b2};
    close_members(ts, 2);
}

static void test_queue_bound(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, &sa);
    struct raft_transport *b = open_tr(2, &sb);
    raft_chan_transport_set_limits(a, &(struct raft_chan_limits){.peer_queue_bytes = 65536});
    point_at(a, 2, b);
    /* Nothing can leave before the handshake, so the queue fills. */
    int accepted = 0, rc;
    while ((rc = send_tagged(a, 2, 1000, (uint32_t)accepted + 1)) == 0)
        accepted++;
    assert_int_equal(rc, -ENOBUFS);
    assert_int_equal(accepted, 65536 / 1000);
    wait_frames(&sb, accepted);
    run_iters(10);
    assert_int_equal(sb.frames, accepted);
    assert_int_equal(sb.out_of_order + sb.corrupt, 0);
    /* The queue drained: sending works again. */
    assert_int_equal(send_tagged(a, 2, 1000, 5000), 0);
    wait_frames(&sb, accepted + 1);
    /* A frame larger than the bound still fits an empty queue. */
    assert_int_equal(send_tagged(a, 2, 100000, 5001), 0);
    wait_frames(&sb, accepted + 2);
    assert_int_equal(sb.last_len, 100000);
    /* Connected: a burst past the channel's write bound is queued for its
     * drain and arrives in order, or is refused at our bound. */
    int sent = 0;
    for (uint32_t tag = 6000; tag < 6400; tag++)
        if (send_tagged(a, 2, 4000, tag) == 0)
            sent++;
    assert_true(sent >= 16);
    assert_true(sent < 400);
    wait_frames(&sb, accepted + 2 + sent);
    assert_int_equal(sb.out_of_order + sb.corrupt, 0);
    struct raft_transport *ts[] = {a, b};
    close_members(ts, 2);
}

/* Closing with large writes in flight and frames waiting for a handshake
 * frees everything (ASan) and leaves no handle (teardown). */
static void test_close_with_frames_in_flight(void **state)
{
    const size_t big = 4u << 20;
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, &sa);
    struct raft_transport *b = open_tr(2, &sb);
    point_at(a, 2, b);
    point_at(b, 1, a);
    for (uint32_t tag = 1; tag <= 6; tag++) {
        assert_int_equal(send_tagged(a, 2, big, tag), 0);
        assert_int_equal(send_tagged(b, 1, 1000, tag), 0);
    }
    wait_frames(&sb, 1);
    assert_true(sb.frames < 6);
    struct raft_transport *ts[] = {a, b};
    close_members(ts, 2);

    a = open_tr(1, &sa);
    b = open_tr(2, &sb);
    point_at(a, 2, b);
    assert_int_equal(send_tagged(a, 2, 1000, 1), 0);
    ts[0] = a;
    ts[1] = b;
    close_members(ts, 2);
}

/* recv may close the transport: nothing is delivered after that. */
static int close_count;
static void close_on_recv(void *arg, const void *frame, size_t len)
{
    close_count++;
    raft_transport_close(arg);
    assert_int_equal(raft_transport_send(arg, 1, "x", 1), SWM_ESHUTDOWN);
    assert_int_equal(raft_chan_transport_set_peer(arg, 1, "127.0.0.1:1"), SWM_ESHUTDOWN);
}

static void test_close_from_recv(void **state)
{
    struct sink sa = {0};
    struct raft_transport *a = open_tr(1, &sa);
    struct raft_transport *b = open_tr(2, NULL);
    b->recv = close_on_recv;
    b->recv_arg = b;
    point_at(a, 2, b);
    for (uint32_t tag = 1; tag <= 50; tag++)
        assert_int_equal(send_tagged(a, 2, 10, tag), 0);
    for (int i = 0; i < MAX_ITERS && close_count == 0; i++)
        uv_run(&F->loop, UV_RUN_ONCE);
    run_iters(5);
    assert_int_equal(close_count, 1);
    close_port_of(b);
    close_members(&a, 1);
}

/* Every allocation may fail: open, set_peer and send report -ENOMEM and
 * leak nothing; a dial that fails for memory is retried after backoff. */
static void test_oom(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *x = NULL;
    struct chan_config cfg = config_of(&m[1]);
    struct chan_port *xp = open_port(&m[1], "127.0.0.1:0");
    int rc = -1;
    for (long n = 0; rc != 0 && n < 100; n++) {
        swm_alloc_fail_after(n);
        rc = raft_chan_transport_open(&F->loop, 1, xp, &cfg, &x, NULL);
        swm_alloc_fail_reset();
        assert_true(rc == 0 || rc == -ENOMEM);
        run_iters(1);
    }
    assert_int_equal(rc, 0);
    remember(x, xp);
    x->recv = sink_recv;
    x->recv_arg = &sa;
    struct raft_transport *b = open_tr(2, &sb);
    swm_alloc_fail_after(0);
    assert_int_equal(raft_chan_transport_set_peer(x, 2, "127.0.0.1:1"), -ENOMEM);
    swm_alloc_fail_reset();
    point_at(x, 2, b);
    swm_alloc_fail_after(0);
    assert_int_equal(send_tagged(x, 2, 100, 1), -ENOMEM);
    swm_alloc_fail_reset();
    /* The frame is queued but the dial fails for memory: dropped, retried. */
    swm_alloc_fail_after(1);
    assert_int_equal(send_tagged(x, 2, 100, 2), 0);
    swm_alloc_fail_reset();
    for (uint32_t tag = 3; tag < 3 + MAX_ITERS && sb.frames == 0; tag++) {
        assert_int_equal(send_tagged(x, 2, 100, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_true(sb.frames > 0);
    assert_true(sb.last_tag >= 3);
    struct raft_transport *ts[] = {x, b};
    close_members(ts, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exchange_both_ways, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_open_checks, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_port_raft_service, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_inbound_bound, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_other_cluster, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_bound_ids, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_peer_restart, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_close_with_frames_in_flight, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_close_from_recv, setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_oom, setup, tfx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
