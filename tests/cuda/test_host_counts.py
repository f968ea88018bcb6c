"""The thin host path, counted: what a warm call launches, allocates, copies and waits for.

Under the simulator (tests/test_cuda_simulator.py) every launch, allocation,
copy and synchronisation goes through numba.cuda's Python API, which these
tests count.  Also here: inputs given by raw pointer and strides (objects with
__cuda_array_interface__, strided and transposed views), and the row kernel's
grid-stride loop and the dW product's float64 carry, at sizes the simulator
can run.
"""

import contextlib

import numpy as np
import pytest
from numba import config, cuda

import loopgrad
from loopgrad.cuda import host, products, rows
from _helpers import assert_matches_torch, draw

pytestmark = pytest.mark.skipif(not config.ENABLE_CUDASIM,
                                reason="counts the simulator's Python API calls")


@contextlib.contextmanager
def counting(monkeypatch):
    """Count launches, allocations, copies, synchronisations and array conversions."""
    from numba.cuda.simulator import kernel
    from numba.cuda.simulator.cudadrv import devicearray

    n = dict(launches=0, allocations=0, copies=0, syncs=0, conversions=0)

    def counted(key, fn):
        def wrapper(*a, **k):
            n[key] += 1
            return fn(*a, **k)
        return wrapper

    call = kernel.FakeCUDAKernel.__call__

    def launch(self, *a):
        if not self._device:            # device functions are calls inside a kernel
            n["launches"] += 1
        return call(self, *a)

    monkeypatch.setattr(kernel.FakeCUDAKernel, "__call__", launch)
    for name in ("device_array", "device_array_like", "to_device", "pinned_array",
                 "mapped_array", "managed_array"):
        if hasattr(cuda, name):
            monkeypatch.setattr(cuda, name, counted("allocations", getattr(cuda, name)))
    for name in ("copy_to_host", "copy_to_device"):
        monkeypatch.setattr(devicearray.FakeCUDAArray, name,
                            counted("copies", getattr(devicearray.FakeCUDAArray, name)))
    monkeypatch.setattr(cuda, "synchronize", counted("syncs", cuda.synchronize))
    if hasattr(cuda, "as_cuda_array"):     # numba-cuda's simulator has it, numba's not
        monkeypatch.setattr(cuda, "as_cuda_array", counted("conversions", cuda.as_cuda_array))
    yield n


# (launches, output allocations) of a warm call on device arrays, by kernel family and
# what is asked; every call also copies f (8 bytes) to the host once, which is its one wait
EXPECTED = {
    ("rows", None): (2, 3), ("rows", "W"): (2, 1), ("rows", "loss"): (2, 0),
    ("products", None): (6, 3), ("products", "W"): (5, 1), ("products", "x"): (4, 1),
    ("products", "loss"): (3, 0),
}


@pytest.mark.parametrize("family,N,K,M", [("rows", 40, 4, 3), ("products", 9, 20, 3)])
@pytest.mark.parametrize("what", [None, "W", "x", "loss"])
def test_a_warm_call_counts(rng, monkeypatch, family, N, K, M, what):
    x, W, y = draw(rng, N, K, M, np.float32)
    args = [cuda.to_device(a) for a in (x, W, y)]

    def call():
        if what == "loss":
            return loopgrad.loss(*args)
        return loopgrad.grads(*args) if what is None else loopgrad.grads(*args, wrt=what)

    first = call()                      # compiles, plans, fills the scratch pool
    info = host.plan.cache_info()
    with counting(monkeypatch) as n:
        again = call()
    launches, allocations = EXPECTED.get((family, what), (2, 1))
    assert n == dict(launches=launches, allocations=allocations, copies=1, syncs=0,
                     conversions=0)
    assert host.plan.cache_info().hits == info.hits + 1       # the plan was reused
    assert (first if what == "loss" else first.f) == (again if what == "loss" else again.f)


class Interface:
    """Any GPU array: only __cuda_array_interface__ (in the simulator, host memory)."""

    def __init__(self, a, strides=None):
        self.a = a      # keeps the memory alive
        self.strides = strides or (None if a.flags.c_contiguous else a.strides)

    @property
    def __cuda_array_interface__(self):
        a = self.a
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False),
                "strides": self.strides, "version": 3}


@pytest.mark.parametrize("N,K,M", [(45, 5, 3), (11, 19, 6)])
def test_raw_pointers_and_strides(rng, N, K, M):
    # transposed x, every other column of a wider W, y C-contiguous with the interface
    # leaving strides out: the kernels index them through the strides they are given
    x, W, y = draw(rng, N, K, M, np.float64)
    xt = np.ascontiguousarray(x.T).T
    Ww = np.zeros((K, 2 * M))
    Ww[:, ::2] = W
    got = loopgrad.grads(Interface(xt), Interface(Ww[:, ::2]), Interface(y))
    assert type(got.dx).__module__.startswith("numba.cuda")
    assert_matches_torch((got.f, *(a.copy_to_host() for a in got[1:])), x, W, y)
    again = host.run(*(cuda.to_device(np.full(s, np.nan)) for s in ((N, K), (K, M), (N, M))),
                     cuda.to_device(x), cuda.to_device(W), cuda.to_device(y), 0.0)
    assert again == got.f     # strides change no bits


@pytest.mark.parametrize("N,K,M", [(140, 16, 16), (45, 3, 5)])
def test_row_kernel_strided_y_takes_the_same_bits(rng, N, K, M):
    # the row kernel moves row-major x and y by whole tiles and any other strides one
    # element at a time: a transposed y and a column-strided x give the contiguous bits
    x, W, y = draw(rng, N, K, M, np.float32)
    xw = np.zeros((N, 2 * K), np.float32)
    xw[:, ::2] = x
    got = loopgrad.grads(Interface(xw[:, ::2]), Interface(W),
                         Interface(np.ascontiguousarray(y.T).T))
    dense = loopgrad.grads(*(cuda.to_device(a) for a in (x, W, y)))
    assert_matches_torch((got.f, *(a.copy_to_host() for a in got[1:])), x, W, y)
    assert got.f == dense.f
    for a, b in zip(got[1:], dense[1:]):
        assert np.array_equal(a.copy_to_host(), b.copy_to_host())


def test_misaligned_strides_rejected():
    a = np.zeros(40, np.uint8)[1:33].view(np.float32).reshape(2, 4)   # fine: whole elements
    odd = Interface(a, strides=(16, 3))
    with pytest.raises(ValueError, match="x has strides"):
        loopgrad.grads(odd, Interface(np.ones((4, 2), np.float32)),
                       Interface(np.ones((2, 2), np.float32)))


def test_row_kernel_grid_strides_over_tiles(rng, monkeypatch):
    # fewer blocks than tiles: each block takes several tiles and carries f and dW
    # across them; the last tile is ragged
    monkeypatch.setattr(host, "ROW_BLOCKS", 2)
    host.plan.cache_clear()
    R = rows.rows_per_block(np.float32)
    x, W, y = draw(rng, 3 * R + 5, 3, 2, np.float32)
    assert host.Plan(3 * R + 5, 3, 2, np.float32, 7, ()).blocks == 2
    got = loopgrad.grads(*(cuda.to_device(a) for a in (x, W, y)))
    assert_matches_torch((got.f, *(a.copy_to_host() for a in got[1:])), x, W, y)
    host.plan.cache_clear()


def test_dW_carries_float64_across_row_blocks(rng, monkeypatch):
    # SUM_ROWS rows are summed in the dtype, then added to the float64 partial: with 16,
    # 40 rows take three blocks of the dW loop (16, 16, 8)
    monkeypatch.setattr(products, "SUM_ROWS", 16)
    host.plan.cache_clear()
    x, W, y = draw(rng, 40, 17, 3, np.float32)
    N, K, M = 40, 17, 3
    assert host.dW_slices(N, K, M) == (40, 1)
    outs = [cuda.to_device(np.full(s, np.nan, np.float32)) for s in ((N, K), (K, M), (N, M))]
    f = host.run(*outs, *(cuda.to_device(a) for a in (x, W, y)), 0.0)
    assert_matches_torch((f, *(o.copy_to_host() for o in outs)), x, W, y)
    host.plan.cache_clear()


def test_row_kernel_with_64_bit_offsets(rng, monkeypatch):
    # arrays beyond 2³¹ elements take the kernel with 64-bit offsets: forced here by a
    # lower limit, it gives the bits of the 32-bit one
    x, W, y = draw(rng, 70, 5, 3, np.float32)
    args = [cuda.to_device(a) for a in (x, W, y)]
    narrow = loopgrad.grads(*args)
    monkeypatch.setattr(host, "_I32", 100)
    host.plan.cache_clear()
    assert host.plan(70, 5, 3, np.dtype(np.float32), 7, ((70, 5, 5, 1), (5, 3, 3, 1),
                                                         (70, 3, 3, 1))).wide
    wide = loopgrad.grads(*args)
    host.plan.cache_clear()
    assert wide.f == narrow.f
    assert all(np.array_equal(a.copy_to_host(), b.copy_to_host())
               for a, b in zip(wide[1:], narrow[1:]))


def test_each_thread_has_its_own_scratch(rng):
    # on one stream another thread's kernels could run between a call's kernels and its
    # copy of f: the pool of scratch (numba's arrays) is per thread.  (The simulator runs
    # one kernel at a time, so the threads take turns and the race itself cannot show
    # here; the pools can.)
    import threading

    draws = [draw(rng, 30 + i, 4, 3, np.float32) for i in range(2)]
    seen, results = {}, {}

    def call(i):
        args = [cuda.to_device(a) for a in draws[i]]
        results[i] = loopgrad.grads(*args)
        seen[i] = host._scratch("numba", None, 8, np.float64, 0, "partials")[0]

    for i in range(2):
        t = threading.Thread(target=call, args=(i,))
        t.start()
        t.join()
    assert seen[0] is not seen[1]
    for i in range(2):
        got = results[i]
        assert_matches_torch((got.f, *(a.copy_to_host() for a in got[1:])), *draws[i])
