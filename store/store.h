/* The node's object store: one LMDB environment under <data-dir>/state with
 * a table per object kind plus secondary indexes (DESIGN.md §5).
 *
 * Reads happen in read transactions from any thread (MDB_NOTLS). Writes never
 * happen here directly: callers propose a StoreEntry to the log (store/log.h),
 * and committed entries are applied by store_apply_entries(), the only
 * function that changes object tables. That keeps the write path identical
 * when the one-member log is replaced by Raft (issue 3).
 */
#ifndef SWM_STORE_STORE_H
#define SWM_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/codec.h"

struct store;      /* opaque: the LMDB environment and its tables */
struct store_read; /* opaque: a read transaction */

/* Opens (creating if needed) the environment in directory `dir` (created
 * with mode 0700). Returns 0 and sets *out, or a negative code with err set.
 * A store whose tables fail their integrity check on open (malformed meta
 * values, indexes whose sizes disagree with their tables) is refused with
 * SWM_ECORRUPT and a message naming what is wrong; one written by a newer
 * schema with SWM_ENOTSUP. Every commit is fsynced: the state survives
 * kill -9 at any moment. The caller owns *out and frees it with
 * store_close(). */
int store_open(const char *dir, struct store **out, struct swm_err *err);

/* Closes the environment and frees undelivered events. No transaction may
 * be open and no store_log may still use it. Accepts NULL. */
void store_close(struct store *s);

/* Index of the last applied log entry (0 for a new store). Any thread. */
uint64_t store_applied_index(struct store *s);

/* --- reads ------------------------------------------------------------ */

/* Begins a read transaction: a consistent snapshot until store_read_end.
 * Returns 0 and sets *out (owned by the caller), or a negative code with err
 * set. A read transaction may be used by one thread at a time, on any
 * thread; hold it briefly (it pins old pages, so the file grows). */
int store_read_begin(struct store *s, struct store_read **out, struct swm_err *err);
void store_read_end(struct store_read *r); /* accepts NULL */

/* The context of the last failed call on r ("reading table tasks key t1:
 * value does not decode as Task (12 bytes)"). Valid until the next call on
 * r; code 0 if the last call succeeded. */
const struct swm_err *store_read_err(const struct store_read *r);

/* Getters return 0 and a decoded copy the caller frees with proto_free(), or
 * SWM_ENOTFOUND. List functions return a swm_malloc'd array of decoded
 * objects the caller frees with store_free_list(); *n is its length (0 with
 * a non-NULL array when nothing matches). Object tables are listed in id
 * order, index lookups in task id order. Other failures: -ENOMEM, or
 * SWM_ECORRUPT when a stored value does not decode, holds another id, or an
 * index names a missing or different object; store_read_err() says which
 * table and key. Outputs are set only on success. */
int store_get_node(struct store_read *r, const char *id, Swarmc__Node **out);
int store_get_service(struct store_read *r, const char *id, Swarmc__Service **out);
int store_get_service_by_name(struct store_read *r, const char *name, Swarmc__Service **out);
int store_get_task(struct store_read *r, const char *id, Swarmc__Task **out);
/* The one cluster: the store refuses to create a second one. */
int store_get_cluster(struct store_read *r, Swarmc__Cluster **out);

int store_list_nodes(struct store_read *r, Swarmc__Node ***out, size_t *n);
int store_list_services(struct store_read *r, Swarmc__Service ***out, size_t *n);
int store_list_tasks(struct store_read *r, Swarmc__Task ***out, size_t *n);
/* Index lookups: tasks of one service, on one node, or with one desired
 * state. Tasks without a service_id or node_id are in no such list. */
int store_list_tasks_by_service(struct store_read *r, const char *service_id, Swarmc__Task ***out,
                                size_t *n);
int store_list_tasks_by_node(struct store_read *r, const char *node_id, Swarmc__Task ***out,
                             size_t *n);
int store_list_tasks_by_desired_state(struct store_read *r, Swarmc__TaskState state,
                                      Swarmc__Task ***out, size_t *n);

/* Frees an array from a list function: each element with proto_free, then
 * the array. Accepts NULL. */
void store_free_list(void *array, size_t n);

/* --- the write path (used by store/log.c and, later, by Raft) ---------- */

/* Result of applying one entry: code 0, or the first action's failure
 * with a message. A failed entry changes no object, but still advances the
 * applied index: the failure is deterministic, so every replica fails it the
 * same way. Entry failures are exactly:
 *   SWM_EEXISTS     create of an existing id, of a second cluster, or of a
 *                   service whose name is taken ("name conflicts with an
 *                   existing object", also on rename);
 *   SWM_ESTALE      update whose meta.version is not the stored one, remove
 *                   with a non-zero meta.version that is not the stored one;
 *   SWM_ENOTFOUND   update or remove of a missing id;
 *   SWM_EINVAL_SPEC malformed action (no kind, no object, empty id, an id,
 *                   name or other key longer than 255 bytes).
 * Anything else (ENOMEM, ENOSPC, EIO, SWM_ECORRUPT) is local to this node
 * and fails the whole store_apply_entries() call instead. */
struct store_apply_result {
    struct swm_err err;
};

/* A change delivered to watchers after the transaction that made it has
 * committed. `object` is the new object as stored (create/update, with its
 * new meta.version) or the removed one; it is owned by the store and valid
 * only during the callback. */
enum store_object_kind { STORE_KIND_NODE, STORE_KIND_SERVICE, STORE_KIND_TASK, STORE_KIND_CLUSTER };
struct store_event {
    enum store_object_kind kind;
    Swarmc__StoreAction__Kind action;
    const ProtobufCMessage *object;
};

/* Applies entries [index_first, index_first + n) in ONE write transaction
 * that also records the applied index, then fsyncs (LMDB's commit). Each
 * entry runs in a nested transaction, so a failing entry rolls back only
 * itself. Each entry's objects get meta.version = its index; on update
 * meta.created_at is kept from the stored object, the rest of meta (like
 * updated_at) comes from the proposal: apply reads no clock and no
 * randomness, so replicas agree. The entries are only read.
 * index_first must be above store_applied_index() (gaps are allowed: Raft
 * entries that carry no store change need not be applied).
 * results[i] receives entry i's outcome; results are meaningful only when
 * the call returns 0. Returns 0 if the transaction committed, or a negative
 * code (nothing applied, applied index unchanged) with err set: -EINVAL for
 * bad arguments, else a local failure (see store_apply_result). May run on
 * any thread, but only one caller at a time. Watchers are NOT called here
 * (see store_deliver_events). */
int store_apply_entries(struct store *s, uint64_t index_first, Swarmc__StoreEntry *const *entries,
                        size_t n, struct store_apply_result *results, struct swm_err *err);

/* Watchers: called on the loop thread by store_deliver_events() with every
 * change of the entries applied since the last delivery, in commit order,
 * one call per committed store_apply_entries() batch. A watcher sees at
 * least the changes of every batch that began after it registered.
 * Register and unregister on the loop thread (also from inside a watcher).
 * Returns 0 or -ENOMEM (-EINVAL without cb). */
typedef void (*store_watch_cb)(void *arg, const struct store_event *events, size_t n);
int store_watch(struct store *s, store_watch_cb cb, void *arg);

/* Removes the watcher registered with the same cb and arg. Returns 0 or
 * SWM_ENOTFOUND. */
int store_unwatch(struct store *s, store_watch_cb cb, void *arg);

/* Delivers the events queued by store_apply_entries to the watchers and
 * frees them. Call it on the loop thread after the apply completed. */
void store_deliver_events(struct store *s);

#endif
