"""The skinny and mid shapes against their memory floor, measured in the same minutes:
loopgrad.grads (fresh results and out=) alternating with a Numba prange loop that reads
x and y and writes dx and dy of the same shapes (every byte of the gradients' traffic
but W's and dW's, no arithmetic), 2 threads (dev/products_v41.md 42c).  The floor's
share, floor ÷ loopgrad, is what the bench's roofline column reads against a ceiling
measured minutes apart on a host whose bandwidth drifts.

    python dev/rows_roof_v41.py 1000000x4x4,1000000x16x16 [rounds=11]
"""
import sys, time
import numpy as np
import loopgrad
from loopgrad.bench.ceilings import _prange_copy
from loopgrad.cpu import background


def floor(dx, dy, x, y):  # the bench's --ceilings copy loop, x into dx and y into dy
    copy = _prange_copy()
    copy(dx.reshape(-1), x.reshape(-1))
    copy(dy.reshape(-1), y.reshape(-1))


shapes = [tuple(int(float(v)) for v in s.split("x")) for s in sys.argv[1].split(",")]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 11
rng = np.random.default_rng(0)
for N, K, M in shapes:
    x, W, y = (rng.standard_normal(s, dtype=np.float32) for s in ((N, K), (K, M), (N, M)))
    out = tuple(np.empty(s, np.float32) for s in ((N, K), (K, M), (N, M)))
    loopgrad.grads(x, W, y)
    background.wait()
    runs = {"fresh": lambda: loopgrad.grads(x, W, y),
            "out=": lambda: loopgrad.grads(x, W, y, out=out),
            "floor": lambda: floor(out[0], out[2], x, y)}
    T = {k: [] for k in runs}
    for r in range(rounds):
        for k, f in runs.items():
            f()
            t = time.perf_counter()
            f()
            T[k].append(time.perf_counter() - t)
    med = {k: np.median(v) * 1e3 for k, v in T.items()}
    gb = N * (K + M) * 2 * 4 / 1e9
    print(f"{N}x{K}x{M}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in med.items())
          + f"; floor {gb / med['floor'] * 1e3:.1f} GB/s; its share of out= "
          f"{med['floor'] / med['out=']:.0%}, of fresh {med['floor'] / med['fresh']:.0%}")
