#include "cli/specflags.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/msg.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/parse.h"
#include "proto/codec.h"

/* ---------------------------------------------------- repeated fields -- */

/* A repeated field of pointers (strings or messages) inside its owner. */
struct rep {
    size_t *n;
    void ***items;
};

static struct rep rep_of(ProtobufCMessage *owner, const ProtobufCFieldDescriptor *f)
{
    struct rep r = {(size_t *)((char *)owner + f->quantifier_offset),
                    (void ***)cli_msg_member(owner, f)};
    return r;
}

/* Appends item (ownership passes to the field on success). */
static int rep_push(struct rep r, void *item)
{
    void **grown = swm_realloc(*r.items, (*r.n + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    grown[(*r.n)++] = item;
    *r.items = grown;
    return 0;
}

/* Removes every item for which match(item, arg) is true, freeing it. */
static void rep_remove_if(struct rep r, bool (*match)(const void *item, const void *arg),
                          const void *arg, void (*free_item)(void *))
{
    size_t kept = 0;
    for (size_t i = 0; i < *r.n; i++) {
        if (match((*r.items)[i], arg))
            free_item((*r.items)[i]);
        else
            (*r.items)[kept++] = (*r.items)[i];
    }
    *r.n = kept;
}

static bool match_all(const void *item, const void *arg)
{
    (void)item;
    (void)arg;
    return true;
}

static void free_msg(void *m)
{
    proto_free(m);
}

/* The repeated field at `path` of msg, allocating missing parents if
 * create. Returns 0, 1 if a parent is missing (create false), or -ENOMEM. */
static int rep_path(ProtobufCMessage *msg, const char *path, bool create, struct rep *out,
                    struct swm_err *err)
{
    ProtobufCMessage *owner;
    const ProtobufCFieldDescriptor *f = cli_msg_resolve(msg, path, create, &owner);
    if (f == NULL)
        return create ? swm_err_set(err, -ENOMEM, "out of memory") : 1;
    *out = rep_of(owner, f);
    return 0;
}

/* The repeated field named by the path of flag's op. */
static int rep_at(ProtobufCMessage *msg, const struct cli_flag *flag, bool create, struct rep *out,
                  struct swm_err *err)
{
    const struct cli_field_op *op = flag->data;
    return rep_path(msg, op->path, create, out, err);
}

/* --------------------------------------------------------- generic ops -- */

static int oom(struct swm_err *err)
{
    return swm_err_set(err, -ENOMEM, "out of memory");
}

static int set_string(char **field, const char *value)
{
    char *copy = swm_strdup(value);
    if (copy == NULL)
        return -ENOMEM;
    swm_free(*field);
    *field = copy;
    return 0;
}

static int choose(const struct cli_flag *flag, const struct cli_choice *choices, const char *value,
                  int *out, struct swm_err *err)
{
    char names[256] = "";
    for (const struct cli_choice *c = choices; c->name != NULL; c++) {
        if (strcmp(c->name, value) == 0) {
            *out = c->value;
            return 0;
        }
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s\"%s\"", used > 0 ? ", " : "", c->name);
    }
    return cli_flag_error(err, flag, value, "must be one of %s", names);
}

int cli_op_set(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
               struct swm_err *err)
{
    const struct cli_field_op *op = flag->data;
    ProtobufCMessage *owner;
    const ProtobufCFieldDescriptor *f = cli_msg_resolve(msg, op->path, true, &owner);
    if (f == NULL)
        return oom(err);
    void *member = cli_msg_member(owner, f);
    union cli_value v;
    int rc = cli_value_parse(flag, value, &v, err);
    if (rc < 0)
        return rc;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (set_string(member, value) < 0)
            return oom(err);
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int e;
        rc = choose(flag, op->choices, value, &e, err);
        if (rc < 0)
            return rc;
        *(int *)member = e;
        break;
    }
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)member = v.b;
        break;
    case PROTOBUF_C_TYPE_UINT64:
        *(uint64_t *)member = flag->kind == CLI_KIND_UINT ? v.u : (uint64_t)v.i;
        break;
    case PROTOBUF_C_TYPE_INT64:
        *(int64_t *)member = v.i;
        break;
    case PROTOBUF_C_TYPE_INT32:
        if (v.i < INT32_MIN || v.i > INT32_MAX)
            return cli_flag_error(err, flag, value, "value out of range");
        *(int32_t *)member = (int32_t)v.i;
        break;
    case PROTOBUF_C_TYPE_UINT32:
        if (v.u > UINT32_MAX)
            return cli_flag_error(err, flag, value, "value out of range");
        *(uint32_t *)member = (uint32_t)v.u;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)member = (float)v.f;
        break;
    default:
        return swm_err_set(err, -EINVAL, "--%s: unsupported field type", flag->name);
    }
    cli_msg_mark_set(owner, f);
    return 0;
}

static bool str_equal(const void *item, const void *arg)
{
    return strcmp(item, arg) == 0;
}

int cli_op_append(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                  struct swm_err *err)
{
    struct rep r = {0};
    int rc = rep_at(msg, flag, true, &r, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < *r.n; i++)
        if (strcmp((*r.items)[i], value) == 0)
            return 0;
    char *copy = swm_strdup(value);
    if (copy == NULL || rep_push(r, copy) < 0) {
        swm_free(copy);
        return oom(err);
    }
    return 0;
}

int cli_op_remove(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                  struct swm_err *err)
{
    struct rep r = {0};
    int rc = rep_at(msg, flag, false, &r, err);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rep_remove_if(r, str_equal, value, swm_free);
    return 0;
}

static bool kv_key_equal(const void *item, const void *arg)
{
    const Swarmc__KeyValue *kv = item;
    return kv->key != NULL && strcmp(kv->key, arg) == 0;
}

int cli_op_kv_set(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                  struct swm_err *err)
{
    const char *eq = strchr(value, '=');
    size_t key_len = eq != NULL ? (size_t)(eq - value) : strlen(value);
    if (key_len == 0)
        return cli_flag_error(err, flag, value, "invalid label: empty key");
    struct rep r = {0};
    int rc = rep_at(msg, flag, true, &r, err);
    if (rc < 0)
        return rc;
    Swarmc__KeyValue *kv = (Swarmc__KeyValue *)cli_msg_new(&swarmc__key_value__descriptor);
    if (kv == NULL)
        return oom(err);
    kv->key = swm_strndup(value, key_len);
    kv->value = swm_strdup(eq != NULL ? eq + 1 : "");
    if (kv->key == NULL || kv->value == NULL) {
        proto_free(kv);
        return oom(err);
    }
    rep_remove_if(r, kv_key_equal, kv->key, free_msg);
    if (rep_push(r, kv) < 0) {
        proto_free(kv);
        return oom(err);
    }
    return 0;
}

int cli_op_kv_remove(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                     struct swm_err *err)
{
    struct rep r = {0};
    int rc = rep_at(msg, flag, false, &r, err);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rep_remove_if(r, kv_key_equal, value, free_msg);
    return 0;
}

int cli_fields_apply(ProtobufCMessage *msg, const struct cli_flag *const *tables,
                     const struct cli_args *args, struct swm_err *err)
{
    for (size_t t = 0; tables[t] != NULL; t++) {
        for (const struct cli_flag *f = tables[t]; f->name != NULL; f++) {
            const struct cli_field_op *op = f->data;
            if (op == NULL)
                continue;
            for (size_t i = 0; i < args->n_opts; i++) {
                if (args->opts[i].flag != f)
                    continue;
                int rc = op->apply(msg, f, args->opts[i].value, err);
                if (rc < 0)
                    return rc;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------- env vars -- */

static bool env_key_equal(const void *item, const void *arg)
{
    const char *entry = item;
    const char *key = arg;
    size_t n = strcspn(entry, "=");
    return strlen(key) == n && strncmp(entry, key, n) == 0;
}

/* Docker's ValidateEnv: "K=V" as given; a bare "K" takes the value from our
 * own environment when set there. A later value of a key replaces the
 * earlier one. */
static int env_add(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                   struct swm_err *err)
{
    if (value[0] == '=' || value[0] == '\0')
        return cli_flag_error(err, flag, value, "invalid environment variable: %s", value);
    const char *eq = strchr(value, '=');
    const char *from_env = eq == NULL ? getenv(value) : NULL;
    char *entry = from_env != NULL ? swm_asprintf("%s=%s", value, from_env) : swm_strdup(value);
    if (entry == NULL)
        return oom(err);
    char *key = swm_strndup(entry, strcspn(entry, "="));
    struct rep r = {0};
    int rc = key != NULL ? rep_at(msg, flag, true, &r, err) : oom(err);
    if (rc == 0) {
        rep_remove_if(r, env_key_equal, key, swm_free);
        rc = rep_push(r, entry) < 0 ? oom(err) : 0;
    }
    swm_free(key);
    if (rc < 0)
        swm_free(entry);
    return rc;
}

static int env_remove(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                      struct swm_err *err)
{
    struct rep r = {0};
    int rc = rep_at(msg, flag, false, &r, err);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rep_remove_if(r, env_key_equal, value, swm_free);
    return 0;
}

/* Docker's ParseEnvFile: one variable per line, '#' comments, blank lines
 * skipped, a bare name taken from our environment. */
static int env_file(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                    struct swm_err *err)
{
    struct swm_buf content = {0};
    int rc = swm_read_file(value, 1 << 20, &content);
    if (rc < 0)
        return cli_flag_error(err, flag, value, "open %s: %s", value, strerror(-rc));
    char *save = NULL;
    char *text = content.data != NULL ? (char *)content.data : "";
    for (char *line = strtok_r(text, "\n", &save); line != NULL && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        while (isspace((unsigned char)*line))
            line++;
        line[strcspn(line, "\r")] = '\0';
        if (*line == '\0' || *line == '#')
            continue;
        size_t key_len = strcspn(line, "=");
        if (strcspn(line, " \t") < key_len)
            rc = cli_flag_error(err, flag, value, "variable '%.*s' contains whitespaces",
                                (int)key_len, line);
        else
            rc = env_add(msg, flag, line, err);
    }
    swm_buf_free(&content);
    return rc;
}

/* ---------------------------------------------------- shell splitting -- */

void cli_strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n || (n == 0 && v[i] != NULL); i++)
        swm_free(v[i]);
    swm_free(v);
}

static int push_word(char ***argv, size_t *argc, struct swm_buf *word)
{
    char *copy = swm_strndup(word->data != NULL ? (char *)word->data : "", word->len);
    char **grown = copy != NULL ? swm_realloc(*argv, (*argc + 2) * sizeof(*grown)) : NULL;
    if (grown == NULL) {
        swm_free(copy);
        return -ENOMEM;
    }
    grown[(*argc)++] = copy;
    grown[*argc] = NULL;
    *argv = grown;
    word->len = 0;
    return 0;
}

int cli_shell_split(const char *line, char ***out_argv, size_t *out_argc)
{
    char **argv = NULL;
    size_t argc = 0;
    struct swm_buf word = {0};
    bool in_word = false;
    char quote = 0;
    int rc = 0;
    for (const char *p = line; *p != '\0' && rc == 0; p++) {
        char c = *p;
        if (quote == '\'') {
            rc = c == '\'' ? (quote = 0, 0) : swm_buf_append(&word, p, 1);
        } else if (quote == '"') {
            if (c == '"')
                quote = 0;
            else if (c == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == '$' || p[1] == '`'))
                rc = swm_buf_append(&word, ++p, 1);
            else
                rc = swm_buf_append(&word, p, 1);
        } else if (isspace((unsigned char)c)) {
            if (in_word)
                rc = push_word(&argv, &argc, &word);
            in_word = false;
        } else {
            in_word = true;
            if (c == '\'' || c == '"')
                quote = c;
            else if (c == '\\' && p[1] != '\0')
                rc = swm_buf_append(&word, ++p, 1);
            else
                rc = swm_buf_append(&word, p, 1);
        }
    }
    if (rc == 0 && quote != 0)
        rc = -EINVAL;
    if (rc == 0 && in_word)
        rc = push_word(&argv, &argc, &word);
    if (rc == 0 && argv == NULL) {
        argv = swm_calloc(1, sizeof(*argv));
        rc = argv == NULL ? -ENOMEM : 0;
    }
    swm_buf_free(&word);
    if (rc < 0) {
        cli_strv_free(argv, argc);
        return rc;
    }
    *out_argv = argv;
    *out_argc = argc;
    return 0;
}

/* Replaces the repeated string at op->path with the words of value. */
static int set_words(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                     struct swm_err *err)
{
    char **words;
    size_t n;
    int rc = cli_shell_split(value, &words, &n);
    if (rc == -EINVAL)
        return cli_flag_error(err, flag, value, "EOF found when expecting closing quote");
    if (rc < 0)
        return oom(err);
    struct rep r = {0};
    rc = rep_at(msg, flag, true, &r, err);
    if (rc < 0) {
        cli_strv_free(words, n);
        return rc;
    }
    for (size_t i = 0; i < *r.n; i++)
        swm_free((*r.items)[i]);
    swm_free(*r.items);
    *r.n = n;
    *r.items = n > 0 ? (void **)words : NULL;
    if (n == 0)
        swm_free(words);
    return 0;
}

/* ------------------------------------------------------------- ports -- */

static int parse_port(const char *s, size_t len, bool allow_zero, uint32_t *out)
{
    char buf[16];
    uint64_t v;
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (swm_parse_uint(buf, 65535, &v) < 0 || (v == 0 && !allow_zero))
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* "80" or "80-81" into [*lo, *hi]. */
static int parse_range(const char *s, size_t len, uint32_t *lo, uint32_t *hi)
{
    const char *dash = memchr(s, '-', len);
    if (dash == NULL) {
        int rc = parse_port(s, len, false, lo);
        *hi = *lo;
        return rc;
    }
    if (parse_port(s, (size_t)(dash - s), false, lo) < 0 ||
        parse_port(dash + 1, len - (size_t)(dash - s) - 1, false, hi) < 0 || *hi < *lo)
        return -EINVAL;
    return 0;
}

static int protocol_of(const char *s, Swarmc__PortConfig__Protocol *out)
{
    static const struct cli_choice protocols[] = {
        {"tcp", SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_TCP},
        {"udp", SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_UDP},
        {"sctp", SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_SCTP},
        {0},
    };
    for (const struct cli_choice *c = protocols; c->name != NULL; c++) {
        if (strcasecmp(c->name, s) == 0) {
            *out = (Swarmc__PortConfig__Protocol)c->value;
            return 0;
        }
    }
    return -EINVAL;
}

static int push_port(Swarmc__PortConfig ***ports, size_t *n, uint32_t published, uint32_t target,
                     Swarmc__PortConfig__Protocol proto, Swarmc__PortConfig__PublishMode mode)
{
    Swarmc__PortConfig *p = (Swarmc__PortConfig *)cli_msg_new(&swarmc__port_config__descriptor);
    if (p == NULL)
        return -ENOMEM;
    p->has_protocol = 1;
    p->protocol = proto;
    p->has_target_port = 1;
    p->target_port = target;
    p->has_published_port = published != 0;
    p->published_port = published;
    p->has_publish_mode = 1;
    p->publish_mode = mode;
    struct rep r = {n, (void ***)ports};
    if (rep_push(r, p) < 0) {
        proto_free(p);
        return -ENOMEM;
    }
    return 0;
}

/* Short syntax: [published:]target[/protocol], with ranges. */
static int parse_ports_short(const char *value, Swarmc__PortConfig ***ports, size_t *n_ports,
                             struct swm_err *err)
{
    Swarmc__PortConfig__Protocol proto = SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_TCP;
    const char *slash = strchr(value, '/');
    size_t spec_len = slash != NULL ? (size_t)(slash - value) : strlen(value);
    if (slash != NULL && protocol_of(slash + 1, &proto) < 0)
        return swm_err_set(err, SWM_EINVAL_SPEC, "invalid proto: %s", slash + 1);
    const char *colon = memchr(value, ':', spec_len);
    if (colon != NULL && memchr(colon + 1, ':', spec_len - (size_t)(colon - value) - 1) != NULL)
        return swm_err_set(err, SWM_EINVAL_SPEC, "hostip is not supported");
    const char *target = colon != NULL ? colon + 1 : value;
    size_t target_len = spec_len - (size_t)(target - value);
    uint32_t t_lo, t_hi, p_lo = 0, p_hi = 0;
    if (parse_range(target, target_len, &t_lo, &t_hi) < 0)
        return swm_err_set(err, SWM_EINVAL_SPEC, "invalid containerPort: %.*s", (int)target_len,
                           target);
    if (colon != NULL && parse_range(value, (size_t)(colon - value), &p_lo, &p_hi) < 0)
        return swm_err_set(err, SWM_EINVAL_SPEC, "invalid hostPort: %.*s", (int)(colon - value),
                           value);
    if (colon != NULL && p_hi - p_lo != t_hi - t_lo)
        return swm_err_set(err, SWM_EINVAL_SPEC,
                           "invalid ranges specified for container and host Ports: %.*s and %.*s",
                           (int)target_len, target, (int)(colon - value), value);
    for (uint32_t t = t_lo; t <= t_hi; t++) {
        uint32_t published = colon != NULL ? p_lo + (t - t_lo) : 0;
        if (push_port(ports, n_ports, published, t, proto,
                      SWARMC__PORT_CONFIG__PUBLISH_MODE__PUBLISH_MODE_INGRESS) < 0)
            return oom(err);
    }
    return 0;
}

/* Long syntax: published=8080,target=80,protocol=udp,mode=host. */
static int parse_ports_long(const char *value, Swarmc__PortConfig ***ports, size_t *n_ports,
                            struct swm_err *err)
{
    uint32_t published = 0, target = 0;
    Swarmc__PortConfig__Protocol proto = SWARMC__PORT_CONFIG__PROTOCOL__PROTOCOL_TCP;
    Swarmc__PortConfig__PublishMode mode = SWARMC__PORT_CONFIG__PUBLISH_MODE__PUBLISH_MODE_INGRESS;
    bool have_target = false;
    const char *p = value;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (eq == NULL)
            return swm_err_set(err, SWM_EINVAL_SPEC,
                               "invalid field '%.*s' must be a key=value pair", (int)len, p);
        size_t key_len = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t v_len = len - key_len - 1;
        char vbuf[32];
        snprintf(vbuf, sizeof(vbuf), "%.*s", (int)v_len, v);
        if (key_len == 9 && strncmp(p, "published", 9) == 0) {
            if (parse_port(v, v_len, true, &published) < 0)
                return swm_err_set(err, SWM_EINVAL_SPEC, "invalid published port: %s", vbuf);
        } else if (key_len == 6 && strncmp(p, "target", 6) == 0) {
            if (parse_port(v, v_len, false, &target) < 0)
                return swm_err_set(err, SWM_EINVAL_SPEC, "invalid target port: %s", vbuf);
            have_target = true;
        } else if (key_len == 8 && strncmp(p, "protocol", 8) == 0) {
            if (protocol_of(vbuf, &proto) < 0)
                return swm_err_set(err, SWM_EINVAL_SPEC, "invalid protocol value '%s'", vbuf);
        } else if (key_len == 4 && strncmp(p, "mode", 4) == 0) {
            if (strcmp(vbuf, "host") == 0)
                mode = SWARMC__PORT_CONFIG__PUBLISH_MODE__PUBLISH_MODE_HOST;
            else if (strcmp(vbuf, "ingress") != 0)
                return swm_err_set(err, SWM_EINVAL_SPEC, "invalid publish mode value (%s)", vbuf);
        } else {
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid field key '%.*s'", (int)key_len, p);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (!have_target)
        return swm_err_set(err, SWM_EINVAL_SPEC, "missing mandatory field \"target\"");
    return push_port(ports, n_ports, published, target, proto, mode) < 0 ? oom(err) : 0;
}

int cli_parse_ports(const char *value, Swarmc__PortConfig ***ports, size_t *n_ports,
                    struct swm_err *err)
{
    if (strchr(value, '=') != NULL)
        return parse_ports_long(value, ports, n_ports, err);
    return parse_ports_short(value, ports, n_ports, err);
}

/* Two port configs collide when they publish the same port (or, both
 * unpublished, expose the same target) with the same protocol. */
static bool port_same(const void *item, const void *arg)
{
    const Swarmc__PortConfig *a = item;
    const Swarmc__PortConfig *b = arg;
    if (a->protocol != b->protocol)
        return false;
    if (a->published_port != 0 || b->published_port != 0)
        return a->published_port == b->published_port;
    return a->target_port == b->target_port;
}

static bool port_same_target(const void *item, const void *arg)
{
    const Swarmc__PortConfig *a = item;
    const Swarmc__PortConfig *b = arg;
    return a->protocol == b->protocol && a->target_port == b->target_port;
}

/* --publish / --publish-add (add) and --publish-rm (remove by target). */
static int ports_edit(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                      bool add, struct swm_err *err)
{
    Swarmc__PortConfig **parsed = NULL;
    size_t n = 0;
    int rc = cli_parse_ports(value, &parsed, &n, err);
    if (rc == SWM_EINVAL_SPEC) {
        char reason[sizeof(err->msg)];
        snprintf(reason, sizeof(reason), "%s", err->msg);
        rc = cli_flag_error(err, flag, value, "%s", reason);
    }
    struct rep r = {0};
    if (rc == 0)
        rc = rep_at(msg, flag, add, &r, err);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            rep_remove_if(r, add ? port_same : port_same_target, parsed[i], free_msg);
            if (add && rep_push(r, parsed[i]) == 0)
                parsed[i] = NULL;
            else if (add)
                rc = oom(err);
        }
        proto_free(parsed[i]);
    }
    swm_free(parsed);
    return rc > 0 ? 0 : rc;
}

static int ports_add(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                     struct swm_err *err)
{
    return ports_edit(msg, flag, value, true, err);
}

static int ports_remove(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                        struct swm_err *err)
{
    return ports_edit(msg, flag, value, false, err);
}

/* ------------------------------------------------------------ mounts -- */

static int mount_bool(const char *v, bool *out)
{
    if (v == NULL || strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

/* One key[=value] field of a --mount value. */
static int mount_field(Swarmc__Mount *m, const char *key, const char *v, const char *field,
                       struct swm_err *err)
{
    static const struct cli_choice types[] = {
        {"bind", SWARMC__MOUNT__TYPE__MOUNT_TYPE_BIND},
        {"volume", SWARMC__MOUNT__TYPE__MOUNT_TYPE_VOLUME},
        {"tmpfs", SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS},
        {0},
    };
    if (strcmp(key, "readonly") == 0 || strcmp(key, "ro") == 0) {
        bool b;
        if (mount_bool(v, &b) < 0)
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid value for %s: %s", key, v);
        m->has_readonly = 1;
        m->readonly = b;
        return 0;
    }
    if (v == NULL)
        return swm_err_set(err, SWM_EINVAL_SPEC, "invalid field '%s' must be a key=value pair",
                           field);
    if (strcmp(key, "type") == 0) {
        for (const struct cli_choice *c = types; c->name != NULL; c++) {
            if (strcasecmp(c->name, v) == 0) {
                m->has_type = 1;
                m->type = (Swarmc__Mount__Type)c->value;
                return 0;
            }
        }
        return swm_err_set(err, SWM_EINVAL_SPEC, "invalid mount type: %s", v);
    }
    if (strcmp(key, "source") == 0 || strcmp(key, "src") == 0)
        return set_string(&m->source, v) < 0 ? oom(err) : 0;
    if (strcmp(key, "target") == 0 || strcmp(key, "dst") == 0 || strcmp(key, "destination") == 0)
        return set_string(&m->target, v) < 0 ? oom(err) : 0;
    if (strcmp(key, "tmpfs-size") == 0) {
        if (swm_parse_bytes(v, &m->tmpfs_size_bytes) < 0)
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid value for %s: %s", key, v);
        m->has_tmpfs_size_bytes = 1;
        return 0;
    }
    if (strcmp(key, "tmpfs-mode") == 0) {
        char *end;
        unsigned long mode = strtoul(v, &end, 8);
        if (*v == '\0' || *end != '\0' || mode > 07777)
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid value for %s: %s", key, v);
        m->has_tmpfs_mode = 1;
        m->tmpfs_mode = (uint32_t)mode;
        return 0;
    }
    if (strncmp(key, "volume-", 7) == 0 || strcmp(key, "bind-propagation") == 0 ||
        strcmp(key, "consistency") == 0)
        return swm_err_set(err, SWM_EINVAL_SPEC, "mount option %s is not yet supported", key);
    return swm_err_set(err, SWM_EINVAL_SPEC, "unexpected key '%s' in '%s'", key, field);
}

static int mount_check(const Swarmc__Mount *m, struct swm_err *err)
{
    if (m->target == NULL || m->target[0] == '\0')
        return swm_err_set(err, SWM_EINVAL_SPEC, "target is required");
    if (m->type == SWARMC__MOUNT__TYPE__MOUNT_TYPE_BIND && (m->source == NULL || !*m->source))
        return swm_err_set(err, SWM_EINVAL_SPEC, "source is required when specifying bind mounts");
    if (m->type == SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS && m->source != NULL)
        return swm_err_set(err, SWM_EINVAL_SPEC, "source is not supported for tmpfs mounts");
    if (m->type != SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS &&
        (m->has_tmpfs_size_bytes || m->has_tmpfs_mode))
        return swm_err_set(err, SWM_EINVAL_SPEC, "tmpfs options are only valid for tmpfs mounts");
    return 0;
}

int cli_parse_mount(const char *value, Swarmc__Mount **out, struct swm_err *err)
{
    Swarmc__Mount *m = (Swarmc__Mount *)cli_msg_new(&swarmc__mount__descriptor);
    char *copy = swm_strdup(value);
    if (m == NULL || copy == NULL) {
        proto_free(m);
        swm_free(copy);
        return oom(err);
    }
    /* Docker's default mount type. */
    m->has_type = 1;
    m->type = SWARMC__MOUNT__TYPE__MOUNT_TYPE_VOLUME;
    int rc = 0;
    char *save = NULL;
    for (char *field = strtok_r(copy, ",", &save); field != NULL && rc == 0;
         field = strtok_r(NULL, ",", &save)) {
        char full[256];
        snprintf(full, sizeof(full), "%s", field);
        char *eq = strchr(field, '=');
        if (eq != NULL)
            *eq = '\0';
        rc = mount_field(m, field, eq != NULL ? eq + 1 : NULL, full, err);
    }
    swm_free(copy);
    if (rc == 0)
        rc = mount_check(m, err);
    if (rc < 0) {
        proto_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static bool mount_target_equal(const void *item, const void *arg)
{
    const Swarmc__Mount *m = item;
    return m->target != NULL && strcmp(m->target, arg) == 0;
}

static int mount_add(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                     struct swm_err *err)
{
    Swarmc__Mount *m;
    int rc = cli_parse_mount(value, &m, err);
    if (rc == SWM_EINVAL_SPEC) {
        char reason[sizeof(err->msg)];
        snprintf(reason, sizeof(reason), "%s", err->msg);
        return cli_flag_error(err, flag, value, "%s", reason);
    }
    if (rc < 0)
        return rc;
    struct rep r = {0};
    rc = rep_at(msg, flag, true, &r, err);
    if (rc == 0) {
        rep_remove_if(r, mount_target_equal, m->target, free_msg);
        rc = rep_push(r, m) < 0 ? oom(err) : 0;
    }
    if (rc < 0)
        proto_free(m);
    return rc;
}

static int mount_remove(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                        struct swm_err *err)
{
    struct rep r = {0};
    int rc = rep_at(msg, flag, false, &r, err);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rep_remove_if(r, mount_target_equal, value, free_msg);
    return 0;
}

/* ---------------------------------------------------------- networks -- */

static bool network_target_equal(const void *item, const void *arg)
{
    const Swarmc__NetworkAttachmentConfig *n = item;
    return n->target != NULL && strcmp(n->target, arg) == 0;
}

/* "backend" or "name=backend,alias=db,alias=db2". */
static int network_add(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                       struct swm_err *err)
{
    Swarmc__NetworkAttachmentConfig *n = (Swarmc__NetworkAttachmentConfig *)cli_msg_new(
        &swarmc__network_attachment_config__descriptor);
    char *copy = swm_strdup(value);
    int rc = n != NULL && copy != NULL ? 0 : oom(err);
    char *save = NULL;
    for (char *field = rc == 0 ? strtok_r(copy, ",", &save) : NULL; field != NULL && rc == 0;
         field = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(field, '=');
        if (eq == NULL && strchr(value, '=') == NULL) {
            rc = set_string(&n->target, field) < 0 ? oom(err) : 0;
        } else if (eq != NULL &&
                   (strncmp(field, "name=", 5) == 0 || strncmp(field, "target=", 7) == 0)) {
            rc = set_string(&n->target, eq + 1) < 0 ? oom(err) : 0;
        } else if (eq != NULL && strncmp(field, "alias=", 6) == 0) {
            char *alias = swm_strdup(eq + 1);
            struct rep r = {&n->n_aliases, (void ***)&n->aliases};
            if (alias == NULL || rep_push(r, alias) < 0) {
                swm_free(alias);
                rc = oom(err);
            }
        } else {
            rc = cli_flag_error(err, flag, value, "invalid field '%s'", field);
        }
    }
    swm_free(copy);
    if (rc == 0 && (n->target == NULL || n->target[0] == '\0'))
        rc = cli_flag_error(err, flag, value, "network name is required");
    struct rep r = {0};
    if (rc == 0)
        rc = rep_at(msg, flag, true, &r, err);
    if (rc == 0) {
        rep_remove_if(r, network_target_equal, n->target, free_msg);
        rc = rep_push(r, n) < 0 ? oom(err) : 0;
    }
    if (rc < 0)
        proto_free(n);
    return rc;
}

static int network_remove(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                          struct swm_err *err)
{
    struct rep r = {0};
    int rc = rep_at(msg, flag, false, &r, err);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rep_remove_if(r, network_target_equal, value, free_msg);
    return 0;
}

/* ---------------------------------------- placement and health checks -- */

static int constraint_add(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                          struct swm_err *err)
{
    const char *op = strstr(value, "==");
    if (op == NULL)
        op = strstr(value, "!=");
    if (op == NULL || op == value || op[2] == '\0')
        return cli_flag_error(err, flag, value, "constraint expected one operator from ==, !=");
    return cli_op_append(msg, flag, value, err);
}

static int preference_add(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                          struct swm_err *err)
{
    const char *eq = strchr(value, '=');
    if (eq == NULL || eq[1] == '\0')
        return cli_flag_error(err, flag, value,
                              "placement preference must be of the format \"<strategy>=<arg>\"");
    if (strncmp(value, "spread=", 7) != 0)
        return cli_flag_error(err, flag, value,
                              "unsupported placement preference %.*s (only spread is supported)",
                              (int)(eq - value), value);
    return cli_op_append(msg, flag, value, err);
}

/* Replaces the health check's test with words (NULL-terminated). */
static int health_test(ProtobufCMessage *msg, const struct cli_flag *flag, const char *const *words,
                       struct swm_err *err)
{
    struct rep r = {0};
    int rc = rep_at(msg, flag, true, &r, err);
    if (rc < 0)
        return rc;
    rep_remove_if(r, match_all, NULL, swm_free);
    for (size_t i = 0; words[i] != NULL; i++) {
        char *w = swm_strdup(words[i]);
        if (w == NULL || rep_push(r, w) < 0) {
            swm_free(w);
            return oom(err);
        }
    }
    return 0;
}

static int health_cmd(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                      struct swm_err *err)
{
    const char *words[] = {"CMD-SHELL", value, NULL};
    /* An empty command (update) goes back to the image's health check. */
    return health_test(msg, flag, value[0] != '\0' ? words : words + 2, err);
}

static int no_healthcheck(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                          struct swm_err *err)
{
    const char *words[] = {"NONE", NULL};
    return strcmp(value, "true") == 0 ? health_test(msg, flag, words, err) : 0;
}

/* ------------------------------------------------------ the rest, odd -- */

static int force_update(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                        struct swm_err *err)
{
    if (strcmp(value, "true") != 0)
        return 0;
    Swarmc__ServiceSpec *spec = (Swarmc__ServiceSpec *)msg;
    ProtobufCMessage *owner;
    if (cli_msg_resolve(msg, "task.force_update", true, &owner) == NULL)
        return oom(err);
    spec->task->has_force_update = 1;
    spec->task->force_update++;
    return 0;
}

static int service_mode(ProtobufCMessage *msg, const struct cli_flag *flag, const char *value,
                        struct swm_err *err)
{
    if (strcmp(value, "replicated-job") == 0 || strcmp(value, "global-job") == 0)
        return cli_flag_error(err, flag, value, "%s services are not yet supported", value);
    return cli_op_set(msg, flag, value, err);
}

/* ------------------------------------------------------------ tables -- */

#define OP(fn, path) (&(const struct cli_field_op){(fn), (path), NULL})
#define SET(path) OP(cli_op_set, path)
#define ENUM(path, choices) (&(const struct cli_field_op){cli_op_set, (path), (choices)})

#define V CLI_FLAG_VALUE
#define L CLI_FLAG_LIST
#define B CLI_FLAG_BOOL

static const struct cli_choice restart_conditions[] = {
    {"none", SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_NONE},
    {"on-failure", SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_ON_FAILURE},
    {"any", SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_ANY},
    {0},
};
static const struct cli_choice update_failure_actions[] = {
    {"pause", SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_PAUSE},
    {"continue", SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_CONTINUE},
    {"rollback", SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_ROLLBACK},
    {0},
};
static const struct cli_choice rollback_failure_actions[] = {
    {"pause", SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_PAUSE},
    {"continue", SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_CONTINUE},
    {0},
};
static const struct cli_choice update_orders[] = {
    {"stop-first", SWARMC__UPDATE_CONFIG__ORDER__ORDER_STOP_FIRST},
    {"start-first", SWARMC__UPDATE_CONFIG__ORDER__ORDER_START_FIRST},
    {0},
};
static const struct cli_choice endpoint_modes[] = {
    {"vip", SWARMC__ENDPOINT_SPEC__RESOLUTION_MODE__RESOLUTION_MODE_VIP},
    {"dnsrr", SWARMC__ENDPOINT_SPEC__RESOLUTION_MODE__RESOLUTION_MODE_DNSRR},
    {0},
};
static const struct cli_choice service_modes[] = {
    {"replicated", SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED},
    {"global", SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL},
    {0},
};

/* Flags of both `service create` and `service update`. */
static const struct cli_flag service_common_flags[] = {
    {"detach", 'd', B, CLI_KIND_BOOL, NULL,
     "Exit immediately instead of waiting for the service to converge", NULL},
    {"quiet", 'q', B, CLI_KIND_BOOL, NULL, "Suppress progress output", NULL},
    {"replicas", 0, V, CLI_KIND_UINT, NULL, "Number of tasks", SET("replicas")},
    {"replicas-max-per-node", 0, V, CLI_KIND_UINT, NULL,
     "Maximum number of tasks per node (default 0 = unlimited)",
     SET("task.placement.max_replicas")},
    {"workdir", 'w', V, CLI_KIND_STRING, NULL, "Working directory inside the container",
     SET("task.container.dir")},
    {"user", 'u', V, CLI_KIND_STRING, NULL, "Username or UID (format: <name|uid>[:<group|gid>])",
     SET("task.container.user")},
    {"hostname", 0, V, CLI_KIND_STRING, NULL, "Container hostname", SET("task.container.hostname")},
    {"entrypoint", 0, V, CLI_KIND_STRING, "command",
     "Overwrite the default ENTRYPOINT of the image", OP(set_words, "task.container.command")},
    {"read-only", 0, B, CLI_KIND_BOOL, NULL, "Mount the container's root filesystem as read only",
     SET("task.container.read_only")},
    {"tty", 't', B, CLI_KIND_BOOL, NULL, "Allocate a pseudo-TTY", SET("task.container.tty")},
    {"init", 0, B, CLI_KIND_BOOL, NULL,
     "Use an init inside each service container to forward signals and reap processes",
     SET("task.container.init")},
    {"stop-signal", 0, V, CLI_KIND_STRING, NULL, "Signal to stop the container",
     SET("task.container.stop_signal")},
    {"stop-grace-period", 0, V, CLI_KIND_DURATION, NULL,
     "Time to wait before force killing a container (ns|us|ms|s|m|h) (default 10s)",
     SET("task.container.stop_grace_period")},
    {"limit-cpu", 0, V, CLI_KIND_CPUS, NULL, "Limit CPUs", SET("task.resources.limits.nano_cpus")},
    {"limit-memory", 0, V, CLI_KIND_BYTES, NULL, "Limit Memory",
     SET("task.resources.limits.memory_bytes")},
    {"limit-pids", 0, V, CLI_KIND_INT, NULL,
     "Limit maximum number of processes (default 0 = unlimited)",
     SET("task.resources.limits.pids")},
    {"reserve-cpu", 0, V, CLI_KIND_CPUS, NULL, "Reserve CPUs",
     SET("task.resources.reservations.nano_cpus")},
    {"reserve-memory", 0, V, CLI_KIND_BYTES, NULL, "Reserve Memory",
     SET("task.resources.reservations.memory_bytes")},
    {"restart-condition", 0, V, CLI_KIND_STRING, NULL,
     "Restart when condition is met (\"none\", \"on-failure\", \"any\") (default \"any\")",
     ENUM("task.restart.condition", restart_conditions)},
    {"restart-delay", 0, V, CLI_KIND_DURATION, NULL,
     "Delay between restart attempts (ns|us|ms|s|m|h) (default 5s)", SET("task.restart.delay")},
    {"restart-max-attempts", 0, V, CLI_KIND_UINT, NULL,
     "Maximum number of restarts before giving up", SET("task.restart.max_attempts")},
    {"restart-window", 0, V, CLI_KIND_DURATION, NULL,
     "Window used to evaluate the restart policy (ns|us|ms|s|m|h)", SET("task.restart.window")},
    {"health-cmd", 0, V, CLI_KIND_STRING, NULL, "Command to run to check health",
     OP(health_cmd, "task.container.healthcheck.test")},
    {"health-interval", 0, V, CLI_KIND_DURATION, NULL, "Time between running the check (ms|s|m|h)",
     SET("task.container.healthcheck.interval")},
    {"health-timeout", 0, V, CLI_KIND_DURATION, NULL,
     "Maximum time to allow one check to run (ms|s|m|h)",
     SET("task.container.healthcheck.timeout")},
    {"health-retries", 0, V, CLI_KIND_INT, NULL, "Consecutive failures needed to report unhealthy",
     SET("task.container.healthcheck.retries")},
    {"health-start-period", 0, V, CLI_KIND_DURATION, NULL,
     "Start period for the container to initialize before counting retries towards unstable "
     "(ms|s|m|h)",
     SET("task.container.healthcheck.start_period")},
    {"no-healthcheck", 0, B, CLI_KIND_BOOL, NULL, "Disable any container-specified HEALTHCHECK",
     OP(no_healthcheck, "task.container.healthcheck.test")},
    {"update-parallelism", 0, V, CLI_KIND_UINT, NULL,
     "Maximum number of tasks updated simultaneously (0 to update all at once) (default 1)",
     SET("update.parallelism")},
    {"update-delay", 0, V, CLI_KIND_DURATION, NULL,
     "Delay between updates (ns|us|ms|s|m|h) (default 0s)", SET("update.delay")},
    {"update-failure-action", 0, V, CLI_KIND_STRING, NULL,
     "Action on update failure (\"pause\", \"continue\", \"rollback\") (default \"pause\")",
     ENUM("update.failure_action", update_failure_actions)},
    {"update-monitor", 0, V, CLI_KIND_DURATION, NULL,
     "Duration after each task update to monitor for failure (ns|us|ms|s|m|h) (default 5s)",
     SET("update.monitor")},
    {"update-max-failure-ratio", 0, V, CLI_KIND_FLOAT, NULL,
     "Failure rate to tolerate during an update", SET("update.max_failure_ratio")},
    {"update-order", 0, V, CLI_KIND_STRING, NULL,
     "Update order (\"start-first\", \"stop-first\") (default \"stop-first\")",
     ENUM("update.order", update_orders)},
    {"rollback-parallelism", 0, V, CLI_KIND_UINT, NULL,
     "Maximum number of tasks rolled back simultaneously (0 to roll back all at once) (default 1)",
     SET("rollback.parallelism")},
    {"rollback-delay", 0, V, CLI_KIND_DURATION, NULL,
     "Delay between task rollbacks (ns|us|ms|s|m|h) (default 0s)", SET("rollback.delay")},
    {"rollback-failure-action", 0, V, CLI_KIND_STRING, NULL,
     "Action on rollback failure (\"pause\", \"continue\") (default \"pause\")",
     ENUM("rollback.failure_action", rollback_failure_actions)},
    {"rollback-monitor", 0, V, CLI_KIND_DURATION, NULL,
     "Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h) (default 5s)",
     SET("rollback.monitor")},
    {"rollback-max-failure-ratio", 0, V, CLI_KIND_FLOAT, NULL,
     "Failure rate to tolerate during a rollback", SET("rollback.max_failure_ratio")},
    {"rollback-order", 0, V, CLI_KIND_STRING, NULL,
     "Rollback order (\"start-first\", \"stop-first\") (default \"stop-first\")",
     ENUM("rollback.order", update_orders)},
    {"endpoint-mode", 0, V, CLI_KIND_STRING, NULL, "Endpoint mode (vip or dnsrr) (default \"vip\")",
     ENUM("endpoint.mode", endpoint_modes)},
    {0},
};

static const struct cli_flag service_create_only_flags[] = {
    {"name", 0, V, CLI_KIND_STRING, NULL, "Service name", SET("annotations.name")},
    {"mode", 0, V, CLI_KIND_STRING, NULL,
     "Service mode (\"replicated\" or \"global\") (default \"replicated\")",
     (&(const struct cli_field_op){service_mode, "mode", service_modes})},
    {"env-file", 0, L, CLI_KIND_STRING, NULL, "Read in a file of environment variables",
     OP(env_file, "task.container.env")},
    {"env", 'e', L, CLI_KIND_STRING, NULL, "Set environment variables",
     OP(env_add, "task.container.env")},
    {"label", 'l', L, CLI_KIND_STRING, NULL, "Service labels",
     OP(cli_op_kv_set, "annotations.labels")},
    {"container-label", 0, L, CLI_KIND_STRING, NULL, "Container labels",
     OP(cli_op_kv_set, "task.container.labels")},
    {"mount", 0, L, CLI_KIND_STRING, "mount", "Attach a filesystem mount to the service",
     OP(mount_add, "task.container.mounts")},
    {"publish", 'p', L, CLI_KIND_STRING, "port", "Publish a port as a node port",
     OP(ports_add, "endpoint.ports")},
    {"network", 0, L, CLI_KIND_STRING, "network", "Network attachments",
     OP(network_add, "task.networks")},
    {"constraint", 0, L, CLI_KIND_STRING, NULL, "Placement constraints",
     OP(constraint_add, "task.placement.constraints")},
    {"placement-pref", 0, L, CLI_KIND_STRING, "pref", "Add a placement preference",
     OP(preference_add, "task.placement.preferences")},
    {0},
};

/* Removals come before additions: docker applies "-rm" first. */
static const struct cli_flag service_update_only_flags[] = {
    {"image", 0, V, CLI_KIND_STRING, NULL, "Service image tag", SET("task.container.image")},
    {"args", 0, V, CLI_KIND_STRING, "command", "Service command args",
     OP(set_words, "task.container.args")},
    {"force", 0, B, CLI_KIND_BOOL, NULL, "Force update even if no changes require it",
     OP(force_update, "task.force_update")},
    {"rollback", 0, B, CLI_KIND_BOOL, NULL, "Rollback to previous specification", NULL},
    {"env-rm", 0, L, CLI_KIND_STRING, NULL, "Remove an environment variable",
     OP(env_remove, "task.container.env")},
    {"env-add", 0, L, CLI_KIND_STRING, NULL, "Add or update an environment variable",
     OP(env_add, "task.container.env")},
    {"label-rm", 0, L, CLI_KIND_STRING, NULL, "Remove a label by its key",
     OP(cli_op_kv_remove, "annotations.labels")},
    {"label-add", 0, L, CLI_KIND_STRING, NULL, "Add or update a service label",
     OP(cli_op_kv_set, "annotations.labels")},
    {"container-label-rm", 0, L, CLI_KIND_STRING, NULL, "Remove a container label by its key",
     OP(cli_op_kv_remove, "task.container.labels")},
    {"container-label-add", 0, L, CLI_KIND_STRING, NULL, "Add or update a container label",
     OP(cli_op_kv_set, "task.container.labels")},
    {"mount-rm", 0, L, CLI_KIND_STRING, NULL, "Remove a mount by its target path",
     OP(mount_remove, "task.container.mounts")},
    {"mount-add", 0, L, CLI_KIND_STRING, "mount", "Add or update a mount on a service",
     OP(mount_add, "task.container.mounts")},
    {"publish-rm", 0, L, CLI_KIND_STRING, "port", "Remove a published port by its target port",
     OP(ports_remove, "endpoint.ports")},
    {"publish-add", 0, L, CLI_KIND_STRING, "port", "Add or update a published port",
     OP(ports_add, "endpoint.ports")},
    {"network-rm", 0, L, CLI_KIND_STRING, NULL, "Remove a network",
     OP(network_remove, "task.networks")},
    {"network-add", 0, L, CLI_KIND_STRING, "network", "Add a network",
     OP(network_add, "task.networks")},
    {"constraint-rm", 0, L, CLI_KIND_STRING, NULL, "Remove a constraint",
     OP(cli_op_remove, "task.placement.constraints")},
    {"constraint-add", 0, L, CLI_KIND_STRING, NULL, "Add or update a placement constraint",
     OP(constraint_add, "task.placement.constraints")},
    {"placement-pref-rm", 0, L, CLI_KIND_STRING, "pref", "Remove a placement preference",
     OP(cli_op_remove, "task.placement.preferences")},
    {"placement-pref-add", 0, L, CLI_KIND_STRING, "pref", "Add a placement preference",
     OP(preference_add, "task.placement.preferences")},
    {0},
};

const struct cli_flag *const cli_service_create_flags[] = {service_create_only_flags,
                                                           service_common_flags, NULL};
const struct cli_flag *const cli_service_update_flags[] = {service_update_only_flags,
                                                           service_common_flags, NULL};

/* ------------------------------------------------- create and update -- */

static bool any_flag_with_prefix(const struct cli_args *args, const char *prefix)
{
    for (size_t i = 0; i < args->n_opts; i++)
        if (strncmp(args->opts[i].flag->name, prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

/* Checks that need the whole command line or the resulting spec. */
static int spec_check(const Swarmc__ServiceSpec *spec, const struct cli_args *args,
                      struct swm_err *err)
{
    bool global = spec->has_mode && spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    if (global && cli_args_has(args, "replicas"))
        return swm_err_set(err, SWM_EINVAL_SPEC, "replicas can only be used with replicated mode");
    if (global && cli_args_has(args, "replicas-max-per-node"))
        return swm_err_set(err, SWM_EINVAL_SPEC,
                           "replicas-max-per-node can only be used with replicated mode");
    if (cli_args_bool(args, "no-healthcheck") && any_flag_with_prefix(args, "health-"))
        return swm_err_set(err, SWM_EINVAL_SPEC,
                           "--no-healthcheck conflicts with --health-* options");
    return 0;
}

/* IMAGE, the first argument of `service create`, set like --image. */
static const struct cli_flag image_flag = {
    "image", 0, V, CLI_KIND_STRING, NULL, NULL, SET("task.container.image")};

int cli_spec_create(const struct cli_args *args, Swarmc__ServiceSpec **out, struct swm_err *err)
{
    Swarmc__ServiceSpec *spec =
        (Swarmc__ServiceSpec *)cli_msg_new(&swarmc__service_spec__descriptor);
    if (spec == NULL)
        return oom(err);
    ProtobufCMessage *msg = &spec->base;
    int rc = args->n_pos > 0 ? cli_op_set(msg, &image_flag, args->pos[0], err)
                             : swm_err_set(err, SWM_EINVAL_SPEC, "an image is required");
    /* Positional COMMAND ARG... replace the image's CMD, as in docker. */
    struct rep r = {0};
    if (rc == 0 && args->n_pos > 1)
        rc = rep_path(msg, "task.container.args", true, &r, err);
    for (size_t i = 1; rc == 0 && i < args->n_pos; i++) {
        char *a = swm_strdup(args->pos[i]);
        if (a == NULL || rep_push(r, a) < 0) {
            swm_free(a);
            rc = oom(err);
        }
    }
    if (rc == 0)
        rc = cli_fields_apply(msg, cli_service_create_flags, args, err);
    if (rc == 0)
        rc = spec_check(spec, args, err);
    if (rc == 0 && !(spec->has_mode && spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL) &&
        !spec->has_replicas) {
        spec->has_replicas = 1;
        spec->replicas = 1;
    }
    if (rc < 0) {
        proto_free(spec);
        return rc;
    }
    *out = spec;
    return 0;
}

int cli_spec_update(Swarmc__ServiceSpec *spec, const struct cli_args *args, struct swm_err *err)
{
    int rc = cli_fields_apply(&spec->base, cli_service_update_flags, args, err);
    if (rc == 0)
        rc = spec_check(spec, args, err);
    return rc;
}
