/* The manager's CA service (ca.h). */
#include "manager/ca/ca.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "common/alloc.h"

static bool role_valid(int role)
{
    return role == CA_ROLE_WORKER || role == CA_ROLE_MANAGER;
}

/* Frees a string that held a secret, wiping it first. */
static void free_secret_str(char *s)
{
    if (s != NULL) {
        sodium_memzero(s, strlen(s));
        swm_free(s);
    }
}

static void free_secret_bytes(ProtobufCBinaryData *b)
{
    if (b->data != NULL) {
        sodium_memzero(b->data, b->len);
        swm_free(b->data);
    }
    b->data = NULL;
    b->len = 0;
}

/* A freshly allocated copy of n bytes at p, as protobuf-c bytes. */
static int set_bytes(ProtobufCBinaryData *b, protobuf_c_boolean *has, const uint8_t *p, size_t n)
{
    uint8_t *copy = swm_malloc(n);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, p, n);
    b->data = copy;
    b->len = n;
    *has = 1;
    return 0;
}

static char *new_token(const uint8_t root_pk[CA_PUBKEY_LEN], int *rc)
{
    char tok[CA_TOKEN_LEN + 1];
    char *s = NULL;
    *rc = ca_token_generate(root_pk, tok);
    if (*rc == 0 && (s = swm_strdup(tok)) == NULL)
        *rc = -ENOMEM;
    sodium_memzero(tok, sizeof(tok));
    return s;
}

int casvc_root_create(Swarmc__RootCA **out, struct swm_err *err)
{
    struct ca_keypair root;
    Swarmc__RootCA *ca = swm_malloc(sizeof(*ca));
    if (ca == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    swarmc__root_ca__init(ca);
    int rc = ca_keypair_generate(&root);
    if (rc < 0) {
        swm_free(ca);
        return swm_err_set(err, rc, "no randomness for the cluster root key");
    }
    rc = set_bytes(&ca->public_key, &ca->has_public_key, root.pk, CA_PUBKEY_LEN);
    if (rc == 0)
        rc = set_bytes(&ca->private_key, &ca->has_private_key, root.sk, CA_SECKEY_LEN);
    if (rc == 0)
        ca->worker_token = new_token(root.pk, &rc);
    if (rc == 0)
        ca->manager_token = new_token(root.pk, &rc);
    ca_keypair_wipe(&root);
    if (rc < 0) {
        casvc_root_redact(ca);
        proto_free(ca);
        return swm_err_set(err, rc, "creating the cluster root CA: %s", swm_strerror(rc));
    }
    *out = ca;
    return 0;
}

/* Checks one stored token: it parses and names root_pk. */
static int check_token(const char *token, const char *role, const uint8_t root_pk[CA_PUBKEY_LEN],
                       struct swm_err *err)
{
    struct ca_token tok;
    struct swm_err terr = {0};
    if (token == NULL)
        return swm_err_set(err, SWM_ECORRUPT, "the cluster's root CA has no %s join token", role);
    int rc = ca_token_parse(&tok, token, &terr);
    if (rc == 0)
        rc = ca_token_check_root(&tok, root_pk, &terr);
    ca_token_wipe(&tok);
    if (rc < 0)
        return swm_err_set(err, SWM_ECORRUPT, "the cluster's %s join token is damaged: %s", role,
                           terr.msg);
    return 0;
}

int casvc_root_check(const Swarmc__RootCA *ca, struct ca_keypair *root, struct swm_err *err)
{
    if (ca == NULL)
        return swm_err_set(err, SWM_ECORRUPT,
                           "this swarm has no root CA (it was created by a swarmc without one)");
    if (!ca->has_public_key || ca->public_key.len != CA_PUBKEY_LEN)
        return swm_err_set(err, SWM_ECORRUPT,
                           "the cluster's root CA public key is %zu bytes, want %d",
                           ca->public_key.len, CA_PUBKEY_LEN);
    if (!ca->has_private_key || ca->private_key.len != CA_SECKEY_LEN)
        return swm_err_set(err, SWM_ECORRUPT,
                           "the cluster's root CA private key is %zu bytes, want %d",
                           ca->private_key.len, CA_SECKEY_LEN);
    /* The secret key is seed || public key: re-derive both from the seed. */
    struct ca_keypair kp;
    uint8_t seed[32];
    crypto_sign_ed25519_sk_to_seed(seed, ca->private_key.data);
    ca_keypair_from_seed(&kp, seed);
    sodium_memzero(seed, sizeof(seed));
    int rc = 0;
    if (sodium_memcmp(kp.sk, ca->private_key.data, CA_SECKEY_LEN) != 0 ||
        memcmp(kp.pk, ca->public_key.data, CA_PUBKEY_LEN) != 0)
        rc = swm_err_set(err, SWM_ECORRUPT,
                         "the cluster's root CA private key does not match its public key");
    if (rc == 0)
        rc = check_token(ca->worker_token, "worker", kp.pk, err);
    if (rc == 0)
        rc = check_token(ca->manager_token, "manager", kp.pk, err);
    if (rc == 0 && root != NULL)
        *root = kp;
    ca_keypair_wipe(&kp);
    return rc;
}

const char *casvc_token(const Swarmc__RootCA *ca, int role)
{
    if (ca == NULL || !role_valid(role))
        return NULL;
    return role == CA_ROLE_WORKER ? ca->worker_token : ca->manager_token;
}

int casvc_token_rotate(Swarmc__RootCA *ca, int role, struct swm_err *err)
{
    if (!role_valid(role))
        return swm_err_set(err, -EINVAL, "invalid join token role %d", role);
    int rc = casvc_root_check(ca, NULL, err);
    if (rc < 0)
        return rc;
    char *token = new_token(ca->public_key.data, &rc);
    if (rc < 0)
        return swm_err_set(err, rc, "making a new %s join token: %s", ca_role_name(role),
                           swm_strerror(rc));
    char **slot = role == CA_ROLE_WORKER ? &ca->worker_token : &ca->manager_token;
    free_secret_str(*slot);
    *slot = token;
    return 0;
}

int casvc_join_secrets(const Swarmc__RootCA *ca, struct ca_join_secrets *out, struct swm_err *err)
{
    int rc = casvc_root_check(ca, NULL, err);
    if (rc < 0)
        return rc;
    struct ca_token w, m;
    /* Both parse: casvc_root_check said so. */
    ca_token_parse(&w, ca->worker_token, NULL);
    ca_token_parse(&m, ca->manager_token, NULL);
    memcpy(out->worker, w.secret, sizeof(out->worker));
    memcpy(out->manager, m.secret, sizeof(out->manager));
    ca_token_wipe(&w);
    ca_token_wipe(&m);
    return 0;
}

int casvc_issue(const Swarmc__RootCA *ca, const char *cluster_id, const char *node_id, int role,
                const uint8_t node_pk[CA_PUBKEY_LEN], int64_t now, int64_t lifetime,
                struct ca_cert *out, struct swm_err *err)
{
    struct ca_keypair root;
    int rc = casvc_root_check(ca, &root, err);
    if (rc < 0)
        return rc;
    rc = ca_cert_issue(out, &root, node_id, cluster_id, role, node_pk, now,
                       lifetime > 0 ? lifetime : CA_CERT_EXPIRY_DEFAULT, err);
    ca_keypair_wipe(&root);
    return rc;
}

int casvc_init_node(const Swarmc__RootCA *ca, const char *certs_dir, const char *cluster_id,
                    const char *node_id, int64_t now, int64_t lifetime, struct swm_err *err)
{
    struct ca_node_files f;
    memset(&f, 0, sizeof(f));
    int rc = ca_keypair_generate(&f.key);
    if (rc < 0)
        swm_err_set(err, rc, "no randomness for the node's identity key");
    if (rc == 0)
        rc = casvc_issue(ca, cluster_id, node_id, CA_ROLE_MANAGER, f.key.pk, now, lifetime, &f.cert,
                         err);
    if (rc == 0) {
        memcpy(f.root_pk, ca->public_key.data, CA_PUBKEY_LEN);
        rc = ca_node_files_save(certs_dir, &f, err);
    }
    ca_node_files_wipe(&f);
    return rc;
}

void casvc_root_redact(Swarmc__RootCA *ca)
{
    if (ca == NULL)
        return;
    free_secret_bytes(&ca->private_key);
    ca->has_private_key = 0;
    free_secret_str(ca->worker_token);
    free_secret_str(ca->manager_token);
    ca->worker_token = ca->manager_token = NULL;
}
