"""The fused kernel's dW loops alone (dw_block's: x read in place, chains of MC rows, the tile
added into the chunk's float64 partial), one thread, with g's rows at a stride of Mp, Mp + one
line, or g by column panels (B's KC×NR panel together) (dev/products_v20.md 21a).

    python dev/fused_dw_stride_v20.py NxKxM rounds
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
LN = 64 // np.dtype(T).itemsize
@njit(fastmath={"contract"})
def run(ldg, pstr, xp, bytile, part2, x2, g2, Ct2, Xp2, RB):
    part, x, g, Ct, Xp = pointer(part2), pointer(x2), pointer(g2), pointer(Ct2), pointer(Xp2)
    for b in range(RB):
        n0 = (b % (N // MC)) * MC  # N = 4·MC: x hot in L2, as after h in the kernel
        for k0 in range(0, K, MC):
            krows = min(MC, K - k0)
            nir = krows // MR
            for jr in range(Mp // NR):
                bo = jr * pstr
                for ir in range(nir):
                    if xp:  # A packed: (k0 + ir·MR)'s micro-panel, MC steps of MR together
                        mk(MC, Xp, (k0 + ir * MR) * MC, MR, 1, g, bo, ldg, Ct, 0, NR)
                    else:
                        mk(MC, x, n0 * K + k0 + ir * MR, K, 1, g, bo, ldg, Ct, 0, NR)
                    if bytile == 2:  # the partial's rows a line more apart
                        tile_add64(part, (k0 + ir * MR) * (Mp + 8) + jr * NR, Mp + 8, Ct, MR)
                    elif bytile:  # the partial's tiles MR·NR float64s together (as the three-pass kernel's)
                        tile_add64(part, (k0 + ir * MR) * Mp + jr * MR * NR, NR, Ct, MR)
                    else:
                        tile_add64(part, (k0 + ir * MR) * Mp + jr * NR, Mp, Ct, MR)
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K).astype(T); g = rng.standard_normal(MC * (Mp + LN)).astype(T)
Xp = rng.standard_normal(MC * K).astype(T); part = np.zeros(K * (Mp + 8)); Ct = np.empty(MR * NR, T)
RB = 200
modes = {"rows, Mp": (Mp, NR, False, False), "rows, Mp + a line": (Mp + LN, NR, False, False),
         "panels": (NR, MC * NR, False, False), "Mp + a line, A packed": (Mp + LN, NR, True, False),
         "panels, A packed": (NR, MC * NR, True, False), "panels, A packed, partial by tile": (NR, MC * NR, True, True),
         "Mp + a line, partial by tile": (Mp + LN, NR, False, 1), "Mp + a line, partial rows + a line": (Mp + LN, NR, False, 2)}
for m in modes.values(): run(*m, part, x, g, Ct, Xp, RB)
ts = {m: [] for m in modes}
for r in range(rounds):
    for m, a in modes.items():
        t = time.perf_counter(); run(*a, part, x, g, Ct, Xp, RB); ts[m].append(time.perf_counter() - t)
fl = 2 * RB * MC * K * Mp
print(sys.argv[1], "fused dW blocks, one thread, GFLOP/s:", "; ".join(f"{m} {fl / min(ts[m]) / 1e9:.0f}" for m in modes))
