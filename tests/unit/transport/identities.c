#include "identities.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>

int64_t test_wall_now = INT64_C(1800000000) * INT64_C(1000000000);

int64_t test_wall_clock(void *arg)
{
    return test_wall_now;
}

void test_node_make(struct test_node *n, const struct ca_keypair *by, int role, int seed_byte,
                    const char *id)
{
    uint8_t seed[32] = {(uint8_t)seed_byte};
    ca_keypair_from_seed(&n->key, seed);
    snprintf(n->id, sizeof(n->id), "%s", id);
    n->root_pk = by->pk;
    assert_int_equal(ca_cert_issue(&n->cert, by, n->id, TEST_CLUSTER_ID, role, n->key.pk,
                                   test_wall_now, CA_CERT_EXPIRY_DEFAULT, NULL),
                     0);
}
