/* Service and node spec validation. The messages are SwarmKit's
 * (manager/controlapi/service.go, common.go) where it has one, the Docker
 * daemon's or CLI's otherwise, so scripts that match Docker's errors work. */
#include "manager/controlapi/validate.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"
#include "manager/scheduler/scheduler.h"

#define MIN_NANO_CPUS INT64_C(1000000)       /* 0.001 CPU, SwarmKit */
#define MIN_MEMORY_BYTES (INT64_C(4) << 20)  /* 4 MiB, SwarmKit and dockerd */
#define MIN_HEALTH_DURATION INT64_C(1000000) /* 1ms */
#define MAX_PORT 65535u

#define INVALID(err, ...) swm_err_set((err), SWM_EINVAL_SPEC, __VA_ARGS__)

/* protobuf-c stores whatever enum number arrived on the wire. */
static bool enum_ok(int v, int max)
{
    return v >= 0 && v <= max;
}

/* ------------------------------------------------------------ image refs */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)* */
static bool path_component_ok(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && is_lower_alnum(s[i]))
            i++;
        if (i == start)
            return false;
        if (i == len)
            return true;
        size_t sep = i;
        while (i < len && (s[i] == '-' || s[i] == '_' || s[i] == '.'))
            i++;
        bool dashes = strspn(s + sep, "-") >= i - sep;
        bool ok = dashes || (i - sep == 1) || (i - sep == 2 && s[sep] == '_' && s[sep + 1] == '_');
        if (!ok || i == len)
            return false;
    }
    return len > 0;
}

/* domain: components of [a-zA-Z0-9-] (not starting or ending with '-')
 * joined by dots, with an optional :port. */
static bool domain_ok(const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len);
    size_t host_len = colon != NULL ? (size_t)(colon - s) : len;
    if (colon != NULL) {
        size_t port_len = len - host_len - 1;
        if (port_len == 0 || strspn(colon + 1, "0123456789") < port_len)
            return false;
    }
    for (size_t i = 0, start = 0; i <= host_len; i++) {
        if (i < host_len && s[i] != '.') {
            if (!isalnum((unsigned char)s[i]) && s[i] != '-')
                return false;
            continue;
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return false;
        start = i + 1;
    }
    return host_len > 0;
}

/* tag: [\w][\w.-]{0,127} */
static bool tag_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 128 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && strchr("_.-", s[i]) == NULL)
            return false;
    return true;
}

/* digest: algorithm ":" at least 32 hex digits. */
static bool digest_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon == s)
        return false;
    for (const char *p = s; p < colon; p++)
        if (!is_lower_alnum(*p) && strchr("+._-", *p) == NULL)
            return false;
    size_t hex = strlen(colon + 1);
    return hex >= 32 && strspn(colon + 1, "0123456789abcdefABCDEF") == hex;
}

/* Docker's splitDockerDomain: the first component is a registry if it has
 * a '.' or ':', is "localhost", or has uppercase letters. */
static bool is_domain(const char *s, size_t len)
{
    if (memchr(s, '.', len) || memchr(s, ':', len) || (len == 9 && !memcmp(s, "localhost", 9)))
        return true;
    for (size_t i = 0; i < len; i++)
        if (isupper((unsigned char)s[i]))
            return true;
    return false;
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    const char *slash = memchr(s, '/', len);
    if (slash != NULL && is_domain(s, (size_t)(slash - s))) {
        if (!domain_ok(s, (size_t)(slash - s)))
            return false;
        len -= (size_t)(slash - s) + 1;
        s = slash + 1;
    }
    while (len > 0) {
        slash = memchr(s, '/', len);
        size_t part = slash != NULL ? (size_t)(slash - s) : len;
        if (!path_component_ok(s, part) || (slash != NULL && part + 1 == len))
            return false;
        len -= slash != NULL ? part + 1 : part;
        s += part + (slash != NULL);
    }
    return true;
}

bool spec_image_ref_valid(const char *ref)
{
    char buf[512];
    if (ref == NULL || strlen(ref) >= sizeof(buf))
        return false;
    snprintf(buf, sizeof(buf), "%s", ref);
    char *at = strchr(buf, '@');
    if (at != NULL) {
        *at = '\0';
        if (!digest_ok(at + 1))
            return false;
    }
    char *last_slash = strrchr(buf, '/');
    char *colon = strrchr(last_slash != NULL ? last_slash : buf, ':');
    if (colon != NULL) {
        *colon = '\0';
        if (!tag_ok(colon + 1))
            return false;
    }
    return name_ok(buf, strlen(buf));
}

/* ----------------------------------------------------------- annotations */

/* Service names become DNS labels (SwarmKit's isValidDNSName, relaxed to
 * the ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ that Docker accepts for names). */
static int validate_name(const Swarmc__Annotations *a, struct swm_err *err)
{
    const char *name = a != NULL && a->name != NULL ? a->name : "";
    if (name[0] == '\0')
        return 0;
    bool ok = isalnum((unsigned char)name[0]);
    for (const char *p = name + 1; ok && *p != '\0'; p++)
        ok = isalnum((unsigned char)*p) || strchr("_.-", *p) != NULL;
    if (!ok)
        return INVALID(err, "name must be valid as a DNS name component");
    if (strlen(name) > 63)
        return INVALID(err, "name must be 63 characters or fewer");
    return 0;
}

/* --------------------------------------------------------- container spec */

static int validate_env(const Swarmc__ContainerSpec *c, struct swm_err *err)
{
    for (size_t i = 0; i < c->n_env; i++) {
        const char *e = c->env[i] != NULL ? c->env[i] : "";
        if (e[0] == '\0')
            return INVALID(err, "invalid environment variable: empty string");
        if (e[0] == '=')
            return INVALID(err, "invalid environment variable: %s", e);
    }
    return 0;
}

static const char *mount_type_name(const Swarmc__Mount *m)
{
    switch (m->type) {
    case SWARMC__MOUNT__TYPE__MOUNT_TYPE_VOLUME:
        return "volume";
    case SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS:
        return "tmpfs";
    default:
        return "bind";
    }
}

/* dockerd's validateMountConfig wording. */
static int validate_mount(const Swarmc__Mount *m, struct swm_err *err)
{
    const char *type = mount_type_name(m);
    const char *target = m->target != NULL ? m->target : "";
    const char *source = m->source != NULL ? m->source : "";
    if (target[0] == '\0')
        return INVALID(err, "invalid mount config for type \"%s\": field Target must not be empty",
                       type);
    if (target[0] != '/')
        return INVALID(err,
                       "invalid mount config for type \"%s\": invalid mount path: '%s' mount path "
                       "must be absolute",
                       type, target);
    if (strcmp(target, "/") == 0)
        return INVALID(err, "invalid specification: destination can't be '/'");
    if (m->type == SWARMC__MOUNT__TYPE__MOUNT_TYPE_BIND && source[0] == '\0')
        return INVALID(err,
                       "invalid mount config for type \"bind\": field Source must not be empty");
    if (m->type == SWARMC__MOUNT__TYPE__MOUNT_TYPE_BIND && source[0] != '/')
        return INVALID(err,
                       "invalid mount config for type \"bind\": invalid mount path: '%s' mount "
                       "path must be absolute",
                       source);
    if (m->type == SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS && source[0] != '\0')
        return INVALID(
            err, "invalid mount config for type \"tmpfs\": field Source must not be specified");
    if (m->tmpfs_size_bytes < 0)
        return INVALID(err, "invalid mount config for type \"%s\": invalid tmpfs size %lld", type,
                       (long long)m->tmpfs_size_bytes);
    return 0;
}

static int validate_mounts(const Swarmc__ContainerSpec *c, struct swm_err *err)
{
    for (size_t i = 0; i < c->n_mounts; i++) {
        int rc = validate_mount(c->mounts[i], err);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->mounts[j]->target, c->mounts[i]->target) == 0)
                return INVALID(err, "ContainerSpec: duplicate mount point: %s",
                               c->mounts[i]->target);
    }
    return 0;
}

static int check_health_duration(bool has, int64_t v, const char *what, struct swm_err *err)
{
    if (has && v != 0 && v < MIN_HEALTH_DURATION)
        return INVALID(err, "ContainerSpec: %s in HealthConfig cannot be less than 1ms", what);
    return 0;
}

static int validate_health(const Swarmc__HealthConfig *h, struct swm_err *err)
{
    if (h == NULL)
        return 0;
    int rc = check_health_duration(h->has_interval, h->interval, "Interval", err);
    if (rc == 0)
        rc = check_health_duration(h->has_timeout, h->timeout, "Timeout", err);
    if (rc == 0)
        rc = check_health_duration(h->has_start_period, h->start_period, "StartPeriod", err);
    if (rc == 0 && h->retries < 0)
        rc = INVALID(err, "ContainerSpec: Retries in HealthConfig cannot be negative");
    return rc;
}

static int validate_container(const Swarmc__ContainerSpec *c, struct swm_err *err)
{
    const char *image = c != NULL && c->image != NULL ? c->image : "";
    if (image[0] == '\0')
        return INVALID(err, "ContainerSpec: image reference must be provided");
    if (!spec_image_ref_valid(image))
        return INVALID(err, "ContainerSpec: \"%s\" is not a valid repository/tag", image);
    int rc = validate_env(c, err);
    if (rc == 0)
        rc = validate_mounts(c, err);
    if (rc == 0 && c->stop_grace_period < 0)
        rc = INVALID(err, "ContainerSpec: stop-grace-period cannot be negative");
    if (rc == 0)
        rc = validate_health(c->healthcheck, err);
    return rc;
}

/* -------------------------------------------------------------- resources */

static int validate_resources(const Swarmc__Resources *r, struct swm_err *err)
{
    if (r == NULL)
        return 0;
    if (r->nano_cpus != 0 && r->nano_cpus < MIN_NANO_CPUS)
        return INVALID(err, "invalid cpu value %g: Must be at least %g", (double)r->nano_cpus / 1e9,
                       (double)MIN_NANO_CPUS / 1e9);
    if (r->memory_bytes != 0 && r->memory_bytes < MIN_MEMORY_BYTES)
        return INVALID(err, "invalid memory value %lld: Must be at least 4MiB",
                       (long long)r->memory_bytes);
    if (r->pids < 0)
        return INVALID(err, "invalid pids value %lld: Must not be negative", (long long)r->pids);
    return 0;
}

static int validate_requirements(const Swarmc__ResourceRequirements *rr, struct swm_err *err)
{
    if (rr == NULL)
        return 0;
    int rc = validate_resources(rr->limits, err);
    if (rc == 0)
        rc = validate_resources(rr->reservations, err);
    if (rc < 0 || rr->limits == NULL || rr->reservations == NULL)
        return rc;
    const Swarmc__Resources *lim = rr->limits, *res = rr->reservations;
    if (lim->memory_bytes != 0 && res->memory_bytes > lim->memory_bytes) {
        char l[32], r[32];
        swm_format_bytes(lim->memory_bytes, l, sizeof(l));
        swm_format_bytes(res->memory_bytes, r, sizeof(r));
        return INVALID(err, "invalid resources: memory reservation %s exceeds the memory limit %s",
                       r, l);
    }
    if (lim->nano_cpus != 0 && res->nano_cpus > lim->nano_cpus)
        return INVALID(err, "invalid resources: cpu reservation %g exceeds the cpu limit %g",
                       (double)res->nano_cpus / 1e9, (double)lim->nano_cpus / 1e9);
    return 0;
}

/* --------------------------------------------------- restart and placement */

static int validate_restart(const Swarmc__RestartPolicy *rp, struct swm_err *err)
{
    if (rp == NULL)
        return 0;
    if (!enum_ok((int)rp->condition, SWARMC__RESTART_POLICY__CONDITION__RESTART_CONDITION_ANY))
        return INVALID(err, "TaskSpec: invalid restart condition %d", (int)rp->condition);
    if (rp->delay < 0)
        return INVALID(err, "TaskSpec: restart-delay cannot be negative");
    if (rp->window < 0)
        return INVALID(err, "TaskSpec: restart-window cannot be negative");
    return 0;
}

/* Docker CLI's placement preference syntax: "spread=<descriptor>". */
static int validate_preference(const char *pref, struct swm_err *err)
{
    const char *eq = strchr(pref, '=');
    if (eq == NULL || eq == pref || eq[1] == '\0')
        return INVALID(err, "placement preference must be of the format \"<strategy>=<arg>\"");
    if ((size_t)(eq - pref) != 6 || strncasecmp(pref, "spread", 6) != 0)
        return INVALID(err, "unsupported placement preference %.*s (only spread is supported)",
                       (int)(eq - pref), pref);
    return 0;
}

static int validate_placement(const Swarmc__Placement *p, bool global, struct swm_err *err)
{
    if (p == NULL)
        return 0;
    struct sched_constraints cs;
    int rc = sched_constraints_parse(p->constraints, p->n_constraints, &cs, err);
    if (rc < 0)
        return rc;
    sched_constraints_free(&cs);
    for (size_t i = 0; i < p->n_preferences; i++)
        if ((rc = validate_preference(p->preferences[i] ? p->preferences[i] : "", err)) < 0)
            return rc;
    if (global && p->max_replicas > 0)
        return INVALID(err, "replicas-max-per-node can only be used with replicated mode");
    return 0;
}

static int validate_task(const Swarmc__TaskSpec *t, bool global, struct swm_err *err)
{
    if (t == NULL)
        return INVALID(err, "ContainerSpec: image reference must be provided");
    int rc = validate_requirements(t->resources, err);
    if (rc == 0)
        rc = validate_restart(t->restart, err);
    if (rc == 0)
        rc = validate_placement(t->placement, global, err);
    if (rc == 0)
        rc = validate_container(t->container, err);
    return rc;
}

/* ------------------------------------------------ update, ports and mode */

static int validate_update(const Swarmc__UpdateConfig *uc, const char *kind, struct swm_err *err)
{
    if (uc == NULL)
        return 0;
    if (uc->delay < 0)
        return INVALID(err, "TaskSpec: %s-delay cannot be negative", kind);
    if (uc->monitor < 0)
        return INVALID(err, "TaskSpec: %s-monitor cannot be negative", kind);
    if (isnan(uc->max_failure_ratio) || uc->max_failure_ratio < 0 || uc->max_failure_ratio > 1)
        return INVALID(err, "TaskSpec: %s-maxfailureratio cannot be less than 0 or bigger than 1",
                       kind);
    if (!enum_ok((int)uc->failure_action,
                 SWARMC__UPDATE_CONFIG__FAILURE_ACTION__FAILURE_ACTION_ROLLBACK))
        return INVALID(err, "TaskSpec: invalid %s-failure-action %d", kind,
                       (int)uc->failure_action);
    if (!enum_ok((int)uc->order, SWARMC__UPDATE_CONFIG__ORDER__ORDER_START_FIRST))
        return INVALID(err, "TaskSpec: invalid %s-order %d", kind, (int)uc->order);
    return 0;
}

static int validate_port(const Swarmc__EndpointSpec *ep, const Swarmc__PortConfig *p,
                         struct swm_err *err)
{
    if (p->target_port == 0 || p->target_port > MAX_PORT)
        return INVALID(err, "EndpointSpec: invalid target port %u: must be between 1 and 65535",
                       p->target_port);
    if (p->published_port > MAX_PORT)
        return INVALID(err, "EndpointSpec: invalid published port %u: must be between 0 and 65535",
                       p->published_port);
    if (ep->mode == SWARMC__ENDPOINT_SPEC__RESOLUTION_MODE__RESOLUTION_MODE_DNSRR &&
        p->publish_mode == SWARMC__PORT_CONFIG__PUBLISH_MODE__PUBLISH_MODE_INGRESS)
        return INVALID(err,
                       "EndpointSpec: port published with ingress mode can't be used with dnsrr "
                       "mode");
    return 0;
}

static int validate_endpoint(const Swarmc__EndpointSpec *ep, struct swm_err *err)
{
    if (ep == NULL)
        return 0;
    for (size_t i = 0; i < ep->n_ports; i++) {
        const Swarmc__PortConfig *p = ep->ports[i];
        int rc = validate_port(ep, p, err);
        if (rc < 0)
            return rc;
        /* An unset published port is allocated later and never conflicts. */
        for (size_t j = 0; p->published_port != 0 && j < i; j++)
            if (ep->ports[j]->published_port == p->published_port &&
                ep->ports[j]->protocol == p->protocol)
                return INVALID(err, "EndpointSpec: duplicate published ports provided");
    }
    return 0;
}

static int validate_mode(const Swarmc__ServiceSpec *spec, struct swm_err *err)
{
    if (spec->mode != SWARMC__SERVICE_MODE__SERVICE_MODE_REPLICATED &&
        spec->mode != SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL)
        return INVALID(err, "Unrecognized service mode");
    if (spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL && spec->has_replicas)
        return INVALID(err, "replicas can only be used with replicated mode");
    return 0;
}

int spec_validate_service(const Swarmc__ServiceSpec *spec, struct swm_err *err)
{
    if (spec == NULL)
        return INVALID(err, "service spec is required");
    bool global = spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    int rc = validate_name(spec->annotations, err);
    if (rc == 0)
        rc = validate_mode(spec, err);
    if (rc == 0)
        rc = validate_task(spec->task, global, err);
    if (rc == 0)
        rc = validate_update(spec->update, "update", err);
    if (rc == 0)
        rc = validate_update(spec->rollback, "rollback", err);
    if (rc == 0)
        rc = validate_endpoint(spec->endpoint, err);
    return rc;
}

int spec_validate_node_spec(const Swarmc__NodeSpec *spec, struct swm_err *err)
{
    if (spec == NULL)
        return INVALID(err, "node spec is required");
    if (!enum_ok((int)spec->availability, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN))
        return INVALID(err, "invalid availability %d: must be active, pause or drain",
                       (int)spec->availability);
    if (!enum_ok((int)spec->desired_role, SWARMC__NODE_ROLE__NODE_ROLE_MANAGER))
        return INVALID(err, "invalid role %d: must be worker or manager", (int)spec->desired_role);
    const Swarmc__Annotations *a = spec->annotations;
    for (size_t i = 0; a != NULL && i < a->n_labels; i++)
        if (a->labels[i]->key == NULL || a->labels[i]->key[0] == '\0')
            return INVALID(err, "invalid label: the key must not be empty");
    return 0;
}
