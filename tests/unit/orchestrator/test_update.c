#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static struct fx *F;

static int setup(void **state)
{
    F = calloc(1, sizeof(*F));
    fx_init(F, obj_service("svc1", "web", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, 4));
    fx_node(F, "n1");
    fx_node(F, "n2");
    /* Four running tasks of spec version 1. */
    fx_step(F);
    fx_agents(F);
    assert_false(fx_step(F));
    return 0;
}

static int teardown(void **state)
{
    fx_free(F);
    free(F);
    return 0;
}

static bool is_new(const Swarmc__Task *t)
{
    return strcmp(t->spec->container->image, "nginx:2") == 0;
}

/* Runnable tasks on the new spec, and among them the RUNNING ones. */
static size_t count_new(bool running_only)
{
    size_t n = 0;
    for (size_t i = 0; i < F->n_tasks; i++) {
        const Swarmc__Task *t = F->tasks[i];
        n += t->desired_state <= ST(RUNNING) && is_new(t) &&
             (!running_only || t->status->state == ST(RUNNING));
    }
    return n;
}

static Swarmc__UpdateStatus__State status(void)
{
    return F->svc->update_status != NULL ? F->svc->update_status->state
                                         : SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UNKNOWN;
}

static void configure(uint64_t parallelism, int64_t delay, bool start_first)
{
    Swarmc__UpdateConfig *uc = obj_update(F->svc);
    uc->has_parallelism = 1;
    uc->parallelism = parallelism;
    uc->has_delay = 1;
    uc->delay = delay;
    uc->has_order = 1;
    uc->order = start_first ? SWARMC__UPDATE_CONFIG__ORDER__ORDER_START_FIRST
                            : SWARMC__UPDATE_CONFIG__ORDER__ORDER_STOP_FIRST;
}

/* One tick of the simulated cluster: agents act, then the orchestrator. */
static void tick(int64_t advance)
{
    F->now += advance;
    fx_agents(F);
    fx_step(F);
}

static void stop_first_in_batches_with_delay(void **state)
{
    configure(2, 10 * OBJ_SEC, false);
    fx_update_image(F, "nginx:2");
    fx_reconcile(F);
    assert_non_null(F->plan.service);
    assert_int_equal(F->plan.service->update_status->state,
                     SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UPDATING);
    assert_string_equal(F->plan.service->update_status->message, "update in progress");
    assert_true(F->plan.service->update_status->started_at == F->now);
    assert_int_equal(F->plan.n_updates, 2); /* two old tasks told to stop */
    assert_int_equal(F->plan.n_creates, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(F->plan.updates[i]->desired_state, ST(SHUTDOWN));
        assert_int_equal(F->plan.creates[i]->desired_state, ST(READY)); /* until the old stops */
        assert_int_equal(F->plan.creates[i]->slot, F->plan.updates[i]->slot);
    }
    fx_apply(F);

    tick(OBJ_SEC); /* old tasks stop; the new ones may start */
    assert_int_equal(count_new(false), 2);
    assert_int_equal(fx_with_desired(F, ST(READY)), 0);
    tick(OBJ_SEC); /* they run; the workers now sleep 10s */
    assert_int_equal(count_new(true), 2);
    assert_int_equal(count_new(false), 2);
    assert_true(F->plan.next_wakeup_ns == F->now + 10 * OBJ_SEC);

    F->now = F->plan.next_wakeup_ns;
    fx_step(F); /* the second batch */
    assert_int_equal(count_new(false), 4);
    tick(OBJ_SEC);
    tick(OBJ_SEC);
    assert_int_equal(count_new(true), 4);
    assert_int_equal(status(), SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UPDATING);

    F->now = F->plan.next_wakeup_ns; /* delay and monitor over */
    fx_step(F);
    assert_int_equal(status(), SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_COMPLETED);
    assert_string_equal(F->svc->update_status->message, "update completed");
    assert_true(F->svc->update_status->completed_at == F->now);
    assert_int_equal(fx_runnable(F), 4);
    assert_false(fx_step(F));
}

static void parallelism_zero_updates_everything(void **state)
{
    configure(0, 0, false);
    fx_update_image(F, "nginx:2");
    fx_step(F);
    assert_int_equal(count_new(false), 4);
    assert_int_equal(fx_with_desired(F, ST(SHUTDOWN)), 4);
}

static void start_first_keeps_the_old_task_until_the_new_runs(void **state)
{
    configure(1, 0, true);
    fx_update_image(F, "nginx:2");
    fx_step(F);
    assert_int_equal(count_new(false), 1);
    assert_int_equal(fx_runnable(F), 5); /* old and new side by side */
    assert_int_equal(fx_runnable_in_slot(F, 1), 2);
    tick(OBJ_SEC); /* the new one runs: the old one stops, next slot starts */
    assert_int_equal(fx_runnable_in_slot(F, 1), 1);
    assert_true(is_new(fx_slot_task(F, 1)));
    assert_int_equal(fx_runnable_in_slot(F, 2), 2);
    for (int i = 0; i < 3; i++)
        tick(OBJ_SEC);
    assert_int_equal(count_new(true), 4);
    assert_int_equal(fx_runnable(F), 4);
}

static void spec_unchanged_means_no_update(void **state)
{
    F->svc->spec->replicas = 4;
    F->svc->spec_version++;
    assert_false(fx_step(F));
    assert_null(F->svc->update_status);
}

static Swarmc__Task *fail_one_new_task(void)
{
    for (size_t i = 0; i < F->n_tasks; i++) {
        Swarmc__Task *t = F->tasks[i];
        if (is_new(t) && t->status->state == ST(RUNNING)) {
            t->status->state = ST(FAILED);
            t->status->timestamp = F->now;
            return t;
        }
    }
    fail_msg("no running new task");
    return NULL;
}

static void failure_pauses_the_update(void **state)
{
    configure(1, 0, false);
    fx_update_image(F, "nginx:2");
    fx_step(F);
    tick(OBJ_SEC);
    tick(OBJ_SEC); /* slot 1 runs nginx:2, slot 2 started */
    Swarmc__Task *bad = fail_one_new_task();
    char msg[128];
    snprintf(msg, sizeof(msg), "update paused due to failure or early termination of task %s",
             bad->id);
    size_t started = count_new(false);
    F->now += OBJ_SEC;
    fx_step(F);
    assert_int_equal(status(), SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_PAUSED);
    assert_string_equal(F->svc->update_status->message, msg);
    /* Paused: no further slot starts (the failed task is still restarted). */
    for (int i = 0; i < 5; i++)
        tick(10 * OBJ_SEC);
    assert_int_equal(count_new(false), started);
    assert_int_equal(status(), SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_PAUSED);
}

static void failure_action_continue_goes_on(void **state)
{
    configure(1, 0, false);
    obj_update(F->svc)->has_failure_action = 1;
    obj_update(F->svc)->failure_action =
        SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_CONTINUE;
    fx_update_image(F, "nginx:2");
    fx_step(F);
    tick(OBJ_SEC);
    tick(OBJ_SEC);
    fail_one_new_task();
    for (int i = 0; i < 12; i++)
        tick(10 * OBJ_SEC);
    assert_int_equal(count_new(true), 4);
    assert_int_equal(status(), SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_COMPLETED);
}

static void failure_action_rollback_restores_the_previous_spec(void **state)
{
    configure(1, 0, false);
    obj_update(F->svc)->has_failure_action = 1;
    obj_update(F->svc)->failure_action =
        SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_ROLLBACK;
    F->svc->previous_spec = proto_clone(F->svc->spec);
    fx_update_image(F, "nginx:2");
    uint64_t version = F->svc->spec_version;
    fx_step(F);
    tick(OBJ_SEC);
    tick(OBJ_SEC);
    Swarmc__Task *bad = fail_one_new_task();
    char msg[128];
    snprintf(msg, sizeof(msg), "update rolled back due to failure or early termination of task %s",
             bad->id);
    F->now += OBJ_SEC;
    fx_step(F);
    assert_int_equal(status(), SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_STARTED);
    assert_string_equal(F->svc->update_status->message, msg);
    assert_string_equal(F->svc->spec->task->container->image, "nginx:1");
    assert_null(F->svc->previous_spec);
    assert_true(F->svc->spec_version == version + 1);
    for (int i = 0; i < 12; i++)
        tick(10 * OBJ_SEC);
    assert_int_equal(count_new(false), 0);
    assert_int_equal(fx_runnable(F), 4);
    assert_int_equal(status(), SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_COMPLETED);
    assert_string_equal(F->svc->update_status->message, "rollback completed");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(stop_first_in_batches_with_delay),
        T(parallelism_zero_updates_everything),
        T(start_first_keeps_the_old_task_until_the_new_runs),
        T(spec_unchanged_means_no_update),
        T(failure_pauses_the_update),
        T(failure_action_continue_goes_on),
        T(failure_action_rollback_restores_the_previous_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
