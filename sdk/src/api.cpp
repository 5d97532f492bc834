// api.cpp - the spaces_* functions that are neither allocation (alloc.cpp) nor free (free.cpp):
// initialisation, fork, errors, collection and statistics.
//
// Initialisation happens on the first slow path (there are no static constructors), is safe
// before main and from any thread, and never recurses: what it calls that may allocate
// (pthread_atfork, atexit) runs after the core is usable, and re-entry from the initialising
// thread is let through.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

namespace spaces_core {

void heap_init_key();
void heap_mark_aligned(Slab* s);

namespace {

std::atomic<int> g_init_state{0};  // 0 not started, 1 running, 2 done, 3 failed
SPACES_TLS bool t_initializing = false;

spaces_error_fn g_error_fn = nullptr;
void* g_error_arg = nullptr;

// fork(): every lock a child may need is taken in a fixed order (libc's stdio list lock, the
// chunks' locks, shared-region attach, heaps, arenas: the order the allocation paths nest them),
// so the child inherits consistent structures and frees them all. A process that never had a
// second thread takes none: only a frame of this thread, interrupted by a signal handler that
// forks, can hold one, and waiting for it would deadlock (glibc skips its malloc locks there
// too); that frame resumes and releases it in both processes.
bool g_fork_locked = false;  // (written by the forking thread only, read back by it)
void fork_prepare() {
  g_fork_locked = !os_single_threaded();
  if (!g_fork_locked) return;
  // The stdio list lock and the region locks are the ones a thread may hold while it runs user
  // code (a walk callback): taken together or retried, never waited for in order.
  for (;;) {
    os_fork_stdio_lock();
    if (chunk_fork_try_lock()) break;
    os_fork_stdio_unlock();
    os_yield();
  }
  // Then the large resizes in flight end (large.cpp): no thread is inside a walk callback or a
  // stdio call now, and a resize needs none of the locks below but the arenas'.
  large_fork_wait();
  shared_fork_lock();
  prof_fork_lock();
  heap_fork_lock();
  arena_fork_lock();
}
void fork_parent() {
  if (!g_fork_locked) return;
  arena_fork_unlock();
  heap_fork_unlock();
  prof_fork_unlock();
  shared_fork_unlock();
  chunk_fork_unlock();
  os_fork_stdio_unlock();
  large_fork_open();
}
void fork_child() {
  if (g_fork_locked) {
    large_fork_child();
    os_fork_stdio_child();
    arena_after_fork_child();
    heap_after_fork_child();
    chunk_fork_child();
    prof_fork_child();
    shared_fork_child();  // (the child keeps every attached shared region: same mappings)
  } else {
    shared_fork_child_unlocked();
  }
}

// A private copy of stderr: programs such as coreutils close fd 2 in their own atexit handler,
// which runs before ours when Spaces initialised first.
int g_stats_fd = 2;
void print_stats_at_exit() {
  if (option(kOpt_show_stats) == 2)
    spaces_stats_print_json(g_stats_fd);
  else
    spaces_stats_print(g_stats_fd);
}

}  // namespace

SPACES_HOT_TEXT bool ensure_init() {
  int st = g_init_state.load(std::memory_order_acquire);
  if (SPACES_LIKELY(st == 2)) return true;
  if (st == 3) return false;
  if (t_initializing) return true;  // re-entered from something init calls: the core is ready
  int expected = 0;
  if (g_init_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    t_initializing = true;
    options_init_from_env();
    prof_init();
    if (!pagemap_init()) {
      g_init_state.store(3, std::memory_order_release);
      t_initializing = false;
      return false;
    }
    heap_init_key();
    os_atfork(fork_prepare, fork_parent, fork_child);
    if (option(kOpt_show_stats)) {
      int fd = os_dup_cloexec(2, 10);
      if (fd >= 0) g_stats_fd = fd;
      os_atexit(print_stats_at_exit);
    }
    prof_start();
    if (option(kOpt_verbose)) {
      write_str(2, "spaces: version ");
      write_str(2, spaces_version());
      write_str(2, " initialised (pid ");
      char buf[24];
      format_dec(buf, (unsigned long long)os_pid());
      write_str(2, buf);
      write_str(2, ")\n");
      options_print(2);
    }
    t_initializing = false;
    g_init_state.store(2, std::memory_order_release);
    return true;
  }
  while ((st = g_init_state.load(std::memory_order_acquire)) == 1) os_yield();
  return st == 2;
}

void write_str(int fd, const char* s) {
  os_write_all(fd, s, strlen(s));
}

char* format_hex(char* out, uintptr_t v) {  // out: at least 19 bytes
  static const char digits[] = "0123456789abcdef";
  char tmp[16];
  int n = 0;
  do tmp[n++] = digits[v & 15], v >>= 4; while (v);
  *out++ = '0';
  *out++ = 'x';
  while (n) *out++ = tmp[--n];
  *out = 0;
  return out;
}

char* format_dec(char* out, unsigned long long v) {  // out: at least 21 bytes
  char tmp[20];
  int n = 0;
  do tmp[n++] = char('0' + v % 10), v /= 10; while (v);
  while (n) *out++ = tmp[--n];
  *out = 0;
  return out;
}

void write_num(int fd, const char* label, unsigned long long v) {
  char buf[32];
  char* e = format_dec(buf, v);
  e[0] = '\n';
  e[1] = 0;
  write_str(fd, label);
  write_str(fd, buf);
}

void report_error(int code, const void* addr, const char* what) {
  spaces_error_fn fn = __atomic_load_n(&g_error_fn, __ATOMIC_ACQUIRE);
  if (fn) {
    fn(code, const_cast<void*>(addr), what, __atomic_load_n(&g_error_arg, __ATOMIC_ACQUIRE));
    return;
  }
  char line[256];
  char hex[24];
  format_hex(hex, reinterpret_cast<uintptr_t>(addr));
  line[0] = 0;
  strncat(line, "spaces: error: ", sizeof line - 1);
  strncat(line, what, sizeof line - strlen(line) - 1);
  if (addr != nullptr) {
    strncat(line, " at ", sizeof line - strlen(line) - 1);
    strncat(line, hex, sizeof line - strlen(line) - 1);
  }
  strncat(line, "\n", sizeof line - strlen(line) - 1);
  write_str(2, line);
  abort();
}

bool chunk_suppress_oom_report();

// `size`: the request that failed, named in the report (abort_on_oom): "out of memory
// (request of 123456 bytes)", never a meaningless address.
void* out_of_memory(size_t size) {
  if (option(kOpt_abort_on_oom) && !chunk_suppress_oom_report() && !prof_busy()) {
    char msg[80] = "out of memory (request of ";
    char* e = format_dec(msg + strlen(msg), size);
    strcpy(e, " bytes)");
    report_error(SPACES_ERROR_OUT_OF_MEMORY, nullptr, msg);
  }
  errno = ENOMEM;
  return nullptr;
}

}  // namespace spaces_core

using namespace spaces_core;

extern "C" {

SPACES_API int spaces_owns(const void* p) noexcept {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a != 0 && shared_owns(p)) return 1;
  return a != 0 && pagemap_in_region(a) ? 1 : 0;
}

SPACES_API void spaces_collect(int force) noexcept {
  if (!ensure_init()) return;
  // This thread's batched remote frees go now; every other thread's at its next malloc refill.
  g_remote_epoch.fetch_add(1, std::memory_order_relaxed);
  if (t_home_heap->state == kHeapActive) remote_flush_all(t_home_heap);
  Heap* h = t_home_heap;  // (the thread's own heap, also while it has captured a region)
  if (h->state == kHeapActive) heap_collect(h, force != 0);
  if (force) heap_collect_abandoned();
  prof_collect(force != 0);
  arena_collect(force != 0);
}

SPACES_API int spaces_stats(struct spaces_stats* out) noexcept {
  size_t want;
  if (!stats_room(out, &want)) {
    errno = EINVAL;
    return -1;
  }
  ensure_init();
  struct spaces_stats s;
  memset(&s, 0, sizeof s);
  ArenaTotals a = arena_totals();
  HeapTotals h = heap_totals();
  LargeTotals l = large_totals();
  s.version = SPACES_STATS_VERSION;
  s.reserved_bytes = a.reserved;
  s.committed_bytes = a.committed;
  s.peak_committed_bytes = a.peak_committed;
  s.slabs_in_use = h.slabs_in_use;
  s.slabs_cached = a.slabs_cached;
  s.arenas = a.arenas;
  s.large_blocks = l.blocks;
  s.large_bytes = l.bytes;
  s.heaps = h.heaps;
  s.heaps_abandoned = h.abandoned;
  s.purges = a.purges;
  s.mmap_calls = a.mmaps;
  s.threads_started = h.threads_started;
  stats_copy_out(out, s, want);
  return 0;
}

SPACES_API void spaces_stats_print(int fd) noexcept {
  struct spaces_stats s;
  s.size = sizeof s;
  spaces_stats(&s);
  write_str(fd, "spaces: statistics (version ");
  write_str(fd, spaces_version());
  write_str(fd, ")\n");
  write_num(fd, "  reserved bytes        ", s.reserved_bytes);
  write_num(fd, "  committed bytes       ", s.committed_bytes);
  write_num(fd, "  peak committed bytes  ", s.peak_committed_bytes);
  write_num(fd, "  slabs in use          ", s.slabs_in_use);
  write_num(fd, "  slabs cached (dirty)  ", s.slabs_cached);
  write_num(fd, "  arenas                ", s.arenas);
  write_num(fd, "  large blocks          ", s.large_blocks);
  write_num(fd, "  large bytes           ", s.large_bytes);
  write_num(fd, "  heaps                 ", s.heaps);
  write_num(fd, "  heaps abandoned       ", s.heaps_abandoned);
  write_num(fd, "  threads started       ", s.threads_started);
  write_num(fd, "  purges                ", s.purges);
  write_num(fd, "  mmap calls            ", s.mmap_calls);
}

// ---- glibc's introspection calls -------------------------------------------------------------
namespace {
// One pass over every arena's slab and run heads (arena_for_each_head): live and free blocks,
// per size class too. Reads other threads' headers with relaxed loads: approximate while they
// allocate, as glibc's figures are.
struct Census {
  size_t granules;  // arena granules in use
  size_t heap_cached;  // of those, empty slabs kept in heaps' caches (granules)
  size_t live_blocks, live_bytes, free_slots, free_bytes;
  size_t cls_free[kNumClasses], cls_live[kNumClasses], cls_slabs[kNumClasses];
};
// (Owners write these header fields without atomics; the census reads them as they are, one
// aligned word each, and accepts a stale value: ThreadSanitizer is told not to report it.)
__attribute__((no_sanitize("thread"))) void census_head(const Slab* s, void* arg) {
  Census& c = *static_cast<Census*>(arg);
  switch (__atomic_load_n(&s->kind, __ATOMIC_RELAXED)) {
    case kSlabSmall: {
      uint32_t used = __atomic_load_n(&s->used, __ATOMIC_RELAXED);
      uint32_t cap = __atomic_load_n(&s->capacity, __ATOMIC_RELAXED);
      uint32_t bs = __atomic_load_n(&s->block_size, __ATOMIC_RELAXED);
      unsigned cls = __atomic_load_n(&s->cls, __ATOMIC_RELAXED);
      Heap* h = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
      // (a current slab's `used` is not kept by malloc: counted from its free list, a hint while
      // its owner allocates; internal.h, Slab::used)
      if (h && cls < kNumClasses && __atomic_load_n(&h->cur[cls], __ATOMIC_RELAXED) == s) used = slab_out(s);
      if (used > cap) used = cap;
      c.live_blocks += used;
      c.live_bytes += size_t(used) * bs;
      c.free_slots += cap - used;
      c.free_bytes += size_t(cap - used) * bs;
      if (cls < kNumClasses) c.cls_free[cls] += cap - used, c.cls_live[cls] += used, c.cls_slabs[cls]++;
      break;
    }
    case kSlabBump: {  // (bytes only: a sealed slab counts its live blocks; the current one
                       // has carved up to its chunk's window and counts its frees, negated)
      uint64_t v = s->thread_free.load(std::memory_order_relaxed);
      if (s->attached) {
        if (int64_t(v) > 0) c.live_bytes += size_t(uint32_t(v)), c.live_blocks += size_t(v >> 32);
      } else if (const Chunk* ch = s->chunk) {
        size_t carved = chunk_window_carved(ch, s), freed = size_t(uint32_t(0 - v));
        if (carved > freed) c.live_bytes += carved - freed;
      }
      break;
    }
    case kSlabPages: {  // (a page box: its live blocks by class, its free pages)
      const PageBox* m = box_of(s);
      for (unsigned i = 1; i < kBoxPages; i++) {
        unsigned cls = __atomic_load_n(&m->cls[i], __ATOMIC_RELAXED);
        if (cls < kNumSmallClasses || cls >= kNumClasses) continue;
        c.live_blocks++;
        c.live_bytes += class_size(cls);
        c.cls_live[cls]++;
      }
      c.free_bytes += size_t(__atomic_load_n(&m->free_pages, __ATOMIC_RELAXED)) * kPageSize;
      break;
    }
    case kSlabLargeRun:
      c.live_blocks++;
      c.live_bytes += __atomic_load_n(&s->user_size, __ATOMIC_RELAXED);
      break;
    case kSlabEmpty: {  // (in a heap's cache: a medium slab keeps its class's granule count)
      unsigned cls = __atomic_load_n(&s->cls, __ATOMIC_RELAXED);
      c.heap_cached += cls < kNumClasses ? g_classes.granules[cls] : 1;
      break;
    }
    default:
      break;
  }
}
// The census and the totals every introspection call reports from.
struct Snapshot {
  Census c;
  ArenaTotals a;
  LargeTotals l;
  size_t arena_bytes() const { return (c.granules + a.slabs_cached) * kSlabSize; }  // committed in arenas
};
// Medium blocks waiting in heaps' caches are used in their slabs but free to the program: moved
// from live to free (read as they are, like the headers).
__attribute__((no_sanitize("thread"))) void census_medium_caches(Census& c) {
  for (Heap* h = __atomic_load_n(&g_all_heaps, __ATOMIC_ACQUIRE); h; h = h->all_next)
    for (unsigned k = 0; k < kNumMediumClasses; k++) {
      uint32_t n = __atomic_load_n(&h->mcache[k].n, __ATOMIC_RELAXED);
      unsigned cls = kNumSmallClasses + k;
      if (n > c.cls_live[cls]) n = uint32_t(c.cls_live[cls]);
      size_t bytes = size_t(n) * class_size(cls);
      c.cls_live[cls] -= n, c.cls_free[cls] += n;
      c.live_blocks -= n, c.free_slots += n;
      c.live_bytes -= bytes, c.free_bytes += bytes;
    }
}
void snapshot_take(Snapshot& s) {
  ensure_init();
  memset(&s.c, 0, sizeof s.c);
  s.c.granules = arena_for_each_head(census_head, &s.c);
  census_medium_caches(s.c);
  s.a = arena_totals();
  s.l = large_totals();
}

// Appends to a bounded buffer; counts what did not fit, so the caller learns the length needed.
struct Out {
  char* buf;
  size_t cap, len;
  void str(const char* s) {
    for (; *s; s++, len++)
      if (len + 1 < cap) buf[len] = *s;
  }
  void num(unsigned long long v) {
    char d[24];
    format_dec(d, v);
    str(d);
  }
  void attr(const char* name, unsigned long long v) {  // name="v"
    str(name);
    str("=\"");
    num(v);
    str("\"");
  }
};
}  // namespace

SPACES_API int spaces_mallinfo(struct spaces_mallinfo* out) noexcept {
  if (out == nullptr) {
    errno = EINVAL;
    return -1;
  }
  Snapshot snap;
  snapshot_take(snap);
  const Census& c = snap.c;
  memset(out, 0, sizeof *out);
  out->arena = snap.arena_bytes();
  out->ordblks = c.free_slots;
  out->hblks = snap.l.direct_blocks;
  out->hblkhd = snap.l.direct_bytes;
  out->uordblks = c.live_bytes < out->arena ? c.live_bytes : out->arena;
  out->fordblks = out->arena - out->uordblks;
  out->keepcost = snap.a.slabs_cached * kSlabSize;
  return 0;
}

SPACES_API void spaces_malloc_stats(void) noexcept {
  struct spaces_mallinfo m;
  spaces_mallinfo(&m);
  // glibc's layout ("%10u" after the label); "Arena 0" is all of Spaces' arenas
  auto line = [](const char* label, unsigned long long v) {
    char d[24];
    char* e = format_dec(d, v);
    char pad[16];
    int n = 10 - int(e - d);
    int i = 0;
    for (; i < n && i < 15; i++) pad[i] = ' ';
    pad[i] = 0;
    write_str(2, label);
    write_str(2, pad);
    write_str(2, d);
    write_str(2, "\n");
  };
  write_str(2, "Arena 0:\n");
  line("system bytes     = ", m.arena);
  line("in use bytes     = ", m.uordblks);
  write_str(2, "Total (incl. mmap):\n");
  line("system bytes     = ", m.arena + m.hblkhd);
  line("in use bytes     = ", m.uordblks + m.hblkhd);
  line("max mmap regions = ", m.hblks);  // (current: Spaces keeps no peak of these two)
  line("max mmap bytes   = ", m.hblkhd);
}

SPACES_API long spaces_malloc_info(int options, char* buf, size_t cap) noexcept {
  if (options != 0 || (buf == nullptr && cap != 0)) {
    errno = EINVAL;
    return -1;
  }
  Snapshot snap;
  snapshot_take(snap);
  const Census& c = snap.c;
  const ArenaTotals& a = snap.a;
  const LargeTotals& l = snap.l;
  size_t arena = snap.arena_bytes();
  Out o{buf, cap, 0};
  o.str("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
  for (unsigned k = 0; k < kNumClasses; k++) {
    if (c.cls_free[k] == 0) continue;
    o.str("  <size ");
    o.attr("from", k == 0 ? 1 : class_size(k - 1) + 1);
    o.str(" ");
    o.attr("to", class_size(k));
    o.str(" ");
    o.attr("total", (unsigned long long)c.cls_free[k] * class_size(k));
    o.str(" ");
    o.attr("count", c.cls_free[k]);
    o.str("/>\n");
  }
  o.str("</sizes>\n");
  auto totals = [&](bool with_mmap) {
    o.str("<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\" ");
    o.attr("count", c.free_slots);
    o.str(" ");
    o.attr("size", c.free_bytes);
    o.str("/>\n");
    if (with_mmap) {
      o.str("<total type=\"mmap\" ");
      o.attr("count", l.direct_blocks);
      o.str(" ");
      o.attr("size", l.direct_bytes);
      o.str("/>\n");
    }
    o.str("<system type=\"current\" ");
    o.attr("size", arena);
    o.str("/>\n<system type=\"max\" ");
    o.attr("size", a.peak_committed);
    o.str("/>\n<aspace type=\"total\" ");
    o.attr("size", a.reserved);
    o.str("/>\n<aspace type=\"mprotect\" ");
    o.attr("size", a.reserved);
    o.str("/>\n");
  };
  totals(false);
  o.str("</heap>\n");
  totals(true);
  o.str("</malloc>\n");
  if (cap) buf[o.len < cap ? o.len : cap - 1] = 0;
  return long(o.len);
}

namespace {
// Buffered, allocation-free JSON writer onto a file descriptor.
struct JsonOut {
  int fd;
  char buf[2048];
  size_t n = 0;
  bool first = true;  // no comma before the next member
  explicit JsonOut(int f) : fd(f) {}
  ~JsonOut() { flush(); }
  void flush() {
    os_write_all(fd, buf, n);
    n = 0;
  }
  void raw(const char* s) {
    for (; *s; s++) {
      if (n == sizeof buf) flush();
      buf[n++] = *s;
    }
  }
  void string(const char* s) {  // a JSON string, escaped
    raw("\"");
    for (; s && *s; s++) {
      unsigned char ch = static_cast<unsigned char>(*s);
      char e[8] = {0};
      if (ch == '"' || ch == '\\') e[0] = '\\', e[1] = char(ch);
      else if (ch < 0x20 || ch >= 0x7f) {  // (bytes above ASCII as U+0080-U+00FF: always valid JSON)
        static const char hex[] = "0123456789abcdef";
        e[0] = '\\', e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[ch >> 4], e[5] = hex[ch & 15];
      } else e[0] = char(ch);
      raw(e);
    }
    raw("\"");
  }
  void key(const char* k) {
    if (!first) raw(",");
    first = false;
    string(k);
    raw(":");
  }
  void num(const char* k, unsigned long long v) {
    key(k);
    char d[24];
    format_dec(d, v);
    raw(d);
  }
  void snum(const char* k, long long v) {
    key(k);
    if (v < 0) raw("-"), v = -v;
    char d[24];
    format_dec(d, (unsigned long long)v);
    raw(d);
  }
  void open(const char* k, const char* bracket) {  // k: NULL inside an array
    if (k) key(k);
    else if (!first) raw(",");
    raw(bracket);
    first = true;
  }
  void close(const char* bracket) {
    raw(bracket);
    first = false;
  }
};
}  // namespace

SPACES_API void spaces_stats_print_json(int fd) noexcept {
  Snapshot snap;
  snapshot_take(snap);
  const Census& c = snap.c;
  const ArenaTotals& a = snap.a;
  const LargeTotals& l = snap.l;
  HeapTotals h = heap_totals();
  RegionInfo regions[256];
  size_t region_footprint = 0;
  size_t nregions = chunk_list_regions(regions, 256, &region_footprint);
  JsonOut o(fd);
  o.open(nullptr, "{");
  o.num("schema", 1);
  o.key("version");
  o.string(spaces_version());
  o.open("process", "{");
  o.num("reserved_bytes", a.reserved);
  o.num("committed_bytes", a.committed);
  o.num("peak_committed_bytes", a.peak_committed);
  o.num("arenas", a.arenas);
  o.num("arena_granules_in_use", c.granules);
  o.num("granules_cached", a.slabs_cached);
  o.num("granules_cached_in_heaps", c.heap_cached);
  o.num("live_bytes", c.live_bytes + l.direct_bytes);
  o.num("live_blocks", c.live_blocks + l.direct_blocks);
  o.num("free_slots", c.free_slots);
  o.num("free_slot_bytes", c.free_bytes);
  o.num("large_blocks", l.blocks);
  o.num("large_bytes", l.bytes);
  o.num("huge_blocks", l.direct_blocks);
  o.num("huge_bytes", l.direct_bytes);
  o.num("purges", a.purges);
  o.num("mmap_calls", a.mmaps);
  o.close("}");
  o.open("heaps", "{");
  o.open("thread", "{");
  o.num("created", h.heaps);
  o.num("abandoned", h.abandoned);
  o.num("threads_started", h.threads_started);
  o.num("slabs_in_use", h.slabs_in_use);
  o.close("}");
  o.open("regions", "{");
  o.num("live", nregions);
  o.num("footprint_bytes", region_footprint);
  o.close("}");
  o.close("}");
  o.open("size_classes", "[");
  for (unsigned k = 0; k < kNumClasses; k++) {
    if (c.cls_slabs[k] == 0) continue;
    o.open(nullptr, "{");
    o.num("size", class_size(k));
    o.num("slabs", c.cls_slabs[k]);
    o.num("live_blocks", c.cls_live[k]);
    o.num("live_bytes", (unsigned long long)c.cls_live[k] * class_size(k));
    o.num("free_slots", c.cls_free[k]);
    o.close("}");
  }
  o.close("]");
  o.open("regions", "[");
  for (size_t i = 0; i < nregions && i < 256; i++) {
    const RegionInfo& r = regions[i];
    o.open(nullptr, "{");
    o.key("name");
    if (r.name) o.string(r.name);
    else o.raw("null");
    o.key("exclusive");
    o.raw(r.flags & SPACES_CHUNK_EXCLUSIVE ? "true" : "false");
    o.key("untracked");
    o.raw(r.flags & SPACES_CHUNK_UNTRACKED ? "true" : "false");
    o.num("footprint_bytes", r.footprint);
    o.num("peak_footprint_bytes", r.peak);
    o.num("ceiling_bytes", r.ceiling);
    o.num("ceiling_hits", r.ceiling_hits);
    o.close("}");
  }
  o.close("]");
  o.num("regions_omitted", nregions > 256 ? nregions - 256 : 0);
  o.open("options", "{");
  for (int i = 0; i < kNumOptions; i++) o.snum(kOptionDescs[i].name, option(OptionId(i)));
  o.close("}");
  o.close("}");
  o.raw("\n");
}

SPACES_API int spaces_mallopt(int param, int value) noexcept {
  switch (param) {
    case -1:  // M_TRIM_THRESHOLD: freed memory kept resident before it is returned
      if (value < 0) return 0;
      return spaces_option_set("dirty_max_kib", value / 1024 < 1048576 ? value / 1024 : 1048576) == 0 ? 1 : 0;
    case -7:  // M_ARENA_TEST
    case 1:   // M_MXFAST: tuning hints glibc itself may ignore
      return 1;
    default:
      return 0;
  }
}

SPACES_API void spaces_set_error_handler(spaces_error_fn fn, void* arg) noexcept {
  __atomic_store_n(&g_error_arg, arg, __ATOMIC_RELEASE);
  __atomic_store_n(&g_error_fn, fn, __ATOMIC_RELEASE);
}

SPACES_API const char* spaces_version(void) noexcept { return "0.1.0"; }

}  // extern "C"
