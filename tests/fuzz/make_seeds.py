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
    out_ops = os.path.join(HERE, 'corpus', 'ops')
    p = Prog()
    p.op(CHUNK_CREATE, 4).op(SET_CEILING, 0 | (5 << 2), 4)
    for i in range(6):
        p.op(BURST, 8 if i & 1 else 0, 0xff000000 | i).op(STATS, 0).op(WALK, 0)
    p.op(BURST, 0x30, 0x7f000000)
    p.write(os.path.join(out_ops, 'bursts'))


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
