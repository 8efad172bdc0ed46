/* daemon/nodeconf.c: the node's local settings file <dir>/node.conf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "daemon/nodeconf.h"

struct nfx {
    char dir[256];
    char path[512];
};

static int setup(void **state)
{
    struct nfx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *base = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/swarmc-nodeconf-XXXXXX", base != NULL ? base : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, NODECONF_FILE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct nfx *f = *state;
    assert_int_equal(swm_remove_tree(f->dir), 0);
    free(f);
    return 0;
}

/* Writes len bytes of text as the node.conf of f (may hold NUL bytes). */
static void write_conf(struct nfx *f, const char *text, size_t len)
{
    assert_int_equal(swm_write_file_atomic(f->path, text, len, 0600), 0);
}

static void write_conf_str(struct nfx *f, const char *text)
{
    write_conf(f, text, strlen(text));
}

/* Loads f's node.conf, which must be refused as corrupt at `line` with a
 * message holding `what`. */
static void expect_corrupt(struct nfx *f, unsigned line, const char *what)
{
    struct node_conf c;
    struct swm_err err = {0};
    char at[64];
    assert_int_equal(node_conf_load(f->dir, &c, &err), SWM_ECORRUPT);
    assert_int_equal(err.code, SWM_ECORRUPT);
    snprintf(at, sizeof(at), "line %u:", line);
    if (strstr(err.msg, f->path) == NULL || strstr(err.msg, at) == NULL ||
        strstr(err.msg, what) == NULL)
        fail_msg("expected \"%s\", \"%s\" and \"%s\" in: %s", f->path, at, what, err.msg);
}

static void test_save_then_load_round_trips_every_field(void **state)
{
    struct nfx *f = *state;
    struct node_conf in = {0}, out;
    struct swm_err err = {0};
    snprintf(in.listen_addr, sizeof(in.listen_addr), "10.0.0.1:2377");
    snprintf(in.advertise_addr, sizeof(in.advertise_addr), "[fe80::1:2]:4000");
    snprintf(in.availability, sizeof(in.availability), "drain");
    const char *managers[] = {"10.0.0.2:2377", "10.0.0.3:2377", "[::1]:2378"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(node_conf_add_manager(&in, managers[i]), 0);
    assert_int_equal(node_conf_save(f->dir, &in, &err), 0);

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
    assert_string_equal(out.listen_addr, "10.0.0.1:2377");
    assert_string_equal(out.advertise_addr, "[fe80::1:2]:4000");
    assert_string_equal(out.availability, "drain");
    assert_int_equal(out.n_managers, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(out.managers[i], managers[i]); /* in order */
    /* Zeroed first, then filled: nothing of the old contents survives. */
    assert_memory_equal(&out, &in, sizeof(in));
}

static void test_every_availability_round_trips(void **state)
{
    struct nfx *f = *state;
    const char *values[] = {"active", "pause", "drain"};
    for (size_t i = 0; i < 3; i++) {
        struct node_conf in = {0}, out;
        struct swm_err err = {0};
        snprintf(in.availability, sizeof(in.availability), "%s", values[i]);
        assert_int_equal(node_conf_save(f->dir, &in, &err), 0);
        assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
        assert_string_equal(out.availability, values[i]);
        assert_string_equal(out.listen_addr, "");
        assert_int_equal(out.n_managers, 0);
    }
}

static void test_saving_again_replaces_the_file(void **state)
{
    struct nfx *f = *state;
    struct node_conf a = {0}, b = {0}, out;
    struct swm_err err = {0};
    snprintf(a.listen_addr, sizeof(a.listen_addr), "10.0.0.1:1");
    assert_int_equal(node_conf_add_manager(&a, "10.0.0.9:2377"), 0);
    assert_int_equal(node_conf_save(f->dir, &a, &err), 0);
    snprintf(b.advertise_addr, sizeof(b.advertise_addr), "10.0.0.2:2");
    assert_int_equal(node_conf_save(f->dir, &b, &err), 0);
    assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
    assert_string_equal(out.listen_addr, "");
    assert_string_equal(out.advertise_addr, "10.0.0.2:2");
    assert_int_equal(out.n_managers, 0);
}

static void test_an_empty_conf_saves_and_loads_empty(void **state)
{
    struct nfx *f = *state;
    struct node_conf in = {0}, out, zero = {0};
    struct swm_err err = {0};
    assert_int_equal(node_conf_save(f->dir, &in, &err), 0);
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
    assert_memory_equal(&out, &zero, sizeof(zero));
}

static void test_a_missing_file_loads_as_empty(void **state)
{
    struct nfx *f = *state;
    struct node_conf out, zero = {0};
    struct swm_err err = {0};
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
    assert_memory_equal(&out, &zero, sizeof(zero));
}

static void test_an_empty_file_loads_as_empty(void **state)
{
    struct nfx *f = *state;
    struct node_conf out, zero = {0};
    struct swm_err err = {0};
    write_conf(f, "", 0);
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
    assert_memory_equal(&out, &zero, sizeof(zero));
}

static void test_comments_and_blank_lines_are_ignored(void **state)
{
    struct nfx *f = *state;
    struct node_conf out;
    struct swm_err err = {0};
    write_conf_str(f, "# made by hand\n"
                      "\n"
                      "listen-addr 10.0.0.1:2377\n"
                      "\n"
                      "\n"
                      "# manager 10.9.9.9:1\n"
                      "manager 10.0.0.2:2377\n"
                      "#availability pause\n"
                      "availability active"); /* no final newline */
    assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
    assert_string_equal(out.listen_addr, "10.0.0.1:2377");
    assert_string_equal(out.advertise_addr, "");
    assert_string_equal(out.availability, "active");
    assert_int_equal(out.n_managers, 1);
    assert_string_equal(out.managers[0], "10.0.0.2:2377");
}

static void test_a_repeated_manager_is_kept_once(void **state)
{
    struct nfx *f = *state;
    struct node_conf out;
    struct swm_err err = {0};
    write_conf_str(f, "manager 10.0.0.2:2377\nmanager 10.0.0.3:2377\nmanager 10.0.0.2:2377\n");
    assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
    assert_int_equal(out.n_managers, 2);
    assert_string_equal(out.managers[0], "10.0.0.2:2377");
    assert_string_equal(out.managers[1], "10.0.0.3:2377");
}

static void test_an_unknown_setting_is_refused(void **state)
{
    struct nfx *f = *state;
    write_conf_str(f, "listen-addr 10.0.0.1:2377\ncolour blue\n");
    expect_corrupt(f, 2, "colour: unknown setting");
}

static void test_a_missing_value_is_refused(void **state)
{
    struct nfx *f = *state;
    write_conf_str(f, "# x\nlisten-addr\n");
    expect_corrupt(f, 2, "expected \"name value\"");
    write_conf_str(f, "availability \n");
    expect_corrupt(f, 1, "expected \"name value\"");
}

static void test_bad_addresses_are_refused(void **state)
{
    struct nfx *f = *state;
    write_conf_str(f, "listen-addr 10.0.0.1\n");
    expect_corrupt(f, 1, "listen-addr: not a numeric host:port address");
    write_conf_str(f, "availability pause\nadvertise-addr host:99999\n");
    expect_corrupt(f, 2, "advertise-addr: not a numeric host:port address");
    write_conf_str(f, "advertise-addr 10.0.0.1:99999\n");
    expect_corrupt(f, 1, "advertise-addr: not a numeric host:port address");
    write_conf_str(f, "manager 10.0.0.2:2377\nmanager 10.0.0.1\n");
    expect_corrupt(f, 2, "manager: not a numeric host:port address");
}

static void test_an_unknown_availability_is_refused(void **state)
{
    struct nfx *f = *state;
    write_conf_str(f, "listen-addr 10.0.0.1:2377\navailability sometimes\n");
    expect_corrupt(f, 2, "availability: not one of active, pause, drain");
    /* A value the field could not hold either. */
    write_conf_str(f, "availability activeactive\n");
    expect_corrupt(f, 1, "availability: not one of active, pause, drain");
}

static void test_line_numbers_count_blank_lines(void **state)
{
    struct nfx *f = *state;
    write_conf_str(f, "# settings\n\n\nlisten-addr 10.0.0.1:2377\n\nbogus 1\n");
    expect_corrupt(f, 6, "bogus: unknown setting");
}

static void test_a_nul_byte_is_refused(void **state)
{
    struct nfx *f = *state;
    static const char text[] = "listen-addr 10.0.0.1:2377\nmanager 10.0.0.2:2377\0\n";
    write_conf(f, text, sizeof(text) - 1);
    struct node_conf out;
    struct swm_err err = {0};
    assert_int_equal(node_conf_load(f->dir, &out, &err), SWM_ECORRUPT);
    if (strstr(err.msg, f->path) == NULL || strstr(err.msg, "line 2") == NULL ||
        strstr(err.msg, "NUL") == NULL)
        fail_msg("expected the path, \"line 2\" and \"NUL\" in: %s", err.msg);
}

static void test_more_managers_than_fit_are_refused(void **state)
{
    struct nfx *f = *state;
    char text[4096] = "# managers\n";
    struct node_conf out;
    struct swm_err err = {0};
    for (unsigned i = 0; i < NODECONF_MAX_MANAGERS; i++) {
        size_t len = strlen(text);
        snprintf(text + len, sizeof(text) - len, "manager 10.0.1.%u:2377\n", i + 1);
    }
    /* Exactly as many as fit, and a repeat, load. */
    size_t len = strlen(text);
    snprintf(text + len, sizeof(text) - len, "manager 10.0.1.1:2377\n");
    write_conf_str(f, text);
    assert_int_equal(node_conf_load(f->dir, &out, &err), 0);
    assert_int_equal(out.n_managers, NODECONF_MAX_MANAGERS);
    assert_string_equal(out.managers[NODECONF_MAX_MANAGERS - 1], "10.0.1.16:2377");
    /* One more does not: line 1 is the comment, then the 16, the repeat. */
    len = strlen(text);
    snprintf(text + len, sizeof(text) - len, "manager 10.0.2.1:2377\n");
    write_conf_str(f, text);
    expect_corrupt(f, NODECONF_MAX_MANAGERS + 3, "manager: too many managers");
}

static void test_a_file_too_large_is_refused(void **state)
{
    struct nfx *f = *state;
    size_t len = (64u << 10) + 1;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, '#', len);
    write_conf(f, text, len);
    free(text);
    struct node_conf out;
    struct swm_err err = {0};
    assert_int_equal(node_conf_load(f->dir, &out, &err), -EFBIG);
    assert_non_null(strstr(err.msg, f->path));
}

static void test_save_into_a_missing_directory_fails_naming_the_file(void **state)
{
    struct nfx *f = *state;
    char dir[300];
    struct node_conf c = {0};
    struct swm_err err = {0};
    snprintf(dir, sizeof(dir), "%s/nowhere", f->dir);
    int rc = node_conf_save(dir, &c, &err);
    assert_true(rc < 0);
    assert_int_equal(err.code, rc);
    assert_non_null(strstr(err.msg, "nowhere/node.conf"));
}

static void test_add_manager_dedups_and_fills_up(void **state)
{
    struct node_conf c = {0};
    char addr[SWM_ADDR_STRLEN];
    assert_int_equal(node_conf_add_manager(&c, "10.0.0.1:2377"), 0);
    assert_int_equal(node_conf_add_manager(&c, "10.0.0.1:2377"), 0);
    assert_int_equal(c.n_managers, 1);
    for (unsigned i = 1; i < NODECONF_MAX_MANAGERS; i++) {
        snprintf(addr, sizeof(addr), "10.0.0.%u:2377", i + 1);
        assert_int_equal(node_conf_add_manager(&c, addr), 0);
    }
    assert_int_equal(c.n_managers, NODECONF_MAX_MANAGERS);
    assert_int_equal(node_conf_add_manager(&c, "10.0.9.9:2377"), -ENOSPC);
    assert_int_equal(c.n_managers, NODECONF_MAX_MANAGERS);
    /* Full, but already there: nothing to add. */
    assert_int_equal(node_conf_add_manager(&c, "10.0.0.5:2377"), 0);
    assert_int_equal(c.n_managers, NODECONF_MAX_MANAGERS);
    for (unsigned i = 0; i < NODECONF_MAX_MANAGERS; i++) {
        snprintf(addr, sizeof(addr), "10.0.0.%u:2377", i + 1);
        assert_string_equal(c.managers[i], addr);
    }
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_save_then_load_round_trips_every_field),
        T(test_every_availability_round_trips),
        T(test_saving_again_replaces_the_file),
        T(test_an_empty_conf_saves_and_loads_empty),
        T(test_a_missing_file_loads_as_empty),
        T(test_an_empty_file_loads_as_empty),
        T(test_comments_and_blank_lines_are_ignored),
        T(test_a_repeated_manager_is_kept_once),
        T(test_an_unknown_setting_is_refused),
        T(test_a_missing_value_is_refused),
        T(test_bad_addresses_are_refused),
        T(test_an_unknown_availability_is_refused),
        T(test_line_numbers_count_blank_lines),
        T(test_a_nul_byte_is_refused),
        T(test_more_managers_than_fit_are_refused),
        T(test_a_file_too_large_is_refused),
        T(test_save_into_a_missing_directory_fails_naming_the_file),
        cmocka_unit_test(test_add_manager_dedups_and_fills_up),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
