/* The outbound side that the raft transports share (transport_tcp.c,
 * transport_chan.c): the peers we send to, each with its address, a queue of
 * frames bounded in bytes, at most one outbound connection and a reconnect
 * backoff (100 ms doubling to 2 s) on a libuv timer. How a connection is
 * made, written to and closed is the transport's, through struct
 * raft_peer_ops.
 *
 * Internal to manager/raft; loop thread only. */
#ifndef SWM_MANAGER_RAFT_PEERS_H
#define SWM_MANAGER_RAFT_PEERS_H

#include "common/netaddr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

enum raft_peer_state {
    RAFT_PEER_IDLE,       /* no connection; the next send opens one */
    RAFT_PEER_CONNECTING, /* dialed; frames wait */
    RAFT_PEER_CONNECTED,  /* frames go to the connection */
    RAFT_PEER_BACKOFF,    /* timer: when to try again */
};

/* A frame for a peer: waiting in its queue, or handed to its connection.
 * The write request lives here so that the TCP transport can write a frame
 * without a second allocation; the channel transport leaves it unused. */
struct raft_peer_frame {
    uv_write_t req;               /* for a transport that writes the bytes itself */
    void *conn;                   /* the transport's connection writing it, if it wants */
    struct raft_peer_frame *next; /* while waiting in a peer's queue */
    size_t accounted;             /* bytes counted in the peer's queued_bytes */
    size_t size;
    uint8_t bytes[];
};

struct raft_peers;

struct raft_peer {
    struct raft_peers *set;
    struct raft_peer *next;
    uint64_t id;
    struct sockaddr_storage sa;
    char addr[SWM_ADDR_STRLEN];
    enum raft_peer_state state;
    void *conn; /* the transport's connection; NULL while IDLE or BACKOFF */
    uv_timer_t timer;
    uint64_t backoff_ms;                 /* delay after the next failure */
    struct raft_peer_frame *head, *tail; /* waiting */
    size_t queued_bytes;                 /* waiting, plus what the transport still counts */
};

/* What differs between transports. All are called on the loop thread. */
struct raft_peer_ops {
    /* Starts a connection to p (IDLE, frames waiting): sets p->conn and
     * p->state = RAFT_PEER_CONNECTING, or fails p with raft_peer_fail. */
    void (*connect)(struct raft_peer *p);
    /* Hands f to p's connection (p is CONNECTED). Returns true when it took
     * f (the transport frees it, with raft_peer_frame_done once its bytes
     * no longer count; a failed write frees f and fails p), or false when
     * the connection pushes back: f stays first in the queue until the
     * transport calls raft_peer_flush again. */
    bool (*write)(struct raft_peer *p, struct raft_peer_frame *f);
    /* Closes conn, which p no longer points to (p->conn is NULL). */
    void (*drop)(struct raft_peer *p, void *conn);
    /* Optional: bytes p's connection holds that queued_bytes leaves out;
     * they count against the bound. */
    size_t (*pending)(const struct raft_peer *p);
    /* Optional: p's timer fired while CONNECTING (a deadline the transport
     * set with raft_peer_arm). */
    void (*timeout)(struct raft_peer *p);
    /* A peer was added (takes a reference on the transport) or freed after
     * its timer closed (drops it). */
    void (*ref)(struct raft_peers *s);
    void (*unref)(struct raft_peers *s);
};

/* The set of peers; the transport embeds it and fills every field. */
struct raft_peers {
    const struct raft_peer_ops *ops;
    uv_loop_t *loop;
    const char *log_name; /* prefix of log lines: "raft tcp" */
    size_t queue_bytes;   /* a peer's bound, see raft_peers_reserve */
    struct raft_peer *list;
};

/* Returns the peer with that id, or NULL. */
struct raft_peer *raft_peers_find(struct raft_peers *s, uint64_t id);

/* Adds peer id (not 0) at addr ("host:port", numeric), or changes its
 * address: the connection to the old address is dropped, frames still
 * waiting go to the new one. Setting the current address again changes
 * nothing. Returns 0, -EINVAL (bad id or address) or -ENOMEM. */
int raft_peers_set(struct raft_peers *s, uint64_t id, const char *addr);

/* Forgets peer id: closes its connection and drops its queued frames; it is
 * freed once its timer closed. Returns 0 or SWM_ENOTFOUND. */
int raft_peers_remove(struct raft_peers *s, uint64_t id);

/* Removes every peer (the transport is closing). */
void raft_peers_clear(struct raft_peers *s);

/* Returns a frame of header + len bytes, len of them copied from data after
 * the header (which the caller fills), or NULL (out of memory). Freed with
 * swm_free, or raft_peer_frame_done once counted in a peer. */
struct raft_peer_frame *raft_peer_frame_new(const void *data, size_t len, size_t header);

/* Frees f, which p counted, and stops counting its bytes. */
void raft_peer_frame_done(struct raft_peer *p, struct raft_peer_frame *f);

/* Finds peer `to` for a send of `size` bytes: sets *out and returns 0, or
 * returns SWM_ENOTFOUND (no such peer) or -ENOBUFS (the bytes would pass
 * the peer's bound; a frame always fits an empty queue). */
int raft_peers_reserve(struct raft_peers *s, uint64_t to, size_t size, struct raft_peer **out);

/* Queues f (now the peer's) at the tail, counting its size; an IDLE peer
 * starts connecting. A CONNECTED one waits for raft_peer_flush. */
void raft_peer_push(struct raft_peer *p, struct raft_peer_frame *f);

/* Hands the waiting frames to the connection, in order, until it pushes
 * back, fails or the queue is empty. */
void raft_peer_flush(struct raft_peer *p);

/* The connection is up: resets the backoff and flushes. */
void raft_peer_connected(struct raft_peer *p);

/* Closes p's connection, drops what was waiting (Raft retries) and
 * schedules the next attempt; `why` and status go to the log. */
void raft_peer_fail(struct raft_peer *p, const char *why, int status);

/* Starts p's timer: after ms, ops->timeout if still CONNECTING. */
void raft_peer_arm(struct raft_peer *p, uint64_t ms);

#endif
