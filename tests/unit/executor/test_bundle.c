/* agent/executor/bundle.c: config.json, user resolution in the image's
 * rootfs, overlay options and small helpers. No root needed. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/executor/internal.h"
#include "common/alloc.h"
#include "common/fs.h"

static char rootfs[64];

static void write_file(const char *dir, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    assert_int_equal(swm_mkdir_p(path, 0755), 0);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup_rootfs(void **state)
{
    snprintf(rootfs, sizeof(rootfs), "/tmp/swm-test-bundle-XXXXXX");
    if (mkdtemp(rootfs) == NULL)
        return -1;
    write_file(rootfs, "etc/passwd",
               "root:x:0:0:root:/root:/bin/sh\n"
               "# a comment\n"
               "broken line\n"
               "app:x:1000:1001:App:/home/app:/bin/sh\n"
               "nobody:x:65534:65534:nobody:/:/bin/false\n");
    write_file(rootfs, "etc/group",
               "root:x:0:\n"
               "wheel:x:10:root,app\n"
               "appgrp:x:1001:\n"
               "extra:x:2000:app\n"
               "other:x:3000:someone\n");
    return 0;
}

static int teardown_rootfs(void **state)
{
    return swm_remove_tree(rootfs);
}

/* ------------------------------------------------------------ users -- */

static void resolve_ok(const char *user, char *const *groups, uint32_t uid, uint32_t gid,
                       const uint32_t *gids, size_t n_gids)
{
    struct exec__user u;
    struct swm_err err = {0};
    int rc = exec__user_resolve(rootfs, user, groups, &u, &err);
    if (rc != 0)
        fail_msg("resolving %s: %s", user != NULL ? user : "(null)", err.msg);
    assert_int_equal(u.uid, uid);
    assert_int_equal(u.gid, gid);
    assert_int_equal(u.n_additional_gids, n_gids);
    for (size_t i = 0; i < n_gids; i++)
        assert_int_equal(u.additional_gids[i], gids[i]);
}

static void test_user_resolution(void **state)
{
    static const uint32_t root_groups[] = {10};
    static const uint32_t app_groups[] = {10, 2000};
    resolve_ok(NULL, NULL, 0, 0, root_groups, 1);
    resolve_ok("", NULL, 0, 0, root_groups, 1);
    resolve_ok("root", NULL, 0, 0, root_groups, 1);
    resolve_ok("app", NULL, 1000, 1001, app_groups, 2);
    resolve_ok("1000", NULL, 1000, 1001, app_groups, 2); /* uid found in passwd */
    resolve_ok("app:0", NULL, 1000, 0, app_groups, 2);
    resolve_ok("app:wheel", NULL, 1000, 10, app_groups, 2);
    resolve_ok("4242", NULL, 4242, 0, NULL, 0); /* unknown uid passes through */
    resolve_ok("4242:4243", NULL, 4242, 4243, NULL, 0);

    char *groups[] = {"3000", "extra", "wheel", NULL};
    static const uint32_t merged[] = {10, 2000, 3000};
    resolve_ok("app", groups, 1000, 1001, merged, 3);
}

static void test_user_errors(void **state)
{
    struct exec__user u = {.uid = 77};
    struct swm_err err = {0};
    assert_int_equal(exec__user_resolve(rootfs, "ghost", NULL, &u, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "unable to find user ghost: no matching entries in passwd file");
    assert_int_equal(u.uid, 77); /* untouched on failure */

    assert_int_equal(exec__user_resolve(rootfs, "app:nogroup", NULL, &u, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "unable to find group nogroup: no matching entries in group file");

    char *groups[] = {"nope", NULL};
    assert_int_equal(exec__user_resolve(rootfs, "app", groups, &u, &err), SWM_EINVAL_SPEC);
    assert_non_null(strstr(err.msg, "nope"));

    assert_int_equal(exec__user_resolve(rootfs, ":5", NULL, &u, &err), SWM_EINVAL_SPEC);
}

/* An image without /etc/passwd: numeric users work, names do not. */
static void test_user_without_passwd(void **state)
{
    char dir[64] = "/tmp/swm-test-nopasswd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct exec__user u;
    struct swm_err err = {0};
    assert_int_equal(exec__user_resolve(dir, "123:45", NULL, &u, &err), 0);
    assert_int_equal(u.uid, 123);
    assert_int_equal(u.gid, 45);
    assert_int_equal(exec__user_resolve(dir, NULL, NULL, &u, &err), 0);
    assert_int_equal(u.uid, 0);
    assert_int_equal(exec__user_resolve(dir, "app", NULL, &u, &err), SWM_EINVAL_SPEC);
    swm_remove_tree(dir);
}

/* An absolute symlink in the image resolves inside the image, never to the
 * host's file. */
static void test_user_symlink_stays_in_rootfs(void **state)
{
    char dir[64] = "/tmp/swm-test-symlink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "data/passwd", "evil:x:4000:4001::/:/bin/sh\n");
    char etc[128], link[128];
    snprintf(etc, sizeof(etc), "%s/etc", dir);
    snprintf(link, sizeof(link), "%s/etc/passwd", dir);
    assert_int_equal(mkdir(etc, 0755), 0);
    assert_int_equal(symlink("/data/passwd", link), 0);

    struct exec__user u;
    struct swm_err err = {0};
    assert_int_equal(exec__user_resolve(dir, "evil", NULL, &u, &err), 0);
    assert_int_equal(u.uid, 4000);
    assert_int_equal(u.gid, 4001);
    /* The host's root entry is not visible through the link. */
    assert_int_equal(exec__user_resolve(dir, "root", NULL, &u, &err), SWM_EINVAL_SPEC);
    swm_remove_tree(dir);
}

/* ------------------------------------------------------ config.json -- */

static json_t *render(const struct exec_container_spec *spec, const struct exec__user *user)
{
    char *text = NULL;
    struct swm_err err = {0};
    int rc = exec__config_json(spec, "/var/lib/swarmc/containers/c1", user, &text, &err);
    if (rc != 0)
        fail_msg("config: %s", err.msg);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    swm_free(text);
    assert_non_null(root);
    return root;
}

static const char *jstr(json_t *root, const char *path)
{
    json_t *v = json_object_get(root, path);
    return json_string_value(v);
}

static bool array_has_string(json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

static json_t *find_mount(json_t *root, const char *dest)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(root, "mounts"), i, m)
    {
        if (strcmp(jstr(m, "destination"), dest) == 0)
            return m;
    }
    return NULL;
}

static void test_config_full(void **state)
{
    char *argv[] = {"/bin/sh", "-c", "echo hi", NULL};
    char *env[] = {"FOO=bar", "PATH=/custom/bin", NULL};
    char *lower[] = {"/layers/base", "/layers/top", NULL};
    char *labels[] = {"com.example.team=blue", "empty=", NULL};
    struct exec_mount mounts[] = {
        {.type = "bind", .source = "/srv/data", .target = "/data", .readonly = true},
        {.type = "tmpfs", .target = "/scratch", .tmpfs_size_bytes = 1048576, .tmpfs_mode = 0700},
    };
    struct exec_container_spec spec = {
        .id = "c1",
        .hostname = "web-1",
        .argv = argv,
        .env = env,
        .cwd = "/app",
        .lower_dirs = lower,
        .mounts = mounts,
        .n_mounts = 2,
        .memory_limit_bytes = 64 * 1024 * 1024,
        .nano_cpus = 500000000,
        .pids_limit = 100,
        .read_only_rootfs = true,
        .labels = labels,
    };
    struct exec__user user = {
        .uid = 1000, .gid = 1001, .additional_gids = {10, 2000}, .n_additional_gids = 2};
    json_t *root = render(&spec, &user);

    assert_string_equal(jstr(root, "ociVersion"), "1.0.2-dev");
    assert_string_equal(jstr(root, "hostname"), "web-1");

    json_t *proc = json_object_get(root, "process");
    assert_true(json_is_false(json_object_get(proc, "terminal")));
    assert_true(json_is_false(json_object_get(proc, "noNewPrivileges")));
    json_t *args = json_object_get(proc, "args");
    assert_int_equal(json_array_size(args), 3);
    assert_string_equal(json_string_value(json_array_get(args, 0)), "/bin/sh");
    assert_string_equal(json_string_value(json_array_get(args, 2)), "echo hi");
    /* PATH comes from the spec (no default added), HOSTNAME is added. */
    json_t *e = json_object_get(proc, "env");
    assert_int_equal(json_array_size(e), 3);
    assert_string_equal(json_string_value(json_array_get(e, 0)), "HOSTNAME=web-1");
    assert_string_equal(json_string_value(json_array_get(e, 1)), "FOO=bar");
    assert_string_equal(json_string_value(json_array_get(e, 2)), "PATH=/custom/bin");
    assert_string_equal(jstr(proc, "cwd"), "/app");

    json_t *u = json_object_get(proc, "user");
    assert_int_equal(json_integer_value(json_object_get(u, "uid")), 1000);
    assert_int_equal(json_integer_value(json_object_get(u, "gid")), 1001);
    json_t *gids = json_object_get(u, "additionalGids");
    assert_int_equal(json_array_size(gids), 2);
    assert_int_equal(json_integer_value(json_array_get(gids, 1)), 2000);

    json_t *caps = json_object_get(proc, "capabilities");
    json_t *bounding = json_object_get(caps, "bounding");
    assert_int_equal(json_array_size(bounding), 14);
    assert_true(array_has_string(bounding, "CAP_NET_RAW"));
    assert_true(array_has_string(bounding, "CAP_AUDIT_WRITE"));
    assert_false(array_has_string(bounding, "CAP_SYS_ADMIN"));
    assert_true(json_equal(bounding, json_object_get(caps, "effective")));
    assert_true(json_equal(bounding, json_object_get(caps, "permitted")));

    json_t *r = json_object_get(root, "root");
    assert_string_equal(jstr(r, "path"), "rootfs");
    assert_true(json_is_true(json_object_get(r, "readonly")));

    /* Default mounts, then the generated /etc files, then the spec's. */
    static const char *const defaults[] = {
        "/proc", "/dev",           "/dev/pts",      "/dev/shm",   "/dev/mqueue",
        "/sys",  "/sys/fs/cgroup", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
        "/data", "/scratch"};
    json_t *ms = json_object_get(root, "mounts");
    assert_int_equal(json_array_size(ms), 12);
    for (size_t i = 0; i < 12; i++)
        assert_string_equal(jstr(json_array_get(ms, i), "destination"), defaults[i]);
    json_t *sys = find_mount(root, "/sys");
    assert_true(array_has_string(json_object_get(sys, "options"), "ro"));
    assert_true(
        array_has_string(json_object_get(find_mount(root, "/sys/fs/cgroup"), "options"), "ro"));
    assert_string_equal(jstr(find_mount(root, "/dev"), "type"), "tmpfs");
    json_t *hosts = find_mount(root, "/etc/hosts");
    assert_string_equal(jstr(hosts, "source"), "/var/lib/swarmc/containers/c1/hosts");
    assert_string_equal(jstr(hosts, "type"), "bind");
    json_t *data = find_mount(root, "/data");
    assert_string_equal(jstr(data, "source"), "/srv/data");
    assert_true(array_has_string(json_object_get(data, "options"), "rbind"));
    assert_true(array_has_string(json_object_get(data, "options"), "ro"));
    json_t *scratch = find_mount(root, "/scratch");
    assert_string_equal(jstr(scratch, "type"), "tmpfs");
    assert_true(array_has_string(json_object_get(scratch, "options"), "size=1048576"));
    assert_true(array_has_string(json_object_get(scratch, "options"), "mode=700"));
    assert_true(array_has_string(json_object_get(scratch, "options"), "rw"));

    json_t *linux_ = json_object_get(root, "linux");
    assert_string_equal(jstr(linux_, "cgroupsPath"), "/swarmc/c1");
    json_t *res = json_object_get(linux_, "resources");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")),
                     64 * 1024 * 1024);
    json_t *cpu = json_object_get(res, "cpu");
    assert_int_equal(json_integer_value(json_object_get(cpu, "period")), 100000);
    assert_int_equal(json_integer_value(json_object_get(cpu, "quota")), 50000);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "pids"), "limit")),
                     100);
    json_t *dev = json_array_get(json_object_get(res, "devices"), 0);
    assert_true(json_is_false(json_object_get(dev, "allow")));

    json_t *ns = json_object_get(linux_, "namespaces");
    assert_int_equal(json_array_size(ns), 5);
    bool have_net = false;
    size_t i;
    json_t *n;
    json_array_foreach(ns, i, n)
    {
        if (strcmp(jstr(n, "type"), "network") == 0) {
            have_net = true;
            assert_null(json_object_get(n, "path")); /* a new, empty one */
        }
    }
    assert_true(have_net);
    assert_true(array_has_string(json_object_get(linux_, "maskedPaths"), "/proc/kcore"));
    assert_true(array_has_string(json_object_get(linux_, "readonlyPaths"), "/proc/sys"));

    json_t *ann = json_object_get(root, "annotations");
    assert_string_equal(jstr(ann, "com.example.team"), "blue");
    assert_string_equal(jstr(ann, "empty"), "");
    json_decref(root);
}

static void test_config_defaults(void **state)
{
    char *argv[] = {"sleep", "1", NULL};
    struct exec_container_spec spec = {.id = "c1", .hostname = "h", .argv = argv};
    struct exec__user user = {0};
    json_t *root = render(&spec, &user);
    json_t *proc = json_object_get(root, "process");
    assert_string_equal(jstr(proc, "cwd"), "/");
    json_t *e = json_object_get(proc, "env");
    assert_int_equal(json_array_size(e), 2);
    assert_string_equal(json_string_value(json_array_get(e, 0)),
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    assert_null(json_object_get(json_object_get(proc, "user"), "additionalGids"));
    assert_true(json_is_false(json_object_get(json_object_get(root, "root"), "readonly")));
    json_t *res = json_object_get(json_object_get(root, "linux"), "resources");
    assert_null(json_object_get(res, "memory"));
    assert_null(json_object_get(res, "cpu"));
    assert_null(json_object_get(res, "pids"));
    /* The /etc files are writable when the rootfs is. */
    assert_true(array_has_string(json_object_get(find_mount(root, "/etc/hosts"), "options"), "rw"));
    json_decref(root);
}

/* A user's mount on /etc/resolv.conf replaces the generated one. */
static void test_config_user_etc_mount_wins(void **state)
{
    char *argv[] = {"sh", NULL};
    struct exec_mount m = {.type = "bind", .source = "/my/resolv", .target = "/etc/resolv.conf"};
    struct exec_container_spec spec = {
        .id = "c1", .hostname = "h", .argv = argv, .mounts = &m, .n_mounts = 1};
    struct exec__user user = {0};
    json_t *root = render(&spec, &user);
    size_t n = 0, i;
    json_t *mt;
    json_array_foreach(json_object_get(root, "mounts"), i, mt)
    {
        if (strcmp(jstr(mt, "destination"), "/etc/resolv.conf") == 0) {
            n++;
            assert_string_equal(jstr(mt, "source"), "/my/resolv");
        }
    }
    assert_int_equal(n, 1);
    json_decref(root);
}

static void test_config_errors(void **state)
{
    struct exec__user user = {0};
    struct swm_err err = {0};
    char *out = NULL;
    char *empty[] = {NULL};
    struct exec_container_spec spec = {.id = "c1", .argv = empty};
    assert_int_equal(exec__config_json(&spec, "/b", &user, &out, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "no command specified");

    char *argv[] = {"sh", NULL};
    spec.argv = argv;
    spec.id = "../etc";
    assert_int_equal(exec__config_json(&spec, "/b", &user, &out, &err), SWM_EINVAL_SPEC);

    spec.id = "c1";
    struct exec_mount rel = {.type = "bind", .source = "relative", .target = "/x"};
    spec.mounts = &rel;
    spec.n_mounts = 1;
    assert_int_equal(exec__config_json(&spec, "/b", &user, &out, &err), SWM_EINVAL_SPEC);
    struct exec_mount vol = {.type = "volume", .source = "v", .target = "/x"};
    spec.mounts = &vol;
    assert_int_equal(exec__config_json(&spec, "/b", &user, &out, &err), SWM_EINVAL_SPEC);
    assert_null(out);
}

/* A tiny CPU share still gets the kernel's minimum quota. */
static void test_config_cpu_quota_floor(void **state)
{
    char *argv[] = {"sh", NULL};
    struct exec_container_spec spec = {.id = "c1", .argv = argv, .nano_cpus = 1000};
    struct exec__user user = {0};
    json_t *root = render(&spec, &user);
    json_t *cpu =
        json_object_get(json_object_get(json_object_get(root, "linux"), "resources"), "cpu");
    assert_int_equal(json_integer_value(json_object_get(cpu, "quota")), 1000);
    json_decref(root);
}

static void test_config_oom(void **state)
{
    char *argv[] = {"sh", "-c", "true", NULL};
    char *env[] = {"A=1", NULL};
    char *labels[] = {"k=v", NULL};
    struct exec_container_spec spec = {
        .id = "c1", .hostname = "h", .argv = argv, .env = env, .labels = labels};
    struct exec__user user = {0};
    for (long n = 0;; n++) {
        char *out = NULL;
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        int rc = exec__config_json(&spec, "/b", &user, &out, &err);
        swm_alloc_fail_reset();
        if (rc == 0) {
            swm_free(out);
            break;
        }
        assert_true(rc == -ENOMEM || rc == SWM_EINVAL_SPEC);
        assert_null(out);
        assert_true(n < 1000);
    }
}

/* ---------------------------------------------------------- overlay -- */

static void test_overlay_order(void **state)
{
    char *lower[] = {"/layers/base", "/layers/mid", "/layers/top", NULL};
    char *data = NULL;
    assert_int_equal(exec__overlay_data(lower, "/c/b1", &data), 0);
    assert_string_equal(data, "lowerdir=/layers/top:/layers/mid:/layers/base,"
                              "upperdir=/c/b1/upper,workdir=/c/b1/work");
    swm_free(data);

    char *one[] = {"/layers/only", NULL};
    assert_int_equal(exec__overlay_data(one, "/c/b1", &data), 0);
    assert_string_equal(data, "lowerdir=/layers/only,upperdir=/c/b1/upper,workdir=/c/b1/work");
    swm_free(data);

    assert_int_equal(exec__overlay_data(NULL, "/c/b1", &data), 0);
    assert_string_equal(data, "lowerdir=/c/b1/empty,upperdir=/c/b1/upper,workdir=/c/b1/work");
    swm_free(data);
}

static void test_overlay_errors(void **state)
{
    char *data = NULL;
    char *comma[] = {"/layers/a,b", NULL};
    assert_int_equal(exec__overlay_data(comma, "/c/b1", &data), -EINVAL);
    char *colon[] = {"/layers/a:b", NULL};
    assert_int_equal(exec__overlay_data(colon, "/c/b1", &data), -EINVAL);
    char *rel[] = {"layers/a", NULL};
    assert_int_equal(exec__overlay_data(rel, "/c/b1", &data), -EINVAL);

    static char paths[100][64];
    char *many[101];
    for (int i = 0; i < 100; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/var/lib/swarmc/images/layers/%040d", i);
        many[i] = paths[i];
    }
    many[100] = NULL;
    assert_int_equal(exec__overlay_data(many, "/c/b1", &data), -E2BIG);
    assert_null(data);
}

/* ---------------------------------------------------------- helpers -- */

static void test_last_error_line(void **state)
{
    char out[128];
    const char *plain = "warning: x\nrunc run failed: exec: \"nope\": not found\n\n";
    exec__last_error_line(plain, strlen(plain), out, sizeof(out));
    assert_string_equal(out, "runc run failed: exec: \"nope\": not found");

    const char *logrus = "time=\"2024-01-01T00:00:00Z\" level=error msg=\"container does not "
                         "exist\"\n";
    exec__last_error_line(logrus, strlen(logrus), out, sizeof(out));
    assert_string_equal(out, "container does not exist");

    const char *json = "{\"level\":\"error\",\"msg\":\"exec: \\\"x\\\": bad\",\"time\":\"t\"}\n";
    exec__last_error_line(json, strlen(json), out, sizeof(out));
    assert_string_equal(out, "exec: \"x\": bad");

    exec__last_error_line("  \n\n", 4, out, sizeof(out));
    assert_string_equal(out, "");
    exec__last_error_line(NULL, 0, out, sizeof(out));
    assert_string_equal(out, "");

    char small[8];
    exec__last_error_line("0123456789", 10, small, sizeof(small));
    assert_string_equal(small, "0123456");
}

static void test_format_time(void **state)
{
    char buf[EXEC__TIME_LEN];
    assert_int_equal(exec__format_time(0, buf), 30);
    assert_string_equal(buf, "1970-01-01T00:00:00.000000000Z");
    exec__format_time(INT64_C(1700000000123456789), buf);
    assert_string_equal(buf, "2023-11-14T22:13:20.123456789Z");
}

static void test_id_valid(void **state)
{
    assert_true(exec__id_valid("abc123"));
    assert_true(exec__id_valid("t1-x_y.z"));
    assert_false(exec__id_valid(""));
    assert_false(exec__id_valid(NULL));
    assert_false(exec__id_valid(".hidden"));
    assert_false(exec__id_valid("a/b"));
    assert_false(exec__id_valid("a b"));
    char longid[200];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[199] = '\0';
    assert_false(exec__id_valid(longid));
}

static void test_exit_and_pid_files(void **state)
{
    char dir[64] = "/tmp/swm-test-files-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int code;
    int64_t fin;
    assert_int_equal(exec__read_exit_file(dir, &code, &fin), -ENOENT);
    write_file(dir, "exit", "137 1700000000000000001\n");
    assert_int_equal(exec__read_exit_file(dir, &code, &fin), 0);
    assert_int_equal(code, 137);
    assert_int_equal(fin, INT64_C(1700000000000000001));
    write_file(dir, "exit", "garbage\n");
    assert_int_equal(exec__read_exit_file(dir, &code, &fin), SWM_ECORRUPT);

    write_file(dir, "init.pid", "4242");
    assert_int_equal(exec__read_pid_file(dir, "init.pid"), 4242);
    write_file(dir, "init.pid", "-1\n");
    assert_int_equal(exec__read_pid_file(dir, "init.pid"), SWM_ECORRUPT);
    assert_int_equal(exec__read_pid_file(dir, "missing.pid"), -ENOENT);
    swm_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_resolution),
        cmocka_unit_test(test_user_errors),
        cmocka_unit_test(test_user_without_passwd),
        cmocka_unit_test(test_user_symlink_stays_in_rootfs),
        cmocka_unit_test(test_config_full),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_user_etc_mount_wins),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_cpu_quota_floor),
        cmocka_unit_test(test_config_oom),
        cmocka_unit_test(test_overlay_order),
        cmocka_unit_test(test_overlay_errors),
        cmocka_unit_test(test_last_error_line),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_exit_and_pid_files),
    };
    return cmocka_run_group_tests(tests, setup_rootfs, teardown_rootfs);
}
