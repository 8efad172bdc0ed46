/* The image store: metadata, resolve, list, remove (DESIGN.md §7). The
 * tarball loader is in load.c, layer unpacking in layer.c.
 *
 * The repositories file is the only source of truth. Its schema:
 *
 *   {
 *     "version": 1,
 *     "repositories": { "<name:tag>": "sha256:<id>" },
 *     "images": { "sha256:<id>": { "layers": ["sha256:<diff_id>", ...],
 *                                  "created": <ns>, "loaded": <ns> } },
 *     "layers": { "sha256:<diff_id>": { "size": <bytes> } }
 *   }
 *
 * Every change builds a new document, makes the files it names durable,
 * replaces the file atomically and only then deletes what is no longer
 * named. A crash therefore leaves at worst unnamed files, which
 * image_store_open deletes.
 */
#define _GNU_SOURCE
#include "agent/image/internal.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/sort.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define META_FILE "repositories"
#define META_MAX (64u << 20)

/* ---- small helpers ---- */

void image_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p != NULL; p++)
        swm_free(*p);
    swm_free(v);
}

void image_config_free(struct image_config *c)
{
    if (c == NULL)
        return;
    swm_free(c->id);
    image_strv_free(c->entrypoint);
    image_strv_free(c->cmd);
    image_strv_free(c->env);
    swm_free(c->workdir);
    swm_free(c->user);
    swm_free(c->stop_signal);
    image_strv_free(c->healthcheck_test);
    swm_free(c->os);
    swm_free(c->architecture);
    image_strv_free(c->layer_dirs);
    swm_free(c);
}

void image_summary_free_array(struct image_summary *a, size_t n)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        swm_free(a[i].id);
        image_strv_free(a[i].tags);
    }
    swm_free(a);
}

static int path_fmt(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int path_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, PATH_MAX, fmt, ap);
    va_end(ap);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* ---- config blobs ---- */

/* RFC 3339 as written by Docker and buildkit, e.g.
 * "2024-01-02T03:04:05.123456789Z" or "...+02:00". Returns 0 if unparsable. */
static int64_t parse_rfc3339(const char *s)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return 0;
    const char *p = s + n;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            if (digits < 9) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
        }
        for (; digits < 9; digits++)
            frac *= 10;
    }
    int64_t offset = 0;
    if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
            return 0;
        offset = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    } else if (*p != 'Z' && *p != 'z') {
        return 0;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || t < -9000000000LL || t > 9000000000LL)
        return 0;
    return ((int64_t)t - offset) * 1000000000 + frac;
}

/* Copies a JSON array of strings (or null/absent: *out = NULL). */
static int strv_from_json(json_t *v, const char *field, char ***out, struct swm_err *err)
{
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return swm_err_set(err, -EINVAL, "%s is not an array of strings", field);
    size_t n = json_array_size(v);
    char **strv = swm_calloc(n + 1, sizeof(*strv));
    if (strv == NULL)
        return swm_err_code(err, -ENOMEM);
    for (size_t i = 0; i < n; i++) {
        const char *str = json_string_value(json_array_get(v, i));
        if (str == NULL) {
            image_strv_free(strv);
            return swm_err_set(err, -EINVAL, "%s is not an array of strings", field);
        }
        strv[i] = swm_strdup(str);
        if (strv[i] == NULL) {
            image_strv_free(strv);
            return swm_err_code(err, -ENOMEM);
        }
    }
    *out = strv;
    return 0;
}

/* Copies an optional string; "" counts as absent. */
static int str_from_json(json_t *v, const char *field, char **out, struct swm_err *err)
{
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    const char *str = json_string_value(v);
    if (str == NULL)
        return swm_err_set(err, -EINVAL, "%s is not a string", field);
    if (str[0] == '\0')
        return 0;
    *out = swm_strdup(str);
    return *out == NULL ? swm_err_code(err, -ENOMEM) : 0;
}

static int ns_from_json(json_t *v, const char *field, int64_t *out, struct swm_err *err)
{
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return swm_err_set(err, -EINVAL, "%s is not a non-negative integer", field);
    *out = json_integer_value(v);
    return 0;
}

int image__config_parse(const char *json, size_t len, struct image_config **out, char ***diff_ids,
                        int64_t *created_ns, struct swm_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (root == NULL && image__json_oom(&jerr))
        return swm_err_code(err, -ENOMEM);
    if (root == NULL)
        return swm_err_set(err, -EINVAL, "invalid JSON (line %d: %s)", jerr.line, jerr.text);

    int rc = 0;
    char **ids = NULL;
    struct image_config *c = swm_calloc(1, sizeof(*c));
    if (c == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = swm_err_set(err, -EINVAL, "not a JSON object");
        goto out;
    }
    if ((rc = str_from_json(json_object_get(root, "os"), "os", &c->os, err)) < 0 ||
        (rc = str_from_json(json_object_get(root, "architecture"), "architecture", &c->architecture,
                            err)) < 0)
        goto out;
    if (c->os != NULL && strcmp(c->os, "linux") != 0) {
        rc = swm_err_set(err, SWM_ENOTSUP, "os \"%s\" is not supported", c->os);
        goto out;
    }

    json_t *cfg = json_object_get(root, "config");
    if (cfg != NULL && !json_is_null(cfg)) {
        if (!json_is_object(cfg)) {
            rc = swm_err_set(err, -EINVAL, "config is not an object");
            goto out;
        }
        if ((rc = strv_from_json(json_object_get(cfg, "Entrypoint"), "Entrypoint", &c->entrypoint,
                                 err)) < 0 ||
            (rc = strv_from_json(json_object_get(cfg, "Cmd"), "Cmd", &c->cmd, err)) < 0 ||
            (rc = strv_from_json(json_object_get(cfg, "Env"), "Env", &c->env, err)) < 0 ||
            (rc = str_from_json(json_object_get(cfg, "WorkingDir"), "WorkingDir", &c->workdir,
                                err)) < 0 ||
            (rc = str_from_json(json_object_get(cfg, "User"), "User", &c->user, err)) < 0 ||
            (rc = str_from_json(json_object_get(cfg, "StopSignal"), "StopSignal", &c->stop_signal,
                                err)) < 0)
            goto out;
        json_t *hc = json_object_get(cfg, "Healthcheck");
        if (hc != NULL && !json_is_null(hc)) {
            json_t *retries = json_object_get(hc, "Retries");
            if (!json_is_object(hc)) {
                rc = swm_err_set(err, -EINVAL, "Healthcheck is not an object");
                goto out;
            }
            if ((rc = strv_from_json(json_object_get(hc, "Test"), "Healthcheck.Test",
                                     &c->healthcheck_test, err)) < 0 ||
                (rc = ns_from_json(json_object_get(hc, "Interval"), "Healthcheck.Interval",
                                   &c->health_interval_ns, err)) < 0 ||
                (rc = ns_from_json(json_object_get(hc, "Timeout"), "Healthcheck.Timeout",
                                   &c->health_timeout_ns, err)) < 0 ||
                (rc = ns_from_json(json_object_get(hc, "StartPeriod"), "Healthcheck.StartPeriod",
                                   &c->health_start_period_ns, err)) < 0)
                goto out;
            if (retries != NULL && !json_is_null(retries)) {
                if (!json_is_integer(retries) || json_integer_value(retries) < 0 ||
                    json_integer_value(retries) > INT32_MAX) {
                    rc = swm_err_set(err, -EINVAL, "Healthcheck.Retries is not a count");
                    goto out;
                }
                c->health_retries = (int)json_integer_value(retries);
            }
        }
    }

    json_t *rootfs = json_object_get(root, "rootfs");
    json_t *jids = json_object_get(rootfs, "diff_ids");
    const char *type = json_string_value(json_object_get(rootfs, "type"));
    if (!json_is_object(rootfs) || type == NULL || strcmp(type, "layers") != 0) {
        rc = swm_err_set(err, -EINVAL, "rootfs.type is not \"layers\"");
        goto out;
    }
    if ((rc = strv_from_json(jids, "rootfs.diff_ids", &ids, err)) < 0)
        goto out;
    if (ids == NULL) {
        rc = swm_err_set(err, -EINVAL, "rootfs.diff_ids is missing");
        goto out;
    }
    for (size_t i = 0; ids[i] != NULL; i++) {
        c->n_layers++;
        if (!image__is_digest(ids[i])) {
            rc = swm_err_set(err, strncmp(ids[i], "sha256:", 7) == 0 ? -EINVAL : SWM_ENOTSUP,
                             "rootfs.diff_ids[%zu] \"%.80s\" is not a sha256 digest", i, ids[i]);
            goto out;
        }
    }
    if (created_ns != NULL) {
        const char *created = json_string_value(json_object_get(root, "created"));
        *created_ns = created != NULL ? parse_rfc3339(created) : 0;
    }
    if (diff_ids != NULL) {
        *diff_ids = ids;
        ids = NULL;
    }
    *out = c;
    c = NULL;
out:
    image_strv_free(ids);
    image_config_free(c);
    json_decref(root);
    return rc;
}

/* ---- metadata ---- */

static json_t *meta_new(void)
{
    return json_pack("{s:i, s:{}, s:{}, s:{}}", "version", 1, "repositories", "images", "layers");
}

/* Checks the structure and cross references of a repositories document, so
 * that the rest of the module can trust it. */
static int meta_check(json_t *meta, struct swm_err *err)
{
    json_t *repos = json_object_get(meta, "repositories");
    json_t *images = json_object_get(meta, "images");
    json_t *layers = json_object_get(meta, "layers");
    if (json_integer_value(json_object_get(meta, "version")) != 1)
        return swm_err_set(err, SWM_ECORRUPT, "unknown version");
    if (!json_is_object(repos) || !json_is_object(images) || !json_is_object(layers))
        return swm_err_set(err, SWM_ECORRUPT, "missing repositories, images or layers");

    const char *key;
    json_t *v;
    json_object_foreach(repos, key, v)
    {
        const char *id = json_string_value(v);
        if (id == NULL || json_object_get(images, id) == NULL)
            return swm_err_set(err, SWM_ECORRUPT, "tag %s names an unknown image", key);
    }
    json_object_foreach(layers, key, v)
    {
        if (!image__is_digest(key) || !json_is_integer(json_object_get(v, "size")))
            return swm_err_set(err, SWM_ECORRUPT, "bad layer entry %.80s", key);
    }
    json_object_foreach(images, key, v)
    {
        json_t *ls = json_object_get(v, "layers");
        if (!image__is_digest(key) || !json_is_array(ls) ||
            !json_is_integer(json_object_get(v, "created")))
            return swm_err_set(err, SWM_ECORRUPT, "bad image entry %.80s", key);
        size_t i;
        json_t *l;
        json_array_foreach(ls, i, l)
        {
            const char *diff = json_string_value(l);
            if (diff == NULL || json_object_get(layers, diff) == NULL)
                return swm_err_set(err, SWM_ECORRUPT, "image %.80s names an unknown layer", key);
        }
    }
    return 0;
}

static int sync_store(struct image_store *s)
{
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = syncfs(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int image__meta_replace(struct image_store *s, json_t *meta, struct swm_err *err)
{
    char path[PATH_MAX];
    int rc = path_fmt(path, "%s/" META_FILE, s->dir);
    size_t len = json_dumpb(meta, NULL, 0, JSON_INDENT(1) | JSON_SORT_KEYS);
    char *text = len > 0 ? swm_malloc(len) : NULL;
    if (rc == 0 && text == NULL)
        rc = -ENOMEM;
    if (rc == 0 && json_dumpb(meta, text, len, JSON_INDENT(1) | JSON_SORT_KEYS) != len)
        rc = -ENOMEM;
    if (rc == 0)
        rc = sync_store(s);
    if (rc == 0)
        rc = swm_write_file_atomic(path, text, len, 0600);
    swm_free(text);
    if (rc < 0) {
        json_decref(meta);
        return swm_err_set(err, rc, "cannot write %s/" META_FILE ": %s", s->dir, swm_strerror(rc));
    }
    json_decref(s->meta);
    s->meta = meta;
    return 0;
}

/* ---- open, close, garbage ---- */

/* Deletes every entry of dir/sub that keep() rejects. Best effort: a file we
 * cannot delete now is retried at the next open. */
static void sweep(struct image_store *s, const char *sub, bool (*keep)(json_t *, const char *),
                  json_t *meta)
{
    char path[PATH_MAX];
    if (path_fmt(path, "%s/%s", s->dir, sub) < 0)
        return;
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char victim[PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (keep != NULL && keep(meta, e->d_name))
            continue;
        if (path_fmt(victim, "%s/%s", path, e->d_name) == 0)
            (void)swm_remove_tree(victim);
    }
    closedir(d);
}

static bool keep_layer(json_t *meta, const char *name)
{
    char digest[IMAGE__DIGEST_LEN + 1];
    if (strlen(name) != IMAGE__HEX_LEN || !image__is_hex(name, IMAGE__HEX_LEN))
        return false;
    snprintf(digest, sizeof(digest), "sha256:%s", name);
    return json_object_get(json_object_get(meta, "layers"), digest) != NULL;
}

static bool keep_config(json_t *meta, const char *name)
{
    char digest[IMAGE__DIGEST_LEN + 1];
    if (strlen(name) != IMAGE__HEX_LEN + 5 || strcmp(name + IMAGE__HEX_LEN, ".json") != 0 ||
        !image__is_hex(name, IMAGE__HEX_LEN))
        return false;
    snprintf(digest, sizeof(digest), "sha256:%.64s", name);
    return json_object_get(json_object_get(meta, "images"), digest) != NULL;
}

static int load_meta(struct image_store *s, struct swm_err *err)
{
    char path[PATH_MAX];
    struct swm_buf buf = {0};
    int rc = path_fmt(path, "%s/" META_FILE, s->dir);
    if (rc == 0)
        rc = swm_read_file(path, META_MAX, &buf);
    if (rc == -ENOENT) {
        s->meta = meta_new();
        return s->meta == NULL ? swm_err_code(err, -ENOMEM) : 0;
    }
    if (rc < 0) {
        swm_buf_free(&buf);
        return swm_err_set(err, rc, "image store: cannot read %s: %s", path, swm_strerror(rc));
    }
    json_error_t jerr;
    s->meta = json_loadb((const char *)buf.data, buf.len, 0, &jerr);
    swm_buf_free(&buf);
    if (s->meta == NULL && image__json_oom(&jerr))
        return swm_err_code(err, -ENOMEM);
    if (s->meta == NULL)
        return swm_err_set(err, SWM_ECORRUPT, "image store: %s: invalid JSON (line %d: %s)", path,
                           jerr.line, jerr.text);
    rc = meta_check(s->meta, err);
    if (rc < 0)
        return swm_err_wrap(err, rc, "image store: %s", path);
    return 0;
}

int image_store_open(const char *dir, struct image_store **out, struct swm_err *err)
{
    static const char *const subdirs[] = {"layers", "configs", "tmp"};
    char path[PATH_MAX];
    int rc;

    if (sodium_init() < 0)
        return swm_err_set(err, -EIO, "image store: libsodium failed to initialise");
    struct image_store *s = swm_calloc(1, sizeof(*s));
    if (s == NULL)
        return swm_err_code(err, -ENOMEM);
    s->lock_fd = -1;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        swm_free(s);
        return swm_err_code(err, -ENOMEM);
    }

    rc = swm_mkdir_p(dir, 0700);
    if (rc < 0) {
        swm_err_set(err, rc, "image store: cannot create %s: %s", dir, swm_strerror(rc));
        goto fail;
    }
    char *real = realpath(dir, NULL);
    if (real == NULL) {
        rc = swm_err_set(err, -errno, "image store: %s: %s", dir, strerror(errno));
        goto fail;
    }
    s->dir = swm_strdup(real);
    free(real);
    if (s->dir == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto fail;
    }
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        rc = path_fmt(path, "%s/%s", s->dir, subdirs[i]);
        if (rc == 0)
            rc = swm_mkdir_p(path, 0700);
        if (rc < 0) {
            swm_err_set(err, rc, "image store: cannot create %s/%s: %s", s->dir, subdirs[i],
                        swm_strerror(rc));
            goto fail;
        }
    }

    /* One process per store: opening sweeps away files that a concurrent
     * load in another process would still need. */
    rc = path_fmt(path, "%s/lock", s->dir);
    if (rc == 0) {
        s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (s->lock_fd < 0)
            rc = -errno;
        else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
            rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
    }
    if (rc < 0) {
        swm_err_set(err, rc, "image store: cannot lock %s: %s", s->dir,
                    rc == -EBUSY ? "the store is already open" : swm_strerror(rc));
        goto fail;
    }

    rc = load_meta(s, err);
    if (rc < 0)
        goto fail;
    sweep(s, "tmp", NULL, s->meta);
    sweep(s, "layers", keep_layer, s->meta);
    sweep(s, "configs", keep_config, s->meta);
    *out = s;
    return 0;
fail:
    image_store_close(s);
    return rc;
}

void image_store_close(struct image_store *s)
{
    if (s == NULL)
        return;
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    json_decref(s->meta);
    pthread_mutex_destroy(&s->mu);
    swm_free(s->dir);
    swm_free(s);
}

/* ---- lookup ---- */

/* Finds the image that ref names, as Docker does: "sha256:<hex>" or a full
 * or 4+ digit id prefix, else a tag, else (for plain hex) an id prefix.
 * Sets *id to the key in s->meta (borrowed; valid while mu is held) and *tag
 * to the normalised tag when ref was a tag (the caller frees it), or NULL. */
static int find_image(struct image_store *s, const char *ref, const char **id, char **tag,
                      struct swm_err *err)
{
    json_t *images = json_object_get(s->meta, "images");
    const char *prefix = NULL;
    size_t len = strlen(ref);

    *tag = NULL;
    if (strncmp(ref, "sha256:", 7) == 0) {
        prefix = ref + 7;
        if (len - 7 < 4 || len - 7 > IMAGE__HEX_LEN || !image__is_hex(prefix, len - 7))
            return swm_err_set(err, -EINVAL, "invalid image id: %s", ref);
    } else if (strchr(ref, '@') != NULL) {
        return swm_err_set(err, SWM_ENOTSUP, "digest references are not supported: %s", ref);
    } else {
        char *norm = NULL;
        int rc = image__ref_normalize(ref, &norm);
        if (rc == -ENOMEM)
            return swm_err_code(err, rc);
        json_t *repos = json_object_get(s->meta, "repositories");
        const char *hit = norm ? json_string_value(json_object_get(repos, norm)) : NULL;
        bool valid = norm != NULL;
        if (hit != NULL) {
            *id = hit; /* meta_check ensured the image exists */
            *tag = norm;
            return 0;
        }
        swm_free(norm);
        if (len >= 4 && len <= IMAGE__HEX_LEN && image__is_hex(ref, len))
            prefix = ref;
        else if (!valid)
            return swm_err_set(err, -EINVAL, "invalid reference format: %s", ref);
    }

    const char *found = NULL;
    size_t matches = 0;
    if (prefix != NULL) {
        size_t plen = strlen(prefix);
        const char *key;
        json_t *v;
        json_object_foreach(images, key, v)
        {
            if (strncmp(key + 7, prefix, plen) == 0) {
                found = key;
                matches++;
            }
        }
    }
    if (matches > 1)
        return swm_err_set(err, -EINVAL, "image id prefix %s is ambiguous (%zu images match)", ref,
                           matches);
    if (found == NULL)
        return swm_err_set(err, SWM_ENOTFOUND, "No such image: %s", ref);
    *id = found;
    return 0;
}

/* Layer directories of an image, lowest first. A layer that occurs twice
 * (typically an empty one) is listed once, at its highest position:
 * overlayfs refuses the same lower dir twice, and a layer repeated above
 * itself re-asserts every entry, whiteout and opaque dir it has, so the
 * lower copy cannot change the merged tree. */
static int layer_dirs(struct image_store *s, json_t *layers, char ***out, size_t *n_out)
{
    size_t n = json_array_size(layers);
    char **dirs = swm_calloc(n + 1, sizeof(*dirs));
    if (dirs == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *diff = json_string_value(json_array_get(layers, i));
        bool later = false;
        for (size_t j = i + 1; j < n && !later; j++)
            later = strcmp(diff, json_string_value(json_array_get(layers, j))) == 0;
        if (later)
            continue;
        dirs[k] = swm_asprintf("%s/layers/%s", s->dir, diff + 7);
        if (dirs[k++] == NULL) {
            image_strv_free(dirs);
            return -ENOMEM;
        }
    }
    *out = dirs;
    *n_out = k;
    return 0;
}

static int read_config(struct image_store *s, const char *id, struct image_config **out,
                       struct swm_err *err)
{
    char path[PATH_MAX];
    struct swm_buf buf = {0};
    unsigned char sum[crypto_hash_sha256_BYTES];
    char hex[IMAGE__HEX_LEN + 1];
    struct image_config *c = NULL;

    int rc = path_fmt(path, "%s/configs/%s.json", s->dir, id + 7);
    if (rc == 0)
        rc = swm_read_file(path, IMAGE__JSON_MAX, &buf);
    if (rc < 0) {
        swm_err_set(err, rc == -ENOMEM ? rc : SWM_ECORRUPT, "image %.19s: cannot read %s: %s", id,
                    path, swm_strerror(rc));
        goto out;
    }
    crypto_hash_sha256(sum, buf.data, buf.len);
    sodium_bin2hex(hex, sizeof(hex), sum, sizeof(sum));
    if (strcmp(hex, id + 7) != 0) {
        rc = swm_err_set(err, SWM_ECORRUPT, "image %.19s: %s does not match its digest", id, path);
        goto out;
    }
    rc = image__config_parse((const char *)buf.data, buf.len, &c, NULL, NULL, err);
    if (rc < 0) {
        rc = swm_err_wrap(err, rc == -ENOMEM ? rc : SWM_ECORRUPT, "image %.19s: %s", id, path);
        goto out;
    }
    json_t *image = json_object_get(json_object_get(s->meta, "images"), id);
    c->id = swm_strdup(id);
    if (c->id == NULL ||
        layer_dirs(s, json_object_get(image, "layers"), &c->layer_dirs, &c->n_layers) < 0) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    *out = c;
    c = NULL;
out:
    image_config_free(c);
    swm_buf_free(&buf);
    return rc;
}

int image_resolve(struct image_store *s, const char *ref, struct image_config **out,
                  struct swm_err *err)
{
    const char *id;
    char *tag = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = find_image(s, ref, &id, &tag, err);
    if (rc == 0)
        rc = read_config(s, id, out, err);
    pthread_mutex_unlock(&s->mu);
    swm_free(tag);
    return rc;
}

/* ---- list ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_summary(const void *a, const void *b)
{
    const struct image_summary *x = a, *y = b;
    if (x->created_ns != y->created_ns)
        return x->created_ns > y->created_ns ? -1 : 1; /* newest first, like docker images */
    return strcmp(x->id, y->id);
}

static int summarise(json_t *meta, const char *id, json_t *image, struct image_summary *sum)
{
    json_t *repos = json_object_get(meta, "repositories");
    json_t *layers = json_object_get(image, "layers");
    const char *key;
    json_t *v;
    size_t n_tags = 0;

    sum->created_ns = json_integer_value(json_object_get(image, "created"));
    sum->id = swm_strdup(id);
    json_object_foreach(repos, key, v)
    {
        n_tags += strcmp(json_string_value(v), id) == 0;
    }
    sum->tags = swm_calloc(n_tags + 1, sizeof(char *));
    if (sum->id == NULL || sum->tags == NULL)
        return -ENOMEM;
    size_t k = 0;
    json_object_foreach(repos, key, v)
    {
        if (strcmp(json_string_value(v), id) != 0)
            continue;
        if ((sum->tags[k++] = swm_strdup(key)) == NULL)
            return -ENOMEM;
    }
    swm_sort(sum->tags, n_tags, sizeof(char *), cmp_str);

    for (size_t i = 0; i < json_array_size(layers); i++) {
        const char *diff = json_string_value(json_array_get(layers, i));
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(diff, json_string_value(json_array_get(layers, j))) == 0;
        if (!seen)
            sum->size += json_integer_value(
                json_object_get(json_object_get(json_object_get(meta, "layers"), diff), "size"));
    }
    return 0;
}

int image_list(struct image_store *s, struct image_summary **out, size_t *n, struct swm_err *err)
{
    pthread_mutex_lock(&s->mu);
    json_t *images = json_object_get(s->meta, "images");
    size_t count = json_object_size(images);
    struct image_summary *a = NULL;
    int rc = 0;
    if (count > 0) {
        a = swm_calloc(count, sizeof(*a));
        if (a == NULL)
            rc = -ENOMEM;
        size_t i = 0;
        const char *key;
        json_t *v;
        json_object_foreach(images, key, v)
        {
            if (rc == 0)
                rc = summarise(s->meta, key, v, &a[i++]);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        image_summary_free_array(a, count);
        return swm_err_code(err, rc);
    }
    if (count > 0)
        swm_sort(a, count, sizeof(*a), cmp_summary);
    *out = a;
    *n = count;
    return 0;
}

/* ---- remove ---- */

/* Moves path into the trash dir (creating it on first use), or deletes it in
 * place if that fails. Deleting the trash happens after the lock is released. */
static void discard(struct image_store *s, char *trash, const char *path, const char *name)
{
    char dst[PATH_MAX];
    if (trash[0] == '\0') {
        if (path_fmt(trash, "%s/tmp/trash-XXXXXX", s->dir) < 0 || mkdtemp(trash) == NULL)
            trash[0] = '\0';
    }
    if (trash[0] != '\0' && path_fmt(dst, "%s/%s", trash, name) == 0 && rename(path, dst) == 0)
        return;
    (void)swm_remove_tree(path);
}

int image_remove(struct image_store *s, const char *ref, bool (*in_use)(const char *id, void *arg),
                 void *arg, struct swm_err *err)
{
    const char *id;
    char *tag = NULL;
    char trash[PATH_MAX] = "";
    char path[PATH_MAX];
    char id_copy[IMAGE__DIGEST_LEN + 1];
    json_t *meta = NULL;

    pthread_mutex_lock(&s->mu);
    int rc = find_image(s, ref, &id, &tag, err);
    if (rc < 0)
        goto out;
    snprintf(id_copy, sizeof(id_copy), "%s", id);
    meta = json_deep_copy(s->meta);
    if (meta == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    json_t *repos = json_object_get(meta, "repositories");
    json_t *images = json_object_get(meta, "images");
    json_t *layers = json_object_get(meta, "layers");

    size_t n_tags = 0;
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach(repos, key, v)
    {
        n_tags += strcmp(json_string_value(v), id_copy) == 0;
    }

    if (tag != NULL && n_tags > 1) {
        /* Untagging leaves the image, so it does not matter who uses it. */
        json_object_del(repos, tag);
        rc = image__meta_replace(s, meta, err);
        meta = NULL;
        goto out;
    }
    if (in_use != NULL && in_use(id_copy, arg)) {
        rc = swm_err_set(err, SWM_EINUSE, "unable to remove %s: image %.19s is in use", ref,
                         id_copy);
        goto out;
    }
    json_object_foreach_safe(repos, tmp, key, v)
    {
        if (strcmp(json_string_value(v), id_copy) == 0)
            json_object_del(repos, key);
    }
    json_object_del(images, id_copy);

    /* Layers no other image refers to go with it (DESIGN.md §7). */
    json_t *orphans = json_array();
    if (orphans == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    json_object_foreach(layers, key, v)
    {
        bool used = false;
        const char *img;
        json_t *iv;
        json_object_foreach(images, img, iv)
        {
            size_t i;
            json_t *l;
            json_array_foreach(json_object_get(iv, "layers"), i, l)
            {
                used = used || strcmp(json_string_value(l), key) == 0;
            }
        }
        if (!used && json_array_append_new(orphans, json_string(key)) < 0) {
            json_decref(orphans);
            rc = swm_err_code(err, -ENOMEM);
            goto out;
        }
    }
    for (size_t i = 0; i < json_array_size(orphans); i++)
        json_object_del(layers, json_string_value(json_array_get(orphans, i)));

    rc = image__meta_replace(s, meta, err);
    meta = NULL;
    if (rc == 0) {
        if (path_fmt(path, "%s/configs/%s.json", s->dir, id_copy + 7) == 0)
            discard(s, trash, path, "config.json");
        for (size_t i = 0; i < json_array_size(orphans); i++) {
            const char *diff = json_string_value(json_array_get(orphans, i)) + 7;
            if (path_fmt(path, "%s/layers/%s", s->dir, diff) == 0)
                discard(s, trash, path, diff);
        }
    }
    json_decref(orphans);
out:
    pthread_mutex_unlock(&s->mu);
    json_decref(meta);
    swm_free(tag);
    if (trash[0] != '\0')
        (void)swm_remove_tree(trash);
    return rc;
}
