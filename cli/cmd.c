/* Command dispatch, help and the global options. */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/client.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "proto/codec.h"

#ifndef SWARMC_VERSION
#define SWARMC_VERSION "0.0.0-dev"
#endif

const char cli_version[] = SWARMC_VERSION;

const struct cli_flag cli_global_flags[] = {
    {"data-dir", 0, CLI_FLAG_VALUE, CLI_KIND_STRING, NULL,
     "Node state directory (default \"/var/lib/swarmc\", env SWARMC_DATA_DIR)", NULL},
    {"run-dir", 0, CLI_FLAG_VALUE, CLI_KIND_STRING, NULL,
     "Runtime directory holding swarmc.sock (default \"/run/swarmc\", env SWARMC_RUN_DIR)", NULL},
    {"log-level", 'l', CLI_FLAG_VALUE, CLI_KIND_STRING, NULL,
     "Set the logging level (\"debug\"|\"info\"|\"warn\"|\"error\") (default \"info\")", NULL},
    {"version", 'v', CLI_FLAG_BOOL, CLI_KIND_BOOL, NULL, "Print version information and quit",
     NULL},
    {0},
};

static void set_sock_path(struct cli_ctx *ctx)
{
    snprintf(ctx->sock_path, sizeof(ctx->sock_path), "%s/swarmc.sock", ctx->run_dir);
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : fallback;
}

void cli_ctx_init(struct cli_ctx *ctx, FILE *out, FILE *err)
{
    static char self_exe[PATH_MAX];
    memset(ctx, 0, sizeof(*ctx));
    ctx->data_dir = env_or("SWARMC_DATA_DIR", "/var/lib/swarmc");
    ctx->run_dir = env_or("SWARMC_RUN_DIR", "/run/swarmc");
    ctx->log_level = env_or("SWARMC_LOG", NULL);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    self_exe[n > 0 ? n : 0] = '\0';
    ctx->self_exe = n > 0 ? self_exe : "swarmc";
    ctx->out = out;
    ctx->err = err;
    ctx->tty = isatty(fileno(out)) == 1;
    ctx->poll_interval_ns = 200 * SWM_NS_PER_MS;
    ctx->wait_timeout_ns = 600 * SWM_NS_PER_SEC;
    ctx->now_ns = swm_now_ns;
    set_sock_path(ctx);
}

int cli_global_setup(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    const char *v;
    if ((v = cli_args_value(args, "data-dir")) != NULL)
        ctx->data_dir = v;
    if ((v = cli_args_value(args, "run-dir")) != NULL)
        ctx->run_dir = v;
    if ((v = cli_args_value(args, "log-level")) != NULL)
        ctx->log_level = v;
    if (strlen(ctx->run_dir) + sizeof("/swarmc.sock") > sizeof(ctx->sock_path))
        return swm_err_set(err, -ENAMETOOLONG, "run directory path too long: %s", ctx->run_dir);
    set_sock_path(ctx);
    if (ctx->log_level != NULL) {
        enum swm_log_level level;
        if (swm_log_parse_level(ctx->log_level, &level) < 0)
            return swm_err_set(err, -EINVAL, "Unable to parse logging level: %s", ctx->log_level);
        swm_log_set_level(level);
    }
    if (cli_args_bool(args, "version")) {
        fprintf(ctx->out, "swarmc version %s\n", cli_version);
        return 1;
    }
    return 0;
}

int cli_rpc(struct cli_ctx *ctx, const Swarmc__ControlRequest *req, Swarmc__ControlResponse **resp,
            struct swm_err *err)
{
    Swarmc__ControlResponse *r = NULL;
    int rc = cli_client_call(ctx->sock_path, req, &r, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < r->n_warnings; i++)
        fprintf(ctx->err, "WARNING: %s\n", r->warnings[i]);
    *resp = r;
    return 0;
}

/* ------------------------------------------------------------- help -- */

static int print_buf(FILE *f, struct swm_buf *b, int rc)
{
    if (rc == 0 && b->len > 0)
        fwrite(b->data, 1, b->len, f);
    swm_buf_free(b);
    return rc;
}

static int usage_line(struct swm_buf *b, const struct cli_cmd *cmd, const char *path)
{
    if (cmd->subcmds != NULL)
        return swm_buf_printf(b, "Usage:  %s %sCOMMAND\n", path,
                              cmd->flags != NULL ? "[OPTIONS] " : "");
    return swm_buf_printf(b, "Usage:  %s%s%s\n", path, cmd->args_usage != NULL ? " " : "",
                          cmd->args_usage != NULL ? cmd->args_usage : "");
}

static int print_help(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *path)
{
    struct swm_buf b = {0};
    int rc = swm_buf_printf(&b, "\n");
    if (rc == 0)
        rc = usage_line(&b, cmd, path);
    if (rc == 0)
        rc = swm_buf_printf(&b, "\n%s\n", cmd->summary);
    if (rc == 0 && cmd->alias != NULL)
        rc = swm_buf_printf(&b, "\nAliases:\n  %s, %.*s%s\n", path,
                            (int)(strlen(path) - strlen(cmd->name)), path, cmd->alias);
    bool has_flags = cmd->flags != NULL && cmd->flags[0] != NULL;
    if (rc == 0 && has_flags)
        rc = swm_buf_printf(&b, "\nOptions:\n");
    if (rc == 0 && has_flags)
        rc = cli_flags_help(cmd->flags, &b);
    if (rc == 0 && cmd->subcmds != NULL) {
        rc = swm_buf_printf(&b, "\nCommands:\n");
        for (const struct cli_cmd *c = cmd->subcmds; rc == 0 && c->name != NULL; c++)
            if (!(c->opts & CLI_CMD_HIDDEN))
                rc = swm_buf_printf(&b, "  %-11s %s\n", c->name, c->summary);
        if (rc == 0)
            rc = swm_buf_printf(
                &b, "\nRun '%s COMMAND --help' for more information on a command.\n", path);
    }
    return print_buf(ctx->out, &b, rc);
}

/* cobra's positional-argument checks, in the Docker CLI's words. */
static int check_arg_count(const struct cli_cmd *cmd, const char *path, size_t n,
                           struct swm_err *err)
{
    int min = cmd->min_args;
    int max = cmd->max_args;
    const char *noun;
    if (max == 0 && n > 0)
        return swm_err_set(err, CLI_EUSAGE, "\"%s\" accepts no arguments.", path);
    if ((int)n >= min && (max < 0 || (int)n <= max))
        return 0;
    if (min == max) {
        noun = min == 1 ? "argument" : "arguments";
        return swm_err_set(err, CLI_EUSAGE, "\"%s\" requires exactly %d %s.", path, min, noun);
    }
    if (max < 0) {
        noun = min == 1 ? "argument" : "arguments";
        return swm_err_set(err, CLI_EUSAGE, "\"%s\" requires at least %d %s.", path, min, noun);
    }
    if (min == 0) {
        noun = max == 1 ? "argument" : "arguments";
        return swm_err_set(err, CLI_EUSAGE, "\"%s\" requires at most %d %s.", path, max, noun);
    }
    return swm_err_set(err, CLI_EUSAGE, "\"%s\" requires at least %d and at most %d arguments.",
                       path, min, max);
}

/* Prints a failure and returns the exit status. Usage errors point to the
 * help, as the Docker CLI does; a wrong number of arguments also shows the
 * usage line (with_usage). */
static int report_usage(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *path,
                        const struct swm_err *err, bool with_usage)
{
    if (err->msg[0] != '\0')
        fprintf(ctx->err, "%s\n", err->msg);
    if (err->code == CLI_EUSAGE) {
        fprintf(ctx->err, "See '%s --help'.\n", path);
        if (with_usage) {
            struct swm_buf b = {0};
            int rc = usage_line(&b, cmd, path);
            fprintf(ctx->err, "\n");
            print_buf(ctx->err, &b, rc);
            fprintf(ctx->err, "\n%s\n", cmd->summary);
        }
    }
    return 1;
}

static int report(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *path,
                  const struct swm_err *err)
{
    return report_usage(ctx, cmd, path, err, false);
}

static const struct cli_cmd *find_subcmd(const struct cli_cmd *group, const char *name)
{
    for (const struct cli_cmd *c = group->subcmds; c->name != NULL; c++) {
        if (strcmp(c->name, name) == 0 || (c->alias != NULL && strcmp(c->alias, name) == 0))
            return c;
    }
    return NULL;
}

static int dispatch(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *path, int argc,
                    char **argv);

static int dispatch_group(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *path,
                          const struct cli_args *args)
{
    struct swm_err err = {0};
    if (cmd->run != NULL) {
        int rc = cmd->run(ctx, args, &err);
        if (rc < 0)
            return report(ctx, cmd, path, &err);
        if (rc > 0)
            return 0;
    }
    if (args->help || args->n_pos == 0)
        return print_help(ctx, cmd, path) < 0 ? 1 : 0;
    const struct cli_cmd *sub = find_subcmd(cmd, args->pos[0]);
    if (sub == NULL) {
        fprintf(ctx->err, "%s: '%s' is not a %s command.\nSee '%s --help'.\n", path, args->pos[0],
                path, path);
        return 1;
    }
    char *subpath = swm_asprintf("%s %s", path, sub->name);
    if (subpath == NULL) {
        fprintf(ctx->err, "out of memory\n");
        return 1;
    }
    int status = dispatch(ctx, sub, subpath, (int)args->n_pos - 1, args->pos + 1);
    swm_free(subpath);
    return status;
}

static int dispatch(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *path, int argc,
                    char **argv)
{
    struct swm_err err = {0};
    struct cli_args args = {0};
    int status;
    bool interspersed = cmd->subcmds == NULL && !(cmd->opts & CLI_CMD_NO_INTERSPERSE);
    int rc = cli_args_parse(cmd->flags, argc, argv, interspersed, &args, &err);
    if (rc < 0)
        return report(ctx, cmd, path, &err);
    if (cmd->subcmds != NULL) {
        status = dispatch_group(ctx, cmd, path, &args);
    } else if (args.help) {
        status = print_help(ctx, cmd, path) < 0 ? 1 : 0;
    } else if ((rc = check_arg_count(cmd, path, args.n_pos, &err)) < 0) {
        status = report_usage(ctx, cmd, path, &err, true);
    } else {
        rc = cmd->run(ctx, &args, &err);
        status = rc < 0 ? report(ctx, cmd, path, &err) : 0;
    }
    cli_args_free(&args);
    return status;
}

int cli_main(struct cli_ctx *ctx, const struct cli_cmd *root, int argc, char **argv)
{
    int status = dispatch(ctx, root, root->name, argc, argv);
    if (fflush(ctx->out) != 0 && status == 0)
        status = 1;
    fflush(ctx->err);
    return status;
}
