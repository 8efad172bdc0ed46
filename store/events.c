/* Watch events: apply (on the threadpool) queues each committed batch's
 * changes; store_deliver_events() hands them to watchers on the loop thread.
 * Only the queue and the watcher count cross threads, under s->lock. */
#include "store/internal.h"

#include <errno.h>

#include "common/alloc.h"

int store__event_add(struct store__event_batch *b, enum store_object_kind kind,
                     Swarmc__StoreAction__Kind action, ProtobufCMessage *object)
{
    if (b->n == b->cap) {
        size_t cap = b->cap == 0 ? 16 : b->cap * 2;
        struct store_event *events = swm_realloc(b->events, cap * sizeof(*events));
        if (events == NULL) {
            proto_free(object);
            return -ENOMEM;
        }
        b->events = events;
        b->cap = cap;
    }
    b->events[b->n++] = (struct store_event){.kind = kind, .action = action, .object = object};
    return 0;
}

void store__event_truncate(struct store__event_batch *b, size_t n)
{
    while (b->n > n)
        proto_free((void *)b->events[--b->n].object);
}

void store__event_batch_free(struct store__event_batch *b)
{
    if (b == NULL)
        return;
    store__event_truncate(b, 0);
    swm_free(b->events);
    swm_free(b);
}

bool store__events_wanted(struct store *s)
{
    pthread_mutex_lock(&s->lock);
    bool wanted = s->live_watchers > 0;
    pthread_mutex_unlock(&s->lock);
    return wanted;
}

void store__events_enqueue(struct store *s, struct store__event_batch *b)
{
    b->next = NULL;
    pthread_mutex_lock(&s->lock);
    *s->queue_tail = b;
    s->queue_tail = &b->next;
    pthread_mutex_unlock(&s->lock);
}

void store__events_fini(struct store *s)
{
    struct store__event_batch *b = s->queue_head;
    while (b != NULL) {
        struct store__event_batch *next = b->next;
        store__event_batch_free(b);
        b = next;
    }
    s->queue_head = NULL;
    s->queue_tail = &s->queue_head;
    swm_free(s->watchers);
    s->watchers = NULL;
}

int store_watch(struct store *s, store_watch_cb cb, void *arg)
{
    if (cb == NULL)
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (s->n_watchers == s->cap_watchers) {
        size_t cap = s->cap_watchers == 0 ? 4 : s->cap_watchers * 2;
        struct store__watcher *w = swm_realloc(s->watchers, cap * sizeof(*w));
        if (w == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        s->watchers = w;
        s->cap_watchers = cap;
    }
    s->watchers[s->n_watchers++] = (struct store__watcher){.cb = cb, .arg = arg};
    s->live_watchers++;
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Drops the entries of watchers removed during a delivery. */
static void compact_watchers(struct store *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->n_watchers; i++)
        if (s->watchers[i].cb != NULL)
            s->watchers[kept++] = s->watchers[i];
    s->n_watchers = kept;
}

int store_unwatch(struct store *s, store_watch_cb cb, void *arg)
{
    int rc = SWM_ENOTFOUND;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_watchers; i++) {
        if (s->watchers[i].cb != cb || s->watchers[i].arg != arg)
            continue;
        /* During a delivery the array is being walked: leave a hole. */
        s->watchers[i].cb = NULL;
        s->live_watchers--;
        if (!s->delivering)
            compact_watchers(s);
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void store_deliver_events(struct store *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->delivering) {
        /* Called from a watcher: the outer delivery owns the array walk;
         * what was queued since waits for the next delivery. */
        pthread_mutex_unlock(&s->lock);
        return;
    }
    struct store__event_batch *b = s->queue_head;
    s->queue_head = NULL;
    s->queue_tail = &s->queue_head;
    /* Watchers registered from inside a callback start with the next
     * delivery: these events predate them. */
    size_t n_watchers = s->n_watchers;
    s->delivering = true;
    pthread_mutex_unlock(&s->lock);

    while (b != NULL) {
        /* Only the loop thread changes the watcher array, and that is us:
         * reading it without the lock is safe; re-read after each call
         * since a callback may register (realloc) or unregister. */
        for (size_t i = 0; i < n_watchers; i++) {
            struct store__watcher w = s->watchers[i];
            if (w.cb != NULL)
                w.cb(w.arg, b->events, b->n);
        }
        struct store__event_batch *next = b->next;
        store__event_batch_free(b);
        b = next;
    }

    pthread_mutex_lock(&s->lock);
    s->delivering = false;
    compact_watchers(s);
    pthread_mutex_unlock(&s->lock);
}
