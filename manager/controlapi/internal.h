/* Shared between the control API's files; no other module includes it. */
#ifndef SWM_MANAGER_CONTROLAPI_INTERNAL_H
#define SWM_MANAGER_CONTROLAPI_INTERNAL_H

#include "common/id.h"
#include "manager/controlapi/controlapi.h"

struct controlapi {
    struct store *store;
    struct store_log *log;
    char node_id[SWM_ID_LEN + 1];
    char *data_dir;
    /* Writes proposed and not yet answered: their callbacks still use the
     * handler set, so a close while they are pending frees it after the
     * last one. */
    size_t pending_writes;
    int closing;
};

/* A response with last=1 and nothing else; NULL on ENOMEM. */
Swarmc__ControlResponse *controlapi__response_new(void);
void controlapi__reply_error(controlapi_reply_cb cb, void *arg, const struct swm_err *err);

/* Append helpers take ownership of the object. 0 or -ENOMEM. */
int controlapi__append_service(Swarmc__ControlResponse *resp, Swarmc__Service *svc);
int controlapi__append_task(Swarmc__ControlResponse *resp, Swarmc__Task *task);
int controlapi__append_node(Swarmc__ControlResponse *resp, Swarmc__Node *node);

/* Answers with the objects of all[0..n) (of one kind) that keep(obj, filter)
 * accepts (keep NULL: all), or with err if rc < 0; frees the array. */
void controlapi__reply_objects(controlapi_reply_cb cb, void *arg, int rc, struct swm_err *err,
                               enum store_object_kind kind, void **all, size_t n,
                               int (*keep)(const void *obj, const void *filter),
                               const void *filter);

/* Takes the one object of all[0..n) that matches ref out of the array and
 * frees the array (store_free_list). SWM_ENOTFOUND naming kind and ref when
 * none or several match. */
int controlapi__pick_one(void **all, size_t n, int (*matches)(const void *obj, const char *ref),
                         const char *ref, const char *kind, void **out, struct swm_err *err);

/* Builds a store entry; entry_add takes ownership of object. */
Swarmc__StoreEntry *controlapi__entry_new(void);
int controlapi__entry_add(Swarmc__StoreEntry *entry, Swarmc__StoreAction__Kind kind,
                          enum store_object_kind object_kind, void *object);

/* Proposes entry (owned) and answers cb once applied: with the stored
 * object of `kind` and `id` on success, the apply error otherwise. */
int controlapi__propose(struct controlapi *api, Swarmc__StoreEntry *entry,
                        enum store_object_kind kind, const char *id, controlapi_reply_cb cb,
                        void *arg);

void controlapi__create_service(struct controlapi *api, const Swarmc__CreateServiceRequest *req,
                                controlapi_reply_cb cb, void *arg);
void controlapi__get_service(struct controlapi *api, const Swarmc__GetServiceRequest *req,
                             controlapi_reply_cb cb, void *arg);
void controlapi__list_services(struct controlapi *api, const Swarmc__ListServicesRequest *req,
                               controlapi_reply_cb cb, void *arg);
void controlapi__update_service(struct controlapi *api, const Swarmc__UpdateServiceRequest *req,
                                controlapi_reply_cb cb, void *arg);
void controlapi__remove_service(struct controlapi *api, const Swarmc__RemoveServiceRequest *req,
                                controlapi_reply_cb cb, void *arg);
void controlapi__list_tasks(struct controlapi *api, const Swarmc__ListTasksRequest *req,
                            controlapi_reply_cb cb, void *arg);
void controlapi__get_task(struct controlapi *api, const Swarmc__GetTaskRequest *req,
                          controlapi_reply_cb cb, void *arg);
void controlapi__list_nodes(struct controlapi *api, controlapi_reply_cb cb, void *arg);
void controlapi__get_node(struct controlapi *api, const Swarmc__GetNodeRequest *req,
                          controlapi_reply_cb cb, void *arg);
void controlapi__remove_node(struct controlapi *api, const Swarmc__RemoveNodeRequest *req,
                             controlapi_reply_cb cb, void *arg);
void controlapi__update_node(struct controlapi *api, const Swarmc__UpdateNodeRequest *req,
                             controlapi_reply_cb cb, void *arg);
void controlapi__info(struct controlapi *api, controlapi_reply_cb cb, void *arg);
void controlapi__join_token(struct controlapi *api, const Swarmc__JoinTokenRequest *req,
                            controlapi_reply_cb cb, void *arg);

/* A Docker-style random name ("eager_turing") for a service created
 * without --name, not used by any service in s (a rare race with another
 * create still fails cleanly at apply). Returns a swm_malloc'd string or
 * NULL. */
char *controlapi__random_name(struct store *s);

#endif
