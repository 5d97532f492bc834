// fuzz_ops.cpp - the single-stream fuzz target: one op stream, one model, several lanes.
//
// A lane is a thread that runs ops only while it holds the turn (lane 0 is the calling thread).
// `switch` ops pass the turn, so blocks allocated by one lane's thread heap are freed, reallocated
// and checked by another: real cross-thread frees (remote pushes, notify lists, adoption of the
// heaps of lanes that exit), yet the run is deterministic and one Model sees everything. Each
// hand-over is a mutex + condition variable edge, so EXCLUSIVE regions may move between lanes.
// Lane threads persist across inputs; `lane_exit` ends one (its heap is abandoned, its blocks stay
// live in the model) and the next switch to it starts a fresh thread.
#include "ops.h"

#include <condition_variable>
#include <functional>
#include <thread>

namespace {

using fuzz::Model;
constexpr int kMaxLanes = 3;
constexpr int kEnd = -2;

class Lanes {
  struct Lane {
    std::thread t;
    std::mutex m;
    std::condition_variable cv;
    std::function<int()> job;
    int result = 0;
    bool has_job = false, done = false, quit = false, alive = false;
  };
  Lane lanes_[kMaxLanes];

  static void lane_main(Lane* l, int k) {
    fuzz::t_who = k;
    std::unique_lock<std::mutex> g(l->m);
    for (;;) {
      l->cv.wait(g, [&] { return l->has_job || l->quit; });
      if (!l->has_job) return;  // quit
      g.unlock();
      int r = l->job();
      g.lock();
      l->has_job = false;
      l->done = true;
      l->result = r;
      l->cv.notify_all();
      if (r == Model::kExitSelf) return;
    }
  }

 public:
  // Runs fn on lane k's thread (started if needed) and waits for it.
  int run_on(int k, std::function<int()> fn) {
    Lane& l = lanes_[k];
    if (!l.alive) {
      l.quit = false;
      l.t = std::thread(lane_main, &l, k);
      l.alive = true;
    }
    int r;
    {
      std::unique_lock<std::mutex> g(l.m);
      l.job = std::move(fn);
      l.has_job = true;
      l.done = false;
      l.cv.notify_all();
      l.cv.wait(g, [&] { return l.done; });
      r = l.result;
    }
    if (r == Model::kExitSelf) {
      l.t.join();
      l.alive = false;
    }
    return r;
  }
  // Ends idle lane k's thread (its heap goes to the pool of abandoned heaps).
  void kill(int k) {
    Lane& l = lanes_[k];
    if (!l.alive) return;
    {
      std::lock_guard<std::mutex> g(l.m);
      l.quit = true;
      l.cv.notify_all();
    }
    l.t.join();
    l.alive = false;
  }
};

Lanes& lanes() {
  static Lanes* l = new Lanes;  // never destroyed: idle lane threads just die with the process
  return *l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::process_init();
  fuzz::Input in(data, size);
  fuzz::g_failed = false;
  fuzz::t_who = 0;
  fuzz::apply_options(in.h0);
  Model m;
  m.lanes = 1 + in.h1 % kMaxLanes;
  size_t i = 0;
  auto run = [&](int lane) -> int {
    while (i < in.nrec && !fuzz::g_failed) {
      fuzz::t_opno = i;
      int a = m.exec(in.rec(i++), lane);
      if (a >= Model::kKillLane) {
        lanes().kill(a - Model::kKillLane);
        continue;
      }
      if (a != Model::kGoOn) return a;
    }
    return kEnd;
  };
  int cur = 0;
  for (;;) {
    int next = cur == 0 ? run(0) : lanes().run_on(cur, [&run, cur] { return run(cur); });
    if (next == kEnd) break;
    cur = next == Model::kExitSelf ? 0 : next;
  }
  fuzz::t_opno = in.nrec;
  m.cleanup();
  return 0;
}
