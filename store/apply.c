/* The write path (DESIGN.md §5): the only code that changes object tables.
 * Everything here is a function of the entries and of the stored state,
 * never of clocks or randomness, so every replica applying the same log ends
 * in the same state with the same per-entry outcomes. Optional fields are
 * read through their has_ flags for the same reason: an entry must mean here
 * what its packed form means to a replica that reads it from the log. */
#include "store/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/alloc.h"

#define MAX_INDEXES 3

/* The indexes each kind maintains, in a fixed order so that an updated
 * object's old and new keys can be compared slot by slot. */
struct index_set {
    const enum store__db *dbs;
    const char *const *fields; /* the field each index is keyed by, for messages */
    size_t n;
};

static const enum store__db service_dbs[] = {STORE__DB_SERVICES_BY_NAME};
static const char *const service_fields[] = {"spec.annotations.name"};
static const enum store__db task_dbs[] = {STORE__DB_TASKS_BY_SERVICE, STORE__DB_TASKS_BY_NODE,
                                          STORE__DB_TASKS_BY_DESIRED_STATE};
static const char *const task_fields[] = {"service_id", "node_id", "desired_state"};

static struct index_set indexes_of(enum store_object_kind kind)
{
    if (kind == STORE_KIND_SERVICE)
        return (struct index_set){service_dbs, service_fields, 1};
    if (kind == STORE_KIND_TASK)
        return (struct index_set){task_dbs, task_fields, 3};
    return (struct index_set){NULL, NULL, 0};
}

struct index_keys {
    bool present[MAX_INDEXES];
    MDB_val key[MAX_INDEXES];
    uint8_t state_buf[MAX_INDEXES][4];
};

static void index_keys_of(enum store_object_kind kind, const ProtobufCMessage *obj,
                          const struct index_set *set, struct index_keys *keys)
{
    for (size_t i = 0; i < set->n; i++)
        keys->present[i] =
            store__index_key(kind, obj, set->dbs[i], &keys->key[i], keys->state_buf[i]);
}

struct apply_ctx {
    struct store *s;
    MDB_txn *txn;                      /* the current entry's nested transaction */
    uint64_t index;                    /* the entry's log index: the new meta.version */
    struct store__event_batch *events; /* NULL when nobody watches */
    struct swm_err *err;               /* the current entry's result */
};

/* Failures every replica reproduces from the same log and state. Anything
 * else (ENOMEM, ENOSPC, EIO, corruption) is local to this node and must fail
 * the whole batch rather than be recorded as the entry's outcome. */
static bool is_entry_failure(int code)
{
    return code == SWM_ESTALE || code == SWM_EEXISTS || code == SWM_ENOTFOUND ||
           code == SWM_EINVAL_SPEC;
}

static MDB_val id_val(const char *id)
{
    return (MDB_val){.mv_size = strlen(id), .mv_data = (void *)id};
}

static uint64_t version_of(enum store_object_kind kind, const ProtobufCMessage *obj)
{
    const Swarmc__Meta *meta = store__obj_meta(kind, obj);
    return meta != NULL && meta->has_version ? meta->version : 0;
}

/* --- indexes ------------------------------------------------------------ */

static int index_put(struct apply_ctx *c, enum store__db db, const char *field, const MDB_val *key,
                     const char *id)
{
    char kbuf[128];
    bool unique = db == STORE__DB_SERVICES_BY_NAME;
    if (key->mv_size > STORE__MAX_KEY)
        return swm_err_set(c->err, SWM_EINVAL_SPEC, "%s %s: %s is longer than %d bytes",
                           unique ? "service" : "task", id, field, STORE__MAX_KEY);
    MDB_val k = *key, val = id_val(id);
    int rc = mdb_put(c->txn, c->s->dbi[db], &k, &val, unique ? MDB_NOOVERWRITE : MDB_NODUPDATA);
    if (rc == MDB_KEYEXIST && unique)
        return swm_err_set(c->err, SWM_EEXISTS,
                           "service %s: name conflicts with an existing object (service name "
                           "%s is in use)",
                           id, store__key_str(key, kbuf, sizeof(kbuf)));
    if (rc == MDB_KEYEXIST)
        return swm_err_set(c->err, SWM_ECORRUPT, "index %s already maps %s to task %s",
                           store__db_names[db], store__index_key_str(db, key, kbuf, sizeof(kbuf)),
                           id);
    if (rc != 0)
        return store__mdb_fail(c->err, rc, "writing index %s key %s", store__db_names[db],
                               store__index_key_str(db, key, kbuf, sizeof(kbuf)));
    return 0;
}

static int index_del(struct apply_ctx *c, enum store__db db, const MDB_val *key, const char *id)
{
    char kbuf[128];
    MDB_val k = *key, val = id_val(id);
    /* For the unique index LMDB ignores val: the key alone is deleted. */
    int rc = mdb_del(c->txn, c->s->dbi[db], &k, &val);
    if (rc == MDB_NOTFOUND)
        return swm_err_set(c->err, SWM_ECORRUPT, "index %s has no entry %s -> %s",
                           store__db_names[db], store__index_key_str(db, key, kbuf, sizeof(kbuf)),
                           id);
    if (rc != 0)
        return store__mdb_fail(c->err, rc, "deleting from index %s key %s", store__db_names[db],
                               store__index_key_str(db, key, kbuf, sizeof(kbuf)));
    return 0;
}

/* Moves id's index entries from what old is keyed by to what obj is keyed
 * by (either may be NULL: create, remove). Unchanged keys are not touched;
 * old keys go first so that a service can take over a name freed in the
 * same entry. */
static int update_indexes(struct apply_ctx *c, enum store_object_kind kind, const char *id,
                          const ProtobufCMessage *old, const ProtobufCMessage *obj)
{
    struct index_set set = indexes_of(kind);
    struct index_keys old_keys = {0}, new_keys = {0};
    if (old != NULL)
        index_keys_of(kind, old, &set, &old_keys);
    if (obj != NULL)
        index_keys_of(kind, obj, &set, &new_keys);
    for (size_t i = 0; i < set.n; i++) {
        const MDB_val *a = &old_keys.key[i], *b = &new_keys.key[i];
        if (old_keys.present[i] == new_keys.present[i] &&
            (!old_keys.present[i] ||
             (a->mv_size == b->mv_size && memcmp(a->mv_data, b->mv_data, a->mv_size) == 0)))
            continue;
        int rc = 0;
        if (old_keys.present[i])
            rc = index_del(c, set.dbs[i], a, id);
        if (rc == 0 && new_keys.present[i])
            rc = index_put(c, set.dbs[i], set.fields[i], b, id);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- objects ------------------------------------------------------------ */

/* Room for a shallow copy of any object kind. */
union object_copy {
    ProtobufCMessage base;
    Swarmc__Node node;
    Swarmc__Service service;
    Swarmc__Task task;
    Swarmc__Cluster cluster;
};

/* The meta an applied object is stored with: the proposal's, with version
 * = the entry's index and, on update, created_at kept from the stored one. */
static Swarmc__Meta new_meta(const struct apply_ctx *c, const Swarmc__Meta *given,
                             const Swarmc__Meta *stored, bool update)
{
    Swarmc__Meta meta = SWARMC__META__INIT;
    if (given != NULL)
        meta = *given;
    meta.has_version = 1;
    meta.version = c->index;
    if (update) {
        meta.has_created_at = stored != NULL && stored->has_created_at;
        meta.created_at = meta.has_created_at ? stored->created_at : 0;
    }
    return meta;
}

/* Stores obj with meta swapped in and queues its event. The proposal is not
 * modified: a shallow copy with another meta pointer is packed, straight
 * into the page LMDB reserves for it. */
static int put_object(struct apply_ctx *c, enum store_object_kind kind, const ProtobufCMessage *obj,
                      Swarmc__Meta *meta, Swarmc__StoreAction__Kind action)
{
    const struct store__kind *k = &store__kinds[kind];
    const char *id = store__obj_id(kind, obj);
    union object_copy copy;
    memcpy(&copy, obj, k->desc->sizeof_message);
    memcpy((char *)&copy + k->meta_offset, &meta, sizeof(meta));

    MDB_val key = id_val(id);
    MDB_val val = {.mv_size = protobuf_c_message_get_packed_size(&copy.base)};
    int rc = mdb_put(c->txn, c->s->dbi[k->table], &key, &val, MDB_RESERVE);
    if (rc != 0)
        return store__mdb_fail(c->err, rc, "writing table %s key %s", store__db_names[k->table],
                               id);
    protobuf_c_message_pack(&copy.base, val.mv_data);
    if (c->events == NULL)
        return 0;
    /* The event carries the object as stored, decoded from the bytes just
     * written: exactly what a reader will get. */
    bool oom;
    ProtobufCMessage *stored = store__unpack(k->desc, val.mv_data, val.mv_size, &oom);
    if (stored == NULL)
        return swm_err_set(c->err, oom ? -ENOMEM : SWM_EPROTO, "%s %s: building the event: %s",
                           k->name, id, oom ? "out of memory" : "stored value does not decode");
    rc = store__event_add(c->events, kind, action, stored);
    if (rc < 0)
        return swm_err_set(c->err, rc, "%s %s: building the event: out of memory", k->name, id);
    return 0;
}

/* Loads the stored object: 0, SWM_ENOTFOUND (an entry failure), or a local
 * error. */
static int load_object(struct apply_ctx *c, enum store_object_kind kind, const char *id,
                       ProtobufCMessage **out)
{
    const struct store__kind *k = &store__kinds[kind];
    MDB_val key = id_val(id), val;
    int rc = mdb_get(c->txn, c->s->dbi[k->table], &key, &val);
    if (rc == MDB_NOTFOUND)
        return swm_err_set(c->err, SWM_ENOTFOUND, "%s %s: object does not exist", k->name, id);
    if (rc != 0)
        return store__mdb_fail(c->err, rc, "reading table %s key %s", store__db_names[k->table],
                               id);
    return store__decode(kind, &key, &val, out, c->err);
}

static int check_absent(struct apply_ctx *c, enum store_object_kind kind, const char *id)
{
    const struct store__kind *k = &store__kinds[kind];
    MDB_val key = id_val(id), val;
    int rc = mdb_get(c->txn, c->s->dbi[k->table], &key, &val);
    if (rc == 0)
        return swm_err_set(c->err, SWM_EEXISTS, "%s %s: object already exists", k->name, id);
    if (rc != MDB_NOTFOUND)
        return store__mdb_fail(c->err, rc, "reading table %s key %s", store__db_names[k->table],
                               id);
    if (kind != STORE_KIND_CLUSTER)
        return 0;
    /* store_get_cluster() promises the one cluster. */
    MDB_stat st;
    rc = mdb_stat(c->txn, c->s->dbi[STORE__DB_CLUSTERS], &st);
    if (rc != 0)
        return store__mdb_fail(c->err, rc, "reading statistics of table clusters");
    if (st.ms_entries > 0)
        return swm_err_set(c->err, SWM_EEXISTS, "cluster %s: a cluster already exists", id);
    return 0;
}

static int create_object(struct apply_ctx *c, enum store_object_kind kind,
                         const ProtobufCMessage *obj, const char *id)
{
    int rc = check_absent(c, kind, id);
    if (rc == 0)
        rc = update_indexes(c, kind, id, NULL, obj);
    if (rc < 0)
        return rc;
    Swarmc__Meta meta = new_meta(c, store__obj_meta(kind, obj), NULL, false);
    return put_object(c, kind, obj, &meta, SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE);
}

static int stale(struct apply_ctx *c, enum store_object_kind kind, const char *id, uint64_t given,
                 uint64_t stored)
{
    return swm_err_set(c->err, SWM_ESTALE,
                       "%s %s: update out of sequence (proposed version %" PRIu64
                       ", stored version %" PRIu64 ")",
                       store__kinds[kind].name, id, given, stored);
}

static int update_object(struct apply_ctx *c, enum store_object_kind kind,
                         const ProtobufCMessage *obj, const char *id)
{
    ProtobufCMessage *old;
    int rc = load_object(c, kind, id, &old);
    if (rc < 0)
        return rc;
    uint64_t given = version_of(kind, obj), stored = version_of(kind, old);
    if (given != stored)
        rc = stale(c, kind, id, given, stored);
    if (rc == 0)
        rc = update_indexes(c, kind, id, old, obj);
    if (rc == 0) {
        Swarmc__Meta meta =
            new_meta(c, store__obj_meta(kind, obj), store__obj_meta(kind, old), true);
        rc = put_object(c, kind, obj, &meta, SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE);
    }
    proto_free(old);
    return rc;
}

static int remove_object(struct apply_ctx *c, enum store_object_kind kind,
                         const ProtobufCMessage *obj, const char *id)
{
    const struct store__kind *k = &store__kinds[kind];
    ProtobufCMessage *old;
    int rc = load_object(c, kind, id, &old);
    if (rc < 0)
        return rc;
    uint64_t given = version_of(kind, obj), stored = version_of(kind, old);
    if (given != 0 && given != stored)
        rc = stale(c, kind, id, given, stored);
    if (rc == 0)
        rc = update_indexes(c, kind, id, old, NULL);
    if (rc == 0) {
        MDB_val key = id_val(id);
        rc = mdb_del(c->txn, c->s->dbi[k->table], &key, NULL);
        if (rc != 0)
            rc = store__mdb_fail(c->err, rc, "deleting table %s key %s", store__db_names[k->table],
                                 id);
    }
    if (rc == 0 && c->events != NULL) {
        rc =
            store__event_add(c->events, kind, SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE, old);
        old = NULL; /* the event owns it, even on failure */
        if (rc < 0)
            swm_err_set(c->err, rc, "%s %s: building the event: out of memory", k->name, id);
    }
    proto_free(old);
    return rc;
}

/* --- actions and entries ------------------------------------------------ */

static bool target_of(const Swarmc__StoreAction *a, enum store_object_kind *kind,
                      const ProtobufCMessage **obj)
{
    switch (a->target_case) {
    case SWARMC__STORE_ACTION__TARGET_NODE:
        *kind = STORE_KIND_NODE;
        *obj = (const ProtobufCMessage *)a->node;
        break;
    case SWARMC__STORE_ACTION__TARGET_SERVICE:
        *kind = STORE_KIND_SERVICE;
        *obj = (const ProtobufCMessage *)a->service;
        break;
    case SWARMC__STORE_ACTION__TARGET_TASK:
        *kind = STORE_KIND_TASK;
        *obj = (const ProtobufCMessage *)a->task;
        break;
    case SWARMC__STORE_ACTION__TARGET_CLUSTER:
        *kind = STORE_KIND_CLUSTER;
        *obj = (const ProtobufCMessage *)a->cluster;
        break;
    default:
        return false;
    }
    return *obj != NULL && (*obj)->descriptor == store__kinds[*kind].desc;
}

static int apply_action(struct apply_ctx *c, size_t no, const Swarmc__StoreAction *a)
{
    enum store_object_kind kind;
    const ProtobufCMessage *obj;
    if (a == NULL || !target_of(a, &kind, &obj))
        return swm_err_set(c->err, SWM_EINVAL_SPEC, "action %zu names no object", no);
    if (!a->has_kind)
        return swm_err_set(c->err, SWM_EINVAL_SPEC, "action %zu has no kind", no);
    const char *id = store__obj_id(kind, obj);
    if (!store__valid_key(id))
        return swm_err_set(c->err, SWM_EINVAL_SPEC, "action %zu: %s id must be 1 to %d bytes", no,
                           store__kinds[kind].name, STORE__MAX_KEY);
    switch (a->kind) {
    case SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE:
        return create_object(c, kind, obj, id);
    case SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE:
        return update_object(c, kind, obj, id);
    case SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE:
        return remove_object(c, kind, obj, id);
    default:
        return swm_err_set(c->err, SWM_EINVAL_SPEC, "action %zu has unknown kind %d", no,
                           (int)a->kind);
    }
}

/* Applies one entry in a transaction nested in parent, so that a failing
 * entry rolls back only itself (and its events). */
static int apply_entry(struct apply_ctx *c, MDB_txn *parent, const Swarmc__StoreEntry *entry)
{
    size_t mark = c->events != NULL ? c->events->n : 0;
    int rc = mdb_txn_begin(c->s->env, parent, 0, &c->txn);
    if (rc != 0)
        return store__mdb_fail(c->err, rc, "beginning the transaction of entry %" PRIu64, c->index);
    for (size_t i = 0; i < entry->n_actions && rc == 0; i++)
        rc = apply_action(c, i, entry->actions[i]);
    if (rc == 0) {
        rc = mdb_txn_commit(c->txn);
        if (rc != 0)
            rc = store__mdb_fail(c->err, rc, "committing entry %" PRIu64, c->index);
    } else {
        mdb_txn_abort(c->txn);
    }
    c->txn = NULL;
    if (rc < 0 && c->events != NULL)
        store__event_truncate(c->events, mark);
    return rc;
}

int store__apply_one(struct store *s, MDB_txn *txn, struct store__event_batch *events,
                     uint64_t index, const Swarmc__StoreEntry *entry,
                     struct store_apply_result *result, struct swm_err *err)
{
    struct apply_ctx c = {.s = s, .index = index, .events = events, .err = &result->err};
    swm_err_clear(c.err);
    int rc = apply_entry(&c, txn, entry);
    if (rc < 0 && !is_entry_failure(rc)) {
        if (err != NULL)
            *err = *c.err;
        return swm_err_wrap(err, rc, "applying entry %" PRIu64, index);
    }
    return 0;
}

int store__restore_object(struct store *s, MDB_txn *txn, enum store_object_kind kind,
                          const ProtobufCMessage *obj, struct swm_err *err)
{
    const char *id = store__obj_id(kind, obj);
    if (!store__valid_key(id))
        return swm_err_set(err, SWM_ECORRUPT, "snapshot holds a %s with an invalid id",
                           store__kinds[kind].name);
    struct apply_ctx c = {.s = s, .txn = txn, .err = err};
    int rc = update_indexes(&c, kind, id, NULL, obj);
    if (rc < 0)
        return rc;
    /* The object keeps the meta it had on the snapshotting replica: its
     * version is the index of its last change there, as here. */
    const Swarmc__Meta *given = store__obj_meta(kind, obj);
    Swarmc__Meta meta = SWARMC__META__INIT;
    if (given != NULL)
        meta = *given;
    return put_object(&c, kind, obj, &meta, SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE);
}

static int check_args(struct store *s, uint64_t first, Swarmc__StoreEntry *const *entries, size_t n,
                      const struct store_apply_result *results, struct swm_err *err)
{
    uint64_t applied = store_applied_index(s);
    if (entries == NULL || results == NULL)
        return swm_err_set(err, -EINVAL, "applying entries: no entries or no results");
    if (first <= applied || first + n - 1 < first)
        return swm_err_set(err, -EINVAL,
                           "applying entries from index %" PRIu64 ": index %" PRIu64
                           " is already applied",
                           first, applied);
    for (size_t i = 0; i < n; i++)
        if (entries[i] == NULL)
            return swm_err_set(err, -EINVAL, "applying entries: entry %" PRIu64 " is NULL",
                               first + i);
    return 0;
}

/* Applies every entry of the batch inside txn, recording each outcome. */
static int apply_batch(struct apply_ctx *c, MDB_txn *txn, uint64_t first,
                       Swarmc__StoreEntry *const *entries, size_t n,
                       struct store_apply_result *results, struct swm_err *err)
{
    for (size_t i = 0; i < n; i++) {
        c->index = first + i;
        c->err = &results[i].err;
        swm_err_clear(c->err);
        int rc = apply_entry(c, txn, entries[i]);
        if (rc < 0 && !is_entry_failure(rc)) {
            if (err != NULL)
                *err = *c->err;
            return swm_err_wrap(err, rc, "applying entry %" PRIu64, c->index);
        }
    }
    return 0;
}

int store_apply_entries(struct store *s, uint64_t first, Swarmc__StoreEntry *const *entries,
                        size_t n, struct store_apply_result *results, struct swm_err *err)
{
    if (n == 0)
        return 0;
    int rc = check_args(s, first, entries, n, results, err);
    if (rc < 0)
        return rc;
    struct apply_ctx c = {.s = s};
    if (store__events_wanted(s)) {
        c.events = swm_calloc(1, sizeof(*c.events));
        if (c.events == NULL)
            return swm_err_set(err, -ENOMEM, "applying entries: out of memory");
    }
    MDB_txn *txn;
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        rc = store__mdb_fail(err, rc, "beginning the write transaction");
        goto fail;
    }
    rc = apply_batch(&c, txn, first, entries, n, results, err);
    if (rc == 0)
        rc = store__put_applied_index(s, txn, first + n - 1, err);
    if (rc < 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    /* The commit is the fsync that makes the batch durable. */
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        rc = store__mdb_fail(err, rc, "committing entries %" PRIu64 "-%" PRIu64, first,
                             first + n - 1);
        goto fail;
    }
    __atomic_store_n(&s->applied_index, first + n - 1, __ATOMIC_RELEASE);
    if (c.events != NULL && c.events->n > 0)
        store__events_enqueue(s, c.events);
    else
        store__event_batch_free(c.events);
    return 0;
fail:
    store__event_batch_free(c.events);
    return rc;
}
