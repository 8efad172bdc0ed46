/* The local agent's session with the dispatcher, in process. */
#include "common/alloc.h"
#include "common/log.h"
#include "daemon/internal.h"

#include <errno.h>
#include <string.h>

struct frame {
    int to_agent;
    size_t len;
    struct frame *next;
    uint8_t data[];
};

struct link {
    struct node_daemon *nd;
    struct dispatcher_session *session;
    uv_timer_t deliver;
    struct frame *head, *tail;
};

static void deliver(uv_timer_t *timer)
{
    struct link *l = timer->data;
    /* Frames queued while delivering wait for the next turn of the loop. */
    struct frame *f = l->head;
    l->head = l->tail = NULL;
    while (f != NULL) {
        struct frame *next = f->next;
        if (f->to_agent)
            agent_receive(l->nd->agent, f->data, f->len);
        else if (l->session != NULL)
            dispatcher_session_receive(l->session, f->data, f->len);
        swm_free(f);
        f = next;
    }
}

static void enqueue(struct link *l, int to_agent, const uint8_t *data, size_t len)
{
    struct frame *f = swm_malloc(sizeof(*f) + len);
    if (f == NULL) {
        swm_log_error("link: out of memory, frame of %zu bytes dropped", len);
        return;
    }
    f->to_agent = to_agent;
    f->len = len;
    f->next = NULL;
    memcpy(f->data, data, len);
    if (l->tail != NULL)
        l->tail->next = f;
    else
        l->head = f;
    l->tail = f;
    if (!uv_is_active((uv_handle_t *)&l->deliver))
        uv_timer_start(&l->deliver, deliver, 0, 0);
}

static void to_agent(void *conn, const uint8_t *frame, size_t len)
{
    enqueue(conn, 1, frame, len);
}

static void to_dispatcher(void *conn, const uint8_t *frame, size_t len)
{
    enqueue(conn, 0, frame, len);
}

int daemon__link_open(struct node_daemon *nd, struct link **out)
{
    struct link *l = swm_calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    l->nd = nd;
    uv_timer_init(&nd->loop, &l->deliver);
    l->deliver.data = l;
    l->session = dispatcher_session_open(nd->dispatcher, nd->node_id, to_agent, l);
    if (l->session == NULL) {
        uv_close((uv_handle_t *)&l->deliver, NULL);
        return -ENOMEM;
    }
    agent_connect(nd->agent, to_dispatcher, l);
    *out = l;
    return 0;
}

static void link_free(uv_handle_t *handle)
{
    struct link *l = handle->data;
    while (l->head != NULL) {
        struct frame *next = l->head->next;
        swm_free(l->head);
        l->head = next;
    }
    swm_free(l);
}

void daemon__link_close(struct link *l)
{
    if (l == NULL)
        return;
    if (l->session != NULL)
        dispatcher_session_close(l->session);
    l->session = NULL;
    uv_close((uv_handle_t *)&l->deliver, link_free);
}
