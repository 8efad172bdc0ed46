/* The dispatcher (DESIGN.md §4 step 3): keeps one session per connected
 * agent, pushes each node its assignments (the whole set on connect, then
 * changes as the store commits them), and turns the agents' batched task
 * status reports into store updates. Agents and the dispatcher exchange only
 * AgentMessage / DispatcherMessage frames, whether the agent is in-process
 * (the manager's own) or remote (multi-node issue).
 */
#ifndef SWM_MANAGER_DISPATCHER_H
#define SWM_MANAGER_DISPATCHER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store/log.h"
#include "store/store.h"

struct dispatcher;
struct dispatcher_session;

/* Sends one packed DispatcherMessage to the agent behind conn. */
typedef void (*dispatcher_send_fn)(void *conn, const uint8_t *frame, size_t len);

/* Creates the dispatcher over store and log (borrowed). heartbeat_ns is the
 * period agents are told to use; a node silent for 3 periods goes DOWN. */
int dispatcher_open(uv_loop_t *loop, struct store *s, struct store_log *log, int64_t heartbeat_ns,
                    struct dispatcher **out);

/* Closes every session and the timers; frees once the handles closed and
 * the status batch being written (if any) has been answered by the log, so
 * the loop must run on after this call. */
void dispatcher_close(struct dispatcher *d);

/* A new agent connection for node_id (the node its certificate names, or
 * this manager's own): the session registers that node only, so an agent
 * can neither speak for nor report the tasks of another node. The session
 * exists until dispatcher_session_close. Returns NULL on ENOMEM. */
struct dispatcher_session *dispatcher_session_open(struct dispatcher *d, const char *node_id,
                                                   dispatcher_send_fn send, void *conn);

/* Feeds one packed AgentMessage from the agent. Malformed frames are logged
 * and dropped; the session stays up. */
void dispatcher_session_receive(struct dispatcher_session *sess, const uint8_t *frame, size_t len);

/* The connection went away: the node is marked DOWN after the heartbeat
 * grace (3 periods) unless it registers again. sess must not be used after
 * this call. */
void dispatcher_session_close(struct dispatcher_session *sess);

/* Store watcher: forwards task changes to the sessions of their nodes. */
void dispatcher_on_store_events(void *arg, const struct store_event *events, size_t n);

#endif
