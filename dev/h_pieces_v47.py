"""The three-pass kernel's h pass (dy alone: W's packs, h, its epilogue) with forward_block's
pieces cut out of nests.py's text or one added (dev/products_v46.md 47a):

    base     as it is
    noepi    no epilogue (h only: f, dy and g not computed)
    nopack   x packed for the first block of steps only (the later blocks reuse it)
    neither  both cuts
    ypf      this item's y (its rows, its columns) asked into L2 under its last block of
             steps (K > PF_K), a share before each call; ypf0: under its first block

    [VARIANT=base] [THREADS=1] [STREAM=1] python dev/h_pieces_v47.py NxKxM ROUNDS

STREAM=1 passes the STREAM flag as the API does for large calls (dy past the caches).
Each variant's generated modules differ by their text: give every tree its own
NUMBA_CACHE_DIR, and compare alternating processes (the host's speed drifts).
"""
import sys, os, time
import numpy as np, numba
from loopgrad._inputs import WANT_DY as _WD, STREAM
WANT_DY = _WD | (STREAM if os.environ.get('STREAM') else 0)
from loopgrad.cpu import tiled
V = os.environ.get("VARIANT", "base")
orig = tiled._nests
def patch(part):
    s = orig(part)
    if part != "common":
        return s
    if V in ("noepi", "neither"):
        a = "    runs, length = (1, rows * M) if flat else (rows, col1 - col0)\n"
        assert a in s; s = s.replace(a, a + "    runs = 0\n")
    if V in ("nopack", "neither"):
        a = "        elif full < nir:\n            pack_a("
        assert a in s; s = s.replace(a, "        elif full < nir and pc == 0:\n            pack_a(")
    if V in ("ypf", "ypf0"):
        a = "                ask_next(x, y, K, M, q0, nxl, nyl, call, share)\n"
        assert s.count(a) == 1
        when = "pc + kc >= K" if V == "ypf" else "pc == 0"
        s = s.replace(a, a + f"""                if {when} and K > PF_K:
                    ypl = (col1 - col0 + LINE - 1) // LINE
                    ysh = (rows * ypl + nj * nir - 1) // (nj * nir)
                    cq = (jr - j0) * nir + ir
                    for q in range(cq * ysh, min(cq * ysh + ysh, rows * ypl)):
                        prefetch_l2(y, (r0 + q // ypl) * M + col0 + q % ypl * LINE)
""")
    return s
tiled._nests = patch
for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
    f.cache_clear()
N, K, M = (int(v) for v in sys.argv[1].split("x")); R = int(sys.argv[2])
numba.set_num_threads(int(os.environ.get("THREADS", 1)))
DT = np.float32
name, v, nch, rows = tiled.plan(N, K, M, DT)
kern = tiled.kernel(name, v, True)
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
ws64, wsT = (np.empty(n, t) for n, t in zip(tiled.scratch(name, v, N, K, M, 1), (np.float64, DT)))
wsT[:] = 0
outs = [np.empty_like(x), np.empty_like(W), np.empty_like(y)]
thr = numba.get_num_threads()
for _ in range(2): kern(*outs, x, W, y, 0.0, thr, rows, ws64, wsT, WANT_DY)
ts = []
for r in range(R):
    s = time.perf_counter(); kern(*outs, x, W, y, 0.0, thr, rows, ws64, wsT, WANT_DY); ts.append(time.perf_counter() - s)
print(f"{V:8s} {sys.argv[1]} {thr}T dy pass {np.median(ts)*1e3:.3f} ms (min {min(ts)*1e3:.3f})")
