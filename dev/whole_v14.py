"""The whole call against its peers at 2 threads, interleaved (dev/products_v14.md).

    python dev/whole_v14.py 1024 [rounds] [threads]

Each round times once: loopgrad.grads with fresh outputs, with `out=`, f only (wrt=()),
torch.compile and torch eager of the hand formula (the bench's), and the three torch.mm
of the same sizes (x·W, g·Wᵀ, xᵀ·g).  Medians in ms, and each as a multiple of the
three torch.mm in the same round (median of the ratios).
"""
import sys, time, numpy as np, numba, torch
import loopgrad
from loopgrad.bench.impls import _torch_hand
from loopgrad.cpu import background
import torch._inductor.config
torch._inductor.config.compile_threads = 1
n = int(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
T = int(sys.argv[3]) if len(sys.argv) > 3 else 2
numba.set_num_threads(T); torch.set_num_threads(T)
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=np.float32) for s in ((n, n), (n, n), (n, n)))
out = tuple(np.empty((n, n), np.float32) for _ in range(3))
X, Wt, Y = (torch.from_numpy(a) for a in (x, W, y))
G = torch.from_numpy(rng.standard_normal((n, n), dtype=np.float32))
half = torch.tensor(0.5)
comp = torch.compile(_torch_hand, dynamic=False)
def mm3():
    torch.mm(X, Wt); torch.mm(G, Wt.T); torch.mm(X.T, G)
v = {"fresh": lambda: loopgrad.grads(x, W, y),
     "out=": lambda: loopgrad.grads(x, W, y, out=out),
     "f only": lambda: loopgrad.grads(x, W, y, wrt=(), out=(None, None, None)),
     "torch-compile": lambda: comp(X, Wt, Y, half),
     "torch-hand": lambda: _torch_hand(X, Wt, Y, half),
     "3 mm": mm3}
for f in v.values():
    f(); background.wait(); f(); f()
res = {k: [] for k in v}
for r in range(rounds):
    for k, f in v.items():
        t0 = time.perf_counter(); f(); res[k].append(time.perf_counter() - t0)
mm = np.array(res["3 mm"])
print(f"{loopgrad.cpu.machine.target()['cpu_name']} {n}^3 float32, {T} threads, {rounds} rounds")
for k, t in res.items():
    t = np.array(t)
    print(f"  {k:14s} {np.median(t)*1e3:8.2f} ms  p20-p80 {np.percentile(t,20)*1e3:.2f}-{np.percentile(t,80)*1e3:.2f}"
          f"   ÷ 3 mm {np.median(t / mm):.2f}")
