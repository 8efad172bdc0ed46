/* Tests of net/transport/port.c: the cluster port, one secure-channel
 * listener shared by services (docs/protocol.md "Cluster port"), over real
 * sockets on 127.0.0.1 and real channels. Every wait runs the loop until a
 * condition holds, with an iteration and time cap; nothing asserts on
 * timing. Leaks are caught by ASan and by uv_loop_close in the teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/buf.h"
#include "common/log.h"
#include "identities.h"
#include "net/transport/port.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define MAX_SIDES 8
#define RUN_CAP_NS (20 * SEC)

/* ----------------------------------------------------------- fixture -- */

static struct ca_keypair root;
static struct test_node mgr, mgr2, wkr;
static char worker_token[CA_TOKEN_LEN + 1];
static struct ca_join_secrets secrets;

/* What one connection reported, on either side. */
struct side {
    struct chan_conn *conn; /* NULL once closed */
    int established, closed, status, joined;
    char reason[256];
    char peer_id[SWM_ID_LEN + 1];
    char issued_id[SWM_ID_LEN + 1];
    struct swm_buf data; /* every message, concatenated */
    size_t messages;
    /* Client: what to send from `established`. A service hello if hello is
     * not 0, then `first` if first_len is not 0, in the same burst. */
    enum chan_service hello;
    const uint8_t *first;
    size_t first_len;
};

/* A service as the tests offer it: the connections it was given. */
struct service {
    struct side sides[MAX_SIDES];
    int n;
    bool keep;       /* do nothing in accept (breaks the contract) */
    bool close_self; /* close in accept instead of taking over */
};

static uv_loop_t loop;
static uv_timer_t guard;
static struct side cli[MAX_SIDES];
static struct service dispatcher, raft, control, joins;
static FILE *log_file;
static struct chan_port *port; /* the test's, until it closes it */
static int64_t dial_keepalive; /* of the connections tests dial; 0 = default */

static void guard_fired(uv_timer_t *t)
{
}

static int setup(void **state)
{
    uint8_t seed[32] = {100};
    ca_keypair_from_seed(&root, seed);
    test_node_make(&mgr, &root, CA_ROLE_MANAGER, 1, "manager000000000000000001");
    test_node_make(&mgr2, &root, CA_ROLE_MANAGER, 3, "manager000000000000000003");
    test_node_make(&wkr, &root, CA_ROLE_WORKER, 2, "worker0000000000000000002");
    assert_int_equal(ca_token_generate(root.pk, worker_token), 0);
    struct ca_token t;
    assert_int_equal(ca_token_parse(&t, worker_token, NULL), 0);
    memcpy(secrets.worker, t.secret, sizeof(secrets.worker));
    return 0;
}

static int reset(void **state)
{
    memset(cli, 0, sizeof(cli));
    memset(&dispatcher, 0, sizeof(dispatcher));
    memset(&raft, 0, sizeof(raft));
    memset(&control, 0, sizeof(control));
    memset(&joins, 0, sizeof(joins));
    dial_keepalive = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    /* Keeps UV_RUN_ONCE from sleeping for long when nothing else is due. */
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, guard_fired, 5, 5);
    log_file = tmpfile();
    assert_non_null(log_file);
    swm_log_set_stream(log_file);
    return 0;
}

static void close_port(void)
{
    chan_port_close(port);
    port = NULL;
}

static void free_sides(struct side *s, int n)
{
    for (int i = 0; i < n; i++)
        swm_buf_free(&s[i].data);
}

static int teardown_test(void **state)
{
    /* Whatever a failed test left open. */
    close_port();
    for (int i = 0; i < MAX_SIDES; i++)
        chan_conn_close(cli[i].conn);
    uv_close((uv_handle_t *)&guard, NULL);
    /* What is left is closing handles and lingering writes, all bounded;
     * the cap only matters after a failed test. */
    uint64_t deadline = uv_hrtime() + RUN_CAP_NS;
    while (uv_loop_alive(&loop) && uv_hrtime() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    int rc = uv_loop_close(&loop);
    free_sides(cli, MAX_SIDES);
    free_sides(dispatcher.sides, MAX_SIDES);
    free_sides(raft.sides, MAX_SIDES);
    free_sides(control.sides, MAX_SIDES);
    free_sides(joins.sides, MAX_SIDES);
    swm_log_set_stream(stderr);
    fclose(log_file);
    if (rc != 0)
        fail_msg("handles left open on the loop: %s", uv_strerror(rc));
    return 0;
}

/* The log written during the test so far (static buffer). */
static const char *log_text(void)
{
    static char buf[16384];
    fflush(log_file);
    long end = ftell(log_file);
    rewind(log_file);
    size_t n = fread(buf, 1, sizeof(buf) - 1, log_file);
    buf[n] = '\0';
    fseek(log_file, end, SEEK_SET);
    return buf;
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void assert_contains(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text, needle);
}

#define RUN_UNTIL(expr)                                                                            \
    do {                                                                                           \
        bool cond_ok_ = false;                                                                     \
        uint64_t deadline_ = uv_hrtime() + RUN_CAP_NS;                                             \
        for (int i_ = 0; i_ < 200000 && uv_hrtime() < deadline_; i_++) {                           \
            if ((cond_ok_ = (expr)))                                                               \
                break;                                                                             \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        }                                                                                          \
        if (!cond_ok_ && !(expr))                                                                  \
            fail_msg("timed out waiting for %s", #expr);                                           \
    } while (0)

/* ----------------------------------------------------------- callbacks -- */

static void on_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct side *s = chan_conn_user(conn);
    s->established++;
    snprintf(s->peer_id, sizeof(s->peer_id), "%s", peer->node_id);
    struct swm_err err = {0};
    if (s->hello != 0 && chan_service_hello(conn, s->hello, &err) < 0)
        fail_msg("hello: %s", err.msg);
    if (s->first_len > 0 && chan_conn_send(conn, s->first, s->first_len, &err) < 0)
        fail_msg("first message: %s", err.msg);
}

static void on_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct side *s = arg != NULL ? arg : chan_conn_user(conn);
    assert_int_equal(swm_buf_append(&s->data, data, len), 0);
    s->messages++;
}

static void on_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct side *s = arg != NULL ? arg : chan_conn_user(conn);
    s->closed++;
    s->status = status;
    s->conn = NULL;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

static void on_joined(struct chan_conn *conn, const struct ca_cert *cert, void *arg)
{
    struct side *s = chan_conn_user(conn);
    s->joined++;
    snprintf(s->issued_id, sizeof(s->issued_id), "%s", cert->node_id);
}

static const struct chan_conn_callbacks client_cbs = {
    .established = on_established,
    .data = on_data,
    .closed = on_closed,
    .joined = on_joined,
};

/* The callbacks a service takes a connection over with: arg is its side. */
static struct side *take_over(struct service *svc, struct chan_conn *conn)
{
    assert_true(svc->n < MAX_SIDES);
    struct side *s = &svc->sides[svc->n++];
    s->conn = conn;
    struct chan_conn_callbacks cbs = {.data = on_data, .closed = on_closed, .arg = s};
    if (svc->keep || svc->close_self) {
        if (svc->close_self)
            chan_conn_close(conn);
        s->conn = NULL;
        return s;
    }
    chan_conn_set_callbacks(conn, &cbs);
    return s;
}

static void svc_accept(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct side *s = take_over(arg, conn);
    snprintf(s->peer_id, sizeof(s->peer_id), "%s", peer->node_id);
}

static void on_join(struct chan_conn *conn, const uint8_t pk[CA_PUBKEY_LEN], int role, void *arg)
{
    take_over(arg, conn);
    struct ca_cert c;
    assert_int_equal(ca_cert_issue(&c, &root, "worker0000000000000000009", TEST_CLUSTER_ID, role,
                                   pk, test_wall_now, CA_CERT_EXPIRY_DEFAULT, NULL),
                     0);
    assert_int_equal(chan_conn_send_cert(conn, &c, NULL), 0);
}

/* ------------------------------------------------------------ helpers -- */

static struct chan_config server_config(void)
{
    return (struct chan_config){
        .identity = &mgr.key,
        .cert = &mgr.cert,
        .root_pk = root.pk,
        .wall_clock = test_wall_clock,
    };
}

/* Opens the port with the daemon's offers: raft for managers, the
 * dispatcher for everyone, control for managers. */
static void open_port(const struct chan_config *cfg, char addr[32])
{
    assert_null(port);
    struct swm_err err = {0};
    if (chan_port_open(&loop, "127.0.0.1:0", cfg, NULL, &port, &err) < 0)
        fail_msg("open: %s", err.msg);
    assert_true(chan_port_port(port) > 0);
    snprintf(addr, 32, "127.0.0.1:%d", chan_port_port(port));
    unsigned managers = CA_ROLE_BIT(CA_ROLE_MANAGER);
    assert_int_equal(chan_port_offer(port, CHAN_SERVICE_RAFT, svc_accept, managers, &raft), 0);
    assert_int_equal(
        chan_port_offer(port, CHAN_SERVICE_DISPATCHER, svc_accept, CA_ROLES_ANY, &dispatcher), 0);
}

static void dial(const char *addr, const struct test_node *n, struct side *s)
{
    struct chan_config cfg = {
        .identity = &n->key,
        .cert = &n->cert,
        .root_pk = root.pk,
        .wall_clock = test_wall_clock,
        .keepalive_interval = dial_keepalive,
    };
    struct swm_err err = {0};
    if (chan_conn_connect(&loop, addr, &cfg, NULL, &client_cbs, &s->conn, &err) < 0)
        fail_msg("connect: %s", err.msg);
    chan_conn_set_user(s->conn, s);
}

static void dial_service(const char *addr, const struct test_node *n, struct side *s,
                         enum chan_service svc)
{
    s->hello = svc;
    dial(addr, n, s);
}

/* Dials with a first message other than a valid hello and waits until the
 * port closes the connection. */
static void dial_refused(const char *addr, struct side *s, const void *first, size_t len)
{
    s->first = first;
    s->first_len = len;
    dial(addr, &wkr, s);
    RUN_UNTIL(s->closed == 1);
    assert_int_equal(s->established, 1);
    assert_int_equal(s->messages, 0);
}

static void send_ok(struct chan_conn *conn, const char *msg)
{
    struct swm_err err = {0};
    if (chan_conn_send(conn, msg, strlen(msg), &err) < 0)
        fail_msg("send: %s", err.msg);
}

static void assert_data(const struct side *s, const char *want)
{
    assert_int_equal(s->data.len, strlen(want));
    assert_memory_equal(s->data.data, want, strlen(want));
}

/* -------------------------------------------------------------- tests -- */

/* A worker reaches the dispatcher, which takes the connection over: a
 * message sent right behind the hello, in the same burst (and, with one
 * loop for both ends, the same read as the handshake's end), reaches the
 * service, and messages flow both ways after. */
static void test_dispatcher_takes_over(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    open_port(&cfg, addr);
    cli[0].first = (const uint8_t *)"first";
    cli[0].first_len = 5;
    dial_service(addr, &wkr, &cli[0], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 1 && dispatcher.sides[0].messages == 1);
    assert_string_equal(dispatcher.sides[0].peer_id, wkr.id);
    assert_data(&dispatcher.sides[0], "first");
    assert_int_equal(raft.n, 0);

    send_ok(dispatcher.sides[0].conn, "reply");
    RUN_UNTIL(cli[0].messages == 1);
    assert_data(&cli[0], "reply");
    send_ok(cli[0].conn, "second");
    send_ok(cli[0].conn, "third");
    RUN_UNTIL(dispatcher.sides[0].messages == 3);
    assert_data(&dispatcher.sides[0], "firstsecondthird");

    chan_conn_close(cli[0].conn);
    RUN_UNTIL(cli[0].closed == 1 && dispatcher.sides[0].closed == 1);
    assert_int_equal(dispatcher.sides[0].status, 0);
    assert_int_equal(cli[0].status, 0);
    assert_int_equal(count_of(log_text(), "cluster port: connection refused"), 0);
    close_port();
}

/* Raft is for managers: a worker is refused with one line naming it, a
 * manager gets through. */
static void test_worker_refused_raft(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    open_port(&cfg, addr);
    dial_service(addr, &wkr, &cli[0], CHAN_SERVICE_RAFT);
    RUN_UNTIL(cli[0].closed == 1);
    assert_int_equal(raft.n, 0);
    const char *log = log_text();
    assert_int_equal(count_of(log, "cluster port: connection refused"), 1);
    assert_contains(log, "role worker may not use service raft");
    assert_contains(log, "node=worker0000000000000000002");
    assert_contains(log, "remote=127.0.0.1:");

    dial_service(addr, &mgr2, &cli[1], CHAN_SERVICE_RAFT);
    RUN_UNTIL(raft.n == 1);
    assert_string_equal(raft.sides[0].peer_id, mgr2.id);
    send_ok(cli[1].conn, "append");
    RUN_UNTIL(raft.sides[0].messages == 1);
    assert_data(&raft.sides[0], "append");
    /* Managers may use the dispatcher too. */
    dial_service(addr, &mgr2, &cli[2], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 1);
    assert_int_equal(cli[1].closed + cli[2].closed, 0);
    assert_int_equal(count_of(log_text(), "cluster port: connection refused"), 1);
    close_port();
    RUN_UNTIL(cli[1].closed == 1 && cli[2].closed == 1);
}

/* Bad first messages each close their connection with a reason, while
 * the port keeps serving the connection before and the one after. */
static void test_bad_hellos(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    open_port(&cfg, addr);
    dial_service(addr, &wkr, &cli[0], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 1);

    static const uint8_t unknown[2] = {1, 9}, zero[2] = {1, 0}, version[2] = {7, 2};
    uint8_t garbage[100];
    randombytes_buf(garbage, sizeof(garbage));
    garbage[0] = 1; /* a plausible version does not help */
    dial_refused(addr, &cli[1], unknown, sizeof(unknown));
    assert_contains(log_text(), "unknown service 9");
    dial_refused(addr, &cli[2], zero, sizeof(zero));
    assert_contains(log_text(), "unknown service 0");
    dial_refused(addr, &cli[3], version, sizeof(version));
    assert_contains(log_text(), "unsupported service hello version 7");
    dial_refused(addr, &cli[4], garbage, sizeof(garbage));
    assert_contains(log_text(), "no service hello: the first message has 100 bytes");
    assert_int_equal(count_of(log_text(), "cluster port: connection refused"), 4);
    assert_int_equal(dispatcher.n, 1);

    dial_service(addr, &wkr, &cli[5], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 2);
    send_ok(cli[0].conn, "still");
    send_ok(cli[5].conn, "new");
    RUN_UNTIL(dispatcher.sides[0].messages == 1 && dispatcher.sides[1].messages == 1);
    assert_data(&dispatcher.sides[0], "still");
    assert_data(&dispatcher.sides[1], "new");
    close_port();
    RUN_UNTIL(cli[0].closed == 1 && cli[5].closed == 1);
}

/* A connection that sends nothing after its handshake is closed once the
 * handshake timeout passes; the port goes on serving. */
static void test_hello_timeout(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    cfg.handshake_timeout = 300 * MS;
    open_port(&cfg, addr);
    dial(addr, &wkr, &cli[0]);
    RUN_UNTIL(cli[0].established == 1);
    RUN_UNTIL(cli[0].closed == 1);
    assert_int_equal(dispatcher.n + raft.n, 0);
    const char *log = log_text();
    assert_int_equal(count_of(log, "cluster port: connection refused"), 1);
    assert_contains(log, "no service hello within 300 ms");
    assert_contains(log, "node=worker0000000000000000002");

    dial_service(addr, &wkr, &cli[1], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 1);
    send_ok(dispatcher.sides[0].conn, "hi");
    RUN_UNTIL(cli[1].messages == 1);
    close_port();
    RUN_UNTIL(cli[1].closed == 1);
}

/* A withdrawn service refuses new connections; those it already took stay
 * with it. A service never offered is refused the same way. */
static void test_withdrawn_service(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    open_port(&cfg, addr);
    dial_service(addr, &wkr, &cli[0], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 1);
    assert_int_equal(chan_port_offer(port, CHAN_SERVICE_DISPATCHER, NULL, 0, NULL), 0);

    dial_service(addr, &wkr, &cli[1], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(cli[1].closed == 1);
    assert_contains(log_text(), "service dispatcher is not offered");
    dial_service(addr, &mgr2, &cli[2], CHAN_SERVICE_CONTROL);
    RUN_UNTIL(cli[2].closed == 1);
    assert_contains(log_text(), "service control is not offered");
    assert_int_equal(dispatcher.n, 1);

    send_ok(cli[0].conn, "ping");
    RUN_UNTIL(dispatcher.sides[0].messages == 1);
    send_ok(dispatcher.sides[0].conn, "pong");
    RUN_UNTIL(cli[0].messages == 1);
    assert_int_equal(cli[0].closed, 0);

    /* Offered again, it is reachable again. */
    assert_int_equal(chan_port_offer(port, CHAN_SERVICE_CONTROL, svc_accept,
                                     CA_ROLE_BIT(CA_ROLE_MANAGER), &control),
                     0);
    dial_service(addr, &mgr2, &cli[3], CHAN_SERVICE_CONTROL);
    RUN_UNTIL(control.n == 1);
    close_port();
    RUN_UNTIL(cli[0].closed == 1 && cli[3].closed == 1);
}

/* An accept that neither takes the connection over nor closes it: the
 * port closes it. One that closes it: closed once. The port serves on. */
static void test_accept_must_take_over(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    open_port(&cfg, addr);
    dispatcher.keep = true;
    dial_service(addr, &wkr, &cli[0], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(cli[0].closed == 1);
    assert_int_equal(dispatcher.n, 1);
    dispatcher.keep = false;
    dispatcher.close_self = true;
    dial_service(addr, &wkr, &cli[1], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(cli[1].closed == 1);
    assert_int_equal(dispatcher.n, 2);
    dispatcher.close_self = false;
    dial_service(addr, &wkr, &cli[2], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 3);
    send_ok(cli[2].conn, "ok");
    RUN_UNTIL(dispatcher.sides[2].messages == 1);
    /* The first two got no callbacks from the port after accept. */
    assert_int_equal(dispatcher.sides[0].closed + dispatcher.sides[1].closed, 0);
    close_port();
    RUN_UNTIL(cli[2].closed == 1 && dispatcher.sides[2].closed == 1);
}

static struct chan_config join_config(struct ca_keypair *joiner, struct ca_token *tok)
{
    uint8_t seed[32] = {9};
    ca_keypair_from_seed(joiner, seed);
    assert_int_equal(ca_token_parse(tok, worker_token, NULL), 0);
    return (struct chan_config){
        .identity = joiner,
        .join_token = tok,
        .join_role = CA_ROLE_WORKER,
        .wall_clock = test_wall_clock,
    };
}

/* A join reaches the join handler, which takes it over and sends the
 * certificate; the joiner gets it. */
static void test_join_handler(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    cfg.join_secrets = &secrets;
    open_port(&cfg, addr);
    chan_port_set_join(port, on_join, &joins);
    struct ca_keypair joiner;
    struct ca_token tok;
    struct chan_config jcfg = join_config(&joiner, &tok);
    struct swm_err err = {0};
    if (chan_conn_connect(&loop, addr, &jcfg, NULL, &client_cbs, &cli[0].conn, &err) < 0)
        fail_msg("connect: %s", err.msg);
    chan_conn_set_user(cli[0].conn, &cli[0]);
    RUN_UNTIL(cli[0].closed == 1 && joins.n == 1 && joins.sides[0].closed == 1);
    assert_int_equal(cli[0].joined, 1);
    assert_string_equal(cli[0].issued_id, "worker0000000000000000009");
    assert_int_equal(cli[0].status, 0);
    assert_int_equal(joins.sides[0].status, 0);
    assert_int_equal(count_of(log_text(), "cluster port: connection refused"), 0);
    close_port();
}

/* Without a join handler, a joiner's connection is closed. */
static void test_join_without_handler(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    cfg.join_secrets = &secrets;
    open_port(&cfg, addr);
    chan_port_set_join(port, on_join, &joins);
    chan_port_set_join(port, NULL, NULL);
    struct ca_keypair joiner;
    struct ca_token tok;
    struct chan_config jcfg = join_config(&joiner, &tok);
    struct swm_err err = {0};
    if (chan_conn_connect(&loop, addr, &jcfg, NULL, &client_cbs, &cli[0].conn, &err) < 0)
        fail_msg("connect: %s", err.msg);
    chan_conn_set_user(cli[0].conn, &cli[0]);
    RUN_UNTIL(cli[0].closed == 1);
    assert_int_equal(cli[0].joined, 0);
    assert_int_equal(joins.n, 0);
    assert_contains(log_text(), "does not accept joins");

    /* The port still serves its services. */
    dial_service(addr, &wkr, &cli[1], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 1);
    close_port();
    RUN_UNTIL(cli[1].closed == 1);
}

/* Closing the port closes every connection, those handed over included
 * (their owners see SWM_ESHUTDOWN), and those still waiting for a hello. */
static void test_close_shuts_down_services(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    open_port(&cfg, addr);
    dial_service(addr, &wkr, &cli[0], CHAN_SERVICE_DISPATCHER);
    dial_service(addr, &mgr2, &cli[1], CHAN_SERVICE_RAFT);
    dial(addr, &wkr, &cli[2]); /* no hello: waits in the port */
    RUN_UNTIL(dispatcher.n == 1 && raft.n == 1 && cli[2].established == 1);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);

    close_port();
    RUN_UNTIL(dispatcher.sides[0].closed == 1 && raft.sides[0].closed == 1);
    assert_int_equal(dispatcher.sides[0].status, SWM_ESHUTDOWN);
    assert_int_equal(raft.sides[0].status, SWM_ESHUTDOWN);
    RUN_UNTIL(cli[0].closed == 1 && cli[1].closed == 1 && cli[2].closed == 1);
    assert_int_equal(count_of(log_text(), "cluster port: connection refused"), 0);
    /* Nothing more is reported, however long the loop runs. */
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(dispatcher.sides[0].closed, 1);
    assert_int_equal(raft.sides[0].closed, 1);
}

/* A handed-over connection with nothing to say stays open across many
 * keepalives on both ends (a keepalive written from the tick once counted
 * as a write stalled for 2^64 ns, "peer is not reading"). */
static void test_idle_session_survives_keepalives(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    cfg.keepalive_interval = 40 * MS;
    open_port(&cfg, addr);
    dial_keepalive = 40 * MS;
    dial_service(addr, &wkr, &cli[0], CHAN_SERVICE_DISPATCHER);
    RUN_UNTIL(dispatcher.n == 1);
    const struct chan *client = chan_conn_channel(cli[0].conn);
    const struct chan *server = chan_conn_channel(dispatcher.sides[0].conn);
    uint64_t tx0 = chan_tx_count(client), stx0 = chan_tx_count(server);
    /* Both sides have sent several keepalives, or one side is gone. */
    RUN_UNTIL(cli[0].closed == 1 || dispatcher.sides[0].closed == 1 ||
              (chan_tx_count(client) >= tx0 + 5 && chan_tx_count(server) >= stx0 + 5));
    if (cli[0].closed == 1)
        fail_msg("client closed: %s", cli[0].reason);
    if (dispatcher.sides[0].closed == 1)
        fail_msg("service closed: %s", dispatcher.sides[0].reason);
    assert_int_equal(dispatcher.sides[0].messages + cli[0].messages, 0);
    send_ok(cli[0].conn, "awake");
    RUN_UNTIL(dispatcher.sides[0].messages == 1);
    close_port();
    RUN_UNTIL(cli[0].closed == 1);
}

/* Argument checks: services out of range, an address that does not
 * parse, closing NULL. */
static void test_api_errors(void **state)
{
    char addr[32];
    struct chan_config cfg = server_config();
    struct chan_port *p = NULL;
    struct swm_err err = {0};
    assert_int_equal(chan_port_open(&loop, "nonsense", &cfg, NULL, &p, &err), -EINVAL);
    assert_null(p);
    chan_port_close(NULL);

    open_port(&cfg, addr);
    assert_int_equal(chan_port_offer(port, 0, svc_accept, CA_ROLES_ANY, &control), -EINVAL);
    assert_int_equal(chan_port_offer(port, CHAN_SERVICE_COUNT, svc_accept, CA_ROLES_ANY, &control),
                     -EINVAL);
    dial(addr, &wkr, &cli[0]);
    assert_int_equal(chan_service_hello(cli[0].conn, CHAN_SERVICE_RAFT, &err), -EAGAIN);
    RUN_UNTIL(cli[0].established == 1);
    assert_int_equal(chan_service_hello(cli[0].conn, CHAN_SERVICE_COUNT, &err), -EINVAL);
    assert_int_equal(chan_service_hello(cli[0].conn, CHAN_SERVICE_DISPATCHER, &err), 0);
    RUN_UNTIL(dispatcher.n == 1);
    close_port();
    RUN_UNTIL(cli[0].closed == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dispatcher_takes_over, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_worker_refused_raft, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_bad_hellos, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_hello_timeout, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_withdrawn_service, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_accept_must_take_over, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_join_handler, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_join_without_handler, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_close_shuts_down_services, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_idle_session_survives_keepalives, reset,
                                        teardown_test),
        cmocka_unit_test_setup_teardown(test_api_errors, reset, teardown_test),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
