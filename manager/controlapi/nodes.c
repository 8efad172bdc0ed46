/* Node operations and cluster info of the control API. */
#include "common/alloc.h"
#include "common/timeutil.h"
#include "manager/ca/ca.h"
#include "manager/controlapi/internal.h"
#include "manager/controlapi/validate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *node_hostname(const Swarmc__Node *node)
{
    if (node->description != NULL && node->description->hostname != NULL)
        return node->description->hostname;
    return "";
}

static int node_matches(const void *obj, const char *ref)
{
    const Swarmc__Node *node = obj;
    return strcmp(node_hostname(node), ref) == 0 || strncmp(node->id, ref, strlen(ref)) == 0;
}

int controlapi_find_node(struct store_read *r, const char *self_id, const char *ref,
                         Swarmc__Node **out, struct swm_err *err)
{
    if (ref == NULL || ref[0] == '\0')
        return swm_err_set(err, -EINVAL, "a node name or id is required");
    if (strcmp(ref, "self") == 0)
        ref = self_id;
    if (store_get_node(r, ref, out) == 0)
        return 0;
    Swarmc__Node **all = NULL;
    size_t n = 0;
    int rc = store_list_nodes(r, &all, &n);
    if (rc < 0)
        return swm_err_set(err, rc, "listing nodes: %s", swm_strerror(rc));
    return controlapi__pick_one((void **)all, n, node_matches, ref, "node", (void **)out, err);
}

void controlapi__list_nodes(struct controlapi *api, controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0 && (rc = store_list_nodes(r, &nodes, &n)) < 0)
        swm_err_set(&err, rc, "listing nodes: %s", swm_strerror(rc));
    store_read_end(r);
    controlapi__reply_objects(cb, arg, rc, &err, STORE_KIND_NODE, (void **)nodes, n, NULL, NULL);
}

void controlapi__get_node(struct controlapi *api, const Swarmc__GetNodeRequest *req,
                          controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Node *node = NULL;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = controlapi_find_node(r, api->node_id, req->ref, &node, &err);
    store_read_end(r);
    Swarmc__ControlResponse *resp = rc == 0 ? controlapi__response_new() : NULL;
    if (rc == 0 && (resp == NULL || controlapi__append_node(resp, node) < 0)) {
        proto_free(resp);
        rc = swm_err_set(&err, -ENOMEM, "out of memory");
    }
    if (rc < 0) {
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    cb(arg, resp);
}

void controlapi__update_node(struct controlapi *api, const Swarmc__UpdateNodeRequest *req,
                             controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Node *node = NULL;
    int rc = req->spec == NULL ? swm_err_set(&err, SWM_EINVAL_SPEC, "node spec is required")
                               : spec_validate_node_spec(req->spec, &err);
    if (rc == 0)
        rc = store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = controlapi_find_node(r, api->node_id, req->id, &node, &err);
    store_read_end(r);
    Swarmc__NodeSpec *spec = rc == 0 ? proto_clone(req->spec) : NULL;
    Swarmc__StoreEntry *entry = spec != NULL ? controlapi__entry_new() : NULL;
    if (rc == 0 && (spec == NULL || entry == NULL || node->meta == NULL))
        rc = swm_err_set(&err, -ENOMEM, "out of memory");
    if (rc == 0) {
        char id[SWM_ID_LEN + 1];
        snprintf(id, sizeof(id), "%s", node->id);
        proto_free(node->spec);
        node->spec = spec;
        spec = NULL;
        node->meta->version = req->version;
        node->meta->has_updated_at = 1;
        node->meta->updated_at = swm_now_ns();
        rc = controlapi__entry_add(entry, SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE,
                                   STORE_KIND_NODE, node);
        node = NULL;
        if (rc == 0) {
            rc = controlapi__propose(api, entry, STORE_KIND_NODE, id, cb, arg);
            entry = NULL;
        }
        if (rc < 0)
            swm_err_set(&err, rc, "updating node: %s", swm_strerror(rc));
    }
    proto_free(spec);
    proto_free(entry);
    proto_free(node);
    if (rc < 0)
        controlapi__reply_error(cb, arg, &err);
}

/* Why node may not be removed, or NULL (Docker's words). */
static const char *removal_refused(const Swarmc__Node *node, bool force, char *buf, size_t size)
{
    bool down = node->status != NULL && node->status->state == SWARMC__NODE_STATE__NODE_STATE_DOWN;
    if (node->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER)
        snprintf(buf, size,
                 "rpc error: code = FailedPrecondition desc = node %s is a cluster manager and is "
                 "a member of the raft cluster. It must be demoted to worker before removal",
                 node->id);
    else if (!down && !force)
        snprintf(buf, size,
                 "rpc error: code = FailedPrecondition desc = node %s is not down and can't be "
                 "removed",
                 node->id);
    else
        return NULL;
    return buf;
}

/* The cluster with node_id added to the revoked nodes. */
static int revoke(struct store_read *r, const char *node_id, Swarmc__Cluster **out)
{
    Swarmc__Cluster *c = NULL;
    int rc = store_get_cluster(r, &c);
    if (rc < 0)
        return rc;
    if (c->root_ca == NULL) { /* a cluster made before the CA: nothing to revoke */
        *out = c;
        return 0;
    }
    char **ids =
        swm_realloc(c->root_ca->revoked_nodes, (c->root_ca->n_revoked_nodes + 1) * sizeof(*ids));
    char *id = ids != NULL ? swm_strdup(node_id) : NULL;
    if (ids != NULL)
        c->root_ca->revoked_nodes = ids;
    if (id == NULL) {
        casvc_root_redact(c->root_ca);
        proto_free(c);
        return -ENOMEM;
    }
    ids[c->root_ca->n_revoked_nodes++] = id;
    *out = c;
    return 0;
}

/* Removes the node and revokes its certificate in one entry; its tasks are
 * rescheduled like those of a node that went down. */
void controlapi__remove_node(struct controlapi *api, const Swarmc__RemoveNodeRequest *req,
                             controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Node *node = NULL;
    Swarmc__Cluster *cluster = NULL;
    char why[512];
    const char *refused = NULL;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = controlapi_find_node(r, api->node_id, req->ref, &node, &err);
    if (rc == 0 && (refused = removal_refused(node, req->force, why, sizeof(why))) != NULL)
        rc = swm_err_set(&err, SWM_EINUSE, "%s", refused);
    if (rc == 0 && (rc = revoke(r, node->id, &cluster)) < 0)
        swm_err_set(&err, rc, "reading the cluster: %s", swm_strerror(rc));
    store_read_end(r);
    Swarmc__StoreEntry *entry = rc == 0 ? controlapi__entry_new() : NULL;
    if (rc == 0 && entry == NULL)
        rc = swm_err_set(&err, -ENOMEM, "out of memory");
    if (rc == 0) {
        rc = controlapi__entry_add(entry, SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE,
                                   STORE_KIND_CLUSTER, cluster);
        cluster = NULL;
        if (rc == 0)
            rc = controlapi__entry_add(entry, SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE,
                                       STORE_KIND_NODE, node);
        node = NULL;
        if (rc == 0) {
            rc = controlapi__propose(api, entry, STORE_KIND_NODE, NULL, cb, arg);
            entry = NULL;
        }
        if (rc < 0)
            swm_err_set(&err, rc, "removing node: %s", swm_strerror(rc));
    }
    proto_free(entry);
    proto_free(node);
    if (cluster != NULL)
        casvc_root_redact(cluster->root_ca);
    proto_free(cluster);
    if (rc < 0)
        controlapi__reply_error(cb, arg, &err);
}

static void count_tasks(struct store_read *r, Swarmc__InfoResponse *info)
{
    Swarmc__Task **tasks = NULL;
    size_t n = 0;
    if (store_list_tasks_by_desired_state(r, SWARMC__TASK_STATE__TASK_STATE_RUNNING, &tasks, &n) <
        0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (tasks[i]->status != NULL &&
            tasks[i]->status->state == SWARMC__TASK_STATE__TASK_STATE_RUNNING)
            info->tasks_running++;
    }
    info->has_tasks_running = 1;
    store_free_list(tasks, n);
}

static int fill_info(struct controlapi *api, struct store_read *r, Swarmc__InfoResponse *info)
{
    Swarmc__Node **nodes = NULL;
    Swarmc__Service **services = NULL;
    size_t n_nodes = 0, n_services = 0;
    int rc = store_list_nodes(r, &nodes, &n_nodes);
    if (rc == 0)
        rc = store_list_services(r, &services, &n_services);
    for (size_t i = 0; i < n_nodes; i++)
        info->managers += nodes[i]->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    info->has_managers = info->has_nodes = info->has_services = 1;
    info->nodes = (uint32_t)n_nodes;
    info->services = (uint32_t)n_services;
    store_free_list(nodes, n_nodes);
    store_free_list(services, n_services);
    if (rc == 0)
        count_tasks(r, info);
    if (rc == 0 && store_get_cluster(r, &info->cluster) == 0) {
        /* `info` shows the CA's public key only: the root key and the
         * join tokens leave the manager through `join-token` alone. */
        casvc_root_redact(info->cluster->root_ca);
        info->cluster_id = swm_strdup(info->cluster->id);
    }
    info->node_id = swm_strdup(api->node_id);
    info->data_dir = swm_strdup(api->data_dir);
    info->version = swm_strdup(SWARMC_VERSION);
    info->has_is_manager = info->is_manager = 1;
    info->has_raft_applied_index = 1;
    info->raft_applied_index = store_applied_index(api->store);
    return rc;
}

void controlapi__info(struct controlapi *api, controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__ControlResponse *resp = controlapi__response_new();
    Swarmc__InfoResponse *info = swm_malloc(sizeof(*info));
    int rc = resp == NULL || info == NULL ? swm_err_set(&err, -ENOMEM, "out of memory") : 0;
    if (rc == 0) {
        swarmc__info_response__init(info);
        resp->info = info;
        info = NULL;
        rc = store_read_begin(api->store, &r, &err);
    }
    if (rc == 0 && (rc = fill_info(api, r, resp->info)) < 0)
        swm_err_set(&err, rc, "reading cluster state: %s", swm_strerror(rc));
    store_read_end(r);
    swm_free(info);
    if (rc < 0) {
        proto_free(resp);
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    cb(arg, resp);
}
