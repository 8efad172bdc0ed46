/* The copy-on-write view a reconcile pass works on, the plan it commits to,
 * and the small accessors every part of the orchestrator shares. */
#include "manager/orchestrator/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/id.h"
#include "common/sort.h"

/* ------------------------------------------------------------- accessors */

const char *orch__str(const char *s)
{
    return s != NULL ? s : "";
}

Swarmc__TaskState orch__state(const Swarmc__Task *t)
{
    return t->status != NULL ? t->status->state : SWARMC__TASK_STATE__TASK_STATE_NEW;
}

int64_t orch__ts(const Swarmc__Task *t)
{
    return t->status != NULL ? t->status->timestamp : 0;
}

int64_t orch__created(const Swarmc__Task *t)
{
    if (t->meta != NULL && t->meta->has_created_at)
        return t->meta->created_at;
    return orch__ts(t);
}

bool orch__runnable(const Swarmc__Task *t)
{
    return t->desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
}

bool orch__terminal(const Swarmc__Task *t)
{
    return orch__state(t) > SWARMC__TASK_STATE__TASK_STATE_RUNNING;
}

bool orch__node_down(const Swarmc__Node *n)
{
    return n->status != NULL && n->status->state == SWARMC__NODE_STATE__NODE_STATE_DOWN;
}

bool orch__node_drain(const Swarmc__Node *n)
{
    return n->spec != NULL &&
           n->spec->availability == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
}

static int cmp_node(const void *a, const void *b)
{
    const Swarmc__Node *x = *(const Swarmc__Node *const *)a;
    const Swarmc__Node *y = *(const Swarmc__Node *const *)b;
    return strcmp(orch__str(x->id), orch__str(y->id));
}

const Swarmc__Node *orch__node(const struct orch__ctx *ctx, const char *id)
{
    if (id == NULL || id[0] == '\0')
        return NULL;
    Swarmc__Node key_node = SWARMC__NODE__INIT;
    const Swarmc__Node *key = &key_node;
    key_node.id = (char *)id;
    const Swarmc__Node **hit =
        bsearch(&key, ctx->nodes, ctx->n_nodes, sizeof(*ctx->nodes), cmp_node);
    return hit != NULL ? *hit : NULL;
}

void orch__wake(struct orch__ctx *ctx, int64_t at)
{
    if (at > ctx->now && (ctx->wakeup == 0 || at < ctx->wakeup))
        ctx->wakeup = at;
}

/* ------------------------------------------------------------------ view */

const Swarmc__Task *orch__cur(const struct orch__ctx *ctx, size_t i)
{
    return ctx->tasks[i].mod != NULL ? ctx->tasks[i].mod : ctx->tasks[i].orig;
}

Swarmc__Task *orch__edit(struct orch__ctx *ctx, size_t i)
{
    struct orch__task *t = &ctx->tasks[i];
    if (t->mod != NULL)
        return t->mod;
    t->mod = proto_clone(t->orig);
    if (t->mod != NULL && t->mod->meta != NULL) {
        t->mod->meta->has_updated_at = 1;
        t->mod->meta->updated_at = ctx->now;
    }
    return t->mod;
}

int orch__set_desired(struct orch__ctx *ctx, size_t i, Swarmc__TaskState state)
{
    /* Desired states only move forward (SwarmKit: "time travel is not
     * allowed"). */
    if (orch__cur(ctx, i)->desired_state >= state)
        return 0;
    Swarmc__Task *t = orch__edit(ctx, i);
    if (t == NULL)
        return -ENOMEM;
    t->has_desired_state = 1;
    t->desired_state = state;
    return 0;
}

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 8;
    while (cap2 < need)
        cap2 *= 2;
    void *p = swm_realloc(*v, cap2 * elem);
    if (p == NULL)
        return -ENOMEM;
    *v = p;
    *cap = cap2;
    return 0;
}

static int instance_push(struct orch__instance *in, size_t task)
{
    if (grow((void **)&in->tasks, &in->cap, in->n + 1, sizeof(*in->tasks)) < 0)
        return -ENOMEM;
    in->tasks[in->n++] = task;
    return 0;
}

long orch__add_instance(struct orch__ctx *ctx, uint64_t slot, const char *node_id)
{
    if (grow((void **)&ctx->inst, &ctx->cap_inst, ctx->n_inst + 1, sizeof(*ctx->inst)) < 0)
        return -ENOMEM;
    ctx->inst[ctx->n_inst] = (struct orch__instance){.slot = slot, .node_id = orch__str(node_id)};
    return (long)ctx->n_inst++;
}

/* ------------------------------------------------------------- new tasks */

static const char *service_name(const Swarmc__Service *svc)
{
    const Swarmc__Annotations *a = svc->spec != NULL ? svc->spec->annotations : NULL;
    return a != NULL && a->name != NULL && a->name[0] != '\0' ? a->name : orch__str(svc->id);
}

/* Builds the task on the stack from borrowed parts, then deep-copies it so
 * that the result is one allocation tree proto_free can release. */
static Swarmc__Task *build_task(const struct orch__ctx *ctx, const struct orch__instance *in,
                                Swarmc__TaskState desired)
{
    const Swarmc__ServiceSpec *spec = ctx->svc->spec;
    Swarmc__Task t = SWARMC__TASK__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    Swarmc__TaskStatus status = SWARMC__TASK_STATUS__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__TaskSpec empty = SWARMC__TASK_SPEC__INIT;
    char id[SWM_ID_LEN + 1], name[512];
    if (swm_id_new(id) < 0)
        return NULL;
    if (ctx->global)
        snprintf(name, sizeof(name), "%s.%s", service_name(ctx->svc), in->node_id);
    else
        snprintf(name, sizeof(name), "%s.%llu", service_name(ctx->svc),
                 (unsigned long long)in->slot);
    meta.has_created_at = meta.has_updated_at = 1;
    meta.created_at = meta.updated_at = ctx->now;
    status.has_state = status.has_timestamp = 1;
    status.state = SWARMC__TASK_STATE__TASK_STATE_NEW;
    status.timestamp = ctx->now;
    status.message = "created";
    ann.name = name;
    t.id = id;
    t.meta = &meta;
    t.spec = spec != NULL && spec->task != NULL ? spec->task : &empty;
    t.has_spec_version = 1;
    t.spec_version = ctx->svc->spec_version;
    t.service_id = ctx->svc->id;
    t.has_slot = !ctx->global;
    t.slot = ctx->global ? 0 : in->slot;
    t.node_id = ctx->global ? (char *)in->node_id : NULL;
    t.annotations = &ann;
    t.service_annotations = spec != NULL ? spec->annotations : NULL;
    t.status = &status;
    t.has_desired_state = 1;
    t.desired_state = desired;
    return proto_clone(&t);
}

long orch__create(struct orch__ctx *ctx, size_t inst, Swarmc__TaskState desired)
{
    if (grow((void **)&ctx->tasks, &ctx->cap_tasks, ctx->n_tasks + 1, sizeof(*ctx->tasks)) < 0)
        return -ENOMEM;
    Swarmc__Task *t = build_task(ctx, &ctx->inst[inst], desired);
    if (t == NULL || instance_push(&ctx->inst[inst], ctx->n_tasks) < 0) {
        proto_free(t);
        return -ENOMEM;
    }
    ctx->tasks[ctx->n_tasks] = (struct orch__task){.mod = t};
    return (long)ctx->n_tasks++;
}

/* ------------------------------------------------------------ spec diffs */

static int pack_spec(const Swarmc__TaskSpec *spec, struct swm_buf *out)
{
    Swarmc__TaskSpec empty = SWARMC__TASK_SPEC__INIT;
    out->len = 0;
    int rc = proto_pack(spec != NULL ? &spec->base : &empty.base, out);
    /* An empty spec packs to nothing; keep data non-NULL for memcmp. */
    return rc == 0 && out->data == NULL ? swm_buf_reserve(out, 1) : rc;
}

int orch__outdated(struct orch__ctx *ctx, size_t i)
{
    const Swarmc__Task *t = orch__cur(ctx, i);
    if (t->spec_version == ctx->svc->spec_version)
        return 0;
    if (pack_spec(t->spec, &ctx->scratch) < 0)
        return -ENOMEM;
    return ctx->scratch.len != ctx->spec.len ||
           memcmp(ctx->scratch.data, ctx->spec.data, ctx->spec.len) != 0;
}

bool orch_task_outdated(const Swarmc__Service *service, const Swarmc__Task *task)
{
    if (task->spec_version == service->spec_version)
        return false;
    struct swm_buf a = {0}, b = {0};
    bool outdated = true; /* if packing fails, err on the side of updating */
    if (pack_spec(service->spec != NULL ? service->spec->task : NULL, &a) == 0 &&
        pack_spec(task->spec, &b) == 0)
        outdated = a.len != b.len || memcmp(a.data, b.data, a.len) != 0;
    swm_buf_free(&a);
    swm_buf_free(&b);
    return outdated;
}

Swarmc__Service *orch__edit_service(struct orch__ctx *ctx)
{
    if (ctx->svc_mod == NULL)
        ctx->svc_mod = proto_clone(ctx->svc);
    if (ctx->svc_mod != NULL && ctx->svc_mod->update_status == NULL) {
        ctx->svc_mod->update_status = swm_malloc(sizeof(Swarmc__UpdateStatus));
        if (ctx->svc_mod->update_status == NULL)
            return NULL;
        swarmc__update_status__init(ctx->svc_mod->update_status);
    }
    return ctx->svc_mod;
}

/* ----------------------------------------------------------- build, free */

static int cmp_task_key(const struct orch__ctx *ctx, const Swarmc__Task *x, const Swarmc__Task *y)
{
    if (ctx->global) {
        int c = strcmp(orch__str(x->node_id), orch__str(y->node_id));
        if (c != 0)
            return c;
    } else if (x->slot != y->slot) {
        return x->slot < y->slot ? -1 : 1;
    }
    if (orch__created(x) != orch__created(y))
        return orch__created(x) < orch__created(y) ? -1 : 1;
    return strcmp(orch__str(x->id), orch__str(y->id));
}

/* qsort has no context argument; the two orders differ only in the key. */
static int cmp_task_slot(const void *a, const void *b)
{
    static const struct orch__ctx replicated = {.global = false};
    return cmp_task_key(&replicated, ((const struct orch__task *)a)->orig,
                        ((const struct orch__task *)b)->orig);
}

static int cmp_task_node(const void *a, const void *b)
{
    static const struct orch__ctx global = {.global = true};
    return cmp_task_key(&global, ((const struct orch__task *)a)->orig,
                        ((const struct orch__task *)b)->orig);
}

static bool same_instance(const struct orch__ctx *ctx, const Swarmc__Task *x, const Swarmc__Task *y)
{
    return ctx->global ? strcmp(orch__str(x->node_id), orch__str(y->node_id)) == 0
                       : x->slot == y->slot;
}

/* Sorts the tasks by instance then age, and cuts them into instances. */
static int build_instances(struct orch__ctx *ctx)
{
    swm_sort(ctx->tasks, ctx->n_tasks, sizeof(*ctx->tasks),
             ctx->global ? cmp_task_node : cmp_task_slot);
    for (size_t i = 0; i < ctx->n_tasks; i++) {
        const Swarmc__Task *t = ctx->tasks[i].orig;
        if (i == 0 || !same_instance(ctx, ctx->tasks[i - 1].orig, t)) {
            long in = orch__add_instance(ctx, t->slot, t->node_id);
            if (in < 0)
                return -ENOMEM;
        }
        if (instance_push(&ctx->inst[ctx->n_inst - 1], i) < 0)
            return -ENOMEM;
    }
    return 0;
}

int orch__ctx_init(struct orch__ctx *ctx, const Swarmc__Service *svc, bool global,
                   Swarmc__Task *const *tasks, size_t n_tasks, Swarmc__Node *const *nodes,
                   size_t n_nodes, int64_t now)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->svc = svc;
    ctx->now = now;
    ctx->global = global;
    ctx->nodes = swm_malloc((n_nodes ? n_nodes : 1) * sizeof(*ctx->nodes));
    if (ctx->nodes == NULL ||
        grow((void **)&ctx->tasks, &ctx->cap_tasks, n_tasks + 1, sizeof(*ctx->tasks)) < 0 ||
        pack_spec(svc->spec != NULL ? svc->spec->task : NULL, &ctx->spec) < 0)
        return -ENOMEM;
    memcpy(ctx->nodes, nodes, n_nodes * sizeof(*ctx->nodes));
    ctx->n_nodes = n_nodes;
    swm_sort(ctx->nodes, n_nodes, sizeof(*ctx->nodes), cmp_node);
    for (size_t i = 0; i < n_tasks; i++)
        ctx->tasks[i] = (struct orch__task){.orig = tasks[i]};
    ctx->n_tasks = n_tasks;
    return build_instances(ctx);
}

void orch__ctx_free(struct orch__ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_tasks; i++)
        proto_free(ctx->tasks[i].mod);
    for (size_t i = 0; i < ctx->n_inst; i++)
        swm_free(ctx->inst[i].tasks);
    swm_free(ctx->tasks);
    swm_free(ctx->inst);
    swm_free(ctx->nodes);
    swm_buf_free(&ctx->spec);
    swm_buf_free(&ctx->scratch);
    proto_free(ctx->svc_mod);
    memset(ctx, 0, sizeof(*ctx));
}

/* ------------------------------------------------------------------ plan */

void orch_plan_init(struct orch_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
}

void orch_plan_free(struct orch_plan *plan)
{
    if (plan == NULL)
        return;
    for (size_t i = 0; i < plan->n_creates; i++)
        proto_free(plan->creates[i]);
    for (size_t i = 0; i < plan->n_updates; i++)
        proto_free(plan->updates[i]);
    for (size_t i = 0; i < plan->n_deletes; i++)
        swm_free(plan->deletes[i]);
    swm_free(plan->creates);
    swm_free(plan->updates);
    swm_free(plan->deletes);
    proto_free(plan->service);
    orch_plan_init(plan);
}

bool orch_plan_empty(const struct orch_plan *plan)
{
    return plan->n_creates == 0 && plan->n_updates == 0 && plan->n_deletes == 0 &&
           plan->service == NULL;
}

/* Reserves room for n more entries of each kind, so that moving a pass into
 * the plan cannot fail half way. */
int orch__plan_reserve(struct orch_plan *plan, size_t creates, size_t updates, size_t deletes)
{
    if (grow((void **)&plan->creates, &plan->cap_creates, plan->n_creates + creates,
             sizeof(*plan->creates)) < 0 ||
        grow((void **)&plan->updates, &plan->cap_updates, plan->n_updates + updates,
             sizeof(*plan->updates)) < 0 ||
        grow((void **)&plan->deletes, &plan->cap_deletes, plan->n_deletes + deletes,
             sizeof(*plan->deletes)) < 0)
        return -ENOMEM;
    return 0;
}

void orch__plan_wake(struct orch_plan *plan, int64_t at)
{
    if (at != 0 && (plan->next_wakeup_ns == 0 || at < plan->next_wakeup_ns))
        plan->next_wakeup_ns = at;
}

int orch__commit(struct orch__ctx *ctx, struct orch_plan *plan)
{
    size_t creates = 0, updates = 0;
    for (size_t i = 0; i < ctx->n_tasks; i++) {
        const struct orch__task *t = &ctx->tasks[i];
        creates += t->orig == NULL && t->mod != NULL && !t->dropped;
        updates += t->orig != NULL && t->mod != NULL;
    }
    if (orch__plan_reserve(plan, creates, updates, 0) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < ctx->n_tasks; i++) {
        struct orch__task *t = &ctx->tasks[i];
        if (t->mod == NULL || t->dropped)
            continue;
        if (t->orig == NULL)
            plan->creates[plan->n_creates++] = t->mod;
        else
            plan->updates[plan->n_updates++] = t->mod;
        t->mod = NULL;
    }
    if (ctx->svc_mod != NULL) {
        proto_free(plan->service);
        plan->service = ctx->svc_mod;
        ctx->svc_mod = NULL;
    }
    orch__plan_wake(plan, ctx->wakeup);
    return 0;
}
