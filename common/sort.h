/* qsort that accepts an empty (NULL) array: the C library's qsort requires a
 * non-NULL base even for zero elements, and empty lists are common here. */
#ifndef SWM_COMMON_SORT_H
#define SWM_COMMON_SORT_H

#include <stdlib.h>

static inline void swm_sort(void *base, size_t n, size_t size,
                            int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

#endif
