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
struct image_config; /* agent/image/image.h */
struct Swarmc__Task; /* proto/objects.pb-c.h */

struct exec_mount {
    const char *type;   /* "bind", "tmpfs" */
    const char *source; /* host path for bind (must exist, absolute) */
    const char *target; /* absolute path in the container */
    bool readonly;
    int64_t tmpfs_size_bytes; /* 0 = kernel default */
    uint32_t tmpfs_mode;      /* 0 = 1777 */
};

/* Everything needed to create a container: the task's spec already merged
 * with its image's config (see exec_spec_build). Strings are borrowed for the
 * duration of the call only. */
struct exec_container_spec {
    const char *id; /* container id: the task id */
    const char *hostname;
    char *const *argv; /* NULL-terminated; argv[0] resolved in the rootfs PATH by runc */
    char *const *env;  /* NULL-terminated "K=V" */
    const char *cwd;   /* default "/" */
    const char *user;  /* "uid[:gid]", "name[:group]" resolved in the rootfs, or NULL = root */
    char *const *lower_dirs; /* image layer dirs, LOWEST first, NULL-terminated */
    const struct exec_mount *mounts;
    size_t n_mounts;
    int64_t memory_limit_bytes; /* 0 = none */
    int64_t nano_cpus;          /* 0 = none */
    int64_t pids_limit;         /* 0 = none */
    bool read_only_rootfs;
    bool tty;            /* not supported yet: the container runs without a terminal */
    char *const *labels; /* NULL-terminated "k=v", recorded in annotations; may be NULL */
    char *const *groups; /* supplementary groups (names or gids); may be NULL */
};

/* A container spec that owns its storage: `spec` points into the other
 * members. Built by exec_spec_build or exec_spec_copy, freed with
 * exec_spec_owned_free. The extra members are the parts of the merge the
 * agent (not the executor) acts on. */
struct exec_spec_owned {
    struct exec_container_spec spec;
    char *id, *hostname, *cwd, *user;
    char **argv, **env, **lower_dirs, **labels, **groups; /* NULL-terminated */
    struct exec_mount *mounts;                            /* source/target owned */
    int stop_signal;       /* signal number: task's, image's or SIGTERM */
    int64_t stop_grace_ns; /* task's stop_grace_period or 10 s */
    /* Health check (task's over image's, field by field, as Docker): NULL
     * test = none or disabled ("NONE"); else {"CMD", args..} or
     * {"CMD-SHELL", cmd}. Durations have Docker's defaults applied. */
    char **health_test;
    int64_t health_interval_ns, health_timeout_ns, health_start_period_ns;
    int health_retries;
};

/* Merges a task's container spec with its image's config, with Docker's
 * rules: argv = (task command, else image entrypoint) + (task args, else the
 * image cmd only when the task sets no command); env = image env overridden
 * by task env by key (plus nothing else: PATH and HOSTNAME are added when the
 * bundle is written if absent); cwd = task dir, image workdir or "/"; user =
 * task user or image user; hostname = task hostname or the first 12
 * characters of the task id; limits from spec.resources.limits; bind and
 * tmpfs mounts; labels = container labels plus com.docker.swarm.* ones. img
 * may be NULL (no image config, no layers). Fills *out (which the caller
 * frees with exec_spec_owned_free) and returns 0, or returns SWM_EINVAL_SPEC
 * ("no command specified", bad mount, bad stop signal), SWM_ENOTSUP (volume
 * mounts) or -ENOMEM with err set; *out is then untouched. */
int exec_spec_build(const struct Swarmc__Task *task, const struct image_config *img,
                    struct exec_spec_owned *out, struct swm_err *err);

/* Deep-copies a container spec (only the `spec` part of *out is filled; stop
 * and health members are zeroed). 0, SWM_EINVAL_SPEC (unknown mount type) or
 * -ENOMEM; *out untouched on failure. */
int exec_spec_copy(const struct exec_container_spec *in, struct exec_spec_owned *out);

/* Frees what exec_spec_build / exec_spec_copy allocated and zeroes *o.
 * Accepts NULL and a zeroed struct. */
void exec_spec_owned_free(struct exec_spec_owned *o);

/* Parses "SIGTERM", "TERM" or "15" (case-insensitive names). Returns the
 * signal number or -EINVAL. */
int exec_signal_parse(const char *name);

/* State of a container as the executor knows it. */
enum exec_state {
    EXEC_STATE_CREATED, /* starting: bundle being prepared, or runc starting it */
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
/* Called once when a running container exits (st->state == EXEC_STATE_EXITED).
 * exit_code -1: its shim died without recording it (the container was then
 * killed). */
typedef void (*exec_exit_cb)(void *arg, const char *id, const struct exec_status *st);

/* Opens the executor: state in state_dir (<data-dir>/containers, created if
 * missing), runc state in runc_root (<run-dir>/runc), the shim is
 * `self_exe shim ...` (an absolute path, e.g. readlink of /proc/self/exe;
 * it runs in "/"). runc is looked up in PATH, then /usr/sbin, /usr/bin,
 * /sbin, /bin; if it is missing open succeeds and executor_start fails.
 * exit_cb is called for every container exit, including re-adopted ones.
 * Strings are copied. Returns 0 and *out, or -errno with err set. */
int executor_open(uv_loop_t *loop, const char *state_dir, const char *runc_root,
                  const char *self_exe, exec_exit_cb exit_cb, void *arg, struct executor **out,
                  struct swm_err *err);

/* Closes handles; running containers keep running (re-adopted next time).
 * No callback runs after this returns (pending start/remove/exec callbacks
 * are dropped). The memory is released from close callbacks: run the loop
 * (uv_run) until it is idle before uv_loop_close. Accepts NULL. */
void executor_close(struct executor *ex);

/* Sets the log rotation of containers started from now on: each stream's
 * file is rotated when a line would take it past max_bytes, keeping
 * max_files files (.log, .log.1, ...). Defaults 10 MiB and 3. Returns 0 or
 * -EINVAL (max_bytes < 1024, max_files < 1 or > 100). */
int executor_set_log_rotation(struct executor *ex, int64_t max_bytes, int max_files);

/* Re-adopts containers left by a previous daemon: calls fn once per
 * container found on disk with its current status, synchronously, before
 * returning. Containers that died while the daemon was down are reported
 * EXITED (exit code from the shim, or -1 if the shim died without recording
 * one or the start was interrupted; such a container is also sent SIGKILL
 * through runc in case it outlived its shim). Running ones are watched again
 * and reported via exit_cb later. Containers this executor already knows are
 * skipped. Returns the number of containers reported, or -errno (the state
 * directory cannot be read). */
int executor_adopt(struct executor *ex,
                   void (*fn)(void *arg, const char *id, const struct exec_status *st), void *arg);

/* Prepares the bundle (on the threadpool: config.json, overlay mount) and
 * starts the container through its shim. cb is called exactly once, unless
 * this returns < 0 (then never): status 0 and st (RUNNING, pid, started_ns),
 * or status < 0 with err (e.g. runc's message: `exec: "x": executable file
 * not found in $PATH`); on failure the bundle, mount and runc state are
 * already cleaned up and the id is free again. A container that exits right
 * away gets cb first, then exit_cb. Returns 0, SWM_EEXISTS (id known),
 * SWM_EINVAL_SPEC (bad id or spec), SWM_EEXEC (runc not found) or -ENOMEM. */
int executor_start(struct executor *ex, const struct exec_container_spec *spec, exec_start_cb cb,
                   void *arg);

/* Sends signal `signo` (0 = the spec's stop signal is the caller's to pick:
 * pass SIGTERM) and SIGKILL after grace_ns if it is still running. The exit
 * is reported through exit_cb. A container still starting is stopped as
 * soon as it runs; an exited one is left alone. Note that a container's init
 * (pid 1 of its namespace) only receives the signals it handles, and
 * SIGKILL. Returns 0, or SWM_ENOTFOUND. */
int executor_stop(struct executor *ex, const char *id, int signo, int64_t grace_ns);

/* Sends one signal to the container's init. 0, SWM_ENOTFOUND, -ESRCH (not
 * running) or -errno. */
int executor_signal(struct executor *ex, const char *id, int signo);

/* Removes a container: kills it if running (its exit is still reported via
 * exit_cb), `runc delete --force`, unmounts the rootfs (lazily if busy),
 * deletes the bundle and its logs. A container still starting is removed
 * once its start completes. Asynchronous; cb(arg, id, status) when done
 * (may be NULL); status 0 or -errno if the bundle could not be deleted (the
 * container is forgotten either way). Returns 0, SWM_ENOTFOUND, or -EBUSY
 * (a removal is already in progress). The id string passed to cb is only
 * valid during the call. */
int executor_remove(struct executor *ex, const char *id,
                    void (*cb)(void *arg, const char *id, int status), void *arg);

/* Current status (CREATED while starting). 0 or SWM_ENOTFOUND. */
int executor_inspect(struct executor *ex, const char *id, struct exec_status *out);

/* Directory holding the container's log files: "stdout.log", "stderr.log"
 * and rotated "stdout.log.1".. (see executor_set_log_rotation). Each line is
 * "<time> <text>\n" where time is RFC 3339 UTC with 9 fraction digits
 * ("2024-05-01T12:00:00.123456789Z"); lines longer than 16 KiB are split.
 * The caller reads them; the string is swm_malloc'd (NULL on ENOMEM). The
 * directory exists until the container is removed. */
char *executor_log_dir(struct executor *ex, const char *id);

/* Runs argv inside the running container (for health checks, `runc exec`:
 * the container's env, user and cwd) with a timeout; cb(arg, status,
 * output) once: status is the exit code (126/127 from runc when argv[0]
 * cannot be run, 128+signal), -ETIMEDOUT (the process was killed), or
 * another negative error; output is the first 4 KiB of stdout then stderr,
 * NUL-terminated, valid during the call. Returns 0 or SWM_ENOTFOUND,
 * -ESRCH (not running), -EINVAL (empty argv), -ENOMEM; then cb never runs. */
int executor_exec(struct executor *ex, const char *id, char *const *argv, int64_t timeout_ns,
                  void (*cb)(void *arg, int status, const char *output), void *arg);

/* Entry point of `swarmc shim`: argv[0] is "shim" itself, so the daemon's
 * main calls exec_shim_main(argc - 1, argv + 1). Returns the process exit
 * code (0 once the container's exit is recorded). See shim.c for the
 * protocol; only the executor starts shims. */
int exec_shim_main(int argc, char **argv);

#endif
