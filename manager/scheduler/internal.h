/* Shared between the scheduler's files; no other module includes it. */
#ifndef SWM_MANAGER_SCHEDULER_INTERNAL_H
#define SWM_MANAGER_SCHEDULER_INTERNAL_H

#include "manager/scheduler/scheduler.h"

/* One node as the scheduler sees it during a run. */
struct sched__node {
    const Swarmc__Node *node; /* borrowed */
    bool ready;               /* status READY and availability ACTIVE */
    int64_t cpu;              /* nano-CPUs not reserved by tasks on the node */
    int64_t mem;              /* bytes not reserved */
    uint32_t active;          /* tasks with desired state <= RUNNING on the node */
    uint32_t rank;            /* position in node-id order: the last tie-breaker */
};

/* A task of `service` (borrowed id) active on node index `node`; or, in the
 * failures list, a recent failure of (service, version) there. */
struct sched__load {
    const char *service;
    uint64_t version;
    uint32_t node;
};

/* The cluster's load, built once per run (nodeset.c). */
struct sched__nodeset {
    struct sched__node *nodes;
    size_t n;
    uint32_t *slots; /* open-addressing id index: node index + 1, 0 = empty */
    size_t mask;
    struct sched__load *active; /* sorted by service; capacity for every task */
    size_t n_active, cap_active;
    struct sched__load *fails; /* sorted by (service, version) */
    size_t n_fails;
};

/* Builds the node set from the run's inputs. Returns 0 or -ENOMEM. */
int sched__nodeset_build(struct sched__nodeset *ns, Swarmc__Node *const *nodes, size_t n_nodes,
                         Swarmc__Task *const *tasks, size_t n_tasks, size_t extra, int64_t now_ns);
void sched__nodeset_free(struct sched__nodeset *ns);

/* Index of the node with this id, or -1. */
long sched__nodeset_find(const struct sched__nodeset *ns, const char *id);

/* Records a placement: reserves the task's resources and counts it. */
void sched__nodeset_take(struct sched__nodeset *ns, uint32_t node, const Swarmc__Task *t);

/* Appends an active entry (for placements made in this run) and re-sorts
 * the list once all are added (sched__nodeset_sort_active). The capacity was
 * reserved by sched__nodeset_build's `extra`. */
void sched__nodeset_add_active(struct sched__nodeset *ns, const char *service, uint32_t node);
void sched__nodeset_sort_active(struct sched__nodeset *ns);

/* [*lo, *hi) of the entries of `service` (and `version`, for failures). */
void sched__nodeset_service_range(const struct sched__nodeset *ns, const char *service, size_t *lo,
                                  size_t *hi);
void sched__nodeset_fail_range(const struct sched__nodeset *ns, const char *service,
                               uint64_t version, size_t *lo, size_t *hi);

/* Task accessors with Swarm's defaults for unset fields. */
const char *sched__str(const char *s);
int64_t sched__task_cpu(const Swarmc__Task *t);
int64_t sched__task_mem(const Swarmc__Task *t);

#endif
