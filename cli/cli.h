/* The swarmc command line (DESIGN.md §1-2): a tree of commands, each a
 * small function with a declarative flag table, dispatched the way cobra
 * does for the Docker CLI (same help layout, same error words). Every
 * command but init/daemon/shim is a client of the node daemon's control
 * socket.
 *
 * Exit status: 0 on success, 1 on any failure, including usage errors
 * (Docker uses 125 for those; one code keeps scripts simple).
 */
#ifndef SWM_CLI_CLI_H
#define SWM_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/flags.h"
#include "common/err.h"
#include "proto/control.pb-c.h"

struct daemon_opts;

/* Entry points linked into the swarmc binary only when the daemon and the
 * executor are built (main.c fills them in); NULL otherwise, and tests plug
 * in fakes. */
struct cli_hooks {
    int (*daemon_init)(const struct daemon_opts *opts, char node_id[26], struct swm_err *err);
    int (*daemon_start)(const struct daemon_opts *opts, struct swm_err *err);
    int (*daemon_join)(const struct daemon_opts *opts, const char *token, const char *remote,
                       char node_id[26], bool *manager, struct swm_err *err);
};

/* What every command may use. Strings are borrowed (argv, environment or
 * static storage) and outlive the command. */
struct cli_ctx {
    const char *data_dir;  /* --data-dir, SWARMC_DATA_DIR, /var/lib/swarmc */
    const char *run_dir;   /* --run-dir, SWARMC_RUN_DIR, /run/swarmc */
    const char *log_level; /* --log-level, SWARMC_LOG; NULL = info */
    const char *self_exe;  /* path of this binary, for the daemon's shims */
    char sock_path[108];   /* <run-dir>/swarmc.sock */
    FILE *out;             /* results */
    FILE *err;             /* errors, warnings */
    bool tty;              /* out is a terminal: progress redraws in place */
    const struct cli_hooks *hooks;
    int64_t poll_interval_ns; /* progress polling period (200 ms) */
    int64_t wait_timeout_ns;  /* give up waiting for convergence after this */
    int64_t (*now_ns)(void);  /* wall clock for "5 seconds ago" */
};

/* Behaviour bits of a command. */
enum {
    CLI_CMD_NO_INTERSPERSE = 1 << 0, /* flags end at the first argument */
    CLI_CMD_HIDDEN = 1 << 1,         /* not listed in help */
};

struct cli_cmd {
    const char *name; /* NULL ends a table */
    const char *alias;
    const char *args_usage; /* "[OPTIONS] IMAGE [COMMAND] [ARG...]" */
    const char *summary;
    const struct cli_flag *const *flags; /* NULL-terminated list of tables */
    int min_args;
    int max_args; /* -1: no limit */
    unsigned opts;
    /* Leaf: runs the command; returns 0 or a negative code with err set
     * (an empty message means the command already explained itself).
     * Group: optional setup run before the subcommand; 1 means "done". */
    int (*run)(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);
    const struct cli_cmd *subcmds; /* group: NULL-terminated table */
};

/* Fills ctx with defaults from the environment; out and err are borrowed. */
void cli_ctx_init(struct cli_ctx *ctx, FILE *out, FILE *err);

/* Runs the command line argv[0..argc) (without the program name) against
 * the command tree `root`. Returns the process exit status. */
int cli_main(struct cli_ctx *ctx, const struct cli_cmd *root, int argc, char **argv);

/* The root's global options and their setup (--data-dir, --run-dir,
 * --log-level, --version). */
extern const struct cli_flag cli_global_flags[];
int cli_global_setup(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);

/* Sends req to the daemon and returns the merged response (free it with
 * proto_free); prints the response's warnings to ctx->err. Errors as
 * cli_client_call. */
int cli_rpc(struct cli_ctx *ctx, const Swarmc__ControlRequest *req, Swarmc__ControlResponse **resp,
            struct swm_err *err);

/* A ControlRequest named `name` carrying sub-request `sub` in oneof member
 * `member` (e.g. get_service, GET_SERVICE). */
#define CLI_REQUEST(name, member, CASE, sub)                                                       \
    Swarmc__ControlRequest name = {PROTOBUF_C_MESSAGE_INIT(&swarmc__control_request__descriptor),  \
                                   .op_case = SWARMC__CONTROL_REQUEST__OP_##CASE, .member = (sub)}

/* Command groups (tables) and the cluster commands, for main.c. */
extern const struct cli_cmd cli_service_cmds[];
extern const struct cli_cmd cli_node_cmds[];
extern const struct cli_cmd cli_image_cmds[];
extern const struct cli_flag *const cli_init_flags[];
extern const struct cli_flag *const cli_daemon_flags[];
extern const struct cli_flag *const cli_join_flags[];
extern const struct cli_flag *const cli_leave_flags[];
extern const struct cli_flag *const cli_info_flags[];
extern const struct cli_flag *const cli_join_token_flags[];
int cli_cluster_init(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);
int cli_cluster_daemon(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);
int cli_cluster_join(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);
int cli_cluster_leave(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);
int cli_cluster_info(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);
int cli_cluster_version(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);
int cli_cluster_join_token(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err);

/* The version printed by `swarmc version` and `--version`. */
extern const char cli_version[];

#endif
