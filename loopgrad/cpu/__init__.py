"""The CPU backend: f and its gradients by Numba kernels, chosen by shape.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

    grads(x, W, y, relu_grad_at_zero, want) -> (f, dx, dW, dy)
    loss(x, W, y) -> f

take validated arrays (loopgrad.api: C-contiguous, native float32 or
float64, shapes that fit) and allocate the outputs.  `want` (loopgrad._inputs'
WANT_* bits) names the gradients to compute; the others are None, and no
kernel computes or stores them.  f has the same bits whatever `want` is, and so
has every gradient computed (one exception: where float32 sums overflow, see
`grads`).  Three kernel families:

    rows.py     the general row kernels, float64 throughout: the fallback, and K ≤ 3 on
                entries narrower than AVX2
    skinny.py   row kernels generated for one small (K, M): K·M ≤ 16, and on AVX2 and
                AVX-512 K, M ≤ 8 (rowvec.py's, a vector a row, also below K·M = 16 where
                rowvec.applies, past K = 8 x's row in 16 lanes, and with AVX-512 past
                M = 8 y's row, K = 4 to 64 for float32 and to 14 for float64, and
                at M = 17 to 32 K = 4 to 12 for float32), K ≤ 3 with
                M > 8 (rowblocks.py's, blocks of 8 lanes) and M = 1, 2 past K = 8
                (on AVX2 M = 2 from 8, float32's M = 1 from 6), M = 3 and 4 from K = 16
                (10, 12 with AVX-512, float32 from 9; on AVX2 8),
                M = 5 to 8 from 16 (on AVX2 from K = 16 to 20; float32 M = 5 with
                AVX-512 from 13 and M = 6 to 8 from 25, where x's rows of 17 to 24 in
                32 lanes are rowvec.py's, float64 M = 5 to 7 on AVX2 from 9 to 16)
                (rowdots.py's, dot products along the row)
    tiled.py    register-tiled products: K ≥ 4 and K·M > 16, but for those

A kernel not yet in Numba's disk cache compiles in a child process
(background.py) while the calls run something that gives its exact bits
without its compile: the tiled kernels' order of operations in plain loops
(ordered.py), then their interpreted driver; the serial row kernel in place
of the parallel one (tiled_kernel, row_kernel).

The tiled kernels sum h and dx in the input dtype, and so do rowvec.py's,
rowblocks.py's and rowdots.py's rows for float32 inputs; where that could overflow or
meets inf and NaN they return NaN, and the call is recomputed by float64 row kernels
(torch's pattern of NaN and inf on every path).
"""

import os
import sys
import time

import numba
import numpy as np

from .._inputs import STREAM, WANT_ALL, WANT_DW, WANT_DX, WANT_DY
from . import background, caches, chunks, jit, machine, ordered, parallel, rowblocks, rowdots, \
    rowgroups, rows, rowvec, shaped, skinny, tiled, workspace

# From K = 4 on (past the generated skinny kernels), the register-tiled products
# beat the general row kernel 1.3–4× at 10⁵ rows (and 8–10× on square shapes);
# at K ≤ 2 the row kernel's loop over M wins, at K = 3 it is close
# (dev/tiled_v7.md, "crossover").
TILED_MIN_K = 4
# Multiply-adds under which the tiled kernels run serially: a parallel region
# costs more than it saves (bitwise the same result either way).
TILED_PARALLEL_WORK = 1 << 16

# Calls that move at least a sixteenth of the L3 and STREAM_MIN_BYTES (x and y read, dx
# and dy written) have the tiled kernels (and rowvec.py's rows, rows of a multiple of 16
# bytes: dev/products_v26.md 27a) store dx and dy past the caches: non-temporal
# stores of whole lines, without reading each line before it is written, where the
# output starts on a cache line (fresh results do; np.empty's arrays, given as out=, do
# not).  On the 2-core Xeon guest (480 MiB of L3), fresh results at 2 threads:
# 10⁶×16×16 15.3 → 12.1 ms, 4·10⁵×16×16 6.1 → 4.5, 2·10⁵×32×32 6.4 → 5.3, 10⁵×64×64 9.4 →
# 8.7; the compute-bound shapes unchanged (dev/products_v16.md 17g).  Only on tiles whose
# rows are whole lines (tiled.streams_rows): with AVX2's former 12×8 tile (rows of 8
# float32s) dx stayed cached, and dy streamed alone made 10⁶×16×16 25 % slower.  No value
# changes.
STREAM_MIN_BYTES = 24 << 20
_stream_from = None  # bytes: the threshold, from this machine's L3 on the first call


def streams(N: int, K: int, M: int, dtype) -> bool:
    """Whether an N×K×M call's tiled kernel stores dx and dy past the caches: x and y read
    and dx and dy written come to a sixteenth of the L3 and STREAM_MIN_BYTES."""
    global _stream_from
    if _stream_from is None:
        l3 = caches.geometry().get("L3", {}).get("bytes") or 0
        _stream_from = max(STREAM_MIN_BYTES, l3 // 16)
    return 2 * (N * K + N * M) * np.dtype(dtype).itemsize >= _stream_from


_NAN = float("nan")
_CHOSEN: dict = {}  # (name, dtype, parallel, K, M) → row kernel: one lookup per call


def is_tiled(K: int, M: int, dtype) -> bool:
    """Whether an N×K×M problem with inputs of dtype goes to the tiled kernels rather than
    the row kernels (the dtype matters at a few (K, M) only: rowvec.Y_LONG_K); M = 0 has no
    product to tile (tiled.plan divides by K·M), and goes to the rows as in `grads`."""
    return K >= TILED_MIN_K and M > 0 and not skinny.covers(K, M, dtype)


def narrow_rows(K: int, M: int, dtype) -> bool:
    """Whether (K, M) in dtype runs rowvec.py's, rowblocks.py's or rowdots.py's float32
    arithmetic, whose rows return NaN where float32 sums could have overflowed or met inf
    and NaN, and the call then runs again on the same rows in float64 arithmetic
    (`_float64_rows`)."""
    return dtype == np.float32 and skinny.along_row(K, M, dtype)


def _float64_rows(name: str, dtype, parallel: bool, K: int, M: int, want: int = WANT_ALL):
    # where float32 rows along the row refused a call: the same rows in float64 arithmetic
    # (a rare path, compiled here on its first use; the general rows, 5–10× slower at these
    # shapes, where there is no folder for generated source)
    try:
        return skinny.kernel(name, K, M, dtype, parallel, want, exact=True)
    except RuntimeError:
        return row_kernel(name, dtype, parallel, want=want)


def describe(N: int, K: int, M: int, dtype) -> str:
    """The kernel an N×K×M call in dtype runs, in words (bench rows, bug reports)."""
    dtype = np.dtype(dtype)
    entry = machine.entry()
    if is_tiled(K, M, dtype):
        name, variant, _, _ = tiled.plan(N, K, M, dtype)
        t = entry.tiles[variant]
        how = "fused" if name == "grads_fused" else "three-pass"
        if name == "grads_fused" and shaped.applies(K, M) and shaped.enabled():
            how += " (compiled for K, M once hot)"
        return f"tiled {how}, {dtype} {t.MR}×{t.NR} tile ({entry.isa})"
    if skinny.covers(K, M, dtype):
        along = {rowvec: ", a vector a row", rowgroups: ", several rows a vector",
                 rowblocks: ", blocks of 8 along a row",
                 rowdots: ", dot products along a row"}.get(skinny.family(K, M, dtype), "")
        return f"skinny rows K={K} M={M} ({entry.vector_bits}-bit{along})"
    return "general rows (float64)"


def row_kernel(name: str, dtype, parallel: bool, K: int = 0, M: int = 0, want: int = WANT_ALL):
    """The row kernel `name` ("grads" or "loss") for dtype: generated for (K, M) and `want`
    where skinny.covers(K, M, dtype) (10–25× faster), else the general one (rows.kernel's
    arguments; pass it the same `want`).

    A parallel kernel not in the disk cache yet is compiled by a child process (1–2 s
    on an empty cache, background.py), and until it is there the call gets the serial
    kernel, which gives bitwise its results and compiles in about half the time.  The
    serial kernel compiles before the child starts, so that the child finds the row
    function (which the two share) in the cache and compiles only the parallel driver.
    """
    chosen = (name, dtype, parallel, K, M, want)
    fn = _CHOSEN.get(chosen)
    if fn is None:
        if parallel and not _parallel_rows_ready(name, dtype, K, M, want):
            return row_kernel(name, dtype, False, K, M, want)
        fn = _CHOSEN[chosen] = _compile_rows(name, dtype, parallel, K, M, want)
        if parallel:
            _TWINS[chosen] = lambda: _rows_cached(name, dtype, False, K, M, want) \
                and row_kernel(name, dtype, False, K, M, want)
    return fn


def _rows_cached(name: str, dtype, parallel: bool, K: int, M: int, want: int) -> bool:
    # whether _compile_rows would load the row kernel from the disk cache (or has it here);
    # RuntimeError where there is no writable folder for the generated source
    return skinny.cached(name, K, M, dtype, parallel, want) if skinny.covers(K, M, dtype) \
        else rows.cached(name, dtype, parallel)


def _parallel_rows_ready(name: str, dtype, K: int, M: int, want: int) -> bool:
    # whether row_kernel may compile (or load) the parallel kernel now; if not, its compile
    # is started in a child process (once: a compile that ended or failed is done here)
    dtype = np.dtype(dtype)
    key = ("rows", name, dtype.name, K, M, want)
    if background.busy(key):
        return False
    if background.done(key) or background.failed(key):
        return True
    try:
        ready = _rows_cached(name, dtype, True, K, M, want)
    except RuntimeError:  # no writable folder for the generated source: compile here, as before
        return True
    if not ready:
        row_kernel(name, dtype, False, K, M, want)  # the row function into the cache first
        argv = [sys.executable, "-m", "loopgrad.cpu.compile_one", *map(str, key)]
        background.start(key, lambda: _compile_rows(name, dtype, True, K, M, want),
                         argv if sys.executable else None)
    return ready


def _compile_rows(name: str, dtype, parallel: bool, K: int, M: int, want: int):
    # the row kernel row_kernel picks, compiled or loaded now (compile_one runs it in a child)
    if skinny.covers(K, M, dtype):
        try:
            return skinny.kernel(name, K, M, dtype, parallel, want)
        except RuntimeError:  # no writable folder for the generated source
            pass
    return rows.kernel(name, dtype, parallel)


def tiled_kernel(name: str, variant: str, par: bool):
    """(kernel, whether it runs in parallel) for tiled kernel `name`, serial or parallel.

    Compiled, or in the disk cache: that kernel.  Otherwise (an empty cache) a child
    process compiles it into the disk cache for the calls after (background.py), and
    this call runs a kernel with its exact bits that needs no compile of its own (`_cold`).
    """
    key = (name, variant, par)
    if key in _READY:
        return tiled.kernel(name, variant, par), par
    if background.busy(key):  # not ready: the child is still at it
        return _cold(name, variant, par), False
    # a compile that ended (in the cache now: loaded) or failed (compiled here, in the
    # foreground, where its error reaches the caller) is not started again
    if background.done(key) or background.failed(key) or tiled.ready(name, variant, par):
        _READY.add(key)
        if par:
            _TWINS[key] = lambda: tiled.ready(name, variant, False) \
                and tiled_kernel(name, variant, False)
        return tiled.kernel(name, variant, par), par
    isa = machine.entry().isa
    argv = [sys.executable, "-m", "loopgrad.cpu.compile_one", name, variant,
            "1" if par else "0", isa] if sys.executable else None  # None: in a thread
    background.start(key, lambda: tiled.kernel(name, variant, par, isa), argv)
    jit.announce(f"the {variant.split('-')[0]} tiled kernels", jit.writable(jit.GENERATED_FOLDER),
                 "in a background process (calls until then run loops with the same results)")
    return _cold(name, variant, par), False


def shaped_kernel(variant: str, K: int, M: int, par: bool, now: bool = False):
    """The fused kernel specialized to (K, M) (shaped.py), serial or parallel, where it is
    ready: compiled here, or in the disk cache at the first call at the shape.  Else None
    (the caller runs the generic kernel: the same bits), and once the calls at the shape
    have spent shaped.HOT_S in it (the caller adds up `_SPENT`), its compile starts in a
    child process (once; one that failed is not tried again).  now: compiled (or loaded)
    here, now."""
    key = ("shaped", variant, par, K, M)
    if key in _READY:
        return shaped.kernel(variant, K, M, par)
    first = key not in _SPENT
    if first:
        _SPENT[key] = 0.0
    if now or (first and shaped.ready(variant, K, M, par)) or background.done(key):
        _READY.add(key)
        if par:
            _TWINS[key] = lambda: shaped.ready(variant, K, M, False) \
                and shaped_kernel(variant, K, M, False)
        return shaped.kernel(variant, K, M, par)
    if _SPENT[key] < shaped.HOT_S or background.busy(key) or background.failed(key):
        return None
    isa = machine.entry().isa
    argv = [sys.executable, "-m", "loopgrad.cpu.compile_one", "shaped", variant,
            "1" if par else "0", isa, str(K), str(M)] if sys.executable else None
    background.start(key, lambda: shaped.kernel(variant, K, M, par, isa), argv)
    return None


def _cold(name: str, variant: str, par: bool):
    # the tiled kernel's bits while it compiles: its serial driver run by the interpreter
    # over its compiled pieces once the child has them in the disk cache (tiled.driver:
    # 1.0–1.6× the warm serial kernel, dev/cold_v11.md), before that the same order of
    # operations in plain loops that compile in about a second (ordered.py; in Python
    # threads where the kernel would run in parallel)
    if tiled.pieces_ready(name, variant):
        return tiled.driver(name, variant)
    return ordered.kernel(name, variant, numba.get_num_threads() if par else 1)


_READY: set = set()
_SPENT: dict = {}  # ("shaped", variant, par, K, M) → seconds in the generic kernel at the shape


def specialize(N: int, K: int, M: int, dtype) -> bool:
    """Compile (or load) now the fused kernel specialized to (K, M) that an N×K×M call
    would run once its shape is hot (`shaped_kernel`), where there is one; whether there
    is (the bench's first call waits for it, as for the kernels that call compiled)."""
    dtype = np.dtype(dtype)
    variant = _shaped_variant(K, M, dtype, N) if shaped.enabled() else None
    if variant is None:
        return False
    par = N * K * M >= TILED_PARALLEL_WORK and parallel.allowed()
    tiled_kernel("grads_fused", variant, par)  # its modules first: the generic kernel's
    background.wait()
    return shaped_kernel(variant, K, M, par, now=True) is not None


# ------------------------------------------------------------------ forks (parallel.py)

# The serial counterpart of each parallel kernel this process has run, as a function that
# loads it from the disk cache if it is there: key → function
_TWINS: dict = {}


def _load_twins() -> None:
    """Before a fork under GNU OpenMP, whose child runs the serial kernels: load them here.

    Loading compiled code in the child would take libgcc's unwinder lock (LLVM registers
    the code's unwind tables), which a thread of this process may hold at the fork, one
    that is exiting (pthread_exit unwinds its stack; Python's join returns before that
    ends): the child then waits for it forever.  Seen once in docs/threads.md's fork after
    a thread pool; with a thread looking up unwind tables throughout, 2 hangs in 300
    forks, none once the twins load here (dev/products_v28.md 29a).  A serial kernel not
    in the disk cache is left to the child, which compiles it into the cache as before,
    and this process loads it at a later fork.
    """
    if not parallel.forks_serial():
        return
    for key, load in list(_TWINS.items()):
        try:
            if load():
                _TWINS.pop(key, None)
        except Exception:  # noqa: BLE001 - a fork must not fail: the child loads it then
            pass


os.register_at_fork(before=_load_twins)


def grads(x, W, y, relu_grad_at_zero: float, want: int = WANT_ALL, out=(None, None, None)):
    """(f, dx, dW, dy) for validated arrays: f a float64, the gradients `want` names new
    arrays of x's dtype (or the arrays of `out`, validated by the caller), the others None.

    f, and each gradient computed, has the bits of the call with every gradient, except
    where the float32 kernels' sums of dW overflow or meet an infinite input (an h of −inf
    that the ReLU clips, f finite): a call with dW then recomputes in float64 (the row
    kernels), one without dW cannot see it and keeps its float32 h, dx and dy.
    """
    N, K = x.shape
    M = W.shape[1]
    dt = x.dtype
    gx, gW, gy = out
    # fresh dx and dy placed in their pages away from the rows loaded as they are stored
    # (4K aliasing: workspace.page_offset)
    dx = gx if gx is not None else workspace.output((N, K) if want & WANT_DX else (0, 0), dt,
                                                    (x, y))
    dW = gW if gW is not None else workspace.output((K, M) if want & WANT_DW else (0, 0), dt)
    dy = gy if gy is not None else workspace.output((N, M) if want & WANT_DY else (0, 0), dt,
                                                    (y, x, dx) if want & WANT_DX else (y, x))
    f = _NAN
    # is_tiled(K, M, dt), its cheap test first: 10×4×4 takes 3 µs
    if K >= TILED_MIN_K and K * M > skinny.MAX_KM and not skinny.covers(K, M, dt):
        name, variant, nchunks, chunk_rows = tiled.plan(N, K, M, dt)
        par = N * K * M >= TILED_PARALLEL_WORK and parallel.allowed()
        kern, par = tiled_kernel(name, variant, par)
        # the fused kernel compiled for this (K, M), where it is ready, or once the calls at
        # the shape have spent shaped.HOT_S in the generic one (`shaped_kernel`)
        hot = name == "grads_fused" and (name, variant, par) in _READY and shaped.applies(K, M) \
            and shaped.enabled()
        own = shaped_kernel(variant, K, M, par) if hot else None
        if own is not None:
            kern, hot = own, False
        if name == "grads":  # the three-pass kernel: the threads that share its items
            nchunks = numba.get_num_threads() if par else 1
        n64, nT = tiled.scratch(name, variant, N, K, M, nchunks, want=want)
        ws64, wsT = workspace.take(n64, np.float64), workspace.take(nT, dt)
        try:
            # a bit of `want` that changes no value
            stream = STREAM if streams(N, K, M, dt) and tiled.streams_rows(variant) else 0
            t0 = time.perf_counter()
            with parallel.guard(par):
                f = kern(dx, dW, dy, x, W, y, relu_grad_at_zero, nchunks, chunk_rows, ws64, wsT,
                         want | stream)
            if hot:
                _SPENT[("shaped", variant, par, K, M)] += time.perf_counter() - t0
        finally:
            workspace.give(ws64)
            workspace.give(wsT)
    if f != f:  # the row kernels; after the tiled ones, where they give NaN: an input, h
        # or z not finite, or a risk of overflow in their input-dtype sums (tiled.py)
        chunk_rows, nchunks, stride = rows.plan(N, K, M)
        partials = rows.partials_buffer(nchunks, stride)
        # One chunk: the parallel region would cost more than it saves.
        par = nchunks > 1 and parallel.allowed()
        # heeded by rowvec.py's, rowgroups.py's and rowdots.py's rows (rowvec.py's not on
        # every CPU)
        stream = STREAM if streams(N, K, M, dt) and (
            machine.short_rows_stream() or skinny.family(K, M, dt) is not rowvec) else 0
        kern = row_kernel("grads", dt, par, K, M, want)
        with parallel.guard(par):
            f = kern(dx, dW, dy, partials, x, W, y, relu_grad_at_zero, chunk_rows,
                     want | stream)
        if f != f and narrow_rows(K, M, dt):  # float32 rows along the row refused (NaN:
            kern = _float64_rows("grads", dt, par, K, M, want)  # rowvec.guarded)
            with parallel.guard(par):
                f = kern(dx, dW, dy, partials, x, W, y, relu_grad_at_zero, chunk_rows,
                         want | stream)
    return (f, dx if want & WANT_DX else None, dW if want & WANT_DW else None,
            dy if want & WANT_DY else None)


def loss(x, W, y) -> float:
    """f for validated arrays, summed in float64: the forward alone, no gradient work."""
    N, K = x.shape
    M = W.shape[1]
    if is_tiled(K, M, x.dtype):
        par = N * K * M >= TILED_PARALLEL_WORK and parallel.allowed()
        variant = tiled.variant(K, M, x.dtype)
        kern, par = tiled_kernel("loss", variant, par)
        wsT = workspace.take(tiled.scratch("loss", variant, N, K, M, 1)[1], x.dtype)
        try:
            with parallel.guard(par):
                f = kern(x, W, y, wsT)
        finally:
            workspace.give(wsT)
        if f == f:  # else (NaN) not finite: the float64 row kernel decides, as in grads
            return f
    chunk_rows, nchunks, _ = rows.plan(N, K, M)
    partials = rows.partials_buffer(nchunks, rows.CACHE_LINE // 8)
    par = nchunks > 1 and parallel.allowed()
    kern = row_kernel("loss", x.dtype, par, K, M)
    with parallel.guard(par):
        f = kern(partials, x, W, y, chunk_rows)
    if f != f and narrow_rows(K, M, x.dtype):  # as in grads
        kern = _float64_rows("loss", x.dtype, par, K, M)
        with parallel.guard(par):
            f = kern(partials, x, W, y, chunk_rows)
    return f


# --------------------------------------------------------- compiling ahead (`loopgrad compile`)

def warm_units(dtypes=("float32", "float64"), families=("rows", "skinny", "tiled"),
               wants=(WANT_ALL, WANT_DW), shapes=()) -> list:
    """Every kernel this CPU's shapes can use, as units of work that `warm` compiles: the
    skinny rows for each choice of gradients in `wants` (WANT_* bits; by default all three,
    and W's alone, which a training step asks for), the others take any choice; and for
    each (K, M) of `shapes` that has one, the fused kernel compiled for it (shaped.py),
    last: it imports its tile's modules, which the tiled units compile.

    Each unit holds all the kernels of its generated module (or rows.py's row
    functions, or chunks.py's drivers, which both row families share), so that units
    can compile in parallel processes without two of them writing the same function's
    cache index.
    """
    dtypes = tuple(np.dtype(d).name for d in dtypes)
    units = []
    if "rows" in families or "skinny" in families:
        units.append(("row drivers", dtypes))
    if "rows" in families:
        units.append(("rows", dtypes))
    if "skinny" in families:
        mine = {d: skinny.shapes(d) for d in dtypes}  # each dtype's modules' (K, M)
        units += [("skinny", tuple(d for d in dtypes if km in mine[d]), *km, tuple(wants))
                  for km in dict.fromkeys(km for d in dtypes for km in mine[d])]
    if "tiled" in families:
        tiles = machine.entry().tiles
        units += [("tiled", (v.split("-")[0],), v) for v in tiles if v.split("-")[0] in dtypes]
    for d in dtypes:
        for K, M in shapes:
            v = _shaped_variant(K, M, d)
            if v:  # and its tile's modules, which it imports, in a unit of their own
                if ("tiled", (d,), v) not in units:
                    units.append(("tiled", (d,), v))
                units.append(("shaped", (d,), K, M))
    return units


def _shaped_variant(K: int, M: int, dtype, N: int = 1 << 20) -> "str | None":
    # the tile whose fused kernel shaped.py compiles for (K, M) in dtype, if an N×K×M call
    # runs the fused kernel (the default N: wherever a long one would)
    if not (is_tiled(K, M, dtype) and shaped.applies(K, M)):
        return None
    name, variant, _, _ = tiled.plan(N, K, M, dtype)
    return variant if name == "grads_fused" else None


def warm(unit) -> str:
    """Compile (or load from the disk cache) the kernels of one `warm_units` unit; its label."""
    family, dtypes = unit[0], unit[1]
    if family == "shaped":
        for par in (False, True):
            shaped.kernel(_shaped_variant(unit[2], unit[3], dtypes[0]), unit[2], unit[3], par)
        return f"fused kernel for K = {unit[2]}, M = {unit[3]} ({dtypes[0]})"
    if family == "tiled":
        for par in (False, True):
            for name in ("grads_fused", "grads", "loss"):
                tiled.kernel(name, unit[2], par)
        return f"tiled kernels, {unit[2]} tile"
    for dtype in dtypes:  # row functions (the drivers, which they share, are a unit alone)
        for name in ("grads", "loss"):
            if family == "skinny":
                for want in (unit[4] if name == "grads" else (WANT_ALL,)):
                    skinny.row_function(name, unit[2], unit[3], dtype, want)
            elif family == "rows":
                rows.row_function(name, dtype)
            else:
                for par in (False, True):
                    chunks.driver(name, dtype, par)
    where = {"rows": "general row kernels", "row drivers": "row kernels' drivers"}
    where = where.get(family) or f"row kernels for K = {unit[2]}, M = {unit[3]}"
    return f"{where} ({', '.join(dtypes)})"
