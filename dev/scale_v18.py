"""loopgrad against torch.compile (and four torch matmuls) at 1 and 2 threads, alternating
(dev/products_v18.md 19h).  mm3 runs x@W twice, so "3 mm" is four products.

    python dev/scale_v18.py NxKxM
"""
import sys, time, numpy as np, numba, torch, loopgrad
from loopgrad.cpu import background
N, K, M = (int(v) for v in sys.argv[1].split("x"))
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=np.float32) for s in ((N, K), (K, M), (N, M)))
loopgrad.grads(x, W, y); background.wait()
X, Wt, Y = (torch.from_numpy(a) for a in (x, W, y))
def tfn(X, Wt, Y):
    h = X @ Wt; z = torch.relu(h) - Y
    g = 2 * z * (h > 0)
    return (z * z).sum(), g @ Wt.T, X.T @ g, -2 * z
def mm3(X, Wt, Y):
    h = X @ Wt
    return X @ Wt, h @ Wt.T, X.T @ h
tc = torch.compile(tfn)
for th in (1, 2):
    numba.set_num_threads(th); torch.set_num_threads(th)
    for f in (lambda: loopgrad.grads(x, W, y), lambda: tc(X, Wt, Y), lambda: mm3(X, Wt, Y)): f(); f()
    ts = {"loopgrad": [], "torch.compile": [], "3 mm": []}
    for r in range(9):
        for k, f in (("loopgrad", lambda: loopgrad.grads(x, W, y)), ("torch.compile", lambda: tc(X, Wt, Y)), ("3 mm", lambda: mm3(X, Wt, Y))):
            s = time.perf_counter(); f(); ts[k].append(time.perf_counter() - s)
    print(sys.argv[1], th, "threads:", " ".join(f"{k} {np.median(v)*1e3:.2f}" for k, v in ts.items()))
