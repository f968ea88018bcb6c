"""Where the h product loses to the micro-kernel in L1 (dev/products_v14.md 15b-15c): one thread.

    python dev/product_b_v14.py ROUNDS N [distB,distA ...]   # MC=192 in the environment overrides MC

A copy of intrinsics.microkernel with optional software prefetch of B (distB k-steps ahead)
and A; B streaming through 32 panels (from L2), and forward_block's product nest with A or
B fixed (fixB: B always the same micro-panel), items row-major or column-group-major
(jouter), JH 4 or 8.  Ratios are paired round by round against the product as the kernel
runs it.
"""
import sys, os, time, numpy as np, numba, torch
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from llvmlite import ir
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1); torch.set_num_threads(1)
e = machine.entry(); c = tiled.module("float32", e.isa); tile_add=c.tile_add
MR, NR, KC = c.MR, c.NR, c.KC; MC = int(os.environ.get("MC", c.MC))
N=K=M=int(sys.argv[2]) if len(sys.argv)>2 else 1024; Mp=M

def microkernel_pf(MR, NR, VW, distB, distA):
    nbt = types.float32; NV, size = NR // VW, 4
    I, P = types.int64, types.CPointer(nbt)
    def codegen(context, builder, sig, args):
        kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc = args
        vt = ir.VectorType(context.get_value_type(nbt), VW)
        i64, i32, i8p = ir.IntType(64), ir.IntType(32), ir.IntType(8).as_pointer()
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), "llvm.fmuladd.v16f32")
        pf = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        acc = [[cgutils.alloca_once_value(builder, ir.Constant(vt, None)) for _ in range(NV)] for _ in range(MR)]
        undef, lane0 = ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(i32, VW), None)
        def vector(ptr, at):
            return builder.bitcast(builder.gep(ptr, [at]), vt.as_pointer())
        with cgutils.for_range(builder, kc) as loop:
            p = loop.index
            bp = builder.add(bo, builder.mul(p, ldb))
            if distB:
                for v in range(NR * size // 64):
                    builder.call(pf, [builder.bitcast(builder.gep(B, [builder.add(bp, i64(distB * NR + v * 16))]), i8p), i32(0), i32(3), i32(1)])
            b = [builder.load(vector(B, builder.add(bp, i64(v * VW))), align=size) for v in range(NV)]
            ap = builder.add(ao, builder.mul(p, lda))
            if distA:
                builder.call(pf, [builder.bitcast(builder.gep(A, [builder.add(ap, i64(distA * MR))]), i8p), i32(0), i32(3), i32(1)])
            for i in range(MR):
                a = builder.load(builder.gep(A, [builder.add(ap, builder.mul(i64(i), ldi))]))
                a = builder.shuffle_vector(builder.insert_element(undef, a, i32(0)), undef, lane0)
                for v in range(NV):
                    builder.store(builder.call(fma, [a, b[v], builder.load(acc[i][v])]), acc[i][v])
        for i in range(MR):
            r = builder.add(co, builder.mul(i64(i), ldc))
            for v in range(NV):
                builder.store(builder.load(acc[i][v]), vector(C, builder.add(r, i64(v * VW))), align=size)
        return context.get_dummy_value()
    @intrinsic
    def mk(typingctx, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc):
        return types.void(I, P, I, I, I, P, I, I, P, I, I), codegen
    return mk

def make(mk):
    @njit(nogil=True)
    def bstream(reps, Xp2, Wp2, Ct2, KC, nb):
        Xp, Wp, Ct = pointer(Xp2), pointer(Wp2), pointer(Ct2)
        for r in range(reps):
            mk(KC, Xp, 0, MR, 1, Wp, (r % nb) * KC * NR, NR, Ct, 0, NR)
    @njit(nogil=True)
    def prod(g2, Xp2, Wp2, K, Mp, N, Ct2, KC, JH, fixA=False, fixB=False, toct=False, jouter=False):
        g, Xp, Wp, Ct = pointer(g2), pointer(Xp2), pointer(Wp2), pointer(Ct2)
        nbk, ngh = N // MC, Mp // NR // JH
        for item in range(nbk * ngh):
          if jouter:
              r0, j0 = item % nbk * MC, item // nbk * JH
          else:
              r0, j0 = item // ngh * MC, item % ngh * JH
          if True:
            for pc in range(0, K, KC):
                kc = min(KC, K - pc)
                for jr in range(j0, j0 + JH):
                    bo = (jr * K + pc) * NR
                    for ir in range(MC // MR):
                        co = ir * MR * Mp + jr * NR + r0 * Mp
                        ao = ((r0 // MR + ir) * K + pc) * MR
                        if fixA: ao = 0
                        if fixB: bo = 0
                        if toct:
                            mk(kc, Xp, ao, MR, 1, Wp, bo, NR, Ct, 0, NR)
                        elif pc == 0:
                            mk(kc, Xp, ao, MR, 1, Wp, bo, NR, g, co, Mp)
                        else:
                            mk(kc, Xp, ao, MR, 1, Wp, bo, NR, Ct, 0, NR)
                            tile_add(g, co, Mp, Ct, MR)
    return bstream, prod
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K, dtype=np.float32); W = rng.standard_normal(K * M, dtype=np.float32)
Wp = np.empty(K * Mp, np.float32); c.pack_w(Wp, W, K, M, 0, K)
Xp = np.empty(N * K, np.float32)
for i_ in range(N // MR): c.pack_x(Xp, x, N, K, i_)
g = np.empty(N * Mp, np.float32); Ct = np.empty(MR * NR, np.float32)
nbk = N // MC; fl = 2 * nbk * MC * K * M; reps = fl // (2 * MR * NR * KC)
V = {}
for dB, dA in [(0,0)] + [tuple(map(int, a.split(","))) for a in sys.argv[3:]]:
    bs, pr = make(microkernel_pf(MR, NR, 16, dB, dA))
    V[f"Bstream {dB},{dA}"] = lambda bs=bs: bs(reps, Xp, Wp, Ct, KC, 32)
    V[f"prod {dB},{dA}"] = lambda pr=pr: pr(g, Xp, Wp, K, Mp, N, Ct, KC, 4)
    V[f"prod jouter {dB},{dA}"] = lambda pr=pr: pr(g, Xp, Wp, K, Mp, N, Ct, KC, 4, False, False, False, True)
    if dB == 0 and dA == 0:
        V["prod fixB"] = lambda pr=pr: pr(g, Xp, Wp, K, Mp, N, Ct, KC, 4, False, True)
        V["prod JH8 jouter"] = lambda pr=pr: pr(g, Xp, Wp, K, Mp, N, Ct, KC, 8, False, False, False, True)
# forward_block itself, as the kernel runs it, with and without grads (dev/products_v15.md 16a)
yv = rng.standard_normal(N * M, dtype=np.float32); dyv = np.empty(N * M, np.float32)
ApF = np.empty(MC * KC, np.float32)
def fb(want, JH=8):
    for item in range(nbk * (Mp // NR // JH)):
        r0, j0 = item % nbk * MC, item // nbk * JH
        c.forward_block(g[r0 * Mp:], dyv, x, Wp, yv, 0.0, K, M, Mp, r0, MC, j0, JH, ApF, Ct, want, 0, Xp)
V["forward_block"] = lambda: fb(True)
V["forward_block nograd"] = lambda: fb(False)
X=torch.from_numpy(x.reshape(N,K)[:nbk*MC]); Wt=torch.from_numpy(W.reshape(K,M))
V["mm"] = lambda: torch.mm(X, Wt)
for f in V.values(): f()
res={k:[] for k in V}
for r in range(int(sys.argv[1])):
    for k,f in V.items():
        t0=time.perf_counter(); f(); res[k].append(time.perf_counter()-t0)
base = np.array(res["prod 0,0"])
for k in V: print("  %-16s %6.1f GF/s (best %6.1f)  paired ÷ prod 0,0 time %.3f" % (k, fl/np.median(res[k])/1e9, fl/min(res[k])/1e9, np.median(np.array(res[k])/base)))
