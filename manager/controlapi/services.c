/* Service operations of the control API. */
#include "common/alloc.h"
#include "common/timeutil.h"
#include "manager/controlapi/internal.h"
#include "manager/controlapi/validate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int service_id_has_prefix(const void *obj, const char *prefix)
{
    return strncmp(((const Swarmc__Service *)obj)->id, prefix, strlen(prefix)) == 0;
}

int controlapi_find_service(struct store_read *r, const char *ref, Swarmc__Service **out,
                            struct swm_err *err)
{
    if (ref == NULL || ref[0] == '\0')
        return swm_err_set(err, -EINVAL, "a service name or id is required");
    if (store_get_service(r, ref, out) == 0 || store_get_service_by_name(r, ref, out) == 0)
        return 0;
    Swarmc__Service **all = NULL;
    size_t n = 0;
    int rc = store_list_services(r, &all, &n);
    if (rc < 0)
        return swm_err_set(err, rc, "listing services: %s", swm_strerror(rc));
    return controlapi__pick_one((void **)all, n, service_id_has_prefix, ref, "service",
                                (void **)out, err);
}

static const char *service_name(const Swarmc__Service *svc)
{
    const Swarmc__ServiceSpec *spec = svc->spec;
    if (spec != NULL && spec->annotations != NULL && spec->annotations->name != NULL)
        return spec->annotations->name;
    return "";
}

void controlapi__create_service(struct controlapi *api, const Swarmc__CreateServiceRequest *req,
                                controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    if (req->spec == NULL) {
        swm_err_set(&err, SWM_EINVAL_SPEC, "service spec is required");
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    if (spec_validate_service(req->spec, &err) < 0) {
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    Swarmc__Service *svc = swm_malloc(sizeof(*svc));
    Swarmc__Meta *meta = swm_malloc(sizeof(*meta));
    Swarmc__ServiceSpec *spec = proto_clone(req->spec);
    char id[SWM_ID_LEN + 1];
    if (svc == NULL || meta == NULL || spec == NULL || swm_id_new(id) < 0) {
        swm_free(svc);
        swm_free(meta);
        proto_free(spec);
        swm_err_set(&err, -ENOMEM, "out of memory");
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    swarmc__service__init(svc);
    swarmc__meta__init(meta);
    meta->has_created_at = meta->has_updated_at = 1;
    meta->created_at = meta->updated_at = swm_now_ns();
    svc->meta = meta;
    svc->spec = spec;
    svc->id = swm_strdup(id);
    svc->has_spec_version = 1;
    svc->spec_version = 1;
    int rc = svc->id == NULL ? -ENOMEM : 0;
    if (rc == 0 && spec->annotations == NULL) {
        spec->annotations = swm_malloc(sizeof(*spec->annotations));
        if (spec->annotations == NULL)
            rc = -ENOMEM;
        else
            swarmc__annotations__init(spec->annotations);
    }
    if (rc == 0 && (spec->annotations->name == NULL || spec->annotations->name[0] == '\0')) {
        swm_free(spec->annotations->name);
        spec->annotations->name = controlapi__random_name(api->store);
        if (spec->annotations->name == NULL)
            rc = -ENOMEM;
    }
    Swarmc__StoreEntry *entry = rc == 0 ? controlapi__entry_new() : NULL;
    if (entry == NULL) {
        proto_free(svc);
        swm_err_set(&err, -ENOMEM, "out of memory");
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    rc = controlapi__entry_add(entry, SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE,
                               STORE_KIND_SERVICE, svc);
    if (rc == 0)
        rc = controlapi__propose(api, entry, STORE_KIND_SERVICE, id, cb, arg);
    else
        proto_free(entry);
    if (rc < 0) {
        swm_err_set(&err, rc, "creating service: %s", swm_strerror(rc));
        controlapi__reply_error(cb, arg, &err);
    }
}

void controlapi__get_service(struct controlapi *api, const Swarmc__GetServiceRequest *req,
                             controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Service *svc = NULL;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = controlapi_find_service(r, req->ref, &svc, &err);
    store_read_end(r);
    Swarmc__ControlResponse *resp = rc == 0 ? controlapi__response_new() : NULL;
    if (rc == 0 && (resp == NULL || controlapi__append_service(resp, svc) < 0)) {
        proto_free(resp);
        swm_err_set(&err, -ENOMEM, "out of memory");
        rc = -ENOMEM;
    }
    if (rc < 0) {
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    cb(arg, resp);
}

static int has_label(const Swarmc__Service *svc, const Swarmc__KeyValue *want)
{
    const Swarmc__Annotations *a = svc->spec != NULL ? svc->spec->annotations : NULL;
    for (size_t i = 0; a != NULL && i < a->n_labels; i++) {
        if (strcmp(a->labels[i]->key, want->key) != 0)
            continue;
        if (want->value == NULL || strcmp(want->value, a->labels[i]->value) == 0)
            return 1;
    }
    return 0;
}

static int service_matches(const Swarmc__Service *svc, const Swarmc__ListServicesRequest *req)
{
    int ok = req->n_names == 0;
    for (size_t i = 0; i < req->n_names && !ok; i++)
        ok = strncmp(service_name(svc), req->names[i], strlen(req->names[i])) == 0;
    if (!ok)
        return 0;
    ok = req->n_id_prefixes == 0;
    for (size_t i = 0; i < req->n_id_prefixes && !ok; i++)
        ok = strncmp(svc->id, req->id_prefixes[i], strlen(req->id_prefixes[i])) == 0;
    for (size_t i = 0; i < req->n_labels && ok; i++)
        ok = has_label(svc, req->labels[i]);
    return ok;
}

static int keep_service(const void *obj, const void *filter)
{
    return filter == NULL || service_matches(obj, filter);
}

void controlapi__list_services(struct controlapi *api, const Swarmc__ListServicesRequest *req,
                               controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Service **all = NULL;
    size_t n = 0;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0 && (rc = store_list_services(r, &all, &n)) < 0)
        swm_err_set(&err, rc, "listing services: %s", swm_strerror(rc));
    store_read_end(r);
    controlapi__reply_objects(cb, arg, rc, &err, STORE_KIND_SERVICE, (void **)all, n, keep_service,
                              req);
}

static int check_update_allowed(const Swarmc__Service *cur, const Swarmc__ServiceSpec *next,
                                struct swm_err *err)
{
    Swarmc__ServiceMode old_mode = cur->spec->has_mode ? cur->spec->mode : 0;
    Swarmc__ServiceMode new_mode = next->has_mode ? next->mode : 0;
    if (old_mode != new_mode)
        return swm_err_set(err, SWM_EINVAL_SPEC, "service mode change is not allowed");
    const char *old_name = service_name(cur);
    const char *new_name =
        next->annotations != NULL && next->annotations->name != NULL ? next->annotations->name : "";
    if (strcmp(old_name, new_name) != 0)
        return swm_err_set(err, SWM_EINVAL_SPEC, "renaming services is not supported");
    return 0;
}

static int same_task_spec(const Swarmc__TaskSpec *a, const Swarmc__TaskSpec *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    struct swm_buf pa = {0}, pb = {0};
    int same = proto_pack(&a->base, &pa) == 0 && proto_pack(&b->base, &pb) == 0 &&
               pa.len == pb.len && memcmp(pa.data, pb.data, pa.len) == 0;
    swm_buf_free(&pa);
    swm_buf_free(&pb);
    return same;
}

static int set_rollback_status(Swarmc__Service *svc, int64_t now_ns)
{
    Swarmc__UpdateStatus *st = swm_malloc(sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    swarmc__update_status__init(st);
    st->has_state = st->has_started_at = 1;
    st->state = SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_STARTED;
    st->started_at = now_ns;
    st->message = swm_strdup("manually requested rollback");
    svc->update_status = st;
    return st->message == NULL ? -ENOMEM : 0;
}

/* Builds the updated service: the new spec, the old one kept for rollback,
 * and a new spec_version so the orchestrator replaces out-of-date tasks. */
static Swarmc__Service *updated_service(const Swarmc__Service *cur,
                                        const Swarmc__UpdateServiceRequest *req)
{
    Swarmc__Service *next = proto_clone(cur);
    Swarmc__ServiceSpec *spec =
        proto_clone(req->rollback && cur->previous_spec != NULL ? cur->previous_spec : req->spec);
    Swarmc__ServiceSpec *prev = proto_clone(cur->spec);
    if (next == NULL || spec == NULL || prev == NULL || next->meta == NULL) {
        proto_free(next);
        proto_free(spec);
        proto_free(prev);
        return NULL;
    }
    proto_free(next->spec);
    proto_free(next->previous_spec);
    next->spec = spec;
    next->previous_spec = prev;
    /* The version tasks are compared by moves only when what tasks run
     * changes: scaling or a new update_config leaves every task current. */
    next->has_spec_version = 1;
    next->spec_version = cur->spec_version + !same_task_spec(prev->task, spec->task);
    next->meta->version = req->version;
    next->meta->has_updated_at = 1;
    next->meta->updated_at = swm_now_ns();
    /* A new spec starts a new update; a rollback makes the orchestrator use
     * the rollback config (SwarmKit's controlapi does the same). */
    proto_free(next->update_status);
    next->update_status = NULL;
    if (req->rollback && set_rollback_status(next, next->meta->updated_at) < 0) {
        proto_free(next);
        return NULL;
    }
    return next;
}

void controlapi__update_service(struct controlapi *api, const Swarmc__UpdateServiceRequest *req,
                                controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Service *cur = NULL;
    Swarmc__Service *next = NULL;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = controlapi_find_service(r, req->id, &cur, &err);
    store_read_end(r);
    if (rc == 0 && req->rollback && cur->previous_spec == NULL)
        rc =
            swm_err_set(&err, SWM_EINVAL_SPEC, "service %s does not have a previous spec", req->id);
    if (rc == 0 && !req->rollback && req->spec == NULL)
        rc = swm_err_set(&err, SWM_EINVAL_SPEC, "service spec is required");
    const Swarmc__ServiceSpec *target = req->rollback && rc == 0 ? cur->previous_spec : req->spec;
    if (rc == 0)
        rc = spec_validate_service(target, &err);
    if (rc == 0)
        rc = check_update_allowed(cur, target, &err);
    if (rc == 0 && (next = updated_service(cur, req)) == NULL)
        rc = swm_err_set(&err, -ENOMEM, "out of memory");
    Swarmc__StoreEntry *entry = rc == 0 ? controlapi__entry_new() : NULL;
    if (rc == 0 && entry == NULL)
        rc = swm_err_set(&err, -ENOMEM, "out of memory");
    if (rc == 0) {
        char id[SWM_ID_LEN + 1];
        snprintf(id, sizeof(id), "%s", cur->id);
        rc = controlapi__entry_add(entry, SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE,
                                   STORE_KIND_SERVICE, next);
        next = NULL;
        if (rc == 0) {
            rc = controlapi__propose(api, entry, STORE_KIND_SERVICE, id, cb, arg);
            entry = NULL;
        }
        if (rc < 0)
            swm_err_set(&err, rc, "updating service: %s", swm_strerror(rc));
    }
    proto_free(entry);
    proto_free(next);
    proto_free(cur);
    if (rc < 0)
        controlapi__reply_error(cb, arg, &err);
}

void controlapi__remove_service(struct controlapi *api, const Swarmc__RemoveServiceRequest *req,
                                controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Service *svc = NULL;
    Swarmc__StoreEntry *entry = controlapi__entry_new();
    int rc = entry == NULL ? swm_err_set(&err, -ENOMEM, "out of memory")
                           : store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = controlapi_find_service(r, req->ref, &svc, &err);
    char id[SWM_ID_LEN + 1] = "";
    if (rc == 0) {
        snprintf(id, sizeof(id), "%s", svc->id);
        /* Only the service: the orchestrator marks its tasks for removal,
         * the agents stop them and the reaper deletes them. Touching the
         * tasks here would race with their status updates. */
        rc = controlapi__entry_add(entry, SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE,
                                   STORE_KIND_SERVICE, svc);
        if (rc < 0)
            swm_err_set(&err, rc, "removing service: %s", swm_strerror(rc));
    }
    store_read_end(r);
    if (rc == 0) {
        /* Reply with nothing but success: the service is gone. */
        rc = controlapi__propose(api, entry, STORE_KIND_SERVICE, NULL, cb, arg);
        if (rc < 0)
            swm_err_set(&err, rc, "removing service: %s", swm_strerror(rc));
        entry = NULL;
    }
    proto_free(entry);
    if (rc < 0)
        controlapi__reply_error(cb, arg, &err);
}
