// pagemap.cpp - which addresses belong to Spaces, answered without touching the address.
//
// Two bitmaps over the 47-bit user address space, in leaves of 4 GiB each (8 320 bytes of bitmaps and 64 KiB of back offsets, 76 KiB mapped) under a static
// root (internal.h): leaves are made when Spaces first maps memory in their 4 GiB window (an
// arena or a direct mapping registers its region first), installed by compare-and-swap (the loser
// unmaps its copy) and never freed, so a reader can always follow a pointer it loaded.
//   heads : 1 bit per 64 KiB granule: set while the granule starts a live slab, an emptied slab
//           held by a heap, or a large block (the arenas' census walks it). Its byte in `back`
//           says the same (kBackSlab or kBackHead): free() tests that before reading any header, so a
//           foreign pointer never faults.
//   arenas: 1 bit per 4 MiB: set for every 4 MiB window that holds an arena or part of a direct
//           mapping. spaces_owns() uses it for interior pointers.
//   back  : 1 byte per granule: kBackSlab at the head of a size-class slab (its header is
//           coloured: internal.h, slab_colour), kBackHead at any other head; in a medium slab (several granules, one
//           header), how far back the header is: slab_find() uses it for blocks past the slab's
//           first granule; else 0.
// Readers use relaxed loads (the free fast path a plain read of the head byte: internal.h,
// pagemap_is_head_fast): a pointer handed to another thread was published with its own
// synchronisation, which orders the leaf install and the head's byte and bit before it. Address space: the
// root's 256 KiB of .bss plus 76 KiB per 4 GiB window in use (pages of it that are never written cost no memory) (a flat map was 260 MiB reserved,
// which RLIMIT_AS counts: a 64 MiB limit could not even start).
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {

PageMap g_map;  // zero-initialised .bss: no constructor

bool pagemap_init() { return true; }

namespace {
PageLeaf* pagemap_make_leaf(uintptr_t i) {
  PageLeaf* l = g_map.leaves[i].load(std::memory_order_acquire);
  if (l) return l;
  PageLeaf* fresh = static_cast<PageLeaf*>(os_map(sizeof(PageLeaf)));
  if (fresh == nullptr) return nullptr;
  if (g_map.leaves[i].compare_exchange_strong(l, fresh, std::memory_order_acq_rel)) return fresh;
  os_unmap(fresh, sizeof(PageLeaf));  // another thread installed one first
  return l;
}
}  // namespace

SPACES_HOT_TEXT void pagemap_set_head(uintptr_t addr, bool on, uint8_t mark) {
  SPACES_ASSERT((addr & kSlabMask) == 0 && (mark == kBackHead || mark == kBackSlab));
  PageLeaf* l = g_map.leaves[addr >> kLeafShift].load(std::memory_order_relaxed);
  SPACES_ASSERT(l != nullptr);  // the region was registered first
  uint64_t bit = uint64_t(1) << ((addr >> kSlabShift) & 63);
  std::atomic<uint64_t>& w = l->heads[(addr >> kArenaShift) & (kLeafWords - 1)];
  uint8_t* b = &l->back[(addr >> kSlabShift) & (kLeafWords * 64 - 1)];
  if (on) {
    // (readers of either rely on the block's own hand-off, which comes after this call)
    __atomic_store_n(b, mark, __ATOMIC_RELEASE);
    w.fetch_or(bit, std::memory_order_release);
  } else {
    w.fetch_and(~bit, std::memory_order_release);
    __atomic_store_n(b, uint8_t(0), __ATOMIC_RELEASE);
  }
}

SPACES_HOT_TEXT bool pagemap_prepare(uintptr_t start, size_t size) {
  for (uintptr_t i = start >> kLeafShift; i <= (start + size - 1) >> kLeafShift; i++)
    if (i >= kRootEntries || pagemap_make_leaf(i) == nullptr) return false;
  return true;
}

SPACES_HOT_TEXT bool pagemap_set_region(uintptr_t start, size_t size, bool on) {
  uintptr_t first = start >> kArenaShift;
  uintptr_t last = (start + size - 1) >> kArenaShift;
  if (on && !pagemap_prepare(start, size)) return false;
  for (uintptr_t i = first; i <= last; i++) {
    PageLeaf* l = g_map.leaves[i >> (kLeafShift - kArenaShift)].load(std::memory_order_relaxed);
    if (l == nullptr) continue;  // (clearing a region whose leaf was never made)
    std::atomic<uint64_t>& w = l->arenas[(i & (kLeafWords - 1)) >> 6];
    uint64_t bit = uint64_t(1) << (i & 63);
    if (on)
      w.fetch_or(bit, std::memory_order_release);
    else
      w.fetch_and(~bit, std::memory_order_release);
  }
  return true;
}

void pagemap_set_back(uintptr_t slab, unsigned granules, bool on) {
  PageLeaf* l = g_map.leaves[slab >> kLeafShift].load(std::memory_order_relaxed);
  SPACES_ASSERT(l != nullptr && granules <= kSlabsPerArena);  // (a slab never crosses an arena)
  uintptr_t g = slab >> kSlabShift;
  for (unsigned i = 1; i < granules; i++)
    __atomic_store_n(&l->back[(g + i) & (kLeafWords * 64 - 1)], uint8_t(on ? i : 0), __ATOMIC_RELAXED);
}

bool pagemap_in_region(uintptr_t p) {
  PageLeaf* l = pagemap_leaf(p);
  if (l == nullptr) return false;
  uintptr_t i = p >> kArenaShift;
  return (l->arenas[(i & (kLeafWords - 1)) >> 6].load(std::memory_order_relaxed) >> (i & 63)) & 1;
}

}  // namespace spaces_core
