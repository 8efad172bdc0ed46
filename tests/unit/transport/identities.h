/* Test identities for the secure-channel tests (tests/unit/transport and
 * the raft transport over it): a fixed wall clock the tests move to expire
 * certificates, and nodes with seeded keys and certificates of one cluster. */
#ifndef SWM_TESTS_UNIT_TRANSPORT_IDENTITIES_H
#define SWM_TESTS_UNIT_TRANSPORT_IDENTITIES_H

#include <stdint.h>

#include "common/id.h"
#include "net/identity/identity.h"

#define TEST_CLUSTER_ID "clustr0000000000000000001"

/* The wall clock every test channel reads (test_wall_clock). */
extern int64_t test_wall_now;
int64_t test_wall_clock(void *arg);

struct test_node {
    struct ca_keypair key;
    struct ca_cert cert;
    char id[SWM_ID_LEN + 1];
    const uint8_t *root_pk; /* the root that signed cert */
};

/* A node with the key seeded by seed_byte and a certificate for id, role,
 * TEST_CLUSTER_ID, signed by `by`, valid from test_wall_now for the
 * default expiry. Fails the test on error. */
void test_node_make(struct test_node *n, const struct ca_keypair *by, int role, int seed_byte,
                    const char *id);

#endif
