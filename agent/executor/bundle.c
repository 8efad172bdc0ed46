/* The OCI bundle of a container: config.json (runtime spec 1.0.2, as runc
 * 1.1 reads it), the overlay rootfs and the generated /etc files
 * (DESIGN.md §7). Everything here that touches the disk blocks, so the
 * executor calls it on the threadpool. */
#define _GNU_SOURCE
#include "agent/executor/internal.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ETC_FILE_MAX (4 * 1024 * 1024)

/* Docker's default capability set (oci/caps/defaults.go). */
static const char *const default_caps[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
    NULL,
};

/* Docker's masked and read-only paths (oci/defaults.go), a superset of
 * `runc spec`'s. */
static const char *const masked_paths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    NULL,
};
static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

bool exec__id_valid(const char *id)
{
    if (id == NULL || !isalnum((unsigned char)id[0]))
        return false;
    size_t n = 0;
    for (const char *p = id; *p != '\0'; p++, n++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
            return false;
    }
    return n <= 128;
}

size_t exec__format_time(int64_t unix_ns, char out[EXEC__TIME_LEN])
{
    time_t sec = (time_t)(unix_ns / 1000000000);
    long nsec = (long)(unix_ns % 1000000000);
    if (nsec < 0) {
        nsec += 1000000000;
        sec -= 1;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, EXEC__TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(out + n, EXEC__TIME_LEN - n, ".%09ldZ", nsec);
    return n + (m > 0 ? (size_t)m : 0);
}

void exec__last_error_line(const char *text, size_t len, char *out, size_t size)
{
    if (size == 0)
        return;
    out[0] = '\0';
    /* Find the last line with a non-blank character. */
    size_t end = len;
    while (end > 0 && isspace((unsigned char)text[end - 1]))
        end--;
    if (end == 0)
        return;
    size_t start = end;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    const char *line = text + start;
    size_t n = end - start;

    /* logrus text (`time="..." level=error msg="the message"`) or JSON
     * (`{"level":"error","msg":"the message",...}`) lines: the msg only. */
    const char *msg = memmem(line, n, "msg=\"", 5);
    size_t skip = 5;
    if (msg == NULL) {
        msg = memmem(line, n, "\"msg\":\"", 7);
        skip = 7;
    }
    if (msg != NULL) {
        const char *p = msg + skip;
        const char *stop = line + n;
        size_t o = 0;
        while (p < stop && *p != '"' && o + 1 < size) {
            if (*p == '\\' && p + 1 < stop)
                p++;
            out[o++] = *p++;
        }
        out[o] = '\0';
        return;
    }
    if (n >= size)
        n = size - 1;
    memcpy(out, line, n);
    out[n] = '\0';
}

static int read_small_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do {
        n = read(fd, buf, size - 1);
    } while (n < 0 && errno == EINTR);
    int rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc < 0)
        return rc;
    buf[n] = '\0';
    return (int)n;
}

int exec__read_exit_file(const char *bundle, int *code, int64_t *finished_ns)
{
    char path[PATH_MAX], buf[128];
    snprintf(path, sizeof(path), "%s/%s", bundle, EXEC__EXIT);
    int rc = read_small_file(path, buf, sizeof(buf));
    if (rc < 0)
        return rc;
    int c;
    long long fin;
    if (sscanf(buf, "%d %lld", &c, &fin) != 2)
        return SWM_ECORRUPT;
    *code = c;
    *finished_ns = (int64_t)fin;
    return 0;
}

int exec__read_pid_file(const char *bundle, const char *name)
{
    char path[PATH_MAX], buf[64];
    snprintf(path, sizeof(path), "%s/%s", bundle, name);
    int rc = read_small_file(path, buf, sizeof(buf));
    if (rc < 0)
        return rc;
    char *end;
    errno = 0;
    long pid = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || pid <= 0 || pid > INT_MAX)
        return SWM_ECORRUPT;
    return (int)pid;
}

/* ------------------------------------------------------------ users -- */

static bool parse_id(const char *s, size_t n, uint32_t *out)
{
    if (n == 0 || n > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > INT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Reads <rootfs>/<rel> resolving symlinks as if rootfs were "/", so an image
 * cannot point us at the host's files. -ENOENT if absent. */
static int read_in_root(const char *rootfs, const char *rel, struct swm_buf *out)
{
    int root = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return -errno;
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof(how));
    if (fd < 0 && errno == ENOSYS)
        fd = openat(root, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = fd < 0 ? -errno : 0;
    close(root);
    if (rc < 0)
        return rc;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    rc = swm_read_file(path, ETC_FILE_MAX, out);
    close(fd);
    return rc;
}

/* Splits a colon-separated /etc/passwd or /etc/group line into at most
 * max fields (pointers into line, NUL-terminated in place). */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *colon = strchr(p, ':');
        if (colon == NULL)
            break;
        *colon = '\0';
        p = colon + 1;
    }
    return n;
}

struct passwd_match {
    bool found;
    uint32_t uid, gid;
    char name[256];
};

/* Finds a passwd entry by name (if name) or uid. */
static void passwd_lookup(char *text, const char *name, uint32_t uid, struct passwd_match *m)
{
    m->found = false;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[7];
        if (line[0] == '#' || split_fields(line, f, 7) < 4)
            continue;
        uint32_t u, g;
        if (!parse_id(f[2], strlen(f[2]), &u) || !parse_id(f[3], strlen(f[3]), &g))
            continue;
        if (name != NULL ? strcmp(f[0], name) == 0 : u == uid) {
            m->found = true;
            m->uid = u;
            m->gid = g;
            snprintf(m->name, sizeof(m->name), "%s", f[0]);
            return;
        }
    }
}

static bool member_of(const char *members, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = members; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return false;
}

static void add_gid(struct exec__user *u, uint32_t gid)
{
    for (size_t i = 0; i < u->n_additional_gids; i++) {
        if (u->additional_gids[i] == gid)
            return;
    }
    if (u->n_additional_gids < EXEC__MAX_GIDS)
        u->additional_gids[u->n_additional_gids++] = gid;
}

/* Looks a group up by name in /etc/group text (copied: parsing is
 * destructive). */
static int group_lookup(const struct swm_buf *groups, const char *name, uint32_t *gid)
{
    if (groups->len == 0)
        return -ENOENT;
    char *text = swm_strndup((const char *)groups->data, groups->len);
    if (text == NULL)
        return -ENOMEM;
    int rc = -ENOENT;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        uint32_t g;
        if (line[0] == '#' || split_fields(line, f, 4) < 3)
            continue;
        if (strcmp(f[0], name) == 0 && parse_id(f[2], strlen(f[2]), &g)) {
            *gid = g;
            rc = 0;
            break;
        }
    }
    swm_free(text);
    return rc;
}

static int member_groups(const struct swm_buf *groups, const char *user, struct exec__user *u)
{
    if (groups->len == 0)
        return 0;
    char *text = swm_strndup((const char *)groups->data, groups->len);
    if (text == NULL)
        return -ENOMEM;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        uint32_t g;
        if (line[0] == '#' || split_fields(line, f, 4) < 4)
            continue;
        if (member_of(f[3], user) && parse_id(f[2], strlen(f[2]), &g))
            add_gid(u, g);
    }
    swm_free(text);
    return 0;
}

int exec__user_resolve(const char *rootfs, const char *user, char *const *groups,
                       struct exec__user *out, struct swm_err *err)
{
    struct swm_buf passwd = {0}, group = {0};
    struct exec__user u = {0};
    char *passwd_text = NULL;
    int rc = read_in_root(rootfs, "/etc/passwd", &passwd);
    if (rc < 0 && rc != -ENOENT) {
        swm_err_set(err, rc, "reading /etc/passwd of the image: %s", swm_strerror(rc));
        goto out;
    }
    rc = read_in_root(rootfs, "/etc/group", &group);
    if (rc < 0 && rc != -ENOENT) {
        swm_err_set(err, rc, "reading /etc/group of the image: %s", swm_strerror(rc));
        goto out;
    }

    const char *spec = user != NULL && user[0] != '\0' ? user : "0";
    const char *colon = strchr(spec, ':');
    size_t ulen = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
    char uname[256];
    if (ulen == 0 || ulen >= sizeof(uname)) {
        rc = swm_err_set(err, SWM_EINVAL_SPEC, "invalid user \"%s\"", spec);
        goto out;
    }
    memcpy(uname, spec, ulen);
    uname[ulen] = '\0';

    passwd_text = swm_strndup(passwd.len > 0 ? (const char *)passwd.data : "", passwd.len);
    if (passwd_text == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    struct passwd_match m;
    uint32_t uid;
    if (parse_id(uname, ulen, &uid)) {
        passwd_lookup(passwd_text, NULL, uid, &m);
        u.uid = uid;
        u.gid = m.found ? m.gid : 0;
    } else {
        passwd_lookup(passwd_text, uname, 0, &m);
        if (!m.found) {
            rc = swm_err_set(err, SWM_EINVAL_SPEC,
                             "unable to find user %s: no matching entries in passwd file", uname);
            goto out;
        }
        u.uid = m.uid;
        u.gid = m.gid;
    }

    if (colon != NULL) {
        const char *g = colon + 1;
        uint32_t gid;
        if (parse_id(g, strlen(g), &gid)) {
            u.gid = gid;
        } else if (g[0] == '\0' || group_lookup(&group, g, &gid) < 0) {
            rc = swm_err_set(err, SWM_EINVAL_SPEC,
                             "unable to find group %s: no matching entries in group file", g);
            goto out;
        } else {
            u.gid = gid;
        }
    }
    if (m.found) {
        rc = member_groups(&group, m.name, &u);
        if (rc < 0) {
            swm_err_code(err, rc);
            goto out;
        }
    }
    for (size_t i = 0; groups != NULL && groups[i] != NULL; i++) {
        uint32_t gid;
        if (!parse_id(groups[i], strlen(groups[i]), &gid) &&
            group_lookup(&group, groups[i], &gid) < 0) {
            rc = swm_err_set(err, SWM_EINVAL_SPEC,
                             "unable to find group %s: no matching entries in group file",
                             groups[i]);
            goto out;
        }
        add_gid(&u, gid);
    }
    *out = u;
    rc = 0;
out:
    swm_free(passwd_text);
    swm_buf_free(&passwd);
    swm_buf_free(&group);
    return rc;
}

/* ------------------------------------------------------ config.json -- */

/* json_*_set_new and json_array_append_new take ownership even on failure
 * and fail on a NULL value, so building a tree only needs one error flag. */
struct jb {
    bool failed;
    bool oom; /* one of our own allocations failed */
};

static json_t *obj_set(struct jb *b, json_t *obj, const char *key, json_t *v)
{
    if (obj == NULL || json_object_set_new(obj, key, v) < 0)
        b->failed = true;
    return v;
}

static json_t *arr_add(struct jb *b, json_t *arr, json_t *v)
{
    if (arr == NULL || json_array_append_new(arr, v) < 0)
        b->failed = true;
    return v;
}

static json_t *str_array(struct jb *b, const char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        arr_add(b, a, json_string(v[i]));
    return a;
}

static json_t *mount_obj(struct jb *b, const char *dest, const char *type, const char *source,
                         const char *const *options)
{
    json_t *m = json_object();
    obj_set(b, m, "destination", json_string(dest));
    obj_set(b, m, "type", json_string(type));
    obj_set(b, m, "source", json_string(source));
    if (options != NULL)
        obj_set(b, m, "options", str_array(b, options));
    return m;
}

static bool env_has_key(char *const *env, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        if (strncmp(env[i], kv, klen) == 0 && (env[i][klen] == '=' || env[i][klen] == '\0'))
            return true;
    }
    return false;
}

static bool mounts_target(const struct exec_container_spec *spec, const char *target)
{
    for (size_t i = 0; i < spec->n_mounts; i++) {
        if (spec->mounts[i].target != NULL && strcmp(spec->mounts[i].target, target) == 0)
            return true;
    }
    return false;
}

static void add_default_mounts(struct jb *b, json_t *mounts)
{
    static const char *const dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k",
                                           NULL};
    static const char *const pts_opts[] = {"nosuid",    "noexec", "newinstance", "ptmxmode=0666",
                                           "mode=0620", "gid=5",  NULL};
    static const char *const shm_opts[] = {"nosuid",    "noexec",      "nodev",
                                           "mode=1777", "size=65536k", NULL};
    static const char *const mq_opts[] = {"nosuid", "noexec", "nodev", NULL};
    static const char *const sys_opts[] = {"nosuid", "noexec", "nodev", "ro", NULL};
    static const char *const cg_opts[] = {"nosuid", "noexec", "nodev", "relatime", "ro", NULL};
    arr_add(b, mounts, mount_obj(b, "/proc", "proc", "proc", NULL));
    arr_add(b, mounts, mount_obj(b, "/dev", "tmpfs", "tmpfs", dev_opts));
    arr_add(b, mounts, mount_obj(b, "/dev/pts", "devpts", "devpts", pts_opts));
    arr_add(b, mounts, mount_obj(b, "/dev/shm", "tmpfs", "shm", shm_opts));
    arr_add(b, mounts, mount_obj(b, "/dev/mqueue", "mqueue", "mqueue", mq_opts));
    arr_add(b, mounts, mount_obj(b, "/sys", "sysfs", "sysfs", sys_opts));
    arr_add(b, mounts, mount_obj(b, "/sys/fs/cgroup", "cgroup", "cgroup", cg_opts));
}

static int add_spec_mounts(struct jb *b, json_t *mounts, const struct exec_container_spec *spec,
                           struct swm_err *err)
{
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct exec_mount *m = &spec->mounts[i];
        if (m->target == NULL || m->target[0] != '/')
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid mount target \"%s\": not absolute",
                               m->target != NULL ? m->target : "");
        if (m->type != NULL && strcmp(m->type, "bind") == 0) {
            if (m->source == NULL || m->source[0] != '/')
                return swm_err_set(err, SWM_EINVAL_SPEC,
                                   "invalid mount source \"%s\": not absolute",
                                   m->source != NULL ? m->source : "");
            const char *opts[] = {"rbind", "rprivate", m->readonly ? "ro" : "rw", NULL};
            arr_add(b, mounts, mount_obj(b, m->target, "bind", m->source, opts));
        } else if (m->type != NULL && strcmp(m->type, "tmpfs") == 0) {
            char size[48], mode[32];
            snprintf(mode, sizeof(mode), "mode=%o", m->tmpfs_mode != 0 ? m->tmpfs_mode : 01777);
            snprintf(size, sizeof(size), "size=%lld", (long long)m->tmpfs_size_bytes);
            const char *opts[] = {"nosuid", "nodev",
                                  "noexec", m->readonly ? "ro" : "rw",
                                  mode,     m->tmpfs_size_bytes > 0 ? size : NULL,
                                  NULL};
            arr_add(b, mounts, mount_obj(b, m->target, "tmpfs", "tmpfs", opts));
        } else {
            return swm_err_set(err, SWM_EINVAL_SPEC, "unsupported mount type \"%s\" for %s",
                               m->type != NULL ? m->type : "", m->target);
        }
    }
    return 0;
}

static json_t *process_obj(struct jb *b, const struct exec_container_spec *spec,
                           const struct exec__user *user)
{
    json_t *p = json_object();
    obj_set(b, p, "terminal", json_false());

    json_t *u = obj_set(b, p, "user", json_object());
    obj_set(b, u, "uid", json_integer(user->uid));
    obj_set(b, u, "gid", json_integer(user->gid));
    if (user->n_additional_gids > 0) {
        json_t *g = obj_set(b, u, "additionalGids", json_array());
        for (size_t i = 0; i < user->n_additional_gids; i++)
            arr_add(b, g, json_integer(user->additional_gids[i]));
    }

    obj_set(b, p, "args", str_array(b, (const char *const *)spec->argv));

    /* As Docker: PATH and HOSTNAME first, then the spec's env, replacing by
     * key. The spec's env is already deduplicated by exec_spec_build. */
    json_t *env = obj_set(b, p, "env", json_array());
    if (!env_has_key(spec->env, "PATH="))
        arr_add(b, env, json_string(DEFAULT_PATH));
    if (!env_has_key(spec->env, "HOSTNAME=")) {
        char *h = swm_asprintf("HOSTNAME=%s", spec->hostname != NULL ? spec->hostname : "");
        b->oom |= h == NULL;
        arr_add(b, env, h != NULL ? json_string(h) : NULL);
        swm_free(h);
    }
    for (size_t i = 0; spec->env != NULL && spec->env[i] != NULL; i++)
        arr_add(b, env, json_string(spec->env[i]));

    obj_set(b, p, "cwd", json_string(spec->cwd != NULL && spec->cwd[0] != '\0' ? spec->cwd : "/"));

    json_t *caps = obj_set(b, p, "capabilities", json_object());
    obj_set(b, caps, "bounding", str_array(b, default_caps));
    obj_set(b, caps, "effective", str_array(b, default_caps));
    obj_set(b, caps, "permitted", str_array(b, default_caps));
    obj_set(b, p, "noNewPrivileges", json_false());
    return p;
}

static json_t *linux_obj(struct jb *b, const struct exec_container_spec *spec)
{
    json_t *l = json_object();
    json_t *res = obj_set(b, l, "resources", json_object());
    json_t *devices = obj_set(b, res, "devices", json_array());
    json_t *deny = arr_add(b, devices, json_object());
    obj_set(b, deny, "allow", json_false());
    obj_set(b, deny, "access", json_string("rwm"));
    if (spec->memory_limit_bytes > 0) {
        json_t *mem = obj_set(b, res, "memory", json_object());
        obj_set(b, mem, "limit", json_integer(spec->memory_limit_bytes));
    }
    if (spec->nano_cpus > 0) {
        const int64_t period = 100000;
        int64_t quota = spec->nano_cpus * period / 1000000000;
        if (quota < 1000)
            quota = 1000; /* the kernel's minimum quota is 1 ms */
        json_t *cpu = obj_set(b, res, "cpu", json_object());
        obj_set(b, cpu, "quota", json_integer(quota));
        obj_set(b, cpu, "period", json_integer(period));
    }
    if (spec->pids_limit > 0) {
        json_t *pids = obj_set(b, res, "pids", json_object());
        obj_set(b, pids, "limit", json_integer(spec->pids_limit));
    }

    char *cg = swm_asprintf("/swarmc/%s", spec->id);
    b->oom |= cg == NULL;
    obj_set(b, l, "cgroupsPath", cg != NULL ? json_string(cg) : NULL);
    swm_free(cg);

    /* A fresh network namespace without a path: runc brings up its
     * loopback only. The networking layer adds veths later (DESIGN.md §8). */
    static const char *const ns_types[] = {"pid", "network", "ipc", "uts", "mount", NULL};
    json_t *ns = obj_set(b, l, "namespaces", json_array());
    for (size_t i = 0; ns_types[i] != NULL; i++) {
        json_t *n = arr_add(b, ns, json_object());
        obj_set(b, n, "type", json_string(ns_types[i]));
    }
    obj_set(b, l, "maskedPaths", str_array(b, masked_paths));
    obj_set(b, l, "readonlyPaths", str_array(b, readonly_paths));
    return l;
}

int exec__config_json(const struct exec_container_spec *spec, const char *bundle,
                      const struct exec__user *user, char **out, struct swm_err *err)
{
    if (spec->argv == NULL || spec->argv[0] == NULL)
        return swm_err_set(err, SWM_EINVAL_SPEC, "no command specified");
    if (!exec__id_valid(spec->id))
        return swm_err_set(err, SWM_EINVAL_SPEC, "invalid container id \"%s\"",
                           spec->id != NULL ? spec->id : "");

    struct jb b = {false, false};
    int rc = 0;
    json_t *root = json_object();
    obj_set(&b, root, "ociVersion", json_string("1.0.2-dev"));
    obj_set(&b, root, "process", process_obj(&b, spec, user));

    json_t *r = obj_set(&b, root, "root", json_object());
    obj_set(&b, r, "path", json_string(EXEC__ROOTFS));
    obj_set(&b, r, "readonly", json_boolean(spec->read_only_rootfs));
    obj_set(&b, root, "hostname", json_string(spec->hostname != NULL ? spec->hostname : ""));

    json_t *mounts = obj_set(&b, root, "mounts", json_array());
    add_default_mounts(&b, mounts);
    static const char *const etc_files[] = {"hostname", "hosts", "resolv.conf", NULL};
    for (size_t i = 0; etc_files[i] != NULL; i++) {
        char target[64], source[PATH_MAX];
        snprintf(target, sizeof(target), "/etc/%s", etc_files[i]);
        if (mounts_target(spec, target))
            continue; /* the user's mount wins, as in Docker */
        snprintf(source, sizeof(source), "%s/%s", bundle, etc_files[i]);
        const char *opts[] = {"rbind", "rprivate", spec->read_only_rootfs ? "ro" : "rw", NULL};
        arr_add(&b, mounts, mount_obj(&b, target, "bind", source, opts));
    }
    rc = add_spec_mounts(&b, mounts, spec, err);
    if (rc < 0)
        goto out;

    json_t *ann = obj_set(&b, root, "annotations", json_object());
    for (size_t i = 0; spec->labels != NULL && spec->labels[i] != NULL; i++) {
        const char *kv = spec->labels[i];
        const char *eq = strchr(kv, '=');
        char *key = swm_strndup(kv, eq != NULL ? (size_t)(eq - kv) : strlen(kv));
        if (key == NULL) {
            b.failed = b.oom = true;
            break;
        }
        obj_set(&b, ann, key, json_string(eq != NULL ? eq + 1 : ""));
        swm_free(key);
    }
    obj_set(&b, root, "linux", linux_obj(&b, spec));

    if (b.oom) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    if (b.failed) {
        /* jansson also fails on invalid UTF-8, not only on ENOMEM. */
        rc = swm_err_set(err, SWM_EINVAL_SPEC,
                         "cannot encode the container config (out of memory or invalid UTF-8)");
        goto out;
    }
    char *text = json_dumps(root, JSON_INDENT(2));
    if (text == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    *out = swm_strdup(text);
    json_free_t jfree;
    json_get_alloc_funcs(NULL, &jfree); /* whatever main gave jansson */
    jfree(text);
    if (*out == NULL)
        rc = swm_err_code(err, -ENOMEM);
out:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------- overlay -- */

int exec__overlay_data(char *const *lower_dirs, const char *bundle, char **out)
{
    struct swm_buf b = {0};
    size_t n = 0;
    while (lower_dirs != NULL && lower_dirs[n] != NULL)
        n++;
    int rc = strpbrk(bundle, ",:") != NULL || bundle[0] != '/' ? -EINVAL : 0;
    if (rc == 0)
        rc = swm_buf_printf(&b, "lowerdir=");
    if (rc == 0 && n == 0)
        rc = swm_buf_printf(&b, "%s/empty", bundle);
    /* overlayfs stacks the first lowerdir on top; the API gives the base
     * layer first. */
    for (size_t i = n; rc == 0 && i-- > 0;) {
        const char *d = lower_dirs[i];
        if (d[0] != '/' || strpbrk(d, ",:") != NULL)
            rc = -EINVAL;
        else
            rc = swm_buf_printf(&b, "%s%s", i + 1 < n ? ":" : "", d);
    }
    if (rc == 0)
        rc = swm_buf_printf(&b, ",upperdir=%s/upper,workdir=%s/work", bundle, bundle);
    if (rc == 0 && b.len >= 4096)
        rc = -E2BIG; /* mount(2) copies at most one page of data */
    if (rc < 0) {
        swm_buf_free(&b);
        return rc;
    }
    *out = (char *)b.data;
    return 0;
}

/* ------------------------------------------------------- etc files -- */

static int write_text(const char *bundle, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", bundle, name);
    return swm_write_file_atomic(path, text, strlen(text), 0644);
}

/* The host's resolv.conf without loopback nameservers (unreachable from the
 * container's namespace), with Docker's public fallback if none remain. */
static int resolv_conf(struct swm_buf *out)
{
    struct swm_buf host = {0};
    int rc = swm_read_file("/etc/resolv.conf", 1 << 20, &host);
    if (rc < 0 && rc != -ENOENT)
        goto out;
    rc = 0;
    bool have_ns = false;
    char *text = host.len > 0 ? (char *)host.data : NULL;
    for (char *save = NULL, *line = text != NULL ? strtok_r(text, "\n", &save) : NULL;
         line != NULL && rc == 0; line = strtok_r(NULL, "\n", &save)) {
        char addr[128];
        if (sscanf(line, " nameserver %127s", addr) == 1) {
            if (strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0)
                continue;
            have_ns = true;
        }
        rc = swm_buf_printf(out, "%s\n", line);
    }
    if (rc == 0 && !have_ns)
        rc = swm_buf_printf(out, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
out:
    swm_buf_free(&host);
    return rc;
}

static int write_etc_files(const char *bundle, const struct exec_container_spec *spec)
{
    static const char hosts[] = "127.0.0.1\tlocalhost\n"
                                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                                "fe00::0\tip6-localnet\n"
                                "ff00::0\tip6-mcastprefix\n"
                                "ff02::1\tip6-allnodes\n"
                                "ff02::2\tip6-allrouters\n";
    char *hostname = swm_asprintf("%s\n", spec->hostname != NULL ? spec->hostname : "");
    if (hostname == NULL)
        return -ENOMEM;
    int rc = write_text(bundle, "hostname", hostname);
    swm_free(hostname);
    if (rc == 0)
        rc = write_text(bundle, "hosts", hosts);
    if (rc == 0) {
        struct swm_buf resolv = {0};
        rc = resolv_conf(&resolv);
        if (rc == 0)
            rc = write_text(bundle, "resolv.conf", resolv.len > 0 ? (char *)resolv.data : "");
        swm_buf_free(&resolv);
    }
    return rc;
}

/* ----------------------------------------------------------- bundle -- */

static int mkdir_in(const char *bundle, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", bundle, name);
    return mkdir(path, 0755) < 0 ? -errno : 0;
}

int exec__bundle_prepare(const char *bundle, const struct exec_container_spec *spec,
                         struct swm_err *err)
{
    char rootfs[PATH_MAX];
    char *data = NULL, *config = NULL;
    struct exec__user user;
    int rc;

    if (snprintf(rootfs, sizeof(rootfs), "%s/%s", bundle, EXEC__ROOTFS) >= (int)sizeof(rootfs))
        return swm_err_set(err, -ENAMETOOLONG, "bundle path too long: %s", bundle);
    if (mkdir(bundle, 0711) < 0) {
        rc = -errno;
        return swm_err_set(err, rc, "creating bundle %s: %s", bundle, swm_strerror(rc));
    }
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct exec_mount *m = &spec->mounts[i];
        struct stat st;
        if (m->type != NULL && strcmp(m->type, "bind") == 0 && m->source != NULL &&
            stat(m->source, &st) < 0) {
            rc = swm_err_set(err, SWM_EINVAL_SPEC,
                             "invalid mount config for type \"bind\": bind source path does not "
                             "exist: %s",
                             m->source);
            goto fail;
        }
    }
    rc = mkdir_in(bundle, "upper");
    if (rc == 0)
        rc = mkdir_in(bundle, "work");
    if (rc == 0)
        rc = mkdir_in(bundle, EXEC__ROOTFS);
    if (rc == 0 && (spec->lower_dirs == NULL || spec->lower_dirs[0] == NULL))
        rc = mkdir_in(bundle, "empty");
    if (rc == 0)
        rc = write_etc_files(bundle, spec);
    if (rc < 0) {
        swm_err_set(err, rc, "writing bundle %s: %s", bundle, swm_strerror(rc));
        goto fail;
    }

    rc = exec__overlay_data(spec->lower_dirs, bundle, &data);
    if (rc < 0) {
        swm_err_set(err, rc, "overlay options for %s: %s", spec->id,
                    rc == -E2BIG ? "too many image layers" : swm_strerror(rc));
        goto fail;
    }
    if (mount("overlay", rootfs, "overlay", 0, data) < 0) {
        rc = -errno;
        swm_err_set(err, rc, "mounting the rootfs of %s: %s", spec->id, swm_strerror(rc));
        goto fail;
    }

    rc = exec__user_resolve(rootfs, spec->user, spec->groups, &user, err);
    if (rc < 0)
        goto fail;
    rc = exec__config_json(spec, bundle, &user, &config, err);
    if (rc < 0)
        goto fail;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", bundle, EXEC__CONFIG);
    rc = swm_write_file_atomic(path, config, strlen(config), 0600);
    if (rc < 0) {
        swm_err_set(err, rc, "writing %s: %s", path, swm_strerror(rc));
        goto fail;
    }
    swm_free(config);
    swm_free(data);
    return 0;

fail:
    exec__bundle_teardown(bundle);
    swm_free(config);
    swm_free(data);
    return rc;
}

int exec__bundle_teardown(const char *bundle)
{
    char rootfs[PATH_MAX];
    snprintf(rootfs, sizeof(rootfs), "%s/%s", bundle, EXEC__ROOTFS);
    /* EINVAL: not a mount point (already unmounted, or never mounted). */
    if (umount2(rootfs, UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT) {
        if (errno != EBUSY || umount2(rootfs, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
            return -errno;
    }
    return swm_remove_tree(bundle);
}
