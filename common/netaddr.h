/* Numeric socket addresses as users write them: "a.b.c.d:port" and
 * "[v6]:port". Names are not resolved here (that needs the loop). */
#ifndef SWM_COMMON_NETADDR_H
#define SWM_COMMON_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Longest text swm_addr_format writes, with its NUL. */
#define SWM_ADDR_STRLEN 64

/* Parses s into *out (zeroed first). Returns 0 or -EINVAL (no port, a port
 * above 65535, a host that is not a numeric IPv4 or bracketed IPv6
 * address). */
int swm_addr_parse(const char *s, struct sockaddr_storage *out);

/* Writes sa as swm_addr_parse reads it ("?" for another family). */
void swm_addr_format(const struct sockaddr_storage *sa, char *out, size_t size);

/* The host part of "host:port" or "[v6]:port" (without brackets); the
 * whole text if it has no port. */
void swm_addr_host(const char *addr, char *out, size_t size);

#endif
