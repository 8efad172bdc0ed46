/* Builders for the objects the scheduler and orchestrator tests feed in.
 * Everything is allocated through the swm_malloc seam so proto_free()
 * releases it; builders abort the test on ENOMEM (tests only). */
#ifndef SWM_TESTS_UNIT_SCHEDULER_OBJECTS_H
#define SWM_TESTS_UNIT_SCHEDULER_OBJECTS_H

#include <stdint.h>

#include "proto/codec.h"

#define OBJ_SEC INT64_C(1000000000)
#define OBJ_MIB (INT64_C(1) << 20)
#define OBJ_CPU INT64_C(1000000000)

#define ST(x) SWARMC__TASK_STATE__TASK_STATE_##x

/* A READY, ACTIVE worker on linux/amd64 with the given capacity. */
Swarmc__Node *obj_node(const char *id, int64_t nano_cpus, int64_t memory_bytes);
void obj_node_state(Swarmc__Node *n, Swarmc__NodeState state);
void obj_node_availability(Swarmc__Node *n, Swarmc__NodeAvailability availability);
void obj_node_label(Swarmc__Node *n, const char *key, const char *value);
void obj_node_hostname(Swarmc__Node *n, const char *hostname);
void obj_node_role(Swarmc__Node *n, Swarmc__NodeRole role);
void obj_node_platform(Swarmc__Node *n, const char *os, const char *arch);
void obj_node_addr(Swarmc__Node *n, const char *addr);

/* A task of service `service` (spec_version `version`) in `slot`, on `node`
 * (NULL = unassigned), observed `state`, desired `desired`, with an image. */
Swarmc__Task *obj_task(const char *id, const char *service, uint64_t version, uint64_t slot,
                       const char *node, Swarmc__TaskState state, Swarmc__TaskState desired);
void obj_task_reserve(Swarmc__Task *t, int64_t nano_cpus, int64_t memory_bytes);
void obj_task_constraint(Swarmc__Task *t, const char *expr);
void obj_spec_constraint(Swarmc__TaskSpec *ts, const char *expr);
void obj_task_platform(Swarmc__Task *t, const char *os, const char *arch);
void obj_task_max_replicas(Swarmc__Task *t, uint64_t max);
void obj_task_times(Swarmc__Task *t, int64_t created_ns, int64_t status_ns);
void obj_task_err(Swarmc__Task *t, const char *err);
void obj_task_exit(Swarmc__Task *t, int32_t code);
void obj_set_str(char **field, const char *value);

/* A service with an image "nginx:1", spec_version 1. */
Swarmc__Service *obj_service(const char *id, const char *name, Swarmc__ServiceMode mode,
                             uint64_t replicas);
Swarmc__TaskSpec *obj_service_task(Swarmc__Service *s);
Swarmc__RestartPolicy *obj_restart(Swarmc__TaskSpec *ts);
Swarmc__UpdateConfig *obj_update(Swarmc__Service *s);
Swarmc__Placement *obj_placement(Swarmc__TaskSpec *ts);
void obj_append_str(char ***arr, size_t *n, const char *value);

/* A zeroed message of the given type, for building specs by hand. */
void *obj_new(const ProtobufCMessageDescriptor *desc);

#endif
