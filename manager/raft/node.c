/* The raft node: drives the core with libuv (see node.h).
 *
 * One ready is outstanding at a time. drive() takes it from the core, sends
 * its messages that need nothing durable, and hands the write to the
 * threadpool (persist_ready); after_persist() runs on the loop, sends the
 * acknowledgements, completes the proposals whose entries committed and
 * advances the core. Proposals and received messages meanwhile go straight
 * into the core, so the next ready carries everything that arrived during
 * the write (group commit). A `kick` idle handle runs drive() once per loop
 * turn, so a burst of messages or proposals costs one ready, not one each.
 *
 * Lifetime: two handles (ticker, kick), at most one persist and one
 * snapshot job in flight. The node is freed once both handles are closed
 * and no job is in flight, whichever happens last (maybe_free). */
#include "manager/raft/node.h"
#include "manager/raft/node_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "common/alloc.h"
#include "common/log.h"
#include "proto/codec.h"
#include "store/raftlog.h"

#define DEFAULT_TICK_MS 50
#define DEFAULT_ELECTION_TICK 10

static struct raft_node *node_of(struct store_log *log)
{
    return (struct raft_node *)((char *)log - offsetof(struct raft_node, log));
}

static void queue_init(struct queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

static void queue_push(struct queue *q, struct proposal *p)
{
    p->next = NULL;
    *q->tail = p;
    q->tail = &p->next;
}

static struct proposal *queue_pop(struct queue *q)
{
    struct proposal *p = q->head;
    if (p != NULL && (q->head = p->next) == NULL)
        q->tail = &q->head;
    return p;
}

static void proposal_done(struct proposal *p, int status, uint64_t index, const struct swm_err *err)
{
    p->cb(p->arg, status, index, err);
    proto_free(p->entry);
    swm_free(p);
}

/* Fails every proposal of q, in order. q is detached first: callbacks may
 * propose again. */
static void fail_queue(struct queue *q, const struct swm_err *err)
{
    struct queue doomed = *q;
    if (doomed.head == NULL)
        return;
    queue_init(q);
    struct proposal *p;
    while ((p = queue_pop(&doomed)) != NULL)
        proposal_done(p, err->code, 0, err);
}

void raft_node__not_leader_err(const struct raft_node *n, struct swm_err *err, const char *what)
{
    if (n->leader_id != 0)
        swm_err_set(err, SWM_ENOTLEADER,
                    "%s: this node is not the leader; the leader is raft member %016" PRIx64, what,
                    n->leader_id);
    else
        swm_err_set(err, SWM_ENOTLEADER, "%s: the cluster has no leader at the moment", what);
}

static void fail_reads(struct raft_node *n, const struct swm_err *err)
{
    struct read_request *r = n->reads;
    n->reads = NULL;
    while (r != NULL) {
        struct read_request *next = r->next;
        r->cb(r->arg, err->code, err);
        swm_free(r);
        r = next;
    }
}

static void on_kick(uv_idle_t *h);

void raft_node__kick(struct raft_node *n)
{
    if (!n->closing)
        uv_idle_start(&n->kick, on_kick);
}

/* --- the core's lifecycle ------------------------------------------------- */

static bool only_voter(const struct raft *core, uint64_t id)
{
    const struct raft_configuration *c = raft_configuration_current(core);
    const struct raft_server *self = raft_configuration_get(c, id);
    return self != NULL && self->role == RAFT_VOTER && raft_configuration_voters(c) == 1;
}

/* (Re)creates the core from what storage holds. */
static int load_core(struct raft_node *n, struct swm_err *err)
{
    struct raft_init_state init;
    int rc = store_raft_load(n->store, &init, err);
    if (rc < 0)
        return rc;
    rc = raft_new(&n->core_opt, &init, &n->core, err);
    store_raft_init_free(&init);
    if (rc < 0)
        return rc;
    if (only_voter(n->core, n->core_opt.id) && (rc = raft_campaign(n->core)) < 0) {
        raft_free(n->core);
        n->core = NULL;
        return swm_err_set(err, rc, "starting the election: %s", swm_strerror(rc));
    }
    return 0;
}

static void set_leadership(struct raft_node *n, bool leader, uint64_t leader_id)
{
    bool changed = leader != n->leader;
    bool new_leader = leader_id != n->leader_id;
    n->leader = leader;
    n->leader_id = leader_id;
    if (changed)
        swm_log_info("raft: member %016" PRIx64 " %s leader (term %" PRIu64 ")", n->core_opt.id,
                     leader ? "is now" : "is no longer", n->core ? raft_term(n->core) : 0);
    if (changed && !leader) {
        /* Like SwarmKit's ErrLostLeadership: whether these commit is up to
         * the next leader, so their writers must not wait for it. */
        struct swm_err err;
        raft_node__not_leader_err(n, &err,
                                  "leadership was lost before the write committed (it may still "
                                  "be applied)");
        fail_queue(&n->waiting, &err);
        raft_node__change_fail(n, &err);
    }
    if ((changed || new_leader) && n->on_leadership != NULL)
        n->on_leadership(n->on_leadership_arg, leader, leader_id);
}

/* The node can no longer make progress: every later request fails with
 * err (the daemon's operator must act, e.g. free disk space or restore the
 * state directory). */
static void die(struct raft_node *n, const struct swm_err *err)
{
    swm_log_error("raft: member %016" PRIx64 " stopped: %s", n->core_opt.id, err->msg);
    n->dead = *err;
    raft_free(n->core);
    n->core = NULL;
    uv_timer_stop(&n->ticker);
    set_leadership(n, false, 0);
    fail_queue(&n->held, err);
    fail_queue(&n->waiting, err);
    fail_reads(n, err);
    raft_node__change_fail(n, err);
}

/* After a failed write or an allocation failure inside the core: the core
 * may be ahead of the disk, so it is rebuilt from the disk (raft.h). */
static void reload_core(struct raft_node *n, const struct swm_err *why)
{
    swm_log_warn("raft: reloading the raft state from disk after: %s", why->msg);
    raft_free(n->core);
    n->core = NULL;
    struct swm_err err;
    /* Waiting writes may still commit (their entries may be durable here
     * or on followers): set_leadership fails them as outcome unknown. */
    set_leadership(n, false, 0);
    raft_node__not_leader_err(n, &err, "reading: the raft state was reloaded");
    fail_reads(n, &err);
    if (load_core(n, &err) < 0) {
        die(n, &err);
        return;
    }
    raft_node__kick(n);
}

/* --- sending ---------------------------------------------------------------- */

static void send_messages(struct raft_node *n, const struct raft_message *msgs, size_t count)
{
    struct swm_buf b = {0};
    for (size_t i = 0; i < count && n->transport != NULL; i++) {
        b.len = 0;
        int rc = raft_message_encode(&msgs[i], &b);
        if (rc == 0)
            rc = raft_transport_send(n->transport, msgs[i].to, b.data, b.len);
        /* Raft retries what is lost; a log line per drop would flood. */
        if (rc < 0)
            swm_log_debug("raft: %s to %016" PRIx64 " dropped: %s",
                          raft_message_type_name(msgs[i].type), msgs[i].to, swm_strerror(rc));
    }
    swm_buf_free(&b);
}

/* --- proposals -------------------------------------------------------------- */

/* Hands the held proposals to the core as one batch. */
static void submit_held(struct raft_node *n)
{
    size_t count = 0;
    for (struct proposal *p = n->held.head; p != NULL; p = p->next)
        count++;
    struct raft_buffer *bufs = swm_calloc(count, sizeof(*bufs));
    struct swm_buf *packed = swm_calloc(count, sizeof(*packed));
    int rc = bufs != NULL && packed != NULL ? 0 : -ENOMEM;
    size_t i = 0;
    for (struct proposal *p = n->held.head; p != NULL && rc == 0; p = p->next, i++) {
        rc = proto_pack(&p->entry->base, &packed[i]);
        bufs[i] = (struct raft_buffer){.base = packed[i].data, .len = packed[i].len};
    }
    uint64_t index = 0, term = 0;
    if (rc == 0)
        rc = raft_propose(n->core, bufs, count, &index, &term);
    for (i = 0; packed != NULL && i < count; i++)
        swm_buf_free(&packed[i]);
    swm_free(packed);
    swm_free(bufs);
    struct swm_err err;
    if (rc < 0) {
        if (rc == SWM_ENOTLEADER && raft_state(n->core) == RAFT_LEADER)
            swm_err_set(&err, rc, "proposing a write: leadership is being transferred; retry");
        else if (rc == SWM_ENOTLEADER)
            raft_node__not_leader_err(n, &err, "proposing a write");
        else
            swm_err_set(&err, rc, "proposing a write: %s", swm_strerror(rc));
        fail_queue(&n->held, &err);
        return;
    }
    struct proposal *p;
    for (i = 0; (p = queue_pop(&n->held)) != NULL; i++) {
        p->index = index + i;
        p->term = term;
        proto_free(p->entry);
        p->entry = NULL;
        queue_push(&n->waiting, p);
    }
}

/* Leader: into the core. Another leader known: fail (the caller forwards).
 * No leader: hold until the election ends (or times out in on_tick). */
static void route_held(struct raft_node *n)
{
    if (n->held.head == NULL || n->core == NULL)
        return;
    if (raft_state(n->core) == RAFT_LEADER) {
        submit_held(n);
    } else if (raft_leader(n->core) != 0) {
        struct swm_err err;
        raft_node__not_leader_err(n, &err, "proposing a write");
        fail_queue(&n->held, &err);
    }
}

static int node_propose(struct store_log *log, Swarmc__StoreEntry *entry, store_commit_cb cb,
                        void *arg)
{
    struct raft_node *n = node_of(log);
    if (n->closing)
        return SWM_ESHUTDOWN;
    if (n->core == NULL)
        return n->dead.code;
    if (entry == NULL || cb == NULL)
        return -EINVAL;
    struct proposal *p = swm_calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    *p = (struct proposal){.entry = entry, .cb = cb, .arg = arg};
    if (n->held.head == NULL)
        n->held_since = n->ticks;
    queue_push(&n->held, p);
    raft_node__kick(n);
    return 0;
}

static const struct store_log_ops node_log_ops = {.propose = node_propose};

/* Completes the proposals that rd's committed entries decide. */
static void complete_committed(struct raft_node *n, const struct raft_ready *rd,
                               const struct store_apply_result *results)
{
    struct swm_err replaced;
    swm_err_set(&replaced, SWM_ENOTLEADER,
                "leadership changed before the write committed: it was not applied");
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        while (n->waiting.head != NULL && n->waiting.head->index <= e->index) {
            struct proposal *p = queue_pop(&n->waiting);
            if (p->index == e->index && p->term == e->term)
                proposal_done(p, 0, e->index, &results[i].err);
            else
                proposal_done(p, replaced.code, 0, &replaced);
        }
    }
}

static void answer_reads(struct raft_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_read_states; i++) {
        const struct raft_read_state *rs = &rd->read_states[i];
        struct read_request **pp = &n->reads;
        while (*pp != NULL && (*pp)->ctx != rs->ctx)
            pp = &(*pp)->next;
        struct read_request *r = *pp;
        if (r == NULL)
            continue;
        *pp = r->next;
        struct swm_err err = {0};
        if (rs->status != 0)
            raft_node__not_leader_err(n, &err, "reading");
        r->cb(r->arg, rs->status != 0 ? err.code : 0, &err);
        swm_free(r);
    }
}

/* --- snapshots ---------------------------------------------------------------- */

static void maybe_free(struct raft_node *n);

static void snapshot_reset(struct raft_node *n)
{
    swm_buf_free(&n->snap_data);
    raft_configuration_free(&n->snap_meta.conf);
    n->snap_step = SNAP_IDLE;
}

/* The core asks once per threshold: a failed attempt is asked again by
 * the node itself, at the next ready, or the log would grow forever. */
static void snapshot_failed(struct raft_node *n)
{
    if (n->snap_requested > n->snap_wanted)
        n->snap_wanted = n->snap_requested;
    snapshot_reset(n);
}

static void save_snapshot(uv_work_t *job)
{
    struct raft_node *n = job->data;
    n->snap_status = store_raft_snapshot_save(n->store, &n->snap_meta, n->snap_data.data,
                                              n->snap_data.len, &n->snap_err);
    if (n->snap_status == 0 && n->compact_to > 0)
        n->snap_status = store_raft_compact(n->store, n->compact_to, &n->snap_err);
}

static void after_save(uv_work_t *job, int status)
{
    struct raft_node *n = job->data;
    if (n->snap_status == 0 && status == 0)
        swm_log_info("raft: snapshot at index %" PRIu64
                     " (%zu bytes); log compacted up to %" PRIu64,
                     n->snap_meta.index, n->snap_data.len, n->compact_to);
    else
        swm_log_warn("raft: saving the snapshot at index %" PRIu64 " failed: %s",
                     n->snap_meta.index, status < 0 ? uv_strerror(status) : n->snap_err.msg);
    if (n->snap_status == 0 && status == 0)
        snapshot_reset(n);
    else
        snapshot_failed(n);
    maybe_free(n);
}

/* The core takes the snapshot only once it has applied that far itself. */
static void hand_snapshot_to_core(struct raft_node *n)
{
    if (n->snap_step != SNAP_TAKEN || n->core == NULL || n->closing ||
        raft_applied_index(n->core) < n->snap_index)
        return;
    int rc = raft_snapshot_done(n->core, n->snap_index, n->snap_data.data, n->snap_data.len,
                                &n->snap_meta, &n->compact_to);
    if (rc < 0) {
        swm_log_warn("raft: the snapshot at index %" PRIu64 " was not used: %s", n->snap_index,
                     swm_strerror(rc));
        snapshot_failed(n);
        return;
    }
    n->snap_step = SNAP_SAVING;
    n->snap_job.data = n;
    if (uv_queue_work(n->loop, &n->snap_job, save_snapshot, after_save) < 0)
        snapshot_failed(n);
}

static void take_snapshot(uv_work_t *job)
{
    struct raft_node *n = job->data;
    n->snap_status =
        store_raft_snapshot_take(n->store, &n->snap_data, &n->snap_index, &n->snap_err);
}

static void after_take(uv_work_t *job, int status)
{
    struct raft_node *n = job->data;
    if (n->closing || status < 0 || n->snap_status < 0) {
        if (!n->closing)
            swm_log_warn("raft: taking a snapshot failed: %s",
                         status < 0 ? uv_strerror(status) : n->snap_err.msg);
        snapshot_failed(n);
        maybe_free(n);
        return;
    }
    n->snap_step = SNAP_TAKEN;
    hand_snapshot_to_core(n);
}

static void maybe_snapshot(struct raft_node *n)
{
    if (n->snap_step != SNAP_IDLE || n->snap_wanted == 0 || n->closing || n->core == NULL ||
        raft_applied_index(n->core) < n->snap_wanted)
        return;
    n->snap_requested = n->snap_wanted;
    n->snap_wanted = 0;
    n->snap_step = SNAP_TAKING;
    n->snap_job.data = n;
    if (uv_queue_work(n->loop, &n->snap_job, take_snapshot, after_take) < 0)
        snapshot_failed(n);
}

/* --- readies ------------------------------------------------------------------ */

static bool needs_write(const struct raft_ready *rd)
{
    return rd->has_snapshot || rd->has_hard_state || rd->truncate_from > 0 || rd->n_entries > 0 ||
           rd->n_committed > 0;
}

static void persist_ready(uv_work_t *job)
{
    struct raft_node *n = job->data;
    const struct raft_ready *rd = n->rd;
    if (rd->n_committed > 0 &&
        (n->results = swm_calloc(rd->n_committed, sizeof(*n->results))) == NULL) {
        n->persist_status =
            swm_err_set(&n->persist_err, -ENOMEM, "writing the raft log: out of memory");
        return;
    }
    n->persist_status = store_raft_persist(n->store, rd, n->results, &n->persist_err);
}

static void drive(struct raft_node *n);

/* The ready is durable and applied (or needed no write). */
/* What follows a durable write whether or not the core advances: the
 * watchers, the writers whose entries committed, the readers. */
static void ready_applied(struct raft_node *n, const struct raft_ready *rd)
{
    store_deliver_events(n->store);
    if (rd->n_committed > 0) {
        complete_committed(n, rd, n->results);
        raft_node__change_committed(n, rd);
    }
    answer_reads(n, rd);
}

static void ready_done(struct raft_node *n, struct raft_ready *rd)
{
    send_messages(n, rd->messages_after_persist, rd->n_messages_after_persist);
    ready_applied(n, rd);
    if (rd->snapshot_request > n->snap_wanted)
        n->snap_wanted = rd->snapshot_request;
    raft_advance(n->core, rd);
    raft_ready_free(rd);
    swm_free(n->results);
    n->results = NULL;
    hand_snapshot_to_core(n);
    maybe_snapshot(n);
}

static void after_persist(uv_work_t *job, int status)
{
    struct raft_node *n = job->data;
    struct raft_ready *rd = n->rd;
    n->rd = NULL;
    if (n->core == NULL) { /* the node died during the write */
        raft_ready_free(rd);
        swm_free(n->results);
        n->results = NULL;
        n->reload_after_persist = false;
        maybe_free(n);
        return;
    }
    if (status < 0)
        n->persist_status =
            swm_err_set(&n->persist_err, status, "writing the raft log: %s", uv_strerror(status));
    if (n->persist_status < 0 || n->reload_after_persist) {
        struct swm_err why = n->persist_err;
        if (n->persist_status == 0) {
            /* The write is durable: its writers, readers and watchers hear
             * of it before the core is rebuilt. */
            ready_applied(n, rd);
            swm_err_set(&why, -ENOMEM, "out of memory while stepping a message");
        }
        n->reload_after_persist = false;
        raft_ready_free(rd);
        swm_free(n->results);
        n->results = NULL;
        if (!n->closing)
            reload_core(n, &why);
    } else {
        ready_done(n, rd);
    }
    if (n->closing)
        maybe_free(n);
    else
        drive(n);
}

static void leadership_from(struct raft_node *n, const struct raft_ready *rd)
{
    if (rd->soft_state_changed)
        set_leadership(n, rd->state == RAFT_LEADER, rd->leader);
}

static void drive(struct raft_node *n)
{
    if (n->closing || n->core == NULL || n->rd != NULL)
        return;
    route_held(n);
    if (!raft_has_ready(n->core))
        return;
    struct raft_ready *rd;
    if (raft_ready(n->core, &rd) < 0) {
        raft_node__kick(n); /* -ENOMEM: nothing changed; retry on the next turn */
        return;
    }
    leadership_from(n, rd);
    send_messages(n, rd->messages, rd->n_messages);
    if (!needs_write(rd)) {
        ready_done(n, rd);
        raft_node__kick(n);
        return;
    }
    n->rd = rd;
    n->persist_status = 0;
    swm_err_clear(&n->persist_err);
    n->persist_job.data = n;
    int rc = uv_queue_work(n->loop, &n->persist_job, persist_ready, after_persist);
    if (rc < 0) {
        n->rd = NULL;
        raft_ready_free(rd);
        struct swm_err err;
        swm_err_set(&err, rc, "queueing the raft log write: %s", uv_strerror(rc));
        reload_core(n, &err);
    }
}

/* --- inputs ------------------------------------------------------------------- */

static void on_kick(uv_idle_t *h)
{
    struct raft_node *n = h->data;
    uv_idle_stop(h);
    drive(n);
}

/* A read whose leadership round never completes (lost messages, a
 * partition) fails after two election timeouts instead of waiting forever. */
static void expire_reads(struct raft_node *n)
{
    struct read_request **pp = &n->reads;
    while (*pp != NULL) {
        struct read_request *r = *pp;
        if (n->ticks <= r->deadline) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        struct swm_err err;
        raft_node__not_leader_err(n, &err, "reading: leadership was not confirmed in time");
        r->cb(r->arg, err.code, &err);
        swm_free(r);
    }
}

static void on_tick(uv_timer_t *h)
{
    struct raft_node *n = h->data;
    if (n->core == NULL)
        return;
    n->ticks++;
    raft_tick(n->core); /* -ENOMEM: the next tick retries */
    raft_node__change_tick(n);
    expire_reads(n);
    /* Held while an election is under way (a leader's wait for its disk
     * is not one). */
    if (n->held.head != NULL && raft_state(n->core) != RAFT_LEADER &&
        n->ticks - n->held_since > 2 * n->core_opt.election_tick) {
        struct swm_err err;
        raft_node__not_leader_err(n, &err, "proposing a write");
        fail_queue(&n->held, &err);
    }
    raft_node__kick(n);
}

static void on_frame(void *arg, const void *frame, size_t len)
{
    struct raft_node *n = arg;
    if (n->closing || n->core == NULL)
        return;
    struct raft_message *m;
    struct swm_err err;
    if (raft_message_decode(frame, len, 0, &m, &err) < 0) {
        swm_log_warn("raft: dropped a message that does not decode: %s", err.msg);
        return;
    }
    int rc = raft_step(n->core, m);
    if (rc == -EINVAL)
        swm_log_warn("raft: dropped a %s for member %016" PRIx64 " from %016" PRIx64,
                     raft_message_type_name(m->type), m->to, m->from);
    raft_message_free(m);
    if (rc == SWM_ECORRUPT) {
        swm_err_set(&err, rc,
                    "a message from the leader contradicts a committed entry: this "
                    "member's log is damaged; remove it from the cluster and re-join");
        die(n, &err);
        return;
    }
    if (rc == -ENOMEM) {
        swm_err_set(&err, rc, "out of memory while stepping a message");
        if (n->rd != NULL)
            n->reload_after_persist = true;
        else
            reload_core(n, &err);
    }
    raft_node__kick(n);
}

/* --- open and close ------------------------------------------------------------ */

static void handle_closed(uv_handle_t *h)
{
    struct raft_node *n = h->data;
    n->open_handles--;
    maybe_free(n);
}

static void maybe_free(struct raft_node *n)
{
    if (!n->closing || n->open_handles > 0 || n->rd != NULL || n->snap_step == SNAP_TAKING ||
        n->snap_step == SNAP_SAVING)
        return;
    struct swm_err err;
    swm_err_set(&err, SWM_ESHUTDOWN, "the raft node is shutting down");
    fail_queue(&n->held, &err);
    fail_queue(&n->waiting, &err);
    fail_reads(n, &err);
    raft_node__change_fail(n, &err);
    snapshot_reset(n);
    raft_free(n->core);
    swm_free(n);
}

void raft_node_close(struct raft_node *n)
{
    if (n == NULL || n->closing)
        return;
    n->closing = true;
    raft_transport_close(n->transport);
    n->transport = NULL;
    uv_close((uv_handle_t *)&n->ticker, handle_closed);
    uv_close((uv_handle_t *)&n->kick, handle_closed);
}

static void options_from(struct raft_options *o, const struct raft_node_options *opt)
{
    raft_options_init(o, opt->id, uv_hrtime() ^ (opt->id * 0x9e3779b97f4a7c15ULL));
    o->election_tick = opt->election_tick ? opt->election_tick : DEFAULT_ELECTION_TICK;
    if (opt->heartbeat_tick)
        o->heartbeat_tick = opt->heartbeat_tick;
    if (opt->snapshot_threshold)
        o->snapshot_threshold = opt->snapshot_threshold;
    if (opt->snapshot_trailing)
        o->snapshot_trailing = opt->snapshot_trailing;
}

static int bootstrap_if_empty(struct store *s, const struct raft_configuration *conf,
                              struct swm_err *err)
{
    bool exists = false;
    int rc = store_raft_exists(s, &exists, err);
    if (rc < 0 || exists || conf == NULL)
        return rc;
    return store_raft_bootstrap(s, conf, NULL, err);
}

static int start_handles(struct raft_node *n, unsigned tick_ms, struct swm_err *err)
{
    int rc = uv_timer_init(n->loop, &n->ticker);
    if (rc == 0) {
        n->open_handles++;
        rc = uv_idle_init(n->loop, &n->kick);
    }
    if (rc == 0) {
        n->open_handles++;
        rc = uv_timer_start(&n->ticker, on_tick, tick_ms, tick_ms);
    }
    if (rc < 0)
        return swm_err_set(err, rc, "starting the raft node: %s", uv_strerror(rc));
    raft_node__kick(n);
    return 0;
}

int raft_node_open(uv_loop_t *loop, struct store *s, const struct raft_node_options *opt,
                   struct raft_transport *transport, struct raft_node **out, struct swm_err *err)
{
    if (opt->id == 0)
        return swm_err_set(err, -EINVAL, "starting the raft node: member id 0");
    struct raft_node *n = swm_calloc(1, sizeof(*n));
    if (n == NULL)
        return swm_err_set(err, -ENOMEM, "starting the raft node: out of memory");
    n->log.ops = &node_log_ops;
    n->loop = loop;
    n->store = s;
    n->on_leadership = opt->on_leadership;
    n->on_leadership_arg = opt->on_leadership_arg;
    n->ticker.data = n;
    n->kick.data = n;
    queue_init(&n->held);
    queue_init(&n->waiting);
    options_from(&n->core_opt, opt);
    int rc = bootstrap_if_empty(s, opt->bootstrap, err);
    if (rc == 0)
        rc = load_core(n, err);
    if (rc < 0) {
        swm_free(n);
        return rc;
    }
    rc = start_handles(n, opt->tick_ms ? opt->tick_ms : DEFAULT_TICK_MS, err);
    if (rc < 0) {
        raft_node_close(n); /* frees n once the handles it opened are closed */
        return rc;
    }
    n->transport = transport; /* only now: on failure the caller keeps it */
    if (transport != NULL) {
        transport->recv = on_frame;
        transport->recv_arg = n;
    }
    *out = n;
    return 0;
}

/* --- queries and reads ------------------------------------------------------------ */

struct store_log *raft_node_log(struct raft_node *n)
{
    return &n->log;
}

int raft_node_read_barrier(struct raft_node *n, raft_node_read_cb cb, void *arg)
{
    if (n->closing)
        return SWM_ESHUTDOWN;
    if (n->core == NULL)
        return n->dead.code;
    struct read_request *r = swm_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    *r = (struct read_request){.ctx = ++n->next_read_ctx,
                               .deadline = n->ticks + 2 * n->core_opt.election_tick,
                               .cb = cb,
                               .arg = arg,
                               .next = n->reads};
    int rc = raft_read_index(n->core, r->ctx);
    if (rc < 0) {
        swm_free(r);
        return rc;
    }
    n->reads = r;
    raft_node__kick(n);
    return 0;
}

bool raft_node_is_leader(const struct raft_node *n)
{
    return n->leader;
}

uint64_t raft_node_leader(const struct raft_node *n)
{
    return n->leader_id;
}

const struct raft *raft_node_core(const struct raft_node *n)
{
    return n->core;
}
