/* A deterministic in-test cluster of raft cores (in the spirit of canonical
 * raft's fixture.h and etcd's raft network): each node has a simulated disk
 * (hard state, snapshot, log) and a state machine (the list of applied
 * entries); messages go through the real codec into one queue; links can be
 * cut, messages dropped, duplicated and reordered from a seeded RNG; nodes
 * crash and restart from their disk. Every ready is checked: nothing that
 * needs persistence is in rd->messages, entries land contiguously on disk,
 * committed entries apply in order and agree across nodes (state-machine
 * safety), at most one leader per term (election safety), and every new
 * leader holds every applied entry (leader completeness). */
#ifndef SWM_TESTS_RAFT_FIXTURE_H
#define SWM_TESTS_RAFT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manager/raft/raft.h"

#define FX_MAX 9

struct fx_record { /* one applied NORMAL entry with data */
    uint64_t index, term;
    char *data;
};

struct fx_disk_entry {
    uint64_t index, term;
    enum raft_entry_type type;
    void *data;
    size_t len;
};

struct fx_node {
    uint64_t id;
    struct raft *r; /* NULL while crashed */
    struct raft_options opt;
    /* disk */
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap;
    void *snap_data;
    size_t snap_len;
    struct fx_disk_entry *log;
    size_t n_log;
    /* state machine (durable with its applied index, like store/) */
    uint64_t applied;
    struct fx_record *sm;
    size_t n_sm;
    /* observations */
    struct raft_read_state reads[64];
    size_t n_reads;
    uint64_t snapshot_requests;
    uint64_t installs;
    uint64_t last_commit; /* commit never decreases while up */
};

struct fx_msg {
    uint64_t from, to;
    enum raft_message_type type;
    void *bytes;
    size_t len;
};

struct fx {
    struct fx_node nodes[FX_MAX];
    size_t n;
    struct fx_msg *q;
    size_t nq, capq;
    bool cut[FX_MAX + 1][FX_MAX + 1]; /* cut[from][to] */
    unsigned drop_pct, dup_pct;
    bool reorder;
    uint64_t rng;
    bool auto_snapshot;  /* answer snapshot requests right away */
    size_t snapshot_pad; /* filler bytes added to each snapshot */
    /* election safety: leader of each term seen */
    uint64_t *leader_of_term;
    size_t n_terms;
    /* state-machine safety: what was applied at each index, by anyone */
    struct fx_record *ledger;
    size_t n_ledger;
    /* counts */
    uint64_t sent_before[RAFT_MSG_TYPE_MAX + 1], sent_after[RAFT_MSG_TYPE_MAX + 1];
    uint64_t delivered;
    uint64_t append_rejects; /* APPEND_RESP with reject sent */
};

/* Options tweak, applied to every node's options before creation. */
typedef void (*fx_tweak_fn)(struct raft_options *o);

/* A cluster of n nodes (ids 1..n); the first `voters` are voters of the
 * bootstrap configuration, the others start empty (joining members). */
struct fx *fx_new(size_t n, size_t voters, uint64_t seed, fx_tweak_fn tweak);
void fx_free(struct fx *fx);

struct fx_node *fx_node(struct fx *fx, uint64_t id);
struct raft *fx_raft(struct fx *fx, uint64_t id);

/* Handles every node's ready (persist, send, apply, advance). */
void fx_process(struct fx *fx);
/* Delivers one queued message (honouring cuts and drops); false if none. */
bool fx_deliver_one(struct fx *fx);
/* Processes and delivers until nothing is left (bounded). */
void fx_stabilize(struct fx *fx);
/* Ticks node id (or all up nodes for id 0) once, then processes. */
void fx_tick(struct fx *fx, uint64_t id);
/* Ticks everyone `ticks` times, stabilizing after each. */
void fx_run(struct fx *fx, unsigned ticks);

/* The leader with the highest term among up nodes, or 0. */
uint64_t fx_leader(struct fx *fx);
/* Makes node id campaign now (as if TimeoutNow arrived) and stabilizes. */
void fx_campaign(struct fx *fx, uint64_t id);
/* Elects id: campaign + stabilize; asserts it won. */
void fx_elect(struct fx *fx, uint64_t id);

void fx_cut(struct fx *fx, uint64_t a, uint64_t b); /* both directions */
void fx_isolate(struct fx *fx, uint64_t id);
void fx_heal(struct fx *fx);
/* Drops every queued message. */
void fx_drop_queue(struct fx *fx);

void fx_crash(struct fx *fx, uint64_t id);
/* Takes the node's pending ready, sends the part allowed before
 * persistence, then crashes before persisting anything. */
void fx_crash_mid_ready(struct fx *fx, uint64_t id);
void fx_restart(struct fx *fx, uint64_t id);

/* Proposes a string on node id. Returns raft_propose's result. */
int fx_propose(struct fx *fx, uint64_t id, const char *data, uint64_t *index);
/* Whether node id applied data at index. */
bool fx_applied(struct fx *fx, uint64_t id, uint64_t index, const char *data);
/* The applied record at index on node id, or NULL. */
const struct fx_record *fx_applied_at(struct fx *fx, uint64_t id, uint64_t index);

/* Log matching on the disks of every pair of nodes (thesis §3.5). */
void fx_check_log_matching(struct fx *fx);
/* Whether any queued message has type t. */
bool fx_queued(struct fx *fx, enum raft_message_type t);

uint64_t fx_rand(struct fx *fx);

#endif
