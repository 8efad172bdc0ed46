/* Helpers shared by the command files (internal.h). */
#include "cli/internal.h"

#include <errno.h>
#include <string.h>

#include "cli/json.h"
#include "cli/tasks.h"
#include "common/alloc.h"
#include "common/parse.h"
#include "proto/codec.h"

#define B CLI_FLAG_BOOL
#define V CLI_FLAG_VALUE

const struct cli_flag cli_flag_format[] = {
    {"format", 0, V, CLI_KIND_STRING, NULL, "Format output: \"table\" (default) or \"json\"", NULL},
    {0},
};
const struct cli_flag cli_flag_quiet_ids[] = {
    {"quiet", 'q', B, CLI_KIND_BOOL, NULL, "Only display IDs", NULL},
    {0},
};
const struct cli_flag cli_flag_pretty[] = {
    {"pretty", 0, B, CLI_KIND_BOOL, NULL, "Print the information in a human friendly format", NULL},
    {0},
};
const struct cli_flag cli_flag_no_trunc[] = {
    {"no-trunc", 0, B, CLI_KIND_BOOL, NULL, "Do not truncate output", NULL},
    {0},
};
const struct cli_flag cli_flag_filter[] = {
    {"filter", 'f', CLI_FLAG_LIST, CLI_KIND_STRING, "filter",
     "Filter output based on conditions provided", NULL},
    {0},
};
const struct cli_flag cli_flag_detach[] = {
    {"detach", 'd', B, CLI_KIND_BOOL, NULL,
     "Exit immediately instead of waiting for the service to converge", NULL},
    {0},
};

int cli_output_format(const struct cli_args *args, enum cli_output *out, struct swm_err *err)
{
    const char *f = cli_args_value(args, "format");
    if (f == NULL || strcmp(f, "table") == 0 || f[0] == '\0') {
        *out = CLI_OUT_TABLE;
        return 0;
    }
    if (strcmp(f, "json") == 0 || strcmp(f, "{{json .}}") == 0) {
        *out = CLI_OUT_JSON;
        return 0;
    }
    return swm_err_set(err, SWM_ENOTSUP,
                       "format \"%s\" is not yet supported: use \"table\" or \"json\"", f);
}

int cli_flush_buf(FILE *f, struct swm_buf *b, int rc, struct swm_err *err)
{
    if (rc == 0 && b->len > 0)
        fwrite(b->data, 1, b->len, f);
    swm_buf_free(b);
    if (rc < 0 && (err == NULL || err->code == 0))
        swm_err_set(err, rc, "%s", swm_strerror(rc));
    return rc;
}

const char *cli_filter_split(const char *filter, char *key, size_t len, struct swm_err *err)
{
    const char *eq = strchr(filter, '=');
    if (eq == NULL || eq == filter) {
        swm_err_set(err, SWM_EINVAL_SPEC, "bad format of filter (expected name=value)");
        return NULL;
    }
    snprintf(key, len, "%.*s", (int)(eq - filter), filter);
    return eq + 1;
}

void cli_ago(const struct cli_ctx *ctx, int64_t ns, char *buf, size_t len)
{
    swm_format_ago(ns, ctx->now_ns(), buf, len);
}

/* ---------------------------------------------------------- requests -- */

int cli_list_nodes(struct cli_ctx *ctx, Swarmc__ControlResponse **resp, struct swm_err *err)
{
    Swarmc__ListNodesRequest list = SWARMC__LIST_NODES_REQUEST__INIT;
    CLI_REQUEST(req, list_nodes, LIST_NODES, &list);
    return cli_rpc(ctx, &req, resp, err);
}

int cli_get_node(struct cli_ctx *ctx, const char *ref, Swarmc__ControlResponse **resp,
                 struct swm_err *err)
{
    Swarmc__GetNodeRequest get = SWARMC__GET_NODE_REQUEST__INIT;
    get.ref = (char *)ref;
    CLI_REQUEST(req, get_node, GET_NODE, &get);
    int rc = cli_rpc(ctx, &req, resp, err);
    if (rc == 0 && (*resp)->n_nodes == 0) {
        proto_free(*resp);
        return swm_err_set(err, SWM_ENOTFOUND, "Error response from daemon: node %s not found",
                           ref);
    }
    return rc;
}

int cli_get_service(struct cli_ctx *ctx, const char *ref, Swarmc__ControlResponse **resp,
                    struct swm_err *err)
{
    Swarmc__GetServiceRequest get = SWARMC__GET_SERVICE_REQUEST__INIT;
    get.ref = (char *)ref;
    CLI_REQUEST(req, get_service, GET_SERVICE, &get);
    int rc = cli_rpc(ctx, &req, resp, err);
    if (rc == 0 && ((*resp)->n_services == 0 || (*resp)->services[0]->spec == NULL)) {
        proto_free(*resp);
        return swm_err_set(err, SWM_ENOTFOUND, "Error response from daemon: service %s not found",
                           ref);
    }
    return rc;
}

int cli_list_tasks(struct cli_ctx *ctx, const Swarmc__ListTasksRequest *list,
                   Swarmc__ControlResponse **resp, struct swm_err *err)
{
    CLI_REQUEST(req, list_tasks, LIST_TASKS, (Swarmc__ListTasksRequest *)list);
    return cli_rpc(ctx, &req, resp, err);
}

/* ------------------------------------------------------ task listings -- */

static int push_ptr(void ***items, size_t *n, void *item)
{
    void **grown = swm_realloc(*items, (*n + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    grown[(*n)++] = item;
    *items = grown;
    return 0;
}

static int desired_state_of(const char *name, Swarmc__TaskState *out)
{
    static const Swarmc__TaskState accepted[] = {
        SWARMC__TASK_STATE__TASK_STATE_RUNNING,  SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN,
        SWARMC__TASK_STATE__TASK_STATE_ACCEPTED, SWARMC__TASK_STATE__TASK_STATE_READY,
        SWARMC__TASK_STATE__TASK_STATE_COMPLETE, SWARMC__TASK_STATE__TASK_STATE_REMOVE,
    };
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        if (strcmp(proto_task_state_name(accepted[i]), name) == 0) {
            *out = accepted[i];
            return 0;
        }
    }
    return -EINVAL;
}

int cli_task_filter(const struct cli_args *args, Swarmc__ListTasksRequest *list,
                    struct swm_err *err)
{
    const char *filter;
    size_t cursor = 0;
    while ((filter = cli_args_iter(args, "filter", &cursor)) != NULL) {
        char key[32];
        const char *value = cli_filter_split(filter, key, sizeof(key), err);
        int rc = 0;
        if (value == NULL)
            return SWM_EINVAL_SPEC;
        if (strcmp(key, "desired-state") == 0) {
            Swarmc__TaskState s;
            if (desired_state_of(value, &s) < 0)
                return swm_err_set(err, SWM_EINVAL_SPEC,
                                   "Invalid desired-state filter value \"%s\": use running, "
                                   "shutdown or accepted",
                                   value);
            Swarmc__TaskState *grown =
                swm_realloc(list->desired_states, (list->n_desired_states + 1) * sizeof(*grown));
            if (grown == NULL)
                return swm_err_set(err, -ENOMEM, "out of memory");
            grown[list->n_desired_states++] = s;
            list->desired_states = grown;
        } else if (strcmp(key, "node") == 0) {
            rc = push_ptr((void ***)&list->node_refs, &list->n_node_refs, (void *)value);
        } else if (strcmp(key, "id") == 0) {
            rc = push_ptr((void ***)&list->id_prefixes, &list->n_id_prefixes, (void *)value);
        } else if (strcmp(key, "name") != 0) {
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid filter '%s'", key);
        }
        if (rc < 0)
            return swm_err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

void cli_task_filter_free(Swarmc__ListTasksRequest *list)
{
    swm_free(list->desired_states);
    swm_free(list->node_refs);
    swm_free(list->id_prefixes);
    list->desired_states = NULL;
    list->node_refs = NULL;
    list->id_prefixes = NULL;
}

/* `--filter name=web.1`: tasks whose name starts with one of the values. */
static bool name_selected(const struct cli_args *args, const Swarmc__Task *t)
{
    const char *filter;
    size_t cursor = 0;
    bool any = false;
    char name[256];
    cli_task_name(t, name, sizeof(name));
    while ((filter = cli_args_iter(args, "filter", &cursor)) != NULL) {
        if (strncmp(filter, "name=", 5) != 0)
            continue;
        any = true;
        if (strncmp(name, filter + 5, strlen(filter + 5)) == 0)
            return true;
    }
    return !any;
}

int cli_print_tasks(struct cli_ctx *ctx, const Swarmc__ListTasksRequest *list,
                    const struct cli_args *args, struct swm_err *err)
{
    enum cli_output format = CLI_OUT_TABLE;
    int rc = cli_output_format(args, &format, err);
    if (rc < 0)
        return rc;
    Swarmc__ControlResponse *tasks = NULL, *nodes = NULL;
    rc = cli_list_tasks(ctx, list, &tasks, err);
    if (rc < 0)
        return rc;
    /* Hostnames are a nicety: list the tasks even if nodes fail. */
    struct swm_err ignored = {0};
    if (cli_list_nodes(ctx, &nodes, &ignored) < 0)
        nodes = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < tasks->n_tasks; i++) {
        if (name_selected(args, tasks->tasks[i]))
            tasks->tasks[kept++] = tasks->tasks[i];
        else
            proto_free(tasks->tasks[i]);
    }
    tasks->n_tasks = kept;
    struct swm_buf b = {0};
    if (format == CLI_OUT_JSON) {
        rc = cli_json_print(ctx->out, (const ProtobufCMessage *const *)tasks->tasks, tasks->n_tasks,
                            CLI_JSON_LINES);
    } else {
        struct cli_tasks_opts opts = {
            .no_trunc = cli_args_bool(args, "no-trunc"),
            .quiet = cli_args_bool(args, "quiet"),
            .no_resolve = cli_args_bool(args, "no-resolve"),
            .now_ns = ctx->now_ns(),
        };
        rc = cli_tasks_render(tasks->tasks, tasks->n_tasks, nodes != NULL ? nodes->nodes : NULL,
                              nodes != NULL ? nodes->n_nodes : 0, &opts, &b);
    }
    rc = cli_flush_buf(ctx->out, &b, rc, err);
    proto_free(tasks);
    proto_free(nodes);
    return rc;
}

/* ----------------------------------------------------------- inspect -- */

int cli_inspect(struct cli_ctx *ctx, const struct cli_args *args, cli_get_fn get, cli_pick_fn pick,
                cli_pretty_fn pretty, struct swm_err *err)
{
    enum cli_output format = CLI_OUT_TABLE;
    int rc = cli_output_format(args, &format, err);
    if (rc < 0)
        return rc;
    bool as_pretty = cli_args_bool(args, "pretty");
    Swarmc__ControlResponse **found = swm_calloc(args->n_pos, sizeof(*found));
    const ProtobufCMessage **msgs = swm_calloc(args->n_pos, sizeof(*msgs));
    if (found == NULL || msgs == NULL) {
        swm_free(found);
        swm_free(msgs);
        return swm_err_set(err, -ENOMEM, "out of memory");
    }
    size_t n = 0;
    bool failed = false;
    for (size_t i = 0; i < args->n_pos; i++) {
        struct swm_err one = {0};
        if (get(ctx, args->pos[i], &found[i], &one) < 0) {
            fprintf(ctx->err, "%s\n", one.msg);
            failed = true;
            continue;
        }
        msgs[n++] = pick(found[i]);
        if (as_pretty)
            pretty(ctx, msgs[n - 1]);
    }
    if (!as_pretty)
        rc = cli_json_print(ctx->out, msgs, n,
                            format == CLI_OUT_JSON ? CLI_JSON_COMPACT : CLI_JSON_INDENTED);
    for (size_t i = 0; i < args->n_pos; i++)
        proto_free(found[i]);
    swm_free(found);
    swm_free(msgs);
    if (rc < 0)
        return swm_err_set(err, rc, "writing output: %s", swm_strerror(rc));
    return failed ? swm_err_set(err, SWM_ENOTFOUND, "%s", "") : 0;
}
