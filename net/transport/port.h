/* The cluster port (2377, DESIGN.md §6, docs/protocol.md "Cluster port"):
 * one secure-channel listener shared by every service a manager offers.
 *
 * After the handshake, the initiator's first application message is a
 * service hello (chan_service_hello) naming what the connection is for:
 * raft between managers, an agent's dispatcher session, or a control
 * request. The port checks the peer's certificate role against the roles
 * the service accepts and hands the connection to the service's `accept`
 * callback, which takes it over with chan_conn_set_callbacks (or closes
 * it). A connection that names no service, an unknown or unoffered one, or
 * one its role may not use, is closed with one log line naming the remote
 * address, the node and the reason; so is one that sends nothing within
 * the handshake timeout. Join channels (a token instead of a certificate)
 * go to the join handler, which takes them over the same way.
 *
 * Loop thread only, like conn.h. */
#ifndef SWM_NET_TRANSPORT_PORT_H
#define SWM_NET_TRANSPORT_PORT_H

#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "net/identity/identity.h"
#include "net/transport/conn.h"

/* What a connection is for (the byte in its service hello). */
enum chan_service {
    CHAN_SERVICE_RAFT = 1,       /* manager <-> manager raft frames */
    CHAN_SERVICE_DISPATCHER = 2, /* an agent's session with the dispatcher */
    CHAN_SERVICE_CONTROL = 3,    /* control requests forwarded to the leader */
    CHAN_SERVICE_CA = 4,         /* a node renewing its certificate */
};
#define CHAN_SERVICE_COUNT 5 /* one past the largest service */

/* A connection for a service, established and past its hello. The callee
 * must, before returning, either take the connection over with
 * chan_conn_set_callbacks (it then gets `closed` exactly once, and every
 * later message) or call chan_conn_close. `peer` is borrowed. */
typedef void (*chan_port_accept_fn)(struct chan_conn *conn, const struct ca_cert *peer, void *arg);

/* A joiner proved its token for `role` and asks for a certificate for
 * `pk`. Same contract as chan_port_accept_fn: take the connection over
 * (then answer with chan_conn_send_cert) or close it. */
typedef void (*chan_port_join_fn)(struct chan_conn *conn, const uint8_t pk[CA_PUBKEY_LEN], int role,
                                  void *arg);

struct chan_port;

/* Listens on `addr` like chan_listener_open (cfg copied the same way; its
 * join_secrets enable joins once a join handler is set). No service is
 * offered until chan_port_offer. Returns 0 and sets *out, or the error of
 * chan_listener_open with a message. */
int chan_port_open(uv_loop_t *loop, const char *addr, const struct chan_config *cfg,
                   const struct chan_conn_limits *limits, struct chan_port **out,
                   struct swm_err *err);

/* Offers `svc` to peers whose certificate role is in `roles` (a mask of
 * CA_ROLE_BIT): their connections go to accept(conn, peer, arg). A NULL
 * accept withdraws the service (connections already handed over stay with
 * their owner). Returns 0 or -EINVAL (not a service). */
int chan_port_offer(struct chan_port *p, enum chan_service svc, chan_port_accept_fn accept,
                    unsigned roles, void *arg);

/* Sets the join handler; NULL refuses joins (closing the connection). */
void chan_port_set_join(struct chan_port *p, chan_port_join_fn join, void *arg);

/* Replaces the channel configuration for connections accepted from now on
 * (chan_listener_set_config). */
int chan_port_set_config(struct chan_port *p, const struct chan_config *cfg, struct swm_err *err);

/* The port it listens on (useful after port 0). */
int chan_port_port(const struct chan_port *p);

/* Stops listening and closes every connection accepted, including those
 * handed over (their owners get `closed` with SWM_ESHUTDOWN). Accepts
 * NULL; `p` must not be used afterwards. */
void chan_port_close(struct chan_port *p);

/* Initiator: sends the service hello on an established connection. Call it
 * from `established`, before any other message. Returns as chan_conn_send. */
int chan_service_hello(struct chan_conn *conn, enum chan_service svc, struct swm_err *err);

#endif
