/* Random service names in Docker's style (adjective_scientist), for
 * services created without --name. */
#include "common/alloc.h"
#include "manager/controlapi/internal.h"

#include <sys/random.h>

static const char *const adjectives[] = {
    "admiring",  "brave",   "clever", "dazzling", "eager",  "focused", "gallant",    "happy",
    "inspiring", "jolly",   "keen",   "lucid",    "modest", "nifty",   "optimistic", "peaceful",
    "quirky",    "relaxed", "serene", "tender",   "upbeat", "vibrant", "wizardly",   "zealous",
};
static const char *const scientists[] = {
    "archimedes", "babbage",  "curie",  "darwin",   "euclid",  "feynman", "galileo", "hopper",
    "hypatia",    "johnson",  "kepler", "lovelace", "meitner", "noether", "pasteur", "ritchie",
    "shannon",    "thompson", "turing", "volhard",  "wozniak", "yalow",   "zuse",    "lamport",
};

char *controlapi__random_name(void)
{
    unsigned char pick[2] = {0, 0};
    if (getrandom(pick, sizeof(pick), 0) != (ssize_t)sizeof(pick))
        return NULL;
    const size_t na = sizeof(adjectives) / sizeof(adjectives[0]);
    const size_t ns = sizeof(scientists) / sizeof(scientists[0]);
    return swm_asprintf("%s_%s", adjectives[pick[0] % na], scientists[pick[1] % ns]);
}
