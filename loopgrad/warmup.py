"""`loopgrad compile`: compile every CPU kernel for this machine ahead of the first call.

Numba compiles a kernel on its first call and caches it on disk, keyed by the
CPU; a new machine (a Docker image, a CI runner) pays the compiles on first
use.  This command pays them up front, in worker processes (one generated
module each, so no two processes write the same cache entry), with a progress
bar.  Bake the cache into an image by running it at build time, with
NUMBA_CACHE_DIR pointing inside the image, on the CPU the image will run on:
the cache of one CPU model is not used on another.
"""

import argparse
import multiprocessing
import os
import sys
import time

DESCRIPTION = ("Compile every CPU kernel for this machine's CPU and the chosen dtypes, so that "
               "no later call waits for a compile (for Docker images and CI caches: the disk "
               "cache is per CPU model).")
FAMILIES = ("rows", "skinny", "tiled")


def _dtypes(text: str) -> tuple:
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [n for n in names if n not in ("float32", "float64")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected float32, float64 or both (comma-separated), "
                                         f"got {text!r}")
    return names


def _families(text: str) -> tuple:
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [n for n in names if n not in FAMILIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(FAMILIES)}, got {text!r}")
    return names


def _wants(text: str) -> tuple:
    # "xWy,W" → the WANT_* bits of each choice of gradients ("none": f alone)
    from ._inputs import check_wrt

    wants = []
    for token in (t.strip() for t in text.split(",")):
        if token == "none":
            wants.append(0)
        elif token and set(token) <= set("xWy"):
            wants.append(check_wrt(tuple(token)))
        else:
            raise argparse.ArgumentTypeError(
                f"expected choices of gradients such as xWy,W,x (letters of x, W, y; none for "
                f"f alone), got {text!r}")
    return tuple(dict.fromkeys(wants))


def _shapes(text: str) -> tuple:
    # "24x40,64x64" → ((24, 40), (64, 64))
    out = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        k, _, m = token.lower().partition("x")
        if not (k.isdigit() and m.isdigit() and int(k) > 0 and int(m) > 0):
            raise argparse.ArgumentTypeError(f"expected shapes KxM such as 24x40,64x64 (K inputs, "
                                             f"M outputs), got {text!r}")
        out.append((int(k), int(m)))
    return tuple(dict.fromkeys(out))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", type=_dtypes, default=("float32", "float64"), metavar="D[,D]",
                   help="float32, float64 or both (default both)")
    p.add_argument("--kernels", type=_families, default=FAMILIES, metavar="FAMILY[,...]",
                   help="kernel families: rows (general), skinny (K·M ≤ 16), tiled (K ≥ 4); "
                        "default all")
    p.add_argument("--wrt", type=_wants, default=_wants("xWy,W"), metavar="CHOICE[,...]",
                   help="the choices of gradients (loopgrad.grads's wrt) to compile the skinny "
                        "row kernels for, which are generated per choice: letters of x, W, y, "
                        "or none (default xWy,W: all three, and W alone as a training step asks)")
    p.add_argument("--shapes", type=_shapes, default=(), metavar="KxM[,...]",
                   help="also the fused kernel compiled for each of these (K, M) (K·M up to "
                        "4096), which calls at the shape otherwise compile once they have "
                        "spent 2 s there (docs/first-calls.md)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _warm(unit):
    import logging

    from . import cpu

    logging.getLogger("loopgrad").setLevel(logging.ERROR)  # the bar says what compiles
    t = time.perf_counter()
    label = cpu.warm(unit)
    return label, time.perf_counter() - t


def run(args: argparse.Namespace) -> int:
    from . import cpu
    from ._progress import progress
    from .cpu import jit, machine

    t0 = time.perf_counter()
    target = machine.target()
    units = cpu.warm_units(args.dtype, args.kernels, args.wrt, args.shapes)
    # biggest first: the tiled modules take longest, the skinny ones fill in after; the
    # kernels compiled for a shape in a second round (they import their tile's modules)
    units.sort(key=lambda u: u[0] != "tiled")
    later = [u for u in units if u[0] == "shaped"]
    units = [u for u in units if u[0] != "shaped"]
    n = len(units) + len(later)
    print(f"loopgrad compile: {n} modules for {target['cpu_name']} (table entry "
          f"{target['entry']}), {', '.join(args.dtype)}; generated source in {jit.folder()}",
          file=sys.stderr)
    bar = progress(n, "loopgrad compile", "module", not args.no_progress)
    jobs = max(1, min(args.jobs, n))
    # spawn: a fresh interpreter per worker, no forked Numba or OpenMP state
    pool = multiprocessing.get_context("spawn").Pool(jobs) if jobs > 1 else None
    try:
        for batch in (units, later):
            for label, seconds in (pool.imap_unordered(_warm, batch) if pool
                                   else map(_warm, batch)):
                bar.set_postfix_str(f"{label}: {seconds:.1f} s")
                bar.update()
    finally:
        bar.close()
        if pool:
            pool.terminate()
    print(f"loopgrad compile: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0
