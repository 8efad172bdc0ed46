#include "cli/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/msg.h"
#include "common/alloc.h"

void cli_json_setup(void)
{
    json_set_alloc_funcs(swm_malloc, swm_free);
}

static json_t *base64(const ProtobufCBinaryData *b)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out_len = (b->len + 2) / 3 * 4;
    char *s = swm_malloc(out_len + 1);
    if (s == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < b->len; i += 3) {
        uint32_t v = (uint32_t)b->data[i] << 16;
        if (i + 1 < b->len)
            v |= (uint32_t)b->data[i + 1] << 8;
        if (i + 2 < b->len)
            v |= b->data[i + 2];
        s[o++] = alphabet[(v >> 18) & 63];
        s[o++] = alphabet[(v >> 12) & 63];
        s[o++] = i + 1 < b->len ? alphabet[(v >> 6) & 63] : '=';
        s[o++] = i + 2 < b->len ? alphabet[v & 63] : '=';
    }
    s[o] = '\0';
    json_t *j = json_stringn(s, o);
    swm_free(s);
    return j;
}

static json_t *enum_value(const ProtobufCFieldDescriptor *f, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(f->descriptor, value);
    return v != NULL ? json_string(v->name) : json_integer(value);
}

/* A float as the user typed it (0.2), not as its binary value
 * (0.20000000298023224). */
static json_t *float_json(float f)
{
    char g[32];
    snprintf(g, sizeof(g), "%.7g", (double)f);
    return json_real(strtod(g, NULL));
}

/* One value of field f stored at p (an element of a repeated field, or the
 * member itself). */
static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t u = *(const uint64_t *)p;
        if (u <= (uint64_t)INT64_MAX)
            return json_integer((json_int_t)u);
        char digits[24];
        snprintf(digits, sizeof(digits), "%" PRIu64, u);
        return json_string(digits);
    }
    case PROTOBUF_C_TYPE_FLOAT:
        return float_json(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return enum_value(f, *(const int *)p);
    case PROTOBUF_C_TYPE_STRING:
        return json_string(*(char *const *)p != NULL ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_BYTES:
        return base64(p);
    case PROTOBUF_C_TYPE_MESSAGE:
        return cli_json_from_message(*(ProtobufCMessage *const *)p);
    }
    return NULL;
}

static json_t *repeated_to_json(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
    const char *items = *(char *const *)cli_msg_member(msg, f);
    size_t size = cli_msg_elem_size(f->type);
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, value_to_json(f, items + i * size)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

json_t *cli_json_from_message(const ProtobufCMessage *msg)
{
    if (msg == NULL)
        return json_null();
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    json_t *obj = json_object();
    for (unsigned i = 0; obj != NULL && i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (!cli_msg_present(msg, f))
            continue;
        json_t *v = f->label == PROTOBUF_C_LABEL_REPEATED
                        ? repeated_to_json(msg, f)
                        : value_to_json(f, cli_msg_member(msg, f));
        /* json_object_set_new takes v even on failure (and NULL fails). */
        if (json_object_set_new(obj, f->name, v) < 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}

static int dump(FILE *out, const json_t *j, size_t flags)
{
    /* 15 digits: floats converted to double print as typed (0.2). */
    if (json_dumpf(j, out, flags | JSON_REAL_PRECISION(15)) < 0 || fputc('\n', out) == EOF)
        return -EIO;
    return 0;
}

int cli_json_print(FILE *out, const ProtobufCMessage *const *msgs, size_t n,
                   enum cli_json_style style)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (json_array_append_new(arr, cli_json_from_message(msgs[i])) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0 && style == CLI_JSON_LINES) {
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = dump(out, json_array_get(arr, i), JSON_COMPACT);
    } else if (rc == 0) {
        rc = dump(out, arr, style == CLI_JSON_INDENTED ? JSON_INDENT(4) : JSON_COMPACT);
    }
    json_decref(arr);
    return rc;
}
