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
def tiles(a2, lda, nrow, b2, ldb, ncol, part2, Ct2, reps):
    # part (nrow × ncol, float64) += a's columns · b's over the block's R rows, MR × NR tiles
    # (a and b in place, rows lda and ldb apart), each added into part by tile_add64
    a, b, part, Ct = pointer(a2), pointer(b2), pointer(part2), pointer(Ct2)
    for r in range(reps):
        for jr in range(ncol // NR):
            for ir in range(nrow // MR):
                mk(R, a, ir * MR, lda, 1, b, jr * NR, ldb, Ct, 0, NR)
                ta(part, ir * MR * ncol + jr * NR, ncol, Ct, MR)


def today(x, g, part, Ct, reps):  # dw_block's tiles: x as A, g as B
    tiles(x, K, Kq, g, M, Mp, part, Ct, reps)


def transposed(x, g, part, Ct, reps):  # dWᵀ's: g as A, x as B
    tiles(g, M, Mq, x, K, Kp, part, Ct, reps)


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
