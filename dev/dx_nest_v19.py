"""dx = g·Wᵀ's nest alone (as dx_packed before 20f, g by panels), one thread, modes: 0 as built
then, every block's tile added into dx; 1 C to Ct only; 2 C into a buffer by tile; 3 as 2 plus a
copy of the item's buffer into dx's rows (dev/products_v19.md 20f).

    python dev/dx_nest_v19.py NxKxM rounds
"""
import sys, time, numpy as np, numba, torch
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1); torch.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x")); rounds = int(sys.argv[2])
T = np.float32
e = machine.entry(); v = tiled.variant(K, M, T)
c = tiled.module(v, e.isa); t3 = tiled.module(v, e.isa, "three")
MR, NR, MC, KC = c.MR, c.NR, c.MC, c.KC
mk, mks, tile_out, tile_add = c.mk, c.mks, c.tile_out, c.tile_add
Mp = (M + NR - 1) // NR * NR; Kp = (K + NR - 1) // NR * NR; Np = (N + MR - 1) // MR * MR
nx = Kp // NR; nb = (N + MC - 1) // MC
gx = min(nx, (16 + nb - 1) // nb, max(1, nx * NR // 128)); JX = (nx + gx - 1) // gx; gx = (nx + JX - 1) // JX
pack_gp = t3.pack_gp if hasattr(t3, "pack_gp") else None
@njit(nogil=True, fastmath={"contract"})
def run(mode, dx2, g2, Wtp2, Ct2, Ap2, Cb2):
    dx, g, Wtp, Ct, Ap, Cb = pointer(dx2), pointer(g2), pointer(Wtp2), pointer(Ct2), pointer(Ap2), pointer(Cb2)
    for item in range(nb * gx):
        r0, j0 = item % nb * MC, item // nb * JX
        rows = min(MC, N - r0); nj = min(JX, nx - j0)
        nir = (rows + MR - 1) // MR
        for pc in range(0, M, KC):
            kc = min(KC, M - pc)
            t3.pack_gp(Ap, pointer(g2[r0 * NR:]), Np * NR, rows, pc, kc)
            for jr in range(j0, j0 + nj):
                bo = (jr * M + pc) * NR
                for ir in range(nir):
                    b = (r0 + ir * MR) * K + jr * NR
                    if mode == 1:
                        mk(kc, Ap, ir * kc * MR, MR, 1, Wtp, bo, NR, Ct, 0, NR)
                    elif mode >= 2:
                        cb = ((jr - j0) * MC + ir * MR) * NR
                        if pc == 0:
                            mk(kc, Ap, ir * kc * MR, MR, 1, Wtp, bo, NR, Cb, cb, NR)
                        else:
                            mk(kc, Ap, ir * kc * MR, MR, 1, Wtp, bo, NR, Ct, 0, NR)
                            tile_add(Cb, cb, NR, Ct, MR)
                    else:
                        if pc == 0:
                            mk(kc, Ap, ir * kc * MR, MR, 1, Wtp, bo, NR, dx, b, K)
                        else:
                            mk(kc, Ap, ir * kc * MR, MR, 1, Wtp, bo, NR, Ct, 0, NR)
                            tile_out(dx, b, K, Ct, MR, NR, False)
        if mode == 3:
            for n in range(rows):
                for jr in range(j0, j0 + nj):
                    c.cpr(dx, (r0 + n) * K + jr * NR, Cb, ((jr - j0) * MC + n) * NR)
rng = np.random.default_rng(0)
g = rng.standard_normal(Np * Mp).astype(T); W = rng.standard_normal(K * M).astype(T)
Wtp = np.empty(M * Kp, T)
for jr in range(nx): c.pack_wt(Wtp, W, K, M, jr)
dx = np.empty(N * K, T); Ct = np.empty(MR * NR, T); Ap = np.empty(MC * KC, T); Cb = np.empty(MC * JX * NR, T)
names = {0: "nest", 1: "C to Ct only", 2: "C to a panel buffer", 3: "panel buffer + copy out"}
for m in names: run(m, dx, g, Wtp, Ct, Ap, Cb)
ts = {k: [] for k in names}
for r in range(rounds):
    for m in names:
        t = time.perf_counter(); run(m, dx, g, Wtp, Ct, Ap, Cb); ts[m].append(time.perf_counter() - t)
print(sys.argv[1], f"JX {JX}:", "; ".join(f"{names[k]} {min(ts[k])*1e3:.2f}" for k in names))
