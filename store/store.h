/* The node's object store: one LMDB environment under <data-dir>/state with
 * a table per object kind plus secondary indexes (DESIGN.md §5).
 *
 * Reads happen in read transactions from any thread (MDB_NOTLS). Writes never
 * happen here directly: callers propose a StoreEntry to the log (store/log.h),
 * and committed entries are applied by store_apply_entry(), which is the only
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
 * A store whose tables fail their integrity check on open is refused with
 * SWM_ECORRUPT and a message naming what is wrong. */
int store_open(const char *dir, struct store **out, struct swm_err *err);

/* Closes the environment. No transaction may be open. Accepts NULL. */
void store_close(struct store *s);

/* Index of the last applied log entry (0 for a new store). */
uint64_t store_applied_index(struct store *s);

/* --- reads ------------------------------------------------------------ */

/* Begins a read transaction: a consistent snapshot until store_read_end. */
int store_read_begin(struct store *s, struct store_read **out, struct swm_err *err);
void store_read_end(struct store_read *r); /* accepts NULL */

/* Getters return 0 and a decoded copy the caller frees with proto_free(), or
 * SWM_ENOTFOUND. List functions return a swm_malloc'd array of decoded
 * objects the caller frees with store_free_list(); *n is its length. */
int store_get_node(struct store_read *r, const char *id, Swarmc__Node **out);
int store_get_service(struct store_read *r, const char *id, Swarmc__Service **out);
int store_get_service_by_name(struct store_read *r, const char *name, Swarmc__Service **out);
int store_get_task(struct store_read *r, const char *id, Swarmc__Task **out);
int store_get_cluster(struct store_read *r, Swarmc__Cluster **out); /* the one cluster */

int store_list_nodes(struct store_read *r, Swarmc__Node ***out, size_t *n);
int store_list_services(struct store_read *r, Swarmc__Service ***out, size_t *n);
int store_list_tasks(struct store_read *r, Swarmc__Task ***out, size_t *n);
/* Index lookups: tasks of one service, on one node, or with one desired state. */
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
 * (SWM_ESTALE, SWM_EEXISTS, SWM_ENOTFOUND...) with a message. A failed entry
 * changes no object, but still advances the applied index: the failure is
 * deterministic, so every replica fails it the same way. */
struct store_apply_result {
    struct swm_err err;
};

/* A change delivered to watchers after the transaction that made it has
 * committed. `object` is the new object (create/update) or the removed one;
 * it is owned by the store and valid only during the callback. */
enum store_object_kind { STORE_KIND_NODE, STORE_KIND_SERVICE, STORE_KIND_TASK, STORE_KIND_CLUSTER };
struct store_event {
    enum store_object_kind kind;
    Swarmc__StoreAction__Kind action;
    const ProtobufCMessage *object;
};

/* Applies entries [index_first, index_first + n) in ONE write transaction
 * that also records the applied index, then fsyncs (LMDB's commit). Each
 * entry's objects get meta.version = its index. results[i] receives entry
 * i's outcome. Returns 0 if the transaction committed, or a negative code
 * (nothing applied) with err set. May run on any thread, but only one
 * caller at a time. Watchers are NOT called here (see store_deliver_events). */
int store_apply_entries(struct store *s, uint64_t index_first, Swarmc__StoreEntry *const *entries,
                        size_t n, struct store_apply_result *results, struct swm_err *err);

/* Watchers: called on the loop thread by store_deliver_events() with every
 * change of the entries applied since the last delivery, in commit order. */
typedef void (*store_watch_cb)(void *arg, const struct store_event *events, size_t n);
int store_watch(struct store *s, store_watch_cb cb, void *arg);

/* Delivers the events queued by store_apply_entries to the watchers. Call it
 * on the loop thread after the apply completed. */
void store_deliver_events(struct store *s);

#endif
