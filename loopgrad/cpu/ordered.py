"""The tiled kernels' exact bits from plain loops that compile in 0.3 s: a cold call's kernel.

Each output element of the tiled kernels (tiled.py, nests.py) is a fixed sequence of
roundings, whatever the tile shape, vector width, packing or thread count:

    h, dx     sums of KC terms, each a chain of multiply-adds from 0 in the dtype (FMA
              where the CPU has it: `contract`, as the micro-kernel's llvm.fmuladd),
              added to the output in the dtype block after block
    z, g, dy  from float64(h), rounded once
    f         each segment's z² (z rounded to the input dtype, its square exact in
              float64; a row's columns of one item, or a whole block where g has no
              padding), element j of a row's run in partial sum j mod 16 in j's
              order, the sums added in a fixed tree; the segments added in the
              order of the kernel's items, blocks and chunks; then guards.trusted
    dW        chains over pieces of at most KC rows in the dtype, added in float64 in row
              order (fused: per chunk, then the chunks in order; three-pass: one chunk)

This module computes the same sequences with loops over rows and columns
(ordered_ir.py: written as LLVM IR, so that they compile in about 0.3 s per dtype with
no Numba compile; the tiled kernels take 10–15 s).  loopgrad.cpu runs them for a call
whose tiled kernel is not compiled yet, while a child process compiles the kernel
(background.py): a cold call returns the bits every later call will, at 1.2–3× the warm
serial kernel's time (dev/cold_v12.md 16h).  Rows, segments and rows of dW are spread
over Python threads (ctypes releases the GIL); who computes an element changes nothing
in its order.  tests/test_tiled.py checks the kernels against these loops bit for bit.
"""

import functools
import math
import threading

import numpy as np

from .._inputs import WANT_DW, WANT_DX, WANT_DY
from . import machine, ordered_ir, tiled


def kernel(name: str, variant: str, threads: int = 1, isa: str | None = None):
    """tiled.kernel(name, variant, ...)'s arguments and bits, from these loops in `threads`
    Python threads: grads(dx, dW, dy, x, W, y, a0, nchunks, chunk_rows, ws64, wsT, want) -> f
    (the scratch arguments unused) or loss(x, W, y, wsT) -> f."""
    run = _loss if name == "loss" else _grads
    return functools.partial(run, name, variant, tiled._isa(isa), max(1, threads))


def _grads(name, variant, isa, threads, dx, dW, dy, x, W, y, a0, nchunks, chunk_rows, ws64, wsT,
           want):
    N, K = x.shape
    M = W.shape[1]
    fns = ordered_ir.functions(x.dtype.name)
    segs, chunks, pieces = _layout(name, variant, isa, N, K, M, nchunks, chunk_rows)
    wdx, wdw, wdy = (want & WANT_DX) != 0, (want & WANT_DW) != 0, (want & WANT_DY) != 0
    h = np.empty((N, M), x.dtype)  # then g, over it in place, as in the kernels
    kc = _kc(name, variant, isa, K, M)
    fseg = _forward(fns, kc, threads, x, W, y, h, dy, a0, segs, True, wdy)
    if wdx:
        _product(fns, kc, threads, h, M, 1, np.ascontiguousarray(W.T), dx)
    if wdw:
        _spread(threads, K, lambda k0, k1: _dw(fns, x, h, dW, k0, k1, pieces,
                                               name == "grads_fused"))
    f = _f(fseg, chunks)
    # guards.trusted's decision, with its sums in the same order (ordered_ir)
    if not math.isfinite(f):
        return np.nan
    w2 = fns["sum_squares"](W.ctypes.data, W.size, np.empty(17).ctypes.data)
    if 2.0 * math.sqrt(f) * max(math.sqrt(w2), 1.0) > 0.5 * float(np.finfo(x.dtype).max):
        return np.nan
    return f if not wdw or fns["nonfinite"](dW.ctypes.data, dW.size) == 0.0 else np.nan


def _loss(name, variant, isa, threads, x, W, y, wsT):
    N, K = x.shape
    M = W.shape[1]
    fns = ordered_ir.functions(x.dtype.name)
    segs, chunks, _ = _layout(name, variant, isa, N, K, M, 1, N)
    h = np.empty((N, M), x.dtype)
    f = _f(_forward(fns, _kc(name, variant, isa, K, M), threads, x, W, y, h, h, 0.0, segs,
                    False, False), chunks)
    return f if math.isfinite(f) else np.nan  # not finite: the caller recomputes in float64


def _kc(name, variant, isa, K, M):
    # the steps of kernel `name`'s h and dx sums: the three-pass kernel's (machine.Tile.kc3)
    t = machine.TABLE[isa].tiles[variant]
    return t.kc3(K, M) if name == "grads" else t.KC


def _forward(fns, KC, threads, x, W, y, h, dy, a0, segs, want_grads, want_dy):
    # h = x·W, then the epilogue over the segments: (f of each segment)
    K, M = W.shape
    _product(fns, KC, threads, x, K, 1, W, h)
    fseg = np.empty(len(segs))
    epilogue = fns["epilogue"]

    def run(s0, s1):
        zz, f = np.empty(ordered_ir.EPI), np.empty(16)
        epilogue(h.ctypes.data, y.ctypes.data, dy.ctypes.data, a0, segs.ctypes.data, s0, s1, M,
                 want_grads, want_dy, zz.ctypes.data, f.ctypes.data, fseg.ctypes.data)
    _spread(threads, len(segs), run)
    return fseg


def _product(fns, KC, threads, A, sa, sp, B, C):
    # C = A·B by rows (ordered_ir.product) in sums of KC steps, the rows spread over the threads
    m, P = C.shape[1], B.shape[0]
    product = fns["product"]

    def run(i0, i1):
        acc = np.empty(min(m, ordered_ir.JB), C.dtype)
        product(A.ctypes.data, sa, sp, B.ctypes.data, C.ctypes.data, acc.ctypes.data, m, P, KC,
                 i0, i1)
    _spread(threads, C.shape[0], run)


def _dw(fns, x, g, dW, k0, k1, pieces, fused):
    K, M = x.shape[1], g.shape[1]
    tile, part, total = np.empty(M, x.dtype), np.empty((k1 - k0) * M), np.zeros((k1 - k0) * M)
    fns["dw"](x.ctypes.data, g.ctypes.data, dW.ctypes.data, K, M, k0, k1, pieces.ctypes.data,
              len(pieces), fused, tile.ctypes.data, part.ctypes.data, total.ctypes.data)


def _f(fseg, chunks) -> float:
    # the segments' f in order, from 0 per chunk, and the chunks' from 0 (the kernels' order)
    f = 0.0
    for s0, s1 in chunks:
        fc = 0.0
        for s in range(s0, s1):
            fc += fseg[s]
        f += fc
    return f


@functools.lru_cache(maxsize=64)
def _layout(name, variant, isa, N, K, M, nchunks, R):
    # (segments, chunks, pieces) of kernel `name`'s plan: segs[s] = (r0, rows, c0, c1, flat)
    # of the epilogue in the kernel's order; chunks: (first, last + 1) segment of each chunk
    # of f's sum; pieces[q] = (r0, r1, chunk) of dW's tiles in row order
    t = machine.TABLE[isa].tiles[variant]
    NR, MC, KC = t.NR, t.MC, t.KC
    Mp = -(-M // NR) * NR
    segs, chunks, pieces = [], [], []
    if name == "grads":  # three passes: items of MB rows × JH column panels (the kernel
        # runs them column group by column group, or row block by row block where the
        # shape is small, but keeps f's partials in this order)
        nh = Mp // NR
        MB = tiled.h_rows(N, K, M, variant, isa)
        rowwise, MB = MB > 0, MB or MC
        JH = tiled.h_panels(NR, -(-N // MB), nh, rowwise)
        gh = -(-nh // JH)
        for item in range(-(-N // MB) * gh):
            r0, j0 = item // gh * MB, item % gh * JH
            c0, c1 = j0 * NR, min(M, (j0 + min(JH, nh - j0)) * NR)
            segs.append((r0, min(MB, N - r0), c0, c1, Mp == M and c0 == 0 and c1 == M))
        chunks.append((0, len(segs)))
        kb = t.kc3(K, M)
        pieces = [(p, min(p + kb, N), 0) for p in range(0, N, kb)]
    else:  # fused and loss: blocks of MC rows in chunks of R rows
        for c in range(nchunks):
            n0, n1 = c * R, min(N, c * R + R)
            first = len(segs)
            for r0 in range(n0, n1, MC):
                rows = min(MC, n1 - r0)
                # one run a block: the fused and loss kernels' rows of g (h) lie M apart
                # where M is not a multiple of NR (dev/products_v25.md 26i); the fused
                # kernel's rows a line apart (a multiple of 16 elements) run row by row,
                # the same f (dev/products_v20.md 21a)
                segs.append((r0, rows, 0, M, True))
                pieces += [(p, min(p + KC, r0 + rows), c) for p in range(r0, r0 + rows, KC)]
            chunks.append((first, len(segs)))
    return (np.array(segs, np.int64).reshape(-1, 5), tuple(chunks),
            np.array(pieces, np.int64).reshape(-1, 3))


def _spread(threads: int, n: int, fn) -> None:
    # fn(lo, hi) over [0, n) in up to `threads` contiguous ranges, the first in the caller's
    # thread, the others each in a thread of its own (the loops release the GIL)
    parts = min(threads, n) if n > 0 else 1
    bounds = [n * i // parts for i in range(parts + 1)]
    errors = []

    def run(lo, hi):
        try:
            fn(lo, hi)
        except BaseException as e:  # noqa: BLE001 - raised in the caller's thread below
            errors.append(e)

    others = [threading.Thread(target=run, args=(bounds[i], bounds[i + 1]), daemon=True)
              for i in range(1, parts)]
    for t in others:
        t.start()
    run(bounds[0], bounds[1])
    for t in others:
        t.join()
    if errors:
        raise errors[0]
