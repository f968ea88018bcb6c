"""loopgrad: f = Σ (max(x·W, 0) − y)² and its gradients, in explicit loops.

    >>> import loopgrad
    >>> f, dx, dW, dy = loopgrad.grads(x, W, y)

Importing loopgrad is light: Numba compiles (or loads from its disk cache) on
the first call, and torch is imported only when you pass torch tensors.
"""

from ._version import __version__
from .api import Grads, grads, loss

__all__ = ["Grads", "grads", "loss", "__version__"]
