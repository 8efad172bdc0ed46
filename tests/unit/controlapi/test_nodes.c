/* manager/controlapi/nodes.c: node requests and cluster info. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "common/alloc.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_node_by_self_id_hostname_and_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_update_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_request_is_not_handled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
