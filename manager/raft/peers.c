/* The peers of a raft transport (peers.h). Lifetime: a peer holds a
 * reference on its transport (ops->ref) from raft_peers_set until its
 * timer's close callback frees it (ops->unref). */
#include "manager/raft/peers.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    size_t n = a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    return a->ss_family == b->ss_family && memcmp(a, b, n) == 0;
}

/* libuv codes are -errno or in (-4096, 0); ours are below -5000. */
static const char *err_text(int status)
{
    return status <= -5000 ? swm_strerror(status) : uv_strerror(status);
}

static void peer_timer_fired(uv_timer_t *timer);

void raft_peer_arm(struct raft_peer *p, uint64_t ms)
{
    uv_timer_start(&p->timer, peer_timer_fired, ms, 0);
}

/* Separates the connection from p (the transport stops counting what it
 * was writing) and closes it. */
static void peer_drop_conn(struct raft_peer *p)
{
    void *conn = p->conn;
    if (conn == NULL)
        return;
    p->conn = NULL;
    p->set->ops->drop(p, conn);
}

static void peer_drop_queue(struct raft_peer *p)
{
    while (p->head != NULL) {
        struct raft_peer_frame *f = p->head;
        p->head = f->next;
        raft_peer_frame_done(p, f);
    }
    p->tail = NULL;
}

void raft_peer_fail(struct raft_peer *p, const char *why, int status)
{
    const char *name = p->set->log_name;
    if (p->state == RAFT_PEER_CONNECTED)
        swm_log_info("%s: connection lost peer=%" PRIu64 " addr=%s reason=\"%s: %s\"", name, p->id,
                     p->addr, why, err_text(status));
    else
        swm_log_debug("%s: connect failed peer=%" PRIu64 " addr=%s reason=\"%s: %s\"", name, p->id,
                      p->addr, why, err_text(status));
    peer_drop_conn(p);
    peer_drop_queue(p);
    p->state = RAFT_PEER_BACKOFF;
    raft_peer_arm(p, p->backoff_ms);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void peer_timer_fired(uv_timer_t *timer)
{
    struct raft_peer *p = timer->data;
    if (p->state == RAFT_PEER_CONNECTING && p->set->ops->timeout != NULL) {
        p->set->ops->timeout(p);
    } else if (p->state == RAFT_PEER_BACKOFF) {
        p->state = RAFT_PEER_IDLE;
        if (p->head != NULL)
            p->set->ops->connect(p);
    }
}

struct raft_peer_frame *raft_peer_frame_new(const void *data, size_t len, size_t header)
{
    struct raft_peer_frame *f = swm_malloc(sizeof(*f) + header + len);
    if (f == NULL)
        return NULL;
    memset(f, 0, sizeof(*f));
    f->size = header + len;
    memcpy(f->bytes + header, data, len);
    return f;
}

void raft_peer_frame_done(struct raft_peer *p, struct raft_peer_frame *f)
{
    p->queued_bytes -= f->accounted;
    swm_free(f);
}

int raft_peers_reserve(struct raft_peers *s, uint64_t to, size_t size, struct raft_peer **out)
{
    struct raft_peer *p = raft_peers_find(s, to);
    if (p == NULL)
        return SWM_ENOTFOUND;
    size_t pending = p->queued_bytes;
    if (s->ops->pending != NULL)
        pending += s->ops->pending(p);
    if (pending > 0 && pending + size > s->queue_bytes)
        return -ENOBUFS;
    *out = p;
    return 0;
}

void raft_peer_push(struct raft_peer *p, struct raft_peer_frame *f)
{
    f->accounted = f->size;
    f->next = NULL;
    p->queued_bytes += f->size;
    if (p->tail != NULL)
        p->tail->next = f;
    else
        p->head = f;
    p->tail = f;
    if (p->state == RAFT_PEER_IDLE)
        p->set->ops->connect(p);
}

void raft_peer_flush(struct raft_peer *p)
{
    /* A failed write fails the peer, which empties the queue: stop then. */
    while (p->head != NULL && p->state == RAFT_PEER_CONNECTED) {
        struct raft_peer_frame *f = p->head;
        p->head = f->next;
        if (p->head == NULL)
            p->tail = NULL;
        f->next = NULL;
        if (!p->set->ops->write(p, f)) {
            /* Pushed back: f waits first for the transport's next flush. */
            f->next = p->head;
            p->head = f;
            if (p->tail == NULL)
                p->tail = f;
            return;
        }
    }
}

void raft_peer_connected(struct raft_peer *p)
{
    p->state = RAFT_PEER_CONNECTED;
    p->backoff_ms = BACKOFF_MIN_MS;
    raft_peer_flush(p);
}

struct raft_peer *raft_peers_find(struct raft_peers *s, uint64_t id)
{
    for (struct raft_peer *p = s->list; p != NULL; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void peer_closed(uv_handle_t *h)
{
    struct raft_peer *p = h->data;
    struct raft_peers *s = p->set;
    swm_free(p);
    s->ops->unref(s);
}

static void peer_remove(struct raft_peers *s, struct raft_peer *p)
{
    for (struct raft_peer **pp = &s->list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    peer_drop_conn(p);
    peer_drop_queue(p);
    uv_close((uv_handle_t *)&p->timer, peer_closed);
}

/* Points p at a new address: the old connection and any pending attempt
 * go; waiting frames are sent to the new address right away. */
static void peer_readdress(struct raft_peer *p, const struct sockaddr_storage *sa, const char *addr)
{
    p->sa = *sa;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    peer_drop_conn(p);
    uv_timer_stop(&p->timer);
    p->state = RAFT_PEER_IDLE;
    p->backoff_ms = BACKOFF_MIN_MS;
    if (p->head != NULL)
        p->set->ops->connect(p);
}

int raft_peers_set(struct raft_peers *s, uint64_t id, const char *addr)
{
    struct sockaddr_storage sa;
    if (id == 0 || addr == NULL || swm_addr_parse(addr, &sa) < 0 || strlen(addr) >= SWM_ADDR_STRLEN)
        return -EINVAL;
    struct raft_peer *p = raft_peers_find(s, id);
    if (p != NULL) {
        if (!same_addr(&p->sa, &sa))
            peer_readdress(p, &sa, addr);
        return 0;
    }
    p = swm_calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->set = s;
    p->id = id;
    p->sa = sa;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->state = RAFT_PEER_IDLE;
    p->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(s->loop, &p->timer);
    p->timer.data = p;
    s->ops->ref(s);
    p->next = s->list;
    s->list = p;
    return 0;
}

int raft_peers_remove(struct raft_peers *s, uint64_t id)
{
    struct raft_peer *p = raft_peers_find(s, id);
    if (p == NULL)
        return SWM_ENOTFOUND;
    peer_remove(s, p);
    return 0;
}

void raft_peers_clear(struct raft_peers *s)
{
    while (s->list != NULL)
        peer_remove(s, s->list);
}
