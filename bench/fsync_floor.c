/* The disk's floor for a durable commit (issue 3): what one small durable
 * write costs on the filesystem a data dir lives on, measured one after the
 * other (no overlap), so no Raft commit there can beat it:
 *
 *   overwrite 4 KiB + fdatasync   a block already allocated: the device flush
 *                                 alone, no metadata (what a WAL with
 *                                 preallocated segments pays, e.g. etcd's)
 *   append 64 B + fdatasync       the file grows: the size change goes through
 *                                 the filesystem journal too
 *   overwrite 4 KiB + fsync       fdatasync plus the timestamps
 *   lmdb commit, 1 put of 64 B    mdb_txn_commit with LMDB's default sync,
 *                                 opened as store/store.c opens the store
 *                                 (MDB_NOTLS): it writes the dirty pages,
 *                                 fdatasyncs, then writes the meta page
 *                                 O_DSYNC, so two flushes. Our log commits
 *                                 this way, so this is swarmc's real floor.
 *
 * Each case runs twice. First as any program sees it ("CPUs idle"): the
 * thread sleeps in the flush and the CPU may halt. Then with the CPUs kept
 * busy ("CPUs busy") by one spinning SCHED_IDLE thread per CPU (they run
 * only when nothing else wants the CPU, so they take nothing from other
 * work). On this machine (a Firecracker guest, HZ=250) there are minutes
 * when every flush with the CPUs idle takes exactly one 4 ms tick, and
 * with the CPUs kept busy does not, as if a halted vCPU were woken for the
 * completion only at the next tick; at other times the spinners add ~0.1
 * ms. The first line is what a process that sleeps in the flush pays; the
 * second tells the device apart from the wake-up (docs/benchmarks.md).
 *
 * Prints one line per case; asserts nothing (DESIGN.md §12).
 *
 *   fsync_floor [iterations [dir]]   (default 200, /var/tmp)
 *
 * The files go in a temp dir made under dir and removed at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VALUE_SIZE 64
#define BLOCK_SIZE 4096

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static double percentile(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return sorted[(rank > n ? n : rank) - 1];
}

static const char *mode = "CPUs idle";

/* Sorts the samples (us) and prints one line; total_us is the wall time. */
static void report(const char *what, double *lat_us, size_t n, double total_us)
{
    qsort(lat_us, n, sizeof(*lat_us), cmp_double);
    printf("%-28s %-10s %zu ops: p50 %.0f us, p99 %.0f us, max %.0f us, %.0f ops/s\n", what, mode,
           n, percentile(lat_us, n, 50), percentile(lat_us, n, 99), lat_us[n - 1],
           (double)n / (total_us / 1e6));
    fflush(stdout);
}

enum file_case {
    OVERWRITE_FDATASYNC,
    APPEND_FDATASYNC,
    OVERWRITE_FSYNC,
};

/* One small write then one flush, n times, in a fresh file under dir. */
static int time_file(const char *dir, enum file_case c, double *lat_us, size_t n)
{
    static const char *names[] = {
        [OVERWRITE_FDATASYNC] = "overwrite 4 KiB + fdatasync",
        [APPEND_FDATASYNC] = "append 64 B + fdatasync",
        [OVERWRITE_FSYNC] = "overwrite 4 KiB + fsync",
    };
    char path[4096];
    char block[BLOCK_SIZE];
    int rc = -1;
    snprintf(path, sizeof(path), "%s/file%d", dir, (int)c);
    memset(block, 'x', sizeof(block));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fsync_floor: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* The overwrite cases rewrite a block that is allocated and already
     * durable, so the flush carries data only (plus timestamps for fsync). */
    if (c != APPEND_FDATASYNC &&
        (pwrite(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block) || fsync(fd) != 0)) {
        fprintf(stderr, "fsync_floor: preparing %s: %s\n", path, strerror(errno));
        goto out;
    }
    double start = now_us();
    for (size_t i = 0; i < n; i++) {
        double t0 = now_us();
        ssize_t w;
        int f;
        if (c == APPEND_FDATASYNC)
            w = pwrite(fd, block, VALUE_SIZE, (off_t)(i * VALUE_SIZE)) == VALUE_SIZE ? 0 : -1;
        else
            w = pwrite(fd, block, sizeof(block), 0) == (ssize_t)sizeof(block) ? 0 : -1;
        f = c == OVERWRITE_FSYNC ? fsync(fd) : fdatasync(fd);
        if (w < 0 || f != 0) {
            fprintf(stderr, "fsync_floor: %s: %s\n", names[c], strerror(errno));
            goto out;
        }
        lat_us[i] = now_us() - t0;
    }
    report(names[c], lat_us, n, now_us() - start);
    rc = 0;
out:
    close(fd);
    unlink(path);
    return rc;
}

/* One write transaction with one put (8-byte big-endian key, 64-byte value,
 * appended as the log appends), committed with LMDB's default sync, n
 * times. */
static int time_lmdb(const char *dir, double *lat_us, size_t n)
{
    char path[4096];
    char value[VALUE_SIZE];
    MDB_env *env = NULL;
    MDB_dbi dbi;
    MDB_txn *txn;
    int rc;
    snprintf(path, sizeof(path), "%s/lmdb", dir);
    memset(value, 'x', sizeof(value));
    if (mkdir(path, 0700) != 0) {
        fprintf(stderr, "fsync_floor: mkdir %s: %s\n", path, strerror(errno));
        return -1;
    }
    rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(env, 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env, (size_t)1 << 30);
    if (rc == 0)
        rc = mdb_env_open(env, path, MDB_NOTLS, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "log", MDB_CREATE, &dbi);
        rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
    }
    if (rc != 0) {
        fprintf(stderr, "fsync_floor: opening LMDB in %s: %s\n", path, mdb_strerror(rc));
        goto out;
    }
    double start = now_us();
    for (size_t i = 0; i < n; i++) {
        unsigned char kb[8];
        for (int b = 0; b < 8; b++)
            kb[b] = (unsigned char)((uint64_t)(i + 1) >> (56 - 8 * b));
        MDB_val key = {.mv_size = sizeof(kb), .mv_data = kb};
        MDB_val val = {.mv_size = sizeof(value), .mv_data = value};
        double t0 = now_us();
        rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc == 0) {
            rc = mdb_put(txn, dbi, &key, &val, MDB_APPEND);
            rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
        }
        if (rc != 0) {
            fprintf(stderr, "fsync_floor: LMDB commit: %s\n", mdb_strerror(rc));
            goto out;
        }
        lat_us[i] = now_us() - t0;
    }
    report("lmdb commit, 1 put of 64 B", lat_us, n, now_us() - start);
out:
    mdb_env_close(env);
    snprintf(path, sizeof(path), "%s/lmdb/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lmdb/lock.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lmdb", dir);
    rmdir(path);
    return rc == 0 ? 0 : -1;
}

static atomic_int spinning;

static void *spin(void *arg)
{
    (void)arg;
    struct sched_param none = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
    while (atomic_load_explicit(&spinning, memory_order_relaxed))
        ;
    return NULL;
}

static int run_cases(const char *dir, double *lat_us, size_t n)
{
    return time_file(dir, OVERWRITE_FDATASYNC, lat_us, n) != 0 ||
                   time_file(dir, APPEND_FDATASYNC, lat_us, n) != 0 ||
                   time_file(dir, OVERWRITE_FSYNC, lat_us, n) != 0 || time_lmdb(dir, lat_us, n) != 0
               ? -1
               : 0;
}

/* The cases again with one SCHED_IDLE spinner per CPU, so no CPU halts. */
static int run_cases_busy(const char *dir, double *lat_us, size_t n)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pthread_t threads[256];
    size_t started = 0;
    atomic_store(&spinning, 1);
    for (long i = 0; i < cpus && started < sizeof(threads) / sizeof(threads[0]); i++)
        if (pthread_create(&threads[started], NULL, spin, NULL) == 0)
            started++;
    mode = "CPUs busy";
    int rc = started > 0 ? run_cases(dir, lat_us, n) : -1;
    atomic_store(&spinning, 0);
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (started == 0)
        fprintf(stderr, "fsync_floor: cannot start the spinning threads\n");
    return rc;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    unsigned long n = argc > 1 ? strtoul(argv[1], &end, 10) : 200;
    const char *parent = argc > 2 ? argv[2] : "/var/tmp";
    if (argc > 3 || (end != NULL && *end != '\0') || n == 0 || n > 10000000) {
        fprintf(stderr, "usage: fsync_floor [iterations [dir]]\n");
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/swarmc-fsync-floor-XXXXXX", parent);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "fsync_floor: mkdtemp in %s: %s\n", parent, strerror(errno));
        return 1;
    }
    double *lat_us = calloc(n, sizeof(*lat_us));
    int rc = lat_us == NULL;
    printf("fsync floor in %s, %lu iterations each, one at a time\n", parent, n);
    if (rc == 0)
        rc = run_cases(dir, lat_us, n) != 0 || run_cases_busy(dir, lat_us, n) != 0;
    free(lat_us);
    if (rmdir(dir) != 0)
        fprintf(stderr, "fsync_floor: rmdir %s: %s\n", dir, strerror(errno));
    return rc;
}
