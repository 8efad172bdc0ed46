/* manager/join.c: admitting a node that joins issues its certificate from
 * the cluster's root and creates its node object through the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "common/alloc.h"
#include "common/id.h"
#include "manager/ca/ca.h"
#include "manager/join.h"

#define JOINER_ADDR "10.0.0.7"
#define HOUR (INT64_C(3600) * OBJ_SEC)

struct jfx {
    struct cfx c;
    uint8_t root_pk[CA_PUBKEY_LEN];
    struct ca_keypair joiner;
};

/* What the admission callback saw. */
struct admitted {
    struct cfx *c;
    int calls;
    int status;
    bool has_cert;
    struct ca_cert cert;
    struct swm_err err;
    bool node_stored; /* the node object was in the store during the call */
};

static void on_admitted(void *arg, int status, const struct ca_cert *cert,
                        const struct swm_err *err)
{
    struct admitted *o = arg;
    o->calls++;
    o->status = status;
    o->has_cert = cert != NULL;
    if (cert != NULL) {
        o->cert = *cert;
        Swarmc__Node *n = cfx_node(o->c, cert->node_id);
        o->node_stored = n != NULL;
        proto_free(n);
    }
    if (err != NULL)
        o->err = *err;
}

static bool admission_done(void *arg)
{
    return ((struct admitted *)arg)->calls > 0;
}

static Swarmc__Cluster *stored_cluster(struct cfx *c)
{
    struct store_read *r = NULL;
    Swarmc__Cluster *cl = NULL;
    assert_int_equal(store_read_begin(c->s, &r, NULL), 0);
    assert_int_equal(store_get_cluster(r, &cl), 0);
    store_read_end(r);
    return cl;
}

/* Gives the fixture's cluster a CA, as `swarmc init` does, and, when
 * expiry is not 0, a node certificate lifetime. Before the log opens. */
static void install_ca(struct jfx *f, int64_t expiry)
{
    Swarmc__Cluster *cl = stored_cluster(&f->c);
    assert_int_equal(casvc_root_create(&cl->root_ca, NULL), 0);
    assert_int_equal(cl->root_ca->public_key.len, CA_PUBKEY_LEN);
    memcpy(f->root_pk, cl->root_ca->public_key.data, CA_PUBKEY_LEN);
    if (expiry != 0) {
        if (cl->spec == NULL)
            cl->spec = obj_new(&swarmc__cluster_spec__descriptor);
        cl->spec->has_node_cert_expiry = 1;
        cl->spec->node_cert_expiry = expiry;
    }
    assert_int_equal(cfx_write1(&f->c, UPDATE, cl), 0);
}

static int setup_expiry(void **state, int64_t expiry)
{
    struct jfx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    cfx_setup(&f->c);
    install_ca(f, expiry);
    cfx_open_log(&f->c);
    assert_int_equal(ca_keypair_generate(&f->joiner), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_expiry(state, 0);
}

static int setup_one_hour_certs(void **state)
{
    return setup_expiry(state, HOUR);
}

/* A cluster object without a CA (one made before the CA existed). */
static int setup_no_ca(void **state)
{
    struct jfx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    cfx_setup(&f->c);
    cfx_open_log(&f->c);
    assert_int_equal(ca_keypair_generate(&f->joiner), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct jfx *f = *state;
    cfx_teardown(&f->c);
    ca_keypair_wipe(&f->joiner);
    free(f);
    return 0;
}

static size_t node_count(struct cfx *c)
{
    struct store_read *r = NULL;
    Swarmc__Node **nodes = NULL;
    size_t n = 0;
    assert_int_equal(store_read_begin(c->s, &r, NULL), 0);
    assert_int_equal(store_list_nodes(r, &nodes, &n), 0);
    store_read_end(r);
    store_free_list(nodes, n);
    return n;
}

/* Admits the fixture's joiner with role and waits for the outcome, which
 * must be a success. */
static void admit(struct jfx *f, int role, struct admitted *o)
{
    struct swm_err err = {0};
    *o = (struct admitted){.c = &f->c};
    int rc = manager_admit_node(f->c.s, f->c.log, f->joiner.pk, role, JOINER_ADDR, CFX_T0,
                                on_admitted, o, &err);
    if (rc != 0)
        fail_msg("manager_admit_node: %s", err.msg);
    assert_int_equal(o->calls, 0); /* never from inside the call */
    cfx_run_until(&f->c, admission_done, o, "the admission");
    assert_int_equal(o->calls, 1);
    if (o->status != 0)
        fail_msg("admission failed: %s", o->err.msg);
    assert_true(o->has_cert);
    assert_true(o->node_stored);
}

static void expect_node(struct jfx *f, const char *id, Swarmc__NodeRole role)
{
    Swarmc__Node *n = cfx_node(&f->c, id);
    assert_non_null(n);
    assert_string_equal(n->id, id);
    assert_true(n->has_role);
    assert_int_equal(n->role, role);
    assert_non_null(n->spec);
    assert_int_equal(n->spec->desired_role, role);
    assert_true(n->spec->has_availability);
    assert_int_equal(n->spec->availability, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE);
    assert_non_null(n->status);
    assert_true(n->status->has_state);
    assert_int_equal(n->status->state, SWARMC__NODE_STATE__NODE_STATE_UNKNOWN);
    assert_string_equal(n->status->addr, JOINER_ADDR);
    /* Its agent has not registered yet: the dispatcher fills this in. */
    assert_null(n->description);
    proto_free(n);
}

static void test_worker_is_admitted_with_a_certificate_and_a_node(void **state)
{
    struct jfx *f = *state;
    struct admitted o;
    size_t before = node_count(&f->c);
    admit(f, CA_ROLE_WORKER, &o);
    assert_int_equal(node_count(&f->c), before + 1);

    const struct ca_cert *cert = &o.cert;
    struct swm_err err = {0};
    assert_true(swm_id_valid(cert->node_id));
    assert_string_not_equal(cert->node_id, CFX_NODE);
    assert_string_equal(cert->cluster_id, CFX_CLUSTER);
    assert_int_equal(cert->role, CA_ROLE_WORKER);
    assert_memory_equal(cert->node_pk, f->joiner.pk, CA_PUBKEY_LEN);
    assert_memory_equal(cert->issuer_pk, f->root_pk, CA_PUBKEY_LEN);
    if (ca_cert_verify(cert, f->root_pk, CFX_T0, NULL, CA_ROLE_BIT(CA_ROLE_WORKER), &err) != 0)
        fail_msg("ca_cert_verify: %s", err.msg);
    /* A worker certificate, not a manager one. */
    assert_int_equal(
        ca_cert_verify(cert, f->root_pk, CFX_T0, NULL, CA_ROLE_BIT(CA_ROLE_MANAGER), NULL), -EPERM);
    /* Another root does not sign it. */
    struct ca_keypair other;
    assert_int_equal(ca_keypair_generate(&other), 0);
    assert_int_equal(ca_cert_verify(cert, other.pk, CFX_T0, NULL, CA_ROLES_ANY, NULL),
                     SWM_EWRONGCLUSTER);
    ca_keypair_wipe(&other);

    /* No spec'd expiry: the default lifetime from `now`. */
    assert_int_equal(cert->not_before, CFX_T0 - CA_CERT_BACKDATE);
    assert_int_equal(cert->not_after, CFX_T0 + CA_CERT_EXPIRY_DEFAULT);

    expect_node(f, cert->node_id, SWARMC__NODE_ROLE__NODE_ROLE_WORKER);
}

static void test_certificate_lifetime_follows_the_cluster_spec(void **state)
{
    struct jfx *f = *state;
    struct admitted o;
    admit(f, CA_ROLE_WORKER, &o);
    assert_int_equal(o.cert.not_after, CFX_T0 + HOUR);
    assert_int_equal(
        ca_cert_verify(&o.cert, f->root_pk, CFX_T0 + HOUR - 1, NULL, CA_ROLES_ANY, NULL), 0);
    assert_int_equal(ca_cert_verify(&o.cert, f->root_pk, CFX_T0 + HOUR, NULL, CA_ROLES_ANY, NULL),
                     SWM_EEXPIRED);
}

static void test_manager_is_admitted_as_a_manager_node(void **state)
{
    struct jfx *f = *state;
    struct admitted o;
    struct swm_err err = {0};
    admit(f, CA_ROLE_MANAGER, &o);
    assert_int_equal(o.cert.role, CA_ROLE_MANAGER);
    if (ca_cert_verify(&o.cert, f->root_pk, CFX_T0, NULL, CA_ROLE_BIT(CA_ROLE_MANAGER), &err) != 0)
        fail_msg("ca_cert_verify: %s", err.msg);
    expect_node(f, o.cert.node_id, SWARMC__NODE_ROLE__NODE_ROLE_MANAGER);
}

static void test_an_invalid_role_is_refused_without_a_call(void **state)
{
    struct jfx *f = *state;
    const int roles[] = {0, 3, -1, CA_ROLE_MANAGER + 1};
    size_t before = node_count(&f->c);
    struct admitted o = {.c = &f->c};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        struct swm_err err = {0};
        assert_int_equal(manager_admit_node(f->c.s, f->c.log, f->joiner.pk, roles[i], JOINER_ADDR,
                                            CFX_T0, on_admitted, &o, &err),
                         -EINVAL);
        assert_int_equal(err.code, -EINVAL);
        assert_non_null(strstr(err.msg, "role"));
    }
    /* Whatever was proposed would have committed by now. */
    cfx_barrier(&f->c);
    assert_int_equal(o.calls, 0);
    assert_int_equal(node_count(&f->c), before);
}

static void test_two_admissions_get_different_nodes(void **state)
{
    struct jfx *f = *state;
    struct admitted a, b;
    admit(f, CA_ROLE_WORKER, &a);
    assert_int_equal(ca_keypair_generate(&f->joiner), 0);
    admit(f, CA_ROLE_WORKER, &b);
    assert_string_not_equal(a.cert.node_id, b.cert.node_id);
    assert_memory_not_equal(a.cert.node_pk, b.cert.node_pk, CA_PUBKEY_LEN);
    expect_node(f, a.cert.node_id, SWARMC__NODE_ROLE__NODE_ROLE_WORKER);
    expect_node(f, b.cert.node_id, SWARMC__NODE_ROLE__NODE_ROLE_WORKER);
}

/* Both admissions proposed in one loop turn (group commit) still get a
 * node each. */
static void test_admissions_in_one_turn_both_commit(void **state)
{
    struct jfx *f = *state;
    struct admitted a = {.c = &f->c}, b = {.c = &f->c};
    struct swm_err err = {0};
    size_t before = node_count(&f->c);
    assert_int_equal(manager_admit_node(f->c.s, f->c.log, f->joiner.pk, CA_ROLE_WORKER, JOINER_ADDR,
                                        CFX_T0, on_admitted, &a, &err),
                     0);
    assert_int_equal(manager_admit_node(f->c.s, f->c.log, f->joiner.pk, CA_ROLE_MANAGER,
                                        JOINER_ADDR, CFX_T0, on_admitted, &b, &err),
                     0);
    cfx_run_until(&f->c, admission_done, &a, "the first admission");
    cfx_run_until(&f->c, admission_done, &b, "the second admission");
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_string_not_equal(a.cert.node_id, b.cert.node_id);
    assert_int_equal(node_count(&f->c), before + 2);
}

static void test_a_cluster_without_a_ca_is_refused_without_a_call(void **state)
{
    struct jfx *f = *state;
    struct admitted o = {.c = &f->c};
    struct swm_err err = {0};
    size_t before = node_count(&f->c);
    assert_int_equal(manager_admit_node(f->c.s, f->c.log, f->joiner.pk, CA_ROLE_WORKER, JOINER_ADDR,
                                        CFX_T0, on_admitted, &o, &err),
                     SWM_ECORRUPT);
    assert_int_equal(err.code, SWM_ECORRUPT);
    assert_non_null(strstr(err.msg, "certificate authority"));
    cfx_barrier(&f->c);
    assert_int_equal(o.calls, 0);
    assert_int_equal(node_count(&f->c), before);
}

/* A log standing in for the real one: counts proposals and refuses them
 * with `refuse` (0: fails the test, nothing may be proposed). */
struct fake_log {
    struct store_log base;
    int proposals;
    int refuse;
};

static int fake_propose(struct store_log *log, Swarmc__StoreEntry *entry, store_commit_cb cb,
                        void *arg)
{
    struct fake_log *fl = (struct fake_log *)log;
    fl->proposals++;
    if (fl->refuse == 0)
        fail_msg("nothing should have been proposed");
    return fl->refuse; /* without taking the entry, as the contract says */
}

static const struct store_log_ops fake_ops = {.propose = fake_propose};

static void test_a_store_without_a_cluster_is_refused_without_a_call(void **state)
{
    char *dir = fixture_tmpdir();
    struct store *s = fixture_open(dir);
    struct fake_log log = {.base = {.ops = &fake_ops}};
    struct ca_keypair joiner;
    struct admitted o = {0};
    struct swm_err err = {0};
    assert_int_equal(ca_keypair_generate(&joiner), 0);
    assert_int_equal(manager_admit_node(s, &log.base, joiner.pk, CA_ROLE_WORKER, JOINER_ADDR,
                                        CFX_T0, on_admitted, &o, &err),
                     SWM_ENOTFOUND);
    assert_int_equal(err.code, SWM_ENOTFOUND);
    assert_non_null(strstr(err.msg, "cluster"));
    assert_int_equal(log.proposals, 0);
    assert_int_equal(o.calls, 0);
    ca_keypair_wipe(&joiner);
    store_close(s);
    fixture_rmdir(dir);
}

/* The log refusing the entry (it is closing): an error, no call, nothing
 * leaked (ASan builds check). */
static void test_a_refused_proposal_is_returned_without_a_call(void **state)
{
    struct jfx *f = *state;
    struct fake_log log = {.base = {.ops = &fake_ops}, .refuse = SWM_ESHUTDOWN};
    struct admitted o = {.c = &f->c};
    struct swm_err err = {0};
    assert_int_equal(manager_admit_node(f->c.s, &log.base, f->joiner.pk, CA_ROLE_WORKER,
                                        JOINER_ADDR, CFX_T0, on_admitted, &o, &err),
                     SWM_ESHUTDOWN);
    assert_int_equal(err.code, SWM_ESHUTDOWN);
    assert_int_equal(log.proposals, 1);
    cfx_barrier(&f->c);
    assert_int_equal(o.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_is_admitted_with_a_certificate_and_a_node,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_lifetime_follows_the_cluster_spec,
                                        setup_one_hour_certs, teardown),
        cmocka_unit_test_setup_teardown(test_manager_is_admitted_as_a_manager_node, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_invalid_role_is_refused_without_a_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_admissions_get_different_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admissions_in_one_turn_both_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_cluster_without_a_ca_is_refused_without_a_call,
                                        setup_no_ca, teardown),
        cmocka_unit_test(test_a_store_without_a_cluster_is_refused_without_a_call),
        cmocka_unit_test_setup_teardown(test_a_refused_proposal_is_returned_without_a_call, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
