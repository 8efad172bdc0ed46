#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/parse.h"

static void duration_accepts_go_syntax(void **state)
{
    int64_t ns;
    assert_int_equal(swm_parse_duration("1m30s", &ns), 0);
    assert_true(ns == 90LL * 1000000000LL);
    assert_int_equal(swm_parse_duration("300ms", &ns), 0);
    assert_true(ns == 300LL * 1000000LL);
    assert_int_equal(swm_parse_duration("1.5h", &ns), 0);
    assert_true(ns == 5400LL * 1000000000LL);
    assert_int_equal(swm_parse_duration("0", &ns), 0);
    assert_true(ns == 0);
    assert_int_equal(swm_parse_duration("10us", &ns), 0);
    assert_true(ns == 10000);
}

static void duration_rejects_garbage(void **state)
{
    int64_t ns = 42;
    assert_int_equal(swm_parse_duration("", &ns), -EINVAL);
    assert_int_equal(swm_parse_duration("10", &ns), -EINVAL);
    assert_int_equal(swm_parse_duration("-1s", &ns), -EINVAL);
    assert_int_equal(swm_parse_duration("5x", &ns), -EINVAL);
    assert_int_equal(swm_parse_duration("s", &ns), -EINVAL);
    assert_true(ns == 42);
}

static void bytes_parse_binary_units(void **state)
{
    int64_t b;
    assert_int_equal(swm_parse_bytes("512m", &b), 0);
    assert_true(b == 512LL << 20);
    assert_int_equal(swm_parse_bytes("1G", &b), 0);
    assert_true(b == 1LL << 30);
    assert_int_equal(swm_parse_bytes("64kb", &b), 0);
    assert_true(b == 64LL << 10);
    assert_int_equal(swm_parse_bytes("100", &b), 0);
    assert_true(b == 100);
    assert_int_equal(swm_parse_bytes("1.5g", &b), 0);
    assert_true(b == (int64_t)(1.5 * (1 << 30)));
    assert_int_equal(swm_parse_bytes("12q", &b), -EINVAL);
    assert_int_equal(swm_parse_bytes("m", &b), -EINVAL);
    assert_int_equal(swm_parse_bytes("-5m", &b), -EINVAL);
}

static void cpus_and_uints(void **state)
{
    int64_t n;
    uint64_t u;
    assert_int_equal(swm_parse_nano_cpus("0.5", &n), 0);
    assert_true(n == 500000000);
    assert_int_equal(swm_parse_nano_cpus("abc", &n), -EINVAL);
    assert_int_equal(swm_parse_uint("42", 100, &u), 0);
    assert_true(u == 42);
    assert_int_equal(swm_parse_uint("101", 100, &u), -ERANGE);
    assert_int_equal(swm_parse_uint("4x", 100, &u), -EINVAL);
    assert_int_equal(swm_parse_uint("-1", 100, &u), -EINVAL);
}

static void duration_formats_like_go(void **state)
{
    char buf[32];
    swm_format_duration(90LL * 1000000000LL, buf, sizeof(buf));
    assert_string_equal(buf, "1m30s");
    swm_format_duration(5LL * 1000000000LL, buf, sizeof(buf));
    assert_string_equal(buf, "5s");
    swm_format_duration(0, buf, sizeof(buf));
    assert_string_equal(buf, "0s");
    swm_format_duration(250LL * 1000000LL, buf, sizeof(buf));
    assert_string_equal(buf, "250ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duration_accepts_go_syntax), cmocka_unit_test(duration_rejects_garbage),
        cmocka_unit_test(bytes_parse_binary_units),   cmocka_unit_test(cpus_and_uints),
        cmocka_unit_test(duration_formats_like_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
