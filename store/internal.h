/* Internals shared by the files of store/. No other module includes this. */
#ifndef SWM_STORE_INTERNAL_H
#define SWM_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The named databases of the environment (DESIGN.md §5). Object tables map
 * id -> packed object; indexes map a field's value -> object id (the task
 * indexes are MDB_DUPSORT: one key, many task ids). */
enum store__db {
    STORE__DB_NODES,
    STORE__DB_SERVICES,
    STORE__DB_TASKS,
    STORE__DB_CLUSTERS,
    STORE__DB_SERVICES_BY_NAME,       /* unique: name -> service id */
    STORE__DB_TASKS_BY_SERVICE,       /* service id -> task ids */
    STORE__DB_TASKS_BY_NODE,          /* node id -> task ids */
    STORE__DB_TASKS_BY_DESIRED_STATE, /* u32 BE state -> task ids */
    STORE__DB_META,                   /* applied index, schema version */
    STORE__DB_LOG,                    /* the one-member log of earlier builds: emptied by
                                         store_raft_bootstrap */
    STORE__DB_RAFT_LOG,               /* u64 BE index -> raft entry (store/raftlog.c) */
    STORE__DB_RAFT_STATE,             /* hard state, snapshot meta and data (raftlog.c) */
    STORE__DB_COUNT
};

extern const char *const store__db_names[STORE__DB_COUNT];

/* Longest id, name or other string used as a key. Fixed here rather than
 * taken from mdb_env_get_maxkeysize() so that every replica rejects the same
 * entries whatever LMDB build it runs (apply must be deterministic). */
#define STORE__MAX_KEY 255

/* What apply and the readers need to know about each object kind. */
struct store__kind {
    const char *name; /* "task", in messages */
    enum store__db table;
    const ProtobufCMessageDescriptor *desc;
    size_t id_offset;   /* of `char *id` in the generated struct */
    size_t meta_offset; /* of `Swarmc__Meta *meta` */
};

extern const struct store__kind store__kinds[4]; /* indexed by store_object_kind */

static inline const char *store__obj_id(enum store_object_kind kind, const ProtobufCMessage *m)
{
    return *(char *const *)((const char *)m + store__kinds[kind].id_offset);
}

static inline const Swarmc__Meta *store__obj_meta(enum store_object_kind kind,
                                                  const ProtobufCMessage *m)
{
    return *(Swarmc__Meta *const *)((const char *)m + store__kinds[kind].meta_offset);
}

/* One committed batch's events, queued until store_deliver_events(). The
 * event objects are owned by the batch. */
struct store__event_batch {
    struct store_event *events;
    size_t n, cap;
    struct store__event_batch *next;
};

struct store__watcher {
    store_watch_cb cb; /* NULL: removed during a delivery, compacted after it */
    void *arg;
};

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE__DB_COUNT];
    /* Written by apply (threadpool), read anywhere: __atomic builtins. */
    uint64_t applied_index;

    /* Guards the event queue and the watcher list: apply (threadpool)
     * enqueues and checks for watchers while the loop thread delivers. */
    pthread_mutex_t lock;
    bool lock_ready;
    struct store__event_batch *queue_head;
    struct store__event_batch **queue_tail;
    struct store__watcher *watchers;
    size_t n_watchers, cap_watchers, live_watchers;
    bool delivering; /* loop thread only */
};

struct store_read {
    struct store *s;
    MDB_txn *txn;
    struct swm_err err; /* context of the last failed call */
};

/* --- store.c ----------------------------------------------------------- */

/* Translates an LMDB return code (MDB_* or a positive errno) into ours. */
int store__mdb_code(int rc);

/* Sets err to the translation of rc with a message "<context>: <LMDB's
 * message>". Returns the translated code. */
int store__mdb_fail(struct swm_err *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes a printable form of key into buf (non-printable bytes escaped,
 * truncated to fit) for error messages. Returns buf. */
const char *store__key_str(const MDB_val *key, char *buf, size_t size);

/* Big-endian fixed-width integers: keys sort numerically this way. */
void store__put_be64(uint8_t out[8], uint64_t v);
uint64_t store__get_be64(const uint8_t in[8]);
void store__put_be32(uint8_t out[4], uint32_t v);
uint32_t store__get_be32(const uint8_t in[4]);

/* True if s is a usable key: 1..STORE__MAX_KEY bytes. */
bool store__valid_key(const char *s);

/* Decodes a value read from an object table. Returns 0 and the message
 * (caller frees with proto_free), -ENOMEM, or SWM_ECORRUPT naming the table
 * and key when the bytes do not decode or hold another object's id. */
int store__decode(enum store_object_kind kind, const MDB_val *key, const MDB_val *val,
                  ProtobufCMessage **out, struct swm_err *err);

/* Like proto_unpack, but tells ENOMEM (*oom set) from malformed input:
 * protobuf-c returns NULL for both. */
ProtobufCMessage *store__unpack(const ProtobufCMessageDescriptor *desc, const void *data,
                                size_t len, bool *oom);

/* The key under which obj appears in index db, or false if it does not
 * appear there (no service name, no node yet...). state_buf backs the key
 * of the desired-state index. */
bool store__index_key(enum store_object_kind kind, const ProtobufCMessage *obj, enum store__db db,
                      MDB_val *key, uint8_t state_buf[4]);

/* Reads the applied index as of txn into *index (0 when none is recorded).
 * 0, or SWM_ECORRUPT / a translated LMDB error with err set. */
int store__get_applied_index(struct store *s, MDB_txn *txn, uint64_t *index, struct swm_err *err);

/* Records index as the applied index, inside txn. 0 or a negative code. */
int store__put_applied_index(struct store *s, MDB_txn *txn, uint64_t index, struct swm_err *err);

/* Like store__key_str, for a key of index db (desired states are numbers). */
const char *store__index_key_str(enum store__db db, const MDB_val *key, char *buf, size_t size);

/* --- apply.c ----------------------------------------------------------- */

/* Applies one entry at `index` in a transaction nested in txn, adding its
 * events to events (NULL: nobody watches). result receives the entry's
 * outcome. Returns 0, also when the entry failed deterministically (see
 * result), or a local failure (ENOMEM, ENOSPC, EIO, SWM_ECORRUPT) with err
 * set; txn must then be aborted. Does not touch the applied index. */
int store__apply_one(struct store *s, MDB_txn *txn, struct store__event_batch *events,
                     uint64_t index, const Swarmc__StoreEntry *entry,
                     struct store_apply_result *result, struct swm_err *err);

/* Writes obj, restored from a snapshot, to its table and indexes inside txn
 * with its meta kept as it is (no event). The tables must not hold it yet.
 * Returns 0, SWM_ECORRUPT (invalid id, name taken twice), or a local
 * failure, with err set. */
int store__restore_object(struct store *s, MDB_txn *txn, enum store_object_kind kind,
                          const ProtobufCMessage *obj, struct swm_err *err);

/* --- events.c ---------------------------------------------------------- */

/* True if any watcher is registered (apply skips building events if not). */
bool store__events_wanted(struct store *s);

/* Appends an event to a batch, taking ownership of object (freed even on
 * failure). Returns 0 or -ENOMEM. */
int store__event_add(struct store__event_batch *b, enum store_object_kind kind,
                     Swarmc__StoreAction__Kind action, ProtobufCMessage *object);

/* Drops the events after the first n (an entry that rolled back). */
void store__event_truncate(struct store__event_batch *b, size_t n);

/* Queues a committed batch for delivery (ownership passes). Cannot fail:
 * it runs after the commit, when failing is no longer an option. */
void store__events_enqueue(struct store *s, struct store__event_batch *b);

/* Frees a batch and its objects. Accepts NULL. */
void store__event_batch_free(struct store__event_batch *b);

/* Frees every queued batch and the watcher list (store_close). */
void store__events_fini(struct store *s);

/* --- crc32c.c ---------------------------------------------------------- */

/* CRC-32C (Castagnoli) of data, continuing from crc (0 to start). */
uint32_t store__crc32c(uint32_t crc, const void *data, size_t len);

#endif
