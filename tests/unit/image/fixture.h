/* Helpers for the image store tests: build layer tars, `docker save` and OCI
 * layout tarballs with libarchive's writer, and compare store snapshots.
 * Every helper asserts (cmocka) instead of returning errors. */
#ifndef SWM_TESTS_UNIT_IMAGE_FIXTURE_H
#define SWM_TESTS_UNIT_IMAGE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

/* One entry of a layer tar. */
struct tb_entry {
    const char *name;
    char type;         /* 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c' char dev 0/0 */
    const char *data;  /* 'f': content; 'l', 'h': target */
    int mode;          /* permission bits; 0 means 0644 (files) or 0755 (dirs) */
    int uid, gid;      /* owner */
    const char *xattr; /* "name=value" or NULL */
};

#define TB_MTIME 1700000000

/* A tar of n entries, appended to out (uncompressed). */
void tb_tar(const struct tb_entry *e, size_t n, struct swm_buf *out);

/* gzip of data (level is 1..9), appended to out. */
void tb_gzip(const void *data, size_t len, int level, struct swm_buf *out);

/* zstd of data, appended to out. */
void tb_zstd(const void *data, size_t len, struct swm_buf *out);

/* Lowercase hex SHA-256. */
void tb_sha256(const void *data, size_t len, char hex[65]);

/* The files of an outer tarball, in order. */
struct tb_file {
    char *name;
    char type; /* 'f' or 'l' (symlink; data is the target) */
    struct swm_buf data;
};

struct tb_files {
    struct tb_file f[64];
    size_t n;
};

void tb_files_add(struct tb_files *fs, const char *name, const void *data, size_t len);
void tb_files_add_symlink(struct tb_files *fs, const char *name, const char *target);
struct swm_buf *tb_files_get(struct tb_files *fs, const char *name); /* NULL if absent */
void tb_files_del(struct tb_files *fs, const char *name);
void tb_files_write(const struct tb_files *fs, const char *path);
void tb_files_free(struct tb_files *fs);

/* One image. */
struct tb_image {
    const char *tag;              /* RepoTags[0] / containerd name; NULL: untagged */
    const struct swm_buf *layers; /* uncompressed layer tars, lowest first */
    size_t n_layers;
    bool gzip;               /* store the layers gzip-compressed */
    bool zstd;               /* store the layers zstd-compressed */
    const char *config_body; /* members of the config's "config" object */
    const char *comment;     /* differs between images with equal layers */
    const char *bad_diff_id; /* if set, listed instead of the last diff_id */
};

/* The config blob of img (malloc'd) and its hex digest. */
char *tb_config(const struct tb_image *img, char id_hex[65]);

/* Adds img's files to fs in `docker save` (<= 24) form. */
void tb_docker_save(const struct tb_image *img, struct tb_files *fs, char id_hex[65]);

/* Adds img's files to fs as an OCI image layout, named by a containerd
 * annotation. */
void tb_oci_layout(const struct tb_image *img, struct tb_files *fs, char id_hex[65]);

/* Adds a blob under blobs/sha256 and returns its hex digest in hex. */
void tb_blob(struct tb_files *fs, const void *data, size_t len, char hex[65]);

/* A deterministic listing of everything under dir (names, types, sizes,
 * and the repositories file's content), malloc'd. */
char *tb_snapshot(const char *dir);

/* Number of entries in dir (not counting . and ..), -1 if it cannot be read. */
int tb_count(const char *dir);

/* A fresh temp dir (malloc'd path) and its removal. */
char *tb_tmpdir(void);
void tb_rmdir(char *path);

#endif
