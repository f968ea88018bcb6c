"""Variant 4 of the general row kernel: v1 with unsigned indices and reassoc.

Prediction: v1's inner loops (h += x_k·W[k,:], dW[k,:] += x_k·g, dx = g·W[k,:])
run scalar — about 1 FMA a cycle at 64×64 (the bench: 196 ms at 10⁵×64×64).
Numba wraps every signed index with a negative-index select, which stops
LLVM's loop vectorizer; with unsigned indices the axpy loops vectorize (8
float64 lanes, with runtime alias checks), and with reassoc the dx dot
products too: expect 4–8× at 64×64 (25–50 ms), less at 16×16.

Measured (2026-11-26, one thread, CPU time per row, float32 in):
64×64: v4 671–734 ns vs v1 3983 (5.4×); 16×16: 109–114 vs 261 (2.3×);
256×256: 13.7 µs vs 62 µs (4.6×).  Outputs equal to v1's bit for bit but
f (summation order).  Adopted in loopgrad/cpu.py.  Still short of the BLAS
peers on wide shapes: the h and g rows and dW's accumulator go through
memory every k (the axpy loops are load/store-bound), and W is re-read
from cache for every row; next is blocking rows against W (a GEMM-style
micro-kernel).

Run: NUMBA_NUM_THREADS=1 python dev/rows_v4.py
"""
import time
import numpy as np
from numba import njit

from loopgrad._scalar import relu_backward

_rb = njit(relu_backward, inline="always")
U0 = np.uint64(0)


@njit(nogil=True, fastmath={"reassoc"})
def chunk(dx, dW_part, dy, x, W, y, a0, start, stop):
    K = np.uint64(W.shape[0])
    M = np.uint64(W.shape[1])
    h = np.empty(W.shape[1])
    g = np.empty(W.shape[1])
    for i in range(K * M):
        dW_part[i] = 0.0
    f = 0.0
    for n in range(np.uint64(start), np.uint64(stop)):
        for m in range(M):
            h[m] = 0.0
        for k in range(K):
            xk = np.float64(x[n, k])
            for m in range(M):
                h[m] += xk * W[k, m]
        for m in range(M):
            hm = h[m]
            z = (0.0 if hm < 0.0 else hm) - y[n, m]
            f += z * z
            g[m] = _rb(hm, z, a0)
            dy[n, m] = -2.0 * z
        for k in range(K):
            s = 0.0
            for m in range(M):
                s += g[m] * W[k, m]
            dx[n, k] = s
            xk = np.float64(x[n, k])
            base = k * M
            for m in range(M):
                dW_part[base + m] += xk * g[m]
    return f


if __name__ == "__main__":
    from loopgrad.cpu import rows as cpu
    rng = np.random.default_rng(0)
    for N, K, M in [(20_000, 64, 64), (100_000, 16, 16), (2_000, 256, 256)]:
        x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        outs = [np.empty(s, np.float32) for s in ((N, K), (N, M))]
        dWp = np.empty(K * M)
        v1 = cpu._chunk_grads
        res = {}
        for name, fn in (("v4", chunk), ("v1", v1)):
            f = fn(outs[0], dWp, outs[1], x, W, y, 0.0, 0, N)
            res[name] = (f, outs[0].copy(), dWp.copy(), outs[1].copy())
            ts = []
            for _ in range(3):
                c = time.process_time(); fn(outs[0], dWp, outs[1], x, W, y, 0.0, 0, N); ts.append(time.process_time() - c)
            print(f"{N}x{K}x{M} {name}: {np.median(ts) / N * 1e9:.0f} ns/row", flush=True)
        print("  max diff v4-v1:", [float(np.max(np.abs(np.asarray(a, float) - b))) for a, b in zip(res["v4"], res["v1"])])
