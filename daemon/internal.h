/* Shared between the daemon's files; no other module includes it. */
#ifndef SWM_DAEMON_INTERNAL_H
#define SWM_DAEMON_INTERNAL_H

#include <stdbool.h>
#include <uv.h>

#include "agent/agent.h"
#include "common/id.h"
#include "daemon/daemon.h"
#include "daemon/nodeconf.h"
#include "manager/controlapi/controlapi.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/manager.h"
#include "manager/raft/node.h"
#include "net/identity/files.h"
#include "store/store.h"

struct agent_session;
struct raft_joiner;
struct raft_transport;
struct api_server;
struct cluster_server;

struct node_daemon {
    uv_loop_t loop;
    const struct daemon_opts *opts;
    char node_id[SWM_ID_LEN + 1];
    /* The node's key, certificate and pinned root (<data-dir>/certificates);
     * has_identity is false for a data dir made before the CA existed. */
    struct ca_node_files identity;
    bool has_identity;
    bool worker; /* its certificate grants the worker role */
    struct node_conf conf;
    /* A manager's: */
    struct store *store;
    struct raft_node *raft;
    struct raft_transport *raft_transport; /* owned by raft; NULL without a port */
    struct raft_joiner *raft_joiner;       /* a joined manager asking to be added */
    struct controlapi *controlapi;
    struct dispatcher *dispatcher;
    struct manager *manager;
    struct cluster_server *server; /* the cluster port */
    /* Both: */
    struct agent *agent;
    struct agent_session *session; /* the agent's, to the leader's dispatcher */
    struct cert_renewal *renewal;
    struct api_server *api;
    uv_signal_t sigterm, sigint;
    int leaving; /* `leave` in progress: wipe state once stopped */
    int stopping;
    int started;              /* node components opened (at the first known leader) */
    int leading;              /* leader components open */
    struct swm_err start_err; /* why they failed to open, code 0 if they did not */
};

const char *daemon__data_dir(const struct daemon_opts *o);

/* The wall clock the channels check certificates against. */
int64_t daemon__wall_clock(void *arg);

/* Dials the manager at addr over the secure channel with this node's
 * identity (chan_conn_connect; the peer must hold a manager's
 * certificate). */
struct chan_conn;
struct chan_conn_callbacks;
int daemon__dial_manager(struct node_daemon *nd, const char *addr,
                         const struct chan_conn_callbacks *cbs, struct chan_conn **out,
                         struct swm_err *err);

/* This node's raft member id, derived from its node id. */
uint64_t daemon__raft_id(const char *node_id);

/* Checks an address flag ("--listen-addr") and adds port 2377 if it has
 * none. Returns 0 or -EINVAL with a message naming the flag. */
int daemon__addr_flag(const char *flag, const char *value, char out[SWM_ADDR_STRLEN],
                      struct swm_err *err);

/* Where other nodes reach this manager (its ManagerStatus.addr): the
 * advertise address, else 127.0.0.1 with the listen port. */
void daemon__manager_addr(const struct node_conf *conf, char out[SWM_ADDR_STRLEN]);

/* Makes a new cluster's state in the data dir (`swarmc init`). */
int daemon__create_state(const struct daemon_opts *o, char node_id[SWM_ID_LEN + 1],
                         struct swm_err *err);

/* Joins the swarm whose manager listens at `remote` with `token` and
 * writes the node's state (`swarmc join`): the identity key, the
 * certificate the manager issued (*manager: with the manager role),
 * node.conf and node_id. */
int daemon__join_state(const struct daemon_opts *o, const char *token, const char *remote,
                       char node_id[SWM_ID_LEN + 1], bool *manager, struct swm_err *err);

/* Answers a request that came over the network: resp is borrowed. Called
 * exactly once per request. */
typedef void (*daemon_reply_fn)(void *arg, const Swarmc__ControlResponse *resp);

/* Answers a cluster request (the control API; takes req): on the leader
 * after a read barrier, on a follower forwarded to the leader when
 * may_forward (requests that came from another manager are not forwarded
 * again). reply runs exactly once with an owned response. */
void daemon__cluster_request(struct node_daemon *nd, Swarmc__ControlRequest *req, bool may_forward,
                             controlapi_reply_cb reply, void *arg);

/* A manager's raft membership (daemon/managers.c): opens the raft node on
 * the cluster port with its peers from the store, and makes a manager that
 * joined ask the leader to add it. */
int daemon__managers_open(struct node_daemon *nd,
                          void (*on_leadership)(void *arg, bool leader, uint64_t leader_id),
                          struct swm_err *err);
void daemon__managers_close(struct node_daemon *nd);

/* A new leader records itself as leader in the managers' nodes (node ls's
 * MANAGER STATUS). */
void daemon__managers_record_leader(struct node_daemon *nd);

/* The leader's answer to a manager asking to join the raft membership
 * (node_id from its certificate). */
void daemon__managers_raft_join(struct node_daemon *nd, const char *node_id,
                                const Swarmc__RaftJoinRequest *req, daemon_reply_fn reply,
                                void *arg);

/* A manager's cluster port. Opened at start; while the manager leads it
 * also admits joining nodes and serves agents' sessions (serve_lead), and
 * stops again when leadership is lost (serve_follow, which closes the
 * agents' connections so they find the new leader). */
int daemon__serve_open(struct node_daemon *nd, struct cluster_server **out, struct swm_err *err);
int daemon__serve_lead(struct cluster_server *srv, struct swm_err *err);
void daemon__serve_follow(struct cluster_server *srv);
void daemon__serve_close(struct cluster_server *srv);
struct chan_port *daemon__serve_port(struct cluster_server *srv);

/* The index-th (modulo their count) of the managers this node knows: a
 * worker's node.conf, a manager's store. Returns 0 or -ENOENT. */
int daemon__manager_addrs(struct node_daemon *nd, size_t index, char out[SWM_ADDR_STRLEN]);

/* Renews the node's certificate at a random 50-80% of its life
 * (daemon/renew.c); the new one is saved and used for new connections. */
struct cert_renewal;
int daemon__renewal_open(struct node_daemon *nd, struct cert_renewal **out, struct swm_err *err);
void daemon__renewal_close(struct cert_renewal *r);

/* The node's certificate was renewed: new connections use it. */
void daemon__serve_identity_changed(struct cluster_server *srv);

/* The agent's session with the leader's dispatcher (daemon/session.c). */
int daemon__session_open(struct node_daemon *nd, struct agent_session **out, struct swm_err *err);
void daemon__session_close(struct agent_session *s);

/* The control socket server: <run-dir>/swarmc.sock. */
int daemon__api_open(struct node_daemon *nd, const char *path, struct api_server **out,
                     struct swm_err *err);
void daemon__api_close(struct api_server *srv);

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
