"""What the second thread gives, pass by pass, against torch.mm's (dev/products_v15.md).

    python dev/threads_v15.py N [K M] [rounds]

Each round times once, at 1 and at 2 threads: loopgrad's f alone (wrt=()), f and dx
(wrt="x"), f and dW (wrt="W"), all (out=), and one torch.mm (x·W).  Medians in ms and
the 1-thread ÷ 2-thread speed-up of each, from the same rounds.
"""
import sys, time, numpy as np, numba, torch
import loopgrad
from loopgrad.cpu import background
a = [int(v) for v in sys.argv[1:4]] if len(sys.argv) > 3 else [int(sys.argv[1])] * 3
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 7
N, K, M = a
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=np.float32) for s in ((N, K), (K, M), (N, M)))
out = (np.empty((N, K), np.float32), np.empty((K, M), np.float32), np.empty((N, M), np.float32))
X, Wt = torch.from_numpy(x), torch.from_numpy(W)
v = {"f": lambda: loopgrad.grads(x, W, y, wrt=(), out=(None, None, None)),
     "f+dx": lambda: loopgrad.grads(x, W, y, wrt="x", out=(out[0], None, None)),
     "f+dW": lambda: loopgrad.grads(x, W, y, wrt="W", out=(None, out[1], None)),
     "all": lambda: loopgrad.grads(x, W, y, out=out),
     "mm": lambda: torch.mm(X, Wt)}
for T in (1, 2):
    numba.set_num_threads(T); torch.set_num_threads(T)
    for f in v.values():
        f(); background.wait(); f()
res = {(k, T): [] for k in v for T in (1, 2)}
for r in range(rounds):
    for T in (1, 2):
        numba.set_num_threads(T); torch.set_num_threads(T)
        for k, f in v.items():
            t0 = time.perf_counter(); f(); res[k, T].append(time.perf_counter() - t0)
print(f"{N}x{K}x{M}, {rounds} rounds: median ms at 1 / 2 threads, speed-up (median of paired)")
for k in v:
    one, two = np.array(res[k, 1]), np.array(res[k, 2])
    print(f"  {k:6s} {np.median(one) * 1e3:8.2f} {np.median(two) * 1e3:8.2f}  {np.median(one / two):.2f}x")
