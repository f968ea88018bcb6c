"""The h pass's parts under a parallel driver of this script's, 1 and 2 threads (dev/products_v15.md).

    python dev/hpar_v15.py N [rounds]

pack_w (tasks of NR rows), pack_x (micro-panels), the h items (forward_block, column
group by column group as the kernel runs them), each a prange loop of its own; and the
kernel with f alone.  Medians in ms, and 1-thread ÷ 2-thread (paired).
"""
import sys, time, numpy as np, numba
from numba import njit, prange
from loopgrad.cpu import tiled, machine, background
import loopgrad
n = int(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
N = K = M = n
e = machine.entry(); variant = tiled.variant(K, M, np.float32)
c = tiled.module(variant, e.isa)
MR, NR, MC, KC, JH, T = c.MR, c.NR, c.MC, c.KC, c.JH, np.float32
pack_w, pack_x, forward_block = c.pack_w, c.pack_x, c.forward_block
rng = np.random.default_rng(0)
x2, W2, y2 = (rng.standard_normal(s, dtype=np.float32) for s in ((N, K), (K, M), (N, M)))
x, W, y = x2.reshape(-1), W2.reshape(-1), y2.reshape(-1)
Mp = (M + NR - 1) // NR * NR
npx = (N + MR - 1) // MR
Wp, Xpk, dy = np.empty(K * Mp, T), np.empty(npx * MR * K, T), np.empty(N * M, T)
g = np.empty((N + MR - 1) // MR * MR * Mp, T)
@njit(parallel=True)
def packs_w(Wp, W, K, M):
    for jr in prange((K + NR - 1) // NR):
        pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
@njit(parallel=True)
def packs_x(Xpk, x, N, K):
    for jr in prange((N + MR - 1) // MR):
        pack_x(Xpk, x, N, K, jr)
@njit(parallel=True)
def items(g, dy, x, Wp, y, K, M, Mp, N, Xpk):
    nb = (N + MC - 1) // MC
    nh = Mp // NR
    gh = (nh + JH - 1) // JH
    fb = np.empty(nb * gh)
    for item in prange(nb * gh):
        r0, j0 = item % nb * MC, item // nb * JH
        fb[item] = forward_block(g[r0 * Mp:], dy, x, Wp, y, 0.0, K, M, Mp, r0, min(MC, N - r0), j0,
                                 min(JH, nh - j0), np.empty(MC * KC, T), np.empty(MR * NR, T),
                                 True, 0, Xpk)
    return fb.sum()
V = {"pack W": lambda: packs_w(Wp, W, K, M), "pack x": lambda: packs_x(Xpk, x, N, K),
     "h items": lambda: items(g, dy, x, Wp, y, K, M, Mp, N, Xpk),
     "kernel f": lambda: loopgrad.grads(x2, W2, y2, wrt=(), out=(None, None, None))}
for T_ in (1, 2):
    numba.set_num_threads(T_)
    for f in V.values(): f(); background.wait(); f()
R = {(k, t): [] for k in V for t in (1, 2)}
for r in range(rounds):
    for t in (1, 2):
        numba.set_num_threads(t)
        for k, f in V.items():
            t0 = time.perf_counter(); f(); R[k, t].append(time.perf_counter() - t0)
for k in V:
    a, b = np.array(R[k, 1]), np.array(R[k, 2])
    print(f"  {k:9s} {np.median(a) * 1e3:7.3f} {np.median(b) * 1e3:7.3f} ms  {np.median(a / b):.2f}x")
