/* Generic message -> JSON (cli/json.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/json.h"
#include "common/alloc.h"
#include "proto/codec.h"

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    assert_non_null(s);
    return s;
}

static void service_fields_enums_and_nesting(void **state)
{
    Swarmc__KeyValue label = SWARMC__KEY_VALUE__INIT;
    label.key = "tier";
    label.value = "web";
    Swarmc__KeyValue *labels[] = {&label};
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    ann.name = "web";
    ann.labels = labels;
    ann.n_labels = 1;
    Swarmc__ContainerSpec c = SWARMC__CONTAINER_SPEC__INIT;
    char *args[] = {"sleep", "10"};
    c.image = "busybox";
    c.args = args;
    c.n_args = 2;
    c.has_read_only = 1; /* set to false: still shown */
    Swarmc__UpdateConfig u = SWARMC__UPDATE_CONFIG__INIT;
    u.has_failure_action = 1;
    u.failure_action = SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_ROLLBACK;
    u.has_max_failure_ratio = 1;
    u.max_failure_ratio = 0.2f;
    u.has_delay = 1;
    u.delay = 10000000000LL;
    Swarmc__TaskSpec task = SWARMC__TASK_SPEC__INIT;
    task.container = &c;
    Swarmc__ServiceSpec spec = SWARMC__SERVICE_SPEC__INIT;
    spec.annotations = &ann;
    spec.task = &task;
    spec.has_mode = 1;
    spec.mode = SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    spec.update = &u;
    Swarmc__Service svc = SWARMC__SERVICE__INIT;
    svc.id = "abc";
    svc.spec = &spec;
    svc.has_spec_version = 1;
    svc.spec_version = UINT64_MAX; /* beyond int64: a string */

    json_t *j = cli_json_from_message(&svc.base);
    assert_non_null(j);
    char *s = dump(j);
    assert_string_equal(
        s, "{\"id\":\"abc\",\"spec\":{\"annotations\":{\"labels\":[{\"key\":\"tier\",\"value\":"
           "\"web\"}],\"name\":\"web\"},\"mode\":\"SERVICE_MODE_GLOBAL\",\"task\":{\"container\":{"
           "\"args\":[\"sleep\",\"10\"],\"image\":\"busybox\",\"read_only\":false}},\"update\":{"
           "\"delay\":10000000000,\"failure_action\":\"FAILURE_ACTION_ROLLBACK\","
           "\"max_failure_ratio\":0.2}},\"spec_version\":\"18446744073709551615\"}");
    free(s);
    json_decref(j);
}

static void oneof_bytes_and_unknown_enum(void **state)
{
    Swarmc__LeaveRequest leave = SWARMC__LEAVE_REQUEST__INIT;
    leave.has_force = 1;
    leave.force = 1;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_LEAVE;
    req.leave = &leave;
    json_t *j = cli_json_from_message(&req.base);
    char *s = dump(j);
    /* Only the member of the oneof that is set appears. */
    assert_string_equal(s, "{\"leave\":{\"force\":true}}");
    free(s);
    json_decref(j);

    Swarmc__LogLine line = SWARMC__LOG_LINE__INIT;
    line.has_data = 1;
    line.data.data = (uint8_t *)"hello";
    line.data.len = 5;
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    st.has_state = 1;
    st.state = (Swarmc__TaskState)12345;
    j = cli_json_from_message(&line.base);
    s = dump(j);
    assert_string_equal(s, "{\"data\":\"aGVsbG8=\"}");
    free(s);
    json_decref(j);
    j = cli_json_from_message(&st.base);
    s = dump(j);
    assert_string_equal(s, "{\"state\":12345}");
    free(s);
    json_decref(j);
}

static char *print(const ProtobufCMessage *const *msgs, size_t n, enum cli_json_style style)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(cli_json_print(f, msgs, n, style), 0);
    fclose(f);
    return text;
}

static void print_styles(void **state)
{
    Swarmc__Node a = SWARMC__NODE__INIT, b = SWARMC__NODE__INIT;
    a.id = "n1";
    b.id = "n2";
    b.has_role = 1;
    b.role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    const ProtobufCMessage *msgs[] = {&a.base, &b.base};
    char *s = print(msgs, 2, CLI_JSON_LINES);
    assert_string_equal(s, "{\"id\":\"n1\"}\n{\"id\":\"n2\",\"role\":\"NODE_ROLE_MANAGER\"}\n");
    free(s);
    s = print(msgs, 2, CLI_JSON_COMPACT);
    assert_string_equal(s, "[{\"id\":\"n1\"},{\"id\":\"n2\",\"role\":\"NODE_ROLE_MANAGER\"}]\n");
    free(s);
    s = print(msgs, 1, CLI_JSON_INDENTED);
    assert_string_equal(s, "[\n    {\n        \"id\": \"n1\"\n    }\n]\n");
    free(s);
    s = print(msgs, 0, CLI_JSON_INDENTED);
    assert_string_equal(s, "[]\n");
    free(s);
}

static void out_of_memory_gives_null(void **state)
{
    Swarmc__KeyValue kv = SWARMC__KEY_VALUE__INIT;
    kv.key = "k";
    kv.value = "v";
    Swarmc__KeyValue *kvs[] = {&kv, &kv};
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    ann.name = "x";
    ann.labels = kvs;
    ann.n_labels = 2;
    bool ok = false;
    for (long n = 0; !ok; n++) {
        swm_alloc_fail_after(n);
        json_t *j = cli_json_from_message(&ann.base);
        swm_alloc_fail_reset();
        ok = j != NULL;
        json_decref(j);
        assert_true(n < 1000);
    }
}

int main(void)
{
    cli_json_setup();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(service_fields_enums_and_nesting),
        cmocka_unit_test(oneof_bytes_and_unknown_enum),
        cmocka_unit_test(print_styles),
        cmocka_unit_test(out_of_memory_gives_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
