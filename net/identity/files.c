/* A node's key material on disk (files.h). */
#include "net/identity/files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"

static int path_of(char out[PATH_MAX], const char *dir, const char *name, struct swm_err *err)
{
    if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        return swm_err_set(err, -ENAMETOOLONG, "%s/%s: path too long", dir, name);
    return 0;
}

static int save_one(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
                    struct swm_err *err)
{
    char path[PATH_MAX];
    int rc = path_of(path, dir, name, err);
    if (rc == 0 && (rc = swm_write_file_atomic(path, data, len, mode)) < 0)
        swm_err_set(err, rc, "writing %s: %s", path, swm_strerror(rc));
    return rc;
}

int ca_node_files_save(const char *dir, const struct ca_node_files *f, struct swm_err *err)
{
    uint8_t cert[CA_CERT_LEN];
    int rc = swm_mkdir_p(dir, 0700);
    if (rc < 0)
        return swm_err_set(err, rc, "creating %s: %s", dir, swm_strerror(rc));
    ca_cert_encode(&f->cert, cert);
    rc = save_one(dir, CA_FILE_ROOT_PUB, f->root_pk, CA_PUBKEY_LEN, 0644, err);
    if (rc == 0)
        rc = save_one(dir, CA_FILE_NODE_KEY, f->key.sk, CA_SECKEY_LEN, 0600, err);
    /* Last: a node with a certificate has everything it needs. */
    if (rc == 0)
        rc = save_one(dir, CA_FILE_NODE_CERT, cert, CA_CERT_LEN, 0644, err);
    return rc;
}

/* Reads exactly `len` bytes from dir/name into out: a regular file of that
 * length, and, if `secret`, with no permission bits for group or others (as
 * ssh insists for private keys: a readable key may already have leaked). */
static int load_one(const char *dir, const char *name, void *out, size_t len, const char *what,
                    bool secret, struct swm_err *err)
{
    char path[PATH_MAX];
    int rc = path_of(path, dir, name, err);
    if (rc < 0)
        return rc;
    /* O_NONBLOCK: a FIFO in place of a key file must not hang the start. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOENT)
            return swm_err_set(err, rc, "%s is missing: the node's %s is gone", path, what);
        return swm_err_set(err, rc, "opening %s: %s", path, strerror(errno));
    }
    struct stat st;
    ssize_t n = 0;
    if (fstat(fd, &st) < 0)
        rc = swm_err_set(err, -errno, "reading %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = swm_err_set(err, SWM_ECORRUPT, "%s is not a regular file", path);
    else if (secret && (st.st_mode & 077) != 0)
        rc = swm_err_set(err, SWM_ECORRUPT,
                         "%s: permissions %04o are too open: the %s must not be readable by "
                         "others (chmod 600)",
                         path, (unsigned)(st.st_mode & 07777), what);
    else if (st.st_size != (off_t)len)
        rc = swm_err_set(err, SWM_ECORRUPT, "%s is %lld bytes, want %zu: not a swarmc %s", path,
                         (long long)st.st_size, len, what);
    while (rc == 0 && (n = read(fd, out, len)) < 0 && errno == EINTR)
        ;
    if (rc == 0 && n < 0)
        rc = swm_err_set(err, -errno, "reading %s: %s", path, strerror(errno));
    else if (rc == 0 && (size_t)n != len)
        rc = swm_err_set(err, SWM_ECORRUPT, "%s: short read (%zd of %zu bytes)", path, n, len);
    close(fd);
    return rc;
}

int ca_node_files_load(const char *dir, const char *node_id, struct ca_node_files *out,
                       struct swm_err *err)
{
    struct ca_node_files f;
    struct ca_keypair derived;
    struct swm_err cerr = {0};
    uint8_t cert[CA_CERT_LEN], seed[32];
    char path[PATH_MAX];
    bool key_ok;
    memset(&f, 0, sizeof(f));
    int rc = load_one(dir, CA_FILE_ROOT_PUB, f.root_pk, CA_PUBKEY_LEN, "cluster root public key",
                      false, err);
    if (rc == 0)
        rc = load_one(dir, CA_FILE_NODE_KEY, f.key.sk, CA_SECKEY_LEN, "identity key", true, err);
    if (rc == 0)
        rc = load_one(dir, CA_FILE_NODE_CERT, cert, CA_CERT_LEN, "certificate", false, err);
    if (rc < 0)
        goto out;
    /* An Ed25519 secret key carries its public half: both must agree. */
    crypto_sign_ed25519_sk_to_seed(seed, f.key.sk);
    ca_keypair_from_seed(&derived, seed);
    key_ok = sodium_memcmp(derived.sk, f.key.sk, CA_SECKEY_LEN) == 0;
    memcpy(f.key.pk, derived.pk, CA_PUBKEY_LEN);
    ca_keypair_wipe(&derived);
    if (!key_ok) {
        path_of(path, dir, CA_FILE_NODE_KEY, NULL);
        rc = swm_err_set(err, SWM_ECORRUPT,
                         "%s is damaged: its public half does not match its seed", path);
        goto out;
    }
    path_of(path, dir, CA_FILE_NODE_CERT, NULL);
    if ((rc = ca_cert_decode(&f.cert, cert, sizeof(cert), &cerr)) < 0) {
        rc = swm_err_set(err, SWM_ECORRUPT, "%s: %s", path, cerr.msg);
        goto out;
    }
    if (memcmp(f.cert.node_pk, f.key.pk, CA_PUBKEY_LEN) != 0) {
        rc = swm_err_set(err, SWM_ECORRUPT, "%s was issued for another key than %s", path,
                         CA_FILE_NODE_KEY);
        goto out;
    }
    if (node_id != NULL && strcmp(f.cert.node_id, node_id) != 0) {
        rc = swm_err_set(err, SWM_ECORRUPT, "%s was issued to node %s, not to this node (%s)", path,
                         f.cert.node_id, node_id);
        goto out;
    }
    /* The chain to the root, at a time inside the validity period: whether
     * that period covers now is the caller's question (renewal, expiry). */
    if ((rc = ca_cert_verify(&f.cert, f.root_pk, f.cert.not_before, NULL, CA_ROLES_ANY, &cerr)) <
        0) {
        rc = swm_err_set(err, SWM_ECORRUPT, "%s does not chain to %s: %s", path, CA_FILE_ROOT_PUB,
                         cerr.msg);
        goto out;
    }
    *out = f;
out:
    ca_node_files_wipe(&f);
    sodium_memzero(seed, sizeof(seed));
    return rc;
}

void ca_node_files_wipe(struct ca_node_files *f)
{
    if (f != NULL)
        sodium_memzero(f, sizeof(*f));
}
