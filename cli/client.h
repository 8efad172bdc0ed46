/* The client side of the control API (proto/control.proto): a unix socket at
 * <run-dir>/swarmc.sock carrying frames of a 4-byte big-endian length and a
 * packed message. The client sends one ControlRequest per connection and
 * reads ControlResponse frames until one has `last` set.
 */
#ifndef SWM_CLI_CLIENT_H
#define SWM_CLI_CLIENT_H

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/control.pb-c.h"

/* No frame may be larger than this, in either direction. */
#define CLI_MAX_FRAME (64u * 1024u * 1024u)

/* Connects to the daemon's socket. Returns 0 with *fd set (caller closes),
 * or a negative errno with err set to Docker's words: "Cannot connect to the
 * swarmc daemon at unix://<path>. Is the daemon running?". */
int cli_client_connect(const char *sock_path, int *fd, struct swm_err *err);

/* Writes msg as one frame. Returns 0, -ENOMEM, -EMSGSIZE or -errno. */
int cli_frame_write(int fd, const ProtobufCMessage *msg, struct swm_err *err);

/* Reads one frame's payload into out (replacing its contents). Returns 0,
 * -ECONNRESET if the peer closed the connection first, -EMSGSIZE for a frame
 * over CLI_MAX_FRAME, or -errno; err says which. */
int cli_frame_read(int fd, struct swm_buf *out, struct swm_err *err);

/* Called for each response frame of a stream. A negative return stops the
 * stream and becomes the result of cli_client_stream (set err). */
typedef int (*cli_frame_fn)(void *arg, const Swarmc__ControlResponse *frame, struct swm_err *err);

/* Sends req and hands every response frame to fn until a frame has `last`
 * set. A frame with a non-zero code ends the stream with that code and err
 * "Error response from daemon: <error>"; fn is not called for it. Returns 0
 * or a negative code. */
int cli_client_stream(const char *sock_path, const Swarmc__ControlRequest *req, cli_frame_fn fn,
                      void *arg, struct swm_err *err);

/* Sends req and returns the whole response in *out (frames merged: repeated
 * fields concatenated, as protobuf merges concatenated encodings). Caller
 * frees *out with proto_free. A non-zero response code is returned as the
 * result, with err "Error response from daemon: <error>"; *out is then not
 * set. */
int cli_client_call(const char *sock_path, const Swarmc__ControlRequest *req,
                    Swarmc__ControlResponse **out, struct swm_err *err);

#endif
