/* Tests of net/transport/conn.c: the libuv driver of the secure channel,
 * over real sockets on 127.0.0.1 (docs/protocol.md "libuv driver").
 * Every wait runs the loop until a condition holds, with an iteration and
 * time cap; nothing asserts on timing. Leaks are caught by ASan and by
 * uv_loop_close in the teardown. */
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

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "identities.h"
#include "net/transport/conn.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define MAX_SIDES 16
#define RUN_CAP_NS (20 * SEC)

/* ----------------------------------------------------------- fixture -- */

static struct ca_keypair root, other_root;
static struct test_node mgr, wkr, rogue;
static char worker_token[CA_TOKEN_LEN + 1];
static struct ca_join_secrets secrets;

/* What one connection reported. */
struct side {
    struct chan_conn *conn; /* NULL once closed */
    int established, closed, status, joined, join_requests, drains;
    char reason[256];
    char peer_id[SWM_ID_LEN + 1];
    char issued_id[SWM_ID_LEN + 1];
    struct swm_buf data; /* every message, concatenated */
    size_t messages;
};

/* The listener's connections, in the order they were established. */
struct server {
    struct side sides[MAX_SIDES];
    int n;
    bool echo;
};

static uv_loop_t loop_a, loop_b; /* b: a client loop a test can freeze */
static uv_timer_t guard_a, guard_b;
static struct server srv;
static struct side cli[MAX_SIDES];
static FILE *log_file;
static struct chan_listener *listener; /* the test's, until it closes it */

static void close_listener(void)
{
    chan_listener_close(listener);
    listener = NULL;
}

/* A plain TCP client that writes given bytes and notes when the server
 * closes on it. */
struct raw {
    uv_tcp_t tcp;
    uv_connect_t req;
    uv_write_t w;
    uint8_t out[4096];
    size_t out_len;
    bool used, connected, eof, closing, closed;
    char buf[4096];
};

static struct raw raws[32];

static struct chan_listener *listener; /* the test's, until it closes it */

static void guard_fired(uv_timer_t *t)
{
}

static int setup(void **state)
{
    uint8_t seed[32] = {100};
    ca_keypair_from_seed(&root, seed);
    seed[0] = 101;
    ca_keypair_from_seed(&other_root, seed);
    test_node_make(&mgr, &root, CA_ROLE_MANAGER, 1, "manager000000000000000001");
    test_node_make(&wkr, &root, CA_ROLE_WORKER, 2, "worker0000000000000000002");
    /* Same cluster id, but signed by another root. */
    test_node_make(&rogue, &other_root, CA_ROLE_WORKER, 4, "worker0000000000000000004");
    assert_int_equal(ca_token_generate(root.pk, worker_token), 0);
    struct ca_token t;
    assert_int_equal(ca_token_parse(&t, worker_token, NULL), 0);
    memcpy(secrets.worker, t.secret, sizeof(secrets.worker));
    return 0;
}

static int reset(void **state)
{
    memset(&srv, 0, sizeof(srv));
    memset(cli, 0, sizeof(cli));
    memset(raws, 0, sizeof(raws));
    assert_int_equal(uv_loop_init(&loop_a), 0);
    assert_int_equal(uv_loop_init(&loop_b), 0);
    /* Keeps UV_RUN_ONCE from sleeping for long when nothing else is due. */
    uv_timer_init(&loop_a, &guard_a);
    uv_timer_init(&loop_b, &guard_b);
    uv_timer_start(&guard_a, guard_fired, 5, 5);
    uv_timer_start(&guard_b, guard_fired, 5, 5);
    log_file = tmpfile();
    assert_non_null(log_file);
    swm_log_set_stream(log_file);
    return 0;
}

static void drain_loop(uv_loop_t *loop, uv_timer_t *guard)
{
    uv_close((uv_handle_t *)guard, NULL);
    /* What is left is closing handles and lingering writes, all bounded;
     * the cap only matters after a failed test. */
    uint64_t deadline = uv_hrtime() + RUN_CAP_NS;
    while (uv_loop_alive(loop) && uv_hrtime() < deadline) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    int rc = uv_loop_close(loop);
    if (rc != 0)
        fail_msg("handles left open on the loop: %s", uv_strerror(rc));
}

static int teardown_test(void **state)
{
    /* Whatever a failed test left open. */
    close_listener();
    for (int i = 0; i < MAX_SIDES; i++)
        chan_conn_close(cli[i].conn);
    for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++)
        if (raws[i].used && !raws[i].closing)
            uv_close((uv_handle_t *)&raws[i].tcp, NULL);
    drain_loop(&loop_a, &guard_a);
    drain_loop(&loop_b, &guard_b);
    for (int i = 0; i < MAX_SIDES; i++) {
        swm_buf_free(&srv.sides[i].data);
        swm_buf_free(&cli[i].data);
    }
    swm_log_set_stream(stderr);
    fclose(log_file);
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

typedef bool (*cond_fn)(void *arg);

/* Runs both loops in turn until cond holds. */
static bool run2_until(cond_fn cond, void *arg)
{
    uint64_t deadline = uv_hrtime() + RUN_CAP_NS;
    for (int i = 0; i < 200000 && uv_hrtime() < deadline; i++) {
        if (cond(arg))
            return true;
        uv_run(&loop_a, UV_RUN_NOWAIT);
        uv_run(&loop_b, UV_RUN_NOWAIT);
        usleep(200);
    }
    return cond(arg);
}

#define RUN_UNTIL(loop, expr)                                                                      \
    do {                                                                                           \
        bool cond_ok_ = false;                                                                     \
        uint64_t deadline_ = uv_hrtime() + RUN_CAP_NS;                                             \
        for (int i_ = 0; i_ < 200000 && uv_hrtime() < deadline_; i_++) {                           \
            if ((cond_ok_ = (expr)))                                                               \
                break;                                                                             \
            uv_run((loop), UV_RUN_ONCE);                                                           \
        }                                                                                          \
        if (!cond_ok_ && !(expr))                                                                  \
            fail_msg("timed out waiting for %s", #expr);                                           \
    } while (0)

/* ----------------------------------------------------------- callbacks -- */

static struct side *side_of(struct chan_conn *conn, void *arg)
{
    struct side *s = chan_conn_user(conn);
    if (s == NULL) {
        /* An accepted connection, first seen. */
        struct server *sv = arg;
        assert_non_null(sv);
        assert_true(sv->n < MAX_SIDES);
        s = &sv->sides[sv->n++];
        s->conn = conn;
        chan_conn_set_user(conn, s);
    }
    return s;
}

static void on_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct side *s = side_of(conn, arg);
    s->established++;
    assert_non_null(peer);
    snprintf(s->peer_id, sizeof(s->peer_id), "%s", peer->node_id);
}

static void on_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct side *s = side_of(conn, arg);
    assert_int_equal(swm_buf_append(&s->data, data, len), 0);
    s->messages++;
    struct server *sv = arg;
    if (sv != NULL && sv->echo)
        assert_int_equal(chan_conn_send(conn, data, len, NULL), 0);
}

static void on_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct side *s = side_of(conn, arg);
    s->closed++;
    s->status = status;
    s->conn = NULL;
    assert_non_null(reason);
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

static void on_join_request(struct chan_conn *conn, const uint8_t pk[CA_PUBKEY_LEN], int role,
                            void *arg)
{
    struct side *s = side_of(conn, arg);
    s->join_requests++;
    struct ca_cert c;
    assert_int_equal(ca_cert_issue(&c, &root, "worker0000000000000000009", TEST_CLUSTER_ID, role,
                                   pk, test_wall_now, CA_CERT_EXPIRY_DEFAULT, NULL),
                     0);
    assert_int_equal(chan_conn_send_cert(conn, &c, NULL), 0);
}

static void on_joined(struct chan_conn *conn, const struct ca_cert *cert, void *arg)
{
    struct side *s = side_of(conn, arg);
    s->joined++;
    snprintf(s->issued_id, sizeof(s->issued_id), "%s", cert->node_id);
}

static void on_drain(struct chan_conn *conn, void *arg)
{
    side_of(conn, arg)->drains++;
}

static const struct chan_conn_callbacks client_cbs = {
    .established = on_established,
    .data = on_data,
    .closed = on_closed,
    .joined = on_joined,
};

static struct chan_conn_callbacks server_cbs(void)
{
    return (struct chan_conn_callbacks){
        .established = on_established,
        .data = on_data,
        .closed = on_closed,
        .join_request = on_join_request,
        .drain = on_drain,
        .arg = &srv,
    };
}

/* ------------------------------------------------------------ helpers -- */

static struct chan_config server_config(void)
{
    return (struct chan_config){
        .identity = &mgr.key,
        .cert = &mgr.cert,
        .root_pk = root.pk,
        .join_secrets = &secrets,
        .wall_clock = test_wall_clock,
    };
}

static struct chan_config client_config(const struct test_node *n)
{
    return (struct chan_config){
        .identity = &n->key,
        .cert = &n->cert,
        .root_pk = root.pk,
        .wall_clock = test_wall_clock,
    };
}

static struct chan_listener *listen_on(uv_loop_t *loop, const struct chan_config *cfg,
                                       const struct chan_conn_limits *lim, char addr[32])
{
    struct chan_listener *l = NULL;
    assert_null(listener);
    struct swm_err err = {0};
    struct chan_conn_callbacks cbs = server_cbs();
    if (chan_listener_open(loop, "127.0.0.1:0", cfg, lim, &cbs, &l, &err) < 0)
        fail_msg("listen: %s", err.msg);
    assert_true(chan_listener_port(l) > 0);
    snprintf(addr, 32, "127.0.0.1:%d", chan_listener_port(l));
    listener = l;
    return l;
}

static void dial(uv_loop_t *loop, const char *addr, const struct chan_config *cfg,
                 const struct chan_conn_limits *lim, struct side *s)
{
    struct swm_err err = {0};
    if (chan_conn_connect(loop, addr, cfg, lim, &client_cbs, &s->conn, &err) < 0)
        fail_msg("connect: %s", err.msg);
    chan_conn_set_user(s->conn, s);
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct raw *r = h->data;
    *buf = uv_buf_init(r->buf, sizeof(r->buf));
}

static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    if (nread < 0) {
        r->eof = true;
        uv_read_stop(s);
    }
}

static void raw_written(uv_write_t *w, int status)
{
}

static void raw_connected(uv_connect_t *req, int status)
{
    struct raw *r = req->handle->data;
    if (status < 0) {
        r->eof = true;
        return;
    }
    r->connected = true;
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    if (r->out_len > 0) {
        uv_buf_t b = uv_buf_init((char *)r->out, (unsigned)r->out_len);
        uv_write(&r->w, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
    }
}

static void raw_closed(uv_handle_t *h)
{
    struct raw *r = h->data;
    r->closed = true;
}

static void raw_dial(uv_loop_t *loop, struct raw *r, const char *addr, const void *bytes,
                     size_t len)
{
    memset(r, 0, sizeof(*r));
    assert_true(len <= sizeof(r->out));
    if (len > 0)
        memcpy(r->out, bytes, len);
    r->out_len = len;
    r->used = true;
    struct sockaddr_in sa;
    int port = atoi(strrchr(addr, ':') + 1);
    assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sa), 0);
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    assert_int_equal(uv_tcp_connect(&r->req, &r->tcp, (struct sockaddr *)&sa, raw_connected), 0);
}

static void raw_close(uv_loop_t *loop, struct raw *r)
{
    r->closing = true;
    uv_close((uv_handle_t *)&r->tcp, raw_closed);
    RUN_UNTIL(loop, r->closed);
}

static void assert_contains(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text, needle);
}

/* -------------------------------------------------------------- tests -- */

/* Handshake, then messages both ways, small and large, in order. */
static void test_handshake_and_data(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_listener *l = listen_on(&loop_a, &scfg, NULL, addr);
    struct chan_config ccfg = client_config(&wkr);
    dial(&loop_a, addr, &ccfg, NULL, &cli[0]);
    struct swm_err err = {0};
    assert_int_equal(chan_conn_send(cli[0].conn, "early", 5, &err), -EAGAIN);

    RUN_UNTIL(&loop_a, cli[0].established == 1 && srv.n == 1);
    assert_string_equal(cli[0].peer_id, mgr.id);
    assert_string_equal(srv.sides[0].peer_id, wkr.id);
    assert_int_equal(chan_listener_conn_count(l), 1);

    size_t big_len = 3u << 20;
    uint8_t *big = swm_malloc(big_len);
    assert_non_null(big);
    fill_pattern(big, big_len, 7);
    assert_int_equal(chan_conn_send(cli[0].conn, "ping", 4, &err), 0);
    assert_int_equal(chan_conn_send(cli[0].conn, big, big_len, &err), 0);
    assert_int_equal(chan_conn_send(srv.sides[0].conn, "pong", 4, &err), 0);
    assert_int_equal(chan_conn_send(srv.sides[0].conn, big, big_len, &err), 0);
    RUN_UNTIL(&loop_a, srv.sides[0].messages == 2 && cli[0].messages == 2);
    assert_int_equal(srv.sides[0].data.len, 4 + big_len);
    assert_memory_equal(srv.sides[0].data.data, "ping", 4);
    assert_memory_equal(srv.sides[0].data.data + 4, big, big_len);
    assert_int_equal(cli[0].data.len, 4 + big_len);
    assert_memory_equal(cli[0].data.data, "pong", 4);
    assert_memory_equal(cli[0].data.data + 4, big, big_len);
    swm_free(big);

    chan_conn_close(cli[0].conn);
    chan_conn_close(cli[0].conn);       /* idempotent */
    assert_int_equal(cli[0].closed, 0); /* never from inside the call */
    RUN_UNTIL(&loop_a, cli[0].closed == 1 && srv.sides[0].closed == 1);
    assert_int_equal(cli[0].status, 0);
    assert_int_equal(srv.sides[0].status, 0);
    assert_contains(srv.sides[0].reason, "peer closed");
    RUN_UNTIL(&loop_a, chan_listener_conn_count(l) == 0);
    close_listener();
}

/* Several clients on one listener, each answered on its own connection. */
static void test_several_clients(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_listener *l = listen_on(&loop_a, &scfg, NULL, addr);
    srv.echo = true;
    /* The port is taken; a bad configuration is refused and changes
     * nothing; a good one applies to the next connections. */
    struct swm_err err = {0};
    struct chan_listener *dup = NULL;
    struct chan_conn_callbacks cbs = server_cbs();
    assert_int_equal(chan_listener_open(&loop_a, addr, &scfg, NULL, &cbs, &dup, &err),
                     UV_EADDRINUSE);
    assert_null(dup);
    assert_contains(err.msg, addr);
    struct chan_config bad = scfg;
    bad.cert = &wkr.cert; /* not for the manager's key */
    assert_int_equal(chan_listener_set_config(l, &bad, &err), -EINVAL);
    struct chan_config renewed = scfg;
    renewed.max_frame = 1 << 20;
    assert_int_equal(chan_listener_set_config(l, &renewed, &err), 0);

    struct chan_config ccfg = client_config(&wkr);
    enum { N = 5 };
    for (int i = 0; i < N; i++)
        dial(&loop_a, addr, &ccfg, NULL, &cli[i]);
    RUN_UNTIL(&loop_a, srv.n == N && cli[0].established && cli[1].established &&
                           cli[2].established && cli[3].established && cli[4].established);
    assert_int_equal(chan_listener_conn_count(l), N);
    for (int i = 0; i < N; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "client-%d", i);
        assert_int_equal(chan_conn_send(cli[i].conn, msg, strlen(msg), NULL), 0);
    }
    RUN_UNTIL(&loop_a, cli[0].messages && cli[1].messages && cli[2].messages && cli[3].messages &&
                           cli[4].messages);
    for (int i = 0; i < N; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "client-%d", i);
        assert_int_equal(cli[i].data.len, strlen(msg));
        assert_memory_equal(cli[i].data.data, msg, strlen(msg));
        chan_conn_close(cli[i].conn);
    }
    RUN_UNTIL(&loop_a, chan_listener_conn_count(l) == 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cli[i].closed, 1);
        assert_int_equal(srv.sides[i].closed, 1);
    }
    close_listener();
}

/* A client whose certificate another root signed: both sides close with a
 * reason (the client's closed callback, the listener's log line) and the
 * listener keeps serving. */
static void test_other_root_rejected(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_listener *l = listen_on(&loop_a, &scfg, NULL, addr);
    srv.echo = true;
    struct chan_config bad = client_config(&rogue);
    dial(&loop_a, addr, &bad, NULL, &cli[0]);
    RUN_UNTIL(&loop_a, cli[0].closed == 1 && chan_listener_conn_count(l) == 0);
    assert_int_equal(cli[0].established, 0);
    assert_int_equal(cli[0].status, SWM_EWRONGCLUSTER);
    assert_true(strlen(cli[0].reason) > 0);
    assert_int_equal(srv.n, 0); /* never shown to the listener's owner */
    const char *log = log_text();
    assert_contains(log, "connection rejected remote=127.0.0.1:");
    assert_contains(log, swm_strerror(SWM_EWRONGCLUSTER));

    struct chan_config good = client_config(&wkr);
    dial(&loop_a, addr, &good, NULL, &cli[1]);
    RUN_UNTIL(&loop_a, cli[1].established == 1);
    assert_int_equal(chan_conn_send(cli[1].conn, "still here", 10, NULL), 0);
    RUN_UNTIL(&loop_a, cli[1].messages == 1);
    chan_conn_close(cli[1].conn);
    RUN_UNTIL(&loop_a, cli[1].closed == 1 && chan_listener_conn_count(l) == 0);
    assert_int_equal(cli[0].closed, 1);
    close_listener();
}

/* Garbage from raw TCP clients closes those connections only. */
/* A peer reconnecting with garbage in a loop cannot flood the log: at most
 * 10 rejection lines per second per listener, the rest counted. */
static void test_rejection_warnings_are_rate_limited(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    listen_on(&loop_a, &scfg, NULL, addr);
    uint8_t junk[64];
    randombytes_buf(junk, sizeof(junk));
    size_t n = sizeof(raws) / sizeof(raws[0]);
    for (size_t i = 0; i < n; i++)
        raw_dial(&loop_a, &raws[i], addr, junk, sizeof(junk));
    for (size_t i = 0; i < n; i++)
        RUN_UNTIL(&loop_a, raws[i].eof);
    size_t lines = 0;
    for (const char *p = log_text(); (p = strstr(p, "connection rejected")) != NULL; p++)
        lines++;
    /* 32 rejections within at most a couple of one-second windows. */
    assert_true(lines >= 1 && lines <= 20);
    for (size_t i = 0; i < n; i++)
        raw_close(&loop_a, &raws[i]);
    close_listener();
}

static void test_garbage_closes_only_that_connection(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_listener *l = listen_on(&loop_a, &scfg, NULL, addr);
    srv.echo = true;
    struct chan_config ccfg = client_config(&wkr);
    dial(&loop_a, addr, &ccfg, NULL, &cli[0]);
    RUN_UNTIL(&loop_a, cli[0].established == 1);

    struct raw *r1 = &raws[0], *r2 = &raws[1];
    uint8_t junk[4096];
    randombytes_buf(junk, sizeof(junk));
    raw_dial(&loop_a, r1, addr, junk, sizeof(junk));
    /* A plausible length, then a body that is no HELLO. */
    uint8_t hello_sized[4 + 71] = {0, 0, 0, 71};
    randombytes_buf(hello_sized + 4, 71);
    hello_sized[4] = 1;
    raw_dial(&loop_a, r2, addr, hello_sized, sizeof(hello_sized));
    RUN_UNTIL(&loop_a, r1->eof && r2->eof);
    assert_contains(log_text(), "not a swarmc handshake");

    assert_int_equal(chan_conn_send(cli[0].conn, "after", 5, NULL), 0);
    RUN_UNTIL(&loop_a, cli[0].messages == 1);
    assert_int_equal(cli[0].closed, 0);
    assert_int_equal(srv.sides[0].closed, 0);
    raw_close(&loop_a, r1);
    raw_close(&loop_a, r2);
    chan_conn_close(cli[0].conn);
    RUN_UNTIL(&loop_a, cli[0].closed == 1 && chan_listener_conn_count(l) == 0);
    close_listener();
}

/* A frame length over the limit closes the connection, in the handshake
 * and after it. */
static void test_oversized_frame(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    scfg.max_frame = 64 << 10;
    struct chan_listener *l = listen_on(&loop_a, &scfg, NULL, addr);
    struct raw *r = &raws[0];
    uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    raw_dial(&loop_a, r, addr, huge, sizeof(huge));
    RUN_UNTIL(&loop_a, r->eof);
    assert_contains(log_text(), "exceeds the limit");
    raw_close(&loop_a, r);

    /* The client allows larger frames than the listener. */
    struct chan_config ccfg = client_config(&wkr);
    ccfg.max_frame = 1 << 20;
    dial(&loop_a, addr, &ccfg, NULL, &cli[0]);
    RUN_UNTIL(&loop_a, cli[0].established == 1 && srv.n == 1);
    size_t len = 256 << 10;
    uint8_t *msg = swm_calloc(1, len);
    assert_non_null(msg);
    assert_int_equal(chan_conn_send(cli[0].conn, msg, len, NULL), 0);
    swm_free(msg);
    RUN_UNTIL(&loop_a, srv.sides[0].closed == 1 && cli[0].closed == 1);
    assert_int_equal(srv.sides[0].status, -EMSGSIZE);
    assert_contains(srv.sides[0].reason, "exceeds the limit");
    assert_int_equal(srv.sides[0].messages, 0);
    RUN_UNTIL(&loop_a, chan_listener_conn_count(l) == 0);
    close_listener();
}

/* A peer closing after a burst of messages: everything arrives, then
 * `closed` exactly once on each side; EOF inside a frame is reported. */
static void test_peer_closes_mid_stream(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_listener *l = listen_on(&loop_a, &scfg, NULL, addr);
    struct chan_config ccfg = client_config(&wkr);
    dial(&loop_a, addr, &ccfg, NULL, &cli[0]);
    RUN_UNTIL(&loop_a, cli[0].established == 1 && srv.n == 1);
    size_t big_len = 1u << 20;
    uint8_t *big = swm_malloc(big_len);
    assert_non_null(big);
    fill_pattern(big, big_len, 3);
    assert_int_equal(chan_conn_send(cli[0].conn, "one", 3, NULL), 0);
    assert_int_equal(chan_conn_send(cli[0].conn, big, big_len, NULL), 0);
    assert_int_equal(chan_conn_send(cli[0].conn, "three", 5, NULL), 0);
    chan_conn_close(cli[0].conn);
    assert_int_equal(chan_conn_send(cli[0].conn, "late", 4, NULL), -EPIPE);
    RUN_UNTIL(&loop_a, srv.sides[0].closed == 1 && cli[0].closed == 1);
    assert_int_equal(srv.sides[0].messages, 3);
    assert_int_equal(srv.sides[0].data.len, 3 + big_len + 5);
    assert_memory_equal(srv.sides[0].data.data + 3, big, big_len);
    assert_int_equal(srv.sides[0].status, 0);
    assert_int_equal(cli[0].status, 0);
    swm_free(big);

    /* A raw peer that stops inside its first frame. */
    struct raw *r = &raws[0];
    uint8_t partial[20] = {0, 0, 0, 71, 1, 'S', 'W', 'C', 'H'};
    raw_dial(&loop_a, r, addr, partial, sizeof(partial));
    RUN_UNTIL(&loop_a, r->connected && chan_listener_conn_count(l) == 1);
    raw_close(&loop_a, r);
    RUN_UNTIL(&loop_a, chan_listener_conn_count(l) == 0);
    assert_contains(log_text(), "closed inside a frame");

    /* Nothing more is reported, however long the loop runs. */
    for (int i = 0; i < 20; i++)
        uv_run(&loop_a, UV_RUN_ONCE);
    assert_int_equal(srv.sides[0].closed, 1);
    assert_int_equal(cli[0].closed, 1);
    assert_int_equal(srv.n, 1);
    close_listener();
}

static bool both_established(void *arg)
{
    return cli[0].established == 1 && srv.n == 1;
}

static bool drained(void *arg)
{
    return srv.sides[0].drains == 1;
}

static bool received_all(void *arg)
{
    return cli[0].messages == *(size_t *)arg;
}

static bool both_closed(void *arg)
{
    return cli[0].closed == 1 && srv.sides[0].closed == 1;
}

/* Sends 1 MiB messages from the server to a client whose loop is frozen
 * until -ENOBUFS keeps coming back; returns how many ENOBUFS it saw. */
static int fill_until_blocked(void)
{
    size_t len = 1u << 20;
    uint8_t *msg = swm_calloc(1, len);
    assert_non_null(msg);
    int enobufs = 0;
    for (int i = 0; i < 2000 && enobufs < 50 && srv.sides[0].closed == 0; i++) {
        struct swm_err err = {0};
        int rc = chan_conn_send(srv.sides[0].conn, msg, len, &err);
        if (rc == -ENOBUFS) {
            enobufs++;
            assert_contains(err.msg, "limit");
            uv_run(&loop_a, UV_RUN_NOWAIT);
            usleep(1000);
        } else {
            assert_int_equal(rc, 0);
        }
    }
    swm_free(msg);
    return enobufs;
}

/* A peer that stops reading: sends are refused with -ENOBUFS, then the
 * connection is closed with a reason once nothing moves. */
static void test_slow_reader_closed(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_conn_limits lim = {.max_write_bytes = 2u << 20, .write_timeout = 300 * MS};
    struct chan_listener *l = listen_on(&loop_a, &scfg, &lim, addr);
    struct chan_config ccfg = client_config(&wkr);
    dial(&loop_b, addr, &ccfg, NULL, &cli[0]);
    assert_true(run2_until(both_established, NULL));

    assert_true(fill_until_blocked() > 0);
    RUN_UNTIL(&loop_a, srv.sides[0].closed == 1);
    assert_int_equal(srv.sides[0].status, -ETIMEDOUT);
    assert_contains(srv.sides[0].reason, "not reading");
    assert_contains(log_text(), "not reading");

    chan_conn_close(cli[0].conn);
    RUN_UNTIL(&loop_b, cli[0].closed == 1);
    RUN_UNTIL(&loop_a, chan_listener_conn_count(l) == 0);
    close_listener();
}

/* After -ENOBUFS, `drain` says when the peer has caught up; everything
 * sent arrives. */
static void test_drain_after_enobufs(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_conn_limits lim = {.max_write_bytes = 2u << 20};
    listen_on(&loop_a, &scfg, &lim, addr);
    struct chan_config ccfg = client_config(&wkr);
    dial(&loop_b, addr, &ccfg, NULL, &cli[0]);
    assert_true(run2_until(both_established, NULL));

    size_t len = 1u << 20;
    uint8_t *msg = swm_calloc(1, len);
    assert_non_null(msg);
    size_t sent = 0;
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = chan_conn_send(srv.sides[0].conn, msg, len, NULL);
        if (rc == 0)
            sent++;
    }
    assert_int_equal(rc, -ENOBUFS);
    assert_int_equal(srv.sides[0].drains, 0);
    assert_true(run2_until(drained, NULL));
    assert_int_equal(chan_conn_send(srv.sides[0].conn, msg, len, NULL), 0);
    sent++;
    swm_free(msg);
    assert_true(run2_until(received_all, &sent));
    assert_int_equal(cli[0].data.len, sent * len);

    chan_conn_close(cli[0].conn);
    assert_true(run2_until(both_closed, NULL));
    close_listener();
}

/* Closing with megabytes still in flight frees everything (ASan checks)
 * and reports `closed` once. */
static void test_close_with_writes_in_flight(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_conn_limits lim = {.max_write_bytes = 2u << 20, .linger_timeout = 100 * MS};
    listen_on(&loop_a, &scfg, &lim, addr);
    struct chan_config ccfg = client_config(&wkr);
    dial(&loop_b, addr, &ccfg, NULL, &cli[0]);
    assert_true(run2_until(both_established, NULL));

    assert_true(fill_until_blocked() > 0);
    assert_true(chan_conn_write_pending(srv.sides[0].conn) > 0);
    chan_conn_close(srv.sides[0].conn);
    assert_int_equal(srv.sides[0].closed, 0);
    RUN_UNTIL(&loop_a, srv.sides[0].closed == 1);
    assert_int_equal(srv.sides[0].status, 0);

    /* The client sees the stream end, whatever it had received. */
    RUN_UNTIL(&loop_b, cli[0].closed == 1);
    assert_int_equal(srv.sides[0].closed, 1);

    /* And a client closing with its own writes queued, then the listener
     * closing under an established connection. */
    dial(&loop_a, addr, &ccfg, NULL, &cli[1]);
    RUN_UNTIL(&loop_a, cli[1].established == 1 && srv.n == 2);
    uint8_t *msg = swm_calloc(1, 1u << 20);
    assert_non_null(msg);
    assert_int_equal(chan_conn_send(cli[1].conn, msg, 1u << 20, NULL), 0);
    swm_free(msg);
    close_listener();
    RUN_UNTIL(&loop_a, cli[1].closed == 1 && srv.sides[1].closed == 1);
    assert_int_equal(srv.sides[1].status, SWM_ESHUTDOWN);
}

/* Connecting to a port nobody listens on reports closed once. */
static void test_connect_refused(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    listen_on(&loop_a, &scfg, NULL, addr);
    close_listener();
    for (int i = 0; i < 5; i++)
        uv_run(&loop_a, UV_RUN_NOWAIT);
    struct chan_config ccfg = client_config(&wkr);
    dial(&loop_a, addr, &ccfg, NULL, &cli[0]);
    RUN_UNTIL(&loop_a, cli[0].closed == 1);
    assert_int_equal(cli[0].status, UV_ECONNREFUSED);
    assert_contains(cli[0].reason, addr);

    struct swm_err err = {0};
    struct chan_conn *c = NULL;
    assert_int_equal(chan_conn_connect(&loop_a, "nonsense", &ccfg, NULL, &client_cbs, &c, &err),
                     -EINVAL);
    assert_null(c);
}

/* A join over the driver: the joiner gets its certificate and closes. */
static void test_join(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_listener *l = listen_on(&loop_a, &scfg, NULL, addr);
    struct ca_keypair joiner;
    uint8_t seed[32] = {9};
    ca_keypair_from_seed(&joiner, seed);
    struct ca_token tok;
    assert_int_equal(ca_token_parse(&tok, worker_token, NULL), 0);
    struct chan_config jcfg = {
        .identity = &joiner,
        .join_token = &tok,
        .join_role = CA_ROLE_WORKER,
        .wall_clock = test_wall_clock,
    };
    dial(&loop_a, addr, &jcfg, NULL, &cli[0]);
    RUN_UNTIL(&loop_a, cli[0].closed == 1 && srv.n == 1 && srv.sides[0].closed == 1);
    assert_int_equal(srv.sides[0].join_requests, 1);
    assert_int_equal(cli[0].joined, 1);
    assert_string_equal(cli[0].issued_id, "worker0000000000000000009");
    assert_int_equal(cli[0].status, 0);
    assert_int_equal(srv.sides[0].status, 0);
    RUN_UNTIL(&loop_a, chan_listener_conn_count(l) == 0);
    close_listener();
}

/* Over the handshake limit a connection is refused and logged; the
 * established ones are not counted against it. */
static void test_handshake_limit(void **state)
{
    char addr[32];
    struct chan_config scfg = server_config();
    struct chan_conn_limits lim = {.max_handshaking = 1};
    struct chan_listener *l = listen_on(&loop_a, &scfg, &lim, addr);
    struct chan_config ccfg = client_config(&wkr);
    dial(&loop_a, addr, &ccfg, NULL, &cli[0]);
    RUN_UNTIL(&loop_a, cli[0].established == 1 && srv.n == 1);

    struct raw *silent = &raws[0], *extra = &raws[1];
    raw_dial(&loop_a, silent, addr, NULL, 0);
    RUN_UNTIL(&loop_a, chan_listener_conn_count(l) == 2);
    raw_dial(&loop_a, extra, addr, NULL, 0);
    RUN_UNTIL(&loop_a, extra->eof);
    assert_false(silent->eof);
    assert_contains(log_text(), "too many connections in their handshake");
    raw_close(&loop_a, silent);
    raw_close(&loop_a, extra);
    chan_conn_close(cli[0].conn);
    RUN_UNTIL(&loop_a, chan_listener_conn_count(l) == 0 && cli[0].closed == 1);
    close_listener();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_and_data, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_several_clients, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_other_root_rejected, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_garbage_closes_only_that_connection, reset,
                                        teardown_test),
        cmocka_unit_test_setup_teardown(test_rejection_warnings_are_rate_limited, reset,
                                        teardown_test),
        cmocka_unit_test_setup_teardown(test_oversized_frame, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_peer_closes_mid_stream, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_slow_reader_closed, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_drain_after_enobufs, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_close_with_writes_in_flight, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_connect_refused, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_join, reset, teardown_test),
        cmocka_unit_test_setup_teardown(test_handshake_limit, reset, teardown_test),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
