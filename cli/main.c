/* swarmc: one binary for the node daemon, its container shims and the
 * command line (DESIGN.md §2). The command table below is the whole CLI;
 * each group's subcommands live in their own file (service.c, node.c,
 * image.c, cluster.c). The daemon and the executor are linked in when they
 * are built (SWARMC_HAVE_DAEMON, SWARMC_HAVE_EXECUTOR); without them
 * init/daemon/shim say so and every client command still works. */
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"

#ifdef SWARMC_HAVE_DAEMON
#include "daemon/daemon.h"
#endif
#ifdef SWARMC_HAVE_EXECUTOR
#include "agent/executor/executor.h"
#endif

static const struct cli_hooks hooks = {
#ifdef SWARMC_HAVE_DAEMON
    .daemon_init = daemon_init,
    .daemon_start = daemon_start,
    .daemon_join = daemon_join,
#endif
};

static const struct cli_cmd commands[] = {
    {"init", NULL, "[OPTIONS]", "Initialize a swarm and start this node's daemon", cli_init_flags,
     0, 0, 0, cli_cluster_init, NULL},
    {"join", NULL, "[OPTIONS] HOST:PORT", "Join a swarm as a node and start its daemon",
     cli_join_flags, 1, 1, 0, cli_cluster_join, NULL},
    {"daemon", NULL, "[OPTIONS]", "Start this node's daemon from its existing state",
     cli_daemon_flags, 0, 0, 0, cli_cluster_daemon, NULL},
    {"leave", NULL, "[OPTIONS]", "Leave the swarm", cli_leave_flags, 0, 0, 0, cli_cluster_leave,
     NULL},
    {"join-token", NULL, "[OPTIONS] (worker|manager)", "Manage join tokens", cli_join_token_flags,
     1, 1, 0, cli_cluster_join_token, NULL},
    {"info", NULL, "[OPTIONS]", "Display system-wide information", cli_info_flags, 0, 0, 0,
     cli_cluster_info, NULL},
    {"version", NULL, NULL, "Show the swarmc version information", NULL, 0, 0, 0,
     cli_cluster_version, NULL},
    {"node", NULL, NULL, "Manage swarm nodes", NULL, 0, -1, 0, NULL, cli_node_cmds},
    {"service", NULL, NULL, "Manage swarm services", NULL, 0, -1, 0, NULL, cli_service_cmds},
    {"image", NULL, NULL, "Manage images", NULL, 0, -1, 0, NULL, cli_image_cmds},
    {0},
};

static const struct cli_flag *const global_flags[] = {cli_global_flags, NULL};

static const struct cli_cmd root = {
    "swarmc",
    NULL,
    "[OPTIONS] COMMAND",
    "A Swarm-style container orchestrator",
    global_flags,
    0,
    -1,
    0,
    cli_global_setup,
    commands,
};

int main(int argc, char **argv)
{
#ifdef SWARMC_HAVE_EXECUTOR
    /* `swarmc shim ...` is the per-container supervisor the executor starts:
     * dispatched before any CLI set-up, as it must stay small and fast. */
    if (argc > 1 && strcmp(argv[1], "shim") == 0)
        return exec_shim_main(argc - 1, argv + 1);
#endif
    struct cli_ctx ctx;
    cli_json_setup();
    cli_ctx_init(&ctx, stdout, stderr);
    ctx.hooks = &hooks;
    return cli_main(&ctx, &root, argc - 1, argv + 1);
}
