"""The fused tiled kernel compiled again for one (K, M): the shape as constants in its pieces.

The fused kernel's pieces (nests.py: forward_block, dx_block, dw_block, dw_block_t) take
K, M and what follows from them (M padded to panels, g's row stride, the panel counts) at
run time.  Where K and M are small each micro-kernel call is short (at 10⁵×24×40 h's
calls run 24 steps over 8 rows), and the work around the calls, the branches that pick
each call's kernel, its loop bounds and strides, is a large share of the whole.  Here the
same text is compiled for one shape: each piece inlined (Numba's inline="always") into a
wrapper with the piece's own signature that passes the fused driver's constants for that
shape as literals, so that LLVM folds the branches, the micro-kernels' trip counts and A's
strides.  The wrappers, under the driver's names, are what the fused driver (the same
text) calls.  Nothing else changes: the same operations in the same order, so bitwise
the generic kernel's results (tests/test_shaped.py compares them).

Measured on Zen 5 (AVX-512), from memory, two threads, the generic kernel's time over
this one's: 10⁵×24×40 1.17–1.2, 10⁶×8×40 1.2, 10⁶×16×24 1.19, 2·10⁵×32×20 1.17,
10⁵×20×36 1.19, 10⁵×64×64 1.05, 10⁵×40×100 1.07, 10⁵×128×128 1.02; as AVX2 24×40 1.09,
8×40 1.08, 64×64 1.03 (dev/products_v54.md 55b).  `applies`: K·M up to MAX_KM.

A shape's kernel compiles in 5–12 s on 2 cores (its pieces and driver; the tile's own
modules it imports are the generic kernel's, compiled already), once per shape, dtype,
ISA and loopgrad version, into Numba's disk cache.  loopgrad.cpu uses it where it is in
the cache at the shape's first call; else once a process has spent HOT_S in the generic
kernel at the shape, it starts the compile in a child process (background.py, at the
lowest priority) and runs the generic kernel until it is there: a long run at one shape
pays for it, a script that tries many shapes once compiles nothing.  `loopgrad compile
--shapes` compiles it ahead, the bench and `loopgrad fit` at their first call
(loopgrad.cpu.specialize).  LOOPGRAD_SHAPED=0 in the environment turns this off (the
generic kernel throughout).
"""

import contextlib
import functools
import os
import re

import numpy as np

from . import jit, machine, tiled

ENV = "LOOPGRAD_SHAPED"
# K·M up to this: where the generic kernel's calls are short enough to gain (5 % at 64×64,
# 2 % at 128×128 on Zen 5, above its compile's worth)
MAX_KM = 4096
# seconds a process spends in the generic kernel at a shape before it has this one compiled
# (5–12 s of one core, to gain 5–20 %: it pays back within a minute of calls)
HOT_S = 2.0

# The fused driver's arguments to each piece that are constants for one shape, as the
# wrapper passes them (names of the generated module's globals: KK, MM the shape, MP and
# KP padded to whole panels of NR, LG g's row stride).  dw_block's rows of K are one call
# (k0 = 0, krows = K) where K ≤ MC (`_piece`).
_LITERALS = {
    "forward_block": dict(K="KK", M="MM", Mp="MP", ldg="LG", pstr="NR", kcb="KC", j0="0",
                          nj="MP // NR", pack="INPLACE", want_grads="True"),
    "dx_block": dict(K="KK", M="MM", ldg="LG", j0="0", nj="KP // NR"),
    "dw_block": dict(K="KK", M="MM", Mp="MP", ldg="LG"),
    "dw_block_t": dict(K="KK", M="MM", ldg="LG"),
}
_PARTS = {"forward_block": "common", "dx_block": "common", "dw_block": "fused",
          "dw_block_t": "fused"}


def enabled() -> bool:
    """Whether loopgrad.cpu uses these kernels: LOOPGRAD_SHAPED is not "0"."""
    return os.environ.get(ENV, "").strip() != "0"


def applies(K: int, M: int) -> bool:
    """Whether an N×K×M call whose plan is the fused kernel has a kernel of its own here."""
    return K * M <= MAX_KM


def _function(src: str, name: str) -> tuple[str, str, str]:
    # (decorator, parameters, body) of top-level function `name` in src: the body runs to
    # the next line that starts at column 0 (a definition, a comment, a decorator)
    m = re.search(r"^(@njit\((?:(?!\ndef ).)*?\))\ndef " + name + r"\(((?:(?!\):\n).)*)\):\n",
                  src, re.S | re.M)
    if m is None:
        raise LookupError(f"no function {name} in the generated source")
    end = re.search(r"^\S", src[m.end():], re.M)
    body = src[m.end():m.end() + end.start() if end else len(src)].rstrip("\n")
    return m.group(1), m.group(2), body


def _piece(name: str, K: int, MC: int) -> str:
    # the piece's text inlined under _name, and a wrapper `name` with its signature that
    # passes the shape's literals
    deco, params, body = _function(tiled._nests(_PARTS[name]), name)
    literals = dict(_LITERALS[name])
    if name == "dw_block" and K <= MC:
        literals.update(k0="0", krows="KK")
    names = [p.strip() for p in params.replace("\n", " ").split(",")]
    args = ", ".join(literals.get(p, p) for p in names)
    call = ("" if "nt.void(" in deco else "return ") + f"_{name}({args})"
    return (f'\n\n@njit(nogil=True, fastmath=_FM, inline="always")\ndef _{name}({params}):\n'
            f"{body}\n\n\n{deco}\ndef {name}({', '.join(names)}):\n    {call}\n")


def _driver() -> str:
    # the fused driver's text (its part's last function) and its serial copy
    part = tiled._nests("fused")
    src = part[re.search(r"^def _grads_fused_parallel\(", part, re.M).start():]
    return "\n\n" + src + tiled._serial(src)


@functools.lru_cache(maxsize=None)
def _generated(variant: str, isa: str, K: int, M: int) -> tuple[str, str]:
    # (name, source) of the module of one shape's kernel, without importing it
    t = machine.TABLE[isa].tiles[variant]
    common = f"{jit.GENERATED}.{jit.stem(*tiled._generated(variant, isa))}"
    fused = f"{jit.GENERATED}.{jit.stem(*tiled._generated(variant, isa, 'fused'))}"
    src = (f"# Generated by loopgrad.cpu.shaped: the fused kernel of {common}\n"
           f"# specialized to K = {K}, M = {M}; do not edit.  The tile's constants, micro-kernels\n"
           "# and compiled pieces come from its modules; the pieces below are theirs, inlined\n"
           "# into wrappers that pass this shape's constants (shaped.py).\n"
           "import sys\n"
           f"for _m in ({common!r}, {fused!r}):  # their names, as `from _m import *` and _FM\n"
           "    globals().update((k, v) for k, v in vars(sys.modules[_m]).items()\n"
           "                     if not k.startswith('__'))\n\n"
           f"KK, MM = {K}, {M}\n"
           "MP, KP = (MM + NR - 1) // NR * NR, (KK + NR - 1) // NR * NR\n"
           "LG = g_stride(MM, MP)\n")
    for name in _LITERALS:
        src += _piece(name, K, t.MC)
    return f"shaped_{isa}_{variant}_k{K}_m{M}", src + _driver()


def _marker(variant: str, isa: str, K: int, M: int, parallel: bool) -> str:
    return f"{jit.stem(*_generated(variant, isa, K, M))}.{int(parallel)}.{machine.fingerprint()}"


def ready(variant: str, K: int, M: int, parallel: bool, isa: str | None = None) -> bool:
    """Whether `kernel` returns without compiling: compiled in this process, or in Numba's
    disk cache (by the marker `kernel` leaves)."""
    isa = tiled._isa(isa)
    return (variant, isa, K, M, parallel) in _COMPILED \
        or jit.marked(_marker(variant, isa, K, M, parallel))


_COMPILED: set = set()


def kernel(variant: str, K: int, M: int, parallel: bool, isa: str | None = None):
    """The fused kernel for shapes N×K×M of a variant of the machine table's entry (this
    CPU's unless `isa` names one), serial or parallel: tiled.kernel's arguments, and
    bitwise its results, for x of K columns and W of M."""
    return _kernel(variant, tiled._isa(isa), K, M, parallel)


@functools.lru_cache(maxsize=None)
def _kernel(variant, isa, K, M, parallel):
    # once per process: a call's lookup is this cache's (the compile's checks cost 90 µs)
    disp = _dispatcher(variant, isa, K, M, parallel)
    with _compiling(variant, isa, K, M):
        jit.compile(disp, tiled._signature("grads_fused", np.dtype(variant.split("-")[0])))
    _COMPILED.add((variant, isa, K, M, parallel))
    if jit.has_disk_cache(disp):
        jit.mark(_marker(variant, isa, K, M, parallel))
    return disp


@contextlib.contextmanager
def _compiling(variant: str, isa: str, K: int, M: int):
    # what the module's import (its pieces) and the driver's compile run under: the notice
    # of a long compile, and the tile modules' compiler settings
    dtype = np.dtype(variant.split("-")[0])
    with jit.notice(f"the {dtype} tiled kernels specialized to a shape",
                    f"`loopgrad compile --shapes {K}x{M}`"), \
            jit.settings(slp=True, vector_bits=machine.TABLE[isa].vector_bits):
        yield


@functools.lru_cache(maxsize=None)
def _dispatcher(variant: str, isa: str, K: int, M: int, parallel: bool):
    tiled.module(variant, isa, "fused")  # the modules it imports, loaded first
    with _compiling(variant, isa, K, M):
        mod = jit.load(*_generated(variant, isa, K, M))
    py = getattr(mod, f"_grads_fused_{'parallel' if parallel else 'serial'}")
    return jit.jit(py, parallel=parallel)
