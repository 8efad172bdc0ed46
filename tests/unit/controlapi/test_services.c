/* manager/controlapi/services.c (and controlapi.c's write path): service
 * requests over a real store and log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "common/alloc.h"
#include "common/id.h"

static int setup(void **state)
{
    struct afx *f = calloc(1, sizeof(*f));
    afx_setup(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct afx *f = *state;
    afx_teardown(f);
    free(f);
    return 0;
}

static const char *name_of(const Swarmc__Service *svc)
{
    return svc->spec->annotations->name;
}

static void test_create_rejects_invalid_spec_and_stores_nothing(void **state)
{
    struct afx *f = *state;
    uint64_t index = store_applied_index(f->c.s);
    Swarmc__ServiceSpec *spec = afx_spec("web", NULL, 1);
    afx_expect_error(afx_create(f, spec), SWM_EINVAL_SPEC,
                     "ContainerSpec: image reference must be provided");
    proto_free(spec);
    spec = afx_spec("Bad_Name!", "nginx:1", 1);
    afx_expect_error(afx_create(f, spec), SWM_EINVAL_SPEC, NULL);
    proto_free(spec);
    afx_expect_error(afx_create(f, NULL), SWM_EINVAL_SPEC, "service spec is required");
    assert_int_equal(afx_n_services(f), 0);
    /* afx_call's barrier is the only write. */
    assert_int_equal(store_applied_index(f->c.s), index + 3);
}

static void test_create_with_name_stores_the_service(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *svc = afx_create_ok(f, "web", "nginx:1.25", 3);
    assert_true(swm_id_valid(svc->id));
    assert_string_equal(name_of(svc), "web");
    assert_int_equal(svc->spec->replicas, 3);
    assert_int_equal(svc->spec_version, 1);
    assert_true(svc->meta->created_at > 0);
    /* The reply is the object as stored, with its version. */
    Swarmc__Service *stored = cfx_service(&f->c, svc->id);
    assert_non_null(stored);
    assert_int_equal(svc->meta->version, stored->meta->version);
    assert_string_equal(stored->spec->task->container->image, "nginx:1.25");
    proto_free(stored);
    proto_free(svc);
}

static void test_create_without_name_gets_a_docker_style_name(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *svc = afx_create_ok(f, NULL, "nginx:1", 1);
    const char *name = name_of(svc);
    const char *sep = strchr(name, '_');
    assert_non_null(sep);
    assert_true(sep > name && sep[1] != '\0' && strchr(sep + 1, '_') == NULL);
    for (const char *p = name; *p != '\0'; p++)
        assert_true(*p == '_' || islower((unsigned char)*p));
    Swarmc__Service *found = afx_expect_service(afx_get(f, name));
    assert_string_equal(found->id, svc->id);
    proto_free(found);

    /* An empty name is no name too (the first service goes, so that the
     * new random name cannot clash with it). */
    Swarmc__ControlResponse *resp = afx_remove(f, svc->id);
    assert_int_equal(resp->code, 0);
    proto_free(resp);
    proto_free(svc);
    svc = afx_create_ok(f, "", "nginx:1", 1);
    assert_non_null(strchr(name_of(svc), '_'));
    proto_free(svc);
}

/* 576 adjective_scientist pairs collide quickly: names taken are skipped
 * (and numbered, as Docker does, after a few tries). */
static void test_many_unnamed_services_get_distinct_names(void **state)
{
    struct afx *f = *state;
    for (int i = 0; i < 60; i++) {
        Swarmc__Service *svc = afx_create_ok(f, NULL, "nginx:1", 1);
        proto_free(svc);
    }
    assert_int_equal(afx_n_services(f), 60);
}

static void test_create_with_taken_name_fails(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *svc = afx_create_ok(f, "web", "nginx:1", 1);
    Swarmc__ServiceSpec *spec = afx_spec("web", "redis:7", 1);
    afx_expect_error(afx_create(f, spec), SWM_EEXISTS, NULL);
    proto_free(spec);
    assert_int_equal(afx_n_services(f), 1);
    Swarmc__Service *stored = afx_expect_service(afx_get(f, "web"));
    assert_string_equal(stored->id, svc->id);
    assert_string_equal(stored->spec->task->container->image, "nginx:1");
    proto_free(stored);
    proto_free(svc);
}

/* Services with chosen ids, written straight through the log. */
static void put_service(struct afx *f, const char *id, const char *name)
{
    Swarmc__Service *svc = obj_service(id, name, SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, 1);
    assert_int_equal(cfx_write1(&f->c, CREATE, svc), 0);
}

static void expect_found(struct afx *f, const char *ref, const char *id)
{
    Swarmc__Service *svc = afx_expect_service(afx_get(f, ref));
    assert_string_equal(svc->id, id);
    proto_free(svc);
}

static void test_get_by_id_name_and_prefix(void **state)
{
    struct afx *f = *state;
    put_service(f, "abc1aaaaaaaaaaaaaaaaaaaaa", "web");
    put_service(f, "abc2aaaaaaaaaaaaaaaaaaaaa", "db");
    /* A name that is another service's id prefix: the name wins. */
    put_service(f, "zzz9aaaaaaaaaaaaaaaaaaaaa", "abc1");

    expect_found(f, "abc1aaaaaaaaaaaaaaaaaaaaa", "abc1aaaaaaaaaaaaaaaaaaaaa");
    expect_found(f, "db", "abc2aaaaaaaaaaaaaaaaaaaaa");
    expect_found(f, "abc2", "abc2aaaaaaaaaaaaaaaaaaaaa");
    expect_found(f, "z", "zzz9aaaaaaaaaaaaaaaaaaaaa");
    expect_found(f, "abc1", "zzz9aaaaaaaaaaaaaaaaaaaaa");
    afx_expect_error(afx_get(f, "abc"), SWM_ENOTFOUND,
                     "service abc is ambiguous (2 matches found)");
    afx_expect_error(afx_get(f, "nope"), SWM_ENOTFOUND, "service nope not found");
    afx_expect_error(afx_get(f, ""), -EINVAL, "a service name or id is required");
}

static void test_update_with_stale_version_changes_nothing(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *svc = afx_create_ok(f, "web", "nginx:1", 1);
    Swarmc__ServiceSpec *spec = afx_spec("web", "nginx:2", 1);
    afx_expect_error(afx_update(f, svc->id, svc->meta->version - 1, spec, false), SWM_ESTALE, NULL);
    Swarmc__Service *stored = cfx_service(&f->c, svc->id);
    assert_int_equal(stored->meta->version, svc->meta->version);
    assert_string_equal(stored->spec->task->container->image, "nginx:1");
    assert_null(stored->previous_spec);
    proto_free(stored);

    /* With the version read, the same update applies. */
    Swarmc__Service *next =
        afx_expect_service(afx_update(f, svc->id, svc->meta->version, spec, false));
    assert_string_equal(next->spec->task->container->image, "nginx:2");
    assert_true(next->meta->version > svc->meta->version);
    assert_int_equal(next->meta->created_at, svc->meta->created_at);
    proto_free(next);
    proto_free(spec);
    proto_free(svc);
}

static void test_scaling_keeps_spec_version_and_image_change_bumps_it(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *svc = afx_create_ok(f, "web", "nginx:1", 1);
    Swarmc__ServiceSpec *spec = afx_spec("web", "nginx:1", 5);
    Swarmc__Service *scaled =
        afx_expect_service(afx_update(f, svc->id, svc->meta->version, spec, false));
    assert_int_equal(scaled->spec->replicas, 5);
    /* Tasks compare spec_version: scaling must leave them current. */
    assert_int_equal(scaled->spec_version, 1);
    assert_non_null(scaled->previous_spec);
    assert_int_equal(scaled->previous_spec->replicas, 1);
    proto_free(spec);

    spec = afx_spec("web", "nginx:2", 5);
    Swarmc__Service *updated =
        afx_expect_service(afx_update(f, svc->id, scaled->meta->version, spec, false));
    assert_int_equal(updated->spec_version, 2);
    assert_string_equal(updated->previous_spec->task->container->image, "nginx:1");
    assert_null(updated->update_status);
    proto_free(spec);
    proto_free(updated);
    proto_free(scaled);
    proto_free(svc);
}

static void test_update_rejects_what_cannot_change(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *svc = afx_create_ok(f, "web", "nginx:1", 1);
    uint64_t v = svc->meta->version;
    Swarmc__ServiceSpec *spec = afx_spec("www", "nginx:1", 1);
    afx_expect_error(afx_update(f, svc->id, v, spec, false), SWM_EINVAL_SPEC,
                     "renaming services is not supported");
    proto_free(spec);
    spec = afx_spec("web", "nginx:1", 0);
    spec->has_replicas = 0;
    spec->mode = SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    afx_expect_error(afx_update(f, svc->id, v, spec, false), SWM_EINVAL_SPEC,
                     "service mode change is not allowed");
    proto_free(spec);
    spec = afx_spec("web", NULL, 1);
    afx_expect_error(afx_update(f, svc->id, v, spec, false), SWM_EINVAL_SPEC,
                     "ContainerSpec: image reference must be provided");
    proto_free(spec);
    afx_expect_error(afx_update(f, svc->id, v, NULL, false), SWM_EINVAL_SPEC,
                     "service spec is required");
    spec = afx_spec("web", "nginx:2", 1);
    afx_expect_error(afx_update(f, "nope", v, spec, false), SWM_ENOTFOUND, NULL);
    proto_free(spec);
    Swarmc__Service *stored = cfx_service(&f->c, svc->id);
    assert_int_equal(stored->meta->version, v);
    proto_free(stored);
    proto_free(svc);
}

static void test_rollback(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *svc = afx_create_ok(f, "web", "nginx:1", 1);
    afx_expect_error(afx_update(f, svc->id, svc->meta->version, NULL, true), SWM_EINVAL_SPEC, NULL);
    Swarmc__Service *stored = cfx_service(&f->c, svc->id);
    assert_int_equal(stored->meta->version, svc->meta->version);
    proto_free(stored);

    Swarmc__ServiceSpec *spec = afx_spec("web", "nginx:2", 1);
    Swarmc__Service *updated =
        afx_expect_service(afx_update(f, svc->id, svc->meta->version, spec, false));
    proto_free(spec);
    Swarmc__Service *back =
        afx_expect_service(afx_update(f, svc->id, updated->meta->version, NULL, true));
    assert_string_equal(back->spec->task->container->image, "nginx:1");
    assert_string_equal(back->previous_spec->task->container->image, "nginx:2");
    assert_int_equal(back->spec_version, 3);
    assert_non_null(back->update_status);
    assert_int_equal(back->update_status->state,
                     SWARMC__UPDATE_STATUS__STATE__UPDATE_STATE_ROLLBACK_STARTED);
    proto_free(back);
    proto_free(updated);
    proto_free(svc);
}

static void test_remove(void **state)
{
    struct afx *f = *state;
    Swarmc__Service *web = afx_create_ok(f, "web", "nginx:1", 1);
    Swarmc__Service *db = afx_create_ok(f, "db", "redis:7", 1);
    Swarmc__ControlResponse *resp = afx_remove(f, "web");
    assert_int_equal(resp->code, 0);
    assert_int_equal(resp->n_services, 0);
    proto_free(resp);
    assert_null(cfx_service(&f->c, web->id));
    afx_expect_error(afx_get(f, "web"), SWM_ENOTFOUND, "service web not found");
    afx_expect_error(afx_remove(f, "web"), SWM_ENOTFOUND, "service web not found");
    assert_int_equal(afx_n_services(f), 1);
    /* The name is free again. */
    Swarmc__Service *again = afx_create_ok(f, "web", "nginx:1", 1);
    assert_string_not_equal(again->id, web->id);
    proto_free(again);
    proto_free(db);
    proto_free(web);
}

static Swarmc__ControlResponse *list(struct afx *f, Swarmc__ListServicesRequest *ls)
{
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_LIST_SERVICES;
    req.list_services = ls;
    return afx_call(f, &req);
}

static const char *listed(Swarmc__ControlResponse *resp)
{
    static char buf[512];
    assert_int_equal(resp->code, 0);
    buf[0] = '\0';
    for (size_t i = 0; i < resp->n_services; i++) {
        if (i > 0)
            strcat(buf, ",");
        strcat(buf, name_of(resp->services[i]));
    }
    proto_free(resp);
    return buf;
}

static void label(Swarmc__ServiceSpec *spec, const char *key, const char *value)
{
    Swarmc__Annotations *a = spec->annotations;
    Swarmc__KeyValue *kv = obj_new(&swarmc__key_value__descriptor);
    obj_set_str(&kv->key, key);
    obj_set_str(&kv->value, value);
    a->labels = swm_realloc(a->labels, (a->n_labels + 1) * sizeof(*a->labels));
    assert_non_null(a->labels);
    a->labels[a->n_labels++] = kv;
}

static void test_list_filters(void **state)
{
    struct afx *f = *state;
    put_service(f, "aaa1aaaaaaaaaaaaaaaaaaaaa", "web");
    put_service(f, "bbb1aaaaaaaaaaaaaaaaaaaaa", "webhook");
    Swarmc__ServiceSpec *spec = afx_spec("db", "redis:7", 1);
    label(spec, "tier", "data");
    label(spec, "backup", "");
    Swarmc__Service *db = afx_expect_service(afx_create(f, spec));
    proto_free(spec);

    Swarmc__ListServicesRequest ls = SWARMC__LIST_SERVICES_REQUEST__INIT;
    /* No filter lists all. */
    Swarmc__ControlResponse *all = list(f, &ls);
    assert_int_equal(all->n_services, 3);
    proto_free(all);
    all = list(f, NULL);
    assert_int_equal(all->n_services, 3);
    proto_free(all);

    char *names[] = {"web"};
    ls.n_names = 1;
    ls.names = names;
    assert_string_equal(listed(list(f, &ls)), "web,webhook");
    char *prefixes[] = {"bbb", "aaa"};
    ls.n_id_prefixes = 2;
    ls.id_prefixes = prefixes;
    assert_string_equal(listed(list(f, &ls)), "web,webhook");
    ls.n_id_prefixes = 1;
    assert_string_equal(listed(list(f, &ls)), "webhook");

    Swarmc__ListServicesRequest by_label = SWARMC__LIST_SERVICES_REQUEST__INIT;
    Swarmc__KeyValue kv = SWARMC__KEY_VALUE__INIT, *kvs[] = {&kv};
    by_label.n_labels = 1;
    by_label.labels = kvs;
    kv.key = "tier";
    assert_string_equal(listed(list(f, &by_label)), "db");
    kv.value = "data";
    assert_string_equal(listed(list(f, &by_label)), "db");
    kv.value = "web";
    assert_string_equal(listed(list(f, &by_label)), "");
    kv.key = "backup";
    kv.value = NULL;
    assert_string_equal(listed(list(f, &by_label)), "db");
    proto_free(db);
}

/* Closing the control API while a write is being committed: the request is
 * still answered (exactly once), and nothing touches freed memory. */
struct late_reply {
    int calls;
    int code;
};

static void on_late_reply(void *arg, Swarmc__ControlResponse *resp)
{
    struct late_reply *r = arg;
    r->calls++;
    r->code = resp != NULL ? resp->code : -1;
    proto_free(resp);
}

static bool late_replied(void *arg)
{
    return ((struct late_reply *)arg)->calls > 0;
}

static void test_close_with_write_in_flight(void **state)
{
    struct afx *f = *state;
    Swarmc__ServiceSpec *spec = afx_spec("web", "nginx:1", 1);
    Swarmc__CreateServiceRequest create = SWARMC__CREATE_SERVICE_REQUEST__INIT;
    create.spec = spec;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_CREATE_SERVICE;
    req.create_service = &create;
    struct late_reply r = {0};
    assert_int_equal(controlapi_handle(f->api, &req, on_late_reply, &r), 0);
    proto_free(spec);
    controlapi_close(f->api);
    f->api = NULL;
    cfx_run_until(&f->c, late_replied, &r, "the reply to the write in flight");
    assert_int_equal(r.code, 0);
    cfx_barrier(&f->c);
    assert_int_equal(r.calls, 1);
    assert_int_equal(afx_n_services(f), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_rejects_invalid_spec_and_stores_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_with_name_stores_the_service, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_without_name_gets_a_docker_style_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_unnamed_services_get_distinct_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_with_taken_name_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_by_id_name_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_with_stale_version_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scaling_keeps_spec_version_and_image_change_bumps_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_rejects_what_cannot_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_write_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
