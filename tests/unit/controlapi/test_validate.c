#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "../scheduler/objects.h"
#include "common/alloc.h"
#include "manager/controlapi/validate.h"

#define NEW(type, lower) ((type *)obj_new(&lower##__descriptor))

static Swarmc__Mount *mount(Swarmc__Mount__Type type, const char *source, const char *target)
{
    Swarmc__Mount *m = NEW(Swarmc__Mount, swarmc__mount);
    m->has_type = 1;
    m->type = type;
    obj_set_str(&m->source, source);
    obj_set_str(&m->target, target);
    return m;
}

static Swarmc__PortConfig *port(Swarmc__PortConfig__Protocol proto, uint32_t target,
                                uint32_t published)
{
    Swarmc__PortConfig *p = NEW(Swarmc__PortConfig, swarmc__port_config);
    p->has_protocol = p->has_target_port = p->has_published_port = 1;
    p->protocol = proto;
    p->target_port = target;
    p->published_port = published;
    return p;
}

static Swarmc__UpdateConfig *update_config(void)
{
    Swarmc__UpdateConfig *uc = NEW(Swarmc__UpdateConfig, swarmc__update_config);
    uc->has_parallelism = uc->has_delay = uc->has_monitor = uc->has_max_failure_ratio = 1;
    uc->has_order = uc->has_failure_action = 1;
    uc->parallelism = 2;
    uc->delay = 10 * OBJ_SEC;
    uc->monitor = 5 * OBJ_SEC;
    uc->max_failure_ratio = 0.2f;
    uc->order = SWARMC__UPDATE_CONFIG__ORDER__ORDER_START_FIRST;
    uc->failure_action = SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_ROLLBACK;
    return uc;
}

static Swarmc__Resources *resources(int64_t cpus, int64_t mem)
{
    Swarmc__Resources *r = NEW(Swarmc__Resources, swarmc__resources);
    r->has_nano_cpus = r->has_memory_bytes = 1;
    r->nano_cpus = cpus;
    r->memory_bytes = mem;
    return r;
}

static void container(Swarmc__ContainerSpec *c)
{
    obj_set_str(&c->image, "docker.io/library/nginx:1.25");
    obj_append_str(&c->env, &c->n_env, "A=1");
    obj_append_str(&c->env, &c->n_env, "EMPTY=");
    c->n_mounts = 3;
    c->mounts = swm_malloc(3 * sizeof(*c->mounts));
    c->mounts[0] = mount(SWARMC__MOUNT__TYPE__MOUNT_TYPE_BIND, "/srv/data", "/data");
    c->mounts[1] = mount(SWARMC__MOUNT__TYPE__MOUNT_TYPE_VOLUME, "vol", "/var/lib/app");
    c->mounts[2] = mount(SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS, NULL, "/tmp");
    c->has_stop_grace_period = 1;
    c->stop_grace_period = 10 * OBJ_SEC;
    c->healthcheck = NEW(Swarmc__HealthConfig, swarmc__health_config);
    obj_append_str(&c->healthcheck->test, &c->healthcheck->n_test, "CMD");
    obj_append_str(&c->healthcheck->test, &c->healthcheck->n_test, "true");
    c->healthcheck->has_interval = c->healthcheck->has_timeout = 1;
    c->healthcheck->interval = 30 * OBJ_SEC;
    c->healthcheck->timeout = 5 * OBJ_SEC;
    c->healthcheck->has_retries = 1;
    c->healthcheck->retries = 3;
}

/* A spec using every field, all valid. */
static Swarmc__ServiceSpec *full_spec(void)
{
    Swarmc__Service *svc =
        obj_service("s", "web", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, 3);
    Swarmc__ServiceSpec *spec = svc->spec;
    svc->spec = NULL;
    proto_free(svc);
    Swarmc__TaskSpec *ts = spec->task;
    container(ts->container);
    ts->resources = NEW(Swarmc__ResourceRequirements, swarmc__resource_requirements);
    ts->resources->limits = resources(OBJ_CPU, 512 * OBJ_MIB);
    ts->resources->reservations = resources(OBJ_CPU / 2, 256 * OBJ_MIB);
    Swarmc__RestartPolicy *rp = obj_restart(ts);
    rp->has_condition = rp->has_delay = rp->has_max_attempts = rp->has_window = 1;
    rp->condition = SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_ON_FAILURE;
    rp->delay = 5 * OBJ_SEC;
    rp->max_attempts = 3;
    rp->window = 60 * OBJ_SEC;
    obj_spec_constraint(ts, "node.role==worker");
    obj_spec_constraint(ts, "node.labels.zone!=b");
    Swarmc__Placement *p = obj_placement(ts);
    obj_append_str(&p->preferences, &p->n_preferences, "spread=node.labels.zone");
    p->has_max_replicas = 1;
    p->max_replicas = 2;
    spec->update = update_config();
    spec->rollback = update_config();
    spec->endpoint = NEW(Swarmc__EndpointSpec, swarmc__endpoint_spec);
    spec->endpoint->n_ports = 4;
    spec->endpoint->ports = swm_malloc(4 * sizeof(*spec->endpoint->ports));
    spec->endpoint->ports[0] = port(SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_TCP, 80, 8080);
    spec->endpoint->ports[1] = port(SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_UDP, 53, 53);
    spec->endpoint->ports[2] = port(SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_TCP, 53, 53);
    spec->endpoint->ports[3] = port(SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_TCP, 443, 0);
    return spec;
}

static Swarmc__ServiceSpec *S;

static int setup(void **state)
{
    S = full_spec();
    return 0;
}

static int teardown(void **state)
{
    proto_free(S);
    return 0;
}

static void rejects(const char *msg)
{
    struct swm_err err = {0};
    assert_int_equal(spec_validate_service(S, &err), SWM_EINVAL_SPEC);
    assert_int_equal(err.code, SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, msg);
}

static void accepts(void)
{
    struct swm_err err = {0};
    int rc = spec_validate_service(S, &err);
    if (rc != 0)
        fail_msg("unexpected error: %s", err.msg);
}

static void a_full_spec_passes(void **state)
{
    accepts();
    /* A minimal one too: defaults for everything but the image. */
    Swarmc__ServiceSpec min = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__TaskSpec ts = SWARMC__TASK_SPEC__INIT;
    Swarmc__ContainerSpec c = SWARMC__CONTAINER_SPEC__INIT;
    c.image = "busybox";
    ts.container = &c;
    min.task = &ts;
    assert_int_equal(spec_validate_service(&min, NULL), 0);
}

static void names(void **state)
{
    obj_set_str(&S->annotations->name, "");
    accepts(); /* the control API picks one */
    obj_set_str(&S->annotations->name, "my_web.v2-a");
    accepts();
    obj_set_str(&S->annotations->name, "-web");
    rejects("name must be valid as a DNS name component");
    obj_set_str(&S->annotations->name, "web app");
    rejects("name must be valid as a DNS name component");
    obj_set_str(&S->annotations->name,
                "a123456789012345678901234567890123456789012345678901234567890123");
    rejects("name must be 63 characters or fewer");
}

static void images(void **state)
{
    const char *good[] = {"nginx",
                          "nginx:1.25-alpine",
                          "library/nginx",
                          "localhost:5000/a/b:c",
                          "registry.example.com/team/app@sha256:"
                          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                          "a__b/c-d.e",
                          "Registry.Example.com/app"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(spec_image_ref_valid(good[i]));
    const char *bad[] = {"Nginx",       "nginx:", "nginx:-1", "a//b", "a/",           ":tag",
                         "a@sha256:12", "a b",    "-a",       "a_-b", "host:port/app"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (spec_image_ref_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
    obj_set_str(&S->task->container->image, NULL);
    rejects("ContainerSpec: image reference must be provided");
    obj_set_str(&S->task->container->image, "Nginx");
    rejects("ContainerSpec: \"Nginx\" is not a valid repository/tag");
    proto_free(S->task->container);
    S->task->container = NULL;
    rejects("ContainerSpec: image reference must be provided");
}

static void env(void **state)
{
    Swarmc__ContainerSpec *c = S->task->container;
    obj_set_str(&c->env[1], "=x");
    rejects("invalid environment variable: =x");
    obj_set_str(&c->env[1], "");
    rejects("invalid environment variable: empty string");
}

static void mounts(void **state)
{
    Swarmc__Mount **m = S->task->container->mounts;
    obj_set_str(&m[0]->target, "data");
    rejects("invalid mount config for type \"bind\": invalid mount path: 'data' mount path must "
            "be absolute");
    obj_set_str(&m[0]->target, "/");
    rejects("invalid specification: destination can't be '/'");
    obj_set_str(&m[0]->target, NULL);
    rejects("invalid mount config for type \"bind\": field Target must not be empty");
    obj_set_str(&m[0]->target, "/data");
    obj_set_str(&m[0]->source, "srv/data");
    rejects("invalid mount config for type \"bind\": invalid mount path: 'srv/data' mount path "
            "must be absolute");
    obj_set_str(&m[0]->source, NULL);
    rejects("invalid mount config for type \"bind\": field Source must not be empty");
    obj_set_str(&m[0]->source, "/srv");
    obj_set_str(&m[2]->source, "x");
    rejects("invalid mount config for type \"tmpfs\": field Source must not be specified");
    obj_set_str(&m[2]->source, NULL);
    obj_set_str(&m[1]->target, "/data");
    rejects("ContainerSpec: duplicate mount point: /data");
}

static void durations(void **state)
{
    Swarmc__ContainerSpec *c = S->task->container;
    c->stop_grace_period = -1;
    rejects("ContainerSpec: stop-grace-period cannot be negative");
    c->stop_grace_period = 0;
    c->healthcheck->interval = 999999; /* under 1ms */
    rejects("ContainerSpec: Interval in HealthConfig cannot be less than 1ms");
    c->healthcheck->interval = 0; /* 0 means the default */
    accepts();
    c->healthcheck->timeout = -5;
    rejects("ContainerSpec: Timeout in HealthConfig cannot be less than 1ms");
    c->healthcheck->timeout = OBJ_SEC;
    c->healthcheck->has_start_period = 1;
    c->healthcheck->start_period = -OBJ_SEC;
    rejects("ContainerSpec: StartPeriod in HealthConfig cannot be less than 1ms");
    c->healthcheck->start_period = 0;
    c->healthcheck->retries = -1;
    rejects("ContainerSpec: Retries in HealthConfig cannot be negative");
}

static void resource_limits(void **state)
{
    Swarmc__ResourceRequirements *rr = S->task->resources;
    rr->limits->memory_bytes = 4 * OBJ_MIB - 1;
    rejects("invalid memory value 4194303: Must be at least 4MiB");
    rr->limits->memory_bytes = 128 * OBJ_MIB;
    rejects("invalid resources: memory reservation 256MiB exceeds the memory limit 128MiB");
    rr->limits->memory_bytes = 0; /* no limit: any reservation */
    accepts();
    rr->reservations->nano_cpus = 2 * OBJ_CPU;
    rejects("invalid resources: cpu reservation 2 exceeds the cpu limit 1");
    rr->reservations->nano_cpus = 1000;
    rejects("invalid cpu value 1e-06: Must be at least 0.001");
    rr->reservations->nano_cpus = 0;
    rr->limits->pids = -1;
    rejects("invalid pids value -1: Must not be negative");
}

static void restart_policy(void **state)
{
    Swarmc__RestartPolicy *rp = S->task->restart;
    rp->delay = -1;
    rejects("TaskSpec: restart-delay cannot be negative");
    rp->delay = 0;
    rp->window = -1;
    rejects("TaskSpec: restart-window cannot be negative");
    rp->window = 0;
    rp->condition = 7;
    rejects("TaskSpec: invalid restart condition 7");
}

static void placement(void **state)
{
    Swarmc__Placement *p = S->task->placement;
    obj_set_str(&p->constraints[1], "node.labels.zone=b");
    rejects("invalid constraint expression \"node.labels.zone=b\": constraint expected one "
            "operator from ==, !=");
    obj_set_str(&p->constraints[1], "node.color==blue");
    rejects("invalid constraint expression \"node.color==blue\": key 'node.color' is not "
            "supported");
    obj_set_str(&p->constraints[1], "node.role==worker");
    obj_set_str(&p->preferences[0], "pack=node.labels.zone");
    rejects("unsupported placement preference pack (only spread is supported)");
    obj_set_str(&p->preferences[0], "spread");
    rejects("placement preference must be of the format \"<strategy>=<arg>\"");
    obj_set_str(&p->preferences[0], "spread=node.labels.zone");
    S->mode = SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    S->has_replicas = 0;
    rejects("replicas-max-per-node can only be used with replicated mode");
}

static void mode_and_replicas(void **state)
{
    S->task->placement->max_replicas = 0;
    S->mode = SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    rejects("replicas can only be used with replicated mode");
    S->has_replicas = 0;
    accepts();
    S->mode = 5;
    rejects("Unrecognized service mode");
}

static void update_and_rollback(void **state)
{
    S->update->delay = -1;
    rejects("TaskSpec: update-delay cannot be negative");
    S->update->delay = 0;
    S->update->monitor = -1;
    rejects("TaskSpec: update-monitor cannot be negative");
    S->update->monitor = 0;
    S->update->max_failure_ratio = 1.5f;
    rejects("TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1");
    S->update->max_failure_ratio = NAN;
    rejects("TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1");
    S->update->max_failure_ratio = 1;
    S->update->parallelism = 0; /* all at once */
    accepts();
    S->rollback->max_failure_ratio = -0.1f;
    rejects("TaskSpec: rollback-maxfailureratio cannot be less than 0 or bigger than 1");
    S->rollback->max_failure_ratio = 0;
    S->rollback->order = 9;
    rejects("TaskSpec: invalid rollback-order 9");
}

static void ports(void **state)
{
    Swarmc__PortConfig **p = S->endpoint->ports;
    p[0]->target_port = 0;
    rejects("EndpointSpec: invalid target port 0: must be between 1 and 65535");
    p[0]->target_port = 65536;
    rejects("EndpointSpec: invalid target port 65536: must be between 1 and 65535");
    p[0]->target_port = 80;
    p[0]->published_port = 70000;
    rejects("EndpointSpec: invalid published port 70000: must be between 0 and 65535");
    p[0]->published_port = 53;
    rejects("EndpointSpec: duplicate published ports provided");
    p[0]->published_port = 0;
    p[3]->published_port = 0; /* two unset published ports never conflict */
    accepts();
    S->endpoint->has_mode = 1;
    S->endpoint->mode = SWARMC__ENDPOINT_SPEC__RESOLUTION_MODE__RESOLUTION_MODE_DNSRR;
    rejects("EndpointSpec: port published with ingress mode can't be used with dnsrr mode");
}

static void node_specs(void **state)
{
    Swarmc__NodeSpec spec = SWARMC__NODE_SPEC__INIT;
    Swarmc__Annotations a = SWARMC__ANNOTATIONS__INIT;
    Swarmc__KeyValue kv = SWARMC__KEY_VALUE__INIT, *labels[] = {&kv};
    struct swm_err err = {0};
    spec.availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
    spec.desired_role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    assert_int_equal(spec_validate_node_spec(&spec, &err), 0);
    spec.availability = 3;
    assert_int_equal(spec_validate_node_spec(&spec, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "invalid availability 3: must be active, pause or drain");
    spec.availability = 0;
    spec.desired_role = 2;
    assert_int_equal(spec_validate_node_spec(&spec, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "invalid role 2: must be worker or manager");
    spec.desired_role = 0;
    spec.annotations = &a;
    a.n_labels = 1;
    a.labels = labels;
    kv.key = "zone";
    assert_int_equal(spec_validate_node_spec(&spec, &err), 0);
    kv.key = "";
    assert_int_equal(spec_validate_node_spec(&spec, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "invalid label: the key must not be empty");
    assert_int_equal(spec_validate_node_spec(NULL, &err), SWM_EINVAL_SPEC);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_full_spec_passes),
        T(names),
        T(images),
        T(env),
        T(mounts),
        T(durations),
        T(resource_limits),
        T(restart_policy),
        T(placement),
        T(mode_and_replicas),
        T(update_and_rollback),
        T(ports),
        T(node_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
