/* manager/manager.c: the control loops on a real loop with the store log:
 * passes follow commits without being called, timed wake-ups, and closing
 * while a pass is being written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "common/alloc.h"
#include "common/timeutil.h"
#include "manager/internal.h"

#define SVC "s00000000000000000000web1"

struct mfx {
    struct cfx c;
    struct manager *m;
};

static int setup(void **state)
{
    struct mfx *f = calloc(1, sizeof(*f));
    cfx_setup(&f->c);
    cfx_open_log(&f->c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct mfx *f = *state;
    manager_close(f->m);
    cfx_teardown(&f->c);
    free(f);
    return 0;
}

static void open_manager(struct mfx *f)
{
    struct swm_err err = {0};
    if (manager_open(&f->c.loop, f->c.s, f->c.log, &f->m, &err) != 0)
        fail_msg("manager_open: %s", err.msg);
}

static Swarmc__StoreEntry *service_entry(uint64_t replicas)
{
    Swarmc__Service *svc =
        obj_service(SVC, "web", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, replicas);
    return fixture_entry1(CREATE, svc);
}

/* The manager has nothing left to do: no pass queued or being written. */
static bool manager_idle(void *arg)
{
    struct manager *m = arg;
    return !m->writing && !uv_is_active((uv_handle_t *)&m->pass_timer);
}

struct count_arg {
    struct cfx *c;
    int state, desired;
    size_t want;
};

static bool count_reached(void *arg)
{
    struct count_arg *a = arg;
    return cfx_count(a->c, a->state, a->desired) == a->want;
}

static bool manager_writing(void *arg)
{
    return ((struct manager *)arg)->writing;
}

static void test_service_created_through_log_gets_assigned_tasks(void **state)
{
    struct mfx *f = *state;
    open_manager(f);
    cfx_run_until(&f->c, manager_idle, f->m, "the first pass");
    /* Nothing to do in a bootstrapped cluster without services. */
    assert_int_equal(store_applied_index(f->c.s), f->c.base_index);

    assert_int_equal(cfx_write(&f->c, service_entry(3)), 0);
    struct count_arg want = {&f->c, ST(ASSIGNED), ST(RUNNING), 3};
    cfx_run_until(&f->c, count_reached, &want, "three assigned tasks");
    cfx_run_until(&f->c, manager_idle, f->m, "the manager to settle");

    /* One entry for the service, one for the pass: the pass that follows
     * the manager's own commit finds nothing left to do. */
    uint64_t index = store_applied_index(f->c.s);
    assert_int_equal(index, f->c.base_index + 2);
    assert_int_equal(cfx_count(&f->c, -1, -1), 3);

    /* Scaling is picked up the same way. */
    Swarmc__Service *svc = cfx_service(&f->c, SVC);
    svc->spec->replicas = 5;
    assert_int_equal(cfx_write1(&f->c, UPDATE, svc), 0);
    want.want = 5;
    cfx_run_until(&f->c, count_reached, &want, "five assigned tasks");
    cfx_run_until(&f->c, manager_idle, f->m, "the manager to settle");
    assert_int_equal(store_applied_index(f->c.s), index + 2);
}

static void test_restart_delay_wakes_the_manager_without_events(void **state)
{
    struct mfx *f = *state;
    const int64_t delay = 50 * SWM_NS_PER_MS;
    Swarmc__Service *svc =
        obj_service(SVC, "web", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, 1);
    Swarmc__RestartPolicy *rp = obj_restart(obj_service_task(svc));
    rp->has_delay = 1;
    rp->delay = delay;
    assert_int_equal(cfx_write1(&f->c, CREATE, svc), 0);
    open_manager(f);
    struct count_arg assigned = {&f->c, ST(ASSIGNED), ST(RUNNING), 1};
    cfx_run_until(&f->c, count_reached, &assigned, "an assigned task");
    cfx_run_until(&f->c, manager_idle, f->m, "the manager to settle");
    assert_false(uv_is_active((uv_handle_t *)&f->m->wakeup_timer));

    size_t n = 0;
    Swarmc__Task **tasks = cfx_tasks(&f->c, &n);
    assert_int_equal(n, 1);
    test_clock_now_ns += SWM_NS_PER_SEC;
    int64_t failed_at = test_clock_now_ns;
    assert_int_equal(cfx_set_state(&f->c, tasks[0]->id, ST(FAILED), failed_at), 0);
    store_free_list(tasks, n);

    /* The replacement is made at once and waits in READY, with the
     * manager's timer set for the end of the delay... */
    struct count_arg ready = {&f->c, ST(ASSIGNED), ST(READY), 1};
    cfx_run_until(&f->c, count_reached, &ready, "a replacement waiting in READY");
    cfx_run_until(&f->c, manager_idle, f->m, "the manager to settle");
    assert_true(uv_is_active((uv_handle_t *)&f->m->wakeup_timer));
    /* ...which, while the clock has not reached it, only sets it again... */
    cfx_run_for(&f->c, 3 * delay / SWM_NS_PER_MS);
    cfx_run_until(&f->c, manager_idle, f->m, "the manager to settle");
    assert_int_equal(cfx_count(&f->c, ST(ASSIGNED), ST(READY)), 1);
    assert_true(uv_is_active((uv_handle_t *)&f->m->wakeup_timer));
    /* ...and once it has, runs the pass that lets the replacement start,
     * with no store event to trigger it. */
    test_clock_now_ns = failed_at + delay;
    cfx_run_until(&f->c, count_reached, &assigned, "the replacement to be told to run");
    cfx_run_until(&f->c, manager_idle, f->m, "the manager to settle");
    assert_int_equal(cfx_count(&f->c, ST(ASSIGNED), ST(READY)), 0);
}

static void test_close_with_pass_in_flight(void **state)
{
    struct mfx *f = *state;
    assert_int_equal(cfx_write(&f->c, service_entry(3)), 0);
    open_manager(f);
    cfx_run_until(&f->c, manager_writing, f->m, "a pass to be written");
    uint64_t index = store_applied_index(f->c.s);
    /* The manager goes away while the log still holds its entry: the entry
     * is written, the callback finds the manager closing and frees it (the
     * teardown checks no handle is left; ASan, that nothing leaked). */
    manager_close(f->m);
    f->m = NULL;
    struct count_arg want = {&f->c, ST(ASSIGNED), ST(RUNNING), 3};
    cfx_run_until(&f->c, count_reached, &want, "the pass in flight to commit");
    assert_int_equal(store_applied_index(f->c.s), index + 1);
    /* No pass runs after close, even though the commit changed the store. */
    assert_int_equal(cfx_write1(&f->c, REMOVE, cfx_service(&f->c, SVC)), 0);
    cfx_run_for(&f->c, 50);
    assert_int_equal(cfx_count(&f->c, -1, ST(RUNNING)), 3);
}

static void test_close_after_log_with_pass_in_flight(void **state)
{
    struct mfx *f = *state;
    assert_int_equal(cfx_write(&f->c, service_entry(3)), 0);
    open_manager(f);
    cfx_run_until(&f->c, manager_writing, f->m, "a pass to be written");
    /* The daemon's shutdown order: the log first, then the manager. */
    cfx_close_log(&f->c);
    manager_close(f->m);
    f->m = NULL;
}

static void test_close_before_first_pass(void **state)
{
    struct mfx *f = *state;
    assert_int_equal(cfx_write(&f->c, service_entry(3)), 0);
    open_manager(f);
    manager_close(f->m);
    f->m = NULL;
    cfx_run_for(&f->c, 20);
    assert_int_equal(cfx_count(&f->c, -1, -1), 0);
}

static void test_heartbeat_period_from_cluster(void **state)
{
    struct mfx *f = *state;
    assert_int_equal(manager_heartbeat_period(f->c.s), 5 * SWM_NS_PER_SEC);
    Swarmc__Cluster *c = NULL;
    struct store_read *r = NULL;
    assert_int_equal(store_read_begin(f->c.s, &r, NULL), 0);
    assert_int_equal(store_get_cluster(r, &c), 0);
    store_read_end(r);
    c->spec = obj_new(&swarmc__cluster_spec__descriptor);
    c->spec->has_dispatcher_heartbeat_period = 1;
    c->spec->dispatcher_heartbeat_period = 250 * SWM_NS_PER_MS;
    assert_int_equal(cfx_write1(&f->c, UPDATE, c), 0);
    assert_int_equal(manager_heartbeat_period(f->c.s), 250 * SWM_NS_PER_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_service_created_through_log_gets_assigned_tasks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_delay_wakes_the_manager_without_events, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pass_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_after_log_with_pass_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_before_first_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_period_from_cluster, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
