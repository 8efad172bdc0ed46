/* The log that orders every store write (DESIGN.md §5). Writers (the control
 * API, the control loops, the dispatcher) propose a StoreEntry; once it is
 * committed and applied, their callback runs on the loop thread with the
 * outcome. Writers see only this interface; the manager's raft node
 * (manager/raft/node.h) implements it, so the store does not depend on how
 * entries are replicated.
 */
#ifndef SWM_STORE_LOG_H
#define SWM_STORE_LOG_H

#include <stdint.h>

#include "store/store.h"

/* Called on the loop thread once the entry is applied (status 0, index = its
 * log index, err = the entry's apply result: err->code 0 or the failure, as
 * in store_apply_result) or could not be committed (status < 0, index 0,
 * err says why: SWM_ENOTLEADER naming the leader when this node is not the
 * leader or lost leadership before the entry committed — the entry may then
 * still be applied later by the new leader —, a failed disk write, or
 * SWM_ESHUTDOWN). Store watchers have already seen the entry's changes when
 * it runs. err is valid only during the call. The callback may propose
 * again or close the log. Never called from inside store_log_propose. */
typedef void (*store_commit_cb)(void *arg, int status, uint64_t index, const struct swm_err *err);

struct store_log;

struct store_log_ops {
    int (*propose)(struct store_log *log, Swarmc__StoreEntry *entry, store_commit_cb cb, void *arg);
};

/* Embedded by the implementation. */
struct store_log {
    const struct store_log_ops *ops;
};

/* Proposes entry (ownership passes to the log: it is freed with proto_free,
 * so it must come from proto_unpack/proto_clone or be built from
 * swm_malloc'd parts). The log only reads it. Proposals made in one loop
 * turn are committed together (group commit). Returns 0, or a negative code
 * without calling cb and without taking ownership: SWM_ESHUTDOWN once the
 * log is closing, -EINVAL (no entry or no cb), -ENOMEM. */
static inline int store_log_propose(struct store_log *log, Swarmc__StoreEntry *entry,
                                    store_commit_cb cb, void *arg)
{
    return log->ops->propose(log, entry, cb, arg);
}

#endif
