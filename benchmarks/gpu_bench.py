"""GPU timings: loopgrad CUDA against torch CUDA, f plus all three gradients, float32.

    PYTHONPATH=. python3 benchmarks/gpu_bench.py --out gpu_results.md

Implementations, on the same torch CUDA tensors:
- loopgrad: `loopgrad.grads(x, W, y)` (zero-copy in, torch tensors out, f as a float)
- torch autograd: the notebook's expression, torch.maximum and trace(zᵀz), .backward()
- torch hand: the hand-derived formula in torch ops
Each returns f as a Python float, so each call ends in a device→host sync.

Every implementation is checked before it is timed against torch autograd in
float64 on the GPU: the table gives each output's largest error relative to
that output's largest magnitude (loopgrad's and torch float32's side by side).
Timings: median and 20th–80th percentiles of synchronised wall-clock calls
after warm-up; the first call (numba compiles there) is reported apart.
"""

import argparse
import datetime
import platform
import statistics
import sys
import time

import torch

import loopgrad

SHAPES = [(10, 4, 4), (10**6, 4, 4), (10**7, 16, 16), (10**5, 256, 256), (4096, 4096, 4096)]


def notebook_autograd(x, W, y):
    x, W, y = (t.detach().requires_grad_() for t in (x, W, y))
    z = torch.maximum(torch.matmul(x, W), torch.tensor(0, device=x.device)) - y
    f = torch.trace(torch.matmul(z.T, z))
    f.backward()
    return f.item(), x.grad, W.grad, y.grad


def torch_hand(x, W, y):
    h = x @ W
    z = torch.clamp(h, min=0) - y
    g = 2 * z * (h > 0)
    return (z * z).sum().item(), g @ W.T, x.T @ g, -2 * z


def loopgrad_cuda(x, W, y):
    return tuple(loopgrad.grads(x, W, y))


IMPLS = {"loopgrad CUDA": loopgrad_cuda, "torch autograd": notebook_autograd,
         "torch hand": torch_hand}


def rel_errors(got, ref):
    # largest |error| of each output over that output's largest |value|
    out = []
    for g, r in zip(got, ref):
        if isinstance(r, float):
            out.append(abs(g - r) / max(abs(r), 1e-300))
        else:
            scale = r.abs().max().item() if r.numel() else 1.0
            out.append(((g.double() - r).abs().max().item() if r.numel() else 0.0) / max(scale, 1e-300))
    return out


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, budget_s, min_reps=5, max_reps=200):
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget_s and len(times) < max_reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=10)
    return statistics.median(times), q[1], q[7], len(times)


def fmt_time(s):
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu_results.md")
    ap.add_argument("--budget", type=float, default=1.5, help="seconds of timed calls per cell")
    ap.add_argument("--shapes", default=None, help="e.g. 10x4x4,1000000x4x4")
    ap.add_argument("--device", default="cuda", help="cpu only to smoke-test this script")
    args = ap.parse_args()
    shapes = SHAPES if not args.shapes else [tuple(int(v) for v in s.split("x"))
                                             for s in args.shapes.split(",")]
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
    import numba
    try:
        import numba_cuda
        nc = numba_cuda.__version__
    except Exception:  # noqa: BLE001
        nc = "?"
    head = (f"GPU: {name}; torch {torch.__version__}, numba {numba.__version__}, numba-cuda {nc}, "
            f"Python {platform.python_version()}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
            f"command: `PYTHONPATH=. python3 benchmarks/gpu_bench.py` (float32)")
    print(head, flush=True)
    rows = []
    gen = torch.Generator(device=dev).manual_seed(0)
    for N, K, M in shapes:
        x, W, y = (torch.randn(s, device=dev, generator=gen) for s in ((N, K), (K, M), (N, M)))
        x64, W64, y64 = (t.double() for t in (x, W, y))
        ref = notebook_autograd(x64, W64, y64)
        nbytes = 4 * 2 * (N * K + K * M + N * M)
        flops = 6 * N * K * M
        base = None
        for impl, fn in IMPLS.items():
            try:
                t0 = time.perf_counter()
                got = fn(x, W, y)
                sync()
                first = time.perf_counter() - t0
                errs = rel_errors(got, ref)
                del got
                fn(x, W, y)
                med, p20, p80, n = timed(lambda: fn(x, W, y), args.budget)
            except Exception as e:  # noqa: BLE001 - report and go on
                rows.append(f"| {N}×{K}×{M} | {impl} | failed: {type(e).__name__}: {e} | | | | | | |")
                print(rows[-1], flush=True)
                continue
            if impl == "torch autograd":
                base = med
            rows.append((N, K, M, impl, med, p20, p80, n, first, errs, nbytes / med / 1e9,
                         flops / med / 1e9))
            print(f"{N}×{K}×{M} {impl}: {fmt_time(med)} ({n} calls), first call {fmt_time(first)}, "
                  f"errors {', '.join(f'{e:.1e}' for e in errs)}", flush=True)
        # speed-up over torch autograd, filled in once it is known
        rows = [r if isinstance(r, str) or r[:3] != (N, K, M) else (*r, base) for r in rows]
        del x, W, y, x64, W64, y64, ref
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    lines = [head, "",
             "| shape N×K×M | implementation | median | p20–p80 | first call | GB/s | GFLOP/s | "
             "speed-up vs torch autograd | max rel. error f, dx, dW, dy |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if isinstance(r, str):
            lines.append(r)
            continue
        N, K, M, impl, med, p20, p80, n, first, errs, gbs, gfl = r[:12]
        base = r[12] if len(r) > 12 else None
        sp = f"{base / med:.1f}×" if base else "—"
        lines.append(f"| {N}×{K}×{M} | {impl} | {fmt_time(med)} | {fmt_time(p20)}–{fmt_time(p80)} | "
                     f"{fmt_time(first)} | {gbs:.3g} | {gfl:.3g} | {sp} | "
                     f"{', '.join(f'{e:.1e}' for e in errs)} |")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
