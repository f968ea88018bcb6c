"""Bad input: a clear exception naming the argument, what was expected and what came."""

import numpy as np
import pytest

import loopgrad

torch = pytest.importorskip("torch")

x0 = np.ones((5, 3), np.float32)
W0 = np.ones((3, 2), np.float32)
y0 = np.ones((5, 2), np.float32)


def cases():
    f32 = np.float32
    yield "x 1-D", (np.ones(3, f32), W0, y0), ValueError, r"x must be 2-D, got 1-D .*\(3,\)"
    yield "W 3-D", (x0, np.ones((3, 2, 1), f32), y0), ValueError, r"W must be 2-D, got 3-D"
    yield "y 0-D", (x0, W0, np.float32(1.0)), ValueError, r"y must be 2-D, got 0-D"
    yield "K", (x0, np.ones((4, 2), f32), y0), ValueError, \
        r"x \(5, 3\) must be \(N, K\), W \(4, 2\) \(K, M\) and y \(5, 2\) \(N, M\)"
    yield "N", (x0, W0, np.ones((6, 2), f32)), ValueError, r"y \(6, 2\)"
    yield "M", (x0, W0, np.ones((5, 3), f32)), ValueError, r"W \(3, 2\) .* y \(5, 3\)"
    yield "int", (x0.astype(np.int64), W0, y0), TypeError, r"x must have dtype float32 or float64, got int64"
    yield "float16", (x0, W0.astype(np.float16), y0), TypeError, r"W .* got float16"
    yield "complex", (x0, W0, y0.astype(np.complex64)), TypeError, r"y .* got complex64"
    yield "mixed", (x0, W0.astype(np.float64), y0), TypeError, \
        r"same dtype, got float32, float64 and float32"
    yield "byte order", (x0.astype(">f4"), W0, y0), TypeError, \
        r"x has non-native byte order .*newbyteorder"
    yield "object", (np.array([[1.0, None]], dtype=object), W0, y0), TypeError, r"x must have dtype"
    yield "ragged", ([[1.0, 2.0], [3.0]], W0, y0), TypeError, r"x must be an array .* list"
    yield "string", ("abc", W0, y0), (TypeError, ValueError), r"x"
    yield "None", (x0, None, y0), TypeError, r"W must"
    yield "torch int", (torch.ones(5, 3, dtype=torch.int32), W0, y0), TypeError, r"x .* torch.int32"
    yield "torch bf16", (x0, W0, torch.ones(5, 2, dtype=torch.bfloat16)), TypeError, \
        r"y must be float32 or float64, got torch torch.bfloat16"
    yield "torch meta", (torch.ones(5, 3, device="meta"), W0, y0), ValueError, r"x is a torch tensor on meta"


@pytest.mark.parametrize("case", list(cases()), ids=lambda c: c[0])
@pytest.mark.parametrize("fn", [loopgrad.grads, loopgrad.loss])
def test_bad_input(fn, case):
    _, args, exc, pattern = case
    with pytest.raises(exc, match=pattern):
        fn(*args)


@pytest.mark.parametrize("bad,exc", [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                                     ("0.5", TypeError), (None, TypeError), (True, TypeError),
                                     (1j, TypeError)])
def test_bad_relu_grad_at_zero(bad, exc):
    with pytest.raises(exc, match="relu_grad_at_zero"):
        loopgrad.grads(x0, W0, y0, relu_grad_at_zero=bad)


def test_numpy_scalars_are_fine_for_relu_grad_at_zero():
    assert loopgrad.grads(x0, W0, y0, relu_grad_at_zero=np.float32(0.5)).f == 5 * 2 * 4.0


def test_inputs_untouched_after_an_error():
    x = x0.copy()
    with pytest.raises(ValueError):
        loopgrad.grads(x, W0, np.ones((6, 2), np.float32))
    assert np.array_equal(x, x0)
