"""2048³ in a fresh process against one that first ran other shapes with loopgrad and torch,
fresh outputs and out= (benchmarks/RESULTS.md, 2026-12-03 night, later).   python dev/churn_v14.py fresh|churn
"""
import time, numpy as np, torch, sys
import loopgrad
from loopgrad.cpu import background, workspace
r = np.random.default_rng(0)
def arrays(n, k, m):
    return (r.standard_normal((n, k), dtype=np.float32), r.standard_normal((k, m), dtype=np.float32), r.standard_normal((n, m), dtype=np.float32))
if sys.argv[1] == "churn":
    for s in ((1000000, 16, 16), (100000, 64, 64), (1024, 1024, 1024)):
        a = arrays(*s)
        for _ in range(8): loopgrad.grads(*a); background.wait()
        t = [torch.from_numpy(v) for v in a]
        for _ in range(3): (torch.relu(t[0] @ t[1]) - t[2]).sum()
x, W, y = arrays(2048, 2048, 2048)
out = tuple(np.empty_like(a) for a in (x, W, y))
loopgrad.grads(x, W, y); background.wait(); loopgrad.grads(x, W, y)
res = {"fresh": [], "out=": []}
for _ in range(5):
    t0 = time.perf_counter(); loopgrad.grads(x, W, y); res["fresh"].append(time.perf_counter() - t0)
    t0 = time.perf_counter(); loopgrad.grads(x, W, y, out=out); res["out="].append(time.perf_counter() - t0)
print(sys.argv[1], {k: round(np.median(v) * 1e3, 1) for k, v in res.items()})
