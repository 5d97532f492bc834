// os.h - the OS layer's interface: everything Spaces asks of the kernel and of libc's runtime
// (memory mappings, files, shared-memory objects, threads' keys, fork and exit hooks, signals,
// clocks, randomness, futexes, stack unwinding, the CPU's spin hint).
//
// Contract: this header and os.cpp know no allocator type (os.cpp compiles alone: the test
// core.os_layer_standalone); every function either succeeds or returns NULL/false/-1 and does
// nothing; none allocates through malloc; none takes a lock of Spaces'. No other file of the
// core names a system call (the test core.os_layer fails if one does).
#ifndef SPACES_OS_H
#define SPACES_OS_H

#include <stddef.h>
#include <stdint.h>

#include <atomic>

// The code that every program using Spaces as its malloc runs (the entry points and their slow
// paths, thread start and exit, the arenas' take, return and purge, initialisation) is grouped
// in one section, so that it lies in a few contiguous pages. The kernel maps a shared library's
// text 64 KiB around each page fault (fault-around), and with that code spread over the whole
// library every process had all of its 170 KiB of text resident (docs/benchmarks.md, "Base
// RSS"). The linker places `.text.hot.*` together; what is marked is the set callgrind showed
// executed across the bench/run workloads (a function missing here costs RSS, never
// correctness).
#define SPACES_HOT_TEXT __attribute__((section(".text.hot.spaces")))
// Error paths: cold (their callers' branches to them are laid out as unlikely), and placed after
// the hot text. Plain `cold` would put them in .text.unlikely, which the linker places first, in
// the hot window.
#define SPACES_COLD_TEXT __attribute__((cold, section(".text.spaces.cold")))

namespace spaces_core {

// ---- private anonymous memory ----
// Reservations (arenas, spans, metadata) are MAP_NORESERVE: under overcommit_memory 0 the kernel's
// heuristic does not weigh them. A program's own huge block is `accounted` (a direct mapping, the
// mapping a span block moves to and what it grows by), as glibc's mmap'd chunks are, so under
// mode 0 a request the machine could never back (malloc(1 TiB) on 24 GiB) fails with ENOMEM
// instead of succeeding and meeting the OOM killer at its first writes. (Mode 2 counts every
// mapping whatever the flag; mode 1 lets anything through, for glibc too.)
void* os_map(size_t size, bool accounted = false);  // NULL on failure
void* os_map_aligned(size_t size, size_t align, bool accounted = false);  // align: a power of two >= a page
void os_unmap(void* p, size_t size);
bool os_remap_fresh(void* p, size_t size, bool accounted = false);  // fresh zero pages (and page tables) in place
void* os_remap_in_place(void* p, size_t old_size, size_t new_size);  // NULL: cannot grow there
void* os_remap_to(void* p, size_t old_size, size_t new_size, void* dst);  // moves page tables; NULL on failure
// Move the pages of [p, p + size) to dst (replacing what is mapped there), leaving p's range
// mapped and empty (fresh zero pages on the next touch); NULL on failure (nothing moved).
void* os_move_out(void* p, size_t size, void* dst);
void* os_map_at(void* at, size_t size);  // fresh pages at exactly `at` if nothing is mapped there; NULL otherwise
void* os_map_fixed(void* at, size_t size);  // fresh pages at `at`, replacing what is mapped there; NULL on failure
void os_purge(void* p, size_t size);                 // MADV_DONTNEED: RSS drops now; zero after, always
bool os_hugepage_advise(void* p, size_t size);       // MADV_HUGEPAGE, best effort: false if refused
bool os_thp_usable();  // the kernel has transparent huge pages, not in mode `never` (read once)
void os_populate(void* p, size_t size);              // MADV_POPULATE_WRITE, best effort
void os_hugepage_forbid(void* p, size_t size);       // MADV_NOHUGEPAGE, best effort
size_t os_page_size();

// ---- shared-memory objects (regions shared across processes) ----
int os_shm_create(const char* name, unsigned mode);  // O_EXCL; -1 + errno
int os_shm_open(const char* name);                   // existing, read-write; -1 + errno
int os_shm_unlink(const char* name);                  // 0, or -1 + errno
bool os_shm_prepare(int fd, unsigned mode, size_t size);   // fchmod + ftruncate
struct OsFileId {
  uint64_t dev, ino, size;
  uint32_t uid;
};
bool os_file_id(int fd, OsFileId* out);              // fstat
bool os_reserve_shared(int fd, size_t off, size_t size);  // fallocate; false: no space
// MAP_SHARED at exactly `at` (never replacing a mapping: NULL + EEXIST if one is there), or
// anywhere for NULL; NULL + errno on failure
void* os_map_shared(int fd, size_t size, void* at);
void os_discard_shared(void* p, size_t size);        // MADV_REMOVE: frees the object's pages
long os_pread(int fd, void* buf, size_t n, size_t off);

// ---- files and descriptors ----
int os_create_file(const char* path);  // write-only, truncated, 0644; -1 on failure
int os_open_read(const char* path);
long os_read(int fd, void* buf, size_t n);
bool os_write_all(int fd, const void* buf, size_t n);
void os_close(int fd);
int os_dup_cloexec(int fd, int lowest);  // -1 on failure

// ---- process, threads, signals ----
int os_pid();
unsigned os_euid();
int os_tid();
unsigned os_cpu_count();             // CPUs this process may run on (at least 1)
bool os_single_threaded();
void os_yield();
void os_sleep_us(unsigned us);
inline void os_cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
bool os_cpu_has_avx2();              // the CPU (and the kernel's saved state) run AVX2 code
bool os_thread_alive(int tid);       // false: no such thread (exited, or a zombie's)
uint32_t os_pidns_id();              // this process's PID namespace id, 0 if unknown
bool os_thread_key_create(unsigned* key, void (*destructor)(void*));
void os_thread_key_set(unsigned key, const void* value);
bool os_atfork(void (*prepare)(), void (*parent)(), void (*child)());
bool os_atexit(void (*fn)());
const char* os_getenv(const char* name);   // never allocates
const char* os_secure_getenv(const char* name);  // NULL in a set-user-ID (AT_SECURE) process
extern "C" char** environ;
bool os_on_signal(int signo, void (*fn)(int));
void os_fork_stdio_lock();     // atfork: libc's stdio list lock, taken before Spaces' locks
void os_fork_stdio_unlock();
void os_fork_stdio_child();

// ---- futexes for locks that live in memory other processes share ----
void os_futex_wait_shared(std::atomic<uint32_t>* word, uint32_t expected, uint64_t timeout_ns);
void os_futex_wake_shared(std::atomic<uint32_t>* word, int n);

// ---- time, randomness, code ----
uint64_t os_now_ns();
uint64_t os_random();
// The lowest user-space address no mapping reaches (x86-64 with 4-level page tables: 2^47).
constexpr uintptr_t kOsAddressLimit = uintptr_t(1) << 47;
// The executable segments of the loaded object holding addr, and its file name; false for the
// main program.
bool os_object_range(const void* addr, uintptr_t* lo, uintptr_t* hi, const char** name);
int os_backtrace(void** pcs, int max, uintptr_t skip_lo, uintptr_t skip_hi, const void* marker);

}  // namespace spaces_core

#endif  // SPACES_OS_H
