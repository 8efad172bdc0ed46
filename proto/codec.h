/* Encoding and decoding of swarmc's protobuf messages through the allocation
 * seam, with protobuf-c's NULL-on-failure translated to error codes once,
 * here (STYLE.md). */
#ifndef SWM_PROTO_CODEC_H
#define SWM_PROTO_CODEC_H

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/control.pb-c.h"
#include "proto/dispatcher.pb-c.h"
#include "proto/objects.pb-c.h"
#include "proto/store.pb-c.h"

/* The ProtobufCAllocator that routes protobuf-c through swm_malloc. */
extern ProtobufCAllocator proto_allocator;

/* Appends the encoding of msg to out. Returns 0 or -ENOMEM. */
int proto_pack(const ProtobufCMessage *msg, struct swm_buf *out);

/* Decodes len bytes as a message of type desc. Returns the message (free it
 * with proto_free) or NULL with err set to SWM_EPROTO naming the type, or to
 * -ENOMEM when an allocation failed. */
ProtobufCMessage *proto_unpack(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                               struct swm_err *err);

/* Frees a message from proto_unpack or proto_clone. Accepts NULL. */
void proto_free(void *msg);

/* Deep copy of msg (by encoding and decoding). Returns NULL on ENOMEM. */
void *proto_clone(const void *msg);

/* Typed shorthands. */
#define PROTO_UNPACK(type, lower, data, len, err)                                                  \
    ((type *)proto_unpack(&lower##__descriptor, (data), (len), (err)))

/* Names as the Docker CLI prints them: "running", "pending"... */
const char *proto_task_state_name(Swarmc__TaskState state);
const char *proto_node_state_name(Swarmc__NodeState state);
const char *proto_node_availability_name(Swarmc__NodeAvailability availability);
const char *proto_node_role_name(Swarmc__NodeRole role);

#endif
