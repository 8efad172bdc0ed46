/* Validation of user-supplied specs before the control API proposes them
 * (DESIGN.md §4 step 1). Checks and one-line messages follow SwarmKit's
 * manager/controlapi (and the Docker daemon where SwarmKit checks nothing),
 * so users see the errors Docker shows, e.g. "ContainerSpec: image reference
 * must be provided". Pure functions: no store, no I/O.
 */
#ifndef SWM_MANAGER_CONTROLAPI_VALIDATE_H
#define SWM_MANAGER_CONTROLAPI_VALIDATE_H

#include <stdbool.h>

#include "common/err.h"
#include "proto/codec.h"

/* Checks a service spec (borrowed; not modified). An empty name is accepted:
 * the caller generates one, as Docker does. Returns 0, or SWM_EINVAL_SPEC
 * with err set to the first problem found (-ENOMEM if parsing constraints
 * ran out of memory). Checked: name syntax and length, image reference,
 * env entries, mounts, stop grace period, health check durations, resources
 * (minimums, reservations <= limits), restart policy, placement (constraints,
 * preferences, max replicas only in replicated mode), update and rollback
 * configs, published ports, mode and replicas. */
int spec_validate_service(const Swarmc__ServiceSpec *spec, struct swm_err *err);

/* Checks a node spec (availability, role, labels). Returns 0 or
 * SWM_EINVAL_SPEC with err set. */
int spec_validate_node_spec(const Swarmc__NodeSpec *spec, struct swm_err *err);

/* Checks an image reference with the Docker reference grammar
 * ([domain/]path[:tag][@digest], lowercase repository). Exposed for the CLI
 * and tests. */
bool spec_image_ref_valid(const char *ref);

#endif
