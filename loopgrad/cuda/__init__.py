"""The CUDA backend: f and its gradients by numba.cuda kernels, chosen by shape.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

    grads(x, W, y, relu_grad_at_zero, want) -> (f, dx, dW, dy)
    loss(x, W, y) -> f

as loopgrad.cpu's, with relu_grad_at_zero and `want` (loopgrad._inputs' WANT_*
bits) validated by the caller (loopgrad.api).  The arrays are checked here, on
their device views, with the CPU path's messages: inputs that live on the GPU
(torch CUDA tensors, CuPy or numba device arrays) are read in place and give
outputs of the same kind on the same device; host inputs are copied in and the
results copied back.  Two kernel families, on the accuracy contract of the
CPU's tiled kernels (h and dx summed in the input dtype; f and dW carried in
float64):

    rows.py      one pass over the rows: K, M ≤ 16
    products.py  three register-tiled products and h's epilogue: larger K or M

Every reduction is deterministic: per-block partials summed in a fixed order
by a second kernel, never float atomics, and the grid is a function of the
shape alone, so the same inputs give the same bits every run.

Importing this package is light (no numba.cuda, no torch): on_gpu is arrays.py,
and the rest (host.py: operands as raw pointers, outputs, scratch, cached plans
and launches; device.py: numba.cuda behind the simulator shim and the kernels'
argument types) is imported by the first call that needs it.
"""

from .._inputs import WANT_ALL
from .arrays import on_gpu

__all__ = ["available", "compute", "grads", "kernels", "loss", "on_gpu"]


def available() -> tuple[bool, str]:
    """(usable, reason): whether a CUDA GPU (or the simulator) can run the kernels.

    Imports numba.cuda (host.py)."""
    try:
        from . import host
    except ImportError as e:
        return False, f"numba.cuda cannot be imported ({e}): pip install 'loopgrad[cuda]'"
    return host.available()


def kernels():
    """loopgrad.cuda.host (the launcher `run` and the kernels behind it), or RuntimeError
    naming why no CUDA GPU can be used."""
    try:
        from . import host
    except ImportError as e:
        raise RuntimeError("device='cuda' needs numba-cuda: pip install 'loopgrad[cuda]' "
                           f"({e})") from None
    ok, why = host.available()
    if not ok:
        raise RuntimeError(f"device='cuda' but no CUDA GPU is usable: {why.rstrip('.')}. "
                           "Without a GPU, NUMBA_ENABLE_CUDASIM=1 (set before numba is "
                           "imported) runs the kernels in Numba's CUDA simulator.")
    return host


def compute(x, W, y, relu_grad_at_zero: float, grads: bool, want: int = WANT_ALL,
            f_on_device: bool = False):
    """f, or (f, dx, dW, dy), on the GPU for inputs that live there or on the host; with
    grads, the gradients `want` (WANT_* bits) does not name are None.  f_on_device (torch
    CUDA tensors only): f as a float64 tensor of shape (1,) on x's device, with no host
    synchronisation (loopgrad.torch.loss).  RuntimeError (`kernels`) without a usable GPU."""
    return kernels().compute(x, W, y, relu_grad_at_zero, grads, want, f_on_device)


def grads(x, W, y, relu_grad_at_zero: float, want: int = WANT_ALL):
    """(f, dx, dW, dy) on the GPU, None for the gradients `want` does not name: see `compute`."""
    return compute(x, W, y, relu_grad_at_zero, grads=True, want=want)


def loss(x, W, y) -> float:
    """f on the GPU: see `compute`."""
    return compute(x, W, y, 0.0, grads=False)
