/* Wire forms of raft messages and configurations (proto/raft.proto). Every
 * decoded field is checked against what the core relies on, so a peer's
 * bytes can produce an error but never a crash or a broken invariant. The
 * same checks guard encoding, so we never send what we would refuse. */
#include <errno.h>
#include <string.h>

#include "common/alloc.h"
#include "manager/raft/raft.h"
#include "proto/codec.h"
#include "proto/raft.pb-c.h"

/* Bounds well past any real cluster, low enough that a hostile count
 * cannot make us allocate without limit. */
#define MAX_SERVERS 4096
#define MAX_REMOVED 65536
#define MAX_ENTRIES (1u << 20)

/* --- validation --------------------------------------------------------- */

static int check_conf(const struct raft_configuration *c, struct swm_err *err)
{
    if (c->n_servers > MAX_SERVERS || c->n_removed > MAX_REMOVED)
        return swm_err_set(err, SWM_EPROTO, "configuration too large (%zu servers, %zu removed)",
                           c->n_servers, c->n_removed);
    for (size_t i = 0; i < c->n_servers; i++) {
        const struct raft_server *s = &c->servers[i];
        if (s->id == 0)
            return swm_err_set(err, SWM_EPROTO, "configuration server %zu has id 0", i);
        if (s->role != RAFT_VOTER && s->role != RAFT_LEARNER)
            return swm_err_set(err, SWM_EPROTO, "server %llu has bad role %d",
                               (unsigned long long)s->id, (int)s->role);
        for (size_t j = 0; j < i; j++)
            if (c->servers[j].id == s->id)
                return swm_err_set(err, SWM_EPROTO, "server %llu listed twice",
                                   (unsigned long long)s->id);
        if (raft_configuration_is_removed(c, s->id))
            return swm_err_set(err, SWM_EPROTO, "server %llu is both member and removed",
                               (unsigned long long)s->id);
    }
    for (size_t i = 0; i < c->n_removed; i++)
        if (c->removed[i] == 0)
            return swm_err_set(err, SWM_EPROTO, "removed id 0");
    return 0;
}

static bool is_response(enum raft_message_type t)
{
    return t == RAFT_MSG_PREVOTE_RESP || t == RAFT_MSG_VOTE_RESP || t == RAFT_MSG_APPEND_RESP ||
           t == RAFT_MSG_HEARTBEAT_RESP || t == RAFT_MSG_SNAPSHOT_RESP;
}

static int check_message(const struct raft_message *m, struct swm_err *err)
{
    enum raft_message_type t = m->type;
    if (t < 1 || t > RAFT_MSG_TYPE_MAX)
        return swm_err_set(err, SWM_EPROTO, "raft message of unknown type %d", (int)t);
    const char *name = raft_message_type_name(t);
    if (m->from == 0 || m->to == 0 || m->from == m->to)
        return swm_err_set(err, SWM_EPROTO, "%s from %llu to %llu", name,
                           (unsigned long long)m->from, (unsigned long long)m->to);
    if (m->term == 0)
        return swm_err_set(err, SWM_EPROTO, "%s without a term", name);
    if (m->reject && !is_response(t))
        return swm_err_set(err, SWM_EPROTO, "%s cannot reject", name);
    if ((t == RAFT_MSG_VOTE || t == RAFT_MSG_PREVOTE || t == RAFT_MSG_APPEND) &&
        m->log_term > m->term)
        return swm_err_set(err, SWM_EPROTO, "%s log term %llu above term %llu", name,
                           (unsigned long long)m->log_term, (unsigned long long)m->term);
    if (t == RAFT_MSG_VOTE && m->context > RAFT_CAMPAIGN_TRANSFER)
        return swm_err_set(err, SWM_EPROTO, "vote with bad context");
    if (t == RAFT_MSG_APPEND_RESP && m->reject && m->reject_hint > m->index)
        return swm_err_set(err, SWM_EPROTO, "append-resp hint %llu past rejected index %llu",
                           (unsigned long long)m->reject_hint, (unsigned long long)m->index);
    if (m->n_entries > 0 && t != RAFT_MSG_APPEND)
        return swm_err_set(err, SWM_EPROTO, "%s carries entries", name);
    if (m->n_entries > MAX_ENTRIES)
        return swm_err_set(err, SWM_EPROTO, "append with %zu entries", m->n_entries);
    uint64_t prev_term = m->log_term;
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->index != m->index + 1 + i)
            return swm_err_set(err, SWM_EPROTO, "append entry %zu has index %llu, want %llu", i,
                               (unsigned long long)e->index,
                               (unsigned long long)(m->index + 1 + i));
        if (e->term < prev_term || e->term == 0 || e->term > m->term)
            return swm_err_set(err, SWM_EPROTO, "append entry %llu has term %llu out of order",
                               (unsigned long long)e->index, (unsigned long long)e->term);
        if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_CONF)
            return swm_err_set(err, SWM_EPROTO, "append entry %llu has bad type %d",
                               (unsigned long long)e->index, (int)e->type);
        if ((e->data == NULL) != (e->len == 0))
            return swm_err_set(err, SWM_EPROTO, "append entry %llu data/len mismatch",
                               (unsigned long long)e->index);
        prev_term = e->term;
    }
    if (m->index > UINT64_MAX - m->n_entries)
        return swm_err_set(err, SWM_EPROTO, "append index overflows");
    bool snap = t == RAFT_MSG_SNAPSHOT || t == RAFT_MSG_SNAPSHOT_RESP;
    if (!snap && (m->snapshot.index || m->snapshot.term || m->snap_offset || m->done))
        return swm_err_set(err, SWM_EPROTO, "%s carries snapshot fields", name);
    if (snap && (m->snapshot.index == 0 || m->snapshot.term == 0 || m->snapshot.term > m->term))
        return swm_err_set(err, SWM_EPROTO, "%s without a valid snapshot index/term", name);
    if ((m->data == NULL) != (m->len == 0))
        return swm_err_set(err, SWM_EPROTO, "%s data/len mismatch", name);
    if (m->len > 0 && t != RAFT_MSG_SNAPSHOT)
        return swm_err_set(err, SWM_EPROTO, "%s carries data", name);
    if (m->snap_offset > UINT64_MAX - m->len)
        return swm_err_set(err, SWM_EPROTO, "snapshot chunk offset overflows");
    bool has_conf = m->snapshot.conf.n_servers > 0 || m->snapshot.conf.n_removed > 0;
    if (has_conf && !(t == RAFT_MSG_SNAPSHOT && m->done))
        return swm_err_set(err, SWM_EPROTO, "%s carries a configuration", name);
    if (m->done && t != RAFT_MSG_SNAPSHOT)
        return swm_err_set(err, SWM_EPROTO, "%s marked done", name);
    if (t == RAFT_MSG_SNAPSHOT && m->done && m->snapshot.conf.n_servers == 0)
        return swm_err_set(err, SWM_EPROTO, "last snapshot chunk without a configuration");
    if (has_conf) {
        int rc = check_conf(&m->snapshot.conf, err);
        if (rc < 0)
            return swm_err_wrap(err, rc, "snapshot");
    }
    return 0;
}

/* --- configuration ------------------------------------------------------ */

/* Fills pb (whose arrays the caller frees with free_pb_conf). */
static int conf_to_pb(const struct raft_configuration *c, Swarmc__RaftConfiguration *pb,
                      Swarmc__RaftServer **servers_out)
{
    swarmc__raft_configuration__init(pb);
    *servers_out = NULL;
    Swarmc__RaftServer *servers = NULL;
    Swarmc__RaftServer **ptrs = NULL;
    if (c->n_servers > 0) {
        servers = swm_calloc(c->n_servers, sizeof(*servers));
        ptrs = swm_calloc(c->n_servers, sizeof(*ptrs));
        if (servers == NULL || ptrs == NULL) {
            swm_free(servers);
            swm_free(ptrs);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < c->n_servers; i++) {
        swarmc__raft_server__init(&servers[i]);
        servers[i].has_id = true;
        servers[i].id = c->servers[i].id;
        servers[i].has_role = true;
        servers[i].role = (Swarmc__RaftServer__Role)c->servers[i].role;
        ptrs[i] = &servers[i];
    }
    pb->n_servers = c->n_servers;
    pb->servers = ptrs;
    pb->n_removed = c->n_removed;
    pb->removed = c->removed;
    *servers_out = servers;
    return 0;
}

static void free_pb_conf(Swarmc__RaftConfiguration *pb, Swarmc__RaftServer *servers)
{
    swm_free(pb->servers);
    swm_free(servers);
}

static int conf_from_pb(const Swarmc__RaftConfiguration *pb, struct raft_configuration *out,
                        struct swm_err *err)
{
    struct raft_configuration c = {0};
    if (pb->n_servers > MAX_SERVERS || pb->n_removed > MAX_REMOVED)
        return swm_err_set(err, SWM_EPROTO, "configuration too large");
    if (pb->n_servers > 0) {
        c.servers = swm_calloc(pb->n_servers, sizeof(*c.servers));
        if (c.servers == NULL)
            return swm_err_set(err, -ENOMEM, "out of memory");
    }
    c.n_servers = pb->n_servers;
    for (size_t i = 0; i < pb->n_servers; i++) {
        const Swarmc__RaftServer *s = pb->servers[i];
        if (!s->has_id || !s->has_role) {
            raft_configuration_free(&c);
            return swm_err_set(err, SWM_EPROTO, "configuration server %zu lacks id or role", i);
        }
        c.servers[i].id = s->id;
        c.servers[i].role = (enum raft_role)s->role;
    }
    if (pb->n_removed > 0) {
        c.removed = swm_malloc(pb->n_removed * sizeof(*c.removed));
        if (c.removed == NULL) {
            raft_configuration_free(&c);
            return swm_err_set(err, -ENOMEM, "out of memory");
        }
        memcpy(c.removed, pb->removed, pb->n_removed * sizeof(*c.removed));
    }
    c.n_removed = pb->n_removed;
    int rc = check_conf(&c, err);
    if (rc < 0) {
        raft_configuration_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}

int raft_configuration_encode(const struct raft_configuration *c, struct swm_buf *out)
{
    if (check_conf(c, NULL) < 0)
        return -EINVAL;
    Swarmc__RaftConfiguration pb;
    Swarmc__RaftServer *servers;
    int rc = conf_to_pb(c, &pb, &servers);
    if (rc < 0)
        return rc;
    rc = proto_pack(&pb.base, out);
    free_pb_conf(&pb, servers);
    return rc;
}

int raft_configuration_decode(const void *data, size_t len, struct raft_configuration *out,
                              struct swm_err *err)
{
    struct swm_err local;
    Swarmc__RaftConfiguration *pb =
        PROTO_UNPACK(Swarmc__RaftConfiguration, swarmc__raft_configuration, data, len, &local);
    if (pb == NULL) {
        if (err != NULL)
            *err = local;
        return local.code;
    }
    int rc = conf_from_pb(pb, out, err);
    proto_free(pb);
    return rc;
}

/* --- messages ----------------------------------------------------------- */

int raft_message_encode(const struct raft_message *m, struct swm_buf *out)
{
    if (check_message(m, NULL) < 0)
        return -EINVAL;
    int rc = -ENOMEM;
    Swarmc__RaftMessage pb;
    Swarmc__RaftSnapshotMeta meta;
    Swarmc__RaftConfiguration conf;
    Swarmc__RaftServer *servers = NULL;
    Swarmc__RaftEntry *entries = NULL;
    Swarmc__RaftEntry **eptrs = NULL;
    bool conf_made = false;

    swarmc__raft_message__init(&pb);
    pb.has_type = true;
    pb.type = (Swarmc__RaftMessage__Type)m->type;
#define SET(field)                                                                                 \
    do {                                                                                           \
        if (m->field) {                                                                            \
            pb.has_##field = true;                                                                 \
            pb.field = m->field;                                                                   \
        }                                                                                          \
    } while (0)
    SET(from);
    SET(to);
    SET(term);
    SET(log_term);
    SET(index);
    SET(commit);
    SET(reject);
    SET(reject_hint);
    SET(context);
    SET(snap_offset);
    SET(done);
#undef SET
    if (m->len > 0) {
        pb.has_data = true;
        pb.data.data = (uint8_t *)m->data;
        pb.data.len = m->len;
    }
    if (m->n_entries > 0) {
        entries = swm_calloc(m->n_entries, sizeof(*entries));
        eptrs = swm_calloc(m->n_entries, sizeof(*eptrs));
        if (entries == NULL || eptrs == NULL)
            goto out;
        for (size_t i = 0; i < m->n_entries; i++) {
            const struct raft_entry *e = &m->entries[i];
            swarmc__raft_entry__init(&entries[i]);
            entries[i].has_term = entries[i].has_index = entries[i].has_type = true;
            entries[i].term = e->term;
            entries[i].index = e->index;
            entries[i].type = (Swarmc__RaftEntry__Type)e->type;
            if (e->len > 0) {
                entries[i].has_data = true;
                entries[i].data.data = (uint8_t *)e->data;
                entries[i].data.len = e->len;
            }
            eptrs[i] = &entries[i];
        }
        pb.n_entries = m->n_entries;
        pb.entries = eptrs;
    }
    if (m->snapshot.index > 0) {
        swarmc__raft_snapshot_meta__init(&meta);
        meta.has_index = meta.has_term = true;
        meta.index = m->snapshot.index;
        meta.term = m->snapshot.term;
        if (m->snapshot.conf.n_servers > 0 || m->snapshot.conf.n_removed > 0) {
            if (conf_to_pb(&m->snapshot.conf, &conf, &servers) < 0)
                goto out;
            conf_made = true;
            meta.conf = &conf;
        }
        pb.snapshot = &meta;
    }
    rc = proto_pack(&pb.base, out);
out:
    if (conf_made)
        free_pb_conf(&conf, servers);
    swm_free(entries);
    swm_free(eptrs);
    return rc;
}

void raft_message_free(struct raft_message *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_entries; i++)
        swm_free((void *)m->entries[i].data);
    swm_free(m->entries);
    raft_configuration_free(&m->snapshot.conf);
    swm_free((void *)m->data);
    swm_free(m);
}

static void *copy_bytes(const ProtobufCBinaryData *b)
{
    void *p = swm_malloc(b->len);
    if (p != NULL)
        memcpy(p, b->data, b->len);
    return p;
}

/* A configuration entry that does not decode would stop the member that
 * appends it (the core treats it as a damaged log): refuse it at the wire. */
static int check_conf_entries(const struct raft_message *m, struct swm_err *err)
{
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->type != RAFT_ENTRY_CONF)
            continue;
        struct raft_configuration c = {0};
        struct swm_err cerr = {0};
        int rc = raft_configuration_decode(e->data, e->len, &c, &cerr);
        raft_configuration_free(&c);
        if (rc == -ENOMEM)
            return swm_err_set(err, rc, "out of memory");
        if (rc < 0)
            return swm_err_set(err, SWM_EPROTO, "append entry %llu: bad configuration: %s",
                               (unsigned long long)e->index, cerr.msg);
    }
    return 0;
}

int raft_message_decode(const void *data, size_t len, size_t max_size, struct raft_message **out,
                        struct swm_err *err)
{
    if (max_size == 0)
        max_size = RAFT_MESSAGE_MAX_SIZE;
    if (len > max_size)
        return swm_err_set(err, SWM_EPROTO, "raft message of %zu bytes exceeds %zu", len, max_size);
    struct swm_err local;
    Swarmc__RaftMessage *pb =
        PROTO_UNPACK(Swarmc__RaftMessage, swarmc__raft_message, data, len, &local);
    if (pb == NULL) {
        if (err != NULL)
            *err = local;
        return local.code; /* SWM_EPROTO, or -ENOMEM */
    }
    int rc;
    struct raft_message *m = swm_calloc(1, sizeof(*m));
    if (m == NULL) {
        rc = swm_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (!pb->has_type) {
        rc = swm_err_set(err, SWM_EPROTO, "raft message without a type");
        goto fail;
    }
    m->type = (enum raft_message_type)pb->type;
    m->from = pb->from;
    m->to = pb->to;
    m->term = pb->term;
    m->log_term = pb->log_term;
    m->index = pb->index;
    m->commit = pb->commit;
    m->reject = pb->reject;
    m->reject_hint = pb->reject_hint;
    m->context = pb->context;
    m->snap_offset = pb->snap_offset;
    m->done = pb->done;
    if (pb->n_entries > MAX_ENTRIES) {
        rc = swm_err_set(err, SWM_EPROTO, "append with %zu entries", pb->n_entries);
        goto fail;
    }
    if (pb->n_entries > 0) {
        m->entries = swm_calloc(pb->n_entries, sizeof(*m->entries));
        if (m->entries == NULL) {
            rc = swm_err_set(err, -ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < pb->n_entries; i++) {
            const Swarmc__RaftEntry *e = pb->entries[i];
            struct raft_entry *d = &m->entries[i];
            m->n_entries = i + 1;
            if (!e->has_term || !e->has_index || !e->has_type) {
                rc = swm_err_set(err, SWM_EPROTO, "append entry %zu lacks term/index/type", i);
                goto fail;
            }
            d->term = e->term;
            d->index = e->index;
            d->type = (enum raft_entry_type)e->type;
            if (e->has_data && e->data.len > 0) {
                if ((d->data = copy_bytes(&e->data)) == NULL) {
                    rc = swm_err_set(err, -ENOMEM, "out of memory");
                    goto fail;
                }
                d->len = e->data.len;
            }
        }
    }
    if (pb->has_data && pb->data.len > 0) {
        if ((m->data = copy_bytes(&pb->data)) == NULL) {
            rc = swm_err_set(err, -ENOMEM, "out of memory");
            goto fail;
        }
        m->len = pb->data.len;
    }
    if (pb->snapshot != NULL) {
        m->snapshot.index = pb->snapshot->index;
        m->snapshot.term = pb->snapshot->term;
        if (pb->snapshot->conf != NULL) {
            rc = conf_from_pb(pb->snapshot->conf, &m->snapshot.conf, err);
            if (rc < 0)
                goto fail;
        }
    }
    rc = check_message(m, err);
    if (rc == 0)
        rc = check_conf_entries(m, err);
    if (rc < 0)
        goto fail;
    proto_free(pb);
    *out = m;
    return 0;
fail:
    raft_message_free(m);
    proto_free(pb);
    return rc;
}
