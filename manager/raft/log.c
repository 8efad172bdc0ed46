/* The in-memory log and the entry blobs (see internal.h). */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/alloc.h"
#include "manager/raft/internal.h"

struct blob {
    size_t refs;
    size_t len;
    _Alignas(16) unsigned char data[];
};

static struct blob *blob_of(const void *data)
{
    return (struct blob *)((const unsigned char *)data - offsetof(struct blob, data));
}

void *raft__blob_new(const void *src, size_t len)
{
    struct blob *b = swm_malloc(sizeof(*b) + len);
    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->len = len;
    if (src != NULL)
        memcpy(b->data, src, len);
    return b->data;
}

void raft__blob_retain(const void *data)
{
    if (data != NULL)
        blob_of(data)->refs++;
}

void raft__blob_release(const void *data)
{
    if (data == NULL)
        return;
    struct blob *b = blob_of(data);
    if (--b->refs == 0)
        swm_free(b);
}

int raft__entry_copy_in(struct raft_entry *dst, const struct raft_entry *src)
{
    struct raft_entry e = *src;
    if (src->len == 0) {
        e.data = NULL;
    } else {
        e.data = raft__blob_new(src->data, src->len);
        if (e.data == NULL)
            return -ENOMEM;
    }
    *dst = e;
    return 0;
}

void raft__entry_share(struct raft_entry *dst, const struct raft_entry *src)
{
    *dst = *src;
    raft__blob_retain(src->data);
}

void raft__entry_release(struct raft_entry *e)
{
    raft__blob_release(e->data);
    e->data = NULL;
    e->len = 0;
}

void raft__log_free(struct raft__log *l)
{
    for (size_t i = 0; i < l->n; i++)
        raft__entry_release(&l->entries[i]);
    swm_free(l->entries);
    l->entries = NULL;
    l->n = l->cap = 0;
}

uint64_t raft__log_last_index(const struct raft__log *l)
{
    return l->offset + l->n;
}

uint64_t raft__log_last_term(const struct raft__log *l)
{
    return l->n > 0 ? l->entries[l->n - 1].term : l->offset_term;
}

bool raft__log_term(const struct raft__log *l, uint64_t index, uint64_t *term)
{
    if (index == l->offset) {
        /* Index 0 is the empty log's sentinel with term 0. */
        if (l->offset_term == 0 && l->offset != 0)
            return false;
        *term = l->offset_term;
        return true;
    }
    if (index < l->offset || index > raft__log_last_index(l))
        return false;
    *term = l->entries[index - l->offset - 1].term;
    return true;
}

bool raft__log_match(const struct raft__log *l, uint64_t index, uint64_t term)
{
    uint64_t t;
    return raft__log_term(l, index, &t) && t == term;
}

const struct raft_entry *raft__log_at(const struct raft__log *l, uint64_t index)
{
    return &l->entries[index - l->offset - 1];
}

int raft__log_reserve(struct raft__log *l, size_t n)
{
    if (l->n + n <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 64;
    while (cap < l->n + n)
        cap *= 2;
    struct raft_entry *grown = swm_realloc(l->entries, cap * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    l->entries = grown;
    l->cap = cap;
    return 0;
}

int raft__log_append(struct raft__log *l, const struct raft_entry *e)
{
    int rc = raft__log_reserve(l, 1);
    if (rc < 0)
        return rc;
    raft__entry_share(&l->entries[l->n], e);
    l->entries[l->n].index = raft__log_last_index(l) + 1;
    l->n++;
    return 0;
}

void raft__log_truncate(struct raft__log *l, uint64_t from)
{
    while (raft__log_last_index(l) >= from && l->n > 0)
        raft__entry_release(&l->entries[--l->n]);
    if (l->stable >= from)
        l->stable = from - 1;
}

void raft__log_compact(struct raft__log *l, uint64_t index)
{
    if (index <= l->offset)
        return;
    uint64_t term = 0;
    raft__log_term(l, index, &term);
    size_t drop = (size_t)(index - l->offset);
    for (size_t i = 0; i < drop; i++)
        raft__entry_release(&l->entries[i]);
    memmove(l->entries, l->entries + drop, (l->n - drop) * sizeof(*l->entries));
    l->n -= drop;
    l->offset = index;
    l->offset_term = term;
}

void raft__log_reset(struct raft__log *l, uint64_t index, uint64_t term)
{
    for (size_t i = 0; i < l->n; i++)
        raft__entry_release(&l->entries[i]);
    l->n = 0;
    l->offset = index;
    l->offset_term = term;
    l->stable = index;
}

uint64_t raft__log_find_conflict_by_term(const struct raft__log *l, uint64_t index, uint64_t term)
{
    if (index > raft__log_last_index(l))
        return index;
    while (index > l->offset) {
        uint64_t t = raft__log_at(l, index)->term;
        if (t <= term)
            break;
        index--;
    }
    return index;
}

bool raft__log_up_to_date(const struct raft__log *l, uint64_t last_index, uint64_t last_term)
{
    uint64_t my_term = raft__log_last_term(l);
    return last_term > my_term || (last_term == my_term && last_index >= raft__log_last_index(l));
}
