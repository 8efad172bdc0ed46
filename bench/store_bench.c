/* Store benchmark: the scheduler's shape of work on 100,000 tasks. Creates
 * them in batches of 1000 (one fsynced transaction per batch, as the log
 * commits them), lists them, looks them up by index, and assigns each to a
 * node with an update. Prints numbers; asserts nothing (DESIGN.md §12).
 *
 *   store_bench [tasks] [batch] [dir]
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/fs.h"
#include "store/store.h"

#define NODES 100

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The parts of a task every action shares: apply only reads its entries,
 * so the benchmark builds them on the stack and reuses them. */
struct task_template {
    Swarmc__ContainerSpec container;
    Swarmc__TaskSpec spec;
    Swarmc__TaskStatus status;
    char *env[2];
};

static void template_init(struct task_template *t)
{
    swarmc__container_spec__init(&t->container);
    t->container.image = "registry.example.com/shop/web:1.4.2@sha256:"
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    t->env[0] = "LOG_LEVEL=info";
    t->env[1] = "LISTEN=0.0.0.0:8080";
    t->container.env = t->env;
    t->container.n_env = 2;
    swarmc__task_spec__init(&t->spec);
    t->spec.container = &t->container;
    swarmc__task_status__init(&t->status);
    t->status.has_state = 1;
    t->status.state = SWARMC__TASK_STATE__TASK_STATE_PENDING;
    t->status.has_timestamp = 1;
    t->status.timestamp = 1700000000000000000LL;
}

/* One batch: `n` entries of one action each, built in caller storage. */
struct batch {
    Swarmc__Task *tasks;
    Swarmc__Meta *metas;
    Swarmc__StoreAction *actions;
    Swarmc__StoreAction **action_ptrs;
    Swarmc__StoreEntry *entries;
    Swarmc__StoreEntry **entry_ptrs;
    char (*ids)[32];
    char (*nodes)[32];
    struct store_apply_result *results;
};

static int batch_alloc(struct batch *b, size_t n)
{
    b->tasks = calloc(n, sizeof(*b->tasks));
    b->metas = calloc(n, sizeof(*b->metas));
    b->actions = calloc(n, sizeof(*b->actions));
    b->action_ptrs = calloc(n, sizeof(*b->action_ptrs));
    b->entries = calloc(n, sizeof(*b->entries));
    b->entry_ptrs = calloc(n, sizeof(*b->entry_ptrs));
    b->ids = calloc(n, sizeof(*b->ids));
    b->nodes = calloc(n, sizeof(*b->nodes));
    b->results = calloc(n, sizeof(*b->results));
    return b->tasks && b->metas && b->actions && b->action_ptrs && b->entries && b->entry_ptrs &&
                   b->ids && b->nodes && b->results
               ? 0
               : -1;
}

static void batch_free(struct batch *b)
{
    free(b->tasks);
    free(b->metas);
    free(b->actions);
    free(b->action_ptrs);
    free(b->entries);
    free(b->entry_ptrs);
    free(b->ids);
    free(b->nodes);
    free(b->results);
}

/* Fills entry i with a create (version 0) or an update assigning a node. */
static void batch_set(struct batch *b, size_t i, struct task_template *t, size_t task_no,
                      uint64_t version)
{
    snprintf(b->ids[i], sizeof(b->ids[i]), "task%020zu", task_no);
    snprintf(b->nodes[i], sizeof(b->nodes[i]), "node%03zu", task_no % NODES);
    swarmc__meta__init(&b->metas[i]);
    b->metas[i].has_version = version != 0;
    b->metas[i].version = version;
    b->metas[i].has_created_at = 1;
    b->metas[i].created_at = 1700000000000000000LL;
    Swarmc__Task *task = &b->tasks[i];
    swarmc__task__init(task);
    task->id = b->ids[i];
    task->meta = &b->metas[i];
    task->spec = &t->spec;
    task->service_id = "service0000000000000000001";
    task->has_slot = 1;
    task->slot = task_no + 1;
    task->status = &t->status;
    task->has_desired_state = 1;
    task->desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    task->node_id = version != 0 ? b->nodes[i] : NULL;
    swarmc__store_action__init(&b->actions[i]);
    b->actions[i].has_kind = 1;
    b->actions[i].kind = version != 0 ? SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE
                                      : SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE;
    b->actions[i].target_case = SWARMC__STORE_ACTION__TARGET_TASK;
    b->actions[i].task = task;
    b->action_ptrs[i] = &b->actions[i];
    swarmc__store_entry__init(&b->entries[i]);
    b->entries[i].n_actions = 1;
    b->entries[i].actions = &b->action_ptrs[i];
    b->entry_ptrs[i] = &b->entries[i];
}

static int apply(struct store *s, struct batch *b, size_t n)
{
    struct swm_err err = {0};
    if (store_apply_entries(s, store_applied_index(s) + 1, b->entry_ptrs, n, b->results, &err) !=
        0) {
        fprintf(stderr, "apply: %s\n", err.msg);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (b->results[i].err.code != 0) {
            fprintf(stderr, "entry %zu: %s\n", i, b->results[i].err.msg);
            return -1;
        }
    }
    return 0;
}

static int create_all(struct store *s, struct batch *b, struct task_template *t, size_t tasks,
                      size_t batch)
{
    double start = now();
    for (size_t done = 0; done < tasks; done += batch) {
        size_t n = tasks - done < batch ? tasks - done : batch;
        for (size_t i = 0; i < n; i++)
            batch_set(b, i, t, done + i, 0);
        if (apply(s, b, n) < 0)
            return -1;
    }
    double secs = now() - start;
    printf("create %zu tasks, %zu per transaction: %.3f s, %.0f tasks/s\n", tasks, batch, secs,
           (double)tasks / secs);
    return 0;
}

/* The scheduler's loop: read every task, then assign each to a node with a
 * versioned update, in batches. */
static int assign_all(struct store *s, struct batch *b, struct task_template *t, size_t tasks,
                      size_t batch)
{
    struct store_read *r;
    Swarmc__Task **list;
    size_t n_list;
    if (store_read_begin(s, &r, NULL) != 0 || store_list_tasks(r, &list, &n_list) != 0)
        return -1;
    store_read_end(r);
    double start = now();
    for (size_t done = 0; done < n_list; done += batch) {
        size_t n = n_list - done < batch ? n_list - done : batch;
        for (size_t i = 0; i < n; i++) {
            const Swarmc__Task *old = list[done + i];
            batch_set(b, i, t, (size_t)(old->slot - 1), old->meta->version);
        }
        if (apply(s, b, n) < 0)
            return -1;
    }
    double secs = now() - start;
    printf("update %zu tasks (assign node), %zu per transaction: %.3f s, %.0f tasks/s\n", n_list,
           batch, secs, (double)n_list / secs);
    store_free_list(list, n_list);
    return 0;
}

static int time_reads(struct store *s)
{
    struct store_read *r;
    Swarmc__Task **list;
    size_t n;
    if (store_read_begin(s, &r, NULL) != 0)
        return -1;
    double start = now();
    if (store_list_tasks(r, &list, &n) != 0)
        return -1;
    double secs = now() - start;
    printf("list_tasks: %zu tasks in %.3f s (%.2f us/task)\n", n, secs, secs * 1e6 / (double)n);
    store_free_list(list, n);

    start = now();
    size_t total = 0;
    for (int i = 0; i < NODES; i++) {
        char node[32];
        snprintf(node, sizeof(node), "node%03d", i);
        if (store_list_tasks_by_node(r, node, &list, &n) != 0)
            return -1;
        total += n;
        store_free_list(list, n);
    }
    secs = now() - start;
    printf("list_tasks_by_node x%d: %zu tasks in %.3f s\n", NODES, total, secs);

    start = now();
    if (store_list_tasks_by_desired_state(r, SWARMC__TASK_STATE__TASK_STATE_RUNNING, &list, &n) !=
        0)
        return -1;
    secs = now() - start;
    printf("list_tasks_by_desired_state(running): %zu tasks in %.3f s\n", n, secs);
    store_free_list(list, n);
    store_read_end(r);
    return 0;
}

int main(int argc, char **argv)
{
    size_t tasks = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t batch = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    char tmpl[] = "/var/tmp/swarmc-store-bench-XXXXXX";
    const char *dir = argc > 3 ? argv[3] : mkdtemp(tmpl);
    if (dir == NULL || tasks == 0 || batch == 0) {
        fprintf(stderr, "usage: store_bench [tasks] [batch] [dir]\n");
        return 2;
    }
    struct task_template t;
    template_init(&t);
    struct batch b;
    struct store *s = NULL;
    struct swm_err err = {0};
    int rc = 1;
    if (batch_alloc(&b, batch) < 0)
        goto out;
    if (store_open(dir, &s, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    if (create_all(s, &b, &t, tasks, batch) == 0 && time_reads(s) == 0 &&
        assign_all(s, &b, &t, tasks, batch) == 0 && time_reads(s) == 0)
        rc = 0;
out:
    store_close(s);
    batch_free(&b);
    if (argc <= 3 && dir != NULL)
        swm_remove_tree(dir);
    return rc;
}
