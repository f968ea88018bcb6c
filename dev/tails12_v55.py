"""dx's last panel of at most 8 columns (the AVX2 tile's tail kinds) as dx_block stores it
cut, straight into dx: mktc on the tile's MR rows, each row's FMAs one chain (as AVX2 6
chains, bound by the FMA's latency), against one kernel of 2·MR rows (12 chains), one thread,
g and dx in L2, ns a row; asserts the same bits (dev/products_v55.md 56b).

    python dev/tails12_v55.py [M [ncol]]     # under --isa avx2's environment

MD=1: the 2·MR-row kernel's loop with llvm.loop.unroll.disable (needs dev/no_unroll_v55.diff
applied to loopgrad/cpu/intrinsics.py): LLVM's unrolling by two spilled its accumulators.
"""
import sys, os, time, numpy as np
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer, tail_kernel
e = machine.entry(); T = np.float32
v = tiled.variant(8, 40, T); c = tiled.module(v, e.isa)
MR, NR, TAILS = c.MR, c.NR, c.TAILS
M = int(sys.argv[1]) if len(sys.argv) > 1 else 40
ncol = int(sys.argv[2]) if len(sys.argv) > 2 else 8
parts = "avx2" == e.isa
mktc = c.mktc
from loopgrad.cpu import intrinsics as _in
from numba.core.extending import intrinsic as _intr
from numba import types as _ty
_gens = [(cc, _in._microkernel_ir("float32", 2 * MR, NR, vw, False, n, True, parts, cc != vw * n, unroll=not os.environ.get("MD")))
         for cc, vw, n in _in._kinds(tuple(k for k in TAILS if k[0] <= 8))]
_cg = _in._by_columns(_gens, ncol_last=True)
_P = _ty.CPointer(_ty.float32); _I = _ty.int64
@_intr
def mktc2(typingctx, ncol, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc):
    return _ty.void(_I, _I, _P, _I, _I, _I, _P, _I, _I, _P, _I, _I), _cg
N = 4096 - 4096 % (2 * MR)
g = np.random.rand(N * M).astype(T); Wt = np.random.rand(M * NR).astype(T); dx = np.zeros(N * ncol, T); dx2 = np.zeros(N * ncol, T)
@njit
def one(g, Wt, dx, reps):
    gp, wp, dp = pointer(g), pointer(Wt), pointer(dx)
    for r in range(reps):
        for ir in range(N // MR):
            mktc(ncol, M, gp, ir * MR * M, 1, M, wp, 0, NR, dp, ir * MR * ncol, ncol)
@njit
def two(g, Wt, dx, reps):
    gp, wp, dp = pointer(g), pointer(Wt), pointer(dx)
    for r in range(reps):
        for ir in range(0, N // MR, 2):
            mktc2(ncol, M, gp, ir * MR * M, 1, M, wp, 0, NR, dp, ir * MR * ncol, ncol)
import os
from loopgrad.cpu import jit as _jit
opts = {}
if os.environ.get("NOUNROLL"):
    opts = {"unroll-runtime": ("false", "false"), "unroll-count": (1, 0)}
with _jit.settings(slp=True, vector_bits=machine.TABLE[e.isa].vector_bits, llvm=opts):
    two(g, Wt, dx2, 1)
one(g, Wt, dx, 1)
assert np.array_equal(dx, dx2)
for f in (one, two, one, two):
    ts = []
    for _ in range(7):
        t = time.perf_counter(); f(g, Wt, dx, 25); ts.append(time.perf_counter() - t)
    print(f.__name__, f"{min(ts) / (25 * N) * 1e9:.2f} ns a row")
import re
asm = list(two.inspect_asm().values())[0]
lines = asm.splitlines()
labels = {l.strip()[:-1]: i for i, l in enumerate(lines) if re.match(r"^\.LBB\S+:", l.strip())}
for i, l in enumerate(lines):
    m = re.match(r"\s*j\w+\s+(\.LBB\S+)", l)
    if m and m.group(1) in labels and labels[m.group(1)] < i:
        body = [b for b in lines[labels[m.group(1)]:i + 1] if re.match(r"\s+[a-z]", b)]
        nf = sum("vfmadd" in b for b in body)
        if nf >= 6 and len(body) < 120:
            print(f"loop: {nf} fma, {len(body)} ins, rsp {sum('rsp' in b for b in body)}")
            if nf == 12 or nf==24: print("\n".join(body))
