/* Error codes and error context for every swarmc module.
 *
 * Functions return 0 (or a count) on success and a negative value on failure:
 * either -errno, or one of the project codes below. Project codes live in one
 * X-macro table so that swm_strerror() can never fall out of step with them.
 */
#ifndef SWM_COMMON_ERR_H
#define SWM_COMMON_ERR_H

#include <stddef.h>

/* X(name, value, message). Values are below -4095 so they never clash with
 * -errno. */
#define SWM_ERRNO_MAP(X)                                                                           \
    X(SWM_ESTALE, -5001, "update out of sequence: the object changed since it was read")           \
    X(SWM_ENOTLEADER, -5002, "this node is not the leader")                                        \
    X(SWM_EBADTOKEN, -5003, "invalid join token")                                                  \
    X(SWM_EPROTO, -5004, "malformed message")                                                      \
    X(SWM_ECORRUPT, -5005, "stored data is corrupted")                                             \
    X(SWM_EINVAL_SPEC, -5006, "invalid specification")                                             \
    X(SWM_ENOTFOUND, -5007, "not found")                                                           \
    X(SWM_EEXISTS, -5008, "already exists")                                                        \
    X(SWM_EINUSE, -5009, "in use")                                                                 \
    X(SWM_ENOTSUP, -5010, "not yet supported")                                                     \
    X(SWM_ESHUTDOWN, -5011, "shutting down")                                                       \
    X(SWM_EEXEC, -5012, "container runtime failed")                                                \
    X(SWM_EAUTH, -5013, "authentication failed")                                                   \
    X(SWM_EREVOKED, -5014, "certificate revoked")                                                  \
    X(SWM_EEXPIRED, -5015, "certificate expired or not yet valid")                                 \
    X(SWM_EWRONGCLUSTER, -5016, "peer belongs to another cluster")                                 \
    X(SWM_ENOTMANAGER, -5017, "this node is not a swarm manager")

enum swm_errno {
#define SWM_ERR_ENUM(name, value, msg) name = value,
    SWM_ERRNO_MAP(SWM_ERR_ENUM)
#undef SWM_ERR_ENUM
};

/* Returns a static, human-readable description of err (a project code or a
 * -errno value). Never returns NULL. */
const char *swm_strerror(int err);

/* Context that travels up the stack with an error, in the spirit of raft's
 * ErrMsgWrapf: the innermost failure sets it, each caller may prefix what it
 * was doing. The message is one line meant for a user. */
struct swm_err {
    int code;
    char msg[512];
};

/* Sets err (may be NULL) to code and a formatted message. Returns code, so it
 * can be used as `return swm_err_set(err, -EINVAL, "...")`. */
int swm_err_set(struct swm_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with a formatted context and ": ". Returns err->code.
 * If err is NULL returns code. */
int swm_err_wrap(struct swm_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets err from code alone, using swm_strerror() as the message, unless err
 * already carries that code with a message. Returns code. */
int swm_err_code(struct swm_err *err, int code);

/* Clears err to "no error". Accepts NULL. */
void swm_err_clear(struct swm_err *err);

#endif
