"""The fused kernel against the three-pass one at the same shapes, both called alternately with
the same inputs, the fused one with the chunks tiled.plan would give it (dev/products_v19.md 20g, 20i).

    [THREADS=2] [DTYPE=float32] python dev/fused_three_ab_v19.py NxKxM ... [rounds=11]
"""
import os, sys, time
import numpy as np, numba
from loopgrad._inputs import WANT_ALL, STREAM
from loopgrad.cpu import tiled
args = [a for a in sys.argv[1:] if "x" in a]
rounds = int(next((a for a in sys.argv[1:] if "x" not in a), 11))
numba.set_num_threads(int(os.environ.get("THREADS", 2)))
DT = np.dtype(os.environ.get("DTYPE", "float32"))
for a in args:
    N, K, M = (int(s) for s in a.split("x"))
    v = tiled.variant(K, M, DT)
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
    from loopgrad.cpu import machine
    tile = machine.TABLE[machine.entry().isa].tiles[v]
    R = max(tiled._CHUNK_ROWS, tiled._CHUNK_WORK // (6 * K * M))
    n = max(-(-N // R), min(tiled._MIN_CHUNKS, -(-N // tile.MC)), 1)
    rows = max(1, -(-N // (n * tile.MC))) * tile.MC
    most = min(tiled._MAX_CHUNKS, max(1, tiled._PARTIAL_BYTES // (8 * K * (-(-M // tile.NR) * tile.NR))))
    if N > most * rows: rows = -(-N // most // tile.MC) * tile.MC
    nch = max(1, -(-N // rows))
    cfg = {"fused": ("grads_fused", nch, rows), "three": ("grads", numba.get_num_threads(), 0)}
    S = {}
    for k, (name, nc, r) in cfg.items():
        n64, nT = tiled.scratch(name, v, N, K, M, nc)
        S[k] = (tiled.kernel(name, v, True), nc, r, np.empty(n64), np.empty(nT, DT), [np.empty_like(x), np.empty_like(W), np.empty_like(y)])
    call = {k: (lambda k=k: S[k][0](*S[k][5], x, W, y, 0.0, S[k][1], S[k][2], S[k][3], S[k][4], WANT_ALL | STREAM)) for k in S}
    for k in S: call[k]()
    ts = {k: [] for k in S}
    for r in range(rounds):
        for k in (("fused", "three") if r % 2 else ("three", "fused")):
            s = time.perf_counter(); call[k](); ts[k].append(time.perf_counter() - s)
    ratio = np.median(np.array(ts["three"]) / np.array(ts["fused"]))
    print(f"{a} {DT.name} plan {tiled.plan(N, K, M, DT)[0]}: fused {np.median(ts['fused'])*1e3:.3f} ms, three {np.median(ts['three'])*1e3:.3f} ms, three/fused {ratio:.3f}", flush=True)
