/* `join-token`: the cluster's join tokens, and their rotation (DESIGN.md
 * §6). The tokens live in the cluster object's RootCA (manager/ca); a
 * rotation is a cluster update proposed through the log like any write. */
#include "common/alloc.h"
#include "common/timeutil.h"
#include "manager/ca/ca.h"
#include "manager/controlapi/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The port nodes join through when neither address names one. */
#define SWARM_PORT "2377"

/* The port of a listen address ("0.0.0.0:4000" -> "4000"), or the swarm
 * port. */
static const char *listen_port(const Swarmc__Node *self)
{
    const char *addr =
        self != NULL && self->manager_status != NULL ? self->manager_status->addr : NULL;
    const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;
    return colon != NULL && colon[1] != '\0' && strchr(colon, ']') == NULL ? colon + 1 : SWARM_PORT;
}

/* Where other nodes reach this manager: its advertise address (the node's
 * status addr), with the port it listens on unless the advertise address
 * has a port of its own. */
static char *join_addr(const Swarmc__Node *self)
{
    const char *addr = self != NULL && self->status != NULL ? self->status->addr : NULL;
    const char *port = listen_port(self);
    if (addr == NULL || addr[0] == '\0')
        return swm_strdup("");
    const char *colon = strchr(addr, ':');
    if (addr[0] == '[') /* "[v6]" or "[v6]:port" */
        return strstr(addr, "]:") != NULL ? swm_strdup(addr) : swm_asprintf("%s:%s", addr, port);
    if (colon == NULL) /* "10.0.0.1" */
        return swm_asprintf("%s:%s", addr, port);
    if (strchr(colon + 1, ':') == NULL) /* "10.0.0.1:4000" */
        return swm_strdup(addr);
    return swm_asprintf("[%s]:%s", addr, port); /* a bare IPv6 address */
}

/* Cluster objects read here carry the CA's private key and token secrets:
 * they are wiped before the memory is freed. */
static void cluster_free(Swarmc__Cluster *c)
{
    if (c != NULL)
        casvc_root_redact(c->root_ca);
    proto_free(c);
}

/* Maps the request's role to enum ca_role; 0 if it names none. */
static int request_role(const Swarmc__JoinTokenRequest *req)
{
    if (req == NULL || !req->has_role)
        return 0;
    switch (req->role) {
    case SWARMC__NODE_ROLE__NODE_ROLE_WORKER:
        return CA_ROLE_WORKER;
    case SWARMC__NODE_ROLE__NODE_ROLE_MANAGER:
        return CA_ROLE_MANAGER;
    default:
        return 0;
    }
}

/* Reads the cluster and checks its CA. *out is set only on success. */
static int read_cluster(struct store_read *r, Swarmc__Cluster **out, struct swm_err *err)
{
    Swarmc__Cluster *c = NULL;
    int rc = store_get_cluster(r, &c);
    if (rc < 0)
        return swm_err_set(err, rc, "reading the cluster object: %s", swm_strerror(rc));
    if (c->root_ca == NULL)
        rc = swm_err_set(err, SWM_ENOTSUP,
                         "this swarm has no certificate authority (it was created by an older "
                         "swarmc): join tokens need a swarm created by this version");
    else
        rc = casvc_root_check(c->root_ca, NULL, err);
    if (rc < 0) {
        cluster_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Answers with role's current token and this manager's address. */
static void reply_token(struct controlapi *api, int role, controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Cluster *cluster = NULL;
    Swarmc__Node *self = NULL;
    Swarmc__ControlResponse *resp = NULL;
    Swarmc__JoinTokenResponse *jt = NULL;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = read_cluster(r, &cluster, &err);
    /* A node without a record (not expected on a manager) has no address
     * to show; the token is still valid. */
    if (rc == 0 && store_get_node(r, api->node_id, &self) < 0)
        self = NULL;
    store_read_end(r);
    if (rc < 0)
        goto fail;
    resp = controlapi__response_new();
    jt = swm_malloc(sizeof(*jt));
    if (resp == NULL || jt == NULL) {
        swm_free(jt);
        rc = swm_err_set(&err, -ENOMEM, "out of memory");
        goto fail;
    }
    swarmc__join_token_response__init(jt);
    resp->join_token = jt;
    jt->has_role = 1;
    jt->role = role == CA_ROLE_WORKER ? SWARMC__NODE_ROLE__NODE_ROLE_WORKER
                                      : SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    jt->token = swm_strdup(casvc_token(cluster->root_ca, role));
    jt->manager_addr = join_addr(self);
    if (jt->token == NULL || jt->manager_addr == NULL) {
        rc = swm_err_set(&err, -ENOMEM, "out of memory");
        goto fail;
    }
    cluster_free(cluster);
    proto_free(self);
    cb(arg, resp);
    return;
fail:
    proto_free(resp);
    cluster_free(cluster);
    proto_free(self);
    controlapi__reply_error(cb, arg, &err);
}

/* A rotation waiting for its cluster update to commit. */
struct rotation {
    struct controlapi *api;
    int role;
    controlapi_reply_cb cb;
    void *arg;
};

static void rotated(void *arg, Swarmc__ControlResponse *resp)
{
    struct rotation *rot = arg;
    if (resp == NULL || resp->code != 0) {
        /* The update failed (SWM_ESTALE after a concurrent change, ...):
         * pass the error on. */
        if (resp == NULL)
            resp = controlapi_error_response(-ENOMEM, "out of memory");
        rot->cb(rot->arg, resp);
    } else {
        proto_free(resp);
        reply_token(rot->api, rot->role, rot->cb, rot->arg);
    }
    swm_free(rot);
}

static void rotate(struct controlapi *api, int role, controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Cluster *cluster = NULL;
    Swarmc__StoreEntry *entry = NULL;
    struct rotation *rot = NULL;
    int rc = store_read_begin(api->store, &r, &err);
    if (rc == 0)
        rc = read_cluster(r, &cluster, &err);
    store_read_end(r);
    if (rc == 0)
        rc = casvc_token_rotate(cluster->root_ca, role, &err);
    if (rc == 0 && cluster->meta == NULL)
        rc = swm_err_set(&err, SWM_ECORRUPT, "the stored cluster object has no meta");
    if (rc == 0 &&
        ((entry = controlapi__entry_new()) == NULL || (rot = swm_malloc(sizeof(*rot))) == NULL))
        rc = swm_err_set(&err, -ENOMEM, "out of memory");
    if (rc < 0)
        goto fail;
    /* meta.version stays the one read: a concurrent change of the cluster
     * fails this update with SWM_ESTALE instead of being overwritten. */
    cluster->meta->has_updated_at = 1;
    cluster->meta->updated_at = swm_now_ns();
    *rot = (struct rotation){.api = api, .role = role, .cb = cb, .arg = arg};
    rc = controlapi__entry_add(entry, SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE,
                               STORE_KIND_CLUSTER, cluster);
    cluster = NULL;
    if (rc == 0) {
        rc = controlapi__propose(api, entry, STORE_KIND_CLUSTER, NULL, rotated, rot);
        entry = NULL;
    }
    if (rc < 0) {
        swm_err_set(&err, rc, "rotating the %s join token: %s", ca_role_name(role),
                    swm_strerror(rc));
        goto fail;
    }
    return;
fail:
    swm_free(rot);
    proto_free(entry);
    cluster_free(cluster);
    controlapi__reply_error(cb, arg, &err);
}

void controlapi__join_token(struct controlapi *api, const Swarmc__JoinTokenRequest *req,
                            controlapi_reply_cb cb, void *arg)
{
    struct swm_err err = {0};
    int role = request_role(req);
    if (role == 0) {
        if (req == NULL || !req->has_role)
            swm_err_set(&err, SWM_EINVAL_SPEC, "a join token role (worker or manager) is required");
        else
            swm_err_set(&err, SWM_EINVAL_SPEC, "unknown role %d: must be worker or manager",
                        (int)req->role);
        controlapi__reply_error(cb, arg, &err);
        return;
    }
    if (req->has_rotate && req->rotate)
        rotate(api, role, cb, arg);
    else
        reply_token(api, role, cb, arg);
}
