/* store/raftlog.c: durable Raft storage. Round trips through close and
 * reopen, a crash between append and apply, damaged logs refused with the
 * index named, truncation, compaction, snapshots, allocation failures, and a
 * real single-node core (manager/raft) running on top of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "fixture.h"
#include "store/internal.h" /* store__crc32c, to forge a well-checksummed bad entry */
#include "store/raftlog.h"

#define CREATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE
#define UPDATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE
#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING

static void reopen(struct store_fx *fx)
{
    store_close(fx->s);
    fx->s = fixture_open(fx->dir);
}

/* --- building entries and readies --------------------------------------- */

/* A raft entry whose data is entry packed (entry freed); NULL: a no-op.
 * The data is swm_malloc'd; free with free_entries. */
static struct raft_entry mk(uint64_t index, uint64_t term, Swarmc__StoreEntry *entry)
{
    struct raft_entry e = {.term = term, .index = index, .type = RAFT_ENTRY_NORMAL};
    if (entry == NULL)
        return e;
    struct swm_buf b = {0};
    assert_int_equal(proto_pack(&entry->base, &b), 0);
    proto_free(entry);
    e.data = b.data;
    e.len = b.len;
    return e;
}

static void free_entries(struct raft_entry *es, size_t n)
{
    for (size_t i = 0; i < n; i++)
        swm_free((void *)es[i].data);
}

/* Entries first..first+n-1 of term, each creating node "n<index>". */
static void mk_nodes(struct raft_entry *es, uint64_t first, size_t n, uint64_t term)
{
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "n%llu", (unsigned long long)(first + i));
        es[i] = mk(first + i, term, fixture_entry1(CREATE, fixture_node(id, 0)));
    }
}

/* Persists rd, failing the test unless it commits; results of committed
 * entries are checked to be 0 when codes is NULL. */
static void persist(struct store *s, const struct raft_ready *rd, int *codes)
{
    struct store_apply_result results[512];
    assert_true(rd->n_committed <= 512);
    struct swm_err err = {0};
    int rc = store_raft_persist(s, rd, results, &err);
    if (rc != 0)
        fail_msg("store_raft_persist: %s", err.msg);
    for (size_t i = 0; i < rd->n_committed; i++) {
        if (codes != NULL)
            codes[i] = results[i].err.code;
        else if (results[i].err.code != 0)
            fail_msg("entry %llu: %s", (unsigned long long)rd->committed[i].index,
                     results[i].err.msg);
    }
}

static void append(struct store *s, struct raft_entry *es, size_t n, uint64_t term, uint64_t commit)
{
    struct raft_ready rd = {.has_hard_state = true,
                            .hard_state = {.term = term, .vote = 1, .commit = commit},
                            .entries = es,
                            .n_entries = n};
    persist(s, &rd, NULL);
}

static void commit(struct store *s, struct raft_entry *es, size_t n, uint64_t term)
{
    struct raft_ready rd = {.has_hard_state = true,
                            .hard_state = {.term = term, .vote = 1, .commit = es[n - 1].index},
                            .committed = es,
                            .n_committed = n};
    persist(s, &rd, NULL);
}

static struct raft_init_state load_ok(struct store *s)
{
    struct raft_init_state in;
    struct swm_err err = {0};
    int rc = store_raft_load(s, &in, &err);
    if (rc != 0)
        fail_msg("store_raft_load: %s", err.msg);
    return in;
}

/* Loads expecting SWM_ECORRUPT with a message containing what. */
static void load_refused(struct store *s, const char *what)
{
    struct raft_init_state in = {.applied = 12345};
    struct swm_err err = {0};
    assert_int_equal(store_raft_load(s, &in, &err), SWM_ECORRUPT);
    assert_int_equal(err.code, SWM_ECORRUPT);
    if (strstr(err.msg, what) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, what);
    assert_non_null(strstr(err.msg, "re-join"));
    assert_true(in.applied == 12345); /* untouched on failure */
}

static uint64_t node_version(struct store *s, const char *id)
{
    struct store_read *r;
    assert_int_equal(store_read_begin(s, &r, NULL), 0);
    Swarmc__Node *n = NULL;
    int rc = store_get_node(r, id, &n);
    store_read_end(r);
    if (rc == SWM_ENOTFOUND)
        return 0;
    assert_int_equal(rc, 0);
    uint64_t v = n->meta->version;
    proto_free(n);
    return v;
}

static size_t count_nodes(struct store *s)
{
    struct store_read *r;
    assert_int_equal(store_read_begin(s, &r, NULL), 0);
    Swarmc__Node **nodes;
    size_t n;
    assert_int_equal(store_list_nodes(r, &nodes, &n), 0);
    store_free_list(nodes, n);
    store_read_end(r);
    return n;
}

/* --- raw LMDB, to damage a closed store --------------------------------- */

struct raw {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
};

static void raw_open(struct raw *w, const char *dir, const char *db)
{
    assert_int_equal(mdb_env_create(&w->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(w->env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(w->env, 8ULL << 30), 0);
    assert_int_equal(mdb_env_open(w->env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(w->env, NULL, 0, &w->txn), 0);
    assert_int_equal(mdb_dbi_open(w->txn, db, 0, &w->dbi), 0);
}

static void raw_close(struct raw *w)
{
    assert_int_equal(mdb_txn_commit(w->txn), 0);
    mdb_env_close(w->env);
}

static MDB_val index_key(uint8_t kb[8], uint64_t index)
{
    store__put_be64(kb, index);
    return (MDB_val){.mv_size = 8, .mv_data = kb};
}

/* Rewrites entry index's value through edit (which may change its size). */
static void raw_edit(struct store_fx *fx, uint64_t index, void (*edit)(uint8_t *v, size_t *len))
{
    store_close(fx->s);
    fx->s = NULL;
    struct raw w;
    raw_open(&w, fx->dir, "raft_log");
    uint8_t kb[8], copy[4096];
    MDB_val key = index_key(kb, index), val;
    assert_int_equal(mdb_get(w.txn, w.dbi, &key, &val), 0);
    assert_true(val.mv_size <= sizeof(copy));
    size_t len = val.mv_size;
    memcpy(copy, val.mv_data, len);
    edit(copy, &len);
    val = (MDB_val){.mv_size = len, .mv_data = copy};
    assert_int_equal(mdb_put(w.txn, w.dbi, &key, &val, 0), 0);
    raw_close(&w);
    fx->s = fixture_open(fx->dir);
}

static void raw_delete(struct store_fx *fx, uint64_t index)
{
    store_close(fx->s);
    fx->s = NULL;
    struct raw w;
    raw_open(&w, fx->dir, "raft_log");
    uint8_t kb[8];
    MDB_val key = index_key(kb, index);
    assert_int_equal(mdb_del(w.txn, w.dbi, &key, NULL), 0);
    raw_close(&w);
    fx->s = fixture_open(fx->dir);
}

static void flip_data_byte(uint8_t *v, size_t *len)
{
    v[*len - 1] ^= 0x20;
}

static void tear(uint8_t *v, size_t *len)
{
    (void)v;
    *len -= 3;
}

/* A well-formed value for entry 4 (its checksum matches there), written
 * under another key: the checksum covers the index, so it is caught. */
static void checksum_for_index_4(uint8_t *v, size_t *len)
{
    uint8_t kb[8];
    store__put_be64(kb, 4);
    store__put_be32(v, store__crc32c(store__crc32c(0, kb, 8), v + 4, *len - 4));
}

/* --- tests -------------------------------------------------------------- */

static void new_store_loads_empty(void **state)
{
    struct store_fx *fx = *state;
    struct raft_init_state in = load_ok(fx->s);
    assert_true(in.hard_state.term == 0 && in.hard_state.vote == 0 && in.hard_state.commit == 0);
    assert_true(in.snapshot.index == 0);
    assert_int_equal(in.snapshot.conf.n_servers, 0);
    assert_int_equal(in.n_entries, 0);
    assert_true(in.applied == 0);
    store_raft_init_free(&in);
    store_raft_init_free(NULL);
}

static void round_trip(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[4];
    es[0] = mk(1, 1, NULL); /* the leader's no-op */
    es[1] = mk(2, 1, fixture_entry1(CREATE, fixture_node("a", 0)));
    es[2] = mk(3, 2, fixture_entry1(CREATE, fixture_service("s1", "web", 0)));
    es[3] =
        (struct raft_entry){.term = 2, .index = 4, .type = RAFT_ENTRY_CONF, .data = "cf", .len = 2};
    append(fx->s, es, 4, 2, 0);
    commit(fx->s, es, 3, 2);
    assert_true(store_applied_index(fx->s) == 3);
    reopen(fx);

    struct raft_init_state in = load_ok(fx->s);
    assert_true(in.hard_state.term == 2 && in.hard_state.vote == 1 && in.hard_state.commit == 3);
    assert_int_equal(in.n_entries, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_true(in.entries[i].index == es[i].index);
        assert_true(in.entries[i].term == es[i].term);
        assert_int_equal(in.entries[i].type, es[i].type);
        assert_int_equal(in.entries[i].len, es[i].len);
        if (es[i].len > 0)
            assert_memory_equal(in.entries[i].data, es[i].data, es[i].len);
        else
            assert_null(in.entries[i].data);
    }
    assert_true(in.applied == 3);
    assert_true(store_applied_index(fx->s) == 3);
    assert_true(node_version(fx->s, "a") == 2); /* meta.version = raft index */
    store_raft_init_free(&in);
    es[3].data = NULL;
    free_entries(es, 4);
}

/* DESIGN.md §5: the entries are durable before they are committed; a crash
 * then loses nothing, and applying them later (even when the core hands
 * them out twice) applies each exactly once. */
static void crash_between_append_and_apply(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[3];
    es[0] = mk(1, 1, fixture_entry1(CREATE, fixture_node("a", 0)));
    es[1] = mk(2, 1, fixture_entry1(UPDATE, fixture_node("a", 1)));
    es[2] = mk(3, 1, fixture_entry1(UPDATE, fixture_node("a", 2)));
    append(fx->s, es, 3, 1, 0);
    reopen(fx); /* the crash: appended, nothing applied */

    struct raft_init_state in = load_ok(fx->s);
    assert_int_equal(in.n_entries, 3);
    assert_true(in.applied == 0 && in.hard_state.commit == 0);
    store_raft_init_free(&in);
    assert_true(node_version(fx->s, "a") == 0);

    commit(fx->s, es, 2, 1);
    assert_true(node_version(fx->s, "a") == 2);
    reopen(fx); /* a crash before raft_advance: the core hands 1..3 out again */
    int codes[3] = {-1, -1, -1};
    struct raft_ready rd = {.has_hard_state = true,
                            .hard_state = {.term = 1, .vote = 1, .commit = 3},
                            .committed = es,
                            .n_committed = 3};
    persist(fx->s, &rd, codes);
    /* Entries 1 and 2 were skipped (re-applying would fail: EEXISTS, ESTALE). */
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], 0);
    assert_int_equal(codes[2], 0);
    assert_true(node_version(fx->s, "a") == 3);
    assert_true(store_applied_index(fx->s) == 3);
    reopen(fx);
    in = load_ok(fx->s);
    assert_true(in.applied == 3 && in.hard_state.commit == 3);
    store_raft_init_free(&in);
    assert_true(node_version(fx->s, "a") == 3);
    free_entries(es, 3);
}

/* Deterministic entry failures are results, not errors; no-ops and conf
 * entries advance the applied index without touching objects. */
static void committed_outcomes(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[4];
    es[0] = mk(1, 1, NULL);
    es[1] = mk(2, 1, fixture_entry1(CREATE, fixture_node("a", 0)));
    es[2] = mk(3, 1, fixture_entry1(CREATE, fixture_node("a", 0)));
    es[3] = (struct raft_entry){
        .term = 1, .index = 4, .type = RAFT_ENTRY_NORMAL, .data = "\xff\xff\xff", .len = 3};
    append(fx->s, es, 4, 1, 0);
    int codes[4];
    struct raft_ready rd = {.committed = es, .n_committed = 4};
    persist(fx->s, &rd, codes);
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], 0);
    assert_int_equal(codes[2], SWM_EEXISTS);
    assert_int_equal(codes[3], SWM_EINVAL_SPEC);
    assert_true(store_applied_index(fx->s) == 4);
    assert_true(node_version(fx->s, "a") == 2);

    /* A committed entry that skips one is a driver bug: nothing written. */
    struct raft_entry gap = mk(6, 1, NULL);
    rd = (struct raft_ready){.committed = &gap, .n_committed = 1};
    struct store_apply_result res[1];
    struct swm_err err = {0};
    assert_int_equal(store_raft_persist(fx->s, &rd, res, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "entry 6"));
    assert_true(store_applied_index(fx->s) == 4);
    es[3].data = NULL;
    free_entries(es, 4);
}

static void corrupted_entry_is_refused(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[6];
    mk_nodes(es, 1, 6, 1);
    append(fx->s, es, 6, 1, 0);
    commit(fx->s, es, 6, 1);

    raw_edit(fx, 4, flip_data_byte);
    load_refused(fx->s, "raft log entry 4 fails its checksum: the log is corrupted");
    /* The object tables are untouched: the node still opens and reads. */
    assert_true(node_version(fx->s, "n4") == 4);
    free_entries(es, 6);
}

static void torn_entry_is_refused(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[6];
    mk_nodes(es, 1, 6, 1);
    append(fx->s, es, 6, 1, 0);
    raw_edit(fx, 6, tear);
    load_refused(fx->s, "raft log entry 6 fails its checksum");
    free_entries(es, 6);
}

static void entry_under_another_key_is_refused(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[6];
    mk_nodes(es, 1, 6, 1);
    append(fx->s, es, 6, 1, 0);
    raw_edit(fx, 5, checksum_for_index_4);
    load_refused(fx->s, "raft log entry 5 fails its checksum");
    free_entries(es, 6);
}

static void lower_term_5(uint8_t *v, size_t *len)
{
    store__put_be64(v + 4, 1);
    uint8_t kb[8];
    store__put_be64(kb, 5);
    store__put_be32(v, store__crc32c(store__crc32c(0, kb, 8), v + 4, *len - 4));
}

static void term_decrease_is_refused(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[6];
    mk_nodes(es, 1, 3, 1);
    mk_nodes(es + 3, 4, 3, 2);
    append(fx->s, es, 6, 2, 0);
    raw_edit(fx, 5, lower_term_5);
    load_refused(fx->s, "raft log entry 5 has term 1, below term 2 of entry 4");
    free_entries(es, 6);
}

static void gap_is_refused(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[8];
    mk_nodes(es, 1, 8, 1);
    append(fx->s, es, 8, 1, 0);
    raw_delete(fx, 4);
    raw_delete(fx, 5);
    load_refused(fx->s, "raft log entries 4 to 5 are missing");
    free_entries(es, 8);
}

static void lost_head_is_refused(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[4];
    mk_nodes(es, 1, 4, 1);
    append(fx->s, es, 4, 1, 0);
    raw_delete(fx, 1);
    load_refused(fx->s, "raft log entries 1 to 1 are missing");
    free_entries(es, 4);
}

static void lost_tail_is_refused(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry es[4];
    mk_nodes(es, 1, 4, 1);
    append(fx->s, es, 4, 1, 0);
    commit(fx->s, es, 4, 1);
    raw_delete(fx, 4);
    load_refused(fx->s, "raft log ends at entry 3 but entry 4 is recorded as committed");
    free_entries(es, 4);
}

/* A store the one-member log wrote has applied entries but no raft log:
 * raft must not start from it as if it were empty. */
static void store_without_raft_log_is_refused(void **state)
{
    struct store_fx *fx = *state;
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_node("a", 0))), 0);
    load_refused(fx->s, "raft log ends at entry 0 but the store has applied entry 1");
}

static void bootstrap_writes_founding_entries(void **state)
{
    struct store_fx *fx = *state;
    struct raft_server voters[] = {{7, RAFT_VOTER}, {8, RAFT_VOTER}};
    struct raft_configuration conf = {.servers = voters, .n_servers = 2};
    Swarmc__StoreEntry *first = fixture_entry1(CREATE, fixture_node("n1", 0));
    struct swm_err err = {0};
    assert_int_equal(store_raft_bootstrap(fx->s, &conf, first, &err), 0);
    reopen(fx);
    struct raft_init_state in = load_ok(fx->s);
    assert_int_equal(in.n_entries, 2);
    assert_true(in.hard_state.term == 1 && in.hard_state.commit == 2);
    assert_int_equal(in.entries[0].type, RAFT_ENTRY_CONF);
    assert_true(in.entries[1].term == 1 && in.entries[1].type == RAFT_ENTRY_NORMAL);
    struct raft_configuration got;
    assert_int_equal(raft_configuration_decode(in.entries[0].data, in.entries[0].len, &got, NULL),
                     0);
    assert_int_equal(raft_configuration_voters(&got), 2);
    raft_configuration_free(&got);
    store_raft_init_free(&in);

    /* Once there is raft state, nothing is overwritten. */
    assert_int_equal(store_raft_bootstrap(fx->s, &conf, first, &err), SWM_EEXISTS);
    struct raft_configuration none = {0};
    assert_int_equal(store_raft_bootstrap(fx->s, &none, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "no voter"));
    proto_free(first);
}

/* --force-new-cluster: the survivor becomes the only voter, the others are
 * removed for good, and nothing already in the log is dropped. */
static void force_new_cluster_keeps_log(void **state)
{
    struct store_fx *fx = *state;
    struct swm_err err = {0};
    assert_int_equal(store_raft_force_new_cluster(fx->s, 1, &err), SWM_ENOTFOUND);
    struct raft_server voters[3] = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {3, RAFT_VOTER}};
    struct raft_configuration conf = {.servers = voters, .n_servers = 3};
    Swarmc__StoreEntry *first = fixture_entry1(CREATE, fixture_node("n1", 0));
    assert_int_equal(store_raft_bootstrap(fx->s, &conf, first, &err), 0);
    proto_free(first);
    struct raft_entry more[2];
    mk_nodes(more, 3, 2, 4); /* uncommitted entries of term 4 */
    append(fx->s, more, 2, 4, 2);
    free_entries(more, 2);
    assert_int_equal(store_raft_force_new_cluster(fx->s, 2, &err), 0);
    reopen(fx);
    struct raft_init_state in = load_ok(fx->s);
    assert_int_equal(in.n_entries, 5);
    const struct raft_entry *last = &in.entries[4];
    assert_true(last->index == 5 && last->term == 4 && last->type == RAFT_ENTRY_CONF);
    assert_true(in.hard_state.term == 4 && in.hard_state.commit == 2);
    struct raft_configuration got;
    assert_int_equal(raft_configuration_decode(last->data, last->len, &got, NULL), 0);
    assert_int_equal(got.n_servers, 1);
    assert_true(got.servers[0].id == 2 && got.servers[0].role == RAFT_VOTER);
    assert_true(raft_configuration_is_removed(&got, 1) && raft_configuration_is_removed(&got, 3));
    assert_false(raft_configuration_is_removed(&got, 2));
    raft_configuration_free(&got);
    store_raft_init_free(&in);
}

static void bootstrap_refuses_first_entry_over_applied_state(void **state)
{
    struct store_fx *fx = *state;
    assert_int_equal(fixture_apply1(fx->s, fixture_entry1(CREATE, fixture_node("a", 0))), 0);
    struct raft_server self = {1, RAFT_VOTER};
    struct raft_configuration conf = {.servers = &self, .n_servers = 1};
    Swarmc__StoreEntry *first = fixture_entry1(CREATE, fixture_node("b", 0));
    struct swm_err err = {0};
    assert_int_equal(store_raft_bootstrap(fx->s, &conf, first, &err), -EINVAL);
    proto_free(first);
    load_refused(fx->s, "has applied entry 1"); /* unchanged */
    /* Without a first entry, the applied state becomes the snapshot. */
    assert_int_equal(store_raft_bootstrap(fx->s, &conf, NULL, &err), 0);
    struct raft_init_state in = load_ok(fx->s);
    assert_true(in.snapshot.index == 1 && in.snapshot.term == 1 && in.applied == 1);
    store_raft_init_free(&in);
}

static void truncates_conflicting_suffix(void **state)
{
    struct store_fx *fx = *state;
    struct raft_entry old[5], newer[2], third[1];
    mk_nodes(old, 1, 5, 1);
    append(fx->s, old, 5, 1, 0);

    /* A new leader's log wins from index 3 on. */
    newer[0] = mk(3, 2, fixture_entry1(CREATE, fixture_node("x3", 0)));
    newer[1] = mk(4, 2, fixture_entry1(CREATE, fixture_node("x4", 0)));
    struct raft_ready rd = {.has_hard_state = true,
                            .hard_state = {.term = 2, .vote = 2, .commit = 0},
                            .truncate_from = 3,
                            .entries = newer,
                            .n_entries = 2};
    persist(fx->s, &rd, NULL);
    reopen(fx);
    struct raft_init_state in = load_ok(fx->s);
    assert_int_equal(in.n_entries, 4);
    assert_true(in.entries[1].term == 1 && in.entries[2].term == 2 && in.entries[3].term == 2);
    assert_int_equal(in.entries[3].len, newer[1].len);
    assert_memory_equal(in.entries[3].data, newer[1].data, newer[1].len);
    store_raft_init_free(&in);

    /* Overwriting without truncate_from drops what followed, too. */
    third[0] = mk(2, 3, NULL);
    rd = (struct raft_ready){.entries = third, .n_entries = 1};
    persist(fx->s, &rd, NULL);
    in = load_ok(fx->s);
    assert_int_equal(in.n_entries, 2);
    assert_true(in.entries[1].term == 3 && in.entries[1].len == 0);
    store_raft_init_free(&in);

    /* Entries that would leave a gap are refused and nothing is written. */
    struct raft_entry far = mk(9, 3, NULL);
    rd = (struct raft_ready){
        .has_hard_state = true, .hard_state = {.term = 9}, .entries = &far, .n_entries = 1};
    struct swm_err err = {0};
    assert_int_equal(store_raft_persist(fx->s, &rd, NULL, &err), -EINVAL);
    in = load_ok(fx->s);
    assert_int_equal(in.n_entries, 2);
    assert_true(in.hard_state.term == 2); /* the hard state rolled back too */
    store_raft_init_free(&in);
    free_entries(old, 5);
    free_entries(newer, 2);
}

static struct raft_configuration test_conf(void)
{
    struct raft_server servers[] = {{1, RAFT_VOTER}, {2, RAFT_LEARNER}};
    uint64_t removed[] = {3};
    struct raft_configuration src = {servers, 2, removed, 1}, dst;
    assert_int_equal(raft_configuration_copy(&dst, &src), 0);
    return dst;
}

static void check_conf(const struct raft_configuration *c)
{
    assert_int_equal(c->n_servers, 2);
    assert_true(c->servers[0].id == 1 && c->servers[0].role == RAFT_VOTER);
    assert_true(c->servers[1].id == 2 && c->servers[1].role == RAFT_LEARNER);
    assert_int_equal(c->n_removed, 1);
    assert_true(c->removed[0] == 3);
}

/* Applies nodes n1..n<count> (entries 1..count, term 1). */
static void fill(struct store *s, size_t count)
{
    struct raft_entry es[64];
    assert_true(count <= 64);
    mk_nodes(es, 1, count, 1);
    append(s, es, count, 1, 0);
    commit(s, es, count, 1);
    free_entries(es, count);
}

/* The snapshot path the driver follows: take, save, compact. The trailing
 * window survives, and a restart hands back snapshot + window. */
static void snapshot_and_compaction(void **state)
{
    struct store_fx *fx = *state;
    fill(fx->s, 20);

    struct swm_buf data = {0};
    uint64_t applied = 0;
    assert_int_equal(store_raft_snapshot_take(fx->s, &data, &applied, NULL), 0);
    assert_true(applied == 20);
    struct raft_snapshot_meta meta = {.index = 20, .term = 1, .conf = test_conf()};
    assert_int_equal(store_raft_snapshot_save(fx->s, &meta, data.data, data.len, NULL), 0);
    assert_int_equal(store_raft_compact(fx->s, 15, NULL), 0); /* trailing window of 5 */
    reopen(fx);

    struct raft_init_state in = load_ok(fx->s);
    assert_true(in.snapshot.index == 20 && in.snapshot.term == 1);
    check_conf(&in.snapshot.conf);
    assert_int_equal(in.snapshot_len, data.len);
    assert_memory_equal(in.snapshot_data, data.data, data.len);
    assert_int_equal(in.n_entries, 5);
    assert_true(in.entries[0].index == 16 && in.entries[4].index == 20);
    assert_true(in.applied == 20);
    store_raft_init_free(&in);

    /* A snapshot above the applied index, or not above the last one, is a
     * driver bug. */
    struct swm_err err = {0};
    meta.index = 21;
    assert_int_equal(store_raft_snapshot_save(fx->s, &meta, data.data, data.len, &err), -EINVAL);
    meta.index = 20;
    assert_int_equal(store_raft_snapshot_save(fx->s, &meta, data.data, data.len, &err), -EINVAL);

    /* Entries continue after the window; compacting everything up to the
     * snapshot still loads. */
    struct raft_entry more[2];
    mk_nodes(more, 21, 2, 2);
    append(fx->s, more, 2, 2, 0);
    assert_int_equal(store_raft_compact(fx->s, 20, NULL), 0);
    in = load_ok(fx->s);
    assert_int_equal(in.n_entries, 2);
    assert_true(in.entries[0].index == 21);
    store_raft_init_free(&in);
    free_entries(more, 2);
    raft_configuration_free(&meta.conf);
    swm_buf_free(&data);
}

static void compaction_without_snapshot_is_refused(void **state)
{
    struct store_fx *fx = *state;
    fill(fx->s, 10);
    assert_int_equal(store_raft_compact(fx->s, 4, NULL), 0);
    load_refused(fx->s, "raft log entries 1 to 4 are missing");
}

static void damaged_snapshot_is_refused(void **state)
{
    struct store_fx *fx = *state;
    fill(fx->s, 3);
    struct swm_buf data = {0};
    uint64_t applied;
    assert_int_equal(store_raft_snapshot_take(fx->s, &data, &applied, NULL), 0);
    struct raft_snapshot_meta meta = {.index = 3, .term = 1, .conf = test_conf()};
    assert_int_equal(store_raft_snapshot_save(fx->s, &meta, data.data, data.len, NULL), 0);
    store_close(fx->s);
    data.data[data.len - 1] ^= 1;
    fixture_raw_put(fx->dir, "raft_state", "snapshot_data", 13, data.data, data.len, 0);
    fx->s = fixture_open(fx->dir);
    load_refused(fx->s, "the data of raft snapshot 3 fails its checksum");
    raft_configuration_free(&meta.conf);
    swm_buf_free(&data);
}

/* A follower installs a leader's snapshot: its objects are replaced (with
 * their versions and indexes), the log restarts after the snapshot. */
static void snapshot_install(void **state)
{
    struct store_fx *fx = *state;
    /* The leader's store. */
    char *dir2 = fixture_tmpdir();
    struct store *leader = fixture_open(dir2);
    struct raft_entry es[5];
    es[0] = mk(1, 1, fixture_entry1(CREATE, fixture_node("n1", 0)));
    es[1] = mk(2, 1, fixture_entry1(CREATE, fixture_service("s1", "web", 0)));
    es[2] = mk(3, 1, fixture_entry1(CREATE, fixture_task("t1", "s1", "n1", RUNNING, 0)));
    es[3] = mk(4, 1, fixture_entry1(CREATE, fixture_cluster("c1", 0)));
    es[4] = mk(5, 1, fixture_entry1(UPDATE, fixture_node("n1", 1)));
    append(leader, es, 5, 1, 0);
    commit(leader, es, 5, 1);
    struct swm_buf data = {0};
    uint64_t applied;
    assert_int_equal(store_raft_snapshot_take(leader, &data, &applied, NULL), 0);
    assert_true(applied == 5);

    /* The follower holds something else, and watches. */
    fill(fx->s, 2);
    struct raft_ready rd = {.has_snapshot = true,
                            .snapshot = {.index = 5, .term = 1, .conf = test_conf()},
                            .snapshot_data = data.data,
                            .snapshot_len = data.len,
                            .has_hard_state = true,
                            .hard_state = {.term = 1, .vote = 0, .commit = 5}};
    persist(fx->s, &rd, NULL);
    assert_true(store_applied_index(fx->s) == 5);
    assert_true(node_version(fx->s, "n1") == 5);
    assert_true(node_version(fx->s, "n2") == 0); /* gone */
    assert_int_equal(count_nodes(fx->s), 1);
    struct store_read *r;
    assert_int_equal(store_read_begin(fx->s, &r, NULL), 0);
    Swarmc__Task **tasks;
    size_t n;
    assert_int_equal(store_list_tasks_by_service(r, "s1", &tasks, &n), 0);
    assert_int_equal(n, 1);
    assert_true(tasks[0]->meta->version == 3);
    store_free_list(tasks, n);
    Swarmc__Service *svc;
    assert_int_equal(store_get_service_by_name(r, "web", &svc), 0);
    proto_free(svc);
    Swarmc__Cluster *cl;
    assert_int_equal(store_get_cluster(r, &cl), 0);
    proto_free(cl);
    store_read_end(r);

    /* The log continues after the snapshot, across a restart. */
    struct raft_entry next = mk(6, 2, fixture_entry1(UPDATE, fixture_node("n1", 5)));
    append(fx->s, &next, 1, 2, 5);
    commit(fx->s, &next, 1, 2);
    reopen(fx);
    struct raft_init_state in = load_ok(fx->s);
    assert_true(in.snapshot.index == 5);
    check_conf(&in.snapshot.conf);
    assert_int_equal(in.n_entries, 1);
    assert_true(in.entries[0].index == 6 && in.applied == 6);
    store_raft_init_free(&in);
    assert_true(node_version(fx->s, "n1") == 6);

    /* An old snapshot is refused. */
    struct swm_err err = {0};
    assert_int_equal(store_raft_persist(fx->s, &rd, NULL, &err), -EINVAL);
    assert_true(store_applied_index(fx->s) == 6);

    free_entries(&next, 1);
    raft_configuration_free(&rd.snapshot.conf);
    swm_buf_free(&data);
    free_entries(es, 5);
    store_close(leader);
    fixture_rmdir(dir2);
}

static void watch_count(void *arg, const struct store_event *events, size_t n)
{
    (void)events;
    *(size_t *)arg += n;
}

/* Every allocation of persist, load and snapshot_take may fail: the call
 * then returns -ENOMEM, writes nothing, and leaks nothing (ASan build). */
static void allocation_failures(void **state)
{
    struct store_fx *fx = *state;
    size_t seen = 0;
    assert_int_equal(store_watch(fx->s, watch_count, &seen), 0); /* events allocate */
    struct raft_entry es[3];
    mk_nodes(es, 1, 3, 1);
    struct raft_ready rd = {.has_hard_state = true,
                            .hard_state = {.term = 1, .vote = 1, .commit = 3},
                            .entries = es,
                            .n_entries = 3,
                            .committed = es,
                            .n_committed = 3};
    struct store_apply_result results[3];
    int rc = -1;
    long k;
    for (k = 0; k < 1000 && rc != 0; k++) {
        struct swm_err err = {0};
        swm_alloc_fail_after(k);
        rc = store_raft_persist(fx->s, &rd, results, &err);
        swm_alloc_fail_reset();
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_true(store_applied_index(fx->s) == 0);
            struct raft_init_state in = load_ok(fx->s);
            assert_int_equal(in.n_entries, 0);
            assert_true(in.hard_state.term == 0);
            store_raft_init_free(&in);
            assert_int_equal(count_nodes(fx->s), 0);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(k > 1);
    store_deliver_events(fx->s);
    assert_int_equal(seen, 3);
    assert_true(node_version(fx->s, "n3") == 3);

    struct swm_buf data = {0};
    uint64_t applied = 0;
    rc = -1;
    for (k = 0; k < 1000 && rc != 0; k++) {
        swm_alloc_fail_after(k);
        rc = store_raft_snapshot_take(fx->s, &data, &applied, NULL);
        swm_alloc_fail_reset();
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(data.len, 0);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(k > 1);
    struct raft_snapshot_meta meta = {.index = 3, .term = 1, .conf = test_conf()};
    rc = -1;
    for (k = 0; k < 1000 && rc != 0; k++) {
        swm_alloc_fail_after(k);
        rc = store_raft_snapshot_save(fx->s, &meta, data.data, data.len, NULL);
        swm_alloc_fail_reset();
        if (rc != 0)
            assert_int_equal(rc, -ENOMEM);
    }
    assert_int_equal(rc, 0);

    rc = -1;
    for (k = 0; k < 1000 && rc != 0; k++) {
        struct raft_init_state in = {0};
        swm_alloc_fail_after(k);
        rc = store_raft_load(fx->s, &in, NULL);
        swm_alloc_fail_reset();
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            continue;
        }
        assert_int_equal(in.n_entries, 3);
        assert_true(in.snapshot.index == 3);
        check_conf(&in.snapshot.conf);
        store_raft_init_free(&in);
    }
    assert_int_equal(rc, 0);
    assert_true(k > 3);
    raft_configuration_free(&meta.conf);
    swm_buf_free(&data);
    free_entries(es, 3);
}

/* --- a real single-node core on this storage ------------------------------ */

#define PROPOSALS 300

struct node_run {
    struct store_fx *fx;
    struct raft *r;
    /* What each raft index carries: the proposal number (or -1), and its
     * apply outcome once committed. */
    int proposal_at[4 * PROPOSALS];
    int applied_code[4 * PROPOSALS];
    int applied_count[4 * PROPOSALS];
    uint64_t node_version[PROPOSALS]; /* expected, by node number */
    size_t snapshots;
};

static void start_core(struct node_run *nr)
{
    struct raft_init_state in = load_ok(nr->fx->s);
    if (in.snapshot.index == 0 && in.snapshot.conf.n_servers == 0) {
        /* Bootstrap: the one member is the only voter (raft.h). */
        struct raft_server self = {1, RAFT_VOTER};
        struct raft_configuration c = {&self, 1, NULL, 0};
        assert_int_equal(raft_configuration_copy(&in.snapshot.conf, &c), 0);
    }
    struct raft_options o;
    raft_options_init(&o, 1, 99);
    o.snapshot_threshold = 64;
    o.snapshot_trailing = 16;
    struct swm_err err = {0};
    if (raft_new(&o, &in, &nr->r, &err) != 0)
        fail_msg("raft_new: %s", err.msg);
    store_raft_init_free(&in);
}

/* One driver step: persist and apply a ready, then advance. With
 * crash_before_advance the ready is persisted but the core never hears of
 * it. Returns false when there was nothing to do. */
static bool drive_one(struct node_run *nr, bool crash_before_advance)
{
    if (!raft_has_ready(nr->r))
        return false;
    struct raft_ready *rd;
    assert_int_equal(raft_ready(nr->r, &rd), 0);
    int codes[512];
    persist(nr->fx->s, rd, codes);
    for (size_t i = 0; i < rd->n_committed; i++) {
        uint64_t idx = rd->committed[i].index;
        assert_true(idx < 4 * PROPOSALS);
        nr->applied_code[idx] = codes[i];
        nr->applied_count[idx]++;
    }
    store_deliver_events(nr->fx->s);
    uint64_t request = rd->snapshot_request;
    if (crash_before_advance) {
        raft_ready_free(rd);
        return true;
    }
    assert_int_equal(raft_advance(nr->r, rd), 0);
    raft_ready_free(rd);
    if (request != 0) {
        struct swm_buf data = {0};
        uint64_t at;
        assert_int_equal(store_raft_snapshot_take(nr->fx->s, &data, &at, NULL), 0);
        assert_true(at >= request && at == raft_applied_index(nr->r));
        struct raft_snapshot_meta meta;
        uint64_t compact_to;
        assert_int_equal(raft_snapshot_done(nr->r, at, data.data, data.len, &meta, &compact_to), 0);
        assert_int_equal(store_raft_snapshot_save(nr->fx->s, &meta, data.data, data.len, NULL), 0);
        assert_int_equal(store_raft_compact(nr->fx->s, compact_to, NULL), 0);
        raft_configuration_free(&meta.conf);
        swm_buf_free(&data);
        nr->snapshots++;
    }
    return true;
}

static void drain(struct node_run *nr)
{
    while (drive_one(nr, false))
        ;
}

static void become_leader(struct node_run *nr)
{
    for (int t = 0; t < 200 && raft_state(nr->r) != RAFT_LEADER; t++) {
        assert_int_equal(raft_tick(nr->r), 0);
        drain(nr);
    }
    assert_int_equal(raft_state(nr->r), RAFT_LEADER);
    drain(nr);
}

/* Records what proposal p did once its entry applied. */
static void settle(struct node_run *nr)
{
    for (size_t idx = 1; idx < 4 * PROPOSALS; idx++) {
        int p = nr->proposal_at[idx];
        if (p < 0 || nr->applied_count[idx] == 0)
            continue;
        int node = p % 3 == 2 ? p - 1 : p;
        if (nr->node_version[node] < idx)
            nr->node_version[node] = idx;
    }
}

/* Proposal p: nodes are created in pairs of proposals and updated by the
 * third: p%3 == 0, 1 create node p; p%3 == 2 updates node p-1 at the
 * version it was created with. */
static void propose(struct node_run *nr, int p)
{
    char id[32];
    Swarmc__StoreEntry *e;
    if (p % 3 == 2) {
        snprintf(id, sizeof(id), "n%d", p - 1);
        if (nr->node_version[p - 1] == 0) {
            drain(nr); /* its create is still batching up */
            settle(nr);
        }
        uint64_t v = nr->node_version[p - 1];
        assert_true(v != 0);
        e = fixture_entry1(UPDATE, fixture_node(id, v));
    } else {
        snprintf(id, sizeof(id), "n%d", p);
        e = fixture_entry1(CREATE, fixture_node(id, 0));
    }
    struct swm_buf b = {0};
    assert_int_equal(proto_pack(&e->base, &b), 0);
    proto_free(e);
    struct raft_buffer buf = {b.data, b.len};
    uint64_t index, term;
    assert_int_equal(raft_propose(nr->r, &buf, 1, &index, &term), 0);
    swm_buf_free(&b);
    assert_true(index < 4 * PROPOSALS);
    nr->proposal_at[index] = p;
}

static void single_node_core(void **state)
{
    struct store_fx *fx = *state;
    struct node_run *nr = calloc(1, sizeof(*nr));
    nr->fx = fx;
    for (size_t i = 0; i < 4 * PROPOSALS; i++)
        nr->proposal_at[i] = -1;
    start_core(nr);
    become_leader(nr);

    for (int p = 0; p < PROPOSALS; p++) {
        propose(nr, p);
        if (p % 7 == 0)
            continue; /* let some batch up */
        drain(nr);
        settle(nr);
        if (p == PROPOSALS / 2) {
            /* Crash with a proposal appended but not yet committed, then
             * restart from what storage holds. */
            propose(nr, ++p);
            assert_true(drive_one(nr, true));
            raft_free(nr->r);
            reopen(fx);
            start_core(nr);
            become_leader(nr);
            settle(nr);
        }
    }
    drain(nr);
    settle(nr);

    /* Every index was applied exactly once and every proposal succeeded. */
    uint64_t last = raft_applied_index(nr->r);
    assert_true(last >= PROPOSALS);
    assert_true(store_applied_index(fx->s) == last);
    for (uint64_t idx = 1; idx <= last; idx++) {
        if (nr->applied_count[idx] != 1)
            fail_msg("index %llu applied %d times", (unsigned long long)idx,
                     nr->applied_count[idx]);
        if (nr->proposal_at[idx] >= 0 && nr->applied_code[idx] != 0)
            fail_msg("index %llu (proposal %d) failed with %d", (unsigned long long)idx,
                     nr->proposal_at[idx], nr->applied_code[idx]);
    }
    size_t proposals = 0;
    for (uint64_t idx = 1; idx <= last; idx++)
        proposals += nr->proposal_at[idx] >= 0;
    assert_int_equal(proposals, PROPOSALS);
    assert_int_equal(count_nodes(fx->s), 2 * PROPOSALS / 3);
    for (int p = 0; p < PROPOSALS; p++) {
        if (p % 3 == 2)
            continue;
        char id[32];
        snprintf(id, sizeof(id), "n%d", p);
        assert_true(node_version(fx->s, id) == nr->node_version[p]);
    }
    assert_true(nr->snapshots >= 2);

    /* And a last restart hands back exactly this state. */
    raft_free(nr->r);
    reopen(fx);
    struct raft_init_state in = load_ok(fx->s);
    assert_true(in.applied == last && in.hard_state.commit == last);
    assert_true(in.snapshot.index > 0);
    assert_true(in.n_entries > 0 && in.entries[0].index <= in.snapshot.index + 1);
    assert_true(in.entries[in.n_entries - 1].index == last);
    store_raft_init_free(&in);
    free(nr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(new_store_loads_empty, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(round_trip, fixture_store_setup, fixture_store_teardown),
        cmocka_unit_test_setup_teardown(crash_between_append_and_apply, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(committed_outcomes, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(corrupted_entry_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(torn_entry_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(entry_under_another_key_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(term_decrease_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(gap_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(lost_head_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(lost_tail_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(store_without_raft_log_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(bootstrap_writes_founding_entries, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(bootstrap_refuses_first_entry_over_applied_state,
                                        fixture_store_setup, fixture_store_teardown),
        cmocka_unit_test_setup_teardown(truncates_conflicting_suffix, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(snapshot_and_compaction, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(compaction_without_snapshot_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(damaged_snapshot_is_refused, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(snapshot_install, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(force_new_cluster_keeps_log, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(allocation_failures, fixture_store_setup,
                                        fixture_store_teardown),
        cmocka_unit_test_setup_teardown(single_node_core, fixture_store_setup,
                                        fixture_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
