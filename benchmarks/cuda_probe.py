"""Where loopgrad CUDA's time goes: host cost by stage, and each kernel of a call.

A probe for a GPU machine (PYTHONPATH=.; torch with CUDA):

    python3 benchmarks/cuda_probe.py overhead                     # host stages at 10×4×4
    python3 benchmarks/cuda_probe.py kernels --shapes 10000000x16x16,4096x4096x4096

`kernels` times every launch of a warm loopgrad.grads call with CUDA events
(median of 10 calls) and prints each kernel's share, its GB/s or GFLOP/s, and
the whole call beside torch autograd's.
"""

import argparse
import statistics
import time

import torch

import loopgrad
from loopgrad.cuda import host


def median_us(fn, reps=200):
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def tensors(N, K, M):
    g = torch.Generator(device="cuda").manual_seed(0)
    return tuple(torch.randn(s, device="cuda", generator=g) for s in ((N, K), (K, M), (N, M)))


def overhead():
    x, W, y = tensors(10, 4, 4)
    loopgrad.grads(x, W, y)
    ops = [host.operand(n, a) for n, a in (("x", x), ("W", W), ("y", y))]
    key = (10, 4, 4, ops[0].dtype, 7, tuple((*o.shape, o.s0, o.s1) for o in ops))
    pl = host.plan(*key)
    stream = host._stream_and_device(x, "torch")[0]
    stages = {
        "loopgrad.grads (whole call)": lambda: loopgrad.grads(x, W, y),
        "loopgrad.torch.loss (f on device)": lambda: host.compute(x, W, y, 0.0, False,
                                                                  f_on_device=True),
        "3 × host.operand": lambda: [host.operand("x", a) for a in (x, W, y)],
        "host.plan (cached)": lambda: host.plan(*key),
        "host._stream_and_device": lambda: host._stream_and_device(x, "torch"),
        "torch.empty (one output)": lambda: torch.empty((10, 4), device="cuda"),
        "launcher (cached config)": lambda: pl.launcher("rows", stream),
        "f: scratch[i].item()": lambda: torch.zeros(4, dtype=torch.float64,
                                                    device="cuda")[3].item(),
        "torch hand formula": lambda: (lambda h: ((torch.clamp(h, min=0) - y) ** 2)
                                       .sum().item())(x @ W),
    }
    for name, fn in stages.items():
        fn()
        print(f"{name:36s} {median_us(fn):9.1f} µs", flush=True)


def kernels(shapes):
    for N, K, M in shapes:
        x, W, y = tensors(N, K, M)
        loopgrad.grads(x, W, y)
        times = {}
        real = host.Plan.launcher

        def timed(self, name, stream):
            fn = real(self, name, stream)

            def run(*args):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn(*args)
                b.record()
                times.setdefault(name, []).append((a, b))
            return run

        host.Plan.launcher = timed
        try:
            for _ in range(10):
                loopgrad.grads(x, W, y)
        finally:
            host.Plan.launcher = real
        torch.cuda.synchronize()
        whole = median_us(lambda: loopgrad.grads(x, W, y), 10) / 1e3
        ref = median_us(lambda: _autograd(x, W, y), 10) / 1e3
        print(f"{N}×{K}×{M}: whole call {whole:.3f} ms, torch autograd {ref:.3f} ms", flush=True)
        nbytes, flops = 4 * 2 * (N * K + N * M), 2 * N * K * M
        for name, evs in times.items():     # in launch order
            ms = statistics.median(a.elapsed_time(b) for a, b in evs)
            rate = (f"{nbytes / ms / 1e6:.0f} GB/s" if name == "rows" else
                    f"{flops / ms / 1e9:.0f} GFLOP/s" if name in ("forward", "dx", "dW") else "")
            print(f"    {name:12s} {ms:9.3f} ms  {rate}", flush=True)
        del x, W, y


def _autograd(x, W, y):
    x, W, y = (t.detach().requires_grad_() for t in (x, W, y))
    z = torch.clamp(x @ W, min=0) - y
    f = (z * z).sum()
    f.backward()
    return f.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["overhead", "kernels"])
    ap.add_argument("--shapes", default="1000000x4x4,10000000x16x16,100000x256x256,4096x4096x4096")
    a = ap.parse_args()
    if a.what == "overhead":
        overhead()
    else:
        kernels([tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")])


if __name__ == "__main__":
    main()
