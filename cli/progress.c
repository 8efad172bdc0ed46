#include "cli/progress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/sort.h"
#include "proto/codec.h"

#define BAR_WIDTH 50
/* The longest name among the states with a bar ("preparing"). */
#define STATE_WIDTH 9

/* Docker's numberedStates: 0 for states that are not progress (terminal). */
static int numbered(Swarmc__TaskState s)
{
    switch (s) {
    case SWARMC__TASK_STATE__TASK_STATE_NEW:
        return 1;
    case SWARMC__TASK_STATE__TASK_STATE_ALLOCATED:
        return 2;
    case SWARMC__TASK_STATE__TASK_STATE_PENDING:
        return 3;
    case SWARMC__TASK_STATE__TASK_STATE_ASSIGNED:
        return 4;
    case SWARMC__TASK_STATE__TASK_STATE_ACCEPTED:
        return 5;
    case SWARMC__TASK_STATE__TASK_STATE_PREPARING:
        return 6;
    case SWARMC__TASK_STATE__TASK_STATE_READY:
        return 7;
    case SWARMC__TASK_STATE__TASK_STATE_STARTING:
        return 8;
    case SWARMC__TASK_STATE__TASK_STATE_RUNNING:
        return 9;
    default:
        return 0;
    }
}
#define MAX_PROGRESS 9

static Swarmc__TaskState state_of(const Swarmc__Task *t)
{
    return t->status != NULL ? t->status->state : SWARMC__TASK_STATE__TASK_STATE_NEW;
}

static int64_t stamp_of(const Swarmc__Task *t)
{
    return t->status != NULL ? t->status->timestamp : 0;
}

void cli_progress_add(struct cli_progress *p, const char *id, const char *fmt, ...)
{
    if (p->n_lines == CLI_PROGRESS_MAX_LINES)
        return;
    struct cli_progress_line *l = &p->lines[p->n_lines++];
    snprintf(l->id, sizeof(l->id), "%s", id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof(l->text), fmt, ap);
    va_end(ap);
}

void cli_progress_task_text(Swarmc__TaskState state, char *buf, size_t len)
{
    int n = numbered(state);
    const char *name = proto_task_state_name(state);
    if (n == 0) {
        snprintf(buf, len, "%s", name);
        return;
    }
    int filled = (n * 100 / MAX_PROGRESS) / 2;
    char bar[BAR_WIDTH + 4];
    memset(bar, '=', (size_t)filled);
    bar[filled] = '>';
    memset(bar + filled + 1, ' ', (size_t)(BAR_WIDTH - filled));
    bar[BAR_WIDTH + 1] = '\0';
    snprintf(buf, len, "%-*s [%s]", STATE_WIDTH, name, bar);
}

/* Docker's truncError: first line only, at most 75 bytes. */
static void task_line(struct cli_progress *p, const char *id, const Swarmc__Task *t)
{
    const char *e = t->status != NULL ? t->status->err : NULL;
    if (e != NULL && e[0] != '\0') {
        int n = (int)strcspn(e, "\n");
        if (n > 75)
            cli_progress_add(p, id, "%.74s\xe2\x80\xa6", e);
        else
            cli_progress_add(p, id, "%.*s", n, e);
        return;
    }
    char text[128];
    cli_progress_task_text(state_of(t), text, sizeof(text));
    cli_progress_add(p, id, "%s", text);
}

/* False for a node known to be down, or missing from a known node list. */
static bool node_active(Swarmc__Node *const *nodes, size_t n_nodes, const char *id)
{
    if (n_nodes == 0 || id == NULL || id[0] == '\0')
        return true;
    for (size_t i = 0; i < n_nodes; i++) {
        if (nodes[i]->id != NULL && strcmp(nodes[i]->id, id) == 0)
            return nodes[i]->status == NULL ||
                   nodes[i]->status->state != SWARMC__NODE_STATE__NODE_STATE_DOWN;
    }
    return false;
}

static bool current(const Swarmc__Service *svc, const Swarmc__Task *t)
{
    if (svc->id != NULL && t->service_id != NULL && strcmp(svc->id, t->service_id) != 0)
        return false;
    /* Docker's "_up-to-date" filter: tasks of the service's current spec. */
    if (svc->has_spec_version && t->has_spec_version && svc->spec_version != t->spec_version)
        return false;
    return true;
}

/* Whether candidate should replace best for the same slot or node (docker:
 * higher desired state wins, then higher observed state). */
static bool better(const Swarmc__Task *candidate, const Swarmc__Task *best)
{
    if (best == NULL)
        return true;
    int cd = numbered(candidate->desired_state), bd = numbered(best->desired_state);
    if (cd != bd)
        return cd > bd;
    return numbered(state_of(candidate)) >= numbered(state_of(best));
}

/* A group of tasks: one slot (replicated) or one node (global). */
struct group {
    uint64_t slot;
    const char *node_id;
    const Swarmc__Task *live;   /* best task making progress */
    const Swarmc__Task *latest; /* most recent terminal one, for its error */
};

/* The group of slot/node_id; groups has room for one per task. */
static struct group *group_for(struct group *groups, size_t *n, uint64_t slot, const char *node_id)
{
    for (size_t i = 0; i < *n; i++) {
        if (groups[i].slot == slot &&
            (node_id == NULL ||
             (groups[i].node_id != NULL && strcmp(groups[i].node_id, node_id) == 0)))
            return &groups[i];
    }
    struct group *g = &groups[(*n)++];
    memset(g, 0, sizeof(*g));
    g->slot = slot;
    g->node_id = node_id;
    return g;
}

static void bars(struct cli_progress *out, const struct group *groups, size_t n_groups,
                 bool global);

static bool has_err(const Swarmc__Task *t)
{
    return t != NULL && t->status != NULL && t->status->err != NULL && t->status->err[0] != '\0';
}

/* The task whose line a group shows: its live task, unless that one is
 * still on its way and the last one failed with an error (a restart): then
 * the error, so that the user sees why the slot does not converge. */
static const Swarmc__Task *shown_task(const struct group *g)
{
    const Swarmc__Task *live = g->live;
    if (live == NULL)
        return g->latest;
    if (!has_err(live) && state_of(live) != SWARMC__TASK_STATE__TASK_STATE_RUNNING &&
        has_err(g->latest))
        return g->latest;
    return live;
}

static int by_slot(const void *a, const void *b)
{
    const struct group *ga = a, *gb = b;
    return ga->slot < gb->slot ? -1 : ga->slot > gb->slot;
}

int cli_progress_compute(const Swarmc__Service *svc, Swarmc__Task *const *tasks, size_t n_tasks,
                         Swarmc__Node *const *nodes, size_t n_nodes, bool rollback,
                         struct cli_progress *out)
{
    memset(out, 0, sizeof(*out));
    struct group *groups = swm_calloc(n_tasks + 1, sizeof(*groups));
    if (groups == NULL)
        return -ENOMEM;
    size_t n_groups = 0;
    const Swarmc__ServiceSpec *spec = svc->spec;
    bool global =
        spec != NULL && spec->has_mode && spec->mode == SWARMC__SERVICE_MODE__SERVICE_MODE_GLOBAL;
    for (size_t i = 0; i < n_tasks; i++) {
        const Swarmc__Task *t = tasks[i];
        if (!current(svc, t) || !node_active(nodes, n_nodes, t->node_id))
            continue;
        if (global && (t->node_id == NULL || t->node_id[0] == '\0'))
            continue;
        struct group *g =
            group_for(groups, &n_groups, global ? 0 : t->slot, global ? t->node_id : NULL);
        bool live = numbered(t->desired_state) > 0 && numbered(state_of(t)) > 0;
        if (live && better(t, g->live))
            g->live = t;
        else if (!live && (g->latest == NULL || stamp_of(t) >= stamp_of(g->latest)))
            g->latest = t;
    }

    if (!global) {
        out->desired = spec != NULL && spec->has_replicas ? spec->replicas : 1;
        swm_sort(groups, n_groups, sizeof(groups[0]), by_slot);
    } else {
        for (size_t i = 0; i < n_groups; i++)
            out->desired += groups[i].live != NULL;
    }
    for (size_t i = 0; i < n_groups; i++) {
        const Swarmc__Task *t = groups[i].live;
        if (t != NULL && state_of(t) == SWARMC__TASK_STATE__TASK_STATE_RUNNING)
            out->running++;
    }
    if (!global && out->running > out->desired)
        out->running = out->desired;

    const char *title = rollback ? "rollback" : "overall progress";
    if (global && out->desired == 0) {
        /* Either the orchestrator has not made the tasks yet or no node is
         * eligible: wait, as docker does. */
        cli_progress_add(out, title, "waiting for new tasks");
        swm_free(groups);
        return 0;
    }
    cli_progress_add(out, title, "%llu out of %llu tasks", (unsigned long long)out->running,
                     (unsigned long long)out->desired);
    out->converged = out->running == out->desired;
    if (out->desired <= CLI_PROGRESS_MAX_BARS)
        bars(out, groups, n_groups, global);
    swm_free(groups);
    return 0;
}

/* One line per slot (replicated) or node (global). */
static void bars(struct cli_progress *out, const struct group *groups, size_t n_groups, bool global)
{
    if (global) {
        for (size_t i = 0; i < n_groups; i++) {
            if (groups[i].live == NULL)
                continue;
            char id[16];
            snprintf(id, sizeof(id), "%.12s", groups[i].node_id);
            task_line(out, id, shown_task(&groups[i]));
        }
        return;
    }
    /* Slots are numbered 1..N on screen in slot order, whatever their
     * actual numbers after scaling. */
    size_t shown = 0;
    for (size_t i = 0; i < n_groups && shown < out->desired; i++) {
        const Swarmc__Task *t = shown_task(&groups[i]);
        char id[48];
        snprintf(id, sizeof(id), "%zu/%llu", ++shown, (unsigned long long)out->desired);
        task_line(out, id, t);
    }
    while (shown < out->desired) {
        char id[48];
        snprintf(id, sizeof(id), "%zu/%llu", ++shown, (unsigned long long)out->desired);
        cli_progress_add(out, id, "%s", "");
    }
}

void cli_progress_display_init(struct cli_progress_display *d, bool tty)
{
    memset(d, 0, sizeof(*d));
    d->tty = tty;
}

static bool same_frame(const struct cli_progress *a, const struct cli_progress *b)
{
    if (a->n_lines != b->n_lines)
        return false;
    for (size_t i = 0; i < a->n_lines; i++)
        if (strcmp(a->lines[i].id, b->lines[i].id) != 0 ||
            strcmp(a->lines[i].text, b->lines[i].text) != 0)
            return false;
    return true;
}

static void show_tty(struct cli_progress_display *d, FILE *out, const struct cli_progress *p)
{
    /* Nothing changed: leave the screen alone. */
    if (d->n_drawn > 0 && same_frame(&d->shown, p))
        return;
    d->shown = *p;
    if (d->n_drawn > 0)
        fprintf(out, "\033[%zuA", d->n_drawn);
    for (size_t i = 0; i < p->n_lines; i++)
        fprintf(out, "\033[2K%s: %s\n", p->lines[i].id, p->lines[i].text);
    /* Blank what is left of a longer previous block. */
    for (size_t i = p->n_lines; i < d->n_drawn; i++)
        fprintf(out, "\033[2K\n");
    if (p->n_lines > d->n_drawn)
        d->n_drawn = p->n_lines;
}

static void show_plain(struct cli_progress_display *d, FILE *out, const struct cli_progress *p)
{
    for (size_t i = 0; i < p->n_lines; i++) {
        const struct cli_progress_line *l = &p->lines[i];
        struct cli_progress_line *seen = NULL;
        for (size_t j = 0; j < d->shown.n_lines && seen == NULL; j++)
            if (strcmp(d->shown.lines[j].id, l->id) == 0)
                seen = &d->shown.lines[j];
        if (seen != NULL && strcmp(seen->text, l->text) == 0)
            continue;
        if (l->text[0] == '\0')
            continue;
        fprintf(out, "%s: %s\n", l->id, l->text);
        if (seen != NULL)
            snprintf(seen->text, sizeof(seen->text), "%s", l->text);
        else
            cli_progress_add(&d->shown, l->id, "%s", l->text);
    }
}

void cli_progress_display_show(struct cli_progress_display *d, FILE *out,
                               const struct cli_progress *p)
{
    if (d->tty)
        show_tty(d, out, p);
    else
        show_plain(d, out, p);
    fflush(out);
}
