/* Generic access to protobuf-c messages through their descriptors, so that
 * the CLI converts any message to JSON and sets any spec field from a flag
 * with one piece of code instead of one function per field.
 *
 * Messages built here are allocated through proto_allocator (swm_malloc), so
 * proto_free releases whole trees, whether they were unpacked or built.
 */
#ifndef SWM_CLI_MSG_H
#define SWM_CLI_MSG_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

/* A new, initialized (all fields unset) message of type desc, or NULL on
 * ENOMEM. Free with proto_free. */
ProtobufCMessage *cli_msg_new(const ProtobufCMessageDescriptor *desc);

/* Address of field f's member inside m. */
void *cli_msg_member(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

/* True if optional/oneof field f is set in m (repeated: non-empty). */
bool cli_msg_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

/* Size of one element of a field of type `type` in a repeated array. */
size_t cli_msg_elem_size(ProtobufCType type);

/* Resolves a dotted path of field names ("task.restart.delay") from m. All
 * but the last name must be singular message fields; with `create` missing
 * ones are allocated, otherwise a missing one makes the result NULL. On
 * success sets *owner to the message holding the last field and returns its
 * descriptor. Returns NULL on ENOMEM, on a missing message without create,
 * or on a path that does not name a field (a programming error). */
const ProtobufCFieldDescriptor *cli_msg_resolve(ProtobufCMessage *m, const char *path, bool create,
                                                ProtobufCMessage **owner);

/* Marks optional scalar field f of m as set (its has_ flag), if it has one. */
void cli_msg_mark_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

#endif
