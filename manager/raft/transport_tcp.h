/* The plain-TCP raft transport (transport.h; wire format in
 * docs/protocol.md, "Raft transport").
 *
 * Each transport listens on one address and keeps at most one outbound
 * connection per peer, opened on the first send and reopened with backoff
 * (100 ms doubling to 2 s) after a failure. An outbound connection only
 * carries frames from us to the peer; frames from the peer arrive on the
 * connection it opened to us. Frames that are still queued when a connection
 * fails are dropped: Raft retries (transport.h).
 *
 * Addresses are "host:port" with a numeric IPv4 host ("10.0.0.1:2377") or a
 * bracketed IPv6 literal ("[fd00::1]:2377"); names are not resolved here.
 *
 * Loop thread only. The functions below take a transport made by
 * raft_tcp_transport_open and no other kind. */
#ifndef SWM_MANAGER_RAFT_TRANSPORT_TCP_H
#define SWM_MANAGER_RAFT_TRANSPORT_TCP_H

#include "common/err.h"
#include "manager/raft/transport.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Defaults for struct raft_tcp_limits fields left at 0. */
#define RAFT_TCP_PEER_QUEUE_BYTES (64u << 20)
#define RAFT_TCP_MAX_INBOUND 64u
#define RAFT_TCP_IDLE_TIMEOUT_MS 60000u

/* Resource bounds; a field at 0 takes the default above. */
struct raft_tcp_limits {
    /* Bytes queued for one peer (frames waiting for a connection plus
     * frames being written, 4 header bytes each). A send past this bound is
     * refused with -ENOBUFS; a frame always fits an empty queue. */
    size_t peer_queue_bytes;
    /* Inbound connections served at once; more wait in the kernel's listen
     * backlog until one closes. */
    unsigned max_inbound;
    /* An inbound connection that sends nothing for this long is closed (raft
     * heartbeats flow every ~100 ms). Before its hello it gets at most 5 s. */
    uint64_t idle_timeout_ms;
};

/* Creates a transport for member self_id (not 0) listening on listen_addr
 * ("host:port"; port 0 picks a free port, see raft_tcp_transport_port).
 * Frames longer than max_frame bytes (0: RAFT_MESSAGE_MAX_SIZE; at most
 * UINT32_MAX) are refused by send and close the inbound connection that
 * carries them. The caller sets (*out)->recv and recv_arg before running the
 * loop and releases the transport with raft_transport_close.
 *
 * Returns 0 and sets *out, or -EINVAL (bad address or argument), -ENOMEM, or
 * the listen error (-EADDRINUSE, ...) with err (may be NULL) saying what
 * failed. On failure the loop must still run once so that the handles made so
 * far close and free themselves. */
int raft_tcp_transport_open(uv_loop_t *loop, uint64_t self_id, const char *listen_addr,
                            size_t max_frame, struct raft_transport **out, struct swm_err *err);

/* Returns the local port the transport listens on (useful after port 0). */
int raft_tcp_transport_port(const struct raft_transport *t);

/* Replaces the resource bounds (see struct raft_tcp_limits); copied. They
 * apply to later sends and connections; nothing open is closed. */
void raft_tcp_transport_set_limits(struct raft_transport *t, const struct raft_tcp_limits *limits);

/* Adds peer id (not 0) at addr ("host:port"), or changes its address: the
 * connection to the old address is dropped, frames still waiting go to the
 * new one. Setting the current address again changes nothing. Returns 0,
 * -EINVAL (bad id or address), -ENOMEM, SWM_ESHUTDOWN (transport closing). */
int raft_tcp_transport_set_peer(struct raft_transport *t, uint64_t id, const char *addr);

/* Forgets peer id: closes its connection and drops its queued frames; a
 * later send to id returns SWM_ENOTFOUND. Returns 0 or SWM_ENOTFOUND. */
int raft_tcp_transport_remove_peer(struct raft_transport *t, uint64_t id);

#endif
