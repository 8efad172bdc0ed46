/* store/events.c: changes reach watchers after commit, in commit order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define CREATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE
#define UPDATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE
#define REMOVE SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE
#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING

/* What a watcher saw: one line per event, "|" between calls. */
struct seen {
    struct store *s;
    char log[1024];
    int calls;
    int unwatch_after; /* unregister itself after this many calls; 0 = never */
};

static void describe(const struct store_event *ev, char *buf, size_t size)
{
    static const char actions[] = {'?', 'C', 'U', 'R'};
    const char *id = "?";
    uint64_t version = 0;
    if (ev->kind == STORE_KIND_TASK) {
        const Swarmc__Task *t = (const Swarmc__Task *)ev->object;
        id = t->id;
        version = t->meta->version;
    } else if (ev->kind == STORE_KIND_SERVICE) {
        const Swarmc__Service *svc = (const Swarmc__Service *)ev->object;
        id = svc->id;
        version = svc->meta->version;
    }
    snprintf(buf, size, "%c %s %" PRIu64 ";", actions[ev->action], id, version);
}

static void record(void *arg, const struct store_event *events, size_t n)
{
    struct seen *seen = arg;
    if (seen->calls++ > 0)
        strncat(seen->log, "|", sizeof(seen->log) - strlen(seen->log) - 1);
    for (size_t i = 0; i < n; i++) {
        char line[64];
        describe(&events[i], line, sizeof(line));
        strncat(seen->log, line, sizeof(seen->log) - strlen(seen->log) - 1);
    }
    if (seen->unwatch_after != 0 && seen->calls == seen->unwatch_after)
        assert_int_equal(store_unwatch(seen->s, record, seen), 0);
}

static void events_arrive_in_commit_order(void **state)
{
    struct store_fx *fx = *state;
    struct seen seen = {.s = fx->s};
    assert_int_equal(store_watch(fx->s, record, &seen), 0);

    Swarmc__StoreEntry *e[3];
    e[0] = fixture_entry();
    fixture_add(e[0], CREATE, fixture_task("t1", "s", "n", RUNNING, 0));
    fixture_add(e[0], CREATE, fixture_task("t2", "s", "n", RUNNING, 0));
    e[1] = fixture_entry1(UPDATE, fixture_task("t1", "s", "m", RUNNING, 1));
    /* A failed entry's changes are rolled back, and so are its events. */
    e[2] = fixture_entry();
    fixture_add(e[2], CREATE, fixture_task("t3", "s", "n", RUNNING, 0));
    fixture_add(e[2], UPDATE, fixture_task("missing", "s", "n", RUNNING, 1));
    struct store_apply_result res[3];
    fixture_apply(fx->s, e, 3, res);
    assert_int_equal(res[2].err.code, SWM_ENOTFOUND);
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(REMOVE, fixture_task("t2", NULL, NULL, 0, 0))), 0);

    /* Nothing is delivered until asked, on "the loop thread". */
    assert_int_equal(seen.calls, 0);
    store_deliver_events(fx->s);
    assert_int_equal(seen.calls, 2); /* one call per committed batch */
    assert_string_equal(seen.log, "C t1 1;C t2 1;U t1 2;|R t2 1;");
    store_deliver_events(fx->s);
    assert_int_equal(seen.calls, 2);

    assert_int_equal(store_unwatch(fx->s, record, &seen), 0);
    assert_int_equal(store_unwatch(fx->s, record, &seen), SWM_ENOTFOUND);
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_task("t4", "s", "n", RUNNING, 0))), 0);
    store_deliver_events(fx->s);
    assert_int_equal(seen.calls, 2);
}

static void watcher_may_unregister_itself(void **state)
{
    struct store_fx *fx = *state;
    struct seen a = {.s = fx->s, .unwatch_after = 1}, b = {.s = fx->s};
    assert_int_equal(store_watch(fx->s, record, &a), 0);
    assert_int_equal(store_watch(fx->s, record, &b), 0);
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_service("s1", "web", 0))),
                     0);
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(REMOVE, fixture_service("s1", NULL, 1))),
                     0);
    store_deliver_events(fx->s);
    assert_string_equal(a.log, "C s1 1;");
    assert_string_equal(b.log, "C s1 1;|R s1 1;");
    assert_int_equal(store_unwatch(fx->s, record, &b), 0);
}

static void undelivered_events_are_freed_on_close(void **state)
{
    struct store_fx *fx = *state;
    struct seen seen = {.s = fx->s};
    assert_int_equal(store_watch(fx->s, record, &seen), 0);
    assert_int_equal(
        fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_task("t1", "s", "n", RUNNING, 0))), 0);
    /* teardown closes with the batch still queued: ASan reports a leak if
     * it is not freed. */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(events_arrive_in_commit_order, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(watcher_may_unregister_itself, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(undelivered_events_are_freed_on_close, fixture_store_setup,
                                        fixture_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
