"""dw_item of two versions of the generated "three" module in one process, alternating: the
kernel's own and another's, whose (name, source) pairs of its common and three modules a
JSON file holds (dev/products_v16.md 17d).  One thread, the dW items of N×N×N.

    python dev/dw_ab_v16.py N rounds other.json

Make other.json with the other checkout on PYTHONPATH:
    json.dump([tiled._generated(v, isa), tiled._generated(v, isa, "three")], open(path, "w"))
"""
import json, sys, time, numpy as np, numba
from loopgrad.cpu import tiled, machine, jit
numba.set_num_threads(1)
n, rounds, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
N = K = M = n
e = machine.entry(); v = tiled.variant(K, M, np.float32)
(cn, cs), (tn, ts) = json.load(open(path))
jit.load(cn, cs)
mods = {"this": tiled.module(v, e.isa, "three"), "other": jit.load(tn, ts)}
c = tiled.module(v, e.isa)
MR, NR, MC, KC, DWB, JB = c.MR, c.NR, c.MC, c.KC, c.DWB, c.JB
Mp = (M + NR - 1) // NR * NR
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K, dtype=np.float32)
g = rng.standard_normal((N + MR) * Mp, dtype=np.float32)
dW = np.empty(K * M, np.float32); part = np.empty(K * Mp); Ct = np.empty(MR * NR, np.float32)
nk = (K + MC - 1) // MC; xpb = (K + MR - 1) // MR * MR * KC
nbc = min(DWB, (N + KC - 1) // KC)
Gp, Xp = np.empty(nbc * KC * Mp, np.float32), np.empty(nbc * xpb, np.float32)
njb = (Mp // NR + JB - 1) // JB
t3 = mods["this"]
def run(mod):
    t = 0.0
    for c0 in range(0, N, DWB * KC):
        nbk = min(DWB, (N - c0 + KC - 1) // KC)
        for b in range(nbk):
            pc = c0 + b * KC; kc = min(KC, N - pc)
            for u in range(Mp // NR): t3.pack_g(Gp[b * KC * Mp:], g, Mp, pc, kc, u)
            for u in range(nk): t3.pack_xt(Xp[b * xpb:], x, K, pc, kc, u * MC, min(MC, K - u * MC))
        s = time.perf_counter()
        for item in range(nk * njb):
            kb, jb = item % nk, item // nk
            for b in range(nbk):
                pc = c0 + b * KC; kc = min(KC, N - pc); last = pc + kc == N
                block = (c.ONLY if last else c.FIRST) if pc == 0 else (c.LAST if last else c.MIDDLE)
                mod.dw_item(part, dW, Xp[b * xpb:], Gp[b * KC * Mp:], M, Mp, kc, kb * MC,
                            min(MC, K - kb * MC), jb * JB, min(JB, Mp // NR - jb * JB), block, Ct)
        t += time.perf_counter() - s
    return t
res = {}
for k, mod in mods.items():
    dW[:] = np.nan; run(mod); res[k] = dW.copy()
print("same bits:", np.array_equal(res["this"], res["other"]))
T = {k: [] for k in mods}
for r in range(rounds):
    for k, mod in (mods.items() if r % 2 == 0 else reversed(list(mods.items()))):
        T[k].append(run(mod))
for k in T:
    print(f"{k:6s} {np.median(T[k]) * 1e3:8.2f} ms")
print("this / other, paired median %.3f" % np.median(np.array(T["this"]) / np.array(T["other"])))
