"""Whole calls at 2 threads (out=) with tiled.H_COLS patched before the kernels compile: run it
alternately with HC=256 and HC=1024 (dev/products_v18.md 19h).

    HC=1024 python dev/hcols_ab_v18.py 2048x2048x2048,1024x1024x1024 rounds
"""
import os, sys, time, numpy as np, numba
from loopgrad.cpu import tiled
if os.environ.get("HC"):
    tiled.H_COLS = int(os.environ["HC"])
import loopgrad
from loopgrad.cpu import background
numba.set_num_threads(2)
rng = np.random.default_rng(0)
res = []
for s in sys.argv[1].split(","):
    N, K, M = (int(v) for v in s.split("x"))
    x, W, y = (rng.standard_normal(sh, dtype=np.float32) for sh in ((N, K), (K, M), (N, M)))
    out = tuple(np.empty(sh, np.float32) for sh in ((N, K), (K, M), (N, M)))
    loopgrad.grads(x, W, y); background.wait(); loopgrad.grads(x, W, y, out=out)
    a = []
    for r in range(int(sys.argv[2])):
        t0 = time.perf_counter(); loopgrad.grads(x, W, y, out=out); a.append(time.perf_counter() - t0)
    res.append(f"{s}: {np.median(a)*1e3:.2f} (min {min(a)*1e3:.2f})")
print(f"H_COLS {tiled.H_COLS}:", " | ".join(res), flush=True)
