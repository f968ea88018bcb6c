"""The packs' row copies as loops (old, compiled here) and as one vector copy a row (intrinsics.copier), in one process (dev/products_v18.md 19f).

    python dev/packs_v18.py N
"""
import sys, time, numpy as np
from numba import njit
from loopgrad.cpu import jit, machine, tiled
from loopgrad.cpu.intrinsics import pointer, prefetch, copier
e = machine.entry(); t = e.tiles["float32"]; MR, NR, KC = t.MR, t.NR, t.KC
T = np.float32; LINE = 16; FM = {"contract"}
N = K = M = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
with jit.settings(slp=True, vector_bits=e.vector_bits):
    cpn, cpm = copier("float32", NR), copier("float32", MR)
    @njit(nogil=True, fastmath=FM)
    def pack_w_old(Wp2, W2, K, M, p0, p1):
        Wp, W = pointer(Wp2), pointer(W2)
        for p in range(p0, p1):
            for jr in range((M + NR - 1) // NR):
                for j in range(NR):
                    c = jr * NR + j
                    Wp[(jr * K + p) * NR + j] = W[p * M + c] if c < M else T(0.0)
    @njit(nogil=True, fastmath=FM)
    def pack_w_new(Wp2, W2, K, M, p0, p1):
        Wp, W = pointer(Wp2), pointer(W2)
        for p in range(p0, p1):
            for jr in range(M // NR):
                cpn(Wp, (jr * K + p) * NR, W, p * M + jr * NR)
            for jr in range(M // NR, (M + NR - 1) // NR):
                for j in range(NR):
                    c = jr * NR + j
                    Wp[(jr * K + p) * NR + j] = W[p * M + c] if c < M else T(0.0)
    @njit(nogil=True, fastmath=FM)
    def pack_g_old(Gp2, g2, Mp, pc, kc, jr):
        Gp, g = pointer(Gp2), pointer(g2)
        for p in range(kc):
            for q in range(0, NR, LINE):
                prefetch(g, (pc + p + 16) * Mp + jr * NR + q)
            for j in range(NR):
                Gp[(jr * kc + p) * NR + j] = g[(pc + p) * Mp + jr * NR + j]
    @njit(nogil=True, fastmath=FM)
    def pack_g_new(Gp2, g2, Mp, pc, kc, jr):
        Gp, g = pointer(Gp2), pointer(g2)
        for p in range(kc):
            for q in range(0, NR, LINE):
                prefetch(g, (pc + p + 16) * Mp + jr * NR + q)
            cpn(Gp, (jr * kc + p) * NR, g, (pc + p) * Mp + jr * NR)
    @njit(nogil=True, fastmath=FM)
    def pack_xt_old(Xp2, x2, K, pc, kc, k0, krows):
        Ap, src = pointer(Xp2[k0 * kc:]), pointer(x2)
        for ir in range((krows + MR - 1) // MR):
            base = ir * kc * MR
            for p in range(kc):
                row = (pc + p) * K + k0
                for i in range(MR):
                    c = ir * MR + i
                    Ap[base + p * MR + i] = src[row + c] if c < krows else T(0.0)
    @njit(nogil=True, fastmath=FM)
    def pack_xt_new(Xp2, x2, K, pc, kc, k0, krows):
        Ap, src = pointer(Xp2[k0 * kc:]), pointer(x2)
        for ir in range(krows // MR):
            base = ir * kc * MR
            for p in range(kc):
                cpm(Ap, base + p * MR, src, (pc + p) * K + k0 + ir * MR)
        for ir in range(krows // MR, (krows + MR - 1) // MR):
            base = ir * kc * MR
            for p in range(kc):
                row = (pc + p) * K + k0
                for i in range(MR):
                    c = ir * MR + i
                    Ap[base + p * MR + i] = src[row + c] if c < krows else T(0.0)
rng = np.random.default_rng(0)
W = rng.standard_normal(K * M, dtype=T); x = rng.standard_normal(N * K, dtype=T)
Mp = (M + NR - 1) // NR * NR
g = rng.standard_normal(N * Mp, dtype=T)
Wp1, Wp2 = np.empty(K * Mp, T), np.empty(K * Mp, T)
Gp1, Gp2 = np.empty(KC * Mp, T), np.empty(KC * Mp, T)
Xp1, Xp2 = np.empty(K * KC + MR * KC, T), np.empty(K * KC + MR * KC, T)
MC = t.MC
def run_w(f, Wp): f(Wp, W, K, M, 0, K)
def run_g(f, Gp):
    for pc in range(0, N, KC):
        for jr in range(Mp // NR): f(Gp, g, Mp, pc, min(KC, N - pc), jr)
def run_x(f, Xp):
    for pc in range(0, N, KC):
        for k0 in range(0, K, MC): f(Xp, x, K, pc, min(KC, N - pc), k0, min(MC, K - k0))
for name, run, o, n, a, b in (("pack_w", run_w, pack_w_old, pack_w_new, Wp1, Wp2), ("pack_g", run_g, pack_g_old, pack_g_new, Gp1, Gp2), ("pack_xt", run_x, pack_xt_old, pack_xt_new, Xp1, Xp2)):
    run(o, a); run(n, b); assert np.array_equal(a, b), name
    ts = {"old": [], "new": []}
    for r in range(9):
        s = time.perf_counter(); run(o, a); ts["old"].append(time.perf_counter() - s)
        s = time.perf_counter(); run(n, b); ts["new"].append(time.perf_counter() - s)
    print(f"{N}: {name} old {np.median(ts['old'])*1e3:.3f} ms, new {np.median(ts['new'])*1e3:.3f} ms")
