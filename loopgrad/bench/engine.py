"""`loopgrad bench`: time f and its three gradients, implementation by implementation.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

For each shape the inputs are drawn once (standard normal, seeded) and every
implementation (`loopgrad.bench.impls`) gets the same arrays.  Each cell
(shape × implementation) goes:

1. prepare: convert the inputs (torch tensors, JAX arrays), untimed;
2. first call, timed on its own: compile time (Numba's disk-cache load,
   torch.compile, JAX jit) shows as `compile` = first call − median; it
   includes the wait for what the call left compiling (loopgrad's kernels
   compile behind a cold first call), so that no timed call runs a kernel in
   transition;
3. check all four outputs against the float64 reference (torch autograd of
   the notebook expression, `loopgrad.reference.torch_autograd`) within the
   bounds of `loopgrad.reference.error_bounds` widened by the worst case of a
   sum in the input dtype (`ok*`, see below); a mismatch is reported with its
   error and not timed;
4. warm-up (at least one call, up to 10% of the cell's time budget);
5. timed calls, each on its own with `time.perf_counter` and the garbage
   collector off, until `--repeat` calls or `--max-time` seconds (at least 3
   calls); the median and the 20th–80th percentiles are reported.

Cells are separated by a short sleep, and NumPy runs last at each shape:
OpenBLAS threads spin for a while after a call and slow whatever runs next.
With --rounds R, steps 4 and 5 run in R rounds at each shape, implementation
after implementation in each, with 1/R of the calls and seconds a round: on a
host whose speed drifts over seconds (a shared VM: on the Zen 4 guest 256³
took 0.6 or 0.9 ms by the minute, every implementation alike) the ratios
then compare calls made in the same minutes.

--isa avx512|avx2|generic (loopgrad/bench/isa.py): the command runs itself
again in a child process whose environment makes Numba compile for that ISA
(with a disk cache of its own) and caps NumPy's OpenBLAS, torch's MKL and
oneDNN and JAX's XLA to it; the child times everything, --ceilings included,
and its exit status is the command's.

Columns: GFLOP/s = 6·N·K·M / median (forward 2NKM, the dx and dW matmuls 2NKM
each); GB/s = bytes of x, W, y read once and dx, dW, dy written once / median;
`vs torch` = median of torch autograd (CPU) / median of the row.
Check: `ok` = within loopgrad's accuracy contract (`reference.error_bounds`);
`ok*` = beyond it, but within the worst case of summing in the input dtype
(Higham's γ_n for f over N·M terms and dW over N rows: torch's float32
`trace(zᵀz)` lands here at large N); MISMATCH = beyond both.

JSON (--json FILE): one object with these fields

    schema          "loopgrad-bench/1"
    interrupted     true when Ctrl-C stopped the run: results hold the cells measured
                    before it (the command then exits 130)
    command         the command line, as run
    date            ISO 8601, UTC
    settings        preset, shapes [[N, K, M], ...], dtype, impls, repeat,
                    max_time_s, rounds, seed, relu_grad_at_zero, threads (requested or null),
                    isa (--isa: native, avx512, avx2 or generic)
    machine         cpu_model, llvm_cpu (LLVM's name of the CPU Numba compiles for), isa
                    (avx512, avx2 or generic), table_entry (loopgrad's machine-table entry the
                    kernels use), table_forced (LOOPGRAD_CPU_ISA set), vector_bits, tiles
                    ({dtype: "MRxNR"}), halves_512 (512-bit operations run as 256-bit
                    halves: the tiles' last panels in 256-bit tails), cores, usable_cores,
                    memory_gib, platform, python,
                    other_load (the fraction of all cores other processes kept busy
                    during the run, from /proc/stat; null where unknown),
                    isa_forced (null without --isa, else {isa, how: one line saying what was
                    set, env: {variable: value} of those set: NUMBA_CPU_NAME,
                    NUMBA_CPU_FEATURES, NUMBA_CACHE_DIR, OPENBLAS_CORETYPE,
                    MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA, DNNL_MAX_CPU_ISA, XLA_FLAGS,
                    LOOPGRAD_BENCH_ISA}; see loopgrad/bench/isa.py),
                    caches ({L1d, L2, L3: {bytes, ways, line, sets, shared_cpus, source}},
                    loopgrad.cpu.caches.geometry(): read from sysfs, else sysconf, else
                    defaults, as source says), memory_kept ({scratch_bytes, results_bytes}:
                    loopgrad.cpu.workspace's bounds on the scratch and on the memory of
                    dropped results it keeps between calls; a loop past them faults in new
                    pages every call)
    threads         numba, numba_threading_layer, torch, blas (numpy's BLAS threads)
    blas            numpy_build (name, version numpy was built with),
                    loaded (threadpoolctl.threadpool_info() during the run, every thread
                    pool loaded, NumPy's BLAS among them; null without threadpoolctl)
    env             OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS,
                    MKL_NUM_THREADS, NUMBA_NUM_THREADS, NUMBA_THREADING_LAYER, XLA_FLAGS,
                    NUMBA_CPU_NAME, NUMBA_CPU_FEATURES, NUMBA_CACHE_DIR, LOOPGRAD_CPU_ISA,
                    LOOPGRAD_BENCH_ISA, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA,
                    DNNL_MAX_CPU_ISA, ATEN_CPU_CAPABILITY (null when unset)
    versions        loopgrad, loopgrad_git (`git describe --always --dirty` of the checkout
                    loopgrad was imported from, null outside one), python, numpy, numba,
                    torch, jax, jaxlib, threadpoolctl, tqdm, matplotlib (null when not
                    installed)
    reference       what the outputs were checked against
    skipped         [{impl, label, reason}]: implementations that could not run here
    ceilings        only with --ceilings (loopgrad.bench.ceilings): the best this machine does,
                    measured after the cells (null where Ctrl-C came first):
                      memory_copy  {gbps, best, array_bytes, bytes_per_copy, dtype, repeat,
                                    measurements: [{key, label, threads, best_s, gbps, reason}]}
                                   bytes read + written per second copying a 256 MiB
                                   float32 array: np.copyto (1 thread), a Numba prange loop
                      sgemm        {gflops, best, n, dtype, repeat, measurements: [{key, label,
                                    env, blas, threads, best_s, gflops, reason}]}
                                   2·n³ / time of a float32 2048² product: NumPy a @ b in a
                                   fresh process with the environment as it is and without
                                   OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE (not under --isa: it
                                   would run the host's widest kernels); torch.matmul
                      dgemm        only with --dtype float64: the same, float64
                      in_rounds    only with --rounds R > 1: [{shape, gemm_gflops, copy_gbps,
                                   samples}], per shape the medians of one NumPy product
                                   (2048², the dtype's, in the bench's process) and one
                                   prange copy timed after each of its rounds' cells
                    gbps, gflops: the best measurement's (named by best); each measurement is
                    the fastest of repeat calls after a warm-up, or null with its reason
    results         one object per shape × implementation that ran:

        shape           [N, K, M]
        dtype           "float32" or "float64"
        impl            the --impl key
        label           what it is
        kernel          for loopgrad's rows, the kernel the shape runs (loopgrad.cpu.describe),
                        else null
        status          "timed", "mismatch", "skipped" or "error"
        reason          why not timed (the check's message, the exception), else null
        check           "ok", "ok*", "mismatch", or null when it did not get that far
        errors          {f, dx, dW, dy: {max_abs_err, err_over_bound}} against the
                        reference and loopgrad's contract bound, or null
        first_call_s    the first call, compile included (and the wait for the kernels
                        it left compiling)
        compile_s       first_call_s − median_s (at least 0)
        median_s, p20_s, p80_s   of the timed calls
        samples         how many calls were timed
        flops           6·N·K·M
        bytes           itemsize·2·(N·K + K·M + N·M)
        gflops, gbps    flops / median_s / 1e9, bytes / median_s / 1e9
        speedup_vs_torch  torch autograd's median_s / median_s
        roofline_s      with --ceilings: the shape's least time on this machine, max(bytes
                        / the memory copy ceiling, flops / the sgemm ceiling (dgemm for
                        float64)); null without them
        roofline        roofline_s / median_s: the share of it the cell reached (1 = at
                        the roofline), null without --ceilings or a median
        roofline_rounds  the same share from the ceilings timed in the shape's own
                        rounds (ceilings.in_rounds), null without --ceilings and --rounds R > 1

Timing figures are null where the cell was not timed.
"""

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shlex
import sys
import threading
import time

import numpy as np

from .isa import ISAS

DESCRIPTION = ("Time f = Σ (max(x·W, 0) − y)² and its three gradients for each implementation "
               "at each shape, on the same inputs, each checked against a float64 reference "
               "before it is timed. Table on stdout, progress on stderr.")
SCHEMA = "loopgrad-bench/1"
OUTPUTS = ("f", "dx", "dW", "dy")
_SETTLE_S = 0.25  # sleep between cells: lets OpenBLAS/OpenMP worker threads stop spinning
_MIN_SAMPLES = 3

# shapes, and the seconds of timed calls per cell
PRESETS = {
    # the notebook's shape, a skinny memory-bound one, a square compute-bound one: < 1 min
    "quick": (((10, 4, 4), (1_000_000, 4, 4), (512, 512, 512)), 0.5),
    # ...and rows that are not a multiple of a 16-element vector step (8×8, 24×40)
    "skinny": (((10, 4, 4), (100_000, 4, 4), (1_000_000, 4, 4), (1_000_000, 8, 8),
                (1_000_000, 16, 16), (100_000, 24, 40), (100_000, 64, 64)), 1.5),
    "square": (((256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048)), 1.5),
    # compute-bound shapes that are not powers of two, or not square (issue 20's targets)
    "compute": (((1000, 1000, 1000), (1536, 768, 1280), (10_000, 1024, 1024),
                 (100_000, 256, 256), (2048, 512, 2048)), 1.5),
}
PRESETS["full"] = (PRESETS["skinny"][0] + PRESETS["square"][0] + PRESETS["compute"][0], 1.5)
_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "XLA_FLAGS",
        "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_CACHE_DIR", "LOOPGRAD_CPU_ISA",
        "LOOPGRAD_BENCH_ISA", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
        "ATEN_CPU_CAPABILITY")


# ---------------------------------------------------------------- the options

def _shapes(text: str) -> list:
    shapes = []
    for part in text.split(","):
        dims = part.strip().lower().split("x")
        try:
            nkm = tuple(int(d) if "e" not in d else int(float(d)) if float(d).is_integer()
                        else 0 for d in dims)
        except (ValueError, OverflowError):
            nkm = ()
        if len(nkm) != 3 or min(nkm) < 1:
            raise argparse.ArgumentTypeError(
                f"invalid shape {part.strip()!r}: expected NxKxM with positive integers, "
                f"e.g. 10x4x4 or 1000000x4x4 (several: 10x4x4,1e6x4x4)")
        shapes.append(nkm)
    return shapes


def _impls(text: str) -> list:
    from .impls import KEYS

    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in KEYS]
    if bad or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown implementation {', '.join(map(repr, bad)) or repr(text)}; "
            f"choose from {','.join(KEYS)}")
    return list(dict.fromkeys(keys))


def _positive(kind):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            v = 0
        if not v > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return v
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `loopgrad bench`; `run` executes them."""
    g = p.add_argument_group("what to time")
    g.add_argument("--preset", choices=tuple(PRESETS), default="quick",
                   help="shapes and time budget: quick (default, < 1 min: 10x4x4, 1000000x4x4, "
                        "512x512x512), skinny (N >> K, M: memory-bound, 10x4x4 to 1000000x16x16, "
                        "100000x24x40, 100000x64x64), square "
                        "(256^3 to 2048^3: compute-bound), compute (1000^3, 1536x768x1280, "
                        "10000x1024x1024, 100000x256x256, 2048x512x2048), full (all three)")
    g.add_argument("--shapes", type=_shapes, metavar="NxKxM[,...]",
                   help="shapes instead of the preset's, e.g. 10x4x4,1000000x4x4")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g.add_argument("--impl", type=_impls, metavar="KEY[,...]",
                   help="implementations to run (default: all): loopgrad, loopgrad-1t, torch, "
                        "torch-hand, torch-compile, jax, loopgrad-cuda, torch-cuda, "
                        "torch-cuda-hand, numpy")
    g.add_argument("--threads", type=_positive(int), metavar="N",
                   help="threads for Numba, torch and NumPy's BLAS (default: theirs)")
    g.add_argument("--repeat", type=_positive(int), default=100, metavar="R",
                   help="at most R timed calls per cell (default 100; at least 3 are timed)")
    g.add_argument("--max-time", type=_positive(float), metavar="S",
                   help="stop timing a cell after S seconds (default: the preset's, "
                        "0.5 for quick, 1.5 otherwise)")
    g.add_argument("--rounds", type=_positive(int), default=1, metavar="R",
                   help="time each shape's implementations in R alternating rounds, each "
                        "with 1/R of a cell's calls and seconds (default 1: one cell after "
                        "another), so that a machine whose speed drifts over seconds (a "
                        "shared host) slows them alike; the median is over all rounds' calls")
    g.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    g.add_argument("--ceilings", action="store_true",
                   help="also measure the machine's ceilings, printed after the table: memory "
                        "copy GB/s (np.copyto, a Numba prange loop; 256 MiB) and float32 "
                        "matmul GFLOP/s (NumPy with and without OPENBLAS_CORETYPE/"
                        "OPENBLAS_L2_SIZE, torch; n = 2048); about 10 s. Under --isa they run "
                        "with the same settings (NumPy only as pinned)")
    g.add_argument("--isa", choices=ISAS, default="native",
                   help="run everything as on a machine of this vector ISA (default native: "
                        "the host's). The bench runs itself again in a child process with "
                        "loopgrad's kernels compiled for it (NUMBA_CPU_NAME/NUMBA_CPU_FEATURES "
                        "with the wider features off, a Numba cache of its own) and the peers "
                        "capped to it: OPENBLAS_CORETYPE (NumPy), MKL_ENABLE_INSTRUCTIONS and "
                        "ONEDNN_MAX_CPU_ISA (torch), --xla_cpu_max_isa (JAX); --ceilings too. "
                        "Only ISAs the CPU runs (native and generic on non-x86). "
                        "torch.compile's generated elementwise code may still use the host's "
                        "widest vectors (ATEN_CPU_CAPABILITY is not set)")
    o = p.add_argument_group("output (the table goes to stdout, progress to stderr)")
    o.add_argument("--markdown", action="store_true",
                   help="print a dated Markdown section (machine, versions, command, table) "
                        "ready for benchmarks/RESULTS.md instead of the plain table")
    o.add_argument("--json", metavar="FILE", help="write every figure and the machine info")
    o.add_argument("--plot", metavar="FILE.png",
                   help="plot time and GFLOP/s against work per implementation "
                        "(needs matplotlib: pip install 'loopgrad[bench]')")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run, bench_parser=p)


# ------------------------------------------------------------------- timing

def _time_cell(impl, x, W, y, ref, bounds, loose, max_time, repeat) -> dict:
    """One cell: its first call and check, then its timed calls."""
    cell, prep = _first_call(impl, x, W, y, ref, bounds, loose)
    if prep is not None:
        with impl.threads():
            _sample_into(cell, prep, max_time, repeat)
    return _finish(cell)


def _first_call(impl, x, W, y, ref, bounds, loose) -> tuple:
    """(cell, prepared): the first call timed (the compile it leaves behind waited for) and
    checked; prepared is None where the cell ends there (error, skipped or mismatch)."""
    cell = dict(status="error", reason=None, check=None, errors=None, first_call_s=None,
                compile_s=None, median_s=None, p20_s=None, p80_s=None, samples=0)
    clock = time.perf_counter
    with impl.threads():
        try:
            prep = impl.prepare(x, W, y)
            t0 = clock()
            out = prep.run()
            prep.settle()  # the kernels it left compiling: their time is the first call's
            cell["first_call_s"] = clock() - t0
            got = prep.host(out)
            del out
        except Exception as e:  # noqa: BLE001 - reported in the table, with the reason
            cell["status"] = "skipped" if impl.skip_on_error else "error"
            cell["reason"] = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
            return cell, None
    cell["check"], cell["reason"], cell["errors"] = _check(got, ref, bounds, loose)
    del got
    if cell["check"] == "mismatch":
        cell["status"] = "mismatch"
        return cell, None
    cell["_samples"] = []
    return cell, prep


def _sample_into(cell, prep, max_time, repeat) -> bool:
    """Add a warm-up and up to repeat timed calls (or max_time seconds) to the cell's
    samples; False where a call failed (the cell is an error then)."""
    try:
        cell["_samples"] += _samples(prep.run, max_time, repeat)
    except Exception as e:  # noqa: BLE001 - a call that fails after the check is an error
        cell["reason"] = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
        cell["_failed"] = True
        return False
    return True


def _finish(cell) -> dict:
    """The cell's median and percentiles from its samples (where it has them)."""
    samples = cell.pop("_samples", None)
    if cell.pop("_failed", False) or not samples:
        return cell
    p20, med, p80 = np.percentile(samples, [20, 50, 80])
    cell.update(status="timed", median_s=float(med), p20_s=float(p20), p80_s=float(p80),
                samples=len(samples), compile_s=max(cell["first_call_s"] - float(med), 0.0))
    return cell


def _time_rounds(active, x, W, y, ref, bounds, loose, max_time, repeat, rounds, bar,
                 probe=None) -> list:
    """--rounds R: every implementation's first call and check, then their timed calls in
    R rounds, implementation after implementation in each (NumPy's last), each round with
    1/R of the cell's time and calls: a host whose speed drifts over seconds (a shared
    machine) then slows every implementation alike.  probe (ceilings.InRounds): sampled
    after each round's cells.  The cells, in `active`'s order."""
    cells, preps = [], []
    for impl in active:
        _ctrl_c.check()
        bar.set_postfix_str(f"{x.shape[0]}x{x.shape[1]}x{W.shape[1]} {impl.key} first call")
        cell, prep = _first_call(impl, x, W, y, ref, bounds, loose)
        cells.append(cell)
        preps.append(prep)
        time.sleep(_SETTLE_S)
    per_round = max(1, -(-repeat // rounds))
    for r in range(rounds):
        for impl, cell, prep in zip(active, cells, preps):
            if prep is None or cell.get("_failed"):
                continue
            _ctrl_c.check()
            bar.set_postfix_str(f"{x.shape[0]}x{x.shape[1]}x{W.shape[1]} {impl.key} "
                                f"round {r + 1}/{rounds}")
            with impl.threads():
                _sample_into(cell, prep, max_time / rounds, per_round)
            gc.collect()
            time.sleep(_SETTLE_S)
        if probe is not None:
            _ctrl_c.check()
            bar.set_postfix_str(f"{x.shape[0]}x{x.shape[1]}x{W.shape[1]} ceilings "
                                f"round {r + 1}/{rounds}")
            probe.sample(_SETTLE_S)
            time.sleep(_SETTLE_S)
    for cell in cells:
        _finish(cell)
        bar.update()
    return cells


def _rounds(args) -> int:
    # --rounds (1 where args come from elsewhere without it)
    return getattr(args, "rounds", 1) or 1


def _samples(run, max_time, repeat) -> list:
    """Seconds of each timed call of run(), after a warm-up."""
    clock = time.perf_counter
    # warm-up: one call at least, up to 10% of the budget
    spent, n = 0.0, 0
    while n < 1 or (spent < 0.1 * max_time and n < 20):
        t0 = clock()
        run()
        spent += clock() - t0
        n += 1
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        while len(samples) < min(_MIN_SAMPLES, repeat) or (
                len(samples) < repeat and clock() - start < max_time):
            t0 = clock()
            run()
            samples.append(clock() - t0)
    finally:
        if gc_was:
            gc.enable()
    return samples


def _gamma(n, u):
    # Higham's γ_n = n·u / (1 − n·u): the relative error bound of a sum of n terms
    nu = n * u
    return nu / (1 - nu) if nu < 1 else np.inf


def _loose_bounds(x, ref, bounds):
    """The contract bounds plus the worst case of the long sums done in the input dtype.

    f sums N·M squares (all ≥ 0: Σ|terms| = f) and dW sums N products
    x[n,k]·g[n,m] with |g| ≤ |dy| = 2|z|; the contract (reference.error_bounds)
    assumes float64 across blocks of SUM_BLOCK terms, which a correct float32
    implementation (torch's trace(zᵀz)) need not do.  Where n·u approaches 1
    (N·M ≈ 1.7e7 in float32) the worst case no longer bounds f at all: `ok*`
    then vouches for the gradients, and the table shows f's error.
    """
    N, M = ref[3].shape
    u = np.finfo(x.dtype).eps / 2
    f, dx, dW, dy = bounds
    return (f + _gamma(N * M, u) * abs(ref[0]),
            dx,
            dW + _gamma(N, u) * (np.abs(x.astype(np.float64)).T @ np.abs(ref[3])),
            dy)


def _check(got, ref, bounds, loose):
    """(check, reason, errors): "ok" within the contract, "ok*" within the loose bounds."""
    from .. import reference

    errors = {}
    try:
        for name, g, r, b in zip(OUTPUTS, got, ref, bounds):
            g64, r64 = np.asarray(g, np.float64), np.asarray(r, np.float64)
            if g64.shape != r64.shape or g64.size == 0:
                continue
            with np.errstate(invalid="ignore"):
                err = np.abs(g64 - r64)
            errors[name] = dict(max_abs_err=float(np.max(err)),
                                err_over_bound=float(np.max(err / np.maximum(b, 1e-300))))
        for name, g, r, b in zip(OUTPUTS, got, ref, loose):
            reference.check(name, g, r, b)
    except (AssertionError, ValueError, TypeError) as e:
        return "mismatch", str(e), errors
    try:
        for name, g, r, b in zip(OUTPUTS, got, ref, bounds):
            reference.check(name, g, r, b)
    except AssertionError as e:
        return "ok*", str(e), errors
    return "ok", None, errors


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _reference(x, W, y, a0):
    """(f, dx, dW, dy) in float64: torch autograd, or NumPy's hand formula without torch."""
    from .. import reference

    if _torch_available():
        return reference.torch_autograd(x, W, y, a0, dtype="float64")
    x64, W64, y64 = (a.astype(np.float64) for a in (x, W, y))
    return reference.numpy_hand(x64, W64, y64, a0)


def _reference_name() -> str:
    if _torch_available():
        return ("torch autograd of the notebook expression in float64 "
                "(loopgrad.reference.torch_autograd)")
    return "NumPy hand formula in float64 (torch not installed)"


# --------------------------------------------------------------- the command

def run(args: argparse.Namespace) -> int:
    """Run `loopgrad bench`; 0 if every implementation that ran matched the reference."""
    from . import impls as bench_impls

    parser = args.bench_parser
    isa = getattr(args, "isa", "native")
    if isa != "native":
        rc = _run_as(args, isa)
        if rc is not None:
            return rc
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'loopgrad[bench]'")
    import numba

    if args.threads and args.threads > numba.config.NUMBA_NUM_THREADS:
        parser.error(f"--threads {args.threads}: Numba has at most "
                     f"{numba.config.NUMBA_NUM_THREADS} threads here (NUMBA_NUM_THREADS)")
    shapes, max_time = PRESETS[args.preset]
    shapes = [tuple(s) for s in (args.shapes or shapes)]
    max_time = args.max_time or max_time
    dtype = np.dtype(args.dtype)
    keys = args.impl or list(bench_impls.KEYS)
    impls = [i for i in bench_impls.registry() if i.key in keys]
    return _run(args, impls, shapes, dtype, max_time)


def _run_as(args, isa):
    """--isa: run in a child process set up as an `isa` machine (its exit status), or in
    this one when it is that child or nothing needs forcing (None)."""
    from . import isa as bench_isa

    parser = args.bench_parser
    if os.environ.get(bench_isa.MARK) == isa:  # the child: check the settings took
        from ..cpu import machine

        got = machine.summary()
        if got["isa"] != isa:
            parser.error(f"--isa {isa}: Numba compiles for {got['llvm_cpu']} ({got['isa']}) in "
                         f"the child process, not {isa}: NUMBA_CPU_NAME/NUMBA_CPU_FEATURES "
                         "were not honoured")
        return None
    table = os.environ.get("LOOPGRAD_CPU_ISA", "").strip().lower()
    if table and table != isa:
        parser.error(f"--isa {isa} with LOOPGRAD_CPU_ISA={table}: that forces loopgrad's "
                     "kernels to another table entry; unset it")
    try:
        env = bench_isa.child_environment(isa)
    except bench_isa.Unsupported as e:
        parser.error(str(e))
    if env is None:  # generic on a host that is not x86: already the host's
        return None
    argv = getattr(args, "argv", None)
    return bench_isa.reexec(list(sys.argv[1:] if argv is None else argv), env)


def _run(args, impls, shapes, dtype, max_time) -> int:
    from . import impls as bench_impls, report as bench_report

    busy = _BusyMeter()
    restore_threads = _set_threads(args.threads)
    skipped, active = [], []
    for impl in impls:
        reason = impl.unavailable()
        if reason:
            skipped.append(dict(impl=impl.key, label=impl.label, reason=reason))
        else:
            active.append(impl)
    a0 = bench_impls.RELU_GRAD_AT_ZERO
    ceilings = None
    if getattr(args, "ceilings", False):  # float64 runs read the square shapes against dgemm
        ceilings = dict(memory_copy=None, sgemm=None, **({"dgemm": None} if dtype == np.float64
                                                          else {}))
    bar = _progress(len(shapes) * (len(active) + 1) + (len(ceilings) if ceilings else 0),
                    args.no_progress)
    results, interrupted = [], False
    # the ceilings again in each shape's rounds (ceilings.InRounds)
    in_rounds = [] if ceilings is not None and _rounds(args) > 1 else None
    try:
        try:
            with _ctrl_c:
                _measure(args, active, shapes, dtype, max_time, a0, bar, results, in_rounds)
                if ceilings is not None:
                    _measure_ceilings(args, bar, ceilings)
        except KeyboardInterrupt:  # Ctrl-C: stop, and report the cells measured so far
            interrupted = True
        threads, loaded = _threads()  # while --threads is still in force
    finally:
        bar.close()
        restore_threads()
    _speedups(results, bench_impls.BASELINE)
    if in_rounds is not None:
        ceilings["in_rounds"] = in_rounds
    record = _record(args, shapes, dtype, max_time, impls, skipped, results, _reference_name(),
                     a0, threads, loaded, busy.other(), interrupted, ceilings)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=1)
            fh.write("\n")
    if args.plot:
        bench_report.plot(record, args.plot)
    print(bench_report.markdown(record, args.plot) if args.markdown else bench_report.table(record))
    if interrupted:
        print(f"interrupted: {len(results)} cell(s) measured before Ctrl-C", file=sys.stderr)
        return 130
    return 0 if all(r["status"] in ("timed", "skipped") for r in results) else 1


class _CtrlC:
    """SIGINT noted as well as raised, and raised again at the next cell.

    Python raises KeyboardInterrupt wherever the main thread is; inside a ctypes
    callback (Numba compiling, writing its cache) the exception is printed and
    dropped ("Exception ignored on calling ctypes callback function") and the
    run would go on to the end.  `check()` between cells raises it again.
    """

    def __init__(self):
        self.seen = False
        self._before = None

    def __enter__(self):
        import signal

        self.seen = False
        if threading.current_thread() is threading.main_thread():
            self._before = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self._before is not None:
            signal.signal(signal.SIGINT, self._before)
            self._before = None
        return False

    def _handler(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt

    def check(self):
        if self.seen:
            raise KeyboardInterrupt


_ctrl_c = _CtrlC()


def _measure(args, active, shapes, dtype, max_time, a0, bar, results, in_rounds=None):
    """Time every implementation at every shape, appending one record per cell to results;
    in_rounds (a list, with --rounds R > 1): the ceilings timed in each shape's rounds
    appended to it, one entry a shape (ceilings.InRounds)."""
    from .. import reference
    from . import ceilings as bench_ceilings

    probe = None
    if in_rounds is not None:
        bar.set_postfix_str("ceilings in rounds: warm-up")
        probe = bench_ceilings.InRounds(dtype)

    for N, K, M in shapes:
        _ctrl_c.check()
        rng = np.random.default_rng(args.seed)
        x, W, y = (rng.standard_normal(s).astype(dtype) for s in ((N, K), (K, M), (N, M)))
        bar.set_postfix_str(f"{N}x{K}x{M} reference")
        ref = _reference(x, W, y, a0)
        bounds = reference.error_bounds(x, W, y, ref)
        loose = _loose_bounds(x, ref, bounds)
        bar.update()
        time.sleep(_SETTLE_S)
        rounds = _rounds(args)
        if rounds > 1:
            cells = _time_rounds(active, x, W, y, ref, bounds, loose, max_time, args.repeat,
                                 rounds, bar, probe)
            results += [_describe(c, i, (N, K, M), dtype) for c, i in zip(cells, active)]
            if probe is not None:
                in_rounds.append(probe.take((N, K, M)))
        else:
            for impl in active:
                _ctrl_c.check()
                bar.set_postfix_str(f"{N}x{K}x{M} {impl.key}")
                cell = _time_cell(impl, x, W, y, ref, bounds, loose, max_time, args.repeat)
                results.append(_describe(cell, impl, (N, K, M), dtype))
                bar.update()
                gc.collect()
                time.sleep(_SETTLE_S)
        del x, W, y, ref, bounds, loose


def _measure_ceilings(args, bar, ceilings):
    """Fill ceilings (memory_copy, sgemm) one by one: Ctrl-C keeps those measured."""
    from . import ceilings as bench_ceilings, isa as bench_isa

    # under --isa, NumPy's product runs only as the child's environment pins it
    forced = bench_isa.forced(getattr(args, "isa", "native"))
    pinned = {} if forced is None else dict(forced_isa=forced["isa"])
    for name, measure in (("memory_copy", bench_ceilings.memory_copy),
                          ("sgemm", lambda **kw: bench_ceilings.sgemm(**pinned, **kw)),
                          ("dgemm", lambda **kw: bench_ceilings.sgemm(dtype="float64", **pinned,
                                                                      **kw))):
        if name not in ceilings:
            continue
        _ctrl_c.check()
        bar.set_postfix_str(f"ceilings: {name.replace('_', ' ')}")
        time.sleep(_SETTLE_S)
        ceilings[name] = measure(threads=args.threads)
        bar.update()
        gc.collect()


def _describe(cell, impl, nkm, dtype) -> dict:
    N, K, M = nkm
    flops = 6 * N * K * M
    nbytes = dtype.itemsize * 2 * (N * K + K * M + N * M)
    med = cell["median_s"]
    return dict(shape=[N, K, M], dtype=dtype.name, impl=impl.key, label=impl.label,
                kernel=impl.kernel(N, K, M, dtype), **cell, flops=flops, bytes=nbytes,
                gflops=flops / med / 1e9 if med else None,
                gbps=nbytes / med / 1e9 if med else None,
                speedup_vs_torch=None, roofline_s=None, roofline=None, roofline_rounds=None)


def rooflines(results, ceilings) -> None:
    """Set each result's roofline_s and roofline (the module's doc) from the ceilings, where
    they were measured: max(bytes / copy, flops / gemm), gemm the dtype's."""
    def best(name, key):
        c = (ceilings or {}).get(name)
        return c[key] if c and c.get(key) else None

    copy = best("memory_copy", "gbps")
    rounds = {tuple(c["shape"]): c for c in (ceilings or {}).get("in_rounds") or ()}
    for r in results:
        c = rounds.get(tuple(r["shape"]))
        if r["median_s"] and c and c["gemm_gflops"] and c["copy_gbps"]:
            r["roofline_rounds"] = max(r["bytes"] / (c["copy_gbps"] * 1e9),
                                       r["flops"] / (c["gemm_gflops"] * 1e9)) / r["median_s"]
        gemm = (best("dgemm", "gflops") if r["dtype"] == "float64" else None) \
            or best("sgemm", "gflops")
        if copy is None or gemm is None:
            continue
        r["roofline_s"] = max(r["bytes"] / (copy * 1e9), r["flops"] / (gemm * 1e9))
        if r["median_s"]:
            r["roofline"] = r["roofline_s"] / r["median_s"]


def _speedups(results, baseline):
    base = {tuple(r["shape"]): r["median_s"] for r in results
            if r["impl"] == baseline and r["median_s"]}
    for r in results:
        b = base.get(tuple(r["shape"]))
        if b and r["median_s"]:
            r["speedup_vs_torch"] = b / r["median_s"]


def _set_threads(n):
    """Apply --threads to Numba, torch and NumPy's BLAS; returns a function that undoes it."""
    if not n:
        return lambda: None
    import numba

    undo = [lambda before=numba.get_num_threads(): numba.set_num_threads(before)]
    numba.set_num_threads(n)
    try:
        import torch
    except ImportError:
        pass
    else:
        undo.append(lambda before=torch.get_num_threads(): torch.set_num_threads(before))
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        undo.append(threadpool_limits(n, user_api="blas").restore_original_limits)
    return lambda: [f() for f in reversed(undo)]


def _threads():
    """Thread counts in force now (Numba, its threading layer, torch, NumPy's BLAS), and
    threadpoolctl's view of every thread pool loaded."""
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = f"none started (NUMBA_THREADING_LAYER={numba.config.THREADING_LAYER})"
    torch = sys.modules.get("torch")
    info = _threadpool_info()
    return dict(numba=numba.get_num_threads(), numba_threading_layer=layer,
                torch=torch.get_num_threads() if torch else None,
                blas=[d.get("num_threads") for d in _numpy_blas(info)] or None), info


def _threadpool_info():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl.threadpool_info()


def _numpy_blas(info) -> list:
    # the BLAS libraries NumPy loaded (numpy.libs/ in wheels), among everything threadpoolctl sees
    return [d for d in info or () if d.get("user_api") == "blas"
            and "numpy" in d.get("filepath", "")]


class _BusyMeter:
    """How busy other processes kept the CPUs while the bench ran (Linux: /proc/stat)."""

    def __init__(self):
        self.start = (self._busy_s(), self._tree_cpu_s(), time.perf_counter())

    @staticmethod
    def _busy_s():
        try:
            with open("/proc/stat") as fh:
                v = [int(t) for t in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...: all but idle and iowait
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _tree_cpu_s():
        # CPU seconds of this process and its descendants (torch.compile's compile workers),
        # live ones from their /proc/PID/stat, finished ones through cutime/cstime
        stats = {}
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        f = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
                stats[int(entry)] = (int(f[1]), sum(int(t) for t in f[11:15]))
        if os.getpid() not in stats:
            return time.process_time()
        ours, todo = 0, [os.getpid()]
        while todo:
            pid = todo.pop()
            ours += stats[pid][1]
            todo += [c for c, (ppid, _) in stats.items() if ppid == pid]
        return ours / os.sysconf("SC_CLK_TCK")

    def other(self):
        """Fraction of all cores used by other processes since __init__, or None."""
        busy0, own0, wall0 = self.start
        busy1, own1, wall1 = self._busy_s(), self._tree_cpu_s(), time.perf_counter()
        if busy0 is None or busy1 is None or wall1 <= wall0:
            return None
        frac = ((busy1 - busy0) - (own1 - own0)) / ((wall1 - wall0) * (os.cpu_count() or 1))
        return round(min(max(frac, 0.0), 1.0), 3)


def _progress(total, off):
    from .._progress import progress

    return progress(total, "loopgrad bench", "cell", enabled=not off)


# ---------------------------------------------------------- machine and record

def _version(dist):
    # from the installed metadata: no import (torch, JAX and matplotlib are slow to import)
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_describe():
    # which commit was measured: the code changes faster than the version number
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*args):
        out = subprocess.run(["git", "-C", here, *args], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        # only loopgrad's own checkout: not a repository that happens to hold site-packages
        if os.path.realpath(git("rev-parse", "--show-toplevel") or "/nonexistent") != \
                os.path.realpath(here):
            return None
        return git("describe", "--always", "--dirty") or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_summary() -> dict:
    # LLVM's CPU name, the vector ISA and loopgrad's table entry: which kernels ran
    from ..cpu import machine

    return machine.summary()


def _memory_gib():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _record(args, shapes, dtype, max_time, impls, skipped, results, ref_name, a0,
            threads, loaded, other_load, interrupted=False, ceilings=None) -> dict:
    import numba

    from ..cpu import caches, workspace
    from ..info import cpu_model
    from . import isa as bench_isa

    import loopgrad

    try:
        build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        build = dict(name=build.get("name"), version=build.get("version"))
    except Exception:  # noqa: BLE001 - older NumPy: no dict mode
        build = None
    argv = getattr(args, "argv", None)
    extra = {} if ceilings is None else dict(ceilings=ceilings)  # only with --ceilings
    rooflines(results, ceilings)
    return dict(
        schema=SCHEMA,
        interrupted=interrupted,
        command="loopgrad " + shlex.join(argv if argv is not None else sys.argv[1:]),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        settings=dict(preset=args.preset, shapes=[list(s) for s in shapes], dtype=dtype.name,
                      impls=[i.key for i in impls], repeat=args.repeat, max_time_s=max_time,
                      rounds=_rounds(args),
                      seed=args.seed, relu_grad_at_zero=a0, threads=args.threads,
                      isa=getattr(args, "isa", "native")),
        machine=dict(cpu_model=cpu_model(), **_cpu_summary(), cores=os.cpu_count(),
                     usable_cores=len(os.sched_getaffinity(0))
                     if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                     memory_gib=_memory_gib(), platform=platform.platform(),
                     python=platform.python_version(),
                     other_load=other_load,
                     isa_forced=bench_isa.forced(getattr(args, "isa", "native")),
                     caches=caches.geometry(),
                     memory_kept=dict(scratch_bytes=workspace.KEEP_BYTES,
                                      results_bytes=workspace.RESULT_BYTES)),
        threads=threads,
        blas=dict(numpy_build=build, loaded=loaded),
        env={k: os.environ.get(k) for k in _ENV},
        versions=dict(loopgrad=loopgrad.__version__, loopgrad_git=_git_describe(),
                      python=platform.python_version(),
                      numpy=np.__version__, numba=numba.__version__,
                      **{m: _version(m) for m in ("torch", "jax", "jaxlib", "threadpoolctl",
                                                  "tqdm", "matplotlib")}),
        reference=ref_name,
        skipped=skipped,
        **extra,
        results=results,
    )
