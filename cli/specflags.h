/* Flags that change a message: `service create/update` build and edit a
 * ServiceSpec, `node update` a NodeSpec. Each flag of a table carries (in
 * cli_flag.data) a struct cli_field_op: a field path in the message and the
 * function that applies one value there. Most flags use the generic
 * operations below (set a scalar, add to or remove from a list, set or
 * remove a label), so adding a flag is adding a table line.
 *
 * Every function here builds or edits messages through proto_allocator, so a
 * spec from GetService can be edited in place and freed with proto_free.
 */
#ifndef SWM_CLI_SPECFLAGS_H
#define SWM_CLI_SPECFLAGS_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "cli/flags.h"
#include "proto/objects.pb-c.h"

/* A value name accepted for an enum field, and its number. */
struct cli_choice {
    const char *name; /* NULL ends a list */
    int value;
};

struct cli_field_op;

/* Applies one value of `flag` (whose data is the op) to msg. Returns 0,
 * -ENOMEM or SWM_EINVAL_SPEC with err naming the flag and the value. */
typedef int (*cli_field_apply_fn)(ProtobufCMessage *msg, const struct cli_flag *flag,
                                  const char *value, struct swm_err *err);

struct cli_field_op {
    cli_field_apply_fn apply;
    const char *path;                 /* dotted field names from the message's root */
    const struct cli_choice *choices; /* enum fields: accepted names */
};

/* Generic operations (op->path names the field):
 * cli_op_set: a singular scalar or string, converted per flag->kind (enum
 *   fields by op->choices); marks it set.
 * cli_op_append / cli_op_remove: a repeated string; append if not already
 *   there / remove every equal entry.
 * cli_op_kv_set / cli_op_kv_remove: a repeated KeyValue ("k=v" or "k");
 *   set replaces a key's value, remove takes a key. */
int cli_op_set(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
               struct swm_err *err);
int cli_op_append(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                  struct swm_err *err);
int cli_op_remove(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                  struct swm_err *err);
int cli_op_kv_set(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                  struct swm_err *err);
int cli_op_kv_remove(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                     struct swm_err *err);

/* Applies to msg every flag of args that has an op: tables in order, flags
 * in table order (so "-rm" flags listed before "-add" ones apply first, as
 * in docker), values in command-line order. Stops at the first error. */
int cli_fields_apply(ProtobufCMessage *msg, const struct cli_flag *const *tables,
                     const struct cli_args *args, struct swm_err *err);

/* Flag tables of `service create` and `service update` (NULL-terminated
 * lists of tables). */
extern const struct cli_flag *const cli_service_create_flags[];
extern const struct cli_flag *const cli_service_update_flags[];

/* `service create [OPTIONS] IMAGE [COMMAND] [ARG...]`: a new spec from
 * args (positional arguments: the image, then the container's args).
 * Returns 0 with *out set (free with proto_free), -ENOMEM or
 * SWM_EINVAL_SPEC with err set to one line naming the flag and value. */
int cli_spec_create(const struct cli_args *args, Swarmc__ServiceSpec **out, struct swm_err *err);

/* `service update [OPTIONS] SERVICE`: edits spec in place. Returns as
 * cli_spec_create; on failure spec may be partly edited (discard it). */
int cli_spec_update(Swarmc__ServiceSpec *spec, const struct cli_args *args, struct swm_err *err);

/* Splits a command line the way a POSIX shell splits words (quotes and
 * backslashes, no expansion), as `--entrypoint` and `--args` need. Returns
 * 0 with *argv (NULL-terminated, free with cli_strv_free) and *argc set, or
 * -EINVAL for an unterminated quote, -ENOMEM. */
int cli_shell_split(const char *line, char ***argv, size_t *argc);

/* Frees a NULL-terminated or counted (n) array of strings. Accepts NULL. */
void cli_strv_free(char **v, size_t n);

/* Parses one --publish value (short "8080:80/udp", "80", "8080-8081:80-81"
 * or long "published=8080,target=80,protocol=udp,mode=host") into ports
 * appended to *ports. Returns 0, -ENOMEM or SWM_EINVAL_SPEC with a reason
 * (without the flag) in err. */
int cli_parse_ports(const char *value, Swarmc__PortConfig ***ports, size_t *n_ports,
                    struct swm_err *err);

/* Parses one --mount value ("type=bind,source=/a,target=/b,readonly") into
 * a new Mount (free with proto_free). Errors as cli_parse_ports. */
int cli_parse_mount(const char *value, Swarmc__Mount **out, struct swm_err *err);

#endif
