#include "agent/agent.h"

#include "agent/internal.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static void on_container_exit(void *arg, const char *id, const struct exec_status *st);
static void adopt_one(void *arg, const char *id, const struct exec_status *st);
static void flush_reports(uv_timer_t *timer);
static void send_heartbeat(uv_timer_t *timer);

static int open_stores(struct agent *a, const struct agent_opts *opts, struct swm_err *err)
{
    char images_dir[PATH_MAX], containers_dir[PATH_MAX], runc_root[PATH_MAX];
    snprintf(images_dir, sizeof(images_dir), "%s/images", opts->data_dir);
    snprintf(containers_dir, sizeof(containers_dir), "%s/containers", opts->data_dir);
    snprintf(runc_root, sizeof(runc_root), "%s/runc", opts->run_dir);
    int rc = image_store_open(images_dir, &a->images, err);
    if (rc < 0)
        return rc;
    return executor_open(a->loop, containers_dir, runc_root, opts->self_exe, on_container_exit, a,
                         &a->executor, err);
}

int agent_open(const struct agent_opts *opts, struct agent **out, struct swm_err *err)
{
    struct agent *a = swm_calloc(1, sizeof(*a));
    if (a == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    a->loop = opts->loop;
    snprintf(a->node_id, sizeof(a->node_id), "%s", opts->node_id);
    a->has_join_availability = opts->has_join_availability;
    a->join_availability = opts->join_availability;
    a->on_managers = opts->on_managers;
    a->on_managers_arg = opts->on_managers_arg;
    a->hostname = swm_strdup(opts->hostname);
    int rc = a->hostname == NULL ? swm_err_set(err, -ENOMEM, "out of memory")
                                 : open_stores(a, opts, err);
    if (rc < 0) {
        image_store_close(a->images);
        swm_free(a->hostname);
        swm_free(a);
        return rc;
    }
    uv_timer_init(a->loop, &a->flush_timer);
    uv_timer_init(a->loop, &a->heartbeat_timer);
    a->flush_timer.data = a->heartbeat_timer.data = a;
    a->heartbeat_ns = 5 * SWM_NS_PER_SEC;
    executor_adopt(a->executor, adopt_one, a);
    *out = a;
    return 0;
}

static void free_task(struct agent_task *t)
{
    proto_free(t->task);
    swm_free(t);
}

static void agent_free(uv_handle_t *handle)
{
    struct agent *a = handle->data;
    for (size_t i = 0; i < a->tasks.cap; i++) {
        if (a->tasks.slots[i].key != NULL)
            free_task(a->tasks.slots[i].value);
    }
    swm_strmap_free(&a->tasks);
    for (size_t i = 0; i < a->n_dirty; i++)
        swm_free(a->dirty[i]);
    swm_free(a->dirty);
    image_store_close(a->images);
    swm_free(a->hostname);
    swm_free(a);
}

static void heartbeat_closed(uv_handle_t *handle)
{
    struct agent *a = handle->data;
    uv_close((uv_handle_t *)&a->flush_timer, agent_free);
}

void agent_close(struct agent *a)
{
    if (a == NULL)
        return;
    a->closing = 1;
    executor_close(a->executor);
    a->executor = NULL;
    uv_close((uv_handle_t *)&a->heartbeat_timer, heartbeat_closed);
}

struct image_store *agent_images(struct agent *a)
{
    return a->images;
}

char *agent_task_log_dir(struct agent *a, const char *task_id)
{
    return a->executor != NULL ? executor_log_dir(a->executor, task_id) : NULL;
}

int agent_images_in_use(struct agent *a, char ***ids, size_t *n)
{
    *ids = swm_calloc(a->tasks.len + 1, sizeof(char *));
    *n = 0;
    if (*ids == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < a->tasks.cap; i++) {
        struct agent_task *t = a->tasks.slots[i].value;
        if (a->tasks.slots[i].key == NULL || !t->has_container || t->image_id[0] == '\0')
            continue;
        if (((*ids)[*n] = swm_strdup(t->image_id)) == NULL)
            return -ENOMEM;
        (*n)++;
    }
    return 0;
}

struct agent_task *agent__task_get_or_add(struct agent *a, const char *id)
{
    struct agent_task *t = swm_strmap_get(&a->tasks, id);
    if (t != NULL)
        return t;
    t = swm_calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->exit_code = -1;
    if (swm_strmap_put(&a->tasks, id, t) < 0) {
        swm_free(t);
        return NULL;
    }
    return t;
}

static void adopt_one(void *arg, const char *id, const struct exec_status *st)
{
    struct agent *a = arg;
    struct agent_task *t = agent__task_get_or_add(a, id);
    if (t == NULL)
        return;
    t->has_container = 1;
    t->pid = st->pid;
    t->exit_code = st->exit_code;
    t->phase = st->state == EXEC_STATE_RUNNING ? PHASE_RUNNING : PHASE_EXITED;
    swm_log_info("agent: adopted container task=%s state=%s", id,
                 t->phase == PHASE_RUNNING ? "running" : "exited");
}

static void on_container_exit(void *arg, const char *id, const struct exec_status *st)
{
    struct agent *a = arg;
    struct agent_task *t = swm_strmap_get(&a->tasks, id);
    if (t == NULL || a->closing)
        return;
    t->exit_code = st->exit_code;
    if (t->phase == PHASE_REMOVING)
        return;
    int stopping = t->phase == PHASE_STOPPING;
    t->phase = PHASE_EXITED;
    agent__report_exit(a, t, stopping);
    agent__drive(a, t);
}

/* Queues t's latest state for the next report batch: one per task and
 * batch. */
static void queue_report(struct agent *a, const struct agent_task *t)
{
    for (size_t i = 0; i < a->n_dirty; i++) {
        if (strcmp(a->dirty[i], t->id) == 0)
            return;
    }
    char *id = swm_strdup(t->id);
    char **grown = id != NULL ? swm_realloc(a->dirty, (a->n_dirty + 1) * sizeof(*grown)) : NULL;
    if (grown == NULL) {
        swm_free(id);
        swm_log_error("agent: out of memory queueing a report task=%s", t->id);
        return;
    }
    a->dirty = grown;
    a->dirty[a->n_dirty++] = id;
    if (a->send != NULL && !uv_is_active((uv_handle_t *)&a->flush_timer))
        uv_timer_start(&a->flush_timer, flush_reports, 0, 0);
}

void agent__report(struct agent *a, struct agent_task *t, Swarmc__TaskState state,
                   const char *message, const char *err)
{
    if (state <= t->reported)
        return; /* task states only move forward */
    t->reported = state;
    t->reported_at_ns = swm_now_ns();
    snprintf(t->message, sizeof(t->message), "%s", message);
    snprintf(t->err, sizeof(t->err), "%s", err != NULL ? err : "");
    queue_report(a, t);
}

/* Fills one report from the task's last recorded state. */
static void fill_report(const struct agent_task *t, Swarmc__TaskStatusUpdate__Item *item,
                        Swarmc__TaskStatus *status, Swarmc__ContainerStatus *cs)
{
    item->task_id = (char *)t->id;
    item->status = status;
    status->has_timestamp = status->has_state = 1;
    status->timestamp = t->reported_at_ns;
    status->state = t->reported;
    status->message = (char *)t->message;
    status->err = (char *)t->err;
    if (t->has_container) {
        status->container = cs;
        cs->container_id = (char *)t->id;
        cs->has_pid = t->pid > 0;
        cs->pid = t->pid;
        cs->has_exit_code = t->exit_code >= 0;
        cs->exit_code = t->exit_code;
    }
}

static void flush_reports(uv_timer_t *timer)
{
    struct agent *a = timer->data;
    if (a->n_dirty == 0 || a->send == NULL)
        return;
    size_t n = a->n_dirty;
    Swarmc__TaskStatusUpdate__Item *items = swm_calloc(n, sizeof(*items));
    Swarmc__TaskStatusUpdate__Item **ptrs = swm_calloc(n, sizeof(*ptrs));
    Swarmc__TaskStatus *statuses = swm_calloc(n, sizeof(*statuses));
    Swarmc__ContainerStatus *containers = swm_calloc(n, sizeof(*containers));
    if (items == NULL || ptrs == NULL || statuses == NULL || containers == NULL) {
        swm_log_error("agent: out of memory sending %zu reports; retrying", n);
        uv_timer_start(&a->flush_timer, flush_reports, 100, 0);
        goto out;
    }
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        struct agent_task *t = swm_strmap_get(&a->tasks, a->dirty[i]);
        if (t == NULL)
            continue;
        swarmc__task_status_update__item__init(&items[used]);
        swarmc__task_status__init(&statuses[used]);
        swarmc__container_status__init(&containers[used]);
        fill_report(t, &items[used], &statuses[used], &containers[used]);
        ptrs[used] = &items[used];
        used++;
    }
    Swarmc__TaskStatusUpdate update = SWARMC__TASK_STATUS_UPDATE__INIT;
    update.updates = ptrs;
    update.n_updates = used;
    Swarmc__AgentMessage msg = SWARMC__AGENT_MESSAGE__INIT;
    msg.msg_case = SWARMC__AGENT_MESSAGE__MSG_STATUS;
    msg.status = &update;
    struct swm_buf buf = {0};
    if (proto_pack(&msg.base, &buf) == 0)
        a->send(a->conn, buf.data, buf.len);
    swm_buf_free(&buf);
    for (size_t i = 0; i < n; i++)
        swm_free(a->dirty[i]);
    a->n_dirty = 0;
out:
    swm_free(items);
    swm_free(ptrs);
    swm_free(statuses);
    swm_free(containers);
}

static void send_message(struct agent *a, const Swarmc__AgentMessage *msg)
{
    struct swm_buf buf = {0};
    if (a->send != NULL && proto_pack(&msg->base, &buf) == 0)
        a->send(a->conn, buf.data, buf.len);
    swm_buf_free(&buf);
}

static void send_heartbeat(uv_timer_t *timer)
{
    struct agent *a = timer->data;
    Swarmc__Heartbeat hb = SWARMC__HEARTBEAT__INIT;
    Swarmc__AgentMessage msg = SWARMC__AGENT_MESSAGE__INIT;
    msg.msg_case = SWARMC__AGENT_MESSAGE__MSG_HEARTBEAT;
    msg.heartbeat = &hb;
    send_message(a, &msg);
}

void agent__set_heartbeat(struct agent *a, int64_t period_ns)
{
    a->heartbeat_ns = period_ns;
    uint64_t ms = (uint64_t)(period_ns / SWM_NS_PER_MS);
    uv_timer_start(&a->heartbeat_timer, send_heartbeat, ms, ms);
}

/* A new session may follow a connection that died with reports in
 * flight: every task's latest state is reported again (the dispatcher
 * ignores what it already has, as states only move forward). */
static void queue_all_reports(struct agent *a)
{
    for (size_t i = 0; i < a->tasks.cap; i++) {
        const struct agent_task *t = a->tasks.slots[i].value;
        if (a->tasks.slots[i].key != NULL && t->reported > 0)
            queue_report(a, t);
    }
}

void agent_connect(struct agent *a, agent_send_fn send, void *conn)
{
    a->send = send;
    a->conn = conn;
    Swarmc__Platform platform = SWARMC__PLATFORM__INIT;
    Swarmc__Resources capacity = SWARMC__RESOURCES__INIT;
    agent__describe_host(&platform, &capacity);
    Swarmc__NodeDescription desc = SWARMC__NODE_DESCRIPTION__INIT;
    desc.hostname = a->hostname;
    desc.platform = &platform;
    desc.resources = &capacity;
    desc.engine_version = "swarmc " SWARMC_VERSION;
    Swarmc__RegisterRequest reg = SWARMC__REGISTER_REQUEST__INIT;
    reg.node_id = a->node_id;
    reg.description = &desc;
    reg.has_availability = a->has_join_availability;
    reg.availability = a->join_availability;
    Swarmc__AgentMessage msg = SWARMC__AGENT_MESSAGE__INIT;
    msg.msg_case = SWARMC__AGENT_MESSAGE__MSG_REGISTER;
    msg.register_ = &reg;
    send_message(a, &msg);
    queue_all_reports(a);
    if (a->n_dirty > 0)
        uv_timer_start(&a->flush_timer, flush_reports, 0, 0);
}

void agent_disconnect(struct agent *a)
{
    a->send = NULL;
    a->conn = NULL;
    uv_timer_stop(&a->heartbeat_timer);
    uv_timer_stop(&a->flush_timer);
}
