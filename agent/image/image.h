/* The node's content-addressed image store under <data-dir>/images
 * (DESIGN.md §7). Filled by `swarmc image load` from `docker save` tarballs
 * and OCI image-layout tarballs (plain or gzip layers). Each layer is
 * unpacked once into its own directory, with OCI/Docker whiteouts converted
 * to overlayfs whiteouts, so a container's rootfs is an overlay mount over
 * the image's layer directories.
 *
 * Thread safety: every function may be called from any thread; the store
 * serialises its own metadata updates.
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
 * string arrays; absent values are NULL. */
struct image_config {
    char *id;            /* "sha256:<hex of the config blob>" */
    char **entrypoint;   /* ENTRYPOINT */
    char **cmd;          /* CMD */
    char **env;          /* "KEY=VALUE" */
    char *workdir;
    char *user;
    char *stop_signal;   /* "SIGTERM" or NULL */
    char **healthcheck_test; /* HEALTHCHECK test, e.g. {"CMD-SHELL", "...", NULL} */
    int64_t health_interval_ns, health_timeout_ns, health_start_period_ns;
    int health_retries;
    char *os, *architecture;
    char **layer_dirs;   /* unpacked layer directories, LOWEST first */
    size_t n_layers;
};

void image_config_free(struct image_config *c); /* accepts NULL */

struct image_summary {
    char *id;     /* "sha256:..." */
    char **tags;  /* NULL-terminated, normalised "name:tag" */
    int64_t size; /* bytes of the unpacked layers */
    int64_t created_ns;
};

void image_summary_free_array(struct image_summary *a, size_t n); /* accepts NULL */

/* Opens (creating) the store in dir. Returns 0 or negative with err set. */
int image_store_open(const char *dir, struct image_store **out, struct swm_err *err);
void image_store_close(struct image_store *s); /* accepts NULL */

/* Loads every image in the tarball at path. On success returns 0 and sets
 * *loaded to a NULL-terminated array of "Loaded image: name:tag" style refs
 * (or image ids for untagged images) which the caller frees with
 * image_strv_free. A malformed or truncated tarball, a layer whose digest does
 * not match, or an unsupported media type fails with a one-line err naming
 * what is wrong, and leaves the store as it was. */
int image_load(struct image_store *s, const char *path, char ***loaded, struct swm_err *err);

/* Resolves ref ("busybox", "busybox:1.35", "docker.io/library/busybox:latest",
 * "sha256:<hex>", or an unambiguous id prefix of at least 4 hex digits) to its
 * config. SWM_ENOTFOUND with "No such image: <ref>" when absent. */
int image_resolve(struct image_store *s, const char *ref, struct image_config **out,
                  struct swm_err *err);

/* Lists images. Caller frees with image_summary_free_array. */
int image_list(struct image_store *s, struct image_summary **out, size_t *n, struct swm_err *err);

/* Removes a tag, or the image by id (all its tags). The image's layers are
 * deleted once no image refers to them. If in_use(image_id, arg) says true the
 * image is kept and SWM_EINUSE is returned ("image is being used by running
 * task ..." is the caller's to word; the err names the image). */
int image_remove(struct image_store *s, const char *ref, bool (*in_use)(const char *id, void *arg),
                 void *arg, struct swm_err *err);

/* Frees a NULL-terminated string array. Accepts NULL. */
void image_strv_free(char **v);

/* Normalises a reference the way Docker does: "busybox" -> "busybox:latest",
 * "docker.io/library/busybox" -> "busybox:latest". Returns a swm_malloc'd
 * string, or NULL for an invalid reference. */
char *image_normalize_ref(const char *ref);

#endif
