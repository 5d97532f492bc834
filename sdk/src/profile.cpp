// profile.cpp - sampled heap profiling: which call sites hold memory (SPACES_PROFILE).
//
// Sampling. Allocations form one byte stream per thread; a byte is a sampling point with
// probability 1/R (R = profile_sample, 512 KiB by default), so the distances between points are
// exponential with mean R and an allocation of s bytes is sampled with probability
// 1 - exp(-s/R): exactly the "heap_v2" model google-pprof undoes when it reads the profile.
// t_prof_left counts down the bytes to the next point (prof_tick); the draw is here.
//
// Where counting happens. With profiling off (the default) nothing here is reached: g_prof_on is
// false, set once at initialisation, and the fast paths are untouched. On, a thread heap's
// direct[] table stays empty (heap_set_cur), so every small malloc takes heap_malloc_slow, which
// counts it and, unless it is a sample, pops the block the fast path would have (about 30
// instructions more per malloc; malloc's inline path could only count by costing everyone); medium and large blocks always take a slow path; regions hand out no inline window,
// so each region allocation reaches chunk_alloc, which counts it. Shared-memory regions are not
// sampled (their blocks live in another allocator that other processes share).
//
// Where samples live, and how a free finds its record:
//   - a sampled small or medium block of a thread heap comes from g_prof_heap, a heap owned by
//     whoever holds g_prof_lock, whose slabs never match a thread in the free fast path: its
//     free reaches heap_free_slow, where prof_free_hook (owner == &g_prof_heap) ends the record
//     and frees the block as the heap's owner, under the lock (so an emptied slab goes back at
//     once). Other blocks never meet the profiler on their way back.
//   - a sampled large block stays where it is; its header's `sampled` byte sends the hook here.
//   - a sampled region block stays in its region (ceilings, walks and destroy are unchanged);
//     while any region block is recorded (g_region_live), frees of region blocks look up the
//     record; every region slab's fast_owner is 0 while profiling (Heap::fast_tp), so even a
//     captured region's frees reach the hook. reset/destroy drop the region's records at once.
// Records: a bucket per (call stack, region, size band) with allocation and free totals (kept
// for the process's life, like gperftools' heap profiler), and a hash of live sampled blocks
// (address -> bucket, size). Both under g_prof_lock, in memory mapped here (never malloc).
//
// Stacks: os_backtrace (libgcc's unwinder over .eh_frame: frame pointers not needed), leaving
// out the leading frames inside Spaces' own shared object. Statically linked, Spaces' frames
// stay at the top of each stack (docs/debugging.md says how to read such a profile).
//
// Output: gperftools' legacy heap profile text ("heap profile: ... @ heap_v2/R", one line per
// bucket, then MAPPED_LIBRARIES: and /proc/self/maps), which `google-pprof --text prog file`
// reads. Written at exit, by spaces_profile_dump(), and on profile_signal; a dump also writes
// one file per region, so a profile can be split by region. The signal handler dumps only if it
// gets the lock at once; otherwise the holder dumps when it lets go.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

#include <stdlib.h>

namespace spaces_core {

bool g_prof_on = false;
Heap g_prof_heap;
SPACES_TLS int64_t t_prof_left = 0;

namespace {

constexpr int kProfDepth = 32;         // frames kept per sample
constexpr size_t kBucketHeads = 16384;  // hash heads of the bucket table
constexpr size_t kPrefixMax = 200;
constexpr size_t kRegionName = 32;

struct Bucket {
  Bucket* next;                 // hash chain
  uint64_t hash;
  uint32_t depth, band;         // frames; size band (8 per power of two)
  const Chunk* chunk;           // the region (NULL: malloc and friends)
  uint64_t allocs, frees, alloc_bytes, free_bytes;
  char region[kRegionName];     // its name when first sampled ("" outside regions)
  void* pcs[kProfDepth];
};

struct Live {
  uintptr_t addr;  // 0: empty slot
  Bucket* b;
  uint64_t size;
};

SpinLock g_prof_lock;
std::atomic<int> g_dump_pending{0};
uint64_t g_rate = 524288;
char g_prefix[kPrefixMax + 1];
std::atomic<unsigned> g_dump_seq{0};
uintptr_t g_self_lo = 0, g_self_hi = 0;  // Spaces' own code (frames left out)

Bucket** g_heads = nullptr;   // kBucketHeads chains
uint8_t* g_store = nullptr;   // bucket storage: bump-allocated from mapped pieces
size_t g_store_left = 0;
Live* g_live = nullptr;
size_t g_live_cap = 0, g_live_n = 0;
size_t g_region_live = 0;     // live records of region blocks (written locked, read unlocked)

SPACES_TLS uint64_t t_rng = 0;
SPACES_TLS bool t_busy = false;  // inside the profiler (an allocation it causes is not sampled)

// ln(x) for x in (0, 1], to a few parts per million (no libm: the library does not link it).
double prof_ln(double x) {
  uint64_t bits;
  memcpy(&bits, &x, 8);
  int e = int((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((uint64_t(1) << 52) - 1)) | (uint64_t(1023) << 52);
  double m;
  memcpy(&m, &bits, 8);  // x = m * 2^e, m in [1, 2)
  double s = (m - 1) / (m + 1), s2 = s * s;
  double lnm = 2 * s * (1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 / 11)))));
  return e * 0.6931471805599453 + lnm;
}

int64_t prof_draw() {
  uint64_t x = t_rng;  // xorshift64*
  x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
  t_rng = x;
  double u = double(((x * 0x2545F4914F6CDD1Dull) >> 11) + 1) * (1.0 / 9007199254740992.0);  // (0, 1]
  double d = -prof_ln(u) * double(g_rate);
  return d < 1 ? 1 : d > 4e18 ? int64_t(4e18) : int64_t(d);
}

uint32_t size_band(uint64_t size) {
  if (size < 16) return uint32_t(size);
  unsigned lg = 63 - __builtin_clzll(size);
  return (lg << 3) | uint32_t((size >> (lg - 3)) & 7);
}

void* meta_map(size_t bytes) { return os_map((bytes + 4095) & ~size_t(4095), false); }

Bucket* bucket_new() {
  if (g_store_left < sizeof(Bucket)) {
    g_store = static_cast<uint8_t*>(meta_map(size_t(1) << 20));
    if (g_store == nullptr) return nullptr;
    g_store_left = size_t(1) << 20;
  }
  Bucket* b = reinterpret_cast<Bucket*>(g_store);
  g_store += sizeof(Bucket);
  g_store_left -= sizeof(Bucket);
  return b;
}

Bucket* bucket_find(void* const* pcs, int depth, uint64_t size, Chunk* c) {  // lock held
  if (g_heads == nullptr) {
    g_heads = static_cast<Bucket**>(meta_map(kBucketHeads * sizeof(Bucket*)));
    if (g_heads == nullptr) return nullptr;
  }
  uint32_t band = size_band(size);
  uint64_t h = 0x84222325cbf29ce4ull ^ reinterpret_cast<uintptr_t>(c) ^ band;
  for (int i = 0; i < depth; i++) h = (h ^ reinterpret_cast<uintptr_t>(pcs[i])) * 0x100000001b3ull;
  h ^= h >> 29;
  Bucket** head = &g_heads[h & (kBucketHeads - 1)];
  for (Bucket* b = *head; b; b = b->next)
    if (b->hash == h && b->depth == uint32_t(depth) && b->band == band && b->chunk == c &&
        memcmp(b->pcs, pcs, depth * sizeof(void*)) == 0)
      return b;
  Bucket* b = bucket_new();
  if (b == nullptr) return nullptr;
  memset(b, 0, sizeof *b);
  b->hash = h;
  b->depth = uint32_t(depth);
  b->band = band;
  b->chunk = c;
  memcpy(b->pcs, pcs, depth * sizeof(void*));
  if (c) {
    const char* name = __atomic_load_n(&c->name, __ATOMIC_ACQUIRE);
    strncpy(b->region, name && *name ? name : "unnamed", kRegionName - 1);
  }
  b->next = *head;
  *head = b;
  return b;
}

SPACES_INLINE size_t live_home(uintptr_t a) { return size_t(((a >> 4) * 0x9E3779B97F4A7C15ull) >> 20) & (g_live_cap - 1); }

bool live_grow() {  // lock held
  size_t cap = g_live_cap ? g_live_cap * 2 : 4096;
  Live* t = static_cast<Live*>(meta_map(cap * sizeof(Live)));
  if (t == nullptr) return false;
  Live* old = g_live;
  size_t old_cap = g_live_cap;
  g_live = t;
  g_live_cap = cap;
  for (size_t i = 0; i < old_cap; i++) {
    if (old[i].addr == 0) continue;
    size_t j = live_home(old[i].addr);
    while (g_live[j].addr) j = (j + 1) & (cap - 1);
    g_live[j] = old[i];
  }
  if (old) os_unmap(old, (old_cap * sizeof(Live) + 4095) & ~size_t(4095));
  return true;
}

size_t live_find(uintptr_t a) {  // slot of a, or g_live_cap
  if (g_live_cap == 0) return 0;
  size_t j = live_home(a);
  while (g_live[j].addr && g_live[j].addr != a) j = (j + 1) & (g_live_cap - 1);
  return g_live[j].addr == a ? j : g_live_cap;
}

// Removes slot i (linear probing: later entries of the cluster move back, no tombstones).
void live_remove(size_t i) {
  if (g_live[i].b->chunk) __atomic_fetch_sub(&g_region_live, 1, __ATOMIC_RELAXED);
  g_live_n--;
  size_t mask = g_live_cap - 1;
  for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
    if (g_live[j].addr == 0) break;
    size_t k = live_home(g_live[j].addr);
    bool movable = i <= j ? (k <= i || k > j) : (k <= i && k > j);
    if (movable) {
      g_live[i] = g_live[j];
      i = j;
    }
  }
  g_live[i].addr = 0;
}

void live_erase(size_t i) {  // the block was freed
  g_live[i].b->frees++;
  g_live[i].b->free_bytes += g_live[i].size;
  live_remove(i);
}

bool live_put(uintptr_t a, Bucket* b, uint64_t size) {  // lock held; false: out of memory
  if ((g_live_n + 1) * 2 > g_live_cap && !live_grow()) return false;
  size_t j = live_find(a);
  if (j != g_live_cap) live_erase(j);  // a stale record (its free was not seen): it ends now
  j = live_home(a);
  while (g_live[j].addr) j = (j + 1) & (g_live_cap - 1);
  g_live[j] = Live{a, b, size};
  g_live_n++;
  if (b->chunk) __atomic_fetch_add(&g_region_live, 1, __ATOMIC_RELAXED);
  return true;
}

void live_insert(uintptr_t a, Bucket* b, uint64_t size) {  // a new sample
  if (!live_put(a, b, size)) return;  // (not recorded)
  b->allocs++;
  b->alloc_bytes += size;
}

int prof_stack(void** pcs, const void* ra) { return os_backtrace(pcs, kProfDepth, g_self_lo, g_self_hi, ra); }

void record_locked(void* p, size_t size, Chunk* c, void* const* pcs, int depth) {
  Bucket* b = bucket_find(pcs, depth, size, c);
  if (b) live_insert(reinterpret_cast<uintptr_t>(p), b, size);
}

void prof_unlock();

// ---- output -----------------------------------------------------------------------------------
struct ProfOut {
  int fd;
  bool ok;
  size_t len;
  char buf[16384];
  void flush() {
    if (ok && len) ok = os_write_all(fd, buf, len);
    len = 0;
  }
  void put(const char* s, size_t n) {
    while (n > 0) {
      if (len == sizeof buf) flush();
      size_t k = n < sizeof buf - len ? n : sizeof buf - len;
      memcpy(buf + len, s, k);
      len += k, s += k, n -= k;
    }
  }
  void str(const char* s) { put(s, strlen(s)); }
  void dec(unsigned long long v, int width = 0) {
    char d[24];
    char* e = format_dec(d, v);
    for (int pad = width - int(e - d); pad > 0; pad--) put(" ", 1);
    put(d, size_t(e - d));
  }
  void hex(uintptr_t v) {
    char d[24];
    char* e = format_hex(d, v);  // ("0x...")
    put(d, size_t(e - d));
  }
};
ProfOut g_out;  // (under g_prof_lock)

enum Filter { kAll, kOutside, kRegion };
bool wanted(const Bucket* b, Filter f, const char* name) {
  if (f == kAll) return true;
  if (f == kOutside) return b->chunk == nullptr;
  return b->chunk != nullptr && strcmp(b->region, name) == 0;
}

template <class Fn>
void for_each_bucket(Fn fn) {
  if (g_heads == nullptr) return;
  for (size_t i = 0; i < kBucketHeads; i++)
    for (Bucket* b = g_heads[i]; b; b = b->next) fn(b);
}

bool write_locked(int fd, Filter f, const char* name) {
  ProfOut& o = g_out;
  o.fd = fd, o.ok = true, o.len = 0;
  unsigned long long in_n = 0, in_b = 0, al_n = 0, al_b = 0;
  for_each_bucket([&](const Bucket* b) {
    if (!wanted(b, f, name)) return;
    in_n += b->allocs - b->frees, in_b += b->alloc_bytes - b->free_bytes;
    al_n += b->allocs, al_b += b->alloc_bytes;
  });
  o.str("heap profile: ");
  o.dec(in_n, 6), o.str(": "), o.dec(in_b, 8), o.str(" [");
  o.dec(al_n, 6), o.str(": "), o.dec(al_b, 8), o.str("] @ heap_v2/"), o.dec(g_rate), o.str("\n");
  for_each_bucket([&](const Bucket* b) {
    if (!wanted(b, f, name) || b->allocs == 0) return;
    o.dec(b->allocs - b->frees, 6), o.str(": "), o.dec(b->alloc_bytes - b->free_bytes, 8), o.str(" [");
    o.dec(b->allocs, 6), o.str(": "), o.dec(b->alloc_bytes, 8), o.str("] @");
    for (uint32_t i = 0; i < b->depth; i++) o.str(" "), o.hex(reinterpret_cast<uintptr_t>(b->pcs[i]));
    o.str("\n");
  });
  o.str("\nMAPPED_LIBRARIES:\n");
  int m = os_open_read("/proc/self/maps");
  if (m >= 0) {
    char chunk[4096];
    long r;
    while ((r = os_read(m, chunk, sizeof chunk)) > 0) o.put(chunk, size_t(r));
    os_close(m);
  }
  o.flush();
  return o.ok;
}

bool write_file_locked(const char* path, Filter f, const char* name) {
  int fd = os_create_file(path);
  if (fd < 0) return false;
  bool ok = write_locked(fd, f, name);
  os_close(fd);
  return ok;
}

// "<base>.region.<name>.heap" with the name's characters outside [A-Za-z0-9_-] as '_'.
void region_path(char* out, size_t cap, const char* base, const char* suffix, const char* name) {
  out[0] = 0;
  strncat(out, base, cap - 1);
  strncat(out, suffix, cap - 1 - strlen(out));
  size_t n = strlen(out);
  for (const char* s = name; *s && n + 1 < cap; s++, n++)
    out[n] = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ? *s : '_';
  out[n] = 0;
  strncat(out, ".heap", cap - 1 - strlen(out));
}

// The profile at path, then (when regions were sampled) <base>.malloc.heap and one
// <base>.region.<name>.heap per region name, base being path less a trailing ".heap".
bool dump_locked(const char* path) {
  bool ok = write_file_locked(path, kAll, nullptr);
  char base[kPrefixMax + 64];
  base[0] = 0;
  strncat(base, path, sizeof base - 1);
  size_t bl = strlen(base);
  if (bl > 5 && strcmp(base + bl - 5, ".heap") == 0) base[bl - 5] = 0;
  const char* names[64];
  int nn = 0;
  for_each_bucket([&](const Bucket* b) {
    if (b->chunk == nullptr) return;
    for (int i = 0; i < nn; i++)
      if (strcmp(names[i], b->region) == 0) return;
    if (nn < 64) names[nn++] = b->region;
  });
  if (nn == 0) return ok;
  char p[sizeof base + kRegionName + 32];
  region_path(p, sizeof p, base, ".malloc", "");
  ok &= write_file_locked(p, kOutside, nullptr);
  for (int i = 0; i < nn; i++) {
    region_path(p, sizeof p, base, ".region.", names[i]);
    ok &= write_file_locked(p, kRegion, names[i]);
  }
  return ok;
}

// <prefix>.<pid>.<seq>.heap
void default_path(char* out, size_t cap) {
  char d[24];
  out[0] = 0;
  strncat(out, g_prefix, cap - 1);
  strncat(out, ".", cap - 1 - strlen(out));
  format_dec(d, (unsigned long long)os_pid());
  strncat(out, d, cap - 1 - strlen(out));
  unsigned seq = g_dump_seq.fetch_add(1, std::memory_order_relaxed) + 1;
  char s4[8] = {char('0' + seq / 1000 % 10), char('0' + seq / 100 % 10), char('0' + seq / 10 % 10),
                char('0' + seq % 10), 0};
  strncat(out, ".", cap - 1 - strlen(out));
  strncat(out, s4, cap - 1 - strlen(out));
  strncat(out, ".heap", cap - 1 - strlen(out));
}

void prof_lock() { g_prof_lock.lock(); }
void prof_unlock() {
  g_prof_lock.unlock();
  // A signal asked for a dump while the lock was held (perhaps by the interrupted thread).
  if (g_dump_pending.load(std::memory_order_relaxed) && g_dump_pending.exchange(0) && g_prefix[0]) {
    char path[kPrefixMax + 64];
    default_path(path, sizeof path);
    g_prof_lock.lock();
    dump_locked(path);
    g_prof_lock.unlock();
  }
}

void prof_on_signal(int) {
  int saved = errno;
  if (g_prof_lock.try_lock()) {
    char path[kPrefixMax + 64];
    default_path(path, sizeof path);
    dump_locked(path);
    g_prof_lock.unlock();
  } else {
    g_dump_pending.store(1, std::memory_order_relaxed);
  }
  errno = saved;
}

void prof_dump_at_exit() {
  if (g_prof_on && g_prefix[0]) spaces_profile_dump(nullptr);
}

}  // namespace

// SPACES_PROFILE=<path prefix> turns sampling on (the option profile_sample is R).
void prof_init() {
  const char* prefix = getenv("SPACES_PROFILE");
  if (prefix == nullptr || *prefix == 0) return;
  g_prefix[0] = 0;
  strncat(g_prefix, prefix, kPrefixMax);
  g_rate = uint64_t(option(kOpt_profile_sample));
  heap_init_chunk(&g_prof_heap, nullptr);
  g_prof_heap.state = kHeapActive;
  g_prof_heap.tp = 1;       // no thread's pointer: its blocks' frees take the remote path
  g_prof_heap.fast_tp = 0;  // and never the fast one
  uintptr_t lo, hi;
  if (os_object_range(reinterpret_cast<const void*>(&prof_init), &lo, &hi)) g_self_lo = lo, g_self_hi = hi;
  g_prof_on = true;
}

// After the core is usable (these may allocate): the dump at exit and the signal.
void prof_start() {
  if (!g_prof_on) return;
  atexit(prof_dump_at_exit);
  int sig = int(option(kOpt_profile_signal));
  if (sig > 0) os_on_signal(sig, prof_on_signal);
}

bool prof_tick_slow() {
  if (t_busy) {
    t_prof_left = 1;  // (the profiler's own allocations are not sampled)
    return false;
  }
  if (t_rng == 0) {  // this thread's first allocation: the first point is a draw away
    t_rng = os_random() | 1;
    t_prof_left += prof_draw();
    if (t_prof_left > 0) return false;
  }
  t_prof_left = prof_draw();
  return true;
}

void* prof_malloc_sampled(size_t size, bool zero, const void* ra) {
  void* pcs[kProfDepth];
  t_busy = true;
  int depth = prof_stack(pcs, ra);
  void* p;
  if (size > kMediumMax) {  // a large block: recorded where it is
    p = large_alloc(size, 0, zero, nullptr);
    if (p) {
      slab_find(p)->sampled = 1;
      prof_lock();
      record_locked(p, size, nullptr, pcs, depth);
      prof_unlock();
    }
  } else {
    prof_lock();
    p = heap_malloc_slow(&g_prof_heap, size, zero);
    if (p) record_locked(p, size, nullptr, pcs, depth);
    prof_unlock();
  }
  t_busy = false;
  return p;
}

void prof_record(void* p, size_t size, Chunk* c, const void* ra) {
  void* pcs[kProfDepth];
  t_busy = true;
  int depth = prof_stack(pcs, ra);
  Slab* s = slab_find(p);
  if (s && (s->kind == kSlabLargeRun || s->kind == kSlabDirect)) s->sampled = 1;
  prof_lock();
  record_locked(p, size, c, pcs, depth);
  prof_unlock();
  t_busy = false;
}

bool prof_free_hook(Slab* s, void* p) {
  uintptr_t key = reinterpret_cast<uintptr_t>(p);
  switch (s->kind) {
    case kSlabSmall:
      if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == &g_prof_heap) {
        // A sample of a thread heap: freed here as g_prof_heap's owner (the lock), so its slab
        // is reused or released at once rather than holding remote frees until the next sample.
        Block* b = small_block_of(s, p, "invalid free");
        if (b == nullptr) return true;  // (reported)
        prof_lock();
        size_t j = live_find(reinterpret_cast<uintptr_t>(b));
        if (j != g_live_cap) live_erase(j);
        unsigned cls = s->cls;
        free_local_slow(&g_prof_heap, s, b, p);  // (an emptied slab that is not current is released:
                                                  // s may be unmapped, unless it is current)
        if (g_prof_heap.cur[cls] == s && s->used == 1) {  // the current one, empty (used: its phantom)
          heap_set_cur(&g_prof_heap, cls, &g_empty_slab);
          heap_release_slab(&g_prof_heap, s, false);  // (to its cache of empty slabs, bounded)
        }
        prof_unlock();
        return true;
      }
      if (s->chunk == nullptr || __atomic_load_n(&g_region_live, __ATOMIC_RELAXED) == 0) return false;
      break;
    case kSlabLargeRun:
    case kSlabDirect:
      if (!s->sampled) return false;
      break;
    case kSlabBump:
      if (__atomic_load_n(&g_region_live, __ATOMIC_RELAXED) == 0) return false;
      break;
    default:
      return false;
  }
  prof_lock();
  size_t j = live_find(key);
  if (j != g_live_cap) live_erase(j);
  prof_unlock();
  return false;
}

// realloc of a sampled large block returned n != old (size bytes): either the same block moved
// (mremap: its header, `sampled` included, moved with it) or a new block (malloc, copy, free: the
// new one has its own record if it was sampled). Either way the old record ends; a moved block
// is recorded again at its new size with the same stack, as a realloc that moves counts as a
// free and an allocation.
void prof_realloc_moved(void* old, void* n, size_t size) {
  prof_lock();
  size_t i = live_find(reinterpret_cast<uintptr_t>(old));
  if (i != g_live_cap) {
    Bucket* b = g_live[i].b;
    live_erase(i);
    Slab* h = slab_find(n);
    if (live_find(reinterpret_cast<uintptr_t>(n)) == g_live_cap && h != nullptr &&
        (h->kind == kSlabLargeRun || h->kind == kSlabDirect) && h->sampled &&
        h->user_ptr == reinterpret_cast<uintptr_t>(n)) {
      Chunk* c = const_cast<Chunk*>(b->chunk);
      Bucket* nb = bucket_find(b->pcs, int(b->depth), size, c);
      if (nb) live_insert(reinterpret_cast<uintptr_t>(n), nb, size);
    }
  }
  prof_unlock();
}

void prof_forget_chunk(Chunk* c) {
  if (!g_prof_on || __atomic_load_n(&g_region_live, __ATOMIC_RELAXED) == 0) return;
  prof_lock();
  for (size_t i = 0; i < g_live_cap; i++) {
    while (g_live[i].addr && g_live[i].b->chunk == c) live_erase(i);  // (may pull the next one in)
  }
  prof_unlock();
}

void prof_fork_lock() {
  if (g_prof_on) g_prof_lock.lock();
}
void prof_fork_unlock() {
  if (g_prof_on) g_prof_lock.unlock();
}
void prof_fork_child() {
  if (g_prof_on) g_prof_lock.reset();
}

}  // namespace spaces_core

using namespace spaces_core;

extern "C" {

SPACES_API int spaces_profile_active(void) noexcept {
  ensure_init();
  return g_prof_on ? 1 : 0;
}

SPACES_API int spaces_profile_write(int fd, const char* region) noexcept {
  ensure_init();
  if (!g_prof_on || fd < 0) {
    errno = g_prof_on ? EBADF : EINVAL;
    return -1;
  }
  Filter f = region == nullptr ? kAll : *region == 0 ? kOutside : kRegion;
  prof_lock();
  bool ok = write_locked(fd, f, region);
  prof_unlock();
  if (!ok) errno = EIO;
  return ok ? 0 : -1;
}

SPACES_API int spaces_profile_dump(const char* path) noexcept {
  ensure_init();
  if (!g_prof_on || (path == nullptr && g_prefix[0] == 0)) {
    errno = EINVAL;
    return -1;
  }
  char def[kPrefixMax + 64];
  if (path == nullptr) {
    default_path(def, sizeof def);
    path = def;
  }
  prof_lock();
  bool ok = dump_locked(path);
  prof_unlock();
  if (!ok) errno = EIO;
  return ok ? 0 : -1;
}

}  // extern "C"
