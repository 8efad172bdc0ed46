/* Tests of net/identity/cert.c: keys, node certificates, revocation and the
 * renewal schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "net/identity/identity.h"

#define SEC INT64_C(1000000000)
#define NOW (INT64_C(1800000000) * SEC)
#define NODE_ID "node0000000000000000000a1"
#define CLUSTER_ID "clustr0000000000000000001"

struct fixture {
    struct ca_keypair root, other_root, node;
    struct ca_cert cert;
    uint8_t enc[CA_CERT_LEN];
};

static int setup(void **state)
{
    static struct fixture f;
    uint8_t seed[32] = {1};
    ca_keypair_from_seed(&f.root, seed);
    seed[0] = 2;
    ca_keypair_from_seed(&f.other_root, seed);
    seed[0] = 3;
    ca_keypair_from_seed(&f.node, seed);
    assert_int_equal(ca_cert_issue(&f.cert, &f.root, NODE_ID, CLUSTER_ID, CA_ROLE_WORKER, f.node.pk,
                                   NOW, CA_CERT_EXPIRY_DEFAULT, NULL),
                     0);
    ca_cert_encode(&f.cert, f.enc);
    *state = &f;
    return 0;
}

static void assert_msg(const struct swm_err *err, int code, const char *needle)
{
    assert_int_equal(err->code, code);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", err->msg, needle);
}

static void keys_from_seed_are_deterministic(void **state)
{
    struct ca_keypair a, b, c;
    uint8_t seed[32] = {9};
    assert_int_equal(ca_keypair_from_seed(&a, seed), 0);
    assert_int_equal(ca_keypair_from_seed(&b, seed), 0);
    assert_memory_equal(a.pk, b.pk, CA_PUBKEY_LEN);
    assert_int_equal(ca_keypair_generate(&c), 0);
    assert_memory_not_equal(a.pk, c.pk, CA_PUBKEY_LEN);
    assert_int_equal(ca_keypair_from_seed(&c, NULL), -EINVAL);
    ca_keypair_wipe(&a);
    assert_true(sodium_is_zero(a.sk, CA_SECKEY_LEN));
    ca_keypair_wipe(NULL);
}

static void cert_round_trips_and_verifies(void **state)
{
    struct fixture *f = *state;
    struct ca_cert c;
    struct swm_err err = {0};
    assert_int_equal(ca_cert_decode(&c, f->enc, sizeof(f->enc), &err), 0);
    assert_string_equal(c.node_id, NODE_ID);
    assert_string_equal(c.cluster_id, CLUSTER_ID);
    assert_int_equal(c.role, CA_ROLE_WORKER);
    assert_int_equal(c.version, CA_CERT_VERSION);
    assert_memory_equal(c.node_pk, f->node.pk, CA_PUBKEY_LEN);
    assert_memory_equal(c.issuer_pk, f->root.pk, CA_PUBKEY_LEN);
    assert_true(c.not_before == NOW - CA_CERT_BACKDATE);
    assert_true(c.not_after == NOW + CA_CERT_EXPIRY_DEFAULT);
    assert_true(c.serial == f->cert.serial);
    uint8_t again[CA_CERT_LEN];
    ca_cert_encode(&c, again);
    assert_memory_equal(again, f->enc, CA_CERT_LEN);
    assert_int_equal(ca_cert_verify(&c, f->root.pk, NOW, NULL, CA_ROLES_ANY, &err), 0);
    /* Valid right away on a node whose clock lags a little. */
    assert_int_equal(ca_cert_verify(&c, f->root.pk, NOW - 60 * SEC, NULL, CA_ROLES_ANY, &err), 0);
}

static void decode_rejects_malformed(void **state)
{
    struct fixture *f = *state;
    struct ca_cert c;
    struct swm_err err = {0};
    uint8_t b[CA_CERT_LEN + 1];

    assert_int_equal(ca_cert_decode(&c, f->enc, CA_CERT_LEN - 1, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "207 bytes, want 208");
    memcpy(b, f->enc, CA_CERT_LEN);
    assert_int_equal(ca_cert_decode(&c, b, CA_CERT_LEN + 1, &err), SWM_EPROTO);
    assert_int_equal(ca_cert_decode(&c, NULL, 0, &err), SWM_EPROTO);

    memcpy(b, f->enc, CA_CERT_LEN);
    b[0] = 'X';
    assert_int_equal(ca_cert_decode(&c, b, CA_CERT_LEN, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "bad magic");

    memcpy(b, f->enc, CA_CERT_LEN);
    b[4] = 2;
    assert_int_equal(ca_cert_decode(&c, b, CA_CERT_LEN, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "version 2 is not supported");

    memcpy(b, f->enc, CA_CERT_LEN);
    b[5] = 3;
    assert_int_equal(ca_cert_decode(&c, b, CA_CERT_LEN, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "role 3");

    /* An embedded NUL must not pass as a shorter id. */
    memcpy(b, f->enc, CA_CERT_LEN);
    b[6 + 10] = '\0';
    assert_int_equal(ca_cert_decode(&c, b, CA_CERT_LEN, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "node id");
    memcpy(b, f->enc, CA_CERT_LEN);
    b[6 + 25 + 3] = 'A';
    assert_int_equal(ca_cert_decode(&c, b, CA_CERT_LEN, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "cluster id");

    memcpy(b, f->enc, CA_CERT_LEN);
    memset(b + 56, 0, CA_PUBKEY_LEN);
    assert_int_equal(ca_cert_decode(&c, b, CA_CERT_LEN, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "all zero");

    /* not_after (offset 136) before not_before. */
    memcpy(b, f->enc, CA_CERT_LEN);
    memset(b + 136, 0, 8);
    assert_int_equal(ca_cert_decode(&c, b, CA_CERT_LEN, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "ends before it starts");
}

static void verify_rejects_other_root(void **state)
{
    struct fixture *f = *state;
    struct swm_err err = {0};
    assert_int_equal(ca_cert_verify(&f->cert, f->other_root.pk, NOW, NULL, CA_ROLES_ANY, &err),
                     SWM_EWRONGCLUSTER);
    assert_msg(&err, SWM_EWRONGCLUSTER, "another cluster");

    /* Signed by another root but claiming ours as issuer. */
    struct ca_cert forged = f->cert;
    assert_int_equal(ca_cert_sign(&forged, &f->other_root, NULL), 0);
    memcpy(forged.issuer_pk, f->root.pk, CA_PUBKEY_LEN);
    assert_int_equal(ca_cert_verify(&forged, f->root.pk, NOW, NULL, CA_ROLES_ANY, &err), SWM_EAUTH);
    assert_msg(&err, SWM_EAUTH, "invalid root signature");
}

static void verify_rejects_every_bit_flip(void **state)
{
    struct fixture *f = *state;
    /* Any change to any byte either fails decoding or fails verification. */
    for (size_t i = 0; i < CA_CERT_LEN; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t b[CA_CERT_LEN];
            struct ca_cert c;
            struct swm_err err = {0};
            memcpy(b, f->enc, CA_CERT_LEN);
            b[i] ^= (uint8_t)(1u << bit);
            if (ca_cert_decode(&c, b, CA_CERT_LEN, &err) < 0)
                continue;
            int rc = ca_cert_verify(&c, f->root.pk, NOW, NULL, CA_ROLES_ANY, &err);
            if (rc == 0)
                fail_msg("flip of bit %d of byte %zu was accepted", bit, i);
            assert_int_equal(rc, err.code);
        }
    }
}

static void verify_rejects_expired_and_not_yet_valid(void **state)
{
    struct fixture *f = *state;
    struct swm_err err = {0};
    int64_t end = NOW + CA_CERT_EXPIRY_DEFAULT;
    assert_int_equal(ca_cert_verify(&f->cert, f->root.pk, end - 1, NULL, CA_ROLES_ANY, &err), 0);
    assert_int_equal(ca_cert_verify(&f->cert, f->root.pk, end, NULL, CA_ROLES_ANY, &err),
                     SWM_EEXPIRED);
    assert_int_equal(
        ca_cert_verify(&f->cert, f->root.pk, end + 3600 * SEC, NULL, CA_ROLES_ANY, &err),
        SWM_EEXPIRED);
    assert_msg(&err, SWM_EEXPIRED, "expired 3600 s ago");
    assert_int_equal(
        ca_cert_verify(&f->cert, f->root.pk, NOW - CA_CERT_BACKDATE - 1, NULL, CA_ROLES_ANY, &err),
        SWM_EEXPIRED);
    assert_msg(&err, SWM_EEXPIRED, "not valid yet");
}

static void verify_rejects_revoked_and_wrong_role(void **state)
{
    struct fixture *f = *state;
    struct swm_err err = {0};
    struct ca_revoked set = {0};
    assert_int_equal(ca_revoked_add(&set, "zzzzzzzzzzzzzzzzzzzzzzzzz"), 0);
    assert_int_equal(ca_cert_verify(&f->cert, f->root.pk, NOW, &set, CA_ROLES_ANY, &err), 0);
    assert_int_equal(ca_revoked_add(&set, NODE_ID), 0);
    assert_int_equal(ca_cert_verify(&f->cert, f->root.pk, NOW, &set, CA_ROLES_ANY, &err),
                     SWM_EREVOKED);
    assert_msg(&err, SWM_EREVOKED, "node " NODE_ID " was removed");
    ca_revoked_free(&set);

    assert_int_equal(
        ca_cert_verify(&f->cert, f->root.pk, NOW, NULL, CA_ROLE_BIT(CA_ROLE_MANAGER), &err),
        -EPERM);
    assert_msg(&err, -EPERM, "is a worker, which is not allowed here");
}

static void revoked_set_is_a_set(void **state)
{
    struct ca_revoked set = {0};
    char id[SWM_ID_LEN + 1];
    assert_false(ca_revoked_contains(&set, NODE_ID));
    assert_false(ca_revoked_contains(NULL, NODE_ID));
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "%025d", (i * 37) % 100);
        assert_int_equal(ca_revoked_add(&set, id), 0);
        assert_int_equal(ca_revoked_add(&set, id), 0);
    }
    assert_int_equal(set.len, 100);
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "%025d", i);
        assert_true(ca_revoked_contains(&set, id));
    }
    snprintf(id, sizeof(id), "%025d", 100);
    assert_false(ca_revoked_contains(&set, id));
    assert_int_equal(ca_revoked_add(&set, "short"), -EINVAL);
    assert_int_equal(ca_revoked_add(&set, NULL), -EINVAL);
    ca_revoked_free(&set);
    assert_int_equal(set.len, 0);
    ca_revoked_free(NULL);
}

static void revoked_set_survives_allocation_failure(void **state)
{
    struct ca_revoked set = {0};
    char id[SWM_ID_LEN + 1];
    for (int i = 0; i < 16; i++) {
        snprintf(id, sizeof(id), "%025d", i);
        assert_int_equal(ca_revoked_add(&set, id), 0);
    }
    swm_alloc_fail_after(0);
    snprintf(id, sizeof(id), "%025d", 16);
    assert_int_equal(ca_revoked_add(&set, id), -ENOMEM);
    swm_alloc_fail_reset();
    assert_int_equal(set.len, 16);
    assert_false(ca_revoked_contains(&set, id));
    assert_true(ca_revoked_contains(&set, "0000000000000000000000015"));
    ca_revoked_free(&set);
}

static void issue_rejects_bad_input(void **state)
{
    struct fixture *f = *state;
    struct ca_cert c;
    struct swm_err err = {0};
    assert_int_equal(ca_cert_issue(&c, &f->root, NODE_ID, CLUSTER_ID, 0, f->node.pk, NOW,
                                   CA_CERT_EXPIRY_DEFAULT, &err),
                     -EINVAL);
    assert_msg(&err, -EINVAL, "role 0");
    assert_int_equal(ca_cert_issue(&c, &f->root, "nope", CLUSTER_ID, CA_ROLE_WORKER, f->node.pk,
                                   NOW, CA_CERT_EXPIRY_DEFAULT, &err),
                     -EINVAL);
    assert_msg(&err, -EINVAL, "invalid node id");
    assert_int_equal(ca_cert_issue(&c, &f->root, NODE_ID, "", CA_ROLE_WORKER, f->node.pk, NOW,
                                   CA_CERT_EXPIRY_DEFAULT, &err),
                     -EINVAL);
    assert_msg(&err, -EINVAL, "invalid cluster id");
    assert_int_equal(
        ca_cert_issue(&c, &f->root, NODE_ID, CLUSTER_ID, CA_ROLE_WORKER, f->node.pk, NOW, 0, &err),
        -EINVAL);
    assert_int_equal(ca_cert_issue(&c, &f->root, NODE_ID, CLUSTER_ID, CA_ROLE_WORKER, f->node.pk,
                                   INT64_MAX - 5, 10, &err),
                     -EINVAL);
    assert_msg(&err, -EINVAL, "invalid expiry");
}

static void renewal_falls_in_50_to_80_percent(void **state)
{
    struct fixture *f = *state;
    const struct ca_cert *c = &f->cert;
    int64_t life = c->not_after - c->not_before;
    assert_true(ca_cert_renew_time(c, 0) == c->not_before + life / 2);
    int64_t hi = ca_cert_renew_time(c, UINT32_MAX);
    assert_true(hi == c->not_before + life / 2 + life * 3 / 10);
    for (int i = 0; i < 1000; i++) {
        int64_t t = ca_cert_renew_time(c, randombytes_random());
        assert_true(t >= c->not_before + life / 2);
        assert_true(t <= c->not_before + life * 8 / 10);
    }
}

/* xorshift64: fixed-seed garbage, reproducible from the seed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void decode_survives_garbage(void **state)
{
    struct fixture *f = *state;
    uint8_t b[CA_CERT_LEN + 16];
    for (int i = 0; i < 20000; i++) {
        size_t len = rng() % sizeof(b);
        if (i % 2 == 0) {
            for (size_t j = 0; j < len; j++)
                b[j] = (uint8_t)rng();
        } else {
            /* Valid certificate with a few random bytes changed. */
            len = CA_CERT_LEN;
            memcpy(b, f->enc, CA_CERT_LEN);
            for (int k = 1 + (int)(rng() % 4); k > 0; k--)
                b[rng() % CA_CERT_LEN] = (uint8_t)rng();
        }
        struct ca_cert c;
        struct swm_err err = {0};
        int rc = ca_cert_decode(&c, b, len, &err);
        if (rc < 0) {
            assert_int_equal(rc, SWM_EPROTO);
            assert_true(err.msg[0] != '\0');
            continue;
        }
        if (memcmp(b, f->enc, CA_CERT_LEN) != 0)
            assert_true(ca_cert_verify(&c, f->root.pk, NOW, NULL, CA_ROLES_ANY, &err) < 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_from_seed_are_deterministic),
        cmocka_unit_test(cert_round_trips_and_verifies),
        cmocka_unit_test(decode_rejects_malformed),
        cmocka_unit_test(verify_rejects_other_root),
        cmocka_unit_test(verify_rejects_every_bit_flip),
        cmocka_unit_test(verify_rejects_expired_and_not_yet_valid),
        cmocka_unit_test(verify_rejects_revoked_and_wrong_role),
        cmocka_unit_test(revoked_set_is_a_set),
        cmocka_unit_test(revoked_set_survives_allocation_failure),
        cmocka_unit_test(issue_rejects_bad_input),
        cmocka_unit_test(renewal_falls_in_50_to_80_percent),
        cmocka_unit_test(decode_survives_garbage),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
