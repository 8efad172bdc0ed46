#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/alloc.h"
#include "manager/scheduler/scheduler.h"
#include "objects.h"

static void parse_ok(const char *expr, enum sched_constraint_key key, bool negate,
                     const char *label, const char *value)
{
    struct sched_constraint c;
    struct swm_err err = {0};
    assert_int_equal(sched_constraint_parse(expr, &c, &err), 0);
    assert_int_equal(c.key, key);
    assert_int_equal(c.negate, negate);
    if (label == NULL)
        assert_null(c.label);
    else
        assert_string_equal(c.label, label);
    assert_string_equal(c.value, value);
    sched_constraint_free(&c);
}

static void parses_every_key_and_operator(void **state)
{
    parse_ok("node.id==abc", SCHED_KEY_NODE_ID, false, NULL, "abc");
    parse_ok("node.hostname!=web-1", SCHED_KEY_NODE_HOSTNAME, true, NULL, "web-1");
    parse_ok("  node.role == manager ", SCHED_KEY_NODE_ROLE, false, NULL, "manager");
    parse_ok("node.ip==10.0.0.0/8", SCHED_KEY_NODE_IP, false, NULL, "10.0.0.0/8");
    parse_ok("node.platform.os==linux", SCHED_KEY_NODE_PLATFORM_OS, false, NULL, "linux");
    parse_ok("node.platform.arch!=arm64", SCHED_KEY_NODE_PLATFORM_ARCH, true, NULL, "arm64");
    parse_ok("node.labels.Zone==a", SCHED_KEY_NODE_LABEL, false, "Zone", "a");
    parse_ok("NODE.LABELS.zone==a", SCHED_KEY_NODE_LABEL, false, "zone", "a");
    parse_ok("engine.labels.os==ubuntu 22.04", SCHED_KEY_ENGINE_LABEL, false, "os", "ubuntu 22.04");
}

static void parse_fails(const char *expr, const char *msg)
{
    struct sched_constraint c = {0};
    struct swm_err err = {0};
    assert_int_equal(sched_constraint_parse(expr, &c, &err), SWM_EINVAL_SPEC);
    assert_int_equal(err.code, SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, msg);
    assert_null(c.value);
}

static void rejects_bad_expressions(void **state)
{
    parse_fails("node.labels.zone=a",
                "invalid constraint expression \"node.labels.zone=a\": constraint expected one "
                "operator from ==, !=");
    parse_fails("1abc==x", "invalid constraint expression \"1abc==x\": key '1abc' is invalid");
    parse_fails("==x", "invalid constraint expression \"==x\": key '' is invalid");
    parse_fails("node.role==",
                "invalid constraint expression \"node.role==\": value '' is invalid");
    parse_fails("node.role==a>b",
                "invalid constraint expression \"node.role==a>b\": value 'a>b' is invalid");
    parse_fails("node.foo==bar",
                "invalid constraint expression \"node.foo==bar\": key 'node.foo' is not supported");
    parse_fails("node.labels.==x",
                "invalid constraint expression \"node.labels.==x\": key 'node.labels.' is not "
                "supported");
}

static void parses_lists_and_frees_on_error(void **state)
{
    char *good[] = {"node.role==worker", "node.labels.zone!=b"};
    char *bad[] = {"node.role==worker", "nope"};
    struct sched_constraints cs;
    struct swm_err err = {0};
    assert_int_equal(sched_constraints_parse(good, 2, &cs, &err), 0);
    assert_int_equal(cs.n, 2);
    sched_constraints_free(&cs);
    assert_int_equal(sched_constraints_parse(bad, 2, &cs, &err), SWM_EINVAL_SPEC);
    assert_int_equal(sched_constraints_parse(NULL, 0, &cs, &err), 0);
    assert_int_equal(cs.n, 0);
    sched_constraints_free(&cs);
    sched_constraints_free(NULL);

    /* Every allocation failure is reported, and leaks nothing (ASan). */
    for (long i = 0; i < 6; i++) {
        swm_alloc_fail_after(i);
        int rc = sched_constraints_parse(good, 2, &cs, &err);
        swm_alloc_fail_reset();
        if (rc == 0)
            sched_constraints_free(&cs);
        else
            assert_int_equal(rc, -ENOMEM);
    }
}

static bool matches(const char *expr, const Swarmc__Node *n)
{
    struct sched_constraint c;
    assert_int_equal(sched_constraint_parse(expr, &c, NULL), 0);
    bool m = sched_constraint_match(&c, n);
    sched_constraint_free(&c);
    return m;
}

static void matches_node_fields(void **state)
{
    Swarmc__Node *n = obj_node("n1", OBJ_CPU, OBJ_MIB);
    obj_node_hostname(n, "Web-1");
    obj_node_label(n, "zone", "East");
    obj_node_role(n, SWARMC__NODE_ROLE__NODE_ROLE_MANAGER);

    assert_true(matches("node.id==n1", n));
    assert_false(matches("node.id!=N1", n)); /* values compare case-insensitively */
    assert_true(matches("node.hostname==web-1", n));
    assert_true(matches("node.role==manager", n));
    assert_true(matches("node.role!=worker", n));
    assert_true(matches("node.labels.zone==east", n));
    assert_false(matches("node.labels.Zone==east", n)); /* the label name is case-sensitive */
    assert_true(matches("node.labels.Zone!=east", n));  /* missing label reads as "" */
    assert_true(matches("node.labels.rack!=r1", n));
    assert_false(matches("engine.labels.os==ubuntu", n));
    assert_true(matches("engine.labels.os!=ubuntu", n));
    assert_true(matches("node.platform.os==Linux", n));
    assert_true(matches("node.platform.arch==x86_64", n));
    proto_free(n);
}

static void matches_node_ip(void **state)
{
    Swarmc__Node *n = obj_node("n1", OBJ_CPU, OBJ_MIB);
    obj_node_addr(n, "10.1.2.3");
    assert_true(matches("node.ip==10.1.2.3", n));
    assert_true(matches("node.ip!=10.1.2.4", n));
    assert_true(matches("node.ip==10.1.0.0/16", n));
    assert_false(matches("node.ip==10.2.0.0/16", n));
    assert_true(matches("node.ip!=192.168.0.0/24", n));
    assert_false(matches("node.ip==10.1.2.3/33", n));
    assert_false(matches("node.ip!=bogus", n)); /* malformed: no node matches */
    assert_false(matches("node.ip==fd00::/8", n));
    obj_node_addr(n, "fd00::1");
    assert_true(matches("node.ip==fd00::/8", n));
    proto_free(n);
}

static void matches_lists_and_platforms(void **state)
{
    Swarmc__Node *n = obj_node("n1", OBJ_CPU, OBJ_MIB);
    obj_node_label(n, "zone", "a");
    char *exprs[] = {"node.labels.zone==a", "node.role==worker"};
    struct sched_constraints cs;
    assert_int_equal(sched_constraints_parse(exprs, 2, &cs, NULL), 0);
    assert_true(sched_constraints_match(&cs, n));
    obj_node_role(n, SWARMC__NODE_ROLE__NODE_ROLE_MANAGER);
    assert_false(sched_constraints_match(&cs, n));
    sched_constraints_free(&cs);

    Swarmc__Platform amd64 = SWARMC__PLATFORM__INIT, arm = SWARMC__PLATFORM__INIT,
                     any_linux = SWARMC__PLATFORM__INIT;
    amd64.os = "linux";
    amd64.architecture = "amd64";
    arm.architecture = "aarch64";
    any_linux.os = "linux";
    Swarmc__Platform *want_amd64[] = {&amd64}, *want_arm[] = {&arm}, *want_linux[] = {&any_linux};
    assert_true(sched_platform_match(NULL, 0, n));
    assert_true(sched_platform_match(want_amd64, 1, n)); /* node says x86_64 */
    assert_false(sched_platform_match(want_arm, 1, n));
    assert_true(sched_platform_match(want_linux, 1, n));
    obj_node_platform(n, "linux", "arm64");
    assert_true(sched_platform_match(want_arm, 1, n));
    proto_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_every_key_and_operator),
        cmocka_unit_test(rejects_bad_expressions),
        cmocka_unit_test(parses_lists_and_frees_on_error),
        cmocka_unit_test(matches_node_fields),
        cmocka_unit_test(matches_node_ip),
        cmocka_unit_test(matches_lists_and_platforms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
