#include "common/parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit {
    const char *name;
    int64_t ns;
};

/* Longest names first so "ms" is not read as "m" followed by "s". */
static const struct unit duration_units[] = {
    {"ns", 1},           {"us", 1000},         {"\xc2\xb5s", 1000},    {"ms", 1000000},
    {"s", 1000000000LL}, {"m", 60000000000LL}, {"h", 3600000000000LL},
};

int swm_parse_duration(const char *s, int64_t *ns)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    double total = 0;
    const char *p = s;
    while (*p != '\0') {
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -EINVAL;
        char *end;
        errno = 0;
        double value = strtod(p, &end);
        if (end == p || errno != 0 || value < 0)
            return -EINVAL;
        p = end;
        const struct unit *unit = NULL;
        for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
            size_t n = strlen(duration_units[i].name);
            if (strncmp(p, duration_units[i].name, n) == 0) {
                /* "m" must not swallow the "m" of "ms". */
                if (n == 1 && p[0] == 'm' && p[1] == 's')
                    continue;
                unit = &duration_units[i];
                p += n;
                break;
            }
        }
        if (unit == NULL)
            return -EINVAL;
        total += value * (double)unit->ns;
        if (total > 9.2e18)
            return -ERANGE;
    }
    *ns = (int64_t)llround(total);
    return 0;
}

int swm_parse_bytes(const char *s, int64_t *bytes)
{
    if (s == NULL || *s == '\0' || !(isdigit((unsigned char)*s) || *s == '.'))
        return -EINVAL;
    char *end;
    errno = 0;
    double value = strtod(s, &end);
    if (end == s || errno != 0 || value < 0)
        return -EINVAL;
    char suffix[4] = {0};
    size_t n = strlen(end);
    if (n >= sizeof(suffix))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        suffix[i] = (char)tolower((unsigned char)end[i]);
    double mult = 1;
    const char *units = "bkmgtp";
    if (n > 0) {
        const char *u = strchr(units, suffix[0]);
        if (u == NULL)
            return -EINVAL;
        /* Accept "k", "kb", "kib"; "b" alone is bytes. */
        const char *rest = suffix + 1;
        if (!(*rest == '\0' ||
              (suffix[0] != 'b' && (strcmp(rest, "b") == 0 || strcmp(rest, "ib") == 0))))
            return -EINVAL;
        for (long i = 0; i < u - units; i++)
            mult *= 1024;
    }
    double total = value * mult;
    if (total > 9.2e18)
        return -ERANGE;
    *bytes = (int64_t)total;
    return 0;
}

int swm_parse_nano_cpus(const char *s, int64_t *nano_cpus)
{
    if (s == NULL || *s == '\0' || !(isdigit((unsigned char)*s) || *s == '.'))
        return -EINVAL;
    char *end;
    errno = 0;
    double value = strtod(s, &end);
    if (*end != '\0' || errno != 0 || value < 0 || value > 1e6)
        return -EINVAL;
    *nano_cpus = (int64_t)llround(value * 1e9);
    return 0;
}

int swm_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0)
        return -EINVAL;
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

void swm_format_duration(int64_t ns, char *buf, size_t len)
{
    if (ns == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    if (ns < 1000) {
        snprintf(buf, len, "%lldns", (long long)ns);
        return;
    }
    if (ns < 1000000) {
        snprintf(buf, len, "%gus", (double)ns / 1e3);
        return;
    }
    if (ns < 1000000000) {
        snprintf(buf, len, "%gms", (double)ns / 1e6);
        return;
    }
    int64_t h = ns / 3600000000000LL;
    int64_t rem = ns % 3600000000000LL;
    int64_t m = rem / 60000000000LL;
    double sec = (double)(rem % 60000000000LL) / 1e9;
    if (h > 0)
        snprintf(buf, len, "%lldh%lldm%gs", (long long)h, (long long)m, sec);
    else if (m > 0)
        snprintf(buf, len, "%lldm%gs", (long long)m, sec);
    else
        snprintf(buf, len, "%gs", sec);
}

void swm_format_bytes(int64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int i = 0;
    while (v >= 1024 && i < 5) {
        v /= 1024;
        i++;
    }
    snprintf(buf, len, "%.4g%s", v, units[i]);
}

void swm_format_ago(int64_t since_ns, int64_t now_ns, char *buf, size_t len)
{
    int64_t s = (now_ns - since_ns) / 1000000000LL;
    if (s < 1)
        snprintf(buf, len, "Less than a second ago");
    else if (s == 1)
        snprintf(buf, len, "1 second ago");
    else if (s < 60)
        snprintf(buf, len, "%lld seconds ago", (long long)s);
    else if (s < 120)
        snprintf(buf, len, "About a minute ago");
    else if (s < 3600)
        snprintf(buf, len, "%lld minutes ago", (long long)(s / 60));
    else if (s < 7200)
        snprintf(buf, len, "About an hour ago");
    else if (s < 172800)
        snprintf(buf, len, "%lld hours ago", (long long)(s / 3600));
    else
        snprintf(buf, len, "%lld days ago", (long long)(s / 86400));
}
