#include "proto/codec.h"

#include "common/alloc.h"

#include <errno.h>
#include <stdbool.h>

static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return swm_malloc(size);
}

static void pb_free(void *data, void *ptr)
{
    (void)data;
    swm_free(ptr);
}

ProtobufCAllocator proto_allocator = {.alloc = pb_alloc, .free = pb_free, .allocator_data = NULL};

int proto_pack(const ProtobufCMessage *msg, struct swm_buf *out)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    int rc = swm_buf_reserve(out, len);
    if (rc < 0)
        return rc;
    protobuf_c_message_pack(msg, out->data + out->len);
    out->len += len;
    out->data[out->len] = '\0';
    return 0;
}

/* protobuf-c returns NULL both for bad input and for a failed allocation;
 * this allocator (the same seam as proto_allocator, so proto_free frees
 * what it made) records which. */
static void *unpack_alloc(void *oom, size_t size)
{
    void *p = swm_malloc(size);
    if (p == NULL)
        *(bool *)oom = true;
    return p;
}

static void unpack_free(void *oom, void *p)
{
    swm_free(p);
}

ProtobufCMessage *proto_unpack(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                               struct swm_err *err)
{
    bool oom = false;
    ProtobufCAllocator a = {.alloc = unpack_alloc, .free = unpack_free, .allocator_data = &oom};
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &a, len, data);
    if (msg == NULL && oom)
        swm_err_set(err, -ENOMEM, "decoding a %s message: out of memory", desc->short_name);
    else if (msg == NULL)
        swm_err_set(err, SWM_EPROTO, "malformed %s message (%zu bytes)", desc->short_name, len);
    return msg;
}

void proto_free(void *msg)
{
    if (msg != NULL)
        protobuf_c_message_free_unpacked(msg, &proto_allocator);
}

void *proto_clone(const void *msg)
{
    const ProtobufCMessage *m = msg;
    struct swm_buf buf = {0};
    if (proto_pack(m, &buf) < 0)
        return NULL;
    void *copy = protobuf_c_message_unpack(m->descriptor, &proto_allocator, buf.len, buf.data);
    swm_buf_free(&buf);
    return copy;
}

const char *proto_task_state_name(Swarmc__TaskState state)
{
    switch (state) {
    case SWARMC__TASK_STATE__TASK_STATE_NEW:
        return "new";
    case SWARMC__TASK_STATE__TASK_STATE_PENDING:
        return "pending";
    case SWARMC__TASK_STATE__TASK_STATE_ALLOCATED:
        return "allocated";
    case SWARMC__TASK_STATE__TASK_STATE_ASSIGNED:
        return "assigned";
    case SWARMC__TASK_STATE__TASK_STATE_ACCEPTED:
        return "accepted";
    case SWARMC__TASK_STATE__TASK_STATE_PREPARING:
        return "preparing";
    case SWARMC__TASK_STATE__TASK_STATE_READY:
        return "ready";
    case SWARMC__TASK_STATE__TASK_STATE_STARTING:
        return "starting";
    case SWARMC__TASK_STATE__TASK_STATE_RUNNING:
        return "running";
    case SWARMC__TASK_STATE__TASK_STATE_COMPLETE:
        return "complete";
    case SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN:
        return "shutdown";
    case SWARMC__TASK_STATE__TASK_STATE_FAILED:
        return "failed";
    case SWARMC__TASK_STATE__TASK_STATE_REJECTED:
        return "rejected";
    case SWARMC__TASK_STATE__TASK_STATE_REMOVE:
        return "remove";
    case SWARMC__TASK_STATE__TASK_STATE_ORPHANED:
        return "orphaned";
    default:
        return "unknown";
    }
}

const char *proto_node_state_name(Swarmc__NodeState state)
{
    switch (state) {
    case SWARMC__NODE_STATE__NODE_STATE_DOWN:
        return "down";
    case SWARMC__NODE_STATE__NODE_STATE_READY:
        return "ready";
    case SWARMC__NODE_STATE__NODE_STATE_DISCONNECTED:
        return "disconnected";
    default:
        return "unknown";
    }
}

const char *proto_node_availability_name(Swarmc__NodeAvailability availability)
{
    switch (availability) {
    case SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE:
        return "pause";
    case SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN:
        return "drain";
    default:
        return "active";
    }
}

const char *proto_node_role_name(Swarmc__NodeRole role)
{
    return role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? "manager" : "worker";
}
