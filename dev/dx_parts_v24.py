"""The three-pass kernel's dx items (dx_packed's loops, one thread) as variants, each its own
function: PACK (g packed per KC block), ADD (Cb adds), MK, OUT (dx written); JX=n: the
items' column panels (dev/products_v24.md 25c).

    [JX=16] python dev/dx_parts_v24.py NxKxM [rounds]
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x"))
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
e = machine.entry(); c = tiled.module("float32", e.isa)
th = tiled.module("float32", e.isa, "three")
MR, NR, MC, KC = c.MR, c.NR, c.MC, c.KC
T = np.float32
SRC = '''
@njit
def item(dx2, g2, Wtp2, K, M, ldg, pstr, kb, r0, rows, j0, nj, Ct2, Ap2, Cb2):
    dx, g, Wtp, Ct, Ap = pointer(dx2), pointer(g2), pointer(Wtp2), pointer(Ct2), pointer(Ap2)
    Cb = pointer(Cb2)
    nir = (rows + MR - 1) // MR
    for pc in range(0, M, kb):
        kc = min(kb, M - pc)
        last = pc + kc == M
        if PACK:
            pack_gp(Ap, g, pstr, rows, pc, kc)
        for jr in range(j0, j0 + nj):
            bo = (jr * M + pc) * NR
            for ir in range(nir):
                b = (r0 + ir * MR) * K + jr * NR
                cb = ((jr - j0) * MC + ir * MR) * NR
                if pc == 0:
                    C, c0, ldc = (dx, b, K) if last else (Cb, cb, NR)
                else:
                    C, c0, ldc = Ct, 0, NR
                if MK:
                    mk(kc, Ap, ir * kc * MR, MR, 1, Wtp, bo, NR, C, c0, ldc)
                if pc > 0 and last and OUT:
                    tile_add_to(dx, b, K, Cb, cb, NR, Ct, MR)
                elif pc > 0 and ADD:
                    tile_add(Cb, cb, NR, Ct, MR)
'''
def build(**fl):
    ns = dict(njit=njit, pointer=pointer, np=np, MR=MR, NR=NR, MC=MC, mk=c.mk, pack_gp=th.pack_gp,
              tile_add=c.tile_add, tile_add_to=th.tile_add_to, **fl)
    exec(SRC, ns)
    return ns["item"]
V = {"all": build(PACK=1, MK=1, ADD=1, OUT=1), "no out": build(PACK=1, MK=1, ADD=1, OUT=0),
     "no adds, no out": build(PACK=1, MK=1, ADD=0, OUT=0), "mk only": build(PACK=0, MK=1, ADD=0, OUT=0),
     "pack only": build(PACK=1, MK=0, ADD=0, OUT=0)}
rng = np.random.default_rng(0)
Np = (N + MR - 1) // MR * MR; Mp = (M + NR - 1) // NR * NR; Kp = (K + NR - 1) // NR * NR
g = rng.standard_normal(Np * Mp).astype(T)
Wtp = rng.standard_normal(M * Kp).astype(T)
dx = np.empty(N * K, T)
nb = (N + MC - 1) // MC; nx = Kp // NR
import os
gx = min(nx, (16 + nb - 1) // max(nb, 1), max(1, nx * NR // 128)); JX = (nx + gx - 1) // gx
JX = int(os.environ.get("JX", JX)); gx = (nx + JX - 1) // JX
Cb = np.empty(MC * JX * NR, T); Ap = np.empty(MC * KC, T); Ct = np.empty(MR * NR, T)
ldg, pstr = NR, Np * NR
def items(f):
    for it in range(nb * gx):
        r0, j0 = it % nb * MC, it // nb * JX
        f(dx, g[r0 * ldg:], Wtp, K, M, ldg, pstr, KC, r0, min(MC, N - r0), j0, min(JX, nx - j0), Ct, Ap, Cb)
for f in V.values(): items(f)
ts = {k: [] for k in V}
for r in range(rounds):
    for k, f in V.items():
        t = time.perf_counter(); items(f); ts[k].append(time.perf_counter() - t)
print(sys.argv[1], f"JX {JX}", "; ".join(f"{k} {np.median(v)*1e3:.2f}" for k, v in ts.items()), f"ms; mk ideal at 180: {2*N*K*M/180e6:.2f}")
