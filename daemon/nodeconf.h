/* The node's own settings, kept next to its state in <data-dir>/node.conf
 * (docs/operations.md "Files"): what `swarmc init` and `swarmc
 * join` were told (listen and advertise addresses, the availability to
 * join with) and the managers a worker dials. The cluster's settings live
 * in the replicated store instead; these are the ones a node needs before
 * it can reach any store.
 *
 * One setting per line, "name value"; blank lines and lines starting with
 * '#' are ignored; "manager" may repeat. */
#ifndef SWM_DAEMON_NODECONF_H
#define SWM_DAEMON_NODECONF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/netaddr.h"

#define NODECONF_MAX_MANAGERS 16
#define NODECONF_FILE "node.conf"

struct node_conf {
    char listen_addr[SWM_ADDR_STRLEN];    /* "a.b.c.d:port"; "" = 0.0.0.0:2377 */
    char advertise_addr[SWM_ADDR_STRLEN]; /* "" = not given */
    char availability[8];                 /* "active" | "pause" | "drain" | "" */
    char managers[NODECONF_MAX_MANAGERS][SWM_ADDR_STRLEN];
    size_t n_managers;
};

/* Reads <dir>/node.conf into *out (zeroed first). A missing file is an
 * empty configuration (a node made before the file existed). Returns 0, or
 * -errno / SWM_ECORRUPT with err naming the file, the line and what is
 * wrong. */
int node_conf_load(const char *dir, struct node_conf *out, struct swm_err *err);

/* Writes c to <dir>/node.conf atomically and durably. Returns 0 or -errno
 * with err set. */
int node_conf_save(const char *dir, const struct node_conf *c, struct swm_err *err);

/* Adds a manager address unless present. Returns 0, or -ENOSPC when the
 * list is full. */
int node_conf_add_manager(struct node_conf *c, const char *addr);

#endif
