/* The secure channel state machine (DESIGN.md §6). The wire format and the
 * reasons behind it are in docs/protocol.md "Secure channel"; the comments
 * here cite its steps. */
#include "net/transport/channel.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"

#define HS_MAGIC "SWCH"
#define HS_VERSION 1
#define HS_MAX_FRAME 1024 /* every handshake message is smaller */
#define NONCE_LEN 32
#define EPH_LEN crypto_kx_PUBLICKEYBYTES
#define HDR_LEN crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define REJECT_MSG_MAX 200

/* Handshake message types (first byte of a plaintext frame). */
enum {
    MSG_HELLO = 1,
    MSG_RESP = 2,
    MSG_AUTH = 3,
    MSG_JOIN = 4,
    MSG_ACCEPT = 5,
    MSG_REJECT = 6,
};

/* Message lengths, type byte included. */
#define HELLO_LEN (1 + 4 + 1 + 1 + NONCE_LEN + EPH_LEN)
#define RESP_UNSIGNED (1 + NONCE_LEN + EPH_LEN + CA_CERT_LEN)
#define RESP_LEN (RESP_UNSIGNED + CA_SIG_LEN)
#define AUTH_UNSIGNED (1 + CA_CERT_LEN)
#define AUTH_LEN (AUTH_UNSIGNED + CA_SIG_LEN + HDR_LEN + ABYTES)
#define JOIN_UNSIGNED (1 + 1 + CA_PUBKEY_LEN + CA_JOIN_PROOF_LEN)
#define JOIN_LEN (JOIN_UNSIGNED + CA_SIG_LEN + HDR_LEN + ABYTES)
#define ACCEPT_LEN (1 + HDR_LEN + ABYTES)

/* Kinds of sealed frames (first plaintext byte). */
enum {
    KIND_DATA = 1,
    KIND_KEEPALIVE = 2,
    KIND_CERT = 3,
};

enum mode {
    MODE_AUTH = 0,
    MODE_JOIN = 1,
};

enum state {
    ST_NEW,
    ST_WAIT_HELLO,  /* responder */
    ST_WAIT_RESP,   /* initiator */
    ST_WAIT_AUTH,   /* responder */
    ST_WAIT_ACCEPT, /* initiator */
    ST_OPEN,
    ST_JOIN_ISSUE, /* responder: waiting for chan_send_cert */
    ST_JOIN_CERT,  /* initiator: waiting for the CERT frame */
    ST_DONE,       /* join finished */
    ST_FAILED,
};

static const char label[] = "swarmc-channel-v1";
static const char label_resp_sig[] = "swarmc-channel-v1 responder signature";
static const char label_init_sig[] = "swarmc-channel-v1 initiator signature";
static const char label_i2r[] = "swarmc-channel-v1 initiator to responder";
static const char label_r2i[] = "swarmc-channel-v1 responder to initiator";

struct event_item {
    enum chan_event_type type;
    uint8_t *buf; /* owned; data points into it */
    const uint8_t *data;
    size_t len;
};

struct chan {
    enum chan_side side;
    enum state state;
    enum mode mode;
    struct swm_err err; /* the failure, once failed */

    struct ca_keypair identity;
    struct ca_cert cert;
    bool has_cert;
    uint8_t root_pk[CA_PUBKEY_LEN];
    bool has_root;
    struct ca_token token;
    int join_role;
    struct ca_join_secrets secrets;
    bool has_secrets;
    unsigned peer_roles;
    char peer_node_id[SWM_ID_LEN + 1]; /* empty: any */
    const struct ca_revoked *revoked;
    int64_t (*wall_clock)(void *arg);
    void *clock_arg;
    uint32_t max_frame;
    int64_t handshake_timeout, keepalive_interval, idle_timeout;
    uint32_t rekey_interval;

    /* Handshake. */
    uint8_t eph_pk[EPH_LEN], eph_sk[crypto_kx_SECRETKEYBYTES];
    uint8_t nonce[NONCE_LEN];
    uint8_t peer_eph[EPH_LEN];
    struct swm_buf transcript; /* length-prefixed messages so far */
    uint8_t th2[CA_TRANSCRIPT_LEN];
    uint8_t pending_rx_key[32]; /* initiator: until ACCEPT brings the header */
    struct ca_cert peer_cert;
    bool has_peer_cert;
    uint8_t joiner_pk[CA_PUBKEY_LEN];
    struct ca_cert issued;
    bool has_issued;

    /* Streams. */
    crypto_secretstream_xchacha20poly1305_state tx, rx;
    uint64_t tx_count, rx_count;

    struct swm_buf in, out;
    size_t in_off, out_off;

    struct event_item *events;
    size_t ev_head, ev_len, ev_cap;
    uint8_t *ev_current; /* data of the last event handed out */

    int64_t start, now, last_rx, last_tx;
};

/* ------------------------------------------------------------ errors -- */

static void queue_reject(struct chan *ch);

/* Kills the channel with ch->err as it is (set by a ca_* call). A responder
 * still in the handshake tells the initiator why, so that a user running
 * `swarmc join` sees "wrong token" rather than a reset connection. */
static int fail_keep(struct chan *ch, int code)
{
    if (ch->err.code != code || ch->err.msg[0] == '\0')
        swm_err_code(&ch->err, code);
    if (ch->side == CHAN_RESPONDER && (ch->state == ST_WAIT_HELLO || ch->state == ST_WAIT_AUTH))
        queue_reject(ch);
    ch->state = ST_FAILED;
    return code;
}

__attribute__((format(printf, 3, 4))) static int fail(struct chan *ch, int code, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ch->err.msg, sizeof(ch->err.msg), fmt, ap);
    va_end(ap);
    ch->err.code = code;
    return fail_keep(ch, code);
}

/* Copies the channel's error out to the caller's. */
static int report(const struct chan *ch, int rc, struct swm_err *err)
{
    if (rc < 0 && err != NULL)
        *err = ch->err;
    return rc;
}

/* ------------------------------------------------------------ output -- */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reserves a frame of `len` bytes in the output and returns where its body
 * goes, or NULL on ENOMEM. */
static uint8_t *frame_begin(struct chan *ch, size_t len)
{
    if (ch->out_off == ch->out.len)
        ch->out_off = ch->out.len = 0;
    if (swm_buf_reserve(&ch->out, 4 + len) < 0)
        return NULL;
    uint8_t *p = ch->out.data + ch->out.len;
    put_u32(p, (uint32_t)len);
    ch->out.len += 4 + len;
    ch->last_tx = ch->now;
    return p + 4;
}

static int queue_plain(struct chan *ch, const uint8_t *msg, size_t len)
{
    uint8_t *p = frame_begin(ch, len);
    if (p == NULL)
        return fail(ch, -ENOMEM, "out of memory queueing a handshake message");
    memcpy(p, msg, len);
    return 0;
}

static void queue_reject(struct chan *ch)
{
    uint8_t msg[5 + REJECT_MSG_MAX];
    size_t n = strnlen(ch->err.msg, REJECT_MSG_MAX);
    msg[0] = MSG_REJECT;
    put_u32(msg + 1, (uint32_t)ch->err.code);
    memcpy(msg + 5, ch->err.msg, n);
    /* Best effort: on ENOMEM the peer just sees the connection close. */
    uint8_t *p = frame_begin(ch, 5 + n);
    if (p != NULL)
        memcpy(p, msg, 5 + n);
}

/* Seals kind+payload as the next message of the send stream. */
static int queue_sealed(struct chan *ch, uint8_t kind, const void *data, size_t len)
{
    uint8_t *plain = swm_malloc(1 + len);
    if (plain == NULL)
        return -ENOMEM;
    plain[0] = kind;
    if (len > 0)
        memcpy(plain + 1, data, len);
    uint8_t *p = frame_begin(ch, ABYTES + 1 + len);
    if (p == NULL) {
        sodium_memzero(plain, 1 + len);
        swm_free(plain);
        return -ENOMEM;
    }
    /* A rekey every rekey_interval frames bounds what one key protects; the
     * receiver follows the tag (docs/protocol.md "Frames"). */
    uint8_t tag = (ch->tx_count + 1) % ch->rekey_interval == 0
                      ? crypto_secretstream_xchacha20poly1305_TAG_REKEY
                      : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    crypto_secretstream_xchacha20poly1305_push(&ch->tx, p, NULL, plain, 1 + len, NULL, 0, tag);
    ch->tx_count++;
    sodium_memzero(plain, 1 + len);
    swm_free(plain);
    return 0;
}

/* ------------------------------------------------------------ events -- */

static int push_event(struct chan *ch, enum chan_event_type type, uint8_t *buf, const uint8_t *data,
                      size_t len)
{
    if (ch->ev_head == ch->ev_len)
        ch->ev_head = ch->ev_len = 0;
    if (ch->ev_len == ch->ev_cap) {
        size_t cap = ch->ev_cap ? ch->ev_cap * 2 : 8;
        struct event_item *ev = swm_realloc(ch->events, cap * sizeof(*ev));
        if (ev == NULL)
            return -ENOMEM;
        ch->events = ev;
        ch->ev_cap = cap;
    }
    ch->events[ch->ev_len++] = (struct event_item){type, buf, data, len};
    return 0;
}

int chan_next_event(struct chan *ch, struct chan_event *ev)
{
    swm_free(ch->ev_current);
    ch->ev_current = NULL;
    if (ch->ev_head == ch->ev_len)
        return 0;
    struct event_item *it = &ch->events[ch->ev_head++];
    ch->ev_current = it->buf;
    ev->type = it->type;
    ev->data = it->data;
    ev->len = it->len;
    return 1;
}

/* -------------------------------------------------------- transcript -- */

static int transcript_add(struct chan *ch, const uint8_t *msg, size_t len)
{
    uint8_t n[4];
    put_u32(n, (uint32_t)len);
    if (swm_buf_append(&ch->transcript, n, 4) < 0 || swm_buf_append(&ch->transcript, msg, len) < 0)
        return fail(ch, -ENOMEM, "out of memory recording the handshake");
    return 0;
}

/* H(label || transcript so far || len(extra) || extra). */
static void transcript_hash(const struct chan *ch, const uint8_t *extra, size_t extra_len,
                            uint8_t out[CA_TRANSCRIPT_LEN])
{
    crypto_generichash_state st;
    uint8_t n[4];
    put_u32(n, (uint32_t)extra_len);
    crypto_generichash_init(&st, NULL, 0, CA_TRANSCRIPT_LEN);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label));
    crypto_generichash_update(&st, ch->transcript.data, ch->transcript.len);
    crypto_generichash_update(&st, n, 4);
    crypto_generichash_update(&st, extra, extra_len);
    crypto_generichash_final(&st, out, CA_TRANSCRIPT_LEN);
}

static void sign_transcript(const struct chan *ch, const char *which,
                            const uint8_t th[CA_TRANSCRIPT_LEN], uint8_t sig[CA_SIG_LEN])
{
    uint8_t msg[64 + CA_TRANSCRIPT_LEN];
    size_t n = strlen(which) + 1;
    memcpy(msg, which, n);
    memcpy(msg + n, th, CA_TRANSCRIPT_LEN);
    crypto_sign_detached(sig, NULL, msg, n + CA_TRANSCRIPT_LEN, ch->identity.sk);
}

static bool verify_transcript(const char *which, const uint8_t th[CA_TRANSCRIPT_LEN],
                              const uint8_t sig[CA_SIG_LEN], const uint8_t pk[CA_PUBKEY_LEN])
{
    uint8_t msg[64 + CA_TRANSCRIPT_LEN];
    size_t n = strlen(which) + 1;
    memcpy(msg, which, n);
    memcpy(msg + n, th, CA_TRANSCRIPT_LEN);
    return crypto_sign_verify_detached(sig, msg, n + CA_TRANSCRIPT_LEN, pk) == 0;
}

/* The stream keys: crypto_kx session keys bound to the whole transcript
 * th3, so that keys exist only for a handshake both sides signed. Inits the
 * send stream and writes its header. */
static int derive_keys(struct chan *ch, const uint8_t th3[CA_TRANSCRIPT_LEN],
                       uint8_t tx_hdr[HDR_LEN], uint8_t rx_key[32])
{
    uint8_t kx_rx[crypto_kx_SESSIONKEYBYTES], kx_tx[crypto_kx_SESSIONKEYBYTES];
    int rc;
    if (ch->side == CHAN_INITIATOR)
        rc = crypto_kx_client_session_keys(kx_rx, kx_tx, ch->eph_pk, ch->eph_sk, ch->peer_eph);
    else
        rc = crypto_kx_server_session_keys(kx_rx, kx_tx, ch->eph_pk, ch->eph_sk, ch->peer_eph);
    sodium_memzero(ch->eph_sk, sizeof(ch->eph_sk));
    if (rc != 0)
        return fail(ch, SWM_EAUTH, "the peer's ephemeral key is invalid");
    const char *tx_label = ch->side == CHAN_INITIATOR ? label_i2r : label_r2i;
    const char *rx_label = ch->side == CHAN_INITIATOR ? label_r2i : label_i2r;
    uint8_t tx_key[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, kx_tx, sizeof(kx_tx), sizeof(tx_key));
    crypto_generichash_update(&st, (const uint8_t *)tx_label, strlen(tx_label) + 1);
    crypto_generichash_update(&st, th3, CA_TRANSCRIPT_LEN);
    crypto_generichash_final(&st, tx_key, sizeof(tx_key));
    crypto_generichash_init(&st, kx_rx, sizeof(kx_rx), 32);
    crypto_generichash_update(&st, (const uint8_t *)rx_label, strlen(rx_label) + 1);
    crypto_generichash_update(&st, th3, CA_TRANSCRIPT_LEN);
    crypto_generichash_final(&st, rx_key, 32);
    crypto_secretstream_xchacha20poly1305_init_push(&ch->tx, tx_hdr, tx_key);
    sodium_memzero(&st, sizeof(st));
    sodium_memzero(kx_rx, sizeof(kx_rx));
    sodium_memzero(kx_tx, sizeof(kx_tx));
    sodium_memzero(tx_key, sizeof(tx_key));
    return 0;
}

/* The first message of each stream is empty: it proves the sender derived
 * the same keys (key confirmation). */
static void push_confirm(struct chan *ch, uint8_t out[ABYTES])
{
    crypto_secretstream_xchacha20poly1305_push(&ch->tx, out, NULL, NULL, 0, NULL, 0,
                                               crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
}

static int pull_confirm(struct chan *ch, const uint8_t rx_key[32], const uint8_t hdr[HDR_LEN],
                        const uint8_t confirm[ABYTES])
{
    uint8_t tag, dummy[1];
    unsigned long long mlen;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&ch->rx, hdr, rx_key) != 0 ||
        crypto_secretstream_xchacha20poly1305_pull(&ch->rx, dummy, &mlen, &tag, confirm, ABYTES,
                                                   NULL, 0) != 0 ||
        mlen != 0)
        return fail(ch, SWM_EAUTH, "key confirmation failed: the peer derived other keys");
    return 0;
}

static int64_t wall(const struct chan *ch)
{
    return ch->wall_clock(ch->clock_arg);
}

/* The peer is in the cluster; is it the node we meant to reach? */
static int check_peer_id(struct chan *ch, const struct ca_cert *pc)
{
    if (ch->peer_node_id[0] != '\0' && strcmp(pc->node_id, ch->peer_node_id) != 0)
        return fail(ch, SWM_EAUTH, "reached node %s, expected node %s", pc->node_id,
                    ch->peer_node_id);
    return 0;
}

/* --------------------------------------------------------- handshake -- */

static int send_hello(struct chan *ch)
{
    uint8_t m[HELLO_LEN], *p = m;
    *p++ = MSG_HELLO;
    memcpy(p, HS_MAGIC, 4);
    p += 4;
    *p++ = HS_VERSION;
    *p++ = (uint8_t)ch->mode;
    memcpy(p, ch->nonce, NONCE_LEN);
    p += NONCE_LEN;
    memcpy(p, ch->eph_pk, EPH_LEN);
    int rc = transcript_add(ch, m, sizeof(m));
    if (rc == 0)
        rc = queue_plain(ch, m, sizeof(m));
    if (rc == 0)
        ch->state = ST_WAIT_RESP;
    return rc;
}

/* Responder, step 1 -> 2: HELLO in, RESP out. */
static int on_hello(struct chan *ch, const uint8_t *m, size_t len)
{
    if (len != HELLO_LEN || m[0] != MSG_HELLO || memcmp(m + 1, HS_MAGIC, 4) != 0)
        return fail(ch, SWM_EPROTO, "not a swarmc handshake (bad HELLO)");
    if (m[5] != HS_VERSION)
        return fail(ch, SWM_EPROTO, "handshake version %u is not supported (want %d)", m[5],
                    HS_VERSION);
    if (m[6] != MODE_AUTH && m[6] != MODE_JOIN)
        return fail(ch, SWM_EPROTO, "unknown handshake mode %u", m[6]);
    ch->mode = m[6];
    if (ch->mode == MODE_JOIN && !ch->has_secrets)
        return fail(ch, -EPERM, "this node does not accept joins");
    memcpy(ch->peer_eph, m + 7 + NONCE_LEN, EPH_LEN);
    int rc = transcript_add(ch, m, len);
    if (rc < 0)
        return rc;

    uint8_t r[RESP_LEN], *p = r;
    *p++ = MSG_RESP;
    memcpy(p, ch->nonce, NONCE_LEN);
    p += NONCE_LEN;
    memcpy(p, ch->eph_pk, EPH_LEN);
    p += EPH_LEN;
    ca_cert_encode(&ch->cert, p);
    transcript_hash(ch, r, RESP_UNSIGNED, ch->th2);
    sign_transcript(ch, label_resp_sig, ch->th2, r + RESP_UNSIGNED);
    if ((rc = transcript_add(ch, r, RESP_LEN)) < 0 || (rc = queue_plain(ch, r, RESP_LEN)) < 0)
        return rc;
    ch->state = ST_WAIT_AUTH;
    return 0;
}

static int on_reject(struct chan *ch, const uint8_t *m, size_t len)
{
    if (len < 5)
        return fail(ch, SWM_EPROTO, "truncated REJECT message");
    int32_t code = (int32_t)get_u32(m + 1);
    /* Unauthenticated: keep only codes a responder sends, and only
     * printable text. */
    switch (code) {
    case SWM_EAUTH:
    case SWM_EREVOKED:
    case SWM_EEXPIRED:
    case SWM_EWRONGCLUSTER:
    case SWM_EBADTOKEN:
    case SWM_EPROTO:
    case -EPERM:
    case -EMSGSIZE:
    case -ETIMEDOUT:
    case -ENOMEM:
        break;
    default:
        code = SWM_EAUTH;
    }
    char text[REJECT_MSG_MAX + 1];
    size_t n = len - 5 > REJECT_MSG_MAX ? REJECT_MSG_MAX : len - 5;
    for (size_t i = 0; i < n; i++)
        text[i] = m[5 + i] >= 0x20 && m[5 + i] < 0x7f ? (char)m[5 + i] : '?';
    text[n] = '\0';
    return fail(ch, code, "the peer refused the handshake: %s", text);
}

/* Initiator, step 2 -> 3: RESP in, AUTH or JOIN out. */
static int on_resp(struct chan *ch, const uint8_t *m, size_t len)
{
    if (len >= 1 && m[0] == MSG_REJECT)
        return on_reject(ch, m, len);
    if (len != RESP_LEN || m[0] != MSG_RESP)
        return fail(ch, SWM_EPROTO, "malformed handshake response (%zu bytes, type %u)", len,
                    len ? m[0] : 0);
    /* The responder's nonce needs no check of its own: it is bound into
     * every later signature and key through the transcript. */
    struct ca_cert pc;
    int rc = ca_cert_decode(&pc, m + 1 + NONCE_LEN + EPH_LEN, CA_CERT_LEN, &ch->err);
    if (rc < 0) {
        swm_err_wrap(&ch->err, rc, "manager's certificate");
        return fail_keep(ch, rc);
    }
    unsigned roles = ch->peer_roles;
    if (ch->mode == MODE_JOIN) {
        /* Pin the root by the token's digest (docs/protocol.md "Join"). */
        if ((rc = ca_token_check_root(&ch->token, pc.issuer_pk, &ch->err)) < 0)
            return fail_keep(ch, rc);
        memcpy(ch->root_pk, pc.issuer_pk, CA_PUBKEY_LEN);
        ch->has_root = true;
        roles = CA_ROLE_BIT(CA_ROLE_MANAGER);
    }
    if ((rc = ca_cert_verify(&pc, ch->root_pk, wall(ch), ch->revoked, roles, &ch->err)) < 0)
        return fail_keep(ch, rc);
    if ((rc = check_peer_id(ch, &pc)) < 0)
        return rc;
    uint8_t th2[CA_TRANSCRIPT_LEN];
    transcript_hash(ch, m, RESP_UNSIGNED, th2);
    if (!verify_transcript(label_resp_sig, th2, m + RESP_UNSIGNED, pc.node_pk))
        return fail(ch, SWM_EAUTH,
                    "the responder's handshake signature does not verify (tampered or relayed "
                    "handshake)");
    memcpy(ch->peer_eph, m + 1 + NONCE_LEN, EPH_LEN);
    ch->peer_cert = pc;
    ch->has_peer_cert = true;
    memcpy(ch->th2, th2, sizeof(th2));
    if ((rc = transcript_add(ch, m, len)) < 0)
        return rc;

    uint8_t a[AUTH_LEN > JOIN_LEN ? AUTH_LEN : JOIN_LEN], *p = a;
    size_t unsigned_len, total;
    if (ch->mode == MODE_JOIN) {
        *p++ = MSG_JOIN;
        *p++ = (uint8_t)ch->join_role;
        memcpy(p, ch->identity.pk, CA_PUBKEY_LEN);
        p += CA_PUBKEY_LEN;
        ca_join_proof(ch->token.secret, ch->join_role, ch->identity.pk, th2, p);
        unsigned_len = JOIN_UNSIGNED;
        total = JOIN_LEN;
    } else {
        *p++ = MSG_AUTH;
        ca_cert_encode(&ch->cert, p);
        unsigned_len = AUTH_UNSIGNED;
        total = AUTH_LEN;
    }
    uint8_t th3[CA_TRANSCRIPT_LEN], rx_key[32];
    transcript_hash(ch, a, unsigned_len, th3);
    sign_transcript(ch, label_init_sig, th3, a + unsigned_len);
    rc = derive_keys(ch, th3, a + unsigned_len + CA_SIG_LEN, rx_key);
    if (rc == 0) {
        push_confirm(ch, a + unsigned_len + CA_SIG_LEN + HDR_LEN);
        rc = queue_plain(ch, a, total);
    }
    memcpy(ch->pending_rx_key, rx_key, 32);
    sodium_memzero(rx_key, sizeof(rx_key));
    if (rc == 0)
        ch->state = ST_WAIT_ACCEPT;
    return rc;
}

/* Responder, step 3 -> 4: AUTH or JOIN in, ACCEPT out. */
static int on_auth(struct chan *ch, const uint8_t *m, size_t len)
{
    int rc;
    size_t unsigned_len;
    const uint8_t *signer;
    const uint8_t *proof = NULL;
    struct ca_cert pc;
    int role = 0;
    if (ch->mode == MODE_AUTH) {
        if (len != AUTH_LEN || m[0] != MSG_AUTH)
            return fail(ch, SWM_EPROTO, "malformed AUTH message (%zu bytes, type %u)", len,
                        len ? m[0] : 0);
        if ((rc = ca_cert_decode(&pc, m + 1, CA_CERT_LEN, &ch->err)) < 0) {
            swm_err_wrap(&ch->err, rc, "peer's certificate");
            return fail_keep(ch, rc);
        }
        rc = ca_cert_verify(&pc, ch->root_pk, wall(ch), ch->revoked, ch->peer_roles, &ch->err);
        if (rc < 0)
            return fail_keep(ch, rc);
        if ((rc = check_peer_id(ch, &pc)) < 0)
            return rc;
        unsigned_len = AUTH_UNSIGNED;
        signer = pc.node_pk;
    } else {
        if (len != JOIN_LEN || m[0] != MSG_JOIN)
            return fail(ch, SWM_EPROTO, "malformed JOIN message (%zu bytes, type %u)", len,
                        len ? m[0] : 0);
        role = m[1];
        if (role != CA_ROLE_WORKER && role != CA_ROLE_MANAGER)
            return fail(ch, SWM_EPROTO, "join request for unknown role %d", role);
        signer = m + 2;
        proof = signer + CA_PUBKEY_LEN;
        unsigned_len = JOIN_UNSIGNED;
    }
    uint8_t th3[CA_TRANSCRIPT_LEN];
    transcript_hash(ch, m, unsigned_len, th3);
    /* For a joiner this proves it holds the key it wants certified; checked
     * before the token so that a replayed JOIN is reported as one. */
    if (!verify_transcript(label_init_sig, th3, m + unsigned_len, signer))
        return fail(ch, SWM_EAUTH,
                    "the initiator's handshake signature does not verify (replayed, tampered or "
                    "relayed handshake)");
    if (proof != NULL &&
        (rc = ca_join_verify(&ch->secrets, role, signer, ch->th2, proof, &ch->err)) < 0)
        return fail_keep(ch, rc);

    uint8_t acc[ACCEPT_LEN], rx_key[32];
    acc[0] = MSG_ACCEPT;
    if ((rc = derive_keys(ch, th3, acc + 1, rx_key)) < 0)
        return rc;
    const uint8_t *hdr = m + unsigned_len + CA_SIG_LEN;
    rc = pull_confirm(ch, rx_key, hdr, hdr + HDR_LEN);
    sodium_memzero(rx_key, sizeof(rx_key));
    if (rc < 0)
        return rc;
    push_confirm(ch, acc + 1 + HDR_LEN);
    if ((rc = queue_plain(ch, acc, sizeof(acc))) < 0)
        return rc;
    swm_buf_free(&ch->transcript);
    if (ch->mode == MODE_AUTH) {
        ch->peer_cert = pc;
        ch->has_peer_cert = true;
        ch->state = ST_OPEN;
        rc = push_event(ch, CHAN_EV_ESTABLISHED, NULL, NULL, 0);
    } else {
        memcpy(ch->joiner_pk, signer, CA_PUBKEY_LEN);
        ch->join_role = role;
        ch->state = ST_JOIN_ISSUE;
        rc = push_event(ch, CHAN_EV_JOIN_REQUEST, NULL, NULL, 0);
    }
    return rc < 0 ? fail(ch, rc, "out of memory queueing an event") : 0;
}

/* Initiator, step 4: ACCEPT in. */
static int on_accept(struct chan *ch, const uint8_t *m, size_t len)
{
    if (len >= 1 && m[0] == MSG_REJECT)
        return on_reject(ch, m, len);
    if (len != ACCEPT_LEN || m[0] != MSG_ACCEPT)
        return fail(ch, SWM_EPROTO, "malformed ACCEPT message (%zu bytes, type %u)", len,
                    len ? m[0] : 0);
    int rc = pull_confirm(ch, ch->pending_rx_key, m + 1, m + 1 + HDR_LEN);
    sodium_memzero(ch->pending_rx_key, sizeof(ch->pending_rx_key));
    if (rc < 0)
        return rc;
    swm_buf_free(&ch->transcript);
    ch->state = ch->mode == MODE_JOIN ? ST_JOIN_CERT : ST_OPEN;
    if (push_event(ch, CHAN_EV_ESTABLISHED, NULL, NULL, 0) < 0)
        return fail(ch, -ENOMEM, "out of memory queueing an event");
    return 0;
}

/* ----------------------------------------------------- sealed frames -- */

static int on_cert(struct chan *ch, const uint8_t *body, size_t len)
{
    struct ca_cert c;
    int rc = ca_cert_decode(&c, body, len, &ch->err);
    if (rc < 0) {
        swm_err_wrap(&ch->err, rc, "issued certificate");
        return fail_keep(ch, rc);
    }
    rc = ca_cert_verify(&c, ch->root_pk, wall(ch), NULL, CA_ROLE_BIT(ch->join_role), &ch->err);
    if (rc < 0) {
        swm_err_wrap(&ch->err, rc, "issued certificate");
        return fail_keep(ch, rc);
    }
    if (sodium_memcmp(c.node_pk, ch->identity.pk, CA_PUBKEY_LEN) != 0)
        return fail(ch, SWM_EAUTH, "the issued certificate is for another node's key");
    ch->issued = c;
    ch->has_issued = true;
    ch->state = ST_DONE;
    if (push_event(ch, CHAN_EV_CERT, NULL, NULL, 0) < 0)
        return fail(ch, -ENOMEM, "out of memory queueing an event");
    return 0;
}

static int on_sealed(struct chan *ch, const uint8_t *f, size_t len)
{
    if (len < ABYTES + 1)
        return fail(ch, SWM_EPROTO, "truncated frame: %zu bytes is less than a sealed message",
                    len);
    size_t plen = len - ABYTES;
    uint8_t *plain = swm_malloc(plen);
    if (plain == NULL)
        return fail(ch, -ENOMEM, "out of memory receiving a frame");
    unsigned long long mlen;
    uint8_t tag;
    if (crypto_secretstream_xchacha20poly1305_pull(&ch->rx, plain, &mlen, &tag, f, len, NULL, 0) !=
            0 ||
        tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL || mlen != plen) {
        swm_free(plain);
        return fail(ch, SWM_EPROTO,
                    "frame %llu failed authentication (tampered, replayed or out of order)",
                    (unsigned long long)ch->rx_count + 1);
    }
    ch->rx_count++;
    int rc = 0;
    switch (plain[0]) {
    case KIND_KEEPALIVE:
        if (plen != 1)
            rc = fail(ch, SWM_EPROTO, "keepalive frame with a payload");
        break;
    case KIND_DATA:
        if (ch->state != ST_OPEN) {
            rc = fail(ch, SWM_EPROTO, "data frame on a join channel");
            break;
        }
        if (push_event(ch, CHAN_EV_DATA, plain, plain + 1, plen - 1) < 0) {
            rc = fail(ch, -ENOMEM, "out of memory queueing a message");
            break;
        }
        return 0; /* the event owns plain */
    case KIND_CERT:
        if (ch->state != ST_JOIN_CERT)
            rc = fail(ch, SWM_EPROTO, "unexpected certificate frame");
        else
            rc = on_cert(ch, plain + 1, plen - 1);
        break;
    default:
        rc = fail(ch, SWM_EPROTO, "unknown frame kind %u", plain[0]);
    }
    sodium_memzero(plain, plen);
    swm_free(plain);
    return rc;
}

static int on_frame(struct chan *ch, const uint8_t *f, size_t len)
{
    switch (ch->state) {
    case ST_WAIT_HELLO:
        return on_hello(ch, f, len);
    case ST_WAIT_RESP:
        return on_resp(ch, f, len);
    case ST_WAIT_AUTH:
        return on_auth(ch, f, len);
    case ST_WAIT_ACCEPT:
        return on_accept(ch, f, len);
    case ST_OPEN:
    case ST_JOIN_ISSUE:
    case ST_JOIN_CERT:
    case ST_DONE:
        return on_sealed(ch, f, len);
    default:
        return fail(ch, -EINVAL, "frame fed to a channel that was not started");
    }
}

static bool handshaking(const struct chan *ch)
{
    return ch->state == ST_NEW || ch->state == ST_WAIT_HELLO || ch->state == ST_WAIT_RESP ||
           ch->state == ST_WAIT_AUTH || ch->state == ST_WAIT_ACCEPT;
}

/* -------------------------------------------------------------- API -- */

int chan_new(struct chan **out, const struct chan_config *cfg, struct swm_err *err)
{
    if (sodium_init() < 0)
        return swm_err_set(err, -EIO, "libsodium failed to initialise");
    if (cfg->side != CHAN_INITIATOR && cfg->side != CHAN_RESPONDER)
        return swm_err_set(err, -EINVAL, "channel side must be initiator or responder");
    if (cfg->identity == NULL || cfg->wall_clock == NULL)
        return swm_err_set(err, -EINVAL, "channel needs an identity key and a wall clock");
    bool joining = cfg->side == CHAN_INITIATOR && cfg->join_token != NULL;
    if (!joining && (cfg->cert == NULL || cfg->root_pk == NULL))
        return swm_err_set(err, -EINVAL, "channel needs a certificate and the root key");
    if (joining && cfg->join_role != CA_ROLE_WORKER && cfg->join_role != CA_ROLE_MANAGER)
        return swm_err_set(err, -EINVAL, "join role must be worker or manager");
    if (!joining && sodium_memcmp(cfg->cert->node_pk, cfg->identity->pk, CA_PUBKEY_LEN) != 0)
        return swm_err_set(err, -EINVAL, "the certificate is not for this identity key");
    if (cfg->peer_node_id != NULL && !swm_id_valid(cfg->peer_node_id))
        return swm_err_set(err, -EINVAL, "expected peer node id is not a valid id");

    struct chan *ch = swm_calloc(1, sizeof(*ch));
    if (ch == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory creating a channel");
    ch->side = cfg->side;
    ch->state = ST_NEW;
    ch->mode = joining ? MODE_JOIN : MODE_AUTH;
    ch->identity = *cfg->identity;
    if (cfg->cert != NULL && !joining) {
        ch->cert = *cfg->cert;
        ch->has_cert = true;
    }
    if (cfg->root_pk != NULL && !joining) {
        memcpy(ch->root_pk, cfg->root_pk, CA_PUBKEY_LEN);
        ch->has_root = true;
    }
    if (joining) {
        ch->token = *cfg->join_token;
        ch->join_role = cfg->join_role;
    }
    if (cfg->side == CHAN_RESPONDER && cfg->join_secrets != NULL) {
        ch->secrets = *cfg->join_secrets;
        ch->has_secrets = true;
    }
    ch->peer_roles = cfg->peer_roles ? cfg->peer_roles : CA_ROLES_ANY;
    if (cfg->peer_node_id != NULL)
        memcpy(ch->peer_node_id, cfg->peer_node_id, SWM_ID_LEN + 1);
    ch->revoked = cfg->revoked;
    ch->wall_clock = cfg->wall_clock;
    ch->clock_arg = cfg->clock_arg;
    ch->max_frame = cfg->max_frame ? cfg->max_frame : CHAN_MAX_FRAME_DEFAULT;
    if (ch->max_frame > UINT32_MAX - 1 - ABYTES)
        ch->max_frame = UINT32_MAX - 1 - ABYTES;
    ch->handshake_timeout =
        cfg->handshake_timeout > 0 ? cfg->handshake_timeout : CHAN_HANDSHAKE_TIMEOUT_DEFAULT;
    ch->keepalive_interval =
        cfg->keepalive_interval > 0 ? cfg->keepalive_interval : CHAN_KEEPALIVE_DEFAULT;
    ch->idle_timeout = cfg->idle_timeout > 0 ? cfg->idle_timeout : CHAN_IDLE_TIMEOUT_DEFAULT;
    ch->rekey_interval = cfg->rekey_interval ? cfg->rekey_interval : CHAN_REKEY_INTERVAL_DEFAULT;
    crypto_kx_keypair(ch->eph_pk, ch->eph_sk);
    randombytes_buf(ch->nonce, sizeof(ch->nonce));
    *out = ch;
    return 0;
}

void chan_free(struct chan *ch)
{
    if (ch == NULL)
        return;
    for (size_t i = ch->ev_head; i < ch->ev_len; i++)
        swm_free(ch->events[i].buf);
    swm_free(ch->events);
    swm_free(ch->ev_current);
    swm_buf_free(&ch->transcript);
    if (ch->in.data != NULL)
        sodium_memzero(ch->in.data, ch->in.cap);
    swm_buf_free(&ch->in);
    swm_buf_free(&ch->out);
    sodium_memzero(ch, sizeof(*ch));
    swm_free(ch);
}

int chan_start(struct chan *ch, int64_t now, struct swm_err *err)
{
    if (ch->state != ST_NEW)
        return swm_err_set(err, -EINVAL, "channel already started");
    ch->start = ch->now = ch->last_rx = ch->last_tx = now;
    if (ch->side == CHAN_RESPONDER) {
        ch->state = ST_WAIT_HELLO;
        return 0;
    }
    return report(ch, send_hello(ch), err);
}

int chan_feed(struct chan *ch, const void *data, size_t len, int64_t now, struct swm_err *err)
{
    if (ch->state == ST_FAILED)
        return report(ch, ch->err.code, err);
    if (ch->state == ST_NEW)
        return swm_err_set(err, -EINVAL, "channel fed before chan_start");
    ch->now = now;
    if (len > 0 && swm_buf_append(&ch->in, data, len) < 0)
        return report(ch, fail(ch, -ENOMEM, "out of memory buffering input"), err);
    int rc = 0;
    for (;;) {
        size_t avail = ch->in.len - ch->in_off;
        if (avail < 4)
            break;
        const uint8_t *p = ch->in.data + ch->in_off;
        uint32_t flen = get_u32(p);
        /* Check the length before waiting for the body: a peer must not
         * make us buffer more than one maximal frame. */
        uint32_t limit = handshaking(ch) ? HS_MAX_FRAME : ch->max_frame + 1 + ABYTES;
        if (flen > limit) {
            rc =
                fail(ch, -EMSGSIZE, "frame of %u bytes exceeds the limit of %u bytes", flen, limit);
            break;
        }
        if (avail - 4 < flen)
            break;
        ch->in_off += 4 + (size_t)flen;
        ch->last_rx = now;
        if ((rc = on_frame(ch, p + 4, flen)) < 0)
            break;
    }
    /* Keep only the partial frame. */
    size_t rest = ch->in.len - ch->in_off;
    if (ch->in_off > 0) {
        memmove(ch->in.data, ch->in.data + ch->in_off, rest);
        ch->in.len = rest;
        ch->in_off = 0;
    }
    return report(ch, rc, err);
}

int chan_feed_eof(struct chan *ch, struct swm_err *err)
{
    if (ch->state == ST_FAILED)
        return report(ch, ch->err.code, err);
    size_t rest = ch->in.len - ch->in_off;
    if (rest > 0)
        return report(ch,
                      fail(ch, SWM_EPROTO,
                           "connection closed inside a frame (%zu bytes of it arrived)", rest),
                      err);
    if (handshaking(ch))
        return report(ch, fail(ch, SWM_EPROTO, "connection closed during the handshake"), err);
    return 0;
}

size_t chan_output(struct chan *ch, const uint8_t **data)
{
    *data = ch->out.data + ch->out_off;
    return ch->out.len - ch->out_off;
}

void chan_output_consume(struct chan *ch, size_t n)
{
    size_t avail = ch->out.len - ch->out_off;
    ch->out_off += n < avail ? n : avail;
    if (ch->out_off == ch->out.len)
        ch->out_off = ch->out.len = 0;
}

int chan_send(struct chan *ch, const void *data, size_t len, struct swm_err *err)
{
    if (ch->state == ST_FAILED)
        return report(ch, ch->err.code, err);
    if (ch->state == ST_JOIN_ISSUE || ch->state == ST_JOIN_CERT || ch->state == ST_DONE)
        return swm_err_set(err, -EPERM, "a join channel carries no messages");
    if (ch->state != ST_OPEN)
        return swm_err_set(err, -EAGAIN, "the handshake is not complete");
    if (len > ch->max_frame)
        return swm_err_set(err, -EMSGSIZE, "message of %zu bytes exceeds the limit of %u bytes",
                           len, ch->max_frame);
    if (queue_sealed(ch, KIND_DATA, data, len) < 0)
        return swm_err_set(err, -ENOMEM, "out of memory sending a message");
    return 0;
}

int chan_send_cert(struct chan *ch, const struct ca_cert *cert, struct swm_err *err)
{
    if (ch->state == ST_FAILED)
        return report(ch, ch->err.code, err);
    if (ch->state != ST_JOIN_ISSUE)
        return swm_err_set(err, -EAGAIN, "no join request to answer");
    if (sodium_memcmp(cert->node_pk, ch->joiner_pk, CA_PUBKEY_LEN) != 0 ||
        cert->role != ch->join_role)
        return swm_err_set(err, -EINVAL,
                           "the certificate is not for the joining node's key and role");
    uint8_t enc[CA_CERT_LEN];
    ca_cert_encode(cert, enc);
    if (queue_sealed(ch, KIND_CERT, enc, sizeof(enc)) < 0)
        return swm_err_set(err, -ENOMEM, "out of memory sending the certificate");
    ch->issued = *cert;
    ch->has_issued = true;
    ch->state = ST_DONE;
    return 0;
}

int chan_tick(struct chan *ch, int64_t now, struct swm_err *err)
{
    if (ch->state == ST_FAILED)
        return report(ch, ch->err.code, err);
    if (ch->state == ST_NEW)
        return 0;
    ch->now = now;
    if (handshaking(ch) || ch->state == ST_JOIN_ISSUE || ch->state == ST_JOIN_CERT) {
        if (now - ch->start >= ch->handshake_timeout)
            return report(ch,
                          fail(ch, -ETIMEDOUT, "handshake not complete after %lld ms",
                               (long long)((now - ch->start) / 1000000)),
                          err);
        return 0;
    }
    if (now - ch->last_rx >= ch->idle_timeout)
        return report(ch,
                      fail(ch, -ETIMEDOUT, "nothing heard from the peer for %lld ms",
                           (long long)((now - ch->last_rx) / 1000000)),
                      err);
    if (now - ch->last_tx >= ch->keepalive_interval &&
        queue_sealed(ch, KIND_KEEPALIVE, NULL, 0) < 0)
        return swm_err_set(err, -ENOMEM, "out of memory sending a keepalive");
    return 0;
}

int chan_recheck(struct chan *ch, struct swm_err *err)
{
    if (ch->state == ST_FAILED)
        return report(ch, ch->err.code, err);
    if (!ch->has_peer_cert)
        return 0;
    int rc = ca_cert_verify(&ch->peer_cert, ch->root_pk, wall(ch), ch->revoked, ch->peer_roles,
                            &ch->err);
    if (rc < 0) {
        /* No REJECT here: the channel is past its handshake. */
        ch->state = ST_FAILED;
        return report(ch, rc, err);
    }
    return 0;
}

bool chan_established(const struct chan *ch)
{
    return ch->state == ST_OPEN || ch->state == ST_JOIN_ISSUE || ch->state == ST_JOIN_CERT ||
           ch->state == ST_DONE;
}

const struct ca_cert *chan_peer_cert(const struct chan *ch)
{
    return chan_established(ch) && ch->has_peer_cert ? &ch->peer_cert : NULL;
}

int chan_check_role(const struct chan *ch, unsigned allowed, struct swm_err *err)
{
    const struct ca_cert *pc = chan_peer_cert(ch);
    if (pc == NULL || ch->state == ST_FAILED)
        return swm_err_set(err, -EAGAIN, "no authenticated peer on this channel");
    if ((allowed & CA_ROLE_BIT(pc->role)) == 0)
        return swm_err_set(err, -EPERM, "node %s is a %s and may not make this request",
                           pc->node_id, ca_role_name(pc->role));
    return 0;
}

int chan_join_request(const struct chan *ch, uint8_t pk[CA_PUBKEY_LEN], int *role)
{
    if (ch->side != CHAN_RESPONDER || ch->mode != MODE_JOIN ||
        (ch->state != ST_JOIN_ISSUE && ch->state != ST_DONE))
        return -EAGAIN;
    memcpy(pk, ch->joiner_pk, CA_PUBKEY_LEN);
    *role = ch->join_role;
    return 0;
}

const struct ca_cert *chan_issued_cert(const struct chan *ch)
{
    return ch->has_issued && ch->side == CHAN_INITIATOR ? &ch->issued : NULL;
}

uint64_t chan_tx_count(const struct chan *ch)
{
    return ch->tx_count;
}

uint64_t chan_rx_count(const struct chan *ch)
{
    return ch->rx_count;
}
