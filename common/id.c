#include "common/id.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

int swm_id_new(char out[SWM_ID_LEN + 1])
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char raw[SWM_ID_LEN];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    /* 252 = 7 * 36: rejecting bytes >= 252 keeps the digits uniform. */
    for (int i = 0; i < SWM_ID_LEN; i++) {
        while (raw[i] >= 252) {
            if (getrandom(&raw[i], 1, 0) != 1)
                return -EIO;
        }
        out[i] = alphabet[raw[i] % 36];
    }
    out[SWM_ID_LEN] = '\0';
    return 0;
}

bool swm_id_valid(const char *s)
{
    if (strlen(s) != SWM_ID_LEN)
        return false;
    for (int i = 0; i < SWM_ID_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return true;
}
