"""Compile every CUDA kernel to PTX and SASS without a GPU, and print ptxas's registers,
spills and shared memory per kernel (issue 23: checks by counting).

Needs numba-cuda with NVVM and ptxas (pip install "numba-cuda[cu12]" in a venv):

    PYTHONPATH=. /tmp/ncv/bin/python dev/cuda_ptx_v13.py [--cc 9.0] [--keep DIR] [--all]

--all compiles every variant a plan can pick instead (the products for the four load
layouts, the row kernel for K, M in 1, 2, 3, 5, 8, 16 with both offset widths: 194
kernels, about 6 minutes) and reports only failures: typing errors that the simulator
does not see show up here.

The factories in rows.py and products.py call cuda.jit(signature)(fn), which
compiles for the current device; here that call is intercepted to collect
(fn, signature), and each is compiled with cuda.compile_ptx for the given
compute capability, then assembled by ptxas -v.
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np
from numba import cuda

import loopgrad.cuda.device as device
from loopgrad.cuda import products, rows

captured = []
cuda = device.cuda      # the module the factories call
real_jit = cuda.jit


def capturing_jit(*args, **kw):
    if args and not callable(args[0]) and not kw.get("device"):   # cuda.jit(signature)
        return lambda fn: captured.append((fn, args[0], kw)) or (fn, args[0])
    return real_jit(*args, **kw)


def ptxas():
    import nvidia.cuda_nvcc as n
    return str(pathlib.Path(n.__path__[0]) / "bin" / "ptxas")


def every_variant(cc):
    import itertools
    import time

    cuda.jit = capturing_jit
    try:
        for dt in (np.dtype(np.float32), np.dtype(np.float64)):
            for K, M in itertools.product((1, 2, 3, 5, 8, 16), repeat=2):
                for wide in (False, True):
                    rows.fused(K, M, dt, wide)
            rows.sum_blocks(dt)
            for x_rows, W_rows in itertools.product((True, False), repeat=2):
                products.kernels(dt, x_rows, W_rows)
    finally:
        cuda.jit = real_jit
    t, bad = time.perf_counter(), 0
    for fn, sig, _ in captured:
        try:
            cuda.compile_ptx(fn, sig, cc=cc)
        except Exception as e:  # noqa: BLE001 - report every failure
            bad += 1
            print("FAIL", fn.__name__, sig, type(e).__name__, str(e)[:300])
    print(f"{len(captured)} kernels compiled for sm_{cc[0]}{cc[1]}, {bad} failed, "
          f"{time.perf_counter() - t:.0f} s")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc", default="9.0")
    ap.add_argument("--keep", default=None)
    ap.add_argument("--all", action="store_true")
    a = ap.parse_args()
    if a.all:
        return every_variant(tuple(int(v) for v in a.cc.split(".")))
    cc = tuple(int(v) for v in a.cc.split("."))
    cuda.jit = capturing_jit
    try:
        names = []
        for dt in (np.float32, np.float64):
            for K, M in ((4, 4), (16, 16), (3, 5)):
                rows.fused(K, M, np.dtype(dt), False)
                names.append(f"rows.fused K={K} M={M} {np.dtype(dt)} int32")
            rows.fused(16, 16, np.dtype(dt), True)
            names.append(f"rows.fused K=16 M=16 {np.dtype(dt)} int64")
            rows.sum_blocks(np.dtype(dt))
            names.append(f"rows.sum_blocks {np.dtype(dt)}")
            products.kernels(np.dtype(dt))
            names += [f"products.{n} {np.dtype(dt)}" for n in
                      ("forward", "epilogue", "dx", "dW", "sum_slices",
                                                     "sum_vector")]
    finally:
        cuda.jit = real_jit
        rows.fused.cache_clear(), rows.sum_blocks.cache_clear()
        products.kernels.cache_clear(), products._core.cache_clear()
    out = pathlib.Path(a.keep or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    arch = f"sm_{cc[0]}{cc[1]}"
    print(f"{'kernel':44s} {'regs':>5s} {'spill st/ld':>12s} {'smem':>6s} {'local':>6s}"
          f" {'ld.global.v':>11s} {'64b mul/div':>11s}")
    for (fn, sig, kw), name in zip(captured, names):
        ptx, _ = cuda.compile_ptx(fn, sig, cc=cc)
        regs_opt = [f"--maxrregcount={kw['max_registers']}"] if kw.get("max_registers") else []
        f = out / (re.sub(r"\W+", "_", name) + ".ptx")
        f.write_text(ptx)
        r = subprocess.run([ptxas(), f"-arch={arch}", "-v", *regs_opt, str(f), "-o", os.devnull],
                           capture_output=True, text=True)
        info = r.stderr
        regs = re.search(r"Used (\d+) registers", info)
        spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)
        smem = re.search(r"(\d+) bytes smem", info)
        stack = re.search(r"(\d+) bytes stack frame", info)
        vec = len(re.findall(r"ld\.global(\.\w+)*\.v[24]", ptx))
        mul64 = len(re.findall(r"(mul\.lo|div|rem)\.[su]64", ptx))
        print(f"{name:44s} {regs.group(1) if regs else '?':>5s} "
              f"{(spill.group(1) + '/' + spill.group(2)) if spill else '?':>12s} "
              f"{smem.group(1) if smem else '?':>6s} {stack.group(1) if stack else '?':>6s}"
              f" {vec:>11d} {mul64:>11d}")
        if r.returncode:
            print(info[-2000:])
    print(f"PTX in {out}")


if __name__ == "__main__":
    sys.exit(main())
