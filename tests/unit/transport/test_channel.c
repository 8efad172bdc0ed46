/* Tests of net/transport/channel.c: the secure channel handshake, join,
 * framing, keepalives and every way an attacker or a broken peer can make
 * it fail (DESIGN.md §6, docs/protocol.md "Secure channel"). Two channels
 * talk through byte buffers; a test may read, change, drop or replay the
 * bytes in between. */
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
#include "common/buf.h"
#include "identities.h"
#include "net/transport/channel.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)

/* ----------------------------------------------------------- fixture -- */

static struct ca_keypair root, other_root;
static struct test_node mgr, wkr, mgr2;
static struct ca_revoked revoked;
static char worker_token[CA_TOKEN_LEN + 1], manager_token[CA_TOKEN_LEN + 1];
static struct ca_join_secrets secrets;

static int setup(void **state)
{
    uint8_t seed[32] = {100};
    ca_keypair_from_seed(&root, seed);
    seed[0] = 101;
    ca_keypair_from_seed(&other_root, seed);
    test_node_make(&mgr, &root, CA_ROLE_MANAGER, 1, "manager000000000000000001");
    test_node_make(&wkr, &root, CA_ROLE_WORKER, 2, "worker0000000000000000002");
    test_node_make(&mgr2, &root, CA_ROLE_MANAGER, 3, "manager000000000000000003");
    assert_int_equal(ca_token_generate(root.pk, worker_token), 0);
    assert_int_equal(ca_token_generate(root.pk, manager_token), 0);
    struct ca_token t;
    assert_int_equal(ca_token_parse(&t, worker_token, NULL), 0);
    memcpy(secrets.worker, t.secret, sizeof(secrets.worker));
    assert_int_equal(ca_token_parse(&t, manager_token, NULL), 0);
    memcpy(secrets.manager, t.secret, sizeof(secrets.manager));
    return 0;
}

static int teardown(void **state)
{
    ca_revoked_free(&revoked);
    return 0;
}

/* Every test starts from a clean clock and revocation set. */
static int reset(void **state)
{
    test_wall_now = INT64_C(1800000000) * SEC;
    ca_revoked_free(&revoked);
    return 0;
}

static struct chan_config base_config(enum chan_side side, const struct test_node *n)
{
    return (struct chan_config){
        .side = side,
        .identity = &n->key,
        .cert = &n->cert,
        .root_pk = root.pk,
        .join_secrets = side == CHAN_RESPONDER ? &secrets : NULL,
        .revoked = &revoked,
        .wall_clock = test_wall_clock,
    };
}

static struct chan *open_chan(const struct chan_config *cfg)
{
    struct chan *ch = NULL;
    struct swm_err err = {0};
    int rc = chan_new(&ch, cfg, &err);
    if (rc < 0)
        fail_msg("chan_new: %s", err.msg);
    assert_int_equal(chan_start(ch, 0, &err), 0);
    return ch;
}

/* Moves everything `from` has written into `to`. Returns chan_feed's code
 * (0 if there was nothing to move). */
static int move(struct chan *from, struct chan *to, struct swm_err *err)
{
    const uint8_t *out;
    size_t n = chan_output(from, &out);
    if (n == 0)
        return 0;
    struct swm_buf copy = {0};
    assert_int_equal(swm_buf_append(&copy, out, n), 0);
    chan_output_consume(from, n);
    int rc = chan_feed(to, copy.data, copy.len, 0, err);
    swm_buf_free(&copy);
    return rc;
}

struct pump_result {
    int rc_i, rc_r;
    struct swm_err err_i, err_r;
};

/* Runs the exchange until neither side has output or one fails; the
 * failing side's REJECT (if any) is still delivered. */
static struct pump_result pump(struct chan *i, struct chan *r)
{
    struct pump_result res = {0};
    for (int round = 0; round < 16; round++) {
        const uint8_t *o;
        if (chan_output(i, &o) == 0 && chan_output(r, &o) == 0)
            break;
        if (res.rc_r == 0 && res.rc_i == 0)
            res.rc_r = move(i, r, &res.err_r);
        if (res.rc_i == 0)
            res.rc_i = move(r, i, &res.err_i);
        if (res.rc_r < 0 && res.rc_i < 0)
            break;
        if (res.rc_i < 0) /* the initiator just closes */
            break;
    }
    return res;
}

static void assert_msg(const struct swm_err *err, int code, const char *needle)
{
    if (err->code != code)
        fail_msg("code %d (%s), want %d; message: %s", err->code, swm_strerror(err->code), code,
                 err->msg);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", err->msg, needle);
}

static void expect_event(struct chan *ch, enum chan_event_type type, struct chan_event *ev)
{
    struct chan_event tmp;
    if (ev == NULL)
        ev = &tmp;
    assert_int_equal(chan_next_event(ch, ev), 1);
    assert_int_equal(ev->type, type);
}

static void connect_pair(struct chan **i, struct chan **r, const struct test_node *ni,
                         const struct test_node *nr)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, ni);
    struct chan_config cr = base_config(CHAN_RESPONDER, nr);
    *i = open_chan(&ci);
    *r = open_chan(&cr);
    struct pump_result res = pump(*i, *r);
    if (res.rc_i < 0 || res.rc_r < 0)
        fail_msg("handshake: %s / %s", res.err_i.msg, res.err_r.msg);
    expect_event(*i, CHAN_EV_ESTABLISHED, NULL);
    expect_event(*r, CHAN_EV_ESTABLISHED, NULL);
}

/* A sealed frame as the peer would receive it. */
static size_t take_output(struct chan *ch, uint8_t *buf, size_t cap)
{
    const uint8_t *o;
    size_t n = chan_output(ch, &o);
    assert_true(n <= cap);
    memcpy(buf, o, n);
    chan_output_consume(ch, n);
    return n;
}

/* ---------------------------------------------------------- handshake -- */

static void handshake_establishes_and_carries_data(void **state)
{
    struct chan *i, *r;
    struct swm_err err = {0};
    connect_pair(&i, &r, &wkr, &mgr);
    assert_true(chan_established(i) && chan_established(r));
    assert_string_equal(chan_peer_cert(i)->node_id, mgr.id);
    assert_string_equal(chan_peer_cert(r)->node_id, wkr.id);
    assert_int_equal(chan_peer_cert(r)->role, CA_ROLE_WORKER);

    assert_int_equal(chan_send(i, "hello", 5, &err), 0);
    assert_int_equal(chan_send(i, "", 0, &err), 0);
    assert_int_equal(chan_send(r, "world!", 6, &err), 0);
    assert_int_equal(move(i, r, &err), 0);
    assert_int_equal(move(r, i, &err), 0);
    struct chan_event ev;
    expect_event(r, CHAN_EV_DATA, &ev);
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "hello", 5);
    expect_event(r, CHAN_EV_DATA, &ev);
    assert_int_equal(ev.len, 0);
    expect_event(i, CHAN_EV_DATA, &ev);
    assert_int_equal(ev.len, 6);
    assert_memory_equal(ev.data, "world!", 6);
    assert_int_equal(chan_next_event(i, &ev), 0);
    assert_int_equal(chan_tx_count(i), 2);
    assert_int_equal(chan_rx_count(r), 2);
    chan_free(i);
    chan_free(r);
}

static void handshake_survives_byte_at_a_time_delivery(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &mgr2);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct chan *i = open_chan(&ci), *r = open_chan(&cr);
    struct swm_err err = {0};
    for (int round = 0; round < 4; round++) {
        struct chan *from = round % 2 ? r : i, *to = round % 2 ? i : r;
        uint8_t buf[2048];
        size_t n = take_output(from, buf, sizeof(buf));
        for (size_t k = 0; k < n; k++)
            assert_int_equal(chan_feed(to, buf + k, 1, 0, &err), 0);
    }
    assert_true(chan_established(i) && chan_established(r));
    chan_free(i);
    chan_free(r);
}

static void large_messages_and_rekeys_pass(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    ci.rekey_interval = cr.rekey_interval = 3;
    ci.max_frame = cr.max_frame = 100000;
    struct chan *i = open_chan(&ci), *r = open_chan(&cr);
    struct pump_result res = pump(i, r);
    assert_int_equal(res.rc_i, 0);
    assert_int_equal(res.rc_r, 0);
    expect_event(r, CHAN_EV_ESTABLISHED, NULL);
    static uint8_t big[100000];
    struct swm_err err = {0};
    for (int k = 0; k < 10; k++) {
        memset(big, k, sizeof(big));
        assert_int_equal(chan_send(i, big, sizeof(big), &err), 0);
        assert_int_equal(move(i, r, &err), 0);
        struct chan_event ev;
        expect_event(r, CHAN_EV_DATA, &ev);
        assert_int_equal(ev.len, sizeof(big));
        assert_int_equal(ev.data[ev.len - 1], k);
    }
    assert_int_equal(chan_send(i, big, sizeof(big) + 1, &err), -EMSGSIZE);
    assert_msg(&err, -EMSGSIZE, "exceeds the limit of 100000 bytes");
    chan_free(i);
    chan_free(r);
}

/* ---------------------------------------------------- certificates -- */

/* Runs a handshake that must fail on the responder with `code`; the
 * initiator learns the same code from the REJECT. */
static void expect_refused(struct chan_config *ci, struct chan_config *cr, int code,
                           const char *why)
{
    struct chan *i = open_chan(ci), *r = open_chan(cr);
    struct pump_result res = pump(i, r);
    assert_int_equal(res.rc_r, code);
    assert_msg(&res.err_r, code, why);
    assert_int_equal(res.rc_i, code);
    assert_msg(&res.err_i, code, "the peer refused the handshake");
    assert_msg(&res.err_i, code, why);
    assert_false(chan_established(i));
    assert_false(chan_established(r));
    struct swm_err err = {0};
    assert_int_equal(chan_send(i, "x", 1, &err), code);
    chan_free(i);
    chan_free(r);
}

/* Runs a handshake that the initiator must refuse with `code`. */
static void expect_initiator_refuses(struct chan_config *ci, struct chan_config *cr, int code,
                                     const char *why)
{
    struct chan *i = open_chan(ci), *r = open_chan(cr);
    struct pump_result res = pump(i, r);
    assert_int_equal(res.rc_i, code);
    assert_msg(&res.err_i, code, why);
    assert_false(chan_established(i));
    assert_false(chan_established(r));
    chan_free(i);
    chan_free(r);
}

static void revoked_nodes_are_refused(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    assert_int_equal(ca_revoked_add(&revoked, wkr.id), 0);
    expect_refused(&ci, &cr, SWM_EREVOKED,
                   "node "
                   "worker0000000000000000002 was removed");

    /* And a worker refuses a removed manager. */
    ca_revoked_free(&revoked);
    assert_int_equal(ca_revoked_add(&revoked, mgr.id), 0);
    expect_initiator_refuses(&ci, &cr, SWM_EREVOKED, "was removed from the cluster");
}

static void removal_closes_an_open_channel(void **state)
{
    struct chan *i, *r;
    struct swm_err err = {0};
    connect_pair(&i, &r, &wkr, &mgr);
    assert_int_equal(chan_recheck(r, &err), 0);
    assert_int_equal(ca_revoked_add(&revoked, wkr.id), 0);
    assert_int_equal(chan_recheck(r, &err), SWM_EREVOKED);
    assert_msg(&err, SWM_EREVOKED, "was removed");
    assert_int_equal(chan_send(r, "x", 1, &err), SWM_EREVOKED);
    assert_int_equal(chan_feed(r, "", 0, 0, &err), SWM_EREVOKED);
    chan_free(i);
    chan_free(r);
}

static void expired_certificates_are_refused(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct test_node old = wkr;
    assert_int_equal(ca_cert_issue(&old.cert, &root, old.id, TEST_CLUSTER_ID, CA_ROLE_WORKER,
                                   old.key.pk, test_wall_now - 100 * 3600 * SEC, 3600 * SEC, NULL),
                     0);
    ci.cert = &old.cert;
    expect_refused(&ci, &cr, SWM_EEXPIRED, "expired");

    /* Both expired from the worker's point of view: it refuses first. */
    ci.cert = &wkr.cert;
    test_wall_now += CA_CERT_EXPIRY_DEFAULT;
    expect_initiator_refuses(&ci, &cr, SWM_EEXPIRED, "certificate of node manager");

    /* An open channel notices at its next recheck. */
    test_wall_now -= CA_CERT_EXPIRY_DEFAULT;
    struct chan *i, *r;
    struct swm_err err = {0};
    connect_pair(&i, &r, &wkr, &mgr);
    test_wall_now += CA_CERT_EXPIRY_DEFAULT;
    assert_int_equal(chan_recheck(i, &err), SWM_EEXPIRED);
    chan_free(i);
    chan_free(r);
}

static void roles_are_enforced(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    cr.peer_roles = CA_ROLE_BIT(CA_ROLE_MANAGER); /* e.g. the raft port */
    expect_refused(&ci, &cr, -EPERM, "is a worker, which is not allowed here");

    /* A worker posing as the manager a node dials. */
    struct chan_config ci2 = base_config(CHAN_INITIATOR, &mgr);
    struct chan_config cr2 = base_config(CHAN_RESPONDER, &wkr);
    ci2.peer_roles = CA_ROLE_BIT(CA_ROLE_MANAGER);
    expect_initiator_refuses(&ci2, &cr2, -EPERM, "is a worker");
}

static void every_rpc_can_check_the_callers_role(void **state)
{
    struct chan *i, *r;
    struct swm_err err = {0};
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    i = open_chan(&ci);
    assert_int_equal(chan_check_role(i, CA_ROLES_ANY, &err), -EAGAIN);
    chan_free(i);
    connect_pair(&i, &r, &wkr, &mgr);
    assert_int_equal(chan_check_role(r, CA_ROLE_BIT(CA_ROLE_WORKER), &err), 0);
    assert_int_equal(chan_check_role(r, CA_ROLE_BIT(CA_ROLE_MANAGER), &err), -EPERM);
    assert_msg(&err, -EPERM, "node worker0000000000000000002 is a worker and may not");
    assert_int_equal(chan_check_role(i, CA_ROLE_BIT(CA_ROLE_MANAGER), &err), 0);
    chan_free(i);
    chan_free(r);
}

static void another_clusters_nodes_are_refused(void **state)
{
    struct test_node stranger;
    test_node_make(&stranger, &other_root, CA_ROLE_MANAGER, 9, "stranger00000000000000009");
    struct chan_config ci = base_config(CHAN_INITIATOR, &stranger);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    expect_refused(&ci, &cr, SWM_EWRONGCLUSTER, "another cluster's root key");
    ci = base_config(CHAN_INITIATOR, &wkr);
    cr = base_config(CHAN_RESPONDER, &stranger);
    expect_initiator_refuses(&ci, &cr, SWM_EWRONGCLUSTER, "another cluster's root key");
}

static void the_expected_node_is_checked(void **state)
{
    /* Dialing manager 3 but reaching manager 1 (a redirected address). */
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    ci.peer_node_id = mgr2.id;
    expect_initiator_refuses(&ci, &cr, SWM_EAUTH,
                             "reached node manager000000000000000001, expected node "
                             "manager000000000000000003");
    ci.peer_node_id = mgr.id;
    struct chan *i = open_chan(&ci), *r = open_chan(&cr);
    struct pump_result res = pump(i, r);
    assert_int_equal(res.rc_i, 0);
    assert_true(chan_established(i));
    chan_free(i);
    chan_free(r);
    ci.peer_node_id = "not-an-id";
    struct swm_err err = {0};
    assert_int_equal(chan_new(&i, &ci, &err), -EINVAL);
}

static void unknown_versions_are_refused(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct chan *i = open_chan(&ci), *r = open_chan(&cr);
    struct swm_err err = {0};
    uint8_t buf[256];
    size_t n = take_output(i, buf, sizeof(buf));
    buf[4 + 5] = 2;
    assert_int_equal(chan_feed(r, buf, n, 0, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "handshake version 2 is not supported");
    /* The initiator learns why. */
    n = take_output(r, buf, sizeof(buf));
    assert_int_equal(chan_feed(i, buf, n, 0, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "the peer refused the handshake: handshake version 2");
    chan_free(i);
    chan_free(r);
}

/* --------------------------------------------------- replay and MITM -- */

static void replayed_handshake_fails(void **state)
{
    /* Record a whole successful handshake from the initiator's side. */
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct chan *i = open_chan(&ci), *r = open_chan(&cr);
    struct swm_err err = {0};
    uint8_t from_i[4096], from_r[4096];
    size_t ni = take_output(i, from_i, sizeof(from_i));
    assert_int_equal(chan_feed(r, from_i, ni, 0, &err), 0);
    size_t nr = take_output(r, from_r, sizeof(from_r));
    assert_int_equal(chan_feed(i, from_r, nr, 0, &err), 0);
    ni += take_output(i, from_i + ni, sizeof(from_i) - ni);
    assert_int_equal(chan_feed(r, from_i + 71 + 4, ni - 71 - 4, 0, &err), 0);
    nr += take_output(r, from_r + nr, sizeof(from_r) - nr);
    assert_int_equal(chan_feed(i, from_r + 341, nr - 341, 0, &err), 0);
    assert_true(chan_established(i) && chan_established(r));
    chan_free(i);
    chan_free(r);

    /* Replaying the initiator's bytes to a fresh responder: its new nonce
     * and ephemeral key change the transcript, so the old signature fails. */
    r = open_chan(&cr);
    int rc = chan_feed(r, from_i, ni, 0, &err);
    assert_int_equal(rc, SWM_EAUTH);
    assert_msg(&err, SWM_EAUTH, "initiator's handshake signature does not verify");
    assert_false(chan_established(r));
    chan_free(r);

    /* Replaying the responder's bytes to a fresh initiator. */
    i = open_chan(&ci);
    rc = chan_feed(i, from_r, nr, 0, &err);
    assert_int_equal(rc, SWM_EAUTH);
    assert_msg(&err, SWM_EAUTH, "responder's handshake signature does not verify");
    chan_free(i);
}

/* Offsets inside the frames (after the 4-byte length). */
#define HELLO_EPH (1 + 4 + 1 + 1 + 32)
#define RESP_EPH (1 + 32)
#define RESP_CERT (1 + 32 + 32)
#define AUTH_CERT 1

static void mitm_substituting_ephemeral_keys_fails(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct swm_err err = {0};
    uint8_t mitm_pk[32], mitm_sk[32], buf[4096];
    crypto_kx_keypair(mitm_pk, mitm_sk);

    /* The relay swaps the initiator's key for its own towards the
     * responder: the responder signs a transcript the initiator never saw. */
    struct chan *i = open_chan(&ci), *r = open_chan(&cr);
    size_t n = take_output(i, buf, sizeof(buf));
    memcpy(buf + 4 + HELLO_EPH, mitm_pk, 32);
    assert_int_equal(chan_feed(r, buf, n, 0, &err), 0);
    n = take_output(r, buf, sizeof(buf));
    assert_int_equal(chan_feed(i, buf, n, 0, &err), SWM_EAUTH);
    assert_msg(&err, SWM_EAUTH, "responder's handshake signature does not verify");
    chan_free(i);
    chan_free(r);

    /* ... or the responder's key towards the initiator. */
    i = open_chan(&ci);
    r = open_chan(&cr);
    n = take_output(i, buf, sizeof(buf));
    assert_int_equal(chan_feed(r, buf, n, 0, &err), 0);
    n = take_output(r, buf, sizeof(buf));
    memcpy(buf + 4 + RESP_EPH, mitm_pk, 32);
    assert_int_equal(chan_feed(i, buf, n, 0, &err), SWM_EAUTH);
    chan_free(i);
    chan_free(r);
}

static void mitm_substituting_certificates_fails(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct swm_err err = {0};
    uint8_t buf[4096];

    /* Another genuine manager's certificate, without its key. */
    struct chan *i = open_chan(&ci), *r = open_chan(&cr);
    size_t n = take_output(i, buf, sizeof(buf));
    assert_int_equal(chan_feed(r, buf, n, 0, &err), 0);
    n = take_output(r, buf, sizeof(buf));
    ca_cert_encode(&mgr2.cert, buf + 4 + RESP_CERT);
    assert_int_equal(chan_feed(i, buf, n, 0, &err), SWM_EAUTH);
    assert_msg(&err, SWM_EAUTH, "responder's handshake signature does not verify");
    chan_free(i);
    chan_free(r);

    /* A manager's certificate in place of the worker's, to gain its role. */
    i = open_chan(&ci);
    r = open_chan(&cr);
    n = take_output(i, buf, sizeof(buf));
    assert_int_equal(chan_feed(r, buf, n, 0, &err), 0);
    n = take_output(r, buf, sizeof(buf));
    assert_int_equal(chan_feed(i, buf, n, 0, &err), 0);
    n = take_output(i, buf, sizeof(buf));
    ca_cert_encode(&mgr2.cert, buf + 4 + AUTH_CERT);
    assert_int_equal(chan_feed(r, buf, n, 0, &err), SWM_EAUTH);
    assert_msg(&err, SWM_EAUTH, "initiator's handshake signature does not verify");
    assert_false(chan_established(r));
    chan_free(i);
    chan_free(r);
}

static void tampering_anywhere_in_the_handshake_fails(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    /* Flip one bit at every offset of every handshake message: the
     * handshake never completes on both sides with the change in place. */
    for (int msg = 0; msg < 4; msg++) {
        for (size_t off = 4;; off += 3) {
            struct chan *i = open_chan(&ci), *r = open_chan(&cr);
            struct swm_err err = {0};
            uint8_t buf[4096];
            int rc = 0;
            size_t len = 0;
            for (int step = 0; step < 4 && rc == 0; step++) {
                struct chan *from = step % 2 ? r : i, *to = step % 2 ? i : r;
                size_t n = take_output(from, buf, sizeof(buf));
                if (step == msg) {
                    len = n;
                    if (off >= n)
                        break;
                    buf[off] ^= 0x10;
                }
                rc = chan_feed(to, buf, n, 0, &err);
            }
            bool done = off >= len;
            if (!done) {
                assert_true(rc < 0);
                assert_true(err.msg[0] != '\0');
                assert_false(chan_established(i) && chan_established(r));
            }
            chan_free(i);
            chan_free(r);
            if (done)
                break;
        }
    }
}

/* ------------------------------------------------------------ frames -- */

static void bit_flips_in_frames_are_detected(void **state)
{
    struct chan *i, *r;
    struct swm_err err = {0};
    connect_pair(&i, &r, &wkr, &mgr);
    uint8_t frame[256];
    assert_int_equal(chan_send(i, "payload", 7, &err), 0);
    size_t n = take_output(i, frame, sizeof(frame));
    for (size_t off = 4; off < n; off++) {
        struct chan *i2, *r2;
        connect_pair(&i2, &r2, &wkr, &mgr);
        assert_int_equal(chan_send(i2, "payload", 7, &err), 0);
        uint8_t f2[256];
        size_t n2 = take_output(i2, f2, sizeof(f2));
        assert_int_equal(n2, n);
        f2[off] ^= 1;
        assert_int_equal(chan_feed(r2, f2, n2, 0, &err), SWM_EPROTO);
        assert_msg(&err, SWM_EPROTO, "failed authentication");
        struct chan_event ev;
        assert_int_equal(chan_next_event(r2, &ev), 0);
        chan_free(i2);
        chan_free(r2);
    }
    /* The untouched frame still works, once; a replay fails. */
    assert_int_equal(chan_feed(r, frame, n, 0, &err), 0);
    assert_int_equal(chan_feed(r, frame, n, 0, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "frame 2 failed authentication");
    chan_free(i);
    chan_free(r);
}

static void reordered_frames_are_detected(void **state)
{
    struct chan *i, *r;
    struct swm_err err = {0};
    connect_pair(&i, &r, &wkr, &mgr);
    uint8_t a[128], b[128];
    assert_int_equal(chan_send(i, "first", 5, &err), 0);
    size_t na = take_output(i, a, sizeof(a));
    assert_int_equal(chan_send(i, "second", 6, &err), 0);
    size_t nb = take_output(i, b, sizeof(b));
    assert_int_equal(chan_feed(r, b, nb, 0, &err), SWM_EPROTO);
    (void)na;
    chan_free(i);
    chan_free(r);
}

static void oversized_frames_are_refused_before_buffering(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    ci.max_frame = cr.max_frame = 1000;
    struct swm_err err = {0};

    /* During the handshake, the limit is the handshake's own. */
    struct chan *r = open_chan(&cr);
    const uint8_t huge[4] = {0x00, 0x10, 0x00, 0x00};
    assert_int_equal(chan_feed(r, huge, 4, 0, &err), -EMSGSIZE);
    assert_msg(&err, -EMSGSIZE, "frame of 1048576 bytes exceeds the limit of 1024 bytes");
    chan_free(r);

    struct chan *i = open_chan(&ci);
    r = open_chan(&cr);
    struct pump_result res = pump(i, r);
    assert_int_equal(res.rc_i, 0);
    /* Just over the limit: refused from the length alone. */
    const uint8_t over[4] = {0x00, 0x00, 0x03, 0xfb}; /* 1000 + 1 + 17 + 1 */
    assert_int_equal(chan_feed(r, over, 4, 0, &err), -EMSGSIZE);
    assert_msg(&err, -EMSGSIZE, "frame of 1019 bytes exceeds the limit of 1018 bytes");
    chan_free(i);
    chan_free(r);

    i = open_chan(&ci);
    r = open_chan(&cr);
    pump(i, r);
    const uint8_t max[4] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(chan_feed(i, max, 4, 0, &err), -EMSGSIZE);
    chan_free(i);
    chan_free(r);
}

static void truncated_frames_are_refused(void **state)
{
    struct chan *i, *r;
    struct swm_err err = {0};
    connect_pair(&i, &r, &wkr, &mgr);
    const uint8_t tiny[4 + 5] = {0, 0, 0, 5, 1, 2, 3, 4, 5};
    assert_int_equal(chan_feed(r, tiny, sizeof(tiny), 0, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "truncated frame: 5 bytes");
    chan_free(i);
    chan_free(r);

    /* A frame cut short by the connection closing. */
    connect_pair(&i, &r, &wkr, &mgr);
    uint8_t frame[128];
    assert_int_equal(chan_send(i, "payload", 7, &err), 0);
    size_t n = take_output(i, frame, sizeof(frame));
    assert_int_equal(chan_feed(r, frame, n - 3, 0, &err), 0);
    assert_int_equal(chan_feed_eof(r, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "connection closed inside a frame");
    chan_free(i);
    chan_free(r);

    /* A handshake message of the wrong length, and EOF mid-handshake. */
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    i = open_chan(&ci);
    r = open_chan(&cr);
    n = take_output(i, frame, sizeof(frame));
    frame[3] -= 1;
    assert_int_equal(chan_feed(r, frame, n - 1, 0, &err), SWM_EPROTO);
    assert_msg(&err, SWM_EPROTO, "bad HELLO");
    chan_free(r);
    r = open_chan(&cr);
    assert_int_equal(chan_feed(r, frame, 10, 0, &err), 0);
    assert_int_equal(chan_feed_eof(r, &err), SWM_EPROTO);
    chan_free(i);
    chan_free(r);
}

static uint64_t rng_state = 0x2545f4914f6cdd1du;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void random_garbage_never_establishes(void **state)
{
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    uint8_t buf[1500];
    for (int k = 0; k < 3000; k++) {
        /* Garbage with a plausible length prefix half of the time. */
        size_t len = 1 + rng() % sizeof(buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rng();
        if (k % 2 == 0 && len > 4) {
            uint32_t fl = (uint32_t)(len - 4);
            buf[0] = 0;
            buf[1] = 0;
            buf[2] = (uint8_t)(fl >> 8);
            buf[3] = (uint8_t)fl;
            if (k % 4 == 0)
                buf[4] = (uint8_t)(1 + rng() % 6); /* a real message type */
        }
        struct swm_err err = {0};
        struct chan *target;
        struct chan *peer = NULL;
        switch (k % 3) {
        case 0:
            target = open_chan(&cr);
            break;
        case 1:
            target = open_chan(&ci);
            break;
        default:
            connect_pair(&peer, &target, &wkr, &mgr);
            break;
        }
        bool was = chan_established(target);
        int rc = chan_feed(target, buf, len, 0, &err);
        if (rc < 0) {
            assert_int_equal(rc, err.code);
            assert_true(err.msg[0] != '\0');
        }
        assert_int_equal(chan_established(target), was && rc == 0);
        struct chan_event ev;
        while (chan_next_event(target, &ev) == 1)
            assert_int_not_equal(ev.type, CHAN_EV_DATA);
        chan_free(target);
        chan_free(peer);
    }
}

/* ---------------------------------------------------- time and keepalive -- */

static void keepalives_and_timeouts(void **state)
{
    struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    ci.keepalive_interval = cr.keepalive_interval = 10 * SEC;
    ci.idle_timeout = cr.idle_timeout = 30 * SEC;
    ci.handshake_timeout = cr.handshake_timeout = 5 * SEC;
    struct swm_err err = {0};

    /* A silent peer fails the handshake. */
    struct chan *r = open_chan(&cr);
    assert_int_equal(chan_tick(r, 4 * SEC, &err), 0);
    assert_int_equal(chan_tick(r, 5 * SEC, &err), -ETIMEDOUT);
    assert_msg(&err, -ETIMEDOUT, "handshake not complete after 5000 ms");
    chan_free(r);

    struct chan *i = open_chan(&ci);
    r = open_chan(&cr);
    pump(i, r);
    const uint8_t *o;
    assert_int_equal(chan_tick(i, 9 * SEC, &err), 0);
    assert_int_equal(chan_output(i, &o), 0);
    assert_int_equal(chan_tick(i, 10 * SEC, &err), 0);
    size_t n = chan_output(i, &o);
    assert_int_equal(n, 4 + 17 + 1);
    assert_int_equal(chan_feed(r, o, n, 10 * SEC, &err), 0);
    chan_output_consume(i, n);
    assert_int_equal(chan_rx_count(r), 1);
    struct chan_event ev;
    expect_event(r, CHAN_EV_ESTABLISHED, NULL);
    assert_int_equal(chan_next_event(r, &ev), 0);
    /* Heard at 10 s: alive until 40 s. */
    assert_int_equal(chan_tick(r, 39 * SEC, &err), 0);
    assert_int_equal(chan_tick(r, 40 * SEC, &err), -ETIMEDOUT);
    assert_msg(&err, -ETIMEDOUT, "nothing heard from the peer for 30000 ms");
    chan_free(i);
    chan_free(r);
}

/* -------------------------------------------------------------- join -- */

struct joiner {
    struct ca_keypair key;
    struct ca_token token;
    struct chan_config cfg;
};

static void make_joiner(struct joiner *j, const char *token, int role)
{
    assert_int_equal(ca_keypair_generate(&j->key), 0);
    assert_int_equal(ca_token_parse(&j->token, token, NULL), 0);
    j->cfg = (struct chan_config){
        .side = CHAN_INITIATOR,
        .identity = &j->key,
        .join_token = &j->token,
        .join_role = role,
        .wall_clock = test_wall_clock,
    };
}

static void join_issues_a_certificate(void **state)
{
    struct joiner j;
    make_joiner(&j, manager_token, CA_ROLE_MANAGER);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct chan *i = open_chan(&j.cfg), *r = open_chan(&cr);
    struct pump_result res = pump(i, r);
    assert_int_equal(res.rc_i, 0);
    assert_int_equal(res.rc_r, 0);
    expect_event(i, CHAN_EV_ESTABLISHED, NULL);
    assert_string_equal(chan_peer_cert(i)->node_id, mgr.id);
    expect_event(r, CHAN_EV_JOIN_REQUEST, NULL);
    assert_null(chan_peer_cert(r));

    uint8_t pk[CA_PUBKEY_LEN];
    int role;
    struct swm_err err = {0};
    assert_int_equal(chan_join_request(r, pk, &role), 0);
    assert_memory_equal(pk, j.key.pk, CA_PUBKEY_LEN);
    assert_int_equal(role, CA_ROLE_MANAGER);
    /* A join channel carries nothing but the certificate. */
    assert_int_equal(chan_send(r, "x", 1, &err), -EPERM);
    assert_int_equal(chan_send(i, "x", 1, &err), -EPERM);

    /* The library refuses a certificate for the wrong key or role. */
    struct ca_cert c;
    assert_int_equal(ca_cert_issue(&c, &root, "joined0000000000000000001", TEST_CLUSTER_ID,
                                   CA_ROLE_WORKER, pk, test_wall_now, CA_CERT_EXPIRY_DEFAULT, NULL),
                     0);
    assert_int_equal(chan_send_cert(r, &c, &err), -EINVAL);
    assert_int_equal(ca_cert_issue(&c, &root, "joined0000000000000000001", TEST_CLUSTER_ID, role,
                                   pk, test_wall_now, CA_CERT_EXPIRY_DEFAULT, NULL),
                     0);
    assert_int_equal(chan_send_cert(r, &c, &err), 0);
    assert_int_equal(move(r, i, &err), 0);
    expect_event(i, CHAN_EV_CERT, NULL);
    const struct ca_cert *got = chan_issued_cert(i);
    assert_non_null(got);
    assert_string_equal(got->node_id, "joined0000000000000000001");
    assert_memory_equal(got->issuer_pk, root.pk, CA_PUBKEY_LEN);
    chan_free(i);
    chan_free(r);

    /* The new node now connects with its certificate. */
    struct test_node joined = {.key = j.key, .cert = c};
    snprintf(joined.id, sizeof(joined.id), "%s", c.node_id);
    struct chan *i2, *r2;
    connect_pair(&i2, &r2, &joined, &mgr);
    assert_string_equal(chan_peer_cert(r2)->node_id, joined.id);
    assert_int_equal(chan_peer_cert(r2)->role, CA_ROLE_MANAGER);
    chan_free(i2);
    chan_free(r2);
}

static void join_with_wrong_secret_fails(void **state)
{
    char bad[CA_TOKEN_LEN + 1];
    snprintf(bad, sizeof(bad), "%s", worker_token);
    bad[CA_TOKEN_LEN - 1] = bad[CA_TOKEN_LEN - 1] == '0' ? '1' : '0';
    struct joiner j;
    make_joiner(&j, bad, CA_ROLE_WORKER);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    expect_refused(&j.cfg, &cr, SWM_EBADTOKEN, "secret does not match");
}

static void join_with_worker_token_as_manager_fails(void **state)
{
    struct joiner j;
    make_joiner(&j, worker_token, CA_ROLE_MANAGER);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    expect_refused(&j.cfg, &cr, -EPERM, "the worker join token does not grant the manager role");
}

static void join_with_another_clusters_token_fails(void **state)
{
    char other[CA_TOKEN_LEN + 1];
    assert_int_equal(ca_token_generate(other_root.pk, other), 0);
    struct joiner j;
    make_joiner(&j, other, CA_ROLE_WORKER);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    expect_initiator_refuses(&j.cfg, &cr, SWM_EWRONGCLUSTER, "token of another cluster");
}

static void join_needs_a_manager_that_accepts_joins(void **state)
{
    struct joiner j;
    make_joiner(&j, worker_token, CA_ROLE_WORKER);
    /* A worker cannot pose as the manager even with the cluster's root. */
    struct chan_config cr = base_config(CHAN_RESPONDER, &wkr);
    expect_initiator_refuses(&j.cfg, &cr, -EPERM, "is a worker");

    cr = base_config(CHAN_RESPONDER, &mgr);
    cr.join_secrets = NULL;
    expect_refused(&j.cfg, &cr, -EPERM, "does not accept joins");
}

static void join_rejects_a_forged_certificate(void **state)
{
    struct joiner j;
    make_joiner(&j, worker_token, CA_ROLE_WORKER);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct chan *i = open_chan(&j.cfg), *r = open_chan(&cr);
    struct swm_err err = {0};
    pump(i, r);
    expect_event(r, CHAN_EV_JOIN_REQUEST, NULL);
    /* A manager bug (or a compromised one with another root): the joiner
     * checks what it got against the pinned root. */
    struct ca_cert c;
    assert_int_equal(ca_cert_issue(&c, &other_root, "joined0000000000000000001", TEST_CLUSTER_ID,
                                   CA_ROLE_WORKER, j.key.pk, test_wall_now, 3600 * SEC, NULL),
                     0);
    assert_int_equal(chan_send_cert(r, &c, &err), 0);
    assert_int_equal(move(r, i, &err), SWM_EWRONGCLUSTER);
    assert_msg(&err, SWM_EWRONGCLUSTER, "issued certificate");
    assert_null(chan_issued_cert(i));
    chan_free(i);
    chan_free(r);
}

static void join_proof_is_bound_to_the_handshake(void **state)
{
    /* The JOIN message of one handshake fails in another (replay). */
    struct joiner j;
    make_joiner(&j, worker_token, CA_ROLE_WORKER);
    struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
    struct chan *i = open_chan(&j.cfg), *r = open_chan(&cr);
    struct swm_err err = {0};
    uint8_t hello[256], join[512], buf[1024];
    size_t nh = take_output(i, hello, sizeof(hello));
    assert_int_equal(chan_feed(r, hello, nh, 0, &err), 0);
    size_t n = take_output(r, buf, sizeof(buf));
    assert_int_equal(chan_feed(i, buf, n, 0, &err), 0);
    size_t nj = take_output(i, join, sizeof(join));
    chan_free(r);
    r = open_chan(&cr);
    assert_int_equal(chan_feed(r, hello, nh, 0, &err), 0);
    assert_int_equal(chan_feed(r, join, nj, 0, &err), SWM_EAUTH);
    assert_msg(&err, SWM_EAUTH, "initiator's handshake signature does not verify");
    chan_free(i);
    chan_free(r);
}

/* -------------------------------------------------------------- OOM -- */

static void allocation_failures_are_clean(void **state)
{
    /* Fail the n-th allocation for growing n until a whole exchange gets
     * through: every failure is reported, nothing crashes or leaks (ASan). */
    bool completed = false;
    for (long n = 0; n < 200 && !completed; n++) {
        struct chan_config ci = base_config(CHAN_INITIATOR, &wkr);
        struct chan_config cr = base_config(CHAN_RESPONDER, &mgr);
        struct chan *i = NULL, *r = NULL;
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        if (chan_new(&i, &ci, &err) < 0 || chan_new(&r, &cr, &err) < 0 ||
            chan_start(i, 0, &err) < 0 || chan_start(r, 0, &err) < 0)
            goto next;
        int rc = 0;
        for (int step = 0; step < 4 && rc == 0; step++) {
            struct chan *from = step % 2 ? r : i, *to = step % 2 ? i : r;
            const uint8_t *o;
            size_t len = chan_output(from, &o);
            uint8_t buf[1024];
            memcpy(buf, o, len);
            chan_output_consume(from, len);
            rc = chan_feed(to, buf, len, 0, &err);
        }
        if (rc < 0) {
            assert_int_equal(rc, -ENOMEM);
            goto next;
        }
        if (chan_send(i, "x", 1, &err) < 0)
            goto next;
        struct chan_event ev;
        const uint8_t *o;
        size_t len = chan_output(i, &o);
        uint8_t buf[64];
        memcpy(buf, o, len);
        chan_output_consume(i, len);
        if (chan_feed(r, buf, len, 0, &err) < 0)
            goto next;
        completed =
            chan_next_event(r, &ev) == 1 && chan_next_event(r, &ev) == 1 && ev.type == CHAN_EV_DATA;
next:
        swm_alloc_fail_reset();
        chan_free(i);
        chan_free(r);
    }
    assert_true(completed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(handshake_establishes_and_carries_data, reset),
        cmocka_unit_test_setup(handshake_survives_byte_at_a_time_delivery, reset),
        cmocka_unit_test_setup(large_messages_and_rekeys_pass, reset),
        cmocka_unit_test_setup(revoked_nodes_are_refused, reset),
        cmocka_unit_test_setup(removal_closes_an_open_channel, reset),
        cmocka_unit_test_setup(expired_certificates_are_refused, reset),
        cmocka_unit_test_setup(roles_are_enforced, reset),
        cmocka_unit_test_setup(every_rpc_can_check_the_callers_role, reset),
        cmocka_unit_test_setup(another_clusters_nodes_are_refused, reset),
        cmocka_unit_test_setup(the_expected_node_is_checked, reset),
        cmocka_unit_test_setup(unknown_versions_are_refused, reset),
        cmocka_unit_test_setup(replayed_handshake_fails, reset),
        cmocka_unit_test_setup(mitm_substituting_ephemeral_keys_fails, reset),
        cmocka_unit_test_setup(mitm_substituting_certificates_fails, reset),
        cmocka_unit_test_setup(tampering_anywhere_in_the_handshake_fails, reset),
        cmocka_unit_test_setup(bit_flips_in_frames_are_detected, reset),
        cmocka_unit_test_setup(reordered_frames_are_detected, reset),
        cmocka_unit_test_setup(oversized_frames_are_refused_before_buffering, reset),
        cmocka_unit_test_setup(truncated_frames_are_refused, reset),
        cmocka_unit_test_setup(random_garbage_never_establishes, reset),
        cmocka_unit_test_setup(keepalives_and_timeouts, reset),
        cmocka_unit_test_setup(join_issues_a_certificate, reset),
        cmocka_unit_test_setup(join_with_wrong_secret_fails, reset),
        cmocka_unit_test_setup(join_with_worker_token_as_manager_fails, reset),
        cmocka_unit_test_setup(join_with_another_clusters_token_fails, reset),
        cmocka_unit_test_setup(join_needs_a_manager_that_accepts_joins, reset),
        cmocka_unit_test_setup(join_rejects_a_forged_certificate, reset),
        cmocka_unit_test_setup(join_proof_is_bound_to_the_handshake, reset),
        cmocka_unit_test_setup(allocation_failures_are_clean, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
