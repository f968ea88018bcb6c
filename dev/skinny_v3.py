"""Variant 3: the v1 row kernel with K and M as compile-time constants (closure).

Prediction: with constant trip counts LLVM unrolls and vectorizes the inner
k/m loops (M = 16 float64: two zmm per row vector), so 10⁶×16×16 drops from
~230 ns/row (scalar) to ~40; at 4×4 the per-row loops stay tiny (4 lanes)
and the gain is smaller (~2×).

Measured (2026-11-26, one thread, CPU time): no gain.  10⁶×4×4: 31–35 ms
(v1: 31–41); 10⁶×16×16: 250–280 ms (v1: 231).  Unsigned indices and the
SLP vectorizer changed nothing.  The per-row scratch arrays h, g and the dW
accumulator live on the heap, LLVM cannot prove they don't alias the
outputs, so every += is a load and a store (256 of each per row at 16×16),
and the inlined relu_backward call doubled the 4×4 time on its own.  What
worked instead: loopgrad/_skinny.py, straight-line code on scalars, no
scratch arrays at all (2.9 ns/row at 4×4).

Run: NUMBA_NUM_THREADS=1 python dev/skinny_v3.py
"""
import time
import numpy as np
from numba import njit, prange

from loopgrad._scalar import relu_backward

_rb = njit(relu_backward)
FM = {"reassoc", "contract"}


def make(K, M, fastmath=FM):
    # unsigned indices: Numba adds a negative-index wraparound select to every
    # signed index, which blocks vectorization
    K = np.uint64(K)
    M = np.uint64(M)
    Z = np.uint64(0)

    @njit(nogil=True, fastmath=fastmath)
    def chunk(dx, dWp, dy, x, W, y, a0, start, stop):
        h = np.empty(M)
        g = np.empty(M)
        acc = np.zeros(K * M)
        Wl = np.empty(K * M)
        for i in range(K * M):
            Wl[i] = W[i]
        start = np.uint64(start)
        stop = np.uint64(stop)
        f = 0.0
        for n in range(start, stop):
            for m in range(M):
                h[m] = 0.0
            for k in range(K):
                xk = np.float64(x[n * K + k])
                for m in range(M):
                    h[m] += xk * Wl[k * M + m]
            for m in range(M):
                hm = h[m]
                z = (0.0 if hm < 0.0 else hm) - y[n * M + m]
                f += z * z
                g[m] = 2.0 * z if hm > 0.0 else 0.0
                dy[n * M + m] = -2.0 * z
            for k in range(K):
                s = 0.0
                for m in range(M):
                    s += g[m] * Wl[k * M + m]
                dx[n * K + k] = s
                xk = np.float64(x[n * K + k])
                for m in range(M):
                    acc[k * M + m] += xk * g[m]
        for i in range(K * M):
            dWp[i] = acc[i]
        return f
    return chunk


if __name__ == "__main__":
    import loopgrad
    rng = np.random.default_rng(0)
    for N, K, M in [(10**6, 4, 4), (10**6, 16, 16)]:
        x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        ref = loopgrad.grads(x, W, y)
        for fm in (FM, False):
            chunk = make(K, M, fm)
            dx, dy = np.empty(N * K, np.float32), np.empty(N * M, np.float32)
            dWp = np.empty(K * M)
            f = chunk(dx, dWp, dy, x.ravel(), W.ravel(), y.ravel(), 0.0, np.uint64(0), np.uint64(N))
            err = max(abs(f - ref.f) / ref.f, float(np.abs(dx.reshape(N, K) - ref.dx).max()),
                      float(np.abs(dWp.reshape(K, M) - ref.dW).max() / np.abs(ref.dW).max()))
            ts = []
            for _ in range(5):
                c = time.process_time(); chunk(dx, dWp, dy, x.ravel(), W.ravel(), y.ravel(), 0.0, np.uint64(0), np.uint64(N)); ts.append(time.process_time() - c)
            print(N, K, M, "fastmath" if fm else "strict", "cpu %.1f ms (one thread)" % (np.median(ts) * 1e3), "err %.1e" % err)
