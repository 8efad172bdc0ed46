/* Whole commands (cli_main) against a fake daemon: what they send, what
 * they print, and their exit status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/json.h"
#include "daemon/daemon.h"
#include "fake_daemon.h"

#define SEC 1000000000LL
#define NOW (1700000000LL * SEC)

/* ------------------------------------------------------ a tiny cluster -- */

struct world {
    Swarmc__Service svc;
    Swarmc__Meta svc_meta;
    Swarmc__ServiceSpec spec;
    Swarmc__Annotations ann;
    Swarmc__TaskSpec task_spec;
    Swarmc__ContainerSpec container;
    Swarmc__EndpointSpec endpoint;
    Swarmc__PortConfig port;
    Swarmc__PortConfig *ports[1];
    Swarmc__UpdateConfig update;
    Swarmc__Node node;
    Swarmc__NodeDescription desc;
    Swarmc__NodeStatus node_status;
    Swarmc__ManagerStatus mgr;
    Swarmc__Task task;
    Swarmc__TaskStatus task_status;
    Swarmc__InfoResponse info;
    int stale_updates; /* answer this many UpdateService with SWM_ESTALE */
    bool global;
};

static struct world w;

static void world_init(void)
{
    memset(&w, 0, sizeof(w));
    swarmc__service__init(&w.svc);
    swarmc__meta__init(&w.svc_meta);
    swarmc__service_spec__init(&w.spec);
    swarmc__annotations__init(&w.ann);
    swarmc__task_spec__init(&w.task_spec);
    swarmc__container_spec__init(&w.container);
    swarmc__endpoint_spec__init(&w.endpoint);
    swarmc__port_config__init(&w.port);
    swarmc__update_config__init(&w.update);
    w.ann.name = "web";
    w.container.image = "busybox:latest";
    w.task_spec.container = &w.container;
    w.port.has_published_port = w.port.has_target_port = 1;
    w.port.published_port = 8080;
    w.port.target_port = 80;
    w.ports[0] = &w.port;
    w.endpoint.ports = w.ports;
    w.endpoint.n_ports = 1;
    /* Stable after 1 ms instead of docker's 5 s, to keep the test fast. */
    w.update.has_monitor = 1;
    w.update.monitor = 1000000;
    w.spec.annotations = &w.ann;
    w.spec.task = &w.task_spec;
    w.spec.has_replicas = 1;
    w.spec.replicas = 1;
    w.spec.endpoint = &w.endpoint;
    w.spec.update = &w.update;
    w.svc_meta.has_version = 1;
    w.svc_meta.version = 42;
    w.svc.id = "svc1svc1svc1svc1svc1svc1x";
    w.svc.meta = &w.svc_meta;
    w.svc.spec = &w.spec;

    swarmc__node__init(&w.node);
    swarmc__node_description__init(&w.desc);
    swarmc__node_status__init(&w.node_status);
    swarmc__manager_status__init(&w.mgr);
    w.desc.hostname = "node1";
    w.desc.engine_version = "0.1.0";
    w.node_status.has_state = 1;
    w.node_status.state = SWARMC__NODE_STATE__NODE_STATE_READY;
    w.mgr.has_leader = 1;
    w.mgr.leader = 1;
    w.node.id = "node1node1node1node1node1";
    w.node.description = &w.desc;
    w.node.status = &w.node_status;
    w.node.manager_status = &w.mgr;

    swarmc__task__init(&w.task);
    swarmc__task_status__init(&w.task_status);
    w.task_status.has_state = 1;
    w.task_status.state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    w.task_status.has_timestamp = 1;
    w.task_status.timestamp = NOW - 3 * SEC;
    w.task.id = "task1task1task1task1task1";
    w.task.service_id = w.svc.id;
    w.task.node_id = w.node.id;
    w.task.has_slot = 1;
    w.task.slot = 1;
    w.task.has_desired_state = 1;
    w.task.desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    w.task.status = &w.task_status;
    w.task.spec = &w.task_spec;
    w.task.service_annotations = &w.ann;

    swarmc__info_response__init(&w.info);
    w.info.node_id = w.node.id;
    w.info.has_is_manager = 1;
    w.info.is_manager = 1;
    w.info.version = "0.1.0";
}

static void handler(void *arg, const Swarmc__ControlRequest *req, struct fake_out *raw)
{
    Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
    Swarmc__Service *services[] = {&w.svc};
    Swarmc__Node *nodes[] = {&w.node};
    Swarmc__Task *tasks[] = {&w.task};
    resp.has_last = resp.last = 1;
    w.spec.has_mode = w.global;
    w.spec.mode = w.global ? SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL : 0;
    switch (req->op_case) {
    case SWARMC__CONTROL_REQUEST__OP_GET_SERVICE:
        if (strcmp(req->get_service->ref, "web") != 0 && strcmp(req->get_service->ref, w.svc.id)) {
            fake_reply_error(raw, SWM_ENOTFOUND, "service not found");
            return;
        }
        resp.services = services;
        resp.n_services = 1;
        break;
    case SWARMC__CONTROL_REQUEST__OP_CREATE_SERVICE:
    case SWARMC__CONTROL_REQUEST__OP_LIST_SERVICES:
        resp.services = services;
        resp.n_services = 1;
        break;
    case SWARMC__CONTROL_REQUEST__OP_UPDATE_SERVICE:
        if (w.stale_updates > 0) {
            w.stale_updates--;
            fake_reply_error(raw, SWM_ESTALE, "update out of sequence");
            return;
        }
        break;
    case SWARMC__CONTROL_REQUEST__OP_REMOVE_SERVICE:
        if (strcmp(req->remove_service->ref, "web") != 0) {
            fake_reply_error(raw, SWM_ENOTFOUND, "service missing not found");
            return;
        }
        break;
    case SWARMC__CONTROL_REQUEST__OP_LIST_TASKS:
        resp.tasks = tasks;
        resp.n_tasks = 1;
        break;
    case SWARMC__CONTROL_REQUEST__OP_LIST_NODES:
    case SWARMC__CONTROL_REQUEST__OP_GET_NODE:
        resp.nodes = nodes;
        resp.n_nodes = 1;
        break;
    case SWARMC__CONTROL_REQUEST__OP_INFO:
        resp.info = &w.info;
        break;
    case SWARMC__CONTROL_REQUEST__OP_LEAVE:
        /* A manager refuses to leave without --force (the daemon words it). */
        if (!req->leave->force) {
            fake_reply_error(raw, -EPERM,
                             "You are attempting to leave the swarm on a node that is "
                             "participating as a manager. Removing the last manager erases all "
                             "current state of the swarm. Use `--force` to ignore this message.");
            return;
        }
        break;
    case SWARMC__CONTROL_REQUEST__OP_REMOVE_NODE:
        if (strcmp(req->remove_node->ref, "busy") == 0) {
            fake_reply_error(raw, SWM_EINUSE,
                             "rpc error: code = FailedPrecondition desc = node busy is not down "
                             "and can't be removed");
            return;
        }
        if (strcmp(req->remove_node->ref, "missing") == 0) {
            fake_reply_error(raw, SWM_ENOTFOUND, "node missing not found");
            return;
        }
        break;
    case SWARMC__CONTROL_REQUEST__OP_SERVICE_LOGS: {
        Swarmc__LogLine line = SWARMC__LOG_LINE__INIT;
        Swarmc__LogLine *lines[] = {&line};
        line.task_id = w.task.id;
        line.task_name = "web.1";
        line.node_id = w.node.id;
        line.has_data = 1;
        line.data.data = (uint8_t *)"hello\n";
        line.data.len = 6;
        line.has_timestamp = 1;
        line.timestamp = NOW + 5;
        resp.log_lines = lines;
        resp.n_log_lines = 1;
        resp.last = 0;
        fake_reply(raw, &resp); /* two frames: a stream */
        line.data.data = (uint8_t *)"world";
        line.data.len = 5;
        resp.last = 1;
        fake_reply(raw, &resp);
        return;
    }
    default:
        break;
    }
    fake_reply(raw, &resp);
}

/* ------------------------------------------------------------ running -- */

static int64_t fixed_now(void)
{
    return NOW;
}

struct daemon_call {
    int calls;
    struct daemon_opts opts;
    bool init;
};
static struct daemon_call daemon_call;

static int fake_daemon_init(const struct daemon_opts *opts, char node_id[26], struct swm_err *err)
{
    daemon_call.calls++;
    daemon_call.opts = *opts;
    daemon_call.init = true;
    snprintf(node_id, 26, "%s", "abcdefghijklmnopqrstuvwxy");
    return 0;
}

static const struct cli_hooks hooks = {.daemon_init = fake_daemon_init};

static const struct cli_cmd commands[] = {
    {"init", NULL, "[OPTIONS]", "Initialize a swarm", cli_init_flags, 0, 0, 0, cli_cluster_init,
     NULL},
    {"daemon", NULL, "[OPTIONS]", "Start the daemon", cli_daemon_flags, 0, 0, 0, cli_cluster_daemon,
     NULL},
    {"leave", NULL, "[OPTIONS]", "Leave the swarm", cli_leave_flags, 0, 0, 0, cli_cluster_leave,
     NULL},
    {"info", NULL, "[OPTIONS]", "Display system-wide information", cli_info_flags, 0, 0, 0,
     cli_cluster_info, NULL},
    {"node", NULL, NULL, "Manage swarm nodes", NULL, 0, -1, 0, NULL, cli_node_cmds},
    {"service", NULL, NULL, "Manage swarm services", NULL, 0, -1, 0, NULL, cli_service_cmds},
    {"image", NULL, NULL, "Manage images", NULL, 0, -1, 0, NULL, cli_image_cmds},
    {0},
};
static const struct cli_flag *const global_flags[] = {cli_global_flags, NULL};
static const struct cli_cmd root = {
    "swarmc",
    NULL,
    "[OPTIONS] COMMAND",
    "A Swarm-style container orchestrator",
    global_flags,
    0,
    -1,
    0,
    cli_global_setup,
    commands,
};

struct run {
    int status;
    char *out;
    char *err;
};

static struct fake_daemon *daemon_;

/* Runs `swarmc --run-dir <fake> argv...`. */
static struct run run_in(const char *run_dir, char **argv)
{
    static struct run r;
    free(r.out);
    free(r.err);
    memset(&r, 0, sizeof(r));
    size_t out_len = 0, err_len = 0;
    FILE *out = open_memstream(&r.out, &out_len);
    FILE *err = open_memstream(&r.err, &err_len);
    struct cli_ctx ctx;
    cli_ctx_init(&ctx, out, err);
    ctx.hooks = &hooks;
    ctx.now_ns = fixed_now;
    ctx.poll_interval_ns = 1000000;
    ctx.wait_timeout_ns = 10 * SEC;
    char *full[64] = {"--run-dir", (char *)run_dir};
    int argc = 2;
    while (*argv != NULL)
        full[argc++] = *argv++;
    r.status = cli_main(&ctx, &root, argc, full);
    fclose(out);
    fclose(err);
    return r;
}

#define RUN(...) run_in(fake_daemon_run_dir(daemon_), (char *[]){__VA_ARGS__, NULL})

static int setup(void **state)
{
    world_init();
    memset(&daemon_call, 0, sizeof(daemon_call));
    daemon_ = fake_daemon_start(handler, NULL);
    return daemon_ == NULL;
}

static int teardown(void **state)
{
    fake_daemon_stop(daemon_);
    daemon_ = NULL;
    return 0;
}

static const Swarmc__ControlRequest *request(size_t i)
{
    const Swarmc__ControlRequest *r = fake_daemon_request(daemon_, i);
    assert_non_null(r);
    return r;
}

/* -------------------------------------------------------------- tests -- */

static void create_detached_prints_the_id(void **state)
{
    struct run r = RUN("service", "create", "-d", "--name", "web", "-p", "8080:80", "--replicas",
                       "2", "busybox", "sleep", "60");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "svc1svc1svc1svc1svc1svc1x\n");
    assert_string_equal(r.err, "");
    assert_int_equal(fake_daemon_n_requests(daemon_), 1);
    const Swarmc__ServiceSpec *spec = request(0)->create_service->spec;
    assert_string_equal(spec->annotations->name, "web");
    assert_int_equal(spec->replicas, 2);
    assert_int_equal(spec->endpoint->ports[0]->published_port, 8080);
    assert_string_equal(spec->task->container->args[1], "60");
}

static void create_follows_progress_until_converged(void **state)
{
    struct run r = RUN("service", "create", "busybox");
    assert_int_equal(r.status, 0);
    assert_non_null(
        strstr(r.out, "svc1svc1svc1svc1svc1svc1x\n"
                      "overall progress: 1 out of 1 tasks\n"
                      "1/1: running   [==================================================>]\n"));
    assert_non_null(strstr(r.out, "verify: Service svc1svc1svc1svc1svc1svc1x converged\n"));
    /* Not a terminal: no cursor movement. */
    assert_null(strchr(r.out, '\033'));
}

static void bad_value_is_one_line_and_sends_nothing(void **state)
{
    struct run r = RUN("service", "create", "--restart-delay", "5x", "busybox");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "invalid argument \"5x\" for \"--restart-delay\" flag: time: "
                               "unknown unit \"x\" in duration \"5x\"\n");
    assert_string_equal(r.out, "");
    assert_int_equal(fake_daemon_n_requests(daemon_), 0);
}

static void usage_errors_point_to_help(void **state)
{
    struct run r = RUN("service", "create", "--foo", "busybox");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "unknown flag: --foo\nSee 'swarmc service create --help'.\n");
    r = RUN("service", "create");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err,
                        "\"swarmc service create\" requires at least 1 argument.\n"
                        "See 'swarmc service create --help'.\n\n"
                        "Usage:  swarmc service create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                        "Create a new service\n");
    r = RUN("service", "update", "a", "b");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "\"swarmc service update\" requires exactly 1 argument.\n"));
    r = RUN("node", "ls", "extra");
    assert_non_null(strstr(r.err, "\"swarmc node ls\" accepts no arguments.\n"));
    r = RUN("service", "frobnicate");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "swarmc service: 'frobnicate' is not a swarmc service command.\n"
                               "See 'swarmc service --help'.\n");
    r = RUN("frobnicate");
    assert_string_equal(r.err, "swarmc: 'frobnicate' is not a swarmc command.\n"
                               "See 'swarmc --help'.\n");
    assert_int_equal(fake_daemon_n_requests(daemon_), 0);
}

static void help_texts(void **state)
{
    struct run r = RUN("service", "--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Usage:  swarmc service COMMAND\n\nManage swarm services\n"));
    assert_non_null(strstr(r.out, "  create      Create a new service\n"));
    assert_non_null(strstr(r.out, "Run 'swarmc service COMMAND --help'"));
    r = RUN("service");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Commands:"));
    r = RUN("service", "ls", "--help");
    assert_non_null(strstr(r.out, "Aliases:\n  swarmc service ls, swarmc service list\n"));
    assert_non_null(strstr(r.out, "  -q, --quiet "));
    r = RUN("--help");
    assert_non_null(strstr(r.out, "Usage:  swarmc [OPTIONS] COMMAND\n"));
    assert_non_null(strstr(r.out, "      --data-dir string"));
    r = RUN("service", "list", "-q");
    assert_string_equal(r.out, "svc1svc1svc1\n");
}

static void service_ls_table_and_json(void **state)
{
    struct run r = RUN("service", "ls");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out,
                        "ID             NAME      MODE         REPLICAS   IMAGE            PORTS\n"
                        "svc1svc1svc1   web       replicated   1/1        busybox:latest   "
                        "*:8080->80/tcp\n");
    r = RUN("service", "ls", "--format", "json");
    assert_int_equal(r.status, 0);
    assert_non_null(
        strstr(r.out, "{\"id\":\"svc1svc1svc1svc1svc1svc1x\",\"meta\":{\"version\":42}"));
    assert_int_equal(strchr(r.out, '\n') - r.out + 1, (long)strlen(r.out));
    r = RUN("service", "ls", "--format", "{{.ID}}");
    assert_int_equal(r.status, 1);
    r = RUN("service", "ls", "--filter", "color=red");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "invalid filter 'color'\n");
    r = RUN("service", "ls", "--filter", "name=we");
    assert_int_equal(r.status, 0);
    const Swarmc__ControlRequest *last = request(fake_daemon_n_requests(daemon_) - 3);
    assert_int_equal(last->op_case, SWARMC__CONTROL_REQUEST__OP_LIST_SERVICES);
    assert_string_equal(last->list_services->names[0], "we");
}

static void service_ps_and_inspect(void **state)
{
    struct run r = RUN("service", "ps", "web");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "task1task1ta   web.1     busybox:latest   node1     Running   "
                                  "      Running 3 seconds ago"));
    assert_string_equal(request(0)->list_tasks->service_refs[0], "web");
    r = RUN("service", "ps", "--filter", "desired-state=running", "-q", "web");
    assert_string_equal(r.out, "task1task1ta\n");
    assert_int_equal(request(2)->list_tasks->desired_states[0],
                     SWARMC__TASK_STATE__TASK_STATE_RUNNING);
    r = RUN("service", "inspect", "web");
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "[\n    {\n        \"id\": \"svc1", 25) == 0);
    r = RUN("service", "inspect", "--pretty", "web");
    assert_non_null(strstr(r.out, "Name:\t\tweb\n"));
    assert_non_null(strstr(r.out, "Service Mode:\tReplicated\n Replicas:\t1\n"));
    r = RUN("service", "inspect", "web", "nope");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "Error response from daemon: service not found\n");
}

static void update_retries_once_when_stale(void **state)
{
    w.stale_updates = 1;
    struct run r =
        RUN("service", "update", "-d", "--env-add", "A=1", "--image", "busybox:2", "web");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "web\n");
    assert_int_equal(fake_daemon_n_requests(daemon_), 4);
    const Swarmc__UpdateServiceRequest *u = request(3)->update_service;
    assert_string_equal(u->id, w.svc.id);
    assert_true(u->has_version);
    assert_int_equal(u->version, 42);
    assert_string_equal(u->spec->task->container->image, "busybox:2");
    assert_string_equal(u->spec->task->container->env[0], "A=1");

    w.stale_updates = 2;
    r = RUN("service", "update", "-d", "--force", "web");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "Error response from daemon: update out of sequence\n");
}

static void scale_and_rollback(void **state)
{
    struct run r = RUN("service", "scale", "-d", "web=3");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "web scaled to 3\n");
    assert_int_equal(request(1)->update_service->spec->replicas, 3);
    r = RUN("service", "scale", "web");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err,
                        "invalid scale specifier 'web'.\nSee 'swarmc service scale --help'.\n");
    w.global = true;
    r = RUN("service", "scale", "-d", "web=3");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "web: scale can only be used with replicated mode\n");
    r = RUN("service", "update", "-d", "--rollback", "web");
    assert_int_equal(r.status, 0);
    const Swarmc__ControlRequest *last = request(fake_daemon_n_requests(daemon_) - 1);
    assert_true(last->update_service->rollback);
}

static void rm_goes_on_after_a_failure(void **state)
{
    struct run r = RUN("service", "rm", "web", "missing");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "web\n");
    assert_string_equal(r.err, "Error response from daemon: service missing not found\n");
}

static void logs_prefix_each_line(void **state)
{
    struct run r = RUN("service", "logs", "web");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "web.1.task1task1ta@node1    | hello\n"
                               "web.1.task1task1ta@node1    | world\n");
    const Swarmc__ServiceLogsRequest *l = request(1)->service_logs;
    assert_string_equal(l->service_ref, "web");
    assert_true(l->tail == -1);
    assert_false(l->follow);
    r = RUN("service", "logs", "-f", "--tail", "5", "-t", "--no-task-ids", "web");
    assert_string_equal(r.out, "2023-11-14T22:13:20.000000005Z web.1@node1    | hello\n"
                               "2023-11-14T22:13:20.000000005Z web.1@node1    | world\n");
    l = request(3)->service_logs;
    assert_true(l->follow);
    assert_true(l->tail == 5);
    r = RUN("service", "logs", "--tail", "x", "web");
    assert_int_equal(r.status, 1);
}

static void node_commands(void **state)
{
    struct run r = RUN("node", "ls");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out,
                        "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER "
                        "STATUS   ENGINE VERSION\n"
                        "node1node1node1node1node1 *   node1      Ready     Active         Leader  "
                        "         0.1.0\n");
    r = RUN("node", "update", "--availability", "drain", "--label-add", "zone=a", "self");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "self\n");
    const Swarmc__UpdateNodeRequest *u = request(fake_daemon_n_requests(daemon_) - 1)->update_node;
    assert_int_equal(u->spec->availability, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    assert_string_equal(u->spec->annotations->labels[0]->key, "zone");
    r = RUN("node", "update", "--role", "manager", "self");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "--role is not yet supported"));
    r = RUN("node", "update", "--availability", "away", "self");
    assert_int_equal(r.status, 1);
    r = RUN("node", "ps");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "web.1"));
    r = RUN("node", "inspect", "--pretty", "self");
    assert_non_null(strstr(r.out, "Hostname:\t\tnode1\n"));
}

static void node_rm_removes_each_node(void **state)
{
    struct run r = RUN("node", "rm", "a", "b");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "a\nb\n");
    assert_string_equal(r.err, "");
    assert_int_equal(fake_daemon_n_requests(daemon_), 2);
    for (size_t i = 0; i < 2; i++) {
        const Swarmc__ControlRequest *req = request(i);
        assert_int_equal(req->op_case, SWARMC__CONTROL_REQUEST__OP_REMOVE_NODE);
        assert_string_equal(req->remove_node->ref, i == 0 ? "a" : "b");
        assert_false(req->remove_node->force);
    }
    r = RUN("node", "rm", "-f", "x");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "x\n");
    assert_int_equal(fake_daemon_n_requests(daemon_), 3);
    const Swarmc__RemoveNodeRequest *rm = request(2)->remove_node;
    assert_non_null(rm);
    assert_string_equal(rm->ref, "x");
    assert_true(rm->has_force && rm->force);
    r = RUN("node", "remove", "--force", "y");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "y\n");
    rm = request(3)->remove_node;
    assert_non_null(rm);
    assert_true(rm->force);
}

static void node_rm_goes_on_after_a_failure(void **state)
{
    struct run r = RUN("node", "rm", "busy", "a", "missing");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "a\n");
    assert_string_equal(r.err, "Error response from daemon: rpc error: code = FailedPrecondition "
                               "desc = node busy is not down and can't be removed\n"
                               "Error response from daemon: node missing not found\n");
    assert_int_equal(fake_daemon_n_requests(daemon_), 3);
    r = RUN("node", "rm", "missing");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "Error response from daemon: node missing not found\n");
}

static void node_rm_needs_a_node(void **state)
{
    struct run r = RUN("node", "rm");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "\"swarmc node rm\" requires at least 1 argument.\n"
                                  "See 'swarmc node rm --help'.\n"));
    r = RUN("node", "rm", "--frobnicate", "a");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "unknown flag: --frobnicate\n"));
    assert_int_equal(fake_daemon_n_requests(daemon_), 0);
}

static void cluster_commands(void **state)
{
    struct run r = RUN("init", "--advertise-addr", "10.0.0.1", "--dispatcher-heartbeat", "2s",
                       "--task-history-limit", "3", "--availability", "drain");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "Swarm initialized: current node (abcdefghijklmnopqrstuvwxy) is "
                               "now a manager.\n");
    assert_string_equal(daemon_call.opts.advertise_addr, "10.0.0.1");
    assert_true(daemon_call.opts.dispatcher_heartbeat_ns == 2 * SEC);
    assert_true(daemon_call.opts.task_history_limit == 3);
    assert_true(daemon_call.opts.cert_expiry_ns == 0);
    assert_string_equal(daemon_call.opts.availability, "drain");
    assert_string_equal(daemon_call.opts.run_dir, fake_daemon_run_dir(daemon_));
    r = RUN("init", "--autolock");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "--autolock is not yet supported\n");
    r = RUN("init", "--availability", "sometimes");
    assert_int_equal(r.status, 1);
    assert_int_equal(daemon_call.calls, 1);
    r = RUN("daemon");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "this swarmc was built without the node daemon\n");

    r = RUN("info", "--format", "json");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"is_manager\":true"));
    r = RUN("info");
    assert_non_null(strstr(r.out, "  NodeID: node1node1node1node1node1\n"));
    /* Last: after a forced leave the daemon (and its socket) is gone. */
    r = RUN("leave");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "You are attempting to leave the swarm on a node that is "
                                  "participating as a manager."));
    assert_non_null(strstr(r.err, "Use `--force` to ignore this message.\n"));
    r = RUN("leave", "--force");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "Node left the swarm.\n");
    const Swarmc__ControlRequest *last = request(fake_daemon_n_requests(daemon_) - 1);
    assert_int_equal(last->op_case, SWARMC__CONTROL_REQUEST__OP_LEAVE);
    assert_true(last->leave->force);
}

static void daemon_not_running(void **state)
{
    struct run r = run_in("/nonexistent", (char *[]){"service", "ls", NULL});
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "Cannot connect to the swarmc daemon at "
                               "unix:///nonexistent/swarmc.sock. Is the daemon running?\n");
}

static void image_commands(void **state)
{
    struct run r = RUN("image", "load");
    assert_int_equal(r.status, 1);
    r = RUN("image", "load", "-i", "/nonexistent.tar");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "open /nonexistent.tar: No such file or directory\n");
    assert_int_equal(fake_daemon_n_requests(daemon_), 0);
}

int main(void)
{
    cli_json_setup();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_detached_prints_the_id, setup, teardown),
        cmocka_unit_test_setup_teardown(create_follows_progress_until_converged, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_value_is_one_line_and_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(usage_errors_point_to_help, setup, teardown),
        cmocka_unit_test_setup_teardown(help_texts, setup, teardown),
        cmocka_unit_test_setup_teardown(service_ls_table_and_json, setup, teardown),
        cmocka_unit_test_setup_teardown(service_ps_and_inspect, setup, teardown),
        cmocka_unit_test_setup_teardown(update_retries_once_when_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(scale_and_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(rm_goes_on_after_a_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(logs_prefix_each_line, setup, teardown),
        cmocka_unit_test_setup_teardown(node_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(node_rm_removes_each_node, setup, teardown),
        cmocka_unit_test_setup_teardown(node_rm_goes_on_after_a_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(node_rm_needs_a_node, setup, teardown),
        cmocka_unit_test_setup_teardown(cluster_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(daemon_not_running, setup, teardown),
        cmocka_unit_test_setup_teardown(image_commands, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
