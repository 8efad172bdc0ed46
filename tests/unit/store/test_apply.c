/* store/apply.c: the write path, its indexes and its per-entry outcomes. */
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
#define REMOVE SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE
#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define SHUTDOWN SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN

static struct store_read *begin(struct store *s)
{
    struct store_read *r;
    assert_int_equal(store_read_begin(s, &r, NULL), 0);
    return r;
}

enum by { BY_SERVICE, BY_NODE, BY_STATE };

/* The ids of the tasks an index lookup returns, sorted. */
static const char *ids_by(struct store *s, enum by by, const char *key, Swarmc__TaskState state)
{
    struct store_read *r = begin(s);
    Swarmc__Task **tasks = NULL;
    size_t n = 99;
    int rc = by == BY_SERVICE ? store_list_tasks_by_service(r, key, &tasks, &n)
             : by == BY_NODE  ? store_list_tasks_by_node(r, key, &tasks, &n)
                              : store_list_tasks_by_desired_state(r, state, &tasks, &n);
    assert_int_equal(rc, 0);
    assert_non_null(tasks);
    const char *ids = fixture_task_ids(tasks, n);
    store_free_list(tasks, n);
    store_read_end(r);
    return ids;
}

static Swarmc__Task *get_task(struct store *s, const char *id)
{
    struct store_read *r = begin(s);
    Swarmc__Task *t = NULL;
    assert_int_equal(store_get_task(r, id, &t), 0);
    store_read_end(r);
    return t;
}

static void create_sets_version_and_keeps_timestamps(void **state)
{
    struct store_fx *fx = *state;
    Swarmc__StoreEntry *e = fixture_entry();
    fixture_add(e, CREATE, fixture_node("n1", 0));
    fixture_add(e, CREATE, fixture_service("s1", "web", 0));
    fixture_add(e, CREATE, fixture_task("t1", "s1", "n1", RUNNING, 77)); /* version ignored */
    fixture_add(e, CREATE, fixture_cluster("c1", 0));
    fixture_apply(fx->s, &e, 1, NULL);
    assert_true(store_applied_index(fx->s) == 1);

    Swarmc__Task *t = get_task(fx->s, "t1");
    assert_true(t->meta->version == 1);
    assert_true(t->meta->created_at == 1000);
    assert_string_equal(t->node_id, "n1");
    proto_free(t);

    /* An update gets the entry's index; created_at stays the stored one
     * even if the proposal says otherwise, updated_at is the proposal's. */
    Swarmc__Task *u = fixture_task("t1", "s1", "n1", RUNNING, 1);
    u->meta->created_at = 5;
    u->meta->updated_at = 2000;
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(UPDATE, u)), 0);
    t = get_task(fx->s, "t1");
    assert_true(t->meta->version == 2);
    assert_true(t->meta->created_at == 1000);
    assert_true(t->meta->updated_at == 2000);
    proto_free(t);
}

static void create_of_existing_id_fails(void **state)
{
    struct store_fx *fx = *state;
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_node("n1", 0))), 0);
    struct store_apply_result res;
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_node("n1", 0));
    fixture_apply(fx->s, &e, 1, &res);
    assert_int_equal(res.err.code, SWM_EEXISTS);
    assert_non_null(strstr(res.err.msg, "n1"));

    /* The one cluster. */
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_cluster("c1", 0))), 0);
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_cluster("c2", 0))),
                     SWM_EEXISTS);
}

static void malformed_actions_fail_the_entry(void **state)
{
    struct store_fx *fx = *state;
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_node("", 0));
    assert_int_equal(fixture_apply1(fx->s, e), SWM_EINVAL_SPEC);

    char long_id[300];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_node(long_id, 0))),
                     SWM_EINVAL_SPEC);
    /* An over-long indexed field, too (LMDB keys are bounded). */
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_task("t1", long_id, "", RUNNING, 0))),
        SWM_EINVAL_SPEC);

    e = fixture_entry1(CREATE, fixture_node("n1", 0));
    e->actions[0]->has_kind = 0; /* packed, this means no kind at all */
    assert_int_equal(fixture_apply1(fx->s, e), SWM_EINVAL_SPEC);

    assert_true(store_applied_index(fx->s) == 4);
    struct store_read *r = begin(fx->s);
    Swarmc__Task **tasks;
    size_t n;
    assert_int_equal(store_list_tasks(r, &tasks, &n), 0);
    assert_int_equal(n, 0);
    store_free_list(tasks, n);
    store_read_end(r);
}

static void indexes_follow_task_changes(void **state)
{
    struct store_fx *fx = *state;
    Swarmc__StoreEntry *e = fixture_entry();
    fixture_add(e, CREATE, fixture_task("t1", "A", "N1", RUNNING, 0));
    fixture_add(e, CREATE, fixture_task("t2", "A", "N2", RUNNING, 0));
    fixture_add(e, CREATE, fixture_task("t3", "B", "N1", SHUTDOWN, 0));
    fixture_add(e, CREATE, fixture_task("t4", "B", NULL, RUNNING, 0)); /* not scheduled */
    fixture_apply(fx->s, &e, 1, NULL);

    assert_string_equal(ids_by(fx->s, BY_NODE, "N1", 0), "t1,t3");
    assert_string_equal(ids_by(fx->s, BY_NODE, "N2", 0), "t2");
    assert_string_equal(ids_by(fx->s, BY_NODE, "", 0), "");
    assert_string_equal(ids_by(fx->s, BY_SERVICE, "A", 0), "t1,t2");
    assert_string_equal(ids_by(fx->s, BY_SERVICE, "B", 0), "t3,t4");
    assert_string_equal(ids_by(fx->s, BY_STATE, NULL, RUNNING), "t1,t2,t4");
    assert_string_equal(ids_by(fx->s, BY_STATE, NULL, SHUTDOWN), "t3");

    /* t1 moves to N2 and is shut down; t4 gets a node. */
    e = fixture_entry();
    fixture_add(e, UPDATE, fixture_task("t1", "A", "N2", SHUTDOWN, 1));
    fixture_add(e, UPDATE, fixture_task("t4", "B", "N3", RUNNING, 1));
    fixture_apply(fx->s, &e, 1, NULL);
    assert_string_equal(ids_by(fx->s, BY_NODE, "N1", 0), "t3");
    assert_string_equal(ids_by(fx->s, BY_NODE, "N2", 0), "t1,t2");
    assert_string_equal(ids_by(fx->s, BY_NODE, "N3", 0), "t4");
    assert_string_equal(ids_by(fx->s, BY_STATE, NULL, RUNNING), "t2,t4");
    assert_string_equal(ids_by(fx->s, BY_STATE, NULL, SHUTDOWN), "t1,t3");

    /* Removal takes a task out of every index; version 0 = unconditional. */
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(REMOVE, fixture_task("t2", NULL, NULL, 0, 0))), 0);
    assert_string_equal(ids_by(fx->s, BY_NODE, "N2", 0), "t1");
    assert_string_equal(ids_by(fx->s, BY_SERVICE, "A", 0), "t1");
    assert_string_equal(ids_by(fx->s, BY_STATE, NULL, RUNNING), "t4");
    assert_string_equal(ids_by(fx->s, BY_SERVICE, "nosuch", 0), "");
}

static void service_name_index_and_conflicts(void **state)
{
    struct store_fx *fx = *state;
    struct store_read *r;
    Swarmc__Service *svc;
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_service("s1", "web", 0))),
                     0);

    struct store_apply_result res;
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_service("s2", "web", 0));
    fixture_apply(fx->s, &e, 1, &res);
    assert_int_equal(res.err.code, SWM_EEXISTS);
    assert_non_null(strstr(res.err.msg, "name conflicts with an existing object"));

    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_service("s2", "api", 0))),
                     0);
    /* Renaming onto a taken name fails too; s2 keeps its name. */
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(UPDATE, fixture_service("s2", "web", 3))),
                     SWM_EEXISTS);
    r = begin(fx->s);
    assert_int_equal(store_get_service_by_name(r, "api", &svc), 0);
    assert_string_equal(svc->id, "s2");
    proto_free(svc);
    store_read_end(r);

    /* Swapping names in one entry works: old keys leave first. */
    e = fixture_entry();
    fixture_add(e, UPDATE, fixture_service("s1", "tmp", 1));
    fixture_add(e, UPDATE, fixture_service("s2", "web", 3));
    fixture_add(e, UPDATE, fixture_service("s1", "api", 5));
    fixture_apply(fx->s, &e, 1, &res);
    if (res.err.code != 0)
        fail_msg("%s", res.err.msg);
    r = begin(fx->s);
    assert_int_equal(store_get_service_by_name(r, "web", &svc), 0);
    assert_string_equal(svc->id, "s2");
    proto_free(svc);
    assert_int_equal(store_get_service_by_name(r, "api", &svc), 0);
    assert_string_equal(svc->id, "s1");
    proto_free(svc);
    assert_int_equal(store_get_service_by_name(r, "tmp", &svc), SWM_ENOTFOUND);
    store_read_end(r);

    /* Removing a service frees its name. */
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(REMOVE, fixture_service("s2", NULL, 5))),
                     0);
    r = begin(fx->s);
    assert_int_equal(store_get_service_by_name(r, "web", &svc), SWM_ENOTFOUND);
    store_read_end(r);
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_service("s3", "web", 0))),
                     0);
}

static void stale_version_changes_nothing(void **state)
{
    struct store_fx *fx = *state;
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_task("t1", "A", "N1", RUNNING, 0))),
        0);

    uint64_t bad[] = {0, 2, 5};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct store_apply_result res;
        Swarmc__StoreEntry *e =
            fixture_entry1(UPDATE, fixture_task("t1", "B", "N2", SHUTDOWN, bad[i]));
        fixture_apply(fx->s, &e, 1, &res);
        assert_int_equal(res.err.code, SWM_ESTALE);
        assert_non_null(strstr(res.err.msg, "update out of sequence"));
    }
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(REMOVE, fixture_task("t1", NULL, NULL, 0, 3))),
        SWM_ESTALE);
    /* Failed entries still advance the applied index... */
    assert_true(store_applied_index(fx->s) == 5);
    /* ...but change nothing. */
    Swarmc__Task *t = get_task(fx->s, "t1");
    assert_true(t->meta->version == 1);
    assert_string_equal(t->node_id, "N1");
    proto_free(t);
    assert_string_equal(ids_by(fx->s, BY_NODE, "N1", 0), "t1");
    assert_string_equal(ids_by(fx->s, BY_NODE, "N2", 0), "");
    assert_string_equal(ids_by(fx->s, BY_SERVICE, "A", 0), "t1");
    assert_string_equal(ids_by(fx->s, BY_STATE, NULL, RUNNING), "t1");

    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(UPDATE, fixture_task("t1", "B", "N2", SHUTDOWN, 1))),
        0);
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(UPDATE, fixture_task("missing", "B", "N2",
                                                                               SHUTDOWN, 1))),
                     SWM_ENOTFOUND);
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(REMOVE, fixture_task("missing", NULL, NULL, 0, 0))),
        SWM_ENOTFOUND);
}

static void failed_entry_leaves_neighbours_alone(void **state)
{
    struct store_fx *fx = *state;
    Swarmc__StoreEntry *e[3];
    e[0] = fixture_entry1(CREATE, fixture_task("t1", "A", "N1", RUNNING, 0));
    /* Entry 2 creates t2, then fails: t2 must not exist afterwards. */
    e[1] = fixture_entry();
    fixture_add(e[1], CREATE, fixture_task("t2", "A", "N1", RUNNING, 0));
    fixture_add(e[1], CREATE, fixture_service("s1", "web", 0));
    fixture_add(e[1], UPDATE, fixture_task("t9", "A", "N1", RUNNING, 1));
    e[2] = fixture_entry1(CREATE, fixture_task("t3", "A", "N1", RUNNING, 0));
    struct store_apply_result res[3];
    fixture_apply(fx->s, e, 3, res);
    assert_int_equal(res[0].err.code, 0);
    assert_int_equal(res[1].err.code, SWM_ENOTFOUND);
    assert_non_null(strstr(res[1].err.msg, "t9"));
    assert_int_equal(res[2].err.code, 0);
    assert_true(store_applied_index(fx->s) == 3);

    assert_string_equal(ids_by(fx->s, BY_NODE, "N1", 0), "t1,t3");
    assert_string_equal(ids_by(fx->s, BY_SERVICE, "A", 0), "t1,t3");
    Swarmc__Task *t = get_task(fx->s, "t3");
    assert_true(t->meta->version == 3);
    proto_free(t);
    struct store_read *r = begin(fx->s);
    Swarmc__Service *svc;
    assert_int_equal(store_get_service_by_name(r, "web", &svc), SWM_ENOTFOUND);
    assert_int_equal(store_get_service(r, "s1", &svc), SWM_ENOTFOUND);
    store_read_end(r);
}

static void bad_arguments_apply_nothing(void **state)
{
    struct store_fx *fx = *state;
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_node("n1", 0))), 0);
    Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_node("n2", 0));
    struct store_apply_result res;
    struct swm_err err = {0};
    /* Index 1 is already applied: a replayed entry must not apply twice. */
    assert_int_equal(store_apply_entries(fx->s, 1, &e, 1, &res, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "already applied"));
    assert_int_equal(store_apply_entries(fx->s, 0, &e, 1, &res, &err), -EINVAL);
    Swarmc__StoreEntry *none[1] = {NULL};
    assert_int_equal(store_apply_entries(fx->s, 2, none, 1, &res, &err), -EINVAL);
    /* Gaps are fine (raft entries that carry no store change). */
    assert_int_equal(store_apply_entries(fx->s, 10, &e, 1, &res, &err), 0);
    assert_int_equal(res.err.code, 0);
    assert_true(store_applied_index(fx->s) == 10);
    proto_free(e);
}

static void watch_nothing(void *arg, const struct store_event *events, size_t n)
{
    (*(size_t *)arg) += n;
}

/* OOM loop (SQLite's test_malloc.c style): fail the k-th allocation for
 * k = 0, 1, ... until the batch commits; every failure must be -ENOMEM with
 * nothing applied, and nothing may leak (ASan checks at exit). */
static void allocation_failures_apply_nothing(void **state)
{
    struct store_fx *fx = *state;
    size_t seen = 0;
    assert_int_equal(store_watch(fx->s, watch_nothing, &seen), 0); /* events allocate */
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_task("t0", "A", "N1", RUNNING, 0))),
        0);
    store_deliver_events(fx->s);

    Swarmc__StoreEntry *e[2];
    e[0] = fixture_entry();
    fixture_add(e[0], CREATE, fixture_task("t1", "A", "N1", RUNNING, 0));
    fixture_add(e[0], UPDATE, fixture_task("t0", "A", "N2", RUNNING, 1));
    e[1] = fixture_entry1(REMOVE, fixture_task("t0", NULL, NULL, 0, 0));
    struct store_apply_result res[2];
    int rc = -1;
    long k;
    for (k = 0; k < 1000 && rc != 0; k++) {
        struct swm_err err = {0};
        swm_alloc_fail_after(k);
        rc = store_apply_entries(fx->s, store_applied_index(fx->s) + 1, e, 2, res, &err);
        swm_alloc_fail_reset();
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_true(store_applied_index(fx->s) == 1);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(k > 1); /* the loop did inject failures */
    assert_int_equal(res[0].err.code, 0);
    assert_int_equal(res[1].err.code, 0);
    store_deliver_events(fx->s);
    assert_int_equal(seen, 1 + 3);
    assert_string_equal(ids_by(fx->s, BY_NODE, "N1", 0), "t1");
    assert_string_equal(ids_by(fx->s, BY_NODE, "N2", 0), "");
    proto_free(e[0]);
    proto_free(e[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_sets_version_and_keeps_timestamps,
                                        fixture_store_setup, fixture_store_teardown),
        cmocka_unit_test_setup_teardown(create_of_existing_id_fails, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(malformed_actions_fail_the_entry, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(indexes_follow_task_changes, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(service_name_index_and_conflicts, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(stale_version_changes_nothing, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(failed_entry_leaves_neighbours_alone, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(bad_arguments_apply_nothing, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(allocation_failures_apply_nothing, fixture_store_setup,
                                        fixture_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
