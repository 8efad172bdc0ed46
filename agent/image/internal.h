/* Internals of agent/image/, shared by its .c files only (STYLE.md: no other
 * module includes this header).
 *
 * On-disk layout under the store dir (DESIGN.md §7):
 *
 *   lock                    flock(2)ed while a process has the store open
 *   repositories            the metadata, JSON, replaced atomically; the one
 *                           source of truth (see image.c for its schema)
 *   configs/<id hex>.json   image config blobs, byte for byte as loaded
 *   layers/<diffid hex>/    unpacked layers with overlayfs whiteouts
 *   tmp/                    staging for loads and trash for removals
 *
 * Anything under configs/, layers/ or tmp/ that the repositories file does not
 * name is garbage left by a crash and is deleted when the store is opened.
 */
#ifndef SWM_AGENT_IMAGE_INTERNAL_H
#define SWM_AGENT_IMAGE_INTERNAL_H

#include <archive.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/image/image.h"
#include "common/err.h"

#define IMAGE__HEX_LEN 64
#define IMAGE__DIGEST_LEN (7 + IMAGE__HEX_LEN) /* "sha256:" + hex */

/* Largest JSON document (manifest, index, config) the loader accepts. */
#define IMAGE__JSON_MAX (8u << 20)

struct image_store {
    char *dir; /* canonical absolute path, no symlinks (libarchive's symlink
                * checks walk the whole destination path) */
    int lock_fd;
    pthread_mutex_t mu; /* guards meta and every change under dir */
    json_t *meta;       /* the parsed repositories file */
};

/* json_loadb() returns NULL for running out of memory too, sometimes with
 * no more than an empty error text. */
static inline bool image__json_oom(const json_error_t *e)
{
    return json_error_code(e) == json_error_out_of_memory || e->text[0] == '\0';
}

/* ref.c */

/* True if s[0..n) are n lowercase hex digits. */
bool image__is_hex(const char *s, size_t n);

/* True if s is "sha256:" followed by 64 lowercase hex digits. */
bool image__is_digest(const char *s);

/* image_normalize_ref that tells an invalid reference (-EINVAL) from running
 * out of memory (-ENOMEM). Sets *out (swm_malloc'd) only on success. */
int image__ref_normalize(const char *ref, char **out);

/* image.c: metadata, used by the loader's commit. All need s->mu held. */

/* Writes meta as the new repositories file (after a syncfs of the store, so
 * that everything it names is durable) and makes it s->meta, taking the
 * reference. On failure meta is released and s->meta is unchanged. */
int image__meta_replace(struct image_store *s, json_t *meta, struct swm_err *err);

/* Parses and checks a config blob: the fields of struct image_config except
 * id and layer_dirs, plus the rootfs diff_ids (into *diff_ids, "sha256:..."
 * strings, NULL-terminated) and the creation time. *out is set only on
 * success; diff_ids and created_ns may be NULL. On failure err says what is
 * wrong with the config, without naming the file (the caller prefixes it). */
int image__config_parse(const char *json, size_t len, struct image_config **out, char ***diff_ids,
                        int64_t *created_ns, struct swm_err *err);

/* layer.c */

/* Reads one layer blob (plain, gzip, bzip2, xz or zstd tar) from the current
 * entry of the archive `blob` and unpacks it into dest (which must exist and
 * be empty), converting whiteouts to overlayfs form. Computes the SHA-256 of
 * the blob as stored and of the uncompressed tar while reading, and fails
 * unless they equal want_blob_hex (skipped when NULL) and want_diff_hex.
 * Sets *size to the bytes of regular files unpacked. Errors name the entry
 * at fault; the caller prefixes which layer it was. dest may hold a partial
 * tree on failure; the caller removes it. */
int image__layer_unpack(struct archive *blob, const char *dest, const char *want_blob_hex,
                        const char *want_diff_hex, int64_t *size, struct swm_err *err);

#endif
