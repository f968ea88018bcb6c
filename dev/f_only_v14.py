"""The f-only three-pass kernel against its pieces (packs of x and W, the h pass, the guard), one
thread, interleaved (dev/products_v14.md 15j).   python dev/f_only_v14.py 512
"""
import time, numpy as np, numba, sys
from numba import njit
import loopgrad
from loopgrad import cpu
from loopgrad.cpu import tiled, background, machine
n = int(sys.argv[1]); numba.set_num_threads(1)
e_ = machine.entry(); c = tiled.module("float32", e_.isa, "three")
r = np.random.default_rng(0)
x, W, y = (r.standard_normal((n, n), dtype=np.float32) for _ in range(3))
loopgrad.grads(x, W, y, wrt=()); background.wait()
name, variant, nchunks, chunk_rows = tiled.plan(n, n, n, np.float32)
kern, par = cpu.tiled_kernel(name, variant, False)
e = np.empty((0, 0), np.float32)
n64, nT = tiled.scratch(name, variant, n, n, n, nchunks, want=0)
ws64, wsT = np.empty(n64), np.empty(nT, np.float32)
MR, NR, MC, KC, JH = c.MR, c.NR, c.MC, c.KC, c.JH
N=K=M=n; Mp=n
xf, Wf, yf = x.reshape(-1), W.reshape(-1), y.reshape(-1)
Wp=np.empty(K*Mp,np.float32); Xp=np.empty(N*K,np.float32); g=np.empty(N*Mp,np.float32); dy=np.empty(N*M,np.float32)
def packs():
    c.pack_w(Wp, Wf, K, M, 0, K)
    for ir in range(N//MR): c.pack_x(Xp, xf, N, K, ir)
def hpass():
    nb=(N+MC-1)//MC; nh=Mp//NR; gh=(nh+JH-1)//JH
    for item in range(nb*gh):
        r0, j0 = item % nb * MC, item // nb * JH
        c.forward_block(g[r0*Mp:], dy, xf, Wp, yf, 0.0, K, M, Mp, r0, min(MC, N-r0), j0, min(JH, nh-j0),
                        np.empty(MC*KC, np.float32), np.empty(MR*NR, np.float32), True, 0, Xp)
def tr(): c.trusted(1.0, Wf, Wf[:0], False)
V = {"kernel want=0": lambda: kern(e, e, e, x, W, y, 0.0, nchunks, chunk_rows, ws64, wsT, 0),
     "packs": packs, "h pass": hpass, "trusted": tr}
for f in V.values(): f()
res = {k: [] for k in V}
for _ in range(21):
    for k, f in V.items():
        t0 = time.perf_counter(); f(); res[k].append(time.perf_counter() - t0)
for k in V: print(f"{n}^3 1t {k:15s} {np.median(res[k])*1e3:.3f} ms")
