/* The agent (DESIGN.md §4 step 4): runs the tasks the dispatcher assigns to
 * this node. It drives each task ACCEPTED -> PREPARING -> STARTING ->
 * RUNNING through the executor, stops and removes containers when the
 * desired state says so, and reports status changes back in batches. It
 * talks to the dispatcher only through AgentMessage / DispatcherMessage
 * frames.
 */
#ifndef SWM_AGENT_AGENT_H
#define SWM_AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

struct agent;
struct image_store;

struct agent_opts {
    uv_loop_t *loop;
    const char *node_id;
    const char *hostname;
    const char *data_dir; /* images/ and containers/ live below it */
    const char *run_dir;  /* runc/ state lives below it */
    const char *self_exe; /* swarmc binary, for the per-container shim */
    /* `swarmc join --availability`, sent when registering (the manager
     * applies it at the node's first registration only). */
    bool has_join_availability;
    int join_availability; /* Swarmc__NodeAvailability */
    /* The dispatcher named the managers (at each registration); may be
     * NULL. */
    void (*on_managers)(void *arg, const char *const *addrs, size_t n);
    void *on_managers_arg;
};

/* Opens the image store and executor and re-adopts the containers a
 * previous daemon left. An adopted container is reported when its task's
 * assignment arrives (its exit too, if it stops before); one whose task is
 * not in the first complete assignment set is stopped and removed.
 * Returns 0 or a negative code with err set. */
int agent_open(const struct agent_opts *opts, struct agent **out, struct swm_err *err);

/* Stops timers and closes the executor; containers keep running. */
void agent_close(struct agent *a);

/* Sends one packed AgentMessage to the dispatcher. */
typedef void (*agent_send_fn)(void *conn, const uint8_t *frame, size_t len);

/* Starts a session over send/conn: registers the node, then reports the
 * latest state of every task it knows (reports lost with an earlier
 * connection included). */
void agent_connect(struct agent *a, agent_send_fn send, void *conn);

/* The session's connection is gone: nothing is sent (reports wait) until
 * the next agent_connect. */
void agent_disconnect(struct agent *a);

/* Feeds one packed DispatcherMessage. Malformed frames are logged and
 * dropped. */
void agent_receive(struct agent *a, const uint8_t *frame, size_t len);

/* The node's image store (owned by the agent). */
struct image_store *agent_images(struct agent *a);

/* The ids of the images this node's containers use (for `image rm`, which
 * runs on the threadpool and so needs a snapshot): a swm_malloc'd array of
 * swm_malloc'd strings. Returns 0 or -ENOMEM. */
int agent_images_in_use(struct agent *a, char ***ids, size_t *n);

/* Directory holding a task's log files (swm_malloc'd), or NULL. */
char *agent_task_log_dir(struct agent *a, const char *task_id);

/* Stops every container and removes them (for `leave`); cb when done.
 * Assignments that arrive from then on are ignored. */
void agent_remove_all(struct agent *a, void (*cb)(void *arg), void *arg);

#endif
