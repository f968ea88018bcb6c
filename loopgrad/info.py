"""`loopgrad info`: what to paste into a bug report.

Versions, the CPU as LLVM names it and the machine-table entry the kernels use,
its cache sizes (loopgrad.cpu.caches), the Numba threading layer and thread
count, where the kernels are cached and how many are there, and whether a CUDA
GPU can be used.
"""

import importlib.metadata
import os
import platform
import sys

# the kernel table's line where 512-bit vectors run as two 256-bit halves (machine.splits_512)
HALVES = "; 512-bit operations as 256-bit halves: the tiles' last panels in 256-bit tails"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpuinfo(field: str) -> "str | None":
    """The first value of `field` ("model name", "vendor_id") in /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    return cpuinfo("model name") or platform.processor() or platform.machine()


def report() -> dict:
    """The facts `loopgrad info` prints, as a dict of label → text."""
    import numba
    import numpy as np

    import loopgrad
    from .cpu import caches, jit, machine, parallel, rows, shaped, workspace

    # the layer is chosen at the first parallel region: run a tiny one
    x = np.zeros((1, 1))
    rows.kernel("loss", np.float64, parallel=True)(rows.partials_buffer(1, 8), x, x, x, 1)
    cache = rows._chunk_grads._cache
    path = getattr(cache, "cache_path", None)
    if path is None:
        cached = "disabled: no writable cache folder (each process compiles afresh)"
    else:
        n = len([f for f in os.listdir(path) if f.endswith(".nbc")]) if os.path.isdir(path) else 0
        cached = f"{path} ({n} compiled kernels; NUMBA_CACHE_DIR moves it)"
    try:
        folder = jit.folder()
        n = len([f for f in os.listdir(folder) if f.endswith(".py")])
        generated = f"{folder} ({n} modules: the skinny and tiled kernels' source, cached beside it)"
    except RuntimeError as e:
        generated = f"none: {e}"
    try:
        from . import cuda as backend
        backend.kernels()
        from numba import cuda
        name = getattr(cuda.get_current_device(), "name", "Numba's CUDA simulator")
        gpu = f"usable: {name.decode() if isinstance(name, bytes) else name}"
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        gpu = f"not usable: {e}"
    layer = parallel.layer()
    m = machine.summary()
    tiles = ", ".join(f"{k} {v}" for k, v in m["tiles"].items())
    forced = f" (forced by {machine.ENV})" if m["table_forced"] else ""
    return {
        "loopgrad": f"{loopgrad.__version__} ({os.path.dirname(loopgrad.__file__)})",
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": f"{platform.platform()}, {os.cpu_count()} CPUs ({cpu_model()})",
        "CPU": f"LLVM {m['llvm_cpu']}, vector ISA {m['isa']}",
        "kernel table": f"entry {m['table_entry']}{forced}: {m['vector_bits']}-bit vectors, "
                        f"tiles {tiles}" + (HALVES if m["halves_512"] else ""),
        "caches": caches.describe(caches.geometry()),
        "packages": ", ".join(f"{d} {_version(d)}" for d in
                              ("numpy", "numba", "llvmlite", "torch", "numba-cuda", "dask")),
        "threads": f"{numba.get_num_threads()} Numba threads (NUMBA_NUM_THREADS)",
        "threading layer": f"{layer}"
                           + (" (concurrent calls serialised)" if layer == "workqueue" else "")
                           + (" (forked children run the serial kernels)" if layer == "omp" else ""),
        "kernel cache": cached,
        "memory kept": f"scratch up to {workspace.KEEP_BYTES >> 20} MiB, dropped results' "
                       f"up to {workspace.RESULT_BYTES >> 20} MiB between calls "
                       f"(loopgrad.cpu.workspace; release() frees both)",
        "generated kernels": generated,
        "shaped kernels": (f"on: the fused kernel compiled for a (K, M) of K·M ≤ {shaped.MAX_KM} "
                           f"once its calls have spent {shaped.HOT_S:g} s (`loopgrad compile "
                           f"--shapes`; {shaped.ENV}=0 turns them off)") if shaped.enabled()
        else f"off ({shaped.ENV}=0)",
        "CUDA": gpu,
    }


def main(args=None) -> int:
    for label, text in report().items():
        print(f"{label + ':':19s} {text}")
    return 0
