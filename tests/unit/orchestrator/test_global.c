#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static struct fx *F;

static int setup(void **state)
{
    F = calloc(1, sizeof(*F));
    fx_init(F, obj_service("svc1", "mon", SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL, 0));
    return 0;
}

static int teardown(void **state)
{
    fx_free(F);
    free(F);
    return 0;
}

/* Runnable tasks of the service on node id. */
static size_t on_node(const char *id)
{
    size_t n = 0;
    for (size_t i = 0; i < F->n_tasks; i++)
        n += F->tasks[i]->node_id != NULL && strcmp(F->tasks[i]->node_id, id) == 0 &&
             F->tasks[i]->desired_state <= ST(RUNNING);
    return n;
}

static Swarmc__Task *task_on(const char *node, Swarmc__TaskState state, Swarmc__TaskState desired)
{
    Swarmc__Task *t = fx_task(F, 0, node, state, desired);
    t->has_slot = 0;
    return t;
}

static void one_task_per_eligible_node(void **state)
{
    obj_spec_constraint(obj_service_task(F->svc), "node.labels.zone==a");
    const char *zone_a[] = {"n1", "drained", "down", "paused", "unknown"};
    for (size_t i = 0; i < 5; i++)
        obj_node_label(fx_node(F, zone_a[i]), "zone", "a");
    obj_node_label(fx_node(F, "zone-b"), "zone", "b");
    obj_node_availability(F->nodes[1], SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    obj_node_state(F->nodes[2], SWARMC__NODE_STATE__NODE_STATE_DOWN);
    obj_node_availability(F->nodes[3], SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE);
    obj_node_state(F->nodes[4], SWARMC__NODE_STATE__NODE_STATE_UNKNOWN);

    fx_reconcile(F);
    assert_int_equal(F->plan.n_creates, 2);
    assert_string_equal(F->plan.creates[0]->node_id, "n1");
    assert_string_equal(F->plan.creates[1]->node_id, "unknown");
    for (size_t i = 0; i < 2; i++) {
        const Swarmc__Task *t = F->plan.creates[i];
        assert_false(t->has_slot);
        assert_int_equal(t->slot, 0);
        assert_int_equal(t->desired_state, ST(RUNNING));
    }
    assert_string_equal(F->plan.creates[0]->annotations->name, "mon.n1");
    fx_apply(F);
    assert_false(fx_step(F));
}

static void stops_tasks_where_they_no_longer_belong(void **state)
{
    obj_spec_constraint(obj_service_task(F->svc), "node.role==worker");
    fx_node(F, "n1");
    obj_node_availability(fx_node(F, "drained"),
                          SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    obj_node_availability(fx_node(F, "paused"), SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE);
    obj_node_role(fx_node(F, "manager"), SWARMC__NODE_ROLE__NODE_ROLE_MANAGER);
    task_on("gone", ST(FAILED), ST(SHUTDOWN)); /* history, older */
    F->now += OBJ_SEC;
    task_on("n1", ST(RUNNING), ST(RUNNING));
    task_on("drained", ST(RUNNING), ST(RUNNING));
    task_on("paused", ST(RUNNING), ST(RUNNING));
    task_on("manager", ST(RUNNING), ST(RUNNING));
    task_on("gone", ST(RUNNING), ST(RUNNING));
    fx_step(F);
    assert_int_equal(on_node("n1"), 1);
    assert_int_equal(on_node("paused"), 1); /* PAUSE keeps its task */
    assert_int_equal(on_node("drained"), 0);
    assert_int_equal(on_node("manager"), 0);
    assert_int_equal(fx_with_desired(F, ST(SHUTDOWN)), 3);
    assert_int_equal(fx_with_desired(F, ST(REMOVE)), 1); /* the gone node's running task */
    assert_int_equal(F->plan.n_creates, 0);
    assert_false(fx_step(F));
}

static void restarts_on_the_same_node(void **state)
{
    fx_node(F, "n1");
    fx_node(F, "n2");
    Swarmc__Task *t = task_on("n2", ST(FAILED), ST(RUNNING));
    task_on("n1", ST(RUNNING), ST(RUNNING));
    fx_reconcile(F);
    assert_int_equal(F->plan.n_creates, 1);
    assert_string_equal(F->plan.creates[0]->node_id, "n2");
    assert_int_equal(F->plan.creates[0]->desired_state, ST(READY));
    assert_true(F->plan.next_wakeup_ns == t->status->timestamp + ORCH_DEFAULT_RESTART_DELAY_NS);
    fx_apply(F);
    F->now += ORCH_DEFAULT_RESTART_DELAY_NS;
    fx_step(F);
    assert_int_equal(on_node("n2"), 1);
    assert_int_equal(fx_with_desired(F, ST(READY)), 0);
}

static void completed_task_with_condition_none_stays(void **state)
{
    Swarmc__RestartPolicy *rp = obj_restart(obj_service_task(F->svc));
    rp->has_condition = 1;
    rp->condition = SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_NONE;
    fx_node(F, "n1");
    fx_step(F);
    fx_agents(F);
    F->tasks[0]->status->state = ST(COMPLETE);
    fx_step(F);
    assert_int_equal(on_node("n1"), 0);
    assert_false(fx_step(F));
}

static void updates_node_by_node(void **state)
{
    fx_node(F, "n1");
    fx_node(F, "n2");
    fx_step(F);
    fx_agents(F);
    fx_update_image(F, "nginx:2");
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 1); /* parallelism 1 */
    for (int i = 0; i < 6; i++) {
        F->now += OBJ_SEC;
        fx_agents(F);
        fx_step(F);
    }
    assert_int_equal(on_node("n1"), 1);
    assert_int_equal(on_node("n2"), 1);
    for (size_t i = 0; i < F->n_tasks; i++)
        if (F->tasks[i]->desired_state <= ST(RUNNING))
            assert_string_equal(F->tasks[i]->spec->container->image, "nginx:2");
}

static void keeps_one_task_per_node(void **state)
{
    fx_node(F, "n1");
    task_on("n1", ST(RUNNING), ST(RUNNING));
    F->now += OBJ_SEC;
    Swarmc__Task *newer = task_on("n1", ST(RUNNING), ST(RUNNING));
    fx_step(F);
    assert_int_equal(on_node("n1"), 1);
    assert_int_equal(newer->desired_state, ST(RUNNING));
}

static void refuses_bad_constraints(void **state)
{
    obj_spec_constraint(obj_service_task(F->svc), "zone=a");
    fx_node(F, "n1");
    struct swm_err err = {0};
    assert_int_equal(orch_global_reconcile(F->svc, F->tasks, F->n_tasks, F->nodes, F->n_nodes,
                                           F->now, &F->plan, &err),
                     SWM_EINVAL_SPEC);
    assert_true(orch_plan_empty(&F->plan));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(one_task_per_eligible_node), T(stops_tasks_where_they_no_longer_belong),
        T(restarts_on_the_same_node),  T(completed_task_with_condition_none_stays),
        T(updates_node_by_node),       T(keeps_one_task_per_node),
        T(refuses_bad_constraints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
