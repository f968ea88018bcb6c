"""The dx pass (serial, as the driver) with JX column panels an item, alternating in one process
(dev/products_v18.md 19h).

    python dev/dx_cols_v18.py NxKxM rounds JX[,JX...]
"""
import sys, time, os, numpy as np, numba
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x")); rounds = int(sys.argv[2]); JXS = [int(v) for v in sys.argv[3].split(",")]
e = machine.entry(); v = tiled.variant(K, M, np.float32)
c = tiled.module(v, e.isa); t3 = tiled.module(v, e.isa, "three")
MR, NR, MC, KC, T = c.MR, c.NR, c.MC, c.KC, np.float32
rng = np.random.default_rng(0)
W = rng.standard_normal(K * M, dtype=T)
Mp = (M + NR - 1) // NR * NR; Kp = (K + NR - 1) // NR * NR
g = rng.standard_normal((N + MR) * Mp, dtype=T); dx = np.empty(N * K, T)
Wtp = np.empty(M * Kp, T)
for jr in range(Kp // NR): c.pack_wt(Wtp, W, K, M, jr)
Ap, Ct = np.empty(MC * KC, T), np.empty(MR * NR, T)
nb = (N + MC - 1) // MC; nx = Kp // NR
def d(JX):
    gx = (nx + JX - 1) // JX
    for item in range(nb * gx):
        r0, j0 = item % nb * MC, item // nb * JX
        t3.dx_packed(dx, g[r0 * Mp:], Wtp, K, M, Mp, r0, min(MC, N - r0), j0, min(JX, nx - j0), Ct, Ap, False)
ts = {j: [] for j in JXS}
for r in range(rounds):
    for j in JXS:
        t = time.perf_counter(); d(j); ts[j].append(time.perf_counter() - t)
print(sys.argv[1], "dx items, min ms by JX:", " ".join(f"{j}: {min(v)*1e3:.2f}" for j, v in ts.items()))
