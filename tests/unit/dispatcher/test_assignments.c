/* manager/dispatcher/assignments.c: registration, the complete assignment
 * set, and the incremental changes store commits bring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "common/alloc.h"
#include "common/id.h"
#include "common/timeutil.h"

#define COMPLETE SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_COMPLETE
#define INCREMENTAL SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_INCREMENTAL
#define HEARTBEAT (5 * SWM_NS_PER_SEC)

struct tfx {
    struct dfx d;
    struct agent a;
};

static int setup(void **state)
{
    struct tfx *f = calloc(1, sizeof(*f));
    dfx_setup(&f->d, HEARTBEAT);
    *state = f;
    return 0;
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
    const char *id;
    Swarmc__NodeState state;
    const char *hostname;
};

static bool node_in_state(void *arg)
{
    struct node_wait *w = arg;
    Swarmc__Node *n = cfx_node(w->c, w->id);
    bool ok = n != NULL && n->status != NULL && n->status->state == w->state &&
              (w->hostname == NULL || (n->description != NULL && n->description->hostname != NULL &&
                                       strcmp(n->description->hostname, w->hostname) == 0));
    proto_free(n);
    return ok;
}

static void set_node_state(struct cfx *c, const char *id, Swarmc__NodeState state)
{
    Swarmc__Node *n = cfx_node(c, id);
    assert_non_null(n);
    n->status->state = state;
    assert_int_equal(cfx_write1(c, UPDATE, n), 0);
}

/* Registers the agent as CFX_NODE and waits for the node to be READY. */
static void register_agent(struct tfx *f)
{
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host");
    struct node_wait w = {&f->d.c, CFX_NODE, SWARMC__NODE_STATE__NODE_STATE_READY, "agent-host"};
    cfx_run_until(&f->d.c, node_in_state, &w, "the node to be READY");
}

static void test_register_sends_session_period_and_complete_set(void **state)
{
    struct tfx *f = *state;
    set_node_state(&f->d.c, CFX_NODE, SWARMC__NODE_STATE__NODE_STATE_DOWN);
    dfx_add_task(&f->d, "t1", CFX_NODE, ST(ASSIGNED), ST(RUNNING));
    dfx_add_task(&f->d, "t2", CFX_NODE, ST(RUNNING), ST(RUNNING));
    dfx_add_task(&f->d, "t3", NULL, ST(PENDING), ST(RUNNING));
    dfx_add_task(&f->d, "t4", CFX_NODE2, ST(ASSIGNED), ST(RUNNING));
    /* Preassigned (a global service's) but not yet scheduled. */
    dfx_add_task(&f->d, "t5", CFX_NODE, ST(PENDING), ST(RUNNING));
    dfx_add_task(&f->d, "t6", CFX_NODE, ST(COMPLETE), ST(SHUTDOWN));

    agent_open(&f->d, &f->a, CFX_NODE);
    assert_int_equal(f->a.n_frames, 0);
    agent_register(&f->a, CFX_NODE, "agent-host");
    assert_int_equal(f->a.n_frames, 3);
    const Swarmc__DispatcherMessage *m = agent_frame(&f->a, 0);
    assert_int_equal(m->msg_case, SWARMC__DISPATCHER_MESSAGE__MSG_SESSION_ID);
    assert_true(swm_id_valid(m->session_id));
    m = agent_frame(&f->a, 1);
    assert_int_equal(m->msg_case, SWARMC__DISPATCHER_MESSAGE__MSG_HEARTBEAT_PERIOD);
    /* The period with up to 10% of jitter taken off. */
    assert_true(m->heartbeat_period <= HEARTBEAT && m->heartbeat_period > HEARTBEAT * 9 / 10);
    /* Only this node's tasks, and only those the scheduler has assigned. */
    agent_expect_assignments(&f->a, 2, COMPLETE, "UPDATE:t1,UPDATE:t2,UPDATE:t6");
    const Swarmc__Task *t1 = agent_frame(&f->a, 2)->assignments->changes[0]->task;
    assert_string_equal(t1->node_id, CFX_NODE);
    assert_int_equal(t1->desired_state, ST(RUNNING));
    assert_string_equal(t1->spec->container->image, "nginx:1");

    /* The node is READY again, with the description the agent sent. */
    struct node_wait w = {&f->d.c, CFX_NODE, SWARMC__NODE_STATE__NODE_STATE_READY, "agent-host"};
    cfx_run_until(&f->d.c, node_in_state, &w, "the node to be READY");
    assert_int_equal(f->a.n_frames, 3);
}

/* A session is bound to the node of its certificate: registering as
 * anything else (another node, garbage) is ignored. */
static void test_register_as_another_node_is_ignored(void **state)
{
    struct tfx *f = *state;
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, "not-an-id", "agent-host");
    agent_register(&f->a, "", "agent-host");
    agent_register(&f->a, CFX_NODE2, "agent-host");
    assert_int_equal(f->a.n_frames, 0);
    /* Reports from an unregistered session are not written. */
    uint64_t index = store_applied_index(f->d.c.s);
    dfx_add_task(&f->d, "t1", CFX_NODE, ST(ASSIGNED), ST(RUNNING));
    const char *ids[] = {"t1"};
    Swarmc__TaskState states[] = {ST(RUNNING)};
    agent_report(&f->a, 1, ids, states, "started");
    cfx_barrier(&f->d.c);
    assert_int_equal(store_applied_index(f->d.c.s), index + 2);
    assert_int_equal(cfx_count(&f->d.c, ST(ASSIGNED), -1), 1);
}

static Swarmc__Task *stored(struct tfx *f, const char *id)
{
    Swarmc__Task *t = cfx_task(&f->d.c, id);
    assert_non_null(t);
    return t;
}

static void test_incremental_updates_follow_assignment_and_desired_state(void **state)
{
    struct tfx *f = *state;
    register_agent(f);
    agent_expect_assignments(&f->a, 2, COMPLETE, "");
    size_t n = f->a.n_frames;

    /* Not yet scheduled: nothing for the agent. */
    dfx_add_task(&f->d, "t1", NULL, ST(PENDING), ST(RUNNING));
    assert_int_equal(f->a.n_frames, n);

    /* Assigned to this node: an UPDATE. */
    Swarmc__Task *t = stored(f, "t1");
    obj_set_str(&t->node_id, CFX_NODE);
    t->status->state = ST(ASSIGNED);
    assert_int_equal(cfx_write1(&f->d.c, UPDATE, t), 0);
    assert_int_equal(f->a.n_frames, n + 1);
    agent_expect_assignments(&f->a, n, INCREMENTAL, "UPDATE:t1");
    assert_int_equal(agent_frame(&f->a, n)->assignments->changes[0]->task->desired_state,
                     ST(RUNNING));

    /* Its status changes (the agent's own reports coming back): nothing. */
    assert_int_equal(cfx_set_state(&f->d.c, "t1", ST(ACCEPTED), 0), 0);
    assert_int_equal(cfx_set_state(&f->d.c, "t1", ST(RUNNING), 0), 0);
    assert_int_equal(f->a.n_frames, n + 1);

    /* Its desired state changes: an UPDATE carrying it. */
    assert_int_equal(cfx_set_desired(&f->d.c, "t1", ST(SHUTDOWN)), 0);
    assert_int_equal(f->a.n_frames, n + 2);
    agent_expect_assignments(&f->a, n + 1, INCREMENTAL, "UPDATE:t1");
    assert_int_equal(agent_frame(&f->a, n + 1)->assignments->changes[0]->task->desired_state,
                     ST(SHUTDOWN));

    /* Deleted: a REMOVE. */
    assert_int_equal(cfx_write1(&f->d.c, REMOVE, stored(f, "t1")), 0);
    assert_int_equal(f->a.n_frames, n + 3);
    agent_expect_assignments(&f->a, n + 2, INCREMENTAL, "REMOVE:t1");
}

static void test_changes_of_one_commit_share_a_message(void **state)
{
    struct tfx *f = *state;
    register_agent(f);
    size_t n = f->a.n_frames;
    Swarmc__StoreEntry *e = fixture_entry();
    fixture_add(e, CREATE, obj_task("t7", "svc", 1, 1, CFX_NODE, ST(ASSIGNED), ST(RUNNING)));
    fixture_add(e, CREATE, obj_task("t8", "svc", 1, 2, CFX_NODE, ST(ASSIGNED), ST(RUNNING)));
    fixture_add(e, CREATE, obj_task("t9", "svc", 1, 3, CFX_NODE2, ST(ASSIGNED), ST(RUNNING)));
    assert_int_equal(cfx_write(&f->d.c, e), 0);
    assert_int_equal(f->a.n_frames, n + 1);
    agent_expect_assignments(&f->a, n, INCREMENTAL, "UPDATE:t7,UPDATE:t8");
}

static void test_tasks_never_sent_are_not_removed(void **state)
{
    struct tfx *f = *state;
    dfx_add_task(&f->d, "t1", CFX_NODE, ST(PENDING), ST(RUNNING));
    dfx_add_task(&f->d, "t2", CFX_NODE2, ST(ASSIGNED), ST(RUNNING));
    register_agent(f);
    size_t n = f->a.n_frames;
    assert_int_equal(cfx_write1(&f->d.c, REMOVE, stored(f, "t1")), 0);
    assert_int_equal(cfx_write1(&f->d.c, REMOVE, stored(f, "t2")), 0);
    assert_int_equal(f->a.n_frames, n);
}

static void test_each_agent_hears_of_its_own_node_only(void **state)
{
    struct tfx *f = *state;
    Swarmc__Node *n2 = obj_node(CFX_NODE2, 2 * OBJ_CPU, 1024 * OBJ_MIB);
    assert_int_equal(cfx_write1(&f->d.c, CREATE, n2), 0);
    register_agent(f);
    struct agent b;
    agent_open(&f->d, &b, CFX_NODE2);
    agent_register(&b, CFX_NODE2, "node-2");
    struct node_wait w = {&f->d.c, CFX_NODE2, SWARMC__NODE_STATE__NODE_STATE_READY, "node-2"};
    cfx_run_until(&f->d.c, node_in_state, &w, "node 2 to be READY");
    size_t na = f->a.n_frames, nb = b.n_frames;
    assert_int_equal(nb, 3);

    dfx_add_task(&f->d, "t1", CFX_NODE2, ST(ASSIGNED), ST(RUNNING));
    assert_int_equal(f->a.n_frames, na);
    assert_int_equal(b.n_frames, nb + 1);
    agent_expect_assignments(&b, nb, INCREMENTAL, "UPDATE:t1");

    /* Once b's session is closed, its node's changes go nowhere. */
    agent_close(&b);
    assert_int_equal(cfx_set_desired(&f->d.c, "t1", ST(SHUTDOWN)), 0);
    assert_int_equal(f->a.n_frames, na);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_sends_session_period_and_complete_set, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_register_as_another_node_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_incremental_updates_follow_assignment_and_desired_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_of_one_commit_share_a_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tasks_never_sent_are_not_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_agent_hears_of_its_own_node_only, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
