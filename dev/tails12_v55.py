"""dx's last panel of at most 8 columns (the AVX2 tile's tail kinds) as dx_block stores it
cut, straight into dx: mktc on the tile's MR rows, each row's FMAs one chain (as AVX2 6
chains, bound by the FMA's latency), against one kernel of 2·MR rows (12 chains), one thread,
g and dx in L2, ns a row; asserts the same bits (dev/products_v55.md 56b).

    python dev/tails12_v55.py [M [ncol]]     # under --isa avx2's environment

MD=1: the 2·MR-row kernel's loop with llvm.loop.unroll.disable (needs dev/no_unroll_v55.diff
applied to loopgrad/cpu/intrinsics.py): LLVM's unrolling by two spilled its accumulators.
"""
import os, re, sys, time, numpy as np
from numba import njit, types
from numba.core.extending import intrinsic
from loopgrad.cpu import intrinsics, jit, machine, tiled
from loopgrad.cpu.intrinsics import pointer

e = machine.entry(); T = np.float32
c = tiled.module(tiled.variant(8, 40, T), e.isa)
MR, NR, mktc = c.MR, c.NR, c.mktc
M = int(sys.argv[1]) if len(sys.argv) > 1 else 40
ncol = int(sys.argv[2]) if len(sys.argv) > 2 else 8
# the tile's tail kinds up to 8 columns, on 2·MR rows, cut stores as mktc's
extra = {"unroll": False} if os.environ.get("MD") else {}
gens = [(cols, intrinsics._microkernel_ir("float32", 2 * MR, NR, vw, False, n, True,
                                          e.isa == "avx2", cols != vw * n, **extra))
        for cols, vw, n in intrinsics._kinds(tuple(k for k in c.TAILS if k[0] <= 8))]
codegen = intrinsics._by_columns(gens, ncol_last=True)
P, I = types.CPointer(types.float32), types.int64


@intrinsic
def mktc2(typingctx, ncol, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc):
    return types.void(I, I, P, I, I, I, P, I, I, P, I, I), codegen


N = 4096 - 4096 % (2 * MR)
rng = np.random.default_rng(0)
g, Wt = rng.random(N * M, dtype=T), rng.random(M * NR, dtype=T)
dx, dx2 = np.zeros(N * ncol, T), np.zeros(N * ncol, T)


@njit
def one(g, Wt, dx, reps):  # a call a tile
    gp, wp, dp = pointer(g), pointer(Wt), pointer(dx)
    for r in range(reps):
        for ir in range(N // MR):
            mktc(ncol, M, gp, ir * MR * M, 1, M, wp, 0, NR, dp, ir * MR * ncol, ncol)


@njit
def two(g, Wt, dx, reps):  # a call two tiles
    gp, wp, dp = pointer(g), pointer(Wt), pointer(dx)
    for r in range(reps):
        for ir in range(0, N // MR, 2):
            mktc2(ncol, M, gp, ir * MR * M, 1, M, wp, 0, NR, dp, ir * MR * ncol, ncol)


with jit.settings(slp=True, vector_bits=machine.TABLE[e.isa].vector_bits):  # as the modules'
    one(g, Wt, dx, 1)
    two(g, Wt, dx2, 1)
assert np.array_equal(dx, dx2)
for f in (one, two, one, two):
    ts = []
    for _ in range(7):
        t = time.perf_counter(); f(g, Wt, dx, 25); ts.append(time.perf_counter() - t)
    print(f.__name__, f"{min(ts) / (25 * N) * 1e9:.2f} ns a row")
# the two-tile kernel's loops: FMAs, instructions, stack operands (spills)
lines = list(two.inspect_asm().values())[0].splitlines()
labels = {l.strip()[:-1]: i for i, l in enumerate(lines) if re.match(r"^\.LBB\S+:", l.strip())}
for i, l in enumerate(lines):
    m = re.match(r"\s*j\w+\s+(\.LBB\S+)", l)
    if m and m.group(1) in labels and labels[m.group(1)] < i:
        body = [b for b in lines[labels[m.group(1)]:i + 1] if re.match(r"\s+[a-z]", b)]
        nf = sum("vfmadd" in b for b in body)
        if nf >= 6 and len(body) < 120:
            print(f"loop: {nf} FMAs, {len(body)} instructions, {sum('rsp' in b for b in body)} on the stack")
