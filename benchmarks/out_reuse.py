"""Fresh outputs against `out=` (the same arrays every call): what the page zeroing costs.

    PYTHONPATH=. python benchmarks/out_reuse.py [--rounds 15]

float32, all three gradients, the two ways interleaved call by call, medians and
p20-p80; GB/s = bytes of x, W, y read and dx, dW, dy written per second; beside
them the memory-copy ceiling (np.copyto of 256 MiB, bytes read + written) in the
same process.
"""
import argparse
import time

import numpy as np

import loopgrad


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    src, dst = np.ones(1 << 26, np.float32), np.empty(1 << 26, np.float32)
    copies = []
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        copies.append(2 * src.nbytes / (time.perf_counter() - t0) / 1e9)
    print(f"copy ceiling: {np.median(copies):.1f} GB/s (np.copyto, 256 MiB, median of 5)")
    for N, K, M in [(10**6, 4, 4), (10**6, 16, 16), (10**5, 64, 64), (1024, 1024, 1024)]:
        x = rng.standard_normal((N, K), dtype=np.float32)
        W = rng.standard_normal((K, M), dtype=np.float32) / K ** 0.5
        y = rng.standard_normal((N, M), dtype=np.float32)
        out = tuple(np.empty(s, np.float32) for s in ((N, K), (K, M), (N, M)))
        loopgrad.grads(x, W, y), loopgrad.grads(x, W, y, out=out)
        t = {"fresh": [], "out=": []}
        for _ in range(a.rounds):
            for k, kw in (("fresh", {}), ("out=", {"out": out})):
                t0 = time.perf_counter()
                loopgrad.grads(x, W, y, **kw)
                t[k].append(time.perf_counter() - t0)
        nbytes = 4 * (2 * N * K + 2 * N * M + 2 * K * M)
        cells = [f"{k} {np.median(v) * 1e3:.2f} ms ({np.percentile(v, 20) * 1e3:.2f}–"
                 f"{np.percentile(v, 80) * 1e3:.2f}, {nbytes / np.median(v) / 1e9:.1f} GB/s)"
                 for k, v in t.items()]
        print(f"{N}×{K}×{M}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
