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

static char *pick_name(unsigned attempt)
{
    unsigned char pick[3] = {0, 0, 0};
    if (getrandom(pick, sizeof(pick), 0) != (ssize_t)sizeof(pick))
        return NULL;
    const size_t na = sizeof(adjectives) / sizeof(adjectives[0]);
    const size_t ns = sizeof(scientists) / sizeof(scientists[0]);
    const char *adj = adjectives[pick[0] % na], *who = scientists[pick[1] % ns];
    /* Like Docker's generator: after a few collisions, add a number. */
    if (attempt < 4)
        return swm_asprintf("%s_%s", adj, who);
    return swm_asprintf("%s_%s%u", adj, who, pick[2] % (attempt * 25u));
}

char *controlapi__random_name(struct store *s)
{
    struct store_read *r = NULL;
    if (store_read_begin(s, &r, NULL) < 0)
        return NULL;
    char *name = NULL;
    for (unsigned attempt = 0; attempt < 16; attempt++) {
        swm_free(name);
        name = pick_name(attempt);
        Swarmc__Service *taken = NULL;
        if (name == NULL || store_get_service_by_name(r, name, &taken) != 0)
            break;
        proto_free(taken);
    }
    store_read_end(r);
    return name;
}
