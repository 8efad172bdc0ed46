/* Node identity (DESIGN.md §6, docs/protocol.md "Secure channel"): the
 * cluster certificate authority's formats and checks — Ed25519 root and node identity keys, node
 * certificates signed by the root, join tokens and the proof of a token's secret, revocation, and
 * the renewal schedule.
 *
 * Pure library: no I/O, no hidden clock. Every time is wall-clock
 * nanoseconds since the Unix epoch (swm_now_ns()), passed in by the caller.
 * Randomness comes from libsodium's randombytes unless stated otherwise.
 * Functions that can fail return 0 or a negative code and, when `err` is not
 * NULL, a one-line message naming what is wrong. Secrets are wiped with
 * sodium_memzero and compared with sodium_memcmp.
 *
 * The library depends only on common/ and libsodium and lives in net/
 * (files.h, which loads and saves a node's own key material, is its only
 * part doing I/O):
 * agents verify with it too, and agent/ never includes manager/. */
#ifndef SWM_NET_IDENTITY_IDENTITY_H
#define SWM_NET_IDENTITY_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/id.h"

#define CA_PUBKEY_LEN 32 /* crypto_sign_PUBLICKEYBYTES */
#define CA_SECKEY_LEN 64 /* crypto_sign_SECRETKEYBYTES */
#define CA_SIG_LEN 64    /* crypto_sign_BYTES */

/* --cert-expiry default: 2160h (90 days), in nanoseconds. */
#define CA_CERT_EXPIRY_DEFAULT (INT64_C(2160) * 3600 * INT64_C(1000000000))
/* A new certificate is valid from this long before its issue time, so that a
 * node whose clock lags the manager's a little can use it at once. */
#define CA_CERT_BACKDATE (INT64_C(300) * INT64_C(1000000000))

/* The role a certificate (or a join token) grants. Values are the wire
 * values; 0 is never valid. */
enum ca_role {
    CA_ROLE_WORKER = 1,
    CA_ROLE_MANAGER = 2,
};

/* Bit masks of roles, for "which peer roles are acceptable here". */
#define CA_ROLE_BIT(role) (1u << (unsigned)(role))
#define CA_ROLES_ANY (CA_ROLE_BIT(CA_ROLE_WORKER) | CA_ROLE_BIT(CA_ROLE_MANAGER))

/* "worker" or "manager"; "invalid" for anything else. Never NULL. */
const char *ca_role_name(int role);

/* ------------------------------------------------------------- keys -- */

/* An Ed25519 key pair: the cluster root key or a node's identity key. The
 * secret half must be wiped with ca_keypair_wipe() when done. */
struct ca_keypair {
    uint8_t pk[CA_PUBKEY_LEN];
    uint8_t sk[CA_SECKEY_LEN];
};

/* Generates a new key pair from the CSPRNG. Returns 0, or -EIO if libsodium
 * cannot initialise (kp untouched). */
int ca_keypair_generate(struct ca_keypair *kp);

/* Derives a key pair from a 32-byte seed (tests, and storing only the seed).
 * Returns 0 or -EINVAL (seed is NULL). */
int ca_keypair_from_seed(struct ca_keypair *kp, const uint8_t seed[32]);

/* Wipes both halves. Accepts NULL. */
void ca_keypair_wipe(struct ca_keypair *kp);

/* ----------------------------------------------------- certificates -- */

/* Version 1 of the encoded certificate: a fixed 208-byte big-endian layout
 * (docs/protocol.md "Node certificates"). */
#define CA_CERT_VERSION 1
#define CA_CERT_LEN 208

/* A node certificate: the root's signature over everything else. */
struct ca_cert {
    uint8_t version;                  /* CA_CERT_VERSION */
    uint8_t role;                     /* enum ca_role */
    char node_id[SWM_ID_LEN + 1];     /* NUL-terminated swm_id */
    char cluster_id[SWM_ID_LEN + 1];  /* NUL-terminated swm_id */
    uint8_t node_pk[CA_PUBKEY_LEN];   /* the node's Ed25519 identity key */
    uint8_t issuer_pk[CA_PUBKEY_LEN]; /* the root key that signed it */
    uint64_t serial;                  /* unique per issue; informational */
    int64_t not_before;               /* wall-clock ns */
    int64_t not_after;                /* wall-clock ns, > not_before */
    uint8_t sig[CA_SIG_LEN];          /* Ed25519 by issuer over the rest */
};

/* Fills and signs a certificate for `node_pk`, valid from `now -
 * CA_CERT_BACKDATE` to `now + lifetime`, with a random serial. `root` is
 * borrowed. Returns 0, or -EINVAL with a message (bad role, node or cluster
 * id that is not an swm_id, lifetime <= 0 or overflowing). `out` is set only
 * on success. */
int ca_cert_issue(struct ca_cert *out, const struct ca_keypair *root, const char *node_id,
                  const char *cluster_id, int role, const uint8_t node_pk[CA_PUBKEY_LEN],
                  int64_t now, int64_t lifetime, struct swm_err *err);

/* (Re)computes cert->sig with `root`, setting cert->issuer_pk and version.
 * Validates the fields like ca_cert_decode. Returns 0 or -EINVAL. */
int ca_cert_sign(struct ca_cert *cert, const struct ca_keypair *root, struct swm_err *err);

/* Writes the CA_CERT_LEN-byte encoding of cert into out. Never fails for a
 * certificate that ca_cert_issue/ca_cert_sign/ca_cert_decode produced. */
void ca_cert_encode(const struct ca_cert *cert, uint8_t out[CA_CERT_LEN]);

/* Decodes and validates the form of an encoded certificate (magic, version,
 * length, role, ids, key not all zero, not_before < not_after) without
 * checking its signature (ca_cert_verify does). Never trusts a byte of
 * `buf`. Returns 0, or SWM_EPROTO with a message; `out` is set only on
 * success. */
int ca_cert_decode(struct ca_cert *out, const void *buf, size_t len, struct swm_err *err);

/* The set of removed nodes whose certificates are refused (`node rm`). A
 * sorted array of node ids; zero-initialise to make an empty set. Not
 * thread-safe. */
struct ca_revoked {
    char (*ids)[SWM_ID_LEN + 1]; /* owned */
    size_t len;
    size_t cap;
};

/* Adds node_id. Returns 0 (also if already there), -EINVAL (not an swm_id),
 * -ENOMEM. */
int ca_revoked_add(struct ca_revoked *set, const char *node_id);

/* True if node_id is in the set. Accepts a NULL set (empty). */
bool ca_revoked_contains(const struct ca_revoked *set, const char *node_id);

/* Frees the storage; the set becomes empty. Accepts NULL. */
void ca_revoked_free(struct ca_revoked *set);

/* Checks that cert chains to `root_pk` (issuer matches and the root's
 * signature verifies), that `now` lies in [not_before, not_after), that its
 * node is not in `revoked` (may be NULL), and that its role is in
 * `allowed_roles` (a mask of CA_ROLE_BIT). Returns 0 or:
 *   SWM_EWRONGCLUSTER  issued by another root,
 *   SWM_EAUTH          signature does not verify,
 *   SWM_EEXPIRED       expired or not yet valid,
 *   SWM_EREVOKED       the node was removed,
 *   -EPERM             the role is not allowed here. */
int ca_cert_verify(const struct ca_cert *cert, const uint8_t root_pk[CA_PUBKEY_LEN], int64_t now,
                   const struct ca_revoked *revoked, unsigned allowed_roles, struct swm_err *err);

/* When to renew cert: at not_before + f * (not_after - not_before) with f
 * uniform in [0.5, 0.8], drawn from `rnd` (pass randombytes_random(); tests
 * pass fixed values: 0 gives 50%, UINT32_MAX gives 80%). */
int64_t ca_cert_renew_time(const struct ca_cert *cert, uint32_t rnd);

/* ----------------------------------------------------- join tokens -- */

/* SWMTKN-1-<50 base-36 chars of the root key digest>-<25 base-36 chars of
 * secret>, like Docker's. The digest is BLAKE2b-256 of the root public key;
 * the secret is 128 random bits. */
#define CA_TOKEN_DIGEST_CHARS 50
#define CA_TOKEN_SECRET_CHARS 25
#define CA_TOKEN_LEN (9 + CA_TOKEN_DIGEST_CHARS + 1 + CA_TOKEN_SECRET_CHARS)

/* A parsed join token. The secret is sensitive: wipe with ca_token_wipe. */
struct ca_token {
    char digest[CA_TOKEN_DIGEST_CHARS + 1];
    char secret[CA_TOKEN_SECRET_CHARS + 1];
};

/* Writes the base-36 digest of root_pk (CA_TOKEN_DIGEST_CHARS chars + NUL). */
void ca_root_digest(const uint8_t root_pk[CA_PUBKEY_LEN], char out[CA_TOKEN_DIGEST_CHARS + 1]);

/* Makes a new token for the cluster of root_pk with a fresh random secret
 * (worker and manager tokens are made separately and so differ;
 * `join-token --rotate` makes a new one). Writes CA_TOKEN_LEN chars + NUL.
 * Returns 0, or -EIO if libsodium cannot initialise. */
int ca_token_generate(const uint8_t root_pk[CA_PUBKEY_LEN], char out[CA_TOKEN_LEN + 1]);

/* Parses a token string. Returns 0 or SWM_EBADTOKEN with a message naming
 * the part that is wrong (prefix, version, digest, secret, extra text).
 * `out` is set only on success. */
int ca_token_parse(struct ca_token *out, const char *token, struct swm_err *err);

/* Formats a parsed token back into its string form. */
void ca_token_format(const struct ca_token *tok, char out[CA_TOKEN_LEN + 1]);

/* Checks the token's digest against root_pk (the joining node pins the root
 * key it is shown by this digest). Returns 0 or SWM_EWRONGCLUSTER. */
int ca_token_check_root(const struct ca_token *tok, const uint8_t root_pk[CA_PUBKEY_LEN],
                        struct swm_err *err);

/* Wipes the token. Accepts NULL. */
void ca_token_wipe(struct ca_token *tok);

/* The proof of knowledge of a token secret: a BLAKE2b MAC keyed by a key
 * derived from the secret, over the requested role, the joiner's identity
 * key and the channel transcript hash (which includes a fresh nonce from the
 * manager), so it can be neither replayed nor relayed and never reveals the
 * secret. */
#define CA_JOIN_PROOF_LEN 32
#define CA_TRANSCRIPT_LEN 32

/* Computes the proof for `secret` (CA_TOKEN_SECRET_CHARS chars). */
void ca_join_proof(const char *secret, int role, const uint8_t joiner_pk[CA_PUBKEY_LEN],
                   const uint8_t transcript[CA_TRANSCRIPT_LEN], uint8_t out[CA_JOIN_PROOF_LEN]);

/* The manager's side: the current secrets of the two join tokens. An empty
 * string disables joining with that role. */
struct ca_join_secrets {
    char worker[CA_TOKEN_SECRET_CHARS + 1];
    char manager[CA_TOKEN_SECRET_CHARS + 1];
};

/* Checks a joiner's proof for `role` in constant time. Returns 0 (the token
 * grants `role`), -EPERM (the proof matches the other role's token: e.g. a
 * worker token used to join as a manager), SWM_EBADTOKEN (matches neither),
 * -EINVAL (role invalid). */
int ca_join_verify(const struct ca_join_secrets *secrets, int role,
                   const uint8_t joiner_pk[CA_PUBKEY_LEN],
                   const uint8_t transcript[CA_TRANSCRIPT_LEN],
                   const uint8_t proof[CA_JOIN_PROOF_LEN], struct swm_err *err);

#endif
