"""loopgrad as a PyTorch autograd op: swap one line of a training loop.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

    import loopgrad.torch
    loss = loopgrad.torch.loss(x, W, y)        # was: ((torch.relu(x @ W) - y) ** 2).sum()
    loss.backward()                            # loopgrad's dx, dW, dy, where requires_grad

`import loopgrad` does not import this module (nor torch); import it
explicitly.  Inside it `import torch` is PyTorch itself (absolute imports).
"""

import torch

from . import _inputs, api

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
        rounded once).  When grad mode is on and any input requires grad, its
        backward hands each input that requires grad ∂f/∂input times the
        incoming gradient; otherwise (``torch.no_grad()``, or no input
        requiring grad) only the forward runs and no gradient is computed.

    Notes
    -----
    First derivatives only: double backward is not supported.  A backward
    with ``create_graph=True`` still works, but differentiating the
    gradients it produced raises RuntimeError.  Forward-mode AD (jvp) and
    vmap are not supported either.

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
    if torch.is_grad_enabled() and (x.requires_grad or W.requires_grad or y.requires_grad):
        return _Loss.apply(x, W, y, a0)
    return _scalar(api.loss(x, W, y), x)


def _scalar(f: float, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(f, dtype=like.dtype, device=like.device)


class _Loss(torch.autograd.Function):
    # Forward computes f and all three gradients in one fused call and saves
    # those the inputs need; backward only scales them by the incoming
    # gradient.  Recomputing instead (loopgrad.loss in forward, loopgrad.grads
    # in backward) costs a second pass over x and y per step.  Measured by
    # benchmarks/torch_save_vs_recompute.py (forward + backward, float32,
    # K = M = 16, medians; the 2-core CPU shared with other jobs):
    #   N = 10⁶, 2-core CPU: save 136 ms, recompute 184 ms (1.35× slower)
    #   N = 10⁶, H200:       save 4.3 ms, recompute 6.7 ms (1.55× slower)
    #   N = 10⁴, H200:       save 1.6 ms, recompute 2.7 ms (CPU: 0.73, 1.12 ms)
    # alike with W alone or x, W and y requiring grad.  Saving wins.
    @staticmethod
    def forward(ctx, x, W, y, a0):
        f, dx, dW, dy = api.grads(x, W, y, relu_grad_at_zero=a0)
        need = ctx.needs_input_grad[:3]
        ctx.save_for_backward(*(g if n else None for g, n in zip((dx, dW, dy), need)))
        # Referenced, not saved (the gradients are computed: no version check
        # needed), to tie them to x, W and y when backward builds a graph.
        ctx.inputs = (x, W, y)
        return _scalar(f, x)

    @staticmethod
    def backward(ctx, df):
        out = list(ctx.saved_tensors)
        # df is 1 after loss.backward(): hand the saved gradients over as they are
        # (autograd copies one only if something else still holds it).  Scaling dx
        # and dy anyway costs 60 ms at 10⁶×16×16 float32 on 2 cores.  On a GPU,
        # reading df would synchronise; multiplying there is cheap.
        if not (df.device.type == "cpu" and df.item() == 1.0):
            out = [None if g is None else g * df for g in out]
        if torch.is_grad_enabled():  # create_graph=True: these gradients must not be differentiated
            out = [None if g is None else _FirstOrderOnly.apply(g, df, *ctx.inputs) for g in out]
        return (*out, None)


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
