/* Object identifiers: 25 random lowercase base-36 characters, like Docker
 * Swarm's, from the kernel's CSPRNG. */
#ifndef SWM_COMMON_ID_H
#define SWM_COMMON_ID_H

#include <stdbool.h>

#define SWM_ID_LEN 25

/* Writes a new NUL-terminated id into out. Returns 0 or -errno. */
int swm_id_new(char out[SWM_ID_LEN + 1]);

/* True if s looks like an id (SWM_ID_LEN chars of [0-9a-z]). */
bool swm_id_valid(const char *s);

#endif
