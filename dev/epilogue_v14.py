"""The three-pass epilogue alone (K = 0) over row segments of JH·NR columns or over whole
blocks, one thread, want_grads on and off (dev/products_v14.md 15a)."""
import sys, time, numpy as np, numba
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
e = machine.entry(); c = tiled.module("float32", e.isa)
N=K=M=1024; Mp=M; MC=c.MC
rng=np.random.default_rng(0)
g = rng.standard_normal(N*Mp, dtype=np.float32); y = rng.standard_normal(N*M, dtype=np.float32)
dy = np.empty(N*M, np.float32); x = np.empty(N*K, np.float32); Wp=np.empty(K*Mp,np.float32)
Ap=np.empty(c.MC*c.KC,np.float32); Ct=np.empty(c.MR*c.NR,np.float32); Xp=np.empty(0,np.float32)
def run(want, flat_items):
    if flat_items:   # one item per block, all panels
        for r0 in range(0, N - MC + 1, MC):
            c.forward_block(g[r0*Mp:], dy, x, Wp, y, 0.0, 0, M, Mp, r0, MC, 0, Mp//c.NR, Ap, Ct, want, 0, Xp)
    else:
        for r0 in range(0, N - MC + 1, MC):
            for j0 in range(0, Mp//c.NR, c.JH):
                c.forward_block(g[r0*Mp:], dy, x, Wp, y, 0.0, 0, M, Mp, r0, MC, j0, c.JH, Ap, Ct, want, 0, Xp)
for a in [(True,False),(False,False),(True,True),(False,True)]:
    run(*a)
    ts=[]
    for r in range(15):
        t0=time.perf_counter(); run(*a); ts.append(time.perf_counter()-t0)
    n = (N//MC)*MC*M
    print(a, "%.2f ms  %.2f ns/elem (best %.2f)" % (np.median(ts)*1e3, np.median(ts)/n*1e9, min(ts)/n*1e9))
