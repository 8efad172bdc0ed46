/* store/read.c: getters, lists, and bad disk contents (SWM_ECORRUPT, never
 * a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "fixture.h"

#define CREATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE
#define UPDATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE
#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING

struct fx {
    char *dir;
    struct store *s;
    struct store_read *r;
};

/* Two nodes, two services, three tasks and the cluster. */
static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    fx->dir = fixture_tmpdir();
    fx->s = fixture_open(fx->dir);
    Swarmc__StoreEntry *e = fixture_entry();
    fixture_add(e, CREATE, fixture_node("n2", 0));
    fixture_add(e, CREATE, fixture_node("n1", 0));
    fixture_add(e, CREATE, fixture_service("s1", "web", 0));
    fixture_add(e, CREATE, fixture_service("s2", "db", 0));
    fixture_add(e, CREATE, fixture_task("t1", "s1", "n1", RUNNING, 0));
    fixture_add(e, CREATE, fixture_task("t2", "s1", "n2", RUNNING, 0));
    fixture_add(e, CREATE, fixture_task("t3", "s2", "n1", RUNNING, 0));
    fixture_add(e, CREATE, fixture_cluster("c1", 0));
    fixture_apply(fx->s, &e, 1, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    store_read_end(fx->r);
    store_close(fx->s);
    fixture_rmdir(fx->dir);
    free(fx);
    return 0;
}

static struct store_read *begin(struct fx *fx)
{
    store_read_end(fx->r);
    assert_int_equal(store_read_begin(fx->s, &fx->r, NULL), 0);
    return fx->r;
}

/* Closes the store, lets damage() write to it raw, reopens it. */
static void damage(struct fx *fx, const char *db, const char *key, const void *val, size_t len)
{
    store_read_end(fx->r);
    fx->r = NULL;
    store_close(fx->s);
    fx->s = NULL;
    fixture_raw_put(fx->dir, db, key, strlen(key), val, len, 0);
    fx->s = fixture_open(fx->dir);
}

static void gets_return_decoded_copies(void **state)
{
    struct fx *fx = *state;
    struct store_read *r = begin(fx);
    Swarmc__Node *node;
    Swarmc__Service *svc;
    Swarmc__Task *task;
    Swarmc__Cluster *cluster;
    assert_int_equal(store_get_node(r, "n1", &node), 0);
    assert_string_equal(node->id, "n1");
    assert_true(node->meta->version == 1);
    proto_free(node);
    assert_int_equal(store_get_service(r, "s2", &svc), 0);
    assert_string_equal(svc->spec->annotations->name, "db");
    proto_free(svc);
    assert_int_equal(store_get_service_by_name(r, "web", &svc), 0);
    assert_string_equal(svc->id, "s1");
    proto_free(svc);
    assert_int_equal(store_get_task(r, "t2", &task), 0);
    assert_string_equal(task->node_id, "n2");
    proto_free(task);
    assert_int_equal(store_get_cluster(r, &cluster), 0);
    assert_string_equal(cluster->id, "c1");
    proto_free(cluster);

    node = (Swarmc__Node *)0x1;
    assert_int_equal(store_get_node(r, "nope", &node), SWM_ENOTFOUND);
    assert_ptr_equal(node, (Swarmc__Node *)0x1); /* untouched on failure */
    assert_non_null(strstr(store_read_err(r)->msg, "nope"));
    assert_int_equal(store_get_node(r, "", &node), SWM_ENOTFOUND);
    assert_int_equal(store_get_service_by_name(r, "nope", &svc), SWM_ENOTFOUND);
    assert_int_equal(store_get_node(r, NULL, &node), -EINVAL);
}

static void lists_are_complete_and_ordered(void **state)
{
    struct fx *fx = *state;
    struct store_read *r = begin(fx);
    Swarmc__Node **nodes;
    Swarmc__Service **services;
    Swarmc__Task **tasks;
    size_t n;
    assert_int_equal(store_list_nodes(r, &nodes, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(nodes[0]->id, "n1");
    assert_string_equal(nodes[1]->id, "n2");
    store_free_list(nodes, n);
    assert_int_equal(store_list_services(r, &services, &n), 0);
    assert_int_equal(n, 2);
    store_free_list(services, n);
    assert_int_equal(store_list_tasks(r, &tasks, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(fixture_task_ids(tasks, n), "t1,t2,t3");
    store_free_list(tasks, n);
}

static void snapshot_is_consistent(void **state)
{
    struct fx *fx = *state;
    struct store_read *r = begin(fx);
    /* A write after the read began is invisible to it. */
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_task("t4", "s1", "n1", RUNNING, 0))),
        0);
    Swarmc__Task **tasks;
    size_t n;
    assert_int_equal(store_list_tasks(r, &tasks, &n), 0);
    assert_int_equal(n, 3);
    store_free_list(tasks, n);
    r = begin(fx);
    assert_int_equal(store_list_tasks(r, &tasks, &n), 0);
    assert_int_equal(n, 4);
    store_free_list(tasks, n);
}

static void garbage_value_is_corrupt_not_a_crash(void **state)
{
    struct fx *fx = *state;
    static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x99};
    damage(fx, "tasks", "t1", garbage, sizeof(garbage));
    struct store_read *r = begin(fx);
    Swarmc__Task *task;
    Swarmc__Task **tasks = NULL;
    size_t n = 0;
    assert_int_equal(store_get_task(r, "t1", &task), SWM_ECORRUPT);
    const char *msg = store_read_err(r)->msg;
    assert_non_null(strstr(msg, "tasks"));
    assert_non_null(strstr(msg, "t1"));
    assert_int_equal(store_get_task(r, "t2", &task), 0); /* neighbours still read */
    proto_free(task);
    assert_int_equal(store_list_tasks(r, &tasks, &n), SWM_ECORRUPT);
    assert_null(tasks);
    assert_int_equal(store_list_tasks_by_node(r, "n1", &tasks, &n), SWM_ECORRUPT);
    assert_int_equal(store_list_tasks_by_node(r, "n2", &tasks, &n), 0);
    assert_int_equal(n, 1);
    store_free_list(tasks, n);
    store_read_end(r);
    fx->r = NULL;

    /* Updating a corrupt object fails the whole batch: the failure is local
     * to this node, no replica would reproduce it. */
    uint64_t applied = store_applied_index(fx->s);
    Swarmc__StoreEntry *e = fixture_entry1(UPDATE, fixture_task("t1", "s1", "n1", RUNNING, 1));
    struct store_apply_result res;
    struct swm_err err = {0};
    assert_int_equal(store_apply_entries(fx->s, applied + 1, &e, 1, &res, &err), SWM_ECORRUPT);
    assert_non_null(strstr(err.msg, "t1"));
    assert_true(store_applied_index(fx->s) == applied);
    proto_free(e);
}

static void value_of_another_object_is_corrupt(void **state)
{
    struct fx *fx = *state;
    /* A well-formed task, stored under the wrong key. */
    Swarmc__Task *t3 = fixture_task("t3", "s2", "n1", RUNNING, 1);
    struct swm_buf buf = {0};
    assert_int_equal(proto_pack(&t3->base, &buf), 0);
    proto_free(t3);
    damage(fx, "tasks", "t1", buf.data, buf.len);
    swm_buf_free(&buf);
    struct store_read *r = begin(fx);
    Swarmc__Task *task;
    assert_int_equal(store_get_task(r, "t1", &task), SWM_ECORRUPT);
    assert_non_null(strstr(store_read_err(r)->msg, "t3"));
}

static void extra_index_entry_is_refused_on_open(void **state)
{
    struct fx *fx = *state;
    store_close(fx->s);
    fx->s = NULL;
    /* tasks_by_node gains a 4th entry for 3 tasks. */
    fixture_raw_put(fx->dir, "tasks_by_node", "n2", 2, "t3", 2, 1);
    struct store *s = NULL;
    struct swm_err err = {0};
    assert_int_equal(store_open(fx->dir, &s, &err), SWM_ECORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "tasks_by_node"));
}

static void index_naming_a_changed_object_is_corrupt(void **state)
{
    struct fx *fx = *state;
    /* t2 now says n1, while tasks_by_node still files it under n2. */
    Swarmc__Task *t2 = fixture_task("t2", "s1", "n1", RUNNING, 1);
    struct swm_buf buf = {0};
    assert_int_equal(proto_pack(&t2->base, &buf), 0);
    proto_free(t2);
    damage(fx, "tasks", "t2", buf.data, buf.len);
    swm_buf_free(&buf);
    struct store_read *r = begin(fx);
    Swarmc__Task **tasks;
    size_t n;
    assert_int_equal(store_list_tasks_by_node(r, "n2", &tasks, &n), SWM_ECORRUPT);
    assert_non_null(strstr(store_read_err(r)->msg, "tasks_by_node"));
    assert_int_equal(store_list_tasks_by_service(r, "s1", &tasks, &n), 0);
    store_free_list(tasks, n);
}

static void allocation_failures_in_reads(void **state)
{
    struct fx *fx = *state;
    int rc = -1;
    long k;
    for (k = 0; k < 1000 && rc != 0; k++) {
        struct store_read *r = NULL;
        Swarmc__Task **tasks = NULL;
        size_t n = 0;
        swm_alloc_fail_after(k);
        rc = store_read_begin(fx->s, &r, NULL);
        if (rc == 0)
            rc = store_list_tasks_by_service(r, "s1", &tasks, &n);
        if (rc == 0) {
            store_free_list(tasks, n);
            tasks = NULL;
            rc = store_list_tasks(r, &tasks, &n);
        }
        swm_alloc_fail_reset();
        if (rc == 0) {
            assert_int_equal(n, 3);
            store_free_list(tasks, n);
        } else {
            assert_int_equal(rc, -ENOMEM);
            assert_null(tasks);
        }
        store_read_end(r);
    }
    assert_int_equal(rc, 0);
    assert_true(k > 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(gets_return_decoded_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(lists_are_complete_and_ordered, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_is_consistent, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_value_is_corrupt_not_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(value_of_another_object_is_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(extra_index_entry_is_refused_on_open, setup, teardown),
        cmocka_unit_test_setup_teardown(index_naming_a_changed_object_is_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(allocation_failures_in_reads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
