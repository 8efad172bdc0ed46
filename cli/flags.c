#include "cli/flags.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/parse.h"
#include "common/sort.h"

/* Every command understands -h/--help, as with cobra. */
static const struct cli_flag help_flag = {"help", 'h',           CLI_FLAG_BOOL, CLI_KIND_BOOL,
                                          NULL,   "Print usage", NULL};

static const struct cli_flag *find_long(const struct cli_flag *const *tables, const char *name,
                                        size_t len)
{
    for (size_t t = 0; tables != NULL && tables[t] != NULL; t++) {
        for (const struct cli_flag *f = tables[t]; f->name != NULL; f++) {
            if (strlen(f->name) == len && strncmp(f->name, name, len) == 0)
                return f;
        }
    }
    if (len == 4 && strncmp(name, "help", 4) == 0)
        return &help_flag;
    return NULL;
}

static const struct cli_flag *find_short(const struct cli_flag *const *tables, char c)
{
    for (size_t t = 0; tables != NULL && tables[t] != NULL; t++) {
        for (const struct cli_flag *f = tables[t]; f->name != NULL; f++) {
            if (f->shorthand == c)
                return f;
        }
    }
    return c == 'h' ? &help_flag : NULL;
}

/* strconv.ParseBool's spellings. */
static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static void flag_display_name(const struct cli_flag *flag, char *buf, size_t len)
{
    if (flag->shorthand != 0)
        snprintf(buf, len, "-%c, --%s", flag->shorthand, flag->name);
    else
        snprintf(buf, len, "--%s", flag->name);
}

int cli_flag_error(struct swm_err *err, const struct cli_flag *flag, const char *value,
                   const char *fmt, ...)
{
    char reason[256];
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    flag_display_name(flag, name, sizeof(name));
    return swm_err_set(err, SWM_EINVAL_SPEC, "invalid argument \"%s\" for \"%s\" flag: %s", value,
                       name, reason);
}

static const char *const duration_unit_names[] = {"ns", "us", "\xc2\xb5s", "ms", "s", "m", "h"};

/* Go's time.ParseDuration error for a value swm_parse_duration refused. */
static void duration_reason(const char *s, char *buf, size_t len)
{
    const char *p = s;
    if (*p == '\0' || *p == '-' || *p == '+') {
        snprintf(buf, len, "time: invalid duration \"%s\"", s);
        return;
    }
    while (*p != '\0') {
        const char *num = p;
        while (isdigit((unsigned char)*p) || *p == '.')
            p++;
        if (p == num) {
            snprintf(buf, len, "time: invalid duration \"%s\"", s);
            return;
        }
        const char *unit = p;
        while (*p != '\0' && !isdigit((unsigned char)*p) && *p != '.')
            p++;
        size_t n = (size_t)(p - unit);
        if (n == 0) {
            snprintf(buf, len, "time: missing unit in duration \"%s\"", s);
            return;
        }
        bool known = false;
        for (size_t i = 0; i < sizeof(duration_unit_names) / sizeof(duration_unit_names[0]); i++)
            known = known || (strlen(duration_unit_names[i]) == n &&
                              strncmp(unit, duration_unit_names[i], n) == 0);
        if (!known) {
            snprintf(buf, len, "time: unknown unit \"%.*s\" in duration \"%s\"", (int)n, unit, s);
            return;
        }
    }
    snprintf(buf, len, "time: invalid duration \"%s\"", s);
}

static int parse_int64(const char *s, int64_t *out)
{
    if (*s == '\0' || isspace((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *out = v;
    return 0;
}

static int parse_float(const char *s, double *out)
{
    if (*s == '\0' || isspace((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || isnan(v) || isinf(v))
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *out = v;
    return 0;
}

int cli_value_parse(const struct cli_flag *flag, const char *value, union cli_value *out,
                    struct swm_err *err)
{
    union cli_value v = {0};
    int rc = 0;
    char reason[192];
    switch (flag->kind) {
    case CLI_KIND_STRING:
        v.s = value;
        break;
    case CLI_KIND_BOOL:
        if (parse_bool(value, &v.b) < 0)
            return cli_flag_error(err, flag, value,
                                  "strconv.ParseBool: parsing \"%s\": invalid syntax", value);
        break;
    case CLI_KIND_UINT:
        rc = swm_parse_uint(value, UINT64_MAX, &v.u);
        /* All digits and still refused: too large. */
        if (rc < 0 && value[0] != '\0' && value[strspn(value, "0123456789")] == '\0')
            rc = -ERANGE;
        if (rc < 0)
            return cli_flag_error(err, flag, value, "strconv.ParseUint: parsing \"%s\": %s", value,
                                  rc == -ERANGE ? "value out of range" : "invalid syntax");
        break;
    case CLI_KIND_INT:
        rc = parse_int64(value, &v.i);
        if (rc < 0)
            return cli_flag_error(err, flag, value, "strconv.ParseInt: parsing \"%s\": %s", value,
                                  rc == -ERANGE ? "value out of range" : "invalid syntax");
        break;
    case CLI_KIND_DURATION:
        if (swm_parse_duration(value, &v.i) < 0) {
            duration_reason(value, reason, sizeof(reason));
            return cli_flag_error(err, flag, value, "%s", reason);
        }
        break;
    case CLI_KIND_BYTES:
        if (swm_parse_bytes(value, &v.i) < 0)
            return cli_flag_error(err, flag, value, "invalid size: '%s'", value);
        break;
    case CLI_KIND_CPUS:
        if (swm_parse_nano_cpus(value, &v.i) < 0)
            return cli_flag_error(err, flag, value, "failed to parse %s as a rational number",
                                  value);
        break;
    case CLI_KIND_FLOAT:
        rc = parse_float(value, &v.f);
        if (rc < 0)
            return cli_flag_error(err, flag, value, "strconv.ParseFloat: parsing \"%s\": %s", value,
                                  rc == -ERANGE ? "value out of range" : "invalid syntax");
        break;
    }
    *out = v;
    return 0;
}

static int record(struct cli_args *a, const struct cli_flag *flag, const char *value,
                  struct swm_err *err)
{
    if (flag == &help_flag) {
        a->help = true;
        return 0;
    }
    if (flag->type == CLI_FLAG_BOOL) {
        bool b;
        if (parse_bool(value, &b) < 0)
            return cli_flag_error(err, flag, value,
                                  "strconv.ParseBool: parsing \"%s\": invalid syntax", value);
        value = b ? "true" : "false";
    } else if (flag->kind != CLI_KIND_STRING) {
        union cli_value ignored;
        int rc = cli_value_parse(flag, value, &ignored, err);
        if (rc < 0)
            return rc;
    }
    a->opts[a->n_opts].flag = flag;
    a->opts[a->n_opts].value = value;
    a->n_opts++;
    return 0;
}

/* One "--name[=value]" argument; may consume the next argument. */
static int parse_long(const struct cli_flag *const *tables, int argc, char **argv, int *i,
                      struct cli_args *a, struct swm_err *err)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    const struct cli_flag *flag = find_long(tables, name, len);
    if (flag == NULL)
        return swm_err_set(err, CLI_EUSAGE, "unknown flag: --%.*s", (int)len, name);
    const char *value;
    if (eq != NULL)
        value = eq + 1;
    else if (flag->type == CLI_FLAG_BOOL)
        value = "true";
    else if (*i + 1 < argc)
        value = argv[++*i];
    else
        return swm_err_set(err, CLI_EUSAGE, "flag needs an argument: --%s", flag->name);
    return record(a, flag, value, err);
}

/* One "-abc" cluster of shorthands; the last may take a value. */
static int parse_short(const struct cli_flag *const *tables, int argc, char **argv, int *i,
                       struct cli_args *a, struct swm_err *err)
{
    const char *arg = argv[*i];
    for (const char *p = arg + 1; *p != '\0'; p++) {
        const struct cli_flag *flag = find_short(tables, *p);
        if (flag == NULL)
            return swm_err_set(err, CLI_EUSAGE, "unknown shorthand flag: '%c' in %s", *p, arg);
        if (p[1] == '=')
            return record(a, flag, p + 2, err);
        if (flag->type == CLI_FLAG_BOOL) {
            int rc = record(a, flag, "true", err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (p[1] != '\0')
            return record(a, flag, p + 1, err);
        if (*i + 1 >= argc)
            return swm_err_set(err, CLI_EUSAGE, "flag needs an argument: '%c' in %s", *p, arg);
        return record(a, flag, argv[++*i], err);
    }
    return 0;
}

int cli_args_parse(const struct cli_flag *const *tables, int argc, char **argv, bool interspersed,
                   struct cli_args *out, struct swm_err *err)
{
    struct cli_args a = {0};
    /* A cluster like "-dq" yields one option per letter. */
    size_t cap = 1;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) + 1;
    a.opts = swm_calloc(cap, sizeof(*a.opts));
    a.pos = swm_calloc(cap, sizeof(*a.pos));
    if (a.opts == NULL || a.pos == NULL) {
        cli_args_free(&a);
        return swm_err_set(err, -ENOMEM, "out of memory");
    }
    bool flags_done = false;
    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        int rc = 0;
        if (flags_done || arg[0] != '-' || arg[1] == '\0') {
            a.pos[a.n_pos++] = arg;
            flags_done = flags_done || !interspersed;
        } else if (strcmp(arg, "--") == 0) {
            flags_done = true;
        } else if (arg[1] == '-') {
            rc = parse_long(tables, argc, argv, &i, &a, err);
        } else {
            rc = parse_short(tables, argc, argv, &i, &a, err);
        }
        if (rc < 0) {
            cli_args_free(&a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

void cli_args_free(struct cli_args *args)
{
    swm_free(args->opts);
    swm_free(args->pos);
    args->opts = NULL;
    args->pos = NULL;
    args->n_opts = 0;
    args->n_pos = 0;
}

const char *cli_args_iter(const struct cli_args *args, const char *name, size_t *cursor)
{
    for (; *cursor < args->n_opts; (*cursor)++) {
        if (strcmp(args->opts[*cursor].flag->name, name) == 0)
            return args->opts[(*cursor)++].value;
    }
    return NULL;
}

const char *cli_args_value(const struct cli_args *args, const char *name)
{
    const char *last = NULL;
    const char *v;
    size_t cursor = 0;
    while ((v = cli_args_iter(args, name, &cursor)) != NULL)
        last = v;
    return last;
}

bool cli_args_has(const struct cli_args *args, const char *name)
{
    return cli_args_value(args, name) != NULL;
}

bool cli_args_bool(const struct cli_args *args, const char *name)
{
    const char *v = cli_args_value(args, name);
    return v != NULL && strcmp(v, "true") == 0;
}

int cli_args_get(const struct cli_args *args, const char *name, union cli_value *out,
                 struct swm_err *err)
{
    for (size_t i = args->n_opts; i-- > 0;) {
        if (strcmp(args->opts[i].flag->name, name) == 0) {
            int rc = cli_value_parse(args->opts[i].flag, args->opts[i].value, out, err);
            return rc < 0 ? rc : 1;
        }
    }
    return 0;
}

static const char *value_name(const struct cli_flag *f)
{
    static const char *const kind_names[] = {
        [CLI_KIND_STRING] = "string",     [CLI_KIND_BOOL] = "",
        [CLI_KIND_UINT] = "uint",         [CLI_KIND_INT] = "int",
        [CLI_KIND_DURATION] = "duration", [CLI_KIND_BYTES] = "bytes",
        [CLI_KIND_CPUS] = "decimal",      [CLI_KIND_FLOAT] = "float",
    };
    if (f->type == CLI_FLAG_BOOL)
        return "";
    if (f->value_name != NULL)
        return f->value_name;
    if (f->type == CLI_FLAG_LIST)
        return "list";
    return kind_names[f->kind];
}

static int by_name(const void *a, const void *b)
{
    const struct cli_flag *const *fa = a;
    const struct cli_flag *const *fb = b;
    return strcmp((*fa)->name, (*fb)->name);
}

int cli_flags_help(const struct cli_flag *const *tables, struct swm_buf *out)
{
    size_t n = 0;
    for (size_t t = 0; tables != NULL && tables[t] != NULL; t++)
        for (const struct cli_flag *f = tables[t]; f->name != NULL; f++)
            n++;
    const struct cli_flag **all = swm_calloc(n + 1, sizeof(*all));
    if (all == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (size_t t = 0; tables != NULL && tables[t] != NULL; t++)
        for (const struct cli_flag *f = tables[t]; f->name != NULL; f++)
            if (f->usage != NULL)
                all[k++] = f;
    swm_sort(all, k, sizeof(*all), by_name);

    /* pflag's layout: "  -d, --detach" or "      --name string", usage
     * column two spaces after the widest left part. */
    int width = 0;
    char left[128];
    for (size_t i = 0; i < k; i++) {
        int w = snprintf(left, sizeof(left), "      --%s %s", all[i]->name, value_name(all[i]));
        width = w > width ? w : width;
    }
    int rc = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        const struct cli_flag *f = all[i];
        const char *vn = value_name(f);
        if (f->shorthand != 0)
            snprintf(left, sizeof(left), "  -%c, --%s%s%s", f->shorthand, f->name,
                     *vn != '\0' ? " " : "", vn);
        else
            snprintf(left, sizeof(left), "      --%s%s%s", f->name, *vn != '\0' ? " " : "", vn);
        rc = swm_buf_printf(out, "%-*s  %s\n", width, left, f->usage);
    }
    swm_free(all);
    return rc;
}
