/* The task manager: assignments in, containers driven, reports out. */
#include "agent/internal.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static void forget(struct agent *a, struct agent_task *t)
{
    swm_strmap_del(&a->tasks, t->id);
    proto_free(t->task);
    swm_free(t);
    if (a->removed_all_cb != NULL && a->tasks.len == 0) {
        void (*cb)(void *) = a->removed_all_cb;
        a->removed_all_cb = NULL;
        cb(a->removed_all_arg);
    }
}

static void removed(void *arg, const char *id, int status)
{
    struct agent *a = arg;
    struct agent_task *t = swm_strmap_get(&a->tasks, id);
    if (status < 0)
        swm_log_warn("agent: removing container failed task=%s error=\"%s\"", id,
                     swm_strerror(status));
    if (t == NULL)
        return;
    t->has_container = 0;
    t->phase = PHASE_EXITED;
    agent__drive(a, t);
}

static void started(void *arg, const char *id, int status, const struct exec_status *st,
                    const struct swm_err *err)
{
    struct agent *a = arg;
    struct agent_task *t = swm_strmap_get(&a->tasks, id);
    if (t == NULL)
        return;
    if (status < 0) {
        t->phase = PHASE_EXITED;
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_FAILED, "starting", err->msg);
        swm_log_warn("agent: start failed task=%s error=\"%s\"", id, err->msg);
    } else if (t->phase == PHASE_STARTING) {
        t->phase = PHASE_RUNNING;
        t->pid = st->pid;
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_RUNNING, "started", NULL);
    }
    agent__drive(a, t);
}

static int desired(const struct agent_task *t)
{
    return t->task != NULL ? (int)t->task->desired_state
                           : (int)SWARMC__TASK_STATE__TASK_STATE_REMOVE;
}

static const char *task_image(const struct agent_task *t)
{
    const Swarmc__TaskSpec *spec = t->task->spec;
    if (spec == NULL || spec->container == NULL || spec->container->image == NULL)
        return "";
    return spec->container->image;
}

/* Resolves the image and merges it with the task's spec, then starts the
 * container. Failures before the start reject the task, as Swarm does. */
static void start_task(struct agent *a, struct agent_task *t)
{
    struct swm_err err = {0};
    struct image_config *img = NULL;
    struct exec_spec_owned spec = {0};
    agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_ACCEPTED, "accepted", NULL);
    agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_PREPARING, "preparing", NULL);
    int rc = image_resolve(a->images, task_image(t), &img, &err);
    if (rc == 0)
        rc = exec_spec_build(t->task, img, &spec, &err);
    if (rc < 0) {
        image_config_free(img);
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_REJECTED, "rejected", err.msg);
        t->phase = PHASE_EXITED;
        return;
    }
    snprintf(t->image_id, sizeof(t->image_id), "%s", img->id);
    image_config_free(img);
    if (desired(t) == SWARMC__TASK_STATE__TASK_STATE_READY) {
        /* Restart delay: wait prepared until the orchestrator says RUNNING. */
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_READY, "prepared", NULL);
        exec_spec_owned_free(&spec);
        return;
    }
    t->stop_signal = spec.stop_signal;
    t->stop_grace_ns = spec.stop_grace_ns;
    agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_STARTING, "starting", NULL);
    t->phase = PHASE_STARTING;
    t->has_container = 1;
    rc = executor_start(a->executor, &spec.spec, started, a);
    exec_spec_owned_free(&spec);
    if (rc < 0) {
        t->phase = PHASE_EXITED;
        t->has_container = 0;
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_FAILED, "starting", swm_strerror(rc));
    }
}

static void stop_task(struct agent *a, struct agent_task *t)
{
    int signo = t->stop_signal > 0 ? t->stop_signal : SIGTERM;
    int64_t grace = t->stop_grace_ns > 0 ? t->stop_grace_ns : 10 * SWM_NS_PER_SEC;
    if (t->task != NULL && t->task->spec != NULL && t->task->spec->container != NULL &&
        t->task->spec->container->has_stop_grace_period)
        grace = t->task->spec->container->stop_grace_period;
    t->phase = PHASE_STOPPING;
    if (executor_stop(a->executor, t->id, signo, grace) < 0)
        t->phase = PHASE_EXITED;
}

void agent__drive(struct agent *a, struct agent_task *t)
{
    if (a->closing)
        return;
    int want = desired(t);
    int gone = !t->assigned || want >= SWARMC__TASK_STATE__TASK_STATE_REMOVE;
    switch (t->phase) {
    case PHASE_IDLE:
        if (gone || want >= SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN) {
            if (t->task != NULL)
                agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN, "shutdown", NULL);
            t->phase = PHASE_EXITED;
            agent__drive(a, t);
        } else if (t->reported >= SWARMC__TASK_STATE__TASK_STATE_STARTING) {
            /* The store says it started, but no container exists: it was
             * lost while the daemon was down. */
            agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_FAILED, "failed",
                          "container not found after the daemon restarted");
            t->phase = PHASE_EXITED;
        } else if (t->reported < SWARMC__TASK_STATE__TASK_STATE_READY ||
                   want == SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
            start_task(a, t);
        }
        break;
    case PHASE_RUNNING:
        if (gone || want >= SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN)
            stop_task(a, t);
        else if (t->task != NULL)
            agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_RUNNING, "started", NULL);
        break;
    case PHASE_EXITED:
        if (gone && t->has_container) {
            t->phase = PHASE_REMOVING;
            if (executor_remove(a->executor, t->id, removed, a) < 0)
                removed(a, t->id, -EIO);
        } else if (!t->assigned) {
            forget(a, t);
        }
        break;
    case PHASE_STARTING:
    case PHASE_STOPPING:
    case PHASE_REMOVING:
        break; /* a callback will drive it again */
    }
}

static void take_assignment(struct agent *a, Swarmc__Task *task)
{
    struct agent_task *t = agent__task_get_or_add(a, task->id);
    if (t == NULL) {
        swm_log_error("agent: out of memory tracking task=%s", task->id);
        return;
    }
    Swarmc__Task *copy = proto_clone(task);
    if (copy == NULL)
        return;
    proto_free(t->task);
    t->task = copy;
    t->assigned = 1;
    /* The store may already know a later state (reported before a restart). */
    if (task->status != NULL && task->status->state > t->reported)
        t->reported = task->status->state;
    if (t->phase == PHASE_EXITED && t->reported < SWARMC__TASK_STATE__TASK_STATE_COMPLETE &&
        t->has_container) {
        /* Adopted container that died while the daemon was down. */
        char err[64];
        snprintf(err, sizeof(err), "task: non-zero exit (%d)", t->exit_code);
        if (t->exit_code == 0)
            agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_COMPLETE, "finished", NULL);
        else
            agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_FAILED, "failed", err);
    }
}

void agent__apply_assignments(struct agent *a, const Swarmc__AssignmentsMessage *msg)
{
    int complete = msg->type == SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_COMPLETE;
    if (complete) {
        for (size_t i = 0; i < a->tasks.cap; i++) {
            if (a->tasks.slots[i].key != NULL)
                ((struct agent_task *)a->tasks.slots[i].value)->assigned = 0;
        }
    }
    for (size_t i = 0; i < msg->n_changes; i++) {
        const Swarmc__Assignment *change = msg->changes[i];
        if (change->task == NULL || change->task->id == NULL || !swm_id_valid(change->task->id))
            continue;
        if (change->action == SWARMC__ASSIGNMENT__ACTION__ASSIGNMENT_ACTION_REMOVE) {
            struct agent_task *t = swm_strmap_get(&a->tasks, change->task->id);
            if (t != NULL)
                t->assigned = 0;
        } else {
            take_assignment(a, change->task);
        }
    }
    /* Drive every task: collect ids first, driving may remove entries. */
    char (*ids)[SWM_ID_LEN + 1] = swm_calloc(a->tasks.len + 1, sizeof(*ids));
    if (ids == NULL)
        return;
    size_t n = 0;
    for (size_t i = 0; i < a->tasks.cap; i++) {
        if (a->tasks.slots[i].key != NULL)
            snprintf(ids[n++], SWM_ID_LEN + 1, "%s", a->tasks.slots[i].key);
    }
    for (size_t i = 0; i < n; i++) {
        struct agent_task *t = swm_strmap_get(&a->tasks, ids[i]);
        if (t != NULL)
            agent__drive(a, t);
    }
    swm_free(ids);
}

void agent_receive(struct agent *a, const uint8_t *frame, size_t len)
{
    struct swm_err err = {0};
    Swarmc__DispatcherMessage *msg =
        PROTO_UNPACK(Swarmc__DispatcherMessage, swarmc__dispatcher_message, frame, len, &err);
    if (msg == NULL) {
        swm_log_warn("agent: dropped frame from dispatcher error=\"%s\"", err.msg);
        return;
    }
    switch (msg->msg_case) {
    case SWARMC__DISPATCHER_MESSAGE__MSG_ASSIGNMENTS:
        agent__apply_assignments(a, msg->assignments);
        break;
    case SWARMC__DISPATCHER_MESSAGE__MSG_HEARTBEAT_PERIOD:
        if (msg->heartbeat_period > 0)
            agent__set_heartbeat(a, msg->heartbeat_period);
        break;
    default:
        break;
    }
    proto_free(msg);
}

void agent_remove_all(struct agent *a, void (*cb)(void *arg), void *arg)
{
    if (a->tasks.len == 0) {
        cb(arg);
        return;
    }
    a->removed_all_cb = cb;
    a->removed_all_arg = arg;
    for (size_t i = 0; i < a->tasks.cap; i++) {
        if (a->tasks.slots[i].key != NULL)
            ((struct agent_task *)a->tasks.slots[i].value)->assigned = 0;
    }
    Swarmc__AssignmentsMessage none = SWARMC__ASSIGNMENTS_MESSAGE__INIT;
    none.type = SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_INCREMENTAL;
    agent__apply_assignments(a, &none);
}
