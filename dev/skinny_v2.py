"""Variant 2 of the row kernel: rows in blocks of B, column-major float64 scratch.

Prediction: the naive row kernel (v1, loopgrad/cpu.py) runs its length-K and
length-M inner loops scalar (K = M = 4: nothing to vectorize), 20 ms at
10⁶×4×4 float32 on this machine.  Turning each block of B rows into
column-major scratch makes every inner loop run over B rows, which LLVM
vectorizes (8 float64 lanes with AVX-512): expect 5–10× (2–4 ms), bounded
by the strided transposes in and out.

Measured (2026-11-26, one thread, CPU time, machine shared with other jobs):
10⁶×4×4 float32: v2 31 ms vs v1 41 ms; 10⁶×16×16: v2 167 ms vs v1 231 ms.
1.3×, far short of the prediction.  The inner loops over rows vectorize
(zmm FMAs in the assembly), but the transposes in and out and the z/g loop
read and write x, y, dx, dy with a runtime row stride (K or M), which LLVM
leaves scalar, and every pass goes through memory.  Not adopted.  Next:
K and M as compile-time constants with flat 1-D views, so the row stride is
a constant and LLVM can use interleaved vector loads (issue 5's notes).

Run: NUMBA_NUM_THREADS=1 python dev/skinny_v2.py
"""
import time
import numpy as np
from numba import njit, prange

B = 64
FM = {"reassoc", "contract"}


@njit(nogil=True, fastmath=FM)
def chunk(dx, dWp, dy, x, W, y, a0, start, stop, xb, hb, gb, dxb):
    K, M = W.shape
    f = 0.0
    for i in range(K * M):
        dWp[i] = 0.0
    for n0 in range(start, stop, B):
        nb = min(B, stop - n0)
        for i in range(nb):                  # x rows → xb columns
            for k in range(K):
                xb[k, i] = x[n0 + i, k]
        for m in range(M):
            for i in range(nb):
                hb[m, i] = 0.0
            for k in range(K):
                w = np.float64(W[k, m])
                for i in range(nb):
                    hb[m, i] += xb[k, i] * w
        for m in range(M):
            for i in range(nb):
                hm = hb[m, i]
                z = (0.0 if hm < 0.0 else hm) - y[n0 + i, m]
                f += z * z
                g = 2.0 * z
                if hm < 0.0 or (hm == 0.0 and a0 == 0.0):
                    g = 0.0
                elif hm == 0.0:
                    g = a0 * g
                gb[m, i] = g
                dy[n0 + i, m] = -2.0 * z
        for k in range(K):
            for i in range(nb):
                dxb[k, i] = 0.0
            for m in range(M):
                w = np.float64(W[k, m])
                for i in range(nb):
                    dxb[k, i] += gb[m, i] * w
        for i in range(nb):
            for k in range(K):
                dx[n0 + i, k] = dxb[k, i]
        for k in range(K):
            for m in range(M):
                s = 0.0
                for i in range(nb):
                    s += xb[k, i] * gb[m, i]
                dWp[k * M + m] += s
    return f


@njit(parallel=True, nogil=True)
def grads(dx, dW, dy, partials, x, W, y, a0, rows):
    N = x.shape[0]
    K, M = W.shape
    for c in prange(partials.shape[0]):
        xb = np.empty((K, B))
        hb = np.empty((M, B))
        gb = np.empty((M, B))
        dxb = np.empty((K, B))
        start = c * rows
        partials[c, K * M] = chunk(dx, partials[c], dy, x, W, y, a0, start, min(start + rows, N), xb, hb, gb, dxb)
    for k in range(K):
        for m in range(M):
            s = 0.0
            for c in range(partials.shape[0]):
                s += partials[c, k * M + m]
            dW[k, m] = s
    s = 0.0
    for c in range(partials.shape[0]):
        s += partials[c, K * M]
    return s


if __name__ == "__main__":
    import loopgrad
    from loopgrad.cpu import rows as cpu
    rng = np.random.default_rng(0)
    for N, K, M in [(10**6, 4, 4), (10**6, 16, 16)]:
        x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        rows, nch, stride = cpu.plan(N, K, M)
        outs = [np.empty(s, np.float32) for s in ((N, K), (K, M), (N, M))]
        part = cpu.partials_buffer(nch, stride)
        f = grads(*outs, part, x, W, y, 0.0, rows)
        ref = loopgrad.grads(x, W, y)
        print("maxdiff", abs(f - ref.f) / ref.f, [float(np.abs(a - b).max()) for a, b in zip(outs, ref[1:])])
        for name, fn in [("v2", lambda: grads(*outs, part, x, W, y, 0.0, rows)), ("v1", lambda: loopgrad.grads(x, W, y))]:
            ts = []
            for _ in range(10):
                t = time.perf_counter(); c = time.process_time(); fn(); ts.append((time.perf_counter() - t, time.process_time() - c))
            w, c = np.median(np.array(ts), axis=0)
            print(N, K, M, name, "wall %.2f ms  cpu %.2f ms" % (w * 1e3, c * 1e3))
