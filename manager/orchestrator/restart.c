/* The restart supervisor (SwarmKit's manager/orchestrator/restart), without
 * its in-memory state: how many times a slot was restarted, and when a
 * delayed replacement may start, are read back from the slot's tasks
 * (creation times, status timestamps, spec versions), so that every pass and
 * every new leader decides the same. */
#include "manager/orchestrator/internal.h"

#include <errno.h>

/* Why a runnable task must stop (and perhaps be replaced). */
enum stop_reason {
    KEEP,
    STOPPED,      /* it is no longer running: completed, failed, rejected... */
    NODE_LOST,    /* its node is down or gone */
    NODE_DRAINED, /* its node is being drained */
};

static enum stop_reason stop_reason(const struct orch__ctx *ctx, const Swarmc__Task *t)
{
    if (!orch__runnable(t))
        return KEEP;
    if (orch__terminal(t))
        return STOPPED;
    /* A global service's nodes are judged by the global reconcile. */
    if (ctx->global || orch__str(t->node_id)[0] == '\0')
        return KEEP;
    const Swarmc__Node *n = orch__node(ctx, t->node_id);
    if (n == NULL || orch__node_down(n))
        return NODE_LOST;
    return orch__node_drain(n) ? NODE_DRAINED : KEEP;
}

static bool task_in_pass(const struct orch__ctx *ctx, size_t i)
{
    return !ctx->tasks[i].dropped;
}

long orch__newest(const struct orch__ctx *ctx, size_t inst)
{
    const struct orch__instance *in = &ctx->inst[inst];
    for (size_t k = in->n; k-- > 0;)
        if (task_in_pass(ctx, in->tasks[k]))
            return (long)in->tasks[k];
    return -1;
}

static const Swarmc__RestartPolicy *restart_policy(const Swarmc__Task *t)
{
    return t->spec != NULL ? t->spec->restart : NULL;
}

static int64_t restart_delay(const Swarmc__Task *t)
{
    const Swarmc__RestartPolicy *rp = restart_policy(t);
    return rp != NULL && rp->has_delay ? rp->delay : ORCH_DEFAULT_RESTART_DELAY_NS;
}

static bool clean_exit(const Swarmc__Task *t)
{
    const Swarmc__ContainerStatus *c = t->status != NULL ? t->status->container : NULL;
    return orch__state(t) == SWARMC__TASK_STATE__TASK_STATE_COMPLETE &&
           (c == NULL || c->exit_code == 0);
}

/* Restarts of task i's instance and spec version so far: the tasks of that
 * version created up to task i, less the first (the one that was not a
 * restart), and with a window only those created after failure - window.
 * Tasks being removed do not count. */
static uint64_t restarts_before(const struct orch__ctx *ctx, size_t inst, size_t i, int64_t window)
{
    const struct orch__instance *in = &ctx->inst[inst];
    const Swarmc__Task *t = orch__cur(ctx, i);
    int64_t since = window > 0 ? orch__ts(t) - window : INT64_MIN;
    uint64_t restarts = 0;
    bool original_seen = false;
    for (size_t k = 0; k < in->n; k++) {
        size_t j = in->tasks[k];
        const Swarmc__Task *u = orch__cur(ctx, j);
        if (ctx->tasks[j].orig == NULL || u->spec_version != t->spec_version ||
            u->desired_state == SWARMC__TASK_STATE__TASK_STATE_REMOVE)
            continue;
        if (!original_seen) {
            original_seen = true;
            continue;
        }
        if (orch__created(u) > orch__created(t))
            break;
        restarts += orch__created(u) > since;
    }
    return restarts;
}

bool orch__should_restart(const struct orch__ctx *ctx, size_t inst, size_t i)
{
    const Swarmc__Task *t = orch__cur(ctx, i);
    const Swarmc__RestartPolicy *rp = restart_policy(t);
    Swarmc__RestartPolicy__Condition cond =
        rp != NULL && rp->has_condition ? rp->condition
                                        : SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_ANY;
    if (cond == SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_NONE)
        return false;
    if (cond == SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_ON_FAILURE && clean_exit(t))
        return false;
    if (rp == NULL || rp->max_attempts == 0)
        return true;
    return restarts_before(ctx, inst, i, rp->window) < rp->max_attempts;
}

/* A task other than `except` that runs and will keep running. */
static bool has_healthy(const struct orch__ctx *ctx, size_t inst, long except)
{
    const struct orch__instance *in = &ctx->inst[inst];
    for (size_t k = 0; k < in->n; k++) {
        size_t j = in->tasks[k];
        if ((long)j != except && task_in_pass(ctx, j) && orch__runnable(orch__cur(ctx, j)) &&
            stop_reason(ctx, orch__cur(ctx, j)) == KEEP)
            return true;
    }
    return false;
}

int orch__supervise(struct orch__ctx *ctx, size_t inst)
{
    bool replace = false;
    size_t n = ctx->inst[inst].n;
    for (size_t k = 0; k < n; k++) {
        size_t i = ctx->inst[inst].tasks[k];
        if (stop_reason(ctx, orch__cur(ctx, i)) == KEEP)
            continue;
        replace |= orch__should_restart(ctx, inst, i);
        if (orch__set_desired(ctx, i, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN) < 0)
            return -ENOMEM;
    }
    /* One replacement per slot, and none while another task still serves
     * it (a start-first update's other task, for one). The replacement waits
     * in READY for its restart delay and for the old task to stop. */
    if (replace && !has_healthy(ctx, inst, -1) &&
        orch__create(ctx, inst, SWARMC__TASK_STATE__TASK_STATE_READY) < 0)
        return -ENOMEM;
    return 0;
}

/* When a READY replacement may start: restart delay after the failure it
 * replaces (the newest task of the slot that had stopped when the
 * replacement was created). No delay after a drain, as in SwarmKit; 0 when
 * the replacement follows no failure (a stop-first update). */
static int64_t start_time(const struct orch__ctx *ctx, size_t inst, size_t i)
{
    const struct orch__instance *in = &ctx->inst[inst];
    int64_t created = orch__created(orch__cur(ctx, i));
    const Swarmc__Task *failed = NULL;
    for (size_t k = 0; k < in->n; k++) {
        size_t j = in->tasks[k];
        const Swarmc__Task *u = orch__cur(ctx, j);
        if (j == i || !task_in_pass(ctx, j) || orch__runnable(u) || !orch__terminal(u) ||
            orch__ts(u) > created)
            continue;
        if (failed == NULL || orch__ts(u) > orch__ts(failed))
            failed = u;
    }
    if (failed == NULL)
        return 0;
    const Swarmc__Node *n = orch__node(ctx, failed->node_id);
    return orch__ts(failed) + (n != NULL && orch__node_drain(n) ? 0 : restart_delay(failed));
}

/* A task of the slot told to stop that still runs on a live node: the
 * replacement waits for it, so the two never run at once (SwarmKit's
 * waitStop). */
static bool old_task_stopping(const struct orch__ctx *ctx, size_t inst, size_t i)
{
    const struct orch__instance *in = &ctx->inst[inst];
    for (size_t k = 0; k < in->n; k++) {
        size_t j = in->tasks[k];
        const Swarmc__Task *u = orch__cur(ctx, j);
        Swarmc__TaskState s = orch__state(u);
        if (j == i || !task_in_pass(ctx, j) || orch__runnable(u) ||
            s < SWARMC__TASK_STATE__TASK_STATE_ASSIGNED ||
            s > SWARMC__TASK_STATE__TASK_STATE_RUNNING)
            continue;
        const Swarmc__Node *n = orch__node(ctx, u->node_id);
        if (n != NULL && !orch__node_down(n))
            return true;
    }
    return false;
}

int orch__promote(struct orch__ctx *ctx, size_t inst)
{
    for (size_t k = 0; k < ctx->inst[inst].n; k++) {
        size_t i = ctx->inst[inst].tasks[k];
        const Swarmc__Task *t = orch__cur(ctx, i);
        if (!task_in_pass(ctx, i) || t->desired_state != SWARMC__TASK_STATE__TASK_STATE_READY)
            continue;
        int64_t start = start_time(ctx, inst, i);
        int64_t timeout = orch__created(t) + ORCH_OLD_TASK_TIMEOUT_NS;
        if (ctx->now < start) {
            orch__wake(ctx, start);
            continue;
        }
        if (ctx->now < timeout && old_task_stopping(ctx, inst, i)) {
            orch__wake(ctx, timeout);
            continue;
        }
        if (orch__set_desired(ctx, i, SWARMC__TASK_STATE__TASK_STATE_RUNNING) < 0)
            return -ENOMEM;
    }
    return 0;
}

enum orch__occupancy orch__occupancy(const struct orch__ctx *ctx, size_t inst)
{
    const struct orch__instance *in = &ctx->inst[inst];
    for (size_t k = 0; k < in->n; k++)
        if (task_in_pass(ctx, in->tasks[k]) && orch__runnable(orch__cur(ctx, in->tasks[k])))
            return ORCH_ACTIVE;
    long newest = orch__newest(ctx, inst);
    if (newest < 0 ||
        orch__cur(ctx, (size_t)newest)->desired_state == SWARMC__TASK_STATE__TASK_STATE_REMOVE)
        return ORCH_VACANT;
    /* The supervisor stopped the last task and chose not to replace it
     * (condition none, clean exit with on-failure, attempts used up): the
     * slot keeps that task and is not filled again, as in Docker. */
    return orch__should_restart(ctx, inst, (size_t)newest) ? ORCH_VACANT : ORCH_DONE;
}
