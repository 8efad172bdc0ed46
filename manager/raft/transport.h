/* How a raft node exchanges messages with its peers (DESIGN.md §5, issue 3):
 * encoded raft messages (raft_message_encode), addressed by member id.
 *
 * Delivery is best effort and unordered across reconnects: a transport may
 * drop a frame (peer unreachable, queue full, connection reset) and Raft
 * recovers by retrying. A transport never blocks the loop, never calls
 * `recv` from inside `send`, and never trusts a frame: the node decodes and
 * validates every one (raft_message_decode).
 *
 * Implementations: transport_mem.c (in-process, one loop; tests),
 * transport_tcp.c (plain TCP, length-prefixed frames; raftnode and the
 * benchmarks) and transport_chan.c (the secure channel on the cluster port;
 * the daemon).
 *
 * Loop thread only. */
#ifndef SWM_MANAGER_RAFT_TRANSPORT_H
#define SWM_MANAGER_RAFT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct raft_transport;

/* A frame arrived (borrowed; valid only during the call). `len` is at most
 * the transport's frame limit. */
typedef void (*raft_transport_recv_cb)(void *arg, const void *frame, size_t len);

struct raft_transport_ops {
    /* Queues a copy of frame for peer `to`. Returns 0 (queued; it may still
     * be lost), SWM_ENOTFOUND (no address known for `to`), -ENOBUFS (the
     * peer's queue is full: the frame is dropped), -ENOMEM, -EMSGSIZE. */
    int (*send)(struct raft_transport *t, uint64_t to, const void *frame, size_t len);
    /* Stops sending and receiving; `recv` is never called again. The
     * transport frees itself once its handles are closed, so the loop must
     * run on. Accepts a transport already closing. */
    void (*close)(struct raft_transport *t);
};

/* The part every implementation embeds first. The node sets recv and
 * recv_arg before the first frame can arrive (right after creating the
 * transport, before running the loop). */
struct raft_transport {
    const struct raft_transport_ops *ops;
    raft_transport_recv_cb recv;
    void *recv_arg;
};

static inline int raft_transport_send(struct raft_transport *t, uint64_t to, const void *frame,
                                      size_t len)
{
    return t->ops->send(t, to, frame, len);
}

static inline void raft_transport_close(struct raft_transport *t)
{
    if (t != NULL)
        t->ops->close(t);
}

#endif
