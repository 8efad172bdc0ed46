#include "api.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

#include "common/alloc.h"

void afx_setup(struct afx *f)
{
    memset(f, 0, sizeof(*f));
    cfx_setup(&f->c);
    cfx_open_log(&f->c);
    assert_int_equal(controlapi_open(f->c.s, f->c.log, CFX_NODE, f->c.dir, &f->api), 0);
}

void afx_teardown(struct afx *f)
{
    controlapi_close(f->api);
    f->api = NULL;
    cfx_teardown(&f->c);
}

struct reply {
    int calls;
    Swarmc__ControlResponse *resp;
};

static void on_reply(void *arg, Swarmc__ControlResponse *resp)
{
    struct reply *r = arg;
    r->calls++;
    proto_free(r->resp);
    r->resp = resp;
}

static bool replied(void *arg)
{
    return ((struct reply *)arg)->calls > 0;
}

Swarmc__ControlResponse *afx_call(struct afx *f, const Swarmc__ControlRequest *req)
{
    struct reply r = {0};
    assert_int_equal(controlapi_handle(f->api, req, on_reply, &r), 0);
    cfx_run_until(&f->c, replied, &r, "a control API reply");
    /* Exactly one reply, even once the write is long done. */
    cfx_barrier(&f->c);
    assert_int_equal(r.calls, 1);
    assert_non_null(r.resp);
    assert_true(r.resp->has_last && r.resp->last);
    return r.resp;
}

Swarmc__ControlResponse *afx_create(struct afx *f, const Swarmc__ServiceSpec *spec)
{
    Swarmc__CreateServiceRequest create = SWARMC__CREATE_SERVICE_REQUEST__INIT;
    create.spec = (Swarmc__ServiceSpec *)spec;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_CREATE_SERVICE;
    req.create_service = &create;
    return afx_call(f, &req);
}

Swarmc__ControlResponse *afx_get(struct afx *f, const char *ref)
{
    Swarmc__GetServiceRequest get = SWARMC__GET_SERVICE_REQUEST__INIT;
    get.ref = (char *)ref;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_GET_SERVICE;
    req.get_service = &get;
    return afx_call(f, &req);
}

Swarmc__ControlResponse *afx_update(struct afx *f, const char *id, uint64_t version,
                                    const Swarmc__ServiceSpec *spec, bool rollback)
{
    Swarmc__UpdateServiceRequest update = SWARMC__UPDATE_SERVICE_REQUEST__INIT;
    update.id = (char *)id;
    update.has_version = 1;
    update.version = version;
    update.spec = (Swarmc__ServiceSpec *)spec;
    update.has_rollback = rollback;
    update.rollback = rollback;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_UPDATE_SERVICE;
    req.update_service = &update;
    return afx_call(f, &req);
}

Swarmc__ControlResponse *afx_remove(struct afx *f, const char *ref)
{
    Swarmc__RemoveServiceRequest remove = SWARMC__REMOVE_SERVICE_REQUEST__INIT;
    remove.ref = (char *)ref;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_REMOVE_SERVICE;
    req.remove_service = &remove;
    return afx_call(f, &req);
}

Swarmc__ServiceSpec *afx_spec(const char *name, const char *image, uint64_t replicas)
{
    Swarmc__Service *svc =
        obj_service("x", name, SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED, replicas);
    Swarmc__ServiceSpec *spec = svc->spec;
    svc->spec = NULL;
    proto_free(svc);
    obj_set_str(&spec->task->container->image, image);
    return spec;
}

void afx_expect_error(Swarmc__ControlResponse *resp, int code, const char *msg)
{
    assert_non_null(resp);
    if (resp->code != code)
        fail_msg("expected code %d (%s), got %d: %s", code, swm_strerror(code), resp->code,
                 resp->error != NULL ? resp->error : "");
    assert_true(resp->has_code);
    if (msg != NULL)
        assert_string_equal(resp->error, msg);
    assert_int_equal(resp->n_services, 0);
    proto_free(resp);
}

Swarmc__Service *afx_expect_service(Swarmc__ControlResponse *resp)
{
    assert_non_null(resp);
    if (resp->code != 0)
        fail_msg("request failed: %s", resp->error);
    assert_int_equal(resp->n_services, 1);
    Swarmc__Service *svc = resp->services[0];
    resp->services[0] = NULL;
    resp->n_services = 0;
    proto_free(resp);
    return svc;
}

Swarmc__Service *afx_create_ok(struct afx *f, const char *name, const char *image,
                               uint64_t replicas)
{
    Swarmc__ServiceSpec *spec = afx_spec(name, image, replicas);
    Swarmc__Service *svc = afx_expect_service(afx_create(f, spec));
    proto_free(spec);
    return svc;
}

size_t afx_n_services(struct afx *f)
{
    struct store_read *r = NULL;
    Swarmc__Service **all = NULL;
    size_t n = 0;
    assert_int_equal(store_read_begin(f->c.s, &r, NULL), 0);
    assert_int_equal(store_list_services(r, &all, &n), 0);
    store_read_end(r);
    store_free_list(all, n);
    return n;
}
