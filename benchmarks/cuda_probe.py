"""Where loopgrad CUDA's time goes: host overhead by stage, kernel times, tile sizes.

A development probe for a GPU machine (PYTHONPATH=.):

    python3 benchmarks/cuda_probe.py overhead          # per-stage host cost at 10×4×4
    python3 benchmarks/cuda_probe.py kernels           # CUDA-event times of the kernels alone
    python3 benchmarks/cuda_probe.py tiles --tile 128  # tiled path with 128×128 output tiles

`--tile B` patches loopgrad.cuda.products' tile constants (B×B outputs per block, 16×16
threads, (B/16)² register tile each) before anything compiles.
"""

import argparse
import statistics
import time

import torch

import loopgrad
from loopgrad.cuda import host, products, rows


def median_us(fn, reps=200):
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def event_ms(fn, reps=20):
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    times = []
    for _ in range(reps):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def tensors(N, K, M):
    g = torch.Generator(device="cuda").manual_seed(0)
    return tuple(torch.randn(s, device="cuda", generator=g) for s in ((N, K), (K, M), (N, M)))


def overhead():
    from numba import cuda


    x, W, y = tensors(10, 4, 4)
    loopgrad.grads(x, W, y)
    xd, Wd, yd = (cuda.as_cuda_array(t, sync=False) for t in (x, W, y))
    outs = [cuda.as_cuda_array(torch.empty(s, device="cuda"), sync=False)
            for s in ((10, 4), (4, 4), (10, 4))]
    part = cuda.as_cuda_array(torch.empty((1, 17), dtype=torch.float64, device="cuda"), sync=False)
    f_out = cuda.as_cuda_array(torch.empty(1, dtype=torch.float64, device="cuda"), sync=False)
    smem = rows.fused_shared_bytes(4, 4)
    stages = {
        "loopgrad.grads (whole call)": lambda: loopgrad.grads(x, W, y),
        "3 × as_cuda_array(sync=False)": lambda: [cuda.as_cuda_array(t, sync=False) for t in (x, W, y)],
        "3 × as_cuda_array(sync=True)": lambda: [cuda.as_cuda_array(t) for t in (x, W, y)],
        "torch.empty + as_cuda_array": lambda: cuda.as_cuda_array(torch.empty(4, device="cuda"), sync=False),
        "numba device_array(17)": lambda: cuda.device_array(17),
        "launch fused_rows": lambda: rows.fused_rows[1, rows.ROWS, 0, smem](outs[0], part, outs[2], xd, Wd, yd, 0.0, True),
        "launch sum_blocks": lambda: rows.sum_blocks[1, 128](outs[1], f_out, part),
        "f_out.copy_to_host": lambda: f_out.copy_to_host(),
        "host.run (launches + fetch)": lambda: host.run(*outs, xd, Wd, yd, 0.0),
        "torch hand formula": lambda: (lambda h: ((torch.clamp(h, min=0) - y) ** 2).sum().item())(x @ W),
        "with cuda.gpus[0]: (enter + exit)": lambda: cuda.gpus[0].__enter__() and cuda.gpus[0].__exit__(None, None, None),
        "torch.cuda.current_stream()": lambda: torch.cuda.current_stream(x.device),
        "host._stream_and_device": lambda: host._stream_and_device(x, "torch"),
        "host._device_view (one tensor)": lambda: host._device_view("x", x),
    }
    for name, fn in stages.items():
        fn()
        print(f"{name:34s} {median_us(fn):9.1f} µs", flush=True)


def kernels():
    from numba import cuda

    for N, K, M in [(10**6, 4, 4), (10**7, 16, 16)]:
        x, W, y = tensors(N, K, M)
        xd, Wd, yd = (cuda.as_cuda_array(t, sync=False) for t in (x, W, y))
        outs = [cuda.as_cuda_array(torch.empty(s, device="cuda"), sync=False)
                for s in ((N, K), (K, M), (N, M))]
        blocks = min(-(-N // rows.ROWS), host.MAX_BLOCKS)
        part = cuda.as_cuda_array(torch.empty((blocks, K * M + 1), dtype=torch.float64,
                                              device="cuda"), sync=False)
        smem = rows.fused_shared_bytes(K, M)

        def fused():
            rows.fused_rows[blocks, rows.ROWS, 0, smem](outs[0], part, outs[2], xd, Wd, yd, 0.0, True)

        ms = event_ms(fused)
        nbytes = 4 * 2 * (N * K + N * M)
        print(f"{N}×{K}×{M} fused_rows: {ms:.3f} ms, {nbytes / ms / 1e6:.0f} GB/s; "
              f"whole call {median_us(lambda: loopgrad.grads(x, W, y), 30) / 1e3:.3f} ms; "
              f"copy of the same bytes {event_ms(lambda: (x.clone(), y.clone(), x.clone(), y.clone())):.3f} ms",
              flush=True)
        del x, W, y, outs, part


def tiles(tile):
    if tile:
        products.BM = products.BN = tile
        products.TM = products.TN = tile // products.TY
        products._A_TILE = products._B_TILE = (products.BK, tile)
        products._ACC = (products.TM, products.TN)
    for N, K, M in [(10**5, 256, 256), (4096, 4096, 4096)]:
        x, W, y = tensors(N, K, M)
        got = loopgrad.grads(x, W, y)
        x64, W64, y64 = (t.double().requires_grad_() for t in (x, W, y))
        z = torch.clamp(x64 @ W64, min=0) - y64
        (z * z).sum().backward()
        errs = [((a.double() - b).abs().max() / b.abs().max()).item()
                for a, b in zip(got[1:], (x64.grad, W64.grad, y64.grad))]
        ms = event_ms(lambda: loopgrad.grads(x, W, y), reps=10)
        print(f"tile {products.BM}×{products.BN} (register {products.TM}×{products.TN}) {N}×{K}×{M}: {ms:.2f} ms, "
              f"{6 * N * K * M / ms / 1e9:.0f} GFLOP/s, errors dx dW dy {errs}", flush=True)
        del x, W, y, got, x64, W64, y64, z


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["overhead", "kernels", "tiles"])
    ap.add_argument("--tile", type=int, default=0)
    a = ap.parse_args()
    {"overhead": overhead, "kernels": kernels, "tiles": lambda: tiles(a.tile)}[a.what]()


if __name__ == "__main__":
    main()
