// fuzz_mt.cpp - the multithreaded fuzz target: two or three threads run op streams at once.
//
// Record i of the input belongs to thread i % threads. Every thread has its own Model (its thread
// heap blocks, its two EXCLUSIVE regions in slots 2 and 3, its TypedPools) and all of them
// allocate at once in two shared regions (slots 0 and 1), whose ceilings come from header[1].
// `switch` hands one of the thread's blocks (thread heap or shared region) to another thread's
// inbox; `lane_exit` takes the inbox and frees what arrived (a cross-thread free) or adopts it.
//
// While the threads run, the checks on the shared regions are those that hold under concurrency:
// footprint and peak never above the ceiling, NULL only with ENOMEM and a ceiling. After they
// have been joined, the shared regions are checked exactly against the union of the models and
// the inboxes: live and large block counts, footprint == slabs x 64 KiB + large costs, ceiling
// hits == NULLs returned, walk == live set (a lost cross-thread free shows up here), and no two
// blocks of all threads overlap.
//
// With header[1] bit 7, shared region 1 is a region in shared memory (spaces_chunk_create_shared,
// 4 or 16 MiB by header[0] bit 7, its name unlinked at once): the threads' frees and handoffs
// then go through shared.cpp's process-shared lock, its usable sizes and runs are checked as
// fuzz_ops checks them, and the final check adds its metadata granule to the footprint formula,
// requires live_bytes == the usable sizes exactly and between D and D + 57 slabs for D slabs
// holding live blocks (at most one emptied slab stays per size class).
#include "ops.h"

#include <thread>

namespace {

using fuzz::Block;
using fuzz::Model;

void close_shm(fuzz::MtShared& sh) {
  for (int r = 0; r < 2; r++)
    if (sh.regions[r].live && sh.regions[r].shm) fuzz::shm_close_slot(sh.regions[r]);
}

void final_check(fuzz::MtShared& sh, std::vector<std::unique_ptr<Model>>& models) {
  fuzz::t_opname = "final check";
  std::vector<const Block*> all;
  for (auto& m : models)
    for (int o = 0; o <= fuzz::kSlots; o++)
      for (uint32_t id : m->owned(o)) all.push_back(&m->rec(id));
  for (int t = 0; t < sh.nthreads; t++)
    for (const Block& b : sh.inbox[t]) {
      if (!models[0]->verify(b, "left in an inbox")) return;
      all.push_back(&b);
    }
  // no overlap between the live blocks of all threads
  std::sort(all.begin(), all.end(), [](const Block* a, const Block* b) { return a->p < b->p; });
  for (size_t i = 1; i < all.size(); i++)
    if (all[i - 1]->p + all[i - 1]->usable > all[i]->p)
      return fuzz::fail("blocks %p (%zu usable, thread %d) and %p (thread %d) overlap",
                        static_cast<void*>(all[i - 1]->p), all[i - 1]->usable, all[i - 1]->lane,
                        static_cast<void*>(all[i]->p), all[i]->lane);
  for (int r = 0; r < 2; r++) {
    fuzz::ChunkSlot& s = sh.regions[r];
    std::vector<const Block*> blocks;
    size_t nlarge = 0, cost = 0, usable = 0;
    for (const Block* b : all)
      if (b->owner == 1 + r) {
        blocks.push_back(b);
        usable += b->usable;
        if (b->cost) nlarge++, cost += b->cost;
      }
    fuzz::ChunkStats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (spaces_chunk_stats(s.h, &st) != 0) return fuzz::fail("stats of shared region %d failed", r);
    if (st.live_blocks != blocks.size() || st.large_blocks != nlarge || st.live_bytes < usable)
      return fuzz::fail("shared region %d: live_blocks %zu large %zu bytes %zu, model %zu / %zu / >= %zu", r,
                        st.live_blocks, st.large_blocks, st.live_bytes, blocks.size(), nlarge, usable);
    size_t meta = s.shm ? s.meta * fuzz::kSlab : 0;
    if (st.footprint != meta + st.slabs * fuzz::kSlab + cost)
      return fuzz::fail("shared region %d: footprint %zu != %zu + %zu slabs x 64 KiB + %zu of large blocks", r,
                        st.footprint, meta, st.slabs, cost);
    if (s.shm) {
      std::vector<uintptr_t> slabs;
      for (const Block* b : blocks)
        if (!b->cost) slabs.push_back((reinterpret_cast<uintptr_t>(b->p) - 1 - s.base) / fuzz::kSlab);
      std::sort(slabs.begin(), slabs.end());
      size_t d = size_t(std::unique(slabs.begin(), slabs.end()) - slabs.begin());
      if (st.live_bytes != usable || st.slabs < d || st.slabs > d + 57)
        return fuzz::fail("shared-memory region %d: live_bytes %zu (blocks: %zu), %zu slabs for %zu holding blocks", r,
                          st.live_bytes, usable, st.slabs, d);
    }
    if (s.ceiling && (st.footprint > s.ceiling || st.peak_footprint > s.ceiling))
      return fuzz::fail("shared region %d: footprint %zu, peak %zu, ceiling %zu", r, st.footprint, st.peak_footprint,
                        s.ceiling);
    if (st.ceiling_hits != sh.nulls[r].load())
      return fuzz::fail("shared region %d: ceiling_hits %zu, threads saw %zu refusals", r, st.ceiling_hits,
                        sh.nulls[r].load());
    std::vector<fuzz::WalkEntry> seen;
    seen.reserve(blocks.size() + 16);
    if (spaces_chunk_walk(s.h, Model::walk_collect, &seen) != 0)
      return fuzz::fail("walk of shared region %d failed", r);
    Model::match_walk(seen, blocks, r == 0 ? "walk of shared region 0" : "walk of shared region 1");
    if (fuzz::g_failed) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::process_init();
  fuzz::Input in(data, size);
  fuzz::g_failed = false;
  fuzz::t_who = 0;
  fuzz::apply_options(in.h0);
  fuzz::MtShared sh;
  sh.nthreads = 2 + (in.h1 & 1);
  static const size_t kCeil[8] = {0, size_t(256) << 10, size_t(1) << 20, size_t(2) << 20,
                                  size_t(4) << 20, size_t(8) << 20, size_t(16) << 20, size_t(64) << 10};
  for (int r = 0; r < 2; r++) {
    fuzz::ChunkSlot& s = sh.regions[r];
    size_t c = kCeil[(in.h1 >> (1 + 3 * r)) & 7];
    if (r == 1 && (in.h1 & 0x80)) {
      if (!fuzz::shm_create_slot(s, (in.h0 & 0x80) ? size_t(4) << 20 : size_t(16) << 20, false)) {
        close_shm(sh);
        return 0;
      }
      if (c == 0 || c > s.total) c = s.total;  // (its capacity is its ceiling)
    } else {
      s.h = spaces_chunk_create(0);
      if (!s.h) {
        fuzz::fail("spaces_chunk_create(0) failed");
        close_shm(sh);
        return 0;
      }
      s.live = true;
    }
    s.shared = true;
    s.ceiling = c;
    s.nulls = &sh.nulls[r];
    spaces_chunk_set_ceiling(s.h, s.ceiling);
    if (spaces_chunk_ceiling(s.h) != c) {
      fuzz::fail("shared region %d: ceiling %zu, set %zu", r, spaces_chunk_ceiling(s.h), c);
      close_shm(sh);
      return 0;
    }
  }
  std::vector<std::unique_ptr<Model>> models;
  for (int t = 0; t < sh.nthreads; t++) {
    models.emplace_back(new Model(&sh));
    models.back()->self = t;
    models.back()->live_cap = size_t(24) << 20;
  }
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < sh.nthreads; t++)
    threads.emplace_back([&, t] {
      fuzz::t_who = t + 1;
      ready.fetch_add(1);
      while (ready.load() < sh.nthreads) std::this_thread::yield();  // start together
      for (size_t i = size_t(t); i < in.nrec && !fuzz::g_failed; i += size_t(sh.nthreads)) {
        fuzz::t_opno = i;
        models[t]->exec(in.rec(i), 0);
      }
    });
  for (auto& th : threads) th.join();
  fuzz::t_opno = in.nrec;
  if (!fuzz::g_failed) final_check(sh, models);
  if (fuzz::g_failed) return close_shm(sh), 0;  // leave a possibly corrupt allocator alone (detach)
  for (auto& m : models) m->cleanup();
  for (int t = 0; t < sh.nthreads && !fuzz::g_failed; t++)
    for (const Block& b : sh.inbox[t]) spaces_free(b.p);
  if (fuzz::g_failed) return close_shm(sh), 0;
  for (int r = 0; r < 2; r++) {
    fuzz::ChunkSlot& s = sh.regions[r];
    fuzz::ChunkStats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (spaces_chunk_stats(s.h, &st) != 0 || st.live_blocks != 0 || st.large_blocks != 0 ||
        (s.shm && (st.live_bytes != 0 || st.slabs > 57 || st.footprint != (s.meta + st.slabs) * fuzz::kSlab)))
      return fuzz::fail("shared region %d: %zu blocks (%zu bytes) live, %zu slabs, footprint %zu after every block "
                        "was freed",
                        r, st.live_blocks, st.live_bytes, st.slabs, st.footprint),
             close_shm(sh), 0;
    if (s.shm) fuzz::shm_close_slot(s);
    else spaces_chunk_destroy(s.h);
  }
  return 0;
}
