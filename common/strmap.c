#include "common/strmap.h"

#include "common/alloc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static size_t find_slot(const struct swm_strmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)hash_key(key) & mask;
    while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & mask;
    return i;
}

void *swm_strmap_get(const struct swm_strmap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    size_t i = find_slot(m, key);
    return m->slots[i].key != NULL ? m->slots[i].value : NULL;
}

static int grow(struct swm_strmap *m)
{
    size_t cap = m->cap == 0 ? 16 : m->cap * 2;
    struct swm_strmap_slot *slots = swm_calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    struct swm_strmap old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slots[i].key != NULL)
            m->slots[find_slot(m, old.slots[i].key)] = old.slots[i];
    }
    swm_free(old.slots);
    return 0;
}

int swm_strmap_put(struct swm_strmap *m, const char *key, void *value)
{
    if ((m->len + 1) * 4 > m->cap * 3 && grow(m) < 0)
        return -ENOMEM;
    size_t i = find_slot(m, key);
    if (m->slots[i].key != NULL) {
        m->slots[i].value = value;
        return 0;
    }
    char *copy = swm_strdup(key);
    if (copy == NULL)
        return -ENOMEM;
    m->slots[i].key = copy;
    m->slots[i].value = value;
    m->len++;
    return 0;
}

void *swm_strmap_del(struct swm_strmap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find_slot(m, key);
    if (m->slots[i].key == NULL)
        return NULL;
    void *value = m->slots[i].value;
    swm_free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->len--;
    /* Backward-shift: move later entries of the probe chain into the hole
     * so lookups never stop early at it. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)hash_key(m->slots[j].key) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            m->slots[j].key = NULL;
            hole = j;
        }
    }
    return value;
}

void swm_strmap_free(struct swm_strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        swm_free(m->slots[i].key);
    swm_free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}
