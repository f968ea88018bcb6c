"""numba.cuda, imported behind the simulator shim, and the device functions the kernels share.

Every module of the backend takes numba.cuda from here, so that the shim runs
before numba-cuda's typing first loads.  _relu_backward and _block_sum are
private to the package: rows.py and products.py call them from their kernels.
"""

import numpy as np

if not hasattr(np, "row_stack"):
    # numba-cuda ≤ 0.30 registers an overload for np.row_stack when its
    # typing first loads; NumPy 2.5 removed that alias of np.vstack
    np.row_stack = np.vstack

from numba import cuda, float64  # noqa: E402,F401 - after the shim above; float64: the kernels'

from .._scalar import relu_backward  # noqa: E402

# g = 2·z·relu'(h), torch's way (see _scalar.py)
_relu_backward = cuda.jit(device=True, inline=True)(relu_backward)


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

