"""The three-pass dW items' loops alone, one thread, operands packed and hot: blocks of KB rows,
B's panel resident (jr outer) or A's micro-panel resident (ir outer), with the float64 partial's
steps or without (dev/products_v19.md 20j).

    python dev/dw_nest_v19.py NxKxM rounds
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer, prefetch
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x")); rounds = int(sys.argv[2])
T = np.float32; e = machine.entry(); v = tiled.variant(K, M, T)
c, t3 = tiled.module(v, e.isa), tiled.module(v, e.isa, "three")
MR, NR, MC = c.MR, c.NR, c.MC
mk, ts64, ta64, tf = c.mk, t3.tile_set64, t3.tile_add64, t3.tile_fold
Mp = -(-M // NR) * NR; JB = 8
@njit(fastmath={"contract"})
def run(aorder, KB, part2, dW2, Xp2, Gp2, Ct2, partial):
    part, dW, Xp, Gp, Ct = pointer(part2), pointer(dW2), pointer(Xp2), pointer(Gp2), pointer(Ct2)
    nb = N // KB
    for kb in range(K // MC):
        k0 = kb * MC
        for jb in range(Mp // NR // JB):
            for b in range(nb):
                blk = 0 if b == 0 else (2 if b == nb - 1 else 1)
                xo = b * K * KB  # block b's xᵀ panels: K/MR panels of KB×MR
                go = b * KB * NR  # block b's rows in g's panel (g by panels: panel jr at jr·N·NR)
                nir = MC // MR
                for o1 in range(JB if not aorder else nir):
                    for o2 in range(nir if not aorder else JB):
                        jr, ir = (jb * JB + o1, o2) if not aorder else (jb * JB + o2, o1)
                        o = (k0 + ir * MR) * Mp + jr * MR * NR
                        d = (k0 + ir * MR) * M + jr * NR
                        if partial and blk != 0:
                            for q in range(0, MR * NR, 8):
                                prefetch(part, o + q)
                        mk(KB, Xp, xo + (k0 + ir * MR) * KB, MR, 1, Gp, jr * N * NR + go, NR, Ct, 0, NR)
                        if not partial:
                            continue
                        if blk == 0:
                            ts64(part, o, NR, Ct, MR)
                        elif blk == 1:
                            ta64(part, o, NR, Ct, MR)
                        else:
                            tf(dW, d, M, part, o, NR, Ct, MR)
rng = np.random.default_rng(0)
Xp = rng.standard_normal(N * K).astype(T); Gp = rng.standard_normal(N * Mp).astype(T)
part = np.zeros(K * Mp); dW = np.empty(K * M, T); Ct = np.empty(MR * NR, T)
modes = {"B-resident KB 256": (False, 256, True), "B-resident 256, no partial": (False, 256, False),
         "B-resident KB 512": (False, 512, True), "A-resident KB 256": (True, 256, True), "A-resident KB 512": (True, 512, True)}
for k, a in modes.items(): run(a[0], a[1], part, dW, Xp, Gp, Ct, a[2])
ts = {k: [] for k in modes}
for r in range(rounds):
    for k, a in modes.items():
        t = time.perf_counter(); run(a[0], a[1], part, dW, Xp, Gp, Ct, a[2]); ts[k].append(time.perf_counter() - t)
fl = 2 * N * K * M
print(sys.argv[1], "GFLOP/s:", "; ".join(f"{k} {fl / min(v) / 1e9:.0f}" for k, v in ts.items()))
