/* The secure channel between nodes and from `--host` clients (DESIGN.md §6;
 * the handshake, framing and threat model are in docs/protocol.md "Secure
 * channel").
 *
 * An I/O-free state machine: the owner feeds it the bytes that arrived
 * (chan_feed), writes out the bytes it produces (chan_output), takes the
 * events it raises (chan_next_event) and tells it the time (chan_tick), so
 * it can be tested without sockets and driven by libuv later. Two modes:
 *
 *  - authenticated: both sides hold an identity key and a node certificate
 *    signed by the pinned cluster root; each checks the other's certificate
 *    (root, expiry, revocation, role);
 *  - join: the initiator has only an identity key and a join token. It pins
 *    the root key by the token's digest, proves it knows the token's secret
 *    without sending it, and receives its certificate (CHAN_EV_CERT). A join
 *    channel carries nothing else.
 *
 * Once a channel fails, every call returns the same error: the owner closes
 * the connection (after writing out any REJECT frame left in the output).
 * Not thread-safe: one channel belongs to one loop. */
#ifndef SWM_NET_TRANSPORT_CHANNEL_H
#define SWM_NET_TRANSPORT_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "net/identity/identity.h"

/* Defaults for the zero values of struct chan_config. */
#define CHAN_MAX_FRAME_DEFAULT (16u << 20)                        /* bytes of payload */
#define CHAN_HANDSHAKE_TIMEOUT_DEFAULT (INT64_C(10) * 1000000000) /* ns */
#define CHAN_KEEPALIVE_DEFAULT (INT64_C(10) * 1000000000)         /* ns */
#define CHAN_IDLE_TIMEOUT_DEFAULT (INT64_C(30) * 1000000000)      /* ns */
#define CHAN_REKEY_INTERVAL_DEFAULT (1u << 16)                    /* frames */

enum chan_side {
    CHAN_INITIATOR = 1, /* opened the connection */
    CHAN_RESPONDER = 2, /* accepted it (a manager on 2377) */
};

/* Everything a channel needs; copied by chan_new except where noted. */
struct chan_config {
    enum chan_side side;
    /* This node's identity key (required). */
    const struct ca_keypair *identity;
    /* This node's certificate. Required, except for an initiator with
     * join_token set. */
    const struct ca_cert *cert;
    /* The pinned cluster root key. Required, except with join_token. */
    const uint8_t *root_pk;
    /* Initiator only: join with this token, asking for join_role. */
    const struct ca_token *join_token;
    int join_role;
    /* Responder only: the secrets of the current join tokens. NULL refuses
     * every join. */
    const struct ca_join_secrets *join_secrets;
    /* Mask of CA_ROLE_BIT of the peer roles accepted; 0 means any. A join
     * initiator always requires a manager. */
    unsigned peer_roles;
    /* If not NULL, the peer's certificate must name this node (a node
     * dialing a known manager); NULL accepts any node of the cluster. */
    const char *peer_node_id;
    /* Removed nodes; borrowed, must outlive the channel; may be NULL. */
    const struct ca_revoked *revoked;
    /* Wall clock for certificate validity (ns since the epoch); required.
     * Timeouts use the monotonic time passed to chan_start/feed/tick. */
    int64_t (*wall_clock)(void *arg);
    void *clock_arg;
    /* Largest payload of one data frame; 0 = CHAN_MAX_FRAME_DEFAULT. */
    uint32_t max_frame;
    /* Timeouts in ns; 0 = the defaults above. */
    int64_t handshake_timeout;
    int64_t keepalive_interval;
    int64_t idle_timeout;
    /* Frames between rekeys of a direction's stream; 0 = default. */
    uint32_t rekey_interval;
};

enum chan_event_type {
    /* The handshake completed: chan_peer_cert() names the peer (for a join
     * initiator, the manager). A join responder raises JOIN_REQUEST
     * instead. */
    CHAN_EV_ESTABLISHED = 1,
    /* Responder: a joiner proved its token; issue a certificate for
     * chan_join_request() and send it with chan_send_cert(). */
    CHAN_EV_JOIN_REQUEST,
    /* Join initiator: the certificate arrived and checked out; see
     * chan_issued_cert(). The channel is finished. */
    CHAN_EV_CERT,
    /* An application message: data/len, owned by the channel and valid
     * until the next chan_next_event or chan_free. */
    CHAN_EV_DATA,
};

struct chan_event {
    enum chan_event_type type;
    const uint8_t *data;
    size_t len;
};

struct chan;

/* Creates a channel. Returns 0 and sets *out, or -EINVAL (a required field
 * missing or inconsistent, with a message), -ENOMEM, -EIO (libsodium). The
 * caller frees with chan_free. */
int chan_new(struct chan **out, const struct chan_config *cfg, struct swm_err *err);

/* Wipes the keys and frees. Accepts NULL. */
void chan_free(struct chan *ch);

/* Starts the handshake at monotonic time `now` (ns): the initiator queues
 * its HELLO. Call once, before any feed. Returns 0 or -ENOMEM. */
int chan_start(struct chan *ch, int64_t now, struct swm_err *err);

/* Consumes `len` bytes from the peer, at monotonic time `now`: processes
 * every complete frame, queueing output and events. Partial frames are kept
 * until the rest arrives. Returns 0 or a negative code with a message:
 * SWM_EPROTO (malformed or truncated message, or a frame that fails to
 * decrypt: tampered, replayed or reordered), -EMSGSIZE (frame over the
 * limit), SWM_EAUTH, SWM_EWRONGCLUSTER, SWM_EEXPIRED, SWM_EREVOKED, -EPERM
 * (peer role), SWM_EBADTOKEN (join secret), -ENOMEM. After an error the
 * channel is dead. */
int chan_feed(struct chan *ch, const void *data, size_t len, int64_t now, struct swm_err *err);

/* The peer closed the connection. Returns 0 if that was at a frame
 * boundary, or SWM_EPROTO ("connection closed inside a frame"). */
int chan_feed_eof(struct chan *ch, struct swm_err *err);

/* The bytes waiting to be written: sets *data (owned by the channel, valid
 * until the next call other than chan_output) and returns their count. */
size_t chan_output(struct chan *ch, const uint8_t **data);

/* Marks the first n output bytes as written. */
void chan_output_consume(struct chan *ch, size_t n);

/* Takes the next event. Returns 1 and fills *ev, or 0 if there is none. */
int chan_next_event(struct chan *ch, struct chan_event *ev);

/* Encrypts an application message into a frame. Returns 0, -EMSGSIZE (len
 * over max_frame), -EAGAIN (handshake not complete), -EPERM (join channel),
 * -ENOMEM, or the channel's error if it failed. */
int chan_send(struct chan *ch, const void *data, size_t len, struct swm_err *err);

/* Join responder, after CHAN_EV_JOIN_REQUEST: sends the issued certificate.
 * Returns 0, -EINVAL (cert is not for the joiner's key and role), -EAGAIN
 * (no join request), -ENOMEM. */
int chan_send_cert(struct chan *ch, const struct ca_cert *cert, struct swm_err *err);

/* Drives time at monotonic `now`: fails the handshake or an idle peer with
 * -ETIMEDOUT, and queues a keepalive when nothing was sent for the
 * keepalive interval. Returns 0 or the error. */
int chan_tick(struct chan *ch, int64_t now, struct swm_err *err);

/* Re-checks the peer's certificate against the current wall clock and
 * revocation set (after `node rm`, or periodically): returns 0 or the error
 * of ca_cert_verify, which also kills the channel. */
int chan_recheck(struct chan *ch, struct swm_err *err);

/* True once the handshake completed on this side. */
bool chan_established(const struct chan *ch);

/* The peer's verified certificate, or NULL (handshake not complete, or a
 * joiner on the responder side). Owned by the channel. */
const struct ca_cert *chan_peer_cert(const struct chan *ch);

/* For every RPC: checks that the peer's verified role is in `allowed` (a
 * mask of CA_ROLE_BIT). Returns 0, -EPERM with a message naming the node
 * and its role, or -EAGAIN if there is no verified peer (handshake not
 * complete, or a join channel's responder side). */
int chan_check_role(const struct chan *ch, unsigned allowed, struct swm_err *err);

/* Responder: the joiner's identity key and granted role after
 * CHAN_EV_JOIN_REQUEST. Returns 0 or -EAGAIN. */
int chan_join_request(const struct chan *ch, uint8_t pk[CA_PUBKEY_LEN], int *role);

/* Join initiator: the certificate received with CHAN_EV_CERT, or NULL. The
 * pinned root key is its issuer_pk. Owned by the channel. */
const struct ca_cert *chan_issued_cert(const struct chan *ch);

/* Messages sent and received on the encrypted streams (data, keepalives). */
uint64_t chan_tx_count(const struct chan *ch);
uint64_t chan_rx_count(const struct chan *ch);

#endif
