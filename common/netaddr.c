#include "common/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, unsigned *port)
{
    if (s[0] < '0' || s[0] > '9' || strlen(s) > 5)
        return -EINVAL;
    char *end;
    unsigned long p = strtoul(s, &end, 10);
    if (*end != '\0' || p > 65535)
        return -EINVAL;
    *port = (unsigned)p;
    return 0;
}

int swm_addr_parse(const char *s, struct sockaddr_storage *out)
{
    const char *colon = s != NULL ? strrchr(s, ':') : NULL;
    unsigned port;
    if (colon == NULL || parse_port(colon + 1, &port) < 0)
        return -EINVAL;
    size_t host_len = (size_t)(colon - s);
    char host[SWM_ADDR_STRLEN];
    if (host_len == 0 || host_len >= sizeof(host))
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (s[0] == '[') {
        if (host_len < 3 || s[host_len - 1] != ']')
            return -EINVAL;
        memcpy(host, s + 1, host_len - 2);
        host[host_len - 2] = '\0';
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
    }
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -EINVAL;
}

void swm_addr_format(const struct sockaddr_storage *sa, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, size, "%s:%u", ip, ntohs(in->sin_port));
    } else {
        snprintf(out, size, "?");
    }
}

void swm_addr_host(const char *addr, char *out, size_t size)
{
    const char *colon = strrchr(addr, ':');
    const char *bracket = strchr(addr, ']');
    size_t n = strlen(addr);
    if (addr[0] == '[' && bracket != NULL) {
        addr++;
        n = (size_t)(bracket - addr);
    } else if (colon != NULL && strchr(addr, ':') == colon) {
        n = (size_t)(colon - addr);
    }
    snprintf(out, size, "%.*s", (int)n, addr);
}
