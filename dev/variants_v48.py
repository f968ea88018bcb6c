"""forward_block's prefetches and epilogue cut out of nests.py's text, or x's prefetch into
L2, then a script run under it (dev/products_v48.md 49a):

    base     as it is
    noepi    no epilogue (h only: f, dy and g not computed)
    nopf     neither x's rows nor y's asked for ahead (K <= PF_K)
    nopfx    x's not; nopfy y's not (the AVX2 entry's pf_y)
    pfx1     x's into L1 (prefetch), as before 49a (into L2 since)
    noask    no ask_next (the next block's rows)
    aheadN   x's rows N elements ahead (PF_AHEAD: 4096)
    nearN    and x's rows N tiles ahead into L1 (first panel's tiles, K <= PF_K)

    VARIANT=nopfx python dev/variants_v48.py SCRIPT [args...]

e.g. SCRIPT dev/fused_phases_v16.py 4096 16 16, or a timing script of loopgrad.grads.
Each variant's generated modules differ by their text: give each its own NUMBA_CACHE_DIR,
and compare alternating processes (the host's speed drifts).
"""
import os, sys, runpy
from loopgrad.cpu import tiled
V = os.environ.get("VARIANT", "base")
orig = tiled._nests
def patch(part):
    s = orig(part)
    if part != "common":
        return s
    if V == "noepi":
        a = "    runs, length = (1, rows * M) if flat else (rows, col1 - col0)\n"
        assert a in s; s = s.replace(a, a + "    runs = 0\n")
    if V == "nopf":
        a = "                    if jr == j0 and K <= PF_K:\n"
        assert a in s; s = s.replace(a, "                    if False:\n")
    if V == "noask":
        a = "                ask_next(x, y, K, M, q0, nxl, nyl, call, share)\n"
        assert a in s; s = s.replace(a, "")
    if V == "nopfx":
        a = "                        for q in range(0, MR * K, LINE):\n                            prefetch_l2(x, ahead + q)\n"
        assert a in s; s = s.replace(a, "")
    if V == "nopfy":
        a = "                        for i in range(MR if PF_Y else 0):\n"
        assert a in s; s = s.replace(a, "                        for i in range(0):\n")
    if V == "pfx1":
        a = "                            prefetch_l2(x, ahead + q)\n"
        assert a in s; s = s.replace(a, "                            prefetch(x, ahead + q)\n")
    if V.startswith("ahead"):  # aheadN: x's rows N elements ahead (PF_AHEAD 4096)
        a = "ahead = (r0 + ir * MR) * K + PF_AHEAD\n"
        assert a in s; s = s.replace(a, f"ahead = (r0 + ir * MR) * K + {int(V[5:])}\n")
    if V.startswith("near"):  # nearN: and the rows N tiles ahead into L1 (near1: the next tile's)
        a = "                            prefetch_l2(x, ahead + q)\n"
        assert a in s
        s = s.replace(a, a + f"""                        for q in range(0, MR * K, LINE):
                            prefetch(x, (r0 + ir * MR + {int(V[4:])} * MR) * K + q)
""")
    return s
tiled._nests = patch
for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
    f.cache_clear()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
