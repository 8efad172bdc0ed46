/* The control API over a real cluster (../manager/cluster.h) with the log
 * open: requests are handled by controlapi_handle and the loop runs until
 * the reply arrives. */
#ifndef SWM_TESTS_UNIT_CONTROLAPI_API_H
#define SWM_TESTS_UNIT_CONTROLAPI_API_H

#include "../manager/cluster.h"
#include "manager/controlapi/controlapi.h"

struct afx {
    struct cfx c;
    struct controlapi *api;
};

/* A bootstrapped cluster, its log and the control API for node CFX_NODE. */
void afx_setup(struct afx *f);
/* Closes the control API (if still open) and tears the cluster down. */
void afx_teardown(struct afx *f);

/* Handles req and returns the reply (the caller frees it with
 * proto_free), running the loop until it comes. */
Swarmc__ControlResponse *afx_call(struct afx *f, const Swarmc__ControlRequest *req);

/* Request shorthands. */
Swarmc__ControlResponse *afx_create(struct afx *f, const Swarmc__ServiceSpec *spec);
Swarmc__ControlResponse *afx_get(struct afx *f, const char *ref);
Swarmc__ControlResponse *afx_update(struct afx *f, const char *id, uint64_t version,
                                    const Swarmc__ServiceSpec *spec, bool rollback);
Swarmc__ControlResponse *afx_remove(struct afx *f, const char *ref);

/* A valid replicated service spec (image may be NULL: none); free with
 * proto_free. */
Swarmc__ServiceSpec *afx_spec(const char *name, const char *image, uint64_t replicas);

/* Fails unless resp is an error with code and message (msg NULL: any);
 * frees resp. */
void afx_expect_error(Swarmc__ControlResponse *resp, int code, const char *msg);

/* Fails unless resp succeeded with exactly one service; returns it (owned
 * by the caller) and frees resp. */
Swarmc__Service *afx_expect_service(Swarmc__ControlResponse *resp);

/* Creates a service (must succeed) and returns it as stored. */
Swarmc__Service *afx_create_ok(struct afx *f, const char *name, const char *image,
                               uint64_t replicas);

/* How many services the store holds. */
size_t afx_n_services(struct afx *f);

#endif
