/* The log that orders every store write (DESIGN.md §5). Callers propose a
 * StoreEntry; once it is durable and applied, their callback runs on the loop
 * thread with the outcome. This is the one-member log: append and apply in
 * one LMDB write transaction with fsync, run on the libuv threadpool, with
 * every proposal queued during a write joining the next batch (group
 * commit). The Raft issue replaces its insides, not this interface.
 */
#ifndef SWM_STORE_LOG_H
#define SWM_STORE_LOG_H

#include <stdint.h>
#include <uv.h>

#include "store/store.h"

struct store_log;

/* Creates the log over store s, on loop. The next entry gets index
 * store_applied_index(s) + 1; the log must then be s's only writer (no
 * direct store_apply_entries() beside it). s must stay open until the log
 * is freed (see store_log_close). Returns 0 and sets *out, or a negative
 * code with err set. Loop thread only, like every function here. */
int store_log_open(uv_loop_t *loop, struct store *s, struct store_log **out, struct swm_err *err);

/* Stops accepting proposals. A batch already being written completes with
 * its real outcome; proposals still queued complete with SWM_ESHUTDOWN, in
 * order, on a later loop iteration (never inside this call). The log frees
 * itself once its handle is closed and no write is in flight, so the loop
 * must run on after this call. May be called from a commit callback.
 * Accepts NULL; a second call does nothing. */
void store_log_close(struct store_log *log);

/* Called on the loop thread once the entry is applied (status 0, index = its
 * log index, err = the entry's apply result: err->code 0 or the failure) or
 * could not be written (status < 0, index 0, err says why: the batch's write
 * failed, or SWM_ESHUTDOWN). Store watchers have already seen the batch's
 * changes when it runs. err is valid only during the call. The callback
 * may propose again or close the log. */
typedef void (*store_commit_cb)(void *arg, int status, uint64_t index, const struct swm_err *err);

/* Proposes entry (ownership passes to the log: it is freed with proto_free
 * after the callback, so it must come from proto_unpack/proto_clone or be
 * built from swm_malloc'd parts). The log only reads it. Returns 0, or a
 * negative code without calling cb and without taking ownership:
 * SWM_ESHUTDOWN once the log is closing, -EINVAL (no entry or no cb),
 * -ENOMEM. */
int store_log_propose(struct store_log *log, Swarmc__StoreEntry *entry, store_commit_cb cb,
                      void *arg);

#endif
