"""The tiled kernels for K ≥ 4 (loopgrad/cpu/tiled.py), at kernel level and through the API."""

import os
import re
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

import loopgrad
from loopgrad import cpu
from loopgrad.cpu import guards, intrinsics, jit, machine, ordered, ordered_ir, tiled as _tiled
from loopgrad._inputs import STREAM, WANT_ALL, WANT_DW, WANT_DX, WANT_DY
from _helpers import assert_matches_torch, draw, past_a_line

# Every tile of every entry of the machine table (code for a narrower ISA runs anywhere)
VARIANTS = [(isa, v) for isa, e in machine.TABLE.items() for v in e.tiles]

# Block edges, on the AVX-512 entry: MR = 8 or 16 rows, NR = 32 or 16 columns, MC = 96
# rows, KC = 256 steps, dW chunks of DWB·KC = 1024 rows; the others' are about as large
# (machine.TABLE).  Each shape sits across some of them.
SHAPES = [
    (1, 8, 3),         # one row, one partial tile
    (97, 13, 33),      # one past MC rows, one past NR columns
    (193, 520, 40),    # K past KC: h summed over two KC blocks
    (130, 9, 530),     # M past KC: dx summed over two KC blocks
    (1100, 40, 17),    # N past KC (and SUM_BLOCK): dW over several row blocks, two chunks
    (700, 64, 17),     # dW's tiles laid as dWᵀ's (nests.dw_transposed) on AVX-512 and AVX2
    (50, 300, 300),    # wide K·M: the three-pass kernel
]


def run(name, x, W, y, parallel, a0=0.0, chunk_rows=None, variant=None, isa=None):
    """(f, dx, dW, dy) from tiled kernel `name` into NaN-poisoned outputs; parallel None: the
    interpreted serial driver (bitwise the serial kernel, test_background), no compile."""
    N, K = x.shape
    M = W.shape[1]
    _, planned, nchunks, rows = _tiled.plan(N, K, M, x.dtype, isa)
    variant = variant or planned
    if chunk_rows is not None:
        rows, nchunks = chunk_rows, -(-N // chunk_rows)
    n64, nT = _tiled.scratch(name, variant, N, K, M, nchunks, isa)
    ws64, wsT = np.full(n64 + 3, np.nan), np.full(nT + 3, np.nan, x.dtype)  # poisoned scratch
    kern = _tiled.driver(name, variant, isa) if parallel is None else \
        _tiled.kernel(name, variant, parallel, isa)
    if name == "loss":
        return kern(x, W, y, wsT)
    dx, dW, dy = (np.full(s, np.nan, x.dtype) for s in ((N, K), (K, M), (N, M)))
    f = kern(dx, dW, dy, x, W, y, a0, nchunks, rows, ws64, wsT, WANT_ALL)
    return f, dx, dW, dy


@pytest.mark.parametrize("isa,variant", VARIANTS)
@pytest.mark.parametrize("N,K,M", SHAPES)
def test_both_kernels_match_torch(rng, N, K, M, isa, variant):
    x, W, y = draw(rng, N, K, M, np.dtype(variant.split("-")[0]))
    # the serial side: the compiled kernel on this CPU's entry; on the others the interpreted
    # driver, its bits without its compile (a third of an entry's; CI's 15 minutes)
    serial = False if isa == machine.entry().isa else None
    for name in ("grads_fused", "grads"):
        par = run(name, x, W, y, True, variant=variant, isa=isa)
        assert_matches_torch(par, x, W, y)        # an element left unwritten stays NaN
        for a, b in zip(par, run(name, x, W, y, serial, variant=variant, isa=isa)):
            assert np.array_equal(a, b), name     # serial and parallel: the same bits
    f = run("loss", x, W, y, True, variant=variant, isa=isa)
    assert f == run("loss", x, W, y, serial, variant=variant, isa=isa)
    assert f == pytest.approx(par[0], rel=1e-14)  # the same h; f's sum grouped differently


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fresh_random_shapes_through_the_api(rng, dtype):
    for _ in range(5):
        N = int(rng.integers(1, 2500))
        K = int(rng.integers(cpu.TILED_MIN_K, 120))
        M = int(rng.integers(3, 120))
        while not cpu.is_tiled(K, M, dtype):  # K, M ≤ 8: rows as vectors (AVX2, AVX-512)
            M = int(rng.integers(3, 120))
        x, W, y = draw(rng, N, K, M, dtype, scale=float(rng.uniform(0.1, 10)))
        assert cpu.is_tiled(K, M, dtype)
        assert_matches_torch(loopgrad.grads(x, W, y), x, W, y)


@pytest.mark.parametrize("name", ["grads_fused", "grads"])
def test_chunking_changes_no_bit_of_dx_dy(rng, name):
    # dx and dy never depend on the chunks; dW and f only through their fixed-order sums
    x, W, y = draw(rng, 3000, 20, 24)
    a, b = run(name, x, W, y, True, chunk_rows=576), run(name, x, W, y, True, chunk_rows=1536)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[3], b[3])
    assert_matches_torch(a, x, W, y)
    assert_matches_torch(b, x, W, y)


@pytest.mark.parametrize("a0", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("name", ["grads_fused", "grads"])
def test_ties_and_special_values(rng, name, a0):
    # integers: h is exact in float32, so h == 0 is a true tie and relu'(0) is checked
    # exactly; a NaN h in row 7 and infinities in column 2 follow torch's rule
    x = rng.integers(-2, 3, (400, 10)).astype(np.float32)
    W = rng.integers(-2, 3, (10, 40)).astype(np.float32)
    y = rng.integers(-3, 4, (400, 40)).astype(np.float32)
    ties = run(name, x, W, y, True, a0)
    assert np.sum((x @ W) == 0) > 100
    assert_matches_torch(ties, x, W, y, a0)
    x[7, 0], W[1, 2] = np.nan, np.inf
    assert_matches_torch(run(name, x, W, y, True, a0), x, W, y, a0, form="sum")


def test_api_routes_by_shape(monkeypatch, rng):
    used = []
    route = cpu.tiled_kernel
    monkeypatch.setattr(cpu, "tiled_kernel", lambda *a: used.append(a[0]) or route(*a))
    for K, M in ((3, 40), (4, 4), (4, 33), (64, 64), (300, 300)):  # 4×33: tiled on every entry
        x, W, y = draw(rng, 200, K, M)
        assert_matches_torch(loopgrad.grads(x, W, y), x, W, y)
    assert used == ["grads_fused", "grads_fused", "grads"]
    assert loopgrad.loss(x, W, y) == pytest.approx(loopgrad.grads(x, W, y).f, rel=1e-14)
    assert used[-2:] == ["loss", "grads"]


def _hostile(rng, dtype, shape=(300, 12, 20)):
    # inputs where the tiled kernels' input-dtype sums could overflow or meet inf/NaN
    big = float(np.finfo(dtype).max)
    cases = []
    for where, value in (("x", np.inf), ("W", np.nan), ("y", -np.inf),
                         ("x", 0.9 * big), ("W", 0.9 * big), ("y", 0.5 * big)):
        x, W, y = draw(rng, *shape, dtype)
        {"x": x, "W": W, "y": y}[where][3, 4] = value
        cases.append((where, value, x, W, y))
    return cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_or_overflowing_inputs_fall_back_to_float64(rng, dtype):
    from loopgrad import reference

    for where, value, x, W, y in _hostile(rng, dtype):
        if dtype == np.float64 and np.isfinite(value) and where != "y":
            continue  # 0.9·max float64 products overflow in any float64 arithmetic
        # the tiled kernel refuses (NaN) ...
        assert np.isnan(run("grads_fused", x, W, y, True)[0]), (where, value)
        # ... and the API's answer is the row kernel's: torch's pattern of NaN and inf
        got = loopgrad.grads(x, W, y)
        with np.errstate(all="ignore"):
            ref = reference.torch_autograd(x, W, y, form="sum")
            bounds = reference.error_bounds(x, W, y, ref)
        for name, g, r, b in zip(("f", "dx", "dW", "dy"), got, ref, bounds):
            if name != "f":
                with np.errstate(over="ignore"):
                    r = np.asarray(r).astype(dtype).astype(np.float64)  # overflow → inf, as stored
            reference.check(name, g, r, b)
        f = loopgrad.loss(x, W, y)
        assert f == pytest.approx(got.f, rel=1e-14, nan_ok=True), (where, value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_three_pass_kernel_refuses_the_same_inputs(rng, dtype):
    # its `trusted` check sees f, W and the dW it wrote: NaN, and the API falls back
    for where, value, x, W, y in _hostile(rng, dtype, shape=(70, 300, 290)):
        assert _tiled.plan(*x.shape, W.shape[1], dtype)[0] == "grads"
        assert np.isnan(run("grads", x, W, y, True)[0]), (where, value)
        assert np.isnan(run("grads", x, W, y, False)[0]), (where, value)
    x, W, y = draw(rng, 70, 300, 290, dtype)
    assert not np.isnan(run("grads", x, W, y, True)[0])  # and ordinary inputs pass


@pytest.mark.parametrize("shape", [(300, 12, 20), (70, 300, 290)])  # fused, three-pass
def test_a_dW_sum_that_overflows_only_in_float32_falls_back(shape):
    # f finite and W zero, so only the guard's dW check can see it: g = −y (h = 0,
    # relu'(0) = 0.5), and dW[k, :] = 3e38·(−1) + 3e38·(−1) + 3e38·2, which is 0 in float64
    # but −inf in float32 sums.  The kernel must refuse it (NaN) and the API answer 0
    N, K, M = shape
    x = np.zeros((N, K), np.float32)
    W = np.zeros((K, M), np.float32)
    y = np.zeros((N, M), np.float32)
    x[:3] = 3e38
    y[:2], y[2] = 1.0, -2.0
    name = _tiled.plan(N, K, M, np.float32)[0]
    assert name == ("grads" if K > 16 else "grads_fused")
    for parallel in (False, True):
        assert np.isnan(run(name, x, W, y, parallel, a0=0.5)[0])
    got = loopgrad.grads(x, W, y, relu_grad_at_zero=0.5)
    assert got.f == 6.0 * M  # Σ y²: 1 + 1 + 4 a column
    assert np.array_equal(got.dW, np.zeros((K, M), np.float32))


@pytest.mark.parametrize("row,col", [(0, 0), (150, 100), (299, 289)])
def test_the_three_pass_guard_sees_dW_in_every_threads_share(row, col):
    # the three-pass kernel counts dW's non-finite elements split among its threads (nthr,
    # its nchunks argument): one element of dW that overflows in float32 sums, the first,
    # one in a middle thread's share or the last, must be seen for every thread count
    N, K, M = 70, 300, 290
    x, W, y = (np.zeros(s, np.float32) for s in ((N, K), (K, M), (N, M)))
    x[:3, row] = 3e38  # dW[row, col] = 3e38·(−1 − 1 + 2): 0 in float64, −inf in float32
    y[:2, col], y[2, col] = 1.0, -2.0
    variant = _tiled.plan(N, K, M, np.float32)[1]
    n64, nT = _tiled.scratch("grads", variant, N, K, M, 1)
    for parallel in (None, True):
        kern = _tiled.driver("grads", variant) if parallel is None else \
            _tiled.kernel("grads", variant, True)
        for nthr in (1, 2, 3, 7):
            dx, dW, dy = (np.full(s, np.nan, np.float32) for s in ((N, K), (K, M), (N, M)))
            f = kern(dx, dW, dy, x, W, y, 0.5, nthr, 0, np.empty(n64), np.empty(nT, np.float32),
                     WANT_ALL)
            assert np.isnan(f) and np.isinf(dW[row, col]), (row, col, nthr, parallel)
            assert np.isfinite(dW).sum() == K * M - 1


def test_the_fused_kernels_reach_follows_the_L2(monkeypatch):
    # K·Mp up to 32768 fused everywhere; up to 131072 where the L2 holds the chunk's
    # float64 partial, whatever the dtype, and N has 8192 rows (dev/products_v17.md 18d,
    # v19 20i, v48 49b, 49c)
    from loopgrad.cpu import caches

    def with_l2(nbytes):
        monkeypatch.setattr(caches, "geometry", lambda: {"L2": {"bytes": nbytes}})
        _tiled._plan.cache_clear()

    try:
        for l2, limit in ((2 << 20, 131072), (1 << 20, 131072), (768 << 10, 98304),
                          (512 << 10, 65536), (256 << 10, 32768), (None, 32768),
                          (64 << 20, 131072)):
            with_l2(l2)
            assert _tiled.fused_limit(np.float32) == _tiled.fused_limit(np.float64) == limit
            for isa in machine.TABLE:
                for K, M, dt in ((256, 256, np.float32), (192, 256, np.float32),
                                 (256, 257, np.float32), (256, 512, np.float32),
                                 (320, 320, np.float32), (512, 512, np.float32),
                                 (128, 512, np.float64), (512, 256, np.float64)):
                    t = machine.TABLE[isa].tiles[_tiled.variant(K, M, dt, isa)]
                    km = K * -(-M // t.NR) * t.NR  # K·Mp
                    want = "grads_fused" if km <= limit else "grads"
                    assert _tiled.plan(10**5, K, M, dt, isa)[0] == want, (l2, isa, K, M)
                    short = "grads_fused" if km <= 32768 else "grads"  # N < 8192
                    assert _tiled.plan(8191, K, M, dt, isa)[0] == short, (l2, isa, K, M)
                assert _tiled.plan(10**5, 128, 256, np.float32, isa)[0] == "grads_fused"
    finally:
        monkeypatch.undo()
        _tiled._plan.cache_clear()


@pytest.mark.parametrize("isa", sorted(machine.TABLE))
def test_fused_chunks_are_long_and_enough(isa):
    # at least 1536 rows a chunk (each zeroes and adds a partial of K·Mp), but eight
    # chunks where N is shorter than eight of them, of whole blocks and nearly equal; the
    # most, and the partials' bytes, capped as before
    for N, K, M in ((10**5, 64, 64), (10**5, 128, 128), (3000, 64, 64), (10**6, 16, 16),
                    (10**4, 32, 32), (97, 64, 64), (10**7, 128, 128)):
        name, variant, nchunks, rows = _tiled.plan(N, K, M, np.float32, isa)
        assert name == "grads_fused"
        MC = machine.TABLE[isa].tiles[variant].MC
        assert rows % MC == 0 and nchunks == -(-N // rows)
        blocks = -(-N // MC)
        if blocks >= 8 and N >= 8 * 1536:
            assert rows >= 1536, (N, K, M, rows)
        if N < 8 * 1536:  # eight chunks, each rounded up to whole blocks (so maybe fewer),
            # or up to twice as many where the machine's threads share those unevenly, or
            # fewer, up to twice as long, where b0 is `low` already (tiled.balanced)
            eight = max(1, -(-(-(-N // 8)) // MC)) * MC
            assert eight // MC // 2 * MC <= rows <= 2 * eight - MC, (N, K, M, rows)
            assert nchunks >= min(4, blocks), (N, K, M, nchunks)
        assert nchunks <= 1024 and nchunks * K * M * 8 <= (64 << 20) + 8 * K * M * MC
        assert N - (nchunks - 1) * rows > 0  # no empty chunk
    assert _tiled.plan(10**6, 16, 16, np.float32, "avx512")[2:] == (92, 10944)


def test_fused_chunks_share_evenly_among_the_machines_threads():
    # tiled.balanced: Numba's prange gives its first threads ceil(nc / cores) chunks, so
    # the busiest has that many whole ones; of b0 blocks a chunk down to half of it, the
    # largest within 1 % of the least such load.  10⁵×24×40 on the 8×32 tile: 1042 blocks
    # of 96 rows, 35 chunks of 30 (one thread 540 blocks of two threads' 1042) → 36 of 29
    # (522); one core or one block: as asked; 16 cores: 48 chunks of 22 (66 a thread)
    def busiest(nb, b, cores):
        return -(-(-(-nb // b)) // cores) * b

    assert _tiled.balanced(1042, 30, 1024, 2) == 29
    assert _tiled.balanced(1042, 30, 1024, 1) == 30 and _tiled.balanced(1042, 1, 1024, 2) == 1
    assert _tiled.balanced(1042, 30, 1024, 16) == 22
    assert _tiled.balanced(1042, 30, 40, 2) == 29 and _tiled.balanced(1042, 30, 35, 2) == 30
    assert _tiled.balanced(1042, 30, 1024, 16, low=25) == 25  # not below `low`
    # where b0 is `low` already (a short N, no room below it), above it up to twice b0:
    # 5000×64×64's 35 blocks of 144 rows in 7 chunks of 5 (one thread 20) → 6 of 6 (18)
    assert _tiled.balanced(35, 5, 1024, 2, low=5) == 6 and _tiled.balanced(35, 5, 1024, 2) == 3
    assert _tiled.balanced(35, 5, 1024, 5, low=5) == 7  # 5 threads: 5 chunks of 7, not 7 of 5
    for nb, b0, cores in ((1042, 30, 2), (695, 20, 2), (10417, 114, 2), (105, 14, 4), (7, 3, 2),
                          (5000, 61, 6), (333, 40, 8)):
        b = _tiled.balanced(nb, b0, 1024, cores)
        assert (b0 - 1) // 2 < b <= b0, (nb, b0, cores, b)
        least = min(busiest(nb, c, cores) for c in range((b0 + 1) // 2, b0 + 1))
        assert busiest(nb, b, cores) * 100 <= least * 101, (nb, b0, cores, b)
        assert all(busiest(nb, c, cores) * 100 > least * 101 for c in range(b + 1, b0 + 1))
    _tiled._plan.cache_clear()
    cores = _tiled._cores
    try:
        _tiled._cores = lambda: 2
        assert _tiled.plan(5000, 64, 64, np.float32, "avx512")[2:] == (6, 864)
    finally:
        _tiled._cores = cores
    # the chunks are the shape's and the machine's, not the threads asked for
    _tiled._plan.cache_clear()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _tiled.plan(10**5, 24, 40, np.float32, "avx512")
        _tiled._plan.cache_clear()
        numba.set_num_threads(before)
        assert _tiled.plan(10**5, 24, 40, np.float32, "avx512") == one
    finally:
        numba.set_num_threads(before)
        _tiled._plan.cache_clear()


@pytest.mark.parametrize("isa", sorted(machine.TABLE))
def test_plan_is_a_function_of_the_shape(isa):
    for N, K, M in ((10**6, 16, 16), (10**5, 64, 64), (2048, 2048, 2048), (0, 9, 9)):
        name, variant, nchunks, rows = _tiled.plan(N, K, M, np.float32, isa)
        assert nchunks * rows >= N and (nchunks - 1) * rows < max(N, 1)
        t = machine.TABLE[isa].tiles[variant]
        assert rows % (t.MC if name == "grads_fused" else t.KC) == 0
    narrow = "float32-narrow" if "float32-narrow" in machine.TABLE[isa].tiles else "float32"
    assert _tiled.plan(10**6, 16, 16, np.float32, isa)[:2] == ("grads_fused", narrow)
    assert _tiled.plan(10**5, 64, 64, np.float64, isa)[:2] == ("grads_fused", "float64")
    assert _tiled.plan(2048, 2048, 2048, np.float32, isa)[:2] == ("grads", "float32")


@pytest.mark.parametrize("K,M", [(12, 40), (300, 300)])  # fused, three-pass
def test_empty_rows(rng, K, M):
    x, W, y = draw(rng, 0, K, M)
    got = loopgrad.grads(x, W, y)
    assert got.f == 0.0 and got.dx.shape == (0, K) and np.array_equal(got.dW, np.zeros((K, M), np.float32))


@pytest.mark.parametrize("dtype,shape", [(np.float32, (1000, 1100, 1057)),
                                         (np.float64, (1000, 600, 1100)),
                                         (np.float64, (1000, 600, 1000))])
def test_three_pass_packs_x_before_its_items_chunk_by_chunk(rng, dtype, shape):
    # Where h has XA_GROUPS column groups or more (float64's fewer: M = 1000 is four), the
    # three-pass driver packs x before its h items, a chunk of whole row blocks of about
    # XA_BYTES at a time (tiled.xa_rows): here two chunks on every entry, the second
    # ending in a partial row block, and h's last panel a few columns wide.  Against
    # torch; the serial kernel's bits; and the h pass alone (dy wanted) gives the same f
    # and dy and writes nothing else
    N, K, M = shape
    name, variant, nchunks, rows = _tiled.plan(N, K, M, dtype)
    MC = machine.entry().tiles[variant].MC
    rc = _tiled.xa_rows(N, K, M, variant)
    assert name == "grads" and 0 < rc < N <= 2 * rc and N % MC, (variant, rc)
    x, W, y = draw(rng, N, K, M, dtype)
    par = run("grads", x, W, y, True)
    assert_matches_torch(par, x, W, y)
    for a, b in zip(par, run("grads", x, W, y, False)):
        assert np.array_equal(a, b)
    n64, nT = _tiled.scratch("grads", variant, N, K, M, nchunks, want=WANT_DY)
    ws64, wsT = np.full(n64 + 3, np.nan), np.full(nT + 3, np.nan, dtype)
    dx, dW, dy = (np.full(s, np.nan, dtype) for s in ((N, K), (K, M), (N, M)))
    f = _tiled.kernel("grads", variant, True)(dx, dW, dy, x, W, y, 0.0, nchunks, rows, ws64,
                                              wsT, WANT_DY)
    assert f == par[0] and np.array_equal(dy, par[3])
    assert np.isnan(dx).all() and np.isnan(dW).all()


@pytest.mark.parametrize("dtype,shape", [(np.float32, (300, 256, 200)),
                                         (np.float64, (250, 130, 300)),
                                         (np.float32, (260, 128, 1300))])
def test_small_three_pass_shapes_take_their_items_by_rows(rng, dtype, shape):
    # x, y and W within tiled.ROWS_BYTES and W at most half of x and g: the three-pass
    # kernel's h and dx items go by rows (tiled.h_rows: four blocks here, the last one
    # shorter), run row block by row block; at 260×128×1300 with x packed before the h
    # items (six column groups: tiled.xa_rows), in chunks of those blocks.  Against
    # torch, and the same bits from the serial kernel and from one, two and three threads
    # (which thread runs an item changes no bit); a shape whose W is as large as x and g
    # keeps MC-row items
    N, K, M = shape
    name, variant, nchunks, rows = _tiled.plan(N, K, M, dtype)
    mb = _tiled.h_rows(N, K, M, variant)
    assert name == "grads" and 0 < mb < N and N % mb and -(-N // mb) % 4 == 0, mb
    assert (_tiled.xa_rows(N, K, M, variant) > 0) == (M > 1000)
    assert _tiled.h_rows(256, 512, 512, variant) == 0
    x, W, y = draw(rng, N, K, M, dtype)
    ref = run("grads", x, W, y, False)
    assert_matches_torch(ref, x, W, y)
    kern = _tiled.kernel("grads", variant, True)
    n64, nT = _tiled.scratch("grads", variant, N, K, M, nchunks)
    before = numba.get_num_threads()
    try:
        for threads in (1, 2, 3):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            ws64, wsT = np.full(n64, np.nan), np.full(nT, np.nan, dtype)
            outs = [np.full(s, np.nan, dtype) for s in ((N, K), (K, M), (N, M))]
            f = kern(*outs, x, W, y, 0.0, threads, rows, ws64, wsT, WANT_ALL)
            assert f == ref[0], threads
            for a, b in zip(outs, ref[1:]):
                assert np.array_equal(a, b), threads
    finally:
        numba.set_num_threads(before)


def test_dx_items_take_a_column_group_more_where_that_balances_the_threads(rng):
    # 245×1168×200: on the AVX-512 and AVX2 entries two threads' dx items are better
    # balanced with one column group more than DX_ITEMS asks (nests.busiest; AVX-512: 3 row
    # blocks × 6 groups, one thread's share 5.3 % over the mean, × 7 groups 2.7 %;
    # dev/item_balance_v47.py).  Into NaN-poisoned outputs, against torch, and the same bits
    # as from one thread's items (one group fewer: the items' shape changes no bit)
    N, K, M = 245, 1168, 200
    name, variant, nchunks, rows = _tiled.plan(N, K, M, np.float32)
    assert name == "grads" and _tiled.h_rows(N, K, M, variant) == 0
    x, W, y = draw(rng, N, K, M, np.float32)
    kern = _tiled.kernel("grads", variant, True)
    n64, nT = _tiled.scratch("grads", variant, N, K, M, nchunks)
    got = {}
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            ws64, wsT = np.full(n64, np.nan), np.full(nT, np.nan, np.float32)
            outs = [np.full(s, np.nan, np.float32) for s in ((N, K), (K, M), (N, M))]
            got[threads] = (kern(*outs, x, W, y, 0.0, threads, rows, ws64, wsT, WANT_ALL),
                            *outs)
    finally:
        numba.set_num_threads(before)
    assert_matches_torch(got[2], x, W, y)
    for a, b in zip(got[1], got[2]):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("krows,njr", [(96, 2), (21, 1)])
def test_dw_item_sums_in_its_own_region_as_in_dws(rng, krows, njr):
    # the three-pass kernel's dW items with one chunk sum into a region of their thread's
    # own (pld = the item's columns, kp = k0, jp = jr0); the same blocks into all of dW's
    # partial (pld = Mp) must give the same bits, and the region nothing past its size
    th = _tiled.module("float32", machine.entry().isa, "three")
    MR, NR, MC = th.MR, th.NR, th.MC
    K, nh, kc, k0, jr0 = 96 + MC, 4, 37, 96, 1
    M = Mp = nh * NR
    xs = [rng.standard_normal((kc, K)).astype(np.float32) for _ in range(2)]  # two blocks
    g = rng.standard_normal((nh, 2 * kc, NR)).astype(np.float32)  # by column panels
    Xps = []
    for x in xs:
        Xp = np.empty(-(-K // MR) * MR * kc, np.float32)
        th.pack_xt(Xp, x.reshape(-1), K, 0, kc, 0, kc)  # the block's rows, all columns
        Xps.append(Xp)
    gf, gstr = g.reshape(-1), 2 * kc * NR
    outs = []
    for pld, kp, jp in ((Mp, 0, 0), (njr * NR, k0, jr0)):
        size = (K if kp == 0 else MC) * pld
        part = np.full(K * Mp + 64, np.nan)  # NaN past the region: must stay so
        dW = np.full((K, M), np.nan, np.float32)
        Ct = np.empty(MR * NR, np.float32)
        for b, block in enumerate((th.FIRST, th.LAST)):
            th.dw_item(part, dW.reshape(-1), Xps[b], gf[b * kc * NR:], gstr, M, pld, kp, jp,
                       kc, k0, krows, jr0, njr, block, Ct)
        assert np.isnan(part[size:]).all()
        outs.append(dW)
    want = sum(x[:, k0:k0 + krows].astype(np.float64).T
               @ g[:, b * kc:(b + 1) * kc].transpose(1, 0, 2).reshape(kc, -1)
               for b, x in enumerate(xs))[:, jr0 * NR:(jr0 + njr) * NR]
    got = outs[1][k0:k0 + krows, jr0 * NR:(jr0 + njr) * NR]
    # each block a sum of kc float32 terms: within kc·eps·Σ|terms| of the float64 sum
    bound = kc * np.finfo(np.float32).eps * sum(
        np.abs(x[:, k0:k0 + krows].astype(np.float64)).T
        @ np.abs(g[:, b * kc:(b + 1) * kc]).transpose(1, 0, 2).reshape(kc, -1)
        for b, x in enumerate(xs))[:, jr0 * NR:(jr0 + njr) * NR]
    assert np.all(np.abs(got - want) <= bound)
    assert np.array_equal(outs[0], outs[1], equal_nan=True)  # and NaN outside the item


# ------------------------------------------------------------ the SLP switch, the micro-kernel

def _tile_add_asm(slp: bool, vector_bits=None) -> str:
    # compile a fresh copy of the AVX-512 entry's float32 tile add (straight-line source
    # that only SLP vectorizes), with or without SLP
    from numba import njit, types as nt

    mod = _tiled.module("float32", "avx512")
    P, I = nt.CPointer(nt.float32), nt.int64
    fresh = njit(nt.void(P, I, I, P, I), fastmath={"contract"}, pipeline_class=jit.StraightLine)
    if slp:
        with jit.settings(slp=True, vector_bits=vector_bits):
            fn = fresh(mod.tile_add.py_func)
    else:
        fn = fresh(mod.tile_add.py_func)
    return "\n".join(fn.inspect_asm().values())


def _micro_kernel_asm(vector_bits) -> str:
    # a fresh function around the AVX-512 entry's float32 micro-kernel (8×32, 16 lanes)
    from numba import njit, types as nt

    mk = intrinsics.microkernel("float32", 8, 32, 16)
    A1 = nt.Array(nt.float32, 1, "C")

    def body(kc, A2, B2, C2):
        mk(kc, intrinsics.pointer(A2), 0, 8, 1, intrinsics.pointer(B2), 0, 32,
           intrinsics.pointer(C2), 0, 32)
    with jit.settings(vector_bits=vector_bits):
        fn = njit(nt.void(nt.int64, A1, A1, A1))(body)
    return "\n".join(fn.inspect_asm().values())


def test_slp_vectorizes_the_tile_adds_and_is_put_back():
    from numba.core import config

    before = config.SLP_VECTORIZE
    packed = re.compile(r"vaddps\s.*%[xyz]mm")
    if not packed.search(_tile_add_asm(slp=True)):
        pytest.skip("no packed float32 add on this CPU")
    assert config.SLP_VECTORIZE == before
    # without SLP the same source stays scalar: the switch is what vectorizes it
    assert not packed.search(_tile_add_asm(slp=False))


def test_vector_width_gives_zmm_on_avx512():
    # LLVM tunes Intel's AVX-512 chips for 256-bit vectors: its vectorizers then build no
    # zmm code; the entry's width overrides it.  The micro-kernel's vectors are written
    # out (512 bits on this entry) and stay whole either way.
    if machine.target()["isa"] != "avx512":
        pytest.skip("not an AVX-512 CPU")
    zmm = re.compile(r"vfmadd\w*ps\s.*%zmm")
    assert len(zmm.findall(_micro_kernel_asm(512))) >= 16  # 8×32: 16 zmm accumulators
    assert len(zmm.findall(_micro_kernel_asm(256))) >= 16
    assert re.search(r"vaddps\s.*%zmm", _tile_add_asm(slp=True, vector_bits=512))
    assert not re.search(r"%zmm", _tile_add_asm(slp=True, vector_bits=256))


def _mk_runner(T, MR, NR, VW, live=0):
    from numba import njit, types as nt

    mk = intrinsics.microkernel(T, MR, NR, VW, live=live)
    A1 = nt.Array(nt.float32 if T == "float32" else nt.float64, 1, "C")
    I = nt.int64

    @njit(nt.void(I, A1, I, I, I, A1, I, I, A1, I, I))
    def run(kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc):
        mk(kc, intrinsics.pointer(A), ao, lda, ldi, intrinsics.pointer(B), bo, ldb,
           intrinsics.pointer(C), co, ldc)
    return run


@pytest.mark.parametrize("T,MR,NR,VW", [("float32", 8, 32, 16), ("float32", 12, 8, 8),
                                        ("float64", 8, 16, 8), ("float64", 3, 6, 2)])
def test_micro_kernel_writes_its_tile_and_nothing_else(rng, T, MR, NR, VW):
    # A read in place as columns of a row-major matrix (lda = 1, ldi = its row length),
    # B with a row stride past NR, C a tile inside a bigger matrix poisoned with NaN
    kc, lda_rows, ldb, ldc, ao, bo, co = 37, 41, NR + 5, NR + 3, 3, 7, 2 * (NR + 3) + 1
    A = rng.standard_normal(ao + MR * lda_rows + 8).astype(T)
    B = rng.standard_normal(bo + kc * ldb + NR).astype(T)
    C = np.full(co + MR * ldc + NR, np.nan, T)
    _mk_runner(T, MR, NR, VW)(kc, A, ao, 1, lda_rows, B, bo, ldb, C, co, ldc)
    a = np.array([[A[ao + p + i * lda_rows] for p in range(kc)] for i in range(MR)], np.float64)
    b = np.array([[B[bo + p * ldb + j] for j in range(NR)] for p in range(kc)], np.float64)
    want = a @ b
    got = np.array([[C[co + i * ldc + j] for j in range(NR)] for i in range(MR)], np.float64)
    # kc terms in T: within kc·eps(T)·Σ|a·b| of the float64 product
    bound = kc * np.finfo(T).eps * (np.abs(a) @ np.abs(b))
    assert np.all(np.abs(got - want) <= bound)
    inside = np.zeros(C.shape, bool)
    for i in range(MR):
        inside[co + i * ldc:co + i * ldc + NR] = True
    assert np.isnan(C[~inside]).all() and not np.isnan(C[inside]).any()


@pytest.mark.parametrize("T,MR,NR,VW,live", [("float32", 8, 32, 16, 1), ("float64", 6, 32, 8, 2),
                                             ("float32", 6, 16, 8, 1), ("float64", 3, 12, 4, 2)])
def test_micro_kernel_with_live_vectors_is_the_tile_of_zero_padding(rng, T, MR, NR, VW, live):
    # mkh (live vectors of NR/VW): B's columns past live·VW are never read (poisoned with
    # NaN here), and the tile is bitwise the full kernel's where those columns are zeros
    # (W's packed panels' padding): its first live·VW columns summed, the rest +0.0
    half = _mk_runner(T, MR, NR, VW, live=live)
    kc, cols, ldc, co = 29, live * VW, NR + 3, NR + 4
    A = rng.standard_normal(kc * MR).astype(T)
    B = rng.standard_normal((kc, NR)).astype(T)
    B[:, cols:] = np.nan
    C = np.full(co + MR * ldc + NR, np.nan, T)
    half(kc, A, 0, MR, 1, B.reshape(-1), 0, NR, C, co, ldc)
    Bz = np.where(np.isnan(B), 0, B).astype(T)
    Cz = np.full(MR * NR, np.nan, T)
    _mk_runner(T, MR, NR, VW)(kc, A, 0, MR, 1, Bz.reshape(-1), 0, NR, Cz, 0, NR)
    got = np.array([C[co + i * ldc:co + i * ldc + NR] for i in range(MR)])
    assert np.array_equal(got, Cz.reshape(MR, NR))
    assert not np.signbit(got[:, cols:]).any() and not got[:, cols:].any()
    inside = np.zeros(C.shape, bool)
    for i in range(MR):
        inside[co + i * ldc:co + i * ldc + NR] = True
    assert np.isnan(C[~inside]).all()
    with pytest.raises(ValueError, match="live"):
        intrinsics.microkernel(T, MR, NR, VW, live=NR // VW)
    with pytest.raises(ValueError, match="live"):
        intrinsics.microkernel(T, MR, NR, VW, stream=True, live=1)


def test_tails_pad_the_fewest_vector_fmas():
    # tiled.tails: the last panels' kernels of each tile of the table, where 256-bit FMAs
    # cost a 512-bit one (Intel, Zen 5: pair vectors, n·VW + VW/2 columns) and where they
    # cost half (Zen 4: machine.splits_512); a last panel's kernel is the first whose
    # columns hold it
    want = {("float32", False): ((8, 16, 0), (16, 16, 1), (24, 16, 1)),
            ("float32", True): ((8, 8, 1), (16, 16, 1), (24, 8, 3)),
            ("float32-narrow", False): ((8, 16, 0),), ("float32-narrow", True): ((8, 8, 1),),
            ("float64", False): ((8, 8, 1), (16, 8, 2), (24, 8, 3)),
            ("float64", True): ((8, 8, 1), (16, 8, 2), (24, 8, 3)),
            ("float64-narrow", False): ((4, 8, 0), (8, 8, 1), (12, 8, 1)),
            ("float64-narrow", True): ((4, 4, 1), (8, 8, 1), (12, 4, 3))}
    e = machine.TABLE["avx512"]
    for (v, halves), kinds in want.items():
        t = e.tiles[v]
        VW = _tiled._lanes(e, v.split("-")[0], t.NR)
        assert _tiled.tails(t.MR, t.NR, VW, e.registers, halves) == kinds, (v, halves)
    # the AVX2 entry's tiles: their half (8 columns of 16; 4 of 8) and the pair kinds
    # around it; the generic 12×4's 2 columns a pair; an odd MR none
    assert _tiled.tails(6, 16, 8, 16, False) == ((4, 8, 0), (8, 8, 1), (12, 8, 1))
    assert _tiled.tails(6, 8, 4, 16, False) == ((2, 4, 0), (4, 4, 1), (6, 4, 1))
    assert _tiled.tails(12, 4, 4, 16, False) == ((2, 4, 0),)
    assert _tiled.tails(7, 32, 16, 32, False) == ((16, 16, 1),)
    # one kernel at most: the half, which saves the most over the widths; and none that
    # needs more accumulators than registers (10·3 + 3 + 1 > 32)
    assert _tiled.tails(8, 32, 16, 32, True, most=1) == ((16, 16, 1),)
    assert _tiled.tails(10, 32, 16, 32, True) == ((8, 8, 1), (16, 16, 1))
    from llvmlite import binding as ll
    import unittest.mock as mock
    for name, split in (("znver4", True), ("znver5", False), ("znver3", False),
                        ("sapphirerapids", False), ("neoverse-v2", False)):
        with mock.patch.object(ll, "get_host_cpu_name", lambda n=name: n):
            assert machine.splits_512.__wrapped__() is split, name


def _mkt_runner(T, MR, NR, tails, cut=False, parts=False):
    from numba import njit, types as nt

    mkt = intrinsics.tail_kernel(T, MR, NR, tails, cut, parts)
    A1 = nt.Array(nt.float32 if T == "float32" else nt.float64, 1, "C")
    I = nt.int64

    @njit(nt.void(I, I, A1, I, I, I, A1, I, I, A1, I, I))
    def run(ncol, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc):
        mkt(ncol, kc, intrinsics.pointer(A), ao, lda, ldi, intrinsics.pointer(B), bo, ldb,
            intrinsics.pointer(C), co, ldc)
    return run


def _last_panel(rng, T, MR, NR, tails, ncol, kc, A, full):
    # a last panel of W with ncol live columns: B (kc×NR, flat) random up to ncol, zeros up
    # to the chosen tail's live columns (W's packs' padding), NaN past them (never read);
    # and its MR×NR tile by the full kernel over B with zeros past ncol
    live = next(c for c, _, _ in tails if c >= ncol)
    B = rng.standard_normal((kc, NR)).astype(T)
    B[:, ncol:live], B[:, live:] = 0.0, np.nan
    Cz = np.full(MR * NR, np.nan, T)
    full(kc, A, 0, MR, 1, np.where(np.isnan(B), 0, B).astype(T).reshape(-1), 0, NR, Cz, 0, NR)
    return B.reshape(-1), Cz.reshape(MR, NR)


def _tile_rows(size, co, ldc, MR, width):
    # the elements of a C of `size` that MR rows of `width` from co, ldc apart, cover
    rows = np.zeros(size, bool)
    for i in range(MR):
        rows[co + i * ldc:co + i * ldc + width] = True
    return rows


# tails with pair vectors (n·VW + VW/2 columns: the last VW/2 two rows a vector)
PAIRED = [("float32", 8, 32, 16, ((8, 16, 0), (16, 16, 1), (24, 16, 1))),
          ("float32", 6, 16, 8, ((4, 8, 0), (8, 8, 1), (12, 8, 1))),
          ("float64", 6, 32, 8, ((4, 8, 0), (12, 8, 1), (20, 8, 2))),
          ("float32", 12, 4, 4, ((2, 4, 0),))]  # the generic entry's (unmeasured: aarch64)


@pytest.mark.parametrize("T,MR,NR,VW,tails", [
    ("float32", 8, 32, 16, ((8, 8, 1), (16, 16, 1), (24, 8, 3))),
    ("float64", 8, 16, 8, ((4, 4, 1), (8, 8, 1), (12, 4, 3)))] + PAIRED)
def test_tail_kernel_is_the_whole_tile_for_every_last_panel(rng, T, MR, NR, VW, tails):
    # mkt(ncol, ...) for every ncol up to its widest tail: B's columns from ncol to the
    # chosen kernel's live columns zeros (W's packs' padding), past them NaN (never read);
    # the tile bitwise the full kernel's over B with zeros past ncol, +0.0 past ncol
    kc, ldc, co = 29, NR + 3, NR + 4
    mkt, full = _mkt_runner(T, MR, NR, tails), _mk_runner(T, MR, NR, VW)
    A = rng.standard_normal(kc * MR).astype(T)
    A[::5] = 0.0
    for ncol in range(1, tails[-1][0] + 1):
        B, Cz = _last_panel(rng, T, MR, NR, tails, ncol, kc, A, full)
        # A's rows side by side (packed: lda MR, ldi 1) and apart (in place: lda 1, ldi kc)
        for At, lda, ldi in ((A, MR, 1), (A.reshape(kc, MR).T.copy().reshape(-1), 1, kc)):
            C = np.full(co + MR * ldc + NR, np.nan, T)
            mkt(ncol, kc, At, 0, lda, ldi, B, 0, NR, C, co, ldc)
            got = np.array([C[co + i * ldc:co + i * ldc + NR] for i in range(MR)])
            assert np.array_equal(got, Cz), (ncol, ldi)
            assert not np.signbit(got[:, ncol:]).any() and not got[:, ncol:].any(), ncol
            assert np.isnan(C[~_tile_rows(C.size, co, ldc, MR, NR)]).all(), ncol
    for bad in ((), ((16, 16, 1), (8, 8, 1)), ((8, 4, 1),), ((8, 16, 1),), ((0, 16, 0),)):
        with pytest.raises(ValueError, match="tails"):
            intrinsics.tail_kernel(T, MR, NR, bad)


@pytest.mark.parametrize("T,MR,NR,VW,tails", [
    ("float32", 8, 32, 16, ((8, 8, 1), (16, 16, 1), (24, 8, 3))),
    ("float64", 8, 16, 8, ((4, 4, 1), (8, 8, 1), (12, 4, 3))),
    ("float32", 6, 16, 8, ((8, 8, 1),))] + PAIRED)
@pytest.mark.parametrize("parts", [False, True])
def test_cut_tail_kernel_stores_only_its_columns(rng, T, MR, NR, VW, tails, parts):
    # tail_kernel(..., cut=True): the tile of mkt, each row's first ncol columns stored
    # straight where they belong (rows ncol + 1 apart here: a row's end next to the next
    # row's start) and nothing else written, NaN-poisoned; for every ncol up to its widest;
    # by masked stores, or (parts, AVX2 entries) plain stores of power-of-two parts
    kc = 27
    mktc, full = _mkt_runner(T, MR, NR, tails, True, parts), _mk_runner(T, MR, NR, VW)
    A = rng.standard_normal(kc * MR).astype(T)
    A[::3] = 0.0
    for ncol in range(1, tails[-1][0] + 1):
        B, Cz = _last_panel(rng, T, MR, NR, tails, ncol, kc, A, full)
        ldc, co = ncol + 1, 2
        C = np.full(co + MR * ldc + NR, np.nan, T)
        mktc(ncol, kc, A, 0, MR, 1, B, 0, NR, C, co, ldc)
        got = np.array([C[co + i * ldc:co + i * ldc + ncol] for i in range(MR)])
        assert np.array_equal(got, Cz[:, :ncol]), ncol
        assert np.isnan(C[~_tile_rows(C.size, co, ldc, MR, ncol)]).all(), ncol


def test_wide_tails_fit_both_panels_in_the_registers():
    # tiled.wide_tails: the tail kinds a whole panel's rows take beside them (MR rows of
    # both panels' vectors, both panels' vectors of B and a broadcast): the 8×32 float32
    # tile's 8 and 16 columns on 32 registers (8·3 + 3 + 1), not 24 in three vectors
    # (8·5 + 5 + 1); none for the AVX2 6×16 (6·3 + 3 + 1 > 16) or float64's 6×32
    assert _tiled.wide_tails(8, 32, 16, 32, ((8, 8, 1), (16, 16, 1), (24, 8, 3))) == \
        ((8, 8, 1), (16, 16, 1))
    assert _tiled.wide_tails(8, 32, 16, 32, ((16, 16, 1),)) == ((16, 16, 1),)
    assert _tiled.wide_tails(8, 16, 8, 32, ((4, 4, 1), (8, 8, 1), (12, 4, 3))) == \
        ((4, 4, 1), (8, 8, 1))
    assert _tiled.wide_tails(6, 16, 8, 16, ((8, 8, 1),)) == ()
    assert _tiled.wide_tails(6, 32, 8, 32, ((8, 8, 1), (16, 8, 2))) == ()
    assert _tiled.wide_tails(16, 16, 16, 32, ((8, 8, 1),)) == ()
    # a pair kind's MR/2 more accumulators, B's half and two broadcasts: 8 columns beside
    # the 8×32 tile's whole panel (8·2 + 4 + 2 + 1 + 3 registers), not 24 (8·3 + 4 + ...)
    assert _tiled.wide_tails(8, 32, 16, 32, ((8, 16, 0), (16, 16, 1), (24, 16, 1))) == \
        ((8, 16, 0), (16, 16, 1))
    assert _tiled.wide_tails(16, 16, 16, 32, ((8, 16, 0),)) == ((8, 16, 0),)
    assert _tiled.wide_tails(6, 16, 8, 16, ((4, 8, 0), (8, 8, 1), (12, 8, 1))) == ()


def _mkw_runner(T, MR, NR, VW, tails):
    from numba import njit, types as nt

    mkw = intrinsics.wide_kernel(T, MR, NR, VW, tails)
    A1 = nt.Array(nt.float32 if T == "float32" else nt.float64, 1, "C")
    I = nt.int64

    @njit(nt.void(I, I, A1, I, I, I, A1, I, I, I, A1, I, I, I))
    def run(ncol, kc, A, ao, lda, ldi, B, bo, ldb, bo2, C, co, ldc, co2):
        mkw(ncol, kc, intrinsics.pointer(A), ao, lda, ldi, intrinsics.pointer(B), bo, ldb, bo2,
            intrinsics.pointer(C), co, ldc, co2)
    return run


@pytest.mark.parametrize("T,MR,NR,VW,tails", [
    ("float32", 8, 32, 16, ((8, 8, 1), (16, 16, 1))),
    ("float64", 8, 16, 8, ((4, 4, 1), (8, 8, 1))),
    ("float32", 8, 32, 16, ((8, 16, 0), (16, 16, 1), (24, 16, 1))),
    ("float64", 6, 16, 8, ((4, 8, 0), (8, 8, 1), (12, 8, 1)))])
def test_wide_kernel_is_both_panels_tiles(rng, T, MR, NR, VW, tails):
    # mkw(ncol, ...): a whole panel's tile and the next panel's first ncol columns, for every
    # ncol up to its widest tail, from x's rows as they lie (A with lda 1, ldi = K) and two
    # panels of B (the last one's columns from ncol to the kernel's zeros, past them NaN:
    # never read); bitwise the full kernel's tiles of each panel, the last cut to ncol,
    # and nothing else of C written (NaN-poisoned)
    kc, K, ldc = 23, 29, 2 * NR + 5
    mkw, full = _mkw_runner(T, MR, NR, VW, tails), _mk_runner(T, MR, NR, VW)
    A = rng.standard_normal(MR * K).astype(T)
    A[::5] = 0.0
    for ncol in range(1, tails[-1][0] + 1):
        live = next(c for c, _, _ in tails if c >= ncol)
        B = rng.standard_normal((2, kc, NR)).astype(T)  # two packed panels, kc rows each
        B[1, :, ncol:live], B[1, :, live:] = 0.0, np.nan
        C = np.full(3 + MR * ldc + 2 * NR, np.nan, T)
        co, co2 = 3, 3 + NR + 1  # the last panel's tile a column past the whole one's
        mkw(ncol, kc, A, 2, 1, K, B.reshape(-1), 0, NR, kc * NR, C, co, ldc, co2)
        Bz = np.where(np.isnan(B), 0, B).astype(T)
        for p, c0, n in ((0, co, NR), (1, co2, ncol)):
            Cz = np.full(MR * NR, np.nan, T)
            full(kc, A, 2, 1, K, Bz[p].reshape(-1), 0, NR, Cz, 0, NR)
            got = np.array([C[c0 + i * ldc:c0 + i * ldc + n] for i in range(MR)])
            assert np.array_equal(got, Cz.reshape(MR, NR)[:, :n]), (ncol, p)
        written = np.zeros(C.shape, bool)
        for i in range(MR):
            written[co + i * ldc:co + i * ldc + NR] = True
            written[co2 + i * ldc:co2 + i * ldc + ncol] = True
        assert np.isnan(C[~written]).all(), ncol


@pytest.mark.parametrize("T", ["float32", "float64"])
@pytest.mark.parametrize("n,parts", [(32, False), (16, False), (8, False), (6, False),
                                     (32, True), (16, True), (8, True)])
def test_masked_copier_writes_only_its_count(rng, T, n, parts):
    # cpn(dst, do, src, so, count): src's first count elements, nothing past them written;
    # by one masked store, or (parts, AVX2 entries) by plain stores of count's parts
    from numba import njit, types as nt

    cpn = intrinsics.copier(T, n, masked=True, parts=parts)
    A1, I = nt.Array(nt.float32 if T == "float32" else nt.float64, 1, "C"), nt.int64

    @njit(nt.void(A1, I, A1, I, I))
    def copy(dst, do, src, so, count):
        cpn(intrinsics.pointer(dst), do, intrinsics.pointer(src), so, count)
    src = rng.standard_normal(3 + n).astype(T)
    for count in range(n + 1) if parts else sorted({0, 1, n // 2 + 1, n - 1, n}):
        dst = np.full(5 + n + 4, np.nan, T)
        copy(dst, 5, src, 3, count)
        want = np.full(dst.shape, np.nan, T)
        want[5:5 + count] = src[3:3 + count]
        assert np.array_equal(dst, want, equal_nan=True), count


@pytest.mark.parametrize("T", ["float32", "float64"])
@pytest.mark.parametrize("R,VW", [(8, 16), (4, 16), (6, 8), (3, 5), (6, 4), (12, 8), (16, 8)])
def test_pack_intrinsics_copy_and_transpose_exactly_their_block(rng, T, R, VW):
    # copier: n elements from an odd offset to an odd offset; transposer: an R×VW block of
    # a row-major matrix (row stride lds) to rows ldo apart; both into NaN-poisoned arrays,
    # so that an element written outside the block, or one missed, shows
    from numba import njit, types as nt

    A1 = nt.Array(nt.float32 if T == "float32" else nt.float64, 1, "C")
    I = nt.int64
    cp, tp = intrinsics.copier(T, VW), intrinsics.transposer(T, R, VW)

    @njit(nt.void(A1, I, A1, I))
    def copy(dst, do, src, so):
        cp(intrinsics.pointer(dst), do, intrinsics.pointer(src), so)

    @njit(nt.void(A1, I, I, A1, I, I))
    def transpose(dst, do, ldo, src, so, lds):
        tp(intrinsics.pointer(dst), do, ldo, intrinsics.pointer(src), so, lds)

    src = rng.standard_normal(400).astype(T)
    dst = np.full(100, np.nan, T)
    copy(dst, 5, src, 3)
    want = np.full(100, np.nan, T)
    want[5:5 + VW] = src[3:3 + VW]
    assert np.array_equal(dst, want, equal_nan=True)

    so, lds, do, ldo = 7, VW + 9, 3, R + 2
    dst = np.full(do + VW * ldo + R, np.nan, T)
    transpose(dst, do, ldo, src, so, lds)
    want = np.full(dst.shape, np.nan, T)
    for p in range(VW):
        for i in range(R):
            want[do + p * ldo + i] = src[so + i * lds + p]
    assert np.array_equal(dst, want, equal_nan=True)


def _micro_panels(B, MR, size):
    # B (n × kc) as the packs lay it out: MR-lane micro-panels of kc steps, panel ir's step p
    # holding B[ir·MR:(ir+1)·MR, p] (zeros past n), then NaN up to `size` elements
    n, kc = B.shape
    nir = -(-n // MR)
    padded = np.zeros((nir * MR, kc), B.dtype)
    padded[:n] = B
    flat = padded.reshape(nir, MR, kc).transpose(0, 2, 1).ravel()
    return np.concatenate([flat, np.full(size - flat.size, np.nan, B.dtype)])


@pytest.mark.parametrize("T", ["float32", "float64"])
def test_packs_of_x_lay_out_its_micro_panels(rng, T):
    # pack_x (h's A: MR-row micro-panels, pack_a's MR×TA transposes and its loop) and
    # pack_xt (dW's A: MR-column micro-panels of xᵀ, a task's run of a block's rows), into
    # NaN-poisoned buffers: every element of the layout where it belongs, zeros past the
    # rows or columns, nothing written outside
    th = _tiled.module(T, machine.entry().isa, "three")
    MR, TA = th.MR, th.TA
    N, K = 5 * MR + 7, 3 * MR + 2 * TA + 3
    x = rng.standard_normal((N, K)).astype(T)
    r0, rows, pc, kc = 2, 2 * MR + 3, 1, 2 * TA + 3  # a partial micro-panel, kc % TA > 0
    nir = -(-rows // MR)
    Xa = np.full(nir * MR * kc + 8, np.nan, T)
    th.pack_x(Xa, x.reshape(-1), K, r0, rows, pc, kc)
    assert np.array_equal(Xa, _micro_panels(x[r0:r0 + rows, pc:pc + kc], MR, Xa.size),
                          equal_nan=True)

    pc, kc = 3, N - 3 - MR  # a block of kc rows, packed by three runs of them
    nkp = -(-K // MR)
    Xp = np.full(nkp * MR * kc + 8, np.nan, T)
    for p0, p1 in ((0, 5), (5, kc - 2), (kc - 2, kc)):
        th.pack_xt(Xp, x.reshape(-1), K, pc, kc, p0, p1)
    assert np.array_equal(Xp, _micro_panels(x[pc:pc + kc].T, MR, Xp.size), equal_nan=True)


def test_micro_kernel_sums_in_order_exactly():
    # integers: every product and partial sum exact, so the tile is the exact product, and
    # kc = 0 leaves zeros (the sums start from zero)
    T, MR, NR, VW, kc = "float32", 8, 32, 16, 50
    r = np.random.default_rng(5)
    A = r.integers(-8, 9, kc * MR).astype(T)
    B = r.integers(-8, 9, kc * NR).astype(T)
    C = np.full(MR * NR, np.nan, T)
    run = _mk_runner(T, MR, NR, VW)
    run(kc, A, 0, MR, 1, B, 0, NR, C, 0, NR)
    want = A.reshape(kc, MR).T.astype(np.float64) @ B.reshape(kc, NR).astype(np.float64)
    assert np.array_equal(C.reshape(MR, NR), want)
    run(0, A, 0, MR, 1, B, 0, NR, C, 0, NR)
    assert np.array_equal(C, np.zeros_like(C))


@pytest.mark.parametrize("T,parts", [("float32", False), ("float64", False), ("float32", True),
                                     ("float64", True)])
def test_epilogue_has_the_scalar_sources_bits(rng, T, parts):
    # intrinsics.epilogue, 16 elements a vector step, against loopgrad._scalar's formula in
    # Python floats, element by element: z² (z rounded to T) into lane j mod 16 of f in
    # (row, j)'s order (a row's last partial step masked), −2z into dy and relu_backward
    # into g, in T; ties h == 0, NaN and inf among the values; offsets into the arrays,
    # and rows ldg and ldy apart with elements between them that must stay as they were;
    # nothing written without grads; dy streamed past the caches or not (stream, at a dy
    # offset on a cache line, 16 bytes past one (stored as 16-byte parts), or off both);
    # the last step's stores masked, or (parts, AVX2 entries) as plain stores of its parts
    from numba import njit

    from loopgrad._scalar import relu_backward

    epi = intrinsics.epilogue(T, parts=parts)

    @njit
    def run(g, y, dy, off, ldg, ldy, doff, rows, m, a0, want, f, stream):
        p = intrinsics.pointer
        epi(p(g), off, ldg, 0, p(y), off + 3, ldy, p(dy), doff, rows, m, a0, want, p(f),
            stream)

    # (h, y) at j = 14...: z past T's range, ties with huge y (2y past it), subnormal and
    # far-apart exponents (z inexact in float64), 2z at the edge of the range, −0
    edges = [(3e38, -3e38), (0.0, 3e38), (0.0, -2e38), (1e-40, 2e-40), (1e10, 1e-3),
             (1e-3, 1e10), (1.7e38, -1.7e38), (-0.0, 0.0), (5e-39, -5e-39), (0.0, 1e-45)]
    # rows of 20 and 24: the edge cases in a row's last, masked, step
    for m, rows in ((0, 1), (5, 1), (16, 1), (37, 1), (512, 1), (5, 3), (8, 4), (16, 3),
                    (29, 3), (20, 1), (24, 2), (31, 2), (15, 1)):
        ldg, ldy = (m + 5, m + 11) if rows > 1 else (0, 0)
        size = 2 + rows * max(ldg, ldy, m) + 40
        for a0 in (0.0, 0.3, 0.5, 1.0):
            g0 = rng.standard_normal(size).astype(T)
            g0[7:12] = 0.0
            g0[13], g0[14], g0[15] = np.nan, np.inf, -np.inf
            y = rng.standard_normal(size + 3).astype(T)
            for j, (h, yv) in enumerate(edges, 14):
                g0[2 + j], y[5 + j] = h, yv
            f0 = rng.standard_normal(16)
            want_f, want_g = f0.tolist(), g0.copy()
            part = 16 // np.dtype(T).itemsize  # dy 16 bytes past a line
            want_dy = {d: np.full(size + 3, np.nan, T) for d in (3, 16, part)}
            negzero = []  # (g's, dy's index less its offset) where h = −0
            with np.errstate(over="ignore"):  # T(−2z) past T's range: ±inf, as wanted
                for n in range(rows):
                    for j in range(m):
                        h, yv = float(g0[2 + n * ldg + j]), float(y[5 + n * ldy + j])
                        z = (0.0 if h < 0.0 else h) - yv
                        zf = float(np.dtype(T).type(z))  # f's z: rounded to T (±inf past it)
                        want_f[j % 16] += zf * zf
                        for d in want_dy:
                            want_dy[d][d + n * ldy + j] = -2.0 * z
                        want_g[2 + n * ldg + j] = relu_backward(h, z, a0)
                        if h == 0 and np.signbit(h):
                            negzero.append((2 + n * ldg + j, n * ldy + j))
            for want, stream, doff in ((False, False, 3), (True, False, 3), (True, True, 3),
                                       (True, True, 16), (False, True, 16), (True, True, part)):
                g, f = g0.copy(), f0.copy()
                dy = past_a_line((size + 3,), T)  # NaN from a cache line on
                run(g, y, dy, 2, ldg, ldy, doff, rows, m, a0, want, f, stream)
                case = (m, rows, a0, want, stream, doff)
                assert np.array_equal(f, want_f, equal_nan=True), case
                assert np.array_equal(g, want_g if want else g0, equal_nan=True), case
                assert np.array_equal(dy, want_dy[doff] if want
                                      else np.full(size + 3, np.nan, T), equal_nan=True), case
                if want:  # and the zeros' signs (array_equal takes −0 for +0)
                    for k, (got, ref) in enumerate(((g, want_g), (dy, want_dy[doff]))):
                        num = ~np.isnan(ref)
                        if T == "float32" and a0 not in (0.0, 0.5, 1.0):
                            # known, left (stop 33): on this path (float32 through
                            # float64) h = −0 gives z = +0 where the scalar source's is
                            # −0, and so the other sign of a zero g or dy
                            for i in negzero:
                                num[i[k] + (doff if k else 0)] = False
                        assert np.array_equal(np.signbit(got[num]), np.signbit(ref[num])), case


@pytest.mark.parametrize("T", ["float32", "float64"])
@pytest.mark.parametrize("piece", [16, 32])
def test_epilogue_in_pieces_is_the_epilogue_of_those_elements(rng, T, piece):
    # epilogue(T, piece): g's element j at (j // piece)·pstr + j % piece (the three-pass
    # kernel's g by column panels) gives the whole-row epilogue's f, dy and g bit for bit
    # (that one is checked against the scalar source above); nothing lands between pieces
    from numba import njit

    whole, pieced = intrinsics.epilogue(T), intrinsics.epilogue(T, piece)

    @njit
    def run(g, gp, pstr, y, dy, dyp, m, a0, want, f, fp):
        p = intrinsics.pointer
        whole(p(g), 0, 0, 0, p(y), 3, 0, p(dy), 0, 1, m, a0, want, p(f), False)
        pieced(p(gp), 0, 0, pstr, p(y), 3, 0, p(dyp), 0, 1, m, a0, want, p(fp), False)

    pstr = piece + 24
    for m in (0, 5, 16, 29, 37, 61, 100, 512):  # tails past a piece's first 8 too
        j = np.arange(m)
        at = j // piece * pstr + j % piece
        g0 = rng.standard_normal(m).astype(T)
        g0[1:4] = 0.0
        g0[j == 5] = np.nan  # one lane of f NaN, the others compared
        y = rng.standard_normal(m + 3).astype(T)
        f0 = rng.standard_normal(16)
        for a0 in (0.0, 0.3, 0.5, 1.0):
            for want in (False, True):
                g, f, fp = g0.copy(), f0.copy(), f0.copy()
                gp = np.full(m // piece * pstr + pstr, np.nan, T)
                gp[at] = g0
                dy, dyp = np.full(m, np.nan, T), np.full(m, np.nan, T)
                run(g, gp, pstr, y, dy, dyp, m, a0, want, f, fp)
                case = (m, a0, want)
                assert np.array_equal(fp, f, equal_nan=True), case
                assert np.array_equal(dyp, dy, equal_nan=True), case
                assert np.array_equal(gp[at], g, equal_nan=True), case
                between = np.ones(gp.size, bool)
                between[at] = False
                assert np.isnan(gp[between]).all(), case


def test_micro_kernel_needs_lanes_that_divide_its_columns():
    with pytest.raises(ValueError, match="VW must divide NR, got NR = 12, VW = 8"):
        intrinsics.microkernel("float32", 4, 12, 8)


def test_slp_switch_restored_after_an_error():
    from numba.core import config

    before = config.SLP_VECTORIZE
    with pytest.raises(ZeroDivisionError):
        with jit.settings(slp=True):
            assert config.SLP_VECTORIZE == 1
            1 / 0
    assert config.SLP_VECTORIZE == before


def test_settings_from_two_threads_put_numba_back():
    # a second thread's settings, entered while the first holds them, must put back
    # Numba's own add_ir_module, not the first one's width patch
    import threading
    from numba.core import codegen

    original = codegen.CPUCodeLibrary.add_ir_module
    inside, done = threading.Event(), threading.Event()

    def first():
        with jit.settings(vector_bits=512):
            inside.set()
            done.wait(10)

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(10)
    def second_fn():
        with jit.settings(vector_bits=256):
            pass

    second = threading.Thread(target=second_fn)
    second.start()
    time.sleep(0.3)  # the second now waits for Numba's compiler lock
    done.set()
    t.join(10)
    second.join(10)
    assert codegen.CPUCodeLibrary.add_ir_module is original


_CHILD = """
import numpy as np, numba
from numba.core import config
want = config.SLP_VECTORIZE                 # the user's setting, numba imported first
import loopgrad
x, W, y = (np.ones(s, np.float32) for s in ((300, 20), (20, 30), (300, 30)))
loopgrad.grads(x, W, y)                     # compiles the tiled kernels (empty cache)
from loopgrad.cpu import background
behind = bool(background.running())         # the parallel kernel compiling behind the call
background.wait()
assert config.SLP_VECTORIZE == want, (config.SLP_VECTORIZE, want)
print(want, behind)
"""


@pytest.mark.parametrize("user_setting", ["0", "1"])
def test_user_numba_setting_survives(tmp_path, user_setting):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_SLP_VECTORIZE=user_setting)
    env.pop(machine.ENV, None)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [user_setting, "True"]  # cold: the parallel kernel behind
    # the compile (an empty cache: seconds) said once what it compiles and where it is cached
    notes = [line for line in out.stderr.splitlines() if line.startswith("loopgrad: compiling")]
    assert len(notes) == 1, out.stderr[-2000:]
    assert "float32 tiled kernels" in notes[0] and str(tmp_path) in notes[0]
    assert machine.target()["cpu_name"] in notes[0] and "loopgrad compile" in notes[0]
    again = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "loopgrad: compiling" not in again.stderr  # cached
    assert again.stdout.split() == [user_setting, "False"]


# ------------------------------------------------------------------ streamed stores

@pytest.mark.parametrize("isa", sorted(machine.TABLE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streamed_stores_change_no_bit(rng, isa, dtype):
    # want | STREAM has the kernels store dx's whole tiles and dy's chunks past the caches
    # (non-temporal) where they start on a cache line, or in 16-byte parts where they start
    # 16 bytes past one (np.empty's large arrays): outputs on a line, 16 bytes past one and
    # off both (one element past), dx tiles final or summed over two KC blocks (M > KC),
    # both kernels, both drivers; every bit as without, nothing left unwritten
    for N, K, M in [(300, 16, 16), (1100, 40, 64), (250, 300, 256), (200, 64, 300)]:
        x, W, y = draw(rng, N, K, M, dtype)
        name, variant, nchunks, rows = _tiled.plan(N, K, M, dtype, isa)
        n64, nT = _tiled.scratch(name, variant, N, K, M, nchunks, isa)
        for parallel in (True, None):
            kern = _tiled.driver(name, variant, isa) if parallel is None else \
                _tiled.kernel(name, variant, parallel, isa)
            got = {}
            part = 16 // np.dtype(dtype).itemsize
            for stream, skip in ((0, 0), (STREAM, 0), (STREAM, part), (STREAM, 1)):
                outs = [past_a_line(s, dtype, skip) for s in ((N, K), (K, M), (N, M))]
                f = kern(*outs, x, W, y, 0.5, nchunks, rows, np.full(n64 + 3, np.nan),
                         np.full(nT + 3, np.nan, dtype), WANT_ALL | stream)
                got[stream, skip] = (f, *outs)
                assert not any(np.isnan(a).any() for a in outs), (N, K, M, stream, skip)
            for key in ((STREAM, 0), (STREAM, part), (STREAM, 1)):
                assert got[key][0] == got[0, 0][0]
                for a, b in zip(got[key][1:], got[0, 0][1:]):
                    assert np.array_equal(a, b), (N, K, M, key, parallel)


@pytest.mark.parametrize("isa", sorted(machine.TABLE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_staged_dx_changes_no_bit(rng, isa, dtype):
    # Streamed, the fused kernel stages each block's dx where it has two column panels or
    # more (nests.py's `stage`) and sends it out under the next block's h calls, a chunk's
    # last block after them (`flush`): dx on a line, 16 bytes past one and one element
    # past (a head and a tail by ordinary stores), blocks of MC rows with a partial last
    # one, several chunks, with dW and without; every bit as unstreamed, nothing left
    # unwritten, the outputs not asked for untouched
    for N, K, M in [(1100, 64, 17), (700, 40, 24), (3100, 96, 20)]:
        x, W, y = draw(rng, N, K, M, dtype)
        name, variant, nchunks, rows = _tiled.plan(N, K, M, dtype, isa)
        assert name == "grads_fused"
        NR = machine.TABLE[isa].tiles[variant].NR
        assert -(-K // NR) >= 2 or NR < 32  # dx staged on the 32-column tiles
        rows = 1200  # chunks of 12.5 blocks of 96 rows: N = 3100 takes three
        nchunks = -(-N // rows)
        n64, nT = _tiled.scratch(name, variant, N, K, M, nchunks, isa)
        for parallel in (True, None):
            kern = _tiled.driver(name, variant, isa) if parallel is None else \
                _tiled.kernel(name, variant, parallel, isa)
            for want in (WANT_ALL, WANT_DX | WANT_DY, WANT_DX):
                got = {}
                for stream, skip in ((0, 0), (STREAM, 0), (STREAM, 16 // np.dtype(dtype).itemsize),
                                     (STREAM, 1)):
                    outs = [past_a_line(s, dtype, skip) for s in ((N, K), (K, M), (N, M))]
                    f = kern(*outs, x, W, y, 0.5, nchunks, rows, np.full(n64 + 3, np.nan),
                             np.full(nT + 3, np.nan, dtype), want | stream)
                    got[stream, skip] = (f, *outs)
                    for bit, a in zip((WANT_DX, WANT_DW, WANT_DY), outs):
                        assert np.isnan(a).all() != bool(want & bit), (N, K, M, want, skip)
                for key, (f, *outs) in got.items():
                    assert f == got[0, 0][0], (N, K, M, key, want)
                    for a, b in zip(outs, got[0, 0][1:]):
                        assert a.tobytes() == b.tobytes(), (N, K, M, key, want, parallel)


def test_large_calls_stream_their_outputs(monkeypatch, rng):
    # the API asks for streamed stores past loopgrad.cpu.streams's threshold, on tiles whose
    # rows are whole lines; the compiled kernels have them (MOVNT on x86)
    from loopgrad.cpu import caches
    monkeypatch.setattr(cpu, "_stream_from", None)
    monkeypatch.setattr(caches, "geometry", lambda: {"L3": {"bytes": 2 << 30}})
    assert not cpu.streams(10 ** 5, 64, 64, np.float32)      # 97.7 MiB < 2 GiB / 16
    assert cpu.streams(10 ** 6, 16, 16, np.float32)
    monkeypatch.setattr(cpu, "_stream_from", None)
    monkeypatch.setattr(caches, "geometry", lambda: {})        # no L3 known: the minimum
    assert cpu.streams(10 ** 5, 64, 64, np.float32) and not cpu.streams(10 ** 4, 64, 64, np.float32)
    # rows of 32 and 16 float32s, 8 float64s (whole lines) stream; generic's 4 float32s do not
    assert all(_tiled.streams_rows(v, isa) for isa in ("avx512", "avx2") for v in ("float32", "float64"))
    assert not _tiled.streams_rows("float32", "generic")
    calls = []
    real = cpu.tiled_kernel

    def spy(name, variant, par):
        kern, par = real(name, variant, par)
        return (lambda *a: calls.append(a[-1]) or kern(*a)), par
    monkeypatch.setattr(cpu, "tiled_kernel", spy)
    x, W, y = draw(rng, 3000, 32, 32)
    monkeypatch.setattr(cpu, "_stream_from", 0)
    streamed = loopgrad.grads(x, W, y)
    monkeypatch.setattr(cpu, "_stream_from", 1 << 62)
    cached = loopgrad.grads(x, W, y)
    rows_are_lines = _tiled.streams_rows(_tiled.variant(32, 32, np.float32))
    assert calls == [WANT_ALL | (STREAM if rows_are_lines else 0), WANT_ALL]
    assert streamed.f == cached.f
    for a, b in zip(streamed[1:], cached[1:]):
        assert np.array_equal(a, b)
    if machine.entry().isa in ("avx512", "avx2"):  # the intrinsics emit MOVNT stores
        from numba import njit, types as nt
        A1, I = nt.Array(nt.float32, 1, "C"), nt.int64
        mks = intrinsics.microkernel("float32", 8, 32, 16, stream=True)
        epi = intrinsics.epilogue("float32")

        @njit(nt.void(A1, A1, A1, nt.Array(nt.float64, 1, "C"), nt.boolean))
        def both(A, B, C, f, stream):
            p = intrinsics.pointer
            mks(4, p(A), 0, 8, 1, p(B), 0, 32, p(C), 0, 32, stream)
            epi(p(C), 0, 0, 0, p(B), 0, 0, p(A), 0, 1, 64, 0.0, True, p(f), stream)
        asm = "".join(both.inspect_asm().values())
        assert len(re.findall(r"\tvmovnt\w+\t", asm)) >= 2


def test_short_rows_stream_where_the_host_cpu_gains_from_it(monkeypatch, rng):
    # rowvec.py's rows store dx and dy past the caches in large calls except on AMD's Zen
    # (the host's LLVM name, whatever Numba compiles for), where cached stores were faster;
    # rowdots.py's long rows and rowgroups.py's vectors of rows stream everywhere
    # (machine.short_rows_stream)
    from llvmlite import binding as ll
    from loopgrad.cpu import rowvec, skinny
    for name, streams in (("znver4", False), ("znver3", False), ("znver5", False),
                          ("sapphirerapids", True), ("rocketlake", True), ("neoverse-v2", True)):
        monkeypatch.setattr(ll, "get_host_cpu_name", lambda n=name: n)
        assert machine.short_rows_stream.__wrapped__() is streams, name
    flags = []
    real = cpu.row_kernel

    def spy(*a, **k):
        kern = real(*a, **k)
        return lambda *b: flags.append(b[-1]) or kern(*b)
    monkeypatch.setattr(cpu, "row_kernel", spy)
    monkeypatch.setattr(cpu, "_stream_from", 0)  # every call large
    seen = set()
    for K, M in ((8, 8), (6, 6), (4, 4), (32, 2), (64, 4)):
        if cpu.is_tiled(K, M, np.float32):  # (the generic entry's)
            continue
        family = skinny.family(K, M, np.float32)
        x, W, y = draw(rng, 500, K, M)
        bits = []
        for short in (True, False):
            monkeypatch.setattr(machine, "short_rows_stream", lambda s=short: s)
            flags.clear()
            got = loopgrad.grads(x, W, y)
            streamed = bool(flags[-1] & STREAM)
            assert streamed == (short or family is not rowvec), (K, M, family, short)
            bits.append((got.f, *(a.tobytes() for a in got[1:])))
        assert bits[0] == bits[1]  # no value changes
        seen.add(family)
    if machine.entry().isa == "avx512":
        assert rowvec in seen and len(seen) >= 2


# ------------------------------------------------------------------ bit for bit

@pytest.mark.parametrize("isa", sorted(machine.TABLE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bits_are_the_ordered_loops(rng, isa, dtype):
    # Every output of the tiled kernels is a fixed sequence of roundings, which
    # loopgrad/cpu/ordered.py spells out in plain loops over rows and columns (the kernel a
    # cold call runs while they compile): the kernels must give its bits exactly, whatever
    # their tiles, packs and items (the fused and three-pass kernels and the loss; padded
    # and unpadded columns; KC blocks crossed along K, M and N; several chunks; h items
    # narrowed for a short N (200×300×256: tiled.h_panels); x packed before the h items
    # (97×130×1300: six column groups, tiled.xa_rows); the fused kernel's g with its
    # rows a line apart (300×20×384: Mp·size a multiple of 512 bytes, its epilogue row by
    # row), or M apart where M is not a multiple of NR (37×5×7, 300×40×70, and 130×600×50
    # with K past KC: h's last panel cut to the row, its epilogue one run a block); dW's
    # tiles laid as dWᵀ's (3100×64×17 over two chunks on the AVX-512 and AVX2 entries, 500×32×40
    # on AVX-512's: nests.dw_transposed); h's and dx's items by rows for a small shape
    # (300×256×200: tiled.h_rows, a last row block shorter); exact ties h == 0), and so
    # must the loops in any number of threads and for any gradients asked.
    # Through the interpreted serial driver: bitwise the compiled serial and parallel
    # kernels (test_background, test_both_kernels), without their compile.
    ties = rng.integers(-2, 3, (70, 40)).astype(dtype), rng.integers(-2, 3, (40, 33)).astype(
        dtype), rng.integers(-3, 4, (70, 33)).astype(dtype)
    cases = [draw(rng, N, K, M, dtype) for N, K, M in
             [(37, 5, 7), (300, 40, 70), (130, 600, 50), (97, 33, 600), (600, 17, 64),
              (200, 300, 256), (300, 20, 384), (97, 130, 1300), (3000, 64, 64),
              (3100, 64, 17), (500, 32, 40), (300, 256, 200)]] + [ties]
    for x, W, y in cases:
        N, K, M = x.shape[0], x.shape[1], W.shape[1]
        name, variant, nchunks, rows = _tiled.plan(N, K, M, dtype, isa)
        assert N < 3000 or nchunks > 1  # the last random case crosses chunks
        for kern in (name, "loss"):
            got = run(kern, x, W, y, None, a0=0.5, isa=isa)
            for threads in (1, 3):
                loops = ordered.kernel(kern, variant, threads, isa)
                if kern == "loss":
                    assert loops(x, W, y, None) == got, (N, K, M, kern, threads)
                    continue
                for want in (WANT_ALL, WANT_DW, WANT_DX | WANT_DY):
                    outs = [np.full(a.shape, np.nan, dtype) for a in got[1:]]
                    f = loops(*outs, x, W, y, 0.5, nchunks, rows, None, None, want)
                    assert f == got[0], (N, K, M, kern, threads, want, "f")
                    for out, bit, a, b in zip(("dx", "dW", "dy"), (WANT_DX, WANT_DW, WANT_DY),
                                              outs, got[1:]):
                        assert np.array_equal(a, b) if want & bit else np.isnan(a).all(), \
                            (N, K, M, kern, threads, want, out)


def test_the_overflow_guard_has_the_kernels_bits(rng):
    # trusted (loopgrad/cpu/guards.py, in the kernels) and the ordered loops decide whether
    # float32 sums could have overflowed from the same sums: ‖W‖² in 16 partial sums, the
    # same bits in Numba's code (a vector of 16 lanes), in ordered_ir's (scalar) and in
    # Python's float arithmetic, one sum after another (any length, a tail past the 16s)
    def in_python(a):
        n16 = len(a) - len(a) % 16
        s = [0.0] * 17
        for i, v in enumerate(a):
            s[i % 16 if i < n16 else 16] += float(v) * float(v)
        return ((((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])))
                + (((s[8] + s[9]) + (s[10] + s[11])) + ((s[12] + s[13]) + (s[14] + s[15])))) \
            + s[16]
    for n in (0, 5, 16, 37, 1000, 4099):
        for dtype in (np.float32, np.float64):
            a = (rng.standard_normal(n) * 1e3).astype(dtype)
            fns = ordered_ir.functions(np.dtype(dtype).name)
            assert fns["sum_squares"](a.ctypes.data, n, np.empty(17).ctypes.data) == \
                guards.sum_squares(a) == in_python(a)
            assert fns["nonfinite"](a.ctypes.data, n) == 0.0
            if n:
                a[n // 2] = np.inf
                assert np.isnan(fns["nonfinite"](a.ctypes.data, n))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_ordered_loops_refuse_what_the_kernels_refuse(rng, dtype):
    # non-finite inputs, or sums that could overflow in the dtype: the ordered loops return
    # NaN where the kernels do, and the call goes to the float64 row kernels either way;
    # the loops' own tests of f warn of nothing (f − f of an infinite f had: an AVX2 run)
    import warnings

    for shape in ((300, 12, 20), (70, 300, 290)):
        for where, value, x, W, y in _hostile(rng, dtype, shape):
            N, K, M = shape
            name, variant, nchunks, rows = _tiled.plan(N, K, M, dtype)
            outs = [np.empty(s, dtype) for s in ((N, K), (K, M), (N, M))]
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                f = ordered.kernel(name, variant)(*outs, x, W, y, 0.0, nchunks, rows, None,
                                                  None, WANT_ALL)
                lf = ordered.kernel("loss", variant)(x, W, y, None)
            with np.errstate(all="ignore"):
                want, want_loss = run(name, x, W, y, None)[0], run("loss", x, W, y, None)
            assert np.isnan(f) == np.isnan(want), (shape, where, value)
            assert np.array_equal(lf, want_loss, equal_nan=True), (shape, where, value)


# ------------------------------------------------------------------ accuracy

@pytest.mark.parametrize("isa", sorted(machine.TABLE))
@pytest.mark.parametrize("N,K,M", [(300, 600, 40), (300, 40, 600), (512, 512, 512)])
def test_error_within_1_5x_torch_float32(N, K, M, isa):
    # The flash-attention rule, tightened (issue 12): each output's error against float64
    # at most 1.5× torch float32's own, mean and largest over the elements, on sums that
    # cross KC blocks (K or M > 2·KC) and on a square.  Sums of up to KC = 256 terms per
    # block carry torch's (MKL's) error; blocks of 512 had 1.4× it (dev/machines_v8.md 8h).
    from loopgrad import reference

    # the parallel kernel (bitwise the serial one), which test_both_kernels compiles anyway
    ratio = reference.error_ratios(
        lambda x, W, y: run(_tiled.plan(N, K, M, np.float32, isa)[0], x, W, y, True, isa=isa),
        N, K, M)
    assert np.all(ratio <= 1.5), dict(zip(("f", "dx", "dW", "dy"), ratio.round(2).tolist()))
