/* Join tokens and the proof of a token's secret (DESIGN.md §6). */
#include "net/identity/identity.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#define TOKEN_PREFIX "SWMTKN-"
#define TOKEN_SECRET_BYTES 16

static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* Writes the big-endian number in `in` as exactly `width` base-36 digits,
 * zero-padded (width is chosen so the largest value fits). Destroys `in`. */
static void base36(uint8_t *in, size_t n, char *out, size_t width)
{
    for (size_t i = width; i-- > 0;) {
        unsigned rem = 0;
        for (size_t j = 0; j < n; j++) {
            unsigned cur = (rem << 8) | in[j];
            in[j] = (uint8_t)(cur / 36);
            rem = cur % 36;
        }
        out[i] = alphabet[rem];
    }
    out[width] = '\0';
}

void ca_root_digest(const uint8_t root_pk[CA_PUBKEY_LEN], char out[CA_TOKEN_DIGEST_CHARS + 1])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof(h), root_pk, CA_PUBKEY_LEN, NULL, 0);
    base36(h, sizeof(h), out, CA_TOKEN_DIGEST_CHARS);
}

void ca_token_format(const struct ca_token *tok, char out[CA_TOKEN_LEN + 1])
{
    memcpy(out, TOKEN_PREFIX "1-", 9);
    memcpy(out + 9, tok->digest, CA_TOKEN_DIGEST_CHARS);
    out[9 + CA_TOKEN_DIGEST_CHARS] = '-';
    memcpy(out + 10 + CA_TOKEN_DIGEST_CHARS, tok->secret, CA_TOKEN_SECRET_CHARS + 1);
}

int ca_token_generate(const uint8_t root_pk[CA_PUBKEY_LEN], char out[CA_TOKEN_LEN + 1])
{
    if (sodium_init() < 0)
        return -EIO;
    struct ca_token tok;
    uint8_t raw[TOKEN_SECRET_BYTES];
    randombytes_buf(raw, sizeof(raw));
    ca_root_digest(root_pk, tok.digest);
    /* 36^25 > 2^128, so 25 digits hold 128 bits. */
    base36(raw, sizeof(raw), tok.secret, CA_TOKEN_SECRET_CHARS);
    ca_token_format(&tok, out);
    sodium_memzero(raw, sizeof(raw));
    ca_token_wipe(&tok);
    return 0;
}

/* Length of the run of base-36 digits at s. */
static size_t digits(const char *s)
{
    size_t n = 0;
    while ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'z'))
        n++;
    return n;
}

int ca_token_parse(struct ca_token *out, const char *token, struct swm_err *err)
{
    if (token == NULL || strncmp(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0)
        return swm_err_set(err, SWM_EBADTOKEN, "invalid join token: must start with SWMTKN-1-");
    const char *p = token + strlen(TOKEN_PREFIX);
    size_t n = strspn(p, "0123456789");
    if (n == 0 || p[n] != '-')
        return swm_err_set(err, SWM_EBADTOKEN, "invalid join token: missing version after SWMTKN-");
    if (n != 1 || p[0] != '1')
        return swm_err_set(err, SWM_EBADTOKEN,
                           "invalid join token: version %.*s is not supported (want 1)",
                           (int)(n > 8 ? 8 : n), p);
    p += n + 1;
    n = digits(p);
    if (n != CA_TOKEN_DIGEST_CHARS || p[n] != '-')
        return swm_err_set(err, SWM_EBADTOKEN,
                           "invalid join token: root key digest must be %d base-36 characters "
                           "followed by '-'",
                           CA_TOKEN_DIGEST_CHARS);
    const char *digest = p;
    p += n + 1;
    n = digits(p);
    if (n != CA_TOKEN_SECRET_CHARS)
        return swm_err_set(err, SWM_EBADTOKEN,
                           "invalid join token: secret must be %d base-36 characters",
                           CA_TOKEN_SECRET_CHARS);
    if (p[n] != '\0')
        return swm_err_set(err, SWM_EBADTOKEN,
                           "invalid join token: unexpected text after the secret");
    memcpy(out->digest, digest, CA_TOKEN_DIGEST_CHARS);
    out->digest[CA_TOKEN_DIGEST_CHARS] = '\0';
    memcpy(out->secret, p, CA_TOKEN_SECRET_CHARS);
    out->secret[CA_TOKEN_SECRET_CHARS] = '\0';
    return 0;
}

int ca_token_check_root(const struct ca_token *tok, const uint8_t root_pk[CA_PUBKEY_LEN],
                        struct swm_err *err)
{
    char digest[CA_TOKEN_DIGEST_CHARS + 1];
    ca_root_digest(root_pk, digest);
    if (memcmp(digest, tok->digest, CA_TOKEN_DIGEST_CHARS) != 0)
        return swm_err_set(err, SWM_EWRONGCLUSTER,
                           "the manager's root key (digest %.12s...) is not the one the join "
                           "token names (%.12s...): token of another cluster?",
                           digest, tok->digest);
    return 0;
}

void ca_token_wipe(struct ca_token *tok)
{
    if (tok != NULL)
        sodium_memzero(tok, sizeof(*tok));
}

void ca_join_proof(const char *secret, int role, const uint8_t joiner_pk[CA_PUBKEY_LEN],
                   const uint8_t transcript[CA_TRANSCRIPT_LEN], uint8_t out[CA_JOIN_PROOF_LEN])
{
    static const char key_label[] = "swarmc-join-secret-v1";
    static const char proof_label[] = "swarmc-join-proof-v1";
    uint8_t key[32];
    /* The secret is only ever a BLAKE2b key: it never leaves the node, and
     * the derived key is bound to this one use. */
    crypto_generichash(key, sizeof(key), (const uint8_t *)key_label, sizeof(key_label),
                       (const uint8_t *)secret, strlen(secret));
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof(key), CA_JOIN_PROOF_LEN);
    crypto_generichash_update(&st, (const uint8_t *)proof_label, sizeof(proof_label));
    uint8_t r = (uint8_t)role;
    crypto_generichash_update(&st, &r, 1);
    crypto_generichash_update(&st, joiner_pk, CA_PUBKEY_LEN);
    crypto_generichash_update(&st, transcript, CA_TRANSCRIPT_LEN);
    crypto_generichash_final(&st, out, CA_JOIN_PROOF_LEN);
    sodium_memzero(key, sizeof(key));
    sodium_memzero(&st, sizeof(st));
}

/* True if `secret` is a usable secret and proves `role`. */
static bool proof_matches(const char *secret, int role, const uint8_t joiner_pk[CA_PUBKEY_LEN],
                          const uint8_t transcript[CA_TRANSCRIPT_LEN],
                          const uint8_t proof[CA_JOIN_PROOF_LEN])
{
    if (strnlen(secret, CA_TOKEN_SECRET_CHARS + 1) != CA_TOKEN_SECRET_CHARS)
        return false;
    uint8_t want[CA_JOIN_PROOF_LEN];
    ca_join_proof(secret, role, joiner_pk, transcript, want);
    bool ok = sodium_memcmp(want, proof, CA_JOIN_PROOF_LEN) == 0;
    sodium_memzero(want, sizeof(want));
    return ok;
}

int ca_join_verify(const struct ca_join_secrets *secrets, int role,
                   const uint8_t joiner_pk[CA_PUBKEY_LEN],
                   const uint8_t transcript[CA_TRANSCRIPT_LEN],
                   const uint8_t proof[CA_JOIN_PROOF_LEN], struct swm_err *err)
{
    if (role != CA_ROLE_WORKER && role != CA_ROLE_MANAGER)
        return swm_err_set(err, -EINVAL, "join request for invalid role %d", role);
    const char *mine = role == CA_ROLE_WORKER ? secrets->worker : secrets->manager;
    const char *other = role == CA_ROLE_WORKER ? secrets->manager : secrets->worker;
    int other_role = role == CA_ROLE_WORKER ? CA_ROLE_MANAGER : CA_ROLE_WORKER;
    if (proof_matches(mine, role, joiner_pk, transcript, proof))
        return 0;
    /* The joiner derives the proof for the role it asks for, so a proof made
     * with the other token still matches that token's secret under the
     * requested role: tell the user which token they used. */
    if (proof_matches(other, role, joiner_pk, transcript, proof))
        return swm_err_set(err, -EPERM, "the %s join token does not grant the %s role",
                           ca_role_name(other_role), ca_role_name(role));
    return swm_err_set(err, SWM_EBADTOKEN,
                       "invalid join token: the secret does not match this cluster's %s token",
                       ca_role_name(role));
}
