"""The fused row kernel (K, M ≤ 16, host.SKINNY_MAX) and its block sums.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

One fused kernel, float64 inside (inputs widened on load, outputs rounded once
on store).  A block takes ROWS rows at a time: x and y tiles come in through
shared memory with coalesced loads, each thread does one row (h, z, g, dy,
dx), and the block adds xᵀ·g of the tile to a shared dW accumulator whose
elements each belong to one thread.  At the end every block writes its dW and
f partials once, and sum_blocks adds them up in block order.
"""

import numpy as np

from .._inputs import WANT_DW, WANT_DX, WANT_DY
from .device import _block_sum, _relu_backward, cuda, float64

ROWS = 64              # rows per tile = threads per block


def fused_shared_bytes(K: int, M: int) -> int:
    """Dynamic shared memory of fused_rows: x, dx, y/dy and g tiles, W, dW, f (float64)."""
    return 8 * (2 * ROWS * (K | 1) + 2 * ROWS * (M | 1) + 2 * K * M + ROWS)


@cuda.jit
def fused_rows(dx, dW_part, dy, x, W, y, relu_grad_at_zero, want):
    """Rows of x, y → rows of dx, dy; dW_part[b] (K·M + 1,) = block b's dW and f partials.

    want (WANT_* bits) names the gradients written: 0 computes f alone.
    """
    N = x.shape[0]
    K = W.shape[0]
    M = W.shape[1]
    KM = K * M
    # One dynamic shared buffer, sized for this K and M (fused_shared_bytes).
    # Row strides are odd, so the rows a warp's threads read lie in different banks.
    KP = K | 1
    MP = M | 1
    sm = cuda.shared.array(0, float64)
    XS = 0                       # x tile (ROWS, KP)
    DXS = ROWS * KP              # dx tile (ROWS, KP)
    YS = 2 * ROWS * KP           # y tile, then dy on its way out (ROWS, MP)
    GS = YS + ROWS * MP          # g tile (ROWS, MP)
    WS = GS + ROWS * MP          # W (K, M)
    DWS = WS + KM                # this block's dW (K, M)
    FS = DWS + KM                # per-thread f, for the block sum (ROWS,)
    t = cuda.threadIdx.x
    for e in range(t, KM, ROWS):
        sm[WS + e] = W[e // M, e % M]
        sm[DWS + e] = 0.0
    f = 0.0
    ntiles = (N + ROWS - 1) // ROWS
    for tile in range(cuda.blockIdx.x, ntiles, cuda.gridDim.x):
        row0 = np.int64(tile) * ROWS
        rows = min(ROWS, N - row0)
        cuda.syncthreads()  # the previous tile's shared data is consumed
        for i in range(t, rows * K, ROWS):      # coalesced: consecutive threads, consecutive x
            sm[XS + (i // K) * KP + i % K] = x[row0 + i // K, i % K]
        for i in range(t, rows * M, ROWS):
            sm[YS + (i // M) * MP + i % M] = y[row0 + i // M, i % M]
        cuda.syncthreads()
        if t < rows:
            xr = XS + t * KP
            yr = YS + t * MP
            gr = GS + t * MP
            for m in range(M):
                hm = 0.0
                for k in range(K):                # h[n,m] = Σ_k x[n,k]·W[k,m]
                    hm += sm[xr + k] * sm[WS + k * M + m]
                z = (0.0 if hm < 0.0 else hm) - sm[yr + m]  # max(h, 0) keeping NaN
                f += z * z
                sm[gr + m] = _relu_backward(hm, z, relu_grad_at_zero)
                sm[yr + m] = -2.0 * z
            if want & WANT_DX:
                for k in range(K):                # dx[n,k] = Σ_m g[n,m]·W[k,m]
                    s = 0.0
                    for m in range(M):
                        s += sm[gr + m] * sm[WS + k * M + m]
                    sm[DXS + t * KP + k] = s
        cuda.syncthreads()
        for i in range(t, rows * M if want & WANT_DY else 0, ROWS):
            dy[row0 + i // M, i % M] = sm[YS + (i // M) * MP + i % M]
        for i in range(t, rows * K if want & WANT_DX else 0, ROWS):
            dx[row0 + i // K, i % K] = sm[DXS + (i // K) * KP + i % K]
        if want & WANT_DW:
            for e in range(t, KM, ROWS):          # dW[k,m] += Σ_rows x[n,k]·g[n,m]
                k = e // M
                m = e % M
                s = 0.0
                for r in range(rows):
                    s += sm[XS + r * KP + k] * sm[GS + r * MP + m]
                sm[DWS + e] += s
    for e in range(t, KM, ROWS):
        dW_part[cuda.blockIdx.x, e] = sm[DWS + e]
    _block_sum(sm[FS:FS + ROWS], f, t)
    if t == 0:
        dW_part[cuda.blockIdx.x, KM] = sm[FS]



@cuda.jit
def sum_blocks(dW, f_out, part):
    """dW[k,m] = Σ_b part[b, k·M+m] and f_out[0] = Σ_b part[b, K·M], in block order."""
    e = cuda.grid(1)
    K, M = dW.shape
    KM = K * M
    if e > KM:
        return
    s = 0.0
    for b in range(part.shape[0]):
        s += part[b, e]
    if e < KM:
        dW[e // M, e % M] = s
    else:
        f_out[0] = s

