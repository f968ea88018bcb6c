"""Random shapes against torch autograd in float64, through the API and at kernel level."""

import numpy as np
import pytest
import torch

import loopgrad
from loopgrad import reference
from loopgrad.cpu import rows as general
from loopgrad._inputs import WANT_ALL
from _helpers import assert_matches_torch, draw

SHAPES = [
    (1, 1, 1), (1, 5, 3), (7, 1, 3), (7, 3, 1),
    (10, 4, 4),          # the notebook's
    (97, 33, 17),        # odd sizes, no multiple of anything
    (1151, 3, 5),        # Triton's awkward row count
    (20_000, 4, 4),      # long and skinny: many chunks, parallel kernel
    (3001, 16, 16),
    (64, 300, 257),      # wide: few rows per chunk
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,K,M", SHAPES)
def test_grads_match_torch(rng, N, K, M, dtype):
    x, W, y = draw(rng, N, K, M, dtype)
    got = loopgrad.grads(x, W, y)
    for out, shape in zip(got[1:], ((N, K), (K, M), (N, M))):
        assert out.shape == shape and out.dtype == dtype and out.flags.c_contiguous
    assert isinstance(got.f, float)
    assert_matches_torch(got, x, W, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fresh_random_shapes(rng, dtype):
    # shapes drawn afresh from the test's seed: small and odd, tall, and wide
    for _ in range(6):
        N, K, M = (int(v) for v in (rng.integers(1, 3000), rng.integers(1, 40), rng.integers(1, 40)))
        x, W, y = draw(rng, N, K, M, dtype, scale=float(rng.uniform(0.1, 10)))
        assert_matches_torch(loopgrad.grads(x, W, y), x, W, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_matches_grads_and_torch(rng, dtype):
    x, W, y = draw(rng, 5003, 6, 5, dtype)
    f = loopgrad.loss(x, W, y)
    ref = reference.torch_autograd(x, W, y)
    bound = reference.error_bounds(x, W, y, ref)[0]
    reference.check("f", f, ref[0], bound)
    # both summed in float64 over the same chunks; the vectorized kernels may
    # split a chunk's sum over lanes differently, so equal to float64 rounding
    assert f == pytest.approx(loopgrad.grads(x, W, y).f, rel=1e-14)


def test_float32_f_is_summed_in_float64(rng):
    # torch's float32 trace(zᵀz) drifts with N; ours must stay at float64 rounding.  x and
    # W small integers: h is exact in float32 (the kernels that take float32 inputs in
    # float32 arithmetic round h to float32, the contract's error), and z = max(h, 0) − y
    # is torch's float32 z (rounded once; its square exact in float64), so only the sum
    # of z² is left to tell a float64 sum from a float32 one
    _, _, y = draw(rng, 200_000, 4, 4, np.float32)
    x = rng.integers(-3, 4, (200_000, 4)).astype(np.float32)
    W = rng.integers(-3, 4, (4, 4)).astype(np.float32)
    h = torch.from_numpy(x) @ torch.from_numpy(W)  # exact: integers
    z = (torch.relu(h) - torch.from_numpy(y)).double()
    ref = float((z * z).sum())
    assert abs(loopgrad.grads(x, W, y).f - ref) <= 1e-12 * ref


def test_our_error_at_most_twice_torch_float32(rng):
    # the flash-attention rule, on top of the a-priori bounds
    x, W, y = draw(rng, 4001, 24, 12, np.float32)
    exact = reference.torch_autograd(x, W, y)
    theirs = reference.torch_autograd(x, W, y, dtype="float32")
    ours = loopgrad.grads(x, W, y)
    for name, o, t, e in zip(("f", "dx", "dW", "dy"), ours, theirs, exact):
        err_ours = np.max(np.abs(np.asarray(o, np.float64) - e))
        err_torch = np.max(np.abs(np.asarray(t, np.float64) - e))
        assert err_ours <= 2 * err_torch, (name, err_ours, err_torch)


# ------------------------------------------------------------------ kernels

def run_kernel(x, W, y, a0=0.0, parallel=True, rows=None):
    """Call the grads kernel directly on NaN-poisoned outputs."""
    N, K = x.shape
    M = W.shape[1]
    plan_rows, nchunks, stride = general.plan(N, K, M)
    rows = rows or plan_rows
    nchunks = -(-N // rows) if N else 0
    dx, dW, dy = (np.full(s, np.nan, x.dtype) for s in ((N, K), (K, M), (N, M)))
    partials = general.partials_buffer(nchunks, stride)
    partials.fill(np.nan)
    f = general.kernel("grads", x.dtype, parallel)(dx, dW, dy, partials, x, W, y, a0, rows,
                                                             WANT_ALL)
    return f, dx, dW, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 7, 64, 5000])
def test_kernel_writes_every_output(rng, dtype, rows):
    x, W, y = draw(rng, 997, 5, 3, dtype)
    got_par = run_kernel(x, W, y, rows=rows, parallel=True)
    got_ser = run_kernel(x, W, y, rows=rows, parallel=False)
    assert_matches_torch(got_par, x, W, y)  # NaN left anywhere would fail here
    for a, b in zip(got_par, got_ser):
        assert np.array_equal(a, b)  # bitwise: same chunks, same order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_kernel(rng, dtype):
    x, W, y = draw(rng, 1001, 7, 2, dtype)
    partials = general.partials_buffer(11, 8)
    partials.fill(np.nan)
    f_par = general.kernel("loss", dtype, True)(partials, x, W, y, 91)
    f_ser = general.kernel("loss", dtype, False)(partials, x, W, y, 91)
    assert f_par == f_ser
    ref = reference.torch_autograd(x, W, y)
    reference.check("f", f_par, ref[0], reference.error_bounds(x, W, y, ref)[0])


def test_plan_depends_on_shape_only_and_bounds_memory():
    for N, K, M in [(0, 3, 3), (1, 1, 1), (10**6, 4, 4), (1024, 1024, 1024), (2048, 2048, 2048),
                    (10**7, 1, 1)]:
        rows, nchunks, stride = general.plan(N, K, M)
        assert rows >= 1 and nchunks * rows >= N and (nchunks - 1) * rows < max(N, 1)
        assert stride % 8 == 0 and stride >= K * M + 1
        assert nchunks * stride * 8 <= max(64 << 20, 4 * stride * 8)
        if K * M >= 1 << 20:
            assert nchunks >= 4  # wide shapes still split for the threads
    # a chunk's own cost grows with K·M as its rows' work does (30a): at least 256 rows
    # where N has them, nearly equal, up to 4 chunks where each holds 2¹⁷ multiply-adds,
    # one where the call is small
    assert general.plan(10**5, 256, 8)[:2] == (256, 391)
    assert general.plan(600, 256, 8)[:2] == (150, 4)
    assert general.plan(10**6, 4, 4)[:2] == (2299, 435)
    assert general.plan(10, 4, 4)[:2] == (10, 1)
    buf = general.partials_buffer(5, 24)
    assert buf.ctypes.data % 64 == 0 and buf.shape == (5, 24) and buf.strides[0] % 64 == 0
