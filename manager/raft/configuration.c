/* Membership helpers (thesis §4). */
#include <errno.h>
#include <string.h>

#include "common/alloc.h"
#include "manager/raft/raft.h"

void raft_configuration_free(struct raft_configuration *c)
{
    if (c == NULL)
        return;
    swm_free(c->servers);
    swm_free(c->removed);
    memset(c, 0, sizeof(*c));
}

int raft_configuration_copy(struct raft_configuration *dst, const struct raft_configuration *src)
{
    struct raft_configuration c = {0};
    if (src->n_servers > 0) {
        c.servers = swm_malloc(src->n_servers * sizeof(*c.servers));
        if (c.servers == NULL)
            goto oom;
        memcpy(c.servers, src->servers, src->n_servers * sizeof(*c.servers));
        c.n_servers = src->n_servers;
    }
    if (src->n_removed > 0) {
        c.removed = swm_malloc(src->n_removed * sizeof(*c.removed));
        if (c.removed == NULL)
            goto oom;
        memcpy(c.removed, src->removed, src->n_removed * sizeof(*c.removed));
        c.n_removed = src->n_removed;
    }
    *dst = c;
    return 0;
oom:
    raft_configuration_free(&c);
    return -ENOMEM;
}

const struct raft_server *raft_configuration_get(const struct raft_configuration *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_servers; i++)
        if (c->servers[i].id == id)
            return &c->servers[i];
    return NULL;
}

bool raft_configuration_is_removed(const struct raft_configuration *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_removed; i++)
        if (c->removed[i] == id)
            return true;
    return false;
}

size_t raft_configuration_voters(const struct raft_configuration *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_servers; i++)
        n += c->servers[i].role == RAFT_VOTER;
    return n;
}
