/* `swarmc shim`: the parent of one container (DESIGN.md §7).
 *
 * The executor spawns it detached (own session, stdio on /dev/null) so it
 * outlives the daemon:
 *
 *   swarmc shim --id ID --bundle DIR --runc PATH --runc-root DIR
 *               [--log-max-size BYTES] [--log-max-files N]
 *               [--status-fd FD] [--start-timeout-ms MS]
 *
 * It becomes a child subreaper, writes <bundle>/shim.pid, and runs
 * `runc --root R --log <bundle>/runc.log --log-format json run -d
 * --pid-file <bundle>/init.pid --bundle B ID` with stdin on /dev/null and
 * stdout/stderr on two pipes, which runc hands to the container (terminal
 * false). When runc exits the shim writes one line on the status fd
 * (default 3) and closes it:
 *
 *   "ok <init pid>\n"       the container runs
 *   "err <message>\n"       it does not (runc's error, e.g. `exec: "x":
 *                           executable file not found in $PATH`); exit 1
 *
 * Then it copies the pipes into <bundle>/stdout.log and stderr.log, each
 * line prefixed with its RFC 3339 UTC arrival time and a space, rotating
 * (.log -> .log.1 -> ...) at the size limit. It reaps every child
 * (signalfd), and once the container's init has exited and the pipes are
 * drained (at most 2 s more) it writes <bundle>/exit atomically:
 * "<code> <finished unix ns>\n", code = exit status or 128+signal, or -1
 * if the init was reaped by someone else (it also watches the init through
 * a pidfd, so that cannot hang it). Then it exits 0. Its own problems go to
 * <bundle>/shim.log.
 */
#define _GNU_SOURCE
#include "agent/executor/internal.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define HELD_MAX (64 * 1024)
#define DRAIN_NS (2 * SWM_NS_PER_SEC)
#define MAX_EARLY 64

struct shim_opts {
    const char *id, *bundle, *runc, *runc_root;
    int64_t log_max_bytes;
    int log_max_files;
    int status_fd;
    int64_t start_timeout_ms;
};

struct logfile {
    char path[PATH_MAX];
    int fd;
    int64_t size;
};

struct stream {
    int fd; /* read end of the container's pipe; -1 after EOF */
    struct logfile log;
    char line[EXEC__LOG_LINE_MAX];
    size_t len;
    bool hold; /* keep lines in memory: stderr while runc runs */
};

struct shim {
    const struct shim_opts *o;
    struct stream out, err;
    /* stderr held while runc runs: runc's own error ends up there, and is
     * not the container's output. held: formatted lines; held_raw: text. */
    struct swm_buf held, held_raw;
    int sfd;
    int status_fd; /* -1 once the status line is written */
    pid_t runc_pid, init_pid;
    int init_pidfd; /* notices the init's exit even if we cannot reap it */
    bool runc_done, init_done;
    int runc_status, init_code;
    int64_t finished_ns;
    struct {
        pid_t pid;
        int status;
    } early[MAX_EARLY]; /* reaped before init.pid was read */
    size_t n_early;
};

static void shim_log(const struct shim_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void shim_log(const struct shim_opts *o, const char *fmt, ...)
{
    char path[PATH_MAX], ts[EXEC__TIME_LEN], msg[1024];
    snprintf(path, sizeof(path), "%s/%s", o->bundle, EXEC__SHIM_LOG);
    exec__format_time(swm_now_ns(), ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    dprintf(fd, "%s %s\n", ts, msg);
    close(fd);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ------------------------------------------------------------- logs -- */

static int log_open(struct logfile *l, bool truncate)
{
    l->fd =
        open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0640);
    if (l->fd < 0)
        return -errno;
    struct stat st;
    l->size = fstat(l->fd, &st) == 0 ? st.st_size : 0;
    return 0;
}

static void log_rotate(struct shim *s, struct logfile *l)
{
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    for (int k = s->o->log_max_files - 1; k >= 1; k--) {
        if (k == 1)
            snprintf(from, sizeof(from), "%s", l->path);
        else
            snprintf(from, sizeof(from), "%s.%d", l->path, k - 1);
        snprintf(to, sizeof(to), "%s.%d", l->path, k);
        if (rename(from, to) < 0 && errno != ENOENT)
            shim_log(s->o, "rotating %s: %s", from, strerror(errno));
    }
    if (log_open(l, true) < 0)
        shim_log(s->o, "opening %s: %s", l->path, strerror(errno));
}

/* Writes "<ts> <text>\n" as one write so that readers never see half a
 * line's prefix; a full disk drops the line rather than the container. */
static void log_line(struct shim *s, struct logfile *l, const char *ts, size_t tslen,
                     const char *text, size_t len)
{
    int64_t total = (int64_t)(tslen + 1 + len + 1);
    if (l->size > 0 && l->size + total > s->o->log_max_bytes)
        log_rotate(s, l);
    if (l->fd < 0)
        return;
    struct iovec iov[4] = {
        {(void *)ts, tslen}, {(void *)" ", 1}, {(void *)text, len}, {(void *)"\n", 1}};
    ssize_t w = writev(l->fd, iov, 4);
    if (w > 0)
        l->size += w;
}

static void flush_held(struct shim *s)
{
    if (s->held.len > 0 && s->err.log.fd >= 0) {
        /* Rotation is checked per line only: held lines are few. */
        if (write_all(s->err.log.fd, (const char *)s->held.data, s->held.len) == 0)
            s->err.log.size += (int64_t)s->held.len;
    }
    swm_buf_free(&s->held);
    swm_buf_free(&s->held_raw);
}

static void emit_line(struct shim *s, struct stream *st, const char *text, size_t len)
{
    char ts[EXEC__TIME_LEN];
    size_t tslen = exec__format_time(swm_now_ns(), ts);
    if (!st->hold) {
        log_line(s, &st->log, ts, tslen, text, len);
        return;
    }
    if (swm_buf_printf(&s->held, "%s %.*s\n", ts, (int)len, text) < 0 ||
        swm_buf_printf(&s->held_raw, "%.*s\n", (int)len, text) < 0 || s->held.len > HELD_MAX)
        flush_held(s); /* the container talks a lot: it is not runc's error */
}

static void stream_flush_partial(struct shim *s, struct stream *st)
{
    if (st->len > 0)
        emit_line(s, st, st->line, st->len);
    st->len = 0;
}

/* Reads what the pipe has; at EOF closes it and flushes a partial line. */
static void stream_read(struct shim *s, struct stream *st)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(st->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            stream_flush_partial(s, st);
            close(st->fd);
            st->fd = -1;
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                emit_line(s, st, st->line, st->len);
                st->len = 0;
                continue;
            }
            st->line[st->len++] = buf[i];
            if (st->len == sizeof(st->line)) {
                emit_line(s, st, st->line, st->len);
                st->len = 0;
            }
        }
    }
}

/* ------------------------------------------------------- processes -- */

static int wait_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

static void reap(struct shim *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == s->runc_pid) {
            s->runc_done = true;
            s->runc_status = status;
        } else if (s->init_pid > 0 && pid == s->init_pid) {
            s->init_done = true;
            s->init_code = wait_code(status);
            s->finished_ns = swm_now_ns();
        } else if (s->init_pid == 0) {
            /* Maybe the init: it is reparented to us when runc exits, and
             * may be waitable before runc itself. */
            size_t i = s->n_early < MAX_EARLY ? s->n_early++ : MAX_EARLY - 1;
            s->early[i].pid = pid;
            s->early[i].status = status;
        }
    }
}

static void drain_signalfd(int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        ;
}

static pid_t spawn_runc(const struct shim_opts *o, int out_w, int err_w)
{
    char pid_file[PATH_MAX], log_file[PATH_MAX];
    snprintf(pid_file, sizeof(pid_file), "%s/%s", o->bundle, EXEC__INIT_PID);
    snprintf(log_file, sizeof(log_file), "%s/%s", o->bundle, EXEC__RUNC_LOG);
    char *argv[] = {(char *)o->runc,
                    "--root",
                    (char *)o->runc_root,
                    "--log",
                    log_file,
                    "--log-format",
                    "json",
                    "run",
                    "-d",
                    "--pid-file",
                    pid_file,
                    "--bundle",
                    (char *)o->bundle,
                    (char *)o->id,
                    NULL};
    pid_t pid = fork();
    if (pid != 0)
        return pid;

    /* Child: what we changed must not leak into runc and the container. */
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        _exit(127);
    close_range(3, ~0U, 0);
    execv(o->runc, argv);
    dprintf(2, "exec %s: %s\n", o->runc, strerror(errno));
    _exit(127);
}

static void report(struct shim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(struct shim *s, const char *fmt, ...)
{
    int fd = s->status_fd;
    if (fd < 0)
        return;
    s->status_fd = -1;
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    /* One line: messages never carry a newline of their own. */
    for (int i = 0; i < n; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[n++] = '\n';
    if (write_all(fd, line, (size_t)n) < 0)
        shim_log(s->o, "status fd: %s (daemon gone?)", strerror(errno));
    close(fd);
}

/* runc failed: its message is the last line it wrote on stderr, or failing
 * that the last "msg" in its JSON log. */
static void runc_error(struct shim *s, char *msg, size_t size)
{
    if (s->err.fd >= 0)
        stream_read(s, &s->err); /* runc wrote it before exiting */
    stream_flush_partial(s, &s->err);
    exec__last_error_line((const char *)s->held_raw.data, s->held_raw.len, msg, size);
    if (msg[0] == '\0') {
        char path[PATH_MAX];
        struct swm_buf log = {0};
        snprintf(path, sizeof(path), "%s/%s", s->o->bundle, EXEC__RUNC_LOG);
        if (swm_read_file(path, 1 << 20, &log) == 0)
            exec__last_error_line((const char *)log.data, log.len, msg, size);
        swm_buf_free(&log);
    }
    if (msg[0] == '\0')
        snprintf(msg, size, "runc exited with status %d", wait_code(s->runc_status));
}

/* The init is gone but was not ours to reap (runc or someone else reaped
 * it): its exit code is lost, but the exit must still be recorded. */
static void init_vanished(struct shim *s)
{
    shim_log(s->o, "the container's init %d exited without being reaped by the shim",
             (int)s->init_pid);
    s->init_done = true;
    s->init_code = -1;
    s->finished_ns = swm_now_ns();
}

/* The init's pidfd is readable: it exited. Normally it is our child and
 * SIGCHLD already told us; if it is not, waitpid says ECHILD. */
static void init_pidfd_ready(struct shim *s)
{
    reap(s);
    if (!s->init_done) {
        int status;
        pid_t w = waitpid(s->init_pid, &status, WNOHANG);
        if (w == s->init_pid) {
            s->init_done = true;
            s->init_code = wait_code(status);
            s->finished_ns = swm_now_ns();
        } else if (w < 0 && errno == ECHILD) {
            init_vanished(s);
        }
    }
    close(s->init_pidfd);
    s->init_pidfd = -1; /* from here SIGCHLD is enough */
}

/* True while pid is still runc's init ("runc init"), i.e. has not exec'd
 * the container's command yet. */
static bool still_runc_init(pid_t pid)
{
    char path[64], cmd[256];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
    close(fd);
    if (n <= 0)
        return false;
    cmd[n] = '\0';
    const char *arg0 = strrchr(cmd, '/') != NULL ? strrchr(cmd, '/') + 1 : cmd;
    size_t len0 = strlen(cmd);
    return strcmp(arg0, "runc") == 0 && (size_t)n > len0 + 1 && strcmp(cmd + len0 + 1, "init") == 0;
}

/* `runc run -d` returns once it has told the container's init to exec, not
 * once it has: a stop signal sent in between would hit runc's init (which
 * dies with status 2) instead of the command. Report the start only after
 * the exec, waiting at most a second. */
static void wait_for_exec(pid_t pid)
{
    for (int i = 0; i < 1000 && still_runc_init(pid); i++)
        usleep(1000);
}

/* runc is done: the container runs (0) or not (< 0, reported). */
static int finish_start(struct shim *s)
{
    char msg[512];
    if (!WIFEXITED(s->runc_status) || WEXITSTATUS(s->runc_status) != 0) {
        runc_error(s, msg, sizeof(msg));
        shim_log(s->o, "runc run failed: %s", msg);
        report(s, "err %s", msg);
        return -1;
    }
    int pid = exec__read_pid_file(s->o->bundle, EXEC__INIT_PID);
    if (pid < 0) {
        shim_log(s->o, "reading %s: %s", EXEC__INIT_PID, swm_strerror(pid));
        report(s, "err runc did not record the container's pid: %s", swm_strerror(pid));
        return -1;
    }
    s->init_pid = pid;
    for (size_t i = 0; i < s->n_early; i++) {
        if (s->early[i].pid == pid) {
            s->init_done = true;
            s->init_code = wait_code(s->early[i].status);
            s->finished_ns = swm_now_ns();
        }
    }
    if (!s->init_done) {
        s->init_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (s->init_pidfd < 0 && errno == ESRCH)
            init_vanished(s);
    }
    if (!s->init_done)
        wait_for_exec(pid);
    s->err.hold = false;
    flush_held(s);
    report(s, "ok %d", pid);
    return 0;
}

static int write_exit_file(struct shim *s)
{
    char path[PATH_MAX], text[64];
    snprintf(path, sizeof(path), "%s/%s", s->o->bundle, EXEC__EXIT);
    int n = snprintf(text, sizeof(text), "%d %lld\n", s->init_code, (long long)s->finished_ns);
    int rc = swm_write_file_atomic(path, text, (size_t)n, 0644);
    if (rc < 0)
        shim_log(s->o, "writing %s: %s", path, swm_strerror(rc));
    return rc;
}

/* The event loop of the shim: poll the signalfd and both pipes until the
 * init has exited and its output is drained. */
static int run(struct shim *s)
{
    int64_t start_deadline = swm_mono_ns() + s->o->start_timeout_ms * SWM_NS_PER_MS;
    int64_t drain_deadline = 0;
    bool started = false;
    for (;;) {
        if (!started && s->runc_done) {
            if (finish_start(s) < 0)
                return 1;
            started = true;
        }
        if (started && s->init_done) {
            if (drain_deadline == 0)
                drain_deadline = swm_mono_ns() + DRAIN_NS;
            if ((s->out.fd < 0 && s->err.fd < 0) || swm_mono_ns() >= drain_deadline)
                break;
        }

        int64_t deadline = started ? drain_deadline : start_deadline;
        int timeout = -1;
        if (deadline != 0) {
            int64_t left = deadline - swm_mono_ns();
            timeout = left <= 0 ? 0 : (int)(left / SWM_NS_PER_MS + 1);
        }
        struct pollfd p[4] = {{s->sfd, POLLIN, 0},
                              {s->out.fd, POLLIN, 0},
                              {s->err.fd, POLLIN, 0},
                              {s->init_pidfd, POLLIN, 0}};
        int n = poll(p, 4, timeout);
        if (n < 0 && errno != EINTR) {
            shim_log(s->o, "poll: %s", strerror(errno));
            return 1;
        }
        if (n > 0 && p[0].revents != 0) {
            drain_signalfd(s->sfd);
            reap(s);
        }
        if (n > 0 && s->out.fd >= 0 && p[1].revents != 0)
            stream_read(s, &s->out);
        if (n > 0 && s->err.fd >= 0 && p[2].revents != 0)
            stream_read(s, &s->err);
        if (n > 0 && s->init_pidfd >= 0 && p[3].revents != 0)
            init_pidfd_ready(s);

        if (!started && !s->runc_done && swm_mono_ns() >= start_deadline) {
            shim_log(s->o, "runc run timed out after %lld ms", (long long)s->o->start_timeout_ms);
            kill(s->runc_pid, SIGKILL);
            report(s, "err runc did not start the container within %lld ms",
                   (long long)s->o->start_timeout_ms);
            return 1;
        }
    }
    stream_flush_partial(s, &s->out);
    stream_flush_partial(s, &s->err);
    return write_exit_file(s) < 0 ? 1 : 0;
}

/* ------------------------------------------------------------- main -- */

static int parse_opts(int argc, char **argv, struct shim_opts *o)
{
    static const struct option longopts[] = {
        {"id", required_argument, NULL, 'i'},
        {"bundle", required_argument, NULL, 'b'},
        {"runc", required_argument, NULL, 'r'},
        {"runc-root", required_argument, NULL, 'R'},
        {"log-max-size", required_argument, NULL, 's'},
        {"log-max-files", required_argument, NULL, 'n'},
        {"status-fd", required_argument, NULL, 'f'},
        {"start-timeout-ms", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct shim_opts){
        .log_max_bytes = EXEC__LOG_MAX_BYTES_DEFAULT,
        .log_max_files = EXEC__LOG_MAX_FILES_DEFAULT,
        .status_fd = 3,
        .start_timeout_ms = 120000,
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            o->id = optarg;
            break;
        case 'b':
            o->bundle = optarg;
            break;
        case 'r':
            o->runc = optarg;
            break;
        case 'R':
            o->runc_root = optarg;
            break;
        case 's':
            o->log_max_bytes = strtoll(optarg, NULL, 10);
            break;
        case 'n':
            o->log_max_files = atoi(optarg);
            break;
        case 'f':
            o->status_fd = atoi(optarg);
            break;
        case 't':
            o->start_timeout_ms = strtoll(optarg, NULL, 10);
            break;
        default:
            return -EINVAL;
        }
    }
    if (o->id == NULL || o->bundle == NULL || o->runc == NULL || o->runc_root == NULL ||
        o->log_max_bytes < 1024 || o->log_max_files < 1 || o->log_max_files > 100 ||
        o->start_timeout_ms <= 0 || optind != argc)
        return -EINVAL;
    return 0;
}

int exec_shim_main(int argc, char **argv)
{
    struct shim_opts o;
    if (parse_opts(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: shim --id ID --bundle DIR --runc PATH --runc-root DIR "
                        "[--log-max-size BYTES] [--log-max-files N] [--status-fd FD] "
                        "[--start-timeout-ms MS]\n");
        return 2;
    }
    /* Hold nothing of the daemon's: only stdio and the status fd. */
    if (o.status_fd > 3)
        close_range(3, (unsigned)o.status_fd - 1, 0);
    close_range(o.status_fd >= 3 ? (unsigned)o.status_fd + 1 : 3, ~0U, 0);
    if (o.status_fd >= 0)
        fcntl(o.status_fd, F_SETFD, FD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);

    struct shim s = {.o = &o, .sfd = -1, .status_fd = o.status_fd, .init_pidfd = -1};
    s.out.fd = s.err.fd = s.out.log.fd = s.err.log.fd = -1;
    int pipes[2][2] = {{-1, -1}, {-1, -1}};
    int rc = 1;
    char text[32];

    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        shim_log(&o, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
        report(&s, "err shim: cannot become a subreaper: %s", strerror(errno));
        return 1;
    }
    snprintf(s.out.log.path, sizeof(s.out.log.path), "%s/stdout.log", o.bundle);
    snprintf(s.err.log.path, sizeof(s.err.log.path), "%s/stderr.log", o.bundle);
    int n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
    char pid_path[PATH_MAX];
    snprintf(pid_path, sizeof(pid_path), "%s/%s", o.bundle, EXEC__SHIM_PID);
    int r = swm_write_file_atomic(pid_path, text, (size_t)n, 0644);
    if (r == 0 && (log_open(&s.out.log, false) < 0 || log_open(&s.err.log, false) < 0))
        r = -errno;
    if (r < 0) {
        shim_log(&o, "preparing the bundle: %s", swm_strerror(r));
        report(&s, "err shim: %s: %s", o.bundle, swm_strerror(r));
        goto out;
    }

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    s.sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s.sfd < 0 || pipe2(pipes[0], O_CLOEXEC) < 0 || pipe2(pipes[1], O_CLOEXEC) < 0) {
        shim_log(&o, "signalfd/pipe: %s", strerror(errno));
        report(&s, "err shim: %s", strerror(errno));
        goto out;
    }
    s.runc_pid = spawn_runc(&o, pipes[0][1], pipes[1][1]);
    if (s.runc_pid < 0) {
        shim_log(&o, "fork: %s", strerror(errno));
        report(&s, "err shim: fork: %s", strerror(errno));
        goto out;
    }
    /* Only the container may hold the write ends, so that EOF means it
     * (and everything that inherited its stdio) is gone. */
    close(pipes[0][1]);
    close(pipes[1][1]);
    pipes[0][1] = pipes[1][1] = -1;
    s.out.fd = pipes[0][0];
    s.err.fd = pipes[1][0];
    pipes[0][0] = pipes[1][0] = -1;
    fcntl(s.out.fd, F_SETFL, O_NONBLOCK);
    fcntl(s.err.fd, F_SETFL, O_NONBLOCK);
    s.err.hold = true;

    rc = run(&s);
    if (rc != 0 && !s.runc_done && s.runc_pid > 0) {
        /* Timed out: runc was sent SIGKILL; do not leave a zombie behind. */
        int status;
        waitpid(s.runc_pid, &status, 0);
    }
out:
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            if (pipes[i][j] >= 0)
                close(pipes[i][j]);
        }
    }
    if (s.out.fd >= 0)
        close(s.out.fd);
    if (s.err.fd >= 0)
        close(s.err.fd);
    if (s.out.log.fd >= 0)
        close(s.out.log.fd);
    if (s.err.log.fd >= 0)
        close(s.err.log.fd);
    if (s.sfd >= 0)
        close(s.sfd);
    if (s.init_pidfd >= 0)
        close(s.init_pidfd);
    swm_buf_free(&s.held);
    swm_buf_free(&s.held_raw);
    return rc;
}
