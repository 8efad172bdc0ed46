#include "daemon/nodeconf.h"

#include "common/buf.h"
#include "common/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define NODECONF_MAX_BYTES (64u << 10)

static bool valid_availability(const char *v)
{
    return strcmp(v, "active") == 0 || strcmp(v, "pause") == 0 || strcmp(v, "drain") == 0;
}

/* Copies an address value after checking that it parses. */
static int set_addr(char *dst, const char *value)
{
    struct sockaddr_storage sa;
    if (strlen(value) >= SWM_ADDR_STRLEN || swm_addr_parse(value, &sa) < 0)
        return -EINVAL;
    snprintf(dst, SWM_ADDR_STRLEN, "%s", value);
    return 0;
}

/* Applies one "name value" line. Returns 0 or -EINVAL with why in *what. */
static int apply_line(struct node_conf *c, const char *name, const char *value, const char **what)
{
    if (strcmp(name, "listen-addr") == 0 || strcmp(name, "advertise-addr") == 0) {
        *what = "not a numeric host:port address";
        return set_addr(name[0] == 'l' ? c->listen_addr : c->advertise_addr, value);
    }
    if (strcmp(name, "availability") == 0) {
        *what = "not one of active, pause, drain";
        if (!valid_availability(value))
            return -EINVAL;
        snprintf(c->availability, sizeof(c->availability), "%s", value);
        return 0;
    }
    if (strcmp(name, "manager") == 0) {
        char addr[SWM_ADDR_STRLEN];
        *what = "not a numeric host:port address";
        if (set_addr(addr, value) < 0)
            return -EINVAL;
        *what = "too many managers";
        return node_conf_add_manager(c, addr) < 0 ? -EINVAL : 0;
    }
    *what = "unknown setting";
    return -EINVAL;
}

/* The 1-based line number of pos in text. */
static unsigned line_of(const char *text, const char *pos)
{
    unsigned line = 1;
    for (const char *p = text; p < pos; p++)
        line += *p == '\n';
    return line;
}

static int parse(const char *path, char *text, struct node_conf *out, struct swm_err *err)
{
    unsigned lineno = 0;
    /* Not strtok_r: it skips empty lines, and the numbers in errors would
     * then not be the lines a user sees in an editor. */
    for (char *line = text, *next; line != NULL; line = next) {
        char *nl = strchr(line, '\n');
        next = nl != NULL ? nl + 1 : NULL;
        if (nl != NULL)
            *nl = '\0';
        lineno++;
        if (line[0] == '\0' || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        const char *what = "expected \"name value\"";
        if (sp == NULL || sp[1] == '\0')
            return swm_err_set(err, SWM_ECORRUPT, "%s line %u: %s", path, lineno, what);
        *sp = '\0';
        if (apply_line(out, line, sp + 1, &what) < 0)
            return swm_err_set(err, SWM_ECORRUPT, "%s line %u: %s: %s", path, lineno, line, what);
    }
    return 0;
}

int node_conf_load(const char *dir, struct node_conf *out, struct swm_err *err)
{
    char path[PATH_MAX];
    struct swm_buf buf = {0};
    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "%s/%s", dir, NODECONF_FILE);
    int rc = swm_read_file(path, NODECONF_MAX_BYTES, &buf);
    if (rc == -ENOENT)
        return 0;
    const char *nul = rc == 0 ? memchr(buf.data, '\0', buf.len) : NULL;
    if (nul != NULL)
        rc = swm_err_set(err, SWM_ECORRUPT, "%s line %u: holds a NUL byte", path,
                         line_of((const char *)buf.data, nul));
    else if (rc == 0 && swm_buf_append(&buf, "", 1) < 0)
        rc = swm_err_set(err, -ENOMEM, "out of memory");
    else if (rc == 0)
        rc = parse(path, (char *)buf.data, out, err);
    else
        swm_err_set(err, rc, "reading %s: %s", path, swm_strerror(rc));
    swm_buf_free(&buf);
    return rc;
}

int node_conf_save(const char *dir, const struct node_conf *c, struct swm_err *err)
{
    char path[PATH_MAX], text[2048 + NODECONF_MAX_MANAGERS * SWM_ADDR_STRLEN];
    size_t n = (size_t)snprintf(text, sizeof(text), "# swarmc node settings (swarmc init/join)\n");
    if (c->listen_addr[0] != '\0')
        n += (size_t)snprintf(text + n, sizeof(text) - n, "listen-addr %s\n", c->listen_addr);
    if (c->advertise_addr[0] != '\0')
        n += (size_t)snprintf(text + n, sizeof(text) - n, "advertise-addr %s\n", c->advertise_addr);
    if (c->availability[0] != '\0')
        n += (size_t)snprintf(text + n, sizeof(text) - n, "availability %s\n", c->availability);
    for (size_t i = 0; i < c->n_managers; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "manager %s\n", c->managers[i]);
    snprintf(path, sizeof(path), "%s/%s", dir, NODECONF_FILE);
    int rc = swm_write_file_atomic(path, text, n, 0600);
    if (rc < 0)
        return swm_err_set(err, rc, "writing %s: %s", path, swm_strerror(rc));
    return 0;
}

int node_conf_add_manager(struct node_conf *c, const char *addr)
{
    for (size_t i = 0; i < c->n_managers; i++) {
        if (strcmp(c->managers[i], addr) == 0)
            return 0;
    }
    if (c->n_managers == NODECONF_MAX_MANAGERS)
        return -ENOSPC;
    snprintf(c->managers[c->n_managers++], SWM_ADDR_STRLEN, "%s", addr);
    return 0;
}
