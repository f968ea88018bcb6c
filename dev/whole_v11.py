"""The three-pass kernel pass by pass, one thread, as multiples of torch.mm's time (dev/products_v11.md).

    python dev/whole_v11.py 1024 [rounds] [threads]   # N = K = M; NUMBA_CPU_NAME/FEATURES force an entry

loopgrad.grads with wrt = () (h and its epilogue: f only), "y" (the epilogue writes dy and g),
"x" (+ Wᵀ's pack and dx), "W" (+ x's and g's packs and dW) and all three, `out=` reused,
against torch.mm of the same size, one thread, every variant once a round; medians of
the ratios round by round.
"""
import sys, time, numpy as np, numba, torch
import loopgrad
T = int(sys.argv[3]) if len(sys.argv) > 3 else 1
numba.set_num_threads(T); torch.set_num_threads(T)
n = int(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=np.float32) for s in ((n, n), (n, n), (n, n)))
out = tuple(np.empty((n, n), np.float32) for _ in range(3))
X, Wt = torch.from_numpy(x), torch.from_numpy(W)
wrts = {"f": (), "dy": ("y",), "dx": ("x",), "dW": ("W",), "all": ("x", "W", "y")}
def call(w):
    o = tuple(a if k in w else None for a, k in zip(out, ("x", "W", "y")))
    loopgrad.grads(x, W, y, wrt=w, out=o)
from loopgrad.cpu import background
for w in wrts.values():
    call(w); background.wait(); call(w)  # the compiled kernels, not the drivers in transition
torch.mm(X, Wt)
res = {k: [] for k in wrts}
for r in range(rounds):
    t0 = time.perf_counter(); torch.mm(X, Wt); tm = time.perf_counter() - t0
    for k, w in wrts.items():
        t0 = time.perf_counter(); call(w); res[k].append((time.perf_counter() - t0) / tm)
print(f"{loopgrad.cpu.machine.target()['cpu_name']} {n}^3 float32, {T} thread(s), ÷ torch.mm:",
      "  ".join(f"{k} {np.median(v):.2f}" for k, v in res.items()))
