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

/* Creates the log over store s, on loop. Returns 0 or a negative code. */
int store_log_open(uv_loop_t *loop, struct store *s, struct store_log **out, struct swm_err *err);

/* Stops accepting proposals; pending ones complete with SWM_ESHUTDOWN. Must
 * be called before uv_run returns; frees the log once its handles closed. */
void store_log_close(struct store_log *log);

/* Called on the loop thread once the entry is applied (status 0, index = its
 * log index, err = the entry's apply result: err->code 0 or the failure) or
 * could not be written (status < 0, err says why). */
typedef void (*store_commit_cb)(void *arg, int status, uint64_t index, const struct swm_err *err);

/* Proposes entry (ownership passes to the log: it is freed with proto_free
 * after the callback). Returns 0, or a negative code without calling cb (and
 * without taking ownership) if the log is closed. */
int store_log_propose(struct store_log *log, Swarmc__StoreEntry *entry, store_commit_cb cb,
                      void *arg);

#endif
