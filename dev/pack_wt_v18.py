"""pack_wt as a loop (old) and by TR×16 transposes (intrinsics.transposer), in one process
(dev/products_v18.md 19f).

    [DTYPE=float64] python dev/pack_wt_v18.py N [TR [VW]]
"""
import sys, time, numpy as np
from numba import njit
from loopgrad.cpu import jit, machine
from loopgrad.cpu.intrinsics import pointer, transposer
import os
DT = os.environ.get("DTYPE", "float32")  # DTYPE=float64: that tile and dtype
e = machine.entry(); t = e.tiles[DT]; NR = t.NR
T = np.dtype(DT).type; FM = {"contract"}
K = M = int(sys.argv[1]); G = int(sys.argv[2]) if len(sys.argv) > 2 else 8; VW = int(sys.argv[3]) if len(sys.argv) > 3 else 16
with jit.settings(slp=True, vector_bits=e.vector_bits):
    tp = transposer(DT, G, VW)
    @njit(nogil=True, fastmath=FM)
    def pack_wt_old(Wtp2, W2, K, M, jr):
        Wtp, W = pointer(Wtp2), pointer(W2)
        base = jr * M * NR
        for p in range(M):
            for j in range(NR):
                c = jr * NR + j
                Wtp[base + p * NR + j] = W[c * M + p] if c < K else T(0.0)
    @njit(nogil=True, fastmath=FM)
    def pack_wt_new(Wtp2, W2, K, M, jr):
        Wtp, W = pointer(Wtp2), pointer(W2)
        base = jr * M * NR
        if (jr + 1) * NR <= K:
            m16 = M // VW * VW
            for p0 in range(0, m16, VW):
                for jg in range(0, NR, G):
                    tp(Wtp, base + p0 * NR + jg, NR, W, (jr * NR + jg) * M + p0, M)
            for p in range(m16, M):
                for j in range(NR):
                    Wtp[base + p * NR + j] = W[(jr * NR + j) * M + p]
        else:
            for p in range(M):
                for j in range(NR):
                    c = jr * NR + j
                    Wtp[base + p * NR + j] = W[c * M + p] if c < K else T(0.0)
W = np.random.default_rng(0).standard_normal(K * M, dtype=T)
Kp = (K + NR - 1) // NR * NR
a, b = np.empty(M * Kp, T), np.empty(M * Kp, T)
def run(f, o):
    for jr in range(Kp // NR): f(o, W, K, M, jr)
run(pack_wt_old, a); run(pack_wt_new, b); assert np.array_equal(a, b)
ts = {"old": [], "new": []}
for r in range(9):
    s = time.perf_counter(); run(pack_wt_old, a); ts["old"].append(time.perf_counter() - s)
    s = time.perf_counter(); run(pack_wt_new, b); ts["new"].append(time.perf_counter() - s)
print(f"{K}x{M} G {G} VW {VW}: pack_wt old {np.median(ts['old'])*1e3:.3f} ms, new {np.median(ts['new'])*1e3:.3f} ms")
