/* `--format json` and `inspect`: any protobuf message as JSON, by walking its
 * descriptor. Keys are the field names of the .proto files, enums are their
 * value names ("TASK_STATE_RUNNING"), bytes are base64, unset optional
 * fields and empty repeated fields are left out.
 */
#ifndef SWM_CLI_JSON_H
#define SWM_CLI_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>

/* Routes jansson's allocations through swm_malloc. Call once before any
 * other jansson use. */
void cli_json_setup(void);

/* Converts msg into a new JSON object. Returns NULL on ENOMEM. Caller owns
 * the reference (json_decref). */
json_t *cli_json_from_message(const ProtobufCMessage *msg);

enum cli_json_style {
    CLI_JSON_INDENTED, /* `inspect`: one array, indented by 4 like docker inspect */
    CLI_JSON_COMPACT,  /* `inspect --format json`: one array on one line */
    CLI_JSON_LINES,    /* `ls --format json`: one object per line */
};

/* Writes msgs[0..n) to out in the given style. Returns 0, -ENOMEM or -EIO. */
int cli_json_print(FILE *out, const ProtobufCMessage *const *msgs, size_t n,
                   enum cli_json_style style);

#endif
