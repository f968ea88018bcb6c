"""Bitwise the same run to run, and for any number of threads."""

import os
import subprocess
import sys

import numpy as np

import loopgrad
from loopgrad._inputs import WANT_ALL
from _helpers import draw

_CHILD = """
import hashlib, sys, numpy as np, loopgrad
rng = np.random.default_rng(7)
x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((300_000, 5), (5, 3), (300_000, 3)))
f, dx, dW, dy = loopgrad.grads(x, W, y)
import numba
digest = [hashlib.sha256(a.tobytes()).hexdigest() for a in (dx, dW, dy)]
sys.stdout.write(repr((numba.get_num_threads(), f.hex(), *digest)))
"""


def test_two_calls_are_bitwise_equal(rng):
    x, W, y = draw(rng, 100_003, 6, 5, np.float32)
    a, b = loopgrad.grads(x, W, y), loopgrad.grads(x, W, y)
    assert a.f == b.f
    for u, v in zip(a[1:], b[1:]):
        assert np.array_equal(u.view(np.uint32), v.view(np.uint32))


def test_thread_count_does_not_change_a_bit():
    out = {}
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        run = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                             text=True, check=True)
        n, *bits = eval(run.stdout)  # noqa: S307 - our own child's repr
        assert n == int(threads)
        out[threads] = bits
    assert out["1"] == out["2"]


def test_tiled_kernels_give_the_same_bits_on_one_thread_and_two(rng):
    # the parallel tiled kernels split rows (fused) or rows × column panels (three-pass)
    # into items by the shape alone, and add partial sums in item order; the three-pass
    # kernel shares its items among the threads it is told (its nchunks argument, which
    # the API sets to Numba's thread count): 1, 2 or 3 shares give the same bits
    import numba

    from loopgrad.cpu import tiled

    for N, K, M in ((700, 40, 600), (333, 300, 290), (200, 300, 256)):
        x, W, y = draw(rng, N, K, M, np.float32)
        name, variant, nchunks, rows = tiled.plan(N, K, M, x.dtype)
        kernel = tiled.kernel(name, variant, parallel=True)
        n64, nT = tiled.scratch(name, variant, N, K, M, nchunks)
        out = {}
        for threads in (1, 2, 3) if name == "grads" else (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            try:
                dx, dW, dy = (np.full(s, np.nan, np.float32) for s in ((N, K), (K, M), (N, M)))
                f = kernel(dx, dW, dy, x, W, y, 0.0, threads if name == "grads" else nchunks,
                           rows, np.full(n64, np.nan), np.full(nT, np.nan, np.float32),
                           WANT_ALL)
            finally:
                numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            out[threads] = (f, dx.tobytes(), dW.tobytes(), dy.tobytes())
        assert not np.isnan(out[1][0])
        assert not any(np.isnan(np.frombuffer(a, np.float32)).any() for a in out[1][1:])
        assert all(out[1] == b for b in out.values()), (N, K, M, name)


def test_general_rows_f_does_not_depend_on_where_arrays_lie(rng):
    # the general rows (K = 0, float64 reruns, the generic entry) sum f under reassoc; a
    # loop that also stores g and dy took LLVM's vector path or its scalar one by a run-time
    # check of how far apart the arrays lie (its h and g scratch among them), so f's order
    # followed the heap (918×0×8 float64: f's last bits moved call to call).  Outputs placed
    # at several distances from y, and the heap stirred between calls: one f
    from loopgrad.cpu import rows
    for N, K, M in ((918, 0, 8), (301, 3, 37), (64, 0, 16)):
        x, W, y = draw(rng, N, K, M, np.float64)
        cr, nch, stride = rows.plan(N, K, M)
        seen = set()
        grads, loss = (rows.kernel(name, np.float64, False) for name in ("grads", "loss"))
        for gap in (0, 1, 2, 3, 5, 8, 16, 64):
            block = np.empty(N * M + gap + N * M)  # dy right after a copy of y
            yy = block[:N * M].reshape(N, M)
            yy[:] = y
            dy = block[N * M + gap:].reshape(N, M)
            stir = [np.empty(m) for m in range(1, 40, gap + 1)]  # the heap moved
            f = grads(np.empty((N, K)), np.empty((K, M)), dy, rows.partials_buffer(nch, stride),
                      x, W, yy, 0.0, cr, WANT_ALL)
            f0 = loss(rows.partials_buffer(nch, rows.CACHE_LINE // 8), x, W, yy, cr)
            seen |= {f.hex(), f0.hex()}
            del stir
        assert len(seen) == 1, (N, K, M, seen)
