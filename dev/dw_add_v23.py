"""The fused kernel's dW at K = M = 64 (one thread, 4096 rows 25 times, in cache): the
micro-kernel over each block of 96 rows with and without the tile's add into the float64
partial (tile_add64) (dev/products_v23.md 24i).

    python dev/dw_add_v23.py
"""
import time, numpy as np, numba
from numba import njit
from loopgrad.cpu.intrinsics import microkernel, pointer
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
T = np.float32; MR, NR = 8, 32
fu = tiled.module(tiled.variant(64, 64, T), machine.entry().isa, "fused")
tile_add64 = fu.tile_add64
mk = microkernel("float32", MR, NR, 16)
N, K, M, MC, REP = 4096, 64, 64, 96, 25
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K).astype(T); g = rng.standard_normal(MC * M).astype(T)
part = np.zeros(K * M); Ct = np.empty(MR * NR, T)
@njit
def run(mode, x2, g2, part2, Ct2):
    x, g, part, Ct = pointer(x2), pointer(g2), pointer(part2), pointer(Ct2)
    for r in range(REP):
        for r0 in range(0, N - MC + 1, MC):
            for jr in range(M // NR):
                for ir in range(K // MR):
                    mk(MC, x, r0 * K + ir * MR, K, 1, g, jr * NR, M, Ct, 0, NR)
                    if mode == 0:
                        tile_add64(part, ir * MR * M + jr * NR, M, Ct, MR)
    return 0
for m in (0, 1): run(m, x, g, part, Ct)
for m in (0, 1):
    ts = []
    for _ in range(7):
        t = time.perf_counter(); run(m, x, g, part, Ct); ts.append(time.perf_counter() - t)
    print(["mk + tile_add64", "mk only"][m], f"{np.median(ts)*1e3:.2f} ms")
