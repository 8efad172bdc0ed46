#define _GNU_SOURCE
/* `service logs`: the lines of every task of a service, read from the log
 * files the shims write (one line each, prefixed with an RFC 3339 time), and
 * with --follow the lines appended afterwards, polled every 250 ms. */
#include "common/alloc.h"
#include "common/log.h"
#include "common/sort.h"
#include "daemon/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define LINES_PER_FRAME 256
#define FOLLOW_POLL_MS 250

struct log_source {
    char task_id[SWM_ID_LEN + 1];
    char task_name[96];
    int is_stderr;
    char path[512];
    long offset; /* where --follow continues */
};

struct log_stream {
    struct node_daemon *nd;
    struct api_conn *conn;
    char service_id[SWM_ID_LEN + 1];
    int follow, timestamps;
    int64_t tail;
    struct log_source *sources;
    size_t n_sources;
    uv_timer_t poll;
};

struct pending_line {
    int64_t ts;
    size_t source;
    char *text; /* owned, without the timestamp, with its newline */
};

static int64_t parse_rfc3339(const char *s, const char **rest)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    int64_t ns = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9)
                ns = ns * 10 + (*p - '0');
        for (; digits < 9; digits++)
            ns *= 10;
    }
    if (*p == 'Z')
        p++;
    if (*p == ' ')
        p++;
    *rest = p;
    return (int64_t)timegm(&tm) * 1000000000LL + ns;
}

static int add_line(struct pending_line **lines, size_t *n, size_t *cap, size_t source,
                    const char *raw)
{
    const char *text = raw;
    int64_t ts = parse_rfc3339(raw, &text);
    if (ts < 0) {
        ts = 0;
        text = raw;
    }
    if (*n == *cap) {
        size_t c = *cap == 0 ? 256 : *cap * 2;
        struct pending_line *g = swm_realloc(*lines, c * sizeof(*g));
        if (g == NULL)
            return -ENOMEM;
        *lines = g;
        *cap = c;
    }
    /* The line goes out as the container wrote it, newline included. */
    char *copy = swm_asprintf("%s\n", text);
    if (copy == NULL)
        return -ENOMEM;
    (*lines)[(*n)++] = (struct pending_line){.ts = ts, .source = source, .text = copy};
    return 0;
}

/* Reads whole lines of path from *offset on; advances *offset past them. */
static int read_lines(struct log_stream *ls, size_t source, const char *path, long *offset,
                      struct pending_line **lines, size_t *n, size_t *cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : -errno;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size < *offset)
        *offset = 0; /* rotated under us: start the new file from its top */
    fseek(f, *offset, SEEK_SET);
    char *line = NULL;
    size_t len = 0;
    ssize_t got;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &len, f)) > 0) {
        if (line[got - 1] != '\n')
            break; /* a partial line: the shim is still writing it */
        line[got - 1] = '\0';
        *offset += (long)got;
        rc = add_line(lines, n, cap, source, line);
    }
    free(line);
    fclose(f);
    return rc;
}

static int compare_lines(const void *a, const void *b)
{
    const struct pending_line *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->source < y->source ? -1 : x->source > y->source;
}

static int send_lines(struct log_stream *ls, struct pending_line *lines, size_t from, size_t to,
                      int last)
{
    Swarmc__ControlResponse resp = SWARMC__CONTROL_RESPONSE__INIT;
    Swarmc__LogLine items[LINES_PER_FRAME];
    Swarmc__LogLine *ptrs[LINES_PER_FRAME];
    int rc = 0;
    do {
        size_t n = to - from < LINES_PER_FRAME ? to - from : LINES_PER_FRAME;
        for (size_t i = 0; i < n; i++) {
            const struct pending_line *pl = &lines[from + i];
            const struct log_source *src = &ls->sources[pl->source];
            swarmc__log_line__init(&items[i]);
            items[i].task_id = (char *)src->task_id;
            items[i].task_name = (char *)src->task_name;
            items[i].node_id = ls->nd->node_id;
            items[i].has_stderr = items[i].has_timestamp = items[i].has_data = 1;
            items[i].stderr = src->is_stderr;
            items[i].timestamp = pl->ts;
            items[i].data.data = (uint8_t *)pl->text;
            items[i].data.len = strlen(pl->text);
            ptrs[i] = &items[i];
        }
        from += n;
        resp.log_lines = ptrs;
        resp.n_log_lines = n;
        resp.has_last = 1;
        resp.last = last && from == to;
        rc = daemon__api_send(ls->conn, &resp);
    } while (rc == 0 && from < to);
    return rc;
}

static void free_lines(struct pending_line *lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        swm_free(lines[i].text);
    swm_free(lines);
}

static int add_source(struct log_stream *ls, const Swarmc__Task *t, const char *dir, int err)
{
    struct log_source *g = swm_realloc(ls->sources, (ls->n_sources + 1) * sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    ls->sources = g;
    struct log_source *s = &g[ls->n_sources++];
    memset(s, 0, sizeof(*s));
    snprintf(s->task_id, sizeof(s->task_id), "%s", t->id);
    const char *name =
        t->annotations != NULL && t->annotations->name != NULL ? t->annotations->name : t->id;
    snprintf(s->task_name, sizeof(s->task_name), "%s", name);
    s->is_stderr = err;
    snprintf(s->path, sizeof(s->path), "%s/%s", dir, err ? "stderr.log" : "stdout.log");
    return 0;
}

static int has_source(const struct log_stream *ls, const char *task_id)
{
    for (size_t i = 0; i < ls->n_sources; i++)
        if (strcmp(ls->sources[i].task_id, task_id) == 0)
            return 1;
    return 0;
}

/* Adds the tasks of the service not yet followed. Returns 0, or
 * SWM_ENOTFOUND once the service is gone. */
static int refresh_sources(struct log_stream *ls)
{
    struct store_read *r = NULL;
    Swarmc__Service *svc = NULL;
    Swarmc__Task **tasks = NULL;
    size_t n = 0;
    int rc = store_read_begin(ls->nd->store, &r, NULL);
    if (rc == 0 && (rc = store_get_service(r, ls->service_id, &svc)) == 0)
        rc = store_list_tasks_by_service(r, ls->service_id, &tasks, &n);
    store_read_end(r);
    proto_free(svc);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (has_source(ls, tasks[i]->id))
            continue;
        char *dir = agent_task_log_dir(ls->nd->agent, tasks[i]->id);
        if (dir == NULL)
            continue;
        rc = add_source(ls, tasks[i], dir, 0);
        if (rc == 0)
            rc = add_source(ls, tasks[i], dir, 1);
        swm_free(dir);
    }
    store_free_list(tasks, n);
    return rc;
}

static int read_history(struct log_stream *ls, struct pending_line **lines, size_t *n, size_t *cap)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ls->n_sources; i++) {
        /* Rotated files first (oldest .2, then .1), then the live file. */
        for (int gen = 2; rc == 0 && gen >= 1; gen--) {
            char path[520];
            long off = 0;
            snprintf(path, sizeof(path), "%s.%d", ls->sources[i].path, gen);
            rc = read_lines(ls, i, path, &off, lines, n, cap);
        }
        if (rc == 0)
            rc = read_lines(ls, i, ls->sources[i].path, &ls->sources[i].offset, lines, n, cap);
    }
    return rc;
}

static void stream_free(uv_handle_t *handle)
{
    struct log_stream *ls = handle->data;
    daemon__api_conn_unref(ls->conn);
    swm_free(ls->sources);
    swm_free(ls);
}

static void stream_end(struct log_stream *ls, int send_last)
{
    if (send_last && !daemon__api_conn_closed(ls->conn))
        send_lines(ls, NULL, 0, 0, 1);
    uv_close((uv_handle_t *)&ls->poll, stream_free);
}

static void poll_new_lines(uv_timer_t *timer)
{
    struct log_stream *ls = timer->data;
    if (daemon__api_conn_closed(ls->conn) || ls->nd->stopping) {
        stream_end(ls, 0);
        return;
    }
    int rc = refresh_sources(ls);
    struct pending_line *lines = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; rc == 0 && i < ls->n_sources; i++) {
        /* A new task's source starts at offset 0: its whole file is new. */
        rc = read_lines(ls, i, ls->sources[i].path, &ls->sources[i].offset, &lines, &n, &cap);
    }
    if (n > 0) {
        swm_sort(lines, n, sizeof(*lines), compare_lines);
        send_lines(ls, lines, 0, n, 0);
    }
    free_lines(lines, n);
    if (rc == SWM_ENOTFOUND)
        stream_end(ls, 1);
}

void daemon__logs(struct node_daemon *nd, struct api_conn *conn,
                  const Swarmc__ServiceLogsRequest *req)
{
    struct swm_err err = {0};
    struct store_read *r = NULL;
    Swarmc__Service *svc = NULL;
    struct log_stream *ls = swm_calloc(1, sizeof(*ls));
    int rc = ls == NULL ? swm_err_set(&err, -ENOMEM, "out of memory")
                        : store_read_begin(nd->store, &r, &err);
    if (rc == 0)
        rc = controlapi_find_service(r, req->service_ref, &svc, &err);
    store_read_end(r);
    if (rc < 0) {
        Swarmc__ControlResponse *resp = controlapi_error_response(rc, err.msg);
        if (resp != NULL)
            daemon__api_send(conn, resp);
        proto_free(resp);
        swm_free(ls);
        return;
    }
    ls->nd = nd;
    ls->conn = conn;
    daemon__api_conn_ref(conn);
    snprintf(ls->service_id, sizeof(ls->service_id), "%s", svc->id);
    proto_free(svc);
    ls->follow = req->follow;
    ls->tail = req->has_tail ? req->tail : -1;
    uv_timer_init(&nd->loop, &ls->poll);
    ls->poll.data = ls;

    struct pending_line *lines = NULL;
    size_t n = 0, cap = 0;
    rc = refresh_sources(ls);
    if (rc == 0)
        rc = read_history(ls, &lines, &n, &cap);
    swm_sort(lines, n, sizeof(*lines), compare_lines);
    size_t from = ls->tail >= 0 && (size_t)ls->tail < n ? n - (size_t)ls->tail : 0;
    send_lines(ls, lines, from, n, !ls->follow);
    free_lines(lines, n);
    if (rc < 0)
        swm_log_warn("logs: reading logs service=%s error=\"%s\"", ls->service_id,
                     swm_strerror(rc));
    if (ls->follow)
        uv_timer_start(&ls->poll, poll_new_lines, FOLLOW_POLL_MS, FOLLOW_POLL_MS);
    else
        stream_end(ls, 0);
}
