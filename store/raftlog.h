/* Durable Raft storage in the node's LMDB environment (DESIGN.md §5, issue
 * 3): the raft log, the hard state and the snapshot live in tables of the
 * same environment as the object tables, so that one write transaction (one
 * fsync) can append entries, record the hard state AND apply committed
 * entries together with the applied index. A crash therefore never applies
 * an entry twice or loses one.
 *
 * Tables (created by store_open, also in a store made by an older build):
 *   raft_log    u64 BE index -> CRC-32C BE | term u64 BE | type u8 | data.
 *               The CRC covers the index (as 8 BE bytes, not stored in the
 *               value) and the rest of the value, so a value moved under
 *               another key is caught too.
 *   raft_state  "hard_state" -> CRC | term | vote | commit (u64 BE each);
 *               "snapshot"   -> CRC | index | term | CRC of the data |
 *                               membership (n_servers u32, per server
 *                               id u64 and role u8, n_removed u32, ids u64);
 *               "snapshot_data" -> the snapshot bytes, kept to stream to
 *                               followers.
 *   meta        "applied_index", as before: the index of the last entry
 *               applied to the object tables.
 *
 * Snapshot data format (store_raft_snapshot_take / installing a received
 * snapshot): "SWMSNAP1", then per object: kind u8 (enum store_object_kind),
 * length u32 BE, the packed object as stored (meta.version kept). Installing
 * one empties every object table and index and refills them from it.
 *
 * A store written by the one-member log of earlier builds (applied index >
 * 0, entries in the old `log` table, no raft state) is refused by
 * store_raft_load until store_raft_bootstrap converts it.
 *
 * Thread-safety: like store_apply_entries, one writer at a time (any
 * thread); store_raft_load may run beside readers.
 */
#ifndef SWM_STORE_RAFTLOG_H
#define SWM_STORE_RAFTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "manager/raft/raft.h"
#include "store/store.h"

/* Reads everything a core restarts from into *out: the hard state, the
 * snapshot (meta, configuration and data), every stored entry and the
 * applied index. Every entry's checksum is verified and the log is checked
 * to be contiguous, with terms that never decrease, starting no later than
 * the snapshot's index + 1, and covering the applied and commit indexes.
 * Returns 0 and fills *out (caller frees it with store_raft_init_free; for
 * a new store everything is zero and the caller puts the bootstrap
 * membership in out->snapshot.conf), -ENOMEM, or SWM_ECORRUPT with err
 * naming the index or record and what to do. *out is set only on success. */
int store_raft_load(struct store *s, struct raft_init_state *out, struct swm_err *err);

/* Frees what store_raft_load put in init and zeroes it. Accepts NULL. */
void store_raft_init_free(struct raft_init_state *init);

/* Carries out the persistence and apply part of rd in ONE write
 * transaction, committed (fsynced) once: installs rd's snapshot (object
 * tables replaced from its data, log emptied, applied index = its index),
 * writes the hard state if rd has one, deletes entries >= rd->truncate_from,
 * appends rd->entries, then applies rd->committed: NORMAL entries with data
 * are decoded as packed StoreEntry and applied like store_apply_entries
 * (meta.version = the raft index), no-ops and CONF entries only advance the
 * applied index; entries at or below the applied index are skipped, so a
 * ready handed out again after a crash cannot apply anything twice. The
 * applied index ends at the last committed entry, in the same transaction.
 * results: rd->n_committed slots (may be NULL when there are none);
 * results[i] gets committed entry i's outcome (code 0, an entry failure as
 * in store_apply_result, SWM_EINVAL_SPEC for data that is not a StoreEntry,
 * 0 for entries not applied to the store). Returns 0 once committed, after
 * which the caller may send rd->messages_after_persist and call
 * raft_advance; or a negative code with err set and nothing written (the
 * driver then recreates the core from store_raft_load): -EINVAL (entries
 * that do not follow the log, a snapshot behind the applied index),
 * -ENOMEM, -ENOSPC, -EIO, SWM_ECORRUPT. Watch events are queued as by
 * store_apply_entries (deliver them with store_deliver_events); installing
 * a snapshot queues none: watchers must resynchronize after one. rd is only
 * read. */
int store_raft_persist(struct store *s, const struct raft_ready *rd,
                       struct store_apply_result *results, struct swm_err *err);

/* Deletes stored entries with index <= upto (the compact_to raft_snapshot_done
 * returned; the core keeps its trailing window after it). Call it only after
 * store_raft_snapshot_save recorded the snapshot that covers them: a log
 * whose head is gone without a snapshot is refused by store_raft_load.
 * Returns 0 or a negative code with err set (nothing deleted). */
int store_raft_compact(struct store *s, uint64_t upto, struct swm_err *err);

/* Serializes every object of the store, as of one read transaction, in the
 * snapshot data format above: appends it to out and sets *applied to the
 * applied index it reflects (the index to pass to raft_snapshot_done).
 * Returns 0, -ENOMEM, SWM_ECORRUPT (a stored object does not decode), with
 * err set; out is then left as it was. */
int store_raft_snapshot_take(struct store *s, struct swm_buf *out, uint64_t *applied,
                             struct swm_err *err);

/* Records a snapshot this node took (meta from raft_snapshot_done, data
 * from store_raft_snapshot_take) as the one store_raft_load hands back. The
 * object tables are not touched. Returns 0, -EINVAL (meta->index above the
 * applied index or not above the recorded snapshot's), or a negative code,
 * with err set. Borrowed arguments. */
int store_raft_snapshot_save(struct store *s, const struct raft_snapshot_meta *meta,
                             const void *data, size_t len, struct swm_err *err);

/* Starts the raft state of a store that has none, in one transaction:
 * - a new store (nothing applied): entry 1 (term 1) holds conf and, when
 *   first is not NULL, entry 2 (term 1) the packed `first`; both recorded
 *   as committed, so the node applies them at start. Every founding member
 *   of a cluster writes the same entries.
 * - a store written by the one-member log (applied index > 0; first must
 *   be NULL): its objects become a snapshot at the applied index (term 1,
 *   membership conf) and the old log table is emptied.
 * Returns 0, SWM_EEXISTS (the store already has raft state: nothing
 * changed), -EINVAL (conf has no voter, or first given for a store that has
 * applied entries), or a storage error, with err set. */
int store_raft_bootstrap(struct store *s, const struct raft_configuration *conf,
                         const Swarmc__StoreEntry *first, struct swm_err *err);

/* Sets *out to whether the store holds raft state (a hard state, a snapshot
 * or log entries). Returns 0 or a storage error with err set. */
int store_raft_exists(struct store *s, bool *out, struct swm_err *err);

/* `swarmc init --force-new-cluster` on a manager whose swarm lost its
 * quorum: appends a membership entry with member `self` as the only voter
 * (every other member moves to the removed set, so none comes back under
 * its old id). At its next start the node is the lone voter, leads, and
 * commits its whole log, keeping every object. Returns 0, SWM_ENOTFOUND
 * (no raft log), SWM_ECORRUPT, -ENOMEM or a storage error, with err. */
int store_raft_force_new_cluster(struct store *s, uint64_t self, struct swm_err *err);

#endif
