/* Certificate renewal (docs/protocol.md "Certificate renewal"): at a random
 * 50-80% of its certificate's life, a node asks a manager (service "ca" of
 * the cluster port, on the leader) for a new one with the same key. The
 * answer is checked (the pinned root, this node, this key, valid now),
 * saved in <data-dir>/certificates and used for every connection made from
 * then on; connections already up keep theirs. A failed attempt is retried
 * after RETRY_MS, with the next manager. */
#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/internal.h"
#include "manager/raft/transport_chan.h"
#include "net/transport/port.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <string.h>

#define RETRY_MS 5000

struct cert_renewal {
    struct node_daemon *nd;
    struct chan_conn *conn; /* NULL between attempts */
    uv_timer_t timer;
    size_t attempt;
    bool renewed; /* the current attempt got its certificate */
    bool closing, timer_closed;
};

static void renewal_maybe_free(struct cert_renewal *r)
{
    if (r->closing && r->conn == NULL && r->timer_closed)
        swm_free(r);
}

static void attempt(uv_timer_t *timer);

static void schedule(struct cert_renewal *r)
{
    int64_t at = ca_cert_renew_time(&r->nd->identity.cert, randombytes_random());
    int64_t wait_ms = (at - swm_now_ns()) / SWM_NS_PER_MS;
    uv_timer_start(&r->timer, attempt, wait_ms > 0 ? (uint64_t)wait_ms : 0, 0);
}

/* Checks the new certificate and puts it in use. Returns 0 or an error. */
static int adopt(struct node_daemon *nd, const uint8_t *data, size_t len, struct swm_err *err)
{
    struct ca_node_files files = nd->identity;
    char path[PATH_MAX];
    int rc = ca_cert_decode(&files.cert, data, len, err);
    if (rc == 0)
        rc = ca_cert_verify(&files.cert, nd->identity.root_pk, swm_now_ns(), NULL,
                            CA_ROLE_BIT(nd->identity.cert.role), err);
    if (rc == 0 && (strcmp(files.cert.node_id, nd->node_id) != 0 ||
                    memcmp(files.cert.node_pk, nd->identity.key.pk, CA_PUBKEY_LEN) != 0))
        rc = swm_err_set(err, SWM_EAUTH, "the certificate is for another node or key");
    snprintf(path, sizeof(path), "%s/certificates", daemon__data_dir(nd->opts));
    if (rc == 0)
        rc = ca_node_files_save(path, &files, err);
    if (rc == 0) {
        nd->identity.cert = files.cert;
        daemon__serve_identity_changed(nd->server);
        if (nd->raft_transport != NULL)
            raft_chan_transport_set_cert(nd->raft_transport, &files.cert);
    }
    sodium_memzero(&files, sizeof(files));
    return rc;
}

static void on_established(struct chan_conn *conn, const struct ca_cert *peer, void *arg)
{
    struct swm_err err = {0};
    static const uint8_t request = 'R';
    if (chan_service_hello(conn, CHAN_SERVICE_CA, &err) < 0 ||
        chan_conn_send(conn, &request, 1, &err) < 0) {
        swm_log_warn("renew: %s", err.msg);
        chan_conn_close(conn);
    }
}

static void on_data(struct chan_conn *conn, const uint8_t *data, size_t len, void *arg)
{
    struct cert_renewal *r = arg;
    struct swm_err err = {0};
    if (adopt(r->nd, data, len, &err) < 0) {
        swm_log_warn("renew: refused the certificate from %s: %s", chan_conn_remote(conn), err.msg);
    } else {
        r->renewed = true;
        swm_log_info("renew: certificate renewed, valid until %lld s after the epoch",
                     (long long)(r->nd->identity.cert.not_after / SWM_NS_PER_SEC));
    }
    chan_conn_close(conn);
}

static void on_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct cert_renewal *r = arg;
    r->conn = NULL;
    if (r->closing) {
        renewal_maybe_free(r);
        return;
    }
    if (r->renewed) {
        schedule(r);
        return;
    }
    swm_log_warn("renew: no certificate (%s); retrying in %d s",
                 status == 0 ? "the manager closed the connection" : reason, RETRY_MS / 1000);
    uv_timer_start(&r->timer, attempt, RETRY_MS, 0);
}

static void attempt(uv_timer_t *timer)
{
    struct cert_renewal *r = timer->data;
    struct node_daemon *nd = r->nd;
    char addr[SWM_ADDR_STRLEN];
    struct chan_conn_callbacks cbs = {
        .established = on_established, .data = on_data, .closed = on_closed, .arg = r};
    struct swm_err err = {0};
    r->renewed = false;
    int rc = daemon__manager_addrs(nd, r->attempt++, addr);
    if (rc < 0)
        swm_err_set(&err, rc, "no manager address is known");
    else
        rc = daemon__dial_manager(nd, addr, &cbs, &r->conn, &err);
    if (rc < 0) {
        r->conn = NULL;
        on_closed(NULL, rc, err.msg, r);
    }
}

int daemon__renewal_open(struct node_daemon *nd, struct cert_renewal **out, struct swm_err *err)
{
    struct cert_renewal *r = swm_calloc(1, sizeof(*r));
    if (r == NULL)
        return swm_err_set(err, -ENOMEM, "out of memory");
    r->nd = nd;
    uv_timer_init(&nd->loop, &r->timer);
    r->timer.data = r;
    schedule(r);
    *out = r;
    return 0;
}

static void timer_closed(uv_handle_t *handle)
{
    struct cert_renewal *r = handle->data;
    r->timer_closed = true;
    renewal_maybe_free(r);
}

void daemon__renewal_close(struct cert_renewal *r)
{
    if (r == NULL)
        return;
    r->closing = true;
    if (r->conn != NULL)
        chan_conn_close(r->conn);
    uv_close((uv_handle_t *)&r->timer, timer_closed);
}
