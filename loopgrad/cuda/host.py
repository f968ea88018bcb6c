"""The host side of the CUDA backend: operands, outputs, scratch, plans and launches.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

Host work only; the kernels are in rows.py (K, M ≤ SKINNY_MAX) and
products.py (larger K or M).  Importing this module imports numba.cuda
(through device.py); loopgrad.cuda imports it only when a call needs it.

A warm call on arrays that live on the GPU does, in Python:

    operands   each input's address and element strides, read from the
               array's own attributes (torch's data_ptr and stride, CuPy's
               data.ptr, numba's device pointer): no conversion, no
               __cuda_array_interface__ dict, no synchronisation
    plan       the kernels (explicit signatures, compiled once), grids,
               blocks and scratch sizes for (N, K, M, dtype, want): cached
    memory     the outputs and one or two scratch buffers from the caller's
               library (torch's or CuPy's caching allocator; for numba's
               arrays a scratch pool per stream that only grows)
    launches   on the caller's current stream: 2 (row kernel and its block
               sums) or 5 (three products and two sums), fewer for fewer
               gradients; arguments are integers, passed to the driver as
               they are
    f          one device→host copy of 8 bytes and the synchronisation it
               needs; none when f stays on the device (loopgrad.torch.loss)

tests/cuda/test_host_counts.py counts these under the simulator.
"""

import collections
import contextlib
import ctypes
import functools
import os
import sys
import threading
import warnings

import numpy as np

from .. import _inputs
from .._inputs import WANT_ALL, WANT_DW, WANT_DX, WANT_DY
from . import products, rows
from .arrays import is_numba_device_array, on_gpu
from .device import SIMULATOR, cuda, types

# launches of torch's and CuPy's arrays through cuda.core directly (_direct): 27 against 74 µs
# for a call's two launches on an H200 (stop 31); LOOPGRAD_CUDA_DIRECT_LAUNCH=0 turns it off
DIRECT_LAUNCH = os.environ.get("LOOPGRAD_CUDA_DIRECT_LAUNCH", "1") != "0"
SKINNY_MAX = 16        # K and M up to this take the fused row kernel
ROW_BLOCKS = 2048      # the row kernel grid-strides beyond this many blocks (by shape alone)
SUM_THREADS = 128      # threads per block of the element-wise sums
SLICE_ROWS = 512       # dW: fewest rows a slice of the sum over N is cut to (by shape alone;
                       # 2048 gave 10⁵×256² 196 blocks of one an SM, 1.5 waves on an H200)
_I32 = 2**31 - 1


# ------------------------------------------------------------------ operands

Operand = collections.namedtuple("Operand", "p s0 s1 shape dtype")
Operand.__doc__ = """An array as the kernels take it: p, the address of element [0, 0]
(in the simulator a 1-D view from there, see device.py), element strides s0, s1,
and its shape and NumPy dtype for the checks."""


def _library(a):
    # which library's arrays to hand back: "torch", "cupy" or "numba" (any other
    # object with __cuda_array_interface__ gets numba's)
    if _inputs.is_torch_tensor(a):
        return "torch"
    if type(a).__module__.split(".")[0] == "cupy":
        return "cupy"
    return "numba"


def operand(name, a) -> Operand:
    """The Operand of GPU array `a`, after the CPU path's checks (ValueError/TypeError naming
    `name`)."""
    if _inputs.is_torch_tensor(a):
        torch = sys.modules["torch"]
        if a.dtype not in (torch.float32, torch.float64) or a.is_neg():
            a = _inputs.torch_detached(name, a)        # raises, or resolves a negated view
        dtype = np.dtype(np.float32 if a.dtype == torch.float32 else np.float64)
        _inputs.check_meta(name, tuple(a.shape), dtype)
        return Operand(a.data_ptr(), *a.stride(), tuple(a.shape), dtype)
    if type(a).__module__.split(".")[0] == "cupy":
        dtype, shape, strides, p = a.dtype, a.shape, a.strides, a.data.ptr
    elif is_numba_device_array(a):
        dtype, shape, strides = a.dtype, a.shape, a.strides
        p = None if SIMULATOR else a.device_ctypes_pointer.value
    else:
        cai = a.__cuda_array_interface__
        dtype, shape = np.dtype(cai["typestr"]), tuple(cai["shape"])
        strides, p = cai.get("strides"), cai["data"][0]
        if strides is None and len(shape) == 2:                  # C-contiguous
            strides = (shape[1] * dtype.itemsize, dtype.itemsize)
    _inputs.check_meta(name, tuple(shape), np.dtype(dtype))
    size = np.dtype(dtype).itemsize
    if any(s % size for s in strides):
        raise ValueError(f"{name} has strides {tuple(strides)} bytes, not whole elements of "
                         f"{np.dtype(dtype)}: copy it first")
    s0, s1 = (s // size for s in strides)
    if SIMULATOR:
        p = _simulated(a, p, shape, (s0, s1), np.dtype(dtype))
    return Operand(p, s0, s1, tuple(shape), np.dtype(dtype))


def _simulated(a, address, shape, strides, dtype):
    # The simulator's stand-in for a pointer: a FakeCUDAArray over a 1-D view that starts at
    # element [0, 0].  Its "device memory" is host memory: numba's fake arrays wrap a NumPy
    # array, and other objects' __cuda_array_interface__ addresses are host addresses.
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    if min(strides) < 0:
        raise ValueError("negative strides are not supported in the CUDA simulator")
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, strides)) if 0 not in shape else 0
    if address is None:                          # a numba (fake) device array
        base = a._ary
    else:
        buf = (ctypes.c_char * (max(extent, 1) * dtype.itemsize)).from_address(address)
        base = np.frombuffer(buf, dtype)
    flat = np.lib.stride_tricks.as_strided(base, shape=(max(extent, 1),),
                                           strides=(dtype.itemsize,))
    return FakeCUDAArray(flat)


def _at(p, n, itemsize):
    # the pointer n elements after p
    if SIMULATOR:
        return type(p)(p._ary[n:])
    return p + n * itemsize


# ------------------------------------------------------------------ memory

def _empty(lib, like, shape, dtype, stream):
    # (what the user gets, its pointer): C-contiguous, from the caller's library
    if lib == "torch":
        torch = sys.modules["torch"]
        t = torch.empty(shape, dtype=torch.float64 if dtype == np.float64 else torch.float32,
                        device=like.device)
        return t, t.data_ptr()
    if lib == "cupy":
        c = sys.modules["cupy"].empty(shape, dtype)
        return c, c.data.ptr
    d = cuda.device_array(shape, dtype, stream=stream)
    return d, _pointer(d, dtype)


def _pointer(d, dtype):
    # a numba device array's pointer (C-contiguous)
    if SIMULATOR:
        return type(d)(d._ary.reshape(-1)) if d._ary.size else type(d)(np.zeros(1, dtype))
    return d.device_ctypes_pointer.value


_pools = threading.local()   # .arrays: (stream, dtype, use) → a numba device array


def _scratch(lib, like, n, dtype, stream, use):
    # (owner, pointer) of n elements of scratch.  For numba's arrays a pool that only grows,
    # per thread, stream and use: the kernels of one stream run in order, so the thread's
    # next call may reuse it (another thread's calls on the same stream could run between
    # this call's kernels and its copy of f, hence one pool a thread)
    if lib != "numba":
        return _empty(lib, like, max(n, 1), dtype, stream)
    pools = _pools.__dict__.setdefault("arrays", {})
    key = (stream, np.dtype(dtype).str, use)
    d = pools.get(key)
    if d is None or d.shape[0] < n:
        d = pools[key] = cuda.device_array(max(n, 1, 2 * (0 if d is None else d.shape[0])),
                                           dtype, stream=stream)
    return d, _pointer(d, dtype)


@functools.lru_cache(maxsize=None)
def _stream(handle):
    return cuda.external_stream(handle) if handle else 0


def _stream_and_device(x, lib):
    # launch on the stream the caller's library is using, on x's device
    if lib == "torch":
        torch = sys.modules["torch"]
        return _stream(torch.cuda.current_stream(x.device).cuda_stream), x.device.index
    if lib == "cupy":
        return _stream(sys.modules["cupy"].cuda.get_current_stream().ptr), x.device.id
    return 0, None


# ------------------------------------------------------------------ plans

def _cdiv(a, b):
    return -(-a // b)


def dW_slices(N: int, K: int, M: int) -> tuple[int, int]:
    """(rows_per_slice, nslices) for the dW product: enough blocks to fill a GPU, by shape alone."""
    BM, BN, BK = products.BM, products.BN, products.BK
    tiles = _cdiv(K, BM) * _cdiv(M, BN)
    want = max(1, min(_cdiv(1024, max(tiles, 1)), _cdiv(N, SLICE_ROWS)))
    # bound the float64 partials to 256 MiB
    want = max(1, min(want, (256 << 20) // max(8 * K * M, 1)))
    per_slice = _cdiv(_cdiv(N, want), BK) * BK if N else BK
    return per_slice, (_cdiv(N, per_slice) if N else 1)


class Plan:
    """What a call of one (N, K, M, dtype, want) launches: `steps`, kernel name → (kernel,
    grid, block), and scratch sizes (f64: float64 elements, of which the last is f; g: dtype
    elements)."""

    def __init__(self, N, K, M, dtype, want, strides):
        dtype = np.dtype(dtype)
        self.skinny = K <= SKINNY_MAX and M <= SKINNY_MAX
        self._configured = {}
        if self.skinny:
            R = rows.rows_per_block(dtype)
            self.blocks = max(1, min(_cdiv(N, R), ROW_BLOCKS))
            # 32-bit offsets where every element of every array is within reach
            reach = max([N, (N + 1) * max(K, M, 1), self.blocks * (K * M + 1)]
                        + [(n - 1) * abs(s0) + (m - 1) * abs(s1) for n, m, s0, s1 in strides])
            self.wide = reach > _I32
            self.steps = {"rows": (rows.fused(K, M, dtype, self.wide), self.blocks, R),
                          "sum_blocks": (rows.sum_blocks(dtype), min(K * M + 1, rows.SUM_GRID),
                                         rows.SUM_THREADS)}
            self.f64 = self.blocks * (K * M + 1) + 1
            self.g = 0
            return
        BM, BN = products.BM, products.BN
        (_, _, _, xs1), (_, _, _, Ws1) = strides[:2]
        k = products.kernels(dtype, xs1 == 1, Ws1 == 1)
        self.rows_per_slice, self.slices = dW_slices(N, K, M)
        self.dW_part = self.slices * K * M if want & WANT_DW and K and M else 0
        self.f_parts = max(_cdiv(N * M, products.EPI), 1)
        self.f64 = self.f_parts + self.dW_part + 1
        self.g = max(N * M, 1)                                       # h, then g over it
        block = (products.TX, products.TY)
        self.steps = {
            "forward": (k.forward, (max(_cdiv(N, BM), 1), max(_cdiv(M, BN), 1)), block),
            "epilogue": (k.epilogue, self.f_parts, products.THREADS),
            "dx": (k.dx, (_cdiv(N, BM), _cdiv(K, BN)), block),
            "dW": (k.dW, (_cdiv(K, BM), _cdiv(M, BN), self.slices), block),
            "sum_slices": (k.sum_slices, _cdiv(K * M, SUM_THREADS), SUM_THREADS),
            "sum_vector": (k.sum_vector, 1, products.THREADS),
        }

    def launcher(self, name, stream, dev=None):
        """Kernel `name` configured for its grid and block on `stream` (of device `dev`, the
        index of torch's or CuPy's arrays' device; None for numba's), built once a stream."""
        kernel, grid, block = self.steps[name]
        if SIMULATOR:   # the simulator's configuration lives on the kernel itself: set it each time
            return kernel[grid, block, stream]
        c = self._configured.get((name, stream, dev))
        if c is None:
            with warnings.catch_warnings():     # small grids (the sums) are meant
                warnings.filterwarnings("ignore", message=".*Grid size")
                c = kernel[grid, block, stream]
            if DIRECT_LAUNCH and dev is not None:
                c = _direct(kernel, c) or c
            self._configured[name, stream, dev] = c
        return c


def _direct(kernel, configured):
    """A launcher that does what numba-cuda 0.30's _Kernel.launch does for these kernels
    (cuda.core's `launch` with the kernel's arguments as ctypes values and pointers as
    integers), with the launch configuration and the conversions built once, for one
    device (the function handle is the device context's); None where this numba-cuda
    does not have the internals it relies on (then numba-cuda's launcher serves)."""
    try:
        from cuda.core import LaunchConfig, launch

        k = next(iter(kernel.overloads.values()))           # the one explicit signature
        cufunc = k._codelibrary.get_cufunc().kernel
    except (ImportError, AttributeError):
        return None
    config = LaunchConfig(grid=configured.griddim, block=configured.blockdim, shmem_size=0)
    stream = configured.stream
    conv = tuple(None if isinstance(t, types.CPointer) else
                 ctypes.c_double if t == types.float64 else
                 ctypes.c_float if t == types.float32 else getattr(ctypes, f"c_{t}")
                 for t in k.argument_types)

    def run(*args):
        launch(stream, config, cufunc, *[a if c is None else c(a) for c, a in zip(conv, args)])
    return run


@functools.lru_cache(maxsize=256)
def plan(N, K, M, dtype, want, strides) -> Plan:
    """The cached Plan of a call (strides: ((rows, cols, s0, s1) of x, W, y), which set the
    row kernel's offset width and the products' load layouts)."""
    return Plan(N, K, M, dtype, want, strides)


# ------------------------------------------------------------------ calls

def compute(x, W, y, relu_grad_at_zero: float, grads: bool, want: int = WANT_ALL,
            f_on_device: bool = False):
    """f, or (f, dx, dW, dy), on the GPU for inputs that live there or on the host; with
    grads, the gradients `want` (WANT_* bits) does not name are None.  f_on_device (torch
    CUDA tensors only): f as a float64 tensor of shape (1,) on x's device, with no host
    synchronisation (loopgrad.torch.loss).  Call it through loopgrad.cuda.compute, which
    checks first that a GPU is usable."""
    if not on_gpu(x):
        return _from_host(x, W, y, relu_grad_at_zero, grads, want)
    lib = _library(x)
    if lib == "torch" and not (x.device == W.device == y.device):
        raise ValueError(f"x, W and y must be on the same device, got {x.device}, "
                         f"{W.device} and {y.device}")
    ops = (operand("x", x), operand("W", W), operand("y", y))
    N, K, M = _inputs.check_shapes(*ops)
    stream, dev = _stream_and_device(x, lib)
    want = want if grads else 0
    with (cuda.gpus[dev] if dev is not None else contextlib.nullcontext()):
        outs = [_empty(lib, x, s, ops[0].dtype, stream) if want & b else (None, None)
                for s, b in _outputs(N, K, M)]
        f_t = _empty(lib, x, 1, np.float64, stream) if f_on_device else None
        f = _run(lib, x, stream, [o[1] for o in outs], ops, relu_grad_at_zero, want,
                 None if f_t is None else f_t[1], dev)
    if not grads:
        return f_t[0] if f_on_device else f
    return (f_t[0] if f_on_device else f, *(o[0] for o in outs))


def run(dx, dW, dy, x, W, y, relu_grad_at_zero: float, grads: bool = True,
        want: int = WANT_ALL, f_out=None):
    """The kernels on numba device arrays (or any with __cuda_array_interface__) on the
    default stream; returns f, or with f_out (a float64 device array of 1) writes f there
    and returns None.  dx, dW, dy are written where grads is True and `want` (WANT_* bits)
    names them (they may be None otherwise)."""
    ops = (operand("x", x), operand("W", W), operand("y", y))
    _inputs.check_shapes(*ops)
    want = want if grads else 0
    outs = [_output(n, a) if want & b else None
            for n, a, b in (("dx", dx, WANT_DX), ("dW", dW, WANT_DW), ("dy", dy, WANT_DY))]
    return _run("numba", x, 0, outs, ops, relu_grad_at_zero, want,
                None if f_out is None else operand("f_out", f_out.reshape(1, 1)).p)


def _output(name, a):
    # the pointer of an output array, which the kernels write row-major
    o = operand(name, a)
    if o.shape[0] * o.shape[1] and (o.s1 != 1 or (o.shape[0] > 1 and o.s0 != o.shape[1])):
        raise ValueError(f"{name} must be C-contiguous")
    return o.p


def _run(lib, like, stream, outs, ops, a0, want, f_out, dev=None):
    # launch a call's kernels on `stream` (of device `dev`, None: numba's current one); f as
    # a float, or None where f_out (a pointer) takes it
    (x, W, y), (dx, dW, dy) = ops, outs
    N, K = x.shape
    M = W.shape[1]
    T = x.dtype
    pl = plan(N, K, M, T, want, tuple((*o.shape, o.s0, o.s1) for o in ops))

    def launch(name):
        return pl.launcher(name, stream, dev)

    f64, f64_p = _scratch(lib, like, pl.f64, np.float64, stream, "partials")
    f_slot = _at(f64_p, pl.f64 - 1, 8)
    f_p = f_slot if f_out is None else f_out
    # where a gradient is not asked for, its kernel argument points at an input, never written
    dx, dW, dy = (dx if want & WANT_DX else x.p, dW if want & WANT_DW else x.p,
                  dy if want & WANT_DY else y.p)
    if pl.skinny:
        launch("rows")(dx, dy, f64_p, x.p, x.s0, x.s1, W.p, W.s0, W.s1, y.p, y.s0,
                               y.s1, N, a0, want)
        launch("sum_blocks")(dW, f_p, f64_p, pl.blocks, K * M, int(bool(want & WANT_DW)))
    else:
        g_owner, g = _scratch(lib, like, pl.g, T, stream, "g")
        if N and M:
            launch("forward")(g, x.p, x.s0, x.s1, W.p, W.s0, W.s1, N, K, M)
        launch("epilogue")(dy, g, f64_p, y.p, y.s0, y.s1, N, M, a0, want)
        launch("sum_vector")(f_p, f64_p, pl.f_parts)
        if want & WANT_DX and N and K:
            launch("dx")(dx, g, W.p, W.s0, W.s1, N, K, M)
        if pl.dW_part:
            part = _at(f64_p, pl.f_parts, 8)
            launch("dW")(part, x.p, x.s0, x.s1, g, N, K, M, pl.rows_per_slice)
            launch("sum_slices")(dW, part, pl.slices, K * M)
    if f_out is not None:
        return None
    return _fetch(lib, f64, pl.f64 - 1, stream)


def _fetch(lib, owner, i, stream) -> float:
    # element i of a float64 scratch buffer as a Python float: one copy, one synchronisation
    if lib != "numba":
        return float(owner[i].item() if lib == "torch" else owner[i])
    host = owner[i:i + 1].copy_to_host(stream=stream)
    if stream:
        stream.synchronize()        # an asynchronous copy: wait before reading
    return float(host[0])


def _from_host(x, W, y, a0, grads, want):
    # host inputs: copy in, compute, copy back
    xa, Wa, ya, (N, K, M) = _inputs.inputs(x, W, y)
    xd, Wd, yd = (cuda.to_device(a) for a in (xa, Wa, ya))
    if not grads:
        return run(None, None, None, xd, Wd, yd, a0, False)
    outs = [cuda.device_array(s, xa.dtype) if want & b else None for s, b in _outputs(N, K, M)]
    f = run(*outs, xd, Wd, yd, a0, True, want=want)
    host = [None if o is None else o.copy_to_host() for o in outs]
    if _inputs.is_torch_tensor(x):
        torch = sys.modules["torch"]
        host = [None if h is None else torch.from_numpy(h) for h in host]
    return (f, *host)


def _outputs(N, K, M):
    # (shape, WANT_* bit) of dx, dW, dy
    return (((N, K), WANT_DX), ((K, M), WANT_DW), ((N, M), WANT_DY))


def available() -> tuple[bool, str]:
    """(usable, reason): whether a CUDA GPU (or the simulator) can run the kernels."""
    try:
        if cuda.is_available():
            return True, ""
        cuda.detect()  # raises with the driver's own reason when it can
    except Exception as e:  # noqa: BLE001 - any driver failure means "not usable"
        return False, f"{type(e).__name__}: " + " ".join(str(e).split()).rstrip(": ")
    return False, "numba.cuda found no CUDA GPU (no driver or no device)"
