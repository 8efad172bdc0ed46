#include "objects.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

#include "common/alloc.h"

void *obj_new(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = swm_malloc(desc->sizeof_message);
    assert_non_null(m);
    protobuf_c_message_init(desc, m);
    return m;
}

#define NEW(type, lower) ((type *)obj_new(&lower##__descriptor))

void obj_set_str(char **field, const char *value)
{
    swm_free(*field);
    *field = value != NULL ? swm_strdup(value) : NULL;
    assert_true(value == NULL || *field != NULL);
}

void obj_append_str(char ***arr, size_t *n, const char *value)
{
    char **grown = swm_realloc(*arr, (*n + 1) * sizeof(**arr));
    assert_non_null(grown);
    *arr = grown;
    (*arr)[*n] = NULL;
    obj_set_str(&(*arr)[(*n)++], value);
}

/* ----------------------------------------------------------------- nodes */

Swarmc__Node *obj_node(const char *id, int64_t nano_cpus, int64_t memory_bytes)
{
    Swarmc__Node *n = NEW(Swarmc__Node, swarmc__node);
    obj_set_str(&n->id, id);
    n->spec = NEW(Swarmc__NodeSpec, swarmc__node_spec);
    n->spec->annotations = NEW(Swarmc__Annotations, swarmc__annotations);
    n->description = NEW(Swarmc__NodeDescription, swarmc__node_description);
    obj_set_str(&n->description->hostname, id);
    n->description->resources = NEW(Swarmc__Resources, swarmc__resources);
    n->description->resources->has_nano_cpus = n->description->resources->has_memory_bytes = 1;
    n->description->resources->nano_cpus = nano_cpus;
    n->description->resources->memory_bytes = memory_bytes;
    n->description->platform = NEW(Swarmc__Platform, swarmc__platform);
    obj_set_str(&n->description->platform->os, "linux");
    obj_set_str(&n->description->platform->architecture, "x86_64");
    n->status = NEW(Swarmc__NodeStatus, swarmc__node_status);
    n->status->has_state = 1;
    n->status->state = SWARMC__NODE_STATE__NODE_STATE_READY;
    return n;
}

void obj_node_state(Swarmc__Node *n, Swarmc__NodeState state)
{
    n->status->state = state;
}

void obj_node_availability(Swarmc__Node *n, Swarmc__NodeAvailability availability)
{
    n->spec->has_availability = 1;
    n->spec->availability = availability;
}

void obj_node_label(Swarmc__Node *n, const char *key, const char *value)
{
    Swarmc__Annotations *a = n->spec->annotations;
    Swarmc__KeyValue **grown = swm_realloc(a->labels, (a->n_labels + 1) * sizeof(*grown));
    assert_non_null(grown);
    a->labels = grown;
    Swarmc__KeyValue *kv = NEW(Swarmc__KeyValue, swarmc__key_value);
    obj_set_str(&kv->key, key);
    obj_set_str(&kv->value, value);
    a->labels[a->n_labels++] = kv;
}

void obj_node_hostname(Swarmc__Node *n, const char *hostname)
{
    obj_set_str(&n->description->hostname, hostname);
}

void obj_node_role(Swarmc__Node *n, Swarmc__NodeRole role)
{
    n->has_role = 1;
    n->role = role;
}

void obj_node_platform(Swarmc__Node *n, const char *os, const char *arch)
{
    obj_set_str(&n->description->platform->os, os);
    obj_set_str(&n->description->platform->architecture, arch);
}

void obj_node_addr(Swarmc__Node *n, const char *addr)
{
    obj_set_str(&n->status->addr, addr);
}

/* ----------------------------------------------------------------- tasks */

static Swarmc__TaskSpec *task_spec_new(void)
{
    Swarmc__TaskSpec *ts = NEW(Swarmc__TaskSpec, swarmc__task_spec);
    ts->container = NEW(Swarmc__ContainerSpec, swarmc__container_spec);
    obj_set_str(&ts->container->image, "nginx:1");
    return ts;
}

Swarmc__Task *obj_task(const char *id, const char *service, uint64_t version, uint64_t slot,
                       const char *node, Swarmc__TaskState state, Swarmc__TaskState desired)
{
    Swarmc__Task *t = NEW(Swarmc__Task, swarmc__task);
    obj_set_str(&t->id, id);
    obj_set_str(&t->service_id, service);
    obj_set_str(&t->node_id, node);
    t->has_spec_version = t->has_slot = t->has_desired_state = 1;
    t->spec_version = version;
    t->slot = slot;
    t->desired_state = desired;
    t->spec = task_spec_new();
    t->meta = NEW(Swarmc__Meta, swarmc__meta);
    t->meta->has_version = 1;
    t->meta->version = 7;
    t->status = NEW(Swarmc__TaskStatus, swarmc__task_status);
    t->status->has_state = 1;
    t->status->state = state;
    return t;
}

static Swarmc__Resources *reservations(Swarmc__TaskSpec *ts)
{
    if (ts->resources == NULL)
        ts->resources = NEW(Swarmc__ResourceRequirements, swarmc__resource_requirements);
    if (ts->resources->reservations == NULL)
        ts->resources->reservations = NEW(Swarmc__Resources, swarmc__resources);
    return ts->resources->reservations;
}

void obj_task_reserve(Swarmc__Task *t, int64_t nano_cpus, int64_t memory_bytes)
{
    Swarmc__Resources *r = reservations(t->spec);
    r->has_nano_cpus = r->has_memory_bytes = 1;
    r->nano_cpus = nano_cpus;
    r->memory_bytes = memory_bytes;
}

Swarmc__Placement *obj_placement(Swarmc__TaskSpec *ts)
{
    if (ts->placement == NULL)
        ts->placement = NEW(Swarmc__Placement, swarmc__placement);
    return ts->placement;
}

void obj_spec_constraint(Swarmc__TaskSpec *ts, const char *expr)
{
    Swarmc__Placement *p = obj_placement(ts);
    obj_append_str(&p->constraints, &p->n_constraints, expr);
}

void obj_task_constraint(Swarmc__Task *t, const char *expr)
{
    obj_spec_constraint(t->spec, expr);
}

void obj_task_platform(Swarmc__Task *t, const char *os, const char *arch)
{
    Swarmc__Placement *p = obj_placement(t->spec);
    Swarmc__Platform **grown = swm_realloc(p->platforms, (p->n_platforms + 1) * sizeof(*grown));
    assert_non_null(grown);
    p->platforms = grown;
    Swarmc__Platform *pl = NEW(Swarmc__Platform, swarmc__platform);
    obj_set_str(&pl->os, os);
    obj_set_str(&pl->architecture, arch);
    p->platforms[p->n_platforms++] = pl;
}

void obj_task_max_replicas(Swarmc__Task *t, uint64_t max)
{
    Swarmc__Placement *p = obj_placement(t->spec);
    p->has_max_replicas = 1;
    p->max_replicas = max;
}

void obj_task_times(Swarmc__Task *t, int64_t created_ns, int64_t status_ns)
{
    t->meta->has_created_at = 1;
    t->meta->created_at = created_ns;
    t->status->has_timestamp = 1;
    t->status->timestamp = status_ns;
}

void obj_task_err(Swarmc__Task *t, const char *err)
{
    obj_set_str(&t->status->err, err);
}

void obj_task_exit(Swarmc__Task *t, int32_t code)
{
    if (t->status->container == NULL)
        t->status->container = NEW(Swarmc__ContainerStatus, swarmc__container_status);
    t->status->container->has_exit_code = 1;
    t->status->container->exit_code = code;
}

/* -------------------------------------------------------------- services */

Swarmc__Service *obj_service(const char *id, const char *name, Swarmc__ServiceMode mode,
                             uint64_t replicas)
{
    Swarmc__Service *s = NEW(Swarmc__Service, swarmc__service);
    obj_set_str(&s->id, id);
    s->meta = NEW(Swarmc__Meta, swarmc__meta);
    s->has_spec_version = 1;
    s->spec_version = 1;
    s->spec = NEW(Swarmc__ServiceSpec, swarmc__service_spec);
    s->spec->annotations = NEW(Swarmc__Annotations, swarmc__annotations);
    obj_set_str(&s->spec->annotations->name, name);
    s->spec->has_mode = 1;
    s->spec->mode = mode;
    if (mode == SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED) {
        s->spec->has_replicas = 1;
        s->spec->replicas = replicas;
    }
    s->spec->task = task_spec_new();
    return s;
}

Swarmc__TaskSpec *obj_service_task(Swarmc__Service *s)
{
    return s->spec->task;
}

Swarmc__RestartPolicy *obj_restart(Swarmc__TaskSpec *ts)
{
    if (ts->restart == NULL)
        ts->restart = NEW(Swarmc__RestartPolicy, swarmc__restart_policy);
    return ts->restart;
}

Swarmc__UpdateConfig *obj_update(Swarmc__Service *s)
{
    if (s->spec->update == NULL)
        s->spec->update = NEW(Swarmc__UpdateConfig, swarmc__update_config);
    return s->spec->update;
}
