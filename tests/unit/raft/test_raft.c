/* manager/raft/raft.c against the thesis' scenarios: elections, pre-vote,
 * check-quorum, the commit rule (Figure 8), stale leaders, conflicting logs,
 * snapshots, membership, leadership transfer, read-index and the
 * persist-before-send contract. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "fixture.h"

static void no_prevote(struct raft_options *o)
{
    o->pre_vote = false;
    o->check_quorum = false;
}

/* --- a single core driven by hand ---------------------------------------- */

/* A core with the given voters (ids 1..voters), log and hard state. */
static struct raft *solo_new(uint64_t id, size_t voters, const struct raft_entry *es, size_t n,
                             struct raft_hard_state hs)
{
    struct raft_server servers[9];
    for (size_t i = 0; i < voters; i++)
        servers[i] = (struct raft_server){.id = i + 1, .role = RAFT_VOTER};
    struct raft_init_state in = {.hard_state = hs, .entries = es, .n_entries = n};
    in.snapshot.conf.servers = servers;
    in.snapshot.conf.n_servers = voters;
    struct raft_options o;
    raft_options_init(&o, id, 42);
    struct raft *r;
    struct swm_err err = {0};
    if (raft_new(&o, &in, &r, &err) != 0)
        fail_msg("raft_new: %s", err.msg);
    return r;
}

/* Takes, "persists" and advances one ready; the caller frees it. */
static struct raft_ready *solo_ready(struct raft *r)
{
    struct raft_ready *rd;
    assert_true(raft_has_ready(r));
    assert_int_equal(raft_ready(r, &rd), 0);
    assert_int_equal(raft_advance(r, rd), 0);
    return rd;
}

static void solo_drain(struct raft *r)
{
    while (raft_has_ready(r))
        raft_ready_free(solo_ready(r));
}

static void solo_step(struct raft *r, struct raft_message m)
{
    m.to = raft_id(r);
    assert_int_equal(raft_step(r, &m), 0);
}

static const struct raft_message *find_msg(const struct raft_message *v, size_t n,
                                           enum raft_message_type t, uint64_t to)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].type == t && (to == 0 || v[i].to == to))
            return &v[i];
    return NULL;
}

/* --- elections ----------------------------------------------------------- */

static void check_one_leader(struct fx *fx, size_t n)
{
    uint64_t lead = fx_leader(fx);
    assert_true(lead != 0);
    uint64_t term = raft_term(fx_raft(fx, lead));
    size_t leaders = 0;
    for (uint64_t id = 1; id <= n; id++) {
        struct raft *r = fx_raft(fx, id);
        leaders += raft_state(r) == RAFT_LEADER;
        assert_int_equal(raft_term(r), term);
        assert_int_equal(raft_leader(r), lead);
        /* The new leader's no-op is committed and applied everywhere. */
        assert_int_equal(raft_commit_index(r), raft_last_index(fx_raft(fx, lead)));
    }
    assert_int_equal(leaders, 1);
}

static void test_election_3(void **state)
{
    struct fx *fx = fx_new(3, 3, 1, NULL);
    fx_elect(fx, 1);
    check_one_leader(fx, 3);
    assert_int_equal(raft_term(fx_raft(fx, 1)), 1);
    assert_int_equal(raft_last_index(fx_raft(fx, 1)), 1); /* the no-op */
    fx_free(fx);
}

static void test_election_5_by_timeout(void **state)
{
    /* Nobody is told to campaign: randomized timeouts elect someone. */
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct fx *fx = fx_new(5, 5, seed, NULL);
        fx_run(fx, 60);
        check_one_leader(fx, 5);
        fx_free(fx);
    }
}

static void test_election_needs_majority(void **state)
{
    struct fx *fx = fx_new(5, 5, 3, NULL);
    fx_cut(fx, 1, 3);
    fx_cut(fx, 1, 4);
    fx_cut(fx, 1, 5);
    fx_campaign(fx, 1);
    assert_int_not_equal(raft_state(fx_raft(fx, 1)), RAFT_LEADER);
    fx_heal(fx);
    fx_run(fx, 60);
    check_one_leader(fx, 5);
    fx_free(fx);
}

static void test_single_node(void **state)
{
    struct fx *fx = fx_new(1, 1, 7, NULL);
    fx_run(fx, 30);
    assert_int_equal(fx_leader(fx), 1);
    uint64_t idx;
    assert_int_equal(fx_propose(fx, 1, "alone", &idx), 0);
    fx_stabilize(fx);
    assert_true(fx_applied(fx, 1, idx, "alone"));
    fx_free(fx);
}

/* Thesis §9.6: a partitioned member that keeps timing out does not raise
 * its term with pre-vote, so rejoining does not depose the leader. */
static void test_prevote_partitioned_node(void **state)
{
    struct fx *fx = fx_new(3, 3, 2, NULL);
    fx_elect(fx, 1);
    fx_isolate(fx, 3);
    fx_run(fx, 100);
    assert_int_equal(raft_term(fx_raft(fx, 3)), 1);
    assert_int_not_equal(raft_state(fx_raft(fx, 3)), RAFT_LEADER);
    fx_heal(fx);
    fx_run(fx, 20);
    assert_int_equal(fx_leader(fx), 1);
    assert_int_equal(raft_term(fx_raft(fx, 1)), 1);
    assert_int_equal(raft_leader(fx_raft(fx, 3)), 1);
    fx_free(fx);

    /* Without pre-vote the same partition bumps the term (the test can
     * tell the difference). */
    fx = fx_new(3, 3, 2, no_prevote);
    fx_elect(fx, 1);
    fx_isolate(fx, 3);
    fx_run(fx, 100);
    assert_true(raft_term(fx_raft(fx, 3)) > 1);
    fx_free(fx);
}

/* Thesis §6.2: a leader cut off from a quorum steps down within an
 * election timeout. */
static void test_check_quorum_step_down(void **state)
{
    struct fx *fx = fx_new(3, 3, 4, NULL);
    fx_elect(fx, 1);
    fx_isolate(fx, 1);
    unsigned et = fx_node(fx, 1)->opt.election_tick;
    for (unsigned i = 0; i < 2 * et; i++) {
        fx_tick(fx, 1);
        fx_stabilize(fx);
    }
    assert_int_equal(raft_state(fx_raft(fx, 1)), RAFT_FOLLOWER);
    assert_int_equal(raft_leader(fx_raft(fx, 1)), 0);
    /* The others elect a new leader among themselves. */
    fx_run(fx, 60);
    uint64_t lead = fx_leader(fx);
    assert_true(lead == 2 || lead == 3);
    fx_free(fx);
}

/* In-lease followers ignore a candidate that is not sent by the leader. */
static void test_vote_ignored_in_lease(void **state)
{
    struct fx *fx = fx_new(3, 3, 5, NULL);
    fx_elect(fx, 1);
    struct raft *r2 = fx_raft(fx, 2);
    struct raft_message m = {
        .type = RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 9, .index = 100, .log_term = 9};
    assert_int_equal(raft_step(r2, &m), 0);
    assert_int_equal(raft_term(r2), 1);
    assert_int_equal(raft_leader(r2), 1);
    fx_free(fx);
}

/* --- terms ---------------------------------------------------------------- */

static void test_term_bumps(void **state)
{
    struct fx *fx = fx_new(3, 3, 6, NULL);
    fx_elect(fx, 1);
    struct raft *r1 = fx_raft(fx, 1);
    /* A response carrying a higher term deposes the leader (§3.3). */
    struct raft_message m = {
        .type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 7, .index = 1};
    assert_int_equal(raft_step(r1, &m), 0);
    assert_int_equal(raft_state(r1), RAFT_FOLLOWER);
    assert_int_equal(raft_term(r1), 7);
    assert_int_equal(raft_leader(r1), 0);
    struct raft_ready *rd;
    assert_int_equal(raft_ready(r1, &rd), 0);
    assert_true(rd->has_hard_state);
    assert_int_equal(rd->hard_state.term, 7);
    assert_int_equal(rd->hard_state.vote, 0);
    assert_true(rd->soft_state_changed);
    assert_int_equal(raft_advance(r1, rd), 0);
    raft_ready_free(rd);
    /* Messages of older terms are ignored. */
    struct raft_message old = {.type = RAFT_MSG_HEARTBEAT, .from = 3, .to = 1, .term = 2};
    assert_int_equal(raft_step(r1, &old), 0);
    assert_int_equal(raft_term(r1), 7);
    assert_int_equal(raft_leader(r1), 0);
    /* A heartbeat of a newer term names the leader. */
    struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 3, .to = 1, .term = 8};
    assert_int_equal(raft_step(r1, &hb), 0);
    assert_int_equal(raft_term(r1), 8);
    assert_int_equal(raft_leader(r1), 3);
    fx_free(fx);
}

static void test_not_leader_names_leader(void **state)
{
    struct fx *fx = fx_new(3, 3, 7, NULL);
    fx_elect(fx, 2);
    uint64_t idx;
    assert_int_equal(fx_propose(fx, 1, "x", &idx), SWM_ENOTLEADER);
    assert_int_equal(raft_leader(fx_raft(fx, 1)), 2);
    assert_int_equal(raft_read_index(fx_raft(fx, 3), 1), SWM_ENOTLEADER);
    assert_int_equal(raft_transfer_leadership(fx_raft(fx, 3), 1), SWM_ENOTLEADER);
    fx_free(fx);
}

/* --- commit rule ----------------------------------------------------------- */

/* Thesis §3.6.2, Figure 3.7 ("Figure 8"): a leader does not commit an entry
 * of an earlier term by counting replicas; it commits it only with an entry
 * of its own term. etcd's TestLeaderOnlyCommitsLogFromCurrentTerm. */
static void test_figure8_commit_rule(void **state)
{
    /* S1's log: index 1 (term 1), index 2 (term 2), left over from an
     * earlier leadership; nothing committed beyond 1. Now in term 3. */
    struct raft_entry es[] = {
        {.index = 1, .term = 1, .type = RAFT_ENTRY_NORMAL, .data = "a", .len = 1},
        {.index = 2, .term = 2, .type = RAFT_ENTRY_NORMAL, .data = "b", .len = 1},
    };
    struct raft *r = solo_new(1, 5, es, 2, (struct raft_hard_state){.term = 3, .commit = 1});
    struct raft_message tn = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 2, .term = 3};
    solo_step(r, tn); /* campaign in term 4 */
    assert_int_equal(raft_state(r), RAFT_CANDIDATE);
    solo_drain(r); /* own vote durable */
    for (uint64_t p = 2; p <= 3; p++)
        solo_step(r, (struct raft_message){.type = RAFT_MSG_VOTE_RESP, .from = p, .term = 4});
    assert_int_equal(raft_state(r), RAFT_LEADER);
    assert_int_equal(raft_last_index(r), 3); /* the no-op of term 4 */
    solo_drain(r);
    /* A majority (S1, S2, S3) now holds index 2 of term 2: not committed. */
    for (uint64_t p = 2; p <= 3; p++)
        solo_step(r, (struct raft_message){
                         .type = RAFT_MSG_APPEND_RESP, .from = p, .term = 4, .index = 2});
    solo_drain(r);
    assert_int_equal(raft_commit_index(r), 1);
    /* Once the term-4 entry is on a majority, it and index 2 commit. */
    solo_step(
        r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP, .from = 2, .term = 4, .index = 3});
    solo_drain(r);
    assert_int_equal(raft_commit_index(r), 1);
    solo_step(
        r, (struct raft_message){.type = RAFT_MSG_APPEND_RESP, .from = 3, .term = 4, .index = 3});
    assert_int_equal(raft_commit_index(r), 3);
    raft_free(r);
}

/* The same scenario in a cluster: S1 replicates index 2 (term 2) to S2 and
 * crashes; S5 wins term 3 and writes its own index 2; S1 returns and is
 * elected in term 4; it must not commit its index 2 before a term-4 entry
 * is on a majority, and once it does, S5's entry can never come back. */
static void test_figure8_cluster(void **state)
{
    struct fx *fx = fx_new(5, 5, 8, NULL);
    fx_elect(fx, 1); /* term 1, no-op at 1 committed everywhere */
    fx_crash(fx, 1);
    fx_restart(fx, 1);
    fx_elect(fx, 1); /* term 2, no-op at 2 */
    fx_isolate(fx, 1);
    fx->cut[1][2] = fx->cut[2][1] = false; /* S1 reaches only S2 */
    uint64_t idx;
    assert_int_equal(fx_propose(fx, 1, "from-s1", &idx), 0);
    fx_stabilize(fx);
    assert_false(fx_applied(fx, 1, idx, "from-s1"));
    fx_crash(fx, 1);
    /* S5 elected with S3, S4 (term 3); S2 cannot hear it. */
    fx_heal(fx);
    fx_isolate(fx, 2);
    fx_isolate(fx, 5);
    fx->cut[5][3] = fx->cut[3][5] = fx->cut[5][4] = fx->cut[4][5] = false;
    struct raft *r5 = fx_raft(fx, 5);
    struct raft_message tn = {
        .type = RAFT_MSG_TIMEOUT_NOW, .from = 3, .to = 5, .term = raft_term(r5)};
    assert_int_equal(raft_step(r5, &tn), 0);
    for (int guard = 0; raft_state(r5) != RAFT_LEADER; guard++) {
        assert_true(guard < 1000);
        fx_process(fx);
        assert_true(fx_deliver_one(fx));
    }
    /* S5 won, but its term-3 no-op at S1's index reaches nobody. */
    fx_drop_queue(fx);
    assert_int_equal(raft_state(fx_raft(fx, 5)), RAFT_LEADER);
    assert_int_equal(raft_term(fx_raft(fx, 5)), 3);
    fx_process(fx);
    fx_drop_queue(fx);
    assert_int_equal(raft_log_term(fx_raft(fx, 5), idx), 3);
    fx_crash(fx, 5);
    /* S1 restarts and wins term 4 with S2 and S3. */
    fx_heal(fx);
    fx_restart(fx, 1);
    fx_isolate(fx, 4);
    fx_elect(fx, 1);
    fx_stabilize(fx);
    /* Now from-s1 is committed together with S1's term-4 no-op. */
    assert_true(fx_applied(fx, 1, idx, "from-s1"));
    assert_true(fx_applied(fx, 3, idx, "from-s1"));
    /* S5 comes back: its entry is overwritten, never applied. */
    fx_heal(fx);
    fx_restart(fx, 5);
    fx_run(fx, 5);
    for (uint64_t id = 1; id <= 5; id++)
        assert_true(fx_applied(fx, id, idx, "from-s1"));
    fx_check_log_matching(fx);
    fx_free(fx);
}

/* A leader cut off from the majority accepts proposals that never commit;
 * the new leader's entries win (§3.6). */
static void test_stale_leader(void **state)
{
    struct fx *fx = fx_new(5, 5, 9, no_prevote);
    fx_elect(fx, 1);
    fx_isolate(fx, 1);
    uint64_t stale;
    assert_int_equal(fx_propose(fx, 1, "stale", &stale), 0);
    fx_stabilize(fx);
    fx_elect(fx, 2);
    uint64_t fresh;
    assert_int_equal(fx_propose(fx, 2, "fresh", &fresh), 0);
    fx_stabilize(fx);
    assert_int_equal(fresh, stale + 1); /* 2's no-op took stale's index */
    assert_true(fx_applied(fx, 3, fresh, "fresh"));
    assert_int_equal(raft_state(fx_raft(fx, 1)), RAFT_LEADER); /* still thinks so */
    fx_heal(fx);
    fx_run(fx, 5);
    assert_int_equal(raft_state(fx_raft(fx, 1)), RAFT_FOLLOWER);
    for (uint64_t id = 1; id <= 5; id++) {
        assert_null(fx_applied_at(fx, id, stale));
        assert_true(fx_applied(fx, id, fresh, "fresh"));
    }
    fx_check_log_matching(fx);
    fx_free(fx);
}

/* --- replication ----------------------------------------------------------- */

/* A follower holding a long conflicting suffix is truncated and repaired;
 * the reject hint skips a whole term per round trip (thesis §5.4.2). */
static void test_conflict_fast_backoff(void **state)
{
    struct fx *fx = fx_new(3, 3, 10, NULL);
    fx_elect(fx, 1);
    fx_isolate(fx, 1);
    for (int i = 0; i < 40; i++)
        assert_int_equal(fx_propose(fx, 1, "doomed", NULL), 0);
    fx_stabilize(fx);
    fx_elect(fx, 2);
    char buf[32];
    for (int i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "kept-%d", i);
        assert_int_equal(fx_propose(fx, 2, buf, NULL), 0);
    }
    fx_stabilize(fx);
    uint64_t rejects = fx->append_rejects;
    fx_heal(fx);
    fx_run(fx, 3);
    assert_int_equal(raft_state(fx_raft(fx, 1)), RAFT_FOLLOWER);
    assert_int_equal(raft_last_index(fx_raft(fx, 1)), raft_last_index(fx_raft(fx, 2)));
    assert_int_equal(raft_commit_index(fx_raft(fx, 1)), raft_commit_index(fx_raft(fx, 2)));
    /* One entry at a time would take ~40 rejections. */
    assert_true(fx->append_rejects - rejects <= 3);
    for (uint64_t i = 1; i <= raft_last_index(fx_raft(fx, 1)); i++) {
        const struct fx_record *rec = fx_applied_at(fx, 1, i);
        if (rec != NULL)
            assert_string_not_equal(rec->data, "doomed");
    }
    fx_check_log_matching(fx);
    fx_free(fx);
}

static void small_msgs(struct raft_options *o)
{
    o->max_size_per_msg = 16;
    o->max_inflight_msgs = 4;
}

/* Many proposals through a lossy, reordering, duplicating network: after
 * healing every log matches and every node applied the same. */
static void test_log_matching_random_drops(void **state)
{
    struct fx *fx = fx_new(5, 5, 11, small_msgs);
    fx_elect(fx, 1);
    fx->drop_pct = 25;
    fx->dup_pct = 5;
    fx->reorder = true;
    char buf[32];
    int n = 0;
    for (int round = 0; round < 60; round++) {
        uint64_t lead = fx_leader(fx);
        if (lead != 0)
            for (int i = 0; i < 3; i++) {
                snprintf(buf, sizeof(buf), "v%d", n++);
                fx_propose(fx, lead, buf, NULL);
            }
        fx_tick(fx, 0);
        fx_stabilize(fx);
    }
    fx->drop_pct = fx->dup_pct = 0;
    fx->reorder = false;
    fx_run(fx, 30);
    uint64_t lead = fx_leader(fx);
    assert_true(lead != 0);
    uint64_t commit = raft_commit_index(fx_raft(fx, lead));
    assert_true(commit > 20);
    for (uint64_t id = 1; id <= 5; id++) {
        assert_int_equal(raft_commit_index(fx_raft(fx, id)), commit);
        assert_int_equal(fx_node(fx, id)->n_sm, fx_node(fx, lead)->n_sm);
    }
    fx_check_log_matching(fx);
    fx_free(fx);
}

/* Pipelining: in replicate state the leader keeps up to max_inflight_msgs
 * appends in flight, not one per round trip. */
static void test_pipelining_window(void **state)
{
    struct fx *fx = fx_new(3, 3, 12, small_msgs);
    fx_elect(fx, 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(fx_propose(fx, 1, "0123456789abcdef", NULL), 0);
    struct raft_ready *rd;
    assert_int_equal(raft_ready(fx_raft(fx, 1), &rd), 0);
    size_t to2 = 0;
    for (size_t i = 0; i < rd->n_messages; i++)
        if (rd->messages[i].type == RAFT_MSG_APPEND && rd->messages[i].to == 2) {
            to2++;
            assert_int_equal(rd->messages[i].n_entries, 1); /* size-bounded */
        }
    assert_int_equal(to2, 4); /* the window */
    /* Proposals are batched: one ready carries all 20 to persist. */
    assert_int_equal(rd->n_entries, 20);
    assert_int_equal(raft_advance(fx_raft(fx, 1), rd), 0);
    raft_ready_free(rd); /* its messages are lost: heartbeats recover */
    fx_run(fx, 3);
    assert_int_equal(raft_commit_index(fx_raft(fx, 2)), 21);
    fx_free(fx);
}

/* --- snapshots -------------------------------------------------------------- */

static void snap_opts(struct raft_options *o)
{
    o->snapshot_threshold = 20;
    o->snapshot_trailing = 5;
    o->snapshot_chunk_size = 100;
}

static void test_snapshot_install(void **state)
{
    struct fx *fx = fx_new(3, 3, 13, snap_opts);
    fx->auto_snapshot = true;
    fx->snapshot_pad = 1000;
    fx_elect(fx, 1);
    fx_isolate(fx, 3);
    char buf[32];
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof(buf), "entry-%d", i);
        assert_int_equal(fx_propose(fx, 1, buf, NULL), 0);
        fx_stabilize(fx);
    }
    struct fx_node *n1 = fx_node(fx, 1), *n3 = fx_node(fx, 3);
    assert_true(n1->snapshot_requests >= 4);
    assert_true(n1->snap.index >= 80);
    /* Compaction kept only the trailing window. */
    assert_true(n1->log[0].index > 50);
    assert_true(n1->snap_len > 1000);
    uint64_t chunks = fx->sent_before[RAFT_MSG_SNAPSHOT];
    fx_heal(fx);
    fx_run(fx, 5);
    /* Streamed in chunks of at most 100 bytes, installed once. */
    assert_true(fx->sent_before[RAFT_MSG_SNAPSHOT] - chunks >= n1->snap_len / 100);
    assert_int_equal(n3->installs, 1);
    assert_int_equal(raft_commit_index(fx_raft(fx, 3)), raft_commit_index(fx_raft(fx, 1)));
    assert_int_equal(n3->n_sm, n1->n_sm);
    for (size_t i = 0; i < n1->n_sm; i++)
        assert_string_equal(n3->sm[i].data, n1->sm[i].data);
    /* It keeps replicating normally afterwards. */
    uint64_t idx;
    assert_int_equal(fx_propose(fx, 1, "after", &idx), 0);
    fx_stabilize(fx);
    assert_true(fx_applied(fx, 3, idx, "after"));
    fx_check_log_matching(fx);
    fx_free(fx);
}

/* Chunks lost, duplicated and reordered, and a leader change in the middle
 * of the stream: the follower still ends up with the right state. */
static void test_snapshot_lossy_stream(void **state)
{
    struct fx *fx = fx_new(3, 3, 14, snap_opts);
    fx->auto_snapshot = true;
    fx->snapshot_pad = 3000;
    fx_elect(fx, 1);
    fx_isolate(fx, 3);
    for (int i = 0; i < 60; i++) {
        assert_int_equal(fx_propose(fx, 1, "s", NULL), 0);
        fx_stabilize(fx);
    }
    /* Let node 2 take its own snapshot too, so either can stream. */
    fx_heal(fx);
    fx->drop_pct = 30;
    fx->dup_pct = 10;
    fx->reorder = true;
    for (int i = 0; i < 6; i++) {
        fx_tick(fx, 0);
        fx_stabilize(fx);
    }
    fx_campaign(fx, 2);
    fx_run(fx, 40);
    fx->drop_pct = fx->dup_pct = 0;
    fx->reorder = false;
    fx_run(fx, 10);
    struct fx_node *n3 = fx_node(fx, 3);
    assert_true(n3->installs >= 1);
    uint64_t lead = fx_leader(fx);
    assert_int_equal(raft_commit_index(fx_raft(fx, 3)), raft_commit_index(fx_raft(fx, lead)));
    assert_int_equal(n3->n_sm, fx_node(fx, lead)->n_sm);
    fx_free(fx);
}

/* A chunk stream out of order is refused until it restarts from 0. */
static void test_snapshot_chunk_reassembly(void **state)
{
    struct raft *r = solo_new(2, 3, NULL, 0, (struct raft_hard_state){.term = 1});
    struct raft_server servers[] = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {3, RAFT_VOTER}};
    struct raft_message c = {
        .type = RAFT_MSG_SNAPSHOT, .from = 1, .term = 2, .snapshot = {.index = 50, .term = 2}};
    /* Offset 4 first: nothing to append it to. */
    c.snap_offset = 4;
    c.data = "efgh";
    c.len = 4;
    solo_step(r, c);
    struct raft_ready *rd = solo_ready(r);
    const struct raft_message *resp =
        find_msg(rd->messages, rd->n_messages, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_non_null(resp);
    assert_true(resp->reject);
    assert_int_equal(resp->snap_offset, 0);
    raft_ready_free(rd);
    c.snap_offset = 0;
    c.data = "abcd";
    solo_step(r, c);
    rd = solo_ready(r);
    resp = find_msg(rd->messages, rd->n_messages, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_non_null(resp);
    assert_false(resp->reject);
    assert_int_equal(resp->snap_offset, 4);
    raft_ready_free(rd);
    c.snap_offset = 4;
    c.data = "efgh";
    c.done = true;
    c.snapshot.conf.servers = servers;
    c.snapshot.conf.n_servers = 3;
    solo_step(r, c);
    rd = solo_ready(r);
    assert_true(rd->has_snapshot);
    assert_int_equal(rd->snapshot.index, 50);
    assert_int_equal(rd->snapshot_len, 8);
    assert_memory_equal(rd->snapshot_data, "abcdefgh", 8);
    assert_int_equal(rd->snapshot.conf.n_servers, 3);
    /* The install ack waits for the snapshot to be durable. */
    assert_null(find_msg(rd->messages, rd->n_messages, RAFT_MSG_APPEND_RESP, 1));
    resp =
        find_msg(rd->messages_after_persist, rd->n_messages_after_persist, RAFT_MSG_APPEND_RESP, 1);
    assert_non_null(resp);
    assert_int_equal(resp->index, 50);
    raft_ready_free(rd);
    assert_int_equal(raft_commit_index(r), 50);
    assert_int_equal(raft_applied_index(r), 50);
    assert_int_equal(raft_last_index(r), 50);
    raft_free(r);
}

/* --- membership ------------------------------------------------------------- */

static void test_membership_learner_promote_remove(void **state)
{
    struct fx *fx = fx_new(4, 3, 15, NULL);
    fx_elect(fx, 1);
    struct raft *r1 = fx_raft(fx, 1);
    uint64_t idx;
    /* Node 4 is not a member: it never campaigns. */
    fx_run(fx, 40);
    assert_int_equal(raft_state(fx_raft(fx, 4)), RAFT_FOLLOWER);
    assert_int_equal(raft_term(fx_raft(fx, 4)), 0);

    assert_int_equal(raft_propose_conf_change(r1, RAFT_CC_ADD_LEARNER, 4, &idx), 0);
    /* One change at a time. */
    assert_int_equal(raft_propose_conf_change(r1, RAFT_CC_ADD_LEARNER, 5, &idx), SWM_EINUSE);
    /* Effective on the leader at once, before commit (§4.1). */
    const struct raft_server *s = raft_configuration_get(raft_configuration_current(r1), 4);
    assert_non_null(s);
    assert_int_equal(s->role, RAFT_LEARNER);
    fx_stabilize(fx);
    for (int i = 0; i < 5; i++)
        assert_int_equal(fx_propose(fx, 1, "with-learner", NULL), 0);
    fx_stabilize(fx);
    uint64_t match;
    assert_int_equal(raft_progress_match(r1, 4, &match), 0);
    assert_int_equal(match, raft_last_index(r1));
    assert_int_equal(fx_node(fx, 4)->n_sm, 5);
    /* A learner does not campaign, even cut off. */
    fx_isolate(fx, 4);
    fx_run(fx, 40);
    assert_int_equal(raft_state(fx_raft(fx, 4)), RAFT_FOLLOWER);
    fx_heal(fx);
    fx_run(fx, 2);

    assert_int_equal(raft_propose_conf_change(r1, RAFT_CC_PROMOTE, 4, &idx), 0);
    fx_stabilize(fx);
    assert_int_equal(raft_configuration_voters(raft_configuration_current(fx_raft(fx, 4))), 4);
    /* With 4 voters, a quorum is 3: 1 and 4 alone cannot commit. */
    fx_cut(fx, 1, 2);
    fx_cut(fx, 1, 3);
    assert_int_equal(fx_propose(fx, 1, "two-of-four", &idx), 0);
    fx_stabilize(fx);
    assert_null(fx_applied_at(fx, 1, idx));
    fx_heal(fx);
    fx_run(fx, 2);
    assert_true(fx_applied(fx, 4, idx, "two-of-four"));

    assert_int_equal(raft_propose_conf_change(r1, RAFT_CC_REMOVE, 2, &idx), 0);
    fx_stabilize(fx);
    const struct raft_configuration *c = raft_configuration_current(r1);
    assert_null(raft_configuration_get(c, 2));
    assert_true(raft_configuration_is_removed(c, 2));
    assert_int_equal(raft_configuration_voters(c), 3);
    /* The removed member hears no more heartbeats and times out, but its
     * pre-votes are ignored: it cannot disrupt (thesis §4.2.3). */
    uint64_t term = raft_term(r1);
    fx_run(fx, 40);
    assert_int_equal(fx_leader(fx), 1);
    assert_int_equal(raft_term(r1), term);
    assert_int_equal(raft_term(fx_raft(fx, 2)), term);
    /* Ids are never reused. */
    assert_int_equal(raft_propose_conf_change(r1, RAFT_CC_ADD_VOTER, 2, &idx), SWM_EEXISTS);
    assert_int_equal(raft_propose_conf_change(r1, RAFT_CC_ADD_LEARNER, 2, &idx), SWM_EEXISTS);
    assert_int_equal(raft_propose_conf_change(r1, RAFT_CC_REMOVE, 9, &idx), SWM_ENOTFOUND);
    assert_int_equal(raft_propose_conf_change(r1, RAFT_CC_PROMOTE, 3, &idx), -EINVAL);
    /* The cluster keeps committing without 2. */
    assert_int_equal(fx_propose(fx, 1, "after-removal", &idx), 0);
    fx_stabilize(fx);
    assert_true(fx_applied(fx, 3, idx, "after-removal"));
    assert_true(fx_applied(fx, 4, idx, "after-removal"));
    assert_null(fx_applied_at(fx, 2, idx));
    fx_free(fx);
}

static void test_removed_id_ignored(void **state)
{
    struct fx *fx = fx_new(3, 3, 16, NULL);
    fx_elect(fx, 1);
    uint64_t idx;
    assert_int_equal(raft_propose_conf_change(fx_raft(fx, 1), RAFT_CC_REMOVE, 3, &idx), 0);
    fx_stabilize(fx);
    struct raft *r2 = fx_raft(fx, 2);
    /* Even a term far ahead, outside any lease, from the removed id: ignored. */
    for (int i = 0; i < 20; i++)
        raft_tick(r2);
    struct raft_message m = {.type = RAFT_MSG_VOTE,
                             .from = 3,
                             .to = 2,
                             .term = 50,
                             .index = 1000,
                             .log_term = 49,
                             .context = RAFT_CAMPAIGN_TRANSFER};
    assert_int_equal(raft_step(r2, &m), 0);
    assert_int_equal(raft_term(r2), 1);
    struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 3, .to = 2, .term = 60};
    assert_int_equal(raft_step(r2, &hb), 0);
    assert_int_equal(raft_term(r2), 1);
    assert_int_not_equal(raft_leader(r2), 3);
    fx_free(fx);
}

/* A leader that removes itself keeps leading until the change commits,
 * then steps down (thesis §4.2.2). */
static void test_leader_removes_itself(void **state)
{
    struct fx *fx = fx_new(3, 3, 17, NULL);
    fx_elect(fx, 1);
    uint64_t idx;
    assert_int_equal(raft_propose_conf_change(fx_raft(fx, 1), RAFT_CC_REMOVE, 1, &idx), 0);
    assert_int_equal(raft_state(fx_raft(fx, 1)), RAFT_LEADER);
    fx_stabilize(fx);
    assert_int_equal(raft_state(fx_raft(fx, 1)), RAFT_FOLLOWER);
    fx_run(fx, 60);
    uint64_t lead = fx_leader(fx);
    assert_true(lead == 2 || lead == 3);
    assert_true(raft_commit_index(fx_raft(fx, 2)) > idx);
    assert_int_equal(raft_configuration_voters(raft_configuration_current(fx_raft(fx, 2))), 2);
    fx_free(fx);
}

/* --- leadership transfer ----------------------------------------------------- */

static void test_transfer_leadership(void **state)
{
    struct fx *fx = fx_new(3, 3, 18, NULL);
    fx_elect(fx, 1);
    /* Make 2 lag, then hand it leadership: the leader catches it up first. */
    fx_isolate(fx, 2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(fx_propose(fx, 1, "before", NULL), 0);
    fx_stabilize(fx);
    fx_heal(fx);
    assert_int_equal(raft_transfer_leadership(fx_raft(fx, 1), 1), -EINVAL);
    assert_int_equal(raft_transfer_leadership(fx_raft(fx, 1), 7), SWM_ENOTFOUND);
    assert_int_equal(raft_transfer_leadership(fx_raft(fx, 1), 2), 0);
    /* No proposals while leadership moves. */
    assert_int_equal(fx_propose(fx, 1, "during", NULL), SWM_ENOTLEADER);
    fx_stabilize(fx);
    assert_int_equal(fx_leader(fx), 2);
    assert_int_equal(raft_term(fx_raft(fx, 2)), 2);
    assert_int_equal(raft_leader(fx_raft(fx, 1)), 2);
    assert_int_equal(fx_node(fx, 2)->n_sm, 5);
    fx_free(fx);
}

static void test_transfer_times_out(void **state)
{
    struct fx *fx = fx_new(3, 3, 19, NULL);
    fx_elect(fx, 1);
    fx_isolate(fx, 3);
    assert_int_equal(raft_transfer_leadership(fx_raft(fx, 1), 3), 0);
    assert_int_equal(fx_propose(fx, 1, "x", NULL), SWM_ENOTLEADER);
    unsigned et = fx_node(fx, 1)->opt.election_tick;
    for (unsigned i = 0; i < et; i++) {
        fx_tick(fx, 1);
        fx_stabilize(fx);
    }
    assert_int_equal(fx_leader(fx), 1);
    assert_int_equal(fx_propose(fx, 1, "x", NULL), 0);
    fx_free(fx);
}

/* --- read index ----------------------------------------------------------------- */

static const struct raft_read_state *read_of(struct fx *fx, uint64_t id, uint64_t ctx)
{
    struct fx_node *nd = fx_node(fx, id);
    for (size_t i = 0; i < nd->n_reads; i++)
        if (nd->reads[i].ctx == ctx)
            return &nd->reads[i];
    return NULL;
}

static void test_read_index(void **state)
{
    struct fx *fx = fx_new(3, 3, 20, NULL);
    fx_elect(fx, 1);
    uint64_t idx;
    assert_int_equal(fx_propose(fx, 1, "w", &idx), 0);
    fx_stabilize(fx);
    struct raft *r1 = fx_raft(fx, 1);
    assert_int_equal(raft_read_index(r1, 42), 0);
    fx_process(fx);
    /* Not before a quorum confirmed the leadership. */
    assert_null(read_of(fx, 1, 42));
    assert_true(fx_queued(fx, RAFT_MSG_HEARTBEAT));
    fx_stabilize(fx);
    const struct raft_read_state *rs = read_of(fx, 1, 42);
    assert_non_null(rs);
    assert_int_equal(rs->status, 0);
    assert_int_equal(rs->index, idx);

    /* A deposed leader cannot confirm: the read fails once it steps down. */
    fx_isolate(fx, 1);
    assert_int_equal(raft_read_index(r1, 43), 0);
    fx_stabilize(fx);
    assert_null(read_of(fx, 1, 43));
    unsigned et = fx_node(fx, 1)->opt.election_tick;
    for (unsigned i = 0; i < 2 * et; i++) {
        fx_tick(fx, 1);
        fx_stabilize(fx);
    }
    rs = read_of(fx, 1, 43);
    assert_non_null(rs);
    assert_int_equal(rs->status, SWM_ENOTLEADER);
    fx_free(fx);
}

/* A new leader answers reads only after an entry of its term committed
 * (thesis §6.4): before that its commit index may be stale. */
static void test_read_index_waits_for_term_commit(void **state)
{
    struct fx *fx = fx_new(3, 3, 21, NULL);
    fx_elect(fx, 1);
    struct raft *r2 = fx_raft(fx, 2);
    struct raft_message tn = {
        .type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2, .term = raft_term(r2)};
    assert_int_equal(raft_step(r2, &tn), 0);
    for (int guard = 0; raft_state(r2) != RAFT_LEADER; guard++) {
        assert_true(guard < 1000);
        fx_process(fx);
        assert_true(fx_deliver_one(fx));
    }
    assert_true(raft_commit_index(r2) < raft_last_index(r2)); /* no-op not committed */
    assert_int_equal(raft_read_index(r2, 7), 0);
    fx_process(fx);
    assert_null(read_of(fx, 2, 7));
    fx_stabilize(fx);
    const struct raft_read_state *rs = read_of(fx, 2, 7);
    assert_non_null(rs);
    assert_int_equal(rs->status, 0);
    assert_int_equal(raft_log_term(r2, rs->index), raft_term(r2));
    fx_free(fx);
}

/* --- persistence ordering ----------------------------------------------------- */

/* Thesis §3.8: a vote and an append acknowledgement go out only after the
 * state they promise is durable. */
static void test_persist_before_send(void **state)
{
    struct raft *r = solo_new(2, 3, NULL, 0, (struct raft_hard_state){0});
    solo_step(r, (struct raft_message){.type = RAFT_MSG_VOTE, .from = 1, .term = 1});
    struct raft_ready *rd;
    assert_int_equal(raft_ready(r, &rd), 0);
    assert_true(rd->has_hard_state);
    assert_int_equal(rd->hard_state.term, 1);
    assert_int_equal(rd->hard_state.vote, 1);
    assert_null(find_msg(rd->messages, rd->n_messages, RAFT_MSG_VOTE_RESP, 0));
    const struct raft_message *v =
        find_msg(rd->messages_after_persist, rd->n_messages_after_persist, RAFT_MSG_VOTE_RESP, 1);
    assert_non_null(v);
    assert_false(v->reject);
    /* A second ready waits for this one. */
    struct raft_ready *rd2;
    assert_false(raft_has_ready(r));
    assert_int_equal(raft_ready(r, &rd2), SWM_EINUSE);
    assert_int_equal(raft_advance(r, rd), 0);
    raft_ready_free(rd);

    struct raft_entry e = {.index = 1, .term = 1, .type = RAFT_ENTRY_NORMAL, .data = "x", .len = 1};
    solo_step(r, (struct raft_message){.type = RAFT_MSG_APPEND,
                                       .from = 1,
                                       .term = 1,
                                       .entries = &e,
                                       .n_entries = 1,
                                       .commit = 0});
    assert_int_equal(raft_ready(r, &rd), 0);
    assert_int_equal(rd->n_entries, 1);
    assert_null(find_msg(rd->messages, rd->n_messages, RAFT_MSG_APPEND_RESP, 0));
    v = find_msg(rd->messages_after_persist, rd->n_messages_after_persist, RAFT_MSG_APPEND_RESP, 1);
    assert_non_null(v);
    assert_int_equal(v->index, 1);
    assert_int_equal(raft_advance(r, rd), 0);
    raft_ready_free(rd);
    raft_free(r);
}

/* A candidate counts its own vote only once it is durable: a single voter
 * does not become leader before advancing the ready with its vote. */
static void test_candidate_self_vote_after_persist(void **state)
{
    struct raft *r = solo_new(1, 1, NULL, 0, (struct raft_hard_state){0});
    for (int i = 0; i < 100 && raft_state(r) == RAFT_FOLLOWER; i++)
        assert_int_equal(raft_tick(r), 0);
    assert_int_equal(raft_state(r), RAFT_CANDIDATE); /* pre-vote won by itself */
    struct raft_ready *rd;
    assert_int_equal(raft_ready(r, &rd), 0);
    assert_int_equal(rd->hard_state.vote, 1);
    assert_int_equal(raft_state(r), RAFT_CANDIDATE);
    assert_int_equal(raft_advance(r, rd), 0);
    raft_ready_free(rd);
    assert_int_equal(raft_state(r), RAFT_LEADER);
    /* Likewise its no-op commits only once durable. */
    assert_int_equal(raft_commit_index(r), 0);
    solo_drain(r);
    assert_int_equal(raft_commit_index(r), 1);
    raft_free(r);
}

/* A crash after sending the pre-persist messages but before persisting
 * loses nothing that was promised. */
static void test_crash_mid_ready(void **state)
{
    struct fx *fx = fx_new(3, 3, 22, NULL);
    fx_elect(fx, 1);
    uint64_t idx;
    assert_int_equal(fx_propose(fx, 1, "maybe", &idx), 0);
    fx_crash_mid_ready(fx, 1); /* appends sent, own copy never written */
    fx_stabilize(fx);
    fx_restart(fx, 1);
    fx_run(fx, 40);
    /* Followers acked it after persisting: a majority holds it, so the next
     * leader commits it. */
    uint64_t lead = fx_leader(fx);
    assert_true(lead != 0);
    for (uint64_t id = 1; id <= 3; id++)
        assert_true(fx_applied(fx, id, idx, "maybe"));
    fx_check_log_matching(fx);
    fx_free(fx);
}

static void test_restart_from_disk(void **state)
{
    struct fx *fx = fx_new(3, 3, 23, snap_opts);
    fx->auto_snapshot = true;
    fx_elect(fx, 1);
    for (int i = 0; i < 50; i++)
        assert_int_equal(fx_propose(fx, 1, "d", NULL), 0);
    fx_stabilize(fx);
    for (uint64_t id = 1; id <= 3; id++)
        fx_crash(fx, id);
    for (uint64_t id = 1; id <= 3; id++)
        fx_restart(fx, id);
    fx_run(fx, 60);
    uint64_t lead = fx_leader(fx);
    assert_true(lead != 0);
    uint64_t idx;
    assert_int_equal(fx_propose(fx, lead, "after-restart", &idx), 0);
    fx_stabilize(fx);
    for (uint64_t id = 1; id <= 3; id++) {
        assert_true(fx_applied(fx, id, idx, "after-restart"));
        assert_int_equal(fx_node(fx, id)->n_sm, 51);
    }
    fx_free(fx);
}

static void test_new_rejects_bad_state(void **state)
{
    struct raft_options o;
    raft_options_init(&o, 1, 1);
    struct raft *r;
    struct swm_err err = {0};
    struct raft_entry gap[] = {{.index = 1, .term = 1, .type = RAFT_ENTRY_NORMAL},
                               {.index = 3, .term = 1, .type = RAFT_ENTRY_NORMAL}};
    struct raft_init_state in = {.hard_state = {.term = 1}, .entries = gap, .n_entries = 2};
    assert_int_equal(raft_new(&o, &in, &r, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "gap"));
    in.n_entries = 1;
    in.hard_state.commit = 5;
    assert_int_equal(raft_new(&o, &in, &r, &err), -EINVAL);
    in.hard_state.commit = 0;
    o.id = 0;
    assert_int_equal(raft_new(&o, &in, &r, &err), -EINVAL);
    o.id = 1;
    o.heartbeat_tick = o.election_tick;
    assert_int_equal(raft_new(&o, &in, &r, &err), -EINVAL);
}

/* Every allocation failing in turn: inputs report -ENOMEM, nothing leaks
 * or crashes (ASan), and the cluster still elects. */
static void test_oom_ready(void **state)
{
    for (long n = 0; n < 60; n++) {
        struct raft *r = solo_new(1, 1, NULL, 0, (struct raft_hard_state){0});
        swm_alloc_fail_after(n);
        for (int i = 0; i < 40; i++) {
            raft_tick(r);
            struct raft_ready *rd;
            if (raft_has_ready(r) && raft_ready(r, &rd) == 0) {
                raft_advance(r, rd);
                raft_ready_free(rd);
            }
        }
        swm_alloc_fail_reset();
        raft_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_election_3),
        cmocka_unit_test(test_election_5_by_timeout),
        cmocka_unit_test(test_election_needs_majority),
        cmocka_unit_test(test_single_node),
        cmocka_unit_test(test_prevote_partitioned_node),
        cmocka_unit_test(test_check_quorum_step_down),
        cmocka_unit_test(test_vote_ignored_in_lease),
        cmocka_unit_test(test_term_bumps),
        cmocka_unit_test(test_not_leader_names_leader),
        cmocka_unit_test(test_figure8_commit_rule),
        cmocka_unit_test(test_figure8_cluster),
        cmocka_unit_test(test_stale_leader),
        cmocka_unit_test(test_conflict_fast_backoff),
        cmocka_unit_test(test_log_matching_random_drops),
        cmocka_unit_test(test_pipelining_window),
        cmocka_unit_test(test_snapshot_install),
        cmocka_unit_test(test_snapshot_lossy_stream),
        cmocka_unit_test(test_snapshot_chunk_reassembly),
        cmocka_unit_test(test_membership_learner_promote_remove),
        cmocka_unit_test(test_removed_id_ignored),
        cmocka_unit_test(test_leader_removes_itself),
        cmocka_unit_test(test_transfer_leadership),
        cmocka_unit_test(test_transfer_times_out),
        cmocka_unit_test(test_read_index),
        cmocka_unit_test(test_read_index_waits_for_term_commit),
        cmocka_unit_test(test_persist_before_send),
        cmocka_unit_test(test_candidate_self_vote_after_persist),
        cmocka_unit_test(test_crash_mid_ready),
        cmocka_unit_test(test_restart_from_disk),
        cmocka_unit_test(test_new_rejects_bad_state),
        cmocka_unit_test(test_oom_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
