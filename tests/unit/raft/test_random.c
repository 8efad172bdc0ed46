/* Randomized rounds of the raft core under drops, duplicates, reordering,
 * partitions, crashes (also between sending and persisting), restarts,
 * snapshots and membership changes. The fixture checks after every ready:
 * election safety, state-machine safety, leader completeness, commit
 * monotonicity and persist-before-send; each round ends by healing and
 * checking log matching and convergence.
 *
 * SWARMC_RAFT_SEED=<first seed> SWARMC_RAFT_SEEDS=<count> replay or extend
 * the sweep; a failure prints its seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static uint64_t current_seed;
static bool running;

static void opts(struct raft_options *o)
{
    o->snapshot_threshold = 30;
    o->snapshot_trailing = 10;
    o->snapshot_chunk_size = 64;
    o->max_size_per_msg = 64;
    o->max_inflight_msgs = 8;
}

static size_t down_count(struct fx *fx)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->n; i++)
        n += fx->nodes[i].r == NULL;
    return n;
}

static void membership_step(struct fx *fx, uint64_t lead)
{
    /* Node 5 joins as a learner, is promoted, and sometimes node 4 leaves
     * (it never comes back: ids are not reused). */
    struct raft *r = fx_raft(fx, lead);
    const struct raft_configuration *c = raft_configuration_current(r);
    const struct raft_server *s5 = raft_configuration_get(c, 5);
    uint64_t idx;
    if (s5 == NULL && !raft_configuration_is_removed(c, 5))
        raft_propose_conf_change(r, RAFT_CC_ADD_LEARNER, 5, &idx);
    else if (s5 != NULL && s5->role == RAFT_LEARNER)
        raft_propose_conf_change(r, RAFT_CC_PROMOTE, 5, &idx);
    else if (raft_configuration_get(c, 4) != NULL && lead != 4 && fx_rand(fx) % 2)
        raft_propose_conf_change(r, RAFT_CC_REMOVE, 4, &idx);
}

static void run_round(uint64_t seed)
{
    struct fx *fx = fx_new(5, 4, seed, opts);
    fx->auto_snapshot = true;
    fx->snapshot_pad = 150;
    fx->reorder = true;
    unsigned proposals = 0;
    char buf[48];
    for (int step = 0; step < 400; step++) {
        uint64_t roll = fx_rand(fx) % 100;
        uint64_t lead = fx_leader(fx);
        if (roll < 35) {
            fx_tick(fx, 0);
        } else if (roll < 55) {
            if (lead != 0) {
                int n = 1 + (int)(fx_rand(fx) % 3);
                for (int i = 0; i < n; i++) {
                    snprintf(buf, sizeof(buf), "s%llu-p%u", (unsigned long long)seed, proposals++);
                    fx_propose(fx, lead, buf, NULL);
                }
            }
        } else if (roll < 85) {
            int n = 1 + (int)(fx_rand(fx) % 30);
            for (int i = 0; i < n && fx_deliver_one(fx); i++)
                fx_process(fx);
        } else if (roll < 88) {
            fx_heal(fx);
            for (uint64_t a = 1; a <= fx->n; a++)
                for (uint64_t b = a + 1; b <= fx->n; b++)
                    if (fx_rand(fx) % 3 == 0)
                        fx_cut(fx, a, b);
        } else if (roll < 91) {
            fx_heal(fx);
        } else if (roll < 94) {
            uint64_t id = 1 + fx_rand(fx) % fx->n;
            if (fx_node(fx, id)->r != NULL && down_count(fx) < 2) {
                if (fx_rand(fx) % 2)
                    fx_crash_mid_ready(fx, id);
                else
                    fx_crash(fx, id);
            }
        } else if (roll < 97) {
            for (uint64_t id = 1; id <= fx->n; id++)
                if (fx_node(fx, id)->r == NULL) {
                    fx_restart(fx, id);
                    break;
                }
        } else if (roll < 98) {
            if (lead != 0)
                membership_step(fx, lead);
        } else {
            fx->drop_pct = (unsigned)(fx_rand(fx) % 25);
            fx->dup_pct = (unsigned)(fx_rand(fx) % 6);
        }
    }
    /* Heal everything and let it converge. */
    fx_heal(fx);
    fx->drop_pct = fx->dup_pct = 0;
    for (uint64_t id = 1; id <= fx->n; id++)
        if (fx_node(fx, id)->r == NULL)
            fx_restart(fx, id);
    fx_run(fx, 80);
    uint64_t lead = fx_leader(fx);
    if (lead == 0)
        fail_msg("seed %llu: no leader after healing", (unsigned long long)seed);
    /* One more entry commits on every member of the configuration. */
    uint64_t idx;
    snprintf(buf, sizeof(buf), "s%llu-final", (unsigned long long)seed);
    if (fx_propose(fx, lead, buf, &idx) == 0) {
        fx_run(fx, 10);
        const struct raft_configuration *c = raft_configuration_current(fx_raft(fx, lead));
        for (size_t i = 0; i < c->n_servers; i++)
            if (!fx_applied(fx, c->servers[i].id, idx, buf)) {
                for (uint64_t id = 1; id <= fx->n; id++) {
                    struct raft *q = fx_raft(fx, id);
                    uint64_t match = 0;
                    raft_progress_match(fx_raft(fx, lead), id, &match);
                    print_error(
                        "node %llu: %s term %llu lead %llu commit %llu last %llu "
                        "applied %llu snap %llu match %llu\n",
                        (unsigned long long)id, raft_state_name(raft_state(q)),
                        (unsigned long long)raft_term(q), (unsigned long long)raft_leader(q),
                        (unsigned long long)raft_commit_index(q),
                        (unsigned long long)raft_last_index(q),
                        (unsigned long long)fx_node(fx, id)->applied,
                        (unsigned long long)fx_node(fx, id)->snap.index, (unsigned long long)match);
                }
                fail_msg("seed %llu: member %llu did not apply the final entry",
                         (unsigned long long)seed, (unsigned long long)c->servers[i].id);
            }
    }
    fx_check_log_matching(fx);
    if (getenv("SWARMC_RAFT_VERBOSE") != NULL) {
        uint64_t installs = 0, terms = 0;
        for (size_t i = 0; i < fx->n; i++)
            installs += fx->nodes[i].installs;
        for (size_t t = 0; t < fx->n_terms; t++)
            terms += fx->leader_of_term[t] != 0;
        print_message("seed %llu: commit %llu, %llu leaders, %llu installs, %llu delivered, "
                      "%u proposals, %zu voters\n",
                      (unsigned long long)seed,
                      (unsigned long long)raft_commit_index(fx_raft(fx, lead)),
                      (unsigned long long)terms, (unsigned long long)installs,
                      (unsigned long long)fx->delivered, proposals,
                      raft_configuration_voters(raft_configuration_current(fx_raft(fx, lead))));
    }
    fx_free(fx);
}

static void test_random_rounds(void **state)
{
    const char *first = getenv("SWARMC_RAFT_SEED");
    const char *count = getenv("SWARMC_RAFT_SEEDS");
    uint64_t seed0 = first ? strtoull(first, NULL, 10) : 1;
    uint64_t n = count ? strtoull(count, NULL, 10) : 60;
    for (uint64_t s = seed0; s < seed0 + n; s++) {
        current_seed = s;
        running = true;
        run_round(s);
        running = false;
    }
    print_message("raft random: %llu seeds from %llu passed\n", (unsigned long long)n,
                  (unsigned long long)seed0);
}

static int teardown(void **state)
{
    if (running)
        print_error("raft random: FAILED at seed %llu (replay: SWARMC_RAFT_SEED=%llu "
                    "SWARMC_RAFT_SEEDS=1)\n",
                    (unsigned long long)current_seed, (unsigned long long)current_seed);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_random_rounds, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
