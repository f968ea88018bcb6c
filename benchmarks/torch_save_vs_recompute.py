"""loopgrad.torch.loss: save the gradients in forward, or recompute them in backward?

    PYTHONPATH=. python benchmarks/torch_save_vs_recompute.py [--device cuda] [--rounds 15]

Times one training step (forward, backward) of each strategy, interleaved
round by round so that other load on the machine hits both alike, for W
alone requiring grad (training) and for x, W and y all requiring it:

- save (loopgrad.torch's): forward calls loopgrad.grads once and keeps the
  gradients the inputs need; backward scales them by the incoming gradient;
- recompute: forward calls loopgrad.loss (f only), backward calls
  loopgrad.grads.
"""

import argparse
import statistics
import time

import torch

import loopgrad
import loopgrad.torch as lt


class Recompute(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, y, a0):
        ctx.save_for_backward(x, W, y)
        ctx.a0 = a0
        return torch.tensor(loopgrad.loss(x, W, y), dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, df):
        x, W, y = ctx.saved_tensors
        _, dx, dW, dy = loopgrad.grads(x, W, y, relu_grad_at_zero=ctx.a0)
        one = df.device.type == "cpu" and df.item() == 1.0   # the same shortcut as lt._Loss
        return (*((g if one else g * df) if need else None
                  for g, need in zip((dx, dW, dy), ctx.needs_input_grad[:3])), None)


STRATEGIES = {"save": lt._Loss.apply, "recompute": Recompute.apply}


def step(fn, x, W, y):
    for t in (x, W, y):
        t.grad = None
    fn(x, W, y, 0.0).backward()
    if x.is_cuda:
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--shapes", default="1000000x16x16,10000x16x16")
    args = p.parse_args()
    gen = torch.Generator().manual_seed(0)
    for shape in args.shapes.split(","):
        N, K, M = (int(v) for v in shape.split("x"))
        for which in ("W", "xWy"):
            x, W, y = (torch.randn(*s, generator=gen).to(args.device).requires_grad_(n in which)
                       for n, s in zip("xWy", ((N, K), (K, M), (N, M))))
            times = {k: [] for k in STRATEGIES}
            for fn in STRATEGIES.values():
                step(fn, x, W, y)                       # compile / warm up
            for _ in range(args.rounds):
                for name, fn in STRATEGIES.items():
                    t0 = time.perf_counter()
                    step(fn, x, W, y)
                    times[name].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{N}x{K}x{M} float32 on {args.device}, requires_grad {which:>3}: "
                  + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in med.items())
                  + f"; recompute / save = {med['recompute'] / med['save']:.2f}")


if __name__ == "__main__":
    main()
