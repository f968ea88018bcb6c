"""The h product's loop nest alone (x packed a KC block at a time, as forward_block), one thread,
with parts switched off or changed by mode (dev/products_v18.md 19h; modes 10-14, g by panels, x's
next block prefetched, and the items row block by row block with x packed once: dev/products_v19.md
20a, 20d); KC, MC, JH and DTYPE from the environment.  Prints each mode's best time.

    [KC=256] [MC=96] [JH=8] [DTYPE=float32] python dev/h_nest_v18.py NxKxM rounds
"""
import sys, time, numpy as np, numba, torch
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer, prefetch
from numba.extending import intrinsic
from numba import types as _t
from numba.core import cgutils
from llvmlite import ir as _ir
@intrinsic
def prefetch2(typingctx, p, i):
    def codegen(context, builder, sig, args):
        i8p, i32 = _ir.IntType(8).as_pointer(), _ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, _ir.FunctionType(_ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(builder.gep(args[0], [args[1]]), i8p), i32(0), i32(2), i32(1)])
        return context.get_dummy_value()
    return _t.void(p, i), codegen
numba.set_num_threads(1); torch.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x")); rounds = int(sys.argv[2])
DT = np.dtype(__import__("os").environ.get("DTYPE", "float32")).type
e = machine.entry(); v = tiled.variant(K, M, DT)
c = tiled.module(v, e.isa)
MR, NR, MC, KC, JH, T = c.MR, c.NR, c.MC, c.KC, c.JH, DT
mk, tile_add, pack_a, cpr = c.mk, c.tile_add, c.pack_a, c.cpr
import os
KC = int(os.environ.get("KC", KC)); MC = int(os.environ.get("MC", MC)); JH = int(os.environ.get("JH", JH))
Mp = (M + NR - 1) // NR * NR
LNE = 64 // np.dtype(T).itemsize
@njit(nogil=True, fastmath={"contract"})
def prod(mode, g2, x2, Wp2, K, Mp, N, nh, Ap2, Ct2):
    g, x, Wp, Ap, Ct = pointer(g2), pointer(x2), pointer(Wp2), pointer(Ap2), pointer(Ct2)
    nb = (N + MC - 1) // MC
    gh = (nh + JH - 1) // JH
    for item in range(nb * gh):
        r0, j0 = item % nb * MC, item // nb * JH
        rows = min(MC, N - r0); nj = min(JH, nh - j0)
        nir = (rows + MR - 1) // MR
        for pc in range(0, K, KC):
            kc = min(KC, K - pc)
            if mode == 8:
                pack_a(Ap, x, K, 0, rows, pc, kc)
            elif mode == 15:  # x's rows copied as they lie, MR rows a micro-panel (no transpose)
                for r in range(rows):
                    ab = (r // MR) * kc * MR + (r % MR) * kc
                    xb = (r0 + r) * K + pc
                    for q in range(0, kc, NR):
                        cpr(Ap, ab + q, x, xb + q)
            elif mode != 5:
                pack_a(Ap, x, K, r0, rows, pc, kc)
            for t in range(nj * nir):  # mode 16: micro-panel by micro-panel of A, B's panels inside
                jr, ir = (j0 + t % nj, t // nj) if mode == 16 else (j0 + t // nir, t % nir)
                bo = ((j0 if mode == 3 else jr) * K + pc) * NR
                co = (r0 + ir * MR) * Mp + jr * NR
                ldg = Mp
                if mode >= 10:  # g by column panels: g[jr][n][NR], a tile's rows together
                    co = (jr * N + r0 + ir * MR) * NR
                    ldg = NR
                ao = (0 if mode == 4 else ir) * kc * MR
                if mode == 11 or mode == 12:  # x's next KC block (or the next item's first) to L2, spread over the calls
                    calls = nj * nir
                    cix = (jr - j0) * nir + ir
                    nr0, npc = (r0, pc + KC) if pc + KC < K else (r0 + MC, 0)
                    nrows = min(MC, N - nr0) if nr0 < N else 0
                    nkc = min(KC, K - npc)
                    tot = nrows * ((nkc + LNE - 1) // LNE)
                    per = (tot + calls - 1) // calls
                    for q in range(cix * per, min(tot, (cix + 1) * per)):
                        rr = q // ((nkc + LNE - 1) // LNE); cc = q % ((nkc + LNE - 1) // LNE)
                        if mode == 11:
                            prefetch2(x, (nr0 + rr) * K + npc + cc * LNE)
                        else:
                            prefetch(x, (nr0 + rr) * K + npc + cc * LNE)
                if mode == 9 and jr + 1 < j0 + nj:
                    nb_ = (kc * NR + nir - 1) // nir  # the next panel's elements, spread over the ir calls
                    nxt = ((jr + 1) * K + pc) * NR
                    for q in range(ir * nb_, min(kc * NR, (ir + 1) * nb_), LNE):
                        prefetch2(Wp, nxt + q)
                if mode == 6:
                    for i in range(MR):
                        for q in range(0, NR, LNE):
                            prefetch(g, co + i * Mp + q)
                if mode == 7 and ir + 1 < nir:
                    for i in range(MR):
                        for q in range(0, NR, LNE):
                            prefetch(g, co + MR * Mp + i * Mp + q)
                if mode == 15:  # A by rows: step stride 1, row stride kc
                    if pc == 0:
                        mk(kc, Ap, ao, 1, kc, Wp, bo, NR, g, co, ldg)
                    else:
                        mk(kc, Ap, ao, 1, kc, Wp, bo, NR, Ct, 0, NR)
                        tile_add(g, co, ldg, Ct, MR)
                elif mode == 2:
                    mk(kc, Ap, ao, MR, 1, Wp, bo, NR, Ct, 0, NR)
                elif pc == 0:
                    mk(kc, Ap, ao, MR, 1, Wp, bo, NR, g, co, ldg)
                else:
                    mk(kc, Ap, ao, MR, 1, Wp, bo, NR, Ct, 0, NR)
                    tile_add(g, co, ldg, Ct, MR)
@njit(nogil=True, fastmath={"contract"})
def prod_rows(mode, g2, x2, Wp2, K, Mp, N, nh, Apf2, Ct2):
    # items row block by row block: x's MC rows packed once for all K (Apf), then each
    # column group of JH panels; g by panels; mode 14: the next B panel to L2 meanwhile
    g, x, Wp, Apf, Ct = pointer(g2), pointer(x2), pointer(Wp2), pointer(Apf2), pointer(Ct2)
    nb = (N + MC - 1) // MC
    gh = (nh + JH - 1) // JH
    for rb in range(nb):
        r0 = rb * MC
        rows = min(MC, N - r0)
        nir = (rows + MR - 1) // MR
        for pc in range(0, K, KC):
            kc = min(KC, K - pc)
            pack_a(pointer(Apf2[pc * MC:]), x, K, r0, rows, pc, kc)
        for jg in range(gh):
            j0 = jg * JH
            nj = min(JH, nh - j0)
            for pc in range(0, K, KC):
                kc = min(KC, K - pc)
                for jr in range(j0, j0 + nj):
                    bo = (jr * K + pc) * NR
                    for ir in range(nir):
                        co = (jr * N + r0 + ir * MR) * NR
                        if mode == 14:
                            # the next (jr, pc) panel in this item's order
                            if jr + 1 < j0 + nj:
                                nxt = ((jr + 1) * K + pc) * NR
                            elif pc + KC < K:
                                nxt = (j0 * K + pc + KC) * NR
                            else:
                                nxt = (((j0 + nj) % nh) * K) * NR
                            nb_ = (kc * NR + nir - 1) // nir
                            for q in range(ir * nb_, min(kc * NR, (ir + 1) * nb_), LNE):
                                prefetch2(Wp, nxt + q)
                        if pc == 0:
                            mk(kc, Apf, pc * MC + ir * kc * MR, MR, 1, Wp, bo, NR, g, co, NR)
                        else:
                            mk(kc, Apf, pc * MC + ir * kc * MR, MR, 1, Wp, bo, NR, Ct, 0, NR)
                            tile_add(g, co, NR, Ct, MR)
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K, dtype=T); W = rng.standard_normal(K * M, dtype=T)
Wp = np.empty(K * Mp, T); c.pack_w(Wp, W, K, M, 0, K)
g = np.empty((N + MR) * Mp, T); Ap = np.empty(MC * KC, T); Ct = np.empty(MR * NR, T)
X, Wt = torch.from_numpy(x.reshape(N, K)), torch.from_numpy(W.reshape(K, M))
Apf = np.empty(MC * (K + KC), T)
names = {0: "nest", 2: "C to Ct only", 3: "one B panel", 4: "one A panel", 5: "no pack of A", 6: "C prefetched", 7: "next C prefetched", 8: "pack from rows 0 (L2)", 9: "next B panel to L2", 10: "g by panels", 11: "x ahead to L2", 12: "x ahead to L1"}
names[13] = "rows: x packed once"; names[14] = "rows + next B to L2"
names[15] = "A by rows, no transpose (g by panels)"  # dev/products_v20.md 21e
names[16] = "A's micro-panel resident, B's panels inside (g by panels)"  # 21k
if __import__("os").environ.get("MODES"):  # MODES=0,10,15: only these
    names = {int(m): names[int(m)] for m in __import__("os").environ["MODES"].split(",")}
run = lambda m: prod_rows(m, g, x, Wp, K, Mp, N, Mp // NR, Apf, Ct) if m >= 13 else prod(m, g, x, Wp, K, Mp, N, Mp // NR, Ap, Ct)
for m in names: run(m)
ts = {k: [] for k in list(names) + ["mm"]}
for r in range(rounds):
    for m in names:
        t = time.perf_counter(); run(m); ts[m].append(time.perf_counter() - t)
    t = time.perf_counter(); torch.mm(X, Wt); ts["mm"].append(time.perf_counter() - t)
mm = np.median(ts["mm"])
print(sys.argv[1], f"KC {KC} MC {MC} JH {JH} mm {min(ts['mm'])*1e3:.2f} ms; min ms:", "; ".join(f"{names[k]} {min(ts[k])*1e3:.2f}" for k in names ))
