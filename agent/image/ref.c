/* Image references, normalised the way Docker's distribution/reference
 * package does it for its "familiar" form:
 *
 *   reference := name [ ":" tag ]
 *   name      := [ domain "/" ] path-component ( "/" path-component )*
 *   domain    := host [ ":" port ]      (a first component with "." or ":",
 *                                        "localhost", or an upper-case letter)
 *   component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
 *
 * Docker Hub names lose "docker.io/" and "library/", so "busybox",
 * "library/busybox" and "docker.io/library/busybox:latest" are all
 * "busybox:latest". Digest references (name@sha256:...) are not supported.
 */
#include "agent/image/internal.h"

#include "common/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128

bool image__is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

bool image__is_digest(const char *s)
{
    return strncmp(s, "sha256:", 7) == 0 && strlen(s + 7) == IMAGE__HEX_LEN &&
           image__is_hex(s + 7, IMAGE__HEX_LEN);
}

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool valid_component(const char *s, size_t n)
{
    if (n == 0 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (is_alnum_lower(s[i]))
            continue;
        /* A separator run: ".", "_", "__" or any number of "-". */
        size_t j = i;
        while (j < n && !is_alnum_lower(s[j]))
            j++;
        size_t run = j - i;
        bool ok = (run == 1 && (s[i] == '.' || s[i] == '_')) ||
                  (run == 2 && s[i] == '_' && s[i + 1] == '_') || strspn(s + i, "-") >= run;
        if (!ok)
            return false;
        i = j - 1;
    }
    return true;
}

static bool valid_domain(const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t host_len = colon ? (size_t)(colon - s) : n;
    if (host_len == 0)
        return false;
    /* host := label ("." label)*, label := alnum ([alnum-]* alnum)? */
    size_t start = 0;
    for (size_t i = 0; i <= host_len; i++) {
        if (i < host_len && s[i] != '.') {
            char c = s[i];
            bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            if (!alnum && c != '-')
                return false;
            continue;
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return false;
        start = i + 1;
    }
    if (colon) {
        size_t port_len = n - host_len - 1;
        if (port_len == 0 || port_len > 5)
            return false;
        for (size_t i = host_len + 1; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                return false;
    }
    return true;
}

static bool valid_tag(const char *s, size_t n)
{
    if (n == 0 || n > TAG_MAX_LEN || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Docker's rule for telling "host/name" from "user/name". */
static bool is_domain(const char *s, size_t n)
{
    if (n == 9 && strncmp(s, "localhost", 9) == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.' || s[i] == ':' || (s[i] >= 'A' && s[i] <= 'Z'))
            return true;
    return false;
}

int image__ref_normalize(const char *ref, char **out)
{
    if (ref == NULL || ref[0] == '\0' || strchr(ref, '@') != NULL)
        return -EINVAL;

    size_t len = strlen(ref);
    const char *last_slash = strrchr(ref, '/');
    const char *colon = strrchr(ref, ':');
    const char *tag = "latest";
    size_t tag_len = 6;
    size_t name_len = len;
    if (colon != NULL && (last_slash == NULL || colon > last_slash)) {
        tag = colon + 1;
        tag_len = len - (size_t)(tag - ref);
        name_len = (size_t)(colon - ref);
    }
    if (!valid_tag(tag, tag_len) || name_len == 0)
        return -EINVAL;

    const char *domain = NULL;
    size_t domain_len = 0;
    const char *path = ref;
    size_t path_len = name_len;
    const char *first_slash = memchr(ref, '/', name_len);
    if (first_slash != NULL && is_domain(ref, (size_t)(first_slash - ref))) {
        domain = ref;
        domain_len = (size_t)(first_slash - ref);
        path = first_slash + 1;
        path_len = name_len - domain_len - 1;
        if (!valid_domain(domain, domain_len))
            return -EINVAL;
    }
    if (path_len == 0)
        return -EINVAL;
    for (size_t i = 0, start = 0; i <= path_len; i++) {
        if (i < path_len && path[i] != '/')
            continue;
        if (!valid_component(path + start, i - start))
            return -EINVAL;
        start = i + 1;
    }

    bool hub = domain == NULL || (domain_len == 9 && strncmp(domain, "docker.io", 9) == 0) ||
               (domain_len == 15 && strncmp(domain, "index.docker.io", 15) == 0);
    if (hub) {
        domain = NULL;
        if (path_len > 8 && strncmp(path, "library/", 8) == 0 &&
            memchr(path + 8, '/', path_len - 8) == NULL) {
            path += 8;
            path_len -= 8;
        }
        /* Docker refuses names that could be mistaken for image ids. */
        if (path_len == IMAGE__HEX_LEN && image__is_hex(path, path_len))
            return -EINVAL;
    }
    if (domain_len + 1 + path_len > NAME_MAX_LEN)
        return -EINVAL;

    if (domain != NULL)
        *out = swm_asprintf("%.*s/%.*s:%.*s", (int)domain_len, domain, (int)path_len, path,
                            (int)tag_len, tag);
    else
        *out = swm_asprintf("%.*s:%.*s", (int)path_len, path, (int)tag_len, tag);
    return *out != NULL ? 0 : -ENOMEM;
}

char *image_normalize_ref(const char *ref)
{
    char *out = NULL;
    return image__ref_normalize(ref, &out) == 0 ? out : NULL;
}
