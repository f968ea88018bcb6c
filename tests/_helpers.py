"""Test helpers: seeded draws and the check of all four outputs against torch autograd."""

import numpy as np

from loopgrad import reference

OUTPUTS = ("f", "dx", "dW", "dy")


def draw(rng, N, K, M, dtype=np.float32, scale=1.0):
    """x (N,K), W (K,M), y (N,M) standard normal draws in dtype."""
    return tuple((scale * rng.standard_normal(s)).astype(dtype) for s in ((N, K), (K, M), (N, M)))


def past_a_line(shape, dtype, skip=0):
    """A NaN-poisoned C-contiguous array that starts `skip` elements past a cache line."""
    n = int(np.prod(shape))
    raw = np.full(n + 64, np.nan, dtype)
    at = -raw.ctypes.data % 64 // raw.itemsize + skip
    return raw[at:at + n].reshape(shape)


def assert_matches_torch(got, x, W, y, relu_grad_at_zero=0.0, form="trace"):
    """Every output of `got` within the dtype-derived bound of torch autograd in float64."""
    ref = reference.torch_autograd(x, W, y, relu_grad_at_zero, form=form)
    bounds = reference.error_bounds(x, W, y, ref)
    for name, g, r, b in zip(OUTPUTS, got, ref, bounds):
        reference.check(name, g, r, b)
    return ref
