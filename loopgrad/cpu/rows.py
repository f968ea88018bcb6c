"""The general row kernels: explicit loops over rows, float64 throughout.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

    h = x·W    z = max(h, 0) − y    f = Σ z²
    g = 2·z·relu'(h)    dx = g·Wᵀ    dW = xᵀ·g    dy = −2·z

One fused pass over the rows: each row's h, z and g live in two length-M
float64 scratch vectors, never as N×M arrays; f in M partial sums (column m's
over the chunk's rows in order), added after them.  Rows are split into chunks
whose size depends only on the shape (see `plan`), never on the thread count.
Each chunk writes its own rows of dx and dy and its own float64 partial of dW
and f; the partials are then summed in chunk order (chunks.py's drivers, which
call this module's chunk functions, compiled as one C function per dtype).  So
the result is bitwise the same for any number of threads, and serial == parallel.

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
from numba import carray

from .._inputs import WANT_DW, WANT_DX, WANT_DY
from .._scalar import relu_backward as _relu_backward_py
from . import chunks, jit
from .jit import jit as _jit

# Each chunk's partial row is padded to a whole number of 64-byte cache lines
# so that two threads never write the same line (false sharing measured 2.7x
# slower on this machine).
CACHE_LINE = 64
_PAD = CACHE_LINE // 8  # float64s per cache line

# A chunk holds about _CHUNK_WORK multiply-adds of work (enough to amortise a
# task, small enough to balance on many cores) and at least _CHUNK_ROWS rows: each
# zeroes, fills and adds its own float64 partial of K·M, 2.3–3.3 cycles an element
# (at 256×8 a row is 0.27 an element), so 21-row chunks made 10⁵×256×8 1.4–2× slower
# (dev/products_v29.md 30a).  Where N is short, up to _MIN_CHUNKS chunks of
# _CHUNK_WORK each; at most _MAX_CHUNKS chunks, so that the partials stay within
# _PARTIAL_BYTES.
_CHUNK_WORK = 1 << 17
_CHUNK_ROWS = 256
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
    worked = max(1, _CHUNK_WORK // per_row)  # rows of _CHUNK_WORK
    n = max(-(-N // max(worked, _CHUNK_ROWS)),
            min(_MIN_CHUNKS, N // worked))  # up to _MIN_CHUNKS of _CHUNK_WORK each
    # at least _MIN_CHUNKS, even past the partials budget, so wide shapes still run in
    # parallel (2048³: 4 × 32 MiB of float64 dW partials; with 1 chunk: serial, 4.0 s)
    n = min(n, max(_MIN_CHUNKS, min(_MAX_CHUNKS, _PARTIAL_BYTES // (8 * row_stride))))
    rows = -(-N // max(n, 1))  # nearly equal chunks
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
def _chunk_grads(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, want):
    # rows [start, stop) → dx, dy rows; dW_part (K·M,) = Σ_n x[n,k]·g[n,m]; returns Σ z².
    # want (WANT_* bits) picks the gradients written.  The loops that sum f and dW are
    # the same code for every want, outside its branches (dy's row goes to a sink where
    # dy is not wanted): the same bits whatever is asked.
    K = np.uint64(W.shape[0])
    M = np.uint64(W.shape[1])
    h = np.empty(W.shape[1], np.float64)
    g = np.empty(W.shape[1], np.float64)
    # f in M partial sums, column m's over the rows in order, added after the rows: an
    # element's sum needs no reassociation.  A sum over m inside the row loop, which also
    # stores g and dy, took LLVM's vector path (another order of f's terms) or its scalar
    # one by a run-time check of how far apart h, g, y and dy lay: f's bits followed the
    # heap (918×0×8 float64: its last bits moved call to call; tests/test_determinism.py)
    fm = np.zeros(W.shape[1], np.float64)
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
            fm[m] += z * z
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
    for m in range(M):  # a loop that stores nothing: its order is M's alone
        f += fm[m]
    return f


# ------------------------------------------------------------ public kernels
# The C functions chunks.py's drivers call on each chunk (jit.cfunc): pointers in (start
# and stop, K, M and want beside them), the arrays rebuilt as views over the rows up to
# stop, and the chunk functions above run on them.  A view of a gradient not wanted is
# empty, as the array it points into may be.

def _grads_rows(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, K, M, want):
    n = np.intp(stop)
    return _chunk_grads(carray(dx, (n if want & WANT_DX else 0, K)), carray(dW_part, K * M + 1),
                        carray(dy, (n if want & WANT_DY else 0, M)), carray(x, (n, K)),
                        carray(W, (K, M)), carray(y, (n, M)), relu_grad_at_zero, start, stop,
                        want)


def _loss_rows(x, W, y, start, stop, K, M):
    # the grads chunk asked for no gradient: f's sum is the same code as every grads call's,
    # so the same bits (a loss loop of its own had given AVX2's 300×0×70 another last bit,
    # dev/products_v42.md 43f; most likely 44e's heap-dependent order, dev/products_v43.md)
    n = np.intp(stop)
    return _chunk_grads(carray(x, (0, K)), np.empty(0), carray(y, (0, M)), carray(x, (n, K)),
                        carray(W, (K, M)), carray(y, (n, M)), 0.0, start, stop, 0)


_PY = {"grads": _grads_rows, "loss": _loss_rows}
_ROWS: dict = {}
_COMPILED: dict = {}


def row_function(name: str, dtype):
    """The C function kernel `name` ("grads" or "loss") runs on each chunk, for dtype,
    compiled (or loaded from the disk cache)."""
    dtype = np.dtype(dtype)
    fn = _ROWS.get((name, dtype))
    if fn is None:
        fn = jit.cfunc_once(_ROWS, (name, dtype), _PY[name], chunks.row_signature(name, dtype),
                            f"the {dtype} row kernels")
    return fn


def cached(name: str, dtype, parallel: bool) -> bool:
    """Whether `kernel` would load from Numba's disk cache (or has compiled here)."""
    dtype = np.dtype(dtype)
    return (name, dtype, parallel) in _COMPILED or (
        chunks.cached(name, dtype, parallel)
        and jit.cached(_PY[name], chunks.row_signature(name, dtype)))


def kernel(name: str, dtype, parallel: bool):
    """The general row kernel `name` ("grads" or "loss") for dtype, serial or parallel: a
    driver of chunks.py with the row function's address bound.

    Compiled on first use (one signature per dtype; read-only inputs share it)
    and cached on disk.

    grads(dx, dW, dy, partials, x, W, y, relu_grad_at_zero, rows_per_chunk, want) -> f
    loss(partials, x, W, y, rows_per_chunk) -> f
    """
    dtype = np.dtype(dtype)
    key = (name, dtype, parallel)
    fn = _COMPILED.get(key)
    if fn is None:
        row = row_function(name, dtype)
        fn = _COMPILED[key] = functools.partial(chunks.driver(name, dtype, parallel),
                                                row.address)
    return fn
