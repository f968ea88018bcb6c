"""In-L1 rate of intrinsics.microkernel at several MR (float32, NR 32), one thread
(dev/products_v24.md 25a, 25c).

    python dev/mk_rows_v24.py [kc=256] [MRs=8,10,12,14]
"""
import sys, time, numpy as np, numba
from numba import njit, types as nt
from loopgrad.cpu import intrinsics
numba.set_num_threads(1)
kc = int(sys.argv[1]) if len(sys.argv) > 1 else 256
res = {}
for MR in [int(a) for a in (sys.argv[2] if len(sys.argv) > 2 else "8,10,12,14").split(",")]:
    NR, VW = 32, 16
    mk = intrinsics.microkernel("float32", MR, NR, VW)
    A1, I = nt.Array(nt.float32, 1, "C"), nt.int64
    @njit(nt.void(I, I, A1, A1, A1))
    def run(reps, kc, A, B, C):
        for r in range(reps):
            mk(kc, intrinsics.pointer(A), 0, MR, 1, intrinsics.pointer(B), 0, NR,
               intrinsics.pointer(C), (r & 7) * MR * NR, NR)
    A = np.random.rand(kc * MR).astype(np.float32); B = np.random.rand(kc * NR).astype(np.float32)
    C = np.zeros(8 * MR * NR, np.float32)
    run(10, kc, A, B, C)
    reps = int(4e9 / (2 * MR * NR * kc))
    best = 1e9
    for _ in range(7):
        t = time.perf_counter(); run(reps, kc, A, B, C); best = min(best, time.perf_counter() - t)
    res[MR] = 2 * MR * NR * kc * reps / best / 1e9
    print(f"MR {MR:2d} NR {NR} kc {kc}: {res[MR]:.1f} GFLOP/s", flush=True)
