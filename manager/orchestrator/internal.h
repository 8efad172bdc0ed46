/* Shared between the orchestrator's files; no other module includes it.
 *
 * A reconcile pass works on a copy-on-write view of the service's tasks:
 * each input task is read through orch__cur() and changed through
 * orch__edit(), which clones it once; tasks created in the pass join the same
 * view. Nothing reaches the caller's plan until orch__commit(), so a failed
 * pass leaves the plan untouched. */
#ifndef SWM_MANAGER_ORCHESTRATOR_INTERNAL_H
#define SWM_MANAGER_ORCHESTRATOR_INTERNAL_H

#include "common/buf.h"
#include "manager/orchestrator/orchestrator.h"

struct orch__task {
    const Swarmc__Task *orig; /* borrowed input; NULL for a task created in this pass */
    Swarmc__Task *mod;        /* owned: orig's changed copy, or the new task */
    bool dropped;             /* a new task cancelled later in the same pass */
};

/* A slot (replicated) or a node (global) and its tasks, oldest first. */
struct orch__instance {
    uint64_t slot;
    const char *node_id; /* global: borrowed from a task or node; "" otherwise */
    size_t *tasks;       /* indices into ctx->tasks */
    size_t n, cap;
    bool kept; /* an occupied slot, or an eligible node, the update walks */
};

/* How a slot stands after the restart supervisor ran. */
enum orch__occupancy {
    ORCH_VACANT, /* no runnable task: needs one if within replicas */
    ORCH_ACTIVE, /* has runnable tasks */
    ORCH_DONE,   /* last task stopped and must not restart: stays as is */
};

struct orch__ctx {
    const Swarmc__Service *svc;
    bool global;
    int64_t now;
    const Swarmc__Node **nodes; /* sorted by id, for orch__node() */
    size_t n_nodes;
    struct orch__task *tasks;
    size_t n_tasks, cap_tasks;
    struct orch__instance *inst;
    size_t n_inst, cap_inst;
    struct swm_buf spec;      /* the service's TaskSpec, packed */
    struct swm_buf scratch;   /* a task's TaskSpec, packed */
    Swarmc__Service *svc_mod; /* owned: the service with a changed update status */
    int64_t wakeup;
};

/* context.c: building and committing a pass. */
int orch__ctx_init(struct orch__ctx *ctx, const Swarmc__Service *svc, bool global,
                   Swarmc__Task *const *tasks, size_t n_tasks, Swarmc__Node *const *nodes,
                   size_t n_nodes, int64_t now);
void orch__ctx_free(struct orch__ctx *ctx);
int orch__commit(struct orch__ctx *ctx, struct orch_plan *plan);
/* Makes room for that many more entries of each kind in plan. */
int orch__plan_reserve(struct orch_plan *plan, size_t creates, size_t updates, size_t deletes);
/* Lowers plan->next_wakeup_ns to at (0 = nothing). */
void orch__plan_wake(struct orch_plan *plan, int64_t at);

const Swarmc__Task *orch__cur(const struct orch__ctx *ctx, size_t i);
Swarmc__Task *orch__edit(struct orch__ctx *ctx, size_t i);
/* Raises task i's desired state to `state` (never lowers it). */
int orch__set_desired(struct orch__ctx *ctx, size_t i, Swarmc__TaskState state);
/* Creates a task from the service's current spec in instance `inst`.
 * Returns its index in ctx->tasks, or -ENOMEM. */
long orch__create(struct orch__ctx *ctx, size_t inst, Swarmc__TaskState desired);
/* Appends an empty instance; returns its index or -ENOMEM. */
long orch__add_instance(struct orch__ctx *ctx, uint64_t slot, const char *node_id);
const Swarmc__Node *orch__node(const struct orch__ctx *ctx, const char *id);
/* 1 if task i's spec is outdated, 0 if not, -ENOMEM. */
int orch__outdated(struct orch__ctx *ctx, size_t i);
Swarmc__Service *orch__edit_service(struct orch__ctx *ctx);
void orch__wake(struct orch__ctx *ctx, int64_t at);

/* Field accessors with Swarm's defaults. */
Swarmc__TaskState orch__state(const Swarmc__Task *t);
int64_t orch__ts(const Swarmc__Task *t);      /* status timestamp */
int64_t orch__created(const Swarmc__Task *t); /* meta.created_at, else the status timestamp */
bool orch__runnable(const Swarmc__Task *t);
bool orch__terminal(const Swarmc__Task *t);
bool orch__node_down(const Swarmc__Node *n);
bool orch__node_drain(const Swarmc__Node *n);
const char *orch__str(const char *s);

/* restart.c: the restart supervisor. */
int orch__supervise(struct orch__ctx *ctx, size_t inst);
int orch__promote(struct orch__ctx *ctx, size_t inst);
bool orch__should_restart(const struct orch__ctx *ctx, size_t inst, size_t task);
enum orch__occupancy orch__occupancy(const struct orch__ctx *ctx, size_t inst);
/* Index of the instance's newest task still in the pass, or -1. */
long orch__newest(const struct orch__ctx *ctx, size_t inst);

/* update.c: the update supervisor, over the instances marked kept. */
int orch__update(struct orch__ctx *ctx);

#endif
