"""dW's packs of one chunk (DWB blocks of KC rows), a panel or micro-panel block at a time
(pack_g, pack_xt) against row by row (pack_g_rows, pack_xt_rows), one thread, with the
same bits checked (dev/products_v16.md 17b).

    python dev/packs_v16.py N [rounds]        (N×N×N, float32, this CPU's entry)
"""
import sys, time, numpy as np, numba
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
n = int(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
N = K = M = n
e = machine.entry(); v = tiled.variant(K, M, np.float32)
c = tiled.module(v, e.isa); t3 = tiled.module(v, e.isa, "three")
MR, NR, MC, KC, DWB = c.MR, c.NR, c.MC, c.KC, c.DWB
Mp = (M + NR - 1) // NR * NR
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K, dtype=np.float32)
g = rng.standard_normal((N + MR) * Mp, dtype=np.float32)
nk = (K + MC - 1) // MC; xpb = (K + MR - 1) // MR * MR * KC
nbk = min(DWB, (N + KC - 1) // KC)
PR = int(sys.argv[3]) if len(sys.argv) > 3 else 32
def old(Gp, Xp):
    for b in range(nbk):
        pc = b * KC; kc = min(KC, N - pc)
        for u in range(Mp // NR):
            t3.pack_g(Gp[b * KC * Mp:], g, Mp, pc, kc, u)
        for u in range(nk):
            t3.pack_xt(Xp[b * xpb:], x, K, pc, kc, u * MC, min(MC, K - u * MC))
def new(Gp, Xp):
    for b in range(nbk):
        pc = b * KC; kc = min(KC, N - pc)
        for p0 in range(0, kc, PR):
            t3.pack_g_rows(Gp[b * KC * Mp:], g, Mp, pc, kc, p0, min(kc, p0 + PR))
            t3.pack_xt_rows(Xp[b * xpb:], x, K, pc, kc, p0, min(kc, p0 + PR))
bufs = {k: (np.full(nbk * KC * Mp, np.nan, np.float32), np.full(nbk * xpb, np.nan, np.float32)) for k in ("old", "new")}
old(*bufs["old"]); new(*bufs["new"])
same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(bufs["old"], bufs["new"]))
print("same bits:", same)
ts = {"old": [], "new": []}
for r in range(rounds):
    for name, fn in (("old", old), ("new", new)):
        t = time.perf_counter(); fn(*bufs[name]); ts[name].append(time.perf_counter() - t)
nbytes = 2 * 4 * nbk * KC * (Mp + K)  # read and written once
for name in ts:
    m = np.median(ts[name])
    print(f"{name}: {m * 1e3:.3f} ms a chunk, {nbytes / m / 1e9:.1f} GB/s (read + written)")
print("new / old, paired median %.3f" % np.median(np.array(ts["new"]) / np.array(ts["old"])))
