#include "cli/tasks.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/table.h"
#include "common/alloc.h"
#include "common/parse.h"
#include "common/sort.h"
#include "proto/codec.h"

/* Docker truncates the ERROR column to this many characters. */
#define MAX_ERR_LENGTH 30

void cli_task_name(const Swarmc__Task *t, char *buf, size_t len)
{
    const char *service = t->service_annotations != NULL && t->service_annotations->name != NULL
                              ? t->service_annotations->name
                              : (t->service_id != NULL ? t->service_id : "");
    if (t->slot == 0 && t->node_id != NULL)
        snprintf(buf, len, "%s.%s", service, t->node_id);
    else
        snprintf(buf, len, "%s.%llu", service, (unsigned long long)t->slot);
}

const char *cli_node_hostname(Swarmc__Node *const *nodes, size_t n, const char *id)
{
    for (size_t i = 0; id != NULL && i < n; i++) {
        if (nodes[i]->id != NULL && strcmp(nodes[i]->id, id) == 0)
            return nodes[i]->description != NULL ? nodes[i]->description->hostname : NULL;
    }
    return NULL;
}

void cli_image_short(const char *image, char *buf, size_t len)
{
    if (image == NULL)
        image = "";
    snprintf(buf, len, "%.*s", (int)strcspn(image, "@"), image);
}

void cli_capitalize(const char *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s", s);
    if (len > 0 && buf[0] != '\0')
        buf[0] = (char)toupper((unsigned char)buf[0]);
}

int cli_natural_cmp(const char *a, const char *b)
{
    while (*a != '\0' && *b != '\0') {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0')
                a++;
            while (*b == '0')
                b++;
            size_t la = strspn(a, "0123456789"), lb = strspn(b, "0123456789");
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c != 0)
                return c;
            a += la;
            b += lb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return (*a != '\0') - (*b != '\0');
}

static int64_t created_of(const Swarmc__Task *t)
{
    if (t->meta != NULL && t->meta->created_at != 0)
        return t->meta->created_at;
    return t->status != NULL ? t->status->timestamp : 0;
}

static int by_name_then_newest(const void *pa, const void *pb)
{
    const Swarmc__Task *a = *(Swarmc__Task *const *)pa;
    const Swarmc__Task *b = *(Swarmc__Task *const *)pb;
    char na[256], nb[256];
    cli_task_name(a, na, sizeof(na));
    cli_task_name(b, nb, sizeof(nb));
    int c = cli_natural_cmp(na, nb);
    if (c != 0)
        return c;
    int64_t ca = created_of(a), cb = created_of(b);
    return ca > cb ? -1 : ca < cb;
}

/* "Running 5 seconds ago", as docker prints CURRENT STATE. */
static void current_state(const Swarmc__Task *t, int64_t now_ns, char *buf, size_t len)
{
    char state[32], ago[64];
    Swarmc__TaskState s = t->status != NULL ? t->status->state : SWARMC__TASK_STATE__TASK_STATE_NEW;
    cli_capitalize(proto_task_state_name(s), state, sizeof(state));
    if (t->status == NULL || t->status->timestamp == 0) {
        snprintf(buf, len, "%s", state);
        return;
    }
    swm_format_ago(t->status->timestamp, now_ns, ago, sizeof(ago));
    ago[0] = (char)tolower((unsigned char)ago[0]);
    snprintf(buf, len, "%s %s", state, ago);
}

static int task_row(struct cli_table *table, const Swarmc__Task *t, const char *prev_name,
                    Swarmc__Node *const *nodes, size_t n_nodes, const struct cli_tasks_opts *opts)
{
    char id[64], name[280], image[256], node[256], desired[32], current[96], error[512];
    snprintf(id, sizeof(id), opts->no_trunc ? "%s" : "%.12s", t->id != NULL ? t->id : "");
    cli_task_name(t, name + 4, sizeof(name) - 4);
    const char *shown_name = name + 4;
    if (prev_name != NULL && strcmp(prev_name, name + 4) == 0) {
        memcpy(name, " \\_ ", 4);
        shown_name = name;
    }
    const char *img =
        t->spec != NULL && t->spec->container != NULL ? t->spec->container->image : "";
    if (opts->no_trunc)
        snprintf(image, sizeof(image), "%s", img != NULL ? img : "");
    else
        cli_image_short(img, image, sizeof(image));
    const char *host = opts->no_resolve ? NULL : cli_node_hostname(nodes, n_nodes, t->node_id);
    snprintf(node, sizeof(node), "%s",
             host != NULL ? host : (t->node_id != NULL ? t->node_id : ""));
    cli_capitalize(proto_task_state_name(t->desired_state), desired, sizeof(desired));
    current_state(t, opts->now_ns, current, sizeof(current));
    const char *e = t->status != NULL && t->status->err != NULL ? t->status->err : "";
    char cut[400];
    cli_ellipsis(e, opts->no_trunc ? sizeof(cut) : MAX_ERR_LENGTH, cut, sizeof(cut));
    snprintf(error, sizeof(error), e[0] != '\0' ? "\"%s\"" : "%s", cut);
    const char *cells[] = {id, shown_name, image, node, desired, current, error, ""};
    return cli_table_add(table, cells);
}

int cli_tasks_render(Swarmc__Task *const *tasks, size_t n, Swarmc__Node *const *nodes,
                     size_t n_nodes, const struct cli_tasks_opts *opts, struct swm_buf *out)
{
    Swarmc__Task **sorted = swm_calloc(n + 1, sizeof(*sorted));
    if (sorted == NULL)
        return -ENOMEM;
    memcpy(sorted, tasks, n * sizeof(*sorted));
    swm_sort(sorted, n, sizeof(*sorted), by_name_then_newest);
    int rc = 0;
    if (opts->quiet) {
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = swm_buf_printf(out, opts->no_trunc ? "%s\n" : "%.12s\n",
                                sorted[i]->id != NULL ? sorted[i]->id : "");
        swm_free(sorted);
        return rc;
    }
    static const char *const header[] = {
        "ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"};
    struct cli_table table;
    cli_table_init(&table, 8);
    rc = cli_table_add(&table, header);
    char prev[256] = "";
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = task_row(&table, sorted[i], i > 0 ? prev : NULL, nodes, n_nodes, opts);
        cli_task_name(sorted[i], prev, sizeof(prev));
    }
    if (rc == 0)
        rc = cli_table_render(&table, out);
    cli_table_free(&table);
    swm_free(sorted);
    return rc;
}
