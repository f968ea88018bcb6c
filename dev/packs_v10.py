"""The packs of the tiled kernels at 1024², one thread, best of 9, against a copy (dev/products_v10.md 13f).

    python dev/packs_v10.py new        # the label printed; run it from two checkouts to compare

Takes the old pack_b where the module still has it, else pack_w and pack_wt.
"""
import sys, time, numpy as np
from loopgrad.cpu import tiled, machine
e = machine.entry(); t = e.tiles["float32"]; MR, NR, MC, KC = t.MR, t.NR, t.MC, t.KC
c = tiled.module("float32", e.isa); c3 = tiled.module("float32", e.isa, "three")
K = M = N = 1024; Mp = Kp = 1024
r = np.random.default_rng(0)
W = r.standard_normal(K * M).astype(np.float32); x = r.standard_normal(N*K).astype(np.float32); g = r.standard_normal(N*Mp).astype(np.float32)
Wp = np.empty(K*Mp, np.float32); Xp = np.empty(N*K, np.float32); Gp = np.empty(KC*Mp, np.float32); Xt = np.empty(K*KC, np.float32)
def tm(f, n=9):
    f(); ts=[]
    for _ in range(n):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return min(ts)
def pb():
    if hasattr(c, 'pack_w'): [c.pack_w(Wp, W, K, M, p0, min(K, p0 + NR)) for p0 in range(0, K, NR)]
    else: [c.pack_b(Wp, W, M, 1, K, M, jr) for jr in range(Mp//NR)]
def pbt():
    if hasattr(c, 'pack_wt'): [c.pack_wt(Wp, W, K, M, jr) for jr in range(Kp//NR)]
    else: [c.pack_b(Wp, W, 1, M, M, K, jr) for jr in range(Kp//NR)]
def px(): [c.pack_x(Xp, x, N, K, ir) for ir in range(N//MR)]
def pg(): [c3.pack_g(Gp, g, Mp, pc, KC, jr) for pc in range(0, N, KC) for jr in range(Mp//NR)]
def pxt(): [c3.pack_xt(Xt, x, K, pc, KC, k0, min(MC, K-k0)) for pc in range(0, N, KC) for k0 in range(0, K, MC)]
def cp(): np.copyto(Wp, W)
import sys
for nm, f in [("copy", cp), ("pack W", pb), ("pack Wt", pbt)]:
    s = tm(f); print(f"{sys.argv[1]:5s} {e.isa} {nm:10s} {s*1e3:6.2f} ms  {2*4*K*M/s/1e9:5.1f} GB/s (read+write)")
