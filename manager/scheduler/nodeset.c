/* The scheduler's view of the cluster for one run: per node its free
 * resources and task counts, per service where its active tasks are, and
 * recent failures. Built in O(tasks) with a hash index on node ids, then
 * sorted, so that a run never scans every task per node or per group. */
#include "manager/scheduler/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/sort.h"

const char *sched__str(const char *s)
{
    return s != NULL ? s : "";
}

static const Swarmc__Resources *task_reservations(const Swarmc__Task *t)
{
    if (t->spec == NULL || t->spec->resources == NULL)
        return NULL;
    return t->spec->resources->reservations;
}

int64_t sched__task_cpu(const Swarmc__Task *t)
{
    const Swarmc__Resources *r = task_reservations(t);
    return r != NULL ? r->nano_cpus : 0;
}

int64_t sched__task_mem(const Swarmc__Task *t)
{
    const Swarmc__Resources *r = task_reservations(t);
    return r != NULL ? r->memory_bytes : 0;
}

/* FNV-1a: ids are random, any decent mix will do. */
static uint64_t hash_id(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

long sched__nodeset_find(const struct sched__nodeset *ns, const char *id)
{
    if (id == NULL || ns->slots == NULL)
        return -1;
    for (size_t i = hash_id(id) & ns->mask;; i = (i + 1) & ns->mask) {
        uint32_t v = ns->slots[i];
        if (v == 0)
            return -1;
        if (strcmp(sched__str(ns->nodes[v - 1].node->id), id) == 0)
            return (long)v - 1;
    }
}

static void index_insert(struct sched__nodeset *ns, uint32_t node)
{
    const char *id = sched__str(ns->nodes[node].node->id);
    if (sched__nodeset_find(ns, id) >= 0)
        return; /* duplicate id: the first node wins */
    size_t i = hash_id(id) & ns->mask;
    while (ns->slots[i] != 0)
        i = (i + 1) & ns->mask;
    ns->slots[i] = node + 1;
}

static bool node_ready(const Swarmc__Node *n)
{
    Swarmc__NodeAvailability avail = n->spec != NULL
                                         ? n->spec->availability
                                         : SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
    return n->status != NULL && n->status->state == SWARMC__NODE_STATE__NODE_STATE_READY &&
           avail == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
}

static int cmp_node_id(const void *a, const void *b)
{
    const struct sched__node *x = *(struct sched__node *const *)a;
    const struct sched__node *y = *(struct sched__node *const *)b;
    return strcmp(sched__str(x->node->id), sched__str(y->node->id));
}

/* Ranks nodes by id so that ties between equally loaded nodes always break
 * the same way, whatever order the caller listed them in. */
static int rank_nodes(struct sched__nodeset *ns)
{
    struct sched__node **by_id = swm_malloc((ns->n ? ns->n : 1) * sizeof(*by_id));
    if (by_id == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < ns->n; i++)
        by_id[i] = &ns->nodes[i];
    swm_sort(by_id, ns->n, sizeof(*by_id), cmp_node_id);
    for (size_t i = 0; i < ns->n; i++)
        by_id[i]->rank = (uint32_t)i;
    swm_free(by_id);
    return 0;
}

static int build_nodes(struct sched__nodeset *ns, Swarmc__Node *const *nodes, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ns->nodes = swm_calloc(n ? n : 1, sizeof(*ns->nodes));
    ns->slots = swm_calloc(cap, sizeof(*ns->slots));
    if (ns->nodes == NULL || ns->slots == NULL)
        return -ENOMEM;
    ns->mask = cap - 1;
    ns->n = n;
    for (size_t i = 0; i < n; i++) {
        struct sched__node *sn = &ns->nodes[i];
        const Swarmc__NodeDescription *d = nodes[i]->description;
        sn->node = nodes[i];
        sn->ready = node_ready(nodes[i]);
        sn->cpu = d != NULL && d->resources != NULL ? d->resources->nano_cpus : 0;
        sn->mem = d != NULL && d->resources != NULL ? d->resources->memory_bytes : 0;
        index_insert(ns, (uint32_t)i);
    }
    return rank_nodes(ns);
}

static Swarmc__TaskState task_state(const Swarmc__Task *t)
{
    return t->status != NULL ? t->status->state : SWARMC__TASK_STATE__TASK_STATE_NEW;
}

/* SwarmKit counts a task against its node from ASSIGNED (the scheduler's own
 * decision) until it stops running; PENDING tasks with a node are
 * preassigned and only count once confirmed. */
static bool holds_resources(const Swarmc__Task *t)
{
    Swarmc__TaskState s = task_state(t);
    return s >= SWARMC__TASK_STATE__TASK_STATE_ASSIGNED &&
           s <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
}

static bool recent_failure(const Swarmc__Task *t, int64_t now_ns)
{
    Swarmc__TaskState s = task_state(t);
    if (s != SWARMC__TASK_STATE__TASK_STATE_FAILED && s != SWARMC__TASK_STATE__TASK_STATE_REJECTED)
        return false;
    return t->status->timestamp > now_ns - SCHED_FAILURE_WINDOW_NS;
}

static void count_task(struct sched__nodeset *ns, const Swarmc__Task *t, int64_t now_ns)
{
    long node = sched__nodeset_find(ns, t->node_id);
    if (node < 0)
        return;
    if (recent_failure(t, now_ns)) {
        ns->fails[ns->n_fails++] =
            (struct sched__load){sched__str(t->service_id), t->spec_version, (uint32_t)node};
        return;
    }
    if (!holds_resources(t))
        return;
    struct sched__node *sn = &ns->nodes[node];
    sn->cpu -= sched__task_cpu(t);
    sn->mem -= sched__task_mem(t);
    if (t->desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
        sn->active++;
        ns->active[ns->n_active++] =
            (struct sched__load){sched__str(t->service_id), 0, (uint32_t)node};
    }
}

static int cmp_load(const void *a, const void *b)
{
    const struct sched__load *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    if (c != 0)
        return c;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return x->node < y->node ? -1 : x->node > y->node;
}

int sched__nodeset_build(struct sched__nodeset *ns, Swarmc__Node *const *nodes, size_t n_nodes,
                         Swarmc__Task *const *tasks, size_t n_tasks, size_t extra, int64_t now_ns)
{
    memset(ns, 0, sizeof(*ns));
    ns->cap_active = n_tasks + extra;
    ns->active = swm_malloc((ns->cap_active ? ns->cap_active : 1) * sizeof(*ns->active));
    ns->fails = swm_malloc((n_tasks ? n_tasks : 1) * sizeof(*ns->fails));
    if (ns->active == NULL || ns->fails == NULL || build_nodes(ns, nodes, n_nodes) < 0) {
        sched__nodeset_free(ns);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_tasks; i++)
        count_task(ns, tasks[i], now_ns);
    sched__nodeset_sort_active(ns);
    swm_sort(ns->fails, ns->n_fails, sizeof(*ns->fails), cmp_load);
    return 0;
}

void sched__nodeset_free(struct sched__nodeset *ns)
{
    swm_free(ns->nodes);
    swm_free(ns->slots);
    swm_free(ns->active);
    swm_free(ns->fails);
    memset(ns, 0, sizeof(*ns));
}

void sched__nodeset_take(struct sched__nodeset *ns, uint32_t node, const Swarmc__Task *t)
{
    struct sched__node *sn = &ns->nodes[node];
    sn->cpu -= sched__task_cpu(t);
    sn->mem -= sched__task_mem(t);
    sn->active++;
}

void sched__nodeset_add_active(struct sched__nodeset *ns, const char *service, uint32_t node)
{
    if (ns->n_active < ns->cap_active)
        ns->active[ns->n_active++] = (struct sched__load){service, 0, node};
}

void sched__nodeset_sort_active(struct sched__nodeset *ns)
{
    swm_sort(ns->active, ns->n_active, sizeof(*ns->active), cmp_load);
}

/* First index in [0, n) whose entry is not below key (by cmp_load, or by
 * service alone when by_service). */
static size_t lower_bound(const struct sched__load *v, size_t n, const struct sched__load *key,
                          bool upper, bool by_service)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid].service, key->service);
        if (c == 0 && !by_service && v[mid].version != key->version)
            c = v[mid].version < key->version ? -1 : 1;
        if (c < 0 || (upper && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void sched__nodeset_service_range(const struct sched__nodeset *ns, const char *service, size_t *lo,
                                  size_t *hi)
{
    struct sched__load key = {service, 0, 0};
    *lo = lower_bound(ns->active, ns->n_active, &key, false, true);
    *hi = lower_bound(ns->active, ns->n_active, &key, true, true);
}

void sched__nodeset_fail_range(const struct sched__nodeset *ns, const char *service,
                               uint64_t version, size_t *lo, size_t *hi)
{
    struct sched__load key = {service, version, 0};
    *lo = lower_bound(ns->fails, ns->n_fails, &key, false, false);
    *hi = lower_bound(ns->fails, ns->n_fails, &key, true, false);
}
