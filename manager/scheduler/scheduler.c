/* sched_run: SwarmKit's scheduling pass over an in-memory snapshot.
 *
 * Pending tasks are sorted into (service, spec_version) groups, like
 * SwarmKit's tick() grouping tasks by spec. A group's tasks are identical, so
 * the filters that depend only on the node (ready, constraints, platform) run
 * once per node per group; the nodes that pass go into a min-heap ordered by
 * SwarmKit's nodeLess (recent failures, tasks of this service, all tasks) and
 * node id. Each task takes the heap's top; a top that no longer has room
 * (resources, max replicas) leaves the heap for the rest of the group, since
 * within a group free resources only shrink and counts only grow. That makes
 * a group O(nodes + tasks * log nodes) instead of SwarmKit's repeated scans.
 */
#include "manager/scheduler/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/sort.h"

/* SwarmKit's pipeline order, which also orders equal counts in Explain(). */
enum filter { F_READY, F_RESOURCES, F_CONSTRAINT, F_PLATFORM, F_MAX_REPLICAS, F_COUNT };

/* What a group's tasks ask of a node (all tasks of a group share a spec). */
struct group {
    const char *service;
    uint64_t version;
    int64_t cpu, mem;
    bool resources_on;
    uint64_t max_replicas; /* 0 = no limit */
    bool constraints_on;
    struct sched_constraints constraints;
    Swarmc__Platform *const *platforms;
    size_t n_platforms;
};

struct item {
    const Swarmc__Task *task;
    size_t index; /* in pending, and in the result */
    bool preassigned;
};

struct run {
    struct sched__nodeset ns;
    uint32_t *svc_count; /* per node: active tasks of the service being placed */
    uint32_t *penalty;   /* per node: recent failures of the group being placed */
    uint32_t *heap;
    size_t heap_n;
    struct item *items;
    size_t n_items;
    struct sched_result *res;
    size_t cap_messages;
};

static const char msg_assigned[] = "scheduler assigned task to node";
static const char msg_confirmed[] = "scheduler confirmed task can run on preassigned node";

/* ------------------------------------------------------------- ordering */

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->preassigned != y->preassigned)
        return x->preassigned ? -1 : 1;
    int c = strcmp(sched__str(x->task->service_id), sched__str(y->task->service_id));
    if (c != 0)
        return c;
    if (x->task->spec_version != y->task->spec_version)
        return x->task->spec_version < y->task->spec_version ? -1 : 1;
    if (x->task->slot != y->task->slot)
        return x->task->slot < y->task->slot ? -1 : 1;
    return strcmp(sched__str(x->task->id), sched__str(y->task->id));
}

static bool same_service(const struct item *a, const struct item *b)
{
    return a->preassigned == b->preassigned &&
           strcmp(sched__str(a->task->service_id), sched__str(b->task->service_id)) == 0;
}

/* SwarmKit's nodeLess: 5+ recent failures of this service version push a
 * node back; then fewest tasks of the service, then fewest tasks overall.
 * The node id breaks the remaining ties so results are reproducible. */
static bool node_less(const struct run *r, uint32_t a, uint32_t b)
{
    uint32_t pa = r->penalty[a] >= SCHED_MAX_FAILURES ? r->penalty[a] : 0;
    uint32_t pb = r->penalty[b] >= SCHED_MAX_FAILURES ? r->penalty[b] : 0;
    if (pa != pb)
        return pa < pb;
    if (r->svc_count[a] != r->svc_count[b])
        return r->svc_count[a] < r->svc_count[b];
    const struct sched__node *na = &r->ns.nodes[a], *nb = &r->ns.nodes[b];
    if (na->active != nb->active)
        return na->active < nb->active;
    return na->rank < nb->rank;
}

static void sift_down(struct run *r, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        if (l < r->heap_n && node_less(r, r->heap[l], r->heap[best]))
            best = l;
        if (l + 1 < r->heap_n && node_less(r, r->heap[l + 1], r->heap[best]))
            best = l + 1;
        if (best == i)
            return;
        uint32_t tmp = r->heap[i];
        r->heap[i] = r->heap[best];
        r->heap[best] = tmp;
        i = best;
    }
}

/* --------------------------------------------------------------- filters */

static bool static_ok(const struct run *r, const struct group *g, uint32_t i)
{
    const struct sched__node *n = &r->ns.nodes[i];
    return n->ready && (!g->constraints_on || sched_constraints_match(&g->constraints, n->node)) &&
           sched_platform_match(g->platforms, g->n_platforms, n->node);
}

static bool resources_ok(const struct run *r, const struct group *g, uint32_t i)
{
    const struct sched__node *n = &r->ns.nodes[i];
    return !g->resources_on || (g->cpu <= n->cpu && g->mem <= n->mem);
}

static bool replicas_ok(const struct run *r, const struct group *g, uint32_t i)
{
    return g->max_replicas == 0 || r->svc_count[i] < g->max_replicas;
}

/* The first filter of the pipeline that node i fails, or -1. */
static int failing_filter(const struct run *r, const struct group *g, uint32_t i)
{
    const struct sched__node *n = &r->ns.nodes[i];
    if (!n->ready)
        return F_READY;
    if (!resources_ok(r, g, i))
        return F_RESOURCES;
    if (g->constraints_on && !sched_constraints_match(&g->constraints, n->node))
        return F_CONSTRAINT;
    if (!sched_platform_match(g->platforms, g->n_platforms, n->node))
        return F_PLATFORM;
    if (!replicas_ok(r, g, i))
        return F_MAX_REPLICAS;
    return -1;
}

/* -------------------------------------------------------------- explain */

static int explain_filter(struct swm_buf *b, enum filter f, unsigned count)
{
    static const char *const what[F_COUNT] = {
        [F_READY] = "not available for new tasks",
        [F_RESOURCES] = "insufficient resources on",
        [F_CONSTRAINT] = "scheduling constraints not satisfied on",
        [F_PLATFORM] = "unsupported platform on",
    };
    const char *sep = b->len > 0 ? "; " : "";
    const char *noun = count == 1 ? "node" : "nodes";
    if (f == F_MAX_REPLICAS) /* SwarmKit gives this one no count */
        return swm_buf_printf(b, "%smax replicas per node limit exceed", sep);
    if (f == F_READY)
        return swm_buf_printf(b, "%s%u %s %s", sep, count, noun, what[f]);
    return swm_buf_printf(b, "%s%s %u %s", sep, what[f], count, noun);
}

/* SwarmKit's Pipeline.Explain(): each failing filter with the number of
 * nodes it rejected, most rejections first, ties in pipeline order. Every
 * node is counted against the first filter it fails in the run's final
 * state (SwarmKit's counts depend on its map iteration order). */
static int explain(const struct run *r, const struct group *g, long only, struct swm_buf *b)
{
    unsigned counts[F_COUNT] = {0};
    for (size_t i = 0; i < r->ns.n; i++) {
        int f = (only < 0 || (long)i == only) ? failing_filter(r, g, (uint32_t)i) : -1;
        if (f >= 0)
            counts[f]++;
    }
    unsigned done = 0;
    for (;;) {
        int best = -1;
        for (int f = 0; f < F_COUNT; f++)
            if (!(done & (1u << f)) && counts[f] > 0 && (best < 0 || counts[f] > counts[best]))
                best = f;
        if (best < 0)
            return 0;
        done |= 1u << best;
        if (explain_filter(b, (enum filter)best, counts[best]) < 0)
            return -ENOMEM;
    }
}

/* ------------------------------------------------------------- decisions */

static int keep_message(struct run *r, char *msg)
{
    struct sched_result *res = r->res;
    if (res->n_messages == r->cap_messages) {
        size_t cap = r->cap_messages ? 2 * r->cap_messages : 16;
        char **grown = swm_realloc(res->messages, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        res->messages = grown;
        r->cap_messages = cap;
    }
    res->messages[res->n_messages++] = msg;
    return 0;
}

static void assign(struct run *r, const struct item *it, uint32_t node, const char *msg)
{
    struct sched_decision *d = &r->res->decisions[it->index];
    d->node = r->ns.nodes[node].node;
    d->message = msg;
    d->changed = true;
    r->res->n_assigned++;
    r->svc_count[node]++;
    sched__nodeset_take(&r->ns, node, it->task);
}

static void fail(struct run *r, const struct item *it, const char *msg)
{
    struct sched_decision *d = &r->res->decisions[it->index];
    const char *cur = it->task->status != NULL ? sched__str(it->task->status->err) : "";
    d->node = NULL;
    d->message = msg;
    d->changed = strcmp(cur, msg) != 0;
}

/* Builds the explanation for a group (prefixed "no suitable node") or for a
 * preassigned task's one node (bare, as SwarmKit's taskFitNode), and keeps
 * it in the result's pool. Returns it, or NULL on ENOMEM. */
static const char *failure_message(struct run *r, const struct group *g, long only)
{
    struct swm_buf why = {0}, msg = {0};
    int rc = explain(r, g, only, &why);
    if (rc == 0 && only < 0)
        rc = why.len > 0 ? swm_buf_printf(&msg, "no suitable node (%s)", (char *)why.data)
                         : swm_buf_printf(&msg, "no suitable node");
    else if (rc == 0)
        rc = swm_buf_printf(&msg, "%s", why.len > 0 ? (char *)why.data : "");
    swm_buf_free(&why);
    if (rc == 0 && keep_message(r, (char *)msg.data) == 0)
        return (const char *)msg.data;
    swm_buf_free(&msg);
    return NULL;
}

/* ---------------------------------------------------------------- groups */

static int group_init(struct group *g, const Swarmc__Task *t)
{
    const Swarmc__Placement *p = t->spec != NULL ? t->spec->placement : NULL;
    memset(g, 0, sizeof(*g));
    g->service = sched__str(t->service_id);
    g->version = t->spec_version;
    g->cpu = sched__task_cpu(t);
    g->mem = sched__task_mem(t);
    g->resources_on = g->cpu != 0 || g->mem != 0;
    if (p == NULL)
        return 0;
    g->max_replicas = p->max_replicas;
    g->platforms = p->platforms;
    g->n_platforms = p->n_platforms;
    if (p->n_constraints == 0)
        return 0;
    /* Constraints were validated by the control API; one that still does not
     * parse disables the filter, as in SwarmKit. */
    int rc = sched_constraints_parse(p->constraints, p->n_constraints, &g->constraints, NULL);
    g->constraints_on = rc == 0;
    return rc == -ENOMEM ? rc : 0;
}

static void load_service(struct run *r, const char *service)
{
    size_t lo, hi;
    memset(r->svc_count, 0, r->ns.n * sizeof(*r->svc_count));
    sched__nodeset_service_range(&r->ns, service, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        r->svc_count[r->ns.active[i].node]++;
}

static void load_penalty(struct run *r, const struct group *g, uint32_t add)
{
    size_t lo, hi;
    sched__nodeset_fail_range(&r->ns, g->service, g->version, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        r->penalty[r->ns.fails[i].node] += add; /* add = 1 loads, (uint32_t)-1 unloads */
}

static void build_heap(struct run *r, const struct group *g)
{
    r->heap_n = 0;
    for (uint32_t i = 0; i < r->ns.n; i++)
        if (static_ok(r, g, i))
            r->heap[r->heap_n++] = i;
    for (size_t i = r->heap_n / 2; i-- > 0;)
        sift_down(r, i);
}

/* The best node with room left, dropping the ones without. -1 if none. */
static long pick(struct run *r, const struct group *g)
{
    while (r->heap_n > 0) {
        uint32_t top = r->heap[0];
        if (resources_ok(r, g, top) && replicas_ok(r, g, top))
            return top;
        r->heap[0] = r->heap[--r->heap_n];
        sift_down(r, 0);
    }
    return -1;
}

static int place_group(struct run *r, const struct group *g, const struct item *items, size_t n)
{
    load_penalty(r, g, 1);
    build_heap(r, g);
    size_t k = 0;
    for (long node; k < n && (node = pick(r, g)) >= 0; k++) {
        assign(r, &items[k], (uint32_t)node, msg_assigned);
        sift_down(r, 0);
    }
    const char *msg = k < n ? failure_message(r, g, -1) : "";
    for (size_t i = k; msg != NULL && i < n; i++)
        fail(r, &items[i], msg);
    load_penalty(r, g, (uint32_t)-1);
    return msg != NULL ? 0 : -ENOMEM;
}

/* SwarmKit's taskFitNode: a task created with its node (global services)
 * is only checked against that node. */
static int place_preassigned(struct run *r, const struct group *g, const struct item *it)
{
    long node = sched__nodeset_find(&r->ns, it->task->node_id);
    if (node < 0) {
        /* The node is gone; the orchestrator will shut the task down. */
        r->res->decisions[it->index].message = "";
        return 0;
    }
    if (failing_filter(r, g, (uint32_t)node) < 0) {
        assign(r, it, (uint32_t)node, msg_confirmed);
        return 0;
    }
    const char *msg = failure_message(r, g, node);
    if (msg == NULL)
        return -ENOMEM;
    fail(r, it, msg);
    return 0;
}

/* A group shares one spec; preassigned tasks are checked one by one, each
 * against its own. */
static int place_version(struct run *r, const struct item *items, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += items[0].preassigned ? 1 : n) {
        struct group g;
        rc = group_init(&g, items[i].task);
        if (rc == 0)
            rc = items[0].preassigned ? place_preassigned(r, &g, &items[i])
                                      : place_group(r, &g, items, n);
        sched_constraints_free(&g.constraints);
    }
    return rc;
}

/* Places items [0, n), all of one phase (preassigned or not), service by
 * service; a service's counts stay loaded across its spec versions so that
 * every group sees the placements of the ones before. */
static int place_phase(struct run *r, const struct item *items, size_t n)
{
    int rc = 0;
    for (size_t i = 0, j; rc == 0 && i < n; i = j) {
        for (j = i + 1; j < n && same_service(&items[i], &items[j]); j++)
            ;
        load_service(r, sched__str(items[i].task->service_id));
        for (size_t g = i, h; rc == 0 && g < j; g = h) {
            for (h = g + 1; h < j && items[h].task->spec_version == items[g].task->spec_version;
                 h++)
                ;
            rc = place_version(r, &items[g], h - g);
        }
    }
    return rc;
}

/* --------------------------------------------------------------- the run */

static int run_setup(struct run *r, Swarmc__Node *const *nodes, size_t n_nodes,
                     Swarmc__Task *const *tasks, size_t n_tasks, Swarmc__Task *const *pending,
                     size_t n_pending, int64_t now_ns)
{
    int rc = sched__nodeset_build(&r->ns, nodes, n_nodes, tasks, n_tasks, n_pending, now_ns);
    if (rc < 0)
        return rc;
    size_t nn = n_nodes ? n_nodes : 1, np = n_pending ? n_pending : 1;
    r->svc_count = swm_calloc(nn, sizeof(*r->svc_count));
    r->penalty = swm_calloc(nn, sizeof(*r->penalty));
    r->heap = swm_malloc(nn * sizeof(*r->heap));
    r->items = swm_malloc(np * sizeof(*r->items));
    r->res->decisions = swm_calloc(np, sizeof(*r->res->decisions));
    if (!r->svc_count || !r->penalty || !r->heap || !r->items || !r->res->decisions)
        return -ENOMEM;
    r->res->n = n_pending;
    r->n_items = n_pending;
    for (size_t i = 0; i < n_pending; i++) {
        r->items[i] = (struct item){pending[i], i, sched__str(pending[i]->node_id)[0] != '\0'};
        r->res->decisions[i].task = pending[i];
    }
    swm_sort(r->items, n_pending, sizeof(*r->items), cmp_item);
    return 0;
}

static void run_free(struct run *r)
{
    sched__nodeset_free(&r->ns);
    swm_free(r->svc_count);
    swm_free(r->penalty);
    swm_free(r->heap);
    swm_free(r->items);
}

static int run_phases(struct run *r)
{
    size_t n_pre = 0;
    while (n_pre < r->n_items && r->items[n_pre].preassigned)
        n_pre++;
    int rc = place_phase(r, r->items, n_pre);
    if (rc < 0)
        return rc;
    /* Preassigned placements count for the services placed next. */
    for (size_t i = 0; i < n_pre; i++) {
        const struct sched_decision *d = &r->res->decisions[r->items[i].index];
        if (d->node != NULL)
            sched__nodeset_add_active(&r->ns, sched__str(d->task->service_id),
                                      (uint32_t)sched__nodeset_find(&r->ns, d->node->id));
    }
    sched__nodeset_sort_active(&r->ns);
    return place_phase(r, r->items + n_pre, r->n_items - n_pre);
}

int sched_run(Swarmc__Node *const *nodes, size_t n_nodes, Swarmc__Task *const *tasks,
              size_t n_tasks, Swarmc__Task *const *pending, size_t n_pending, int64_t now_ns,
              struct sched_result *out, struct swm_err *err)
{
    struct sched_result res = {0};
    struct run r = {.res = &res};
    int rc = run_setup(&r, nodes, n_nodes, tasks, n_tasks, pending, n_pending, now_ns);
    if (rc == 0)
        rc = run_phases(&r);
    run_free(&r);
    if (rc < 0) {
        sched_result_free(&res);
        return swm_err_set(err, rc, "scheduler: out of memory placing %zu tasks", n_pending);
    }
    *out = res;
    return 0;
}

void sched_result_free(struct sched_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_messages; i++)
        swm_free(r->messages[i]);
    swm_free(r->messages);
    swm_free(r->decisions);
    memset(r, 0, sizeof(*r));
}
