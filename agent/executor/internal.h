/* Internals of agent/executor/ shared by bundle.c, spec.c, shim.c and
 * executor.c (and the unit tests). No other module includes this file.
 *
 * Bundle layout (<state_dir>/<id>/, DESIGN.md §7):
 *
 *   config.json          OCI runtime spec, written before the shim starts
 *   rootfs/              overlay mount point (lower = image layers)
 *   upper/ work/         overlay upper and work directories
 *   empty/               lower dir when the image has no layers
 *   hostname hosts resolv.conf   bind-mounted over /etc/ in the container
 *   shim.pid             "<pid>\n" of the shim, written by the shim first
 *   init.pid             the container's init, written by `runc run -d`
 *   runc.log             runc's own log (JSON lines) for `runc run`
 *   shim.log             the shim's own errors, one line each
 *   stdout.log[.N] stderr.log[.N]   the container's output
 *   exit                 "<exit code> <finished unix ns>\n", written
 *                        atomically by the shim once the init exited
 */
#ifndef SWM_AGENT_EXECUTOR_INTERNAL_H
#define SWM_AGENT_EXECUTOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/executor/executor.h"
#include "common/err.h"

#define EXEC__CONFIG "config.json"
#define EXEC__ROOTFS "rootfs"
#define EXEC__SHIM_PID "shim.pid"
#define EXEC__INIT_PID "init.pid"
#define EXEC__EXIT "exit"
#define EXEC__SHIM_LOG "shim.log"
#define EXEC__RUNC_LOG "runc.log"

#define EXEC__LOG_MAX_BYTES_DEFAULT (10 * 1024 * 1024)
#define EXEC__LOG_MAX_FILES_DEFAULT 3
/* Lines longer than this are split, like Docker's 16 KiB log messages. */
#define EXEC__LOG_LINE_MAX 16384
/* Longest RFC 3339 UTC time with nanoseconds, plus NUL. */
#define EXEC__TIME_LEN 32
#define EXEC__MAX_GIDS 64

/* The process identity of a container, resolved in its rootfs. */
struct exec__user {
    uint32_t uid, gid;
    uint32_t additional_gids[EXEC__MAX_GIDS];
    size_t n_additional_gids;
};

/* Resolves user ("", NULL, "uid", "name", "uid:gid", "name:group", ...) and
 * the supplementary groups (names or gids, may be NULL) against
 * <rootfs>/etc/passwd and <rootfs>/etc/group, read without following
 * symlinks out of rootfs. A named user also gets every group that lists it
 * as a member (as runc and Docker do). Returns 0, or SWM_EINVAL_SPEC ("unable
 * to find user x: no matching entries in passwd file") or -errno with err
 * set; *out is set only on success. */
int exec__user_resolve(const char *rootfs, const char *user, char *const *groups,
                       struct exec__user *out, struct swm_err *err);

/* Renders the OCI config.json for spec in bundle (absolute path) as a
 * swm_malloc'd NUL-terminated string in *out. 0 or -ENOMEM /
 * SWM_EINVAL_SPEC with err set. */
int exec__config_json(const struct exec_container_spec *spec, const char *bundle,
                      const struct exec__user *user, char **out, struct swm_err *err);

/* The overlay mount data for bundle over lower_dirs (LOWEST first, may be
 * NULL or empty: then <bundle>/empty): "lowerdir=HIGHEST:...:LOWEST,
 * upperdir=<bundle>/upper,workdir=<bundle>/work". swm_malloc'd into *out.
 * 0, -ENOMEM, -EINVAL (a path holds ',' or ':' or is relative) or -E2BIG
 * (longer than a page, the kernel's limit). */
int exec__overlay_data(char *const *lower_dirs, const char *bundle, char **out);

/* Creates the bundle directory and everything in it, mounts the rootfs and
 * writes config.json. Blocking: threadpool only. On failure undoes what it
 * did (exec__bundle_teardown) and returns < 0 with err set; -EEXIST if the
 * directory already exists (then it is left alone). */
int exec__bundle_prepare(const char *bundle, const struct exec_container_spec *spec,
                         struct swm_err *err);

/* Unmounts <bundle>/rootfs (lazily if busy) and deletes the bundle.
 * Blocking: threadpool only. A missing bundle is success. 0 or -errno. */
int exec__bundle_teardown(const char *bundle);

/* Formats unix ns as "2024-05-01T12:00:00.123456789Z". Returns the length. */
size_t exec__format_time(int64_t unix_ns, char out[EXEC__TIME_LEN]);

/* The last non-empty line of text (len bytes), copied into out; if it is a
 * logrus line (`time=... level=error msg="..."`) only the unquoted msg.
 * Empty string if there is none. */
void exec__last_error_line(const char *text, size_t len, char *out, size_t size);

/* Reads <bundle>/exit. 0 and *code, *finished_ns; -ENOENT; or
 * SWM_ECORRUPT if malformed. */
int exec__read_exit_file(const char *bundle, int *code, int64_t *finished_ns);

/* Reads a "<pid>\n" file in bundle. Returns the pid (> 0) or -errno /
 * SWM_ECORRUPT. */
int exec__read_pid_file(const char *bundle, const char *name);

/* True if id is usable as a container id and a path component:
 * [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 characters. */
bool exec__id_valid(const char *id);

#endif
