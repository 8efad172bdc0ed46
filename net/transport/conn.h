/* The libuv driver of the secure channel (DESIGN.md §6, docs/protocol.md
 * "Secure channel", "libuv driver"): TCP listeners whose accepted
 * connections run a responder channel, and outbound connections running an
 * initiator (authenticated or join) channel.
 *
 * The driver feeds every read into chan_feed, writes chan_output with
 * uv_write, runs chan_tick from a per-connection timer (handshake, keepalive
 * and idle timeouts) and turns channel events into callbacks. Loop thread
 * only: every function and callback runs on the thread of the loop the
 * object was made on.
 *
 * Callbacks never run re-entrantly from inside a call the caller made (they
 * come from the loop), and `closed` runs exactly once for every connection
 * the caller has seen: for an outbound one after chan_conn_connect returned
 * 0, for an accepted one after its `established` (or `join_request`). An
 * accepted connection refused before that (bad handshake, garbage, limits)
 * is only logged, one line naming the remote address and the reason. The
 * connection is freed right after `closed` returns. A connection can change
 * owner (chan_conn_set_callbacks, used by the cluster port in port.h): its
 * callbacks, `closed` included, then go to the new owner only. */
#ifndef SWM_NET_TRANSPORT_CONN_H
#define SWM_NET_TRANSPORT_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "net/identity/identity.h"
#include "net/transport/channel.h"

/* Defaults for the zero values of struct chan_conn_limits. */
#define CHAN_CONN_MAX_HANDSHAKING_DEFAULT 64u
#define CHAN_CONN_MAX_CONNS_DEFAULT 1024u
#define CHAN_CONN_MAX_WRITE_DEFAULT (4u << 20)                     /* bytes */
#define CHAN_CONN_WRITE_TIMEOUT_DEFAULT (INT64_C(30) * 1000000000) /* ns */
#define CHAN_CONN_LINGER_DEFAULT (INT64_C(2) * 1000000000)         /* ns */

/* Limits of the driver; zero means the default. */
struct chan_conn_limits {
    /* Listener: accepted connections still in their handshake, and all
     * accepted connections. One more is accepted, logged and closed. */
    unsigned max_handshaking;
    unsigned max_conns;
    /* Bytes handed to the socket but not yet taken by the kernel above
     * which chan_conn_send refuses with -ENOBUFS. One message is always
     * accepted when nothing is in flight, so any message up to max_frame
     * can be sent. */
    size_t max_write_bytes;
    /* A peer that takes none of our pending bytes for this long (ns) is
     * closed with -ETIMEDOUT ("peer is not reading"). */
    int64_t write_timeout;
    /* After chan_conn_close or a failure, how long (ns) the driver keeps
     * trying to write what is queued (a REJECT, the last messages) before
     * it drops it and closes the socket. */
    int64_t linger_timeout;
};

struct chan_conn;
struct chan_listener;

/* What a connection reports. All are optional except `closed`; `arg` is
 * passed to every one. Pointers given to a callback are borrowed for its
 * duration. */
struct chan_conn_callbacks {
    /* The handshake completed; `peer` is the peer's verified certificate
     * (for a join initiator, the manager's). */
    void (*established)(struct chan_conn *conn, const struct ca_cert *peer, void *arg);
    /* One application message. */
    void (*data)(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg);
    /* The connection is gone: status 0 for an orderly close (by either side),
     * otherwise the error (a project code, -errno, or a libuv error), with a
     * one-line reason. `conn` is freed when this returns. */
    void (*closed)(struct chan_conn *conn, int status, const char *reason, void *arg);
    /* Listener with join_secrets: a joiner proved its token for `role`.
     * Issue a certificate for `pk` and pass it to chan_conn_send_cert, or
     * chan_conn_close. Without this callback joins are closed. */
    void (*join_request)(struct chan_conn *conn, const uint8_t pk[CA_PUBKEY_LEN], int role,
                         void *arg);
    /* Join initiator: the certificate arrived and checked out. The driver
     * then closes the connection (status 0). */
    void (*joined)(struct chan_conn *conn, const struct ca_cert *cert, void *arg);
    /* chan_conn_send returned -ENOBUFS and the bytes in flight have since
     * dropped to half the bound: sending may resume. */
    void (*drain)(struct chan_conn *conn, void *arg);
    void *arg;
};

/* Listens on `addr` ("a.b.c.d:port" or "[v6]:port"; port 0 picks one, see
 * chan_listener_port). Every accepted connection gets a channel configured
 * from `cfg` as a responder (its `side` is ignored). `cfg` and what it
 * points to are copied, except `revoked`, which stays borrowed and must
 * outlive the listener. `limits` may be NULL (defaults); `cbs` is copied.
 * Returns 0 and sets *out, or -EINVAL (bad address or config), -ENOMEM, or
 * the bind/listen error, with a message. Close with chan_listener_close. */
int chan_listener_open(uv_loop_t *loop, const char *addr, const struct chan_config *cfg,
                       const struct chan_conn_limits *limits, const struct chan_conn_callbacks *cbs,
                       struct chan_listener **out, struct swm_err *err);

/* The port the listener is bound to. */
int chan_listener_port(const struct chan_listener *l);

/* Replaces the configuration for connections accepted from now on (a
 * renewed certificate, rotated join secrets). Copied like in
 * chan_listener_open. Returns 0, -EINVAL or -ENOMEM; on error nothing
 * changes. */
int chan_listener_set_config(struct chan_listener *l, const struct chan_config *cfg,
                             struct swm_err *err);

/* Accepted connections still open (in handshake or established). */
unsigned chan_listener_conn_count(const struct chan_listener *l);

/* Stops listening and closes every connection it accepted (those the
 * caller has seen report closed with SWM_ESHUTDOWN). The memory is freed
 * once the last handle has closed, from the loop; `l` must not be used
 * after this call. Accepts NULL. */
void chan_listener_close(struct chan_listener *l);

/* Connects to `addr` ("a.b.c.d:port" or "[v6]:port") and runs an initiator
 * channel configured from `cfg` (its `side` is ignored): authenticated, or
 * a join if cfg->join_token is set. `cfg` is copied as by chan_new
 * (`revoked` stays borrowed). `limits` may be NULL; `cbs` is copied.
 * Returns 0 and sets *out, after which `closed` is reported exactly once;
 * or -EINVAL, -ENOMEM or the socket error with a message, and then no
 * callback runs. The handshake timeout counts from this call. */
int chan_conn_connect(uv_loop_t *loop, const char *addr, const struct chan_config *cfg,
                      const struct chan_conn_limits *limits, const struct chan_conn_callbacks *cbs,
                      struct chan_conn **out, struct swm_err *err);

/* Sends one application message (copied). Returns 0, -ENOBUFS (more than
 * max_write_bytes in flight: wait for `drain`), -EAGAIN (handshake not
 * complete), -EMSGSIZE, -EPERM (join channel), -EPIPE (closing), or the
 * channel's error, with a message. A failure of the connection itself is
 * reported through `closed`, later. */
int chan_conn_send(struct chan_conn *conn, const void *data, size_t len, struct swm_err *err);

/* Join responder, after `join_request`: sends the issued certificate. The
 * joiner closes the connection once it has it. Returns as chan_send_cert,
 * or -EPIPE if closing. */
int chan_conn_send_cert(struct chan_conn *conn, const struct ca_cert *cert, struct swm_err *err);

/* Re-checks the peer's certificate (chan_recheck). On failure returns the
 * error and closes the connection (`closed` follows, from the loop). */
int chan_conn_recheck(struct chan_conn *conn, struct swm_err *err);

/* Closes the connection: no more data or other callbacks, what is already
 * queued is written for up to linger_timeout, then `closed` is reported
 * (status 0 unless something failed first) from the loop. Idempotent. */
void chan_conn_close(struct chan_conn *conn);

/* The channel, for chan_peer_cert, chan_check_role and the counters.
 * Owned by the connection. */
const struct chan *chan_conn_channel(const struct chan_conn *conn);

/* The peer's address, "a.b.c.d:port" or "[v6]:port" (owned by conn). */
const char *chan_conn_remote(const struct chan_conn *conn);

/* Bytes handed to the socket and not yet taken by the kernel. */
size_t chan_conn_write_pending(const struct chan_conn *conn);

/* Hands the connection to a new owner: copies `cbs` (arg included; `closed`
 * must not be NULL), and from then on every callback (data, drain, joined,
 * closed, ...) goes to the new ones, including the `closed` still owed.
 * May be called from inside a callback of the same connection (typically
 * `established`, `data` or `join_request`): messages that arrived in the
 * same read but are not yet delivered go to the new callbacks. Never
 * fails. */
void chan_conn_set_callbacks(struct chan_conn *conn, const struct chan_conn_callbacks *cbs);

/* The callbacks the connection reports to now (owned by conn, changed by
 * chan_conn_set_callbacks): lets a previous owner see whether a callee
 * took the connection over. */
const struct chan_conn_callbacks *chan_conn_callbacks(const struct chan_conn *conn);

/* A pointer of the caller's, NULL until set. */
void chan_conn_set_user(struct chan_conn *conn, void *user);
void *chan_conn_user(const struct chan_conn *conn);

#endif
