/* Durable Raft storage (DESIGN.md §5, issue 3): see store/raftlog.h for the
 * tables and formats. Everything a ready asks for happens in one LMDB write
 * transaction, so the log, the hard state, the object tables and the applied
 * index can never disagree after a crash. */
#include "store/raftlog.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/alloc.h"
#include "store/internal.h"

#define ENTRY_HEADER 13    /* crc 4, term 8, type 1 */
#define HARD_STATE_SIZE 28 /* crc 4, term, vote, commit */
#define SNAPSHOT_HEADER 24 /* crc 4, index 8, term 8, data crc 4; conf follows */
#define SNAPSHOT_MAGIC "SWMSNAP1"
#define SNAPSHOT_MAGIC_LEN 8

/* What a user can do about a damaged log: it is never repaired in place,
 * because the other managers hold the good copy. */
#define ADVICE                                                                                     \
    "restore this manager's data directory from a backup, or remove it from the cluster, "         \
    "delete its state directory and re-join it"

static const char key_hard_state[] = "hard_state";
static const char key_snapshot[] = "snapshot";
static const char key_snapshot_data[] = "snapshot_data";

static MDB_val str_key(const char *k)
{
    return (MDB_val){.mv_size = strlen(k), .mv_data = (void *)k};
}

static uint32_t entry_crc(uint64_t index, const uint8_t *value, size_t len)
{
    uint8_t kb[8];
    store__put_be64(kb, index);
    return store__crc32c(store__crc32c(0, kb, sizeof(kb)), value + 4, len - 4);
}

/* --- loading ------------------------------------------------------------ */

static int load_hard_state(struct store *s, MDB_txn *txn, struct raft_hard_state *hs,
                           struct swm_err *err)
{
    MDB_val key = str_key(key_hard_state), val;
    int rc = mdb_get(txn, s->dbi[STORE__DB_RAFT_STATE], &key, &val);
    if (rc == MDB_NOTFOUND) {
        *hs = (struct raft_hard_state){0};
        return 0;
    }
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading the raft hard state");
    const uint8_t *p = val.mv_data;
    if (val.mv_size != HARD_STATE_SIZE ||
        store__get_be32(p) != store__crc32c(0, p + 4, HARD_STATE_SIZE - 4))
        return swm_err_set(err, SWM_ECORRUPT,
                           "the raft hard state (term, vote, commit) fails its checksum: the "
                           "store is corrupted; " ADVICE);
    hs->term = store__get_be64(p + 4);
    hs->vote = store__get_be64(p + 12);
    hs->commit = store__get_be64(p + 20);
    return 0;
}

/* The membership is stored in a format of our own rather than the wire
 * codec's, so that loading tells running out of memory from damage:
 * n_servers u32 BE, per server id u64 BE and role u8, n_removed u32 BE, per
 * removed id u64 BE. */
static bool valid_role(uint8_t role)
{
    return role == RAFT_VOTER || role == RAFT_LEARNER;
}

static int encode_conf(const struct raft_configuration *c, struct swm_buf *b)
{
    if (c->n_servers > UINT32_MAX || c->n_removed > UINT32_MAX)
        return -EINVAL;
    for (size_t i = 0; i < c->n_servers; i++)
        if (c->servers[i].id == 0 || !valid_role((uint8_t)c->servers[i].role))
            return -EINVAL;
    size_t need = 8 + 9 * c->n_servers + 8 * c->n_removed;
    if (swm_buf_reserve(b, need) < 0)
        return -ENOMEM;
    uint8_t *p = b->data + b->len;
    store__put_be32(p, (uint32_t)c->n_servers);
    p += 4;
    for (size_t i = 0; i < c->n_servers; i++, p += 9) {
        store__put_be64(p, c->servers[i].id);
        p[8] = (uint8_t)c->servers[i].role;
    }
    store__put_be32(p, (uint32_t)c->n_removed);
    p += 4;
    for (size_t i = 0; i < c->n_removed; i++, p += 8)
        store__put_be64(p, c->removed[i]);
    b->len += need;
    return 0;
}

static int decode_conf(const uint8_t *p, size_t len, uint64_t index, struct raft_configuration *out,
                       struct swm_err *err)
{
    struct raft_configuration c = {0};
    if (len < 8)
        goto corrupt;
    size_t n_servers = store__get_be32(p);
    if (n_servers > (len - 8) / 9)
        goto corrupt;
    size_t off = 4 + 9 * n_servers;
    size_t n_removed = store__get_be32(p + off);
    if (len != off + 4 + 8 * n_removed)
        goto corrupt;
    c.servers = n_servers > 0 ? swm_calloc(n_servers, sizeof(*c.servers)) : NULL;
    c.removed = n_removed > 0 ? swm_calloc(n_removed, sizeof(*c.removed)) : NULL;
    if ((n_servers > 0 && c.servers == NULL) || (n_removed > 0 && c.removed == NULL)) {
        raft_configuration_free(&c);
        return swm_err_set(err, -ENOMEM, "reading raft snapshot %" PRIu64 ": out of memory", index);
    }
    c.n_servers = n_servers;
    c.n_removed = n_removed;
    for (size_t i = 0; i < n_servers; i++) {
        c.servers[i].id = store__get_be64(p + 4 + 9 * i);
        uint8_t role = p[4 + 9 * i + 8];
        if (c.servers[i].id == 0 || !valid_role(role))
            goto corrupt;
        c.servers[i].role = (enum raft_role)role;
    }
    for (size_t i = 0; i < n_removed; i++)
        c.removed[i] = store__get_be64(p + off + 4 + 8 * i);
    *out = c;
    return 0;
corrupt:
    raft_configuration_free(&c);
    return swm_err_set(err, SWM_ECORRUPT,
                       "the membership of raft snapshot %" PRIu64
                       " is malformed: the store is corrupted; " ADVICE,
                       index);
}

/* Reads the recorded snapshot's meta (conf only if conf != NULL) and the
 * CRC of its data. No snapshot: index 0. */
static int load_snapshot_meta(struct store *s, MDB_txn *txn, struct raft_snapshot_meta *meta,
                              uint32_t *data_crc, struct raft_configuration *conf,
                              struct swm_err *err)
{
    MDB_val key = str_key(key_snapshot), val;
    *meta = (struct raft_snapshot_meta){0};
    int rc = mdb_get(txn, s->dbi[STORE__DB_RAFT_STATE], &key, &val);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading the raft snapshot metadata");
    const uint8_t *p = val.mv_data;
    if (val.mv_size < SNAPSHOT_HEADER ||
        store__get_be32(p) != store__crc32c(0, p + 4, val.mv_size - 4))
        return swm_err_set(err, SWM_ECORRUPT,
                           "the raft snapshot metadata fails its checksum: the store is "
                           "corrupted; " ADVICE);
    meta->index = store__get_be64(p + 4);
    meta->term = store__get_be64(p + 12);
    *data_crc = store__get_be32(p + 20);
    if (conf == NULL)
        return 0;
    return decode_conf(p + SNAPSHOT_HEADER, val.mv_size - SNAPSHOT_HEADER, meta->index, conf, err);
}

static int load_snapshot_data(struct store *s, MDB_txn *txn, uint64_t index, uint32_t data_crc,
                              struct raft_init_state *out, struct swm_err *err)
{
    MDB_val key = str_key(key_snapshot_data), val;
    int rc = mdb_get(txn, s->dbi[STORE__DB_RAFT_STATE], &key, &val);
    if (rc == MDB_NOTFOUND)
        return swm_err_set(err, SWM_ECORRUPT,
                           "raft snapshot %" PRIu64 " has no data: the store is corrupted; " ADVICE,
                           index);
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading the data of raft snapshot %" PRIu64, index);
    if (store__crc32c(0, val.mv_data, val.mv_size) != data_crc)
        return swm_err_set(err, SWM_ECORRUPT,
                           "the data of raft snapshot %" PRIu64
                           " fails its checksum: the store is corrupted; " ADVICE,
                           index);
    void *copy = swm_malloc(val.mv_size > 0 ? val.mv_size : 1);
    if (copy == NULL)
        return swm_err_set(err, -ENOMEM, "reading raft snapshot %" PRIu64 ": out of memory", index);
    memcpy(copy, val.mv_data, val.mv_size);
    out->snapshot_data = copy;
    out->snapshot_len = val.mv_size;
    return 0;
}

/* Decodes and checks the entry stored under key into e (data copied). */
static int decode_entry(const MDB_val *key, const MDB_val *val, struct raft_entry *e,
                        struct swm_err *err)
{
    if (key->mv_size != 8)
        return swm_err_set(err, SWM_ECORRUPT,
                           "the raft log holds a key of %zu bytes (expected 8): the log is "
                           "corrupted; " ADVICE,
                           key->mv_size);
    uint64_t index = store__get_be64(key->mv_data);
    const uint8_t *p = val->mv_data;
    if (val->mv_size < ENTRY_HEADER || store__get_be32(p) != entry_crc(index, p, val->mv_size))
        return swm_err_set(
            err, SWM_ECORRUPT,
            "raft log entry %" PRIu64 " fails its checksum: the log is corrupted; " ADVICE, index);
    uint8_t type = p[12];
    if (type != RAFT_ENTRY_NORMAL && type != RAFT_ENTRY_CONF)
        return swm_err_set(err, SWM_ECORRUPT,
                           "raft log entry %" PRIu64 " has unknown type %u: " ADVICE, index,
                           (unsigned)type);
    size_t len = val->mv_size - ENTRY_HEADER;
    void *data = NULL;
    if (len > 0) {
        data = swm_malloc(len);
        if (data == NULL)
            return swm_err_set(err, -ENOMEM, "reading raft log entry %" PRIu64 ": out of memory",
                               index);
        memcpy(data, p + ENTRY_HEADER, len);
    }
    *e = (struct raft_entry){.term = store__get_be64(p + 4),
                             .index = index,
                             .type = (enum raft_entry_type)type,
                             .data = data,
                             .len = len};
    return 0;
}

static int load_entries(struct store *s, MDB_txn *txn, struct raft_init_state *out,
                        struct swm_err *err)
{
    MDB_stat st;
    int rc = mdb_stat(txn, s->dbi[STORE__DB_RAFT_LOG], &st);
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading statistics of table raft_log");
    if (st.ms_entries == 0)
        return 0;
    struct raft_entry *es = swm_calloc(st.ms_entries, sizeof(*es));
    if (es == NULL)
        return swm_err_set(err, -ENOMEM, "reading %zu raft log entries: out of memory",
                           (size_t)st.ms_entries);
    out->entries = es;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, s->dbi[STORE__DB_RAFT_LOG], &cur);
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading table raft_log");
    MDB_val key, val;
    size_t n = 0;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && n < st.ms_entries;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct raft_entry *e = &es[n];
        int drc = decode_entry(&key, &val, e, err);
        if (drc < 0) {
            mdb_cursor_close(cur);
            return drc;
        }
        out->n_entries = ++n;
        if (n == 1)
            continue;
        const struct raft_entry *prev = &es[n - 2];
        if (e->index != prev->index + 1) {
            mdb_cursor_close(cur);
            return swm_err_set(err, SWM_ECORRUPT,
                               "raft log entries %" PRIu64 " to %" PRIu64
                               " are missing (entry %" PRIu64 " follows entry %" PRIu64
                               "): the log is truncated; " ADVICE,
                               prev->index + 1, e->index - 1, e->index, prev->index);
        }
        if (e->term < prev->term) {
            mdb_cursor_close(cur);
            return swm_err_set(err, SWM_ECORRUPT,
                               "raft log entry %" PRIu64 " has term %" PRIu64
                               ", below term %" PRIu64 " of entry %" PRIu64
                               ": the log is corrupted; " ADVICE,
                               e->index, e->term, prev->term, prev->index);
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__mdb_fail(err, rc, "reading table raft_log");
    return 0;
}

/* The log must join the snapshot and reach the commit and applied indexes:
 * otherwise its head or tail was lost. */
static int check_coverage(const struct raft_init_state *in, struct swm_err *err)
{
    uint64_t snap = in->snapshot.index;
    uint64_t last = snap;
    if (in->n_entries > 0) {
        uint64_t first = in->entries[0].index;
        if (first > snap + 1)
            return swm_err_set(err, SWM_ECORRUPT,
                               "raft log entries %" PRIu64 " to %" PRIu64
                               " are missing (the log starts at %" PRIu64
                               ", the snapshot is at %" PRIu64 "): the log is truncated; " ADVICE,
                               snap + 1, first - 1, first, snap);
        if (in->entries[in->n_entries - 1].index > last)
            last = in->entries[in->n_entries - 1].index;
    }
    if (in->hard_state.commit > last)
        return swm_err_set(err, SWM_ECORRUPT,
                           "raft log ends at entry %" PRIu64 " but entry %" PRIu64
                           " is recorded as committed: the log is truncated; " ADVICE,
                           last, in->hard_state.commit);
    if (in->applied > last)
        return swm_err_set(err, SWM_ECORRUPT,
                           "raft log ends at entry %" PRIu64
                           " but the store has applied entry %" PRIu64
                           ": the log is truncated, or the store was written without raft; " ADVICE,
                           last, in->applied);
    if (in->applied < snap)
        return swm_err_set(err, SWM_ECORRUPT,
                           "the store has applied entry %" PRIu64
                           " but holds raft snapshot %" PRIu64 ": the store is corrupted; " ADVICE,
                           in->applied, snap);
    return 0;
}

void store_raft_init_free(struct raft_init_state *init)
{
    if (init == NULL)
        return;
    for (size_t i = 0; i < init->n_entries; i++)
        swm_free((void *)init->entries[i].data);
    swm_free((void *)init->entries);
    swm_free((void *)init->snapshot_data);
    raft_configuration_free(&init->snapshot.conf);
    *init = (struct raft_init_state){0};
}

int store_raft_load(struct store *s, struct raft_init_state *out, struct swm_err *err)
{
    struct raft_init_state in = {0};
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "loading the raft state: beginning a read transaction");
    uint32_t data_crc = 0;
    rc = load_hard_state(s, txn, &in.hard_state, err);
    if (rc == 0)
        rc = load_snapshot_meta(s, txn, &in.snapshot, &data_crc, &in.snapshot.conf, err);
    if (rc == 0 && in.snapshot.index > 0)
        rc = load_snapshot_data(s, txn, in.snapshot.index, data_crc, &in, err);
    if (rc == 0)
        rc = load_entries(s, txn, &in, err);
    if (rc == 0)
        rc = store__get_applied_index(s, txn, &in.applied, err);
    if (rc == 0)
        rc = check_coverage(&in, err);
    mdb_txn_abort(txn);
    if (rc < 0) {
        store_raft_init_free(&in);
        return swm_err_wrap(err, rc, "loading the raft state");
    }
    *out = in;
    return 0;
}

/* --- writing ------------------------------------------------------------ */

/* Deletes entries with from <= index <= to. */
static int delete_range(struct store *s, MDB_txn *txn, uint64_t from, uint64_t to,
                        struct swm_err *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi[STORE__DB_RAFT_LOG], &cur);
    if (rc != 0)
        return store__mdb_fail(err, rc, "deleting raft log entries");
    uint8_t kb[8];
    store__put_be64(kb, from);
    MDB_val key = {.mv_size = sizeof(kb), .mv_data = kb}, val;
    /* After mdb_cursor_del the cursor already rests on the next entry, and
     * MDB_NEXT returns it rather than skipping it. */
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size == 8 && store__get_be64(key.mv_data) > to)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__mdb_fail(err, rc, "deleting raft log entries from %" PRIu64, from);
    return 0;
}

static int last_stored_index(struct store *s, MDB_txn *txn, uint64_t *last, struct swm_err *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi[STORE__DB_RAFT_LOG], &cur);
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading table raft_log");
    MDB_val key, val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        *last = 0;
        return 0;
    }
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading table raft_log");
    if (key.mv_size != 8)
        return swm_err_set(err, SWM_ECORRUPT, "the raft log holds a key of %zu bytes: " ADVICE,
                           key.mv_size);
    *last = store__get_be64(key.mv_data);
    return 0;
}

static int put_entry(struct store *s, MDB_txn *txn, const struct raft_entry *e, struct swm_err *err)
{
    uint8_t kb[8];
    store__put_be64(kb, e->index);
    MDB_val key = {.mv_size = sizeof(kb), .mv_data = kb};
    MDB_val val = {.mv_size = ENTRY_HEADER + e->len};
    int rc = mdb_put(txn, s->dbi[STORE__DB_RAFT_LOG], &key, &val, MDB_RESERVE);
    if (rc != 0)
        return store__mdb_fail(err, rc, "writing raft log entry %" PRIu64, e->index);
    uint8_t *p = val.mv_data;
    store__put_be64(p + 4, e->term);
    p[12] = (uint8_t)e->type;
    if (e->len > 0)
        memcpy(p + ENTRY_HEADER, e->data, e->len);
    store__put_be32(p, entry_crc(e->index, p, val.mv_size));
    return 0;
}

static int put_hard_state(struct store *s, MDB_txn *txn, const struct raft_hard_state *hs,
                          struct swm_err *err)
{
    uint8_t v[HARD_STATE_SIZE];
    store__put_be64(v + 4, hs->term);
    store__put_be64(v + 12, hs->vote);
    store__put_be64(v + 20, hs->commit);
    store__put_be32(v, store__crc32c(0, v + 4, sizeof(v) - 4));
    MDB_val key = str_key(key_hard_state), val = {.mv_size = sizeof(v), .mv_data = v};
    int rc = mdb_put(txn, s->dbi[STORE__DB_RAFT_STATE], &key, &val, 0);
    if (rc != 0)
        return store__mdb_fail(err, rc, "writing the raft hard state");
    return 0;
}

static int put_snapshot(struct store *s, MDB_txn *txn, const struct raft_snapshot_meta *meta,
                        const void *data, size_t len, struct swm_err *err)
{
    struct swm_buf b = {0};
    int rc = swm_buf_reserve(&b, SNAPSHOT_HEADER);
    if (rc == 0) {
        b.len = SNAPSHOT_HEADER;
        rc = encode_conf(&meta->conf, &b);
    }
    if (rc < 0) {
        swm_buf_free(&b);
        return swm_err_set(err, rc, "writing raft snapshot %" PRIu64 ": %s", meta->index,
                           rc == -ENOMEM ? "out of memory" : "invalid membership");
    }
    store__put_be64(b.data + 4, meta->index);
    store__put_be64(b.data + 12, meta->term);
    store__put_be32(b.data + 20, store__crc32c(0, data, len));
    store__put_be32(b.data, store__crc32c(0, b.data + 4, b.len - 4));
    MDB_val key = str_key(key_snapshot), val = {.mv_size = b.len, .mv_data = b.data};
    rc = mdb_put(txn, s->dbi[STORE__DB_RAFT_STATE], &key, &val, 0);
    swm_buf_free(&b);
    if (rc != 0)
        return store__mdb_fail(err, rc, "writing raft snapshot %" PRIu64, meta->index);
    key = str_key(key_snapshot_data);
    val = (MDB_val){.mv_size = len, .mv_data = (void *)data};
    rc = mdb_put(txn, s->dbi[STORE__DB_RAFT_STATE], &key, &val, 0);
    if (rc != 0)
        return store__mdb_fail(err, rc, "writing the data of raft snapshot %" PRIu64, meta->index);
    return 0;
}

/* Replaces every object table and index with the objects of a snapshot. */
static int restore_objects(struct store *s, MDB_txn *txn, const uint8_t *p, size_t len,
                           uint64_t index, struct swm_err *err)
{
    for (int db = STORE__DB_NODES; db <= STORE__DB_TASKS_BY_DESIRED_STATE; db++) {
        int rc = mdb_drop(txn, s->dbi[db], 0);
        if (rc != 0)
            return store__mdb_fail(err, rc, "emptying table %s", store__db_names[db]);
    }
    if (len < SNAPSHOT_MAGIC_LEN || memcmp(p, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN) != 0)
        return swm_err_set(err, SWM_ECORRUPT,
                           "raft snapshot %" PRIu64 " is not in the store's snapshot format",
                           index);
    size_t off = SNAPSHOT_MAGIC_LEN;
    while (off < len) {
        if (len - off < 5)
            return swm_err_set(err, SWM_ECORRUPT,
                               "raft snapshot %" PRIu64 " ends inside a record at byte %zu", index,
                               off);
        uint8_t kind = p[off];
        uint32_t n = store__get_be32(p + off + 1);
        off += 5;
        if (kind > STORE_KIND_CLUSTER || n > len - off)
            return swm_err_set(err, SWM_ECORRUPT,
                               "raft snapshot %" PRIu64 " has a malformed record at byte %zu",
                               index, off - 5);
        bool oom;
        ProtobufCMessage *obj = store__unpack(store__kinds[kind].desc, p + off, n, &oom);
        if (obj == NULL)
            return swm_err_set(err, oom ? -ENOMEM : SWM_ECORRUPT,
                               "raft snapshot %" PRIu64 ": the record at byte %zu %s", index,
                               off - 5, oom ? "needs more memory" : "does not decode");
        int rc = store__restore_object(s, txn, (enum store_object_kind)kind, obj, err);
        proto_free(obj);
        if (rc < 0)
            return swm_err_wrap(err, rc, "installing raft snapshot %" PRIu64, index);
        off += n;
    }
    return 0;
}

static int install_snapshot(struct store *s, MDB_txn *txn, const struct raft_ready *rd,
                            uint64_t *applied, struct swm_err *err)
{
    if (rd->snapshot.index <= *applied)
        return swm_err_set(err, -EINVAL,
                           "installing raft snapshot %" PRIu64 ": entry %" PRIu64
                           " is already applied",
                           rd->snapshot.index, *applied);
    int rc = restore_objects(s, txn, rd->snapshot_data, rd->snapshot_len, rd->snapshot.index, err);
    if (rc == 0)
        rc = put_snapshot(s, txn, &rd->snapshot, rd->snapshot_data, rd->snapshot_len, err);
    if (rc == 0) {
        /* The snapshot replaces the whole log (raft.h). */
        rc = mdb_drop(txn, s->dbi[STORE__DB_RAFT_LOG], 0);
        if (rc != 0)
            rc = store__mdb_fail(err, rc, "emptying table raft_log");
    }
    if (rc == 0)
        *applied = rd->snapshot.index;
    return rc;
}

static int append_entries(struct store *s, MDB_txn *txn, const struct raft_ready *rd,
                          uint64_t snapshot_index, struct swm_err *err)
{
    int rc = 0;
    if (rd->truncate_from > 0)
        rc = delete_range(s, txn, rd->truncate_from, UINT64_MAX, err);
    if (rc < 0 || rd->n_entries == 0)
        return rc;
    uint64_t first = rd->entries[0].index;
    uint64_t last = 0;
    rc = last_stored_index(s, txn, &last, err);
    if (rc < 0)
        return rc;
    if (last < snapshot_index)
        last = snapshot_index;
    if (first == 0 || first > last + 1)
        return swm_err_set(err, -EINVAL,
                           "appending raft log entry %" PRIu64 ": the log ends at %" PRIu64, first,
                           last);
    /* Entries that overwrite stored ones also drop what followed them. */
    if (first <= last)
        rc = delete_range(s, txn, first, UINT64_MAX, err);
    for (size_t i = 0; i < rd->n_entries && rc == 0; i++) {
        const struct raft_entry *e = &rd->entries[i];
        if (e->index != first + i || (i > 0 && e->term < rd->entries[i - 1].term))
            return swm_err_set(err, -EINVAL,
                               "appending raft log entries: entry %" PRIu64
                               " does not follow entry %" PRIu64,
                               e->index, first + i - 1);
        rc = put_entry(s, txn, e, err);
    }
    return rc;
}

static int apply_committed(struct store *s, MDB_txn *txn, const struct raft_ready *rd,
                           struct store__event_batch *events, uint64_t *applied,
                           struct store_apply_result *results, struct swm_err *err)
{
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        swm_err_clear(&results[i].err);
        if (e->index <= *applied)
            continue; /* applied before a crash, or by the snapshot */
        if (e->index != *applied + 1)
            return swm_err_set(err, -EINVAL,
                               "applying raft entry %" PRIu64 ": entry %" PRIu64
                               " is the last applied",
                               e->index, *applied);
        *applied = e->index;
        if (e->type != RAFT_ENTRY_NORMAL || e->len == 0)
            continue;
        bool oom;
        Swarmc__StoreEntry *entry = (Swarmc__StoreEntry *)store__unpack(
            &swarmc__store_entry__descriptor, e->data, e->len, &oom);
        if (entry == NULL && oom)
            return swm_err_set(err, -ENOMEM, "applying raft entry %" PRIu64 ": out of memory",
                               e->index);
        if (entry == NULL) {
            /* Every replica decodes the same bytes the same way. */
            swm_err_set(&results[i].err, SWM_EINVAL_SPEC,
                        "raft entry %" PRIu64 " does not decode as a StoreEntry (%zu bytes)",
                        e->index, e->len);
            continue;
        }
        int rc = store__apply_one(s, txn, events, e->index, entry, &results[i], err);
        proto_free(entry);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_snapshot_index(struct store *s, MDB_txn *txn, uint64_t *index, struct swm_err *err)
{
    struct raft_snapshot_meta meta;
    uint32_t data_crc;
    int rc = load_snapshot_meta(s, txn, &meta, &data_crc, NULL, err);
    if (rc == 0)
        *index = meta.index;
    return rc;
}

int store_raft_persist(struct store *s, const struct raft_ready *rd,
                       struct store_apply_result *results, struct swm_err *err)
{
    if (rd == NULL || (rd->n_committed > 0 && results == NULL) ||
        (rd->has_snapshot && rd->snapshot_data == NULL && rd->snapshot_len > 0))
        return swm_err_set(err, -EINVAL, "persisting a raft ready: bad arguments");
    struct store__event_batch *events = NULL;
    if (rd->n_committed > 0 && store__events_wanted(s)) {
        events = swm_calloc(1, sizeof(*events));
        if (events == NULL)
            return swm_err_set(err, -ENOMEM, "persisting a raft ready: out of memory");
    }
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        rc = store__mdb_fail(err, rc, "persisting a raft ready: beginning the write transaction");
        goto fail;
    }
    uint64_t applied = 0, applied_before = 0, snapshot_index = 0;
    rc = store__get_applied_index(s, txn, &applied, err);
    applied_before = applied;
    if (rc == 0 && rd->has_snapshot)
        rc = install_snapshot(s, txn, rd, &applied, err);
    if (rc == 0)
        rc = read_snapshot_index(s, txn, &snapshot_index, err);
    if (rc == 0 && rd->has_hard_state)
        rc = put_hard_state(s, txn, &rd->hard_state, err);
    if (rc == 0)
        rc = append_entries(s, txn, rd, snapshot_index, err);
    if (rc == 0)
        rc = apply_committed(s, txn, rd, events, &applied, results, err);
    if (rc == 0 && applied != applied_before)
        rc = store__put_applied_index(s, txn, applied, err);
    if (rc < 0) {
        mdb_txn_abort(txn);
        swm_err_wrap(err, rc, "persisting a raft ready");
        goto fail;
    }
    /* The commit is the one fsync of the whole ready (group commit). */
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        rc = store__mdb_fail(err, rc, "persisting a raft ready: committing");
        goto fail;
    }
    __atomic_store_n(&s->applied_index, applied, __ATOMIC_RELEASE);
    if (events != NULL && events->n > 0)
        store__events_enqueue(s, events);
    else
        store__event_batch_free(events);
    return 0;
fail:
    store__event_batch_free(events);
    return rc;
}

int store_raft_compact(struct store *s, uint64_t upto, struct swm_err *err)
{
    if (upto == 0)
        return 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "compacting the raft log: beginning the write transaction");
    rc = delete_range(s, txn, 0, upto, err);
    if (rc < 0) {
        mdb_txn_abort(txn);
        return swm_err_wrap(err, rc, "compacting the raft log up to %" PRIu64, upto);
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "compacting the raft log up to %" PRIu64, upto);
    return 0;
}

/* --- snapshots ---------------------------------------------------------- */

static int append_table(struct store *s, MDB_txn *txn, enum store_object_kind kind,
                        struct swm_buf *out, struct swm_err *err)
{
    enum store__db db = store__kinds[kind].table;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading table %s", store__db_names[db]);
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        /* Decode to check: a corrupt object must not spread to followers. */
        ProtobufCMessage *obj;
        int drc = store__decode(kind, &key, &val, &obj, err);
        if (drc < 0) {
            mdb_cursor_close(cur);
            return drc;
        }
        proto_free(obj);
        uint8_t hdr[5];
        hdr[0] = (uint8_t)kind;
        store__put_be32(hdr + 1, (uint32_t)val.mv_size);
        if (val.mv_size > UINT32_MAX || swm_buf_append(out, hdr, sizeof(hdr)) < 0 ||
            swm_buf_append(out, val.mv_data, val.mv_size) < 0) {
            mdb_cursor_close(cur);
            return swm_err_set(err, -ENOMEM, "taking a snapshot: out of memory");
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return store__mdb_fail(err, rc, "reading table %s", store__db_names[db]);
    return 0;
}

/* Serializes every object as of txn (read or write) onto out. */
static int take_snapshot(struct store *s, MDB_txn *txn, struct swm_buf *out, uint64_t *applied,
                         struct swm_err *err)
{
    int rc = store__get_applied_index(s, txn, applied, err);
    if (rc == 0 && swm_buf_append(out, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN) < 0)
        rc = swm_err_set(err, -ENOMEM, "taking a snapshot: out of memory");
    for (int kind = STORE_KIND_NODE; kind <= STORE_KIND_CLUSTER && rc == 0; kind++)
        rc = append_table(s, txn, (enum store_object_kind)kind, out, err);
    return rc;
}

int store_raft_snapshot_take(struct store *s, struct swm_buf *out, uint64_t *applied,
                             struct swm_err *err)
{
    size_t mark = out->len;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "taking a snapshot: beginning a read transaction");
    uint64_t index = 0;
    rc = take_snapshot(s, txn, out, &index, err);
    mdb_txn_abort(txn);
    if (rc < 0) {
        out->len = mark;
        return swm_err_wrap(err, rc, "taking a snapshot");
    }
    *applied = index;
    return 0;
}

int store_raft_snapshot_save(struct store *s, const struct raft_snapshot_meta *meta,
                             const void *data, size_t len, struct swm_err *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "saving raft snapshot %" PRIu64, meta->index);
    uint64_t applied = 0, recorded = 0;
    rc = store__get_applied_index(s, txn, &applied, err);
    if (rc == 0)
        rc = read_snapshot_index(s, txn, &recorded, err);
    if (rc == 0 && (meta->index > applied || meta->index <= recorded))
        rc = swm_err_set(err, -EINVAL,
                         "raft snapshot %" PRIu64 " is not between the recorded snapshot %" PRIu64
                         " and the applied index %" PRIu64,
                         meta->index, recorded, applied);
    if (rc == 0)
        rc = put_snapshot(s, txn, meta, data, len, err);
    if (rc < 0) {
        mdb_txn_abort(txn);
        return swm_err_wrap(err, rc, "saving raft snapshot %" PRIu64, meta->index);
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "saving raft snapshot %" PRIu64, meta->index);
    return 0;
}

/* --- bootstrap ------------------------------------------------------------ */

/* Whether txn holds any raft state: a hard state, a snapshot or entries. */
static int has_raft_state(struct store *s, MDB_txn *txn, bool *out, struct swm_err *err)
{
    struct raft_hard_state hs;
    uint64_t snap = 0, last = 0;
    int rc = load_hard_state(s, txn, &hs, err);
    if (rc == 0)
        rc = read_snapshot_index(s, txn, &snap, err);
    if (rc == 0)
        rc = last_stored_index(s, txn, &last, err);
    *out = hs.term > 0 || snap > 0 || last > 0;
    return rc;
}

/* A store written by the one-member log of earlier builds: its objects
 * become a snapshot at the applied index, term 1, and its old log table
 * (which only duplicated the applied entries) is emptied. */
static int adopt_applied_state(struct store *s, MDB_txn *txn, const struct raft_configuration *conf,
                               struct swm_err *err)
{
    struct swm_buf data = {0};
    uint64_t applied = 0;
    int rc = take_snapshot(s, txn, &data, &applied, err);
    struct raft_snapshot_meta meta = {.index = applied, .term = 1, .conf = *conf};
    if (rc == 0)
        rc = put_snapshot(s, txn, &meta, data.data, data.len, err);
    swm_buf_free(&data);
    struct raft_hard_state hs = {.term = 1, .commit = applied};
    if (rc == 0)
        rc = put_hard_state(s, txn, &hs, err);
    if (rc == 0 && (rc = mdb_drop(txn, s->dbi[STORE__DB_LOG], 0)) != 0)
        rc = store__mdb_fail(err, rc, "emptying the old log table");
    return rc;
}

/* A new cluster: entry 1 holds the membership, entry 2 the first store
 * entry, both committed in term 1 like every founding member's. */
static int write_founding_entries(struct store *s, MDB_txn *txn,
                                  const struct raft_configuration *conf,
                                  const Swarmc__StoreEntry *first, struct swm_err *err)
{
    struct swm_buf cb = {0}, fb = {0};
    int rc = raft_configuration_encode(conf, &cb);
    if (rc == 0 && first != NULL)
        rc = proto_pack(&first->base, &fb);
    if (rc < 0) {
        swm_buf_free(&cb);
        swm_buf_free(&fb);
        return swm_err_set(err, rc, "bootstrapping the raft log: %s",
                           rc == -ENOMEM ? "out of memory" : "invalid membership");
    }
    struct raft_entry e[2] = {
        {.term = 1, .index = 1, .type = RAFT_ENTRY_CONF, .data = cb.data, .len = cb.len},
        {.term = 1, .index = 2, .type = RAFT_ENTRY_NORMAL, .data = fb.data, .len = fb.len},
    };
    size_t n = first != NULL ? 2 : 1;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = put_entry(s, txn, &e[i], err);
    struct raft_hard_state hs = {.term = 1, .commit = n};
    if (rc == 0)
        rc = put_hard_state(s, txn, &hs, err);
    swm_buf_free(&cb);
    swm_buf_free(&fb);
    return rc;
}

int store_raft_bootstrap(struct store *s, const struct raft_configuration *conf,
                         const Swarmc__StoreEntry *first, struct swm_err *err)
{
    if (conf == NULL || raft_configuration_voters(conf) == 0)
        return swm_err_set(err, -EINVAL, "bootstrapping the raft log: no voter");
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "bootstrapping the raft log");
    bool exists = false;
    uint64_t applied = 0;
    rc = has_raft_state(s, txn, &exists, err);
    if (rc == 0)
        rc = store__get_applied_index(s, txn, &applied, err);
    if (rc == 0 && exists)
        rc = swm_err_set(err, SWM_EEXISTS, "the store already holds a raft log");
    else if (rc == 0 && applied > 0 && first != NULL)
        rc = swm_err_set(err, -EINVAL, "the store already holds applied entries");
    else if (rc == 0 && applied > 0)
        rc = adopt_applied_state(s, txn, conf, err);
    else if (rc == 0)
        rc = write_founding_entries(s, txn, conf, first, err);
    if (rc < 0) {
        mdb_txn_abort(txn);
        return swm_err_wrap(err, rc, "bootstrapping the raft log");
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return store__mdb_fail(err, rc, "bootstrapping the raft log");
    return 0;
}

int store_raft_exists(struct store *s, bool *out, struct swm_err *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store__mdb_fail(err, rc, "reading the raft state");
    rc = has_raft_state(s, txn, out, err);
    mdb_txn_abort(txn);
    return rc;
}

/* The membership in effect: the last CONF entry, else the snapshot's. */
static int current_conf(const struct raft_init_state *init, struct raft_configuration *out)
{
    for (size_t i = init->n_entries; i-- > 0;) {
        const struct raft_entry *e = &init->entries[i];
        if (e->type == RAFT_ENTRY_CONF)
            return raft_configuration_decode(e->data, e->len, out, NULL);
    }
    return raft_configuration_copy(out, &init->snapshot.conf);
}

/* self alone as voter; every other member joins the removed set, so that
 * none of them can come back under its old id. */
static int forced_conf(const struct raft_configuration *cur, uint64_t self,
                       struct raft_configuration *out)
{
    memset(out, 0, sizeof(*out));
    out->servers = swm_calloc(1, sizeof(*out->servers));
    out->removed = swm_calloc(cur->n_removed + cur->n_servers + 1, sizeof(*out->removed));
    if (out->servers == NULL || out->removed == NULL) {
        raft_configuration_free(out);
        return -ENOMEM;
    }
    out->servers[0] = (struct raft_server){.id = self, .role = RAFT_VOTER};
    out->n_servers = 1;
    for (size_t i = 0; i < cur->n_removed; i++)
        out->removed[out->n_removed++] = cur->removed[i];
    for (size_t i = 0; i < cur->n_servers; i++)
        if (cur->servers[i].id != self)
            out->removed[out->n_removed++] = cur->servers[i].id;
    return 0;
}

int store_raft_force_new_cluster(struct store *s, uint64_t self, struct swm_err *err)
{
    struct raft_init_state init;
    struct raft_configuration cur = {0}, conf = {0};
    struct swm_buf buf = {0};
    int rc = store_raft_load(s, &init, err);
    if (rc < 0)
        return swm_err_wrap(err, rc, "forcing a new cluster");
    const struct raft_entry *last = init.n_entries > 0 ? &init.entries[init.n_entries - 1] : NULL;
    uint64_t last_index = last != NULL ? last->index : init.snapshot.index;
    uint64_t last_term = last != NULL ? last->term : init.snapshot.term;
    struct raft_hard_state hs = init.hard_state;
    if (last_index == 0)
        rc = swm_err_set(err, SWM_ENOTFOUND, "forcing a new cluster: this node holds no raft log");
    else if ((rc = current_conf(&init, &cur)) < 0 || (rc = forced_conf(&cur, self, &conf)) < 0 ||
             (rc = raft_configuration_encode(&conf, &buf)) < 0)
        swm_err_set(err, rc, "forcing a new cluster: %s",
                    rc == -ENOMEM ? "out of memory" : "the membership does not decode");
    store_raft_init_free(&init);
    raft_configuration_free(&cur);
    raft_configuration_free(&conf);
    MDB_txn *txn = NULL;
    if (rc == 0 && (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        rc = store__mdb_fail(err, rc, "forcing a new cluster");
    if (hs.term < last_term)
        hs.term = last_term;
    struct raft_entry e = {.term = hs.term,
                           .index = last_index + 1,
                           .type = RAFT_ENTRY_CONF,
                           .data = buf.data,
                           .len = buf.len};
    if (rc == 0 && (rc = put_entry(s, txn, &e, err)) == 0)
        rc = put_hard_state(s, txn, &hs, err);
    if (txn != NULL && rc < 0)
        mdb_txn_abort(txn);
    else if (txn != NULL && (rc = mdb_txn_commit(txn)) != 0)
        rc = store__mdb_fail(err, rc, "forcing a new cluster");
    swm_buf_free(&buf);
    return rc;
}
