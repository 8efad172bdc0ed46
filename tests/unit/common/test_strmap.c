#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "common/alloc.h"
#include "common/strmap.h"

static void put_get_delete_many(void **state)
{
    struct swm_strmap m = {0};
    static int values[2000];
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "task-%d", i);
        assert_int_equal(swm_strmap_put(&m, key, &values[i]), 0);
    }
    assert_int_equal(m.len, 2000);
    /* Delete every odd key; the even ones must stay reachable. */
    for (int i = 1; i < 2000; i += 2) {
        snprintf(key, sizeof(key), "task-%d", i);
        assert_ptr_equal(swm_strmap_del(&m, key), &values[i]);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "task-%d", i);
        assert_ptr_equal(swm_strmap_get(&m, key), i % 2 == 0 ? &values[i] : NULL);
    }
    assert_null(swm_strmap_del(&m, "absent"));
    swm_strmap_free(&m);
}

static void put_fails_cleanly_without_memory(void **state)
{
    struct swm_strmap m = {0};
    int v = 1;
    swm_alloc_fail_after(0);
    assert_int_equal(swm_strmap_put(&m, "a", &v), -12);
    swm_alloc_fail_reset();
    assert_null(swm_strmap_get(&m, "a"));
    assert_int_equal(swm_strmap_put(&m, "a", &v), 0);
    assert_ptr_equal(swm_strmap_get(&m, "a"), &v);
    swm_strmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_delete_many),
        cmocka_unit_test(put_fails_cleanly_without_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
