/* Tests of manager/controlapi/jointoken.c: `join-token` reads a role's token
 * from the cluster's CA and `--rotate` replaces it through the log; `info`
 * never shows the CA's secrets. */
#include "api.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "manager/ca/ca.h"

#define WORKER SWARMC__NODE_ROLE__NODE_ROLE_WORKER
#define MANAGER SWARMC__NODE_ROLE__NODE_ROLE_MANAGER

static int setup(void **state)
{
    struct afx *f = calloc(1, sizeof(*f));
    afx_setup(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    afx_teardown(*state);
    free(*state);
    return 0;
}

static Swarmc__Cluster *stored_cluster(struct afx *f)
{
    struct store_read *r = NULL;
    Swarmc__Cluster *c = NULL;
    assert_int_equal(store_read_begin(f->c.s, &r, NULL), 0);
    assert_int_equal(store_get_cluster(r, &c), 0);
    store_read_end(r);
    return c;
}

/* Gives the fixture's cluster a CA, as `swarmc init` does, through the log. */
static void install_ca(struct afx *f)
{
    Swarmc__Cluster *c = stored_cluster(f);
    assert_int_equal(casvc_root_create(&c->root_ca, NULL), 0);
    assert_int_equal(cfx_write1(&f->c, UPDATE, c), 0);
}

static void set_node_addr(struct afx *f, const char *addr)
{
    Swarmc__Node *node = cfx_node(&f->c, CFX_NODE);
    assert_non_null(node);
    obj_node_addr(node, addr);
    assert_int_equal(cfx_write1(&f->c, UPDATE, node), 0);
}

static Swarmc__ControlResponse *join_token(struct afx *f, int has_role, int role, bool rotate)
{
    Swarmc__JoinTokenRequest jt = SWARMC__JOIN_TOKEN_REQUEST__INIT;
    jt.has_role = has_role;
    jt.role = role;
    jt.has_rotate = 1;
    jt.rotate = rotate;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_JOIN_TOKEN;
    req.join_token = &jt;
    return afx_call(f, &req);
}

/* Fails unless resp succeeded for role; returns its token (owned by the
 * caller) and frees resp. If addr is not NULL, the address must be it. */
static char *expect_token(Swarmc__ControlResponse *resp, int role, const char *addr)
{
    assert_non_null(resp);
    if (resp->code != 0)
        fail_msg("join-token failed: %s", resp->error);
    assert_non_null(resp->join_token);
    assert_true(resp->join_token->has_role);
    assert_int_equal(resp->join_token->role, role);
    assert_non_null(resp->join_token->token);
    if (addr != NULL)
        assert_string_equal(resp->join_token->manager_addr, addr);
    struct ca_token tok;
    assert_int_equal(ca_token_parse(&tok, resp->join_token->token, NULL), 0);
    char *token = swm_strdup(resp->join_token->token);
    proto_free(resp);
    return token;
}

static void digest_of(const char *token, char out[CA_TOKEN_DIGEST_CHARS + 1])
{
    struct ca_token tok;
    assert_int_equal(ca_token_parse(&tok, token, NULL), 0);
    memcpy(out, tok.digest, sizeof(tok.digest));
}

static void returns_the_stored_tokens(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    set_node_addr(f, "10.0.0.5");
    Swarmc__Cluster *c = stored_cluster(f);
    char *worker = expect_token(join_token(f, 1, WORKER, false), WORKER, "10.0.0.5:2377");
    char *manager = expect_token(join_token(f, 1, MANAGER, false), MANAGER, "10.0.0.5:2377");
    assert_string_equal(worker, c->root_ca->worker_token);
    assert_string_equal(manager, c->root_ca->manager_token);
    assert_string_not_equal(worker, manager);
    /* Reading changed nothing. */
    Swarmc__Cluster *again = stored_cluster(f);
    assert_string_equal(again->root_ca->worker_token, worker);
    proto_free(again);
    proto_free(c);
    swm_free(worker);
    swm_free(manager);
}

static void address_keeps_an_advertised_port(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    set_node_addr(f, "10.0.0.5:4567");
    swm_free(expect_token(join_token(f, 1, WORKER, false), WORKER, "10.0.0.5:4567"));
    set_node_addr(f, "fd00::1");
    swm_free(expect_token(join_token(f, 1, WORKER, false), WORKER, "[fd00::1]:2377"));
    set_node_addr(f, "[fd00::1]:2377");
    swm_free(expect_token(join_token(f, 1, WORKER, false), WORKER, "[fd00::1]:2377"));
}

static void rotate_changes_only_that_role(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    Swarmc__Cluster *before = stored_cluster(f);
    char digest[CA_TOKEN_DIGEST_CHARS + 1], digest2[CA_TOKEN_DIGEST_CHARS + 1];
    digest_of(before->root_ca->worker_token, digest);

    char *worker = expect_token(join_token(f, 1, WORKER, true), WORKER, NULL);
    Swarmc__Cluster *after = stored_cluster(f);
    assert_string_not_equal(worker, before->root_ca->worker_token);
    assert_string_equal(worker, after->root_ca->worker_token);
    assert_string_equal(after->root_ca->manager_token, before->root_ca->manager_token);
    digest_of(worker, digest2);
    assert_string_equal(digest2, digest);
    /* The root key itself is kept, and the update went through the log. */
    assert_memory_equal(after->root_ca->private_key.data, before->root_ca->private_key.data,
                        CA_SECKEY_LEN);
    assert_true(after->meta->version > before->meta->version);
    assert_int_equal(casvc_root_check(after->root_ca, NULL, NULL), 0);

    char *manager = expect_token(join_token(f, 1, MANAGER, true), MANAGER, NULL);
    Swarmc__Cluster *last = stored_cluster(f);
    assert_string_not_equal(manager, before->root_ca->manager_token);
    assert_string_equal(manager, last->root_ca->manager_token);
    assert_string_equal(last->root_ca->worker_token, worker);
    digest_of(manager, digest2);
    assert_string_equal(digest2, digest);
    /* The rest of the cluster object is untouched. */
    assert_string_equal(last->id, CFX_CLUSTER);
    assert_int_equal(last->meta->created_at, before->meta->created_at);
    proto_free(before);
    proto_free(after);
    proto_free(last);
    swm_free(worker);
    swm_free(manager);
}

static void bad_role_is_refused(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    Swarmc__Cluster *before = stored_cluster(f);
    afx_expect_error(join_token(f, 0, 0, false), SWM_EINVAL_SPEC,
                     "a join token role (worker or manager) is required");
    afx_expect_error(join_token(f, 1, 7, true), SWM_EINVAL_SPEC,
                     "unknown role 7: must be worker or manager");
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_JOIN_TOKEN;
    afx_expect_error(afx_call(f, &req), SWM_EINVAL_SPEC, NULL);
    /* Nothing was rotated. */
    Swarmc__Cluster *after = stored_cluster(f);
    assert_string_equal(after->root_ca->worker_token, before->root_ca->worker_token);
    assert_string_equal(after->root_ca->manager_token, before->root_ca->manager_token);
    proto_free(before);
    proto_free(after);
}

static void cluster_without_ca_says_so(void **state)
{
    struct afx *f = *state;
    afx_expect_error(join_token(f, 1, WORKER, false), SWM_ENOTSUP,
                     "this swarm has no certificate authority (it was created by an older "
                     "swarmc): join tokens need a swarm created by this version");
    afx_expect_error(join_token(f, 1, MANAGER, true), SWM_ENOTSUP, NULL);
}

static void damaged_ca_is_reported(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    Swarmc__Cluster *c = stored_cluster(f);
    c->root_ca->public_key.data[0] ^= 1;
    assert_int_equal(cfx_write1(&f->c, UPDATE, c), 0);
    afx_expect_error(join_token(f, 1, WORKER, false), SWM_ECORRUPT,
                     "the cluster's root CA private key does not match its public key");
    afx_expect_error(join_token(f, 1, WORKER, true), SWM_ECORRUPT, NULL);
}

static void info_hides_the_ca_secrets(void **state)
{
    struct afx *f = *state;
    install_ca(f);
    Swarmc__Cluster *c = stored_cluster(f);
    Swarmc__InfoRequest info = SWARMC__INFO_REQUEST__INIT;
    Swarmc__ControlRequest req = SWARMC__CONTROL_REQUEST__INIT;
    req.op_case = SWARMC__CONTROL_REQUEST__OP_INFO;
    req.info = &info;
    Swarmc__ControlResponse *resp = afx_call(f, &req);
    assert_int_equal(resp->code, 0);
    assert_non_null(resp->info);
    assert_non_null(resp->info->cluster);
    const Swarmc__RootCA *ca = resp->info->cluster->root_ca;
    assert_non_null(ca);
    assert_false(ca->has_private_key);
    assert_int_equal(ca->private_key.len, 0);
    assert_null(ca->worker_token);
    assert_null(ca->manager_token);
    assert_memory_equal(ca->public_key.data, c->root_ca->public_key.data, CA_PUBKEY_LEN);
    proto_free(resp);
    proto_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(returns_the_stored_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(address_keeps_an_advertised_port, setup, teardown),
        cmocka_unit_test_setup_teardown(rotate_changes_only_that_role, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_role_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(cluster_without_ca_says_so, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_ca_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(info_hides_the_ca_secrets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
