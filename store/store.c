/* The LMDB environment: opening, integrity check on open, error translation
 * and the helpers the other files of store/ share (DESIGN.md §5). */
#include "store/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/fs.h"

/* Sparse: LMDB without MDB_WRITEMAP grows the file only as pages are used,
 * so a generous map costs address space, not disk. */
#define STORE_MAP_SIZE (8ULL << 30)
#define STORE_MAX_READERS 256
#define STORE_SCHEMA_VERSION 1U

static const char meta_applied_key[] = "applied_index";
static const char meta_schema_key[] = "schema_version";

const char *const store__db_names[STORE__DB_COUNT] = {
    [STORE__DB_NODES] = "nodes",
    [STORE__DB_SERVICES] = "services",
    [STORE__DB_TASKS] = "tasks",
    [STORE__DB_CLUSTERS] = "clusters",
    [STORE__DB_SERVICES_BY_NAME] = "services_by_name",
    [STORE__DB_TASKS_BY_SERVICE] = "tasks_by_service",
    [STORE__DB_TASKS_BY_NODE] = "tasks_by_node",
    [STORE__DB_TASKS_BY_DESIRED_STATE] = "tasks_by_desired_state",
    [STORE__DB_META] = "meta",
    [STORE__DB_LOG] = "log",
    [STORE__DB_RAFT_LOG] = "raft_log",
    [STORE__DB_RAFT_STATE] = "raft_state",
};

static const unsigned int db_flags[STORE__DB_COUNT] = {
    [STORE__DB_TASKS_BY_SERVICE] = MDB_DUPSORT,
    [STORE__DB_TASKS_BY_NODE] = MDB_DUPSORT,
    [STORE__DB_TASKS_BY_DESIRED_STATE] = MDB_DUPSORT,
};

const struct store__kind store__kinds[4] = {
    [STORE_KIND_NODE] = {"node", STORE__DB_NODES, &swarmc__node__descriptor,
                         offsetof(Swarmc__Node, id), offsetof(Swarmc__Node, meta)},
    [STORE_KIND_SERVICE] = {"service", STORE__DB_SERVICES, &swarmc__service__descriptor,
                            offsetof(Swarmc__Service, id), offsetof(Swarmc__Service, meta)},
    [STORE_KIND_TASK] = {"task", STORE__DB_TASKS, &swarmc__task__descriptor,
                         offsetof(Swarmc__Task, id), offsetof(Swarmc__Task, meta)},
    [STORE_KIND_CLUSTER] = {"cluster", STORE__DB_CLUSTERS, &swarmc__cluster__descriptor,
                            offsetof(Swarmc__Cluster, id), offsetof(Swarmc__Cluster, meta)},
};

/* --- helpers shared by store/ ------------------------------------------- */

int store__mdb_code(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return SWM_ENOTFOUND;
    case MDB_KEYEXIST:
        return SWM_EEXISTS;
    case MDB_MAP_FULL:
        return -ENOSPC;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_INCOMPATIBLE:
        return SWM_ECORRUPT;
    case MDB_VERSION_MISMATCH:
        return SWM_ENOTSUP;
    case MDB_PANIC:
        return -EIO;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
        return -EAGAIN;
    case MDB_DBS_FULL:
    case MDB_TLS_FULL:
        return -EMFILE;
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
        return -E2BIG;
    case MDB_BAD_RSLOT:
    case MDB_BAD_TXN:
    case MDB_BAD_VALSIZE:
    case MDB_BAD_DBI:
        return -EINVAL;
    default:
        /* LMDB passes system errors through as positive errno values. */
        return rc > 0 ? -rc : -EIO;
    }
}

int store__mdb_fail(struct swm_err *err, int rc, const char *fmt, ...)
{
    int code = store__mdb_code(rc);
    if (err == NULL)
        return code;
    char context[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof(context), fmt, ap);
    va_end(ap);
    return swm_err_set(err, code, "%s: %s", context, mdb_strerror(rc));
}

const char *store__key_str(const MDB_val *key, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = key->mv_data;
    size_t o = 0;
    for (size_t i = 0; i < key->mv_size && o + 5 < size; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            buf[o++] = (char)p[i];
            continue;
        }
        buf[o++] = '\\';
        buf[o++] = 'x';
        buf[o++] = hex[p[i] >> 4];
        buf[o++] = hex[p[i] & 0xf];
    }
    buf[o] = '\0';
    return buf;
}

void store__put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

uint64_t store__get_be64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

void store__put_be32(uint8_t out[4], uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

uint32_t store__get_be32(const uint8_t in[4])
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

bool store__valid_key(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strnlen(s, STORE__MAX_KEY + 1);
    return len > 0 && len <= STORE__MAX_KEY;
}

static void *unpack_alloc(void *data, size_t size)
{
    void *p = swm_malloc(size);
    if (p == NULL)
        *(bool *)data = true;
    return p;
}

static void unpack_free(void *data, void *ptr)
{
    (void)data;
    swm_free(ptr);
}

ProtobufCMessage *store__unpack(const ProtobufCMessageDescriptor *desc, const void *data,
                                size_t len, bool *oom)
{
    /* Same seam as proto_allocator, so proto_free() frees the result. */
    ProtobufCAllocator a = {.alloc = unpack_alloc, .free = unpack_free, .allocator_data = oom};
    *oom = false;
    return protobuf_c_message_unpack(desc, &a, len, data);
}

int store__decode(enum store_object_kind kind, const MDB_val *key, const MDB_val *val,
                  ProtobufCMessage **out, struct swm_err *err)
{
    const struct store__kind *k = &store__kinds[kind];
    char kbuf[128];
    bool oom;
    ProtobufCMessage *m = store__unpack(k->desc, val->mv_data, val->mv_size, &oom);
    if (m == NULL && oom)
        return swm_err_set(err, -ENOMEM, "decoding table %s key %s: out of memory",
                           store__db_names[k->table], store__key_str(key, kbuf, sizeof(kbuf)));
    if (m == NULL)
        return swm_err_set(err, SWM_ECORRUPT,
                           "table %s key %s: value does not decode as %s (%zu bytes)",
                           store__db_names[k->table], store__key_str(key, kbuf, sizeof(kbuf)),
                           k->desc->short_name, val->mv_size);
    /* A value that decodes but belongs to another key is as corrupt as one
     * that does not decode: catch it before it spreads. */
    const char *id = store__obj_id(kind, m);
    if (id == NULL || strlen(id) != key->mv_size || memcmp(id, key->mv_data, key->mv_size) != 0) {
        char ibuf[128];
        MDB_val idv = {.mv_size = id == NULL ? 0 : strlen(id), .mv_data = (void *)id};
        swm_err_set(err, SWM_ECORRUPT, "table %s key %s: value holds %s id \"%s\"",
                    store__db_names[k->table], store__key_str(key, kbuf, sizeof(kbuf)), k->name,
                    store__key_str(&idv, ibuf, sizeof(ibuf)));
        proto_free(m);
        return SWM_ECORRUPT;
    }
    *out = m;
    return 0;
}

static bool string_key(const char *s, MDB_val *key)
{
    if (s == NULL || s[0] == '\0')
        return false;
    key->mv_size = strlen(s);
    key->mv_data = (void *)s;
    return true;
}

bool store__index_key(enum store_object_kind kind, const ProtobufCMessage *obj, enum store__db db,
                      MDB_val *key, uint8_t state_buf[4])
{
    const Swarmc__Service *service = (const Swarmc__Service *)obj;
    const Swarmc__Task *task = (const Swarmc__Task *)obj;
    switch (db) {
    case STORE__DB_SERVICES_BY_NAME:
        return kind == STORE_KIND_SERVICE && service->spec != NULL &&
               service->spec->annotations != NULL &&
               string_key(service->spec->annotations->name, key);
    case STORE__DB_TASKS_BY_SERVICE:
        return kind == STORE_KIND_TASK && string_key(task->service_id, key);
    case STORE__DB_TASKS_BY_NODE:
        return kind == STORE_KIND_TASK && string_key(task->node_id, key);
    case STORE__DB_TASKS_BY_DESIRED_STATE:
        if (kind != STORE_KIND_TASK)
            return false;
        /* Read through has_: what was packed is what replicas see. */
        store__put_be32(state_buf, task->has_desired_state ? (uint32_t)task->desired_state : 0);
        key->mv_size = 4;
        key->mv_data = state_buf;
        return true;
    default:
        return false;
    }
}

/* --- open and close ----------------------------------------------------- */

static int env_open(struct store *s, const char *dir, struct swm_err *err)
{
    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        s->env = NULL;
        return store__mdb_fail(err, rc, "creating LMDB environment for %s", dir);
    }
    rc = mdb_env_set_maxdbs(s->env, STORE__DB_COUNT);
    if (rc == 0)
        rc = mdb_env_set_mapsize(s->env, STORE_MAP_SIZE);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS);
    if (rc != 0)
        return store__mdb_fail(err, rc, "configuring LMDB environment for %s", dir);
    /* MDB_NOTLS: read transactions belong to their store_read, not to a
     * thread, so the loop thread and the threadpool can share them. No
     * MDB_NOSYNC: every commit is durable (DESIGN.md §5). */
    rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
    if (rc != 0)
        return store__mdb_fail(err, rc, "opening LMDB environment in %s", dir);
    /* A process killed with a read transaction open leaves its reader slot
     * behind, pinning old pages (the file would only grow): reclaim them. */
    int dead;
    mdb_reader_check(s->env, &dead);
    return 0;
}

static int table_entries(struct store *s, MDB_txn *txn, enum store__db db, size_t *n,
                         struct swm_err *err)
{
    MDB_stat st;
    int rc = mdb_stat(txn, s->dbi[db], &st);
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading statistics of table %s", store__db_names[db]);
    *n = st.ms_entries;
    return 0;
}

/* Every task appears once in tasks_by_desired_state and at most once in the
 * other task indexes, every service at most once by name: O(1) checks that
 * catch an index that drifted from its table. */
static int check_index_sizes(struct store *s, MDB_txn *txn, struct swm_err *err)
{
    static const struct {
        enum store__db index, table;
        bool exact;
    } pairs[] = {
        {STORE__DB_TASKS_BY_DESIRED_STATE, STORE__DB_TASKS, true},
        {STORE__DB_TASKS_BY_SERVICE, STORE__DB_TASKS, false},
        {STORE__DB_TASKS_BY_NODE, STORE__DB_TASKS, false},
        {STORE__DB_SERVICES_BY_NAME, STORE__DB_SERVICES, false},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        size_t n_index = 0, n_table = 0;
        int rc = table_entries(s, txn, pairs[i].index, &n_index, err);
        if (rc == 0)
            rc = table_entries(s, txn, pairs[i].table, &n_table, err);
        if (rc < 0)
            return rc;
        if (pairs[i].exact ? n_index != n_table : n_index > n_table)
            return swm_err_set(
                err, SWM_ECORRUPT, "index %s has %zu entries for %zu objects in table %s",
                store__db_names[pairs[i].index], n_index, n_table, store__db_names[pairs[i].table]);
    }
    return 0;
}

static int store_is_empty(struct store *s, MDB_txn *txn, bool *empty, struct swm_err *err)
{
    *empty = true;
    for (int db = 0; db < STORE__DB_COUNT; db++) {
        size_t n = 0;
        int rc = table_entries(s, txn, (enum store__db)db, &n, err);
        if (rc < 0)
            return rc;
        if (n > 0)
            *empty = false;
    }
    return 0;
}

static int meta_get(struct store *s, MDB_txn *txn, const char *name, MDB_val *val,
                    struct swm_err *err)
{
    MDB_val key = {.mv_size = strlen(name), .mv_data = (void *)name};
    int rc = mdb_get(txn, s->dbi[STORE__DB_META], &key, val);
    if (rc == MDB_NOTFOUND)
        return SWM_ENOTFOUND;
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading table meta key %s", name);
    return 0;
}

static int check_schema(struct store *s, MDB_txn *txn, struct swm_err *err)
{
    MDB_val val;
    int rc = meta_get(s, txn, meta_schema_key, &val, err);
    if (rc == SWM_ENOTFOUND) {
        bool empty;
        rc = store_is_empty(s, txn, &empty, err);
        if (rc < 0)
            return rc;
        if (!empty)
            return swm_err_set(err, SWM_ECORRUPT,
                               "table meta has no schema_version but the store holds data");
        uint8_t v[4];
        store__put_be32(v, STORE_SCHEMA_VERSION);
        MDB_val key = {.mv_size = strlen(meta_schema_key), .mv_data = (void *)meta_schema_key};
        val = (MDB_val){.mv_size = sizeof(v), .mv_data = v};
        rc = mdb_put(txn, s->dbi[STORE__DB_META], &key, &val, 0);
        if (rc != 0)
            return store__mdb_fail(err, rc, "writing table meta key %s", meta_schema_key);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (val.mv_size != 4)
        return swm_err_set(err, SWM_ECORRUPT, "table meta key %s: %zu bytes, expected 4",
                           meta_schema_key, val.mv_size);
    uint32_t version = store__get_be32(val.mv_data);
    if (version != STORE_SCHEMA_VERSION)
        return swm_err_set(err, SWM_ENOTSUP,
                           "store schema version %" PRIu32 ", this build reads %u", version,
                           STORE_SCHEMA_VERSION);
    return 0;
}

int store__get_applied_index(struct store *s, MDB_txn *txn, uint64_t *index, struct swm_err *err)
{
    MDB_val val;
    int rc = meta_get(s, txn, meta_applied_key, &val, err);
    if (rc == SWM_ENOTFOUND) {
        *index = 0;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (val.mv_size != 8)
        return swm_err_set(err, SWM_ECORRUPT, "table meta key %s: %zu bytes, expected 8",
                           meta_applied_key, val.mv_size);
    *index = store__get_be64(val.mv_data);
    return 0;
}

static int load_applied_index(struct store *s, MDB_txn *txn, struct swm_err *err)
{
    return store__get_applied_index(s, txn, &s->applied_index, err);
}

/* Opens (creating) every table and checks them, in one write transaction so
 * that a new store is initialized atomically. */
static int open_tables(struct store *s, struct swm_err *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "beginning the opening transaction");
    for (int db = 0; db < STORE__DB_COUNT; db++) {
        rc = mdb_dbi_open(txn, store__db_names[db], db_flags[db] | MDB_CREATE, &s->dbi[db]);
        if (rc != 0) {
            rc = store__mdb_fail(err, rc, "opening table %s", store__db_names[db]);
            goto abort;
        }
    }
    rc = check_schema(s, txn, err);
    if (rc == 0)
        rc = load_applied_index(s, txn, err);
    if (rc == 0)
        rc = check_index_sizes(s, txn, err);
    if (rc < 0)
        goto abort;
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "committing the opening transaction");
    return 0;
abort:
    mdb_txn_abort(txn);
    return rc;
}

int store_open(const char *dir, struct store **out, struct swm_err *err)
{
    struct store *s = swm_calloc(1, sizeof(*s));
    if (s == NULL)
        return swm_err_set(err, -ENOMEM, "opening store %s: out of memory", dir);
    s->queue_tail = &s->queue_head;
    int rc = -pthread_mutex_init(&s->lock, NULL);
    if (rc < 0) {
        swm_err_set(err, rc, "opening store %s: %s", dir, swm_strerror(rc));
        goto fail;
    }
    s->lock_ready = true;
    rc = swm_mkdir_p(dir, 0700);
    if (rc < 0) {
        swm_err_set(err, rc, "creating store directory %s: %s", dir, swm_strerror(rc));
        goto fail;
    }
    rc = env_open(s, dir, err);
    if (rc == 0)
        rc = open_tables(s, err);
    if (rc < 0) {
        swm_err_wrap(err, rc, "opening store %s", dir);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (s->env != NULL)
        mdb_env_close(s->env);
    store__events_fini(s);
    if (s->lock_ready)
        pthread_mutex_destroy(&s->lock);
    swm_free(s);
}

uint64_t store_applied_index(struct store *s)
{
    return __atomic_load_n(&s->applied_index, __ATOMIC_ACQUIRE);
}

int store__put_applied_index(struct store *s, MDB_txn *txn, uint64_t index, struct swm_err *err)
{
    uint8_t v[8];
    store__put_be64(v, index);
    MDB_val key = {.mv_size = strlen(meta_applied_key), .mv_data = (void *)meta_applied_key};
    MDB_val val = {.mv_size = sizeof(v), .mv_data = v};
    int rc = mdb_put(txn, s->dbi[STORE__DB_META], &key, &val, 0);
    if (rc != 0)
        return store__mdb_fail(err, rc, "writing table meta key %s", meta_applied_key);
    return 0;
}

const char *store__index_key_str(enum store__db db, const MDB_val *key, char *buf, size_t size)
{
    if (db == STORE__DB_TASKS_BY_DESIRED_STATE && key->mv_size == 4) {
        snprintf(buf, size, "%" PRIu32, store__get_be32(key->mv_data));
        return buf;
    }
    return store__key_str(key, buf, size);
}
