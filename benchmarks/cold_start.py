"""A new machine's first minute: first calls, calls made while the kernels compile, `loopgrad compile`.

    python benchmarks/cold_start.py                     # this CPU's table entry, float32 and float64
    python benchmarks/cold_start.py --entries avx512,avx2,generic --compile

Each cell is new Python processes with NUMBA_CACHE_DIR pointing at a folder of
their own, empty for the cold run and filled by it for the warm ones:

- first call: from before `import loopgrad` to after the first `loopgrad.grads`,
  empty cache (and, for comparison, warm cache);
- during the compile: the cold process goes on calling `loopgrad.grads` until
  no kernel compiles behind it any more (the tiled kernels compile in a child
  process, loopgrad/cpu/background.py), each call timed; the median and worst
  of those calls as multiples of the warm serial kernel (a warm process's
  median on one Numba thread);
- `loopgrad compile` (--compile): its wall time on an empty cache.

One shape per path, each compiling apart: the generated skinny kernels (serial
at 10×4×4, parallel at 10⁶×4×4), the general row kernel (K ≤ 3, K·M > 16),
and the tiled kernels (cpu.is_tiled): the fused pass in its narrow and wide
tiles, and the three-pass kernel for wide K·M.  --entries forces table entries
with LOOPGRAD_CPU_ISA (code for a narrower ISA runs anywhere).  The baseline
is a fresh process that only imports numpy and numba: a warm call's cost over
it is loopgrad's own (target: 0.35 s at most).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, time
t0 = time.perf_counter()
import numpy as np
import loopgrad
from loopgrad.cpu import background
x, W, y = (np.ones(s, np.{dtype}) for s in (({n}, {k}), ({k}, {m}), ({n}, {m})))
loopgrad.grads(x, W, y)
first = time.perf_counter() - t0
during, t1 = [], time.perf_counter()
while background.running() and time.perf_counter() - t1 < 300:
    t = time.perf_counter(); loopgrad.grads(x, W, y); during.append(time.perf_counter() - t)
background.wait()
one = []
if {serial}:
    import numba
    numba.set_num_threads(1)
    for _ in range(7):
        t = time.perf_counter(); loopgrad.grads(x, W, y); one.append(time.perf_counter() - t)
print(json.dumps(dict(first=first, during=during, one=sorted(one)[len(one) // 2] if one else 0)))
"""

PATHS = [  # (N, K, M, what it compiles)
    (10, 4, 4, "skinny, serial"),
    (10**6, 4, 4, "skinny, parallel"),
    (10**5, 3, 40, "general rows"),
    (10**5, 16, 16, "tiled, fused"),
    (90000, 44, 36, "tiled, fused"),
    (10**5, 64, 64, "tiled, fused"),
    (512, 512, 512, "tiled, three passes"),
]

BASE = """
import time
t0 = time.perf_counter()
import numpy, numba
print(time.perf_counter() - t0)
"""


def child(dtype, shape, env, serial=False):
    n, k, m = shape
    code = CHILD.format(dtype=dtype, n=n, k=k, m=m, serial=serial)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compile_all(env):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "loopgrad", "compile", "--no-progress"], env=env,
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", default="", help="table entries to force (default: this CPU's)")
    p.add_argument("--dtype", default="float32,float64")
    p.add_argument("--shapes", default="", help="NxKxM,... in place of the paths' shapes")
    p.add_argument("--compile", action="store_true", help="also time `loopgrad compile`")
    args = p.parse_args(argv)
    paths = [(*map(int, s.split("x")), "") for s in args.shapes.split(",") if s] or PATHS
    import numpy  # noqa: F401 - the baseline's imports, here only to fail early
    base = min(float(subprocess.run([sys.executable, "-c", BASE], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(3))
    print(f"baseline, `import numpy, numba` in a fresh process: {base:.2f} s\n")
    print("| entry | dtype | shape | path | first call, empty cache | calls during the compile "
          "(n): median, worst ÷ warm serial | warm serial | first call, warm cache | "
          "warm − baseline |\n|---|---|---|---|---:|---:|---:|---:|---:|")
    for entry in [e for e in args.entries.split(",") if e] or [None]:
        env = dict(os.environ)
        if entry:
            env["LOOPGRAD_CPU_ISA"] = entry
        name = entry or "native"
        for dtype in args.dtype.split(","):
            for n, k, m, path in paths:
                with tempfile.TemporaryDirectory() as cache:
                    env["NUMBA_CACHE_DIR"] = cache
                    cold = child(dtype, (n, k, m), env)
                    warm = [child(dtype, (n, k, m), env, serial=True) for _ in range(3)]
                one = sorted(w["one"] for w in warm)[1]
                d = sorted(cold["during"])
                during = (f"({len(d)}) {d[len(d) // 2] / one:.1f}×, {d[-1] / one:.1f}×" if d
                          else "(0)")
                first_warm = min(w["first"] for w in warm)
                print(f"| {name} | {dtype} | {n}×{k}×{m} | {path} | {cold['first']:.2f} s | "
                      f"{during} | {one * 1e3:.3g} ms | {first_warm:.2f} s | "
                      f"{first_warm - base:.2f} s |", flush=True)
        if args.compile:
            with tempfile.TemporaryDirectory() as cache:
                env["NUMBA_CACHE_DIR"] = cache
                print(f"\n`loopgrad compile` ({name}, empty cache): {compile_all(env):.0f} s\n",
                      flush=True)


if __name__ == "__main__":
    main()
