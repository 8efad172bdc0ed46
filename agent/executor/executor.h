/* Executor: runs one container per task (DESIGN.md §7). The runc backend
 * writes an OCI bundle under <data-dir>/containers/<id>/ (config.json and an
 * overlayfs rootfs over the image's layer directories) and starts the
 * container through a small per-container shim (`swarmc shim`, the same
 * binary): the shim is the container's parent (child subreaper), copies its
 * stdout/stderr into rotating log files, and records the exit code, so
 * containers and their logs survive a restart of the daemon, which
 * re-adopts them.
 *
 * All functions run on the loop thread; slow work (mounts, runc) happens in
 * child processes or on the threadpool. Callbacks run on the loop thread.
 */
#ifndef SWM_AGENT_EXECUTOR_EXECUTOR_H
#define SWM_AGENT_EXECUTOR_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

struct executor;

struct exec_mount {
    const char *type;   /* "bind", "tmpfs" */
    const char *source; /* host path for bind */
    const char *target;
    bool readonly;
    int64_t tmpfs_size_bytes;
};

/* Everything needed to create a container: the task's spec already merged
 * with its image's config (see exec_spec_merge). Strings are borrowed for the
 * duration of the call only. */
struct exec_container_spec {
    const char *id;        /* container id: the task id */
    const char *hostname;
    char *const *argv;     /* NULL-terminated; argv[0] resolved in the rootfs PATH by runc */
    char *const *env;      /* NULL-terminated "K=V" */
    const char *cwd;       /* default "/" */
    const char *user;      /* "uid[:gid]", "name[:group]" resolved in the rootfs, or NULL = root */
    char *const *lower_dirs; /* image layer dirs, LOWEST first, NULL-terminated */
    const struct exec_mount *mounts;
    size_t n_mounts;
    int64_t memory_limit_bytes; /* 0 = none */
    int64_t nano_cpus;          /* 0 = none */
    int64_t pids_limit;         /* 0 = none */
    bool read_only_rootfs;
    bool tty;
    char *const *labels;   /* NULL-terminated "k=v", recorded in annotations */
};

/* State of a container as the executor knows it. */
enum exec_state {
    EXEC_STATE_CREATED, /* bundle ready, not started */
    EXEC_STATE_RUNNING,
    EXEC_STATE_EXITED,
};

struct exec_status {
    enum exec_state state;
    int pid;             /* running: the container's init pid */
    int exit_code;       /* exited: code, 128+signal if killed; -1 if unknown */
    int64_t started_ns;  /* unix ns */
    int64_t finished_ns; /* unix ns, exited only */
};

/* Called once a container started (status 0, st filled) or failed to start
 * (status < 0, err says why in one line, e.g. runc's message). */
typedef void (*exec_start_cb)(void *arg, const char *id, int status, const struct exec_status *st,
                              const struct swm_err *err);
/* Called once when a running container exits (st->state == EXEC_STATE_EXITED). */
typedef void (*exec_exit_cb)(void *arg, const char *id, const struct exec_status *st);

/* Opens the executor: state in state_dir (<data-dir>/containers), runc state
 * in runc_root (<run-dir>/runc), the shim is `self_exe shim ...`. exit_cb is
 * called for every container exit, including re-adopted ones. */
int executor_open(uv_loop_t *loop, const char *state_dir, const char *runc_root,
                  const char *self_exe, exec_exit_cb exit_cb, void *arg, struct executor **out,
                  struct swm_err *err);

/* Closes handles; running containers keep running (re-adopted next time). */
void executor_close(struct executor *ex);

/* Re-adopts containers left by a previous daemon: calls fn once per
 * container found on disk with its current status. Containers that died
 * while the daemon was down are reported EXITED (exit code from the shim,
 * or -1). Running ones are watched again and reported via exit_cb later. */
int executor_adopt(struct executor *ex,
                   void (*fn)(void *arg, const char *id, const struct exec_status *st), void *arg);

/* Prepares the bundle and starts the container. cb is called exactly once,
 * unless this returns < 0 (then never). */
int executor_start(struct executor *ex, const struct exec_container_spec *spec, exec_start_cb cb,
                   void *arg);

/* Sends signal `signo` (0 = the spec's stop signal is the caller's to pick:
 * pass SIGTERM) and SIGKILL after grace_ns if it is still running. The exit
 * is reported through exit_cb. Returns 0, or SWM_ENOTFOUND. */
int executor_stop(struct executor *ex, const char *id, int signo, int64_t grace_ns);

/* Sends one signal. 0, SWM_ENOTFOUND or -errno. */
int executor_signal(struct executor *ex, const char *id, int signo);

/* Removes a container: kills it if running, `runc delete`, unmounts the
 * rootfs, deletes the bundle and its logs. Asynchronous; cb(arg, id, status)
 * when done (may be NULL). */
int executor_remove(struct executor *ex, const char *id,
                    void (*cb)(void *arg, const char *id, int status), void *arg);

/* Current status. 0 or SWM_ENOTFOUND. */
int executor_inspect(struct executor *ex, const char *id, struct exec_status *out);

/* Directory holding the container's log files: "stdout.log", "stderr.log"
 * and rotated "stdout.log.1".. (max size and count set at open). The caller
 * reads them; the string is swm_malloc'd. */
char *executor_log_dir(struct executor *ex, const char *id);

/* Runs argv inside the running container (for health checks) with a
 * timeout; cb(arg, exit_code or negative error, output). */
int executor_exec(struct executor *ex, const char *id, char *const *argv, int64_t timeout_ns,
                  void (*cb)(void *arg, int status, const char *output), void *arg);

/* Entry point of `swarmc shim`: argv after "shim". Never returns on success
 * paths that exec; returns the process exit code otherwise. */
int exec_shim_main(int argc, char **argv);

#endif
