/* store/log.c: the one-member log on a real libuv loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "fixture.h"
#include "store/internal.h" /* to hold LMDB's write lock from the test */
#include "store/log.h"

#define CREATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE
#define UPDATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE
#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING

struct fx {
    char *dir;
    struct store *s;
    uv_loop_t loop;
    struct store_log *log;
    int seq; /* callbacks so far, to check their order */
};

struct outcome {
    struct fx *fx;
    int called, seq, status, code;
    uint64_t index;
    char msg[256];
};

static void open_log(struct fx *fx)
{
    struct swm_err err = {0};
    if (store_log_open(&fx->loop, fx->s, &fx->log, &err) != 0)
        fail_msg("store_log_open: %s", err.msg);
}

/* Closes the log and runs the loop until it has freed itself. */
static void close_log(struct fx *fx)
{
    store_log_close(fx->log);
    fx->log = NULL;
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    fx->dir = fixture_tmpdir();
    fx->s = fixture_open(fx->dir);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    open_log(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    close_log(fx);
    /* Every handle of the log is closed: nothing may be left behind. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    store_close(fx->s);
    fixture_rmdir(fx->dir);
    free(fx);
    return 0;
}

static void on_commit(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct outcome *o = arg;
    o->called++;
    o->seq = ++o->fx->seq;
    o->status = status;
    o->index = index;
    o->code = err->code;
    snprintf(o->msg, sizeof(o->msg), "%s", err->msg);
}

static void propose_task(struct fx *fx, const char *id, struct outcome *o)
{
    o->fx = fx;
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_task(id, "s", "n", RUNNING, 0));
    assert_int_equal(store_log_propose(fx->log, e, on_commit, o), 0);
}

static void proposal_commits_and_is_logged(void **state)
{
    struct fx *fx = *state;
    struct outcome o = {0};
    propose_task(fx, "t1", &o);
    assert_int_equal(o.called, 0); /* never from inside propose */
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(o.called, 1);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.code, 0);
    assert_true(o.index == 1);
    assert_true(store_applied_index(fx->s) == 1);

    struct store_read *r;
    assert_int_equal(store_read_begin(fx->s, &r, NULL), 0);
    Swarmc__StoreEntry *entry;
    assert_int_equal(store_get_log_entry(r, 1, &entry), 0);
    assert_int_equal(entry->n_actions, 1);
    assert_string_equal(entry->actions[0]->task->id, "t1");
    proto_free(entry);
    Swarmc__Task *t;
    assert_int_equal(store_get_task(r, "t1", &t), 0);
    assert_true(t->meta->version == 1);
    proto_free(t);
    store_read_end(r);
}

#define BURST 300
#define TRICKLE 300

struct producer {
    struct fx *fx;
    uv_idle_t idle;
    struct outcome *outcomes;
    int next;
};

/* Proposes one entry per loop iteration, so that proposals keep arriving
 * while batches are being written. */
static void produce(uv_idle_t *idle)
{
    struct producer *p = idle->data;
    char id[16];
    snprintf(id, sizeof(id), "t%04d", p->next);
    propose_task(p->fx, id, &p->outcomes[p->next]);
    if (++p->next == BURST + TRICKLE)
        uv_close((uv_handle_t *)idle, NULL);
}

struct batches {
    int calls;
    size_t first_size;
};

static void count_batches(void *arg, const struct store_event *events, size_t n)
{
    struct batches *b = arg;
    if (b->calls++ == 0)
        b->first_size = n;
}

static void concurrent_proposals_share_batches(void **state)
{
    struct fx *fx = *state;
    struct batches batches = {0};
    assert_int_equal(store_watch(fx->s, count_batches, &batches), 0);
    struct outcome *outcomes = calloc(BURST + TRICKLE, sizeof(*outcomes));
    struct producer p = {.fx = fx, .outcomes = outcomes};
    /* A burst proposed in one loop iteration... */
    for (p.next = 0; p.next < BURST; p.next++) {
        char id[16];
        snprintf(id, sizeof(id), "t%04d", p.next);
        propose_task(fx, id, &outcomes[p.next]);
    }
    /* ...then a trickle, one per iteration, during the writes. */
    assert_int_equal(uv_idle_init(&fx->loop, &p.idle), 0);
    p.idle.data = &p;
    assert_int_equal(uv_idle_start(&p.idle, produce), 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);

    for (int i = 0; i < BURST + TRICKLE; i++) {
        assert_int_equal(outcomes[i].called, 1);
        assert_int_equal(outcomes[i].status, 0);
        assert_int_equal(outcomes[i].code, 0);
        /* Consecutive indexes in proposal order, callbacks in that order. */
        assert_true(outcomes[i].index == (uint64_t)i + 1);
        assert_int_equal(outcomes[i].seq, i + 1);
    }
    /* The burst went in one transaction (group commit), perhaps with the
     * producer's first proposal, made in the same iteration. */
    assert_true(batches.first_size >= BURST);
    assert_true(batches.calls >= 2 && batches.calls <= 1 + TRICKLE);
    assert_true(store_applied_index(fx->s) == BURST + TRICKLE);

    struct store_read *r;
    assert_int_equal(store_read_begin(fx->s, &r, NULL), 0);
    Swarmc__Task **tasks;
    size_t n;
    assert_int_equal(store_list_tasks_by_node(r, "n", &tasks, &n), 0);
    assert_int_equal(n, BURST + TRICKLE);
    store_free_list(tasks, n);
    Swarmc__StoreEntry *entry;
    assert_int_equal(store_get_log_entry(r, BURST + TRICKLE, &entry), 0);
    assert_string_equal(entry->actions[0]->task->id, "t0599");
    proto_free(entry);
    store_read_end(r);
    free(outcomes);
    store_unwatch(fx->s, count_batches, &batches);
}

static void entry_failures_reach_their_proposer(void **state)
{
    struct fx *fx = *state;
    struct outcome o[3] = {0};
    propose_task(fx, "t1", &o[0]);
    propose_task(fx, "t1", &o[1]);
    propose_task(fx, "t2", &o[2]);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].status, 0);
        assert_true(o[i].index == (uint64_t)i + 1);
    }
    assert_int_equal(o[0].code, 0);
    assert_int_equal(o[1].code, SWM_EEXISTS);
    assert_non_null(strstr(o[1].msg, "t1"));
    assert_int_equal(o[2].code, 0);
}

static void close_fails_pending_proposals_later(void **state)
{
    struct fx *fx = *state;
    struct outcome o[3] = {0};
    for (int i = 0; i < 3; i++)
        propose_task(fx, "t", &o[i]);
    store_log_close(fx->log);
    store_log_close(fx->log);         /* idempotent */
    assert_int_equal(o[0].called, 0); /* not from inside close */
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_task("late", "s", "n", RUNNING, 0));
    assert_int_equal(store_log_propose(fx->log, e, on_commit, &o[0]), SWM_ESHUTDOWN);
    proto_free(e); /* still ours */
    fx->log = NULL;
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].called, 1);
        assert_int_equal(o[i].status, SWM_ESHUTDOWN);
        assert_true(o[i].index == 0);
        assert_int_equal(o[i].seq, i + 1);
    }
    assert_true(store_applied_index(fx->s) == 0);
}

static void close_during_a_write_lets_it_finish(void **state)
{
    struct fx *fx = *state;
    /* Hold LMDB's write lock so the batch is certainly in flight when the
     * log is closed. */
    MDB_txn *blocker;
    assert_int_equal(mdb_txn_begin(fx->s->env, NULL, 0, &blocker), 0);
    struct outcome a = {0}, b = {0};
    propose_task(fx, "a", &a);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* the idle kick starts the write */
    propose_task(fx, "b", &b);
    store_log_close(fx->log);
    fx->log = NULL;
    mdb_txn_abort(blocker);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.status, 0);
    assert_true(a.index == 1);
    assert_int_equal(b.status, SWM_ESHUTDOWN);
    assert_true(a.seq < b.seq);
    assert_true(store_applied_index(fx->s) == 1);
}

struct reentrant {
    struct outcome first, second, third;
};

static void propose_and_close(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct reentrant *re = arg;
    on_commit(&re->first, status, index, err);
    struct fx *fx = re->first.fx;
    propose_task(fx, "second", &re->second);
    store_log_close(fx->log);
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_task("third", "s", "n", RUNNING, 0));
    assert_int_equal(store_log_propose(fx->log, e, on_commit, &re->third), SWM_ESHUTDOWN);
    proto_free(e);
    fx->log = NULL;
}

static void callback_may_propose_and_close(void **state)
{
    struct fx *fx = *state;
    struct reentrant re = {.first.fx = fx, .second.fx = fx, .third.fx = fx};
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_task("first", "s", "n", RUNNING, 0));
    assert_int_equal(store_log_propose(fx->log, e, propose_and_close, &re), 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(re.first.status, 0);
    assert_int_equal(re.second.called, 1);
    assert_int_equal(re.second.status, SWM_ESHUTDOWN);
    assert_int_equal(re.third.called, 0);
}

static void failed_batch_reuses_its_indexes(void **state)
{
    struct fx *fx = *state;
    struct outcome o[4] = {0};
    propose_task(fx, "t1", &o[0]);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    close_log(fx);
    store_close(fx->s);
    fixture_raw_put(fx->dir, "tasks", "t1", 2, "\xff\xff", 2, 0);
    fx->s = fixture_open(fx->dir);
    open_log(fx);

    /* Updating the damaged t1 fails the whole batch, t2 with it. */
    o[1].fx = fx;
    Swarmc__StoreEntry *e = fixture_entry1(UPDATE, fixture_task("t1", "s", "n", RUNNING, 1));
    assert_int_equal(store_log_propose(fx->log, e, on_commit, &o[1]), 0);
    propose_task(fx, "t2", &o[2]);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(o[1].status, SWM_ECORRUPT);
    assert_non_null(strstr(o[1].msg, "t1"));
    assert_int_equal(o[2].status, SWM_ECORRUPT);
    assert_true(o[1].index == 0);
    assert_true(store_applied_index(fx->s) == 1);

    propose_task(fx, "t3", &o[3]);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(o[3].status, 0);
    assert_true(o[3].index == 2);
}

static void allocation_failures(void **state)
{
    struct fx *fx = *state;
    struct outcome o = {.fx = fx};
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_task("t1", "s", "n", RUNNING, 0));
    swm_alloc_fail_after(0);
    assert_int_equal(store_log_propose(fx->log, e, on_commit, &o), -ENOMEM);
    swm_alloc_fail_reset();
    assert_int_equal(o.called, 0);

    /* The batch's own allocations (on the threadpool) fail: the proposal
     * fails, nothing is written, and the index is reused. */
    assert_int_equal(store_log_propose(fx->log, e, on_commit, &o), 0);
    swm_alloc_fail_after(0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    swm_alloc_fail_reset();
    assert_int_equal(o.called, 1);
    assert_int_equal(o.status, -ENOMEM);
    assert_true(store_applied_index(fx->s) == 0);
    propose_task(fx, "t1", &o);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(o.status, 0);
    assert_true(o.index == 1);
}

static void new_log_continues_after_the_applied_index(void **state)
{
    struct fx *fx = *state;
    struct outcome o[2] = {0};
    propose_task(fx, "t1", &o[0]);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    close_log(fx);
    store_close(fx->s);
    fx->s = fixture_open(fx->dir);
    open_log(fx);
    propose_task(fx, "t2", &o[1]);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_true(o[1].index == 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(proposal_commits_and_is_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_proposals_share_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(entry_failures_reach_their_proposer, setup, teardown),
        cmocka_unit_test_setup_teardown(close_fails_pending_proposals_later, setup, teardown),
        cmocka_unit_test_setup_teardown(close_during_a_write_lets_it_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(callback_may_propose_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_batch_reuses_its_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(new_log_continues_after_the_applied_index, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
