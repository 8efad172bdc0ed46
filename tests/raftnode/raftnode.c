/* raftnode: one raft member in its own process — the real raft node
 * (manager/raft/node.h), the real store with fsync, and the plain TCP
 * transport — for the multi-process tests (kill_leader.sh) and the commit
 * benchmark (bench/raft_commit.sh). Not part of swarmc itself: the daemon
 * runs the same node; this program only exposes it to scripts.
 *
 *   raftnode --id N --data DIR --listen HOST:PORT --client PORT
 *            [--peer ID=HOST:PORT]... [--tick-ms MS] [--election-tick N]
 *
 * The members are the node itself and every --peer, all voters (each
 * member must be given the same set). Clients speak lines over TCP on
 * 127.0.0.1:PORT:
 *
 *   PUT key        create a task named key   -> OK index | ERR code message
 *   GET key        linearizable read         -> VAL version | NONE | ERR ...
 *   LGET key       local read, no barrier    -> VAL version | NONE
 *   COUNT          tasks in the local store  -> COUNT n
 *   LEADER         -> LEADER id (0: unknown) SELF|OTHER
 *   BENCH P N      N writes from P concurrent proposers in this process
 *                  -> BENCH ops=N secs=S ops_per_sec=R p50_us=A p99_us=B max_us=C
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/sort.h"
#include "manager/raft/node.h"
#include "manager/raft/transport_tcp.h"
#include "proto/codec.h"

#define MAX_PEERS 8
#define LINE_MAX_LEN 256

struct peer {
    uint64_t id;
    const char *addr;
};

struct options {
    uint64_t id;
    const char *data, *listen;
    int client_port;
    struct peer peers[MAX_PEERS];
    size_t n_peers;
    unsigned tick_ms, election_tick;
};

struct app {
    uv_loop_t *loop;
    struct store *store;
    struct raft_node *node;
    uv_tcp_t server;
    uv_signal_t sigterm;
    struct client *clients;
    bool stopping;
    uint64_t seq; /* names of benchmark entries */
};

struct client {
    uv_tcp_t tcp;
    struct app *app;
    struct client *next, **prev; /* in app->clients */
    char line[LINE_MAX_LEN];
    size_t len;
    bool busy; /* a request is in flight: further input waits */
    bool gone; /* the peer closed while busy: close once the request is done */
};

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "raftnode: %s%s\n", what, detail);
    exit(2);
}

/* --- entries ----------------------------------------------------------------- */

/* A small entry: one task create, about 60 bytes packed. */
static Swarmc__StoreEntry *task_entry(const char *id)
{
    Swarmc__Task task = SWARMC__TASK__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    task.id = (char *)id;
    task.meta = &meta;
    task.service_id = "bench";
    task.has_desired_state = 1;
    task.desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    Swarmc__StoreAction act = SWARMC__STORE_ACTION__INIT;
    Swarmc__StoreAction *acts[1] = {&act};
    act.has_kind = 1;
    act.kind = SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE;
    act.target_case = SWARMC__STORE_ACTION__TARGET_TASK;
    act.task = &task;
    Swarmc__StoreEntry entry = SWARMC__STORE_ENTRY__INIT;
    entry.actions = acts;
    entry.n_actions = 1;
    return proto_clone(&entry);
}

/* --- replies ------------------------------------------------------------------ */

static void written(uv_write_t *req, int status)
{
    swm_free(req->data);
    swm_free(req);
}

static void reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct client *c, const char *fmt, ...)
{
    char *text = swm_malloc(LINE_MAX_LEN * 2);
    uv_write_t *req = swm_malloc(sizeof(*req));
    if (text == NULL || req == NULL) {
        swm_free(text);
        swm_free(req);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, LINE_MAX_LEN * 2 - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= LINE_MAX_LEN * 2 - 1)
        n = LINE_MAX_LEN * 2 - 2;
    text[n++] = '\n';
    req->data = text;
    uv_buf_t buf = uv_buf_init(text, (unsigned)n);
    if (uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, written) < 0)
        written(req, 0);
}

static void reply_err(struct client *c, int code, const char *msg)
{
    reply(c, "ERR %d %s", code, msg != NULL && msg[0] ? msg : swm_strerror(code));
}

/* --- requests ------------------------------------------------------------------ */

static void process_input(struct client *c);
static void client_closed(uv_handle_t *h);

/* A client is closed only between requests: a request's callback holds it. */
static void request_done(struct client *c)
{
    c->busy = false;
    if (c->gone || c->app->stopping)
        uv_close((uv_handle_t *)&c->tcp, client_closed);
    else
        process_input(c);
}

static void put_committed(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct client *c = arg;
    if (status < 0)
        reply_err(c, status, err->msg);
    else if (err->code != 0)
        reply_err(c, err->code, err->msg);
    else
        reply(c, "OK %" PRIu64, index);
    request_done(c);
}

static uint64_t local_version(struct app *a, const char *key, bool *found)
{
    struct store_read *r;
    Swarmc__Task *t = NULL;
    *found = false;
    if (store_read_begin(a->store, &r, NULL) < 0)
        return 0;
    uint64_t v = 0;
    if (store_get_task(r, key, &t) == 0) {
        *found = true;
        v = t->meta != NULL ? t->meta->version : 0;
    }
    proto_free(t);
    store_read_end(r);
    return v;
}

static void reply_version(struct client *c, const char *key)
{
    bool found;
    uint64_t v = local_version(c->app, key, &found);
    if (found)
        reply(c, "VAL %" PRIu64, v);
    else
        reply(c, "NONE");
}

struct get_req {
    struct client *c;
    char key[LINE_MAX_LEN];
};

static void get_ready(void *arg, int status, const struct swm_err *err)
{
    struct get_req *g = arg;
    if (status < 0)
        reply_err(g->c, status, err->msg);
    else
        reply_version(g->c, g->key);
    struct client *c = g->c;
    swm_free(g);
    request_done(c);
}

static size_t count_tasks(struct app *a)
{
    struct store_read *r;
    Swarmc__Task **tasks = NULL;
    size_t n = 0;
    if (store_read_begin(a->store, &r, NULL) < 0)
        return 0;
    if (store_list_tasks(r, &tasks, &n) == 0)
        store_free_list(tasks, n);
    store_read_end(r);
    return n;
}

/* --- the benchmark ------------------------------------------------------------ */

struct bench {
    struct client *c;
    size_t total, issued, done, failed;
    bool starting; /* inside bench_start: finishing waits for it */
    uint64_t start_ns;
    uint64_t *lat_ns; /* per write */
};

struct bench_op {
    struct bench *b;
    size_t slot;
    uint64_t t0;
};

static void bench_issue(struct bench *b);

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void bench_finish(struct bench *b)
{
    double secs = (double)(uv_hrtime() - b->start_ns) / 1e9;
    size_t ok = b->done - b->failed;
    swm_sort(b->lat_ns, ok, sizeof(uint64_t), cmp_u64);
    uint64_t p50 = ok ? b->lat_ns[ok / 2] : 0, p99 = ok ? b->lat_ns[ok * 99 / 100] : 0;
    uint64_t max = ok ? b->lat_ns[ok - 1] : 0;
    reply(b->c,
          "BENCH ops=%zu failed=%zu secs=%.3f ops_per_sec=%.0f p50_us=%" PRIu64 " p99_us=%" PRIu64
          " max_us=%" PRIu64,
          ok, b->failed, secs, ok / secs, p50 / 1000, p99 / 1000, max / 1000);
    struct client *c = b->c;
    swm_free(b->lat_ns);
    swm_free(b);
    request_done(c);
}

static void bench_committed(void *arg, int status, uint64_t index, const struct swm_err *err)
{
    struct bench_op *op = arg;
    struct bench *b = op->b;
    if (status < 0 || err->code != 0)
        b->failed++;
    else
        b->lat_ns[b->done - b->failed] = uv_hrtime() - op->t0;
    b->done++;
    swm_free(op);
    bench_issue(b);
}

/* Closed loop: each proposer issues its next write when the last commits. */
static void bench_issue(struct bench *b)
{
    if (b->issued == b->total) {
        if (b->done == b->total && !b->starting)
            bench_finish(b);
        return;
    }
    char id[40];
    snprintf(id, sizeof(id), "b%" PRIu64, ++b->c->app->seq);
    struct bench_op *op = swm_malloc(sizeof(*op));
    Swarmc__StoreEntry *e = task_entry(id);
    b->issued++;
    int rc = op == NULL || e == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        *op = (struct bench_op){.b = b, .t0 = uv_hrtime()};
        rc = store_log_propose(raft_node_log(b->c->app->node), e, bench_committed, op);
    }
    if (rc < 0) { /* counted as failed; the next write goes on a later turn */
        proto_free(e);
        swm_free(op);
        b->failed++;
        b->done++;
    }
}

static void bench_start(struct client *c, size_t proposers, size_t total)
{
    struct bench *b = swm_calloc(1, sizeof(*b));
    uint64_t *lat = swm_calloc(total ? total : 1, sizeof(*lat));
    if (b == NULL || lat == NULL || proposers == 0 || total < proposers) {
        swm_free(b);
        swm_free(lat);
        reply_err(c, -EINVAL, "BENCH needs 0 < proposers <= writes");
        request_done(c);
        return;
    }
    *b = (struct bench){
        .c = c, .total = total, .starting = true, .start_ns = uv_hrtime(), .lat_ns = lat};
    for (size_t i = 0; i < proposers; i++)
        bench_issue(b);
    b->starting = false;
    if (b->done == b->total)
        bench_finish(b);
}

/* --- the line protocol -------------------------------------------------------- */

static void handle_line(struct client *c, char *line)
{
    struct app *a = c->app;
    char cmd[16] = "", key[LINE_MAX_LEN] = "";
    unsigned long p = 0, n = 0;
    sscanf(line, "%15s %255s", cmd, key);
    c->busy = true;
    if (strcmp(cmd, "PUT") == 0 && key[0]) {
        Swarmc__StoreEntry *e = task_entry(key);
        int rc =
            e == NULL ? -ENOMEM : store_log_propose(raft_node_log(a->node), e, put_committed, c);
        if (rc < 0) {
            proto_free(e);
            reply_err(c, rc, NULL);
            c->busy = false;
        }
    } else if (strcmp(cmd, "GET") == 0 && key[0]) {
        struct get_req *g = swm_calloc(1, sizeof(*g));
        int rc = g == NULL ? -ENOMEM : 0;
        if (g != NULL) {
            g->c = c;
            snprintf(g->key, sizeof(g->key), "%s", key);
            rc = raft_node_read_barrier(a->node, get_ready, g);
        }
        if (rc < 0) {
            swm_free(g);
            reply_err(c, rc, NULL);
            c->busy = false;
        }
    } else if (strcmp(cmd, "LGET") == 0 && key[0]) {
        reply_version(c, key);
        c->busy = false;
    } else if (strcmp(cmd, "COUNT") == 0) {
        reply(c, "COUNT %zu", count_tasks(a));
        c->busy = false;
    } else if (strcmp(cmd, "LEADER") == 0) {
        reply(c, "LEADER %016" PRIx64 " %s", raft_node_leader(a->node),
              raft_node_is_leader(a->node) ? "SELF" : "OTHER");
        c->busy = false;
    } else if (strcmp(cmd, "BENCH") == 0 && sscanf(line, "BENCH %lu %lu", &p, &n) == 2) {
        bench_start(c, p, n);
    } else {
        reply_err(c, -EINVAL, "unknown request");
        c->busy = false;
    }
}

/* Handles complete lines while no request is in flight. */
static void process_input(struct client *c)
{
    char *nl;
    while (!c->busy && (nl = memchr(c->line, '\n', c->len)) != NULL) {
        *nl = '\0';
        char line[LINE_MAX_LEN];
        snprintf(line, sizeof(line), "%s", c->line);
        size_t used = (size_t)(nl - c->line) + 1;
        memmove(c->line, nl + 1, c->len - used);
        c->len -= used;
        handle_line(c, line);
    }
}

static void client_closed(uv_handle_t *h)
{
    struct client *c = h->data;
    if ((*c->prev = c->next) != NULL)
        c->next->prev = c->prev;
    swm_free(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;
    buf->base = c->line + c->len;
    buf->len = sizeof(c->line) - c->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = s->data;
    if (nread < 0 || (nread == 0 && c->len == sizeof(c->line))) {
        uv_read_stop(s);
        c->gone = true;
        if (!c->busy)
            uv_close((uv_handle_t *)s, client_closed);
        return;
    }
    c->len += (size_t)nread;
    process_input(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct app *a = server->data;
    struct client *c = swm_calloc(1, sizeof(*c));
    if (status < 0 || c == NULL) {
        swm_free(c);
        return;
    }
    c->app = a;
    c->next = a->clients;
    c->prev = &a->clients;
    if (a->clients != NULL)
        a->clients->prev = &c->next;
    a->clients = c;
    uv_tcp_init(a->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) < 0)
        uv_close((uv_handle_t *)&c->tcp, client_closed);
}

/* --- main ------------------------------------------------------------------------ */

static void parse_args(int argc, char **argv, struct options *o)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--id") == 0)
            o->id = strtoull(v, NULL, 0);
        else if (strcmp(k, "--data") == 0)
            o->data = v;
        else if (strcmp(k, "--listen") == 0)
            o->listen = v;
        else if (strcmp(k, "--client") == 0)
            o->client_port = atoi(v);
        else if (strcmp(k, "--tick-ms") == 0)
            o->tick_ms = (unsigned)atoi(v);
        else if (strcmp(k, "--election-tick") == 0)
            o->election_tick = (unsigned)atoi(v);
        else if (strcmp(k, "--peer") == 0 && o->n_peers < MAX_PEERS && strchr(v, '=') != NULL) {
            o->peers[o->n_peers].id = strtoull(v, NULL, 0);
            o->peers[o->n_peers++].addr = strchr(v, '=') + 1;
        } else
            die("unknown or incomplete option ", k);
    }
    if (o->id == 0 || o->data == NULL || o->listen == NULL || o->client_port <= 0)
        die("usage: raftnode --id N --data DIR --listen HOST:PORT --client PORT "
            "[--peer ID=HOST:PORT]...",
            "");
}

static void on_sigterm(uv_signal_t *h, int signum)
{
    struct app *a = h->data;
    a->stopping = true;
    raft_node_close(a->node); /* in-flight requests complete with SWM_ESHUTDOWN */
    a->node = NULL;
    for (struct client *c = a->clients; c != NULL; c = c->next)
        if (!c->busy && !uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, client_closed);
    uv_close((uv_handle_t *)&a->server, NULL);
    uv_close((uv_handle_t *)h, NULL);
}

static void start_node(struct app *a, const struct options *o)
{
    struct swm_err err = {0};
    struct raft_transport *t = NULL;
    if (raft_tcp_transport_open(a->loop, o->id, o->listen, 0, &t, &err) < 0)
        die(err.msg, "");
    struct raft_server servers[MAX_PEERS + 1] = {{.id = o->id, .role = RAFT_VOTER}};
    for (size_t i = 0; i < o->n_peers; i++) {
        servers[i + 1] = (struct raft_server){.id = o->peers[i].id, .role = RAFT_VOTER};
        if (raft_tcp_transport_set_peer(t, o->peers[i].id, o->peers[i].addr) < 0)
            die("bad peer address ", o->peers[i].addr);
    }
    struct raft_configuration conf = {.servers = servers, .n_servers = o->n_peers + 1};
    struct raft_node_options no = {
        .id = o->id, .tick_ms = o->tick_ms, .election_tick = o->election_tick, .bootstrap = &conf};
    if (raft_node_open(a->loop, a->store, &no, t, &a->node, &err) < 0)
        die(err.msg, "");
}

static void start_client_server(struct app *a, int port)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(a->loop, &a->server);
    a->server.data = a;
    if (uv_tcp_bind(&a->server, (const struct sockaddr *)&addr, 0) < 0 ||
        uv_listen((uv_stream_t *)&a->server, 64, on_connection) < 0)
        die("cannot listen for clients", "");
}

int main(int argc, char **argv)
{
    struct options o = {0};
    parse_args(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    struct app a = {.loop = uv_default_loop()};
    struct swm_err err = {0};
    if (store_open(o.data, &a.store, &err) < 0)
        die(err.msg, "");
    start_node(&a, &o);
    start_client_server(&a, o.client_port);
    uv_signal_init(a.loop, &a.sigterm);
    a.sigterm.data = &a;
    uv_signal_start(&a.sigterm, on_sigterm, SIGTERM);
    swm_log_info("raftnode: member %016" PRIx64 " serving clients on 127.0.0.1:%d", o.id,
                 o.client_port);
    uv_run(a.loop, UV_RUN_DEFAULT);
    store_close(a.store);
    return 0;
}
