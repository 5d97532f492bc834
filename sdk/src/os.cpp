// os.cpp - the primitive layer: everything Spaces asks of the kernel (interface: os.h).
//
// Contract: every function either succeeds or returns NULL/false/-1 and does nothing; none
// allocates, none takes a lock of Spaces', none sets errno visibly to the caller except where
// os.h says so. This file knows no allocator type: it includes only os.h and system headers, and
// compiles alone (the test core.os_layer_standalone). Everything above it is OS-free (the test
// core.os_layer scans the other files for system calls).
#include "os.h"

#include <errno.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <fcntl.h>
#include <link.h>
#include <linux/falloc.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace spaces_core {

SPACES_HOT_TEXT void* os_map(size_t size, bool accounted) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (accounted ? 0 : MAP_NORESERVE), -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// Map `size` bytes aligned to `align` (a power of two >= page size) by over-mapping and trimming.
// (No huge TLB mappings: huge_pages 2 never got one, and session 27 found that the mapping cache,
// its purges and growth by mremap would have to work in whole huge pages first; docs/options.md.)
SPACES_HOT_TEXT void* os_map_aligned(size_t size, size_t align, bool accounted) {
  if (size + align < size) return nullptr;
  uint8_t* raw = static_cast<uint8_t*>(os_map(size + align, accounted));
  if (raw == nullptr) return nullptr;
  uintptr_t start = (reinterpret_cast<uintptr_t>(raw) + align - 1) & ~(uintptr_t)(align - 1);
  size_t front = start - reinterpret_cast<uintptr_t>(raw);
  size_t back = align - front;
  if (front) munmap(raw, front);
  if (back) munmap(reinterpret_cast<uint8_t*>(start) + size, back);
  return reinterpret_cast<void*>(start);
}

SPACES_HOT_TEXT void os_unmap(void* p, size_t size) { munmap(p, size); }

// Replace [p, p + size) of a private anonymous mapping with fresh zero pages: unlike a purge,
// the page tables under it go too, so a range that held small pages can fault huge ones again.
SPACES_HOT_TEXT bool os_remap_fresh(void* p, size_t size, bool accounted) {
  void* r = mmap(p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (accounted ? 0 : MAP_NORESERVE) | MAP_FIXED,
                 -1, 0);
  return r == p;
}

// ---- fork ----
// glibc's fork() runs the atfork prepare handlers (ours) and only then takes its stdio list lock,
// while its own malloc takes its locks after that lock ("the libio list lock has an indirect
// malloc dependency", glibc fork.c). A thread in fflush(NULL) holds the list lock and waits for a
// FILE lock held by a thread in getline, which waits in malloc for a lock our prepare handler
// took: deadlock. So our prepare handler takes the list lock first (it is recursive: glibc's own
// take then nests), the parent handler drops that extra hold, and the child's is reset (glibc
// resets it too; both are idempotent). Weak: another libc simply has no such lock to order.
extern "C" void _IO_list_lock(void) __attribute__((weak));
extern "C" void _IO_list_unlock(void) __attribute__((weak));
extern "C" void _IO_list_resetlock(void) __attribute__((weak));
extern "C" char __libc_single_threaded __attribute__((weak));

void os_fork_stdio_lock() {
  if (_IO_list_lock) _IO_list_lock();
}
void os_fork_stdio_unlock() {
  if (_IO_list_unlock) _IO_list_unlock();
}
void os_fork_stdio_child() {
  if (_IO_list_resetlock) _IO_list_resetlock();
}
// sched_yield, sched_getaffinity and clock_gettime are reached without libc's wrappers: they lie in
// two 64 KiB stretches of libc's text that a program using glibc's malloc never runs, and the
// kernel maps a file's pages around a fault 64 KiB at a time, so one call into each cost 128 KiB
// of resident text in every process (measured with /proc/self/pagemap: docs/benchmarks.md,
// "Base RSS"). `syscall` and `getauxval` sit in libc text that mmap's wrapper brings in anyway.
SPACES_HOT_TEXT void os_yield() { syscall(SYS_sched_yield); }
// True while the process has never had a second thread (glibc's own test in fork()): no other
// thread can hold a lock, only a frame of this one that a signal handler interrupted.
SPACES_HOT_TEXT bool os_single_threaded() { return &__libc_single_threaded != nullptr && __libc_single_threaded; }

// Every caller counts purged memory as zero from then on (clean bits, `dirty` flags: calloc
// skips its memset). Where the kernel refuses (EINVAL on locked pages: a process that called
// mlockall), the bytes are zeroed instead: the memory stays resident, and correct.
SPACES_HOT_TEXT void os_purge(void* p, size_t size) {
  if (madvise(p, size, MADV_DONTNEED) != 0) memset(p, 0, size);
}

SPACES_HOT_TEXT void os_hugepage_forbid(void* p, size_t size) { madvise(p, size, MADV_NOHUGEPAGE); }

// Fault in [p, p + size) for writing in one system call (MADV_POPULATE_WRITE, Linux 5.14). The
// kernel then allocates and zeroes the pages in a loop instead of taking one page-fault exception
// per page: measured here (2-core VM, 64 KiB at a time, bench/micro/faults.c) 0.75-1.0 us per
// page plus 4.5-5.1 us at the page's first write, where a fault per page cost 10-11 us
// (docs/benchmarks.md, "Populating a growing class's fresh slabs"). Advice only: a kernel
// without it (EINVAL), or a sandbox that refuses it (EPERM, ENOSYS), is never asked again;
// ENOMEM, or a page the process may not write, leaves the pages to fault in as before. errno is
// kept.
SPACES_HOT_TEXT void os_populate(void* p, size_t size) {
  static bool unsupported = false;
  if (__atomic_load_n(&unsupported, __ATOMIC_RELAXED)) return;
  int saved = errno;
  if (madvise(p, size, MADV_POPULATE_WRITE) != 0 && (errno == EINVAL || errno == EPERM || errno == ENOSYS))
    __atomic_store_n(&unsupported, true, __ATOMIC_RELAXED);  // (EPERM: a seccomp filter on the advice)
  errno = saved;
}

SPACES_HOT_TEXT unsigned os_cpu_count() {
  uint64_t set[16] = {};  // 1024 CPUs, as cpu_set_t; the kernel returns the bytes it wrote
  long bytes = syscall(SYS_sched_getaffinity, 0, sizeof set, set);
  if (bytes <= 0) return 1;
  unsigned n = 0;
  for (long i = 0; i < bytes / 8; i++)
    for (uint64_t w = set[i]; w != 0; w &= w - 1) n++;
  return n > 0 ? n : 1;
}

// Reserve the backing store of [off, off + size) of a shared-memory object now (fallocate: tmpfs
// allocates the pages without mapping them, so nothing is faulted here), so that a full
// /dev/shm is an error here and not SIGBUS at the program's first write. false: no space.
// A file system without fallocate keeps the old lazy behaviour (true).
// KEEP_SIZE: the object's size is the region's business (a truncated object is reported by the
// caller, not silently re-extended here).
bool os_reserve_shared(int fd, size_t off, size_t size) {
  if (fallocate(fd, FALLOC_FL_KEEP_SIZE, off_t(off), off_t(size)) == 0) return true;
  return errno != ENOSPC && errno != ENOMEM && errno != EFBIG;
}


SPACES_HOT_TEXT bool os_hugepage_advise(void* p, size_t size) { return madvise(p, size, MADV_HUGEPAGE) == 0; }

// Transparent huge pages exist and the advice can take effect: the kernel has them (the sysfs
// file is there) and its mode is not `never`. Read once (open/read/close; errno kept).
SPACES_HOT_TEXT bool os_thp_usable() {
  static std::atomic<int> known{-1};
  int k = known.load(std::memory_order_relaxed);
  if (k >= 0) return k != 0;
  int saved = errno;
  char buf[128] = {};
  int fd = os_open_read("/sys/kernel/mm/transparent_hugepage/enabled");
  long n = fd >= 0 ? os_read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  errno = saved;
  k = n > 0 && strstr(buf, "[never]") == nullptr ? 1 : 0;
  known.store(k, std::memory_order_relaxed);
  return k != 0;
}

// ---- the CPU ----
// cpuid and xgetbv directly: __builtin_cpu_supports links libgcc's CPU model code, 4.5 KiB and
// a constructor that every process ran, at the far end of the text from Spaces' own.
bool os_cpu_has_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  if (!(c & bit_OSXSAVE) || !(c & bit_AVX)) return false;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 6) != 6) return false;  // the kernel saves the SSE and AVX state
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  return (b & bit_AVX2) != 0;
#else
  return false;
#endif
}

// ---- threads and futexes for locks that live in memory other processes share ----
int os_tid() { return int(syscall(SYS_gettid)); }

// Is thread `tid` (of this PID namespace) alive? A thread that exited, or a process that died and
// is a zombie waiting for its parent, is not. Used only after waiting a while for a lock.
bool os_thread_alive(int tid) {
  if (tid <= 0) return false;
  if (kill(tid, 0) != 0 && errno == ESRCH) return false;
  char path[40] = "/proc/";
  char digits[12];
  int nd = 0;
  for (unsigned v = unsigned(tid); v; v /= 10) digits[nd++] = char('0' + v % 10);
  char* e = path + strlen(path);
  while (nd) *e++ = digits[--nd];
  strcpy(e, "/stat");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;  // (no /proc: assume alive, the wait bound still holds)
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return true;
  buf[n] = 0;
  const char* paren = strrchr(buf, ')');  // "tid (comm) S ..."
  return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

// This process's PID namespace id (the inode of /proc/self/ns/pid; 0 when unknown): a lock
// owner's thread id is only judged dead by a process of the same namespace.
uint32_t os_pidns_id() {
  struct stat st;
  if (stat("/proc/self/ns/pid", &st) != 0) return 0;
  return uint32_t(st.st_ino);
}

// FUTEX_WAIT on a process-shared word for at most timeout_ns; returns when woken, on timeout, or
// at once if *word != expected.
void os_futex_wait_shared(std::atomic<uint32_t>* word, uint32_t expected, uint64_t timeout_ns) {
  struct timespec ts = {time_t(timeout_ns / 1000000000u), long(timeout_ns % 1000000000u)};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}
void os_futex_wake_shared(std::atomic<uint32_t>* word, int n) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, n, nullptr, nullptr, 0);
}

// The vDSO's clock_gettime, found in its dynamic symbol table (the kernel links the vDSO with a
// SysV hash table, whose second word is the symbol count). NULL where anything is missing:
// then libc's wrapper is called.
using ClockFn = int (*)(clockid_t, struct timespec*);
SPACES_HOT_TEXT static ClockFn vdso_clock_gettime() {
  int saved = errno;  // (getauxval sets ENOENT where there is no vDSO, e.g. under valgrind)
  uintptr_t base = getauxval(AT_SYSINFO_EHDR);
  errno = saved;
  if (base == 0) return nullptr;
  auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(base);
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) return nullptr;
  auto* ph = reinterpret_cast<const ElfW(Phdr)*>(base + eh->e_phoff);
  uintptr_t bias = 0;
  const ElfW(Dyn)* dyn = nullptr;
  bool loaded = false;
  for (unsigned i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type == PT_LOAD && !loaded) {
      bias = base + ph[i].p_offset - ph[i].p_vaddr;
      loaded = true;
    } else if (ph[i].p_type == PT_DYNAMIC) {
      dyn = reinterpret_cast<const ElfW(Dyn)*>(base + ph[i].p_offset);
    }
  }
  if (!loaded || dyn == nullptr) return nullptr;
  const ElfW(Sym)* sym = nullptr;
  const char* str = nullptr;
  const uint32_t* hash = nullptr;
  for (; dyn->d_tag != DT_NULL; dyn++) {
    if (dyn->d_tag == DT_SYMTAB) sym = reinterpret_cast<const ElfW(Sym)*>(bias + dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_STRTAB) str = reinterpret_cast<const char*>(bias + dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_HASH) hash = reinterpret_cast<const uint32_t*>(bias + dyn->d_un.d_ptr);
  }
  if (sym == nullptr || str == nullptr || hash == nullptr) return nullptr;
  for (uint32_t i = 0; i < hash[1]; i++) {
    if (ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC || sym[i].st_shndx == SHN_UNDEF) continue;
    if (strcmp(str + sym[i].st_name, "__vdso_clock_gettime") == 0)
      return reinterpret_cast<ClockFn>(bias + sym[i].st_value);
  }
  return nullptr;
}

SPACES_HOT_TEXT uint64_t os_now_ns() {
  // Looked up once (a race looks it up twice and stores the same answer).
  static std::atomic<uintptr_t> fn{0};  // 0: not looked up; 1: none, use libc's
  uintptr_t f = fn.load(std::memory_order_relaxed);
  if (f == 0) {
    ClockFn v = vdso_clock_gettime();
    f = v != nullptr ? reinterpret_cast<uintptr_t>(v) : 1;
    fn.store(f, std::memory_order_relaxed);
  }
  struct timespec ts;
  if (f == 1 || reinterpret_cast<ClockFn>(f)(CLOCK_MONOTONIC_COARSE, &ts) != 0)
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// Not cryptographic: keys only need to be unguessable by accident. Seeded from the kernel's
// AT_RANDOM bytes, the clock and ASLR, mixed by splitmix64. Each thread draws from its own state
// (seeded from the process-wide one at its first draw): a key is drawn for every slab a heap
// initialises, and one process-wide counter would be a cache line that every thread's refills
// write (profiled at 0.5 % of a warm region round on 2 cores; no time difference measurable there).
static uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
SPACES_HOT_TEXT static uint64_t os_random_global() {
  static std::atomic<uint64_t> state{0};
  uint64_t s = state.load(std::memory_order_relaxed);
  if (__builtin_expect(s == 0, 0)) {
    uint64_t seed = os_now_ns() ^ reinterpret_cast<uintptr_t>(&state);
    const void* r = reinterpret_cast<const void*>(getauxval(AT_RANDOM));  // 16 unaligned bytes
    if (r) {
      uint64_t w[2];
      memcpy(w, r, sizeof w);
      seed ^= w[0] ^ (w[1] << 1);
    }
    state.compare_exchange_strong(s, seed | 1, std::memory_order_relaxed);
  }
  return splitmix64(state.fetch_add(0x9e3779b97f4a7c15ull, std::memory_order_relaxed) + 0x9e3779b97f4a7c15ull);
}
SPACES_HOT_TEXT uint64_t os_random() {
  static __thread __attribute__((tls_model("initial-exec"))) uint64_t t_state = 0;
  if (__builtin_expect(t_state == 0, 0)) t_state = os_random_global() | 1;
  t_state += 0x9e3779b97f4a7c15ull;
  return splitmix64(t_state);
}

SPACES_HOT_TEXT size_t os_page_size() { return 4096; }

// ---- for the heap profiler (profile.cpp): files, a signal, stacks ----------------------------
int os_create_file(const char* path) { return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); }
int os_open_read(const char* path) { return open(path, O_RDONLY | O_CLOEXEC); }
long os_read(int fd, void* buf, size_t n) {
  for (;;) {
    ssize_t r = read(fd, buf, n);
    if (r >= 0 || errno != EINTR) return long(r);
  }
}
bool os_write_all(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w, n -= size_t(w);
  }
  return true;
}
void os_close(int fd) { close(fd); }
int os_pid() { return int(getpid()); }
unsigned os_euid() { return unsigned(geteuid()); }
bool os_on_signal(int signo, void (*fn)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(signo, &sa, nullptr) == 0;
}

// The address range of the loaded object holding `addr` (its executable segments), or false
// when that object is the main program (a static link: its range would hide the caller's frames).
namespace {
struct ObjectRange {
  uintptr_t addr, lo, hi;
  bool found, main;
  const char* name;
};
int object_range_cb(struct dl_phdr_info* info, size_t, void* arg) {
  ObjectRange* r = static_cast<ObjectRange*>(arg);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    uintptr_t a = info->dlpi_addr + ph.p_vaddr;
    if (a < lo) lo = a;
    if (a + ph.p_memsz > hi) hi = a + ph.p_memsz;
  }
  if (r->addr < lo || r->addr >= hi) return 0;
  r->lo = lo, r->hi = hi, r->found = true;
  r->main = info->dlpi_name == nullptr || info->dlpi_name[0] == 0;
  r->name = info->dlpi_name;
  return 1;
}
constexpr int kUnwindMax = 96;
struct Unwound {
  uintptr_t ip[kUnwindMax];
  int n;
  int from;     // the frame that returns to `marker` (-1: not seen)
  uintptr_t marker;
};
_Unwind_Reason_Code unwind_cb(struct _Unwind_Context* ctx, void* arg) {
  Unwound* u = static_cast<Unwound*>(arg);
  uintptr_t ip = _Unwind_GetIP(ctx);
  if (ip == 0 || u->n == kUnwindMax) return _URC_END_OF_STACK;
  if (ip == u->marker && u->from < 0) u->from = u->n;
  u->ip[u->n++] = ip;
  return _URC_NO_REASON;
}
}  // namespace

bool os_object_range(const void* addr, uintptr_t* lo, uintptr_t* hi, const char** name) {
  ObjectRange r{reinterpret_cast<uintptr_t>(addr), 0, 0, false, false, nullptr};
  dl_iterate_phdr(object_range_cb, &r);
  if (!r.found || r.main) return false;
  *lo = r.lo, *hi = r.hi, *name = r.name ? r.name : "";
  return true;
}

// The return addresses of the calling thread's stack (less one: the call instructions),
// innermost first, from the frame that returns to `marker` when one does (the caller's
// __builtin_return_address: Spaces' own frames above it are left out even when it is linked
// statically), less the leading frames inside [skip_lo, skip_hi). Uses the unwind tables
// (.eh_frame: frame pointers are not needed); libgcc's unwinder neither allocates nor takes a
// lock of ours.
// The caller passes an empty range unless [skip_lo, skip_hi) holds Spaces' code alone (its own
// shared object: linked statically into another object, that object's range holds the caller's
// code too). ip - 1: inside the call instruction, as a return address may begin the next
// inlined function. No frame at all: the marker alone.
int os_backtrace(void** pcs, int max, uintptr_t skip_lo, uintptr_t skip_hi, const void* marker) {
  Unwound u;
  u.n = 0, u.from = -1, u.marker = reinterpret_cast<uintptr_t>(marker);
  _Unwind_Backtrace(unwind_cb, &u);
  int start = u.from >= 0 ? u.from : 0;
  while (start < u.n && u.ip[start] >= skip_lo && u.ip[start] < skip_hi) start++;
  int n = 0;
  for (int i = start; i < u.n && n < max; i++) pcs[n++] = reinterpret_cast<void*>(u.ip[i] - 1);
  if (n == 0 && marker != nullptr && max > 0) pcs[n++] = reinterpret_cast<void*>(u.marker - 1);
  return n;
}

// ---- the rest of what the core asks of libc ----
SPACES_HOT_TEXT void* os_remap_in_place(void* p, size_t old_size, size_t new_size) {
  void* r = mremap(p, old_size, new_size, 0);
  return r == MAP_FAILED ? nullptr : r;
}
SPACES_HOT_TEXT void* os_remap_to(void* p, size_t old_size, size_t new_size, void* dst) {
  void* r = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
  return r == MAP_FAILED ? nullptr : r;
}
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4  // (Linux 5.7; older kernels refuse it with EINVAL)
#endif
void* os_map_fixed(void* at, size_t size) {
  void* r = mmap(at, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  return r == MAP_FAILED ? nullptr : r;
}
void* os_map_at(void* at, size_t size) {
  void* r = mmap(at, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (r == MAP_FAILED) return nullptr;
  if (r != at) {  // (a kernel older than 4.17 took the address as a hint)
    munmap(r, size);
    return nullptr;
  }
  return r;
}
void* os_move_out(void* p, size_t size, void* dst) {
  void* r = mremap(p, size, size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, dst);
  return r == MAP_FAILED ? nullptr : r;
}
int os_shm_create(const char* name, unsigned mode) {
  return shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode));
}
int os_shm_open(const char* name) { return shm_open(name, O_RDWR | O_CLOEXEC, 0); }
int os_shm_unlink(const char* name) { return shm_unlink(name); }
bool os_shm_prepare(int fd, unsigned mode, size_t size) {
  return fchmod(fd, mode_t(mode)) == 0 && ftruncate(fd, off_t(size)) == 0;
}
bool os_file_id(int fd, OsFileId* out) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  out->dev = uint64_t(st.st_dev), out->ino = uint64_t(st.st_ino), out->size = uint64_t(st.st_size);
  out->uid = uint32_t(st.st_uid);
  return true;
}
void* os_map_shared(int fd, size_t size, void* at) {
  void* r = mmap(at, size, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED_NOREPLACE : 0), fd, 0);
  if (r == MAP_FAILED) return nullptr;
  if (at && r != at) {  // a kernel that ignored the flag: something is there
    munmap(r, size);
    errno = EEXIST;
    return nullptr;
  }
  return r;
}
void os_discard_shared(void* p, size_t size) { madvise(p, size, MADV_REMOVE); }
long os_pread(int fd, void* buf, size_t n, size_t off) {
  for (;;) {
    ssize_t r = pread(fd, buf, n, off_t(off));
    if (r >= 0 || errno != EINTR) return long(r);
  }
}
int os_dup_cloexec(int fd, int lowest) { return fcntl(fd, F_DUPFD_CLOEXEC, lowest); }
void os_sleep_us(unsigned us) { usleep(us); }
SPACES_HOT_TEXT bool os_thread_key_create(unsigned* key, void (*destructor)(void*)) {
  pthread_key_t k;
  if (pthread_key_create(&k, destructor) != 0) return false;
  *key = unsigned(k);
  return true;
}
SPACES_HOT_TEXT void os_thread_key_set(unsigned key, const void* value) { pthread_setspecific(pthread_key_t(key), value); }
// pthread_atfork is a two-line wrapper in libc_nonshared.a that the linker puts at the very end
// of the text, 64 KiB of fault-around away from everything else a process runs (os.h,
// SPACES_HOT_TEXT); this is what it does.
extern "C" int __register_atfork(void (*)(), void (*)(), void (*)(), void*);
extern "C" __attribute__((weak, visibility("hidden"))) void* __dso_handle;  // (as glibc declares it)
SPACES_HOT_TEXT bool os_atfork(void (*prepare)(), void (*parent)(), void (*child)()) {
  return __register_atfork(prepare, parent, child, &__dso_handle) == 0;
}
bool os_atexit(void (*fn)()) { return atexit(fn) == 0; }
// The shared libraries' DT_FINI (sdk/CMakeLists.txt links with -fini=spaces_dt_fini): the loader
// calls it at exit. The default, the C runtime's empty _fini, lies after all the code, and calling
// it made the kernel map that last 64 KiB of the library in every process that exits (docs/
// benchmarks.md, "Base RSS"). Destructors run from .fini_array, as before.
extern "C" SPACES_HOT_TEXT __attribute__((visibility("hidden"), used)) void spaces_dt_fini() {}
SPACES_HOT_TEXT const char* os_getenv(const char* name) { return getenv(name); }
SPACES_HOT_TEXT const char* os_secure_getenv(const char* name) { return secure_getenv(name); }

}  // namespace spaces_core
