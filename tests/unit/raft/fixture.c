/* The in-test cluster of raft cores (see fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "fixture.h"

uint64_t fx_rand(struct fx *fx)
{
    uint64_t z = (fx->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct fx_node *fx_node(struct fx *fx, uint64_t id)
{
    assert_true(id >= 1 && id <= fx->n);
    return &fx->nodes[id - 1];
}

struct raft *fx_raft(struct fx *fx, uint64_t id)
{
    struct raft *r = fx_node(fx, id)->r;
    assert_non_null(r);
    return r;
}

/* --- state machine snapshots --------------------------------------------- */

/* A snapshot is the applied records, then `pad` filler bytes derived from
 * the applied index, so a misassembled stream is noticed on restore. */
static void *sm_serialize(struct fx *fx, struct fx_node *nd, size_t *len)
{
    size_t n = 16;
    for (size_t i = 0; i < nd->n_sm; i++)
        n += 24 + strlen(nd->sm[i].data);
    n += fx->snapshot_pad;
    unsigned char *p = malloc(n), *w = p;
    uint64_t count = nd->n_sm;
    memcpy(w, &count, 8);
    memcpy(w + 8, &nd->applied, 8);
    w += 16;
    for (size_t i = 0; i < nd->n_sm; i++) {
        uint64_t l = strlen(nd->sm[i].data);
        memcpy(w, &nd->sm[i].index, 8);
        memcpy(w + 8, &nd->sm[i].term, 8);
        memcpy(w + 16, &l, 8);
        memcpy(w + 24, nd->sm[i].data, l);
        w += 24 + l;
    }
    for (size_t i = 0; i < fx->snapshot_pad; i++)
        *w++ = (unsigned char)(nd->applied * 31 + i);
    *len = n;
    return p;
}

static void sm_clear(struct fx_node *nd)
{
    for (size_t i = 0; i < nd->n_sm; i++)
        free(nd->sm[i].data);
    free(nd->sm);
    nd->sm = NULL;
    nd->n_sm = 0;
}

static void sm_push(struct fx_node *nd, uint64_t index, uint64_t term, const char *data, size_t len)
{
    nd->sm = realloc(nd->sm, (nd->n_sm + 1) * sizeof(*nd->sm));
    nd->sm[nd->n_sm].index = index;
    nd->sm[nd->n_sm].term = term;
    nd->sm[nd->n_sm].data = strndup(data, len);
    nd->n_sm++;
}

/* State-machine safety: no two nodes apply different entries at an index. */
static void ledger_check(struct fx *fx, uint64_t index, uint64_t term, const char *data)
{
    if (index >= fx->n_ledger) {
        size_t n = index + 64;
        fx->ledger = realloc(fx->ledger, n * sizeof(*fx->ledger));
        memset(fx->ledger + fx->n_ledger, 0, (n - fx->n_ledger) * sizeof(*fx->ledger));
        fx->n_ledger = n;
    }
    struct fx_record *l = &fx->ledger[index];
    if (l->term == 0) {
        l->index = index;
        l->term = term;
        l->data = strdup(data);
        return;
    }
    if (l->term != term || strcmp(l->data, data) != 0)
        fail_msg("state-machine safety: index %llu applied as (%llu,%s) and (%llu,%s)",
                 (unsigned long long)index, (unsigned long long)l->term, l->data,
                 (unsigned long long)term, data);
}

static void sm_restore(struct fx *fx, struct fx_node *nd, const void *data, size_t len,
                       uint64_t index)
{
    sm_clear(nd);
    const unsigned char *p = data, *end = p + len;
    assert_true(len >= 16);
    uint64_t count, applied;
    memcpy(&count, p, 8);
    memcpy(&applied, p + 8, 8);
    assert_int_equal(applied, index);
    p += 16;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t idx, term, l;
        assert_true(end - p >= 24);
        memcpy(&idx, p, 8);
        memcpy(&term, p + 8, 8);
        memcpy(&l, p + 16, 8);
        assert_true((uint64_t)(end - p - 24) >= l);
        sm_push(nd, idx, term, (const char *)p + 24, l);
        ledger_check(fx, idx, term, nd->sm[nd->n_sm - 1].data);
        p += 24 + l;
    }
    for (size_t i = 0; p < end; i++, p++)
        assert_int_equal(*p, (unsigned char)(applied * 31 + i));
    nd->applied = index;
}

/* --- disk ---------------------------------------------------------------- */

static void disk_entry_free(struct fx_disk_entry *e)
{
    free(e->data);
}

static void disk_truncate(struct fx_node *nd, uint64_t from)
{
    while (nd->n_log > 0 && nd->log[nd->n_log - 1].index >= from)
        disk_entry_free(&nd->log[--nd->n_log]);
}

static void disk_compact(struct fx_node *nd, uint64_t upto)
{
    size_t drop = 0;
    while (drop < nd->n_log && nd->log[drop].index <= upto)
        disk_entry_free(&nd->log[drop++]);
    memmove(nd->log, nd->log + drop, (nd->n_log - drop) * sizeof(*nd->log));
    nd->n_log -= drop;
}

static void disk_append(struct fx_node *nd, const struct raft_entry *e)
{
    uint64_t last = nd->n_log ? nd->log[nd->n_log - 1].index : nd->snap.index;
    if (e->index != last + 1)
        fail_msg("node %llu: entry %llu appended after %llu", (unsigned long long)nd->id,
                 (unsigned long long)e->index, (unsigned long long)last);
    nd->log = realloc(nd->log, (nd->n_log + 1) * sizeof(*nd->log));
    struct fx_disk_entry *d = &nd->log[nd->n_log++];
    d->index = e->index;
    d->term = e->term;
    d->type = e->type;
    d->len = e->len;
    d->data = NULL;
    if (e->len) {
        d->data = malloc(e->len);
        memcpy(d->data, e->data, e->len);
    }
}

/* --- network ------------------------------------------------------------- */

static void enqueue(struct fx *fx, const struct raft_message *m, bool after)
{
    if (!after && (m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PREVOTE_RESP ||
                   m->type == RAFT_MSG_APPEND_RESP))
        fail_msg("persist before send: %s in rd->messages", raft_message_type_name(m->type));
    if (m->type == RAFT_MSG_APPEND_RESP && m->reject)
        fx->append_rejects++;
    if (after)
        fx->sent_after[m->type]++;
    else
        fx->sent_before[m->type]++;
    struct swm_buf b = {0};
    assert_int_equal(raft_message_encode(m, &b), 0);
    if (fx->nq == fx->capq) {
        fx->capq = fx->capq ? fx->capq * 2 : 64;
        fx->q = realloc(fx->q, fx->capq * sizeof(*fx->q));
    }
    fx->q[fx->nq++] = (struct fx_msg){
        .from = m->from, .to = m->to, .type = m->type, .bytes = b.data, .len = b.len};
}

bool fx_queued(struct fx *fx, enum raft_message_type t)
{
    for (size_t i = 0; i < fx->nq; i++)
        if (fx->q[i].type == t)
            return true;
    return false;
}

void fx_drop_queue(struct fx *fx)
{
    for (size_t i = 0; i < fx->nq; i++)
        swm_free(fx->q[i].bytes);
    fx->nq = 0;
}

bool fx_deliver_one(struct fx *fx)
{
    if (fx->nq == 0)
        return false;
    size_t pick = fx->reorder ? (size_t)(fx_rand(fx) % fx->nq) : 0;
    struct fx_msg msg = fx->q[pick];
    if (fx->dup_pct && fx_rand(fx) % 100 < fx->dup_pct) {
        void *copy = swm_malloc(msg.len);
        memcpy(copy, msg.bytes, msg.len);
        fx->q[pick].bytes = copy; /* the copy stays queued */
    } else {
        memmove(fx->q + pick, fx->q + pick + 1, (fx->nq - pick - 1) * sizeof(*fx->q));
        fx->nq--;
    }
    struct fx_node *to = fx_node(fx, msg.to);
    bool drop = to->r == NULL || fx->cut[msg.from][msg.to] ||
                (fx->drop_pct && fx_rand(fx) % 100 < fx->drop_pct);
    if (!drop) {
        struct raft_message *m;
        struct swm_err err = {0};
        if (raft_message_decode(msg.bytes, msg.len, 0, &m, &err) != 0)
            fail_msg("decode of our own %s failed: %s", raft_message_type_name(msg.type), err.msg);
        int rc = raft_step(to->r, m);
        if (rc != 0)
            fail_msg("node %llu: step %s: %d", (unsigned long long)msg.to,
                     raft_message_type_name(msg.type), rc);
        raft_message_free(m);
        fx->delivered++;
    }
    swm_free(msg.bytes);
    return true;
}

/* --- readies ------------------------------------------------------------- */

static void check_leader(struct fx *fx, struct fx_node *nd)
{
    struct raft *r = nd->r;
    if (raft_state(r) != RAFT_LEADER)
        return;
    uint64_t term = raft_term(r);
    if (term >= fx->n_terms) {
        size_t n = term + 16;
        fx->leader_of_term = realloc(fx->leader_of_term, n * sizeof(*fx->leader_of_term));
        memset(fx->leader_of_term + fx->n_terms, 0, (n - fx->n_terms) * sizeof(uint64_t));
        fx->n_terms = n;
    }
    if (fx->leader_of_term[term] != 0 && fx->leader_of_term[term] != nd->id)
        fail_msg("election safety: term %llu has leaders %llu and %llu", (unsigned long long)term,
                 (unsigned long long)fx->leader_of_term[term], (unsigned long long)nd->id);
    if (fx->leader_of_term[term] == nd->id)
        return;
    fx->leader_of_term[term] = nd->id;
    /* Leader completeness (§3.6.3): everything applied anywhere is in the
     * new leader's log (or covered by its snapshot). */
    for (size_t i = 1; i < fx->n_ledger; i++) {
        if (fx->ledger[i].term == 0)
            continue;
        uint64_t t = raft_log_term(r, i);
        if (t == 0 && i <= raft_commit_index(r))
            continue; /* compacted */
        if (t != fx->ledger[i].term)
            fail_msg("leader completeness: leader %llu term %llu has term %llu at %zu, "
                     "applied %llu",
                     (unsigned long long)nd->id, (unsigned long long)term, (unsigned long long)t, i,
                     (unsigned long long)fx->ledger[i].term);
    }
}

static void handle_ready(struct fx *fx, struct fx_node *nd)
{
    struct raft_ready *rd;
    assert_int_equal(raft_ready(nd->r, &rd), 0);
    for (size_t i = 0; i < rd->n_messages; i++)
        enqueue(fx, &rd->messages[i], false);
    if (rd->has_snapshot) {
        disk_truncate(nd, 0);
        raft_configuration_free(&nd->snap.conf);
        nd->snap.index = rd->snapshot.index;
        nd->snap.term = rd->snapshot.term;
        assert_int_equal(raft_configuration_copy(&nd->snap.conf, &rd->snapshot.conf), 0);
        free(nd->snap_data);
        nd->snap_data = malloc(rd->snapshot_len + 1);
        memcpy(nd->snap_data, rd->snapshot_data ? rd->snapshot_data : "", rd->snapshot_len);
        nd->snap_len = rd->snapshot_len;
        sm_restore(fx, nd, rd->snapshot_data, rd->snapshot_len, rd->snapshot.index);
        nd->installs++;
    }
    if (rd->has_hard_state)
        nd->hs = rd->hard_state;
    if (rd->truncate_from)
        disk_truncate(nd, rd->truncate_from);
    if (rd->n_entries > 0 && !rd->truncate_from) {
        /* Without a truncation point the entries must follow the disk. */
        uint64_t last = nd->n_log ? nd->log[nd->n_log - 1].index : nd->snap.index;
        assert_int_equal(rd->entries[0].index, last + 1);
    }
    for (size_t i = 0; i < rd->n_entries; i++)
        disk_append(nd, &rd->entries[i]);
    for (size_t i = 0; i < rd->n_messages_after_persist; i++)
        enqueue(fx, &rd->messages_after_persist[i], true);
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (e->index <= nd->applied)
            continue; /* restarted: the state machine already has it */
        if (e->index != nd->applied + 1)
            fail_msg("node %llu applies %llu after %llu", (unsigned long long)nd->id,
                     (unsigned long long)e->index, (unsigned long long)nd->applied);
        nd->applied = e->index;
        if (e->type == RAFT_ENTRY_NORMAL && e->len > 0) {
            sm_push(nd, e->index, e->term, e->data, e->len);
            ledger_check(fx, e->index, e->term, nd->sm[nd->n_sm - 1].data);
        }
    }
    for (size_t i = 0; i < rd->n_read_states; i++) {
        if (rd->read_states[i].status == 0 && rd->read_states[i].index > nd->applied)
            fail_msg("read released at %llu before applied (%llu)",
                     (unsigned long long)rd->read_states[i].index, (unsigned long long)nd->applied);
        if (nd->n_reads < 64)
            nd->reads[nd->n_reads++] = rd->read_states[i];
    }
    uint64_t request = rd->snapshot_request;
    if (request)
        nd->snapshot_requests++;
    assert_int_equal(raft_advance(nd->r, rd), 0);
    raft_ready_free(rd);
    if (request && fx->auto_snapshot) {
        size_t len;
        void *data = sm_serialize(fx, nd, &len);
        struct raft_snapshot_meta meta;
        uint64_t compact;
        assert_int_equal(raft_snapshot_done(nd->r, nd->applied, data, len, &meta, &compact), 0);
        raft_configuration_free(&nd->snap.conf);
        nd->snap = meta;
        free(nd->snap_data);
        nd->snap_data = data;
        nd->snap_len = len;
        if (compact)
            disk_compact(nd, compact);
    }
    uint64_t commit = raft_commit_index(nd->r);
    if (commit < nd->last_commit)
        fail_msg("node %llu: commit went back from %llu to %llu", (unsigned long long)nd->id,
                 (unsigned long long)nd->last_commit, (unsigned long long)commit);
    nd->last_commit = commit;
    check_leader(fx, nd);
}

void fx_process(struct fx *fx)
{
    for (size_t i = 0; i < fx->n; i++) {
        struct fx_node *nd = &fx->nodes[i];
        int guard = 0;
        while (nd->r != NULL && raft_has_ready(nd->r)) {
            handle_ready(fx, nd);
            assert_true(++guard < 1000);
        }
    }
}

void fx_stabilize(struct fx *fx)
{
    for (long guard = 0;; guard++) {
        if (guard > 2000000)
            fail_msg("cluster does not settle");
        fx_process(fx);
        if (!fx_deliver_one(fx))
            break;
    }
    fx_process(fx);
}

void fx_tick(struct fx *fx, uint64_t id)
{
    for (size_t i = 0; i < fx->n; i++) {
        struct fx_node *nd = &fx->nodes[i];
        if (nd->r != NULL && (id == 0 || nd->id == id))
            assert_int_equal(raft_tick(nd->r), 0);
    }
    fx_process(fx);
}

void fx_run(struct fx *fx, unsigned ticks)
{
    for (unsigned i = 0; i < ticks; i++) {
        fx_tick(fx, 0);
        fx_stabilize(fx);
    }
}

uint64_t fx_leader(struct fx *fx)
{
    uint64_t best = 0, best_term = 0;
    for (size_t i = 0; i < fx->n; i++) {
        struct fx_node *nd = &fx->nodes[i];
        if (nd->r && raft_state(nd->r) == RAFT_LEADER && raft_term(nd->r) >= best_term) {
            best = nd->id;
            best_term = raft_term(nd->r);
        }
    }
    return best;
}

void fx_campaign(struct fx *fx, uint64_t id)
{
    struct raft *r = fx_raft(fx, id);
    uint64_t from = id == 1 ? 2 : 1;
    struct raft_message m = {
        .type = RAFT_MSG_TIMEOUT_NOW, .from = from, .to = id, .term = raft_term(r)};
    if (m.term == 0 || raft_state(r) != RAFT_FOLLOWER) {
        /* No leader to send TimeoutNow at term 0, and candidates ignore it:
         * tick it alone until it has started a new term. */
        uint64_t term = raft_term(r);
        for (int i = 0; i < 100 && raft_state(r) != RAFT_LEADER; i++) {
            assert_int_equal(raft_tick(r), 0);
            fx_stabilize(fx);
            if (raft_term(r) > term)
                break;
        }
    } else {
        assert_int_equal(raft_step(r, &m), 0);
    }
    fx_stabilize(fx);
}

void fx_elect(struct fx *fx, uint64_t id)
{
    /* A campaign can lose to votes already given in that term; the next
     * one, a term later, cannot. */
    for (int i = 0; i < 3 && raft_state(fx_raft(fx, id)) != RAFT_LEADER; i++)
        fx_campaign(fx, id);
    if (raft_state(fx_raft(fx, id)) != RAFT_LEADER)
        fail_msg("node %llu did not win (state %s)", (unsigned long long)id,
                 raft_state_name(raft_state(fx_raft(fx, id))));
    fx_stabilize(fx);
}

void fx_cut(struct fx *fx, uint64_t a, uint64_t b)
{
    fx->cut[a][b] = fx->cut[b][a] = true;
}

void fx_isolate(struct fx *fx, uint64_t id)
{
    for (uint64_t j = 1; j <= fx->n; j++)
        if (j != id)
            fx_cut(fx, id, j);
}

void fx_heal(struct fx *fx)
{
    memset(fx->cut, 0, sizeof(fx->cut));
}

/* --- nodes --------------------------------------------------------------- */

static void node_start(struct fx *fx, struct fx_node *nd)
{
    struct raft_entry *es = calloc(nd->n_log + 1, sizeof(*es));
    for (size_t i = 0; i < nd->n_log; i++)
        es[i] = (struct raft_entry){.index = nd->log[i].index,
                                    .term = nd->log[i].term,
                                    .type = nd->log[i].type,
                                    .data = nd->log[i].data,
                                    .len = nd->log[i].len};
    struct raft_init_state in = {
        .hard_state = nd->hs,
        .snapshot = nd->snap,
        .snapshot_data = nd->snap_data,
        .snapshot_len = nd->snap_len,
        .entries = es,
        .n_entries = nd->n_log,
        .applied = nd->applied,
    };
    struct swm_err err = {0};
    if (raft_new(&nd->opt, &in, &nd->r, &err) != 0)
        fail_msg("raft_new node %llu: %s", (unsigned long long)nd->id, err.msg);
    free(es);
    nd->last_commit = raft_commit_index(nd->r);
}

struct fx *fx_new(size_t n, size_t voters, uint64_t seed, fx_tweak_fn tweak)
{
    assert_true(n >= 1 && n <= FX_MAX && voters <= n);
    struct fx *fx = calloc(1, sizeof(*fx));
    fx->n = n;
    fx->rng = seed;
    for (size_t i = 0; i < n; i++) {
        struct fx_node *nd = &fx->nodes[i];
        nd->id = i + 1;
        raft_options_init(&nd->opt, nd->id, seed * 1000 + i + 1);
        if (tweak)
            tweak(&nd->opt);
        if (i < voters) {
            /* Bootstrap: every founding voter knows the initial membership. */
            nd->snap.conf.servers = calloc(voters, sizeof(struct raft_server));
            nd->snap.conf.n_servers = voters;
            for (size_t j = 0; j < voters; j++)
                nd->snap.conf.servers[j] = (struct raft_server){.id = j + 1, .role = RAFT_VOTER};
        }
        /* The conf arrays must come from swm_malloc to be freed with
         * raft_configuration_free: copy them through it. */
        struct raft_configuration c = nd->snap.conf;
        assert_int_equal(raft_configuration_copy(&nd->snap.conf, &c), 0);
        free(c.servers);
        node_start(fx, nd);
    }
    return fx;
}

void fx_crash(struct fx *fx, uint64_t id)
{
    struct fx_node *nd = fx_node(fx, id);
    raft_free(nd->r);
    nd->r = NULL;
}

void fx_crash_mid_ready(struct fx *fx, uint64_t id)
{
    struct fx_node *nd = fx_node(fx, id);
    if (nd->r != NULL && raft_has_ready(nd->r)) {
        struct raft_ready *rd;
        assert_int_equal(raft_ready(nd->r, &rd), 0);
        for (size_t i = 0; i < rd->n_messages; i++)
            enqueue(fx, &rd->messages[i], false);
        raft_ready_free(rd);
    }
    fx_crash(fx, id);
}

void fx_restart(struct fx *fx, uint64_t id)
{
    struct fx_node *nd = fx_node(fx, id);
    assert_null(nd->r);
    node_start(fx, nd);
    fx_process(fx);
}

void fx_free(struct fx *fx)
{
    if (fx == NULL)
        return;
    for (size_t i = 0; i < fx->n; i++) {
        struct fx_node *nd = &fx->nodes[i];
        raft_free(nd->r);
        raft_configuration_free(&nd->snap.conf);
        free(nd->snap_data);
        disk_truncate(nd, 0);
        free(nd->log);
        sm_clear(nd);
    }
    fx_drop_queue(fx);
    free(fx->q);
    for (size_t i = 0; i < fx->n_ledger; i++)
        free(fx->ledger[i].data);
    free(fx->ledger);
    free(fx->leader_of_term);
    free(fx);
}

int fx_propose(struct fx *fx, uint64_t id, const char *data, uint64_t *index)
{
    struct raft_buffer b = {.base = data, .len = strlen(data)};
    uint64_t idx = 0, term;
    int rc = raft_propose(fx_raft(fx, id), &b, 1, &idx, &term);
    if (index)
        *index = idx;
    return rc;
}

const struct fx_record *fx_applied_at(struct fx *fx, uint64_t id, uint64_t index)
{
    struct fx_node *nd = fx_node(fx, id);
    for (size_t i = 0; i < nd->n_sm; i++)
        if (nd->sm[i].index == index)
            return &nd->sm[i];
    return NULL;
}

bool fx_applied(struct fx *fx, uint64_t id, uint64_t index, const char *data)
{
    const struct fx_record *rec = fx_applied_at(fx, id, index);
    return rec != NULL && strcmp(rec->data, data) == 0;
}

static const struct fx_disk_entry *disk_at(const struct fx_node *nd, uint64_t index)
{
    if (nd->n_log == 0 || index < nd->log[0].index || index > nd->log[nd->n_log - 1].index)
        return NULL;
    return &nd->log[index - nd->log[0].index];
}

void fx_check_log_matching(struct fx *fx)
{
    for (size_t a = 0; a < fx->n; a++)
        for (size_t b = a + 1; b < fx->n; b++) {
            const struct fx_node *na = &fx->nodes[a], *nb = &fx->nodes[b];
            if (na->n_log == 0 || nb->n_log == 0)
                continue;
            uint64_t lo = na->log[0].index > nb->log[0].index ? na->log[0].index : nb->log[0].index;
            uint64_t hi = na->log[na->n_log - 1].index < nb->log[nb->n_log - 1].index
                              ? na->log[na->n_log - 1].index
                              : nb->log[nb->n_log - 1].index;
            /* Find the highest index where the terms agree; below it every
             * entry must be identical (§3.5). */
            uint64_t agree = 0;
            for (uint64_t i = hi; i >= lo && i > 0; i--)
                if (disk_at(na, i)->term == disk_at(nb, i)->term) {
                    agree = i;
                    break;
                }
            for (uint64_t i = lo; agree && i <= agree; i++) {
                const struct fx_disk_entry *x = disk_at(na, i), *y = disk_at(nb, i);
                if (x->term != y->term || x->len != y->len ||
                    (x->len && memcmp(x->data, y->data, x->len) != 0))
                    fail_msg("log matching: nodes %llu and %llu agree at %llu but differ "
                             "at %llu",
                             (unsigned long long)na->id, (unsigned long long)nb->id,
                             (unsigned long long)agree, (unsigned long long)i);
            }
        }
}
