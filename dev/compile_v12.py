"""Compile time of one tile's modules and kernels on an empty cache (dev/cold_v12.md).

    python dev/compile_v12.py float32 [kernels]   # a fresh NUMBA_CACHE_DIR each run

Prints seconds per step: the four generated modules (their pieces compile as they are
imported), then with `kernels` the serial and parallel kernels of the three names.
Run from two checkouts (PYTHONPATH) to compare.
"""
import os, sys, tempfile, time
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="lgc")
t0 = time.perf_counter()
import numpy as np, numba  # noqa: E401
from loopgrad.cpu import machine, tiled
v = sys.argv[1] if len(sys.argv) > 1 else "float32"
isa = machine.entry().isa
print(f"{os.path.dirname(tiled.__file__)} {isa} {v}: import {time.perf_counter() - t0:.2f} s")
steps = [(p, lambda p=p: tiled.module(v, isa, p)) for p in ("common", "fused", "three", "loss")]
if "kernels" in sys.argv:
    steps += [(f"{n} {'par' if par else 'ser'}", lambda n=n, par=par: tiled.kernel(n, v, par))
              for n in ("grads_fused", "grads", "loss") for par in (False, True)]
total = 0.0
for name, f in steps:
    t = time.perf_counter(); f(); dt = time.perf_counter() - t; total += dt
    print(f"  {name:16s} {dt:6.2f} s")
print(f"  total            {total:6.2f} s")
