/* File-system helpers shared by the store, the image store and the agent. */
#ifndef SWM_COMMON_FS_H
#define SWM_COMMON_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"

/* mkdir -p with the given mode for the directories it creates. 0 or -errno. */
int swm_mkdir_p(const char *path, mode_t mode);

/* Writes data to path durably: a temporary file beside it, fsync, rename,
 * fsync of the directory. A crash leaves either the old or the new file.
 * Returns 0 or -errno. */
int swm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Reads a whole file (at most max bytes) into out (appended). 0 or -errno;
 * -EFBIG if the file is larger than max. */
int swm_read_file(const char *path, size_t max, struct swm_buf *out);

/* rm -rf that does not cross mount points and does not follow symlinks.
 * A missing path is success. Returns 0 or -errno. */
int swm_remove_tree(const char *path);

/* fsync of a directory. 0 or -errno. */
int swm_fsync_dir(const char *path);

#endif
