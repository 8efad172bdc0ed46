/* manager/reconcile.c (with orchestrate.c and view.c): one reconcile pass
 * over a real store, as the manager runs it, with time passed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "common/alloc.h"
#include "manager/internal.h"

#define SVC "s00000000000000000000web1"

static int setup(void **state)
{
    struct cfx *f = calloc(1, sizeof(*f));
    cfx_setup(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct cfx *f = *state;
    cfx_teardown(f);
    free(f);
    return 0;
}

/* One pass at now; returns its entry (NULL when it decided nothing). */
static Swarmc__StoreEntry *reconcile(struct cfx *f, int64_t now, int64_t *wakeup)
{
    Swarmc__StoreEntry *entry = NULL;
    int64_t wake = -1;
    struct swm_err err = {0};
    int rc = manager__reconcile(f->s, now, &entry, &wake, &err);
    if (rc != 0)
        fail_msg("manager__reconcile: %s", err.msg);
    assert_true(wake >= 0);
    if (wakeup != NULL)
        *wakeup = wake;
    return entry;
}

/* One pass whose entry must apply cleanly; returns how many actions it had. */
static size_t step(struct cfx *f, int64_t now)
{
    Swarmc__StoreEntry *e = reconcile(f, now, NULL);
    if (e == NULL)
        return 0;
    size_t n = e->n_actions;
    assert_int_equal(cfx_write(f, e), 0);
    return n;
}

static Swarmc__Service *web(uint64_t replicas)
{
    Swarmc__Service *svc =
        obj_service(SVC, "web", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, replicas);
    Swarmc__RestartPolicy *rp = obj_restart(obj_service_task(svc));
    rp->has_delay = 1;
    rp->delay = 2 * OBJ_SEC;
    return svc;
}

/* The service's three tasks, assigned and applied (the steady state). */
static void running_service(struct cfx *f)
{
    assert_int_equal(cfx_write1(f, CREATE, web(3)), 0);
    assert_int_equal(step(f, CFX_T0), 3);
    assert_int_equal(cfx_count(f, ST(ASSIGNED), ST(RUNNING)), 3);
}

static Swarmc__Task *task_in_slot(struct cfx *f, uint64_t slot, Swarmc__TaskState desired)
{
    size_t n = 0;
    Swarmc__Task **tasks = cfx_tasks(f, &n);
    Swarmc__Task *found = NULL;
    for (size_t i = 0; i < n && found == NULL; i++) {
        if (tasks[i]->slot == slot && tasks[i]->desired_state == desired) {
            found = tasks[i];
            tasks[i] = NULL;
        }
    }
    store_free_list(tasks, n);
    assert_non_null(found);
    return found;
}

static void test_unbootstrapped_store_decides_nothing(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    struct store *s = fixture_open(dir);
    Swarmc__StoreEntry *entry = NULL;
    int64_t wakeup = -1;
    struct swm_err err = {0};
    assert_int_equal(manager__reconcile(s, CFX_T0, &entry, &wakeup, &err), 0);
    assert_null(entry);
    assert_int_equal(wakeup, 0);
    store_close(s);
    fixture_rmdir(dir);
}

static void test_new_service_gets_assigned_tasks_in_one_entry(void **state)
{
    struct cfx *f = *state;
    assert_int_equal(cfx_write1(f, CREATE, web(3)), 0);

    int64_t wakeup = -1;
    Swarmc__StoreEntry *e = reconcile(f, CFX_T0, &wakeup);
    assert_non_null(e);
    assert_int_equal(wakeup, 0);
    /* Created, allocated and scheduled in one pass: one entry, three
     * creations already ASSIGNED to the only node. */
    assert_int_equal(e->n_actions, 3);
    int slots = 0;
    for (size_t i = 0; i < e->n_actions; i++) {
        const Swarmc__StoreAction *a = e->actions[i];
        assert_int_equal(a->kind, CREATE);
        assert_int_equal(a->target_case, SWARMC__STORE_ACTION__TARGET_TASK);
        const Swarmc__Task *t = a->task;
        assert_string_equal(t->service_id, SVC);
        assert_string_equal(t->node_id, CFX_NODE);
        assert_int_equal(t->status->state, ST(ASSIGNED));
        assert_int_equal(t->status->timestamp, CFX_T0);
        assert_int_equal(t->desired_state, ST(RUNNING));
        assert_int_equal(t->spec_version, 1);
        assert_string_equal(t->spec->container->image, "nginx:1");
        assert_true(t->slot >= 1 && t->slot <= 3);
        slots |= 1 << t->slot;
    }
    assert_int_equal(slots, (1 << 1) | (1 << 2) | (1 << 3));

    assert_int_equal(cfx_write(f, e), 0);
    assert_int_equal(cfx_count(f, ST(ASSIGNED), ST(RUNNING)), 3);

    /* Steady state: the next pass, even much later, writes nothing. */
    uint64_t index = store_applied_index(f->s);
    assert_null(reconcile(f, CFX_T0 + 60 * OBJ_SEC, &wakeup));
    assert_int_equal(wakeup, 0);
    assert_int_equal(store_applied_index(f->s), index);
}

static void test_failed_task_is_replaced_after_restart_delay(void **state)
{
    struct cfx *f = *state;
    running_service(f);
    Swarmc__Task *old = task_in_slot(f, 2, ST(RUNNING));
    int64_t failed_at = CFX_T0 + 10 * OBJ_SEC;
    assert_int_equal(cfx_set_state(f, old->id, ST(FAILED), failed_at), 0);

    /* The failed task is told to shut down and a replacement waits in
     * READY, already assigned, until the restart delay (2 s) has passed. */
    int64_t wakeup = 0;
    Swarmc__StoreEntry *e = reconcile(f, failed_at + OBJ_SEC / 2, &wakeup);
    assert_non_null(e);
    assert_int_equal(wakeup, failed_at + 2 * OBJ_SEC);
    assert_int_equal(cfx_write(f, e), 0);
    Swarmc__Task *stopped = cfx_task(f, old->id);
    assert_int_equal(stopped->desired_state, ST(SHUTDOWN));
    Swarmc__Task *repl = task_in_slot(f, 2, ST(READY));
    assert_string_not_equal(repl->id, old->id);
    assert_string_equal(repl->node_id, CFX_NODE);
    assert_int_equal(repl->status->state, ST(ASSIGNED));
    assert_int_equal(cfx_count(f, -1, ST(RUNNING)), 2);

    /* Before the delay ends a pass changes nothing but still asks for the
     * same wake-up. */
    assert_null(reconcile(f, failed_at + OBJ_SEC, &wakeup));
    assert_int_equal(wakeup, failed_at + 2 * OBJ_SEC);

    /* Once it has passed, the replacement may run. */
    e = reconcile(f, failed_at + 3 * OBJ_SEC, &wakeup);
    assert_non_null(e);
    assert_int_equal(e->n_actions, 1);
    assert_int_equal(e->actions[0]->kind, UPDATE);
    assert_string_equal(e->actions[0]->task->id, repl->id);
    assert_int_equal(e->actions[0]->task->desired_state, ST(RUNNING));
    assert_int_equal(wakeup, 0);
    assert_int_equal(cfx_write(f, e), 0);
    assert_int_equal(cfx_count(f, -1, ST(RUNNING)), 3);
    assert_null(reconcile(f, failed_at + 4 * OBJ_SEC, NULL));
    proto_free(old);
    proto_free(stopped);
    proto_free(repl);
}

static void test_removed_service_tasks_are_stopped_then_reaped(void **state)
{
    struct cfx *f = *state;
    running_service(f);
    size_t n = 0;
    Swarmc__Task **tasks = cfx_tasks(f, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cfx_set_state(f, tasks[i]->id, ST(RUNNING), CFX_T0 + OBJ_SEC), 0);
    assert_int_equal(cfx_write1(f, REMOVE, cfx_service(f, SVC)), 0);

    /* First the agents are told to stop the tasks... */
    assert_int_equal(step(f, CFX_T0 + 2 * OBJ_SEC), 3);
    assert_int_equal(cfx_count(f, ST(RUNNING), ST(REMOVE)), 3);
    /* ...and while they still run nothing else happens. */
    assert_null(reconcile(f, CFX_T0 + 3 * OBJ_SEC, NULL));

    /* A task that stopped is deleted by the reaper; the others wait. */
    assert_int_equal(cfx_set_state(f, tasks[0]->id, ST(SHUTDOWN), CFX_T0 + 4 * OBJ_SEC), 0);
    Swarmc__StoreEntry *e = reconcile(f, CFX_T0 + 5 * OBJ_SEC, NULL);
    assert_non_null(e);
    assert_int_equal(e->n_actions, 1);
    assert_int_equal(e->actions[0]->kind, REMOVE);
    assert_string_equal(e->actions[0]->task->id, tasks[0]->id);
    assert_int_equal(cfx_write(f, e), 0);
    assert_null(cfx_task(f, tasks[0]->id));

    for (size_t i = 1; i < n; i++)
        assert_int_equal(cfx_set_state(f, tasks[i]->id, ST(SHUTDOWN), CFX_T0 + 6 * OBJ_SEC), 0);
    assert_int_equal(step(f, CFX_T0 + 7 * OBJ_SEC), 2);
    assert_int_equal(cfx_count(f, -1, -1), 0);
    assert_null(reconcile(f, CFX_T0 + 8 * OBJ_SEC, NULL));
    store_free_list(tasks, n);
}

static void test_unsatisfiable_constraint_leaves_task_pending_without_churn(void **state)
{
    struct cfx *f = *state;
    Swarmc__Service *svc = web(1);
    obj_spec_constraint(obj_service_task(svc), "node.labels.zone==mars");
    assert_int_equal(cfx_write1(f, CREATE, svc), 0);

    Swarmc__StoreEntry *e = reconcile(f, CFX_T0, NULL);
    assert_non_null(e);
    assert_int_equal(e->n_actions, 1);
    const Swarmc__Task *t = e->actions[0]->task;
    assert_int_equal(t->status->state, ST(PENDING));
    assert_null(t->node_id);
    assert_string_equal(t->status->err,
                        "no suitable node (scheduling constraints not satisfied on 1 node)");
    assert_int_equal(cfx_write(f, e), 0);

    /* The explanation is already stored: later passes write nothing. */
    uint64_t index = store_applied_index(f->s);
    assert_null(reconcile(f, CFX_T0 + OBJ_SEC, NULL));
    assert_null(reconcile(f, CFX_T0 + 60 * OBJ_SEC, NULL));
    assert_int_equal(store_applied_index(f->s), index);
    assert_int_equal(cfx_count(f, ST(PENDING), ST(RUNNING)), 1);
}

static void test_stale_pass_fails_and_recomputed_pass_applies(void **state)
{
    struct cfx *f = *state;
    running_service(f);
    assert_int_equal(cfx_write1(f, REMOVE, cfx_service(f, SVC)), 0);
    Swarmc__StoreEntry *stale = reconcile(f, CFX_T0 + OBJ_SEC, NULL);
    assert_non_null(stale);
    assert_int_equal(stale->n_actions, 3);

    /* Another writer (an agent's report) changes a task meanwhile. */
    Swarmc__Task *t = task_in_slot(f, 1, ST(RUNNING));
    assert_int_equal(cfx_set_state(f, t->id, ST(ACCEPTED), 0), 0);

    /* The pass read the old version: it fails as a whole and changes no
     * task; run again on fresh state, it applies. */
    assert_int_equal(cfx_write(f, stale), SWM_ESTALE);
    assert_int_equal(cfx_count(f, -1, ST(RUNNING)), 3);
    assert_int_equal(step(f, CFX_T0 + 2 * OBJ_SEC), 3);
    assert_int_equal(cfx_count(f, -1, ST(REMOVE)), 3);
    Swarmc__Task *after = cfx_task(f, t->id);
    assert_int_equal(after->status->state, ST(ACCEPTED));
    proto_free(after);
    proto_free(t);
}

static void test_scale_down_removes_highest_slots(void **state)
{
    struct cfx *f = *state;
    running_service(f);
    Swarmc__Service *svc = cfx_service(f, SVC);
    svc->spec->replicas = 1;
    assert_int_equal(cfx_write1(f, UPDATE, svc), 0);
    assert_int_equal(step(f, CFX_T0 + OBJ_SEC), 2);
    assert_int_equal(cfx_count(f, -1, ST(RUNNING)), 1);
    Swarmc__Task *kept = task_in_slot(f, 1, ST(RUNNING));
    proto_free(kept);
    /* Assigned, the surplus tasks wait for their agent to stop them. */
    assert_int_equal(cfx_count(f, ST(ASSIGNED), ST(REMOVE)), 2);
    assert_null(reconcile(f, CFX_T0 + 2 * OBJ_SEC, NULL));
}

static void test_global_service_follows_nodes(void **state)
{
    struct cfx *f = *state;
    Swarmc__Service *svc = obj_service(SVC, "agent", SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL, 0);
    assert_int_equal(cfx_write1(f, CREATE, svc), 0);
    assert_int_equal(step(f, CFX_T0), 1);
    assert_int_equal(cfx_count(f, ST(ASSIGNED), ST(RUNNING)), 1);

    /* A node joins: it gets its own task, in the same kind of pass. */
    Swarmc__Node *n2 = obj_node(CFX_NODE2, 2 * OBJ_CPU, 1024 * OBJ_MIB);
    assert_int_equal(cfx_write1(f, CREATE, n2), 0);
    Swarmc__StoreEntry *e = reconcile(f, CFX_T0 + OBJ_SEC, NULL);
    assert_non_null(e);
    assert_int_equal(e->n_actions, 1);
    assert_int_equal(e->actions[0]->kind, CREATE);
    assert_string_equal(e->actions[0]->task->node_id, CFX_NODE2);
    assert_int_equal(e->actions[0]->task->status->state, ST(ASSIGNED));
    assert_int_equal(cfx_write(f, e), 0);
    assert_null(reconcile(f, CFX_T0 + 2 * OBJ_SEC, NULL));
}

static void test_tasks_of_a_down_node_are_replaced_elsewhere(void **state)
{
    struct cfx *f = *state;
    Swarmc__Node *n2 = obj_node(CFX_NODE2, 4 * OBJ_CPU, 8192 * OBJ_MIB);
    assert_int_equal(cfx_write1(f, CREATE, n2), 0);
    assert_int_equal(cfx_write1(f, CREATE, web(2)), 0);
    assert_int_equal(step(f, CFX_T0), 2);
    /* Spread: one task per node. */
    Swarmc__Task *on2 = NULL;
    size_t n = 0;
    Swarmc__Task **tasks = cfx_tasks(f, &n);
    assert_int_equal(n, 2);
    assert_string_not_equal(tasks[0]->node_id, tasks[1]->node_id);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(cfx_set_state(f, tasks[i]->id, ST(RUNNING), CFX_T0 + OBJ_SEC), 0);
        if (strcmp(tasks[i]->node_id, CFX_NODE2) == 0)
            on2 = proto_clone(tasks[i]);
    }
    store_free_list(tasks, n);
    assert_non_null(on2);

    Swarmc__Node *down = cfx_node(f, CFX_NODE2);
    obj_node_state(down, SWARMC__NODE_STATE__NODE_STATE_DOWN);
    assert_int_equal(cfx_write1(f, UPDATE, down), 0);
    assert_true(step(f, CFX_T0 + 2 * OBJ_SEC) > 0);
    Swarmc__Task *old = cfx_task(f, on2->id);
    assert_int_equal(old->desired_state, ST(SHUTDOWN));
    /* The old task's observed state is still RUNNING (its agent is gone),
     * so no failure time is known and the replacement may start at once. */
    Swarmc__Task *repl = task_in_slot(f, on2->slot, ST(RUNNING));
    assert_string_not_equal(repl->id, on2->id);
    assert_string_equal(repl->node_id, CFX_NODE);
    assert_int_equal(repl->status->state, ST(ASSIGNED));
    assert_int_equal(cfx_count(f, -1, ST(RUNNING)), 2);
    assert_null(reconcile(f, CFX_T0 + 3 * OBJ_SEC, NULL));
    proto_free(repl);
    proto_free(old);
    proto_free(on2);
}

static void test_image_update_replaces_tasks_one_at_a_time(void **state)
{
    struct cfx *f = *state;
    running_service(f);
    size_t n = 0;
    Swarmc__Task **tasks = cfx_tasks(f, &n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cfx_set_state(f, tasks[i]->id, ST(RUNNING), CFX_T0 + OBJ_SEC), 0);
    store_free_list(tasks, n);
    Swarmc__Service *svc = cfx_service(f, SVC);
    obj_set_str(&svc->spec->task->container->image, "nginx:2");
    svc->spec_version = 2;
    assert_int_equal(cfx_write1(f, UPDATE, svc), 0);

    /* Stop-first with parallelism 1: one old task stops, its replacement
     * (new spec) waits for it. */
    assert_true(step(f, CFX_T0 + 2 * OBJ_SEC) > 0);
    assert_int_equal(cfx_count(f, ST(RUNNING), ST(RUNNING)), 2);
    assert_int_equal(cfx_count(f, ST(RUNNING), ST(SHUTDOWN)), 1);
    Swarmc__Service *stored = cfx_service(f, SVC);
    assert_non_null(stored->update_status);
    assert_int_equal(stored->update_status->state,
                     SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UPDATING);
    proto_free(stored);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unbootstrapped_store_decides_nothing),
        cmocka_unit_test_setup_teardown(test_new_service_gets_assigned_tasks_in_one_entry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_task_is_replaced_after_restart_delay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_removed_service_tasks_are_stopped_then_reaped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_unsatisfiable_constraint_leaves_task_pending_without_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_pass_fails_and_recomputed_pass_applies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scale_down_removes_highest_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_service_follows_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tasks_of_a_down_node_are_replaced_elsewhere, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_image_update_replaces_tasks_one_at_a_time, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
