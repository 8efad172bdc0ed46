/* Internals of the raft node shared by node.c (the driver) and
 * membership.c (adding, promoting and removing members). Not for use
 * outside manager/raft/. */
#ifndef SWM_MANAGER_RAFT_NODE_INTERNAL_H
#define SWM_MANAGER_RAFT_NODE_INTERNAL_H

#include "common/buf.h"
#include "manager/raft/node.h"

struct proposal {
    Swarmc__StoreEntry *entry; /* owned until packed into the core's log */
    uint64_t index, term;      /* set once in the core's log */
    store_commit_cb cb;
    void *arg;
    struct proposal *next;
};

struct queue {
    struct proposal *head;
    struct proposal **tail;
};

struct read_request {
    uint64_t ctx;
    uint64_t deadline; /* tick after which it fails: leadership not confirmed */
    raft_node_read_cb cb;
    void *arg;
    struct read_request *next;
};

enum snapshot_step { SNAP_IDLE, SNAP_TAKING, SNAP_TAKEN, SNAP_SAVING };

struct raft_node {
    struct store_log log; /* what writers hold: container of this node */
    uv_loop_t *loop;
    struct store *store;
    struct raft_options core_opt;
    struct raft *core;
    struct raft_transport *transport;
    void (*on_leadership)(void *arg, bool leader, uint64_t leader_id);
    void *on_leadership_arg;
    uv_timer_t ticker;
    uv_idle_t kick;
    uint64_t ticks;

    struct queue held;    /* not yet in the core: an election is under way */
    uint64_t held_since;  /* tick at which held became non-empty */
    struct queue waiting; /* in the core's log, in index order */
    struct read_request *reads;
    uint64_t next_read_ctx;
    uint64_t leader_id;
    bool leader;

    /* The ready being written; the results and outcome are set on the
     * threadpool, read on the loop after the job (libuv orders both). */
    struct raft_ready *rd;
    uv_work_t persist_job;
    struct store_apply_result *results;
    int persist_status;
    struct swm_err persist_err;
    bool reload_after_persist; /* the core must be recreated from storage */

    /* Snapshot: take (threadpool) -> done (loop, once the core has applied
     * that far) -> save and compact (threadpool). */
    enum snapshot_step snap_step;
    uv_work_t snap_job;
    uint64_t snap_wanted;    /* the core asked for a snapshot at this index (0: no) */
    uint64_t snap_requested; /* the request being served, restored on failure */
    struct swm_buf snap_data;
    uint64_t snap_index, compact_to;
    struct raft_snapshot_meta snap_meta;
    int snap_status;
    struct swm_err snap_err;

    struct member_change *change; /* the membership change under way, or NULL */

    struct swm_err dead; /* code != 0: the node stopped on this failure */
    int open_handles;
    bool closing;
};

/* --- node.c ---------------------------------------------------------------- */

/* Sets err to SWM_ENOTLEADER, "<what>: ..." naming the leader if known. */
void raft_node__not_leader_err(const struct raft_node *n, struct swm_err *err, const char *what);

/* Runs the driver on the next loop turn. */
void raft_node__kick(struct raft_node *n);

/* --- membership.c ------------------------------------------------------------ */

struct member_change;

/* The committed entries of a ready just applied: advances the change. */
void raft_node__change_committed(struct raft_node *n, const struct raft_ready *rd);

/* Every tick: a learner that has caught up is promoted; a change that takes
 * too long fails. */
void raft_node__change_tick(struct raft_node *n);

/* Fails the change under way (leadership lost, shutdown). */
void raft_node__change_fail(struct raft_node *n, const struct swm_err *err);

#endif
