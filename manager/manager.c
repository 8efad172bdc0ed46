#include "manager/manager.h"

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "manager/internal.h"

#include <errno.h>

static void run_pass(uv_timer_t *timer);
static void arm_wakeup(struct manager *m, int64_t wakeup_ns);

/* A pass that could not be computed or written (the log lost leadership,
 * a disk write failed) is tried again after this long even if nothing
 * else happens meanwhile. */
#define RETRY_NS SWM_NS_PER_SEC

static void retry_later(struct manager *m)
{
    arm_wakeup(m, swm_now_ns() + RETRY_NS);
}

/* Runs a pass on the next turn of the loop, unless one is being written:
 * then the commit callback starts the next one. */
static void schedule_pass(struct manager *m)
{
    m->dirty = 1;
    if (!m->writing && !m->closing && !uv_is_active((uv_handle_t *)&m->pass_timer))
        uv_timer_start(&m->pass_timer, run_pass, 0, 0);
}

static void on_store_events(void *arg, const struct store_event *events, size_t n)
{
    struct manager *m = arg;
    if (m->closing)
        return;
    schedule_pass(m);
}

static void on_wakeup(uv_timer_t *timer)
{
    schedule_pass(timer->data);
}

static void arm_wakeup(struct manager *m, int64_t wakeup_ns)
{
    if (wakeup_ns <= 0)
        return;
    int64_t delay_ms = (wakeup_ns - swm_now_ns()) / SWM_NS_PER_MS + 1;
    if (delay_ms < 0)
        delay_ms = 0;
    uint64_t due = uv_now(m->loop) + (uint64_t)delay_ms;
    if (uv_is_active((uv_handle_t *)&m->wakeup_timer) && m->wakeup_due <= due)
        return;
    m->wakeup_due = due;
    uv_timer_start(&m->wakeup_timer, on_wakeup, (uint64_t)delay_ms, 0);
}

/* The manager is freed once closed, with both timers closed and no pass
 * being written (the log calls back even when it shuts down). */
static void maybe_free(struct manager *m)
{
    if (m->closing && m->open_handles == 0 && !m->writing)
        swm_free(m);
}

static void pass_committed(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct manager *m = arg;
    m->writing = 0;
    if (m->closing) {
        maybe_free(m);
        return;
    }
    swm_log_debug("manager: pass committed index=%llu status=%d code=%d error=\"%s\"",
                  (unsigned long long)index, status, err->code, err->msg);
    if (status < 0 || (err->code != 0 && err->code != SWM_ESTALE))
        swm_log_warn("manager: reconcile pass not written error=\"%s\"", err->msg);
    if (status < 0)
        retry_later(m);
    /* A stale pass lost a race with another writer: run again on fresh
     * state. Any other outcome also warrants a look at what changed. */
    if (status == 0 && err->code == SWM_ESTALE)
        m->dirty = 1;
    if (m->dirty)
        schedule_pass(m);
}

static void run_pass(uv_timer_t *timer)
{
    struct manager *m = timer->data;
    struct swm_err err = {0};
    Swarmc__StoreEntry *entry = NULL;
    int64_t wakeup_ns = 0;
    m->dirty = 0;
    int rc = manager__reconcile(m->store, swm_now_ns(), &entry, &wakeup_ns, &err);
    if (rc < 0) {
        swm_log_error("manager: reconcile failed error=\"%s\"", err.msg);
        retry_later(m);
        return;
    }
    arm_wakeup(m, wakeup_ns);
    if (entry == NULL)
        return;
    m->writing = 1;
    if (store_log_propose(m->log, entry, pass_committed, m) < 0) {
        proto_free(entry);
        m->writing = 0;
        retry_later(m);
    }
}

int manager_open(uv_loop_t *loop, struct store *s, struct store_log *log, struct manager **out,
                 struct swm_err *err)
{
    struct manager *m = swm_calloc(1, sizeof(*m));
    if (m == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    m->loop = loop;
    m->store = s;
    m->log = log;
    m->open_handles = 2;
    uv_timer_init(loop, &m->pass_timer);
    uv_timer_init(loop, &m->wakeup_timer);
    m->pass_timer.data = m->wakeup_timer.data = m;
    int rc = store_watch(s, on_store_events, m);
    if (rc < 0) {
        manager_close(m);
        return swm_err_set(err, rc, "watching the store: %s", swm_strerror(rc));
    }
    schedule_pass(m);
    *out = m;
    return 0;
}

static void timer_closed(uv_handle_t *handle)
{
    struct manager *m = handle->data;
    m->open_handles--;
    maybe_free(m);
}

void manager_close(struct manager *m)
{
    if (m == NULL)
        return;
    m->closing = 1;
    store_unwatch(m->store, on_store_events, m);
    uv_close((uv_handle_t *)&m->pass_timer, timer_closed);
    uv_close((uv_handle_t *)&m->wakeup_timer, timer_closed);
}
int64_t manager_heartbeat_period(struct store *s)
{
    struct store_read *r = NULL;
    Swarmc__Cluster *c = NULL;
    int64_t period = 5 * SWM_NS_PER_SEC;
    if (store_read_begin(s, &r, NULL) == 0 && store_get_cluster(r, &c) == 0 && c->spec != NULL &&
        c->spec->has_dispatcher_heartbeat_period && c->spec->dispatcher_heartbeat_period > 0)
        period = c->spec->dispatcher_heartbeat_period;
    proto_free(c);
    store_read_end(r);
    return period;
}
