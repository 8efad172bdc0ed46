/* manager/controlapi/tasks.c: task queries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "common/alloc.h"
#include "common/id.h"

struct tfx {
    struct afx a;
    char web[SWM_ID_LEN + 1], db[SWM_ID_LEN + 1];
};

static void add_task(struct tfx *f, const char *id, const char *service, const char *node,
                     Swarmc__TaskState desired)
{
    Swarmc__Task *t = obj_task(id, service, 1, 1, node, ST(RUNNING), desired);
    assert_int_equal(cfx_write1(&f->a.c, CREATE, t), 0);
}

/* Services web and db; web has tasks w1 (node 1), w2 (node 2) and an old
 * w3 (node 1, desired SHUTDOWN), db has d1 (node 2). */
static int setup(void **state)
{
    struct tfx *f = calloc(1, sizeof(*f));
    afx_setup(&f->a);
    Swarmc__Node *n2 = obj_node(CFX_NODE2, 2 * OBJ_CPU, 1024 * OBJ_MIB);
    obj_node_hostname(n2, "node-2");
    assert_int_equal(cfx_write1(&f->a.c, CREATE, n2), 0);
    Swarmc__Service *web = afx_create_ok(&f->a, "web", "nginx:1", 2);
    Swarmc__Service *db = afx_create_ok(&f->a, "db", "redis:7", 1);
    snprintf(f->web, sizeof(f->web), "%s", web->id);
    snprintf(f->db, sizeof(f->db), "%s", db->id);
    proto_free(web);
    proto_free(db);
    add_task(f, "w1aaaaaaaaaaaaaaaaaaaaaaa", f->web, CFX_NODE, ST(RUNNING));
    add_task(f, "w2aaaaaaaaaaaaaaaaaaaaaaa", f->web, CFX_NODE2, ST(RUNNING));
    add_task(f, "w3aaaaaaaaaaaaaaaaaaaaaaa", f->web, CFX_NODE, ST(SHUTDOWN));
    add_task(f, "d1aaaaaaaaaaaaaaaaaaaaaaa", f->db, CFX_NODE2, ST(RUNNING));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct tfx *f = *state;
    afx_teardown(&f->a);
    free(f);
    return 0;
}

/* The listed tasks' ids, two characters each, comma-separated. */
static const char *listed(Swarmc__ControlResponse *resp)
{
    static char buf[256];
    if (resp->code != 0)
        fail_msg("request failed: %s", resp->error);
    buf[0] = '\0';
    for (size_t i = 0; i < resp->n_tasks; i++)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%.2s", i > 0 ? "," : "",
                 resp->tasks[i]->id);
    proto_free(resp);
    return buf;
}

static Swarmc__ControlResponse *list(struct tfx *f, Swarmc__ListTasksRequest *lt)
{
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_LIST_TASKS;
    req.list_tasks = lt;
    return afx_call(&f->a, &req);
}

static void test_list_tasks_filters(void **state)
{
    struct tfx *f = *state;
    Swarmc__ListTasksRequest lt = SWARMC__LIST_TASKS_REQUEST__INIT;
    assert_string_equal(listed(list(f, &lt)), "d1,w1,w2,w3");

    char *services[] = {"web", f->db};
    lt.n_service_refs = 1;
    lt.service_refs = services;
    assert_string_equal(listed(list(f, &lt)), "w1,w2,w3");
    lt.n_service_refs = 2;
    assert_string_equal(listed(list(f, &lt)), "d1,w1,w2,w3");

    char *nodes[] = {"self"};
    lt.n_node_refs = 1;
    lt.node_refs = nodes;
    assert_string_equal(listed(list(f, &lt)), "w1,w3");
    nodes[0] = "node-2";
    assert_string_equal(listed(list(f, &lt)), "d1,w2");

    Swarmc__TaskState desired[] = {ST(RUNNING)};
    lt.n_node_refs = 0;
    lt.n_service_refs = 1;
    lt.n_desired_states = 1;
    lt.desired_states = desired;
    assert_string_equal(listed(list(f, &lt)), "w1,w2");

    char *prefixes[] = {"w2"};
    lt.n_desired_states = 0;
    lt.n_id_prefixes = 1;
    lt.id_prefixes = prefixes;
    assert_string_equal(listed(list(f, &lt)), "w2");

    /* A reference that resolves to nothing is an error, not an empty list. */
    Swarmc__ListTasksRequest bad = SWARMC__LIST_TASKS_REQUEST__INIT;
    char *missing[] = {"nope"};
    bad.n_service_refs = 1;
    bad.service_refs = missing;
    afx_expect_error(list(f, &bad), SWM_ENOTFOUND, "service nope not found");
    bad.n_service_refs = 0;
    bad.n_node_refs = 1;
    bad.node_refs = missing;
    afx_expect_error(list(f, &bad), SWM_ENOTFOUND, "node nope not found");
}

static Swarmc__ControlResponse *get_task(struct tfx *f, const char *ref)
{
    Swarmc__GetTaskRequest get = SWARMC__GET_TASK_REQUEST__INIT;
    get.ref = (char *)ref;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_GET_TASK;
    req.get_task = &get;
    return afx_call(&f->a, &req);
}

static void test_get_task_by_id_or_prefix(void **state)
{
    struct tfx *f = *state;
    assert_string_equal(listed(get_task(f, "w1aaaaaaaaaaaaaaaaaaaaaaa")), "w1");
    assert_string_equal(listed(get_task(f, "d")), "d1");
    /* Ambiguous and unknown prefixes answer every match, or none. */
    assert_string_equal(listed(get_task(f, "w")), "w1,w2,w3");
    assert_string_equal(listed(get_task(f, "x")), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_tasks_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_task_by_id_or_prefix, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
