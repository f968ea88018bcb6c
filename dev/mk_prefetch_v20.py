"""The h nest's inner loops (one KC block: jr over JH panels of B, ir over an MC-row block of
packed A, C into a g block by panels) with the micro-kernel as built and with a prefetch of A
PF elements ahead in every step (a copy of intrinsics.microkernel's loop plus llvm.prefetch),
one thread, operands in L2 (dev/products_v20.md 21e).

    python dev/mk_prefetch_v20.py [rounds]
"""
import sys, time, numpy as np, numba
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from llvmlite import ir
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1)
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
e = machine.entry(); c = tiled.module("float32", e.isa)
MR, NR, MC, KC, mk = c.MR, c.NR, c.MC, c.KC, c.mk
VW = 16 if e.isa == "avx512" else 8
NV = NR // VW


@intrinsic
def mkp(typingctx, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc, pf):
    nbt = types.float32
    def codegen(context, builder, sig, args):
        kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc, pf = args
        vt = ir.VectorType(context.get_value_type(nbt), VW)
        i64, i32, i8p = ir.IntType(64), ir.IntType(32), ir.IntType(8).as_pointer()
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fmuladd.v{VW}f32")
        pfn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        acc = [[cgutils.alloca_once_value(builder, ir.Constant(vt, None)) for _ in range(NV)] for _ in range(MR)]
        undef, lane0 = ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(i32, VW), None)
        def vector(ptr, at):
            return builder.bitcast(builder.gep(ptr, [at]), vt.as_pointer())
        with cgutils.for_range(builder, kc) as loop:
            p = loop.index
            bp = builder.add(bo, builder.mul(p, ldb))
            b = [builder.load(vector(B, builder.add(bp, i64(v * VW))), align=4) for v in range(NV)]
            ap = builder.add(ao, builder.mul(p, lda))
            builder.call(pfn, [builder.bitcast(builder.gep(A, [builder.add(ap, pf)]), i8p), i32(0), i32(3), i32(1)])
            for i in range(MR):
                a = builder.load(builder.gep(A, [builder.add(ap, builder.mul(i64(i), ldi))]))
                a = builder.shuffle_vector(builder.insert_element(undef, a, i32(0)), undef, lane0)
                for v in range(NV):
                    builder.store(builder.call(fma, [a, b[v], builder.load(acc[i][v])]), acc[i][v])
        for i in range(MR):
            r = builder.add(co, builder.mul(i64(i), ldc))
            for v in range(NV):
                builder.store(builder.load(acc[i][v]), vector(C, builder.add(r, i64(v * VW))), align=4)
        return context.get_dummy_value()
    I, P = types.int64, types.CPointer(nbt)
    return types.void(I, P, I, I, I, P, I, I, P, I, I, I), codegen


JH = 8
@njit
def nest(pf, reps, Ap2, Bp2, G2):
    Ap, Bp, G = pointer(Ap2), pointer(Bp2), pointer(G2)
    for r in range(reps):
        for jr in range(JH):
            for ir in range(MC // MR):
                if pf < 0:
                    mk(KC, Ap, ir * KC * MR, MR, 1, Bp, jr * KC * NR, NR, G, jr * MC * NR + ir * MR * NR, NR)
                else:
                    mkp(KC, Ap, ir * KC * MR, MR, 1, Bp, jr * KC * NR, NR, G, jr * MC * NR + ir * MR * NR, NR, pf)
Ap = np.random.rand(MC * KC).astype(np.float32); Bp = np.random.rand(JH * KC * NR).astype(np.float32)
G = np.zeros(JH * MC * NR, np.float32)
pfs = [-1, 8 * MR, 16 * MR, 32 * MR, 64 * MR]
for pf in pfs: nest(pf, 2, Ap, Bp, G)
reps = 40
ts = {pf: [] for pf in pfs}
for r in range(rounds):
    for pf in pfs:
        t = time.perf_counter(); nest(pf, reps, Ap, Bp, G); ts[pf].append(time.perf_counter() - t)
fl = 2 * reps * JH * MC * KC * NR
print(e.isa, f"MR {MR} NR {NR} MC {MC} KC {KC}, GFLOP/s:", "; ".join(
    ("as built" if pf < 0 else f"A prefetched {pf // MR} steps ahead") + f" {fl / min(ts[pf]) / 1e9:.0f}" for pf in pfs))
