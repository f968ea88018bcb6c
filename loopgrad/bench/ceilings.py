"""`loopgrad bench --ceilings`: what this machine can do at best, to read the table against.

Two ceilings, each the best of a few ways of reaching it:

memory copy  GB/s = bytes read + bytes written per second by a copy of a large
             float32 array (COPY_MIB MiB): NumPy's `np.copyto` (one thread) and
             a Numba `@njit(parallel=True)` prange loop (Numba's threads): about
             the most the skinny shapes (N ≫ K, M) can reach.  Counted like the
             table's GB/s (each byte read once, written once); a loop that
             writes through the cache also reads each line it writes, so the
             wires carry up to 1.5× what is counted, while np.copyto's memcpy
             may use streaming stores that skip that read.
sgemm        GFLOP/s = 2·n³ / time of a float32 n × n matrix product (n =
             SGEMM_N): NumPy's `a @ b` (OpenBLAS; np.matmul into a preallocated
             array) in a fresh process, once with the environment as it is and
             once without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (which pin
             OpenBLAS's kernels and its blocking: on a machine where they name
             an older core than the real one, OpenBLAS runs at about half
             speed), and torch.matmul in this process when torch is installed:
             about the most the square shapes can reach.  Under `loopgrad bench
             --isa` (forced_isa) the second NumPy run is not made: without the
             pin OpenBLAS would run the host's widest kernels, not the ISA's.
dgemm        the same in float64, measured for --dtype float64 runs.

in rounds    with --rounds R > 1, both again after each round of each shape's cells
             (`InRounds`: NumPy's product in this process, the prange copy), their
             medians the shape's: a drifting host's minutes met as the cells met them.

Each figure is the fastest of `repeat` calls after a warm-up.  Every function
returns a plain dict (JSON-ready): the ceiling, which measurement gave it, and
every measurement with its label, time and figure, or the reason it is missing.
"""

import contextlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

COPY_MIB = 256      # each of the two arrays of the copy
SGEMM_N = 2048
REPEAT = 10
SGEMM_TIMEOUT_S = 120.0  # per subprocess: import NumPy, warm up, `repeat` products
# pinned on some machines (see the module docstring); the second NumPy run goes without them
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ------------------------------------------------------------------ helpers

def _best(fn, repeat) -> float:
    """Seconds of the fastest of `repeat` calls of fn(), after one warm-up call."""
    fn()
    best = math.inf
    for _ in range(max(int(repeat), 1)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@contextlib.contextmanager
def _threads(n):
    """Numba's and torch's thread counts set to n for the block (nothing when n is None)."""
    if not n:
        yield
        return
    import numba

    torch = sys.modules.get("torch")
    before = numba.get_num_threads(), torch.get_num_threads() if torch else None
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if torch:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before[0])
        if torch:
            torch.set_num_threads(before[1])


def _ceiling(measurements, key) -> tuple:
    """(best figure, label of the measurement that gave it) over those that have one."""
    done = [m for m in measurements if m.get(key) is not None]
    if not done:
        return None, None
    top = max(done, key=lambda m: m[key])
    return top[key], top["label"]


_COPY = None


def _prange_copy():
    # compiled on first use: importing this module must not import Numba
    global _COPY
    if _COPY is None:
        from numba import njit, prange

        def copy(dst, src):
            for i in prange(src.size):
                dst[i] = src[i]

        try:
            _COPY = njit(parallel=True, cache=True)(copy)
        except RuntimeError:  # no folder can take the disk cache: compile every time
            _COPY = njit(parallel=True)(copy)
    return _COPY


# -------------------------------------------------------------- memory copy

def memory_copy(mib=None, repeat=None, threads=None) -> dict:
    """Bandwidth of a copy of a float32 array of `mib` MiB (default COPY_MIB), in GB/s.

    GB/s = 2 · bytes / time (every byte read once and written once).  `threads`
    sets Numba's threads for the prange loop (default: those in force).
    """
    mib = COPY_MIB if mib is None else mib
    repeat = REPEAT if repeat is None else repeat
    n = max(int(mib * 2**20) // 4, 1)
    src = np.arange(n, dtype=np.float32)
    dst = np.zeros_like(src)  # touched: no page faults in the timed copies
    nbytes = 2 * src.nbytes
    measurements = []

    def entry(key, label, fn, n_threads):
        try:
            best = _best(fn, repeat)
            if not np.array_equal(dst[-3:], src[-3:]) or dst[0] != src[0]:
                raise RuntimeError("the copy is wrong")
            m = dict(key=key, label=label, threads=n_threads, best_s=best,
                     gbps=nbytes / best / 1e9, reason=None)
        except Exception as e:  # noqa: BLE001 - reported beside the others
            m = dict(key=key, label=label, threads=n_threads, best_s=None, gbps=None,
                     reason=f"{type(e).__name__}: {e}".splitlines()[0][:300])
        measurements.append(m)
        dst[:] = 0

    entry("numpy-copyto", "NumPy np.copyto", lambda: np.copyto(dst, src), 1)
    import numba

    with _threads(threads):
        copy = _prange_copy()
        entry("numba-prange", "Numba prange copy loop",
              lambda: copy(dst, src), numba.get_num_threads())
    gbps, best = _ceiling(measurements, "gbps")
    return dict(gbps=gbps, best=best, array_bytes=src.nbytes, bytes_per_copy=nbytes,
                dtype="float32", repeat=repeat, measurements=measurements)


# -------------------------------------------------------------------- sgemm

# run by sys.executable in a fresh process: OpenBLAS reads its environment when it loads
_CHILD = r"""
import json, sys, time
import numpy as np
n, repeat, threads, dtype = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None
if threads and threadpoolctl:
    threadpoolctl.threadpool_limits(threads, user_api="blas")
rng = np.random.default_rng(0)
a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
c = np.empty((n, n), dtype)
np.matmul(a, b, out=c)
np.matmul(a, b, out=c)
best = float("inf")
for _ in range(max(repeat, 1)):
    t0 = time.perf_counter()
    np.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - t0)
blas = [dict(internal_api=d.get("internal_api"), version=d.get("version"),
             architecture=d.get("architecture"), num_threads=d.get("num_threads"))
        for d in (threadpoolctl.threadpool_info() if threadpoolctl else ())
        if d.get("user_api") == "blas" and "numpy" in d.get("filepath", "")]
print(json.dumps(dict(best_s=best, blas=blas[0] if blas else None)))
"""


def _numpy_sgemm(key, label, env, n, repeat, threads, timeout, dtype) -> dict:
    if threads:
        env = dict(env, OPENBLAS_NUM_THREADS=str(threads))
    m = dict(key=key, label=label, env={k: env.get(k) for k in OPENBLAS_PINS},
             blas=None, threads=None, best_s=None, gflops=None, reason=None)
    try:
        run = subprocess.run([sys.executable, "-c", _CHILD, str(n), str(repeat),
                              str(threads or 0), dtype],
                             env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        m["reason"] = f"timed out after {timeout:g} s"
        return m
    except OSError as e:
        m["reason"] = f"{type(e).__name__}: {e}"
        return m
    try:
        got = json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        m["reason"] = f"the subprocess failed: {tail[:300]}"
        return m
    m.update(best_s=got["best_s"], gflops=2 * n**3 / got["best_s"] / 1e9, blas=got["blas"],
             threads=(got["blas"] or {}).get("num_threads"))
    return m


def _torch_sgemm(n, repeat, dtype) -> dict:
    m = dict(key="torch", label="torch.matmul", env=None, blas=None,
             threads=None, best_s=None, gflops=None, reason=None)
    try:
        import torch
    except ImportError:
        m["reason"] = "torch not installed"
        return m
    try:
        g = torch.Generator().manual_seed(0)
        a, b = (torch.randn(n, n, generator=g, dtype=getattr(torch, dtype)) for _ in range(2))
        c = torch.empty(n, n, dtype=getattr(torch, dtype))
        torch.matmul(a, b, out=c)
        best = _best(lambda: torch.matmul(a, b, out=c), repeat)
    except Exception as e:  # noqa: BLE001 - reported beside the others
        m["reason"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        return m
    m.update(threads=torch.get_num_threads(), best_s=best, gflops=2 * n**3 / best / 1e9,
             blas=dict(internal_api=_torch_blas(torch)))
    return m


def _torch_blas(torch):
    # "mkl", "open" (OpenBLAS), ...: BLAS_INFO in torch's build configuration
    import re

    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else None


def sgemm(n=None, repeat=None, threads=None, timeout=None, with_torch=True,
          dtype="float32", forced_isa=None) -> dict:
    """The float32 n × n matrix product (default n = SGEMM_N) in GFLOP/s = 2·n³ / time
    (dtype="float64": dgemm, the ceiling of float64 runs).

    NumPy runs in a fresh process (sys.executable), with the environment as
    it is, then without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (only when one
    of them is set: otherwise the two runs are the same); torch.matmul runs
    here.  `threads` limits the BLAS and torch threads (default: theirs).
    forced_isa: the ISA `loopgrad bench --isa` runs as (its environment pins
    OpenBLAS, MKL and oneDNN to it): NumPy then runs only as pinned.
    """
    n = SGEMM_N if n is None else n
    repeat = REPEAT if repeat is None else repeat
    timeout = SGEMM_TIMEOUT_S if timeout is None else timeout
    env = dict(os.environ)
    pinned = any(k in env for k in OPENBLAS_PINS)
    measurements = [_numpy_sgemm("numpy", "NumPy a @ b, environment as it is", env, n, repeat,
                                 threads, timeout, dtype)]
    unpinned = {k: v for k, v in env.items() if k not in OPENBLAS_PINS}
    label = "NumPy a @ b, without " + " and ".join(OPENBLAS_PINS)
    if forced_isa:
        measurements.append(dict(key="numpy-unpinned", label=label, env=None, blas=None,
                                 threads=None, best_s=None, gflops=None,
                                 reason=f"not under --isa {forced_isa}: OpenBLAS would run "
                                        "the host's widest kernels"))
    elif pinned:
        measurements.append(_numpy_sgemm("numpy-unpinned", label, unpinned, n, repeat,
                                         threads, timeout, dtype))
    else:
        measurements.append(dict(key="numpy-unpinned", label=label, env=None, blas=None,
                                 threads=None, best_s=None, gflops=None,
                                 reason="neither is set: the same as the run above"))
    if with_torch:
        with _threads(threads):
            measurements.append(_torch_sgemm(n, repeat, dtype))
    gflops, best = _ceiling(measurements, "gflops")
    return dict(gflops=gflops, best=best, n=n, dtype=dtype, repeat=repeat,
                measurements=measurements)


# ------------------------------------------------------ in a shape's rounds

class InRounds:
    """The ceilings again within each shape's rounds (`--ceilings --rounds R`, R > 1): one
    Numba prange copy of COPY_MIB MiB and one NumPy product of SGEMM_N² in the run's dtype
    (in this process: NumPy's BLAS as the peer runs it) after each round's cells.  On
    a host whose speed drifts by the minute (the 2-core Zen 4 guest: a call 2× slower in
    some minutes, every implementation alike) the best ceilings measured once after the
    table may meet a fast minute and a shape's cells a slow one; these meet the shape's
    own minutes.  `take` gives the medians of the rounds since the last take."""

    def __init__(self, dtype):
        n = SGEMM_N
        rng = np.random.default_rng(0)
        self.a, self.b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        self.c = np.empty((n, n), dtype)
        self.src = np.arange(max(int(COPY_MIB * 2**20) // 4, 1), dtype=np.float32)
        self.dst = np.zeros_like(self.src)  # touched: no page faults in the timed copies
        self.copy = _prange_copy()
        self._gemm_s, self._copy_s = [], []
        self.sample()  # a warm-up: the copy's compile, BLAS's threads started
        self._gemm_s, self._copy_s = [], []

    def sample(self, settle: float = 0.0) -> None:
        """Time one copy and one product (a round's), `settle` seconds apart: each side's
        threads spin on after its call and slow what runs next on two cores (a copy right
        after the product ran at 17–22 GB/s against the run's 30, a product right after
        the copy at 181–188 GFLOP/s against 206)."""
        t0 = time.perf_counter()
        self.copy(self.dst, self.src)
        self._copy_s.append(time.perf_counter() - t0)
        time.sleep(settle)
        t0 = time.perf_counter()
        np.matmul(self.a, self.b, out=self.c)
        self._gemm_s.append(time.perf_counter() - t0)

    def take(self, shape) -> dict:
        """{shape, gemm_gflops, copy_gbps, samples}: the medians of the samples since the last
        take (None where there are none), which it forgets."""
        n, k = self.a.shape[0], len(self._gemm_s)
        gemm = 2 * n**3 / float(np.median(self._gemm_s)) / 1e9 if k else None
        copy = 2 * self.src.nbytes / float(np.median(self._copy_s)) / 1e9 if k else None
        self._gemm_s, self._copy_s = [], []
        return dict(shape=list(shape), gemm_gflops=gemm, copy_gbps=copy, samples=k)


def measure(threads=None, mib=None, n=None, repeat=None) -> dict:
    """Both ceilings: {"memory_copy": memory_copy(...), "sgemm": sgemm(...)}."""
    return dict(memory_copy=memory_copy(mib, repeat, threads),
                sgemm=sgemm(n, repeat, threads))
