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
#include "manager/scheduler/scheduler.h"
#include "objects.h"

#define NOW (INT64_C(1700000000) * OBJ_SEC)

/* A cluster snapshot: nodes, existing tasks, pending tasks. */
struct world {
    Swarmc__Node *nodes[16];
    size_t n_nodes;
    Swarmc__Task *tasks[64];
    size_t n_tasks;
    Swarmc__Task *pending[64];
    size_t n_pending;
    struct sched_result res;
};

static struct world *W;

static int setup(void **state)
{
    W = calloc(1, sizeof(*W));
    return W == NULL;
}

static int teardown(void **state)
{
    for (size_t i = 0; i < W->n_nodes; i++)
        proto_free(W->nodes[i]);
    for (size_t i = 0; i < W->n_tasks; i++)
        proto_free(W->tasks[i]);
    for (size_t i = 0; i < W->n_pending; i++)
        proto_free(W->pending[i]);
    sched_result_free(&W->res);
    free(W);
    return 0;
}

static Swarmc__Node *node(const char *id, int64_t cpus, int64_t mem)
{
    return W->nodes[W->n_nodes++] = obj_node(id, cpus, mem);
}

/* An existing task on a node. */
static Swarmc__Task *existing(const char *service, const char *node_id, Swarmc__TaskState state,
                              Swarmc__TaskState desired)
{
    char id[32];
    size_t i = W->n_tasks++;
    snprintf(id, sizeof(id), "old%zu", i);
    return W->tasks[i] = obj_task(id, service, 1, i + 1, node_id, state, desired);
}

static Swarmc__Task *pending(const char *service, uint64_t version)
{
    char id[32];
    size_t i = W->n_pending++;
    snprintf(id, sizeof(id), "t%02zu", i);
    return W->pending[i] = obj_task(id, service, version, i + 1, NULL, ST(PENDING), ST(RUNNING));
}

static void run(void)
{
    sched_result_free(&W->res);
    struct swm_err err = {0};
    assert_int_equal(sched_run(W->nodes, W->n_nodes, W->tasks, W->n_tasks, W->pending, W->n_pending,
                               NOW, &W->res, &err),
                     0);
    assert_int_equal(W->res.n, W->n_pending);
    for (size_t i = 0; i < W->n_pending; i++)
        assert_ptr_equal(W->res.decisions[i].task, W->pending[i]);
}

static const char *placed(size_t i)
{
    const Swarmc__Node *n = W->res.decisions[i].node;
    return n != NULL ? n->id : "-";
}

static size_t count_on(const char *node_id)
{
    size_t c = 0;
    for (size_t i = 0; i < W->res.n; i++)
        c += strcmp(placed(i), node_id) == 0;
    return c;
}

static void assert_failed(size_t i, const char *msg)
{
    assert_null(W->res.decisions[i].node);
    assert_string_equal(W->res.decisions[i].message, msg);
}

/* ------------------------------------------------------------- spreading */

static void spreads_a_service_evenly(void **state)
{
    node("c", 8 * OBJ_CPU, 8192 * OBJ_MIB);
    node("a", 8 * OBJ_CPU, 8192 * OBJ_MIB);
    node("b", 8 * OBJ_CPU, 8192 * OBJ_MIB);
    for (int i = 0; i < 7; i++)
        pending("web", 1);
    run();
    assert_int_equal(W->res.n_assigned, 7);
    assert_int_equal(count_on("a"), 3); /* ties go to the lowest id */
    assert_int_equal(count_on("b"), 2);
    assert_int_equal(count_on("c"), 2);
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(W->res.decisions[i].message, "scheduler assigned task to node");
        assert_true(W->res.decisions[i].changed);
    }
}

static void is_deterministic_whatever_the_input_order(void **state)
{
    node("n3", 8 * OBJ_CPU, 0);
    node("n1", 8 * OBJ_CPU, 0);
    node("n2", 8 * OBJ_CPU, 0);
    for (int i = 0; i < 5; i++)
        pending(i % 2 ? "api" : "web", 1);
    run();
    char first[5][8];
    for (size_t i = 0; i < 5; i++)
        snprintf(first[i], sizeof(first[i]), "%s", placed(i));
    /* Reverse nodes and pending tasks: the same task lands on the same node. */
    for (size_t i = 0; i < W->n_nodes / 2; i++) {
        Swarmc__Node *t = W->nodes[i];
        W->nodes[i] = W->nodes[W->n_nodes - 1 - i];
        W->nodes[W->n_nodes - 1 - i] = t;
    }
    for (size_t i = 0; i < W->n_pending / 2; i++) {
        Swarmc__Task *t = W->pending[i];
        W->pending[i] = W->pending[W->n_pending - 1 - i];
        W->pending[W->n_pending - 1 - i] = t;
    }
    run();
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(placed(W->n_pending - 1 - i), first[i]);
}

static void ranks_by_service_then_total_load(void **state)
{
    node("a", 8 * OBJ_CPU, 0);
    node("b", 8 * OBJ_CPU, 0);
    node("c", 8 * OBJ_CPU, 0);
    existing("other", "a", ST(RUNNING), ST(RUNNING));
    existing("other", "a", ST(RUNNING), ST(RUNNING));
    existing("web", "b", ST(RUNNING), ST(RUNNING));
    existing("other", "c", ST(RUNNING), ST(RUNNING));
    /* Not counted: stopped, shutting down, or not assigned yet. */
    existing("web", "a", ST(FAILED), ST(SHUTDOWN));
    existing("web", "c", ST(RUNNING), ST(SHUTDOWN));
    existing("web", "c", ST(PENDING), ST(RUNNING));
    pending("web", 1);
    pending("web", 1);
    run();
    /* a and c have no web task; c has fewer tasks in all. Then a (0 web)
     * beats b (1 web) although a has two tasks. */
    assert_string_equal(placed(0), "c");
    assert_string_equal(placed(1), "a");
}

static void groups_of_one_service_share_counts(void **state)
{
    node("a", 8 * OBJ_CPU, 0);
    node("b", 8 * OBJ_CPU, 0);
    pending("web", 1);
    pending("web", 2); /* another spec version: another group, same service */
    run();
    assert_int_equal(count_on("a"), 1);
    assert_int_equal(count_on("b"), 1);
}

static void avoids_nodes_with_recent_failures(void **state)
{
    node("a", 8 * OBJ_CPU, 0);
    node("b", 8 * OBJ_CPU, 0);
    existing("other", "b", ST(RUNNING), ST(RUNNING));
    for (int i = 0; i < SCHED_MAX_FAILURES; i++) {
        Swarmc__Task *t = existing("web", "a", ST(FAILED), ST(SHUTDOWN));
        obj_task_times(t, NOW - 10 * OBJ_SEC, NOW - 10 * OBJ_SEC);
    }
    pending("web", 1);
    run();
    assert_string_equal(placed(0), "b");

    /* Failures older than the window no longer count. */
    for (size_t i = 0; i < W->n_tasks; i++)
        if (W->tasks[i]->status->state == ST(FAILED))
            W->tasks[i]->status->timestamp = NOW - SCHED_FAILURE_WINDOW_NS - OBJ_SEC;
    run();
    assert_string_equal(placed(0), "a");
}

/* --------------------------------------------------------------- filters */

static void only_ready_active_nodes(void **state)
{
    obj_node_state(node("down", 8 * OBJ_CPU, 0), SWARMC__NODE_STATE__NODE_STATE_DOWN);
    obj_node_availability(node("drain", 8 * OBJ_CPU, 0),
                          SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    obj_node_availability(node("pause", 8 * OBJ_CPU, 0),
                          SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE);
    obj_node_state(node("unknown", 8 * OBJ_CPU, 0), SWARMC__NODE_STATE__NODE_STATE_UNKNOWN);
    pending("web", 1);
    run();
    assert_failed(0, "no suitable node (4 nodes not available for new tasks)");
    node("ok", 8 * OBJ_CPU, 0);
    run();
    assert_string_equal(placed(0), "ok");
}

static void checks_resources_across_the_run(void **state)
{
    node("a", 2 * OBJ_CPU, 1024 * OBJ_MIB);
    node("b", 2 * OBJ_CPU, 1024 * OBJ_MIB);
    /* b already gives 1.5 CPUs to a running task, and memory to one being
     * stopped; a stopped task gives nothing back twice. */
    obj_task_reserve(existing("db", "b", ST(RUNNING), ST(RUNNING)), 3 * OBJ_CPU / 2, 0);
    obj_task_reserve(existing("db", "b", ST(RUNNING), ST(SHUTDOWN)), 0, 512 * OBJ_MIB);
    obj_task_reserve(existing("db", "a", ST(COMPLETE), ST(SHUTDOWN)), 2 * OBJ_CPU, 0);
    for (int i = 0; i < 3; i++)
        obj_task_reserve(pending("web", 1), OBJ_CPU, 256 * OBJ_MIB);
    obj_task_reserve(pending("api", 1), OBJ_CPU / 2, 0);
    run();
    /* api goes first (services in id order) to a, the less loaded node; that
     * leaves a 1.5 CPUs and b 0.5, so one web task fits and two do not. */
    assert_string_equal(placed(3), "a");
    assert_string_equal(placed(0), "a");
    assert_failed(1, "no suitable node (insufficient resources on 2 nodes)");
    assert_failed(2, "no suitable node (insufficient resources on 2 nodes)");
}

static void memory_counts_too(void **state)
{
    node("a", 8 * OBJ_CPU, 512 * OBJ_MIB);
    obj_task_reserve(pending("web", 1), 0, 300 * OBJ_MIB);
    obj_task_reserve(pending("web", 1), 0, 300 * OBJ_MIB);
    run();
    assert_string_equal(placed(0), "a");
    assert_failed(1, "no suitable node (insufficient resources on 1 node)");
}

static void checks_constraints_and_platforms(void **state)
{
    obj_node_label(node("a", 8 * OBJ_CPU, 0), "zone", "east");
    node("b", 8 * OBJ_CPU, 0);
    obj_task_constraint(pending("web", 1), "node.labels.zone==east");
    obj_task_constraint(pending("api", 1), "node.labels.zone==west");
    obj_task_platform(pending("arm", 1), "linux", "arm64");
    obj_task_platform(pending("x86", 1), "linux", "amd64");
    run();
    assert_string_equal(placed(0), "a");
    assert_failed(1, "no suitable node (scheduling constraints not satisfied on 2 nodes)");
    assert_failed(2, "no suitable node (unsupported platform on 2 nodes)");
    assert_string_equal(placed(3), "b"); /* x86_64 reads as amd64; b has fewer tasks */
}

static void limits_replicas_per_node(void **state)
{
    node("a", 8 * OBJ_CPU, 0);
    node("b", 8 * OBJ_CPU, 0);
    existing("web", "a", ST(RUNNING), ST(RUNNING));
    for (int i = 0; i < 3; i++)
        obj_task_max_replicas(pending("web", 1), 2);
    run();
    assert_int_equal(count_on("b"), 2);
    assert_int_equal(count_on("a"), 1);
    assert_int_equal(W->res.n_assigned, 3);
    obj_task_max_replicas(pending("web", 1), 2);
    run();
    assert_failed(3, "no suitable node (max replicas per node limit exceed)");
}

static void explains_several_filters(void **state)
{
    obj_node_state(node("down", 8 * OBJ_CPU, 0), SWARMC__NODE_STATE__NODE_STATE_DOWN);
    node("a", 8 * OBJ_CPU, 0);
    obj_task_max_replicas(pending("web", 1), 1);
    obj_task_max_replicas(pending("web", 1), 1);
    run();
    assert_string_equal(placed(0), "a");
    /* Equal counts keep SwarmKit's pipeline order. */
    assert_failed(1, "no suitable node (1 node not available for new tasks; max replicas per "
                     "node limit exceed)");
}

static void explains_most_frequent_first(void **state)
{
    node("small1", OBJ_CPU, 0);
    node("small2", OBJ_CPU, 0);
    obj_node_label(node("big", 8 * OBJ_CPU, 0), "zone", "west");
    Swarmc__Task *t = pending("web", 1);
    obj_task_reserve(t, 2 * OBJ_CPU, 0);
    obj_task_constraint(t, "node.labels.zone==east");
    run();
    assert_failed(0, "no suitable node (insufficient resources on 2 nodes; scheduling "
                     "constraints not satisfied on 1 node)");
}

static void without_nodes(void **state)
{
    pending("web", 1);
    run();
    assert_failed(0, "no suitable node");
}

static void reports_unchanged_messages(void **state)
{
    obj_node_state(node("down", 8 * OBJ_CPU, 0), SWARMC__NODE_STATE__NODE_STATE_DOWN);
    obj_task_err(pending("web", 1), "no suitable node (1 node not available for new tasks)");
    pending("web", 1);
    run();
    assert_false(W->res.decisions[0].changed);
    assert_true(W->res.decisions[1].changed);
    assert_ptr_equal(W->res.decisions[0].message, W->res.decisions[1].message);
}

/* ----------------------------------------------------------- preassigned */

static void confirms_preassigned_tasks_first(void **state)
{
    node("a", 2 * OBJ_CPU, 0);
    node("b", 2 * OBJ_CPU, 0);
    Swarmc__Task *rep = pending("aaa-replicated", 1);
    obj_task_reserve(rep, 2 * OBJ_CPU, 0);
    Swarmc__Task *g1 = pending("zzz-global", 1);
    obj_set_str(&g1->node_id, "a");
    obj_task_reserve(g1, OBJ_CPU, 0);
    Swarmc__Task *g2 = pending("zzz-global", 1);
    obj_set_str(&g2->node_id, "b");
    obj_task_reserve(g2, 3 * OBJ_CPU, 0);
    Swarmc__Task *g3 = pending("zzz-global", 1);
    obj_set_str(&g3->node_id, "gone");
    run();
    /* Global tasks are confirmed before any other group is placed, so the
     * replicated task no longer fits on a. */
    assert_string_equal(placed(1), "a");
    assert_string_equal(W->res.decisions[1].message,
                        "scheduler confirmed task can run on preassigned node");
    assert_failed(2, "insufficient resources on 1 node");
    assert_string_equal(placed(0), "b");
    assert_failed(3, "");
    assert_false(W->res.decisions[3].changed);
}

static void survives_allocation_failures(void **state)
{
    node("a", 2 * OBJ_CPU, 0);
    obj_task_reserve(existing("db", "a", ST(RUNNING), ST(RUNNING)), OBJ_CPU, 0);
    for (int i = 0; i < 3; i++)
        obj_task_reserve(pending(i ? "web" : "api", 1), OBJ_CPU, 0);
    Swarmc__Task *g = pending("global", 1);
    obj_set_str(&g->node_id, "a");
    obj_task_constraint(W->pending[1], "node.role==worker");
    for (long n = 0;; n++) {
        struct sched_result res;
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        int rc = sched_run(W->nodes, W->n_nodes, W->tasks, W->n_tasks, W->pending, W->n_pending,
                           NOW, &res, &err);
        swm_alloc_fail_reset();
        if (rc == 0) {
            sched_result_free(&res);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(err.code, -ENOMEM);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(spreads_a_service_evenly),
        T(is_deterministic_whatever_the_input_order),
        T(ranks_by_service_then_total_load),
        T(groups_of_one_service_share_counts),
        T(avoids_nodes_with_recent_failures),
        T(only_ready_active_nodes),
        T(checks_resources_across_the_run),
        T(memory_counts_too),
        T(checks_constraints_and_platforms),
        T(limits_replicas_per_node),
        T(explains_several_filters),
        T(explains_most_frequent_first),
        T(without_nodes),
        T(reports_unchanged_messages),
        T(confirms_preassigned_tasks_first),
        T(survives_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
