/* The one allocation seam (STYLE.md): every allocation in swarmc goes through
 * these functions so that tests can make the N-th allocation fail and check
 * that nothing below main() aborts or leaks on ENOMEM. */
#ifndef SWM_COMMON_ALLOC_H
#define SWM_COMMON_ALLOC_H

#include <stddef.h>

/* Like malloc/calloc/realloc/strdup/strndup; return NULL on failure (real or
 * injected). swm_free accepts NULL. */
void *swm_malloc(size_t size);
void *swm_calloc(size_t n, size_t size);
void *swm_realloc(void *ptr, size_t size);
char *swm_strdup(const char *s);
char *swm_strndup(const char *s, size_t n);
void swm_free(void *ptr);

/* Allocates a formatted string; returns NULL on failure. Caller frees. */
char *swm_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Test hook: the allocation after `n` more successful ones fails, and every
 * one after it too until swm_alloc_fail_reset(). n < 0 disables. */
void swm_alloc_fail_after(long n);
void swm_alloc_fail_reset(void);

#endif
