/* A tiny simulated cluster for the orchestrator tests (STYLE.md: deterministic
 * simulated cluster): one service, its tasks as the store would hold them,
 * nodes, and a clock. fx_step() runs a reconcile and applies the plan the way
 * the store would; fx_agents() plays the agents and the scheduler. */
#ifndef SWM_TESTS_UNIT_ORCHESTRATOR_FIXTURE_H
#define SWM_TESTS_UNIT_ORCHESTRATOR_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../scheduler/objects.h"
#include "manager/orchestrator/orchestrator.h"

#define T0 (INT64_C(1700000000) * OBJ_SEC)

struct fx {
    Swarmc__Service *svc;
    Swarmc__Node *nodes[16];
    size_t n_nodes;
    Swarmc__Task **tasks;
    size_t n_tasks, cap;
    struct orch_plan plan; /* the last reconcile's plan, until the next one */
    int64_t now;
    size_t next_node; /* round robin for fx_agents' placements */
};

/* Takes ownership of svc. */
void fx_init(struct fx *f, Swarmc__Service *svc);
void fx_free(struct fx *f);

Swarmc__Node *fx_node(struct fx *f, const char *id);
/* Takes ownership of t. */
Swarmc__Task *fx_add(struct fx *f, Swarmc__Task *t);
/* A task of the service in slot (or on node, for global), observed state,
 * desired state, created and last changed at f->now. */
Swarmc__Task *fx_task(struct fx *f, uint64_t slot, const char *node, Swarmc__TaskState state,
                      Swarmc__TaskState desired);
Swarmc__Task *fx_find(struct fx *f, const char *id);

/* Runs orch_reconcile into f->plan (replacing the previous plan). */
void fx_reconcile(struct fx *f);
/* Applies f->plan like the store: creates, updates (checking meta.version
 * is unchanged), deletes, and the service. */
void fx_apply(struct fx *f);
/* fx_reconcile + fx_apply; returns whether the plan changed anything. */
bool fx_step(struct fx *f);
/* Runs orch_reap with limit into f->plan and applies it. */
void fx_reap(struct fx *f, int64_t limit);

/* The agents and scheduler: tasks desired RUNNING get a node (round robin)
 * and run; tasks desired past RUNNING that run stop (SHUTDOWN). */
void fx_agents(struct fx *f);

/* Counting. */
size_t fx_runnable(const struct fx *f);
size_t fx_runnable_in_slot(const struct fx *f, uint64_t slot);
size_t fx_with_desired(const struct fx *f, Swarmc__TaskState desired);
/* The one runnable task of slot (fails the test if there are several). */
Swarmc__Task *fx_slot_task(const struct fx *f, uint64_t slot);

/* Replaces the service's spec image (a real spec change) and bumps
 * spec_version, as the control API does. */
void fx_update_image(struct fx *f, const char *image);

#endif
