/* The in-memory picture of the cluster one reconcile pass works on: every
 * node, service and task read in one store snapshot, plus the changes the
 * pass decided, turned into one StoreEntry at the end. */
#ifndef SWM_MANAGER_VIEW_H
#define SWM_MANAGER_VIEW_H

#include <stddef.h>

#include "common/strmap.h"
#include "store/store.h"

enum view_change { VIEW_SAME = 0, VIEW_UPDATE, VIEW_CREATE, VIEW_DELETE };

struct manager_view {
    Swarmc__Cluster *cluster; /* NULL before bootstrap */
    Swarmc__Node **nodes;
    size_t n_nodes;
    Swarmc__Service **services;
    size_t n_services;
    Swarmc__Task **tasks; /* owned; a deleted task stays until the entry is built */
    size_t n_tasks, cap_tasks;
    unsigned char *changes;            /* enum view_change per task */
    struct swm_strmap by_id;           /* task id -> index + 1 */
    Swarmc__Service **service_updates; /* owned: services to write */
    size_t n_service_updates;
};

/* Reads the whole cluster from one snapshot. 0 or negative with err set. */
int manager_view_load(struct store *s, struct manager_view *v, struct swm_err *err);

/* Frees everything the view owns. Accepts a zeroed view. */
void manager_view_free(struct manager_view *v);

/* Puts task (ownership passes to the view) as a creation, or as an update
 * replacing the task with the same id. 0 or -ENOMEM (task freed). */
int manager_view_put(struct manager_view *v, Swarmc__Task *task, int create);

/* Queues an updated service (ownership passes to the view). 0 or -ENOMEM
 * (service freed). */
int manager_view_put_service(struct manager_view *v, Swarmc__Service *svc);

/* Marks a task the caller changed in place as updated (a created task stays
 * a creation). Unknown ids are ignored. */
void manager_view_touch(struct manager_view *v, const char *task_id);

/* Marks a task for deletion. Unknown ids are ignored. */
void manager_view_delete(struct manager_view *v, const char *task_id);

/* The task with id, or NULL. */
Swarmc__Task *manager_view_task(const struct manager_view *v, const char *id);

/* Moves every change into a new entry (NULL when there is none): the
 * changed objects leave the view, so call it last, just before
 * manager_view_free. 0 or -ENOMEM (the view is then only fit to free). */
int manager_view_take_entry(struct manager_view *v, Swarmc__StoreEntry **out);

#endif
