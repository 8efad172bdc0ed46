/* store/store.c: opening, durability across close and crash, integrity
 * checks on open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "fixture.h"

#define CREATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE
#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING

static int setup(void **state)
{
    *state = fixture_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    fixture_rmdir(*state);
    return 0;
}

static void open_creates_a_private_directory(void **state)
{
    char *path = swm_asprintf("%s/a/state", (char *)*state);
    struct store *s = fixture_open(path);
    assert_true(store_applied_index(s) == 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    store_close(s);
    store_close(NULL);
    swm_free(path);
}

static void open_of_a_non_store_fails(void **state)
{
    char *path = swm_asprintf("%s/data.mdb", (char *)*state);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 8192; i++)
        fputc('x', f);
    fclose(f);
    struct store *s = NULL;
    struct swm_err err = {0};
    assert_int_equal(store_open(*state, &s, &err), SWM_ECORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, (char *)*state));
    swm_free(path);
}

static void newer_schema_is_refused(void **state)
{
    store_close(fixture_open(*state));
    static const unsigned char v2[] = {0, 0, 0, 2};
    fixture_raw_put(*state, "meta", "schema_version", 14, v2, sizeof(v2), 0);
    struct store *s = NULL;
    struct swm_err err = {0};
    assert_int_equal(store_open(*state, &s, &err), SWM_ENOTSUP);
    assert_non_null(strstr(err.msg, "schema version 2"));

    static const unsigned char bad[] = {1, 2, 3};
    fixture_raw_put(*state, "meta", "applied_index", 13, bad, sizeof(bad), 0);
    fixture_raw_put(*state, "meta", "schema_version", 14, (unsigned char[]){0, 0, 0, 1}, 4, 0);
    assert_int_equal(store_open(*state, &s, &err), SWM_ECORRUPT);
    assert_non_null(strstr(err.msg, "applied_index"));
}

static void state_survives_close_and_reopen(void **state)
{
    struct store *s = fixture_open(*state);
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof(id), "t%d", i);
        assert_int_equal(
            fixture_apply1(s, fixture_entry1(CREATE, fixture_task(id, "s", "n", RUNNING, 0))), 0);
    }
    store_close(s);
    s = fixture_open(*state);
    assert_true(store_applied_index(s) == 3);
    struct store_read *r;
    assert_int_equal(store_read_begin(s, &r, NULL), 0);
    Swarmc__Task **tasks;
    size_t n;
    assert_int_equal(store_list_tasks_by_node(r, "n", &tasks, &n), 0);
    assert_string_equal(fixture_task_ids(tasks, n), "t0,t1,t2");
    store_free_list(tasks, n);
    store_read_end(r);
    store_close(s);
}

/* DESIGN.md §5: state must survive kill -9 at any moment. A child applies
 * and dies by SIGKILL without closing; everything it was told is committed
 * must be there. */
static void committed_state_survives_kill_9(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *s = NULL;
        if (store_open(*state, &s, NULL) != 0)
            _exit(1);
        for (int i = 0; i < 20; i++) {
            char id[8];
            snprintf(id, sizeof(id), "t%02d", i);
            Swarmc__StoreEntry *e = fixture_entry1(CREATE, fixture_task(id, "s", "n", RUNNING, 0));
            struct store_apply_result res;
            if (store_apply_entries(s, store_applied_index(s) + 1, &e, 1, &res, NULL) != 0)
                _exit(1);
        }
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    struct store *s = fixture_open(*state);
    assert_true(store_applied_index(s) == 20);
    struct store_read *r;
    assert_int_equal(store_read_begin(s, &r, NULL), 0);
    Swarmc__Task **tasks;
    size_t n;
    assert_int_equal(store_list_tasks(r, &tasks, &n), 0);
    assert_int_equal(n, 20);
    store_free_list(tasks, n);
    store_read_end(r);
    store_close(s);
}

static void allocation_failure_in_open(void **state)
{
    int rc = -1;
    long k;
    for (k = 0; k < 100 && rc != 0; k++) {
        struct store *s = NULL;
        struct swm_err err = {0};
        swm_alloc_fail_after(k);
        rc = store_open(*state, &s, &err);
        swm_alloc_fail_reset();
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_null(s);
        }
        store_close(s);
    }
    assert_int_equal(rc, 0);
    assert_true(k > 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_creates_a_private_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(open_of_a_non_store_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(newer_schema_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(state_survives_close_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(committed_state_survives_kill_9, setup, teardown),
        cmocka_unit_test_setup_teardown(allocation_failure_in_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
