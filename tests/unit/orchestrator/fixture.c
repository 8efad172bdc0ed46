#include "fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

void fx_init(struct fx *f, Swarmc__Service *svc)
{
    memset(f, 0, sizeof(*f));
    f->svc = svc;
    f->now = T0;
    orch_plan_init(&f->plan);
}

void fx_free(struct fx *f)
{
    for (size_t i = 0; i < f->n_nodes; i++)
        proto_free(f->nodes[i]);
    for (size_t i = 0; i < f->n_tasks; i++)
        proto_free(f->tasks[i]);
    swm_free(f->tasks);
    proto_free(f->svc);
    orch_plan_free(&f->plan);
}

Swarmc__Node *fx_node(struct fx *f, const char *id)
{
    assert_true(f->n_nodes < sizeof(f->nodes) / sizeof(f->nodes[0]));
    return f->nodes[f->n_nodes++] = obj_node(id, 8 * OBJ_CPU, 8192 * OBJ_MIB);
}

Swarmc__Task *fx_add(struct fx *f, Swarmc__Task *t)
{
    if (f->n_tasks == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->tasks = swm_realloc(f->tasks, f->cap * sizeof(*f->tasks));
        assert_non_null(f->tasks);
    }
    return f->tasks[f->n_tasks++] = t;
}

Swarmc__Task *fx_task(struct fx *f, uint64_t slot, const char *node, Swarmc__TaskState state,
                      Swarmc__TaskState desired)
{
    char id[32];
    snprintf(id, sizeof(id), "fx%03zu", f->n_tasks);
    Swarmc__Task *t = obj_task(id, f->svc->id, f->svc->spec_version, slot, node, state, desired);
    obj_task_times(t, f->now, f->now);
    return fx_add(f, t);
}

Swarmc__Task *fx_find(struct fx *f, const char *id)
{
    for (size_t i = 0; i < f->n_tasks; i++)
        if (strcmp(f->tasks[i]->id, id) == 0)
            return f->tasks[i];
    return NULL;
}

void fx_reconcile(struct fx *f)
{
    struct swm_err err = {0};
    orch_plan_free(&f->plan);
    assert_int_equal(
        orch_reconcile(f->svc, f->tasks, f->n_tasks, f->nodes, f->n_nodes, f->now, &f->plan, &err),
        0);
}

static size_t index_of(struct fx *f, const char *id)
{
    for (size_t i = 0; i < f->n_tasks; i++)
        if (strcmp(f->tasks[i]->id, id) == 0)
            return i;
    fail_msg("task %s not found", id);
    return 0;
}

void fx_apply(struct fx *f)
{
    struct orch_plan *p = &f->plan;
    for (size_t i = 0; i < p->n_updates; i++) {
        size_t at = index_of(f, p->updates[i]->id);
        /* The store refuses stale updates (optimistic concurrency). */
        assert_true(p->updates[i]->meta->version == f->tasks[at]->meta->version);
        proto_free(f->tasks[at]);
        f->tasks[at] = p->updates[i];
        p->updates[i] = NULL;
    }
    for (size_t i = 0; i < p->n_creates; i++) {
        assert_null(fx_find(f, p->creates[i]->id));
        fx_add(f, p->creates[i]);
        p->creates[i] = NULL;
    }
    for (size_t i = 0; i < p->n_deletes; i++) {
        size_t at = index_of(f, p->deletes[i]);
        proto_free(f->tasks[at]);
        f->tasks[at] = f->tasks[--f->n_tasks];
    }
    if (p->service != NULL) {
        proto_free(f->svc);
        f->svc = p->service;
        p->service = NULL;
    }
}

bool fx_step(struct fx *f)
{
    fx_reconcile(f);
    bool changed = !orch_plan_empty(&f->plan);
    fx_apply(f);
    return changed;
}

void fx_reap(struct fx *f, int64_t limit)
{
    struct swm_err err = {0};
    orch_plan_free(&f->plan);
    assert_int_equal(orch_reap(f->svc, f->tasks, f->n_tasks, limit, &f->plan, &err), 0);
    fx_apply(f);
}

static void set_state(Swarmc__Task *t, Swarmc__TaskState state, int64_t now)
{
    t->status->state = state;
    t->status->timestamp = now;
}

void fx_agents(struct fx *f)
{
    for (size_t i = 0; i < f->n_tasks; i++) {
        Swarmc__Task *t = f->tasks[i];
        Swarmc__TaskState s = t->status->state;
        if (t->desired_state == ST(RUNNING) && s < ST(RUNNING)) {
            if (t->node_id == NULL && f->n_nodes > 0)
                obj_set_str(&t->node_id, f->nodes[f->next_node++ % f->n_nodes]->id);
            set_state(t, ST(RUNNING), f->now);
        } else if (t->desired_state > ST(RUNNING) && s >= ST(ASSIGNED) && s <= ST(RUNNING)) {
            set_state(t, ST(SHUTDOWN), f->now);
        }
    }
}

size_t fx_runnable(const struct fx *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_tasks; i++)
        n += f->tasks[i]->desired_state <= ST(RUNNING);
    return n;
}

size_t fx_runnable_in_slot(const struct fx *f, uint64_t slot)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_tasks; i++)
        n += f->tasks[i]->slot == slot && f->tasks[i]->desired_state <= ST(RUNNING);
    return n;
}

size_t fx_with_desired(const struct fx *f, Swarmc__TaskState desired)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_tasks; i++)
        n += f->tasks[i]->desired_state == desired;
    return n;
}

Swarmc__Task *fx_slot_task(const struct fx *f, uint64_t slot)
{
    Swarmc__Task *found = NULL;
    for (size_t i = 0; i < f->n_tasks; i++) {
        if (f->tasks[i]->slot != slot || f->tasks[i]->desired_state > ST(RUNNING))
            continue;
        assert_null(found);
        found = f->tasks[i];
    }
    assert_non_null(found);
    return found;
}

void fx_update_image(struct fx *f, const char *image)
{
    obj_set_str(&f->svc->spec->task->container->image, image);
    f->svc->spec_version++;
}
