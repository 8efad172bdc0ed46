#include "common/buf.h"

#include "common/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int swm_buf_reserve(struct swm_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap == 0 ? 256 : b->cap;
    while (cap < b->len + extra + 1)
        cap *= 2;
    uint8_t *data = swm_realloc(b->data, cap);
    if (data == NULL)
        return -ENOMEM;
    b->data = data;
    b->cap = cap;
    return 0;
}

int swm_buf_append(struct swm_buf *b, const void *data, size_t n)
{
    int rc = swm_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int swm_buf_printf(struct swm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    int rc = swm_buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void swm_buf_free(struct swm_buf *b)
{
    swm_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
