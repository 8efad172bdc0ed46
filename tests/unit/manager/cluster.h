/* A small cluster on disk for the manager, dispatcher and control API tests:
 * a temporary store bootstrapped the way `swarmc init` does it (the cluster
 * object and one READY, ACTIVE manager node, applied directly at index 1), a
 * real libuv loop and, once opened, the store log. Everything is real: LMDB
 * in a temp dir and the log's threadpool writes. Builders come from
 * ../scheduler/objects.h and entries from ../store/fixture.h.
 *
 * Loops are driven until a condition holds, one iteration at a time, and a
 * test fails instead of hanging when the condition does not come within
 * CFX_TIMEOUT_MS.
 */
#ifndef SWM_TESTS_UNIT_MANAGER_CLUSTER_H
#define SWM_TESTS_UNIT_MANAGER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../scheduler/objects.h"
#include "../store/fixture.h"
#include "manager/raft/node.h"
#include "store/log.h"
#include "store/store.h"

/* Ids are real ids (25 characters of [0-9a-z]): the dispatcher checks them. */
#define CFX_CLUSTER "c000000000000000000000000"
#define CFX_NODE "n000000000000000000000001"
#define CFX_NODE2 "n000000000000000000000002"
#define CFX_T0 (INT64_C(1700000000) * OBJ_SEC)
#define CFX_TIMEOUT_MS 10000

#define CREATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE
#define UPDATE SWARMC__STORE_ACTION__KIND__STORE_ACTION_UPDATE
#define REMOVE SWARMC__STORE_ACTION__KIND__STORE_ACTION_REMOVE

struct cfx {
    char *dir;
    struct store *s;
    uv_loop_t loop;
    struct raft_node *raft; /* the log's single-voter raft node, NULL until cfx_open_log */
    struct store_log *log;  /* raft_node_log(raft) */
    uint64_t base_index;    /* the applied index once the log was open and settled */
};

/* A bootstrapped store (cluster CFX_CLUSTER, node CFX_NODE: READY, ACTIVE,
 * manager, hostname "node-1", 4 CPUs, 8 GiB) and an initialised loop. */
void cfx_setup(struct cfx *f);

/* Closes the log (if open), runs the loop until every handle is closed and
 * fails the test if one is left, closes the store, removes the directory. */
void cfx_teardown(struct cfx *f);

/* Opens the log over the store; from then on it must be the only writer. */
void cfx_open_log(struct cfx *f);

/* Closes the log (it frees itself once the loop runs on). Accepts no log. */
void cfx_close_log(struct cfx *f);

/* Writes one entry (owned) and returns its outcome code (0, SWM_ESTALE...):
 * applied directly while no log is open, else proposed to the log with the
 * loop run until it committed. */
int cfx_write(struct cfx *f, Swarmc__StoreEntry *entry);

/* A one-action entry, written with cfx_write. object is owned. */
int cfx_write1(struct cfx *f, Swarmc__StoreAction__Kind kind, void *object);

/* Writes an entry that changes nothing the tests look at (the cluster
 * object, rewritten): once it has committed, so has everything proposed to
 * the log before it. */
void cfx_barrier(struct cfx *f);

/* Runs the loop one iteration at a time until cond(arg) is true; fails the
 * test after CFX_TIMEOUT_MS, or when the loop has nothing left to run. */
void cfx_run_until(struct cfx *f, bool (*cond)(void *arg), void *arg, const char *what);

/* Runs the loop for at least ms milliseconds, or until it has no work left
 * (an idle loop cannot change anything). */
void cfx_run_for(struct cfx *f, uint64_t ms);

/* Stored objects (decoded copies the caller frees with proto_free), or NULL
 * when missing. */
Swarmc__Task *cfx_task(struct cfx *f, const char *id);
Swarmc__Node *cfx_node(struct cfx *f, const char *id);
Swarmc__Service *cfx_service(struct cfx *f, const char *id);

/* Every stored task (free with store_free_list), sorted by slot then id. */
Swarmc__Task **cfx_tasks(struct cfx *f, size_t *n);

/* How many stored tasks have observed state `state` and desired `desired`
 * (a negative value matches any). */
size_t cfx_count(struct cfx *f, int state, int desired);

/* Sets a task's observed state (and status timestamp when ts != 0) as an
 * agent report would, writing it with cfx_write; returns the outcome. */
int cfx_set_state(struct cfx *f, const char *task_id, Swarmc__TaskState state, int64_t ts);

/* Sets a task's desired state with cfx_write; returns the outcome. */
int cfx_set_desired(struct cfx *f, const char *task_id, Swarmc__TaskState desired);

#endif
