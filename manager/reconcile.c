/* One reconcile pass: orchestrators, allocator, scheduler, in that order
 * (DESIGN.md §4 step 3), over one snapshot, producing one store entry. */
#include "common/alloc.h"
#include "common/log.h"
#include "manager/internal.h"
#include "manager/orchestrator/orchestrator.h"
#include "manager/scheduler/scheduler.h"
#include "manager/view.h"

#include <errno.h>
#include <string.h>

static int set_status(Swarmc__Task *t, Swarmc__TaskState state, const char *message,
                      const char *err, int64_t now_ns)
{
    if (t->status == NULL) {
        t->status = swm_malloc(sizeof(*t->status));
        if (t->status == NULL)
            return -ENOMEM;
        swarmc__task_status__init(t->status);
    }
    char *msg = swm_strdup(message);
    char *e = swm_strdup(err != NULL ? err : "");
    if (msg == NULL || e == NULL) {
        swm_free(msg);
        swm_free(e);
        return -ENOMEM;
    }
    swm_free(t->status->message);
    swm_free(t->status->err);
    t->status->message = msg;
    t->status->err = e;
    t->status->has_state = t->status->has_timestamp = 1;
    t->status->state = state;
    t->status->timestamp = now_ns;
    return 0;
}

static int task_state(const Swarmc__Task *t)
{
    return t->status != NULL ? (int)t->status->state : 0;
}

static int wants_to_run(const Swarmc__Task *t)
{
    return t->desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
}

/* The allocator: nothing to allocate until overlay networks exist (a later
 * issue), so it only moves new tasks on to the scheduler, as SwarmKit's
 * allocator does once a task's resources are allocated. */
static int allocate(struct manager_view *v, int64_t now_ns)
{
    for (size_t i = 0; i < v->n_tasks; i++) {
        Swarmc__Task *t = v->tasks[i];
        if (v->changes[i] == VIEW_DELETE || task_state(t) != SWARMC__TASK_STATE__TASK_STATE_NEW ||
            !wants_to_run(t))
            continue;
        int rc = set_status(t, SWARMC__TASK_STATE__TASK_STATE_PENDING, "pending task scheduling",
                            NULL, now_ns);
        if (rc < 0)
            return rc;
        manager_view_touch(v, t->id);
    }
    return 0;
}

static int apply_decision(struct manager_view *v, const struct sched_decision *d, int64_t now_ns)
{
    Swarmc__Task *t = manager_view_task(v, d->task->id);
    if (t == NULL || !d->changed)
        return 0;
    int rc;
    if (d->node != NULL) {
        char *node_id = swm_strdup(d->node->id);
        if (node_id == NULL)
            return -ENOMEM;
        swm_free(t->node_id);
        t->node_id = node_id;
        rc = set_status(t, SWARMC__TASK_STATE__TASK_STATE_ASSIGNED, d->message, NULL, now_ns);
    } else {
        rc = set_status(t, SWARMC__TASK_STATE__TASK_STATE_PENDING, "pending task scheduling",
                        d->message, now_ns);
    }
    if (rc == 0)
        manager_view_touch(v, t->id);
    return rc;
}

static int schedule(struct manager_view *v, int64_t now_ns, struct swm_err *err)
{
    Swarmc__Task **pending = swm_calloc(v->n_tasks + 1, sizeof(*pending));
    Swarmc__Task **live = swm_calloc(v->n_tasks + 1, sizeof(*live));
    if (pending == NULL || live == NULL) {
        swm_free(pending);
        swm_free(live);
        return swm_err_set(err, -ENOMEM, "out of memory");
    }
    size_t n_pending = 0, n_live = 0;
    for (size_t i = 0; i < v->n_tasks; i++) {
        if (v->changes[i] == VIEW_DELETE)
            continue;
        live[n_live++] = v->tasks[i];
        if (task_state(v->tasks[i]) == SWARMC__TASK_STATE__TASK_STATE_PENDING &&
            wants_to_run(v->tasks[i]))
            pending[n_pending++] = v->tasks[i];
    }
    struct sched_result result = {0};
    int rc = n_pending == 0 ? 0
                            : sched_run(v->nodes, v->n_nodes, live, n_live, pending, n_pending,
                                        now_ns, &result, err);
    for (size_t i = 0; rc == 0 && i < result.n; i++)
        rc = apply_decision(v, &result.decisions[i], now_ns);
    if (rc < 0 && err->code == 0)
        swm_err_set(err, rc, "scheduling: %s", swm_strerror(rc));
    sched_result_free(&result);
    swm_free(pending);
    swm_free(live);
    return rc;
}

int manager__reconcile(struct store *s, int64_t now_ns, Swarmc__StoreEntry **entry,
                       int64_t *wakeup_ns, struct swm_err *err)
{
    struct manager_view v;
    *entry = NULL;
    *wakeup_ns = 0;
    int rc = manager_view_load(s, &v, err);
    if (rc == 0 && v.cluster == NULL) {
        manager_view_free(&v);
        return 0; /* not bootstrapped yet */
    }
    if (rc == 0)
        rc = manager__orchestrate(&v, now_ns, wakeup_ns, err);
    if (rc == 0 && (rc = allocate(&v, now_ns)) < 0)
        swm_err_set(err, rc, "allocating: %s", swm_strerror(rc));
    if (rc == 0)
        rc = schedule(&v, now_ns, err);
    if (rc == 0 && (rc = manager_view_take_entry(&v, entry)) < 0)
        swm_err_set(err, rc, "building the entry: %s", swm_strerror(rc));
    manager_view_free(&v);
    return rc;
}
