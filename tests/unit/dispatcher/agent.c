#include "agent.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

#include "common/alloc.h"

void dfx_setup(struct dfx *f, int64_t heartbeat_ns)
{
    memset(f, 0, sizeof(*f));
    cfx_setup(&f->c);
    cfx_open_log(&f->c);
    assert_int_equal(dispatcher_open(&f->c.loop, f->c.s, f->c.log, heartbeat_ns, &f->d), 0);
    assert_int_equal(store_watch(f->c.s, dispatcher_on_store_events, f->d), 0);
}

void dfx_teardown(struct dfx *f)
{
    if (f->d != NULL) {
        store_unwatch(f->c.s, dispatcher_on_store_events, f->d);
        dispatcher_close(f->d);
        f->d = NULL;
    }
    cfx_teardown(&f->c);
}

static void capture(void *conn, const uint8_t *frame, size_t len)
{
    struct agent *a = conn;
    struct swm_err err = {0};
    Swarmc__DispatcherMessage *msg =
        PROTO_UNPACK(Swarmc__DispatcherMessage, swarmc__dispatcher_message, frame, len, &err);
    if (msg == NULL)
        fail_msg("the dispatcher sent a malformed frame: %s", err.msg);
    assert_true(a->n_frames < sizeof(a->frames) / sizeof(a->frames[0]));
    a->frames[a->n_frames++] = msg;
}

void agent_open(struct dfx *f, struct agent *a, const char *node_id)
{
    memset(a, 0, sizeof(*a));
    a->sess = dispatcher_session_open(f->d, node_id, capture, a);
    assert_non_null(a->sess);
}

void agent_close(struct agent *a)
{
    if (a->sess != NULL)
        dispatcher_session_close(a->sess);
    a->sess = NULL;
    for (size_t i = 0; i < a->n_frames; i++)
        proto_free(a->frames[i]);
    a->n_frames = 0;
}

static void send_msg(struct agent *a, const Swarmc__AgentMessage *msg)
{
    struct swm_buf buf = {0};
    assert_int_equal(proto_pack(&msg->base, &buf), 0);
    dispatcher_session_receive(a->sess, buf.data, buf.len);
    swm_buf_free(&buf);
}

static void send_register(struct agent *a, const char *node_id, const char *hostname,
                          int has_availability, Swarmc__NodeAvailability availability)
{
    Swarmc__NodeDescription desc = SWARMC__NODE_DESCRIPTION__INIT;
    desc.hostname = (char *)hostname;
    Swarmc__RegisterRequest req = SWARMC__REGISTER_REQUEST__INIT;
    req.node_id = (char *)node_id;
    req.description = hostname != NULL ? &desc : NULL;
    req.has_availability = has_availability;
    req.availability = availability;
    Swarmc__AgentMessage msg = SWARMC__AGENT_MESSAGE__INIT;
    msg.msg_case = SWARMC__AGENT_MESSAGE__MSG_REGISTER;
    msg.register_ = &req;
    send_msg(a, &msg);
}

void agent_register(struct agent *a, const char *node_id, const char *hostname)
{
    send_register(a, node_id, hostname, 0, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE);
}

void agent_register_with_availability(struct agent *a, const char *node_id, const char *hostname,
                                      Swarmc__NodeAvailability availability)
{
    send_register(a, node_id, hostname, 1, availability);
}

void agent_heartbeat(struct agent *a)
{
    Swarmc__Heartbeat hb = SWARMC__HEARTBEAT__INIT;
    Swarmc__AgentMessage msg = SWARMC__AGENT_MESSAGE__INIT;
    msg.msg_case = SWARMC__AGENT_MESSAGE__MSG_HEARTBEAT;
    msg.heartbeat = &hb;
    send_msg(a, &msg);
}

void agent_report(struct agent *a, size_t n, const char *const *task_ids,
                  const Swarmc__TaskState *states, const char *message)
{
    Swarmc__TaskStatusUpdate__Item items[16];
    Swarmc__TaskStatusUpdate__Item *ptrs[16];
    Swarmc__TaskStatus status[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        swarmc__task_status_update__item__init(&items[i]);
        swarmc__task_status__init(&status[i]);
        status[i].has_state = status[i].has_timestamp = 1;
        status[i].state = states[i];
        status[i].timestamp = CFX_T0 + (int64_t)i;
        status[i].message = (char *)message;
        items[i].task_id = (char *)task_ids[i];
        items[i].status = &status[i];
        ptrs[i] = &items[i];
    }
    Swarmc__TaskStatusUpdate update = SWARMC__TASK_STATUS_UPDATE__INIT;
    update.n_updates = n;
    update.updates = ptrs;
    Swarmc__AgentMessage msg = SWARMC__AGENT_MESSAGE__INIT;
    msg.msg_case = SWARMC__AGENT_MESSAGE__MSG_STATUS;
    msg.status = &update;
    send_msg(a, &msg);
}

void agent_send_raw(struct agent *a, const void *data, size_t len)
{
    dispatcher_session_receive(a->sess, data, len);
}

const Swarmc__DispatcherMessage *agent_frame(struct agent *a, size_t i)
{
    if (i >= a->n_frames)
        fail_msg("expected frame %zu, the agent got %zu", i, a->n_frames);
    return a->frames[i];
}

void agent_expect_assignments(struct agent *a, size_t i, Swarmc__AssignmentsMessage__Type type,
                              const char *changes)
{
    const Swarmc__DispatcherMessage *m = agent_frame(a, i);
    assert_int_equal(m->msg_case, SWARMC__DISPATCHER_MESSAGE__MSG_ASSIGNMENTS);
    assert_int_equal(m->assignments->type, type);
    char got[4096] = "";
    for (size_t k = 0; k < m->assignments->n_changes; k++) {
        const Swarmc__Assignment *c = m->assignments->changes[k];
        assert_non_null(c->task);
        size_t len = strlen(got);
        snprintf(got + len, sizeof(got) - len, "%s%s:%s", k > 0 ? "," : "",
                 c->action == ASSIGN_REMOVE ? "REMOVE" : "UPDATE", c->task->id);
    }
    assert_string_equal(got, changes);
}

void dfx_add_task(struct dfx *f, const char *id, const char *node, Swarmc__TaskState state,
                  Swarmc__TaskState desired)
{
    Swarmc__Task *t = obj_task(id, "svc", 1, 1, node, state, desired);
    assert_int_equal(cfx_write1(&f->c, CREATE, t), 0);
}
