#!/usr/bin/env python3
"""Writes the hand-made seed corpus (corpus/ops, corpus/mt) and the hand-minimised regression
inputs (regressions/) of the Spaces fuzzers. The byte format is described at the top of ops.h;
op numbers below are its `enum Op`. Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

(MALLOC, CALLOC, REALLOC, ALIGNED, FREE, FREE_SIZED, USABLE, CHUNK_CREATE, CHUNK_ALLOC, CHUNK_ALIGNED,
 CHUNK_REALLOC, CHUNK_FREE, CHUNK_RESET, CHUNK_DESTROY, SET_CEILING, WALK, STATS, POOL_CREATE, POOL_NEW,
 POOL_DELETE, POOL_DESTROY, SWITCH, LANE_EXIT, COLLECT, VERIFY_ALL, IMPOSSIBLE, PRESSURE, CAPTURE, BURST) = range(29)
NUM_OPS = 29


def size(n):
    """The 32-bit `val` that decode_size() turns into exactly n bytes."""
    if n <= 8192:
        return (n << 4) | 9
    if n <= 262144:
        return ((n - 8193) << 4) | 13
    if n < 4200000:
        return ((n - 262144) << 4) | 14
    special = {2 << 20: 11, 4 << 20: 13, 5 << 20: 14, 6 << 20: 15}
    return (special[n] << 4) | 15


M64 = (1 << 64) - 1


def mix64(x):
    """ops.h's mix64."""
    x &= M64
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def shm_capacity(val):
    """The capacity (and long-name choice) Model::create_shm derives from `val`."""
    x = mix64(val ^ 0x53686d52)
    c = x & 3
    cap = [256 << 10, (4 + (x >> 8) % 253) * 65536, (256 << 10) + (x >> 8) % ((16 << 20) - (256 << 10) + 1),
           16 << 20][c]
    return cap, (x >> 40) % 8 == 0


def shm(cap, long_name=False):
    """A `val` for chunk_create (sel bit 3) that makes a shared-memory region of `cap` bytes."""
    v = 0
    while shm_capacity(v) != (cap, long_name):
        v += 1
    return v


def size_top(n, top):
    """A `val` that decode_size() turns into n <= 8192 bytes with `top` in its bits 28-31 (which
    chunk_aligned_alloc adds to the alignment exponent)."""
    low = (n - (top << 24)) % 8193
    return (top << 28) | (low << 4) | 9


class Prog:
    def __init__(self, h0=0, h1=0):
        self.b = bytearray([h0, h1])

    def op(self, op, sel=0, val=0):
        self.b += struct.pack('<BBI', op, sel & 0xff, val & 0xffffffff)
        return self

    def write(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(bytes(self.b))


def rnd_prog(rng, nrec, h1, favour=()):
    p = Prog(rng.randrange(256), h1)
    for _ in range(nrec):
        op = rng.randrange(256)
        if favour and rng.random() < 0.5:
            op = rng.choice(favour)
        p.op(op, rng.randrange(256), rng.getrandbits(32))
    return p


def seeds():
    out = os.path.join(HERE, 'corpus', 'ops')
    # heap basics: sizes across classes and paths, usable_size, sized frees, calloc
    p = Prog()
    for n in (0, 1, 7, 8, 9, 16, 17, 100, 128, 129, 1000, 4096, 8191, 8192, 8193, 65280, 65281, 300000):
        p.op(MALLOC, 0, size(n)).op(USABLE, 0, n)
    for i in range(6):
        p.op(FREE_SIZED, 0, i).op(FREE, 0, i * 7)
    p.op(CALLOC, 3, size(3000)).op(CALLOC, 0, size(100000)).op(VERIFY_ALL)
    p.write(os.path.join(out, 'heap_basics'))
    # realloc chains: grow, shrink, to zero, from NULL
    p = Prog()
    p.op(MALLOC, 0, size(10))
    for mode in (1, 1, 1, 0, 2, 2, 1, 3):
        p.op(REALLOC, mode, size(20000) if mode == 0 else 0x12345)
    p.op(REALLOC, 4, size(700)).op(REALLOC, 0, size(5 << 20)).op(REALLOC, 0, size(6 << 20)).op(REALLOC, 2, 77)
    p.write(os.path.join(out, 'realloc_chain'))
    # aligned allocation, every alignment from 1 B to 1 MiB, aligned_alloc and posix_memalign
    p = Prog()
    for e in range(21):
        p.op(ALIGNED, e, size(100)).op(ALIGNED, e | 0x80, size(9000))
    for i in range(10):
        p.op(FREE_SIZED, 0, i)
    p.write(os.path.join(out, 'aligned'))
    # regions: exclusive and shared, alloc/realloc/free, walk, stats, reset, destroy
    p = Prog()
    p.op(CHUNK_CREATE, 4 | 0).op(CHUNK_CREATE, 1)
    for i, n in enumerate((8, 24, 200, 3000, 8192, 9000, 70000, 5 << 20)):
        p.op(CHUNK_ALLOC, 0, size(n)).op(CHUNK_ALLOC, 1 | 8, size(n))
    p.op(CHUNK_ALIGNED, 0 | (9 << 4), size(100)).op(CHUNK_ALIGNED, 1 | (15 << 4), size(100))
    p.op(CHUNK_REALLOC, 0, size(5000)).op(CHUNK_REALLOC, 1 | 16, size(70000))
    p.op(WALK, 0).op(WALK, 1 | 12).op(STATS, 0).op(STATS, 1 | 8).op(CHUNK_FREE, 0, 3).op(CHUNK_FREE, 1, 5)
    p.op(WALK, 0 | 8, 1).op(CHUNK_RESET, 0).op(STATS, 0).op(CHUNK_ALLOC, 0, size(64)).op(CHUNK_DESTROY, 1)
    p.op(CHUNK_ALLOC, 1, size(64)).op(STATS, 1)
    p.write(os.path.join(out, 'regions'))
    # ceilings: set small, allocate until refused, lower below the footprint, raise, remove
    p = Prog()
    p.op(CHUNK_CREATE, 4).op(SET_CEILING, 0 | (5 << 2), 3)  # 512 KiB
    for i in range(40):
        p.op(CHUNK_ALLOC, 0, size(20000 + i * 100))
    p.op(STATS, 0).op(SET_CEILING, 0 | (1 << 2)).op(CHUNK_ALLOC, 0, size(100)).op(CHUNK_ALLOC, 0, size(9000))
    p.op(CHUNK_FREE, 0, 1).op(CHUNK_FREE, 0, 2).op(CHUNK_ALLOC, 0, size(9000))
    p.op(SET_CEILING, 0 | (3 << 2), 2).op(CHUNK_ALLOC, 0, size(3000)).op(SET_CEILING, 0 | (6 << 2))
    p.op(CHUNK_ALLOC, 0, size(16)).op(SET_CEILING, 0).op(CHUNK_ALLOC, 0, size(300000)).op(STATS, 0)
    p.write(os.path.join(out, 'ceiling'))
    # pressure handler: evict, raise the ceiling, refuse
    p = Prog()
    for mode in (1, 2, 3):
        k = mode
        p.op(CHUNK_CREATE, k).op(SET_CEILING, k | (5 << 2), 2).op(PRESSURE, k | (mode << 2), 5)
        for i in range(30):
            p.op(CHUNK_ALLOC, k, size(30000))
        p.op(STATS, k).op(PRESSURE, k)
    p.write(os.path.join(out, 'pressure'))
    # capture: malloc routed into an exclusive region, at and below its ceiling
    p = Prog()
    p.op(CHUNK_CREATE, 4).op(CHUNK_CREATE, 1)
    for n in (8, 100, 5000, 9000, 100000):
        p.op(CAPTURE, 0, size(n)).op(CAPTURE, 8, size(n) | (3 << 28)).op(CAPTURE, 1, size(n))
    p.op(SET_CEILING, 0 | (2 << 2)).op(CAPTURE, 0, size(200000)).op(STATS, 0).op(WALK, 0)
    p.write(os.path.join(out, 'capture'))
    # TypedPool: create, new, delete, destroy with live objects
    p = Prog()
    for i in range(2):
        p.op(POOL_CREATE, i)
        for j in range(50):
            p.op(POOL_NEW, i)
        for j in range(20):
            p.op(POOL_DELETE, i, j * 31)
        p.op(POOL_DESTROY, i).op(POOL_NEW, i)
    p.write(os.path.join(out, 'typed_pool'))
    # lanes: three threads take turns, free each other's blocks, one exits and comes back
    p = Prog(0, 2)
    for lane in (0, 1, 2, 1, 0, 2):
        p.op(SWITCH, lane)
        for n in (24, 500, 9000):
            p.op(MALLOC, 0, size(n)).op(CHUNK_ALLOC, 4, size(n))
        p.op(FREE, 0, lane * 13).op(CHUNK_FREE, 0, lane * 7)
    p.op(LANE_EXIT, 1).op(MALLOC, 0, size(64)).op(SWITCH, 1).op(FREE, 0, 5).op(LANE_EXIT, 2).op(SWITCH, 2)
    p.op(FREE, 0, 3).op(WALK, 0).op(STATS, 0)
    p.write(os.path.join(out, 'lanes'))
    # impossible sizes and invalid arguments
    p = Prog()
    p.op(MALLOC, 0, size(100)).op(MALLOC, 0, size(300000)).op(CHUNK_ALLOC, 0, size(100))
    for sel in range(16):
        for v in (0, 3, 4, 5):
            p.op(IMPOSSIBLE, sel, v)
    p.write(os.path.join(out, 'impossible'))
    # options: purge at once, never, after 5 ms; no slab cache; keep 0/1/16 slabs on reset
    for h0 in (0x01, 0x02, 0x03 | 0x04, 0x08 | 0x20, 0x10 | 0x40, 0x18 | 0x01):
        p = Prog(h0, 1)
        for i in range(8):
            p.op(MALLOC, 0, size(70000)).op(CHUNK_ALLOC, 0, size(3000 * (i + 1))).op(FREE, 0, i)
        p.op(COLLECT, 6).op(CHUNK_RESET, 0).op(STATS, 0).op(CALLOC, 0, size(6 << 20)).op(COLLECT, 7)
        p.write(os.path.join(out, 'options_%02x' % h0))
    rng = random.Random(20241124)
    for i in range(6):
        rnd_prog(rng, 300, rng.randrange(256)).write(os.path.join(out, 'random_%d' % i))
    for name, fav in (('random_regions', (CHUNK_ALLOC, CHUNK_FREE, SET_CEILING, CHUNK_REALLOC, WALK)),
                      ('random_heap', (MALLOC, FREE, REALLOC, ALIGNED, FREE_SIZED))):
        rnd_prog(rng, 400, 2, fav).write(os.path.join(out, name))

    out = os.path.join(HERE, 'corpus', 'mt')
    # header[1]: bit 0 threads (2/3); bits 1-3 and 4-6 ceilings of the shared regions (index into
    # 0, 256K, 1M, 2M, 4M, 8M, 16M, 64K)
    for h1 in (0x00, 0x01 | (2 << 1) | (7 << 4), 0x01 | (1 << 1), (5 << 1) | (6 << 4)):
        p = Prog(0, h1)
        for i in range(100):
            t = i % (2 + (h1 & 1))
            p.op(CHUNK_ALLOC, i & 1, size(100 + 997 * i % 20000))
            p.op(SWITCH, 4 | ((i & 1) << 3), i).op(LANE_EXIT, i & 1).op(CHUNK_FREE, i & 1, i)
            p.op(MALLOC, 0, size(64 + i)).op(SWITCH, 0, i * 3)
        p.write(os.path.join(out, 'shared_regions_%02x' % h1))
    for i in range(4):
        rnd_prog(rng, 600, rng.randrange(256), (CHUNK_ALLOC, CHUNK_FREE, SWITCH, LANE_EXIT)).write(
            os.path.join(out, 'random_%d' % i))
    # bursts: every thread loops on the same shared region at once (small blocks of one class, or
    # large blocks against a 1 MiB / 256 KiB ceiling)
    for h1 in (0x01 | (2 << 1) | (1 << 4), 0x00 | (1 << 1)):
        p = Prog(0, h1)
        for i in range(60):
            p.op(BURST, (i & 1) | (8 if i % 3 == 0 else 0), (i * 0x01000193) | 0xff800000)
            p.op(SWITCH, 4 | ((i & 1) << 3), i).op(LANE_EXIT, 1).op(STATS, i & 1)
        p.write(os.path.join(out, 'bursts_%02x' % h1))
    # shared-memory regions in fuzz_mt: region 1 (header[1] bit 7; header[0] bit 7: 4 MiB, else
    # 16 MiB) under the threads' allocations, handoffs, cross-thread frees and bursts
    for h0, h1 in ((0x00, 0x80), (0x80, 0x81 | (7 << 4)), (0x00, 0x81 | (2 << 4)), (0x80, 0x80 | (1 << 4))):
        p = Prog(h0, h1)
        for i in range(90):
            p.op(CHUNK_ALLOC, 1 | (8 if i % 5 == 0 else 0), size([24, 700, 5000, 8192, 9000, 70000][i % 6]))
            p.op(CHUNK_ALIGNED, 1 | ((i % 16) << 4), size_top(100 + i, i % 6))
            p.op(SWITCH, 4 | 8, i).op(LANE_EXIT, i & 1).op(CHUNK_FREE, 1, i * 7)
            if i % 10 == 0:
                p.op(BURST, 1 | (8 if i % 20 == 0 else 0), (i * 0x01000193) | 0xff800000).op(STATS, 1)
            if i % 15 == 0:
                p.op(CHUNK_REALLOC, 1 | (1 << 2) | (16 if i & 1 else 0), i).op(USABLE, 2, i)
        p.write(os.path.join(out, 'shm_region_%02x_%02x' % (h0, h1)))
    out_ops = os.path.join(HERE, 'corpus', 'ops')
    shm_seeds(out_ops)
    p = Prog()
    p.op(CHUNK_CREATE, 4).op(SET_CEILING, 0 | (5 << 2), 4)
    for i in range(6):
        p.op(BURST, 8 if i & 1 else 0, 0xff000000 | i).op(STATS, 0).op(WALK, 0)
    p.op(BURST, 0x30, 0x7f000000)
    p.write(os.path.join(out_ops, 'bursts'))


def shm_seeds(out):
    """fuzz_ops seeds for regions in shared memory (chunk_create with sel bit 3; the capacity comes
    from val, see shm())."""
    # every region op on a 16 MiB region: sizes across the classes and runs, alignments 1 B - 1 MiB
    # (above 64 KiB: EINVAL), realloc in place and moved through both APIs, sized frees, walks,
    # stats, the root, reset, and spaces_chunk_destroy (reported) before the close
    p = Prog()
    p.op(CHUNK_CREATE, 8, shm(16 << 20))  # (with the create/open/unlink error checks)
    for i, n in enumerate((0, 1, 15, 16, 17, 100, 1024, 1025, 4096, 8191, 8192, 8193, 65280, 65536, 300000, 5 << 20)):
        p.op(CHUNK_ALLOC, 0 | (8 if i % 3 == 0 else 0), size(n)).op(USABLE, 1, i)
    for e in range(21):
        top, lo = (0, e) if e < 16 else (e - 15, 15)
        p.op(CHUNK_ALIGNED, 0 | (lo << 4), size_top([0, 24, 100, 3000, 8192][e % 5], top))
    p.op(STATS, 0)
    for mode, val in ((1, 0x1234), (1, 0x999), (2, 0x3010), (2, 0x70), (3, 0), (0, size(20000)), (0, size(16))):
        p.op(CHUNK_REALLOC, 0 | (mode << 2), val).op(CHUNK_REALLOC, 0 | (mode << 2) | 16, val + 77)
    p.op(STATS, 0 | 0x10, 2).op(STATS, 0, 0).op(STATS, 0 | 8)
    for i in range(8):
        p.op(FREE_SIZED, 1, i * 5).op(CHUNK_FREE, 0, i * 3)
    p.op(WALK, 0).op(WALK, 0 | (1 << 2), 3).op(WALK, 0 | (2 << 2), 1).op(WALK, 0 | (3 << 2)).op(STATS, 0)
    p.op(STATS, 0 | 0x10, 1).op(CHUNK_RESET, 0).op(STATS, 0)
    for n in (100, 9000, 100):
        p.op(CHUNK_ALLOC, 0, size(n))
    p.op(STATS, 0 | 0x10, 0).op(CHUNK_DESTROY, 0 | 4).op(CHUNK_ALLOC, 0 | 12, size(64)).op(CHUNK_DESTROY, 0)
    p.write(os.path.join(out, 'shm_basics'))
    # capacity: 256 KiB (3 granules for blocks), refusals, fragmentation (no run of 2 granules with
    # 2 free), ceilings below the capacity, pressure handlers that evict and raise the ceiling
    p = Prog()
    p.op(CHUNK_CREATE, 1 | 0x18, shm(256 << 10))
    for i in range(4):
        p.op(CHUNK_ALLOC, 1, size(60000))
    p.op(CHUNK_FREE, 1, 1).op(CHUNK_ALLOC, 1, size(100000)).op(CHUNK_FREE, 1, 0).op(CHUNK_ALLOC, 1, size(100000))
    p.op(STATS, 1).op(CHUNK_RESET, 1)
    for i in range(20):
        p.op(CHUNK_ALLOC, 1, size(8000)).op(CHUNK_ALLOC, 1, size(4000))
    for i in range(12):
        p.op(CHUNK_FREE, 1, i * 11)
    p.op(STATS, 1).op(SET_CEILING, 1 | (1 << 2)).op(CHUNK_ALLOC, 1, size(3000)).op(SET_CEILING, 1 | (6 << 2))
    p.op(CHUNK_ALLOC, 1, size(16)).op(SET_CEILING, 1 | (0 << 2)).op(STATS, 1)
    for mode in (1, 2):
        p.op(CHUNK_RESET, 1).op(SET_CEILING, 1 | (5 << 2), 1).op(PRESSURE, 1 | (mode << 2), 3)
        for i in range(10):
            p.op(CHUNK_ALLOC, 1, size(30000 + 1000 * i)).op(CHUNK_REALLOC, 1 | (1 << 2), i)
        p.op(STATS, 1).op(PRESSURE, 1)
    p.op(CHUNK_CREATE, 2 | 0x18, shm(3 << 20))
    for i in range(30):
        p.op(CHUNK_ALLOC, 2, size(70000 + 9000 * i)).op(CHUNK_FREE, 2, i * 13)
    p.op(WALK, 2).op(STATS, 2).op(IMPOSSIBLE, 14 | (2 << 5)).op(IMPOSSIBLE, 14 | (1 << 5)).op(IMPOSSIBLE, 9 | (2 << 5))
    p.write(os.path.join(out, 'shm_capacity'))
    # bursts (24 blocks live, random replacement: slabs fill and empty) and lanes: blocks of a
    # shared-memory region freed by other threads
    p = Prog(0, 2)
    p.op(CHUNK_CREATE, 3 | 0x18, shm(1 << 20)).op(CHUNK_CREATE, 2 | 0x18, shm(16 << 20, True))
    for i in range(12):
        p.op(BURST, 3 | (8 if i % 4 == 3 else 0), (i * 0x01000193) | 0xff000000).op(STATS, 3).op(WALK, 3)
    for lane in (0, 1, 2, 1, 0, 2):
        p.op(SWITCH, lane)
        for n in (24, 500, 9000, 8000):
            p.op(CHUNK_ALLOC, 2, size(n))
        p.op(CHUNK_FREE, 2, lane * 7).op(FREE_SIZED, 1 | (2 << 1), lane * 5)
    p.op(LANE_EXIT, 1).op(SWITCH, 1).op(CHUNK_FREE, 2, 3).op(WALK, 2 | (2 << 2)).op(STATS, 2)
    p.write(os.path.join(out, 'shm_bursts_lanes'))
    # random traffic on four shared-memory regions of random capacities
    rng = random.Random(20251125)
    p = Prog(rng.randrange(256), 0)
    for k in range(4):
        p.op(CHUNK_CREATE, k | 0x18, rng.getrandbits(32))
    for _ in range(500):
        op = rng.choice((CHUNK_ALLOC, CHUNK_ALLOC, CHUNK_ALIGNED, CHUNK_FREE, CHUNK_FREE, CHUNK_REALLOC, FREE_SIZED,
                         USABLE, SET_CEILING, WALK, STATS, BURST, CHUNK_RESET, PRESSURE, rng.randrange(256)))
        sel = rng.randrange(256)
        if op == PRESSURE:
            sel = (sel & ~12) | (rng.choice((0, 1, 2)) << 2)  # (evict, raise or none)
        p.op(op, sel, rng.getrandbits(32))
    p.write(os.path.join(out, 'shm_random'))


def regressions():
    out = os.path.join(HERE, 'regressions')
    # free_sized with the size a realloc that kept the block was given (C23 free_sized)
    Prog().op(MALLOC, 0, size(100)).op(REALLOC, 0, size(60)).op(FREE_SIZED, 0, 0).write(
        os.path.join(out, 'ops-free-sized-after-realloc-in-place'))
    Prog().op(CHUNK_CREATE, 4).op(CHUNK_ALLOC, 0, size(100)).op(CHUNK_REALLOC, 0, size(60)).op(
        FREE_SIZED, 1, 0).write(os.path.join(out, 'ops-free-sized-after-chunk-realloc-in-place'))
    # realloc of a direct mapping (> 4 MiB) to an impossible size
    Prog().op(MALLOC, 0, size(5 << 20)).op(IMPOSSIBLE, 3, 0).write(
        os.path.join(out, 'ops-realloc-direct-to-size-max'))
    Prog().op(MALLOC, 0, size(5 << 20)).op(IMPOSSIBLE, 3, 2).write(
        os.path.join(out, 'ops-realloc-direct-beyond-max-request'))
    # ASan builds (gcc, asan preset): a region block's realloc copies its poisoned slack
    # (the reset poisons the slab; the next block of 100 bytes is unpoisoned up to 100 of its 112)
    Prog().op(CHUNK_CREATE, 4).op(CHUNK_ALLOC, 0, size(100)).op(CHUNK_RESET, 0).op(CHUNK_ALLOC, 0, size(100)).op(
        CHUNK_REALLOC, 0, size(5000)).write(os.path.join(out, 'ops-asan-region-realloc-copies-poisoned-slack'))
    Prog().op(CHUNK_CREATE, 4).op(CHUNK_ALLOC, 0, size(100)).op(CHUNK_RESET, 0).op(CHUNK_ALLOC, 0, size(100)).op(
        CHUNK_REALLOC, 0, size(110)).write(os.path.join(out, 'ops-asan-region-realloc-in-place-stays-poisoned'))
    # ASan builds: a thread-heap direct mapping moved or grown by mremap (direct_resize) lands on
    # address space whose shadow is still poisoned by a freed region mapping (not deterministic:
    # it depends on where the kernel puts the mappings; about one run in three)
    p = Prog()
    for _ in range(40):
        for i in range(4):
            p.op(CHUNK_ALLOC, 0, size(6 << 20))
        for i in range(4):
            p.op(CHUNK_FREE, 0, 0)
        for i in range(3):
            p.op(MALLOC, 0, size(5 << 20)).op(REALLOC, 1, 0xffffffff)
        p.op(VERIFY_ALL)
        for i in range(3):
            p.op(FREE, 0, 0)
    p.write(os.path.join(out, 'ops-asan-direct-resize-stale-poison'))
    # SPACES_VALGRIND builds under memcheck: a large region block allocated with SPACES_ZERO is
    # announced as undefined (passes without valgrind; see fuzz.regressions.valgrind)
    Prog().op(CHUNK_CREATE, 4).op(CHUNK_ALLOC, 8, size(20000)).write(
        os.path.join(out, 'ops-valgrind-zeroed-large-region-block'))
    # calloc served from a cached direct mapping whose dirty bytes were not all purged
    Prog(0x03).op(MALLOC, 0, size(6 << 20)).op(FREE, 0, 0).op(MALLOC, 0, size(5 << 20)).op(FREE, 0, 0).op(
        COLLECT, 6).op(CALLOC, 0, size(6 << 20)).write(os.path.join(out, 'ops-calloc-stale-direct-mapping'))


if __name__ == '__main__':
    seeds()
    regressions()
