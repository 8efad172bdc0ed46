/* A hash map from NUL-terminated string keys (copied) to borrowed pointers:
 * the task tables of the agent and the dispatcher. Open addressing with
 * linear probing and backward-shift deletion. */
#ifndef SWM_COMMON_STRMAP_H
#define SWM_COMMON_STRMAP_H

#include <stddef.h>

struct swm_strmap_slot {
    char *key; /* owned; NULL = empty */
    void *value;
};

struct swm_strmap {
    struct swm_strmap_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t len;
};

/* Returns the value for key or NULL. */
void *swm_strmap_get(const struct swm_strmap *m, const char *key);

/* Sets key to value (replacing). Returns 0 or -ENOMEM (map unchanged). */
int swm_strmap_put(struct swm_strmap *m, const char *key, void *value);

/* Removes key; returns its value or NULL if absent. */
void *swm_strmap_del(struct swm_strmap *m, const char *key);

/* Frees the map's storage (not the values). */
void swm_strmap_free(struct swm_strmap *m);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ...
 * Do not modify the map while iterating; collect keys first. */

#endif
