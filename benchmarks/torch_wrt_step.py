"""A training step's cost by what requires grad, against torch eager and torch.compile (issue 13).

    PYTHONPATH=. python benchmarks/torch_wrt_step.py [--n 1000000] [--k 16] [--m 16] [--rounds 9]

One step = forward + backward at N×K×M float32 on the CPU, timed on its own,
the cases interleaved round by round (medians):
  loopgrad W-only      loopgrad.torch.loss with only W requiring grad (wrt="W" inside)
  loopgrad x, W, y     the same with x, W and y requiring grad
  torch eager W-only   ((torch.relu(x @ W) - y) ** 2).sum(), W requiring grad
  torch.compile W-only the same expression through torch.compile (compiled before timing)
Then the op boundary at 10×4×4: loopgrad.grads(wrt="W") on NumPy arrays and on
tensors, loopgrad.torch.loss's forward, forward + backward (medians of 3000 calls).
"""
import argparse
import time

import numpy as np
import torch

import loopgrad
import loopgrad.torch as lt


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--rounds", type=int, default=9)
    a = p.parse_args()
    torch.manual_seed(0)
    x, W, y = torch.randn(a.n, a.k), torch.randn(a.k, a.m) / a.k ** 0.5, torch.randn(a.n, a.m)
    expr = lambda x, W, y: ((torch.relu(x @ W) - y) ** 2).sum()  # noqa: E731
    compiled = torch.compile(expr)
    cases = {"loopgrad W-only": (lt.loss, False), "loopgrad x, W, y": (lt.loss, True),
             "torch eager W-only": (expr, False), "torch.compile W-only": (compiled, False)}

    def step(fn, all_grad):
        xs, Ws, ys = x.clone().requires_grad_(all_grad), W.clone().requires_grad_(), \
            y.clone().requires_grad_(all_grad)
        t0 = time.perf_counter()
        fn(xs, Ws, ys).backward()
        return time.perf_counter() - t0

    for fn, all_grad in cases.values():  # compile, cache loads, first-touch
        step(fn, all_grad), step(fn, all_grad)
    times = {k: [] for k in cases}
    for _ in range(a.rounds):
        for k, (fn, all_grad) in cases.items():
            times[k].append(step(fn, all_grad))
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{a.n}×{a.k}×{a.m} float32, {torch.get_num_threads()} torch threads, medians of {a.rounds}:")
    for k, t in med.items():
        print(f"  {k:22s} {t * 1e3:8.2f} ms   loopgrad W-only {t / med['loopgrad W-only']:.2f}× as fast")

    xs, Ws, ys = torch.randn(10, 4), torch.randn(4, 4).requires_grad_(), torch.randn(10, 4)
    xn, Wn, yn = xs.numpy(), Ws.detach().numpy(), ys.numpy()

    def per_call(fn, n=3000):
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e6

    calls = {"loopgrad.grads(wrt='W'), NumPy": lambda: loopgrad.grads(xn, Wn, yn, wrt="W"),
             "loopgrad.grads(wrt='W'), tensors": lambda: loopgrad.grads(xs, Ws.detach(), ys, wrt="W"),
             "loopgrad.torch.loss forward": lambda: lt.loss(xs, Ws, ys),
             "loopgrad.torch.loss forward + backward": lambda: lt.loss(xs, Ws, ys).backward()}
    res = {k: [] for k in calls}
    for _ in range(3):
        for k, fn in calls.items():
            res[k].append(per_call(fn))
    print("10×4×4, W requiring grad (µs a call, median of 3 × 3000):")
    for k, v in res.items():
        print(f"  {k:40s} {np.median(v):7.1f}")


if __name__ == "__main__":
    main()
