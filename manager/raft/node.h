/* A manager's raft node (DESIGN.md §5, issue 3): the libuv driver that runs
 * the I/O-free core (raft.h) against the node's LMDB store (store/raftlog.h)
 * and a transport (transport.h).
 *
 *  - ticks come from a timer every tick_ms;
 *  - each ready is persisted AND its committed entries applied in one LMDB
 *    write transaction on the threadpool (store_raft_persist), while the
 *    loop keeps stepping messages and queueing proposals: everything
 *    proposed during one write is committed by the next (group commit);
 *  - messages that need nothing durable leave at once, votes and append
 *    acknowledgements only after the write;
 *  - snapshots are taken on the threadpool when the core asks, and the log
 *    is compacted behind them;
 *  - a failed write never lets the core run ahead of the disk: the node
 *    recreates the core from what storage holds.
 *
 * Writers see only store_log (store/log.h): raft_node_log() hands it out.
 * Proposals made while an election is under way wait for its outcome (at
 * most two election timeouts); on a node that is not the leader they fail
 * with SWM_ENOTLEADER and a message naming the leader.
 *
 * Loop thread only. */
#ifndef SWM_MANAGER_RAFT_NODE_H
#define SWM_MANAGER_RAFT_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "manager/raft/raft.h"
#include "manager/raft/transport.h"
#include "store/log.h"
#include "store/store.h"

struct raft_node;

struct raft_node_options {
    uint64_t id;                 /* this member's raft id, never 0 */
    unsigned tick_ms;            /* 0: 50 ms */
    unsigned election_tick;      /* 0: 10 ticks (an election timeout of 0.5-1 s) */
    unsigned heartbeat_tick;     /* 0: 1 tick */
    uint64_t snapshot_threshold; /* 0: the core's default (10000 entries) */
    uint64_t snapshot_trailing;  /* 0: the core's default (500 entries) */
    /* When the store holds no raft state yet: the membership to start with
     * (store_raft_bootstrap; every founding member passes the same one).
     * NULL: the store must already hold raft state. */
    const struct raft_configuration *bootstrap;
    /* Called when this node becomes leader or stops being leader, and when
     * the leader it knows changes (leader_id, 0 while unknown). NULL:
     * nobody listens. */
    void (*on_leadership)(void *arg, bool leader, uint64_t leader_id);
    void *on_leadership_arg;
};

/* Loads the raft state from s (bootstrapping it when empty, see options),
 * creates the core and starts ticking. transport may be NULL for a member
 * that is the only voter; otherwise the node takes it over when it returns
 * 0 (its recv is set here and it is closed with the node; on failure the
 * caller still owns it). A node that is the only voter
 * campaigns at once. s must stay open until the node has finished closing
 * (raft_node_close, then run the loop). Returns 0 and sets *out, or a
 * negative code with err set (SWM_ECORRUPT: the stored log is damaged, err
 * names the index and what to do). */
int raft_node_open(uv_loop_t *loop, struct store *s, const struct raft_node_options *opt,
                   struct raft_transport *transport, struct raft_node **out, struct swm_err *err);

/* Stops the node: proposals not yet committed complete with SWM_ESHUTDOWN
 * on a later loop turn (a write in flight completes with its real outcome
 * first). The node frees itself once its handles are closed and no work is
 * in flight, so the loop must run on. Accepts NULL. */
void raft_node_close(struct raft_node *n);

/* The write interface for the store's writers. Valid until the node is
 * freed. */
struct store_log *raft_node_log(struct raft_node *n);

/* Asks for a linearizable read (Raft thesis §6.4): cb runs with status 0
 * once this node, as leader, has confirmed its leadership with a quorum and
 * applied every entry committed before the call, so a read of the store
 * made inside cb sees every write acknowledged before the call. Otherwise
 * status SWM_ENOTLEADER (err names the leader) or SWM_ESHUTDOWN. Returns 0
 * or -ENOMEM (cb not called). */
typedef void (*raft_node_read_cb)(void *arg, int status, const struct swm_err *err);
int raft_node_read_barrier(struct raft_node *n, raft_node_read_cb cb, void *arg);

/* --- membership (leader only; one change at a time) ----------------------- */

/* Called once when a change completes (status 0) or fails (err says why:
 * SWM_ENOTLEADER when leadership was lost, -ETIMEDOUT when a learner did
 * not catch up, SWM_ESHUTDOWN). */
typedef void (*raft_node_change_cb)(void *arg, int status, const struct swm_err *err);

/* Adds member id: first as a learner, then, once its log is within 100
 * entries of the leader's, promoted to voter (Raft thesis §4.2.1). The
 * transport must already know how to reach id. A joining member opens its
 * node with no bootstrap configuration and an empty store, and waits for
 * the leader. Returns 0, SWM_ENOTLEADER, SWM_EINUSE (a change is under
 * way), SWM_EEXISTS (already a member, or removed before: ids are never
 * reused), -EINVAL, -ENOMEM. */
int raft_node_add_voter(struct raft_node *n, uint64_t id, raft_node_change_cb cb, void *arg);

/* Removes member id (a voter or a learner; not the last voter). Returns
 * like raft_node_add_voter, SWM_ENOTFOUND for a non-member. */
int raft_node_remove_member(struct raft_node *n, uint64_t id, raft_node_change_cb cb, void *arg);

/* Hands leadership to voter `to` (thesis §3.10; before a leader is demoted
 * or leaves). Proposals fail with SWM_ENOTLEADER meanwhile. Returns 0,
 * SWM_ENOTLEADER, SWM_ENOTFOUND, -EINVAL. */
int raft_node_transfer_leadership(struct raft_node *n, uint64_t to);

/* --- queries ----------------------------------------------------------------- */

bool raft_node_is_leader(const struct raft_node *n);
/* The leader's raft id, 0 while unknown. */
uint64_t raft_node_leader(const struct raft_node *n);
/* The core, for queries only (raft_term, raft_commit_index...). */
const struct raft *raft_node_core(const struct raft_node *n);

#endif
