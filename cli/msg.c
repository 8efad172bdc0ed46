#include "cli/msg.h"

#include <string.h>

#include "common/alloc.h"

ProtobufCMessage *cli_msg_new(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = swm_malloc(desc->sizeof_message);
    if (m != NULL)
        desc->message_init(m);
    return m;
}

void *cli_msg_member(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (char *)m + f->offset;
}

/* protobuf-c keeps presence in a has_ flag for optional scalars and bytes,
 * and in the pointer itself for strings and messages. */
static bool has_flag(const ProtobufCFieldDescriptor *f)
{
    return f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING;
}

bool cli_msg_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(base + f->quantifier_offset) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
            return false;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && has_flag(f)) {
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
    }
    if (!has_flag(f))
        return *(void *const *)(base + f->offset) != NULL;
    return true;
}

size_t cli_msg_elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    }
    return 0;
}

const ProtobufCFieldDescriptor *cli_msg_resolve(ProtobufCMessage *m, const char *path, bool create,
                                                ProtobufCMessage **owner)
{
    char name[64];
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t len = dot != NULL ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof(name))
            return NULL;
        memcpy(name, path, len);
        name[len] = '\0';
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
        if (f == NULL)
            return NULL;
        if (dot == NULL) {
            *owner = m;
            return f;
        }
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            return NULL;
        ProtobufCMessage **child = cli_msg_member(m, f);
        if (*child == NULL) {
            if (!create)
                return NULL;
            *child = cli_msg_new(f->descriptor);
            if (*child == NULL)
                return NULL;
        }
        m = *child;
        path = dot + 1;
    }
}

void cli_msg_mark_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && has_flag(f) &&
        !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
}
