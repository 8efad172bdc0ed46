#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

enum swm_log_level swm_log_threshold = SWM_LOG_INFO;
static FILE *log_stream;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int swm_log_parse_level(const char *name, enum swm_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum swm_log_level)i;
            return 0;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = SWM_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

void swm_log_set_level(enum swm_log_level level)
{
    swm_log_threshold = level;
}

void swm_log_set_stream(FILE *f)
{
    log_stream = f;
}

void swm_log_write(enum swm_log_level level, const char *fmt, ...)
{
    FILE *out = log_stream != NULL ? log_stream : stderr;
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    /* One fprintf per line keeps lines whole when several threads log. */
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(out, "%s.%03ldZ %-5s %s\n", stamp, ts.tv_nsec / 1000000, level_names[level], line);
    fflush(out);
}
