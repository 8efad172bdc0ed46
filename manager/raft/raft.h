/* The managers' consensus core (DESIGN.md §5): Raft as in Ongaro's thesis,
 * shaped like etcd's raft and canonical raft. It does no I/O: no sockets, no
 * disk, no clocks, no libuv, no globals, no randomness of its own. The caller
 * (the driver) feeds it inputs and carries out what it asks for:
 *
 *   inputs:   raft_step()   a message received from a peer
 *             raft_tick()   one unit of logical time
 *             raft_propose(), raft_propose_conf_change(),
 *             raft_transfer_leadership(), raft_read_index()
 *             raft_snapshot_done()  the state machine took a snapshot
 *             raft_advance()        a ready was carried out (durably)
 *   output:   raft_ready()  what to persist, send, install and apply
 *
 * The driver loop is:
 *
 *   while (raft_has_ready(r)) {
 *       raft_ready(r, &rd);
 *       send rd->messages;                     (may go before persisting)
 *       persist rd->snapshot, rd->hard_state, truncate at rd->truncate_from,
 *           append rd->entries, fsync;         (one transaction)
 *       send rd->messages_after_persist;       (only now: votes, acks)
 *       apply rd->committed, answer rd->read_states;
 *       raft_advance(r, rd); raft_ready_free(rd);
 *   }
 *
 * Only one ready is outstanding at a time, but every other input may be
 * called while it is (the driver persists on a threadpool and keeps stepping
 * messages meanwhile). If persisting a ready fails, the driver must NOT call
 * raft_advance: it frees the core and recreates it from what storage holds,
 * so the in-memory state can never run ahead of the disk (the divergence
 * Debian's libraft 0.15 has after a failed write).
 *
 * Single-threaded: one thread at a time per struct raft. Every allocation
 * goes through common/alloc.h; on -ENOMEM an input fails without having
 * changed the state it reports on (see each function).
 */
#ifndef SWM_MANAGER_RAFT_RAFT_H
#define SWM_MANAGER_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct raft; /* opaque: one member's consensus state */

/* --- values ------------------------------------------------------------ */

enum raft_state {
    RAFT_FOLLOWER = 1,
    RAFT_PRECANDIDATE = 2, /* pre-vote round (thesis §9.6): term not yet bumped */
    RAFT_CANDIDATE = 3,
    RAFT_LEADER = 4,
};

enum raft_role {
    RAFT_VOTER = 1,
    RAFT_LEARNER = 2, /* receives the log, never votes or counts (thesis §4.2.1) */
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1, /* caller data; the leader's no-op has len 0 */
    RAFT_ENTRY_CONF = 2,   /* a full raft_configuration, encoded by raft_configuration_encode */
};

/* A log entry. Entries handed out by the core (in a ready or a message) are
 * owned by the ready and valid until raft_ready_free(); entries passed in
 * (raft_step, raft_new) are borrowed and copied. data is NULL iff len == 0. */
struct raft_entry {
    uint64_t term;
    uint64_t index;
    enum raft_entry_type type;
    const void *data;
    size_t len;
};

/* Caller data for raft_propose(). Borrowed, copied. */
struct raft_buffer {
    const void *base;
    size_t len;
};

struct raft_server {
    uint64_t id; /* never 0 */
    enum raft_role role;
};

/* The cluster membership (thesis §4). `removed` lists every id that was ever
 * removed: such ids are never admitted again, and once the removal is
 * committed their messages are ignored.
 * Arrays are swm_malloc'd and owned by whoever holds the struct. */
struct raft_configuration {
    struct raft_server *servers;
    size_t n_servers;
    uint64_t *removed;
    size_t n_removed;
};

/* What must be durable before a vote or an acknowledgement is sent. */
struct raft_hard_state {
    uint64_t term;
    uint64_t vote; /* 0: none in this term */
    uint64_t commit;
};

/* Identifies a snapshot: it holds the state machine after applying `index`
 * (of term `term`), and `conf` is the membership in effect at that index. */
struct raft_snapshot_meta {
    uint64_t index;
    uint64_t term;
    struct raft_configuration conf;
};

/* A completed read-index request (thesis §6.4): status 0 means a read of the
 * state machine is linearizable once it has applied `index` (the core only
 * releases it when that is already so); SWM_ENOTLEADER means leadership was
 * lost before it was confirmed; retry on the leader. */
struct raft_read_state {
    uint64_t ctx;
    uint64_t index;
    int status;
};

/* --- messages ---------------------------------------------------------- */

enum raft_message_type {
    RAFT_MSG_PREVOTE = 1,        /* term: the term we would campaign in; log_term/index: last */
    RAFT_MSG_PREVOTE_RESP = 2,   /* reject */
    RAFT_MSG_VOTE = 3,           /* log_term/index: last entry; context: RAFT_CAMPAIGN_TRANSFER */
    RAFT_MSG_VOTE_RESP = 4,      /* reject */
    RAFT_MSG_APPEND = 5,         /* index/log_term: previous entry; entries; commit */
    RAFT_MSG_APPEND_RESP = 6,    /* index: last matching (or rejected) index; reject_hint,
                                    log_term: the conflict hint (thesis §5.4.2 fast back-off) */
    RAFT_MSG_HEARTBEAT = 7,      /* commit; context: read-index round */
    RAFT_MSG_HEARTBEAT_RESP = 8, /* context echoed */
    RAFT_MSG_SNAPSHOT = 9,       /* one chunk: snapshot.index/term, snap_offset, data, done;
                                    snapshot.conf only on the done chunk */
    RAFT_MSG_SNAPSHOT_RESP = 10, /* snapshot.index, snap_offset: bytes held (next wanted) */
    RAFT_MSG_TIMEOUT_NOW = 11,   /* leadership transfer: campaign now (thesis §3.10) */
};
#define RAFT_MSG_TYPE_MAX RAFT_MSG_TIMEOUT_NOW

/* context of a RAFT_MSG_VOTE sent because of TimeoutNow: voters grant it
 * even while they still hear from a leader (thesis §4.2.3 exception). */
#define RAFT_CAMPAIGN_TRANSFER 1

/* A message between cores. Messages in a ready (and their entries, conf
 * and data) are owned by the ready; messages passed to raft_step are
 * borrowed. Fields a type does not use are zero. */
struct raft_message {
    enum raft_message_type type;
    uint64_t from;
    uint64_t to;
    uint64_t term;
    uint64_t log_term;
    uint64_t index;
    uint64_t commit;
    bool reject;
    uint64_t reject_hint;
    uint64_t context;
    struct raft_entry *entries;
    size_t n_entries;
    struct raft_snapshot_meta snapshot;
    uint64_t snap_offset;
    const void *data;
    size_t len;
    bool done;
};

/* --- creation ---------------------------------------------------------- */

struct raft_options {
    uint64_t id;                 /* this member's id, never 0 */
    unsigned election_tick;      /* ticks without a leader before campaigning (default 10);
                                    the actual timeout is random in [e, 2e) */
    unsigned heartbeat_tick;     /* leader heartbeat period (default 1), < election_tick */
    bool pre_vote;               /* thesis §9.6 */
    bool check_quorum;           /* leader steps down without a quorum for election_tick */
    size_t max_inflight_msgs;    /* pipelined appends per follower (default 256) */
    size_t max_size_per_msg;     /* entry bytes per append, at least one entry (default 1 MiB) */
    size_t snapshot_chunk_size;  /* InstallSnapshot chunk bytes (default 1 MiB) */
    uint64_t snapshot_threshold; /* ask for a snapshot every N applied entries (10000) */
    uint64_t snapshot_trailing;  /* entries kept behind a snapshot for slow followers (500) */
    uint64_t seed; /* seeds the election-timeout randomness; make it differ per node */
};

/* Sets o to the defaults above with the given id and seed. */
void raft_options_init(struct raft_options *o, uint64_t id, uint64_t seed);

/* What storage holds, to restart from. All borrowed and copied.
 * - hard_state as last persisted (zero for a new member);
 * - snapshot: index 0 for none; conf is then the bootstrap membership (a
 *   new cluster's first member lists itself as the only voter; a joining
 *   member passes an empty configuration and waits for the leader);
 * - snapshot_data: the snapshot's bytes, kept to stream to followers;
 * - entries: contiguous, the first at most snapshot.index + 1 (a trailing
 *   window before the snapshot may be included);
 * - applied: what the state machine has applied (>= snapshot.index);
 *   committed entries after it are handed out again. */
struct raft_init_state {
    struct raft_hard_state hard_state;
    struct raft_snapshot_meta snapshot;
    const void *snapshot_data;
    size_t snapshot_len;
    const struct raft_entry *entries;
    size_t n_entries;
    uint64_t applied;
};

/* Creates a core in the follower state. Returns 0 and sets *out (freed with
 * raft_free), -ENOMEM, or -EINVAL with err naming the inconsistency
 * (gapped entries, commit past the log, bad options...). */
int raft_new(const struct raft_options *opt, const struct raft_init_state *init, struct raft **out,
             struct swm_err *err);

/* Frees r and everything it owns. Accepts NULL. Outstanding readies stay
 * valid (they own their contents) and are freed with raft_ready_free. */
void raft_free(struct raft *r);

/* --- inputs ------------------------------------------------------------ */

/* Advances logical time by one tick: election timeouts, heartbeats, the
 * check-quorum round and transfer timeouts. Returns 0 or -ENOMEM (the
 * tick's messages may then be missing; the next tick retries). */
int raft_tick(struct raft *r);

/* Starts an election now instead of at the election timeout (with a
 * pre-vote round first when enabled). The driver calls it when this member
 * is the only voter, so a one-manager cluster has its leader at once after
 * a restart. Returns 0 (also when already leader), -EINVAL if this member
 * is not a voter, -ENOMEM. */
int raft_campaign(struct raft *r);

/* Handles a message received from a peer (m is borrowed). On -ENOMEM from
 * a message that changed the log the driver should recreate the core from
 * storage (lost messages alone are harmless). Returns 0 (also
 * when the message is stale, or comes from an id removed by a committed
 * configuration, and is therefore ignored),
 * -EINVAL if it is not addressed to this member, -ENOMEM, or SWM_ECORRUPT if
 * it proves this member's log broke an invariant (a committed entry would
 * be overwritten). */
int raft_step(struct raft *r, const struct raft_message *m);

/* Appends one NORMAL entry per buffer (copied), as one batch: they are
 * replicated together on the next raft_ready(). Sets *index to the first
 * entry's index and *term to its term (the entry is committed iff an entry
 * with that index and term is later in rd->committed). Returns 0,
 * SWM_ENOTLEADER (see raft_leader()), or while a leadership transfer is in
 * progress, -EINVAL for n == 0, -ENOMEM (nothing appended). */
int raft_propose(struct raft *r, const struct raft_buffer *bufs, size_t n, uint64_t *index,
                 uint64_t *term);

enum raft_conf_change {
    RAFT_CC_ADD_VOTER = 1,
    RAFT_CC_ADD_LEARNER = 2,
    RAFT_CC_PROMOTE = 3, /* learner -> voter; the caller decides it has caught up */
    RAFT_CC_REMOVE = 4,
};

/* Proposes a single-server membership change (thesis §4.1). It takes effect
 * on every member as soon as the entry is appended to its log, committed or
 * not. Sets *index like raft_propose. Returns 0, SWM_ENOTLEADER,
 * SWM_EINUSE while the previous change (or, for a new leader, its first
 * entry) is not committed, SWM_EEXISTS if id is already a member of that
 * role or was ever removed (ids are never reused), SWM_ENOTFOUND to promote
 * or remove a non-member, -EINVAL (id 0, promoting a voter, removing the
 * last voter), -ENOMEM. */
int raft_propose_conf_change(struct raft *r, enum raft_conf_change type, uint64_t id,
                             uint64_t *index);

/* Starts handing leadership to voter `to` (thesis §3.10): the leader stops
 * accepting proposals, brings `to` up to date and sends it TimeoutNow.
 * Aborted after election_tick ticks. Returns 0, SWM_ENOTLEADER,
 * SWM_ENOTFOUND (not a voter), -EINVAL (to is this member), -ENOMEM. */
int raft_transfer_leadership(struct raft *r, uint64_t to);

/* Asks for a linearizable read (thesis §6.4): once the leader has confirmed
 * with a quorum that it was still leader when the request arrived, and has
 * applied up to the commit index of that moment, a raft_read_state with
 * this ctx appears in a ready. Returns 0, SWM_ENOTLEADER, -ENOMEM. */
int raft_read_index(struct raft *r, uint64_t ctx);

/* Tells the core the state machine took a snapshot at applied index `index`
 * (data is borrowed and copied, and kept to stream to followers). The core
 * drops log entries up to index - snapshot_trailing and sets *compact_to
 * to that index (0: nothing dropped): storage may delete entries up to it.
 * Sets *meta (caller frees meta->conf with raft_configuration_free) to what
 * storage must record with the snapshot. Returns 0, -EINVAL if index is not
 * applied or not above the current snapshot, -ENOMEM. */
int raft_snapshot_done(struct raft *r, uint64_t index, const void *data, size_t len,
                       struct raft_snapshot_meta *meta, uint64_t *compact_to);

/* --- output ------------------------------------------------------------ */

struct raft_ready {
    /* Membership-independent view, set when leader or state changed. */
    bool soft_state_changed;
    uint64_t leader;
    enum raft_state state;

    /* Persist, in this order and atomically: the snapshot (replacing the
     * whole log and the state machine), the hard state, then delete every
     * stored entry with index >= truncate_from (0: none) and append entries.
     * Then, and only then, send messages_after_persist. */
    bool has_snapshot;
    struct raft_snapshot_meta snapshot;
    const void *snapshot_data;
    size_t snapshot_len;
    bool has_hard_state;
    struct raft_hard_state hard_state;
    uint64_t truncate_from;
    struct raft_entry *entries;
    size_t n_entries;

    /* Messages that depend on nothing unpersisted: send right away. */
    struct raft_message *messages;
    size_t n_messages;
    /* Vote, pre-vote and append responses: thesis §3.8 requires term, vote
     * and entries to be durable before they are sent. (Heartbeat and
     * snapshot-chunk responses report nothing a crash could contradict and
     * go in `messages`.) */
    struct raft_message *messages_after_persist;
    size_t n_messages_after_persist;

    /* Committed entries to apply in order, after the snapshot if any. */
    struct raft_entry *committed;
    size_t n_committed;

    struct raft_read_state *read_states;
    size_t n_read_states;

    /* Non-zero: take a snapshot of the state machine once it has applied
     * this index and call raft_snapshot_done(). Asked once per threshold. */
    uint64_t snapshot_request;

    /* Internal bookkeeping for raft_advance. */
    uint64_t persist_last_index, persist_last_term;
    uint64_t commit_last;
};

/* Whether raft_ready() has anything to hand out (false while a ready is
 * outstanding). */
bool raft_has_ready(struct raft *r);

/* Collects everything pending into a new ready owned by the caller (free it
 * with raft_ready_free after raft_advance). Returns 0 and sets *out,
 * SWM_EINUSE if the previous ready was not advanced, -ENOMEM (the state is
 * unchanged; retry). */
int raft_ready(struct raft *r, struct raft_ready **out);

/* Acknowledges that rd (the outstanding ready) was carried out: its
 * snapshot, hard state and entries are durable, and its committed entries
 * applied. Counts the leader's own log toward the commit index and a
 * candidate's own vote only now (persist before count). Returns 0,
 * -EINVAL if rd is not the outstanding ready. */
int raft_advance(struct raft *r, const struct raft_ready *rd);

/* Frees a ready. Accepts NULL. */
void raft_ready_free(struct raft_ready *rd);

/* --- queries ----------------------------------------------------------- */

uint64_t raft_id(const struct raft *r);
enum raft_state raft_state(const struct raft *r);
uint64_t raft_term(const struct raft *r);
/* The known leader's id (0: unknown), for "not leader" errors that name
 * where to forward. */
uint64_t raft_leader(const struct raft *r);
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_applied_index(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
/* Term of the entry at index; 0 if it is not in memory (compacted or past
 * the end). */
uint64_t raft_log_term(const struct raft *r, uint64_t index);
/* The configuration in effect (the latest in the log, committed or not).
 * Owned by r, valid until its next input. */
const struct raft_configuration *raft_configuration_current(const struct raft *r);
/* Leader only: sets *match to how far the member's log is known to match
 * (the caller promotes a learner once it is close to raft_last_index).
 * Returns 0, SWM_ENOTLEADER, SWM_ENOTFOUND. */
int raft_progress_match(const struct raft *r, uint64_t id, uint64_t *match);

const char *raft_state_name(enum raft_state s);
const char *raft_message_type_name(enum raft_message_type t);

/* --- configurations ---------------------------------------------------- */

/* Frees c's arrays and zeroes it. Accepts NULL and an empty configuration. */
void raft_configuration_free(struct raft_configuration *c);
/* Deep copy into *dst (overwritten, not freed). Returns 0 or -ENOMEM. */
int raft_configuration_copy(struct raft_configuration *dst, const struct raft_configuration *src);
/* Returns the member with id, or NULL. */
const struct raft_server *raft_configuration_get(const struct raft_configuration *c, uint64_t id);
bool raft_configuration_is_removed(const struct raft_configuration *c, uint64_t id);
size_t raft_configuration_voters(const struct raft_configuration *c);

/* --- wire forms (codec.c, schema proto/raft.proto) ---------------------- */

/* Largest encoded message raft_message_decode accepts by default. */
#define RAFT_MESSAGE_MAX_SIZE (64u << 20)

/* Appends the encoding of m to out. Returns 0, -EINVAL if m is not a valid
 * message (the same checks as decoding), -ENOMEM. */
int raft_message_encode(const struct raft_message *m, struct swm_buf *out);

/* Decodes and validates every field of a message of at most max_size bytes
 * (0: RAFT_MESSAGE_MAX_SIZE). Returns 0 and sets *out (free it with
 * raft_message_free), or SWM_EPROTO with err saying what is wrong (never
 * crashes on any input), or -ENOMEM. */
int raft_message_decode(const void *data, size_t len, size_t max_size, struct raft_message **out,
                        struct swm_err *err);

/* Frees a message from raft_message_decode. Accepts NULL. */
void raft_message_free(struct raft_message *m);

/* The data of a RAFT_ENTRY_CONF entry and a snapshot's membership. Encoding
 * appends to out and returns 0, -EINVAL for an invalid configuration (id 0,
 * duplicates, bad role), -ENOMEM. Decoding fills *out (caller frees with
 * raft_configuration_free) and returns 0, SWM_EPROTO with err, -ENOMEM. */
int raft_configuration_encode(const struct raft_configuration *c, struct swm_buf *out);
int raft_configuration_decode(const void *data, size_t len, struct raft_configuration *out,
                              struct swm_err *err);

#endif
