/* manager/raft/codec.c: round trips, and refusal of truncated, garbage,
 * out-of-range and oversized input (never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "manager/raft/raft.h"
#include "proto/codec.h"
#include "proto/raft.pb-c.h"

static struct raft_message *roundtrip(const struct raft_message *m)
{
    struct swm_buf b = {0};
    assert_int_equal(raft_message_encode(m, &b), 0);
    struct raft_message *out;
    struct swm_err err = {0};
    if (raft_message_decode(b.data, b.len, 0, &out, &err) != 0)
        fail_msg("decode: %s", err.msg);
    swm_buf_free(&b);
    assert_int_equal(out->type, m->type);
    assert_int_equal(out->from, m->from);
    assert_int_equal(out->to, m->to);
    assert_int_equal(out->term, m->term);
    assert_int_equal(out->log_term, m->log_term);
    assert_int_equal(out->index, m->index);
    assert_int_equal(out->commit, m->commit);
    assert_int_equal(out->reject, m->reject);
    assert_int_equal(out->reject_hint, m->reject_hint);
    assert_int_equal(out->context, m->context);
    assert_int_equal(out->snap_offset, m->snap_offset);
    assert_int_equal(out->done, m->done);
    assert_int_equal(out->len, m->len);
    if (m->len)
        assert_memory_equal(out->data, m->data, m->len);
    assert_int_equal(out->snapshot.index, m->snapshot.index);
    assert_int_equal(out->snapshot.term, m->snapshot.term);
    assert_int_equal(out->snapshot.conf.n_servers, m->snapshot.conf.n_servers);
    for (size_t i = 0; i < m->snapshot.conf.n_servers; i++) {
        assert_int_equal(out->snapshot.conf.servers[i].id, m->snapshot.conf.servers[i].id);
        assert_int_equal(out->snapshot.conf.servers[i].role, m->snapshot.conf.servers[i].role);
    }
    assert_int_equal(out->snapshot.conf.n_removed, m->snapshot.conf.n_removed);
    assert_int_equal(out->n_entries, m->n_entries);
    for (size_t i = 0; i < m->n_entries; i++) {
        assert_int_equal(out->entries[i].index, m->entries[i].index);
        assert_int_equal(out->entries[i].term, m->entries[i].term);
        assert_int_equal(out->entries[i].type, m->entries[i].type);
        assert_int_equal(out->entries[i].len, m->entries[i].len);
        if (m->entries[i].len)
            assert_memory_equal(out->entries[i].data, m->entries[i].data, m->entries[i].len);
    }
    return out;
}

static struct raft_entry entries[] = {
    {.index = 11, .term = 3, .type = RAFT_ENTRY_NORMAL, .data = "hello", .len = 5},
    {.index = 12, .term = 4, .type = RAFT_ENTRY_NORMAL},
    {.index = 13, .term = 4, .type = RAFT_ENTRY_CONF, .data = "\x0a\x04\x08\x01\x10\x01", .len = 6},
};
static struct raft_server servers[] = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {5, RAFT_LEARNER}};
static uint64_t removed[] = {3, 4};

static struct raft_message append_msg(void)
{
    return (struct raft_message){.type = RAFT_MSG_APPEND,
                                 .from = 1,
                                 .to = 2,
                                 .term = 4,
                                 .index = 10,
                                 .log_term = 3,
                                 .commit = 9,
                                 .entries = entries,
                                 .n_entries = 3};
}

static struct raft_message snapshot_msg(void)
{
    return (struct raft_message){.type = RAFT_MSG_SNAPSHOT,
                                 .from = 1,
                                 .to = 3,
                                 .term = 4,
                                 .snapshot = {.index = 100,
                                              .term = 4,
                                              .conf = {.servers = servers,
                                                       .n_servers = 3,
                                                       .removed = removed,
                                                       .n_removed = 2}},
                                 .snap_offset = 4096,
                                 .data = "chunk",
                                 .len = 5,
                                 .done = true};
}

static void test_roundtrip_all_types(void **state)
{
    struct raft_message ms[] = {
        {.type = RAFT_MSG_PREVOTE, .from = 1, .to = 2, .term = 5, .index = 7, .log_term = 4},
        {.type = RAFT_MSG_PREVOTE_RESP, .from = 2, .to = 1, .term = 5, .reject = true},
        {.type = RAFT_MSG_VOTE,
         .from = 1,
         .to = 2,
         .term = 5,
         .index = 7,
         .log_term = 4,
         .context = RAFT_CAMPAIGN_TRANSFER},
        {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 5},
        append_msg(),
        {.type = RAFT_MSG_APPEND_RESP,
         .from = 2,
         .to = 1,
         .term = 4,
         .index = 10,
         .reject = true,
         .reject_hint = 6,
         .log_term = 2},
        {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 4, .commit = 9, .context = 77},
        {.type = RAFT_MSG_HEARTBEAT_RESP, .from = 2, .to = 1, .term = 4, .context = 77},
        snapshot_msg(),
        {.type = RAFT_MSG_SNAPSHOT_RESP,
         .from = 3,
         .to = 1,
         .term = 4,
         .snapshot = {.index = 100, .term = 4},
         .snap_offset = 8192},
        {.type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2, .term = 4},
    };
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
        raft_message_free(roundtrip(&ms[i]));
}

static void test_configuration_roundtrip(void **state)
{
    struct raft_configuration c = {
        .servers = servers, .n_servers = 3, .removed = removed, .n_removed = 2};
    struct swm_buf b = {0};
    assert_int_equal(raft_configuration_encode(&c, &b), 0);
    struct raft_configuration out;
    assert_int_equal(raft_configuration_decode(b.data, b.len, &out, NULL), 0);
    assert_int_equal(out.n_servers, 3);
    assert_int_equal(out.servers[2].id, 5);
    assert_int_equal(out.servers[2].role, RAFT_LEARNER);
    assert_int_equal(out.n_removed, 2);
    assert_int_equal(out.removed[1], 4);
    raft_configuration_free(&out);
    swm_buf_free(&b);

    /* Invalid configurations are neither encoded nor decoded. */
    struct raft_server dup[] = {{1, RAFT_VOTER}, {1, RAFT_LEARNER}};
    struct raft_configuration bad = {.servers = dup, .n_servers = 2};
    assert_int_equal(raft_configuration_encode(&bad, &b), -EINVAL);
    struct raft_server member_removed[] = {{3, RAFT_VOTER}};
    bad = (struct raft_configuration){
        .servers = member_removed, .n_servers = 1, .removed = removed, .n_removed = 2};
    assert_int_equal(raft_configuration_encode(&bad, &b), -EINVAL);

    /* A role out of range, built by hand on the wire. */
    Swarmc__RaftServer s = SWARMC__RAFT_SERVER__INIT;
    s.has_id = s.has_role = true;
    s.id = 9;
    s.role = 7;
    Swarmc__RaftServer *sp = &s;
    Swarmc__RaftConfiguration pb = SWARMC__RAFT_CONFIGURATION__INIT;
    pb.n_servers = 1;
    pb.servers = &sp;
    assert_int_equal(proto_pack(&pb.base, &b), 0);
    struct swm_err err = {0};
    assert_int_equal(raft_configuration_decode(b.data, b.len, &out, &err), SWM_EPROTO);
    assert_non_null(strstr(err.msg, "role"));
    swm_buf_free(&b);
}

static int decode(const void *data, size_t len, size_t max, struct swm_err *err)
{
    struct raft_message *m = NULL;
    int rc = raft_message_decode(data, len, max, &m, err);
    if (rc == 0)
        raft_message_free(m);
    return rc;
}

static void test_truncated(void **state)
{
    struct raft_message m = snapshot_msg();
    struct swm_buf b = {0};
    assert_int_equal(raft_message_encode(&m, &b), 0);
    /* Every prefix: an error or a valid message, never a crash. The last
     * field (done) cut in half is an error. */
    for (size_t n = 0; n < b.len; n++)
        decode(b.data, n, 0, NULL);
    struct swm_err err = {0};
    assert_int_equal(decode(b.data, b.len - 1, 0, &err), SWM_EPROTO);
    assert_int_equal(decode(b.data, 0, 0, &err), SWM_EPROTO); /* no type */
    swm_buf_free(&b);
}

static void test_garbage(void **state)
{
    uint64_t x = 12345;
    unsigned char buf[512];
    int ok = 0;
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(x % sizeof(buf));
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (unsigned char)x;
        }
        ok += decode(buf, len, 0, NULL) == 0;
    }
    /* Random bytes essentially never form a valid message. */
    assert_true(ok < 20);

    /* Mutations of a valid message: flip each byte in turn. */
    struct raft_message m = append_msg();
    struct swm_buf b = {0};
    assert_int_equal(raft_message_encode(&m, &b), 0);
    for (size_t i = 0; i < b.len; i++)
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (uint8_t)(1u << bit);
            decode(b.data, b.len, 0, NULL);
            b.data[i] ^= (uint8_t)(1u << bit);
        }
    swm_buf_free(&b);
}

/* Packs a hand-built protobuf message and expects decoding to refuse it
 * with a message containing `what`. */
static void expect_refused(Swarmc__RaftMessage *pb, const char *what)
{
    struct swm_buf b = {0};
    assert_int_equal(proto_pack(&pb->base, &b), 0);
    struct swm_err err = {0};
    assert_int_equal(decode(b.data, b.len, 0, &err), SWM_EPROTO);
    if (strstr(err.msg, what) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, what);
    swm_buf_free(&b);
}

static void test_bad_fields(void **state)
{
    Swarmc__RaftMessage pb = SWARMC__RAFT_MESSAGE__INIT;
    pb.has_type = pb.has_from = pb.has_to = pb.has_term = true;
    pb.type = 99;
    pb.from = 1;
    pb.to = 2;
    pb.term = 3;
    expect_refused(&pb, "unknown type");
    pb.type = SWARMC__RAFT_MESSAGE__TYPE__RAFT_MSG_HEARTBEAT;
    pb.to = 1;
    expect_refused(&pb, "from 1 to 1");
    pb.to = 2;
    pb.term = 0;
    expect_refused(&pb, "without a term");
    pb.term = 3;
    pb.has_reject = true;
    pb.reject = true;
    expect_refused(&pb, "cannot reject");
    pb.has_reject = false;
    pb.reject = false;

    /* Entries: only on appends, contiguous, valid type, ordered terms. */
    Swarmc__RaftEntry e1 = SWARMC__RAFT_ENTRY__INIT, e2 = SWARMC__RAFT_ENTRY__INIT;
    e1.has_term = e1.has_index = e1.has_type = true;
    e2.has_term = e2.has_index = e2.has_type = true;
    e1.term = e2.term = 3;
    e1.index = 5;
    e2.index = 6;
    e1.type = e2.type = SWARMC__RAFT_ENTRY__TYPE__RAFT_ENTRY_NORMAL;
    Swarmc__RaftEntry *es[] = {&e1, &e2};
    pb.n_entries = 2;
    pb.entries = es;
    expect_refused(&pb, "carries entries");
    pb.type = SWARMC__RAFT_MESSAGE__TYPE__RAFT_MSG_APPEND;
    pb.has_index = true;
    pb.index = 4;
    e2.index = 7;
    expect_refused(&pb, "want 6");
    e2.index = 6;
    e2.type = 9;
    expect_refused(&pb, "bad type");
    e2.type = SWARMC__RAFT_ENTRY__TYPE__RAFT_ENTRY_NORMAL;
    e2.term = 2;
    expect_refused(&pb, "out of order");
    e2.term = 4;
    expect_refused(&pb, "out of order"); /* above the message's term */
    e2.term = 3;
    e2.has_type = false;
    expect_refused(&pb, "lacks");
    e2.has_type = true;
    /* Now valid. */
    struct swm_buf b = {0};
    assert_int_equal(proto_pack(&pb.base, &b), 0);
    assert_int_equal(decode(b.data, b.len, 0, NULL), 0);
    /* Oversize: refused before parsing. */
    struct swm_err err = {0};
    assert_int_equal(decode(b.data, b.len, b.len - 1, &err), SWM_EPROTO);
    assert_non_null(strstr(err.msg, "exceeds"));
    swm_buf_free(&b);

    /* Snapshot fields only on snapshot messages; a done chunk needs its
     * configuration. */
    pb.n_entries = 0;
    pb.entries = NULL;
    Swarmc__RaftSnapshotMeta meta = SWARMC__RAFT_SNAPSHOT_META__INIT;
    meta.has_index = meta.has_term = true;
    meta.index = 50;
    meta.term = 3;
    pb.snapshot = &meta;
    expect_refused(&pb, "snapshot fields");
    pb.type = SWARMC__RAFT_MESSAGE__TYPE__RAFT_MSG_SNAPSHOT;
    pb.has_done = true;
    pb.done = true;
    expect_refused(&pb, "without a configuration");
    meta.term = 0;
    expect_refused(&pb, "valid snapshot");

    /* Encoding refuses what decoding would. */
    struct raft_message bad = {.type = RAFT_MSG_HEARTBEAT,
                               .from = 1,
                               .to = 2,
                               .term = 1,
                               .entries = entries,
                               .n_entries = 1};
    assert_int_equal(raft_message_encode(&bad, &b), -EINVAL);
    bad = (struct raft_message){.type = 0, .from = 1, .to = 2, .term = 1};
    assert_int_equal(raft_message_encode(&bad, &b), -EINVAL);
    swm_buf_free(&b);
}

/* Every allocation failing in turn: -ENOMEM or success (never "malformed"
 * for a valid message), no leak (ASan). */
static void test_decode_oom(void **state)
{
    struct raft_message m = snapshot_msg();
    struct raft_message a = append_msg();
    struct swm_buf b1 = {0}, b2 = {0};
    assert_int_equal(raft_message_encode(&m, &b1), 0);
    assert_int_equal(raft_message_encode(&a, &b2), 0);
    for (long n = 0; n < 40; n++) {
        swm_alloc_fail_after(n);
        int rc1 = decode(b1.data, b1.len, 0, NULL);
        swm_alloc_fail_reset();
        swm_alloc_fail_after(n);
        int rc2 = decode(b2.data, b2.len, 0, NULL);
        swm_alloc_fail_reset();
        assert_true(rc1 == 0 || rc1 == -ENOMEM);
        assert_true(rc2 == 0 || rc2 == -ENOMEM);
    }
    swm_buf_free(&b1);
    swm_buf_free(&b2);

    struct raft_configuration c = {
        .servers = servers, .n_servers = 3, .removed = removed, .n_removed = 2};
    struct swm_buf b = {0};
    assert_int_equal(raft_configuration_encode(&c, &b), 0);
    for (long n = 0; n < 10; n++) {
        struct raft_configuration out = {0};
        struct swm_err err = {0};
        swm_alloc_fail_after(n);
        int rc = raft_configuration_decode(b.data, b.len, &out, &err);
        swm_alloc_fail_reset();
        assert_true(rc == 0 || (rc == -ENOMEM && err.code == -ENOMEM));
        raft_configuration_free(&out);
    }
    swm_buf_free(&b);
}

/* A configuration entry that does not decode never reaches the core (it
 * would stop the member as a damaged log). */
static void test_bad_conf_entry(void **state)
{
    static const char junk[] = "\xff\xff\xff not a configuration";
    struct raft_entry bad[] = {
        {.term = 4, .index = 11, .type = RAFT_ENTRY_CONF, .data = junk, .len = sizeof(junk) - 1}};
    struct raft_message m = append_msg();
    m.entries = bad;
    m.n_entries = 1;
    struct swm_buf b = {0};
    assert_int_equal(raft_message_encode(&m, &b), 0);
    struct swm_err err = {0};
    assert_int_equal(decode(b.data, b.len, 0, &err), SWM_EPROTO);
    assert_non_null(strstr(err.msg, "bad configuration"));
    swm_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_types), cmocka_unit_test(test_configuration_roundtrip),
        cmocka_unit_test(test_truncated),           cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bad_fields),          cmocka_unit_test(test_decode_oom),
        cmocka_unit_test(test_bad_conf_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
