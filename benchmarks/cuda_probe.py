"""Where loopgrad CUDA's time goes: host cost by stage, and each kernel of a call.

A probe for a GPU machine (PYTHONPATH=.; torch with CUDA):

    python3 benchmarks/cuda_probe.py overhead                     # host stages at 10×4×4
    python3 benchmarks/cuda_probe.py kernels --shapes 10000000x16x16,4096x4096x4096
    python3 benchmarks/cuda_probe.py smoke                        # first calls, checked
    python3 benchmarks/cuda_probe.py sass [--dump FILE]           # registers, SASS mix

`smoke` makes the first calls of each kernel family on small shapes (each
compiles its kernels: the time is printed), checks every output against torch
float64 autograd within the contract and two calls for equal bits, and exits 1
on the first failure: a short check that ends a card run early when the kernels
do not work there.

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


def launches(pl, stream, x, W, y):
    # the row kernel and its block sums, launched as host._run does, on scratch outputs
    dev = x.device.index
    N, K = x.shape
    M = W.shape[1]
    if not hasattr(launches, "out"):
        launches.out = [torch.empty(s, device=x.device) for s in ((N, K), (K, M), (N, M))]
        launches.part = torch.empty(pl.f64, dtype=torch.float64, device=x.device)
    dx, dW, dy = (t.data_ptr() for t in launches.out)
    part = launches.part.data_ptr()
    pl.launcher("rows", stream, dev)(dx, dy, part, x.data_ptr(), K, 1, W.data_ptr(), M, 1,
                                     y.data_ptr(), M, 1, N, 0.0, 7)
    pl.launcher("sum_blocks", stream, dev)(dW, part + 8 * (pl.f64 - 1), part, pl.blocks,
                                           K * M, 1)


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
        "launcher (cached config)": lambda: pl.launcher("rows", stream, x.device.index),
        "the two launches (and the kernels)": lambda: launches(pl, stream, x, W, y),
        "f: scratch[i].item()": lambda: torch.zeros(4, dtype=torch.float64,
                                                    device="cuda")[3].item(),
        "torch hand formula": lambda: (lambda h: ((torch.clamp(h, min=0) - y) ** 2)
                                       .sum().item())(x @ W),
    }
    for name, fn in stages.items():
        try:
            fn()
            print(f"{name:36s} {median_us(fn):9.1f} µs", flush=True)
        except Exception as e:  # noqa: BLE001 - a probe reports and goes on
            print(f"{name:36s} failed: {type(e).__name__}: {e}", flush=True)


def kernels(shapes):
    for N, K, M in shapes:
        x, W, y = tensors(N, K, M)
        loopgrad.grads(x, W, y)
        times = {}
        real = host.Plan.launcher

        def timed(self, name, stream, dev=None):
            fn = real(self, name, stream, dev)

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
                    f"{flops / ms / 1e9:.1f} TFLOP/s" if name in ("forward", "dx", "dW") else "")
            print(f"    {name:12s} {ms:9.3f} ms  {rate}", flush=True)
        del x, W, y


def smoke(shapes):
    import numpy as np

    from loopgrad import reference
    for N, K, M in shapes:
        rng = np.random.default_rng(N + K + M)
        host_in = [rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M))]
        if torch.cuda.is_available():
            x, W, y = (torch.from_numpy(a).cuda() for a in host_in)
        else:       # the simulator: host arrays, copied in and out
            x, W, y = host_in
        t0 = time.perf_counter()
        got = loopgrad.grads(x, W, y, device="cuda")
        first = time.perf_counter() - t0
        again = loopgrad.grads(x, W, y, device="cuda")
        ref = reference.torch_autograd(*host_in)
        bounds = reference.error_bounds(*host_in, ref)
        for name, g, a, r, b in zip(("f", "dx", "dW", "dy"), got, again, ref, bounds):
            g = np.asarray(g.cpu() if hasattr(g, "cpu") else g, dtype=np.float64)
            a = np.asarray(a.cpu() if hasattr(a, "cpu") else a, dtype=np.float64)
            reference.check(name, g, r, b)
            assert np.array_equal(g, a), f"{name}: two calls differ"
        print(f"smoke {N}×{K}×{M}: ok, bitwise repeatable; first call {first:.2f} s", flush=True)


def sass(dump):
    import re

    import numpy as np

    from loopgrad.cuda import products, rows
    k = products.kernels(np.dtype(np.float32), True, True)
    named = [("rows 16×16 f32", rows.fused(16, 16, np.dtype(np.float32), False))]
    named += [(f"{n} f32", getattr(k, n)) for n in ("forward", "epilogue", "dx", "dW")]
    pat = {c: re.compile(r) for c, r in (("LDG.128", r"LDG\.E\.(?:EL\.)?128"),
                                         ("LDG", r"\bLDG\b"), ("LDS.128", r"LDS\.128"),
                                         ("LDS", r"\bLDS\b"), ("FFMA", r"\bFFMA\b"),
                                         ("DFMA/DADD", r"\bD(?:FMA|ADD)\b"),
                                         ("LDL/STL", r"\b(?:LDL|STL)\b"))}
    for name, d in named:
        info = []
        for what in ("regs_per_thread", "local_mem_per_thread", "shared_mem_per_block"):
            try:
                info.append(f"{what} {getattr(d, 'get_' + what)()}")
            except Exception as e:  # noqa: BLE001 - report what this numba-cuda lacks
                info.append(f"{what} ? ({type(e).__name__})")
        try:
            code = d.inspect_sass()
            code = code if isinstance(code, str) else "\n".join(code.values())
            mix = ", ".join(f"{c} {len(r.findall(code))}" for c, r in pat.items())
            if dump and name.startswith("forward"):
                with open(dump, "w") as fh:
                    fh.write(code)
        except Exception as e:  # noqa: BLE001
            mix = f"no SASS ({type(e).__name__}: {e})"
        print(f"{name:16s} {'; '.join(info)}\n{'':16s} {mix}", flush=True)


def _autograd(x, W, y):
    x, W, y = (t.detach().requires_grad_() for t in (x, W, y))
    z = torch.clamp(x @ W, min=0) - y
    f = (z * z).sum()
    f.backward()
    return f.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["overhead", "kernels", "smoke", "sass"])
    ap.add_argument("--shapes", help="NxKxM,... (kernels: 1000000x4x4,10000000x16x16,"
                    "100000x256x256,4096x4096x4096; smoke: 1000x4x4,777x16x16,300x200x100)")
    ap.add_argument("--dump", help="sass: write the forward kernel's SASS here")
    a = ap.parse_args()
    default = {"kernels": "1000000x4x4,10000000x16x16,100000x256x256,4096x4096x4096",
               "smoke": "1000x4x4,777x16x16,300x200x100"}.get(a.what, "")
    shapes = [tuple(int(v) for v in s.split("x")) for s in (a.shapes or default).split(",") if s]
    if a.what == "overhead":
        overhead()
    elif a.what == "smoke":
        smoke(shapes)
    elif a.what == "sass":
        sass(a.dump)
    else:
        kernels(shapes)


if __name__ == "__main__":
    main()
