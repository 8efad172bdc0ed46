/* Logging for manager/, agent/ and cli/ (store/, net/ and proto/ return
 * errors with context instead). One line per event, structured as
 * `time level msg key=value ...`; the level is checked before formatting. */
#ifndef SWM_COMMON_LOG_H
#define SWM_COMMON_LOG_H

#include <stdio.h>

enum swm_log_level {
    SWM_LOG_DEBUG = 0,
    SWM_LOG_INFO = 1,
    SWM_LOG_WARN = 2,
    SWM_LOG_ERROR = 3,
};

extern enum swm_log_level swm_log_threshold;

/* Parses "debug", "info", "warn"/"warning", "error". Returns 0 or -EINVAL. */
int swm_log_parse_level(const char *name, enum swm_log_level *out);

/* Sets the threshold. */
void swm_log_set_level(enum swm_log_level level);

/* Sends log lines to f (not owned; default stderr). */
void swm_log_set_stream(FILE *f);

/* Writes one line. Use the macros below, which skip formatting when the
 * level is filtered out. */
void swm_log_write(enum swm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define swm_log_at(level, ...)                                                                     \
    do {                                                                                           \
        if ((level) >= swm_log_threshold)                                                          \
            swm_log_write((level), __VA_ARGS__);                                                   \
    } while (0)
#define swm_log_debug(...) swm_log_at(SWM_LOG_DEBUG, __VA_ARGS__)
#define swm_log_info(...) swm_log_at(SWM_LOG_INFO, __VA_ARGS__)
#define swm_log_warn(...) swm_log_at(SWM_LOG_WARN, __VA_ARGS__)
#define swm_log_error(...) swm_log_at(SWM_LOG_ERROR, __VA_ARGS__)

#endif
