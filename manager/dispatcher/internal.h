/* Shared between the dispatcher's files; no other module includes it. */
#ifndef SWM_MANAGER_DISPATCHER_INTERNAL_H
#define SWM_MANAGER_DISPATCHER_INTERNAL_H

#include "common/id.h"
#include "common/strmap.h"
#include "manager/dispatcher/dispatcher.h"

struct dispatcher_session {
    struct dispatcher *d;
    /* NULL once the connection closed: the session stays, detached, until
     * its node registers again or is marked DOWN. */
    dispatcher_send_fn send;
    void *conn;
    char bound_node_id[SWM_ID_LEN + 1]; /* the only node it may register */
    char node_id[SWM_ID_LEN + 1];       /* empty until registered */
    char session_id[SWM_ID_LEN + 1];
    /* task id -> desired state last sent + 1, so status-only changes (the
     * agent's own reports coming back) are not echoed to the agent. */
    struct swm_strmap sent;
    int64_t last_seen_ns; /* monotonic */
    int marked_down;
    struct dispatcher_session *next;
};

struct node_write;

struct status_item {
    char node_id[SWM_ID_LEN + 1];
    char task_id[SWM_ID_LEN + 1];
    Swarmc__TaskStatus *status; /* owned */
};

struct dispatcher {
    uv_loop_t *loop;
    struct store *store;
    struct store_log *log;
    int64_t heartbeat_ns;
    uint64_t jitter_state; /* LCG for the heartbeat jitter */
    uv_timer_t heartbeat_timer;
    int64_t last_check_ns; /* monotonic time of the last heartbeat check */
    struct dispatcher_session *sessions;
    /* Status reports waiting for the next write, and the batch in flight
     * (kept to retry it when the write lost a race with the orchestrator). */
    struct status_item *queued;
    size_t n_queued;
    struct status_item *inflight;
    size_t n_inflight;
    int writing;
    struct node_write *node_writes; /* node state writes in flight (status.c) */
    uint64_t node_write_seq;
    int closing;
    int timer_closed;
};

void dispatcher__send(struct dispatcher_session *sess, const Swarmc__DispatcherMessage *msg);
void dispatcher__register(struct dispatcher_session *sess, const Swarmc__RegisterRequest *req);
void dispatcher__queue_status(struct dispatcher *d, const char *node_id,
                              const Swarmc__TaskStatusUpdate *update);
void dispatcher__status_free(struct dispatcher *d);
/* Frees d once it is closing, its timer closed and no status batch or node
 * state is being written (the log calls back even after the dispatcher
 * closed). */
void dispatcher__maybe_free(struct dispatcher *d);
/* Frees the detached sessions of node_id: the node is back. */
void dispatcher__drop_detached(struct dispatcher *d, const char *node_id);
/* Proposes a node status change. With a registration (not NULL), its
 * description replaces the stored one, and at the node's first
 * registration (no description stored yet) its availability, if any,
 * becomes the node's (`swarmc join --availability`). */
void dispatcher__set_node_state(struct dispatcher *d, const char *node_id, Swarmc__NodeState state,
                                const char *message, const Swarmc__RegisterRequest *reg);

#endif
