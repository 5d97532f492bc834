/* spaces.h - the C API of the Spaces memory allocator.
 *
 * Valid C99 and C++. Every function here may be called from any thread unless its comment says
 * otherwise. Nothing in this header allocates or depends on anything but <stddef.h>.
 *
 * The malloc family is always available under the spaces_ names; the override library
 * (libspaces.a / libspaces.so) additionally exports malloc, free, operator new/delete and
 * friends as one-line forwarders onto these functions.
 */
#ifndef SPACES_SPACES_H
#define SPACES_SPACES_H

#include <stddef.h>

#define SPACES_VERSION_MAJOR 0
#define SPACES_VERSION_MINOR 1
#define SPACES_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH */
#define SPACES_VERSION (SPACES_VERSION_MAJOR * 10000 + SPACES_VERSION_MINOR * 100 + SPACES_VERSION_PATCH)

#if defined(SPACES_BUILDING_LIBRARY)
#define SPACES_API __attribute__((visibility("default")))
#else
#define SPACES_API
#endif

#if defined(__GNUC__)
#define SPACES_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define SPACES_MALLOC_ATTR
#endif

#ifdef __cplusplus
#define SPACES_NOEXCEPT noexcept
extern "C" {
#else
#define SPACES_NOEXCEPT
#endif

/* ---- The malloc family ------------------------------------------------------------------------
 * Contracts are those of C17/POSIX: a size that cannot be satisfied returns NULL with
 * errno = ENOMEM (never a crash); a zero size returns a unique, freeable pointer; every block of
 * 16 bytes or more is at least 16-byte aligned. spaces_free(NULL) is a no-op. Freeing a pointer
 * Spaces does not own, freeing twice, or a corrupted free list goes to the error handler. */
SPACES_API void *spaces_malloc(size_t size) SPACES_NOEXCEPT SPACES_MALLOC_ATTR;
SPACES_API void *spaces_calloc(size_t count, size_t size) SPACES_NOEXCEPT SPACES_MALLOC_ATTR;
SPACES_API void *spaces_realloc(void *p, size_t size) SPACES_NOEXCEPT;
/* reallocarray: realloc(p, count * size) with overflow check (ENOMEM). */
SPACES_API void *spaces_reallocarray(void *p, size_t count, size_t size) SPACES_NOEXCEPT;
SPACES_API void spaces_free(void *p) SPACES_NOEXCEPT;
/* Free with the size (or alignment) the block was requested with; a wrong size is reported. */
SPACES_API void spaces_free_sized(void *p, size_t size) SPACES_NOEXCEPT;
SPACES_API void spaces_free_aligned_sized(void *p, size_t alignment, size_t size) SPACES_NOEXCEPT;
/* Any power-of-two alignment (1 B up to 1 GiB). Not a power of two: NULL, errno = EINVAL. */
SPACES_API void *spaces_aligned_alloc(size_t alignment, size_t size) SPACES_NOEXCEPT SPACES_MALLOC_ATTR;
/* Whole pages (glibc's pvalloc): size rounded up to the page size, 0 gives one page; a size
 * whose round-up would overflow is NULL, errno = ENOMEM. */
SPACES_API void *spaces_pvalloc(size_t size) SPACES_NOEXCEPT SPACES_MALLOC_ATTR;
/* POSIX: alignment must be a power of two and a multiple of sizeof(void*), else EINVAL
 * (returned, errno untouched). */
SPACES_API int spaces_posix_memalign(void **out, size_t alignment, size_t size) SPACES_NOEXCEPT;
/* Bytes usable at p (>= the size requested); 0 for NULL. p must be a live block. */
SPACES_API size_t spaces_usable_size(const void *p) SPACES_NOEXCEPT;
/* 1 if p points into memory Spaces manages (a live slab, a large block, or an arena reserved
 * by Spaces), else 0. Never faults, whatever p is. Lock-free. */
SPACES_API int spaces_owns(const void *p) SPACES_NOEXCEPT;

/* ---- Regions ("chunks") -----------------------------------------------------------------------
 * A chunk is a heap of its own: its blocks live in its own slabs, so spaces_free()/free() of a
 * chunk block works from any thread, and the whole chunk can be walked, reset or destroyed at
 * once. Semantics (ceiling, walk, destroy) are in docs/regions.md. */
typedef struct spaces_chunk *SpacesChunk;

#define SPACES_CHUNK_EXCLUSIVE 1u  /* one thread allocates: no synchronisation on its alloc path */
/* With SPACES_CHUNK_EXCLUSIVE only: the blocks carved from the chunk's bump pages (the window's
 * blocks, below) are not recorded one by one, for bump-allocator speed. What that gives up, for
 * those blocks only (size-class, run and page blocks of the chunk are tracked as always):
 * spaces_chunk_walk returns -1 + ENOTSUP (it cannot visit them); spaces_free of one is accepted
 * and does nothing (the memory comes back at reset or destroy; a second free is not detected,
 * a pointer outside the carved part of a page is still reported); spaces_usable_size returns 0;
 * realloc copies up to the new size from the old block and what follows it in its page; the
 * chunk's stats count their bytes (up to each page's top) but not them in live_blocks. Ceilings,
 * footprint, reset and destroy are exact. docs/regions.md: "Untracked regions". */
#define SPACES_CHUNK_UNTRACKED 2u
#define SPACES_ZERO 0x10u          /* spaces_chunk_alloc flag: zero the block. Every flag has its
                                      own bit across all functions: one passed to the wrong
                                      function is EINVAL, never another behaviour (0.1: 1u) */

/* NULL + errno (EINVAL for unknown flags, ENOMEM). Any thread. */
SPACES_API SpacesChunk spaces_chunk_create(unsigned flags) SPACES_NOEXCEPT;
/* Frees every block of c at once (time proportional to slabs and large blocks, not blocks) and
 * returns its memory. NULL is a no-op. No other thread may use c during or after the call. */
SPACES_API void spaces_chunk_destroy(SpacesChunk c) SPACES_NOEXCEPT;
/* Frees every block and keeps c. Large blocks go back; as many slabs as the busiest of c's last 4
 * rounds (spans between resets) used stay, empty, for the next round (at least `chunk_keep_slabs`;
 * only that many with the option `chunk_reset_keep` 0). They count in the footprint, and go back
 * first at the ceiling. */
SPACES_API void spaces_chunk_reset(SpacesChunk c) SPACES_NOEXCEPT;
/* NULL + ENOMEM at the ceiling (after the pressure handler, if any, had its one chance). For an
 * EXCLUSIVE chunk only one thread may allocate at a time; otherwise any thread may. */
SPACES_API void *spaces_chunk_alloc(SpacesChunk c, size_t size, unsigned flags) SPACES_NOEXCEPT SPACES_MALLOC_ATTR;
SPACES_API void *spaces_chunk_aligned_alloc(SpacesChunk c, size_t alignment, size_t size, unsigned flags) SPACES_NOEXCEPT SPACES_MALLOC_ATTR;
/* Allocation windows: an EXCLUSIVE chunk's small blocks inline in the caller (the SDK's
 * Region::Allocate), with no call and no handle check, at bump-allocator speed.
 * An EXCLUSIVE chunk carves blocks back to back, 16-aligned, from its current page: any block
 * that fits the room when it is asked for, and blocks of 1..SPACES_WINDOW_MAX bytes when a new
 * page must be opened (larger ones then go to size classes or runs); the free room is
 * [cur, end), and each block's first 16-byte granule is
 * marked by storing 1 in the byte at address marks + (cur >> 4) (a map the chunk keeps for the
 * page it is filling; marks is 0 in an UNTRACKED chunk, whose blocks are not marked), which is
 * how walk, free and usable_size find it. spaces_chunk_window(c)
 * returns c's window, whose address is fixed for c's lifetime; a NULL, destroyed, shared-memory
 * or non-EXCLUSIVE chunk, or a library built to track blocks for ASan or valgrind, gets a window
 * that never has room. The thread allocating in c may take a block with
 * spaces_window_alloc(w, size): NULL when the window has no room for size bytes (or size is 0);
 * then spaces_chunk_alloc(c, size, 0), which refills the window, must be
 * called instead. This is exactly spaces_chunk_alloc's own fast path: the block is counted,
 * walked, freed and reset like any other. */
#define SPACES_WINDOW_MAX 1024u
struct spaces_window {
  size_t cur;   /* next block's address (16-aligned) */
  size_t end;   /* end of the room */
  size_t marks; /* the byte at marks + (address >> 4) marks a block starting at address; 0: none */
};
SPACES_API struct spaces_window *spaces_chunk_window(SpacesChunk c) SPACES_NOEXCEPT;
#if defined(__GNUC__)
static inline void *spaces_window_alloc(struct spaces_window *w, size_t size) {
  size_t cur = w->cur, need = (size + 15) & ~(size_t)15;
  /* One compare: need - 1 < room. (Size 0 gives need 0, so need - 1 = SIZE_MAX: no room; a size
   * near SIZE_MAX rounds to 0 or to more than any room.) */
  if (__builtin_expect(need - 1 >= w->end - cur, 0)) return NULL;
  if (cur == 0) __builtin_unreachable(); /* (a window with room has a cursor: the caller's null
                                            test folds away) */
  /* A byte store, not a bit: no read-modify-write chain from one block to the next. Only this
   * thread writes marks; others read them after loading cur (acquire). (The test costs nothing
   * measurable; the store is what an untracked chunk saves, about 15 % of a warm loop.) */
  if (w->marks) __atomic_store_n((unsigned char *)(w->marks + (cur >> 4)), (unsigned char)1, __ATOMIC_RELAXED);
  __atomic_store_n(&w->cur, cur + need, __ATOMIC_RELEASE);
  return (void *)cur;
}
#endif
/* Pages for pools built on a region (the SDK's TypedPool<T>): one block that fills one page of
 * the region's memory. A page is SPACES_PAGE_SIZE bytes at a SPACES_PAGE_SIZE-aligned address;
 * the block is its last SPACES_PAGE_USABLE bytes (the first bytes hold the allocator's header),
 * so a pool finds the page of any address inside by masking the address. The block is counted,
 * walked, freed (spaces_free) and reset like any block of c, and costs the footprint exactly one
 * page. flags: 0 or SPACES_ZERO. NULL + errno: ENOMEM at the ceiling or out of memory; EINVAL
 * for a NULL, destroyed or shared-memory region, or another flag. Threads: as spaces_chunk_alloc. */
#define SPACES_PAGE_SIZE 65536u
#define SPACES_PAGE_USABLE 65280u
SPACES_API void *spaces_chunk_alloc_page(SpacesChunk c, unsigned flags) SPACES_NOEXCEPT SPACES_MALLOC_ATTR;
/* p must be a block of c (or NULL). size 0 frees p and returns NULL. */
SPACES_API void *spaces_chunk_realloc(SpacesChunk c, void *p, size_t size) SPACES_NOEXCEPT;
/* Cap the chunk's footprint (bytes of slabs and large mappings held for it). 0 removes the cap;
 * a cap below the current footprint only blocks growth. Returns 0, or -1 + EINVAL. */
SPACES_API int spaces_chunk_set_ceiling(SpacesChunk c, size_t bytes) SPACES_NOEXCEPT;
SPACES_API size_t spaces_chunk_ceiling(SpacesChunk c) SPACES_NOEXCEPT;
/* A name for c in the statistics (spaces_stats_print_json); kept by pointer: pass a string that
 * outlives c. NULL removes it. The SDK's Region passes its name. 0, or -1 + EINVAL for a NULL,
 * destroyed or shared-memory chunk. spaces_chunk_name: the name, or NULL. */
SPACES_API int spaces_chunk_set_name(SpacesChunk c, const char *name) SPACES_NOEXCEPT;
SPACES_API const char *spaces_chunk_name(SpacesChunk c) SPACES_NOEXCEPT;
/* The chunk owning p; NULL for blocks of the thread heaps, NULL for foreign pointers. */
SPACES_API SpacesChunk spaces_chunk_of(const void *p) SPACES_NOEXCEPT;

#define SPACES_CHUNK_STATS_VERSION 1
struct spaces_chunk_stats {
  size_t size;             /* in: sizeof(struct spaces_chunk_stats) (0: this header's); out: filled */
  unsigned version;        /* out: SPACES_CHUNK_STATS_VERSION */
  unsigned flags;          /* the chunk's creation flags */
  size_t live_blocks;      /* blocks allocated and not freed */
  size_t live_bytes;       /* their usable sizes */
  size_t footprint;        /* bytes of slabs and large mappings held for the chunk */
  size_t peak_footprint;
  size_t ceiling;          /* 0 = none */
  size_t ceiling_hits;     /* allocations refused at the ceiling */
  size_t slabs;            /* 64 KiB slabs held */
  size_t large_blocks;     /* live blocks over 8 KiB */
};
/* 0, or -1 + EINVAL. Exact when no other thread is allocating or freeing in c. */
SPACES_API int spaces_chunk_stats(SpacesChunk c, struct spaces_chunk_stats *out) SPACES_NOEXCEPT;

/* Visit every live block of c once with its usable size; stop when fn returns non-zero (that
 * value is returned; 0 after a full walk, -1 + EINVAL for bad arguments). Blocks freed before the
 * walk began are not visited; fn may free the block it is given. No thread may allocate in c
 * during the walk. */
typedef int (*spaces_walk_fn)(void *block, size_t size, void *arg);
SPACES_API int spaces_chunk_walk(SpacesChunk c, spaces_walk_fn fn, void *arg) SPACES_NOEXCEPT;

/* Called (once per failing allocation, with no Spaces lock held) when an allocation of `request`
 * bytes would take c past its ceiling. Free memory of c in it and return non-zero to have the
 * allocation retried once; return 0 to fail it. fn = NULL removes the handler. */
typedef int (*spaces_pressure_fn)(SpacesChunk c, size_t request, void *arg);
SPACES_API void spaces_chunk_set_pressure_handler(SpacesChunk c, spaces_pressure_fn fn, void *arg) SPACES_NOEXCEPT;

/* Route the calling thread's malloc, operator new (and the fast free of c's blocks) to the
 * EXCLUSIVE chunk c, until the previous routing is restored; c = NULL routes back to the thread's
 * own heap. Returns the previous target (NULL: the thread's own heap), so scopes nest:
 *   SpacesChunk prev = spaces_thread_set_chunk(c); ... ; spaces_thread_set_chunk(prev);
 * Hazard: every block allocated meanwhile, by any code on this thread, belongs to c and dies
 * with it. Restore before the thread exits. EINVAL (routing unchanged) if c is not EXCLUSIVE. */
SPACES_API SpacesChunk spaces_thread_set_chunk(SpacesChunk c) SPACES_NOEXCEPT;

/* ---- Shared regions (docs/shared.md) ----------------------------------------------------------
 * A region in a named POSIX shared-memory object that several processes map at the same virtual
 * address, so ordinary pointers inside it are valid in all of them. Any attached process
 * allocates in it (spaces_chunk_alloc/_aligned_alloc/_realloc), frees its blocks (free() or
 * spaces_free() from any thread), walks, resets and reads its stats. Cross-process locking is a
 * robust mutex: a process killed while holding it does not wedge the others. `capacity` is the
 * region's hard ceiling (bytes of blocks and bookkeeping, rounded up to 64 KiB).
 * Names: 1-200 characters of [A-Za-z0-9._-], not starting with '.'; the object is
 * /dev/shm/spaces.<name>, created 0600 unless a mode flag widens it.
 * Errors (NULL or -1, errno): EINVAL bad name, flags or capacity, or a corrupt or foreign object;
 * EEXIST the name exists (create); ENOENT no such region (open, unlink); EACCES not the owner
 * or no permission; EADDRINUSE the region's address is taken in this process (open never maps
 * elsewhere); ENOMEM the system refused memory, or the region is at capacity (alloc). */
#define SPACES_SHARED_GROUP 0x100u  /* create: mode 0660 (owner and group) */
#define SPACES_SHARED_ALL 0x200u    /* create: mode 0666; open: accept an object of another owner */
SPACES_API SpacesChunk spaces_chunk_create_shared(const char *name, size_t capacity, unsigned flags) SPACES_NOEXCEPT;
SPACES_API SpacesChunk spaces_chunk_open_shared(const char *name, unsigned flags) SPACES_NOEXCEPT;
/* Detach this process (unmap); the region lives on for the others. 0, or -1 + EINVAL. */
SPACES_API int spaces_chunk_close_shared(SpacesChunk c) SPACES_NOEXCEPT;
/* Remove the name: attached processes keep working, new opens fail with ENOENT. */
SPACES_API int spaces_chunk_unlink_shared(const char *name) SPACES_NOEXCEPT;
/* One well-known pointer the processes find each other's data through (NULL initially and after
 * a reset). */
SPACES_API void spaces_chunk_set_root(SpacesChunk c, void *p) SPACES_NOEXCEPT;
SPACES_API void *spaces_chunk_root(SpacesChunk c) SPACES_NOEXCEPT;

/* ---- Knobs and diagnostics -------------------------------------------------------------------
 * Options are listed in docs/options.md; each is also read once, at initialisation, from the
 * environment variable SPACES_<NAME> (upper case). spaces_option_set returns 0, or -1 with
 * errno = EINVAL for an unknown name or a value out of range. spaces_option_get returns -1 with
 * errno = EINVAL for an unknown name. */
SPACES_API int spaces_option_set(const char *name, long long value) SPACES_NOEXCEPT;
SPACES_API long long spaces_option_get(const char *name) SPACES_NOEXCEPT;

/* Return free memory to the OS now. force = 0: the calling thread's cached slabs and every
 * arena slab past its purge delay; force != 0: also every cached slab whatever its age, and the
 * heaps of exited threads are collected. */
SPACES_API void spaces_collect(int force) SPACES_NOEXCEPT;

#define SPACES_STATS_VERSION 1
/* Process-wide figures. Set .size = sizeof(struct spaces_stats) before the call (or 0 for the
 * size this header was compiled with); the library fills at most that many bytes, so an old
 * binary linked against a newer library stays safe. Returns 0, or -1 with EINVAL. */
struct spaces_stats {
  size_t size;                /* in: sizeof(struct spaces_stats); out: bytes filled */
  unsigned version;           /* out: SPACES_STATS_VERSION of the library */
  unsigned reserved0;
  size_t reserved_bytes;      /* virtual memory reserved from the OS (arenas + large mappings) */
  size_t committed_bytes;     /* of which possibly backed by RAM (in use or not yet purged) */
  size_t peak_committed_bytes;
  size_t slabs_in_use;        /* 64 KiB slab granules owned by a heap (including each heap's
                                 empty-slab caches; a 9-256 KiB size-class slab counts each of
                                 its 1-16 granules) */
  size_t slabs_cached;        /* free slabs in arenas, not yet returned to the OS */
  size_t arenas;              /* 4 MiB arenas mapped */
  size_t large_blocks;        /* live blocks on the large path: over 256 KiB (thread heaps),
                                 over 8 KiB (regions), or aligned beyond a size-class slot */
  size_t large_bytes;         /* bytes mapped for them */
  size_t heaps;               /* thread heaps ever created */
  size_t heaps_abandoned;     /* heaps of exited threads waiting for a new thread */
  size_t purges;              /* madvise calls that returned memory */
  size_t mmap_calls;          /* mappings requested from the OS */
  size_t threads_started;     /* threads that have allocated */
};
SPACES_API int spaces_stats(struct spaces_stats *out) SPACES_NOEXCEPT;
/* Write the stats as text to fd. Allocation-free; safe from a signal handler only if no other
 * thread is inside Spaces' arena lock. */
SPACES_API void spaces_stats_print(int fd) SPACES_NOEXCEPT;
/* The statistics as one JSON object (schema: docs/debugging.md#statistics-as-json, "schema": 1):
 * process totals, every size class in use, thread heaps and regions, each live region (name,
 * footprint, ceiling), and the options in force. Allocation-free; the option show_stats = 2
 * (SPACES_SHOW_STATS=json) prints it to stderr at exit. */
SPACES_API void spaces_stats_print_json(int fd) SPACES_NOEXCEPT;

/* ---- glibc's introspection calls --------------------------------------------------------------
 * What mallinfo2(), mallinfo(), malloc_stats(), malloc_info() and mallopt() answer when the
 * override library serves malloc (docs/debugging.md#what-glibcs-introspection-calls-answer).
 * The figures come from one pass over every arena, a shard lock at a time (never all at once,
 * never a system call under a lock): exact when no thread allocates or frees meanwhile. They
 * cover every block Spaces manages, regions' included. */
struct spaces_mallinfo { /* the layout of glibc's struct mallinfo2 */
  size_t arena;    /* bytes of arena memory committed: 64 KiB granules in use + freed ones not
                      yet returned to the OS */
  size_t ordblks;  /* free slots in size-class slabs (carved or not yet) */
  size_t smblks;   /* 0 */
  size_t hblks;    /* blocks in mappings of their own (2 MiB and up) */
  size_t hblkhd;   /* bytes mapped for them */
  size_t usmblks;  /* 0 (glibc's is always 0 too) */
  size_t fsmblks;  /* 0 */
  size_t uordblks; /* bytes of live blocks in arenas (usable sizes; a block freed by another
                      thread and not yet collected by its owner still counts) */
  size_t fordblks; /* arena - uordblks */
  size_t keepcost; /* bytes of freed granules malloc_trim() would return now */
};
SPACES_API int spaces_mallinfo(struct spaces_mallinfo *out) SPACES_NOEXCEPT; /* 0, or -1 + EINVAL */
/* glibc's malloc_stats() report, to stderr: "Arena 0" is every arena together. Allocation-free. */
SPACES_API void spaces_malloc_stats(void) SPACES_NOEXCEPT;
/* glibc's malloc_info() XML (one <heap nr="0">, <sizes> per size class with free slots) into buf,
 * NUL-terminated when it fits: returns the length it needs (it fits if that is < cap), or -1 +
 * EINVAL when options is not 0. Allocation-free. */
SPACES_API long spaces_malloc_info(int options, char *buf, size_t cap) SPACES_NOEXCEPT;
/* glibc's mallopt(): 1 for a parameter Spaces honours (M_TRIM_THRESHOLD = -1: the bytes of freed
 * memory kept resident per thread heap, option dirty_max_kib; M_ARENA_TEST = -7 and M_MXFAST = 1
 * are accepted and ignored as tuning hints), 0 for any other (nothing changes). */
SPACES_API int spaces_mallopt(int param, int value) SPACES_NOEXCEPT;

/* Sampled heap profiling: which call sites hold memory. Turned on for the whole process by the
 * environment variable SPACES_PROFILE=<path prefix> (read once, at start); one allocation per
 * SPACES_PROFILE_SAMPLE bytes on average (default 524288) records its call stack. Profiles are
 * gperftools' legacy heap format: `google-pprof --text <program> <file>` reads them. They are
 * written at exit, on the signal SPACES_PROFILE_SIGNAL if set, and by spaces_profile_dump.
 * Shared-memory regions are not sampled. docs/debugging.md "Heap profiles". */
/* 1 when this process samples (SPACES_PROFILE was set), else 0. */
SPACES_API int spaces_profile_active(void) SPACES_NOEXCEPT;
/* Writes the profile to path (NULL: <prefix>.<pid>.<seq>.heap); when region blocks were
 * sampled, also <base>.malloc.heap (blocks outside regions) and <base>.region.<name>.heap per
 * region name (made safe for a file name: docs/debugging.md), base being path less a trailing
 * ".heap". 0, or -1 + errno (EINVAL: profiling is
 * off; EIO or open's errno: a file could not be written). Allocation-free. */
SPACES_API int spaces_profile_dump(const char *path) SPACES_NOEXCEPT;
/* Writes the profile of the samples in the regions named `region` (NULL: all samples; "": those
 * outside regions) to fd. 0, or -1 + errno. Allocation-free. */
SPACES_API int spaces_profile_write(int fd, const char *region) SPACES_NOEXCEPT;

/* Error codes passed to the error handler. */
#define SPACES_ERROR_INVALID_FREE 1   /* free of a pointer Spaces does not own */
#define SPACES_ERROR_DOUBLE_FREE 2    /* block freed twice */
#define SPACES_ERROR_CORRUPTED 3      /* free list or header damaged (a write after free?) */
#define SPACES_ERROR_SIZE_MISMATCH 4  /* free_sized with a size the block cannot have */
#define SPACES_ERROR_OUT_OF_MEMORY 5  /* reported only when the option `abort_on_oom` is set */

/* Called for every detected misuse. The default handler writes one line to stderr naming the
 * fault and the address, then calls abort(). A handler that returns makes Spaces ignore the
 * offending call (the block is neither freed nor reused). fn = NULL restores the default.
 * The handler may be called from any thread, with no Spaces lock held. */
typedef void (*spaces_error_fn)(int error, void *addr, const char *message, void *arg);
SPACES_API void spaces_set_error_handler(spaces_error_fn fn, void *arg) SPACES_NOEXCEPT;

/* "0.1.0": the library's version at run time (compare with SPACES_VERSION_* at build time). */
SPACES_API const char *spaces_version(void) SPACES_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* SPACES_SPACES_H */
