"""The implementations `loopgrad bench` times: one small object each.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

All of them compute the notebook's function and its three gradients,

    f = Σ (max(x·W, 0) − y)²,   dx = ∂f/∂x,   dW = ∂f/∂W,   dy = ∂f/∂y,

with relu'(0) = 0.5, the subgradient autograd gives through the notebook's
`torch.maximum(h, 0)` (and JAX through `jnp.maximum`), so that every one of
them is checked against the same float64 reference, ties included.

An implementation has
- `key` (the `--impl` name) and `label` (one line for the table legend);
- `unavailable()`: None, or why it cannot run here (it is then listed as
  skipped with that reason, never dropped);
- `prepare(x, W, y)`: converts the NumPy inputs (to torch tensors, JAX or GPU
  arrays) outside the timed region and returns a `Prepared`: `run()` is the
  timed call (f and all three gradients; GPU implementations synchronize
  before returning), `host(out)` turns its result into (f, dx, dW, dy) as
  host NumPy arrays for the correctness check, and `settle()` waits for what
  the first call left compiling (loopgrad's kernels, behind a cold first call);
- `threads()`: a context the whole cell (check, warm-up, timing) runs in;
- `skip_on_error`: a failure of prepare or of the first call is a skip with
  the reason (torch.compile, the CUDA backend still being built) instead of an
  error.

Imports of torch and JAX happen inside the methods: importing this module
costs nothing.
"""

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

RELU_GRAD_AT_ZERO = 0.5


@dataclass
class Prepared:
    run: Callable[[], Any]
    host: Callable[[Any], tuple]
    # after the first call: wait for what it left compiling (loopgrad's kernels compile
    # behind a cold first call), so that no timed call runs a kernel in transition
    settle: Callable[[], Any] = lambda: None


def _to_numpy(a) -> np.ndarray:
    # torch tensors (any device), numba device arrays, JAX arrays, NumPy arrays
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    return np.asarray(a)


def _host4(out) -> tuple:
    f, dx, dW, dy = out
    return (float(_to_numpy(f)), _to_numpy(dx), _to_numpy(dW), _to_numpy(dy))


def _no_torch() -> "str | None":
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch not installed (pip install torch)"
    return None


def _no_cuda() -> "str | None":
    reason = _no_torch()
    if reason:
        return reason
    import torch

    return None if torch.cuda.is_available() else "no CUDA GPU"


class Impl:
    key = ""
    label = ""
    device = "cpu"
    skip_on_error = False

    def unavailable(self) -> "str | None":
        return None

    def prepare(self, x, W, y) -> Prepared:
        raise NotImplementedError

    def threads(self):
        return contextlib.nullcontext()

    def kernel(self, N, K, M, dtype) -> "str | None":
        """Which kernel this implementation runs at the shape, where it chooses one."""
        return None


# ------------------------------------------------------------------ loopgrad

class Loopgrad(Impl):
    key, label = "loopgrad", "loopgrad.grads, Numba parallel kernels (all Numba threads)"

    def prepare(self, x, W, y):
        import loopgrad
        from .. import cpu

        def settle():
            # what the first call left compiling, and the fused kernel compiled for the
            # shape, which a long run at it gets (loopgrad/cpu/shaped.py)
            cpu.background.wait()
            cpu.specialize(*x.shape, W.shape[1], x.dtype)

        return Prepared(lambda: loopgrad.grads(x, W, y, relu_grad_at_zero=RELU_GRAD_AT_ZERO),
                        _host4, settle)

    def kernel(self, N, K, M, dtype):
        from .. import cpu

        return cpu.describe(N, K, M, dtype)


class LoopgradOneThread(Loopgrad):
    # The public path with numba.set_num_threads(1) around the whole cell (set
    # outside the timed region): what a user who limits threads gets, parfor
    # scheduling included, rather than the private serial kernel.
    key, label = "loopgrad-1t", "loopgrad.grads on one thread (numba.set_num_threads(1))"

    @contextlib.contextmanager
    def threads(self):
        import numba

        before = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            yield
        finally:
            numba.set_num_threads(before)


class LoopgradCUDA(Impl):
    key, label = "loopgrad-cuda", "loopgrad.grads(..., device=\"cuda\") on torch CUDA tensors"
    device = "cuda"
    skip_on_error = True  # the CUDA backend is being built: a failure is a skip, with the reason

    def unavailable(self):
        reason = _no_cuda()
        if reason:
            return reason
        import loopgrad

        if "device" not in inspect.signature(loopgrad.grads).parameters:
            return "loopgrad.grads has no device= parameter in this version"
        return None

    def prepare(self, x, W, y):
        import torch

        import loopgrad

        xt, Wt, yt = (torch.from_numpy(a).to("cuda") for a in (x, W, y))

        def run():
            out = loopgrad.grads(xt, Wt, yt, relu_grad_at_zero=RELU_GRAD_AT_ZERO, device="cuda")
            torch.cuda.synchronize()
            return out

        return Prepared(run, _host4)


# --------------------------------------------------------------------- NumPy

class NumpyHand(Impl):
    key, label = "numpy", "NumPy hand formula (loopgrad.reference.numpy_hand)"

    def prepare(self, x, W, y):
        from .. import reference

        return Prepared(lambda: reference.numpy_hand(x, W, y, RELU_GRAD_AT_ZERO), _host4)


# --------------------------------------------------------------------- torch

def _sync(device):
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


class TorchAutograd(Impl):
    """Autograd of the notebook expression: torch.maximum(h, 0), trace(zᵀz), backward()."""

    key, label = "torch", "torch autograd of the notebook expression (maximum, trace(z.T @ z))"

    def __init__(self, device="cpu"):
        self.device = device
        if device == "cuda":
            self.key, self.label = "torch-cuda", "torch CUDA autograd of the notebook expression"

    def unavailable(self):
        return _no_cuda() if self.device == "cuda" else _no_torch()

    def prepare(self, x, W, y):
        import torch

        xt, Wt, yt = (torch.from_numpy(a).to(self.device).requires_grad_() for a in (x, W, y))
        zero = torch.zeros((), dtype=xt.dtype, device=self.device)

        def run():
            for t in (xt, Wt, yt):
                t.grad = None
            z = torch.maximum(xt @ Wt, zero) - yt
            f = torch.trace(z.T @ z)
            f.backward()
            _sync(self.device)
            return f.detach(), xt.grad, Wt.grad, yt.grad

        return Prepared(run, _host4)


def _torch_hand(x, W, y, half):
    # forward h = x·W, z = relu(h) − y, f = Σ z²  →  g = 2·z·relu'(h) (heaviside: 0.5 at h = 0),
    # dx = g·Wᵀ, dW = xᵀ·g, dy = −2z
    import torch

    h = x @ W
    z = torch.relu(h) - y
    g = 2 * z * torch.heaviside(h, half)
    return torch.sum(z * z), g @ W.T, x.T @ g, -2 * z


class TorchHand(Impl):
    key, label = "torch-hand", "torch hand formula (relu, heaviside, three matmuls)"

    def __init__(self, device="cpu", compiled=False):
        self.device, self.compiled = device, compiled
        if compiled:
            self.key, self.label = "torch-compile", "torch.compile of the torch hand formula"
            self.skip_on_error = True  # may not work on every machine: skipped with the reason
        if device == "cuda":
            self.key, self.label = "torch-cuda-hand", "torch CUDA hand formula"

    def unavailable(self):
        return _no_cuda() if self.device == "cuda" else _no_torch()

    def prepare(self, x, W, y):
        import torch

        xt, Wt, yt = (torch.from_numpy(a).to(self.device) for a in (x, W, y))
        half = torch.tensor(RELU_GRAD_AT_ZERO, dtype=xt.dtype, device=self.device)
        fn = _torch_hand
        if self.compiled:
            # A fresh compile per shape (dynamic=False): the first call, timed
            # separately as the compile time, traces and compiles for this shape.
            torch._dynamo.reset()
            # Compile in this process: Inductor's default pool of compile worker
            # processes keeps starting up in the background and slows whatever
            # is timed next on a small machine.
            import torch._inductor.config

            torch._inductor.config.compile_threads = 1
            fn = torch.compile(_torch_hand, dynamic=False)

        def run():
            out = fn(xt, Wt, yt, half)
            _sync(self.device)
            return out

        return Prepared(run, _host4)


# ----------------------------------------------------------------------- JAX

class JaxJit(Impl):
    key, label = "jax", "JAX jit(value_and_grad) of the notebook expression, on the CPU"

    def unavailable(self):
        try:
            import jax  # noqa: F401
        except ImportError:
            return "JAX not installed (pip install jax)"
        return None

    def prepare(self, x, W, y):
        import jax
        import jax.numpy as jnp

        if x.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)  # else JAX silently computes in float32

        def f(x, W, y):
            z = jnp.maximum(x @ W, 0) - y
            return jnp.trace(z.T @ z)

        fn = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
        cpu = jax.devices("cpu")[0]  # the CPU peer, also where JAX would default to a GPU
        xj, Wj, yj = jax.block_until_ready([jax.device_put(a, cpu) for a in (x, W, y)])

        def run():
            v, (dx, dW, dy) = jax.block_until_ready(fn(xj, Wj, yj))
            return v, dx, dW, dy

        return Prepared(run, _host4)


def registry() -> list:
    """Every implementation, in the order they run at each shape.

    NumPy runs last: OpenBLAS threads keep spinning for a while after a NumPy
    matmul, and whatever runs next looks up to 2x slower (measured on this
    machine; the bench also sleeps between cells).
    """
    return [
        Loopgrad(),
        LoopgradOneThread(),
        TorchAutograd(),
        TorchHand(),
        TorchHand(compiled=True),
        JaxJit(),
        LoopgradCUDA(),
        TorchAutograd("cuda"),
        TorchHand("cuda"),
        NumpyHand(),
    ]


KEYS = tuple(i.key for i in registry())
BASELINE = "torch"  # speed-ups are over torch autograd of the notebook expression, on the CPU
