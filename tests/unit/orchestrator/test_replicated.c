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
#include "common/id.h"
#include "fixture.h"

static struct fx *F;

static int setup(void **state)
{
    F = calloc(1, sizeof(*F));
    fx_init(F, obj_service("svc1", "web", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, 3));
    fx_node(F, "n1");
    fx_node(F, "n2");
    fx_node(F, "n3");
    return 0;
}

static int teardown(void **state)
{
    fx_free(F);
    free(F);
    return 0;
}

static void set_replicas(uint64_t n)
{
    F->svc->spec->replicas = n;
    F->svc->spec_version++; /* a spec change, but not of the task spec */
}

static void creates_one_task_per_slot(void **state)
{
    F->svc->spec_version = 4;
    fx_reconcile(F);
    struct orch_plan *p = &F->plan;
    assert_int_equal(p->n_creates, 3);
    assert_int_equal(p->n_updates + p->n_deletes, 0);
    assert_null(p->service);
    assert_int_equal(p->next_wakeup_ns, 0);
    for (size_t i = 0; i < 3; i++) {
        const Swarmc__Task *t = p->creates[i];
        char name[16];
        snprintf(name, sizeof(name), "web.%zu", i + 1);
        assert_true(swm_id_valid(t->id));
        assert_int_equal(t->slot, i + 1);
        assert_string_equal(t->annotations->name, name);
        assert_string_equal(t->service_id, "svc1");
        assert_string_equal(t->service_annotations->name, "web");
        assert_int_equal(t->spec_version, 4);
        assert_string_equal(t->spec->container->image, "nginx:1");
        assert_int_equal(t->desired_state, ST(RUNNING));
        assert_int_equal(t->status->state, ST(NEW));
        assert_string_equal(t->status->message, "created");
        assert_true(t->status->timestamp == T0 && t->meta->created_at == T0);
        assert_null(t->node_id);
    }
    fx_apply(F);
    assert_false(fx_step(F)); /* converged: nothing more to do */
}

static void scale_up_then_down_prefers_non_running(void **state)
{
    fx_step(F);
    fx_agents(F); /* 3 running, one per node */
    set_replicas(7);
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 4);
    assert_int_equal(fx_runnable(F), 7);

    /* Back to 3: the four that never ran go, the running ones stay. */
    set_replicas(3);
    fx_step(F);
    assert_int_equal(F->plan.n_updates, 4);
    assert_int_equal(fx_with_desired(F, ST(REMOVE)), 4);
    for (uint64_t slot = 1; slot <= 3; slot++)
        assert_int_equal(fx_slot_task(F, slot)->status->state, ST(RUNNING));

    /* 7 again, then 1: one running task is left, in the lowest slot. */
    set_replicas(7);
    fx_step(F);
    set_replicas(1);
    fx_step(F);
    assert_int_equal(fx_runnable(F), 1);
    assert_int_equal(fx_slot_task(F, 1)->status->state, ST(RUNNING));
    assert_false(fx_step(F));
}

static void scale_down_balances_nodes(void **state)
{
    set_replicas(4);
    fx_task(F, 1, "n1", ST(RUNNING), ST(RUNNING));
    fx_task(F, 2, "n1", ST(RUNNING), ST(RUNNING));
    fx_task(F, 3, "n2", ST(RUNNING), ST(RUNNING));
    fx_task(F, 4, "n3", ST(RUNNING), ST(RUNNING));
    set_replicas(3);
    fx_reconcile(F);
    /* n1 runs two copies: its second one (slot 2) goes. */
    assert_int_equal(F->plan.n_updates, 1);
    assert_int_equal(F->plan.updates[0]->slot, 2);
    assert_int_equal(F->plan.updates[0]->desired_state, ST(REMOVE));
}

static void reuses_vacant_slot_numbers(void **state)
{
    Swarmc__Task *t = fx_task(F, 2, "n1", ST(SHUTDOWN), ST(REMOVE));
    (void)t;
    fx_task(F, 5, "n2", ST(RUNNING), ST(RUNNING));
    fx_step(F);
    /* Slot 5 is kept (no renumbering); 1 and 2 are filled. */
    assert_int_equal(F->plan.n_creates, 2);
    assert_int_equal(fx_runnable_in_slot(F, 1), 1);
    assert_int_equal(fx_runnable_in_slot(F, 2), 1);
    assert_int_equal(fx_runnable_in_slot(F, 5), 1);
}

static void replaces_tasks_of_down_and_removed_nodes(void **state)
{
    fx_task(F, 1, "n1", ST(RUNNING), ST(RUNNING));
    fx_task(F, 2, "gone", ST(RUNNING), ST(RUNNING));
    fx_task(F, 3, "n3", ST(RUNNING), ST(RUNNING));
    obj_node_state(F->nodes[2], SWARMC__NODE_STATE__NODE_STATE_DOWN);
    fx_reconcile(F);
    assert_int_equal(F->plan.n_updates, 2);
    assert_int_equal(F->plan.n_creates, 2);
    for (size_t i = 0; i < F->plan.n_creates; i++) {
        /* Nothing to wait for on a dead node: they start right away. */
        assert_int_equal(F->plan.creates[i]->desired_state, ST(RUNNING));
        assert_null(F->plan.creates[i]->node_id);
    }
    fx_apply(F);
    assert_int_equal(fx_with_desired(F, ST(SHUTDOWN)), 2);
    assert_int_equal(fx_runnable(F), 3);
}

static void drain_waits_for_the_old_task(void **state)
{
    fx_task(F, 1, "n1", ST(RUNNING), ST(RUNNING));
    fx_task(F, 2, "n2", ST(RUNNING), ST(RUNNING));
    fx_task(F, 3, "n3", ST(RUNNING), ST(RUNNING));
    obj_node_availability(F->nodes[0], SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    fx_reconcile(F);
    assert_int_equal(F->plan.n_creates, 1);
    const Swarmc__Task *repl = F->plan.creates[0];
    assert_int_equal(repl->slot, 1);
    assert_int_equal(repl->desired_state, ST(READY));
    assert_true(F->plan.next_wakeup_ns == T0 + ORCH_OLD_TASK_TIMEOUT_NS);
    fx_apply(F);
    assert_int_equal(fx_slot_task(F, 1)->desired_state, ST(READY));

    /* Nothing changes while the old task runs... */
    F->now += OBJ_SEC;
    assert_false(fx_step(F));
    /* ...and once it stopped, the replacement starts, without restart delay. */
    fx_agents(F);
    fx_step(F);
    assert_int_equal(F->plan.n_updates, 1);
    assert_int_equal(fx_slot_task(F, 1)->desired_state, ST(RUNNING));
}

static void survives_allocation_failures(void **state)
{
    fx_task(F, 1, "n1", ST(FAILED), ST(RUNNING));
    fx_task(F, 4, "n1", ST(RUNNING), ST(RUNNING));
    fx_task(F, 5, "n2", ST(RUNNING), ST(RUNNING));
    fx_update_image(F, "nginx:2");
    for (long n = 0;; n++) {
        struct orch_plan plan;
        struct swm_err err = {0};
        orch_plan_init(&plan);
        swm_alloc_fail_after(n);
        int rc =
            orch_reconcile(F->svc, F->tasks, F->n_tasks, F->nodes, F->n_nodes, F->now, &plan, &err);
        swm_alloc_fail_reset();
        if (rc == 0) {
            assert_false(orch_plan_empty(&plan));
            orch_plan_free(&plan);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_true(orch_plan_empty(&plan)); /* a failed pass leaves the plan alone */
        orch_plan_free(&plan);
    }
}

static void service_removal_removes_every_task(void **state)
{
    fx_task(F, 1, "n1", ST(RUNNING), ST(RUNNING));
    fx_task(F, 1, "n1", ST(FAILED), ST(SHUTDOWN));
    fx_task(F, 2, "n2", ST(SHUTDOWN), ST(REMOVE));
    struct swm_err err = {0};
    orch_plan_free(&F->plan);
    assert_int_equal(orch_service_removed(F->tasks, F->n_tasks, F->now, &F->plan, &err), 0);
    assert_int_equal(F->plan.n_updates, 2);
    fx_apply(F);
    assert_int_equal(fx_with_desired(F, ST(REMOVE)), 3);
}

static void outdated_means_a_different_task_spec(void **state)
{
    Swarmc__Task *t = fx_task(F, 1, "n1", ST(RUNNING), ST(RUNNING));
    set_replicas(5); /* version bump without a task spec change */
    assert_false(orch_task_outdated(F->svc, t));
    fx_update_image(F, "nginx:2");
    assert_true(orch_task_outdated(F->svc, t));
    t->spec_version = F->svc->spec_version;
    assert_false(orch_task_outdated(F->svc, t)); /* same version: trusted */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(creates_one_task_per_slot),
        T(scale_up_then_down_prefers_non_running),
        T(scale_down_balances_nodes),
        T(reuses_vacant_slot_numbers),
        T(replaces_tasks_of_down_and_removed_nodes),
        T(drain_waits_for_the_old_task),
        T(survives_allocation_failures),
        T(service_removal_removes_every_task),
        T(outdated_means_a_different_task_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
