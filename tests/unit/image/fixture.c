#define _GNU_SOURCE
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "fixture.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <ftw.h>
#include <locale.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"

static la_ssize_t buf_write(struct archive *a, void *arg, const void *data, size_t len)
{
    struct swm_buf *out = arg;
    assert_int_equal(swm_buf_append(out, data, len), 0);
    return (la_ssize_t)len;
}

void tb_tar(const struct tb_entry *e, size_t n, struct swm_buf *out)
{
    /* libarchive's pax writer needs a UTF-8 locale for non-ASCII names. */
    locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    assert_true(utf8 != (locale_t)0);
    locale_t saved = uselocale(utf8);
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open(a, out, NULL, buf_write, NULL), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname_utf8(ae, e[i].name);
        archive_entry_set_uid(ae, e[i].uid);
        archive_entry_set_gid(ae, e[i].gid);
        archive_entry_set_mtime(ae, TB_MTIME, 0);
        size_t len = 0;
        switch (e[i].type) {
        case 'f':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_perm(ae, e[i].mode ? e[i].mode : 0644);
            len = e[i].data ? strlen(e[i].data) : 0;
            archive_entry_set_size(ae, (la_int64_t)len);
            break;
        case 'd':
            archive_entry_set_filetype(ae, AE_IFDIR);
            archive_entry_set_perm(ae, e[i].mode ? e[i].mode : 0755);
            break;
        case 'l':
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_perm(ae, 0777);
            archive_entry_set_symlink(ae, e[i].data);
            break;
        case 'h':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_perm(ae, e[i].mode ? e[i].mode : 0644);
            archive_entry_set_hardlink(ae, e[i].data);
            break;
        case 'c':
            archive_entry_set_filetype(ae, AE_IFCHR);
            archive_entry_set_perm(ae, 0);
            archive_entry_set_rdev(ae, 0);
            break;
        default:
            fail_msg("bad entry type %c", e[i].type);
        }
        if (e[i].xattr != NULL) {
            const char *eq = strchr(e[i].xattr, '=');
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)(eq - e[i].xattr), e[i].xattr);
            archive_entry_xattr_add_entry(ae, name, eq + 1, strlen(eq + 1));
        }
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (len > 0)
            assert_int_equal(archive_write_data(a, e[i].data, len), (la_ssize_t)len);
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    uselocale(saved);
    freelocale(utf8);
}

static void compress(const void *data, size_t len, int filter, int level, struct swm_buf *out)
{
    char opt[32];
    struct archive *a = archive_write_new();
    assert_non_null(a);
    if (filter == 'g') {
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        snprintf(opt, sizeof(opt), "gzip:compression-level=%d", level);
        assert_int_equal(archive_write_set_options(a, opt), ARCHIVE_OK);
    } else {
        assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
    }
    assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
    /* No block padding after the gzip stream. */
    assert_int_equal(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
    assert_int_equal(archive_write_open(a, out, NULL, buf_write, NULL), ARCHIVE_OK);
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, "layer");
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_size(ae, (la_int64_t)len);
    assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
    archive_entry_free(ae);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

void tb_gzip(const void *data, size_t len, int level, struct swm_buf *out)
{
    compress(data, len, 'g', level, out);
}

void tb_zstd(const void *data, size_t len, struct swm_buf *out)
{
    compress(data, len, 'z', 0, out);
}

void tb_sha256(const void *data, size_t len, char hex[65])
{
    unsigned char sum[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(sum, data, len);
    sodium_bin2hex(hex, 65, sum, sizeof(sum));
}

void tb_files_add(struct tb_files *fs, const char *name, const void *data, size_t len)
{
    assert_true(fs->n < sizeof(fs->f) / sizeof(fs->f[0]));
    struct tb_file *f = &fs->f[fs->n++];
    *f = (struct tb_file){.name = strdup(name), .type = 'f'};
    assert_int_equal(swm_buf_append(&f->data, data, len), 0);
}

void tb_files_add_symlink(struct tb_files *fs, const char *name, const char *target)
{
    tb_files_add(fs, name, target, strlen(target));
    fs->f[fs->n - 1].type = 'l';
}

struct swm_buf *tb_files_get(struct tb_files *fs, const char *name)
{
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->f[i].name, name) == 0)
            return &fs->f[i].data;
    return NULL;
}

void tb_files_del(struct tb_files *fs, const char *name)
{
    for (size_t i = 0; i < fs->n; i++) {
        if (strcmp(fs->f[i].name, name) != 0)
            continue;
        free(fs->f[i].name);
        swm_buf_free(&fs->f[i].data);
        memmove(&fs->f[i], &fs->f[i + 1], (fs->n - i - 1) * sizeof(fs->f[0]));
        fs->n--;
        return;
    }
    fail_msg("no file %s", name);
}

void tb_files_write(const struct tb_files *fs, const char *path)
{
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < fs->n; i++) {
        const struct tb_file *f = &fs->f[i];
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, f->name);
        archive_entry_set_mtime(ae, TB_MTIME, 0);
        if (f->type == 'l') {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_perm(ae, 0777);
            archive_entry_set_symlink(ae, (const char *)f->data.data);
        } else {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_perm(ae, 0644);
            archive_entry_set_size(ae, (la_int64_t)f->data.len);
        }
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (f->type == 'f' && f->data.len > 0)
            assert_int_equal(archive_write_data(a, f->data.data, f->data.len),
                             (la_ssize_t)f->data.len);
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

void tb_files_free(struct tb_files *fs)
{
    for (size_t i = 0; i < fs->n; i++) {
        free(fs->f[i].name);
        swm_buf_free(&fs->f[i].data);
    }
    fs->n = 0;
}

char *tb_config(const struct tb_image *img, char id_hex[65])
{
    struct swm_buf b = {0};
    assert_int_equal(swm_buf_printf(&b,
                                    "{\"architecture\":\"amd64\",\"os\":\"linux\","
                                    "\"created\":\"2023-11-14T22:13:20.5Z\",\"comment\":\"%s\","
                                    "\"config\":{%s},\"rootfs\":{\"type\":\"layers\","
                                    "\"diff_ids\":[",
                                    img->comment ? img->comment : "",
                                    img->config_body ? img->config_body : ""),
                     0);
    for (size_t i = 0; i < img->n_layers; i++) {
        char hex[65];
        tb_sha256(img->layers[i].data, img->layers[i].len, hex);
        if (img->bad_diff_id != NULL && i + 1 == img->n_layers)
            assert_int_equal(swm_buf_printf(&b, "%s\"%s\"", i ? "," : "", img->bad_diff_id), 0);
        else
            assert_int_equal(swm_buf_printf(&b, "%s\"sha256:%s\"", i ? "," : "", hex), 0);
    }
    assert_int_equal(swm_buf_printf(&b, "]}}"), 0);
    tb_sha256(b.data, b.len, id_hex);
    return (char *)b.data;
}

static void stored_layer(const struct tb_image *img, size_t i, struct swm_buf *out)
{
    if (img->gzip)
        tb_gzip(img->layers[i].data, img->layers[i].len, 6, out);
    else if (img->zstd)
        tb_zstd(img->layers[i].data, img->layers[i].len, out);
    else
        assert_int_equal(swm_buf_append(out, img->layers[i].data, img->layers[i].len), 0);
}

void tb_docker_save(const struct tb_image *img, struct tb_files *fs, char id_hex[65])
{
    char name[256];
    struct swm_buf manifest = {0};
    char *config = tb_config(img, id_hex);
    snprintf(name, sizeof(name), "%s.json", id_hex);
    tb_files_add(fs, name, config, strlen(config));
    free(config);
    if (img->tag)
        assert_int_equal(swm_buf_printf(&manifest,
                                        "[{\"Config\":\"%s\",\"RepoTags\":[\"%s\"],"
                                        "\"Layers\":[",
                                        name, img->tag),
                         0);
    else
        assert_int_equal(
            swm_buf_printf(&manifest, "[{\"Config\":\"%s\",\"RepoTags\":null,\"Layers\":[", name),
            0);
    for (size_t i = 0; i < img->n_layers; i++) {
        char hex[65];
        struct swm_buf blob = {0};
        tb_sha256(img->layers[i].data, img->layers[i].len, hex);
        /* v1 ids differ from diff_ids in real saves; the index keeps them unique */
        snprintf(name, sizeof(name), "%.60s%04zx/layer.tar", hex, i);
        stored_layer(img, i, &blob);
        tb_files_add(fs, name, blob.data, blob.len);
        swm_buf_free(&blob);
        assert_int_equal(swm_buf_printf(&manifest, "%s\"%s\"", i ? "," : "", name), 0);
    }
    assert_int_equal(swm_buf_printf(&manifest, "]}]"), 0);
    tb_files_add(fs, "manifest.json", manifest.data, manifest.len);
    swm_buf_free(&manifest);
}

void tb_blob(struct tb_files *fs, const void *data, size_t len, char hex[65])
{
    char name[128];
    tb_sha256(data, len, hex);
    snprintf(name, sizeof(name), "blobs/sha256/%s", hex);
    if (tb_files_get(fs, name) == NULL)
        tb_files_add(fs, name, data, len);
}

void tb_oci_layout(const struct tb_image *img, struct tb_files *fs, char id_hex[65])
{
    char hex[65];
    struct swm_buf manifest = {0}, index = {0};
    char *config = tb_config(img, id_hex);
    tb_blob(fs, config, strlen(config), hex);
    assert_int_equal(swm_buf_printf(&manifest,
                                    "{\"schemaVersion\":2,\"mediaType\":\"application/"
                                    "vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":"
                                    "\"application/vnd.oci.image.config.v1+json\",\"digest\":"
                                    "\"sha256:%s\",\"size\":%zu},\"layers\":[",
                                    hex, strlen(config)),
                     0);
    free(config);
    for (size_t i = 0; i < img->n_layers; i++) {
        struct swm_buf blob = {0};
        stored_layer(img, i, &blob);
        tb_blob(fs, blob.data, blob.len, hex);
        assert_int_equal(swm_buf_printf(&manifest,
                                        "%s{\"mediaType\":\"application/"
                                        "vnd.oci.image.layer.v1.tar%s\",\"digest\":\"sha256:%s\","
                                        "\"size\":%zu}",
                                        i ? "," : "",
                                        img->gzip   ? "+gzip"
                                        : img->zstd ? "+zstd"
                                                    : "",
                                        hex, blob.len),
                         0);
        swm_buf_free(&blob);
    }
    assert_int_equal(swm_buf_printf(&manifest, "]}"), 0);
    tb_blob(fs, manifest.data, manifest.len, hex);
    assert_int_equal(swm_buf_printf(&index,
                                    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                                    "\"application/vnd.oci.image.manifest.v1+json\","
                                    "\"digest\":\"sha256:%s\",\"size\":%zu",
                                    hex, manifest.len),
                     0);
    if (img->tag)
        assert_int_equal(swm_buf_printf(&index,
                                        ",\"annotations\":{\"io.containerd.image.name\":\"%s\"}",
                                        img->tag),
                         0);
    assert_int_equal(swm_buf_printf(&index, "}]}"), 0);
    tb_files_add(fs, "index.json", index.data, index.len);
    tb_files_add(fs, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
    swm_buf_free(&manifest);
    swm_buf_free(&index);
}

static struct swm_buf *snap_out;
static size_t snap_root_len;

static int snap_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    const char *rel = path + snap_root_len;
    char t = S_ISDIR(st->st_mode)   ? 'd'
             : S_ISREG(st->st_mode) ? 'f'
             : S_ISLNK(st->st_mode) ? 'l'
             : S_ISCHR(st->st_mode) ? 'c'
                                    : '?';
    assert_int_equal(
        swm_buf_printf(snap_out, "%c %s %lld\n", t, rel, t == 'f' ? (long long)st->st_size : 0LL),
        0);
    return 0;
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tb_snapshot(const char *dir)
{
    struct swm_buf raw = {0}, out = {0};
    char path[4096];
    snap_out = &raw;
    snap_root_len = strlen(dir);
    assert_int_equal(nftw(dir, snap_one, 16, FTW_PHYS), 0);
    /* nftw's order is readdir's; sort it. */
    char *lines[4096];
    size_t n = 0;
    char *save = NULL;
    for (char *l = strtok_r((char *)raw.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        assert_true(n < 4096);
        lines[n++] = l;
    }
    qsort(lines, n, sizeof(lines[0]), cmp_lines);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(swm_buf_printf(&out, "%s\n", lines[i]), 0);
    snprintf(path, sizeof(path), "%s/repositories", dir);
    struct swm_buf meta = {0};
    if (swm_read_file(path, 1 << 20, &meta) == 0 && meta.len > 0)
        assert_int_equal(swm_buf_append(&out, meta.data, meta.len), 0);
    swm_buf_free(&meta);
    swm_buf_free(&raw);
    if (out.data == NULL)
        return strdup("");
    return (char *)out.data;
}

int tb_count(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

char *tb_tmpdir(void)
{
    char tmpl[] = "/tmp/swm-image-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char *real = realpath(tmpl, NULL);
    assert_non_null(real);
    return real;
}

void tb_rmdir(char *path)
{
    if (path == NULL)
        return;
    assert_int_equal(swm_remove_tree(path), 0);
    free(path);
}
