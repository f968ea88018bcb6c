"""loopgrad.grads at 2 threads, out= and fresh results, for shapes N×K×M: the median of each
over rounds (dev/products_v16.md).  Run it alternately under two checkouts (PYTHONPATH=...).

    [DTYPE=float64] python dev/ab_v16.py 1000000x16x16,100000x64x64 [rounds]
"""
import os, sys, time, numpy as np, numba
import loopgrad
from loopgrad.cpu import background
shapes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[1].split(",")]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
numba.set_num_threads(2)
rng = np.random.default_rng(0)
DT = np.dtype(os.environ.get("DTYPE", "float32"))  # DTYPE=float64
res = []
for N, K, M in shapes:
    x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
    out = tuple(np.empty(s, DT) for s in ((N, K), (K, M), (N, M)))
    loopgrad.grads(x, W, y); background.wait(); loopgrad.grads(x, W, y, out=out)
    a, b = [], []
    for r in range(rounds):
        t0 = time.perf_counter(); loopgrad.grads(x, W, y, out=out); a.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); loopgrad.grads(x, W, y); b.append(time.perf_counter() - t0)
    res.append(f"{N}x{K}x{M}: out= {np.median(a) * 1e3:.3f} ms, fresh {np.median(b) * 1e3:.3f} ms")
where = os.path.basename(os.path.dirname(os.path.dirname(loopgrad.__file__)))
print(where, " | ".join(res))
