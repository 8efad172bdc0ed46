/* The task reaper (SwarmKit's manager/orchestrator/taskreaper) and service
 * removal: what leaves the store, and when. */
#include "manager/orchestrator/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/sort.h"

int64_t orch_task_history_limit(const Swarmc__Cluster *cluster)
{
    if (cluster != NULL && cluster->spec != NULL && cluster->spec->has_task_history_retention_limit)
        return cluster->spec->task_history_retention_limit;
    return ORCH_DEFAULT_HISTORY_LIMIT;
}

int orch_service_removed(Swarmc__Task *const *tasks, size_t n_tasks, int64_t now_ns,
                         struct orch_plan *plan, struct swm_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i < n_tasks; i++)
        n += tasks[i]->desired_state < SWARMC__TASK_STATE__TASK_STATE_REMOVE;
    if (orch__plan_reserve(plan, 0, n, 0) < 0)
        return swm_err_set(err, -ENOMEM, "orchestrator: out of memory removing tasks");
    Swarmc__Task **out = plan->updates + plan->n_updates;
    size_t made = 0;
    for (size_t i = 0; i < n_tasks; i++) {
        if (tasks[i]->desired_state >= SWARMC__TASK_STATE__TASK_STATE_REMOVE)
            continue;
        if ((out[made] = proto_clone(tasks[i])) == NULL) {
            while (made > 0)
                proto_free(out[--made]);
            return swm_err_set(err, -ENOMEM, "orchestrator: out of memory removing tasks");
        }
        out[made]->has_desired_state = 1;
        out[made]->desired_state = SWARMC__TASK_STATE__TASK_STATE_REMOVE;
        if (out[made]->meta != NULL) {
            out[made]->meta->has_updated_at = 1;
            out[made]->meta->updated_at = now_ns;
        }
        made++;
    }
    plan->n_updates += made;
    return 0;
}

/* ------------------------------------------------------------------ reap */

/* Stopped, or never given to a node: nothing runs it, nothing will. */
static bool at_rest(const Swarmc__Task *t)
{
    Swarmc__TaskState s = orch__state(t);
    return s < SWARMC__TASK_STATE__TASK_STATE_ASSIGNED ||
           s >= SWARMC__TASK_STATE__TASK_STATE_COMPLETE;
}

static bool deletable(const Swarmc__Task *t)
{
    return !orch__runnable(t) && at_rest(t);
}

struct entry {
    const Swarmc__Task *t;
    size_t i;
};

static int cmp_age(const Swarmc__Task *x, const Swarmc__Task *y, bool global)
{
    int c = global ? strcmp(orch__str(x->node_id), orch__str(y->node_id))
                   : (x->slot < y->slot ? -1 : x->slot > y->slot);
    if (c == 0 && orch__created(x) != orch__created(y))
        c = orch__created(x) < orch__created(y) ? -1 : 1;
    return c != 0 ? c : strcmp(orch__str(x->id), orch__str(y->id));
}

/* By instance (slot, or node for global services), then oldest first. */
static int cmp_slot_age(const void *a, const void *b)
{
    return cmp_age(((const struct entry *)a)->t, ((const struct entry *)b)->t, false);
}

static int cmp_node_age(const void *a, const void *b)
{
    return cmp_age(((const struct entry *)a)->t, ((const struct entry *)b)->t, true);
}

/* SwarmKit's tasksByTimestamp: the oldest status change goes first. */
static int cmp_status_age(const void *a, const void *b)
{
    const Swarmc__Task *x = ((const struct entry *)a)->t, *y = ((const struct entry *)b)->t;
    if (orch__ts(x) != orch__ts(y))
        return orch__ts(x) < orch__ts(y) ? -1 : 1;
    return strcmp(orch__str(x->id), orch__str(y->id));
}

static bool same_instance(const Swarmc__Task *x, const Swarmc__Task *y, bool global)
{
    return global ? strcmp(orch__str(x->node_id), orch__str(y->node_id)) == 0 : x->slot == y->slot;
}

/* Restart decisions count a slot's tasks of its current spec version
 * (orch__should_restart), so with a max_attempts limit the newest
 * max_attempts + 1 of them are kept whatever the history limit. */
static void protect(const struct entry *e, size_t n, bool *keep)
{
    const Swarmc__Task *newest = e[n - 1].t;
    const Swarmc__RestartPolicy *rp = newest->spec != NULL ? newest->spec->restart : NULL;
    uint64_t left = rp != NULL && rp->max_attempts > 0 ? rp->max_attempts + 1 : 1;
    for (size_t k = n; k-- > 0 && left > 0;) {
        if (e[k].t->spec_version != newest->spec_version ||
            e[k].t->desired_state == SWARMC__TASK_STATE__TASK_STATE_REMOVE)
            continue;
        keep[e[k].i] = true;
        left--;
    }
    keep[e[n - 1].i] = true;
}

/* Deletes the oldest deletable tasks of one instance until it has at most
 * limit left. e[0..n) is the instance, oldest created first. */
static int trim(const struct entry *e, size_t n, int64_t limit, bool *del, bool *keep)
{
    size_t left = 0;
    for (size_t k = 0; k < n; k++)
        left += !del[e[k].i];
    if ((int64_t)left <= limit)
        return 0;
    struct entry *by_status = swm_malloc(n * sizeof(*by_status));
    if (by_status == NULL)
        return -ENOMEM;
    memcpy(by_status, e, n * sizeof(*e));
    swm_sort(by_status, n, sizeof(*by_status), cmp_status_age);
    protect(e, n, keep);
    for (size_t k = 0; k < n && (int64_t)left > limit; k++) {
        size_t i = by_status[k].i;
        if (del[i] || keep[i] || !deletable(by_status[k].t))
            continue;
        del[i] = true;
        left--;
    }
    swm_free(by_status);
    return 0;
}

/* One slot or node: a removed slot's leftovers all go; otherwise the
 * history is trimmed. */
static int reap_instance(const struct entry *e, size_t n, int64_t limit, bool *del, bool *keep)
{
    if (e[n - 1].t->desired_state == SWARMC__TASK_STATE__TASK_STATE_REMOVE) {
        for (size_t k = 0; k < n; k++)
            del[e[k].i] |= deletable(e[k].t);
        return 0;
    }
    return limit >= 0 ? trim(e, n, limit, del, keep) : 0;
}

static int reap_history(const Swarmc__Service *svc, Swarmc__Task *const *tasks, size_t n,
                        int64_t limit, bool *del, bool *keep)
{
    struct entry *e = swm_malloc((n ? n : 1) * sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        e[i] = (struct entry){tasks[i], i};
    bool global = svc->spec != NULL && svc->spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    swm_sort(e, n, sizeof(*e), global ? cmp_node_age : cmp_slot_age);
    int rc = 0;
    for (size_t a = 0, b; rc == 0 && a < n; a = b) {
        for (b = a + 1; b < n && same_instance(e[a].t, e[b].t, global); b++)
            ;
        rc = reap_instance(e + a, b - a, limit, del, keep);
    }
    swm_free(e);
    return rc;
}

static int commit_deletes(Swarmc__Task *const *tasks, size_t n, const bool *del,
                          struct orch_plan *plan)
{
    size_t count = 0, made = 0;
    for (size_t i = 0; i < n; i++)
        count += del[i];
    if (orch__plan_reserve(plan, 0, 0, count) < 0)
        return -ENOMEM;
    char **out = plan->deletes + plan->n_deletes;
    for (size_t i = 0; i < n; i++) {
        if (!del[i])
            continue;
        if ((out[made] = swm_strdup(orch__str(tasks[i]->id))) == NULL) {
            while (made > 0)
                swm_free(out[--made]);
            return -ENOMEM;
        }
        made++;
    }
    plan->n_deletes += made;
    return 0;
}

int orch_reap(const Swarmc__Service *service, Swarmc__Task *const *tasks, size_t n_tasks,
              int64_t history_limit, struct orch_plan *plan, struct swm_err *err)
{
    bool *del = swm_calloc(n_tasks ? n_tasks : 1, sizeof(*del));
    bool *keep = swm_calloc(n_tasks ? n_tasks : 1, sizeof(*keep));
    int rc = del != NULL && keep != NULL ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n_tasks; i++)
        del[i] =
            (service == NULL || tasks[i]->desired_state == SWARMC__TASK_STATE__TASK_STATE_REMOVE) &&
            at_rest(tasks[i]);
    if (rc == 0 && service != NULL)
        rc = reap_history(service, tasks, n_tasks, history_limit, del, keep);
    if (rc == 0)
        rc = commit_deletes(tasks, n_tasks, del, plan);
    swm_free(del);
    swm_free(keep);
    if (rc < 0)
        return swm_err_set(err, rc, "orchestrator: out of memory reaping tasks");
    return 0;
}
