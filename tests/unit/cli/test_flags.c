/* The flag parser (cli/flags.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "cli/flags.h"
#include "common/alloc.h"
#include "common/buf.h"

static const struct cli_flag flags[] = {
    {"detach", 'd', CLI_FLAG_BOOL, CLI_KIND_BOOL, NULL, "Detach", NULL},
    {"quiet", 'q', CLI_FLAG_BOOL, CLI_KIND_BOOL, NULL, "Quiet", NULL},
    {"name", 0, CLI_FLAG_VALUE, CLI_KIND_STRING, NULL, "Name", NULL},
    {"env", 'e', CLI_FLAG_LIST, CLI_KIND_STRING, NULL, "Env", NULL},
    {"replicas", 0, CLI_FLAG_VALUE, CLI_KIND_UINT, NULL, "Replicas", NULL},
    {"delay", 0, CLI_FLAG_VALUE, CLI_KIND_DURATION, NULL, "Delay", NULL},
    {"secret", 0, CLI_FLAG_VALUE, CLI_KIND_STRING, NULL, NULL, NULL},
    {0},
};
static const struct cli_flag *const tables[] = {flags, NULL};

static int parse(char **argv, bool interspersed, struct cli_args *args, struct swm_err *err)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    return cli_args_parse(tables, argc, argv, interspersed, args, err);
}

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})

static void long_and_short_forms(void **state)
{
    struct cli_args a = {0};
    struct swm_err err = {0};
    assert_int_equal(parse(ARGV("--name", "web", "-e", "A=1", "-eB=2", "-e=C=3", "--env=D=4",
                                "--replicas=3", "-dq", "pos1", "--delay", "1s", "pos2"),
                           true, &a, &err),
                     0);
    assert_string_equal(cli_args_value(&a, "name"), "web");
    size_t cursor = 0;
    assert_string_equal(cli_args_iter(&a, "env", &cursor), "A=1");
    assert_string_equal(cli_args_iter(&a, "env", &cursor), "B=2");
    assert_string_equal(cli_args_iter(&a, "env", &cursor), "C=3");
    assert_string_equal(cli_args_iter(&a, "env", &cursor), "D=4");
    assert_null(cli_args_iter(&a, "env", &cursor));
    assert_true(cli_args_bool(&a, "detach"));
    assert_true(cli_args_bool(&a, "quiet"));
    union cli_value v;
    assert_int_equal(cli_args_get(&a, "replicas", &v, &err), 1);
    assert_int_equal(v.u, 3);
    assert_int_equal(cli_args_get(&a, "delay", &v, &err), 1);
    assert_true(v.i == 1000000000LL);
    assert_int_equal(cli_args_get(&a, "name-missing", &v, &err), 0);
    assert_int_equal(a.n_pos, 2);
    assert_string_equal(a.pos[0], "pos1");
    assert_string_equal(a.pos[1], "pos2");
    assert_false(a.help);
    cli_args_free(&a);
}

static void bools_take_explicit_values(void **state)
{
    struct cli_args a = {0};
    struct swm_err err = {0};
    assert_int_equal(parse(ARGV("--detach=false", "-q=0"), true, &a, &err), 0);
    assert_true(cli_args_has(&a, "detach"));
    assert_false(cli_args_bool(&a, "detach"));
    assert_false(cli_args_bool(&a, "quiet"));
    cli_args_free(&a);
    assert_int_equal(parse(ARGV("--detach=yes"), true, &a, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "invalid argument \"yes\" for \"-d, --detach\" flag: "
                                 "strconv.ParseBool: parsing \"yes\": invalid syntax");
}

static void last_value_wins_and_values_may_look_like_flags(void **state)
{
    struct cli_args a = {0};
    struct swm_err err = {0};
    assert_int_equal(parse(ARGV("--name", "a", "--name", "-b", "--name="), true, &a, &err), 0);
    assert_string_equal(cli_args_value(&a, "name"), "");
    cli_args_free(&a);
}

static void double_dash_and_single_dash(void **state)
{
    struct cli_args a = {0};
    struct swm_err err = {0};
    assert_int_equal(parse(ARGV("-", "--", "--name", "x"), true, &a, &err), 0);
    assert_int_equal(a.n_pos, 3);
    assert_string_equal(a.pos[0], "-");
    assert_string_equal(a.pos[1], "--name");
    assert_null(cli_args_value(&a, "name"));
    cli_args_free(&a);
}

static void non_interspersed_stops_at_first_argument(void **state)
{
    struct cli_args a = {0};
    struct swm_err err = {0};
    assert_int_equal(parse(ARGV("-d", "busybox", "ls", "-la", "--name", "x"), false, &a, &err), 0);
    assert_true(cli_args_bool(&a, "detach"));
    assert_null(cli_args_value(&a, "name"));
    assert_int_equal(a.n_pos, 5);
    assert_string_equal(a.pos[2], "-la");
    cli_args_free(&a);
}

static void help_is_always_understood(void **state)
{
    struct cli_args a = {0};
    struct swm_err err = {0};
    assert_int_equal(parse(ARGV("x", "--help"), true, &a, &err), 0);
    assert_true(a.help);
    cli_args_free(&a);
    assert_int_equal(parse(ARGV("-dh"), true, &a, &err), 0);
    assert_true(a.help);
    cli_args_free(&a);
}

static void usage_errors_in_pflag_words(void **state)
{
    static const struct {
        char *argv[3];
        const char *message;
    } cases[] = {
        {{"--foo"}, "unknown flag: --foo"},
        {{"--foo=bar"}, "unknown flag: --foo"},
        {{"-x"}, "unknown shorthand flag: 'x' in -x"},
        {{"-dx"}, "unknown shorthand flag: 'x' in -dx"},
        {{"--name"}, "flag needs an argument: --name"},
        {{"-e"}, "flag needs an argument: 'e' in -e"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cli_args a = {0};
        struct swm_err err = {0};
        assert_int_equal(parse((char **)cases[i].argv, true, &a, &err), CLI_EUSAGE);
        assert_string_equal(err.msg, cases[i].message);
        assert_null(a.opts);
    }
}

static void typed_values_are_checked_while_parsing(void **state)
{
    struct cli_args a = {0};
    struct swm_err err = {0};
    assert_int_equal(parse(ARGV("--replicas", "2x"), true, &a, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "invalid argument \"2x\" for \"--replicas\" flag: "
                                 "strconv.ParseUint: parsing \"2x\": invalid syntax");
    assert_int_equal(parse(ARGV("--delay", "1h2x"), true, &a, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "invalid argument \"1h2x\" for \"--delay\" flag: time: unknown "
                                 "unit \"x\" in duration \"1h2x\"");
    assert_int_equal(parse(ARGV("--delay", ""), true, &a, &err), SWM_EINVAL_SPEC);
    assert_string_equal(err.msg, "invalid argument \"\" for \"--delay\" flag: time: invalid "
                                 "duration \"\"");
}

static void help_lists_flags_sorted_and_aligned(void **state)
{
    struct swm_buf b = {0};
    assert_int_equal(cli_flags_help(tables, &b), 0);
    const char *want = "      --delay duration  Delay\n"
                       "  -d, --detach          Detach\n"
                       "  -e, --env list        Env\n"
                       "      --name string     Name\n"
                       "  -q, --quiet           Quiet\n"
                       "      --replicas uint   Replicas\n";
    assert_string_equal((char *)b.data, want);
    swm_buf_free(&b);
}

static void out_of_memory_while_parsing(void **state)
{
    struct cli_args a = {0};
    struct swm_err err = {0};
    swm_alloc_fail_after(0);
    assert_int_equal(parse(ARGV("-d"), true, &a, &err), -ENOMEM);
    swm_alloc_fail_after(1);
    assert_int_equal(parse(ARGV("-d"), true, &a, &err), -ENOMEM);
    swm_alloc_fail_reset();
    assert_int_equal(parse(ARGV("-d"), true, &a, &err), 0);
    cli_args_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(long_and_short_forms),
        cmocka_unit_test(bools_take_explicit_values),
        cmocka_unit_test(last_value_wins_and_values_may_look_like_flags),
        cmocka_unit_test(double_dash_and_single_dash),
        cmocka_unit_test(non_interspersed_stops_at_first_argument),
        cmocka_unit_test(help_is_always_understood),
        cmocka_unit_test(usage_errors_in_pflag_words),
        cmocka_unit_test(typed_values_are_checked_while_parsing),
        cmocka_unit_test(help_lists_flags_sorted_and_aligned),
        cmocka_unit_test(out_of_memory_while_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
