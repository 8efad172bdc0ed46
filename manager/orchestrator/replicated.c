/* The replicated orchestrator: slots 1..replicas (SwarmKit's
 * manager/orchestrator/replicated reconcile). */
#include "manager/orchestrator/internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/sort.h"

/* A slot's standing when choosing which slots survive a scale-down. */
struct slot_rank {
    size_t inst;
    uint64_t slot;
    bool running;     /* a runnable task is observed RUNNING */
    const char *node; /* the node of the slot's only runnable task, or NULL */
    size_t pos;       /* position after sorting running slots first */
    long copy;        /* it is the copy-th task of the service on its node; -1 if no node */
};

static void rank_slot(const struct orch__ctx *ctx, size_t inst, struct slot_rank *r)
{
    const struct orch__instance *in = &ctx->inst[inst];
    size_t runnable = 0;
    *r = (struct slot_rank){.inst = inst, .slot = in->slot, .copy = -1};
    for (size_t k = 0; k < in->n; k++) {
        const Swarmc__Task *t = orch__cur(ctx, in->tasks[k]);
        if (ctx->tasks[in->tasks[k]].dropped || !orch__runnable(t))
            continue;
        runnable++;
        r->running |= orch__state(t) == SWARMC__TASK_STATE__TASK_STATE_RUNNING;
        r->node = orch__str(t->node_id)[0] != '\0' ? t->node_id : NULL;
    }
    if (runnable != 1)
        r->node = NULL;
}

static int cmp_running_first(const void *a, const void *b)
{
    const struct slot_rank *x = a, *y = b;
    if (x->running != y->running)
        return x->running ? -1 : 1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static int cmp_node_pos(const void *a, const void *b)
{
    const struct slot_rank *x = *(struct slot_rank *const *)a, *y = *(struct slot_rank *const *)b;
    int c = strcmp(x->node, y->node);
    return c != 0 ? c : (x->pos < y->pos ? -1 : x->pos > y->pos);
}

/* SwarmKit's slotsByIndex: the first copies on each node first (so the
 * survivors stay spread), slots without a single assigned task last; ties go
 * to running slots, then to low slot numbers. */
static int cmp_keep(const void *a, const void *b)
{
    const struct slot_rank *x = a, *y = b;
    long cx = x->copy < 0 ? LONG_MAX : x->copy, cy = y->copy < 0 ? LONG_MAX : y->copy;
    if (cx != cy)
        return cx < cy ? -1 : 1;
    return cmp_running_first(a, b);
}

/* Numbers each slot's task as the n-th copy on its node, counting running
 * slots first so that a node's spare copies are its non-running ones. */
static int number_copies(struct slot_rank *ranks, size_t n)
{
    struct slot_rank **by_node = swm_malloc((n ? n : 1) * sizeof(*by_node));
    if (by_node == NULL)
        return -ENOMEM;
    swm_sort(ranks, n, sizeof(*ranks), cmp_running_first);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        ranks[i].pos = i;
        if (ranks[i].node != NULL)
            by_node[m++] = &ranks[i];
    }
    swm_sort(by_node, m, sizeof(*by_node), cmp_node_pos);
    for (size_t i = 0; i < m; i++)
        by_node[i]->copy = i > 0 && strcmp(by_node[i - 1]->node, by_node[i]->node) == 0
                               ? by_node[i - 1]->copy + 1
                               : 1;
    swm_free(by_node);
    return 0;
}

/* Stops a surplus slot: its runnable tasks, or its last task when it has
 * none, get desired REMOVE; a task made in this same pass is just dropped. */
static int remove_slot(struct orch__ctx *ctx, size_t inst)
{
    const struct orch__instance *in = &ctx->inst[inst];
    bool any = false;
    for (size_t k = 0; k < in->n; k++) {
        size_t i = in->tasks[k];
        if (ctx->tasks[i].dropped || !orch__runnable(orch__cur(ctx, i)))
            continue;
        any = true;
        if (ctx->tasks[i].orig == NULL)
            ctx->tasks[i].dropped = true;
        else if (orch__set_desired(ctx, i, SWARMC__TASK_STATE__TASK_STATE_REMOVE) < 0)
            return -ENOMEM;
    }
    long newest = orch__newest(ctx, inst);
    if (!any && newest >= 0)
        return orch__set_desired(ctx, (size_t)newest, SWARMC__TASK_STATE__TASK_STATE_REMOVE);
    return 0;
}

static int scale_down(struct orch__ctx *ctx, const size_t *occ, size_t n_occ, uint64_t replicas)
{
    struct slot_rank *ranks = swm_malloc(n_occ * sizeof(*ranks));
    if (ranks == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n_occ; i++)
        rank_slot(ctx, occ[i], &ranks[i]);
    int rc = number_copies(ranks, n_occ);
    if (rc == 0)
        swm_sort(ranks, n_occ, sizeof(*ranks), cmp_keep);
    for (size_t i = 0; rc == 0 && i < n_occ; i++) {
        ctx->inst[ranks[i].inst].kept = i < replicas;
        if (i >= replicas)
            rc = remove_slot(ctx, ranks[i].inst);
    }
    swm_free(ranks);
    return rc;
}

/* Fills the lowest free slot numbers, reusing the history of vacant slots
 * (SwarmKit's addTasks). Instances 0..n_inst-1 are sorted by slot. */
static int scale_up(struct orch__ctx *ctx, const bool *occupied, uint64_t missing)
{
    size_t n_inst = ctx->n_inst, p = 0;
    for (uint64_t slot = 1; missing > 0; slot++) {
        while (p < n_inst && ctx->inst[p].slot < slot)
            p++;
        long inst = p < n_inst && ctx->inst[p].slot == slot ? (long)p : -1;
        if (inst >= 0 && occupied[inst])
            continue;
        if (inst < 0 && (inst = orch__add_instance(ctx, slot, NULL)) < 0)
            return -ENOMEM;
        ctx->inst[inst].kept = true;
        if (orch__create(ctx, (size_t)inst, SWARMC__TASK_STATE__TASK_STATE_RUNNING) < 0)
            return -ENOMEM;
        missing--;
    }
    return 0;
}

static uint64_t wanted_replicas(const Swarmc__Service *svc)
{
    const Swarmc__ServiceSpec *spec = svc->spec;
    return spec != NULL && spec->has_replicas ? spec->replicas : 1;
}

static int scale(struct orch__ctx *ctx)
{
    uint64_t replicas = wanted_replicas(ctx->svc);
    size_t n = ctx->n_inst, n_occ = 0;
    size_t *occ = swm_malloc((n ? n : 1) * sizeof(*occ));
    bool *occupied = swm_calloc(n ? n : 1, sizeof(*occupied));
    int rc = occ != NULL && occupied != NULL ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* Slot 0 is no replicated slot; such tasks are left alone. */
        occupied[i] = ctx->inst[i].slot != 0 && orch__occupancy(ctx, i) != ORCH_VACANT;
        if (occupied[i]) {
            occ[n_occ++] = i;
            ctx->inst[i].kept = true;
        }
    }
    if (rc == 0 && n_occ > replicas)
        rc = scale_down(ctx, occ, n_occ, replicas);
    else if (rc == 0)
        rc = scale_up(ctx, occupied, replicas - n_occ);
    swm_free(occ);
    swm_free(occupied);
    return rc;
}

int orch_replicated_reconcile(const Swarmc__Service *service, Swarmc__Task *const *tasks,
                              size_t n_tasks, Swarmc__Node *const *nodes, size_t n_nodes,
                              int64_t now_ns, struct orch_plan *plan, struct swm_err *err)
{
    struct orch__ctx ctx;
    int rc = orch__ctx_init(&ctx, service, false, tasks, n_tasks, nodes, n_nodes, now_ns);
    for (size_t i = 0; rc == 0 && i < ctx.n_inst; i++)
        if (ctx.inst[i].slot != 0)
            rc = orch__supervise(&ctx, i);
    if (rc == 0)
        rc = scale(&ctx);
    if (rc == 0)
        rc = orch__update(&ctx);
    for (size_t i = 0; rc == 0 && i < ctx.n_inst; i++)
        rc = orch__promote(&ctx, i);
    if (rc == 0)
        rc = orch__commit(&ctx, plan);
    orch__ctx_free(&ctx);
    if (rc < 0)
        return swm_err_set(err, rc, "orchestrator: out of memory reconciling service %s",
                           orch__str(service->id));
    return 0;
}

int orch_reconcile(const Swarmc__Service *service, Swarmc__Task *const *tasks, size_t n_tasks,
                   Swarmc__Node *const *nodes, size_t n_nodes, int64_t now_ns,
                   struct orch_plan *plan, struct swm_err *err)
{
    if (service->spec != NULL && service->spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL)
        return orch_global_reconcile(service, tasks, n_tasks, nodes, n_nodes, now_ns, plan, err);
    return orch_replicated_reconcile(service, tasks, n_tasks, nodes, n_nodes, now_ns, plan, err);
}
