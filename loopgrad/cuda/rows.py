"""The fused row kernel (K, M ≤ 16, host.SKINNY_MAX): one pass over the rows, and its block sums.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

One kernel per (K, M, dtype, index width), compiled on first use with an
explicit signature (K and M are constants in it, so a row's x, g and dx stay
in registers).  Every array argument is a pointer and its element strides
(host.py builds them once per call; device.py says what a pointer is in the
simulator).  A block of R threads takes R rows at a time, grid-striding over
the tiles of rows:

    load      x and y tiles into shared memory, consecutive threads reading
              consecutive elements (coalesced for row-major inputs), each
              thread's loads issued before its stores (one load in flight a
              thread ran the row kernel at 14 % of an H200's bandwidth)
    per row   one thread a row: h = x·W (input dtype, K terms; x in registers),
              z, f += z² (float64), g and dy (rounded once) into shared tiles
    store     dy through the y tile, coalesced
    dW        xᵀ·g of the tile from shared memory, summed in the input dtype
              over at most R rows and added to float64 per-thread partials
    dx        per row, g·Wᵀ (input dtype) into the x tile, then stored
              coalesced

Only loops that LLVM unrolls index the thread's local arrays (else they
would live in local memory: dev/cuda_ptx_v13.py shows ptxas's stack frame).

x, y, dx and dy move once each; W and the partials stay on chip.  At the end a
block adds its threads' dW and f partials in a fixed order (a shared-memory
tree: both simulators lack warp shuffles, and the sum runs once per block)
and writes one column of `part`; sum_blocks adds each row in a fixed order.  The
grid depends on the shape alone, so results are bitwise the same every run.
"""

import functools

import numpy as np

from .._inputs import WANT_DW, WANT_DX, WANT_DY
from .device import (SIMULATOR, block_sum, cuda, float64, int32, int64, numba_float, ptr,
                     relu_backward, types, uint64)


def rows_per_block(dtype) -> int:
    """R: rows per tile = threads per block (the x, y and g tiles, R×17 each at K = M = 16,
    fit 48 KiB of static shared memory)."""
    return 128 if np.dtype(dtype) == np.float32 else 64


def _groups(K: int, M: int, R: int) -> tuple[int, int]:
    # (G, EPT): dW's K·M elements over R threads, G row groups of one element a
    # thread where K·M ≤ R, else one group with EPT elements a thread
    KM = K * M
    return (max(1, R // KM), -(-KM // R)) if KM else (1, 1)


@functools.lru_cache(maxsize=None)
def fused(K: int, M: int, dtype, wide: bool):
    """The row kernel for K, M ≤ 16 and this dtype; `wide`: 64-bit offsets (N·K or N·M
    elements beyond 2³¹).  Signature:

        (dx, dy, part, x, sx0, sx1, W, sW0, sW1, y, sy0, sy1, N, relu_grad_at_zero, want)

    dx (N,K), dy (N,M) row-major; part (K·M + 1, blocks) float64, each block's dW and f
    partials in its column; want (WANT_* bits): the gradients written (0: f alone)."""
    T = numba_float(dtype)
    I = int64 if wide else int32
    R = rows_per_block(dtype)
    KP, MP, KM = K | 1, M | 1, K * M   # odd row strides: a warp's rows fall in different banks
    G, EPT = _groups(K, M, R)
    KM1 = max(KM, 1)
    XS, YS, DWS = R * KP, R * MP, G * KM1    # shared array sizes: constants of the kernel
    # a tile moves in passes of XP rows (YP for y): thread t takes column t % K of rows
    # t // K, t // K + XP, …: XJ elements, consecutive threads along a row-major tile
    XP, YP = (R // K if K else R), (R // M if M else R)
    XJ, YJ = (-(-R // XP) if K else 0), (-(-R // YP) if M else 0)
    XJ1, YJ1, K1, M1 = max(XJ, 1), max(YJ, 1), max(K, 1), max(M, 1)
    SHARE_M = EPT > 1 and R % M1 == 0     # a thread's dW elements e, e + R, … share their m
    zero = T(0)

    if SIMULATOR:   # no alignment there
        @cuda.jit(device=True, inline=True)
        def w_tile():
            return cuda.shared.array(KM1, T)
    else:           # dx's reads of a row of W (M ≡ 0 mod 4) are then 16-byte loads
        @cuda.jit(device=True, inline=True)
        def w_tile():
            return cuda.shared.array(KM1, T, alignment=16)

    def kernel(dx, dy, part, x, sx0, sx1, W, sW0, sW1, y, sy0, sy1, N, relu_grad_at_zero, want):
        X = cuda.shared.array(XS, T)              # x tile, then dx on its way out
        Y = cuda.shared.array(YS, T)              # y tile, then dy on its way out
        Gs = cuda.shared.array(YS, T)             # g tile
        Ws = w_tile()                             # W, 16-byte aligned on a GPU
        dWs = cuda.shared.array(DWS, float64)
        fs = cuda.shared.array(R, float64)
        xr = cuda.local.array(KP, T)              # indexed by unrolled loops only: registers
        xin = cuda.local.array(XJ1, T)
        yin = cuda.local.array(YJ1, T)
        acc = cuda.local.array(EPT, float64)
        t = cuda.threadIdx.x
        xc, xr0 = t % K1, t // K1                 # the tiles' column and first row this
        yc, yr0 = t % M1, t // M1                 # thread moves
        cx = sx1 == 1 and sx0 == K
        cy = sy1 == 1 and sy0 == M
        for e in range(t, KM, R):
            Ws[uint64(e)] = W[I(e // M) * sW0 + I(e % M) * sW1]
        for j in range(EPT):
            acc[j] = 0.0
        q = t // KM1 if G > 1 else 0              # this thread's dW row group and elements
        sj = cuda.local.array(EPT, T)
        xo = cuda.local.array(EPT, int64)         # element j's x[r,k] and g[r,m] in the
        go = cuda.local.array(EPT, int64)         # tiles, row q's first (x0, g0), stepped
        x0 = cuda.local.array(EPT, int64)
        g0 = cuda.local.array(EPT, int64)
        mine = cuda.local.array(EPT, types.boolean)
        for j in range(EPT):                      # (an element not this thread's: k = m = 0)
            e = t % KM1 + j * R if G > 1 else t + j * R
            mine[j] = e < KM and q < G
            k = e // M1 if e < KM else 0
            x0[j] = q * KP + k
            g0[j] = q * MP + (e - k * M1 if e < KM else 0)
        f = 0.0
        for tile in range(cuda.blockIdx.x, (N + R - 1) // R, cuda.gridDim.x):
            row0 = I(I(tile) * R)
            rows = min(R, N - row0)
            cuda.syncthreads()                    # the previous tile's data is consumed
            # row-major x and y: each thread's loads all in flight (constant trip counts,
            # unrolled: xin, yin in registers; one base address, constant offsets), then
            # its stores; other strides: one element at a time
            if cx and t < XP * K:
                base = I(I(row0) * K + t)
                for j in range(XJ):
                    xin[j] = zero                 # no value lives on to the next tile
                    if xr0 + j * XP < rows:
                        xin[j] = x[base + I(j * XP * K)]
            if cy and t < YP * M:
                base = I(I(row0) * M + t)
                for j in range(YJ):
                    yin[j] = zero
                    if yr0 + j * YP < rows:
                        yin[j] = y[base + I(j * YP * M)]
            if t < XP * K:
                if cx:
                    for j in range(XJ):
                        r = xr0 + j * XP
                        if r < rows:
                            X[uint64(r * KP + xc)] = xin[j]
                else:
                    for r in range(xr0, rows, XP):
                        X[uint64(r * KP + xc)] = x[I(I(row0 + r) * sx0 + I(xc) * sx1)]
            if t < YP * M:
                if cy:
                    for j in range(YJ):
                        r = yr0 + j * YP
                        if r < rows:
                            Y[uint64(r * MP + yc)] = yin[j]
                else:
                    for r in range(yr0, rows, YP):
                        Y[uint64(r * MP + yc)] = y[I(I(row0 + r) * sy0 + I(yc) * sy1)]
            cuda.syncthreads()
            if t < rows:
                for k in range(K):
                    xr[k] = X[uint64(t * KP + k)]
                for m in range(M):
                    h = zero
                    for k in range(K):            # h[n,m] = Σ_k x[n,k]·W[k,m]
                        h += xr[k] * Ws[uint64(k * M + m)]
                    hd = float64(h)
                    z = (0.0 if hd < 0.0 else hd) - float64(Y[uint64(t * MP + m)])  # max keeps NaN
                    f += z * z
                    Gs[uint64(t * MP + m)] = T(relu_backward(hd, z, relu_grad_at_zero))
                    Y[uint64(t * MP + m)] = T(-2.0 * z)
            cuda.syncthreads()
            if want & WANT_DY:
                if t < YP * M:
                    base = I(I(row0) * M + t)
                    for j in range(YJ):
                        r = yr0 + j * YP
                        if r < rows:
                            dy[base + I(j * YP * M)] = Y[uint64(r * MP + yc)]
            if want & WANT_DW and q < G:      # dW[k,m] += Σ_r x[r,k]·g[r,m], rows q, q+G, …
                for j in range(EPT):              # this thread's elements in one pass over the
                    sj[j] = zero                  # rows (elements j share g[m] where M | R;
                    xo[j] = x0[j]                 # one not this thread's sums x[r,0]·g[r,0],
                    go[j] = g0[j]                 # unused: no branch here)
                for r in range(q, rows, G):
                    if SHARE_M:
                        gr = Gs[uint64(go[0])]
                    for j in range(EPT):
                        if not SHARE_M:
                            gr = Gs[uint64(go[j])]
                        sj[j] += X[uint64(xo[j])] * gr
                        xo[j] += G * KP
                        go[j] += G * MP
                for j in range(EPT):
                    if mine[j]:
                        acc[j] += float64(sj[j])
            if want & WANT_DX:
                cuda.syncthreads()                # x is out of X (dW has read it)
                if t < rows:
                    for k in range(K):            # dx[n,k] = Σ_m g[n,m]·W[k,m]
                        s = zero
                        for m in range(M):
                            s += Gs[uint64(t * MP + m)] * Ws[uint64(k * M + m)]
                        X[uint64(t * KP + k)] = s
                cuda.syncthreads()
                if t < XP * K:
                    base = I(I(row0) * K + t)
                    for j in range(XJ):
                        r = xr0 + j * XP
                        if r < rows:
                            dx[base + I(j * XP * K)] = X[uint64(r * KP + xc)]
        # the block's partials: dW by row group in group order, f by a tree
        for j in range(EPT):
            if mine[j]:
                e = t % KM1 + j * R if G > 1 else t + j * R
                dWs[uint64(q * KM + e)] = acc[j]
        cuda.syncthreads()
        b, nb = I(cuda.blockIdx.x), I(cuda.gridDim.x)
        for e in range(t, KM, R):
            s = 0.0
            for g in range(G):
                s += dWs[uint64(g * KM + e)]
            part[I(e) * nb + b] = s
        block_sum(fs, f, t)
        if t == 0:
            part[I(KM) * nb + b] = fs[0]

    P = ptr(T)
    sig = types.void(P, P, ptr(float64), P, I, I, P, I, I, P, I, I, I, float64, int32)
    return cuda.jit(sig)(kernel)


SUM_THREADS = 256       # sum_blocks: threads that add one element's block partials
SUM_GRID = 1024         # sum_blocks: blocks at most (each takes elements e, e + grid, …)
if SIMULATOR:
    SUM_THREADS = 2     # the simulator runs each thread in Python: the same code and tree


@functools.lru_cache(maxsize=None)
def sum_blocks(dtype):
    """(dW, f_out, part, blocks, KM, write_dW): dW[e] = Σ_b part[e, b] (rounded once to the
    dtype) where write_dW, and f_out[0] = Σ_b part[KM, b], in a fixed order: a block of
    SUM_THREADS an element of a (KM + 1, blocks) float64 `part`, each thread a strided
    sum over the blocks, then a tree.  (One thread an element, adding 2048 partials in
    turn, took 0.17 ms on an H200, longer than the row kernel at 10⁶×4×4.)"""
    T = numba_float(dtype)

    def kernel(dW, f_out, part, blocks, KM, write_dW):
        fs = cuda.shared.array(SUM_THREADS, float64)
        t = cuda.threadIdx.x
        for e in range(cuda.blockIdx.x, KM + 1, cuda.gridDim.x):
            s = 0.0
            row = np.int64(e) * blocks
            for b in range(t, blocks, SUM_THREADS):
                s += part[row + b]
            block_sum(fs, s, t)
            if t == 0:
                if e == KM:
                    f_out[0] = fs[0]
                elif write_dW:
                    dW[e] = T(fs[0])

    return cuda.jit(types.void(ptr(T), ptr(float64), ptr(float64), int64, int64, int32))(kernel)
