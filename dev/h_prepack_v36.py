"""The three-pass kernel's h items (x's pack, the micro-kernel calls, the tile adds; no
epilogue), one thread, with the time-stamp counter read around each KC block's pack and
around its calls, in five modes (dev/products_v36.md 37a):

    all        each item packs its rows of x per KC block (the kernel's way)
    no pack    Ap left as it is (stale): the calls alone
    pack only  the packs alone
    prepacked  all of x packed before the items (`prepack`, timed apart), the items reading
               their blocks back
    pre+pfL2   the same, the next block asked into L2 over the block's calls (16 lines a
               call); pre+pfL1 into L1

    python dev/h_prepack_v36.py NxKxM
"""
import sys, time
import numpy as np, numba
from numba import njit, types as nt
from numba.extending import intrinsic
from llvmlite import ir
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer, prefetch, prefetch_l2

numba.set_num_threads(1)


@intrinsic
def rdtsc(typingctx):
    def cg(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter",
                                              fnty=ir.FunctionType(ir.IntType(64), []))
        return builder.call(fn, [])
    return nt.int64(), cg


N, K, M = (int(v) for v in sys.argv[1].split("x"))
c = tiled.module("float32", machine.entry().isa)
MR, NR, MC, KC, JH = c.MR, c.NR, c.MC, c.KC, c.JH
mk, pack_a, tile_add, pack_w = c.mk, c.pack_a, c.tile_add, c.pack_w
T = np.float32
MODES = {"all": 0, "no pack": 1, "pack only": 2, "prepacked": 3, "pre+pfL2": 4, "pre+pfL1": 5}


@njit
def items(g2, x2, Wp2, Ap2, Ct2, acc, mode, Apall2):
    # g by column panels (the kernel's G_PANELS), items column group by column group
    g, x, Wp, Ap, Ct = pointer(g2), pointer(x2), pointer(Wp2), pointer(Ap2), pointer(Ct2)
    nb, nh = (N + MC - 1) // MC, (M + NR - 1) // NR
    ldg, pstr = NR, N * NR
    for j0 in range(0, nh, JH):
        nj = min(JH, nh - j0)
        for b in range(nb):
            r0 = b * MC
            rows = min(MC, N - r0)
            nir = (rows + MR - 1) // MR
            for pc in range(0, K, KC):
                kc = min(KC, K - pc)
                t0 = rdtsc()
                if mode == 0 or mode == 2:
                    pack_a(Ap, x, K, r0, rows, pc, kc)
                t1 = rdtsc()
                # prepacked: row block b's blocks at r0·K, block pc at pc·nir·MR; the next
                # block follows it (the next row block's first after the last)
                ao = r0 * K + pc * nir * MR if mode >= 3 else 0
                A = pointer(Apall2) if mode >= 3 else Ap
                nxt = 0 if pc + kc >= K and r0 + MC >= N else ao + kc * nir * MR
                if mode != 2:
                    for jr in range(j0, j0 + nj):
                        bo = (jr * K + pc) * NR
                        for ir in range(nir):
                            co = (r0 + ir * MR) * ldg + jr * pstr
                            if mode == 4 or mode == 5:
                                call = (jr - j0) * nir + ir
                                for q in range(call * 16, call * 16 + 16):
                                    if mode == 4:
                                        prefetch_l2(A, nxt + q * 16)
                                    else:
                                        prefetch(A, nxt + q * 16)
                            if pc == 0:
                                mk(kc, A, ao + ir * kc * MR, MR, 1, Wp, bo, NR, g, co, ldg)
                            else:
                                mk(kc, A, ao + ir * kc * MR, MR, 1, Wp, bo, NR, Ct, 0, NR)
                                tile_add(g, co, ldg, Ct, MR)
                t2 = rdtsc()
                acc[0] += t1 - t0
                acc[1] += t2 - t1


@njit
def prepack(Apall2, x2):
    Apall, x = pointer(Apall2), pointer(x2)
    for r0 in range(0, N, MC):
        rows = min(MC, N - r0)
        for pc in range(0, K, KC):
            pack_a(pointer(Apall2[r0 * K + pc * ((rows + MR - 1) // MR * MR):]), x, K, r0,
                   rows, pc, min(KC, K - pc))


rng = np.random.default_rng(0)
x, W = rng.standard_normal(N * K).astype(T), rng.standard_normal(K * M).astype(T)
Mp = (M + NR - 1) // NR * NR
Wp = np.zeros(K * Mp, T)
pack_w(Wp, W, K, M, 0, K)
g, Ap, Ct = np.zeros(N * Mp, T), np.zeros(MC * KC, T), np.zeros(MR * NR, T)
Apall = np.zeros((N + MR) * K, T)
prepack(Apall, x)
for rnd in range(2):
    for name, mode in MODES.items():
        acc = np.zeros(2, np.int64)
        items(g, x, Wp, Ap, Ct, acc, mode, Apall)
        best = None
        for r in range(7):
            acc = np.zeros(2, np.int64)
            t = time.perf_counter()
            items(g, x, Wp, Ap, Ct, acc, mode, Apall)
            t = time.perf_counter() - t
            if best is None or t < best[0]:
                best = (t, acc.copy())
        t, acc = best
        print(f"{name:10s} {t * 1e3:7.2f} ms; TSC Mcycles: pack {acc[0] / 1e6:7.2f}, "
              f"calls and adds {acc[1] / 1e6:7.2f}")
ts = []
for r in range(9):
    t = time.perf_counter()
    prepack(Apall, x)
    ts.append(time.perf_counter() - t)
print(f"prepack {min(ts) * 1e3:.3f} ms")
