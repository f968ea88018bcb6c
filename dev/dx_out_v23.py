"""dx's 8×32 tiles at K = 24: into the tile buffer then cut to 24 columns (tile_out), straight
into rows of 32, or into the buffer alone (dev/products_v23.md 24c).  One thread, in cache.

    python dev/dx_out_v23.py
"""
import time, numpy as np, numba
from numba import njit
from loopgrad.cpu.intrinsics import microkernel, pointer
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
T = np.float32; MR, NR = 8, 32
c = tiled.module(tiled.variant(24, 40, T), machine.entry().isa)
tile_out = c.tile_out
mk = microkernel("float32", MR, NR, 16)
N, K, M, REP = 4096, 24, 40, 25
rng = np.random.default_rng(0)
g = rng.standard_normal(96 * 64).astype(T)
Wt = rng.standard_normal(M * 32).astype(T)
dx = np.empty(N * 32, T); Ct = np.empty(MR * NR, T)
@njit
def run(mode, g2, Wt2, dx2, Ct2):
    g, Wt, dx, Ct = pointer(g2), pointer(Wt2), pointer(dx2), pointer(Ct2)
    for r in range(REP):
        for r0 in range(0, N - 95, 96):
            for ir in range(12):
                if mode == 0:
                    mk(M, g, ir * MR * 64, 1, 64, Wt, 0, NR, Ct, 0, NR)
                    tile_out(dx, (r0 + ir * MR) * K, K, Ct, MR, K, True)
                elif mode == 1:
                    mk(M, g, ir * MR * 64, 1, 64, Wt, 0, NR, dx, (r0 + ir * MR) * 32, 32)
                else:
                    mk(M, g, ir * MR * 64, 1, 64, Wt, 0, NR, Ct, 0, NR)
    return 0
for m in range(3): run(m, g, Wt, dx, Ct)
for m in range(3):
    ts = []
    for _ in range(7):
        t = time.perf_counter(); run(m, g, Wt, dx, Ct); ts.append(time.perf_counter() - t)
    print(["Ct+tile_out", "straight", "Ct only"][m], f"{np.median(ts)*1e3:.2f} ms")
