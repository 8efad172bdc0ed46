/* Unpacking one layer blob into a directory an overlay mount can use as a
 * lower dir (DESIGN.md §7).
 *
 * Three libarchive readers are chained so that the blob is read once:
 *
 *   outer tarball entry --read_blob--> raw (decompresses) --read_tar--> tar
 *
 * read_blob hashes the bytes as stored (the blob digest of OCI layouts),
 * read_tar hashes the uncompressed tar (the config's diff_id), and the tar
 * reader's entries go to archive_write_disk.
 *
 * Entry names are checked here before libarchive sees them: absolute names
 * and ".." components are refused, and the name is rewritten to an absolute
 * path under the layer dir. That is why ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS
 * is not passed (every path it would see is absolute by construction);
 * SECURE_SYMLINKS (nothing is written through a symlink, so a layer cannot
 * plant "etc -> /etc" and then write "etc/passwd") and SECURE_NODOTDOT stay
 * on. ARCHIVE_EXTRACT_UNLINK stays off: with it, libarchive "fixes" a
 * symlink in the middle of a path by deleting it, where we want the layer
 * refused. The store dir is canonical (image_store_open), so the symlink check,
 * which walks the whole path, does not trip over the store's own location.
 */
#define _GNU_SOURCE
#include "agent/image/internal.h"

#include "common/alloc.h"

#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)

#define UNPACK_FLAGS                                                                               \
    (ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR | \
     ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT)

#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META_PREFIX ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"
#define OVERLAY_XATTR_PREFIX "trusted.overlay."
#define OVERLAY_OPAQUE_XATTR "trusted.overlay.opaque"

struct layer_stream {
    struct archive *blob; /* the outer tarball, positioned at the blob */
    struct archive *raw;  /* decompressor over the blob */
    crypto_hash_sha256_state blob_sha, diff_sha;
    unsigned char *blob_buf, *tar_buf;
};

struct unpack {
    struct archive *tar, *disk;
    const char *dest;
    int root_fd;
    int64_t size;
    char path[PATH_MAX], link[PATH_MAX];
};

static la_ssize_t read_blob(struct archive *a, void *arg, const void **buf)
{
    struct layer_stream *ls = arg;
    la_ssize_t n = archive_read_data(ls->blob, ls->blob_buf, BUF_SIZE);
    if (n < 0) {
        archive_set_error(a, EIO, "%s", archive_error_string(ls->blob));
        return ARCHIVE_FATAL;
    }
    crypto_hash_sha256_update(&ls->blob_sha, ls->blob_buf, (unsigned long long)n);
    *buf = ls->blob_buf;
    return n;
}

static la_ssize_t read_tar(struct archive *a, void *arg, const void **buf)
{
    struct layer_stream *ls = arg;
    la_ssize_t n = archive_read_data(ls->raw, ls->tar_buf, BUF_SIZE);
    if (n < 0) {
        archive_set_error(a, EIO, "%s", archive_error_string(ls->raw));
        return ARCHIVE_FATAL;
    }
    crypto_hash_sha256_update(&ls->diff_sha, ls->tar_buf, (unsigned long long)n);
    *buf = ls->tar_buf;
    return n;
}

/* Lexically cleans a name from a layer into "a/b/c" ("" for the root).
 * Refuses absolute names and any "..", which a well-formed layer never has. */
static int clean_rel(const char *name, char *out, struct swm_err *err)
{
    if (name[0] == '/')
        return swm_err_set(err, -EPERM, "entry \"%.200s\": absolute path", name);
    size_t k = 0;
    const char *p = name;
    while (*p != '\0') {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return swm_err_set(err, -EPERM, "entry \"%.200s\": path escapes the layer (\"..\")",
                               name);
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (k + (k > 0) + n >= PATH_MAX)
                return swm_err_set(err, -ENAMETOOLONG, "entry \"%.200s\": name too long", name);
            if (k > 0)
                out[k++] = '/';
            memcpy(out + k, p, n);
            k += n;
        }
        p = *end == '/' ? end + 1 : end;
    }
    out[k] = '\0';
    return 0;
}

/* dest + "/" + rel, or dest itself for the root. */
static int join(const struct unpack *u, const char *rel, char *out, struct swm_err *err)
{
    int n = rel[0] == '\0' ? snprintf(out, PATH_MAX, "%s", u->dest)
                           : snprintf(out, PATH_MAX, "%s/%s", u->dest, rel);
    if (n < 0 || n >= PATH_MAX)
        return swm_err_set(err, -ENAMETOOLONG, "entry \"%.200s\": name too long", rel);
    return 0;
}

/* A layer must not smuggle in overlayfs' own xattrs (redirects, metacopy,
 * opaque markers that its whiteouts did not ask for). */
static int strip_overlay_xattrs(struct archive_entry *e)
{
    const char *name;
    const void *value;
    size_t size;
    bool found = false;

    int n = archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
        found = found || strncmp(name, OVERLAY_XATTR_PREFIX, strlen(OVERLAY_XATTR_PREFIX)) == 0;
    if (!found)
        return 0;

    struct kept {
        char *name;
        void *value;
        size_t size;
    } *kept = swm_calloc((size_t)n, sizeof(*kept));
    if (kept == NULL)
        return -ENOMEM;
    int k = 0, rc = 0;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (strncmp(name, OVERLAY_XATTR_PREFIX, strlen(OVERLAY_XATTR_PREFIX)) == 0)
            continue;
        kept[k].name = swm_strdup(name);
        kept[k].value = swm_malloc(size);
        kept[k].size = size;
        if (kept[k].name == NULL || kept[k].value == NULL)
            rc = -ENOMEM;
        else
            memcpy(kept[k].value, value, size);
        k++;
    }
    if (rc == 0) {
        archive_entry_xattr_clear(e);
        for (int i = 0; i < k; i++)
            archive_entry_xattr_add_entry(e, kept[i].name, kept[i].value, kept[i].size);
    }
    for (int i = 0; i < k; i++) {
        swm_free(kept[i].name);
        swm_free(kept[i].value);
    }
    swm_free(kept);
    return rc;
}

static int disk_error(struct unpack *u, const char *rel, struct swm_err *err)
{
    const char *msg = archive_error_string(u->disk);
    int code = archive_errno(u->disk) > 0 ? -archive_errno(u->disk) : -EIO;
    if (msg == NULL)
        msg = "cannot write it";
    /* libarchive names the staging path; the entry name says it better. */
    const char *at = strstr(msg, u->dest);
    size_t dest_len = strlen(u->dest);
    if (at != NULL && at[dest_len] == '/')
        return swm_err_set(err, code, "entry \"%.200s\": %.*s%.200s", rel[0] ? rel : ".",
                           (int)(at - msg), msg, at + dest_len + 1);
    return swm_err_set(err, code, "entry \"%.200s\": %.200s", rel[0] ? rel : ".", msg);
}

/* ".wh..wh..opq" in dir D: D hides everything lower layers have in it.
 * Walks to D without following symlinks (an earlier entry of this layer
 * could be a symlink pointing anywhere) and creates missing dirs. */
static int mark_opaque(struct unpack *u, const char *dir, struct swm_err *err)
{
    char comp[NAME_MAX + 1];
    int fd = openat(u->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *p = dir;
    while (fd >= 0 && *p != '\0') {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n > NAME_MAX) {
            close(fd);
            errno = ENAMETOOLONG;
            fd = -1;
            break;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && mkdirat(fd, comp, 0755) == 0)
            next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        close(fd);
        errno = saved;
        fd = next;
        p = *end == '/' ? end + 1 : end;
    }
    if (fd < 0)
        return swm_err_set(err, -errno, "opaque whiteout in \"%.200s\": %s", dir[0] ? dir : ".",
                           errno == ELOOP ? "directory is a symlink" : strerror(errno));
    int rc = fsetxattr(fd, OVERLAY_OPAQUE_XATTR, "y", 1, 0) < 0 ? -errno : 0;
    close(fd);
    if (rc < 0)
        return swm_err_set(err, rc, "opaque whiteout in \"%.200s\": cannot set %s: %s",
                           dir[0] ? dir : ".", OVERLAY_OPAQUE_XATTR, strerror(-rc));
    return 0;
}

/* OCI/Docker whiteouts to overlayfs form: ".wh.NAME" becomes a 0/0 character
 * device NAME (with the whiteout's owner and time), ".wh..wh..opq" an opaque
 * xattr on its dir; other ".wh..wh." names are AUFS bookkeeping and dropped. */
static int whiteout(struct unpack *u, struct archive_entry *e, const char *rel, const char *base,
                    struct swm_err *err)
{
    char target[PATH_MAX];
    size_t dir_len = (size_t)(base - rel);
    snprintf(target, sizeof(target), "%.*s", (int)(dir_len > 0 ? dir_len - 1 : 0), rel);

    if (strcmp(base, WHITEOUT_OPAQUE) == 0)
        return mark_opaque(u, target, err);
    if (strncmp(base, WHITEOUT_META_PREFIX, strlen(WHITEOUT_META_PREFIX)) == 0)
        return 0;
    const char *name = base + strlen(WHITEOUT_PREFIX);
    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return swm_err_set(err, -EINVAL, "entry \"%.200s\": invalid whiteout", rel);
    snprintf(target + strlen(target), sizeof(target) - strlen(target), "%s%s",
             dir_len > 0 ? "/" : "", name);
    int rc = join(u, target, u->path, err);
    if (rc < 0)
        return rc;

    struct archive_entry *wh = archive_entry_new();
    if (wh == NULL)
        return swm_err_code(err, -ENOMEM);
    archive_entry_set_pathname(wh, u->path);
    archive_entry_set_filetype(wh, AE_IFCHR);
    archive_entry_set_perm(wh, 0);
    archive_entry_set_rdev(wh, 0);
    archive_entry_set_uid(wh, archive_entry_uid(e));
    archive_entry_set_gid(wh, archive_entry_gid(e));
    if (archive_entry_mtime_is_set(e))
        archive_entry_set_mtime(wh, archive_entry_mtime(e), archive_entry_mtime_nsec(e));
    rc = 0;
    if (archive_write_header(u->disk, wh) < ARCHIVE_WARN ||
        archive_write_finish_entry(u->disk) < ARCHIVE_WARN)
        rc = disk_error(u, rel, err);
    archive_entry_free(wh);
    return rc;
}

static int unpack_entry(struct unpack *u, struct archive_entry *e, struct swm_err *err)
{
    char rel[PATH_MAX];
    const char *name = archive_entry_pathname(e);
    if (name == NULL)
        return swm_err_set(err, -EINVAL, "an entry has a name libarchive cannot convert");
    int rc = clean_rel(name, rel, err);
    if (rc < 0)
        return rc;
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    if (strncmp(base, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0)
        return whiteout(u, e, rel, base, err);

    const char *hardlink = archive_entry_hardlink(e);
    if (hardlink != NULL) {
        char target[PATH_MAX];
        if ((rc = clean_rel(hardlink, target, err)) < 0)
            return swm_err_wrap(err, rc, "hard link \"%.200s\"", rel);
        if (target[0] == '\0')
            return swm_err_set(err, -EINVAL, "entry \"%.200s\": hard link to the root", rel);
        if ((rc = join(u, target, u->link, err)) < 0)
            return rc;
        archive_entry_set_hardlink(e, u->link);
    }
    if ((rc = join(u, rel, u->path, err)) < 0)
        return rc;
    archive_entry_set_pathname(e, u->path);
    if (strip_overlay_xattrs(e) < 0)
        return swm_err_code(err, -ENOMEM);

    if (archive_write_header(u->disk, e) < ARCHIVE_WARN)
        return disk_error(u, rel, err);
    if (archive_entry_size(e) > 0) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r;
        while ((r = archive_read_data_block(u->tar, &buf, &len, &off)) == ARCHIVE_OK) {
            if (archive_write_data_block(u->disk, buf, len, off) != ARCHIVE_OK)
                return disk_error(u, rel, err);
        }
        if (r != ARCHIVE_EOF)
            return swm_err_set(err, -EIO, "entry \"%.200s\": %s", rel,
                               archive_error_string(u->tar));
    }
    if (archive_write_finish_entry(u->disk) < ARCHIVE_WARN)
        return disk_error(u, rel, err);
    if (hardlink == NULL && archive_entry_filetype(e) == AE_IFREG)
        u->size += archive_entry_size(e);
    return 0;
}

static struct archive *open_reader(struct layer_stream *ls, bool raw)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return NULL;
    if (raw) {
        /* The return values only say whether an external program would be
         * used; a missing decompressor shows up as a read error. */
        (void)archive_read_support_filter_gzip(a);
        (void)archive_read_support_filter_zstd(a);
        (void)archive_read_support_filter_bzip2(a);
        (void)archive_read_support_filter_xz(a);
        archive_read_support_format_raw(a);
    } else {
        archive_read_support_format_tar(a);
    }
    if (archive_read_open(a, ls, NULL, raw ? read_blob : read_tar, NULL) != ARCHIVE_OK)
        return a; /* the caller reports archive_error_string(a) */
    return a;
}

/* archive_write_disk_new() reads the umask the only portable way, umask(0)
 * then umask(old); two threads doing that at once can leave the process with
 * umask 0. Loads in parallel threads take turns here. */
static struct archive *new_disk_writer(void)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    struct archive *a = archive_write_disk_new();
    pthread_mutex_unlock(&mu);
    return a;
}

static void hex_of(crypto_hash_sha256_state *st, char hex[IMAGE__HEX_LEN + 1])
{
    unsigned char sum[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(st, sum);
    sodium_bin2hex(hex, IMAGE__HEX_LEN + 1, sum, sizeof(sum));
}

int image__layer_unpack(struct archive *blob, const char *dest, const char *want_blob_hex,
                        const char *want_diff_hex, int64_t *size, struct swm_err *err)
{
    struct layer_stream ls = {.blob = blob};
    struct unpack u = {.dest = dest, .root_fd = -1};
    struct archive_entry *e;
    char blob_hex[IMAGE__HEX_LEN + 1], diff_hex[IMAGE__HEX_LEN + 1];
    int rc = 0, r;

    crypto_hash_sha256_init(&ls.blob_sha);
    crypto_hash_sha256_init(&ls.diff_sha);
    ls.blob_buf = swm_malloc(BUF_SIZE);
    ls.tar_buf = swm_malloc(BUF_SIZE);
    if (ls.blob_buf == NULL || ls.tar_buf == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    ls.raw = open_reader(&ls, true);
    if (ls.raw == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    r = archive_read_next_header(ls.raw, &e);
    if (r == ARCHIVE_EOF) {
        rc = swm_err_set(err, -EINVAL, "the layer blob is empty");
        goto out;
    }
    if (r < ARCHIVE_WARN) {
        rc = swm_err_set(err, -EINVAL, "cannot read the layer blob: %s",
                         archive_error_string(ls.raw));
        goto out;
    }
    u.tar = open_reader(&ls, false);
    u.disk = new_disk_writer();
    if (u.tar == NULL || u.disk == NULL) {
        rc = swm_err_code(err, -ENOMEM);
        goto out;
    }
    archive_write_disk_set_options(u.disk, UNPACK_FLAGS);
    /* No set_standard_lookup: owners are the numeric ids in the layer, not
     * whatever the host's passwd maps their names to. */
    u.root_fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u.root_fd < 0) {
        rc = swm_err_set(err, -errno, "cannot open %s: %s", dest, strerror(errno));
        goto out;
    }

    while ((r = archive_read_next_header(u.tar, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        rc = unpack_entry(&u, e, err);
        if (rc < 0)
            goto out;
    }
    if (r != ARCHIVE_EOF) {
        rc = swm_err_set(err, -EINVAL, "not a valid tar archive: %s", archive_error_string(u.tar));
        goto out;
    }
    /* Directory modes and times are set at close. */
    if (archive_write_close(u.disk) < ARCHIVE_WARN) {
        rc = swm_err_set(err, -EIO, "cannot finish unpacking: %s", archive_error_string(u.disk));
        goto out;
    }

    /* The digests cover every byte, including what follows the tar's end
     * marker and the compressed stream's end. */
    la_ssize_t n;
    while ((n = archive_read_data(ls.raw, ls.tar_buf, BUF_SIZE)) > 0)
        crypto_hash_sha256_update(&ls.diff_sha, ls.tar_buf, (unsigned long long)n);
    if (n < 0) {
        rc = swm_err_set(err, -EINVAL, "cannot read the layer blob: %s",
                         archive_error_string(ls.raw));
        goto out;
    }
    while ((n = archive_read_data(blob, ls.blob_buf, BUF_SIZE)) > 0)
        crypto_hash_sha256_update(&ls.blob_sha, ls.blob_buf, (unsigned long long)n);
    if (n < 0) {
        rc =
            swm_err_set(err, -EINVAL, "cannot read the layer blob: %s", archive_error_string(blob));
        goto out;
    }
    hex_of(&ls.blob_sha, blob_hex);
    hex_of(&ls.diff_sha, diff_hex);
    if (want_blob_hex != NULL && strcmp(blob_hex, want_blob_hex) != 0) {
        rc = swm_err_set(err, -EINVAL, "blob digest mismatch (want sha256:%s, got sha256:%s)",
                         want_blob_hex, blob_hex);
        goto out;
    }
    if (strcmp(diff_hex, want_diff_hex) != 0) {
        rc = swm_err_set(err, -EINVAL, "diff_id mismatch (want sha256:%s, got sha256:%s)",
                         want_diff_hex, diff_hex);
        goto out;
    }
    *size = u.size;
out:
    if (u.root_fd >= 0)
        close(u.root_fd);
    archive_write_free(u.disk); /* closes too, if we got out early */
    archive_read_free(u.tar);
    archive_read_free(ls.raw);
    swm_free(ls.blob_buf);
    swm_free(ls.tar_buf);
    return rc;
}
