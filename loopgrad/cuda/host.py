"""The host side of the CUDA backend: inputs on (or copied to) the device, outputs of the
caller's kind, streams, launch configurations and the launcher `run`.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

Host work only: checks, views, allocation, streams, grids.  The kernels are in
rows.py (K, M ≤ SKINNY_MAX) and products.py (larger K or M).  Importing this
module imports numba.cuda (through device.py); loopgrad.cuda imports it only
when a call needs it.

`run` takes device arrays (numba's, or anything with __cuda_array_interface__
wrapped by `cuda.as_cuda_array`); `compute` converts user inputs and allocates
the outputs.
"""

import contextlib
import sys

import numpy as np

from .. import _inputs
from .._inputs import WANT_ALL, WANT_DW, WANT_DX, WANT_DY
from . import products, rows
from .arrays import is_numba_device_array, on_gpu
from .device import cuda

SKINNY_MAX = 16        # K and M up to this take the fused row kernel
MAX_BLOCKS = 2048      # grid-stride beyond this many blocks (shape-determined)


# ------------------------------------------------------------ inputs and outputs

def _device_view(name, a):
    # a numba view of a GPU array, after the same checks as on the host
    if _inputs.is_torch_tensor(a):
        a = _inputs.torch_detached(name, a)
        _inputs.check_meta(name, tuple(a.shape), np.dtype(str(a.dtype).removeprefix("torch.")))
    elif is_numba_device_array(a):
        _inputs.check_meta(name, tuple(a.shape), np.dtype(a.dtype))
        return a
    else:
        cai = a.__cuda_array_interface__
        _inputs.check_meta(name, tuple(cai["shape"]), np.dtype(cai["typestr"]))
    # no sync: the kernels run on the caller's current stream, after its producers
    return cuda.as_cuda_array(a, sync=False)


def _library(x):
    # which library's arrays to hand back: "torch", "cupy" or "numba"
    if _inputs.is_torch_tensor(x):
        return "torch"
    if type(x).__module__.split(".")[0] == "cupy":
        return "cupy"
    return "numba"


def _stream_and_device(x, lib):
    # launch on the stream the caller's library is using, on x's device
    if lib == "torch":
        torch = sys.modules["torch"]
        ptr, dev = torch.cuda.current_stream(x.device).cuda_stream, x.device.index
    elif lib == "cupy":
        cupy = sys.modules["cupy"]
        ptr, dev = cupy.cuda.get_current_stream().ptr, x.device.id
    else:
        return 0, None
    return (cuda.external_stream(ptr) if ptr else 0), dev


def _empty(lib, x, shape, dtype, stream):
    # (what the user gets, the numba view the kernels write), from the caller's
    # library: torch's and CuPy's caching allocators cost far less than cudaMalloc
    if lib == "torch":
        torch = sys.modules["torch"]
        tdt = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        t = torch.empty(shape, dtype=tdt, device=x.device)
        return t, cuda.as_cuda_array(t, sync=False)
    if lib == "cupy":
        c = sys.modules["cupy"].empty(shape, dtype)
        return c, cuda.as_cuda_array(c, sync=False)
    d = cuda.device_array(shape, dtype, stream=stream)
    return d, d


def compute(x, W, y, relu_grad_at_zero: float, grads: bool, want: int = WANT_ALL,
            f_on_device: bool = False):
    """f, or (f, dx, dW, dy), on the GPU for inputs that live there or on the host; with
    grads, the gradients `want` (WANT_* bits) does not name are None.  f_on_device (torch
    CUDA tensors only): f as a float64 tensor of shape (1,) on x's device, with no host
    synchronisation (loopgrad.torch.loss).  Call it through loopgrad.cuda.compute, which
    checks first that a GPU is usable."""
    if on_gpu(x):
        if _library(x) == "torch" and not (x.device == W.device == y.device):
            raise ValueError(f"x, W and y must be on the same device, got {x.device}, "
                             f"{W.device} and {y.device}")
        xd, Wd, yd = (_device_view(n, a) for n, a in (("x", x), ("W", W), ("y", y)))
        N, K, M = _inputs.check_shapes(xd, Wd, yd)
        lib = _library(x)
        stream, dev = _stream_and_device(x, lib)
        with (cuda.gpus[dev] if dev is not None else contextlib.nullcontext()):
            def scratch(shape, dtype):
                return _empty(lib, x, shape, dtype, stream)[1]

            f_t, f_view = (_empty(lib, x, 1, np.float64, stream) if f_on_device
                           else (None, None))
            if not grads:
                f = run(None, None, None, xd, Wd, yd, relu_grad_at_zero, False, stream,
                        scratch, f_out=f_view)
                return f_t if f_on_device else f
            outs = [_empty(lib, x, s, xd.dtype, stream) if want & b else (None, None)
                    for s, b in _outputs(N, K, M)]
            f = run(*(o[1] for o in outs), xd, Wd, yd, relu_grad_at_zero, True, stream, scratch,
                    want, f_out=f_view)
            return (f_t if f_on_device else f, *(o[0] for o in outs))
    # host inputs: copy in, compute, copy back
    xa, Wa, ya, (N, K, M) = _inputs.inputs(x, W, y)
    xd, Wd, yd = (cuda.to_device(a) for a in (xa, Wa, ya))
    if not grads:
        return run(None, None, None, xd, Wd, yd, relu_grad_at_zero, False)
    outs = [cuda.device_array(s, xa.dtype) if want & b else None for s, b in _outputs(N, K, M)]
    f = run(*outs, xd, Wd, yd, relu_grad_at_zero, True, want=want)
    host = [None if o is None else o.copy_to_host() for o in outs]
    if _inputs.is_torch_tensor(x):
        torch = sys.modules["torch"]
        host = [None if h is None else torch.from_numpy(h) for h in host]
    return (f, *host)


def _outputs(N, K, M):
    # (shape, WANT_* bit) of dx, dW, dy
    return (((N, K), WANT_DX), ((K, M), WANT_DW), ((N, M), WANT_DY))


# ------------------------------------------------------------------ launchers

def _cdiv(a, b):
    return -(-a // b)


def dW_slices(N: int, K: int, M: int) -> tuple[int, int]:
    """(rows_per_slice, nslices) for the dW product: enough blocks to fill a GPU, by shape alone."""
    BM, BN, BK = products.BM, products.BN, products.BK
    tiles = _cdiv(K, BM) * _cdiv(M, BN)
    want = max(1, min(_cdiv(1024, max(tiles, 1)), _cdiv(N, 4 * BK)))
    # bound the float64 partials to 256 MiB
    want = max(1, min(want, (256 << 20) // max(8 * K * M, 1)))
    per_slice = _cdiv(_cdiv(N, want), BK) * BK if N else BK
    return per_slice, (_cdiv(N, per_slice) if N else 1)


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
        blocks = min(max(_cdiv(N, rows.ROWS), 1), MAX_BLOCKS)
        part = empty((blocks, K * M + 1), np.float64)
        rows.fused_rows[blocks, rows.ROWS, stream, rows.fused_shared_bytes(K, M)](
            dx, part, dy, x, W, y, relu_grad_at_zero, want)
        dW_out = dW if want & WANT_DW else empty((K, M), np.float64)
        rows.sum_blocks[_cdiv(K * M + 1, 128), 128, stream](dW_out, f_out, part)
        return _fetch(f_out, stream) if fetch else None
    # An empty N or M still launches one block, which writes f = 0 and zeros.
    BM, BN, TX, TY, THREADS = products.BM, products.BN, products.TX, products.TY, products.THREADS
    grid = (max(_cdiv(N, BM), 1), max(_cdiv(M, BN), 1))
    f_part = empty(grid[0] * grid[1], np.float64)
    g = empty((N, M), x.dtype) if want & (WANT_DX | WANT_DW) else y
    products.forward_tiled[grid, (TX, TY), stream](dy, g, f_part, x, W, y, relu_grad_at_zero,
                                                   want)
    products.sum_vector[1, THREADS, stream](f_out, f_part)
    if want & WANT_DX and N and K:
        products.dx_tiled[(_cdiv(N, BM), _cdiv(K, BN)), (TX, TY), stream](dx, g, W)
    if want & WANT_DW:
        per_slice, slices = dW_slices(N, K, M)
        if K and M:
            part = empty((slices, K, M), np.float64)
            products.dW_tiled[(_cdiv(K, BM), _cdiv(M, BN), slices), (TX, TY), stream](
                part, x, g, per_slice)
            products.sum_slices[_cdiv(K * M, 128), 128, stream](dW, part)
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
