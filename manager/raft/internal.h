/* Internals shared by the files of manager/raft/. No other module includes
 * this. */
#ifndef SWM_MANAGER_RAFT_INTERNAL_H
#define SWM_MANAGER_RAFT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manager/raft/raft.h"

/* Entry data lives in reference-counted blobs so that the log, the
 * messages and the readies that carry one entry share its bytes: a ready
 * stays valid whatever the core does to its log afterwards. The data
 * pointer handed around is the blob's payload. */
void *raft__blob_new(const void *src, size_t len); /* NULL on ENOMEM; len > 0 */
void raft__blob_retain(const void *data);          /* accepts NULL */
void raft__blob_release(const void *data);         /* accepts NULL */

/* Copies src into dst with a fresh blob (for borrowed entries). Returns 0 or
 * -ENOMEM. */
int raft__entry_copy_in(struct raft_entry *dst, const struct raft_entry *src);
/* dst = src sharing the blob. */
void raft__entry_share(struct raft_entry *dst, const struct raft_entry *src);
void raft__entry_release(struct raft_entry *e);

/* The in-memory log: every entry after `offset` (thesis §5.3). Entries up to
 * offset were compacted into a snapshot; offset_term is the term of the
 * entry at offset, or 0 if it is unknown (then index offset does not match
 * anything and a follower that needs it gets a snapshot). `stable` is the
 * last index known to be durable on this member's disk. */
struct raft__log {
    struct raft_entry *entries; /* entries[i].index == offset + 1 + i */
    size_t n, cap;
    uint64_t offset;
    uint64_t offset_term;
    uint64_t stable;
};

void raft__log_free(struct raft__log *l);
uint64_t raft__log_last_index(const struct raft__log *l);
uint64_t raft__log_last_term(const struct raft__log *l);
/* Sets *term to the term at index and returns true, or false if index is
 * compacted (or offset with unknown term) or past the end. */
bool raft__log_term(const struct raft__log *l, uint64_t index, uint64_t *term);
bool raft__log_match(const struct raft__log *l, uint64_t index, uint64_t term);
/* The entry at index (must be in offset+1..last). */
const struct raft_entry *raft__log_at(const struct raft__log *l, uint64_t index);
/* Appends e (sharing its blob) at last+1. Returns 0 or -ENOMEM. */
int raft__log_append(struct raft__log *l, const struct raft_entry *e);
/* Reserves room for n more entries. Returns 0 or -ENOMEM. */
int raft__log_reserve(struct raft__log *l, size_t n);
/* Drops entries with index >= from (from > offset); lowers stable. */
void raft__log_truncate(struct raft__log *l, uint64_t from);
/* Drops entries up to index (offset <= index <= last). */
void raft__log_compact(struct raft__log *l, uint64_t index);
/* Replaces the whole log by an empty one after (index, term). */
void raft__log_reset(struct raft__log *l, uint64_t index, uint64_t term);
/* The largest index <= index whose term is <= term, or the offset: where a
 * leader's log cannot conflict with a follower that rejected (thesis
 * §5.4.2 fast back-off, etcd's findConflictByTerm). */
uint64_t raft__log_find_conflict_by_term(const struct raft__log *l, uint64_t index, uint64_t term);
/* Up-to-date check for votes (thesis §3.6.1). */
bool raft__log_up_to_date(const struct raft__log *l, uint64_t last_index, uint64_t last_term);

#endif
