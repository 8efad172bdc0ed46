/* Making a node's state: a new cluster at `swarmc init`, or a node that
 * joins one (`swarmc join`). Everything is written before the daemon
 * starts; node_id is written last and marks a complete state. */
#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/internal.h"
#include "manager/ca/ca.h"
#include "net/transport/conn.h"
#include "store/raftlog.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* This node's raft member id, derived from its node id so that it needs no
 * state of its own and changes when a node leaves and joins again (raft
 * ids are never reused). */
uint64_t daemon__raft_id(const char *node_id)
{
    unsigned char h[8];
    crypto_generichash(h, sizeof(h), (const unsigned char *)node_id, strlen(node_id), NULL, 0);
    uint64_t id = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        id = id << 8 | h[i];
    return id != 0 ? id : 1;
}

static int new_object_meta(Swarmc__Meta **out)
{
    Swarmc__Meta *m = swm_malloc(sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    swarmc__meta__init(m);
    m->has_created_at = m->has_updated_at = 1;
    m->created_at = m->updated_at = swm_now_ns();
    *out = m;
    return 0;
}

/* The first entry of a new cluster: the cluster object and this node as its
 * first manager (DESIGN.md §1, `swarmc init`). */
static int bootstrap_entry(const struct daemon_opts *o, const struct node_conf *conf,
                           const char *node_id, const char *cluster_id, Swarmc__RootCA *root_ca,
                           Swarmc__StoreEntry **out)
{
    Swarmc__Cluster cluster = SWARMC__CLUSTER__INIT;
    Swarmc__ClusterSpec cspec = SWARMC__CLUSTER_SPEC__INIT;
    Swarmc__Annotations cann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__Node node = SWARMC__NODE__INIT;
    Swarmc__NodeSpec nspec = SWARMC__NODE_SPEC__INIT;
    Swarmc__NodeStatus nstatus = SWARMC__NODE_STATUS__INIT;
    Swarmc__ManagerStatus mstatus = SWARMC__MANAGER_STATUS__INIT;
    Swarmc__Meta *cmeta = NULL, *nmeta = NULL;
    if (new_object_meta(&cmeta) < 0 || new_object_meta(&nmeta) < 0) {
        swm_free(cmeta);
        return -ENOMEM;
    }
    cann.name = "default";
    cspec.annotations = &cann;
    cspec.has_task_history_retention_limit = o->task_history_limit >= 0;
    cspec.task_history_retention_limit = o->task_history_limit;
    cspec.has_dispatcher_heartbeat_period = o->dispatcher_heartbeat_ns > 0;
    cspec.dispatcher_heartbeat_period = o->dispatcher_heartbeat_ns;
    cspec.has_snapshot_interval = o->snapshot_interval > 0;
    cspec.snapshot_interval = o->snapshot_interval;
    cspec.has_node_cert_expiry = o->cert_expiry_ns > 0;
    cspec.node_cert_expiry = o->cert_expiry_ns;
    cluster.id = (char *)cluster_id;
    cluster.meta = cmeta;
    cluster.spec = &cspec;
    cluster.root_ca = root_ca;
    nspec.has_desired_role = nspec.has_availability = 1;
    nspec.desired_role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    nspec.availability =
        o->availability == NULL ? SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE
        : strcmp(o->availability, "drain") == 0 ? SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN
        : strcmp(o->availability, "pause") == 0
            ? SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE
            : SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
    nstatus.has_state = 1;
    nstatus.state = SWARMC__NODE_STATE__NODE_STATE_UNKNOWN;
    char host[SWM_ADDR_STRLEN] = "127.0.0.1";
    if (conf->advertise_addr[0] != '\0')
        swm_addr_host(conf->advertise_addr, host, sizeof(host));
    nstatus.addr = host;
    mstatus.has_leader = mstatus.leader = 1;
    mstatus.has_raft_id = 1;
    mstatus.raft_id = daemon__raft_id(node_id);
    mstatus.reachability = "reachable";
    char maddr[SWM_ADDR_STRLEN];
    daemon__manager_addr(conf, maddr);
    mstatus.addr = maddr;
    node.id = (char *)node_id;
    node.meta = nmeta;
    node.spec = &nspec;
    node.status = &nstatus;
    node.has_role = 1;
    node.role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    node.manager_status = &mstatus;

    Swarmc__StoreAction acts[2] = {SWARMC__STORE_ACTION__INIT, SWARMC__STORE_ACTION__INIT};
    Swarmc__StoreAction *ptrs[2] = {&acts[0], &acts[1]};
    acts[0].has_kind = acts[1].has_kind = 1;
    acts[0].kind = acts[1].kind = SWARMC__STORE_ACTION__KIND__STORE_ACTION_CREATE;
    acts[0].target_case = SWARMC__STORE_ACTION__TARGET_CLUSTER;
    acts[0].cluster = &cluster;
    acts[1].target_case = SWARMC__STORE_ACTION__TARGET_NODE;
    acts[1].node = &node;
    Swarmc__StoreEntry entry = SWARMC__STORE_ENTRY__INIT;
    entry.actions = ptrs;
    entry.n_actions = 2;
    *out = proto_clone(&entry);
    swm_free(cmeta);
    swm_free(nmeta);
    return *out == NULL ? -ENOMEM : 0;
}

/* Takes the data dir for a new node: refused if it already holds one. */
static int claim_data_dir(const char *dir, struct swm_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/node_id", dir);
    if (access(path, F_OK) == 0)
        return swm_err_set(err, SWM_EEXISTS,
                           "This node is already part of a swarm. Use \"swarmc leave\" to leave "
                           "this swarm and join another one.");
    int rc = swm_mkdir_p(dir, 0700);
    if (rc < 0)
        return swm_err_set(err, rc, "creating %s: %s", dir, swm_strerror(rc));
    return 0;
}

/* Writes node.conf, then node_id: the state is complete. */
static int finish_state(const char *dir, const struct node_conf *conf, const char *node_id,
                        struct swm_err *err)
{
    char path[PATH_MAX];
    int rc = node_conf_save(dir, conf, err);
    snprintf(path, sizeof(path), "%s/node_id", dir);
    if (rc == 0 && (rc = swm_write_file_atomic(path, node_id, SWM_ID_LEN, 0600)) < 0)
        swm_err_set(err, rc, "writing %s: %s", path, swm_strerror(rc));
    return rc;
}

int daemon__addr_flag(const char *flag, const char *value, char out[SWM_ADDR_STRLEN],
                      struct swm_err *err)
{
    struct sockaddr_storage sa;
    char with_port[SWM_ADDR_STRLEN + 8];
    const char *colon = strrchr(value, ':');
    /* A host without a port gets Swarm's 2377 (an IPv6 host is bracketed). */
    bool has_port = colon != NULL && (value[0] != '[' || colon > strchr(value, ']'));
    snprintf(with_port, sizeof(with_port), has_port ? "%s" : "%s:2377", value);
    if (strlen(with_port) >= SWM_ADDR_STRLEN || swm_addr_parse(with_port, &sa) < 0)
        return swm_err_set(err, -EINVAL,
                           "invalid %s \"%s\": expected a numeric IP address with an optional "
                           "port (1.2.3.4:2377 or [::1]:2377)",
                           flag, value);
    snprintf(out, SWM_ADDR_STRLEN, "%s", with_port);
    return 0;
}

void daemon__manager_addr(const struct node_conf *conf, char out[SWM_ADDR_STRLEN])
{
    const char *port = conf->listen_addr[0] != '\0' ? strrchr(conf->listen_addr, ':') + 1 : "2377";
    if (conf->advertise_addr[0] != '\0')
        snprintf(out, SWM_ADDR_STRLEN, "%s", conf->advertise_addr);
    else
        snprintf(out, SWM_ADDR_STRLEN, "127.0.0.1:%s", port);
}

/* The node settings init and join were given (their addresses checked). */
static int conf_from_opts(const struct daemon_opts *o, struct node_conf *conf, struct swm_err *err)
{
    memset(conf, 0, sizeof(*conf));
    int rc = 0;
    if (o->listen_addr != NULL)
        rc = daemon__addr_flag("--listen-addr", o->listen_addr, conf->listen_addr, err);
    if (rc == 0 && o->advertise_addr != NULL)
        rc = daemon__addr_flag("--advertise-addr", o->advertise_addr, conf->advertise_addr, err);
    if (rc == 0 && o->availability != NULL)
        snprintf(conf->availability, sizeof(conf->availability), "%s", o->availability);
    return rc;
}

/* Creates the node's state: its id, the cluster's CA with this node's
 * manager certificate and key (<data-dir>/certificates), and the cluster's
 * first raft log entries (this node as the only voter, then the bootstrap
 * entry, which carries the CA), which the daemon applies when it starts. */
int daemon__create_state(const struct daemon_opts *o, char node_id[SWM_ID_LEN + 1],
                         struct swm_err *err)
{
    const char *dir = daemon__data_dir(o);
    char path[PATH_MAX], cluster_id[SWM_ID_LEN + 1];
    struct node_conf conf;
    int rc = conf_from_opts(o, &conf, err);
    if (rc == 0)
        rc = claim_data_dir(dir, err);
    if (rc < 0)
        return rc;
    if (swm_id_new(node_id) < 0 || swm_id_new(cluster_id) < 0)
        return swm_err_set(err, -EIO, "no randomness for ids");
    struct store *s = NULL;
    Swarmc__StoreEntry *entry = NULL;
    Swarmc__RootCA *root_ca = NULL;
    struct raft_server self = {.id = daemon__raft_id(node_id), .role = RAFT_VOTER};
    struct raft_configuration rconf = {.servers = &self, .n_servers = 1};
    snprintf(path, sizeof(path), "%s/state", dir);
    rc = store_open(path, &s, err);
    if (rc == 0 && store_applied_index(s) != 0)
        rc = swm_err_set(err, SWM_EEXISTS, "%s already holds cluster state", path);
    if (rc == 0)
        rc = casvc_root_create(&root_ca, err);
    snprintf(path, sizeof(path), "%s/certificates", dir);
    if (rc == 0)
        rc = casvc_init_node(root_ca, path, cluster_id, node_id, swm_now_ns(), o->cert_expiry_ns,
                             err);
    if (rc == 0 && (rc = bootstrap_entry(o, &conf, node_id, cluster_id, root_ca, &entry)) < 0)
        swm_err_set(err, rc, "out of memory");
    if (rc == 0)
        rc = store_raft_bootstrap(s, &rconf, entry, err);
    casvc_root_redact(root_ca);
    proto_free(root_ca);
    /* The key stays in the log and the store; no other copy outlives this. */
    if (entry != NULL && entry->n_actions > 0 && entry->actions[0]->cluster != NULL)
        casvc_root_redact(entry->actions[0]->cluster->root_ca);
    proto_free(entry);
    store_close(s);
    if (rc == 0)
        rc = finish_state(dir, &conf, node_id, err);
    return rc;
}

/* ------------------------------------------------------------- join -- */

struct join_attempt {
    struct ca_cert cert;
    bool joined;
    int status;
    char reason[256];
};

static void join_joined(struct chan_conn *conn, const struct ca_cert *cert, void *arg)
{
    struct join_attempt *a = arg;
    a->cert = *cert;
    a->joined = true;
}

static void join_closed(struct chan_conn *conn, int status, const char *reason, void *arg)
{
    struct join_attempt *a = arg;
    a->status = status;
    snprintf(a->reason, sizeof(a->reason), "%s", reason != NULL ? reason : "");
}

/* Runs a join channel to `remote` on a loop of its own until the manager
 * sent a certificate or the connection ended (the channel's handshake
 * timeout bounds the wait). */
static int fetch_certificate(const char *remote, const struct ca_token *token, int role,
                             const struct ca_keypair *key, struct ca_cert *out, struct swm_err *err)
{
    uv_loop_t loop;
    struct join_attempt a = {0};
    struct chan_config cfg = {.side = CHAN_INITIATOR,
                              .identity = key,
                              .join_token = token,
                              .join_role = role,
                              .wall_clock = daemon__wall_clock};
    struct chan_conn_callbacks cbs = {.joined = join_joined, .closed = join_closed, .arg = &a};
    struct chan_conn *conn = NULL;
    uv_loop_init(&loop);
    int rc = chan_conn_connect(&loop, remote, &cfg, NULL, &cbs, &conn, err);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (rc < 0)
        return swm_err_wrap(err, rc, "cannot join the swarm at %s", remote);
    if (a.joined) {
        *out = a.cert;
        return 0;
    }
    return swm_err_set(err, a.status < 0 ? a.status : -ECONNRESET,
                       "cannot join the swarm at %s: %s", remote,
                       a.reason[0] != '\0' ? a.reason : "the manager closed the connection");
}

int daemon__join_state(const struct daemon_opts *o, const char *token, const char *remote,
                       char node_id[SWM_ID_LEN + 1], bool *manager, struct swm_err *err)
{
    const char *dir = daemon__data_dir(o);
    char path[PATH_MAX], manager_addr[SWM_ADDR_STRLEN];
    struct node_conf conf;
    struct ca_token tok;
    struct ca_node_files files = {0};
    int rc = conf_from_opts(o, &conf, err);
    if (rc == 0)
        rc = daemon__addr_flag("manager address", remote, manager_addr, err);
    if (rc == 0)
        rc = ca_token_parse(&tok, token, err);
    if (rc < 0)
        return rc;
    node_conf_add_manager(&conf, manager_addr);
    rc = claim_data_dir(dir, err);
    if (rc == 0 && ca_keypair_generate(&files.key) < 0)
        rc = swm_err_set(err, -EIO, "no randomness for the node's key");
    /* The token grants its role: a worker token is the common case, and a
     * manager token is refused for the worker role with -EPERM. */
    if (rc == 0)
        rc = fetch_certificate(manager_addr, &tok, CA_ROLE_WORKER, &files.key, &files.cert, err);
    if (rc == -EPERM)
        rc = fetch_certificate(manager_addr, &tok, CA_ROLE_MANAGER, &files.key, &files.cert, err);
    ca_token_wipe(&tok);
    memcpy(files.root_pk, files.cert.issuer_pk, CA_PUBKEY_LEN);
    snprintf(path, sizeof(path), "%s/certificates", dir);
    if (rc == 0)
        rc = ca_node_files_save(path, &files, err);
    if (rc == 0) {
        snprintf(node_id, SWM_ID_LEN + 1, "%s", files.cert.node_id);
        *manager = files.cert.role == CA_ROLE_MANAGER;
        rc = finish_state(dir, &conf, node_id, err);
    }
    ca_node_files_wipe(&files);
    return rc;
}
