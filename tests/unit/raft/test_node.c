/* manager/raft/node.c: the raft node on a real libuv loop, real LMDB stores
 * in temp dirs, and the in-process transport (one to three members). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/fixture.h"
#include "manager/raft/node.h"
#include "manager/raft/transport_mem.h"
#include "store/raftlog.h"

#define CREATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE
#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define MAX_MEMBERS 3
#define TIMEOUT_MS 20000

struct member {
    uint64_t id;
    char *dir;
    struct store *s;
    struct raft_node *node;
};

struct fx {
    uv_loop_t loop;
    struct raft_mem_hub *hub; /* NULL for one member */
    struct member m[MAX_MEMBERS];
    size_t n;
    size_t founders; /* members 0..founders-1 form the first configuration */
    uint64_t snapshot_threshold;
};

struct outcome {
    int called, status, code;
    uint64_t index;
    char msg[256];
};

static void on_commit(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct outcome *o = arg;
    o->called++;
    o->status = status;
    o->index = index;
    o->code = err->code;
    snprintf(o->msg, sizeof(o->msg), "%s", err->msg);
}

static void on_read(void *arg, int status, const struct swm_err *err)
{
    on_commit(arg, status, 0, err);
}

/* Runs the loop until done(arg) or fails after TIMEOUT_MS. */
static void run_until(struct fx *fx, bool (*done)(struct fx *, void *), void *arg, const char *what)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)TIMEOUT_MS * 1000000;
    while (!done(fx, arg)) {
        if (uv_hrtime() > deadline)
            fail_msg("timed out waiting for %s", what);
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

static bool outcome_done(struct fx *fx, void *arg)
{
    return ((struct outcome *)arg)->called > 0;
}

static int open_member(struct fx *fx, size_t i, struct swm_err *err)
{
    struct raft_server servers[MAX_MEMBERS];
    for (size_t k = 0; k < fx->founders; k++)
        servers[k] = (struct raft_server){.id = fx->m[k].id, .role = RAFT_VOTER};
    struct raft_configuration conf = {.servers = servers, .n_servers = fx->founders};
    struct raft_node_options o = {.id = fx->m[i].id,
                                  .tick_ms = 10,
                                  .bootstrap = i < fx->founders ? &conf : NULL, /* else joining */
                                  .snapshot_threshold = fx->snapshot_threshold,
                                  .snapshot_trailing = 5};
    struct raft_transport *t = NULL;
    if (fx->hub != NULL)
        assert_int_equal(raft_mem_transport_open(fx->hub, fx->m[i].id, &t), 0);
    int rc = raft_node_open(&fx->loop, fx->m[i].s, &o, t, &fx->m[i].node, err);
    if (rc < 0)
        raft_transport_close(t);
    return rc;
}

static void start_member(struct fx *fx, size_t i)
{
    struct swm_err err = {0};
    if (open_member(fx, i, &err) < 0)
        fail_msg("raft_node_open: %s", err.msg);
}

static void stop_member(struct fx *fx, size_t i)
{
    raft_node_close(fx->m[i].node);
    fx->m[i].node = NULL;
}

static struct fx *fx_new(size_t n, uint64_t snapshot_threshold)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->n = n;
    fx->founders = n;
    fx->snapshot_threshold = snapshot_threshold;
    if (n > 1)
        assert_int_equal(raft_mem_hub_open(&fx->loop, &fx->hub), 0);
    for (size_t i = 0; i < n; i++) {
        fx->m[i].id = 0x100 + i;
        fx->m[i].dir = fixture_tmpdir();
        fx->m[i].s = fixture_open(fx->m[i].dir);
    }
    return fx;
}

static int setup1(void **state)
{
    struct fx *fx = fx_new(1, 0);
    start_member(fx, 0);
    *state = fx;
    return 0;
}

static int setup3(void **state)
{
    struct fx *fx = fx_new(3, 0);
    for (size_t i = 0; i < fx->n; i++)
        start_member(fx, i);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < fx->n; i++)
        stop_member(fx, i);
    raft_mem_hub_close(fx->hub);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (size_t i = 0; i < fx->n; i++) {
        store_close(fx->m[i].s);
        fixture_rmdir(fx->m[i].dir);
    }
    free(fx);
    return 0;
}

static bool has_leader(struct fx *fx, void *arg)
{
    for (size_t i = 0; i < fx->n; i++)
        if (fx->m[i].node != NULL && raft_node_is_leader(fx->m[i].node) &&
            (arg == NULL || i != *(size_t *)arg))
            return true;
    return false;
}

/* Waits for a leader (other than member `not`, unless SIZE_MAX). */
static size_t leader(struct fx *fx, size_t not )
{
    run_until(fx, has_leader, not == SIZE_MAX ? NULL : &not, "a leader");
    for (size_t i = 0; i < fx->n; i++)
        if (fx->m[i].node != NULL && raft_node_is_leader(fx->m[i].node) && i != not )
            return i;
    return SIZE_MAX;
}

static void propose_task(struct fx *fx, size_t i, const char *id, struct outcome *o)
{
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_task(id, "s", "n", RUNNING, 0));
    assert_int_equal(store_log_propose(raft_node_log(fx->m[i].node), e, on_commit, o), 0);
}

static void write_task(struct fx *fx, size_t i, const char *id)
{
    struct outcome o = {0};
    propose_task(fx, i, id, &o);
    run_until(fx, outcome_done, &o, "a write to commit");
    if (o.status != 0 || o.code != 0)
        fail_msg("writing %s: %d %s", id, o.status, o.msg);
}

/* The task's version in member i's store, 0 if absent. */
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

struct task_ref {
    size_t member;
    const char *id;
};

static bool task_present(struct fx *fx, void *arg)
{
    struct task_ref *ref = arg;
    return task_version(fx, ref->member, ref->id) != 0;
}

static void wait_task(struct fx *fx, size_t i, const char *id)
{
    struct task_ref ref = {i, id};
    run_until(fx, task_present, &ref, id);
}

/* --- one member ------------------------------------------------------------- */

static void single_voter_commits_and_applies(void **state)
{
    struct fx *fx = *state;
    struct outcome o = {0};
    propose_task(fx, 0, "t1", &o);
    assert_int_equal(o.called, 0); /* never from inside propose */
    run_until(fx, outcome_done, &o, "the write");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.code, 0);
    assert_true(raft_node_is_leader(fx->m[0].node));
    /* Entry 1 is the membership, then the leader's no-op(s). */
    assert_true(o.index > 1);
    assert_true(task_version(fx, 0, "t1") == o.index);
    assert_true(store_applied_index(fx->m[0].s) >= o.index);
}

static void burst_of_proposals_all_commit_in_order(void **state)
{
    struct fx *fx = *state;
    enum { N = 300 };
    struct outcome o[N] = {0};
    char id[16];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "t%d", i);
        propose_task(fx, 0, id, &o[i]);
        if (i % 50 == 0)
            uv_run(&fx->loop, UV_RUN_NOWAIT); /* some arrive during a write */
    }
    run_until(fx, outcome_done, &o[N - 1], "the last write");
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].called, 1);
        assert_int_equal(o[i].status, 0);
        if (i > 0)
            assert_true(o[i].index == o[i - 1].index + 1);
    }
}

static void restart_keeps_state_and_leads_at_once(void **state)
{
    struct fx *fx = *state;
    write_task(fx, 0, "before");
    uint64_t v = task_version(fx, 0, "before");
    stop_member(fx, 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    start_member(fx, 0);
    write_task(fx, 0, "after");
    assert_true(task_version(fx, 0, "before") == v);
    assert_true(task_version(fx, 0, "after") > v);
}

static void closing_fails_queued_proposals_later(void **state)
{
    struct fx *fx = *state;
    struct outcome o = {0};
    propose_task(fx, 0, "t1", &o);
    stop_member(fx, 0);
    assert_int_equal(o.called, 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(o.called, 1);
    assert_int_equal(o.status, SWM_ESHUTDOWN);
}

/* A store written before raft (entries applied directly) becomes the
 * snapshot the log starts from. */
static void store_without_raft_state_is_converted(void **state)
{
    struct fx *fx = fx_new(1, 0);
    *state = fx;
    assert_int_equal(fixture_apply1(fx->m[0].s, fixture_entry1(CREATE, fixture_node("n1", 0))), 0);
    assert_int_equal(
        fixture_apply1(fx->m[0].s, fixture_entry1(CREATE, fixture_service("s1", "web", 0))), 0);
    struct raft_init_state init;
    struct swm_err err = {0};
    assert_int_equal(store_raft_load(fx->m[0].s, &init, &err), SWM_ECORRUPT);
    start_member(fx, 0);
    write_task(fx, 0, "t1");
    assert_true(task_version(fx, 0, "t1") > 2);
    stop_member(fx, 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(store_raft_load(fx->m[0].s, &init, &err), 0);
    assert_true(init.snapshot.index == 2);
    assert_int_equal(init.snapshot.conf.n_servers, 1);
    store_raft_init_free(&init);
    start_member(fx, 0);
    write_task(fx, 0, "t2");
}

static void damaged_log_refuses_to_start(void **state)
{
    struct fx *fx = fx_new(1, 0);
    *state = fx;
    start_member(fx, 0);
    write_task(fx, 0, "t1");
    stop_member(fx, 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    unsigned char key[8] = {0, 0, 0, 0, 0, 0, 0, 3};
    fixture_raw_put(fx->m[0].dir, "raft_log", key, sizeof(key), "garbage-garbage", 15, 0);
    struct swm_err err = {0};
    store_close(fx->m[0].s);
    fx->m[0].s = fixture_open(fx->m[0].dir);
    assert_int_equal(open_member(fx, 0, &err), SWM_ECORRUPT);
    assert_non_null(strstr(err.msg, "3"));
}

static void read_barrier_on_leader(void **state)
{
    struct fx *fx = *state;
    write_task(fx, 0, "t1");
    struct outcome o = {0};
    assert_int_equal(raft_node_read_barrier(fx->m[0].node, on_read, &o), 0);
    run_until(fx, outcome_done, &o, "the read barrier");
    assert_int_equal(o.status, 0);
}

/* --- three members ---------------------------------------------------------- */

static void three_voters_replicate_to_every_store(void **state)
{
    struct fx *fx = *state;
    size_t l = leader(fx, SIZE_MAX);
    write_task(fx, l, "t1");
    uint64_t v = task_version(fx, l, "t1");
    for (size_t i = 0; i < fx->n; i++) {
        wait_task(fx, i, "t1");
        assert_true(task_version(fx, i, "t1") == v); /* meta.version = the raft index */
    }
}

static void follower_refuses_writes_naming_the_leader(void **state)
{
    struct fx *fx = *state;
    size_t l = leader(fx, SIZE_MAX);
    write_task(fx, l, "t1"); /* every member knows the leader now */
    size_t f = (l + 1) % fx->n;
    wait_task(fx, f, "t1");
    struct outcome o = {0};
    propose_task(fx, f, "t2", &o);
    run_until(fx, outcome_done, &o, "the refusal");
    assert_int_equal(o.status, SWM_ENOTLEADER);
    char want[32];
    snprintf(want, sizeof(want), "%016" PRIx64, fx->m[l].id);
    assert_non_null(strstr(o.msg, want));
    assert_int_equal(raft_node_read_barrier(fx->m[f].node, on_read, &o), SWM_ENOTLEADER);
}

static void isolate(struct fx *fx, size_t i, bool up)
{
    for (size_t k = 0; k < fx->n; k++) {
        if (k == i)
            continue;
        raft_mem_hub_set_link(fx->hub, fx->m[i].id, fx->m[k].id, up);
        raft_mem_hub_set_link(fx->hub, fx->m[k].id, fx->m[i].id, up);
    }
}

static void isolated_leader_is_replaced_and_catches_up(void **state)
{
    struct fx *fx = *state;
    size_t old = leader(fx, SIZE_MAX);
    write_task(fx, old, "t1");
    isolate(fx, old, false);
    struct outcome lost = {0};
    propose_task(fx, old, "lost", &lost);
    size_t l = leader(fx, old);
    write_task(fx, l, "t2");
    /* Check-quorum: the cut-off leader steps down and its write fails. */
    run_until(fx, outcome_done, &lost, "the isolated leader's write to fail");
    assert_int_equal(lost.status, SWM_ENOTLEADER);
    isolate(fx, old, true);
    wait_task(fx, old, "t2");
    assert_true(task_version(fx, old, "lost") == 0);
    assert_true(task_version(fx, old, "t2") == task_version(fx, l, "t2"));
}

static void lagging_follower_catches_up_from_a_snapshot(void **state)
{
    struct fx *fx = fx_new(3, 20);
    *state = fx;
    for (size_t i = 0; i < fx->n; i++)
        start_member(fx, i);
    size_t l = leader(fx, SIZE_MAX);
    size_t lag = (l + 1) % fx->n;
    write_task(fx, l, "t0");
    wait_task(fx, lag, "t0");
    stop_member(fx, lag);
    char id[16];
    for (int i = 1; i <= 80; i++) {
        snprintf(id, sizeof(id), "t%d", i);
        write_task(fx, l, id);
    }
    /* The leader snapshotted and compacted past what the follower has. */
    struct raft_init_state init;
    struct swm_err err = {0};
    assert_int_equal(store_raft_load(fx->m[l].s, &init, &err), 0);
    assert_true(init.snapshot.index > 0);
    assert_true(init.n_entries == 0 || init.entries[0].index > 10);
    store_raft_init_free(&init);
    start_member(fx, lag);
    wait_task(fx, lag, "t80");
    assert_true(task_version(fx, lag, "t40") == task_version(fx, l, "t40"));
}

/* --- membership -------------------------------------------------------------- */

static void on_change(void *arg, int status, const struct swm_err *err)
{
    on_commit(arg, status, 0, err);
}

static size_t voters_of(struct fx *fx, size_t i)
{
    return raft_configuration_voters(raft_configuration_current(raft_node_core(fx->m[i].node)));
}

static void joining_member_catches_up_and_votes(void **state)
{
    struct fx *fx = fx_new(3, 20);
    *state = fx;
    fx->founders = 2;
    start_member(fx, 0);
    start_member(fx, 1);
    size_t l = leader(fx, SIZE_MAX);
    char id[16];
    for (int i = 0; i < 60; i++) { /* past a snapshot: the joiner needs it */
        snprintf(id, sizeof(id), "t%d", i);
        write_task(fx, l, id);
    }
    start_member(fx, 2); /* empty store, no configuration: waits for the leader */
    struct outcome o = {0};
    assert_int_equal(raft_node_add_voter(fx->m[l].node, fx->m[2].id, on_change, &o), 0);
    assert_int_equal(raft_node_add_voter(fx->m[l].node, 0x999, on_change, &o), SWM_EINUSE);
    run_until(fx, outcome_done, &o, "the new member to become a voter");
    if (o.status != 0)
        fail_msg("adding a voter: %s", o.msg);
    assert_int_equal(voters_of(fx, l), 3);
    wait_task(fx, 2, "t59");
    /* It votes: with the other founder down, the leader still commits. */
    size_t other = 1 - l;
    stop_member(fx, other);
    write_task(fx, l, "after");
    wait_task(fx, 2, "after");
}

static void removed_member_no_longer_counts(void **state)
{
    struct fx *fx = *state;
    size_t l = leader(fx, SIZE_MAX);
    size_t gone = (l + 1) % fx->n, stay = (l + 2) % fx->n;
    write_task(fx, l, "t0"); /* the leader's first entry is committed */
    struct outcome o = {0};
    assert_int_equal(raft_node_remove_member(fx->m[l].node, 0x777, on_change, &o), SWM_ENOTFOUND);
    assert_int_equal(raft_node_remove_member(fx->m[l].node, fx->m[gone].id, on_change, &o), 0);
    run_until(fx, outcome_done, &o, "the removal");
    assert_int_equal(o.status, 0);
    assert_int_equal(voters_of(fx, l), 2);
    assert_true(raft_configuration_is_removed(
        raft_configuration_current(raft_node_core(fx->m[l].node)), fx->m[gone].id));
    /* Ids are never reused. */
    assert_int_equal(raft_node_add_voter(fx->m[l].node, fx->m[gone].id, on_change, &o),
                     SWM_EEXISTS);
    stop_member(fx, gone);
    write_task(fx, l, "t1"); /* a quorum of the two that remain */
    wait_task(fx, stay, "t1");
}

static bool is_leader(struct fx *fx, void *arg)
{
    size_t i = *(size_t *)arg;
    return raft_node_is_leader(fx->m[i].node);
}

static void leadership_moves_on_request(void **state)
{
    struct fx *fx = *state;
    size_t l = leader(fx, SIZE_MAX);
    write_task(fx, l, "t1");
    size_t to = (l + 1) % fx->n;
    wait_task(fx, to, "t1");
    assert_int_equal(raft_node_transfer_leadership(fx->m[l].node, fx->m[l].id), -EINVAL);
    assert_int_equal(raft_node_transfer_leadership(fx->m[l].node, fx->m[to].id), 0);
    run_until(fx, is_leader, &to, "the transfer");
    write_task(fx, to, "t2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(single_voter_commits_and_applies, setup1, teardown),
        cmocka_unit_test_setup_teardown(burst_of_proposals_all_commit_in_order, setup1, teardown),
        cmocka_unit_test_setup_teardown(restart_keeps_state_and_leads_at_once, setup1, teardown),
        cmocka_unit_test_setup_teardown(closing_fails_queued_proposals_later, setup1, teardown),
        cmocka_unit_test_teardown(store_without_raft_state_is_converted, teardown),
        cmocka_unit_test_teardown(damaged_log_refuses_to_start, teardown),
        cmocka_unit_test_setup_teardown(read_barrier_on_leader, setup1, teardown),
        cmocka_unit_test_setup_teardown(three_voters_replicate_to_every_store, setup3, teardown),
        cmocka_unit_test_setup_teardown(follower_refuses_writes_naming_the_leader, setup3,
                                        teardown),
        cmocka_unit_test_setup_teardown(isolated_leader_is_replaced_and_catches_up, setup3,
                                        teardown),
        cmocka_unit_test_teardown(lagging_follower_catches_up_from_a_snapshot, teardown),
        cmocka_unit_test_teardown(joining_member_catches_up_and_votes, teardown),
        cmocka_unit_test_setup_teardown(removed_member_no_longer_counts, setup3, teardown),
        cmocka_unit_test_setup_teardown(leadership_moves_on_request, setup3, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
