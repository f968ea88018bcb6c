"""loopgrad.loss against torch.mm (x·W alone) at N = K = 2048 by M, THR threads (1), and
grads(wrt="W") beside them (dev/products_v23.md 24j).

    [THR=2] python dev/loss_m_v23.py
"""
import time, numpy as np, numba, torch, loopgrad, os
from loopgrad.cpu import background
T = int(os.environ.get("THR", "1")); numba.set_num_threads(T); torch.set_num_threads(T)
rng = np.random.default_rng(0)
N = K = 2048
for M in (256, 512, 1024, 2048):
    x = rng.standard_normal((N, K), dtype=np.float32); W = rng.standard_normal((K, M), dtype=np.float32); y = rng.standard_normal((N, M), dtype=np.float32)
    loopgrad.loss(x, W, y); background.wait(); loopgrad.loss(x, W, y)
    xt, Wt = torch.from_numpy(x), torch.from_numpy(W)
    def tm(fn, n=7):
        fn(); ts = []
        for _ in range(n):
            t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
        return np.median(ts) * 1e3
    a = tm(lambda: loopgrad.loss(x, W, y)); b = tm(lambda: torch.mm(xt, Wt))
    c = tm(lambda: loopgrad.grads(x, W, y, wrt="W"))
    print(f"M={M}: loss {a:.2f} ms, torch.mm {b:.2f} ms, ratio {a/b:.2f}; per GFLOP loss {a/(2*N*K*M/1e9):.2f} ms; grads(wrt=W) {c:.2f}")
