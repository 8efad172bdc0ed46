/* Command-line flags for every swarmc command: one parser driven by
 * declarative tables (struct cli_flag), with pflag's syntax and messages so
 * that a Docker user sees what the Docker CLI would print:
 *
 *   --name value, --name=value, -n value, -nvalue, -n=value, -dq (bools),
 *   --bool, --bool=false, "--" ends the flags, "-" is an argument.
 *
 * Values of typed flags (durations, sizes, CPUs, integers) are checked while
 * parsing, so a command never starts work with a bad value.
 */
#ifndef SWM_CLI_FLAGS_H
#define SWM_CLI_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* A usage error (unknown flag, missing value, wrong number of arguments):
 * the message is followed by "See '<command> --help'.". A bad value is
 * reported with SWM_EINVAL_SPEC and stands on its own line. Both make the
 * command exit with status 1 (Docker uses 125 for these; swarmc uses 1 for
 * every failure). */
#define CLI_EUSAGE (-EINVAL)

enum cli_flag_type {
    CLI_FLAG_BOOL,  /* no value; "--x=false" allowed */
    CLI_FLAG_VALUE, /* one value; the last occurrence wins */
    CLI_FLAG_LIST,  /* repeatable; every occurrence counts */
};

/* How a value is checked and converted (cli_value_parse). */
enum cli_kind {
    CLI_KIND_STRING = 0,
    CLI_KIND_BOOL,
    CLI_KIND_UINT,     /* uint64, decimal */
    CLI_KIND_INT,      /* int64, decimal, may be negative */
    CLI_KIND_DURATION, /* Go duration -> ns */
    CLI_KIND_BYTES,    /* "512m" -> bytes */
    CLI_KIND_CPUS,     /* "0.5" -> nano-CPUs */
    CLI_KIND_FLOAT,    /* "0.2" */
};

struct cli_flag {
    const char *name;        /* long name without "--"; NULL ends a table */
    char shorthand;          /* 0 if none */
    enum cli_flag_type type; /* bool, single value or list */
    enum cli_kind kind;      /* checked at parse time */
    const char *value_name;  /* shown in help ("string", "duration"...); NULL = from kind */
    const char *usage;       /* one line of help */
    const void *data;        /* for the command (specflags: how to apply it) */
};

/* One occurrence of a flag on the command line. value is borrowed from argv
 * (or a static "true"/"false" for bool flags). */
struct cli_opt {
    const struct cli_flag *flag;
    const char *value;
};

/* The result of parsing one command's argv. */
struct cli_args {
    struct cli_opt *opts; /* owned array, command-line order */
    size_t n_opts;
    char **pos; /* owned array of borrowed argv strings */
    size_t n_pos;
    bool help; /* --help or -h was given */
};

/* Parses argv[0..argc) against the flags of `tables` (a NULL-terminated list
 * of flag tables). Positional arguments go to out->pos; with interspersed
 * false the first positional argument ends the flags (everything after it is
 * positional, as for `service create IMAGE COMMAND -x`). Returns 0, -ENOMEM,
 * CLI_EUSAGE ("unknown flag: --foo") or SWM_EINVAL_SPEC (bad value), with err
 * set. out is set only on success; free it with cli_args_free. */
int cli_args_parse(const struct cli_flag *const *tables, int argc, char **argv, bool interspersed,
                   struct cli_args *out, struct swm_err *err);

/* Frees what cli_args_parse allocated. Accepts a zeroed struct. */
void cli_args_free(struct cli_args *args);

/* The last value given for flag `name`, or NULL if it was not given. */
const char *cli_args_value(const struct cli_args *args, const char *name);

/* True if flag `name` was given at all (even as --x=false). */
bool cli_args_has(const struct cli_args *args, const char *name);

/* The last value of bool flag `name`; false if not given. */
bool cli_args_bool(const struct cli_args *args, const char *name);

/* Iterates the values of flag `name` in command-line order: start with
 * *cursor = 0; returns NULL when done. */
const char *cli_args_iter(const struct cli_args *args, const char *name, size_t *cursor);

/* Converted value of a flag (see enum cli_kind). */
union cli_value {
    const char *s;
    bool b;
    uint64_t u;
    int64_t i;
    double f;
};

/* Checks and converts `value` for `flag` as flag->kind says. On failure
 * returns SWM_EINVAL_SPEC with err set to one line in pflag's words, e.g.
 * `invalid argument "5x" for "--restart-delay" flag: time: unknown unit "x"
 * in duration "5x"`. */
int cli_value_parse(const struct cli_flag *flag, const char *value, union cli_value *out,
                    struct swm_err *err);

/* Looks up `name` in the flag tables and converts its last value. Returns 1
 * if the flag was given (out set), 0 if not, or SWM_EINVAL_SPEC. */
int cli_args_get(const struct cli_args *args, const char *name, union cli_value *out,
                 struct swm_err *err);

/* Sets err to `invalid argument "<value>" for "<flag>" flag: <reason>`.
 * Returns SWM_EINVAL_SPEC. */
int cli_flag_error(struct swm_err *err, const struct cli_flag *flag, const char *value,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Appends the option lines of a help text for `tables` to out, sorted by
 * name and laid out as pflag does. Hidden flags (usage NULL) are skipped.
 * Returns 0 or -ENOMEM. */
struct swm_buf;
int cli_flags_help(const struct cli_flag *const *tables, struct swm_buf *out);

#endif
