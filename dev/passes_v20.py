"""The three-pass kernel's passes at 1 and 2 threads, from the gradients asked for: dy alone
(W's packs, h and its epilogue, the guard), + dx, + dW (everything), dW alone (h, its
epilogue and dW without dy), each the compiled parallel kernel called alternately
(dev/products_v20.md 21b).  Differences give each pass's cost and its two-thread scaling.

    [DTYPE=float64] [SET=NAME=VALUE,...] python dev/passes_v20.py NxKxM [rounds=31]

SET: tiled.py's constants set before the kernel is generated (DWB=16: a module of its own;
dev/products_v42.md 43g).
"""
import sys, time
import numpy as np, numba
from loopgrad._inputs import WANT_DX, WANT_DW, WANT_DY
from loopgrad.cpu import tiled
for _kv in filter(None, __import__("os").environ.get("SET", "").split(",")):
    setattr(tiled, _kv.split("=")[0], int(_kv.split("=")[1]))
N, K, M = (int(v) for v in sys.argv[1].split("x"))
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 31
DT = np.dtype(__import__("os").environ.get("DTYPE", "float32")).type
name, v, nch, rows = tiled.plan(N, K, M, DT)
assert name == "grads", name
kern = tiled.kernel(name, v, True)
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
ws64, wsT = (np.empty(n, t) for n, t in zip(tiled.scratch(name, v, N, K, M, 1), (np.float64, DT)))
outs = [np.empty_like(x), np.empty_like(W), np.empty_like(y)]
wants = {"dy": WANT_DY, "dy+dx": WANT_DY | WANT_DX, "dW": WANT_DW, "all": WANT_DY | WANT_DX | WANT_DW}
res = {}
for thr in (1, 2):
    numba.set_num_threads(thr)
    for w in wants.values():
        kern(*outs, x, W, y, 0.0, thr, rows, ws64, wsT, w)
    ts = {k: [] for k in wants}
    for r in range(rounds):
        for k, w in wants.items():
            s = time.perf_counter(); kern(*outs, x, W, y, 0.0, thr, rows, ws64, wsT, w)
            ts[k].append(time.perf_counter() - s)
    res[thr] = {k: np.median(t) * 1e3 for k, t in ts.items()}
for thr in (1, 2):
    r = res[thr]
    print(f"{sys.argv[1]} {thr}T ms: dy {r['dy']:.3f}, +dx {r['dy+dx'] - r['dy']:.3f}, "
          f"+dW {r['all'] - r['dy+dx']:.3f}, all {r['all']:.3f}; dW alone {r['dW']:.3f}")
print("two-thread scaling:", ", ".join(f"{k} {res[1][k] / res[2][k]:.2f}" for k in wants),
      f", dx {(res[1]['dy+dx'] - res[1]['dy']) / (res[2]['dy+dx'] - res[2]['dy']):.2f}",
      f", dW {(res[1]['all'] - res[1]['dy+dx']) / (res[2]['all'] - res[2]['dy+dx']):.2f}")
