#include "manager/controlapi/controlapi.h"

#include "common/alloc.h"
#include "common/id.h"
#include "common/timeutil.h"
#include "manager/controlapi/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int controlapi_open(struct store *s, struct store_log *log, const char *node_id,
                    const char *data_dir, struct controlapi **out)
{
    struct controlapi *api = swm_calloc(1, sizeof(*api));
    if (api == NULL)
        return -ENOMEM;
    api->store = s;
    api->log = log;
    snprintf(api->node_id, sizeof(api->node_id), "%s", node_id);
    api->data_dir = swm_strdup(data_dir);
    if (api->data_dir == NULL) {
        swm_free(api);
        return -ENOMEM;
    }
    *out = api;
    return 0;
}

static void api_free(struct controlapi *api)
{
    swm_free(api->data_dir);
    swm_free(api);
}

void controlapi_close(struct controlapi *api)
{
    if (api == NULL)
        return;
    api->closing = 1;
    if (api->pending_writes == 0)
        api_free(api);
}

Swarmc__ControlResponse *controlapi_error_response(int code, const char *msg)
{
    Swarmc__ControlResponse *resp = controlapi__response_new();
    if (resp == NULL)
        return NULL;
    resp->has_code = 1;
    resp->code = code;
    resp->error = swm_strdup(msg != NULL && msg[0] != '\0' ? msg : swm_strerror(code));
    return resp;
}

Swarmc__ControlResponse *controlapi_ok_response(void)
{
    return controlapi__response_new();
}

Swarmc__ControlResponse *controlapi__response_new(void)
{
    Swarmc__ControlResponse *resp = swm_malloc(sizeof(*resp));
    if (resp == NULL)
        return NULL;
    swarmc__control_response__init(resp);
    resp->has_last = 1;
    resp->last = 1;
    return resp;
}

void controlapi__reply_error(controlapi_reply_cb cb, void *arg, const struct swm_err *err)
{
    cb(arg, controlapi_error_response(err->code, err->msg));
}

struct pending_write {
    struct controlapi *api;
    controlapi_reply_cb cb;
    void *arg;
    enum store_object_kind kind;
    char id[SWM_ID_LEN + 1];
};

static void write_committed(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct pending_write *pw = arg;
    struct controlapi *api = pw->api;
    if (status < 0 || err->code != 0) {
        controlapi__reply_error(pw->cb, pw->arg, err);
        swm_free(pw);
        if (--api->pending_writes == 0 && api->closing)
            api_free(api);
        return;
    }
    /* Answer with the object as stored, so the caller sees its version. */
    Swarmc__ControlResponse *resp = controlapi__response_new();
    struct store_read *r = NULL;
    struct swm_err rerr = {0};
    int rc = resp == NULL ? -ENOMEM : store_read_begin(api->store, &r, &rerr);
    if (rc == 0 && pw->kind == STORE_KIND_SERVICE && pw->id[0] != '\0') {
        Swarmc__Service *svc;
        if (store_get_service(r, pw->id, &svc) == 0)
            controlapi__append_service(resp, svc);
    } else if (rc == 0 && pw->kind == STORE_KIND_NODE && pw->id[0] != '\0') {
        Swarmc__Node *node;
        if (store_get_node(r, pw->id, &node) == 0)
            controlapi__append_node(resp, node);
    }
    store_read_end(r);
    if (rc < 0) {
        proto_free(resp);
        resp = controlapi_error_response(rc, rerr.msg);
    }
    pw->cb(pw->arg, resp);
    swm_free(pw);
    if (--api->pending_writes == 0 && api->closing)
        api_free(api);
}

int controlapi__pick_one(void **all, size_t n, int (*matches)(const void *obj, const char *ref),
                         const char *ref, const char *kind, void **out, struct swm_err *err)
{
    size_t count = 0, match = 0;
    for (size_t i = 0; i < n; i++) {
        if (matches(all[i], ref)) {
            count++;
            match = i;
        }
    }
    if (count == 1) {
        *out = all[match];
        all[match] = NULL;
    }
    store_free_list(all, n);
    if (count == 1)
        return 0;
    if (count > 1)
        return swm_err_set(err, SWM_ENOTFOUND, "%s %s is ambiguous (%zu matches found)", kind, ref,
                           count);
    return swm_err_set(err, SWM_ENOTFOUND, "%s %s not found", kind, ref);
}

int controlapi__propose(struct controlapi *api, Swarmc__StoreEntry *entry,
                        enum store_object_kind kind, const char *id, controlapi_reply_cb cb,
                        void *arg)
{
    struct pending_write *pw = swm_calloc(1, sizeof(*pw));
    if (pw == NULL) {
        proto_free(entry);
        return -ENOMEM;
    }
    pw->api = api;
    pw->cb = cb;
    pw->arg = arg;
    pw->kind = kind;
    snprintf(pw->id, sizeof(pw->id), "%s", id != NULL ? id : "");
    int rc = store_log_propose(api->log, entry, write_committed, pw);
    if (rc < 0) {
        proto_free(entry);
        swm_free(pw);
        return rc;
    }
    api->pending_writes++;
    return 0;
}

/* Appends obj to a repeated field of resp, taking ownership of obj (freed
 * with obj on failure). */
static int append_ptr(void ***array, size_t *n, void *obj)
{
    void **grown = swm_realloc(*array, (*n + 1) * sizeof(void *));
    if (grown == NULL) {
        proto_free(obj);
        return -ENOMEM;
    }
    grown[(*n)++] = obj;
    *array = grown;
    return 0;
}

int controlapi__append_service(Swarmc__ControlResponse *resp, Swarmc__Service *svc)
{
    return append_ptr((void ***)&resp->services, &resp->n_services, svc);
}

int controlapi__append_task(Swarmc__ControlResponse *resp, Swarmc__Task *task)
{
    return append_ptr((void ***)&resp->tasks, &resp->n_tasks, task);
}

int controlapi__append_node(Swarmc__ControlResponse *resp, Swarmc__Node *node)
{
    return append_ptr((void ***)&resp->nodes, &resp->n_nodes, node);
}

static int append_object(Swarmc__ControlResponse *resp, enum store_object_kind kind, void *obj)
{
    switch (kind) {
    case STORE_KIND_SERVICE:
        return controlapi__append_service(resp, obj);
    case STORE_KIND_TASK:
        return controlapi__append_task(resp, obj);
    case STORE_KIND_NODE:
        return controlapi__append_node(resp, obj);
    default:
        proto_free(obj);
        return -EINVAL;
    }
}

void controlapi__reply_objects(controlapi_reply_cb cb, void *arg, int rc, struct swm_err *err,
                               enum store_object_kind kind, void **all, size_t n,
                               int (*keep)(const void *obj, const void *filter), const void *filter)
{
    Swarmc__ControlResponse *resp = rc == 0 ? controlapi__response_new() : NULL;
    if (rc == 0 && resp == NULL)
        rc = swm_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (keep != NULL && !keep(all[i], filter))
            continue;
        rc = append_object(resp, kind, all[i]);
        all[i] = NULL;
        if (rc < 0)
            swm_err_set(err, rc, "out of memory");
    }
    store_free_list(all, n);
    if (rc < 0) {
        proto_free(resp);
        controlapi__reply_error(cb, arg, err);
        return;
    }
    cb(arg, resp);
}

Swarmc__StoreEntry *controlapi__entry_new(void)
{
    Swarmc__StoreEntry *entry = swm_malloc(sizeof(*entry));
    if (entry != NULL)
        swarmc__store_entry__init(entry);
    return entry;
}

int controlapi__entry_add(Swarmc__StoreEntry *entry, Swarmc__StoreAction__Kind kind,
                          enum store_object_kind object_kind, void *object)
{
    Swarmc__StoreAction *action = swm_malloc(sizeof(*action));
    if (action == NULL) {
        proto_free(object);
        return -ENOMEM;
    }
    swarmc__store_action__init(action);
    action->has_kind = 1;
    action->kind = kind;
    switch (object_kind) {
    case STORE_KIND_NODE:
        action->target_case = SWARMC__STORE_ACTION__TARGET_NODE;
        action->node = object;
        break;
    case STORE_KIND_SERVICE:
        action->target_case = SWARMC__STORE_ACTION__TARGET_SERVICE;
        action->service = object;
        break;
    case STORE_KIND_TASK:
        action->target_case = SWARMC__STORE_ACTION__TARGET_TASK;
        action->task = object;
        break;
    case STORE_KIND_CLUSTER:
        action->target_case = SWARMC__STORE_ACTION__TARGET_CLUSTER;
        action->cluster = object;
        break;
    }
    return append_ptr((void ***)&entry->actions, &entry->n_actions, action);
}

int controlapi_handle(struct controlapi *api, const Swarmc__ControlRequest *req,
                      controlapi_reply_cb cb, void *arg)
{
    switch (req->op_case) {
    case SWARMC__CONTROL_REQUEST__OP_CREATE_SERVICE:
        controlapi__create_service(api, req->create_service, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_GET_SERVICE:
        controlapi__get_service(api, req->get_service, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_LIST_SERVICES:
        controlapi__list_services(api, req->list_services, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_UPDATE_SERVICE:
        controlapi__update_service(api, req->update_service, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_REMOVE_SERVICE:
        controlapi__remove_service(api, req->remove_service, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_LIST_TASKS:
        controlapi__list_tasks(api, req->list_tasks, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_GET_TASK:
        controlapi__get_task(api, req->get_task, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_LIST_NODES:
        controlapi__list_nodes(api, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_GET_NODE:
        controlapi__get_node(api, req->get_node, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_REMOVE_NODE:
        controlapi__remove_node(api, req->remove_node, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_UPDATE_NODE:
        controlapi__update_node(api, req->update_node, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_INFO:
        controlapi__info(api, cb, arg);
        return 0;
    case SWARMC__CONTROL_REQUEST__OP_JOIN_TOKEN:
        controlapi__join_token(api, req->join_token, cb, arg);
        return 0;
    default:
        return SWM_ENOTSUP;
    }
}
