#include "manager/view.h"

#include "common/alloc.h"
#include "manager/ca/ca.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

int manager_view_load(struct store *s, struct manager_view *v, struct swm_err *err)
{
    struct store_read *r = NULL;
    memset(v, 0, sizeof(*v));
    int rc = store_read_begin(s, &r, err);
    if (rc < 0)
        return rc;
    if (store_get_cluster(r, &v->cluster) < 0)
        v->cluster = NULL;
    rc = store_list_nodes(r, &v->nodes, &v->n_nodes);
    if (rc == 0)
        rc = store_list_services(r, &v->services, &v->n_services);
    if (rc == 0)
        rc = store_list_tasks(r, &v->tasks, &v->n_tasks);
    store_read_end(r);
    if (rc < 0)
        return swm_err_set(err, rc, "reading the cluster: %s", swm_strerror(rc));
    v->cap_tasks = v->n_tasks;
    v->changes = swm_calloc(v->n_tasks + 1, 1);
    if (v->changes == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < v->n_tasks; i++) {
        if (swm_strmap_put(&v->by_id, v->tasks[i]->id, (void *)(uintptr_t)(i + 1)) < 0)
            return swm_err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

void manager_view_free(struct manager_view *v)
{
    if (v->cluster != NULL) /* it carries the CA's secrets: wiped, then freed */
        casvc_root_redact(v->cluster->root_ca);
    proto_free(v->cluster);
    store_free_list(v->nodes, v->n_nodes);
    store_free_list(v->services, v->n_services);
    store_free_list(v->tasks, v->n_tasks);
    swm_free(v->changes);
    swm_strmap_free(&v->by_id);
    store_free_list(v->service_updates, v->n_service_updates);
    memset(v, 0, sizeof(*v));
}

static size_t index_of(const struct manager_view *v, const char *id)
{
    return (size_t)(uintptr_t)swm_strmap_get(&v->by_id, id);
}

Swarmc__Task *manager_view_task(const struct manager_view *v, const char *id)
{
    size_t i = index_of(v, id);
    return i == 0 || v->changes[i - 1] == VIEW_DELETE ? NULL : v->tasks[i - 1];
}

static int grow(struct manager_view *v)
{
    size_t cap = v->cap_tasks < 16 ? 32 : v->cap_tasks * 2;
    Swarmc__Task **tasks = swm_realloc(v->tasks, cap * sizeof(*tasks));
    if (tasks == NULL)
        return -ENOMEM;
    v->tasks = tasks;
    unsigned char *changes = swm_realloc(v->changes, cap);
    if (changes == NULL)
        return -ENOMEM;
    v->changes = changes;
    v->cap_tasks = cap;
    return 0;
}

int manager_view_put(struct manager_view *v, Swarmc__Task *task, int create)
{
    size_t i = index_of(v, task->id);
    if (i != 0) {
        proto_free(v->tasks[i - 1]);
        v->tasks[i - 1] = task;
        if (v->changes[i - 1] == VIEW_SAME)
            v->changes[i - 1] = VIEW_UPDATE;
        return 0;
    }
    if ((v->n_tasks == v->cap_tasks && grow(v) < 0) ||
        swm_strmap_put(&v->by_id, task->id, (void *)(uintptr_t)(v->n_tasks + 1)) < 0) {
        proto_free(task);
        return -ENOMEM;
    }
    v->tasks[v->n_tasks] = task;
    v->changes[v->n_tasks] = create ? VIEW_CREATE : VIEW_UPDATE;
    v->n_tasks++;
    return 0;
}

int manager_view_put_service(struct manager_view *v, Swarmc__Service *svc)
{
    for (size_t i = 0; i < v->n_service_updates; i++) {
        if (strcmp(v->service_updates[i]->id, svc->id) == 0) {
            proto_free(v->service_updates[i]);
            v->service_updates[i] = svc;
            return 0;
        }
    }
    Swarmc__Service **grown =
        swm_realloc(v->service_updates, (v->n_service_updates + 1) * sizeof(*grown));
    if (grown == NULL) {
        proto_free(svc);
        return -ENOMEM;
    }
    v->service_updates = grown;
    grown[v->n_service_updates++] = svc;
    return 0;
}

void manager_view_touch(struct manager_view *v, const char *task_id)
{
    size_t i = index_of(v, task_id);
    if (i != 0 && v->changes[i - 1] == VIEW_SAME)
        v->changes[i - 1] = VIEW_UPDATE;
}

void manager_view_delete(struct manager_view *v, const char *task_id)
{
    size_t i = index_of(v, task_id);
    if (i == 0)
        return;
    /* Deleting a task this pass created means never writing it. */
    v->changes[i - 1] = v->changes[i - 1] == VIEW_CREATE ? VIEW_SAME : VIEW_DELETE;
}

static const Swarmc__StoreAction__Kind action_kind[] = {
    [VIEW_UPDATE] = SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE,
    [VIEW_CREATE] = SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE,
    [VIEW_DELETE] = SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE,
};

static Swarmc__StoreAction *new_action(Swarmc__StoreAction__Kind kind)
{
    Swarmc__StoreAction *a = swm_malloc(sizeof(*a));
    if (a != NULL) {
        swarmc__store_action__init(a);
        a->has_kind = 1;
        a->kind = kind;
    }
    return a;
}

int manager_view_take_entry(struct manager_view *v, Swarmc__StoreEntry **out)
{
    *out = NULL;
    size_t n = v->n_service_updates;
    for (size_t i = 0; i < v->n_tasks; i++)
        n += v->changes[i] != VIEW_SAME;
    if (n == 0)
        return 0;
    Swarmc__StoreEntry *entry = swm_malloc(sizeof(*entry));
    Swarmc__StoreAction **actions = swm_calloc(n, sizeof(*actions));
    if (entry == NULL || actions == NULL) {
        swm_free(entry);
        swm_free(actions);
        return -ENOMEM;
    }
    swarmc__store_entry__init(entry);
    entry->actions = actions;
    /* Objects move into the entry (the view is about to be freed), which
     * saves copying a large pass. */
    for (size_t i = 0; i < v->n_service_updates; i++) {
        Swarmc__StoreAction *a = new_action(SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE);
        if (a == NULL)
            goto nomem;
        a->target_case = SWARMC__STORE_ACTION__TARGET_SERVICE;
        a->service = v->service_updates[i];
        v->service_updates[i] = NULL;
        actions[entry->n_actions++] = a;
    }
    for (size_t i = 0; i < v->n_tasks; i++) {
        if (v->changes[i] == VIEW_SAME)
            continue;
        Swarmc__StoreAction *a = new_action(action_kind[v->changes[i]]);
        if (a == NULL)
            goto nomem;
        a->target_case = SWARMC__STORE_ACTION__TARGET_TASK;
        a->task = v->tasks[i];
        v->tasks[i] = NULL;
        v->changes[i] = VIEW_SAME;
        actions[entry->n_actions++] = a;
    }
    *out = entry;
    return 0;
nomem:
    proto_free(entry);
    return -ENOMEM;
}
