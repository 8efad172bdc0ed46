/* agent/tasks.c and agent/agent.c against the real executor, its shim
 * (this binary, dispatched on argv[1] == "shim") and a fake runc
 * (fake-runc.pl: runs the bundle's command on the host, without
 * namespaces). Assignments go in as packed DispatcherMessages through
 * agent_receive; status reports come out as AgentMessages through the send
 * function. No runc needed. The executor's overlay mount of the rootfs
 * needs root, else an unprivileged user namespace (tried; the tests skip
 * without either).
 *
 * The whole binary runs in a private mount namespace; everything lives
 * under /tmp/swm-agent-XXXXXX/, one data and run dir per test, and each
 * test kills what it started and deletes its dirs even when it fails. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "agent/internal.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/timeutil.h"
#include "fixture.h" /* tests/unit/image: builds the image tarball */
#include "proto/codec.h"

#define WAIT_MS 20000
#define IMAGE "agenttest:latest"
#define NODE_ID "node000000000000000000001"

static char base[64], self_exe[PATH_MAX], image_tar[128];
static char data_dir[128], run_dir[128];
static bool usable;
static int dir_seq, task_seq;

/* What the agent sent, in order. */
struct report {
    char id[SWM_ID_LEN + 1];
    Swarmc__TaskState state;
    char message[128], err[256];
    bool has_container, has_pid, has_exit_code;
    int pid, exit_code;
};

static struct {
    struct report r[256];
    int n;
    int registers;
} rec;

static uv_loop_t loop;
static bool loop_open;
static struct agent *agent;
static int removed_all_calls;

/* ------------------------------------------------------------ setup -- */

static int write_proc(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int rc = n == (ssize_t)strlen(text) ? 0 : -errno;
    close(fd);
    return rc;
}

/* A private mount namespace (as root), or a user namespace mapping us to
 * root in it. Before any thread starts: unshare needs a single thread. */
static bool enter_namespaces(void)
{
    if (geteuid() != 0) {
        char map[64];
        uid_t uid = geteuid();
        gid_t gid = getegid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
            return false;
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
        if (write_proc("/proc/self/uid_map", map) < 0 ||
            write_proc("/proc/self/setgroups", "deny") < 0)
            return false;
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
        if (write_proc("/proc/self/gid_map", map) < 0)
            return false;
    } else if (unshare(CLONE_NEWNS) < 0) {
        return false;
    }
    return mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
}

static bool overlay_works(void)
{
    char dirs[4][128], data[512];
    static const char *const names[] = {"lower", "upper", "work", "merged"};
    for (int i = 0; i < 4; i++) {
        snprintf(dirs[i], sizeof(dirs[i]), "%s/probe/%s", base, names[i]);
        if (swm_mkdir_p(dirs[i], 0755) < 0)
            return false;
    }
    snprintf(data, sizeof(data), "lowerdir=%s,upperdir=%s,workdir=%s", dirs[0], dirs[1], dirs[2]);
    bool ok = mount("overlay", dirs[3], "overlay", 0, data) == 0;
    if (ok)
        umount2(dirs[3], MNT_DETACH);
    snprintf(dirs[0], sizeof(dirs[0]), "%s/probe", base);
    swm_remove_tree(dirs[0]);
    return ok;
}

static int group_setup(void **state)
{
    snprintf(base, sizeof(base), "/tmp/swm-agent-XXXXXX");
    if (mkdtemp(base) == NULL)
        return -1;
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0)
        return -1;
    self_exe[n] = '\0';

    /* The executor looks runc up in PATH first. */
    char bin[128], path[256];
    snprintf(bin, sizeof(bin), "%s/bin", base);
    snprintf(path, sizeof(path), "%s/runc", bin);
    struct swm_buf script = {0};
    int rc = swm_mkdir_p(bin, 0755);
    if (rc == 0)
        rc = swm_read_file(FAKE_RUNC, 1 << 16, &script);
    if (rc == 0)
        rc = swm_write_file_atomic(path, script.data, script.len, 0755);
    swm_buf_free(&script);
    if (rc < 0)
        return -1;
    const char *old_path = getenv("PATH");
    char new_path[4096];
    snprintf(new_path, sizeof(new_path), "%s:%s", bin,
             old_path != NULL ? old_path : "/usr/sbin:/usr/bin:/sbin:/bin");
    setenv("PATH", new_path, 1);

    /* One small layer; the command runs on the host anyway. */
    const struct tb_entry entries[] = {
        {.name = "etc", .type = 'd'},
        {.name = "etc/passwd", .type = 'f', .data = "root:x:0:0:root:/:/bin/sh\n"},
    };
    struct swm_buf layer = {0};
    tb_tar(entries, 2, &layer);
    struct tb_image img = {.tag = IMAGE,
                           .layers = &layer,
                           .n_layers = 1,
                           .config_body = "\"Cmd\":[\"sleep\",\"1000\"]"};
    struct tb_files files = {0};
    char id_hex[65];
    tb_docker_save(&img, &files, id_hex);
    snprintf(image_tar, sizeof(image_tar), "%s/image.tar", base);
    tb_files_write(&files, image_tar);
    tb_files_free(&files);
    swm_buf_free(&layer);

    usable = geteuid() == 0 && overlay_works();
    if (!usable)
        fprintf(stderr, "no overlay mounts here (needs root or a user namespace): skipping\n");
    return 0;
}

static int group_teardown(void **state)
{
    return swm_remove_tree(base);
}

/* ------------------------------------------------------- the agent -- */

static void on_send(void *conn, const uint8_t *frame, size_t len)
{
    struct swm_err err = {0};
    Swarmc__AgentMessage *msg =
        PROTO_UNPACK(Swarmc__AgentMessage, swarmc__agent_message, frame, len, &err);
    assert_non_null(msg);
    if (msg->msg_case == SWARMC__AGENT_MESSAGE__MSG_REGISTER)
        rec.registers++;
    if (msg->msg_case == SWARMC__AGENT_MESSAGE__MSG_STATUS) {
        for (size_t i = 0; i < msg->status->n_updates; i++) {
            const Swarmc__TaskStatusUpdate__Item *u = msg->status->updates[i];
            assert_true(rec.n < 256);
            struct report *r = &rec.r[rec.n++];
            memset(r, 0, sizeof(*r));
            snprintf(r->id, sizeof(r->id), "%s", u->task_id);
            r->state = u->status->state;
            snprintf(r->message, sizeof(r->message), "%s", u->status->message);
            snprintf(r->err, sizeof(r->err), "%s", u->status->err);
            const Swarmc__ContainerStatus *c = u->status->container;
            r->has_container = c != NULL;
            r->has_pid = c != NULL && c->has_pid;
            r->pid = c != NULL ? c->pid : 0;
            r->has_exit_code = c != NULL && c->has_exit_code;
            r->exit_code = c != NULL ? c->exit_code : 0;
        }
    }
    proto_free(msg);
}

/* Opens the agent (re-adopting what the dirs hold) without a session. */
static void open_agent_only(void)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_open = true;
    struct agent_opts o = {.loop = &loop,
                           .node_id = NODE_ID,
                           .hostname = "testhost",
                           .data_dir = data_dir,
                           .run_dir = run_dir,
                           .self_exe = self_exe};
    struct swm_err err = {0};
    if (agent_open(&o, &agent, &err) != 0)
        fail_msg("agent_open: %s", err.msg);
}

/* Opens the agent and connects it: it sends its registration. */
static void open_agent(void)
{
    open_agent_only();
    agent_connect(agent, on_send, NULL);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Closes the agent and the loop. After a failed assertion the loop may
 * still hold the test's own handles: `force` closes them too. */
static int close_loop(bool force)
{
    agent_close(agent);
    agent = NULL;
    if (!loop_open)
        return 0;
    for (int i = 0; i < 1000 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
        usleep(10000);
    if (force) {
        uv_walk(&loop, close_any, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    int rc = uv_loop_close(&loop);
    loop_open = rc != 0;
    return rc;
}

/* What a dying daemon leaves behind: nothing of the agent or the loop; the
 * containers run on. Every handle the agent had is closed. */
static void close_agent(void)
{
    assert_int_equal(close_loop(false), 0);
}

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond holds or ms pass. A UV_RUN_ONCE turn that ran
 * timers (the agent's reports are sent from one) still waits for I/O: the
 * tick ends each turn within 10 ms, so cond is checked again. */
#define RUN_UNTIL(cond, ms)                                                                        \
    do {                                                                                           \
        uv_timer_t t_, tick_;                                                                      \
        bool fired_ = false;                                                                       \
        uv_timer_init(&loop, &t_);                                                                 \
        uv_timer_init(&loop, &tick_);                                                              \
        t_.data = &fired_;                                                                         \
        uv_timer_start(&t_, on_deadline, (ms), 0);                                                 \
        uv_timer_start(&tick_, on_tick, 10, 10);                                                   \
        while (!(cond) && !fired_)                                                                 \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        bool ok_ = (cond);                                                                         \
        uv_close((uv_handle_t *)&t_, NULL);                                                        \
        uv_close((uv_handle_t *)&tick_, NULL);                                                     \
        uv_run(&loop, UV_RUN_NOWAIT);                                                              \
        if (!ok_)                                                                                  \
            fail_msg("timed out after %d ms waiting for %s", (int)(ms), #cond);                    \
    } while (0)

/* Runs the loop until nothing keeps it alive (running containers do not)
 * or ms pass: no callback is left to come. */
#define RUN_IDLE(ms)                                                                               \
    do {                                                                                           \
        uv_timer_t t_;                                                                             \
        bool fired_ = false;                                                                       \
        uv_timer_init(&loop, &t_);                                                                 \
        t_.data = &fired_;                                                                         \
        uv_timer_start(&t_, on_deadline, (ms), 0);                                                 \
        uv_unref((uv_handle_t *)&t_);                                                              \
        while (!fired_ && uv_run(&loop, UV_RUN_ONCE) != 0)                                         \
            ;                                                                                      \
        bool idle_ = !fired_;                                                                      \
        uv_close((uv_handle_t *)&t_, NULL);                                                        \
        uv_run(&loop, UV_RUN_NOWAIT);                                                              \
        if (!idle_)                                                                                \
            fail_msg("loop still busy after %d ms", (int)(ms));                                    \
    } while (0)

/* ----------------------------------------------------------- tasks -- */

/* A task as the dispatcher sends it; status.state is what the store knows. */
struct test_task {
    Swarmc__Task task;
    Swarmc__TaskSpec spec;
    Swarmc__ContainerSpec container;
    Swarmc__TaskStatus status;
    char id[SWM_ID_LEN + 1];
    char *command[8];
};

static struct test_task tasks[8];
static int n_tasks;

static struct test_task *new_task(Swarmc__TaskState desired, const char *const *argv)
{
    assert_true(n_tasks < 8);
    struct test_task *t = &tasks[n_tasks++];
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "t%024d", ++task_seq);
    swarmc__task__init(&t->task);
    swarmc__task_spec__init(&t->spec);
    swarmc__container_spec__init(&t->container);
    swarmc__task_status__init(&t->status);
    t->container.image = IMAGE;
    size_t n = 0;
    while (argv != NULL && argv[n] != NULL && n < 7) {
        t->command[n] = (char *)argv[n];
        n++;
    }
    t->container.command = t->command;
    t->container.n_command = n;
    t->spec.container = &t->container;
    t->status.has_state = 1;
    t->status.state = SWARMC__TASK_STATE__TASK_STATE_ASSIGNED;
    t->task.id = t->id;
    t->task.node_id = NODE_ID;
    t->task.spec = &t->spec;
    t->task.status = &t->status;
    t->task.has_desired_state = 1;
    t->task.desired_state = desired;
    return t;
}

static const char *const sleeper[] = {"sleep", "1000", NULL};

/* Sends one assignments message: n changes, each "+" (update) or "-"
 * (remove) followed by its task, e.g. send_assignments(true, 2, "+", a,
 * "+", b). */
static void send_assignments(bool complete, int n, ...)
{
    Swarmc__Assignment items[8], *ptrs[8];
    va_list ap;
    va_start(ap, n);
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        const char *op = va_arg(ap, const char *);
        struct test_task *t = va_arg(ap, struct test_task *);
        swarmc__assignment__init(&items[i]);
        items[i].has_action = 1;
        items[i].action = op[0] == '-' ? SWARMC__ASSIGNMENT__ACTION__ASSIGNMENT_ACTION_REMOVE
                                       : SWARMC__ASSIGNMENT__ACTION__ASSIGNMENT_ACTION_UPDATE;
        items[i].task = &t->task;
        ptrs[i] = &items[i];
    }
    va_end(ap);
    Swarmc__AssignmentsMessage am = SWARMC__ASSIGNMENTS_MESSAGE__INIT;
    am.has_type = 1;
    am.type = complete ? SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_COMPLETE
                       : SWARMC__ASSIGNMENTS_MESSAGE__TYPE__ASSIGNMENTS_INCREMENTAL;
    am.changes = ptrs;
    am.n_changes = (size_t)n;
    Swarmc__DispatcherMessage msg = SWARMC__DISPATCHER_MESSAGE__INIT;
    msg.msg_case = SWARMC__DISPATCHER_MESSAGE__MSG_ASSIGNMENTS;
    msg.assignments = &am;
    struct swm_buf b = {0};
    assert_int_equal(proto_pack(&msg.base, &b), 0);
    agent_receive(agent, b.data, b.len);
    swm_buf_free(&b);
}

static const struct report *last_report(const struct test_task *t)
{
    for (int i = rec.n; i-- > 0;) {
        if (strcmp(rec.r[i].id, t->id) == 0)
            return &rec.r[i];
    }
    return NULL;
}

static int last_state(const struct test_task *t)
{
    const struct report *r = last_report(t);
    return r != NULL ? (int)r->state : -1;
}

static int n_reports(const struct test_task *t)
{
    int n = 0;
    for (int i = 0; i < rec.n; i++)
        n += strcmp(rec.r[i].id, t->id) == 0;
    return n;
}

/* The dispatcher's update of t after the store changed its desired state;
 * the store has applied the agent's reports so far. */
static void send_desired(struct test_task *t, Swarmc__TaskState desired)
{
    if (last_state(t) > (int)t->status.state)
        t->status.state = (Swarmc__TaskState)last_state(t);
    t->task.desired_state = desired;
    send_assignments(false, 1, "+", t);
}

/* Task states only move forward, one report per change. */
static void assert_reports_increase(const struct test_task *t)
{
    int prev = -1;
    for (int i = 0; i < rec.n; i++) {
        if (strcmp(rec.r[i].id, t->id) != 0)
            continue;
        if ((int)rec.r[i].state <= prev)
            fail_msg("task %s reported %s after %s", t->id, proto_task_state_name(rec.r[i].state),
                     proto_task_state_name((Swarmc__TaskState)prev));
        prev = (int)rec.r[i].state;
    }
}

static bool known(const struct test_task *t)
{
    return swm_strmap_get(&agent->tasks, t->id) != NULL;
}

static bool bundle_exists(const struct test_task *t)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/containers/%s", data_dir, t->id);
    return stat(path, &st) == 0;
}

/* True once pid is gone or a zombie; waits up to 5 s. */
static bool process_gone(int pid)
{
    for (int i = 0; i < 500; i++) {
        char path[64], buf[512] = "";
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return true;
        bool zombie = false;
        if (fgets(buf, sizeof(buf), f) != NULL) {
            const char *paren = strrchr(buf, ')');
            zombie = paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
        }
        fclose(f);
        if (zombie)
            return true;
        usleep(10000);
    }
    return false;
}

/* The container of t is removed and the agent forgot t. */
static void assert_removed(const struct test_task *t)
{
    assert_false(known(t));
    assert_false(bundle_exists(t));
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/runc/%s.pid", run_dir, t->id);
    assert_int_not_equal(stat(path, &st), 0);
}

/* Assigns t (desired RUNNING) and waits for RUNNING; returns the
 * container's pid. */
static int run_task(struct test_task *t)
{
    send_assignments(false, 1, "+", t);
    RUN_UNTIL(last_state(t) >= SWARMC__TASK_STATE__TASK_STATE_RUNNING, WAIT_MS);
    const struct report *r = last_report(t);
    if (r->state != SWARMC__TASK_STATE__TASK_STATE_RUNNING)
        fail_msg("task %s: %s (%s)", t->id, proto_task_state_name(r->state), r->err);
    assert_true(r->has_pid && r->pid > 0);
    assert_int_equal(kill(r->pid, 0), 0);
    t->status.state = r->state;
    return r->pid;
}

/* ------------------------------------------------------ per test -- */

static int test_setup(void **state)
{
    memset(&rec, 0, sizeof(rec));
    n_tasks = 0;
    removed_all_calls = 0;
    if (!usable)
        return 0;
    dir_seq++;
    snprintf(data_dir, sizeof(data_dir), "%s/data%d", base, dir_seq);
    snprintf(run_dir, sizeof(run_dir), "%s/run%d", base, dir_seq);
    open_agent();
    struct swm_err err = {0};
    if (image_load(agent_images(agent), image_tar, NULL, &err) != 0)
        fail_msg("image_load: %s", err.msg);
    return 0;
}

/* Kills and deletes whatever a failed test left: containers (through the
 * fake runc, which checks the pid is still its container), their shims,
 * the rootfs mounts, the dirs; then reaps our exited shims. */
static int test_teardown(void **state)
{
    if (!usable)
        return 0;
    close_loop(true);
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/containers", data_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char cmd[1024], path[512];
        snprintf(cmd, sizeof(cmd), "%s/bin/runc --root %s/runc delete --force %s >/dev/null 2>&1",
                 base, run_dir, e->d_name);
        if (system(cmd) != 0) {
            /* already gone */
        }
        snprintf(path, sizeof(path), "%s/%s/shim.pid", dir, e->d_name);
        struct swm_buf b = {0};
        int shim = swm_read_file(path, 64, &b) == 0 && b.data != NULL ? atoi((char *)b.data) : 0;
        swm_buf_free(&b);
        snprintf(path, sizeof(path), "/proc/%d/cmdline", shim);
        if (shim > 0 && swm_read_file(path, 1 << 16, &b) == 0 && b.data != NULL &&
            memmem(b.data, b.len, e->d_name, strlen(e->d_name)) != NULL)
            kill(shim, SIGKILL);
        swm_buf_free(&b);
        snprintf(path, sizeof(path), "%s/%s/rootfs", dir, e->d_name);
        umount2(path, MNT_DETACH);
    }
    if (d != NULL)
        closedir(d);
    swm_remove_tree(data_dir);
    swm_remove_tree(run_dir);
    for (int i = 0; i < 200; i++) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid < 0)
            break; /* no children left */
        if (pid == 0)
            usleep(10000);
    }
    return 0;
}

#define REQUIRE_USABLE()                                                                           \
    do {                                                                                           \
        if (!usable)                                                                               \
            skip();                                                                                \
    } while (0)

/* ------------------------------------------------------------ tests -- */

/* ACCEPTED .. RUNNING; desired SHUTDOWN stops it (kept, as history); a
 * REMOVE assignment deletes the container and the agent forgets the task. */
static void test_run_shutdown_remove(void **state)
{
    REQUIRE_USABLE();
    assert_int_equal(rec.registers, 1);
    struct test_task *t = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    send_assignments(true, 1, "+", t);
    RUN_UNTIL(last_state(t) == SWARMC__TASK_STATE__TASK_STATE_RUNNING, WAIT_MS);
    assert_reports_increase(t);
    /* Reports are batched per loop turn: the first carries the state the
     * task reached before its container ran. */
    assert_true(rec.r[0].state >= SWARMC__TASK_STATE__TASK_STATE_ACCEPTED &&
                rec.r[0].state <= SWARMC__TASK_STATE__TASK_STATE_STARTING);
    const struct report *r = last_report(t);
    assert_string_equal(r->message, "started");
    assert_true(r->has_pid);
    int pid = r->pid;
    assert_int_equal(kill(pid, 0), 0);

    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(agent_images_in_use(agent, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_true(strncmp(ids[0], "sha256:", 7) == 0);
    image_strv_free(ids);

    send_desired(t, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN);
    RUN_UNTIL(last_state(t) == SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN, WAIT_MS);
    assert_reports_increase(t);
    r = last_report(t);
    assert_true(r->has_exit_code);
    assert_int_equal(r->exit_code, 128 + SIGTERM);
    assert_true(process_gone(pid));
    RUN_IDLE(WAIT_MS);
    assert_true(known(t));
    assert_true(bundle_exists(t)); /* a stopped task keeps its container */

    int reports = n_reports(t);
    t->status.state = SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN;
    send_assignments(false, 1, "-", t);
    RUN_UNTIL(!known(t), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_removed(t);
    assert_int_equal(n_reports(t), reports);
}

/* A complete set without a running task: it is stopped, reported
 * SHUTDOWN, removed (from inside the executor's exit callback) and
 * forgotten; the other task is left alone. */
static void test_complete_set_without_task(void **state)
{
    REQUIRE_USABLE();
    struct test_task *gone = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    struct test_task *kept = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    int gone_pid = run_task(gone);
    int kept_pid = run_task(kept);
    int kept_reports = n_reports(kept);

    send_assignments(true, 1, "+", kept);
    RUN_UNTIL(!known(gone), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(last_state(gone), SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN);
    assert_reports_increase(gone);
    assert_true(process_gone(gone_pid));
    assert_removed(gone);
    assert_int_equal(n_reports(kept), kept_reports);
    assert_int_equal(kill(kept_pid, 0), 0);
    assert_true(known(kept));

    /* And the empty set: nothing is left. */
    send_assignments(true, 0);
    RUN_UNTIL(!known(kept), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_removed(kept);
    assert_int_equal(agent->tasks.len, 0);
}

/* Containers that end by themselves: COMPLETE for 0, FAILED with the code
 * otherwise; the containers stay until the tasks go. */
static void test_exit_codes(void **state)
{
    REQUIRE_USABLE();
    const char *const ok_argv[] = {"true", NULL};
    const char *const bad_argv[] = {"sh", "-c", "exit 3", NULL};
    struct test_task *ok = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, ok_argv);
    struct test_task *bad = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, bad_argv);
    send_assignments(true, 2, "+", ok, "+", bad);
    RUN_UNTIL(last_state(ok) >= SWARMC__TASK_STATE__TASK_STATE_COMPLETE &&
                  last_state(bad) >= SWARMC__TASK_STATE__TASK_STATE_COMPLETE,
              WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_reports_increase(ok);
    assert_reports_increase(bad);
    assert_int_equal(last_state(ok), SWARMC__TASK_STATE__TASK_STATE_COMPLETE);
    assert_int_equal(last_report(ok)->exit_code, 0);
    assert_int_equal(last_state(bad), SWARMC__TASK_STATE__TASK_STATE_FAILED);
    assert_int_equal(last_report(bad)->exit_code, 3);
    assert_string_equal(last_report(bad)->err, "task: non-zero exit (3)");
    assert_true(bundle_exists(ok) && bundle_exists(bad));

    send_assignments(true, 0);
    RUN_UNTIL(!known(ok) && !known(bad), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_removed(ok);
    assert_removed(bad);
}

/* A start that fails leaves no container: FAILED with runc's message, its
 * image not in use, and the task forgotten once unassigned. */
static void test_start_failure(void **state)
{
    REQUIRE_USABLE();
    const char *const argv[] = {"/no/such/binary", NULL};
    struct test_task *t = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, argv);
    send_assignments(true, 1, "+", t);
    RUN_UNTIL(last_state(t) >= SWARMC__TASK_STATE__TASK_STATE_COMPLETE, WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_reports_increase(t);
    const struct report *r = last_report(t);
    assert_int_equal(r->state, SWARMC__TASK_STATE__TASK_STATE_FAILED);
    assert_non_null(strstr(r->err, "no such file or directory"));
    assert_false(r->has_container);
    assert_false(bundle_exists(t));

    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(agent_images_in_use(agent, &ids, &n), 0);
    assert_int_equal(n, 0);
    image_strv_free(ids);

    send_assignments(true, 0);
    RUN_IDLE(WAIT_MS);
    assert_removed(t);
}

/* Desired SHUTDOWN arrives while the container starts: it runs, then is
 * stopped; reports stay in order. A task that is unassigned while starting
 * ends the same way and is removed. */
static void test_shutdown_while_starting(void **state)
{
    REQUIRE_USABLE();
    struct test_task *t = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    struct test_task *u = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    send_assignments(true, 2, "+", t, "+", u);
    send_desired(t, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN);
    send_assignments(false, 1, "-", u);
    RUN_UNTIL(last_state(t) == SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN && !known(u), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_reports_increase(t);
    assert_reports_increase(u);
    assert_int_equal(last_state(u), SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN);
    assert_true(bundle_exists(t));
    assert_removed(u);
}

/* Desired READY (a restart delay): prepared, no container, until RUNNING. */
static void test_ready_then_running(void **state)
{
    REQUIRE_USABLE();
    struct test_task *t = new_task(SWARMC__TASK_STATE__TASK_STATE_READY, sleeper);
    send_assignments(true, 1, "+", t);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(last_state(t), SWARMC__TASK_STATE__TASK_STATE_READY);
    assert_false(bundle_exists(t));
    send_desired(t, SWARMC__TASK_STATE__TASK_STATE_RUNNING);
    RUN_UNTIL(last_state(t) == SWARMC__TASK_STATE__TASK_STATE_RUNNING, WAIT_MS);
    assert_reports_increase(t);
    send_assignments(true, 0);
    RUN_UNTIL(!known(t), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_removed(t);
}

/* The daemon restarts: the running container is adopted and, when its
 * assignment arrives with the store still at STARTING (the RUNNING report
 * was lost with the daemon), reported RUNNING with its pid. It is then
 * stopped and removed as usual. */
static void test_adopt_running(void **state)
{
    REQUIRE_USABLE();
    struct test_task *t = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    int pid = run_task(t);
    close_agent();
    assert_int_equal(kill(pid, 0), 0);

    memset(&rec, 0, sizeof(rec));
    open_agent();
    assert_int_equal(rec.registers, 1);
    assert_true(known(t));
    t->status.state = SWARMC__TASK_STATE__TASK_STATE_STARTING;
    send_assignments(true, 1, "+", t);
    RUN_UNTIL(last_state(t) == SWARMC__TASK_STATE__TASK_STATE_RUNNING, WAIT_MS);
    assert_int_equal(n_reports(t), 1);
    assert_int_equal(last_report(t)->pid, pid);
    assert_int_equal(kill(pid, 0), 0);

    send_desired(t, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN);
    RUN_UNTIL(last_state(t) == SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN, WAIT_MS);
    assert_int_equal(last_report(t)->exit_code, 128 + SIGTERM);
    send_assignments(false, 1, "-", t);
    RUN_UNTIL(!known(t), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_removed(t);
}

/* An adopted container is stopped with its task's stop signal, not
 * SIGTERM: the agent learns it from the assignment. */
static void test_adopt_stop_signal(void **state)
{
    REQUIRE_USABLE();
    const char *const argv[] = {
        "sh", "-c", "trap 'exit 7' USR1; echo ready; while :; do sleep 0.05; done", NULL};
    struct test_task *t = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, argv);
    t->container.stop_signal = "SIGUSR1";
    run_task(t);
    /* Wait until the trap is installed. */
    char path[256];
    snprintf(path, sizeof(path), "%s/containers/%s/stdout.log", data_dir, t->id);
    for (int i = 0; i < 500; i++) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > 0)
            break;
        usleep(10000);
    }
    close_agent();

    memset(&rec, 0, sizeof(rec));
    open_agent();
    send_assignments(true, 1, "+", t);
    send_desired(t, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN);
    RUN_UNTIL(last_state(t) == SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN, WAIT_MS);
    assert_int_equal(last_report(t)->exit_code, 7);
    send_assignments(true, 0);
    RUN_UNTIL(!known(t), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_removed(t);
}

/* After a restart, containers whose tasks are not in the first complete
 * set are stopped and removed, running or not. */
static void test_adopt_not_assigned(void **state)
{
    REQUIRE_USABLE();
    const char *const quick[] = {"true", NULL};
    struct test_task *running = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    struct test_task *exited = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, quick);
    int pid = run_task(running);
    send_assignments(false, 1, "+", exited);
    RUN_UNTIL(last_state(exited) == SWARMC__TASK_STATE__TASK_STATE_COMPLETE, WAIT_MS);
    close_agent();

    memset(&rec, 0, sizeof(rec));
    open_agent();
    assert_true(known(running) && known(exited));
    send_assignments(true, 0);
    RUN_UNTIL(!known(running) && !known(exited), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_true(process_gone(pid));
    assert_removed(running);
    assert_removed(exited);
}

/* The agent's phase for t, -1 if it does not know t. */
static int phase_of(const struct test_task *t)
{
    const struct agent_task *at = swm_strmap_get(&agent->tasks, t->id);
    return at != NULL ? (int)at->phase : -1;
}

/* An adopted container that exits before the first assignment set says
 * whether its task still exists: reported with its exit code (once there
 * is a session) and kept until the set arrives; its task is not failed as
 * "not found". */
static void test_adopt_exit_before_assignments(void **state)
{
    REQUIRE_USABLE();
    struct test_task *t = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    int pid = run_task(t);
    close_agent();

    memset(&rec, 0, sizeof(rec));
    open_agent_only();
    assert_int_equal(kill(pid, SIGKILL), 0);
    RUN_UNTIL(phase_of(t) == PHASE_EXITED, WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(rec.n, 0);
    agent_connect(agent, on_send, NULL);
    RUN_UNTIL(last_state(t) >= SWARMC__TASK_STATE__TASK_STATE_COMPLETE, WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(last_state(t), SWARMC__TASK_STATE__TASK_STATE_FAILED);
    assert_int_equal(last_report(t)->exit_code, 128 + SIGKILL);
    assert_true(known(t));
    assert_true(bundle_exists(t));

    /* The store has the FAILED report by the time the set comes. */
    t->status.state = SWARMC__TASK_STATE__TASK_STATE_FAILED;
    t->task.desired_state = SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN;
    send_assignments(true, 1, "+", t);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(n_reports(t), 1);
    assert_true(bundle_exists(t));
    send_assignments(false, 1, "-", t);
    RUN_UNTIL(!known(t), WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_removed(t);
}

static void on_removed_all(void *arg)
{
    removed_all_calls++;
}

/* `leave`: every container stopped and removed, then the callback, once. */
static void test_remove_all(void **state)
{
    REQUIRE_USABLE();
    const char *const quick[] = {"true", NULL};
    struct test_task *running = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    struct test_task *exited = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, quick);
    struct test_task *starting = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    int pid = run_task(running);
    send_assignments(false, 1, "+", exited);
    RUN_UNTIL(last_state(exited) == SWARMC__TASK_STATE__TASK_STATE_COMPLETE, WAIT_MS);
    send_assignments(false, 1, "+", starting);
    agent_remove_all(agent, on_removed_all, NULL);
    /* Assignments that still come in start nothing. */
    struct test_task *late = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    send_assignments(false, 1, "+", late);
    RUN_UNTIL(removed_all_calls == 1, WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(removed_all_calls, 1);
    assert_int_equal(agent->tasks.len, 0);
    assert_true(process_gone(pid));
    assert_removed(running);
    assert_removed(exited);
    assert_removed(starting);
    assert_removed(late);
    assert_int_equal(n_reports(late), 0);
}

/* After a restart the store knows tasks whose containers are gone: one it
 * saw running has failed; one that had ended is left as it was. */
static void test_lost_containers(void **state)
{
    REQUIRE_USABLE();
    struct test_task *lost = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    struct test_task *ended = new_task(SWARMC__TASK_STATE__TASK_STATE_RUNNING, sleeper);
    lost->status.state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    ended->status.state = SWARMC__TASK_STATE__TASK_STATE_COMPLETE;
    send_assignments(true, 2, "+", lost, "+", ended);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(last_state(lost), SWARMC__TASK_STATE__TASK_STATE_FAILED);
    assert_string_equal(last_report(lost)->err, "container not found after the daemon restarted");
    assert_int_equal(n_reports(ended), 0);
    assert_false(bundle_exists(lost) || bundle_exists(ended));
    send_assignments(true, 0);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(agent->tasks.len, 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "shim") == 0)
        return exec_shim_main(argc - 1, argv + 1);
    if (!enter_namespaces())
        fprintf(stderr, "cannot enter a private mount namespace: %s\n", strerror(errno));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_shutdown_remove, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_complete_set_without_task, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_exit_codes, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_start_failure, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_while_starting, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_ready_then_running, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_adopt_running, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_adopt_stop_signal, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_adopt_not_assigned, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_adopt_exit_before_assignments, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_all, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_lost_containers, test_setup, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
