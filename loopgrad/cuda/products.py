"""CUDA kernels (numba.cuda) and their launchers.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

    h = x·W    z = max(h, 0) − y    f = Σ z²
    g = 2·z·relu'(h)    dx = g·Wᵀ    dW = xᵀ·g    dy = −2·z

Two paths, both float64 inside (inputs widened on load, outputs rounded once
on store), as on the CPU:

- skinny (K, M ≤ 16): one fused kernel.  A block takes ROWS rows at a time:
  x and y tiles come in through shared memory with coalesced loads, each
  thread does one row (h, z, g, dy, dx), and the block adds xᵀ·g of the tile
  to a shared dW accumulator whose elements each belong to one thread.  At the
  end every block writes its dW and f partials once.
- tiled (larger K or M): three 128×128 shared-memory tiled products, each
  thread holding an 8×8 register tile: h = x·W with z, dy, g and the f partial
  in its epilogue (g is the one N×M temporary), dx = g·Wᵀ, and dW = xᵀ·g with
  the rows split into a fixed number of slices when K·M alone gives too few
  blocks.

Every reduction is deterministic: per-block partials summed in a fixed order
by a second kernel, never float atomics, and the grid is a function of the
shape alone, so the same inputs give the same bits every run.

Launchers take device arrays (numba's, or anything with
__cuda_array_interface__ wrapped by `cuda.as_cuda_array`); `loopgrad._gpu`
converts user inputs and allocates the outputs.
"""

import numpy as np

if not hasattr(np, "row_stack"):
    # numba-cuda ≤ 0.30 registers an overload for np.row_stack when its
    # typing first loads; NumPy 2.5 removed that alias of np.vstack
    np.row_stack = np.vstack

from numba import cuda, float64  # noqa: E402 - after the shim above

from ._inputs import WANT_ALL, WANT_DW, WANT_DX, WANT_DY  # noqa: E402
from ._scalar import relu_backward  # noqa: E402

# g = 2·z·relu'(h), torch's way (see _scalar.py)
_relu_backward = cuda.jit(device=True, inline=True)(relu_backward)

# ---------------------------------------------------------------- skinny path
SKINNY_MAX = 16        # K and M up to this take the fused row kernel
ROWS = 64              # rows per tile = threads per block
MAX_BLOCKS = 2048      # grid-stride beyond this many blocks (shape-determined)


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


@cuda.jit(device=True, inline=True)
def _block_sum(buf, v, t):
    # fixed-order tree sum over the block's threads into buf[0]
    n = buf.shape[0]
    buf[t] = v
    cuda.syncthreads()
    step = n // 2
    while step > 0:
        if t < step:
            buf[t] += buf[t + step]
        cuda.syncthreads()
        step //= 2


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


# ----------------------------------------------------------------- tiled path
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


# ------------------------------------------------------------------ launchers

def _cdiv(a, b):
    return -(-a // b)


def dW_slices(N: int, K: int, M: int) -> tuple[int, int]:
    """(rows_per_slice, nslices) for the dW product: enough blocks to fill a GPU, by shape alone."""
    tiles = _cdiv(K, BM) * _cdiv(M, BN)
    want = max(1, min(_cdiv(1024, max(tiles, 1)), _cdiv(N, 4 * BK)))
    # bound the float64 partials to 256 MiB
    want = max(1, min(want, (256 << 20) // max(8 * K * M, 1)))
    rows = _cdiv(_cdiv(N, want), BK) * BK if N else BK
    return rows, (_cdiv(N, rows) if N else 1)


def run(dx, dW, dy, x, W, y, relu_grad_at_zero: float, grads: bool = True, stream=0,
        empty=None, want: int = WANT_ALL, f_out=None):
    """Launch the kernels on device arrays in `stream`; returns f (synchronises for it), or
    with f_out (a float64 device array of 1) writes f there and returns None at once.

    dx, dW, dy are written when grads is True and `want` (WANT_* bits) names them
    (they may be None otherwise).
    empty(shape, dtype) allocates scratch device arrays (default: numba's
    allocator; the caller's library's caching allocator is much cheaper).
    """
    if empty is None:
        def empty(shape, dtype):
            return cuda.device_array(shape, dtype, stream=stream)
    N, K = x.shape
    M = W.shape[1]
    want = want if grads else 0
    # arrays never written where not wanted: the kernels need arrays of the right kind
    dx = dx if want & WANT_DX else x
    dy = dy if want & WANT_DY else y
    fetch = f_out is None
    f_out = empty(1, np.float64) if fetch else f_out
    if K <= SKINNY_MAX and M <= SKINNY_MAX:
        blocks = min(max(_cdiv(N, ROWS), 1), MAX_BLOCKS)
        part = empty((blocks, K * M + 1), np.float64)
        fused_rows[blocks, ROWS, stream, fused_shared_bytes(K, M)](
            dx, part, dy, x, W, y, relu_grad_at_zero, want)
        dW_out = dW if want & WANT_DW else empty((K, M), np.float64)
        sum_blocks[_cdiv(K * M + 1, 128), 128, stream](dW_out, f_out, part)
        return _fetch(f_out, stream) if fetch else None
    # An empty N or M still launches one block, which writes f = 0 and zeros.
    grid = (max(_cdiv(N, BM), 1), max(_cdiv(M, BN), 1))
    f_part = empty(grid[0] * grid[1], np.float64)
    g = empty((N, M), x.dtype) if want & (WANT_DX | WANT_DW) else y
    forward_tiled[grid, (TX, TY), stream](dy, g, f_part, x, W, y, relu_grad_at_zero, want)
    sum_vector[1, THREADS, stream](f_out, f_part)
    if want & WANT_DX and N and K:
        dx_tiled[(_cdiv(N, BM), _cdiv(K, BN)), (TX, TY), stream](dx, g, W)
    if want & WANT_DW:
        rows, slices = dW_slices(N, K, M)
        if K and M:
            part = empty((slices, K, M), np.float64)
            dW_tiled[(_cdiv(K, BM), _cdiv(M, BN), slices), (TX, TY), stream](part, x, g, rows)
            sum_slices[_cdiv(K * M, 128), 128, stream](dW, part)
    return _fetch(f_out, stream) if fetch else None


def _fetch(f_out, stream) -> float:
    f = f_out.copy_to_host(stream=stream)
    if stream:
        stream.synchronize()  # an asynchronous copy: wait before reading
    return float(f[0])


def available() -> tuple[bool, str]:
    """(usable, reason): whether a CUDA GPU (or the simulator) can run the kernels."""
    try:
        if cuda.is_available():
            return True, ""
        cuda.detect()  # raises with the driver's own reason when it can
    except Exception as e:  # noqa: BLE001 - any driver failure means "not usable"
        return False, f"{type(e).__name__}: " + " ".join(str(e).split()).rstrip(": ")
    return False, "numba.cuda found no CUDA GPU (no driver or no device)"
