/* The orchestrator's decision logic (DESIGN.md §4 step 3), as pure functions
 * over in-memory objects: the manager's glue reads a service, its tasks and
 * the nodes from the store, calls one of these, and proposes the resulting
 * plan as one store transaction. No store, no event loop; time is passed in,
 * and every decision is derived from the stored objects alone, so a new
 * leader reaches the same decisions as the old one.
 *
 * Semantics are SwarmKit's (manager/orchestrator): replicated services keep
 * one task per slot 1..replicas, global services one per eligible node; the
 * restart supervisor replaces failed tasks per the restart policy; the update
 * supervisor walks slots to a new spec per update_config; the task reaper
 * bounds the task history.
 *
 * Common rules:
 * - `tasks` are all the tasks of the service, history included (any order).
 *   They and the other inputs are only read.
 * - A task is runnable while its desired state is <= RUNNING (READY included).
 * - Unset fields mean Swarm's defaults: restart condition any, delay 5s,
 *   max_attempts 0 (unlimited), window 0 (unbounded); update parallelism 1,
 *   delay 0, monitor 5s, failure_action pause, max_failure_ratio 0, order
 *   stop-first; task history 5.
 * - Functions append to a plan and return 0, or return -ENOMEM with err set
 *   and leave the plan as it was.
 */
#ifndef SWM_MANAGER_ORCHESTRATOR_H
#define SWM_MANAGER_ORCHESTRATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/codec.h"

/* What the glue writes. Every object and string in it is owned by the plan
 * until orch_plan_free; the glue may steal one by setting its slot to NULL.
 * Updated objects are full copies carrying the meta.version they were read
 * with, so a concurrent change makes the store transaction fail with
 * SWM_ESTALE instead of being overwritten (the glue then re-reads and calls
 * again). A plan holds at most one service: use one plan per service (a
 * later call's service replaces an earlier one's). */
struct orch_plan {
    Swarmc__Task **creates; /* new tasks: id, slot/node, spec, desired state set */
    size_t n_creates;
    Swarmc__Task **updates; /* changed tasks (desired state) */
    size_t n_updates;
    char **deletes; /* ids of tasks to delete */
    size_t n_deletes;
    Swarmc__Service *service; /* the service with a new update_status (or rolled
                                 back spec), or NULL when it is unchanged */
    /* Earliest time (unix ns) at which calling again with the same inputs
     * would decide more (a restart delay or an update delay ends, an old task
     * times out, an update's monitor period ends); 0 = no such time. The
     * glue sets a timer for it, besides reacting to store events. */
    int64_t next_wakeup_ns;
    size_t cap_creates, cap_updates, cap_deletes; /* private */
};

/* Initialises an empty plan. */
void orch_plan_init(struct orch_plan *plan);

/* Frees everything the plan still owns and empties it. Accepts NULL. */
void orch_plan_free(struct orch_plan *plan);

/* True if the plan has nothing to write. */
bool orch_plan_empty(const struct orch_plan *plan);

/* Reconciles a replicated service.
 *
 * - Restart supervisor: a runnable task whose observed state is terminal
 *   (COMPLETE, FAILED, REJECTED, SHUTDOWN, ORPHANED), or whose node is DOWN,
 *   gone or draining, gets desired SHUTDOWN; if its restart policy allows
 *   (condition none: never; on-failure: not after a clean exit; any: always;
 *   at most max_attempts restarts per slot and spec version, counted from the
 *   slot's tasks created in the window before the failure) a replacement is
 *   created in the same slot with desired READY. It turns RUNNING once the
 *   restart delay has passed since the failure (no delay after a drain) and
 *   the task it replaces has stopped (or 1 minute after it was created);
 *   until then next_wakeup_ns says when to call again.
 * - A slot is occupied by its runnable tasks, or by a last task that must
 *   not be restarted (a completed task with condition none stays, 0/1, as in
 *   Docker). Missing slots get new tasks (desired RUNNING); surplus slots get
 *   desired REMOVE, dropping first slots without a single assigned task, then
 *   the Nth copy on the most loaded nodes, then tasks that are not running,
 *   then the highest slot numbers (SwarmKit's slotsByIndex).
 * - Rolling update of tasks whose spec differs from the service's (see
 *   orch_task_outdated), per update_config (or rollback_config while
 *   update_status is ROLLBACK_STARTED).
 *
 * nodes: every node of the cluster. now_ns: the current wall-clock time.
 */
int orch_replicated_reconcile(const Swarmc__Service *service, Swarmc__Task *const *tasks,
                              size_t n_tasks, Swarmc__Node *const *nodes, size_t n_nodes,
                              int64_t now_ns, struct orch_plan *plan, struct swm_err *err);

/* Reconciles a global service: one task per eligible node (status not DOWN,
 * availability not DRAIN, constraints and platforms satisfied), created with
 * node_id set (the scheduler still checks resources) and never on a PAUSE
 * node. Tasks on nodes that became ineligible get desired SHUTDOWN, on nodes
 * that no longer exist desired REMOVE. Restarts and updates as above, per
 * node instead of per slot. Returns SWM_EINVAL_SPEC if the service's
 * constraints do not parse. */
int orch_global_reconcile(const Swarmc__Service *service, Swarmc__Task *const *tasks,
                          size_t n_tasks, Swarmc__Node *const *nodes, size_t n_nodes,
                          int64_t now_ns, struct orch_plan *plan, struct swm_err *err);

/* Calls the reconcile function matching the service's mode. */
int orch_reconcile(const Swarmc__Service *service, Swarmc__Task *const *tasks, size_t n_tasks,
                   Swarmc__Node *const *nodes, size_t n_nodes, int64_t now_ns,
                   struct orch_plan *plan, struct swm_err *err);

/* The service was deleted: every task of it gets desired REMOVE (the agents
 * stop them, then orch_reap deletes them). */
int orch_service_removed(Swarmc__Task *const *tasks, size_t n_tasks, int64_t now_ns,
                         struct orch_plan *plan, struct swm_err *err);

/* The task reaper, for one service's tasks (service NULL: the service is
 * gone, or the tasks have none).
 * - Tasks with desired REMOVE, and every task of a missing service, are
 *   deleted once stopped (observed state >= COMPLETE) or never assigned
 *   (observed < ASSIGNED); so is the leftover history of a slot whose last
 *   task is being removed.
 * - Each slot (replicated) or node (global) keeps at most history_limit
 *   tasks, runnable ones included: the oldest stopped or never-assigned tasks
 *   whose desired state is past RUNNING are deleted first. The slot's newest
 *   task is always kept, and so are the max_attempts + 1 newest tasks of its
 *   spec version when the restart policy limits attempts, because restart
 *   decisions are counted from them. history_limit < 0 disables this part.
 * Run it in its own transaction, after the reconcile's one committed (as
 * SwarmKit's reaper runs on its own), not merged into a reconcile plan. */
int orch_reap(const Swarmc__Service *service, Swarmc__Task *const *tasks, size_t n_tasks,
              int64_t history_limit, struct orch_plan *plan, struct swm_err *err);

/* The cluster's task_history_retention_limit, or Swarm's default (5) when
 * the cluster or the field is unset. */
int64_t orch_task_history_limit(const Swarmc__Cluster *cluster);

/* True if task runs an outdated spec: its spec_version differs from the
 * service's and its TaskSpec encodes differently (a service update that only
 * changes replicas or update_config must not restart tasks). */
bool orch_task_outdated(const Swarmc__Service *service, const Swarmc__Task *task);

/* Defaults, exposed for tests and the glue. */
#define ORCH_DEFAULT_RESTART_DELAY_NS (INT64_C(5) * 1000000000)
#define ORCH_DEFAULT_MONITOR_NS (INT64_C(5) * 1000000000)
#define ORCH_DEFAULT_HISTORY_LIMIT 5
#define ORCH_OLD_TASK_TIMEOUT_NS (INT64_C(60) * 1000000000)

#endif
