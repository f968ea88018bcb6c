"""Variant 5: v4 with rows in blocks of B, so each W row and dW row is reused B times.

Prediction: v4 streams all of W (twice) and the K×M float64 dW accumulator
through the cache for every row: at 1024² that is 4 MB + 8 MB read and 8 MB
written per row, so it runs at cache/DRAM speed (~1 FMA per byte moved).
Taking B = 8 rows at a time reuses each W row and dW row 8 times from L1:
expect 3–6× on wide and square shapes, little change at 16×16 (already in L1).

Measured (2026-11-26, one thread, CPU time, float32 in): no real gain.
64×64: v5 1145 vs v4 927 ns/row; 16×16: 101 vs 116; 256³: 27.3 vs 26.0
GFLOP/s; 1024³: 31.2 vs 27.9 GFLOP/s.  So the limit is not where W and dW
come from but that every FMA on h and dW is a load and a store (the
accumulators live in memory, ~4 FMA/cycle at best).  Not adopted.  What it
takes: a register-tiled micro-kernel (accumulators that stay in registers
across k, as in BLIS; see issue 5's notes on SLP and unsigned indices).

Run: NUMBA_NUM_THREADS=1 python dev/rows_v5.py
"""
import time
import numpy as np
from numba import njit

from loopgrad._scalar import relu_backward

_rb = njit(relu_backward, inline="always")
B = 8


@njit(nogil=True, fastmath={"reassoc"})
def chunk(dx, dW_part, dy, x, W, y, a0, start, stop):
    K = np.uint64(W.shape[0])
    M = np.uint64(W.shape[1])
    UB = np.uint64(B)
    h = np.empty((B, W.shape[1]))
    g = np.empty((B, W.shape[1]))
    for i in range(K * M):
        dW_part[i] = 0.0
    f = 0.0
    start = np.uint64(start)
    stop = np.uint64(stop)
    for n0 in range(start, stop, UB):
        nb = min(UB, stop - n0)
        for b in range(nb):
            for m in range(M):
                h[b, m] = 0.0
        for k in range(K):                       # h[b,:] += x[n0+b,k]·W[k,:]
            for b in range(nb):
                xk = np.float64(x[n0 + b, k])
                for m in range(M):
                    h[b, m] += xk * W[k, m]
        for b in range(nb):
            for m in range(M):
                hm = h[b, m]
                z = (0.0 if hm < 0.0 else hm) - y[n0 + b, m]
                f += z * z
                g[b, m] = _rb(hm, z, a0)
                dy[n0 + b, m] = -2.0 * z
        for k in range(K):
            for b in range(nb):                  # dx[n,k] = g[n,:]·W[k,:]
                s = 0.0
                for m in range(M):
                    s += g[b, m] * W[k, m]
                dx[n0 + b, k] = s
            base = k * M
            for b in range(nb):                  # dW[k,:] += x[n,k]·g[n,:]
                xk = np.float64(x[n0 + b, k])
                for m in range(M):
                    dW_part[base + m] += xk * g[b, m]
    return f


if __name__ == "__main__":
    import sys
    sys.path.insert(0, "dev")
    import rows_v4
    rng = np.random.default_rng(0)
    for N, K, M in [(20_000, 64, 64), (100_000, 16, 16), (512, 256, 256), (128, 1024, 1024)]:
        x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        outs = [np.empty(s, np.float32) for s in ((N, K), (N, M))]
        dWp = np.empty(K * M)
        res = {}
        for name, fn in (("v5", chunk), ("v4", rows_v4.chunk)):
            f = fn(outs[0], dWp, outs[1], x, W, y, 0.0, 0, N)
            res[name] = (f, outs[0].copy(), dWp.copy(), outs[1].copy())
            ts = []
            for _ in range(3):
                c = time.process_time(); fn(outs[0], dWp, outs[1], x, W, y, 0.0, 0, N); ts.append(time.process_time() - c)
            t = np.median(ts)
            print(f"{N}x{K}x{M} {name}: {t / N * 1e9:.0f} ns/row, {6 * N * K * M / t / 1e9:.1f} GFLOP/s", flush=True)
        print("  max diff v5-v4:", [float(np.max(np.abs(np.asarray(a, float) - b))) for a, b in zip(res["v5"], res["v4"])])
