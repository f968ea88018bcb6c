"""The row kernels' drivers: a row function over chunks of rows, then the chunks' sums.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

    grads(row, dx, dW, dy, partials, x, W, y, relu_grad_at_zero, rows_per_chunk, want) -> f
    loss(row, partials, x, W, y, rows_per_chunk) -> f

`row` is the address of a C function (jit.cfunc) that does the rows [start, stop):
the general one of rows.py, or one generated for a (K, M) by skinny.py.  Each chunk's
call returns its Σ z² and writes its rows of dx and dy and its float64 partial of dW
(one row of `partials`); the drivers then add the partials in chunk order.  Chunks
depend on the shape alone (rows.plan), so the result is bitwise the same for any
number of threads, and serial == parallel.

The row functions are called through their address (intrinsics.call): compiled once,
on their own, they are the same code under both drivers, and a new (K, M) compiles its
row functions alone: the drivers compile once per dtype for every shape.  When each
(K, M) had drivers of its own, LLVM optimized its row loop again in each, and a
generated module took 15–25 s to compile (dev/cold_v13.md).

Serial and parallel are two functions, not one compiled twice: Numba's disk cache
keys entries by function and signature, not by the parallel flag.
"""

import numpy as np
from numba import prange, types

from .._inputs import WANT_DW
from . import jit
from .intrinsics import call, pointer


@jit.jit
def _column_sums(partials, lo, hi):
    # s[e − lo] = Σ_c partials[c, e] for lo ≤ e < hi, each in chunk order, read a chunk's
    # row at a time: a column's elements lie a row stride apart (at K·M = 2048 16 KiB, a
    # miss each; dev/products_v29.md 30a)
    s = np.zeros(hi - lo)
    for c in range(partials.shape[0]):
        for e in range(lo, hi):
            s[e - lo] += partials[c, e]
    return s


@jit.jit
def _finish(partials, dW, K, M, want):
    # dW from the chunks' partials where `want` names it, and f (their column K·M)
    if want & WANT_DW:
        s = _column_sums(partials, 0, K * M + 1)
        for e in range(K * M):
            dW[e // M, e % M] = s[e]
        return s[K * M]
    return _column_sums(partials, K * M, K * M + 1)[0]


def _grads_serial(row, dx, dW, dy, partials, x, W, y, relu_grad_at_zero, rows_per_chunk, want):
    # 2-D C-contiguous arrays in, pointers to the row function.  The gradients `want`
    # does not name may be empty arrays: the row function leaves them
    N, R = np.uint64(x.shape[0]), np.uint64(rows_per_chunk)
    K, M = W.shape
    for c in range(partials.shape[0]):
        start = np.uint64(c) * R
        partials[c, K * M] = call(row, pointer(dx), pointer(partials[c]), pointer(dy),
                                  pointer(x), pointer(W), pointer(y), relu_grad_at_zero,
                                  start, min(start + R, N), K, M, want)
    return _finish(partials, dW, K, M, want)


def _grads_parallel(row, dx, dW, dy, partials, x, W, y, relu_grad_at_zero, rows_per_chunk,
                    want):
    N, R = np.uint64(x.shape[0]), np.uint64(rows_per_chunk)
    K, M = W.shape
    for c in prange(partials.shape[0]):
        start = np.uint64(c) * R
        partials[c, K * M] = call(row, pointer(dx), pointer(partials[c]), pointer(dy),
                                  pointer(x), pointer(W), pointer(y), relu_grad_at_zero,
                                  start, min(start + R, N), K, M, want)
    # (serial: K·M is small, or the row work dwarfs it: 2048² float64 sums 16M partials
    # in 10–20 ms of seconds)
    return _finish(partials, dW, K, M, want)


def _loss_serial(row, partials, x, W, y, rows_per_chunk):
    N, R = np.uint64(x.shape[0]), np.uint64(rows_per_chunk)
    K, M = W.shape
    for c in range(partials.shape[0]):
        start = np.uint64(c) * R
        partials[c, 0] = call(row, pointer(x), pointer(W), pointer(y), start,
                              min(start + R, N), K, M)
    return _column_sums(partials, 0, 1)[0]


def _loss_parallel(row, partials, x, W, y, rows_per_chunk):
    N, R = np.uint64(x.shape[0]), np.uint64(rows_per_chunk)
    K, M = W.shape
    for c in prange(partials.shape[0]):
        start = np.uint64(c) * R
        partials[c, 0] = call(row, pointer(x), pointer(W), pointer(y), start,
                              min(start + R, N), K, M)
    return _column_sums(partials, 0, 1)[0]


_PY = {("grads", False): _grads_serial, ("grads", True): _grads_parallel,
       ("loss", False): _loss_serial, ("loss", True): _loss_parallel}
_COMPILED: dict = {}


def signature(name: str, dtype: np.dtype):
    """The Numba signature of driver `name` ("grads" or "loss") for dtype."""
    t = types.float32 if dtype == np.float32 else types.float64
    out = types.Array(t, 2, "C")
    inp = types.Array(t, 2, "C", readonly=True)  # writable arrays convert to this too
    part = types.Array(types.float64, 2, "C")
    if name == "grads":
        return types.float64(types.intp, out, out, out, part, inp, inp, inp, types.float64,
                             types.intp, types.intp)
    return types.float64(types.intp, part, inp, inp, inp, types.intp)


def row_signature(name: str, dtype: np.dtype):
    """The C signature of the row functions the drivers call: arrays as pointers, then
    start and stop (the rows), K, M and (grads) want."""
    t = types.float32 if dtype == np.float32 else types.float64
    P, P64, u, i = types.CPointer(t), types.CPointer(types.float64), types.uint64, types.intp
    if name == "grads":
        return types.float64(P, P64, P, P, P, P, types.float64, u, u, i, i, i)
    return types.float64(P, P, P, u, u, i, i)


def cached(name: str, dtype, parallel: bool) -> bool:
    """Whether `driver` would load from Numba's disk cache (or has compiled here)."""
    dtype = np.dtype(dtype)
    return (name, dtype, parallel) in _COMPILED or \
        jit.cached(_PY[name, parallel], signature(name, dtype), parallel=parallel)


def driver(name: str, dtype, parallel: bool):
    """The compiled driver `name` for dtype, serial or parallel (the module's doc)."""
    dtype = np.dtype(dtype)
    key = (name, dtype, parallel)
    fn = _COMPILED.get(key)
    if fn is None:
        with jit.notice(f"the {dtype} row kernels"):
            fn = _COMPILED[key] = jit.jit(_PY[name, parallel],
                                          signature_or_function=signature(name, dtype),
                                          parallel=parallel)
    return fn
