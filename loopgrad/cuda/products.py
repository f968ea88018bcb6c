"""The tiled products (K or M > 16): h = x·W with its epilogue, dx = g·Wᵀ, dW = xᵀ·g, and sums.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

Arithmetic in the input dtype, as the CPU's tiled kernels and torch do, with float64
where a sum is long.  One product core (`_core`: `blocked`, a slice at a time,
`step` by `step`) computes a BM×BN block of C = A·B with the structure of the fast
SIMT SGEMMs: 256 threads, each an 8×8 register tile (strided ownership, so
shared-memory reads are broadcasts or conflict-free), BK-deep slices of A and B
double-buffered in shared memory (the next slice comes from global memory into
registers while this one is multiplied: one barrier a slice; a float32 slice's terms
written out, so that ptxas overlaps each term's shared loads with the FMAs before
them), padded rows so that stores along either operand's unit stride do not
conflict.  Every operand is a pointer with two element strides (device.py), so the
three products, transposes included, are this one core with its strides swapped
(compiled per load layout: whether x and W are row-major sets which threads load
which elements):

    forward   C = x·W, stored as h (sums of KC terms in the dtype, added to h in
              turn: a long sum's error grows as in BLAS, which blocks it so too;
              one running float32 sum over K = 1024 had 2-3× torch's error,
              dev/cuda_error_v13.py)
    epilogue  from h: z, dy, g (rounded once to the dtype, g over h) and f
              partials (float64), a separate pass: in the product's loop its
              body is too large for LLVM to unroll, and the register tile
              would go to local memory
    dx        C = g·Wᵀ, blocked as h
    dW        C = xᵀ·g over one slice of the rows (host.dW_slices), summed in
              the dtype over SUM_ROWS rows and in float64 across them

sum_slices adds the dW slices, sum_vector the f partials, in a fixed order, so
the same inputs give the same bits every run.
"""

import collections
import functools
import os

import numpy as np

from .._inputs import WANT_DW, WANT_DX, WANT_DY
from .device import (SIMULATOR, block_sum, cuda, float64, int32, int64, numba_float, ptr,
                     relu_backward, types, uint64)

BM = 128               # output tile rows
BN = 128               # output tile columns
BK = 8                 # reduction slice in shared memory (two buffers)
TY = 16                # threads per block: TY × TX, each with a
TX = 16                # (BM/TY) × (BN/TX) = 8×8 register tile
if SIMULATOR:
    # The simulator runs each thread in Python: 32×32 tiles of 4×4 threads keep the
    # same 8×8 register tiles, code and loops at a sixteenth of the threads.  On a GPU,
    # dev/cuda_ptx_v13.py and benchmarks/gpu_check.sh check the sizes above.
    BM = BN = 32
    TY = TX = 4
PAD = 4                # shared rows of BM + PAD: conflict-free stores along either stride
KC = 256               # h, dx: terms summed in the dtype before the output takes them
SUM_ROWS = 128         # dW: rows summed in the dtype before a float64 partial takes them
                       # (512 had 1.55× torch float32's largest error at 512³ on an H200,
                       # which dev/cuda_error_v13.py reproduces; 128: 0.75×)
# For timing other sizes on a card (dev/cuda_v31.md 31d): LOOPGRAD_CUDA_TUNE="BK=16,SUM_ROWS=256"
# replaces these constants before anything is derived from them.  Not for users: the
# accuracy tests hold for the sizes above.
for _kv in filter(None, os.environ.get("LOOPGRAD_CUDA_TUNE", "").split(",")):
    _k, _v = _kv.split("=")
    assert _k in ("BK", "KC", "SUM_ROWS"), f"LOOPGRAD_CUDA_TUNE: {_k} is not tunable"
    globals()[_k] = int(_v)
TM = BM // TY
TN = BN // TX
THREADS = TY * TX
LOADS = BM * BK // THREADS   # elements of each operand a thread brings in a slice
EPI = 16 * THREADS     # elements of h an epilogue block takes
assert BK % 8 == 0 and BM == BN and SUM_ROWS % BK == 0 and KC % BK == 0 and TM == TN == 8 and PAD % 4 == 0
Kernels = collections.namedtuple("Kernels", "forward epilogue dx dW sum_slices sum_vector")
SR = BM + PAD          # a row of a shared slice: BM elements and the pad
S4 = SR // 4           # ... in 16-byte groups (the steps' offsets oa, ob)
SLICE = BK * SR        # one of the two buffers of a shared operand
_TILE = 2 * SLICE      # shared arrays' sizes must be constants in the kernels
# A thread's rows of the tile: 4 consecutive at 4·ty and 4 more BM/2 further (columns
# likewise with tx), so that its shared loads are 4 adjacent elements (one 16-byte load)
# and a warp's 16 tx cover 256 adjacent bytes (two shared-memory wavefronts)
RU = tuple((u // 4) * (TY * 4) + u % 4 for u in range(TM))
RV = tuple((v // 4) * (TX * 4) + v % 4 for v in range(TN))
_ACC = (TM, TN)


@functools.lru_cache(maxsize=None)
def _core(dtype, ap: bool, bj: bool):
    """`blocked`, the product core, for this dtype and operand layout: ap where A's unit
    stride runs along p (the sum), bj where B's runs along j (C's columns).  Which thread
    loads which element follows the unit stride (coalesced loads); any strides give the
    right answer."""
    T = numba_float(dtype)
    zero = T(0)
    UNROLL = np.dtype(dtype).itemsize == 4

    if SIMULATOR:   # no alignment there; it tells shared arrays apart by source line
        @cuda.jit(device=True, inline=True)
        def tile_a():
            return cuda.shared.array(_TILE, T)

        @cuda.jit(device=True, inline=True)
        def tile_b():
            return cuda.shared.array(_TILE, T)
    else:           # 16-byte aligned, so that four adjacent elements load as one
        @cuda.jit(device=True, inline=True)
        def tile_a():
            return cuda.shared.array(_TILE, T, alignment=16)

        @cuda.jit(device=True, inline=True)
        def tile_b():
            return cuda.shared.array(_TILE, T, alignment=16)

    @cuda.jit(device=True, inline=True)
    def fetch(ra, rb, A, sAi, sAp, B, sBp, sBj, i0, j0, I, J, p, p1, t):
        # the slice p..p+BK of A (rows i0..) and B into registers; consecutive threads walk
        # the operand's unit stride (along p for A where ap, along j for B where bj); a
        # slice wholly inside both operands (most of them) loads without a test an element
        full = i0 + BM <= I and j0 + BN <= J and p + BK <= p1
        for l in range(LOADS):
            r = t + l * THREADS
            if ap:
                i, q = r // BK, r % BK
            else:
                q, i = r // BM, r % BM
            if bj:
                qb, j = r // BN, r % BN
            else:
                j, qb = r // BK, r % BK
            if full:
                ra[l] = A[(i0 + i) * sAi + (p + q) * sAp]
                rb[l] = B[(p + qb) * sBp + (j0 + j) * sBj]
            else:
                ra[l] = A[(i0 + i) * sAi + (p + q) * sAp] if (i0 + i < I and p + q < p1) else zero
                rb[l] = B[(p + qb) * sBp + (j0 + j) * sBj] if (j0 + j < J and p + qb < p1) else zero

    @cuda.jit(device=True, inline=True)
    def place(As, Bs, sb, ra, rb, t):
        # the registers of `fetch` into the shared buffer at sb, As[p, i] and Bs[p, j] of
        # rows SR apart (flat arrays, unsigned indices: no negative-index wrap-around, whose
        # checks and selects took more instructions than the FMAs on an H200, stop 29)
        for l in range(LOADS):
            r = t + l * THREADS
            if ap:
                As[uint64(sb + (r % BK) * SR + r // BK)] = ra[l]
            else:
                As[uint64(sb + (r // BM) * SR + r % BM)] = ra[l]
            if bj:
                Bs[uint64(sb + (r // BN) * SR + r % BN)] = rb[l]
            else:
                Bs[uint64(sb + (r % BK) * SR + r // BK)] = rb[l]

    @cuda.jit(device=True, inline=True)
    def step(acc, a, b, As, Bs, oa, ob):
        # one term of the slice: acc[u,v] += A[u]·B[v] from the shared row at offset oa, ob
        # (in 16-byte groups: the loads' alignment is plain to the compiler)
        for u in range(TM):
            a[u] = As[uint64(oa * 4 + RU[u])]
        for v in range(TN):
            b[v] = Bs[uint64(ob * 4 + RV[v])]
        for u in range(TM):
            for v in range(TN):
                acc[u, v] += a[u] * b[v]

    @cuda.jit(device=True, inline=True)
    def clear(acc):
        for u in range(TM):
            for v in range(TN):
                acc[u, v] = zero

    @cuda.jit(device=True, inline=True)
    def flush(C, c0, acc, i0, j0, I, J, first):
        # C[c0 + i·J + j] (=, the first block; += after it) this thread's acc, then acc = 0
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        for u in range(TM):
            i = i0 + ty * 4 + RU[u]
            for v in range(TN):
                j = j0 + tx * 4 + RV[v]
                if i < I and j < J:
                    if first:
                        C[c0 + i * J + j] = acc[u, v]
                    else:
                        C[c0 + i * J + j] += acc[u, v]
                acc[u, v] = zero

    @cuda.jit(device=True, inline=True)
    def blocked(C, c0, A, sAi, sAp, B, sBp, sBj, i0, j0, I, J, p_start, p_stop, block):
        # C[c0 + i·J + j] = Σ_{p_start≤p<p_stop} A[i,p]·B[p,j] for this thread's elements of
        # the BM×BN tile at (i0, j0): sums of `block` terms (a multiple of BK) in the dtype,
        # each added to C in C's dtype (the first stored), so that a long sum's error grows
        # as BLAS's does.  One pipeline over all the slices: the next slice comes from
        # global memory into registers while this one is multiplied (one barrier a slice),
        # and a block's sum goes to C between slices, without draining it.
        As = tile_a()
        Bs = tile_b()
        acc = cuda.local.array(_ACC, T)
        ra = cuda.local.array(LOADS, T)
        rb = cuda.local.array(LOADS, T)
        a = cuda.local.array(TM, T)
        b = cuda.local.array(TN, T)
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        t = ty * TX + tx
        clear(acc)
        fetch(ra, rb, A, sAi, sAp, B, sBp, sBj, i0, j0, I, J, p_start, p_stop, t)
        place(As, Bs, 0, ra, rb, t)
        cuda.syncthreads()
        sb = 0
        first = True
        left = block                    # terms of the current block still to come
        for p in range(p_start, max(p_stop, p_start + 1), BK):   # once for an empty sum: zeros
            more = p + BK < p_stop
            if more:
                fetch(ra, rb, A, sAi, sAp, B, sBp, sBj, i0, j0, I, J, p + BK, p_stop, t)
            oa, ob = (sb >> 2) + ty, (sb >> 2) + tx
            if UNROLL:
                # the terms written out, 8 at a time: NVVM does not unroll a loop of them
                # (68 instructions a term), and unrolled, ptxas issues a term's shared loads
                # under the previous term's FMAs instead of waiting for them (stop 31)
                for q in range(0, BK, 8):
                    o = q * S4
                    step(acc, a, b, As, Bs, oa + o, ob + o)
                    step(acc, a, b, As, Bs, oa + o + S4, ob + o + S4)
                    step(acc, a, b, As, Bs, oa + o + 2 * S4, ob + o + 2 * S4)
                    step(acc, a, b, As, Bs, oa + o + 3 * S4, ob + o + 3 * S4)
                    step(acc, a, b, As, Bs, oa + o + 4 * S4, ob + o + 4 * S4)
                    step(acc, a, b, As, Bs, oa + o + 5 * S4, ob + o + 5 * S4)
                    step(acc, a, b, As, Bs, oa + o + 6 * S4, ob + o + 6 * S4)
                    step(acc, a, b, As, Bs, oa + o + 7 * S4, ob + o + 7 * S4)
            else:
                # float64: unrolled, the tile and its prefetched terms spill (255 registers)
                for q in range(BK):
                    step(acc, a, b, As, Bs, oa + q * S4, ob + q * S4)
            if more:
                place(As, Bs, SLICE - sb, ra, rb, t)
            left -= BK
            if left == 0 or not more:
                flush(C, c0, acc, i0, j0, I, J, first)
                first = False
                left = block
            cuda.syncthreads()
            sb = SLICE - sb

    return blocked


@functools.lru_cache(maxsize=None)
def kernels(dtype, x_rows: bool = True, W_rows: bool = True):
    """Kernels(forward, epilogue, dx, dW, sum_slices, sum_vector) for this dtype, compiled with
    explicit signatures on first use (see each kernel); x_rows, W_rows: whether x's and W's
    unit strides run along their rows (row-major), which sets the loads' layouts."""
    T = numba_float(dtype)
    forward_core = _core(dtype, x_rows, W_rows)           # A = x, B = W
    dx_core = _core(dtype, True, not W_rows)              # A = g (row-major), B = Wᵀ
    dW_core = _core(dtype, not x_rows, True)              # A = xᵀ, B = g (row-major)

    def forward(h, x, sx0, sx1, W, sW0, sW1, N, K, M):
        """h = x·W by BM×BN tiles, stored row-major in the dtype (the epilogue kernel reads
        it; a plain store keeps the register tile in registers)."""
        forward_core(h, 0, x, sx0, sx1, W, sW0, sW1, np.int64(cuda.blockIdx.x) * BM,
                np.int64(cuda.blockIdx.y) * BN, N, M, 0, K, KC)

    def epilogue(dy, g, f_part, y, sy0, sy1, N, M, relu_grad_at_zero, want):
        """From h (in g, row-major): z, the block's f partial (float64), dy where `want`
        (WANT_* bits) asks for it and g over h where it asks for dx or dW; EPI elements a
        block, consecutive threads on consecutive elements."""
        fs = cuda.shared.array(THREADS, float64)
        t = cuda.threadIdx.x
        e0 = np.int64(cuda.blockIdx.x) * EPI
        f = 0.0
        for e in range(e0 + t, min(e0 + EPI, N * M), THREADS):
            n = e // M
            m = e - n * M
            hd = float64(g[e])
            z = (0.0 if hd < 0.0 else hd) - float64(y[n * sy0 + m * sy1])
            f += z * z
            if want & WANT_DY:
                dy[e] = T(-2.0 * z)
            if want & (WANT_DX | WANT_DW):
                g[e] = T(relu_backward(hd, z, relu_grad_at_zero))
        block_sum(fs, f, t)
        if t == 0:
            f_part[cuda.blockIdx.x] = fs[0]

    def dx(dx, g, W, sW0, sW1, N, K, M):
        """dx[n,k] = Σ_m g[n,m]·W[k,m] by BM×BN tiles (dx, g row-major)."""
        dx_core(dx, 0, g, M, np.int64(1), W, sW1, sW0, np.int64(cuda.blockIdx.x) * BM,
                np.int64(cuda.blockIdx.y) * BN, N, K, 0, M, KC)

    def dW(part, x, sx0, sx1, g, N, K, M, rows_per_slice):
        """part[s,k,m] = Σ_{n in slice s} x[n,k]·g[n,m] (float64; g row-major) by BM×BN
        tiles, slices on grid z: sums in the dtype over SUM_ROWS rows at a time, added
        in float64 in row order."""
        s = np.int64(cuda.blockIdx.z)
        start = s * rows_per_slice
        dW_core(part, s * K * M, x, sx1, sx0, g, M, np.int64(1), np.int64(cuda.blockIdx.x) * BM,
                np.int64(cuda.blockIdx.y) * BN, K, M, start, min(start + rows_per_slice, N),
                SUM_ROWS)

    def sum_slices(dW, part, slices, KM):
        """dW[e] = Σ_s part[s, e], in slice order, rounded once to the dtype."""
        e = cuda.grid(1)
        if e >= KM:
            return
        s = 0.0
        for i in range(slices):
            s += part[i * KM + e]
        dW[e] = T(s)

    def sum_vector(out, part, n):
        """out[0] = Σ part[:n] in a fixed order: one block, strided per-thread sums, a tree."""
        fs = cuda.shared.array(THREADS, float64)
        t = cuda.threadIdx.x
        s = 0.0
        for i in range(t, n, THREADS):
            s += part[i]
        block_sum(fs, s, t)
        if t == 0:
            out[0] = fs[0]

    P, F, L = ptr(T), ptr(float64), int64
    sigs = (
        (forward, (P, P, L, L, P, L, L, L, L, L)),
        (epilogue, (P, P, F, P, L, L, L, L, float64, int32)),
        (dx, (P, P, P, L, L, L, L, L)),
        (dW, (F, P, L, L, P, L, L, L, L)),
        (sum_slices, (P, F, L, L)),
        (sum_vector, (F, F, L)),
    )
    return Kernels(*(cuda.jit(types.void(*args))(fn) for fn, args in sigs))
