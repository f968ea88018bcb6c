"""loopgrad.grads (out=) at 2 threads against three torch.mm, in one process: the median
time of each shape and its ratio to the 3 mm of the same rounds (dev/products_v15.md).
Run it alternately under two checkouts (PYTHONPATH=...) to compare them.

    python dev/ab_v15.py 256,512,1024 [rounds]
"""
import sys, time, numpy as np, torch, numba
import loopgrad
from loopgrad.cpu import background
shapes = [int(v) for v in sys.argv[1].split(",")]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
torch.set_num_threads(2); numba.set_num_threads(2)
rng = np.random.default_rng(0)
res = []
for n in shapes:
    x, W, y = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(3))
    out = tuple(np.empty((n, n), np.float32) for _ in range(3))
    X, Wt, G = (torch.from_numpy(a) for a in (x, W, y))
    f = lambda: loopgrad.grads(x, W, y, out=out)
    mm = lambda: (torch.mm(X, Wt), torch.mm(G, Wt.T), torch.mm(X.T, G))
    f(); background.wait(); f(); mm()
    a, b = [], []
    for r in range(rounds):
        t0 = time.perf_counter(); f(); a.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); mm(); b.append(time.perf_counter() - t0)
    a, b = np.array(a), np.array(b)
    res.append(f"{n}: {np.median(a) * 1e3:.3f} ms ({np.median(a / b):.3f} of 3 mm)")
print(loopgrad.__file__.split("/")[2], " | ".join(res))
