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
N = int("".join(c for c in V if c.isdigit()) or 0)  # aheadN, nearN
PFX = "                            prefetch_l2(x, ahead + q)\n"
# variant: (text of nests.py's common part, what replaces it), each found exactly there
CUTS = {
    "noepi": ("    runs, length = (1, rows * M) if flat else (rows, col1 - col0)\n",
              "    runs, length = (1, rows * M) if flat else (rows, col1 - col0)\n    runs = 0\n"),
    "nopf": ("                    if jr == j0 and K <= PF_K:\n", "                    if False:\n"),
    "noask": ("                ask_next(x, y, K, M, q0, nxl, nyl, call, share)\n", ""),
    "nopfx": ("                        for q in range(0, MR * K, LINE):\n" + PFX, ""),
    "nopfy": ("                        for i in range(MR if PF_Y else 0):\n",
              "                        for i in range(0):\n"),
    "pfx1": (PFX, PFX.replace("prefetch_l2", "prefetch")),
    f"ahead{N}": ("ahead = (r0 + ir * MR) * K + PF_AHEAD\n", f"ahead = (r0 + ir * MR) * K + {N}\n"),
    f"near{N}": (PFX, PFX + "                        for q in range(0, MR * K, LINE):\n"
                 f"                            prefetch(x, (r0 + ir * MR + {N} * MR) * K + q)\n"),
}
orig = tiled._nests


def patch(part):
    s = orig(part)
    if part != "common" or V == "base":
        return s
    old, new = CUTS[V]
    assert old in s, V
    return s.replace(old, new)


tiled._nests = patch
for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
    f.cache_clear()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
