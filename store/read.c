/* Reads. Every value is decoded and checked before it is handed out, and
 * every index entry is checked against the object it names, so bad disk
 * contents surface as SWM_ECORRUPT naming the table and key, never as a
 * crash or a wrong answer. */
#include "store/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/alloc.h"

int store_read_begin(struct store *s, struct store_read **out, struct swm_err *err)
{
    struct store_read *r = swm_calloc(1, sizeof(*r));
    if (r == NULL)
        return swm_err_set(err, -ENOMEM, "beginning a read transaction: out of memory");
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
    if (rc != 0) {
        swm_free(r);
        return store__mdb_fail(err, rc, "beginning a read transaction");
    }
    r->s = s;
    *out = r;
    return 0;
}

void store_read_end(struct store_read *r)
{
    if (r == NULL)
        return;
    mdb_txn_abort(r->txn);
    swm_free(r);
}

const struct swm_err *store_read_err(const struct store_read *r)
{
    return &r->err;
}

/* --- single objects ----------------------------------------------------- */

static int get_by_key(struct store_read *r, enum store_object_kind kind, MDB_val *key,
                      ProtobufCMessage **out)
{
    const struct store__kind *k = &store__kinds[kind];
    char kbuf[128];
    MDB_val val;
    int rc = mdb_get(r->txn, r->s->dbi[k->table], key, &val);
    if (rc == MDB_NOTFOUND)
        return swm_err_set(&r->err, SWM_ENOTFOUND, "%s %s not found", k->name,
                           store__key_str(key, kbuf, sizeof(kbuf)));
    if (rc != 0)
        return store__mdb_fail(&r->err, rc, "reading table %s key %s", store__db_names[k->table],
                               store__key_str(key, kbuf, sizeof(kbuf)));
    return store__decode(kind, key, &val, out, &r->err);
}

static int get_object(struct store_read *r, enum store_object_kind kind, const char *id,
                      ProtobufCMessage **out)
{
    swm_err_clear(&r->err);
    if (id == NULL)
        return swm_err_set(&r->err, -EINVAL, "reading a %s: no id", store__kinds[kind].name);
    if (!store__valid_key(id))
        return swm_err_set(&r->err, SWM_ENOTFOUND, "%s not found: no id is %zu bytes long",
                           store__kinds[kind].name, strlen(id));
    MDB_val key = {.mv_size = strlen(id), .mv_data = (void *)id};
    return get_by_key(r, kind, &key, out);
}

int store_get_node(struct store_read *r, const char *id, Swarmc__Node **out)
{
    ProtobufCMessage *m = NULL;
    int rc = get_object(r, STORE_KIND_NODE, id, &m);
    if (rc == 0)
        *out = (Swarmc__Node *)m;
    return rc;
}

int store_get_service(struct store_read *r, const char *id, Swarmc__Service **out)
{
    ProtobufCMessage *m = NULL;
    int rc = get_object(r, STORE_KIND_SERVICE, id, &m);
    if (rc == 0)
        *out = (Swarmc__Service *)m;
    return rc;
}

int store_get_task(struct store_read *r, const char *id, Swarmc__Task **out)
{
    ProtobufCMessage *m = NULL;
    int rc = get_object(r, STORE_KIND_TASK, id, &m);
    if (rc == 0)
        *out = (Swarmc__Task *)m;
    return rc;
}

/* Fetches the object an index entry (db, ikey) -> id names, and checks that
 * it is still keyed that way: a stale index is corruption, not an answer. */
static int get_indexed(struct store_read *r, enum store_object_kind kind, enum store__db db,
                       const MDB_val *ikey, MDB_val *id, ProtobufCMessage **out)
{
    const struct store__kind *k = &store__kinds[kind];
    char kbuf[128], ibuf[128];
    ProtobufCMessage *m = NULL;
    int rc = get_by_key(r, kind, id, &m);
    if (rc == SWM_ENOTFOUND)
        return swm_err_set(&r->err, SWM_ECORRUPT,
                           "index %s key %s names %s %s, which does not exist", store__db_names[db],
                           store__index_key_str(db, ikey, kbuf, sizeof(kbuf)), k->name,
                           store__key_str(id, ibuf, sizeof(ibuf)));
    if (rc < 0)
        return rc;
    MDB_val actual;
    uint8_t state_buf[4];
    if (!store__index_key(kind, m, db, &actual, state_buf) || actual.mv_size != ikey->mv_size ||
        memcmp(actual.mv_data, ikey->mv_data, ikey->mv_size) != 0) {
        swm_err_set(&r->err, SWM_ECORRUPT, "index %s key %s names %s %s, which is not keyed so",
                    store__db_names[db], store__index_key_str(db, ikey, kbuf, sizeof(kbuf)),
                    k->name, store__key_str(id, ibuf, sizeof(ibuf)));
        proto_free(m);
        return SWM_ECORRUPT;
    }
    *out = m;
    return 0;
}

int store_get_service_by_name(struct store_read *r, const char *name, Swarmc__Service **out)
{
    swm_err_clear(&r->err);
    if (name == NULL || !store__valid_key(name))
        return swm_err_set(&r->err, SWM_ENOTFOUND, "service %s not found",
                           name == NULL ? "(null)" : name);
    MDB_val key = {.mv_size = strlen(name), .mv_data = (void *)name}, id;
    int rc = mdb_get(r->txn, r->s->dbi[STORE__DB_SERVICES_BY_NAME], &key, &id);
    if (rc == MDB_NOTFOUND)
        return swm_err_set(&r->err, SWM_ENOTFOUND, "service %s not found", name);
    if (rc != 0)
        return store__mdb_fail(&r->err, rc, "reading index services_by_name key %s", name);
    ProtobufCMessage *m = NULL;
    rc = get_indexed(r, STORE_KIND_SERVICE, STORE__DB_SERVICES_BY_NAME, &key, &id, &m);
    if (rc == 0)
        *out = (Swarmc__Service *)m;
    return rc;
}

int store_get_cluster(struct store_read *r, Swarmc__Cluster **out)
{
    swm_err_clear(&r->err);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(r->txn, r->s->dbi[STORE__DB_CLUSTERS], &cur);
    if (rc != 0)
        return store__mdb_fail(&r->err, rc, "reading table clusters");
    MDB_val key, val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    mdb_cursor_close(cur); /* key and val stay valid until the txn ends */
    if (rc == MDB_NOTFOUND)
        return swm_err_set(&r->err, SWM_ENOTFOUND, "cluster not found");
    if (rc != 0)
        return store__mdb_fail(&r->err, rc, "reading table clusters");
    ProtobufCMessage *m = NULL;
    rc = store__decode(STORE_KIND_CLUSTER, &key, &val, &m, &r->err);
    if (rc == 0)
        *out = (Swarmc__Cluster *)m;
    return rc;
}

/* --- lists -------------------------------------------------------------- */

struct obj_list {
    ProtobufCMessage **items;
    size_t n, cap;
};

/* Sized up front from LMDB's counts: one allocation even for 100k tasks.
 * At least one slot, so a successful list is never a NULL array. */
static int list_reserve(struct store_read *r, struct obj_list *l, size_t extra)
{
    if (l->items != NULL && l->n + extra <= l->cap)
        return 0;
    size_t cap = l->cap == 0 ? 1 : l->cap;
    while (cap < l->n + extra)
        cap *= 2;
    ProtobufCMessage **items = swm_realloc(l->items, cap * sizeof(*items));
    if (items == NULL)
        return swm_err_set(&r->err, -ENOMEM, "listing objects: out of memory");
    l->items = items;
    l->cap = cap;
    return 0;
}

static int list_push(struct store_read *r, struct obj_list *l, ProtobufCMessage *m)
{
    int rc = list_reserve(r, l, 1);
    if (rc < 0) {
        proto_free(m);
        return rc;
    }
    l->items[l->n++] = m;
    return 0;
}

static void list_free(struct obj_list *l)
{
    store_free_list(l->items, l->n);
    *l = (struct obj_list){0};
}

/* Walks the whole table under cur in key order, decoding each value. */
static int list_cursor(struct store_read *r, MDB_cursor *cur, enum store_object_kind kind,
                       struct obj_list *l)
{
    const struct store__kind *k = &store__kinds[kind];
    MDB_val key, val;
    int mrc;
    for (mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        ProtobufCMessage *m = NULL;
        int rc = store__decode(kind, &key, &val, &m, &r->err);
        if (rc == 0)
            rc = list_push(r, l, m);
        if (rc < 0)
            return rc;
    }
    if (mrc != MDB_NOTFOUND)
        return store__mdb_fail(&r->err, mrc, "reading table %s", store__db_names[k->table]);
    return 0;
}

static int list_table(struct store_read *r, enum store_object_kind kind, struct obj_list *l)
{
    enum store__db db = store__kinds[kind].table;
    swm_err_clear(&r->err);
    MDB_stat st;
    int rc = mdb_stat(r->txn, r->s->dbi[db], &st);
    if (rc != 0)
        return store__mdb_fail(&r->err, rc, "reading statistics of table %s", store__db_names[db]);
    rc = list_reserve(r, l, st.ms_entries);
    if (rc < 0)
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(r->txn, r->s->dbi[db], &cur);
    if (rc != 0)
        return store__mdb_fail(&r->err, rc, "reading table %s", store__db_names[db]);
    rc = list_cursor(r, cur, kind, l);
    mdb_cursor_close(cur);
    return rc;
}

/* Walks the duplicates of one index key, fetching each task they name. */
static int list_dups(struct store_read *r, MDB_cursor *cur, enum store__db db, const MDB_val *ikey,
                     struct obj_list *l)
{
    char kbuf[128];
    MDB_val key = *ikey, id;
    int mrc = mdb_cursor_get(cur, &key, &id, MDB_SET_KEY);
    if (mrc == MDB_NOTFOUND)
        return 0;
    size_t count = 0;
    if (mrc == 0)
        mrc = mdb_cursor_count(cur, &count);
    int rc = mrc == 0 ? list_reserve(r, l, count) : 0;
    while (mrc == 0 && rc == 0) {
        ProtobufCMessage *m = NULL;
        rc = get_indexed(r, STORE_KIND_TASK, db, ikey, &id, &m);
        if (rc == 0)
            rc = list_push(r, l, m);
        mrc = mdb_cursor_get(cur, &key, &id, MDB_NEXT_DUP);
    }
    if (rc < 0)
        return rc;
    if (mrc != MDB_NOTFOUND)
        return store__mdb_fail(&r->err, mrc, "reading index %s key %s", store__db_names[db],
                               store__index_key_str(db, ikey, kbuf, sizeof(kbuf)));
    return 0;
}

static int list_index(struct store_read *r, enum store__db db, const MDB_val *ikey,
                      struct obj_list *l)
{
    swm_err_clear(&r->err);
    int rc = list_reserve(r, l, 1);
    if (rc < 0 || ikey->mv_size == 0) /* empty keys are never indexed */
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(r->txn, r->s->dbi[db], &cur);
    if (rc != 0)
        return store__mdb_fail(&r->err, rc, "reading index %s", store__db_names[db]);
    rc = list_dups(r, cur, db, ikey, l);
    mdb_cursor_close(cur);
    return rc;
}

/* Hands a finished list out, or frees it on failure (outputs are set only
 * on success). */
static int list_finish(int rc, struct obj_list *l, ProtobufCMessage ***out, size_t *n)
{
    if (rc < 0) {
        list_free(l);
        return rc;
    }
    *out = l->items;
    *n = l->n;
    return 0;
}

/* The public lists differ only in their element type; all struct pointers
 * share one representation (C11 6.2.5p28), so the arrays convert. */
int store_list_nodes(struct store_read *r, Swarmc__Node ***out, size_t *n)
{
    struct obj_list l = {0};
    ProtobufCMessage **items;
    int rc = list_finish(list_table(r, STORE_KIND_NODE, &l), &l, &items, n);
    if (rc == 0)
        *out = (Swarmc__Node **)items;
    return rc;
}

int store_list_services(struct store_read *r, Swarmc__Service ***out, size_t *n)
{
    struct obj_list l = {0};
    ProtobufCMessage **items;
    int rc = list_finish(list_table(r, STORE_KIND_SERVICE, &l), &l, &items, n);
    if (rc == 0)
        *out = (Swarmc__Service **)items;
    return rc;
}

int store_list_tasks(struct store_read *r, Swarmc__Task ***out, size_t *n)
{
    struct obj_list l = {0};
    ProtobufCMessage **items;
    int rc = list_finish(list_table(r, STORE_KIND_TASK, &l), &l, &items, n);
    if (rc == 0)
        *out = (Swarmc__Task **)items;
    return rc;
}

static int list_tasks_by(struct store_read *r, enum store__db db, const MDB_val *ikey,
                         Swarmc__Task ***out, size_t *n)
{
    struct obj_list l = {0};
    ProtobufCMessage **items;
    int rc = list_finish(list_index(r, db, ikey, &l), &l, &items, n);
    if (rc == 0)
        *out = (Swarmc__Task **)items;
    return rc;
}

static int list_tasks_by_string(struct store_read *r, enum store__db db, const char *value,
                                Swarmc__Task ***out, size_t *n)
{
    if (value == NULL) {
        swm_err_clear(&r->err);
        return swm_err_set(&r->err, -EINVAL, "listing tasks by %s: no key", store__db_names[db]);
    }
    /* Over-long keys are never indexed either: they list nothing. */
    MDB_val key = {.mv_size = store__valid_key(value) ? strlen(value) : 0,
                   .mv_data = (void *)value};
    return list_tasks_by(r, db, &key, out, n);
}

int store_list_tasks_by_service(struct store_read *r, const char *service_id, Swarmc__Task ***out,
                                size_t *n)
{
    return list_tasks_by_string(r, STORE__DB_TASKS_BY_SERVICE, service_id, out, n);
}

int store_list_tasks_by_node(struct store_read *r, const char *node_id, Swarmc__Task ***out,
                             size_t *n)
{
    return list_tasks_by_string(r, STORE__DB_TASKS_BY_NODE, node_id, out, n);
}

int store_list_tasks_by_desired_state(struct store_read *r, Swarmc__TaskState state,
                                      Swarmc__Task ***out, size_t *n)
{
    uint8_t buf[4];
    store__put_be32(buf, (uint32_t)state);
    MDB_val key = {.mv_size = sizeof(buf), .mv_data = buf};
    return list_tasks_by(r, STORE__DB_TASKS_BY_DESIRED_STATE, &key, out, n);
}

void store_free_list(void *array, size_t n)
{
    ProtobufCMessage **items = array;
    if (items == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        proto_free(items[i]);
    swm_free(items);
}
