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
    fx_init(F, obj_service("svc1", "job", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, 1));
    fx_node(F, "n1");
    return 0;
}

static int teardown(void **state)
{
    fx_free(F);
    free(F);
    return 0;
}

static Swarmc__RestartPolicy *policy(void)
{
    return obj_restart(obj_service_task(F->svc));
}

static void set_condition(Swarmc__RestartPolicy__Condition c)
{
    policy()->has_condition = 1;
    policy()->condition = c;
}

/* Starts the service's one task and lets it run. */
static void start(void)
{
    fx_step(F);
    fx_agents(F);
    fx_step(F);
}

/* The running task of slot 1 stops with state (and exit code) at f->now. */
static Swarmc__Task *stop_task(Swarmc__TaskState state, int exit_code)
{
    Swarmc__Task *t = fx_slot_task(F, 1);
    assert_int_equal(t->status->state, ST(RUNNING));
    t->status->state = state;
    t->status->timestamp = F->now;
    obj_task_exit(t, exit_code);
    return t;
}

/* Drives a restart to completion: waits out the delay and runs the task. */
static void finish_restart(void)
{
    if (F->plan.next_wakeup_ns != 0)
        F->now = F->plan.next_wakeup_ns;
    fx_step(F);
    assert_int_equal(fx_slot_task(F, 1)->desired_state, ST(RUNNING));
    fx_agents(F);
}

static void any_restarts_after_the_delay(void **state)
{
    start();
    Swarmc__Task *old = stop_task(ST(FAILED), 1);
    char old_id[32];
    snprintf(old_id, sizeof(old_id), "%s", old->id);
    F->now += 2 * OBJ_SEC; /* the orchestrator notices a bit later */
    fx_reconcile(F);
    assert_int_equal(F->plan.n_updates, 1);
    assert_string_equal(F->plan.updates[0]->id, old_id);
    assert_int_equal(F->plan.updates[0]->desired_state, ST(SHUTDOWN));
    assert_int_equal(F->plan.n_creates, 1);
    assert_int_equal(F->plan.creates[0]->slot, 1);
    assert_int_equal(F->plan.creates[0]->desired_state, ST(READY));
    /* 5s (the default delay) after the failure, not after noticing it. */
    assert_true(F->plan.next_wakeup_ns == F->now - 2 * OBJ_SEC + ORCH_DEFAULT_RESTART_DELAY_NS);
    fx_apply(F);

    F->now += OBJ_SEC; /* still in the delay: nothing to do */
    fx_reconcile(F);
    assert_true(orch_plan_empty(&F->plan));
    assert_true(F->plan.next_wakeup_ns == F->now - 3 * OBJ_SEC + ORCH_DEFAULT_RESTART_DELAY_NS);

    F->now = F->plan.next_wakeup_ns;
    fx_reconcile(F);
    assert_int_equal(F->plan.n_updates, 1);
    assert_int_equal(F->plan.updates[0]->desired_state, ST(RUNNING));
    assert_int_equal(F->plan.next_wakeup_ns, 0);
    fx_apply(F);
    /* A clean exit restarts too with condition any. */
    fx_agents(F);
    stop_task(ST(COMPLETE), 0);
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 1);
}

static void custom_delay_and_zero_delay(void **state)
{
    policy()->has_delay = 1;
    policy()->delay = 0;
    start();
    stop_task(ST(FAILED), 2);
    fx_reconcile(F);
    assert_int_equal(F->plan.n_creates, 1);
    assert_int_equal(F->plan.creates[0]->desired_state, ST(RUNNING)); /* no wait at all */
    assert_int_equal(F->plan.next_wakeup_ns, 0);
}

static void none_never_restarts_and_stays_down(void **state)
{
    set_condition(SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_NONE);
    start();
    stop_task(ST(COMPLETE), 0);
    fx_step(F);
    assert_int_equal(F->plan.n_updates, 1);
    assert_int_equal(F->plan.n_creates, 0);
    assert_int_equal(fx_runnable(F), 0);
    /* 0/1 for good: later passes do not fill the slot again. */
    F->now += 60 * OBJ_SEC;
    assert_false(fx_step(F));
    /* A scale-up adds only the new slot. */
    F->svc->spec->replicas = 2;
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 1);
    assert_int_equal(fx_runnable_in_slot(F, 2), 1);
    assert_int_equal(fx_runnable_in_slot(F, 1), 0);
}

static void on_failure_skips_clean_exits(void **state)
{
    set_condition(SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_ON_FAILURE);
    start();
    stop_task(ST(FAILED), 137);
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 1);
    finish_restart();
    stop_task(ST(REJECTED), 0);
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 1);
    finish_restart();
    stop_task(ST(COMPLETE), 0);
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 0);
    assert_false(fx_step(F));
    assert_int_equal(fx_runnable(F), 0);
}

static void max_attempts_without_window(void **state)
{
    policy()->has_max_attempts = 1;
    policy()->max_attempts = 2;
    start();
    for (int attempt = 0; attempt < 2; attempt++) {
        F->now += 10 * OBJ_SEC;
        stop_task(ST(FAILED), 1);
        fx_step(F);
        assert_int_equal(F->plan.n_creates, 1);
        finish_restart();
    }
    F->now += 10 * OBJ_SEC;
    stop_task(ST(FAILED), 1);
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 0); /* two restarts used up */
    F->now += 3600 * OBJ_SEC;
    assert_false(fx_step(F));
    /* A new spec starts counting again. */
    fx_update_image(F, "nginx:2");
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 1);
}

static void max_attempts_within_window(void **state)
{
    policy()->has_max_attempts = 1;
    policy()->max_attempts = 1;
    policy()->has_window = 1;
    policy()->window = 30 * OBJ_SEC;
    start();
    /* Failures a minute apart: the previous restart is outside the window. */
    for (int attempt = 0; attempt < 3; attempt++) {
        F->now += 60 * OBJ_SEC;
        stop_task(ST(FAILED), 1);
        fx_step(F);
        assert_int_equal(F->plan.n_creates, 1);
        finish_restart();
    }
    /* Two failures 10s apart: one restart in the window already. */
    F->now += 10 * OBJ_SEC;
    stop_task(ST(FAILED), 1);
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 0);
}

static void restart_history_survives_the_reaper(void **state)
{
    policy()->has_max_attempts = 1;
    policy()->max_attempts = 3;
    start();
    for (int attempt = 0; attempt < 3; attempt++) {
        F->now += 10 * OBJ_SEC;
        stop_task(ST(FAILED), 1);
        fx_step(F);
        fx_reap(F, 1); /* keeps what restart counting needs */
        F->now += ORCH_DEFAULT_RESTART_DELAY_NS;
        finish_restart();
    }
    F->now += 10 * OBJ_SEC;
    stop_task(ST(FAILED), 1);
    fx_step(F);
    assert_int_equal(F->plan.n_creates, 0);
    fx_reap(F, 0);
    assert_false(fx_step(F));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(any_restarts_after_the_delay),        T(custom_delay_and_zero_delay),
        T(none_never_restarts_and_stays_down),  T(on_failure_skips_clean_exits),
        T(max_attempts_without_window),         T(max_attempts_within_window),
        T(restart_history_survives_the_reaper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
