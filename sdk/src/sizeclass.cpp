// sizeclass.cpp - the size-class map.
//
// Classes: 8, then 16..128 in steps of 16 (every block of 16 B or more is 16-byte aligned, so no
// 24/40/56 classes), then eight classes per power of two from 128 B to 256 KiB: 57 small classes
// (up to 8 KiB, one-granule slabs) and 40 medium ones (multi-granule slabs, `granules`). Above
// 128 B the worst internal waste is 1/9 (11.1 %), between 64 and 128 B it is the 16-byte step (at
// most 15 of 80 bytes). The tables are built at compile time: no static constructor.
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

namespace spaces_core {
namespace {

constexpr uint32_t class_size_at(unsigned c) {
  if (c == 0) return 8;
  if (c <= 8) return 16 * c;  // 16 .. 128
  unsigned k = (c - 9) / 8;   // which power of two above 128
  unsigned i = (c - 9) % 8 + 1;
  uint32_t base = 128u << k;
  return base + i * (base / 8);
}

constexpr ClassTables make_tables() {
  ClassTables t{};
  for (unsigned c = 0; c < kNumClasses; c++) {
    uint32_t d = class_size_at(c);
    t.size[c] = d;
    t.magic[c] = uint32_t(((uint64_t(1) << 32) + d - 1) / d);
    uint8_t k = 0;
    while (((d >> k) & 1) == 0) k++;
    uint32_t odd = d >> k, x = odd;  // Newton: each step doubles the correct low bits (3 to start)
    for (int i = 0; i < 5; i++) x *= 2 - odd * x;
    t.inv[c] = x;
    t.shift[c] = k;
    // Medium slabs: a power of two of granules (so emptied slabs of neighbouring classes share
    // them) holding at least 4 blocks after the header, at most 16 granules (1 MiB: the 256 KiB
    // class holds 3). Larger slabs fragment the arenas: a 2 MiB run is rarely free among
    // reused granules, so it would be cut from clean memory that small slabs then fill.
    uint8_t g = 1;
    if (d > kSmallMax)
      while (g < 16 && (size_t(g) << kSlabShift) < kSlabHeader + 4 * size_t(d)) g = uint8_t(g * 2);
    t.granules[c] = g;
  }
  unsigned c = 0;
  for (size_t i = 0; i <= kSmallMax / 8; i++) {
    size_t size = i * 8;  // the largest request that maps to index i
    while (t.size[c] < size) c++;
    t.of[i] = static_cast<uint8_t>(c);
  }
  return t;
}

static_assert(class_size_at(kNumSmallClasses - 1) == kSmallMax, "last small class must be 8 KiB");
static_assert(class_size_at(kNumClasses - 1) == kMediumMax, "last class must be 256 KiB");

}  // namespace

constexpr ClassTables g_classes = make_tables();
static_assert(g_classes.inv[20] * (g_classes.size[20] >> g_classes.shift[20]) == 1, "odd inverse");
static_assert(g_classes.of[0] == 0 && g_classes.of[1] == 0 && g_classes.of[2] == 1, "8/16 B");

}  // namespace spaces_core
