/* The node's content-addressed image store under <data-dir>/images
 * (DESIGN.md §7). Filled by `swarmc image load` from `docker save` tarballs
 * (Docker <= 24, and Docker 25+ which adds an OCI layout) and OCI
 * image-layout tarballs, with plain, gzip or zstd layers. Each layer is
 * unpacked once into its own directory, with OCI/Docker whiteouts converted
 * to overlayfs whiteouts, so a container's rootfs is an overlay mount over
 * the image's layer directories.
 *
 * Layout under the store dir (see internal.h): layers/<diff_id hex>/,
 * configs/<id hex>.json, the "repositories" metadata file (tags -> ids,
 * replaced atomically), tmp/ for staging. One process opens a store at a
 * time (flock).
 *
 * Thread safety: every function may be called from any thread; the store
 * serialises its own metadata updates. Loads unpack outside the lock, so
 * resolve and list stay quick while a big image loads.
 *
 * Privileges: unpacking as the layers say (owners, device nodes, overlayfs
 * whiteouts as 0/0 character devices, the trusted.overlay.opaque xattr)
 * needs root (CAP_CHOWN, CAP_MKNOD, CAP_SYS_ADMIN), as the agent runs.
 */
#ifndef SWM_AGENT_IMAGE_IMAGE_H
#define SWM_AGENT_IMAGE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct image_store;

/* The parts of an image's config that a container needs. All strings and
 * arrays are owned by the struct; free with image_config_free. NULL-terminated
 * string arrays; absent values are NULL (an empty JSON array, say `CMD []`,
 * is an empty array, not NULL). */
struct image_config {
    char *id;          /* "sha256:<hex of the config blob>" */
    char **entrypoint; /* ENTRYPOINT */
    char **cmd;        /* CMD */
    char **env;        /* "KEY=VALUE" */
    char *workdir;
    char *user;
    char *stop_signal;       /* "SIGTERM" or NULL */
    char **healthcheck_test; /* HEALTHCHECK test, e.g. {"CMD-SHELL", "...", NULL} */
    int64_t health_interval_ns, health_timeout_ns, health_start_period_ns; /* 0: unset */
    int health_retries;                                                    /* 0: unset */
    char *os, *architecture;
    /* Unpacked layer directories, LOWEST first (overlayfs wants them the
     * other way round in lowerdir=). A layer that occurs twice in an image
     * (typically an empty one) is listed once, at its highest position:
     * overlayfs refuses the same lower dir twice, and the merged tree is the
     * same. n_layers counts the entries and may be 0 for a FROM-scratch image
     * with no filesystem at all. Never NULL. */
    char **layer_dirs;
    size_t n_layers;
};

void image_config_free(struct image_config *c); /* accepts NULL */

struct image_summary {
    char *id;           /* "sha256:..." */
    char **tags;        /* NULL-terminated (maybe empty), normalised "name:tag", sorted */
    int64_t size;       /* bytes of regular files in the image's unpacked layers */
    int64_t created_ns; /* the config's "created", unix ns; 0 if absent */
};

void image_summary_free_array(struct image_summary *a, size_t n); /* accepts NULL */

/* Opens the store in dir, creating dir (0700) and its layout if needed, and
 * deletes what an interrupted load or remove left behind. Returns 0 and sets
 * *out (free with image_store_close), or a negative code with err set:
 * -EBUSY if another process (or another open in this one) has the store,
 * SWM_ECORRUPT if the repositories file is unreadable (nothing is deleted
 * then), -errno for file-system errors. */
int image_store_open(const char *dir, struct image_store **out, struct swm_err *err);
void image_store_close(struct image_store *s); /* accepts NULL */

/* Loads every image in the tarball at path (a file, or a pipe, which is
 * copied to the store's tmp/ first; the tarball may itself be compressed).
 * Layers the store has are not unpacked again. A tag already naming another
 * image moves to the loaded one; the other image stays, untagged, as with
 * `docker load`.
 *
 * On success returns 0 and, if loaded is not NULL, sets *loaded to a
 * NULL-terminated array of what was loaded: the normalised tags
 * ("busybox:latest"; print "Loaded image: %s"), or the image id
 * ("sha256:...", "Loaded image ID: %s") for an image without tags. The
 * caller frees it with image_strv_free.
 *
 * Every digest is checked: the config against the image id (or the
 * descriptor), each OCI blob against its descriptor, each layer's
 * uncompressed tar against the config's rootfs.diff_ids. On failure returns
 * a negative code and a one-line err naming the file and what is wrong (e.g.
 * "image load: layer 2 of busybox:latest (<file>): diff_id mismatch (want
 * sha256:..., got sha256:...)"), and leaves the store as it was: -EINVAL for
 * a malformed or truncated tarball, bad JSON or a digest mismatch; -ENOENT
 * for a file the manifest names but the tarball lacks; -EPERM for a layer
 * entry with an absolute path or ".."; SWM_ENOTSUP for unsupported media
 * types, digest algorithms, platforms or OSes; -EAGAIN if a layer this load
 * meant to reuse was removed meanwhile; -ENOMEM; -errno otherwise. */
int image_load(struct image_store *s, const char *path, char ***loaded, struct swm_err *err);

/* Resolves ref ("busybox", "busybox:1.35", "docker.io/library/busybox:latest",
 * "sha256:<hex>", or an id prefix of at least 4 hex digits, with or without
 * "sha256:") to its config, which the caller frees with image_config_free.
 * A tag wins over an id prefix that happens to look like it, as in Docker.
 * Errors: SWM_ENOTFOUND with "No such image: <ref>" when absent; -EINVAL for
 * an invalid reference or an ambiguous id prefix; SWM_ENOTSUP for digest
 * references (name@sha256:...); SWM_ECORRUPT if the stored config no longer
 * matches its digest; -ENOMEM. *out is set only on success. */
int image_resolve(struct image_store *s, const char *ref, struct image_config **out,
                  struct swm_err *err);

/* Lists images, newest first. Sets *out (NULL when *n is 0) and *n; the
 * caller frees with image_summary_free_array(*out, *n). Fails only with
 * -ENOMEM. */
int image_list(struct image_store *s, struct image_summary **out, size_t *n, struct swm_err *err);

/* Removes what ref names. A tag ("busybox", "busybox:1.35") is untagged; if
 * it was the image's last tag, the image goes too. An id or id prefix removes
 * the image and all its tags. Layers no remaining image refers to are
 * deleted.
 *
 * Before an image is removed, in_use(id, arg) is asked (id is
 * "sha256:<hex>"); if it says true nothing changes and SWM_EINUSE is returned
 * with an err naming the image ("image is being used by running task ..." is
 * the caller's to word). Untagging an image that keeps other tags does not
 * ask. in_use may be NULL (nothing is in use: `rmi --force`). It is called
 * with the store's lock held, so it must not call into the store.
 * Other errors: as image_resolve, and -errno if the metadata cannot be
 * written (then nothing changed). */
int image_remove(struct image_store *s, const char *ref, bool (*in_use)(const char *id, void *arg),
                 void *arg, struct swm_err *err);

/* Frees a NULL-terminated string array. Accepts NULL. */
void image_strv_free(char **v);

/* Normalises a reference the way Docker does: "busybox" -> "busybox:latest",
 * "docker.io/library/busybox" -> "busybox:latest", "localhost:5000/app" ->
 * "localhost:5000/app:latest". Returns a swm_malloc'd string, or NULL for an
 * invalid reference, a digest reference (name@sha256:..., not supported) or
 * when out of memory. */
char *image_normalize_ref(const char *ref);

#endif
