/* `service create/update` flags to a ServiceSpec (cli/specflags.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/specflags.h"
#include "common/alloc.h"
#include "proto/codec.h"

#define SEC 1000000000LL

static int argv_len(char **argv)
{
    int n = 0;
    while (argv[n] != NULL)
        n++;
    return n;
}

/* Parses argv as `service create` would and builds the spec. */
static int create(char **argv, Swarmc__ServiceSpec **spec, struct swm_err *err)
{
    struct cli_args args = {0};
    *spec = NULL;
    int rc = cli_args_parse(cli_service_create_flags, argv_len(argv), argv, false, &args, err);
    if (rc == 0)
        rc = cli_spec_create(&args, spec, err);
    cli_args_free(&args);
    return rc;
}

/* Parses argv as `service update` would and edits spec. */
static int update(char **argv, Swarmc__ServiceSpec *spec, struct swm_err *err)
{
    struct cli_args args = {0};
    int rc = cli_args_parse(cli_service_update_flags, argv_len(argv), argv, true, &args, err);
    if (rc == 0)
        rc = cli_spec_update(spec, &args, err);
    cli_args_free(&args);
    return rc;
}

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})

static Swarmc__ServiceSpec *must_create(char **argv)
{
    Swarmc__ServiceSpec *spec;
    struct swm_err err = {0};
    int rc = create(argv, &spec, &err);
    if (rc != 0)
        fail_msg("create failed: %s", err.msg);
    return spec;
}

static void minimal_create_defaults_to_one_replica(void **state)
{
    Swarmc__ServiceSpec *spec = must_create(ARGV("busybox"));
    assert_string_equal(spec->task->container->image, "busybox");
    assert_true(spec->has_replicas);
    assert_int_equal(spec->replicas, 1);
    assert_false(spec->has_mode);
    assert_int_equal(spec->task->container->n_args, 0);
    assert_null(spec->update);
    assert_null(spec->endpoint);
    proto_free(spec);
}

static void command_and_args_after_image_are_not_flags(void **state)
{
    Swarmc__ServiceSpec *spec =
        must_create(ARGV("--name", "web", "busybox", "httpd", "-f", "-p", "80", "--replicas"));
    Swarmc__ContainerSpec *c = spec->task->container;
    assert_string_equal(spec->annotations->name, "web");
    assert_int_equal(c->n_args, 5);
    assert_string_equal(c->args[0], "httpd");
    assert_string_equal(c->args[1], "-f");
    assert_string_equal(c->args[4], "--replicas");
    assert_null(spec->endpoint);
    proto_free(spec);
}

static void scalar_flags_set_their_fields(void **state)
{
    Swarmc__ServiceSpec *spec = must_create(ARGV(
        "--replicas", "3", "-w", "/srv", "-u", "nobody:nogroup", "--hostname", "h1", "--read-only",
        "-t", "--init", "--stop-signal", "SIGINT", "--stop-grace-period", "1m30s", "--limit-cpu",
        "0.5", "--limit-memory", "512m", "--limit-pids", "100", "--reserve-cpu", "2",
        "--reserve-memory", "1g", "--restart-condition", "on-failure", "--restart-delay", "10s",
        "--restart-max-attempts", "4", "--restart-window", "2m", "--replicas-max-per-node", "2",
        "--endpoint-mode", "dnsrr", "--update-parallelism", "2", "--update-delay", "10s",
        "--update-failure-action", "rollback", "--update-monitor", "30s",
        "--update-max-failure-ratio", "0.25", "--update-order", "start-first",
        "--rollback-parallelism", "0", "--rollback-delay", "1s", "--rollback-failure-action",
        "continue", "--rollback-monitor", "3s", "--rollback-max-failure-ratio", "0.5",
        "--rollback-order", "start-first", "--mode", "replicated", "nginx:1.25"));
    const Swarmc__ContainerSpec *c = spec->task->container;
    assert_int_equal(spec->replicas, 3);
    assert_true(spec->has_mode);
    assert_int_equal(spec->mode, SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED);
    assert_string_equal(c->image, "nginx:1.25");
    assert_string_equal(c->dir, "/srv");
    assert_string_equal(c->user, "nobody:nogroup");
    assert_string_equal(c->hostname, "h1");
    assert_true(c->has_read_only && c->read_only);
    assert_true(c->has_tty && c->tty);
    assert_true(c->has_init && c->init);
    assert_string_equal(c->stop_signal, "SIGINT");
    assert_true(c->has_stop_grace_period);
    assert_true(c->stop_grace_period == 90 * SEC);
    const Swarmc__ResourceRequirements *r = spec->task->resources;
    assert_true(r->limits->has_nano_cpus && r->limits->nano_cpus == 500000000LL);
    assert_true(r->limits->memory_bytes == 512LL << 20);
    assert_true(r->limits->has_pids && r->limits->pids == 100);
    assert_true(r->reservations->nano_cpus == 2 * SEC);
    assert_true(r->reservations->memory_bytes == 1LL << 30);
    const Swarmc__RestartPolicy *rp = spec->task->restart;
    assert_int_equal(rp->condition,
                     SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_ON_FAILURE);
    assert_true(rp->has_condition);
    assert_true(rp->delay == 10 * SEC);
    assert_int_equal(rp->max_attempts, 4);
    assert_true(rp->window == 120 * SEC);
    assert_int_equal(spec->task->placement->max_replicas, 2);
    assert_int_equal(spec->endpoint->mode,
                     SWARMC__ENDPOINT_SPEC__RESOLUTION_MODE__RESOLUTION_MODE_DNSRR);
    const Swarmc__UpdateConfig *u = spec->update, *rb = spec->rollback;
    assert_int_equal(u->parallelism, 2);
    assert_true(u->delay == 10 * SEC);
    assert_int_equal(u->failure_action,
                     SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_ROLLBACK);
    assert_true(u->monitor == 30 * SEC);
    assert_true(u->max_failure_ratio > 0.249f && u->max_failure_ratio < 0.251f);
    assert_int_equal(u->order, SWARMC__UPDATE_CONFIG__ORDER__ORDER_START_FIRST);
    /* 0 is a real value ("all at once"), distinct from unset. */
    assert_true(rb->has_parallelism);
    assert_int_equal(rb->parallelism, 0);
    assert_true(rb->delay == SEC);
    assert_int_equal(rb->failure_action,
                     SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_CONTINUE);
    assert_true(rb->monitor == 3 * SEC);
    assert_true(rb->max_failure_ratio > 0.49f);
    assert_int_equal(rb->order, SWARMC__UPDATE_CONFIG__ORDER__ORDER_START_FIRST);
    proto_free(spec);
}

static void global_mode_has_no_replicas(void **state)
{
    Swarmc__ServiceSpec *spec = must_create(ARGV("--mode", "global", "busybox"));
    assert_int_equal(spec->mode, SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL);
    assert_false(spec->has_replicas);
    proto_free(spec);
}

static void publish_short_and_long_syntax(void **state)
{
    Swarmc__ServiceSpec *spec =
        must_create(ARGV("-p", "8080:80", "--publish", "53:53/udp", "-p", "9000-9001:90-91", "-p",
                         "443", "--publish", "published=8443,target=443,protocol=tcp,mode=host",
                         "-p", "target=7000,protocol=sctp", "busybox"));
    Swarmc__EndpointSpec *e = spec->endpoint;
    assert_int_equal(e->n_ports, 7);
    assert_int_equal(e->ports[0]->published_port, 8080);
    assert_int_equal(e->ports[0]->target_port, 80);
    assert_int_equal(e->ports[0]->protocol, SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_TCP);
    assert_int_equal(e->ports[0]->publish_mode,
                     SWARMC__PORT_CONFIG__PUBLISH_MODE__PUBLISH_MODE_INGRESS);
    assert_int_equal(e->ports[1]->protocol, SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_UDP);
    assert_int_equal(e->ports[1]->published_port, 53);
    assert_int_equal(e->ports[2]->published_port, 9000);
    assert_int_equal(e->ports[2]->target_port, 90);
    assert_int_equal(e->ports[3]->published_port, 9001);
    assert_int_equal(e->ports[3]->target_port, 91);
    /* Target only: the manager picks a published port. */
    assert_int_equal(e->ports[4]->target_port, 443);
    assert_false(e->ports[4]->has_published_port);
    assert_int_equal(e->ports[5]->published_port, 8443);
    assert_int_equal(e->ports[5]->publish_mode,
                     SWARMC__PORT_CONFIG__PUBLISH_MODE__PUBLISH_MODE_HOST);
    assert_int_equal(e->ports[6]->target_port, 7000);
    assert_int_equal(e->ports[6]->protocol, SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_SCTP);
    proto_free(spec);
}

static void publishing_a_port_twice_keeps_the_last(void **state)
{
    Swarmc__ServiceSpec *spec = must_create(ARGV("-p", "8080:80", "-p", "8080:81", "busybox"));
    assert_int_equal(spec->endpoint->n_ports, 1);
    assert_int_equal(spec->endpoint->ports[0]->target_port, 81);
    proto_free(spec);
}

static void mounts_of_every_type(void **state)
{
    Swarmc__ServiceSpec *spec =
        must_create(ARGV("--mount", "type=bind,source=/srv/data,target=/data,readonly", "--mount",
                         "type=volume,src=cache,dst=/cache,ro=false", "--mount",
                         "type=tmpfs,target=/tmp,tmpfs-size=64m,tmpfs-mode=1777", "--mount",
                         "target=/anon", "busybox"));
    Swarmc__ContainerSpec *c = spec->task->container;
    assert_int_equal(c->n_mounts, 4);
    assert_int_equal(c->mounts[0]->type, SWARMC__MOUNT__TYPE__MOUNT_TYPE_BIND);
    assert_string_equal(c->mounts[0]->source, "/srv/data");
    assert_string_equal(c->mounts[0]->target, "/data");
    assert_true(c->mounts[0]->readonly);
    assert_int_equal(c->mounts[1]->type, SWARMC__MOUNT__TYPE__MOUNT_TYPE_VOLUME);
    assert_string_equal(c->mounts[1]->source, "cache");
    assert_true(c->mounts[1]->has_readonly);
    assert_false(c->mounts[1]->readonly);
    assert_int_equal(c->mounts[2]->type, SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS);
    assert_true(c->mounts[2]->tmpfs_size_bytes == 64LL << 20);
    assert_int_equal(c->mounts[2]->tmpfs_mode, 01777);
    /* Docker's default type is volume (anonymous here). */
    assert_int_equal(c->mounts[3]->type, SWARMC__MOUNT__TYPE__MOUNT_TYPE_VOLUME);
    assert_null(c->mounts[3]->source);
    proto_free(spec);
}

static void env_labels_and_placement(void **state)
{
    setenv("SWARMC_TEST_FROM_ENV", "inherited", 1);
    unsetenv("SWARMC_TEST_UNSET");
    Swarmc__ServiceSpec *spec = must_create(
        ARGV("-e", "A=1", "--env", "B=x=y", "-e", "SWARMC_TEST_FROM_ENV", "-e", "SWARMC_TEST_UNSET",
             "-e", "A=2", "-l", "tier=web", "--label", "flag", "--label", "tier=front",
             "--container-label", "c=1", "--constraint", "node.labels.zone==a", "--constraint",
             "node.role!=manager", "--placement-pref", "spread=node.labels.zone", "--network",
             "backend", "--network", "name=front,alias=web,alias=www", "busybox"));
    Swarmc__ContainerSpec *c = spec->task->container;
    assert_int_equal(c->n_env, 4);
    assert_string_equal(c->env[0], "B=x=y");
    assert_string_equal(c->env[1], "SWARMC_TEST_FROM_ENV=inherited");
    assert_string_equal(c->env[2], "SWARMC_TEST_UNSET");
    assert_string_equal(c->env[3], "A=2");
    Swarmc__Annotations *a = spec->annotations;
    assert_int_equal(a->n_labels, 2);
    assert_string_equal(a->labels[0]->key, "flag");
    assert_string_equal(a->labels[0]->value, "");
    assert_string_equal(a->labels[1]->key, "tier");
    assert_string_equal(a->labels[1]->value, "front");
    assert_int_equal(c->n_labels, 1);
    assert_string_equal(c->labels[0]->key, "c");
    Swarmc__Placement *p = spec->task->placement;
    assert_int_equal(p->n_constraints, 2);
    assert_string_equal(p->constraints[1], "node.role!=manager");
    assert_int_equal(p->n_preferences, 1);
    assert_string_equal(p->preferences[0], "spread=node.labels.zone");
    assert_int_equal(spec->task->n_networks, 2);
    assert_string_equal(spec->task->networks[0]->target, "backend");
    assert_string_equal(spec->task->networks[1]->target, "front");
    assert_int_equal(spec->task->networks[1]->n_aliases, 2);
    assert_string_equal(spec->task->networks[1]->aliases[1], "www");
    proto_free(spec);
}

static void env_file_is_read(void **state)
{
    char path[] = "/tmp/swarmc-envfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# comment\n\nX=1\n  Y=two words\r\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    Swarmc__ServiceSpec *spec = must_create(ARGV("--env-file", path, "-e", "X=9", "busybox"));
    Swarmc__ContainerSpec *c = spec->task->container;
    assert_int_equal(c->n_env, 2);
    assert_string_equal(c->env[0], "Y=two words");
    assert_string_equal(c->env[1], "X=9");
    proto_free(spec);
    unlink(path);
}

static void health_check_and_entrypoint(void **state)
{
    Swarmc__ServiceSpec *spec =
        must_create(ARGV("--health-cmd", "wget -qO- localhost/", "--health-interval", "5s",
                         "--health-timeout", "2s", "--health-retries", "4", "--health-start-period",
                         "1s", "--entrypoint", "sh -c 'echo \"hi there\"; exec httpd'", "busybox"));
    Swarmc__ContainerSpec *c = spec->task->container;
    Swarmc__HealthConfig *h = c->healthcheck;
    assert_int_equal(h->n_test, 2);
    assert_string_equal(h->test[0], "CMD-SHELL");
    assert_string_equal(h->test[1], "wget -qO- localhost/");
    assert_true(h->interval == 5 * SEC);
    assert_true(h->timeout == 2 * SEC);
    assert_int_equal(h->retries, 4);
    assert_true(h->start_period == SEC);
    assert_int_equal(c->n_command, 3);
    assert_string_equal(c->command[0], "sh");
    assert_string_equal(c->command[1], "-c");
    assert_string_equal(c->command[2], "echo \"hi there\"; exec httpd");
    proto_free(spec);

    spec = must_create(ARGV("--no-healthcheck", "busybox"));
    assert_int_equal(spec->task->container->healthcheck->n_test, 1);
    assert_string_equal(spec->task->container->healthcheck->test[0], "NONE");
    proto_free(spec);
}

struct bad_value {
    char *flag;
    char *value;
    const char *message;
};

static void every_bad_value_names_flag_and_value(void **state)
{
    static const struct bad_value cases[] = {
        {"--restart-delay", "5x",
         "invalid argument \"5x\" for \"--restart-delay\" flag: time: unknown unit \"x\" in "
         "duration \"5x\""},
        {"--stop-grace-period", "10",
         "invalid argument \"10\" for \"--stop-grace-period\" flag: time: missing unit in "
         "duration \"10\""},
        {"--update-delay", "soon",
         "invalid argument \"soon\" for \"--update-delay\" flag: time: invalid duration \"soon\""},
        {"--health-interval", "-1s",
         "invalid argument \"-1s\" for \"--health-interval\" flag: time: invalid duration \"-1s\""},
        {"--replicas", "three",
         "invalid argument \"three\" for \"--replicas\" flag: strconv.ParseUint: parsing "
         "\"three\": invalid syntax"},
        {"--replicas", "-1",
         "invalid argument \"-1\" for \"--replicas\" flag: strconv.ParseUint: parsing \"-1\": "
         "invalid syntax"},
        {"--restart-max-attempts", "99999999999999999999",
         "invalid argument \"99999999999999999999\" for \"--restart-max-attempts\" flag: "
         "strconv.ParseUint: parsing \"99999999999999999999\": value out of range"},
        {"--limit-memory", "12q",
         "invalid argument \"12q\" for \"--limit-memory\" flag: invalid size: '12q'"},
        {"--reserve-memory", "lots",
         "invalid argument \"lots\" for \"--reserve-memory\" flag: invalid size: 'lots'"},
        {"--limit-cpu", "half",
         "invalid argument \"half\" for \"--limit-cpu\" flag: failed to parse half as a rational "
         "number"},
        {"--reserve-cpu", "1.x",
         "invalid argument \"1.x\" for \"--reserve-cpu\" flag: failed to parse 1.x as a rational "
         "number"},
        {"--limit-pids", "many",
         "invalid argument \"many\" for \"--limit-pids\" flag: strconv.ParseInt: parsing \"many\": "
         "invalid syntax"},
        {"--health-retries", "99999999999",
         "invalid argument \"99999999999\" for \"--health-retries\" flag: value out of range"},
        {"--update-max-failure-ratio", "x",
         "invalid argument \"x\" for \"--update-max-failure-ratio\" flag: strconv.ParseFloat: "
         "parsing \"x\": invalid syntax"},
        {"--restart-condition", "sometimes",
         "invalid argument \"sometimes\" for \"--restart-condition\" flag: must be one of "
         "\"none\", \"on-failure\", \"any\""},
        {"--update-failure-action", "panic",
         "invalid argument \"panic\" for \"--update-failure-action\" flag: must be one of "
         "\"pause\", \"continue\", \"rollback\""},
        {"--rollback-failure-action", "rollback",
         "invalid argument \"rollback\" for \"--rollback-failure-action\" flag: must be one of "
         "\"pause\", \"continue\""},
        {"--update-order", "random",
         "invalid argument \"random\" for \"--update-order\" flag: must be one of \"stop-first\", "
         "\"start-first\""},
        {"--endpoint-mode", "nat",
         "invalid argument \"nat\" for \"--endpoint-mode\" flag: must be one of \"vip\", "
         "\"dnsrr\""},
        {"--mode", "sometimes",
         "invalid argument \"sometimes\" for \"--mode\" flag: must be one of \"replicated\", "
         "\"global\""},
        {"--mode", "replicated-job",
         "invalid argument \"replicated-job\" for \"--mode\" flag: replicated-job services are "
         "not yet supported"},
        {"-p", "http",
         "invalid argument \"http\" for \"-p, --publish\" flag: invalid containerPort: http"},
        {"-p", "x:80", "invalid argument \"x:80\" for \"-p, --publish\" flag: invalid hostPort: x"},
        {"-p", "80/tcpx",
         "invalid argument \"80/tcpx\" for \"-p, --publish\" flag: invalid proto: tcpx"},
        {"-p", "127.0.0.1:80:80",
         "invalid argument \"127.0.0.1:80:80\" for \"-p, --publish\" flag: hostip is not "
         "supported"},
        {"-p", "8080-8082:80-81",
         "invalid argument \"8080-8082:80-81\" for \"-p, --publish\" flag: invalid ranges "
         "specified for container and host Ports: 80-81 and 8080-8082"},
        {"-p", "published=80",
         "invalid argument \"published=80\" for \"-p, --publish\" flag: missing mandatory field "
         "\"target\""},
        {"-p", "target=80,color=red",
         "invalid argument \"target=80,color=red\" for \"-p, --publish\" flag: invalid field key "
         "'color'"},
        {"-p", "target=70000",
         "invalid argument \"target=70000\" for \"-p, --publish\" flag: invalid target port: "
         "70000"},
        {"--publish", "target=80,mode=nodeport",
         "invalid argument \"target=80,mode=nodeport\" for \"-p, --publish\" flag: invalid "
         "publish mode value (nodeport)"},
        {"--mount", "type=bind,target=/x",
         "invalid argument \"type=bind,target=/x\" for \"--mount\" flag: source is required when "
         "specifying bind mounts"},
        {"--mount", "source=/x",
         "invalid argument \"source=/x\" for \"--mount\" flag: target is required"},
        {"--mount", "type=nfs,target=/x",
         "invalid argument \"type=nfs,target=/x\" for \"--mount\" flag: invalid mount type: nfs"},
        {"--mount", "target=/x,color=red",
         "invalid argument \"target=/x,color=red\" for \"--mount\" flag: unexpected key 'color' "
         "in 'color=red'"},
        {"--mount", "target=/x,readonly=maybe",
         "invalid argument \"target=/x,readonly=maybe\" for \"--mount\" flag: invalid value for "
         "readonly: maybe"},
        {"--mount", "type=tmpfs,source=/a,target=/x",
         "invalid argument \"type=tmpfs,source=/a,target=/x\" for \"--mount\" flag: source is not "
         "supported for tmpfs mounts"},
        {"-e", "=x",
         "invalid argument \"=x\" for \"-e, --env\" flag: invalid environment variable: =x"},
        {"--env-file", "/nonexistent/env",
         "invalid argument \"/nonexistent/env\" for \"--env-file\" flag: open /nonexistent/env: No "
         "such file or directory"},
        {"-l", "=v", "invalid argument \"=v\" for \"-l, --label\" flag: invalid label: empty key"},
        {"--constraint", "node.role",
         "invalid argument \"node.role\" for \"--constraint\" flag: constraint expected one "
         "operator from ==, !="},
        {"--placement-pref", "spread",
         "invalid argument \"spread\" for \"--placement-pref\" flag: placement preference must be "
         "of the format \"<strategy>=<arg>\""},
        {"--placement-pref", "binpack=x",
         "invalid argument \"binpack=x\" for \"--placement-pref\" flag: unsupported placement "
         "preference binpack (only spread is supported)"},
        {"--read-only=maybe", NULL,
         "invalid argument \"maybe\" for \"--read-only\" flag: strconv.ParseBool: parsing "
         "\"maybe\": invalid syntax"},
        {"--entrypoint", "sh -c 'oops",
         "invalid argument \"sh -c 'oops\" for \"--entrypoint\" flag: EOF found when expecting "
         "closing quote"},
        {"--network", "name=x,color=red",
         "invalid argument \"name=x,color=red\" for \"--network\" flag: invalid field 'color=red'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Swarmc__ServiceSpec *spec = NULL;
        struct swm_err err = {0};
        char *argv[] = {cases[i].flag, cases[i].value, "busybox", NULL};
        if (cases[i].value == NULL)
            argv[1] = "busybox", argv[2] = NULL;
        int rc = create(argv, &spec, &err);
        if (rc != SWM_EINVAL_SPEC || strcmp(err.msg, cases[i].message) != 0)
            fail_msg("%s %s: rc %d, got:\n  %s\nwant:\n  %s", cases[i].flag,
                     cases[i].value ? cases[i].value : "", rc, err.msg, cases[i].message);
        assert_null(spec);
    }
}

static void conflicting_flags_are_refused(void **state)
{
    static const struct {
        char *argv[6];
        const char *message;
    } cases[] = {
        {{"--mode", "global", "--replicas", "2", "busybox"},
         "replicas can only be used with replicated mode"},
        {{"--mode", "global", "--replicas-max-per-node", "2", "busybox"},
         "replicas-max-per-node can only be used with replicated mode"},
        {{"--no-healthcheck", "--health-cmd", "true", "busybox"},
         "--no-healthcheck conflicts with --health-* options"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Swarmc__ServiceSpec *spec = NULL;
        struct swm_err err = {0};
        assert_int_equal(create((char **)cases[i].argv, &spec, &err), SWM_EINVAL_SPEC);
        assert_string_equal(err.msg, cases[i].message);
    }
}

static void update_adds_and_removes(void **state)
{
    Swarmc__ServiceSpec *spec = must_create(
        ARGV("-e", "A=1", "-e", "B=2", "-l", "x=1", "--container-label", "y=1", "--constraint",
             "node.labels.zone==a", "--mount", "type=bind,source=/a,target=/a", "-p", "8080:80",
             "-p", "53:53/udp", "--network", "n1", "--placement-pref", "spread=node.id", "busybox",
             "sleep", "1"));
    struct swm_err err = {0};
    int rc = update(
        ARGV("web", "--image", "busybox:2", "--env-add", "C=3", "--env-add", "A=9", "--env-rm", "B",
             "--label-add", "z=2", "--label-rm", "x", "--container-label-rm", "y",
             "--container-label-add", "w=3", "--constraint-rm", "node.labels.zone==a",
             "--constraint-add", "node.role==worker", "--mount-rm", "/a", "--mount-add",
             "type=tmpfs,target=/t", "--publish-rm", "80", "--publish-add", "9090:90",
             "--network-rm", "n1", "--network-add", "n2", "--placement-pref-rm", "spread=node.id",
             "--args", "sleep 'a b'", "--replicas", "4", "--limit-memory", "1g"),
        spec, &err);
    assert_int_equal(rc, 0);
    Swarmc__ContainerSpec *c = spec->task->container;
    assert_string_equal(c->image, "busybox:2");
    assert_int_equal(c->n_env, 2);
    assert_string_equal(c->env[0], "C=3");
    assert_string_equal(c->env[1], "A=9");
    assert_int_equal(spec->annotations->n_labels, 1);
    assert_string_equal(spec->annotations->labels[0]->key, "z");
    assert_int_equal(c->n_labels, 1);
    assert_string_equal(c->labels[0]->key, "w");
    assert_int_equal(spec->task->placement->n_constraints, 1);
    assert_string_equal(spec->task->placement->constraints[0], "node.role==worker");
    assert_int_equal(spec->task->placement->n_preferences, 0);
    assert_int_equal(c->n_mounts, 1);
    assert_string_equal(c->mounts[0]->target, "/t");
    assert_int_equal(spec->endpoint->n_ports, 2);
    assert_int_equal(spec->endpoint->ports[0]->target_port, 53);
    assert_int_equal(spec->endpoint->ports[1]->published_port, 9090);
    assert_int_equal(spec->task->n_networks, 1);
    assert_string_equal(spec->task->networks[0]->target, "n2");
    assert_int_equal(c->n_args, 2);
    assert_string_equal(c->args[1], "a b");
    assert_int_equal(spec->replicas, 4);
    assert_true(spec->task->resources->limits->memory_bytes == 1LL << 30);
    proto_free(spec);
}

static void update_removes_before_adding(void **state)
{
    Swarmc__ServiceSpec *spec = must_create(ARGV("-e", "A=1", "busybox"));
    struct swm_err err = {0};
    /* Whatever the order on the command line, -rm applies first (docker). */
    assert_int_equal(update(ARGV("--env-add", "A=2", "--env-rm", "A", "web"), spec, &err), 0);
    assert_int_equal(spec->task->container->n_env, 1);
    assert_string_equal(spec->task->container->env[0], "A=2");
    proto_free(spec);
}

static void update_force_bool_and_clear(void **state)
{
    Swarmc__ServiceSpec *spec = must_create(
        ARGV("--read-only", "--entrypoint", "sh -c", "--health-cmd", "true", "busybox"));
    struct swm_err err = {0};
    assert_int_equal(update(ARGV("--force", "web"), spec, &err), 0);
    assert_int_equal(
        update(ARGV("--force", "--read-only=false", "--entrypoint", "", "--health-cmd", "", "web"),
               spec, &err),
        0);
    assert_true(spec->task->has_force_update);
    assert_int_equal(spec->task->force_update, 2);
    assert_true(spec->task->container->has_read_only);
    assert_false(spec->task->container->read_only);
    assert_int_equal(spec->task->container->n_command, 0);
    assert_int_equal(spec->task->container->healthcheck->n_test, 0);
    assert_int_equal(update(ARGV("--no-healthcheck", "web"), spec, &err), 0);
    assert_string_equal(spec->task->container->healthcheck->test[0], "NONE");
    proto_free(spec);
}

static void update_of_global_service_refuses_replicas(void **state)
{
    Swarmc__ServiceSpec *spec = must_create(ARGV("--mode", "global", "busybox"));
    struct swm_err err = {0};
    assert_int_equal(update(ARGV("--replicas", "3", "web"), spec, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "replicas can only be used with replicated mode");
    assert_int_equal(update(ARGV("--update-delay", "3q", "web"), spec, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "invalid argument \"3q\" for \"--update-delay\" flag: time: "
                                 "unknown unit \"q\" in duration \"3q\"");
    proto_free(spec);
}

static void shell_split_words(void **state)
{
    char **argv;
    size_t argc;
    assert_int_equal(cli_shell_split("  a 'b c'  \"d \\\"e\\\"\" f\\ g ''", &argv, &argc), 0);
    assert_int_equal(argc, 5);
    assert_string_equal(argv[0], "a");
    assert_string_equal(argv[1], "b c");
    assert_string_equal(argv[2], "d \"e\"");
    assert_string_equal(argv[3], "f g");
    assert_string_equal(argv[4], "");
    assert_null(argv[5]);
    cli_strv_free(argv, argc);
    assert_int_equal(cli_shell_split("", &argv, &argc), 0);
    assert_int_equal(argc, 0);
    cli_strv_free(argv, argc);
    assert_int_equal(cli_shell_split("\"open", &argv, &argc), -EINVAL);
}

/* The generic operations work on any message: here a NodeSpec, as
 * `node update` uses them. */
static const struct cli_choice availabilities[] = {
    {"active", 0},
    {"pause", 1},
    {"drain", 2},
    {0},
};
static const struct cli_flag node_flags[] = {
    {"availability", 0, CLI_FLAG_VALUE, CLI_KIND_STRING, NULL, "",
     &(const struct cli_field_op){cli_op_set, "availability", availabilities}},
    {"label-rm", 0, CLI_FLAG_LIST, CLI_KIND_STRING, NULL, "",
     &(const struct cli_field_op){cli_op_kv_remove, "annotations.labels", NULL}},
    {"label-add", 0, CLI_FLAG_LIST, CLI_KIND_STRING, NULL, "",
     &(const struct cli_field_op){cli_op_kv_set, "annotations.labels", NULL}},
    {0},
};

static void generic_ops_edit_a_node_spec(void **state)
{
    const struct cli_flag *const tables[] = {node_flags, NULL};
    Swarmc__NodeSpec *spec = (Swarmc__NodeSpec *)cli_msg_new(&swarmc__node_spec__descriptor);
    char *argv[] = {"--availability", "drain", "--label-add", "zone=a", "--label-add", "ssd",
                    "--label-rm",     "none",  NULL};
    struct cli_args args = {0};
    struct swm_err err = {0};
    assert_int_equal(cli_args_parse(tables, 8, argv, true, &args, &err), 0);
    assert_int_equal(cli_fields_apply(&spec->base, tables, &args, &err), 0);
    assert_true(spec->has_availability);
    assert_int_equal(spec->availability, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    assert_int_equal(spec->annotations->n_labels, 2);
    cli_args_free(&args);
    char *rm[] = {"--label-rm", "zone", NULL};
    assert_int_equal(cli_args_parse(tables, 2, rm, true, &args, &err), 0);
    assert_int_equal(cli_fields_apply(&spec->base, tables, &args, &err), 0);
    assert_int_equal(spec->annotations->n_labels, 1);
    assert_string_equal(spec->annotations->labels[0]->key, "ssd");
    cli_args_free(&args);
    proto_free(spec);
}

/* Every allocation may fail: the result is then -ENOMEM, never a crash or
 * a leak (ASan checks the latter). */
static void out_of_memory_at_every_step(void **state)
{
    char **argv =
        ARGV("--name", "web", "-e", "A=1", "-l", "a=b", "--mount", "type=bind,source=/a,target=/b",
             "-p", "8080:80", "-p", "published=1,target=2", "--network", "name=n,alias=a",
             "--constraint", "a==b", "--health-cmd", "true", "--entrypoint", "sh -c x",
             "--limit-cpu", "1", "--update-order", "start-first", "busybox", "sleep", "1");
    bool succeeded = false;
    for (long n = 0; !succeeded; n++) {
        Swarmc__ServiceSpec *spec = NULL;
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        int rc = create(argv, &spec, &err);
        swm_alloc_fail_reset();
        if (rc == 0) {
            succeeded = true;
            assert_int_equal(spec->endpoint->n_ports, 2);
        } else {
            assert_int_equal(rc, -ENOMEM);
        }
        proto_free(spec);
        assert_true(n < 10000);
    }
    Swarmc__ServiceSpec *spec = must_create(ARGV("-e", "A=1", "busybox"));
    for (long n = 0; n < 200; n++) {
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        int rc = update(ARGV("--env-add", "B=2", "--label-add", "x=y", "--publish-add", "1:2",
                             "--mount-add", "target=/x", "--constraint-add", "a!=b", "web"),
                        spec, &err);
        swm_alloc_fail_reset();
        assert_true(rc == 0 || rc == -ENOMEM);
    }
    proto_free(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minimal_create_defaults_to_one_replica),
        cmocka_unit_test(command_and_args_after_image_are_not_flags),
        cmocka_unit_test(scalar_flags_set_their_fields),
        cmocka_unit_test(global_mode_has_no_replicas),
        cmocka_unit_test(publish_short_and_long_syntax),
        cmocka_unit_test(publishing_a_port_twice_keeps_the_last),
        cmocka_unit_test(mounts_of_every_type),
        cmocka_unit_test(env_labels_and_placement),
        cmocka_unit_test(env_file_is_read),
        cmocka_unit_test(health_check_and_entrypoint),
        cmocka_unit_test(every_bad_value_names_flag_and_value),
        cmocka_unit_test(conflicting_flags_are_refused),
        cmocka_unit_test(update_adds_and_removes),
        cmocka_unit_test(update_removes_before_adding),
        cmocka_unit_test(update_force_bool_and_clear),
        cmocka_unit_test(update_of_global_service_refuses_replicas),
        cmocka_unit_test(shell_split_words),
        cmocka_unit_test(generic_ops_edit_a_node_spec),
        cmocka_unit_test(out_of_memory_at_every_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
