/* Shared between the manager's files; no other module includes it. */
#ifndef SWM_MANAGER_INTERNAL_H
#define SWM_MANAGER_INTERNAL_H

#include "manager/manager.h"
#include "manager/view.h"

struct manager {
    uv_loop_t *loop;
    struct store *store;
    struct store_log *log;
    uv_timer_t pass_timer;   /* runs a pass on the next loop turn */
    uv_timer_t wakeup_timer; /* a pass at a time the orchestrators asked for */
    uint64_t wakeup_due;     /* loop time the wakeup timer fires at */
    int open_handles;
    int dirty;   /* something changed since the last pass began */
    int writing; /* a pass's entry is being committed */
    int closing;
};

/* One reconcile pass over the store's current state at now_ns: fills *entry
 * with every change decided (NULL if none) and *wakeup_ns with the earliest
 * time a later pass is needed (0 if none). Returns 0 or negative with err. */
int manager__reconcile(struct store *s, int64_t now_ns, Swarmc__StoreEntry **entry,
                       int64_t *wakeup_ns, struct swm_err *err);

/* Runs the orchestrators and reapers of every service over v, applying
 * their plans to it; *wakeup_ns gets the earliest time they asked to be
 * called again (left as is if none). 0 or negative with err set. */
int manager__orchestrate(struct manager_view *v, int64_t now_ns, int64_t *wakeup_ns,
                         struct swm_err *err);

#endif
