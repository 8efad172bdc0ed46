/* Placement constraints, with SwarmKit's grammar (manager/constraint): a key
 * matching [a-z_][a-z0-9-_.]+, one of the operators == and !=, and a value of
 * letters, digits, whitespace and : - _ . * ( ) ? + [ ] \ ^ $ | /. Unlike
 * SwarmKit, an unknown key is refused at parse time instead of silently
 * matching no node, so that a typo fails `service create`. */
#include "manager/scheduler/scheduler.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"

static const char node_label_prefix[] = "node.labels.";
static const char engine_label_prefix[] = "engine.labels.";

static bool key_char_ok(char c, bool first)
{
    if (isalpha((unsigned char)c) || c == '_')
        return true;
    return !first && (isdigit((unsigned char)c) || c == '-' || c == '.');
}

static bool key_syntax_ok(const char *k, size_t len)
{
    if (len < 2)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!key_char_ok(k[i], i == 0))
            return false;
    return true;
}

static bool value_syntax_ok(const char *v, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!isalnum(c) && !isspace(c) && strchr(":-_.*()?+[]\\^$|/", c) == NULL)
            return false;
    }
    return true;
}

/* Trims ASCII whitespace around [*s, *s + *len). */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static bool prefix_ci(const char *k, size_t len, const char *prefix)
{
    size_t plen = strlen(prefix);
    return len > plen && strncasecmp(k, prefix, plen) == 0;
}

static bool equal_ci(const char *k, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(k, name, len) == 0;
}

/* Maps a key to its kind; *label_off is where a label name starts. Returns
 * false for keys swarmc does not know. */
static bool classify_key(const char *k, size_t len, enum sched_constraint_key *kind,
                         size_t *label_off)
{
    static const struct {
        const char *name;
        enum sched_constraint_key kind;
    } fixed[] = {
        {"node.id", SCHED_KEY_NODE_ID},
        {"node.hostname", SCHED_KEY_NODE_HOSTNAME},
        {"node.role", SCHED_KEY_NODE_ROLE},
        {"node.ip", SCHED_KEY_NODE_IP},
        {"node.platform.os", SCHED_KEY_NODE_PLATFORM_OS},
        {"node.platform.arch", SCHED_KEY_NODE_PLATFORM_ARCH},
    };
    *label_off = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (equal_ci(k, len, fixed[i].name)) {
            *kind = fixed[i].kind;
            return true;
        }
    }
    if (prefix_ci(k, len, node_label_prefix)) {
        *kind = SCHED_KEY_NODE_LABEL;
        *label_off = sizeof(node_label_prefix) - 1;
        return true;
    }
    if (prefix_ci(k, len, engine_label_prefix)) {
        *kind = SCHED_KEY_ENGINE_LABEL;
        *label_off = sizeof(engine_label_prefix) - 1;
        return true;
    }
    return false;
}

static int invalid(struct swm_err *err, const char *expr, const char *what, const char *s,
                   size_t len, const char *why)
{
    return swm_err_set(err, SWM_EINVAL_SPEC, "invalid constraint expression \"%s\": %s '%.*s' %s",
                       expr, what, (int)len, s, why);
}

/* Finds the operator the way SwarmKit does: "==" wins over "!=", and the
 * expression splits at the first occurrence. */
static const char *find_operator(const char *expr, bool *negate)
{
    const char *op = strstr(expr, "==");
    *negate = false;
    if (op == NULL) {
        op = strstr(expr, "!=");
        *negate = op != NULL;
    }
    return op;
}

int sched_constraint_parse(const char *expr, struct sched_constraint *out, struct swm_err *err)
{
    bool negate;
    const char *op = find_operator(expr, &negate);
    if (op == NULL)
        return swm_err_set(err, SWM_EINVAL_SPEC,
                           "invalid constraint expression \"%s\": constraint expected one "
                           "operator from ==, !=",
                           expr);
    const char *key = expr, *value = op + 2;
    size_t key_len = (size_t)(op - expr), value_len = strlen(value);
    trim(&key, &key_len);
    trim(&value, &value_len);
    if (!key_syntax_ok(key, key_len))
        return invalid(err, expr, "key", key, key_len, "is invalid");
    if (!value_syntax_ok(value, value_len))
        return invalid(err, expr, "value", value, value_len, "is invalid");
    enum sched_constraint_key kind;
    size_t label_off;
    if (!classify_key(key, key_len, &kind, &label_off))
        return invalid(err, expr, "key", key, key_len, "is not supported");

    struct sched_constraint c = {.key = kind, .negate = negate};
    c.value = swm_strndup(value, value_len);
    if (label_off > 0)
        c.label = swm_strndup(key + label_off, key_len - label_off);
    if (c.value == NULL || (label_off > 0 && c.label == NULL)) {
        sched_constraint_free(&c);
        return swm_err_set(err, -ENOMEM, "out of memory parsing constraint");
    }
    *out = c;
    return 0;
}

void sched_constraint_free(struct sched_constraint *c)
{
    if (c == NULL)
        return;
    swm_free(c->label);
    swm_free(c->value);
    c->label = c->value = NULL;
}

int sched_constraints_parse(char *const *exprs, size_t n, struct sched_constraints *out,
                            struct swm_err *err)
{
    struct sched_constraints cs = {0};
    if (n > 0 && (cs.items = swm_calloc(n, sizeof(*cs.items))) == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory parsing constraints");
    for (; cs.n < n; cs.n++) {
        int rc =
            sched_constraint_parse(exprs[cs.n] != NULL ? exprs[cs.n] : "", &cs.items[cs.n], err);
        if (rc < 0) {
            sched_constraints_free(&cs);
            return rc;
        }
    }
    *out = cs;
    return 0;
}

void sched_constraints_free(struct sched_constraints *cs)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < cs->n; i++)
        sched_constraint_free(&cs->items[i]);
    swm_free(cs->items);
    cs->items = NULL;
    cs->n = 0;
}

/* ------------------------------------------------------------------ match */

static const char *str_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

static const char *node_label(const Swarmc__Node *node, const char *label)
{
    const Swarmc__Annotations *a = node->spec != NULL ? node->spec->annotations : NULL;
    if (a == NULL)
        return "";
    for (size_t i = 0; i < a->n_labels; i++)
        if (a->labels[i]->key != NULL && strcmp(a->labels[i]->key, label) == 0)
            return str_or_empty(a->labels[i]->value);
    return "";
}

static const Swarmc__Platform *node_platform(const Swarmc__Node *node)
{
    return node->description != NULL ? node->description->platform : NULL;
}

static bool value_eq(const struct sched_constraint *c, const char *what)
{
    return strcasecmp(c->value, what) == 0;
}

/* Parses an address, ignoring a trailing ":port" on IPv4 ("10.0.0.1:2377"). */
static int parse_addr(const char *s, unsigned char out[16])
{
    char buf[64];
    if (inet_pton(AF_INET6, s, out) == 1)
        return AF_INET6;
    snprintf(buf, sizeof(buf), "%s", s);
    char *colon = strchr(buf, ':');
    if (colon != NULL)
        *colon = '\0';
    return inet_pton(AF_INET, buf, out) == 1 ? AF_INET : -1;
}

static bool prefix_contains(const unsigned char *net, const unsigned char *addr, long bits)
{
    for (long i = 0; i < bits; i++) {
        unsigned char mask = (unsigned char)(0x80 >> (i % 8));
        if ((net[i / 8] & mask) != (addr[i / 8] & mask))
            return false;
    }
    return true;
}

/* node.ip: an address or a CIDR subnet. A malformed one matches no node, for
 * either operator (SwarmKit). */
static bool ip_match(const struct sched_constraint *c, const Swarmc__Node *node)
{
    char net_s[64];
    unsigned char net[16], addr[16];
    snprintf(net_s, sizeof(net_s), "%s", c->value);
    char *slash = strchr(net_s, '/');
    long bits = -1;
    if (slash != NULL) {
        *slash = '\0';
        char *end;
        bits = strtol(slash + 1, &end, 10);
        if (*end != '\0' || slash[1] == '\0' || bits < 0)
            return false;
    }
    int fam = inet_pton(AF_INET6, net_s, net) == 1  ? AF_INET6
              : inet_pton(AF_INET, net_s, net) == 1 ? AF_INET
                                                    : -1;
    if (fam < 0 || bits > (fam == AF_INET ? 32 : 128))
        return false;
    if (bits < 0)
        bits = fam == AF_INET ? 32 : 128;
    const char *node_addr = node->status != NULL ? node->status->addr : NULL;
    bool in =
        node_addr != NULL && parse_addr(node_addr, addr) == fam && prefix_contains(net, addr, bits);
    return in != c->negate;
}

static const char *field_value(const struct sched_constraint *c, const Swarmc__Node *node)
{
    const Swarmc__Platform *p = node_platform(node);
    switch (c->key) {
    case SCHED_KEY_NODE_ID:
        return str_or_empty(node->id);
    case SCHED_KEY_NODE_HOSTNAME:
        return node->description != NULL ? str_or_empty(node->description->hostname) : "";
    case SCHED_KEY_NODE_ROLE:
        return node->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? "manager" : "worker";
    case SCHED_KEY_NODE_PLATFORM_OS:
        return p != NULL ? str_or_empty(p->os) : "";
    case SCHED_KEY_NODE_PLATFORM_ARCH:
        return p != NULL ? str_or_empty(p->architecture) : "";
    case SCHED_KEY_NODE_LABEL:
        return node_label(node, c->label);
    case SCHED_KEY_ENGINE_LABEL:
    case SCHED_KEY_NODE_IP:
        break;
    }
    return "";
}

bool sched_constraint_match(const struct sched_constraint *c, const Swarmc__Node *node)
{
    if (c->key == SCHED_KEY_NODE_IP)
        return ip_match(c, node);
    return value_eq(c, field_value(c, node)) != c->negate;
}

bool sched_constraints_match(const struct sched_constraints *cs, const Swarmc__Node *node)
{
    for (size_t i = 0; i < cs->n; i++)
        if (!sched_constraint_match(&cs->items[i], node))
            return false;
    return true;
}

static const char *normal_arch(const char *a)
{
    if (a == NULL)
        return "";
    if (strcmp(a, "x86_64") == 0)
        return "amd64";
    if (strcmp(a, "aarch64") == 0)
        return "arm64";
    return a;
}

bool sched_platform_match(Swarmc__Platform *const *platforms, size_t n, const Swarmc__Node *node)
{
    if (n == 0)
        return true;
    const Swarmc__Platform *np = node_platform(node);
    if (np == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *arch = normal_arch(platforms[i]->architecture);
        const char *os = str_or_empty(platforms[i]->os);
        if ((arch[0] == '\0' || strcmp(arch, normal_arch(np->architecture)) == 0) &&
            (os[0] == '\0' || strcmp(os, str_or_empty(np->os)) == 0))
            return true;
    }
    return false;
}
