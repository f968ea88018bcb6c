"""Empty dimensions, NaN and inf: what torch gives."""

import numpy as np
import pytest

import loopgrad
from loopgrad import cpu
from _helpers import assert_matches_torch, draw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,K,M", [(0, 3, 2), (4, 0, 2), (4, 3, 0), (0, 0, 0), (0, 5, 0),
                                   (7, 40, 0), (0, 64, 64), (300, 0, 70), (918, 0, 8)])
@pytest.mark.parametrize("a0", [0.0, 0.5, 1.0])
def test_empty_dimensions(rng, N, K, M, dtype, a0):
    x, W, y = draw(rng, N, K, M, dtype)
    # the kernel in words (the bench's column), without a product to tile at M = 0
    assert isinstance(cpu.describe(N, K, M, dtype), str)
    got = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
    assert [a.shape for a in got[1:]] == [(N, K), (K, M), (N, M)]
    assert_matches_torch(got, x, W, y, a0)
    assert loopgrad.loss(x, W, y) == got.f


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where,value", [("x", np.nan), ("x", np.inf), ("x", -np.inf),
                                         ("W", np.nan), ("W", np.inf), ("y", np.nan),
                                         ("y", np.inf), ("y", -np.inf)])
def test_nan_and_inf_propagate_as_in_torch(rng, dtype, where, value):
    x, W, y = draw(rng, 9, 3, 4, dtype)
    {"x": x, "W": W, "y": y}[where][1, 2] = value
    got = loopgrad.grads(x, W, y, relu_grad_at_zero=0.5)
    # check() demands the same NaN/inf pattern as torch and bounds the finite rest.
    # Autograd of Σ z², not of the notebook's trace(zᵀz): with an infinite z the
    # trace's products with the identity turn inf·0 into NaN across the row.
    assert_matches_torch(got, x, W, y, 0.5, form="sum")
    assert not all(np.isfinite(np.asarray(a)).all() for a in got)  # something did propagate


def test_large_values_do_not_overflow_f(rng):
    # z² overflows float32 but f is summed in float64
    x, W, y = draw(rng, 8, 2, 2, np.float32)
    y[:] = 3e20
    got = loopgrad.grads(x, W, y)
    assert np.isfinite(got.f) and got.f > float(np.finfo(np.float32).max)


@pytest.mark.parametrize("N,K,M", [(300, 35, 1), (40, 9, 296), (8, 300, 300), (500, 2, 2)])
def test_an_infinite_input_the_relu_clips(rng, N, K, M):
    # x[3, 0] = inf against a negative row 0 of W: row 3's h is −inf, which the ReLU clips,
    # so f stays finite, g is 0 there and dW's row 0 meets inf·0 (NaN, torch's answer).
    # grads recomputes in float64 where its float32 sums met the infinity; loss, with no
    # gradient, keeps float32's h (its docstring): both within the contract
    from loopgrad import reference

    x, W, y = draw(rng, N, K, M, np.float32)
    W[0, :] = -np.abs(W[0, :]) - 0.5
    x[3, 0] = np.inf
    got = loopgrad.grads(x, W, y)
    assert np.isfinite(got.f) and np.isnan(got.dW[0]).all()
    ref = assert_matches_torch(got, x, W, y, form="sum")
    with np.errstate(all="ignore"):
        bound = reference.error_bounds(x, W, y, ref)[0]
    reference.check("f", loopgrad.loss(x, W, y), ref[0], bound)
    # a call without dW cannot see it, and keeps float32's h too (grads' docstring): f
    # then within h's float32 rounding of the full call's (about 1e-7 relative at most)
    some = loopgrad.grads(x, W, y, wrt=("x", "y"))
    reference.check("f", some.f, ref[0], bound)
    assert abs(some.f - got.f) <= 1e-6 * got.f


@pytest.mark.parametrize("a0", [0.0, 0.5, 1.0])
def test_nan_h_follows_each_torch_op(a0):
    # h = 0·inf = NaN: torch.relu and torch.maximum pass 2z = NaN back,
    # torch.clamp(min=0) (relu'(0) = 1) drops it; dW = x·g then shows which
    x = np.array([[0.0, 1.0]])
    W = np.array([[np.inf], [1.0]])
    y = np.array([[0.0]])
    got = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
    assert_matches_torch(got, x, W, y, a0, form="sum")
    assert np.isnan(got.dW[1, 0]) == (a0 != 1.0)


def test_bounds_are_unbounded_where_a_product_of_the_gradients_overflows():
    # dx = 2·z0·W00 + 2·z1·W01 = 1e308 − 1e308: the exact sum 0, f finite, but the terms'
    # magnitudes sum past float64's range, where the order of the sum and whether each
    # product is fused with it decide the answer (inf, NaN or finite): the bound must admit
    # any (Σ|g||W| overflows; with γ taken first it had stayed finite)
    from loopgrad import reference

    x, W, y = np.array([[1.0]]), np.array([[1e154, 1e154]]), np.array([[0.5e154, 1.5e154]])
    with np.errstate(all="ignore"):
        ref = reference.torch_autograd(x, W, y, form="sum")
        bounds = reference.error_bounds(x, W, y, ref)
    assert np.isfinite(ref[0]) and np.isfinite(ref[1]).all()
    assert np.isinf(bounds[1]).all()                                   # dx
    small = reference.error_bounds(x, W / 1e100, y / 1e100, ref)       # and finite below it
    assert np.isfinite(small[1]).all()


def test_check_admits_any_answer_only_where_the_bound_is_unbounded():
    # a finite reference wants a finite answer within the bound, a special one the same
    # special; where the magnitudes overflow (the bound is inf or NaN) a fused multiply-add
    # decides torch's own answer, and anything is admitted
    from loopgrad import reference

    ref = np.array([1.0, 1e308, np.inf])
    unbounded = np.array([1e-12, np.inf, np.nan])
    reference.check("v", np.array([1.0, -np.inf, np.nan]), ref, unbounded)
    for got, bound in (([1.0, -np.inf, np.inf], [1e-12, 1e300, np.nan]),   # inf for a finite
                       ([1.0, 1e308, np.nan], [1e-12, np.inf, 1e300]),     # NaN for an inf
                       ([np.nan, 1e308, np.inf], unbounded),               # NaN where bounded
                       ([1.1, 1e308, np.inf], unbounded)):                 # beyond the bound
        with pytest.raises(AssertionError, match="1 element"):
            reference.check("v", np.array(got), ref, np.array(bound))
