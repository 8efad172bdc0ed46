/* Shared between the daemon's files; no other module includes it. */
#ifndef SWM_DAEMON_INTERNAL_H
#define SWM_DAEMON_INTERNAL_H

#include <uv.h>

#include "agent/agent.h"
#include "common/id.h"
#include "daemon/daemon.h"
#include "manager/controlapi/controlapi.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/manager.h"
#include "manager/raft/node.h"
#include "store/store.h"

struct api_server;
struct link;

struct node_daemon {
    uv_loop_t loop;
    const struct daemon_opts *opts;
    char node_id[SWM_ID_LEN + 1];
    struct store *store;
    struct raft_node *raft;
    struct controlapi *controlapi;
    struct dispatcher *dispatcher;
    struct manager *manager;
    struct agent *agent;
    struct link *link;
    struct api_server *api;
    uv_signal_t sigterm, sigint;
    int leaving; /* `leave` in progress: wipe state once stopped */
    int stopping;
    int started;              /* components opened (at the first leadership) */
    struct swm_err start_err; /* why they failed to open, code 0 if they did not */
};

/* The control socket server: <run-dir>/swarmc.sock. */
int daemon__api_open(struct node_daemon *nd, const char *path, struct api_server **out,
                     struct swm_err *err);
void daemon__api_close(struct api_server *srv);

/* The in-process session between the local agent and the dispatcher:
 * frames are queued and delivered on the next loop iteration, never
 * re-entrantly, as a network would. */
int daemon__link_open(struct node_daemon *nd, struct link **out);
void daemon__link_close(struct link *l);

/* Begins an orderly stop; with leave, removes every container and the
 * node's state once stopped. */
void daemon__stop(struct node_daemon *nd, int leave);

/* Removes the node's state from the data dir (after `leave`). */
void daemon__wipe_state(const struct daemon_opts *o);

/* Streams a service's logs to a connection (daemon/logs.c). */
struct api_conn;
void daemon__logs(struct node_daemon *nd, struct api_conn *conn,
                  const Swarmc__ServiceLogsRequest *req);
/* Sends one response frame on conn (resp is borrowed). Returns 0 or < 0 if
 * the connection is gone. */
int daemon__api_send(struct api_conn *conn, const Swarmc__ControlResponse *resp);
int daemon__api_conn_closed(const struct api_conn *conn);
void daemon__api_conn_ref(struct api_conn *conn);
void daemon__api_conn_unref(struct api_conn *conn);

#endif
