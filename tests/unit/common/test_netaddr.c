/* common/netaddr.c: numeric addresses in, the same text out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/netaddr.h"

static void round_trips(void **state)
{
    const char *good[] = {"127.0.0.1:2377", "0.0.0.0:0", "10.1.2.3:65535", "[::1]:7946",
                          "[fe80::1:2]:4789"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct sockaddr_storage sa;
        char text[SWM_ADDR_STRLEN];
        assert_int_equal(swm_addr_parse(good[i], &sa), 0);
        swm_addr_format(&sa, text, sizeof(text));
        assert_string_equal(text, good[i]);
    }
}

static void refuses_what_is_not_numeric_host_and_port(void **state)
{
    const char *bad[] = {NULL,
                         "",
                         "127.0.0.1",
                         "127.0.0.1:",
                         ":2377",
                         "1.2.3.4:-1",
                         "1.2.3.4:65536",
                         "1.2.3.4:12x",
                         "host:2377",
                         "::1:2377",
                         "[::1:2377",
                         "[]:1",
                         "1.2.3.4:123456",
                         "[::g]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sockaddr_storage sa;
        assert_int_equal(swm_addr_parse(bad[i], &sa), -EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips),
        cmocka_unit_test(refuses_what_is_not_numeric_host_and_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
