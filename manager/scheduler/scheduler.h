/* The scheduler's decision logic (DESIGN.md §4 step 3), as pure functions
 * over in-memory objects: no store, no event loop, no clock (time is passed
 * in). The manager's glue lists nodes and tasks, calls sched_run(), and
 * proposes the decisions as one store transaction.
 *
 * Semantics are SwarmKit's manager/scheduler: a filter pipeline (ready,
 * resources, constraints, platform, max replicas per node) and a ranking that
 * spreads a service's tasks (fewest tasks of the service, then fewest tasks
 * overall), with failure messages worded exactly like SwarmKit's
 * Pipeline.Explain().
 *
 * Nothing here keeps a pointer to its inputs after returning, except where a
 * result field says it borrows one.
 */
#ifndef SWM_MANAGER_SCHEDULER_H
#define SWM_MANAGER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/codec.h"

/* ------------------------------------------------------------------------
 * Placement constraints: "node.labels.zone==a", "node.role!=manager".
 *
 * Keys: node.id, node.hostname, node.role, node.ip (address or CIDR),
 * node.platform.os, node.platform.arch, node.labels.<label> and
 * engine.labels.<label> (swarmc nodes report no engine labels, so these match
 * as if the label were empty). Operators: == and !=. As in SwarmKit, keys and
 * values compare case-insensitively, except the <label> part, which is case
 * sensitive; a missing label or field matches as the empty string.
 */

enum sched_constraint_key {
    SCHED_KEY_NODE_ID,
    SCHED_KEY_NODE_HOSTNAME,
    SCHED_KEY_NODE_ROLE,
    SCHED_KEY_NODE_IP,
    SCHED_KEY_NODE_PLATFORM_OS,
    SCHED_KEY_NODE_PLATFORM_ARCH,
    SCHED_KEY_NODE_LABEL,
    SCHED_KEY_ENGINE_LABEL,
};

struct sched_constraint {
    enum sched_constraint_key key;
    bool negate; /* true for "!=" */
    char *label; /* owned; the <label> of node.labels.<label>/engine.labels.<label>, else NULL */
    char *value; /* owned; trimmed right-hand side */
};

/* A parsed list, e.g. a Placement's constraints. */
struct sched_constraints {
    struct sched_constraint *items; /* owned */
    size_t n;
};

/* Parses one expression into *out (which the caller frees with
 * sched_constraint_free). Returns 0, or SWM_EINVAL_SPEC with err set to a
 * one-line message starting "invalid constraint expression", e.g.
 * `invalid constraint expression "zone=a": constraint expected one operator
 * from ==, !=`. -ENOMEM on allocation failure. *out is set only on success. */
int sched_constraint_parse(const char *expr, struct sched_constraint *out, struct swm_err *err);

/* Frees what a parsed constraint owns (not c itself). Accepts NULL. */
void sched_constraint_free(struct sched_constraint *c);

/* Parses n expressions. Returns 0 and fills *out (free it with
 * sched_constraints_free), or the first expression's error; *out is set only
 * on success. n == 0 yields an empty list. */
int sched_constraints_parse(char *const *exprs, size_t n, struct sched_constraints *out,
                            struct swm_err *err);

/* Frees the list's contents and empties it. Accepts NULL and empty lists. */
void sched_constraints_free(struct sched_constraints *cs);

/* True if node satisfies c / every constraint of cs (an empty list matches
 * every node). Never fails; node is only read. */
bool sched_constraint_match(const struct sched_constraint *c, const Swarmc__Node *node);
bool sched_constraints_match(const struct sched_constraints *cs, const Swarmc__Node *node);

/* True if the node runs one of the platforms (an empty list matches every
 * node; "x86_64" and "aarch64" are read as "amd64" and "arm64", and an empty
 * os or architecture in a wanted platform matches any). */
bool sched_platform_match(Swarmc__Platform *const *platforms, size_t n, const Swarmc__Node *node);

/* ------------------------------------------------------------------------
 * Scheduling.
 */

/* The decision for one pending task. */
struct sched_decision {
    const Swarmc__Task *task; /* borrowed: the pending task it is about */
    /* The chosen node, borrowed from the caller's nodes array; NULL when the
     * task cannot be placed now. On success the glue sets node_id, status
     * state ASSIGNED and status message = message. */
    const Swarmc__Node *node;
    /* Valid until sched_result_free (it points into the result's pool or at
     * a static string). On success SwarmKit's status message ("scheduler
     * assigned task to node", or "scheduler confirmed task can run on
     * preassigned node"); on failure the explanation the glue stores in
     * status.err, e.g. "no suitable node (insufficient resources on 2
     * nodes)"; "" with changed false for a preassigned task whose node no
     * longer exists. */
    const char *message;
    /* True if the glue must write the task: always on success; on failure
     * only when message differs from the task's current status.err, so that
     * an unschedulable task does not cause a write on every pass. */
    bool changed;
};

struct sched_result {
    struct sched_decision *decisions; /* owned; decisions[i] is about pending[i] */
    size_t n;                         /* == n_pending */
    size_t n_assigned;                /* decisions with node != NULL */
    char **messages;                  /* owned pool the decisions' messages point into */
    size_t n_messages;
};

/* Places pending tasks on nodes.
 *
 * nodes: every node of the cluster. tasks: every task of the cluster, used
 * to compute each node's load: a task with node_id set and observed state
 * ASSIGNED..RUNNING reserves its resources there, and counts as one of the
 * node's (and its service's) active tasks if its desired state is <=
 * RUNNING. Terminal tasks with FAILED/REJECTED in the 5 minutes before now_ns
 * are the node's recent failures for that service version: a node with 5 or
 * more sorts after the others (SwarmKit's maxFailures/monitorFailures).
 * Pending tasks may also appear in tasks; they do not count.
 *
 * pending: the tasks to place (observed state PENDING, desired <= RUNNING).
 * Tasks whose node_id is already set (global services) are only checked
 * against that node, before all others, as SwarmKit's preassigned tasks.
 * The rest are grouped by (service_id, spec_version) and each group is spread
 * in one go over the nodes that pass the filters, always taking the node with
 * the fewest tasks of the service, then the fewest tasks, then the lowest id
 * (deterministic). Resources and counts taken by earlier decisions of the
 * same run are accounted for.
 *
 * Returns 0 and fills *out (free with sched_result_free), or -ENOMEM with
 * err set; *out is set only on success. Inputs are only read.
 */
int sched_run(Swarmc__Node *const *nodes, size_t n_nodes, Swarmc__Task *const *tasks,
              size_t n_tasks, Swarmc__Task *const *pending, size_t n_pending, int64_t now_ns,
              struct sched_result *out, struct swm_err *err);

/* Frees a result's contents and empties it. Accepts NULL and empty results. */
void sched_result_free(struct sched_result *r);

/* SwarmKit's constants, exposed for tests. */
#define SCHED_MAX_FAILURES 5
#define SCHED_FAILURE_WINDOW_NS (INT64_C(5) * 60 * 1000000000)

#endif
