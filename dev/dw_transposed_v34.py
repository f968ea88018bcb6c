"""dW of a fused block (96 rows) as the fused kernel's dw_block lays it (x·g tiles: K rows
× Mp columns, x in place as A, g as B) against dWᵀ = gᵀ·x (Mq = ceil(M/MR)·MR rows × Kp
columns: g in place as A, x in place as B), each tile added into a float64 partial; one
thread, REP blocks over the same 96 rows (in cache).  Checks that the two give the same
sums bit for bit (each dW[k,m] the same chain of products in row order).  Neither side
takes dw_block's half-width last panel (mkh), so a half-live last panel (M or K up to 16
past a multiple of 32) counts whole here (dev/products_v34.md 35d).

    python dev/dw_transposed_v34.py K M [REP]
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1)
K, M = int(sys.argv[1]), int(sys.argv[2]); REP = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
T = np.float32; isa = machine.entry().isa
v = tiled.variant(K, M, T); fu = tiled.module(v, isa, "fused")
mk, ta = fu.mk, fu.tile_add64
MR, NR = fu.MR, fu.NR
R = 96
Mp = -(-M // NR) * NR; Mq = -(-M // MR) * MR; Kp = -(-K // NR) * NR; Kq = -(-K // MR) * MR
rng = np.random.default_rng(0)
x = np.zeros(R * K + NR * 2, T); x[:R * K] = rng.standard_normal(R * K)
g = np.zeros(R * M + NR * 2, T); g[:R * M] = rng.standard_normal(R * M)

@njit
def today(x2, g2, part2, Ct2, reps):
    x, g, part, Ct = pointer(x2), pointer(g2), pointer(part2), pointer(Ct2)
    for r in range(reps):
        for jr in range(Mp // NR):
            for ir in range(Kq // MR):
                mk(R, x, ir * MR, K, 1, g, jr * NR, M, Ct, 0, NR)
                ta(part, ir * MR * Mp + jr * NR, Mp, Ct, MR)

@njit
def transposed(x2, g2, part2, Ct2, reps):
    x, g, part, Ct = pointer(x2), pointer(g2), pointer(part2), pointer(Ct2)
    for r in range(reps):
        for jr in range(Kp // NR):
            for ir in range(Mq // MR):
                mk(R, g, ir * MR, M, 1, x, jr * NR, K, Ct, 0, NR)
                ta(part, ir * MR * Kp + jr * NR, Kp, Ct, MR)

Ct = np.zeros(MR * NR, T)
p1 = np.zeros(Kq * Mp); p2 = np.zeros(Mq * Kp)
today(x, g, p1, Ct, 1); transposed(x, g, p2, Ct, 1)
a = p1.reshape(Kq, Mp)[:K, :M]; b = p2.reshape(Mq, Kp)[:M, :K].T
print("same sums:", np.array_equal(a, b))
res = {}
for name, fn, p in (("today", today, p1), ("transposed", transposed, p2)) * 3:
    t = time.perf_counter(); fn(x, g, p, Ct, REP); dt = time.perf_counter() - t
    res.setdefault(name, []).append(dt / (REP * R) * 1e9)
print(f"{K}x{M} ({v}, MR {MR} NR {NR}): ns a row, dW only: " + "; ".join(f"{k} {min(t):.2f}" for k, t in res.items()),
      f"(products a row: today {Kq} × {Mp}, transposed {Mq} × {Kp})")
