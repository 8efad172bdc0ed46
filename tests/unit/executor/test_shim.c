/* agent/executor/shim.c against a fake runc (fake-runc.pl: starts a
 * "container" and records its pid as `runc run -d` would): the status line,
 * the timestamped logs and their rotation, the exit file. No root needed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/executor/executor.h"
#include "agent/executor/internal.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"

static char base[64];
static char runc_path[128];
static char bundle[128];
static int bundle_seq;

static int setup(void **state)
{
    snprintf(base, sizeof(base), "/tmp/swm-test-shim-XXXXXX");
    if (mkdtemp(base) == NULL)
        return -1;
    snprintf(runc_path, sizeof(runc_path), "%s/fake-runc", base);
    struct swm_buf script = {0};
    int rc = swm_read_file(FAKE_RUNC, 1 << 16, &script);
    if (rc == 0)
        rc = swm_write_file_atomic(runc_path, script.data, script.len, 0755);
    swm_buf_free(&script);
    return rc;
}

static int teardown(void **state)
{
    return swm_remove_tree(base);
}

struct shim_run {
    pid_t pid;
    char line[700];
    int exit_status;
};

static void new_bundle(void)
{
    snprintf(bundle, sizeof(bundle), "%s/b%d", base, ++bundle_seq);
    assert_int_equal(mkdir(bundle, 0755), 0);
}

/* Runs the shim in a child process with a pipe as its status fd; bounded
 * waits for the status line and for its exit. */
static void run_shim(const char *mode, const char *max_size, const char *max_files,
                     struct shim_run *r)
{
    int sv[2];
    assert_int_equal(pipe(sv), 0);
    setenv("FAKE_RUNC_MODE", mode, 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        char fd[16];
        snprintf(fd, sizeof(fd), "%d", sv[1]);
        char *argv[] = {"shim",
                        "--id",
                        "c1",
                        "--bundle",
                        bundle,
                        "--runc",
                        runc_path,
                        "--runc-root",
                        "/nonexistent",
                        "--status-fd",
                        fd,
                        "--log-max-size",
                        (char *)max_size,
                        "--log-max-files",
                        (char *)max_files,
                        NULL};
        exit(exec_shim_main(15, argv)); /* exit: LeakSanitizer checks the shim too */
    }
    close(sv[1]);
    r->pid = pid;

    size_t n = 0;
    struct pollfd p = {sv[0], POLLIN, 0};
    while (n + 1 < sizeof(r->line) && poll(&p, 1, 10000) == 1) {
        ssize_t k = read(sv[0], r->line + n, sizeof(r->line) - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    r->line[n] = '\0';
    close(sv[0]);

    int status = 0;
    pid_t w = 0;
    for (int i = 0; i < 1000 && w == 0; i++) {
        w = waitpid(pid, &status, WNOHANG);
        if (w == 0)
            usleep(10000);
    }
    if (w != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("shim did not exit within 10 s (status line \"%s\")", r->line);
    }
    r->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *slurp(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", bundle, name);
    struct swm_buf b = {0};
    if (swm_read_file(path, 1 << 24, &b) < 0)
        return NULL;
    if (b.data == NULL)
        return swm_strdup("");
    return (char *)b.data;
}

static bool file_exists(const char *name)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", bundle, name);
    return stat(path, &st) == 0;
}

/* Checks that every line of a log is "<RFC 3339 ns UTC> <text>" and
 * returns the texts joined by '\n'. */
static char *log_texts(const char *name)
{
    char *log = slurp(name);
    assert_non_null(log);
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z ",
                             REG_EXTENDED),
                     0);
    struct swm_buf out = {0};
    char *save = NULL;
    bool bad = false;
    for (char *line = strtok_r(log, "\n", &save); line != NULL && !bad;
         line = strtok_r(NULL, "\n", &save)) {
        bad = regexec(&re, line, 0, NULL, 0) != 0;
        if (!bad)
            swm_buf_printf(&out, "%s%s", out.len > 0 ? "\n" : "", line + 31);
    }
    regfree(&re);
    swm_free(log);
    if (bad) {
        swm_buf_free(&out);
        fail_msg("%s has a line without a timestamp", name);
    }
    return out.data != NULL ? (char *)out.data : swm_strdup("");
}

static void test_exit_code_and_logs(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("exit3", "10485760", "3", &r);
    int init_pid = exec__read_pid_file(bundle, "init.pid");
    assert_true(init_pid > 0);
    char want[64];
    snprintf(want, sizeof(want), "ok %d\n", init_pid);
    assert_string_equal(r.line, want);
    assert_int_equal(r.exit_status, 0);
    assert_int_equal(exec__read_pid_file(bundle, "shim.pid"), r.pid);

    int code;
    int64_t fin;
    assert_int_equal(exec__read_exit_file(bundle, &code, &fin), 0);
    assert_int_equal(code, 3);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    assert_true(fin <= now_ns && fin > now_ns - 60 * INT64_C(1000000000));

    char *out = log_texts("stdout.log");
    assert_string_equal(out, "hello\npartial"); /* a partial last line is kept */
    swm_free(out);
    char *err = log_texts("stderr.log");
    assert_string_equal(err, "err");
    swm_free(err);
}

/* Output the container writes while runc is still running is held back,
 * then logged once runc succeeded. */
static void test_early_stderr_is_logged(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("early", "10485760", "3", &r);
    assert_true(strncmp(r.line, "ok ", 3) == 0);
    char *err = log_texts("stderr.log");
    assert_string_equal(err, "early");
    swm_free(err);
}

static void test_runc_failure(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("fail", "10485760", "3", &r);
    assert_string_equal(
        r.line, "err runc run failed: exec: \"nope\": executable file not found in $PATH\n");
    assert_int_equal(r.exit_status, 1);
    assert_false(file_exists("exit"));
    /* runc's own words are not the container's output. */
    char *err = slurp("stderr.log");
    assert_non_null(err);
    assert_null(strstr(err, "runc run failed"));
    swm_free(err);
    char *shimlog = slurp("shim.log");
    assert_non_null(strstr(shimlog, "executable file not found"));
    swm_free(shimlog);
}

static void test_runc_failure_from_log(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("fail_log", "10485760", "3", &r);
    assert_string_equal(r.line, "err from the log\n");
    assert_int_equal(r.exit_status, 1);
}

static void test_runc_without_pid_file(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("nopid", "10485760", "3", &r);
    static const char want[] = "err runc did not record the container's pid: ";
    assert_true(strncmp(r.line, want, strlen(want)) == 0);
    assert_int_equal(r.exit_status, 1);
}

static void test_killed_by_signal(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("killed", "10485760", "3", &r);
    assert_true(strncmp(r.line, "ok ", 3) == 0);
    int code;
    int64_t fin;
    assert_int_equal(exec__read_exit_file(bundle, &code, &fin), 0);
    assert_int_equal(code, 128 + SIGKILL);
}

/* If something else reaps the init (here the fake runc itself), the shim
 * still notices the exit, through the init's pidfd, instead of hanging. */
static void test_init_reaped_elsewhere(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("vanish", "10485760", "3", &r);
    assert_true(strncmp(r.line, "ok ", 3) == 0);
    assert_int_equal(r.exit_status, 0);
    int code;
    int64_t fin;
    assert_int_equal(exec__read_exit_file(bundle, &code, &fin), 0);
    assert_int_equal(code, -1);
}

static int first_line_number(const char *name)
{
    char *t = log_texts(name);
    int n = -1;
    sscanf(t, "line-%d-", &n);
    swm_free(t);
    return n;
}

static void test_rotation(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("spam", "2048", "3", &r);
    assert_int_equal(r.exit_status, 0);
    assert_true(file_exists("stdout.log"));
    assert_true(file_exists("stdout.log.1"));
    assert_true(file_exists("stdout.log.2"));
    assert_false(file_exists("stdout.log.3"));
    static const char *const names[] = {"stdout.log", "stdout.log.1", "stdout.log.2"};
    for (int i = 0; i < 3; i++) {
        char path[256];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", bundle, names[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 0 && st.st_size <= 2048);
    }
    /* Newest last, contiguous across files, the last line kept. */
    char *cur = log_texts("stdout.log");
    const char *last = strrchr(cur, '\n');
    assert_true(strncmp(last != NULL ? last + 1 : cur, "line-299-", 9) == 0);
    int n0 = first_line_number("stdout.log");
    int n1 = first_line_number("stdout.log.1");
    int n2 = first_line_number("stdout.log.2");
    assert_true(n2 < n1 && n1 < n0);
    char *one = log_texts("stdout.log.1");
    const char *last1 = strrchr(one, '\n');
    int l1 = -1;
    sscanf(last1 != NULL ? last1 + 1 : one, "line-%d-", &l1);
    assert_int_equal(l1 + 1, n0);
    swm_free(one);
    swm_free(cur);
}

static void test_long_lines_split(void **state)
{
    new_bundle();
    struct shim_run r;
    run_shim("long", "10485760", "3", &r);
    char *t = log_texts("stdout.log");
    char *nl1 = strchr(t, '\n');
    assert_non_null(nl1);
    assert_int_equal(nl1 - t, EXEC__LOG_LINE_MAX);
    char *nl2 = strchr(nl1 + 1, '\n');
    assert_non_null(nl2);
    assert_int_equal(nl2 - nl1 - 1, 20000 - EXEC__LOG_LINE_MAX);
    assert_string_equal(nl2 + 1, "short");
    swm_free(t);
}

static void test_usage(void **state)
{
    char *argv[] = {"shim", "--id", "c1", NULL};
    int saved = dup(2);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    int rc = exec_shim_main(3, argv);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    assert_int_equal(rc, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_code_and_logs),    cmocka_unit_test(test_early_stderr_is_logged),
        cmocka_unit_test(test_runc_failure),          cmocka_unit_test(test_runc_failure_from_log),
        cmocka_unit_test(test_runc_without_pid_file), cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_init_reaped_elsewhere), cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_long_lines_split),      cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
