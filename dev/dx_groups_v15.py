"""The three-pass dx items with gx column groups (JX = ⌈nx/gx⌉ panels each), 2 threads,
items shared by work as the kernel does (dev/products_v15.md).  Each item packs its
rows of g once per KC block, so gx groups pack g gx times.

    python dev/dx_groups_v15.py N rounds GX,GX,...   # the first is the base of the ratios
"""
import sys, time, numpy as np, numba
from numba import njit, prange
from loopgrad.cpu import tiled, machine
n, rounds = int(sys.argv[1]), int(sys.argv[2])
gxs = [int(v) for v in sys.argv[3].split(",")]
N = K = M = n
e = machine.entry(); variant = tiled.variant(K, M, np.float32)
c = tiled.module(variant, e.isa); t3 = tiled.module(variant, e.isa, "three")
MR, NR, MC, KC, T = c.MR, c.NR, c.MC, c.KC, np.float32
dx_packed, shares = t3.dx_packed, t3.shares
rng = np.random.default_rng(0)
W = rng.standard_normal(K * M, dtype=T)
Mp = (M + NR - 1) // NR * NR; Kp = (K + NR - 1) // NR * NR
Wtp = np.empty(M * Kp, T)
for jr in range(Kp // NR): c.pack_wt(Wtp, W, K, M, jr)
g = rng.standard_normal((N + MR - 1) // MR * MR * Mp, dtype=T); dx = np.empty(N * K, T)
@njit(parallel=True)
def dxpass(dx, g, Wtp, gx, nthr):
    nb = (N + MC - 1) // MC; nx = Kp // NR
    JX = (nx + gx - 1) // gx; gx = (nx + JX - 1) // JX
    own = shares(N, nx, JX, nthr)
    for w in prange(nthr):
        for item in range(nb * gx):
            if own[item] == w:
                r0, j0 = item % nb * MC, item // nb * JX
                dx_packed(dx, g[r0 * Mp:], Wtp, K, M, Mp, r0, min(MC, N - r0), j0,
                          min(JX, nx - j0), np.empty(MR * NR, T), np.empty(MC * KC, T))
nthr = numba.get_num_threads()
for gx in gxs: dxpass(dx, g, Wtp, gx, nthr)
R = {gx: [] for gx in gxs}
for r in range(rounds):
    for gx in gxs:
        t0 = time.perf_counter(); dxpass(dx, g, Wtp, gx, nthr); R[gx].append(time.perf_counter() - t0)
base = np.array(R[gxs[0]])
print(f"{e.isa} {n}³, {nthr} threads, nb {(N + MC - 1) // MC}, nx {Kp // NR}: " + "  ".join(
    f"gx {gx}: {np.median(R[gx]) * 1e3:.3f} ms ({np.median(np.array(R[gx]) / base):.3f})" for gx in gxs))
