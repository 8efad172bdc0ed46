/* raft_sim: a deterministic cluster simulator for the raft core
 * (DESIGN.md §5 "the same core runs in tests/sim", §12; in the manner of
 * TigerBeetle's VOPR and etcd's raft tests).
 *
 * One process runs N real cores (manager/raft) against:
 *  - a virtual clock: time advances in units, one raft tick every TICK units;
 *  - one seeded RNG from which every random choice is drawn, so a seed
 *    replays exactly (--check-replay runs each seed twice and compares a
 *    digest of every event);
 *  - a network carrying every message through the real codec, with drop,
 *    delay, duplication, reordering (random delays), symmetric partitions
 *    and one-way (asymmetric) link cuts;
 *  - a disk per node that separates what is durable from the write in
 *    flight: a ready is persisted only when its write completes, some time
 *    later; a crash loses the write in flight, tears it (a prefix of its
 *    entries survives, as storage that drops a checksum-failing tail would
 *    leave it), or finds it complete but unacknowledged; a write can fail
 *    with EIO/ENOSPC, and the driver then recreates the core from the disk
 *    as raft.h requires;
 *  - crashes and restarts from the disk, learners added, promoted, voters
 *    removed and leadership transfers, all in the middle of client traffic;
 *  - the real state machine: each node owns a real store (store/, LMDB, in
 *    a directory under /dev/shm), and committed entries are applied by the
 *    store's own apply path, store_raft_persist (the core and the FSM in
 *    one process, issue 3). See "the state machine" below for how the
 *    clients' registers map onto store objects, how reads read the store
 *    and what a crash does to it;
 *  - clients that write, read through the log and read through
 *    raft_read_index.
 *
 * After every event the simulator checks election safety (one leader per
 * term), log matching (an (index, term) pair always carries the same data
 * after the same previous term: Raft thesis §3.5, by induction the same
 * prefix), leader completeness (§3.6.3), state-machine safety and equal
 * state at equal applied index, and that a member's commit index never goes
 * back. Every entry's outcome (the store's result code) must be the same on
 * every member, a snapshot must carry exactly the state applied at its
 * index, and an object read from the store must carry the version and
 * value of the put that wrote it. At the end the cluster is healed, must
 * make progress, and the clients' history must be linearizable
 * (lincheck.c).
 *
 * Every failure prints its seed and the command that replays it
 * (raft_sim --seed S --nodes N --ticks T --trace). --inject plants a known
 * driver bug to show the checks catch it (see CMakeLists.txt).
 *
 * The unit test fixture in tests/unit/raft is built on cmocka assertions
 * and steps the cluster without time or a disk write in flight, so this
 * simulator has its own driver; what it shares with it is the core, the
 * codec and the store. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "lincheck.h"
#include "manager/raft/raft.h"
#include "proto/codec.h"
#include "store/raftlog.h"
#include "store/store.h"

#define MAX_NODES 8 /* up to 5 founders and 2 joiners; slot 0 unused */
#define TICK 10     /* time units per raft tick */
#define N_KEYS 5
#define N_CLIENTS 4
#define CLIENT_TIMEOUT (40 * TICK)
/* The protobuf field number under which an entry carries its client op (see
 * entry_pack). The store does not know it and ignores it. */
#define OP_FIELD 1000

/* --- RNG ----------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t fnv(const void *data, size_t len, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

#define FNV0 0xcbf29ce484222325ULL

/* --- state ----------------------------------------------------------------- */

struct disk_entry {
    uint64_t index, term;
    enum raft_entry_type type;
    void *data;
    size_t len;
};

struct pending {
    uint64_t index, term, op;
};

struct node {
    uint64_t id;
    bool exists; /* founded or added: has a disk */
    bool up;
    struct raft *r;
    struct raft_options opt;
    /* durable disk */
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap;
    void *snap_data;
    size_t snap_len;
    struct disk_entry *log;
    size_t n_log, cap_log;
    /* The state machine: a real store, durable with its applied index (the
     * store records it in the transaction that applies the entries). */
    struct store *store;
    uint64_t applied; /* store_applied_index(store), checked after each apply */
    /* the write in flight */
    struct raft_ready *rd;
    uint64_t rd_done_at;
    int fail_next_write; /* 0, -EIO or -ENOSPC */
    /* proposals made here, awaiting apply */
    struct pending *pend;
    size_t n_pend, cap_pend;
    uint64_t last_commit;
    uint64_t restart_at; /* when down: 0 = until healed */
};

struct msg {
    uint64_t at, seq;
    uint64_t from, to;
    void *bytes;
    size_t len;
};

struct ledger_rec { /* what index i was applied as, by anyone */
    uint64_t term;
    uint64_t data_hash;
    uint64_t state_hash; /* the store after applying i (0: nobody stopped at i yet) */
    uint64_t op;         /* client op of a put/get entry, else 0 */
    int result;          /* the store's outcome of the entry */
    uint64_t max_term;   /* the highest term any member had when it was first applied */
};

struct lm_rec { /* log matching: (index, term) -> previous term and data */
    uint64_t index, term, prev_term, data_hash;
};

/* Deliberate driver bugs, to show that the checks catch them. */
enum sim_bug {
    BUG_NONE = 0,
    BUG_LOCAL_READ,  /* answer reads from whichever node, without read-index */
    BUG_EARLY_ACK,   /* send acknowledgements before the write is durable */
    BUG_FORGET_VOTE, /* a crash loses the durable hard state's vote */
};

enum op_via { VIA_PUT = 1, VIA_LOG_GET, VIA_READ_INDEX };

struct sim_op {
    struct lin_op lin;
    enum op_via via;
    int client;
    uint64_t node;
    uint64_t deadline;
    bool done;
};

struct client {
    bool busy;
    size_t op;
    uint64_t next_at;
};

struct sim {
    const char *dir; /* the nodes' store directories go under it */
    uint64_t seed;
    uint64_t rng;
    size_t n_founders;
    size_t n_slots; /* founders + joiners */
    struct node nodes[MAX_NODES];
    uint64_t now;
    uint64_t lclock; /* history clock */
    uint64_t digest; /* of every event, for replay checks */
    bool trace;
    enum sim_bug bug;
    jmp_buf fail_jmp;
    char fail_msg[512];
    /* network */
    struct msg *heap;
    size_t n_heap, cap_heap;
    uint64_t msg_seq;
    bool cut[MAX_NODES][MAX_NODES]; /* cut[from][to] */
    unsigned drop_pct, dup_pct, slow_pct;
    /* checks */
    uint64_t max_term; /* the highest term any member has had */
    uint64_t *leader_of_term;
    size_t n_terms;
    struct ledger_rec *ledger;
    size_t n_ledger;
    struct lm_rec *lm;
    size_t n_lm, cap_lm; /* open addressing, cap power of two */
    /* clients */
    struct client clients[N_CLIENTS];
    struct sim_op *ops;
    size_t n_ops, cap_ops;
    uint32_t next_value;
    bool clients_on;
    /* stats */
    uint64_t n_crash, n_eio, n_torn, n_install, n_elect, n_cc, n_transfer, n_delivered;
    uint64_t n_rebuild, n_failed_puts;
    /* scratch space owned here, so that a failure (longjmp) leaks nothing */
    struct swm_buf scratch;
    struct store_apply_result *results;
    size_t cap_results;
};

static void sim_fail(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void sim_fail(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_msg, sizeof(s->fail_msg), fmt, ap);
    va_end(ap);
    longjmp(s->fail_jmp, 1);
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trace(struct sim *s, const char *fmt, ...)
{
    if (!s->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[t=%" PRIu64 "] ", s->now);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static uint64_t rnd(struct sim *s, uint64_t n)
{
    return n ? rng_next(&s->rng) % n : 0;
}

static void note(struct sim *s, uint64_t a, uint64_t b)
{
    s->digest = fnv(&a, sizeof(a), s->digest);
    s->digest = fnv(&b, sizeof(b), s->digest);
}

static void *xalloc(struct sim *s, void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        sim_fail(s, "out of memory");
    return q;
}

/* --- disk ---------------------------------------------------------------- */

static uint64_t disk_last_index(const struct node *nd)
{
    return nd->n_log ? nd->log[nd->n_log - 1].index : nd->snap.index;
}

static bool disk_term(const struct node *nd, uint64_t index, uint64_t *term)
{
    if (index == nd->snap.index) {
        *term = nd->snap.term;
        return true;
    }
    if (nd->n_log == 0 || index < nd->log[0].index || index > disk_last_index(nd))
        return false;
    *term = nd->log[index - nd->log[0].index].term;
    return true;
}

static void disk_truncate(struct node *nd, uint64_t from)
{
    while (nd->n_log > 0 && nd->log[nd->n_log - 1].index >= from)
        free(nd->log[--nd->n_log].data);
}

static void disk_compact(struct node *nd, uint64_t upto)
{
    size_t drop = 0;
    while (drop < nd->n_log && nd->log[drop].index <= upto)
        free(nd->log[drop++].data);
    memmove(nd->log, nd->log + drop, (nd->n_log - drop) * sizeof(*nd->log));
    nd->n_log -= drop;
}

static struct lm_rec *lm_slot(struct sim *s, uint64_t index, uint64_t term)
{
    size_t mask = s->cap_lm - 1;
    size_t i = (size_t)((index * 0x9e3779b97f4a7c15ULL) ^ (term * 0xc2b2ae3d27d4eb4fULL)) & mask;
    while (s->lm[i].index != 0 && (s->lm[i].index != index || s->lm[i].term != term))
        i = (i + 1) & mask;
    return &s->lm[i];
}

/* Log matching (thesis §3.5): an entry with a given index and term always
 * has the same data and follows the same previous term, so two logs holding
 * it agree on the whole prefix. Checked on every durable append. */
static void check_log_matching(struct sim *s, struct node *nd, const struct raft_entry *e,
                               uint64_t prev_term)
{
    if (2 * (s->n_lm + 1) > s->cap_lm) {
        struct lm_rec *old = s->lm;
        size_t old_cap = s->cap_lm;
        s->cap_lm = old_cap ? old_cap * 2 : 4096;
        s->lm = xalloc(s, NULL, s->cap_lm * sizeof(*s->lm));
        memset(s->lm, 0, s->cap_lm * sizeof(*s->lm));
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].index != 0)
                *lm_slot(s, old[i].index, old[i].term) = old[i];
        free(old);
    }
    uint64_t h = fnv(e->data, e->len, fnv(&e->type, sizeof(e->type), FNV0));
    struct lm_rec *r = lm_slot(s, e->index, e->term);
    if (r->index == 0) {
        *r = (struct lm_rec){e->index, e->term, prev_term, h};
        s->n_lm++;
        return;
    }
    if (r->prev_term != prev_term || r->data_hash != h)
        sim_fail(s,
                 "log matching: node %" PRIu64 " holds (index %" PRIu64 ", term %" PRIu64
                 ") after term %" PRIu64 " with different data or previous term (%" PRIu64
                 ") than another log",
                 nd->id, e->index, e->term, prev_term, r->prev_term);
}

static void disk_append(struct sim *s, struct node *nd, const struct raft_entry *e)
{
    uint64_t last = disk_last_index(nd), prev_term = 0;
    if (e->index != last + 1)
        sim_fail(s, "node %" PRIu64 ": entry %" PRIu64 " written after %" PRIu64, nd->id, e->index,
                 last);
    if (e->index > 1 && !disk_term(nd, e->index - 1, &prev_term))
        sim_fail(s, "node %" PRIu64 ": no term for %" PRIu64, nd->id, e->index - 1);
    check_log_matching(s, nd, e, prev_term);
    if (nd->n_log == nd->cap_log) {
        nd->cap_log = nd->cap_log ? nd->cap_log * 2 : 64;
        nd->log = xalloc(s, nd->log, nd->cap_log * sizeof(*nd->log));
    }
    struct disk_entry *d = &nd->log[nd->n_log++];
    *d = (struct disk_entry){.index = e->index, .term = e->term, .type = e->type, .len = e->len};
    if (e->len) {
        d->data = xalloc(s, NULL, e->len);
        memcpy(d->data, e->data, e->len);
    }
}

static void disk_set_snapshot(struct sim *s, struct node *nd, const struct raft_snapshot_meta *m,
                              const void *data, size_t len)
{
    raft_configuration_free(&nd->snap.conf);
    nd->snap.index = m->index;
    nd->snap.term = m->term;
    if (raft_configuration_copy(&nd->snap.conf, &m->conf) != 0)
        sim_fail(s, "out of memory");
    free(nd->snap_data);
    nd->snap_data = xalloc(s, NULL, len);
    if (len)
        memcpy(nd->snap_data, data, len);
    nd->snap_len = len;
}

/* --- the state machine ---------------------------------------------------- */

/* The clients' registers are objects of the real store. Key k is task
 * "key<k>" (service "sim", slot k + 1); its value v is the task's node_id
 * "v<v>", so every write also moves the task in the tasks_by_node index; an
 * absent task reads as 0.
 *
 * A write is proposed as a client of the store makes one: the proposer
 * reads the task from its own store, then proposes CREATE if it is absent,
 * else UPDATE at the meta.version it read; a write of 0 (a delete) is a
 * REMOVE at that version (unchecked, version 0, when absent). The proposer's
 * store may be behind, so the store may fail the entry (SWM_EEXISTS,
 * SWM_ESTALE, SWM_ENOTFOUND): deterministically, the same way on every
 * member, and without effect, so the client is told it failed (LIN_FAIL),
 * which is what the linearizability model assumes. A read through the log
 * is an entry without actions. Every entry carries its client op in field
 * OP_FIELD, which protobuf keeps as an unknown field and the store ignores;
 * a write also stores it as meta.updated_at, which the store keeps from the
 * proposal.
 *
 * Committed entries are applied by store_raft_persist, handed a ready that
 * holds only them (the raft log itself stays on the simulated disk). A
 * ready's committed entries go in one call or, at random, in several; a read
 * through the log is answered from the store after the call that applied
 * it, as a driver applying a batch does (still linearizable: what follows
 * the read in that batch was committed before the answer). The state
 * compared across members is a hash of the store's snapshot bytes after each
 * call, so members are compared where calls ended at the same index.
 * Snapshots are the store's own: store_raft_snapshot_take, and installing
 * one through store_raft_persist, which replaces every object table.
 *
 * A crash keeps the store (its commits are durable with the applied index,
 * as LMDB's are), or half of the time loses it: the store is then rebuilt
 * from the node's durable simulated snapshot and the core is told applied =
 * the snapshot's index, so it hands the committed entries after it out
 * again; replaying them must reach the same states (the ledger checks). */

static void fsm_path(struct sim *s, const struct node *nd, const char *file, char *buf, size_t size)
{
    snprintf(buf, size, "%s/n%" PRIu64 "%s%s", s->dir, nd->id, file ? "/" : "", file ? file : "");
}

/* Opens a new store for nd. Its files are unlinked as soon as it is open
 * (LMDB keeps them open), so that a run that dies leaves nothing in tmpfs. */
static void fsm_open(struct sim *s, struct node *nd)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char dir[512], path[512];
    fsm_path(s, nd, NULL, dir, sizeof(dir));
    struct swm_err err = {0};
    int rc = store_open(dir, &nd->store, &err);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        fsm_path(s, nd, files[i], path, sizeof(path));
        unlink(path);
    }
    rmdir(dir);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": %s", nd->id, err.msg);
    nd->applied = store_applied_index(nd->store);
}

static void fsm_close(struct node *nd)
{
    store_close(nd->store);
    nd->store = NULL;
    nd->applied = 0;
}

/* A hash of the store's objects: of its snapshot bytes, which hold every
 * object as stored (meta.version included) in table and id order. */
static uint64_t fsm_hash(struct sim *s, struct node *nd)
{
    struct swm_err err = {0};
    uint64_t applied = 0;
    s->scratch.len = 0;
    int rc = store_raft_snapshot_take(nd->store, &s->scratch, &applied, &err);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": %s", nd->id, err.msg);
    if (applied != nd->applied)
        sim_fail(s, "node %" PRIu64 ": store snapshot at %" PRIu64 ", applied %" PRIu64, nd->id,
                 applied, nd->applied);
    return fnv(s->scratch.data, s->scratch.len, FNV0);
}

static struct ledger_rec *ledger_at(struct sim *s, uint64_t index)
{
    if (index >= s->n_ledger) {
        size_t n = index * 2 + 64;
        s->ledger = xalloc(s, s->ledger, n * sizeof(*s->ledger));
        memset(s->ledger + s->n_ledger, 0, (n - s->n_ledger) * sizeof(*s->ledger));
        s->n_ledger = n;
    }
    return &s->ledger[index];
}

/* Equal state at equal applied index: the first state seen at index is
 * recorded, every later one must match it. */
static void ledger_state(struct sim *s, struct node *nd, uint64_t index, uint64_t hash,
                         const char *what)
{
    struct ledger_rec *l = ledger_at(s, index);
    if (l->state_hash == 0)
        l->state_hash = hash;
    else if (l->state_hash != hash)
        sim_fail(s, "node %" PRIu64 ": %s at %" PRIu64 " differs from another node's state there",
                 nd->id, what, index);
}

/* Installs a snapshot into the store through store_raft_persist. The data
 * must be exactly the state applied at its index (a misassembled chunk
 * stream would not be), and installing it must reproduce it. */
static void fsm_install(struct sim *s, struct node *nd, const struct raft_snapshot_meta *m,
                        const void *data, size_t len)
{
    uint64_t hash = fnv(data, len, FNV0);
    ledger_state(s, nd, m->index, hash, "received snapshot");
    struct raft_ready part = {
        .has_snapshot = true, .snapshot = *m, .snapshot_data = data, .snapshot_len = len};
    struct swm_err err = {0};
    int rc = store_raft_persist(nd->store, &part, NULL, &err);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": installing snapshot %" PRIu64 ": %s", nd->id, m->index,
                 err.msg);
    nd->applied = store_applied_index(nd->store);
    if (nd->applied != m->index)
        sim_fail(s, "node %" PRIu64 ": applied %" PRIu64 " after installing snapshot %" PRIu64,
                 nd->id, nd->applied, m->index);
    if (fsm_hash(s, nd) != hash)
        sim_fail(s, "node %" PRIu64 ": snapshot %" PRIu64 " installed does not reproduce its data",
                 nd->id, m->index);
}

/* The state machine lost: a new store, from the durable snapshot. */
static void fsm_rebuild(struct sim *s, struct node *nd)
{
    fsm_close(nd);
    fsm_open(s, nd);
    if (nd->snap.index > 0)
        fsm_install(s, nd, &nd->snap, nd->snap_data, nd->snap_len);
    s->n_rebuild++;
}

/* Reads key from nd's store: its value (0 when absent) and the task's
 * version (0 when absent). The task must be what the put at its version
 * wrote: that entry was applied, succeeded, and wrote this value. */
static uint32_t fsm_read(struct sim *s, struct node *nd, uint64_t key, uint64_t *version)
{
    char id[32];
    snprintf(id, sizeof(id), "key%" PRIu64, key);
    struct store_read *r;
    struct swm_err err = {0};
    int rc = store_read_begin(nd->store, &r, &err);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": %s", nd->id, err.msg);
    Swarmc__Task *t = NULL;
    rc = store_get_task(r, id, &t);
    if (rc != 0)
        snprintf(err.msg, sizeof(err.msg), "%s", store_read_err(r)->msg);
    store_read_end(r);
    *version = 0;
    if (rc == SWM_ENOTFOUND)
        return 0;
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": reading task %s: %s", nd->id, id, err.msg);
    unsigned value = 0;
    bool parsed = t->node_id != NULL && sscanf(t->node_id, "v%u", &value) == 1;
    uint64_t ver = t->meta && t->meta->has_version ? t->meta->version : 0;
    uint64_t op = t->meta && t->meta->has_updated_at ? (uint64_t)t->meta->updated_at : 0;
    proto_free(t);
    const struct sim_op *w = op > 0 && op <= s->n_ops ? &s->ops[op - 1] : NULL;
    if (!parsed || ver == 0 || ver > nd->applied || ver >= s->n_ledger || s->ledger[ver].op != op ||
        s->ledger[ver].result != 0 || w == NULL || w->lin.kind != LIN_PUT || w->lin.key != key ||
        w->lin.value != value)
        sim_fail(s,
                 "node %" PRIu64 ": task %s holds %u at version %" PRIu64 " (op %" PRIu64
                 "), which no applied put wrote",
                 nd->id, id, value, ver, op);
    *version = ver;
    return value;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* Packs entry followed by field OP_FIELD = op into s->scratch (valid until
 * its next use). */
static struct raft_buffer entry_pack(struct sim *s, const Swarmc__StoreEntry *entry, uint64_t op)
{
    uint8_t tail[20];
    size_t n = put_varint(tail, (uint64_t)OP_FIELD << 3); /* wire type 0: varint */
    n += put_varint(tail + n, op);
    s->scratch.len = 0;
    if (proto_pack(&entry->base, &s->scratch) < 0 || swm_buf_append(&s->scratch, tail, n) < 0)
        sim_fail(s, "out of memory");
    return (struct raft_buffer){.base = s->scratch.data, .len = s->scratch.len};
}

/* The entry of a put, made as a store client makes one: read, then create,
 * update or remove at the version read (see above). */
static struct raft_buffer put_entry(struct sim *s, struct node *nd, const struct sim_op *op)
{
    static char service_id[] = "sim";
    char id[32], node_id[32];
    uint64_t version = 0;
    fsm_read(s, nd, op->lin.key, &version);
    snprintf(id, sizeof(id), "key%" PRIu64, op->lin.key);
    snprintf(node_id, sizeof(node_id), "v%u", op->lin.value);
    Swarmc__Meta meta = SWARMC__META__INIT;
    meta.has_version = version != 0;
    meta.version = version;
    meta.has_updated_at = 1;
    meta.updated_at = (int64_t)op->lin.id;
    Swarmc__Task task = SWARMC__TASK__INIT;
    task.id = id;
    task.meta = &meta;
    task.service_id = service_id;
    task.has_slot = 1;
    task.slot = op->lin.key + 1;
    task.node_id = node_id;
    Swarmc__StoreAction action = SWARMC__STORE_ACTION__INIT;
    action.has_kind = 1;
    action.kind = op->lin.value == 0 ? SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE
                  : version != 0     ? SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE
                                     : SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE;
    action.target_case = SWARMC__STORE_ACTION__TARGET_TASK;
    action.task = &task;
    Swarmc__StoreAction *actions[] = {&action};
    Swarmc__StoreEntry entry = SWARMC__STORE_ENTRY__INIT;
    entry.n_actions = 1;
    entry.actions = actions;
    return entry_pack(s, &entry, op->lin.id);
}

/* The client op an entry carries (0: a configuration change, a no-op or
 * the settling marker). */
static uint64_t entry_op(struct sim *s, struct node *nd, const struct raft_entry *e)
{
    if (e->type != RAFT_ENTRY_NORMAL || e->len == 0)
        return 0;
    struct swm_err err = {0};
    Swarmc__StoreEntry *se =
        PROTO_UNPACK(Swarmc__StoreEntry, swarmc__store_entry, e->data, e->len, &err);
    if (se == NULL)
        sim_fail(s, "node %" PRIu64 ": entry %" PRIu64 ": %s", nd->id, e->index, err.msg);
    uint64_t op = 0;
    bool found = false;
    for (size_t i = 0; i < se->base.n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *f = &se->base.unknown_fields[i];
        if (f->tag != OP_FIELD || f->wire_type != PROTOBUF_C_WIRE_TYPE_VARINT)
            continue;
        op = 0;
        for (size_t j = 0; j < f->len && j < 10; j++)
            op |= (uint64_t)(f->data[j] & 0x7f) << (7 * j);
        found = true;
    }
    proto_free(se);
    if (!found || op > s->n_ops)
        sim_fail(s, "node %" PRIu64 ": entry %" PRIu64 " names no client op", nd->id, e->index);
    return op;
}

/* --- clients ----------------------------------------------------------- */

static void op_respond(struct sim *s, uint64_t op_id, enum lin_status st, uint32_t value)
{
    if (op_id == 0 || op_id > s->n_ops)
        return;
    struct sim_op *op = &s->ops[op_id - 1];
    if (op->done)
        return; /* timed out already: stays unknown */
    op->done = true;
    op->lin.status = st;
    if (op->lin.kind == LIN_GET)
        op->lin.value = value;
    op->lin.ret = ++s->lclock;
    struct client *c = &s->clients[op->client];
    c->busy = false;
    c->next_at = s->now + rnd(s, 3 * TICK);
    note(s, op_id, (uint64_t)st * 1000000007ULL + value);
}

/* --- checks -------------------------------------------------------------- */

static void check_new_leader(struct sim *s, struct node *nd)
{
    /* Leader completeness (§3.6.3): an entry committed in term T is in the
     * log of every leader of a term above T. The term that committed an
     * entry is at most the highest term that existed when it was first
     * applied, so a leader of a higher term must hold it (or have it
     * compacted into its snapshot). A leader of a lower term may appear
     * late (its votes, or its own vote's write, were slow) and need not. */
    uint64_t term = raft_term(nd->r);
    for (uint64_t i = 1; i < s->n_ledger; i++) {
        if (s->ledger[i].term == 0 || s->ledger[i].max_term >= term)
            continue;
        uint64_t t = raft_log_term(nd->r, i);
        if (t == 0 && i <= raft_commit_index(nd->r))
            continue;
        if (t != s->ledger[i].term)
            sim_fail(s,
                     "leader completeness: leader %" PRIu64 " of term %" PRIu64 " has term %" PRIu64
                     " at %" PRIu64 ", applied with term %" PRIu64
                     " when the highest term was %" PRIu64,
                     nd->id, term, t, i, s->ledger[i].term, s->ledger[i].max_term);
    }
}

static void check_all(struct sim *s)
{
    for (size_t i = 1; i <= s->n_slots; i++) {
        struct node *nd = &s->nodes[i];
        if (!nd->up)
            continue;
        uint64_t commit = raft_commit_index(nd->r);
        if (commit < nd->last_commit)
            sim_fail(s, "node %" PRIu64 ": commit index went back from %" PRIu64 " to %" PRIu64,
                     nd->id, nd->last_commit, commit);
        nd->last_commit = commit;
        if (raft_term(nd->r) > s->max_term)
            s->max_term = raft_term(nd->r);
        if (raft_state(nd->r) != RAFT_LEADER)
            continue;
        uint64_t term = raft_term(nd->r);
        if (term >= s->n_terms) {
            size_t n = term * 2 + 16;
            s->leader_of_term = xalloc(s, s->leader_of_term, n * sizeof(uint64_t));
            memset(s->leader_of_term + s->n_terms, 0, (n - s->n_terms) * sizeof(uint64_t));
            s->n_terms = n;
        }
        if (s->leader_of_term[term] == nd->id)
            continue;
        if (s->leader_of_term[term] != 0)
            sim_fail(s, "election safety: term %" PRIu64 " has leaders %" PRIu64 " and %" PRIu64,
                     term, s->leader_of_term[term], nd->id);
        s->leader_of_term[term] = nd->id;
        s->n_elect++;
        trace(s, "node %" PRIu64 " leads term %" PRIu64, nd->id, term);
        note(s, 0xe1ec7, nd->id * 1000003 + term);
        check_new_leader(s, nd);
    }
}

/* --- applying ----------------------------------------------------------- */

static void ledger_check(struct sim *s, struct node *nd, const struct raft_entry *e, uint64_t op,
                         int result)
{
    struct ledger_rec *l = ledger_at(s, e->index);
    uint64_t data_hash = fnv(e->data, e->len, fnv(&e->type, sizeof(e->type), FNV0));
    if (l->term == 0) {
        l->term = e->term;
        l->data_hash = data_hash;
        l->op = op;
        l->result = result;
        l->max_term = s->max_term;
        s->n_failed_puts += result != 0;
        return;
    }
    if (l->term != e->term || l->data_hash != data_hash)
        sim_fail(s,
                 "state-machine safety: node %" PRIu64 " applied (term %" PRIu64 ") at %" PRIu64
                 ", another node term %" PRIu64 " or other data",
                 nd->id, e->term, e->index, l->term);
    if (l->result != result)
        sim_fail(s,
                 "node %" PRIu64 ": entry %" PRIu64 " had outcome %s, on another node %s: apply "
                 "is not deterministic",
                 nd->id, e->index, swm_strerror(result), swm_strerror(l->result));
}

/* Applies es[0..n), the next committed entries, to the store in one call,
 * then records and checks each entry and answers the clients whose
 * proposals were made here: their own entry at that index means done (a put
 * only if the store applied it), another entry there means it was lost. */
static void apply_batch(struct sim *s, struct node *nd, const struct raft_entry *es, size_t n)
{
    if (n > s->cap_results) {
        s->cap_results = n * 2;
        s->results = xalloc(s, s->results, s->cap_results * sizeof(*s->results));
    }
    struct store_apply_result *res = s->results;
    struct raft_ready part = {.committed = (struct raft_entry *)es, .n_committed = n};
    struct swm_err err = {0};
    if (es[0].index != nd->applied + 1)
        sim_fail(s, "node %" PRIu64 " applies %" PRIu64 " after %" PRIu64, nd->id, es[0].index,
                 nd->applied);
    int rc = store_raft_persist(nd->store, &part, res, &err);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": applying %" PRIu64 "..%" PRIu64 ": %s", nd->id, es[0].index,
                 es[n - 1].index, err.msg);
    nd->applied = store_applied_index(nd->store);
    if (nd->applied != es[n - 1].index)
        sim_fail(s, "node %" PRIu64 ": applied %" PRIu64 " after applying up to %" PRIu64, nd->id,
                 nd->applied, es[n - 1].index);
    /* Every entry is in the ledger before any read: a read answered from
     * the store after this call may see a later entry of the call. */
    for (size_t i = 0; i < n; i++) {
        const struct raft_entry *e = &es[i];
        uint64_t op = entry_op(s, nd, e);
        int result = res[i].err.code;
        const struct sim_op *o = op ? &s->ops[op - 1] : NULL;
        if (result != 0 &&
            !(o != NULL && o->lin.kind == LIN_PUT &&
              (result == SWM_EEXISTS || result == SWM_ESTALE || result == SWM_ENOTFOUND)))
            sim_fail(s, "node %" PRIu64 ": entry %" PRIu64 " fails: %s", nd->id, e->index,
                     res[i].err.msg);
        ledger_check(s, nd, e, op, result);
        note(s, e->index, (uint64_t)(int64_t)result);
    }
    for (size_t i = 0; i < n; i++) {
        const struct raft_entry *e = &es[i];
        const struct ledger_rec *l = &s->ledger[e->index];
        for (size_t j = 0; j < nd->n_pend; j++) {
            struct pending *p = &nd->pend[j];
            if (p->index != e->index)
                continue;
            const struct sim_op *o = &s->ops[p->op - 1];
            if (p->term != e->term || p->op != l->op) {
                op_respond(s, p->op, LIN_FAIL, 0);
            } else if (o->lin.kind == LIN_PUT) {
                op_respond(s, p->op, l->result == 0 ? LIN_OK : LIN_FAIL, 0);
            } else {
                uint64_t version;
                op_respond(s, p->op, LIN_OK, fsm_read(s, nd, o->lin.key, &version));
            }
            p->index = 0;
        }
    }
    uint64_t hash = fsm_hash(s, nd);
    ledger_state(s, nd, nd->applied, hash, "state");
    note(s, nd->applied, hash);
}

static void prune_pending(struct node *nd)
{
    size_t w = 0;
    for (size_t i = 0; i < nd->n_pend; i++)
        if (nd->pend[i].index > nd->applied)
            nd->pend[w++] = nd->pend[i];
    nd->n_pend = w;
}

/* --- network ------------------------------------------------------------- */

static bool msg_before(const struct msg *a, const struct msg *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(struct sim *s, struct msg m)
{
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 256;
        s->heap = xalloc(s, s->heap, s->cap_heap * sizeof(*s->heap));
    }
    size_t i = s->n_heap++;
    while (i > 0 && msg_before(&m, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = m;
}

static struct msg heap_pop(struct sim *s)
{
    struct msg top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap)
            break;
        if (c + 1 < s->n_heap && msg_before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!msg_before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap > 0)
        s->heap[i] = last;
    return top;
}

static uint64_t net_delay(struct sim *s)
{
    uint64_t d = 1 + rnd(s, 4);
    if (s->slow_pct && rnd(s, 100) < s->slow_pct)
        d += rnd(s, 6 * TICK); /* overtaken by later messages: reordering */
    return d;
}

static void send_msg(struct sim *s, const struct raft_message *m)
{
    struct swm_buf b = {0};
    int rc = raft_message_encode(m, &b);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": encoding %s: %s", m->from, raft_message_type_name(m->type),
                 swm_strerror(rc));
    if (m->to == 0 || m->to >= MAX_NODES || s->cut[m->from][m->to] ||
        (s->drop_pct && rnd(s, 100) < s->drop_pct)) {
        swm_buf_free(&b);
        return;
    }
    if (s->dup_pct && rnd(s, 100) < s->dup_pct) {
        void *copy = xalloc(s, NULL, b.len);
        memcpy(copy, b.data, b.len);
        heap_push(s,
                  (struct msg){s->now + net_delay(s), ++s->msg_seq, m->from, m->to, copy, b.len});
    }
    heap_push(s, (struct msg){s->now + net_delay(s), ++s->msg_seq, m->from, m->to, b.data, b.len});
}

/* --- the driver ------------------------------------------------------------ */

static void node_stop(struct sim *s, struct node *nd);
static void node_start(struct sim *s, struct node *nd);

/* Takes the next ready, sends what may go before persisting and starts the
 * write. */
static void pump(struct sim *s, struct node *nd)
{
    if (!nd->up || nd->rd != NULL || !raft_has_ready(nd->r))
        return;
    int rc = raft_ready(nd->r, &nd->rd);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": raft_ready: %s", nd->id, swm_strerror(rc));
    struct raft_ready *rd = nd->rd;
    for (size_t i = 0; i < rd->n_messages; i++) {
        enum raft_message_type t = rd->messages[i].type;
        /* Thesis §3.8: votes and acknowledgements of entries wait for the
         * disk. (Heartbeat and snapshot-chunk responses carry nothing a
         * crash could contradict; the core sends them right away.) */
        if (t == RAFT_MSG_VOTE_RESP || t == RAFT_MSG_PREVOTE_RESP || t == RAFT_MSG_APPEND_RESP)
            sim_fail(s, "node %" PRIu64 ": %s offered before persisting", nd->id,
                     raft_message_type_name(t));
        send_msg(s, &rd->messages[i]);
    }
    if (s->bug == BUG_EARLY_ACK) {
        for (size_t i = 0; i < rd->n_messages_after_persist; i++)
            send_msg(s, &rd->messages_after_persist[i]);
        rd->n_messages_after_persist = 0; /* still freed by raft_ready_free */
    }
    /* An fsync takes a little time; now and then a lot. */
    nd->rd_done_at = s->now + 1 + rnd(s, 3) + (rnd(s, 20) == 0 ? rnd(s, 3 * TICK) : 0);
}

/* Writes the durable part of rd: everything, or (torn) the hard state and
 * the first `keep` entries only. */
static void persist(struct sim *s, struct node *nd, const struct raft_ready *rd, size_t keep)
{
    if (rd->has_snapshot) {
        disk_truncate(nd, 0);
        disk_set_snapshot(s, nd, &rd->snapshot, rd->snapshot_data, rd->snapshot_len);
        fsm_install(s, nd, &rd->snapshot, rd->snapshot_data, rd->snapshot_len);
        s->n_install++;
    }
    if (rd->truncate_from)
        disk_truncate(nd, rd->truncate_from);
    for (size_t i = 0; i < keep; i++)
        disk_append(s, nd, &rd->entries[i]);
    if (rd->has_hard_state) {
        nd->hs = rd->hard_state;
        uint64_t last = disk_last_index(nd);
        if (nd->hs.commit > last && keep == rd->n_entries)
            sim_fail(s,
                     "node %" PRIu64 ": hard state commits %" PRIu64 " past the log (%" PRIu64 ")",
                     nd->id, nd->hs.commit, last);
        /* A torn write keeps a commit index no further than what it kept. */
        if (nd->hs.commit > last)
            nd->hs.commit = last;
    }
}

/* Applies rd's committed entries not applied yet: in one store call, or
 * now and then split into several (drivers batch differently). */
static void apply_committed(struct sim *s, struct node *nd, const struct raft_ready *rd)
{
    size_t i = 0;
    while (i < rd->n_committed && rd->committed[i].index <= nd->applied)
        i++;
    while (i < rd->n_committed) {
        size_t n = rd->n_committed - i;
        if (n > 1 && rnd(s, 4) == 0)
            n = 1 + (size_t)rnd(s, n);
        apply_batch(s, nd, rd->committed + i, n);
        i += n;
    }
    prune_pending(nd);
}

static void take_snapshot(struct sim *s, struct node *nd)
{
    struct swm_err err = {0};
    uint64_t applied = 0;
    s->scratch.len = 0;
    int rc = store_raft_snapshot_take(nd->store, &s->scratch, &applied, &err);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": %s", nd->id, err.msg);
    if (applied != nd->applied)
        sim_fail(s, "node %" PRIu64 ": store snapshot at %" PRIu64 ", applied %" PRIu64, nd->id,
                 applied, nd->applied);
    ledger_state(s, nd, applied, fnv(s->scratch.data, s->scratch.len, FNV0), "snapshot taken");
    struct raft_snapshot_meta meta;
    uint64_t compact = 0;
    rc = raft_snapshot_done(nd->r, applied, s->scratch.data, s->scratch.len, &meta, &compact);
    if (rc != 0) {
        if (rc == -EINVAL)
            return; /* not above the current snapshot */
        sim_fail(s, "node %" PRIu64 ": raft_snapshot_done: %s", nd->id, swm_strerror(rc));
    }
    disk_set_snapshot(s, nd, &meta, s->scratch.data, s->scratch.len);
    raft_configuration_free(&meta.conf);
    if (compact)
        disk_compact(nd, compact);
    note(s, 0x5a9, applied);
}

/* The write of the outstanding ready completes (or fails). */
static void complete_write(struct sim *s, struct node *nd)
{
    struct raft_ready *rd = nd->rd;
    if (nd->fail_next_write) {
        /* The write failed: nothing of it is durable and the core must not
         * be advanced; recreate it from the disk (raft.h). */
        trace(s, "node %" PRIu64 ": write fails with %s, restarting from disk", nd->id,
              nd->fail_next_write == -EIO ? "EIO" : "ENOSPC");
        note(s, 0xe10, nd->id);
        nd->fail_next_write = 0;
        s->n_eio++;
        node_stop(s, nd);
        node_start(s, nd);
        return;
    }
    persist(s, nd, rd, rd->n_entries);
    for (size_t i = 0; i < rd->n_messages_after_persist; i++)
        send_msg(s, &rd->messages_after_persist[i]);
    apply_committed(s, nd, rd);
    for (size_t i = 0; i < rd->n_read_states; i++) {
        const struct raft_read_state *rs = &rd->read_states[i];
        if (rs->ctx == 0 || rs->ctx > s->n_ops)
            sim_fail(s, "node %" PRIu64 ": read state for unknown ctx %" PRIu64, nd->id, rs->ctx);
        if (rs->status != 0) {
            op_respond(s, rs->ctx, LIN_FAIL, 0);
            continue;
        }
        if (rs->index > nd->applied)
            sim_fail(s,
                     "node %" PRIu64 ": read released at %" PRIu64 " before applying it (%" PRIu64
                     ")",
                     nd->id, rs->index, nd->applied);
        uint64_t version;
        op_respond(s, rs->ctx, LIN_OK, fsm_read(s, nd, s->ops[rs->ctx - 1].lin.key, &version));
    }
    uint64_t request = rd->snapshot_request;
    int rc = raft_advance(nd->r, rd);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": raft_advance: %s", nd->id, swm_strerror(rc));
    raft_ready_free(rd);
    nd->rd = NULL;
    if (request && nd->applied >= request)
        take_snapshot(s, nd);
    note(s, 0xd15c, nd->id * 1000003 + nd->applied);
}

static void node_start(struct sim *s, struct node *nd)
{
    struct raft_entry *es = xalloc(s, NULL, (nd->n_log + 1) * sizeof(*es));
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
    if (nd->applied != store_applied_index(nd->store))
        sim_fail(s, "node %" PRIu64 ": the store has applied %" PRIu64 ", not %" PRIu64, nd->id,
                 store_applied_index(nd->store), nd->applied);
    struct swm_err err = {0};
    int rc = raft_new(&nd->opt, &in, &nd->r, &err);
    free(es);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": restart from disk failed: %s: %s", nd->id, swm_strerror(rc),
                 err.msg);
    nd->up = true;
    nd->last_commit = raft_commit_index(nd->r);
    if (nd->last_commit < nd->hs.commit)
        sim_fail(s, "node %" PRIu64 ": commit %" PRIu64 " after restart, %" PRIu64 " on disk",
                 nd->id, nd->last_commit, nd->hs.commit);
    nd->restart_at = 0;
    pump(s, nd);
}

static void node_stop(struct sim *s, struct node *nd)
{
    (void)s;
    raft_free(nd->r);
    nd->r = NULL;
    raft_ready_free(nd->rd);
    nd->rd = NULL;
    nd->up = false;
    nd->n_pend = 0; /* its clients time out: their outcome is unknown */
}

/* A crash: the write in flight is lost, torn, or made it to disk without
 * having been acknowledged. */
static void node_crash(struct sim *s, struct node *nd)
{
    const char *what = "idle";
    if (nd->rd != NULL) {
        struct raft_ready *rd = nd->rd;
        uint64_t roll = rnd(s, 10);
        if (roll < 5) {
            what = "write lost";
        } else if (roll < 8 && !rd->has_snapshot && rd->n_entries > 0) {
            size_t keep = (size_t)rnd(s, rd->n_entries);
            persist(s, nd, rd, keep);
            what = "write torn";
            s->n_torn++;
        } else {
            persist(s, nd, rd, rd->n_entries);
            apply_committed(s, nd, rd);
            what = "write durable, not acknowledged";
        }
    }
    if (s->bug == BUG_FORGET_VOTE)
        nd->hs.vote = 0;
    bool lost = rnd(s, 2) == 0;
    if (lost)
        fsm_rebuild(s, nd);
    trace(s, "node %" PRIu64 " crashes (%s%s)", nd->id, what,
          lost ? ", store rebuilt from its snapshot" : "");
    note(s, 0xc4a5, nd->id);
    s->n_crash++;
    node_stop(s, nd);
}

static void node_init_disk(struct sim *s, struct node *nd, bool founder)
{
    raft_options_init(&nd->opt, nd->id, rng_next(&s->rng));
    nd->opt.snapshot_threshold = 40;
    nd->opt.snapshot_trailing = 10;
    nd->opt.snapshot_chunk_size = 32; /* a snapshot of 5 tasks takes several chunks */
    nd->opt.max_size_per_msg = 128;
    nd->opt.max_inflight_msgs = 8;
    if (founder) {
        struct raft_server servers[MAX_NODES];
        for (size_t j = 0; j < s->n_founders; j++)
            servers[j] = (struct raft_server){.id = j + 1, .role = RAFT_VOTER};
        struct raft_configuration c = {.servers = servers, .n_servers = s->n_founders};
        if (raft_configuration_copy(&nd->snap.conf, &c) != 0)
            sim_fail(s, "out of memory");
    }
    nd->exists = true;
    fsm_open(s, nd);
}

/* --- inputs ------------------------------------------------------------------ */

static void deliver(struct sim *s, struct msg *m)
{
    struct node *nd = &s->nodes[m->to];
    if (m->to > s->n_slots || !nd->up || s->cut[m->from][m->to])
        return;
    struct raft_message *rm;
    struct swm_err err = {0};
    int rc = raft_message_decode(m->bytes, m->len, 0, &rm, &err);
    if (rc != 0)
        sim_fail(s, "decoding a message from %" PRIu64 ": %s", m->from, err.msg);
    rc = raft_step(nd->r, rm);
    enum raft_message_type type = rm->type;
    raft_message_free(rm);
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": step %s from %" PRIu64 ": %s", nd->id,
                 raft_message_type_name(type), m->from, swm_strerror(rc));
    s->n_delivered++;
    note(s, m->seq, m->to);
    pump(s, nd);
}

static struct node *pick_up(struct sim *s, bool leader_only)
{
    size_t cand[MAX_NODES], n = 0;
    for (size_t i = 1; i <= s->n_slots; i++)
        if (s->nodes[i].up && (!leader_only || raft_state(s->nodes[i].r) == RAFT_LEADER))
            cand[n++] = i;
    return n ? &s->nodes[cand[rnd(s, n)]] : NULL;
}

static struct node *pick_writing(struct sim *s)
{
    size_t cand[MAX_NODES], n = 0;
    for (size_t i = 1; i <= s->n_slots; i++)
        if (s->nodes[i].up && s->nodes[i].rd != NULL && s->nodes[i].rd->n_entries > 0)
            cand[n++] = i;
    return n ? &s->nodes[cand[rnd(s, n)]] : NULL;
}

static void client_invoke(struct sim *s, int ci)
{
    struct client *c = &s->clients[ci];
    if (s->n_ops == s->cap_ops) {
        s->cap_ops = s->cap_ops ? s->cap_ops * 2 : 256;
        s->ops = xalloc(s, s->ops, s->cap_ops * sizeof(*s->ops));
    }
    struct sim_op *op = &s->ops[s->n_ops++];
    uint64_t id = s->n_ops;
    uint64_t roll = rnd(s, 100);
    *op = (struct sim_op){
        .lin = {.id = id, .key = rnd(s, N_KEYS), .invoke = ++s->lclock},
        .via = roll < 50   ? VIA_PUT
               : roll < 65 ? VIA_LOG_GET
                           : VIA_READ_INDEX,
        .client = ci,
        .deadline = s->now + CLIENT_TIMEOUT,
    };
    op->lin.kind = op->via == VIA_PUT ? LIN_PUT : LIN_GET;
    /* One write in eight deletes (writes 0, the value of an absent key). */
    if (op->via == VIA_PUT)
        op->lin.value = rnd(s, 8) == 0 ? 0 : ++s->next_value;
    c->busy = true;
    c->op = s->n_ops - 1;
    /* Clients mostly find a leader (perhaps a deposed one), sometimes not. */
    struct node *nd = rnd(s, 100) < 85 ? pick_up(s, true) : NULL;
    if (nd == NULL)
        nd = pick_up(s, false);
    if (nd == NULL) {
        op_respond(s, id, LIN_FAIL, 0);
        return;
    }
    op->node = nd->id;
    int rc;
    if (op->via == VIA_READ_INDEX && s->bug == BUG_LOCAL_READ) {
        uint64_t version;
        op_respond(s, id, LIN_OK, fsm_read(s, nd, op->lin.key, &version));
        return;
    } else if (op->via == VIA_READ_INDEX) {
        rc = raft_read_index(nd->r, id);
    } else {
        Swarmc__StoreEntry read = SWARMC__STORE_ENTRY__INIT;
        struct raft_buffer b = op->via == VIA_PUT ? put_entry(s, nd, op) : entry_pack(s, &read, id);
        uint64_t index, term;
        rc = raft_propose(nd->r, &b, 1, &index, &term);
        if (rc == 0) {
            if (nd->n_pend == nd->cap_pend) {
                nd->cap_pend = nd->cap_pend ? nd->cap_pend * 2 : 16;
                nd->pend = xalloc(s, nd->pend, nd->cap_pend * sizeof(*nd->pend));
            }
            nd->pend[nd->n_pend++] = (struct pending){index, term, id};
        }
    }
    note(s, 0x1a7, id * 16 + (uint64_t)(rc != 0));
    if (rc == SWM_ENOTLEADER || rc == SWM_EINUSE) {
        op_respond(s, id, LIN_FAIL, 0);
        return;
    }
    if (rc != 0)
        sim_fail(s, "node %" PRIu64 ": client op: %s", nd->id, swm_strerror(rc));
    pump(s, nd);
}

static void clients_step(struct sim *s)
{
    for (int i = 0; i < N_CLIENTS; i++) {
        struct client *c = &s->clients[i];
        if (c->busy && s->now >= s->ops[c->op].deadline) {
            struct sim_op *op = &s->ops[c->op];
            op->done = true;
            op->lin.status = LIN_UNKNOWN;
            c->busy = false;
            c->next_at = s->now;
            note(s, 0x7173, c->op);
        }
        if (!c->busy && s->clients_on && s->now >= c->next_at)
            client_invoke(s, i);
    }
}

/* --- faults ------------------------------------------------------------------ */

static size_t down_count(struct sim *s)
{
    size_t n = 0;
    for (size_t i = 1; i <= s->n_slots; i++)
        n += s->nodes[i].exists && !s->nodes[i].up;
    return n;
}

static void heal(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
}

static void membership_step(struct sim *s, struct node *lead)
{
    const struct raft_configuration *c = raft_configuration_current(lead->r);
    uint64_t idx;
    int rc = 0;
    const char *what = NULL;
    uint64_t who = 0;
    /* A learner that caught up is promoted; else a joiner is added; else a
     * voter (not the leader) leaves while more voters than founders remain. */
    for (size_t i = 0; i < c->n_servers && !what; i++) {
        if (c->servers[i].role != RAFT_LEARNER)
            continue;
        uint64_t match = 0;
        if (raft_progress_match(lead->r, c->servers[i].id, &match) == 0 &&
            match + 5 >= raft_last_index(lead->r)) {
            who = c->servers[i].id;
            what = "promote";
            rc = raft_propose_conf_change(lead->r, RAFT_CC_PROMOTE, who, &idx);
        }
    }
    for (uint64_t id = s->n_founders + 1; id <= s->n_slots && !what; id++) {
        if (raft_configuration_get(c, id) || raft_configuration_is_removed(c, id) ||
            raft_configuration_voters(c) > s->n_founders)
            continue;
        who = id;
        what = "add learner";
        rc = raft_propose_conf_change(lead->r, RAFT_CC_ADD_LEARNER, who, &idx);
        if (rc == 0 && !s->nodes[id].exists) {
            node_init_disk(s, &s->nodes[id], false);
            node_start(s, &s->nodes[id]);
        }
    }
    if (!what && raft_configuration_voters(c) > s->n_founders) {
        size_t pick = (size_t)rnd(s, c->n_servers);
        who = c->servers[pick].id;
        if (who != lead->id && c->servers[pick].role == RAFT_VOTER) {
            what = "remove";
            rc = raft_propose_conf_change(lead->r, RAFT_CC_REMOVE, who, &idx);
        }
    }
    if (!what)
        return;
    if (rc != 0 && rc != SWM_EINUSE && rc != SWM_ENOTLEADER && rc != SWM_EEXISTS)
        sim_fail(s, "leader %" PRIu64 ": %s %" PRIu64 ": %s", lead->id, what, who,
                 swm_strerror(rc));
    trace(s, "leader %" PRIu64 ": %s %" PRIu64 " -> %s", lead->id, what, who,
          rc ? swm_strerror(rc) : "proposed");
    s->n_cc += rc == 0;
    note(s, 0xcc, who * 16 + (uint64_t)(rc != 0));
    pump(s, lead);
}

static void fault_step(struct sim *s)
{
    uint64_t roll = rnd(s, 1000);
    struct node *lead = pick_up(s, true);
    if (roll < 15) {
        /* Half the crashes hit a node with a write in flight. */
        struct node *nd = rnd(s, 2) ? pick_writing(s) : NULL;
        if (nd == NULL)
            nd = pick_up(s, false);
        if (nd && down_count(s) < (s->n_founders - 1) / 2 + (rnd(s, 4) == 0)) {
            node_crash(s, nd);
            nd->restart_at = s->now + TICK * (5 + rnd(s, 60));
        }
    } else if (roll < 30) {
        /* A symmetric partition: a random side split from the rest. */
        heal(s);
        uint64_t side = rnd(s, 1ULL << s->n_slots);
        for (size_t a = 1; a <= s->n_slots; a++)
            for (size_t b = 1; b <= s->n_slots; b++)
                if (((side >> (a - 1)) & 1) != ((side >> (b - 1)) & 1))
                    s->cut[a][b] = true;
        trace(s, "partition %#" PRIx64, side);
        note(s, 0x9a7, side);
    } else if (roll < 38) {
        size_t a = 1 + rnd(s, s->n_slots), b = 1 + rnd(s, s->n_slots);
        s->cut[a][b] = true; /* one way only */
        trace(s, "link %zu -> %zu cut", a, b);
        note(s, 0xa5, a * 16 + b);
    } else if (roll < 50) {
        heal(s);
        trace(s, "network healed");
        note(s, 0x4ea1, 0);
    } else if (roll < 55) {
        s->drop_pct = (unsigned)rnd(s, 20);
        s->dup_pct = (unsigned)rnd(s, 8);
        s->slow_pct = (unsigned)rnd(s, 30);
        trace(s, "network drop %u%% dup %u%% slow %u%%", s->drop_pct, s->dup_pct, s->slow_pct);
    } else if (roll < 63) {
        if (lead)
            membership_step(s, lead);
    } else if (roll < 70) {
        if (lead) {
            const struct raft_configuration *c = raft_configuration_current(lead->r);
            uint64_t to = c->servers[rnd(s, c->n_servers)].id;
            int rc = raft_transfer_leadership(lead->r, to);
            if (rc != 0 && rc != -EINVAL && rc != SWM_ENOTFOUND)
                sim_fail(s, "leader %" PRIu64 ": transfer to %" PRIu64 ": %s", lead->id, to,
                         swm_strerror(rc));
            trace(s, "leader %" PRIu64 ": transfer to %" PRIu64 ": %s", lead->id, to,
                  rc ? swm_strerror(rc) : "started");
            s->n_transfer += rc == 0;
            note(s, 0x7f, to);
            pump(s, lead);
        }
    } else if (roll < 76) {
        struct node *nd = pick_up(s, false);
        if (nd)
            nd->fail_next_write = rnd(s, 2) ? -EIO : -ENOSPC;
    }
}

/* --- the run -------------------------------------------------------------- */

/* One unit of virtual time: due messages, due writes, the tick, clients,
 * restarts, then (during chaos) a fault; the checks after each event. */
static void step(struct sim *s, bool chaos)
{
    s->now++;
    while (s->n_heap > 0 && s->heap[0].at <= s->now) {
        struct msg m = heap_pop(s);
        deliver(s, &m);
        free(m.bytes);
        check_all(s);
    }
    for (size_t i = 1; i <= s->n_slots; i++) {
        struct node *nd = &s->nodes[i];
        if (nd->up && nd->rd != NULL && nd->rd_done_at <= s->now) {
            complete_write(s, nd);
            pump(s, nd);
            check_all(s);
        }
    }
    if (s->now % TICK == 0) {
        for (size_t i = 1; i <= s->n_slots; i++) {
            struct node *nd = &s->nodes[i];
            if (!nd->up)
                continue;
            int rc = raft_tick(nd->r);
            if (rc != 0)
                sim_fail(s, "node %zu: tick: %s", i, swm_strerror(rc));
            pump(s, nd);
            check_all(s);
        }
        for (size_t i = 1; i <= s->n_slots; i++) {
            struct node *nd = &s->nodes[i];
            if (nd->exists && !nd->up && nd->restart_at && nd->restart_at <= s->now) {
                trace(s, "node %zu restarts", i);
                note(s, 0x5747, i);
                node_start(s, nd);
                check_all(s);
            }
        }
        if (chaos) {
            fault_step(s);
            check_all(s);
        }
    }
    clients_step(s);
    check_all(s);
}

static struct node *stable_leader(struct sim *s)
{
    struct node *best = NULL;
    for (size_t i = 1; i <= s->n_slots; i++) {
        struct node *nd = &s->nodes[i];
        if (nd->up && raft_state(nd->r) == RAFT_LEADER &&
            (best == NULL || raft_term(nd->r) > raft_term(best->r)))
            best = nd;
    }
    return best;
}

static void print_cluster(struct sim *s)
{
    for (size_t i = 1; i <= s->n_slots; i++) {
        struct node *nd = &s->nodes[i];
        if (!nd->exists)
            continue;
        if (!nd->up) {
            fprintf(stderr, "  node %zu: down\n", i);
            continue;
        }
        fprintf(stderr,
                "  node %zu: %s term %" PRIu64 " leader %" PRIu64 " commit %" PRIu64
                " last %" PRIu64 " applied %" PRIu64 " snap %" PRIu64 " voters %zu\n",
                i, raft_state_name(raft_state(nd->r)), raft_term(nd->r), raft_leader(nd->r),
                raft_commit_index(nd->r), raft_last_index(nd->r), nd->applied, nd->snap.index,
                raft_configuration_voters(raft_configuration_current(nd->r)));
    }
}

/* Heals everything and requires progress: a leader emerges, a marker entry
 * commits and every member of the configuration applies it. */
static void settle(struct sim *s)
{
    heal(s);
    s->drop_pct = s->dup_pct = s->slow_pct = 0;
    s->clients_on = false;
    for (size_t i = 1; i <= s->n_slots; i++) {
        struct node *nd = &s->nodes[i];
        nd->fail_next_write = 0;
        if (nd->exists && !nd->up)
            node_start(s, nd);
    }
    uint64_t deadline = s->now + 400 * TICK, index = 0, term = 0;
    struct node *lead = NULL;
    while (s->now < deadline) {
        step(s, false);
        if (index == 0) {
            lead = stable_leader(s);
            Swarmc__StoreEntry mark = SWARMC__STORE_ENTRY__INIT;
            struct raft_buffer b = entry_pack(s, &mark, 0);
            if (lead && raft_propose(lead->r, &b, 1, &index, &term) == 0)
                pump(s, lead);
            else
                index = 0;
            continue;
        }
        if (!lead->up || raft_state(lead->r) != RAFT_LEADER || raft_term(lead->r) != term) {
            index = 0; /* lost leadership before the marker committed: again */
            continue;
        }
        const struct raft_configuration *c = raft_configuration_current(lead->r);
        bool all = true;
        for (size_t i = 0; i < c->n_servers && all; i++)
            all = c->servers[i].id <= s->n_slots && s->nodes[c->servers[i].id].applied >= index;
        bool clients_idle = true;
        for (int i = 0; i < N_CLIENTS; i++)
            clients_idle &= !s->clients[i].busy;
        if (all && clients_idle)
            return;
    }
    print_cluster(s);
    sim_fail(s, "no progress after healing: marker index %" PRIu64 " not applied everywhere",
             index);
}

static void check_history(struct sim *s)
{
    /* A put whose outcome is unknown either reached the committed log and
     * the store applied it (then it did take effect, at an unknown time), or
     * never will: the run is over and the log was settled. One the store
     * failed (a stale version) had no effect. */
    bool *committed = calloc(s->n_ops + 1, sizeof(*committed));
    struct lin_op *h = malloc((s->n_ops + 1) * sizeof(*h));
    if (committed == NULL || h == NULL) {
        free(committed);
        free(h);
        sim_fail(s, "out of memory");
    }
    for (size_t i = 1; i < s->n_ledger; i++)
        if (s->ledger[i].op && s->ledger[i].op <= s->n_ops && s->ledger[i].result == 0)
            committed[s->ledger[i].op] = true;
    size_t n = 0;
    for (size_t i = 0; i < s->n_ops; i++) {
        struct sim_op *op = &s->ops[i];
        h[n] = op->lin;
        if (!op->done)
            h[n].status = LIN_UNKNOWN;
        if (h[n].status == LIN_UNKNOWN && !committed[op->lin.id])
            h[n].status = LIN_FAIL;
        if (h[n].status == LIN_OK && op->lin.kind == LIN_PUT && !committed[op->lin.id]) {
            free(committed);
            free(h);
            sim_fail(s, "acknowledged put (op %zu) is not in the committed log, or failed there",
                     i + 1);
        }
        n++;
    }
    struct lin_result res;
    int rc = lin_check(h, n, 0, &res);
    free(committed);
    free(h);
    if (rc == 1)
        sim_fail(s, "history of key %" PRIu64 " is not linearizable (%zu ops)", res.bad_key,
                 res.n_ops);
    if (rc != 0)
        sim_fail(s, "linearizability check of key %" PRIu64 " undecided: %s", res.bad_key,
                 strerror(-rc));
}

static void sim_free(struct sim *s)
{
    for (size_t i = 0; i < MAX_NODES; i++) {
        struct node *nd = &s->nodes[i];
        raft_free(nd->r);
        raft_ready_free(nd->rd);
        raft_configuration_free(&nd->snap.conf);
        free(nd->snap_data);
        disk_truncate(nd, 0);
        free(nd->log);
        free(nd->pend);
        fsm_close(nd);
    }
    swm_buf_free(&s->scratch);
    free(s->results);
    for (size_t i = 0; i < s->n_heap; i++)
        free(s->heap[i].bytes);
    free(s->heap);
    free(s->leader_of_term);
    free(s->ledger);
    free(s->lm);
    free(s->ops);
}

struct run_opts {
    const char *dir; /* for the stores */
    size_t nodes;    /* 0: 3 or 5 by seed */
    enum sim_bug bug;
    uint64_t ticks;
    bool trace;
    bool verbose;
};

/* Runs one seed; returns 0 or -1 (after printing the failure and how to
 * replay it) and sets *digest. */
static int run_seed(uint64_t seed, const struct run_opts *o, uint64_t *digest)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->dir = o->dir;
    s->seed = seed;
    s->rng = seed;
    s->digest = FNV0;
    s->trace = o->trace;
    s->bug = o->bug;
    s->n_founders = o->nodes ? o->nodes : (seed % 2 ? 3 : 5);
    s->n_slots = s->n_founders + 2;
    s->clients_on = true;
    volatile int result = 0; /* set after setjmp */
    if (setjmp(s->fail_jmp) != 0) {
        fprintf(stderr,
                "FAIL seed %" PRIu64 " (%zu nodes) at t=%" PRIu64 ": %s\n"
                "  replay: raft_sim --seed %" PRIu64 " --nodes %zu --ticks %" PRIu64 " --trace\n",
                seed, s->n_founders, s->now, s->fail_msg, seed, s->n_founders, o->ticks);
        result = -1;
        goto out;
    }
    for (size_t i = 1; i <= s->n_founders; i++) {
        s->nodes[i].id = i;
        node_init_disk(s, &s->nodes[i], true);
        node_start(s, &s->nodes[i]);
    }
    for (size_t i = s->n_founders + 1; i <= s->n_slots; i++)
        s->nodes[i].id = i;
    while (s->now < o->ticks * TICK)
        step(s, true);
    settle(s);
    check_history(s);
    if (o->verbose) {
        size_t ok = 0;
        for (size_t i = 0; i < s->n_ops; i++)
            ok += s->ops[i].lin.status == LIN_OK;
        printf("seed %" PRIu64 " (%zu nodes): %zu ops (%zu ok), %" PRIu64 " elections, %" PRIu64
               " crashes, %" PRIu64 " torn, %" PRIu64 " EIO/ENOSPC, %" PRIu64 " installs, %" PRIu64
               " conf changes, %" PRIu64 " transfers, %" PRIu64 " messages, %" PRIu64
               " stores rebuilt, %" PRIu64 " puts failed by the store\n",
               seed, s->n_founders, s->n_ops, ok, s->n_elect, s->n_crash, s->n_torn, s->n_eio,
               s->n_install, s->n_cc, s->n_transfer, s->n_delivered, s->n_rebuild,
               s->n_failed_puts);
    }
out:
    *digest = s->digest;
    sim_free(s);
    free(s);
    return result;
}

/* --- main ---------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: raft_sim [--seed S[,S...]] [--first F] [--seeds N] [--seconds T]\n"
            "                [--nodes 3|5] [--ticks T] [--check-replay] [--verbose] [--trace]\n"
            "  --seed       run exactly these seeds (replay)\n"
            "  --first/--seeds/--seconds  sweep seeds F, F+1, ... until N ran or T seconds "
            "passed\n"
            "  --nodes      founding voters (default: 3 for odd seeds, 5 for even)\n"
            "  --ticks      raft ticks of faults per seed before healing (default 1000)\n"
            "  --check-replay  run every seed twice and compare event digests\n"
            "  --inject local-read|early-ack|forget-vote  plant a driver bug\n"
            "  --expect-failure  succeed only if some seed fails (with --inject)\n");
}

/* A new directory for the stores: on tmpfs (/dev/shm) when there is one, so
 * that LMDB's fsyncs cost nothing, else under $TMPDIR or /tmp. The caller
 * frees the path and removes the directory. NULL on failure (printed). */
static char *make_store_dir(void)
{
    struct stat st;
    const char *parent = "/dev/shm";
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode) || access(parent, W_OK) != 0) {
        parent = getenv("TMPDIR");
        if (parent == NULL || *parent == '\0')
            parent = "/tmp";
    }
    size_t size = strlen(parent) + sizeof("/raft_sim.XXXXXX");
    char *dir = malloc(size);
    if (dir == NULL)
        return NULL;
    snprintf(dir, size, "%s/raft_sim.XXXXXX", parent);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "raft_sim: creating %s: %s\n", dir, strerror(errno));
        free(dir);
        return NULL;
    }
    return dir;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct run_opts o = {.ticks = 1000};
    uint64_t *list = NULL;
    size_t n_list = 0;
    uint64_t first = 1, count = 0;
    double seconds = 0;
    bool replay = false, expect_failure = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--check-replay") == 0) {
            replay = true;
        } else if (strcmp(a, "--verbose") == 0) {
            o.verbose = true;
        } else if (strcmp(a, "--expect-failure") == 0) {
            expect_failure = true;
        } else if (strcmp(a, "--trace") == 0) {
            o.trace = o.verbose = true;
        } else if (v == NULL) {
            usage();
            return 2;
        } else if (strcmp(a, "--seed") == 0) {
            i++;
            for (const char *p = v; *p;) {
                char *end;
                uint64_t seed = strtoull(p, &end, 10);
                if (end == p) {
                    usage();
                    return 2;
                }
                uint64_t *l = realloc(list, (n_list + 1) * sizeof(*list));
                if (l == NULL)
                    return 2;
                list = l;
                list[n_list++] = seed;
                p = *end == ',' ? end + 1 : end;
            }
        } else if (strcmp(a, "--first") == 0) {
            first = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--seeds") == 0) {
            count = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--seconds") == 0) {
            seconds = strtod(argv[++i], NULL);
        } else if (strcmp(a, "--nodes") == 0) {
            o.nodes = strtoull(argv[++i], NULL, 10);
            if (o.nodes != 3 && o.nodes != 5) {
                usage();
                return 2;
            }
        } else if (strcmp(a, "--inject") == 0) {
            i++;
            o.bug = strcmp(v, "local-read") == 0    ? BUG_LOCAL_READ
                    : strcmp(v, "early-ack") == 0   ? BUG_EARLY_ACK
                    : strcmp(v, "forget-vote") == 0 ? BUG_FORGET_VOTE
                                                    : BUG_NONE;
            if (o.bug == BUG_NONE) {
                usage();
                return 2;
            }
        } else if (strcmp(a, "--ticks") == 0) {
            o.ticks = strtoull(argv[++i], NULL, 10);
        } else {
            usage();
            return 2;
        }
    }
    if (n_list == 0 && count == 0 && seconds <= 0)
        count = 1;
    char *dir = make_store_dir();
    if (dir == NULL) {
        free(list);
        return 2;
    }
    o.dir = dir;
    double start = wall_seconds();
    uint64_t ran = 0, failed = 0;
    for (uint64_t k = 0;; k++) {
        if (n_list ? k >= n_list : (count && k >= count))
            break;
        if (!n_list && seconds > 0 && wall_seconds() - start >= seconds)
            break;
        uint64_t seed = n_list ? list[k] : first + k, d1, d2;
        int rc = run_seed(seed, &o, &d1);
        if (rc == 0 && replay) {
            struct run_opts quiet = o;
            quiet.trace = quiet.verbose = false;
            rc = run_seed(seed, &quiet, &d2);
            if (rc == 0 && d1 != d2) {
                fprintf(stderr,
                        "FAIL seed %" PRIu64 ": replay diverged (digest %016" PRIx64
                        " then %016" PRIx64 ")\n",
                        seed, d1, d2);
                rc = -1;
            }
        }
        ran++;
        failed += rc != 0;
    }
    printf("%" PRIu64 " seeds ran, %" PRIu64 " failed (%.1f s)\n", ran, failed,
           wall_seconds() - start);
    free(list);
    rmdir(dir);
    free(dir);
    if (expect_failure)
        return failed ? 0 : 1;
    return failed ? 1 : 0;
}
