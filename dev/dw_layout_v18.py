"""dW items (serial) with the float64 partial in dW's row layout (old, compiled here) against by tile (the kernel's dw_item), alternating in one process (dev/products_v18.md 19b).

    python dev/dw_layout_v18.py NxKxM rounds
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer, prefetch
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x")); rounds = int(sys.argv[2])
e = machine.entry(); v = tiled.variant(K, M, np.float32)
c = tiled.module(v, e.isa); t3 = tiled.module(v, e.isa, "three")
MR, NR, MC, KC, T = c.MR, c.NR, c.MC, c.KC, np.float32
mk, ts64, ta64, tf = t3.mk, t3.tile_set64, t3.tile_add64, t3.tile_fold
FIRST, MIDDLE, LAST, ONLY = 0, 1, 2, 3
@njit(nogil=True, fastmath={"contract"})
def dw_old(part2, dW2, Xp2, Gp2, M, Mp, kc, k0, krows, jr0, njr, block, Ct2):
    part, dW, Xp, Gp, Ct = pointer(part2), pointer(dW2), pointer(Xp2), pointer(Gp2), pointer(Ct2)
    nir = (krows + MR - 1) // MR
    for jr in range(jr0, jr0 + njr):
        cols = min(NR, M - jr * NR)
        for ir in range(nir):
            rows = min(MR, krows - ir * MR)
            o = (k0 + ir * MR) * Mp + jr * NR
            d = (k0 + ir * MR) * M + jr * NR
            for i in range(rows):
                for q in range(0, NR, 8):
                    if block != ONLY:
                        prefetch(part, o + i * Mp + q)
                    if block == LAST or block == ONLY:
                        prefetch(dW, d + i * M + q)
            if block == ONLY and rows == MR and cols == NR:
                mk(kc, Xp, (k0 + ir * MR) * kc, MR, 1, Gp, jr * kc * NR, NR, dW, d, M)
                continue
            mk(kc, Xp, (k0 + ir * MR) * kc, MR, 1, Gp, jr * kc * NR, NR, Ct, 0, NR)
            if block == FIRST:
                ts64(part, o, Mp, Ct, rows)
            elif block == MIDDLE:
                ta64(part, o, Mp, Ct, rows)
            elif block == LAST and cols == NR:
                tf(dW, d, M, part, o, Mp, Ct, rows)
            else:
                for i in range(rows):
                    for j in range(cols):
                        t = np.float64(Ct[i * NR + j])
                        dW[d + i * M + j] = t if block == ONLY else t + part[o + i * Mp + j]
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K, dtype=T); g0 = rng.standard_normal(N * M, dtype=T)
Mp = (M + NR - 1) // NR * NR
g = np.zeros(N * Mp, T); g.reshape(N, Mp)[:, :M] = g0.reshape(N, M)
dW = np.empty(K * M, T); dW2 = np.empty(K * M, T)
part = np.empty((K + MR - 1) // MR * MR * Mp)
nbc = min(c.DWB, (N + KC - 1) // KC); xpb = (K + MR - 1) // MR * MR * KC
Gp, Xp = np.empty(nbc * KC * Mp, T), np.empty(nbc * xpb, T)
Ct = np.empty(MR * NR, T)
nk = (K + MC - 1) // MC; njb = (Mp // NR + c.JB - 1) // c.JB
def run(fn, out):
    tt = 0.0
    for c0 in range(0, N, c.DWB * KC):
        nbk = min(c.DWB, (N - c0 + KC - 1) // KC)
        for t in range(nbk * (Mp // NR + nk)):
            b, u = t // (Mp // NR + nk), t % (Mp // NR + nk)
            pc = c0 + b * KC; kc = min(KC, N - pc)
            if u < Mp // NR: t3.pack_g(Gp[b * KC * Mp:], g, Mp, pc, kc, u)
            else:
                k0 = (u - Mp // NR) * MC; t3.pack_xt(Xp[b * xpb:], x, K, pc, kc, k0, min(MC, K - k0))
        s = time.perf_counter()
        for item in range(nk * njb):
            kb, jb = item % nk, item // nk
            for b in range(nbk):
                pc = c0 + b * KC; kc = min(KC, N - pc); last = pc + kc == N
                block = (ONLY if last else FIRST) if pc == 0 else (LAST if last else MIDDLE)
                fn(part, out, Xp[b * xpb:], Gp[b * KC * Mp:], M, Mp, kc, kb * MC, min(MC, K - kb * MC), jb * c.JB, min(c.JB, Mp // NR - jb * c.JB), block, Ct)
        tt += time.perf_counter() - s
    return tt
run(dw_old, dW2); run(t3.dw_item, dW)
assert np.array_equal(dW, dW2)
ts = {"old": [], "tile": []}
for r in range(rounds):
    ts["old"].append(run(dw_old, dW2)); ts["tile"].append(run(t3.dw_item, dW))
for k, vv in ts.items():
    vv = np.array(vv) * 1e3; print(sys.argv[1], k, f"median {np.median(vv):.3f} min {vv.min():.3f} ms")
