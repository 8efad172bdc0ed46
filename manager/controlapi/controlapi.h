/* The control API's cluster operations (DESIGN.md §4 step 1): services,
 * tasks, nodes, cluster info and join tokens. Reads come from the local
 * store; writes are validated, turned into one StoreEntry and proposed to
 * the log, and answered once applied. The daemon's socket server decodes
 * requests and hands the cluster ones here.
 */
#ifndef SWM_MANAGER_CONTROLAPI_H
#define SWM_MANAGER_CONTROLAPI_H

#include "proto/codec.h"
#include "store/log.h"
#include "store/store.h"

struct controlapi;

/* Creates the handler set over store s and log (both borrowed; they must
 * outlive it). node_id is the local node (for "self"), data_dir its data
 * directory (for `info`). */
int controlapi_open(struct store *s, struct store_log *log, const char *node_id,
                    const char *data_dir, struct controlapi **out);
/* Closes the handler set. Writes still being committed are answered as
 * usual; it is freed after the last (so the loop must run on, and the store
 * stay open, until the log has called back). Accepts NULL. */
void controlapi_close(struct controlapi *api);

/* Receives the response (ownership passes to the callee, which frees it
 * with proto_free). Called exactly once per handled request, possibly before
 * controlapi_handle returns. */
typedef void (*controlapi_reply_cb)(void *arg, Swarmc__ControlResponse *resp);

/* Handles one cluster request (req is borrowed for the duration of the
 * call). Returns 0, or SWM_ENOTSUP (cb not called) when req is not a cluster
 * operation. */
int controlapi_handle(struct controlapi *api, const Swarmc__ControlRequest *req,
                      controlapi_reply_cb cb, void *arg);

/* Builds an empty success response. NULL on ENOMEM. */
Swarmc__ControlResponse *controlapi_ok_response(void);

/* Builds an error response (code, one-line message). NULL on ENOMEM. */
Swarmc__ControlResponse *controlapi_error_response(int code, const char *msg);

/* Resolves a service reference: exact id, exact name, then unique id
 * prefix. SWM_ENOTFOUND with "service X not found". */
int controlapi_find_service(struct store_read *r, const char *ref, Swarmc__Service **out,
                            struct swm_err *err);
/* Same for nodes: "self", id, hostname, unique id prefix. */
int controlapi_find_node(struct store_read *r, const char *self_id, const char *ref,
                         Swarmc__Node **out, struct swm_err *err);

#endif
