"""The three-pass driver's regions timed from inside: the generated driver's text with rdtsc
(dev/regions_tsc_v39.py) stamped into ws64's tail at each region's end, and at each thread's
end of the h, dx and dW items (dev/products_v39.md 40d).  Two threads unless THREADS.

    [THREADS=2] [DTYPE=float32] python dev/regions_v39.py NxKxM ...

Prints the call's time, each region's µs (TSC at 2.6 GHz: set TSC_MHZ) and the threads' ends.
"""
import sys, os, re, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np, numba
from loopgrad._inputs import WANT_ALL, STREAM
from loopgrad.cpu import tiled
orig = tiled._nests
src = orig("three")
def mark(s, anchor, code, after=True, count=1):
    assert anchor in s, anchor
    return s.replace(anchor, anchor + code if after else code + anchor, count)
s = "from regions_tsc_v39 import rdtsc\n" + src
# start
s = mark(s, "    N, K, M = x2.shape[0], x2.shape[1], W2.shape[1]\n", "    TSB = ws64.shape[0] - 64\n    ws64[TSB + 0] = rdtsc()\n")
# after W packs region
s = mark(s, "    rest = wsT[K * Mp + nwt:]\n", "    ws64[TSB + 1] = rdtsc()\n", after=False)
# h items: per-thread end inside prange(nthr) (the first such loop)
s = mark(s, """                                         pack, stream and wdy, q0, q1, Ap, Ap, 0, 0, 0)
""", "            ws64[TSB + 8 + w] = rdtsc()\n")
s = mark(s, "    if wdx:\n        # dx by items", "    ws64[TSB + 2] = rdtsc()\n", after=False)
s = mark(s, """                              np.empty(MC * KC, T), Cb, stream, nn)
""", "            ws64[TSB + 16 + w] = rdtsc()\n")
s = mark(s, "    nk = (K + MC - 1) // MC\n", "    ws64[TSB + 3] = rdtsc()\n", after=False)
s = mark(s, "            for w in prange(nthr):  # column group by column group", "            ws64[TSB + 4] = rdtsc()\n", after=False)
s = mark(s, """                                Ct)
""", "                ws64[TSB + 24 + w] = rdtsc()\n")
s = mark(s, "    f = 0.0\n    for b in range(nb * gh):", "    ws64[TSB + 5] = rdtsc()\n", after=False)
s = mark(s, "    return decide(f, w2[0], bad.sum())", "    ws64[TSB + 6] = rdtsc()\n", after=False)
tiled._nests = lambda part: s if part == "three" else orig(part)
for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
    f.cache_clear()
numba.set_num_threads(int(os.environ.get("THREADS", 2)))
DT = np.dtype(os.environ.get("DTYPE", "float32"))
for a in sys.argv[1:]:
    N, K, M = (int(v) for v in a.split("x"))
    name, v, nch, rows = tiled.plan(N, K, M, DT)
    kern = tiled.kernel(name, v, True)
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
    n64, nT = tiled.scratch(name, v, N, K, M, 1)
    ws64, wsT = np.empty(n64 + 64), np.empty(nT, DT)
    outs = [np.empty_like(x), np.empty_like(W), np.empty_like(y)]
    thr = numba.get_num_threads()
    recs = []
    for r in range(60):
        ws64[-64:] = 0
        s0 = time.perf_counter(); kern(*outs, x, W, y, 0.0, thr, rows, ws64, wsT, WANT_ALL); s1 = time.perf_counter()
        recs.append((s1 - s0, ws64[-64:].copy()))
    recs = recs[10:]
    ghz = float(os.environ.get("TSC_MHZ", 2600))  # TSC cycles per µs
    med = lambda xs: float(np.median(xs))
    T = np.array([r[1] for r in recs])  # cycles stored as float64
    rel = lambda i: (T[:, i] - T[:, 0]) / ghz
    print(a, f"call {med([r[0] for r in recs])*1e6:.0f} µs (python)")
    names = ["W's packs", "h items", "dx items", "xᵀ pack", "dW items", "count, f"]
    print("  regions (µs):", ", ".join(f"{n} {med(rel(i + 1) - rel(i)):.0f}" for i, n in enumerate(names)))
    for base, nm, start in ((8, "h", 1), (16, "dx", 2), (24, "dW", 4)):
        ends = [med(rel(base + w)) for w in range(thr)]
        print(f"  {nm} items: from {med(rel(start)):.0f} µs, threads end at", ", ".join(f"{e:.0f}" for e in ends))
