#define _GNU_SOURCE
#include "fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"

char *fixture_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *dir = swm_asprintf("%s/swarmc-store-XXXXXX", base != NULL ? base : "/tmp");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

void fixture_rmdir(char *dir)
{
    assert_int_equal(swm_remove_tree(dir), 0);
    swm_free(dir);
}

struct store *fixture_open(const char *dir)
{
    struct store *s = NULL;
    struct swm_err err = {0};
    int rc = store_open(dir, &s, &err);
    if (rc != 0)
        fail_msg("store_open: %s", err.msg);
    return s;
}

static Swarmc__Meta make_meta(uint64_t version, int64_t stamp)
{
    Swarmc__Meta meta = SWARMC__META__INIT;
    meta.has_version = version != 0;
    meta.version = version;
    meta.has_created_at = meta.has_updated_at = 1;
    meta.created_at = meta.updated_at = stamp;
    return meta;
}

static void *clone(const void *msg)
{
    void *copy = proto_clone(msg);
    assert_non_null(copy);
    return copy;
}

Swarmc__Node *fixture_node(const char *id, uint64_t version)
{
    Swarmc__Meta meta = make_meta(version, 1000);
    Swarmc__Node n = SWARMC__NODE__INIT;
    n.id = (char *)id;
    n.meta = &meta;
    return clone(&n);
}

Swarmc__Service *fixture_service(const char *id, const char *name, uint64_t version)
{
    Swarmc__Meta meta = make_meta(version, 1000);
    Swarmc__Annotations annotations = SWARMC__ANNOTATIONS__INIT;
    annotations.name = (char *)name;
    Swarmc__ServiceSpec spec = SWARMC__SERVICE_SPEC__INIT;
    spec.annotations = &annotations;
    Swarmc__Service svc = SWARMC__SERVICE__INIT;
    svc.id = (char *)id;
    svc.meta = &meta;
    svc.spec = &spec;
    return clone(&svc);
}

Swarmc__Task *fixture_task(const char *id, const char *service_id, const char *node_id,
                           Swarmc__TaskState desired, uint64_t version)
{
    Swarmc__Meta meta = make_meta(version, 1000);
    Swarmc__Task t = SWARMC__TASK__INIT;
    t.id = (char *)id;
    t.meta = &meta;
    t.service_id = (char *)service_id;
    t.node_id = (char *)node_id;
    t.has_desired_state = 1;
    t.desired_state = desired;
    return clone(&t);
}

Swarmc__Cluster *fixture_cluster(const char *id, uint64_t version)
{
    Swarmc__Meta meta = make_meta(version, 1000);
    Swarmc__Cluster c = SWARMC__CLUSTER__INIT;
    c.id = (char *)id;
    c.meta = &meta;
    return clone(&c);
}

Swarmc__StoreEntry *fixture_entry(void)
{
    Swarmc__StoreEntry *e = swm_malloc(sizeof(*e));
    assert_non_null(e);
    swarmc__store_entry__init(e);
    return e;
}

void fixture_add(Swarmc__StoreEntry *e, Swarmc__StoreAction__Kind kind, void *object)
{
    Swarmc__StoreAction *a = swm_malloc(sizeof(*a));
    assert_non_null(a);
    swarmc__store_action__init(a);
    a->has_kind = 1;
    a->kind = kind;
    const ProtobufCMessageDescriptor *d = ((ProtobufCMessage *)object)->descriptor;
    if (d == &swarmc__node__descriptor) {
        a->target_case = SWARMC__STORE_ACTION__TARGET_NODE;
        a->node = object;
    } else if (d == &swarmc__service__descriptor) {
        a->target_case = SWARMC__STORE_ACTION__TARGET_SERVICE;
        a->service = object;
    } else if (d == &swarmc__task__descriptor) {
        a->target_case = SWARMC__STORE_ACTION__TARGET_TASK;
        a->task = object;
    } else {
        assert_ptr_equal(d, &swarmc__cluster__descriptor);
        a->target_case = SWARMC__STORE_ACTION__TARGET_CLUSTER;
        a->cluster = object;
    }
    Swarmc__StoreAction **actions =
        swm_realloc(e->actions, (e->n_actions + 1) * sizeof(*e->actions));
    assert_non_null(actions);
    e->actions = actions;
    e->actions[e->n_actions++] = a;
}

Swarmc__StoreEntry *fixture_entry1(Swarmc__StoreAction__Kind kind, void *object)
{
    Swarmc__StoreEntry *e = fixture_entry();
    fixture_add(e, kind, object);
    return e;
}

void fixture_apply(struct store *s, Swarmc__StoreEntry **entries, size_t n,
                   struct store_apply_result *results)
{
    struct store_apply_result *res = results;
    if (res == NULL)
        res = calloc(n, sizeof(*res));
    assert_non_null(res);
    struct swm_err err = {0};
    int rc = store_apply_entries(s, store_applied_index(s) + 1, entries, n, res, &err);
    if (rc != 0)
        fail_msg("store_apply_entries: %s", err.msg);
    for (size_t i = 0; i < n; i++) {
        if (results == NULL && res[i].err.code != 0)
            fail_msg("entry %zu: %s", i, res[i].err.msg);
        proto_free(entries[i]);
    }
    if (results == NULL)
        free(res);
}

int fixture_apply1(struct store *s, Swarmc__StoreEntry *entry)
{
    struct store_apply_result res;
    fixture_apply(s, &entry, 1, &res);
    return res.err.code;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

const char *fixture_task_ids(Swarmc__Task **tasks, size_t n)
{
    static char buf[4096];
    char **ids = calloc(n + 1, sizeof(*ids));
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = tasks[i]->id;
    qsort(ids, n, sizeof(*ids), cmp_str);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strncat(buf, ",", sizeof(buf) - strlen(buf) - 1);
        strncat(buf, ids[i], sizeof(buf) - strlen(buf) - 1);
    }
    free(ids);
    return buf;
}

void fixture_raw_put(const char *dir, const char *db, const void *key, size_t key_len,
                     const void *val, size_t val_len, int dupsort)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 8ULL << 30), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, dupsort ? MDB_DUPSORT : 0, &dbi), 0);
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    MDB_val v = {.mv_size = val_len, .mv_data = (void *)val};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

int fixture_store_setup(void **state)
{
    struct store_fx *fx = calloc(1, sizeof(*fx));
    fx->dir = fixture_tmpdir();
    fx->s = fixture_open(fx->dir);
    *state = fx;
    return 0;
}

int fixture_store_teardown(void **state)
{
    struct store_fx *fx = *state;
    store_close(fx->s);
    fixture_rmdir(fx->dir);
    free(fx);
    return 0;
}
