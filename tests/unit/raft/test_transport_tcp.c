/* manager/raft/transport_tcp.c on 127.0.0.1: frames both ways, limits,
 * refusal of bad hellos, bad lengths and garbage (the transport keeps
 * serving), reconnect, address change, queue bound, inbound bound, idle
 * timeout, allocation failures and leak-free close. Loops are bounded by
 * iteration counts; nothing asserts timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "manager/raft/transport_tcp.h"
#include "transport_fixture.h"

static struct raft_transport *open_tr(uint64_t id, size_t max_frame, struct sink *s)
{
    struct raft_transport *t = NULL;
    struct swm_err err = {0};
    int rc = raft_tcp_transport_open(&F->loop, id, "127.0.0.1:0", max_frame, &t, &err);
    if (rc != 0)
        fail_msg("open: %s", err.msg);
    assert_true(raft_tcp_transport_port(t) > 0);
    t->recv = sink_recv;
    t->recv_arg = s;
    return t;
}

static void point_at(struct raft_transport *from, uint64_t id, struct raft_transport *to)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", raft_tcp_transport_port(to));
    assert_int_equal(raft_tcp_transport_set_peer(from, id, addr), 0);
}

/* A blocking client socket connected to t; the kernel completes the
 * handshake from the listen backlog without the loop running. */
static int raw_connect(struct raft_transport *t)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)raft_tcp_transport_port(t))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void raw_write(int fd, const void *data, size_t len)
{
    assert_int_equal(write(fd, data, len), (ssize_t)len);
}

static void raw_hello(int fd, uint64_t id)
{
    uint8_t h[16] = "SWMRAFT1";
    for (int i = 0; i < 8; i++)
        h[8 + i] = (uint8_t)(id >> (56 - 8 * i));
    raw_write(fd, h, sizeof(h));
}

static void raw_frame(int fd, size_t len, uint32_t tag)
{
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
    raw_write(fd, hdr, 4);
    uint8_t *b = make_frame(len, tag);
    raw_write(fd, b, len);
    free(b);
}

static bool raw_closed(void *arg)
{
    int fd = *(int *)arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static int local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

struct raw_server {
    int lfd;
    int fd;
    uint8_t got[64];
    size_t len;
};

static bool raw_accepted(void *arg)
{
    struct raw_server *r = arg;
    if (r->fd < 0)
        r->fd = accept(r->lfd, NULL, NULL);
    return r->fd >= 0;
}

static bool raw_received(void *arg)
{
    struct raw_server *r = arg;
    ssize_t n = recv(r->fd, r->got + r->len, sizeof(r->got) - r->len, MSG_DONTWAIT);
    if (n > 0)
        r->len += (size_t)n;
    return r->len >= 23;
}

/* What the sender puts on the wire (docs/protocol.md): the hello, then
 * length-prefixed frames; and a receiver that writes back is dropped. */
static void test_wire_format(void **state)
{
    struct sink sa = {0};
    struct raft_transport *a = open_tr(0x0102030405060708u, 0, &sa);
    struct raw_server r = {.fd = -1};
    r.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(r.lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof(sin);
    assert_int_equal(bind(r.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(r.lfd, 4), 0);
    assert_int_equal(getsockname(r.lfd, (struct sockaddr *)&sin, &slen), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
    assert_int_equal(raft_tcp_transport_set_peer(a, 2, addr), 0);
    assert_int_equal(raft_transport_send(a, 2, "abc", 3), 0);
    assert_true(run_until(raw_accepted, &r));
    assert_true(run_until(raw_received, &r));
    assert_int_equal(r.len, 23);
    assert_memory_equal(r.got, "SWMRAFT1\1\2\3\4\5\6\7\10\0\0\0\3abc", 23);

    raw_write(r.fd, "?", 1);
    for (int i = 0; i < MAX_ITERS && log_count("peer wrote on an outbound") == 0; i++)
        uv_run(&F->loop, UV_RUN_ONCE);
    assert_int_equal(log_count("peer wrote on an outbound"), 1);
    assert_true(run_until(raw_closed, &r.fd));
    close(r.fd);
    close(r.lfd);
    close_all(&a, 1);
}

/* --- tests -------------------------------------------------------------- */

static void test_exchange_both_ways(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, 0, &sa);
    struct raft_transport *b = open_tr(2, 0, &sb);
    point_at(a, 2, b);
    point_at(b, 1, a);
    for (uint32_t i = 1; i <= 3; i++) {
        assert_int_equal(send_tagged(a, 2, 100 * i, i), 0);
        assert_int_equal(send_tagged(b, 1, 50 * i, 10 + i), 0);
    }
    /* Never delivered from inside send. */
    assert_int_equal(sa.frames + sb.frames, 0);
    wait_frames(&sb, 3);
    wait_frames(&sa, 3);
    assert_int_equal(sb.bytes, 600);
    assert_int_equal(sa.bytes, 300);
    assert_int_equal(sa.corrupt + sb.corrupt + sa.out_of_order + sb.out_of_order, 0);
    assert_int_equal(sa.last_tag, 13);
    struct raft_transport *ts[] = {a, b};
    close_all(ts, 2);
}

static void test_many_frames_and_max_size(void **state)
{
    const size_t max = 1u << 20;
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, max, &sa);
    struct raft_transport *b = open_tr(2, max, &sb);
    point_at(a, 2, b);
    size_t total = 0;
    uint32_t tag = 1;
    for (; tag <= 2000; tag++) {
        size_t len = 4 + (tag * 7919u) % 3000;
        assert_int_equal(send_tagged(a, 2, len, tag), 0);
        total += len;
    }
    assert_int_equal(send_tagged(a, 2, max, tag), 0);
    total += max;
    assert_int_equal(send_tagged(a, 2, max + 1, tag + 1), -EMSGSIZE);
    assert_int_equal(raft_transport_send(a, 2, "x", 0), -EMSGSIZE);
    wait_frames(&sb, 2001);
    assert_int_equal(sb.bytes, total);
    assert_int_equal(sb.last_len, max);
    assert_int_equal(sb.corrupt + sb.out_of_order, 0);
    struct raft_transport *ts[] = {a, b};
    close_all(ts, 2);
}

/* The receiver's limit is below the sender's: the big frame closes the
 * connection, the sender reconnects and later frames arrive. */
static void test_oversized_frame_closes_connection(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, 4096, &sa);
    struct raft_transport *b = open_tr(2, 1024, &sb);
    point_at(a, 2, b);
    assert_int_equal(send_tagged(a, 2, 2000, 1), 0);
    for (uint32_t tag = 2; tag < MAX_ITERS && sb.frames == 0; tag++) {
        if (log_count("bad frame length") > 0)
            assert_int_equal(send_tagged(a, 2, 100, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_true(sb.frames > 0);
    assert_int_equal(sb.last_len, 100);
    assert_int_equal(sb.corrupt, 0);
    assert_int_equal(log_count("bad frame length"), 1);

    /* Length 0 from a raw client is refused the same way. */
    int fd = raw_connect(b);
    raw_hello(fd, 9);
    raw_write(fd, "\0\0\0\0", 4);
    assert_true(run_until(raw_closed, &fd));
    close(fd);
    assert_int_equal(log_count("bad frame length"), 2);
    struct raft_transport *ts[] = {a, b};
    close_all(ts, 2);
}

static void test_bad_hello_and_garbage(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, 4096, &sa);
    struct raft_transport *b = open_tr(2, 4096, &sb);

    int fd = raw_connect(b);
    raw_write(fd, "SWMRAFT0\0\0\0\0\0\0\0\1", 16);
    assert_true(run_until(raw_closed, &fd));
    char remote[64];
    snprintf(remote, sizeof(remote), "remote=127.0.0.1:%d", local_port(fd));
    close(fd);
    assert_int_equal(log_count("bad hello"), 1);
    assert_int_equal(log_count(remote), 1);

    /* Random bytes, with and without a valid hello first, some cut short
     * mid-frame; each client disconnects on its own. */
    srand(42);
    for (int i = 0; i < 40; i++) {
        fd = raw_connect(b);
        if (i % 2 == 0)
            raw_hello(fd, 100 + (uint64_t)i);
        uint8_t junk[512];
        size_t len = 1 + (size_t)rand() % sizeof(junk);
        for (size_t j = 0; j < len; j++)
            junk[j] = (uint8_t)rand();
        raw_write(fd, junk, len);
        close(fd);
        run_iters(2);
    }
    /* Whatever garbage did, a well-formed sender is still served. */
    int before = sb.frames;
    point_at(a, 2, b);
    assert_int_equal(send_tagged(a, 2, 300, 7), 0);
    wait_frames(&sb, before + 1);
    assert_int_equal(sb.last_len, 300);
    assert_int_equal(sb.last_tag, 7);
    struct raft_transport *ts[] = {a, b};
    close_all(ts, 2);
}

static void test_reconnect_after_peer_restart(void **state)
{
    struct sink sa = {0}, sb = {0}, sb2 = {0};
    struct raft_transport *a = open_tr(1, 0, &sa);
    struct raft_transport *b = open_tr(2, 0, &sb);
    int port = raft_tcp_transport_port(b);
    point_at(a, 2, b);
    assert_int_equal(send_tagged(a, 2, 64, 1), 0);
    wait_frames(&sb, 1);

    raft_transport_close(b);
    /* Frames sent while the peer is down may be lost; send never fails. */
    for (uint32_t tag = 2; tag < 40; tag++) {
        assert_int_equal(send_tagged(a, 2, 64, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct raft_transport *b2 = NULL;
    assert_int_equal(raft_tcp_transport_open(&F->loop, 2, addr, 0, &b2, NULL), 0);
    b2->recv = sink_recv;
    b2->recv_arg = &sb2;
    for (uint32_t tag = 1000; tag < 1000 + MAX_ITERS && sb2.frames == 0; tag++) {
        assert_int_equal(send_tagged(a, 2, 64, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_true(sb2.frames > 0);
    assert_true(sb2.last_tag >= 1000);
    assert_int_equal(sb.frames, 1);
    assert_int_equal(sb2.corrupt, 0);
    struct raft_transport *ts[] = {a, b2};
    close_all(ts, 2);
}

static void test_queue_bound(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, 0, &sa);
    struct raft_transport *b = open_tr(2, 0, &sb);
    raft_tcp_transport_set_limits(a, &(struct raft_tcp_limits){.peer_queue_bytes = 65536});
    point_at(a, 2, b);
    /* Nothing can leave before the loop runs, so the queue fills. */
    int accepted = 0, rc;
    while ((rc = send_tagged(a, 2, 1000, (uint32_t)accepted + 1)) == 0)
        accepted++;
    assert_int_equal(rc, -ENOBUFS);
    assert_int_equal(accepted, 65536 / 1004);
    wait_frames(&sb, accepted);
    run_iters(10);
    assert_int_equal(sb.frames, accepted);
    assert_int_equal(sb.out_of_order + sb.corrupt, 0);
    /* The queue drained: sending works again. */
    assert_int_equal(send_tagged(a, 2, 1000, 5000), 0);
    wait_frames(&sb, accepted + 1);
    /* A frame larger than the bound still fits an empty queue. */
    assert_int_equal(send_tagged(a, 2, 100000, 5001), 0);
    wait_frames(&sb, accepted + 2);
    assert_int_equal(sb.last_len, 100000);
    struct raft_transport *ts[] = {a, b};
    close_all(ts, 2);
}

static void test_set_peer_address_change(void **state)
{
    struct sink sa = {0}, sb1 = {0}, sb2 = {0};
    struct raft_transport *a = open_tr(1, 0, &sa);
    struct raft_transport *b1 = open_tr(2, 0, &sb1);
    struct raft_transport *b2 = open_tr(2, 0, &sb2);
    point_at(a, 2, b1);
    assert_int_equal(send_tagged(a, 2, 32, 1), 0);
    wait_frames(&sb1, 1);
    point_at(a, 2, b1); /* same address: nothing changes */
    assert_int_equal(send_tagged(a, 2, 32, 2), 0);
    wait_frames(&sb1, 2);

    point_at(a, 2, b2);
    for (uint32_t tag = 3; tag < 8; tag++)
        assert_int_equal(send_tagged(a, 2, 32, tag), 0);
    wait_frames(&sb2, 5);
    run_iters(5);
    assert_int_equal(sb1.frames, 2);
    assert_int_equal(sb2.frames, 5);
    assert_int_equal(sb2.out_of_order + sb2.corrupt, 0);

    /* Frames waiting for a connection follow the new address. */
    point_at(a, 2, b1);
    assert_int_equal(send_tagged(a, 2, 32, 8), 0);
    point_at(a, 2, b2);
    wait_frames(&sb2, 6);
    run_iters(5);
    assert_int_equal(sb1.frames, 2);
    assert_int_equal(sb2.last_tag, 8);

    assert_int_equal(raft_tcp_transport_remove_peer(a, 2), 0);
    assert_int_equal(send_tagged(a, 2, 32, 9), SWM_ENOTFOUND);
    assert_int_equal(raft_tcp_transport_remove_peer(a, 2), SWM_ENOTFOUND);
    struct raft_transport *ts[] = {a, b1, b2};
    close_all(ts, 3);
}

static void test_addresses(void **state)
{
    struct sink sa = {0};
    struct raft_transport *a = open_tr(1, 0, &sa);
    const char *bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:8x", "::1:80",
                         "[::1]",     "[::1:80",    "localhost:80",    ":80",          "1.2.3:80",
                         "[]:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(raft_tcp_transport_set_peer(a, 2, bad[i]), -EINVAL);
    assert_int_equal(raft_tcp_transport_set_peer(a, 0, "127.0.0.1:1"), -EINVAL);
    assert_int_equal(raft_tcp_transport_set_peer(a, 2, "[::1]:2377"), 0);
    assert_int_equal(raft_tcp_transport_set_peer(a, 2, "10.1.2.3:2377"), 0);
    assert_int_equal(send_tagged(a, 3, 10, 1), SWM_ENOTFOUND);

    struct raft_transport *x = NULL;
    struct swm_err err = {0};
    assert_int_equal(raft_tcp_transport_open(&F->loop, 5, "nowhere", 0, &x, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "nowhere"));
    assert_int_equal(raft_tcp_transport_open(&F->loop, 0, "127.0.0.1:0", 0, &x, &err), -EINVAL);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", raft_tcp_transport_port(a));
    assert_int_equal(raft_tcp_transport_open(&F->loop, 5, addr, 0, &x, &err), -EADDRINUSE);
    assert_null(x);
    run_iters(2); /* the failed opens free their handles */

    /* IPv6 both ways, where the host has it. */
    struct sink s6 = {0};
    struct raft_transport *b6 = NULL;
    if (raft_tcp_transport_open(&F->loop, 6, "[::1]:0", 0, &b6, NULL) == 0) {
        b6->recv = sink_recv;
        b6->recv_arg = &s6;
        snprintf(addr, sizeof(addr), "[::1]:%d", raft_tcp_transport_port(b6));
        assert_int_equal(raft_tcp_transport_set_peer(a, 6, addr), 0);
        assert_int_equal(send_tagged(a, 6, 40, 1), 0);
        wait_frames(&s6, 1);
        assert_int_equal(s6.last_len, 40);
    }
    struct raft_transport *ts[] = {a, b6};
    close_all(ts, 2);
}

/* A slow receiver leaves large writes in flight; closing both sides then
 * must free every request (ASan checks) and leave no handle behind
 * (teardown checks). */
static void test_close_with_writes_in_flight(void **state)
{
    const size_t big = 4u << 20;
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, big, &sa);
    struct raft_transport *b = open_tr(2, big, &sb);
    point_at(a, 2, b);
    for (uint32_t tag = 1; tag <= 6; tag++)
        assert_int_equal(send_tagged(a, 2, big, tag), 0);
    wait_frames(&sb, 1);
    assert_true(sb.frames < 6);
    struct raft_transport *ts[] = {a, b};
    close_all(ts, 2);

    /* And with frames still waiting for the connection. */
    a = open_tr(1, 0, &sa);
    b = open_tr(2, 0, &sb);
    point_at(a, 2, b);
    assert_int_equal(send_tagged(a, 2, 1000, 1), 0);
    ts[0] = a;
    ts[1] = b;
    close_all(ts, 2);
}

/* recv may close the transport: no later frame of the same read may be
 * delivered. */
static int close_count;
static void close_on_recv(void *arg, const void *frame, size_t len)
{
    close_count++;
    raft_transport_close(arg);
    /* Closing, not yet freed: everything is refused. */
    assert_int_equal(raft_transport_send(arg, 1, "x", 1), SWM_ESHUTDOWN);
    assert_int_equal(raft_tcp_transport_set_peer(arg, 1, "127.0.0.1:1"), SWM_ESHUTDOWN);
}

static void test_close_from_recv(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, 0, &sa);
    struct raft_transport *b = open_tr(2, 0, &sb);
    b->recv = close_on_recv;
    b->recv_arg = b;
    point_at(a, 2, b);
    for (uint32_t tag = 1; tag <= 50; tag++)
        assert_int_equal(send_tagged(a, 2, 10, tag), 0);
    for (int i = 0; i < MAX_ITERS && close_count == 0; i++)
        uv_run(&F->loop, UV_RUN_ONCE);
    run_iters(5);
    assert_int_equal(close_count, 1);
    close_all(&a, 1);
}

static void test_inbound_limit(void **state)
{
    struct sink sb = {0};
    struct raft_transport *b = open_tr(2, 0, &sb);
    raft_tcp_transport_set_limits(b, &(struct raft_tcp_limits){.max_inbound = 2});
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = raw_connect(b);
        raw_hello(fds[i], 10 + (uint64_t)i);
        raw_frame(fds[i], 20, (uint32_t)i + 1);
    }
    wait_frames(&sb, 2);
    run_iters(10);
    /* The third connection waits in the backlog until a slot frees. */
    assert_int_equal(sb.frames, 2);
    assert_int_equal(log_count("too many inbound"), 1);
    close(fds[0]);
    wait_frames(&sb, 3);
    /* Full again; raising the bound admits the waiting one at once. */
    int fd = raw_connect(b);
    raw_hello(fd, 20);
    raw_frame(fd, 20, 4);
    run_iters(10);
    assert_int_equal(sb.frames, 3);
    raft_tcp_transport_set_limits(b, &(struct raft_tcp_limits){.max_inbound = 3});
    wait_frames(&sb, 4);
    assert_int_equal(sb.last_tag, 4);
    close(fd);
    close(fds[1]);
    close(fds[2]);
    close_all(&b, 1);
}

static bool idle_closed(void *arg)
{
    return log_count("closing silent connection") > 0;
}

static void test_idle_timeout(void **state)
{
    struct sink sa = {0}, sb = {0};
    struct raft_transport *a = open_tr(1, 0, &sa);
    struct raft_transport *b = open_tr(2, 0, &sb);
    raft_tcp_transport_set_limits(b, &(struct raft_tcp_limits){.idle_timeout_ms = 20});
    point_at(a, 2, b);
    /* A stalled loop can let even the first connection idle out: resend. */
    for (uint32_t tag = 1; tag < MAX_ITERS && sb.frames == 0; tag++) {
        assert_int_equal(send_tagged(a, 2, 16, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_true(run_until(idle_closed, NULL));
    int before = sb.frames;
    /* The sender notices and reconnects for the next frames. */
    for (uint32_t tag = 10000; tag < 10000 + MAX_ITERS && sb.frames == before; tag++) {
        assert_int_equal(send_tagged(a, 2, 16, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_true(sb.frames > before);
    assert_true(sb.last_tag >= 10000);
    struct raft_transport *ts[] = {a, b};
    close_all(ts, 2);
}

static void test_oom(void **state)
{
    struct raft_transport *a = NULL;
    int rc = -ENOMEM;
    for (long n = 0; n < 10 && rc != 0; n++) {
        swm_alloc_fail_after(n);
        rc = raft_tcp_transport_open(&F->loop, 1, "127.0.0.1:0", 0, &a, NULL);
        swm_alloc_fail_reset();
        assert_true(rc == 0 || rc == -ENOMEM);
        run_iters(1);
    }
    assert_int_equal(rc, 0);
    struct sink sa = {0}, sb = {0};
    a->recv = sink_recv;
    a->recv_arg = &sa;
    struct raft_transport *b = open_tr(2, 0, &sb);
    swm_alloc_fail_after(0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", raft_tcp_transport_port(b));
    assert_int_equal(raft_tcp_transport_set_peer(a, 2, addr), -ENOMEM);
    swm_alloc_fail_reset();
    point_at(a, 2, b);
    swm_alloc_fail_after(0);
    assert_int_equal(send_tagged(a, 2, 10, 1), -ENOMEM);
    swm_alloc_fail_reset();

    /* Failures in the middle of sending, connecting, accepting and reading:
     * no crash, no leak, and delivery resumes once memory is back. */
    for (long n = 0; n < 8; n++) {
        swm_alloc_fail_after(n);
        rc = send_tagged(a, 2, 3000, 10 + (uint32_t)n);
        run_iters(5);
        swm_alloc_fail_reset();
        assert_true(rc == 0 || rc == -ENOMEM);
    }
    for (uint32_t tag = 100; tag < MAX_ITERS && sb.last_tag < 100; tag++) {
        assert_int_equal(send_tagged(a, 2, 3000, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_true(sb.last_tag >= 100);

    /* An accept without memory is retried later, not lost. */
    int fd = raw_connect(b);
    raw_hello(fd, 77);
    raw_frame(fd, 20, 7000);
    swm_alloc_fail_after(0);
    run_iters(3);
    swm_alloc_fail_reset();
    wait_frames(&sb, sb.frames + 1);
    assert_int_equal(sb.last_tag, 7000);
    close(fd);

    /* A frame longer than one read must be collected; without memory the
     * receiver drops that connection only. */
    assert_int_equal(send_tagged(a, 2, 200000, 7500), 0);
    swm_alloc_fail_after(0);
    for (int i = 0; i < MAX_ITERS && log_count("raft tcp: out of memory") == 0; i++)
        uv_run(&F->loop, UV_RUN_ONCE);
    swm_alloc_fail_reset();
    assert_int_equal(log_count("raft tcp: out of memory"), 1);
    for (uint32_t tag = 8000; tag < 8000 + MAX_ITERS && sb.last_tag < 8000; tag++) {
        assert_int_equal(send_tagged(a, 2, 200000, tag), 0);
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_true(sb.last_tag >= 8000);
    assert_int_equal(sb.last_len, 200000);
    assert_int_equal(sb.corrupt, 0);
    struct raft_transport *ts[] = {a, b};
    close_all(ts, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wire_format, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_exchange_both_ways, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_many_frames_and_max_size, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame_closes_connection, tfx_setup,
                                        tfx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_hello_and_garbage, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_peer_restart, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_set_peer_address_change, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_addresses, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_close_with_writes_in_flight, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_close_from_recv, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_inbound_limit, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_oom, tfx_setup, tfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
