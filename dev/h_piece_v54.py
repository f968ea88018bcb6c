"""The fused kernel's h piece taken apart (dev/products_v54.md 55a), one thread, x and y
in L2 as dev/fused_phases_v16.py's: forward_block without grads (h, z, f) against its
micro-kernel calls alone over the same tiles (x in place, g straight), and those calls
with h's prefetch of x's rows ahead.

    [REP=25] python dev/h_piece_v54.py N K M [rounds]

Only for shapes whose h is one block of steps and a wide last panel (mkw), or whole panels
(mk), as forward_block takes them with pack = INPLACE.
"""
import os, sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer, prefetch_l2, zeros16
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1:4]); rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 7
REP = int(os.environ.get("REP", "25"))
e = machine.entry(); T = np.float32
v = tiled.variant(K, M, T)
c = tiled.module(v, e.isa)
MR, NR, MC, KC, WTAIL = c.MR, c.NR, c.MC, c.KC, c.WTAIL
fb, pw, mk, mkw, epi_rows = c.forward_block, c.pack_w, c.mk, c.mkw, c.epilogue_rows
PF_AHEAD, LINE = c.PF_AHEAD, c.LINE
Mp = -(-M // NR) * NR
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=T).reshape(-1) for s in ((N, K), (K, M), (N, M)))
dy = np.empty(N * M, T)
Wp = np.empty(K * Mp, T)
for jr in range(Mp // NR):
    pw(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
LG = M if Mp != M else Mp
nj = Mp // NR
wide = WTAIL > 0 and nj > 1 and M - (nj - 1) * NR <= WTAIL
assert wide or M % NR == 0, "only wide last panels or whole ones"


@njit
def run(mode, x, Wp, y, dy, grads=False, a0=0.0, stream=False):
    Ap = np.empty(MC * KC, T); Ct = np.empty(MR * NR, T); g = np.zeros(MC * LG + NR, T)
    xp, gp, Wpp, yp, dyp = pointer(x), pointer(g), pointer(Wp), pointer(y), pointer(dy)
    f = 0.0
    fs = zeros16()
    for b in range(REP * ((N + MC - 1) // MC)):
        r0 = b % ((N + MC - 1) // MC) * MC
        rows = min(MC, N - r0)
        if mode == 0:
            f += fb(g, dy, x, Wp, y, 0.0, K, M, Mp, LG, NR, KC, r0, rows, 0, nj, Ap, Ct,
                    grads, 0, 0, False, 0, 0, Ap, Ap, 0, 0, 0)
            continue
        for jr in range(nj - 1 if wide else nj):
            bo = jr * K * NR
            for ir in range(rows // MR):
                if mode == 2 and jr == 0:
                    ahead = (r0 + ir * MR) * K + PF_AHEAD
                    for q in range(0, MR * K, LINE):
                        prefetch_l2(xp, ahead + q)
                if wide and jr == nj - 2:
                    mkw(M - (nj - 1) * NR, K, xp, (r0 + ir * MR) * K, 1, K, Wpp, bo, NR,
                        bo + K * NR, gp, ir * MR * LG + jr * NR, LG, ir * MR * LG + (nj - 1) * NR)
                else:
                    mk(K, xp, (r0 + ir * MR) * K, 1, K, Wpp, bo, NR, gp, ir * MR * LG + jr * NR, LG)
        if mode == 3:  # forward_block's epilogue, one flat run (LG == M) or row by row
            if LG == M:
                epi_rows(gp, 0, LG, NR, yp, r0 * M, M, dyp, r0 * M, 1, rows * M, a0, grads, fs,
                         stream)
            else:
                for n in range(rows):
                    epi_rows(gp, n * LG, LG, NR, yp, (r0 + n) * M, M, dyp, (r0 + n) * M, 1, M,
                             0.0, False, fs, False)
    return f + fs[0]


names = {0: "forward_block (h, f)", 1: "calls alone", 2: "calls + x ahead", 3: "calls + epilogue"}
for m in names:
    run(m, x, Wp, y, dy, False, 0.0, False)
ts = {m: [] for m in names}
for r in range(rounds):
    for m in names:
        t = time.perf_counter(); run(m, x, Wp, y, dy, False, 0.0, False); ts[m].append(time.perf_counter() - t)
rows = REP * N
print(f"{N}x{K}x{M} ({e.isa}, {v} {MR}x{NR}, MC {MC}, wide {wide}), one thread, ns a row (best, median):")
for m, n in names.items():
    print(f"  {n:22s} {min(ts[m]) / rows * 1e9:6.2f} {np.median(ts[m]) / rows * 1e9:6.2f}")
