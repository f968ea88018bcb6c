"""Exact ties h == 0: each relu'(0) convention against its torch op and by hand.

Integer inputs make every h exact in any summation order, so the reference
bounds leave no slack at the ties (see reference.error_bounds).
"""

import numpy as np
import pytest

import loopgrad
from _helpers import assert_matches_torch

CONVENTIONS = [0.0, 0.5, 1.0, 0.25]


def integer_inputs(rng, N, K, M, dtype):
    x = rng.integers(-2, 3, (N, K)).astype(dtype)
    W = rng.integers(-2, 3, (K, M)).astype(dtype)
    y = rng.integers(-3, 4, (N, M)).astype(dtype)
    return x, W, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a0", CONVENTIONS)
def test_integer_inputs_with_many_ties(rng, dtype, a0):
    x, W, y = integer_inputs(rng, 503, 3, 5, dtype)
    assert np.mean(x.astype(np.float64) @ W == 0) > 0.1  # the test is about ties
    assert_matches_torch(loopgrad.grads(x, W, y, relu_grad_at_zero=a0), x, W, y, a0)


@pytest.mark.parametrize("a0", CONVENTIONS)
def test_zero_rows_in_x_and_zero_columns_in_W(rng, a0):
    x, W, y = (a.astype(np.float64) for a in (rng.standard_normal((40, 6)),
                                              rng.standard_normal((6, 5)),
                                              rng.standard_normal((40, 5))))
    x[::3] = 0.0
    W[:, 1] = 0.0
    f, dx, dW, dy = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
    # by hand: where h == 0, z = −y and g = 2·z·a0
    h = x @ W
    z = np.maximum(h, 0) - y
    g = 2 * z * np.where(h > 0, 1.0, np.where(h == 0, a0, 0.0))
    np.testing.assert_allclose(dW[:, 1], x.T @ g[:, 1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx[::3], g[::3] @ W.T, rtol=1e-12, atol=1e-12)
    assert_matches_torch((f, dx, dW, dy), x, W, y, a0)


@pytest.mark.parametrize("a0", CONVENTIONS)
def test_all_ties_when_K_is_zero(a0):
    # h is an empty sum: 0 everywhere, so z = −y, f = Σy², dy = 2y and dx, dW are empty
    y = np.array([[1.0, -2.0, 3.0]], np.float32)
    f, dx, dW, dy = loopgrad.grads(np.zeros((1, 0), np.float32), np.zeros((0, 3), np.float32), y,
                                   relu_grad_at_zero=a0)
    assert f == 14.0 and dx.shape == (1, 0) and dW.shape == (0, 3)
    assert np.array_equal(dy, 2 * y)


def test_conventions_differ_exactly_at_ties():
    x = np.array([[1.0, -1.0]], np.float32)
    W = np.array([[1.0], [1.0]], np.float32)   # h = 0 exactly
    y = np.array([[-1.5]], np.float32)         # z = 1.5, g = 3·relu'(0)
    for a0, dW0 in [(0.0, 0.0), (0.5, 1.5), (1.0, 3.0)]:
        _, dx, dW, _ = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
        assert dW.tolist() == [[dW0], [-dW0]] and dx.tolist() == [[dW0, dW0]]
