"""The CUDA products' summation order, emulated in NumPy (float32 FMAs on the CPU).

products.py sums h and dx over K and M in float32 with FMA (each product-sum
rounded once), KC terms at a time added to the output in turn, and dW in one
FMA running sum over each SUM_ROWS rows, added in float64 across them; z, g,
dy and f come from float64, as the kernels do.  On an H200 these orders gave
the very error ratios this emulation gives (dW 1.17 mean, 1.55 largest at 512³
with SUM_ROWS = 512), so the accuracy of a blocking choice can be checked
without a card (test_cuda.py; dev/cuda_error_v13.py prints the table).
"""

import numpy as np


def serial(A, B, kc):
    """C = A·B in float32: FMA sums of kc terms (0: all of them), added to C in turn."""
    C = np.zeros((A.shape[0], B.shape[1]), np.float32)
    step = kc or A.shape[1] or 1
    for p0 in range(0, A.shape[1], step):
        P = np.zeros_like(C)
        for p in range(p0, min(p0 + step, A.shape[1])):
            P = (P + A[:, p:p + 1].astype(np.float64) * B[p:p + 1, :]).astype(np.float32)
        C += P
    return C


def emulate(x, W, y, kc, sum_rows):
    """(f, dx, dW, dy) of float32 x, W, y in the kernels' order (relu'(0) = 0)."""
    h = serial(x, W, kc)
    hd = h.astype(np.float64)
    z = np.maximum(hd, 0) - y.astype(np.float64)
    f = float(np.sum(z * z))
    g = (2 * z * (hd > 0)).astype(np.float32)
    dy = (-2 * z).astype(np.float32)
    dx = serial(g, np.ascontiguousarray(W.T), kc)
    dW = np.zeros(W.shape, np.float64)
    for r in range(0, x.shape[0], sum_rows):
        dW += serial(np.ascontiguousarray(x[r:r + sum_rows].T), g[r:r + sum_rows], 0)
    return f, dx, dW.astype(np.float32), dy
