/* image_load: `docker save` and OCI image-layout tarballs (DESIGN.md §7).
 *
 * A tarball is read twice, never extracted as a whole:
 *
 *  1. scan: list every entry (name, kind, link target) and keep the JSON
 *     documents (manifest.json, index.json, manifests, configs) in memory.
 *     Everything else is skipped, which for an uncompressed tarball is a
 *     seek. `docker save` writes manifest.json last, so nothing useful can
 *     be done before the scan ends.
 *  2. plan: from manifest.json (docker save, also written by Docker 25+
 *     beside its OCI layout) or else index.json (OCI layout), work out the
 *     images, verify every JSON blob against its digest, parse the configs,
 *     and list the layers the store does not have yet.
 *  3. unpack: a second pass streams each missing layer from the tarball into
 *     a staging dir under <store>/tmp, checking its digests on the way.
 *  4. commit: under the store's lock, rename the staged layers into place,
 *     write the configs and replace the repositories file. Until that file
 *     is replaced nothing is visible, so any failure leaves the store as it
 *     was.
 */
#define _GNU_SOURCE
#include "agent/image/internal.h"

#include "common/alloc.h"
#include "common/fs.h"

#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JSON_TOTAL_MAX (256u << 20) /* all JSON kept from one tarball */
#define MAX_INDEX_DEPTH 4
#define MAX_LINK_HOPS 16

#if defined(__x86_64__)
#define HOST_ARCH "amd64"
#elif defined(__aarch64__)
#define HOST_ARCH "arm64"
#elif defined(__arm__)
#define HOST_ARCH "arm"
#elif defined(__i386__)
#define HOST_ARCH "386"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ARCH "ppc64le"
#elif defined(__s390x__)
#define HOST_ARCH "s390x"
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_ARCH "riscv64"
#else
#define HOST_ARCH "amd64"
#endif

/* An entry of the tarball. */
struct tar_file {
    char *name;     /* cleaned: no leading "/" or "./", no trailing "/" */
    char kind;      /* 'f' regular file, 'l' symlink, 'h' hard link */
    char *link;     /* 'l': target as written; 'h': cleaned target name */
    size_t ordinal; /* position among the tarball's headers */
    int64_t size;
    char *data; /* a JSON document kept in memory (NUL-terminated), or NULL */
    size_t len;
};

struct load_layer {
    char diff[IMAGE__DIGEST_LEN + 1];
    const struct tar_file *blob;
    char blob_hex[IMAGE__HEX_LEN + 1]; /* expected blob digest, "" if unknown */
    char label[192];                   /* "layer 2 of busybox:latest" */
    bool present;                      /* the store had it when we planned */
    bool unpacked;                     /* staged under staging/<diff hex> */
    bool installed;                    /* renamed into layers/ by the commit */
    int64_t size;
};

struct load_image {
    char id[IMAGE__DIGEST_LEN + 1];
    const struct tar_file *config;
    char **tags;     /* normalised, NULL-terminated */
    char **diff_ids; /* rootfs.diff_ids, NULL-terminated */
    int64_t created_ns;
    bool config_written; /* by the commit */
};

struct load {
    struct image_store *s;
    const char *path;
    int fd;
    char staging[PATH_MAX];
    struct tar_file *files;
    size_t n_files, cap_files, n_headers, json_total;
    struct load_image *images;
    size_t n_images;
    struct load_layer *layers;
    size_t n_layers;
};

static int sha256_hex(const void *data, size_t len, char hex[IMAGE__HEX_LEN + 1])
{
    unsigned char sum[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(sum, data, len);
    sodium_bin2hex(hex, IMAGE__HEX_LEN + 1, sum, sizeof(sum));
    return 0;
}

/* Cleans a name inside the tarball, relative to dir (NULL for the root):
 * resolves "." and "..", drops empty components. -EPERM if ".." would leave
 * the tarball. */
static int clean_name(const char *dir, const char *name, char **out)
{
    char *joined =
        dir != NULL && name[0] != '/' ? swm_asprintf("%s/%s", dir, name) : swm_strdup(name);
    char *clean = joined ? swm_malloc(strlen(joined) + 1) : NULL;
    if (clean == NULL) {
        swm_free(joined);
        return -ENOMEM;
    }
    size_t k = 0;
    char *save = NULL;
    int rc = 0;
    for (char *c = strtok_r(joined, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            if (k == 0) {
                rc = -EPERM;
                break;
            }
            while (k > 0 && clean[k - 1] != '/')
                k--;
            if (k > 0)
                k--;
            continue;
        }
        if (k > 0)
            clean[k++] = '/';
        size_t n = strlen(c);
        memcpy(clean + k, c, n);
        k += n;
    }
    clean[k] = '\0';
    swm_free(joined);
    if (rc < 0) {
        swm_free(clean);
        return rc;
    }
    *out = clean;
    return 0;
}

static struct tar_file *find_file(struct load *ld, const char *name)
{
    for (size_t i = 0; i < ld->n_files; i++)
        if (strcmp(ld->files[i].name, name) == 0)
            return &ld->files[i];
    return NULL;
}

/* The regular file a name stands for, following symlinks (Docker 25 writes
 * "<id>/layer.tar -> ../blobs/sha256/<hex>") and hard links. */
static int resolve_file(struct load *ld, const char *name, const struct tar_file **out)
{
    char *cur = NULL;
    int rc = clean_name(NULL, name, &cur);
    for (int hop = 0; rc == 0; hop++) {
        struct tar_file *f = find_file(ld, cur);
        if (f == NULL || (f->kind != 'f' && f->link == NULL)) {
            rc = -ENOENT;
            break;
        }
        if (f->kind == 'f') {
            *out = f;
            break;
        }
        if (hop == MAX_LINK_HOPS) {
            rc = -ELOOP;
            break;
        }
        char *dir = NULL;
        const char *slash = strrchr(f->name, '/');
        if (f->kind == 'l' && slash != NULL &&
            (dir = swm_strndup(f->name, (size_t)(slash - f->name))) == NULL) {
            rc = -ENOMEM;
            break;
        }
        char *next = NULL;
        rc = clean_name(dir, f->link, &next);
        swm_free(dir);
        swm_free(cur);
        cur = next;
    }
    swm_free(cur);
    return rc;
}

/* Error for a name a manifest gives that resolve_file could not follow. */
static int missing(int rc, struct swm_err *err, const char *what, const char *kind,
                   const char *name)
{
    if (rc == -ENOMEM)
        return swm_err_code(err, rc);
    return swm_err_set(err, -ENOENT, "image load: %s: %s %.200s is missing from the tarball", what,
                       kind, name);
}

static void free_files(struct load *ld)
{
    for (size_t i = 0; i < ld->n_files; i++) {
        swm_free(ld->files[i].name);
        swm_free(ld->files[i].link);
        swm_free(ld->files[i].data);
    }
    swm_free(ld->files);
    ld->files = NULL;
    ld->n_files = ld->cap_files = 0;
}

static int open_tarball(struct load *ld, struct archive **out, struct swm_err *err)
{
    if (lseek(ld->fd, 0, SEEK_SET) < 0)
        return swm_err_set(err, -errno, "image load: %s: %s", ld->path, strerror(errno));
    struct archive *a = archive_read_new();
    if (a == NULL)
        return swm_err_code(err, -ENOMEM);
    (void)archive_read_support_filter_gzip(a);
    (void)archive_read_support_filter_zstd(a);
    (void)archive_read_support_filter_bzip2(a);
    (void)archive_read_support_filter_xz(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_fd(a, ld->fd, 64 * 1024) != ARCHIVE_OK) {
        int rc = swm_err_set(err, -EINVAL, "image load: %s: not a tar archive (%s)", ld->path,
                             archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

static bool well_known(const char *name)
{
    return strcmp(name, "manifest.json") == 0 || strcmp(name, "index.json") == 0 ||
           strcmp(name, "oci-layout") == 0;
}

/* Keeps a regular file's content if it is a JSON document, else skips it. */
static int scan_data(struct load *ld, struct archive *a, struct tar_file *f, struct swm_err *err)
{
    char head[512];
    size_t want = f->size < (int64_t)sizeof(head) ? (size_t)f->size : sizeof(head);
    la_ssize_t n = want > 0 ? archive_read_data(a, head, want) : 0;
    if (n < 0)
        return swm_err_set(err, -EINVAL, "image load: %s: truncated or malformed tarball (%s: %s)",
                           ld->path, f->name, archive_error_string(a));
    size_t i = 0;
    while (i < (size_t)n && strchr(" \t\r\n", head[i]) != NULL)
        i++;
    bool json = i < (size_t)n && (head[i] == '{' || head[i] == '[');
    if (!json && !well_known(f->name))
        return archive_read_data_skip(a) == ARCHIVE_OK
                   ? 0
                   : swm_err_set(err, -EINVAL,
                                 "image load: %s: truncated or malformed tarball (%s: %s)",
                                 ld->path, f->name, archive_error_string(a));
    if (f->size > (int64_t)IMAGE__JSON_MAX) {
        if (well_known(f->name))
            return swm_err_set(err, -EFBIG, "image load: %s is larger than %u MiB", f->name,
                               IMAGE__JSON_MAX >> 20);
        return archive_read_data_skip(a) == ARCHIVE_OK
                   ? 0
                   : swm_err_set(err, -EINVAL,
                                 "image load: %s: truncated or malformed tarball (%s: %s)",
                                 ld->path, f->name, archive_error_string(a));
    }
    if (ld->json_total + (size_t)f->size > JSON_TOTAL_MAX)
        return swm_err_set(err, -EFBIG, "image load: %s: more than %u MiB of JSON", ld->path,
                           JSON_TOTAL_MAX >> 20);
    f->data = swm_malloc((size_t)f->size + 1);
    if (f->data == NULL)
        return swm_err_code(err, -ENOMEM);
    memcpy(f->data, head, (size_t)n);
    f->len = (size_t)n;
    while (f->len < (size_t)f->size) {
        n = archive_read_data(a, f->data + f->len, (size_t)f->size - f->len);
        if (n <= 0)
            return swm_err_set(err, -EINVAL,
                               "image load: %s: truncated or malformed tarball (%s: %s)", ld->path,
                               f->name, n < 0 ? archive_error_string(a) : "short read");
        f->len += (size_t)n;
    }
    f->data[f->len] = '\0';
    ld->json_total += f->len;
    return 0;
}

static int scan(struct load *ld, struct swm_err *err)
{
    struct archive *a;
    int rc = open_tarball(ld, &a, err);
    if (rc < 0)
        return rc;
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        size_t ordinal = ld->n_headers++;
        const char *pathname = archive_entry_pathname(e);
        const char *hardlink = archive_entry_hardlink(e);
        char kind = hardlink                                ? 'h'
                    : archive_entry_filetype(e) == AE_IFREG ? 'f'
                    : archive_entry_filetype(e) == AE_IFLNK ? 'l'
                                                            : 0;
        if (pathname == NULL || kind == 0)
            continue; /* directories and the like play no part */
        char *name = NULL;
        rc = clean_name(NULL, pathname, &name);
        if (rc == -ENOMEM) {
            rc = swm_err_code(err, rc);
            goto out;
        }
        rc = 0;
        if (name == NULL || name[0] == '\0') {
            swm_free(name);
            continue; /* cannot be named by a manifest */
        }
        struct tar_file *f = find_file(ld, name);
        if (f != NULL) { /* a later entry replaces an earlier one, as in tar */
            swm_free(f->name);
            swm_free(f->link);
            swm_free(f->data);
            ld->json_total -= f->len;
        } else {
            if (ld->n_files == ld->cap_files) {
                size_t cap = ld->cap_files ? ld->cap_files * 2 : 64;
                struct tar_file *files = swm_realloc(ld->files, cap * sizeof(*files));
                if (files == NULL) {
                    swm_free(name);
                    rc = swm_err_code(err, -ENOMEM);
                    goto out;
                }
                ld->files = files;
                ld->cap_files = cap;
            }
            f = &ld->files[ld->n_files++];
        }
        *f = (struct tar_file){.name = name, .kind = kind, .ordinal = ordinal};
        /* A link leading out of the tarball stays as a dead end (link NULL). */
        if (kind == 'h')
            rc = clean_name(NULL, hardlink, &f->link);
        else if (kind == 'l' && archive_entry_symlink(e) != NULL)
            rc = (f->link = swm_strdup(archive_entry_symlink(e))) ? 0 : -ENOMEM;
        if (rc == -ENOMEM) {
            rc = swm_err_code(err, rc);
            goto out;
        }
        rc = 0;
        if (kind == 'f') {
            f->size = archive_entry_size(e);
            if ((rc = scan_data(ld, a, f, err)) < 0)
                goto out;
        }
    }
    if (r != ARCHIVE_EOF) {
        rc = swm_err_set(err, -EINVAL, "image load: %s: truncated or malformed tarball (%s)",
                         ld->path, archive_error_string(a));
        goto out;
    }
out:
    archive_read_free(a);
    return rc;
}

/* ---- plan ---- */

static int parse_json(const struct tar_file *f, const char *what, json_t **out, struct swm_err *err)
{
    json_error_t jerr;
    if (f->data == NULL)
        return swm_err_set(err, -EINVAL, "image load: %s: %s is not a JSON document", what,
                           f->name);
    *out = json_loadb(f->data, f->len, 0, &jerr);
    if (*out == NULL && image__json_oom(&jerr))
        return swm_err_code(err, -ENOMEM);
    if (*out == NULL)
        return swm_err_set(err, -EINVAL, "image load: %s: invalid JSON (line %d: %s)", f->name,
                           jerr.line, jerr.text);
    return 0;
}

/* Adds tag (normalised) to strv *tags unless present. */
static int add_tag(char ***tags, const char *tag)
{
    size_t n = 0;
    for (; *tags != NULL && (*tags)[n] != NULL; n++)
        if (strcmp((*tags)[n], tag) == 0)
            return 0;
    char **v = swm_realloc(*tags, (n + 2) * sizeof(char *));
    if (v == NULL)
        return -ENOMEM;
    *tags = v;
    v[n] = swm_strdup(tag);
    v[n + 1] = NULL;
    return v[n] == NULL ? -ENOMEM : 0;
}

/* One image from a manifest: the config file (with its expected digest, or
 * NULL when the format does not name one), the tags, and per layer the file
 * and expected blob digest (or ""). */
struct image_src {
    const char *what; /* for errors: "manifest.json" or a blob name */
    const struct tar_file *config;
    const char *config_hex;
    char **tags;
    size_t n_layers;
    const struct tar_file **layer_files;
    char (*blob_hex)[IMAGE__HEX_LEN + 1];
};

static int add_image(struct load *ld, const struct image_src *src, struct swm_err *err)
{
    char id_hex[IMAGE__HEX_LEN + 1];
    char **diff_ids = NULL;
    struct image_config *cfg = NULL;
    int64_t created = 0;
    int rc;

    if (src->config->data == NULL)
        return swm_err_set(err, -EINVAL, "image load: %s: config %s is not a JSON document",
                           src->what, src->config->name);
    sha256_hex(src->config->data, src->config->len, id_hex);
    if (src->config_hex != NULL && strcmp(id_hex, src->config_hex) != 0)
        return swm_err_set(err, -EINVAL,
                           "image load: config %s: digest mismatch (want sha256:%s, got sha256:%s)",
                           src->config->name, src->config_hex, id_hex);
    rc = image__config_parse(src->config->data, src->config->len, &cfg, &diff_ids, &created, err);
    if (rc < 0)
        return swm_err_wrap(err, rc, "image load: config %s", src->config->name);
    image_config_free(cfg);

    size_t n_diffs = 0;
    while (diff_ids[n_diffs] != NULL)
        n_diffs++;
    if (n_diffs != src->n_layers) {
        image_strv_free(diff_ids);
        return swm_err_set(err, -EINVAL,
                           "image load: %s: config %s lists %zu diff_ids but there are %zu layers",
                           src->what, src->config->name, n_diffs, src->n_layers);
    }

    /* The same image twice (say, one OCI manifest per tag) merges. */
    struct load_image *img = NULL;
    for (size_t i = 0; i < ld->n_images; i++)
        if (strcmp(ld->images[i].id + 7, id_hex) == 0)
            img = &ld->images[i];
    if (img == NULL) {
        struct load_image *images =
            swm_realloc(ld->images, (ld->n_images + 1) * sizeof(*ld->images));
        if (images == NULL) {
            image_strv_free(diff_ids);
            return swm_err_code(err, -ENOMEM);
        }
        ld->images = images;
        img = &ld->images[ld->n_images++];
        *img = (struct load_image){.config = src->config, .created_ns = created};
        snprintf(img->id, sizeof(img->id), "sha256:%s", id_hex);
        img->diff_ids = diff_ids;
        img->tags = swm_calloc(1, sizeof(char *));
        if (img->tags == NULL)
            return swm_err_code(err, -ENOMEM);
    } else {
        image_strv_free(diff_ids);
    }
    for (size_t i = 0; src->tags != NULL && src->tags[i] != NULL; i++)
        if (add_tag(&img->tags, src->tags[i]) < 0)
            return swm_err_code(err, -ENOMEM);

    char label[96];
    if (img->tags[0] != NULL)
        snprintf(label, sizeof(label), "%s", img->tags[0]);
    else
        snprintf(label, sizeof(label), "%.19s", img->id);
    for (size_t i = 0; i < src->n_layers; i++) {
        const char *diff = img->diff_ids[i];
        const struct tar_file *blob = src->layer_files[i];
        struct load_layer *l = NULL;
        for (size_t j = 0; j < ld->n_layers && l == NULL; j++)
            if (strcmp(ld->layers[j].diff, diff) == 0)
                l = &ld->layers[j];
        for (size_t j = 0; j < ld->n_layers; j++)
            if (ld->layers[j].blob == blob && strcmp(ld->layers[j].diff, diff) != 0)
                return swm_err_set(err, -EINVAL,
                                   "image load: layer %zu of %s: %s is also %s, with another "
                                   "diff_id",
                                   i + 1, label, blob->name, ld->layers[j].label);
        if (l != NULL)
            continue;
        struct load_layer *layers =
            swm_realloc(ld->layers, (ld->n_layers + 1) * sizeof(*ld->layers));
        if (layers == NULL)
            return swm_err_code(err, -ENOMEM);
        ld->layers = layers;
        l = &ld->layers[ld->n_layers++];
        *l = (struct load_layer){.blob = blob};
        snprintf(l->diff, sizeof(l->diff), "%s", diff);
        snprintf(l->blob_hex, sizeof(l->blob_hex), "%s", src->blob_hex[i]);
        snprintf(l->label, sizeof(l->label), "layer %zu of %s", i + 1, label);
    }
    return 0;
}

/* The hex digest a path names: "<hex>.json", ".../sha256/<hex>", else "". */
static void hex_from_path(const char *name, char hex[IMAGE__HEX_LEN + 1])
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t n = strlen(base);
    hex[0] = '\0';
    if ((n == IMAGE__HEX_LEN || (n == IMAGE__HEX_LEN + 5 && strcmp(base + 64, ".json") == 0)) &&
        image__is_hex(base, IMAGE__HEX_LEN)) {
        if (n == IMAGE__HEX_LEN && !(base - name >= 7 && strncmp(base - 7, "sha256/", 7) == 0))
            return;
        snprintf(hex, IMAGE__HEX_LEN + 1, "%.64s", base);
    }
}

static void free_src(struct image_src *src)
{
    image_strv_free(src->tags);
    swm_free(src->layer_files);
    swm_free(src->blob_hex);
}

static int alloc_src_layers(struct image_src *src, size_t n)
{
    src->n_layers = n;
    src->layer_files = swm_calloc(n + 1, sizeof(*src->layer_files));
    src->blob_hex = swm_calloc(n + 1, sizeof(*src->blob_hex));
    return src->layer_files && src->blob_hex ? 0 : -ENOMEM;
}

static int normalise_tag(const char *what, const char *raw, char ***tags, struct swm_err *err)
{
    char *norm = NULL;
    int rc = image__ref_normalize(raw, &norm);
    if (rc == -ENOMEM)
        return swm_err_code(err, rc);
    if (rc < 0)
        return swm_err_set(err, -EINVAL, "image load: %s: invalid image name \"%.200s\"", what,
                           raw);
    rc = add_tag(tags, norm);
    swm_free(norm);
    return rc < 0 ? swm_err_code(err, rc) : 0;
}

/* manifest.json: [{"Config": "...", "RepoTags": [...], "Layers": [...]}] */
static int plan_docker(struct load *ld, const struct tar_file *manifest, struct swm_err *err)
{
    json_t *root;
    int rc = parse_json(manifest, "manifest.json", &root, err);
    if (rc < 0)
        return rc;
    if (!json_is_array(root) || json_array_size(root) == 0) {
        rc = swm_err_set(err, -EINVAL, "image load: manifest.json: not a non-empty array");
        goto out;
    }
    size_t i;
    json_t *m;
    json_array_foreach(root, i, m)
    {
        struct image_src src = {.what = "manifest.json"};
        char config_hex[IMAGE__HEX_LEN + 1];
        const char *config = json_string_value(json_object_get(m, "Config"));
        json_t *tags = json_object_get(m, "RepoTags");
        json_t *layers = json_object_get(m, "Layers");
        if (config == NULL || !json_is_array(layers) ||
            (tags && !json_is_null(tags) && !json_is_array(tags))) {
            rc = swm_err_set(err, -EINVAL,
                             "image load: manifest.json: entry %zu lacks Config or Layers", i + 1);
            goto out;
        }
        if ((rc = resolve_file(ld, config, &src.config)) < 0) {
            rc = missing(rc, err, "manifest.json", "config", config);
            goto out;
        }
        hex_from_path(config, config_hex);
        src.config_hex = config_hex[0] ? config_hex : NULL;
        size_t j;
        json_t *v;
        json_array_foreach(tags, j, v)
        {
            if (!json_is_string(v)) {
                rc = swm_err_set(err, -EINVAL, "image load: manifest.json: bad RepoTags");
                break;
            }
            if ((rc = normalise_tag("manifest.json", json_string_value(v), &src.tags, err)) < 0)
                break;
        }
        if (rc == 0 && alloc_src_layers(&src, json_array_size(layers)) < 0)
            rc = swm_err_code(err, -ENOMEM);
        json_array_foreach(layers, j, v)
        {
            if (rc < 0)
                break;
            const char *name = json_string_value(v);
            if (name == NULL) {
                rc = swm_err_set(err, -EINVAL, "image load: manifest.json: bad Layers");
                break;
            }
            if ((rc = resolve_file(ld, name, &src.layer_files[j])) < 0) {
                rc = missing(rc, err, "manifest.json", "layer", name);
                break;
            }
            hex_from_path(name, src.blob_hex[j]);
        }
        if (rc == 0)
            rc = add_image(ld, &src, err);
        free_src(&src);
        if (rc < 0)
            goto out;
    }
out:
    json_decref(root);
    return rc;
}

/* ---- OCI image layout ---- */

static bool is_index_type(const char *mt)
{
    return strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
           strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0;
}

static bool is_manifest_type(const char *mt)
{
    return strcmp(mt, "application/vnd.oci.image.manifest.v1+json") == 0 ||
           strcmp(mt, "application/vnd.docker.distribution.manifest.v2+json") == 0;
}

static bool is_layer_type(const char *mt)
{
    static const char *const ok[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar.zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(mt, ok[i]) == 0)
            return true;
    return false;
}

/* The blob a descriptor points at, verified against its digest and size. */
static int descriptor_blob(struct load *ld, json_t *desc, const char *what,
                           const struct tar_file **out, char hex[IMAGE__HEX_LEN + 1],
                           struct swm_err *err)
{
    const char *digest = json_string_value(json_object_get(desc, "digest"));
    json_t *size = json_object_get(desc, "size");
    char name[IMAGE__HEX_LEN + 16];
    if (digest == NULL)
        return swm_err_set(err, -EINVAL, "image load: %s: a descriptor has no digest", what);
    if (!image__is_digest(digest))
        return swm_err_set(err, SWM_ENOTSUP, "image load: %s: unsupported digest %.80s", what,
                           digest);
    snprintf(hex, IMAGE__HEX_LEN + 1, "%s", digest + 7);
    snprintf(name, sizeof(name), "blobs/sha256/%s", hex);
    const struct tar_file *f;
    int rc = resolve_file(ld, name, &f);
    if (rc < 0)
        return missing(rc, err, what, "blob", name);
    if (json_is_integer(size) && json_integer_value(size) != f->size)
        return swm_err_set(
            err, -EINVAL, "image load: %s: size mismatch (want %" JSON_INTEGER_FORMAT ", got %lld)",
            name, json_integer_value(size), (long long)f->size);
    if (f->data != NULL) { /* layers are verified while they are unpacked */
        char got[IMAGE__HEX_LEN + 1];
        sha256_hex(f->data, f->len, got);
        if (strcmp(got, hex) != 0)
            return swm_err_set(err, -EINVAL,
                               "image load: %s: digest mismatch (want sha256:%s, got sha256:%s)",
                               name, hex, got);
    }
    *out = f;
    return 0;
}

/* Of an index's manifests, the one for this host: the only real one, or
 * linux/<host arch>. Attestations (buildkit's "unknown/unknown") don't count. */
static int pick_platform(json_t *manifests, const char *what, json_t **out, struct swm_err *err)
{
    json_t *only = NULL, *match = NULL;
    size_t candidates = 0, i;
    json_t *d;
    json_array_foreach(manifests, i, d)
    {
        json_t *platform = json_object_get(d, "platform");
        const char *os = json_string_value(json_object_get(platform, "os"));
        const char *arch = json_string_value(json_object_get(platform, "architecture"));
        const char *ref_type = json_string_value(
            json_object_get(json_object_get(d, "annotations"), "vnd.docker.reference.type"));
        if ((ref_type && strcmp(ref_type, "attestation-manifest") == 0) ||
            (os && strcmp(os, "unknown") == 0))
            continue;
        candidates++;
        only = d;
        if (match == NULL && os && arch && strcmp(os, "linux") == 0 && strcmp(arch, HOST_ARCH) == 0)
            match = d;
    }
    *out = match != NULL ? match : only;
    if (match != NULL || candidates == 1)
        return 0;
    return swm_err_set(err, SWM_ENOTSUP, "image load: %s: no linux/" HOST_ARCH " image among %zu",
                       what, candidates);
}

/* The name an index.json entry gives its image: containerd's full name, or
 * the OCI ref.name when it is a full reference rather than a bare tag. */
static int tags_from_annotations(json_t *desc, char ***tags, struct swm_err *err)
{
    json_t *ann = json_object_get(desc, "annotations");
    const char *name = json_string_value(json_object_get(ann, "io.containerd.image.name"));
    if (name == NULL) {
        name = json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
        if (name != NULL && strchr(name, ':') == NULL && strchr(name, '/') == NULL)
            name = NULL; /* just a tag, of no repository we know */
    }
    return name != NULL ? normalise_tag("index.json", name, tags, err) : 0;
}

static int plan_descriptor(struct load *ld, json_t *desc, const char *what, char **tags, int depth,
                           struct swm_err *err)
{
    const struct tar_file *f;
    char hex[IMAGE__HEX_LEN + 1];
    int rc = descriptor_blob(ld, desc, what, &f, hex, err);
    if (rc < 0)
        return rc;
    json_t *doc;
    if ((rc = parse_json(f, what, &doc, err)) < 0)
        return rc;

    const char *mt = json_string_value(json_object_get(desc, "mediaType"));
    if (mt == NULL)
        mt = json_string_value(json_object_get(doc, "mediaType"));
    if (mt == NULL)
        mt = json_object_get(doc, "manifests") ? "application/vnd.oci.image.index.v1+json"
                                               : "application/vnd.oci.image.manifest.v1+json";

    if (is_index_type(mt)) {
        json_t *child = NULL;
        if (depth >= MAX_INDEX_DEPTH)
            rc = swm_err_set(err, -EINVAL, "image load: %s: indexes nested too deep", f->name);
        else if (!json_is_array(json_object_get(doc, "manifests")))
            rc = swm_err_set(err, -EINVAL, "image load: %s: no manifests array", f->name);
        else if ((rc = pick_platform(json_object_get(doc, "manifests"), f->name, &child, err)) == 0)
            rc = plan_descriptor(ld, child, f->name, tags, depth + 1, err);
        json_decref(doc);
        return rc;
    }
    if (!is_manifest_type(mt)) {
        json_decref(doc);
        return swm_err_set(err, SWM_ENOTSUP, "image load: %s: unsupported media type %.100s",
                           f->name, mt);
    }

    struct image_src src = {.what = f->name, .tags = tags};
    char config_hex[IMAGE__HEX_LEN + 1];
    json_t *config = json_object_get(doc, "config");
    json_t *layers = json_object_get(doc, "layers");
    const char *cmt = json_string_value(json_object_get(config, "mediaType"));
    if (!json_is_object(config) || !json_is_array(layers)) {
        rc = swm_err_set(err, -EINVAL, "image load: %s: manifest lacks config or layers", f->name);
        goto out;
    }
    if (cmt != NULL && strcmp(cmt, "application/vnd.oci.image.config.v1+json") != 0 &&
        strcmp(cmt, "application/vnd.docker.container.image.v1+json") != 0) {
        rc = swm_err_set(err, SWM_ENOTSUP, "image load: %s: unsupported config media type %.100s",
                         f->name, cmt);
        goto out;
    }
    if ((rc = descriptor_blob(ld, config, f->name, &src.config, config_hex, err)) < 0)
        goto out;
    src.config_hex = config_hex;
    if (alloc_src_layers(&src, json_array_size(layers)) < 0) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        const char *lmt = json_string_value(json_object_get(l, "mediaType"));
        if (lmt != NULL && !is_layer_type(lmt)) {
            rc = swm_err_set(err, SWM_ENOTSUP,
                             "image load: %s: layer %zu has unsupported media type %.100s", f->name,
                             i + 1, lmt);
            goto out;
        }
        if ((rc = descriptor_blob(ld, l, f->name, &src.layer_files[i], src.blob_hex[i], err)) < 0)
            goto out;
    }
    rc = add_image(ld, &src, err);
out:
    src.tags = NULL; /* borrowed */
    free_src(&src);
    json_decref(doc);
    return rc;
}

static int plan_oci(struct load *ld, const struct tar_file *index, struct swm_err *err)
{
    const struct tar_file *layout = find_file(ld, "oci-layout");
    json_t *root;
    int rc;
    if (layout != NULL) {
        if ((rc = parse_json(layout, "oci-layout", &root, err)) < 0)
            return rc;
        json_decref(root);
    }
    if ((rc = parse_json(index, "index.json", &root, err)) < 0)
        return rc;
    json_t *manifests = json_object_get(root, "manifests");
    if (!json_is_array(manifests) || json_array_size(manifests) == 0)
        rc = swm_err_set(err, -EINVAL, "image load: index.json: no manifests");
    size_t i;
    json_t *desc;
    json_array_foreach(manifests, i, desc)
    {
        char **tags = NULL;
        if (rc == 0)
            rc = tags_from_annotations(desc, &tags, err);
        if (rc == 0)
            rc = plan_descriptor(ld, desc, "index.json", tags, 0, err);
        image_strv_free(tags);
        if (rc < 0)
            break;
    }
    json_decref(root);
    return rc;
}

/* ---- unpack ---- */

static int unpack_layers(struct load *ld, struct swm_err *err)
{
    size_t pending = 0;
    pthread_mutex_lock(&ld->s->mu);
    json_t *have = json_object_get(ld->s->meta, "layers");
    for (size_t i = 0; i < ld->n_layers; i++) {
        ld->layers[i].present = json_object_get(have, ld->layers[i].diff) != NULL;
        pending += !ld->layers[i].present;
    }
    pthread_mutex_unlock(&ld->s->mu);
    if (pending == 0)
        return 0;

    struct archive *a;
    int rc = open_tarball(ld, &a, err);
    if (rc < 0)
        return rc;
    struct archive_entry *e;
    int r;
    for (size_t ordinal = 0; pending > 0; ordinal++) {
        r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            rc = swm_err_set(err, -EINVAL, "image load: %s: truncated or malformed tarball (%s)",
                             ld->path, archive_error_string(a));
            goto out;
        }
        for (size_t i = 0; i < ld->n_layers; i++) {
            struct load_layer *l = &ld->layers[i];
            if (l->present || l->unpacked || l->blob->ordinal != ordinal)
                continue;
            char dir[PATH_MAX];
            snprintf(dir, sizeof(dir), "%s/%s", ld->staging, l->diff + 7);
            if (mkdir(dir, 0755) < 0) {
                rc = swm_err_set(err, -errno, "image load: %s: cannot create %s: %s", l->label, dir,
                                 strerror(errno));
                goto out;
            }
            rc = image__layer_unpack(a, dir, l->blob_hex[0] ? l->blob_hex : NULL, l->diff + 7,
                                     &l->size, err);
            if (rc < 0) {
                swm_err_wrap(err, rc, "image load: %s (%s)", l->label, l->blob->name);
                goto out;
            }
            l->unpacked = true;
            pending--;
            break; /* a blob feeds one layer; add_image made sure */
        }
    }
    for (size_t i = 0; i < ld->n_layers && rc == 0; i++)
        if (!ld->layers[i].present && !ld->layers[i].unpacked)
            rc = swm_err_set(err, -EIO, "image load: %s: %s changed while it was being read",
                             ld->layers[i].label, ld->path);
out:
    archive_read_free(a);
    return rc;
}

/* ---- commit ---- */

static json_t *image_entry(const struct load_image *img)
{
    json_t *layers = json_array();
    for (size_t i = 0; layers != NULL && img->diff_ids[i] != NULL; i++) {
        if (json_array_append_new(layers, json_string(img->diff_ids[i])) < 0) {
            json_decref(layers);
            return NULL;
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return layers ? json_pack("{s:o, s:I, s:I}", "layers", layers, "created",
                              (json_int_t)img->created_ns, "loaded",
                              (json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec)
                  : NULL;
}

/* Undoes the file moves of a commit whose metadata could not be written. */
static void rollback(struct load *ld)
{
    char src[PATH_MAX], dst[PATH_MAX];
    for (size_t i = 0; i < ld->n_layers; i++) {
        struct load_layer *l = &ld->layers[i];
        if (!l->installed)
            continue;
        snprintf(src, sizeof(src), "%s/layers/%s", ld->s->dir, l->diff + 7);
        snprintf(dst, sizeof(dst), "%s/%s", ld->staging, l->diff + 7);
        if (rename(src, dst) < 0)
            (void)swm_remove_tree(src);
        l->installed = false;
    }
    for (size_t i = 0; i < ld->n_images; i++) {
        if (!ld->images[i].config_written)
            continue;
        snprintf(src, sizeof(src), "%s/configs/%s.json", ld->s->dir, ld->images[i].id + 7);
        unlink(src);
        ld->images[i].config_written = false;
    }
}

static int commit(struct load *ld, struct swm_err *err)
{
    struct image_store *s = ld->s;
    char src[PATH_MAX], dst[PATH_MAX];
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    json_t *meta = json_deep_copy(s->meta);
    json_t *layers = json_object_get(meta, "layers");
    json_t *images = json_object_get(meta, "images");
    json_t *repos = json_object_get(meta, "repositories");
    if (meta == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    for (size_t i = 0; i < ld->n_layers; i++) {
        struct load_layer *l = &ld->layers[i];
        if (json_object_get(layers, l->diff) != NULL)
            continue; /* in the store already, or a concurrent load won */
        if (!l->unpacked) {
            rc = swm_err_set(err, -EAGAIN,
                             "image load: %s was removed from the store meanwhile; load again",
                             l->label);
            goto out;
        }
        snprintf(src, sizeof(src), "%s/%s", ld->staging, l->diff + 7);
        snprintf(dst, sizeof(dst), "%s/layers/%s", s->dir, l->diff + 7);
        (void)swm_remove_tree(dst); /* garbage from a crash, if anything */
        if (rename(src, dst) < 0) {
            rc = swm_err_set(err, -errno, "image load: %s: cannot move into %s: %s", l->label, dst,
                             strerror(errno));
            goto out;
        }
        l->installed = true;
        if (json_object_set_new(layers, l->diff, json_pack("{s:I}", "size", (json_int_t)l->size)) <
            0) {
            rc = swm_err_code(err, -ENOMEM);
            goto out;
        }
    }
    for (size_t i = 0; i < ld->n_images; i++) {
        struct load_image *img = &ld->images[i];
        if (json_object_get(images, img->id) == NULL) {
            snprintf(dst, sizeof(dst), "%s/configs/%s.json", s->dir, img->id + 7);
            rc = swm_write_file_atomic(dst, img->config->data, img->config->len, 0600);
            if (rc < 0) {
                swm_err_set(err, rc, "image load: cannot write %s: %s", dst, swm_strerror(rc));
                goto out;
            }
            img->config_written = true;
            if (json_object_set_new(images, img->id, image_entry(img)) < 0) {
                rc = swm_err_code(err, -ENOMEM);
                goto out;
            }
        }
        for (size_t t = 0; img->tags[t] != NULL; t++) {
            /* A tag moves to the newly loaded image; the image it named
             * stays, untagged, as with docker load. */
            if (json_object_set_new(repos, img->tags[t], json_string(img->id)) < 0) {
                rc = swm_err_code(err, -ENOMEM);
                goto out;
            }
        }
    }
    rc = image__meta_replace(s, meta, err);
    meta = NULL;
    if (rc < 0)
        swm_err_wrap(err, rc, "image load");
out:
    if (rc < 0)
        rollback(ld);
    pthread_mutex_unlock(&s->mu);
    json_decref(meta);
    return rc;
}

/* ---- the whole ---- */

static int loaded_refs(struct load *ld, char ***out)
{
    char **refs = swm_calloc(1, sizeof(char *));
    if (refs == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < ld->n_images; i++) {
        struct load_image *img = &ld->images[i];
        int rc = 0;
        if (img->tags[0] == NULL)
            rc = add_tag(&refs, img->id);
        for (size_t t = 0; rc == 0 && img->tags[t] != NULL; t++)
            rc = add_tag(&refs, img->tags[t]);
        if (rc < 0) {
            image_strv_free(refs);
            return rc;
        }
    }
    *out = refs;
    return 0;
}

/* A pipe or a device cannot be read twice: copy it into the staging dir. */
static int spool(struct load *ld, struct swm_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/input", ld->staging);
    char *buf = swm_malloc(64 * 1024);
    if (buf == NULL)
        return swm_err_code(err, -ENOMEM);
    int out = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = out < 0 ? -errno : 0;
    while (rc == 0) {
        ssize_t n = read(ld->fd, buf, 64 * 1024);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        for (ssize_t done = 0; rc == 0 && done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w >= 0)
                done += w;
            else if (errno != EINTR)
                rc = -errno;
        }
    }
    swm_free(buf);
    if (rc < 0) {
        if (out >= 0)
            close(out);
        return swm_err_set(err, rc, "image load: %s: %s", ld->path, swm_strerror(rc));
    }
    close(ld->fd);
    ld->fd = out;
    return 0;
}

int image_load(struct image_store *s, const char *path, char ***loaded, struct swm_err *err)
{
    struct load ld = {.s = s, .path = path, .fd = -1};
    struct stat st;
    int rc;

    /* libarchive converts pax's UTF-8 names to the locale's charset; in the
     * "C" locale a daemon runs in, names like Főtanúsítvány.crt (Debian's
     * ca-certificates) fail to convert or worse. A UTF-8 LC_CTYPE for this
     * thread only makes the conversion an identity. */
    locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    locale_t saved = utf8 != (locale_t)0 ? uselocale(utf8) : (locale_t)0;

    ld.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ld.fd < 0 || fstat(ld.fd, &st) < 0) {
        rc = swm_err_set(err, -errno, "image load: %s: %s", path, strerror(errno));
        goto out;
    }
    if (snprintf(ld.staging, sizeof(ld.staging), "%s/tmp/load-XXXXXX", s->dir) >= PATH_MAX ||
        mkdtemp(ld.staging) == NULL) {
        rc = swm_err_set(err, -errno, "image load: cannot create a staging dir in %s/tmp: %s",
                         s->dir, strerror(errno));
        ld.staging[0] = '\0';
        goto out;
    }
    if (!S_ISREG(st.st_mode) && (rc = spool(&ld, err)) < 0)
        goto out;

    if ((rc = scan(&ld, err)) < 0)
        goto out;
    const struct tar_file *manifest = find_file(&ld, "manifest.json");
    const struct tar_file *index = find_file(&ld, "index.json");
    if (manifest != NULL && manifest->kind == 'f')
        rc = plan_docker(&ld, manifest, err);
    else if (index != NULL && index->kind == 'f')
        rc = plan_oci(&ld, index, err);
    else
        rc = swm_err_set(err, -EINVAL,
                         "image load: %s: no manifest.json or index.json (not a docker save or "
                         "OCI image tarball)",
                         path);
    if (rc < 0)
        goto out;
    if ((rc = unpack_layers(&ld, err)) < 0)
        goto out;
    char **refs = NULL;
    if (loaded_refs(&ld, &refs) < 0) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    if ((rc = commit(&ld, err)) < 0) {
        image_strv_free(refs);
        goto out;
    }
    if (loaded != NULL)
        *loaded = refs;
    else
        image_strv_free(refs);
out:
    if (ld.fd >= 0)
        close(ld.fd);
    if (ld.staging[0] != '\0')
        (void)swm_remove_tree(ld.staging);
    for (size_t i = 0; i < ld.n_images; i++) {
        image_strv_free(ld.images[i].tags);
        image_strv_free(ld.images[i].diff_ids);
    }
    swm_free(ld.images);
    swm_free(ld.layers);
    free_files(&ld);
    if (utf8 != (locale_t)0) {
        uselocale(saved);
        freelocale(utf8);
    }
    return rc;
}
