"""cachegrind of the three-pass kernel's dx items at 1024³ against the bare micro-kernel nest
on the same operands (`bare`: an item's 4 KC blocks × 16 panels × MC/MR
micro-panels: 6×16 tiles, 144 rows), as AVX2 (valgrind 3.19 has no AVX-512), L2 simulated as the LL
(dev/products_v24.md 25c).  Run each with 1 and 3 reps and take the difference:

    python dev/cg_dx_v24.py items|bare 1   # natively once, to fill the Numba cache
    valgrind --tool=cachegrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 \\
        --I1=32768,8,64 /root/.pyenv/versions/3.11.7/bin/python3.11 dev/cg_dx_v24.py items 3

(both under the AVX2 environment of loopgrad.bench.isa.child_environment, with a
NUMBA_CACHE_DIR of their own)
"""
import sys
import numpy as np
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
c = tiled.module("float32", machine.entry().isa)
th = tiled.module("float32", machine.entry().isa, "three")
MR, NR, MC, KC, mk = c.MR, c.NR, c.MC, c.KC, c.mk


@njit(cache=True)
def bare(Ap2, Wtp2, Cb2, M, nblk, j0, nj, nir, reps):
    # an item's blocks × panels × micro-panels, A one block's micro-panels (L2), C its tiles
    Ap, Wtp, Cb = pointer(Ap2), pointer(Wtp2), pointer(Cb2)
    for r in range(reps):
        for pc in range(0, nblk * KC, KC):
            for jr in range(j0, j0 + nj):
                bo = (jr * M + pc) * NR
                for ir in range(nir):
                    mk(KC, Ap, ir * KC * MR, MR, 1, Wtp, bo, NR, Cb,
                       ((jr - j0) * MC + ir * MR) * NR, NR)
    return 0


what, reps = sys.argv[1], int(sys.argv[2])
N = K = M = 1024
T = np.float32
JX, ITEMS = 16, 4  # an item's panels; the first items of column group 0
rng = np.random.default_rng(0)
g = rng.standard_normal(N * M).astype(T)  # by column panels
Wtp = rng.standard_normal(M * K).astype(T)
dx = np.empty(N * K, T)
Cb, Ct = np.empty(MC * JX * NR, T), np.empty(MR * NR, T)
Ap = rng.standard_normal(MC * KC).astype(T)
if what == "items":
    for r in range(reps):
        for it in range(ITEMS):
            r0 = it * MC
            th.dx_packed(dx, g[r0 * NR:], Wtp, K, M, NR, N * NR, KC, r0, MC, 0, JX, Ct, Ap, Cb,
                         False)
else:
    bare(Ap, Wtp, Cb, M, M // KC, 0, JX, MC // MR, reps * ITEMS)
print(what, reps, "done")
