/* manager/dispatcher/dispatcher.c: sessions, frames, heartbeats and
 * closing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../manager/clock.h"
#include "agent.h"
#include "common/alloc.h"
#include "common/timeutil.h"

/* The heartbeat timer ticks every PERIOD_MS of real time; deadlines are
 * counted on the test clock (clock.h). */
#define PERIOD_MS 20
#define PERIOD_NS (PERIOD_MS * SWM_NS_PER_MS)

struct tfx {
    struct dfx d;
    struct agent a;
};

static int setup_period(void **state, int64_t period_ns)
{
    struct tfx *f = calloc(1, sizeof(*f));
    dfx_setup(&f->d, period_ns);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_period(state, 5 * SWM_NS_PER_SEC);
}

static int setup_short(void **state)
{
    return setup_period(state, PERIOD_NS);
}

static int teardown(void **state)
{
    struct tfx *f = *state;
    agent_close(&f->a);
    dfx_teardown(&f->d);
    free(f);
    return 0;
}

struct node_wait {
    struct cfx *c;
    Swarmc__NodeState state;
};

static bool node_in_state(void *arg)
{
    struct node_wait *w = arg;
    Swarmc__Node *n = cfx_node(w->c, CFX_NODE);
    bool ok = n->status->state == w->state;
    proto_free(n);
    return ok;
}

static void wait_node(struct tfx *f, Swarmc__NodeState state)
{
    struct node_wait w = {&f->d.c, state};
    cfx_run_until(&f->d.c, node_in_state, &w, "a node state");
}

static void set_node_state(struct tfx *f, Swarmc__NodeState state)
{
    Swarmc__Node *n = cfx_node(&f->d.c, CFX_NODE);
    n->status->state = state;
    assert_int_equal(cfx_write1(&f->d.c, UPDATE, n), 0);
}

static bool task_running(void *arg)
{
    Swarmc__Task *t = cfx_task(arg, "t1");
    bool ok = t->status->state == ST(RUNNING);
    proto_free(t);
    return ok;
}

static void report_running(struct tfx *f)
{
    const char *id = "t1";
    Swarmc__TaskState st = ST(RUNNING);
    agent_report(&f->a, 1, &id, &st, "started");
}

/* Lets the heartbeat timer run a few times (it ticks in real time), then
 * waits until any node write it proposed has committed. */
static void let_heartbeat_check_run(struct tfx *f)
{
    cfx_run_for(&f->d.c, 3 * PERIOD_MS);
    cfx_barrier(&f->d.c);
}

static Swarmc__NodeState node_state(struct tfx *f)
{
    Swarmc__Node *n = cfx_node(&f->d.c, CFX_NODE);
    Swarmc__NodeState state = n->status->state;
    proto_free(n);
    return state;
}

static void expect_heartbeat_failure(struct tfx *f)
{
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_DOWN);
    Swarmc__Node *n = cfx_node(&f->d.c, CFX_NODE);
    assert_string_equal(n->status->message, "heartbeat failure");
    proto_free(n);
}

static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x80};

static void test_malformed_frames_are_dropped_and_the_session_works_on(void **state)
{
    struct tfx *f = *state;
    dfx_add_task(&f->d, "t1", CFX_NODE, ST(ASSIGNED), ST(RUNNING));
    set_node_state(f, SWARMC__NODE_STATE__NODE_STATE_DOWN);
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_send_raw(&f->a, garbage, sizeof(garbage));
    assert_int_equal(f->a.n_frames, 0);
    agent_register(&f->a, CFX_NODE, "agent-host");
    assert_int_equal(f->a.n_frames, 3);
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_READY);

    agent_send_raw(&f->a, garbage, sizeof(garbage));
    agent_send_raw(&f->a, garbage, 1); /* truncated */
    assert_int_equal(f->a.n_frames, 3);
    report_running(f);
    cfx_run_until(&f->d.c, task_running, &f->d.c, "the report after bad frames");
    /* An empty frame decodes as a message without content: ignored. */
    agent_send_raw(&f->a, garbage, 0);
    assert_int_equal(f->a.n_frames, 3);
}

static void test_node_down_after_three_missed_heartbeats(void **state)
{
    struct tfx *f = *state;
    set_node_state(f, SWARMC__NODE_STATE__NODE_STATE_UNKNOWN);
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host");
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_READY);

    /* Three periods of silence are still within the grace... */
    test_clock_mono_ns += 3 * PERIOD_NS;
    let_heartbeat_check_run(f);
    assert_int_equal(node_state(f), SWARMC__NODE_STATE__NODE_STATE_READY);
    /* ...and a heartbeat starts it again. */
    agent_heartbeat(&f->a);
    test_clock_mono_ns += 3 * PERIOD_NS;
    let_heartbeat_check_run(f);
    assert_int_equal(node_state(f), SWARMC__NODE_STATE__NODE_STATE_READY);

    /* Any longer and the node is DOWN. */
    test_clock_mono_ns += 1;
    expect_heartbeat_failure(f);

    /* A late heartbeat from the agent, still connected, brings it back. */
    agent_heartbeat(&f->a);
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_READY);
    test_clock_mono_ns += 3 * PERIOD_NS + 1;
    expect_heartbeat_failure(f);

    /* Registering again brings it back. */
    agent_register(&f->a, CFX_NODE, "agent-host");
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_READY);
}

static void test_closed_session_node_goes_down_after_grace(void **state)
{
    struct tfx *f = *state;
    set_node_state(f, SWARMC__NODE_STATE__NODE_STATE_UNKNOWN);
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host");
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_READY);
    agent_close(&f->a);
    /* The grace counts from the agent's last frame, as for a silent one. */
    test_clock_mono_ns += 3 * PERIOD_NS;
    let_heartbeat_check_run(f);
    assert_int_equal(node_state(f), SWARMC__NODE_STATE__NODE_STATE_READY);
    test_clock_mono_ns += 1;
    expect_heartbeat_failure(f);
}

static void test_closed_session_node_that_reconnects_stays_up(void **state)
{
    struct tfx *f = *state;
    set_node_state(f, SWARMC__NODE_STATE__NODE_STATE_UNKNOWN);
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host");
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_READY);
    agent_close(&f->a);
    test_clock_mono_ns += PERIOD_NS;
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host");
    /* Past the first session's grace, within the new one's. */
    test_clock_mono_ns += 3 * PERIOD_NS;
    let_heartbeat_check_run(f);
    assert_int_equal(node_state(f), SWARMC__NODE_STATE__NODE_STATE_READY);
}

static void test_close_with_status_batch_in_flight(void **state)
{
    struct tfx *f = *state;
    dfx_add_task(&f->d, "t1", CFX_NODE, ST(ASSIGNED), ST(RUNNING));
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host");
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_READY);
    report_running(f); /* proposed at once */
    agent_close(&f->a);
    store_unwatch(f->d.c.s, dispatcher_on_store_events, f->d.d);
    dispatcher_close(f->d.d);
    f->d.d = NULL;
    cfx_run_until(&f->d.c, task_running, &f->d.c, "the batch in flight");
}

/* The daemon's order: the log closes first, then the dispatcher, while a
 * batch is still being written. */
static void test_close_after_log_with_status_batch_in_flight(void **state)
{
    struct tfx *f = *state;
    dfx_add_task(&f->d, "t1", CFX_NODE, ST(ASSIGNED), ST(RUNNING));
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host");
    wait_node(f, SWARMC__NODE_STATE__NODE_STATE_READY);
    report_running(f);
    agent_close(&f->a);
    cfx_close_log(&f->d.c);
    store_unwatch(f->d.c.s, dispatcher_on_store_events, f->d.d);
    dispatcher_close(f->d.d);
    f->d.d = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_malformed_frames_are_dropped_and_the_session_works_on,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_down_after_three_missed_heartbeats, setup_short,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_closed_session_node_goes_down_after_grace, setup_short,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_closed_session_node_that_reconnects_stays_up,
                                        setup_short, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_status_batch_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_after_log_with_status_batch_in_flight, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
