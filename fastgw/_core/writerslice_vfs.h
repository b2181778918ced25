/* The yielding SQLite VFS and the per-thread time slice behind writerslice.pyx.
 *
 * SQLite's VFS structures are declared here from its documented, stable ABI (sqlite3.h,
 * "OS Interface Object" and "OS Interface Open File Handle"), so the build needs no SQLite
 * headers and links against no SQLite: the two API functions used are looked up at run
 * time in the library Python's sqlite3 module already loaded.
 *
 * Every file the VFS opens is the default VFS's file, placed right after a small header
 * (the usual shim layout); each method forwards to it, and the I/O methods first check
 * the calling thread's slice.
 */
#ifndef FASTGW_WRITERSLICE_VFS_H
#define FASTGW_WRITERSLICE_VFS_H

#include <dlfcn.h>
#include <math.h>
#include <stddef.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef long long fg_int64;
typedef struct fg_file fg_file;
typedef struct fg_vfs fg_vfs;

typedef struct fg_io_methods {
    int iVersion;
    int (*xClose)(fg_file *);
    int (*xRead)(fg_file *, void *, int, fg_int64);
    int (*xWrite)(fg_file *, const void *, int, fg_int64);
    int (*xTruncate)(fg_file *, fg_int64);
    int (*xSync)(fg_file *, int);
    int (*xFileSize)(fg_file *, fg_int64 *);
    int (*xLock)(fg_file *, int);
    int (*xUnlock)(fg_file *, int);
    int (*xCheckReservedLock)(fg_file *, int *);
    int (*xFileControl)(fg_file *, int, void *);
    int (*xSectorSize)(fg_file *);
    int (*xDeviceCharacteristics)(fg_file *);
    /* version 2 */
    int (*xShmMap)(fg_file *, int, int, int, void volatile **);
    int (*xShmLock)(fg_file *, int, int, int);
    void (*xShmBarrier)(fg_file *);
    int (*xShmUnmap)(fg_file *, int);
    /* version 3 */
    int (*xFetch)(fg_file *, fg_int64, int, void **);
    int (*xUnfetch)(fg_file *, fg_int64, void *);
} fg_io_methods;

struct fg_file {
    const fg_io_methods *pMethods;
};

struct fg_vfs {
    int iVersion;
    int szOsFile;
    int mxPathname;
    fg_vfs *pNext;
    const char *zName;
    void *pAppData;
    int (*xOpen)(fg_vfs *, const char *, fg_file *, int, int *);
    int (*xDelete)(fg_vfs *, const char *, int);
    int (*xAccess)(fg_vfs *, const char *, int, int *);
    int (*xFullPathname)(fg_vfs *, const char *, int, char *);
    void *(*xDlOpen)(fg_vfs *, const char *);
    void (*xDlError)(fg_vfs *, int, char *);
    void (*(*xDlSym)(fg_vfs *, void *, const char *))(void);
    void (*xDlClose)(fg_vfs *, void *);
    int (*xRandomness)(fg_vfs *, int, char *);
    int (*xSleep)(fg_vfs *, int);
    int (*xCurrentTime)(fg_vfs *, double *);
    int (*xGetLastError)(fg_vfs *, int, char *);
    /* version 2 */
    int (*xCurrentTimeInt64)(fg_vfs *, fg_int64 *);
    /* version 3 */
    void *xSetSystemCall;
    void *xGetSystemCall;
    void *xNextSystemCall;
};

/* ---- the calling thread's slice -------------------------------------------------- */

static __thread double fg_began;
static __thread double fg_quantum_s = -1.0;  /* < 0: never set, never yields */
static __thread double fg_longest_s = -1.0;  /* the quantum may grow up to this on a busy core
                                               (< 0: without bound, until it stops yielding) */
static __thread double fg_current_s = -1.0;  /* the quantum in force */

/* A yield that waited this long handed the core to a thread that had work for a whole
   scheduler slice: the core is saturated, and yielding every few us would starve this thread
   (measured: the usage writer's queue and the soak's RSS climbed). Its quantum doubles, up to
   the longest; a yield that comes back quickly shrinks it by a fifth, down to the base. Not
   all the way back at once: on a saturated core every second or third yield comes straight
   back (the other thread has just had its turn), so a reset would undo the growth; on a
   core that is only busy now and then (c=1), one long wait is followed by quick ones that
   bring the quantum back within a few yields. */
#define FG_BUSY_WAIT 1e-3
#define FG_FREE_WAIT 3e-4
#define FG_SHRINK 0.8
#define FG_NEVER 0.1  /* a quantum grown past this stops yielding (the tick preempts it) */
static unsigned long fg_yield_count;      /* every thread's yields here (diagnostics: racy, never decreasing) */
static unsigned long fg_vfs_yield_count;  /* ... of which from inside a file read, write or sync */

static inline double fg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 1 if this thread has used its quantum (cheap: no syscall, the clock is in the vDSO). */
static int fg_slice_due(void) {
    return fg_current_s >= 0.0 && fg_now() - fg_began >= fg_current_s;
}

static void fg_slice_yield(void) {
    double before = fg_now(), waited;
    sched_yield();
    fg_yield_count++;
    fg_began = fg_now();
    waited = fg_began - before;
    if (waited >= FG_BUSY_WAIT) {
        double grown = fg_current_s > 0.0 ? fg_current_s * 2.0 : 1e-5;
        if (fg_longest_s >= 0.0 && grown > fg_longest_s) grown = fg_longest_s;
        fg_current_s = grown > FG_NEVER ? -1.0 : grown;  /* -1: no more yields until reset */
    } else if (waited < FG_FREE_WAIT && fg_current_s > fg_quantum_s) {
        fg_current_s = fg_current_s * FG_SHRINK < fg_quantum_s ? fg_quantum_s : fg_current_s * FG_SHRINK;
    }
}

static int fg_slice_check(void) {
    if (!fg_slice_due()) return 0;
    fg_slice_yield();
    return 1;
}

static void fg_slice_check_in_vfs(void) {
    if (fg_slice_check()) fg_vfs_yield_count++;
}

static void fg_slice_set_quantum(double seconds, double longest) {
    fg_quantum_s = isinf(seconds) ? -1.0 : (seconds < 0.0 ? 0.0 : seconds);
    fg_longest_s = isinf(longest) ? -1.0 : (longest > fg_quantum_s ? longest : fg_quantum_s);
    fg_current_s = fg_quantum_s;
}

static void fg_slice_restart(void) { fg_began = fg_now(); }

static double fg_slice_quantum(void) { return fg_quantum_s < 0.0 ? INFINITY : fg_quantum_s; }

static double fg_slice_current(void) { return fg_current_s < 0.0 ? INFINITY : fg_current_s; }

static unsigned long fg_slice_yields(void) { return fg_yield_count; }

static unsigned long fg_slice_vfs_yields(void) { return fg_vfs_yield_count; }

/* ---- the VFS ------------------------------------------------------------------------ */

typedef struct {
    fg_file base;
    fg_file *real;  /* the default VFS's file, right after this header */
} fg_shim_file;

static fg_vfs *fg_real_vfs;
static fg_vfs fg_the_vfs;
static char fg_vfs_name[64];

#define FG_REAL(f) (((fg_shim_file *)(f))->real)

static int fg_close(fg_file *f) { return FG_REAL(f)->pMethods->xClose(FG_REAL(f)); }
static int fg_read(fg_file *f, void *buf, int n, fg_int64 off) {
    fg_slice_check_in_vfs();
    return FG_REAL(f)->pMethods->xRead(FG_REAL(f), buf, n, off);
}
static int fg_write(fg_file *f, const void *buf, int n, fg_int64 off) {
    fg_slice_check_in_vfs();
    return FG_REAL(f)->pMethods->xWrite(FG_REAL(f), buf, n, off);
}
static int fg_truncate(fg_file *f, fg_int64 size) {
    fg_slice_check_in_vfs();
    return FG_REAL(f)->pMethods->xTruncate(FG_REAL(f), size);
}
static int fg_sync(fg_file *f, int flags) {
    fg_slice_check_in_vfs();
    return FG_REAL(f)->pMethods->xSync(FG_REAL(f), flags);
}
static int fg_file_size(fg_file *f, fg_int64 *size) { return FG_REAL(f)->pMethods->xFileSize(FG_REAL(f), size); }
static int fg_lock(fg_file *f, int level) { return FG_REAL(f)->pMethods->xLock(FG_REAL(f), level); }
static int fg_unlock(fg_file *f, int level) { return FG_REAL(f)->pMethods->xUnlock(FG_REAL(f), level); }
static int fg_check_reserved(fg_file *f, int *out) {
    return FG_REAL(f)->pMethods->xCheckReservedLock(FG_REAL(f), out);
}
static int fg_file_control(fg_file *f, int op, void *arg) {
    return FG_REAL(f)->pMethods->xFileControl(FG_REAL(f), op, arg);
}
static int fg_sector_size(fg_file *f) { return FG_REAL(f)->pMethods->xSectorSize(FG_REAL(f)); }
static int fg_device_characteristics(fg_file *f) {
    return FG_REAL(f)->pMethods->xDeviceCharacteristics(FG_REAL(f));
}
static int fg_shm_map(fg_file *f, int page, int size, int extend, void volatile **pp) {
    return FG_REAL(f)->pMethods->xShmMap(FG_REAL(f), page, size, extend, pp);
}
static int fg_shm_lock(fg_file *f, int offset, int n, int flags) {
    return FG_REAL(f)->pMethods->xShmLock(FG_REAL(f), offset, n, flags);
}
static void fg_shm_barrier(fg_file *f) { FG_REAL(f)->pMethods->xShmBarrier(FG_REAL(f)); }
static int fg_shm_unmap(fg_file *f, int del) { return FG_REAL(f)->pMethods->xShmUnmap(FG_REAL(f), del); }
static int fg_fetch(fg_file *f, fg_int64 off, int n, void **pp) {
    return FG_REAL(f)->pMethods->xFetch(FG_REAL(f), off, n, pp);
}
static int fg_unfetch(fg_file *f, fg_int64 off, void *p) {
    return FG_REAL(f)->pMethods->xUnfetch(FG_REAL(f), off, p);
}

/* One table per method version: SQLite only calls what the version it is told offers. */
#define FG_METHODS(version) { version, fg_close, fg_read, fg_write, fg_truncate, fg_sync, fg_file_size, \
    fg_lock, fg_unlock, fg_check_reserved, fg_file_control, fg_sector_size, fg_device_characteristics, \
    fg_shm_map, fg_shm_lock, fg_shm_barrier, fg_shm_unmap, fg_fetch, fg_unfetch }
static const fg_io_methods fg_methods_v1 = FG_METHODS(1);
static const fg_io_methods fg_methods_v2 = FG_METHODS(2);
static const fg_io_methods fg_methods_v3 = FG_METHODS(3);

static int fg_open(fg_vfs *vfs, const char *name, fg_file *f, int flags, int *out_flags) {
    fg_shim_file *shim = (fg_shim_file *)f;
    int rc;
    (void)vfs;
    shim->real = (fg_file *)(shim + 1);
    shim->real->pMethods = NULL;
    rc = fg_real_vfs->xOpen(fg_real_vfs, name, shim->real, flags, out_flags);
    if (shim->real->pMethods == NULL) {
        shim->base.pMethods = NULL;  /* nothing to close: SQLite will not call xClose */
    } else {
        int version = shim->real->pMethods->iVersion;
        shim->base.pMethods = version >= 3 ? &fg_methods_v3 : version == 2 ? &fg_methods_v2 : &fg_methods_v1;
    }
    return rc;
}
static int fg_delete(fg_vfs *vfs, const char *name, int sync_dir) {
    (void)vfs;
    return fg_real_vfs->xDelete(fg_real_vfs, name, sync_dir);
}
static int fg_access(fg_vfs *vfs, const char *name, int flags, int *out) {
    (void)vfs;
    return fg_real_vfs->xAccess(fg_real_vfs, name, flags, out);
}
static int fg_full_pathname(fg_vfs *vfs, const char *name, int n, char *out) {
    (void)vfs;
    return fg_real_vfs->xFullPathname(fg_real_vfs, name, n, out);
}

typedef fg_vfs *(*fg_vfs_find_fn)(const char *);
typedef int (*fg_vfs_register_fn)(fg_vfs *, int);

/* 0: registered (now or before); -1: the SQLite API was not found; -2: SQLite refused. */
static int fg_vfs_register(const char *library, const char *name) {
    void *handle;
    fg_vfs_find_fn find;
    fg_vfs_register_fn reg;
    fg_vfs *real;
    if (fg_real_vfs != NULL) return strcmp(name, fg_vfs_name) == 0 ? 0 : -2;
    if (strlen(name) >= sizeof(fg_vfs_name)) return -2;
    handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    if (handle == NULL) return -1;
    find = (fg_vfs_find_fn)dlsym(handle, "sqlite3_vfs_find");
    reg = (fg_vfs_register_fn)dlsym(handle, "sqlite3_vfs_register");
    dlclose(handle);  /* NOLOAD took one more reference to a library that stays loaded */
    if (find == NULL || reg == NULL) return -1;
    real = find(NULL);
    if (real == NULL) return -1;
    /* Everything not overridden below (randomness, sleep, time, dl*) is the default VFS's
       own function: called with this struct, whose pAppData and sizes are copies. */
    memset(&fg_the_vfs, 0, sizeof(fg_vfs));  /* fields past the real struct's version are not there */
    memcpy(&fg_the_vfs, real, real->iVersion >= 3 ? sizeof(fg_vfs)
                              : real->iVersion == 2 ? offsetof(fg_vfs, xSetSystemCall)
                              : offsetof(fg_vfs, xCurrentTimeInt64));
    strcpy(fg_vfs_name, name);
    fg_the_vfs.zName = fg_vfs_name;
    fg_the_vfs.pNext = NULL;
    fg_the_vfs.szOsFile = (int)sizeof(fg_shim_file) + real->szOsFile;
    fg_the_vfs.xOpen = fg_open;
    fg_the_vfs.xDelete = fg_delete;
    fg_the_vfs.xAccess = fg_access;
    fg_the_vfs.xFullPathname = fg_full_pathname;
    fg_the_vfs.xSetSystemCall = NULL;  /* system-call overrides belong to the default VFS */
    fg_the_vfs.xGetSystemCall = NULL;
    fg_the_vfs.xNextSystemCall = NULL;
    if (fg_the_vfs.iVersion > 2) fg_the_vfs.iVersion = 2;
    fg_real_vfs = real;
    if (reg(&fg_the_vfs, 0) != 0) {
        fg_real_vfs = NULL;
        return -2;
    }
    return 0;
}

#endif
