/* Tests of agent/image/ref.c: Docker-style reference normalisation. */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "agent/image/image.h"
#include "common/alloc.h"

static void normalises_like_docker(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"busybox", "busybox:latest"},
        {"busybox:1.36", "busybox:1.36"},
        {"library/busybox", "busybox:latest"},
        {"docker.io/busybox", "busybox:latest"},
        {"docker.io/library/busybox:latest", "busybox:latest"},
        {"index.docker.io/library/busybox:1", "busybox:1"},
        {"docker.io/foo/bar", "foo/bar:latest"},
        {"foo/bar/baz:v_1.2-rc", "foo/bar/baz:v_1.2-rc"},
        {"localhost/foo", "localhost/foo:latest"},
        {"localhost:5000/foo", "localhost:5000/foo:latest"},
        {"registry.example.com:5000/team/app:v2", "registry.example.com:5000/team/app:v2"},
        {"Registry.Example.com/app", "Registry.Example.com/app:latest"},
        {"my-registry.io/a__b/c.d/e--f:T", "my-registry.io/a__b/c.d/e--f:T"},
        {"library/a/b", "library/a/b:latest"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = image_normalize_ref(cases[i].in);
        if (got == NULL || strcmp(got, cases[i].out) != 0)
            fail_msg("%s: got %s, want %s", cases[i].in, got ? got : "NULL", cases[i].out);
        swm_free(got);
    }
}

static void rejects_invalid_references(void **state)
{
    static const char *const bad[] = {
        "",
        "Busybox",
        "busybox:",
        ":tag",
        "busybox:-x",
        "a b",
        "foo//bar",
        "foo/",
        "-foo",
        "foo-",
        "foo..bar",
        "foo___bar",
        "host:port/x",
        "registry:65536x/app",
        "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "busybox:"
        "0123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *got = image_normalize_ref(bad[i]);
        if (got != NULL)
            fail_msg("%s: accepted as %s", bad[i], got);
    }
    assert_null(image_normalize_ref(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(normalises_like_docker),
        cmocka_unit_test(rejects_invalid_references),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
