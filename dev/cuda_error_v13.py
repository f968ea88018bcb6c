"""Does the CUDA kernels' summation order meet issue 23's accuracy target?

Emulates, in NumPy, the order in which loopgrad/cuda/products.py sums: h and dx
over K and M in float32 with FMA (each product-sum rounded once), in blocks of
KC terms added to a float32 total (--kc 0: one running sum, the first design),
dW in float32 over SUM_ROWS-row blocks and float64 across them; z, g, dy, f
from float64 as the kernels do.  Compares each output's error against
float64 torch with torch float32's own (mean and largest), at the shapes of the
CPU's test (tests/test_tiled.py::test_error_within_1_5x_torch_float32).

    PYTHONPATH=. python dev/cuda_error_v13.py [--kc 256]
"""

import argparse

import numpy as np

from loopgrad import reference

SUM_ROWS = 512
KC = 256


def serial(A, B):
    # C = A·B in float32: FMA sums of KC terms (KC = 0: all of them), added to C in turn
    C = np.zeros((A.shape[0], B.shape[1]), np.float32)
    step = KC or A.shape[1] or 1
    for p0 in range(0, A.shape[1], step):
        P = np.zeros_like(C)
        for p in range(p0, min(p0 + step, A.shape[1])):
            P = (P + A[:, p:p + 1].astype(np.float64) * B[p:p + 1, :]).astype(np.float32)
        C += P
    return C


def emulate(x, W, y):
    h = serial(x, W)
    hd = h.astype(np.float64)
    z = np.maximum(hd, 0) - y.astype(np.float64)
    f = float(np.sum(z * z))
    g = (2 * z * (hd > 0)).astype(np.float32)
    dy = (-2 * z).astype(np.float32)
    dx = serial(g, np.ascontiguousarray(W.T))
    dW = np.zeros(W.shape, np.float64)
    for r in range(0, x.shape[0], SUM_ROWS):
        dW += serial(np.ascontiguousarray(x[r:r + SUM_ROWS].T), g[r:r + SUM_ROWS])
    return f, dx, dW.astype(np.float32), dy


def main():
    global KC
    ap = argparse.ArgumentParser()
    ap.add_argument("--kc", type=int, default=KC)
    KC = ap.parse_args().kc
    print(f"KC = {KC or 'all'}")
    for N, K, M in [(300, 600, 40), (300, 40, 600), (512, 512, 512), (2000, 1024, 64)]:
        ratio = reference.error_ratios(emulate, N, K, M)
        print(f"{N}×{K}×{M}: ours/torch32 (mean, max) "
              + ", ".join(f"{n} {r[0]:.2f} {r[1]:.2f}" for n, r in zip(("f", "dx", "dW", "dy"), ratio)))


if __name__ == "__main__":
    main()
