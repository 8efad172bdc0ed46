/* agent/executor/spec.c: merging a task with its image config, Docker's
 * rules. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/executor/executor.h"
#include "agent/image/image.h"
#include "common/alloc.h"
#include "proto/objects.pb-c.h"

/* A task with every piece reachable, defaults as a fresh task has them. */
struct fixture {
    Swarmc__Task task;
    Swarmc__TaskSpec spec;
    Swarmc__ContainerSpec c;
    Swarmc__ResourceRequirements res;
    Swarmc__Resources limits;
    Swarmc__Annotations service;
    Swarmc__HealthConfig health;
    Swarmc__Mount m[3];
    Swarmc__Mount *mp[3];
    Swarmc__KeyValue kv[2];
    Swarmc__KeyValue *kvp[2];
    struct image_config img;
};

static char *img_entrypoint[] = {"/entry.sh", NULL};
static char *img_cmd[] = {"serve", "--port", "80", NULL};
static char *img_env[] = {"PATH=/usr/bin:/bin", "A=1", "B=2", NULL};
static char *img_layers[] = {"/layers/1", "/layers/2", NULL};
static char *img_health[] = {"CMD-SHELL", "curl -f localhost", NULL};

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->task = (Swarmc__Task)SWARMC__TASK__INIT;
    f->spec = (Swarmc__TaskSpec)SWARMC__TASK_SPEC__INIT;
    f->c = (Swarmc__ContainerSpec)SWARMC__CONTAINER_SPEC__INIT;
    f->res = (Swarmc__ResourceRequirements)SWARMC__RESOURCE_REQUIREMENTS__INIT;
    f->limits = (Swarmc__Resources)SWARMC__RESOURCES__INIT;
    f->service = (Swarmc__Annotations)SWARMC__ANNOTATIONS__INIT;
    f->health = (Swarmc__HealthConfig)SWARMC__HEALTH_CONFIG__INIT;
    for (int i = 0; i < 3; i++) {
        f->m[i] = (Swarmc__Mount)SWARMC__MOUNT__INIT;
        f->mp[i] = &f->m[i];
    }
    for (int i = 0; i < 2; i++) {
        f->kv[i] = (Swarmc__KeyValue)SWARMC__KEY_VALUE__INIT;
        f->kvp[i] = &f->kv[i];
    }
    f->task.id = "abcdefghijklmnopqrstuvwxy";
    f->task.spec = &f->spec;
    f->spec.container = &f->c;
    f->c.image = "busybox";
    f->img.entrypoint = img_entrypoint;
    f->img.cmd = img_cmd;
    f->img.env = img_env;
    f->img.layer_dirs = img_layers;
    f->img.n_layers = 2;
}

static void assert_strv(char *const *got, const char *const *want)
{
    size_t i = 0;
    for (; want[i] != NULL; i++) {
        assert_non_null(got[i]);
        assert_string_equal(got[i], want[i]);
    }
    assert_null(got[i]);
}

static void build_ok(struct fixture *f, const struct image_config *img, struct exec_spec_owned *o)
{
    struct swm_err err = {0};
    int rc = exec_spec_build(&f->task, img, o, &err);
    if (rc != 0)
        fail_msg("build: %s", err.msg);
}

static void test_argv_image_defaults(void **state)
{
    struct fixture f;
    fixture_init(&f);
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_strv(o.spec.argv, (const char *[]){"/entry.sh", "serve", "--port", "80", NULL});
    exec_spec_owned_free(&o);
}

static void test_argv_task_args_replace_cmd(void **state)
{
    struct fixture f;
    fixture_init(&f);
    char *args[] = {"check", "-v"};
    f.c.args = args;
    f.c.n_args = 2;
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_strv(o.spec.argv, (const char *[]){"/entry.sh", "check", "-v", NULL});
    exec_spec_owned_free(&o);
}

static void test_argv_task_command_drops_image_cmd(void **state)
{
    struct fixture f;
    fixture_init(&f);
    char *command[] = {"sleep"};
    f.c.command = command;
    f.c.n_command = 1;
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_strv(o.spec.argv, (const char *[]){"sleep", NULL});
    exec_spec_owned_free(&o);

    char *args[] = {"1000"};
    f.c.args = args;
    f.c.n_args = 1;
    build_ok(&f, &f.img, &o);
    assert_strv(o.spec.argv, (const char *[]){"sleep", "1000", NULL});
    exec_spec_owned_free(&o);
}

static void test_argv_empty(void **state)
{
    struct fixture f;
    fixture_init(&f);
    struct exec_spec_owned o = {.stop_signal = 42};
    struct swm_err err = {0};
    assert_int_equal(exec_spec_build(&f.task, NULL, &o, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "no command specified");
    assert_int_equal(o.stop_signal, 42); /* untouched */

    f.img.entrypoint = NULL;
    f.img.cmd = NULL;
    assert_int_equal(exec_spec_build(&f.task, &f.img, &o, &err), SWM_EINVAL_SPEC);

    /* args alone, with no entrypoint, are the command. */
    char *args[] = {"echo", "x"};
    f.c.args = args;
    f.c.n_args = 2;
    build_ok(&f, &f.img, &o);
    assert_strv(o.spec.argv, (const char *[]){"echo", "x", NULL});
    exec_spec_owned_free(&o);
}

static void test_env_merge(void **state)
{
    struct fixture f;
    fixture_init(&f);
    char *env[] = {"B=3", "C=4", "A=", "D"};
    f.c.env = env;
    f.c.n_env = 4;
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_strv(o.spec.env, (const char *[]){"PATH=/usr/bin:/bin", "A=", "B=3", "C=4", "D", NULL});
    exec_spec_owned_free(&o);

    /* No image: only the task's. */
    char *command[] = {"sh"};
    f.c.command = command;
    f.c.n_command = 1;
    build_ok(&f, NULL, &o);
    assert_strv(o.spec.env, (const char *[]){"B=3", "C=4", "A=", "D", NULL});
    assert_null(o.spec.lower_dirs[0]);
    exec_spec_owned_free(&o);
}

static void test_defaults_and_overrides(void **state)
{
    struct fixture f;
    fixture_init(&f);
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_string_equal(o.spec.id, "abcdefghijklmnopqrstuvwxy");
    assert_string_equal(o.spec.hostname, "abcdefghijkl");
    assert_string_equal(o.spec.cwd, "/");
    assert_null(o.spec.user);
    assert_false(o.spec.read_only_rootfs);
    assert_int_equal(o.spec.memory_limit_bytes, 0);
    assert_int_equal(o.stop_signal, SIGTERM);
    assert_int_equal(o.stop_grace_ns, INT64_C(10000000000));
    assert_null(o.health_test);
    assert_strv(o.spec.lower_dirs, (const char *[]){"/layers/1", "/layers/2", NULL});
    exec_spec_owned_free(&o);

    f.img.workdir = "/srv";
    f.img.user = "www";
    f.img.stop_signal = "SIGQUIT";
    build_ok(&f, &f.img, &o);
    assert_string_equal(o.spec.cwd, "/srv");
    assert_string_equal(o.spec.user, "www");
    assert_int_equal(o.stop_signal, SIGQUIT);
    exec_spec_owned_free(&o);

    f.c.dir = "/work";
    f.c.user = "1000:1000";
    f.c.hostname = "web";
    f.c.stop_signal = "USR1";
    f.c.has_stop_grace_period = 1;
    f.c.stop_grace_period = 2000000000;
    f.c.has_read_only = 1;
    f.c.read_only = 1;
    char *groups[] = {"wheel"};
    f.c.groups = groups;
    f.c.n_groups = 1;
    build_ok(&f, &f.img, &o);
    assert_string_equal(o.spec.cwd, "/work");
    assert_string_equal(o.spec.user, "1000:1000");
    assert_string_equal(o.spec.hostname, "web");
    assert_int_equal(o.stop_signal, SIGUSR1);
    assert_int_equal(o.stop_grace_ns, 2000000000);
    assert_true(o.spec.read_only_rootfs);
    assert_strv(o.spec.groups, (const char *[]){"wheel", NULL});
    exec_spec_owned_free(&o);

    f.c.stop_signal = "SIGNOPE";
    struct swm_err err = {0};
    assert_int_equal(exec_spec_build(&f.task, &f.img, &o, &err), SWM_EINVAL_SPEC);
    assert_non_null(strstr(err.msg, "SIGNOPE"));
}

static void test_resources(void **state)
{
    struct fixture f;
    fixture_init(&f);
    f.spec.resources = &f.res;
    f.res.limits = &f.limits;
    f.limits.has_memory_bytes = 1;
    f.limits.memory_bytes = 128 << 20;
    f.limits.has_nano_cpus = 1;
    f.limits.nano_cpus = 1500000000;
    f.limits.has_pids = 1;
    f.limits.pids = 50;
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_int_equal(o.spec.memory_limit_bytes, 128 << 20);
    assert_int_equal(o.spec.nano_cpus, 1500000000);
    assert_int_equal(o.spec.pids_limit, 50);
    exec_spec_owned_free(&o);
}

static void test_mounts(void **state)
{
    struct fixture f;
    fixture_init(&f);
    f.m[0].type = SWARMC__MOUNT__TYPE__MOUNT_TYPE_BIND;
    f.m[0].source = "/srv/data";
    f.m[0].target = "/data";
    f.m[0].has_readonly = 1;
    f.m[0].readonly = 1;
    f.m[1].has_type = 1;
    f.m[1].type = SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS;
    f.m[1].target = "/tmp";
    f.m[1].has_tmpfs_size_bytes = 1;
    f.m[1].tmpfs_size_bytes = 4096;
    f.m[1].has_tmpfs_mode = 1;
    f.m[1].tmpfs_mode = 0700;
    f.c.mounts = f.mp;
    f.c.n_mounts = 2;
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_int_equal(o.spec.n_mounts, 2);
    assert_string_equal(o.spec.mounts[0].type, "bind");
    assert_string_equal(o.spec.mounts[0].source, "/srv/data");
    assert_string_equal(o.spec.mounts[0].target, "/data");
    assert_true(o.spec.mounts[0].readonly);
    assert_string_equal(o.spec.mounts[1].type, "tmpfs");
    assert_null(o.spec.mounts[1].source);
    assert_int_equal(o.spec.mounts[1].tmpfs_size_bytes, 4096);
    assert_int_equal(o.spec.mounts[1].tmpfs_mode, 0700);
    assert_false(o.spec.mounts[1].readonly);

    /* A copy is independent of the original. */
    struct exec_spec_owned copy;
    assert_int_equal(exec_spec_copy(&o.spec, &copy), 0);
    exec_spec_owned_free(&o);
    assert_string_equal(copy.spec.mounts[0].source, "/srv/data");
    assert_string_equal(copy.spec.argv[0], "/entry.sh");
    assert_string_equal(copy.spec.hostname, "abcdefghijkl");
    exec_spec_owned_free(&copy);

    struct swm_err err = {0};
    f.m[2].has_type = 1;
    f.m[2].type = SWARMC__MOUNT__TYPE__MOUNT_TYPE_VOLUME;
    f.m[2].source = "dbdata";
    f.m[2].target = "/var/lib/db";
    f.c.n_mounts = 3;
    assert_int_equal(exec_spec_build(&f.task, &f.img, &o, &err), SWM_ENOTSUP);
    assert_string_equal(err.msg, "volume mounts are not supported yet (mount on /var/lib/db)");

    f.c.n_mounts = 1;
    f.m[0].source = "relative/dir";
    assert_int_equal(exec_spec_build(&f.task, &f.img, &o, &err), SWM_EINVAL_SPEC);
    f.m[0].source = "/ok";
    f.m[0].target = "relative";
    assert_int_equal(exec_spec_build(&f.task, &f.img, &o, &err), SWM_EINVAL_SPEC);
}

static void test_labels(void **state)
{
    struct fixture f;
    fixture_init(&f);
    f.kv[0].key = "team";
    f.kv[0].value = "blue";
    f.kv[1].key = "novalue";
    f.c.labels = f.kvp;
    f.c.n_labels = 2;
    f.task.service_id = "svc1";
    f.task.node_id = "node1";
    f.task.has_slot = 1;
    f.task.slot = 3;
    f.service.name = "web";
    f.task.service_annotations = &f.service;
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_strv(o.spec.labels,
                (const char *[]){
                    "team=blue", "novalue=", "com.docker.swarm.task.id=abcdefghijklmnopqrstuvwxy",
                    "com.docker.swarm.service.id=svc1", "com.docker.swarm.service.name=web",
                    "com.docker.swarm.node.id=node1",
                    "com.docker.swarm.task.name=web.3.abcdefghijklmnopqrstuvwxy", NULL});
    exec_spec_owned_free(&o);
}

static void test_health(void **state)
{
    struct fixture f;
    fixture_init(&f);
    f.img.healthcheck_test = img_health;
    f.img.health_interval_ns = 5000000000;
    f.img.health_retries = 7;
    struct exec_spec_owned o;
    build_ok(&f, &f.img, &o);
    assert_strv(o.health_test, (const char *[]){"CMD-SHELL", "curl -f localhost", NULL});
    assert_int_equal(o.health_interval_ns, 5000000000);
    assert_int_equal(o.health_timeout_ns, 30000000000);
    assert_int_equal(o.health_retries, 7);
    assert_int_equal(o.health_start_period_ns, 0);
    exec_spec_owned_free(&o);

    /* The task's fields win one by one; the image's test stays. */
    f.c.healthcheck = &f.health;
    f.health.has_timeout = 1;
    f.health.timeout = 1000000000;
    f.health.has_start_period = 1;
    f.health.start_period = 3000000000;
    build_ok(&f, &f.img, &o);
    assert_string_equal(o.health_test[0], "CMD-SHELL");
    assert_int_equal(o.health_interval_ns, 5000000000);
    assert_int_equal(o.health_timeout_ns, 1000000000);
    assert_int_equal(o.health_start_period_ns, 3000000000);
    exec_spec_owned_free(&o);

    char *none[] = {"NONE"};
    f.health.test = none;
    f.health.n_test = 1;
    build_ok(&f, &f.img, &o);
    assert_null(o.health_test);
    exec_spec_owned_free(&o);

    char *cmd[] = {"CMD", "/bin/check", "--fast"};
    f.health.test = cmd;
    f.health.n_test = 3;
    build_ok(&f, &f.img, &o);
    assert_strv(o.health_test, (const char *[]){"CMD", "/bin/check", "--fast", NULL});
    exec_spec_owned_free(&o);
}

static void test_invalid_task(void **state)
{
    struct fixture f;
    fixture_init(&f);
    struct exec_spec_owned o;
    struct swm_err err = {0};
    f.spec.container = NULL;
    assert_int_equal(exec_spec_build(&f.task, &f.img, &o, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "task has no container spec");
    f.spec.container = &f.c;
    f.task.id = "../../etc";
    assert_int_equal(exec_spec_build(&f.task, &f.img, &o, &err), SWM_EINVAL_SPEC);
    exec_spec_owned_free(NULL);
}

static void test_signal_parse(void **state)
{
    assert_int_equal(exec_signal_parse("SIGTERM"), SIGTERM);
    assert_int_equal(exec_signal_parse("term"), SIGTERM);
    assert_int_equal(exec_signal_parse("SIGKILL"), SIGKILL);
    assert_int_equal(exec_signal_parse("9"), 9);
    assert_int_equal(exec_signal_parse("sigusr2"), SIGUSR2);
    assert_int_equal(exec_signal_parse("0"), -EINVAL);
    assert_int_equal(exec_signal_parse("999"), -EINVAL);
    assert_int_equal(exec_signal_parse("9x"), -EINVAL);
    assert_int_equal(exec_signal_parse(""), -EINVAL);
    assert_int_equal(exec_signal_parse(NULL), -EINVAL);
    assert_int_equal(exec_signal_parse("SIGBOGUS"), -EINVAL);
}

/* Every allocation failure is reported, leaves *out alone and leaks
 * nothing (ASan checks the last part). */
static void test_build_oom(void **state)
{
    struct fixture f;
    fixture_init(&f);
    char *env[] = {"B=3", "C=4"};
    f.c.env = env;
    f.c.n_env = 2;
    f.m[0].source = "/a";
    f.m[0].target = "/b";
    f.c.mounts = f.mp;
    f.c.n_mounts = 1;
    f.kv[0].key = "k";
    f.kv[0].value = "v";
    f.c.labels = f.kvp;
    f.c.n_labels = 1;
    f.service.name = "web";
    f.task.service_annotations = &f.service;
    f.img.healthcheck_test = img_health;
    for (long n = 0;; n++) {
        struct exec_spec_owned o = {.stop_signal = 99};
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        int rc = exec_spec_build(&f.task, &f.img, &o, &err);
        swm_alloc_fail_reset();
        if (rc == 0) {
            assert_true(n > 10);
            exec_spec_owned_free(&o);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(o.stop_signal, 99);
        assert_true(n < 10000);
    }

    struct exec_spec_owned built;
    build_ok(&f, &f.img, &built);
    for (long n = 0;; n++) {
        struct exec_spec_owned copy;
        swm_alloc_fail_after(n);
        int rc = exec_spec_copy(&built.spec, &copy);
        swm_alloc_fail_reset();
        if (rc == 0) {
            exec_spec_owned_free(&copy);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_true(n < 10000);
    }
    exec_spec_owned_free(&built);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv_image_defaults),
        cmocka_unit_test(test_argv_task_args_replace_cmd),
        cmocka_unit_test(test_argv_task_command_drops_image_cmd),
        cmocka_unit_test(test_argv_empty),
        cmocka_unit_test(test_env_merge),
        cmocka_unit_test(test_defaults_and_overrides),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_mounts),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_invalid_task),
        cmocka_unit_test(test_signal_parse),
        cmocka_unit_test(test_build_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
