/* The Raft state machine (DESIGN.md §5; Ongaro, "Consensus: Bridging Theory
 * and Practice", 2014 — "thesis" below). The structure follows etcd's raft:
 * a step function per role, per-follower progress with probe / replicate /
 * snapshot flow control, and a ready that hands the driver everything to
 * persist and send.
 *
 * Invariants kept here (the randomized test checks them from outside):
 * - Election safety (§3.6): at most one leader per term. A member grants one
 *   vote per term and the vote is durable before the grant is sent
 *   (messages_after_persist); a candidate counts its own vote only after it
 *   is durable (raft_advance).
 * - Log matching (§3.5): an append is accepted only if the entry before it
 *   matches; conflicting suffixes are truncated, never a committed entry.
 * - Leader completeness (§3.6.2): votes go only to candidates whose log is
 *   at least as up to date; a leader commits by counting replicas only
 *   entries of its own term (Figure 3.7 / "Figure 8"), and appends a no-op
 *   on election so that happens promptly (§6.4).
 * - The leader's own log counts toward a quorum only once it is durable.
 * - Membership (§4.1): one single-server change at a time; each member uses
 *   the latest configuration in its log, committed or not; a truncation
 *   that removes a configuration entry reverts to the previous one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "manager/raft/internal.h"

/* --- per-follower progress (leader only) ------------------------------- */

enum pstate {
    PROBE,     /* one append in flight until a response: finding the match */
    REPLICATE, /* pipelining up to max_inflight_msgs appends */
    SNAPSHOT,  /* streaming a snapshot; appends paused */
};

struct progress {
    uint64_t id;
    enum raft_role role;
    uint64_t match, next;
    enum pstate state;
    bool probe_sent;
    bool recent_active; /* heard from since the last check-quorum round */
    int vote;           /* election in progress: -1 unknown, 0 rejected, 1 granted */
    uint64_t read_ack;  /* highest read-index round it acknowledged */
    /* Ring of the last index of each append not yet acknowledged. */
    uint64_t *inflight;
    size_t in_start, in_count;
    /* Snapshot streaming: which snapshot, how many bytes the follower holds,
     * whether a chunk is in flight (stop-and-wait, one chunk per round). */
    uint64_t snap_index;
    uint64_t snap_offset;
    bool snap_chunk_sent;
};

struct read_req {
    uint64_t ctx;
    uint64_t index; /* commit index when leadership was confirmable; 0 until known */
    uint64_t seq;   /* heartbeat round confirming it; 0 until index is known */
    bool confirmed;
};

struct msgq {
    struct raft_message *v;
    size_t n, cap;
};

struct raft {
    struct raft_options opt;
    enum raft_state state;
    uint64_t term, vote, commit, applied;
    uint64_t lead;
    struct raft__log log;

    struct raft_configuration conf;
    uint64_t conf_index; /* entry (or snapshot) index conf comes from */
    /* Ids removed by the last committed configuration: only a committed
     * removal is final (an uncommitted one may be truncated away, and its
     * "removed" member may be the next leader). */
    uint64_t *gone;
    size_t n_gone;
    uint64_t gone_index;
    struct progress *prs; /* one per member of conf, self included */
    size_t n_prs;

    unsigned election_elapsed, heartbeat_elapsed, randomized_timeout;
    uint64_t rng;
    uint64_t transferee;
    uint64_t pending_conf_index;
    bool bcast_pending; /* proposals batched until the next raft_ready */
    bool oom;           /* a message could not be queued during this input */

    /* The latest snapshot; data is a blob (NULL if we hold no bytes). */
    struct raft_snapshot_meta snap;
    const void *snap_data;
    size_t snap_len;
    bool snap_has_data;   /* false after a restart that did not load the bytes */
    bool install_pending; /* a received snapshot for the next ready */

    /* A snapshot being streamed to us, keyed by sender, term and snapshot. */
    struct {
        bool active;
        uint64_t from, term, index, sterm;
        struct swm_buf buf;
    } rx;

    uint64_t snapshot_request;
    bool snapshot_request_sent;

    struct read_req *reads;
    size_t n_reads, cap_reads;
    uint64_t read_seq;
    struct raft_read_state *read_out;
    size_t n_read_out, cap_read_out;

    struct raft_hard_state persisted_hs;
    uint64_t handed_last; /* highest index ever handed to storage */
    const struct raft_ready *outstanding;
    uint64_t prev_lead;
    enum raft_state prev_state;

    struct msgq msgs, msgs_after;
};

/* --- small helpers ------------------------------------------------------ */

static uint64_t rng_next(struct raft *r)
{
    /* splitmix64: tiny, good enough for timeouts, deterministic per seed. */
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void randomize_timeout(struct raft *r)
{
    /* Thesis §3.4: a timeout random in [T, 2T) makes split votes rare. */
    r->randomized_timeout = r->opt.election_tick + (unsigned)(rng_next(r) % r->opt.election_tick);
}

static uint64_t last_index(const struct raft *r)
{
    return raft__log_last_index(&r->log);
}

static uint64_t term_at(const struct raft *r, uint64_t index)
{
    uint64_t t = 0;
    raft__log_term(&r->log, index, &t);
    return t;
}

static struct progress *progress_find(struct raft *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static bool is_voter(const struct raft *r, uint64_t id)
{
    const struct raft_server *s = raft_configuration_get(&r->conf, id);
    return s != NULL && s->role == RAFT_VOTER;
}

/* Only voters of the current configuration campaign (thesis §4.2.1:
 * learners and members not, or no longer, in the configuration do not). */
static bool promotable(const struct raft *r)
{
    return is_voter(r, r->opt.id);
}

static size_t quorum(const struct raft *r)
{
    return raft_configuration_voters(&r->conf) / 2 + 1;
}

/* --- messages ----------------------------------------------------------- */

static void message_release(struct raft_message *m)
{
    for (size_t i = 0; i < m->n_entries; i++)
        raft__entry_release(&m->entries[i]);
    swm_free(m->entries);
    raft_configuration_free(&m->snapshot.conf);
    raft__blob_release(m->data);
    memset(m, 0, sizeof(*m));
}

static void msgq_free(struct msgq *q)
{
    for (size_t i = 0; i < q->n; i++)
        message_release(&q->v[i]);
    swm_free(q->v);
    memset(q, 0, sizeof(*q));
}

/* Responses whose content a crash could contradict (a vote, an ack of
 * entries) wait until the state they report is durable (thesis §3.8). */
static bool needs_persist(enum raft_message_type t)
{
    return t == RAFT_MSG_VOTE_RESP || t == RAFT_MSG_PREVOTE_RESP || t == RAFT_MSG_APPEND_RESP;
}

/* Queues a zeroed message of type t to `to` at the current term and returns
 * it, or NULL (noted in r->oom; a lost message is like a dropped one, which
 * Raft tolerates). The pointer is valid until the next send. */
static struct raft_message *send(struct raft *r, enum raft_message_type t, uint64_t to)
{
    struct msgq *q = needs_persist(t) ? &r->msgs_after : &r->msgs;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct raft_message *v = swm_realloc(q->v, cap * sizeof(*v));
        if (v == NULL) {
            r->oom = true;
            return NULL;
        }
        q->v = v;
        q->cap = cap;
    }
    struct raft_message *m = &q->v[q->n++];
    memset(m, 0, sizeof(*m));
    m->type = t;
    m->from = r->opt.id;
    m->to = to;
    m->term = r->term;
    return m;
}

/* Undoes the last send() to q when filling it failed. */
static void unsend(struct raft *r, enum raft_message_type t)
{
    struct msgq *q = needs_persist(t) ? &r->msgs_after : &r->msgs;
    message_release(&q->v[--q->n]);
    r->oom = true;
}

/* --- progress ----------------------------------------------------------- */

static void progress_init(struct raft *r, struct progress *pr, uint64_t id, enum raft_role role)
{
    uint64_t *inflight = pr->inflight;
    memset(pr, 0, sizeof(*pr));
    pr->inflight = inflight;
    pr->id = id;
    pr->role = role;
    pr->next = last_index(r) + 1;
    pr->state = PROBE;
    pr->vote = -1;
    if (id == r->opt.id)
        pr->match = r->log.stable;
}

static bool inflight_full(const struct raft *r, const struct progress *pr)
{
    return pr->in_count >= r->opt.max_inflight_msgs;
}

static void inflight_add(struct raft *r, struct progress *pr, uint64_t index)
{
    size_t cap = r->opt.max_inflight_msgs;
    pr->inflight[(pr->in_start + pr->in_count) % cap] = index;
    pr->in_count++;
}

/* Frees the slots of appends acknowledged up to index. */
static void inflight_free_to(struct raft *r, struct progress *pr, uint64_t index)
{
    size_t cap = r->opt.max_inflight_msgs;
    while (pr->in_count > 0 && pr->inflight[pr->in_start] <= index) {
        pr->in_start = (pr->in_start + 1) % cap;
        pr->in_count--;
    }
}

static void become_probe(struct progress *pr)
{
    if (pr->state == SNAPSHOT)
        pr->next = (pr->match > pr->snap_index ? pr->match : pr->snap_index) + 1;
    else
        pr->next = pr->match + 1;
    pr->state = PROBE;
    pr->probe_sent = false;
    pr->in_start = pr->in_count = 0;
}

static void become_replicate(struct raft *r, struct progress *pr)
{
    if (pr->inflight == NULL) {
        pr->inflight = swm_malloc(r->opt.max_inflight_msgs * sizeof(*pr->inflight));
        if (pr->inflight == NULL) {
            r->oom = true; /* stay in probe: slower, still correct */
            return;
        }
    }
    pr->state = REPLICATE;
    pr->next = pr->match + 1;
    pr->in_start = pr->in_count = 0;
}

static bool progress_paused(const struct raft *r, const struct progress *pr)
{
    switch (pr->state) {
    case PROBE:
        return pr->probe_sent;
    case REPLICATE:
        return inflight_full(r, pr);
    case SNAPSHOT:
        return true;
    }
    return true;
}

/* Returns true if the acknowledgement of index moved the match forward. */
static bool progress_update(struct progress *pr, uint64_t index)
{
    bool updated = false;
    if (pr->match < index) {
        pr->match = index;
        updated = true;
        pr->probe_sent = false;
    }
    if (pr->next < index + 1)
        pr->next = index + 1;
    return updated;
}

/* A rejection of the append after `rejected`: moves next back, using the
 * follower's hint (thesis §5.4.2). Returns false for a stale rejection. */
static bool progress_decr_to(struct progress *pr, uint64_t rejected, uint64_t match_hint)
{
    if (pr->state == REPLICATE) {
        if (rejected <= pr->match)
            return false;
        pr->next = pr->match + 1;
        return true;
    }
    if (pr->next - 1 != rejected)
        return false;
    uint64_t next = rejected < match_hint + 1 ? rejected : match_hint + 1;
    if (next < pr->match + 1)
        next = pr->match + 1;
    pr->next = next;
    pr->probe_sent = false;
    return true;
}

static void progress_free_all(struct raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++)
        swm_free(r->prs[i].inflight);
    swm_free(r->prs);
    r->prs = NULL;
    r->n_prs = 0;
}

/* Allocates the progress array for configuration c (phase one of a
 * membership change: the only step that can fail). */
static int progress_alloc(const struct raft_configuration *c, struct progress **out)
{
    *out = c->n_servers ? swm_calloc(c->n_servers, sizeof(**out)) : NULL;
    return c->n_servers && *out == NULL ? -ENOMEM : 0;
}

/* Phase two: makes r use configuration c (taking it over; the old one is
 * freed) with the array prs from progress_alloc, keeping the progress of
 * members that stay. Cannot fail. */
static void conf_install(struct raft *r, struct raft_configuration *c, uint64_t index,
                         struct progress *prs)
{
    for (size_t i = 0; i < c->n_servers; i++) {
        const struct raft_server *s = &c->servers[i];
        struct progress *old = progress_find(r, s->id);
        if (old != NULL) {
            prs[i] = *old;
            old->inflight = NULL;
            prs[i].role = s->role;
        } else {
            progress_init(r, &prs[i], s->id, s->role);
        }
    }
    progress_free_all(r);
    r->prs = prs;
    r->n_prs = c->n_servers;
    raft_configuration_free(&r->conf);
    r->conf = *c;
    memset(c, 0, sizeof(*c));
    r->conf_index = index;
    if (r->transferee != 0 && !is_voter(r, r->transferee))
        r->transferee = 0;
}

/* --- configuration ------------------------------------------------------ */

/* Thesis §4.1: the configuration in effect is the latest in the log,
 * committed or not; entries up to the snapshot are covered by its conf. */
static int conf_at(struct raft *r, uint64_t index, struct raft_configuration *out,
                   uint64_t *conf_index)
{
    uint64_t floor = r->snap.index > r->log.offset ? r->snap.index : r->log.offset;
    if (index > last_index(r))
        index = last_index(r);
    for (uint64_t i = index; i > floor; i--) {
        const struct raft_entry *e = raft__log_at(&r->log, i);
        if (e->type != RAFT_ENTRY_CONF)
            continue;
        int rc = raft_configuration_decode(e->data, e->len, out, NULL);
        if (rc < 0)
            return rc == -ENOMEM ? rc : SWM_ECORRUPT;
        *conf_index = i;
        return 0;
    }
    int rc = raft_configuration_copy(out, &r->snap.conf);
    if (rc < 0)
        return rc;
    *conf_index = r->snap.index;
    return 0;
}

static int refresh_conf(struct raft *r)
{
    struct raft_configuration c;
    struct progress *prs;
    uint64_t idx;
    int rc = conf_at(r, last_index(r), &c, &idx);
    if (rc < 0)
        return rc;
    rc = progress_alloc(&c, &prs);
    if (rc < 0) {
        raft_configuration_free(&c);
        return rc;
    }
    conf_install(r, &c, idx, prs);
    return 0;
}

/* --- reads -------------------------------------------------------------- */

static void fail_reads(struct raft *r)
{
    size_t keep = 0;
    for (size_t i = 0; i < r->n_reads; i++) {
        struct read_req *q = &r->reads[i];
        if (q->confirmed) {
            r->reads[keep++] = *q; /* confirmed while leader: still linearizable */
            continue;
        }
        if (r->n_read_out == r->cap_read_out) {
            size_t cap = r->cap_read_out ? r->cap_read_out * 2 : 8;
            struct raft_read_state *v = swm_realloc(r->read_out, cap * sizeof(*v));
            if (v == NULL) {
                r->oom = true;
                continue; /* the caller times the read out */
            }
            r->read_out = v;
            r->cap_read_out = cap;
        }
        r->read_out[r->n_read_out++] =
            (struct raft_read_state){.ctx = q->ctx, .index = 0, .status = SWM_ENOTLEADER};
    }
    r->n_reads = keep;
}

/* A read is confirmed once a quorum of voters answered a heartbeat sent
 * after it arrived (thesis §6.4 step 3). */
static void check_reads(struct raft *r)
{
    for (size_t i = 0; i < r->n_reads; i++) {
        struct read_req *q = &r->reads[i];
        if (q->confirmed)
            continue;
        if (q->seq == 0)
            break;
        size_t acks = 0;
        for (size_t j = 0; j < r->n_prs; j++) {
            const struct progress *pr = &r->prs[j];
            if (pr->role == RAFT_VOTER && (pr->id == r->opt.id || pr->read_ack >= q->seq))
                acks++;
        }
        if (acks < quorum(r))
            break;
        q->confirmed = true;
    }
}

/* Moves confirmed reads whose index is applied to read_out. */
static int release_reads(struct raft *r)
{
    size_t done = 0;
    while (done < r->n_reads && r->reads[done].confirmed && r->reads[done].index <= r->applied)
        done++;
    if (done == 0)
        return 0;
    if (r->n_read_out + done > r->cap_read_out) {
        size_t cap = r->n_read_out + done + 8;
        struct raft_read_state *v = swm_realloc(r->read_out, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        r->read_out = v;
        r->cap_read_out = cap;
    }
    for (size_t i = 0; i < done; i++)
        r->read_out[r->n_read_out++] = (struct raft_read_state){
            .ctx = r->reads[i].ctx, .index = r->reads[i].index, .status = 0};
    memmove(r->reads, r->reads + done, (r->n_reads - done) * sizeof(*r->reads));
    r->n_reads -= done;
    return 0;
}

/* --- role changes ------------------------------------------------------- */

static void reset(struct raft *r, uint64_t term)
{
    if (term != r->term) {
        r->term = term;
        r->vote = 0;
    }
    r->lead = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    randomize_timeout(r);
    r->transferee = 0;
    r->pending_conf_index = 0;
    r->bcast_pending = false;
    for (size_t i = 0; i < r->n_prs; i++)
        progress_init(r, &r->prs[i], r->prs[i].id, r->prs[i].role);
    if (r->state == RAFT_LEADER)
        fail_reads(r);
}

static void become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
    reset(r, term);
    r->state = RAFT_FOLLOWER;
    r->lead = lead;
}

static void bcast_heartbeat(struct raft *r, uint64_t ctx)
{
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->id == r->opt.id)
            continue;
        struct raft_message *m = send(r, RAFT_MSG_HEARTBEAT, pr->id);
        if (m == NULL)
            return;
        /* Never tell a follower to commit past what it is known to hold. */
        m->commit = pr->match < r->commit ? pr->match : r->commit;
        m->context = ctx;
    }
}

/* Called when the commit index moved on a leader. */
static void leader_committed(struct raft *r)
{
    /* Reads that arrived before this term committed an entry can now pin
     * their index (thesis §6.4 step 1). */
    bool started = false;
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].seq != 0)
            continue;
        if (!started) {
            r->read_seq++;
            started = true;
        }
        r->reads[i].index = r->commit;
        r->reads[i].seq = r->read_seq;
    }
    if (started) {
        check_reads(r);
        bcast_heartbeat(r, r->read_seq);
    }
    /* Thesis §4.2.2: a leader removed from the configuration manages the
     * cluster until that configuration is committed, then steps down. */
    if (!promotable(r) && r->commit >= r->conf_index)
        become_follower(r, r->term, 0);
}

/* Thesis §3.6.2: commit the highest index held by a quorum of voters, but
 * only if it is of the current term (an older entry is committed only
 * indirectly, by the Log Matching property). Returns true if it moved. */
static bool maybe_commit(struct raft *r)
{
    size_t nv = 0;
    uint64_t matches[64];
    uint64_t *m = matches;
    size_t voters = raft_configuration_voters(&r->conf);
    if (voters == 0)
        return false;
    if (voters > sizeof(matches) / sizeof(matches[0])) {
        m = swm_malloc(voters * sizeof(*m));
        if (m == NULL) {
            r->oom = true;
            return false;
        }
    }
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].role == RAFT_VOTER)
            m[nv++] = r->prs[i].match;
    /* Insertion sort, descending: configurations are small. */
    for (size_t i = 1; i < nv; i++)
        for (size_t j = i; j > 0 && m[j - 1] < m[j]; j--) {
            uint64_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    uint64_t mci = m[quorum(r) - 1];
    if (m != matches)
        swm_free(m);
    if (mci <= r->commit || term_at(r, mci) != r->term)
        return false;
    r->commit = mci;
    leader_committed(r);
    return true;
}

static void send_snapshot_chunk(struct raft *r, struct progress *pr)
{
    if (pr->snap_chunk_sent)
        return;
    if (pr->snap_index != r->snap.index) {
        /* We took a newer snapshot meanwhile: restart with it. */
        pr->snap_index = r->snap.index;
        pr->snap_offset = 0;
    }
    uint64_t off = pr->snap_offset <= r->snap_len ? pr->snap_offset : 0;
    size_t n = r->snap_len - (size_t)off;
    if (n > r->opt.snapshot_chunk_size)
        n = r->opt.snapshot_chunk_size;
    bool done = off + n == r->snap_len;
    struct raft_message *m = send(r, RAFT_MSG_SNAPSHOT, pr->id);
    if (m == NULL)
        return;
    m->snapshot.index = r->snap.index;
    m->snapshot.term = r->snap.term;
    m->snap_offset = off;
    m->done = done;
    if (n > 0) {
        m->data = raft__blob_new((const unsigned char *)r->snap_data + off, n);
        if (m->data == NULL) {
            unsend(r, RAFT_MSG_SNAPSHOT);
            return;
        }
        m->len = n;
    }
    /* The membership travels with the last chunk, which triggers install. */
    if (done && raft_configuration_copy(&m->snapshot.conf, &r->snap.conf) < 0) {
        unsend(r, RAFT_MSG_SNAPSHOT);
        return;
    }
    pr->snap_chunk_sent = true;
}

/* The follower needs entries we compacted: stream the snapshot. */
static bool send_snapshot(struct raft *r, struct progress *pr)
{
    if (!r->snap_has_data) {
        /* Restarted without the snapshot's bytes: ask the driver for one. */
        if (r->snapshot_request == 0) {
            r->snapshot_request = r->applied;
            r->snapshot_request_sent = false;
        }
        return false;
    }
    pr->state = SNAPSHOT;
    pr->snap_index = r->snap.index;
    pr->snap_offset = 0;
    pr->snap_chunk_sent = false;
    pr->in_start = pr->in_count = 0;
    send_snapshot_chunk(r, pr);
    return true;
}

/* Sends pr the entries from pr->next (thesis §3.5), bounded by
 * max_size_per_msg, or a snapshot if they were compacted. Returns true if
 * something was sent. */
static bool send_append(struct raft *r, struct progress *pr, bool send_if_empty)
{
    if (pr->id == r->opt.id || progress_paused(r, pr))
        return false;
    uint64_t prev = pr->next - 1, prev_term;
    if (!raft__log_term(&r->log, prev, &prev_term))
        return send_snapshot(r, pr);
    uint64_t last = last_index(r);
    size_t n = 0, bytes = 0;
    for (uint64_t i = pr->next; i <= last; i++) {
        size_t len = raft__log_at(&r->log, i)->len;
        if (n > 0 && bytes + len > r->opt.max_size_per_msg)
            break;
        bytes += len;
        n++;
    }
    if (n == 0 && !send_if_empty)
        return false;
    struct raft_message *m = send(r, RAFT_MSG_APPEND, pr->id);
    if (m == NULL)
        return false;
    m->index = prev;
    m->log_term = prev_term;
    m->commit = r->commit;
    if (n > 0) {
        m->entries = swm_malloc(n * sizeof(*m->entries));
        if (m->entries == NULL) {
            unsend(r, RAFT_MSG_APPEND);
            return false;
        }
        for (size_t i = 0; i < n; i++)
            raft__entry_share(&m->entries[i], raft__log_at(&r->log, pr->next + i));
        m->n_entries = n;
        uint64_t sent_last = pr->next + n - 1;
        if (pr->state == REPLICATE) {
            pr->next = sent_last + 1;
            inflight_add(r, pr, sent_last);
        } else {
            pr->probe_sent = true;
        }
    } else if (pr->state == PROBE) {
        pr->probe_sent = true;
    }
    return true;
}

static void send_all_to(struct raft *r, struct progress *pr)
{
    if (send_append(r, pr, true))
        while (pr->state == REPLICATE && send_append(r, pr, false))
            ;
}

static void bcast_append(struct raft *r)
{
    r->bcast_pending = false;
    for (size_t i = 0; i < r->n_prs; i++)
        send_all_to(r, &r->prs[i]);
}

static int become_leader(struct raft *r)
{
    reset(r, r->term);
    r->state = RAFT_LEADER;
    r->lead = r->opt.id;
    struct progress *self = progress_find(r, r->opt.id);
    if (self != NULL)
        self->recent_active = true;
    /* Thesis §4.1 (the single-server change bug): no configuration change
     * before an entry of this term commits. */
    r->pending_conf_index = last_index(r) + 1;
    /* Thesis §6.4: append a no-op so that an entry of this term commits
     * promptly and with it every earlier entry (Figure 3.7). */
    struct raft_entry noop = {.term = r->term, .type = RAFT_ENTRY_NORMAL};
    int rc = raft__log_append(&r->log, &noop);
    if (rc < 0)
        return rc;
    r->bcast_pending = true;
    return 0;
}

static void tally(const struct raft *r, size_t *granted, size_t *rejected)
{
    *granted = *rejected = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].role != RAFT_VOTER)
            continue;
        if (r->prs[i].vote == 1)
            (*granted)++;
        else if (r->prs[i].vote == 0)
            (*rejected)++;
    }
}

enum campaign { CAMPAIGN_PRE, CAMPAIGN_ELECTION, CAMPAIGN_TRANSFER };

static int campaign(struct raft *r, enum campaign kind);

/* Acts on the votes so far. */
static int check_election(struct raft *r)
{
    size_t granted, rejected;
    tally(r, &granted, &rejected);
    size_t q = quorum(r);
    if (granted >= q) {
        if (r->state == RAFT_PRECANDIDATE)
            return campaign(r, CAMPAIGN_ELECTION);
        return become_leader(r);
    }
    if (rejected >= q)
        become_follower(r, r->term, 0);
    return 0;
}

static int campaign(struct raft *r, enum campaign kind)
{
    if (!promotable(r))
        return 0;
    enum raft_message_type type;
    uint64_t term;
    if (kind == CAMPAIGN_PRE) {
        /* Thesis §9.6: ask first whether we could win, without bumping the
         * term, so a partitioned member cannot disrupt the cluster. */
        r->state = RAFT_PRECANDIDATE;
        r->lead = 0;
        for (size_t i = 0; i < r->n_prs; i++)
            r->prs[i].vote = -1;
        type = RAFT_MSG_PREVOTE;
        term = r->term + 1;
        progress_find(r, r->opt.id)->vote = 1;
    } else {
        reset(r, r->term + 1);
        r->state = RAFT_CANDIDATE;
        r->vote = r->opt.id;
        type = RAFT_MSG_VOTE;
        term = r->term;
        /* Our own vote counts once it is durable (raft_advance). */
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->id == r->opt.id || pr->role != RAFT_VOTER)
            continue;
        struct raft_message *m = send(r, type, pr->id);
        if (m == NULL)
            break;
        m->term = term;
        m->index = last_index(r);
        m->log_term = raft__log_last_term(&r->log);
        if (kind == CAMPAIGN_TRANSFER)
            m->context = RAFT_CAMPAIGN_TRANSFER;
    }
    if (kind == CAMPAIGN_PRE)
        return check_election(r);
    return 0;
}

/* --- handlers ----------------------------------------------------------- */

static void respond(struct raft *r, const struct raft_message *to, enum raft_message_type t,
                    uint64_t term, bool reject)
{
    struct raft_message *m = send(r, t, to->from);
    if (m == NULL)
        return;
    m->term = term;
    m->reject = reject;
}

static void handle_vote(struct raft *r, const struct raft_message *m)
{
    enum raft_message_type resp =
        m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PREVOTE_RESP;
    /* One vote per term (§3.6); a pre-vote for a future term promises
     * nothing. */
    bool can_vote = r->vote == m->from || (r->vote == 0 && r->lead == 0) ||
                    (m->type == RAFT_MSG_PREVOTE && m->term > r->term);
    if (can_vote && raft__log_up_to_date(&r->log, m->index, m->log_term)) {
        respond(r, m, resp, m->term, false);
        if (m->type == RAFT_MSG_VOTE) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
    } else {
        respond(r, m, resp, r->term, true);
    }
}

static void commit_to(struct raft *r, uint64_t commit)
{
    if (commit > last_index(r))
        commit = last_index(r);
    if (commit > r->commit)
        r->commit = commit;
}

static int handle_append(struct raft *r, const struct raft_message *m)
{
    if (m->index < r->commit) {
        struct raft_message *out = send(r, RAFT_MSG_APPEND_RESP, m->from);
        if (out != NULL)
            out->index = r->commit;
        return 0;
    }
    if (!raft__log_match(&r->log, m->index, m->log_term)) {
        /* Fast back-off: point the leader at the last index whose term is
         * not above the one it sent, skipping a whole conflicting term per
         * round trip. */
        uint64_t hint = m->index < last_index(r) ? m->index : last_index(r);
        hint = raft__log_find_conflict_by_term(&r->log, hint, m->log_term);
        struct raft_message *out = send(r, RAFT_MSG_APPEND_RESP, m->from);
        if (out != NULL) {
            out->index = m->index;
            out->reject = true;
            out->reject_hint = hint;
            out->log_term = term_at(r, hint);
        }
        return 0;
    }
    /* Log matching (§3.5): find the first entry we do not already hold. */
    size_t first_new = m->n_entries;
    for (size_t i = 0; i < m->n_entries; i++) {
        if (!raft__log_match(&r->log, m->entries[i].index, m->entries[i].term)) {
            first_new = i;
            break;
        }
    }
    if (first_new < m->n_entries) {
        uint64_t from = m->entries[first_new].index;
        if (from <= r->commit)
            return SWM_ECORRUPT; /* a leader would overwrite a committed entry */
        size_t n = m->n_entries - first_new;
        bool conf_changed = r->conf_index >= from;
        int rc = raft__log_reserve(&r->log, n);
        if (rc < 0)
            return rc;
        struct raft_entry *copies = swm_malloc(n * sizeof(*copies));
        if (copies == NULL)
            return -ENOMEM;
        size_t made = 0;
        for (; made < n; made++) {
            if (raft__entry_copy_in(&copies[made], &m->entries[first_new + made]) < 0)
                break;
            conf_changed |= copies[made].type == RAFT_ENTRY_CONF;
        }
        if (made < n) {
            for (size_t i = 0; i < made; i++)
                raft__entry_release(&copies[i]);
            swm_free(copies);
            return -ENOMEM;
        }
        if (from <= last_index(r))
            raft__log_truncate(&r->log, from);
        /* Room was reserved above; truncation only frees slots. */
        for (size_t i = 0; i < n; i++) {
            raft__log_append(&r->log, &copies[i]);
            raft__entry_release(&copies[i]);
        }
        swm_free(copies);
        if (conf_changed) {
            rc = refresh_conf(r);
            if (rc < 0)
                return rc;
        }
    }
    uint64_t last_new = m->index + m->n_entries;
    commit_to(r, m->commit < last_new ? m->commit : last_new);
    struct raft_message *out = send(r, RAFT_MSG_APPEND_RESP, m->from);
    if (out != NULL)
        out->index = last_new;
    return 0;
}

static void handle_heartbeat(struct raft *r, const struct raft_message *m)
{
    commit_to(r, m->commit);
    struct raft_message *out = send(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
    if (out != NULL)
        out->context = m->context;
}

/* Replaces our state by a received snapshot (thesis §5.3). */
static int install_snapshot(struct raft *r, const struct raft_message *m)
{
    uint64_t idx = m->snapshot.index, sterm = m->snapshot.term;
    if (raft__log_match(&r->log, idx, sterm)) {
        /* We hold the snapshot's last entry: the log already covers it. */
        commit_to(r, idx);
        struct raft_message *out = send(r, RAFT_MSG_APPEND_RESP, m->from);
        if (out != NULL)
            out->index = r->commit;
        return 0;
    }
    struct raft_configuration conf;
    int rc = raft_configuration_copy(&conf, &m->snapshot.conf);
    if (rc < 0)
        return rc;
    const void *data = NULL;
    size_t len = r->rx.buf.len;
    if (len > 0 && (data = raft__blob_new(r->rx.buf.data, len)) == NULL) {
        raft_configuration_free(&conf);
        return -ENOMEM;
    }
    raft__log_reset(&r->log, idx, sterm);
    r->commit = idx;
    r->applied = idx;
    raft_configuration_free(&r->snap.conf);
    raft__blob_release(r->snap_data);
    r->snap.index = idx;
    r->snap.term = sterm;
    r->snap.conf = conf;
    r->snap_data = data;
    r->snap_len = len;
    r->snap_has_data = true;
    r->install_pending = true;
    r->snapshot_request = 0;
    swm_buf_free(&r->rx.buf);
    r->rx.active = false;
    rc = refresh_conf(r);
    if (rc < 0)
        return rc;
    struct raft_message *out = send(r, RAFT_MSG_APPEND_RESP, m->from);
    if (out != NULL)
        out->index = idx;
    return 0;
}

/* One InstallSnapshot chunk: reassemble in order, install when done. */
static int handle_snapshot(struct raft *r, const struct raft_message *m)
{
    uint64_t idx = m->snapshot.index, sterm = m->snapshot.term;
    if (idx <= r->commit) {
        /* Stale: we are already past it. Tell the leader where we are. */
        r->rx.active = false;
        struct raft_message *out = send(r, RAFT_MSG_APPEND_RESP, m->from);
        if (out != NULL)
            out->index = r->commit;
        return 0;
    }
    if (m->snap_offset == 0) {
        r->rx.active = true;
        r->rx.from = m->from;
        r->rx.term = m->term;
        r->rx.index = idx;
        r->rx.sterm = sterm;
        r->rx.buf.len = 0;
    }
    bool same = r->rx.active && r->rx.from == m->from && r->rx.term == m->term &&
                r->rx.index == idx && r->rx.sterm == sterm;
    if (same && m->snap_offset == r->rx.buf.len && m->len > 0) {
        int rc = swm_buf_append(&r->rx.buf, m->data, m->len);
        if (rc < 0)
            return rc;
    }
    if (same && m->done && r->rx.buf.len == m->snap_offset + m->len)
        return install_snapshot(r, m);
    struct raft_message *out = send(r, RAFT_MSG_SNAPSHOT_RESP, m->from);
    if (out != NULL) {
        out->snapshot.index = idx;
        out->snapshot.term = sterm;
        out->snap_offset = same ? r->rx.buf.len : 0;
        out->reject = !same;
    }
    return 0;
}

static void send_timeout_now(struct raft *r, uint64_t to)
{
    send(r, RAFT_MSG_TIMEOUT_NOW, to);
}

static void handle_append_resp(struct raft *r, const struct raft_message *m)
{
    struct progress *pr = progress_find(r, m->from);
    if (pr == NULL)
        return;
    pr->recent_active = true;
    if (m->reject) {
        uint64_t next_probe = m->reject_hint;
        if (m->log_term > 0)
            next_probe = raft__log_find_conflict_by_term(&r->log, m->reject_hint, m->log_term);
        if (progress_decr_to(pr, m->index, next_probe)) {
            if (pr->state == REPLICATE)
                become_probe(pr);
            send_append(r, pr, false);
        }
        return;
    }
    bool was_paused = progress_paused(r, pr);
    if (!progress_update(pr, m->index))
        return;
    switch (pr->state) {
    case PROBE:
        become_replicate(r, pr);
        break;
    case SNAPSHOT:
        if (pr->match >= pr->snap_index) {
            become_probe(pr);
            become_replicate(r, pr);
        }
        break;
    case REPLICATE:
        inflight_free_to(r, pr, m->index);
        break;
    }
    if (maybe_commit(r)) {
        if (r->state != RAFT_LEADER)
            return;
        bcast_append(r);
    } else if (was_paused) {
        /* Even empty: the follower learns the commit index. */
        send_append(r, pr, true);
    }
    /* The window opened: send what fits (size-limited appends). */
    while (pr->state == REPLICATE && send_append(r, pr, false))
        ;
    if (m->from == r->transferee && pr->match == last_index(r))
        send_timeout_now(r, m->from);
}

static void handle_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
    struct progress *pr = progress_find(r, m->from);
    if (pr == NULL)
        return;
    pr->recent_active = true;
    pr->probe_sent = false;
    if (pr->state == REPLICATE && inflight_full(r, pr)) {
        pr->in_start = (pr->in_start + 1) % r->opt.max_inflight_msgs;
        pr->in_count--;
    }
    if (pr->state == SNAPSHOT) {
        pr->snap_chunk_sent = false; /* the chunk may be lost: resend */
        send_snapshot_chunk(r, pr);
    } else if (pr->match < last_index(r)) {
        /* Even empty: if appends were lost, the follower's rejection of
         * this one makes us resend them. */
        send_append(r, pr, true);
    }
    if (m->context > pr->read_ack) {
        pr->read_ack = m->context;
        check_reads(r);
    }
}

static void handle_snapshot_resp(struct raft *r, const struct raft_message *m)
{
    struct progress *pr = progress_find(r, m->from);
    if (pr == NULL)
        return;
    pr->recent_active = true;
    if (pr->state != SNAPSHOT || m->snapshot.index != pr->snap_index)
        return;
    pr->snap_offset = m->reject ? 0 : m->snap_offset;
    pr->snap_chunk_sent = false;
    send_snapshot_chunk(r, pr);
}

static int step_leader(struct raft *r, const struct raft_message *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP:
        handle_append_resp(r, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        handle_heartbeat_resp(r, m);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        handle_snapshot_resp(r, m);
        break;
    default:
        break; /* votes of a finished election, a same-term leader cannot exist */
    }
    return 0;
}

static int step_follower(struct raft *r, const struct raft_message *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        r->lead = m->from;
        return handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->lead = m->from;
        handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        r->election_elapsed = 0;
        r->lead = m->from;
        return handle_snapshot(r, m);
    case RAFT_MSG_TIMEOUT_NOW:
        /* Thesis §3.10: the leader brought us up to date; start at once,
         * skipping pre-vote, with a vote voters grant despite their lease. */
        return campaign(r, CAMPAIGN_TRANSFER);
    default:
        return 0;
    }
}

static int step_candidate(struct raft *r, const struct raft_message *m)
{
    enum raft_message_type mine =
        r->state == RAFT_PRECANDIDATE ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAPSHOT:
        /* A leader of our term exists (§3.4). */
        become_follower(r, m->term, m->from);
        return step_follower(r, m);
    case RAFT_MSG_PREVOTE_RESP:
    case RAFT_MSG_VOTE_RESP: {
        if (m->type != mine)
            return 0;
        struct progress *pr = progress_find(r, m->from);
        if (pr == NULL || pr->role != RAFT_VOTER)
            return 0;
        pr->vote = m->reject ? 0 : 1;
        return check_election(r);
    }
    default:
        return 0;
    }
}

static int step(struct raft *r, const struct raft_message *m)
{
    if (m->term > r->term) {
        if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
            /* Thesis §4.2.3: while we hear from a leader, ignore candidates
             * (a removed or partitioned member must not depose it) unless
             * the leader itself asked for the election. */
            bool force = m->type == RAFT_MSG_VOTE && m->context == RAFT_CAMPAIGN_TRANSFER;
            bool in_lease =
                r->opt.check_quorum && r->lead != 0 && r->election_elapsed < r->opt.election_tick;
            if (!force && in_lease)
                return 0;
        }
        if (m->type == RAFT_MSG_PREVOTE) {
            /* A pre-vote never changes our term. */
        } else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
            /* Granted for the term we would campaign in. */
        } else if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                   m->type == RAFT_MSG_SNAPSHOT) {
            become_follower(r, m->term, m->from);
        } else {
            become_follower(r, m->term, 0);
        }
    } else if (m->term < r->term) {
        if ((r->opt.check_quorum || r->opt.pre_vote) &&
            (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
            /* A stale leader (say, back from a partition) learns our term
             * and steps down; with pre-vote it could otherwise never. */
            send(r, RAFT_MSG_APPEND_RESP, m->from);
        } else if (m->type == RAFT_MSG_PREVOTE) {
            respond(r, m, RAFT_MSG_PREVOTE_RESP, r->term, true);
        }
        return 0;
    }

    if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
        handle_vote(r, m);
        return 0;
    }
    switch (r->state) {
    case RAFT_LEADER:
        return step_leader(r, m);
    case RAFT_CANDIDATE:
    case RAFT_PRECANDIDATE:
        return step_candidate(r, m);
    case RAFT_FOLLOWER:
        return step_follower(r, m);
    }
    return 0;
}

/* --- inputs ------------------------------------------------------------- */

static int finish(struct raft *r, int rc)
{
    if (rc == 0 && r->oom)
        rc = -ENOMEM;
    r->oom = false;
    return rc;
}

/* Refreshes `gone` once the configuration in effect is committed. */
static void sync_gone(struct raft *r)
{
    if (r->conf_index > r->commit || r->gone_index == r->conf_index || r->conf.n_removed == 0)
        return;
    uint64_t *v = swm_malloc(r->conf.n_removed * sizeof(*v));
    if (v == NULL)
        return; /* keep the older, smaller set; retried on the next step */
    memcpy(v, r->conf.removed, r->conf.n_removed * sizeof(*v));
    swm_free(r->gone);
    r->gone = v;
    r->n_gone = r->conf.n_removed;
    r->gone_index = r->conf_index;
}

static bool is_gone(const struct raft *r, uint64_t id)
{
    if (raft_configuration_is_removed(&r->snap.conf, id))
        return true;
    for (size_t i = 0; i < r->n_gone; i++)
        if (r->gone[i] == id)
            return true;
    return false;
}

int raft_step(struct raft *r, const struct raft_message *m)
{
    if (m->to != r->opt.id || m->from == 0 || m->from == r->opt.id || m->type < 1 ||
        m->type > RAFT_MSG_TYPE_MAX)
        return -EINVAL;
    /* Ids are never reused: whatever a member removed by a committed
     * configuration says is ignored. */
    sync_gone(r);
    if (is_gone(r, m->from))
        return 0;
    return finish(r, step(r, m));
}

static bool quorum_active(struct raft *r)
{
    size_t active = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->role == RAFT_VOTER && (pr->id == r->opt.id || pr->recent_active))
            active++;
        if (pr->id != r->opt.id)
            pr->recent_active = false;
    }
    return active >= quorum(r);
}

int raft_tick(struct raft *r)
{
    int rc = 0;
    if (r->state == RAFT_LEADER) {
        r->heartbeat_elapsed++;
        r->election_elapsed++;
        if (r->election_elapsed >= r->opt.election_tick) {
            r->election_elapsed = 0;
            /* Check-quorum (thesis §6.2): a leader that has not heard from
             * a quorum for an election timeout steps down, so clients stop
             * using a leader that cannot commit. */
            if (r->opt.check_quorum && !quorum_active(r)) {
                become_follower(r, r->term, 0);
                return finish(r, 0);
            }
            r->transferee = 0; /* transfer timed out (§3.10) */
        }
        if (r->heartbeat_elapsed >= r->opt.heartbeat_tick) {
            r->heartbeat_elapsed = 0;
            bcast_heartbeat(r, r->read_seq);
        }
    } else {
        r->election_elapsed++;
        if (promotable(r) && r->election_elapsed >= r->randomized_timeout) {
            r->election_elapsed = 0;
            rc = campaign(r, r->opt.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION);
        }
    }
    return finish(r, rc);
}

int raft_campaign(struct raft *r)
{
    if (r->state == RAFT_LEADER)
        return 0;
    if (!promotable(r))
        return -EINVAL;
    r->election_elapsed = 0;
    return finish(r, campaign(r, r->opt.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION));
}

static int append_local(struct raft *r, const struct raft_entry *src, size_t n, uint64_t *index)
{
    int rc = raft__log_reserve(&r->log, n);
    if (rc < 0)
        return rc;
    struct raft_entry *copies = swm_malloc(n * sizeof(*copies));
    if (copies == NULL)
        return -ENOMEM;
    size_t made = 0;
    for (; made < n; made++)
        if (raft__entry_copy_in(&copies[made], &src[made]) < 0)
            break;
    if (made < n) {
        for (size_t i = 0; i < made; i++)
            raft__entry_release(&copies[i]);
        swm_free(copies);
        return -ENOMEM;
    }
    *index = last_index(r) + 1;
    for (size_t i = 0; i < n; i++) {
        copies[i].term = r->term;
        raft__log_append(&r->log, &copies[i]);
        raft__entry_release(&copies[i]);
    }
    swm_free(copies);
    r->bcast_pending = true;
    return 0;
}

int raft_propose(struct raft *r, const struct raft_buffer *bufs, size_t n, uint64_t *index,
                 uint64_t *term)
{
    if (n == 0)
        return -EINVAL;
    if (r->state != RAFT_LEADER || r->transferee != 0)
        return SWM_ENOTLEADER;
    struct raft_entry stack[16];
    struct raft_entry *es = n <= 16 ? stack : swm_malloc(n * sizeof(*es));
    if (es == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        es[i] = (struct raft_entry){.type = RAFT_ENTRY_NORMAL,
                                    .data = bufs[i].len ? bufs[i].base : NULL,
                                    .len = bufs[i].len};
    uint64_t first;
    int rc = append_local(r, es, n, &first);
    if (es != stack)
        swm_free(es);
    if (rc < 0)
        return rc;
    *index = first;
    *term = r->term;
    return 0;
}

static int conf_add_id(uint64_t **ids, size_t *n, uint64_t id)
{
    uint64_t *v = swm_realloc(*ids, (*n + 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    v[(*n)++] = id;
    *ids = v;
    return 0;
}

int raft_propose_conf_change(struct raft *r, enum raft_conf_change type, uint64_t id,
                             uint64_t *index)
{
    if (r->state != RAFT_LEADER || r->transferee != 0)
        return SWM_ENOTLEADER;
    if (id == 0)
        return -EINVAL;
    /* Thesis §4.1: one change at a time; the next waits for the previous
     * one (and a new leader for its first entry) to commit. */
    if (r->pending_conf_index > r->commit || r->conf_index > r->commit)
        return SWM_EINUSE;
    if (raft_configuration_is_removed(&r->conf, id))
        return SWM_EEXISTS;
    const struct raft_server *s = raft_configuration_get(&r->conf, id);
    switch (type) {
    case RAFT_CC_ADD_VOTER:
    case RAFT_CC_ADD_LEARNER:
        if (s != NULL)
            return SWM_EEXISTS;
        break;
    case RAFT_CC_PROMOTE:
        if (s == NULL)
            return SWM_ENOTFOUND;
        if (s->role != RAFT_LEARNER)
            return -EINVAL;
        break;
    case RAFT_CC_REMOVE:
        if (s == NULL)
            return SWM_ENOTFOUND;
        if (s->role == RAFT_VOTER && raft_configuration_voters(&r->conf) == 1)
            return -EINVAL;
        break;
    default:
        return -EINVAL;
    }
    struct raft_configuration c;
    int rc = raft_configuration_copy(&c, &r->conf);
    if (rc < 0)
        return rc;
    struct swm_buf buf = {0};
    struct progress *prs = NULL;
    size_t pos = s ? (size_t)(s - r->conf.servers) : 0;
    switch (type) {
    case RAFT_CC_ADD_VOTER:
    case RAFT_CC_ADD_LEARNER: {
        struct raft_server *v = swm_realloc(c.servers, (c.n_servers + 1) * sizeof(*v));
        if (v == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        c.servers = v;
        c.servers[c.n_servers++] = (struct raft_server){
            .id = id, .role = type == RAFT_CC_ADD_VOTER ? RAFT_VOTER : RAFT_LEARNER};
        break;
    }
    case RAFT_CC_PROMOTE:
        c.servers[pos].role = RAFT_VOTER;
        break;
    default:
        memmove(&c.servers[pos], &c.servers[pos + 1], (c.n_servers - pos - 1) * sizeof(*c.servers));
        c.n_servers--;
        rc = conf_add_id(&c.removed, &c.n_removed, id);
        if (rc < 0)
            goto out;
        break;
    }
    rc = raft_configuration_encode(&c, &buf);
    if (rc < 0)
        goto out;
    rc = progress_alloc(&c, &prs);
    if (rc < 0)
        goto out;
    struct raft_entry e = {.type = RAFT_ENTRY_CONF, .data = buf.data, .len = buf.len};
    uint64_t idx;
    rc = append_local(r, &e, 1, &idx);
    if (rc < 0)
        goto out;
    /* Takes effect now, before commit (thesis §4.1). */
    conf_install(r, &c, idx, prs);
    prs = NULL;
    r->pending_conf_index = idx;
    *index = idx;
    /* A smaller quorum may already hold everything before the change. */
    maybe_commit(r);
out:
    swm_free(prs);
    raft_configuration_free(&c);
    swm_buf_free(&buf);
    return finish(r, rc);
}

int raft_transfer_leadership(struct raft *r, uint64_t to)
{
    if (r->state != RAFT_LEADER)
        return SWM_ENOTLEADER;
    if (to == r->opt.id)
        return -EINVAL;
    struct progress *pr = progress_find(r, to);
    if (pr == NULL || pr->role != RAFT_VOTER)
        return SWM_ENOTFOUND;
    r->transferee = to;
    r->election_elapsed = 0; /* the transfer gets one election timeout */
    if (pr->match == last_index(r))
        send_timeout_now(r, to);
    else
        send_append(r, pr, true);
    return finish(r, 0);
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    if (r->state != RAFT_LEADER)
        return SWM_ENOTLEADER;
    if (r->n_reads == r->cap_reads) {
        size_t cap = r->cap_reads ? r->cap_reads * 2 : 8;
        struct read_req *v = swm_realloc(r->reads, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        r->reads = v;
        r->cap_reads = cap;
    }
    struct read_req *q = &r->reads[r->n_reads++];
    *q = (struct read_req){.ctx = ctx};
    /* Thesis §6.4: the commit index is only known to be up to date once an
     * entry of this term committed; until then the read waits. */
    if (term_at(r, r->commit) == r->term) {
        q->index = r->commit;
        q->seq = ++r->read_seq;
        check_reads(r);
        if (!q->confirmed)
            bcast_heartbeat(r, r->read_seq);
    }
    return finish(r, 0);
}

int raft_snapshot_done(struct raft *r, uint64_t index, const void *data, size_t len,
                       struct raft_snapshot_meta *meta, uint64_t *compact_to)
{
    bool refill = index == r->snap.index && !r->snap_has_data;
    if (index > r->applied || (index <= r->snap.index && !refill) || index < r->log.offset)
        return -EINVAL;
    uint64_t term;
    if (!raft__log_term(&r->log, index, &term))
        return -EINVAL;
    struct raft_snapshot_meta out = {.index = index, .term = term};
    struct raft_configuration c = {0};
    const void *blob = NULL;
    uint64_t cidx;
    int rc = conf_at(r, index, &c, &cidx);
    if (rc < 0)
        return rc;
    rc = raft_configuration_copy(&out.conf, &c);
    if (rc < 0)
        goto fail;
    if (len > 0 && (blob = raft__blob_new(data, len)) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    raft_configuration_free(&r->snap.conf);
    raft__blob_release(r->snap_data);
    r->snap.index = index;
    r->snap.term = term;
    r->snap.conf = c;
    r->snap_data = blob;
    r->snap_len = len;
    r->snap_has_data = true;
    r->snapshot_request = 0;
    r->snapshot_request_sent = false;
    /* Keep a trailing window so slow followers catch up from the log
     * rather than with a whole snapshot; never drop what is not durable. */
    uint64_t target = index > r->opt.snapshot_trailing ? index - r->opt.snapshot_trailing : 0;
    if (target > r->log.stable)
        target = r->log.stable;
    if (target > r->log.offset) {
        raft__log_compact(&r->log, target);
        *compact_to = target;
    } else {
        *compact_to = 0;
    }
    *meta = out;
    return 0;
fail:
    raft_configuration_free(&c);
    raft_configuration_free(&out.conf);
    return rc;
}

/* --- ready -------------------------------------------------------------- */

static bool hs_equal(const struct raft_hard_state *a, const struct raft_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

static struct raft_hard_state hard_state(const struct raft *r)
{
    return (struct raft_hard_state){.term = r->term, .vote = r->vote, .commit = r->commit};
}

static bool reads_releasable(const struct raft *r)
{
    return r->n_reads > 0 && r->reads[0].confirmed && r->reads[0].index <= r->applied;
}

bool raft_has_ready(struct raft *r)
{
    if (r->outstanding != NULL)
        return false;
    struct raft_hard_state hs = hard_state(r);
    return r->bcast_pending || r->msgs.n > 0 || r->msgs_after.n > 0 ||
           !hs_equal(&hs, &r->persisted_hs) || r->log.stable < last_index(r) ||
           r->install_pending || r->commit > r->applied || reads_releasable(r) ||
           r->n_read_out > 0 || (r->snapshot_request != 0 && !r->snapshot_request_sent) ||
           r->lead != r->prev_lead || r->state != r->prev_state;
}

static int share_range(const struct raft *r, uint64_t lo, uint64_t hi, struct raft_entry **out,
                       size_t *n)
{
    *out = NULL;
    *n = 0;
    if (lo > hi)
        return 0;
    size_t cnt = (size_t)(hi - lo + 1);
    struct raft_entry *v = swm_malloc(cnt * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < cnt; i++)
        raft__entry_share(&v[i], raft__log_at(&r->log, lo + i));
    *out = v;
    *n = cnt;
    return 0;
}

int raft_ready(struct raft *r, struct raft_ready **out)
{
    if (r->outstanding != NULL)
        return SWM_EINUSE;
    if (r->bcast_pending && r->state == RAFT_LEADER)
        bcast_append(r);
    r->bcast_pending = false;
    r->oom = false; /* lost messages are retried by the protocol */
    int rc = release_reads(r);
    if (rc < 0)
        return rc;
    struct raft_ready *rd = swm_calloc(1, sizeof(*rd));
    if (rd == NULL)
        return -ENOMEM;
    rd->soft_state_changed = r->lead != r->prev_lead || r->state != r->prev_state;
    rd->leader = r->lead;
    rd->state = r->state;
    if (r->install_pending) {
        rd->has_snapshot = true;
        rd->snapshot.index = r->snap.index;
        rd->snapshot.term = r->snap.term;
        if (raft_configuration_copy(&rd->snapshot.conf, &r->snap.conf) < 0)
            goto oom;
        raft__blob_retain(r->snap_data);
        rd->snapshot_data = r->snap_data;
        rd->snapshot_len = r->snap_len;
    }
    struct raft_hard_state hs = hard_state(r);
    if (!hs_equal(&hs, &r->persisted_hs)) {
        rd->has_hard_state = true;
        rd->hard_state = hs;
    }
    uint64_t first = r->log.stable + 1;
    if (share_range(r, first, last_index(r), &rd->entries, &rd->n_entries) < 0)
        goto oom;
    uint64_t handed = rd->has_snapshot ? r->snap.index : r->handed_last;
    if (rd->n_entries > 0 && first <= handed)
        rd->truncate_from = first;
    uint64_t apply_from = r->applied + 1;
    if (share_range(r, apply_from, r->commit, &rd->committed, &rd->n_committed) < 0)
        goto oom;

    /* Nothing can fail from here on: hand over the queues. */
    rd->messages = r->msgs.v;
    rd->n_messages = r->msgs.n;
    memset(&r->msgs, 0, sizeof(r->msgs));
    rd->messages_after_persist = r->msgs_after.v;
    rd->n_messages_after_persist = r->msgs_after.n;
    memset(&r->msgs_after, 0, sizeof(r->msgs_after));
    rd->read_states = r->read_out;
    rd->n_read_states = r->n_read_out;
    r->read_out = NULL;
    r->n_read_out = r->cap_read_out = 0;
    if (r->snapshot_request != 0 && !r->snapshot_request_sent) {
        rd->snapshot_request = r->snapshot_request;
        r->snapshot_request_sent = true;
    }
    rd->persist_last_index = last_index(r);
    rd->persist_last_term = raft__log_last_term(&r->log);
    rd->commit_last = r->commit;
    if (rd->n_entries > 0 || rd->has_snapshot)
        r->handed_last = rd->persist_last_index;
    r->install_pending = false;
    r->prev_lead = r->lead;
    r->prev_state = r->state;
    r->outstanding = rd;
    *out = rd;
    return 0;
oom:
    raft_ready_free(rd);
    return -ENOMEM;
}

int raft_advance(struct raft *r, const struct raft_ready *rd)
{
    if (rd == NULL || rd != r->outstanding)
        return -EINVAL;
    r->outstanding = NULL;
    if (rd->has_hard_state)
        r->persisted_hs = rd->hard_state;
    /* The entries are durable unless the log changed under them meanwhile
     * (then the next ready hands out the replacement). */
    if (rd->persist_last_index > r->log.stable &&
        raft__log_match(&r->log, rd->persist_last_index, rd->persist_last_term))
        r->log.stable = rd->persist_last_index;
    if (rd->commit_last > r->applied)
        r->applied = rd->commit_last;

    int rc = 0;
    struct progress *self = progress_find(r, r->opt.id);
    if (r->state == RAFT_LEADER && self != NULL) {
        /* The leader's own copy counts toward commitment once durable. */
        if (progress_update(self, r->log.stable) && maybe_commit(r) && r->state == RAFT_LEADER)
            r->bcast_pending = true;
    } else if (r->state == RAFT_CANDIDATE && self != NULL && r->persisted_hs.term == r->term &&
               r->persisted_hs.vote == r->opt.id && self->vote != 1) {
        self->vote = 1;
        rc = check_election(r);
    }
    if (r->snapshot_request == 0 && r->applied >= r->snap.index + r->opt.snapshot_threshold) {
        r->snapshot_request = r->applied;
        r->snapshot_request_sent = false;
    }
    return finish(r, rc);
}

void raft_ready_free(struct raft_ready *rd)
{
    if (rd == NULL)
        return;
    raft_configuration_free(&rd->snapshot.conf);
    raft__blob_release(rd->snapshot_data);
    for (size_t i = 0; i < rd->n_entries; i++)
        raft__entry_release(&rd->entries[i]);
    swm_free(rd->entries);
    for (size_t i = 0; i < rd->n_committed; i++)
        raft__entry_release(&rd->committed[i]);
    swm_free(rd->committed);
    for (size_t i = 0; i < rd->n_messages; i++)
        message_release(&rd->messages[i]);
    swm_free(rd->messages);
    for (size_t i = 0; i < rd->n_messages_after_persist; i++)
        message_release(&rd->messages_after_persist[i]);
    swm_free(rd->messages_after_persist);
    swm_free(rd->read_states);
    swm_free(rd);
}

/* --- creation ----------------------------------------------------------- */

void raft_options_init(struct raft_options *o, uint64_t id, uint64_t seed)
{
    *o = (struct raft_options){
        .id = id,
        .election_tick = 10,
        .heartbeat_tick = 1,
        .pre_vote = true,
        .check_quorum = true,
        .max_inflight_msgs = 256,
        .max_size_per_msg = 1u << 20,
        .snapshot_chunk_size = 1u << 20,
        .snapshot_threshold = 10000,
        .snapshot_trailing = 500,
        .seed = seed,
    };
}

static int check_init(const struct raft_options *opt, const struct raft_init_state *in,
                      struct swm_err *err)
{
    if (opt->id == 0)
        return swm_err_set(err, -EINVAL, "raft: id 0 is reserved");
    if (opt->election_tick == 0 || opt->heartbeat_tick == 0 ||
        opt->heartbeat_tick >= opt->election_tick)
        return swm_err_set(err, -EINVAL, "raft: need 0 < heartbeat_tick (%u) < election_tick (%u)",
                           opt->heartbeat_tick, opt->election_tick);
    if (opt->max_inflight_msgs == 0 || opt->max_size_per_msg == 0 ||
        opt->snapshot_chunk_size == 0 || opt->snapshot_threshold == 0)
        return swm_err_set(err, -EINVAL, "raft: flow-control options must be positive");
    if (in->snapshot.index > 0 && in->snapshot.term == 0)
        return swm_err_set(err, -EINVAL, "raft: snapshot at index %llu without a term",
                           (unsigned long long)in->snapshot.index);
    uint64_t prev_term = 0;
    for (size_t i = 0; i < in->n_entries; i++) {
        const struct raft_entry *e = &in->entries[i];
        if (i == 0 && (e->index == 0 || e->index > in->snapshot.index + 1))
            return swm_err_set(err, -EINVAL, "raft: log starts at %llu, after snapshot %llu + 1",
                               (unsigned long long)e->index,
                               (unsigned long long)in->snapshot.index);
        if (i > 0 && e->index != in->entries[i - 1].index + 1)
            return swm_err_set(err, -EINVAL, "raft: log gap before index %llu",
                               (unsigned long long)e->index);
        if (e->term == 0 || e->term < prev_term || e->term > in->hard_state.term)
            return swm_err_set(err, -EINVAL, "raft: entry %llu has term %llu out of order",
                               (unsigned long long)e->index, (unsigned long long)e->term);
        if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_CONF)
            return swm_err_set(err, -EINVAL, "raft: entry %llu has bad type",
                               (unsigned long long)e->index);
        if (e->index == in->snapshot.index && e->term != in->snapshot.term)
            return swm_err_set(err, -EINVAL, "raft: entry %llu disagrees with the snapshot",
                               (unsigned long long)e->index);
        prev_term = e->term;
    }
    uint64_t last = in->n_entries ? in->entries[in->n_entries - 1].index : in->snapshot.index;
    if (last < in->snapshot.index)
        last = in->snapshot.index;
    if (in->hard_state.commit > last || in->applied > last)
        return swm_err_set(err, -EINVAL, "raft: commit %llu / applied %llu past the log (%llu)",
                           (unsigned long long)in->hard_state.commit,
                           (unsigned long long)in->applied, (unsigned long long)last);
    if (in->snapshot.term > in->hard_state.term)
        return swm_err_set(err, -EINVAL, "raft: snapshot term above the hard state's");
    return 0;
}

int raft_new(const struct raft_options *opt, const struct raft_init_state *in, struct raft **out,
             struct swm_err *err)
{
    int rc = check_init(opt, in, err);
    if (rc < 0)
        return rc;
    struct raft *r = swm_calloc(1, sizeof(*r));
    if (r == NULL)
        return swm_err_set(err, -ENOMEM, "raft: out of memory");
    r->opt = *opt;
    r->rng = opt->seed ^ (opt->id * 0x9e3779b97f4a7c15ULL);
    r->term = in->hard_state.term;
    r->vote = in->hard_state.vote;
    r->snap.index = in->snapshot.index;
    r->snap.term = in->snapshot.term;
    rc = raft_configuration_copy(&r->snap.conf, &in->snapshot.conf);
    if (rc < 0)
        goto fail;
    if (in->snapshot_len > 0) {
        r->snap_data = raft__blob_new(in->snapshot_data, in->snapshot_len);
        if (r->snap_data == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        r->snap_len = in->snapshot_len;
    }
    r->snap_has_data = in->snapshot.index == 0 || in->snapshot_data != NULL;
    /* The log starts at the first entry given, else right after the
     * snapshot; the term before it is known only at the snapshot. */
    uint64_t first = in->n_entries ? in->entries[0].index : in->snapshot.index + 1;
    r->log.offset = first - 1;
    r->log.offset_term = r->log.offset == in->snapshot.index ? in->snapshot.term : 0;
    rc = raft__log_reserve(&r->log, in->n_entries);
    if (rc < 0)
        goto fail;
    for (size_t i = 0; i < in->n_entries; i++) {
        struct raft_entry e;
        rc = raft__entry_copy_in(&e, &in->entries[i]);
        if (rc < 0)
            goto fail;
        raft__log_append(&r->log, &e);
        raft__entry_release(&e);
    }
    r->log.stable = last_index(r);
    uint64_t commit = in->hard_state.commit;
    if (commit < in->snapshot.index)
        commit = in->snapshot.index;
    if (commit < in->applied)
        commit = in->applied;
    r->commit = commit;
    r->applied = in->applied > in->snapshot.index ? in->applied : in->snapshot.index;
    r->persisted_hs = in->hard_state;
    r->handed_last = last_index(r);
    rc = refresh_conf(r);
    if (rc < 0) {
        swm_err_set(err, rc, "raft: reading the configuration from the log: %s", swm_strerror(rc));
        raft_free(r);
        return rc;
    }
    r->state = RAFT_FOLLOWER;
    r->prev_state = RAFT_FOLLOWER;
    randomize_timeout(r);
    *out = r;
    return 0;
fail:
    raft_free(r);
    return swm_err_set(err, rc, "raft: out of memory");
}

void raft_free(struct raft *r)
{
    if (r == NULL)
        return;
    raft__log_free(&r->log);
    raft_configuration_free(&r->conf);
    swm_free(r->gone);
    progress_free_all(r);
    raft_configuration_free(&r->snap.conf);
    raft__blob_release(r->snap_data);
    swm_buf_free(&r->rx.buf);
    swm_free(r->reads);
    swm_free(r->read_out);
    msgq_free(&r->msgs);
    msgq_free(&r->msgs_after);
    swm_free(r);
}

/* --- queries ------------------------------------------------------------ */

uint64_t raft_id(const struct raft *r)
{
    return r->opt.id;
}

enum raft_state raft_state(const struct raft *r)
{
    return r->state;
}

uint64_t raft_term(const struct raft *r)
{
    return r->term;
}

uint64_t raft_leader(const struct raft *r)
{
    return r->lead;
}

uint64_t raft_commit_index(const struct raft *r)
{
    return r->commit;
}

uint64_t raft_applied_index(const struct raft *r)
{
    return r->applied;
}

uint64_t raft_last_index(const struct raft *r)
{
    return last_index(r);
}

uint64_t raft_log_term(const struct raft *r, uint64_t index)
{
    return term_at(r, index);
}

const struct raft_configuration *raft_configuration_current(const struct raft *r)
{
    return &r->conf;
}

int raft_progress_match(const struct raft *r, uint64_t id, uint64_t *match)
{
    if (r->state != RAFT_LEADER)
        return SWM_ENOTLEADER;
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id) {
            *match = r->prs[i].match;
            return 0;
        }
    return SWM_ENOTFOUND;
}

const char *raft_state_name(enum raft_state s)
{
    switch (s) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRECANDIDATE:
        return "pre-candidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    }
    return "unknown";
}

const char *raft_message_type_name(enum raft_message_type t)
{
    static const char *const names[] = {
        [RAFT_MSG_PREVOTE] = "prevote",
        [RAFT_MSG_PREVOTE_RESP] = "prevote-resp",
        [RAFT_MSG_VOTE] = "vote",
        [RAFT_MSG_VOTE_RESP] = "vote-resp",
        [RAFT_MSG_APPEND] = "append",
        [RAFT_MSG_APPEND_RESP] = "append-resp",
        [RAFT_MSG_HEARTBEAT] = "heartbeat",
        [RAFT_MSG_HEARTBEAT_RESP] = "heartbeat-resp",
        [RAFT_MSG_SNAPSHOT] = "snapshot",
        [RAFT_MSG_SNAPSHOT_RESP] = "snapshot-resp",
        [RAFT_MSG_TIMEOUT_NOW] = "timeout-now",
    };
    if (t < 1 || t > RAFT_MSG_TYPE_MAX)
        return "unknown";
    return names[t];
}
