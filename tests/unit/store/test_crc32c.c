/* store/crc32c.c: the checksum guarding log entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "store/internal.h"

static void matches_the_castagnoli_check_value(void **state)
{
    /* The standard check value of CRC-32C (RFC 3720 B.4, iSCSI). */
    assert_true(store__crc32c(0, "123456789", 9) == 0xe3069283U);
    assert_true(store__crc32c(0, "", 0) == 0);
    static const uint8_t zeros[32] = {0};
    assert_true(store__crc32c(0, zeros, sizeof(zeros)) == 0x8a9136aaU);
}

static void continues_across_pieces(void **state)
{
    const char *s = "the quick brown fox";
    uint32_t whole = store__crc32c(0, s, strlen(s));
    assert_true(store__crc32c(store__crc32c(0, s, 4), s + 4, strlen(s) - 4) == whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_the_castagnoli_check_value),
        cmocka_unit_test(continues_across_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
