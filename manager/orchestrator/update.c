/* The update supervisor (SwarmKit's manager/orchestrator/update), stateless:
 * SwarmKit runs `parallelism` workers that each replace a slot, wait for the
 * new task to run, sleep `delay`, and take the next slot. Here each pass
 * counts the workers still busy from the stored tasks (a new task of this
 * update not yet RUNNING, or RUNNING for less than `delay`) and starts that
 * many fewer slots.
 *
 * Left for the rolling-update issue: SwarmKit's monitor only counts a
 * failure within `monitor` of the task starting (here: any failure of a task
 * of this update, from its start until it completes); the failure ratio's
 * denominator is every slot of the service, not the slots dirty at the start;
 * a PAUSED update stays paused until the control API clears update_status
 * on the next spec change (as SwarmKit's UpdateService does). */
#include "manager/orchestrator/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

struct update_config {
    uint64_t parallelism; /* 0 = all at once */
    int64_t delay;
    int64_t monitor;
    Swarmc__UpdateConfig__FailureAction action;
    float max_failure_ratio;
    bool start_first;
};

static struct update_config config_of(const Swarmc__UpdateConfig *uc)
{
    struct update_config c = {.parallelism = 1, .monitor = ORCH_DEFAULT_MONITOR_NS};
    if (uc == NULL)
        return c;
    if (uc->has_parallelism)
        c.parallelism = uc->parallelism;
    c.delay = uc->delay;
    if (uc->has_monitor)
        c.monitor = uc->monitor;
    c.action = uc->failure_action;
    c.max_failure_ratio = uc->max_failure_ratio;
    c.start_first = uc->order == SWARMC__UPDATE_CONFIG__ORDER__ORDER_START_FIRST;
    return c;
}

enum slot_update { UP_TO_DATE, DIRTY, IN_PROGRESS };

/* What the pass knows about the update. */
struct update_scan {
    Swarmc__UpdateStatus__State state;
    bool rollback;   /* ROLLBACK_STARTED: walking back with rollback_config */
    bool updating;   /* UPDATING or ROLLBACK_STARTED */
    int64_t started; /* this update's start (now if it starts in this pass) */
    struct update_config cfg;
    size_t n_inst; /* instances that existed before the pass's updates */
    size_t n_kept; /* of which the update walks: the failure ratio's base */
    size_t dirty, busy;
    int64_t last_running; /* latest start of a task of this update */
    size_t failures;
    const char *failed_id;
};

/* The slot's tasks: the runnable ones on the old spec, the newest runnable
 * one on the new spec. */
struct slot_tasks {
    bool has_old;
    long cur;
};

static int slot_tasks(struct orch__ctx *ctx, size_t inst, struct slot_tasks *st)
{
    const struct orch__instance *in = &ctx->inst[inst];
    *st = (struct slot_tasks){.cur = -1};
    for (size_t k = 0; k < in->n; k++) {
        size_t i = in->tasks[k];
        if (ctx->tasks[i].dropped || !orch__runnable(orch__cur(ctx, i)))
            continue;
        int outdated = orch__outdated(ctx, i);
        if (outdated < 0)
            return outdated;
        if (outdated)
            st->has_old = true;
        else
            st->cur = (long)i;
    }
    return 0;
}

/* A task of this update that stopped running early (SwarmKit counts any
 * stop, clean or not, of a task it is monitoring). */
static int count_failures(struct orch__ctx *ctx, size_t inst, struct update_scan *s)
{
    const struct orch__instance *in = &ctx->inst[inst];
    for (size_t k = 0; s->updating && k < in->n; k++) {
        size_t i = in->tasks[k];
        const Swarmc__Task *t = orch__cur(ctx, i);
        Swarmc__TaskState st = orch__state(t);
        if (orch__created(t) < s->started || orch__ts(t) < s->started ||
            (st != SWARMC__TASK_STATE__TASK_STATE_COMPLETE &&
             st != SWARMC__TASK_STATE__TASK_STATE_FAILED &&
             st != SWARMC__TASK_STATE__TASK_STATE_REJECTED))
            continue;
        int outdated = orch__outdated(ctx, i);
        if (outdated < 0)
            return outdated;
        if (!outdated && s->failures++ == 0)
            s->failed_id = orch__str(t->id);
    }
    return 0;
}

/* Stops the slot's runnable tasks on the old spec: a stop-first slot about to
 * get its new task, or a start-first slot whose new task runs. */
static int stop_outdated(struct orch__ctx *ctx, size_t inst)
{
    const struct orch__instance *in = &ctx->inst[inst];
    for (size_t k = 0; k < in->n; k++) {
        size_t i = in->tasks[k];
        if (ctx->tasks[i].dropped || !orch__runnable(orch__cur(ctx, i)))
            continue;
        int outdated = orch__outdated(ctx, i);
        if (outdated < 0)
            return outdated;
        if (outdated && orch__set_desired(ctx, i, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* The slot's last task stopped for good (orch__occupancy's DONE): it is
 * still replaced when its spec is outdated (SwarmKit's
 * UpdatableTasksInSlot). */
static int done_slot_outdated(struct orch__ctx *ctx, size_t inst)
{
    long newest = orch__newest(ctx, inst);
    return newest < 0 ? 0 : orch__outdated(ctx, (size_t)newest);
}

static int classify(struct orch__ctx *ctx, size_t inst, struct update_scan *s,
                    enum slot_update *out)
{
    struct slot_tasks st;
    int rc = slot_tasks(ctx, inst, &st);
    if (rc == 0)
        rc = count_failures(ctx, inst, s);
    if (rc < 0)
        return rc;
    *out = UP_TO_DATE;
    if (st.cur < 0) {
        int dirty = st.has_old ? 1 : done_slot_outdated(ctx, inst);
        *out = dirty > 0 ? DIRTY : UP_TO_DATE;
        return dirty < 0 ? dirty : 0;
    }
    const Swarmc__Task *cur = orch__cur(ctx, (size_t)st.cur);
    bool running = orch__state(cur) == SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    if (running && st.has_old && (rc = stop_outdated(ctx, inst)) < 0)
        return rc;
    /* Tasks made in this very pass (new slots, restarts) hold no worker. */
    if (!s->updating || orch__created(cur) < s->started || ctx->tasks[st.cur].orig == NULL)
        return 0;
    if (!running) {
        *out = IN_PROGRESS;
    } else {
        /* The worker that started this slot sleeps `delay` before the next. */
        if (orch__ts(cur) + s->cfg.delay > ctx->now) {
            s->busy++;
            orch__wake(ctx, orch__ts(cur) + s->cfg.delay);
        }
        if (orch__ts(cur) > s->last_running)
            s->last_running = orch__ts(cur);
    }
    return 0;
}

/* ------------------------------------------------------ update status */

/* Sets the service's update status; takes ownership of msg (NULL = ENOMEM). */
static int set_status(struct orch__ctx *ctx, Swarmc__UpdateStatus__State state, char *msg)
{
    Swarmc__Service *svc = orch__edit_service(ctx);
    if (svc == NULL || msg == NULL) {
        swm_free(msg);
        return -ENOMEM;
    }
    Swarmc__UpdateStatus *us = svc->update_status;
    swm_free(us->message);
    us->message = msg;
    us->has_state = 1;
    us->state = state;
    if (state == SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UPDATING ||
        state == SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_STARTED) {
        us->has_started_at = 1;
        us->started_at = ctx->now;
        us->has_completed_at = 0;
        us->completed_at = 0;
    } else if (state == SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_COMPLETED ||
               state == SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_COMPLETED) {
        us->has_completed_at = 1;
        us->completed_at = ctx->now;
    }
    return 0;
}

/* failure_action rollback: the service goes back to its previous spec (a new
 * spec_version, so its tasks are updated again), as SwarmKit's
 * rollbackUpdate; without a previous spec the update pauses instead. */
static int roll_back(struct orch__ctx *ctx, const char *task_id)
{
    Swarmc__Service *svc = orch__edit_service(ctx);
    if (svc == NULL)
        return -ENOMEM;
    proto_free(svc->spec);
    svc->spec = svc->previous_spec;
    svc->previous_spec = NULL;
    svc->has_spec_version = 1;
    svc->spec_version++;
    return set_status(
        ctx, SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_STARTED,
        swm_asprintf("update rolled back due to failure or early termination of task %s", task_id));
}

/* Applies failure_action once too many of this update's tasks failed.
 * Returns 1 if the update must not go on in this pass. */
static int on_failures(struct orch__ctx *ctx, const struct update_scan *s)
{
    if (s->failures == 0 ||
        (double)s->failures / (double)(s->n_kept ? s->n_kept : 1) <= s->cfg.max_failure_ratio ||
        s->cfg.action == SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_CONTINUE)
        return 0;
    int rc;
    if (s->cfg.action == SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_ROLLBACK &&
        !s->rollback && ctx->svc->previous_spec != NULL)
        rc = roll_back(ctx, s->failed_id);
    else if (s->rollback)
        rc = set_status(
            ctx, SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_PAUSED,
            swm_asprintf("rollback paused due to failure or early termination of task %s",
                         s->failed_id));
    else
        rc = set_status(ctx, SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_PAUSED,
                        swm_asprintf("update paused due to failure or early termination of task %s",
                                     s->failed_id));
    return rc < 0 ? rc : 1;
}

/* Nothing left to replace: done once the last new task has run for the
 * monitor period without failing. */
static int maybe_complete(struct orch__ctx *ctx, const struct update_scan *s)
{
    if (s->last_running != 0 && ctx->now < s->last_running + s->cfg.monitor) {
        orch__wake(ctx, s->last_running + s->cfg.monitor);
        return 0;
    }
    if (s->rollback)
        return set_status(ctx, SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_COMPLETED,
                          swm_strdup("rollback completed"));
    return set_status(ctx, SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_COMPLETED,
                      swm_strdup("update completed"));
}

/* ------------------------------------------------------------ the walk */

static int update_slot(struct orch__ctx *ctx, size_t inst, const struct update_config *cfg)
{
    struct slot_tasks st;
    int rc = slot_tasks(ctx, inst, &st);
    if (rc < 0)
        return rc;
    /* start-first: the new task runs beside the old until it is RUNNING.
     * stop-first: the old tasks stop and the new one waits in READY for them
     * (orch__promote). A slot without runnable tasks just gets its task. */
    if (cfg->start_first || !st.has_old)
        return orch__create(ctx, inst, SWARMC__TASK_STATE__TASK_STATE_RUNNING) < 0 ? -ENOMEM : 0;
    if (stop_outdated(ctx, inst) < 0)
        return -ENOMEM;
    return orch__create(ctx, inst, SWARMC__TASK_STATE__TASK_STATE_READY) < 0 ? -ENOMEM : 0;
}

static void scan_init(const struct orch__ctx *ctx, struct update_scan *s)
{
    const Swarmc__UpdateStatus *us = ctx->svc->update_status;
    const Swarmc__ServiceSpec *spec = ctx->svc->spec;
    memset(s, 0, sizeof(*s));
    s->state = us != NULL ? us->state : SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UNKNOWN;
    s->rollback = s->state == SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_STARTED;
    s->updating = s->rollback || s->state == SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UPDATING;
    s->started = s->updating ? us->started_at : ctx->now;
    s->cfg = config_of(spec == NULL ? NULL : s->rollback ? spec->rollback : spec->update);
}

static bool paused(const struct update_scan *s)
{
    return s->state == SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_PAUSED ||
           s->state == SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_PAUSED;
}

static int start_slots(struct orch__ctx *ctx, struct update_scan *s, const enum slot_update *cls)
{
    uint64_t free = s->cfg.parallelism == 0        ? UINT64_MAX
                    : s->cfg.parallelism > s->busy ? s->cfg.parallelism - s->busy
                                                   : 0;
    for (size_t i = 0; free > 0 && i < s->n_inst; i++) {
        if (cls[i] != DIRTY)
            continue;
        int rc = update_slot(ctx, i, &s->cfg);
        if (rc < 0)
            return rc;
        free--;
    }
    return 0;
}

static int walk(struct orch__ctx *ctx, struct update_scan *s, enum slot_update *cls)
{
    for (size_t i = 0; i < s->n_inst; i++) {
        cls[i] = UP_TO_DATE;
        s->n_kept += ctx->inst[i].kept;
        int rc = ctx->inst[i].kept ? classify(ctx, i, s, &cls[i]) : 0;
        if (rc < 0)
            return rc;
        s->dirty += cls[i] == DIRTY;
        s->busy += cls[i] == IN_PROGRESS;
    }
    int rc = s->updating ? on_failures(ctx, s) : 0;
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (s->dirty == 0 && s->busy == 0)
        return s->updating ? maybe_complete(ctx, s) : 0;
    if (s->dirty > 0 && !s->updating &&
        (rc = set_status(ctx, SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UPDATING,
                         swm_strdup("update in progress"))) < 0)
        return rc;
    return start_slots(ctx, s, cls);
}

int orch__update(struct orch__ctx *ctx)
{
    struct update_scan s;
    scan_init(ctx, &s);
    if (paused(&s))
        return 0;
    /* Instances added later in the pass (by update_slot) are not walked. */
    s.n_inst = ctx->n_inst;
    enum slot_update *cls = swm_malloc((s.n_inst ? s.n_inst : 1) * sizeof(*cls));
    if (cls == NULL)
        return -ENOMEM;
    int rc = walk(ctx, &s, cls);
    swm_free(cls);
    return rc;
}
