/* The manager's certificate authority service (DESIGN.md §6): the cluster's
 * root key and join tokens as stored in the cluster object (Swarmc__RootCA,
 * proto/objects.proto), creating them at `swarmc init`, issuing node
 * certificates with the root key, and rotating a join token. It builds on
 * net/identity, which holds the formats and checks both sides share.
 *
 * No I/O except casvc_init_node (which writes the first node's key material
 * through net/identity/files.h) and no hidden clock: times are wall-clock
 * ns passed in. Functions that can fail return 0 or a negative code and,
 * when `err` is not NULL, a one-line message. Secrets taken out of a RootCA
 * (struct ca_keypair, struct ca_join_secrets) are the caller's to wipe.
 *
 * The RootCA holds the root private key in the clear until autolock and the
 * store's data-key encryption exist (DESIGN.md §5). */
#ifndef SWM_MANAGER_CA_CA_H
#define SWM_MANAGER_CA_CA_H

#include "net/identity/files.h"
#include "net/identity/identity.h"
#include "proto/codec.h"

/* Makes a new CA: a root key pair from the CSPRNG and a worker and a manager
 * join token (different secrets). *out is a new message the caller frees
 * with proto_free (set only on success). Returns 0, -ENOMEM or -EIO (no
 * randomness). */
int casvc_root_create(Swarmc__RootCA **out, struct swm_err *err);

/* Checks a stored CA and takes out its root key pair: both keys present and
 * of the right length, the public key matching the private one, both tokens
 * parsing and naming this root. `root` may be NULL (only check). Returns 0
 * or SWM_ECORRUPT ("the cluster's root CA ..."); `root` is set only on
 * success and must then be wiped with ca_keypair_wipe. */
int casvc_root_check(const Swarmc__RootCA *ca, struct ca_keypair *root, struct swm_err *err);

/* The join token of `role` (enum ca_role) in ca: a string owned by ca.
 * Returns NULL if role is not a role. */
const char *casvc_token(const Swarmc__RootCA *ca, int role);

/* Replaces the join token of `role` with one with a fresh secret, for the
 * same root (its digest is unchanged); the other role's token is kept.
 * Returns 0, -EINVAL (bad role), SWM_ECORRUPT (ca does not check), -ENOMEM
 * or -EIO; ca is unchanged on failure. */
int casvc_token_rotate(Swarmc__RootCA *ca, int role, struct swm_err *err);

/* The secrets of ca's two tokens, for ca_join_verify. Returns 0 or
 * SWM_ECORRUPT; out is set only on success and must be wiped
 * (sodium_memzero) after use. */
int casvc_join_secrets(const Swarmc__RootCA *ca, struct ca_join_secrets *out, struct swm_err *err);

/* Issues a certificate for node_pk with ca's root key: as ca_cert_issue,
 * after casvc_root_check. `lifetime` <= 0 means CA_CERT_EXPIRY_DEFAULT.
 * Returns 0, SWM_ECORRUPT or -EINVAL; out is set only on success. */
int casvc_issue(const Swarmc__RootCA *ca, const char *cluster_id, const char *node_id, int role,
                const uint8_t node_pk[CA_PUBKEY_LEN], int64_t now, int64_t lifetime,
                struct ca_cert *out, struct swm_err *err);

/* The first manager's key material at `swarmc init`: a new identity key,
 * a manager certificate for node_id issued by ca at `now` for `lifetime`
 * (<= 0: the default), written to certs_dir with ca_node_files_save.
 * Returns 0 or a negative code with err naming what failed. */
int casvc_init_node(const Swarmc__RootCA *ca, const char *certs_dir, const char *cluster_id,
                    const char *node_id, int64_t now, int64_t lifetime, struct swm_err *err);

/* Wipes the secret fields of ca (private key, token secrets) in place, for
 * a copy that leaves the CA service (e.g. `info`): the message stays valid,
 * with an empty private key and no tokens. Accepts NULL. */
void casvc_root_redact(Swarmc__RootCA *ca);

#endif
