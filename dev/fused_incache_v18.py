"""The fused kernel's pieces in cache (dev/products_v18.md 19a): dev/fused_phases_v16.py's
driver over N = 4096 rows, REP = 244 times (10⁶ rows' work with x, y, dx, dy in L2), one thread.

    python dev/fused_incache_v18.py K M

Under an ISA forced by loopgrad.bench.isa.child_environment it measures that entry.
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine, workspace
numba.set_num_threads(1)
N, K, M = 4096, int(sys.argv[1]), int(sys.argv[2]); rounds = 7; REP = 244
e = machine.entry(); T = np.float32
v = tiled.variant(K, M, T)
c, fu = tiled.module(v, e.isa), tiled.module(v, e.isa, "fused")
MR, NR, MC, KC = c.MR, c.NR, c.MC, c.KC
fb, dxb, dwb, pw, pwt = c.forward_block, c.dx_block, fu.dw_block, c.pack_w, c.pack_wt
name, _, nchunks, R = tiled.plan(N, K, M, T)
Mp, Kp = -(-M // NR) * NR, -(-K // NR) * NR
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=T).reshape(-1) for s in ((N, K), (K, M), (N, M)))
dx, dy, dW = np.empty(N * K, T), np.empty(N * M, T), np.empty(K * M, T)
Wp, Wtp = np.empty(K * Mp, T), np.empty(M * Kp, T)
for jr in range(Kp // NR):
    pw(Wp, W, K, M, jr * NR, min(K, jr * NR + NR)); pwt(Wtp, W, K, M, jr)
part = np.zeros(K * Mp)


@njit
def run(wdx, wdw, x, Wp, Wtp, y, dx, dy, part, grads=True):
    Ap = np.empty(MC * KC, T); Ct = np.empty(MR * NR, T); g = np.empty(MC * Mp, T)
    f = 0.0
    for rep in range(REP):
      for r0 in range(0, N, MC):
        rows = min(MC, N - r0)
        f += fb(g, dy, x, Wp, y, 0.0, K, M, Mp, r0, rows, 0, Mp // NR, Ap, Ct, grads, 0, False,
                False)
        if wdx:
            dxb(dx, g, Wtp, K, M, Mp, r0, rows, 0, Kp // NR, Ct, False)
        if wdw:
            for k0 in range(0, K, MC):
                dwb(part, x, g, K, Mp, r0, r0 + rows, k0, min(MC, K - k0), Ap, Ct)
    return f


from loopgrad.cpu import __init__ as _  # noqa
import loopgrad.cpu as lc
kern, _ = lc.tiled_kernel("grads_fused", v, False)
from loopgrad.cpu import background
background.wait(); kern, _ = lc.tiled_kernel("grads_fused", v, False)
n64, nT = tiled.scratch("grads_fused", v, N, K, M, nchunks)
ws64, wsT = workspace.take(n64, np.float64), workspace.take(nT, T)
x2, W2, y2 = x.reshape(N, K), W.reshape(K, M), y.reshape(N, M)
out = (dx.reshape(N, K), dW.reshape(K, M), dy.reshape(N, M))
whole = lambda: kern(*out, x2, W2, y2, 0.0, nchunks, R, ws64, wsT, 7)
cases = {"h+f": (False, False, False), "h+epi": (False, False, True), "+dx": (True, False, True),
         "+dW": (False, True, True), "all": (True, True, True)}
for k, (a, b, gr) in cases.items():
    run(a, b, x, Wp, Wtp, y, dx, dy, part, gr)
whole()
ts = {k: [] for k in list(cases) + ["kernel"]}
for r in range(rounds):
    for k, (a, b, gr) in cases.items():
        t = time.perf_counter(); run(a, b, x, Wp, Wtp, y, dx, dy, part, gr)
        ts[k].append(time.perf_counter() - t)
    t = time.perf_counter(); whole(); ts["kernel"].append(time.perf_counter() - t)
med = {k: np.median(v) * 1e3 for k, v in ts.items()}
print(f"{N}x{K}x{M} ({e.isa}, {v} {MR}x{NR}, MC {MC}), one thread, ms:",
      " ".join(f"{k} {m:.2f}" for k, m in med.items()))
print(f"  h with f alone {med['h+f']:.2f}, h+epilogue {med['h+epi']:.2f}, dx {med['+dx'] - med['h+epi']:.2f}, dW {med['+dW'] - med['h+epi']:.2f} "
      "(the 'kernel' column: one call of the whole kernel at N = 4096, not repeated)")
