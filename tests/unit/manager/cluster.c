#include "cluster.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

void cfx_setup(struct cfx *f)
{
    memset(f, 0, sizeof(*f));
    f->dir = fixture_tmpdir();
    f->s = fixture_open(f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);

    Swarmc__Node *node = obj_node(CFX_NODE, 4 * OBJ_CPU, 8192 * OBJ_MIB);
    obj_node_role(node, SWARMC__NODE_ROLE__NODE_ROLE_MANAGER);
    obj_node_hostname(node, "node-1");
    obj_node_availability(node, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE);
    Swarmc__StoreEntry *e = fixture_entry();
    fixture_add(e, CREATE, fixture_cluster(CFX_CLUSTER, 0));
    fixture_add(e, CREATE, node);
    assert_int_equal(fixture_apply1(f->s, e), 0);
}

void cfx_close_log(struct cfx *f)
{
    raft_node_close(f->raft);
    f->raft = NULL;
    f->log = NULL;
}

void cfx_teardown(struct cfx *f)
{
    cfx_close_log(f);
    /* Whatever the test opened must be closed by now: only closing handles
     * and a write in flight may remain, and they finish quickly. */
    uint64_t deadline = uv_hrtime() + (uint64_t)CFX_TIMEOUT_MS * 1000000;
    while (uv_run(&f->loop, UV_RUN_ONCE) != 0) {
        if (uv_hrtime() > deadline)
            fail_msg("the loop still has active handles at teardown");
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->s);
    fixture_rmdir(f->dir);
    memset(f, 0, sizeof(*f));
}

static bool log_settled(void *arg)
{
    struct cfx *f = arg;
    const struct raft *core = raft_node_core(f->raft);
    return raft_node_is_leader(f->raft) && store_applied_index(f->s) >= raft_last_index(core);
}

void cfx_open_log(struct cfx *f)
{
    /* One voter: the store's directly applied state becomes its first
     * snapshot, as for a store written before raft. */
    struct raft_server self = {.id = 1, .role = RAFT_VOTER};
    struct raft_configuration conf = {.servers = &self, .n_servers = 1};
    struct raft_node_options o = {.id = 1, .bootstrap = &conf};
    struct swm_err err = {0};
    if (raft_node_open(&f->loop, f->s, &o, NULL, &f->raft, &err) != 0)
        fail_msg("raft_node_open: %s", err.msg);
    f->log = raft_node_log(f->raft);
    /* Tests count the entries they cause: wait for the leader's no-op. */
    cfx_run_until(f, log_settled, f, "the raft node to lead");
    f->base_index = store_applied_index(f->s);
}

struct written {
    int done, status, code;
};

static void on_written(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct written *w = arg;
    w->done = 1;
    w->status = status;
    w->code = err->code;
}

static bool written_done(void *arg)
{
    return ((struct written *)arg)->done;
}

int cfx_write(struct cfx *f, Swarmc__StoreEntry *entry)
{
    if (f->log == NULL)
        return fixture_apply1(f->s, entry);
    struct written w = {0};
    assert_int_equal(store_log_propose(f->log, entry, on_written, &w), 0);
    cfx_run_until(f, written_done, &w, "a proposal to commit");
    assert_int_equal(w.status, 0);
    return w.code;
}

int cfx_write1(struct cfx *f, Swarmc__StoreAction__Kind kind, void *object)
{
    return cfx_write(f, fixture_entry1(kind, object));
}

void cfx_barrier(struct cfx *f)
{
    struct store_read *r = NULL;
    Swarmc__Cluster *c = NULL;
    assert_int_equal(store_read_begin(f->s, &r, NULL), 0);
    assert_int_equal(store_get_cluster(r, &c), 0);
    store_read_end(r);
    assert_int_equal(cfx_write1(f, UPDATE, c), 0);
}

void cfx_run_until(struct cfx *f, bool (*cond)(void *arg), void *arg, const char *what)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)CFX_TIMEOUT_MS * 1000000;
    while (!cond(arg)) {
        if (uv_hrtime() > deadline)
            fail_msg("timed out waiting for %s", what);
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && !cond(arg))
            fail_msg("the loop ran out of work waiting for %s", what);
    }
}

void cfx_run_for(struct cfx *f, uint64_t ms)
{
    uint64_t until = uv_hrtime() + ms * 1000000;
    /* A loop without work returns at once: nothing can happen any more. */
    while (uv_hrtime() < until && uv_run(&f->loop, UV_RUN_ONCE) != 0)
        ;
}

static struct store_read *read_begin(struct cfx *f)
{
    struct store_read *r = NULL;
    struct swm_err err = {0};
    if (store_read_begin(f->s, &r, &err) != 0)
        fail_msg("store_read_begin: %s", err.msg);
    return r;
}

Swarmc__Task *cfx_task(struct cfx *f, const char *id)
{
    struct store_read *r = read_begin(f);
    Swarmc__Task *t = NULL;
    int rc = store_get_task(r, id, &t);
    store_read_end(r);
    assert_true(rc == 0 || rc == SWM_ENOTFOUND);
    return rc == 0 ? t : NULL;
}

Swarmc__Node *cfx_node(struct cfx *f, const char *id)
{
    struct store_read *r = read_begin(f);
    Swarmc__Node *n = NULL;
    int rc = store_get_node(r, id, &n);
    store_read_end(r);
    assert_true(rc == 0 || rc == SWM_ENOTFOUND);
    return rc == 0 ? n : NULL;
}

Swarmc__Service *cfx_service(struct cfx *f, const char *id)
{
    struct store_read *r = read_begin(f);
    Swarmc__Service *svc = NULL;
    int rc = store_get_service(r, id, &svc);
    store_read_end(r);
    assert_true(rc == 0 || rc == SWM_ENOTFOUND);
    return rc == 0 ? svc : NULL;
}

static int by_slot(const void *a, const void *b)
{
    const Swarmc__Task *x = *(Swarmc__Task *const *)a, *y = *(Swarmc__Task *const *)b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return strcmp(x->id, y->id);
}

Swarmc__Task **cfx_tasks(struct cfx *f, size_t *n)
{
    struct store_read *r = read_begin(f);
    Swarmc__Task **tasks = NULL;
    assert_int_equal(store_list_tasks(r, &tasks, n), 0);
    store_read_end(r);
    qsort(tasks, *n, sizeof(*tasks), by_slot);
    return tasks;
}

size_t cfx_count(struct cfx *f, int state, int desired)
{
    size_t n = 0, count = 0;
    Swarmc__Task **tasks = cfx_tasks(f, &n);
    for (size_t i = 0; i < n; i++) {
        int s = tasks[i]->status != NULL ? (int)tasks[i]->status->state : 0;
        count +=
            (state < 0 || s == state) && (desired < 0 || (int)tasks[i]->desired_state == desired);
    }
    store_free_list(tasks, n);
    return count;
}

int cfx_set_state(struct cfx *f, const char *task_id, Swarmc__TaskState state, int64_t ts)
{
    Swarmc__Task *t = cfx_task(f, task_id);
    assert_non_null(t);
    if (t->status == NULL)
        t->status = obj_new(&swarmc__task_status__descriptor);
    t->status->has_state = 1;
    t->status->state = state;
    if (ts != 0) {
        t->status->has_timestamp = 1;
        t->status->timestamp = ts;
    }
    return cfx_write1(f, UPDATE, t);
}

int cfx_set_desired(struct cfx *f, const char *task_id, Swarmc__TaskState desired)
{
    Swarmc__Task *t = cfx_task(f, task_id);
    assert_non_null(t);
    t->has_desired_state = 1;
    t->desired_state = desired;
    return cfx_write1(f, UPDATE, t);
}
