/* What the raft transport tests share (test_transport_tcp.c,
 * test_transport_chan.c): a loop with a tick timer so every wait is finite,
 * the log captured in memory, tagged frames whose content and order a sink
 * checks, and bounded waits. */
#ifndef SWM_TESTS_UNIT_RAFT_TRANSPORT_FIXTURE_H
#define SWM_TESTS_UNIT_RAFT_TRANSPORT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "manager/raft/transport.h"

/* UV_RUN_ONCE returns at least this often thanks to the tick timer; the
 * iteration bound makes every wait finite (>= 20 s of loop time). */
#define TICK_MS 5
#define MAX_ITERS 4000

struct sink {
    int frames;
    size_t bytes;
    size_t last_len;
    uint32_t last_tag;
    int corrupt;
    int out_of_order;
};

struct fix {
    uv_loop_t loop;
    uv_timer_t tick;
    FILE *log;
    char *logbuf;
    size_t loglen;
};

extern struct fix *F; /* set by tfx_setup */

/* cmocka setup/teardown: the loop, the tick timer and the log capture;
 * teardown fails the test if any other handle is left open. */
int tfx_setup(void **state);
int tfx_teardown(void **state);

/* A frame of len bytes starting with the 4-byte tag, then a pattern derived
 * from it (malloc'd; the caller frees it). */
uint8_t *make_frame(size_t len, uint32_t tag);
/* raft_transport recv callback counting into the struct sink arg. */
void sink_recv(void *arg, const void *frame, size_t len);
int send_tagged(struct raft_transport *t, uint64_t to, size_t len, uint32_t tag);

/* Closes transports and runs the loop until they have freed themselves. */
void close_all(struct raft_transport **ts, size_t n);
/* Occurrences of needle in the captured log. */
int log_count(const char *needle);
bool run_until(bool (*done)(void *), void *arg);
void run_iters(int n);
/* Runs until s has n frames; fails the test with the log otherwise. */
void wait_frames(struct sink *s, int n);

#endif
