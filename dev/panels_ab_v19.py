"""The three-pass kernel with g by column panels (tiled.PANELS) against g in whole rows, both
compiled in one process and called alternately with the same arguments (dev/products_v19.md 20a).

    [THREADS=2] [DTYPE=float32] python dev/panels_ab_v19.py NxKxM [NxKxM ...] [rounds=15]

Prints, per shape, each layout's median ms and the paired median ratio panels ÷ rows, and
checks that the two give the same bits.
"""
import os, sys, time
import numpy as np, numba
from loopgrad._inputs import WANT_ALL, STREAM
from loopgrad.cpu import tiled, machine

args = [a for a in sys.argv[1:] if "x" in a]
rounds = int(next((a for a in sys.argv[1:] if "x" not in a), 15))
numba.set_num_threads(int(os.environ.get("THREADS", 2)))
DT = np.dtype(os.environ.get("DTYPE", "float32"))
isa = machine.entry().isa


def build(panels):
    tiled.PANELS = panels
    for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher):
        f.cache_clear()
    return {v: tiled.kernel("grads", v, True) for v in {tiled.variant(*(int(s) for s in a.split("x")[1:]), DT) for a in args}}


kern = {True: build(True), False: build(False)}
for a in args:
    N, K, M = (int(s) for s in a.split("x"))
    v = tiled.variant(K, M, DT)
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
    n64, nT = (max(p) for p in zip(*(tiled.scratch("grads", v, N, K, M, 1) for _ in (0,))))
    tiled.PANELS = False
    n64b, nTb = tiled.scratch("grads", v, N, K, M, 1)
    ws64, wsT = np.empty(max(n64, n64b)), np.empty(max(nT, nTb), DT)
    outs = {p: [np.empty_like(x), np.empty_like(W), np.empty_like(y)] for p in kern}
    nthr = numba.get_num_threads()
    want = WANT_ALL | STREAM
    call = {p: (lambda p=p: kern[p][v](*outs[p], x, W, y, 0.0, nthr, 1, ws64, wsT, want)) for p in kern}
    fs = {p: call[p]() for p in kern}
    same = fs[True] == fs[False] and all(np.array_equal(u, w) for u, w in zip(outs[True], outs[False]))
    ts = {p: [] for p in kern}
    for r in range(rounds):
        for p in (True, False) if r % 2 else (False, True):
            s = time.perf_counter(); call[p](); ts[p].append(time.perf_counter() - s)
    ratio = np.median(np.array(ts[True]) / np.array(ts[False]))
    print(f"{a} {v} {nthr} threads: panels {np.median(ts[True])*1e3:.2f} ms, rows "
          f"{np.median(ts[False])*1e3:.2f} ms, paired ratio {ratio:.3f}, same bits {same}", flush=True)
