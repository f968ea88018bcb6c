"""Import plus first call in a fresh process, with an empty and with a warm disk cache.

    python benchmarks/cold_start.py            # prints a Markdown table

Each cell is one new Python process timed from before `import loopgrad` to
after its first `loopgrad.grads` call, with NUMBA_CACHE_DIR pointing at a
folder that is empty for the cold run and filled by it for the warm one.
10×4×4 takes the serial kernel, 10⁶×4×4 the parallel one: each compiles apart.
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
x, W, y = (np.ones(s, np.{dtype}) for s in (({n}, 4), (4, 4), ({n}, 4)))
loopgrad.grads(x, W, y)
print(time.perf_counter() - t0)
"""


def first_call(dtype, n, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD.format(dtype=dtype, n=n)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    print("| dtype | shape | path | empty cache | warm cache |\n|---|---|---|---|---|")
    for dtype in ("float32", "float64"):
        for n, path in ((10, "serial"), (10**6, "parallel")):
            with tempfile.TemporaryDirectory() as cache:
                cold = first_call(dtype, n, cache)
                warm = min(first_call(dtype, n, cache) for _ in range(3))
            print(f"| {dtype} | {n}×4×4 | {path} | {cold:.2f} s | {warm:.2f} s |")


if __name__ == "__main__":
    main()
