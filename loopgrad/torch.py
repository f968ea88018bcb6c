"""loopgrad as a PyTorch autograd op: swap one line of a training loop.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

    import loopgrad.torch
    loss = loopgrad.torch.loss(x, W, y)        # was: ((torch.relu(x @ W) - y) ** 2).sum()
    loss.backward()                            # loopgrad's dx, dW, dy, where requires_grad

`import loopgrad` does not import this module (nor torch); import it
explicitly.  Inside it `import torch` is PyTorch itself (absolute imports).
"""

import numpy as np
import torch

from . import _inputs, api, cuda

_DOUBLE_BACKWARD = (
    "loopgrad.torch.loss supports first derivatives only: its gradients have no "
    "autograd graph of their own, so they cannot be differentiated again (double "
    "backward, Hessian-vector products, gradient penalties). Write the loss in torch "
    "ops for that: ((torch.relu(x @ W) - y) ** 2).sum()")


def loss(x, W, y, relu_grad_at_zero: float = 0.0) -> torch.Tensor:
    """f = Σ (max(x·W, 0) − y)² as a 0-d tensor whose backward gives loopgrad's gradients.

    Parameters
    ----------
    x : tensor (N, K), W : tensor (K, M), y : tensor (N, M)
        torch tensors, all float32 or all float64, all on the CPU or all on
        one CUDA GPU.  Contiguous tensors are read in place (no copies);
        others are copied once.  Any of them may require grad, or be the
        output of earlier ops.
    relu_grad_at_zero : float in [0, 1]
        relu'(0), the subgradient where x·W is exactly 0: 0.0 is torch.relu's,
        0.5 torch.maximum(h, 0)'s, 1.0 torch.clamp(h, min=0)'s.

    Returns
    -------
    tensor
        f, 0-d, of the inputs' dtype and device (summed in float64, then
        rounded once: inf past float32's range, as torch's own sum).  When
        grad mode is on and any input requires grad, its backward hands each
        input that requires grad ∂f/∂input times the incoming gradient;
        otherwise (``torch.no_grad()``, or no input requiring grad) only the
        forward runs and no gradient is computed.

    Notes
    -----
    A registered PyTorch op (``torch.ops.loopgrad.loss``, see `_op`):
    ``torch.compile(..., fullgraph=True)`` keeps it in the graph.  Forward
    computes f and, when grad mode is on, exactly the gradients of the inputs
    that require grad (W alone when fitting weights: no dx, no dy);
    backward scales them by the incoming gradient.

    First derivatives only: double backward is not supported.  A backward
    with ``create_graph=True`` still works, but differentiating the
    gradients it produced raises RuntimeError.  Forward-mode AD (jvp),
    vmap and the other ``torch.func`` transforms are not supported either.

    Raises
    ------
    TypeError, ValueError
        as `loopgrad.grads`: inputs that are not torch tensors, wrong
        dimensions or dtypes, shapes that do not fit, devices that differ,
        relu_grad_at_zero outside [0, 1].
    """
    for name, a in (("x", x), ("W", W), ("y", y)):
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(a).__name__} "
                            f"(use loopgrad.grads for NumPy arrays)")
    a0 = _inputs.check_relu_grad_at_zero(relu_grad_at_zero)
    want = 0
    if torch.is_grad_enabled():
        for a, bit in ((x, _inputs.WANT_DX), (W, _inputs.WANT_DW), (y, _inputs.WANT_DY)):
            if a.requires_grad:
                want |= bit
    if torch.compiler.is_compiling():  # traced: the registered op, which the graph keeps
        _check(x, W, y)  # on fake tensors the op's kernel, and loopgrad.grads's checks, do not run
        return torch.ops.loopgrad.loss(x, W, y, a0, want)[0]
    # eager: the same computation through an autograd.Function, whose dispatch costs less
    # than the op's (10×4×4: 37 against 87–160 µs a forward, dev/machines_v8.md 11c)
    if not (x.device == W.device == y.device):
        _check(x, W, y)  # says which devices
    if want == 0:
        return _compute(x, W, y, a0, 0)[0]
    return _Eager.apply(x, W, y, a0, want)


def _check(x, W, y):
    # loopgrad.grads's checks in torch's terms, so that they also run while torch.compile
    # traces (on fake tensors, where the op's kernel does not run)
    for name, a in (("x", x), ("W", W), ("y", y)):
        if a.dim() != 2:
            raise ValueError(f"{name} must be 2-D, got {a.dim()}-D array of shape {tuple(a.shape)}")
        if a.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got torch {a.dtype} "
                            f"(cast it with {name}.float() or {name}.double())")
    if W.shape[0] != x.shape[1] or y.shape != (x.shape[0], W.shape[1]):
        raise ValueError(f"shapes do not match: x {tuple(x.shape)} must be (N, K), W "
                         f"{tuple(W.shape)} (K, M) and y {tuple(y.shape)} (N, M)")
    if not (x.dtype == W.dtype == y.dtype):
        raise TypeError(f"x, W and y must have the same dtype, got {x.dtype}, {W.dtype} and "
                        f"{y.dtype} (cast them all to one of float32, float64)")
    if not (x.device == W.device == y.device):
        raise ValueError(f"x, W and y must be on the same device, got {x.device}, {W.device} "
                         f"and {y.device}")


# The op.  Forward computes f and the gradients `want` (loopgrad._inputs' WANT_* bits)
# names, in one fused call, and returns them (empty tensors for the others): autograd
# saves them, and backward only scales them.  `want` is an argument of the op because its
# kernel runs below autograd, where which inputs require grad is not known.  Recomputing instead (f in forward, the
# gradients in backward) costs a second pass over x and y per step.  Measured by
# benchmarks/torch_save_vs_recompute.py (forward + backward, float32, K = M = 16,
# medians; the 2-core CPU shared with other jobs):
#   N = 10⁶, 2-core CPU: save 136 ms, recompute 184 ms (1.35× slower)
#   N = 10⁶, H200:       save 4.3 ms, recompute 6.7 ms (1.55× slower)
#   N = 10⁴, H200:       save 1.6 ms, recompute 2.7 ms (CPU: 0.73, 1.12 ms)
# The custom-op API (torch.library.custom_op) is what torch.compile keeps in one graph;
# an autograd.Function over NumPy and Numba breaks it (field notes §4).
@torch.library.custom_op("loopgrad::loss", mutates_args=())
def _op(x: torch.Tensor, W: torch.Tensor, y: torch.Tensor, relu_grad_at_zero: float,
        want: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # an op's outputs are tensors: empty ones for the gradients not wanted
    f, *grads = _compute(x, W, y, relu_grad_at_zero, want)
    return (f, *(x.new_empty(0) if g is None else g for g in grads))


def _compute(x, W, y, relu_grad_at_zero, want):
    # (f, dx, dW, dy) as tensors, None for the gradients not wanted: the op's kernel, and
    # the eager path's forward.  CPU tensors go to loopgrad as NumPy views (its checks,
    # without its conversions of each tensor: 20 µs of a 10×4×4 call)
    if x.device.type != "cpu":  # on the GPU: f stays there, no host synchronisation
        if want == 0:
            f, grads = cuda.compute(x, W, y, 0.0, False, f_on_device=True), (None, None, None)
        else:
            f, *grads = cuda.compute(x, W, y, relu_grad_at_zero, True, want, f_on_device=True)
        return (f.reshape(()).to(x.dtype), *grads)
    x, W, y = (_inputs.torch_detached(n, a).numpy() for n, a in (("x", x), ("W", W), ("y", y)))
    if want == 0:  # the forward alone (no_grad, or nothing requires grad): loopgrad.loss
        f, grads = api.loss(x, W, y), (None, None, None)
    else:
        f, *grads = api.grads(x, W, y, wrt=_inputs.WRT_NAMES[want], relu_grad_at_zero=relu_grad_at_zero)
    grads = [None if g is None else torch.from_numpy(g) for g in grads]
    # f (a float64) rounded once to the inputs' dtype: inf past float32's range, as torch's
    # own float32 sum gives (torch.scalar_tensor refuses such a value: a RuntimeError).
    # NumPy rounds it only there: its errstate costs a µs a call
    if abs(f) > _FLOAT32_MAX and x.dtype == np.float32:
        with np.errstate(over="ignore"):
            f = float(np.float32(f))
    return (torch.scalar_tensor(f, dtype=_TORCH_DTYPE[x.dtype.name]), *grads)


_TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@_op.register_fake
def _(x, W, y, relu_grad_at_zero, want):
    N, K = x.shape
    M = W.shape[1]
    return (x.new_empty(()),
            *(x.new_empty(s) if want & b else x.new_empty(0)
              for s, b in (((N, K), _inputs.WANT_DX), ((K, M), _inputs.WANT_DW),
                           ((N, M), _inputs.WANT_DY))))


def _setup_context(ctx, inputs, output):
    x, W, y, _, want = inputs
    ctx.want = want
    ctx.save_for_backward(*output[1:])
    ctx.mark_non_differentiable(*output[1:])
    # Referenced, not saved (the gradients are computed: no version check
    # needed), to tie them to x, W and y when backward builds a graph.
    ctx.inputs = (x, W, y)


def _backward(ctx, df, *_):
    out = [g if ctx.want & b else None
           for g, b in zip(ctx.saved_tensors, (_inputs.WANT_DX, _inputs.WANT_DW, _inputs.WANT_DY))]
    # df is 1 after loss.backward(): hand the saved gradients over as they are
    # (autograd copies one only if something else still holds it).  Scaling dx
    # and dy anyway costs 60 ms at 10⁶×16×16 float32 on 2 cores.  On a GPU,
    # reading df would synchronise, and a compiled backward cannot read it; there
    # multiplying is the way.
    # a traced backward (torch.compile, AOT autograd) sees df as a fake or functional tensor
    eager = type(df) is torch.Tensor and not torch.compiler.is_compiling()
    if not (eager and df.device.type == "cpu" and df.item() == 1.0):
        out = [None if g is None else g * df for g in out]
    if eager and torch.is_grad_enabled():  # create_graph=True: these must not be differentiated
        out = [None if g is None else _FirstOrderOnly.apply(g, df, *ctx.inputs) for g in out]
    return (*out, None, None)


_op.register_autograd(_backward, setup_context=_setup_context)


class _Eager(torch.autograd.Function):
    # the op's forward and backward, for eager calls
    @staticmethod
    def forward(ctx, x, W, y, a0, want):
        f, *grads = _compute(x, W, y, a0, want)
        ctx.want = want
        ctx.save_for_backward(*grads)
        ctx.inputs = (x, W, y)
        return f

    @staticmethod
    def backward(ctx, df):
        return _backward(ctx, df)


class _FirstOrderOnly(torch.autograd.Function):
    # The identity on g, as a function of everything g depends on, whose
    # backward refuses.  Without the dependencies, autograd would prune the
    # node from a second differentiation with respect to x, W or y and
    # report zeros (torch.autograd.grad(..., allow_unused=True), gradgradcheck).
    @staticmethod
    def forward(ctx, g, *depends_on):
        return g.view_as(g)

    @staticmethod
    def backward(ctx, _):
        raise RuntimeError(_DOUBLE_BACKWARD)
