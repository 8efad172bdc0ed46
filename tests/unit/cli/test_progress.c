/* Convergence progress of `service create/update` (cli/progress.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/progress.h"

#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define SHUTDOWN SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN

struct task_fixture {
    Swarmc__Task task;
    Swarmc__TaskStatus status;
};

static void make_task(struct task_fixture *f, uint64_t slot, const char *node,
                      Swarmc__TaskState state, Swarmc__TaskState desired, const char *err)
{
    swarmc__task__init(&f->task);
    swarmc__task_status__init(&f->status);
    f->status.has_state = 1;
    f->status.state = state;
    f->status.err = (char *)err;
    f->task.status = &f->status;
    f->task.service_id = "svc1";
    f->task.slot = slot;
    f->task.node_id = (char *)node;
    f->task.has_desired_state = 1;
    f->task.desired_state = desired;
    f->task.has_spec_version = 1;
    f->task.spec_version = 2;
}

struct service_fixture {
    Swarmc__Service svc;
    Swarmc__ServiceSpec spec;
};

static void make_service(struct service_fixture *f, bool global, uint64_t replicas)
{
    swarmc__service__init(&f->svc);
    swarmc__service_spec__init(&f->spec);
    f->svc.id = "svc1";
    f->svc.spec = &f->spec;
    f->svc.has_spec_version = 1;
    f->svc.spec_version = 2;
    f->spec.has_mode = 1;
    f->spec.mode = global ? SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL
                          : SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED;
    f->spec.has_replicas = !global;
    f->spec.replicas = replicas;
}

static char *lines(const struct cli_progress *p)
{
    static char buf[4096];
    buf[0] = '\0';
    for (size_t i = 0; i < p->n_lines; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, sizeof(buf) - used, "%s: %s\n", p->lines[i].id, p->lines[i].text);
    }
    return buf;
}

static void bars_follow_docker_numbering(void **state)
{
    char text[128];
    cli_progress_task_text(RUNNING, text, sizeof(text));
    assert_string_equal(text, "running   [==================================================>]");
    cli_progress_task_text(SWARMC__TASK_STATE__TASK_STATE_PREPARING, text, sizeof(text));
    assert_string_equal(text, "preparing [=================================>                 ]");
    cli_progress_task_text(SWARMC__TASK_STATE__TASK_STATE_NEW, text, sizeof(text));
    assert_string_equal(text, "new       [=====>                                             ]");
    cli_progress_task_text(SWARMC__TASK_STATE__TASK_STATE_FAILED, text, sizeof(text));
    assert_string_equal(text, "failed");
}

static void replicated_slots_with_errors(void **state)
{
    struct service_fixture s;
    make_service(&s, false, 3);
    struct task_fixture t[7];
    make_task(&t[0], 1, "n1", RUNNING, RUNNING, NULL);
    make_task(&t[1], 2, "n1", SWARMC__TASK_STATE__TASK_STATE_PREPARING, RUNNING, NULL);
    make_task(&t[2], 3, NULL, SWARMC__TASK_STATE__TASK_STATE_PENDING, RUNNING,
              "no suitable node (insufficient resources on 1 node)");
    /* Not counted: an old version, a shut-down one, another service. */
    make_task(&t[3], 1, "n1", RUNNING, RUNNING, NULL);
    t[3].task.spec_version = 1;
    make_task(&t[4], 2, "n1", RUNNING, SHUTDOWN, NULL);
    make_task(&t[5], 2, "n1", RUNNING, RUNNING, NULL);
    t[5].task.service_id = "other";
    /* A fourth slot (a scale-down in progress) counts but is not shown. */
    make_task(&t[6], 7, "n1", RUNNING, RUNNING, NULL);
    Swarmc__Task *tasks[] = {&t[6].task, &t[2].task, &t[1].task, &t[0].task,
                             &t[3].task, &t[4].task, &t[5].task};
    struct cli_progress p;
    assert_int_equal(cli_progress_compute(&s.svc, tasks + 1, 6, NULL, 0, false, &p), 0);
    assert_string_equal(lines(&p),
                        "overall progress: 1 out of 3 tasks\n"
                        "1/3: running   [==================================================>]\n"
                        "2/3: preparing [=================================>                 ]\n"
                        "3/3: no suitable node (insufficient resources on 1 node)\n");
    assert_false(p.converged);
    assert_int_equal(p.running, 1);
    assert_int_equal(p.desired, 3);

    assert_int_equal(cli_progress_compute(&s.svc, tasks, 7, NULL, 0, false, &p), 0);
    assert_string_equal(lines(&p),
                        "overall progress: 2 out of 3 tasks\n"
                        "1/3: running   [==================================================>]\n"
                        "2/3: preparing [=================================>                 ]\n"
                        "3/3: no suitable node (insufficient resources on 1 node)\n");
}

static void converges_when_all_run_and_slots_wait_empty(void **state)
{
    struct service_fixture s;
    make_service(&s, false, 2);
    struct task_fixture t[2];
    make_task(&t[0], 1, "n1", RUNNING, RUNNING, NULL);
    make_task(&t[1], 2, "n1", RUNNING, RUNNING, NULL);
    Swarmc__Task *tasks[] = {&t[0].task, &t[1].task};
    struct cli_progress p;
    assert_int_equal(cli_progress_compute(&s.svc, tasks, 1, NULL, 0, false, &p), 0);
    assert_false(p.converged);
    assert_string_equal(lines(&p),
                        "overall progress: 1 out of 2 tasks\n"
                        "1/2: running   [==================================================>]\n"
                        "2/2: \n");
    assert_int_equal(cli_progress_compute(&s.svc, tasks, 2, NULL, 0, false, &p), 0);
    assert_true(p.converged);
    /* Scaling to zero converges at once. */
    make_service(&s, false, 0);
    assert_int_equal(cli_progress_compute(&s.svc, NULL, 0, NULL, 0, true, &p), 0);
    assert_true(p.converged);
    assert_string_equal(lines(&p), "rollback: 0 out of 0 tasks\n");
}

static void restart_shows_why_the_last_task_failed(void **state)
{
    struct service_fixture s;
    make_service(&s, false, 1);
    struct task_fixture t[2];
    make_task(&t[0], 1, "n1", SWARMC__TASK_STATE__TASK_STATE_FAILED, SHUTDOWN,
              "task: non-zero exit (1)\nmore detail");
    make_task(&t[1], 1, "n1", SWARMC__TASK_STATE__TASK_STATE_READY,
              SWARMC__TASK_STATE__TASK_STATE_READY, NULL);
    Swarmc__Task *tasks[] = {&t[0].task, &t[1].task};
    struct cli_progress p;
    assert_int_equal(cli_progress_compute(&s.svc, tasks, 2, NULL, 0, false, &p), 0);
    assert_string_equal(lines(&p), "overall progress: 0 out of 1 tasks\n"
                                   "1/1: task: non-zero exit (1)\n");
    t[1].status.state = RUNNING;
    assert_int_equal(cli_progress_compute(&s.svc, tasks, 2, NULL, 0, false, &p), 0);
    assert_true(p.converged);
}

static void long_errors_are_cut(void **state)
{
    struct service_fixture s;
    make_service(&s, false, 1);
    char err[200];
    memset(err, 'e', sizeof(err) - 1);
    err[sizeof(err) - 1] = '\0';
    struct task_fixture t;
    make_task(&t, 1, NULL, SWARMC__TASK_STATE__TASK_STATE_PENDING, RUNNING, err);
    Swarmc__Task *tasks[] = {&t.task};
    struct cli_progress p;
    assert_int_equal(cli_progress_compute(&s.svc, tasks, 1, NULL, 0, false, &p), 0);
    assert_int_equal(strlen(p.lines[1].text), 74 + 3);
    assert_string_equal(p.lines[1].text + 74, "\xe2\x80\xa6");
}

static void many_replicas_show_only_the_total(void **state)
{
    struct service_fixture s;
    make_service(&s, false, 21);
    struct task_fixture t[21];
    Swarmc__Task *tasks[21];
    for (int i = 0; i < 21; i++) {
        make_task(&t[i], (uint64_t)i + 1, "n1", RUNNING, RUNNING, NULL);
        tasks[i] = &t[i].task;
    }
    struct cli_progress p;
    assert_int_equal(cli_progress_compute(&s.svc, tasks, 21, NULL, 0, false, &p), 0);
    assert_string_equal(lines(&p), "overall progress: 21 out of 21 tasks\n");
    assert_true(p.converged);
}

static void global_progress_per_node(void **state)
{
    struct service_fixture s;
    make_service(&s, true, 0);
    struct cli_progress p;
    assert_int_equal(cli_progress_compute(&s.svc, NULL, 0, NULL, 0, false, &p), 0);
    assert_string_equal(lines(&p), "overall progress: waiting for new tasks\n");
    assert_false(p.converged);

    Swarmc__Node n1 = SWARMC__NODE__INIT, n2 = SWARMC__NODE__INIT, n3 = SWARMC__NODE__INIT;
    Swarmc__NodeStatus up = SWARMC__NODE_STATUS__INIT, down = SWARMC__NODE_STATUS__INIT;
    up.has_state = down.has_state = 1;
    up.state = SWARMC__NODE_STATE__NODE_STATE_READY;
    down.state = SWARMC__NODE_STATE__NODE_STATE_DOWN;
    n1.id = "aaaaaaaaaaaaaaaaaaaaaaaa1";
    n1.status = &up;
    n2.id = "bbbbbbbbbbbbbbbbbbbbbbbb2";
    n2.status = &up;
    n3.id = "ccccccccccccccccccccccccc";
    n3.status = &down;
    Swarmc__Node *nodes[] = {&n1, &n2, &n3};
    struct task_fixture t[4];
    make_task(&t[0], 0, n1.id, RUNNING, RUNNING, NULL);
    make_task(&t[1], 0, n2.id, SWARMC__TASK_STATE__TASK_STATE_STARTING, RUNNING, NULL);
    make_task(&t[2], 0, n3.id, RUNNING, RUNNING, NULL); /* node down: ignored */
    make_task(&t[3], 0, "unknown-node", RUNNING, RUNNING, NULL);
    Swarmc__Task *tasks[] = {&t[0].task, &t[1].task, &t[2].task, &t[3].task};
    assert_int_equal(cli_progress_compute(&s.svc, tasks, 4, nodes, 3, false, &p), 0);
    assert_string_equal(
        lines(&p),
        "overall progress: 1 out of 2 tasks\n"
        "aaaaaaaaaaaa: running   [==================================================>]\n"
        "bbbbbbbbbbbb: starting  [============================================>      ]\n");
    t[1].status.state = RUNNING;
    assert_int_equal(cli_progress_compute(&s.svc, tasks, 4, nodes, 3, false, &p), 0);
    assert_true(p.converged);
}

static char *show(struct cli_progress_display *d, const struct cli_progress *p)
{
    static char *text;
    size_t len = 0;
    free(text);
    text = NULL;
    FILE *f = open_memstream(&text, &len);
    cli_progress_display_show(d, f, p);
    fclose(f);
    return text;
}

static void plain_display_prints_only_changes(void **state)
{
    struct cli_progress_display d;
    cli_progress_display_init(&d, false);
    struct cli_progress p = {0};
    cli_progress_add(&p, "overall progress", "0 out of 1 tasks");
    cli_progress_add(&p, "1/1", "%s", "");
    assert_string_equal(show(&d, &p), "overall progress: 0 out of 1 tasks\n");
    snprintf(p.lines[1].text, sizeof(p.lines[1].text), "pending");
    assert_string_equal(show(&d, &p), "1/1: pending\n");
    assert_string_equal(show(&d, &p), "");
    snprintf(p.lines[0].text, sizeof(p.lines[0].text), "1 out of 1 tasks");
    cli_progress_add(&p, "verify", "Service x converged");
    assert_string_equal(show(&d, &p), "overall progress: 1 out of 1 tasks\n"
                                      "verify: Service x converged\n");
}

static void terminal_display_redraws_in_place(void **state)
{
    struct cli_progress_display d;
    cli_progress_display_init(&d, true);
    struct cli_progress p = {0};
    cli_progress_add(&p, "overall progress", "0 out of 1 tasks");
    cli_progress_add(&p, "1/1", "new");
    assert_string_equal(show(&d, &p), "\033[2Koverall progress: 0 out of 1 tasks\n"
                                      "\033[2K1/1: new\n");
    p.n_lines = 1;
    assert_string_equal(show(&d, &p), "\033[2A\033[2Koverall progress: 0 out of 1 tasks\n"
                                      "\033[2K\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bars_follow_docker_numbering),
        cmocka_unit_test(replicated_slots_with_errors),
        cmocka_unit_test(converges_when_all_run_and_slots_wait_empty),
        cmocka_unit_test(restart_shows_why_the_last_task_failed),
        cmocka_unit_test(long_errors_are_cut),
        cmocka_unit_test(many_replicas_show_only_the_total),
        cmocka_unit_test(global_progress_per_node),
        cmocka_unit_test(plain_display_prints_only_changes),
        cmocka_unit_test(terminal_display_redraws_in_place),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc;
}
