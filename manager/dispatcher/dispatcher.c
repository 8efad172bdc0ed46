#include "manager/dispatcher/dispatcher.h"

#include "common/alloc.h"
#include "common/id.h"
#include "common/log.h"
#include "common/strmap.h"
#include "common/timeutil.h"
#include "manager/dispatcher/internal.h"

#include <errno.h>
#include <string.h>

static void check_heartbeats(uv_timer_t *timer);

/* A new dispatcher (this manager just became leader) has seen no agent:
 * every node the store does not hold DOWN gets a detached session, so that
 * it is marked DOWN unless its agent registers within the grace period
 * (SwarmKit's dispatcher does the same when it starts). Returns 0 or
 * -ENOMEM. */
static int expect_known_nodes(struct dispatcher *d)
{
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0;
    int rc = 0;
    if (store_read_begin(d->store, &r, NULL) < 0 || store_list_nodes(r, &nodes, &n) < 0)
        n = 0;
    store_read_end(r);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (nodes[i]->status != NULL &&
            nodes[i]->status->state == SWARMC__NODE_STATE__NODE_STATE_DOWN)
            continue;
        struct dispatcher_session *sess = dispatcher_session_open(d, nodes[i]->id, NULL, NULL);
        if (sess == NULL)
            rc = -ENOMEM;
        else
            snprintf(sess->node_id, sizeof(sess->node_id), "%s", nodes[i]->id);
    }
    store_free_list(nodes, n);
    return rc;
}

int dispatcher_open(uv_loop_t *loop, struct store *s, struct store_log *log, int64_t heartbeat_ns,
                    struct dispatcher **out)
{
    struct dispatcher *d = swm_calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->loop = loop;
    d->store = s;
    d->log = log;
    d->heartbeat_ns = heartbeat_ns > 0 ? heartbeat_ns : 5 * SWM_NS_PER_SEC;
    d->jitter_state = uv_hrtime();
    uv_timer_init(loop, &d->heartbeat_timer);
    d->heartbeat_timer.data = d;
    uint64_t period_ms = (uint64_t)(d->heartbeat_ns / SWM_NS_PER_MS);
    uv_timer_start(&d->heartbeat_timer, check_heartbeats, period_ms, period_ms);
    d->last_check_ns = swm_mono_ns();
    if (expect_known_nodes(d) < 0) {
        dispatcher_close(d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

static void free_session(struct dispatcher_session *sess)
{
    swm_strmap_free(&sess->sent);
    swm_free(sess);
}

void dispatcher__maybe_free(struct dispatcher *d)
{
    if (!d->closing || !d->timer_closed || d->writing || d->node_writes != NULL)
        return;
    dispatcher__status_free(d);
    swm_free(d);
}

static void timer_closed(uv_handle_t *handle)
{
    struct dispatcher *d = handle->data;
    d->timer_closed = 1;
    dispatcher__maybe_free(d);
}

void dispatcher_close(struct dispatcher *d)
{
    if (d == NULL)
        return;
    d->closing = 1;
    while (d->sessions != NULL) {
        struct dispatcher_session *next = d->sessions->next;
        free_session(d->sessions);
        d->sessions = next;
    }
    uv_close((uv_handle_t *)&d->heartbeat_timer, timer_closed);
}

struct dispatcher_session *dispatcher_session_open(struct dispatcher *d, const char *node_id,
                                                   dispatcher_send_fn send, void *conn)
{
    struct dispatcher_session *sess = swm_calloc(1, sizeof(*sess));
    if (sess == NULL)
        return NULL;
    snprintf(sess->bound_node_id, sizeof(sess->bound_node_id), "%s", node_id);
    if (swm_id_new(sess->session_id) < 0) {
        swm_free(sess);
        return NULL;
    }
    sess->d = d;
    sess->send = send;
    sess->conn = conn;
    sess->last_seen_ns = swm_mono_ns();
    sess->next = d->sessions;
    d->sessions = sess;
    return sess;
}

static void unlink_session(struct dispatcher_session *sess)
{
    for (struct dispatcher_session **p = &sess->d->sessions; *p != NULL; p = &(*p)->next) {
        if (*p == sess) {
            *p = sess->next;
            break;
        }
    }
}

/* True if another connected session serves sess's node. */
static int node_connected_elsewhere(const struct dispatcher_session *sess)
{
    for (const struct dispatcher_session *s = sess->d->sessions; s != NULL; s = s->next) {
        if (s != sess && s->send != NULL && strcmp(s->node_id, sess->node_id) == 0)
            return 1;
    }
    return 0;
}

void dispatcher_session_close(struct dispatcher_session *sess)
{
    /* A registered node whose connection went away keeps a detached
     * session, so the heartbeat check marks it DOWN unless it registers
     * again within the grace period (SwarmKit's nodeStore). */
    if (sess->node_id[0] != '\0' && !sess->marked_down && !node_connected_elsewhere(sess)) {
        sess->send = NULL;
        sess->conn = NULL;
        return;
    }
    unlink_session(sess);
    free_session(sess);
}

void dispatcher__drop_detached(struct dispatcher *d, const char *node_id)
{
    struct dispatcher_session **p = &d->sessions;
    while (*p != NULL) {
        struct dispatcher_session *s = *p;
        if (s->send == NULL && strcmp(s->node_id, node_id) == 0) {
            *p = s->next;
            free_session(s);
        } else {
            p = &s->next;
        }
    }
}

void dispatcher__send(struct dispatcher_session *sess, const Swarmc__DispatcherMessage *msg)
{
    struct swm_buf buf = {0};
    if (sess->send == NULL)
        return;
    if (proto_pack(&msg->base, &buf) < 0) {
        swm_log_error("dispatcher: out of memory packing a message node=%s", sess->node_id);
        return;
    }
    sess->send(sess->conn, buf.data, buf.len);
    swm_buf_free(&buf);
}

void dispatcher_session_receive(struct dispatcher_session *sess, const uint8_t *frame, size_t len)
{
    struct swm_err err = {0};
    Swarmc__AgentMessage *msg =
        PROTO_UNPACK(Swarmc__AgentMessage, swarmc__agent_message, frame, len, &err);
    if (msg == NULL) {
        swm_log_warn("dispatcher: dropped frame node=%s error=\"%s\"", sess->node_id, err.msg);
        return;
    }
    sess->last_seen_ns = swm_mono_ns();
    /* Marked DOWN while its connection stayed up (the heartbeats were
     * late): the node is alive, and says so. */
    if (sess->marked_down && sess->send != NULL && sess->node_id[0] != '\0' &&
        msg->msg_case != SWARMC__AGENT_MESSAGE__MSG_REGISTER) {
        sess->marked_down = 0;
        swm_log_info("dispatcher: node heard from again node=%s", sess->node_id);
        dispatcher__set_node_state(sess->d, sess->node_id, SWARMC__NODE_STATE__NODE_STATE_READY, "",
                                   NULL);
    }
    switch (msg->msg_case) {
    case SWARMC__AGENT_MESSAGE__MSG_REGISTER:
        dispatcher__register(sess, msg->register_);
        break;
    case SWARMC__AGENT_MESSAGE__MSG_STATUS:
        if (sess->node_id[0] != '\0')
            dispatcher__queue_status(sess->d, sess->node_id, msg->status);
        break;
    case SWARMC__AGENT_MESSAGE__MSG_HEARTBEAT:
    default:
        break;
    }
    proto_free(msg);
}

/* A node whose agent stayed silent for three heartbeat periods is DOWN and
 * its tasks are rescheduled by the orchestrators (DESIGN.md §4). */
static void check_heartbeats(uv_timer_t *timer)
{
    struct dispatcher *d = timer->data;
    int64_t now = swm_mono_ns();
    /* After a stall of this loop, the agents' heartbeats may be waiting
     * unread in their sockets (timers run before reads): judge them next
     * round, not now. */
    int64_t since = now - d->last_check_ns;
    d->last_check_ns = now;
    if (since > 2 * d->heartbeat_ns) {
        swm_log_warn("dispatcher: the loop stalled for %lld ms; heartbeats are checked again "
                     "next period",
                     (long long)(since / SWM_NS_PER_MS));
        return;
    }
    struct dispatcher_session **p = &d->sessions;
    while (*p != NULL) {
        struct dispatcher_session *s = *p;
        if (s->node_id[0] != '\0' && !s->marked_down &&
            now - s->last_seen_ns > 3 * d->heartbeat_ns) {
            swm_log_warn("dispatcher: heartbeat failure node=%s", s->node_id);
            s->marked_down = 1;
            dispatcher__set_node_state(d, s->node_id, SWARMC__NODE_STATE__NODE_STATE_DOWN,
                                       "heartbeat failure", NULL);
        }
        /* A detached session has served its purpose once its node is DOWN. */
        if (s->send == NULL && s->marked_down) {
            *p = s->next;
            free_session(s);
        } else {
            p = &s->next;
        }
    }
}
