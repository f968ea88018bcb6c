"""The fused kernel's pieces, one thread (dev/products_v16.md 17g): a chunk's loop over its
blocks of MC rows run in an njit driver of this script's, with the pieces switched on
one by one: forward_block without grads (h, z, f), forward_block (h and the epilogue),
+ dx_block, + dw_block, all; and the whole serial kernel (stores not streamed).
Differences give each piece's cost.

    [REP=244] [CONST=1] python dev/fused_phases_v54.py N K M [rounds]

REP=n: the driver runs its N rows n times over (N = 4096, REP = 244: 10⁶ rows' work with
x, y, dx, dy in L2, dev/products_v18.md 19a); the 'kernel' column stays one call at N.
DTYPE=float64: that dtype's kernels (float32 by default).  STREAM=1: the pieces store dx
and dy past the caches, as a large call does (the 'kernel' column's call does not: want 7).
PF=1 or 2: one more case, all with the next block's rows of x and y asked for as a burst
after each block's h, into L2 or L1 (dev/products_v36.md 37d).

Under an ISA forced by loopgrad.bench.isa.child_environment it measures that entry.

v54: the shape reaches the driver at run time, as the kernel's does.  CONST=1: v16's driver,
which read N, K, M as module constants, and LLVM, inlining forward_block into it,
specialized the pieces to them (h 12 % faster than in the kernel at 10⁵×24×40, as the
kernels compiled for a shape are: dev/products_v54.md 55a, 55b); dev/fused_phases_v16.py
runs this so.
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine, workspace
from loopgrad.cpu.intrinsics import pointer, prefetch, prefetch_l2
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1:4]); rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 7
REP = int(__import__("os").environ.get("REP", "1"))
A0 = float(__import__("os").environ.get("A0", "0"))  # relu'(0)
STREAM = __import__("os").environ.get("STREAM", "0") == "1"
CONST = __import__("os").environ.get("CONST", "0") == "1"
PF = int(__import__("os").environ.get("PF", "0"))
e = machine.entry(); T = np.dtype(__import__("os").environ.get("DTYPE", "float32")).type
v = tiled.variant(K, M, T)
c, fu = tiled.module(v, e.isa), tiled.module(v, e.isa, "fused")
MR, NR, MC, KC = c.MR, c.NR, c.MC, c.KC
fb, dxb, dwb, pw, pwt = c.forward_block, c.dx_block, fu.dw_block, c.pack_w, c.pack_wt
name, _, nchunks, R = tiled.plan(N, K, M, T)
assert name == "grads_fused", name
Mp, Kp = -(-M // NR) * NR, -(-K // NR) * NR
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=T).reshape(-1) for s in ((N, K), (K, M), (N, M)))
dx, dy, dW = np.empty(N * K, T), np.empty(N * M, T), np.empty(K * M, T)
Wp, Wtp = np.empty(K * Mp, T), np.empty(M * Kp, T)
for jr in range(Kp // NR):
    pw(Wp, W, K, M, jr * NR, min(K, jr * NR + NR)); pwt(Wtp, W, K, M, jr)
part = np.zeros(K * Mp)
LG = M if Mp != M else Mp if __import__("os").environ.get("NOPAD") else Mp + 64 // T().itemsize if Mp % (8 * 64 // T().itemsize) == 0 else Mp  # g's row stride, as the driver's: M where M pads (one flat epilogue run a block, dev/products_v25.md 26i; dev/products_v34.md 35b), else dev/products_v20.md 21a


@njit(inline="always")
def pieces(wdx, wdw, x, Wp, Wtp, y, dx, dy, part, grads, pf, N, K, M, Mp, Kp, LG, REP):
    Ap = np.empty(MC * KC, T); Ct = np.empty(2 * MR * NR, T); g = np.zeros(MC * LG + NR, T)  # NR: dW's reads past M (the driver's)
    f = 0.0
    xp, yp = pointer(x), pointer(y)
    for b in range(REP * ((N + MC - 1) // MC)):  # N's blocks, REP times over
        r0 = b % ((N + MC - 1) // MC) * MC
        rows = min(MC, N - r0)
        f += fb(g, dy, x, Wp, y, A0, K, M, Mp, LG, NR, KC, r0, rows, 0, Mp // NR, Ap, Ct, grads, 0, 0,
                STREAM, 0, 0, Ap, Ap, 0, 0, 0)
        if pf and r0 + MC < N:  # the next block's rows of x and y, a burst: L2 (1) or L1 (2)
            for p, ld in ((xp, K), (yp, M)):
                for q in range((r0 + MC) * ld // 16 * 16, min(N, r0 + 2 * MC) * ld, 16):
                    if pf == 1:
                        prefetch_l2(p, q)
                    else:
                        prefetch(p, q)
        if wdx:
            dxb(dx, g, Wtp, K, M, LG, r0, rows, 0, Kp // NR, Ct, STREAM, x, y, min(N, r0 + MC),
                min(N, r0 + 2 * MC))  # the next block asked for, as the driver's (37f)
        if wdw:
            for k0 in range(0, K, MC):
                dwb(part, x, g, K, M, Mp, LG, r0, r0 + rows, k0, min(MC, K - k0), Ap, Ct, y, 0, 0)
    return f


@njit
def run_runtime(wdx, wdw, x, Wp, Wtp, y, dx, dy, part, grads, pf, shape):
    return pieces(wdx, wdw, x, Wp, Wtp, y, dx, dy, part, grads, pf, shape[0], shape[1], shape[2],
                  shape[3], shape[4], shape[5], shape[6])


@njit
def run_const(wdx, wdw, x, Wp, Wtp, y, dx, dy, part, grads, pf, shape):
    # shape unused: the module's N, K, M, ... as constants (v16's driver)
    return pieces(wdx, wdw, x, Wp, Wtp, y, dx, dy, part, grads, pf, N, K, M, Mp, Kp, LG, REP)


run = run_const if CONST else run_runtime


SHAPE = np.array([N, K, M, Mp, Kp, LG, REP], np.int64)
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
cases = {"h+f": (False, False, False, 0), "h+epi": (False, False, True, 0),
         "+dx": (True, False, True, 0), "+dW": (False, True, True, 0), "all": (True, True, True, 0)}
if PF:
    cases["all+pf"] = (True, True, True, PF)
for k, (a, b, gr, p) in cases.items():
    run(a, b, x, Wp, Wtp, y, dx, dy, part, gr, p, SHAPE)
whole()
ts = {k: [] for k in list(cases) + ["kernel"]}
for r in range(rounds):
    for k, (a, b, gr, p) in cases.items():
        t = time.perf_counter(); run(a, b, x, Wp, Wtp, y, dx, dy, part, gr, p, SHAPE)
        ts[k].append(time.perf_counter() - t)
    t = time.perf_counter(); whole(); ts["kernel"].append(time.perf_counter() - t)
med = {k: np.median(v) * 1e3 for k, v in ts.items()}
print(f"{N}x{K}x{M} ({e.isa}, {v} {MR}x{NR}, MC {MC}), one thread, ms:",
      " ".join(f"{k} {m:.2f}" for k, m in med.items()))
print(f"  h with f alone {med['h+f']:.2f}, h+epilogue {med['h+epi']:.2f}, dx {med['+dx'] - med['h+epi']:.2f}, dW {med['+dW'] - med['h+epi']:.2f}"
      + (f", rest of the kernel {med['kernel'] - med['all']:.2f}" if REP == 1 else ""))
