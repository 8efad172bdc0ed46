#include "transport_fixture.h"

#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/netaddr.h"

struct fix *F;

static void pattern(uint8_t block[256], uint32_t tag)
{
    for (size_t i = 0; i < 256; i++)
        block[i] = (uint8_t)(tag * 31u + i);
}

uint8_t *make_frame(size_t len, uint32_t tag)
{
    uint8_t *b = malloc(len);
    assert_non_null(b);
    uint8_t block[256];
    pattern(block, tag);
    for (size_t i = 0; i < len; i += 256)
        memcpy(b + i, block, len - i < 256 ? len - i : 256);
    if (len >= 4) {
        b[0] = (uint8_t)(tag >> 24);
        b[1] = (uint8_t)(tag >> 16);
        b[2] = (uint8_t)(tag >> 8);
        b[3] = (uint8_t)tag;
    }
    return b;
}

void sink_recv(void *arg, const void *frame, size_t len)
{
    struct sink *s = arg;
    const uint8_t *b = frame;
    assert_true(len >= 4); /* every test frame carries its tag */
    uint32_t tag = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    uint8_t block[256];
    pattern(block, tag);
    bool intact = memcmp(b + 4, block + 4, (len < 256 ? len : 256) - 4) == 0;
    for (size_t i = 256; intact && i < len; i += 256)
        intact = memcmp(b + i, block, len - i < 256 ? len - i : 256) == 0;
    if (!intact)
        s->corrupt++;
    if (s->frames > 0 && tag <= s->last_tag)
        s->out_of_order++;
    s->frames++;
    s->bytes += len;
    s->last_len = len;
    s->last_tag = tag;
}

static void tick(uv_timer_t *t)
{
}

int tfx_setup(void **state)
{
    F = calloc(1, sizeof(*F));
    assert_int_equal(uv_loop_init(&F->loop), 0);
    uv_timer_init(&F->loop, &F->tick);
    uv_timer_start(&F->tick, tick, TICK_MS, TICK_MS);
    F->log = open_memstream(&F->logbuf, &F->loglen);
    assert_non_null(F->log);
    swm_log_set_stream(F->log);
    return 0;
}

static void walk_check(uv_handle_t *h, void *arg)
{
    /* Only the tick timer may remain: a leftover transport handle is a bug. */
    if (h != (uv_handle_t *)&F->tick) {
        struct sockaddr_storage sa, pa;
        int n = sizeof(sa), pn = sizeof(pa);
        char s1[64] = "", s2[64] = "";
        if (h->type == UV_TCP) {
            if (uv_tcp_getsockname((uv_tcp_t *)h, (struct sockaddr *)&sa, &n) == 0)
                swm_addr_format(&sa, s1, sizeof(s1));
            if (uv_tcp_getpeername((uv_tcp_t *)h, (struct sockaddr *)&pa, &pn) == 0)
                swm_addr_format(&pa, s2, sizeof(s2));
        }
        fail_msg("handle left open: type %s ref %d active %d closing %d local %s peer %s",
                 uv_handle_type_name(h->type), uv_has_ref(h), uv_is_active(h), uv_is_closing(h), s1,
                 s2);
    }
}

int tfx_teardown(void **state)
{
    uv_walk(&F->loop, walk_check, NULL);
    uv_close((uv_handle_t *)&F->tick, NULL);
    uv_run(&F->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&F->loop), 0);
    swm_log_set_stream(NULL);
    fclose(F->log);
    free(F->logbuf);
    free(F);
    return 0;
}

/* Closes transports and runs the loop until they have freed themselves. */
void close_all(struct raft_transport **ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        raft_transport_close(ts[i]);
    uv_timer_stop(&F->tick);
    uv_run(&F->loop, UV_RUN_DEFAULT);
    uv_timer_start(&F->tick, tick, TICK_MS, TICK_MS);
}

int log_count(const char *needle)
{
    fflush(F->log);
    int n = 0;
    for (const char *p = F->logbuf; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

bool run_until(bool (*done)(void *), void *arg)
{
    for (int i = 0; i < MAX_ITERS && !done(arg); i++)
        uv_run(&F->loop, UV_RUN_ONCE);
    return done(arg);
}

void run_iters(int n)
{
    for (int i = 0; i < n; i++)
        uv_run(&F->loop, UV_RUN_ONCE);
}

struct want {
    struct sink *s;
    int frames;
};

static bool has_frames(void *arg)
{
    struct want *w = arg;
    return w->s->frames >= w->frames;
}

void wait_frames(struct sink *s, int n)
{
    struct want w = {s, n};
    if (!run_until(has_frames, &w)) {
        fflush(F->log);
        fprintf(stderr, "log:\n%s", F->logbuf != NULL ? F->logbuf : "");
        fail_msg("got %d frames (%zu bytes), want %d", s->frames, s->bytes, n);
    }
}

int send_tagged(struct raft_transport *t, uint64_t to, size_t len, uint32_t tag)
{
    uint8_t *b = make_frame(len, tag);
    int rc = raft_transport_send(t, to, b, len);
    free(b); /* send copied it */
    return rc;
}
