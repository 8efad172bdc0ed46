/* Admitting a node that joins (DESIGN.md §6, docs/protocol.md "Joining"):
 * once a joiner proved a join token for a role, the leader issues its
 * certificate and creates its node object, like SwarmKit's CA server does
 * in IssueNodeCertificate. The certificate goes back only once the node
 * object is committed, so a node the cluster answered always exists in the
 * store. Loop thread only. */
#ifndef SWM_MANAGER_JOIN_H
#define SWM_MANAGER_JOIN_H

#include <stdint.h>

#include "common/err.h"
#include "net/identity/identity.h"
#include "store/log.h"
#include "store/store.h"

/* The outcome: status 0 and the issued certificate (borrowed for the
 * call), or a negative status with err. */
typedef void (*manager_admit_cb)(void *arg, int status, const struct ca_cert *cert,
                                 const struct swm_err *err);

/* Admits a new node with identity key `pk` and `role` (enum ca_role): a
 * fresh node id, a certificate issued at wall-clock `now` by the cluster's
 * root for the cluster's --cert-expiry, and a node object (the role both
 * current and desired, availability active, state unknown until its agent
 * registers, status address `addr`, the joiner's IP). Returns 0 and calls
 * cb once the node is committed (or could not be), or a negative code
 * with err and no call. */
int manager_admit_node(struct store *s, struct store_log *log, const uint8_t pk[CA_PUBKEY_LEN],
                       int role, const char *addr, int64_t now, manager_admit_cb cb, void *arg,
                       struct swm_err *err);

/* A certificate for node_id with `role` and key pk, signed by the
 * cluster's root at wall-clock `now` for the cluster's --cert-expiry.
 * Returns 0, SWM_ENOTFOUND (no cluster), SWM_ECORRUPT (no or a damaged
 * CA), -EINVAL, with err. */
int manager_issue_certificate(struct store *s, const char *node_id, int role,
                              const uint8_t pk[CA_PUBKEY_LEN], int64_t now, struct ca_cert *out,
                              struct swm_err *err);

/* Renewal (docs/protocol.md "Certificate renewal"): a new certificate for
 * the node and key of `current` (verified by the channel), with the role
 * the node holds in the store. Returns 0, SWM_ENOTFOUND (the node was
 * removed), or the errors of manager_issue_certificate. */
int manager_renew_certificate(struct store *s, const struct ca_cert *current, int64_t now,
                              struct ca_cert *out, struct swm_err *err);

#endif
