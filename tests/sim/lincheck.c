/* Per-key Wing–Gong–Lowe linearizability search (see lincheck.h). */
#include "lincheck.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The memo: a set of (linearized bitset, register value) states, open
 * addressing over an arena of fixed-size records of `words` + 1 uint64s. */
struct memo {
    size_t words;    /* bitset words per state */
    uint64_t *arena; /* n * (words + 1) */
    size_t n, cap;   /* states stored, arena capacity in states */
    uint32_t *slots; /* 0: empty, else 1 + state number */
    size_t n_slots;  /* power of two */
    size_t max;      /* bound on n */
};

/* One key's sub-history, sorted by invocation. */
struct search {
    const struct lin_op **ops;
    size_t n;
    bool *required; /* must be linearized before the search may stop */
    size_t n_required, done_required;
    uint64_t *bits;
    uint32_t value;
    struct memo memo;
    int error; /* -E2BIG or -ENOMEM once the search gave up */
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static uint64_t state_hash(const uint64_t *bits, size_t words, uint32_t value)
{
    uint64_t h = value;
    for (size_t i = 0; i < words; i++)
        h = mix(h, bits[i]);
    return h;
}

static int memo_grow(struct memo *m)
{
    size_t n_slots = m->n_slots ? m->n_slots * 2 : 1024;
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    size_t rec = m->words + 1;
    for (size_t s = 0; s < m->n; s++) {
        const uint64_t *st = m->arena + s * rec;
        size_t i = state_hash(st, m->words, (uint32_t)st[m->words]) & (n_slots - 1);
        while (slots[i] != 0)
            i = (i + 1) & (n_slots - 1);
        slots[i] = (uint32_t)(s + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return 0;
}

/* Adds the state; returns 1 if it is new, 0 if it was seen, or an error. */
static int memo_add(struct memo *m, const uint64_t *bits, uint32_t value)
{
    if ((m->n + 1) * 2 > m->n_slots) {
        int rc = memo_grow(m);
        if (rc != 0)
            return rc;
    }
    size_t rec = m->words + 1;
    size_t i = state_hash(bits, m->words, value) & (m->n_slots - 1);
    for (; m->slots[i] != 0; i = (i + 1) & (m->n_slots - 1)) {
        const uint64_t *st = m->arena + (m->slots[i] - 1) * rec;
        if (st[m->words] == value && memcmp(st, bits, m->words * sizeof(*bits)) == 0)
            return 0;
    }
    if (m->n >= m->max)
        return -E2BIG;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        uint64_t *a = realloc(m->arena, cap * rec * sizeof(*a));
        if (a == NULL)
            return -ENOMEM;
        m->arena = a;
        m->cap = cap;
    }
    uint64_t *st = m->arena + m->n * rec;
    memcpy(st, bits, m->words * sizeof(*bits));
    st[m->words] = value;
    m->slots[i] = (uint32_t)(++m->n);
    return 1;
}

static bool bit_get(const uint64_t *b, size_t i)
{
    return (b[i / 64] >> (i % 64)) & 1;
}

static void bit_flip(uint64_t *b, size_t i)
{
    b[i / 64] ^= 1ULL << (i % 64);
}

/* Whether the remaining operations can be linearized from the current
 * state. */
static bool search(struct search *s)
{
    if (s->done_required == s->n_required)
        return true;
    /* An operation may go next only if it was invoked before every pending
     * ok operation returned (otherwise that one must precede it). */
    uint64_t min_ret = UINT64_MAX;
    for (size_t i = 0; i < s->n; i++)
        if (!bit_get(s->bits, i) && s->ops[i]->status == LIN_OK && s->ops[i]->ret < min_ret)
            min_ret = s->ops[i]->ret;
    for (size_t i = 0; i < s->n && s->ops[i]->invoke < min_ret; i++) {
        if (bit_get(s->bits, i))
            continue;
        const struct lin_op *op = s->ops[i];
        uint32_t before = s->value;
        if (op->kind == LIN_GET && op->value != s->value)
            continue;
        if (op->kind == LIN_PUT)
            s->value = op->value;
        bit_flip(s->bits, i);
        int fresh = memo_add(&s->memo, s->bits, s->value);
        if (fresh < 0) {
            s->error = fresh;
            return false;
        }
        if (fresh) {
            s->done_required += s->required[i];
            if (search(s))
                return true;
            s->done_required -= s->required[i];
        }
        if (s->error)
            return false;
        bit_flip(s->bits, i);
        s->value = before;
    }
    return false;
}

static int by_invoke(const void *a, const void *b)
{
    const struct lin_op *x = *(const struct lin_op *const *)a;
    const struct lin_op *y = *(const struct lin_op *const *)b;
    if (x->invoke != y->invoke)
        return x->invoke < y->invoke ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool relevant(const struct lin_op *op)
{
    return op->status == LIN_OK || (op->status == LIN_UNKNOWN && op->kind == LIN_PUT);
}

/* Checks the relevant operations on key; 0, 1 or a negative error. */
static int check_key(const struct lin_op *ops, size_t n, uint64_t key, size_t max_states,
                     struct lin_result *res)
{
    struct search s = {0};
    int rc = -ENOMEM;
    for (size_t i = 0; i < n; i++)
        s.n += ops[i].key == key && relevant(&ops[i]);
    s.ops = calloc(s.n + 1, sizeof(*s.ops));
    s.required = calloc(s.n + 1, sizeof(*s.required));
    s.memo.words = (s.n + 63) / 64 + 1;
    s.bits = calloc(s.memo.words, sizeof(*s.bits));
    s.memo.max = max_states;
    if (s.ops == NULL || s.required == NULL || s.bits == NULL)
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ops[i].key == key && relevant(&ops[i]))
            s.ops[k++] = &ops[i];
    qsort(s.ops, s.n, sizeof(*s.ops), by_invoke);
    for (size_t i = 0; i < s.n; i++) {
        s.required[i] = s.ops[i]->status == LIN_OK;
        s.n_required += s.required[i];
    }
    bool ok = search(&s);
    rc = s.error ? s.error : ok ? 0 : 1;
    res->n_ops += s.n;
    if (s.memo.n > res->max_states)
        res->max_states = s.memo.n;
out:
    free(s.memo.arena);
    free(s.memo.slots);
    free(s.bits);
    free(s.required);
    free(s.ops);
    return rc;
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int lin_check(const struct lin_op *ops, size_t n, size_t max_states, struct lin_result *res)
{
    struct lin_result local = {0};
    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof(*res));
    if (max_states == 0)
        max_states = LIN_MAX_STATES;
    for (size_t i = 0; i < n; i++)
        if (ops[i].status == LIN_OK && ops[i].invoke >= ops[i].ret)
            return -EINVAL;
    uint64_t *keys = malloc((n + 1) * sizeof(*keys));
    if (keys == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        keys[i] = ops[i].key;
    qsort(keys, n, sizeof(*keys), by_u64);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0 && keys[i] == keys[i - 1])
            continue;
        res->n_keys++;
        rc = check_key(ops, n, keys[i], max_states, res);
        if (rc != 0)
            res->bad_key = keys[i];
    }
    free(keys);
    return rc;
}
