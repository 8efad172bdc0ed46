/* Scheduler throughput through the real store: the manager's scheduling
 * step end to end on 1,000 nodes and 100,000 pending tasks in a temp LMDB
 * store (DESIGN.md §12). SwarmKit's scheduler benchmark needs about 14 s for
 * this shape; the target is under 1.5 s for read + schedule + write.
 *
 * Setup (not timed): 1,000 READY, ACTIVE nodes with capacity and a label,
 * 100 services, 100,000 PENDING tasks spread over them (each with a CPU and
 * memory reservation and a constraint every node satisfies, so every filter
 * runs), and 2,000 RUNNING tasks on 10% of the nodes, as in
 * scheduler_bench. Everything is written through store_apply_entries in
 * batches, as the log commits them.
 *
 * Timed, as one reconcile pass does it (manager/reconcile.c), ending with
 * freeing what the pass decoded:
 *   read    manager_view_load: nodes, services and every task decoded from
 *           one snapshot, plus the task id map. A first, separately
 *           reported read maps the fresh store in (page faults); the timed
 *           one is a running manager's;
 *   select  the pending tasks;
 *   sched   sched_run;
 *   write   each assignment applied to its task (node_id, status ASSIGNED),
 *           then the updates written with store_apply_entries: `batch`
 *           tasks per transaction (one fsync each), one entry per
 *           transaction. batch 0 writes everything as ONE entry built by
 *           manager_view_take_entry, which is what a reconcile pass proposes.
 *           A watcher is registered, as in the daemon, so each write also
 *           builds its change event.
 *
 * Prints numbers; asserts nothing.
 *
 *   scheduler_store_bench [nodes [tasks [services [batch [dir]]]]]
 *   NO_WATCHER=1 in the environment: no watcher (no change events built)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "common/id.h"
#include "common/timeutil.h"
#include "manager/scheduler/scheduler.h"
#include "manager/view.h"
#include "store/store.h"

static const int64_t base_ns = INT64_C(1700000000000000000);

static double secs_since(int64_t t0)
{
    return (double)(swm_mono_ns() - t0) / 1e9;
}

static size_t arg(int argc, char **argv, int i, size_t def)
{
    return argc > i ? (size_t)strtoull(argv[i], NULL, 10) : def;
}

/* ------------------------------------------------------------ writing -- */

/* Up to `cap` actions of one entry, in caller storage; objects borrowed. */
struct batch {
    Swarmc__StoreAction *actions;
    Swarmc__StoreAction **ptrs;
    size_t n, cap;
};

static int batch_init(struct batch *b, size_t cap)
{
    b->actions = swm_calloc(cap, sizeof(*b->actions));
    b->ptrs = swm_calloc(cap, sizeof(*b->ptrs));
    b->n = 0;
    b->cap = cap;
    return b->actions != NULL && b->ptrs != NULL ? 0 : -ENOMEM;
}

static void batch_free(struct batch *b)
{
    swm_free(b->actions);
    swm_free(b->ptrs);
}

static void batch_add(struct batch *b, Swarmc__StoreAction__Kind kind,
                      Swarmc__StoreAction__TargetCase target, void *object)
{
    Swarmc__StoreAction *a = &b->actions[b->n];
    swarmc__store_action__init(a);
    a->has_kind = 1;
    a->kind = kind;
    a->target_case = target;
    switch (target) {
    case SWARMC__STORE_ACTION__TARGET_NODE:
        a->node = object;
        break;
    case SWARMC__STORE_ACTION__TARGET_SERVICE:
        a->service = object;
        break;
    default:
        a->task = object;
        break;
    }
    b->ptrs[b->n] = a;
    b->n++;
}

/* The daemon's store has watchers (the manager and the dispatcher), so
 * every write also decodes what it stored into a change event; the pass
 * here pays the same with this one, and delivers (frees) the events after
 * each transaction as the loop thread would. */
static void on_events(void *arg, const struct store_event *events, size_t n)
{
    size_t *count = arg;
    *count += n;
}

/* Applies `n` entries as one transaction; any entry failure is fatal here. */
static int apply_entries(struct store *s, Swarmc__StoreEntry **entries, size_t n)
{
    struct store_apply_result *results = swm_calloc(n, sizeof(*results));
    struct swm_err err = {0};
    int rc = results == NULL ? -ENOMEM : 0;
    if (rc == 0)
        rc = store_apply_entries(s, store_applied_index(s) + 1, entries, n, results, &err);
    if (rc < 0)
        fprintf(stderr, "store_apply_entries: %s\n", err.code != 0 ? err.msg : swm_strerror(rc));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (results[i].err.code != 0) {
            fprintf(stderr, "entry %zu: %s\n", i, results[i].err.msg);
            rc = results[i].err.code;
        }
    }
    swm_free(results);
    store_deliver_events(s);
    return rc;
}

/* Writes the batch's actions as one entry in one transaction, empties it. */
static int batch_flush(struct store *s, struct batch *b)
{
    if (b->n == 0)
        return 0;
    Swarmc__StoreEntry entry = SWARMC__STORE_ENTRY__INIT;
    Swarmc__StoreEntry *e = &entry;
    entry.actions = b->ptrs;
    entry.n_actions = b->n;
    int rc = apply_entries(s, &e, 1);
    b->n = 0;
    return rc;
}

/* -------------------------------------------------------------- setup -- */

/* What the objects of one service share; tasks borrow from it. */
struct service_fixture {
    char id[SWM_ID_LEN + 1], name[32];
    char *args[2], *env[2], *constraints[1];
    Swarmc__ContainerSpec container;
    Swarmc__Resources reservations;
    Swarmc__ResourceRequirements resources;
    Swarmc__Placement placement;
    Swarmc__TaskSpec task_spec;
    Swarmc__Annotations annotations;
    Swarmc__ServiceSpec spec;
    Swarmc__Meta meta;
    Swarmc__Service service;
};

static void service_fixture_init(struct service_fixture *f, size_t i, uint64_t replicas)
{
    memset(f, 0, sizeof(*f));
    swm_id_new(f->id);
    snprintf(f->name, sizeof(f->name), "svc-%03zu", i);
    swarmc__container_spec__init(&f->container);
    f->container.image = "busybox:latest@sha256:"
                         "687cd844911a8808359cf64aa457c2e12c21324b5ab5141dad28b61ac8d5a631";
    f->args[0] = "sleep";
    f->args[1] = "100000";
    f->container.args = f->args;
    f->container.n_args = 2;
    f->env[0] = "LOG_LEVEL=info";
    f->env[1] = "LISTEN=0.0.0.0:8080";
    f->container.env = f->env;
    f->container.n_env = 2;
    swarmc__resources__init(&f->reservations);
    f->reservations.has_nano_cpus = f->reservations.has_memory_bytes = 1;
    f->reservations.nano_cpus = 10000000;   /* 0.01 CPU */
    f->reservations.memory_bytes = 1 << 20; /* 1 MiB */
    swarmc__resource_requirements__init(&f->resources);
    f->resources.reservations = &f->reservations;
    swarmc__placement__init(&f->placement);
    f->constraints[0] = "node.labels.zone!=c";
    f->placement.constraints = f->constraints;
    f->placement.n_constraints = 1;
    swarmc__task_spec__init(&f->task_spec);
    f->task_spec.container = &f->container;
    f->task_spec.resources = &f->resources;
    f->task_spec.placement = &f->placement;
    swarmc__annotations__init(&f->annotations);
    f->annotations.name = f->name;
    swarmc__service_spec__init(&f->spec);
    f->spec.annotations = &f->annotations;
    f->spec.task = &f->task_spec;
    f->spec.has_replicas = 1;
    f->spec.replicas = replicas;
    swarmc__meta__init(&f->meta);
    f->meta.has_created_at = f->meta.has_updated_at = 1;
    f->meta.created_at = f->meta.updated_at = base_ns;
    swarmc__service__init(&f->service);
    f->service.id = f->id;
    f->service.meta = &f->meta;
    f->service.spec = &f->spec;
    f->service.has_spec_version = 1;
    f->service.spec_version = 1;
}

/* One node in caller storage (strings and sub-messages inside it). */
struct node_fixture {
    char id[SWM_ID_LEN + 1], hostname[32], addr[32];
    Swarmc__KeyValue label, *labels[1];
    Swarmc__Annotations annotations;
    Swarmc__NodeSpec spec;
    Swarmc__Platform platform;
    Swarmc__Resources resources;
    Swarmc__NodeDescription description;
    Swarmc__NodeStatus status;
    Swarmc__Meta meta;
    Swarmc__Node node;
};

static void node_fixture_init(struct node_fixture *f, size_t i)
{
    memset(f, 0, sizeof(*f));
    swm_id_new(f->id);
    snprintf(f->hostname, sizeof(f->hostname), "worker-%04zu", i);
    snprintf(f->addr, sizeof(f->addr), "10.%zu.%zu.%zu", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    swarmc__key_value__init(&f->label);
    f->label.key = "zone";
    f->label.value = i % 2 ? "a" : "b";
    f->labels[0] = &f->label;
    swarmc__annotations__init(&f->annotations);
    f->annotations.labels = f->labels;
    f->annotations.n_labels = 1;
    swarmc__node_spec__init(&f->spec);
    f->spec.annotations = &f->annotations;
    f->spec.has_availability = f->spec.has_desired_role = 1;
    f->spec.availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
    f->spec.desired_role = SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    swarmc__platform__init(&f->platform);
    f->platform.os = "linux";
    f->platform.architecture = "amd64";
    swarmc__resources__init(&f->resources);
    f->resources.has_nano_cpus = f->resources.has_memory_bytes = 1;
    f->resources.nano_cpus = INT64_C(64) * 1000000000;
    f->resources.memory_bytes = INT64_C(256) << 30;
    swarmc__node_description__init(&f->description);
    f->description.hostname = f->hostname;
    f->description.platform = &f->platform;
    f->description.resources = &f->resources;
    f->description.engine_version = "swarmc 0.1.0";
    swarmc__node_status__init(&f->status);
    f->status.has_state = 1;
    f->status.state = SWARMC__NODE_STATE__NODE_STATE_READY;
    f->status.addr = f->addr;
    swarmc__meta__init(&f->meta);
    f->meta.has_created_at = f->meta.has_updated_at = 1;
    f->meta.created_at = f->meta.updated_at = base_ns;
    swarmc__node__init(&f->node);
    f->node.id = f->id;
    f->node.meta = &f->meta;
    f->node.spec = &f->spec;
    f->node.description = &f->description;
    f->node.status = &f->status;
    f->node.has_role = 1;
    f->node.role = SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
}

/* One task in caller storage, as the orchestrator and allocator leave it:
 * PENDING with no node, or RUNNING on `node_id`. */
struct task_fixture {
    char id[SWM_ID_LEN + 1], name[48];
    Swarmc__Annotations annotations;
    Swarmc__TaskStatus status;
    Swarmc__Meta meta;
    Swarmc__Task task;
};

static void task_fixture_init(struct task_fixture *f, struct service_fixture *svc, uint64_t slot,
                              const char *node_id)
{
    swm_id_new(f->id);
    snprintf(f->name, sizeof(f->name), "%s.%" PRIu64, svc->name, slot);
    swarmc__annotations__init(&f->annotations);
    f->annotations.name = f->name;
    swarmc__task_status__init(&f->status);
    f->status.has_state = f->status.has_timestamp = 1;
    f->status.state = node_id != NULL ? SWARMC__TASK_STATE__TASK_STATE_RUNNING
                                      : SWARMC__TASK_STATE__TASK_STATE_PENDING;
    f->status.timestamp = base_ns;
    f->status.message = node_id != NULL ? "started" : "pending task scheduling";
    f->status.err = "";
    swarmc__meta__init(&f->meta);
    f->meta.has_created_at = f->meta.has_updated_at = 1;
    f->meta.created_at = f->meta.updated_at = base_ns;
    swarmc__task__init(&f->task);
    f->task.id = f->id;
    f->task.meta = &f->meta;
    f->task.spec = &svc->task_spec;
    f->task.has_spec_version = 1;
    f->task.spec_version = 1;
    f->task.service_id = svc->id;
    f->task.has_slot = 1;
    f->task.slot = slot;
    f->task.node_id = (char *)node_id;
    f->task.annotations = &f->annotations;
    f->task.service_annotations = &svc->annotations;
    f->task.status = &f->status;
    f->task.has_desired_state = 1;
    f->task.desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
}

static int setup(struct store *s, size_t n_nodes, size_t n_tasks, size_t n_services,
                 size_t n_existing)
{
    const size_t chunk = 1000;
    struct service_fixture *svcs = swm_calloc(n_services, sizeof(*svcs));
    struct node_fixture *nodes = swm_calloc(n_nodes, sizeof(*nodes));
    struct task_fixture *tasks = swm_calloc(chunk, sizeof(*tasks));
    struct batch b = {0};
    int rc = svcs == NULL || nodes == NULL || tasks == NULL ? -ENOMEM : batch_init(&b, chunk);
    const Swarmc__StoreAction__Kind create = SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE;

    for (size_t i = 0; rc == 0 && i < n_nodes; i++) {
        node_fixture_init(&nodes[i], i);
        batch_add(&b, create, SWARMC__STORE_ACTION__TARGET_NODE, &nodes[i].node);
        if (b.n == chunk)
            rc = batch_flush(s, &b);
    }
    for (size_t i = 0; rc == 0 && i < n_services; i++) {
        service_fixture_init(&svcs[i], i, (n_tasks + n_existing) / n_services);
        batch_add(&b, create, SWARMC__STORE_ACTION__TARGET_SERVICE, &svcs[i].service);
        if (b.n == chunk)
            rc = batch_flush(s, &b);
    }
    if (rc == 0)
        rc = batch_flush(s, &b);
    /* Tasks in chunks of fixtures reused after each flush: the running ones
     * first (20 per node on the first 10% of the nodes), then the pending. */
    for (size_t i = 0; rc == 0 && i < n_existing + n_tasks; i++) {
        size_t service = i % n_services;
        const char *node = i < n_existing ? nodes[i / 20].id : NULL;
        task_fixture_init(&tasks[b.n], &svcs[service], i / n_services + 1, node);
        batch_add(&b, create, SWARMC__STORE_ACTION__TARGET_TASK, &tasks[b.n].task);
        if (b.n == chunk)
            rc = batch_flush(s, &b);
    }
    if (rc == 0)
        rc = batch_flush(s, &b);
    batch_free(&b);
    swm_free(tasks);
    swm_free(nodes);
    swm_free(svcs);
    return rc;
}

/* ---------------------------------------------------------- the pass -- */

static int is_pending(const Swarmc__Task *t)
{
    return t->status != NULL && t->status->state == SWARMC__TASK_STATE__TASK_STATE_PENDING &&
           t->desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
}

/* What reconcile.c's apply_decision does for a placed task. */
static int assign(Swarmc__Task *t, const struct sched_decision *d, int64_t now_ns)
{
    char *node_id = swm_strdup(d->node->id);
    char *msg = swm_strdup(d->message);
    char *e = swm_strdup("");
    if (node_id == NULL || msg == NULL || e == NULL) {
        swm_free(node_id);
        swm_free(msg);
        swm_free(e);
        return -ENOMEM;
    }
    swm_free(t->node_id);
    swm_free(t->status->message);
    swm_free(t->status->err);
    t->node_id = node_id;
    t->status->message = msg;
    t->status->err = e;
    t->status->has_state = t->status->has_timestamp = 1;
    t->status->state = SWARMC__TASK_STATE__TASK_STATE_ASSIGNED;
    t->status->timestamp = now_ns;
    t->meta->has_updated_at = 1;
    t->meta->updated_at = now_ns;
    return 0;
}

/* Writes the assigned tasks: `batch` per transaction, or (batch 0) the one
 * entry a reconcile pass builds. */
static int write_assignments(struct store *s, struct manager_view *v,
                             const struct sched_result *res, size_t batch, double *build_secs)
{
    int64_t now_ns = swm_now_ns();
    int rc = 0;
    *build_secs = 0;
    if (batch == 0) {
        for (size_t i = 0; rc == 0 && i < res->n; i++) {
            const struct sched_decision *d = &res->decisions[i];
            if (d->node == NULL)
                continue;
            rc = assign((Swarmc__Task *)d->task, d, now_ns);
            manager_view_touch(v, d->task->id);
        }
        Swarmc__StoreEntry *entry = NULL;
        int64_t t0 = swm_mono_ns();
        if (rc == 0)
            rc = manager_view_take_entry(v, &entry);
        *build_secs = secs_since(t0);
        if (rc == 0 && entry != NULL)
            rc = apply_entries(s, &entry, 1);
        proto_free(entry);
        return rc;
    }
    struct batch b = {0};
    rc = batch_init(&b, batch);
    for (size_t i = 0; rc == 0 && i < res->n; i++) {
        const struct sched_decision *d = &res->decisions[i];
        if (d->node == NULL)
            continue;
        rc = assign((Swarmc__Task *)d->task, d, now_ns);
        if (rc == 0)
            batch_add(&b, SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE,
                      SWARMC__STORE_ACTION__TARGET_TASK, (void *)d->task);
        if (rc == 0 && b.n == batch)
            rc = batch_flush(s, &b);
    }
    if (rc == 0)
        rc = batch_flush(s, &b);
    batch_free(&b);
    return rc;
}

/* Untimed check: every task now sits on a node. */
static int count_placed(struct store *s, const struct manager_view *v, size_t *placed)
{
    struct store_read *r;
    struct swm_err err = {0};
    *placed = 0;
    if (store_read_begin(s, &r, &err) != 0)
        return -1;
    for (size_t i = 0; i < v->n_nodes; i++) {
        Swarmc__Task **list;
        size_t n;
        if (store_list_tasks_by_node(r, v->nodes[i]->id, &list, &n) != 0) {
            store_read_end(r);
            return -1;
        }
        *placed += n;
        store_free_list(list, n);
    }
    store_read_end(r);
    return 0;
}

static long long file_kib(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (long long)st.st_blocks / 2 : -1;
}

int main(int argc, char **argv)
{
    size_t n_nodes = arg(argc, argv, 1, 1000), n_tasks = arg(argc, argv, 2, 100000);
    size_t n_services = arg(argc, argv, 3, 100), batch = arg(argc, argv, 4, 1000);
    size_t n_existing = n_nodes / 10 * 20;
    char tmpl[] = "/var/tmp/swarmc-sched-store-bench-XXXXXX";
    const char *dir = argc > 5 ? argv[5] : mkdtemp(tmpl);
    if (dir == NULL || n_nodes == 0 || n_tasks == 0 || n_services == 0) {
        fprintf(stderr, "usage: scheduler_store_bench [nodes [tasks [services [batch [dir]]]]]\n"
                        "  batch 0 = one entry holding every assignment (a reconcile pass)\n");
        return 2;
    }
    struct store *s = NULL;
    struct manager_view v = {0};
    struct sched_result res = {0};
    struct swm_err err = {0};
    Swarmc__Task **pending = NULL, **live = NULL;
    int rc = 1;

    if (store_open(dir, &s, &err) != 0) {
        fprintf(stderr, "store_open %s: %s\n", dir, err.msg);
        goto out;
    }
    int64_t t0 = swm_mono_ns();
    if (setup(s, n_nodes, n_tasks, n_services, n_existing) != 0)
        goto out;
    printf("setup (not timed): %zu nodes, %zu services, %zu pending + %zu running tasks "
           "written in %.3f s; store %lld KiB\n",
           n_nodes, n_services, n_tasks, n_existing, secs_since(t0), file_kib(dir, "data.mdb"));

    /* The first read of a freshly written store also pays the page faults
     * of mapping it (LMDB reads through mmap, writes with pwrite); a
     * running manager has its store mapped already. Timed apart. */
    t0 = swm_mono_ns();
    if (manager_view_load(s, &v, &err) != 0) {
        fprintf(stderr, "manager_view_load: %s\n", err.msg);
        goto out;
    }
    double cold_s = secs_since(t0);
    manager_view_free(&v);

    size_t n_events = 0;
    const char *no_watcher = getenv("NO_WATCHER");
    if ((no_watcher == NULL || strcmp(no_watcher, "1") != 0) &&
        store_watch(s, on_events, &n_events) != 0)
        goto out;

    int64_t start = swm_mono_ns();
    t0 = start;
    if (manager_view_load(s, &v, &err) != 0) {
        fprintf(stderr, "manager_view_load: %s\n", err.msg);
        goto out;
    }
    double read_s = secs_since(t0);

    t0 = swm_mono_ns();
    pending = swm_calloc(v.n_tasks + 1, sizeof(*pending));
    live = swm_calloc(v.n_tasks + 1, sizeof(*live));
    if (pending == NULL || live == NULL)
        goto out;
    size_t n_pending = 0;
    for (size_t i = 0; i < v.n_tasks; i++) {
        live[i] = v.tasks[i];
        if (is_pending(v.tasks[i]))
            pending[n_pending++] = v.tasks[i];
    }
    double select_s = secs_since(t0);

    t0 = swm_mono_ns();
    if (sched_run(v.nodes, v.n_nodes, live, v.n_tasks, pending, n_pending, swm_now_ns(), &res,
                  &err) != 0) {
        fprintf(stderr, "sched_run: %s\n", err.msg);
        goto out;
    }
    double sched_s = secs_since(t0);
    size_t n_assigned = res.n_assigned;

    t0 = swm_mono_ns();
    double build_s;
    if (write_assignments(s, &v, &res, batch, &build_s) != 0)
        goto out;
    double write_s = secs_since(t0);
    double pass_s = secs_since(start);

    /* Untimed check (it needs the view's nodes), then the pass's last
     * step: freeing what it decoded, as reconcile.c does. */
    size_t placed = 0;
    int checked = count_placed(s, &v, &placed);
    t0 = swm_mono_ns();
    sched_result_free(&res);
    manager_view_free(&v);
    double free_s = secs_since(t0);
    double total_s = pass_s + free_s;

    size_t tx = batch == 0 ? 1 : (n_assigned + batch - 1) / batch;
    printf("(first read of the fresh store, not in the total: %.3f s)\n", cold_s);
    printf("read     manager_view_load: %zu nodes, %zu services, %zu tasks: %.3f s\n", n_nodes,
           n_services, n_tasks + n_existing, read_s);
    printf("select   %zu pending tasks: %.3f s\n", n_pending, select_s);
    printf("sched    sched_run: %zu of %zu assigned: %.3f s\n", n_assigned, n_pending, sched_s);
    if (batch == 0)
        printf("write    %zu assignments as ONE entry (manager_view_take_entry %.3f s + one "
               "transaction): %.3f s\n",
               n_assigned, build_s, write_s);
    else
        printf("write    %zu assignments, %zu per transaction (%zu fsynced commits): %.3f s\n",
               n_assigned, batch, tx, write_s);
    printf("         (%zu change events delivered to a watcher, as the daemon's store has)\n",
           n_events);
    printf("free     the view and the decisions: %.3f s\n", free_s);
    printf(
        "total    read + select + sched + write + free: %.3f s (SwarmKit ~14 s; target < 1.5 s)\n",
        total_s);
    if (checked == 0)
        printf("check    tasks on nodes after the pass: %zu (expected %zu); store %lld KiB\n",
               placed, n_assigned + n_existing, file_kib(dir, "data.mdb"));
    rc = checked == 0 && placed == n_assigned + n_existing ? 0 : 1;
out:
    sched_result_free(&res);
    swm_free(pending);
    swm_free(live);
    manager_view_free(&v);
    store_close(s);
    if (argc <= 5 && dir != NULL)
        swm_remove_tree(dir);
    return rc;
}
