"""Where dW's float64 partial costs (dev/products_v16.md 17d): dw_item over the chunks of an
N×N×N problem, one thread, in variants of the generated "three" module (its text edited),
each paired with the kernel's own in the same rounds.

    python dev/dw_tile_v16.py N [rounds] [other.json]

as is; nopf: no prefetch of part's and dW's rows; notile: FIRST and MIDDLE blocks leave
their tile in Ct (no float64 add); only: every block ONLY (whole tiles straight into dW,
no float64 partial).  The last two give wrong sums: timing only.  Variants run in one
process, so their ratios are paired, but they are not comparable between two versions of
the kernel (17d: they suggested a gain that the direct A/B did not show).  For that
A/B, other.json holds another checkout's generated common and three modules as (name,
source) pairs, loaded here as variant "other" (its bits checked against as is); make it
with that checkout on PYTHONPATH:
    json.dump([tiled._generated(v, isa), tiled._generated(v, isa, "three")], open(path, "w"))
"""
import json, sys, time, numpy as np, numba
from loopgrad.cpu import tiled, machine, jit
numba.set_num_threads(1)
n = int(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
N = K = M = n
e = machine.entry(); v = tiled.variant(K, M, np.float32)
c = tiled.module(v, e.isa)
common = f"{jit.GENERATED}.{jit.stem(*tiled._generated(v, e.isa))}"
src = tiled._source(machine.TABLE[e.isa], v, "three", common)
edits = {
    "asis": [],
    "nopf": [("                    if block != ONLY:\n                        prefetch(part, o + i * Mp + q)\n", ""),
             ("                    if block == LAST or block == ONLY:\n                        prefetch(dW, d + i * M + q)\n", ""),
             ("                for q in range(0, NR, 8):  # 8 float64s a line\n", "                for q in range(0):\n                    pass\n")],
    "notile": [("            if block == FIRST:\n                tile_set64(part, o, Mp, Ct, rows)\n            elif block == MIDDLE:\n                tile_add64(part, o, Mp, Ct, rows)\n",
                "            if block == FIRST or block == MIDDLE:\n                pass\n")],
}
mods = {}
for name, ed in edits.items():
    s = src
    for a, b in ed:
        if a not in s:  # the kernel has no such text (17d dropped the prefetch): as is
            print(f"{name}: edit not found, the kernel as is")
        s = s.replace(a, b)
    mods[name] = jit.load(f"dwtile_{name}", s) if ed else tiled.module(v, e.isa, "three")
if len(sys.argv) > 3:
    (cn, cs), (tn, ts) = json.load(open(sys.argv[3]))
    jit.load(cn, cs)  # the other's common module first: its three module imports it by name
    mods["other"] = jit.load(tn, ts)
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
t3 = mods["asis"]
def run(mod, only=False):
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
                            min(MC, K - kb * MC), jb * JB, min(JB, Mp // NR - jb * JB),
                            c.ONLY if only else block, Ct)
        t += time.perf_counter() - s
    return t
variants = [("asis", mods["asis"], False), ("nopf", mods["nopf"], False),
            ("notile", mods["notile"], False), ("only", mods["asis"], True)]
run(mods["asis"]); ref = dW.copy(); run(mods["nopf"]); print("nopf same bits:", np.array_equal(ref, dW))
if "other" in mods:
    variants.append(("other", mods["other"], False))
    run(mods["other"]); print("other same bits:", np.array_equal(ref, dW))
T = {k: [] for k, _, _ in variants}
for r in range(rounds):
    for name, mod, only in (variants if r % 2 == 0 else variants[::-1]):
        T[name].append(run(mod, only))
a = np.array(T["asis"])
for name in T:
    print(f"{name:7s} {np.median(T[name]) * 1e3:8.2f} ms  ÷ as is {np.median(np.array(T[name]) / a):.3f}")
