/* Tests of agent/image/: load (docker save and OCI layout), resolve, list,
 * remove, whiteouts, and that a bad tarball leaves the store as it was. */
#define _GNU_SOURCE
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "agent/image/image.h"
#include "common/alloc.h"
#include "common/fs.h"
#include "fixture.h"

struct fx {
    char *root; /* temp dir: the store and the tarballs */
    char store_dir[PATH_MAX];
    struct image_store *s;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct swm_err err = {0};
    fx->root = tb_tmpdir();
    snprintf(fx->store_dir, sizeof(fx->store_dir), "%s/images", fx->root);
    assert_int_equal(image_store_open(fx->store_dir, &fx->s, &err), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    image_store_close(fx->s);
    tb_rmdir(fx->root);
    free(fx);
    return 0;
}

static char *path_in(struct fx *fx, const char *name)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", fx->root, name);
    return path;
}

static bool is_root(void)
{
    return geteuid() == 0;
}

/* ---- layers used by several tests ---- */

static void base_layer(struct swm_buf *out)
{
    const struct tb_entry e[] = {
        {.name = "bin", .type = 'd'},
        {.name = "bin/tool", .type = 'f', .data = "#!tool\n", .mode = 0755},
        {.name = "bin/tool2", .type = 'h', .data = "bin/tool"},
        {.name = "bin/sh", .type = 'l', .data = "tool"},
        {.name = "etc/", .type = 'd'},
        {.name = "etc/motd", .type = 'f', .data = "welcome\n"},
        {.name = "./etc/hostname", .type = 'f', .data = "box\n", .mode = 0600},
        {.name = "home/user", .type = 'd', .mode = 0750, .uid = 1000, .gid = 1000},
        {.name = "home/user/notes", .type = 'f', .data = "n", .uid = 1000, .gid = 1001},
        {.name = "var/www", .type = 'd'},
        {.name = "var/www/index.html", .type = 'f', .data = "old\n"},
        {.name = "var/www/old.html", .type = 'f', .data = "older\n"},
        {.name = "tagged", .type = 'f', .data = "x", .xattr = "user.swarmc=hello"},
    };
    tb_tar(e, sizeof(e) / sizeof(e[0]), out);
}

static void app_layer(struct swm_buf *out, const char *content)
{
    const struct tb_entry e[] = {
        {.name = "app", .type = 'd'},
        {.name = "app/run", .type = 'f', .data = content, .mode = 0755},
    };
    tb_tar(e, sizeof(e) / sizeof(e[0]), out);
}

#define CONFIG_BODY                                                                                \
    "\"Entrypoint\":[\"/bin/tool\"],\"Cmd\":[\"-v\",\"x y\"],"                                     \
    "\"Env\":[\"PATH=/bin\",\"A=b=c\"],\"WorkingDir\":\"/app\",\"User\":\"1000:1000\","            \
    "\"StopSignal\":\"SIGQUIT\",\"Healthcheck\":{\"Test\":[\"CMD-SHELL\",\"true\"],"               \
    "\"Interval\":5000000000,\"Timeout\":2000000000,\"StartPeriod\":1000000000,\"Retries\":4}"

/* Writes a one-image tarball (docker save or OCI) at root/name. */
static char *write_image(struct fx *fx, const char *name, bool oci, const struct tb_image *img,
                         char id_hex[65])
{
    struct tb_files fs = {0};
    if (oci)
        tb_oci_layout(img, &fs, id_hex);
    else
        tb_docker_save(img, &fs, id_hex);
    char *path = path_in(fx, name);
    tb_files_write(&fs, path);
    tb_files_free(&fs);
    return path;
}

static void load_ok(struct fx *fx, const char *path, const char *want_ref)
{
    struct swm_err err = {0};
    char **loaded = NULL;
    int rc = image_load(fx->s, path, &loaded, &err);
    if (rc != 0)
        fail_msg("image_load(%s): %d %s", path, rc, err.msg);
    assert_non_null(loaded);
    assert_non_null(loaded[0]);
    if (want_ref != NULL)
        assert_string_equal(loaded[0], want_ref);
    image_strv_free(loaded);
}

static struct image_config *resolve_ok(struct fx *fx, const char *ref)
{
    struct swm_err err = {0};
    struct image_config *c = NULL;
    int rc = image_resolve(fx->s, ref, &c, &err);
    if (rc != 0)
        fail_msg("image_resolve(%s): %d %s", ref, rc, err.msg);
    return c;
}

static void read_text(const char *dir, const char *rel, char *out, size_t cap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, out, cap - 1);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
}

static void assert_strv(char **v, const char *const *want)
{
    assert_non_null(v);
    size_t i = 0;
    for (; want[i] != NULL; i++) {
        assert_non_null(v[i]);
        assert_string_equal(v[i], want[i]);
    }
    assert_null(v[i]);
}

/* ---- load ---- */

static void load_docker_save_plain_layers(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layers[2] = {{0}};
    char id[65], diff0[65], diff1[65];
    base_layer(&layers[0]);
    app_layer(&layers[1], "run v1\n");
    tb_sha256(layers[0].data, layers[0].len, diff0);
    tb_sha256(layers[1].data, layers[1].len, diff1);
    struct tb_image img = {
        .tag = "test/plain", .layers = layers, .n_layers = 2, .config_body = CONFIG_BODY};
    const char *path = write_image(fx, "plain.tar", false, &img, id);
    load_ok(fx, path, "test/plain:latest");

    struct image_config *c = resolve_ok(fx, "test/plain");
    char want_id[80];
    snprintf(want_id, sizeof(want_id), "sha256:%s", id);
    assert_string_equal(c->id, want_id);
    assert_strv(c->entrypoint, (const char *const[]){"/bin/tool", NULL});
    assert_strv(c->cmd, (const char *const[]){"-v", "x y", NULL});
    assert_strv(c->env, (const char *const[]){"PATH=/bin", "A=b=c", NULL});
    assert_string_equal(c->workdir, "/app");
    assert_string_equal(c->user, "1000:1000");
    assert_string_equal(c->stop_signal, "SIGQUIT");
    assert_strv(c->healthcheck_test, (const char *const[]){"CMD-SHELL", "true", NULL});
    assert_true(c->health_interval_ns == 5000000000LL);
    assert_true(c->health_timeout_ns == 2000000000LL);
    assert_true(c->health_start_period_ns == 1000000000LL);
    assert_int_equal(c->health_retries, 4);
    assert_string_equal(c->os, "linux");
    assert_string_equal(c->architecture, "amd64");
    assert_int_equal(c->n_layers, 2);

    /* Lowest layer first, each under layers/<diff_id hex>. */
    char want[PATH_MAX];
    snprintf(want, sizeof(want), "%s/layers/%s", fx->store_dir, diff0);
    assert_string_equal(c->layer_dirs[0], want);
    snprintf(want, sizeof(want), "%s/layers/%s", fx->store_dir, diff1);
    assert_string_equal(c->layer_dirs[1], want);
    assert_null(c->layer_dirs[2]);

    const char *l0 = c->layer_dirs[0];
    char text[256], path2[PATH_MAX];
    struct stat st, st2;
    read_text(l0, "bin/tool", text, sizeof(text));
    assert_string_equal(text, "#!tool\n");
    read_text(l0, "etc/hostname", text, sizeof(text));
    assert_string_equal(text, "box\n");
    read_text(c->layer_dirs[1], "app/run", text, sizeof(text));
    assert_string_equal(text, "run v1\n");

    /* Modes, owners, times, links and xattrs survive. */
    snprintf(path2, sizeof(path2), "%s/bin/tool", l0);
    assert_int_equal(lstat(path2, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_true(st.st_mtime == TB_MTIME);
    assert_int_equal(st.st_nlink, 2);
    snprintf(path2, sizeof(path2), "%s/bin/tool2", l0);
    assert_int_equal(lstat(path2, &st2), 0);
    assert_true(st.st_ino == st2.st_ino);
    snprintf(path2, sizeof(path2), "%s/bin/sh", l0);
    assert_int_equal(lstat(path2, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    ssize_t n = readlink(path2, text, sizeof(text) - 1);
    assert_int_equal(n, 4);
    text[n] = '\0';
    assert_string_equal(text, "tool");
    snprintf(path2, sizeof(path2), "%s/etc/hostname", l0);
    assert_int_equal(lstat(path2, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    if (is_root()) {
        snprintf(path2, sizeof(path2), "%s/home/user", l0);
        assert_int_equal(lstat(path2, &st), 0);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_gid, 1000);
        assert_int_equal(st.st_mode & 07777, 0750);
        snprintf(path2, sizeof(path2), "%s/home/user/notes", l0);
        assert_int_equal(lstat(path2, &st), 0);
        assert_int_equal(st.st_gid, 1001);
    }
    snprintf(path2, sizeof(path2), "%s/tagged", l0);
    n = lgetxattr(path2, "user.swarmc", text, sizeof(text));
    if (n >= 0 || errno != ENOTSUP) {
        assert_int_equal(n, 5);
        assert_memory_equal(text, "hello", 5);
    }
    image_config_free(c);
    swm_buf_free(&layers[0]);
    swm_buf_free(&layers[1]);
}

static void load_oci_layout_gzip_layers(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layers[2] = {{0}};
    char id[65], diff0[65];
    base_layer(&layers[0]);
    app_layer(&layers[1], "oci\n");
    tb_sha256(layers[0].data, layers[0].len, diff0);
    struct tb_image img = {.tag = "docker.io/library/ocitest:1.0",
                           .layers = layers,
                           .n_layers = 2,
                           .gzip = true,
                           .config_body = "\"Cmd\":[\"sh\"]"};
    const char *path = write_image(fx, "oci.tar", true, &img, id);
    load_ok(fx, path, "ocitest:1.0");

    struct image_config *c = resolve_ok(fx, "docker.io/library/ocitest:1.0");
    assert_strv(c->cmd, (const char *const[]){"sh", NULL});
    assert_null(c->entrypoint);
    assert_null(c->workdir);
    assert_null(c->healthcheck_test);
    assert_int_equal(c->n_layers, 2);
    assert_non_null(strstr(c->layer_dirs[0], diff0));
    char text[64];
    read_text(c->layer_dirs[1], "app/run", text, sizeof(text));
    assert_string_equal(text, "oci\n");
    image_config_free(c);
    c = resolve_ok(fx, "ocitest:1.0");
    image_config_free(c);
    swm_buf_free(&layers[0]);
    swm_buf_free(&layers[1]);
}

static void load_zstd_layers(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layers[2] = {{0}};
    char id[65], text[64];
    base_layer(&layers[0]);
    app_layer(&layers[1], "zstd\n");
    struct tb_image img = {.tag = "zst", .layers = layers, .n_layers = 2, .zstd = true};
    load_ok(fx, write_image(fx, "zstd-oci.tar", true, &img, id), "zst:latest");
    img.tag = "zst:docker";
    load_ok(fx, write_image(fx, "zstd-docker.tar", false, &img, id), "zst:docker");
    struct image_config *c = resolve_ok(fx, "zst");
    read_text(c->layer_dirs[1], "app/run", text, sizeof(text));
    assert_string_equal(text, "zstd\n");
    image_config_free(c);
    swm_buf_free(&layers[0]);
    swm_buf_free(&layers[1]);
}

/* An image with no layers at all (FROM scratch plus metadata). */
static void load_image_without_layers(void **state)
{
    struct fx *fx = *state;
    char id[65];
    struct swm_err err = {0};
    struct tb_image img = {.tag = "empty", .config_body = "\"Cmd\":[\"/x\"]"};
    load_ok(fx, write_image(fx, "empty.tar", false, &img, id), "empty:latest");
    struct image_config *c = resolve_ok(fx, "empty");
    assert_int_equal(c->n_layers, 0);
    assert_null(c->layer_dirs[0]);
    image_config_free(c);
    /* and the store still opens */
    image_store_close(fx->s);
    fx->s = NULL;
    assert_int_equal(image_store_open(fx->store_dir, &fx->s, &err), 0);
    image_config_free(resolve_ok(fx, "empty"));
}

/* An index.json pointing at an image index with several platforms: the
 * host's is taken, named by org.opencontainers.image.ref.name. */
static void load_oci_index_picks_host_platform(void **state)
{
    struct fx *fx = *state;
    struct tb_files fs = {0};
    struct swm_buf layer_a = {0}, layer_b = {0}, gz = {0};
    char hex[65], id_a[65], id_b[65], ma[65], mb[65], idx[65];
    char doc[2048];

    app_layer(&layer_a, "arm\n");
    app_layer(&layer_b, "host\n");
    struct tb_image a = {.layers = &layer_a, .n_layers = 1, .comment = "arm"};
    struct tb_image b = {.layers = &layer_b, .n_layers = 1, .comment = "host"};
    char *ca = tb_config(&a, id_a);
    char *cb = tb_config(&b, id_b);
    tb_blob(&fs, ca, strlen(ca), hex);
    tb_blob(&fs, cb, strlen(cb), hex);
    tb_gzip(layer_a.data, layer_a.len, 1, &gz);
    tb_blob(&fs, gz.data, gz.len, hex);
    snprintf(doc, sizeof(doc),
             "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\"},\"layers\":"
             "[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
             "\"digest\":\"sha256:%s\"}]}",
             id_a, hex);
    tb_blob(&fs, doc, strlen(doc), ma);
    tb_blob(&fs, layer_b.data, layer_b.len, hex);
    snprintf(doc, sizeof(doc),
             "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\"},\"layers\":"
             "[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
             "\"digest\":\"sha256:%s\"}]}",
             id_b, hex);
    tb_blob(&fs, doc, strlen(doc), mb);
    snprintf(doc, sizeof(doc),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
             "\"manifests\":["
             "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":"
             "\"sha256:%s\",\"platform\":{\"os\":\"linux\",\"architecture\":\"%s\"}},"
             "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":"
             "\"sha256:%s\",\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}},"
             "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":"
             "\"sha256:%s\",\"platform\":{\"os\":\"linux\",\"architecture\":\"%s\"}}]}",
#if defined(__x86_64__)
             ma, "arm64", ma, mb, "amd64"
#else
             ma, "not-this-host", ma, mb, "arm64"
#endif
    );
    tb_blob(&fs, doc, strlen(doc), idx);
    snprintf(doc, sizeof(doc),
             "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
             "\"application/vnd.oci.image.index.v1+json\",\"digest\":\"sha256:%s\","
             "\"annotations\":{\"org.opencontainers.image.ref.name\":"
             "\"reg.example.com:5000/multi:v2\"}}]}",
             idx);
    tb_files_add(&fs, "index.json", doc, strlen(doc));
    tb_files_write(&fs, path_in(fx, "multi.tar"));
    load_ok(fx, path_in(fx, "multi.tar"), "reg.example.com:5000/multi:v2");

    struct image_config *c = resolve_ok(fx, "reg.example.com:5000/multi:v2");
    char want[80];
    snprintf(want, sizeof(want), "sha256:%s", id_b);
    assert_string_equal(c->id, want);
    char text[64];
    read_text(c->layer_dirs[0], "app/run", text, sizeof(text));
    assert_string_equal(text, "host\n");
    image_config_free(c);

    /* Only the chosen platform's image was stored. */
    struct image_summary *list = NULL;
    size_t n = 0;
    struct swm_err err = {0};
    assert_int_equal(image_list(fx->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    image_summary_free_array(list, n);
    free(ca);
    free(cb);
    tb_files_free(&fs);
    swm_buf_free(&layer_a);
    swm_buf_free(&layer_b);
    swm_buf_free(&gz);
}

/* Docker 25+: OCI layout plus manifest.json, legacy names as symlinks. */
static void load_docker25_layout_with_symlinks(void **state)
{
    struct fx *fx = *state;
    struct tb_files fs = {0};
    struct swm_buf layer = {0};
    char id[65], hex[65], doc[1024];
    app_layer(&layer, "d25\n");
    struct tb_image img = {.tag = "d25:v", .layers = &layer, .n_layers = 1};
    char *config = tb_config(&img, id);
    tb_blob(&fs, config, strlen(config), hex);
    tb_blob(&fs, layer.data, layer.len, hex);
    char legacy[128];
    snprintf(legacy, sizeof(legacy), "%s/layer.tar", hex);
    char target[128];
    snprintf(target, sizeof(target), "../blobs/sha256/%s", hex);
    tb_files_add_symlink(&fs, legacy, target);
    snprintf(doc, sizeof(doc),
             "[{\"Config\":\"blobs/sha256/%s\",\"RepoTags\":[\"d25:v\"],\"Layers\":[\"%s\"]}]", id,
             legacy);
    tb_files_add(&fs, "manifest.json", doc, strlen(doc));
    snprintf(doc, sizeof(doc), "{\"schemaVersion\":2,\"manifests\":[]}");
    tb_files_add(&fs, "index.json", doc, strlen(doc));
    tb_files_write(&fs, path_in(fx, "d25.tar"));
    load_ok(fx, path_in(fx, "d25.tar"), "d25:v");
    struct image_config *c = resolve_ok(fx, "d25:v");
    char text[64];
    read_text(c->layer_dirs[0], "app/run", text, sizeof(text));
    assert_string_equal(text, "d25\n");
    image_config_free(c);
    free(config);
    tb_files_free(&fs);
    swm_buf_free(&layer);
}

static void load_reports_untagged_images_by_id(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id[65], want[80];
    struct swm_err err = {0};
    char **loaded = NULL;
    app_layer(&layer, "untagged\n");
    struct tb_image img = {.layers = &layer, .n_layers = 1};
    const char *path = write_image(fx, "untagged.tar", false, &img, id);
    assert_int_equal(image_load(fx->s, path, &loaded, &err), 0);
    snprintf(want, sizeof(want), "sha256:%s", id);
    assert_string_equal(loaded[0], want);
    assert_null(loaded[1]);
    image_strv_free(loaded);
    struct image_config *c = resolve_ok(fx, want);
    image_config_free(c);
    swm_buf_free(&layer);
}

struct feeder {
    const char *fifo, *src;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    struct swm_buf data = {0};
    assert_int_equal(swm_read_file(f->src, 64 << 20, &data), 0);
    int fd = open(f->fifo, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (size_t done = 0; done < data.len;) {
        ssize_t n = write(fd, data.data + done, data.len - done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    close(fd);
    swm_buf_free(&data);
    return NULL;
}

/* `swarmc image load -i /dev/stdin`: a pipe can be read only once. */
static void load_from_a_pipe(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id[65];
    app_layer(&layer, "piped\n");
    struct tb_image img = {.tag = "pipe", .layers = &layer, .n_layers = 1, .gzip = true};
    char *src = strdup(write_image(fx, "pipe.tar", true, &img, id));
    char *fifo = strdup(path_in(fx, "fifo"));
    assert_int_equal(mkfifo(fifo, 0600), 0);
    struct feeder f = {.fifo = fifo, .src = src};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, feed, &f), 0);
    load_ok(fx, fifo, "pipe:latest");
    assert_int_equal(pthread_join(t, NULL), 0);
    image_config_free(resolve_ok(fx, "pipe"));
    free(src);
    free(fifo);
    swm_buf_free(&layer);
}

/* ---- whiteouts ---- */

static void whiteouts_become_overlay_whiteouts(void **state)
{
    struct fx *fx = *state;
    if (!is_root())
        skip(); /* mknod and trusted.* xattrs need root */
    struct swm_buf layers[2] = {{0}};
    char id[65], path[PATH_MAX], value[8];
    struct stat st;
    base_layer(&layers[0]);
    const struct tb_entry e[] = {
        {.name = "etc", .type = 'd'},
        {.name = "etc/.wh.motd", .type = 'f', .uid = 5, .gid = 6},
        {.name = ".wh.tagged", .type = 'f'},
        {.name = "var/www/.wh..wh..opq", .type = 'f'},
        {.name = "var/www/index.html", .type = 'f', .data = "new\n"},
        {.name = "new/deep/.wh..wh..opq", .type = 'f'},
        {.name = ".wh..wh.plnk", .type = 'd'},
        {.name = "sneaky", .type = 'f', .data = "s", .xattr = "trusted.overlay.redirect=/etc"},
    };
    tb_tar(e, sizeof(e) / sizeof(e[0]), &layers[1]);
    struct tb_image img = {.tag = "wh", .layers = layers, .n_layers = 2};
    load_ok(fx, write_image(fx, "wh.tar", false, &img, id), "wh:latest");
    struct image_config *c = resolve_ok(fx, "wh");
    const char *top = c->layer_dirs[1];

    snprintf(path, sizeof(path), "%s/etc/motd", top);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_true(st.st_rdev == makedev(0, 0));
    assert_int_equal(st.st_uid, 5);
    assert_int_equal(st.st_gid, 6);
    snprintf(path, sizeof(path), "%s/tagged", top);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
    snprintf(path, sizeof(path), "%s/etc/.wh.motd", top);
    assert_int_equal(lstat(path, &st), -1);
    snprintf(path, sizeof(path), "%s/.wh..wh.plnk", top);
    assert_int_equal(lstat(path, &st), -1);

    snprintf(path, sizeof(path), "%s/var/www", top);
    assert_int_equal(getxattr(path, "trusted.overlay.opaque", value, sizeof(value)), 1);
    assert_int_equal(value[0], 'y');
    snprintf(path, sizeof(path), "%s/var/www/.wh..wh..opq", top);
    assert_int_equal(lstat(path, &st), -1);
    snprintf(path, sizeof(path), "%s/new/deep", top);
    assert_int_equal(getxattr(path, "trusted.overlay.opaque", value, sizeof(value)), 1);
    /* The lower layer is untouched and has no opaque marker. */
    snprintf(path, sizeof(path), "%s/var/www", c->layer_dirs[0]);
    assert_int_equal(getxattr(path, "trusted.overlay.opaque", value, sizeof(value)), -1);
    /* A layer cannot bring its own overlay xattrs. */
    snprintf(path, sizeof(path), "%s/sneaky", top);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(lgetxattr(path, "trusted.overlay.redirect", value, sizeof(value)), -1);
    image_config_free(c);
    swm_buf_free(&layers[0]);
    swm_buf_free(&layers[1]);
}

/* ---- resolve ---- */

static void resolve_by_tag_id_and_prefix(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id[65], ref[128];
    struct swm_err err = {0};
    struct image_config *c = NULL;
    app_layer(&layer, "r\n");
    struct tb_image img = {.tag = "library/res", .layers = &layer, .n_layers = 1};
    load_ok(fx, write_image(fx, "res.tar", false, &img, id), "res:latest");

    const char *refs[] = {"res", "res:latest", "docker.io/library/res",
                          "index.docker.io/library/res:latest"};
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
        image_config_free(resolve_ok(fx, refs[i]));
    snprintf(ref, sizeof(ref), "sha256:%s", id);
    image_config_free(resolve_ok(fx, ref));
    image_config_free(resolve_ok(fx, id));
    snprintf(ref, sizeof(ref), "%.4s", id);
    image_config_free(resolve_ok(fx, ref));
    snprintf(ref, sizeof(ref), "sha256:%.12s", id);
    image_config_free(resolve_ok(fx, ref));

    assert_int_equal(image_resolve(fx->s, "res:other", &c, &err), SWM_ENOTFOUND);
    assert_string_equal(err.msg, "No such image: res:other");
    assert_int_equal(image_resolve(fx->s, "nothere", &c, &err), SWM_ENOTFOUND);
    snprintf(ref, sizeof(ref), "%.3s", id); /* too short for an id, a valid name */
    assert_int_equal(image_resolve(fx->s, ref, &c, &err), SWM_ENOTFOUND);
    assert_int_equal(image_resolve(fx->s, "Res", &c, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "invalid reference format"));
    assert_int_equal(image_resolve(fx->s, "sha256:xyz1", &c, &err), -EINVAL);
    snprintf(ref, sizeof(ref), "res@sha256:%s", id);
    assert_int_equal(image_resolve(fx->s, ref, &c, &err), SWM_ENOTSUP);
    assert_non_null(strstr(err.msg, "digest"));
    assert_null(c);
    swm_buf_free(&layer);
}

static void resolve_refuses_ambiguous_prefix(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id_a[65], id_b[65], comment[32];
    struct swm_err err = {0};
    struct image_config *c = NULL;
    app_layer(&layer, "amb\n");
    struct tb_image a = {.tag = "amb:a", .layers = &layer, .n_layers = 1, .comment = "a"};
    load_ok(fx, write_image(fx, "a.tar", false, &a, id_a), "amb:a");
    /* Find another config whose id shares the first 4 hex digits (about
     * 65536 tries): vary a fixed-width comment in place. */
    snprintf(comment, sizeof(comment), "b#########");
    struct tb_image b = {.tag = "amb:b", .layers = &layer, .n_layers = 1, .comment = comment};
    char *config = tb_config(&b, id_b);
    char *slot = strstr(config, comment);
    for (int i = 0;; i++) {
        assert_true(i < 100000000);
        char digits[16];
        snprintf(digits, sizeof(digits), "%09d", i);
        memcpy(slot + 1, digits, 9);
        tb_sha256(config, strlen(config), id_b);
        if (strncmp(id_a, id_b, 4) == 0 && strncmp(id_a, id_b, 5) != 0) {
            memcpy(comment + 1, digits, 9);
            break;
        }
    }
    free(config);
    load_ok(fx, write_image(fx, "b.tar", false, &b, id_b), "amb:b");
    char ref[80];
    snprintf(ref, sizeof(ref), "%.4s", id_a);
    assert_int_equal(image_resolve(fx->s, ref, &c, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "ambiguous"));
    snprintf(ref, sizeof(ref), "sha256:%.4s", id_a);
    assert_int_equal(image_resolve(fx->s, ref, &c, &err), -EINVAL);
    snprintf(ref, sizeof(ref), "%.5s", id_b);
    c = resolve_ok(fx, ref);
    assert_string_equal(c->id + 7, id_b);
    image_config_free(c);
    swm_buf_free(&layer);
}

/* ---- list, reload, sharing ---- */

static void list_reports_tags_size_and_created(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id[65];
    struct swm_err err = {0};
    app_layer(&layer, "12345\n"); /* 6 bytes of regular file */
    struct tb_image img = {.tag = "lst:1", .layers = &layer, .n_layers = 1};
    load_ok(fx, write_image(fx, "l1.tar", false, &img, id), "lst:1");
    img.tag = "lst:2"; /* same image, second tag */
    load_ok(fx, write_image(fx, "l2.tar", false, &img, id), "lst:2");

    struct image_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(image_list(fx->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id + 7, id);
    assert_strv(list[0].tags, (const char *const[]){"lst:1", "lst:2", NULL});
    assert_true(list[0].size == 6);
    /* "2023-11-14T22:13:20.5Z" */
    assert_true(list[0].created_ns == 1700000000LL * 1000000000LL + 500000000LL);
    image_summary_free_array(list, n);
    swm_buf_free(&layer);
}

static void reload_is_idempotent_and_shares_layers(void **state)
{
    struct fx *fx = *state;
    struct swm_buf base = {0}, app1 = {0}, app2 = {0};
    char id1[65], id2[65], layers_dir[PATH_MAX];
    struct swm_err err = {0};
    base_layer(&base);
    app_layer(&app1, "one\n");
    app_layer(&app2, "two\n");
    struct swm_buf l1[] = {base, app1}, l2[] = {base, app2};
    struct tb_image a = {.tag = "share:1", .layers = l1, .n_layers = 2};
    struct tb_image b = {.tag = "share:2", .layers = l2, .n_layers = 2, .gzip = true};
    char *pa = strdup(write_image(fx, "s1.tar", false, &a, id1));
    snprintf(layers_dir, sizeof(layers_dir), "%s/layers", fx->store_dir);

    load_ok(fx, pa, "share:1");
    assert_int_equal(tb_count(layers_dir), 2);
    char *snap = tb_snapshot(fx->store_dir);
    load_ok(fx, pa, "share:1"); /* again: nothing changes */
    char *snap2 = tb_snapshot(fx->store_dir);
    /* The "loaded" time is kept from the first load, so even the metadata is
     * byte for byte the same. */
    assert_string_equal(snap, snap2);
    free(snap);
    free(snap2);

    load_ok(fx, write_image(fx, "s2.tar", true, &b, id2), "share:2");
    assert_int_equal(tb_count(layers_dir), 3); /* base once, two apps */
    struct image_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(image_list(fx->s, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    image_summary_free_array(list, n);
    free(pa);
    swm_buf_free(&base);
    swm_buf_free(&app1);
    swm_buf_free(&app2);
}

/* ---- bad tarballs leave the store as it was ---- */

enum corruption {
    TRUNCATED,
    NO_MANIFEST,
    BAD_MANIFEST_JSON,
    BAD_CONFIG_JSON,
    CONFIG_DIGEST,
    DIFF_ID,
    MISSING_LAYER,
    DOTDOT,
    ABSOLUTE,
    SYMLINK_ESCAPE,
    HARDLINK_ESCAPE,
    NOT_A_TAR,
    NOT_A_LAYER,
    OCI_BLOB_DIGEST,
    OCI_MISSING_BLOB,
    OCI_BAD_INDEX,
};

static const char *corrupt(struct fx *fx, enum corruption how, const char *outside)
{
    struct tb_files fs = {0};
    struct swm_buf layers[2] = {{0}};
    char id[65], name[128];
    base_layer(&layers[0]);
    struct tb_image img = {.tag = "bad/img", .layers = layers, .n_layers = 2};
    const char *path = path_in(fx, "bad.tar");

    switch (how) {
    case DOTDOT:
    case ABSOLUTE:
    case SYMLINK_ESCAPE:
    case HARDLINK_ESCAPE: {
        char target[PATH_MAX];
        snprintf(target, sizeof(target), "%s/pwned", outside);
        struct tb_entry e[3] = {{.name = "ok", .type = 'f', .data = "fine"}};
        if (how == DOTDOT)
            e[1] = (struct tb_entry){.name = "../x", .type = 'f', .data = "escape"};
        else if (how == ABSOLUTE)
            e[1] = (struct tb_entry){.name = target, .type = 'f', .data = "escape"};
        else if (how == SYMLINK_ESCAPE) {
            e[1] = (struct tb_entry){.name = "evil", .type = 'l', .data = outside};
            e[2] = (struct tb_entry){.name = "evil/pwned", .type = 'f', .data = "escape"};
        } else {
            e[1] = (struct tb_entry){.name = "link", .type = 'h', .data = "../../../etc/passwd"};
        }
        tb_tar(e, how == SYMLINK_ESCAPE ? 3 : 2, &layers[1]);
        break;
    }
    case NOT_A_LAYER:
        swm_buf_append(&layers[1], "this is no tar archive at all", 29);
        break;
    default:
        app_layer(&layers[1], "bad\n");
    }
    if (how == DIFF_ID)
        img.bad_diff_id = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    bool oci = how >= OCI_BLOB_DIGEST;
    if (oci) {
        img.gzip = true;
        tb_oci_layout(&img, &fs, id);
    } else {
        tb_docker_save(&img, &fs, id);
    }

    switch (how) {
    case NO_MANIFEST:
        tb_files_del(&fs, "manifest.json");
        break;
    case BAD_MANIFEST_JSON: {
        struct swm_buf *m = tb_files_get(&fs, "manifest.json");
        m->len = m->len / 2;
        break;
    }
    case BAD_CONFIG_JSON: {
        /* Valid name for its content, but the content is not JSON. */
        snprintf(name, sizeof(name), "%s.json", id);
        tb_files_del(&fs, name);
        const char *junk = "{\"rootfs\": oops}";
        char hex[65], manifest[512];
        tb_sha256(junk, strlen(junk), hex);
        snprintf(name, sizeof(name), "%s.json", hex);
        tb_files_add(&fs, name, junk, strlen(junk));
        snprintf(manifest, sizeof(manifest), "[{\"Config\":\"%s\",\"RepoTags\":[],\"Layers\":[]}]",
                 name);
        tb_files_del(&fs, "manifest.json");
        tb_files_add(&fs, "manifest.json", manifest, strlen(manifest));
        break;
    }
    case CONFIG_DIGEST: {
        snprintf(name, sizeof(name), "%s.json", id);
        struct swm_buf *cfg = tb_files_get(&fs, name);
        cfg->data[cfg->len - 3] = ' '; /* still JSON, another digest */
        break;
    }
    case MISSING_LAYER:
        tb_files_del(&fs, fs.f[2].name); /* [0] config, [1] layer 1, [2] layer 2 */
        break;
    case OCI_BLOB_DIGEST: {
        /* Another gzip header OS byte: same size, same tar, same diff_id,
         * another blob digest. */
        snprintf(name, sizeof(name), "blobs/sha256/");
        for (size_t i = 0; i < fs.n; i++) {
            struct swm_buf *d = &fs.f[i].data;
            if (d->len > 10 && d->data[0] == 0x1f && d->data[1] == 0x8b && i == 2) {
                d->data[9] ^= 1;
                break;
            }
        }
        break;
    }
    case OCI_MISSING_BLOB:
        tb_files_del(&fs, fs.f[1].name); /* [0] config, [1] layer 1 */
        break;
    case OCI_BAD_INDEX: {
        struct swm_buf *m = tb_files_get(&fs, "index.json");
        m->data[0] = '[';
        break;
    }
    default:
        break;
    }

    if (how == NOT_A_TAR) {
        assert_int_equal(swm_write_file_atomic(path, "hello, world\n", 13, 0644), 0);
    } else {
        tb_files_write(&fs, path);
    }
    if (how == TRUNCATED) {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(truncate(path, st.st_size / 2), 0);
    }
    tb_files_free(&fs);
    swm_buf_free(&layers[0]);
    swm_buf_free(&layers[1]);
    return path;
}

static void bad_tarballs_fail_cleanly(void **state)
{
    struct fx *fx = *state;
    static const struct {
        enum corruption how;
        const char *msg[3]; /* substrings of the error */
    } cases[] = {
        {TRUNCATED, {"image load: ", "bad.tar", "truncated"}},
        {NO_MANIFEST, {"no manifest.json or index.json"}},
        {BAD_MANIFEST_JSON, {"manifest.json: invalid JSON"}},
        {BAD_CONFIG_JSON, {"image load: config ", ".json: invalid JSON"}},
        {CONFIG_DIGEST, {"digest mismatch (want sha256:"}},
        {DIFF_ID,
         {"image load: layer 2 of bad/img:latest",
          "diff_id mismatch (want sha256:0000000000000000000000000000000000000000000000000000000000"
          "000000, got sha256:"}},
        {MISSING_LAYER, {"manifest.json: layer", "is missing from the tarball"}},
        {DOTDOT, {"layer 2 of bad/img:latest", "\"../x\"", "escapes the layer"}},
        {ABSOLUTE, {"layer 2 of bad/img:latest", "absolute path"}},
        {SYMLINK_ESCAPE, {"layer 2 of bad/img:latest", "evil/pwned"}},
        {HARDLINK_ESCAPE, {"hard link \"link\"", "escapes the layer"}},
        {NOT_A_TAR, {"bad.tar: not a tar archive"}},
        {NOT_A_LAYER, {"layer 2 of bad/img:latest", "not a valid tar archive"}},
        {OCI_BLOB_DIGEST, {"layer 2 of bad/img:latest", "blob digest mismatch"}},
        {OCI_MISSING_BLOB, {"blob blobs/sha256/", "is missing"}},
        {OCI_BAD_INDEX, {"index.json: invalid JSON"}},
    };
    /* Something in the store already, to see that it stays as it was. */
    struct swm_buf layer = {0};
    char id[65];
    app_layer(&layer, "good\n");
    struct tb_image good = {.tag = "good", .layers = &layer, .n_layers = 1};
    load_ok(fx, write_image(fx, "good.tar", false, &good, id), "good:latest");
    swm_buf_free(&layer);
    char *outside = strdup(path_in(fx, "outside"));
    assert_int_equal(mkdir(outside, 0755), 0);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if ((cases[i].how == SYMLINK_ESCAPE || cases[i].how == HARDLINK_ESCAPE) && !is_root())
            continue;
        char *before = tb_snapshot(fx->store_dir);
        const char *path = corrupt(fx, cases[i].how, outside);
        struct swm_err err = {0};
        char **loaded = (char **)0x1;
        int rc = image_load(fx->s, path, &loaded, &err);
        if (rc >= 0)
            fail_msg("case %zu: loaded a bad tarball", i);
        assert_int_equal(rc, err.code);
        assert_true(loaded == (char **)0x1); /* untouched on failure */
        assert_null(strchr(err.msg, '\n'));
        if (getenv("SWM_TEST_VERBOSE") != NULL)
            print_message("case %zu: %s\n", i, err.msg);
        for (size_t k = 0; k < 3 && cases[i].msg[k] != NULL; k++)
            if (strstr(err.msg, cases[i].msg[k]) == NULL)
                fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg[k]);
        char *after = tb_snapshot(fx->store_dir);
        if (strcmp(before, after) != 0)
            fail_msg("case %zu (%s): store changed:\n%s\n---\n%s", i, err.msg, before, after);
        free(before);
        free(after);
        assert_int_equal(tb_count(outside), 0);
        struct stat st;
        assert_int_equal(stat(path_in(fx, "x"), &st), -1);
    }
    image_config_free(resolve_ok(fx, "good"));
    free(outside);
}

/* ---- remove ---- */

struct usage {
    const char *busy; /* image id in use, or NULL */
    int calls;
    char last[80];
};

static bool in_use(const char *id, void *arg)
{
    struct usage *u = arg;
    u->calls++;
    snprintf(u->last, sizeof(u->last), "%s", id);
    return u->busy != NULL && strcmp(u->busy, id) == 0;
}

static void remove_refuses_images_in_use(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id[65], full[80];
    struct swm_err err = {0};
    app_layer(&layer, "busy\n");
    struct tb_image img = {.tag = "busy", .layers = &layer, .n_layers = 1};
    load_ok(fx, write_image(fx, "busy.tar", false, &img, id), "busy:latest");
    snprintf(full, sizeof(full), "sha256:%s", id);
    struct usage u = {.busy = full};
    char *before = tb_snapshot(fx->store_dir);

    assert_int_equal(image_remove(fx->s, "busy", in_use, &u, &err), SWM_EINUSE);
    assert_non_null(strstr(err.msg, "in use"));
    assert_int_equal(u.calls, 1);
    assert_string_equal(u.last, full);
    assert_int_equal(image_remove(fx->s, id, in_use, &u, &err), SWM_EINUSE);
    char *after = tb_snapshot(fx->store_dir);
    assert_string_equal(before, after);
    image_config_free(resolve_ok(fx, "busy"));

    u.busy = NULL;
    assert_int_equal(image_remove(fx->s, "busy", in_use, &u, &err), 0);
    assert_int_equal(image_remove(fx->s, "busy", in_use, &u, &err), SWM_ENOTFOUND);
    free(before);
    free(after);
    swm_buf_free(&layer);
}

static void remove_tag_keeps_image_with_other_tags(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id[65], path[PATH_MAX];
    struct swm_err err = {0};
    struct stat st;
    app_layer(&layer, "tags\n");
    struct tb_image img = {.tag = "t:1", .layers = &layer, .n_layers = 1};
    load_ok(fx, write_image(fx, "t1.tar", false, &img, id), "t:1");
    img.tag = "t:2";
    load_ok(fx, write_image(fx, "t2.tar", false, &img, id), "t:2");
    img.tag = "t:3";
    load_ok(fx, write_image(fx, "t3.tar", false, &img, id), "t:3");
    struct usage u = {0};
    snprintf(u.last, sizeof(u.last), "none");
    char full[80];
    snprintf(full, sizeof(full), "sha256:%s", id);
    u.busy = full; /* untagging is fine while in use */

    assert_int_equal(image_remove(fx->s, "t:1", in_use, &u, &err), 0);
    assert_int_equal(image_remove(fx->s, "t:1", in_use, &u, &err), SWM_ENOTFOUND);
    image_config_free(resolve_ok(fx, "t:2"));
    assert_int_equal(image_remove(fx->s, "t:2", in_use, &u, &err), 0);
    /* The last tag takes the image with it, so now in_use matters. */
    assert_int_equal(image_remove(fx->s, "t:3", in_use, &u, &err), SWM_EINUSE);
    u.busy = NULL;
    assert_int_equal(image_remove(fx->s, "t:3", in_use, &u, &err), 0);
    assert_int_equal(image_remove(fx->s, full, NULL, NULL, &err), SWM_ENOTFOUND);

    snprintf(path, sizeof(path), "%s/layers", fx->store_dir);
    assert_int_equal(tb_count(path), 0);
    snprintf(path, sizeof(path), "%s/configs/%s.json", fx->store_dir, id);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof(path), "%s/tmp", fx->store_dir);
    assert_int_equal(tb_count(path), 0);
    swm_buf_free(&layer);
}

static void remove_by_id_keeps_shared_layers(void **state)
{
    struct fx *fx = *state;
    struct swm_buf base = {0}, app1 = {0}, app2 = {0};
    char id1[65], id2[65], path[PATH_MAX];
    struct swm_err err = {0};
    base_layer(&base);
    app_layer(&app1, "one\n");
    app_layer(&app2, "two\n");
    struct swm_buf l1[] = {base, app1}, l2[] = {base, app2};
    struct tb_image a = {.tag = "sh:1", .layers = l1, .n_layers = 2};
    struct tb_image b = {.tag = "sh:2", .layers = l2, .n_layers = 2};
    load_ok(fx, write_image(fx, "a.tar", false, &a, id1), "sh:1");
    a.tag = "sh:also1";
    load_ok(fx, write_image(fx, "a2.tar", false, &a, id1), "sh:also1");
    load_ok(fx, write_image(fx, "b.tar", false, &b, id2), "sh:2");
    struct image_config *cb = resolve_ok(fx, "sh:2");

    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.8s", id1);
    assert_int_equal(image_remove(fx->s, prefix, NULL, NULL, &err), 0);
    struct image_config *c = NULL;
    assert_int_equal(image_resolve(fx->s, "sh:1", &c, &err), SWM_ENOTFOUND);
    assert_int_equal(image_resolve(fx->s, "sh:also1", &c, &err), SWM_ENOTFOUND);

    snprintf(path, sizeof(path), "%s/layers", fx->store_dir);
    assert_int_equal(tb_count(path), 2); /* base and app2 */
    for (size_t i = 0; i < cb->n_layers; i++) {
        struct stat st;
        assert_int_equal(stat(cb->layer_dirs[i], &st), 0);
    }
    char text[64];
    read_text(cb->layer_dirs[0], "etc/motd", text, sizeof(text));
    assert_string_equal(text, "welcome\n");
    image_config_free(cb);
    swm_buf_free(&base);
    swm_buf_free(&app1);
    swm_buf_free(&app2);
}

/* ---- reopen ---- */

static void reopen_keeps_images_and_sweeps_garbage(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id[65], path[PATH_MAX];
    struct swm_err err = {0};
    struct image_store *other = NULL;
    app_layer(&layer, "persist\n");
    struct tb_image img = {.tag = "keep", .layers = &layer, .n_layers = 1};
    load_ok(fx, write_image(fx, "keep.tar", false, &img, id), "keep:latest");

    /* One process per store. */
    assert_int_equal(image_store_open(fx->store_dir, &other, &err), -EBUSY);
    assert_null(other);
    char *before = tb_snapshot(fx->store_dir);
    image_store_close(fx->s);
    fx->s = NULL;

    /* What a crash mid-load or mid-remove leaves. */
    snprintf(path, sizeof(path), "%s/layers/%064d", fx->store_dir, 0);
    assert_int_equal(swm_mkdir_p(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/layers/junk", fx->store_dir);
    assert_int_equal(swm_mkdir_p(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/tmp/load-123456/abc", fx->store_dir);
    assert_int_equal(swm_mkdir_p(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/configs/%064d.json", fx->store_dir, 1);
    assert_int_equal(swm_write_file_atomic(path, "{}", 2, 0600), 0);

    assert_int_equal(image_store_open(fx->store_dir, &fx->s, &err), 0);
    char *after = tb_snapshot(fx->store_dir);
    assert_string_equal(before, after);
    image_config_free(resolve_ok(fx, "keep"));
    free(before);
    free(after);
    swm_buf_free(&layer);
}

static void open_rejects_corrupt_metadata(void **state)
{
    struct fx *fx = *state;
    char path[PATH_MAX];
    struct swm_err err = {0};
    image_store_close(fx->s);
    fx->s = NULL;
    snprintf(path, sizeof(path), "%s/repositories", fx->store_dir);
    const char *bad = "{\"version\":1,\"repositories\":{\"a:latest\":\"sha256:00\"},"
                      "\"images\":{},\"layers\":{}}";
    assert_int_equal(swm_write_file_atomic(path, bad, strlen(bad), 0600), 0);
    assert_int_equal(image_store_open(fx->store_dir, &fx->s, &err), SWM_ECORRUPT);
    assert_non_null(strstr(err.msg, "repositories"));
    assert_int_equal(swm_write_file_atomic(path, "{", 1, 0600), 0);
    assert_int_equal(image_store_open(fx->store_dir, &fx->s, &err), SWM_ECORRUPT);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(image_store_open(fx->store_dir, &fx->s, &err), 0);
}

/* ---- concurrency ---- */

struct loader {
    struct image_store *s;
    const char *path;
    int rc;
    struct swm_err err;
};

static void *load_thread(void *arg)
{
    struct loader *l = arg;
    char **loaded = NULL;
    l->rc = image_load(l->s, l->path, &loaded, &l->err);
    image_strv_free(loaded);
    return NULL;
}

static void concurrent_loads_agree(void **state)
{
    struct fx *fx = *state;
    struct swm_buf base = {0}, app1 = {0}, app2 = {0};
    char id1[65], id2[65], path[PATH_MAX];
    struct swm_err err = {0};
    base_layer(&base);
    app_layer(&app1, "c1\n");
    app_layer(&app2, "c2\n");
    struct swm_buf l1[] = {base, app1}, l2[] = {base, app2};
    struct tb_image a = {.tag = "cc:1", .layers = l1, .n_layers = 2};
    struct tb_image b = {.tag = "cc:2", .layers = l2, .n_layers = 2, .gzip = true};
    char *pa = strdup(write_image(fx, "c1.tar", false, &a, id1));
    char *pb = strdup(write_image(fx, "c2.tar", true, &b, id2));

    mode_t mask = umask(027);
    struct loader l[6];
    pthread_t t[6];
    for (int i = 0; i < 6; i++) {
        l[i] = (struct loader){.s = fx->s, .path = i % 2 ? pb : pa};
        assert_int_equal(pthread_create(&t[i], NULL, load_thread, &l[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        if (l[i].rc != 0)
            fail_msg("loader %d: %s", i, l[i].err.msg);
    }
    assert_int_equal(umask(mask), 027); /* libarchive's umask dance left it alone */
    struct image_summary *list = NULL;
    size_t n = 0;
    assert_int_equal(image_list(fx->s, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    image_summary_free_array(list, n);
    snprintf(path, sizeof(path), "%s/layers", fx->store_dir);
    assert_int_equal(tb_count(path), 3);
    snprintf(path, sizeof(path), "%s/tmp", fx->store_dir);
    assert_int_equal(tb_count(path), 0);
    image_config_free(resolve_ok(fx, "cc:1"));
    image_config_free(resolve_ok(fx, "cc:2"));
    free(pa);
    free(pb);
    swm_buf_free(&base);
    swm_buf_free(&app1);
    swm_buf_free(&app2);
}

/* ---- allocation failures ---- */

static void survives_allocation_failures(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layers[2] = {{0}};
    char id[65];
    base_layer(&layers[0]);
    app_layer(&layers[1], "oom\n");
    struct tb_image img = {
        .tag = "oom:1", .layers = layers, .n_layers = 2, .gzip = true, .config_body = CONFIG_BODY};
    char *path = strdup(write_image(fx, "oom.tar", true, &img, id));
    char *before = tb_snapshot(fx->store_dir);
    long n;
    for (n = 0;; n++) {
        struct swm_err err = {0};
        char **loaded = NULL;
        swm_alloc_fail_after(n);
        int rc = image_load(fx->s, path, &loaded, &err);
        swm_alloc_fail_reset();
        if (rc == 0) {
            image_strv_free(loaded);
            break;
        }
        if (rc != -ENOMEM)
            fail_msg("allocation %ld: %d %s", n, rc, err.msg);
        char *after = tb_snapshot(fx->store_dir);
        if (strcmp(before, after) != 0)
            fail_msg("allocation %ld: store changed", n);
        free(after);
        assert_true(n < 100000);
    }
    assert_true(n > 10);

    for (n = 0;; n++) {
        struct swm_err err = {0};
        struct image_config *c = NULL;
        struct image_summary *list = NULL;
        size_t count = 0;
        swm_alloc_fail_after(n);
        int rc = image_resolve(fx->s, "oom:1", &c, &err);
        int rc2 = image_list(fx->s, &list, &count, &err);
        swm_alloc_fail_reset();
        image_config_free(c);
        image_summary_free_array(list, count);
        if (rc == 0 && rc2 == 0)
            break;
        assert_true(rc == 0 || rc == -ENOMEM);
        assert_true(rc2 == 0 || rc2 == -ENOMEM);
        assert_true(n < 100000);
    }

    char *loaded_snap = tb_snapshot(fx->store_dir);
    for (n = 0;; n++) {
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        int rc = image_remove(fx->s, "oom:1", NULL, NULL, &err);
        swm_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        char *after = tb_snapshot(fx->store_dir);
        assert_string_equal(loaded_snap, after);
        free(after);
        assert_true(n < 100000);
    }
    const char *subdirs[] = {"layers", "configs", "tmp"};
    for (size_t i = 0; i < 3; i++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/%s", fx->store_dir, subdirs[i]);
        assert_int_equal(tb_count(dir), 0);
    }
    free(loaded_snap);
    free(before);
    free(path);
    swm_buf_free(&layers[0]);
    swm_buf_free(&layers[1]);
}

/* ---- names ---- */

static void utf8_names_survive(void **state)
{
    struct fx *fx = *state;
    struct swm_buf layer = {0};
    char id[65], path[PATH_MAX];
    struct stat st;
    const struct tb_entry e[] = {
        {.name = "certs", .type = 'd'},
        {.name = "certs/F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.crt", .type = 'f', .data = "c"},
    };
    tb_tar(e, 2, &layer);
    struct tb_image img = {.tag = "utf8", .layers = &layer, .n_layers = 1};
    load_ok(fx, write_image(fx, "utf8.tar", false, &img, id), "utf8:latest");
    struct image_config *c = resolve_ok(fx, "utf8");
    snprintf(path, sizeof(path), "%s/certs/F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.crt",
             c->layer_dirs[0]);
    assert_int_equal(stat(path, &st), 0);
    image_config_free(c);
    swm_buf_free(&layer);
}

/* ---- the test image script ---- */

static void script_images_load(void **state)
{
    struct fx *fx = *state;
    static const struct {
        const char *flags, *tag, *want;
        bool whiteout, health;
    } variants[] = {
        {"", "", "busybox:latest", false, false},
        {"--oci --whiteout", "swarmc/bb:oci", "swarmc/bb:oci", true, false},
        {"--docker25 --gzip --healthcheck 'wget -q -O- http://localhost/'", "localhost:5000/bb:25",
         "localhost:5000/bb:25", false, true},
        {"--whiteout --gzip", "bb:wh", "bb:wh", true, false},
    };
    struct stat st;
    if (stat(SWM_TEST_IMAGES_DIR "/make-busybox-image.sh", &st) < 0 ||
        access("/bin/busybox", X_OK) < 0)
        skip();
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        if (variants[i].whiteout && !is_root())
            continue;
        char cmd[1024], path[PATH_MAX];
        const char *tar = path_in(fx, "bb.tar");
        snprintf(cmd, sizeof(cmd), "%s/make-busybox-image.sh %s %s %s >/dev/null",
                 SWM_TEST_IMAGES_DIR, variants[i].flags, tar, variants[i].tag);
        assert_int_equal(system(cmd), 0);
        load_ok(fx, tar, variants[i].want);
        struct image_config *c = resolve_ok(fx, variants[i].want);
        assert_strv(c->cmd, (const char *const[]){"sh", NULL});
        assert_non_null(c->env);
        assert_memory_equal(c->env[0], "PATH=", 5);
        assert_int_equal(c->n_layers, variants[i].whiteout ? 2 : 1);
        snprintf(path, sizeof(path), "%s/bin/busybox", c->layer_dirs[0]);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode) && (st.st_mode & 0111));
        snprintf(path, sizeof(path), "%s/bin/sh", c->layer_dirs[0]);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        snprintf(path, sizeof(path), "%s/tmp", c->layer_dirs[0]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 01777);
        if (variants[i].whiteout) {
            char value[4];
            snprintf(path, sizeof(path), "%s/etc/motd", c->layer_dirs[1]);
            assert_int_equal(lstat(path, &st), 0);
            assert_true(S_ISCHR(st.st_mode));
            snprintf(path, sizeof(path), "%s/var/www", c->layer_dirs[1]);
            assert_int_equal(getxattr(path, "trusted.overlay.opaque", value, sizeof(value)), 1);
        }
        if (variants[i].health) {
            assert_non_null(c->healthcheck_test);
            assert_string_equal(c->healthcheck_test[0], "CMD-SHELL");
            assert_true(c->health_interval_ns == 2000000000LL);
            assert_int_equal(c->health_retries, 3);
        } else {
            assert_null(c->healthcheck_test);
        }
        image_config_free(c);
    }
}

int main(void)
{
    /* jansson's allocations stay out of the seam: its parser reports some
     * allocation failures as syntax errors, which no caller can tell apart. */
    if (getenv("SWM_TEST_FILTER") != NULL) /* e.g. SWM_TEST_FILTER=remove_* */
        cmocka_set_test_filter(getenv("SWM_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(load_docker_save_plain_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(load_oci_layout_gzip_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(load_zstd_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(load_image_without_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(load_oci_index_picks_host_platform, setup, teardown),
        cmocka_unit_test_setup_teardown(load_docker25_layout_with_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(load_reports_untagged_images_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(load_from_a_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(whiteouts_become_overlay_whiteouts, setup, teardown),
        cmocka_unit_test_setup_teardown(resolve_by_tag_id_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(resolve_refuses_ambiguous_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(list_reports_tags_size_and_created, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_is_idempotent_and_shares_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_tarballs_fail_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_refuses_images_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_tag_keeps_image_with_other_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_by_id_keeps_shared_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_images_and_sweeps_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(open_rejects_corrupt_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_loads_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(survives_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(utf8_names_survive, setup, teardown),
        cmocka_unit_test_setup_teardown(script_images_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
