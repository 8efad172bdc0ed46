#include "manager/join.h"

#include "common/alloc.h"
#include "common/id.h"
#include "manager/ca/ca.h"

#include <errno.h>
#include <string.h>

struct admission {
    struct ca_cert cert;
    manager_admit_cb cb;
    void *arg;
};

static void node_committed(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct admission *a = arg;
    if (status == 0 && err->code != 0)
        status = err->code;
    a->cb(a->arg, status, status == 0 ? &a->cert : NULL, err);
    swm_free(a);
}

/* The store entry creating the node, fields borrowed from the arguments
 * except the allocated ones freed by proto_free. */
static Swarmc__StoreEntry *node_entry(const char *node_id, int role, const char *addr, int64_t now)
{
    Swarmc__Node node = SWARMC__NODE__INIT;
    Swarmc__NodeSpec spec = SWARMC__NODE_SPEC__INIT;
    Swarmc__NodeStatus status = SWARMC__NODE_STATUS__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    Swarmc__NodeRole r = role == CA_ROLE_MANAGER ? SWARMC__NODE_ROLE__NODE_ROLE_MANAGER
                                                 : SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    meta.has_created_at = meta.has_updated_at = 1;
    meta.created_at = meta.updated_at = now;
    spec.has_desired_role = spec.has_availability = 1;
    spec.desired_role = r;
    spec.availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
    status.has_state = 1;
    status.state = SWARMC__NODE_STATE__NODE_STATE_UNKNOWN;
    status.addr = (char *)addr;
    node.id = (char *)node_id;
    node.meta = &meta;
    node.spec = &spec;
    node.status = &status;
    node.has_role = 1;
    node.role = r;
    Swarmc__StoreAction act = SWARMC__STORE_ACTION__INIT;
    Swarmc__StoreAction *acts[1] = {&act};
    act.has_kind = 1;
    act.kind = SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE;
    act.target_case = SWARMC__STORE_ACTION__TARGET_NODE;
    act.node = &node;
    Swarmc__StoreEntry entry = SWARMC__STORE_ENTRY__INIT;
    entry.actions = acts;
    entry.n_actions = 1;
    return proto_clone(&entry);
}

int manager_issue_certificate(struct store *s, const char *node_id, int role,
                              const uint8_t pk[CA_PUBKEY_LEN], int64_t now, struct ca_cert *out,
                              struct swm_err *err)
{
    struct store_read *r = NULL;
    Swarmc__Cluster *c = NULL;
    int rc = store_read_begin(s, &r, err);
    if (rc == 0 && store_get_cluster(r, &c) < 0)
        rc = swm_err_set(err, SWM_ENOTFOUND, "the store holds no cluster object");
    store_read_end(r);
    if (rc == 0 && c->root_ca == NULL)
        rc = swm_err_set(err, SWM_ECORRUPT, "the cluster has no certificate authority");
    int64_t lifetime = c != NULL && c->spec != NULL && c->spec->has_node_cert_expiry
                           ? c->spec->node_cert_expiry
                           : 0;
    if (rc == 0)
        rc = casvc_issue(c->root_ca, c->id, node_id, role, pk, now, lifetime, out, err);
    if (c != NULL)
        casvc_root_redact(c->root_ca);
    proto_free(c);
    return rc;
}

int manager_renew_certificate(struct store *s, const struct ca_cert *current, int64_t now,
                              struct ca_cert *out, struct swm_err *err)
{
    struct store_read *r = NULL;
    Swarmc__Node *node = NULL;
    int rc = store_read_begin(s, &r, err);
    if (rc == 0 && store_get_node(r, current->node_id, &node) < 0)
        rc = swm_err_set(err, SWM_ENOTFOUND, "node %s is not part of the swarm", current->node_id);
    store_read_end(r);
    int role = node != NULL && node->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? CA_ROLE_MANAGER
                                                                                  : CA_ROLE_WORKER;
    proto_free(node);
    if (rc == 0)
        rc = manager_issue_certificate(s, current->node_id, role, current->node_pk, now, out, err);
    return rc;
}

int manager_admit_node(struct store *s, struct store_log *log, const uint8_t pk[CA_PUBKEY_LEN],
                       int role, const char *addr, int64_t now, manager_admit_cb cb, void *arg,
                       struct swm_err *err)
{
    char node_id[SWM_ID_LEN + 1];
    if (role != CA_ROLE_WORKER && role != CA_ROLE_MANAGER)
        return swm_err_set(err, -EINVAL, "join for an unknown role %d", role);
    if (swm_id_new(node_id) < 0)
        return swm_err_set(err, -EIO, "no randomness for a node id");
    struct admission *a = swm_calloc(1, sizeof(*a));
    if (a == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    int rc = manager_issue_certificate(s, node_id, role, pk, now, &a->cert, err);
    Swarmc__StoreEntry *entry = rc == 0 ? node_entry(node_id, role, addr, now) : NULL;
    if (rc == 0 && entry == NULL)
        rc = swm_err_set(err, -ENOMEM, "out of memory");
    a->cb = cb;
    a->arg = arg;
    if (rc == 0 && (rc = store_log_propose(log, entry, node_committed, a)) < 0)
        swm_err_set(err, rc, "recording the node: %s", swm_strerror(rc));
    if (rc < 0) {
        proto_free(entry);
        swm_free(a);
    }
    return rc;
}
