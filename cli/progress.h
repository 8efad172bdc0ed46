/* The live progress of `service create/update/scale` (Docker CLI's
 * cli/command/service/progress): which tasks of a service run, slot by slot
 * (replicated) or node by node (global), rendered as
 *
 *   overall progress: 2 out of 3 tasks
 *   1/3: running   [==================================================>]
 *   2/3: running   [==================================================>]
 *   3/3: no suitable node (insufficient resources on 1 node)
 *
 * Computing the lines is a pure function of the service, its tasks and the
 * nodes; showing them (redrawn in place on a terminal, changed lines only
 * otherwise) is separate.
 */
#ifndef SWM_CLI_PROGRESS_H
#define SWM_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/objects.pb-c.h"

/* Above this many slots/nodes only the overall line is shown (docker). */
#define CLI_PROGRESS_MAX_BARS 20
#define CLI_PROGRESS_MAX_LINES (CLI_PROGRESS_MAX_BARS + 4)

struct cli_progress_line {
    char id[40];    /* "overall progress", "1/3", a node id, "verify" */
    char text[160]; /* after "id: " */
};

struct cli_progress {
    struct cli_progress_line lines[CLI_PROGRESS_MAX_LINES];
    size_t n_lines;
    uint64_t running; /* tasks running (on active nodes) */
    uint64_t desired; /* replicas, or nodes with a task (global) */
    bool converged;   /* running == desired, and there is something to wait for */
};

/* Computes the progress of svc from its tasks (any mix of services and
 * versions: only svc's current ones count) and the cluster's nodes (tasks
 * on nodes that are down do not count; n_nodes 0 means "unknown", all
 * count). rollback titles the overall line "rollback". Returns 0 or
 * -ENOMEM. */
int cli_progress_compute(const Swarmc__Service *svc, Swarmc__Task *const *tasks, size_t n_tasks,
                         Swarmc__Node *const *nodes, size_t n_nodes, bool rollback,
                         struct cli_progress *out);

/* Appends a line; silently ignored when full. */
void cli_progress_add(struct cli_progress *p, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Docker's progress bar for a task state: "running   [=====...>]"; states
 * after running (failed, shutdown...) have no bar. */
void cli_progress_task_text(Swarmc__TaskState state, char *buf, size_t len);

/* Shows successive progress frames on one stream. */
struct cli_progress_display {
    bool tty;                  /* redraw the block in place with ANSI codes */
    size_t n_drawn;            /* tty: lines of the block on screen */
    struct cli_progress shown; /* tty: last frame; else last text printed per id */
};

/* Starts a display. */
void cli_progress_display_init(struct cli_progress_display *d, bool tty);

/* Shows frame p on out: on a terminal the block is redrawn in place; else
 * only lines whose text changed (and is not empty) are printed. */
void cli_progress_display_show(struct cli_progress_display *d, FILE *out,
                               const struct cli_progress *p);

#endif
