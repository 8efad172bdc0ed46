/* manager/dispatcher/status.c: agents' task status reports become store
 * updates, written in batches, only forward, only for the reporting node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "common/alloc.h"
#include "common/timeutil.h"

struct tfx {
    struct dfx d;
    struct agent a;
};

static int setup(void **state)
{
    struct tfx *f = calloc(1, sizeof(*f));
    dfx_setup(&f->d, 5 * SWM_NS_PER_SEC);
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

static bool node_ready(void *arg)
{
    Swarmc__Node *n = cfx_node(arg, CFX_NODE);
    bool ok = n->status->state == SWARMC__NODE_STATE__NODE_STATE_READY &&
              strcmp(n->description->hostname, "agent-host") == 0;
    proto_free(n);
    return ok;
}

/* Tasks t1, t2 ASSIGNED to CFX_NODE and t3 to CFX_NODE2; the agent of
 * CFX_NODE registered, its node state written. */
static void start(struct tfx *f)
{
    dfx_add_task(&f->d, "t1", CFX_NODE, ST(ASSIGNED), ST(RUNNING));
    dfx_add_task(&f->d, "t2", CFX_NODE, ST(ASSIGNED), ST(RUNNING));
    dfx_add_task(&f->d, "t3", CFX_NODE2, ST(ASSIGNED), ST(RUNNING));
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host");
    cfx_run_until(&f->d.c, node_ready, &f->d.c, "the node to be READY");
}

static Swarmc__Task *stored(struct tfx *f, const char *id)
{
    Swarmc__Task *t = cfx_task(&f->d.c, id);
    assert_non_null(t);
    return t;
}

struct state_wait {
    struct tfx *f;
    const char *id;
    Swarmc__TaskState state;
};

static bool task_in_state(void *arg)
{
    struct state_wait *w = arg;
    Swarmc__Task *t = stored(w->f, w->id);
    bool ok = t->status->state == w->state;
    proto_free(t);
    return ok;
}

static void wait_state(struct tfx *f, const char *id, Swarmc__TaskState state)
{
    struct state_wait w = {f, id, state};
    cfx_run_until(&f->d.c, task_in_state, &w, "a task state to be written");
}

static void report1(struct tfx *f, const char *id, Swarmc__TaskState state, const char *message)
{
    agent_report(&f->a, 1, &id, &state, message);
}

static void test_reports_of_one_frame_are_one_entry(void **state)
{
    struct tfx *f = *state;
    start(f);
    uint64_t index = store_applied_index(f->d.c.s);
    const char *ids[] = {"t1", "t2"};
    Swarmc__TaskState states[] = {ST(ACCEPTED), ST(PREPARING)};
    agent_report(&f->a, 2, ids, states, "working");
    wait_state(f, "t2", ST(PREPARING));
    Swarmc__Task *t1 = stored(f, "t1"), *t2 = stored(f, "t2");
    assert_int_equal(t1->status->state, ST(ACCEPTED));
    assert_string_equal(t1->status->message, "working");
    assert_int_equal(t1->status->timestamp, CFX_T0);
    /* One entry: both tasks carry its index as their version. */
    assert_int_equal(store_applied_index(f->d.c.s), index + 1);
    assert_int_equal(t1->meta->version, index + 1);
    assert_int_equal(t2->meta->version, index + 1);
    /* The rest of the task is left as it was. */
    assert_int_equal(t1->desired_state, ST(RUNNING));
    assert_string_equal(t1->node_id, CFX_NODE);
    proto_free(t1);
    proto_free(t2);
}

static void test_reports_only_move_forward(void **state)
{
    struct tfx *f = *state;
    start(f);
    report1(f, "t1", ST(RUNNING), "started");
    wait_state(f, "t1", ST(RUNNING));
    uint64_t index = store_applied_index(f->d.c.s);

    /* An older state (a late or replayed report) changes nothing. */
    report1(f, "t1", ST(STARTING), "starting");
    report1(f, "t1", ST(RUNNING), "started again");
    cfx_barrier(&f->d.c);
    assert_int_equal(store_applied_index(f->d.c.s), index + 1);
    Swarmc__Task *t1 = stored(f, "t1");
    assert_int_equal(t1->status->state, ST(RUNNING));
    assert_string_equal(t1->status->message, "started");
    proto_free(t1);

    /* A newer one is written. */
    report1(f, "t1", ST(FAILED), "exited");
    wait_state(f, "t1", ST(FAILED));
}

static void test_reports_for_other_nodes_or_unknown_tasks_are_ignored(void **state)
{
    struct tfx *f = *state;
    start(f);
    uint64_t index = store_applied_index(f->d.c.s);
    const char *ids[] = {"t3", "nope", "t1"};
    Swarmc__TaskState states[] = {ST(RUNNING), ST(RUNNING), ST(RUNNING)};
    agent_report(&f->a, 3, ids, states, "started");
    wait_state(f, "t1", ST(RUNNING));
    cfx_barrier(&f->d.c);
    assert_int_equal(store_applied_index(f->d.c.s), index + 2);
    Swarmc__Task *t3 = stored(f, "t3");
    assert_int_equal(t3->status->state, ST(ASSIGNED));
    proto_free(t3);
    assert_null(cfx_task(&f->d.c, "nope"));
}

static void test_reports_of_one_task_in_one_frame_collapse(void **state)
{
    struct tfx *f = *state;
    start(f);
    uint64_t index = store_applied_index(f->d.c.s);
    const char *ids[] = {"t1", "t1", "t2", "t1"};
    Swarmc__TaskState states[] = {ST(ACCEPTED), ST(RUNNING), ST(ACCEPTED), ST(STARTING)};
    agent_report(&f->a, 4, ids, states, "m");
    wait_state(f, "t2", ST(ACCEPTED));
    /* The most advanced report wins, whatever the order. */
    Swarmc__Task *t1 = stored(f, "t1");
    assert_int_equal(t1->status->state, ST(RUNNING));
    assert_int_equal(t1->status->timestamp, CFX_T0 + 1);
    assert_int_equal(store_applied_index(f->d.c.s), index + 1);
    proto_free(t1);
}

/* Regression: reports arriving while a batch is written queue up, and a
 * task reported twice must not be updated twice in the next entry (the
 * second update would carry a stale version, failing the whole entry with
 * SWM_ESTALE, and the retry would fail the same way forever). */
static void test_reports_queued_during_a_write_collapse(void **state)
{
    struct tfx *f = *state;
    start(f);
    uint64_t index = store_applied_index(f->d.c.s);
    report1(f, "t1", ST(ACCEPTED), "accepted"); /* written at once */
    report1(f, "t1", ST(PREPARING), "preparing");
    report1(f, "t2", ST(ACCEPTED), "accepted");
    report1(f, "t1", ST(STARTING), "starting");
    report1(f, "t1", ST(STARTING), "starting, later");
    wait_state(f, "t1", ST(STARTING));
    wait_state(f, "t2", ST(ACCEPTED));
    cfx_barrier(&f->d.c);
    /* Two batches (and the barrier): nothing failed, nothing retried. */
    assert_int_equal(store_applied_index(f->d.c.s), index + 3);
    Swarmc__Task *t1 = stored(f, "t1");
    assert_string_equal(t1->status->message, "starting, later");
    proto_free(t1);
}

/* A batch that loses a race with another writer (the orchestrator) is read
 * again and written on top of the other change. */
struct outcome {
    int done, status, code;
};

static void on_commit(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct outcome *o = arg;
    o->done = 1;
    o->status = status;
    o->code = err->code;
}

static bool committed(void *arg)
{
    return ((struct outcome *)arg)->done;
}

static void test_stale_batch_is_retried_on_fresh_state(void **state)
{
    struct tfx *f = *state;
    start(f);
    uint64_t index = store_applied_index(f->d.c.s);
    /* Another writer's update of t1 is proposed first, so it commits
     * first; the report below is built from the version both read. */
    Swarmc__Task *t1 = stored(f, "t1");
    t1->desired_state = ST(SHUTDOWN);
    struct outcome o = {0};
    assert_int_equal(store_log_propose(f->d.c.log, fixture_entry1(UPDATE, t1), on_commit, &o), 0);
    report1(f, "t1", ST(ACCEPTED), "accepted");
    cfx_run_until(&f->d.c, committed, &o, "the other writer's update");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.code, 0);
    wait_state(f, "t1", ST(ACCEPTED));

    /* Both changes hold: the report did not undo the other update. */
    t1 = stored(f, "t1");
    assert_int_equal(t1->desired_state, ST(SHUTDOWN));
    assert_int_equal(t1->status->state, ST(ACCEPTED));
    /* The other update, the stale batch (a failed entry still takes an
     * index), and its retry. */
    assert_int_equal(t1->meta->version, index + 3);
    proto_free(t1);
}

/* A node state write that loses a race with another writer of the node
 * (here an availability change committed first) is redone on the fresh node. */
static void test_stale_node_state_is_retried_on_fresh_state(void **state)
{
    struct tfx *f = *state;
    Swarmc__Node *n = cfx_node(&f->d.c, CFX_NODE);
    n->spec->has_availability = 1;
    n->spec->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE;
    struct outcome o = {0};
    assert_int_equal(store_log_propose(f->d.c.log, fixture_entry1(UPDATE, n), on_commit, &o), 0);
    agent_open(&f->d, &f->a, CFX_NODE);
    agent_register(&f->a, CFX_NODE, "agent-host"); /* read the node before the label landed */
    cfx_run_until(&f->d.c, committed, &o, "the availability change");
    assert_int_equal(o.code, 0);
    cfx_run_until(&f->d.c, node_ready, &f->d.c, "the node to be READY");
    n = cfx_node(&f->d.c, CFX_NODE);
    /* The retry kept the other writer's change. */
    assert_int_equal(n->spec->availability, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE);
    proto_free(n);
}

#define AVAIL(x) SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_##x

/* Stores CFX_NODE2 as manager_admit_node creates a joining node: a worker,
 * ACTIVE, state UNKNOWN, no description until its agent registers. */
static void add_joined_node(struct tfx *f)
{
    Swarmc__Node *n = obj_node(CFX_NODE2, 0, 0);
    proto_free(n->description);
    n->description = NULL;
    obj_node_role(n, SWARMC__NODE_ROLE__NODE_ROLE_WORKER);
    obj_node_availability(n, AVAIL(ACTIVE));
    n->status->state = SWARMC__NODE_STATE__NODE_STATE_UNKNOWN;
    assert_int_equal(cfx_write1(&f->d.c, CREATE, n), 0);
    n = cfx_node(&f->d.c, CFX_NODE2);
    assert_null(n->description);
    proto_free(n);
}

struct node_write_wait {
    struct cfx *c;
    const char *id;
    uint64_t after_version; /* the node's version must exceed it */
};

static bool node_ready_after(void *arg)
{
    struct node_write_wait *w = arg;
    Swarmc__Node *n = cfx_node(w->c, w->id);
    bool ok = n != NULL && n->status->state == SWARMC__NODE_STATE__NODE_STATE_READY &&
              n->meta->version > w->after_version;
    proto_free(n);
    return ok;
}

static uint64_t node_version(struct tfx *f, const char *id)
{
    Swarmc__Node *n = cfx_node(&f->d.c, id);
    assert_non_null(n);
    uint64_t v = n->meta->version;
    proto_free(n);
    return v;
}

/* Registers id's agent with `availability` and waits until the dispatcher
 * wrote the node READY. */
static void register_and_wait(struct tfx *f, const char *id, const char *hostname,
                              Swarmc__NodeAvailability availability)
{
    struct node_write_wait w = {&f->d.c, id, node_version(f, id)};
    agent_open(&f->d, &f->a, id);
    agent_register_with_availability(&f->a, id, hostname, availability);
    cfx_run_until(&f->d.c, node_ready_after, &w, "the node to be written READY");
}

static Swarmc__NodeAvailability node_availability(struct tfx *f, const char *id)
{
    Swarmc__Node *n = cfx_node(&f->d.c, id);
    assert_non_null(n);
    assert_true(n->spec->has_availability);
    Swarmc__NodeAvailability a = n->spec->availability;
    proto_free(n);
    return a;
}

/* `swarmc join --availability drain`: the first registration of a node
 * that has no description yet sets its availability. */
static void test_first_registration_applies_the_join_availability(void **state)
{
    struct tfx *f = *state;
    add_joined_node(f);
    register_and_wait(f, CFX_NODE2, "worker-host", AVAIL(DRAIN));
    Swarmc__Node *n = cfx_node(&f->d.c, CFX_NODE2);
    assert_int_equal(n->spec->availability, AVAIL(DRAIN));
    assert_int_equal(n->status->state, SWARMC__NODE_STATE__NODE_STATE_READY);
    assert_non_null(n->description);
    assert_string_equal(n->description->hostname, "worker-host");
    assert_int_equal(n->role, SWARMC__NODE_ROLE__NODE_ROLE_WORKER);
    proto_free(n);
}

/* A registration without an availability leaves the stored one. */
static void test_first_registration_without_availability_keeps_active(void **state)
{
    struct tfx *f = *state;
    add_joined_node(f);
    struct node_write_wait w = {&f->d.c, CFX_NODE2, node_version(f, CFX_NODE2)};
    agent_open(&f->d, &f->a, CFX_NODE2);
    agent_register(&f->a, CFX_NODE2, "worker-host");
    cfx_run_until(&f->d.c, node_ready_after, &w, "the node to be written READY");
    assert_int_equal(node_availability(f, CFX_NODE2), AVAIL(ACTIVE));
}

/* A node that registered before (it has a description) keeps the
 * availability the manager set, whatever its agent sends. */
static void test_registration_of_a_described_node_keeps_its_availability(void **state)
{
    struct tfx *f = *state;
    Swarmc__Node *n = cfx_node(&f->d.c, CFX_NODE);
    assert_non_null(n->description); /* the fixture's node registered long ago */
    obj_node_availability(n, AVAIL(PAUSE));
    assert_int_equal(cfx_write1(&f->d.c, UPDATE, n), 0);
    register_and_wait(f, CFX_NODE, "agent-host", AVAIL(DRAIN));
    assert_int_equal(node_availability(f, CFX_NODE), AVAIL(PAUSE));
}

/* The agent sends its join availability on every registration (it is in
 * node.conf): after the first, `node update --availability` wins. */
static void test_join_availability_is_applied_only_once(void **state)
{
    struct tfx *f = *state;
    add_joined_node(f);
    register_and_wait(f, CFX_NODE2, "worker-host", AVAIL(DRAIN));
    assert_int_equal(node_availability(f, CFX_NODE2), AVAIL(DRAIN));
    Swarmc__Node *n = cfx_node(&f->d.c, CFX_NODE2);
    obj_node_availability(n, AVAIL(ACTIVE));
    assert_int_equal(cfx_write1(&f->d.c, UPDATE, n), 0);
    agent_close(&f->a);
    register_and_wait(f, CFX_NODE2, "worker-host", AVAIL(DRAIN));
    assert_int_equal(node_availability(f, CFX_NODE2), AVAIL(ACTIVE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reports_of_one_frame_are_one_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_only_move_forward, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_for_other_nodes_or_unknown_tasks_are_ignored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_of_one_task_in_one_frame_collapse, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reports_queued_during_a_write_collapse, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_node_state_is_retried_on_fresh_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_batch_is_retried_on_fresh_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_first_registration_applies_the_join_availability,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_registration_without_availability_keeps_active,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_registration_of_a_described_node_keeps_its_availability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_availability_is_applied_only_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
