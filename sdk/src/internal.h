// internal.h - the types, constants and cross-file declarations of the Spaces core.
//
// Layering (who may include/call whom; see docs/design.md):
//   os      : the kernel (mmap, madvise, clock). Knows nothing above it.
//   options : the option table. Calls nothing.
//   pagemap : ownership bitmaps (which 64 KiB granules hold a live slab/large head). Uses os.
//   arena   : 4 MiB arenas cut into 64 KiB slabs and slab runs, in locked shards; purge, direct
//             mappings. Uses os, pagemap, options.
//   slab    : one slab's free lists (local, remote), carving. Uses nothing but its own memory.
//   heap    : per-thread heaps, thread life cycle, malloc/free slow paths. Uses arena, slab.
//   pages   : page boxes, a heap's medium blocks cut to pages (option medium_pages). Uses heap, arena.
//   large   : blocks above the size classes (arena runs and direct mappings). Uses arena.
//   api     : the spaces_* functions, init, fork, errors, stats. Uses everything.
// This header is included only by those files, through spaces.cpp (one translation unit).
#ifndef SPACES_INTERNAL_H
#define SPACES_INTERNAL_H
#ifndef SPACES_CORE_TU
#error "internal.h is part of the Spaces core: compile sdk/src/spaces.cpp, not this file"
#endif

#define SPACES_BUILDING_LIBRARY 1
#include "spaces/spaces.h"
#include "os.h"

#include <atomic>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SPACES_LIKELY(x) __builtin_expect(!!(x), 1)
#define SPACES_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SPACES_NOINLINE __attribute__((noinline))
// One copy of a function in the hot text: not inlined, and not GCC's clones specialised for
// constant arguments (heap_release_slab's three copies took 1.8 KiB of the hot window's 64, one
// takes 0.7; clang makes no such clones).
#if defined(__clang__)
#define SPACES_ONE_COPY __attribute__((noinline))
#else
#define SPACES_ONE_COPY __attribute__((noinline, noclone))
#endif
#define SPACES_INLINE inline __attribute__((always_inline))
// spaces_malloc and spaces_free, the entry points the override's forwarders (override.cpp) call:
// always-inline in the override's translation unit (override_tu.cpp defines
// SPACES_INLINE_FAST_API), so malloc, operator new and operator delete are the fast paths and not
// a call to them; plain exported functions elsewhere (always_inline on an exported function needs
// -fno-semantic-interposition, which building spaces.cpp alone with any flags must not assume).
#ifdef SPACES_INLINE_FAST_API
#define SPACES_FAST_API SPACES_API __attribute__((always_inline))
#else
#define SPACES_FAST_API SPACES_API
#endif
#define SPACES_TLS __thread __attribute__((tls_model("initial-exec")))

#ifdef SPACES_DEBUG
#include <assert.h>
#define SPACES_ASSERT(x) assert(x)
#else
#define SPACES_ASSERT(x) ((void)0)
#endif

namespace spaces_core {

// ---- geometry -------------------------------------------------------------------------------
constexpr uintptr_t kSlabShift = 16;
constexpr uintptr_t kSlabSize = uintptr_t(1) << kSlabShift;  // 64 KiB
constexpr uintptr_t kSlabMask = kSlabSize - 1;
constexpr uintptr_t kArenaShift = 22;
constexpr uintptr_t kArenaSize = uintptr_t(1) << kArenaShift;  // 4 MiB = 64 granules
constexpr unsigned kSlabsPerArena = unsigned(kArenaSize / kSlabSize);  // 64; granule 0 = arena header
constexpr uintptr_t kAddressLimit = kOsAddressLimit;  // user space (os.h: x86-64, 4-level paging)
constexpr size_t kSmallMax = 8192;                        // largest small class (one-granule slabs; so are 9-15 KiB)
constexpr size_t kMediumMax = size_t(256) << 10;          // largest size-class block (multi-granule slab)
constexpr size_t kSlabHeader = 256;                       // first block offset in a slab
constexpr uintptr_t kPageSize = 4096;                      // the unit of first touch (slab_extend)
constexpr size_t kMaxRunSlabs = kSlabsPerArena - 1;       // longest run inside one arena
constexpr size_t kHugePage = size_t(2) << 20;
constexpr uint8_t kLargeInSpan = 1;  // Slab::cls of a kSlabLargeRun head whose run is in a span
constexpr uint8_t kDirectFromSpan = 2;  // Slab::cls of a kSlabDirect head span_to_direct made (large.cpp)
constexpr size_t kMaxRequest = size_t(1) << 46;           // anything larger is ENOMEM at once
constexpr size_t kMaxAlign = size_t(1) << 30;

// ---- size classes (sizeclass.cpp) -----------------------------------------------------------
// 8, 16..128 in steps of 16, then 8 classes per power of two: small classes up to 8 KiB (57,
// one 64 KiB granule per slab; shared regions use these alone), medium classes above that up to
// 256 KiB (40 more, slabs of 1..16 granules, thread heaps only: regions send them to large.cpp).
constexpr unsigned kNumSmallClasses = 57;
constexpr unsigned kNumClasses = 97;
static_assert(kNumSmallClasses <= 64, "Heap::growing has a bit per small class");
struct ClassTables {
  uint32_t size[kNumClasses];
  uint32_t magic[kNumClasses];  // ceil(2^32 / size): floor(n / size) for n < 2^16 (slab_block_index)
  uint32_t inv[kNumClasses];    // inverse of size's odd factor mod 2^32 (slab_exact_index)
  uint8_t shift[kNumClasses];   // size's power of two
  uint8_t granules[kNumClasses];  // 64 KiB granules per slab of the class (1 for small classes)
  uint8_t of[kSmallMax / 8 + 1];  // index (size + 7) >> 3
};
extern const ClassTables g_classes;
SPACES_INLINE unsigned class_of(size_t size) { return g_classes.of[(size + 7) >> 3]; }
SPACES_INLINE uint32_t class_size(unsigned cls) { return g_classes.size[cls]; }
// kSmallMax < size <= kMediumMax: 8 classes per power of two, class 57 = 9 KiB.
SPACES_INLINE unsigned medium_class_of(size_t size) {
  unsigned k = 63u - unsigned(__builtin_clzll(size - 1));  // 2^k < size <= 2^(k+1)
  return kNumSmallClasses + 8 * (k - 13) + unsigned((size - (size_t(1) << k) - 1) >> (k - 3));
}

// ---- blocks and slabs (slab.cpp) ------------------------------------------------------------
// A free block's first word is its link: the offset of the next free block inside the same
// slab XOR the slab's key (offset 0, the slab header itself, ends a list). A word whose value
// XOR key is below 64 KiB therefore marks a block that is (almost certainly) free; malloc clears
// it, so a live block only looks free if the program wrote that exact secret-dependent value.
struct Block {
  uintptr_t link;
};

// ---- the one intrusive list ------------------------------------------------------------------
// Doubly linked through two members of T (Next, Prev), head only: push at the front, remove any
// element, pop the front; an element is on at most one list per pair of members. Used for a
// heap's partial slabs, a region's slabs, a shard's arenas and its arenas with free slabs. (The
// abandoned-heap pool keeps a tail and splices whole lists; a shared region's lists are offsets
// in memory mapped at other addresses: both stay their own.)
// No member initializer: a struct holding one stays constant-initialised (zero), so the core keeps
// having no static constructors (an initializer here made every static Heap, Shard and ShAttach
// a dynamic initialisation that touched its pages: +150 KiB RSS at start).
template <class T, T* T::*Next, T* T::*Prev>
struct IList {
  T* head;
  void push(T* x) {
    x->*Prev = nullptr;
    x->*Next = head;
    if (head) head->*Prev = x;
    head = x;
  }
  void remove(T* x) {
    (x->*Prev ? (x->*Prev)->*Next : head) = x->*Next;
    if (x->*Next) (x->*Next)->*Prev = x->*Prev;
    x->*Next = x->*Prev = nullptr;
  }
  T* pop() {
    T* x = head;
    if (x) remove(x);
    return x;
  }
};

// ---- hardening policy (the checks on the fast paths) ---------------------------------------
// SPACES_HARDENING (CMake option, default ON = 1) names the checks the malloc and free fast paths
// make on data a buggy or hostile program can write. Off exists only to measure what they cost
// (docs/debugging.md; callgrind_pair.sh on a build with -DSPACES_HARDENING=OFF): without them a
// double free or an interior pointer corrupts the heap silently. The slow paths check always.
//   kCheckLinks: slab_pop refuses a free-list link that leaves its slab (a write after free
//     aiming the next malloc elsewhere); links are XOR-encoded with the slab's key either way.
//   kCheckFrees: the free fast path takes only a block start of the slab (multiply, rotate,
//     compare) whose link word does not carry the slab's key (a double free): anything else goes
//     to the slow path, which says what it is.
#ifndef SPACES_HARDENING
#define SPACES_HARDENING 1
#endif
struct Hardening {
  static constexpr bool kCheckLinks = SPACES_HARDENING != 0;
  static constexpr bool kCheckFrees = SPACES_HARDENING != 0;
};

// ---- valgrind memcheck awareness (build with -DSPACES_VALGRIND; no code at all otherwise) ----
// Blocks are announced as malloc-like (chunk blocks as mempool pieces), so memcheck reports
// leaks, reads after free and double frees in programs on Spaces. The allocator's own reads and
// writes of a free block's link word are made with memcheck's error reporting off.
#ifdef SPACES_VALGRIND
#include <valgrind/memcheck.h>
#define SPACES_VG(x) x
constexpr bool kMemcheckExactSizes = true;  // realloc always moves: memcheck knows each block's size
#else
constexpr bool kMemcheckExactSizes = false;
#define SPACES_VG(x) ((void)0)
#endif
// AddressSanitizer builds (the asan preset) poison region memory that was freed, reset or
// destroyed; the allocator's own link accesses are exempt.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SPACES_ASAN(x) x
#define SPACES_LINK_FN static inline __attribute__((noinline, no_sanitize_address))
#else
#define SPACES_ASAN(x) ((void)0)
#define SPACES_LINK_FN SPACES_INLINE
#endif
SPACES_LINK_FN uintptr_t link_get(const Block* b) {
  SPACES_VG(VALGRIND_DISABLE_ERROR_REPORTING);
  uintptr_t v = __atomic_load_n(&b->link, __ATOMIC_RELAXED);
  SPACES_VG(VALGRIND_MAKE_MEM_DEFINED(&v, sizeof v));  // (a live block's word may be uninitialised)
  SPACES_VG(VALGRIND_ENABLE_ERROR_REPORTING);
  return v;
}
SPACES_LINK_FN void link_set(Block* b, uintptr_t v) {
  SPACES_VG(VALGRIND_DISABLE_ERROR_REPORTING);
  b->link = v;
  SPACES_VG(VALGRIND_ENABLE_ERROR_REPORTING);
}

struct Heap;
struct Chunk;

// ---- regions: what every kind of region record starts with (region.cpp) ---------------------
// A SpacesChunk handle points at a region record: a Chunk (chunk.cpp) or a shared region's
// attachment (ShAttach, shared.cpp). Both start with this prefix, so a handle's kind is read
// from memory the process owns before anything else of the record is, and spaces_chunk_alloc's
// fast path may read `magic` and `flags` as one word of any handle (both static_assert it).
struct RegionPrefix {
  uint32_t magic;  // kChunkMagic, kSharedMagic, or 0 (a destroyed chunk; a closed shared
                   // region's entry keeps kSharedMagic: its handle is judged by address and `h`)
  unsigned flags;
};
constexpr uint32_t kChunkMagic = 0x4b435053;   // "SPCK"
constexpr uint32_t kSharedMagic = 0x48535053;  // "SPSH"
bool region_args_ok(size_t align, size_t size, unsigned flags);  // false: errno set
// magic and flags of a non-NULL handle as one word, read through the prefix alone (a record of
// either kind; ShAttach is not aligned like a Chunk, so no Chunk member may be read first)
SPACES_INLINE uint64_t region_key(SpacesChunk handle) {
  uint64_t k;
  __builtin_memcpy(&k, reinterpret_cast<const RegionPrefix*>(handle), 8);
  return k;
}

enum SlabKind : uint8_t {
  kSlabFree = 0,     // in an arena's free set (header may be stale or purged)
  kSlabSmall = 1,    // size-class slab owned by a heap
  kSlabEmpty = 2,    // owned by a heap's empty-slab cache, no class
  kSlabLargeRun = 3, // head of a run of slabs holding one large block
  kSlabDirect = 4,   // head of a direct mmap holding one large block
  kSlabBump = 5,     // bump slab of an exclusive chunk: mixed sizes back to back (chunk.cpp)
  kSlabPages = 6,    // head of a page box: a thread heap's medium blocks cut to pages (pages.cpp)
};

// thread_free word, three fields: bits 0-1 the SlabState; bits 2-47 the first block of the chain
// pushed last (the slab's own address when none: user-space addresses are below 2^47); bits
// 48-63 how many blocks the stack holds (at most a slab's capacity, 8160), added by each push, so
// the owner takes the stack without walking it when its own free list is empty
// (slab_collect_remote).
enum SlabState : uintptr_t {
  kStateNormal = 0,    // owner tracks the slab (cur or partial list): remote frees only push
  kStateFull = 1,      // owner stopped tracking it: the first remote free must notify the owner
  kStateNotified = 2,  // a remote free queued it on owner->notify; only the owner clears this
};
constexpr uintptr_t kStateMask = 3;
constexpr unsigned kTfCountShift = 48;
constexpr uintptr_t kTfPtrMask = ((uintptr_t(1) << kTfCountShift) - 1) & ~kStateMask;
SPACES_INLINE uintptr_t tf_ptr(uintptr_t tf) { return tf & kTfPtrMask; }
SPACES_INLINE unsigned tf_count(uintptr_t tf) { return unsigned(tf >> kTfCountShift); }

struct alignas(64) Slab {
  // Four cache lines (the whole 256-byte header), the first three by who writes them, so that a
  // remote free, which reads line 0 and pushes on line 2, never waits for a line the owner's
  // mallocs keep writing (line 1): with free/used on the line remote frees read, a
  // producer/consumer pair moved that line between cores twice per block. The owner's fast paths
  // touch lines 0 and 1, both in its cache (malloc line 1 only: pop_key).
  // -- line 0: read by every free; written when the slab is initialised or changes hands --
  uintptr_t key;          // link encoding secret, bit 63 set, new per slab initialisation
  uintptr_t fast_owner;   // the owning thread's thread pointer (%fs:0) while a live thread owns
                          // the heap, the heap tracks the slab and it has no aligned block;
                          // 0 otherwise. Anything but the freeing thread's own pointer sends
                          // free() to the slow path; comparing with %fs:0 costs no TLS lookup.
  Heap* owner;            // heap owning the slab (NULL for large blocks): read by remote frees
                          // with thread_free, by the fast free path only when a slab empties
  Chunk* chunk;           // owning chunk (regions), NULL for thread heaps
  uint32_t block_size;
  uint32_t capacity;      // blocks that fit
  uint32_t div_inv;       // block-start test without a divide (slab_exact_index): the inverse of
  uint8_t div_shift;      // block_size's odd factor mod 2^32, and its power of two
  uint8_t kind;           // SlabKind
  uint8_t cls;            // size class; large runs: kLargeInSpan for a run in a span
  uint8_t attached;       // owner-written: in owner's cur[] or partial list (bump slabs: sealed);
                          // stored atomically, as the census (spaces_mallinfo) and frees of
                          // bump blocks read it from other threads
  uint8_t has_aligned;    // blocks handed out at an offset inside their slot (aligned alloc)
  uint8_t sampled;        // large blocks: the heap profiler recorded this block (profile.cpp)
  // -- line 1: the owner's allocation state (every malloc and local free writes it) --
  alignas(64) void* free; // next block to hand out; the slab itself when none (so the empty test
                          // is a register compare and the static empty slab needs no constructor)
  uintptr_t pop_key;      // `key` again, for the owner's malloc (slab_pop): it then reads this
                          // line and the block, not line 0 too (tight_batch: a quarter fewer L1
                          // misses per malloc, docs/benchmarks.md)
  uint32_t used;          // blocks out of `free` (live, on the remote stack or in a medium cache):
                          // exact in every slab that is not its heap's current one. A current
                          // slab's is not kept by malloc (slab_pop does not count: one memory
                          // add fewer per malloc, `tight` 2-5 % faster), only by frees, so it
                          // reads low, even wrapped, until heap_set_cur or a refill recomputes it
                          // (slab_out); its "emptied" exits are ignored (heap_slab_emptied)
  uint32_t pop_limit;     // the last block's offset from this, plus 1: a free-list link's offset
                          // must be below it (slab_pop), so a damaged link never makes malloc hand
                          // out a block that ends past the slab's last one (0: no size-class slab)
  uintptr_t bump;         // first never-carved block (address)
  uintptr_t bump_end;     // end of the last block that fits (the bump area is [bump, bump_end))
  Slab* chunk_next;       // every small slab of a chunk, for walk/reset/destroy
  Slab* chunk_prev;
  uint32_t collect_seq;   // odd while the owner moves the remote stack to `free` (slab.cpp,
                          // slab_collect_remote; pages.cpp, box_take_remote): the double-free
                          // checks walk again when it changed under them
  // -- line 2: written by other threads; the owner's list links and large-block data --
  alignas(64) std::atomic<uintptr_t> thread_free;
  Slab* next;             // partial list / empty cache
  Slab* prev;
  Slab* notify_next;      // link in owner->notify while kStateNotified (written by the notifier)
  uintptr_t map_base;     // large: start of the mapping (direct) or run (== this)
  union {                 // large blocks, by kind:
    size_t run_granules;  //   kSlabLargeRun: the run's length in 64 KiB granules
    size_t map_bytes;     //   kSlabDirect: bytes mapped
  };
  size_t user_size;       // large: usable bytes from the user pointer
  uintptr_t user_ptr;     // large: the pointer handed out
  // -- line 3: direct mappings only --
  alignas(64) size_t map_resident;  // bytes from map_base that may be resident (hold old data)
  size_t map_gap;         // bytes of those never touched (the huge layout's lead below the
                          // data, but for the header's page): not counted as committed
};
static_assert(sizeof(Slab) <= kSlabHeader, "slab header must fit before the first block");
static_assert(offsetof(Slab, pop_key) < 128 && offsetof(Slab, map_resident) == 192, "pop_key on line 1, direct data on line 3");
static_assert(offsetof(Slab, free) == 64 && offsetof(Slab, thread_free) == 128 && offsetof(Slab, sampled) < 64,
              "Slab's three lines: read-mostly, owner-written, remote-written");

// Offsets, block indexes and the block-start test of a size-class slab, by multiplication (no
// divide on any path). n is the offset of a pointer from the slab's first block, as 32 bits (a
// pointer into the header wraps to above 2^32 - 256). With block size d = d0 * 2^k (d0 odd),
// rotating n * d0^-1 (mod 2^32) right by k gives n / d when d divides n and a value above
// (2^32 - 1) / d when it does not (Granlund and Montgomery 1994; Hacker's Delight 10-17), so a single
// compare with `capacity` refuses header pointers, pointers inside a block and pointers past the
// last block. The free fast path pays an imul, a rotate and that compare. Slabs that are not
// size-class slabs have capacity 0 and refuse everything. For a pointer that may be inside a
// block (aligned slabs), floor(n / d) = (n * ceil(2^32 / d)) >> 32 for n < 2^16, d <= 2^13.
// tests/core/slab_test.cpp checks both for every class and every offset.
SPACES_INLINE uint32_t slab_offset(const void* s, const void* p) {
  return uint32_t(reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(s)) - uint32_t(kSlabHeader);
}
// A size-class slab's first block: right after its header. Headers are 128-aligned (coloured by
// multiples of 128: slab_colour), so the slots of a class whose size is a multiple of an
// alignment up to 128 are aligned to it (heap_aligned_alloc relies on that: kSlotAlignMax).
SPACES_INLINE uintptr_t slab_first(const Slab* s) { return reinterpret_cast<uintptr_t>(s) + kSlabHeader; }
SPACES_INLINE uint32_t slab_exact_index(const Slab* s, uint32_t n) {
  uint32_t x = n * s->div_inv;
  return (x >> s->div_shift) | (x << ((32 - s->div_shift) & 31));
}
SPACES_INLINE bool slab_is_block_start(const Slab* s, uint32_t n) { return slab_exact_index(s, n) < s->capacity; }
SPACES_INLINE uint32_t slab_block_index(const Slab* s, uint32_t n) {  // n < capacity * block_size
  // (exact for one-granule slabs only: aligned blocks, the only users, never come from medium ones)
  SPACES_ASSERT(g_classes.granules[s->cls] == 1);
  return uint32_t((uint64_t(n) * g_classes.magic[s->cls]) >> 32);
}

// ---- slab colours ----------------------------------------------------------------------------
// A size-class slab's header (small and medium classes, a region's bump slabs, a heap's emptied
// slabs) is not at its first granule's start but `slab_colour` bytes into it: 0..896 in steps
// of 128, by the granule's address bits 16-18. Granules are 64 KiB apart, so headers at their
// starts all fell in the same L1 sets (address bits 6-11): a thread using 25 classes kept 25
// headers' lines 0 and 1 in 2 sets of 12 ways, and nearly every free missed L1 on both
// (callgrind's cache model, xthread at one thread: 0.98 misses per free, 0.56 per malloc beyond
// the block's own; docs/benchmarks.md, "Slab colours"). Coloured, they spread over 16 sets.
// Steps of 128 keep every header, and so every slab's first block, 128-aligned: a class whose
// size is a multiple of an alignment up to 128 still has aligned slots (heap_aligned_alloc:
// kSlotAlignMax), and free's offset from the first block is still arithmetic on the pointer
// (slab_offset). The colour costs a slab the blocks that no longer fit before its granule's
// end: at most 896 bytes of blocks (0.7 % of a slab on average over the small classes), none
// where the class's slack covers it. The colour is a function of the
// address alone, so the free fast path finds a header with ALU operations and no load. Medium
// slabs (several granules) are coloured by their first granule; large blocks and page boxes
// keep their headers at the granule start. The page map's head byte says which a head is
// (kBackSlab, kBackHead).
constexpr uintptr_t kColourStep = 128;
constexpr unsigned kColours = 8;
constexpr uintptr_t kMaxColour = kColourStep * (kColours - 1);
constexpr size_t kSlotAlignMax = kColourStep;  // the largest alignment size-class slots keep
static_assert(kSlabHeader % kColourStep == 0, "first blocks keep the colour's alignment");
SPACES_INLINE uintptr_t slab_colour(uintptr_t granule) {
  return (granule >> (kSlabShift - 7)) & ((kColours - 1) * kColourStep);  // (bits 16-18 to 7-9)
}

// The header of the slab whose first granule is g / whose first granule holds block p.
SPACES_INLINE Slab* slab_at(uintptr_t g) { return reinterpret_cast<Slab*>(g + slab_colour(g)); }
SPACES_INLINE Slab* slab_of(const void* p) { return slab_at((reinterpret_cast<uintptr_t>(p) - 1) & ~kSlabMask); }
// The granule a header lies in (the slab's first granule, whatever its colour).
SPACES_INLINE uintptr_t slab_base(const Slab* s) { return reinterpret_cast<uintptr_t>(s) & ~kSlabMask; }
// The header of the large block (or page box) whose granule holds p - 1: at the granule's start.
SPACES_INLINE Slab* head_of(const void* p) {
  return reinterpret_cast<Slab*>((reinterpret_cast<uintptr_t>(p) - 1) & ~kSlabMask);
}
// Is `off`, a decoded free-list link of s, an offset from its first block to its last block's
// start? The walks of free lists ask it before following a link.
SPACES_INLINE bool slab_link_in(const Slab* s, uintptr_t off) { return off >= kSlabHeader && off < s->pop_limit; }
SPACES_INLINE bool slab_has_free(const Slab* s) { return s->free != static_cast<const void*>(s); }
// Bits set in x. Without -mpopcnt GCC calls libgcc's __popcountdi2, which the linker puts at the
// end of the text, away from the code every process runs (os.h, SPACES_HOT_TEXT).
SPACES_INLINE unsigned popcount64(uint64_t x) {
#if defined(__POPCNT__)
  return unsigned(__builtin_popcountll(x));
#else
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return unsigned((x * 0x0101010101010101ull) >> 56);
#endif
}
SPACES_INLINE uintptr_t slab_end(const Slab* s) { return s->bump_end; }
// The header of a granule run that is no size-class slab (a large block's run or mapping, a page
// box): no free list, no class, no block the inline free path may take (fast_owner 0, capacity
// 0), nothing aligned or sampled. The caller sets key, used and its kind's own fields.
SPACES_INLINE void slab_header_reset(Slab* h, uint8_t kind, Heap* owner) {
  h->free = h;
  h->block_size = 0;
  __atomic_store_n(&h->fast_owner, uintptr_t(0), __ATOMIC_RELAXED);
  h->owner = owner;
  h->chunk = nullptr;
  h->kind = kind;
  h->cls = 0;
  __atomic_store_n(&h->attached, uint8_t(0), __ATOMIC_RELAXED);
  h->has_aligned = 0;
  h->sampled = 0;
  h->capacity = 0;
  h->bump = 0;
  h->bump_end = 0;
  h->pop_limit = 0;
}
SPACES_INLINE uintptr_t slab_span(const Slab* s) { return uintptr_t(g_classes.granules[s->cls]) << kSlabShift; }
SPACES_INLINE uintptr_t slab_encode(const Slab* s, const void* next) {
  return (reinterpret_cast<uintptr_t>(next) - reinterpret_cast<uintptr_t>(s)) ^ s->key;
}
// Keys have their low 32 bits clear, so a link's high half *is* the key's high half: the free
// fast path compares 32 bits (one load, one compare) to spot a block that is already free.
SPACES_INLINE uint32_t high_half(const void* word) {
  uint32_t h;
  __builtin_memcpy(&h, static_cast<const char*>(word) + 4, 4);
  return h;
}
SPACES_INLINE bool slab_block_looks_free(const Slab* s, const Block* b) {
#if defined(SPACES_VALGRIND) || defined(__SANITIZE_ADDRESS__)
  return (link_get(b) >> 32) == (s->key >> 32);
#else
  return high_half(&b->link) == high_half(&s->key);
#endif
}
// The one versioned copy-out of the statistics structs (spaces_stats, spaces_chunk_stats): the
// caller's `size` field says how many bytes it has room for (0: this build's whole struct; less
// than the size field itself: EINVAL), the struct's `size` says how many were written.
template <class T>
bool stats_room(const T* out, size_t* want) {
  if (out == nullptr) return false;
  *want = out->size == 0 ? sizeof(T) : out->size;
  return *want >= sizeof(out->size);
}
template <class T>
void stats_copy_out(T* out, T& full, size_t want) {
  size_t n = want < sizeof full ? want : sizeof full;
  full.size = n;
  memcpy(out, &full, n);
}

// The one rule every realloc path asks before moving a block (thread heaps, regions, shared
// regions): keep it in place when the new size fits its usable size and wastes at most half of
// it. A block on the large path (large_path) also needs a size above the size classes (a class
// slot would waste less), except at exactly its usable size (an aligned block's usable size may
// be a small class's). memcheck builds move every block (kMemcheckExactSizes): the callers ask.
SPACES_INLINE bool realloc_in_place(size_t size, size_t usable, bool large_path) {
  if (size > usable) return false;
  if (!large_path) return size >= usable / 2;
  return size == usable || (size > usable / 2 && size > kSmallMax);
}
// realloc's copy: may read the slot's slack past the size memcheck knows (not an error there).
SPACES_INLINE void copy_block(void* dst, const void* src, size_t n) {
  SPACES_ASAN(ASAN_UNPOISON_MEMORY_REGION(src, n));  // a region block's slot slack is poisoned
  SPACES_VG(VALGRIND_DISABLE_ERROR_REPORTING);
  memcpy(dst, src, n);
  SPACES_VG(VALGRIND_ENABLE_ERROR_REPORTING);
}
// The allocation step every fast path shares: the first block of s's free list, or NULL when
// the list is empty or its link leaves the slab (the caller's slow path reports corruption).
SPACES_INLINE Block* slab_pop(Slab* s) {
  Block* b = static_cast<Block*>(s->free);
  if (SPACES_LIKELY(static_cast<void*>(b) != static_cast<void*>(s))) {
    uintptr_t off = link_get(b) ^ s->pop_key;
    if (SPACES_LIKELY(!Hardening::kCheckLinks || off < s->pop_limit)) {
      uint8_t* next = reinterpret_cast<uint8_t*>(s) + off;
      s->free = next;
      __builtin_prefetch(next, 1);  // (the next malloc reads its link: freed by another core, it
                                    // is in that core's cache)
      link_set(b, 0);  // a live block's word must not look free (and b is not counted: Slab::used)
      return b;
    }
  }
  return nullptr;
}
// A block leaves the allocator (n bytes requested) / comes back to it.
SPACES_INLINE void track_alloc(const void* chunk, void* p, size_t n, bool zeroed) {
  (void)chunk, (void)p, (void)n, (void)zeroed;
  SPACES_ASAN(if (chunk) ASAN_UNPOISON_MEMORY_REGION(p, n));
#ifdef SPACES_VALGRIND
  if (chunk) {
    VALGRIND_MEMPOOL_ALLOC(chunk, p, n);  // (a mempool piece starts undefined)
    if (zeroed) VALGRIND_MAKE_MEM_DEFINED(p, n);
  } else
    VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, zeroed);
#endif
}
// p: the pointer the program holds (memcheck's name for the block); slot, n: the bytes the block
// occupies, poisoned for region blocks under ASan (slot != p only for an aligned small block).
SPACES_INLINE void track_free(const void* chunk, void* p, void* slot, size_t n) {
  (void)chunk, (void)p, (void)slot, (void)n;
  SPACES_ASAN(if (chunk) ASAN_POISON_MEMORY_REGION(slot, n));
#ifdef SPACES_VALGRIND
  if (chunk)
    VALGRIND_MEMPOOL_FREE(chunk, p);
  else
    VALGRIND_FREELIKE_BLOCK(p, 0);
#endif
}
SPACES_INLINE uintptr_t thread_self() { return reinterpret_cast<uintptr_t>(__builtin_thread_pointer()); }

void slab_init(Slab* s, Heap* owner, unsigned cls);
void slab_extend(Slab* s);                 // carve a batch from the bump area into `free`
unsigned slab_collect_remote(Slab* s);     // move thread_free into free; returns blocks moved
bool slab_remote_push_chain(Slab* s, Block* head, Block* tail, unsigned n);  // true: notify the owner
SPACES_INLINE bool slab_remote_push(Slab* s, Block* b) { return slab_remote_push_chain(s, b, b, 1); }
bool slab_contains_free(Slab* s, Block* b);  // bounded walk of both lists (double-free check)
// A double-free check's walk `found` (another thread's lists: racy, memory-safe), done again
// while *seq is odd or changed under it (the owner moving a remote stack to its free list,
// Slab::collect_seq): spinning, then yielding (the owner may be preempted mid-move), at most
// 1 024 times, then once more unguarded. true: found.
template <typename F>
SPACES_NOINLINE bool seq_walk(const uint32_t* seq, F found) {
  for (unsigned tries = 0; tries < 1024; tries++) {
    uint32_t before = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
    if ((before & 1) == 0) {
      if (found()) return true;
      __atomic_thread_fence(__ATOMIC_ACQUIRE);
      if (__atomic_load_n(seq, __ATOMIC_RELAXED) == before) return false;
    }
    if (tries < 64)
      os_cpu_relax();
    else
      os_yield();
  }
  return found();  // (a last walk, unguarded: a hint, as before the lock)
}
// The owner takes slab s's remote stack (into tf; false: it was empty) and starts the move that
// seq_walk's checks wait on (Slab::collect_seq odd, from *seq); remote_move_done ends it once the
// blocks are on the free list (slab_collect_remote) or back in their box (box_take_remote). The
// count starts even: a fork child may inherit a move's odd one.
SPACES_INLINE bool remote_move_begin(Slab* s, uintptr_t& tf, uint32_t& seq) {
  uintptr_t base = reinterpret_cast<uintptr_t>(s);
  tf = s->thread_free.load(std::memory_order_relaxed);
  if (tf_ptr(tf) == base) return false;
  seq = s->collect_seq & ~1u;
  __atomic_store_n(&s->collect_seq, seq + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  do {
    if (tf_ptr(tf) == base) {
      __atomic_store_n(&s->collect_seq, seq + 2, __ATOMIC_RELEASE);
      return false;
    }
  } while (!s->thread_free.compare_exchange_weak(tf, base | (tf & kStateMask), std::memory_order_acquire,
                                                 std::memory_order_relaxed));
  return true;
}
SPACES_INLINE void remote_move_done(Slab* s, uint32_t seq) { __atomic_store_n(&s->collect_seq, seq + 2, __ATOMIC_RELEASE); }
uint32_t slab_out(const Slab* s);  // carved blocks not on `free`: the exact `used` (bounded walk)
Block* slab_block_start(Slab* s, const void* p);  // block containing p, NULL if outside blocks

// ---- pagemap (pagemap.cpp) -------------------------------------------------------------------
// Which 64 KiB granules hold the header of a live slab or large block (`heads`, one bit each) and
// which 4 MiB windows hold Spaces memory (`arenas`, one bit each), in two levels: a static root
// of one pointer per 4 GiB of the 47-bit user space (256 KiB of .bss, untouched where unused)
// and a leaf (8 320 bytes of bitmaps, then 64 KiB of per-granule bytes: head marks and medium
// slabs' back offsets) per 4 GiB window that Spaces maps into, made on first use and never freed.
// So the map costs address space only where Spaces has memory (a flat map would reserve 260 MiB,
// which RLIMIT_AS counts), and a lookup of any address is two loads that never fault.
constexpr unsigned kLeafShift = 32;                                         // 4 GiB per leaf
constexpr size_t kLeafWords = size_t(1) << (kLeafShift - kArenaShift);      // 1024 head words
constexpr size_t kRootEntries = size_t(kAddressLimit >> kLeafShift);        // 32768
constexpr uint8_t kBackHead = 0xff;  // PageLeaf::back of a head granule (back offsets are < 64)
constexpr uint8_t kBackSlab = 0xfe;  // ... of a size-class slab's, whose header is coloured
struct PageLeaf {
  std::atomic<uint64_t> heads[kLeafWords];       // bit (q >> 16) & 63 of word (q >> 22) & 1023
  std::atomic<uint64_t> arenas[kLeafWords / 64]; // bit per 4 MiB window
  // One byte per granule: kBackSlab or kBackHead where `heads` has its bit (the free fast path
  // tests this byte: one compare with memory, where the bit took two shifts, a mask, a load and a
  // bit test);
  // in a medium slab's granules after its first, how many granules back its head is; 0
  // elsewhere. Written before the slab's first block is handed out, cleared after its last is
  // freed, so any free of a live block reads the right value. 64 KiB, one line per arena in use.
  uint8_t back[kLeafWords * 64];
};
struct PageMap {
  std::atomic<PageLeaf*> leaves[kRootEntries];   // NULL: Spaces has nothing in that 4 GiB
};
extern PageMap g_map;
bool pagemap_init();
// mark: kBackSlab for a size-class slab (its header coloured), kBackHead for any other head.
void pagemap_set_head(uintptr_t granule_addr, bool on, uint8_t mark = kBackHead);
// Arena-level bits; setting them first makes the leaves of [start, start + size): false when a
// leaf cannot be mapped (the caller gives the memory back and answers ENOMEM).
bool pagemap_set_region(uintptr_t start, size_t size, bool on);
bool pagemap_prepare(uintptr_t start, size_t size);  // make the leaves only
SPACES_INLINE PageLeaf* pagemap_leaf(uintptr_t a) {
  uintptr_t i = a >> kLeafShift;
  if (SPACES_UNLIKELY(i >= kRootEntries)) return nullptr;  // (also NULL - 1, non-canonical)
  return g_map.leaves[i].load(std::memory_order_relaxed);
}
SPACES_INLINE bool pagemap_is_head(uintptr_t q) {  // q = pointer - 1
  PageLeaf* l = pagemap_leaf(q);
  if (SPACES_UNLIKELY(l == nullptr)) return false;
  uint64_t w = l->heads[(q >> kArenaShift) & (kLeafWords - 1)].load(std::memory_order_relaxed);
  return (w >> ((q >> kSlabShift) & 63)) & 1;
}
bool pagemap_in_region(uintptr_t p);
void pagemap_set_back(uintptr_t slab, unsigned granules, bool on);  // a medium slab's granules
SPACES_INLINE uint8_t pagemap_back(const PageLeaf* l, uintptr_t a) {  // l: a's leaf
  return __atomic_load_n(&l->back[(a >> kSlabShift) & (kLeafWords * 64 - 1)], __ATOMIC_RELAXED);
}
#if defined(__SANITIZE_THREAD__)
#define SPACES_PLAIN_BACK_READ 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPACES_PLAIN_BACK_READ 0
#endif
#endif
#ifndef SPACES_PLAIN_BACK_READ
#define SPACES_PLAIN_BACK_READ 1
#endif
// Is the granule of a (l: its leaf) the head of a size-class slab (kBackSlab, its header
// coloured: slab_of)? The free fast path's test; other heads go the slow way. Outside ThreadSanitizer
// builds, a plain read of the byte (written atomically elsewhere; a byte cannot tear, and the
// value is used once), so that the compiler folds the test into one compare with memory; the
// relaxed atomic load costs a separate load and compare.
SPACES_INLINE bool pagemap_is_head_fast(const PageLeaf* l, uintptr_t a) {
#if SPACES_PLAIN_BACK_READ
  return l->back[(a >> kSlabShift) & (kLeafWords * 64 - 1)] == kBackSlab;
#else
  return pagemap_back(l, a) == kBackSlab;
#endif
}
// The header of the live slab or large block whose block p may be: the granule of p - 1 when it
// starts one, else the head of the medium slab that granule is part of. NULL: none.
SPACES_INLINE Slab* slab_find(const void* p) {
  uintptr_t q = reinterpret_cast<uintptr_t>(p) - 1;
  PageLeaf* l = pagemap_leaf(q);
  if (SPACES_UNLIKELY(l == nullptr)) return nullptr;
  unsigned b = pagemap_back(l, q);
  uintptr_t g = q & ~kSlabMask;
  if (SPACES_LIKELY(b == kBackSlab)) return slab_at(g);
  if (b == kBackHead) return reinterpret_cast<Slab*>(g);
  if (b == 0) return nullptr;
  uintptr_t h = g - (uintptr_t(b) << kSlabShift);  // (a medium slab's or a page box's later granule)
  SPACES_ASSERT((h >> kLeafShift) == (q >> kLeafShift));
  b = pagemap_back(l, h);  // (same leaf: an arena never crosses one)
  return b == kBackSlab ? slab_at(h) : b == kBackHead ? reinterpret_cast<Slab*>(h) : nullptr;
}
// The header of whatever head granule g starts (a slab, a large block, a page box); NULL when g
// is no head. The census and the error reports' look-back ask it.
SPACES_INLINE Slab* pagemap_head_at(uintptr_t g) {
  PageLeaf* l = pagemap_leaf(g);
  if (l == nullptr) return nullptr;
  unsigned b = pagemap_back(l, g);
  return b == kBackSlab ? slab_at(g) : b == kBackHead ? reinterpret_cast<Slab*>(g) : nullptr;
}

// ---- os (os.cpp): declared in os.h, included above ----------------------------------------

// ---- options (options.cpp) ------------------------------------------------------------------
// name, default, min, max, doc. The table, the env variables SPACES_<NAME> and docs/options.md
// all come from this list.
#define SPACES_OPTION_LIST(X)                                                                    \
  X(show_stats, 0, 0, 2, "print the statistics to stderr at exit: 1 text, 2 (or SPACES_SHOW_STATS=json) JSON")                               \
  X(verbose, 0, 0, 1, "print the version and the options in force at start")                     \
  X(purge_delay_ms, 1000, -1, 3600000, "ms over which freed slabs go back to the OS with madvise, on a decay curve, all by its end (-1: never); also how long an exited thread's heap waits for a new thread before living threads merge it")\
  X(dirty_max_kib, 8192, 0, 1048576, "KiB of freed, still resident memory kept per thread heap before purging at once") \
  X(huge_pages, 1, 0, 2, "blocks >= 2 MiB: 0 none, 1 transparent huge pages, 2 the same (MAP_HUGETLB: not yet)") \
  X(huge_spans, 1, 0, 1, "huge_pages=1 or 2: thread heaps' blocks of 2-32 MiB are runs in 64 MiB spans advised THP, freed ones reused by any size (0: a mapping each)") \
  X(span_move_mib, 16, 0, 32, "realloc growing a span block of at least this many MiB that cannot grow in place moves its pages to a mapping of its own (mremap, no copy) instead of copying it to a new run (0: always copy)") \
  X(arena_huge_pages, 2, 0, 2, "advise THP on the thread heaps' 4 MiB arenas that hold small-class slabs (blocks up to 8 KiB; never page boxes, medium slabs or large blocks): 0 never, 1 every such arena, 2 those made once arena_huge_after_mib are in use (fewer page faults for large heaps)")  \
  X(arena_huge_after_mib, 64, 0, 1048576, "arena_huge_pages=2: MiB in use (committed less freed) before new arenas are advised THP") \
  X(slab_cache, 8, 0, 1024, "empty slabs each thread heap keeps for reuse")                      \
  X(populate, 1, 0, 1, "fault in a growing small class's fresh slabs with one madvise(MADV_POPULATE_WRITE) instead of a page fault per 4 KiB page") \
  X(medium_cache_kib, 1024, 0, 1048576, "KiB of empty medium slabs (9-256 KiB classes) and empty page boxes (at least one) each thread heap keeps") \
  X(medium_pages, 256, 0, 256, "KiB: thread heaps' medium blocks from 16 KiB up to this size are cut to whole pages from 1 MiB page boxes that every class shares (0: none; the others have a slab of their own per class)") \
  X(medium_block_cache_kib, 16384, 0, 1048576, "KiB of freed medium blocks each thread heap keeps for its next mallocs of the same class (at most 16 per class; 0: none)") \
  X(arena_cache, 2, 0, 4096, "fully free arenas kept mapped (purged) instead of unmapped")       \
  X(abort_on_oom, 0, 0, 1, "report out-of-memory to the error handler instead of ENOMEM")          \
  X(chunk_keep_slabs, 4, 0, 1024, "empty slabs a chunk keeps when emptied, and at least across spaces_chunk_reset") \
  X(chunk_reset_keep, 1, 0, 1, "spaces_chunk_reset keeps as many slabs as the busiest of the region's last 4 rounds used (0: only chunk_keep_slabs)") \
  X(chunk_huge_pages, 1, 0, 1, "regions take their slabs from arenas advised transparent huge pages") \
  X(shared_lock_timeout_ms, 10000, 1, 3600000, "longest wait for a shared region's lock before the operation fails") \
  X(profile_sample, 524288, 1, 1099511627776ll, "heap profiling (SPACES_PROFILE=<path prefix>): mean bytes between samples") \
  X(profile_signal, 0, 0, 64, "heap profiling: a signal that writes a profile (0: none)")

enum OptionId {
#define SPACES_X(name, def, lo, hi, doc) kOpt_##name,
  SPACES_OPTION_LIST(SPACES_X)
#undef SPACES_X
  kNumOptions
};
extern long long g_options[kNumOptions];
SPACES_INLINE long long option(OptionId id) { return g_options[id]; }
void options_init_from_env();
void options_print(int fd);

// ---- locks ------------------------------------------------------------------------------------
// A test-and-test-and-set spin lock that yields: never allocates, fork-safe by reset.
struct SpinLock {
  std::atomic<int> v{0};
  SPACES_INLINE void lock() {
    if (SPACES_LIKELY(!v.exchange(1, std::memory_order_acquire))) return;
    lock_slow();
  }
  void lock_slow();  // (arena.cpp: out of line, in SPACES_HOT_TEXT, which an inline copy cannot be)
  bool try_lock() { return v.load(std::memory_order_relaxed) == 0 && !v.exchange(1, std::memory_order_acquire); }
  void unlock() { v.store(0, std::memory_order_release); }
  void reset() { v.store(0, std::memory_order_relaxed); }
};
struct LockGuard {
  SpinLock& l;
  explicit LockGuard(SpinLock& x) : l(x) { l.lock(); }
  ~LockGuard() { l.unlock(); }
};

// ---- arena (arena.cpp) ----------------------------------------------------------------------
// A run of `count` contiguous slabs (head bits are the caller's job); *dirty tells whether any of
// it may hold old data (else it is fresh or purged, hence zero). huge: from a regions' THP arena.
// dense: a thread heap's small-class slab, carved block by block, so that its pages fill in
// order; only such runs come from a thread heaps' arena advised huge pages (arena_huge_pages) or
// make one. Everything else (page boxes, medium slabs, large blocks: blocks handed out whole,
// perhaps barely written; regions with chunk_huge_pages 0) is sparse and keeps 4 KiB pages, where
// one touched page would make 2 MiB resident (session 24: `g++ -O2 -c` of spaces.cpp peaked at
// 274 MB when boxes shared those arenas, 218 MB as with no huge pages when only small slabs do).
// The default is sparse, so a new caller cannot take huge pages by accident (session 25).
Slab* arena_alloc_slabs(size_t count, bool* dirty, bool huge = false, bool dense = false);
void arena_free_slabs(Slab* s, size_t count);
struct RunBatch {  // runs to give back together (arena_free_batch empties it)
  static constexpr size_t kMax = 64;
  size_t n = 0;
  Slab* run[kMax];
  uint32_t count[kMax];
};
void arena_free_batch(RunBatch& runs);
void arena_collect(bool force);          // purge what is due (or everything), every shard
// Is the arena holding p advised transparent huge pages (regions' arenas; thread heaps' with
// arena_huge_pages)? Then a slab cut from its dirty granules keeps its pages (heap.cpp): a purge
// would split the huge page under a slab about to be used.
bool arena_thp(const void* p);
// Would a thread heap's arena made now be advised huge pages (arena_huge_pages: 1, or 2 with
// arena_huge_after_mib in use: committed less dirty)?
bool arena_thp_due();
unsigned arena_home_shard();             // the calling thread's shard (tests)
unsigned arena_of_shard_for_test(const Slab* s);  // the shard of the arena holding slab s
unsigned arena_shard_count();
void arena_set_heaps(size_t n);          // the dirty bound is dirty_max_kib per thread heap
void* arena_map_direct(size_t size, size_t align, size_t* mapped);  // 4 MiB aligned and rounded
void arena_unmap_direct(uintptr_t base, size_t mapped);
// A cached direct mapping: resident: bytes from base that may hold old data; charged: of those,
// what is counted as committed and dirty (resident less a never-touched lead); lead: bytes from
// base, whole 2 MiB pages, below the 2 MiB page its last block's data started in (they hold a
// small-page table: data placed there would fault 4 KiB at a time).
struct DirectReuse {
  size_t mapped, resident, charged, lead;
};
void* arena_direct_from_cache(size_t need, DirectReuse* out);
bool arena_direct_to_cache(uintptr_t base, const DirectReuse& r);
void arena_direct_cache_drop();
void arena_direct_account(ptrdiff_t reserved_delta, ptrdiff_t committed_delta);
// Spans (huge blocks, option huge_spans): a run of `count` granules (1 <= count <= kSpanMaxRun)
// in a 64 MiB span advised THP; *dirty: which of its granules may hold old data (the rest are
// fresh or purged, hence zero). NULL if no span can be mapped.
constexpr size_t kSpanMaxRun = 513;  // granules: a 32 MiB block and its header
struct SpanDirty {  // granules [first, end) of a run may hold old data (first == end: none)
  size_t first, end;
};
Slab* arena_alloc_span_run(size_t count, SpanDirty* dirty);
// Granules [clean_from, clean_to) of it had their pages moved out (os_move_out): they are free
// and clean, not dirty.
void arena_free_span_run(Slab* s, size_t count, size_t clean_from = 0, size_t clean_to = 0);
// Grow the span run at s from `count` to `want` granules in place if the granules after it are
// free (and take them); false otherwise.
bool arena_grow_span_run(Slab* s, size_t count, size_t want);
// The same for a run of a thread heaps' arena (large blocks): grown into the free granules right
// after it in its arena, dirty or clean.
bool arena_grow_run(Slab* s, size_t count, size_t want);
struct ArenaTotals {
  size_t arenas, reserved, committed, peak_committed, slabs_cached, purges, mmaps;
};
ArenaTotals arena_totals();
// Calls fn(head, arg) for every in-use granule of every arena that heads a slab or a large run,
// one shard at a time under its lock (fn only reads: no allocation, no lock, no system call).
// Returns the arena granules in use.
size_t arena_for_each_head(void (*fn)(const Slab* head, void* arg), void* arg);
void arena_fork_lock();       // fork: every arena shard's lock and the mapping cache's
void arena_fork_unlock();
void arena_after_fork_child();

// ---- heap (heap.cpp) ------------------------------------------------------------------------
using SlabList = IList<Slab, &Slab::next, &Slab::prev>;

constexpr size_t kDirectSlots = kSmallMax / 8 + 1;
// Remote frees in batches (free.cpp): a thread heap's frees of small blocks (up to
// kRemoteBlockMax) into slabs other threads own are chained here per slab, with no atomic,
// and pushed onto the slab's remote stack kRemoteBatch at a time (at most kRemoteBatchBytes)
// with one CAS: at most 64 x 8 KiB wait per thread. An entry is also
// pushed when another slab needs its place, when it sat unused through one of this thread's
// malloc refills (or 64 new entries), when the thread exits and on spaces_collect; a fork child
// drops the dead threads' entries. Its blocks still count as used in their slab, so the slab
// cannot be released meanwhile (nor re-initialised, but after an unseen double free: the entry's
// `key` is compared with the slab's on every append and flush, and a stale chain is dropped).
constexpr unsigned kRemoteEntries = 64;        // (a slab's place: its index in its arena,
constexpr uint32_t kRemoteBatch = 32;          //  mixed with the arena's: free.cpp remote_index)
constexpr uint32_t kRemoteBatchBytes = 8192;   // fewer blocks per batch above 256 bytes
constexpr uint32_t kRemoteBlockMax = 1024;
// Medium blocks freed by their owner thread (free.cpp, medium_cache_put) wait in the heap, per
// class, newest last, and malloc of the class takes them back (heap.cpp) without touching their
// slab: no slab header read, no free-list link, no detach/attach of a full slab. At most
// kMediumCacheSlots per class and option medium_block_cache_kib per heap. Their blocks still
// count as used in their slabs (so a slab holding one cannot empty), their link word is written
// as a free block's (a second free of one is caught: medium_cached), and the heap gives them
// back to their slabs before any pass that counts or releases slabs (heap_sweep: collect,
// thread exit, merge), and a class not used for kMediumCacheAge of the thread's slow mallocs
// gives its blocks back too (a thread that moved on to other work does not hold them for ever;
// one that stopped allocating altogether keeps them until spaces_collect or its exit). Other
// threads read `n` and `b` only to look for a double free.
constexpr unsigned kNumMediumClasses = kNumClasses - kNumSmallClasses;
constexpr unsigned kMaxBoxes = 64;  // page boxes per thread heap (pages.cpp): 64 MiB of medium blocks
constexpr unsigned kBoxBuckets = 65;  // a heap's lists of free box runs: 1..64 pages, and longer
constexpr unsigned kMediumCacheSlots = 16;
constexpr uint64_t kMediumCacheAge = uint64_t(1) << 16;  // slow mallocs without a use of the class
struct MediumCache {
  uint32_t n;
  uint64_t last_use;  // the heap's slow_calls when a block of the class was last put or taken
  Block* b[kMediumCacheSlots];
  uintptr_t link[kMediumCacheSlots];  // the link word put wrote in b[i] (its slab's key): a block
                                      // whose word changed was written after its free
};
struct RemoteEntry {
  Slab* slab;     // NULL: unused (read by other threads' double-free checks: atomically)
  Block first;    // a link word like a block's: encodes the chain's first (oldest) block
  Block* tail;    // newest block, or &first while the chain is empty: the next is linked here,
                  // and the push links it to the slab's stack (the chain keeps the order of the
                  // frees, so the owner reuses blocks in that order: xthread 2 threads 7 %
                  // faster than newest-first)
  uintptr_t key;  // the slab's key when the entry was made (a slab re-initialised has another)
  uint32_t count;
  uint32_t limit; // pushed at this count: kRemoteBatch, or fewer of large blocks
  uint32_t seen;  // count at this thread's last malloc refill (the same at the next: pushed)
};
struct alignas(64) Heap {
  Slab* direct[kDirectSlots];        // by (size + 7) / 8: cur[class_of(size)], saving malloc the
                                     // class lookup; kept in step by heap_set_cur
  Slab* cur[kNumClasses];            // the slab each class allocates from (never NULL)
  SlabList partial[kNumClasses];     // other tracked slabs of the class
  alignas(64) std::atomic<Slab*> notify;  // slabs that got a remote free while kStateFull
  alignas(64) Slab* empty;           // cache of empty slabs, linked by next
  uint32_t empty_count;
  uint32_t medium_empty_granules;    // granules held by medium_empty
  Slab* medium_empty;                // cache of empty medium slabs (any class), linked by next
  uint32_t state;                    // HeapState
  uint8_t pooled;                    // in the pool (written under g_heap_lock; read atomically by
                                     // a remote free's notify, which then drains the list: heap.cpp)
  uint8_t draining;                  // a thread drains it in the pool (heap.cpp, pool_drain)
  uint8_t handoff;                   // 1: that thread asks for a successor; 2: a freeing thread
                                     // waits to take the drain over (pool_drain)
  uint64_t collect_pass;             // the last heap_collect_abandoned pass that swept it
  uint8_t had_slab;                  // it was ever given a slab (heap_new_slab, heap_merge): one
                                     // it detached when full is on none of its lists (heap_is_bare)
  uintptr_t drainer;                 // that thread (while `draining`)
  uintptr_t holder;                  // the thread holding it out of the pool (kHeapIdleHeld)
  Heap* pool_next;                   // abandoned pool, newest first (towards older heaps)
  Heap* pool_prev;                   // towards newer heaps
  uint64_t abandoned_ns;             // when it entered the pool (os_now_ns)
  Heap* all_next;                    // registry of every heap
  uint64_t slow_calls;
  uintptr_t tp;                      // thread pointer of the owning thread, 0 while abandoned
  uintptr_t fast_tp;                 // what its slabs' fast_owner is set to: tp, but 0 for a
                                     // region's heap while heap profiling (profile.cpp: every free
                                     // of a region block must reach the slow path)
  Chunk* chunk;                      // the chunk this heap is (NULL for thread heaps)
  uint32_t cache_limit_override;     // chunk heaps: empty slabs kept (0: use option slab_cache)
  uint64_t growing;                  // bit c (small classes): c's last refill took a fresh slab
                                     // (no slab of the heap had room): the next such slab is
                                     // populated at once (heap.cpp, heap_new_slab); 0 in the pool
  // thread heaps: remote frees waiting to be pushed (free.cpp), written by the owning thread only
  alignas(64) RemoteEntry remote[kRemoteEntries];
  uint32_t remote_live;              // entries in use
  uint32_t remote_made;              // entries made (ages a free-only thread's batches)
  uint32_t remote_epoch;             // g_remote_epoch when last flushed whole
  // thread heaps: medium blocks freed by the owning thread, waiting for its next malloc
  uint32_t mcache_bytes;             // bytes of blocks in mcache
  uint32_t box_count;                // thread heaps: page boxes (pages.cpp), in box_idx
  uint32_t box_ticks;                // box mallocs (every 64th ages the boxes: box_age)
  uint32_t box_epoch;                // box_age calls (free runs are stamped with it)
  uint32_t box_dirty;                // its boxes' dirty_pages, summed
  uint64_t box_slots;                // bit k: box_idx[k] holds a box (its Slab::cls is k)
  uint64_t run_mask[2];              // bit b: run_head[b] names a run
  uint16_t run_head[kBoxBuckets];    // the boxes' free runs by length (BoxRef of the first; 0: none)
  Slab* box_idx[kMaxBoxes];
  alignas(64) MediumCache mcache[kNumMediumClasses];
};
// kHeapIdleHeld: a heap with no thread held by `holder` for a while: taken out of the pool for a
// merge or spaces_collect (put back after), or being made a thread's own (heap_thread_init); a
// fork child pools it (or lists it as bare) unless the holder is the forking thread itself
// (heap.cpp, heap_after_fork_child).
enum HeapState : uint32_t { kHeapStatic = 0, kHeapActive = 1, kHeapAbandoned = 2, kHeapChunk = 3, kHeapIdleHeld = 4 };

extern Heap g_empty_heap;      // what a thread sees before its first allocation
extern Slab g_empty_slab;      // cur[] of the empty heap: free == itself, so malloc goes slow
extern SPACES_TLS Heap* t_heap;

void* heap_malloc_slow(Heap* h, size_t size, bool zero);
void* heap_malloc_slow_rest(Heap* h, size_t size, bool zero);  // the same, never sampled
// free.cpp: the free paths, and the checks every path that takes a block back makes
void free_slow(void* p);
void free_dispatch(void* p, Slab* s);  // s: p's slab (slab_find's answer)
Block* small_block_of(Slab* s, const void* p, const char* what);  // NULL: reported
Slab* checked_slab(const void* p, const char* what);               // NULL: reported
size_t small_usable(Slab* s, const void* p, const char* what);     // 0: reported
void heap_slab_emptied(Heap* h, Slab* s);
bool medium_cached(const Slab* s, const Block* b);  // b waits in some heap's mcache (racy: a hint)
void remote_flush_all(Heap* h);   // push every batched remote free of h (its thread, or h idle)
void remote_tick(Heap* h);        // h's thread is refilling: push entries idle since the last one
extern std::atomic<uint32_t> g_remote_epoch;  // spaces_collect bumps it: every thread pushes all
Heap* heap_thread_init(bool from_pool = true);
// Rounds of pthread-key destructors Spaces' own runs in (heap.cpp, heap_thread_done): glibc's
// PTHREAD_DESTRUCTOR_ITERATIONS (4) less the last, in which the sanitizers' runtimes tear the
// thread down (ThreadSanitizer then faults on any access the destructor makes).
constexpr unsigned kKeyRounds = 3;
Heap* heap_trade_bare(Heap* h);  // this thread's slabless heap h about to get a slab: a pooled one instead
extern SPACES_TLS bool t_heap_done;  // heap_thread_done ran: a free never makes a heap again
void heap_thread_done(void* h);
void heap_collect(Heap* h, bool force);
void heap_collect_abandoned();
void pool_drain(Heap* a);  // a remote free queued a slab on pooled heap a: drain its notify list
constexpr unsigned kDrainSlabs = 64;  // slabs one pass of pool_drain takes off the list
constexpr unsigned kDrainPasses = 8;  // passes one free() drains before it asks for a successor
void heap_after_fork_child();
void heap_fork_lock();
void heap_fork_unlock();
struct HeapTotals {
  size_t heaps, abandoned, threads_started, slabs_in_use;
};
HeapTotals heap_totals();

// batch: slabs that go to the arenas are collected there (the caller gives it to arena_free_batch).
void heap_release_slab(Heap* h, Slab* s, bool to_arena, RunBatch* batch = nullptr);
Slab* heap_new_slab(Heap* h, unsigned cls, bool hot = false);
// Bump slabs of exclusive chunks (chunk.cpp)
void bump_free(Slab* s, void* p);
struct RegionInfo {  // one live region, for the JSON statistics
  const char* name;  // spaces_chunk_set_name, or NULL
  unsigned flags;
  size_t footprint, peak, ceiling, ceiling_hits;
};
// Copies up to `cap` live regions into out (under the registry lock: no system call); returns
// how many are live, and their footprints together in *footprint.
size_t chunk_list_regions(RegionInfo* out, size_t cap, size_t* footprint);
size_t chunk_window_carved(const Chunk* c, const Slab* s);  // bytes carved from c's current bump
                                                            // slab s (0 if s is not it): census
extern int g_marks_isa;  // how bump slabs' start marks are packed: 0 not known yet, 1 SSE2, 2 AVX2
size_t bump_usable(Slab* s, const void* p);
size_t bump_check(Slab* s, const void* p, const char* what, bool* untracked_out = nullptr);  // the block's size (untracked: up to the top), 0 if not live
// Shared regions (shared.cpp): pointers and handles of regions this process has attached.
bool shared_owns(const void* p);
// (By handle, a shared region is reached through its region operations, SharedRegion: region.cpp.)
bool shared_free(void* p);                      // false: p is in no attached region
bool shared_usable(const void* p, size_t* out);  // false: p is in no attached region
void* shared_realloc_any(void* p, size_t size);
SpacesChunk shared_chunk_of(const void* p);
void shared_fork_lock();
void shared_fork_unlock();
void shared_fork_child();
void shared_fork_child_unlocked();  // fork without locks (single-threaded process)
void* heap_aligned_alloc(Heap* h, size_t align, size_t size);
void heap_mark_aligned(Slab* s);
extern SPACES_TLS Heap* t_home_heap;   // the thread's own heap (t_heap may be a captured chunk's)
void heap_init_chunk(Heap* h, Chunk* c);
void heap_bind_slabs(Heap* h, uintptr_t tp, int arm = 0);
void heap_set_cur(Heap* h, unsigned cls, Slab* s);
void heap_collect_slab(Heap* h, Slab* s);  // owner side: take remote frees, re-track if detached

// ---- chunk (chunk.cpp) ----------------------------------------------------------------------
bool chunk_reserve(Chunk* c, size_t bytes);     // false: the ceiling blocks it
void chunk_unreserve(Chunk* c, size_t bytes);
void chunk_slab_added(Chunk* c, Slab* s);
void chunk_slab_in_use(Chunk* c);  // one more slab in use: the round peak reset keeps
void chunk_slab_removed(Chunk* c, Slab* s);
void chunk_large_added(Chunk* c, Slab* h);
uint8_t chunk_large_claim(Chunk* c, Slab* h);  // large_free's claim, the list and footprint with it
void chunk_remote_freed(Chunk* c, size_t blocks, size_t bytes);  // +/-: pending remote frees
void* chunk_realloc_block(Chunk* c, void* p, size_t size);
bool chunk_route_slow(Heap* h);
void* chunk_alloc_routed(Heap* h, size_t align, size_t size, bool zero);
bool chunk_fork_try_lock();  // the chunk pool and every chunk's locks, all or none
void chunk_fork_unlock();
void chunk_fork_child();  // locks reset; heaps captured by threads the child lacks unbound

// ---- large (large.cpp) ----------------------------------------------------------------------
void* large_alloc(size_t size, size_t align, bool zero, Chunk* chunk = nullptr);
void large_free(Slab* head, void* p);
void* large_realloc(Slab* head, void* p, size_t size);
size_t large_usable(const Slab* head, const void* p);
struct LargeTotals {
  size_t blocks, bytes;
  size_t direct_blocks, direct_bytes;  // of which huge blocks (mappings of their own and span
                                       // runs: glibc's hblks), bytes mapped or of their runs
};
LargeTotals large_totals();
// fork and large_resize's claims (a fork child must never see a block claimed by a thread it
// lacks): fork_prepare waits for the claims in flight, and a claim made meanwhile waits for the
// fork to finish.
void large_fork_wait();    // fork_prepare: with the stdio and region locks, before the others
void large_fork_open();    // fork_parent
void large_fork_child();   // fork_child: no claim survives (the child has one thread)

// ---- heap profiling (profile.cpp) -----------------------------------------------------------
// Off (g_prof_on false, decided once at initialisation) nothing below is reached and the fast
// paths are unchanged. On, every thread heap's direct[] table stays empty so each small malloc
// takes heap_malloc_slow, which counts its bytes (prof_tick); regions give no inline window.
extern bool g_prof_on;
extern Heap g_prof_heap;                   // where sampled thread-heap blocks live
extern SPACES_TLS int64_t t_prof_left;     // bytes until this thread's next sample
bool prof_tick_slow();
// Count `size` bytes of this thread's allocations; true: this allocation is a sample.
SPACES_INLINE bool prof_tick(size_t size) {
  int64_t left = t_prof_left - int64_t(size);
  t_prof_left = left;
  return SPACES_UNLIKELY(left <= 0) && prof_tick_slow();
}
void prof_init();   // ensure_init, after the options: SPACES_PROFILE, before any heap exists
void prof_start();  // ensure_init, when the core is usable: the dump at exit, the signal
// ra: the caller's __builtin_return_address(0), where the program's own frames begin
void* prof_malloc_sampled(Heap* h, size_t size, bool zero, const void* ra);  // a thread-heap sample
void prof_record(void* p, size_t size, Chunk* c, const void* ra);   // a sample placed where it was
// free_slow, before the block is freed: ends p's record if it has one; true when it also
// freed p (a block of g_prof_heap, freed under the profiler's lock as its owner)
bool prof_free_hook(Slab* s, void* p);
void* prof_large_realloc(Slab* s, void* p, size_t size);  // realloc of a sampled large block
void prof_collect(bool force);                      // spaces_collect: the samples' heap's caches
bool prof_busy();                                   // inside the profiler (no error reports)
bool prof_locked();                                 // this thread holds the profiler's lock (no purges)
void prof_locked_for_test(bool on);                 // tests: as if this thread held it
void prof_forget_chunk(Chunk* c);                   // reset/destroy: the region's samples end
void prof_fork_lock();
void prof_fork_unlock();
void prof_fork_child();

// ---- page boxes (pages.cpp) -----------------------------------------------------------------
// A thread heap's medium blocks of the classes above one granule (16-256 KiB, option
// medium_pages) are runs of whole pages in 1 MiB boxes (16 granules) that every class shares: a
// freed block's pages serve the next block of any class. Page 0 holds the Slab header (kind
// kSlabPages, no class, fast_owner 0: every free of a box block takes the slow path) and this
// record; blocks start on page boundaries from page 1. The owner thread allocates and frees with
// no atomic; other threads push onto the header's remote stack (thread_free, kept kStateFull so
// the first push queues the box on the owner's notify list).
constexpr unsigned kBoxGranules = 16;
constexpr unsigned kBoxPages = unsigned(kBoxGranules * kSlabSize / kPageSize);  // 256
constexpr unsigned kBoxWords = kBoxPages / 64;
struct PageBox {
  uint64_t free[kBoxWords];   // a bit per page: free (page 0, the header's, never)
  uint64_t clean[kBoxWords];  // a bit per page: zero (fresh or purged, not handed out since)
  uint16_t free_pages;
  uint16_t dirty_pages;       // free pages that are not clean (resident, or may be)
  uint32_t live;              // blocks handed out and not back in `free` (cached and remotely
                              // freed ones, not yet taken back, count)
  uint64_t dirty_since;       // ns (odd) when a page went back to `free` unpurged first since the
                              // box's last check (box_age); 0: no dirty free page since
  uint32_t dirty_epoch;       // the heap's box_epoch when dirty_since was set
  uint8_t cls[kBoxPages];     // at a live block's first page: its class; 0 elsewhere
  // The free runs (maximal runs of free pages), each on its owner heap's list for its length:
  uint8_t run_len[kBoxPages];     // at a run's first and last page: its length in pages
  uint16_t run_next[kBoxPages];   // at a run's first page: the next and previous runs on its
  uint16_t run_prev[kBoxPages];   // list, as BoxRefs (0: none)
  uint32_t run_epoch[kBoxPages];  // at a run's first page: the heap's box_epoch when its newest
                                  // page was freed (box_age purges it once that is dirty_epoch or older)
};
// A free run named by its heap's slot of the box (Slab::cls) and its first page (never 0).
using BoxRef = uint16_t;
static_assert(kSlabHeader + sizeof(PageBox) <= kPageSize, "a page box's record fits in its page 0");
SPACES_INLINE PageBox* box_of(const Slab* s) {
  return reinterpret_cast<PageBox*>(reinterpret_cast<uintptr_t>(s) + kSlabHeader);
}
SPACES_INLINE unsigned box_pages_of(unsigned cls) { return unsigned((class_size(cls) + kPageSize - 1) / kPageSize); }
// Does a thread heap's malloc of class cls take pages from a box? (Never while heap profiling:
// its samples' heap and hooks know slabs only.)
SPACES_INLINE bool box_class(unsigned cls) {
  return g_classes.granules[cls] > 1 && class_size(cls) <= uint64_t(option(kOpt_medium_pages)) << 10 && !g_prof_on;
}
void* box_alloc(Heap* h, unsigned cls, size_t size, bool zero);  // NULL: out of memory
bool box_index_consistent(const Heap* h);                        // tests: h's boxes and run lists as they must be
void box_free(Slab* s, void* p);                                 // any thread; checked
size_t box_usable(Slab* s, const void* p, const char* what);     // 0: reported
void* box_realloc(Slab* s, void* p, unsigned c, size_t size);    // in place, or NULL: move it
void box_drain(Heap* h, Slab* s);                // owner: the box was on h->notify
void box_age(Heap* h);  // owner: free pages back to the kernel purge_delay_ms after a box's first unpurged free
bool box_purge_due(uint64_t since, uint64_t now, uint64_t delay);  // (box_age's test of a box's PageBox::dirty_since)
void box_sweep(Heap* h, bool all, bool to_arena);  // heap_sweep's part: empty boxes out, (all &&
                                                   // to_arena) free pages purged
void box_merge(Heap* h, Heap* a);                // heap_merge's part: a's boxes to h
void box_after_fork(Heap* h);                    // fork child: a dead thread's index repaired
bool box_is_pending(Slab* s, Block* b);  // double-free check: b on s's remote stack (racy hint)

// realloc of live-looking block p (usable bytes from small_usable or box_usable) that was freed
// already: p's slab block b is on a free list, a remote batch, a medium cache or its box's remote
// stack. One load and compare unless b's first word looks like a free link; true: reported as
// a double free. (Without it a realloc kept in place handed a freed block back as live.)
bool small_block_freed(Slab* s, Block* b);    // small slab: b on a list or in a cache (racy hint)
bool freed_block_reported(Slab* s, Block* b, const char* what);  // (block_is_freed's walk, out of line)
// Is p (usable bytes from it to its slot's end, checked by the caller) a small or box block that
// was freed already? Reported as DOUBLE_FREE `what` if so. realloc and malloc_usable_size ask.
SPACES_INLINE bool block_is_freed(Slab* s, const void* p, size_t usable, const char* what) {
  Block* b = reinterpret_cast<Block*>(s->kind == kSlabPages ? uintptr_t(p) : uintptr_t(p) + usable - s->block_size);
  return SPACES_UNLIKELY(slab_block_looks_free(s, b)) && freed_block_reported(s, b, what);
}
SPACES_INLINE bool realloc_of_freed_block(Slab* s, void* p, size_t usable) {
  return block_is_freed(s, p, usable, "realloc of a freed block");
}

// ---- api (api.cpp) --------------------------------------------------------------------------
bool ensure_init();
void report_error(int code, const void* addr, const char* what);
void* out_of_memory(size_t size);   // sets ENOMEM (or reports the request), returns NULL
void write_str(int fd, const char* s);
void write_num(int fd, const char* label, unsigned long long v);
char* format_hex(char* out, uintptr_t v);
char* format_dec(char* out, unsigned long long v);  // returns the end (the NUL)

}  // namespace spaces_core

#endif  // SPACES_INTERNAL_H
