#include "daemon/daemon.h"

#include "common/alloc.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/internal.h"
#include "manager/ca/ca.h"
#include "net/identity/files.h"
#include "net/transport/conn.h"
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

const char *daemon__data_dir(const struct daemon_opts *o)
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

/* Loads the node's key material from <data-dir>/certificates (written by
 * init or join) and its node.conf: a damaged or missing file stops the
 * start with the file's name and what is wrong. A data dir from a swarmc
 * without a CA has no certificates and starts as a lone manager without a
 * cluster port. */
static int load_identity(struct node_daemon *nd, struct swm_err *err)
{
    char path[PATH_MAX];
    struct stat st;
    const char *dir = daemon__data_dir(nd->opts);
    int rc = node_conf_load(dir, &nd->conf, err);
    if (rc < 0)
        return rc;
    path_in(path, sizeof(path), dir, "certificates");
    if (stat(path, &st) < 0 && errno == ENOENT) {
        swm_log_warn("daemon: %s is missing: this node was made by a swarmc without a "
                     "certificate authority",
                     path);
        return 0;
    }
    if ((rc = ca_node_files_load(path, nd->node_id, &nd->identity, err)) < 0)
        return rc;
    nd->has_identity = true;
    nd->worker = nd->identity.cert.role == CA_ROLE_WORKER;
    if (swm_now_ns() >= nd->identity.cert.not_after)
        swm_log_warn("daemon: this node's certificate expired (it was not renewed in time): "
                     "other nodes refuse it; leave the swarm and join again");
    return 0;
}

int64_t daemon__wall_clock(void *arg)
{
    return swm_now_ns();
}

int daemon__dial_manager(struct node_daemon *nd, const char *addr,
                         const struct chan_conn_callbacks *cbs, struct chan_conn **out,
                         struct swm_err *err)
{
    struct chan_config cfg = {.side = CHAN_INITIATOR,
                              .identity = &nd->identity.key,
                              .cert = &nd->identity.cert,
                              .root_pk = nd->identity.root_pk,
                              .peer_roles = CA_ROLE_BIT(CA_ROLE_MANAGER),
                              .wall_clock = daemon__wall_clock};
    return chan_conn_connect(&nd->loop, addr, &cfg, NULL, cbs, out, err);
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

static void close_leader_components(struct node_daemon *nd);

static void shutdown_components(struct node_daemon *nd)
{
    daemon__api_close(nd->api);
    nd->api = NULL;
    daemon__session_close(nd->session);
    nd->session = NULL;
    daemon__renewal_close(nd->renewal);
    nd->renewal = NULL;
    /* The log before the leader components: its writes still in flight
     * are answered later, and their owners (control API, dispatcher) wait
     * for that before they free themselves. */
    daemon__managers_close(nd);
    daemon__serve_close(nd->server);
    nd->server = NULL;
    close_leader_components(nd);
    agent_close(nd->agent);
    nd->agent = NULL;
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

static void on_leadership(void *arg, bool leader, uint64_t leader_id);

/* A worker keeps the managers it was told of in node.conf: after a
 * restart, or when the manager it joined through is gone, it dials them. */
static void on_managers(void *arg, const char *const *addrs, size_t n)
{
    struct node_daemon *nd = arg;
    struct node_conf conf = nd->conf;
    struct swm_err err = {0};
    /* Added to those known, never replacing them: the address the node
     * joined through works from here, a manager's 127.0.0.1 (no
     * --advertise-addr) may not. */
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage sa;
        if (strlen(addrs[i]) < SWM_ADDR_STRLEN && swm_addr_parse(addrs[i], &sa) == 0)
            node_conf_add_manager(&conf, addrs[i]);
    }
    if (!nd->worker || conf.n_managers == nd->conf.n_managers)
        return;
    nd->conf = conf;
    if (node_conf_save(daemon__data_dir(nd->opts), &conf, &err) < 0)
        swm_log_warn("daemon: %s", err.msg);
}

static int open_agent(struct node_daemon *nd, struct swm_err *err)
{
    const struct daemon_opts *o = nd->opts;
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    const char *avail = nd->conf.availability;
    struct agent_opts ao = {
        .loop = &nd->loop,
        .node_id = nd->node_id,
        .hostname = host,
        .data_dir = daemon__data_dir(o),
        .run_dir = run_dir(o),
        .self_exe = o->self_exe,
        .has_join_availability = avail[0] != '\0',
        .on_managers = on_managers,
        .on_managers_arg = nd,
        .join_availability =
            strcmp(avail, "drain") == 0   ? SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN
            : strcmp(avail, "pause") == 0 ? SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE
                                          : SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE,
    };
    return agent_open(&ao, &nd->agent, err);
}

static int open_api(struct node_daemon *nd, struct swm_err *err)
{
    char path[PATH_MAX];
    path_in(path, sizeof(path), run_dir(nd->opts), "swarmc.sock");
    return daemon__api_open(nd, path, &nd->api, err);
}

/* The leader's components: the control API, the dispatcher and the
 * reconcile loop, and the cluster port's joins and agent sessions. They run
 * while this manager leads: the store then holds everything committed. */
static int open_leader_components(struct node_daemon *nd, struct swm_err *err)
{
    struct store_log *log = raft_node_log(nd->raft);
    int rc =
        controlapi_open(nd->store, log, nd->node_id, daemon__data_dir(nd->opts), &nd->controlapi);
    if (rc < 0)
        swm_err_set(err, rc, "control API: %s", swm_strerror(rc));
    if (rc == 0 && (rc = dispatcher_open(&nd->loop, nd->store, log,
                                         manager_heartbeat_period(nd->store), &nd->dispatcher)) < 0)
        swm_err_set(err, rc, "dispatcher: %s", swm_strerror(rc));
    if (rc == 0)
        rc = manager_open(&nd->loop, nd->store, log, &nd->manager, err);
    if (rc == 0 && (rc = store_watch(nd->store, dispatcher_on_store_events, nd->dispatcher)) < 0)
        swm_err_set(err, rc, "watching the store: %s", swm_strerror(rc));
    if (rc == 0 && nd->server != NULL)
        rc = daemon__serve_lead(nd->server, err);
    if (rc == 0)
        daemon__managers_record_leader(nd);
    return rc;
}

/* Leadership lost (or the daemon stops): agents reconnect to the new
 * leader, and writes in flight are answered by the log. */
static void close_leader_components(struct node_daemon *nd)
{
    daemon__serve_follow(nd->server);
    if (nd->dispatcher != NULL)
        store_unwatch(nd->store, dispatcher_on_store_events, nd->dispatcher);
    manager_close(nd->manager);
    nd->manager = NULL;
    dispatcher_close(nd->dispatcher);
    nd->dispatcher = NULL;
    controlapi_close(nd->controlapi);
    nd->controlapi = NULL;
}

/* What runs on every node once its state is known: the agent and its
 * session with the leader, and the control socket. A manager opens them
 * when it first knows a leader (the store has then replayed the log). */
static int open_node_components(struct node_daemon *nd, struct swm_err *err)
{
    int rc = open_agent(nd, err);
    if (rc == 0)
        rc = daemon__session_open(nd, &nd->session, err);
    if (rc == 0 && nd->has_identity)
        rc = daemon__renewal_open(nd, &nd->renewal, err);
    if (rc == 0)
        rc = open_api(nd, err);
    if (rc == 0)
        swm_log_info("daemon: started %s node=%s data_dir=%s", nd->worker ? "worker" : "manager",
                     nd->node_id, daemon__data_dir(nd->opts));
    return rc;
}

static void on_leadership(void *arg, bool leader, uint64_t leader_id)
{
    struct node_daemon *nd = arg;
    int rc = 0;
    if (nd->stopping)
        return;
    if (!nd->started && leader_id != 0) {
        nd->started = 1;
        rc = open_node_components(nd, &nd->start_err);
    }
    if (rc == 0 && leader && !nd->leading) {
        nd->leading = 1;
        rc = open_leader_components(nd, &nd->start_err);
        swm_log_info("daemon: leading the swarm");
    } else if (rc == 0 && !leader && nd->leading) {
        nd->leading = 0;
        close_leader_components(nd);
        swm_log_info("daemon: no longer leading the swarm");
    }
    if (rc < 0) {
        swm_log_error("daemon: cannot start: %s", nd->start_err.msg);
        daemon__stop(nd, 0);
    }
}

static int open_state(struct node_daemon *nd, struct swm_err *err)
{
    char path[PATH_MAX];
    if (nd->worker)
        return open_node_components(nd, err);
    path_in(path, sizeof(path), daemon__data_dir(nd->opts), "state");
    int rc = store_open(path, &nd->store, err);
    if (rc == 0 && nd->has_identity)
        rc = daemon__serve_open(nd, &nd->server, err);
    if (rc == 0)
        rc = daemon__managers_open(nd, on_leadership, err);
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
    int rc = read_node_id(daemon__data_dir(o), nd.node_id, err);
    if (rc == 0)
        rc = load_identity(&nd, err);
    int lock_fd = rc == 0 ? lock_data_dir(daemon__data_dir(o), err) : rc;
    if (lock_fd < 0) {
        ca_node_files_wipe(&nd.identity);
        return lock_fd;
    }
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
    ca_node_files_wipe(&nd.identity);
    if (rc == 0 && nd.leaving) {
        swm_log_info("daemon: left the swarm; removing %s", daemon__data_dir(o));
        daemon__wipe_state(o);
    }
    close(lock_fd);
    return rc;
}

void daemon__wipe_state(const struct daemon_opts *o)
{
    const char *dir = daemon__data_dir(o);
    static const char *const entries[] = {"state",       "images",     "containers",
                                          "node_id",     "swarmc.log", "certificates",
                                          NODECONF_FILE, "daemon.lock"};
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        char path[PATH_MAX];
        path_in(path, sizeof(path), dir, entries[i]);
        int rc = swm_remove_tree(path);
        if (rc < 0)
            swm_log_warn("daemon: removing %s: %s", path, swm_strerror(rc));
    }
}

/* ------------------------------------------------------ init and start -- */

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
    path_in(log_path, sizeof(log_path), daemon__data_dir(o), "swarmc.log");
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
    if ((rc = read_node_id(daemon__data_dir(opts), id, err)) < 0)
        return rc;
    /* Here too, before detaching: the user sees what is wrong at once. */
    struct node_daemon probe = {.opts = opts};
    snprintf(probe.node_id, sizeof(probe.node_id), "%s", id);
    rc = load_identity(&probe, err);
    ca_node_files_wipe(&probe.identity);
    if (rc < 0)
        return rc;
    if (opts->foreground)
        return run_daemon(opts, err);
    return detach_and_wait(opts, err);
}

/* `init --force-new-cluster`: this manager's state becomes a one-manager
 * swarm (store_raft_force_new_cluster), with the daemon stopped. */
static int force_new_cluster(const struct daemon_opts *o, char node_id[SWM_ID_LEN + 1],
                             struct swm_err *err)
{
    char path[PATH_MAX];
    struct node_daemon probe = {.opts = o};
    struct store *s = NULL;
    int rc = read_node_id(daemon__data_dir(o), node_id, err);
    snprintf(probe.node_id, sizeof(probe.node_id), "%s", node_id);
    if (rc == 0)
        rc = load_identity(&probe, err);
    ca_node_files_wipe(&probe.identity);
    if (rc == 0 && probe.worker)
        rc = swm_err_set(err, -EPERM,
                         "--force-new-cluster needs a manager's state: this node is a worker");
    int lock_fd = rc == 0 ? lock_data_dir(daemon__data_dir(o), err) : rc;
    if (lock_fd < 0)
        return lock_fd;
    path_in(path, sizeof(path), daemon__data_dir(o), "state");
    rc = store_open(path, &s, err);
    if (rc == 0)
        rc = store_raft_force_new_cluster(s, daemon__raft_id(node_id), err);
    store_close(s);
    close(lock_fd);
    if (rc == 0)
        swm_log_info("daemon: forced a new cluster: node %s is its only manager", node_id);
    return rc;
}

int daemon_init(const struct daemon_opts *opts, char node_id[26], struct swm_err *err)
{
    int rc = apply_log_level(opts, err);
    if (rc == 0 && opts->force_new_cluster)
        rc = force_new_cluster(opts, node_id, err);
    else if (rc == 0)
        rc = daemon__create_state(opts, node_id, err);
    if (rc < 0)
        return rc;
    if (opts->foreground)
        return run_daemon(opts, err);
    return detach_and_wait(opts, err);
}

int daemon_join(const struct daemon_opts *opts, const char *token, const char *remote,
                char node_id[26], bool *manager, struct swm_err *err)
{
    int rc = apply_log_level(opts, err);
    if (rc == 0)
        rc = daemon__join_state(opts, token, remote, node_id, manager, err);
    if (rc < 0)
        return rc;
    if (opts->foreground)
        return run_daemon(opts, err);
    return detach_and_wait(opts, err);
}
