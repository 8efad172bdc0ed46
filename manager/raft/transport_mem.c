/* The in-process raft transport (see transport_mem.h). Frames are copied
 * into one hub-wide FIFO and delivered by an idle handle on the next loop
 * turn, so delivery is never re-entrant. */
#include "manager/raft/transport_mem.h"

#include <errno.h>
#include <string.h>

#include "common/alloc.h"

#define MAX_MEMBERS 16
#define MAX_CUTS 64

struct mem_transport {
    struct raft_transport base; /* first: the node holds &base */
    struct raft_mem_hub *hub;
    uint64_t id;
};

struct frame {
    uint64_t to;
    size_t len;
    struct frame *next;
    unsigned char data[];
};

struct cut {
    uint64_t from, to;
};

struct raft_mem_hub {
    uv_idle_t deliver;
    struct mem_transport *members[MAX_MEMBERS];
    struct cut cuts[MAX_CUTS];
    size_t n_cuts;
    struct frame *head, **tail;
    bool closing, handle_closed;
};

static bool has_members(const struct raft_mem_hub *hub)
{
    for (size_t i = 0; i < MAX_MEMBERS; i++)
        if (hub->members[i] != NULL)
            return true;
    return false;
}

/* The hub goes once its handle is closed and its last member has left. */
static void maybe_free_hub(struct raft_mem_hub *hub)
{
    if (!hub->handle_closed || has_members(hub))
        return;
    struct frame *f = hub->head;
    while (f != NULL) {
        struct frame *next = f->next;
        swm_free(f);
        f = next;
    }
    swm_free(hub);
}

static struct mem_transport *find(struct raft_mem_hub *hub, uint64_t id)
{
    for (size_t i = 0; i < MAX_MEMBERS; i++)
        if (hub->members[i] != NULL && hub->members[i]->id == id)
            return hub->members[i];
    return NULL;
}

static bool is_cut(const struct raft_mem_hub *hub, uint64_t from, uint64_t to)
{
    for (size_t i = 0; i < hub->n_cuts; i++)
        if (hub->cuts[i].from == from && hub->cuts[i].to == to)
            return true;
    return false;
}

static void on_deliver(uv_idle_t *h)
{
    struct raft_mem_hub *hub = h->data;
    uv_idle_stop(h);
    /* Frames sent while delivering wait for the next turn. */
    struct frame *f = hub->head;
    hub->head = NULL;
    hub->tail = &hub->head;
    while (f != NULL) {
        struct frame *next = f->next;
        struct mem_transport *m = find(hub, f->to);
        if (m != NULL && m->base.recv != NULL)
            m->base.recv(m->base.recv_arg, f->data, f->len);
        swm_free(f);
        f = next;
    }
}

static int mem_send(struct raft_transport *t, uint64_t to, const void *data, size_t len)
{
    struct mem_transport *self = (struct mem_transport *)t;
    struct raft_mem_hub *hub = self->hub;
    if (hub->closing)
        return SWM_ESHUTDOWN;
    if (find(hub, to) == NULL)
        return SWM_ENOTFOUND;
    if (is_cut(hub, self->id, to))
        return 0; /* lost on the way, as on a real network */
    struct frame *f = swm_malloc(sizeof(*f) + len);
    if (f == NULL)
        return -ENOMEM;
    f->to = to;
    f->len = len;
    f->next = NULL;
    memcpy(f->data, data, len);
    *hub->tail = f;
    hub->tail = &f->next;
    uv_idle_start(&hub->deliver, on_deliver);
    return 0;
}

static void mem_close(struct raft_transport *t)
{
    struct mem_transport *self = (struct mem_transport *)t;
    struct raft_mem_hub *hub = self->hub;
    for (size_t i = 0; i < MAX_MEMBERS; i++)
        if (hub->members[i] == self)
            hub->members[i] = NULL;
    swm_free(self);
    maybe_free_hub(hub);
}

static const struct raft_transport_ops mem_ops = {.send = mem_send, .close = mem_close};

int raft_mem_transport_open(struct raft_mem_hub *hub, uint64_t id, struct raft_transport **out)
{
    if (find(hub, id) != NULL)
        return SWM_EEXISTS;
    size_t slot = 0;
    while (slot < MAX_MEMBERS && hub->members[slot] != NULL)
        slot++;
    if (slot == MAX_MEMBERS)
        return -ENOSPC;
    struct mem_transport *m = swm_calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    m->base.ops = &mem_ops;
    m->hub = hub;
    m->id = id;
    hub->members[slot] = m;
    *out = &m->base;
    return 0;
}

void raft_mem_hub_set_link(struct raft_mem_hub *hub, uint64_t from, uint64_t to, bool up)
{
    for (size_t i = 0; i < hub->n_cuts; i++) {
        if (hub->cuts[i].from == from && hub->cuts[i].to == to) {
            if (up)
                hub->cuts[i] = hub->cuts[--hub->n_cuts];
            return;
        }
    }
    if (!up && hub->n_cuts < MAX_CUTS)
        hub->cuts[hub->n_cuts++] = (struct cut){from, to};
}

int raft_mem_hub_open(uv_loop_t *loop, struct raft_mem_hub **out)
{
    struct raft_mem_hub *hub = swm_calloc(1, sizeof(*hub));
    if (hub == NULL)
        return -ENOMEM;
    int rc = uv_idle_init(loop, &hub->deliver);
    if (rc < 0) {
        swm_free(hub);
        return rc;
    }
    hub->deliver.data = hub;
    hub->tail = &hub->head;
    *out = hub;
    return 0;
}

static void hub_closed(uv_handle_t *h)
{
    struct raft_mem_hub *hub = h->data;
    hub->handle_closed = true;
    maybe_free_hub(hub);
}

void raft_mem_hub_close(struct raft_mem_hub *hub)
{
    if (hub == NULL || hub->closing)
        return;
    hub->closing = true;
    uv_close((uv_handle_t *)&hub->deliver, hub_closed);
}
