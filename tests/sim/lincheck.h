/* A linearizability checker for histories of a key-value store whose keys
 * are independent registers (DESIGN.md §5, tests/sim). Each key is checked
 * on its own (linearizability is compositional: Herlihy & Wing, "locality")
 * with the Wing–Gong–Lowe search: repeatedly pick an operation that may take
 * effect next (no pending operation returned before it was invoked), apply
 * it to the register if its result agrees, backtrack otherwise; memoise the
 * (set of linearized operations, register value) pairs already explored
 * (Lowe, "Testing for linearizability", 2017).
 *
 * Values are 32-bit tokens; 0 means "absent" and is every register's initial
 * value. Writers should write unique non-zero values so a read names the
 * write it saw. */
#ifndef SWM_TESTS_SIM_LINCHECK_H
#define SWM_TESTS_SIM_LINCHECK_H

#include <stddef.h>
#include <stdint.h>

enum lin_kind {
    LIN_PUT = 1, /* value: written */
    LIN_GET = 2, /* value: what the read returned (ok operations only) */
};

enum lin_status {
    LIN_OK = 1,      /* returned at `ret` */
    LIN_UNKNOWN = 2, /* no answer (timeout, crash): may take effect at any time
                        after `invoke`, or never; ret is ignored */
    LIN_FAIL = 3,    /* definitely had no effect: ignored by the check */
};

/* One operation of a history. invoke and ret are points on one logical
 * clock shared by every client (ties are not allowed: invoke < ret, and an
 * operation that returned at t precedes one invoked at t' > t). */
struct lin_op {
    uint64_t id; /* caller's name for the op, reported back */
    uint64_t key;
    enum lin_kind kind;
    enum lin_status status;
    uint32_t value;
    uint64_t invoke, ret;
};

struct lin_result {
    uint64_t bad_key;  /* key whose sub-history is not linearizable */
    size_t n_ops;      /* operations checked (ok + unknown puts) */
    size_t n_keys;     /* keys checked */
    size_t max_states; /* the largest memo used for one key */
};

/* The default bound on memoised states per key. */
#define LIN_MAX_STATES (1u << 21)

/* Checks the history ops[0..n) (borrowed, not modified). max_states bounds
 * the memo per key (0: LIN_MAX_STATES). Returns 0 if it is linearizable,
 * 1 if not (res->bad_key names a key whose sub-history is not), -E2BIG if the
 * search for some key exceeded max_states (undecided; res->bad_key names it),
 * -EINVAL for a malformed history (invoke >= ret on an ok op), -ENOMEM.
 * res may be NULL. */
int lin_check(const struct lin_op *ops, size_t n, size_t max_states, struct lin_result *res);

#endif
