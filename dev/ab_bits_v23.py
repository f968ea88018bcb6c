"""loopgrad.grads at THR threads (2), out= and fresh, with a digest of every output's bits, for
shapes N×K×M: run it alternately under two checkouts (dev/products_v23.md).

    [DTYPE=float64] [THR=1] [A0=0.5] python dev/ab_bits_v23.py 100000x24x40,100000x40x24 [rounds]
"""
import os, sys, time, hashlib, numpy as np, numba
import loopgrad
from loopgrad.cpu import background
shapes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[1].split(",")]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
numba.set_num_threads(int(os.environ.get("THR", "2")))
rng = np.random.default_rng(0)
DT = np.dtype(os.environ.get("DTYPE", "float32"))
A0 = float(os.environ.get("A0", "0"))  # relu'(0): the bench's is 0.5
res = []
for N, K, M in shapes:
    x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
    out = tuple(np.empty(s, DT) for s in ((N, K), (K, M), (N, M)))
    loopgrad.grads(x, W, y, relu_grad_at_zero=A0); background.wait(); r = loopgrad.grads(x, W, y, out=out, relu_grad_at_zero=A0)
    h = hashlib.sha1(np.float64(r[0]).tobytes() + b"".join(a.tobytes() for a in r[1:])).hexdigest()[:8]
    a, b = [], []
    for _ in range(rounds):
        t0 = time.perf_counter(); loopgrad.grads(x, W, y, out=out, relu_grad_at_zero=A0); a.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); loopgrad.grads(x, W, y, relu_grad_at_zero=A0); b.append(time.perf_counter() - t0)
    res.append(f"{N}x{K}x{M} {h}: out= {np.median(a) * 1e3:.3f} fresh {np.median(b) * 1e3:.3f}")
where = os.path.basename(os.path.dirname(os.path.dirname(loopgrad.__file__)))
print(f"{where:7s}", " | ".join(res))
