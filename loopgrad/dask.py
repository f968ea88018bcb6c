"""loopgrad on Dask arrays: the same f and gradients for rows spread over a cluster.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M), chunked along N only.

    >>> import dask, loopgrad.dask
    >>> g = loopgrad.dask.grads(x, W, y)      # lazy: Grads of dask arrays
    >>> f, dx, dW, dy = dask.compute(*g)      # one pass over the chunks

The graph, for row chunks c = 0 … C−1:

    part[c]    = loopgrad.grads(x[c], W, y[c])   one task per chunk: f, dx, dW, dy of its rows
    dx[c]      = part[c].dx,  dy[c] = part[c].dy  (the same arrays, no copy)
    leaf[c]    = (part[c].f, part[c].dW)          small, so the tree moves no rows between workers
    tree       = leaves summed in groups of SPLIT_EVERY consecutive nodes, left to right,
                 level by level, in float64
    f, dW      = the root; dW cast to the inputs' dtype

Everything downstream of a chunk hangs off its one `part` task, so
`dask.compute(f, dx, dW, dy)` reads and computes each chunk once.  The tree's
shape depends only on the number of chunks and every node adds its inputs in
list order, so f and dW are bitwise the same run to run, on any scheduler, for
a given chunking.  Against in-memory `loopgrad.grads` they differ by the
rounding of a different summation order: f and dW by a few float64 roundings
of their sums, plus, for float32 inputs, one float32 rounding of each chunk's
dW (the public `loopgrad.grads` returns dW in the inputs' dtype; the float64
tree starts from those).  dx and dy are row-local: no sum crosses rows.

Importing loopgrad does not import this module, nor Dask.
"""

import contextlib
import math
import operator
import os
import sys
import warnings

import dask
import dask.array as da
import numpy as np
from dask.array.core import PerformanceWarning
from dask.base import tokenize

from . import _inputs
from . import api as _api

__all__ = ["grads", "loss", "numba_threads_per_task", "SPLIT_EVERY"]

# Nodes per tree reduction step: fixed, so the order of the float64 sums is a
# function of the chunk count alone.
SPLIT_EVERY = 8


# ------------------------------------------------------------------ inputs

def _check_numba_threads(n):
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"numba_threads must be None or a positive int, got {n!r}")
    return n


def _check_known(name, a):
    if any(math.isnan(s) for s in a.shape):
        raise ValueError(f"{name} has unknown chunk sizes (shape {a.shape}); call "
                         f"{name}.compute_chunk_sizes() first")


def _single_chunk_along(name, a, axis, what):
    # One chunk across K (x, W) or M (W, y): rechunk, with a warning, if not.
    if len(a.chunks[axis]) <= 1:
        return a
    warnings.warn(
        f"{name} has {len(a.chunks[axis])} chunks across its {what} (chunks "
        f"{a.chunks[axis]}); loopgrad.dask needs one, so it was rechunked with "
        f"{name}.rechunk({{{axis}: -1}}). Chunk along rows only to avoid this.",
        PerformanceWarning, stacklevel=4)
    return a.rechunk({axis: -1})


def _as_dask(x, W, y):
    """x, W, y as dask arrays: x, y with the same row chunks and one chunk across K, M; W one chunk."""
    arrays = {}
    for name, a in (("x", x), ("W", W), ("y", y)):
        if isinstance(a, da.Array):
            _inputs.check_meta(name, a.shape, a.dtype)
            _check_known(name, a)
        else:
            a = _inputs.host_array(name, a)  # NumPy (or torch CPU) in, NumPy out
        arrays[name] = a
    x, W, y = arrays["x"], arrays["W"], arrays["y"]
    _inputs.check_shapes(x, W, y)
    # NumPy rows are wrapped with the other array's row chunks, else Dask's auto size
    rows = next((a.chunks[0] for a in (x, y) if isinstance(a, da.Array)), "auto")
    if not isinstance(x, da.Array):
        x = da.from_array(x, chunks=(rows, -1))
    if not isinstance(y, da.Array):
        y = da.from_array(y, chunks=(x.chunks[0], -1))
    if not isinstance(W, da.Array):
        W = da.from_array(W, chunks=-1)
    x = _single_chunk_along("x", x, 1, "K columns")
    y = _single_chunk_along("y", y, 1, "M columns")
    W = _single_chunk_along("W", _single_chunk_along("W", W, 0, "K rows"), 1, "M columns")
    if y.chunks[0] != x.chunks[0]:
        y = y.rechunk({0: x.chunks[0]})  # documented: y follows x's row chunks
    return x, W, y


# ------------------------------------------------------------ thread budget

def numba_threads_per_task() -> int:
    """Numba threads one chunk task uses by default, where it runs.

    max(1, cores // T), T being the tasks Dask runs at once in this process:
    a dask.distributed worker's `nthreads`, else Dask's `num_workers` setting
    or, unset, its default pool size, the core count (threaded and processes
    schedulers).  Capped by OMP_NUM_THREADS when set: Dask's nanny starts
    every worker process with OMP_NUM_THREADS=1 (`distributed.nanny.pre-spawn-environ`)
    so that native thread pools do not multiply with worker processes; loopgrad
    treats Numba's pool like those.  So worker threads × Numba threads ≤ cores.
    """
    from dask.system import CPU_COUNT  # honours CPU affinity and cgroup quotas

    tasks = None
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        try:
            tasks = distributed.get_worker().state.nthreads
        except ValueError:  # not inside a worker
            pass
    if tasks is None:
        tasks = dask.config.get("num_workers", None) or CPU_COUNT
    n = max(1, CPU_COUNT // max(1, int(tasks)))
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) >= 1:
        n = min(n, int(omp))
    return n


@contextlib.contextmanager
def _numba_threads(n):
    # numba.set_num_threads is per calling thread: set it for this task, then
    # put back what the (reused) Dask thread had before.
    import numba

    want = min(n or numba_threads_per_task(), numba.config.NUMBA_NUM_THREADS)
    before = numba.get_num_threads()
    if want == before:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(before)


# ------------------------------------------------------------- chunk tasks

def _block(a):
    # blockwise hands over the blocks along a contracted index (K, M) as a list, here of
    # one block.  Unwrapped rather than concatenate=True, which copies even a single block.
    while isinstance(a, list):
        (a,) = a
    return a


def _chunk_grads(x, W, y, relu_grad_at_zero, numba_threads, wrt):
    # rows of one chunk → (f, dx, dW in float64, dy), None where not in wrt: loopgrad's
    # fused kernel, once
    x, W, y = _block(x), _block(W), _block(y)
    with _numba_threads(numba_threads):
        g = _api.grads(x, W, y, wrt=wrt, relu_grad_at_zero=relu_grad_at_zero)
    return g.f, g.dx, None if g.dW is None else g.dW.astype(np.float64), g.dy


def _chunk_loss(x, W, y, numba_threads):
    x, W, y = _block(x), _block(W), _block(y)
    with _numba_threads(numba_threads):
        return np.array([_api.loss(x, W, y)])


def _leaf_grads(part):
    return part[0], part[2]


def _leaf_loss(part):
    return float(part[0])


def _add_grads(*nodes):
    # (f, dW) partials, added in list order in float64 (dW None: not asked for)
    f, dW = nodes[0][0], None if nodes[0][1] is None else nodes[0][1].copy()
    for nf, ndW in nodes[1:]:
        f += nf
        if dW is not None:
            dW += ndW
    return f, dW


def _add_loss(*nodes):
    f = nodes[0]
    for nf in nodes[1:]:
        f += nf
    return f


def _tree(leaves, add, name):
    """Root of a SPLIT_EVERY-ary tree over `leaves`: consecutive groups, left to right."""
    level = 0
    while len(leaves) > 1:
        leaves = [dask.delayed(add, pure=True)(*leaves[i:i + SPLIT_EVERY],
                                               dask_key_name=(name, level, i // SPLIT_EVERY))
                  for i in range(0, len(leaves), SPLIT_EVERY)]
        level += 1
    return leaves[0]


def _chunk_parts(func, name, x, W, y, meta, **kwargs):
    # one task per row chunk: block c of the result is func(x[c], W, y[c])
    return da.blockwise(func, "n", x, "nk", W, "km", y, "nm", name=name,
                        adjust_chunks={"n": 1}, meta=meta, **kwargs)


# ------------------------------------------------------------------ public

def grads(x, W, y, *, wrt=_inputs.WRT_ALL, relu_grad_at_zero: float = 0.0,
          numba_threads: int | None = None) -> _api.Grads:
    """f = Σ (max(x·W, 0) − y)² and its gradients over Dask arrays, lazily.

    Parameters
    ----------
    x : dask array (N, K), y : dask array (N, M)
        Chunked along rows only, float32 or float64.  y is rechunked to x's
        row chunks if they differ; chunks across K or M are merged with
        `rechunk` and a PerformanceWarning.  NumPy arrays are accepted and
        wrapped (with the other array's row chunks, or Dask's automatic size).
    W : array (K, M)
        A NumPy array or a dask array (merged into one chunk).
    wrt : str or tuple of str, default ("x", "W", "y")
        As in `loopgrad.grads`: the gradients to compute; the others are None
        and no task computes them.
    relu_grad_at_zero : float in [0, 1]
        As in `loopgrad.grads`.
    numba_threads : int or None
        Numba threads each chunk task uses; None: `numba_threads_per_task()`
        where the task runs, so that Dask's threads × Numba's ≤ cores.

    Returns
    -------
    loopgrad.Grads(f, dx, dW, dy) of dask arrays
        f: 0-d float64; dx, dy: chunked like x and y; dW: (K, M), one chunk;
        None for those not in `wrt`.
        `dask.compute(*g)` computes all four reading each chunk once; f is
        bitwise reproducible for a given chunking on any scheduler.
    """
    a0 = _inputs.check_relu_grad_at_zero(relu_grad_at_zero)
    want = _inputs.check_wrt(wrt)
    names = _inputs.WRT_NAMES[want]
    threads = _check_numba_threads(numba_threads)
    x, W, y = _as_dask(x, W, y)
    token = tokenize(x, W, y, a0, threads, names)
    parts = _chunk_parts(_chunk_grads, f"loopgrad-grads-{token}", x, W, y,
                         np.empty((0,), object), relu_grad_at_zero=a0, numba_threads=threads,
                         wrt=names)
    meta = np.empty((0, 0), x.dtype)
    dx, dy = (da.map_blocks(operator.getitem, parts, i, new_axis=1, chunks=a.chunks,
                            dtype=a.dtype, meta=meta, name=f"loopgrad-{n}-{token}")
              if want & bit else None
              for i, n, a, bit in ((1, "dx", x, _inputs.WANT_DX), (3, "dy", y, _inputs.WANT_DY)))
    leaves = [dask.delayed(_leaf_grads, pure=True)(p, dask_key_name=(f"loopgrad-leaf-{token}", c))
              for c, p in enumerate(parts.to_delayed(optimize_graph=False).ravel())]
    K, M = W.shape
    if not leaves:  # no chunks at all (a dask array with zero blocks)
        leaves = [dask.delayed((0.0, np.zeros((K, M)) if want & _inputs.WANT_DW else None))]
    root = _tree(leaves, _add_grads, f"loopgrad-tree-{token}")
    f = da.from_delayed(root[0], (), np.float64, name=f"loopgrad-f-{token}")
    dW = (da.from_delayed(dask.delayed(np.asarray)(root[1], x.dtype), (K, M), x.dtype,
                          name=f"loopgrad-dW-{token}") if want & _inputs.WANT_DW else None)
    return _api.Grads(f, dx, dW, dy)


def loss(x, W, y, *, numba_threads: int | None = None):
    """f = Σ (max(x·W, 0) − y)² over Dask arrays, lazily: a 0-d float64 dask array.

    Takes the inputs of `grads` (same checks, rechunking and wrapping); one
    `loopgrad.loss` task per row chunk, summed by the same fixed tree.
    """
    threads = _check_numba_threads(numba_threads)
    x, W, y = _as_dask(x, W, y)
    token = tokenize(x, W, y, threads)
    parts = _chunk_parts(_chunk_loss, f"loopgrad-loss-{token}", x, W, y,
                         np.empty((0,), np.float64), numba_threads=threads)
    leaves = [dask.delayed(_leaf_loss, pure=True)(p, dask_key_name=(f"loopgrad-leaf-{token}", c))
              for c, p in enumerate(parts.to_delayed(optimize_graph=False).ravel())]
    root = _tree(leaves or [dask.delayed(0.0)], _add_loss, f"loopgrad-tree-{token}")
    return da.from_delayed(root, (), np.float64, name=f"loopgrad-f-{token}")
