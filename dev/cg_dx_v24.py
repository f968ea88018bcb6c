"""cachegrind of the three-pass kernel's dx items at 1024³ against the bare micro-kernel nest
on the same operands (dev/cg_dx_mod_v24.py; an item's 4 KC blocks × 16 panels × MC/MR
micro-panels: 6×16 tiles, 144 rows), as AVX2 (valgrind 3.19 has no AVX-512), L2 simulated as the LL
(dev/products_v24.md 25c).  Run each with 1 and 3 reps and take the difference:

    python dev/cg_dx_v24.py items|bare 1   # natively once, to fill the Numba cache
    valgrind --tool=cachegrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 \\
        --I1=32768,8,64 /root/.pyenv/versions/3.11.7/bin/python3.11 dev/cg_dx_v24.py items 3

(both under the AVX2 environment of loopgrad.bench.isa.child_environment, with a
NUMBA_CACHE_DIR of their own)
"""
import sys, numpy as np
sys.path.insert(0, __import__("os").path.dirname(__file__))
import cg_dx_mod_v24 as m
what, reps = sys.argv[1], int(sys.argv[2])
N = K = M = 1024
T = np.float32
MR, NR, MC, KC = m.MR, m.NR, m.MC, m.KC
rng = np.random.default_rng(0)
Np = N; Mp = M; Kp = K
g = rng.standard_normal(Np * Mp).astype(T); Wtp = rng.standard_normal(M * Kp).astype(T)
dx = np.empty(N * K, T)
nb = (N + MC - 1) // MC; nx = Kp // NR; JX = 16; gx = nx // JX
Cb = np.empty(MC * JX * NR, T); Ap = rng.standard_normal(MC * KC).astype(T); Ct = np.empty(MR * NR, T)
ITEMS = 4  # the first items of column group 0
if what == "items":
    for r in range(reps):
        for it in range(ITEMS):
            r0 = it * MC
            m.dx_packed(dx, g[r0 * NR:], Wtp, K, M, NR, Np * NR, KC, r0, MC, 0, JX, Ct, Ap, Cb, False)
elif what == "bare":
    m.bare(Ap, Wtp, Cb, M, M // KC, 0, JX, MC // MR, reps * ITEMS)
print(what, reps, "done")
