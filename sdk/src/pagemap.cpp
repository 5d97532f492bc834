// pagemap.cpp - which addresses belong to Spaces, answered without touching the address.
//
// Two bitmaps over the 47-bit user address space, reserved (MAP_NORESERVE, never written
// except where Spaces maps memory) at initialisation:
//   heads : 1 bit per 64 KiB granule (256 MiB of address space, a few pages of RAM): set while
//           the granule starts a live slab, an emptied slab held by a heap, or a large block.
//           free() tests it before reading any header, so a foreign pointer never faults.
//   arenas: 1 bit per 4 MiB: set for every 4 MiB window that holds an arena or part of a direct
//           mapping. spaces_owns() uses it for interior pointers.
// Readers use relaxed loads: a pointer handed to another thread was published with its own
// synchronisation, which orders the bit-set before it.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {

PageMap g_map = {0, nullptr, nullptr};

bool pagemap_init() {
  size_t head_words = kAddressLimit >> kArenaShift;           // 2^25 words = 256 MiB
  size_t region_words = (kAddressLimit >> kArenaShift) >> 6;  // 2^19 words = 4 MiB
  void* h = os_map(head_words * 8, false);
  void* r = os_map(region_words * 8, false);
  if (h == nullptr || r == nullptr) return false;
  g_map.heads = static_cast<std::atomic<uint64_t>*>(h);
  g_map.arenas = static_cast<std::atomic<uint64_t>*>(r);
  __atomic_store_n(&g_map.limit, kAddressLimit, __ATOMIC_RELEASE);
  return true;
}

void pagemap_set_head(uintptr_t addr, bool on) {
  uint64_t bit = uint64_t(1) << ((addr >> kSlabShift) & 63);
  std::atomic<uint64_t>& w = g_map.heads[addr >> kArenaShift];
  if (on)
    w.fetch_or(bit, std::memory_order_release);
  else
    w.fetch_and(~bit, std::memory_order_release);
}

void pagemap_set_region(uintptr_t start, size_t size, bool on) {
  uintptr_t first = start >> kArenaShift;
  uintptr_t last = (start + size - 1) >> kArenaShift;
  for (uintptr_t i = first; i <= last; i++) {
    uint64_t bit = uint64_t(1) << (i & 63);
    if (on)
      g_map.arenas[i >> 6].fetch_or(bit, std::memory_order_release);
    else
      g_map.arenas[i >> 6].fetch_and(~bit, std::memory_order_release);
  }
}

bool pagemap_in_region(uintptr_t p) {
  if (p >= g_map.limit) return false;
  uintptr_t i = p >> kArenaShift;
  return (g_map.arenas[i >> 6].load(std::memory_order_relaxed) >> (i & 63)) & 1;
}

}  // namespace spaces_core
