/* Scheduler throughput: 1,000 simulated nodes and 100,000 pending tasks
 * through sched_run, in memory (no store). SwarmKit's scheduler needs about
 * 14 s for this; the target is well under 1.5 s.
 *
 * Usage: scheduler_bench [nodes [tasks [services]]]
 * The tasks are spread over `services` services (default 100), each with a
 * CPU and memory reservation and a constraint every node satisfies, so every
 * filter runs; 10% of the nodes already run 20 tasks each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/timeutil.h"
#include "manager/scheduler/scheduler.h"

static void *xnew(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = swm_malloc(desc->sizeof_message);
    if (m == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    protobuf_c_message_init(desc, m);
    return m;
}

static char *xstrdup(const char *s)
{
    char *d = swm_strdup(s);
    if (d == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return d;
}

static Swarmc__Node *make_node(size_t i)
{
    char id[32];
    snprintf(id, sizeof(id), "node%06zu", i);
    Swarmc__Node *n = xnew(&swarmc__node__descriptor);
    n->id = xstrdup(id);
    n->status = xnew(&swarmc__node_status__descriptor);
    n->status->has_state = 1;
    n->status->state = SWARMC__NODE_STATE__NODE_STATE_READY;
    n->description = xnew(&swarmc__node_description__descriptor);
    n->description->hostname = xstrdup(id);
    n->description->resources = xnew(&swarmc__resources__descriptor);
    n->description->resources->nano_cpus = INT64_C(64) * 1000000000;
    n->description->resources->memory_bytes = INT64_C(256) << 30;
    n->spec = xnew(&swarmc__node_spec__descriptor);
    n->spec->annotations = xnew(&swarmc__annotations__descriptor);
    n->spec->annotations->n_labels = 1;
    n->spec->annotations->labels = swm_malloc(sizeof(Swarmc__KeyValue *));
    n->spec->annotations->labels[0] = xnew(&swarmc__key_value__descriptor);
    n->spec->annotations->labels[0]->key = xstrdup("zone");
    n->spec->annotations->labels[0]->value = xstrdup(i % 2 ? "a" : "b");
    return n;
}

static Swarmc__Task *make_task(size_t i, size_t service, const char *node)
{
    char id[32], svc[32];
    snprintf(id, sizeof(id), "task%08zu", i);
    snprintf(svc, sizeof(svc), "service%04zu", service);
    Swarmc__Task *t = xnew(&swarmc__task__descriptor);
    t->id = xstrdup(id);
    t->service_id = xstrdup(svc);
    t->slot = i + 1;
    t->spec_version = 1;
    t->desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    t->node_id = node != NULL ? xstrdup(node) : NULL;
    t->status = xnew(&swarmc__task_status__descriptor);
    t->status->state = node != NULL ? SWARMC__TASK_STATE__TASK_STATE_RUNNING
                                    : SWARMC__TASK_STATE__TASK_STATE_PENDING;
    t->spec = xnew(&swarmc__task_spec__descriptor);
    t->spec->resources = xnew(&swarmc__resource_requirements__descriptor);
    t->spec->resources->reservations = xnew(&swarmc__resources__descriptor);
    t->spec->resources->reservations->nano_cpus = 10000000;   /* 0.01 CPU */
    t->spec->resources->reservations->memory_bytes = 1 << 20; /* 1 MiB */
    t->spec->placement = xnew(&swarmc__placement__descriptor);
    t->spec->placement->n_constraints = 1;
    t->spec->placement->constraints = swm_malloc(sizeof(char *));
    t->spec->placement->constraints[0] = xstrdup("node.labels.zone!=c");
    return t;
}

static size_t arg(int argc, char **argv, int i, size_t def)
{
    return argc > i ? (size_t)strtoull(argv[i], NULL, 10) : def;
}

int main(int argc, char **argv)
{
    size_t n_nodes = arg(argc, argv, 1, 1000), n_tasks = arg(argc, argv, 2, 100000);
    size_t n_services = arg(argc, argv, 3, 100), n_existing = n_nodes / 10 * 20;
    Swarmc__Node **nodes = swm_malloc(n_nodes * sizeof(*nodes));
    Swarmc__Task **pending = swm_malloc(n_tasks * sizeof(*pending));
    Swarmc__Task **existing = swm_malloc((n_existing ? n_existing : 1) * sizeof(*existing));
    if (nodes == NULL || pending == NULL || existing == NULL)
        return 1;
    for (size_t i = 0; i < n_nodes; i++)
        nodes[i] = make_node(i);
    for (size_t i = 0; i < n_existing; i++)
        existing[i] = make_task(n_tasks + i, i % n_services, nodes[i / 20]->id);
    for (size_t i = 0; i < n_tasks; i++)
        pending[i] = make_task(i, i % n_services, NULL);

    struct sched_result res;
    struct swm_err err = {0};
    int64_t t0 = swm_mono_ns();
    int rc =
        sched_run(nodes, n_nodes, existing, n_existing, pending, n_tasks, swm_now_ns(), &res, &err);
    int64_t t1 = swm_mono_ns();
    if (rc < 0) {
        fprintf(stderr, "sched_run: %s\n", err.msg);
        return 1;
    }
    printf("sched_run: %zu nodes, %zu pending tasks (%zu services), %zu existing: "
           "%zu assigned in %.3f s\n",
           n_nodes, n_tasks, n_services, n_existing, res.n_assigned, (double)(t1 - t0) / 1e9);
    sched_result_free(&res);
    for (size_t i = 0; i < n_nodes; i++)
        proto_free(nodes[i]);
    for (size_t i = 0; i < n_tasks; i++)
        proto_free(pending[i]);
    for (size_t i = 0; i < n_existing; i++)
        proto_free(existing[i]);
    swm_free(nodes);
    swm_free(pending);
    swm_free(existing);
    return 0;
}
