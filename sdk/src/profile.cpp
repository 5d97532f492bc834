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
//     free reaches free_slow (free.cpp), where prof_free_hook (owner == &g_prof_heap) ends the record
//     and frees the block as the heap's owner, under the lock (so an emptied slab goes back at
//     once). Other blocks never meet the profiler on their way back.
//   - a sampled large block stays where it is; its header's `sampled` byte sends the hook here;
//     its realloc goes through prof_large_realloc (the record follows the block, at its new size).
//   - a sampled region block stays in its region (ceilings, walks and destroy are unchanged);
//     while a region has recorded blocks (Chunk::prof_samples), frees of its blocks look up the
//     record; every region slab's fast_owner is 0 while profiling (Heap::fast_tp), so even a
//     captured region's frees reach the hook. reset/destroy drop the region's records at once.
//   - small requests aligned beyond their size class are counted but not sampled (the sample
//     passes to the thread's next allocation): a sample's slab would accept interior pointers.
// Records: a bucket per (call stack, size band, region name) with allocation and free totals
// (kept for the process's life, like gperftools' heap profiler), and a hash of live sampled
// blocks (address -> bucket, size, region). Under g_prof_lock, in memory mapped here (never
// malloc). Nothing under it calls out (no error report, no user callback): a report that a
// sampled block's free finds is made after the lock is let go.
//
// Stacks: os_backtrace (libgcc's unwinder over .eh_frame: frame pointers not needed), from the
// frame the slow path returns to (__builtin_return_address: the program's, for malloc and new),
// less Spaces' own frames still on top when it is its own shared object.
//
// Output: gperftools' legacy heap profile text ("heap profile: ... @ heap_v2/R", one line per
// bucket, then MAPPED_LIBRARIES: and /proc/self/maps), which `google-pprof --text prog file`
// reads. Written at exit, by spaces_profile_dump(), and on profile_signal; a dump also writes
// one file per region name, so a profile can be split by region. A profile is rendered into
// mapped memory under g_prof_lock and written without it (g_dump_lock: one dump at a time). The
// signal handler dumps only if neither lock is held; otherwise the next thread to let go of
// g_prof_lock, or the running dump when it ends, writes it (service_pending).
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
constexpr size_t kPathMax = 4096;
constexpr size_t kRegionName = 128;     // a region's name is kept (and matched) up to 127 bytes

struct Bucket {
  Bucket* next;                 // hash chain
  uint64_t hash;
  uint32_t depth, band;         // frames; size band (8 per power of two)
  bool in_region;               // a region's block (region: its name, "unnamed" for none)
  uint64_t allocs, frees, alloc_bytes, free_bytes;
  char region[kRegionName];
  void* pcs[kProfDepth];
};

struct Live {
  uintptr_t addr;  // 0: empty slot
  Bucket* b;
  uint64_t size;
  Chunk* chunk;    // the region the block is in (its reset/destroy ends the record)
};

SpinLock g_prof_lock;  // the records, the buckets and g_prof_heap (rendering a profile reads them)
SpinLock g_dump_lock;  // one dump at a time, held while its files are written (not g_prof_lock)
std::atomic<int> g_dump_pending{0};
uint64_t g_rate = 524288;
char g_prefix[kPathMax];
std::atomic<unsigned> g_dump_seq{0};
uintptr_t g_self_lo = 0, g_self_hi = 0;  // Spaces' own code (frames left out)

Bucket** g_heads = nullptr;   // kBucketHeads chains
uint8_t* g_store = nullptr;   // bucket storage: bump-allocated from mapped pieces
size_t g_store_left = 0;
Live* g_live = nullptr;
size_t g_live_cap = 0, g_live_n = 0;
char g_path[kPathMax], g_base[kPathMax], g_file[kPathMax];  // (dumps: under g_dump_lock)

SPACES_TLS uint64_t t_rng = 0;
SPACES_TLS bool t_busy = false;  // inside the profiler (an allocation it causes is not sampled)
SPACES_TLS bool t_locked = false;  // this thread holds g_prof_lock (prof_lock/prof_unlock)

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

void* meta_map(size_t bytes) { return os_map((bytes + 4095) & ~size_t(4095)); }

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

// A region's name as the profile keeps it (region: NULL outside regions).
void region_key(const Chunk* c, char* out) {
  out[0] = 0;
  if (c == nullptr) return;
  const char* name = __atomic_load_n(&c->name, __ATOMIC_ACQUIRE);
  strncat(out, name && *name ? name : "unnamed", kRegionName - 1);
}

// The bucket of (stack, size band, region name): regions are told apart by name, so a region
// struct recycled for another region never mixes their samples.
Bucket* bucket_find(void* const* pcs, int depth, uint64_t size, bool in_region, const char* region) {  // lock held
  if (g_heads == nullptr) {
    g_heads = static_cast<Bucket**>(meta_map(kBucketHeads * sizeof(Bucket*)));
    if (g_heads == nullptr) return nullptr;
  }
  uint32_t band = size_band(size);
  uint64_t h = 0x84222325cbf29ce4ull ^ band ^ (in_region ? 0x9e3779b97f4a7c15ull : 0);
  for (const char* r = region; *r; r++) h = (h ^ uint8_t(*r)) * 0x100000001b3ull;
  for (int i = 0; i < depth; i++) h = (h ^ reinterpret_cast<uintptr_t>(pcs[i])) * 0x100000001b3ull;
  h ^= h >> 29;
  Bucket** head = &g_heads[h & (kBucketHeads - 1)];
  for (Bucket* b = *head; b; b = b->next)
    if (b->hash == h && b->depth == uint32_t(depth) && b->band == band && b->in_region == in_region &&
        strcmp(b->region, region) == 0 && memcmp(b->pcs, pcs, depth * sizeof(void*)) == 0)
      return b;
  Bucket* b = bucket_new();
  if (b == nullptr) return nullptr;
  memset(b, 0, sizeof *b);
  b->hash = h;
  b->depth = uint32_t(depth);
  b->band = band;
  b->in_region = in_region;
  strcpy(b->region, region);
  memcpy(b->pcs, pcs, depth * sizeof(void*));
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
  if (Chunk* c = g_live[i].chunk) __atomic_store_n(&c->prof_samples, c->prof_samples - 1, __ATOMIC_RELAXED);
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

bool live_put(uintptr_t a, Bucket* b, uint64_t size, Chunk* c) {  // lock held; false: out of memory
  if ((g_live_n + 1) * 2 > g_live_cap && !live_grow()) return false;
  size_t j = live_find(a);
  if (j != g_live_cap) live_erase(j);  // a stale record (its free was not seen): it ends now
  j = live_home(a);
  while (g_live[j].addr) j = (j + 1) & (g_live_cap - 1);
  g_live[j] = Live{a, b, size, c};
  g_live_n++;
  if (c) __atomic_store_n(&c->prof_samples, c->prof_samples + 1, __ATOMIC_RELAXED);
  return true;
}

void live_insert(uintptr_t a, Bucket* b, uint64_t size, Chunk* c) {  // a new sample
  if (!live_put(a, b, size, c)) return;  // (not recorded)
  b->allocs++;
  b->alloc_bytes += size;
}

int prof_stack(void** pcs, const void* ra) { return os_backtrace(pcs, kProfDepth, g_self_lo, g_self_hi, ra); }

void record_locked(void* p, size_t size, Chunk* c, void* const* pcs, int depth) {
  // A sampled malloc(0) counts as 1 byte: google-pprof scales each bucket by its bytes per
  // allocation, and a bucket of zero-byte samples alone (the stack of a malloc(0)) made it stop on
  // a division by zero (profile.google_pprof's stress run, about one run in ten).
  if (size == 0) size = 1;
  char region[kRegionName];
  region_key(c, region);
  Bucket* b = bucket_find(pcs, depth, size, c != nullptr, region);
  if (b) live_insert(reinterpret_cast<uintptr_t>(p), b, size, c);
}

bool dump_default();
void service_pending();

void prof_lock() {
  g_prof_lock.lock();
  t_locked = true;
}
void prof_unlock() {
  t_locked = false;
  g_prof_lock.unlock();
  if (SPACES_UNLIKELY(g_dump_pending.load(std::memory_order_relaxed))) service_pending();
}

// A signal asked for a dump when it could not write one (the interrupted thread may have held a
// lock): the next thread to let go of the profiler's lock writes it, unless a dump is running,
// which looks again when it ends.
void service_pending() {
  while (g_dump_pending.load(std::memory_order_relaxed)) {
    if (!g_dump_lock.try_lock()) return;
    if (g_dump_pending.exchange(0)) dump_default();
    g_dump_lock.unlock();
  }
}

// ---- output -----------------------------------------------------------------------------------
// A profile is rendered into memory mapped for it under the lock, and written after: a slow
// reader of the descriptor (a pipe, a socket) never holds up allocation.
struct Text {
  char* buf;
  size_t cap, len;
  bool ok;
  void put(const char* s, size_t n) {
    if (len + n > cap) {
      ok = false;
      return;
    }
    memcpy(buf + len, s, n);
    len += n;
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

enum Filter { kAll, kOutside, kRegion };
bool wanted(const Bucket* b, Filter f, const char* name) {
  if (f == kAll) return true;
  if (f == kOutside) return !b->in_region;
  return b->in_region && strncmp(b->region, name, kRegionName - 1) == 0;
}

template <class Fn>
void for_each_bucket(Fn fn) {
  if (g_heads == nullptr) return;
  for (size_t i = 0; i < kBucketHeads; i++)
    for (Bucket* b = g_heads[i]; b; b = b->next) fn(b);
}

// The profile's text up to MAPPED_LIBRARIES: (inclusive), in a fresh mapping; lock held.
// NULL: out of memory.
Text render_locked(Filter f, const char* name) {
  size_t lines = 0;
  unsigned long long in_n = 0, in_b = 0, al_n = 0, al_b = 0;
  for_each_bucket([&](const Bucket* b) {
    if (!wanted(b, f, name)) return;
    lines++;
    in_n += b->allocs - b->frees, in_b += b->alloc_bytes - b->free_bytes;
    al_n += b->allocs, al_b += b->alloc_bytes;
  });
  Text t{nullptr, (lines * (64 + kProfDepth * 19) + 256 + 4095) & ~size_t(4095), 0, true};
  t.buf = static_cast<char*>(meta_map(t.cap));
  if (t.buf == nullptr) {
    t.ok = false;
    return t;
  }
  t.str("heap profile: ");
  t.dec(in_n, 6), t.str(": "), t.dec(in_b, 8), t.str(" [");
  t.dec(al_n, 6), t.str(": "), t.dec(al_b, 8), t.str("] @ heap_v2/"), t.dec(g_rate), t.str("\n");
  for_each_bucket([&](const Bucket* b) {
    if (!wanted(b, f, name) || b->allocs == 0) return;
    t.dec(b->allocs - b->frees, 6), t.str(": "), t.dec(b->alloc_bytes - b->free_bytes, 8), t.str(" [");
    t.dec(b->allocs, 6), t.str(": "), t.dec(b->alloc_bytes, 8), t.str("] @");
    for (uint32_t i = 0; i < b->depth; i++) t.str(" "), t.hex(reinterpret_cast<uintptr_t>(b->pcs[i]));
    t.str("\n");
  });
  t.str("\nMAPPED_LIBRARIES:\n");
  return t;
}

// Writes the rendered text, then /proc/self/maps; unmaps the text. false: errno says why.
bool write_text(int fd, Text& t) {
  bool ok = t.ok && os_write_all(fd, t.buf, t.len);
  if (t.buf) os_unmap(t.buf, t.cap);
  if (!t.ok) errno = ENOMEM;
  if (!ok) return false;
  int m = os_open_read("/proc/self/maps");
  if (m >= 0) {
    char chunk[2048];
    long r;
    while (ok && (r = os_read(m, chunk, sizeof chunk)) > 0) ok = os_write_all(fd, chunk, size_t(r));
    os_close(m);
  }
  return ok;
}

// g_dump_lock held: renders under g_prof_lock, writes without it.
bool write_file(const char* path, Filter f, const char* name) {
  g_prof_lock.lock();
  Text t = render_locked(f, name);
  g_prof_lock.unlock();
  int fd = os_create_file(path);
  bool ok = fd >= 0;
  if (ok) {
    ok = write_text(fd, t);
    int e = errno;
    os_close(fd);
    errno = e;
  } else if (t.buf) {
    os_unmap(t.buf, t.cap);
  }
  return ok;
}

// out = base + middle + name's characters outside [A-Za-z0-9_-] as '_' + ".heap"; false when it
// would not fit (ENAMETOOLONG). A name that had to change gets "~" and 8 hex digits of a hash
// of the name before ".heap", so that two names that change to the same ("a b", "a/b" and
// "a_b") keep files of their own (until session 28 the last written replaced the others).
bool region_path(char* out, const char* base, const char* middle, const char* name) {
  size_t n = strlen(base), m = strlen(middle), k = strlen(name);
  if (n + m + k + 15 > kPathMax) {
    errno = ENAMETOOLONG;
    return false;
  }
  memcpy(out, base, n);
  memcpy(out + n, middle, m);
  n += m;
  bool changed = false;
  uint32_t hash = 2166136261u;  // (FNV-1a)
  for (const char* s = name; *s; s++) {
    bool kept = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_';
    changed |= !kept;
    out[n++] = kept ? *s : '_';
    hash = (hash ^ uint8_t(*s)) * 16777619u;
  }
  if (changed) {
    out[n++] = '~';
    for (int shift = 28; shift >= 0; shift -= 4) out[n++] = "0123456789abcdef"[(hash >> shift) & 15];
  }
  memcpy(out + n, ".heap", 6);
  return true;
}

// The profile at path, then (when regions were sampled) <base>.malloc.heap and one
// <base>.region.<name>.heap per region name, base being path less a trailing ".heap".
// g_dump_lock held; the path must not be g_base or g_file.
bool dump(const char* path) {
  size_t bl = strlen(path);
  if (bl + 1 > kPathMax) {
    errno = ENAMETOOLONG;
    return false;
  }
  memcpy(g_base, path, bl + 1);
  if (!write_file(path, kAll, nullptr)) return false;
  if (bl > 5 && strcmp(g_base + bl - 5, ".heap") == 0) g_base[bl - 5] = 0;
  const char* names[64];
  int nn = 0;
  g_prof_lock.lock();
  for_each_bucket([&](const Bucket* b) {
    if (!b->in_region) return;
    for (int i = 0; i < nn; i++)
      if (strcmp(names[i], b->region) == 0) return;
    if (nn < 64) names[nn++] = b->region;  // (buckets live for the process's life)
  });
  g_prof_lock.unlock();
  if (nn == 0) return true;
  bool ok = region_path(g_file, g_base, ".malloc", "") && write_file(g_file, kOutside, nullptr);
  for (int i = 0; i < nn && ok; i++) ok = region_path(g_file, g_base, ".region.", names[i]) && write_file(g_file, kRegion, names[i]);
  return ok;
}

// <prefix>.<pid>.<seq>.heap into g_path; g_dump_lock held.
bool default_path() {
  char d[24];
  format_dec(d, (unsigned long long)os_pid());
  unsigned seq = g_dump_seq.fetch_add(1, std::memory_order_relaxed) + 1;
  char s4[8] = {'.', char('0' + seq / 1000 % 10), char('0' + seq / 100 % 10), char('0' + seq / 10 % 10),
                char('0' + seq % 10), 0};
  size_t n = strlen(g_prefix), k = strlen(d);
  if (n + k + 16 > kPathMax) {
    errno = ENAMETOOLONG;
    return false;
  }
  memcpy(g_path, g_prefix, n);
  g_path[n] = '.';
  memcpy(g_path + n + 1, d, k);
  strcpy(g_path + n + 1 + k, s4);
  strcat(g_path, ".heap");
  return true;
}

bool dump_default() { return g_prefix[0] && default_path() && dump(g_path); }  // g_dump_lock held

// The handler writes the profile only when the thread it interrupted holds neither lock: it
// learns that from try_lock (an interrupted thread cannot take a lock meanwhile; another thread
// that holds one lets go). Otherwise it leaves the dump to the next thread (service_pending).
void prof_on_signal(int) {
  int saved = errno;
  bool done = false;
  if (g_prof_lock.try_lock()) {
    g_prof_lock.unlock();
    if (g_dump_lock.try_lock()) {
      dump_default();
      g_dump_lock.unlock();
      done = true;
    }
  }
  if (!done) g_dump_pending.store(1, std::memory_order_relaxed);
  errno = saved;
}

void prof_dump_at_exit() {
  if (!g_prof_on || !g_prefix[0]) return;
  g_dump_lock.lock();
  dump_default();
  g_dump_lock.unlock();
  service_pending();
}

}  // namespace

// SPACES_PROFILE=<path prefix> turns sampling on (the option profile_sample is R). Read with
// secure_getenv: a set-user-ID program does not let its caller choose where it writes files.
SPACES_HOT_TEXT void prof_init() {
  const char* prefix = os_secure_getenv("SPACES_PROFILE");
  if (prefix == nullptr || *prefix == 0 || strlen(prefix) + 40 > kPathMax) return;
  strcpy(g_prefix, prefix);
  g_rate = uint64_t(option(kOpt_profile_sample));
  heap_init_chunk(&g_prof_heap, nullptr);
  g_prof_heap.state = kHeapActive;
  g_prof_heap.tp = 1;       // no thread's pointer: its blocks never take the local free path
  g_prof_heap.fast_tp = 0;  // nor the fast one
  // Spaces' own frames: from the program's return address on (os_backtrace's marker), and, when
  // Spaces is its own shared object (libspaces*.so), any of its frames still on top (calloc's,
  // realloc's). Linked statically into another object, that object's range is the caller's too.
  uintptr_t lo, hi;
  const char* name;
  if (os_object_range(reinterpret_cast<const void*>(&prof_init), &lo, &hi, &name)) {
    const char* base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strncmp(base, "libspaces", 9) == 0) g_self_lo = lo, g_self_hi = hi;
  }
  g_prof_on = true;
}

// After the core is usable (these may allocate): the dump at exit and the signal.
void prof_start() {
  if (!g_prof_on) return;
  os_atexit(prof_dump_at_exit);
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

bool prof_busy() { return t_busy; }
bool prof_locked() { return t_locked; }
void prof_locked_for_test(bool on) { t_locked = on; }

// h: the thread's heap, which serves the request unsampled if the samples' heap cannot.
void* prof_malloc_sampled(Heap* h, size_t size, bool zero, const void* ra) {
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
    p = heap_malloc_slow_rest(&g_prof_heap, size, zero);  // (no report under the lock: t_busy)
    if (p) record_locked(p, size, nullptr, pcs, depth);
    prof_unlock();
  }
  t_busy = false;
  if (p == nullptr) p = heap_malloc_slow_rest(h, size, zero);  // unsampled, reported as usual
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
        // A sample of a thread heap: freed here as g_prof_heap's owner (the lock).
        Block* b = small_block_of(s, p, "invalid free");
        if (b == nullptr) return true;  // (reported)
        t_busy = true;
        prof_lock();
        if (s->kind != kSlabSmall || s->owner != &g_prof_heap) {  // (released meanwhile: a racing
          prof_unlock();                                          // double free; the usual path
          t_busy = false;                                         // says what it is)
          return false;
        }
        if (slab_block_looks_free(s, b) && slab_contains_free(s, b)) {
          prof_unlock();
          t_busy = false;
          report_error(SPACES_ERROR_DOUBLE_FREE, b, "double free");  // (never under the lock: a
          return true;                                              // handler may allocate)
        }
        size_t j = live_find(reinterpret_cast<uintptr_t>(b));
        if (j != g_live_cap) live_erase(j);
        free_local_slow(&g_prof_heap, s, b, p);  // (its double-free test passed just above)
        prof_unlock();
        t_busy = false;
        return true;
      }
      if (s->chunk == nullptr || __atomic_load_n(&s->chunk->prof_samples, __ATOMIC_RELAXED) == 0) return false;
      break;
    case kSlabLargeRun:
    case kSlabDirect:
      if (!s->sampled) return false;
      break;
    case kSlabBump:
      if (s->chunk == nullptr || __atomic_load_n(&s->chunk->prof_samples, __ATOMIC_RELAXED) == 0) return false;
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

// realloc of a sampled large block, around large_realloc: the record is taken out first (so a
// block another thread gets at the old address meanwhile keeps its own), then put back where the
// block is now, at its new size, when it is the same block (in place, or moved by mremap with its
// header: `sampled` set and no record of its own); otherwise the old block counts as freed (the
// new one has its own record if it was sampled).
void* prof_large_realloc(Slab* s, void* p, size_t size) {
  prof_lock();
  size_t i = live_find(reinterpret_cast<uintptr_t>(p));
  Live old = i != g_live_cap ? g_live[i] : Live{0, nullptr, 0, nullptr};
  if (i != g_live_cap) live_remove(i);
  prof_unlock();
  void* n = large_realloc(s, p, size);
  if (old.b == nullptr) return n;
  prof_lock();
  Slab* was = n == nullptr ? slab_find(p) : nullptr;
  if (n == nullptr && was != nullptr && (was->kind == kSlabLargeRun || was->kind == kSlabDirect) &&
      was->user_ptr == reinterpret_cast<uintptr_t>(p)) {
    live_put(reinterpret_cast<uintptr_t>(p), old.b, old.size, old.chunk);  // (unchanged)
  } else if (n == nullptr) {  // (reported: a free raced the realloc and the block is gone)
    old.b->frees++;
    old.b->free_bytes += old.size;
  } else {
    old.b->frees++;
    old.b->free_bytes += old.size;
    Slab* h = slab_find(n);
    if (live_find(reinterpret_cast<uintptr_t>(n)) == g_live_cap && h != nullptr &&
        (h->kind == kSlabLargeRun || h->kind == kSlabDirect) && h->sampled &&
        h->user_ptr == reinterpret_cast<uintptr_t>(n)) {
      Bucket* nb = bucket_find(old.b->pcs, int(old.b->depth), size, old.b->in_region, old.b->region);
      if (nb) live_insert(reinterpret_cast<uintptr_t>(n), nb, size, old.chunk);
    }
  }
  prof_unlock();
  return n;
}

void prof_forget_chunk(Chunk* c) {
  if (!g_prof_on || __atomic_load_n(&c->prof_samples, __ATOMIC_RELAXED) == 0) return;
  prof_lock();
  for (size_t i = 0; i < g_live_cap && c->prof_samples; i++) {
    while (g_live[i].addr && g_live[i].chunk == c) live_erase(i);  // (may pull the next one in)
  }
  prof_unlock();
}

void prof_collect(bool force) {
  if (!g_prof_on) return;
  prof_lock();  // (the slabs it gives back are purged by spaces_collect's arena_collect, after it)
  heap_collect(&g_prof_heap, force);
  prof_unlock();
}

void prof_fork_lock() {
  if (!g_prof_on) return;
  g_dump_lock.lock();
  g_prof_lock.lock();
}
void prof_fork_unlock() {
  if (!g_prof_on) return;
  g_prof_lock.unlock();
  g_dump_lock.unlock();
  service_pending();
}
void prof_fork_child() {
  if (!g_prof_on) return;
  g_prof_lock.reset();
  g_dump_lock.reset();
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
  Text t = render_locked(f, region);
  prof_unlock();
  return write_text(fd, t) ? 0 : -1;  // (without the lock: a slow reader holds up nothing)
}

SPACES_API int spaces_profile_dump(const char* path) noexcept {
  ensure_init();
  if (!g_prof_on || (path == nullptr && g_prefix[0] == 0)) {
    errno = EINVAL;
    return -1;
  }
  g_dump_lock.lock();
  bool ok = path ? dump(path) : dump_default();
  int e = errno;
  g_dump_lock.unlock();
  service_pending();
  errno = e;
  return ok ? 0 : -1;
}

}  // extern "C"
