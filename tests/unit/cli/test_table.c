/* Docker-like tables (cli/table.c) and task listings (cli/tasks.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "cli/table.h"
#include "cli/tasks.h"
#include "common/alloc.h"
#include "proto/codec.h"

#define SEC 1000000000LL

static void columns_pad_to_widest_plus_three_min_ten(void **state)
{
    struct cli_table t;
    cli_table_init(&t, 3);
    assert_int_equal(cli_table_add(&t, (const char *[]){"ID", "NAME", "IMAGE"}), 0);
    assert_int_equal(cli_table_add(&t, (const char *[]){"abcdefghijkl", "web", "nginx:latest"}), 0);
    assert_int_equal(cli_table_add(&t, (const char *[]){"x", NULL, "a"}), 0);
    struct swm_buf b = {0};
    assert_int_equal(cli_table_render(&t, &b), 0);
    assert_string_equal((char *)b.data, "ID             NAME      IMAGE\n"
                                        "abcdefghijkl   web       nginx:latest\n"
                                        "x                        a\n");
    swm_buf_free(&b);
    cli_table_free(&t);
}

static void width_counts_characters_not_bytes(void **state)
{
    struct cli_table t;
    cli_table_init(&t, 2);
    assert_int_equal(cli_table_add(&t, (const char *[]){"h\xc3\xa9llo w\xc3\xb6rld!", "x"}), 0);
    assert_int_equal(cli_table_add(&t, (const char *[]){"a", "y"}), 0);
    struct swm_buf b = {0};
    assert_int_equal(cli_table_render(&t, &b), 0);
    assert_string_equal((char *)b.data, "h\xc3\xa9llo w\xc3\xb6rld!   x\n"
                                        "a              y\n");
    swm_buf_free(&b);
    cli_table_free(&t);
}

static void ellipsis_cuts_at_code_points(void **state)
{
    char buf[64];
    cli_ellipsis("short", 30, buf, sizeof(buf));
    assert_string_equal(buf, "short");
    cli_ellipsis("abcdefghij", 5, buf, sizeof(buf));
    assert_string_equal(buf, "abcd\xe2\x80\xa6");
    cli_ellipsis("\xc3\xa9\xc3\xa9\xc3\xa9", 2, buf, sizeof(buf));
    assert_string_equal(buf, "\xc3\xa9\xe2\x80\xa6");
}

static void natural_order(void **state)
{
    assert_true(cli_natural_cmp("web.2", "web.10") < 0);
    assert_true(cli_natural_cmp("web.10", "web.2") > 0);
    assert_true(cli_natural_cmp("web.1", "web.1") == 0);
    assert_true(cli_natural_cmp("api.9", "web.1") < 0);
    assert_true(cli_natural_cmp("web", "web.1") < 0);
}

static void table_out_of_memory(void **state)
{
    for (long n = 0; n < 20; n++) {
        struct cli_table t;
        struct swm_buf b = {0};
        cli_table_init(&t, 2);
        swm_alloc_fail_after(n);
        int rc = cli_table_add(&t, (const char *[]){"a", "b"});
        if (rc == 0)
            rc = cli_table_add(&t, (const char *[]){"c", "d"});
        if (rc == 0)
            rc = cli_table_render(&t, &b);
        swm_alloc_fail_reset();
        assert_true(rc == 0 || rc == -ENOMEM);
        swm_buf_free(&b);
        cli_table_free(&t);
    }
}

/* A task as the daemon would send it; fields point into static storage. */
struct fixture {
    Swarmc__Task task;
    Swarmc__Meta meta;
    Swarmc__TaskStatus status;
    Swarmc__TaskSpec spec;
    Swarmc__ContainerSpec container;
    Swarmc__Annotations service;
};

static void make_task(struct fixture *f, const char *id, uint64_t slot, Swarmc__TaskState state,
                      Swarmc__TaskState desired, int64_t stamp, const char *err)
{
    swarmc__task__init(&f->task);
    swarmc__meta__init(&f->meta);
    swarmc__task_status__init(&f->status);
    swarmc__task_spec__init(&f->spec);
    swarmc__container_spec__init(&f->container);
    swarmc__annotations__init(&f->service);
    f->service.name = "web";
    f->container.image = "nginx:1.25@sha256:0123456789abcdef";
    f->spec.container = &f->container;
    f->status.has_state = 1;
    f->status.state = state;
    f->status.timestamp = stamp;
    f->status.err = (char *)err;
    f->meta.created_at = stamp;
    f->task.id = (char *)id;
    f->task.meta = &f->meta;
    f->task.spec = &f->spec;
    f->task.slot = slot;
    f->task.node_id = "nodeid0000000000000000001";
    f->task.service_id = "svc";
    f->task.service_annotations = &f->service;
    f->task.status = &f->status;
    f->task.has_desired_state = 1;
    f->task.desired_state = desired;
}

static void task_listing_like_docker_service_ps(void **state)
{
    const int64_t now = 1000 * SEC;
    struct fixture f[4];
    make_task(&f[0], "aaaaaaaaaaaaaaaaaaaaaaaa1", 1, SWARMC__TASK_STATE__TASK_STATE_RUNNING,
              SWARMC__TASK_STATE__TASK_STATE_RUNNING, now - 5 * SEC, NULL);
    make_task(&f[1], "bbbbbbbbbbbbbbbbbbbbbbbb2", 1, SWARMC__TASK_STATE__TASK_STATE_FAILED,
              SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN, now - 90 * SEC,
              "task: non-zero exit (1): the container died of something long");
    make_task(&f[2], "cccccccccccccccccccccccc3", 10, SWARMC__TASK_STATE__TASK_STATE_PENDING,
              SWARMC__TASK_STATE__TASK_STATE_RUNNING, now, "no suitable node");
    make_task(&f[3], "dddddddddddddddddddddddd4", 2, SWARMC__TASK_STATE__TASK_STATE_NEW,
              SWARMC__TASK_STATE__TASK_STATE_RUNNING, 0, NULL);
    Swarmc__Task *tasks[] = {&f[2].task, &f[1].task, &f[3].task, &f[0].task};
    Swarmc__Node node = SWARMC__NODE__INIT;
    Swarmc__NodeDescription desc = SWARMC__NODE_DESCRIPTION__INIT;
    desc.hostname = "node1";
    node.id = "nodeid0000000000000000001";
    node.description = &desc;
    Swarmc__Node *nodes[] = {&node};
    struct cli_tasks_opts opts = {.now_ns = now};
    struct swm_buf b = {0};
    assert_int_equal(cli_tasks_render(tasks, 4, nodes, 1, &opts, &b), 0);
    const char *want =
        "ID             NAME        IMAGE        NODE      DESIRED STATE   CURRENT STATE           "
        "         ERROR                              PORTS\n"
        "aaaaaaaaaaaa   web.1       nginx:1.25   node1     Running         Running 5 seconds ago   "
        "                                            \n"
        "bbbbbbbbbbbb    \\_ web.1   nginx:1.25   node1     Shutdown        Failed about a minute "
        "ago        \"task: non-zero exit (1): the \xe2\x80\xa6\"   \n"
        "dddddddddddd   web.2       nginx:1.25   node1     Running         New                     "
        "                                            \n"
        "cccccccccccc   web.10      nginx:1.25   node1     Running         Pending less than a "
        "second ago   \"no suitable node\"                 \n";
    if (strcmp((char *)b.data, want) != 0)
        fail_msg("got:\n%s\nwant:\n%s", (char *)b.data, want);
    swm_buf_free(&b);

    opts.quiet = true;
    assert_int_equal(cli_tasks_render(tasks, 4, nodes, 1, &opts, &b), 0);
    assert_string_equal((char *)b.data, "aaaaaaaaaaaa\nbbbbbbbbbbbb\ndddddddddddd\ncccccccccccc\n");
    swm_buf_free(&b);

    /* --no-trunc: full IDs, digests and errors; unknown nodes show IDs. */
    opts.quiet = false;
    opts.no_trunc = true;
    assert_int_equal(cli_tasks_render(tasks + 3, 1, NULL, 0, &opts, &b), 0);
    assert_non_null(strstr((char *)b.data, "aaaaaaaaaaaaaaaaaaaaaaaa1"));
    assert_non_null(strstr((char *)b.data, "nginx:1.25@sha256:0123456789abcdef"));
    assert_non_null(strstr((char *)b.data, "nodeid0000000000000000001"));
    swm_buf_free(&b);
}

static void global_task_names_use_the_node(void **state)
{
    struct fixture f;
    make_task(&f, "x", 0, SWARMC__TASK_STATE__TASK_STATE_RUNNING,
              SWARMC__TASK_STATE__TASK_STATE_RUNNING, 0, NULL);
    char name[64];
    cli_task_name(&f.task, name, sizeof(name));
    assert_string_equal(name, "web.nodeid0000000000000000001");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(columns_pad_to_widest_plus_three_min_ten),
        cmocka_unit_test(width_counts_characters_not_bytes),
        cmocka_unit_test(ellipsis_cuts_at_code_points),
        cmocka_unit_test(natural_order),
        cmocka_unit_test(table_out_of_memory),
        cmocka_unit_test(task_listing_like_docker_service_ps),
        cmocka_unit_test(global_task_names_use_the_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
