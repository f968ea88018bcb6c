"""`loopgrad fit`: fit W by gradient descent with loopgrad's gradients and with torch autograd.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

Synthetic data y = relu(x·W*) + noise; both loops start from the same W0, use
the same torch.optim optimizer (SGD or Adam) on the same tensors, and differ
in one line:

    loss = loopgrad.torch.loss(x, W, y)              # loopgrad
    loss = ((torch.relu(x @ W) - y) ** 2).sum()      # pure torch (--torch-loss sum)

loopgrad's loss computes W's gradient alone (x and y do not require grad: no
dx, no dy).  A third loop, `torch.compile` of the pure-torch loss, is timed
beside them (the command's default; `train(compiled=True)`).  They run in
lockstep, one step of each in turn, so that a busy machine slows all alike;
each step is timed on its own (forward, backward, optimizer step).
The command checks that both give the same losses and the same W at every
step, to float32 rounding (see `compare`), prints the wall times and exits 1
on a mismatch.  `examples/train.py` runs the same thing.
"""

import argparse
import math
import sys
import time

DESCRIPTION = __doc__.split("\n\n")[2]

OPTIMIZERS = ("sgd", "adam")

# Learning rates for f = Σ z² (a sum, not a mean): its Hessian in W is about
# 2·Σ_n 1[h>0]·x_n·x_nᵀ ≈ N·I for standard normal x, so plain SGD is stable
# for lr < 2/N; Adam's steps do not depend on the scale of f.
DEFAULT_LR = {"sgd": lambda N: 0.5 / N, "adam": lambda N: 0.02}


def make_data(N, K, M, seed=0, dtype="float32", device="cpu", noise=0.1):
    """x (N,K), y (N,M), W* and the starting W0 (K,M): y = relu(x·W*) + noise·ε."""
    import torch

    g = torch.Generator().manual_seed(seed)
    tdt = getattr(torch, dtype)
    x = torch.randn(N, K, generator=g, dtype=tdt)
    W_true = torch.randn(K, M, generator=g, dtype=tdt) / math.sqrt(K)
    y = torch.relu(x @ W_true) + noise * torch.randn(N, M, generator=g, dtype=tdt)
    W0 = torch.randn(K, M, generator=g, dtype=tdt) / math.sqrt(K)
    return tuple(t.to(device) for t in (x, y, W_true, W0))


def torch_loss(form):
    """The pure-torch loss: "sum" (relu'(0) = 0, as loopgrad's default) or "notebook"."""
    import torch

    if form == "sum":
        return lambda x, W, y: ((torch.relu(x @ W) - y) ** 2).sum()

    def notebook(x, W, y):
        # the notebook's expression: torch.maximum splits ties, relu'(0) = 0.5
        z = torch.maximum(x @ W, torch.zeros((), dtype=x.dtype, device=x.device)) - y
        return torch.trace(z.T @ z)
    return notebook


def compiled_torch_loss(form):
    """The pure-torch loss compiled by torch.compile (Inductor): what a torch user would time."""
    import torch

    return torch.compile(torch_loss(form))


def loopgrad_loss(form):
    """loopgrad's loss with the relu'(0) of the torch form it is compared with."""
    import loopgrad.torch

    a0 = 0.0 if form == "sum" else 0.5
    return lambda x, W, y: loopgrad.torch.loss(x, W, y, relu_grad_at_zero=a0)


class Run:
    """One training loop: its W, optimizer, losses, W after each step and step times."""

    def __init__(self, name, loss_fn, W0, optimizer, lr):
        import torch

        self.name, self.loss_fn = name, loss_fn
        self.W = W0.clone().requires_grad_()
        opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]
        self.opt = opt([self.W], lr=lr)
        self.losses, self.Ws, self.seconds = [], [], []

    def step(self, x, y):
        import torch

        sync = _synchronizer(x)
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(x, self.W, y)
        loss.backward()
        self.opt.step()
        f = loss.item()          # the loss before this step's update
        sync()
        self.seconds.append(time.perf_counter() - t0)
        self.losses.append(f)
        self.Ws.append(self.W.detach().to("cpu", torch.float64, copy=True))


def _synchronizer(x):
    import torch

    if x.device.type == "cuda":
        return lambda: torch.cuda.synchronize(x.device)
    return lambda: None


def warm_up(runs, x, y):
    """One untimed forward and backward of each loss: Numba's compile or cache load, torch's
    set-up, and the wait for the kernels loopgrad's first call left compiling (so that no
    timed step runs one in transition), and on the CPU the fused kernel compiled for the
    shape, which a long run at it gets (loopgrad/cpu/shaped.py)."""
    from . import cpu

    for r in runs:
        W = r.W.detach().clone().requires_grad_()
        r.loss_fn(x, W, y).backward()
    cpu.background.wait()
    if x.device.type == "cpu" and runs:
        cpu.specialize(x.shape[0], x.shape[1], runs[0].W.shape[1],
                       str(x.dtype).removeprefix("torch."))


def train(x, y, W0, optimizer="sgd", lr=None, steps=20, form="sum", progress=False,
          compiled=False):
    """(loopgrad Run, torch Run[, torch.compile Run]) after `steps` steps of each, in lockstep."""
    N = x.shape[0]
    lr = DEFAULT_LR[optimizer](N) if lr is None else lr
    runs = (Run("loopgrad", loopgrad_loss(form), W0, optimizer, lr),
            Run("torch", torch_loss(form), W0, optimizer, lr))
    if compiled:
        runs += (Run("torch.compile", compiled_torch_loss(form), W0, optimizer, lr),)
    warm_up(runs, x, y)
    bar = _progress(steps, f"{optimizer}", progress)
    for _ in range(steps):
        for r in runs:
            r.step(x, y)
        bar.set_postfix_str(f"loss {runs[0].losses[-1]:.6g} (torch {runs[1].losses[-1]:.6g})")
        bar.update()
    bar.close()
    return runs


def tolerances(N, M, dtype="float32"):
    """(loss, W) relative tolerances for comparing the two loops, from the dtype's eps and N.

    Both compute every product and z in the input dtype; they differ in the
    long sums.  loopgrad sums f and dW in float64; torch sums f over N·M terms
    and dW over N rows in the input dtype, where the worst case n·u (u = eps/2)
    says nothing at N = 10⁶ in float32 (n·u ≈ 1).  Rounding errors of such
    sums behave like a random walk: the relative error exceeds λ·√n·u with
    probability below 2·exp(−λ²/2) (Higham & Mary, "A new approach to
    probabilistic rounding error analysis", SIAM J. Sci. Comput. 2019).  With
    λ = 4 (below 7e-4) the loss tolerance is 4·√(N·M)·u, and W may differ
    after each step by 4·√N·u relative to its size, as its gradients do: SGD
    contracts such differences and Adam normalises the gradient, so they do
    not grow over the steps.  The floor of 64·u covers the roundings of the
    elements themselves at small N.  (Measured at N = 10⁶, float32, 50 steps:
    loss 1.6e-6 and W 5.9e-6, against tolerances 9.5e-4 and 2.4e-4.)
    """
    import numpy as np

    u = float(np.finfo(dtype).eps) / 2
    return max(4 * math.sqrt(N * M) * u, 64 * u), max(4 * math.sqrt(N) * u, 64 * u)


def compare(runs, N, M, dtype="float32"):
    """Largest relative differences between loopgrad's loop and torch's: loss, W (each over all
    steps), and the tolerances."""
    a, b = runs[:2]
    tol_f, tol_W = tolerances(N, M, dtype)
    df = max((abs(p - q) / max(abs(q), sys.float_info.min) for p, q in zip(a.losses, b.losses)),
             default=0.0)
    dW = max((float((p - q).abs().max() / q.abs().max().clamp_min(sys.float_info.min))
              for p, q in zip(a.Ws, b.Ws)), default=0.0)
    ok = df <= tol_f and dW <= tol_W and all(map(math.isfinite, a.losses + b.losses))
    return dict(loss_rel_diff=df, W_rel_diff=dW, loss_tol=tol_f, W_tol=tol_W, ok=ok)


def plot(path, results):
    """The loss curves of both loops, one panel per optimizer, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (opt, runs, cmp) in zip(axes[0], results):
        for r, style in zip(runs, ("-", "--", ":")):
            ax.plot(range(len(r.losses)), r.losses, style,
                    label=f"{r.name}: {sum(r.seconds):.2f} s")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("f = Σ (relu(x·W) − y)²")
        ax.set_title(f"{opt.upper()}: largest relative loss difference {cmp['loss_rel_diff']:.1e}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _progress(total, desc, on):
    from ._progress import progress

    return progress(total, desc, "step", enabled=on)


def _positive(kind):
    def parse(text):
        v = kind(text)
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return v
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `loopgrad fit`; `run` executes them."""
    p.add_argument("--n", type=_positive(int), default=1_000_000, metavar="N",
                   help="rows of x and y (default 1000000)")
    p.add_argument("--k", type=_positive(int), default=16, metavar="K", help="columns of x (16)")
    p.add_argument("--m", type=_positive(int), default=16, metavar="M", help="columns of y (16)")
    p.add_argument("--steps", type=_positive(int), default=50, help="optimizer steps (50)")
    p.add_argument("--optimizer", choices=(*OPTIMIZERS, "both"), default="both",
                   help="torch.optim.SGD, Adam, or one after the other (default)")
    p.add_argument("--lr", type=_positive(float),
                   help="learning rate (default: 0.5/N for SGD, f being a sum; 0.02 for Adam)")
    p.add_argument("--torch-loss", choices=("sum", "notebook"), default="sum",
                   help="the pure-torch loss: ((relu(x@W) - y)**2).sum() (default), or the "
                        "notebook's trace(zᵀz) with torch.maximum (loopgrad then uses relu'(0) = 0.5)")
    p.add_argument("--torch-compile", action=argparse.BooleanOptionalAction, default=True,
                   help="also time torch.compile of the pure-torch loss (default; its first "
                        "step compiles, untimed, for some seconds)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of W0 (default 0)")
    p.add_argument("--threads", type=_positive(int), metavar="T",
                   help="threads for both Numba and torch (default: theirs)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="save the loss curves (needs matplotlib; skipped with a note without it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numba
    import torch

    import loopgrad

    if args.threads:
        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    N, K, M = args.n, args.k, args.m
    x, y, _, W0 = make_data(N, K, M, args.seed, args.dtype, args.device)
    opts = OPTIMIZERS if args.optimizer == "both" else (args.optimizer,)
    print(f"loopgrad {loopgrad.__version__} fit: y = relu(x·W*) + 0.1·noise, x {N}×{K}, "
          f"W {K}×{M}, {args.dtype} on {x.device}, {args.steps} steps; threads: Numba "
          f"{numba.get_num_threads()}, torch {torch.get_num_threads()}; pure torch: "
          f"{'((relu(x@W) - y)**2).sum()' if args.torch_loss == 'sum' else 'trace(zᵀz)'}")
    results, status = [], 0
    for opt in opts:
        runs = train(x, y, W0, opt, args.lr, args.steps, args.torch_loss,
                     progress=not args.no_progress, compiled=args.torch_compile)
        cmp = compare(runs, N, M, args.dtype)
        results.append((opt, runs, cmp))
        lg, pt = (sum(r.seconds) for r in runs[:2])
        print(f"\n{opt.upper()}, lr {runs[0].opt.param_groups[0]['lr']:.3g}:")
        print(f"  loss  step 0 {runs[0].losses[0]:.7g} → step {args.steps - 1} "
              f"{runs[0].losses[-1]:.7g} (torch {runs[1].losses[-1]:.7g})")
        print(f"  largest relative difference over all steps: loss {cmp['loss_rel_diff']:.2e} "
              f"(tolerance {cmp['loss_tol']:.2e}), W {cmp['W_rel_diff']:.2e} "
              f"(tolerance {cmp['W_tol']:.2e}) → {'same' if cmp['ok'] else 'MISMATCH'}")
        print(f"  wall time, {args.steps} steps: loopgrad {lg:.3f} s "
              f"({1e3 * lg / args.steps:.1f} ms/step), torch {pt:.3f} s "
              f"({1e3 * pt / args.steps:.1f} ms/step): loopgrad {pt / lg:.2f}× as fast")
        if len(runs) > 2:
            tc = sum(runs[2].seconds)
            print(f"  torch.compile: {tc:.3f} s ({1e3 * tc / args.steps:.1f} ms/step): loopgrad "
                  f"{tc / lg:.2f}× as fast (its loss at step {args.steps - 1}: "
                  f"{runs[2].losses[-1]:.7g})")
        if not cmp["ok"]:
            status = 1
    if args.plot:
        try:
            plot(args.plot, results)
        except ImportError as e:
            print(f"loopgrad fit: no plot without matplotlib ({e}): pip install matplotlib",
                  file=sys.stderr)
        else:
            print(f"\nloss curves: {args.plot}")
    return status


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION)
    add_arguments(p)
    args = p.parse_args(argv)
    return args.run(args)
