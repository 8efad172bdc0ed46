#define _GNU_SOURCE
/* Tests of net/identity/files.c: a node's key material on disk, and the
 * one-line errors for every way a file can be wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "net/identity/files.h"

#define NODE "n000000000000000000000001"
#define NODE2 "n000000000000000000000002"
#define CLUSTER "c000000000000000000000000"
#define T0 (INT64_C(1700000000) * 1000000000)

struct fx {
    char dir[PATH_MAX];
    struct ca_keypair root, other_root;
    struct ca_node_files files;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char tmpl[] = "/tmp/swm-test-files.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    snprintf(f->dir, sizeof(f->dir), "%s/certificates", tmpl);
    uint8_t seed[32] = {1};
    ca_keypair_from_seed(&f->root, seed);
    seed[0] = 2;
    ca_keypair_from_seed(&f->other_root, seed);
    assert_int_equal(ca_keypair_generate(&f->files.key), 0);
    assert_int_equal(ca_cert_issue(&f->files.cert, &f->root, NODE, CLUSTER, CA_ROLE_MANAGER,
                                   f->files.key.pk, T0, CA_CERT_EXPIRY_DEFAULT, NULL),
                     0);
    memcpy(f->files.root_pk, f->root.pk, CA_PUBKEY_LEN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", f->dir);
    *strrchr(parent, '/') = '\0';
    swm_remove_tree(parent);
    free(f);
    return 0;
}

static void path_of(const struct fx *f, const char *name, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%s", f->dir, name);
}

/* Fails unless loading fails with code and a message that has needle. */
static void expect_load_error(struct fx *f, const char *node_id, int code, const char *needle)
{
    struct ca_node_files out;
    struct swm_err err = {0};
    memset(&out, 0xaa, sizeof(out));
    int rc = ca_node_files_load(f->dir, node_id, &out, &err);
    if (rc != code)
        fail_msg("load: got %d (%s), want %d", rc, err.msg, code);
    assert_int_equal(err.code, code);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", err.msg, needle);
    assert_null(strchr(err.msg, '\n'));
    /* Untouched on failure. */
    assert_int_equal(out.root_pk[0], 0xaa);
}

static void save_then_load_round_trips(void **state)
{
    struct fx *f = *state;
    struct swm_err err = {0};
    assert_int_equal(ca_node_files_save(f->dir, &f->files, &err), 0);

    char path[PATH_MAX];
    struct stat st;
    path_of(f, CA_FILE_NODE_KEY, path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, CA_SECKEY_LEN);
    path_of(f, CA_FILE_NODE_CERT, path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, CA_CERT_LEN);
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    struct ca_node_files out;
    assert_int_equal(ca_node_files_load(f->dir, NODE, &out, &err), 0);
    assert_memory_equal(out.key.sk, f->files.key.sk, CA_SECKEY_LEN);
    assert_memory_equal(out.key.pk, f->files.key.pk, CA_PUBKEY_LEN);
    assert_memory_equal(out.root_pk, f->root.pk, CA_PUBKEY_LEN);
    assert_string_equal(out.cert.node_id, NODE);
    assert_int_equal(out.cert.role, CA_ROLE_MANAGER);
    assert_int_equal(out.cert.serial, f->files.cert.serial);
    /* Any node id is fine when the caller names none. */
    assert_int_equal(ca_node_files_load(f->dir, NULL, &out, &err), 0);
    ca_node_files_wipe(&out);
    assert_true(out.key.sk[0] == 0 && out.key.sk[CA_SECKEY_LEN - 1] == 0);
}

static void missing_files_are_named(void **state)
{
    struct fx *f = *state;
    expect_load_error(f, NODE, -ENOENT, "root-ca.pub is missing");
    assert_int_equal(ca_node_files_save(f->dir, &f->files, NULL), 0);
    char path[PATH_MAX];
    path_of(f, CA_FILE_NODE_KEY, path);
    unlink(path);
    expect_load_error(f, NODE, -ENOENT, "node.key is missing");
    assert_int_equal(ca_node_files_save(f->dir, &f->files, NULL), 0);
    path_of(f, CA_FILE_NODE_CERT, path);
    unlink(path);
    expect_load_error(f, NODE, -ENOENT, "node.crt is missing");
}

static void wrong_sizes_are_refused(void **state)
{
    struct fx *f = *state;
    char path[PATH_MAX];
    uint8_t junk[300] = {0};
    assert_int_equal(ca_node_files_save(f->dir, &f->files, NULL), 0);
    path_of(f, CA_FILE_NODE_CERT, path);
    assert_int_equal(swm_write_file_atomic(path, junk, 10, 0644), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "node.crt is 10 bytes, want 208");

    assert_int_equal(ca_node_files_save(f->dir, &f->files, NULL), 0);
    path_of(f, CA_FILE_NODE_KEY, path);
    assert_int_equal(swm_write_file_atomic(path, junk, 65, 0600), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "node.key is 65 bytes, want 64");

    assert_int_equal(ca_node_files_save(f->dir, &f->files, NULL), 0);
    path_of(f, CA_FILE_ROOT_PUB, path);
    assert_int_equal(swm_write_file_atomic(path, junk, 0, 0644), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "root-ca.pub is 0 bytes, want 32");

    /* A certificate of the right length that is not one. */
    assert_int_equal(ca_node_files_save(f->dir, &f->files, NULL), 0);
    path_of(f, CA_FILE_NODE_CERT, path);
    assert_int_equal(swm_write_file_atomic(path, junk, CA_CERT_LEN, 0644), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "node.crt: not a swarmc certificate");
}

static void readable_key_is_refused(void **state)
{
    struct fx *f = *state;
    char path[PATH_MAX];
    assert_int_equal(ca_node_files_save(f->dir, &f->files, NULL), 0);
    path_of(f, CA_FILE_NODE_KEY, path);
    assert_int_equal(chmod(path, 0644), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "permissions 0644 are too open");
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(ca_node_files_load(f->dir, NODE, &(struct ca_node_files){0}, NULL), 0);
}

static void damaged_key_is_refused(void **state)
{
    struct fx *f = *state;
    struct ca_node_files bad = f->files;
    bad.key.sk[40] ^= 1; /* in the public half */
    assert_int_equal(ca_node_files_save(f->dir, &bad, NULL), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "node.key is damaged");
}

static void cert_must_match_key_node_and_root(void **state)
{
    struct fx *f = *state;
    struct ca_node_files bad = f->files;
    /* Another node's key. */
    assert_int_equal(ca_keypair_generate(&bad.key), 0);
    assert_int_equal(ca_node_files_save(f->dir, &bad, NULL), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "was issued for another key");

    /* Another node's certificate. */
    bad = f->files;
    assert_int_equal(ca_cert_issue(&bad.cert, &f->root, NODE2, CLUSTER, CA_ROLE_WORKER, bad.key.pk,
                                   T0, CA_CERT_EXPIRY_DEFAULT, NULL),
                     0);
    assert_int_equal(ca_node_files_save(f->dir, &bad, NULL), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "was issued to node " NODE2);

    /* Another cluster's root. */
    bad = f->files;
    memcpy(bad.root_pk, f->other_root.pk, CA_PUBKEY_LEN);
    assert_int_equal(ca_node_files_save(f->dir, &bad, NULL), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "does not chain to root-ca.pub");

    /* A forged signature. */
    bad = f->files;
    bad.cert.sig[0] ^= 1;
    assert_int_equal(ca_node_files_save(f->dir, &bad, NULL), 0);
    expect_load_error(f, NODE, SWM_ECORRUPT, "does not chain to root-ca.pub");
}

static void save_reports_unwritable_dir(void **state)
{
    struct fx *f = *state;
    struct swm_err err = {0};
    /* A file where the directory should be. */
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", f->dir);
    assert_int_equal(swm_write_file_atomic(parent, "x", 1, 0600), 0);
    assert_true(ca_node_files_save(f->dir, &f->files, &err) < 0);
    assert_non_null(strstr(err.msg, f->dir));
    unlink(parent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(save_then_load_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_files_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_sizes_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(readable_key_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_key_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(cert_must_match_key_node_and_root, setup, teardown),
        cmocka_unit_test_setup_teardown(save_reports_unwritable_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
