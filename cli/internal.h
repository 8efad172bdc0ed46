/* Helpers shared by the command files of cli/ (service.c, node.c, image.c,
 * cluster.c); not used outside cli/. */
#ifndef SWM_CLI_INTERNAL_H
#define SWM_CLI_INTERNAL_H

#include <stdbool.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "proto/control.pb-c.h"

/* A NULL-terminated list of flag tables, for struct cli_cmd.flags. */
#define CLI_FLAGS(...) ((const struct cli_flag *const[]){__VA_ARGS__, NULL})

/* One-flag tables that several commands share. */
extern const struct cli_flag cli_flag_format[];    /* --format table|json */
extern const struct cli_flag cli_flag_quiet_ids[]; /* -q, --quiet: only IDs */
extern const struct cli_flag cli_flag_pretty[];    /* --pretty */
extern const struct cli_flag cli_flag_no_trunc[];  /* --no-trunc */
extern const struct cli_flag cli_flag_filter[];    /* -f, --filter key=value */
extern const struct cli_flag cli_flag_detach[];    /* -d, --detach */

enum cli_output {
    CLI_OUT_TABLE,
    CLI_OUT_JSON,
};

/* The --format of args: absent or "table" -> TABLE, "json" -> JSON; Go
 * templates are refused with SWM_ENOTSUP and a message. */
int cli_output_format(const struct cli_args *args, enum cli_output *out, struct swm_err *err);

/* Writes b to f (if rc is 0), frees b, returns rc (or -ENOMEM message in
 * err when rc < 0). */
int cli_flush_buf(FILE *f, struct swm_buf *b, int rc, struct swm_err *err);

/* Splits a "--filter key=value" into key (copied into key[len]) and value.
 * Returns the value or NULL with err set ("bad format of filter"). */
const char *cli_filter_split(const char *filter, char *key, size_t len, struct swm_err *err);

/* Shorthand requests: each sends one request and returns the response
 * (free with proto_free). */
int cli_list_nodes(struct cli_ctx *ctx, Swarmc__ControlResponse **resp, struct swm_err *err);
int cli_get_node(struct cli_ctx *ctx, const char *ref, Swarmc__ControlResponse **resp,
                 struct swm_err *err);
int cli_get_service(struct cli_ctx *ctx, const char *ref, Swarmc__ControlResponse **resp,
                    struct swm_err *err);
int cli_list_tasks(struct cli_ctx *ctx, const Swarmc__ListTasksRequest *list,
                   Swarmc__ControlResponse **resp, struct swm_err *err);

/* Prints a task listing (service ps / node ps) of the tasks `list`
 * selects, honouring -q, --no-trunc, --no-resolve and --format of args. */
int cli_print_tasks(struct cli_ctx *ctx, const Swarmc__ListTasksRequest *list,
                    const struct cli_args *args, struct swm_err *err);

/* Applies the `--filter` values of a `ps` command to list: desired-state=,
 * node=, id=, name= (service). Strings point into args. Returns 0,
 * -ENOMEM or SWM_EINVAL_SPEC. The arrays are freed with
 * cli_task_filter_free. */
int cli_task_filter(const struct cli_args *args, Swarmc__ListTasksRequest *list,
                    struct swm_err *err);
void cli_task_filter_free(Swarmc__ListTasksRequest *list);

/* `inspect` of services and nodes: for each argument, get(ref) fetches
 * the object and pick() finds it in the response; the objects are printed
 * as a JSON array (indented, or compact with --format json) or, with
 * --pretty, by pretty(). Objects that cannot be fetched are reported on
 * ctx->err and make the result an error (the others are still shown). */
typedef int (*cli_get_fn)(struct cli_ctx *ctx, const char *ref, Swarmc__ControlResponse **resp,
                          struct swm_err *err);
typedef const ProtobufCMessage *(*cli_pick_fn)(const Swarmc__ControlResponse *resp);
typedef void (*cli_pretty_fn)(struct cli_ctx *ctx, const ProtobufCMessage *msg);
int cli_inspect(struct cli_ctx *ctx, const struct cli_args *args, cli_get_fn get, cli_pick_fn pick,
                cli_pretty_fn pretty, struct swm_err *err);

/* Formats the ago-time of ns ("2 minutes ago") relative to ctx's clock. */
void cli_ago(const struct cli_ctx *ctx, int64_t ns, char *buf, size_t len);

#endif
