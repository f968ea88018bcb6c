"""The tiled kernels' order of operations in plain loops: a bitwise oracle for them.

Each output element of loopgrad's tiled kernels (loopgrad/cpu/nests.py) is a fixed
sequence of roundings, whatever the tile shape, vector width or thread count:

    h, dx   sums of KC terms, each a chain of multiply-adds from 0 in the dtype (FMA
            where the CPU has it: `contract`, as the micro-kernel's llvm.fmuladd),
            added to the output in the dtype block after block
    z, g, dy  from float64(h), rounded once
    f       the epilogue's 16 partial sums over chunks of EPI elements of each row
            segment (or of the whole block where g has no padding), segment order
            set by the kernel's items, blocks and chunks
    dW      chains over blocks of rows in the dtype, added in float64 in row order
            (fused: blocks of MC rows within a chunk, chunks added in order; three-
            pass: blocks of KC rows)

This module computes the same sequences with plain loops over rows and columns, so
that the tests can compare the kernels' bits with it, a stronger check than the
tolerance against torch.  (Issue 21 wants it as the first call's kernel too: one
function that compiles in about a second, bitwise the kernels that compile behind it.)
"""

import numpy as np
from numba import njit

from loopgrad.cpu.rows import relu_backward

_FM = {"contract"}   # as the kernels: FMA where a product meets a sum, nothing reordered


@njit(fastmath=_FM, cache=True)
def _product(A, B, C, KC):
    # C = A·B (row-major, C's dtype) by KC-term blocks: each block's sum a chain of
    # multiply-adds from 0 along p, per element, added to C in C's dtype after the first
    n, P = A.shape
    m = B.shape[1]
    acc = np.empty(m, C.dtype)
    for i in range(n):
        for p0 in range(0, max(P, 1), KC):
            acc[:] = 0
            for p in range(p0, min(p0 + KC, P)):
                a = A[i, p]
                for j in range(m):
                    acc[j] = acc[j] + a * B[p, j]
            for j in range(m):
                C[i, j] = acc[j] if p0 == 0 else C[i, j] + acc[j]


@njit(fastmath=_FM, cache=True)
def _tile_sum(x, g, r0, r1, tile):
    # tile[k, m] = Σ_{r0≤n<r1} x[n,k]·g[n,m]: chains from 0 along n in the dtype
    tile[:] = 0
    for n in range(r0, r1):
        for k in range(x.shape[1]):
            a = x[n, k]
            for m in range(g.shape[1]):
                tile[k, m] = tile[k, m] + a * g[n, m]


@njit(cache=True)   # no contract: the kernels round z² before adding it (through zz)
def _epilogue(h, y, dy, g, a0, r0, rows, c0, c1, flat, EPI, want_grads, lanes):
    # the tiled epilogue of rows [r0, r0+rows), columns [c0, c1) (whole rows where flat):
    # dy, g (h's buffer) and z² into `lanes` (16 partial sums and the tail, element i of a
    # chunk of EPI in lane i mod 16), as forward_block's loop does
    M = h.shape[1]
    for n in range(1 if flat else rows):
        length = rows * M if flat else c1 - c0
        b = (r0 + n) * M + c0
        for c in range(0, length, EPI):
            m = min(EPI, length - c)
            m16 = m - m % 16
            for j in range(m):
                e = b + c + j
                hv = h.flat[e]
                z = (0.0 if hv < 0.0 else np.float64(hv)) - np.float64(y.flat[e])
                lanes[j % 16 if j < m16 else 16] += z * z
                if want_grads:
                    dy.flat[e] = -2.0 * z
                    g.flat[e] = relu_backward(hv, z, a0)


def _lanes_sum(l):
    return ((((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])))
            + (((l[8] + l[9]) + (l[10] + l[11])) + ((l[12] + l[13]) + (l[14] + l[15])))) + l[16]


def _f_of_block(h, y, dy, g, a0, r0, rows, c0, c1, flat, EPI, want_grads):
    lanes = np.zeros(17)
    _epilogue(h, y, dy, g, a0, r0, rows, c0, c1, flat, EPI, want_grads, lanes)
    return _lanes_sum(lanes)


def ordered(name, x, W, y, a0=0.0, isa=None):
    """(f, dx, dW, dy) of tiled kernel `name` ("grads_fused", "grads" or "loss": f alone)
    as the kernel for this shape and entry computes them, bit for bit (the plan's chunks,
    items and blocks; see the module's docstring)."""
    from loopgrad.cpu import machine, tiled

    N, K = x.shape
    M = W.shape[1]
    _, variant, nchunks, R = tiled.plan(N, K, M, x.dtype, isa)
    t = machine.TABLE[tiled._isa(isa)].tiles[variant]
    NR, MC, KC, JH, DWB, EPI = t.NR, t.MC, t.KC, 4, tiled.DWB, 512
    Mp = -(-M // NR) * NR
    flat_all = Mp == M
    h = np.empty((N, M), x.dtype)
    _product(x, W, h, KC)
    grads = name != "loss"
    g = h                                   # g over h in place, as the kernels do
    dy = np.empty((N, M), x.dtype)
    f = 0.0
    if name == "loss":
        for r0 in range(0, N, MC):
            f += _f_of_block(h, y, dy, g, a0, r0, min(MC, N - r0), 0, M, flat_all, EPI, False)
        return f if f - f == 0.0 else np.nan
    if name == "grads_fused":
        parts = []
        for c in range(nchunks):
            n0, n1 = c * R, min(N, c * R + R)
            fc, part = 0.0, np.zeros((K, M))
            for r0 in range(n0, n1, MC):
                rows = min(MC, n1 - r0)
                fc += _f_of_block(h, y, dy, g, a0, r0, rows, 0, M, flat_all, EPI, grads)
                for p in range(r0, r0 + rows, KC):
                    tile = np.empty((K, M), x.dtype)
                    _tile_sum(x, g, p, min(p + KC, r0 + rows), tile)
                    part += tile
            parts.append((fc, part))
        total = parts[0][1].copy()
        for _, part in parts[1:]:
            total += part
        for fc, _ in parts:
            f += fc
        dW = total.astype(x.dtype)
    else:                                   # three passes: items of MC rows × JH panels
        nh = Mp // NR
        gh = -(-nh // JH)
        for item in range(-(-N // MC) * gh):
            r0, j0 = item // gh * MC, item % gh * JH
            nj = min(JH, nh - j0)
            c0, c1 = j0 * NR, min(M, (j0 + nj) * NR)
            f += _f_of_block(h, y, dy, g, a0, r0, min(MC, N - r0), c0, c1,
                             flat_all and c0 == 0 and c1 == M, EPI, grads)
        part = np.zeros((K, M))
        for p in range(0, N, KC):
            tile = np.empty((K, M), x.dtype)
            _tile_sum(x, g, p, min(p + KC, N), tile)
            part += tile
        dW = part.astype(x.dtype)
    dx = np.empty((N, K), x.dtype)
    _product(g, np.ascontiguousarray(W.T), dx, KC)
    return f, dx, dW, dy
