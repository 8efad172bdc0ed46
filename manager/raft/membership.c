/* Membership changes on the raft node (Raft thesis §4): one at a time, each
 * a single-server configuration entry. A new voter joins as a learner
 * first and is promoted only once it has caught up (§4.2.1), so adding a
 * member never leaves the cluster waiting on a log that is far behind. */
#include <errno.h>
#include <inttypes.h>

#include "common/alloc.h"
#include "common/log.h"
#include "manager/raft/node_internal.h"

/* A learner counts as caught up within this many entries of the leader. */
#define CATCH_UP_WINDOW 100
/* Ticks a learner may take to catch up (at 50 ms: one minute). */
#define CATCH_UP_TICKS 1200

enum change_step { STEP_ADDING, STEP_CATCHING_UP, STEP_PROMOTING, STEP_REMOVING };

struct member_change {
    enum change_step step;
    uint64_t id;
    uint64_t index; /* the configuration entry awaiting commit; 0 while catching up */
    uint64_t since; /* tick at which catching up began */
    raft_node_change_cb cb;
    void *arg;
};

static void finish(struct raft_node *n, int status, const struct swm_err *err)
{
    struct member_change *c = n->change;
    n->change = NULL;
    if (status == 0)
        swm_log_info("raft: member %016" PRIx64 " %s", c->id,
                     c->step == STEP_REMOVING ? "removed" : "is now a voter");
    c->cb(c->arg, status, err);
    swm_free(c);
}

static int fail_with(struct raft_node *n, int code, const char *what)
{
    struct swm_err err;
    if (code == SWM_ENOTLEADER)
        raft_node__not_leader_err(n, &err, what);
    else
        swm_err_set(&err, code, "%s: %s", what, swm_strerror(code));
    finish(n, code, &err);
    return code;
}

void raft_node__change_fail(struct raft_node *n, const struct swm_err *err)
{
    if (n->change != NULL)
        finish(n, err->code, err);
}

/* Starts a change: the first configuration entry is proposed now. */
static int start(struct raft_node *n, enum raft_conf_change type, uint64_t id,
                 raft_node_change_cb cb, void *arg)
{
    if (n->closing)
        return SWM_ESHUTDOWN;
    if (n->core == NULL)
        return n->dead.code;
    if (n->change != NULL)
        return SWM_EINUSE;
    uint64_t index = 0;
    int rc = raft_propose_conf_change(n->core, type, id, &index);
    if (rc < 0)
        return rc;
    struct member_change *c = swm_malloc(sizeof(*c));
    if (c == NULL)
        return -ENOMEM; /* the entry is in the log: the membership still changes */
    *c = (struct member_change){.step = type == RAFT_CC_REMOVE ? STEP_REMOVING : STEP_ADDING,
                                .id = id,
                                .index = index,
                                .cb = cb,
                                .arg = arg};
    n->change = c;
    raft_node__kick(n);
    return 0;
}

int raft_node_add_voter(struct raft_node *n, uint64_t id, raft_node_change_cb cb, void *arg)
{
    const struct raft_server *s =
        n->core != NULL ? raft_configuration_get(raft_configuration_current(n->core), id) : NULL;
    if (s == NULL || s->role != RAFT_LEARNER)
        return start(n, RAFT_CC_ADD_LEARNER, id, cb, arg);
    /* A learner left by an earlier attempt (it did not catch up in time):
     * go on waiting for it instead of refusing a known member. */
    if (n->change != NULL)
        return SWM_EINUSE;
    if (raft_state(n->core) != RAFT_LEADER)
        return SWM_ENOTLEADER;
    struct member_change *c = swm_malloc(sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    *c = (struct member_change){
        .step = STEP_CATCHING_UP, .id = id, .since = n->ticks, .cb = cb, .arg = arg};
    n->change = c;
    return 0;
}

int raft_node_remove_member(struct raft_node *n, uint64_t id, raft_node_change_cb cb, void *arg)
{
    return start(n, RAFT_CC_REMOVE, id, cb, arg);
}

int raft_node_transfer_leadership(struct raft_node *n, uint64_t to)
{
    if (n->closing)
        return SWM_ESHUTDOWN;
    if (n->core == NULL)
        return n->dead.code;
    int rc = raft_transfer_leadership(n->core, to);
    if (rc == 0)
        raft_node__kick(n);
    return rc;
}

void raft_node__change_committed(struct raft_node *n, const struct raft_ready *rd)
{
    struct member_change *c = n->change;
    if (c == NULL || c->index == 0)
        return;
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (e->index < c->index)
            continue;
        if (e->index > c->index || e->type != RAFT_ENTRY_CONF) {
            fail_with(n, SWM_ENOTLEADER, "changing the membership: leadership changed");
            return;
        }
        if (c->step == STEP_ADDING) {
            c->step = STEP_CATCHING_UP;
            c->index = 0;
            c->since = n->ticks;
        } else {
            finish(n, 0, &(struct swm_err){0});
        }
        return;
    }
}

void raft_node__change_tick(struct raft_node *n)
{
    struct member_change *c = n->change;
    if (c == NULL || c->step != STEP_CATCHING_UP)
        return;
    uint64_t match = 0;
    int rc = raft_progress_match(n->core, c->id, &match);
    if (rc < 0) {
        fail_with(n, rc, "promoting a learner");
        return;
    }
    if (match + CATCH_UP_WINDOW < raft_last_index(n->core)) {
        if (n->ticks - c->since > CATCH_UP_TICKS) {
            struct swm_err err;
            swm_err_set(&err, -ETIMEDOUT,
                        "member %016" PRIx64 " did not catch up with the log (at %" PRIu64
                        " of %" PRIu64 "); it stays a learner",
                        c->id, match, raft_last_index(n->core));
            finish(n, err.code, &err);
        }
        return;
    }
    uint64_t index = 0;
    rc = raft_propose_conf_change(n->core, RAFT_CC_PROMOTE, c->id, &index);
    if (rc == SWM_EINUSE)
        return; /* an earlier entry is not committed yet: next tick */
    if (rc < 0) {
        fail_with(n, rc, "promoting a learner");
        return;
    }
    c->step = STEP_PROMOTING;
    c->index = index;
}
