/* The global orchestrator: one task per eligible node (SwarmKit's
 * manager/orchestrator/global). Tasks are created with their node set; the
 * scheduler only confirms that the node has room (a preassigned task). */
#include "manager/orchestrator/internal.h"

#include <errno.h>
#include <string.h>

#include "manager/scheduler/scheduler.h"

struct placement {
    struct sched_constraints constraints;
    Swarmc__Platform *const *platforms;
    size_t n_platforms;
};

static int placement_init(const Swarmc__Service *svc, struct placement *p, struct swm_err *err)
{
    const Swarmc__TaskSpec *ts = svc->spec != NULL ? svc->spec->task : NULL;
    const Swarmc__Placement *pl = ts != NULL ? ts->placement : NULL;
    memset(p, 0, sizeof(*p));
    if (pl == NULL)
        return 0;
    p->platforms = pl->platforms;
    p->n_platforms = pl->n_platforms;
    return sched_constraints_parse(pl->constraints, pl->n_constraints, &p->constraints, err);
}

/* Whether the node should run the service: up (READY, or not known to be
 * down), not draining, and matching the placement. A PAUSE node keeps its
 * task but gets no new one (see fill). */
static bool eligible(const Swarmc__Node *n, const struct placement *p)
{
    return !orch__node_down(n) && !orch__node_drain(n) &&
           sched_constraints_match(&p->constraints, n) &&
           sched_platform_match(p->platforms, p->n_platforms, n);
}

/* Stops the node's runnable tasks. With REMOVE and none runnable, the last
 * task is marked instead, so the reaper clears the node's history. */
static int stop_instance(struct orch__ctx *ctx, size_t inst, Swarmc__TaskState state)
{
    const struct orch__instance *in = &ctx->inst[inst];
    bool any = false;
    for (size_t k = 0; k < in->n; k++) {
        if (!orch__runnable(orch__cur(ctx, in->tasks[k])))
            continue;
        any = true;
        if (orch__set_desired(ctx, in->tasks[k], state) < 0)
            return -ENOMEM;
    }
    long newest = orch__newest(ctx, inst);
    if (!any && newest >= 0 && state == SWARMC__TASK_STATE__TASK_STATE_REMOVE)
        return orch__set_desired(ctx, (size_t)newest, state);
    return 0;
}

/* More than one runnable task of the current spec on a node (say, after a
 * leader change raced a create): keep the newest, as SwarmKit does. */
static int dedupe(struct orch__ctx *ctx, size_t inst)
{
    const struct orch__instance *in = &ctx->inst[inst];
    bool newer_seen = false;
    for (size_t k = in->n; k-- > 0;) {
        size_t i = in->tasks[k];
        if (ctx->tasks[i].dropped || !orch__runnable(orch__cur(ctx, i)))
            continue;
        int outdated = orch__outdated(ctx, i);
        if (outdated < 0)
            return outdated;
        if (outdated)
            continue;
        if (newer_seen && orch__set_desired(ctx, i, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN) < 0)
            return -ENOMEM;
        newer_seen = true;
    }
    return 0;
}

/* Tasks on nodes that are gone are removed (their history goes with them);
 * on nodes that became ineligible they are shut down; elsewhere the restart
 * supervisor looks after them. */
static int judge_nodes(struct orch__ctx *ctx, const struct placement *p)
{
    for (size_t i = 0; i < ctx->n_inst; i++) {
        const Swarmc__Node *n = orch__node(ctx, ctx->inst[i].node_id);
        int rc;
        if (n == NULL)
            rc = stop_instance(ctx, i, SWARMC__TASK_STATE__TASK_STATE_REMOVE);
        else if (!eligible(n, p))
            rc = stop_instance(ctx, i, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN);
        else if ((rc = orch__supervise(ctx, i)) == 0)
            rc = dedupe(ctx, i);
        ctx->inst[i].kept = n != NULL && eligible(n, p);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Index of the instance of node id among the first n (sorted by node id). */
static long find_instance(const struct orch__ctx *ctx, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ctx->inst[mid].node_id, id);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static bool node_active(const Swarmc__Node *n)
{
    return n->spec == NULL ||
           n->spec->availability == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
}

/* Gives every eligible, active node without a task one. A node whose last
 * task stopped for good (condition none...) keeps it instead. */
static int fill(struct orch__ctx *ctx, const struct placement *p)
{
    size_t n_inst = ctx->n_inst;
    for (size_t i = 0; i < ctx->n_nodes; i++) {
        const Swarmc__Node *n = ctx->nodes[i];
        if (!eligible(n, p) || !node_active(n))
            continue;
        long inst = find_instance(ctx, n_inst, orch__str(n->id));
        if (inst >= 0 && orch__occupancy(ctx, (size_t)inst) != ORCH_VACANT)
            continue;
        if (inst < 0 && (inst = orch__add_instance(ctx, 0, n->id)) < 0)
            return -ENOMEM;
        ctx->inst[inst].kept = true;
        if (orch__create(ctx, (size_t)inst, SWARMC__TASK_STATE__TASK_STATE_RUNNING) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int reconcile(struct orch__ctx *ctx, const struct placement *p)
{
    int rc = judge_nodes(ctx, p);
    if (rc == 0)
        rc = fill(ctx, p);
    if (rc == 0)
        rc = orch__update(ctx);
    for (size_t i = 0; rc == 0 && i < ctx->n_inst; i++)
        rc = orch__promote(ctx, i);
    return rc;
}

int orch_global_reconcile(const Swarmc__Service *service, Swarmc__Task *const *tasks,
                          size_t n_tasks, Swarmc__Node *const *nodes, size_t n_nodes,
                          int64_t now_ns, struct orch_plan *plan, struct swm_err *err)
{
    struct placement p;
    int rc = placement_init(service, &p, err);
    if (rc < 0)
        return rc;
    struct orch__ctx ctx;
    rc = orch__ctx_init(&ctx, service, true, tasks, n_tasks, nodes, n_nodes, now_ns);
    if (rc == 0)
        rc = reconcile(&ctx, &p);
    if (rc == 0)
        rc = orch__commit(&ctx, plan);
    orch__ctx_free(&ctx);
    sched_constraints_free(&p.constraints);
    if (rc < 0)
        return swm_err_set(err, rc, "orchestrator: out of memory reconciling service %s",
                           orch__str(service->id));
    return 0;
}
