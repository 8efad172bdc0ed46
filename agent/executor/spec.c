/* From a task and its image's config to the container spec the executor
 * runs, with Docker's merge rules (DESIGN.md §7). */
#define _GNU_SOURCE
#include "agent/executor/executor.h"
#include "agent/executor/internal.h"

#include "agent/image/image.h"
#include "common/alloc.h"
#include "common/timeutil.h"
#include "proto/objects.pb-c.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_STOP_GRACE_NS (10 * SWM_NS_PER_SEC)
#define DEFAULT_HEALTH_INTERVAL_NS (30 * SWM_NS_PER_SEC)
#define DEFAULT_HEALTH_TIMEOUT_NS (30 * SWM_NS_PER_SEC)
#define DEFAULT_HEALTH_RETRIES 3

/* A growable NULL-terminated array of owned strings. */
struct strv {
    char **v;
    size_t n, cap;
};

static int strv_push_owned(struct strv *s, char *str)
{
    if (str == NULL)
        return -ENOMEM;
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap == 0 ? 8 : s->cap * 2;
        char **v = swm_realloc(s->v, cap * sizeof(*v));
        if (v == NULL) {
            swm_free(str);
            return -ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
    return 0;
}

static int strv_push(struct strv *s, const char *str)
{
    return strv_push_owned(s, swm_strdup(str));
}

static int strv_push_all(struct strv *s, char *const *v, size_t n)
{
    for (size_t i = 0; v != NULL && (n == SIZE_MAX ? v[i] != NULL : i < n); i++) {
        int rc = strv_push(s, v[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        swm_free(v[i]);
    swm_free(v);
}

/* Takes the array out of s; an empty one is still allocated so that
 * fields are never NULL after a successful build. */
static int strv_finish(struct strv *s, char ***out)
{
    if (s->v == NULL) {
        s->v = swm_calloc(1, sizeof(char *));
        if (s->v == NULL)
            return -ENOMEM;
    }
    *out = s->v;
    s->v = NULL;
    s->n = s->cap = 0;
    return 0;
}

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int exec_signal_parse(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return -EINVAL;
    if (isdigit((unsigned char)name[0])) {
        char *end;
        long v = strtol(name, &end, 10);
        return *end == '\0' && v > 0 && v < NSIG ? (int)v : -EINVAL;
    }
    const char *n = strncasecmp(name, "SIG", 3) == 0 ? name + 3 : name;
    for (int sig = 1; sig < NSIG; sig++) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev != NULL && strcasecmp(abbrev, n) == 0)
            return sig;
    }
    return -EINVAL;
}

void exec_spec_owned_free(struct exec_spec_owned *o)
{
    if (o == NULL)
        return;
    swm_free(o->id);
    swm_free(o->hostname);
    swm_free(o->cwd);
    swm_free(o->user);
    strv_free(o->argv);
    strv_free(o->env);
    strv_free(o->lower_dirs);
    strv_free(o->labels);
    strv_free(o->groups);
    strv_free(o->health_test);
    for (size_t i = 0; o->mounts != NULL && i < o->spec.n_mounts; i++) {
        swm_free((char *)o->mounts[i].source);
        swm_free((char *)o->mounts[i].target);
    }
    swm_free(o->mounts);
    memset(o, 0, sizeof(*o));
}

/* Points o->spec at the owned members. */
static void link_spec(struct exec_spec_owned *o, size_t n_mounts)
{
    struct exec_container_spec *s = &o->spec;
    s->id = o->id;
    s->hostname = o->hostname;
    s->argv = o->argv;
    s->env = o->env;
    s->cwd = o->cwd;
    s->user = o->user;
    s->lower_dirs = o->lower_dirs;
    s->mounts = o->mounts;
    s->n_mounts = n_mounts;
    s->labels = o->labels;
    s->groups = o->groups;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? swm_strdup(s) : NULL;
}

static int copy_strv(char *const *in, char ***out)
{
    struct strv s = {0};
    int rc = strv_push_all(&s, in, SIZE_MAX);
    if (rc == 0)
        rc = strv_finish(&s, out);
    strv_free(s.v);
    return rc;
}

static const char *mount_type_literal(const char *type)
{
    if (type != NULL && strcmp(type, "bind") == 0)
        return "bind";
    if (type != NULL && strcmp(type, "tmpfs") == 0)
        return "tmpfs";
    return NULL;
}

int exec_spec_copy(const struct exec_container_spec *in, struct exec_spec_owned *out)
{
    struct exec_spec_owned o = {0};
    int rc = -ENOMEM;
    o.spec = *in;
    o.spec.mounts = NULL;
    o.spec.n_mounts = 0;
    if ((in->id != NULL && (o.id = swm_strdup(in->id)) == NULL) ||
        (in->hostname != NULL && (o.hostname = swm_strdup(in->hostname)) == NULL) ||
        (in->cwd != NULL && (o.cwd = swm_strdup(in->cwd)) == NULL) ||
        (in->user != NULL && (o.user = swm_strdup(in->user)) == NULL))
        goto fail;
    if (copy_strv(in->argv, &o.argv) < 0 || copy_strv(in->env, &o.env) < 0 ||
        copy_strv(in->lower_dirs, &o.lower_dirs) < 0 || copy_strv(in->labels, &o.labels) < 0 ||
        copy_strv(in->groups, &o.groups) < 0)
        goto fail;
    if (in->n_mounts > 0) {
        o.mounts = swm_calloc(in->n_mounts, sizeof(*o.mounts));
        if (o.mounts == NULL)
            goto fail;
        for (size_t i = 0; i < in->n_mounts; i++) {
            const struct exec_mount *m = &in->mounts[i];
            struct exec_mount *c = &o.mounts[i];
            o.spec.n_mounts = i + 1; /* so that free releases what is copied */
            *c = *m;
            c->source = c->target = NULL;
            c->type = mount_type_literal(m->type);
            if (c->type == NULL) {
                rc = SWM_EINVAL_SPEC;
                goto fail;
            }
            if ((m->source != NULL && (c->source = swm_strdup(m->source)) == NULL) ||
                (m->target != NULL && (c->target = swm_strdup(m->target)) == NULL))
                goto fail;
        }
    }
    link_spec(&o, in->n_mounts);
    *out = o;
    return 0;
fail:
    exec_spec_owned_free(&o);
    return rc;
}

/* Env merge: task entries replace image entries with the same key in place,
 * new keys are appended in task order (Docker's ReplaceOrAppendEnvValues). */
static int merge_env(struct strv *env, char *const *task_env, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *kv = task_env[i];
        size_t klen = strcspn(kv, "=");
        bool replaced = false;
        for (size_t j = 0; j < env->n; j++) {
            if (strncmp(env->v[j], kv, klen) == 0 &&
                (env->v[j][klen] == '=' || env->v[j][klen] == '\0')) {
                char *dup = swm_strdup(kv);
                if (dup == NULL)
                    return -ENOMEM;
                swm_free(env->v[j]);
                env->v[j] = dup;
                replaced = true;
                break;
            }
        }
        if (!replaced && strv_push(env, kv) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int build_mounts(const Swarmc__ContainerSpec *c, struct exec_spec_owned *o,
                        struct swm_err *err)
{
    if (c->n_mounts == 0)
        return 0;
    o->mounts = swm_calloc(c->n_mounts, sizeof(*o->mounts));
    if (o->mounts == NULL)
        return swm_err_code(err, -ENOMEM);
    for (size_t i = 0; i < c->n_mounts; i++) {
        const Swarmc__Mount *m = c->mounts[i];
        struct exec_mount *e = &o->mounts[i];
        o->spec.n_mounts = i + 1;
        if (!nonempty(m->target) || m->target[0] != '/')
            return swm_err_set(err, SWM_EINVAL_SPEC, "invalid mount target \"%s\": not absolute",
                               m->target != NULL ? m->target : "");
        switch (m->type) {
        case SWARMC__MOUNT__TYPE__MOUNT_TYPE_BIND:
            if (!nonempty(m->source) || m->source[0] != '/')
                return swm_err_set(
                    err, SWM_EINVAL_SPEC,
                    "invalid mount config for type \"bind\": source \"%s\" is not an "
                    "absolute path",
                    m->source != NULL ? m->source : "");
            e->type = "bind";
            break;
        case SWARMC__MOUNT__TYPE__MOUNT_TYPE_TMPFS:
            e->type = "tmpfs";
            e->tmpfs_size_bytes = m->has_tmpfs_size_bytes ? m->tmpfs_size_bytes : 0;
            e->tmpfs_mode = m->has_tmpfs_mode ? m->tmpfs_mode : 0;
            break;
        case SWARMC__MOUNT__TYPE__MOUNT_TYPE_VOLUME:
            return swm_err_set(err, SWM_ENOTSUP,
                               "volume mounts are not supported yet (mount on %s)", m->target);
        default:
            return swm_err_set(err, SWM_EINVAL_SPEC, "unknown mount type %d for %s", (int)m->type,
                               m->target);
        }
        e->readonly = m->has_readonly && m->readonly;
        if ((e->type[0] == 'b' && (e->source = swm_strdup(m->source)) == NULL) ||
            (e->target = swm_strdup(m->target)) == NULL)
            return swm_err_code(err, -ENOMEM);
    }
    return 0;
}

static int push_label(struct strv *labels, const char *key, const char *value)
{
    return strv_push_owned(labels, swm_asprintf("%s=%s", key, value != NULL ? value : ""));
}

static int build_labels(const Swarmc__Task *task, const Swarmc__ContainerSpec *c,
                        struct exec_spec_owned *o)
{
    struct strv labels = {0};
    int rc = 0;
    for (size_t i = 0; i < c->n_labels && rc == 0; i++) {
        if (c->labels[i] != NULL && nonempty(c->labels[i]->key))
            rc = push_label(&labels, c->labels[i]->key, c->labels[i]->value);
    }
    /* The labels Docker's swarm executor puts on task containers. */
    const char *service_name =
        task->service_annotations != NULL ? task->service_annotations->name : NULL;
    if (rc == 0)
        rc = push_label(&labels, "com.docker.swarm.task.id", task->id);
    if (rc == 0 && nonempty(task->service_id))
        rc = push_label(&labels, "com.docker.swarm.service.id", task->service_id);
    if (rc == 0 && nonempty(service_name))
        rc = push_label(&labels, "com.docker.swarm.service.name", service_name);
    if (rc == 0 && nonempty(task->node_id))
        rc = push_label(&labels, "com.docker.swarm.node.id", task->node_id);
    if (rc == 0 && nonempty(service_name)) {
        char *name;
        if (task->has_slot && task->slot > 0)
            name =
                swm_asprintf("%s.%llu.%s", service_name, (unsigned long long)task->slot, task->id);
        else
            name = swm_asprintf("%s.%s.%s", service_name,
                                nonempty(task->node_id) ? task->node_id : "", task->id);
        rc = name != NULL ? push_label(&labels, "com.docker.swarm.task.name", name) : -ENOMEM;
        swm_free(name);
    }
    if (rc == 0)
        rc = strv_finish(&labels, &o->labels);
    strv_free(labels.v);
    return rc;
}

static int build_health(const Swarmc__ContainerSpec *c, const struct image_config *img,
                        struct exec_spec_owned *o)
{
    const Swarmc__HealthConfig *h = c->healthcheck;
    int64_t interval = 0, timeout = 0, start = 0;
    int retries = 0;
    struct strv test = {0};
    int rc = 0;

    if (h != NULL && h->n_test > 0)
        rc = strv_push_all(&test, h->test, h->n_test);
    else if (img != NULL && img->healthcheck_test != NULL)
        rc = strv_push_all(&test, img->healthcheck_test, SIZE_MAX);
    if (rc < 0)
        goto out;
    if (h != NULL) {
        interval = h->has_interval ? h->interval : 0;
        timeout = h->has_timeout ? h->timeout : 0;
        start = h->has_start_period ? h->start_period : 0;
        retries = h->has_retries ? h->retries : 0;
    }
    if (img != NULL) {
        interval = interval != 0 ? interval : img->health_interval_ns;
        timeout = timeout != 0 ? timeout : img->health_timeout_ns;
        start = start != 0 ? start : img->health_start_period_ns;
        retries = retries != 0 ? retries : img->health_retries;
    }
    o->health_interval_ns = interval > 0 ? interval : DEFAULT_HEALTH_INTERVAL_NS;
    o->health_timeout_ns = timeout > 0 ? timeout : DEFAULT_HEALTH_TIMEOUT_NS;
    o->health_start_period_ns = start > 0 ? start : 0;
    o->health_retries = retries > 0 ? retries : DEFAULT_HEALTH_RETRIES;
    if (test.n == 0 || strcmp(test.v[0], "NONE") == 0)
        goto out; /* no health check, or disabled */
    o->health_test = test.v;
    test.v = NULL;
out:
    strv_free(test.v);
    return rc;
}

int exec_spec_build(const struct Swarmc__Task *task, const struct image_config *img,
                    struct exec_spec_owned *out, struct swm_err *err)
{
    struct exec_spec_owned o = {0};
    struct strv argv = {0}, env = {0};
    int rc;

    if (task == NULL || task->spec == NULL || task->spec->container == NULL)
        return swm_err_set(err, SWM_EINVAL_SPEC, "task has no container spec");
    const Swarmc__ContainerSpec *c = task->spec->container;
    if (!exec__id_valid(task->id))
        return swm_err_set(err, SWM_EINVAL_SPEC, "invalid task id \"%s\"",
                           task->id != NULL ? task->id : "");

    /* Docker: a task command replaces the entrypoint and drops the image's
     * cmd; task args replace the cmd. */
    if (c->n_command > 0) {
        rc = strv_push_all(&argv, c->command, c->n_command);
        if (rc == 0)
            rc = strv_push_all(&argv, c->args, c->n_args);
    } else {
        rc = strv_push_all(&argv, img != NULL ? img->entrypoint : NULL, SIZE_MAX);
        if (rc == 0 && c->n_args > 0)
            rc = strv_push_all(&argv, c->args, c->n_args);
        else if (rc == 0)
            rc = strv_push_all(&argv, img != NULL ? img->cmd : NULL, SIZE_MAX);
    }
    if (rc < 0)
        goto oom;
    if (argv.n == 0 || argv.v[0][0] == '\0') {
        rc = swm_err_set(err, SWM_EINVAL_SPEC, "no command specified");
        goto fail;
    }
    if (strv_finish(&argv, &o.argv) < 0)
        goto oom;

    if (strv_push_all(&env, img != NULL ? img->env : NULL, SIZE_MAX) < 0 ||
        merge_env(&env, c->env, c->n_env) < 0 || strv_finish(&env, &o.env) < 0)
        goto oom;

    const char *cwd = nonempty(c->dir)                        ? c->dir
                      : img != NULL && nonempty(img->workdir) ? img->workdir
                                                              : "/";
    const char *user = nonempty(c->user)                    ? c->user
                       : img != NULL && nonempty(img->user) ? img->user
                                                            : NULL;
    o.id = swm_strdup(task->id);
    o.cwd = swm_strdup(cwd);
    o.user = dup_or_null(user);
    o.hostname = nonempty(c->hostname) ? swm_strdup(c->hostname) : swm_strndup(task->id, 12);
    if (o.id == NULL || o.cwd == NULL || (user != NULL && o.user == NULL) || o.hostname == NULL)
        goto oom;

    if (copy_strv(img != NULL ? img->layer_dirs : NULL, &o.lower_dirs) < 0)
        goto oom;
    struct strv groups = {0};
    rc = strv_push_all(&groups, c->groups, c->n_groups);
    if (rc == 0)
        rc = strv_finish(&groups, &o.groups);
    strv_free(groups.v);
    if (rc < 0)
        goto oom;

    rc = build_mounts(c, &o, err);
    if (rc < 0)
        goto fail;
    if (build_labels(task, c, &o) < 0)
        goto oom;

    const Swarmc__ResourceRequirements *res = task->spec->resources;
    const Swarmc__Resources *lim = res != NULL ? res->limits : NULL;
    if (lim != NULL) {
        o.spec.memory_limit_bytes = lim->has_memory_bytes ? lim->memory_bytes : 0;
        o.spec.nano_cpus = lim->has_nano_cpus ? lim->nano_cpus : 0;
        o.spec.pids_limit = lim->has_pids ? lim->pids : 0;
    }
    o.spec.read_only_rootfs = c->has_read_only && c->read_only;
    o.spec.tty = c->has_tty && c->tty;

    const char *stop = nonempty(c->stop_signal)                    ? c->stop_signal
                       : img != NULL && nonempty(img->stop_signal) ? img->stop_signal
                                                                   : "SIGTERM";
    o.stop_signal = exec_signal_parse(stop);
    if (o.stop_signal < 0) {
        rc = swm_err_set(err, SWM_EINVAL_SPEC, "invalid stop signal \"%s\"", stop);
        goto fail;
    }
    o.stop_grace_ns = c->has_stop_grace_period ? c->stop_grace_period : DEFAULT_STOP_GRACE_NS;
    if (build_health(c, img, &o) < 0)
        goto oom;

    link_spec(&o, o.spec.n_mounts);
    *out = o;
    return 0;

oom:
    rc = swm_err_code(err, -ENOMEM);
fail:
    strv_free(argv.v);
    strv_free(env.v);
    exec_spec_owned_free(&o);
    return rc;
}
