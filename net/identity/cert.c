/* Keys, node certificates and the revocation set (DESIGN.md §6). */
#include "net/identity/identity.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

/* Encoded layout, big-endian (docs/protocol.md "Node certificates"). */
#define CERT_MAGIC "SWCR"
#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_ROLE 5
#define OFF_NODE_ID 6
#define OFF_CLUSTER_ID (OFF_NODE_ID + SWM_ID_LEN)
#define OFF_NODE_PK (OFF_CLUSTER_ID + SWM_ID_LEN)
#define OFF_ISSUER_PK (OFF_NODE_PK + CA_PUBKEY_LEN)
#define OFF_SERIAL (OFF_ISSUER_PK + CA_PUBKEY_LEN)
#define OFF_NOT_BEFORE (OFF_SERIAL + 8)
#define OFF_NOT_AFTER (OFF_NOT_BEFORE + 8)
#define OFF_SIG (OFF_NOT_AFTER + 8)

_Static_assert(OFF_SIG + CA_SIG_LEN == CA_CERT_LEN, "certificate layout");

/* The root key signs nothing but certificates, and the label keeps a
 * certificate signature from ever being valid as anything else. */
static const char sign_label[] = "swarmc-node-cert-v1";

const char *ca_role_name(int role)
{
    switch (role) {
    case CA_ROLE_WORKER:
        return "worker";
    case CA_ROLE_MANAGER:
        return "manager";
    default:
        return "invalid";
    }
}

int ca_keypair_generate(struct ca_keypair *kp)
{
    if (sodium_init() < 0)
        return -EIO;
    crypto_sign_keypair(kp->pk, kp->sk);
    return 0;
}

int ca_keypair_from_seed(struct ca_keypair *kp, const uint8_t seed[32])
{
    if (seed == NULL)
        return -EINVAL;
    crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
    return 0;
}

void ca_keypair_wipe(struct ca_keypair *kp)
{
    if (kp != NULL)
        sodium_memzero(kp, sizeof(*kp));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static bool role_valid(int role)
{
    return role == CA_ROLE_WORKER || role == CA_ROLE_MANAGER;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    return sodium_is_zero(p, n) == 1;
}

/* The checks shared by sign and decode: everything but the signature. */
static int check_fields(const struct ca_cert *c, struct swm_err *err)
{
    if (c->version != CA_CERT_VERSION)
        return swm_err_set(err, SWM_EPROTO, "certificate version %u is not supported (want %d)",
                           c->version, CA_CERT_VERSION);
    if (!role_valid(c->role))
        return swm_err_set(err, SWM_EPROTO, "certificate role %u is not worker or manager",
                           c->role);
    if (!swm_id_valid(c->node_id))
        return swm_err_set(err, SWM_EPROTO, "certificate node id is not a valid id");
    if (!swm_id_valid(c->cluster_id))
        return swm_err_set(err, SWM_EPROTO, "certificate cluster id is not a valid id");
    if (all_zero(c->node_pk, CA_PUBKEY_LEN))
        return swm_err_set(err, SWM_EPROTO, "certificate node key is all zero");
    if (c->not_before >= c->not_after)
        return swm_err_set(err, SWM_EPROTO, "certificate validity ends before it starts");
    return 0;
}

/* Everything but the signature, i.e. what the root signs. */
static void encode_body(const struct ca_cert *c, uint8_t out[CA_CERT_LEN])
{
    memcpy(out + OFF_MAGIC, CERT_MAGIC, 4);
    out[OFF_VERSION] = c->version;
    out[OFF_ROLE] = c->role;
    memcpy(out + OFF_NODE_ID, c->node_id, SWM_ID_LEN);
    memcpy(out + OFF_CLUSTER_ID, c->cluster_id, SWM_ID_LEN);
    memcpy(out + OFF_NODE_PK, c->node_pk, CA_PUBKEY_LEN);
    memcpy(out + OFF_ISSUER_PK, c->issuer_pk, CA_PUBKEY_LEN);
    put_u64(out + OFF_SERIAL, c->serial);
    put_u64(out + OFF_NOT_BEFORE, (uint64_t)c->not_before);
    put_u64(out + OFF_NOT_AFTER, (uint64_t)c->not_after);
}

/* label || body: the message the root signs. */
static void signed_message(const struct ca_cert *c, uint8_t out[sizeof(sign_label) + OFF_SIG])
{
    uint8_t enc[CA_CERT_LEN];
    encode_body(c, enc);
    memcpy(out, sign_label, sizeof(sign_label));
    memcpy(out + sizeof(sign_label), enc, OFF_SIG);
}

int ca_cert_sign(struct ca_cert *cert, const struct ca_keypair *root, struct swm_err *err)
{
    cert->version = CA_CERT_VERSION;
    int rc = check_fields(cert, err);
    if (rc < 0)
        return swm_err_wrap(err, -EINVAL, "signing certificate");
    memcpy(cert->issuer_pk, root->pk, CA_PUBKEY_LEN);
    uint8_t msg[sizeof(sign_label) + OFF_SIG];
    signed_message(cert, msg);
    crypto_sign_detached(cert->sig, NULL, msg, sizeof(msg), root->sk);
    return 0;
}

int ca_cert_issue(struct ca_cert *out, const struct ca_keypair *root, const char *node_id,
                  const char *cluster_id, int role, const uint8_t node_pk[CA_PUBKEY_LEN],
                  int64_t now, int64_t lifetime, struct swm_err *err)
{
    if (!role_valid(role))
        return swm_err_set(err, -EINVAL, "cannot issue a certificate for role %d", role);
    if (node_id == NULL || !swm_id_valid(node_id))
        return swm_err_set(err, -EINVAL, "cannot issue a certificate: invalid node id");
    if (cluster_id == NULL || !swm_id_valid(cluster_id))
        return swm_err_set(err, -EINVAL, "cannot issue a certificate: invalid cluster id");
    if (lifetime <= 0 || now > INT64_MAX - lifetime || now < INT64_MIN + CA_CERT_BACKDATE)
        return swm_err_set(err, -EINVAL, "cannot issue a certificate: invalid expiry");
    struct ca_cert c;
    memset(&c, 0, sizeof(c));
    c.version = CA_CERT_VERSION;
    c.role = (uint8_t)role;
    memcpy(c.node_id, node_id, SWM_ID_LEN + 1);
    memcpy(c.cluster_id, cluster_id, SWM_ID_LEN + 1);
    memcpy(c.node_pk, node_pk, CA_PUBKEY_LEN);
    randombytes_buf(&c.serial, sizeof(c.serial));
    c.not_before = now - CA_CERT_BACKDATE;
    c.not_after = now + lifetime;
    int rc = ca_cert_sign(&c, root, err);
    if (rc < 0)
        return rc;
    *out = c;
    return 0;
}

void ca_cert_encode(const struct ca_cert *cert, uint8_t out[CA_CERT_LEN])
{
    encode_body(cert, out);
    memcpy(out + OFF_SIG, cert->sig, CA_SIG_LEN);
}

static bool id_bytes_valid(const uint8_t *p)
{
    for (int i = 0; i < SWM_ID_LEN; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z')))
            return false;
    }
    return true;
}

int ca_cert_decode(struct ca_cert *out, const void *buf, size_t len, struct swm_err *err)
{
    const uint8_t *p = buf;
    if (p == NULL || len != CA_CERT_LEN)
        return swm_err_set(err, SWM_EPROTO, "certificate is %zu bytes, want %d", len, CA_CERT_LEN);
    if (memcmp(p + OFF_MAGIC, CERT_MAGIC, 4) != 0)
        return swm_err_set(err, SWM_EPROTO, "not a swarmc certificate (bad magic)");
    /* Check the ids as bytes before turning them into strings: an embedded
     * NUL must not shorten them into something that looks valid. */
    if (!id_bytes_valid(p + OFF_NODE_ID))
        return swm_err_set(err, SWM_EPROTO, "certificate node id is not a valid id");
    if (!id_bytes_valid(p + OFF_CLUSTER_ID))
        return swm_err_set(err, SWM_EPROTO, "certificate cluster id is not a valid id");
    struct ca_cert c;
    memset(&c, 0, sizeof(c));
    c.version = p[OFF_VERSION];
    c.role = p[OFF_ROLE];
    memcpy(c.node_id, p + OFF_NODE_ID, SWM_ID_LEN);
    memcpy(c.cluster_id, p + OFF_CLUSTER_ID, SWM_ID_LEN);
    memcpy(c.node_pk, p + OFF_NODE_PK, CA_PUBKEY_LEN);
    memcpy(c.issuer_pk, p + OFF_ISSUER_PK, CA_PUBKEY_LEN);
    c.serial = get_u64(p + OFF_SERIAL);
    c.not_before = (int64_t)get_u64(p + OFF_NOT_BEFORE);
    c.not_after = (int64_t)get_u64(p + OFF_NOT_AFTER);
    memcpy(c.sig, p + OFF_SIG, CA_SIG_LEN);
    int rc = check_fields(&c, err);
    if (rc < 0)
        return rc;
    *out = c;
    return 0;
}

/* Sorted by strcmp so lookups are a binary search. */
static int find(const struct ca_revoked *set, const char *node_id, size_t *pos)
{
    size_t lo = 0, hi = set->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(set->ids[mid], node_id);
        if (c == 0) {
            *pos = mid;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return 0;
}

int ca_revoked_add(struct ca_revoked *set, const char *node_id)
{
    if (node_id == NULL || !swm_id_valid(node_id))
        return -EINVAL;
    size_t pos;
    if (find(set, node_id, &pos))
        return 0;
    if (set->len == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        void *ids = swm_realloc(set->ids, cap * sizeof(*set->ids));
        if (ids == NULL)
            return -ENOMEM;
        set->ids = ids;
        set->cap = cap;
    }
    memmove(&set->ids[pos + 1], &set->ids[pos], (set->len - pos) * sizeof(*set->ids));
    memcpy(set->ids[pos], node_id, SWM_ID_LEN + 1);
    set->len++;
    return 0;
}

bool ca_revoked_contains(const struct ca_revoked *set, const char *node_id)
{
    size_t pos;
    return set != NULL && set->len > 0 && find(set, node_id, &pos);
}

void ca_revoked_free(struct ca_revoked *set)
{
    if (set == NULL)
        return;
    swm_free(set->ids);
    set->ids = NULL;
    set->len = set->cap = 0;
}

int ca_cert_verify(const struct ca_cert *cert, const uint8_t root_pk[CA_PUBKEY_LEN], int64_t now,
                   const struct ca_revoked *revoked, unsigned allowed_roles, struct swm_err *err)
{
    /* Form first (a hand-built struct may not have gone through decode),
     * then the signature, and only then what the signed fields say. */
    int rc = check_fields(cert, err);
    if (rc < 0)
        return rc;
    if (sodium_memcmp(cert->issuer_pk, root_pk, CA_PUBKEY_LEN) != 0)
        return swm_err_set(err, SWM_EWRONGCLUSTER,
                           "certificate of node %s was issued by another cluster's root key",
                           cert->node_id);
    uint8_t msg[sizeof(sign_label) + OFF_SIG];
    signed_message(cert, msg);
    if (crypto_sign_verify_detached(cert->sig, msg, sizeof(msg), root_pk) != 0)
        return swm_err_set(err, SWM_EAUTH, "certificate of node %s has an invalid root signature",
                           cert->node_id);
    if (now < cert->not_before)
        return swm_err_set(err, SWM_EEXPIRED, "certificate of node %s is not valid yet",
                           cert->node_id);
    if (now >= cert->not_after)
        return swm_err_set(err, SWM_EEXPIRED, "certificate of node %s expired %lld s ago",
                           cert->node_id,
                           (long long)((now - cert->not_after) / INT64_C(1000000000)));
    if (ca_revoked_contains(revoked, cert->node_id))
        return swm_err_set(err, SWM_EREVOKED, "node %s was removed from the cluster",
                           cert->node_id);
    if ((allowed_roles & CA_ROLE_BIT(cert->role)) == 0)
        return swm_err_set(err, -EPERM, "node %s is a %s, which is not allowed here", cert->node_id,
                           ca_role_name(cert->role));
    return 0;
}

int64_t ca_cert_renew_time(const struct ca_cert *cert, uint32_t rnd)
{
    /* 128-bit arithmetic: a lifetime times a 32-bit fraction overflows 64
     * bits for lifetimes over ~4 s in nanoseconds. */
    __int128 life = (__int128)cert->not_after - cert->not_before;
    __int128 off = life / 2 + (life * 3 / 10) * rnd / UINT32_MAX;
    return (int64_t)(cert->not_before + off);
}
