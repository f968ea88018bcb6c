"""Public entry points: validate, then route to a backend, loopgrad.cpu or loopgrad.cuda
(two packages with the same grads and loss).

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)
"""

from typing import Any, NamedTuple

import numpy as np

from . import _inputs, cuda


class Grads(NamedTuple):
    """f and its gradients. f is a float; dx, dW, dy have the shapes of x, W, y (or are
    None where `wrt` did not ask for them)."""

    f: float
    dx: Any
    dW: Any
    dy: Any


_CPU = None


def _cpu():
    # loopgrad.cpu, imported (with Numba) on the first call, not with loopgrad
    global _CPU
    if _CPU is None:
        from . import cpu as _CPU
    return _CPU


def _device(device, x, W, y) -> str:
    # "cpu" or "cuda": where the call runs; all three inputs must live together
    if device is None and type(x) is type(W) is type(y) is np.ndarray:
        return "cpu"  # the common case, without the per-library checks
    where = [cuda.on_gpu(a) for a in (x, W, y)]
    if any(where) and not all(where):
        places = ", ".join(f"{n} on the {'GPU' if g else 'host'}" for n, g in zip("xWy", where))
        raise ValueError(f"x, W and y must be on the same device, got {places}")
    if device is None:
        return "cuda" if where[0] else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be None, 'cpu' or 'cuda', got {device!r}")
    if device == "cpu" and where[0]:
        raise ValueError("device='cpu' but x, W and y are on the GPU: copy them to the host "
                         "first, or use device='cuda' (or None)")
    return device


def grads(x, W, y, *, wrt=_inputs.WRT_ALL, out=None, relu_grad_at_zero: float = 0.0,
          device: str | None = None) -> Grads:
    """f = Σ (max(x·W, 0) − y)² and its gradients with respect to x, W and y (or those in `wrt`).

    Parameters
    ----------
    x : array (N, K), W : array (K, M), y : array (N, M)
        NumPy arrays (any strides, read-only and memory maps included) or torch
        CPU tensors, all float32 or all float64.  They are never modified.
    wrt : str or tuple of str, default ("x", "W", "y")
        The inputs to differentiate with respect to, by name: ``wrt="W"`` when
        only W's gradient is needed (fitting a layer's weights), ``wrt=()`` for
        f alone.  Gradients not asked for are None and cost nothing: no dx
        product, no dy stores, no N×M temporary beyond what the others need.
        f, and every gradient computed, has the same bits as in the call with
        all three (one exception: float32 inputs whose dW sums overflow or meet
        an infinite input, which a call with dW recomputes in float64; a call
        without dW keeps float32's h, f then within about 1e-7 relative).
    out : None or tuple (dx, dW, dy)
        Arrays to write the gradients into, NumPy's convention (None in the
        tuple: allocate that one; None for a gradient not in `wrt`): C-contiguous,
        writable, of the gradient's shape and the inputs' dtype, overlapping
        neither the inputs nor each other.  Reusing them across calls saves
        the zeroing of fresh pages, which the OS does inside the call, where
        you keep each call's results (a result you drop already lends its
        memory to the next call: see Returns).  CPU only.
    relu_grad_at_zero : float in [0, 1]
        relu'(0), the subgradient used where h = x·W is exactly 0.
        0.0 is torch.relu's (and the notebook's d_relu); 0.5 is what autograd
        gives through torch.maximum(h, 0); 1.0 is torch.clamp(h, min=0)'s.
    device : None, "cpu" or "cuda"
        None runs on the GPU when x lives there (torch CUDA tensors, CuPy or
        numba device arrays: used in place, results on the same device and of
        the same kind) and on the CPU otherwise.  "cuda" with host arrays
        copies them in and the results back.

    Returns
    -------
    Grads(f, dx, dW, dy)
        f as a Python float summed in float64; dx, dW, dy new C-contiguous
        arrays of the inputs' dtype (torch tensors if x is one, sharing memory
        with the arrays loopgrad allocated; the arrays of `out` where given),
        None for those not in `wrt`.  Large ones (1 MiB and up, CPU) may lie
        on the memory of an earlier call's result that nothing references
        any more (no array, view, tensor or memoryview of it): a loop that
        drops each result then faults in no new pages (10⁶×16×16 float32:
        23 → 13 ms a call).  A result you hold is never written again.

    Raises
    ------
    TypeError
        non-float, mixed or non-native dtypes; inputs that are not arrays.
    ValueError
        arrays that are not 2-D, shapes that do not fit together,
        relu_grad_at_zero outside [0, 1], inputs on different devices, a name in
        `wrt` other than "x", "W", "y" (TypeError if wrt is not a str or names),
        an array of `out` that does not fit (see out; nothing is written then).
    RuntimeError
        device="cuda" without a usable CUDA GPU (the message says why).

    Examples
    --------
    >>> import numpy as np, loopgrad
    >>> x = np.array([[1.0, 2.0]]); W = np.array([[1.0], [-1.0]]); y = np.array([[0.5]])
    >>> loopgrad.grads(x, W, y).f   # h = -1, z = 0 - 0.5
    0.25
    >>> loopgrad.grads(x, W, y, wrt="W").dx is None
    True
    """
    a0 = _inputs.check_relu_grad_at_zero(relu_grad_at_zero)
    want = _inputs.check_wrt(wrt)
    if _device(device, x, W, y) == "cuda":
        if out is not None:
            raise ValueError("out= takes host arrays: the GPU path allocates its outputs on the "
                             "device (pass out=None)")
        return Grads(*cuda.grads(x, W, y, a0, want))
    xa, Wa, ya, _ = _inputs.inputs(x, W, y)
    given = _inputs.check_out(out, want, xa, Wa, ya)
    f, *got = _cpu().grads(xa, Wa, ya, a0, want, given)
    if type(x) is not np.ndarray and _inputs.is_torch_tensor(x):
        import torch

        got = [None if a is None else torch.from_numpy(a) for a in got]
    if out is not None:  # the caller's own objects back where it gave them
        got = [o if g is not None else a for a, g, o in zip(got, given, out)]
    return Grads(float(f), *got)


def loss(x, W, y, *, device: str | None = None) -> float:
    """f = Σ (max(x·W, 0) − y)², summed in float64; the forward alone, no gradient work.

    Takes the same inputs (and device) as `grads` and raises the same errors.  Equal
    to `grads(...).f` to float64 rounding: the same chunks, summed in an order that
    may differ within a chunk.  One exception: where some float32 kernels' sums of the
    gradients could overflow (values near 1e19) or meet an infinite input, `grads`
    recomputes in float64 and `loss`, which has no gradient to overflow, keeps its float32
    h: the two f then differ by h's float32 rounding (about 3e-15 relative in the test's
    case; up to about 1e-7 where an infinite input gives an h of −inf, which the ReLU
    clips to a finite f), both within the accuracy contract (docs/accuracy.md).
    """
    if _device(device, x, W, y) == "cuda":
        return cuda.loss(x, W, y)
    xa, Wa, ya, _ = _inputs.inputs(x, W, y)
    return float(_cpu().loss(xa, Wa, ya))
