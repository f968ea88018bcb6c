"""Float32 micro-kernels of several tiles on packed A (NA micro-panels of kc×MR) and B (NB
panels of kc×NR), B's panel reused over A's panels as in the kernels' nests, C into one hot
tile, the builds called alternately in one process: GFLOP/s, best and median of 7
(dev/products_v36.md 37c).

    python dev/mk_tiles_v36.py 8x32,12x32,14x32,8x48 kc NA NB
"""
import os, sys, time
import numpy as np, numba
from numba import njit
from loopgrad.cpu import intrinsics
from loopgrad.cpu.intrinsics import pointer

numba.set_num_threads(1)
tiles = [tuple(int(v) for v in t.split("x")) for t in sys.argv[1].split(",")]
kc, NA, NB = (int(v) for v in sys.argv[2:5])
REP = int(os.environ.get("REP", 30))


def make(MR, NR):
    mk = intrinsics.microkernel("float32", MR, NR, 16)

    @njit
    def run(Ap, Bp, Ct):
        for r in range(REP):
            for jr in range(NB):
                for ir in range(NA):
                    mk(kc, pointer(Ap), ir * kc * MR, MR, 1, pointer(Bp), jr * kc * NR, NR,
                       pointer(Ct), 0, NR)
    Ap = np.random.rand(NA * kc * MR).astype(np.float32)
    Bp = np.random.rand(NB * kc * NR).astype(np.float32)
    Ct = np.zeros(MR * NR, np.float32)
    run(Ap, Bp, Ct)
    return (lambda: run(Ap, Bp, Ct)), 2 * REP * NA * NB * kc * MR * NR


fs = [make(*t) for t in tiles]
res = [[] for _ in tiles]
for r in range(7):
    for i, (f, fl) in enumerate(fs):
        t = time.perf_counter()
        f()
        res[i].append(fl / (time.perf_counter() - t) / 1e9)
print(f"kc {kc} A {NA} B {NB}:", ", ".join(f"{MR}x{NR} {max(v):.0f}/{np.median(v):.0f}"
                                           for (MR, NR), v in zip(tiles, res)))
