"""Property-based hostile input: every call either raises a documented error or agrees with torch.

Hypothesis draws shapes (empty ones included), dtypes, byte orders, memory
layouts and values from the awkward corners: ±0, subnormals, ±inf, NaN,
values near the largest float, integers (exact ties).  Each draw must end in
one of two ways: a TypeError/ValueError with the argument's name, or outputs
that match torch autograd (of Σ z², in float64) element by element, with NaN
and inf exactly where torch has them.  Inputs must be bitwise unchanged.
"""

import os

import numpy as np
import pytest

import loopgrad
from loopgrad import reference

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
npst = pytest.importorskip("hypothesis.extra.numpy")


def values(dtype):
    info = np.finfo(dtype)
    specials = [0.0, -0.0, float(info.smallest_subnormal), -float(info.smallest_subnormal),
                np.inf, -np.inf, np.nan, 0.9 * float(info.max), -0.9 * float(info.max)]
    return st.one_of(
        st.floats(-1e3, 1e3, width=info.bits),
        st.integers(-3, 3).map(float),            # exact ties at h = 0
        st.sampled_from(specials),
    )


@st.composite
def problems(draw, one_output=False):
    # one_output: M = 1 with K from 7 to 20 and up to 40 rows (rowdots.py's dot products on
    # AVX2 and AVX-512: whole and partial vectors of a row, whole and partial blocks of rows)
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    if one_output:
        N, K, M = draw(st.integers(0, 40)), draw(st.integers(7, 20)), 1
    else:
        N, K, M = (draw(st.integers(0, n)) for n in (12, 5, 5))
    arrays = []
    for name, shape in (("x", (N, K)), ("W", (K, M)), ("y", (N, M))):
        a = draw(npst.arrays(dtype, shape, elements=values(dtype)))
        layout = draw(st.sampled_from(["C", "F", "transposed", "strided", "reversed"]))
        if layout == "F":
            a = np.asfortranarray(a)
        elif layout == "transposed":
            a = np.ascontiguousarray(a.T).T
        elif layout == "strided":
            big = np.zeros((2 * shape[0] + 1, 2 * shape[1] + 1), dtype)
            big[1::2, 1::2] = a
            a = big[1::2, 1::2]
        elif layout == "reversed":
            a = np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
        arrays.append(a)
    swap = draw(st.sampled_from([None, None, None, "x", "W", "y"]))
    a0 = draw(st.sampled_from([0.0, 0.5, 1.0]))
    return arrays, swap, a0


# LOOPGRAD_HYPOTHESIS_EXAMPLES=2000 for a longer hunt (passed on 2026-11-26)
@hypothesis.settings(max_examples=int(os.environ.get("LOOPGRAD_HYPOTHESIS_EXAMPLES", 150)), deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(problems())
# found by longer hunts (2026-12-05): h = 1.2e-38·1.6e308 − 1.6e308·1.2e-38, exactly 0 here
# and a rounding away from it in torch, beside an infinite z (g 0 or −inf: either is right);
# and h = 1.5·1e-45 rounded into float32's subnormals (f's error absolute, not relative)
@hypothesis.example(([np.array([[1.17549435e-38, -1.61792382e308], [0, 0], [0, 0], [0, 0]]),
                      np.array([[1.61792382e308, 0], [1.17549435e-38, 0]]),
                      np.array([[np.inf, 0], [0, 0], [0, 0], [0, 0]])], None, 0.5))
@hypothesis.example(([np.array([[0, 1.5]], np.float32),
                      np.array([[0, 0, 0, 0], [0, 0, 0, 1e-45]], np.float32),
                      np.zeros((1, 4), np.float32)], None, 0.0))
def test_hostile_inputs(problem):
    _agrees_or_refuses(problem)


@hypothesis.settings(max_examples=int(os.environ.get("LOOPGRAD_HYPOTHESIS_EXAMPLES", 150)) // 3,
                     deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(problems(one_output=True))
def test_hostile_inputs_one_output(problem):
    _agrees_or_refuses(problem)


def _agrees_or_refuses(problem):
    (x, W, y), swap, a0 = problem
    if swap is not None:  # a byte-swapped copy: same values, non-native order
        i = "xWy".index(swap)
        arr = [x, W, y][i]
        swapped = arr.astype(arr.dtype.newbyteorder())
        x, W, y = [swapped if j == i else a for j, a in enumerate((x, W, y))]
    before = [a.tobytes() for a in (x, W, y)]
    try:
        got = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
    except TypeError as e:
        assert swap is not None and f"{swap} has non-native byte order" in str(e)
        return
    finally:
        assert [a.tobytes() for a in (x, W, y)] == before, "an input was modified"
    assert swap is None
    with np.errstate(all="ignore"):
        ref = reference.torch_autograd(x, W, y, a0, form="sum")
        bounds = reference.error_bounds(x, W, y, ref)
    for name, g, r, b in zip(("f", "dx", "dW", "dy"), got, ref, bounds):
        if name != "f":
            assert g.dtype == x.dtype and g.shape == r.shape
            with np.errstate(over="ignore"):
                r = np.asarray(r).astype(x.dtype).astype(np.float64)  # overflow → inf, as stored
        reference.check(name, g, r, b)
