#define _GNU_SOURCE
/* Tests of net/identity/token.c: join tokens, root pinning and the proof of a
 * token's secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "net/identity/identity.h"

static struct ca_keypair root, other_root, joiner;

static int setup(void **state)
{
    uint8_t seed[32] = {1};
    ca_keypair_from_seed(&root, seed);
    seed[0] = 2;
    ca_keypair_from_seed(&other_root, seed);
    seed[0] = 3;
    ca_keypair_from_seed(&joiner, seed);
    return 0;
}

static void assert_msg(const struct swm_err *err, int code, const char *needle)
{
    assert_int_equal(err->code, code);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", err->msg, needle);
}

static void generated_tokens_parse_back(void **state)
{
    char worker[CA_TOKEN_LEN + 1], manager[CA_TOKEN_LEN + 1], again[CA_TOKEN_LEN + 1];
    assert_int_equal(ca_token_generate(root.pk, worker), 0);
    assert_int_equal(ca_token_generate(root.pk, manager), 0);
    assert_int_equal(strlen(worker), CA_TOKEN_LEN);
    assert_int_equal(strncmp(worker, "SWMTKN-1-", 9), 0);
    assert_int_equal(worker[9 + CA_TOKEN_DIGEST_CHARS], '-');

    struct ca_token w, m;
    struct swm_err err = {0};
    assert_int_equal(ca_token_parse(&w, worker, &err), 0);
    assert_int_equal(ca_token_parse(&m, manager, &err), 0);
    /* Same cluster, different secrets. */
    assert_string_equal(w.digest, m.digest);
    assert_string_not_equal(w.secret, m.secret);
    assert_int_equal(strlen(w.secret), CA_TOKEN_SECRET_CHARS);
    ca_token_format(&w, again);
    assert_string_equal(again, worker);
    assert_int_equal(ca_token_check_root(&w, root.pk, &err), 0);
    ca_token_wipe(&w);
    assert_true(sodium_is_zero((const uint8_t *)w.secret, sizeof(w.secret)));
}

static void digest_is_base36_of_the_root_key(void **state)
{
    char a[CA_TOKEN_DIGEST_CHARS + 1], b[CA_TOKEN_DIGEST_CHARS + 1];
    ca_root_digest(root.pk, a);
    ca_root_digest(root.pk, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), CA_TOKEN_DIGEST_CHARS);
    assert_int_equal(strspn(a, "0123456789abcdefghijklmnopqrstuvwxyz"), CA_TOKEN_DIGEST_CHARS);
    ca_root_digest(other_root.pk, b);
    assert_string_not_equal(a, b);
}

static void parse_names_what_is_wrong(void **state)
{
    char good[CA_TOKEN_LEN + 1], bad[CA_TOKEN_LEN + 16];
    struct ca_token t;
    struct swm_err err = {0};
    assert_int_equal(ca_token_generate(root.pk, good), 0);
    const char *digest = good + 9;
    const char *secret = good + 10 + CA_TOKEN_DIGEST_CHARS;

    assert_int_equal(ca_token_parse(&t, "", &err), SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "must start with SWMTKN-1-");
    assert_int_equal(ca_token_parse(&t, NULL, &err), SWM_EBADTOKEN);
    assert_int_equal(ca_token_parse(&t, "SWMTKN-", &err), SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "missing version");

    snprintf(bad, sizeof(bad), "SWMTKN-2-%s", digest);
    assert_int_equal(ca_token_parse(&t, bad, &err), SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "version 2 is not supported");

    snprintf(bad, sizeof(bad), "SWMTKN-1-%.49s-%s", digest, secret);
    assert_int_equal(ca_token_parse(&t, bad, &err), SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "root key digest must be 50 base-36 characters");

    snprintf(bad, sizeof(bad), "SWMTKN-1-%.50s-%s", digest, secret);
    bad[12] = 'Q'; /* upper case is not base 36 here */
    assert_int_equal(ca_token_parse(&t, bad, &err), SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "root key digest");

    snprintf(bad, sizeof(bad), "SWMTKN-1-%.50s-%.24s", digest, secret);
    assert_int_equal(ca_token_parse(&t, bad, &err), SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "secret must be 25 base-36 characters");

    snprintf(bad, sizeof(bad), "%s ", good);
    assert_int_equal(ca_token_parse(&t, bad, &err), SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "unexpected text after the secret");

    snprintf(bad, sizeof(bad), "%sx", good);
    assert_int_equal(ca_token_parse(&t, bad, &err), SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "secret must be 25");
    /* One line each, and never the secret itself. */
    assert_null(strchr(err.msg, '\n'));
    assert_null(strstr(err.msg, secret));
}

static void pinning_rejects_another_cluster(void **state)
{
    char tok[CA_TOKEN_LEN + 1];
    struct ca_token t;
    struct swm_err err = {0};
    assert_int_equal(ca_token_generate(other_root.pk, tok), 0);
    assert_int_equal(ca_token_parse(&t, tok, &err), 0);
    assert_int_equal(ca_token_check_root(&t, root.pk, &err), SWM_EWRONGCLUSTER);
    assert_msg(&err, SWM_EWRONGCLUSTER, "token of another cluster");
}

struct tokens {
    struct ca_token worker, manager;
    struct ca_join_secrets secrets;
    uint8_t transcript[CA_TRANSCRIPT_LEN];
};

static void make_tokens(struct tokens *t)
{
    char s[CA_TOKEN_LEN + 1];
    assert_int_equal(ca_token_generate(root.pk, s), 0);
    assert_int_equal(ca_token_parse(&t->worker, s, NULL), 0);
    assert_int_equal(ca_token_generate(root.pk, s), 0);
    assert_int_equal(ca_token_parse(&t->manager, s, NULL), 0);
    memcpy(t->secrets.worker, t->worker.secret, sizeof(t->secrets.worker));
    memcpy(t->secrets.manager, t->manager.secret, sizeof(t->secrets.manager));
    randombytes_buf(t->transcript, sizeof(t->transcript));
}

static void proof_grants_the_tokens_role(void **state)
{
    struct tokens t;
    uint8_t proof[CA_JOIN_PROOF_LEN];
    struct swm_err err = {0};
    make_tokens(&t);
    ca_join_proof(t.worker.secret, CA_ROLE_WORKER, joiner.pk, t.transcript, proof);
    assert_int_equal(
        ca_join_verify(&t.secrets, CA_ROLE_WORKER, joiner.pk, t.transcript, proof, &err), 0);
    ca_join_proof(t.manager.secret, CA_ROLE_MANAGER, joiner.pk, t.transcript, proof);
    assert_int_equal(
        ca_join_verify(&t.secrets, CA_ROLE_MANAGER, joiner.pk, t.transcript, proof, &err), 0);
    /* The proof does not contain the secret. */
    assert_null(memmem(proof, sizeof(proof), t.manager.secret, 8));
}

static void worker_token_cannot_make_a_manager(void **state)
{
    struct tokens t;
    uint8_t proof[CA_JOIN_PROOF_LEN];
    struct swm_err err = {0};
    make_tokens(&t);
    ca_join_proof(t.worker.secret, CA_ROLE_MANAGER, joiner.pk, t.transcript, proof);
    assert_int_equal(
        ca_join_verify(&t.secrets, CA_ROLE_MANAGER, joiner.pk, t.transcript, proof, &err), -EPERM);
    assert_msg(&err, -EPERM, "the worker join token does not grant the manager role");
    /* A proof made for the worker role cannot be presented as a manager's. */
    ca_join_proof(t.worker.secret, CA_ROLE_WORKER, joiner.pk, t.transcript, proof);
    assert_int_equal(
        ca_join_verify(&t.secrets, CA_ROLE_MANAGER, joiner.pk, t.transcript, proof, &err),
        SWM_EBADTOKEN);
    assert_int_equal(ca_join_verify(&t.secrets, 7, joiner.pk, t.transcript, proof, &err), -EINVAL);
}

static void wrong_secret_or_context_is_refused(void **state)
{
    struct tokens t;
    uint8_t proof[CA_JOIN_PROOF_LEN], other[CA_TRANSCRIPT_LEN];
    struct swm_err err = {0};
    make_tokens(&t);

    struct ca_token wrong = t.worker;
    wrong.secret[0] = wrong.secret[0] == 'a' ? 'b' : 'a';
    ca_join_proof(wrong.secret, CA_ROLE_WORKER, joiner.pk, t.transcript, proof);
    assert_int_equal(
        ca_join_verify(&t.secrets, CA_ROLE_WORKER, joiner.pk, t.transcript, proof, &err),
        SWM_EBADTOKEN);
    assert_msg(&err, SWM_EBADTOKEN, "secret does not match this cluster's worker token");

    /* A proof from another handshake (replayed) or for another key. */
    ca_join_proof(t.worker.secret, CA_ROLE_WORKER, joiner.pk, t.transcript, proof);
    memcpy(other, t.transcript, sizeof(other));
    other[0] ^= 1;
    assert_int_equal(ca_join_verify(&t.secrets, CA_ROLE_WORKER, joiner.pk, other, proof, &err),
                     SWM_EBADTOKEN);
    assert_int_equal(ca_join_verify(&t.secrets, CA_ROLE_WORKER, root.pk, t.transcript, proof, &err),
                     SWM_EBADTOKEN);

    /* After rotation the old secret stops working; an empty one disables. */
    struct ca_join_secrets rotated = t.secrets;
    rotated.worker[0] = '\0';
    assert_int_equal(ca_join_verify(&rotated, CA_ROLE_WORKER, joiner.pk, t.transcript, proof, &err),
                     SWM_EBADTOKEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generated_tokens_parse_back),
        cmocka_unit_test(digest_is_base36_of_the_root_key),
        cmocka_unit_test(parse_names_what_is_wrong),
        cmocka_unit_test(pinning_rejects_another_cluster),
        cmocka_unit_test(proof_grants_the_tokens_role),
        cmocka_unit_test(worker_token_cannot_make_a_manager),
        cmocka_unit_test(wrong_secret_or_context_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
