/* Task queries of the control API. */
#include "common/alloc.h"
#include "manager/controlapi/internal.h"

#include <errno.h>
#include <string.h>

/* Resolves the request's service and node references to ids (owned by the
 * returned arrays, freed by the caller with free_ids). */
static int resolve_refs(struct controlapi *api, struct store_read *r,
                        const Swarmc__ListTasksRequest *req, char ***service_ids, char ***node_ids,
                        struct swm_err *err)
{
    *service_ids = swm_calloc(req->n_service_refs + 1, sizeof(char *));
    *node_ids = swm_calloc(req->n_node_refs + 1, sizeof(char *));
    if (*service_ids == NULL || *node_ids == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < req->n_service_refs; i++) {
        Swarmc__Service *svc;
        int rc = controlapi_find_service(r, req->service_refs[i], &svc, err);
        if (rc < 0)
            return rc;
        (*service_ids)[i] = swm_strdup(svc->id);
        proto_free(svc);
        if ((*service_ids)[i] == NULL)
            return swm_err_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < req->n_node_refs; i++) {
        Swarmc__Node *node;
        int rc = controlapi_find_node(r, api->node_id, req->node_refs[i], &node, err);
        if (rc < 0)
            return rc;
        (*node_ids)[i] = swm_strdup(node->id);
        proto_free(node);
        if ((*node_ids)[i] == NULL)
            return swm_err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

static void free_ids(char **ids)
{
    for (size_t i = 0; ids != NULL && ids[i] != NULL; i++)
        swm_free(ids[i]);
    swm_free(ids);
}

static int in_list(char *const *ids, const char *id)
{
    if (ids[0] == NULL)
        return 1;
    for (size_t i = 0; ids[i] != NULL; i++)
        if (id != NULL && strcmp(ids[i], id) == 0)
            return 1;
    return 0;
}

struct task_filter {
    const Swarmc__ListTasksRequest *req;
    char **service_ids, **node_ids; /* NULL-terminated; empty = any */
};

static int task_matches(const void *obj, const void *filter)
{
    const Swarmc__Task *t = obj;
    const struct task_filter *f = filter;
    const Swarmc__ListTasksRequest *req = f->req;
    char *const *service_ids = f->service_ids, *const *node_ids = f->node_ids;
    if (!in_list(service_ids, t->service_id) || !in_list(node_ids, t->node_id))
        return 0;
    int ok = req->n_desired_states == 0;
    for (size_t i = 0; i < req->n_desired_states && !ok; i++)
        ok = t->desired_state == req->desired_states[i];
    for (size_t i = 0; i < req->n_id_prefixes && ok; i++)
        ok = req->id_prefixes[i] != NULL &&
             strncmp(t->id, req->id_prefixes[i], strlen(req->id_prefixes[i])) == 0;
    return ok;
}

static int list_candidates(struct store_read *r, char *const *service_ids, Swarmc__Task ***out,
                           size_t *n)
{
    /* One service: use the index instead of reading every task. */
    if (service_ids[0] != NULL && service_ids[1] == NULL)
        return store_list_tasks_by_service(r, service_ids[0], out, n);
    return store_list_tasks(r, out, n);
}

void controlapi__list_tasks(struct controlapi *api, const Swarmc__ListTasksRequest *req,
                            controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    struct task_filter f = {.req = req};
    Swarmc__Task **tasks = NULL;
    size_t n = 0;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = resolve_refs(api, r, req, &f.service_ids, &f.node_ids, &err);
    if (rc == 0 && (rc = list_candidates(r, f.service_ids, &tasks, &n)) < 0)
        swm_err_set(&err, rc, "listing tasks: %s", swm_strerror(rc));
    store_read_end(r);
    controlapi__reply_objects(cb, arg, rc, &err, STORE_KIND_TASK, (void **)tasks, n, task_matches,
                              &f);
    free_ids(f.service_ids);
    free_ids(f.node_ids);
}

void controlapi__get_task(struct controlapi *api, const Swarmc__GetTaskRequest *req,
                          controlapi_reply_cb cb, void *arg)
{
    if (req->ref == NULL || req->ref[0] == '\0') {
        struct swm_err err;
        swm_err_set(&err, -EINVAL, "a task id is required");
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    Swarmc__ListTasksRequest list = SWARMC__LIST_TASKS_REQUEST__INIT;
    char *prefix = req->ref;
    list.n_id_prefixes = 1;
    list.id_prefixes = &prefix;
    /* A prefix query answers an exact id too; more than one match is an
     * ambiguity the client reports. */
    controlapi__list_tasks(api, &list, cb, arg);
}
