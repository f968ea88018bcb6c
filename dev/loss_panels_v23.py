"""The loss kernel's blocks (forward_block over all columns, one thread) with h in rows (as
loss_block) or by column panels of NR (as the three-pass kernel's g): the same f (asserted),
ms by M at N = K = 2048 (dev/products_v23.md 24j).

    python dev/loss_panels_v23.py
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
T = np.float32
e = machine.entry()
N = K = 2048
for M in (256, 512, 1000, 1024, 2048):
    v = tiled.variant(K, M, T)
    c = tiled.module(v, e.isa)
    fb, pw, packs_x = c.forward_block, c.pack_w, c.packs_x
    MR, NR, MC, KC = c.MR, c.NR, c.MC, c.KC
    Mp = -(-M // NR) * NR
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N * K, dtype=T); W = rng.standard_normal(K * M, dtype=T); y = rng.standard_normal(N * M, dtype=T)
    Wp = np.empty(K * Mp, T); pw(Wp, W, K, M, 0, K)
    pk = packs_x(K, Mp)
    @njit
    def run(JH, x, Wp, y, panels=False):
        f = 0.0
        h = np.empty(MC * Mp, T); Ap = np.empty(MC * KC, T); Ct = np.empty(MR * NR, T)
        nh = Mp // NR
        for r0 in range(0, N, MC):
            rows = min(MC, N - r0)
            for j0 in range(0, nh, JH):
                f += fb(h, h, x[r0 * K:], Wp, y[r0 * M:], 0.0, K, M, Mp, NR if panels else Mp, MC * NR if panels else NR, KC, 0, rows, j0, min(JH, nh - j0), Ap, Ct, False, 0, pk, False)
        return f
    run(Mp // NR, x, Wp, y); run(Mp // NR, x, Wp, y, True)
    assert run(Mp // NR, x, Wp, y) == run(Mp // NR, x, Wp, y, True)
    out = []
    for panels in (False, True, False, True):
        ts = []
        for _ in range(5):
            t = time.perf_counter(); run(Mp // NR, x, Wp, y, panels); ts.append(time.perf_counter() - t)
        out.append(f"{'panels' if panels else 'rows'}: {np.median(ts)*1e3:.1f} ms")
    print(f"M={M}", "  ".join(out))
