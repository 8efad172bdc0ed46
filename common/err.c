#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *swm_strerror(int err)
{
    switch (err) {
#define SWM_ERR_CASE(name, value, msg)                                                             \
    case name:                                                                                     \
        return msg;
        SWM_ERRNO_MAP(SWM_ERR_CASE)
#undef SWM_ERR_CASE
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

int swm_err_set(struct swm_err *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

int swm_err_wrap(struct swm_err *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    char prefix[256];
    char old[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (err->code == 0 || err->msg[0] == '\0')
        snprintf(old, sizeof(old), "%s", swm_strerror(code));
    else
        snprintf(old, sizeof(old), "%s", err->msg);
    int n = snprintf(err->msg, sizeof(err->msg), "%s: ", prefix);
    if (n >= 0 && (size_t)n < sizeof(err->msg))
        snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, "%s", old);
    err->code = code;
    return code;
}

int swm_err_code(struct swm_err *err, int code)
{
    if (err == NULL)
        return code;
    if (err->code == code && err->msg[0] != '\0')
        return code;
    err->code = code;
    snprintf(err->msg, sizeof(err->msg), "%s", swm_strerror(code));
    return code;
}

void swm_err_clear(struct swm_err *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
