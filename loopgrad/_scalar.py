"""The per-element rule shared by every kernel, written once for the CPU and CUDA targets.

Plain Python here; loopgrad.cpu compiles it with njit and loopgrad.cuda as a
CUDA device function.
"""


def relu_backward(h, z, relu_grad_at_zero):
    """g = 2·z·relu'(h), selected the way torch's backward selects it.

    A select, not a product: where relu' is 0 an infinite or NaN z does not
    leak through (0·inf would be NaN).  A NaN h passes 2·z (NaN) on as
    torch.relu and torch.maximum do, except for relu'(0) = 1, whose op,
    torch.clamp(min=0), drops it (its mask h ≥ 0 is false for NaN).
    """
    t = 2.0 * z
    at_tie = 0.0 if relu_grad_at_zero == 0.0 else relu_grad_at_zero * t
    at_nan = 0.0 if relu_grad_at_zero == 1.0 else t  # t is NaN where h is
    # one expression, no early returns: LLVM turns it into selects and vectorizes it
    return t if h > 0.0 else (at_tie if h == 0.0 else (0.0 if h < 0.0 else at_nan))
