#include "daemon/daemon.h"

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/internal.h"
#include "manager/ca/ca.h"
#include "net/identity/files.h"
#include "store/raftlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_DATA_DIR "/var/lib/swarmc"
#define DEFAULT_RUN_DIR "/run/swarmc"

static const char *data_dir(const struct daemon_opts *o)
{
    return o->data_dir != NULL ? o->data_dir : DEFAULT_DATA_DIR;
}

static const char *run_dir(const struct daemon_opts *o)
{
    return o->run_dir != NULL ? o->run_dir : DEFAULT_RUN_DIR;
}

static void path_in(char *out, size_t len, const char *dir, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static int read_node_id(const char *dir, char id[SWM_ID_LEN + 1], struct swm_err *err)
{
    char path[PATH_MAX];
    struct swm_buf buf = {0};
    path_in(path, sizeof(path), dir, "node_id");
    int rc = swm_read_file(path, 64, &buf);
    if (rc == -ENOENT)
        return swm_err_set(err, rc, "%s holds no swarmc node: run `swarmc init` first", dir);
    if (rc < 0) {
        swm_buf_free(&buf);
        return swm_err_set(err, rc, "reading %s: %s", path, swm_strerror(rc));
    }
    snprintf(id, SWM_ID_LEN + 1, "%.*s", (int)buf.len, (char *)buf.data);
    swm_buf_free(&buf);
    if (!swm_id_valid(id))
        return swm_err_set(err, SWM_ECORRUPT, "%s does not hold a valid node id", path);
    return 0;
}

/* Checks the node's key material in <data-dir>/certificates (written at
 * init by the CA service): a damaged or missing file stops the start with
 * the file's name and what is wrong. A data dir from a swarmc without a CA
 * has no such directory and starts as before (without join tokens). */
static int check_certificates(const char *dir, const char *node_id, struct swm_err *err)
{
    char path[PATH_MAX];
    struct stat st;
    struct ca_node_files f;
    path_in(path, sizeof(path), dir, "certificates");
    if (stat(path, &st) < 0 && errno == ENOENT) {
        swm_log_warn("daemon: %s is missing: this node was made by a swarmc without a "
                     "certificate authority",
                     path);
        return 0;
    }
    int rc = ca_node_files_load(path, node_id, &f, err);
    if (rc < 0)
        return rc;
    int64_t now = swm_now_ns();
    if (now >= f.cert.not_after)
        swm_log_warn("daemon: this node's certificate expired; renewal is not implemented yet");
    ca_node_files_wipe(&f);
    return 0;
}

/* ------------------------------------------------------------ run loop -- */

static void on_signal(uv_signal_t *handle, int signum)
{
    struct node_daemon *nd = handle->data;
    swm_log_info("daemon: signal %d, stopping (containers keep running)", signum);
    daemon__stop(nd, 0);
}

static void close_walk(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static void shutdown_components(struct node_daemon *nd)
{
    daemon__api_close(nd->api);
    nd->api = NULL;
    daemon__link_close(nd->link);
    nd->link = NULL;
    /* The log first: pending proposals fail while their owners still live. */
    raft_node_close(nd->raft);
    nd->raft = NULL;
    manager_close(nd->manager);
    nd->manager = NULL;
    dispatcher_close(nd->dispatcher);
    nd->dispatcher = NULL;
    agent_close(nd->agent);
    nd->agent = NULL;
    controlapi_close(nd->controlapi);
    nd->controlapi = NULL;
    uv_close((uv_handle_t *)&nd->sigterm, NULL);
    uv_close((uv_handle_t *)&nd->sigint, NULL);
}

static void all_removed(void *arg)
{
    struct node_daemon *nd = arg;
    shutdown_components(nd);
}

void daemon__stop(struct node_daemon *nd, int leave)
{
    if (nd->stopping)
        return;
    nd->stopping = 1;
    nd->leaving = leave;
    if (leave) {
        /* Stop the control loops first so nothing new is started. */
        manager_close(nd->manager);
        nd->manager = NULL;
        agent_remove_all(nd->agent, all_removed, nd);
        return;
    }
    shutdown_components(nd);
}

/* This node's raft member id, derived from its node id so that it needs no
 * state of its own and changes when a node leaves and joins again (raft
 * ids are never reused). */
static uint64_t raft_id_of(const char *node_id)
{
    unsigned char h[8];
    crypto_generichash(h, sizeof(h), (const unsigned char *)node_id, strlen(node_id), NULL, 0);
    uint64_t id = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        id = id << 8 | h[i];
    return id != 0 ? id : 1;
}

static void on_leadership(void *arg, bool leader, uint64_t leader_id);

/* The cluster's --snapshot-interval. At the first start of a new cluster
 * the cluster object is still in the log, so `swarmc init`'s own option
 * counts first. 0: the raft default. */
static uint64_t snapshot_interval(struct node_daemon *nd)
{
    if (nd->opts->snapshot_interval > 0)
        return nd->opts->snapshot_interval;
    struct store_read *r = NULL;
    Swarmc__Cluster *c = NULL;
    uint64_t n = 0;
    if (store_read_begin(nd->store, &r, NULL) == 0 && store_get_cluster(r, &c) == 0 &&
        c->spec != NULL && c->spec->has_snapshot_interval)
        n = c->spec->snapshot_interval;
    proto_free(c);
    store_read_end(r);
    return n;
}

/* A one-manager cluster: this node is the only voter. Stores of earlier
 * builds, written without raft, are converted on the first start. */
static int open_raft(struct node_daemon *nd, struct swm_err *err)
{
    struct raft_server self = {.id = raft_id_of(nd->node_id), .role = RAFT_VOTER};
    struct raft_configuration conf = {.servers = &self, .n_servers = 1};
    struct raft_node_options ro = {.id = self.id,
                                   .bootstrap = &conf,
                                   .snapshot_threshold = snapshot_interval(nd),
                                   .on_leadership = on_leadership,
                                   .on_leadership_arg = nd};
    return raft_node_open(&nd->loop, nd->store, &ro, NULL, &nd->raft, err);
}

/* The control plane and the agent start once the raft node has replayed
 * the log and leads: the store then holds everything committed, so the
 * dispatcher knows this node before its agent registers. */
static int open_components(struct node_daemon *nd, struct swm_err *err)
{
    const struct daemon_opts *o = nd->opts;
    char path[PATH_MAX], host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    struct store_log *log = raft_node_log(nd->raft);
    int rc = controlapi_open(nd->store, log, nd->node_id, data_dir(o), &nd->controlapi);
    if (rc < 0)
        swm_err_set(err, rc, "control API: %s", swm_strerror(rc));
    if (rc == 0 && (rc = dispatcher_open(&nd->loop, nd->store, log,
                                         manager_heartbeat_period(nd->store), &nd->dispatcher)) < 0)
        swm_err_set(err, rc, "dispatcher: %s", swm_strerror(rc));
    if (rc == 0)
        rc = manager_open(&nd->loop, nd->store, log, &nd->manager, err);
    if (rc == 0)
        rc = store_watch(nd->store, dispatcher_on_store_events, nd->dispatcher);
    struct agent_opts ao = {.loop = &nd->loop,
                            .node_id = nd->node_id,
                            .hostname = host,
                            .data_dir = data_dir(o),
                            .run_dir = run_dir(o),
                            .self_exe = o->self_exe};
    if (rc == 0)
        rc = agent_open(&ao, &nd->agent, err);
    if (rc == 0 && (rc = daemon__link_open(nd, &nd->link)) < 0)
        swm_err_set(err, rc, "agent session: %s", swm_strerror(rc));
    path_in(path, sizeof(path), run_dir(o), "swarmc.sock");
    if (rc == 0)
        rc = daemon__api_open(nd, path, &nd->api, err);
    return rc;
}

static void on_leadership(void *arg, bool leader, uint64_t leader_id)
{
    struct node_daemon *nd = arg;
    if (!leader || nd->started || nd->stopping)
        return;
    nd->started = 1;
    int rc = open_components(nd, &nd->start_err);
    if (rc < 0) {
        swm_log_error("daemon: cannot start: %s", nd->start_err.msg);
        daemon__stop(nd, 0);
        return;
    }
    swm_log_info("daemon: started node=%s data_dir=%s", nd->node_id, data_dir(nd->opts));
}

static int open_state(struct node_daemon *nd, struct swm_err *err)
{
    char path[PATH_MAX];
    path_in(path, sizeof(path), data_dir(nd->opts), "state");
    int rc = store_open(path, &nd->store, err);
    if (rc == 0)
        rc = open_raft(nd, err);
    return rc;
}

/* Holds an exclusive lock on the data dir for the daemon's lifetime: two
 * daemons on one store would corrupt each other's view. */
static int lock_data_dir(const char *dir, struct swm_err *err)
{
    char path[PATH_MAX];
    path_in(path, sizeof(path), dir, "daemon.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return swm_err_set(err, -errno, "opening %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return swm_err_set(err, -EBUSY, "another swarmc daemon is running on %s", dir);
    }
    return fd; /* stays open (and locked) until exit */
}

static int run_daemon(const struct daemon_opts *o, struct swm_err *err)
{
    struct node_daemon nd = {.opts = o};
    int rc = read_node_id(data_dir(o), nd.node_id, err);
    if (rc == 0)
        rc = check_certificates(data_dir(o), nd.node_id, err);
    int lock_fd = rc == 0 ? lock_data_dir(data_dir(o), err) : rc;
    if (lock_fd < 0)
        return lock_fd;
    if ((rc = swm_mkdir_p(run_dir(o), 0700)) < 0)
        return swm_err_set(err, rc, "creating %s: %s", run_dir(o), swm_strerror(rc));
    uv_loop_init(&nd.loop);
    uv_signal_init(&nd.loop, &nd.sigterm);
    uv_signal_init(&nd.loop, &nd.sigint);
    nd.sigterm.data = nd.sigint.data = &nd;
    uv_signal_start(&nd.sigterm, on_signal, SIGTERM);
    uv_signal_start(&nd.sigint, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    rc = open_state(&nd, err);
    if (rc == 0) {
        uv_run(&nd.loop, UV_RUN_DEFAULT);
        if ((rc = nd.start_err.code) < 0)
            *err = nd.start_err;
    } else {
        swm_log_error("daemon: cannot start: %s", err->msg);
        shutdown_components(&nd);
    }
    uv_walk(&nd.loop, close_walk, NULL);
    uv_run(&nd.loop, UV_RUN_DEFAULT);
    uv_loop_close(&nd.loop);
    store_close(nd.store);
    if (rc == 0 && nd.leaving) {
        swm_log_info("daemon: left the swarm; removing %s", data_dir(o));
        daemon__wipe_state(o);
    }
    close(lock_fd);
    return rc;
}

void daemon__wipe_state(const struct daemon_opts *o)
{
    const char *dir = data_dir(o);
    static const char *const entries[] = {"state",      "images",       "containers", "node_id",
                                          "swarmc.log", "certificates", "daemon.lock"};
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        char path[PATH_MAX];
        path_in(path, sizeof(path), dir, entries[i]);
        int rc = swm_remove_tree(path);
        if (rc < 0)
            swm_log_warn("daemon: removing %s: %s", path, swm_strerror(rc));
    }
}

/* ------------------------------------------------------ init and start -- */

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
static int bootstrap_entry(const struct daemon_opts *o, const char *node_id, const char *cluster_id,
                           Swarmc__RootCA *root_ca, Swarmc__StoreEntry **out)
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
    nstatus.addr = (char *)(o->advertise_addr != NULL ? o->advertise_addr : "127.0.0.1");
    mstatus.has_leader = mstatus.leader = 1;
    mstatus.has_raft_id = 1;
    mstatus.raft_id = raft_id_of(node_id);
    mstatus.reachability = "reachable";
    mstatus.addr = (char *)(o->listen_addr != NULL ? o->listen_addr : "0.0.0.0:2377");
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

/* Creates the node's state: its id, the cluster's CA with this node's
 * manager certificate and key (<data-dir>/certificates), and the cluster's
 * first raft log entries (this node as the only voter, then the bootstrap
 * entry, which carries the CA), which the daemon applies when it starts.
 * node_id is written last: it marks a complete state. */
static int create_state(const struct daemon_opts *o, char node_id[SWM_ID_LEN + 1],
                        struct swm_err *err)
{
    const char *dir = data_dir(o);
    char path[PATH_MAX], cluster_id[SWM_ID_LEN + 1];
    path_in(path, sizeof(path), dir, "node_id");
    if (access(path, F_OK) == 0)
        return swm_err_set(err, SWM_EEXISTS,
                           "This node is already part of a swarm. Use \"swarmc leave\" to leave "
                           "this swarm and join another one.");
    int rc = swm_mkdir_p(dir, 0700);
    if (rc < 0)
        return swm_err_set(err, rc, "creating %s: %s", dir, swm_strerror(rc));
    if (swm_id_new(node_id) < 0 || swm_id_new(cluster_id) < 0)
        return swm_err_set(err, -EIO, "no randomness for ids");
    struct store *s = NULL;
    Swarmc__StoreEntry *entry = NULL;
    Swarmc__RootCA *root_ca = NULL;
    struct raft_server self = {.id = raft_id_of(node_id), .role = RAFT_VOTER};
    struct raft_configuration conf = {.servers = &self, .n_servers = 1};
    path_in(path, sizeof(path), dir, "state");
    rc = store_open(path, &s, err);
    if (rc == 0 && store_applied_index(s) != 0)
        rc = swm_err_set(err, SWM_EEXISTS, "%s already holds cluster state", path);
    if (rc == 0)
        rc = casvc_root_create(&root_ca, err);
    path_in(path, sizeof(path), dir, "certificates");
    if (rc == 0)
        rc = casvc_init_node(root_ca, path, cluster_id, node_id, swm_now_ns(), o->cert_expiry_ns,
                             err);
    if (rc == 0 && (rc = bootstrap_entry(o, node_id, cluster_id, root_ca, &entry)) < 0)
        swm_err_set(err, rc, "out of memory");
    if (rc == 0)
        rc = store_raft_bootstrap(s, &conf, entry, err);
    casvc_root_redact(root_ca);
    proto_free(root_ca);
    /* The key stays in the log and the store; no other copy outlives this. */
    if (entry != NULL && entry->n_actions > 0 && entry->actions[0]->cluster != NULL)
        casvc_root_redact(entry->actions[0]->cluster->root_ca);
    proto_free(entry);
    store_close(s);
    path_in(path, sizeof(path), dir, "node_id");
    if (rc == 0 && (rc = swm_write_file_atomic(path, node_id, SWM_ID_LEN, 0600)) < 0)
        swm_err_set(err, rc, "writing %s: %s", path, swm_strerror(rc));
    return rc;
}

static int socket_ready(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int apply_log_level(const struct daemon_opts *o, struct swm_err *err)
{
    enum swm_log_level level = SWM_LOG_INFO;
    if (o->log_level != NULL && swm_log_parse_level(o->log_level, &level) < 0)
        return swm_err_set(err, -EINVAL, "invalid log level \"%s\"", o->log_level);
    swm_log_set_level(level);
    return 0;
}

/* Forks the daemon into the background with its log in the data dir and
 * waits until its control socket answers (or it dies). */
static int detach_and_wait(const struct daemon_opts *o, struct swm_err *err)
{
    char log_path[PATH_MAX], sock[PATH_MAX];
    path_in(log_path, sizeof(log_path), data_dir(o), "swarmc.log");
    path_in(sock, sizeof(sock), run_dir(o), "swarmc.sock");
    pid_t pid = fork();
    if (pid < 0)
        return swm_err_set(err, -errno, "fork: %s", strerror(errno));
    if (pid == 0) {
        setsid();
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        if (logfd >= 0) {
            dup2(logfd, STDOUT_FILENO);
            dup2(logfd, STDERR_FILENO);
        }
        struct swm_err child_err = {0};
        _exit(run_daemon(o, &child_err) < 0 ? 1 : 0);
    }
    for (int i = 0; i < 300; i++) { /* up to 30 s */
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return swm_err_set(err, -EIO, "the daemon exited during start-up; see %s", log_path);
        if (socket_ready(sock))
            return 0;
        usleep(100 * 1000);
    }
    return swm_err_set(err, -ETIMEDOUT, "the daemon did not start within 30s; see %s", log_path);
}

int daemon_start(const struct daemon_opts *opts, struct swm_err *err)
{
    int rc = apply_log_level(opts, err);
    if (rc < 0)
        return rc;
    char id[SWM_ID_LEN + 1];
    if ((rc = read_node_id(data_dir(opts), id, err)) < 0)
        return rc;
    /* Here too, before detaching: the user sees what is wrong at once. */
    if ((rc = check_certificates(data_dir(opts), id, err)) < 0)
        return rc;
    if (opts->foreground)
        return run_daemon(opts, err);
    return detach_and_wait(opts, err);
}

int daemon_init(const struct daemon_opts *opts, char node_id[26], struct swm_err *err)
{
    int rc = apply_log_level(opts, err);
    if (rc == 0 && opts->force_new_cluster)
        rc = swm_err_set(err, SWM_ENOTSUP,
                         "--force-new-cluster is not yet supported: it arrives with multi-node "
                         "clusters");
    if (rc == 0)
        rc = create_state(opts, node_id, err);
    if (rc < 0)
        return rc;
    if (opts->foreground)
        return run_daemon(opts, err);
    return detach_and_wait(opts, err);
}
