/* Three raft nodes (manager/raft/node.c) over real stores in temp dirs and
 * the secure-channel transport (transport_chan.c), each on a cluster port
 * of its own (net/transport/port.h) on 127.0.0.1, with test manager
 * certificates and raft ids bound to them: they elect a leader and
 * replicate a write to every store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/fixture.h"
#include "common/log.h"
#include "manager/raft/node.h"
#include "manager/raft/transport_chan.h"
#include "net/transport/port.h"

#define CREATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE
#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define SEC INT64_C(1000000000)
#define CLUSTER_ID "clustr0000000000000000001"
#define N 3
#define TIMEOUT_MS 20000

static int64_t wall_now = INT64_C(1800000000) * SEC;

static int64_t test_wall_clock(void *arg)
{
    return wall_now;
}

static const char *const node_ids[N] = {"manager000000000000000001", "manager000000000000000002",
                                        "manager000000000000000003"};

/* Raft id of manager i is 0x100 + i. */
static uint64_t test_raft_id_of(const char *node_id, void *arg)
{
    for (uint64_t i = 0; i < N; i++)
        if (strcmp(node_id, node_ids[i]) == 0)
            return 0x100 + i;
    return 999;
}

struct member {
    uint64_t id;
    char *dir;
    struct store *s;
    struct ca_keypair key;
    struct ca_cert cert;
    struct chan_port *port; /* closed after the node (and its transport) */
    struct raft_transport *t;
    struct raft_node *node;
};

struct fx {
    uv_loop_t loop;
    struct ca_keypair root;
    struct member m[N];
    FILE *log;
    char *logbuf;
    size_t loglen;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->log = open_memstream(&fx->logbuf, &fx->loglen);
    swm_log_set_stream(fx->log);
    uint8_t seed[32] = {100};
    ca_keypair_from_seed(&fx->root, seed);
    for (size_t i = 0; i < N; i++) {
        struct member *mb = &fx->m[i];
        mb->id = 0x100 + i;
        seed[0] = (uint8_t)(1 + i);
        ca_keypair_from_seed(&mb->key, seed);
        assert_int_equal(ca_cert_issue(&mb->cert, &fx->root, node_ids[i], CLUSTER_ID,
                                       CA_ROLE_MANAGER, mb->key.pk, wall_now,
                                       CA_CERT_EXPIRY_DEFAULT, NULL),
                         0);
        struct chan_config cfg = {.identity = &mb->key,
                                  .cert = &mb->cert,
                                  .root_pk = fx->root.pk,
                                  .wall_clock = test_wall_clock};
        struct swm_err err = {0};
        struct chan_config port_cfg = cfg;
        port_cfg.max_frame = RAFT_MESSAGE_MAX_SIZE;
        if (chan_port_open(&fx->loop, "127.0.0.1:0", &port_cfg, NULL, &mb->port, &err) < 0)
            fail_msg("port: %s", err.msg);
        if (raft_chan_transport_open(&fx->loop, mb->id, mb->port, &cfg, &mb->t, &err) < 0)
            fail_msg("open: %s", err.msg);
        assert_int_equal(raft_chan_transport_bind_ids(mb->t, test_raft_id_of, NULL), 0);
        mb->dir = fixture_tmpdir();
        mb->s = fixture_open(mb->dir);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < N; k++) {
            if (k == i)
                continue;
            char addr[32];
            snprintf(addr, sizeof(addr), "127.0.0.1:%d", chan_port_port(fx->m[k].port));
            assert_int_equal(raft_chan_transport_set_peer(fx->m[i].t, fx->m[k].id, addr), 0);
        }
    struct raft_server servers[N];
    for (size_t k = 0; k < N; k++)
        servers[k] = (struct raft_server){.id = fx->m[k].id, .role = RAFT_VOTER};
    struct raft_configuration conf = {.servers = servers, .n_servers = N};
    for (size_t i = 0; i < N; i++) {
        struct raft_node_options o = {.id = fx->m[i].id, .tick_ms = 10, .bootstrap = &conf};
        struct swm_err err = {0};
        if (raft_node_open(&fx->loop, fx->m[i].s, &o, fx->m[i].t, &fx->m[i].node, &err) < 0)
            fail_msg("raft_node_open: %s", err.msg);
        fx->m[i].t = NULL; /* the node owns it */
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N; i++) {
        raft_node_close(fx->m[i].node);
        raft_transport_close(fx->m[i].t);
        chan_port_close(fx->m[i].port);
    }
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (size_t i = 0; i < N; i++) {
        store_close(fx->m[i].s);
        fixture_rmdir(fx->m[i].dir);
    }
    swm_log_set_stream(NULL);
    fclose(fx->log);
    free(fx->logbuf);
    free(fx);
    return 0;
}

static void run_until(struct fx *fx, bool (*done)(struct fx *, void *), void *arg, const char *what)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)TIMEOUT_MS * 1000000;
    while (!done(fx, arg)) {
        if (uv_hrtime() > deadline) {
            fflush(fx->log);
            fprintf(stderr, "log:\n%s", fx->logbuf != NULL ? fx->logbuf : "");
            fail_msg("timed out waiting for %s", what);
        }
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

static bool has_leader(struct fx *fx, void *arg)
{
    for (size_t i = 0; i < N; i++)
        if (raft_node_is_leader(fx->m[i].node))
            return true;
    return false;
}

struct outcome {
    int called, status;
};

static void on_commit(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct outcome *o = arg;
    o->called++;
    o->status = status;
}

static bool outcome_done(struct fx *fx, void *arg)
{
    return ((struct outcome *)arg)->called > 0;
}

static uint64_t task_version(struct fx *fx, size_t i, const char *id)
{
    struct store_read *r;
    assert_int_equal(store_read_begin(fx->m[i].s, &r, NULL), 0);
    Swarmc__Task *t = NULL;
    uint64_t v = store_get_task(r, id, &t) == 0 ? t->meta->version : 0;
    proto_free(t);
    store_read_end(r);
    return v;
}

static bool all_have_t1(struct fx *fx, void *arg)
{
    for (size_t i = 0; i < N; i++)
        if (task_version(fx, i, "t1") == 0)
            return false;
    return true;
}

static void three_managers_elect_and_replicate(void **state)
{
    struct fx *fx = *state;
    run_until(fx, has_leader, NULL, "a leader");
    size_t l = 0;
    while (!raft_node_is_leader(fx->m[l].node))
        l++;
    struct outcome o = {0};
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_task("t1", "s", "n", RUNNING, 0));
    assert_int_equal(store_log_propose(raft_node_log(fx->m[l].node), e, on_commit, &o), 0);
    run_until(fx, outcome_done, &o, "the write to commit");
    assert_int_equal(o.status, 0);
    run_until(fx, all_have_t1, NULL, "t1 in every store");
    uint64_t v = task_version(fx, l, "t1");
    for (size_t i = 0; i < N; i++)
        assert_true(task_version(fx, i, "t1") == v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(three_managers_elect_and_replicate, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
