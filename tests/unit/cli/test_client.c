/* The control-socket client (cli/client.c) against a fake daemon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/client.h"
#include "common/alloc.h"
#include "fake_daemon.h"
#include "proto/codec.h"

struct script {
    int mode;
};

enum {
    ONE_FRAME,
    THREE_FRAMES,
    DAEMON_ERROR,
    HUGE_FRAME,
    EOF_EARLY,
    GARBAGE,
};

static void add_service(Swarmc__ControlResponse *resp, Swarmc__Service **storage, size_t i,
                        const char *id)
{
    Swarmc__Service *svc = storage[i];
    swarmc__service__init(svc);
    svc->id = (char *)id;
    resp->services = storage;
    resp->n_services = i + 1;
}

static void handler(void *arg, const Swarmc__ControlRequest *req, struct fake_out *raw)
{
    struct script *s = arg;
    Swarmc__Service a, b, c;
    Swarmc__Service *storage[3] = {&a, &b, &c};
    Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
    static const uint8_t huge[4] = {0x04, 0x00, 0x00, 0x01}; /* 64 MiB + 1 */
    static const uint8_t garbage[6] = {0, 0, 0, 2, 0xff, 0xff};
    switch (s->mode) {
    case ONE_FRAME:
        add_service(&resp, storage, 0, "svc-a");
        resp.has_last = resp.last = 1;
        fake_reply(raw, &resp);
        break;
    case THREE_FRAMES:
        /* Each frame carries one service; the last one also a warning. */
        for (size_t i = 0; i < 3; i++) {
            Swarmc__ControlResponse frame = SWARMC__CONTROL_RESPONSE__INIT;
            char *warning = "careful";
            add_service(&frame, storage + i, 0, i == 0 ? "svc-a" : i == 1 ? "svc-b" : "svc-c");
            frame.has_last = frame.last = i == 2;
            if (i == 2) {
                frame.warnings = &warning;
                frame.n_warnings = 1;
            }
            fake_reply(raw, &frame);
        }
        break;
    case DAEMON_ERROR:
        fake_reply_error(raw, SWM_ENOTFOUND, "service web not found");
        break;
    case HUGE_FRAME:
        fake_out_append(raw, huge, sizeof(huge));
        break;
    case EOF_EARLY:
        add_service(&resp, storage, 0, "svc-a");
        fake_reply(raw, &resp); /* no `last` */
        break;
    case GARBAGE:
        fake_out_append(raw, garbage, sizeof(garbage));
        break;
    }
    (void)req;
}

static int call(struct script *s, Swarmc__ControlResponse **resp, struct swm_err *err)
{
    struct fake_daemon *d = fake_daemon_start(handler, s);
    assert_non_null(d);
    char path[256];
    snprintf(path, sizeof(path), "%s/swarmc.sock", fake_daemon_run_dir(d));
    Swarmc__GetServiceRequest get = SWARMC__GET_SERVICE_REQUEST__INIT;
    get.ref = "web";
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_GET_SERVICE;
    req.get_service = &get;
    int rc = cli_client_call(path, &req, resp, err);
    /* The daemon saw exactly the request we sent. */
    assert_int_equal(fake_daemon_n_requests(d), 1);
    const Swarmc__ControlRequest *got = fake_daemon_request(d, 0);
    assert_int_equal(got->op_case, SWARMC__CONTROL_REQUEST__OP_GET_SERVICE);
    assert_string_equal(got->get_service->ref, "web");
    fake_daemon_stop(d);
    return rc;
}

static void single_frame_response(void **state)
{
    struct script s = {ONE_FRAME};
    Swarmc__ControlResponse *resp = NULL;
    struct swm_err err = {0};
    assert_int_equal(call(&s, &resp, &err), 0);
    assert_int_equal(resp->n_services, 1);
    assert_string_equal(resp->services[0]->id, "svc-a");
    proto_free(resp);
}

static void frames_are_merged_until_last(void **state)
{
    struct script s = {THREE_FRAMES};
    Swarmc__ControlResponse *resp = NULL;
    struct swm_err err = {0};
    assert_int_equal(call(&s, &resp, &err), 0);
    assert_int_equal(resp->n_services, 3);
    assert_string_equal(resp->services[0]->id, "svc-a");
    assert_string_equal(resp->services[2]->id, "svc-c");
    assert_int_equal(resp->n_warnings, 1);
    assert_true(resp->last);
    proto_free(resp);
}

static void daemon_error_becomes_docker_message(void **state)
{
    struct script s = {DAEMON_ERROR};
    Swarmc__ControlResponse *resp = NULL;
    struct swm_err err = {0};
    assert_int_equal(call(&s, &resp, &err), SWM_ENOTFOUND);
    assert_null(resp);
    assert_string_equal(err.msg, "Error response from daemon: service web not found");
}

static void oversized_frame_is_refused(void **state)
{
    struct script s = {HUGE_FRAME};
    Swarmc__ControlResponse *resp = NULL;
    struct swm_err err = {0};
    assert_int_equal(call(&s, &resp, &err), -EMSGSIZE);
    assert_non_null(strstr(err.msg, "exceeds the 64 MiB frame limit"));
}

static void eof_before_last_is_an_error(void **state)
{
    struct script s = {EOF_EARLY};
    Swarmc__ControlResponse *resp = NULL;
    struct swm_err err = {0};
    assert_int_equal(call(&s, &resp, &err), -ECONNRESET);
    assert_non_null(strstr(err.msg, "closed the connection"));
}

static void garbage_frame_is_a_protocol_error(void **state)
{
    struct script s = {GARBAGE};
    Swarmc__ControlResponse *resp = NULL;
    struct swm_err err = {0};
    assert_int_equal(call(&s, &resp, &err), SWM_EPROTO);
}

static void absent_socket_says_is_the_daemon_running(void **state)
{
    Swarmc__InfoRequest info = SWARMC__INFO_REQUEST__INIT;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_INFO;
    req.info = &info;
    Swarmc__ControlResponse *resp = NULL;
    struct swm_err err = {0};
    assert_true(cli_client_call("/nonexistent/swarmc.sock", &req, &resp, &err) < 0);
    assert_string_equal(err.msg, "Cannot connect to the swarmc daemon at "
                                 "unix:///nonexistent/swarmc.sock. Is the daemon running?");
}

struct collected {
    size_t frames;
    size_t services;
};

static int collect(void *arg, const Swarmc__ControlResponse *frame, struct swm_err *err)
{
    struct collected *c = arg;
    c->frames++;
    c->services += frame->n_services;
    return 0;
}

static void stream_hands_over_every_frame(void **state)
{
    struct script s = {THREE_FRAMES};
    struct fake_daemon *d = fake_daemon_start(handler, &s);
    char path[256];
    snprintf(path, sizeof(path), "%s/swarmc.sock", fake_daemon_run_dir(d));
    Swarmc__ServiceLogsRequest logs = SWARMC__SERVICE_LOGS_REQUEST__INIT;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_SERVICE_LOGS;
    req.service_logs = &logs;
    struct collected c = {0};
    struct swm_err err = {0};
    assert_int_equal(cli_client_stream(path, &req, collect, &c, &err), 0);
    assert_int_equal(c.frames, 3);
    assert_int_equal(c.services, 3);
    fake_daemon_stop(d);
}

static void out_of_memory_is_reported_not_crashed(void **state)
{
    struct script s = {THREE_FRAMES};
    struct fake_daemon *d = fake_daemon_start(handler, &s);
    char path[256];
    snprintf(path, sizeof(path), "%s/swarmc.sock", fake_daemon_run_dir(d));
    Swarmc__InfoRequest info = SWARMC__INFO_REQUEST__INIT;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_INFO;
    req.info = &info;
    int successes = 0;
    for (long n = 0; n < 200; n++) {
        Swarmc__ControlResponse *resp = NULL;
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        int rc = cli_client_call(path, &req, &resp, &err);
        swm_alloc_fail_reset();
        if (rc == 0) {
            successes++;
            assert_int_equal(resp->n_services, 3);
            proto_free(resp);
        } else {
            assert_true(rc == -ENOMEM || rc == SWM_EPROTO);
            assert_null(resp);
        }
    }
    assert_true(successes > 0);
    fake_daemon_stop(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_frame_response),
        cmocka_unit_test(frames_are_merged_until_last),
        cmocka_unit_test(daemon_error_becomes_docker_message),
        cmocka_unit_test(oversized_frame_is_refused),
        cmocka_unit_test(eof_before_last_is_an_error),
        cmocka_unit_test(garbage_frame_is_a_protocol_error),
        cmocka_unit_test(absent_socket_says_is_the_daemon_running),
        cmocka_unit_test(stream_hands_over_every_frame),
        cmocka_unit_test(out_of_memory_is_reported_not_crashed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
