/* The manager's control loops (DESIGN.md §4 step 3): after every store
 * commit, one reconcile pass reads the cluster, runs the orchestrators
 * (replicated, global, restart, update, reaper), the allocator and the
 * scheduler over it, and proposes everything they decided as ONE store
 * entry. Passes are level-triggered and coalesced: changes that arrive while
 * a pass is being written trigger exactly one more pass, and a pass that
 * lost a race (SWM_ESTALE) is simply run again on fresh state.
 */
#ifndef SWM_MANAGER_MANAGER_H
#define SWM_MANAGER_MANAGER_H

#include <stdint.h>
#include <uv.h>

#include "store/log.h"
#include "store/store.h"

struct manager;

/* Starts the control loops over store and log (borrowed) and runs a first
 * pass. Registers itself as a store watcher. 0 or negative with err set. */
int manager_open(uv_loop_t *loop, struct store *s, struct store_log *log, struct manager **out,
                 struct swm_err *err);

/* Stops the loops; frees once its handles closed. Accepts NULL. Store
 * events arriving after this are ignored. */
void manager_close(struct manager *m);

/* The dispatcher heartbeat period configured in the cluster object, or
 * Swarm's default 5 s. */
int64_t manager_heartbeat_period(struct store *s);

#endif
