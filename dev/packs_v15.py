"""The three-pass kernel's pack loop (W's rows, Wᵀ's panels, x's micro-panels), 2 threads:
W's tasks first, as the kernel had them, or spread over the loop (dev/products_v15.md).

    python dev/packs_v15.py N [rounds]
"""
import sys, time, numpy as np, numba
from numba import njit, prange
from loopgrad.cpu import tiled, machine
n = int(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 21
N = K = M = n
c = tiled.module(tiled.variant(K, M, np.float32), machine.entry().isa)
MR, NR, T = c.MR, c.NR, np.float32
pack_w, pack_wt, pack_x = c.pack_w, c.pack_wt, c.pack_x
rng = np.random.default_rng(0)
x, W = rng.standard_normal(N * K, dtype=T), rng.standard_normal(K * M, dtype=T)
Mp = Kp = n
npx = (N + MR - 1) // MR
Wp, Wtp, Xpk = np.empty(K * Mp, T), np.empty(M * Kp, T), np.empty(npx * MR * K, T)
@njit(parallel=True)
def first(Wp, Wtp, Xpk, W, x, N, K, M, npx):
    for jr in prange(max(Kp // NR, npx)):
        if jr < Kp // NR:
            pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
            pack_wt(Wtp, W, K, M, jr)
        if jr < npx:
            pack_x(Xpk, x, N, K, jr)
@njit(parallel=True)
def spread(Wp, Wtp, Xpk, W, x, N, K, M, npx):
    nw = Kp // NR
    nt = max(nw, npx)
    for t in prange(nt):
        jr = (t * nw + nt - 1) // nt
        if jr < nw and jr * nt // nw == t:
            pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
            pack_wt(Wtp, W, K, M, jr)
        if t < npx:
            pack_x(Xpk, x, N, K, t)
args = (Wp, Wtp, Xpk, W, x, N, K, M, npx)
first(*args); ref = [a.copy() for a in (Wp, Wtp, Xpk)]
spread(*args); assert all(np.array_equal(a, b) for a, b in zip(ref, (Wp, Wtp, Xpk)))
R = {"first": [], "spread": []}
for r in range(rounds):
    for k, f in (("first", first), ("spread", spread)):
        t0 = time.perf_counter(); f(*args); R[k].append(time.perf_counter() - t0)
a, b = np.array(R["first"]), np.array(R["spread"])
print(f"{n}: W first {np.median(a) * 1e3:.3f} ms, spread {np.median(b) * 1e3:.3f} ms, paired {np.median(b / a):.3f}")
