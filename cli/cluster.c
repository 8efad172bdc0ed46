/* The node's own commands: init, daemon, leave, info, version, and the
 * entry points into the node daemon. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/file.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli/internal.h"
#include "cli/json.h"
#include "common/parse.h"
#include "daemon/daemon.h"
#include "proto/codec.h"

#define B CLI_FLAG_BOOL
#define V CLI_FLAG_VALUE
#define L CLI_FLAG_LIST

/* Marks the Docker flags swarmc parses but does not implement yet. */
static const char not_yet[] = "not yet supported";

static const struct cli_flag init_flags[] = {
    {"advertise-addr", 0, V, CLI_KIND_STRING, NULL,
     "Advertised address (format: <ip|interface>[:port])", NULL},
    {"listen-addr", 0, V, CLI_KIND_STRING, "node-addr",
     "Listen address (format: <ip|interface>[:port]) (default 0.0.0.0:2377)", NULL},
    {"availability", 0, V, CLI_KIND_STRING, NULL,
     "Availability of the node (\"active\", \"pause\", \"drain\") (default \"active\")", NULL},
    {"task-history-limit", 0, V, CLI_KIND_INT, NULL, "Task history retention limit (default 5)",
     NULL},
    {"dispatcher-heartbeat", 0, V, CLI_KIND_DURATION, NULL,
     "Dispatcher heartbeat period (ns|us|ms|s|m|h) (default 5s)", NULL},
    {"cert-expiry", 0, V, CLI_KIND_DURATION, NULL,
     "Validity period for node certificates (ns|us|ms|s|m|h) (default 2160h0m0s)", NULL},
    {"force-new-cluster", 0, B, CLI_KIND_BOOL, NULL,
     "Force create a new cluster from current state", NULL},
    {"foreground", 0, B, CLI_KIND_BOOL, NULL,
     "Keep the node daemon attached to this terminal, logging to stderr", NULL},
    {"autolock", 0, B, CLI_KIND_BOOL, NULL,
     "Enable manager autolocking (requiring an unlock key to start a stopped manager)", not_yet},
    {"default-addr-pool", 0, L, CLI_KIND_STRING, "ipNetSlice",
     "default address pool in CIDR format", not_yet},
    {"default-addr-pool-mask-length", 0, V, CLI_KIND_UINT, "uint32",
     "default address pool subnet mask length", not_yet},
    {"data-path-addr", 0, V, CLI_KIND_STRING, NULL,
     "Address or interface to use for data path traffic", not_yet},
    {"data-path-port", 0, V, CLI_KIND_UINT, "uint32",
     "Port number to use for data path traffic (1024 - 49151)", not_yet},
    {"external-ca", 0, V, CLI_KIND_STRING, "external-ca",
     "Specifications of one or more certificate signing endpoints", not_yet},
    {"max-snapshots", 0, V, CLI_KIND_UINT, NULL, "Number of additional Raft snapshots to retain",
     not_yet},
    {"snapshot-interval", 0, V, CLI_KIND_UINT, NULL,
     "Number of log entries between Raft snapshots (default 10000)", NULL},
    {0},
};

static const struct cli_flag join_flags[] = {
    {"token", 0, V, CLI_KIND_STRING, NULL, "Token for entry into the swarm", NULL},
    {"advertise-addr", 0, V, CLI_KIND_STRING, NULL,
     "Advertised address (format: <ip|interface>[:port])", NULL},
    {"listen-addr", 0, V, CLI_KIND_STRING, "node-addr",
     "Listen address (format: <ip|interface>[:port]) (default 0.0.0.0:2377)", NULL},
    {"availability", 0, V, CLI_KIND_STRING, NULL,
     "Availability of the node (\"active\", \"pause\", \"drain\") (default \"active\")", NULL},
    {"foreground", 0, B, CLI_KIND_BOOL, NULL,
     "Keep the node daemon attached to this terminal, logging to stderr", NULL},
    {"data-path-addr", 0, V, CLI_KIND_STRING, NULL,
     "Address or interface to use for data path traffic", not_yet},
    {0},
};

static const struct cli_flag foreground_flag[] = {
    {"foreground", 0, B, CLI_KIND_BOOL, NULL,
     "Keep the node daemon attached to this terminal, logging to stderr", NULL},
    {0},
};

static const struct cli_flag leave_flags[] = {
    {"force", 'f', B, CLI_KIND_BOOL, NULL, "Force this node to leave the swarm, ignoring warnings",
     NULL},
    {0},
};

static const struct cli_flag join_token_flags[] = {
    {"quiet", 'q', B, CLI_KIND_BOOL, NULL, "Only display token", NULL},
    {"rotate", 0, B, CLI_KIND_BOOL, NULL, "Rotate join token", NULL},
    {0},
};

const struct cli_flag *const cli_init_flags[] = {init_flags, NULL};
const struct cli_flag *const cli_join_token_flags[] = {join_token_flags, NULL};
const struct cli_flag *const cli_daemon_flags[] = {foreground_flag, NULL};
const struct cli_flag *const cli_join_flags[] = {join_flags, NULL};
const struct cli_flag *const cli_leave_flags[] = {leave_flags, NULL};
const struct cli_flag *const cli_info_flags[] = {cli_flag_format, NULL};

static void daemon_opts_defaults(const struct cli_ctx *ctx, const struct cli_args *args,
                                 struct daemon_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->data_dir = ctx->data_dir;
    opts->run_dir = ctx->run_dir;
    opts->self_exe = ctx->self_exe;
    opts->log_level = ctx->log_level;
    opts->foreground = cli_args_bool(args, "foreground");
    opts->task_history_limit = -1;
}

/* The options init and join share: refuses the flags not implemented yet
 * and checks --availability. */
static int node_opts(struct cli_ctx *ctx, const struct cli_args *args, struct daemon_opts *opts,
                     struct swm_err *err)
{
    for (size_t i = 0; i < args->n_opts; i++) {
        if (args->opts[i].flag->data == not_yet)
            return swm_err_set(err, SWM_ENOTSUP, "--%s is not yet supported",
                               args->opts[i].flag->name);
    }
    daemon_opts_defaults(ctx, args, opts);
    opts->advertise_addr = cli_args_value(args, "advertise-addr");
    opts->listen_addr = cli_args_value(args, "listen-addr");
    opts->availability = cli_args_value(args, "availability");
    if (opts->availability != NULL && strcmp(opts->availability, "active") != 0 &&
        strcmp(opts->availability, "pause") != 0 && strcmp(opts->availability, "drain") != 0)
        return swm_err_set(err, SWM_EINVAL_SPEC,
                           "invalid argument \"%s\" for \"--availability\" flag: must be one of "
                           "\"active\", \"pause\", \"drain\"",
                           opts->availability);
    return 0;
}

int cli_cluster_init(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    struct daemon_opts opts;
    int rc = node_opts(ctx, args, &opts, err);
    if (rc < 0)
        return rc;
    opts.force_new_cluster = cli_args_bool(args, "force-new-cluster");
    union cli_value v;
    if ((rc = cli_args_get(args, "task-history-limit", &v, err)) > 0)
        opts.task_history_limit = v.i;
    if (rc >= 0 && (rc = cli_args_get(args, "dispatcher-heartbeat", &v, err)) > 0)
        opts.dispatcher_heartbeat_ns = v.i;
    if (rc >= 0 && (rc = cli_args_get(args, "cert-expiry", &v, err)) > 0)
        opts.cert_expiry_ns = v.i;
    if (rc >= 0 && (rc = cli_args_get(args, "snapshot-interval", &v, err)) > 0) {
        if (v.u == 0)
            return swm_err_set(err, SWM_EINVAL_SPEC,
                               "invalid argument \"0\" for \"--snapshot-interval\" flag: must be "
                               "at least 1");
        opts.snapshot_interval = v.u;
    }
    if (rc < 0)
        return rc;
    if (ctx->hooks == NULL || ctx->hooks->daemon_init == NULL)
        return swm_err_set(err, SWM_ENOTSUP, "this swarmc was built without the node daemon");
    char node_id[26] = "";
    rc = ctx->hooks->daemon_init(&opts, node_id, err);
    if (rc < 0)
        return rc;
    if (!opts.foreground)
        fprintf(ctx->out, "Swarm initialized: current node (%s) is now a manager.\n", node_id);
    return 0;
}

int cli_cluster_join(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    struct daemon_opts opts;
    int rc = node_opts(ctx, args, &opts, err);
    if (rc < 0)
        return rc;
    const char *token = cli_args_value(args, "token");
    if (token == NULL || token[0] == '\0')
        return swm_err_set(err, -EINVAL,
                           "--token is required: get one with `swarmc join-token worker` on a "
                           "manager");
    if (ctx->hooks == NULL || ctx->hooks->daemon_join == NULL)
        return swm_err_set(err, SWM_ENOTSUP, "this swarmc was built without the node daemon");
    char node_id[26] = "";
    bool manager = false;
    if ((rc = ctx->hooks->daemon_join(&opts, token, args->pos[0], node_id, &manager, err)) < 0)
        return rc;
    if (!opts.foreground)
        fprintf(ctx->out, "This node joined a swarm as a %s.\n", manager ? "manager" : "worker");
    return 0;
}

int cli_cluster_daemon(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    struct daemon_opts opts;
    daemon_opts_defaults(ctx, args, &opts);
    if (ctx->hooks == NULL || ctx->hooks->daemon_start == NULL)
        return swm_err_set(err, SWM_ENOTSUP, "this swarmc was built without the node daemon");
    return ctx->hooks->daemon_start(&opts, err);
}

static int get_info(struct cli_ctx *ctx, Swarmc__ControlResponse **resp, struct swm_err *err)
{
    Swarmc__InfoRequest info = SWARMC__INFO_REQUEST__INIT;
    CLI_REQUEST(req, info, INFO, &info);
    int rc = cli_rpc(ctx, &req, resp, err);
    if (rc == 0 && (*resp)->info == NULL) {
        proto_free(*resp);
        return swm_err_set(err, SWM_EPROTO, "the daemon sent no information");
    }
    return rc;
}

/* The daemon answers `leave` first, then stops its containers, removes its
 * state and exits, releasing the lock on its data dir last: wait for that,
 * so the node is really gone when `leave` returns (as `docker swarm leave`
 * does). */
static bool daemon_gone(struct cli_ctx *ctx)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/daemon.lock", ctx->data_dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    bool unlocked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return unlocked;
}

static int wait_daemon_gone(struct cli_ctx *ctx, struct swm_err *err)
{
    for (int i = 0; i < 1200; i++) { /* up to 2 minutes */
        if (daemon_gone(ctx))
            return 0;
        usleep(100 * 1000);
    }
    return swm_err_set(err, -ETIMEDOUT, "the daemon did not stop within 2 minutes");
}

int cli_cluster_leave(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    /* The daemon refuses a manager without --force, saying what it costs. */
    Swarmc__ControlResponse *resp = NULL;
    Swarmc__LeaveRequest leave = SWARMC__LEAVE_REQUEST__INIT;
    leave.has_force = 1;
    leave.force = cli_args_bool(args, "force");
    CLI_REQUEST(req, leave, LEAVE, &leave);
    int rc = cli_rpc(ctx, &req, &resp, err);
    if (rc < 0)
        return rc;
    proto_free(resp);
    rc = wait_daemon_gone(ctx, err);
    if (rc == 0)
        fprintf(ctx->out, "Node left the swarm.\n");
    return rc;
}

static void print_client(struct cli_ctx *ctx)
{
    struct utsname u;
    const char *arch = uname(&u) == 0 ? u.machine : "unknown";
    if (strcmp(arch, "x86_64") == 0)
        arch = "amd64";
    else if (strcmp(arch, "aarch64") == 0)
        arch = "arm64";
    fprintf(ctx->out, "Client:\n Version:    %s\n OS/Arch:    linux/%s\n Context:    unix://%s\n\n",
            cli_version, arch, ctx->sock_path);
}

static void print_server(struct cli_ctx *ctx, const Swarmc__InfoResponse *info)
{
    FILE *f = ctx->out;
    char d[32];
    fprintf(f, "Server:\n Swarm: active\n  NodeID: %s\n  Is Manager: %s\n",
            info->node_id != NULL ? info->node_id : "", info->is_manager ? "true" : "false");
    if (info->is_manager)
        fprintf(f, "  ClusterID: %s\n  Managers: %u\n  Nodes: %u\n",
                info->cluster_id != NULL ? info->cluster_id : "", info->managers, info->nodes);
    fprintf(f, "  Services: %u\n  Running Tasks: %u\n", info->services, info->tasks_running);
    const Swarmc__ClusterSpec *spec = info->cluster != NULL ? info->cluster->spec : NULL;
    if (spec != NULL) {
        fprintf(f, "  Orchestration:\n   Task History Retention Limit: %lld\n",
                (long long)(spec->has_task_history_retention_limit
                                ? spec->task_history_retention_limit
                                : 5));
        fprintf(
            f, "  Raft:\n   Snapshot Interval: %llu\n",
            (unsigned long long)(spec->has_snapshot_interval ? spec->snapshot_interval : 10000));
        if (info->has_raft_applied_index)
            fprintf(f, "   Applied Index: %llu\n", (unsigned long long)info->raft_applied_index);
        swm_format_duration(spec->has_dispatcher_heartbeat_period
                                ? spec->dispatcher_heartbeat_period
                                : 5000000000LL,
                            d, sizeof(d));
        fprintf(f, "  Dispatcher:\n   Heartbeat Period: %s\n", d);
        swm_format_duration(spec->has_node_cert_expiry ? spec->node_cert_expiry
                                                       : 2160LL * 3600 * 1000000000LL,
                            d, sizeof(d));
        fprintf(f, "  CA Configuration:\n   Expiry Duration: %s\n", d);
        /* Docker's next lines; swarmc has neither autolock nor root
         * rotation yet. A cluster made before the CA existed has no root. */
        if (info->cluster->root_ca != NULL)
            fprintf(f, "  Autolock Managers: false\n  Root Rotation In Progress: false\n");
    }
    if (info->version != NULL && info->version[0] != '\0')
        fprintf(f, " Server Version: %s\n", info->version);
    if (info->data_dir != NULL && info->data_dir[0] != '\0')
        fprintf(f, " Data Dir: %s\n", info->data_dir);
}

int cli_cluster_info(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    enum cli_output format;
    int rc = cli_output_format(args, &format, err);
    if (rc < 0)
        return rc;
    if (format == CLI_OUT_TABLE)
        print_client(ctx);
    Swarmc__ControlResponse *resp = NULL;
    rc = get_info(ctx, &resp, err);
    if (rc < 0)
        return rc;
    if (format == CLI_OUT_JSON) {
        const ProtobufCMessage *msg = &resp->info->base;
        rc = cli_json_print(ctx->out, &msg, 1, CLI_JSON_LINES);
    } else {
        print_server(ctx, resp->info);
    }
    proto_free(resp);
    return rc < 0 ? swm_err_set(err, rc, "writing output: %s", swm_strerror(rc)) : 0;
}

/* `join-token`, worded as `docker swarm join-token`; the join command is
 * `swarmc join` (swarmc has no `swarm` group). */
int cli_cluster_join_token(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    const char *role = args->pos[0];
    bool worker = strcmp(role, "worker") == 0;
    if (!worker && strcmp(role, "manager") != 0)
        return swm_err_set(err, SWM_EINVAL_SPEC, "unknown role %s", role);
    bool quiet = cli_args_bool(args, "quiet");
    bool rotate = cli_args_bool(args, "rotate");
    Swarmc__JoinTokenRequest jt = SWARMC__JOIN_TOKEN_REQUEST__INIT;
    jt.has_role = 1;
    jt.role = worker ? SWARMC__NODE_ROLE__NODE_ROLE_WORKER : SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    jt.has_rotate = 1;
    jt.rotate = rotate;
    CLI_REQUEST(req, join_token, JOIN_TOKEN, &jt);
    Swarmc__ControlResponse *resp = NULL;
    int rc = cli_rpc(ctx, &req, &resp, err);
    if (rc < 0)
        return rc;
    const Swarmc__JoinTokenResponse *r = resp->join_token;
    if (r == NULL || r->token == NULL) {
        proto_free(resp);
        return swm_err_set(err, SWM_EPROTO, "the daemon sent no join token");
    }
    if (quiet) {
        fprintf(ctx->out, "%s\n", r->token);
    } else {
        if (rotate)
            fprintf(ctx->out, "Successfully rotated %s join token.\n\n", role);
        fprintf(ctx->out,
                "To add a %s to this swarm, run the following command:\n\n    swarmc join "
                "--token %s %s\n\n",
                role, r->token, r->manager_addr != NULL ? r->manager_addr : "");
    }
    proto_free(resp);
    return 0;
}

int cli_cluster_version(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    print_client(ctx);
    Swarmc__ControlResponse *resp = NULL;
    int rc = get_info(ctx, &resp, err);
    if (rc < 0)
        return rc;
    fprintf(ctx->out, "Server:\n Version:    %s\n",
            resp->info->version != NULL ? resp->info->version : "");
    proto_free(resp);
    return 0;
}
