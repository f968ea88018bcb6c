"""numba.cuda, imported behind the simulator shim, and what the kernels share.

Every module of the backend takes numba.cuda from here, so that the shim runs
before numba-cuda's typing first loads.  Also here: the kernels' argument
types (`ptr`, `numba_float`) and the device functions rows.py and products.py
call (`relu_backward`, `block_sum`).

A kernel's array argument is a pointer to its element [0, 0] and the element
strides (`ptr(T)`, `types.CPointer`): on a GPU the host passes an integer
address, which numba-cuda hands to the driver as it is, with no per-call
conversion of the array.  In the simulator, where "device memory" is host
memory, the host passes a 1-D NumPy view starting at that element instead
(host.operand), and the same kernel source indexes both.
"""

import numpy as np

if not hasattr(np, "row_stack"):
    # numba-cuda ≤ 0.30 registers an overload for np.row_stack when its
    # typing first loads; NumPy 2.5 removed that alias of np.vstack
    np.row_stack = np.vstack

from numba import config, cuda, float32, float64, int32, int64, types, uint64  # noqa: E402,F401

from .._scalar import relu_backward as _relu_backward_py  # noqa: E402

SIMULATOR = bool(config.ENABLE_CUDASIM)

# g = 2·z·relu'(h), torch's way (see _scalar.py)
relu_backward = cuda.jit(device=True, inline=True)(_relu_backward_py)


def numba_float(dtype):
    """numba's float32 or float64 for a NumPy dtype."""
    return float32 if np.dtype(dtype) == np.float32 else float64


def ptr(T):
    """The argument type of an array of T: a raw device pointer."""
    return types.CPointer(T)


@cuda.jit(device=True, inline=True)
def block_sum(buf, v, t):
    # fixed-order tree sum over the block's threads into buf[0] (buf: one float64 a thread,
    # a power of two of them)
    n = buf.shape[0]
    buf[t] = v
    cuda.syncthreads()
    step = n // 2
    while step > 0:
        if t < step:
            buf[t] += buf[t + step]
        cuda.syncthreads()
        step //= 2
