/* The runc executor on the loop thread (DESIGN.md §7): bundles are prepared
 * on the threadpool, containers run under detached shims (shim.c), and
 * every runc invocation is a uv_spawn'd child, so the loop never blocks on
 * a mount or on runc.
 *
 * A container's life here: PREPARING (threadpool) -> STARTING (shim spawned,
 * waiting for its status line) -> RUNNING -> EXITED (the shim exited; its
 * exit file holds the code) -> CLEANING (runc delete, unmount, rm) -> gone.
 * Shims we spawned are watched through their uv_process exit callback;
 * shims adopted from a previous daemon through a pidfd polled by uv_poll.
 */
#define _GNU_SOURCE
#include "agent/executor/executor.h"
#include "agent/executor/internal.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/timeutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Backstop for the shim's own 120 s limit on `runc run`. */
#define START_TIMEOUT_MS 150000
/* How long remove waits for a killed container's exit before deleting it
 * anyway (`runc delete --force` kills what is left). */
#define REMOVE_WAIT_MS 10000
#define RUNC_TIMEOUT_MS 60000
#define RUNC_OUTPUT_MAX 4096
#define EXEC_OUTPUT_MAX 4096
#define EXEC_DEFAULT_TIMEOUT_MS 30000
#define STATUS_LINE_MAX 600

enum ctr_phase {
    PHASE_PREPARING,
    PHASE_STARTING,
    PHASE_RUNNING,
    PHASE_EXITED,
    PHASE_CLEANING,
};

struct job;

/* A container the executor knows. Handles are closed by ctr_release; the
 * struct is freed once they all are closed and no work is queued. */
struct ctr {
    struct ctr *next, *prev;
    struct executor *ex;
    char *id, *bundle;
    enum ctr_phase phase;
    struct exec_status st;
    int handles;
    bool released;

    /* start */
    struct exec_spec_owned spec; /* PREPARING only */
    uv_work_t work;
    bool work_pending;
    int prep_rc;
    struct swm_err err; /* why the start failed */
    int fail_rc;
    exec_start_cb start_cb;
    void *start_arg;

    /* the shim */
    uv_process_t shim;
    bool shim_inited, shim_exited;
    int64_t shim_exit_status;
    int shim_term_signal;
    int shim_pid;
    uv_pipe_t status;
    bool status_inited, status_done, got_ok;
    char status_line[STATUS_LINE_MAX];
    size_t status_len;
    char status_buf[256];
    int shim_pidfd; /* adopted shims */
    uv_poll_t shim_poll;
    bool poll_inited;
    int init_pidfd;

    uv_timer_t kill_timer; /* stop: SIGKILL after the grace period */
    uv_timer_t wait_timer; /* start backstop; remove's wait for the exit */

    /* a stop asked for while starting, applied once running */
    int pending_signo;
    int64_t pending_grace_ns;

    /* remove */
    bool remove_requested;
    void (*remove_cb)(void *arg, const char *id, int status);
    void *remove_arg;
    int teardown_rc;
};

typedef void (*job_done_fn)(struct job *j);

/* One runc invocation: a child process, its stdout/stderr (bounded) and a
 * timeout. */
struct job {
    struct job *next, *prev;
    struct executor *ex;
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    int handles;
    bool spawned, exited, out_eof, err_eof, timed_out, finished, released;
    int64_t exit_status;
    int term_signal;
    struct swm_buf obuf, ebuf;
    size_t limit;
    char rbuf[4096];
    job_done_fn done;
    struct ctr *ctr;
    char *label;              /* what the job does, for logs */
    char *pid_dir, *pid_name; /* exec: the process to kill on timeout */
    void (*exec_cb)(void *arg, int status, const char *output);
    void *exec_arg;
};

struct executor {
    uv_loop_t *loop;
    char *state_dir, *runc_root, *self_exe, *runc;
    exec_exit_cb exit_cb;
    void *arg;
    int64_t log_max_bytes;
    int log_max_files;
    struct ctr *ctrs;
    struct job *jobs;
    unsigned refs; /* 1 until closed, plus one per ctr and job alive */
    bool closing;
    unsigned exec_seq;
};

static void ctr_progress(struct ctr *c);
static void ctr_cleanup(struct ctr *c);

/* ------------------------------------------------------- executor -- */

static void ex_unref(struct executor *ex)
{
    if (--ex->refs > 0)
        return;
    swm_free(ex->state_dir);
    swm_free(ex->runc_root);
    swm_free(ex->self_exe);
    swm_free(ex->runc);
    swm_free(ex);
}

static char *find_runc(void)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    if (path != NULL) {
        for (const char *p = path; *p != '\0';) {
            size_t n = strcspn(p, ":");
            if (n > 0 && snprintf(buf, sizeof(buf), "%.*s/runc", (int)n, p) < (int)sizeof(buf) &&
                buf[0] == '/' && access(buf, X_OK) == 0)
                return swm_strdup(buf);
            p += n;
            if (*p == ':')
                p++;
        }
    }
    static const char *const fallback[] = {"/usr/sbin/runc", "/usr/bin/runc", "/sbin/runc",
                                           "/bin/runc", NULL};
    for (size_t i = 0; fallback[i] != NULL; i++) {
        if (access(fallback[i], X_OK) == 0)
            return swm_strdup(fallback[i]);
    }
    return NULL;
}

int executor_open(uv_loop_t *loop, const char *state_dir, const char *runc_root,
                  const char *self_exe, exec_exit_cb exit_cb, void *arg, struct executor **out,
                  struct swm_err *err)
{
    if (loop == NULL || state_dir == NULL || runc_root == NULL || self_exe == NULL)
        return swm_err_set(err, -EINVAL, "executor: missing argument");
    int rc = swm_mkdir_p(state_dir, 0711);
    if (rc < 0)
        return swm_err_set(err, rc, "creating %s: %s", state_dir, swm_strerror(rc));
    rc = swm_mkdir_p(runc_root, 0700);
    if (rc < 0)
        return swm_err_set(err, rc, "creating %s: %s", runc_root, swm_strerror(rc));

    /* Absolute paths: the shim runs in "/" and overlayfs wants them. The
     * overlay mount data cannot carry ',' or ':' in paths. */
    char state_abs[PATH_MAX], runc_abs[PATH_MAX];
    if (realpath(state_dir, state_abs) == NULL || realpath(runc_root, runc_abs) == NULL) {
        rc = -errno;
        return swm_err_set(err, rc, "resolving %s: %s", state_dir, swm_strerror(rc));
    }
    if (strpbrk(state_abs, ",:") != NULL)
        return swm_err_set(err, -EINVAL, "container state dir %s: ',' and ':' are not allowed",
                           state_abs);

    struct executor *ex = swm_calloc(1, sizeof(*ex));
    if (ex == NULL)
        return swm_err_code(err, -ENOMEM);
    ex->loop = loop;
    ex->exit_cb = exit_cb;
    ex->arg = arg;
    ex->log_max_bytes = EXEC__LOG_MAX_BYTES_DEFAULT;
    ex->log_max_files = EXEC__LOG_MAX_FILES_DEFAULT;
    ex->refs = 1;
    ex->state_dir = swm_strdup(state_abs);
    ex->runc_root = swm_strdup(runc_abs);
    ex->self_exe = swm_strdup(self_exe);
    if (ex->state_dir == NULL || ex->runc_root == NULL || ex->self_exe == NULL) {
        ex_unref(ex);
        return swm_err_code(err, -ENOMEM);
    }
    ex->runc = find_runc();
    if (ex->runc == NULL)
        swm_log_warn("runc not found: containers cannot start path=%s",
                     getenv("PATH") != NULL ? getenv("PATH") : "");
    *out = ex;
    return 0;
}

int executor_set_log_rotation(struct executor *ex, int64_t max_bytes, int max_files)
{
    if (max_bytes < 1024 || max_files < 1 || max_files > 100)
        return -EINVAL;
    ex->log_max_bytes = max_bytes;
    ex->log_max_files = max_files;
    return 0;
}

char *executor_log_dir(struct executor *ex, const char *id)
{
    return swm_asprintf("%s/%s", ex->state_dir, id);
}

/* ------------------------------------------------------------ jobs -- */

static void job_maybe_free(struct job *j)
{
    if (!j->released || j->handles > 0)
        return;
    struct executor *ex = j->ex;
    swm_buf_free(&j->obuf);
    swm_buf_free(&j->ebuf);
    if (j->pid_dir != NULL && j->pid_name != NULL) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", j->pid_dir, j->pid_name);
        unlink(path);
    }
    swm_free(j->pid_dir);
    swm_free(j->pid_name);
    swm_free(j->label);
    swm_free(j);
    ex_unref(ex);
}

static void job_handle_closed(uv_handle_t *h)
{
    struct job *j = h->data;
    j->handles--;
    job_maybe_free(j);
}

static void close_job_handle(struct job *j, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, job_handle_closed);
}

static void job_release(struct job *j)
{
    if (j->released)
        return;
    j->released = true;
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        j->ex->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    close_job_handle(j, (uv_handle_t *)&j->timer);
    close_job_handle(j, (uv_handle_t *)&j->out);
    close_job_handle(j, (uv_handle_t *)&j->err);
    if (j->spawned)
        close_job_handle(j, (uv_handle_t *)&j->proc);
}

static struct job *job_new(struct executor *ex, const char *label, job_done_fn done)
{
    struct job *j = swm_calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->label = swm_strdup(label);
    if (j->label == NULL) {
        swm_free(j);
        return NULL;
    }
    j->ex = ex;
    j->done = done;
    j->limit = RUNC_OUTPUT_MAX;
    uv_timer_init(ex->loop, &j->timer);
    uv_pipe_init(ex->loop, &j->out, 0);
    uv_pipe_init(ex->loop, &j->err, 0);
    j->timer.data = j->out.data = j->err.data = j->proc.data = j;
    j->handles = 3;
    j->next = ex->jobs;
    if (ex->jobs != NULL)
        ex->jobs->prev = j;
    ex->jobs = j;
    ex->refs++;
    return j;
}

static void job_finish(struct job *j)
{
    if (j->finished)
        return;
    j->finished = true;
    uv_timer_stop(&j->timer);
    if (!j->ex->closing && j->done != NULL)
        j->done(j);
    job_release(j);
}

static void job_maybe_finish(struct job *j)
{
    if (j->exited && j->out_eof && j->err_eof)
        job_finish(j);
}

static void job_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct job *j = p->data;
    j->exited = true;
    j->exit_status = exit_status;
    j->term_signal = term_signal;
    job_maybe_finish(j);
}

static void job_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct job *j = h->data;
    *buf = uv_buf_init(j->rbuf, sizeof(j->rbuf));
}

static void job_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct job *j = s->data;
    bool is_out = s == (uv_stream_t *)&j->out;
    struct swm_buf *b = is_out ? &j->obuf : &j->ebuf;
    if (nread > 0) {
        size_t room = b->len < j->limit ? j->limit - b->len : 0;
        size_t n = (size_t)nread < room ? (size_t)nread : room;
        if (n > 0)
            swm_buf_append(b, buf->base, n); /* on ENOMEM the output is shorter */
        return;
    }
    if (nread == 0)
        return;
    uv_read_stop(s);
    if (is_out)
        j->out_eof = true;
    else
        j->err_eof = true;
    job_maybe_finish(j);
}

static void job_timer_cb(uv_timer_t *t)
{
    struct job *j = t->data;
    if (j->exited || j->timed_out) {
        /* Exited but something still holds its pipes, or the kill did not
         * take: give up on the rest. */
        job_finish(j);
        return;
    }
    j->timed_out = true;
    swm_log_warn("runc timed out, killing it job=\"%s\"", j->label);
    if (j->pid_dir != NULL) {
        int pid = exec__read_pid_file(j->pid_dir, j->pid_name);
        if (pid > 0)
            kill(pid, SIGKILL);
    }
    uv_process_kill(&j->proc, SIGKILL);
    uv_timer_start(&j->timer, job_timer_cb, 2000, 0);
}

/* Spawns argv (argv[0] an absolute path). On failure the job is released
 * and done never runs. */
static int job_spawn(struct job *j, char **argv, uint64_t timeout_ms)
{
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&j->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&j->err;
    uv_process_options_t opts = {
        .exit_cb = job_exit_cb,
        .file = argv[0],
        .args = argv,
        .cwd = "/",
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(j->ex->loop, &j->proc, &opts);
    j->spawned = true; /* a failed uv_process_t still needs uv_close */
    j->handles++;
    if (rc < 0) {
        j->finished = true;
        job_release(j);
        return rc;
    }
    uv_read_start((uv_stream_t *)&j->out, job_alloc_cb, job_read_cb);
    uv_read_start((uv_stream_t *)&j->err, job_alloc_cb, job_read_cb);
    uv_timer_start(&j->timer, job_timer_cb, timeout_ms, 0);
    return 0;
}

/* Runs `runc --root R <args...> <id>`-style commands: args end with NULL. */
static int runc_job(struct executor *ex, const char *label, const char *const *args,
                    job_done_fn done, struct ctr *c)
{
    char *argv[16];
    size_t n = 0;
    argv[n++] = ex->runc;
    argv[n++] = "--root";
    argv[n++] = ex->runc_root;
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    struct job *j = job_new(ex, label, done);
    if (j == NULL)
        return -ENOMEM;
    j->ctr = c;
    return job_spawn(j, argv, RUNC_TIMEOUT_MS);
}

static void job_log_failure(struct job *j)
{
    if (j->exited && j->exit_status == 0 && j->term_signal == 0)
        return;
    char msg[512];
    exec__last_error_line((const char *)j->ebuf.data, j->ebuf.len, msg, sizeof(msg));
    swm_log_warn("runc failed job=\"%s\" status=%lld signal=%d error=\"%s\"", j->label,
                 (long long)j->exit_status, j->term_signal, msg);
}

/* ------------------------------------------------------ containers -- */

static struct ctr *find_ctr(struct executor *ex, const char *id)
{
    for (struct ctr *c = ex->ctrs; c != NULL; c = c->next) {
        if (strcmp(c->id, id) == 0)
            return c;
    }
    return NULL;
}

static void ctr_maybe_free(struct ctr *c)
{
    if (!c->released || c->handles > 0 || c->work_pending)
        return;
    struct executor *ex = c->ex;
    if (c->shim_pidfd >= 0)
        close(c->shim_pidfd);
    if (c->init_pidfd >= 0)
        close(c->init_pidfd);
    exec_spec_owned_free(&c->spec);
    swm_free(c->id);
    swm_free(c->bundle);
    swm_free(c);
    ex_unref(ex);
}

static void ctr_handle_closed(uv_handle_t *h)
{
    struct ctr *c = h->data;
    c->handles--;
    ctr_maybe_free(c);
}

static void close_ctr_handle(struct ctr *c, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, ctr_handle_closed);
}

/* Forgets the container: out of the table, handles closing. The memory
 * stays valid until the close callbacks run (the timers are always open),
 * so callers may still read c->id in the same turn of the loop. */
static void ctr_release(struct ctr *c)
{
    if (c->released)
        return;
    c->released = true;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->ex->ctrs = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    close_ctr_handle(c, (uv_handle_t *)&c->kill_timer);
    close_ctr_handle(c, (uv_handle_t *)&c->wait_timer);
    if (c->shim_inited)
        close_ctr_handle(c, (uv_handle_t *)&c->shim);
    if (c->status_inited)
        close_ctr_handle(c, (uv_handle_t *)&c->status);
    if (c->poll_inited)
        close_ctr_handle(c, (uv_handle_t *)&c->shim_poll);
}

static struct ctr *ctr_new(struct executor *ex, const char *id)
{
    struct ctr *c = swm_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->id = swm_strdup(id);
    c->bundle = swm_asprintf("%s/%s", ex->state_dir, id);
    if (c->id == NULL || c->bundle == NULL) {
        swm_free(c->id);
        swm_free(c->bundle);
        swm_free(c);
        return NULL;
    }
    c->ex = ex;
    c->shim_pidfd = c->init_pidfd = -1;
    c->st.exit_code = -1;
    uv_timer_init(ex->loop, &c->kill_timer);
    uv_timer_init(ex->loop, &c->wait_timer);
    c->kill_timer.data = c->wait_timer.data = c->shim.data = c->status.data = c->shim_poll.data = c;
    c->handles = 2;
    c->next = ex->ctrs;
    if (ex->ctrs != NULL)
        ex->ctrs->prev = c;
    ex->ctrs = c;
    ex->refs++;
    return c;
}

static int pidfd_open_pid(int pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The init's pidfd pins its identity, so a later signal cannot hit a
 * recycled pid. Opened when the pid becomes known. */
static void open_init_pidfd(struct ctr *c)
{
    if (c->init_pidfd >= 0)
        return;
    if (c->st.pid <= 0) {
        int pid = exec__read_pid_file(c->bundle, EXEC__INIT_PID);
        if (pid <= 0)
            return;
        c->st.pid = pid;
    }
    c->init_pidfd = pidfd_open_pid(c->st.pid);
}

static int ctr_signal(struct ctr *c, int signo)
{
    open_init_pidfd(c);
    if (c->init_pidfd >= 0)
        return syscall(SYS_pidfd_send_signal, c->init_pidfd, signo, NULL, 0) < 0 ? -errno : 0;
    if (c->st.pid > 0)
        return kill(c->st.pid, signo) < 0 ? -errno : 0;
    return -ESRCH;
}

static void kill_timer_cb(uv_timer_t *t)
{
    struct ctr *c = t->data;
    if (c->phase == PHASE_RUNNING) {
        swm_log_info("container did not stop in time, killing it id=%s", c->id);
        ctr_signal(c, SIGKILL);
    }
}

/* ---------------------------------------------------------- cleanup -- */

static void finish_cleanup(struct ctr *c)
{
    struct executor *ex = c->ex;
    ctr_release(c);
    if (c->start_cb != NULL) {
        exec_start_cb cb = c->start_cb;
        c->start_cb = NULL;
        if (c->fail_rc == 0)
            c->fail_rc = SWM_EEXEC;
        if (c->err.code == 0)
            swm_err_set(&c->err, c->fail_rc, "%s", swm_strerror(c->fail_rc));
        cb(c->start_arg, c->id, c->fail_rc, NULL, &c->err);
        if (ex->closing)
            return;
    }
    if (c->remove_requested && c->remove_cb != NULL)
        c->remove_cb(c->remove_arg, c->id, c->teardown_rc);
}

static void teardown_work(uv_work_t *w)
{
    struct ctr *c = w->data;
    c->teardown_rc = exec__bundle_teardown(c->bundle);
}

static void teardown_after(uv_work_t *w, int status)
{
    struct ctr *c = w->data;
    c->work_pending = false;
    if (c->released) {
        ctr_maybe_free(c);
        return;
    }
    if (c->teardown_rc < 0)
        swm_log_warn("removing container bundle failed id=%s error=\"%s\"", c->id,
                     swm_strerror(c->teardown_rc));
    finish_cleanup(c);
}

static void queue_teardown(struct ctr *c)
{
    c->work.data = c;
    int rc = uv_queue_work(c->ex->loop, &c->work, teardown_work, teardown_after);
    if (rc < 0) {
        c->teardown_rc = rc;
        finish_cleanup(c);
        return;
    }
    c->work_pending = true;
}

static void delete_done(struct job *j)
{
    struct ctr *c = j->ctr;
    job_log_failure(j);
    if (!c->released)
        queue_teardown(c);
}

/* runc delete --force, then unmount and delete the bundle, then the
 * callbacks (a failed start's, a remove's). */
static void ctr_cleanup(struct ctr *c)
{
    /* Idempotent: a remove requested from inside exit_cb and the exit
     * handler itself both ask for it, and its work request can be queued
     * only once. */
    if (c->phase == PHASE_CLEANING)
        return;
    c->phase = PHASE_CLEANING;
    uv_timer_stop(&c->kill_timer);
    uv_timer_stop(&c->wait_timer);
    if (c->poll_inited && !uv_is_closing((uv_handle_t *)&c->shim_poll))
        uv_poll_stop(&c->shim_poll);
    const char *args[] = {"delete", "--force", c->id, NULL};
    if (c->ex->runc == NULL || runc_job(c->ex, "runc delete", args, delete_done, c) < 0)
        queue_teardown(c);
}

/* ------------------------------------------------------------ start -- */

static void wait_timer_start_cb(uv_timer_t *t)
{
    struct ctr *c = t->data;
    if (c->phase != PHASE_STARTING)
        return;
    swm_err_set(&c->err, SWM_EEXEC, "container did not start within %d s", START_TIMEOUT_MS / 1000);
    /* The shim leads its own process group (setsid): take runc with it. */
    if (c->shim_pid > 0 && kill(-c->shim_pid, SIGKILL) < 0)
        uv_process_kill(&c->shim, SIGKILL);
}

static void status_line(struct ctr *c)
{
    int pid;
    if (sscanf(c->status_line, "ok %d", &pid) == 1 && pid > 0) {
        c->got_ok = true;
        c->st.pid = pid;
    } else if (strncmp(c->status_line, "err ", 4) == 0) {
        swm_err_set(&c->err, SWM_EEXEC, "%s", c->status_line + 4);
    } else {
        swm_err_set(&c->err, SWM_EEXEC, "shim: unexpected status \"%s\"", c->status_line);
    }
}

static void status_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ctr *c = h->data;
    *buf = uv_buf_init(c->status_buf, sizeof(c->status_buf));
}

static void status_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ctr *c = s->data;
    for (ssize_t i = 0; i < nread; i++) {
        if (c->status_len == SIZE_MAX)
            break; /* one line only */
        if (buf->base[i] == '\n') {
            c->status_line[c->status_len] = '\0';
            c->status_len = SIZE_MAX;
            status_line(c);
            break;
        }
        if (c->status_len + 1 < sizeof(c->status_line))
            c->status_line[c->status_len++] = buf->base[i];
    }
    if (nread < 0) {
        c->status_done = true;
        close_ctr_handle(c, (uv_handle_t *)&c->status);
    }
    if (c->got_ok || nread < 0)
        ctr_progress(c);
}

static void shim_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct ctr *c = p->data;
    c->shim_exited = true;
    c->shim_exit_status = exit_status;
    c->shim_term_signal = term_signal;
    close_ctr_handle(c, (uv_handle_t *)&c->shim);
    ctr_progress(c);
}

static int spawn_shim(struct ctr *c)
{
    struct executor *ex = c->ex;
    char size[32], files[16];
    snprintf(size, sizeof(size), "%lld", (long long)ex->log_max_bytes);
    snprintf(files, sizeof(files), "%d", ex->log_max_files);
    char *args[] = {
        ex->self_exe,      "shim",   "--id",        c->id,         "--bundle",       c->bundle,
        "--runc",          ex->runc, "--runc-root", ex->runc_root, "--log-max-size", size,
        "--log-max-files", files,    NULL};
    int rc = uv_pipe_init(ex->loop, &c->status, 0);
    if (rc < 0)
        return rc;
    c->status_inited = true;
    c->handles++;

    uv_stdio_container_t stdio[4];
    stdio[0].flags = stdio[1].flags = stdio[2].flags = UV_IGNORE;
    stdio[3].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[3].data.stream = (uv_stream_t *)&c->status;
    uv_process_options_t opts = {
        .exit_cb = shim_exit_cb,
        .file = ex->self_exe,
        .args = args,
        .cwd = "/",
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 4,
        .stdio = stdio,
    };
    rc = uv_spawn(ex->loop, &c->shim, &opts);
    c->shim_inited = true;
    c->handles++;
    if (rc < 0)
        return rc;
    /* Running containers must not keep the daemon's loop alive. */
    uv_unref((uv_handle_t *)&c->shim);
    c->shim_pid = c->shim.pid;
    rc = uv_read_start((uv_stream_t *)&c->status, status_alloc_cb, status_read_cb);
    if (rc < 0) {
        kill(-c->shim_pid, SIGKILL);
        return rc;
    }
    uv_timer_start(&c->wait_timer, wait_timer_start_cb, START_TIMEOUT_MS, 0);
    c->phase = PHASE_STARTING;
    return 0;
}

static void prepare_work(uv_work_t *w)
{
    struct ctr *c = w->data;
    c->prep_rc = exec__bundle_prepare(c->bundle, &c->spec.spec, &c->err);
}

static void prepare_after(uv_work_t *w, int status)
{
    struct ctr *c = w->data;
    c->work_pending = false;
    exec_spec_owned_free(&c->spec);
    if (c->released) {
        /* Closed meanwhile: a prepared bundle stays for the next adopt,
         * which reports it EXITED (never started) so it gets removed. */
        ctr_maybe_free(c);
        return;
    }
    if (c->prep_rc < 0) {
        swm_log_warn("preparing container failed id=%s error=\"%s\"", c->id, c->err.msg);
        c->fail_rc = c->prep_rc == -EEXIST ? SWM_EEXISTS : c->prep_rc;
        if (c->prep_rc == -EEXIST)
            swm_err_set(&c->err, SWM_EEXISTS, "container %s already exists on disk", c->id);
        c->teardown_rc = 0;
        finish_cleanup(c); /* prepare undid its own work */
        return;
    }
    if (c->remove_requested) {
        c->fail_rc = swm_err_set(&c->err, SWM_ESHUTDOWN, "container removed before it started");
        ctr_cleanup(c);
        return;
    }
    int rc = spawn_shim(c);
    if (rc < 0) {
        c->fail_rc = swm_err_set(&c->err, SWM_EEXEC, "starting the shim %s: %s", c->ex->self_exe,
                                 uv_strerror(rc));
        swm_log_warn("container start failed id=%s error=\"%s\"", c->id, c->err.msg);
        if (c->shim_inited && !c->shim_exited && c->shim_pid > 0) {
            /* Spawned but unreachable: wait for it to die before cleaning. */
            c->status_done = true;
            c->phase = PHASE_STARTING;
            return;
        }
        ctr_cleanup(c);
    }
}

int executor_start(struct executor *ex, const struct exec_container_spec *spec, exec_start_cb cb,
                   void *arg)
{
    if (ex->closing)
        return SWM_ESHUTDOWN;
    if (spec == NULL || !exec__id_valid(spec->id) || spec->argv == NULL || spec->argv[0] == NULL)
        return SWM_EINVAL_SPEC;
    if (ex->runc == NULL)
        return SWM_EEXEC;
    if (find_ctr(ex, spec->id) != NULL)
        return SWM_EEXISTS;
    struct ctr *c = ctr_new(ex, spec->id);
    if (c == NULL)
        return -ENOMEM;
    int rc = exec_spec_copy(spec, &c->spec);
    if (rc < 0) {
        ctr_release(c);
        return rc;
    }
    c->phase = PHASE_PREPARING;
    c->st.state = EXEC_STATE_CREATED;
    c->start_cb = cb;
    c->start_arg = arg;
    c->work.data = c;
    rc = uv_queue_work(ex->loop, &c->work, prepare_work, prepare_after);
    if (rc < 0) {
        c->start_cb = NULL;
        ctr_release(c);
        return rc;
    }
    c->work_pending = true;
    return 0;
}

/* --------------------------------------------------------- progress -- */

static void begin_remove_kill(struct ctr *c);

static void start_failure_message(struct ctr *c)
{
    if (c->err.code != 0)
        return;
    char path[PATH_MAX], msg[400];
    struct swm_buf log = {0};
    msg[0] = '\0';
    snprintf(path, sizeof(path), "%s/%s", c->bundle, EXEC__SHIM_LOG);
    if (swm_read_file(path, 1 << 20, &log) == 0 && log.len > 0) {
        exec__last_error_line((const char *)log.data, log.len, msg, sizeof(msg));
        /* drop the shim's timestamp */
        char *sp = strchr(msg, ' ');
        if (sp != NULL)
            memmove(msg, sp + 1, strlen(sp));
    }
    swm_buf_free(&log);
    if (msg[0] != '\0')
        swm_err_set(&c->err, SWM_EEXEC, "shim: %s", msg);
    else if (c->shim_term_signal != 0)
        swm_err_set(&c->err, SWM_EEXEC, "shim killed by signal %d", c->shim_term_signal);
    else
        swm_err_set(&c->err, SWM_EEXEC, "shim exited with status %lld",
                    (long long)c->shim_exit_status);
}

static void on_running(struct ctr *c)
{
    struct executor *ex = c->ex;
    c->phase = PHASE_RUNNING;
    c->st.state = EXEC_STATE_RUNNING;
    c->st.started_ns = swm_now_ns();
    uv_timer_stop(&c->wait_timer);
    open_init_pidfd(c);
    swm_log_info("container started id=%s pid=%d", c->id, c->st.pid);
    /* Requests made while starting; those made from the callback below
     * see a running container and act by themselves. */
    bool remove = c->remove_requested;
    int stop_signo = c->pending_signo;
    c->pending_signo = 0;
    exec_start_cb cb = c->start_cb;
    c->start_cb = NULL;
    if (cb != NULL)
        cb(c->start_arg, c->id, 0, &c->st, NULL);
    if (ex->closing || c->released || c->phase != PHASE_RUNNING)
        return;
    if (remove)
        begin_remove_kill(c);
    else if (stop_signo != 0)
        executor_stop(ex, c->id, stop_signo, c->pending_grace_ns);
}

static void on_exited(struct ctr *c)
{
    struct executor *ex = c->ex;
    int code;
    int64_t finished;
    int rc = exec__read_exit_file(c->bundle, &code, &finished);
    if (rc < 0) {
        /* The shim died (killed, OOM) without recording an exit: nobody
         * logs or reaps the container any more, so it must not run on. */
        swm_log_warn("container's shim died, killing the container id=%s error=\"%s\"", c->id,
                     swm_strerror(rc));
        ctr_signal(c, SIGKILL);
        code = -1;
        finished = swm_now_ns();
    }
    c->phase = PHASE_EXITED;
    c->st.state = EXEC_STATE_EXITED;
    c->st.exit_code = code;
    c->st.finished_ns = finished;
    uv_timer_stop(&c->kill_timer);
    uv_timer_stop(&c->wait_timer);
    if (c->init_pidfd >= 0) {
        close(c->init_pidfd);
        c->init_pidfd = -1;
    }
    swm_log_info("container exited id=%s exit_code=%d", c->id, code);
    if (ex->exit_cb != NULL)
        ex->exit_cb(ex->arg, c->id, &c->st);
    if (ex->closing || c->released)
        return;
    if (c->remove_requested)
        ctr_cleanup(c);
}

static void ctr_progress(struct ctr *c)
{
    if (c->released || c->ex->closing)
        return;
    if (c->phase == PHASE_STARTING) {
        if (c->got_ok) {
            on_running(c);
            if (c->released || c->ex->closing)
                return;
        } else if (c->status_done && c->shim_exited) {
            start_failure_message(c);
            c->fail_rc = c->err.code;
            swm_log_warn("container start failed id=%s error=\"%s\"", c->id, c->err.msg);
            ctr_cleanup(c);
            return;
        } else {
            return; /* wait for the other half */
        }
    }
    if (c->phase == PHASE_RUNNING && c->shim_exited)
        on_exited(c);
}

/* ------------------------------------------------------------- stop -- */

static void wait_timer_remove_cb(uv_timer_t *t)
{
    struct ctr *c = t->data;
    if (c->phase != PHASE_RUNNING)
        return;
    swm_log_warn("container did not exit after SIGKILL, deleting it anyway id=%s", c->id);
    ctr_cleanup(c);
}

static void begin_remove_kill(struct ctr *c)
{
    ctr_signal(c, SIGKILL);
    uv_timer_start(&c->wait_timer, wait_timer_remove_cb, REMOVE_WAIT_MS, 0);
}

int executor_stop(struct executor *ex, const char *id, int signo, int64_t grace_ns)
{
    struct ctr *c = find_ctr(ex, id);
    if (c == NULL)
        return SWM_ENOTFOUND;
    if (signo == 0)
        signo = SIGTERM;
    if (c->phase == PHASE_PREPARING || c->phase == PHASE_STARTING) {
        c->pending_signo = signo;
        c->pending_grace_ns = grace_ns;
        return 0;
    }
    if (c->phase != PHASE_RUNNING)
        return 0;
    int rc = ctr_signal(c, signo);
    if (rc < 0 && rc != -ESRCH)
        swm_log_warn("signalling container failed id=%s signal=%d error=\"%s\"", id, signo,
                     swm_strerror(rc));
    if (signo != SIGKILL) {
        uint64_t ms = grace_ns > 0 ? (uint64_t)((grace_ns + SWM_NS_PER_MS - 1) / SWM_NS_PER_MS) : 0;
        uv_timer_start(&c->kill_timer, kill_timer_cb, ms, 0);
    }
    return 0;
}

int executor_signal(struct executor *ex, const char *id, int signo)
{
    struct ctr *c = find_ctr(ex, id);
    if (c == NULL)
        return SWM_ENOTFOUND;
    if (c->phase != PHASE_RUNNING)
        return -ESRCH;
    return ctr_signal(c, signo);
}

int executor_remove(struct executor *ex, const char *id,
                    void (*cb)(void *arg, const char *id, int status), void *arg)
{
    if (ex->closing)
        return SWM_ESHUTDOWN;
    struct ctr *c = find_ctr(ex, id);
    if (c == NULL)
        return SWM_ENOTFOUND;
    if (c->remove_requested)
        return -EBUSY;
    c->remove_requested = true;
    c->remove_cb = cb;
    c->remove_arg = arg;
    if (c->phase == PHASE_RUNNING)
        begin_remove_kill(c);
    else if (c->phase == PHASE_EXITED)
        ctr_cleanup(c);
    /* PREPARING, STARTING: handled when the start completes. */
    return 0;
}

int executor_inspect(struct executor *ex, const char *id, struct exec_status *out)
{
    struct ctr *c = find_ctr(ex, id);
    if (c == NULL)
        return SWM_ENOTFOUND;
    *out = c->st;
    return 0;
}

/* ------------------------------------------------------------- exec -- */

static void exec_done(struct job *j)
{
    int status;
    if (j->timed_out)
        status = -ETIMEDOUT;
    else if (j->term_signal != 0)
        status = 128 + j->term_signal;
    else
        status = (int)j->exit_status;
    char out[EXEC_OUTPUT_MAX + 1];
    size_t n = j->obuf.len < EXEC_OUTPUT_MAX ? j->obuf.len : EXEC_OUTPUT_MAX;
    if (n > 0)
        memcpy(out, j->obuf.data, n);
    size_t m = j->ebuf.len < EXEC_OUTPUT_MAX - n ? j->ebuf.len : EXEC_OUTPUT_MAX - n;
    if (m > 0)
        memcpy(out + n, j->ebuf.data, m);
    out[n + m] = '\0';
    j->exec_cb(j->exec_arg, status, out);
}

int executor_exec(struct executor *ex, const char *id, char *const *argv, int64_t timeout_ns,
                  void (*cb)(void *arg, int status, const char *output), void *arg)
{
    struct ctr *c = find_ctr(ex, id);
    if (c == NULL)
        return SWM_ENOTFOUND;
    if (c->phase != PHASE_RUNNING)
        return -ESRCH;
    size_t argc = 0;
    while (argv != NULL && argv[argc] != NULL)
        argc++;
    if (argc == 0 || cb == NULL)
        return -EINVAL;

    char name[32];
    snprintf(name, sizeof(name), "exec-%u.pid", ++ex->exec_seq);
    char *pid_file = swm_asprintf("%s/%s", c->bundle, name);
    char **full = swm_calloc(argc + 8, sizeof(char *));
    struct job *j = NULL;
    int rc = -ENOMEM;
    if (pid_file == NULL || full == NULL)
        goto out;
    size_t n = 0;
    full[n++] = ex->runc;
    full[n++] = "--root";
    full[n++] = ex->runc_root;
    full[n++] = "exec";
    full[n++] = "--pid-file";
    full[n++] = pid_file;
    full[n++] = c->id;
    for (size_t i = 0; i < argc; i++)
        full[n++] = argv[i];
    full[n] = NULL;

    j = job_new(ex, "runc exec", exec_done);
    if (j == NULL)
        goto out;
    j->limit = EXEC_OUTPUT_MAX;
    j->exec_cb = cb;
    j->exec_arg = arg;
    j->pid_dir = swm_strdup(c->bundle);
    j->pid_name = swm_strdup(name);
    if (j->pid_dir == NULL || j->pid_name == NULL) {
        j->finished = true;
        job_release(j);
        goto out;
    }
    uint64_t ms = timeout_ns > 0 ? (uint64_t)((timeout_ns + SWM_NS_PER_MS - 1) / SWM_NS_PER_MS)
                                 : EXEC_DEFAULT_TIMEOUT_MS;
    rc = job_spawn(j, full, ms);
out:
    swm_free(full);
    swm_free(pid_file);
    return rc;
}

/* ------------------------------------------------------------ adopt -- */

/* True if pid runs `... shim ... <id> ...`: a recycled pid is not ours. */
static bool is_our_shim(int pid, const char *id)
{
    char path[64];
    struct swm_buf cmd = {0};
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    bool shim = false, has_id = false;
    if (swm_read_file(path, 1 << 16, &cmd) == 0) {
        for (size_t off = 0; off < cmd.len;) {
            const char *arg = (const char *)cmd.data + off;
            size_t len = strnlen(arg, cmd.len - off);
            if (strcmp(arg, "shim") == 0)
                shim = true;
            else if (strcmp(arg, id) == 0)
                has_id = true;
            off += len + 1;
        }
    }
    swm_buf_free(&cmd);
    return shim && has_id;
}

static void shim_poll_cb(uv_poll_t *p, int status, int events)
{
    struct ctr *c = p->data;
    uv_poll_stop(p);
    /* Reap it if it happens to be our child (a previous executor in this
     * process spawned it); otherwise its parent does. */
    siginfo_t info;
    waitid((idtype_t)P_PIDFD, (id_t)c->shim_pidfd, &info, WEXITED | WNOHANG);
    c->shim_exited = true;
    close_ctr_handle(c, (uv_handle_t *)&c->shim_poll);
    ctr_progress(c);
}

static void kill_done(struct job *j)
{
    (void)j; /* best effort: the container is usually gone already */
}

static void adopt_one(struct ctr *c)
{
    struct executor *ex = c->ex;
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", c->bundle, EXEC__INIT_PID);
    bool started = stat(path, &st) == 0;
    if (started)
        c->st.started_ns = (int64_t)st.st_mtim.tv_sec * SWM_NS_PER_SEC + st.st_mtim.tv_nsec;

    int code;
    int64_t finished;
    if (exec__read_exit_file(c->bundle, &code, &finished) == 0)
        goto exited;

    int shim_pid = exec__read_pid_file(c->bundle, EXEC__SHIM_PID);
    if (shim_pid > 0) {
        int fd = pidfd_open_pid(shim_pid);
        if (fd >= 0 && is_our_shim(shim_pid, c->id) &&
            uv_poll_init(ex->loop, &c->shim_poll, fd) == 0) {
            c->poll_inited = true;
            c->handles++;
            c->shim_pidfd = fd;
            c->shim_pid = shim_pid;
            uv_poll_start(&c->shim_poll, UV_READABLE, shim_poll_cb);
            uv_unref((uv_handle_t *)&c->shim_poll);
            c->phase = PHASE_RUNNING;
            c->st.state = EXEC_STATE_RUNNING;
            open_init_pidfd(c);
            swm_log_info("container adopted id=%s pid=%d", c->id, c->st.pid);
            return;
        }
        if (fd >= 0)
            close(fd);
    }
    /* The shim is gone; it may have written the exit file just before. */
    if (exec__read_exit_file(c->bundle, &code, &finished) == 0)
        goto exited;
    code = -1;
    finished = 0;
    if (started && ex->runc != NULL) {
        /* The container may have outlived its shim: nobody would log it or
         * see it exit, so it must not keep running. */
        const char *args[] = {"kill", c->id, "KILL", NULL};
        runc_job(ex, "runc kill", args, kill_done, NULL);
    }
    if (started)
        swm_log_warn("container found without its shim id=%s", c->id);
    else
        swm_log_warn("container start was interrupted id=%s", c->id);
exited:
    c->phase = PHASE_EXITED;
    c->st.state = EXEC_STATE_EXITED;
    c->st.exit_code = code;
    c->st.finished_ns = finished;
}

int executor_adopt(struct executor *ex,
                   void (*fn)(void *arg, const char *id, const struct exec_status *st), void *arg)
{
    DIR *d = opendir(ex->state_dir);
    if (d == NULL)
        return -errno;
    int count = 0, rc = 0;
    struct dirent *e;
    while (!ex->closing && (e = readdir(d)) != NULL) {
        struct stat st;
        if (!exec__id_valid(e->d_name) || fstatat(dirfd(d), e->d_name, &st, 0) < 0 ||
            !S_ISDIR(st.st_mode) || find_ctr(ex, e->d_name) != NULL)
            continue;
        struct ctr *c = ctr_new(ex, e->d_name);
        if (c == NULL) {
            rc = -ENOMEM;
            break;
        }
        adopt_one(c);
        count++;
        if (fn != NULL)
            fn(arg, c->id, &c->st);
    }
    closedir(d);
    return rc < 0 ? rc : count;
}

/* ------------------------------------------------------------ close -- */

void executor_close(struct executor *ex)
{
    if (ex == NULL || ex->closing)
        return;
    ex->closing = true;
    while (ex->ctrs != NULL)
        ctr_release(ex->ctrs);
    while (ex->jobs != NULL)
        job_release(ex->jobs);
    ex_unref(ex);
}
