/* A stand-in for the node daemon's control socket in unit tests: a thread
 * accepts connections on <run-dir>/swarmc.sock in a temporary run dir,
 * reads one ControlRequest per connection, records it, and answers with
 * whatever the test's handler put in the reply (any frames, or raw bytes to
 * test the framing). */
#ifndef SWM_TEST_CLI_FAKE_DAEMON_H
#define SWM_TEST_CLI_FAKE_DAEMON_H

#include <stddef.h>

#include "proto/control.pb-c.h"

struct fake_daemon;

/* The bytes a handler sends back. The fake daemon never allocates through
 * swm_malloc, so tests can inject allocation failures into the client
 * alone. */
struct fake_out {
    unsigned char *data;
    size_t len;
};

/* Appends n raw bytes to out. */
void fake_out_append(struct fake_out *out, const void *data, size_t n);

/* Called on the server thread for each request; appends the answer to raw
 * (fake_reply / fake_reply_error / fake_out_append). */
typedef void (*fake_handler)(void *arg, const Swarmc__ControlRequest *req, struct fake_out *raw);

/* Starts a fake daemon. Returns NULL on failure. */
struct fake_daemon *fake_daemon_start(fake_handler handler, void *arg);

/* The run dir to give the CLI (--run-dir / ctx.run_dir). */
const char *fake_daemon_run_dir(const struct fake_daemon *d);

/* Stops the thread, removes the socket and the directory, frees d. */
void fake_daemon_stop(struct fake_daemon *d);

/* Requests received so far (owned by d) and their count. */
size_t fake_daemon_n_requests(const struct fake_daemon *d);
const Swarmc__ControlRequest *fake_daemon_request(const struct fake_daemon *d, size_t i);

/* Appends resp as one frame to raw. */
void fake_reply(struct fake_out *raw, const Swarmc__ControlResponse *resp);

/* Appends a final frame with code and error message. */
void fake_reply_error(struct fake_out *raw, int code, const char *error);

/* Appends a final, empty, successful frame. */
void fake_reply_ok(struct fake_out *raw);

#endif
