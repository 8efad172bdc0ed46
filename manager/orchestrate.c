/* The orchestrators' part of a reconcile pass: each service's plan (and its
 * reaper's) applied to the view, so the allocator and scheduler see the
 * tasks the orchestrators just made. */
#include "common/alloc.h"
#include "common/log.h"
#include "manager/internal.h"
#include "manager/orchestrator/orchestrator.h"
#include "manager/view.h"

#include <errno.h>
#include <string.h>

/* The view's live tasks of one service (borrowed pointers). */
static int collect_tasks(const struct manager_view *v, const char *service_id, Swarmc__Task ***out,
                         size_t *n)
{
    Swarmc__Task **tasks = swm_calloc(v->n_tasks + 1, sizeof(*tasks));
    if (tasks == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < v->n_tasks; i++) {
        const char *sid = v->tasks[i]->service_id != NULL ? v->tasks[i]->service_id : "";
        if (v->changes[i] != VIEW_DELETE && strcmp(sid, service_id) == 0)
            tasks[k++] = v->tasks[i];
    }
    *out = tasks;
    *n = k;
    return 0;
}

/* Moves everything the plan decided into the view (stealing its objects). */
static int apply_plan(struct manager_view *v, struct orch_plan *plan, int64_t *wakeup_ns)
{
    int rc = 0;
    for (size_t i = 0; i < plan->n_creates && rc == 0; i++) {
        rc = manager_view_put(v, plan->creates[i], 1);
        plan->creates[i] = NULL;
    }
    for (size_t i = 0; i < plan->n_updates && rc == 0; i++) {
        rc = manager_view_put(v, plan->updates[i], 0);
        plan->updates[i] = NULL;
    }
    for (size_t i = 0; i < plan->n_deletes && rc == 0; i++)
        manager_view_delete(v, plan->deletes[i]);
    if (rc == 0 && plan->service != NULL) {
        rc = manager_view_put_service(v, plan->service);
        plan->service = NULL;
    }
    if (plan->next_wakeup_ns > 0 && (*wakeup_ns == 0 || plan->next_wakeup_ns < *wakeup_ns))
        *wakeup_ns = plan->next_wakeup_ns;
    return rc;
}

/* Runs fn's decision for one service (NULL: its tasks are orphans of a
 * removed service), then the reaper over the result. */
static int orchestrate_service(struct manager_view *v, const Swarmc__Service *svc,
                               const char *service_id, int64_t history_limit, int64_t now_ns,
                               int64_t *wakeup_ns, struct swm_err *err)
{
    struct orch_plan plan;
    Swarmc__Task **tasks = NULL;
    size_t n = 0;
    orch_plan_init(&plan);
    int rc = collect_tasks(v, service_id, &tasks, &n);
    if (rc == 0 && svc != NULL)
        rc = orch_reconcile(svc, tasks, n, v->nodes, v->n_nodes, now_ns, &plan, err);
    else if (rc == 0)
        rc = orch_service_removed(tasks, n, now_ns, &plan, err);
    if (rc == 0)
        rc = apply_plan(v, &plan, wakeup_ns);
    orch_plan_free(&plan);
    swm_free(tasks);
    if (rc == 0)
        rc = collect_tasks(v, service_id, &tasks, &n);
    if (rc == 0)
        rc = orch_reap(svc, tasks, n, history_limit, &plan, err);
    if (rc == 0)
        rc = apply_plan(v, &plan, wakeup_ns);
    orch_plan_free(&plan);
    swm_free(tasks);
    if (rc < 0 && err->code == 0)
        swm_err_set(err, rc, "orchestrating service %s: %s", service_id, swm_strerror(rc));
    return rc;
}

static int is_known_service(const struct manager_view *v, const char *id)
{
    for (size_t i = 0; i < v->n_services; i++) {
        if (strcmp(v->services[i]->id, id) == 0)
            return 1;
    }
    return 0;
}

int manager__orchestrate(struct manager_view *v, int64_t now_ns, int64_t *wakeup_ns,
                         struct swm_err *err)
{
    int64_t history = orch_task_history_limit(v->cluster);
    int rc = 0;
    for (size_t i = 0; i < v->n_services && rc == 0; i++) {
        struct swm_err serr = {0};
        rc = orchestrate_service(v, v->services[i], v->services[i]->id, history, now_ns, wakeup_ns,
                                 &serr);
        /* A service whose spec the orchestrator rejects must not stall the
         * others: log it and go on. */
        if (rc == SWM_EINVAL_SPEC) {
            swm_log_warn("manager: service %s not reconciled: %s", v->services[i]->id, serr.msg);
            rc = 0;
        } else if (rc < 0) {
            *err = serr;
        }
    }
    /* Tasks of removed services, one service id at a time. */
    for (size_t i = 0; i < v->n_tasks && rc == 0; i++) {
        const char *sid = v->tasks[i]->service_id;
        if (v->changes[i] == VIEW_DELETE || sid == NULL || is_known_service(v, sid))
            continue;
        char id[64];
        snprintf(id, sizeof(id), "%s", sid);
        rc = orchestrate_service(v, NULL, id, history, now_ns, wakeup_ns, err);
    }
    return rc;
}
