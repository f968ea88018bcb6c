"""`loopgrad compile`: every kernel compiled ahead, so that later calls compile nothing."""

import os
import subprocess
import sys

import pytest

from loopgrad import cli, cpu

# a later process: a call of each family, counting the compiles Numba starts (its
# "numba:compile" event comes only when the disk cache misses)
_CHILD = """
import numpy as np
from numba.core import event
import loopgrad

class Count(event.Listener):
    n = 0
    def on_start(self, ev):
        Count.n += 1
    def on_end(self, ev):
        pass

rng = np.random.default_rng(0)
with event.install_listener("numba:compile", Count()):
    # the general rows (a NaN: the tiled kernels hand the call to them), tiled fused, three-pass
    for N, K, M, nan in ((5000, 24, 40, True), (5000, 24, 40, False), (50, 300, 300, False)):
        x, W, y = (rng.standard_normal(s) for s in ((N, K), (K, M), (N, M)))
        if nan:
            x[0, 0] = np.nan
        loopgrad.grads(x, W, y)
        loopgrad.loss(x, W, y)
print(Count.n, any(k[0] == "shaped" for k in loopgrad.cpu._READY))
"""


def test_compile_then_nothing_compiles(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    # and the fused kernel compiled for 24×40, which the later process's first call at that
    # shape finds in the cache and runs (loopgrad/cpu/shaped.py)
    cmd = [sys.executable, "-m", "loopgrad", "compile", "--dtype", "float64", "--kernels",
           "rows,tiled", "--shapes", "24x40", "--jobs", "2", "--no-progress"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loopgrad compile: done in" in out.stderr
    assert "loopgrad: compiling" not in out.stderr  # the workers' notices are not repeated
    later = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                           text=True, timeout=600)
    assert later.returncode == 0, later.stderr[-2000:]
    assert later.stdout.strip() == "0 True", later.stderr[-2000:]


def test_units_of_shapes_are_the_fused_ones_compiled_for_them():
    units = cpu.warm_units(("float32", "float64"), ("tiled",), shapes=((24, 40), (4, 4),
                                                                        (300, 300), (20, 36)))
    shaped = [u for u in units if u[0] == "shaped"]  # not the skinny rows, nor three-pass
    assert shaped == [("shaped", (d,), K, M) for d in ("float32", "float64")
                      for K, M in ((24, 40), (20, 36))]
    assert units[-len(shaped):] == shaped
    # without the tiled family, their tiles' units come too (in the first round: the shaped
    # units, later, only load them)
    alone = cpu.warm_units(("float32",), ("skinny",), shapes=((24, 40),))
    assert alone[-2:] == [("tiled", ("float32",), cpu.tiled.variant(24, 40, "float32")),
                          ("shaped", ("float32",), 24, 40)]


def test_units_cover_every_family():
    units = cpu.warm_units(("float32",))
    skinny = [u for u in units if u[0] == "skinny"]
    assert all(ds == ("float32",) and cpu.skinny.covers(K, M, ds[0]) for _, ds, K, M, _ in skinny)
    assert all(wants == (7, 2) for *_, wants in skinny)  # all three gradients, and W's alone
    small = sum(cpu.skinny.MAX_KM // K for K in range(1, cpu.skinny.MAX_KM + 1))  # K·M ≤ 16
    wide = sum(K * M > 16 for K in range(1, 9) for M in range(1, 9))  # rows as vectors
    bits = cpu.machine.entry().vector_bits
    # with AVX-512 also 9 ≤ K ≤ 16 at M = 3 to 8 (x's row in 16 lanes), on AVX2 9 ≤ K ≤ 15
    # at M = 3, 4 and to 16 at M = 5 to 8, but for the K that float32's dot products take
    # (rowdots.min_k)
    last = {M: 16 if bits >= 512 or M >= 5 else 15 for M in range(3, 9)}
    dotted = sum(max(0, last[M] + 1 - cpu.rowdots.min_k(bits, M, "float32")) for M in range(3, 9))
    wide += sum(last[M] - 8 for M in range(3, 9)) - dotted if bits >= 256 else 0
    assert bits < 512 or [cpu.rowdots.min_k(bits, M, "float32") for M in range(3, 9)] == \
        [9, 9, 13, 25, 25, 25]  # M = 6 to 8 from 17 to 24 rowvec.py's, x in 32 lanes
    assert bits < 512 or [cpu.rowdots.min_k(bits, M, "float64") for M in range(3, 9)] == \
        [10, 12, 16, 16, 16, 16]
    # and 4 ≤ K ≤ 16 at M = 9 to 16 (y's row in 16 lanes; on AVX2 4 ≤ K ≤ 8, float32's)
    wide += 13 * 8 if bits >= 512 else 5 * 8 if bits == 256 else 0
    blocks = 3  # rowblocks.py: a module per K ≤ 3, which takes 1×12 ... 1×16 too, but
    # rowvec.py's rows of 1 to 3 with y's of 9 to 15 (rowvec.short_x), a module each
    short = [(K, M) for K in (1, 2, 3) for M in range(9, 16) if cpu.rowvec.short_x(K, M, "float32")]
    merged = cpu.skinny.MAX_KM - 8 - sum(K == 1 for K, _ in short)
    wide += sum(K > 1 for K, _ in short) if bits >= 256 else 0
    # rowdots.py: one module for M = 1 from K = min_k, where K·M ≤ 16 had one a K, and one
    # for each other M it takes
    dots = cpu.skinny.MAX_KM - cpu.rowdots.min_k(bits) \
        - sum(cpu.rowdots.applies(16, M, bits) for M in (2, 3, 4))
    dots -= sum(cpu.rowdots.applies(cpu.rowdots.min_k(bits, M), M, bits)  # M = 5–8 past K = 16
                for M in range(5, 9))
    dots -= sum(cpu.rowdots.applies(cpu.rowdots.COPIED // M + 1, M, bits)  # M = 3, 4 past W's
                for M in (3, 4))                                           # copy's bound
    assert len(skinny) == small + (wide + blocks - merged - dots if bits >= 256 else 0)
    tiles = [u[2] for u in units if u[0] == "tiled"]
    assert tiles and all(t.startswith("float32") for t in tiles)
    assert ("rows", ("float32",)) in units and ("row drivers", ("float32",)) in units
    # float64's rows with y in 16 lanes stop at K = 14 (rowvec.Y_LONG_K): its units for K = 15,
    # 16 at M = 9 to 16 name float32 alone (on AVX2 at M = 14 to 16: Y_LONG_M256); where
    # float32 alone takes the dot products (9×3 with AVX-512), one unit holds both dtypes'
    # modules, float32's rowdots.py's and float64's rowvec.py's, and float64's dot products
    # have a unit of their own at their first K
    both = [u for u in cpu.warm_units() if u[0] == "skinny"]
    assert [u[1:4] for u in both if u[1] == ("float32",) and u[3] > 8] == \
        [(("float32",), K, M) for K, M in short  # (float64's short_x rows: K = 2, 3 to 14)
         if bits >= 256 and not cpu.rowvec.applies(K, M, bits, "float64")] + \
        [(("float32",), K, M) for K in (15, 16) for M in range(9, 17) if bits >= 512] + \
        [(("float32",), K, M) for K in range(4, 9) for M in (14, 15, 16) if bits == 256]
    for _, ds, K, M, _ in both:  # each (K, M) names its module for each dtype it lists
        assert ds and all((K, M) in cpu.skinny.shapes(d) for d in ds)
    for d in ("float32", "float64"):  # and every module of a dtype has a unit
        assert {(K, M) for _, ds, K, M, _ in both if d in ds} == set(cpu.skinny.shapes(d))
    if bits >= 512:
        assert ("skinny", ("float32", "float64"), 9, 3, (7, 2)) in both
        assert ("skinny", ("float64",), 10, 3, (7, 2)) in both
        assert ("a vector a row" in cpu.describe(10, 9, 3, "float64")) and \
            ("dot products" in cpu.describe(10, 9, 3, "float32"))


@pytest.mark.parametrize("argv", [["compile", "--dtype", "float16"],
                                  ["compile", "--kernels", "gemm"],
                                  ["compile", "--wrt", "xWz"],
                                  ["compile", "--shapes", "24by40"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "expected" in capsys.readouterr().err
