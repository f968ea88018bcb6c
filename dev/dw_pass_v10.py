"""dW = xᵀ·g of the three-pass kernel, one KC block of rows of N, by which block it is (dev/products_v10.md).

    python dev/dw_pass_v10.py 1024     # K = M = 1024; force an entry with NUMBA_CPU_NAME/FEATURES

Packs one KC block of x and g as the kernel does, then times the items (one thread) as
ONLY (tiles straight into dW), FIRST (tiles set the float64 partial), MIDDLE (added to it)
and LAST (partial + tile into dW), so the partial's cost is the difference to ONLY.  The
kernel as it is ("now") against its source with C's prefetches cut out ("no-pf"),
compiled side by side in one process, rounds interleaved (the VM's speed drifts).
"""
import sys, time, numpy as np
from loopgrad.cpu import tiled, machine, jit
e = machine.entry(); t = e.tiles["float32"]; MR, NR, MC, KC = t.MR, t.NR, t.MC, t.KC
common = tiled.module("float32", e.isa)
src = tiled._source(e, "float32", "three", common.__name__)
i0 = src.index("            # the tile's rows of part"); i1 = src.index("            if block == ONLY and rows")
with jit.settings(slp=True, vector_bits=e.vector_bits):
    mods = {"now": jit.load(f"dev_dw_now_{e.isa}", src),
            "no-pf": jit.load(f"dev_dw_nopf_{e.isa}", src[:i0] + src[i1:])}
c3 = mods["now"]
K = M = int(sys.argv[1]); N = KC; Mp = (M + NR - 1) // NR * NR
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K).astype(np.float32)
g = rng.standard_normal(N * Mp).astype(np.float32)
Gp = np.empty(KC * Mp, np.float32); Xp = np.empty((K + MR - 1) // MR * MR * KC, np.float32)
part = np.zeros(K * Mp); dW = np.empty(K * M, np.float32); Ct = np.empty(MR * NR, np.float32)
nk, njb = (K + MC - 1) // MC, (Mp // NR + c3.JB - 1) // c3.JB
for jr in range(Mp // NR): c3.pack_g(Gp, g, Mp, 0, KC, jr)
for k0 in range(0, K, MC): c3.pack_xt(Xp, x, K, 0, KC, k0, min(MC, K - k0))
def run(m, block):
    for item in range(nk * njb):
        kb, jb = item // njb, item % njb
        m.dw_item(part, dW, Xp, Gp, M, Mp, KC, kb * MC, min(MC, K - kb * MC), jb * m.JB,
                  min(m.JB, Mp // NR - jb * m.JB), block, Ct)
print(f"{e.isa} float32 {MR}x{NR} MC {MC} KC {KC}, K = M = {K}, one block of {KC} rows, GF/s")
names = {c3.ONLY: "ONLY", c3.FIRST: "FIRST", c3.MIDDLE: "MIDDLE", c3.LAST: "LAST"}
res = {(v, b): [] for v in mods for b in names}
for r in range(11):
    for b in names:
        for v, m in mods.items():
            run(m, b); t0 = time.perf_counter(); run(m, b); res[v, b].append(time.perf_counter() - t0)
print("block  " + "".join(f"{v:>8s}" for v in mods) + "   (median; best)")
for b in names:
    print(f"{names[b]:6s} " + "".join(f"{2*KC*K*M/np.median(res[v, b])/1e9:8.1f}" for v in mods)
          + "   " + "".join(f"{2*KC*K*M/np.min(res[v, b])/1e9:8.1f}" for v in mods))

# the sum over NB blocks: block by block for all items (the kernel today), or item by
# item over the NB blocks (the item's part stays in L2), same bits
NB = 4
Gps = [np.empty(KC * Mp, np.float32) for _ in range(NB)]
Xps = [np.empty_like(Xp) for _ in range(NB)]
for b in range(NB):
    xb = rng.standard_normal(N * K).astype(np.float32); gb = rng.standard_normal(N * Mp).astype(np.float32)
    for jr in range(Mp // NR): c3.pack_g(Gps[b], gb, Mp, 0, KC, jr)
    for k0 in range(0, K, MC): c3.pack_xt(Xps[b], xb, K, 0, KC, k0, min(MC, K - k0))
kinds = [c3.FIRST] + [c3.MIDDLE] * (NB - 2) + [c3.LAST]
def item(m, it, b):
    kb, jb = it // njb, it % njb
    m.dw_item(part, dW, Xps[b], Gps[b], M, Mp, KC, kb * MC, min(MC, K - kb * MC), jb * m.JB,
              min(m.JB, Mp // NR - jb * m.JB), kinds[b], Ct)
def blocks_outer(m):
    for b in range(NB):
        for it in range(nk * njb): item(m, it, b)
def items_outer(m):
    for it in range(nk * njb):
        for b in range(NB): item(m, it, b)
out = {}
for r in range(11):
    for f in (blocks_outer, items_outer):
        for v, m in mods.items():
            f(m); t0 = time.perf_counter(); f(m); out.setdefault((f.__name__, v), []).append(time.perf_counter() - t0)
            if r == 0 and v == "now":
                h = __import__("hashlib").sha256(dW.tobytes()).hexdigest()[:12]; print(f.__name__, "dW", h)
print(f"{NB} blocks ({NB * KC} rows), GF/s (median, best)")
for k, ts in out.items():
    print(f"{k[0]:13s} {k[1]:6s} {2*NB*KC*K*M/np.median(ts)/1e9:6.1f} {2*NB*KC*K*M/np.min(ts)/1e9:6.1f}")
