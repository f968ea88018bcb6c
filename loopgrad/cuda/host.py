"""The GPU side of the API: inputs on (or copied to) the device, outputs of the caller's kind.

Host work only: checks, views, allocation, streams.  The kernels are in
`loopgrad.cuda`, imported (with numba.cuda) only when a call needs them.
"""

import contextlib
import sys

import numpy as np

from . import _inputs


def _is_numba_device_array(a) -> bool:
    # numba's device arrays, the simulator's fake ones (which lack the interface) included
    return type(a).__module__.startswith("numba.cuda") and hasattr(a, "copy_to_host")


def on_gpu(a) -> bool:
    """True when `a` lives in GPU memory (torch CUDA tensor, CuPy or numba device array)."""
    if _inputs.is_torch_tensor(a):
        return a.device.type == "cuda"
    # look on the type: evaluating the interface can raise or synchronise
    return (getattr(type(a), "__cuda_array_interface__", None) is not None
            or _is_numba_device_array(a))


def kernels():
    """loopgrad.cuda, or RuntimeError naming why no CUDA GPU can be used."""
    try:
        from . import cuda as kernels
    except ImportError as e:
        raise RuntimeError("device='cuda' needs numba-cuda: pip install 'loopgrad[cuda]' "
                           f"({e})") from None
    ok, why = kernels.available()
    if not ok:
        raise RuntimeError(f"device='cuda' but no CUDA GPU is usable: {why.rstrip('.')}. Without a GPU, "
                           "NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) runs the "
                           "kernels in Numba's CUDA simulator.")
    return kernels


def _device_view(name, a, cuda):
    # a numba view of a GPU array, after the same checks as on the host
    if _inputs.is_torch_tensor(a):
        a = _inputs.torch_detached(name, a)
        _inputs.check_meta(name, tuple(a.shape), np.dtype(str(a.dtype).removeprefix("torch.")))
    elif _is_numba_device_array(a):
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


def _stream_and_device(x, lib, cuda):
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


def _empty(lib, x, shape, dtype, cuda, stream):
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


def compute(x, W, y, relu_grad_at_zero: float, grads: bool, want: int = _inputs.WANT_ALL,
            f_on_device: bool = False):
    """f, or (f, dx, dW, dy), on the GPU for inputs that live there or on the host; with
    grads, the gradients `want` (WANT_* bits) does not name are None.  f_on_device (torch
    CUDA tensors only): f as a float64 tensor of shape (1,) on x's device, with no host
    synchronisation (loopgrad.torch.loss)."""
    k = kernels()
    from numba import cuda
    if on_gpu(x):
        if _library(x) == "torch" and not (x.device == W.device == y.device):
            raise ValueError(f"x, W and y must be on the same device, got {x.device}, "
                             f"{W.device} and {y.device}")
        xd, Wd, yd = (_device_view(n, a, cuda) for n, a in (("x", x), ("W", W), ("y", y)))
        N, K, M = _inputs.check_shapes(xd, Wd, yd)
        lib = _library(x)
        stream, dev = _stream_and_device(x, lib, cuda)
        with (cuda.gpus[dev] if dev is not None else contextlib.nullcontext()):
            def scratch(shape, dtype):
                return _empty(lib, x, shape, dtype, cuda, stream)[1]

            f_t, f_view = (_empty(lib, x, 1, np.float64, cuda, stream) if f_on_device
                           else (None, None))
            if not grads:
                f = k.run(None, None, None, xd, Wd, yd, relu_grad_at_zero, False, stream,
                          scratch, f_out=f_view)
                return f_t if f_on_device else f
            outs = [_empty(lib, x, s, xd.dtype, cuda, stream) if want & b else (None, None)
                    for s, b in _outputs(N, K, M)]
            f = k.run(*(o[1] for o in outs), xd, Wd, yd, relu_grad_at_zero, True, stream, scratch,
                      want, f_out=f_view)
            return (f_t if f_on_device else f, *(o[0] for o in outs))
    # host inputs: copy in, compute, copy back
    xa, Wa, ya, (N, K, M) = _inputs.inputs(x, W, y)
    xd, Wd, yd = (cuda.to_device(a) for a in (xa, Wa, ya))
    if not grads:
        return k.run(None, None, None, xd, Wd, yd, relu_grad_at_zero, False)
    outs = [cuda.device_array(s, xa.dtype) if want & b else None for s, b in _outputs(N, K, M)]
    f = k.run(*outs, xd, Wd, yd, relu_grad_at_zero, True, want=want)
    host = [None if o is None else o.copy_to_host() for o in outs]
    if _inputs.is_torch_tensor(x):
        torch = sys.modules["torch"]
        host = [None if h is None else torch.from_numpy(h) for h in host]
    return (f, *host)


def _outputs(N, K, M):
    # (shape, WANT_* bit) of dx, dW, dy
    return (((N, K), _inputs.WANT_DX), ((K, M), _inputs.WANT_DW), ((N, M), _inputs.WANT_DY))


# the backend interface loopgrad.cpu offers too
def grads(x, W, y, relu_grad_at_zero: float, want: int = _inputs.WANT_ALL):
    """(f, dx, dW, dy) on the GPU, None for the gradients `want` does not name: see `compute`."""
    return compute(x, W, y, relu_grad_at_zero, grads=True, want=want)


def loss(x, W, y) -> float:
    """f on the GPU: see `compute`."""
    return compute(x, W, y, 0.0, grads=False)
