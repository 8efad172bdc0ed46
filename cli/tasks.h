/* Task listings shared by `service ps` and `node ps`, laid out as the Docker
 * CLI lays them out:
 *
 *   ID             NAME          IMAGE     NODE      DESIRED STATE   CURRENT STATE           ERROR
 * PORTS x3k2...        web.1         nginx     node1     Running         Running 5 seconds ago
 *   9f0a...         \_ web.1     nginx     node1     Shutdown        Failed 1 minute ago     "task:
 * non-zero exit (1)"
 */
#ifndef SWM_CLI_TASKS_H
#define SWM_CLI_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/objects.pb-c.h"

struct cli_tasks_opts {
    bool no_trunc;   /* full IDs, image digests and errors */
    bool quiet;      /* IDs only */
    bool no_resolve; /* node IDs instead of hostnames */
    int64_t now_ns;  /* for "5 seconds ago" */
};

/* Appends the listing of tasks[0..n) to out, sorted by task name then
 * newest first, older tasks of a slot indented as " \_ web.1". nodes
 * resolve node IDs to hostnames. Returns 0 or -ENOMEM. */
int cli_tasks_render(Swarmc__Task *const *tasks, size_t n, Swarmc__Node *const *nodes,
                     size_t n_nodes, const struct cli_tasks_opts *opts, struct swm_buf *out);

/* The task's name: "<service>.<slot>", or "<service>.<node id>" for a global
 * service's task. */
void cli_task_name(const Swarmc__Task *t, char *buf, size_t len);

/* The hostname of node `id` among nodes, or NULL if unknown. */
const char *cli_node_hostname(Swarmc__Node *const *nodes, size_t n, const char *id);

/* Copies an image reference without its "@sha256:..." digest. */
void cli_image_short(const char *image, char *buf, size_t len);

/* "running" -> "Running". */
void cli_capitalize(const char *s, char *buf, size_t len);

/* Docker's natural order ("web.2" before "web.10"). */
int cli_natural_cmp(const char *a, const char *b);

#endif
