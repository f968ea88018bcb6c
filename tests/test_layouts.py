"""Any layout in, the same numbers out; inputs are never modified."""

import numpy as np
import pytest

import loopgrad
from _helpers import assert_matches_torch, draw

torch = pytest.importorskip("torch")


def as_numpy(a):
    return a.detach().numpy() if isinstance(a, torch.Tensor) else a


def variants(x, W, y):
    """(name, x, W, y) with the same values in different memory layouts."""
    yield "fortran", np.asfortranarray(x), np.asfortranarray(W), np.asfortranarray(y)
    yield "transposed", np.ascontiguousarray(x.T).T, np.ascontiguousarray(W.T).T, y
    big = np.zeros((2 * x.shape[0], 3 * x.shape[1]), x.dtype)
    big[::2, ::3] = x
    yield "strided", big[::2, ::3], W, y
    yield "negative strides", np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1], W[::1, ::1], \
        np.ascontiguousarray(y[::-1])[::-1]
    ro = [a.copy() for a in (x, W, y)]
    for a in ro:
        a.setflags(write=False)
    yield "read-only", *ro
    yield "torch", torch.from_numpy(x.copy()), torch.from_numpy(W.copy()), torch.from_numpy(y.copy())
    yield "torch requires_grad", *(torch.from_numpy(a.copy()).requires_grad_() for a in (x, W, y))
    yield "torch transposed", torch.from_numpy(np.ascontiguousarray(x.T)).T, \
        torch.from_numpy(W.copy()), torch.from_numpy(y.copy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layouts_give_identical_results(rng, dtype):
    x, W, y = draw(rng, 301, 7, 5, dtype)
    base = loopgrad.grads(x, W, y)
    assert_matches_torch(base, x, W, y)
    for name, xv, Wv, yv in variants(x, W, y):
        before = [np.array(as_numpy(a), copy=True) for a in (xv, Wv, yv)]
        got = loopgrad.grads(xv, Wv, yv)
        assert got.f == base.f, name
        for g, b in zip(got[1:], base[1:]):
            g = as_numpy(g)
            assert np.array_equal(g, b) and g.flags.c_contiguous, name
        for a, b in zip((xv, Wv, yv), before):
            assert np.array_equal(as_numpy(a), b), f"{name}: input modified"
        assert loopgrad.loss(xv, Wv, yv) == loopgrad.loss(x, W, y), name


def test_memory_map(tmp_path, rng):
    x, W, y = draw(rng, 50, 3, 2, np.float64)
    path = tmp_path / "x.npy"
    np.save(path, x)
    xm = np.load(path, mmap_mode="r")  # read-only memory map
    assert loopgrad.grads(xm, W, y).f == loopgrad.grads(x, W, y).f


def test_torch_in_torch_out(rng):
    x, W, y = draw(rng, 20, 3, 2, np.float32)
    got = loopgrad.grads(*(torch.from_numpy(a).requires_grad_() for a in (x, W, y)))
    for t in got[1:]:
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and not t.requires_grad
        assert t.is_contiguous() and t.device.type == "cpu"
    assert np.array_equal(got.dx.numpy(), loopgrad.grads(x, W, y).dx)


def test_python_lists_are_converted():
    got = loopgrad.grads([[1.0, 2.0]], [[1.0], [-1.0]], [[0.5]])
    assert got.f == 0.25 and got.dx.dtype == np.float64
