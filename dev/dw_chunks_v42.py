"""The three-pass kernel's dW pass (dW alone, and all three gradients) at 1 and 2 threads,
under settings of tiled.py's module constants (each a generated module of its own),
alternating in one process (dev/products_v42.md 43d).

    [ISA env] python dev/dw_chunks_v42.py NxKxM rounds SETTING...
    SETTING: base, or NAME=VALUE[+NAME=VALUE] of tiled.py's constants (DWB=8, H_ITEMS=4)
"""
import sys, time
import numpy as np, numba
from loopgrad._inputs import WANT_DX, WANT_DW, WANT_DY
from loopgrad.cpu import tiled

N, K, M = (int(v) for v in sys.argv[1].split("x"))
rounds, names = int(sys.argv[2]), sys.argv[3:]
name, v, nch, rows = tiled.plan(N, K, M, np.float32)
assert name == "grads", name
kept = {}


def kernel(setting):
    for k, val in kept.items():
        setattr(tiled, k, val)
    for part in ([] if setting == "base" else setting.split("+")):
        k, val = part.split("=")
        kept.setdefault(k, getattr(tiled, k))
        setattr(tiled, k, int(val))
    for f in (tiled._kernel, tiled._dispatcher, tiled.module, tiled._generated):
        f.cache_clear()
    return tiled.kernel(name, v, True)


kerns = {s: kernel(s) for s in names}
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
ws64, wsT = (np.empty(n, t) for n, t in zip(tiled.scratch(name, v, N, K, M, 1), (np.float64, np.float32)))
outs = [np.empty_like(x), np.empty_like(W), np.empty_like(y)]
wants = {"dW": WANT_DW, "all": WANT_DY | WANT_DX | WANT_DW}
ref = None
for s, kern in kerns.items():
    outs[1][:] = np.nan
    f = kern(*outs, x, W, y, 0.0, 2, rows, ws64, wsT, wants["all"])
    got = (f, outs[1].copy())
    ref = ref or got
    print(s, f, "same f and dW bits" if got[0] == ref[0] and np.array_equal(got[1], ref[1])
          else "DIFFERENT")
for thr in (1, 2):
    numba.set_num_threads(thr)
    ts = {(s, k): [] for s in kerns for k in wants}
    for r in range(rounds):
        for s, kern in kerns.items():
            for k, w in wants.items():
                t0 = time.perf_counter(); kern(*outs, x, W, y, 0.0, thr, rows, ws64, wsT, w)
                ts[s, k].append(time.perf_counter() - t0)
    for s in kerns:
        print(f"{thr}T {s:20s} " + "  ".join(f"{k} {np.median(ts[s, k]) * 1e3:8.2f} ms" for k in wants))
