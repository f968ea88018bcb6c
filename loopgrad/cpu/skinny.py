"""Row kernels generated for one small (K, M): every per-row value a scalar.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M); the row code reads them flat.

Why generate source: the general row kernel (rows.py) keeps each row's h and
g in small scratch arrays and dW in an accumulator array; LLVM cannot prove
those don't alias the outputs, so every update goes through memory and
nothing vectorizes (about 20 ms at 10⁶×4×4 float32).  Written out for a
fixed K and M, the row is straight-line code on scalars: W in K·M scalars,
dW in K·M scalar accumulators, and the loop over rows is one LLVM can
vectorize, as many rows at a time as the table entry's vector width holds
float64s (8 at 512 bits), with interleaved loads and stores (the row stride
is a constant).  Indices are unsigned, so Numba adds no
negative-index wraparound selects (which block vectorization).

The arithmetic is the same as rows.py's (float64 throughout, g by
_scalar.relu_backward's rule, spelled out inline); only the order of the f
and dW sums within a chunk differs (reassociated into vector lanes, the same
way every run).  Chunks, and the drivers that add their sums in a fixed order,
are rows.py's (chunks.py).

Where a row of x and of y fits one vector (K, M ≤ 8 on the AVX2 and AVX-512 entries, from
K·M = 8 on AVX2 and from K·M = 16 or M = 8 with AVX-512, and past K = 8 x's row or past
M = 8 y's row in 16 lanes: rowvec.applies), the generated row
functions call rowvec.py's intrinsics instead, which vectorize along each row: vectors of
rows had their rows shuffled in and out, and 16 dW accumulators in 16 registers (10⁶×4×4 at 2 threads as AVX2: 3.7 → 2.6 ms,
dev/products_v16.md 17e); past K·M = 16 they would need more registers than there are,
and those shapes took the tiled kernels (10⁶×8×8 12.5 → 7 ms, as AVX2 20 → 11 ms,
dev/products_v22.md 23b, 23c); below it, with their prefetch, streamed stores and float32
arithmetic, they are faster than the vectors of rows at the shapes `applies` names
(dev/products_v26.md 27f).  Float32 rows whose K and M are powers of two up to 8, two or
more of them a vector (and with a 3 among K, M ≤ 4, padded: rowgroups.PADDED, 53e), are
rowgroups.py's, several rows a vector (float64 ones rowvec.py's
rows through the same intrinsics where those took them, else LLVM's: 10⁶×4×4 natively
1.9×, as AVX2 1.4× faster, 10⁶×2×2 1.5× and 2.5×: dev/products_v50.md 51b).  K ≤ 3 with
M > 8 calls rowblocks.py's, one module per K (M a run-time value) where the general row
kernel ran them scalar (23f), but for rowvec.py's rows of y's 9 to 15 (`rowvec.short_x`:
dev/products_v51.md 52e), and M = 1, 2 past K = 8 (on AVX2 M = 2 from 8, float32's M = 1
from 6), M = 3 and 4 from K = 16 (with AVX-512 from 10 and 12, float32 inputs from 9; on
AVX2 from 8: dev/products_v31.md 32e, dev/products_v52.md 53c; M = 4 on AVX2 within W's
copy, K·M ≤ 4096) and
M = 5–8 from K = 16 (float32 with AVX-512 M = 6–8 from 25: rowvec.py's rows below; on AVX2
from 16 to 20 by M; float64 on AVX2 M = 5–7 from 9, 10, 16) within W's copy call
rowdots.py's, one module an M for every K (two at M = 3, 4: within W's copy and past it),
where LLVM's vectors of rows (K ≤ 16) and the tiled kernels (mostly padding) ran at a half
or less of the copy ceiling (dev/products_v27.md 28c, 28d; dev/products_v28.md 29b, 29g;
dev/products_v29.md 30g; dev/products_v30.md 31a, 31h–31j; dev/products_v31.md 32c).

Generated modules are written once per (K, M) into a cache folder and
imported from there (jit.load), so Numba's disk cache works for them as for
rows.py.  Only their row functions are generated: each compiles on its own as a
C function (a cfunc, 0.7–1.5 s), which chunks.py's drivers, compiled once per
dtype for every shape, call through its address.  When each (K, M) had drivers
of its own, in which LLVM optimized the row loop again, a module took 15–25 s
to compile and `loopgrad compile` 8–9 minutes (dev/cold_v13.md).
"""

import functools
import hashlib

import numpy as np

from .._inputs import WANT_ALL, WANT_DW, WANT_DX, WANT_DY
from . import chunks, intrinsics, jit, machine, rowblocks, rowdots, rowgroups, rowvec

MAX_KM = 16   # K·M up to this: K·M vector accumulators must fit in registers


def covers(K: int, M: int, dtype=None) -> bool:
    """Whether the (K, M) rows for inputs of dtype are generated here, on this CPU's table
    entry: K·M ≤ MAX_KM, or where a row fits one vector (rowvec.applies: K, M ≤ 8 on AVX2
    and AVX-512, and with AVX-512 K ≤ 16 at M ≥ 3, M ≤ 16 at 4 ≤ K ≤ 64 for float32 and 14
    for float64, M ≤ 32 at 4 ≤ K ≤ 12 for float32), K ≤ 3 (rowblocks.applies: blocks of 8
    lanes, M > 8) or M ≤ 8 past K = 8, or from 16, 17, 18 or 20 (rowdots.applies).  dtype
    None: for either dtype (whether the (K, M) module exists)."""
    return 1 <= K * M <= MAX_KM or along_row(K, M, dtype)


def along_row(K: int, M: int, dtype=None) -> bool:
    """Whether the (K, M) rows for inputs of dtype (None: either) are rowvec.py's,
    rowblocks.py's or rowdots.py's on this CPU's table entry (float32 inputs there take
    float32 arithmetic, and `kernel(..., exact=True)`)."""
    return family(K, M, dtype) is not None


def family(K: int, M: int, dtype=None):
    """The module of intrinsics (rowvec, rowblocks or rowdots) that builds the (K, M) rows
    for inputs of dtype (None: either) along the row on this CPU's table entry, or None."""
    return _along(K, M, machine.entry().vector_bits, dtype)


def _along(K: int, M: int, vector_bits: int, dtype=None):
    # the module of intrinsics that builds the (K, M) rows along the row for inputs of
    # dtype (None: either), or None; rowvec.py's, rowgroups.py's and rowdots.py's bounds
    # depend on the dtype
    if rowdots.applies(K, M, vector_bits, dtype):
        return rowdots
    # (rowvec.py's rows past M = 8 at K ≤ 3 are its short_x ones, which go first)
    if rowblocks.applies(K, M, vector_bits) and not rowvec.applies(K, M, vector_bits, dtype):
        return rowblocks
    if rowgroups.applies(K, M, vector_bits, dtype):
        return rowgroups
    return rowvec if rowvec.applies(K, M, vector_bits, dtype) else None


def _one(K: int, M: int, dtype=None) -> tuple:
    # the (K, M) whose module the (K, M) rows for inputs of dtype share: every M of
    # rowblocks' K shares one (M a run-time value), every K of rowdots' M one (K a run-time
    # value, the module named by the dtype's first K: where float32 takes the dot products
    # from a lower K than float64, the two dtypes' (K, M) there are different modules)
    mod = _along(K, M, machine.entry().vector_bits, dtype)
    if mod is rowblocks:  # named by an M past rowvec.py's short_x rows (M = 9 to 15)
        return K, max(rowvec.LONG, MAX_KM // K + 1)
    if mod is rowdots:  # one module an M, two at M = 3, 4: K·M within W's copy and past it
        return rowdots.module_k(K, M, machine.entry().vector_bits, dtype), M
    return K, M


def shapes(dtype=None) -> list:
    """A (K, M) for every generated module `covers` takes on this CPU's table entry for
    inputs of dtype (None: either), K's order then M's (rowblocks' one module per K by M =
    16, 17 at K = 1, one past the others; rowdots' one module an M by its first K, and at
    M = 3, 4 one past W's copy), but rowvec.py's past K = 16 or M = 16 (float32 with AVX-512: 384
    modules at M = 9 to 16, 144 at K = 4 to 12, 24 at M = 6 to 8, which compile at the first
    call that asks for one: rowvec.applies)."""
    if dtype is None:
        return list(dict.fromkeys(shapes("float32") + shapes("float64")))
    bits = machine.entry().vector_bits
    firsts = [(rowdots.module_k(K, M, bits, dtype), M)  # rowdots' modules' first K, within
              for M in rowdots.MS for K in (0, rowdots.COPIED + 1)]  # W's copy and past it
    return [(K, M) for K in range(1, MAX_KM + 1)
            for M in range(1, max(MAX_KM // K, rowvec.LONG) + 2)
            if covers(K, M, dtype) and _one(K, M, dtype) == (K, M)
            and not (M > rowvec.LONG and _along(K, M, bits, dtype) is rowvec)] + \
        [(K, M) for K, M in dict.fromkeys(firsts)
         if K > MAX_KM and rowdots.applies(K, M, bits, dtype)]

# LLVM options while these kernels compile ({name: (value, LLVM's default)}, jit.settings).
# A row reads and writes 2·(K + M) elements, and the loop vectorizer needs one runtime
# overflow check for each index it cannot prove safe: past 16 checks (about K + M > 8:
# 2×7, 1×9, 8×2 ...) it gave up and those rows ran scalar, 2.4–7.8 GB/s; with 128, 9–17.
# Rows of x or y longer than 8 (1×12, 1×16) also need interleave groups of up to 16
# (LLVM's default stops at 8).  dev/machines_v8.md 10b.
LLVM_OPTIONS = {"vectorize-scev-check-threshold": (128, 16),
                "max-interleave-group-factor": (16, 8)}


def _llvm_options(K: int, M: int, vector_bits: int, dtype=None) -> dict:
    # LLVM_OPTIONS, and the rows per step of the row loop fixed: the interleave count LLVM's
    # cost model picked for the all-gradients kernels on Emerald Rapids (4 for 1×1, 2 up to
    # K·M = 3, else 1; dev/machines_v8.md 11b) and, where LLVM vectorizes the rows (not
    # rowvec.py's, rowblocks.py's or rowdots.py's intrinsics, whose loops it would report
    # on stderr as not vectorized), a float64 vector of rows.  f and dW are summed in lanes
    # of rows, so every `want`'s kernel must take the same rows to its vector loop: left
    # to LLVM, the lighter kernels interleaved more, and the cost of the alias checks that
    # dx's and dy's stores need set the rows a chunk must have before the vector loop runs
    # (24 for 2×2 with every gradient, 16 with dx and dW, 8 with dW alone), so chunks of 8
    # to 31 rows gave other bits of f and dW by `want` (dev/products_v40.md 41a).  With the
    # width forced, that is the vector's rows times the interleave count for every kernel,
    # and no vectorized remainder after it (which the cost model picks per kernel)
    interleave = 4 if K * M == 1 else 2 if K * M <= 3 else 1
    options = {**LLVM_OPTIONS, "force-vector-interleave": (interleave, 0)}
    if _along(K, M, vector_bits, dtype) is None:
        options.update({"force-vector-width": (max(2, vector_bits // 64), 0),
                        "enable-epilogue-vectorization": ("false", "true")})
    return options


_HEADER = '''\
# Generated by loopgrad.cpu.skinny for K = {K}, M = {M} ({want}), compiled for {bits}-bit vectors; do not edit.
# Compiled with the LLVM options {llvm} (skinny.LLVM_OPTIONS).
# Plain functions: skinny.py compiles each as a C function (a cfunc) for a dtype; its
# drivers call them through their address.  select(c, a, b) is `a if c else b` without a
# branch (loopgrad.cpu.intrinsics).
import numpy as np

from loopgrad.cpu.intrinsics import select


def rows(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, K_, M_, want_):
    # rows [start, stop) → dx, dy rows; dW_part[:K·M] = Σ x[n,k]·g[n,m]; returns Σ z²
    # (K_, M_, want_: what the drivers pass every row function; this one is generated
    # for them)
    a0 = relu_grad_at_zero
    drop_nan = a0 == 1.0        # torch.clamp's rule: a NaN h gives g = 0
'''

_ROWS_LOSS = '''

def rows_loss(x, W, y, start, stop, K_, M_):
    # rows [start, stop) → Σ z²
{body}
    return f
'''


def _forward(K: int, M: int, want_g: bool, want_dy: bool) -> list:
    # the lines that compute h, z and f for row n (and g, and dy, where wanted)
    ind = "        "
    L = [f"{ind}i = n * u{K}", f"{ind}j = n * u{M}"]
    L += [f"{ind}x{k} = np.float64(x[i + u{k}])" for k in range(K)]
    for m in range(M):
        terms = " + ".join(f"x{k} * w{k}_{m}" for k in range(K))
        L.append(f"{ind}h{m} = {terms}")  # h[n,m] = Σ_k x[n,k]·W[k,m]
        # max(h, 0) that keeps NaN (intrinsics.select: one select, no branch)
        L.append(f"{ind}z{m} = select(h{m} < 0.0, 0.0, h{m}) - np.float64(y[j + u{m}])")
        L.append(f"{ind}f += z{m} * z{m}")
        if want_g or want_dy:
            L.append(f"{ind}t{m} = 2.0 * z{m}")
        if want_g:  # g = 2·z·relu'(h), torch's select (loopgrad._scalar.relu_backward)
            L.append(f"{ind}g{m} = select(h{m} > 0.0, t{m}, select(h{m} == 0.0, select(a0 == 0.0, "
                     f"0.0, a0 * t{m}), select((h{m} < 0.0) | drop_nan, 0.0, t{m})))")
        if want_dy:
            L.append(f"{ind}dy[j + u{m}] = -t{m}")
    return L


def _source(K: int, M: int, vector_bits: int, want: int = WANT_ALL, dtype=None) -> str:
    # want (the WANT_* bits): the gradients the grads kernel writes; the lines of the
    # others are left out (dW: its K·M accumulators too); dtype: the inputs' (None: either)
    mod = _along(K, M, vector_bits, dtype)  # M = 1 dot products; K ≤ 3 in blocks; a row one
    if mod is not None:                     # vector
        return _on_intrinsics(mod, K, M, vector_bits, want, dtype)
    wdx, wdw, wdy = (bool(want & b) for b in (WANT_DX, WANT_DW, WANT_DY))
    llvm = ", ".join(f"-{k}={v}" for k, (v, _) in _llvm_options(K, M, vector_bits, dtype).items())
    L = [_HEADER.format(K=K, M=M, bits=vector_bits, llvm=llvm, want=_want_name(want))]
    ind = "    "
    for k in range(K):
        for m in range(M):
            L.append(f"{ind}w{k}_{m} = np.float64(W[{k * M + m}])")
            if wdw:
                L.append(f"{ind}d{k}_{m} = 0.0")
    # the unsigned indices as variables: np.uint64(k) at each use is a call for Numba to type
    # per literal (a row function's compile: 4×4 0.8 → 0.5 s, 1×16 1.2 → 1.0; dev/cold_v13.md 13g)
    head = [f"{ind}u{v} = np.uint64({v})" for v in sorted(set(range(max(K, M))) | {K, M})]
    head += [f"{ind}f = 0.0", f"{ind}for n in range(np.uint64(start), np.uint64(stop)):"]
    L += head + _forward(K, M, want_g=wdx or wdw, want_dy=wdy)
    ind = "        "
    for k in range(K):
        if wdx:
            terms = " + ".join(f"g{m} * w{k}_{m}" for m in range(M))
            L.append(f"{ind}dx[i + u{k}] = {terms}")  # dx[n,k] = Σ_m g[n,m]·W[k,m]
        if wdw:
            for m in range(M):
                L.append(f"{ind}d{k}_{m} += x{k} * g{m}")  # dW[k,m] += x[n,k]·g[n,m]
    ind = "    "
    for k in range(K):
        for m in range(M if wdw else 0):
            L.append(f"{ind}dW_part[{k * M + m}] = d{k}_{m}")
    L.append(f"{ind}return f")
    src = "\n".join(L) + "\n"
    loss_body = [f"    w{k}_{m} = np.float64(W[{k * M + m}])" for k in range(K) for m in range(M)]
    src += _ROWS_LOSS.format(body="\n".join(loss_body + head + _forward(K, M, False, False)))
    return src


_ON_INTRINSICS = '''\
# Generated by loopgrad.cpu.skinny for {which} ({want}), compiled for {bits}-bit vectors; do not edit.
# The rows are loopgrad.cpu.{mod}'s intrinsics, {how}.
# They come from the module with digest {deps}: another is another file, so that
# Numba's disk cache, keyed by this file, never serves code built on the old one.
from loopgrad.cpu.{mod} import {make}

_rows = {make}({shape}, {bits_want}{dw}{store}{dxa}{fp}{copy})
_loss = {make}({shape}, 0, loss=True{fp}{copy})
_rows_exact = {make}({shape}, {bits_want}{dw}{store}, narrow=False{copy})
_loss_exact = {make}({shape}, 0, loss=True, narrow=False{copy})


def rows(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, K_, M_, want_):
    # rows [start, stop) → dx, dy rows; dW_part[:K·M] = Σ x[n,k]·g[n,m]; returns Σ z²
    return _rows(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop{m_arg}{flags_arg})


def rows_loss(x, W, y, start, stop, K_, M_):
    # rows [start, stop) → Σ z²
    return _loss(x, W, y, start, stop{m_arg})


def rows_exact(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, K_, M_, want_):
    # rows in float64 arithmetic for float32 inputs too: where `rows` refused (NaN)
    return _rows_exact(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop{m_arg}{flags_arg})


def rows_loss_exact(x, W, y, start, stop, K_, M_):
    return _loss_exact(x, W, y, start, stop{m_arg})
'''


def _on_intrinsics(mod, K: int, M: int, vector_bits: int, want: int, dtype=None) -> str:
    # the module whose row functions call rowvec.py's, rowblocks.py's or rowdots.py's
    # intrinsics; M a run-time argument for rowblocks (one module per K), K for rowdots
    # (one module per M)
    name = mod.__name__.rsplit(".", 1)[1]
    dw = rowvec.dw_rows(K, M, vector_bits) if mod in (rowvec, rowgroups) else 0
    k0 = rowdots.module_k(K, M, vector_bits, dtype) if mod is rowdots else 0
    # past its copy's bound W's columns shuffled out of its rows
    shuffled = mod is rowdots and M >= rowdots.COPY_FROM and not rowdots.copies(K, M)
    make, shape, which, how, arg, flags = {
        "rowvec": ("row_vectors", f"{K}, {M}", f"K = {K}, M = {M}",
                   "vectors along each row", "", ", want_"),
        "rowgroups": ("row_groups", f"{K}, {M}, {vector_bits}", f"K = {K}, M = {M}",
                      "several rows a vector (float64 inputs rowvec.py's rows)", "", ", want_"),
        "rowblocks": ("row_blocks", K, f"K = {K}, any M > 8",
                      "blocks of 8 lanes along each row, M at run time", ", M_", ""),
        "rowdots": ("row_dots", f"{vector_bits}, {M}", f"any K ≥ {k0}, M = {M}",
                    "M dot products along each row, K at run time", ", K_", ", want_"),
    }[name]
    return _ON_INTRINSICS.format(
        which=which, want=_want_name(want), bits=vector_bits, mod=name, deps=_digest(mod),
        bits_want=want, how=how, make=make, shape=shape, m_arg=arg, flags_arg=flags,
        dw=(f", dw_block={dw}" + (", dw_lanes=8" if vector_bits >= 512 else "") +
            (", dw_across=True" if rowvec.dw_across(K, M, vector_bits) else "")) if dw else "",
        copy=", copy=False" if shuffled else "",
        dxa=", dx_across=True" if mod is rowvec and rowvec.dx_across(K, M, vector_bits) else "",
        fp=", f_parts=True" if mod is rowvec and rowvec.f_parts(M, vector_bits) else "",
        # rows that fill part of a vector: AVX2's masked stores (VMASKMOVPS) cost AMD's Zen
        # far more than the row's parts as plain stores (as AVX2 on Zen 4 10⁶×6×6 7.3 →
        # 4.1 ms: dev/products_v42.md 43a, 43c); AVX-512's, by a mask register, less
        store=", masked_store=False" if vector_bits < 512
        and (mod not in (rowvec, rowgroups) or rowvec.partial(K, M)) else "")


@functools.lru_cache(maxsize=None)
def _digest(mod) -> str:
    # mod's source and that of the modules its intrinsics are built from (rowblocks.py,
    # rowdots.py and rowgroups.py take rowvec.py's guard, rowgroups.py its rows too; all take
    # intrinsics.py's pieces)
    h = hashlib.sha256()
    for m in dict.fromkeys((mod, rowvec, intrinsics)):
        with open(m.__file__, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:12]


def _want_name(want: int) -> str:
    # "dx, dW, dy" for WANT_ALL ... "f only" for 0
    return ", ".join(n for n, b in (("dx", WANT_DX), ("dW", WANT_DW), ("dy", WANT_DY))
                     if want & b) or "f only"


def module(K: int, M: int, want: int = WANT_ALL, dtype=None):
    """The generated row module for (K, M), the gradients `want` names and inputs of dtype
    (None: either; the two differ where only float32 takes rowdots.py's rows), for the
    vector width of this CPU's table entry."""
    K, M = _one(K, M, dtype)
    name = f"rows_k{K}_m{M}" + ("" if want == WANT_ALL else f"_w{want}")
    return jit.load(name, _source(K, M, machine.entry().vector_bits, want, dtype))


# reassoc: the f and dW sums split over vector lanes.  Not contract: an FMA skips the
# rounding, and the overflow, of its product, so h = inf + a·b with a·b overflowing to
# −inf would give inf instead of torch's NaN.  Not nnan/ninf: NaN and inf must
# propagate as in torch.
_FM = {"reassoc"}


def fastmath(K: int, M: int, vector_bits: int, dtype=None) -> set:
    """The fast-math flags of the (K, M) row functions on an entry of vector_bits: _FM for
    the scalar rows LLVM vectorizes; none where they call rowvec.py's, rowblocks.py's or
    rowdots.py's intrinsics, whose IR gives every sum's order itself.  Numba puts the flags
    on every operation of the function, the intrinsics' included, where reassoc would let
    LLVM reorder those sums, each function its own way (f's bits would then move with
    `want`).  Without them: the same bits and times at 10⁶×8×8, 4×4, 3×16 and 5×7
    (dev/products_v27.md 28d)."""
    return set() if _along(K, M, vector_bits, dtype) else _FM


def _row_py(name: str, K: int, M: int, want: int, dtype, exact: bool = False):
    # the generated function kernel `name` runs over its rows for inputs of dtype (loss's
    # is in every module: the one of WANT_ALL's); exact: the float64 one of the modules on
    # intrinsics
    return getattr(module(K, M, want if name == "grads" else WANT_ALL, dtype),
                   ("rows" if name == "grads" else "rows_loss") + ("_exact" if exact else ""))


_ROWS: dict = {}


def row_function(name: str, K: int, M: int, dtype, want: int = WANT_ALL, exact: bool = False):
    """The generated row function of kernel `name` for (K, M), dtype and `want`, compiled as
    a C function (or loaded from the disk cache), with the LLVM options of _llvm_options;
    exact: rowvec.py's, rowblocks.py's and rowdots.py's rows in float64 arithmetic for
    float32 inputs too (`kernel`)."""
    dtype = np.dtype(dtype)
    want = want if name == "grads" else WANT_ALL
    K, M = _one(K, M, dtype)
    key = (name, K, M, dtype, want, exact)
    fn = _ROWS.get(key)
    if fn is None:
        # LLVM's loop vectorizer runs them over 8 rows at a time at 512 bits (Intel's AVX-512
        # chips would get 4 by default): 10⁶×4×4 4.9 → 3.3 ms (dev/machines_v8.md 8f)
        bits = machine.entry().vector_bits
        with jit.settings(vector_bits=bits, llvm=_llvm_options(K, M, bits, dtype)):
            fn = jit.cfunc_once(_ROWS, key, _row_py(name, K, M, want, dtype, exact),
                                chunks.row_signature(name, dtype),
                                f"the {dtype} row kernels for K = {K}, M = {M}",
                                fastmath=fastmath(K, M, machine.entry().vector_bits, dtype))
    return fn


_COMPILED: dict = {}


def cached(name: str, K: int, M: int, dtype, parallel: bool, want: int = WANT_ALL) -> bool:
    """Whether `kernel` would load from Numba's disk cache (or has compiled here)."""
    dtype = np.dtype(dtype)
    want = want if name == "grads" else WANT_ALL
    if (name, K, M, dtype, parallel, want) in _COMPILED:
        return True
    return chunks.cached(name, dtype, parallel) \
        and jit.cached(_row_py(name, K, M, want, dtype), chunks.row_signature(name, dtype))


def kernel(name: str, K: int, M: int, dtype, parallel: bool, want: int = WANT_ALL,
           exact: bool = False):
    """The generated kernel `name` for (K, M) and dtype, with rows.kernel's arguments:

    grads(dx, dW, dy, partials, x, W, y, relu_grad_at_zero, rows_per_chunk, want) -> f
    loss(partials, x, W, y, rows_per_chunk) -> f

    grads is generated for the gradients `want` names (its argument must be the same): a
    driver of chunks.py with the row function's address bound.  Compiled for one dtype
    (read-only inputs accepted) on first use, as in rows.py.  exact (where rowvec.py's,
    rowblocks.py's or rowdots.py's rows take (K, M)): their float64 arithmetic for float32
    inputs, which loopgrad.cpu runs where the float32 rows refused a call.
    """
    dtype = np.dtype(dtype)
    want = want if name == "grads" else WANT_ALL  # the loss kernels are in every module
    key = (name, K, M, dtype, parallel, want, exact)
    fn = _COMPILED.get(key)
    if fn is None:
        row = row_function(name, K, M, dtype, want, exact)
        fn = _COMPILED[key] = functools.partial(chunks.driver(name, dtype, parallel),
                                                row.address)
    return fn
