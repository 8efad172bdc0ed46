/* A fake agent for the dispatcher tests: a session whose send function
 * captures every frame the dispatcher sends (decoded), and helpers that
 * send the frames an agent sends. Plus the dispatcher over a cluster
 * fixture with the log open. */
#ifndef SWM_TESTS_UNIT_DISPATCHER_AGENT_H
#define SWM_TESTS_UNIT_DISPATCHER_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "../manager/cluster.h"
#include "manager/dispatcher/dispatcher.h"

#define ASSIGN_UPDATE SWARMC__ASSIGNMENT__ACTION__ASSIGNMENT_ACTION_UPDATE
#define ASSIGN_REMOVE SWARMC__ASSIGNMENT__ACTION__ASSIGNMENT_ACTION_REMOVE

struct agent {
    struct dispatcher_session *sess;
    Swarmc__DispatcherMessage *frames[256]; /* decoded, owned */
    size_t n_frames;
};

struct dfx {
    struct cfx c;
    struct dispatcher *d;
};

/* A bootstrapped cluster with the log open and a dispatcher watching the
 * store, with heartbeat period heartbeat_ns. */
void dfx_setup(struct dfx *f, int64_t heartbeat_ns);

/* Closes the dispatcher (if still open) and tears the cluster down. */
void dfx_teardown(struct dfx *f);

/* Opens a session for a; closes it (and frees the frames). */
void agent_open(struct dfx *f, struct agent *a, const char *node_id);
void agent_close(struct agent *a);

/* Sends a RegisterRequest for node_id with a description (hostname). */
void agent_register(struct agent *a, const char *node_id, const char *hostname);

/* The same, with the availability the node joined with (`swarmc join
 * --availability`); hostname NULL sends no description. */
void agent_register_with_availability(struct agent *a, const char *node_id, const char *hostname,
                                      Swarmc__NodeAvailability availability);
void agent_heartbeat(struct agent *a);

/* Sends one TaskStatusUpdate with n reports: task_ids[i] in states[i]. */
void agent_report(struct agent *a, size_t n, const char *const *task_ids,
                  const Swarmc__TaskState *states, const char *message);

/* Sends raw bytes as a frame. */
void agent_send_raw(struct agent *a, const void *data, size_t len);

/* The frame at i (fails the test when there is none). */
const Swarmc__DispatcherMessage *agent_frame(struct agent *a, size_t i);

/* The assignments message at frame i (fails unless it is one), with its
 * changes' task ids and actions checked against "UPDATE:<id>,REMOVE:<id>"
 * (in the order sent). */
void agent_expect_assignments(struct agent *a, size_t i, Swarmc__AssignmentsMessage__Type type,
                              const char *changes);

/* Stores (with cfx_write) a task `id` of a service on node (NULL:
 * unassigned), in observed state `state`, desired state `desired`. */
void dfx_add_task(struct dfx *f, const char *id, const char *node, Swarmc__TaskState state,
                  Swarmc__TaskState desired);

#endif
