/* `swarmc service ...`: create, inspect, logs, ls, ps, rm, rollback, scale,
 * update. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/client.h"
#include "cli/internal.h"
#include "cli/json.h"
#include "cli/progress.h"
#include "cli/specflags.h"
#include "cli/table.h"
#include "cli/tasks.h"
#include "common/alloc.h"
#include "common/parse.h"
#include "common/sort.h"
#include "common/timeutil.h"
#include "proto/codec.h"

#define B CLI_FLAG_BOOL
#define V CLI_FLAG_VALUE

/* ------------------------------------------------- waiting for tasks -- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / SWM_NS_PER_SEC, ns % SWM_NS_PER_SEC};
    nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

/* Docker waits this long after convergence before calling a service stable,
 * unless the spec's update monitor says otherwise. */
static int64_t monitor_of(const Swarmc__Service *svc)
{
    const Swarmc__UpdateConfig *u = svc->spec != NULL ? svc->spec->update : NULL;
    return u != NULL && u->has_monitor && u->monitor > 0 ? u->monitor : 5 * SWM_NS_PER_SEC;
}

/* What the service's update status says about waiting (docker's rules).
 * Returns 0 to go on, or an error that ends the wait. */
static int update_status_check(const Swarmc__Service *svc, bool converged, bool *rollback,
                               struct cli_progress *extra, struct swm_err *err)
{
    const Swarmc__UpdateStatus *us = svc->update_status;
    if (us == NULL || !us->has_state)
        return 0;
    const char *msg = us->message != NULL ? us->message : "";
    switch (us->state) {
    case SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_UPDATING:
        *rollback = false;
        return 0;
    case SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_PAUSED:
        return swm_err_set(err, SWM_EEXEC, "service update paused: %s", msg);
    case SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_STARTED:
        if (!*rollback && msg[0] != '\0')
            cli_progress_add(extra, "rollback", "%s", msg);
        *rollback = true;
        return 0;
    case SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_PAUSED:
        return swm_err_set(err, SWM_EEXEC, "service rollback paused: %s", msg);
    case SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_COMPLETED:
        if (!converged)
            return swm_err_set(err, SWM_EEXEC, "service rolled back: %s", msg);
        return 0;
    default:
        return 0;
    }
}

/* One poll: the service, its tasks and the nodes, into a progress frame. */
static int poll_progress(struct cli_ctx *ctx, const char *id, bool *rollback, bool converged,
                         struct cli_progress *p, int64_t *monitor, struct swm_err *err)
{
    Swarmc__ControlResponse *svc = NULL, *tasks = NULL, *nodes = NULL;
    struct cli_progress extra = {0};
    char *refs[] = {(char *)id};
    Swarmc__ListTasksRequest list = SWARMC__LIST_TASKS_REQUEST__INIT;
    list.service_refs = refs;
    list.n_service_refs = 1;
    int rc = cli_get_service(ctx, id, &svc, err);
    if (rc == 0)
        rc = update_status_check(svc->services[0], converged, rollback, &extra, err);
    if (rc == 0)
        rc = cli_list_tasks(ctx, &list, &tasks, err);
    struct swm_err ignored = {0};
    if (rc == 0 && cli_list_nodes(ctx, &nodes, &ignored) < 0)
        nodes = NULL;
    if (rc == 0) {
        *monitor = monitor_of(svc->services[0]);
        rc = cli_progress_compute(svc->services[0], tasks->tasks, tasks->n_tasks,
                                  nodes != NULL ? nodes->nodes : NULL,
                                  nodes != NULL ? nodes->n_nodes : 0, *rollback, p);
        if (rc < 0)
            swm_err_set(err, rc, "out of memory");
    }
    for (size_t i = 0; rc == 0 && i < extra.n_lines; i++)
        cli_progress_add(p, extra.lines[i].id, "%s", extra.lines[i].text);
    proto_free(svc);
    proto_free(tasks);
    proto_free(nodes);
    return rc;
}

/* Shows the progress of service `id` until it has converged and stayed so
 * for the monitor period (docker's waitOnService). Ctrl-C stops waiting,
 * not the service. */
static int wait_converged(struct cli_ctx *ctx, const char *id, bool quiet, struct swm_err *err)
{
    struct cli_progress_display display;
    cli_progress_display_init(&display, ctx->tty);
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    int64_t start = swm_mono_ns(), converged_at = 0, monitor = 5 * SWM_NS_PER_SEC;
    bool converged = false, rollback = false;
    int rc = 0;
    for (;;) {
        struct cli_progress p;
        rc = poll_progress(ctx, id, &rollback, converged, &p, &monitor, err);
        if (rc < 0)
            break;
        int64_t now = swm_mono_ns();
        bool done = converged && p.converged && now - converged_at >= monitor;
        converged = p.converged;
        if (done) {
            cli_progress_add(&p, "verify", "Service %s converged", id);
        } else if (converged) {
            converged_at = converged_at == 0 ? now : converged_at;
            int64_t wait = monitor - (now - converged_at);
            cli_progress_add(&p, "verify",
                             "Waiting %lld seconds to verify that tasks are stable...",
                             (long long)(wait / SWM_NS_PER_SEC + 1));
        } else if (converged_at != 0) {
            cli_progress_add(&p, "verify", "Detected task failure");
            converged_at = 0;
        }
        if (!quiet)
            cli_progress_display_show(&display, ctx->out, &p);
        if (done)
            break;
        if (interrupted) {
            fprintf(ctx->out,
                    "Operation continuing in background.\n"
                    "Use `swarmc service ps %s` to check progress.\n",
                    id);
            break;
        }
        if (now - start > ctx->wait_timeout_ns) {
            char limit[32];
            swm_format_duration(ctx->wait_timeout_ns, limit, sizeof(limit));
            rc = swm_err_set(err, -ETIMEDOUT,
                             "service %s did not converge within %s; it goes on in the background "
                             "(see `swarmc service ps %s`)",
                             id, limit, id);
            break;
        }
        sleep_ns(ctx->poll_interval_ns);
    }
    sigaction(SIGINT, &old, NULL);
    return rc;
}

/* ------------------------------------------------------------ create -- */

static int service_create(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    Swarmc__ServiceSpec *spec = NULL;
    int rc = cli_spec_create(args, &spec, err);
    if (rc < 0)
        return rc;
    Swarmc__CreateServiceRequest create = SWARMC__CREATE_SERVICE_REQUEST__INIT;
    create.spec = spec;
    CLI_REQUEST(req, create_service, CREATE_SERVICE, &create);
    Swarmc__ControlResponse *resp = NULL;
    rc = cli_rpc(ctx, &req, &resp, err);
    proto_free(spec);
    if (rc < 0)
        return rc;
    if (resp->n_services == 0 || resp->services[0]->id == NULL) {
        proto_free(resp);
        return swm_err_set(err, SWM_EPROTO, "the daemon did not return the new service");
    }
    char *id = swm_strdup(resp->services[0]->id);
    proto_free(resp);
    if (id == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    fprintf(ctx->out, "%s\n", id);
    fflush(ctx->out);
    if (!cli_args_bool(args, "detach"))
        rc = wait_converged(ctx, id, cli_args_bool(args, "quiet"), err);
    swm_free(id);
    return rc;
}

/* ------------------------------------------- read, modify and write -- */

/* Edits the service read from the daemon (and the request) before the
 * update is sent. */
typedef int (*service_edit_fn)(const void *arg, Swarmc__Service *svc,
                               Swarmc__UpdateServiceRequest *update, struct swm_err *err);

/* Reads service ref, lets edit change it and sends the update with the
 * version read; retries once if another update came in between (the
 * daemon answers SWM_ESTALE). Returns the service id in *id (caller frees)
 * or NULL with an error. */
static int service_rmw(struct cli_ctx *ctx, const char *ref, service_edit_fn edit, const void *arg,
                       char **id, struct swm_err *err)
{
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        Swarmc__ControlResponse *got = NULL, *resp = NULL;
        rc = cli_get_service(ctx, ref, &got, err);
        if (rc < 0)
            return rc;
        Swarmc__Service *svc = got->services[0];
        Swarmc__UpdateServiceRequest update = SWARMC__UPDATE_SERVICE_REQUEST__INIT;
        update.id = svc->id;
        update.has_version = svc->meta != NULL;
        update.version = svc->meta != NULL ? svc->meta->version : 0;
        rc = edit(arg, svc, &update, err);
        update.spec = svc->spec;
        CLI_REQUEST(req, update_service, UPDATE_SERVICE, &update);
        if (rc == 0)
            rc = cli_rpc(ctx, &req, &resp, err);
        if (rc == 0) {
            *id = swm_strdup(svc->id != NULL ? svc->id : ref);
            rc = *id == NULL ? swm_err_set(err, -ENOMEM, "out of memory") : 0;
        }
        proto_free(resp);
        proto_free(got);
        if (rc != SWM_ESTALE)
            break;
    }
    return rc;
}

/* Runs a read-modify-write on args->pos[0], prints the ref as docker does,
 * then follows the progress unless --detach. */
static int update_and_wait(struct cli_ctx *ctx, const struct cli_args *args, service_edit_fn edit,
                           struct swm_err *err)
{
    char *id = NULL;
    int rc = service_rmw(ctx, args->pos[0], edit, args, &id, err);
    if (rc < 0)
        return rc;
    fprintf(ctx->out, "%s\n", args->pos[0]);
    fflush(ctx->out);
    if (!cli_args_bool(args, "detach"))
        rc = wait_converged(ctx, id, cli_args_bool(args, "quiet"), err);
    swm_free(id);
    return rc;
}

static int edit_from_flags(const void *arg, Swarmc__Service *svc,
                           Swarmc__UpdateServiceRequest *update, struct swm_err *err)
{
    const struct cli_args *args = arg;
    if (cli_args_bool(args, "rollback")) {
        update->has_rollback = 1;
        update->rollback = 1;
        return 0;
    }
    return cli_spec_update(svc->spec, args, err);
}

static int edit_rollback(const void *arg, Swarmc__Service *svc,
                         Swarmc__UpdateServiceRequest *update, struct swm_err *err)
{
    if (svc->previous_spec == NULL)
        return swm_err_set(err, SWM_EINVAL_SPEC,
                           "Error response from daemon: service %s does not have a previous spec",
                           svc->id);
    update->has_rollback = 1;
    update->rollback = 1;
    return 0;
}

static int service_update(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    return update_and_wait(ctx, args, edit_from_flags, err);
}

static int service_rollback(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    return update_and_wait(ctx, args, edit_rollback, err);
}

/* ------------------------------------------------------------- scale -- */

static int edit_replicas(const void *arg, Swarmc__Service *svc,
                         Swarmc__UpdateServiceRequest *update, struct swm_err *err)
{
    const uint64_t *replicas = arg;
    if (svc->spec->has_mode && svc->spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL)
        return swm_err_set(err, SWM_EINVAL_SPEC, "scale can only be used with replicated mode");
    svc->spec->has_replicas = 1;
    svc->spec->replicas = *replicas;
    return 0;
}

static int service_scale(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    /* Check every argument before changing anything, as docker does. */
    uint64_t *replicas = swm_calloc(args->n_pos, sizeof(*replicas));
    if (replicas == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < args->n_pos && rc == 0; i++) {
        const char *eq = strchr(args->pos[i], '=');
        if (eq == NULL || eq == args->pos[i])
            rc = swm_err_set(err, CLI_EUSAGE, "invalid scale specifier '%s'.", args->pos[i]);
        else if (swm_parse_uint(eq + 1, UINT64_MAX, &replicas[i]) < 0)
            rc = swm_err_set(err, CLI_EUSAGE,
                             "invalid replicas value %s: strconv.ParseUint: parsing \"%s\": "
                             "invalid syntax",
                             eq + 1, eq + 1);
    }
    char **ids = rc == 0 ? swm_calloc(args->n_pos, sizeof(*ids)) : NULL;
    if (rc == 0 && ids == NULL)
        rc = swm_err_set(err, -ENOMEM, "out of memory");
    bool failed = false;
    for (size_t i = 0; rc == 0 && i < args->n_pos; i++) {
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(args->pos[i], "="), args->pos[i]);
        struct swm_err one = {0};
        if (service_rmw(ctx, name, edit_replicas, &replicas[i], &ids[i], &one) < 0) {
            fprintf(ctx->err, "%s: %s\n", name, one.msg);
            failed = true;
            continue;
        }
        fprintf(ctx->out, "%s scaled to %llu\n", name, (unsigned long long)replicas[i]);
    }
    for (size_t i = 0; rc == 0 && i < args->n_pos; i++) {
        if (ids[i] != NULL && !cli_args_bool(args, "detach"))
            rc = wait_converged(ctx, ids[i], false, err);
    }
    for (size_t i = 0; ids != NULL && i < args->n_pos; i++)
        swm_free(ids[i]);
    swm_free(ids);
    swm_free(replicas);
    if (rc == 0 && failed)
        rc = swm_err_set(err, SWM_EINVAL_SPEC, "%s", "");
    return rc;
}

/* ---------------------------------------------------------------- rm -- */

static int service_rm(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    bool failed = false;
    for (size_t i = 0; i < args->n_pos; i++) {
        Swarmc__RemoveServiceRequest remove = SWARMC__REMOVE_SERVICE_REQUEST__INIT;
        remove.ref = args->pos[i];
        CLI_REQUEST(req, remove_service, REMOVE_SERVICE, &remove);
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

/* ---------------------------------------------------------------- ls -- */

static int service_list_request(const struct cli_args *args, Swarmc__ListServicesRequest *list,
                                const char **mode, struct swm_err *err)
{
    const char *filter;
    size_t cursor = 0;
    while ((filter = cli_args_iter(args, "filter", &cursor)) != NULL) {
        char key[32];
        const char *value = cli_filter_split(filter, key, sizeof(key), err);
        void ***items = NULL;
        size_t *n = NULL;
        void *item = (void *)value;
        if (value == NULL)
            return SWM_EINVAL_SPEC;
        if (strcmp(key, "name") == 0) {
            items = (void ***)&list->names;
            n = &list->n_names;
        } else if (strcmp(key, "id") == 0) {
            items = (void ***)&list->id_prefixes;
            n = &list->n_id_prefixes;
        } else if (strcmp(key, "mode") == 0) {
            if (strcmp(value, "replicated") != 0 && strcmp(value, "global") != 0)
                return swm_err_set(err, SWM_EINVAL_SPEC, "Invalid filter 'mode=%s'", value);
            *mode = value;
            continue;
        } else if (strcmp(key, "label") == 0) {
            Swarmc__KeyValue *kv = swm_malloc(sizeof(*kv));
            if (kv == NULL)
                return swm_err_set(err, -ENOMEM, "out of memory");
            swarmc__key_value__init(kv);
            kv->key = swm_strndup(value, strcspn(value, "="));
            kv->value = strchr(value, '=') != NULL ? strchr(value, '=') + 1 : NULL;
            if (kv->key == NULL) {
                swm_free(kv);
                return swm_err_set(err, -ENOMEM, "out of memory");
            }
            items = (void ***)&list->labels;
            n = &list->n_labels;
            item = kv;
        } else {
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid filter '%s'", key);
        }
        void **grown = swm_realloc(*items, (*n + 1) * sizeof(*grown));
        if (grown == NULL)
            return swm_err_set(err, -ENOMEM, "out of memory");
        grown[(*n)++] = item;
        *items = grown;
    }
    return 0;
}

static void service_list_free(Swarmc__ListServicesRequest *list)
{
    for (size_t i = 0; i < list->n_labels; i++) {
        swm_free(list->labels[i]->key);
        swm_free(list->labels[i]);
    }
    swm_free(list->labels);
    swm_free(list->names);
    swm_free(list->id_prefixes);
}

static bool node_down(const Swarmc__ControlResponse *nodes, const char *id)
{
    for (size_t i = 0; nodes != NULL && id != NULL && i < nodes->n_nodes; i++) {
        const Swarmc__Node *n = nodes->nodes[i];
        if (n->id != NULL && strcmp(n->id, id) == 0)
            return n->status != NULL && n->status->state == SWARMC__NODE_STATE__NODE_STATE_DOWN;
    }
    return false;
}

/* REPLICAS as docker shows it: "running/desired", global "running/nodes". */
static void replicas_cell(const Swarmc__Service *svc, const Swarmc__ControlResponse *tasks,
                          const Swarmc__ControlResponse *nodes, char *buf, size_t len)
{
    uint64_t running = 0, desired = 0;
    for (size_t i = 0; tasks != NULL && i < tasks->n_tasks; i++) {
        const Swarmc__Task *t = tasks->tasks[i];
        if (t->service_id == NULL || svc->id == NULL || strcmp(t->service_id, svc->id) != 0 ||
            t->desired_state != SWARMC__TASK_STATE__TASK_STATE_RUNNING ||
            node_down(nodes, t->node_id))
            continue;
        desired++;
        if (t->status != NULL && t->status->state == SWARMC__TASK_STATE__TASK_STATE_RUNNING)
            running++;
    }
    const Swarmc__ServiceSpec *spec = svc->spec;
    bool global = spec->has_mode && spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    if (!global)
        desired = spec->has_replicas ? spec->replicas : 1;
    int n =
        snprintf(buf, len, "%llu/%llu", (unsigned long long)running, (unsigned long long)desired);
    const Swarmc__Placement *pl = spec->task != NULL ? spec->task->placement : NULL;
    if (!global && pl != NULL && pl->max_replicas > 0 && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " (max %llu per node)",
                 (unsigned long long)pl->max_replicas);
}

/* PORTS: "*:8080->80/tcp, *:53->53/udp". */
static void ports_cell(const Swarmc__ServiceSpec *spec, char *buf, size_t len)
{
    static const char *const protocols[] = {"tcp", "udp", "sctp"};
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; spec->endpoint != NULL && i < spec->endpoint->n_ports && used < len; i++) {
        const Swarmc__PortConfig *p = spec->endpoint->ports[i];
        const char *proto = (unsigned)p->protocol < 3 ? protocols[p->protocol] : "tcp";
        const char *sep = used > 0 ? ", " : "";
        int n = p->published_port != 0
                    ? snprintf(buf + used, len - used, "%s*:%u->%u/%s", sep, p->published_port,
                               p->target_port, proto)
                    : snprintf(buf + used, len - used, "%s%u/%s", sep, p->target_port, proto);
        used += n > 0 ? (size_t)n : 0;
    }
}

static int by_service_name(const void *a, const void *b)
{
    const Swarmc__Service *sa = *(Swarmc__Service *const *)a;
    const Swarmc__Service *sb = *(Swarmc__Service *const *)b;
    const char *na = sa->spec->annotations != NULL && sa->spec->annotations->name != NULL
                         ? sa->spec->annotations->name
                         : "";
    const char *nb = sb->spec->annotations != NULL && sb->spec->annotations->name != NULL
                         ? sb->spec->annotations->name
                         : "";
    return strcmp(na, nb);
}

static int services_table(const Swarmc__ControlResponse *services,
                          const Swarmc__ControlResponse *tasks,
                          const Swarmc__ControlResponse *nodes, struct swm_buf *out)
{
    static const char *const header[] = {"ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"};
    struct cli_table t;
    cli_table_init(&t, 6);
    int rc = cli_table_add(&t, header);
    for (size_t i = 0; i < services->n_services && rc == 0; i++) {
        const Swarmc__Service *svc = services->services[i];
        const Swarmc__ServiceSpec *spec = svc->spec;
        char id[16], replicas[64], image[256], ports[512];
        snprintf(id, sizeof(id), "%.12s", svc->id != NULL ? svc->id : "");
        replicas_cell(svc, tasks, nodes, replicas, sizeof(replicas));
        cli_image_short(
            spec->task != NULL && spec->task->container != NULL ? spec->task->container->image : "",
            image, sizeof(image));
        ports_cell(spec, ports, sizeof(ports));
        bool global = spec->has_mode && spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
        const char *cells[] = {id,
                               spec->annotations != NULL ? spec->annotations->name : "",
                               global ? "global" : "replicated",
                               replicas,
                               image,
                               ports};
        rc = cli_table_add(&t, cells);
    }
    if (rc == 0)
        rc = cli_table_render(&t, out);
    cli_table_free(&t);
    return rc;
}

static int service_ls(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    enum cli_output format;
    const char *mode = NULL;
    Swarmc__ListServicesRequest list = SWARMC__LIST_SERVICES_REQUEST__INIT;
    Swarmc__ControlResponse *services = NULL, *tasks = NULL, *nodes = NULL;
    int rc = cli_output_format(args, &format, err);
    if (rc == 0)
        rc = service_list_request(args, &list, &mode, err);
    CLI_REQUEST(req, list_services, LIST_SERVICES, &list);
    if (rc == 0)
        rc = cli_rpc(ctx, &req, &services, err);
    service_list_free(&list);
    if (rc < 0)
        return rc;
    /* Keep what has a spec and the asked-for mode, sorted by name. */
    size_t kept = 0;
    for (size_t i = 0; i < services->n_services; i++) {
        Swarmc__Service *svc = services->services[i];
        bool global = svc->spec != NULL && svc->spec->has_mode &&
                      svc->spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
        if (svc->spec == NULL || (mode != NULL && strcmp(mode, global ? "global" : "replicated")))
            proto_free(svc);
        else
            services->services[kept++] = svc;
    }
    services->n_services = kept;
    swm_sort(services->services, kept, sizeof(*services->services), by_service_name);

    struct swm_buf b = {0};
    if (cli_args_bool(args, "quiet")) {
        for (size_t i = 0; i < kept && rc == 0; i++)
            rc = swm_buf_printf(&b, "%.12s\n", services->services[i]->id);
    } else if (format == CLI_OUT_JSON) {
        rc = cli_json_print(ctx->out, (const ProtobufCMessage *const *)services->services, kept,
                            CLI_JSON_LINES);
    } else {
        Swarmc__TaskState running = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
        Swarmc__ListTasksRequest tl = SWARMC__LIST_TASKS_REQUEST__INIT;
        tl.desired_states = &running;
        tl.n_desired_states = 1;
        struct swm_err ignored = {0};
        /* Without tasks or nodes the counts are still worth showing. */
        if (kept > 0 && cli_list_tasks(ctx, &tl, &tasks, &ignored) < 0)
            tasks = NULL;
        if (kept > 0 && cli_list_nodes(ctx, &nodes, &ignored) < 0)
            nodes = NULL;
        rc = services_table(services, tasks, nodes, &b);
    }
    rc = cli_flush_buf(ctx->out, &b, rc, err);
    proto_free(services);
    proto_free(tasks);
    proto_free(nodes);
    return rc;
}

/* ---------------------------------------------------------------- ps -- */

static int service_ps(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    Swarmc__ListTasksRequest list = SWARMC__LIST_TASKS_REQUEST__INIT;
    list.service_refs = args->pos;
    list.n_service_refs = args->n_pos;
    int rc = cli_task_filter(args, &list, err);
    if (rc == 0)
        rc = cli_print_tasks(ctx, &list, args, err);
    cli_task_filter_free(&list);
    return rc;
}

/* ----------------------------------------------------------- inspect -- */

static void pretty_duration(FILE *f, const char *label, bool has, int64_t ns)
{
    char d[32];
    if (!has)
        return;
    swm_format_duration(ns, d, sizeof(d));
    fprintf(f, "%s%s\n", label, d);
}

static void pretty_update_config(FILE *f, const char *title, const char *order_label,
                                 const Swarmc__UpdateConfig *u)
{
    static const char *const actions[] = {"pause", "continue", "rollback"};
    fprintf(f, "%s:\n", title);
    fprintf(f, " Parallelism:\t%llu\n",
            (unsigned long long)(u != NULL && u->has_parallelism ? u->parallelism : 1));
    pretty_duration(f, " Delay:\t\t", u != NULL && u->has_delay && u->delay > 0,
                    u != NULL ? u->delay : 0);
    fprintf(f, " On failure:\t%s\n",
            u != NULL && (unsigned)u->failure_action < 3 ? actions[u->failure_action] : "pause");
    pretty_duration(f, " Monitoring Period: ", true,
                    u != NULL && u->has_monitor ? u->monitor : 5 * SWM_NS_PER_SEC);
    fprintf(f, " Max failure ratio: %g\n", u != NULL ? (double)u->max_failure_ratio : 0.0);
    fprintf(f, " %-18s%s\n", order_label,
            u != NULL && u->order == SWARMC__UPDATE_CONFIG__ORDER__ORDER_START_FIRST
                ? "start-first"
                : "stop-first");
}

static void pretty_resources(FILE *f, const char *title, const Swarmc__Resources *r)
{
    char mem[32];
    if (r == NULL || (!r->has_nano_cpus && !r->has_memory_bytes && !r->has_pids))
        return;
    fprintf(f, " %s:\n", title);
    if (r->has_nano_cpus)
        fprintf(f, "  CPU:\t\t%g\n", (double)r->nano_cpus / 1e9);
    if (r->has_memory_bytes) {
        swm_format_bytes(r->memory_bytes, mem, sizeof(mem));
        fprintf(f, "  Memory:\t%s\n", mem);
    }
    if (r->has_pids)
        fprintf(f, "  Pids:\t\t%lld\n", (long long)r->pids);
}

/* docker service inspect --pretty, for the fields swarmc has. */
static void service_pretty(struct cli_ctx *ctx, const Swarmc__Service *svc)
{
    FILE *f = ctx->out;
    const Swarmc__ServiceSpec *s = svc->spec;
    const Swarmc__TaskSpec *task = s->task;
    const Swarmc__ContainerSpec *c = task != NULL ? task->container : NULL;
    char when[64];
    fprintf(f, "\nID:\t\t%s\nName:\t\t%s\n", svc->id != NULL ? svc->id : "",
            s->annotations != NULL && s->annotations->name != NULL ? s->annotations->name : "");
    if (s->annotations != NULL && s->annotations->n_labels > 0) {
        fprintf(f, "Labels:\n");
        for (size_t i = 0; i < s->annotations->n_labels; i++)
            fprintf(f, " %s=%s\n", s->annotations->labels[i]->key,
                    s->annotations->labels[i]->value != NULL ? s->annotations->labels[i]->value
                                                             : "");
    }
    if (s->has_mode && s->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL)
        fprintf(f, "Service Mode:\tGlobal\n");
    else
        fprintf(f, "Service Mode:\tReplicated\n Replicas:\t%llu\n",
                (unsigned long long)(s->has_replicas ? s->replicas : 1));
    if (svc->update_status != NULL && svc->update_status->has_started_at) {
        const ProtobufCEnumValue *state = protobuf_c_enum_descriptor_get_value(
            &swarmc__update_status__state__descriptor, svc->update_status->state);
        cli_ago(ctx, svc->update_status->started_at, when, sizeof(when));
        fprintf(f, "UpdateStatus:\n State:\t\t%s\n Started:\t%s\n Message:\t%s\n",
                state != NULL ? state->name : "unknown", when,
                svc->update_status->message != NULL ? svc->update_status->message : "");
    }
    fprintf(f, "Placement:\n");
    if (task != NULL && task->placement != NULL) {
        const Swarmc__Placement *p = task->placement;
        if (p->n_constraints > 0)
            fprintf(f, " Constraints:\t[");
        for (size_t i = 0; i < p->n_constraints; i++)
            fprintf(f, "%s%s", i > 0 ? " " : "", p->constraints[i]);
        if (p->n_constraints > 0)
            fprintf(f, "]\n");
        for (size_t i = 0; i < p->n_preferences; i++)
            fprintf(f, " Preferences:\t%s\n", p->preferences[i]);
        if (p->max_replicas > 0)
            fprintf(f, " Max Replicas Per Node:  %llu\n", (unsigned long long)p->max_replicas);
    }
    pretty_update_config(f, "UpdateConfig", "Update order:", s->update);
    pretty_update_config(f, "RollbackConfig", "Rollback order:", s->rollback);
    fprintf(f, "ContainerSpec:\n Image:\t\t%s\n", c != NULL && c->image != NULL ? c->image : "");
    if (c != NULL && c->n_command > 0) {
        fprintf(f, " Command:\t");
        for (size_t i = 0; i < c->n_command; i++)
            fprintf(f, "%s%s", i > 0 ? " " : "", c->command[i]);
        fprintf(f, "\n");
    }
    if (c != NULL && c->n_args > 0) {
        fprintf(f, " Args:\t\t");
        for (size_t i = 0; i < c->n_args; i++)
            fprintf(f, "%s%s", i > 0 ? " " : "", c->args[i]);
        fprintf(f, "\n");
    }
    for (size_t i = 0; c != NULL && i < c->n_env; i++)
        fprintf(f, "%s%s\n", i == 0 ? " Env:\t\t" : "\t\t", c->env[i]);
    if (c != NULL && c->dir != NULL)
        fprintf(f, " Dir:\t\t%s\n", c->dir);
    if (c != NULL && c->user != NULL)
        fprintf(f, " User:\t\t%s\n", c->user);
    fprintf(f, " Init:\t\t%s\n", c != NULL && c->init ? "true" : "false");
    for (size_t i = 0; c != NULL && i < c->n_mounts; i++) {
        const Swarmc__Mount *m = c->mounts[i];
        static const char *const types[] = {"bind", "volume", "tmpfs"};
        fprintf(f, "%s Target:\t%s\n  Source:\t%s\n  ReadOnly:\t%s\n  Type:\t\t%s\n",
                i == 0 ? "Mounts:\n" : "", m->target != NULL ? m->target : "",
                m->source != NULL ? m->source : "", m->readonly ? "true" : "false",
                (unsigned)m->type < 3 ? types[m->type] : "volume");
    }
    fprintf(f, "Resources:\n");
    if (task != NULL && task->resources != NULL) {
        pretty_resources(f, "Reservations", task->resources->reservations);
        pretty_resources(f, "Limits", task->resources->limits);
    }
    for (size_t i = 0; task != NULL && i < task->n_networks; i++)
        fprintf(f, "%s %s\n", i == 0 ? "Networks:" : "         ", task->networks[i]->target);
    fprintf(f, "Endpoint Mode:\t%s\n",
            s->endpoint != NULL && s->endpoint->mode ==
                                       SWARMC__ENDPOINT_SPEC__RESOLUTION_MODE__RESOLUTION_MODE_DNSRR
                ? "dnsrr"
                : "vip");
    for (size_t i = 0; s->endpoint != NULL && i < s->endpoint->n_ports; i++) {
        static const char *const protocols[] = {"tcp", "udp", "sctp"};
        const Swarmc__PortConfig *p = s->endpoint->ports[i];
        fprintf(
            f, "%s PublishedPort = %u\n  Protocol = %s\n  TargetPort = %u\n  PublishMode = %s\n",
            i == 0 ? "Ports:\n" : "", p->published_port,
            (unsigned)p->protocol < 3 ? protocols[p->protocol] : "tcp", p->target_port,
            p->publish_mode == SWARMC__PORT_CONFIG__PUBLISH_MODE__PUBLISH_MODE_HOST ? "host"
                                                                                    : "ingress");
    }
}

static const ProtobufCMessage *pick_service(const Swarmc__ControlResponse *resp)
{
    return &resp->services[0]->base;
}

static void pretty_service(struct cli_ctx *ctx, const ProtobufCMessage *msg)
{
    service_pretty(ctx, (const Swarmc__Service *)msg);
}

static int service_inspect(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    return cli_inspect(ctx, args, cli_get_service, pick_service, pretty_service, err);
}

/* -------------------------------------------------------------- logs -- */

struct logs_state {
    struct cli_ctx *ctx;
    const struct cli_args *args;
    Swarmc__ControlResponse *nodes; /* for hostnames; may be NULL */
    int width;                      /* widest prefix so far, to align the '|' */
};

static int print_log_line(struct logs_state *st, const Swarmc__LogLine *l)
{
    char prefix[256], id[32] = "";
    bool no_trunc = cli_args_bool(st->args, "no-trunc");
    const char *host = cli_node_hostname(st->nodes != NULL ? st->nodes->nodes : NULL,
                                         st->nodes != NULL ? st->nodes->n_nodes : 0, l->node_id);
    if (!cli_args_bool(st->args, "no-task-ids"))
        snprintf(id, sizeof(id), no_trunc ? ".%s" : ".%.12s", l->task_id != NULL ? l->task_id : "");
    int n = snprintf(prefix, sizeof(prefix), "%s%s@%s", l->task_name != NULL ? l->task_name : "",
                     id, host != NULL ? host : (l->node_id != NULL ? l->node_id : ""));
    if (n > st->width)
        st->width = n;
    FILE *f = l->stderr ? st->ctx->err : st->ctx->out;
    if (cli_args_bool(st->args, "timestamps")) {
        time_t secs = (time_t)(l->timestamp / SWM_NS_PER_SEC);
        struct tm tm;
        char stamp[32];
        gmtime_r(&secs, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(f, "%s.%09lldZ ", stamp, (long long)(l->timestamp % SWM_NS_PER_SEC));
    }
    size_t len = l->has_data ? l->data.len : 0;
    fprintf(f, "%-*s    | ", st->width, prefix);
    if (len > 0)
        fwrite(l->data.data, 1, len, f);
    if (len == 0 || l->data.data[len - 1] != '\n')
        fputc('\n', f);
    if (ferror(f))
        return -EPIPE;
    return 0;
}

static int on_log_frame(void *arg, const Swarmc__ControlResponse *frame, struct swm_err *err)
{
    struct logs_state *st = arg;
    for (size_t i = 0; i < frame->n_log_lines; i++) {
        if (print_log_line(st, frame->log_lines[i]) < 0)
            return swm_err_set(err, -EPIPE, "%s", "");
    }
    fflush(st->ctx->out);
    return 0;
}

static int service_logs(struct cli_ctx *ctx, const struct cli_args *args, struct swm_err *err)
{
    Swarmc__ServiceLogsRequest logs = SWARMC__SERVICE_LOGS_REQUEST__INIT;
    logs.service_ref = args->pos[0];
    logs.has_follow = 1;
    logs.follow = cli_args_bool(args, "follow");
    logs.has_timestamps = 1;
    logs.timestamps = cli_args_bool(args, "timestamps");
    logs.has_tail = 1;
    logs.tail = -1;
    const char *tail = cli_args_value(args, "tail");
    uint64_t n;
    if (tail != NULL && strcmp(tail, "all") != 0) {
        if (swm_parse_uint(tail, INT64_MAX, &n) < 0)
            return swm_err_set(err, SWM_EINVAL_SPEC,
                               "invalid argument \"%s\" for \"-n, --tail\" flag: expected \"all\" "
                               "or a number",
                               tail);
        logs.tail = (int64_t)n;
    }
    struct logs_state st = {ctx, args, NULL, 0};
    struct swm_err ignored = {0};
    if (!cli_args_bool(args, "no-resolve") && cli_list_nodes(ctx, &st.nodes, &ignored) < 0)
        st.nodes = NULL;
    CLI_REQUEST(req, service_logs, SERVICE_LOGS, &logs);
    int rc = cli_client_stream(ctx->sock_path, &req, on_log_frame, &st, err);
    proto_free(st.nodes);
    return rc;
}

/* ------------------------------------------------------------- table -- */

static const struct cli_flag logs_flags[] = {
    {"follow", 'f', B, CLI_KIND_BOOL, NULL, "Follow log output", NULL},
    {"tail", 'n', V, CLI_KIND_STRING, NULL,
     "Number of lines to show from the end of the logs (default \"all\")", NULL},
    {"timestamps", 't', B, CLI_KIND_BOOL, NULL, "Show timestamps", NULL},
    {"no-task-ids", 0, B, CLI_KIND_BOOL, NULL, "Do not include task IDs in output", NULL},
    {"no-trunc", 0, B, CLI_KIND_BOOL, NULL, "Do not truncate output", NULL},
    {"no-resolve", 0, B, CLI_KIND_BOOL, NULL, "Do not map IDs to Names in output", NULL},
    {0},
};

static const struct cli_flag ps_flags[] = {
    {"no-resolve", 0, B, CLI_KIND_BOOL, NULL, "Do not map IDs to Names", NULL},
    {0},
};

static const struct cli_flag quiet_progress_flag[] = {
    {"quiet", 'q', B, CLI_KIND_BOOL, NULL, "Suppress progress output", NULL},
    {0},
};

const struct cli_cmd cli_service_cmds[] = {
    {"create", NULL, "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new service",
     cli_service_create_flags, 1, -1, CLI_CMD_NO_INTERSPERSE, service_create, NULL},
    {"inspect", NULL, "[OPTIONS] SERVICE [SERVICE...]",
     "Display detailed information on one or more services",
     CLI_FLAGS(cli_flag_pretty, cli_flag_format), 1, -1, 0, service_inspect, NULL},
    {"logs", NULL, "[OPTIONS] SERVICE", "Fetch the logs of a service", CLI_FLAGS(logs_flags), 1, 1,
     0, service_logs, NULL},
    {"ls", "list", "[OPTIONS]", "List services",
     CLI_FLAGS(cli_flag_quiet_ids, cli_flag_format, cli_flag_filter), 0, 0, 0, service_ls, NULL},
    {"ps", NULL, "[OPTIONS] SERVICE [SERVICE...]", "List the tasks of one or more services",
     CLI_FLAGS(cli_flag_quiet_ids, cli_flag_no_trunc, cli_flag_filter, cli_flag_format, ps_flags),
     1, -1, 0, service_ps, NULL},
    {"rm", "remove", "SERVICE [SERVICE...]", "Remove one or more services", NULL, 1, -1, 0,
     service_rm, NULL},
    {"rollback", NULL, "[OPTIONS] SERVICE", "Revert changes to a service's configuration",
     CLI_FLAGS(cli_flag_detach, quiet_progress_flag), 1, 1, 0, service_rollback, NULL},
    {"scale", NULL, "SERVICE=REPLICAS [SERVICE=REPLICAS...]",
     "Scale one or multiple replicated services", CLI_FLAGS(cli_flag_detach), 1, -1, 0,
     service_scale, NULL},
    {"update", NULL, "[OPTIONS] SERVICE", "Update a service", cli_service_update_flags, 1, 1, 0,
     service_update, NULL},
    {0},
};
