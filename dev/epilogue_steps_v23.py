"""The tiled epilogue alone (epilogue_rows of the AVX-512 float32 8×32 module) over 96 rows
in cache, 1000 calls: ns a 16-element step by row length (dev/products_v23.md 24a).

    [A0=0.5[,0,1,0.3]] python dev/epilogue_steps_v23.py
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
e = machine.entry(); T = np.float32
c = tiled.module(tiled.variant(24, 40, T), e.isa)
er = c.epilogue_rows
NR = c.NR  # g's pieces: a row's NR columns of a panel together (as the kernels pass pstr)
REP = 1000
@njit
def run(g2, y2, dy2, m, ldg, rows, want, a0):
    g, y, dy = pointer(g2), pointer(y2), pointer(dy2)
    fs2 = np.zeros(16); fs = pointer(fs2)
    for r in range(REP):
        er(g, 0, ldg, NR, y, 0, m, dy, 0, rows, m, a0, want, fs, False)
    return fs2.sum()
rng = np.random.default_rng(0)
A0S = [float(v) for v in __import__("os").environ.get("A0", "0.5").split(",")]  # relu'(0)s
for m, ldg in [(40, 64), (48, 64), (32, 64), (16, 32), (8, 32), (64, 64), (1536, 1536)]:
    rows = 96 if m < 1000 else 1
    g = rng.standard_normal(96 * max(ldg, 64)).astype(T); y = rng.standard_normal(96 * max(m, 64)).astype(T); dy = np.empty_like(y)
    for want, a0 in [(w, a) for w in (False, True) for a in A0S]:
        run(g.copy(), y, dy, m, ldg, rows, want, a0)
        ts = []
        for _ in range(7):
            gg = g.copy(); t = time.perf_counter(); run(gg, y, dy, m, ldg, rows, want, a0); ts.append(time.perf_counter() - t)
        t = np.median(ts) / REP
        steps = rows * -(-m // 16)
        print(f"m={m} ldg={ldg} rows={rows} want={want} a0={a0}: {t*1e6:.2f} us/call, {t/steps*1e9:.2f} ns/step, {t/rows*1e9:.1f} ns/row")
