/* The raft transport over the secure channel (transport.h; DESIGN.md §6,
 * net/transport/conn.h), run on a cluster port (net/transport/port.h,
 * docs/protocol.md "Cluster port") as its service CHAN_SERVICE_RAFT.
 *
 * Behaves like the plain-TCP transport (transport_tcp.h), except that it has
 * no listener of its own: peers reach it through the port, which hands it
 * the connections that asked for the raft service. At most one outbound
 * connection per peer, opened on the first send (it sends the RAFT service
 * hello, then frames) and reopened with backoff (100 ms doubling to 2 s)
 * after a failure; an outbound connection only carries frames from us to
 * the peer, frames from the peer arrive on the connection it opened to us;
 * frames still queued when a connection fails are dropped (Raft retries).
 * One channel message is one raft frame: the channel frames, encrypts and
 * bounds the size, so there is no header of our own.
 *
 * Security: the service is offered to MANAGER certificates only, so the
 * port refuses a worker's connection asking for raft; the port's handshake
 * refuses another cluster's certificate, an expired or a revoked one.
 * Outbound, the channel only accepts a manager's certificate of our cluster
 * (the allowed peer roles are forced to manager only). Data from an inbound
 * connection is delivered only after its handshake and hello.
 *
 * Binding raft ids to certificates: raft ids are derived from node ids by
 * the daemon (raft id = hash of the node id, raft_id_of in
 * daemon/daemon.c), so the mapping is the caller's. With
 * raft_chan_transport_bind_ids, every inbound frame whose raft `from` is not
 * the raft id of the peer certificate's node is refused (the connection is
 * closed), and an outbound connection whose peer is not the node of the raft
 * id we dialed is closed and retried. Without it, any manager of the
 * cluster may claim any raft id.
 *
 * Loop thread only. The functions below take a transport made by
 * raft_chan_transport_open and no other kind. */
#ifndef SWM_MANAGER_RAFT_TRANSPORT_CHAN_H
#define SWM_MANAGER_RAFT_TRANSPORT_CHAN_H

#include "common/err.h"
#include "manager/raft/transport.h"
#include "net/transport/channel.h"
#include "net/transport/port.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Defaults for struct raft_chan_limits fields left at 0. */
#define RAFT_CHAN_PEER_QUEUE_BYTES (64u << 20)
#define RAFT_CHAN_MAX_INBOUND 64u

struct raft_chan_limits {
    /* Bytes queued for one peer: frames waiting for the handshake or for
     * the channel to drain, plus the encrypted bytes the channel is still
     * writing. A send past this bound is refused with -ENOBUFS; a frame
     * always fits an empty queue. Applies to later sends and connections. */
    size_t peer_queue_bytes;
    /* Inbound connections served at once: one more that the port hands
     * over is closed with a warning. Applies to later connections. */
    unsigned max_inbound;
};

/* Maps a certificate's node id to its raft id (the daemon's raft_id_of). */
typedef uint64_t (*raft_chan_id_fn)(const char *node_id, void *arg);

/* Creates a transport for member self_id (not 0) and offers it on `port`
 * as service CHAN_SERVICE_RAFT to managers (chan_port_offer); only one
 * raft transport may use a port at a time. The port is borrowed: closing
 * the transport (raft_transport_close) withdraws the service and closes
 * the connections it took over, and must come before chan_port_close.
 * Peers dial the port's address (chan_port_port gives its port number).
 *
 * `cfg` is this manager's side of the outbound channels: identity key,
 * certificate (must have the manager role), cluster root key, wall clock,
 * optional revocation set and timeouts. Everything it points to is copied
 * (the key is wiped when the transport is freed) except `revoked`, which
 * stays borrowed and must outlive the transport. Its side, join fields,
 * peer_node_id and peer_roles are ignored (peers must be managers).
 * Inbound channels run with the port's own configuration.
 * cfg->max_frame bounds a raft frame both ways (0: RAFT_MESSAGE_MAX_SIZE):
 * a larger inbound frame closes its connection. All members must use the
 * same value, and the port's configuration must allow frames that large
 * (its max_frame, 0 meaning CHAN_MAX_FRAME_DEFAULT), as a peer closes a
 * connection that carries a frame over its own limit.
 *
 * The caller sets (*out)->recv and recv_arg before running the loop and
 * releases the transport with raft_transport_close. Returns 0 and sets
 * *out, or -EINVAL (bad id, port or configuration) or -ENOMEM, with err
 * (may be NULL) saying what failed; then nothing is offered on the port. */
int raft_chan_transport_open(uv_loop_t *loop, uint64_t self_id, struct chan_port *port,
                             const struct chan_config *cfg, struct raft_transport **out,
                             struct swm_err *err);

/* Replaces the resource bounds (see struct raft_chan_limits); copied. */
void raft_chan_transport_set_limits(struct raft_transport *t,
                                    const struct raft_chan_limits *limits);

/* Binds raft ids to certificates (see the top of this file): `id_of`
 * (borrowed, with `arg`) maps a node id to its raft id; NULL unbinds.
 * Applies to connections established from now on. Returns 0, or -EINVAL
 * if our own certificate's node does not map to self_id. */
int raft_chan_transport_bind_ids(struct raft_transport *t, raft_chan_id_fn id_of, void *arg);

/* Adds peer id (not 0) at addr ("host:port", numeric), or changes its
 * address: the connection to the old address is dropped, frames still
 * waiting go to the new one. Setting the current address again changes
 * nothing. Returns 0, -EINVAL (bad id or address), -ENOMEM, SWM_ESHUTDOWN
 * (transport closing). */
int raft_chan_transport_set_peer(struct raft_transport *t, uint64_t id, const char *addr);

/* Uses `cert` (renewed, for the same node and key) on connections made
 * from now on; established ones keep the certificate they were made with.
 * Returns 0 or -EINVAL (another node or key). */
int raft_chan_transport_set_cert(struct raft_transport *t, const struct ca_cert *cert);

/* Forgets peer id: closes its connection and drops its queued frames; a
 * later send to id returns SWM_ENOTFOUND. Returns 0 or SWM_ENOTFOUND. */
int raft_chan_transport_remove_peer(struct raft_transport *t, uint64_t id);

#endif
