/* The in-process raft transport: members of one hub, on one loop, exchange
 * frames through queues delivered on a later loop turn (never inside send),
 * with links that tests can cut one way or both. Used by unit tests of the
 * raft node and by anything that runs several members in one process. */
#ifndef SWM_MANAGER_RAFT_TRANSPORT_MEM_H
#define SWM_MANAGER_RAFT_TRANSPORT_MEM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "manager/raft/transport.h"

struct raft_mem_hub;

/* Creates a hub on loop. Returns 0 or -ENOMEM/a libuv error. */
int raft_mem_hub_open(uv_loop_t *loop, struct raft_mem_hub **out);

/* Frees the hub once its members are closed and its handle is (the loop
 * must run on). Frames still queued are dropped. */
void raft_mem_hub_close(struct raft_mem_hub *hub);

/* A member's transport (closed with raft_transport_close, normally by the
 * raft node that owns it). Returns 0, SWM_EEXISTS (id already a member),
 * -ENOMEM. */
int raft_mem_transport_open(struct raft_mem_hub *hub, uint64_t id, struct raft_transport **out);

/* Cuts (up = false) or restores the link carrying frames from `from` to
 * `to`. Frames sent over a cut link are dropped. */
void raft_mem_hub_set_link(struct raft_mem_hub *hub, uint64_t from, uint64_t to, bool up);

#endif
