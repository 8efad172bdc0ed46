/* manager/controlapi/nodes.c: node requests and cluster info. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "common/alloc.h"
#include "manager/ca/ca.h"

static int setup(void **state)
{
    struct afx *f = calloc(1, sizeof(*f));
    afx_setup(f);
    /* A second node: a worker. */
    Swarmc__Node *n2 = obj_node(CFX_NODE2, 2 * OBJ_CPU, 1024 * OBJ_MIB);
    obj_node_hostname(n2, "node-2");
    assert_int_equal(cfx_write1(&f->c, CREATE, n2), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct afx *f = *state;
    afx_teardown(f);
    free(f);
    return 0;
}

static Swarmc__ControlResponse *get_node(struct afx *f, const char *ref)
{
    Swarmc__GetNodeRequest get = SWARMC__GET_NODE_REQUEST__INIT;
    get.ref = (char *)ref;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_GET_NODE;
    req.get_node = &get;
    return afx_call(f, &req);
}

static Swarmc__Node *expect_node(Swarmc__ControlResponse *resp)
{
    if (resp->code != 0)
        fail_msg("request failed: %s", resp->error);
    assert_int_equal(resp->n_nodes, 1);
    Swarmc__Node *n = resp->nodes[0];
    resp->nodes[0] = NULL;
    resp->n_nodes = 0;
    proto_free(resp);
    return n;
}

static void expect_node_id(struct afx *f, const char *ref, const char *id)
{
    Swarmc__Node *n = expect_node(get_node(f, ref));
    assert_string_equal(n->id, id);
    proto_free(n);
}

static Swarmc__ControlResponse *update_node(struct afx *f, const char *ref, uint64_t version,
                                            Swarmc__NodeSpec *spec)
{
    Swarmc__UpdateNodeRequest update = SWARMC__UPDATE_NODE_REQUEST__INIT;
    update.id = (char *)ref;
    update.has_version = 1;
    update.version = version;
    update.spec = spec;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_UPDATE_NODE;
    req.update_node = &update;
    return afx_call(f, &req);
}

static void test_get_node_by_self_id_hostname_and_prefix(void **state)
{
    struct afx *f = *state;
    expect_node_id(f, "self", CFX_NODE);
    expect_node_id(f, CFX_NODE2, CFX_NODE2);
    expect_node_id(f, "node-2", CFX_NODE2);
    expect_node_id(f, "node-1", CFX_NODE);
    /* Both ids start with "n0": ambiguous; their last characters differ. */
    afx_expect_error(get_node(f, "n0"), SWM_ENOTFOUND, "node n0 is ambiguous (2 matches found)");
    afx_expect_error(get_node(f, "node-3"), SWM_ENOTFOUND, "node node-3 not found");

    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    Swarmc__ListNodesRequest ln = SWARMC__LIST_NODES_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_LIST_NODES;
    req.list_nodes = &ln;
    Swarmc__ControlResponse *resp = afx_call(f, &req);
    assert_int_equal(resp->n_nodes, 2);
    assert_string_equal(resp->nodes[0]->id, CFX_NODE);
    assert_string_equal(resp->nodes[1]->id, CFX_NODE2);
    proto_free(resp);
}

static void test_update_node(void **state)
{
    struct afx *f = *state;
    Swarmc__Node *before = cfx_node(&f->c, CFX_NODE2);
    uint64_t v = before->meta->version;

    /* A bad spec is refused before anything is written. */
    Swarmc__NodeSpec *spec = obj_new(&swarmc__node_spec__descriptor);
    spec->has_availability = 1;
    spec->availability = 7;
    afx_expect_error(update_node(f, "node-2", v, spec), SWM_EINVAL_SPEC,
                     "invalid availability 7: must be active, pause or drain");
    afx_expect_error(update_node(f, "node-2", v, NULL), SWM_EINVAL_SPEC, "node spec is required");
    spec->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
    afx_expect_error(update_node(f, "node-3", v, spec), SWM_ENOTFOUND, NULL);
    /* A stale version is refused by the store. */
    afx_expect_error(update_node(f, "node-2", v - 1, spec), SWM_ESTALE, NULL);
    Swarmc__Node *same = cfx_node(&f->c, CFX_NODE2);
    assert_int_equal(same->meta->version, v);
    assert_false(same->spec->has_availability &&
                 same->spec->availability == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    proto_free(same);

    Swarmc__Node *after = expect_node(update_node(f, "node-2", v, spec));
    assert_int_equal(after->spec->availability, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    assert_true(after->meta->version > v);
    /* What the agent reported is kept. */
    assert_string_equal(after->description->hostname, "node-2");
    assert_int_equal(after->status->state, SWARMC__NODE_STATE__NODE_STATE_READY);
    proto_free(after);
    proto_free(spec);
    proto_free(before);
}

static Swarmc__InfoResponse *info(struct afx *f, Swarmc__ControlResponse **resp)
{
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    Swarmc__InfoRequest ir = SWARMC__INFO_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_INFO;
    req.info = &ir;
    *resp = afx_call(f, &req);
    assert_int_equal((*resp)->code, 0);
    assert_non_null((*resp)->info);
    return (*resp)->info;
}

static void add_task(struct afx *f, const char *id, Swarmc__TaskState state,
                     Swarmc__TaskState desired)
{
    Swarmc__Task *t = obj_task(id, "svc", 1, 1, CFX_NODE, state, desired);
    assert_int_equal(cfx_write1(&f->c, CREATE, t), 0);
}

static void test_info_counts(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *a = afx_create_ok(f, "a", "nginx:1", 1);
    Swarmc__Service *b = afx_create_ok(f, "b", "nginx:1", 1);
    add_task(f, "t1", ST(RUNNING), ST(RUNNING));
    add_task(f, "t2", ST(RUNNING), ST(RUNNING));
    add_task(f, "t3", ST(STARTING), ST(RUNNING));  /* not yet running */
    add_task(f, "t4", ST(RUNNING), ST(SHUTDOWN));  /* being stopped */
    add_task(f, "t5", ST(COMPLETE), ST(SHUTDOWN)); /* history */

    Swarmc__ControlResponse *resp = NULL;
    Swarmc__InfoResponse *in = info(f, &resp);
    assert_int_equal(in->nodes, 2);
    assert_int_equal(in->managers, 1);
    assert_int_equal(in->services, 2);
    assert_int_equal(in->tasks_running, 2);
    assert_string_equal(in->node_id, CFX_NODE);
    assert_string_equal(in->cluster_id, CFX_CLUSTER);
    assert_string_equal(in->cluster->id, CFX_CLUSTER);
    assert_string_equal(in->data_dir, f->c.dir);
    assert_true(in->is_manager);
    assert_non_null(in->version);
    /* The index at the time of the answer: afx_call's barrier came later. */
    assert_int_equal(in->raft_applied_index, store_applied_index(f->c.s) - 1);
    proto_free(resp);
    proto_free(a);
    proto_free(b);
}

static void test_unknown_request_is_not_handled(void **state)
{
    struct afx *f = *state;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    Swarmc__ImageListRequest il = SWARMC__IMAGE_LIST_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_IMAGE_LIST;
    req.image_list = &il;
    assert_int_equal(controlapi_handle(f->api, &req, NULL, NULL), SWM_ENOTSUP);
}

/* ------------------------------------------------------------ node rm -- */

#define DOWN SWARMC__NODE_STATE__NODE_STATE_DOWN
#define WORKER_ROLE SWARMC__NODE_ROLE__NODE_ROLE_WORKER
#define MANAGER_ROLE SWARMC__NODE_ROLE__NODE_ROLE_MANAGER
#define CFX_NODE3 "n000000000000000000000003"
#define REFUSED "rpc error: code = FailedPrecondition desc = node "

struct rm_reply {
    int calls;
    Swarmc__ControlResponse *resp;
};

static void on_rm_reply(void *arg, Swarmc__ControlResponse *resp)
{
    struct rm_reply *r = arg;
    r->calls++;
    proto_free(r->resp);
    r->resp = resp;
}

static bool rm_replied(void *arg)
{
    return ((struct rm_reply *)arg)->calls > 0;
}

/* Sends RemoveNode and runs the loop until the reply, without afx_call's
 * barrier, so that the store's applied index tells how many entries the
 * removal wrote; *written is set to that number. */
static Swarmc__ControlResponse *remove_node(struct afx *f, const char *ref, bool force,
                                            uint64_t *written)
{
    Swarmc__RemoveNodeRequest rm = SWARMC__REMOVE_NODE_REQUEST__INIT;
    rm.ref = (char *)ref;
    rm.has_force = 1;
    rm.force = force;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_REMOVE_NODE;
    req.remove_node = &rm;
    struct rm_reply r = {0};
    uint64_t before = store_applied_index(f->c.s);
    assert_int_equal(controlapi_handle(f->api, &req, on_rm_reply, &r), 0);
    cfx_run_until(&f->c, rm_replied, &r, "a remove-node reply");
    *written = store_applied_index(f->c.s) - before;
    /* Exactly one reply, even once the write is long done. */
    cfx_barrier(&f->c);
    assert_int_equal(r.calls, 1);
    assert_non_null(r.resp);
    assert_true(r.resp->has_last && r.resp->last);
    return r.resp;
}

static void expect_removed(struct afx *f, const char *ref, bool force)
{
    uint64_t written = 0;
    Swarmc__ControlResponse *resp = remove_node(f, ref, force, &written);
    if (resp->code != 0)
        fail_msg("removing %s failed: %s", ref, resp->error);
    proto_free(resp);
    /* The node and the cluster's CA are written in one entry. */
    assert_int_equal(written, 1);
}

static void expect_refused(struct afx *f, const char *ref, bool force, int code, const char *msg)
{
    uint64_t written = 99;
    afx_expect_error(remove_node(f, ref, force, &written), code, msg);
    assert_int_equal(written, 0);
}

static Swarmc__Cluster *stored_cluster(struct afx *f)
{
    struct store_read *r = NULL;
    Swarmc__Cluster *c = NULL;
    assert_int_equal(store_read_begin(f->c.s, &r, NULL), 0);
    assert_int_equal(store_get_cluster(r, &c), 0);
    store_read_end(r);
    return c;
}

/* Gives the fixture's cluster a CA, as `swarmc init` does, through the log. */
static void install_ca(struct afx *f)
{
    Swarmc__Cluster *c = stored_cluster(f);
    assert_null(c->root_ca);
    assert_int_equal(casvc_root_create(&c->root_ca, NULL), 0);
    assert_int_equal(cfx_write1(&f->c, UPDATE, c), 0);
}

static void set_node(struct afx *f, const char *id, Swarmc__NodeState state, Swarmc__NodeRole role)
{
    Swarmc__Node *n = cfx_node(&f->c, id);
    assert_non_null(n);
    obj_node_state(n, state);
    obj_node_role(n, role);
    assert_int_equal(cfx_write1(&f->c, UPDATE, n), 0);
}

static void add_node(struct afx *f, const char *id, const char *hostname, Swarmc__NodeState state,
                     Swarmc__NodeRole role)
{
    Swarmc__Node *n = obj_node(id, OBJ_CPU, 1024 * OBJ_MIB);
    obj_node_hostname(n, hostname);
    obj_node_state(n, state);
    obj_node_role(n, role);
    assert_int_equal(cfx_write1(&f->c, CREATE, n), 0);
}

static void expect_revoked(const Swarmc__Cluster *c, size_t n, const char *const *ids)
{
    assert_non_null(c->root_ca);
    assert_int_equal(c->root_ca->n_revoked_nodes, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c->root_ca->revoked_nodes[i], ids[i]);
}

static void test_remove_down_worker_revokes_it(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    add_node(f, CFX_NODE3, "node-3", DOWN, WORKER_ROLE);
    set_node(f, CFX_NODE2, DOWN, WORKER_ROLE);
    Swarmc__Cluster *before = stored_cluster(f);
    assert_int_equal(before->root_ca->n_revoked_nodes, 0);

    expect_removed(f, CFX_NODE2, false);
    assert_null(cfx_node(&f->c, CFX_NODE2));
    Swarmc__Cluster *after = stored_cluster(f);
    expect_revoked(after, 1, (const char *const[]){CFX_NODE2});
    /* The cluster went through the log; the CA kept its keys and tokens. */
    assert_true(after->meta->version > before->meta->version);
    assert_string_equal(after->id, CFX_CLUSTER);
    assert_int_equal(after->root_ca->private_key.len, CA_SECKEY_LEN);
    assert_memory_equal(after->root_ca->private_key.data, before->root_ca->private_key.data,
                        CA_SECKEY_LEN);
    assert_memory_equal(after->root_ca->public_key.data, before->root_ca->public_key.data,
                        before->root_ca->public_key.len);
    assert_string_equal(after->root_ca->worker_token, before->root_ca->worker_token);
    assert_string_equal(after->root_ca->manager_token, before->root_ca->manager_token);
    assert_int_equal(casvc_root_check(after->root_ca, NULL, NULL), 0);
    /* The other nodes are untouched. */
    Swarmc__Node *self = cfx_node(&f->c, CFX_NODE);
    Swarmc__Node *other = cfx_node(&f->c, CFX_NODE3);
    assert_non_null(self);
    assert_non_null(other);
    proto_free(self);
    proto_free(other);

    /* A second removal appends to the list. */
    expect_removed(f, "node-3", false);
    assert_null(cfx_node(&f->c, CFX_NODE3));
    Swarmc__Cluster *last = stored_cluster(f);
    expect_revoked(last, 2, (const char *const[]){CFX_NODE2, CFX_NODE3});
    assert_true(last->meta->version > after->meta->version);
    proto_free(before);
    proto_free(after);
    proto_free(last);
}

static void test_remove_node_without_ca(void **state)
{
    struct afx *f = *state;
    set_node(f, CFX_NODE2, DOWN, WORKER_ROLE);
    Swarmc__Cluster *before = stored_cluster(f);
    assert_null(before->root_ca);
    expect_removed(f, "node-2", false);
    assert_null(cfx_node(&f->c, CFX_NODE2));
    Swarmc__Cluster *after = stored_cluster(f);
    /* Nothing to revoke: the cluster stays without a CA. */
    assert_null(after->root_ca);
    assert_string_equal(after->id, CFX_CLUSTER);
    proto_free(before);
    proto_free(after);
}

static void test_remove_ready_worker_needs_force(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    Swarmc__Cluster *before = stored_cluster(f);
    expect_refused(f, "node-2", false, SWM_EINUSE,
                   REFUSED CFX_NODE2 " is not down and can't be removed");
    Swarmc__Node *still = cfx_node(&f->c, CFX_NODE2);
    assert_non_null(still);
    proto_free(still);
    Swarmc__Cluster *same = stored_cluster(f);
    assert_int_equal(same->root_ca->n_revoked_nodes, 0);
    /* A node with no status is not known to be down either. */
    Swarmc__Node *n = cfx_node(&f->c, CFX_NODE2);
    proto_free(n->status);
    n->status = NULL;
    assert_int_equal(cfx_write1(&f->c, UPDATE, n), 0);
    expect_refused(f, CFX_NODE2, false, SWM_EINUSE,
                   REFUSED CFX_NODE2 " is not down and can't be removed");

    expect_removed(f, "node-2", true);
    assert_null(cfx_node(&f->c, CFX_NODE2));
    Swarmc__Cluster *after = stored_cluster(f);
    expect_revoked(after, 1, (const char *const[]){CFX_NODE2});
    assert_true(after->meta->version > before->meta->version);
    proto_free(before);
    proto_free(same);
    proto_free(after);
}

static void test_remove_manager_is_refused(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    const char *msg = REFUSED CFX_NODE " is a cluster manager and is a member of the raft "
                                       "cluster. It must be demoted to worker before removal";
    expect_refused(f, "self", false, SWM_EINUSE, msg);
    expect_refused(f, "node-1", true, SWM_EINUSE, msg);
    /* Even down. */
    add_node(f, CFX_NODE3, "node-3", DOWN, MANAGER_ROLE);
    expect_refused(f, "node-3", true, SWM_EINUSE,
                   REFUSED CFX_NODE3 " is a cluster manager and is a member of the raft "
                                     "cluster. It must be demoted to worker before removal");
    Swarmc__Node *self = cfx_node(&f->c, CFX_NODE);
    Swarmc__Node *other = cfx_node(&f->c, CFX_NODE3);
    assert_non_null(self);
    assert_non_null(other);
    proto_free(self);
    proto_free(other);
    Swarmc__Cluster *c = stored_cluster(f);
    assert_int_equal(c->root_ca->n_revoked_nodes, 0);
    proto_free(c);
}

static void test_remove_unknown_or_removed_node(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    expect_refused(f, "node-9", true, SWM_ENOTFOUND, "node node-9 not found");
    expect_refused(f, "", true, -EINVAL, "a node name or id is required");
    /* Both ids start with "n0". */
    expect_refused(f, "n0", true, SWM_ENOTFOUND, "node n0 is ambiguous (2 matches found)");

    set_node(f, CFX_NODE2, DOWN, WORKER_ROLE);
    expect_removed(f, "node-2", false);
    expect_refused(f, "node-2", false, SWM_ENOTFOUND, "node node-2 not found");
    expect_refused(f, CFX_NODE2, true, SWM_ENOTFOUND, "node " CFX_NODE2 " not found");
    /* Revoked once. */
    Swarmc__Cluster *c = stored_cluster(f);
    expect_revoked(c, 1, (const char *const[]){CFX_NODE2});
    proto_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_node_by_self_id_hostname_and_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_update_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_request_is_not_handled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_down_worker_revokes_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_node_without_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_ready_worker_needs_force, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_manager_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_unknown_or_removed_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
