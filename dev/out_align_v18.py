"""Fresh results, out= arrays from np.empty, and out= arrays aligned to a cache line, at 2
threads, alternating (dev/products_v18.md 19d).

    python dev/out_align_v18.py NxKxM [NxKxM ...]
"""
import sys, time, numpy as np, loopgrad
from loopgrad.cpu import background
def al(shape, T):
    n = int(np.prod(shape)); b = np.empty(n + 16, T); o = (-b.ctypes.data % 64) // b.itemsize
    return b[o:o + n].reshape(shape)
for s in sys.argv[1:]:
    N, K, M = (int(v) for v in s.split("x"))
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(sh, dtype=np.float32) for sh in ((N, K), (K, M), (N, M)))
    loopgrad.grads(x, W, y); background.wait()
    o1 = (np.empty_like(x), np.empty_like(W), np.empty_like(y))
    o2 = (al(x.shape, np.float32), al(W.shape, np.float32), al(y.shape, np.float32))
    cases = {"fresh": lambda: loopgrad.grads(x, W, y), "out np.empty": lambda: loopgrad.grads(x, W, y, out=o1),
             "out aligned": lambda: loopgrad.grads(x, W, y, out=o2)}
    ts = {k: [] for k in cases}
    for f in cases.values(): f(); f()
    for r in range(9):
        for k, f in cases.items():
            t = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t)
    print(s, [o1[i].ctypes.data % 64 for i in (0, 2)], " ".join(f"{k} {np.median(v)*1e3:.2f}" for k, v in ts.items()))
