"""loopgrad.grads(..., out=) at each shape N×K×M, two threads: the best and the 25th percentile
of 20–300 calls, ms (dev/products_v48.md).  DTYPE=float64 for that dtype.  A0: relu'(0) (0,
the API's default; the bench takes ½).  SHAPED=1: the fused kernel compiled for the shape
where there is one (dev/products_v54.md 55b), as a hot shape gets; else whatever these few
calls run (the generic kernel).

    python dev/api_best_v48.py 1000000x16x16,100000x24x40
"""
import sys, os, time, numpy as np, loopgrad
from loopgrad.cpu import background
DT = np.dtype(os.environ.get("DTYPE", "float32"))
A0 = float(os.environ.get("A0", 0.0))
res = []
for s in sys.argv[1].split(","):
    N, K, M = (int(v) for v in s.split("x"))
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(sh).astype(DT) for sh in ((N, K), (K, M), (N, M)))
    r = loopgrad.grads(x, W, y, relu_grad_at_zero=A0); background.wait(); out = (r.dx, r.dW, r.dy)
    if os.environ.get("SHAPED") == "1":  # the kernel compiled for the shape, as a hot one's
        from loopgrad import cpu
        cpu.specialize(N, K, M, DT)
    loopgrad.grads(x, W, y, out=out, relu_grad_at_zero=A0)
    reps = max(20, min(300, int(2e8 / (N * K * M * 6))))
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); loopgrad.grads(x, W, y, out=out, relu_grad_at_zero=A0); ts.append(time.perf_counter() - t)
    ts.sort(); res.append(f"{s} {ts[0]*1e3:.3f}/{ts[len(ts)//4]*1e3:.3f}")
print(" | ".join(res))
