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
    if h > 0.0:
        return 2.0 * z
    if h == 0.0:
        return 0.0 if relu_grad_at_zero == 0.0 else relu_grad_at_zero * (2.0 * z)
    if h < 0.0 or relu_grad_at_zero == 1.0:
        return 0.0
    return 2.0 * z  # h is NaN
