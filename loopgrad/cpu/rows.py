"""The general row kernels: explicit loops over rows, float64 throughout.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

    h = x·W    z = max(h, 0) − y    f = Σ z²
    g = 2·z·relu'(h)    dx = g·Wᵀ    dW = xᵀ·g    dy = −2·z

One fused pass over the rows: each row's h, z and g live in two length-M
float64 scratch vectors, never as N×M arrays.  Rows are split into chunks
whose size depends only on the shape (see `plan`), never on the thread count.
Each chunk writes its own rows of dx and dy and its own float64 partial of dW
and f; the partials are then summed in chunk order.  So the result is bitwise
the same for any number of threads, and serial == parallel.

Arithmetic is float64 throughout (h, z, g, the dx dot products, the dW and f
sums), rounded once to the input dtype on store: for float32 inputs every
output is within about one float32 rounding of the exact float64 answer.

These take K ≤ 3 with K·M > 16 (skinny.py generates faster ones for K·M ≤ 16;
from K = 4 on tiled.py's register-tiled kernels take over), and every shape
where the tiled kernels' input-dtype sums could overflow or meet inf and NaN
(loopgrad.cpu chooses).  They are the readable oracle the others are checked
against.

`want` (loopgrad._inputs' WANT_* bits) names the gradients a grads kernel writes; the
others may be empty arrays, and f and dW have the same bits whatever it is.

Kernels only loop; `loopgrad.cpu` allocates and dispatches.
"""

import functools

import numpy as np
from numba import prange, types

from .._inputs import WANT_DW, WANT_DX, WANT_DY
from .._scalar import relu_backward as _relu_backward_py
from .jit import cached as _jit_cached, jit as _jit, notice

# Each chunk's partial row is padded to a whole number of 64-byte cache lines
# so that two threads never write the same line (false sharing measured 2.7x
# slower on this machine).
CACHE_LINE = 64
_PAD = CACHE_LINE // 8  # float64s per cache line

# A chunk holds about this many multiply-adds of work (enough to amortise a
# task, small enough to balance on many cores), and at most _MAX_CHUNKS chunks
# are made so that the partials stay within _PARTIAL_BYTES.
_CHUNK_WORK = 1 << 17
_MAX_CHUNKS = 1024
_MIN_CHUNKS = 4
_PARTIAL_BYTES = 64 << 20


@functools.lru_cache(maxsize=256)
def plan(N: int, K: int, M: int) -> tuple[int, int, int]:
    """Chunking for an N×K×M problem: (rows_per_chunk, nchunks, row_stride).

    A pure function of the shape, so results never depend on thread count.
    row_stride is the length of one chunk's float64 partial row (K·M dW
    values, then f), padded to whole cache lines.
    """
    row_stride = (K * M + 1 + _PAD - 1) // _PAD * _PAD
    if N == 0:
        return 1, 0, row_stride
    per_row = 3 * K * M + 2 * M + 1
    rows = max(1, _CHUNK_WORK // per_row)
    # at least _MIN_CHUNKS, even past the partials budget, so wide shapes still run in
    # parallel (2048³: 4 × 32 MiB of float64 dW partials; with 1 chunk: serial, 4.0 s)
    max_chunks = max(_MIN_CHUNKS, min(_MAX_CHUNKS, _PARTIAL_BYTES // (8 * row_stride)))
    rows = max(rows, -(-N // max_chunks))
    return rows, -(-N // rows), row_stride


def partials_buffer(nchunks: int, row_stride: int) -> np.ndarray:
    """Uninitialised (nchunks, row_stride) float64 array starting on a cache line."""
    if nchunks <= 1:
        return np.empty((nchunks, row_stride))  # one writer: nothing to share a line with
    raw = np.empty(nchunks * row_stride + _PAD, np.float64)
    skip = (-raw.__array_interface__["data"][0] % CACHE_LINE) // 8
    return raw[skip:skip + nchunks * row_stride].reshape(nchunks, row_stride)


# ---------------------------------------------------------------- row kernels

# g = 2·z·relu'(h), torch's way (see _scalar.py); inlined: a call per element
# measured 2× slower (dev/skinny_v3.py)
relu_backward = _jit(_relu_backward_py, inline="always")

# The row loops below index with unsigned integers and allow reassociation:
# Numba guards every signed index against negative values with a select that
# stops LLVM's loop vectorizer, and the dx dot products and f sums only
# vectorize when their order may change.  Together 2–5× (dev/rows_v4.py).
# No contract (FMA hides a product's overflow) and no nnan/ninf (NaN and inf
# must propagate as in torch).
_FM = {"reassoc"}


@_jit(inline="always", fastmath=_FM)
def _rows_forward(h, x, W, n):
    # h[m] = Σ_k x[n,k]·W[k,m], k outer so the inner loop runs along W's rows
    K = np.uint64(W.shape[0])
    M = np.uint64(W.shape[1])
    for m in range(M):
        h[m] = 0.0
    for k in range(K):
        xk = np.float64(x[n, k])
        for m in range(M):
            h[m] += xk * W[k, m]


@_jit(fastmath=_FM)
def _chunk_loss(x, W, y, start, stop):
    # rows [start, stop) → Σ z²
    M = np.uint64(W.shape[1])
    h = np.empty(W.shape[1], np.float64)
    f = 0.0
    for n in range(np.uint64(start), np.uint64(stop)):
        _rows_forward(h, x, W, n)
        for m in range(M):
            hm = h[m]
            r = 0.0 if hm < 0.0 else hm  # max(h, 0) that keeps NaN, as torch does
            z = r - y[n, m]
            f += z * z
    return f


@_jit(fastmath=_FM)
def _chunk_grads(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, want):
    # rows [start, stop) → dx, dy rows; dW_part (K·M,) = Σ_n x[n,k]·g[n,m]; returns Σ z².
    # want (WANT_* bits) picks the gradients written.  The loops that sum f and dW are
    # the same code for every want, outside its branches (dy's row goes to a sink where
    # dy is not wanted): the same bits whatever is asked.
    K = np.uint64(W.shape[0])
    M = np.uint64(W.shape[1])
    h = np.empty(W.shape[1], np.float64)
    g = np.empty(W.shape[1], np.float64)
    sink = np.empty(W.shape[1], dy.dtype)  # dy's row where dy is not wanted
    if want & WANT_DW:
        for i in range(K * M):
            dW_part[i] = 0.0
    f = 0.0
    for n in range(np.uint64(start), np.uint64(stop)):
        _rows_forward(h, x, W, n)
        d = dy[n] if want & WANT_DY else sink
        for m in range(M):
            hm = h[m]
            r = 0.0 if hm < 0.0 else hm
            z = r - y[n, m]
            f += z * z
            g[m] = relu_backward(hm, z, relu_grad_at_zero)
            d[m] = -2.0 * z
        # forward h[n,m] += x[n,k]·W[k,m]  →  dx[n,k] += g[n,m]·W[k,m],  dW[k,m] += x[n,k]·g[n,m]
        if want & WANT_DX:
            for k in range(K):
                s = 0.0
                for m in range(M):
                    s += g[m] * W[k, m]
                dx[n, k] = s
        if want & WANT_DW:
            for k in range(K):
                xk = np.float64(x[n, k])
                base = k * M
                for m in range(M):
                    dW_part[base + m] += xk * g[m]
    return f


@_jit
def _sum_partials_f(partials, col):
    # f = Σ_c partials[c, col], in chunk order
    f = 0.0
    for c in range(partials.shape[0]):
        f += partials[c, col]
    return f


# ------------------------------------------------------------ public kernels
# Each exists serial and parallel; the two bodies differ only in range/prange.
# They are separate functions (not one compiled twice) because Numba's disk
# cache keys entries by function and signature, not by the parallel flag.

def _grads_serial(dx, dW, dy, partials, x, W, y, relu_grad_at_zero, rows_per_chunk, want):
    N = x.shape[0]
    K, M = W.shape
    for c in range(partials.shape[0]):
        start = c * rows_per_chunk
        partials[c, K * M] = _chunk_grads(dx, partials[c], dy, x, W, y, relu_grad_at_zero,
                                          start, min(start + rows_per_chunk, N), want)
    for k in range(K if want & WANT_DW else 0):
        for m in range(M):
            dW[k, m] = _sum_partials_f(partials, k * M + m)
    return _sum_partials_f(partials, K * M)


def _grads_parallel(dx, dW, dy, partials, x, W, y, relu_grad_at_zero, rows_per_chunk, want):
    N = x.shape[0]
    K, M = W.shape
    for c in prange(partials.shape[0]):
        start = c * rows_per_chunk
        partials[c, K * M] = _chunk_grads(dx, partials[c], dy, x, W, y, relu_grad_at_zero,
                                          start, min(start + rows_per_chunk, N), want)
    for k in prange(K if want & WANT_DW else 0):
        for m in range(M):
            dW[k, m] = _sum_partials_f(partials, k * M + m)
    return _sum_partials_f(partials, K * M)


def _loss_serial(partials, x, W, y, rows_per_chunk):
    N = x.shape[0]
    for c in range(partials.shape[0]):
        start = c * rows_per_chunk
        partials[c, 0] = _chunk_loss(x, W, y, start, min(start + rows_per_chunk, N))
    return _sum_partials_f(partials, 0)


def _loss_parallel(partials, x, W, y, rows_per_chunk):
    N = x.shape[0]
    for c in prange(partials.shape[0]):
        start = c * rows_per_chunk
        partials[c, 0] = _chunk_loss(x, W, y, start, min(start + rows_per_chunk, N))
    return _sum_partials_f(partials, 0)


_PY = {
    ("grads", False): _grads_serial,
    ("grads", True): _grads_parallel,
    ("loss", False): _loss_serial,
    ("loss", True): _loss_parallel,
}
_COMPILED: dict = {}


def signature(name: str, dtype: np.dtype):
    """The Numba signature of row kernel `name` ("grads" or "loss") for dtype."""
    t = types.float32 if dtype == np.float32 else types.float64
    out = types.Array(t, 2, "C")
    inp = types.Array(t, 2, "C", readonly=True)  # writable arrays convert to this too
    part = types.Array(types.float64, 2, "C")
    if name == "grads":
        return types.float64(out, out, out, part, inp, inp, inp, types.float64, types.intp,
                             types.intp)
    return types.float64(part, inp, inp, inp, types.intp)


def cached(name: str, dtype, parallel: bool) -> bool:
    """Whether `kernel` would load from Numba's disk cache (or has compiled here)."""
    dtype = np.dtype(dtype)
    return (name, dtype, parallel) in _COMPILED or \
        _jit_cached(_PY[name, parallel], signature(name, dtype), parallel=parallel)


def kernel(name: str, dtype, parallel: bool):
    """The compiled general row kernel `name` ("grads" or "loss") for dtype, serial or parallel.

    Compiled on first use (one signature per dtype; read-only inputs share it)
    and cached on disk.

    grads(dx, dW, dy, partials, x, W, y, relu_grad_at_zero, rows_per_chunk, want) -> f
    loss(partials, x, W, y, rows_per_chunk) -> f
    """
    dtype = np.dtype(dtype)
    key = (name, dtype, parallel)
    fn = _COMPILED.get(key)
    if fn is None:
        with notice(f"the {dtype} row kernels"):
            fn = _COMPILED[key] = _jit(_PY[name, parallel],
                                       signature_or_function=signature(name, dtype),
                                       parallel=parallel)
    return fn
