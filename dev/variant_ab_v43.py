"""The API's time at one shape with the entry's tile forced (dev/products_v43.md 44a).

    [VARIANT=float32-narrow] [DTYPE=float32] python dev/variant_ab_v43.py NxKxM [rounds=31]

VARIANT: tiled.variant's answer at every shape (unset: the entry's own choice).  Run it
alternately in separate processes (the host's speed drifts by the minute)."""
import os, sys, time
import numpy as np
import loopgrad
from loopgrad.cpu import tiled

N, K, M = (int(v) for v in sys.argv[1].split("x"))
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 31
DT = np.dtype(os.environ.get("DTYPE", "float32")).type
forced = os.environ.get("VARIANT")
if forced:
    tiled.variant = lambda K, M, dtype, isa=None: forced
    tiled._plan.cache_clear()
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
r = loopgrad.grads(x, W, y)
for _ in range(3):
    r = loopgrad.grads(x, W, y)
ts = []
for _ in range(rounds):
    del r
    s = time.perf_counter(); r = loopgrad.grads(x, W, y); ts.append(time.perf_counter() - s)
print(f"{sys.argv[1]} {DT.__name__} {forced or 'own'} {tiled.plan(N, K, M, DT)[:2]} "
      f"median {np.median(ts) * 1e3:.3f} ms p20 {np.percentile(ts, 20) * 1e3:.3f}")
