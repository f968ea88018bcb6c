"""The tiled micro-kernel in loop nests of one block (one thread, packed A): GFLOP/s by KC and
by how many W panels and x panels the block has (dev/machines_v8.md 10a).

    python dev/tiled_loop_nest.py
"""
import time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, jit
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1)
mk = tiled.module("float32", "avx512").mk
MR, NR, MC = 8, 32, 96
@njit(nogil=True)
def packed(KC, Ap, Bp, njr, C, reps, nir):
    a, b, c = pointer(Ap), pointer(Bp), pointer(C)
    for r in range(reps):
        for jr in range(njr):
            for ir in range(nir):
                mk(KC, a, ir * MR * KC, MR, 1, b, jr * KC * NR, NR, c, ir * MR * NR, NR)
with jit.settings(slp=True, vector_bits=512):
    packed(64, np.zeros(MC*64, np.float32), np.zeros(64*NR, np.float32), 1, np.zeros(MC*NR, np.float32), 1, 12)
cases = [(kc, njr, nir) for kc in (64, 128, 192, 256) for (njr, nir) in ((1, 12), (8, 12), (8, 24), (64, 12))]
data = {c: (np.random.rand(c[2] * MR * c[0]).astype(np.float32), np.random.rand(c[1] * c[0] * NR).astype(np.float32), np.zeros(c[2] * MR * NR, np.float32)) for c in cases}
res = {c: [] for c in cases}
for r in range(5):
    for c in cases:
        kc, njr, nir = c
        reps = max(1, int(3e8 / (2 * MR * NR * kc * njr * nir)))
        A, B, C = data[c]
        t0 = time.perf_counter(); packed(kc, A, B, njr, C, reps, nir); t = time.perf_counter() - t0
        res[c].append(2 * MR * NR * kc * njr * nir * reps / t / 1e9)
for c in cases:
    print(f"KC {c[0]:3d} panels {c[1]:2d} x-tiles {c[2]:2d}: B {c[0]*NR*4*c[1]//1024:5d} KiB A {c[2]*MR*c[0]*4//1024:4d} KiB  {np.median(res[c]):6.1f} GF/s (max {max(res[c]):.1f})")
