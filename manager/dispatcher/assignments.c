/* Registration and assignment pushes: the whole set when an agent
 * registers, then the changes each store commit brings. */
#include "common/alloc.h"
#include "common/log.h"
#include "manager/dispatcher/internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* Tasks reach a node once the scheduler assigned them (DESIGN.md §4). */
static int is_dispatchable(const Swarmc__Task *t)
{
    return t->node_id != NULL && t->node_id[0] != '\0' && t->status != NULL &&
           t->status->state >= SWARMC__TASK_STATE__TASK_STATE_ASSIGNED;
}

struct assignment_batch {
    Swarmc__AssignmentsMessage msg;
    Swarmc__Assignment *items;
    Swarmc__Assignment **ptrs;
    size_t cap;
};

static int batch_add(struct assignment_batch *b, Swarmc__Assignment__Action action,
                     Swarmc__Task *task)
{
    if (b->msg.n_changes == b->cap) {
        size_t cap = b->cap == 0 ? 16 : b->cap * 2;
        Swarmc__Assignment *items = swm_realloc(b->items, cap * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        b->items = items;
        Swarmc__Assignment **ptrs = swm_realloc(b->ptrs, cap * sizeof(*ptrs));
        if (ptrs == NULL)
            return -ENOMEM;
        b->ptrs = ptrs;
        b->cap = cap;
    }
    Swarmc__Assignment *a = &b->items[b->msg.n_changes];
    swarmc__assignment__init(a);
    a->has_action = 1;
    a->action = action;
    a->task = task;
    b->msg.n_changes++;
    return 0;
}

static void batch_send(struct dispatcher_session *sess, struct assignment_batch *b,
                       Swarmc__AssignmentsMessage__Type type)
{
    /* Pointers are fixed up only now: items may have moved while growing. */
    for (size_t i = 0; i < b->msg.n_changes; i++)
        b->ptrs[i] = &b->items[i];
    b->msg.changes = b->ptrs;
    b->msg.has_type = 1;
    b->msg.type = type;
    Swarmc__DispatcherMessage out = SWARMC__DISPATCHER_MESSAGE__INIT;
    out.msg_case = SWARMC__DISPATCHER_MESSAGE__MSG_ASSIGNMENTS;
    out.assignments = &b->msg;
    dispatcher__send(sess, &out);
}

static void batch_free(struct assignment_batch *b)
{
    swm_free(b->items);
    swm_free(b->ptrs);
}

static void remember(struct dispatcher_session *sess, const Swarmc__Task *t)
{
    uintptr_t mark = (uintptr_t)t->desired_state + 1;
    if (swm_strmap_put(&sess->sent, t->id, (void *)mark) < 0)
        swm_log_error("dispatcher: out of memory tracking task=%s", t->id);
}

static void send_full_set(struct dispatcher_session *sess)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Task **tasks = NULL;
    size_t n = 0;
    if (store_read_begin(sess->d->store, &r, &err) < 0 ||
        store_list_tasks_by_node(r, sess->node_id, &tasks, &n) < 0) {
        swm_log_error("dispatcher: cannot read tasks node=%s error=\"%s\"", sess->node_id, err.msg);
        store_read_end(r);
        return;
    }
    store_read_end(r);
    struct assignment_batch b = {.msg = SWARMC__ASSIGNMENTS_MESSAGE__INIT};
    swm_strmap_free(&sess->sent);
    for (size_t i = 0; i < n; i++) {
        if (!is_dispatchable(tasks[i]))
            continue;
        if (batch_add(&b, SWARMC__ASSIGNMENT__ACTION__ASSIGNMENT_ACTION_UPDATE, tasks[i]) < 0)
            break;
        remember(sess, tasks[i]);
    }
    batch_send(sess, &b, SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_COMPLETE);
    batch_free(&b);
    store_free_list(tasks, n);
}

/* Each agent gets the cluster's period minus up to 10%, at random (like
 * SwarmKit's heartbeat epsilon): agents that started together do not
 * heartbeat in lockstep, and every one still reports well within the three
 * periods after which its node is DOWN. */
static int64_t jittered_period(struct dispatcher *d)
{
    d->jitter_state = d->jitter_state * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t tenth = (uint64_t)d->heartbeat_ns / 10;
    return tenth == 0 ? d->heartbeat_ns
                      : d->heartbeat_ns - (int64_t)((d->jitter_state >> 33) % tenth);
}

static void send_session(struct dispatcher_session *sess)
{
    Swarmc__DispatcherMessage out = SWARMC__DISPATCHER_MESSAGE__INIT;
    out.msg_case = SWARMC__DISPATCHER_MESSAGE__MSG_SESSION_ID;
    out.session_id = sess->session_id;
    dispatcher__send(sess, &out);
    Swarmc__DispatcherMessage period = SWARMC__DISPATCHER_MESSAGE__INIT;
    period.msg_case = SWARMC__DISPATCHER_MESSAGE__MSG_HEARTBEAT_PERIOD;
    period.heartbeat_period = jittered_period(sess->d);
    dispatcher__send(sess, &period);
}

/* The managers' addresses, from their nodes' ManagerStatus. */
static void send_managers(struct dispatcher_session *sess)
{
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0, k = 0;
    if (store_read_begin(sess->d->store, &r, NULL) < 0 || store_list_nodes(r, &nodes, &n) < 0)
        n = 0;
    store_read_end(r);
    char **addrs = swm_calloc(n + 1, sizeof(*addrs));
    for (size_t i = 0; addrs != NULL && i < n; i++) {
        const Swarmc__ManagerStatus *m = nodes[i]->manager_status;
        if (nodes[i]->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER && m != NULL && m->addr != NULL)
            addrs[k++] = m->addr;
    }
    Swarmc__ManagerList list = SWARMC__MANAGER_LIST__INIT;
    list.addrs = addrs;
    list.n_addrs = k;
    Swarmc__DispatcherMessage out = SWARMC__DISPATCHER_MESSAGE__INIT;
    out.msg_case = SWARMC__DISPATCHER_MESSAGE__MSG_MANAGERS;
    out.managers = &list;
    if (addrs != NULL && k > 0)
        dispatcher__send(sess, &out);
    swm_free(addrs);
    store_free_list(nodes, n);
}

void dispatcher__register(struct dispatcher_session *sess, const Swarmc__RegisterRequest *req)
{
    if (req->node_id == NULL || strcmp(req->node_id, sess->bound_node_id) != 0) {
        swm_log_warn("dispatcher: node %s tried to register as node %s, ignored",
                     sess->bound_node_id, req->node_id != NULL ? req->node_id : "(none)");
        return;
    }
    snprintf(sess->node_id, sizeof(sess->node_id), "%s", req->node_id);
    sess->marked_down = 0;
    dispatcher__drop_detached(sess->d, sess->node_id);
    swm_log_info("dispatcher: node registered node=%s session=%s", sess->node_id, sess->session_id);
    send_session(sess);
    send_managers(sess);
    send_full_set(sess);
    dispatcher__set_node_state(sess->d, sess->node_id, SWARMC__NODE_STATE__NODE_STATE_READY, "",
                               req);
}

static struct dispatcher_session *session_of(struct dispatcher *d, const char *node_id)
{
    for (struct dispatcher_session *s = d->sessions; s != NULL; s = s->next) {
        if (s->send != NULL && strcmp(s->node_id, node_id) == 0)
            return s;
    }
    return NULL;
}

/* What a task change means for its node's agent: UPDATE when it is newly
 * dispatchable or its desired state moved, REMOVE when it left the store.
 * Status-only changes are the agent's own reports and are not echoed. */
static void forward_task_event(struct dispatcher *d, const struct store_event *ev,
                               struct dispatcher_session **touched,
                               struct assignment_batch *batches, size_t *n_touched, size_t max)
{
    const Swarmc__Task *t = (const Swarmc__Task *)ev->object;
    if (t->node_id == NULL || t->node_id[0] == '\0')
        return;
    struct dispatcher_session *sess = session_of(d, t->node_id);
    if (sess == NULL)
        return;
    uintptr_t mark = (uintptr_t)swm_strmap_get(&sess->sent, t->id);
    Swarmc__Assignment__Action action;
    if (ev->action == SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE) {
        if (mark == 0)
            return;
        swm_strmap_del(&sess->sent, t->id);
        action = SWARMC__ASSIGNMENT__ACTION__ASSIGNMENT_ACTION_REMOVE;
    } else {
        if (!is_dispatchable(t) || mark == (uintptr_t)t->desired_state + 1)
            return;
        remember(sess, t);
        action = SWARMC__ASSIGNMENT__ACTION__ASSIGNMENT_ACTION_UPDATE;
    }
    size_t i = 0;
    while (i < *n_touched && touched[i] != sess)
        i++;
    if (i == *n_touched) {
        if (i == max)
            return;
        touched[i] = sess;
        batches[i] = (struct assignment_batch){.msg = SWARMC__ASSIGNMENTS_MESSAGE__INIT};
        (*n_touched)++;
    }
    /* The event object lives until the callback returns; so does the batch. */
    batch_add(&batches[i], action, (Swarmc__Task *)t);
}

void dispatcher_on_store_events(void *arg, const struct store_event *events, size_t n)
{
    struct dispatcher *d = arg;
    if (d->closing || d->sessions == NULL)
        return;
    size_t n_sessions = 0;
    for (struct dispatcher_session *s = d->sessions; s != NULL; s = s->next)
        n_sessions++;
    struct dispatcher_session **touched = swm_calloc(n_sessions, sizeof(*touched));
    struct assignment_batch *batches = swm_calloc(n_sessions, sizeof(*batches));
    if (touched == NULL || batches == NULL) {
        /* Agents resynchronise from the full set when they re-register. */
        swm_log_error("dispatcher: out of memory forwarding %zu changes", n);
        swm_free(touched);
        swm_free(batches);
        return;
    }
    size_t n_touched = 0;
    for (size_t i = 0; i < n; i++) {
        if (events[i].kind == STORE_KIND_TASK)
            forward_task_event(d, &events[i], touched, batches, &n_touched, n_sessions);
    }
    for (size_t i = 0; i < n_touched; i++) {
        batch_send(touched[i], &batches[i],
                   SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_INCREMENTAL);
        batch_free(&batches[i]);
    }
    swm_free(touched);
    swm_free(batches);
}
