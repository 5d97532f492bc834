// ops.h - the operation language of the Spaces fuzzers, its decoder, and the model that checks
// every answer the allocator gives.
//
// An input is a 2-byte header followed by 6-byte records: [op][sel][val: 4 bytes, little endian].
// A trailing partial record is ignored, so every byte string is a valid program. Record layout
// and op numbers are stable: hand-written seeds and regression inputs depend on them.
//   header[0]  allocator options for this input (apply_options): purge delay, slab cache,
//              chunk_keep_slabs, huge pages, arena cache, chunk_reset_keep.
//   header[1]  runner configuration: lanes (fuzz_ops) or threads, region ceilings and whether
//              shared region 1 is in shared memory (fuzz_mt).
//   op         0..kNumOps-1 name an operation directly (seeds use these); larger values map to
//              operations by the weights in make_op_table(), so random bytes give a useful mix.
//   sel        small choices: which region slot, lane, pool, alignment exponent, mode bits.
//   val        a size (decode_size), a block index (pick), a ceiling...
//
// The model (class Model) holds every live block: address, requested and usable size, alignment,
// owner (thread heaps or region slot), the footprint it costs if large, and a fill pattern seeded
// per block. It checks, for every operation:
//   - contents: a block's pattern survives until it is freed, and realloc preserves the prefix;
//     calloc / SPACES_ZERO blocks read as zero; the bytes up to usable_size are writable;
//   - no two live blocks (nor TypedPool objects) overlap: an ordered map of [p, p + usable);
//   - alignment, usable_size >= request, usable_size == the documented size class for small
//     requests, spaces_chunk_of / spaces_owns of every block;
//   - regions: walk visits exactly the model's live blocks (matched by containment, since an
//     over-aligned block sits inside its slot), stats match (live_blocks, large_blocks exactly;
//     live_bytes >= sum of usable sizes, equal when no block sits at an offset in its slot;
//     footprint == slabs * 64 KiB + the documented cost of each large block); ceiling_hits counts
//     exactly the refused calls; reset and destroy leave what docs/regions.md says;
//   - untracked regions (one exclusive region in four, chunk_flags): their bump blocks report
//     usable_size 0 and are left out of live_blocks, a free of one keeps its bytes in live_bytes
//     and its memory out of every later block until reset (the "ghosts"), walk is refused with
//     ENOTSUP, and realloc keeps a tracked block tracked;
//   - ceilings (derived from sdk/src/chunk.cpp, large.cpp, heap.cpp and docs/regions.md):
//       * the footprint grows only by a reservation that keeps it at or below the ceiling, so
//         after any call footprint <= max(ceiling, footprint before the call); a ceiling lowered
//         below the footprint blocks all growth;
//       * a region allocation needs at most one reservation of `need` bytes: 64 KiB (a fresh slab)
//         for the small path, model_large_cost(size, align) for the large path (model_need()
//         decides the path exactly as chunk_alloc_inner / heap_aligned_alloc do). A call that
//         fails has, on its last attempt, found footprint + need > ceiling; nothing changes the
//         footprint after that attempt (the pressure handler runs before it), so NULL implies
//         errno == ENOMEM, a non-zero ceiling and (footprint after the call) + need > ceiling.
//         Conversely a region without a ceiling never returns NULL for a sane size;
//       * a NULL counts exactly one ceiling hit and calls the pressure handler exactly once (if
//         one is set); a success counts none and calls it at most once;
//       * peak_footprint never exceeds the highest ceiling (or footprint at the time it was set)
//         as long as no allocation ran without a ceiling.
//   - impossible requests (SIZE_MAX, > 2^46, overflowing calloc) give NULL + ENOMEM, bad
//     alignments EINVAL, and leave the block of a failed realloc intact; a bad pointer next to a
//     live block (its granule's header, inside a large block) is reported once by free, realloc
//     and usable_size and changes nothing; a small or medium block of the thread heaps freed twice
//     in a row (fuzz_ops, op free with sel bit 7) is reported once as a double free, wherever the
//     first free put it (slab free list, remote stack or batch, the heap's medium-block cache).
//   - shared-memory regions (spaces_chunk_create_shared, docs/shared.md; a slot is one when
//     ChunkSlot::shm is set): every region op above runs on them, and the model follows
//     sdk/src/shared.cpp's rules exactly: usable sizes (shm_path), the granule table (which 64 KiB
//     granule holds metadata, which a slab of which class with how many blocks, which a large
//     run), hence footprint, slabs and peak_footprint exactly; an allocation succeeds exactly
//     when it fits in a slab of its class with room, or footprint + the granules it needs <=
//     ceiling and a run of that many free granules exists (shm_fits); a NULL is ENOMEM and counts
//     one ceiling hit whatever the pressure handler did; realloc keeps a block exactly when the
//     new size fits and wastes less than half; root set/get and reset's clearing of it; create,
//     open, unlink and close errors (EINVAL, EEXIST, ENOENT); spaces_chunk_destroy of such a
//     region is reported (and refused). Names are unlinked right after creation, so a crash
//     leaves nothing in /dev/shm.
// Any report from the Spaces error handler is a mismatch (the fuzzer only makes valid calls),
// except the one a call under test must make (t_expect_error).
//
// Threads: a Model belongs to one thread at a time. fuzz_ops.cpp passes one Model between lane
// threads (only one runs at a time, each hand-over is a mutex edge); fuzz_mt.cpp gives every
// thread its own Model, shares two regions among them through MtShared, and moves blocks between
// threads through MtShared's inboxes.
#ifndef SPACES_FUZZ_OPS_H
#define SPACES_FUZZ_OPS_H

#include "spaces/spaces.h"
#include "spaces/TypedPool.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <time.h>
#include <unistd.h>
#include <vector>

namespace fuzz {

using ChunkStats = struct ::spaces_chunk_stats;  // (the function of the same name hides the tag)

// ---- driver state (shared by the runners and standalone_main.cpp) ----------------------------
inline std::atomic<uint64_t> g_ops{0};         // operations executed, all inputs
inline std::atomic<uint64_t> g_mismatches{0};
inline std::atomic<bool> g_failed{false};      // the current input hit a mismatch: stop it
inline bool g_abort_on_mismatch = true;        // libFuzzer: abort so that the input is saved
// Open core bugs to steer around (standalone --skip-known, env FUZZ_SPACES_SKIP_KNOWN): while a
// bug found by the fuzzer is not fixed, give it a bit here, test the bit where the op would walk
// into it, and list its regression input in regressions/OPEN_BUGS; remove both with the fix.
// None is open now.
inline unsigned g_skip_known = 0;
inline bool g_report_at_exit = true;  // libFuzzer builds print the op count at exit
inline thread_local uint64_t t_opno = 0;  // index of the op being run (for messages)
inline thread_local const char* t_opname = "setup";
inline thread_local int t_who = 0;    // lane or thread
inline thread_local char t_ctx[160];  // the block a sized free is about (for messages)
inline thread_local int t_expect_error = 0;  // an error report the running call must make
inline thread_local int t_expect_error_or = 0;  // ... or this one instead (0: none)
inline thread_local int t_errors_seen = 0;   // ... and how many it made

// What the ops exercised (standalone --stats): how often each op ran and the events that make
// the checks bite.
enum Event {
  kEvCeilingNull, kEvCeilingSuccess, kEvPressureCall, kEvWalkEntries, kEvCrossLaneFree, kEvInPlaceRealloc,
  kEvMovedRealloc, kEvLargeBlocks, kEvDirectBlocks, kEvHandoffs, kEvStatsChecks, kEvShmCreated, kEvShmNull,
  kEvShmGrowth, kEvShmSlabReleased, kEvShmErrorChecks, kEvBumpBeyondMax, kEvUntrackedRegion,
  kEvUntrackedBlock, kEvDoubleFrees, kNumEvents
};
inline const char* const kEventNames[kNumEvents] = {
    "region NULL at the ceiling", "region alloc under a ceiling", "pressure handler calls", "walk entries matched",
    "frees by another lane", "realloc in place", "realloc moved", "large blocks", "direct mappings",
    "blocks handed to another thread", "exact region stats checks", "shared-memory regions created",
    "shm NULL (capacity/ceiling/no run)", "shm allocations taking granules", "shm slabs released on free",
    "shm create/open/unlink error checks", "blocks over 1 KiB carved from a region page's room",
    "untracked regions created", "untracked bump blocks", "double frees reported"};
inline std::atomic<uint64_t> g_events[kNumEvents];
inline std::atomic<uint64_t> g_op_counts[64];
inline void count(Event e, uint64_t n = 1) { g_events[e].fetch_add(n, std::memory_order_relaxed); }

// The bytes between the request and usable_size are the caller's by contract, and the model
// writes and checks them, except where a memory checker is told that only the request is the
// caller's: ASan builds of the core poison region slack, SPACES_VALGRIND builds announce the
// request to memcheck (standalone --no-slack).
#if defined(__SANITIZE_ADDRESS__)
inline bool g_touch_slack = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline bool g_touch_slack = false;
#else
inline bool g_touch_slack = true;
#endif
#else
inline bool g_touch_slack = true;
#endif

[[gnu::format(printf, 1, 2)]] inline void fail(const char* fmt, ...) {
  char buf[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "spaces-fuzz: MISMATCH (thread %d, op #%llu %s): %s%s\n", t_who,
          (unsigned long long)t_opno, t_opname, buf, t_ctx);
  g_mismatches.fetch_add(1);
  g_failed.store(true);
  if (g_abort_on_mismatch) abort();
}

inline void on_spaces_error(int code, void* addr, const char* message, void*) {
  if (t_expect_error && (code == t_expect_error || (t_expect_error_or && code == t_expect_error_or))) {
    // (called on the thread that made the call)
    t_errors_seen++;
    return;
  }
  fail("Spaces reported error %d at %p: %s", code, addr, message);
}

// Once per process: route Spaces' error reports into fail(), print the totals at exit.
inline void process_init() {
  static bool done = [] {
    spaces_set_error_handler(on_spaces_error, nullptr);
    if (const char* e = getenv("FUZZ_SPACES_SKIP_KNOWN")) g_skip_known |= unsigned(strtoul(e, nullptr, 0));
    atexit([] {
      if (g_report_at_exit)
        fprintf(stderr, "spaces-fuzz: ops=%llu mismatches=%llu\n", (unsigned long long)g_ops.load(),
                (unsigned long long)g_mismatches.load());
    });
    return true;
  }();
  (void)done;
}

// ---- the operation language -------------------------------------------------------------------
enum Op : uint8_t {
  kMalloc, kCalloc, kRealloc, kAligned, kFree, kFreeSized, kUsable,
  kChunkCreate, kChunkAlloc, kChunkAligned, kChunkRealloc, kChunkFree, kChunkReset, kChunkDestroy,
  kSetCeiling, kWalk, kStats, kPoolCreate, kPoolNew, kPoolDelete, kPoolDestroy,
  kSwitch,     // fuzz_ops: run the next ops on lane sel % lanes; fuzz_mt: hand a block to a thread
  kLaneExit,   // fuzz_ops: lane sel % lanes (not 0) exits; fuzz_mt: receive handed-over blocks
  kCollect, kVerifyAll, kImpossible, kPressure, kCapture,
  kBurst,      // a tight alloc/free loop in one region or the thread heap (threads race in it)
  kNumOps
};
inline const char* const kOpNames[kNumOps] = {
    "malloc", "calloc", "realloc", "aligned_alloc", "free", "free_sized", "usable_size",
    "chunk_create", "chunk_alloc", "chunk_aligned_alloc", "chunk_realloc", "chunk_free",
    "chunk_reset", "chunk_destroy", "set_ceiling", "walk", "stats", "pool_create", "pool_new",
    "pool_delete", "pool_destroy", "switch", "lane_exit", "collect", "verify_all", "impossible",
    "pressure", "capture", "burst"};

struct OpTable {
  uint8_t op[256];
};
// Bytes below kNumOps are the op itself; the rest are spread by weight (heavy on the calls that
// matter most: allocation and free in both heaps and regions).
constexpr uint8_t kOpWeight[kNumOps] = {
    /*malloc*/ 31, /*calloc*/ 6, /*realloc*/ 17, /*aligned*/ 8, /*free*/ 28, /*free_sized*/ 8,
    /*usable*/ 7, /*chunk_create*/ 2, /*chunk_alloc*/ 38, /*chunk_aligned*/ 6,
    /*chunk_realloc*/ 11, /*chunk_free*/ 18, /*chunk_reset*/ 1, /*chunk_destroy*/ 1,
    /*set_ceiling*/ 4, /*walk*/ 2, /*stats*/ 6, /*pool_create*/ 1, /*pool_new*/ 7,
    /*pool_delete*/ 5, /*pool_destroy*/ 1, /*switch*/ 7, /*lane_exit*/ 1, /*collect*/ 1,
    /*verify_all*/ 0, /*impossible*/ 2, /*pressure*/ 2, /*capture*/ 3, /*burst*/ 3};
constexpr unsigned op_weight_sum() {
  unsigned n = 0;
  for (unsigned o = 0; o < kNumOps; o++) n += kOpWeight[o];
  return n;
}
static_assert(op_weight_sum() == 256 - kNumOps, "the weights spread the bytes kNumOps..255");
constexpr OpTable make_op_table() {
  const uint8_t* weight = kOpWeight;
  OpTable t{};
  unsigned b = 0;
  for (; b < kNumOps; b++) t.op[b] = uint8_t(b);
  for (unsigned o = 0; o < kNumOps; o++)
    for (unsigned w = 0; w < weight[o] && b < 256; w++) t.op[b++] = uint8_t(o);
  for (; b < 256; b++) t.op[b] = kMalloc;
  return t;
}
inline constexpr OpTable kOpTable = make_op_table();

struct Rec {
  uint8_t op, sel;
  uint32_t val;
};
constexpr size_t kHeaderBytes = 2;
constexpr size_t kRecBytes = 6;

struct Input {
  const uint8_t* data;
  size_t size;
  uint8_t h0 = 0, h1 = 0;
  size_t nrec = 0;
  Input(const uint8_t* d, size_t n) : data(d), size(n) {
    if (n >= 1) h0 = d[0];
    if (n >= 2) h1 = d[1];
    nrec = n > kHeaderBytes ? (n - kHeaderBytes) / kRecBytes : 0;
  }
  Rec rec(size_t i) const {
    const uint8_t* p = data + kHeaderBytes + i * kRecBytes;
    Rec r;
    r.op = kOpTable.op[p[0]];
    r.sel = p[1];
    r.val = uint32_t(p[2]) | uint32_t(p[3]) << 8 | uint32_t(p[4]) << 16 | uint32_t(p[5]) << 24;
    return r;
  }
};

// header[0]: options. Set before the input's first op, while no model block is live.
inline void apply_options(uint8_t h0) {
  static const long long purge[4] = {1000, 0, -1, 5};
  static const long long keep[4] = {4, 0, 1, 16};
  bool ok = spaces_option_set("purge_delay_ms", purge[h0 & 3]) == 0;
  ok &= spaces_option_set("slab_cache", (h0 >> 2) & 1 ? 0 : 8) == 0;
  ok &= spaces_option_set("chunk_keep_slabs", keep[(h0 >> 3) & 3]) == 0;
  ok &= spaces_option_set("huge_pages", (h0 >> 5) & 1 ? 0 : 1) == 0;
  ok &= spaces_option_set("arena_cache", (h0 >> 6) & 1 ? 0 : 2) == 0;
  ok &= spaces_option_set("chunk_reset_keep", (h0 >> 7) & 1 ? 0 : 1) == 0;
  if (!ok) fail("spaces_option_set refused a valid option");
}

// ---- what the model knows about the allocator (from docs/design.md and docs/regions.md) ------
constexpr size_t kSmallMax = 8192;
constexpr size_t kMediumMax = size_t(256) << 10;  // thread heaps: size classes up to this
constexpr size_t kBumpMax = 1024;  // exclusive regions: bump slabs up to this size
constexpr size_t kBumpRoomMax = 65536 - 1280;  // ...and larger blocks that fit the page's room
constexpr size_t kSlab = 65536;
constexpr size_t kArena = size_t(4) << 20;
constexpr size_t kLiveCap = size_t(64) << 20;  // requested bytes live at once, per model
constexpr size_t kMaxBlocks = 20000;           // live blocks per model

// 8, 16..128 by 16, then 8 per power of two: up to 8 KiB in regions (57 classes), up to 256 KiB in
// thread heaps (40 medium classes more).
inline size_t model_class_size(size_t n) {
  if (n <= 8) return 8;
  if (n <= 128) return (n + 15) & ~size_t(15);
  size_t base = 128;
  while (n > 2 * base) base *= 2;
  size_t step = base / 8;
  return base + (n - base + step - 1) / step * step;
}
inline size_t model_class_by_index(unsigned i) {
  if (i == 0) return 8;
  if (i <= 8) return 16 * i;
  size_t base = size_t(128) << ((i - 9) / 8);
  return base + ((i - 9) % 8 + 1) * (base / 8);
}

// Footprint of a large block (docs/regions.md, "What the footprint counts").
inline size_t model_large_cost(size_t size, size_t align) {
  if (align < 16) align = 16;
  size_t lead = align <= kSlab ? std::max<size_t>(256, align) : align;
  size_t slabs = (lead + size + kSlab - 1) / kSlab;
  if (slabs <= 63) return slabs * kSlab;
  size_t lead2 = std::max(kSlab, align);
  return (lead2 + size + kArena - 1) & ~(kArena - 1);
}

// The growth one region allocation of (size, align) may need: one fresh slab on the small path,
// the block's cost on the large path. align 0 = no alignment (spaces_chunk_alloc).
struct Need {
  bool large;
  size_t bytes;
};
// A thread heap's block of 2 MiB or more (large.cpp, huge_pages on by default) with huge_spans 0,
// or above 32 MiB, is a direct mapping: 4 MiB-rounded after a 64 KiB lead, or a 2 MiB lead when
// the data would otherwise take one more 2 MiB page than it needs. (Up to 32 MiB with spans, the
// default, it is a run of 64 KiB granules. No caller passes thread = true today: regions have no
// huge path.)
inline size_t model_huge_cost(size_t size, size_t align) {
  if (align <= kSlab && (size + (2u << 20) - 1) / (2u << 20) < (256 + size + (2u << 20) - 1) / (2u << 20))
    align = 2u << 20;
  size_t lead = std::max(kSlab, align);
  return (lead + size + kArena - 1) & ~(kArena - 1);
}
// Is a thread heap's class of size c served from page boxes (more than one granule, 16 KiB up, to
// medium_pages KiB)?
inline bool model_box_class(size_t c) {
  return c >= (size_t(16) << 10) && c <= kMediumMax && c <= size_t(spaces_option_get("medium_pages")) << 10;
}
// A thread heap's block of `rounded` bytes aligned to 256..4096: from a page box (page-aligned
// blocks) when boxes serve its class (more than one granule: 16 KiB up, to medium_pages KiB),
// the class's size usable (alloc.cpp, heap_aligned_alloc).
inline bool model_box_aligned(size_t rounded, size_t align) {
  if (align <= 128 || align > 4096 || rounded <= kSmallMax || rounded > kMediumMax) return false;
  size_t c = model_class_size(rounded);
  return c >= (size_t(16) << 10) && c <= size_t(spaces_option_get("medium_pages")) << 10;
}
// thread: a thread heap's block (medium classes up to kMediumMax, huge blocks), else a region's.
inline Need model_need(size_t size, size_t align, bool thread = false) {
  size_t class_max = thread ? kMediumMax : kSmallMax;
  if (thread && size >= (2u << 20)) return {true, model_huge_cost(size, std::max<size_t>(align, 16))};
  if (align <= 16) {
    if (size <= class_max) return {false, kSlab};
    return {true, model_large_cost(size, 16)};
  }
  size_t rounded = (size + align - 1) & ~(align - 1);
  if (rounded == 0) rounded = align;
  // (slots keep alignments up to 128: a slab header's colour is a multiple of 128, internal.h)
  if (align <= 128 && rounded <= class_max && model_class_size(rounded) % align == 0) return {false, kSlab};
  if (thread && model_box_aligned(rounded, align)) return {false, kSlab};
  if (size + align <= kSmallMax) return {false, kSlab};
  return {true, model_large_cost(std::max(size, kSmallMax + 1), align)};
}

// Shared-memory regions (docs/shared.md, sdk/src/shared.cpp): 64 KiB granules; the first `meta`
// hold the header and the granule table. A small block takes a slot of the core's size class of
// max(size, 16) in a slab (one granule: a 1 KiB header, then slots); an over-aligned one (up to
// 1 KiB) the class of its size rounded up to the alignment if that class is a multiple of it.
// Anything else (over 8 KiB, or aligned beyond what a class gives, up to 64 KiB) takes a run of
// granules with the block max(1 KiB, alignment) into the first. Alignments above 64 KiB: EINVAL.
constexpr size_t kShFirst = 1024;
constexpr size_t kShMaxAlign = 65536;
constexpr size_t kShMinCapacity = size_t(256) << 10;
constexpr size_t kShMaxCapacity = size_t(1) << 40;
struct ShmPath {
  bool einval = false;
  bool large = false;
  size_t cls = 0;     // small: the class size (= usable size)
  size_t run = 0;     // large: granules
  size_t off = 0;     // large: the block's offset in its first granule
  size_t usable = 0;
};
inline ShmPath shm_path(size_t size, size_t align) {
  ShmPath r;
  size_t a = std::max<size_t>(align, 16);
  if (a > kShMaxAlign) {
    r.einval = true;
    return r;
  }
  if (size <= kSmallMax && a <= 16) {
    r.cls = r.usable = model_class_size(std::max<size_t>(size, 16));
    return r;
  }
  if (size <= kSmallMax && a <= kShFirst) {
    size_t rounded = (size + a - 1) & ~(a - 1);
    size_t c = model_class_size(rounded ? rounded : a);
    if (rounded <= kSmallMax && c % a == 0) {
      r.cls = r.usable = c;
      return r;
    }
  }
  r.large = true;
  r.off = std::max(kShFirst, a);
  r.run = (r.off + std::max<size_t>(size, 1) + kSlab - 1) / kSlab;  // (a block starts inside its run)
  r.usable = r.run * kSlab - r.off;
  return r;
}
inline size_t shm_slots_per_slab(size_t cls) { return (kSlab - kShFirst) / cls; }

// Sizes: mostly small, class boundaries, large runs, direct mappings and the edges between.
inline size_t decode_size(uint32_t v) {
  uint32_t x = v >> 4;
  switch (v & 15) {
    case 0: case 1: case 2: return x % 17;
    case 3: case 4: case 5: return x % 129;
    case 6: case 7: case 8: return x % 1025;
    case 9: case 10: return x % 8193;
    case 11: case 12: return model_class_by_index(x % 57) + (x >> 6) % 3 - 1;
    case 13: return 8193 + x % (262144 - 8192);
    case 14: return 262144 + x % (4200000 - 262144);
    default: {
      static const size_t special[16] = {0,      1,       8,       16,         8192,      8193,
                                         65280,  65281,   65536,   4128512,    4128513,   size_t(2) << 20,
                                         (size_t(4) << 20) - 256,  size_t(4) << 20, size_t(5) << 20, size_t(6) << 20};
      return special[x % 16];
    }
  }
}

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// ---- fill patterns ------------------------------------------------------------------------------
// Byte i of a block is byte (i % 8) of pattern_word(seed, i / 8). Blocks up to 16 KiB are filled
// completely; larger ones at their first and last 4 KiB and 64 bytes every 64 KiB, so that a 4 MiB
// block costs a few page touches, not a memset.
inline uint64_t pattern_word(uint64_t seed, size_t w) { return mix64(seed + w * 0x9E3779B97F4A7C15ull); }

inline void fill_range(uint8_t* p, size_t off, size_t end, uint64_t seed) {
  size_t i = off;
  while (i < end) {
    size_t w = i >> 3;
    uint64_t v = pattern_word(seed, w);
    size_t wend = (w << 3) + 8;
    if ((i & 7) == 0 && wend <= end) {
      memcpy(p + i, &v, 8);
      i += 8;
      continue;
    }
    for (; i < end && i < wend; i++) p[i] = uint8_t(v >> ((i & 7) * 8));
  }
}
// Offset of the first byte that differs, or SIZE_MAX.
inline size_t check_range(const uint8_t* p, size_t off, size_t end, uint64_t seed) {
  size_t i = off;
  while (i < end) {
    size_t w = i >> 3;
    uint64_t v = pattern_word(seed, w);
    size_t wend = (w << 3) + 8;
    if ((i & 7) == 0 && wend <= end) {
      uint64_t got;
      memcpy(&got, p + i, 8);
      if (got != v)
        for (size_t b = 0; b < 8; b++)
          if (uint8_t(got >> (8 * b)) != uint8_t(v >> (8 * b))) return i + b;
      i += 8;
      continue;
    }
    for (; i < end && i < wend; i++)
      if (p[i] != uint8_t(v >> ((i & 7) * 8))) return i;
  }
  return SIZE_MAX;
}
template <class F> inline void for_samples(size_t n, F f) {
  if (n <= 16384) {
    if (n) f(size_t(0), n);
    return;
  }
  f(size_t(0), size_t(4096));
  for (size_t off = 65536; off + 64 <= n - 4096; off += 65536) f(off, off + 64);
  f(n - 4096, n);
}
// Zero test for calloc / SPACES_ZERO: every byte up to 64 KiB, then 8 bytes per 4 KiB page.
inline bool is_zero(const uint8_t* p, size_t n) {
  size_t full = n <= 65536 ? n : 65536;
  for (size_t i = 0; i < full; i++)
    if (p[i]) return false;
  for (size_t i = full; i + 8 <= n; i += 4096) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w) return false;
  }
  return n == 0 || p[n - 1] == 0;
}

// ---- TypedPool objects ----------------------------------------------------------------------------
inline thread_local uint64_t t_dtors = 0;  // ~ObjA/~ObjB run on this thread
struct ObjA {  // 40 bytes, the size docs/sdk.md measures
  uint64_t seed;
  uint64_t w[4];
  explicit ObjA(uint64_t s) : seed(s) {
    for (int i = 0; i < 4; i++) w[i] = pattern_word(s, size_t(i));
  }
  bool intact() const {
    for (int i = 0; i < 4; i++)
      if (w[i] != pattern_word(seed, size_t(i))) return false;
    return true;
  }
  ~ObjA() {
    if (!intact()) fail("TypedPool object %p corrupted before its destructor", static_cast<void*>(this));
    t_dtors++;
  }
};
struct alignas(64) ObjB {  // over-aligned, 192 bytes
  uint64_t seed;
  uint8_t b[184];
  explicit ObjB(uint64_t s) : seed(s) { fill_range(b, 0, sizeof b, s); }
  bool intact() const { return check_range(b, 0, sizeof b, seed) == SIZE_MAX; }
  ~ObjB() {
    if (!intact()) fail("TypedPool object %p corrupted before its destructor", static_cast<void*>(this));
    t_dtors++;
  }
};

// ---- model state -----------------------------------------------------------------------------------
class Model;
constexpr int kSlots = 4;  // region slots; owner 1 + k in Block

struct ChunkSlot {
  SpacesChunk h = nullptr;
  unsigned flags = 0;
  bool live = false;
  bool shared = false;        // fuzz_mt: every thread allocates here at once (looser checks)
  size_t ceiling = 0;
  size_t fp_hi = 0;           // footprint read after the last growth; only frees since
  bool fp_known = false;
  size_t hits = 0;            // expected ceiling_hits
  size_t peak_seen = 0;
  bool peak_unbounded = false;  // an allocation ran without a ceiling
  size_t peak_bound = 0;
  int pressure_mode = 0;      // 0 none, 1 free blocks, 2 raise the ceiling, 3 refuse
  int pressure_calls = 0;
  // What a freshly created region must report: no hits, no peak yet, no pressure handler.
  void reset_expectations() {
    fp_known = true;
    hits = 0;
    peak_seen = 0;
    peak_unbounded = false;
    peak_bound = 0;
    pressure_mode = 0;
    pressure_calls = 0;
  }
  uint32_t pressure_arg = 0;
  Model* model = nullptr;
  std::atomic<size_t>* nulls = nullptr;  // shared: NULL results of every thread
  // Model blocks of the slot (kept by add_block / drop_block): count, large ones, usable bytes,
  // footprint of the large ones.
  size_t m_blocks = 0, m_large = 0, m_usable = 0, m_cost = 0;
  // An UNTRACKED region (spaces.h): its bump blocks' frees do nothing until reset, so their bytes
  // stay in live_bytes (ghost_bytes) and their memory must not be handed out again (ghosts:
  // start -> end, checked against every new block of the slot).
  bool untracked = false;
  size_t ghost_bytes = 0;
  std::map<uintptr_t, uintptr_t> ghosts;

  // A region in shared memory (spaces_chunk_create_shared), its name unlinked right after
  // creation; released with spaces_chunk_close_shared. Unless `shared` (fuzz_mt, every thread at
  // once) the model knows its granule table exactly (shared.cpp is the reference):
  bool shm = false;
  char name[224] = {};
  size_t total = 0;           // capacity rounded up to 64 KiB: the mapping and the hard ceiling
  uintptr_t base = 0;         // where it is mapped (the handle is not its address)
  size_t meta = 0;            // granules of header + table (footprint of a fresh region)
  std::vector<uint8_t> gran;  // kind of each granule (kGr*)
  std::vector<uint32_t> gsize;  // small slab: its class size; large head: the run's granules
  std::vector<uint16_t> gused;  // small slab: blocks in use
  size_t fp = 0, peak = 0, nslabs = 0;
  void* root = nullptr;
  bool dirty = false;         // changed by the op being run: its stats are checked after it
};
enum : uint8_t { kGrFree, kGrMeta, kGrSmall, kGrLargeHead, kGrLargeBody };

inline std::atomic<uint64_t> g_shm_counter{0};

// Where this process maps shared-memory region `name` (docs/shared.md: the object is
// /dev/shm/spaces.<name>), from /proc/self/maps; false if it is not mapped as one piece of `len`.
inline bool shm_find_mapping(const char* name, size_t len, uintptr_t* base) {
  FILE* f = fopen("/proc/self/maps", "r");
  if (!f) return false;
  char want[256], line[1024];
  int wn = snprintf(want, sizeof want, "/dev/shm/spaces.%s", name);
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    const char* path = strchr(line, '/');
    if (!path || strncmp(path, want, size_t(wn)) != 0 || (path[wn] != '\n' && path[wn] != ' ' && path[wn] != 0)) continue;
    unsigned long lo = 0, hi = 0;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi - lo == len) {
      *base = lo;
      found = true;
    }
  }
  fclose(f);
  return found;
}

// Creates shared-memory region `s` of `capacity` bytes under a new name (long_name: 200
// characters, the longest valid), unlinks the name and sets up the model of a fresh region.
inline bool shm_create_slot(ChunkSlot& s, size_t capacity, bool long_name) {
  int n = snprintf(s.name, sizeof s.name, "fuzz-%d-%llu", int(getpid()),
                   (unsigned long long)g_shm_counter.fetch_add(1) + 1);
  if (long_name) {
    memset(s.name + n, 'x', 200 - size_t(n));
    s.name[200] = 0;
  }
  errno = 0;
  SpacesChunk h = spaces_chunk_create_shared(s.name, capacity, 0);
  if (!h) {
    fail("spaces_chunk_create_shared(\"%.40s\", %zu, 0) = NULL (errno %d)", s.name, capacity, errno);
    return false;
  }
  count(kEvShmCreated);
  s.h = h;
  s.flags = 0;
  s.live = true;
  s.shm = true;
  s.untracked = false;
  s.ghost_bytes = 0;
  s.ghosts.clear();
  s.total = (capacity + kSlab - 1) & ~(kSlab - 1);
  if (!shm_find_mapping(s.name, s.total, &s.base)) {
    fail("shared-memory region \"%.40s\" of %zu bytes: no mapping of /dev/shm/spaces.<name> of that size", s.name, s.total);
    return false;
  }
  ChunkStats st;
  memset(&st, 0, sizeof st);
  st.size = sizeof st;
  if (spaces_chunk_stats(h, &st) != 0) {
    fail("spaces_chunk_stats of a new shared-memory region failed (errno %d)", errno);
    return false;
  }
  // docs/shared.md: the metadata takes 64 KiB for regions up to about 4 GiB
  if (st.footprint != kSlab || st.peak_footprint != kSlab || st.live_blocks || st.live_bytes || st.slabs ||
      st.large_blocks || st.ceiling != s.total || st.ceiling_hits || st.flags != 0) {
    fail("a new shared-memory region of %zu bytes: footprint %zu peak %zu live %zu slabs %zu ceiling %zu (want %zu) "
         "hits %zu flags %u",
         capacity, st.footprint, st.peak_footprint, st.live_blocks, st.slabs, st.ceiling, s.total, st.ceiling_hits,
         st.flags);
    return false;
  }
  errno = 0;
  if (spaces_chunk_root(h) != nullptr) fail("a new shared-memory region has a root");
  s.meta = st.footprint / kSlab;
  size_t granules = s.total / kSlab;
  s.gran.assign(granules, kGrFree);
  std::fill(s.gran.begin(), s.gran.begin() + long(s.meta), uint8_t(kGrMeta));
  s.gsize.assign(granules, 0);
  s.gused.assign(granules, 0);
  s.fp = s.peak = st.footprint;
  s.nslabs = 0;
  s.root = nullptr;
  s.dirty = false;
  s.ceiling = s.total;  // (the ceiling a shared-memory region reports: its capacity unless lower)
  s.fp_hi = st.footprint;
  s.reset_expectations();
  s.m_blocks = s.m_large = s.m_usable = s.m_cost = 0;
  if (spaces_chunk_unlink_shared(s.name) != 0) {
    fail("spaces_chunk_unlink_shared(\"%.40s\") failed (errno %d)", s.name, errno);
    return false;
  }
  return true;
}
// Detaches (closes) a shared-memory slot; its memory goes with the last attachment.
inline void shm_close_slot(ChunkSlot& s) {
  if (spaces_chunk_close_shared(s.h) != 0) fail("spaces_chunk_close_shared(%p) failed (errno %d)", static_cast<void*>(s.h), errno);
  s.live = false;
  s.shm = false;
  s.h = nullptr;
  s.gran.clear();
  s.gsize.clear();
  s.gused.clear();
}

enum Kind : uint8_t { kKindMalloc, kKindCalloc, kKindRealloc, kKindAligned, kKindChunk, kKindChunkAligned };

struct Block {
  uint8_t* p;
  size_t req;
  size_t usable;
  size_t align;   // alignment asked for (0: none)
  size_t cost;    // footprint of a large block, 0 for a small one
  uint64_t seed;
  int8_t owner;   // 0: thread heaps, 1 + k: region slot k
  uint8_t kind;
  uint8_t lane;
  bool exact_slot;        // usable_size == the slot size (no offset inside the slot)
  bool realloc_off_class;  // realloc kept the block although its class is not the new size's
  bool busy;              // a realloc of it is under way (the pressure handler must not free it)
  bool untracked;         // a bump block of an untracked region: usable_size 0, free a no-op
  bool live;
  uint32_t pos;           // index in Model::owned[owner]
};

struct Span {
  uintptr_t end;
  uint32_t id;  // block record, or kPoolSpan
};
constexpr uint32_t kPoolSpan = 0xffffffffu;

// fuzz_mt: what the threads share.
struct MtShared {
  int nthreads = 2;
  ChunkSlot regions[2];               // slots 0 and 1 of every thread's model
  std::atomic<size_t> nulls[2] = {};
  std::mutex m[4];
  std::vector<Block> inbox[4];
};

struct WalkEntry {
  uintptr_t p;
  size_t n;
};

class Model {
 public:
  explicit Model(MtShared* mt = nullptr) : mt_(mt) {
    for (int k = 0; k < kSlots; k++) {
      own_[k].model = this;
      slot_[k] = &own_[k];
    }
    if (mt_) {
      slot_[0] = &mt_->regions[0];
      slot_[1] = &mt_->regions[1];
    }
    recs_.reserve(1024);
  }
  ~Model() {  // (after a mismatch cleanup() leaves the regions alone: detach shared memory anyway)
    for (int k = 0; k < kSlots; k++)
      if (own_[k].live && own_[k].shm) shm_close_slot(own_[k]);
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  int lanes = 1;  // fuzz_ops: lanes in this input
  size_t live_cap = kLiveCap;
  int self = 0;   // fuzz_mt: this thread's index

  // Results of exec() other than kGoOn.
  static constexpr int kGoOn = -1;
  static constexpr int kExitSelf = 100;   // the running lane exits
  static constexpr int kKillLane = 200;   // + lane: that (idle) lane exits

  // Runs one record. Returns kGoOn, a lane to switch to, kExitSelf or kKillLane + lane.
  int exec(const Rec& r, int lane) {
    lane_ = lane;
    t_opname = kOpNames[r.op];
    g_ops.fetch_add(1, std::memory_order_relaxed);
    g_op_counts[r.op].fetch_add(1, std::memory_order_relaxed);
    switch (r.op) {
      case kMalloc: op_malloc(r); break;
      case kCalloc: op_calloc(r); break;
      case kRealloc: op_realloc(r); break;
      case kAligned: op_aligned(r); break;
      case kFree: op_free(r); break;
      case kFreeSized: op_free_sized(r); break;
      case kUsable: op_usable(r); break;
      case kChunkCreate: op_chunk_create(r); break;
      case kChunkAlloc: op_chunk_alloc(r); break;
      case kChunkAligned: op_chunk_aligned(r); break;
      case kChunkRealloc: op_chunk_realloc(r); break;
      case kChunkFree: op_chunk_free(r); break;
      case kChunkReset: op_chunk_reset(r); break;
      case kChunkDestroy: op_chunk_destroy(r); break;
      case kSetCeiling: op_set_ceiling(r); break;
      case kWalk: op_walk(r); break;
      case kStats: op_stats(r); break;
      case kPoolCreate: op_pool_create(r); break;
      case kPoolNew: op_pool_new(r); break;
      case kPoolDelete: op_pool_delete(r); break;
      case kPoolDestroy: op_pool_destroy(r); break;
      case kSwitch:
        if (mt_) {
          op_handoff(r);
          break;
        }
        if (int(r.sel % lanes) != lane) return r.sel % lanes;
        break;
      case kLaneExit:
        if (mt_) {
          op_receive(r);
          break;
        }
        if (r.sel % lanes == 0) break;
        if (int(r.sel % lanes) == lane) return kExitSelf;
        return kKillLane + r.sel % lanes;
      case kCollect: op_collect(r); break;
      case kVerifyAll: verify_all(); break;
      case kImpossible: op_impossible(r); break;
      case kPressure: op_pressure(r); break;
      case kCapture: op_capture(r); break;
      case kBurst: op_burst(r); break;
      default: break;
    }
    for (int k = 0; k < kSlots && !g_failed; k++)  // shared-memory regions the op changed
      if (slot_[k]->live && slot_[k]->dirty && shm_exact(*slot_[k])) check_shm_stats(k);
    return kGoOn;
  }

  // Frees and destroys everything the input left, checking as it goes.
  void cleanup() {
    t_opname = "cleanup";
    if (g_failed) return;  // the allocator may be corrupt: leave it alone
    for (int k = 0; k < kSlots; k++)
      if (slot_[k]->live && !slot_[k]->shared) check_chunk_stats(k);
    while (!owned_[0].empty() && !g_failed) free_block(owned_[0].back(), false);
    for (int k = 0; k < kSlots; k++) {
      if (g_failed) return;
      ChunkSlot& s = *slot_[k];
      if (s.shared) {  // fuzz_mt: the runner checks and destroys the shared regions
        while (!owned_[1 + k].empty() && !g_failed) free_block(owned_[1 + k].back(), false);
        continue;
      }
      if (s.live && s.shm) {  // block by block: the emptied slabs go, at most one per class stays
        while (!owned_[1 + k].empty() && !g_failed) free_block(owned_[1 + k].back(), false);
        if (!g_failed) check_chunk_stats(k);
      }
      if (s.live && !g_failed) destroy_chunk(k);
    }
    for (int i = 0; i < 2; i++)
      if (pool_live(i)) pool_destroy(i);
  }

  // ---- access for the fuzz_mt runner ----
  const std::vector<uint32_t>& owned(int owner) const { return owned_[owner]; }
  const Block& rec(uint32_t id) const { return recs_[id]; }
  ChunkSlot& slot(int k) { return *slot_[k]; }
  bool verify(const Block& b, const char* when) const { return verify_block(b, when); }
  uint32_t adopt(const Block& b) { return add_block(b); }

  static int walk_collect(void* p, size_t n, void* arg) {
    auto* v = static_cast<std::vector<WalkEntry>*>(arg);
    v->push_back({reinterpret_cast<uintptr_t>(p), n});
    return 0;
  }
  // Matches walk entries to blocks by containment; every entry holds exactly one block.
  static void match_walk(std::vector<WalkEntry>& e, std::vector<const Block*>& blocks, const char* what) {
    std::sort(e.begin(), e.end(), [](const WalkEntry& a, const WalkEntry& b) { return a.p < b.p; });
    std::sort(blocks.begin(), blocks.end(), [](const Block* a, const Block* b) { return a->p < b->p; });
    size_t j = 0;
    for (size_t i = 0; i < e.size(); i++) {
      if (i && e[i].p < e[i - 1].p + e[i - 1].n)
        return fail("%s: walk entries %#lx+%zu and %#lx overlap", what, (unsigned long)e[i - 1].p, e[i - 1].n,
                    (unsigned long)e[i].p);
      if (j < blocks.size() && reinterpret_cast<uintptr_t>(blocks[j]->p) < e[i].p)
        return fail("%s: live block %p (%zu bytes) not visited by the walk", what, static_cast<void*>(blocks[j]->p),
                    blocks[j]->req);
      if (j == blocks.size() || reinterpret_cast<uintptr_t>(blocks[j]->p) >= e[i].p + e[i].n)
        return fail("%s: walk visited %#lx (%zu bytes), which the model says is free", what, (unsigned long)e[i].p,
                    e[i].n);
      const Block& b = *blocks[j];
      uintptr_t bp = reinterpret_cast<uintptr_t>(b.p);
      if (bp + b.req > e[i].p + e[i].n)
        return fail("%s: walk entry %#lx+%zu does not contain block %p+%zu", what, (unsigned long)e[i].p, e[i].n,
                    static_cast<void*>(b.p), b.req);
      if (b.exact_slot && (bp != e[i].p || e[i].n != b.usable))
        return fail("%s: walk entry %#lx+%zu for block %p with usable size %zu", what, (unsigned long)e[i].p, e[i].n,
                    static_cast<void*>(b.p), b.usable);
      j++;
      count(kEvWalkEntries);
      if (j < blocks.size() && reinterpret_cast<uintptr_t>(blocks[j]->p) < e[i].p + e[i].n)
        return fail("%s: walk entry %#lx+%zu holds two live blocks", what, (unsigned long)e[i].p, e[i].n);
    }
    if (j < blocks.size())
      return fail("%s: live block %p (%zu bytes) not visited by the walk (%zu entries, %zu blocks)", what,
                  static_cast<void*>(blocks[j]->p), blocks[j]->req, e.size(), blocks.size());
  }

 private:
  MtShared* mt_;
  int lane_ = 0;
  ChunkSlot own_[kSlots];
  ChunkSlot* slot_[kSlots];
  std::vector<Block> recs_;
  std::vector<uint32_t> free_recs_;
  bool capturing_ = false;  // registering a block malloc returned through a captured region
  std::vector<uint32_t> owned_[1 + kSlots];
  std::map<uintptr_t, Span> spans_;
  size_t live_req_ = 0;
  uint64_t seed_ctr_ = 0x1234;

  struct Pool {
    std::unique_ptr<spaces::TypedPool<ObjA>> a;
    std::unique_ptr<spaces::TypedPool<ObjB>> b;
    std::vector<void*> objs;
  } pools_[2];

  // ---- bookkeeping ----
  uint64_t next_seed() { return mix64(++seed_ctr_ + reinterpret_cast<uintptr_t>(this)); }
  static size_t pick(uint32_t val, size_t n) { return size_t(mix64(val) % n); }
  bool room(size_t n) const { return live_req_ + n <= live_cap && recs_.size() - free_recs_.size() < kMaxBlocks; }
  // fuzz_mt: create/reset/destroy/walk/ceiling/pressure/capture act on the thread's own regions.
  int private_slot(uint8_t sel) const { return mt_ ? 2 + (sel & 1) : (sel & 3); }

  bool span_insert(uintptr_t s, uintptr_t e, uint32_t id) {
    auto it = spans_.lower_bound(s);
    if (it != spans_.end() && it->first < e) {
      fail("new block [%#lx, %#lx) overlaps live block at %#lx", (unsigned long)s, (unsigned long)e,
           (unsigned long)it->first);
      return false;
    }
    if (it != spans_.begin()) {
      auto pv = std::prev(it);
      if (pv->second.end > s) {
        fail("new block [%#lx, %#lx) overlaps live block [%#lx, %#lx)", (unsigned long)s, (unsigned long)e,
             (unsigned long)pv->first, (unsigned long)pv->second.end);
        return false;
      }
    }
    spans_.emplace_hint(it, s, Span{e, id});
    return true;
  }

  uint32_t add_block(const Block& in) {
    uint32_t id;
    if (!free_recs_.empty()) {
      id = free_recs_.back();
      free_recs_.pop_back();
    } else {
      id = uint32_t(recs_.size());
      recs_.push_back(in);
    }
    Block& b = recs_[id];
    b = in;
    b.live = true;
    b.busy = false;
    b.pos = uint32_t(owned_[b.owner].size());
    owned_[b.owner].push_back(id);
    live_req_ += b.req;
    if (b.owner && !slot_[b.owner - 1]->shared) {  // (fuzz_mt's shared slots: every thread at once)
      ChunkSlot& cs = *slot_[b.owner - 1];
      cs.m_blocks++, cs.m_usable += b.usable, cs.m_cost += b.cost, cs.m_large += b.cost != 0;
    }
    uintptr_t s = reinterpret_cast<uintptr_t>(b.p);
    span_insert(s, s + std::max<size_t>(b.usable, 1), id);
    return id;
  }
  void drop_block(uint32_t id) {
    Block& b = recs_[id];
    std::vector<uint32_t>& v = owned_[b.owner];
    uint32_t last = v.back();
    v[b.pos] = last;
    recs_[last].pos = b.pos;
    v.pop_back();
    spans_.erase(reinterpret_cast<uintptr_t>(b.p));
    live_req_ -= b.req;
    if (b.owner && !slot_[b.owner - 1]->shared) {
      ChunkSlot& cs = *slot_[b.owner - 1];
      cs.m_blocks--, cs.m_usable -= b.usable, cs.m_cost -= b.cost, cs.m_large -= b.cost != 0;
      if (b.untracked) {  // (its memory stays the region's until reset)
        cs.ghost_bytes += b.usable;
        uintptr_t a = reinterpret_cast<uintptr_t>(b.p);
        cs.ghosts[a] = a + b.usable;
      }
    }
    b.live = false;
    free_recs_.push_back(id);
  }

  void fill_block(const Block& b) {
    for_samples(b.req, [&](size_t a, size_t e) { fill_range(b.p, a, e, b.seed); });
    if (g_touch_slack && b.usable > b.req) {  // the slack up to usable_size must be ours too
      size_t a = std::max(b.req, b.usable - 8);
      fill_range(b.p, a, b.usable, ~b.seed);
    }
  }
  bool verify_prefix(const Block& b, size_t limit, const uint8_t* at, const char* when) const {
    bool ok = true;
    for_samples(b.req, [&](size_t a, size_t e) {
      e = std::min(e, limit);
      if (!ok || a >= e) return;
      size_t bad = check_range(at, a, e, b.seed);
      if (bad != SIZE_MAX) {
        fail("%s: block %p (request %zu, usable %zu, align %zu, owner %d, lane %d) byte %zu changed%s", when,
             static_cast<void*>(b.p), b.req, b.usable, b.align, b.owner, b.lane, bad,
             at != b.p ? " in the reallocated copy" : "");
        ok = false;
      }
    });
    return ok;
  }
  bool verify_block(const Block& b, const char* when) const {
    if (!verify_prefix(b, b.req, b.p, when)) return false;
    if (g_touch_slack && b.usable > b.req) {
      size_t a = std::max(b.req, b.usable - 8);
      size_t bad = check_range(b.p, a, b.usable, ~b.seed);
      if (bad != SIZE_MAX) {
        fail("%s: block %p (request %zu, usable %zu) slack byte %zu changed", when, static_cast<void*>(b.p), b.req,
             b.usable, bad);
        return false;
      }
    }
    return true;
  }
  void verify_all() {
    for (auto& v : owned_)
      for (uint32_t id : v)
        if (!verify_block(recs_[id], "verify_all")) return;
    for (int i = 0; i < 2; i++)
      for (void* o : pools_[i].objs)
        if (i == 0 ? !static_cast<ObjA*>(o)->intact() : !static_cast<ObjB*>(o)->intact())
          return fail("TypedPool object %p corrupted", o);
  }

  // Checks a fresh block and adds it to the model. req/align are what was asked for; owner 0 for
  // the thread heaps, 1 + k for region slot k.
  // Does [p, p + n) overlap a freed bump block of untracked region s (memory not yet reusable)?
  static bool ghost_overlap(const ChunkSlot& s, const void* p, size_t n) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = s.ghosts.upper_bound(a);
    if (it != s.ghosts.end() && it->first < a + n) return true;
    return it != s.ghosts.begin() && std::prev(it)->second > a;
  }
  bool register_new(void* vp, size_t req, size_t align, uint8_t kind, int owner, bool zero) {
    uint8_t* p = static_cast<uint8_t*>(vp);
    size_t u = spaces_usable_size(p);
    // An untracked region's bump block: usable_size 0 (not known); the model knows it is the
    // request rounded up to 16 (the checks below), and that it must not overlap a freed one.
    bool untracked = false;
    if (owner && slot_[owner - 1]->untracked && !capturing_ && align <= 16 && req <= kBumpRoomMax) {
      ChunkSlot& os = *slot_[owner - 1];
      untracked = u == 0;
      if (!untracked && req <= kBumpMax) {
        fail("block %p (request %zu) of an untracked region has usable_size %zu, expected 0 (not known) [kind %d align %zu]", vp, req, u, int(kind), align);
        return false;
      }
      if (untracked) {
        u = std::max<size_t>(16, (req + 15) & ~size_t(15));
        if (ghost_overlap(os, p, u)) {
          fail("block %p (%zu bytes) of an untracked region overlaps a freed block, whose memory is the region's until "
               "reset", vp, u);
          return false;
        }
        count(kEvUntrackedBlock);
      }
    }
    if (u < req) {
      fail("usable_size(%p) = %zu < request %zu (align %zu)", vp, u, req, align);
      return false;
    }
    size_t a = align > 16 ? align : (u >= 16 ? 16 : 8);
    if (reinterpret_cast<uintptr_t>(p) % a) {
      fail("block %p of %zu bytes is not %zu-aligned", vp, req, a);
      return false;
    }
    bool exact = true;
    size_t cost = 0;
    ChunkSlot* os = owner ? slot_[owner - 1] : nullptr;
    if (os && os->shm) {  // shared memory: shared.cpp's own classes and runs
      ShmPath pl = shm_path(req, align);
      if (u != pl.usable) {
        fail("block %p for request %zu (align %zu) of a shared-memory region has usable size %zu, %zu expected (%s)",
             vp, req, align, u, pl.usable, pl.large ? "a run of granules" : "a size class");
        return false;
      }
      cost = pl.large ? pl.run * kSlab : 0;
      uintptr_t a0 = reinterpret_cast<uintptr_t>(p), base = os->base;
      if (a0 <= base + os->meta * kSlab || a0 >= base + os->total) {
        fail("block %p of a shared-memory region [%#lx, %#lx) lies outside its block granules", vp,
             (unsigned long)base, (unsigned long)(base + os->total));
        return false;
      }
      if (shm_exact(*os) && !shm_note_alloc(owner - 1, p, pl)) return false;
      if (pl.large) count(kEvLargeBlocks);
    } else {
      Need nd = model_need(req, align, owner == 0);
      bool room_bump = owner && (slot_[owner - 1]->flags & SPACES_CHUNK_EXCLUSIVE) && !capturing_ && align <= 16 &&
                       req > kBumpMax && req <= kBumpRoomMax && u == std::max<size_t>(16, (req + 15) & ~size_t(15));
      if (room_bump) nd = Need{false, 0};  // (carved from the current page's room: see below)
      if (!room_bump && (nd.large ? u <= kSmallMax : u > (owner == 0 ? kMediumMax : kSmallMax))) {
        fail("block %p (request %zu, align %zu) has usable size %zu: the model expected the %s path", vp, req, align, u,
             nd.large ? "large" : "small");
        return false;
      }
      // Small blocks: the documented size class; an over-aligned one either sits at the start of a
      // slot of the class of the rounded size, or inside a slot of the class of size + align - 1.
      // An exclusive region's blocks up to kBumpMax from the region API sit in bump slabs: the
      // request rounded up to 16 bytes (docs/regions.md). A larger one does too when it fitted the
      // room left in the current page (the window takes any block that fits): its usable size is
      // then the rounded request, which no size class or run of that request has... except a
      // class of exactly that size, where the two placements cost and report the same.
      bool region_api = owner && (slot_[owner - 1]->flags & SPACES_CHUNK_EXCLUSIVE) && !capturing_ && align <= 16;
      size_t rounded16 = std::max<size_t>(16, (req + 15) & ~size_t(15));
      bool bump = region_api && (req <= kBumpMax || (req <= kBumpRoomMax && u == rounded16));
      if (bump && req > kBumpMax) count(kEvBumpBeyondMax);
      if (bump) {
        size_t want = std::max<size_t>(16, (req + 15) & ~size_t(15));
        if (u != want) {
          fail("block %p for request %zu (align %zu) of an exclusive region has usable size %zu, %zu expected", vp,
               req, align, u, want);
          return false;
        }
      } else if (!nd.large) {
        size_t want = model_class_size(std::max(req, align));
        bool inside = false;  // may sit at an offset inside a slot of class `want`
        if (align > 16) {
          size_t rounded = std::max((req + align - 1) & ~(align - 1), align);
          bool natural = (align <= 128 && rounded <= (owner == 0 ? kMediumMax : kSmallMax) &&
                          model_class_size(rounded) % align == 0) ||
                         (owner == 0 && model_box_aligned(rounded, align));
          want = natural ? model_class_size(rounded) : model_class_size(req + align - 1);
          inside = !natural;
          exact = natural || u == want;
        }
        if (inside ? u > want : u != want) {
          fail("block %p for request %zu (align %zu) has usable size %zu, size class %zu expected", vp, req, align, u,
               want);
          return false;
        }
      }
      cost = nd.large ? nd.bytes : 0;
      if (nd.large) count(nd.bytes >= kArena ? kEvDirectBlocks : kEvLargeBlocks);
    }
    if (spaces_owns(p) != 1) fail("spaces_owns(%p) != 1 for a live block", vp);
    SpacesChunk want = owner ? slot_[owner - 1]->h : nullptr;
    SpacesChunk got = spaces_chunk_of(p);
    if (got != want) {
      fail("spaces_chunk_of(%p) = %p, expected %p", vp, static_cast<void*>(got), static_cast<void*>(want));
      return false;
    }
    if (zero && !is_zero(p, req)) {
      fail("block %p of %zu bytes should be zeroed", vp, req);
      return false;
    }
    Block b{};
    b.p = p;
    b.req = req;
    b.usable = u;
    b.align = align;
    b.cost = cost;
    b.seed = next_seed();
    b.owner = int8_t(owner);
    b.kind = kind;
    b.lane = uint8_t(mt_ ? self : lane_);
    b.exact_slot = exact;
    b.untracked = untracked;
    fill_block(b);
    add_block(b);
    return !g_failed;
  }

  void free_block(uint32_t id, bool sized) {
    Block b = recs_[id];
    if (!verify_block(b, "before free")) return;
    drop_block(id);
    if (!mt_ && b.lane != lane_) count(kEvCrossLaneFree);
    if (!sized) {
      spaces_free(b.p);
    } else {
      snprintf(t_ctx, sizeof t_ctx, " [block of request %zu, usable %zu, align %zu, kind %d, owner %d%s]", b.req,
               b.usable, b.align, b.kind, b.owner,
               b.realloc_off_class ? ", kept by realloc at a size of another class" : "");
      if (b.kind == kKindAligned || b.kind == kKindChunkAligned) {
        spaces_free_aligned_sized(b.p, b.align, b.req);
      } else {
        spaces_free_sized(b.p, b.req);
      }
      t_ctx[0] = 0;
    }
    if (b.owner && shm_exact(*slot_[b.owner - 1])) shm_note_free(b.owner - 1, b.p);
  }

  // ---- the exact model of a shared-memory region (sdk/src/shared.cpp) ----
  static bool shm_exact(const ChunkSlot& s) { return s.shm && !s.shared; }
  // A slab of class `cls` with a free slot other than granule `except`: the allocation side takes
  // one of them (shared.cpp's per-class list holds exactly the slabs with room).
  static bool shm_has_room(const ChunkSlot& s, size_t cls, size_t except = SIZE_MAX) {
    for (size_t g = s.meta; g < s.gran.size(); g++)
      if (g != except && s.gran[g] == kGrSmall && s.gsize[g] == cls && s.gused[g] < shm_slots_per_slab(cls))
        return true;
    return false;
  }
  static bool shm_free_run(const ChunkSlot& s, size_t n) {
    for (size_t g = s.meta, run = 0; g < s.gran.size(); g++)
      if ((run = s.gran[g] == kGrFree ? run + 1 : 0) >= n) return true;
    return false;
  }
  // Whether an allocation on path `pl` succeeds now: it fits in a slab with room, or the granules
  // it needs keep the footprint within the ceiling (and the capacity) and a run of that many
  // free granules exists. *need: the bytes of granules it takes.
  static bool shm_fits(const ChunkSlot& s, const ShmPath& pl, size_t* need) {
    size_t n = pl.large ? pl.run : shm_has_room(s, pl.cls) ? 0 : 1;
    *need = n * kSlab;
    return n == 0 || (s.fp + n * kSlab <= s.ceiling && shm_free_run(s, n));
  }
  // A block the region handed out on path `pl`: where it may be, and what it took.
  bool shm_note_alloc(int k, const void* vp, const ShmPath& pl) {
    ChunkSlot& s = *slot_[k];
    uintptr_t a = reinterpret_cast<uintptr_t>(vp), base = s.base;
    size_t g = (a - 1 - base) / kSlab;  // (a block 64 KiB-aligned ends its run's first granule)
    if (a <= base + s.meta * kSlab || g >= s.gran.size()) {
      fail("shared-memory region %d: block %p outside the block granules of [%#lx, %#lx)", k, vp,
           (unsigned long)base, (unsigned long)(base + s.total));
      return false;
    }
    uintptr_t gs = base + g * kSlab;
    if (!pl.large) {
      if (s.gran[g] == kGrFree) {  // a new slab: only when no slab of the class has room
        if (shm_has_room(s, pl.cls)) {
          fail("shared-memory region %d: block %p of class %zu took a new slab (granule %zu) although a slab of its "
               "class has room",
               k, vp, pl.cls, g);
          return false;
        }
        s.gran[g] = kGrSmall;
        s.gsize[g] = uint32_t(pl.cls);
        s.gused[g] = 0;
        s.nslabs++;
        s.fp += kSlab;
        count(kEvShmGrowth);
      } else if (s.gran[g] != kGrSmall || s.gsize[g] != pl.cls || s.gused[g] >= shm_slots_per_slab(pl.cls)) {
        fail("shared-memory region %d: block %p of class %zu in granule %zu, which the model holds as kind %d (class "
             "%u, %u blocks used)",
             k, vp, pl.cls, g, s.gran[g], s.gsize[g], s.gused[g]);
        return false;
      }
      if (a < gs + kShFirst || (a - gs - kShFirst) % pl.cls != 0 || a - gs + pl.cls > kSlab) {
        fail("shared-memory region %d: block %p is not a slot of class %zu of its slab %#lx", k, vp, pl.cls,
             (unsigned long)gs);
        return false;
      }
      s.gused[g]++;
    } else {
      if (a != gs + pl.off || g + pl.run > s.gran.size()) {
        fail("shared-memory region %d: large block %p (%zu granules, offset %zu) is not at offset %zu of a granule "
             "run inside the region",
             k, vp, pl.run, a - gs, pl.off);
        return false;
      }
      for (size_t i = 0; i < pl.run; i++)
        if (s.gran[g + i] != kGrFree) {
          fail("shared-memory region %d: large block %p (%zu granules from %zu) over granule %zu, which the model "
               "holds as kind %d",
               k, vp, pl.run, g, g + i, s.gran[g + i]);
          return false;
        }
      s.gran[g] = kGrLargeHead;
      s.gsize[g] = uint32_t(pl.run);
      for (size_t i = 1; i < pl.run; i++) s.gran[g + i] = kGrLargeBody;
      s.fp += pl.run * kSlab;
      count(kEvShmGrowth);
    }
    s.peak = std::max(s.peak, s.fp);
    s.dirty = true;
    return true;
  }
  // A block of the region was freed: a run goes at once, a slab when it empties unless it is the
  // only slab of its class with room (shared.cpp: "not its class's only slab" on the list).
  void shm_note_free(int k, const void* vp) {
    ChunkSlot& s = *slot_[k];
    uintptr_t a = reinterpret_cast<uintptr_t>(vp), base = s.base;
    size_t g = (a - 1 - base) / kSlab;
    if (g >= s.gran.size()) return fail("model: freed block %p outside its region", vp);
    s.dirty = true;
    if (s.gran[g] == kGrSmall) {
      if (s.gused[g] == 0) return fail("model: block %p freed from an empty slab", vp);
      if (--s.gused[g] == 0 && shm_has_room(s, s.gsize[g], g)) {
        s.gran[g] = kGrFree;
        s.nslabs--;
        s.fp -= kSlab;
        count(kEvShmSlabReleased);
      }
      return;
    }
    if (s.gran[g] != kGrLargeHead) return fail("model: freed block %p in granule %zu of kind %d", vp, g, s.gran[g]);
    size_t n = s.gsize[g];
    for (size_t i = 0; i < n; i++) s.gran[g + i] = kGrFree;
    s.fp -= n * kSlab;
  }
  void shm_model_reset(ChunkSlot& s) {
    std::fill(s.gran.begin() + long(s.meta), s.gran.end(), uint8_t(kGrFree));
    s.nslabs = 0;
    s.fp = s.meta * kSlab;
    s.root = nullptr;
    s.dirty = false;
  }
  // Exact stats of a shared-memory region only this model uses (O(1): the slot's counters).
  void check_shm_stats(int k) {
    ChunkSlot& s = *slot_[k];
    s.dirty = false;
    ChunkStats st;
    if (!stats_of(s, st)) return;
    if (st.version != SPACES_CHUNK_STATS_VERSION || st.size != sizeof st || st.flags != s.flags)
      return fail("stats header: version %u size %zu flags %u", st.version, st.size, st.flags);
    if (st.live_blocks != s.m_blocks || st.large_blocks != s.m_large || st.live_bytes != s.m_usable)
      return fail("shared-memory region %d: live_blocks %zu large %zu live_bytes %zu, model %zu / %zu / %zu", k,
                  st.live_blocks, st.large_blocks, st.live_bytes, s.m_blocks, s.m_large, s.m_usable);
    if (st.slabs != s.nslabs || st.footprint != s.fp || s.fp != (s.meta + s.nslabs) * kSlab + s.m_cost)
      return fail("shared-memory region %d: footprint %zu with %zu slabs, model %zu with %zu slabs (= %zu metadata "
                  "granules + slabs + %zu bytes of runs)",
                  k, st.footprint, st.slabs, s.fp, s.nslabs, s.meta, s.m_cost);
    if (st.peak_footprint != s.peak)
      return fail("shared-memory region %d: peak_footprint %zu, model %zu", k, st.peak_footprint, s.peak);
    if (st.ceiling != s.ceiling || st.ceiling_hits != s.hits)
      return fail("shared-memory region %d: ceiling %zu hits %zu, model %zu / %zu", k, st.ceiling, st.ceiling_hits,
                  s.ceiling, s.hits);
    if (st.footprint > s.total) return fail("shared-memory region %d: footprint %zu above the capacity %zu", k, st.footprint, s.total);
    count(kEvStatsChecks);
  }

  // ---- thread-heap operations ----
  void op_malloc(const Rec& r) {
    size_t n = decode_size(r.val);
    if (!room(n)) return;
    errno = 0;
    void* p = spaces_malloc(n);
    if (!p) return fail("spaces_malloc(%zu) = NULL (errno %d)", n, errno);
    register_new(p, n, 0, kKindMalloc, 0, false);
  }
  void op_calloc(const Rec& r) {
    size_t total = decode_size(r.val);
    size_t cnt = 1 + r.sel % 16;
    size_t each = total / cnt;
    if (!room(cnt * each)) return;
    void* p = spaces_calloc(cnt, each);
    if (!p) return fail("spaces_calloc(%zu, %zu) = NULL (errno %d)", cnt, each, errno);
    register_new(p, cnt * each, 0, kKindCalloc, 0, true);
  }
  size_t realloc_size(uint8_t mode, uint32_t val, size_t old) {
    switch (mode & 3) {
      case 0: return decode_size(val);
      case 1: return old + 1 + (val >> 8) % (old / 2 + 64);            // grow
      case 2: return old - std::min<size_t>(old, (val >> 8) % (old + 1));  // shrink (maybe to 0)
      default: return 0;
    }
  }
  // Realloc of block `id` through `call`; region blocks must stay in their region.
  template <class Call> void do_realloc(uint32_t id, size_t n, Call call, bool in_chunk) {
    Block old = recs_[id];
    if (!verify_block(old, "before realloc")) return;
    if (n > old.req && !room(n - old.req)) return;
    recs_[id].busy = true;
    errno = 0;
    uint8_t* q = static_cast<uint8_t*>(call(old.p, n));
    int e = errno;
    bool shm = old.owner && shm_exact(*slot_[old.owner - 1]);
    if (n == 0) {  // realloc(p, 0) frees p and returns NULL (glibc's behaviour, spaces.h)
      if (q) return fail("realloc(%p, 0) returned %p, expected NULL", static_cast<void*>(old.p), static_cast<void*>(q));
      drop_block(id);
      if (shm) shm_note_free(old.owner - 1, old.p);
      return;
    }
    if (q == nullptr) {
      recs_[id].busy = false;
      if (!in_chunk || old.owner == 0)
        return fail("realloc(%p, %zu) = NULL (errno %d)", static_cast<void*>(old.p), n, e);
      // checked by the caller (region ceiling); the old block must be intact
      verify_block(recs_[id], "after a failed realloc");
      return;
    }
    if (!verify_prefix(old, std::min(old.req, n), q, "realloc")) return;
    bool moved = q != old.p;
    count(moved ? kEvMovedRealloc : kEvInPlaceRealloc);
    int owner = old.owner;
    drop_block(id);
    if (!moved) {
      size_t u = spaces_usable_size(q);
      if (u < n) return fail("realloc in place of %p to %zu: usable_size %zu", static_cast<void*>(q), n, u);
      // Only a direct mapping of a thread heap is resized in place (large.cpp, direct_resize), a
      // page box's block (pages.cpp, box_realloc), which takes the new size's class, and an arena run.
      bool direct = old.owner == 0 && old.cost >= kArena;
      // (only outside the keep-in-place range: above the block, or below half of it)
      bool boxed = old.owner == 0 && (n > old.usable || n < old.usable / 2) && model_box_class(old.usable) &&
                   model_box_class(u) && u == model_class_size(n);
      // A thread heap's arena run (large.cpp, run_resize): grown or shrunk by whole 64 KiB
      // granules behind its 256-byte header, while both sizes are run sizes.
      // (an aligned one too, whose usable size may be small: aligned_alloc(256, 10000) is a run)
      bool run = old.owner == 0 && old.cost != 0 && old.cost < kArena && n > kMediumMax &&
                 (n > old.usable || n <= old.usable / 2) && u == ((256 + n + 65535) & ~size_t(65535)) - 256;
      if (u != old.usable && !direct && !boxed && !run)
        return fail("realloc in place of %p to %zu changed usable_size %zu -> %zu", static_cast<void*>(q), n,
                    old.usable, u);
      Block b = old;
      b.usable = u;
      b.req = n;
      if (run) b.cost = u + 256;  // (its granules now)
      b.kind = owner ? kKindChunk : kKindRealloc;
      b.realloc_off_class = u <= (owner == 0 ? kMediumMax : kSmallMax) && model_class_size(n) != u;
      b.seed = next_seed();
      fill_block(b);
      add_block(b);
      return;
    }
    // (a moved block: the new one was allocated while the old one was live, then the old freed)
    // An untracked region keeps a tracked block tracked: the new one comes from its size classes
    // or runs, as malloc through a capture does.
    bool keep_tracked = owner && slot_[owner - 1]->untracked && !old.untracked;
    bool was_capturing = capturing_;
    capturing_ = capturing_ || keep_tracked;
    bool ok = register_new(q, n, 0, owner ? kKindChunk : kKindRealloc, owner, false);
    capturing_ = was_capturing;
    if (ok && shm) shm_note_free(owner - 1, old.p);
  }
  void op_realloc(const Rec& r) {
    if (owned_[0].empty() || (r.sel & 4)) {  // realloc(NULL, n) is malloc(n)
      size_t n = decode_size(r.val);
      if (!room(n)) return;
      void* p = spaces_realloc(nullptr, n);
      if (!p) return fail("spaces_realloc(NULL, %zu) = NULL", n);
      register_new(p, n, 0, kKindRealloc, 0, false);
      return;
    }
    uint32_t id = owned_[0][pick(r.val, owned_[0].size())];
    size_t n = realloc_size(r.sel, r.val, recs_[id].req);
    do_realloc(id, n, [](void* p, size_t m) { return spaces_realloc(p, m); }, false);
  }
  void op_aligned(const Rec& r) {
    size_t align = size_t(1) << ((r.sel & 31) % 21);  // 1 B .. 1 MiB
    size_t n = decode_size(r.val);
    if (!room(n + align)) return;
    void* p = nullptr;
    errno = 0;
    if (r.sel & 0x80) {
      int rc = spaces_posix_memalign(&p, align, n);
      if (align < sizeof(void*)) {
        if (rc != EINVAL) fail("posix_memalign(align %zu) = %d, expected EINVAL", align, rc);
        return;
      }
      if (rc != 0) return fail("posix_memalign(%zu, %zu) = %d", align, n, rc);
    } else {
      p = spaces_aligned_alloc(align, n);
    }
    if (!p) return fail("aligned_alloc(%zu, %zu) = NULL (errno %d)", align, n, errno);
    register_new(p, n, align, kKindAligned, 0, false);
  }
  // sel bit 7 (fuzz_ops only: no other thread runs in between): a small or medium block of the
  // thread heaps is freed a second time right away, which must make exactly one DOUBLE_FREE
  // report whether the first free put it on its slab's free list, on its slab's remote stack, in
  // this thread's batch of remote frees or in its heap's cache of medium blocks. (Or one
  // INVALID_FREE: the first free emptied the slab, and with purge delay 0 and no arena cache its
  // arena went back to the system, so the pointer is no longer Spaces' memory. Nothing ran in
  // between, so no live block can be there.)
  void op_free(const Rec& r) {
    if (owned_[0].empty()) return;
    uint32_t id = owned_[0][pick(r.val, owned_[0].size())];
    Block b = recs_[id];
    free_block(id, false);
    if (mt_ || !(r.sel & 0x80) || g_failed || b.usable > 262144 || b.kind == kKindAligned) return;
    t_expect_error = SPACES_ERROR_DOUBLE_FREE;
    t_expect_error_or = SPACES_ERROR_INVALID_FREE;
    t_errors_seen = 0;
    spaces_free(b.p);
    t_expect_error = t_expect_error_or = 0;
    if (t_errors_seen != 1)
      fail("second free of %p (request %zu, usable %zu) made %d reports, expected 1", static_cast<void*>(b.p), b.req,
           b.usable, t_errors_seen);
    count(kEvDoubleFrees);
  }
  void op_free_sized(const Rec& r) {
    int owner = 0;
    if (r.sel & 1) {
      owner = 1 + ((r.sel >> 1) & 3);
      if (!slot_[owner - 1]->live) owner = 0;
    }
    if (owned_[owner].empty()) return;
    free_block(owned_[owner][pick(r.val, owned_[owner].size())], true);
  }
  void op_usable(const Rec& r) {
    int owner = r.sel % (1 + kSlots);
    if (owned_[owner].empty()) return;
    const Block& b = recs_[owned_[owner][pick(r.val, owned_[owner].size())]];
    size_t u = spaces_usable_size(b.p);
    if (u != (b.untracked ? 0 : b.usable))
      return fail("usable_size(%p) = %zu, expected %zu", static_cast<void*>(b.p), u, b.untracked ? 0 : b.usable);
    SpacesChunk want = b.owner ? slot_[b.owner - 1]->h : nullptr;
    if (spaces_chunk_of(b.p) != want) return fail("spaces_chunk_of(%p) changed", static_cast<void*>(b.p));
    verify_block(b, "usable_size");
  }

  // ---- regions ----
  bool stats_of(ChunkSlot& s, ChunkStats& st) {
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (spaces_chunk_stats(s.h, &st) != 0) {
      fail("spaces_chunk_stats(%p) failed (errno %d)", static_cast<void*>(s.h), errno);
      return false;
    }
    return true;
  }
  // EXCLUSIVE by bit 2 of sel; one exclusive region in four also UNTRACKED.
  static unsigned chunk_flags(uint8_t sel, uint32_t val) {
    if (!((sel >> 2) & 1)) return 0;
    return ((sel ^ (val >> 8)) & 0xC0) == 0xC0 ? SPACES_CHUNK_EXCLUSIVE | SPACES_CHUNK_UNTRACKED
                                               : SPACES_CHUNK_EXCLUSIVE;
  }
  // A region for slot k if it has none: a shared-memory one when sel has bits 2 and 3 (its
  // capacity from val), else chunk_flags.
  bool ensure_chunk(int k, uint8_t sel, uint32_t val) {
    ChunkSlot& s = *slot_[k];
    if (s.live) return true;
    if (s.shared) return false;
    if ((sel & 12) == 12) create_shm(k, val, false);
    else create_chunk(k, chunk_flags(sel, val));
    return s.live;
  }
  // A shared-memory region in slot k: capacity 256 KiB (3 granules for blocks), a random number
  // of granules up to 16 MiB, a random byte count (rounded up), or 16 MiB. `checks`: also the
  // create / open / unlink errors around it, and a second open before the unlink.
  void create_shm(int k, uint32_t val, bool checks) {
    ChunkSlot& s = *slot_[k];
    uint64_t x = mix64(val ^ 0x53686d52ull);
    size_t cap;
    switch (x & 3) {
      case 0: cap = kShMinCapacity; break;
      case 1: cap = (4 + (x >> 8) % 253) * kSlab; break;
      case 2: cap = kShMinCapacity + (x >> 8) % ((size_t(16) << 20) - kShMinCapacity + 1); break;
      default: cap = size_t(16) << 20; break;
    }
    bool long_name = (x >> 40) % 8 == 0;
    if (!checks) {
      shm_create_slot(s, cap, long_name);
      return;
    }
    count(kEvShmErrorChecks);
    // invalid names, flags and capacities: EINVAL before anything is created
    static const char* const bad[] = {"", ".hidden", "a/b", "sp ace", "tab\t", "ü"};
    char longer[202];
    memset(longer, 'y', 201);
    longer[201] = 0;
    errno = 0;
    for (const char* nm : bad)
      if (spaces_chunk_create_shared(nm, kShMinCapacity, 0) != nullptr || errno != EINVAL)
        return fail("spaces_chunk_create_shared(\"%s\") did not fail with EINVAL (errno %d)", nm, errno);
    const char* badnm = bad[(x >> 16) % 6];
    errno = 0;
    if (spaces_chunk_create_shared(longer, kShMinCapacity, 0) != nullptr || errno != EINVAL)
      return fail("spaces_chunk_create_shared(201 characters) did not fail with EINVAL (errno %d)", errno);
    errno = 0;
    if (spaces_chunk_create_shared(nullptr, kShMinCapacity, 0) != nullptr || errno != EINVAL)
      return fail("spaces_chunk_create_shared(NULL) did not fail with EINVAL (errno %d)", errno);
    errno = 0;
    if (spaces_chunk_open_shared(badnm, 0) != nullptr || errno != EINVAL)
      return fail("spaces_chunk_open_shared(\"%s\") did not fail with EINVAL (errno %d)", badnm, errno);
    errno = 0;
    if (spaces_chunk_unlink_shared(badnm) != -1 || errno != EINVAL)
      return fail("spaces_chunk_unlink_shared(\"%s\") did not fail with EINVAL (errno %d)", badnm, errno);
    if (!shm_create_slot(s, cap, long_name)) return;  // (the name is unlinked now)
    const size_t badcap[3] = {kShMinCapacity - 1 - (x >> 24) % 1000, kShMaxCapacity + 1, 0};
    for (size_t c : badcap) {
      errno = 0;
      if (spaces_chunk_create_shared(s.name, c, 0) != nullptr || errno != EINVAL)
        return fail("spaces_chunk_create_shared(capacity %zu) did not fail with EINVAL (errno %d)", c, errno);
    }
    errno = 0;
    if (spaces_chunk_create_shared(s.name, kShMinCapacity, 0x400) != nullptr || errno != EINVAL)
      return fail("spaces_chunk_create_shared(flags 0x400) did not fail with EINVAL (errno %d)", errno);
    errno = 0;
    if (spaces_chunk_open_shared(s.name, SPACES_SHARED_GROUP) != nullptr || errno != EINVAL)
      return fail("spaces_chunk_open_shared(flags SPACES_SHARED_GROUP) did not fail with EINVAL (errno %d)", errno);
    // after the unlink: no such name, but the handle keeps working
    errno = 0;
    if (spaces_chunk_open_shared(s.name, 0) != nullptr || errno != ENOENT)
      return fail("spaces_chunk_open_shared of an unlinked name did not fail with ENOENT (errno %d)", errno);
    errno = 0;
    if (spaces_chunk_unlink_shared(s.name) != -1 || errno != ENOENT)
      return fail("spaces_chunk_unlink_shared twice did not fail with ENOENT (errno %d)", errno);
    // the name again: a new region (EEXIST while it exists), opened a second time (the same
    // handle, counted: one close leaves it attached), unlinked, closed
    errno = 0;
    SpacesChunk h2 = spaces_chunk_create_shared(s.name, kShMinCapacity, 0);
    if (!h2 || h2 == s.h) return fail("spaces_chunk_create_shared of an unlinked name = %p (errno %d)", static_cast<void*>(h2), errno);
    errno = 0;
    SpacesChunk h3 = spaces_chunk_create_shared(s.name, kShMinCapacity, 0);
    int e3 = errno;
    SpacesChunk h4 = spaces_chunk_open_shared(s.name, 0);
    bool ok = h3 == nullptr && e3 == EEXIST && h4 == h2;
    if (h4 && spaces_chunk_close_shared(h4) != 0) ok = false;
    ChunkStats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (spaces_chunk_stats(h2, &st) != 0 || st.footprint != kSlab) ok = false;  // still attached
    if (spaces_chunk_unlink_shared(s.name) != 0) ok = false;
    if (spaces_chunk_close_shared(h2) != 0) ok = false;
    if (!ok) fail("second region of the name: create again %p (errno %d), open %p != %p, or close/unlink failed",
                  static_cast<void*>(h3), e3, static_cast<void*>(h4), static_cast<void*>(h2));
  }
  void create_chunk(int k, unsigned flags) {
    ChunkSlot& s = *slot_[k];
    errno = 0;
    SpacesChunk h = spaces_chunk_create(flags);
    if (!h) return fail("spaces_chunk_create(%u) = NULL (errno %d)", flags, errno);
    s.h = h;
    s.flags = flags;
    s.live = true;
    s.untracked = (flags & SPACES_CHUNK_UNTRACKED) != 0;
    s.ghost_bytes = 0;
    s.ghosts.clear();
    if (s.untracked) count(kEvUntrackedRegion);
    s.ceiling = 0;
    s.fp_hi = 0;
    s.reset_expectations();
    ChunkStats st;
    if (!stats_of(s, st)) return;
    if (st.live_blocks || st.footprint || st.ceiling || st.ceiling_hits || st.flags != flags || st.slabs ||
        st.large_blocks || st.peak_footprint)
      fail("a new region's stats are not empty: live %zu footprint %zu ceiling %zu flags %u", st.live_blocks,
           st.footprint, st.ceiling, st.flags);
  }
  void drop_chunk_blocks(int k) {
    std::vector<uint32_t>& v = owned_[1 + k];
    while (!v.empty()) {
      uint32_t id = v.back();
      if (!verify_block(recs_[id], "before reset/destroy")) return;
      drop_block(id);
    }
    slot_[k]->ghost_bytes = 0;  // (reset and destroy take everything back)
    slot_[k]->ghosts.clear();
  }
  // try_destroy (shared memory): spaces_chunk_destroy first, which must report exactly one
  // invalid free and leave the region as it was (reset, close or unlink it instead).
  void destroy_chunk(int k, bool try_destroy = false) {
    ChunkSlot& s = *slot_[k];
    if (s.shm) {
      check_chunk_stats(k);
      if (g_failed) return;
      if (try_destroy) {
        t_expect_error = SPACES_ERROR_INVALID_FREE;
        t_errors_seen = 0;
        spaces_chunk_destroy(s.h);
        t_expect_error = 0;
        if (t_errors_seen != 1)
          return fail("spaces_chunk_destroy of a shared-memory region made %d error reports, expected 1", t_errors_seen);
        check_chunk_stats(k);
        if (g_failed) return;
      }
      drop_chunk_blocks(k);
      if (g_failed) return;
      SpacesChunk h = s.h;
      shm_close_slot(s);
      if (!mt_) {  // (fuzz_mt: another thread may attach a region at the same address meanwhile)
        errno = 0;
        if (spaces_chunk_close_shared(h) != -1 || errno != EINVAL)
          fail("spaces_chunk_close_shared of a closed region did not fail with EINVAL");
        errno = 0;
        if (spaces_chunk_root(h) != nullptr || errno != EINVAL)
          fail("spaces_chunk_root of a closed region did not fail with EINVAL");
      }
      return;
    }
    if (!mt_) check_chunk_stats(k);
    if (g_failed) return;
    drop_chunk_blocks(k);
    if (g_failed) return;
    spaces_chunk_destroy(s.h);
    s.live = false;
    if (!mt_) {  // no other thread creates regions meanwhile, so the record is not reused yet
      ChunkStats st;
      st.size = sizeof st;
      errno = 0;
      if (spaces_chunk_stats(s.h, &st) != -1 || errno != EINVAL)
        fail("spaces_chunk_stats on a destroyed region did not fail with EINVAL");
      errno = 0;
      if (spaces_chunk_alloc(s.h, 16, 0) != nullptr || errno != EINVAL)
        fail("spaces_chunk_alloc on a destroyed region did not fail with EINVAL");
    }
    s.h = nullptr;
  }

  // Exact statistics of a region only this model allocates in and frees from.
  void check_chunk_stats(int k) {
    ChunkSlot& s = *slot_[k];
    if (s.shm) {  // the counters against the blocks, then the stats against the counters
      size_t n = 0, nlarge = 0, cost = 0, usable = 0;
      for (uint32_t id : owned_[1 + k]) {
        const Block& b = recs_[id];
        n++, usable += b.usable, nlarge += b.cost != 0, cost += b.cost;
      }
      if (n != s.m_blocks || nlarge != s.m_large || cost != s.m_cost || usable != s.m_usable)
        return fail("model: slot %d counters out of step with its blocks", k);
      check_shm_stats(k);
      errno = 0;
      void* root = spaces_chunk_root(s.h);
      if (root != s.root) fail("shared-memory region %d: root %p, set %p", k, root, s.root);
      return;
    }
    ChunkStats st;
    if (!stats_of(s, st)) return;
    size_t n = 0, nlarge = 0, cost = 0, usable = s.ghost_bytes;  // (untracked: freed bump blocks too)
    bool exact = true;
    for (uint32_t id : owned_[1 + k]) {
      const Block& b = recs_[id];
      n += !b.untracked;  // (not counted in live_blocks)
      usable += b.usable;
      if (b.cost) nlarge++, cost += b.cost;
      exact &= b.exact_slot;
    }
    if (st.version != SPACES_CHUNK_STATS_VERSION || st.size != sizeof st || st.flags != s.flags)
      return fail("stats header: version %u size %zu flags %u", st.version, st.size, st.flags);
    if (st.live_blocks != n) return fail("region %d: live_blocks %zu, model %zu", k, st.live_blocks, n);
    if (st.large_blocks != nlarge) return fail("region %d: large_blocks %zu, model %zu", k, st.large_blocks, nlarge);
    if (st.live_bytes < usable || (exact && st.live_bytes != usable))
      return fail("region %d: live_bytes %zu, model's usable bytes %zu%s", k, st.live_bytes, usable,
                  exact ? " (no block at an offset: must be equal)" : "");
    if (st.footprint != st.slabs * kSlab + cost)
      return fail("region %d: footprint %zu != %zu slabs x 64 KiB + %zu bytes of large blocks", k, st.footprint,
                  st.slabs, cost);
    if (st.ceiling != s.ceiling) return fail("region %d: ceiling %zu, set %zu", k, st.ceiling, s.ceiling);
    if (st.ceiling_hits != s.hits) return fail("region %d: ceiling_hits %zu, model %zu", k, st.ceiling_hits, s.hits);
    if (s.fp_known && st.footprint > s.fp_hi)
      return fail("region %d: footprint %zu grew to more than %zu without an allocation", k, st.footprint, s.fp_hi);
    if (st.peak_footprint < st.footprint || st.peak_footprint < s.peak_seen)
      return fail("region %d: peak_footprint %zu below footprint %zu or earlier peak %zu", k, st.peak_footprint,
                  st.footprint, s.peak_seen);
    if (!s.peak_unbounded && st.peak_footprint > s.peak_bound)
      return fail("region %d: peak_footprint %zu above every ceiling it had (%zu)", k, st.peak_footprint, s.peak_bound);
    s.peak_seen = st.peak_footprint;
    s.fp_hi = st.footprint;
    s.fp_known = true;
    count(kEvStatsChecks);
  }

  // A region allocation of (size, align) through `call`, with every ceiling rule checked.
  // re: the block a realloc is about (shared-memory regions keep it in place by their own rule).
  template <class Call> void* chunk_call(int k, size_t size, size_t align, Call call, const Block* re = nullptr) {
    ChunkSlot& s = *slot_[k];
    if (s.shm) {
      bool in_place = re && size <= re->usable && size >= re->usable / 2;
      ShmPath pl = shm_path(size, re ? 0 : align);
      if (pl.einval) {  // (in every slot, shared or not: nothing else happens)
        if (!s.shared) s.pressure_calls = 0;
        errno = 0;
        void* p = call();
        int e = errno;
        if (p != nullptr || e != EINVAL)
          fail("shared-memory region: aligned alloc(%zu, align %zu) = %p (errno %d), expected NULL + EINVAL (alignment "
               "above 64 KiB)",
               size, align, p, e);
        else if (!s.shared && s.pressure_calls)
          fail("shared-memory region: an invalid alignment called the pressure handler");
        return nullptr;
      }
      if (!s.shared) return shm_call(k, size, align, pl, in_place, re, call);
    }
    size_t c0 = s.ceiling, fp0 = s.fp_hi;
    bool fpk = s.fp_known;
    Need need = model_need(size, align);
    if (!s.shared) {  // (a shared slot is read-only while the threads run)
      s.pressure_calls = 0;
      if (c0 == 0) s.peak_unbounded = true;
    }
    errno = 0;
    void* p = call();
    int e = errno;
    if (s.shared) {  // other threads allocate and free here at the same time
      if (p == nullptr) {
        if (e != ENOMEM) fail("shared region alloc(%zu, align %zu) = NULL with errno %d", size, align, e);
        if (s.ceiling == 0) fail("shared region without a ceiling refused alloc(%zu, align %zu)", size, align);
        s.nulls->fetch_add(1);
        return nullptr;
      }
      if (s.ceiling) {
        ChunkStats st;
        if (stats_of(s, st) && (st.footprint > s.ceiling || st.peak_footprint > s.ceiling))
          fail("shared region: footprint %zu / peak %zu above the ceiling %zu", st.footprint, st.peak_footprint,
               s.ceiling);
      }
      return p;
    }
    size_t c1 = s.ceiling;  // the pressure handler may have raised it
    if (p == nullptr) {
      if (e != ENOMEM) fail("region alloc(%zu, align %zu) = NULL with errno %d, expected ENOMEM", size, align, e);
      if (c1 == 0) {
        fail("region without a ceiling refused alloc(%zu, align %zu)", size, align);
        return nullptr;
      }
      ChunkStats st;
      if (!stats_of(s, st)) return nullptr;
      if (st.footprint + need.bytes <= st.ceiling)
        fail("region %d refused alloc(%zu, align %zu): footprint %zu + %zu needed <= ceiling %zu (before: footprint "
             "<= %zu%s, ceiling %zu)",
             k, size, align, st.footprint, need.bytes, st.ceiling, fp0, fpk ? "" : " unknown", c0);
      if (st.ceiling_hits != s.hits + 1)
        fail("region %d: a refused call made ceiling_hits %zu -> %zu", k, s.hits, st.ceiling_hits);
      if (s.pressure_mode && s.pressure_calls != 1)
        fail("region %d: the pressure handler ran %d times for one refused call", k, s.pressure_calls);
      count(kEvCeilingNull);
      s.hits = st.ceiling_hits;
      s.fp_hi = st.footprint;
      s.fp_known = true;
      return nullptr;
    }
    if (s.pressure_calls > 1) fail("region %d: the pressure handler ran %d times for one call", k, s.pressure_calls);
    if (c1 != 0) {
      ChunkStats st;
      if (!stats_of(s, st)) return p;
      size_t bound = std::max(c1, fpk ? fp0 : SIZE_MAX);
      if (st.footprint > bound)
        fail("region %d: footprint %zu after alloc(%zu, align %zu) is above the ceiling %zu (before: %zu)", k,
             st.footprint, size, align, c1, fp0);
      if (st.ceiling_hits != s.hits)
        fail("region %d: a successful call changed ceiling_hits %zu -> %zu", k, s.hits, st.ceiling_hits);
      s.fp_hi = st.footprint;
      s.fp_known = true;
      count(kEvCeilingSuccess);
    } else {
      s.fp_known = false;
    }
    return p;
  }

  // An allocation (or realloc) in a shared-memory region this model alone uses: its outcome is
  // predicted exactly (shm_fits before the call, and after the pressure handler for the retry).
  template <class Call>
  void* shm_call(int k, size_t size, size_t align, const ShmPath& pl, bool in_place, const Block* re, Call call) {
    ChunkSlot& s = *slot_[k];
    size_t need = 0;
    bool fit0 = in_place || shm_fits(s, pl, &need);
    size_t fp0 = s.fp, c0 = s.ceiling;
    s.pressure_calls = 0;
    errno = 0;
    void* p = call();
    int e = errno;
    if (in_place) {
      if (p != re->p)
        fail("shared-memory region %d: realloc(%p, %zu) of a block of usable size %zu returned %p: it fits and wastes "
             "less than half, so it stays",
             k, static_cast<void*>(re->p), size, re->usable, p);
      else if (s.pressure_calls)
        fail("shared-memory region %d: a realloc in place called the pressure handler", k);
      return p;
    }
    if (re && p == re->p)
      return fail("shared-memory region %d: realloc(%p, %zu) of a block of usable size %zu kept it", k,
                  static_cast<void*>(re->p), size, re->usable),
             nullptr;
    bool want = fit0, retried = false;
    if (!fit0 && s.pressure_mode) {
      if (s.pressure_calls != 1)
        fail("shared-memory region %d: the pressure handler ran %d times for one refused call", k, s.pressure_calls);
      if (s.pressure_mode != 3) {  // it returned non-zero: one retry, on the state it left
        retried = true;
        want = shm_fits(s, pl, &need);
      }
    } else if (s.pressure_calls) {
      fail("shared-memory region %d: the pressure handler ran %d times, but alloc(%zu, align %zu) fits", k,
           s.pressure_calls, size, align);
    }
    if (g_failed) return p;
    if (p == nullptr) {
      if (e != ENOMEM) fail("shared-memory region %d: alloc(%zu, align %zu) = NULL with errno %d", k, size, align, e);
      if (want)
        fail("shared-memory region %d refused alloc(%zu, align %zu)%s: footprint %zu + %zu needed <= ceiling %zu "
             "(capacity %zu), a run of %zu free granules exists (model; before the call: footprint %zu, ceiling %zu)",
             k, size, align, retried ? " on the retry after the pressure handler" : "", s.fp, need, s.ceiling, s.total,
             need / kSlab, fp0, c0);
      s.hits++;  // docs/regions.md: one per refused call, whatever the handler did
      count(kEvShmNull);
      ChunkStats st;
      if (!stats_of(s, st)) return nullptr;
      if (st.ceiling_hits != s.hits)
        fail("shared-memory region %d: a refused alloc(%zu, align %zu) made ceiling_hits %zu, expected %zu (pressure "
             "handler: %s)",
             k, size, align, st.ceiling_hits, s.hits,
             s.pressure_mode == 0 ? "none" : s.pressure_mode == 3 ? "refused" : "retried");
      else if (st.footprint != s.fp)
        fail("shared-memory region %d: footprint %zu after a refusal, model %zu", k, st.footprint, s.fp);
      return nullptr;
    }
    if (!want)
      fail("shared-memory region %d: alloc(%zu, align %zu)%s succeeded although the model refuses it: footprint %zu + "
           "%zu needed, ceiling %zu (capacity %zu), or no run of %zu free granules",
           k, size, align, retried ? " retried after the pressure handler" : "", s.fp, need, s.ceiling, s.total,
           need / kSlab);
    return p;
  }

  void op_chunk_create(const Rec& r) {
    int k = private_slot(r.sel);
    if (slot_[k]->live) return;
    if (r.sel & 8) create_shm(k, r.val, (r.sel & 0x30) == 0);  // shared memory (1 in 4: with error checks)
    else create_chunk(k, chunk_flags(r.sel, r.val));
  }
  void op_chunk_alloc(const Rec& r) {
    int k = r.sel & 3;
    if (!ensure_chunk(k, r.sel, r.val)) return;
    size_t n = decode_size(r.val);
    if (!room(n)) return;
    bool zero = r.sel & 8;
    SpacesChunk h = slot_[k]->h;
    void* p = chunk_call(k, n, 0, [&] { return spaces_chunk_alloc(h, n, zero ? SPACES_ZERO : 0); });
    if (p) register_new(p, n, 0, kKindChunk, 1 + k, zero);
  }
  void op_chunk_aligned(const Rec& r) {
    int k = r.sel & 3;
    if (!ensure_chunk(k, r.sel, r.val)) return;
    size_t align = size_t(1) << (((r.sel >> 4) + (r.val >> 28)) % 21);
    size_t n = decode_size(r.val);
    if (!room(n + align)) return;
    bool zero = r.sel & 8;
    SpacesChunk h = slot_[k]->h;
    void* p = chunk_call(k, n, align, [&] { return spaces_chunk_aligned_alloc(h, align, n, zero ? SPACES_ZERO : 0); });
    if (p) register_new(p, n, align, kKindChunkAligned, 1 + k, zero);
  }
  void op_chunk_realloc(const Rec& r) {
    int k = r.sel & 3;
    if (!ensure_chunk(k, r.sel, r.val)) return;
    SpacesChunk h = slot_[k]->h;
    std::vector<uint32_t>& v = owned_[1 + k];
    if (v.empty()) {  // chunk_realloc(c, NULL, n) allocates
      size_t n = decode_size(r.val);
      if (!room(n)) return;
      void* p = chunk_call(k, n, 0, [&] { return spaces_chunk_realloc(h, nullptr, n); });
      if (p) register_new(p, n, 0, kKindChunk, 1 + k, false);
      return;
    }
    uint32_t id = v[pick(r.val, v.size())];
    size_t n = realloc_size(r.sel >> 2, r.val, recs_[id].req);
    bool via_malloc_api = r.sel & 16;
    Block old = recs_[id];
    do_realloc(
        id, n,
        [&](void* p, size_t m) {
          if (m == 0) return via_malloc_api ? spaces_realloc(p, 0) : spaces_chunk_realloc(h, p, 0);
          return chunk_call(
              k, m, 0, [&] { return via_malloc_api ? spaces_realloc(p, m) : spaces_chunk_realloc(h, p, m); }, &old);
        },
        true);
  }
  void op_chunk_free(const Rec& r) {
    int k = r.sel & 3;
    std::vector<uint32_t>& v = owned_[1 + k];
    if (v.empty()) return;
    free_block(v[pick(r.val, v.size())], false);
  }
  void op_chunk_reset(const Rec& r) {
    int k = private_slot(r.sel);
    ChunkSlot& s = *slot_[k];
    if (!s.live) return;
    check_chunk_stats(k);
    if (g_failed) return;
    ChunkStats pre;
    if (!stats_of(s, pre)) return;
    drop_chunk_blocks(k);
    spaces_chunk_reset(s.h);
    ChunkStats st;
    if (!stats_of(s, st)) return;
    if (s.shm) {  // every granule but the metadata free, root NULL; ceiling, hits and peak kept
      shm_model_reset(s);
      errno = 0;
      void* root = spaces_chunk_root(s.h);
      if (st.live_blocks || st.large_blocks || st.live_bytes || st.slabs || st.footprint != s.fp ||
          st.ceiling != s.ceiling || st.ceiling_hits != s.hits || st.peak_footprint != s.peak || root)
        fail("shared-memory region %d after reset: live %zu large %zu bytes %zu slabs %zu footprint %zu (want %zu) "
             "ceiling %zu hits %zu peak %zu (want %zu / %zu / %zu) root %p",
             k, st.live_blocks, st.large_blocks, st.live_bytes, st.slabs, st.footprint, s.fp, st.ceiling,
             st.ceiling_hits, st.peak_footprint, s.ceiling, s.hits, s.peak, root);
      return;
    }
    // Kept: at least chunk_keep_slabs, and with chunk_reset_keep as many as the busiest of the
    // last 4 rounds used (at most every slab held before). 4 more resets in a row keep
    // chunk_keep_slabs.
    size_t keep = size_t(spaces_option_get("chunk_keep_slabs"));
    size_t may_keep = spaces_option_get("chunk_reset_keep") ? std::max(keep, pre.slabs) : keep;
    if (st.live_blocks || st.large_blocks || st.live_bytes || st.footprint != st.slabs * kSlab ||
        st.slabs > may_keep || st.ceiling != s.ceiling || st.ceiling_hits != s.hits)
      return fail("after reset: live %zu large %zu bytes %zu footprint %zu slabs %zu (may keep %zu of %zu) ceiling %zu "
                  "hits %zu",
                  st.live_blocks, st.large_blocks, st.live_bytes, st.footprint, st.slabs, may_keep, pre.slabs,
                  st.ceiling, st.ceiling_hits);
    if (r.val & 0x100) {
      for (int round = 0; round < 4; round++) spaces_chunk_reset(s.h);
      if (!stats_of(s, st)) return;
      if (st.slabs > keep || st.footprint != st.slabs * kSlab)
        return fail("after 5 resets in a row: footprint %zu slabs %zu (keep %zu)", st.footprint, st.slabs, keep);
    }
    s.fp_hi = st.footprint;
    s.fp_known = true;
  }
  void op_chunk_destroy(const Rec& r) {
    int k = private_slot(r.sel);
    if (!slot_[k]->live) return;
    destroy_chunk(k, r.sel & 4);
  }
  void op_set_ceiling(const Rec& r) {
    int k = private_slot(r.sel);
    if (!ensure_chunk(k, r.sel, r.val)) return;
    ChunkSlot& s = *slot_[k];
    ChunkStats st;
    if (!stats_of(s, st)) return;
    size_t fp = st.footprint, c;
    switch ((r.sel >> 2) & 7) {
      case 0: c = 0; break;
      case 1: c = fp > kSlab ? fp - kSlab : 1; break;  // below the footprint: blocks growth only
      case 2: c = fp; break;
      case 3: c = fp + kSlab * (1 + r.val % 4); break;
      case 4: c = fp + r.val % (size_t(16) << 20); break;
      case 5: c = kSlab << (r.val % 6); break;
      case 6: c = 1; break;
      default: c = r.val % (size_t(32) << 20); break;
    }
    if (spaces_chunk_set_ceiling(s.h, c) != 0) return fail("spaces_chunk_set_ceiling failed");
    if (s.shm && (c == 0 || c > s.total)) c = s.total;  // the capacity is the hard ceiling (0 restores it)
    if (spaces_chunk_ceiling(s.h) != c) return fail("spaces_chunk_ceiling %zu, expected %zu", spaces_chunk_ceiling(s.h), c);
    s.ceiling = c;
    s.fp_hi = fp;
    s.fp_known = true;
    if (c) s.peak_bound = std::max(s.peak_bound, std::max(c, fp));
  }

  struct WalkFree {
    Model* m;
    int k;
    std::vector<std::pair<uintptr_t, uint32_t>> by_addr;  // model blocks sorted by address
    std::vector<WalkEntry> seen;
    unsigned parity;
    size_t stop_after;
  };
  static int walk_cb(void* p, size_t n, void* arg) {
    auto* w = static_cast<WalkFree*>(arg);
    w->seen.push_back({reinterpret_cast<uintptr_t>(p), n});
    if (w->stop_after && w->seen.size() == w->stop_after) return 42;
    if (w->parity < 2 && (w->seen.size() & 1) == w->parity) {  // free the block we were given
      uintptr_t a = reinterpret_cast<uintptr_t>(p);
      auto it = std::lower_bound(w->by_addr.begin(), w->by_addr.end(), std::make_pair(a, uint32_t(0)));
      if (it != w->by_addr.end() && it->first < a + n) {
        Block& b = w->m->recs_[it->second];
        if (b.live && b.owner == 1 + w->k && reinterpret_cast<uintptr_t>(b.p) == it->first)
          w->m->free_block(it->second, false);
      }
    }
    return 0;
  }
  void op_walk(const Rec& r) {
    int k = private_slot(r.sel);
    ChunkSlot& s = *slot_[k];
    if (!s.live) return;
    unsigned mode = (r.sel >> 2) & 3;
    if (s.untracked) {  // cannot be walked: refused before any callback
      errno = 0;
      int rc = spaces_chunk_walk(s.h, walk_collect, nullptr);
      if (rc != -1 || errno != ENOTSUP) fail("walk of an untracked region returned %d (errno %d), expected -1 + ENOTSUP", rc, errno);
      return;
    }
    WalkFree w{this, k, {}, {}, 2, 0};
    std::vector<const Block*> blocks;
    for (uint32_t id : owned_[1 + k]) {
      blocks.push_back(&recs_[id]);
      w.by_addr.push_back({reinterpret_cast<uintptr_t>(recs_[id].p), id});
    }
    std::sort(w.by_addr.begin(), w.by_addr.end());
    w.seen.reserve(blocks.size() + 16);
    if (mode == 1) w.stop_after = 1 + r.val % (blocks.size() + 1);
    if (mode == 2) w.parity = r.val & 1;
    int rc = spaces_chunk_walk(s.h, walk_cb, &w);
    if (mode == 1) {
      int want = w.stop_after <= blocks.size() ? 42 : 0;
      if (rc != want)
        fail("walk stopped after %zu of %zu blocks returned %d, expected %d", w.seen.size(), blocks.size(), rc, want);
      if (w.seen.size() != std::min(w.stop_after, blocks.size()))
        fail("walk asked to stop after %zu visited %zu (%zu live)", w.stop_after, w.seen.size(), blocks.size());
      return;
    }
    if (rc != 0) return fail("spaces_chunk_walk returned %d", rc);
    if (mode == 2) {  // what was visited was the live set before the frees (records stay readable)
      match_walk(w.seen, blocks, "walk freeing every other block");
      if (g_failed) return;
      std::vector<WalkEntry> again;
      again.reserve(owned_[1 + k].size() + 16);
      if (spaces_chunk_walk(s.h, walk_collect, &again) != 0) return fail("second walk failed");
      std::vector<const Block*> left;
      for (uint32_t id : owned_[1 + k]) left.push_back(&recs_[id]);
      match_walk(again, left, "walk after freeing from the callback");
      return;
    }
    match_walk(w.seen, blocks, "walk");
    if (mode == 3 && !g_failed) {
      size_t bytes = 0;
      for (auto& e : w.seen) bytes += e.n;
      ChunkStats st;
      if (stats_of(s, st) && (st.live_bytes != bytes || st.live_blocks != w.seen.size()))
        fail("stats live_bytes %zu / live_blocks %zu, walk saw %zu bytes in %zu blocks", st.live_bytes, st.live_blocks,
             bytes, w.seen.size());
    }
  }
  void op_stats(const Rec& r) {
    if (r.sel & 4) {
      struct spaces_stats st;
      memset(&st, 0, sizeof st);
      st.size = sizeof st;
      if (spaces_stats(&st) != 0 || st.version != SPACES_STATS_VERSION || st.size != sizeof st)
        return fail("spaces_stats failed or has a wrong header");
      size_t large = 0;
      for (auto& v : owned_)  // (blocks of shared-memory regions are not the process's)
        for (uint32_t id : v) large += recs_[id].cost != 0 && !(recs_[id].owner && slot_[recs_[id].owner - 1]->shm);
      if (!mt_ && st.large_blocks < large)
        fail("spaces_stats large_blocks %zu < %zu live in the model", st.large_blocks, large);
      if (st.committed_bytes > st.reserved_bytes || st.peak_committed_bytes < st.committed_bytes)
        fail("spaces_stats: committed %zu reserved %zu peak %zu",
             st.committed_bytes, st.reserved_bytes, st.peak_committed_bytes);
      return;
    }
    int k = r.sel & 3;
    ChunkSlot& s = *slot_[k];
    if (!s.live) return;
    if (shm_exact(s) && (r.sel & 0x10)) {  // the root: a block of the region (or NULL), read back
      std::vector<uint32_t>& v = owned_[1 + k];
      void* want = v.empty() || (r.val & 1) ? nullptr : recs_[v[pick(r.val, v.size())]].p;
      spaces_chunk_set_root(s.h, want);
      s.root = want;
      if (spaces_chunk_root(s.h) != want) return fail("spaces_chunk_root != the %p just set", want);
    }
    if (r.sel & 8) {  // an old caller's smaller struct: nothing past its size is written
      unsigned char buf[sizeof(ChunkStats) + 16];
      memset(buf, 0xA5, sizeof buf);
      ChunkStats* st = reinterpret_cast<ChunkStats*>(buf);
      size_t want = offsetof(ChunkStats, live_bytes);
      st->size = want;
      if (spaces_chunk_stats(s.h, st) != 0 || st->size != want) return fail("short spaces_chunk_stats failed");
      for (size_t i = want; i < sizeof buf; i++)
        if (buf[i] != 0xA5) return fail("spaces_chunk_stats wrote byte %zu past the caller's size %zu", i, want);
      size_t tracked = 0;
      for (uint32_t id : owned_[1 + k]) tracked += !recs_[id].untracked;
      if (!s.shared && st->live_blocks != tracked)
        fail("short stats: live_blocks %zu, model %zu", st->live_blocks, tracked);
      return;
    }
    if (s.shared) {
      ChunkStats st;
      if (stats_of(s, st) && s.ceiling && (st.footprint > s.ceiling || st.peak_footprint > s.ceiling))
        fail("shared region: footprint %zu / peak %zu above the ceiling %zu",
             st.footprint, st.peak_footprint, s.ceiling);
      if (s.shm && spaces_chunk_root(s.h) != nullptr) fail("shared-memory region: a root nobody set");
      return;
    }
    check_chunk_stats(k);
  }

  // ---- pressure handler and capture ----
  static int pressure_cb(SpacesChunk c, size_t request, void* arg) {
    ChunkSlot& s = *static_cast<ChunkSlot*>(arg);
    s.pressure_calls++;
    count(kEvPressureCall);
    if (c != s.h)
      fail("pressure handler got region %p, registered for %p", static_cast<void*>(c), static_cast<void*>(s.h));
    (void)request;
    Model& m = *s.model;
    int k = int(&s - m.own_);
    switch (s.pressure_mode) {
      case 1: {  // evict: free up to N blocks of the region, newest first
        std::vector<uint32_t>& v = m.owned_[1 + k];
        unsigned to_evict = 1 + s.pressure_arg % 8;
        for (size_t i = v.size(); i-- > 0 && to_evict;) {
          if (m.recs_[v[i]].busy) continue;
          m.free_block(v[i], false);
          to_evict--;
        }
        return 1;
      }
      case 2: {
        size_t c2 = s.ceiling + kSlab * (1 + s.pressure_arg % 64);
        spaces_chunk_set_ceiling(c, c2);
        if (s.shm && c2 > s.total) c2 = s.total;
        s.ceiling = c2;
        s.peak_bound = std::max(s.peak_bound, c2);
        return 1;
      }
      default: return 0;
    }
  }
  void op_pressure(const Rec& r) {
    int k = private_slot(r.sel);
    if (!ensure_chunk(k, r.sel, r.val)) return;
    ChunkSlot& s = *slot_[k];
    s.pressure_mode = (r.sel >> 2) & 3;
    s.pressure_arg = r.val;
    spaces_chunk_set_pressure_handler(s.h, s.pressure_mode ? pressure_cb : nullptr, &s);
  }
  void op_capture(const Rec& r) {
    int k = private_slot(r.sel);
    if (!ensure_chunk(k, r.sel, r.val)) return;
    ChunkSlot& s = *slot_[k];
    SpacesChunk h = s.h;
    if (!(s.flags & SPACES_CHUNK_EXCLUSIVE)) {
      errno = 0;
      SpacesChunk prev = spaces_thread_set_chunk(h);
      if (prev != nullptr || errno != EINVAL)
        fail("spaces_thread_set_chunk(shared region) = %p, errno %d", static_cast<void*>(prev), errno);
      return;
    }
    size_t n = decode_size(r.val);
    size_t align = (r.sel & 8) ? size_t(1) << ((r.val >> 28) + 1) : 0;
    if (!room(n + align)) return;
    // Between the two set_chunk calls every allocation of this thread goes to the region: only
    // the call under test runs there (the model's containers allocate outside).
    SpacesChunk prev = nullptr, back = nullptr;
    free_recs_.reserve(recs_.size());  // a pressure handler's frees must not allocate meanwhile
    void* p = chunk_call(k, n, align, [&] {
      prev = spaces_thread_set_chunk(h);
      void* q = align ? spaces_aligned_alloc(align, n) : spaces_malloc(n);
      int e = errno;
      back = spaces_thread_set_chunk(prev);
      errno = e;
      return q;
    });
    if (prev != nullptr || back != h)
      fail("spaces_thread_set_chunk returned %p then %p", static_cast<void*>(prev), static_cast<void*>(back));
    capturing_ = true;  // (malloc through a captured region uses its size classes)
    if (p) register_new(p, n, align, align ? kKindChunkAligned : kKindChunk, 1 + k, false);
    capturing_ = false;
  }

  // ---- bursts ----
  // A tight loop of region (or thread-heap) allocations, each freeing the block allocated eight
  // iterations before (shared memory: one of the last 24), with a signature at both ends instead of a full pattern. Cheap per call, so
  // that fuzz_mt's threads really do allocate, collect and push remote frees on the same slabs at
  // the same time; every call still goes through chunk_call's ceiling checks, and whatever the
  // allocator gets wrong shows in the signatures, the region stats and walks afterwards.
  void op_burst(const Rec& r) {
    int k = r.sel & 3;
    bool heap = (r.sel & 0x30) == 0x30;
    if (!heap && !ensure_chunk(k, r.sel, r.val)) return;
    bool large = r.sel & 8;
    unsigned n = 32 + (r.val >> 23);
    bool any_slot = !heap && slot_[k]->shm;
    // (shared memory: 24 blocks live, classes up to 8 KiB too, whose slabs hold 7 to 15 blocks,
    // and a random slot of the ring replaced each time, so that the ring spans several slabs of a
    // class and empties some: shared.cpp releases an emptied slab unless it is its class's only
    // one with room)
    const unsigned kRing = any_slot ? 24 : 8;
    struct Item {
      uint8_t* p;
      size_t n;
      uint64_t sig;
    } ring[24] = {};
    uint64_t x = mix64(r.val) | 1;
    size_t base = (r.val >> 4) % (any_slot ? 8192 : 2048);
    SpacesChunk h = heap ? nullptr : slot_[k]->h;
    bool shm = !heap && shm_exact(*slot_[k]);  // (the exact model follows every call)
    for (unsigned i = 0; i < n + kRing && !g_failed; i++) {  // the last kRing only free
      Item& it = ring[any_slot && i < n ? unsigned(x >> 40) % kRing : i % kRing];
      if (it.p) {
        uint64_t a = 0, b = 0;
        memcpy(&a, it.p, std::min<size_t>(8, it.n));
        if (it.n >= 16) memcpy(&b, it.p + it.n - 8, 8);
        uint64_t want = it.n >= 8 ? it.sig : it.sig & ((uint64_t(1) << (8 * it.n)) - 1);
        if (a != want || (it.n >= 16 && b != ~it.sig))
          return fail("burst: block %p of %zu bytes lost its signature", static_cast<void*>(it.p), it.n);
        bool untracked = !heap && slot_[k]->untracked && spaces_usable_size(it.p) == 0;
        spaces_free(it.p);
        if (shm) shm_note_free(k, it.p);
        if (untracked) {  // (a no-op: its bytes stay the region's until reset)
          size_t u = std::max<size_t>(16, (it.n + 15) & ~size_t(15));
          slot_[k]->ghost_bytes += u;
          slot_[k]->ghosts[reinterpret_cast<uintptr_t>(it.p)] = reinterpret_cast<uintptr_t>(it.p) + u;
        }
        it.p = nullptr;
      }
      if (i >= n) continue;
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t sz = large ? 8193 + x % 120000 : base + x % 64;  // small: one or two size classes
      void* p = heap ? spaces_malloc(sz) : chunk_call(k, sz, 0, [&] { return spaces_chunk_alloc(h, sz, 0); });
      if (!p) {
        if (heap) return fail("burst: spaces_malloc(%zu) = NULL", sz);
        continue;  // (chunk_call checked the refusal)
      }
      if (shm && !shm_note_alloc(k, p, shm_path(sz, 0))) return;
      if (!heap && slot_[k]->untracked && spaces_usable_size(p) == 0 &&
          ghost_overlap(*slot_[k], p, std::max<size_t>(16, (sz + 15) & ~size_t(15))))
        return fail("burst: block %p of an untracked region overlaps a freed block", p);
      it.p = static_cast<uint8_t*>(p);
      it.n = sz;
      it.sig = mix64(x);
      memcpy(it.p, &it.sig, std::min<size_t>(8, sz));
      uint64_t tail = ~it.sig;
      if (sz >= 16) memcpy(it.p + sz - 8, &tail, 8);
    }
  }

  // ---- TypedPool ----
  bool pool_live(int i) const { return i == 0 ? pools_[0].a != nullptr : pools_[1].b != nullptr; }
  void op_pool_create(const Rec& r) {
    int i = r.sel & 1;
    if (pool_live(i)) return;
    if (i == 0) pools_[0].a.reset(new spaces::TypedPool<ObjA>());
    else pools_[1].b.reset(new spaces::TypedPool<ObjB>());
  }
  void op_pool_new(const Rec& r) {
    int i = r.sel & 1;
    if (!pool_live(i)) op_pool_create(r);
    Pool& pl = pools_[i];
    if (pl.objs.size() >= 4096) return;
    uint64_t seed = next_seed();
    void* o;
    size_t sz, al;
    if (i == 0) o = pl.a->create(seed), sz = sizeof(ObjA), al = alignof(ObjA);
    else o = pl.b->create(seed), sz = sizeof(ObjB), al = alignof(ObjB);
    if (reinterpret_cast<uintptr_t>(o) % al) return fail("TypedPool object %p not %zu-aligned", o, al);
    uintptr_t a = reinterpret_cast<uintptr_t>(o);
    if (!span_insert(a, a + sz, kPoolSpan)) return;
    pl.objs.push_back(o);
    size_t live = i == 0 ? pl.a->size() : pl.b->size();
    if (live != pl.objs.size()) fail("TypedPool size() %zu, model %zu", live, pl.objs.size());
  }
  void op_pool_delete(const Rec& r) {
    int i = r.sel & 1;
    Pool& pl = pools_[i];
    if (pl.objs.empty()) return;
    size_t j = pick(r.val, pl.objs.size());
    void* o = pl.objs[j];
    pl.objs[j] = pl.objs.back();
    pl.objs.pop_back();
    spans_.erase(reinterpret_cast<uintptr_t>(o));
    uint64_t before = t_dtors;
    if (i == 0) pl.a->destroy(static_cast<ObjA*>(o));
    else pl.b->destroy(static_cast<ObjB*>(o));
    if (t_dtors != before + 1) fail("TypedPool::destroy ran %llu destructors", (unsigned long long)(t_dtors - before));
    size_t live = i == 0 ? pl.a->size() : pl.b->size();
    if (live != pl.objs.size()) fail("TypedPool size() %zu, model %zu", live, pl.objs.size());
  }
  void pool_destroy(int i) {
    Pool& pl = pools_[i];
    std::vector<void*> seen;
    if (i == 0) pl.a->forEach([&](ObjA& o) { seen.push_back(&o); });
    else pl.b->forEach([&](ObjB& o) { seen.push_back(&o); });
    std::vector<void*> want = pl.objs;
    std::sort(seen.begin(), seen.end());
    std::sort(want.begin(), want.end());
    if (seen != want) fail("TypedPool::forEach visited %zu objects, %zu live", seen.size(), want.size());
    uint64_t before = t_dtors;
    if (i == 0) pl.a.reset();
    else pl.b.reset();
    if (t_dtors - before != want.size())
      fail("destroying a TypedPool ran %llu destructors for %zu live objects", (unsigned long long)(t_dtors - before),
           want.size());
    for (void* o : pl.objs) spans_.erase(reinterpret_cast<uintptr_t>(o));
    pl.objs.clear();
  }
  void op_pool_destroy(const Rec& r) {
    if (pool_live(r.sel & 1)) pool_destroy(r.sel & 1);
  }

  // sel & 6 == 6 with a short purge delay: wait for it first, so that purges happen at a
  // reproducible point of the input (not only when the run happens to take long enough). The
  // core reads CLOCK_MONOTONIC_COARSE (a few ms per tick): wait two delays and a tick more.
  void op_collect(const Rec& r) {
    long long delay = spaces_option_get("purge_delay_ms");
    if ((r.sel & 6) == 6 && delay > 0 && delay <= 5) {
      struct timespec ts = {0, (2 * delay + 10) * 1000000L};
      nanosleep(&ts, nullptr);
    }
    spaces_collect(r.sel & 1);
  }

  // ---- impossible and invalid requests ----
  void expect_null(void* p, int want, const char* what) {
    int e = errno;
    if (p != nullptr) {  // (left alone: it may alias a live block)
      fail("%s returned %p, expected NULL", what, p);
      return;
    }
    if (e != want) fail("%s: errno %d, expected %d", what, e, want);
  }
  // A pointer the program never got, derived from a live block: into the first bytes of its 64 KiB
  // granule (a slab's header or the colour's bytes before it, a bump or shared slab header, a
  // large-block header), or inside a large block. free, realloc and usable_size must each report exactly one INVALID_FREE and leave
  // the block (and the allocator) as they were. (Pointers inside a small block are not used: in a
  // slab that has handed out over-aligned blocks, any pointer into a block is a valid one.)
  void op_bad_pointer(const Rec& r, int owner) {
    if (owned_[owner].empty()) return;
    const Block& b = recs_[owned_[owner][pick(r.val, owned_[owner].size())]];
    uintptr_t a = reinterpret_cast<uintptr_t>(b.p);
    if ((a & 0xffff) == 0) return;  // (a 64 KiB-aligned block: its granule's start is the block)
    uint8_t* bad = b.usable > 8192 ? b.p + 8 + 16 * (r.val >> 8 & 3)
                                                    : reinterpret_cast<uint8_t*>((a & ~uintptr_t(0xffff)) + 16 + 8 * (r.val >> 8 & 15));
    const char* what[3] = {"free(bad pointer)", "realloc(bad pointer)", "usable_size(bad pointer)"};
    for (int call = 0; call < 3 && !g_failed; call++) {
      t_expect_error = SPACES_ERROR_INVALID_FREE;
      t_errors_seen = 0;
      if (call == 0) {
        spaces_free(bad);
      } else if (call == 1) {
        void* q = spaces_realloc(bad, 100);
        if (q != nullptr) fail("realloc of a bad pointer %p returned %p", static_cast<void*>(bad), q);
      } else if (spaces_usable_size(bad) != 0) {
        fail("usable_size of a bad pointer %p is not 0", static_cast<void*>(bad));
      }
      t_expect_error = 0;
      if (t_errors_seen != 1) fail("%s at %p (block %p) made %d reports, expected 1", what[call], static_cast<void*>(bad), static_cast<void*>(b.p), t_errors_seen);
    }
    if (!g_failed) verify_block(b, "after frees of a bad pointer next to it");
  }

  void op_impossible(const Rec& r) {
    static const size_t huge[6] = {SIZE_MAX, SIZE_MAX - 15, (size_t(1) << 46) + 1, size_t(1) << 62,
                                   SIZE_MAX / 2 + 1, (size_t(1) << 47)};
    size_t big = huge[r.val % 6];
    int k = r.sel >> 5 & 3;
    errno = 0;
    switch (r.sel & 15) {
      case 0: expect_null(spaces_malloc(big), ENOMEM, "malloc(huge)"); break;
      case 1: expect_null(spaces_calloc(big / 2 + 1, 3), ENOMEM, "calloc overflow"); break;
      case 2: expect_null(spaces_calloc(1, big), ENOMEM, "calloc(1, huge)"); break;
      case 3:
      case 4: {
        int owner = (r.sel & 15) == 3 ? 0 : 1 + k;
        if (owned_[owner].empty()) break;
        const Block& b = recs_[owned_[owner][pick(r.val, owned_[owner].size())]];
        uint64_t hits = 0;
        bool exact = owner && !slot_[k]->shared;
        if (exact) {
          ChunkStats st;
          if (!stats_of(*slot_[k], st)) return;
          hits = st.ceiling_hits;
        }
        errno = 0;
        expect_null(spaces_realloc(b.p, big), ENOMEM, "realloc(p, huge)");
        if (g_failed) return;
        verify_block(b, "after realloc(p, huge)");
        if (owner) {
          ChunkStats st;
          if (exact && stats_of(*slot_[k], st) && st.ceiling_hits != hits)
            fail("an impossible size counted a ceiling hit");
          errno = 0;
          expect_null(spaces_chunk_realloc(slot_[k]->h, b.p, big), ENOMEM, "chunk_realloc(p, huge)");
          if (g_failed) return;
          verify_block(b, "after chunk_realloc(p, huge)");
        }
        break;
      }
      case 5:
        expect_null(spaces_aligned_alloc(3 << (r.val % 8), 16), EINVAL, "aligned_alloc(not a power of two)");
        break;
      case 6: expect_null(spaces_aligned_alloc(0, 16), EINVAL, "aligned_alloc(0, n)"); break;
      case 7: expect_null(spaces_aligned_alloc(size_t(1) << 31, 16), ENOMEM, "aligned_alloc(2 GiB alignment)"); break;
      case 8: expect_null(spaces_aligned_alloc(64, big), ENOMEM, "aligned_alloc(64, huge)"); break;
      case 9:
      case 10:
      case 11: {
        if (!slot_[k]->live) break;
        SpacesChunk h = slot_[k]->h;
        ChunkStats st;
        if (!stats_of(*slot_[k], st)) return;
        errno = 0;
        if ((r.sel & 15) == 9) expect_null(spaces_chunk_alloc(h, big, 0), ENOMEM, "chunk_alloc(huge)");
        else if ((r.sel & 15) == 10)
          expect_null(spaces_chunk_aligned_alloc(h, 3 << (r.val % 8), 8, 0), EINVAL,
                      "chunk_aligned_alloc(bad alignment)");
        else expect_null(spaces_chunk_alloc(h, 8, 2 + (r.val & 6)), EINVAL, "chunk_alloc(bad flags)");
        ChunkStats st2;
        if (!slot_[k]->shared && stats_of(*slot_[k], st2) && st2.ceiling_hits != st.ceiling_hits)
          fail("an invalid call counted a ceiling hit");
        break;
      }
      case 12: {
        void* p = nullptr;
        int saved = errno = 1234;
        int rc = spaces_posix_memalign(&p, 4, 16);
        if (rc != EINVAL || errno != saved) fail("posix_memalign(4) = %d, errno %d", rc, errno);
        rc = spaces_posix_memalign(&p, 64, big);
        if (rc != ENOMEM || errno != saved) fail("posix_memalign(64, huge) = %d, errno %d", rc, errno);
        break;
      }
      case 13: expect_null(spaces_reallocarray(nullptr, big / 2 + 1, 4), ENOMEM, "reallocarray overflow"); break;
      case 15: op_bad_pointer(r, (r.sel >> 4 & 1) ? 1 + k : 0); break;
      default: {
        int local = 0;
        if (spaces_usable_size(nullptr) != 0) fail("usable_size(NULL) != 0");
        spaces_free(nullptr);
        spaces_free_sized(nullptr, 0);
        spaces_chunk_destroy(nullptr);
        if (spaces_owns(nullptr) || spaces_owns(&local)) fail("spaces_owns of a foreign pointer");
        if (spaces_chunk_of(&local) != nullptr) fail("spaces_chunk_of of a stack address");
        errno = 0;
        if (spaces_chunk_create(0x80) != nullptr || errno != EINVAL) fail("chunk_create(bad flags)");
        // the shared-memory calls on what is not an attached shared-memory region
        SpacesChunk other = slot_[k]->live && !slot_[k]->shm ? slot_[k]->h : nullptr;
        errno = 0;
        if (spaces_chunk_root(other) != nullptr || errno != EINVAL) fail("spaces_chunk_root(%p) did not fail", static_cast<void*>(other));
        errno = 0;
        spaces_chunk_set_root(other, &local);
        if (errno != EINVAL) fail("spaces_chunk_set_root(%p) did not fail", static_cast<void*>(other));
        errno = 0;
        if (spaces_chunk_close_shared(other) != -1 || errno != EINVAL) fail("spaces_chunk_close_shared(%p) did not fail", static_cast<void*>(other));
        break;
      }
    }
  }

  // ---- fuzz_mt: moving blocks between threads ----
  void op_handoff(const Rec& r) {
    int to = (self + 1 + r.sel % (mt_->nthreads - 1)) % mt_->nthreads;
    int owner = r.sel & 4 ? 1 + ((r.sel >> 3) & 1) : 0;  // thread heaps or a shared region
    if (owned_[owner].empty()) return;
    uint32_t id = owned_[owner][pick(r.val, owned_[owner].size())];
    Block b = recs_[id];
    if (!verify_block(b, "before handoff")) return;
    drop_block(id);
    count(kEvHandoffs);
    std::lock_guard<std::mutex> g(mt_->m[to]);
    mt_->inbox[to].push_back(b);
  }
  void op_receive(const Rec& r) {
    std::vector<Block> got;
    {
      std::lock_guard<std::mutex> g(mt_->m[self]);
      got.swap(mt_->inbox[self]);
    }
    for (Block& b : got) {
      if (!verify_block(b, "handed over")) return;
      if (r.sel & 1 || !room(b.req)) {
        spaces_free(b.p);  // a cross-thread free
      } else {
        b.lane = uint8_t(self);
        add_block(b);
      }
    }
  }
};

}  // namespace fuzz

#endif  // SPACES_FUZZ_OPS_H
