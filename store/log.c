/* The one-member log (DESIGN.md §5): proposals queue on the loop thread; one
 * batch at a time is appended and applied in a single fsynced LMDB
 * transaction on the threadpool, and everything proposed meanwhile forms the
 * next batch (group commit). The loop thread never waits for the disk.
 *
 * Lifetime: the log owns one handle, `kick`, an idle handle that starts a
 * batch on the next loop iteration so that proposals made in the same
 * iteration share a batch (idle, not check: an active idle handle keeps the
 * loop from blocking in poll). The log is freed once kick is closed and no
 * batch is in flight, whichever happens last. */
#include "store/log.h"

#include <errno.h>
#include <inttypes.h>

#include "common/alloc.h"
#include "store/internal.h"

struct proposal {
    Swarmc__StoreEntry *entry; /* owned */
    store_commit_cb cb;
    void *arg;
    struct proposal *next;
};

struct proposal_queue {
    struct proposal *head;
    struct proposal **tail;
    size_t n;
};

struct store_log {
    uv_loop_t *loop;
    struct store *store;
    uv_idle_t kick;
    uv_work_t work;
    struct proposal_queue pending; /* the next batch */
    uint64_t next_index;           /* index of the next entry appended */

    /* The batch in flight. Set on the loop thread before uv_queue_work, the
     * outcome on the threadpool; libuv orders both before after_write. */
    struct proposal_queue batch;
    uint64_t batch_first;
    struct store_apply_result *batch_results;
    int batch_status;
    struct swm_err batch_err;

    bool writing, closing, kick_closed;
};

static void queue_init(struct proposal_queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
    q->n = 0;
}

static void queue_push(struct proposal_queue *q, struct proposal *p)
{
    p->next = NULL;
    *q->tail = p;
    q->tail = &p->next;
    q->n++;
}

/* Runs each proposal's callback once, then frees it and its entry. With
 * results, proposal i gets (0, first + i, results[i]); without, (status, 0,
 * err). The queue is detached first: callbacks may propose again. */
static void complete(struct proposal_queue *q, uint64_t first,
                     const struct store_apply_result *results, int status,
                     const struct swm_err *err)
{
    struct proposal *p = q->head;
    queue_init(q);
    for (uint64_t i = 0; p != NULL; i++) {
        struct proposal *next = p->next;
        if (results != NULL)
            p->cb(p->arg, 0, first + i, &results[i].err);
        else
            p->cb(p->arg, status, 0, err);
        proto_free(p->entry);
        swm_free(p);
        p = next;
    }
}

/* Threadpool: append and apply the batch. The loop thread does not touch
 * the batch fields until after_write. */
static void write_batch(uv_work_t *req)
{
    struct store_log *log = req->data;
    size_t n = log->batch.n;
    Swarmc__StoreEntry **entries = swm_malloc(n * sizeof(*entries));
    log->batch_results = swm_calloc(n, sizeof(*log->batch_results));
    if (entries == NULL || log->batch_results == NULL) {
        log->batch_status =
            swm_err_set(&log->batch_err, -ENOMEM, "writing %zu log entries: out of memory", n);
        swm_free(entries);
        return;
    }
    size_t i = 0;
    for (struct proposal *p = log->batch.head; p != NULL; p = p->next)
        entries[i++] = p->entry;
    log->batch_status = store__apply(log->store, log->batch_first, entries, n, true,
                                     log->batch_results, &log->batch_err);
    swm_free(entries);
}

static void start_batch(struct store_log *log);

/* The last step of closing, once nothing else can touch the log. */
static void maybe_finish(struct store_log *log)
{
    if (!log->closing || !log->kick_closed || log->writing)
        return;
    struct swm_err err;
    swm_err_set(&err, SWM_ESHUTDOWN, "the store log is closing");
    complete(&log->pending, 0, NULL, SWM_ESHUTDOWN, &err);
    swm_free(log);
}

static void after_write(uv_work_t *req, int status)
{
    struct store_log *log = req->data;
    struct proposal_queue done = log->batch;
    struct store_apply_result *results = log->batch_results;
    uint64_t first = log->batch_first;
    if (done.head == NULL)
        done.tail = &done.head;
    queue_init(&log->batch);
    log->batch_results = NULL;
    log->writing = false;
    if (status < 0) /* uv_cancel: we never cancel, but stay honest */
        log->batch_status =
            swm_err_set(&log->batch_err, status, "writing log entries: %s", swm_strerror(status));

    if (log->batch_status == 0) {
        log->next_index = first + done.n;
        /* Watchers see the changes before the proposers hear back. */
        store_deliver_events(log->store);
        complete(&done, first, results, 0, NULL);
    } else {
        /* Nothing was written: the indexes are reused by the next batch. */
        complete(&done, 0, NULL, log->batch_status, &log->batch_err);
    }
    swm_free(results);

    if (log->closing)
        maybe_finish(log);
    else if (log->pending.n > 0)
        start_batch(log);
}

static void start_batch(struct store_log *log)
{
    log->batch = log->pending;
    if (log->batch.head == NULL)
        log->batch.tail = &log->batch.head;
    queue_init(&log->pending);
    log->batch_first = log->next_index;
    log->batch_status = 0;
    swm_err_clear(&log->batch_err);
    log->writing = true;
    int rc = uv_queue_work(log->loop, &log->work, write_batch, after_write);
    if (rc < 0) {
        log->writing = false;
        struct swm_err err;
        swm_err_set(&err, rc, "queueing log write: %s", uv_strerror(rc));
        complete(&log->batch, 0, NULL, rc, &err);
    }
}

static void kick_cb(uv_idle_t *handle)
{
    struct store_log *log = handle->data;
    uv_idle_stop(handle);
    if (!log->writing && !log->closing && log->pending.n > 0)
        start_batch(log);
}

static void kick_closed_cb(uv_handle_t *handle)
{
    struct store_log *log = handle->data;
    log->kick_closed = true;
    maybe_finish(log);
}

int store_log_open(uv_loop_t *loop, struct store *s, struct store_log **out, struct swm_err *err)
{
    struct store_log *log = swm_calloc(1, sizeof(*log));
    if (log == NULL)
        return swm_err_set(err, -ENOMEM, "opening the store log: out of memory");
    int rc = uv_idle_init(loop, &log->kick);
    if (rc < 0) {
        swm_free(log);
        return swm_err_set(err, rc, "opening the store log: %s", uv_strerror(rc));
    }
    log->loop = loop;
    log->store = s;
    log->kick.data = log;
    log->work.data = log;
    log->next_index = store_applied_index(s) + 1;
    queue_init(&log->pending);
    queue_init(&log->batch);
    *out = log;
    return 0;
}

void store_log_close(struct store_log *log)
{
    if (log == NULL || log->closing)
        return;
    log->closing = true;
    uv_close((uv_handle_t *)&log->kick, kick_closed_cb);
}

int store_log_propose(struct store_log *log, Swarmc__StoreEntry *entry, store_commit_cb cb,
                      void *arg)
{
    if (log->closing)
        return SWM_ESHUTDOWN;
    if (entry == NULL || cb == NULL)
        return -EINVAL;
    struct proposal *p = swm_malloc(sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    *p = (struct proposal){.entry = entry, .cb = cb, .arg = arg};
    queue_push(&log->pending, p);
    /* While a batch is in flight, after_write starts the next one. */
    if (!log->writing)
        uv_idle_start(&log->kick, kick_cb);
    return 0;
}
