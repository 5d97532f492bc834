// shared.cpp - regions shared across processes (docs/shared.md).
//
// A shared region is one POSIX shared-memory object (/dev/shm/spaces.<name>) that every attached
// process maps at the same address, recorded in the object. Everything the allocator needs lives
// inside it, so a pointer stored in it means the same thing in every process:
//   - granule 0..meta-1: ShHeader (magic, version, sizes, the lock word, the
//     root pointer, stats, per-class lists of slabs with free blocks) and a table with one byte
//     per 64 KiB granule saying what the granule is (meta, small slab, large head, large body,
//     free).
//   - small slabs: a ShSlab header with a bitmap of allocated blocks, then blocks of one size
//     class (the core's classes from 16 bytes). Free blocks are chained through their first word.
//   - large blocks: a run of granules with a ShSlab header in the first.
// Every operation holds the region's lock, a futex word in the header that Spaces validates
// (see "the region's lock" below). The ground truth is the granule table, the slab headers and
// their bitmaps; free lists, per-class lists and counters are derived data. A process killed
// while it holds the lock is found dead by the next waiter, which takes the lock over and
// rebuilds the derived data from the ground truth (sh_repair), so at most the block being
// allocated leaks (its bit set, its pointer never returned).
// The process keeps a small table of attached regions (g_sh); a handle is the address of its
// entry, so it is process-local. free()/realloc()/usable_size of a pointer the pagemap does not
// know consult the table on their slow path, so a shared block is freed with plain free() from any
// thread of any attached process, and the thread-heap fast paths pay nothing for it.
// Trust: every process that can write the object can damage it. The geometry (base, size,
// granule counts) is validated on open and kept process-local; every table index, slab header,
// list link and free-list link read from the region is checked before it is followed or written
// through (sh_slab_ok, sh_links_read, sh_find), and damaged derived data is reported and rebuilt
// (sh_repair), so data in the region never makes Spaces read or write outside the mapping.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif


namespace spaces_core {
namespace {

constexpr uint64_t kShMagic = 0x3168735365636170ull;  // "paceSsh1"
constexpr uint32_t kShVersion = 2;  // 2: Spaces' own lock word replaced pthread_mutex_t
constexpr uint32_t kShSlabMagic = 0x53685362;         // "bShS"
constexpr size_t kShGranule = kSlabSize;
constexpr size_t kShFirst = 1024;                     // first block / large user offset in a granule
constexpr size_t kShMinCapacity = 4 * kShGranule;
constexpr size_t kShMaxCapacity = size_t(1) << 40;    // 1 TiB
constexpr size_t kShMaxAlign = kShGranule;
constexpr int kShMaxAttached = 32;
// Where regions are mapped: a window no loader, libc or kernel-chosen mmap uses by default, in
// slots of kShSlot; a region takes the first free run of slots from a hash of its name. (TSan
// only accepts application memory below 512 GiB there.)
#if defined(__SANITIZE_THREAD__)
constexpr uintptr_t kShWindowStart = 0x0010'0000'0000ull, kShWindowEnd = 0x0080'0000'0000ull;
constexpr size_t kShSlot = size_t(1) << 33;  // 8 GiB
#else
constexpr uintptr_t kShWindowStart = 0x1100'0000'0000ull, kShWindowEnd = 0x5000'0000'0000ull;
constexpr size_t kShSlot = size_t(1) << 36;  // 64 GiB
#endif
enum : uint8_t { kGFree = 0, kGMeta = 1, kGSmall = 2, kGLargeHead = 3, kGLargeBody = 4 };

struct ShSlab {
  uint32_t magic;       // kShSlabMagic once initialised
  uint16_t cls;         // small: size class
  uint16_t in_list;     // small: on its class's partial list
  uint32_t block_size;  // small
  uint32_t used;        // small: blocks allocated
  uint32_t capacity;    // small: blocks that fit
  uint32_t carved;      // small: blocks ever handed out from the start (the rest never touched)
  void* free;           // small: free blocks below `carved`, chained through their first word
  ShSlab* next;         // small: partial list
  ShSlab* prev;
  size_t run;           // large: granules of the run
  size_t user_size;     // large: usable bytes
  uintptr_t user_ptr;   // large: the pointer handed out
  uint64_t bits[64];    // small: allocated blocks, by index
};
static_assert(sizeof(ShSlab) <= kShFirst, "shared slab header");
static_assert((kShGranule - kShFirst) / 16 <= 64 * 64, "bitmap covers the smallest class");

struct ShHeader {
  uint64_t magic;  // written last by the creator
  uint32_t version;
  uint32_t header_size;
  uint64_t total;      // bytes of the object and the mapping
  uint64_t base;       // the address every process maps it at
  uint64_t granules;   // total / kShGranule
  uint64_t meta;       // granules of header + table
  uint32_t owner_uid;
  uint32_t flags;
  uint32_t lock;       // 0 free, else the owner: tid | home-namespace bit | waiters (sh_lock_of)
  uint32_t pidns;      // the creator's PID namespace id (lock owners of it can be judged dead)
  void* root;
  size_t ceiling;
  size_t live_blocks, live_bytes, footprint, peak, ceiling_hits, slabs, large_blocks;
  size_t high;         // granules below this index have been used at some time
  uint64_t repairs;    // recoveries from a dead lock holder
  ShSlab* partial[kNumSmallClasses];
  uint8_t table[1];    // `granules` bytes
};

// A process's handle of an attached region. Handles are these process-local records, not the
// region's address, so nothing an other process writes into the region is read before the
// handle is known to be a shared one: the record starts with the region prefix (internal.h),
// whose magic (kSharedMagic) the chunk functions' "is this a Chunk?" test reads from private
// memory and rejects. The geometry is copied at attach time from the validated header and used
// instead of the header's (writable by every attached process) fields.
struct ShAttach {
  uint32_t magic;     // the region prefix: kSharedMagic once the entry was used (0 before)
  unsigned flags;     // (unused: the region's flags are in its header)
  ShHeader* h;        // NULL: unused entry
  std::atomic<uint32_t> seq;  // odd while the entry is rewritten (lookups of other addresses
                              // scan every entry, and entries are reused)
  uintptr_t base, end;
  size_t granules, meta;
  uint64_t dev;       // the object (an unlinked and recreated name is another object)
  uint64_t ino;
  int refs;
  int fd;             // the object, kept open (checked against dev/ino before each use)
  bool home;          // this process is in the region's PID namespace (h->pidns, at attach)
  spaces_pressure_fn pressure;
  void* pressure_arg;
};
static_assert(__builtin_offsetof(ShAttach, magic) == __builtin_offsetof(RegionPrefix, magic) &&
                  __builtin_offsetof(ShAttach, flags) == __builtin_offsetof(RegionPrefix, flags),
              "a shared region's handle starts with the region prefix (internal.h)");
ShAttach g_sh[kShMaxAttached];
std::atomic<int> g_sh_count{0};  // entries in use at some time (the scan bound)
SpinLock g_sh_lock;               // attach and detach, held across their mmap/munmap
constexpr int kShMaxHeld = 4;     // regions one thread may hold at once (walk callbacks nest)
SPACES_TLS ShHeader* t_sh_held[kShMaxHeld];
SPACES_TLS int t_sh_nheld = 0;

// Errors found while this thread holds a region's mutex are reported after it lets the mutex go
// (spaces.h promises the handler runs with no Spaces lock held: it may allocate in the region,
// or another thread may). The first such error of a locked section is kept; ShLock delivers it.
struct ShReport {
  int code;
  const void* addr;
  const char* what;  // a string literal
};
SPACES_TLS ShReport t_sh_report;
SPACES_TLS bool t_sh_has_report = false;
void sh_report(int code, const void* addr, const char* what) {
  if (t_sh_nheld == 0) {
    report_error(code, addr, what);
  } else if (!t_sh_has_report) {
    t_sh_report = ShReport{code, addr, what};
    t_sh_has_report = true;
  }
}
void sh_deliver_report() {
  if (t_sh_nheld != 0 || !t_sh_has_report) return;
  t_sh_has_report = false;
  report_error(t_sh_report.code, t_sh_report.addr, t_sh_report.what);
}

ShAttach* sh_by_addr(uintptr_t a) {
  int n = g_sh_count.load(std::memory_order_acquire);
  for (int i = 0; i < n; i++) {
    ShAttach* at = &g_sh[i];
    uint32_t seq = at->seq.load(std::memory_order_acquire);
    if ((seq & 1) || __atomic_load_n(&at->h, __ATOMIC_ACQUIRE) == nullptr) continue;
    // (acquire loads keep the second read of seq after them: a seqlock without fences)
    uintptr_t lo = __atomic_load_n(&at->base, __ATOMIC_ACQUIRE), hi = __atomic_load_n(&at->end, __ATOMIC_ACQUIRE);
    if (at->seq.load(std::memory_order_acquire) != seq) continue;  // rewritten meanwhile: not ours
    if (a >= lo && a < hi) return at;
  }
  return nullptr;
}
// (g_sh_lock held) Brackets a rewrite of an entry for the lock-free lookups.
void sh_begin_rewrite(ShAttach* at) {
  at->seq.store(at->seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
void sh_end_rewrite(ShAttach* at) { at->seq.store(at->seq.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
ShAttach* sh_by_handle(SpacesChunk c) {
  ShAttach* at = reinterpret_cast<ShAttach*>(c);
  if (at < g_sh || at >= g_sh + kShMaxAttached || (reinterpret_cast<uintptr_t>(at) - reinterpret_cast<uintptr_t>(g_sh)) % sizeof(ShAttach) != 0)
    return nullptr;
  return __atomic_load_n(&at->h, __ATOMIC_ACQUIRE) ? at : nullptr;
}
SPACES_INLINE SpacesChunk sh_handle(ShAttach* at) { return reinterpret_cast<SpacesChunk>(at); }

SPACES_INLINE uintptr_t sh_granule_addr(const ShAttach* at, size_t g) { return at->base + g * kShGranule; }
SPACES_INLINE ShSlab* sh_slab(const ShAttach* at, size_t g) { return reinterpret_cast<ShSlab*>(sh_granule_addr(at, g)); }
SPACES_INLINE size_t sh_high(const ShAttach* at) {  // (clamped: the header is shared, hence untrusted)
  size_t high = at->h->high;
  return high < at->meta ? at->meta : high > at->granules ? at->granules : high;
}
SPACES_INLINE size_t sh_granule_of(const ShAttach* at, const void* p) {
  return (reinterpret_cast<uintptr_t>(p) - at->base) / kShGranule;
}

// The blocks a small slab of class cls holds (by the class's magic multiplier, exact for these
// sizes: no divide on the free path, which checks every slab it frees into).
SPACES_INLINE uint32_t sh_capacity(unsigned cls) {
  return uint32_t((uint64_t(kShGranule - kShFirst) * g_classes.magic[cls]) >> 32);
}

// What sh_slab_ok read of a slab, each field once: what its caller must use, never the slab's
// own copies, which a writer of the region may change after the check (session 29's audit).
struct ShSnap {
  unsigned cls;
  uint32_t carved, used;
};

// A small slab of this region that its table, magic and geometry agree on (so its fields can be
// used for arithmetic and its blocks for writes). cls: the class it must have, or -1. snap: the
// values checked (each read once), for the caller to use; the geometry follows from snap->cls.
bool sh_slab_ok(const ShAttach* at, const ShSlab* s, int cls, ShSnap* snap = nullptr) {
  uintptr_t a = reinterpret_cast<uintptr_t>(s);
  if (a < at->base + at->meta * kShGranule || a >= at->base + at->granules * kShGranule || (a - at->base) % kShGranule)
    return false;
  unsigned c = __atomic_load_n(&s->cls, __ATOMIC_RELAXED);
  if (at->h->table[sh_granule_of(at, s)] != kGSmall || __atomic_load_n(&s->magic, __ATOMIC_RELAXED) != kShSlabMagic ||
      c >= kNumSmallClasses || (cls >= 0 && c != unsigned(cls)))
    return false;
  uint32_t carved = __atomic_load_n(&s->carved, __ATOMIC_RELAXED), used = __atomic_load_n(&s->used, __ATOMIC_RELAXED);
  if (__atomic_load_n(&s->block_size, __ATOMIC_RELAXED) != class_size(c) ||
      __atomic_load_n(&s->capacity, __ATOMIC_RELAXED) != sh_capacity(c) || carved > sh_capacity(c) || used > carved)
    return false;
  if (snap) *snap = ShSnap{c, carved, used};
  return true;
}

// (the head is checked before it is written through; a bad one is dropped - repair rebuilds)
// (The list operations take the class and links as values the caller read once and checked: a
// writer of the region may change the slab's own copies between the check and the use.)
void sh_list_push(const ShAttach* at, ShSlab* s, unsigned cls) {
  ShHeader* h = at->h;
  ShSlab* head = h->partial[cls];
  if (head && !sh_slab_ok(at, head, int(cls))) {
    sh_report(SPACES_ERROR_CORRUPTED, head, "corrupted shared region metadata (slab list)");
    head = nullptr;
  }
  s->prev = nullptr;
  s->next = head;
  if (head) head->prev = s;
  h->partial[cls] = s;
  s->in_list = 1;
}
void sh_list_remove(ShHeader* h, ShSlab* s, ShSlab* prev, ShSlab* next, unsigned cls) {
  if (prev)
    prev->next = next;
  else
    h->partial[cls] = next;
  if (next) next->prev = prev;
  s->next = s->prev = nullptr;
  s->in_list = 0;
}
// The links of a slab of class cls, read once: slabs of its class (or absent). false: damaged.
struct ShLinks {
  ShSlab *prev, *next;
};
bool sh_links_read(const ShAttach* at, const ShSlab* s, unsigned cls, ShLinks* out) {
  ShSlab* prev = __atomic_load_n(&s->prev, __ATOMIC_RELAXED);
  ShSlab* next = __atomic_load_n(&s->next, __ATOMIC_RELAXED);
  *out = ShLinks{prev, next};
  return cls < kNumSmallClasses && (prev == nullptr || sh_slab_ok(at, prev, int(cls))) &&
         (next == nullptr || sh_slab_ok(at, next, int(cls)));
}

// Give granules back to the system (the object's pages are freed, not just unmapped).
void sh_discard(const ShAttach* at, size_t g, size_t n) {
  os_discard_shared(reinterpret_cast<void*>(sh_granule_addr(at, g)), n * kShGranule);
}

// Rebuild everything derived from the granule table and the slab headers: after EOWNERDEAD, and
// whenever an operation finds derived data it cannot use. Reads nothing it has not bounded.
void sh_repair(const ShAttach* at) {
  ShHeader* h = at->h;
  for (auto& p : h->partial) p = nullptr;
  h->live_blocks = h->live_bytes = h->slabs = h->large_blocks = 0;
  size_t high = sh_high(at);
  h->high = high;
  size_t used_granules = at->meta;
  for (size_t g = at->meta; g < high; g++) {
    uint8_t k = h->table[g];
    if (k == kGFree) continue;
    ShSlab* s = sh_slab(at, g);
    if (k == kGSmall) {
      // (each field read once: what was checked is what is used)
      unsigned cls = __atomic_load_n(&s->cls, __ATOMIC_RELAXED);
      uint32_t carved = __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
      size_t bs = cls < kNumSmallClasses ? class_size(cls) : 0;
      uint32_t capacity = bs ? uint32_t((kShGranule - kShFirst) / bs) : 0;
      if (s->magic != kShSlabMagic || bs == 0 || s->block_size != bs || s->capacity != capacity || carved > capacity) {
        s->magic = 0;
        h->table[g] = kGFree;  // died while setting the slab up: nothing of it was handed out
        continue;
      }
      uint32_t used = 0;
      void* free = nullptr;
      for (uint32_t i = carved; i-- > 0;) {
        if (s->bits[i >> 6] >> (i & 63) & 1) {
          used++;
        } else {
          void* b = reinterpret_cast<void*>(sh_granule_addr(at, g) + kShFirst + size_t(i) * bs);
          *static_cast<void**>(b) = free;
          free = b;
        }
      }
      s->free = free;
      s->carved = carved;
      s->used = used;
      s->in_list = 0;
      s->prev = s->next = nullptr;  // (a slab on no list has no links: sh_free_locked)
      if (used < capacity) sh_list_push(at, s, cls);
      h->slabs++;
      h->live_blocks += used;
      h->live_bytes += size_t(used) * bs;
      used_granules++;
    } else if (k == kGLargeHead) {
      // (each field read once: a writer changing `run` after the check made the walk revisit or
      // step back over granules, without end while it kept at it; session 29's audit)
      size_t run = __atomic_load_n(&s->run, __ATOMIC_RELAXED);
      size_t usz = __atomic_load_n(&s->user_size, __ATOMIC_RELAXED);
      size_t off = __atomic_load_n(&s->user_ptr, __ATOMIC_RELAXED) - reinterpret_cast<uintptr_t>(s);
      bool ok = s->magic == kShSlabMagic && run >= 1 && run <= high - g && off >= kShFirst &&
                off <= kShGranule && (off & (off - 1)) == 0 && usz == run * kShGranule - off;
      for (size_t i = 1; ok && i < run; i++) ok = h->table[g + i] == kGLargeBody;
      if (!ok) {
        s->magic = 0;
        h->table[g] = kGFree;  // (its body granules, if any, are freed as bodies without a head)
        continue;
      }
      h->large_blocks++;
      h->live_blocks++;
      h->live_bytes += usz;
      used_granules += run;
      g += run - 1;
    } else {
      h->table[g] = kGFree;  // a body without its head (a run being set up or torn down), or junk
    }
  }
  h->footprint = used_granules * kShGranule;
  if (h->peak < h->footprint) h->peak = h->footprint;
  if (h->ceiling > at->granules * kShGranule || h->ceiling == 0) h->ceiling = at->granules * kShGranule;
  h->repairs++;
}

// ---- the region's lock ------------------------------------------------------------------------
// A futex word in the header that Spaces owns entirely (glibc's robust mutex kept state Spaces
// could not validate: a writer could leave every process waiting forever on a thread id that does
// not exist, or make glibc abort on a damaged mutex kind). The word holds the owner's thread id
// (23 bits, Linux's PID_MAX_LIMIT), an 8-bit tag of its PID namespace and a waiters bit. Waiters
// sleep in slices of 10 ms; after the first slice they judge the owner: an impossible value, or
// a thread of their own PID namespace that no longer exists (or whose process is a zombie), is a
// dead owner, whose lock is taken over and the region repaired (what EOWNERDEAD used to do). An
// owner in another PID namespace cannot be judged: it is waited for. Nobody waits longer than the
// option shared_lock_timeout_ms: the operation then fails and the error is reported.
// (a plain uint32_t in the header keeps ShHeader trivially copyable for the open-time checks)
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && alignof(std::atomic<uint32_t>) == alignof(uint32_t),
              "the lock word is accessed as std::atomic<uint32_t>");
SPACES_INLINE std::atomic<uint32_t>* sh_lock_of(ShHeader* h) { return reinterpret_cast<std::atomic<uint32_t>*>(&h->lock); }
constexpr uint32_t kLkWaiters = 1u << 31;
constexpr uint32_t kLkHome = 1u << 23;     // the owner is in the region's home PID namespace
constexpr uint32_t kLkTidMask = kLkHome - 1;
constexpr uint64_t kLkSliceNs = 10000000;  // 10 ms
SPACES_TLS uint32_t t_lk_tid = 0;          // this thread's id (0: not known yet; reset in a fork child)

// This thread's word for region `at`: its id, and the home bit when this process is in the PID
// namespace the region was created in (ShAttach::home, from a full namespace-id compare).
uint32_t sh_lock_self(const ShAttach* at) {
  if (SPACES_UNLIKELY(t_lk_tid == 0)) t_lk_tid = uint32_t(os_tid()) & kLkTidMask;
  return t_lk_tid | (at->home ? kLkHome : 0);
}

enum ShLockResult { kLkTaken, kLkOwnerDied, kLkTimedOut };
ShLockResult sh_lock_word(std::atomic<uint32_t>* w, uint32_t self) {
  // Spin a little first: the lock is held for a few hundred nanoseconds, and sleeping in the
  // kernel on every contended call costs two context switches per hand-over.
  for (int spin = 0; spin < 100; spin++) {
    uint32_t expected = 0;
    if (w->load(std::memory_order_relaxed) == 0 &&
        w->compare_exchange_weak(expected, self, std::memory_order_acquire, std::memory_order_relaxed))
      return kLkTaken;
    os_cpu_relax();
  }
  uint64_t start = os_now_ns();
  uint64_t bound = uint64_t(option(kOpt_shared_lock_timeout_ms)) * 1000000u;
  // (the deadline is checked on every turn that does not take the lock: a writer of the region
  // flipping the word between our load and our CAS kept the loop on its `continue`s, past the
  // bound; session 29's audit)
  auto past = [&] { return os_now_ns() - start > bound + kLkSliceNs; };
  for (;;) {
    uint32_t v = w->load(std::memory_order_relaxed);
    if (v == 0) {  // (taken with the waiters bit: others may sleep behind us)
      if (w->compare_exchange_strong(v, self | kLkWaiters, std::memory_order_acquire, std::memory_order_relaxed))
        return kLkTaken;
      if (past()) return kLkTimedOut;
      continue;
    }
    if (!(v & kLkWaiters) && !w->compare_exchange_strong(v, v | kLkWaiters, std::memory_order_relaxed)) {
      if (past()) return kLkTimedOut;
      continue;
    }
    os_futex_wait_shared(w, v | kLkWaiters, kLkSliceNs);
    v = w->load(std::memory_order_relaxed);
    if (v == 0) {
      if (past()) return kLkTimedOut;
      continue;
    }
    uint64_t waited = os_now_ns() - start;
    if (waited >= kLkSliceNs) {
      // Only an owner of the region's home namespace can be judged, by a process of it: another
      // namespace's thread ids mean nothing here (such an owner is waited for).
      uint32_t tid = v & kLkTidMask;
      bool judged = (self & kLkHome) && (v & kLkHome);
      bool dead = tid == 0 || tid > 4194304 || (v & 0x7f000000u) != 0 ||
                  (judged && (tid == (self & kLkTidMask) || !os_thread_alive(int(tid))));
      if (dead && w->compare_exchange_strong(v, self | kLkWaiters, std::memory_order_acquire, std::memory_order_relaxed))
        return kLkOwnerDied;
    }
    if (waited > bound) return kLkTimedOut;
  }
}
// Releases only a word this thread holds (a fork child resuming a parent's locked section, or a
// word another process overwrote, is left alone).
void sh_unlock_word(std::atomic<uint32_t>* w, uint32_t self) {
  uint32_t v = w->load(std::memory_order_relaxed);
  // (bounded: a writer of the region flipping the waiters bit between our load and our CAS
  // could keep it going; given up, the next waiter times out, as on any damaged lock word)
  for (int tries = 0; (v & ~kLkWaiters) == self && tries < 64; tries++) {
    if (w->compare_exchange_weak(v, 0, std::memory_order_release, std::memory_order_relaxed)) {
      if (v & kLkWaiters) os_futex_wake_shared(w, 1);
      return;
    }
  }
}

// The header fields every operation relies on, against the geometry this process validated on
// open (the header is writable by every attached process): damaged geometry is rewritten from
// the process's copy, impossible counters are rebuilt by sh_repair; both are reported.
void sh_check_header(const ShAttach* at) {
  ShHeader* h = at->h;
  size_t G = kShGranule;
  bool geometry = h->magic == kShMagic && h->version == kShVersion && h->base == at->base &&
                  h->total == at->end - at->base && h->granules == at->granules && h->meta == at->meta;
  bool counters = h->footprint >= at->meta * G && h->footprint <= at->granules * G && h->high >= at->meta &&
                  h->high <= at->granules && h->slabs <= at->granules && h->large_blocks <= at->granules &&
                  h->live_blocks <= at->granules * (G / 16);
  if (SPACES_LIKELY(geometry && counters)) return;
  sh_report(SPACES_ERROR_CORRUPTED, h, geometry ? "corrupted shared region header (counters rebuilt)"
                                                : "corrupted shared region header (geometry restored)");
  if (!geometry) {
    h->base = at->base, h->total = at->end - at->base, h->granules = at->granules, h->meta = at->meta;
    h->version = kShVersion;
    __atomic_store_n(&h->magic, kShMagic, __ATOMIC_RELEASE);
  }
  sh_repair(at);
}

// Holds a region's lock; re-entrant for the thread that holds it (a walk callback frees). `ok`
// is false only if the lock could not be had (reported): the operation must then fail.
struct ShLock {
  ShHeader* h;
  uint32_t self;
  bool took = false;
  bool ok = true;
  explicit ShLock(const ShAttach* at) : h(at->h), self(sh_lock_self(at)) {
    for (int i = 0; i < t_sh_nheld; i++)
      if (t_sh_held[i] == h) return;
    if (t_sh_nheld == kShMaxHeld) {
      sh_report(SPACES_ERROR_CORRUPTED, h, "shared regions nested too deep in walk callbacks");
      ok = false;
      return;
    }
    ShLockResult r = sh_lock_word(sh_lock_of(h), self);
    if (r == kLkTimedOut) {
      sh_report(SPACES_ERROR_CORRUPTED, h,
                "shared region lock not released within shared_lock_timeout_ms (a live holder, or a damaged lock word)");
      ok = false;
      return;
    }
    t_sh_held[t_sh_nheld++] = h;
    took = true;
    if (r == kLkOwnerDied) sh_repair(at);  // its holder died: rebuild the derived data
    sh_check_header(at);
  }
  ~ShLock() {
    if (!took) return;
    for (int i = 0; i < t_sh_nheld; i++)
      if (t_sh_held[i] == h) t_sh_held[i] = t_sh_held[--t_sh_nheld];
    sh_unlock_word(sh_lock_of(h), self);
    sh_deliver_report();
  }
};

// n free granules in a row (the never-used tail first, else first fit), marked as bodies: the
// caller writes the header and then the head's kind. SIZE_MAX if the capacity or ceiling refuses.
size_t sh_take_granules(const ShAttach* at, size_t n) {
  ShHeader* h = at->h;
  size_t ceiling = __atomic_load_n(&h->ceiling, __ATOMIC_RELAXED);
  if (ceiling > at->granules * kShGranule) ceiling = at->granules * kShGranule;
  size_t footprint = __atomic_load_n(&h->footprint, __ATOMIC_RELAXED);
  if (n > at->granules || footprint > ceiling || n * kShGranule > ceiling - footprint) return SIZE_MAX;
  size_t high = sh_high(at);
  size_t g = SIZE_MAX;
  if (high + n <= at->granules) {
    g = high;
  } else {
    for (size_t i = at->meta, run = 0; i < at->granules; i++) {  // (granules past `high` are free)
      run = i >= high || h->table[i] == kGFree ? run + 1 : 0;
      if (run == n) {
        g = i + 1 - n;
        break;
      }
    }
  }
  if (g == SIZE_MAX) return SIZE_MAX;
  // The object is sparse: reserve its backing store for what is handed out (fallocate: no page
  // is mapped or faulted here), so a region larger than the free space of its tmpfs (64 MiB
  // /dev/shm in containers) answers NULL + ENOMEM here, never SIGBUS in the program's first write.
  // (the fd is ours only while it still names the object: a program may close fds it does not
  // own, and the number may be reused; then the old lazy behaviour is all that is left)
  OsFileId st;
  if (os_file_id(at->fd, &st) && st.dev == at->dev && st.ino == at->ino) {
    if (st.size < at->end - at->base) {  // (pages past the end would be SIGBUS)
      sh_report(SPACES_ERROR_CORRUPTED, at->h, "shared region object truncated by another process");
      return SIZE_MAX;
    }
    if (!os_reserve_shared(at->fd, g * kShGranule, n * kShGranule)) {
      sh_discard(at, g, n);
      return SIZE_MAX;
    }
  }
  for (size_t i = 0; i < n; i++) h->table[g + i] = kGLargeBody;  // (a dead process leaves bodies
  if (g + n > high) h->high = g + n;                               // without a head: repair frees them)
  h->footprint += n * kShGranule;
  if (h->footprint > h->peak) h->peak = h->footprint;
  return g;
}
void sh_release_granules(const ShAttach* at, size_t g, size_t n) {
  ShHeader* h = at->h;
  if (g < at->meta || g >= at->granules || n > at->granules - g) return;  // (callers pass checked values)
  h->table[g] = kGLargeBody;  // headless first, so a dead process leaves granules repair frees
  sh_discard(at, g, n);
  for (size_t i = 0; i < n; i++) h->table[g + i] = kGFree;
  h->footprint -= n * kShGranule;
}

ShSlab* sh_new_slab(const ShAttach* at, unsigned cls) {
  size_t g = sh_take_granules(at, 1);
  if (g == SIZE_MAX) return nullptr;
  ShSlab* s = sh_slab(at, g);
  s->magic = 0;
  s->cls = uint16_t(cls);
  s->block_size = class_size(cls);
  s->capacity = uint32_t((kShGranule - kShFirst) / s->block_size);
  s->used = 0;
  s->carved = 0;
  s->free = nullptr;
  memset(s->bits, 0, sizeof s->bits);
  s->run = 1;
  s->user_size = 0;
  s->user_ptr = 0;
  s->magic = kShSlabMagic;
  at->h->table[g] = kGSmall;
  sh_list_push(at, s, cls);
  at->h->slabs++;
  return s;
}

unsigned sh_class(size_t size) { return class_of(size < 16 ? 16 : size); }

// The index of the block that starts n bytes past the first block of a slab of small class cls,
// or a value at or above every capacity when no block starts there: no divide (internal.h,
// slab_exact_index). cls must be the slab's class as sh_slab_ok checked it, so the inverse comes
// from this process's own table, never from the shared memory.
SPACES_INLINE uint32_t sh_exact_index(unsigned cls, uintptr_t n) {
  if (n >= kShGranule || cls >= kNumSmallClasses) return UINT32_MAX;  // (cls re-read: a hostile writer)
  uint32_t x = uint32_t(n) * g_classes.inv[cls];
  unsigned k = g_classes.shift[cls];
  return (x >> k) | (x << ((32 - k) & 31));
}

void* sh_alloc_small(const ShAttach* at, unsigned cls) {
  ShHeader* h = at->h;
  // (The slab's geometry comes from the class, and each field of it is read once: a writer of
  // the region changing one between its check and its use changes nothing, session 28's review.)
  const size_t bs = class_size(cls);
  const uint32_t capacity = uint32_t((kShGranule - kShFirst) / bs);
  for (int attempt = 0;; attempt++) {
    ShSlab* s = __atomic_load_n(&h->partial[cls], __ATOMIC_RELAXED);
    ShLinks links{nullptr, nullptr};
    uint32_t carved = 0, used = 0;
    bool ok = s == nullptr || sh_slab_ok(at, s, int(cls));
    if (ok && s) {
      carved = __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
      used = __atomic_load_n(&s->used, __ATOMIC_RELAXED);
      ok = carved <= capacity && used < capacity && sh_links_read(at, s, cls, &links);
    }
    void* b = ok && s ? __atomic_load_n(&s->free, __ATOMIC_RELAXED) : nullptr;
    uintptr_t first = ok && s ? reinterpret_cast<uintptr_t>(s) + kShFirst : 0;
    uint32_t i = 0;
    if (ok && b) {  // the link must be a free block of this slab: in range, not allocated
      uintptr_t a = reinterpret_cast<uintptr_t>(b);
      i = a >= first ? sh_exact_index(cls, a - first) : UINT32_MAX;
      ok = i < carved && !(s->bits[i >> 6] >> (i & 63) & 1);
    }
    if (!ok) {
      if (attempt > 0) return nullptr;  // (repaired and still unusable: refuse, do not follow)
      sh_report(SPACES_ERROR_CORRUPTED, s, "corrupted shared region metadata (write after free?)");
      sh_repair(at);
      continue;
    }
    if (s == nullptr) {
      if ((s = sh_new_slab(at, cls)) == nullptr) return nullptr;
      first = reinterpret_cast<uintptr_t>(s) + kShFirst;
    }
    if (b) {
      s->free = *static_cast<void**>(b);  // (checked when it is popped in turn)
    } else {
      if (carved >= capacity) {  // a full slab on the list: derived data is wrong
        if (attempt > 0) return nullptr;
        sh_repair(at);
        continue;
      }
      i = carved;
      s->carved = carved + 1;
      b = reinterpret_cast<void*>(first + size_t(i) * bs);
    }
    s->bits[i >> 6] |= uint64_t(1) << (i & 63);
    s->used = used + 1;
    if (used + 1 == capacity) sh_list_remove(h, s, links.prev, links.next, cls);  // (a new slab: never full here)
    h->live_blocks++;
    h->live_bytes += bs;
    return b;
  }
}

void* sh_alloc_large(const ShAttach* at, size_t size, size_t align) {
  size_t off = align <= kShFirst ? kShFirst : align;
  if (size == 0) size = 1;  // (a block must start inside the run, not at its end)
  if (size > at->granules * kShGranule) return nullptr;
  size_t n = (off + size + kShGranule - 1) / kShGranule;
  size_t g = sh_take_granules(at, n);
  if (g == SIZE_MAX) return nullptr;
  ShSlab* s = sh_slab(at, g);
  uintptr_t user = reinterpret_cast<uintptr_t>(s) + off;  // (returned from here, never read back
  size_t usz = n * kShGranule - off;                      //  from the header a writer may change)
  s->run = n;
  s->user_ptr = user;
  s->user_size = usz;
  s->magic = kShSlabMagic;
  at->h->table[g] = kGLargeHead;  // last: the run is now a block
  at->h->large_blocks++;
  at->h->live_blocks++;
  at->h->live_bytes += usz;
  return reinterpret_cast<void*>(user);
}

// Under the lock. NULL (errno ENOMEM) when the capacity or ceiling refuses.
void* sh_alloc_locked(const ShAttach* at, size_t align, size_t size) {
  if (align <= 16 && size <= kSmallMax) return sh_alloc_small(at, sh_class(size));
  if (align > 16 && size <= kSmallMax && align <= kShFirst) {
    size_t rounded = (size + align - 1) & ~(align - 1);
    unsigned cls = sh_class(rounded ? rounded : align);
    if (rounded <= kSmallMax && class_size(cls) % align == 0) return sh_alloc_small(at, cls);  // slots align
  }
  return sh_alloc_large(at, size, align);
}

// What p is in the region: the small slab (and block index), or the large head; false (reported)
// if p is not a live block.
// Every field is what sh_find checked, read once: the callers use these, never the header's
// copies (session 29's audit: a free re-read `run` after the check, and a writer could make it
// discard and zero far past the mapping).
struct ShBlock {
  ShSlab* s;
  uint32_t index;  // small: the block's index
  unsigned cls;    // small: the slab's class
  uint32_t used;   // small: the slab's count
  bool large;
  size_t size;     // usable bytes (small: the class's size)
  size_t run;      // large: granules of the run
};
bool sh_find(const ShAttach* at, const void* p, ShBlock* out, const char* what) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  // (a - 1: a block aligned to 64 KiB starts at the end of its head granule)
  size_t g = (a - 1 - at->base) / kShGranule;
  uint8_t k = a > at->base && g < at->granules ? at->h->table[g] : uint8_t(kGFree);
  ShSlab* s = sh_slab(at, g);
  ShSnap sn;
  size_t run = 0, usz = 0;
  if (k == kGLargeHead) {
    run = __atomic_load_n(&s->run, __ATOMIC_RELAXED);
    usz = __atomic_load_n(&s->user_size, __ATOMIC_RELAXED);
  }
  if (k == kGSmall && sh_slab_ok(at, s, -1, &sn)) {
    uintptr_t first = reinterpret_cast<uintptr_t>(s) + kShFirst;
    uint32_t i = a >= first ? sh_exact_index(sn.cls, a - first) : UINT32_MAX;  // (no divide)
    if (i < sn.carved) {  // (carved <= the class's capacity: the bit lies in the slab's map)
      if (s->bits[i >> 6] >> (i & 63) & 1) {
        *out = ShBlock{s, i, sn.cls, sn.used, false, class_size(sn.cls), 0};
        return true;
      }
      sh_report(SPACES_ERROR_DOUBLE_FREE, p, "double free (shared region)");
      return false;
    }
  } else if (k == kGLargeHead && __atomic_load_n(&s->magic, __ATOMIC_RELAXED) == kShSlabMagic &&
             __atomic_load_n(&s->user_ptr, __ATOMIC_RELAXED) == a && run >= 1 && run <= at->granules - g &&
             usz == run * kShGranule - (a - reinterpret_cast<uintptr_t>(s))) {
    *out = ShBlock{s, 0, 0, 0, true, usz, run};
    return true;
  } else if (k == kGFree && a == reinterpret_cast<uintptr_t>(s) + kShFirst) {
    sh_report(SPACES_ERROR_DOUBLE_FREE, p, "double free (shared region)");
    return false;
  }
  sh_report(SPACES_ERROR_INVALID_FREE, p, what);
  return false;
}

void sh_free_locked(const ShAttach* at, const ShBlock& b, void* p) {
  ShHeader* h = at->h;
  ShSlab* s = b.s;
  if (b.large) {
    h->large_blocks--;
    h->live_blocks--;
    h->live_bytes -= b.size;
    sh_release_granules(at, sh_granule_of(at, s), b.run);  // (the header goes with the pages)
    return;
  }
  unsigned cls = b.cls;
  uint32_t used = b.used;  // (>= 1: the block's bit is set, and used >= the bits a repair counts)
  bool was_full = used == sh_capacity(cls);
  // The links the list operations below write through are read once and checked whatever
  // in_list says, and a slab on no list has none: a writer of the region could clear in_list and
  // aim the links at the freeing process's own memory (until session 28 they were then written
  // through).
  ShLinks links;
  if (!sh_links_read(at, s, cls, &links) || (!s->in_list && (links.prev || links.next))) {
    sh_report(SPACES_ERROR_CORRUPTED, s, "corrupted shared region metadata (write after free?)");
    s->bits[b.index >> 6] &= ~(uint64_t(1) << (b.index & 63));
    sh_repair(at);  // rebuilds lists and counts from the bitmaps, this free included
    return;
  }
  if (used == 0) {  // (a count a writer changed since the check: the bitmaps are the truth)
    sh_report(SPACES_ERROR_CORRUPTED, s, "corrupted shared region metadata (slab count)");
    s->bits[b.index >> 6] &= ~(uint64_t(1) << (b.index & 63));
    sh_repair(at);
    return;
  }
  s->bits[b.index >> 6] &= ~(uint64_t(1) << (b.index & 63));
  *static_cast<void**>(p) = s->free;
  s->free = p;
  h->live_blocks--;
  h->live_bytes -= class_size(cls);
  s->used = used - 1;
  if (was_full) sh_list_push(at, s, cls);  // (then it has a block, so the release below is not)
  else if (used == 1 && (links.prev || links.next)) {  // empty and not its class's only slab: release it
    sh_list_remove(h, s, links.prev, links.next, cls);
    h->slabs--;
    sh_release_granules(at, sh_granule_of(at, s), 1);
  }
}

bool sh_valid_name(const char* name, char* path) {
  if (name == nullptr || name[0] == '\0' || name[0] == '.') return false;
  size_t n = 0;
  for (; name[n]; n++) {
    char ch = name[n];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-';
    if (!ok || n >= 200) return false;
  }
  memcpy(path, "/spaces.", 8);
  memcpy(path + 8, name, n + 1);
  return true;
}

SPACES_INLINE SpacesChunk sh_fail(int e) {
  errno = e;
  return nullptr;
}

// g_sh_lock held. The geometry comes from the validated header copy `hd`, never from the mapping.
ShAttach* sh_register(ShHeader* h, const ShHeader& hd, const OsFileId& st, int fd) {
  int n = g_sh_count.load(std::memory_order_relaxed);
  ShAttach* at = nullptr;
  for (int i = 0; i < n && at == nullptr; i++)
    if (g_sh[i].h == nullptr) at = &g_sh[i];
  if (at == nullptr) {
    if (n == kShMaxAttached) return nullptr;
    at = &g_sh[n];
  }
  sh_begin_rewrite(at);
  at->magic = kSharedMagic;
  at->flags = 0;
  __atomic_store_n(&at->base, uintptr_t(hd.base), __ATOMIC_RELEASE);  // (after the odd seq)
  __atomic_store_n(&at->end, uintptr_t(hd.base + hd.total), __ATOMIC_RELEASE);
  at->granules = hd.granules;
  at->meta = hd.meta;
  at->dev = st.dev;
  at->ino = st.ino;
  at->refs = 1;
  at->fd = fd;
  uint32_t ns = os_pidns_id();
  at->home = ns != 0 && ns == h->pidns;
  at->pressure = nullptr;
  at->pressure_arg = nullptr;
  __atomic_store_n(&at->h, h, __ATOMIC_RELEASE);
  sh_end_rewrite(at);
  if (at == &g_sh[n]) g_sh_count.store(n + 1, std::memory_order_release);
  return at;
}

uint64_t sh_hash(const char* s) {
  uint64_t x = 1469598103934665603ull;
  for (; *s; s++) x = (x ^ uint8_t(*s)) * 1099511628211ull;
  return x;
}

}  // namespace

// ---- by address: free.cpp, alloc.cpp, region.cpp -----------------------------------------------------------

bool shared_owns(const void* p) { return sh_by_addr(reinterpret_cast<uintptr_t>(p)) != nullptr; }

// free() of a pointer inside an attached region; false if p is in none.
bool shared_free(void* p) {
  ShAttach* at = sh_by_addr(reinterpret_cast<uintptr_t>(p));
  if (at == nullptr) return false;
  ShLock l(at);
  ShBlock b;
  if (l.ok && sh_find(at, p, &b, "invalid free (pointer inside a shared region, not a block)")) sh_free_locked(at, b, p);
  return true;
}

// usable size of p (0 and reported if not a live block); false if p is in no attached region.
bool shared_usable(const void* p, size_t* out) {
  ShAttach* at = sh_by_addr(reinterpret_cast<uintptr_t>(p));
  if (at == nullptr) return false;
  ShLock l(at);
  ShBlock b;
  *out = l.ok && sh_find(at, p, &b, "usable_size of a pointer that is not a live block") ? b.size : 0;
  return true;
}

// ---- the region operations of a shared region (region.cpp: the interface, the dispatch) ------
struct SharedRegion {
  using Record = ShAttach;
  static void* alloc(ShAttach* at, size_t align, size_t size, bool zero);
  static void* realloc(ShAttach* at, void* p, size_t size);
  static void reset(ShAttach* at);
  static void destroy(ShAttach* at);
  static int set_ceiling(ShAttach* at, size_t bytes);
  static size_t ceiling(ShAttach* at);
  static int stats(ShAttach* at, struct spaces_chunk_stats* st);
  static int walk(ShAttach* at, spaces_walk_fn fn, void* arg);
  static void set_pressure(ShAttach* at, spaces_pressure_fn fn, void* arg);
};

// Allocation in a shared region; `zero` clears the block. NULL + errno.
void* SharedRegion::alloc(ShAttach* at, size_t align, size_t size, bool zero) {
  if (align < 16) align = 16;
  if ((align & (align - 1)) != 0 || align > kShMaxAlign) {
    errno = EINVAL;
    return nullptr;
  }
  for (int attempt = 0;; attempt++) {
    void* p = nullptr;
    {
      ShLock l(at);
      if (!l.ok) {
        errno = EDEADLK;  // (the lock could not be had: reported)
        return nullptr;
      }
      p = sh_alloc_locked(at, align, size);
    }
    if (p) {
      if (zero) memset(p, 0, size);
      return p;
    }
    spaces_pressure_fn fn = __atomic_load_n(&at->pressure, __ATOMIC_ACQUIRE);
    if (attempt == 0 && fn && fn(sh_handle(at), size, at->pressure_arg)) continue;  // (no lock held)
    {
      ShLock l(at);
      if (l.ok) at->h->ceiling_hits++;  // once per refused call, whatever the handler did
    }
    errno = ENOMEM;
    return nullptr;
  }
}

// realloc within the region (moves only when the block would not fit or would waste half).
void* SharedRegion::realloc(ShAttach* at, void* p, size_t size) {
  size_t usable = 0;
  {
    ShLock l(at);
    ShBlock b;
    if (!l.ok || !sh_find(at, p, &b, "realloc of a pointer that is not a live block")) {
      errno = l.ok ? EINVAL : EDEADLK;
      return nullptr;
    }
    usable = b.size;
    if (realloc_in_place(size, usable, false)) return p;
  }
  void* n = alloc(at, 16, size, false);
  if (n == nullptr) return nullptr;
  memcpy(n, p, size < usable ? size : usable);
  shared_free(p);
  return n;
}
void* shared_realloc_any(void* p, size_t size) {
  ShAttach* at = sh_by_addr(reinterpret_cast<uintptr_t>(p));
  if (at == nullptr) {  // (closed by another thread since the caller looked)
    errno = EINVAL;
    return nullptr;
  }
  return SharedRegion::realloc(at, p, size);
}
SpacesChunk shared_chunk_of(const void* p) {
  ShAttach* at = sh_by_addr(reinterpret_cast<uintptr_t>(p));
  return at ? sh_handle(at) : nullptr;
}

int SharedRegion::stats(ShAttach* at, struct spaces_chunk_stats* st) {
  ShLock l(at);
  if (!l.ok) return -1;
  ShHeader* h = at->h;
  st->flags = h->flags;
  st->live_blocks = h->live_blocks;
  st->live_bytes = h->live_bytes;
  st->footprint = h->footprint;
  st->peak_footprint = h->peak;
  st->ceiling = h->ceiling;
  st->ceiling_hits = h->ceiling_hits;
  st->slabs = h->slabs;
  st->large_blocks = h->large_blocks;
  return l.ok ? 0 : -1;
}

int SharedRegion::walk(ShAttach* at, spaces_walk_fn fn, void* arg) {
  ShLock l(at);
  if (!l.ok) return -1;
  ShHeader* h = at->h;
  for (size_t g = at->meta; g < sh_high(at); g++) {
    uint8_t k = h->table[g];
    ShSlab* s = sh_slab(at, g);
    ShSnap sn;
    if (k == kGSmall && sh_slab_ok(at, s, -1, &sn)) {
      // (the class, its size and the bound are what the check read, once: a writer changing the
      // header meanwhile could make the walk read past the slab and hand out pointers far from
      // it; after each callback, which may free the slab's last block and reuse its granule,
      // the slab is checked again: session 29's audit)
      uintptr_t first = reinterpret_cast<uintptr_t>(s) + kShFirst;
      size_t bs = class_size(sn.cls);
      bool same = true;
      for (uint32_t w = 0; same && w < (sn.carved + 63) / 64; w++) {
        for (uint64_t bits = s->bits[w]; bits; bits &= bits - 1) {  // a snapshot: fn may free
          uint32_t i = w * 64 + uint32_t(__builtin_ctzll(bits));
          if (i >= sn.carved) break;
          int r = fn(reinterpret_cast<void*>(first + i * bs), bs, arg);
          if (r) return r;
          ShSnap now;
          if (!sh_slab_ok(at, s, int(sn.cls), &now)) {
            same = false;
            break;
          }
          if (now.carved < sn.carved) sn.carved = now.carved;
        }
      }
    } else if (k == kGLargeHead && __atomic_load_n(&s->magic, __ATOMIC_RELAXED) == kShSlabMagic) {
      size_t run = __atomic_load_n(&s->run, __ATOMIC_RELAXED);
      size_t usz = __atomic_load_n(&s->user_size, __ATOMIC_RELAXED);
      uintptr_t user = __atomic_load_n(&s->user_ptr, __ATOMIC_RELAXED);
      uintptr_t off = user - reinterpret_cast<uintptr_t>(s);
      if (run >= 1 && run <= at->granules - g && user > reinterpret_cast<uintptr_t>(s) && off <= kShGranule &&
          usz == run * kShGranule - off) {
        int r = fn(reinterpret_cast<void*>(user), usz, arg);
        if (r) return r;
        g += run - 1;
      }
    }
  }
  return 0;
}

void SharedRegion::reset(ShAttach* at) {
  ShLock l(at);
  if (!l.ok) return;
  ShHeader* h = at->h;
  __atomic_store_n(&h->root, nullptr, __ATOMIC_RELEASE);  // first: never a root into discarded pages
  size_t high = sh_high(at);
  if (high > at->meta) {
    sh_discard(at, at->meta, high - at->meta);  // headers gone (zero) before the table says free
    memset(h->table + at->meta, kGFree, high - at->meta);
  }
  for (auto& p : h->partial) p = nullptr;
  h->high = at->meta;
  h->footprint = at->meta * kShGranule;
  h->live_blocks = h->live_bytes = h->slabs = h->large_blocks = 0;
}

void SharedRegion::destroy(ShAttach* at) {
  report_error(SPACES_ERROR_INVALID_FREE, sh_handle(at), "destroy of a shared region (reset, close or unlink it)");
}

int SharedRegion::set_ceiling(ShAttach* at, size_t bytes) {
  ShLock l(at);
  if (!l.ok) return -1;
  size_t cap = at->granules * kShGranule;
  at->h->ceiling = bytes == 0 || bytes > cap ? cap : bytes;
  return 0;
}
size_t SharedRegion::ceiling(ShAttach* at) {
  ShLock l(at);
  return l.ok ? at->h->ceiling : 0;
}
void SharedRegion::set_pressure(ShAttach* at, spaces_pressure_fn fn, void* arg) {
  at->pressure_arg = arg;
  __atomic_store_n(&at->pressure, fn, __ATOMIC_RELEASE);
}

void shared_fork_lock() { g_sh_lock.lock(); }
void shared_fork_unlock() { g_sh_lock.unlock(); }
// The child's thread id is its own, and it may be in another PID namespace
// (unshare(CLONE_NEWPID) before fork): its lock words are recomputed.
static void sh_after_fork_child() {
  t_sh_nheld = 0;  // a fork from a walk callback: the child holds no region's lock
  t_lk_tid = 0;
  uint32_t ns = os_pidns_id();
  int n = g_sh_count.load(std::memory_order_relaxed);
  for (int i = 0; i < n; i++)
    if (ShHeader* h = g_sh[i].h) g_sh[i].home = ns != 0 && ns == h->pidns;
}
void shared_fork_child() {
  g_sh_lock.unlock();
  sh_after_fork_child();
}
void shared_fork_child_unlocked() { sh_after_fork_child(); }

}  // namespace spaces_core

using namespace spaces_core;

extern "C" {

SPACES_API SpacesChunk spaces_chunk_create_shared(const char* name, size_t capacity, unsigned flags) noexcept {
  char path[256];
  if (!sh_valid_name(name, path) || (flags & ~(SPACES_SHARED_GROUP | SPACES_SHARED_ALL)) != 0 ||
      capacity < kShMinCapacity || capacity > kShMaxCapacity)
    return sh_fail(EINVAL);
  if (!ensure_init()) return sh_fail(ENOMEM);
  size_t total = (capacity + kShGranule - 1) & ~(kShGranule - 1);
  size_t granules = total / kShGranule;
  size_t meta = (offsetof(ShHeader, table) + granules + kShGranule - 1) / kShGranule;
  if (meta + 1 > granules) return sh_fail(EINVAL);
  unsigned mode = (flags & SPACES_SHARED_ALL) ? 0666 : (flags & SPACES_SHARED_GROUP) ? 0660 : 0600;
  int fd = os_shm_create(path, mode);
  if (fd < 0) return nullptr;  // EEXIST, EACCES, ...
  auto fail = [&](int e) {
    os_close(fd);
    os_shm_unlink(path);
    return sh_fail(e);
  };
  OsFileId st;
  if (!os_shm_prepare(fd, mode, total) || !os_file_id(fd, &st)) return fail(ENOMEM);
  // The address: the first free run of slots from the name's hash.
  size_t need = (total + kShSlot - 1) / kShSlot;
  size_t slots = (kShWindowEnd - kShWindowStart) / kShSlot;
  if (need > slots) return fail(EINVAL);
  uint64_t start = sh_hash(name);
  LockGuard g(g_sh_lock);
  void* m = nullptr;
  for (size_t k = 0; k < 64 && m == nullptr; k++) {
    uintptr_t want = kShWindowStart + ((start + k * 7919) % (slots - need + 1)) * kShSlot;
    void* r = os_map_shared(fd, total, reinterpret_cast<void*>(want));
    if (r != nullptr)
      m = r;
    else if (errno != EEXIST)  // (EEXIST: something is mapped there; try the next slot)
      return fail(ENOMEM);
  }
  if (m == nullptr) return fail(EADDRINUSE);
  if (!os_reserve_shared(fd, 0, meta * kShGranule)) {  // (no room for the header in the tmpfs)
    os_unmap(m, total);
    return fail(ENOMEM);
  }
  ShHeader* h = static_cast<ShHeader*>(m);
  h->version = kShVersion;
  h->header_size = uint32_t(offsetof(ShHeader, table));
  h->total = total;
  h->base = reinterpret_cast<uintptr_t>(m);
  h->granules = granules;
  h->meta = meta;
  h->owner_uid = uint32_t(os_euid());
  h->flags = flags;
  h->lock = 0;
  h->pidns = os_pidns_id();
  h->root = nullptr;
  h->ceiling = total;
  h->footprint = h->peak = meta * kShGranule;
  h->high = meta;
  memset(h->table, kGMeta, meta);
  ShHeader hd;
  memcpy(&hd, h, offsetof(ShHeader, lock));
  hd.base = h->base, hd.total = total, hd.granules = granules, hd.meta = meta;
  __atomic_store_n(&h->magic, kShMagic, __ATOMIC_RELEASE);
  ShAttach* at = sh_register(h, hd, st, fd);
  if (at == nullptr) {
    os_unmap(m, total);
    os_close(fd);
    os_shm_unlink(path);
    return sh_fail(ENOMEM);  // more than kShMaxAttached regions attached
  }
  return sh_handle(at);
}

SPACES_API SpacesChunk spaces_chunk_open_shared(const char* name, unsigned flags) noexcept {
  char path[256];
  if (!sh_valid_name(name, path) || (flags & ~SPACES_SHARED_ALL) != 0) return sh_fail(EINVAL);
  if (!ensure_init()) return sh_fail(ENOMEM);
  int fd = os_shm_open(path);
  if (fd < 0) return nullptr;  // ENOENT, EACCES
  OsFileId st;
  if (!os_file_id(fd, &st)) {
    os_close(fd);
    return sh_fail(EACCES);
  }
  if (!(flags & SPACES_SHARED_ALL) && st.uid != os_euid()) {
    os_close(fd);
    return sh_fail(EACCES);
  }
  // Read the header with pread, validate it, only then map at the address it names.
  constexpr size_t kHd = offsetof(ShHeader, table);
  ShHeader hd;
  memset(&hd, 0, sizeof hd);
  bool ok = false;
  for (int tries = 0; tries < 200; tries++) {  // a creator may be before ftruncate or its magic
    ok = st.size >= kHd && os_pread(fd, &hd, kHd, 0) == long(kHd);
    if (ok && hd.magic != 0) break;
    os_sleep_us(1000);
    os_file_id(fd, &st);
  }
  ok = ok && hd.magic == kShMagic && hd.version == kShVersion && hd.header_size == kHd &&
       hd.total == st.size && hd.total % kShGranule == 0 && hd.total <= kShMaxCapacity &&
       hd.granules == hd.total / kShGranule && hd.meta >= 1 && hd.meta < hd.granules &&
       hd.meta == (kHd + hd.granules + kShGranule - 1) / kShGranule && hd.base % kShGranule == 0 &&
       hd.base >= kShWindowStart && hd.base <= kShWindowEnd - hd.total && hd.owner_uid == st.uid;
  if (!ok) {
    os_close(fd);
    return sh_fail(EINVAL);  // not a Spaces region, another version, or damaged: never followed
  }
  LockGuard g(g_sh_lock);  // (lookup, map and register as one step against other opens and closes)
  if (ShAttach* at = sh_by_addr(hd.base)) {
    os_close(fd);
    if (at->base != hd.base || at->end != hd.base + hd.total || at->dev != st.dev || at->ino != st.ino)
      return sh_fail(EADDRINUSE);  // another object there (say, a region unlinked and created again)
    at->refs++;                    // already attached here: the same handle
    return sh_handle(at);
  }
  void* m = os_map_shared(fd, hd.total, reinterpret_cast<void*>(hd.base));
  int e = errno;
  if (m == nullptr) {
    os_close(fd);
    return sh_fail(e == EEXIST ? EADDRINUSE : ENOMEM);
  }
  ShHeader* h = static_cast<ShHeader*>(m);
  if (memcmp(h, &hd, offsetof(ShHeader, lock)) != 0) {  // changed under us: refuse
    os_unmap(m, hd.total);
    os_close(fd);
    return sh_fail(EINVAL);
  }
  ShAttach* at = sh_register(h, hd, st, fd);
  if (at == nullptr) {
    os_unmap(m, hd.total);
    os_close(fd);
    return sh_fail(ENOMEM);
  }
  return sh_handle(at);
}

SPACES_API int spaces_chunk_close_shared(SpacesChunk c) noexcept {
  LockGuard g(g_sh_lock);
  ShAttach* at = sh_by_handle(c);
  if (at == nullptr) {
    errno = EINVAL;
    return -1;
  }
  if (--at->refs > 0) return 0;
  sh_begin_rewrite(at);
  __atomic_store_n(&at->h, static_cast<ShHeader*>(nullptr), __ATOMIC_RELEASE);
  sh_end_rewrite(at);
  os_unmap(reinterpret_cast<void*>(at->base), at->end - at->base);
  OsFileId st;
  if (os_file_id(at->fd, &st) && st.dev == at->dev && st.ino == at->ino) os_close(at->fd);
  return 0;
}

SPACES_API int spaces_chunk_unlink_shared(const char* name) noexcept {
  char path[256];
  if (!sh_valid_name(name, path)) {
    errno = EINVAL;
    return -1;
  }
  return os_shm_unlink(path);  // ENOENT, EACCES
}

SPACES_API void spaces_chunk_set_root(SpacesChunk c, void* p) noexcept {
  ShAttach* at = sh_by_handle(c);
  if (at == nullptr) {
    errno = EINVAL;
    return;
  }
  __atomic_store_n(&at->h->root, p, __ATOMIC_RELEASE);
}

SPACES_API void* spaces_chunk_root(SpacesChunk c) noexcept {
  ShAttach* at = sh_by_handle(c);
  if (at == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  return __atomic_load_n(&at->h->root, __ATOMIC_ACQUIRE);
}

}  // extern "C"
