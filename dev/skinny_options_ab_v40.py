"""Paired A/B in one process: the generated skinny rows compiled with stop 49's LLVM options
(the interleave count alone, A "old") and skinny._llvm_options (B "new": the vector width
fixed too, no vectorized remainder), the parallel kernels called alternately at each
shape; prints medians, the paired ratio new ÷ old and whether f's bits agree
(dev/products_v40.md 41a).

    [ISA env] python dev/skinny_options_ab_v40.py float32|float64 NxKxM ...
"""
import sys, time, numpy as np, numba
from loopgrad.cpu import skinny, rows, chunks, machine
from loopgrad._inputs import WANT_ALL, STREAM
new = skinny._llvm_options
def old(K, M, bits, dtype=None):
    interleave = 4 if K * M == 1 else 2 if K * M <= 3 else 1
    return {**skinny.LLVM_OPTIONS, "force-vector-interleave": (interleave, 0)}
dt = np.dtype(sys.argv[1]).type
rounds = 25
for a in sys.argv[2:]:
    N, K, M = (int(s) for s in a.split("x"))
    kern = {}
    for tag, opt in (("old", old), ("new", new)):
        skinny._llvm_options = opt
        skinny._ROWS.clear(); skinny._COMPILED.clear()
        kern[tag] = skinny.kernel("grads", K, M, dt, True, WANT_ALL)
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(dt) for s in ((N, K), (K, M), (N, M)))
    chunk_rows, nchunks, stride = rows.plan(N, K, M)
    partials = rows.partials_buffer(nchunks, stride)
    outs = (np.empty_like(x), np.empty_like(W), np.empty_like(y))
    want = WANT_ALL | STREAM
    ts = {t: [] for t in kern}
    fs = {t: kern[t](*outs, partials, x, W, y, 0.5, chunk_rows, want) for t in kern}
    for r in range(rounds):
        for t, k in kern.items():
            s = time.perf_counter(); k(*outs, partials, x, W, y, 0.5, chunk_rows, want); ts[t].append(time.perf_counter() - s)
    ratio = np.median(np.array(ts["new"]) / np.array(ts["old"]))
    print(f"{a} {np.dtype(dt).name}: old {np.median(ts['old'])*1e3:.3f} new {np.median(ts['new'])*1e3:.3f} ms, paired new/old {ratio:.3f}, same f {fs['old'] == fs['new']}", flush=True)
