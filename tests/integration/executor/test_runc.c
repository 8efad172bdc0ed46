/* agent/executor/ end to end with runc 1.1: real containers from a busybox
 * layer, the shim (this binary, dispatched on argv[1] == "shim"), stop and
 * SIGKILL escalation, exec, removal, and re-adoption after the "daemon"
 * (executor + loop) went away. Needs root and runc; skipped otherwise.
 *
 * Everything lives under /tmp/swm-exec-<pid>/ (layer, state dir, runc
 * root, and a runc wrapper that logs its calls) with container ids
 * prefixed "t<pid>-"; each test cleans up its containers, mounts and
 * directories even when it fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
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

#include "agent/executor/executor.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/timeutil.h"

#define WAIT_MS 20000

static char base[128], layer[192], state_dir[192], runc_root[192], self_exe[PATH_MAX];
static char runc_calls_log[192];
static char *lower_dirs[2];
static bool usable;

/* Ids this test created, for the forced cleanup. */
static char ids[16][64];
static int n_ids;

struct events {
    int started, start_status;
    struct exec_status start_st;
    char start_err[512];
    int exited;
    struct exec_status exit_st;
    char exit_id[64];
    int removed, remove_status;
    int adopted;
    struct exec_status adopt_st[8];
    char adopt_id[8][64];
    int execs, exec_status;
    char exec_out[4200];
    /* exit_cb calls executor_remove twice for the exiting container, as the
     * agent does when a task goes away while its container stops. */
    bool remove_on_exit;
    int remove_in_exit_rc, remove_again_in_exit_rc;
};

static uv_loop_t loop;
static bool loop_open;
static struct executor *ex;
static struct events ev;

/* ------------------------------------------------------------ setup -- */

static int copy_file(const char *from, const char *to, mode_t mode)
{
    struct swm_buf b = {0};
    int rc = swm_read_file(from, 64 << 20, &b);
    if (rc == 0)
        rc = swm_write_file_atomic(to, b.data, b.len, mode);
    swm_buf_free(&b);
    return rc;
}

static int group_setup(void **state)
{
    if (geteuid() != 0 || access("/usr/sbin/runc", X_OK) != 0 || access("/bin/busybox", R_OK) != 0)
        return 0; /* tests skip */
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0)
        return -1;
    self_exe[n] = '\0';
    snprintf(base, sizeof(base), "/tmp/swm-exec-%d", (int)getpid());
    snprintf(layer, sizeof(layer), "%s/layer", base);
    snprintf(state_dir, sizeof(state_dir), "%s/containers", base);
    snprintf(runc_root, sizeof(runc_root), "%s/runc", base);
    char path[512];
    snprintf(path, sizeof(path), "%s/bin", layer);
    if (swm_mkdir_p(path, 0755) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/etc", layer);
    if (swm_mkdir_p(path, 0755) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/bin/busybox", layer);
    if (copy_file("/bin/busybox", path, 0755) < 0)
        return -1;
    static const char *const applets[] = {"sh",       "sleep", "echo", "cat",  "id",
                                          "hostname", "touch", "pwd",  "true", NULL};
    for (size_t i = 0; applets[i] != NULL; i++) {
        snprintf(path, sizeof(path), "%s/bin/%s", layer, applets[i]);
        if (symlink("busybox", path) < 0)
            return -1;
    }
    static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n";
    static const char group[] = "root:x:0:\napp:x:1000:\n";
    snprintf(path, sizeof(path), "%s/etc/passwd", layer);
    if (swm_write_file_atomic(path, passwd, strlen(passwd), 0644) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/etc/group", layer);
    if (swm_write_file_atomic(path, group, strlen(group), 0644) < 0)
        return -1;
    lower_dirs[0] = layer;
    lower_dirs[1] = NULL;

    /* The executor finds runc in PATH first: a wrapper there records each
     * invocation (one line of arguments) before running the real one. */
    snprintf(runc_calls_log, sizeof(runc_calls_log), "%s/runc.calls", base);
    char wrapper[512], bin[256];
    snprintf(bin, sizeof(bin), "%s/bin", base);
    if (swm_mkdir_p(bin, 0755) < 0)
        return -1;
    snprintf(wrapper, sizeof(wrapper), "#!/bin/sh\necho \"$*\" >>%s\nexec /usr/sbin/runc \"$@\"\n",
             runc_calls_log);
    snprintf(path, sizeof(path), "%s/runc", bin);
    if (swm_write_file_atomic(path, wrapper, strlen(wrapper), 0755) < 0)
        return -1;
    const char *old_path = getenv("PATH");
    char new_path[4096];
    snprintf(new_path, sizeof(new_path), "%s:%s", bin,
             old_path != NULL ? old_path : "/usr/bin:/bin");
    setenv("PATH", new_path, 1);
    usable = true;
    return 0;
}

/* How many times runc was run with arguments ending in "<verb> <id>". */
static int runc_calls(const char *verb, const char *id)
{
    struct swm_buf b = {0};
    char want[256];
    int n = 0;
    snprintf(want, sizeof(want), "%s %s", verb, id);
    if (swm_read_file(runc_calls_log, 1 << 22, &b) == 0 && b.data != NULL) {
        char *save = NULL;
        for (char *line = strtok_r((char *)b.data, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            size_t len = strlen(line), wlen = strlen(want);
            n += len >= wlen && strcmp(line + len - wlen, want) == 0 &&
                 (len == wlen || line[len - wlen - 1] == ' ');
        }
    }
    swm_buf_free(&b);
    return n;
}

static void force_cleanup_id(const char *id)
{
    char cmd[1024], path[512];
    snprintf(cmd, sizeof(cmd), "/usr/sbin/runc --root %s delete --force %s >/dev/null 2>&1",
             runc_root, id);
    if (system(cmd) != 0) {
        /* nothing to delete */
    }
    snprintf(path, sizeof(path), "%s/%s/rootfs", state_dir, id);
    umount2(path, MNT_DETACH);
    snprintf(path, sizeof(path), "%s/%s", state_dir, id);
    /* A shim may still be writing its exit file: retry briefly. */
    for (int i = 0; i < 50 && swm_remove_tree(path) < 0; i++)
        usleep(20000);
}

static int group_teardown(void **state)
{
    if (!usable)
        return 0;
    return swm_remove_tree(base);
}

/* ------------------------------------------------------- callbacks -- */

static void on_remove(void *arg, const char *id, int status);

static void on_exit_cb(void *arg, const char *id, const struct exec_status *st)
{
    struct events *e = arg;
    e->exited++;
    e->exit_st = *st;
    snprintf(e->exit_id, sizeof(e->exit_id), "%s", id);
    if (e->remove_on_exit) {
        e->remove_in_exit_rc = executor_remove(ex, id, on_remove, e);
        e->remove_again_in_exit_rc = executor_remove(ex, id, on_remove, e);
    }
}

static void on_start(void *arg, const char *id, int status, const struct exec_status *st,
                     const struct swm_err *err)
{
    struct events *e = arg;
    e->started++;
    e->start_status = status;
    if (st != NULL)
        e->start_st = *st;
    snprintf(e->start_err, sizeof(e->start_err), "%s", err != NULL ? err->msg : "");
}

static void on_remove(void *arg, const char *id, int status)
{
    struct events *e = arg;
    e->removed++;
    e->remove_status = status;
}

static void on_adopt(void *arg, const char *id, const struct exec_status *st)
{
    struct events *e = arg;
    if (e->adopted < 8) {
        e->adopt_st[e->adopted] = *st;
        snprintf(e->adopt_id[e->adopted], sizeof(e->adopt_id[0]), "%s", id);
    }
    e->adopted++;
}

static void on_exec(void *arg, int status, const char *output)
{
    struct events *e = arg;
    e->execs++;
    e->exec_status = status;
    snprintf(e->exec_out, sizeof(e->exec_out), "%s", output);
}

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until cond holds or ms pass; the timer is closed before
 * the assertion so that a failure leaves the loop consistent. */
#define RUN_UNTIL(cond, ms)                                                                        \
    do {                                                                                           \
        uv_timer_t t_;                                                                             \
        bool fired_ = false;                                                                       \
        uv_timer_init(&loop, &t_);                                                                 \
        t_.data = &fired_;                                                                         \
        uv_timer_start(&t_, on_deadline, (ms), 0);                                                 \
        while (!(cond) && !fired_)                                                                 \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        bool ok_ = (cond);                                                                         \
        uv_close((uv_handle_t *)&t_, NULL);                                                        \
        uv_run(&loop, UV_RUN_NOWAIT);                                                              \
        if (!ok_)                                                                                  \
            fail_msg("timed out after %d ms waiting for %s", (int)(ms), #cond);                    \
    } while (0)

/* Runs the loop until nothing keeps it alive (running containers do not:
 * their shims are unref'd) or ms pass: no callback is left to come. */
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

/* Runs the loop for ms, whatever happens. */
static void run_for(uint64_t ms)
{
    uv_timer_t t;
    bool fired = false;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_deadline, ms, 0);
    while (!fired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ------------------------------------------------------ per test -- */

static void open_executor(void)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_open = true;
    struct swm_err err = {0};
    int rc = executor_open(&loop, state_dir, runc_root, self_exe, on_exit_cb, &ev, &ex, &err);
    if (rc != 0)
        fail_msg("executor_open: %s", err.msg);
}

/* What a dying daemon leaves behind: nothing of the executor or loop. */
static void close_executor(void)
{
    executor_close(ex);
    ex = NULL;
    if (loop_open) {
        for (int i = 0; i < 1000 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
            usleep(10000);
        assert_int_equal(uv_loop_close(&loop), 0);
        loop_open = false;
    }
}

static int test_setup(void **state)
{
    memset(&ev, 0, sizeof(ev));
    n_ids = 0;
    if (!usable)
        return 0;
    open_executor();
    return 0;
}

static int test_teardown(void **state)
{
    if (!usable)
        return 0;
    if (ex != NULL || loop_open) {
        executor_close(ex);
        ex = NULL;
        if (loop_open) {
            for (int i = 0; i < 1000 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
                usleep(10000);
            uv_loop_close(&loop);
            loop_open = false;
        }
    }
    for (int i = 0; i < n_ids; i++)
        force_cleanup_id(ids[i]);
    return 0;
}

#define REQUIRE_USABLE()                                                                           \
    do {                                                                                           \
        if (!usable)                                                                               \
            skip();                                                                                \
    } while (0)

static const char *new_id(const char *name)
{
    assert_true(n_ids < 16);
    snprintf(ids[n_ids], sizeof(ids[0]), "t%d-%s", (int)getpid(), name);
    return ids[n_ids++];
}

static void start_ok(const char *id, char **argv, struct exec_container_spec *extra)
{
    struct exec_container_spec spec = {0};
    if (extra != NULL)
        spec = *extra;
    spec.id = id;
    spec.argv = argv;
    spec.lower_dirs = lower_dirs;
    if (spec.hostname == NULL)
        spec.hostname = "test";
    int before = ev.started;
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), 0);
    RUN_UNTIL(ev.started > before, WAIT_MS);
    if (ev.start_status != 0)
        fail_msg("start %s: %s", id, ev.start_err);
    assert_int_equal(ev.start_st.state, EXEC_STATE_RUNNING);
    assert_true(ev.start_st.pid > 0);
}

static char *read_log(const char *id, const char *name)
{
    char *dir = executor_log_dir(ex, id);
    assert_non_null(dir);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    swm_free(dir);
    struct swm_buf b = {0};
    assert_int_equal(swm_read_file(path, 1 << 20, &b), 0);
    return b.data != NULL ? (char *)b.data : swm_strdup("");
}

/* The log's texts without their timestamps. */
static char *log_texts(const char *id, const char *name)
{
    char *log = read_log(id, name);
    struct swm_buf out = {0};
    char *save = NULL;
    for (char *line = strtok_r(log, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        assert_true(strlen(line) > 31 && line[4] == '-' && line[10] == 'T' && line[29] == 'Z');
        swm_buf_printf(&out, "%s\n", line + 31);
    }
    swm_free(log);
    return out.data != NULL ? (char *)out.data : swm_strdup("");
}

static bool is_mounted(const char *path)
{
    struct swm_buf b = {0};
    bool found = false;
    if (swm_read_file("/proc/self/mountinfo", 1 << 22, &b) == 0 && b.data != NULL) {
        char needle[600];
        snprintf(needle, sizeof(needle), " %s ", path);
        found = strstr((char *)b.data, needle) != NULL;
    }
    swm_buf_free(&b);
    return found;
}

static void assert_gone(const char *id)
{
    char path[512], cmd[1024];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", state_dir, id);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/%s/rootfs", state_dir, id);
    assert_false(is_mounted(path));
    snprintf(cmd, sizeof(cmd), "/usr/sbin/runc --root %s state %s >/dev/null 2>&1", runc_root, id);
    assert_int_not_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "/sys/fs/cgroup/pids/swarmc/%s", id);
    assert_int_not_equal(stat(path, &st), 0);
    struct exec_status es;
    assert_int_equal(executor_inspect(ex, id, &es), SWM_ENOTFOUND);
}

static void remove_ok(const char *id)
{
    int before = ev.removed;
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), 0);
    RUN_UNTIL(ev.removed > before, WAIT_MS);
    assert_int_equal(ev.remove_status, 0);
    assert_gone(id);
}

/* ------------------------------------------------------------ tests -- */

static void test_run_to_exit(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("exit");
    char *argv[] = {"sh", "-c", "echo hello; echo err >&2; exit 3", NULL};
    start_ok(id, argv, NULL);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);
    assert_string_equal(ev.exit_id, id);
    assert_int_equal(ev.exit_st.state, EXEC_STATE_EXITED);
    assert_int_equal(ev.exit_st.exit_code, 3);
    assert_true(ev.exit_st.finished_ns >= ev.start_st.started_ns - SWM_NS_PER_SEC);

    struct exec_status st;
    assert_int_equal(executor_inspect(ex, id, &st), 0);
    assert_int_equal(st.state, EXEC_STATE_EXITED);
    assert_int_equal(st.exit_code, 3);

    char *out = log_texts(id, "stdout.log");
    assert_string_equal(out, "hello\n");
    swm_free(out);
    char *err = log_texts(id, "stderr.log");
    assert_string_equal(err, "err\n");
    swm_free(err);

    /* Stopping an exited container is a no-op, signalling it an error. */
    assert_int_equal(executor_stop(ex, id, SIGTERM, 0), 0);
    assert_int_equal(executor_signal(ex, id, SIGTERM), -ESRCH);
    remove_ok(id);
    assert_int_equal(ev.exited, 1);
}

static void test_start_failure(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("nope");
    char *argv[] = {"/no/such/binary", NULL};
    struct exec_container_spec spec = {.id = id, .argv = argv, .lower_dirs = lower_dirs};
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), 0);
    RUN_UNTIL(ev.started == 1, WAIT_MS);
    assert_int_equal(ev.start_status, SWM_EEXEC);
    assert_non_null(strstr(ev.start_err, "no such file or directory"));
    assert_gone(id);
    assert_int_equal(ev.exited, 0);

    /* A user the image does not know fails before runc runs. */
    spec.id = new_id("nouser");
    spec.argv = (char *[]){"true", NULL};
    spec.user = "ghost";
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), 0);
    RUN_UNTIL(ev.started == 2, WAIT_MS);
    assert_int_equal(ev.start_status, SWM_EINVAL_SPEC);
    assert_string_equal(ev.start_err, "unable to find user ghost: no matching entries in passwd "
                                      "file");
    assert_gone(spec.id);
}

static void test_start_validation(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("dup");
    char *argv[] = {"sleep", "1000", NULL};
    start_ok(id, argv, NULL);
    struct exec_container_spec spec = {.id = id, .argv = argv, .lower_dirs = lower_dirs};
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), SWM_EEXISTS);
    spec.id = "bad/id";
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), SWM_EINVAL_SPEC);
    spec.id = "fine";
    spec.argv = (char *[]){NULL};
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), SWM_EINVAL_SPEC);
    assert_int_equal(executor_stop(ex, "unknown", SIGTERM, 0), SWM_ENOTFOUND);
    assert_int_equal(executor_remove(ex, "unknown", NULL, NULL), SWM_ENOTFOUND);
    assert_int_equal(ev.started, 1);
    remove_ok(id);
}

static void test_stop_escalates_to_sigkill(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("sleeper");
    char *argv[] = {"sleep", "1000", NULL};
    start_ok(id, argv, NULL);
    int64_t t0 = swm_mono_ns();
    /* sleep as pid 1 has no SIGTERM handler: the kernel drops the signal. */
    assert_int_equal(executor_stop(ex, id, SIGTERM, 200 * SWM_NS_PER_MS), 0);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);
    assert_int_equal(ev.exit_st.exit_code, 128 + SIGKILL);
    assert_true(swm_mono_ns() - t0 >= 200 * SWM_NS_PER_MS);
    remove_ok(id);
}

static void test_stop_graceful(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("trap");
    char *argv[] = {"sh", "-c",
                    "trap 'echo bye; exit 7' TERM; echo ready; "
                    "while true; do sleep 0.05; done",
                    NULL};
    start_ok(id, argv, NULL);
    /* Wait until the trap is installed. */
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/stdout.log", state_dir, id);
    for (int i = 0; i < 200; i++) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > 0)
            break;
        usleep(10000);
    }
    assert_int_equal(executor_stop(ex, id, SIGTERM, 10 * SWM_NS_PER_SEC), 0);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);
    assert_int_equal(ev.exit_st.exit_code, 7);
    char *out = log_texts(id, "stdout.log");
    assert_string_equal(out, "ready\nbye\n");
    swm_free(out);
    remove_ok(id);
}

static void test_container_config(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("config");
    char *argv[] = {"sh", "-c",
                    "id -u; id -g; hostname; echo $FOO; pwd; "
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                    "cat /sys/fs/cgroup/pids/pids.max; "
                    "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; "
                    "busybox grep -q '^overlay / overlay ro' /proc/mounts && echo ro || echo rw; "
                    "cat /etc/hostname; "
                    "cat /sys/class/net/lo/operstate; "
                    "cat /sys/class/net/eth0/operstate 2>/dev/null || echo no-eth0",
                    NULL};
    char *env[] = {"FOO=bar", NULL};
    struct exec_container_spec extra = {
        .hostname = "box",
        .env = env,
        .cwd = "/bin",
        .user = "app",
        .memory_limit_bytes = 64 * 1024 * 1024,
        .pids_limit = 64,
        .nano_cpus = 500000000,
        .read_only_rootfs = true,
    };
    start_ok(id, argv, &extra);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);
    assert_int_equal(ev.exit_st.exit_code, 0);
    char *out = log_texts(id, "stdout.log");
    /* A new network namespace: loopback only ("unknown" is lo's state). */
    const char *want =
        "1000\n1000\nbox\nbar\n/bin\n67108864\n64\n50000\nro\nbox\nunknown\nno-eth0\n";
    if (strcmp(out, want) != 0) {
        char *err = read_log(id, "stderr.log");
        fail_msg("container saw:\n%s\nstderr:\n%s", out, err);
    }
    swm_free(out);
    remove_ok(id);
}

static void test_exec(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("exec");
    char *argv[] = {"sleep", "1000", NULL};
    start_ok(id, argv, NULL);

    char *echo[] = {"sh", "-c", "echo out; echo err >&2", NULL};
    assert_int_equal(executor_exec(ex, id, echo, 10 * SWM_NS_PER_SEC, on_exec, &ev), 0);
    RUN_UNTIL(ev.execs == 1, WAIT_MS);
    assert_int_equal(ev.exec_status, 0);
    assert_string_equal(ev.exec_out, "out\nerr\n");

    char *fail[] = {"sh", "-c", "exit 5", NULL};
    assert_int_equal(executor_exec(ex, id, fail, 10 * SWM_NS_PER_SEC, on_exec, &ev), 0);
    RUN_UNTIL(ev.execs == 2, WAIT_MS);
    assert_int_equal(ev.exec_status, 5);

    /* Output is bounded to 4 KiB. */
    char *big[] = {"sh", "-c", "i=0; while [ $i -lt 1000 ]; do echo 0123456789; i=$((i+1)); done",
                   NULL};
    assert_int_equal(executor_exec(ex, id, big, 10 * SWM_NS_PER_SEC, on_exec, &ev), 0);
    RUN_UNTIL(ev.execs == 3, WAIT_MS);
    assert_int_equal(ev.exec_status, 0);
    assert_int_equal(strlen(ev.exec_out), 4096);

    char *slow[] = {"sleep", "30", NULL};
    int64_t t0 = swm_mono_ns();
    assert_int_equal(executor_exec(ex, id, slow, 300 * SWM_NS_PER_MS, on_exec, &ev), 0);
    RUN_UNTIL(ev.execs == 4, WAIT_MS);
    assert_int_equal(ev.exec_status, -ETIMEDOUT);
    assert_true(swm_mono_ns() - t0 < 5 * SWM_NS_PER_SEC);

    char *missing[] = {"/nope", NULL};
    assert_int_equal(executor_exec(ex, id, missing, 10 * SWM_NS_PER_SEC, on_exec, &ev), 0);
    RUN_UNTIL(ev.execs == 5, WAIT_MS);
    assert_true(ev.exec_status != 0);

    assert_int_equal(executor_exec(ex, "unknown", echo, SWM_NS_PER_SEC, on_exec, &ev),
                     SWM_ENOTFOUND);
    assert_int_equal(ev.exited, 0); /* the container survived it all */
    remove_ok(id);
}

static void test_remove_running(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("rmrun");
    char *argv[] = {"sleep", "1000", NULL};
    start_ok(id, argv, NULL);
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), 0);
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), -EBUSY);
    RUN_UNTIL(ev.removed == 1, WAIT_MS);
    assert_int_equal(ev.exited, 1); /* the kill is reported as an exit */
    assert_int_equal(ev.exit_st.exit_code, 128 + SIGKILL);
    assert_int_equal(ev.remove_status, 0);
    assert_gone(id);
}

/* Removed while its bundle is being prepared: the start fails, nothing
 * runs, nothing is left. */
static void test_remove_while_starting(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("rmstart");
    char *argv[] = {"sleep", "1000", NULL};
    struct exec_container_spec spec = {.id = id, .argv = argv, .lower_dirs = lower_dirs};
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), 0);
    struct exec_status st;
    assert_int_equal(executor_inspect(ex, id, &st), 0);
    assert_int_equal(st.state, EXEC_STATE_CREATED);
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), 0);
    RUN_UNTIL(ev.removed == 1, WAIT_MS);
    assert_int_equal(ev.started, 1);
    assert_int_equal(ev.start_status, SWM_ESHUTDOWN);
    assert_int_equal(ev.remove_status, 0);
    assert_gone(id);
}

static int find_adopted(const char *id)
{
    for (int i = 0; i < ev.adopted && i < 8; i++) {
        if (strcmp(ev.adopt_id[i], id) == 0)
            return i;
    }
    return -1;
}

static void test_adopt(void **state)
{
    REQUIRE_USABLE();
    const char *running = new_id("adopt-run");
    const char *exited = new_id("adopt-exit");
    char *sleeper[] = {"sh", "-c", "echo before; sleep 1000", NULL};
    char *quick[] = {"sh", "-c", "exit 4", NULL};
    start_ok(running, sleeper, NULL);
    int pid = ev.start_st.pid;
    start_ok(exited, quick, NULL);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);

    /* The daemon dies: executor and loop go away, the shims stay. */
    close_executor();
    assert_int_equal(kill(pid, 0), 0);

    memset(&ev, 0, sizeof(ev));
    open_executor();
    int n = executor_adopt(ex, on_adopt, &ev);
    assert_int_equal(n, 2);
    int r = find_adopted(running), e = find_adopted(exited);
    assert_true(r >= 0 && e >= 0);
    assert_int_equal(ev.adopt_st[r].state, EXEC_STATE_RUNNING);
    assert_int_equal(ev.adopt_st[r].pid, pid);
    assert_true(ev.adopt_st[r].started_ns > 0);
    assert_int_equal(ev.adopt_st[e].state, EXEC_STATE_EXITED);
    assert_int_equal(ev.adopt_st[e].exit_code, 4);
    /* Adopting twice reports nothing new. */
    assert_int_equal(executor_adopt(ex, on_adopt, &ev), 0);

    /* The adopted container's output and exit still reach us. */
    char *out = log_texts(running, "stdout.log");
    assert_string_equal(out, "before\n");
    swm_free(out);
    assert_int_equal(executor_signal(ex, running, SIGKILL), 0);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);
    assert_string_equal(ev.exit_id, running);
    assert_int_equal(ev.exit_st.exit_code, 128 + SIGKILL);
    remove_ok(running);
    remove_ok(exited);
}

/* A stop asked for before the container runs is applied once it does. */
static void test_stop_while_starting(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("stopstart");
    char *argv[] = {"sleep", "1000", NULL};
    struct exec_container_spec spec = {.id = id, .argv = argv, .lower_dirs = lower_dirs};
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), 0);
    assert_int_equal(executor_stop(ex, id, SIGTERM, 100 * SWM_NS_PER_MS), 0);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);
    assert_int_equal(ev.started, 1);
    assert_int_equal(ev.start_status, 0);
    assert_int_equal(ev.exit_st.exit_code, 128 + SIGKILL);
    remove_ok(id);
}

/* The daemon goes away with a bundle being prepared and an exec in flight:
 * no crash, no leak, no callback; the next executor finds the running
 * container RUNNING and the never-started one EXITED (-1), and removes
 * both cleanly. */
static void test_close_while_busy(void **state)
{
    REQUIRE_USABLE();
    const char *running = new_id("busy-run");
    const char *preparing = new_id("busy-prep");
    char *argv[] = {"sleep", "1000", NULL};
    start_ok(running, argv, NULL);
    struct exec_container_spec spec = {.id = preparing, .argv = argv, .lower_dirs = lower_dirs};
    assert_int_equal(executor_start(ex, &spec, on_start, &ev), 0);
    char *slow[] = {"sleep", "1", NULL};
    assert_int_equal(executor_exec(ex, running, slow, 10 * SWM_NS_PER_SEC, on_exec, &ev), 0);
    close_executor();
    assert_int_equal(ev.started, 1);
    assert_int_equal(ev.execs, 0);

    memset(&ev, 0, sizeof(ev));
    open_executor();
    assert_int_equal(executor_adopt(ex, on_adopt, &ev), 2);
    int r = find_adopted(running), p = find_adopted(preparing);
    assert_true(r >= 0 && p >= 0);
    assert_int_equal(ev.adopt_st[r].state, EXEC_STATE_RUNNING);
    assert_int_equal(ev.adopt_st[p].state, EXEC_STATE_EXITED);
    assert_int_equal(ev.adopt_st[p].exit_code, -1);
    remove_ok(preparing);
    remove_ok(running);
    assert_int_equal(ev.exited, 1);
}

/* A shim killed behind our back: the container is reported with an
 * unknown exit code and can still be removed. */
static void test_shim_killed(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("shimkill");
    char *argv[] = {"sleep", "1000", NULL};
    start_ok(id, argv, NULL);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/shim.pid", state_dir, id);
    struct swm_buf b = {0};
    assert_int_equal(swm_read_file(path, 64, &b), 0);
    int shim = atoi((char *)b.data);
    swm_buf_free(&b);
    assert_true(shim > 0);
    int pid = ev.start_st.pid;
    assert_int_equal(kill(shim, SIGKILL), 0);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);
    assert_int_equal(ev.exit_st.exit_code, -1);
    /* Nobody would see it exit: it is killed rather than left running. */
    bool dead = false;
    for (int i = 0; i < 500 && !dead; i++) {
        char stat_path[64], buf[512] = "";
        snprintf(stat_path, sizeof(stat_path), "/proc/%d/stat", pid);
        FILE *f = fopen(stat_path, "r");
        if (f == NULL) {
            dead = true;
            break;
        }
        if (fgets(buf, sizeof(buf), f) != NULL) {
            const char *close_paren = strrchr(buf, ')');
            dead = close_paren != NULL && close_paren[2] == 'Z';
        }
        fclose(f);
        if (!dead)
            usleep(10000);
    }
    assert_true(dead);
    remove_ok(id);
}

/* Regression: exit_cb removing the container that is exiting. on_exited
 * then started the cleanup a second time: two `runc delete`s, whose ends
 * queued the same uv_work_t twice, which crashed a threadpool thread (NULL
 * work_cb) or freed the container twice, depending on timing. The count of
 * `runc delete`s shows it whatever the timing. The remove must complete
 * exactly once and leave nothing behind. */
static void test_remove_from_exit_cb(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("rmexitcb");
    char *argv[] = {"sh", "-c", "sleep 0.2; exit 3", NULL};
    ev.remove_on_exit = true;
    ev.remove_in_exit_rc = ev.remove_again_in_exit_rc = 1;
    start_ok(id, argv, NULL);
    RUN_UNTIL(ev.removed == 1, WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(ev.exited, 1);
    assert_int_equal(ev.exit_st.exit_code, 3);
    assert_int_equal(ev.remove_in_exit_rc, 0);
    assert_int_equal(ev.remove_again_in_exit_rc, -EBUSY);
    assert_int_equal(ev.removed, 1);
    assert_int_equal(ev.remove_status, 0);
    assert_int_equal(runc_calls("delete --force", id), 1);
    assert_gone(id);
}

/* The same, with the exit caused by a stop (the agent's path: the task
 * was unassigned, the agent stopped it and removes it when it exits). */
static void test_remove_from_exit_cb_after_stop(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("rmexitstop");
    char *argv[] = {"sleep", "1000", NULL};
    start_ok(id, argv, NULL);
    ev.remove_on_exit = true;
    assert_int_equal(executor_stop(ex, id, SIGKILL, 0), 0);
    RUN_UNTIL(ev.removed == 1, WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(ev.exited, 1);
    assert_int_equal(ev.exit_st.exit_code, 128 + SIGKILL);
    assert_int_equal(ev.remove_in_exit_rc, 0);
    assert_int_equal(ev.remove_again_in_exit_rc, -EBUSY);
    assert_int_equal(ev.removed, 1);
    assert_int_equal(ev.remove_status, 0);
    assert_int_equal(runc_calls("delete --force", id), 1);
    assert_gone(id);
}

/* A second remove of an exited container is refused while the first runs;
 * the first still completes once. */
static void test_remove_twice_exited(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("rmtwice");
    char *argv[] = {"true", NULL};
    start_ok(id, argv, NULL);
    RUN_UNTIL(ev.exited == 1, WAIT_MS);
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), 0);
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), -EBUSY);
    RUN_UNTIL(ev.removed == 1, WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_int_equal(ev.removed, 1);
    assert_int_equal(ev.remove_status, 0);
    assert_int_equal(ev.exited, 1);
    assert_int_equal(runc_calls("delete --force", id), 1);
    assert_gone(id);
    /* Once removed the id is unknown again. */
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), SWM_ENOTFOUND);
}

/* Removed while a stop waits out its grace period: killed at once, the
 * exit reported once, the pending SIGKILL timer dropped (the loop goes
 * idle long before the 30 s grace would end). */
static void test_remove_while_stopping(void **state)
{
    REQUIRE_USABLE();
    const char *id = new_id("rmstop");
    /* sleep as pid 1 has no SIGTERM handler: the stop alone does nothing. */
    char *argv[] = {"sleep", "1000", NULL};
    start_ok(id, argv, NULL);
    assert_int_equal(executor_stop(ex, id, SIGTERM, 30 * SWM_NS_PER_SEC), 0);
    run_for(200);
    assert_int_equal(ev.exited, 0);
    int64_t t0 = swm_mono_ns();
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), 0);
    assert_int_equal(executor_remove(ex, id, on_remove, &ev), -EBUSY);
    RUN_UNTIL(ev.removed == 1, WAIT_MS);
    RUN_IDLE(WAIT_MS);
    assert_true(swm_mono_ns() - t0 < 25 * SWM_NS_PER_SEC);
    assert_int_equal(ev.exited, 1);
    assert_int_equal(ev.exit_st.exit_code, 128 + SIGKILL);
    assert_int_equal(ev.removed, 1);
    assert_int_equal(ev.remove_status, 0);
    assert_int_equal(runc_calls("delete --force", id), 1);
    assert_gone(id);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "shim") == 0)
        return exec_shim_main(argc - 1, argv + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_to_exit, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_start_failure, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_start_validation, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stop_escalates_to_sigkill, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stop_graceful, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_container_config, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_exec, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_running, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_while_starting, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_adopt, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_shim_killed, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stop_while_starting, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_close_while_busy, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_from_exit_cb, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_from_exit_cb_after_stop, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_twice_exited, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_remove_while_stopping, test_setup, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
