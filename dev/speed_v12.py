"""loopgrad.grads's warm median per shape, for comparing two checkouts run in turn (dev/cold_v12.md).

    python dev/speed_v12.py 1024x1024x1024,100000x64x64 [reps] [threads]
"""
import sys, time  # noqa: E401
import numpy as np
import numba
import loopgrad
from loopgrad.cpu import background

shapes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[1].split(",")]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 15
if len(sys.argv) > 3:
    numba.set_num_threads(int(sys.argv[3]))
for N, K, M in shapes:
    r = np.random.default_rng(0)
    x, W, y = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
    out = (np.empty_like(x), np.empty_like(W), np.empty_like(y))
    loopgrad.grads(x, W, y, out=out)
    background.wait()
    for _ in range(2):
        loopgrad.grads(x, W, y, out=out)
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); loopgrad.grads(x, W, y, out=out); ts.append(time.perf_counter() - t)
    print(f"{loopgrad.__file__.split('/')[1]:5s} {N}x{K}x{M} median {np.median(ts) * 1e3:8.3f} ms  "
          f"best {min(ts) * 1e3:8.3f} ms  {6 * N * K * M / np.median(ts) / 1e9:6.1f} GFLOP/s")
