/* A node's own key material on disk (DESIGN.md §6): its identity key, its
 * certificate and the cluster root key it trusts, in
 * <data-dir>/certificates/ (docs/operations.md "Files"). Agents and managers
 * both load them; the manager's CA service (manager/ca) writes the first
 * ones at `swarmc init`.
 *
 * Unlike identity.h this does file I/O (blocking: call it at start-up or on
 * the threadpool, not on a loop thread). Failures return a negative code
 * and, when `err` is not NULL, one line naming the file and what is wrong.
 *
 * Files (raw bytes, no framing; each has a fixed length, checked on load):
 *   node.key     the Ed25519 secret key (seed || public key), 64 bytes, 0600
 *   node.crt     the encoded node certificate, CA_CERT_LEN bytes, 0644
 *   root-ca.pub  the cluster root public key, 32 bytes, 0644 */
#ifndef SWM_NET_IDENTITY_FILES_H
#define SWM_NET_IDENTITY_FILES_H

#include "net/identity/identity.h"

#define CA_FILE_NODE_KEY "node.key"
#define CA_FILE_NODE_CERT "node.crt"
#define CA_FILE_ROOT_PUB "root-ca.pub"

/* What a node keeps: wipe with ca_node_files_wipe() when done. */
struct ca_node_files {
    struct ca_keypair key; /* the node's identity key */
    struct ca_cert cert;   /* signed by root_pk, for key.pk */
    uint8_t root_pk[CA_PUBKEY_LEN];
};

/* Writes f's three files into dir (created 0700 if missing), each
 * atomically and durably (swm_write_file_atomic), the certificate last.
 * Does not check f's consistency (ca_node_files_load does). Returns 0 or
 * -errno with err naming the file. */
int ca_node_files_save(const char *dir, const struct ca_node_files *f, struct swm_err *err);

/* Reads and checks the files in dir: each present, a regular file of the
 * right length; node.key not readable by group or others, its public half
 * matching its seed; node.crt decoding, issued for node.key's public key by
 * root-ca.pub's key (the signature is checked; the validity period is NOT,
 * the caller does that with its clock) and, when node_id is not NULL, for
 * that node. Returns 0, -errno (a file missing or unreadable) or
 * SWM_ECORRUPT, with err set. `out` is set only on success. */
int ca_node_files_load(const char *dir, const char *node_id, struct ca_node_files *out,
                       struct swm_err *err);

/* Wipes f (the secret key with it). Accepts NULL. */
void ca_node_files_wipe(struct ca_node_files *f);

#endif
