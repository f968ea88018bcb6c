"""h and dx items (serial, as dev/phases_v15.py) with g's rows Mp or Mp + 16 apart, alternating in one process (dev/products_v18.md 19c).

    python dev/g_stride_v18.py NxKxM rounds
"""
import sys, time, os, numpy as np, numba
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x")); rounds = int(sys.argv[2])
e = machine.entry(); v = tiled.variant(K, M, np.float32)
c = tiled.module(v, e.isa); t3 = tiled.module(v, e.isa, "three")
MR, NR, MC, KC, JH, T = c.MR, c.NR, c.MC, c.KC, c.JH, np.float32
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=T).reshape(-1) for s in ((N, K), (K, M), (N, M)))
dx, dy = np.empty(N * K, T), np.empty(N * M, T)
Mp = (M + NR - 1) // NR * NR; Kp = (K + NR - 1) // NR * NR
pack = K > c.PF_K and Mp >= c.PACK_X_M
Wp, Wtp = np.empty(K * Mp, T), np.empty(M * Kp, T)
for jr in range(Kp // NR):
    c.pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR)); c.pack_wt(Wtp, W, K, M, jr)
LINE = 16
gs = {L: np.empty((N + MR - 1) // MR * MR * L, T) for L in (Mp, Mp + LINE)}
Ap, Ct = np.empty(MC * KC, T), np.empty(MR * NR, T)
nb = (N + MC - 1) // MC; nh, nx = Mp // NR, Kp // NR; gh = (nh + JH - 1) // JH
gx = min(nx, (c.DX_ITEMS + nb - 1) // max(nb, 1)); JX = (nx + gx - 1) // gx; gx = (nx + JX - 1) // JX
def h(L):
    g = gs[L]
    for item in range(nb * gh):
        r0, j0 = item % nb * MC, item // nb * JH
        c.forward_block(g[r0 * L:], dy, x, Wp, y, 0.0, K, M, L, r0, min(MC, N - r0), j0, min(JH, nh - j0), Ap, Ct, True, 0, pack, False)
def d(L):
    g = gs[L]
    for item in range(nb * gx):
        r0, j0 = item % nb * MC, item // nb * JX
        t3.dx_packed(dx, g[r0 * L:], Wtp, K, M, L, r0, min(MC, N - r0), j0, min(JX, nx - j0), Ct, Ap, False)
ts = {}
for r in range(rounds):
    for L in (Mp, Mp + LINE):
        for name, fn in (("h", h), ("dx", d)):
            t = time.perf_counter(); fn(L); ts.setdefault((name, L), []).append(time.perf_counter() - t)
for k, vv in ts.items():
    vv = np.array(vv[1:]) * 1e3
    print(k, f"median {np.median(vv):.3f} min {vv.min():.3f} ms")
