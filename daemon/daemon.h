/* The node daemon: wires one node's store, manager (control API,
 * orchestrators, scheduler, dispatcher) and agent onto one libuv loop
 * (DESIGN.md §2). `swarmc init` creates a node's state and starts it;
 * `swarmc daemon` starts it again from an existing data dir.
 */
#ifndef SWM_DAEMON_DAEMON_H
#define SWM_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct daemon_opts {
    const char *data_dir;  /* default /var/lib/swarmc */
    const char *run_dir;   /* default /run/swarmc */
    const char *self_exe;  /* path of the swarmc binary (for shims) */
    const char *log_level; /* NULL = info */
    bool foreground;       /* stay attached, log to stderr */
    /* init and join only (0 / NULL = Swarm's default) */
    const char *advertise_addr;
    const char *listen_addr;
    const char *availability;   /* "active" | "pause" | "drain" */
    int64_t task_history_limit; /* -1 = default 5 */
    int64_t dispatcher_heartbeat_ns;
    int64_t cert_expiry_ns;
    uint64_t snapshot_interval; /* raft entries between snapshots; 0 = the cluster's (10000) */
    bool force_new_cluster;
};

/* Creates a new one-node cluster in opts->data_dir (refused if the node is
 * already part of a cluster: "this node is already part of a swarm"), then
 * starts the daemon: detached (logging to <data-dir>/swarmc.log) unless
 * opts->foreground. Returns once the control socket accepts requests, with
 * the node id in node_id (26 bytes), or a negative code with err set. In the
 * foreground it returns only when the daemon stops. */
int daemon_init(const struct daemon_opts *opts, char node_id[26], struct swm_err *err);

/* Joins the swarm of the manager at `remote` ("ip[:port]", port 2377 by
 * default) with a join token (`swarmc join`): gets this node's certificate
 * from the manager, writes the node's state, then starts the daemon like
 * daemon_init. opts' listen/advertise addresses and availability apply;
 * the node id goes to node_id, and *manager says whether the token made it
 * a manager. Refused if the node is already part of a
 * swarm. */
int daemon_join(const struct daemon_opts *opts, const char *token, const char *remote,
                char node_id[26], bool *manager, struct swm_err *err);

/* Starts the daemon from an existing data dir (`swarmc daemon`). Detaches
 * unless opts->foreground; returns like daemon_init. */
int daemon_start(const struct daemon_opts *opts, struct swm_err *err);

#endif
