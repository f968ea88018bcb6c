"""The tiled products (K or M > 16): h = x·W with its epilogue, dx = g·Wᵀ, dW = xᵀ·g, and sums.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

Three 128×128 shared-memory tiled products, float64 inside (inputs widened on
load, outputs rounded once on store), each thread holding an 8×8 register
tile: h = x·W with z, dy, g and the f partial in its epilogue (g is the one
N×M temporary), dx = g·Wᵀ, and dW = xᵀ·g with the rows split into a fixed
number of slices when K·M alone gives too few blocks (host.dW_slices).
sum_slices adds the dW slices and sum_vector the f partials, in a fixed order.
"""

import numpy as np

from .._inputs import WANT_DW, WANT_DX, WANT_DY
from .device import _block_sum, _relu_backward, cuda, float64

# 128×128 output tiles with 8×8 register tiles ran 24% faster on an H100 than
# 64×64 with 4×4 (4096³: 65.5 vs 85.7 ms; benchmarks/cuda_probe.py tiles).
BM = 128               # output tile rows
BN = 128               # output tile columns
BK = 16                # reduction slice held in shared memory
TY = 16                # threads per block: TY × TX, each with a
TX = 16                # (BM/TY) × (BN/TX) = 8×8 register tile
TM = BM // TY
TN = BN // TX
THREADS = TY * TX
_A_TILE = (BK, BM)
_B_TILE = (BK, BN)
_ACC = (TM, TN)


@cuda.jit(device=True, inline=True)
def _mma(acc, As, Bs, ty, tx):
    # acc[i,j] += Σ_p As[p, ty+TY·i]·Bs[p, tx+TX·j]: strided ownership keeps shared reads conflict-free
    b = cuda.local.array(TN, float64)
    for p in range(BK):
        for j in range(TN):
            b[j] = Bs[p, tx + TX * j]
        for i in range(TM):
            a = As[p, ty + TY * i]
            for j in range(TN):
                acc[i, j] += a * b[j]


@cuda.jit(device=True, inline=True)
def _zero(acc):
    for i in range(TM):
        for j in range(TN):
            acc[i, j] = 0.0


@cuda.jit
def forward_tiled(dy, g, f_part, x, W, y, relu_grad_at_zero, want):
    """h = x·W by BM×BN tiles; epilogue: z, f partial per block, and dy and g where `want`
    (WANT_* bits) asks for dy, and for dx or dW."""
    As = cuda.shared.array(_A_TILE, float64)
    Bs = cuda.shared.array(_B_TILE, float64)
    fs = cuda.shared.array(THREADS, float64)
    acc = cuda.local.array(_ACC, float64)
    N, K = x.shape
    M = W.shape[1]
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    t = ty * TX + tx
    n0 = np.int64(cuda.blockIdx.x) * BM
    m0 = np.int64(cuda.blockIdx.y) * BN
    _zero(acc)
    for p0 in range(0, K, BK):
        for r in range(t, BM * BK, THREADS):      # As[p,i] = x[n0+i, p0+p], along p
            i = r // BK
            p = r % BK
            As[p, i] = x[n0 + i, p0 + p] if (n0 + i < N and p0 + p < K) else 0.0
        for r in range(t, BK * BN, THREADS):      # Bs[p,j] = W[p0+p, m0+j], along j
            p = r // BN
            j = r % BN
            Bs[p, j] = W[p0 + p, m0 + j] if (p0 + p < K and m0 + j < M) else 0.0
        cuda.syncthreads()
        _mma(acc, As, Bs, ty, tx)
        cuda.syncthreads()
    f = 0.0
    for i in range(TM):
        n = n0 + ty + TY * i
        for j in range(TN):
            m = m0 + tx + TX * j
            if n < N and m < M:
                hm = acc[i, j]
                # np.float64(): float64 arithmetic in the simulator too, where a
                # Python float minus a float32 scalar would stay float32
                z = (0.0 if hm < 0.0 else hm) - np.float64(y[n, m])
                f += z * z
                if want & WANT_DY:
                    dy[n, m] = -2.0 * z
                if want & (WANT_DX | WANT_DW):
                    g[n, m] = _relu_backward(hm, z, relu_grad_at_zero)
    _block_sum(fs, f, t)
    if t == 0:
        f_part[cuda.blockIdx.y * cuda.gridDim.x + cuda.blockIdx.x] = fs[0]


@cuda.jit
def dx_tiled(dx, g, W):
    """dx[n,k] = Σ_m g[n,m]·W[k,m] by BM×BN tiles."""
    As = cuda.shared.array(_A_TILE, float64)
    Bs = cuda.shared.array(_B_TILE, float64)
    acc = cuda.local.array(_ACC, float64)
    N, M = g.shape
    K = W.shape[0]
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    t = ty * TX + tx
    n0 = np.int64(cuda.blockIdx.x) * BM
    k0 = np.int64(cuda.blockIdx.y) * BN
    _zero(acc)
    for p0 in range(0, M, BK):
        for r in range(t, BM * BK, THREADS):      # As[p,i] = g[n0+i, p0+p], along p
            i = r // BK
            p = r % BK
            As[p, i] = g[n0 + i, p0 + p] if (n0 + i < N and p0 + p < M) else 0.0
        for r in range(t, BK * BN, THREADS):      # Bs[p,j] = W[k0+j, p0+p], along p
            j = r // BK
            p = r % BK
            Bs[p, j] = W[k0 + j, p0 + p] if (k0 + j < K and p0 + p < M) else 0.0
        cuda.syncthreads()
        _mma(acc, As, Bs, ty, tx)
        cuda.syncthreads()
    for i in range(TM):
        n = n0 + ty + TY * i
        for j in range(TN):
            k = k0 + tx + TX * j
            if n < N and k < K:
                dx[n, k] = acc[i, j]


@cuda.jit
def dW_tiled(dW_part, x, g, rows_per_slice):
    """dW_part[s,k,m] = Σ_{n in slice s} x[n,k]·g[n,m] by BM×BN tiles; slices on grid z."""
    As = cuda.shared.array(_A_TILE, float64)
    Bs = cuda.shared.array(_B_TILE, float64)
    acc = cuda.local.array(_ACC, float64)
    N, K = x.shape
    M = g.shape[1]
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    t = ty * TX + tx
    k0 = np.int64(cuda.blockIdx.x) * BM
    m0 = np.int64(cuda.blockIdx.y) * BN
    s = cuda.blockIdx.z
    start = np.int64(s) * rows_per_slice
    stop = min(start + rows_per_slice, N)
    _zero(acc)
    for p0 in range(start, stop, BK):
        for r in range(t, BK * BM, THREADS):      # As[p,i] = x[p0+p, k0+i], along i
            p = r // BM
            i = r % BM
            As[p, i] = x[p0 + p, k0 + i] if (p0 + p < stop and k0 + i < K) else 0.0
        for r in range(t, BK * BN, THREADS):      # Bs[p,j] = g[p0+p, m0+j], along j
            p = r // BN
            j = r % BN
            Bs[p, j] = g[p0 + p, m0 + j] if (p0 + p < stop and m0 + j < M) else 0.0
        cuda.syncthreads()
        _mma(acc, As, Bs, ty, tx)
        cuda.syncthreads()
    for i in range(TM):
        k = k0 + ty + TY * i
        for j in range(TN):
            m = m0 + tx + TX * j
            if k < K and m < M:
                dW_part[s, k, m] = acc[i, j]


@cuda.jit
def sum_slices(dW, part):
    """dW[k,m] = Σ_s part[s,k,m], in slice order."""
    e = cuda.grid(1)
    K, M = dW.shape
    if e >= K * M:
        return
    k = e // M
    m = e % M
    s = 0.0
    for i in range(part.shape[0]):
        s += part[i, k, m]
    dW[k, m] = s


@cuda.jit
def sum_vector(out, part):
    """out[0] = Σ part in a fixed order: one block, strided per-thread sums, then a tree."""
    fs = cuda.shared.array(THREADS, float64)
    t = cuda.threadIdx.x
    s = 0.0
    for i in range(t, part.shape[0], THREADS):
        s += part[i]
    _block_sum(fs, s, t)
    if t == 0:
        out[0] = fs[0]

