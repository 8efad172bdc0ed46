#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "fixture.h"

static struct fx *F;

static int setup(void **state)
{
    F = calloc(1, sizeof(*F));
    fx_init(F, obj_service("svc1", "web", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, 3));
    return 0;
}

static int teardown(void **state)
{
    fx_free(F);
    free(F);
    return 0;
}

/* A stopped task of slot, created and stopped at T0 + age seconds. */
static Swarmc__Task *old(uint64_t slot, int age)
{
    Swarmc__Task *t = fx_task(F, slot, "n1", ST(SHUTDOWN), ST(SHUTDOWN));
    obj_task_times(t, T0 + age * OBJ_SEC, T0 + age * OBJ_SEC);
    return t;
}

static bool present(const char *id)
{
    return fx_find(F, id) != NULL;
}

static size_t in_slot(uint64_t slot)
{
    size_t n = 0;
    for (size_t i = 0; i < F->n_tasks; i++)
        n += F->tasks[i]->slot == slot;
    return n;
}

static void keeps_five_tasks_per_slot(void **state)
{
    Swarmc__Task *running = fx_task(F, 1, "n1", ST(RUNNING), ST(RUNNING));
    obj_task_times(running, T0, T0); /* the oldest status, but it runs */
    char *oldest[2];
    for (int i = 0; i < 6; i++) {
        Swarmc__Task *t = old(1, 10 + i);
        if (i < 2)
            oldest[i] = swm_strdup(t->id);
    }
    for (int i = 0; i < 3; i++)
        old(2, 10 + i);
    fx_reap(F, ORCH_DEFAULT_HISTORY_LIMIT);
    assert_int_equal(F->plan.n_deletes, 2);
    assert_int_equal(in_slot(1), 5);
    assert_int_equal(in_slot(2), 3);
    assert_false(present(oldest[0]));
    assert_false(present(oldest[1]));
    assert_true(present(running->id));
    swm_free(oldest[0]);
    swm_free(oldest[1]);
    fx_reap(F, 5);
    assert_int_equal(F->plan.n_deletes, 0);
}

static void keeps_the_newest_task_and_runnable_ones(void **state)
{
    Swarmc__Task *ready = fx_task(F, 1, "n1", ST(NEW), ST(READY));
    obj_task_times(ready, T0, T0);
    Swarmc__Task *stopping = fx_task(F, 1, "n1", ST(RUNNING), ST(SHUTDOWN));
    obj_task_times(stopping, T0 + OBJ_SEC, T0 + OBJ_SEC);
    Swarmc__Task *older = old(1, 3);
    Swarmc__Task *last = old(1, 5);
    Swarmc__Task *done = old(2, 1);
    old(2, 0);
    char *older_id = swm_strdup(older->id);
    fx_reap(F, 0);
    assert_false(present(older_id));
    swm_free(older_id);
    assert_true(present(last->id));
    /* Nothing still running or about to, and no slot's last task, goes. */
    assert_true(present(ready->id));
    assert_true(present(stopping->id));
    assert_true(present(done->id));
    assert_int_equal(F->plan.n_deletes, 2);
}

static void deletes_removed_tasks_once_stopped(void **state)
{
    Swarmc__Task *stopped = fx_task(F, 1, "n1", ST(SHUTDOWN), ST(REMOVE));
    Swarmc__Task *running = fx_task(F, 2, "n1", ST(RUNNING), ST(REMOVE));
    Swarmc__Task *unassigned = fx_task(F, 3, NULL, ST(PENDING), ST(REMOVE));
    Swarmc__Task *orphaned = fx_task(F, 4, "n1", ST(ORPHANED), ST(REMOVE));
    (void)stopped, (void)unassigned, (void)orphaned;
    fx_reap(F, -1); /* history trimming off; removals still happen */
    assert_int_equal(F->n_tasks, 1);
    assert_true(present(running->id));
}

static void clears_the_history_of_removed_slots(void **state)
{
    old(3, 0);
    old(3, 1);
    Swarmc__Task *last = old(3, 2);
    last->desired_state = ST(REMOVE);
    fx_task(F, 1, "n1", ST(RUNNING), ST(RUNNING));
    fx_reap(F, 5);
    assert_int_equal(in_slot(3), 0);
    assert_int_equal(in_slot(1), 1);
}

static void reaps_tasks_of_a_deleted_service(void **state)
{
    fx_task(F, 1, "n1", ST(RUNNING), ST(RUNNING));
    fx_task(F, 1, "n1", ST(FAILED), ST(SHUTDOWN));
    fx_task(F, 2, NULL, ST(NEW), ST(RUNNING));
    struct swm_err err = {0};
    orch_plan_free(&F->plan);
    assert_int_equal(orch_reap(NULL, F->tasks, F->n_tasks, 5, &F->plan, &err), 0);
    assert_int_equal(F->plan.n_deletes, 2);
    fx_apply(F);
    assert_int_equal(F->n_tasks, 1);
    assert_int_equal(F->tasks[0]->status->state, ST(RUNNING));
}

static void global_history_is_per_node(void **state)
{
    F->svc->spec->mode = SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    for (int i = 0; i < 4; i++) {
        Swarmc__Task *a = old(0, i), *b = old(0, i);
        obj_set_str(&a->node_id, "na");
        obj_set_str(&b->node_id, "nb");
    }
    fx_reap(F, 2);
    assert_int_equal(F->n_tasks, 4);
}

static void history_limit_defaults_to_five(void **state)
{
    Swarmc__Cluster c = SWARMC__CLUSTER__INIT;
    Swarmc__ClusterSpec spec = SWARMC__CLUSTER_SPEC__INIT;
    assert_int_equal(orch_task_history_limit(NULL), 5);
    assert_int_equal(orch_task_history_limit(&c), 5);
    c.spec = &spec;
    assert_int_equal(orch_task_history_limit(&c), 5);
    spec.has_task_history_retention_limit = 1;
    spec.task_history_retention_limit = 2;
    assert_int_equal(orch_task_history_limit(&c), 2);
}

static void survives_allocation_failures(void **state)
{
    for (int i = 0; i < 8; i++)
        old(1 + i % 2, i);
    fx_task(F, 3, NULL, ST(PENDING), ST(REMOVE));
    for (long n = 0;; n++) {
        struct orch_plan plan;
        struct swm_err err = {0};
        orch_plan_init(&plan);
        swm_alloc_fail_after(n);
        int rc = orch_reap(F->svc, F->tasks, F->n_tasks, 1, &plan, &err);
        swm_alloc_fail_reset();
        if (rc == 0) {
            assert_int_equal(plan.n_deletes, 7);
            orch_plan_free(&plan);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_true(orch_plan_empty(&plan));
        orch_plan_free(&plan);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(keeps_five_tasks_per_slot),          T(keeps_the_newest_task_and_runnable_ones),
        T(deletes_removed_tasks_once_stopped), T(clears_the_history_of_removed_slots),
        T(reaps_tasks_of_a_deleted_service),   T(global_history_is_per_node),
        T(history_limit_defaults_to_five),     T(survives_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
