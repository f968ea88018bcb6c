"""The `loopgrad` command: `loopgrad demo` reproduces the notebook, `loopgrad bench` times it."""

import argparse
import sys

import numpy as np

from . import __version__, bench


def _format_matrix(a: np.ndarray) -> str:
    # torch's print layout: 4 decimals, scientific when the magnitudes span > 1000×
    a = np.asarray(a, np.float64)
    nz = np.abs(a[a != 0])
    sci = nz.size > 0 and (nz.max() / nz.min() > 1000 or nz.max() >= 1e8)
    cells = [[(f"{v:.4e}" if sci else f"{v:.4f}") for v in row] for row in a]
    width = max((len(c) for row in cells for c in row), default=0)
    rows = [", ".join(c.rjust(width) for c in row) for row in cells]
    return "[[" + "],\n [".join(rows) + "]]"


def demo(args: argparse.Namespace) -> int:
    """Print f and the gradients for the notebook's inputs and compare with torch autograd."""
    from . import _notebook, grads, reference

    x, W, y = _notebook.inputs()
    # The notebook differentiates torch.maximum(h, 0): ties would split (0.5).
    a0 = 0.5
    f, dx, dW, dy = grads(x, W, y, relu_grad_at_zero=a0)
    print(f"loopgrad {__version__}: the notebook's inputs (torch.manual_seed(0); "
          f"x 10×4, W 4×4, y 10×4, float32)\n")
    print(f"f = {f:.4f}   (float64 sum: {f!r})\n")
    for name, g in (("W.grad", dW), ("x.grad", dx), ("y.grad", dy)):
        print(f"{name} =\n{_format_matrix(g)}\n")
    try:
        import torch
    except ImportError:
        print("torch is not installed: comparison with autograd skipped "
              "(pip install torch==2.13.0)")
        return 0
    ours = (f, dx, dW, dy)
    nb = reference.torch_autograd(x, W, y, a0, dtype="float32")
    diffs = ", ".join(f"{n} {np.max(np.abs(np.asarray(o, np.float64) - t), initial=0):.2e}"
                      for n, o, t in zip(("f", "dx", "dW", "dy"), ours, nb))
    print(f"largest |loopgrad − torch {torch.__version__} autograd (float32)|: {diffs}")
    exact = reference.torch_autograd(x, W, y, a0, dtype="float64")
    bounds = reference.error_bounds(x, W, y, exact)
    try:
        for n, o, t, b in zip(("f", "dx", "dW", "dy"), ours, exact, bounds):
            reference.check(n, o, t, b)
    except AssertionError as e:
        print(f"MISMATCH against torch autograd in float64: {e}", file=sys.stderr)
        return 1
    print("every output agrees with torch autograd in float64 to within float32 rounding")
    return 0


def info(args: argparse.Namespace) -> int:
    """Print what a bug report needs (see loopgrad/info.py)."""
    from . import info

    return info.main(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="loopgrad",
        description="f = Σ (max(x·W, 0) − y)² and its gradients, in explicit loops.")
    parser.add_argument("--version", action="version", version=f"loopgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("demo", help="reproduce the notebook (seed 0, 10×4 and 4×4) and "
                                    "compare with torch autograd")
    p.set_defaults(run=demo)
    p = sub.add_parser("info", help="versions, threading layer, kernel cache and GPU: "
                                    "for bug reports")
    p.set_defaults(run=info)
    from . import warmup

    p = sub.add_parser("compile", help="compile every CPU kernel for this machine ahead of use "
                                       "(Docker images, CI caches)", description=warmup.DESCRIPTION)
    warmup.add_arguments(p)
    p = sub.add_parser("bench", help="time f and its gradients: loopgrad against NumPy, torch "
                                     "and JAX, each checked first", description=bench.DESCRIPTION)
    bench.add_arguments(p)
    from . import fit  # light: torch is imported only when `loopgrad fit` runs

    p = sub.add_parser("fit", help="fit W by SGD and Adam with loopgrad.torch.loss and with "
                                   "pure torch, side by side", description=fit.DESCRIPTION)
    fit.add_arguments(p)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the exact command, recorded by `loopgrad bench`
    if args.command is None:
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
