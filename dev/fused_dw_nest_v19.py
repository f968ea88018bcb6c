"""The fused kernel's dW loops alone (dw_block's, x read in place, chains of MC rows), one thread:
the tile added into the chunk's float64 partial, into one L1 tile, or not at all
(dev/products_v19.md 20k).

    python dev/fused_dw_nest_v19.py NxKxM rounds
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x")); rounds = int(sys.argv[2])
T = np.float32; e = machine.entry(); v = tiled.variant(K, M, T)
c, fu = tiled.module(v, e.isa), tiled.module(v, e.isa, "fused")
MR, NR, MC, KC = c.MR, c.NR, c.MC, c.KC
mk, tile_add64 = c.mk, fu.tile_add64
Mp = -(-M // NR) * NR
@njit(fastmath={"contract"})
def run(mode, part2, x2, g2, Ct2, dummy2, RB):
    part, x, g, Ct, dummy = pointer(part2), pointer(x2), pointer(g2), pointer(Ct2), pointer(dummy2)
    for b in range(RB):
        n0 = (b % (N // MC)) * MC
        for k0 in range(0, K, MC):
            krows = min(MC, K - k0)
            nir = krows // MR
            for jr in range(Mp // NR):
                bo = jr * NR
                for ir in range(nir):
                    mk(MC, x, n0 * K + k0 + ir * MR, K, 1, g, bo, Mp, Ct, 0, NR)
                    if mode == 0:
                        tile_add64(part, (k0 + ir * MR) * Mp + jr * NR, Mp, Ct, MR)
                    elif mode == 1:
                        tile_add64(dummy, 0, NR, Ct, MR)
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K).astype(T); g = rng.standard_normal(MC * Mp).astype(T)
part = np.zeros(K * Mp); Ct = np.empty(MR * NR, T); dummy = np.zeros(MR * NR)
RB = 200
for m in range(3): run(m, part, x, g, Ct, dummy, RB)
ts = {m: [] for m in range(3)}
for r in range(rounds):
    for m in range(3):
        t = time.perf_counter(); run(m, part, x, g, Ct, dummy, RB); ts[m].append(time.perf_counter() - t)
fl = 2 * RB * MC * K * Mp
print(sys.argv[1], "dW blocks, one thread, GFLOP/s: partial in L2", round(fl / min(ts[0]) / 1e9), "| partial add to an L1 tile", round(fl / min(ts[1]) / 1e9), "| no add", round(fl / min(ts[2]) / 1e9))
