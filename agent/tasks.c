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
        /* The executor already deleted what the start left. */
        t->phase = PHASE_EXITED;
        t->has_container = 0;
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

/* Whether t's task is gone for good (its container is to be removed). An
 * adopted container whose task was not assigned yet is gone only once a
 * complete assignment set left it out: before that its task may well
 * exist, and a stopped container is its history. */
static int task_gone(const struct agent *a, const struct agent_task *t)
{
    if (t->task == NULL)
        return a->synced || a->leaving;
    return !t->assigned || desired(t) >= SWARMC__TASK_STATE__TASK_STATE_REMOVE;
}

void agent__report_exit(struct agent *a, struct agent_task *t, int stopping)
{
    if (stopping ||
        (t->task != NULL && t->task->desired_state >= SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN)) {
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN, "shutdown", NULL);
    } else if (t->exit_code == 0) {
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_COMPLETE, "finished", NULL);
    } else {
        char err[64];
        snprintf(err, sizeof(err), "task: non-zero exit (%d)", t->exit_code);
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_FAILED, "failed", err);
    }
}

static const char *task_image(const struct agent_task *t)
{
    const Swarmc__TaskSpec *spec = t->task->spec;
    if (spec == NULL || spec->container == NULL || spec->container->image == NULL)
        return "";
    return spec->container->image;
}

/* Resolves t's image and merges it with the task's spec into *spec (which
 * the caller frees), and records on t what the agent needs of the merge
 * later: the image (in use while the container exists), the stop signal
 * and grace period. 0, or < 0 with err set. */
static int build_spec(struct agent *a, struct agent_task *t, struct exec_spec_owned *spec,
                      struct swm_err *err)
{
    struct image_config *img = NULL;
    int rc = image_resolve(a->images, task_image(t), &img, err);
    if (rc == 0)
        rc = exec_spec_build(t->task, img, spec, err);
    if (rc == 0) {
        snprintf(t->image_id, sizeof(t->image_id), "%s", img->id);
        t->stop_signal = spec->stop_signal;
        t->stop_grace_ns = spec->stop_grace_ns;
    }
    image_config_free(img);
    return rc;
}

/* Resolves the image and merges it with the task's spec, then starts the
 * container. Failures before the start reject the task, as Swarm does. */
static void start_task(struct agent *a, struct agent_task *t)
{
    struct swm_err err = {0};
    struct exec_spec_owned spec = {0};
    agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_ACCEPTED, "accepted", NULL);
    agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_PREPARING, "preparing", NULL);
    if (build_spec(a, t, &spec, &err) < 0) {
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_REJECTED, "rejected", err.msg);
        t->phase = PHASE_EXITED;
        return;
    }
    if (desired(t) == SWARMC__TASK_STATE__TASK_STATE_READY) {
        /* Restart delay: wait prepared until the orchestrator says RUNNING. */
        agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_READY, "prepared", NULL);
        exec_spec_owned_free(&spec);
        return;
    }
    agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_STARTING, "starting", NULL);
    t->phase = PHASE_STARTING;
    t->has_container = 1;
    int rc = executor_start(a->executor, &spec.spec, started, a);
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
    int rc = executor_stop(a->executor, t->id, signo, grace);
    if (rc < 0) {
        /* The executor does not know the container: no exit will come. */
        swm_log_warn("agent: stopping container failed task=%s error=\"%s\"", t->id,
                     swm_strerror(rc));
        t->phase = PHASE_EXITED;
        t->has_container = 0;
        agent__report_exit(a, t, 1);
        agent__drive(a, t);
    }
}

void agent__drive(struct agent *a, struct agent_task *t)
{
    if (a->closing)
        return;
    int want = desired(t);
    int gone = task_gone(a, t);
    if (!gone && t->task == NULL)
        return; /* adopted: the first complete set will say */
    switch (t->phase) {
    case PHASE_IDLE:
        if (gone || want >= SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN) {
            if (t->task != NULL)
                agent__report(a, t, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN, "shutdown", NULL);
            t->phase = PHASE_EXITED;
            agent__drive(a, t);
        } else if (t->reported >= SWARMC__TASK_STATE__TASK_STATE_COMPLETE) {
            /* It ended before (its container is gone since): nothing to run
             * and nothing to correct. */
            t->phase = PHASE_EXITED;
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
            int rc = executor_remove(a->executor, t->id, removed, a);
            if (rc < 0) {
                /* removed() may free t: pass it a copy of the id. */
                char id[sizeof(t->id)];
                memcpy(id, t->id, sizeof(id));
                removed(a, id, rc);
            }
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
    int adopted = t->task == NULL && t->has_container;
    proto_free(t->task);
    t->task = copy;
    t->assigned = 1;
    /* The store may already know a later state (reported before a restart). */
    if (task->status != NULL && task->status->state > t->reported)
        t->reported = task->status->state;
    if (adopted) {
        /* Its first assignment: learn its image (in use) and how to stop it. */
        struct exec_spec_owned spec = {0};
        struct swm_err err = {0};
        if (build_spec(a, t, &spec, &err) < 0)
            swm_log_warn("agent: adopted container's spec unknown, stopping it with SIGTERM "
                         "task=%s error=\"%s\"",
                         t->id, err.msg);
        exec_spec_owned_free(&spec);
    }
    if (t->phase == PHASE_EXITED && t->reported < SWARMC__TASK_STATE__TASK_STATE_COMPLETE &&
        t->has_container) {
        /* Adopted container that died while the daemon was down. */
        agent__report_exit(a, t, 0);
    }
}

/* Drives every task once. */
static void drive_all(struct agent *a)
{
    /* Collect ids first: driving may remove entries. */
    char(*ids)[SWM_ID_LEN + 1] = swm_calloc(a->tasks.len + 1, sizeof(*ids));
    if (ids == NULL) {
        swm_log_error("agent: out of memory driving %zu tasks", a->tasks.len);
        return;
    }
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

void agent__apply_assignments(struct agent *a, const Swarmc__AssignmentsMessage *msg)
{
    if (a->leaving)
        return; /* everything goes: nothing new may start */
    int complete = msg->type == SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_COMPLETE;
    if (complete) {
        a->synced = 1;
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
    drive_all(a);
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
    case SWARMC__DISPATCHER_MESSAGE__MSG_MANAGERS:
        if (a->on_managers != NULL && msg->managers->n_addrs > 0)
            a->on_managers(a->on_managers_arg, (const char *const *)msg->managers->addrs,
                           msg->managers->n_addrs);
        break;
    default:
        break;
    }
    proto_free(msg);
}

void agent_remove_all(struct agent *a, void (*cb)(void *arg), void *arg)
{
    a->leaving = 1;
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
    drive_all(a);
}
