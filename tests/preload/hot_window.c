// The code a malloc-only program runs lies in the first 64 KiB window of libspaces.so's text
// (docs/design.md, "The library's own resident pages"). The kernel maps a file's pages 64 KiB
// around each fault, so one function outside that window that such a program calls costs every
// process 64 KiB of RSS. Run under LD_PRELOAD=libspaces.so: a mix of what programs do (every
// size range, realloc, calloc, aligned allocation, frees from other threads, threads that exit),
// then two checks:
//   - the library's DT_FINI and .fini_array destructors, which the loader calls at exit, are in
//     the window (pages touched at exit are not present yet when the check runs);
//   - no page of the text past the window is present (/proc/self/pagemap).
// A failure names the offsets present: `nm -C libspaces.so` says which function to mark
// SPACES_HOT_TEXT (src/os.h).
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { kWindow = 64 << 10, kPage = 4096, kBlocks = 256 };

static void* volatile g_sink;
static void* g_handed[kBlocks];

static size_t size_of(unsigned i) {
  static const size_t kSizes[] = {1, 24, 100, 640, 3000, 9000, 20000, 70000, 150000, 250000, 600000, 3u << 20};
  return kSizes[i % (sizeof kSizes / sizeof kSizes[0])];
}

static void* worker(void* arg) {
  unsigned t = (unsigned)(uintptr_t)arg;
  void* mine[kBlocks];
  for (int round = 0; round < 20; round++) {
    for (unsigned i = 0; i < kBlocks; i++) {
      size_t n = size_of(i + t + round);
      mine[i] = malloc(n);
      memset(mine[i], 1, n < 16 ? n : 16);
    }
    for (unsigned i = 0; i < kBlocks; i += 2) free(mine[i]);
    for (unsigned i = 1; i < kBlocks; i += 2) {
      mine[i] = realloc(mine[i], size_of(i + 3) + 1);
      g_sink = mine[i];
      free(mine[i]);
    }
  }
  if (t < 4)  // (the first four: blocks of the main thread, a quarter each)
    for (unsigned i = t; i < kBlocks; i += 4) free(g_handed[i]);
  return NULL;
}

struct Lib {
  uintptr_t base, text, text_end, fini, fini_array;
  size_t fini_array_bytes;
};
// A dynamic entry's address (the loader rewrites some in place to absolute ones; not these today)
static uintptr_t dyn_addr(uintptr_t base, uintptr_t v) { return v >= base ? v : base + v; }

static int find_lib(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  struct Lib* lib = data;
  if (strstr(info->dlpi_name, "libspaces.so") == NULL) return 0;
  lib->base = info->dlpi_addr;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
      lib->text = info->dlpi_addr + ph->p_vaddr;
      lib->text_end = lib->text + ph->p_memsz;
    }
    if (ph->p_type == PT_DYNAMIC)
      for (const ElfW(Dyn)* d = (const ElfW(Dyn)*)(info->dlpi_addr + ph->p_vaddr); d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_FINI) lib->fini = dyn_addr(info->dlpi_addr, d->d_un.d_ptr);
        else if (d->d_tag == DT_FINI_ARRAY) lib->fini_array = dyn_addr(info->dlpi_addr, d->d_un.d_ptr);
        else if (d->d_tag == DT_FINI_ARRAYSZ) lib->fini_array_bytes = d->d_un.d_val;
  }
  return 1;
}

int main(void) {
  for (unsigned i = 0; i < kBlocks; i++) g_handed[i] = calloc(1, size_of(i * 7));
  void* p = NULL;
  if (posix_memalign(&p, 4096, 5000) != 0) return 2;
  g_sink = aligned_alloc(64, 640);
  free(g_sink);
  g_sink = memalign(1 << 16, 100);
  free(g_sink);
  printf("usable %zu\n", malloc_usable_size(p));
  free(p);
  pthread_t th[4];
  for (unsigned t = 0; t < 4; t++) pthread_create(&th[t], NULL, worker, (void*)(uintptr_t)t);
  for (unsigned t = 0; t < 4; t++) pthread_join(th[t], NULL);
  for (unsigned t = 0; t < 4; t++) {  // (threads that start, allocate and exit once more)
    pthread_create(&th[t], NULL, worker, (void*)(uintptr_t)(t + 4));
    pthread_join(th[t], NULL);
  }

  struct Lib lib = {0, 0, 0, 0, 0, 0};
  if (!dl_iterate_phdr(find_lib, &lib) || lib.text == 0) {
    fprintf(stderr, "libspaces.so is not loaded (run with LD_PRELOAD=libspaces.so)\n");
    return 1;
  }
  uintptr_t window = lib.text & ~(uintptr_t)(kWindow - 1), window_end = window + kWindow;
  int bad = 0;
  if (lib.fini != 0 && (lib.fini < window || lib.fini >= window_end)) {
    fprintf(stderr, "DT_FINI at 0x%lx: past the first window of the text\n", (unsigned long)(lib.fini - lib.base));
    bad = 1;
  }
  // (no DT_FINI at all is fine: nothing to run)
  for (size_t i = 0; lib.fini_array != 0 && i < lib.fini_array_bytes / sizeof(uintptr_t); i++) {
    uintptr_t f = ((const uintptr_t*)lib.fini_array)[i];  // (relocated: absolute)
    if (f != 0 && f != (uintptr_t)-1 && (f < window || f >= window_end)) {
      fprintf(stderr, "destructor %zu (.fini_array) at 0x%lx: past the first window of the text\n", i,
              (unsigned long)(f - lib.base));
      bad = 1;
    }
  }
  int pm = open("/proc/self/pagemap", O_RDONLY);
  if (pm < 0) {
    perror("/proc/self/pagemap");
    return 1;
  }
  unsigned present = 0;
  for (uintptr_t a = window_end; a < lib.text_end; a += kPage) {
    uint64_t e = 0;
    if (pread(pm, &e, sizeof e, (off_t)(a / kPage * sizeof e)) != (ssize_t)sizeof e) {
      perror("pread pagemap");
      return 1;
    }
    if (e >> 63) {
      if (present++ < 16) fprintf(stderr, "text page 0x%lx (an address as nm prints it) is present\n", (unsigned long)(a - lib.base));
      bad = 1;
    }
  }
  close(pm);
  printf("text: %lu KiB, first window 64 KiB, pages present past it: %u\n",
         (unsigned long)((lib.text_end - window) >> 10), present);
  return bad;
}
