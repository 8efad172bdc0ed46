/* A growable byte buffer. */
#ifndef SWM_COMMON_BUF_H
#define SWM_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct swm_buf {
    uint8_t *data; /* owned; NULL while empty */
    size_t len;
    size_t cap;
};

/* Makes room for `extra` more bytes. Returns 0 or -ENOMEM. */
int swm_buf_reserve(struct swm_buf *b, size_t extra);

/* Appends n bytes. Returns 0 or -ENOMEM (b unchanged). */
int swm_buf_append(struct swm_buf *b, const void *data, size_t n);

/* Appends a formatted string (without its NUL; data stays NUL-terminated).
 * Returns 0 or -ENOMEM. */
int swm_buf_printf(struct swm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the storage; b becomes empty. Accepts an empty buffer. */
void swm_buf_free(struct swm_buf *b);

#endif
