/* Shared between the agent's files; no other module includes it. */
#ifndef SWM_AGENT_INTERNAL_H
#define SWM_AGENT_INTERNAL_H

#include "agent/agent.h"
#include "agent/executor/executor.h"
#include "agent/image/image.h"
#include "common/id.h"
#include "common/strmap.h"
#include "proto/codec.h"

/* Where a task's container is in its life, as the agent drives it. */
enum agent_phase {
    PHASE_IDLE,     /* no container yet */
    PHASE_STARTING, /* executor_start in flight */
    PHASE_RUNNING,
    PHASE_STOPPING, /* stop signal sent, waiting for the exit */
    PHASE_EXITED,
    PHASE_REMOVING, /* executor_remove in flight */
};

struct agent_task {
    char id[SWM_ID_LEN + 1];
    Swarmc__Task *task;         /* latest assignment (owned); NULL if only adopted */
    Swarmc__TaskState reported; /* highest state reported or seen in the store */
    enum agent_phase phase;
    int has_container;
    int assigned; /* present in the dispatcher's assignment set */
    int exit_code;
    int pid;
    int64_t reported_at_ns;
    char message[128];
    char err[256];
    int stop_signal;
    int64_t stop_grace_ns;
    char image_id[80];
};

struct agent {
    uv_loop_t *loop;
    char node_id[SWM_ID_LEN + 1];
    char *hostname;
    bool has_join_availability;
    int join_availability; /* Swarmc__NodeAvailability */
    void (*on_managers)(void *arg, const char *const *addrs, size_t n);
    void *on_managers_arg;
    struct image_store *images;
    struct executor *executor;
    struct swm_strmap tasks; /* id -> struct agent_task */
    agent_send_fn send;
    void *conn;
    uv_timer_t flush_timer; /* sends queued status reports */
    uv_timer_t heartbeat_timer;
    int64_t heartbeat_ns;
    /* Status reports not yet sent (ids of tasks whose `reported` changed). */
    char **dirty;
    size_t n_dirty;
    void (*removed_all_cb)(void *arg);
    void *removed_all_arg;
    /* A complete assignment set arrived. Until then an adopted container
     * whose task was not assigned yet is kept: its task may well exist. */
    int synced;
    int leaving; /* agent_remove_all: every task is gone, assignments ignored */
    int closing;
};

/* Moves t forward as its assignment and container dictate. May free t (and
 * remove it from the table) when the task is finished with. */
void agent__drive(struct agent *a, struct agent_task *t);

/* Records a new state for t and queues the report. err may be NULL. */
void agent__report(struct agent *a, struct agent_task *t, Swarmc__TaskState state,
                   const char *message, const char *err);

/* Reports how t's container ended (t->exit_code): SHUTDOWN if it was being
 * stopped or its task no longer wants it running, else COMPLETE or FAILED. */
void agent__report_exit(struct agent *a, struct agent_task *t, int stopping);

/* Fills the platform (static strings) and capacity of this host. */
void agent__describe_host(Swarmc__Platform *platform, Swarmc__Resources *capacity);

/* Handles an assignments message from the dispatcher. */
void agent__apply_assignments(struct agent *a, const Swarmc__AssignmentsMessage *msg);

/* Sends heartbeats every period_ns from now on. */
void agent__set_heartbeat(struct agent *a, int64_t period_ns);

struct agent_task *agent__task_get_or_add(struct agent *a, const char *id);

#endif
