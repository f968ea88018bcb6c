"""Import plus first call in a fresh process, with an empty and with a warm disk cache.

    python benchmarks/cold_start.py            # prints a Markdown table

Each cell is one new Python process timed from before `import loopgrad` to
after its first `loopgrad.grads` call, with NUMBA_CACHE_DIR pointing at a
folder that is empty for the cold run and filled by it for the warm one.
One shape per path, each compiling apart: the generated skinny kernels
(serial at 10×4×4, parallel at 10⁶×4×4), the general row kernel (K ≤ 3,
K·M > 16), and the tiled kernels (cpu.is_tiled): the fused pass in its narrow
and wide tiles (the machine table's), and the three-pass kernel for wide K·M.
The baseline is a fresh process that only imports numpy and numba: a warm
call's cost over it is loopgrad's own (issue 12's target: 0.35 s at most).
"""

import os
import subprocess
import sys
import tempfile

CHILD = """
import time
t0 = time.perf_counter()
import numpy as np
import loopgrad
x, W, y = (np.ones(s, np.{dtype}) for s in (({n}, {k}), ({k}, {m}), ({n}, {m})))
loopgrad.grads(x, W, y)
print(time.perf_counter() - t0)
"""


PATHS = [  # (N, K, M, what it compiles)
    (10, 4, 4, "skinny, serial"),
    (10**6, 4, 4, "skinny, parallel"),
    (10**5, 3, 40, "general rows"),
    (10**5, 16, 16, "tiled, fused"),
    (10**5, 64, 64, "tiled, fused"),
    (512, 512, 512, "tiled, three passes"),
]


def first_call(dtype, shape, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    n, k, m = shape
    out = subprocess.run([sys.executable, "-c", CHILD.format(dtype=dtype, n=n, k=k, m=m)],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


BASE = """
import time
t0 = time.perf_counter()
import numpy, numba
print(time.perf_counter() - t0)
"""


def main():
    base = min(float(subprocess.run([sys.executable, "-c", BASE], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(3))
    print(f"baseline, `import numpy, numba` in a fresh process: {base:.2f} s\n")
    print("| dtype | shape | path | empty cache | warm cache | warm − baseline |\n"
          "|---|---|---|---:|---:|---:|")
    for dtype in ("float32", "float64"):
        for n, k, m, path in PATHS:
            with tempfile.TemporaryDirectory() as cache:
                cold = first_call(dtype, (n, k, m), cache)
                warm = min(first_call(dtype, (n, k, m), cache) for _ in range(3))
            print(f"| {dtype} | {n}×{k}×{m} | {path} | {cold:.2f} s | {warm:.2f} s | "
                  f"{warm - base:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
