/* Helpers shared by the store tests: temporary stores, objects built through
 * the allocation seam (so proto_free() can free them, as the log does), and
 * raw LMDB access to damage a store on purpose. */
#ifndef SWM_TESTS_UNIT_STORE_FIXTURE_H
#define SWM_TESTS_UNIT_STORE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* A fresh directory under $TMPDIR (or /tmp); free with fixture_rmdir. */
char *fixture_tmpdir(void);
void fixture_rmdir(char *dir);

/* Opens a store in dir, failing the test on error. */
struct store *fixture_open(const char *dir);

/* Objects with the given fields; version 0 leaves meta.version unset.
 * created_at/updated_at are set to `stamp` when non-zero. */
Swarmc__Node *fixture_node(const char *id, uint64_t version);
Swarmc__Service *fixture_service(const char *id, const char *name, uint64_t version);
Swarmc__Task *fixture_task(const char *id, const char *service_id, const char *node_id,
                           Swarmc__TaskState desired, uint64_t version);
Swarmc__Cluster *fixture_cluster(const char *id, uint64_t version);

/* An empty entry, and an action appended to it (takes object). */
Swarmc__StoreEntry *fixture_entry(void);
void fixture_add(Swarmc__StoreEntry *e, Swarmc__StoreAction__Kind kind, void *object);

/* An entry with one action. */
Swarmc__StoreEntry *fixture_entry1(Swarmc__StoreAction__Kind kind, void *object);

/* Applies entries as one batch right after the applied index; fails the test
 * unless the batch committed. Frees the entries. results may be NULL when
 * every entry must succeed. */
void fixture_apply(struct store *s, Swarmc__StoreEntry **entries, size_t n,
                   struct store_apply_result *results);

/* Applies one entry; returns its outcome code (SWM_ESTALE...). Frees it. */
int fixture_apply1(struct store *s, Swarmc__StoreEntry *entry);

/* Task ids of a task list, sorted and joined with ',' (static buffer). */
const char *fixture_task_ids(Swarmc__Task **tasks, size_t n);

/* Writes val under key in table db of the (closed) store in dir, with raw
 * LMDB. dupsort must match the table's flags. */
void fixture_raw_put(const char *dir, const char *db, const void *key, size_t key_len,
                     const void *val, size_t val_len, int dupsort);

/* A fresh store in a temp dir, for cmocka setup/teardown: *state becomes
 * a struct store_fx, which teardown closes and removes. */
struct store_fx {
    char *dir;
    struct store *s;
};
int fixture_store_setup(void **state);
int fixture_store_teardown(void **state);

#endif
