/* The linearizability checker against known histories: linearizable ones
 * (sequential, overlapping, with unknown outcomes) and non-linearizable ones
 * (stale read, lost write, read of a value never written, new-old inversion
 * between two readers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>

#include "lincheck.h"

#define PUT(id_, k, v, i, r)                                                                       \
    {                                                                                              \
        .id = id_, .key = k, .kind = LIN_PUT, .status = LIN_OK, .value = v, .invoke = i, .ret = r  \
    }
#define GET(id_, k, v, i, r)                                                                       \
    {                                                                                              \
        .id = id_, .key = k, .kind = LIN_GET, .status = LIN_OK, .value = v, .invoke = i, .ret = r  \
    }
#define PUT_UNKNOWN(id_, k, v, i)                                                                  \
    {                                                                                              \
        .id = id_, .key = k, .kind = LIN_PUT, .status = LIN_UNKNOWN, .value = v, .invoke = i       \
    }

static int check(const struct lin_op *ops, size_t n)
{
    struct lin_result res;
    return lin_check(ops, n, 0, &res);
}

static void test_empty_and_sequential(void **state)
{
    (void)state;
    assert_int_equal(lin_check(NULL, 0, 0, NULL), 0);
    const struct lin_op ops[] = {
        GET(1, 7, 0, 1, 2), PUT(2, 7, 5, 3, 4),  GET(3, 7, 5, 5, 6),
        PUT(4, 7, 6, 7, 8), GET(5, 7, 6, 9, 10),
    };
    assert_int_equal(check(ops, 5), 0);
}

static void test_overlapping_either_order(void **state)
{
    (void)state;
    /* The read overlaps the write: it may see the old or the new value. */
    const struct lin_op old[] = {PUT(1, 1, 5, 1, 2), PUT(2, 1, 6, 3, 10), GET(3, 1, 5, 4, 5)};
    const struct lin_op new[] = {PUT(1, 1, 5, 1, 2), PUT(2, 1, 6, 3, 10), GET(3, 1, 6, 4, 5)};
    assert_int_equal(check(old, 3), 0);
    assert_int_equal(check(new, 3), 0);
    /* Two overlapping writes, then reads that agree on one order. */
    const struct lin_op w2[] = {PUT(1, 1, 5, 1, 4), PUT(2, 1, 6, 2, 3), GET(3, 1, 5, 5, 6),
                                GET(4, 1, 5, 7, 8)};
    assert_int_equal(check(w2, 4), 0);
}

static void test_stale_read(void **state)
{
    (void)state;
    /* The write returned before the read began: reading the old value is
     * not linearizable (the bug a leader lease without bounds allows). */
    const struct lin_op ops[] = {PUT(1, 1, 5, 1, 2), PUT(2, 1, 6, 3, 4), GET(3, 1, 5, 5, 6)};
    struct lin_result res;
    assert_int_equal(lin_check(ops, 3, 0, &res), 1);
    assert_int_equal(res.bad_key, 1);
}

static void test_value_never_written(void **state)
{
    (void)state;
    const struct lin_op ops[] = {PUT(1, 1, 5, 1, 2), GET(2, 1, 9, 3, 4)};
    assert_int_equal(check(ops, 2), 1);
}

static void test_new_old_inversion(void **state)
{
    (void)state;
    /* A long write; one reader sees the new value, a later reader the old
     * one: each read alone overlaps the write, together they cannot. */
    const struct lin_op ops[] = {PUT(1, 1, 5, 1, 2), PUT(2, 1, 6, 3, 20), GET(3, 1, 6, 4, 5),
                                 GET(4, 1, 5, 6, 7)};
    assert_int_equal(check(ops, 4), 1);
}

static void test_unknown_writes(void **state)
{
    (void)state;
    /* A timed-out write may take effect long after its client gave up... */
    const struct lin_op late[] = {PUT_UNKNOWN(1, 1, 5, 1), GET(2, 1, 0, 10, 11),
                                  GET(3, 1, 5, 20, 21)};
    assert_int_equal(check(late, 3), 0);
    /* ...or never. */
    const struct lin_op never[] = {PUT_UNKNOWN(1, 1, 5, 1), GET(2, 1, 0, 10, 11)};
    assert_int_equal(check(never, 2), 0);
    /* But not before it was invoked. */
    const struct lin_op early[] = {GET(1, 1, 5, 1, 2), PUT_UNKNOWN(2, 1, 5, 3)};
    assert_int_equal(check(early, 2), 1);
    /* Two unknown writes can land in either order, after a read saw the
     * register still empty. */
    const struct lin_op two[] = {PUT_UNKNOWN(1, 1, 5, 1), PUT_UNKNOWN(2, 1, 6, 2),
                                 GET(3, 1, 0, 3, 4), GET(4, 1, 6, 5, 6), GET(5, 1, 5, 7, 8)};
    assert_int_equal(check(two, 5), 0);
    /* But each takes effect once: 5, 6, then 5 again is impossible. */
    const struct lin_op twice[] = {PUT_UNKNOWN(1, 1, 5, 1), PUT_UNKNOWN(2, 1, 6, 2),
                                   GET(3, 1, 5, 3, 4), GET(4, 1, 6, 5, 6), GET(5, 1, 5, 7, 8)};
    assert_int_equal(check(twice, 5), 1);
}

static void test_failed_ops_ignored(void **state)
{
    (void)state;
    struct lin_op ops[] = {PUT(1, 1, 5, 1, 2), PUT(2, 1, 6, 3, 4), GET(3, 1, 5, 5, 6)};
    ops[1].status = LIN_FAIL;
    assert_int_equal(check(ops, 3), 0);
}

static void test_keys_independent(void **state)
{
    (void)state;
    /* Key 2 alone is fine; key 3's read of 5 is stale. */
    const struct lin_op ops[] = {PUT(1, 2, 5, 1, 2), GET(2, 2, 5, 3, 4), PUT(3, 3, 5, 1, 2),
                                 PUT(4, 3, 6, 3, 4), GET(5, 3, 5, 5, 6)};
    struct lin_result res;
    assert_int_equal(lin_check(ops, 5, 0, &res), 1);
    assert_int_equal(res.bad_key, 3);
}

static void test_bad_history_and_budget(void **state)
{
    (void)state;
    const struct lin_op bad[] = {PUT(1, 1, 5, 3, 3)};
    assert_int_equal(check(bad, 1), -EINVAL);
    /* Many concurrent unknown writes and a read that matches none: the
     * search explores every subset and gives up within a tiny budget. */
    struct lin_op many[20];
    for (int i = 0; i < 19; i++)
        many[i] = (struct lin_op)PUT_UNKNOWN((uint64_t)i, 1, (uint32_t)i + 1, 1);
    many[19] = (struct lin_op)GET(99, 1, 77, 2, 3);
    assert_int_equal(lin_check(many, 20, 1000, NULL), -E2BIG);
}

static void test_many_concurrent_linearizable(void **state)
{
    (void)state;
    /* Four clients, 400 operations with overlapping windows, generated from
     * a sequential run so that a linearization exists. */
    struct lin_op ops[400];
    uint32_t reg = 0;
    uint64_t rng = 42;
    for (int i = 0; i < 400; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t point = 10 * (uint64_t)i + 5;
        uint64_t inv = point - 1 - (rng >> 60) % 4, ret = point + 1 + (rng >> 56) % 13;
        if ((rng >> 33) % 2) {
            reg = (uint32_t)i + 1;
            ops[i] = (struct lin_op)PUT((uint64_t)i, 1, reg, inv, ret);
        } else {
            ops[i] = (struct lin_op)GET((uint64_t)i, 1, reg, inv, ret);
        }
    }
    struct lin_result res;
    assert_int_equal(lin_check(ops, 400, 0, &res), 0);
    assert_int_equal(res.n_ops, 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_sequential),
        cmocka_unit_test(test_overlapping_either_order),
        cmocka_unit_test(test_stale_read),
        cmocka_unit_test(test_value_never_written),
        cmocka_unit_test(test_new_old_inversion),
        cmocka_unit_test(test_unknown_writes),
        cmocka_unit_test(test_failed_ops_ignored),
        cmocka_unit_test(test_keys_independent),
        cmocka_unit_test(test_bad_history_and_budget),
        cmocka_unit_test(test_many_concurrent_linearizable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
