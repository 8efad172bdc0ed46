/* `swarmc node ...`: inspect, ls, ps, update. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "cli/json.h"
#include "cli/msg.h"
#include "cli/specflags.h"
#include "cli/table.h"
#include "cli/tasks.h"
#include "common/alloc.h"
#include "common/parse.h"
#include "common/sort.h"
#include "proto/codec.h"

#define B CLI_FLAG_BOOL
#define V CLI_FLAG_VALUE
#define L CLI_FLAG_LIST

static const char *hostname_of(const Swarmc__Node *n)
{
    return n->description != NULL && n->description->hostname != NULL ? n->description->hostname
                                                                      : "";
}

static Swarmc__NodeAvailability availability_of(const Swarmc__Node *n)
{
    return n->spec != NULL ? n->spec->availability
                           : SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
}

static Swarmc__NodeState state_of(const Swarmc__Node *n)
{
    return n->status != NULL ? n->status->state : SWARMC__NODE_STATE__NODE_STATE_UNKNOWN;
}

/* MANAGER STATUS: "Leader", "Reachable", "Unreachable", or empty. */
static void manager_status(const Swarmc__Node *n, char *buf, size_t len)
{
    buf[0] = '\0';
    if (n->manager_status == NULL)
        return;
    if (n->manager_status->leader)
        snprintf(buf, len, "Leader");
    else if (n->manager_status->reachability != NULL)
        cli_capitalize(n->manager_status->reachability, buf, len);
    else
        snprintf(buf, len, "Reachable");
}

/* -------------------------------------------------------------------- ls -- */

static int by_hostname(const void *a, const void *b)
{
    return strcmp(hostname_of(*(Swarmc__Node *const *)a), hostname_of(*(Swarmc__Node *const *)b));
}

/* `--filter id=|name=|role=`, applied here (the API lists all nodes). */
static int node_selected(const struct cli_args *args, const Swarmc__Node *n, bool *selected,
                         struct swm_err *err)
{
    const char *filter;
    size_t cursor = 0;
    *selected = true;
    while ((filter = cli_args_iter(args, "filter", &cursor)) != NULL) {
        char key[32];
        const char *v = cli_filter_split(filter, key, sizeof(key), err);
        if (v == NULL)
            return SWM_EINVAL_SPEC;
        if (strcmp(key, "id") == 0)
            *selected = *selected && n->id != NULL && strncmp(n->id, v, strlen(v)) == 0;
        else if (strcmp(key, "name") == 0)
            *selected = *selected && strncmp(hostname_of(n), v, strlen(v)) == 0;
        else if (strcmp(key, "role") == 0)
            *selected = *selected && strcmp(proto_node_role_name(n->role), v) == 0;
        else
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid filter '%s'", key);
    }
    return 0;
}

static int nodes_table(Swarmc__Node *const *nodes, size_t n, const char *self_id,
                       struct swm_buf *out)
{
    static const char *const header[] = {"ID",           "HOSTNAME",       "STATUS",
                                         "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"};
    struct cli_table t;
    cli_table_init(&t, 6);
    int rc = cli_table_add(&t, header);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const Swarmc__Node *node = nodes[i];
        char id[64], status[32], avail[32], mgr[32];
        bool self = self_id != NULL && node->id != NULL && strcmp(self_id, node->id) == 0;
        snprintf(id, sizeof(id), "%s%s", node->id != NULL ? node->id : "", self ? " *" : "");
        cli_capitalize(proto_node_state_name(state_of(node)), status, sizeof(status));
        cli_capitalize(proto_node_availability_name(availability_of(node)), avail, sizeof(avail));
        manager_status(node, mgr, sizeof(mgr));
        const char *cells[] = {
            id,     hostname_of(node),
            status, avail,
            mgr,    node->description != NULL ? node->description->engine_version : ""};
        rc = cli_table_add(&t, cells);
    }
    if (rc == 0)
        rc = cli_table_render(&t, out);
    cli_table_free(&t);
    return rc;
}

static int node_ls(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    enum cli_output format;
    Swarmc__ControlResponse *resp = NULL, *self = NULL;
    int rc = cli_output_format(args, &format, err);
    if (rc == 0)
        rc = cli_list_nodes(ctx, &resp, err);
    if (rc < 0)
        return rc;
    size_t kept = 0;
    for (size_t i = 0; i < resp->n_nodes; i++) {
        bool selected = false;
        if (rc == 0)
            rc = node_selected(args, resp->nodes[i], &selected, err);
        if (rc == 0 && selected)
            resp->nodes[kept++] = resp->nodes[i];
        else
            proto_free(resp->nodes[i]);
    }
    resp->n_nodes = kept;
    swm_sort(resp->nodes, kept, sizeof(*resp->nodes), by_hostname);
    struct swm_buf b = {0};
    struct swm_err ignored = {0};
    if (rc < 0) {
        /* nothing to print */
    } else if (cli_args_bool(args, "quiet")) {
        for (size_t i = 0; i < kept && rc == 0; i++)
            rc = swm_buf_printf(&b, "%s\n", resp->nodes[i]->id);
    } else if (format == CLI_OUT_JSON) {
        rc = cli_json_print(ctx->out, (const ProtobufCMessage *const *)resp->nodes, kept,
                            CLI_JSON_LINES);
    } else {
        /* The local node gets a star, as in docker. */
        if (cli_get_node(ctx, "self", &self, &ignored) < 0)
            self = NULL;
        rc = nodes_table(resp->nodes, kept, self != NULL ? self->nodes[0]->id : NULL, &b);
    }
    rc = cli_flush_buf(ctx->out, &b, rc, err);
    proto_free(resp);
    proto_free(self);
    return rc;
}

/* --------------------------------------------------------------- inspect -- */

static void node_pretty(struct cli_ctx *ctx, const Swarmc__Node *n)
{
    FILE *f = ctx->out;
    char buf[64];
    fprintf(f, "ID:\t\t\t%s\n", n->id != NULL ? n->id : "");
    if (n->spec != NULL && n->spec->annotations != NULL && n->spec->annotations->n_labels > 0) {
        fprintf(f, "Labels:\n");
        for (size_t i = 0; i < n->spec->annotations->n_labels; i++) {
            const Swarmc__KeyValue *kv = n->spec->annotations->labels[i];
            fprintf(f, " - %s=%s\n", kv->key, kv->value != NULL ? kv->value : "");
        }
    }
    fprintf(f, "Hostname:\t\t%s\n", hostname_of(n));
    if (n->meta != NULL && n->meta->created_at != 0) {
        cli_ago(ctx, n->meta->created_at, buf, sizeof(buf));
        fprintf(f, "Joined at:\t\t%s\n", buf);
    }
    cli_capitalize(proto_node_state_name(state_of(n)), buf, sizeof(buf));
    fprintf(f, "Status:\n State:\t\t\t%s\n", buf);
    cli_capitalize(proto_node_availability_name(availability_of(n)), buf, sizeof(buf));
    fprintf(f, " Availability:\t\t%s\n", buf);
    if (n->status != NULL && n->status->addr != NULL)
        fprintf(f, " Address:\t\t%s\n", n->status->addr);
    if (n->manager_status != NULL) {
        manager_status(n, buf, sizeof(buf));
        fprintf(f, "Manager Status:\n Address:\t\t%s\n Raft Status:\t\t%s\n Leader:\t\t%s\n",
                n->manager_status->addr != NULL ? n->manager_status->addr : "",
                n->manager_status->reachability != NULL ? n->manager_status->reachability
                                                        : "reachable",
                n->manager_status->leader ? "Yes" : "No");
    }
    const Swarmc__NodeDescription *d = n->description;
    if (d != NULL && d->platform != NULL)
        fprintf(f, "Platform:\n Operating System:\t%s\n Architecture:\t\t%s\n",
                d->platform->os != NULL ? d->platform->os : "",
                d->platform->architecture != NULL ? d->platform->architecture : "");
    if (d != NULL && d->resources != NULL) {
        swm_format_bytes(d->resources->memory_bytes, buf, sizeof(buf));
        fprintf(f, "Resources:\n CPUs:\t\t\t%g\n Memory:\t\t%s\n",
                (double)d->resources->nano_cpus / 1e9, buf);
    }
    if (d != NULL && d->engine_version != NULL)
        fprintf(f, "Engine Version:\t\t%s\n", d->engine_version);
}

static const ProtobufCMessage *pick_node(const Swarmc__ControlResponse *resp)
{
    return &resp->nodes[0]->base;
}

static void pretty_node(struct cli_ctx *ctx, const ProtobufCMessage *msg)
{
    node_pretty(ctx, (const Swarmc__Node *)msg);
}

static int node_inspect(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    return cli_inspect(ctx, args, cli_get_node, pick_node, pretty_node, err);
}

/* ---------------------------------------------------------------- update -- */

static int role_not_yet(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                        struct swm_err *err)
{
    if (strcmp(value, "worker") != 0 && strcmp(value, "manager") != 0)
        return cli_flag_error(err, flag, value, "must be one of \"worker\", \"manager\"");
    return swm_err_set(err, SWM_ENOTSUP,
                       "--role is not yet supported: to add a manager, join a node with the "
                       "manager token");
}

static const struct cli_choice availabilities[] = {
    {"active", SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE},
    {"pause", SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE},
    {"drain", SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN},
    {0},
};

/* Removals before additions, as docker applies them. */
static const struct cli_flag node_update_flags[] = {
    {"availability", 0, V, CLI_KIND_STRING, NULL,
     "Availability of the node (\"active\", \"pause\", \"drain\")",
     &(const struct cli_field_op){cli_op_set, "availability", availabilities}},
    {"label-rm", 0, L, CLI_KIND_STRING, NULL, "Remove a node label if exists",
     &(const struct cli_field_op){cli_op_kv_remove, "annotations.labels", NULL}},
    {"label-add", 0, L, CLI_KIND_STRING, NULL, "Add or update a node label (key=value)",
     &(const struct cli_field_op){cli_op_kv_set, "annotations.labels", NULL}},
    {"role", 0, V, CLI_KIND_STRING, NULL, "Role of the node (\"worker\", \"manager\")",
     &(const struct cli_field_op){role_not_yet, "desired_role", NULL}},
    {0},
};

static int node_update(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    const struct cli_flag *const tables[] = {node_update_flags, NULL};
    int rc = 0;
    /* Read, modify, write with the version read; once more if another
     * change came in between. */
    for (int attempt = 0; attempt < 2; attempt++) {
        Swarmc__ControlResponse *got = NULL, *resp = NULL;
        rc = cli_get_node(ctx, args->pos[0], &got, err);
        if (rc < 0)
            return rc;
        Swarmc__Node *node = got->nodes[0];
        if (node->spec == NULL)
            node->spec = (Swarmc__NodeSpec *)cli_msg_new(&swarmc__node_spec__descriptor);
        rc = node->spec != NULL ? cli_fields_apply(&node->spec->base, tables, args, err)
                                : swm_err_set(err, -ENOMEM, "out of memory");
        Swarmc__UpdateNodeRequest update = SWARMC__UPDATE_NODE_REQUEST__INIT;
        update.id = node->id;
        update.has_version = node->meta != NULL;
        update.version = node->meta != NULL ? node->meta->version : 0;
        update.spec = node->spec;
        CLI_REQUEST(req, update_node, UPDATE_NODE, &update);
        if (rc == 0)
            rc = cli_rpc(ctx, &req, &resp, err);
        proto_free(resp);
        proto_free(got);
        if (rc != SWM_ESTALE)
            break;
    }
    if (rc == 0)
        fprintf(ctx->out, "%s\n", args->pos[0]);
    return rc;
}

/* -------------------------------------------------------------------- ps -- */

static int node_ps(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    static char *const self[] = {"self"};
    char *const *refs = args->n_pos > 0 ? args->pos : self;
    size_t n_refs = args->n_pos > 0 ? args->n_pos : 1;
    Swarmc__ListTasksRequest list = SWARMC__LIST_TASKS_REQUEST__INIT;
    Swarmc__ControlResponse **nodes = swm_calloc(n_refs, sizeof(*nodes));
    list.node_refs = swm_calloc(n_refs, sizeof(*list.node_refs));
    int rc =
        nodes != NULL && list.node_refs != NULL ? 0 : swm_err_set(err, -ENOMEM, "out of memory");
    /* Resolve names and "self" to IDs first: an unknown node is an error,
     * not an empty list. */
    for (size_t i = 0; i < n_refs && rc == 0; i++) {
        rc = cli_get_node(ctx, refs[i], &nodes[i], err);
        if (rc == 0)
            list.node_refs[list.n_node_refs++] = nodes[i]->nodes[0]->id;
    }
    if (rc == 0)
        rc = cli_task_filter(args, &list, err);
    if (rc == 0)
        rc = cli_print_tasks(ctx, &list, args, err);
    for (size_t i = 0; nodes != NULL && i < n_refs; i++)
        proto_free(nodes[i]);
    swm_free(nodes);
    cli_task_filter_free(&list);
    return rc;
}

/* ----------------------------------------------------------------- table -- */

static const struct cli_flag ps_flags[] = {
    {"no-resolve", 0, B, CLI_KIND_BOOL, NULL, "Do not map IDs to Names", NULL},
    {0},
};

static const struct cli_flag rm_flags[] = {
    {"force", 'f', CLI_FLAG_BOOL, CLI_KIND_BOOL, NULL, "Force remove a node from the swarm", NULL},
    {0},
};

/* Removes each node; its certificate is revoked. Like `docker node rm`,
 * a node that is not down needs --force, and a manager must be demoted
 * first. */
static int node_rm(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    bool failed = false;
    for (size_t i = 0; i < args->n_pos; i++) {
        Swarmc__RemoveNodeRequest remove = SWARMC__REMOVE_NODE_REQUEST__INIT;
        remove.ref = args->pos[i];
        remove.has_force = 1;
        remove.force = cli_args_bool(args, "force");
        CLI_REQUEST(req, remove_node, REMOVE_NODE, &remove);
        Swarmc__ControlResponse *resp = NULL;
        struct swm_err one = {0};
        if (cli_rpc(ctx, &req, &resp, &one) < 0) {
            fprintf(ctx->err, "%s\n", one.msg);
            failed = true;
            continue;
        }
        proto_free(resp);
        fprintf(ctx->out, "%s\n", args->pos[i]);
    }
    return failed ? swm_err_set(err, SWM_ENOTFOUND, "%s", "") : 0;
}

const struct cli_cmd cli_node_cmds[] = {
    {"inspect", NULL, "[OPTIONS] self|NODE [NODE...]",
     "Display detailed information on one or more nodes",
     CLI_FLAGS(cli_flag_pretty, cli_flag_format), 1, -1, 0, node_inspect, NULL},
    {"ls", "list", "[OPTIONS]", "List nodes in the swarm",
     CLI_FLAGS(cli_flag_quiet_ids, cli_flag_format, cli_flag_filter), 0, 0, 0, node_ls, NULL},
    {"ps", NULL, "[OPTIONS] [NODE...]",
     "List tasks running on one or more nodes, defaults to current node",
     CLI_FLAGS(cli_flag_quiet_ids, cli_flag_no_trunc, cli_flag_filter, cli_flag_format, ps_flags),
     0, -1, 0, node_ps, NULL},
    {"rm", "remove", "[OPTIONS] NODE [NODE...]", "Remove one or more nodes from the swarm",
     CLI_FLAGS(rm_flags), 1, -1, 0, node_rm, NULL},
    {"update", NULL, "[OPTIONS] NODE", "Update a node", CLI_FLAGS(node_update_flags), 1, 1, 0,
     node_update, NULL},
    {0},
};
