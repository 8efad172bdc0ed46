/* Task status reports and node state: agents' reports are queued and
 * written in batches, one store entry per batch, while the previous batch is
 * being committed (the same group commit as the log's). */
#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "manager/dispatcher/internal.h"

#include <errno.h>
#include <string.h>

static void flush_status(struct dispatcher *d);

static void free_items(struct status_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        proto_free(items[i].status);
    swm_free(items);
}

void dispatcher__status_free(struct dispatcher *d)
{
    free_items(d->queued, d->n_queued);
    free_items(d->inflight, d->n_inflight);
    d->queued = d->inflight = NULL;
    d->n_queued = d->n_inflight = 0;
}

static int queue_item(struct dispatcher *d, const char *node_id, const char *task_id,
                      Swarmc__TaskStatus *status)
{
    struct status_item *grown = swm_realloc(d->queued, (d->n_queued + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    d->queued = grown;
    struct status_item *item = &d->queued[d->n_queued++];
    snprintf(item->node_id, sizeof(item->node_id), "%s", node_id);
    snprintf(item->task_id, sizeof(item->task_id), "%s", task_id);
    item->status = status;
    return 0;
}

void dispatcher__queue_status(struct dispatcher *d, const char *node_id,
                              const Swarmc__TaskStatusUpdate *update)
{
    for (size_t i = 0; i < update->n_updates; i++) {
        const Swarmc__TaskStatusUpdate__Item *u = update->updates[i];
        if (u->task_id == NULL || u->status == NULL || strlen(u->task_id) > SWM_ID_LEN)
            continue;
        Swarmc__TaskStatus *copy = proto_clone(u->status);
        if (copy == NULL || queue_item(d, node_id, u->task_id, copy) < 0) {
            proto_free(copy);
            swm_log_error("dispatcher: out of memory queueing status task=%s", u->task_id);
        }
    }
    flush_status(d);
}

/* A report applies only to a task on the reporting node, and only moves its
 * state forward: task states never go back (SwarmKit's rule). */
static int status_applies(const Swarmc__Task *t, const struct status_item *item)
{
    if (t->node_id == NULL || strcmp(t->node_id, item->node_id) != 0)
        return 0;
    Swarmc__TaskState cur = t->status != NULL ? t->status->state : 0;
    return item->status->state > cur;
}

/* An entry may update a task only once (its second update would carry a
 * stale version), so a batch keeps each task's most advanced report. */
static int superseded(struct swm_strmap *latest, struct status_item *items, size_t i)
{
    struct status_item *best = swm_strmap_get(latest, items[i].task_id);
    return best != NULL && best != &items[i];
}

static int index_latest(struct swm_strmap *latest, struct status_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct status_item *best = swm_strmap_get(latest, items[i].task_id);
        if (best != NULL && best->status->state > items[i].status->state)
            continue;
        if (swm_strmap_put(latest, items[i].task_id, &items[i]) < 0)
            return -ENOMEM;
    }
    return 0;
}

static Swarmc__StoreEntry *build_entry(struct dispatcher *d, struct status_item *items, size_t n)
{
    struct swm_strmap latest = {0};
    if (index_latest(&latest, items, n) < 0) {
        swm_strmap_free(&latest);
        return NULL;
    }
    Swarmc__StoreEntry *entry = swm_malloc(sizeof(*entry));
    Swarmc__StoreAction **actions = swm_calloc(n, sizeof(*actions));
    struct store_read *r = NULL;
    if (entry == NULL || actions == NULL || store_read_begin(d->store, &r, NULL) < 0) {
        swm_free(entry);
        swm_free(actions);
        swm_strmap_free(&latest);
        return NULL;
    }
    swarmc__store_entry__init(entry);
    entry->actions = actions;
    for (size_t i = 0; i < n; i++) {
        Swarmc__Task *t = NULL;
        if (superseded(&latest, items, i) || store_get_task(r, items[i].task_id, &t) < 0)
            continue;
        Swarmc__StoreAction *a = swm_malloc(sizeof(*a));
        Swarmc__TaskStatus *status = proto_clone(items[i].status);
        if (!status_applies(t, &items[i]) || a == NULL || status == NULL) {
            proto_free(t);
            swm_free(a);
            proto_free(status);
            continue;
        }
        proto_free(t->status);
        t->status = status;
        swarmc__store_action__init(a);
        a->has_kind = 1;
        a->kind = SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE;
        a->target_case = SWARMC__STORE_ACTION__TARGET_TASK;
        a->task = t;
        entry->actions[entry->n_actions++] = a;
    }
    store_read_end(r);
    swm_strmap_free(&latest);
    return entry;
}

static void status_committed(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct dispatcher *d = arg;
    d->writing = 0;
    swm_log_debug("dispatcher: status batch committed index=%llu status=%d code=%d error=\"%s\"",
                  (unsigned long long)index, status, err->code, err->msg);
    if (status == 0 && err->code == SWM_ESTALE && !d->closing) {
        /* Another writer changed one of these tasks meanwhile: re-read and
         * apply the same reports again. */
        for (size_t i = 0; i < d->n_inflight; i++) {
            if (queue_item(d, d->inflight[i].node_id, d->inflight[i].task_id,
                           d->inflight[i].status) == 0)
                d->inflight[i].status = NULL;
        }
    } else if (status < 0 || err->code != 0) {
        swm_log_warn("dispatcher: status batch not written error=\"%s\"", err->msg);
    }
    free_items(d->inflight, d->n_inflight);
    d->inflight = NULL;
    d->n_inflight = 0;
    if (d->closing)
        dispatcher__maybe_free(d);
    else
        flush_status(d);
}

static void flush_status(struct dispatcher *d)
{
    if (d->writing || d->n_queued == 0)
        return;
    Swarmc__StoreEntry *entry = build_entry(d, d->queued, d->n_queued);
    if (entry == NULL) {
        swm_log_error("dispatcher: cannot build a status batch of %zu reports", d->n_queued);
        return;
    }
    d->inflight = d->queued;
    d->n_inflight = d->n_queued;
    d->queued = NULL;
    d->n_queued = 0;
    if (entry->n_actions == 0) {
        proto_free(entry);
        free_items(d->inflight, d->n_inflight);
        d->inflight = NULL;
        d->n_inflight = 0;
        return;
    }
    d->writing = 1;
    if (store_log_propose(d->log, entry, status_committed, d) < 0) {
        d->writing = 0;
        proto_free(entry);
        free_items(d->inflight, d->n_inflight);
        d->inflight = NULL;
        d->n_inflight = 0;
    }
}

static int set_state_fields(Swarmc__Node *node, Swarmc__NodeState state, const char *message,
                            const Swarmc__RegisterRequest *reg)
{
    const Swarmc__NodeDescription *description = reg != NULL ? reg->description : NULL;
    if (reg != NULL && reg->has_availability && node->description == NULL && node->spec != NULL) {
        node->spec->has_availability = 1;
        node->spec->availability = reg->availability;
    }
    if (description != NULL) {
        Swarmc__NodeDescription *copy = proto_clone(description);
        if (copy == NULL)
            return -ENOMEM;
        proto_free(node->description);
        node->description = copy;
    }
    if (node->status == NULL) {
        node->status = swm_malloc(sizeof(*node->status));
        if (node->status == NULL)
            return -ENOMEM;
        swarmc__node_status__init(node->status);
    }
    char *msg = swm_strdup(message);
    if (msg == NULL)
        return -ENOMEM;
    swm_free(node->status->message);
    node->status->message = msg;
    node->status->has_state = 1;
    node->status->state = state;
    if (node->meta != NULL) {
        node->meta->has_updated_at = 1;
        node->meta->updated_at = swm_now_ns();
    }
    return 0;
}

/* A node state write in flight. On SWM_ESTALE (the node object changed
 * meanwhile, e.g. `node update`) it is recomputed from the fresh object and
 * proposed again, a few times at most, unless a newer state for the same
 * node is already on its way (writes commit in order, so a newer one is
 * still in flight when an older one hears back). */
#define NODE_WRITE_ATTEMPTS 5

struct node_write {
    struct dispatcher *d;
    char node_id[SWM_ID_LEN + 1];
    Swarmc__NodeState state;
    char message[256];
    Swarmc__RegisterRequest *reg; /* owned copy, or NULL */
    int attempts;
    uint64_t seq;
    struct node_write *next, **prev; /* in d->node_writes */
};

static void node_write_free(struct node_write *w)
{
    struct dispatcher *d = w->d;
    if ((*w->prev = w->next) != NULL)
        w->next->prev = w->prev;
    proto_free(w->reg);
    swm_free(w);
    dispatcher__maybe_free(d);
}

static bool newer_write_pending(const struct node_write *w)
{
    for (const struct node_write *x = w->d->node_writes; x != NULL; x = x->next)
        if (x->seq > w->seq && strcmp(x->node_id, w->node_id) == 0)
            return true;
    return false;
}

static int propose_node_state(struct node_write *w);

static void node_committed(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct node_write *w = arg;
    if (status == 0 && err->code == SWM_ESTALE && !w->d->closing && !newer_write_pending(w) &&
        w->attempts < NODE_WRITE_ATTEMPTS && propose_node_state(w) == 0)
        return;
    if (status < 0 || err->code != 0)
        swm_log_warn("dispatcher: node state not written node=%s error=\"%s\"", w->node_id,
                     err->msg);
    node_write_free(w);
}

/* Reads the node, applies w's change to it and proposes the update.
 * Returns 0 (node_committed will run) or a negative code. */
static int propose_node_state(struct node_write *w)
{
    struct dispatcher *d = w->d;
    struct store_read *r = NULL;
    Swarmc__Node *node = NULL;
    if (store_read_begin(d->store, &r, NULL) == 0 && store_get_node(r, w->node_id, &node) < 0)
        node = NULL;
    store_read_end(r);
    if (node == NULL) {
        swm_log_warn("dispatcher: unknown node node=%s", w->node_id);
        return SWM_ENOTFOUND;
    }
    Swarmc__StoreEntry *entry = swm_malloc(sizeof(*entry));
    Swarmc__StoreAction *a = swm_malloc(sizeof(*a));
    Swarmc__StoreAction **actions = swm_malloc(sizeof(*actions));
    if (entry == NULL || a == NULL || actions == NULL ||
        set_state_fields(node, w->state, w->message, w->reg) < 0) {
        swm_log_error("dispatcher: out of memory writing node state node=%s", w->node_id);
        proto_free(node);
        swm_free(entry);
        swm_free(a);
        swm_free(actions);
        return -ENOMEM;
    }
    swarmc__store_entry__init(entry);
    swarmc__store_action__init(a);
    a->has_kind = 1;
    a->kind = SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE;
    a->target_case = SWARMC__STORE_ACTION__TARGET_NODE;
    a->node = node;
    actions[0] = a;
    entry->actions = actions;
    entry->n_actions = 1;
    w->attempts++;
    int rc = store_log_propose(d->log, entry, node_committed, w);
    if (rc < 0)
        proto_free(entry);
    return rc;
}

void dispatcher__set_node_state(struct dispatcher *d, const char *node_id, Swarmc__NodeState state,
                                const char *message, const Swarmc__RegisterRequest *reg)
{
    struct node_write *w = swm_calloc(1, sizeof(*w));
    Swarmc__RegisterRequest *copy = reg != NULL ? proto_clone(reg) : NULL;
    if (w == NULL || (reg != NULL && copy == NULL)) {
        swm_log_error("dispatcher: out of memory writing node state node=%s", node_id);
        swm_free(w);
        proto_free(copy);
        return;
    }
    *w = (struct node_write){.d = d,
                             .state = state,
                             .reg = copy,
                             .seq = ++d->node_write_seq,
                             .next = d->node_writes,
                             .prev = &d->node_writes};
    if (d->node_writes != NULL)
        d->node_writes->prev = &w->next;
    d->node_writes = w;
    snprintf(w->node_id, sizeof(w->node_id), "%s", node_id);
    snprintf(w->message, sizeof(w->message), "%s", message != NULL ? message : "");
    if (propose_node_state(w) < 0)
        node_write_free(w);
}
