"""The three-pass kernel's h product alone (no epilogue), one thread, against torch.mm (dev/machines_v8.md 11a).

    python dev/h_pass.py 2048 4 256,128,-256      # N=K=M=2048, JH=4, KC 256, 128, and 256 with KC outermost
    python dev/h_pass.py 1024x2048x1024 4 256

Items of MC rows × JH column panels as in tiled.py's driver, x read in place; a
negative KC runs every item of one KC block before the next (BLIS's order).
Prints each variant's time as a multiple of torch.mm's in the same rounds.  (The
packed-x variants of 11a were a copy of this with pack_a per item and per call.)
"""
import sys, time, numpy as np, numba, torch
from numba import njit
from loopgrad.cpu import tiled, jit
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1); torch.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x")) if "x" in sys.argv[1] else (int(sys.argv[1]),)*3; n = sys.argv[1]
c = tiled.module("float32", "avx512")
mk, tile_add = c.mk, c.tile_add
MR, NR, MC = 8, 32, 96
JH = int(sys.argv[2])
@njit(nogil=True)
def h_inplace(g2, x2, Wp2, K, Mp, r0, rows, j0, nj, Ct2, KC, p0, p1):
    g, x, Wp, Ct = pointer(g2), pointer(x2), pointer(Wp2), pointer(Ct2)
    nir = rows // MR
    for pc in range(p0, p1, KC):
        kc = min(KC, K - pc)
        for jr in range(j0, j0 + nj):
            bo = (jr * K + pc) * NR
            for ir in range(nir):
                co = ir * MR * Mp + jr * NR
                if pc == 0:
                    mk(kc, x, (r0 + ir * MR) * K + pc, 1, K, Wp, bo, NR, g, co, Mp)
                else:
                    mk(kc, x, (r0 + ir * MR) * K + pc, 1, K, Wp, bo, NR, Ct, 0, NR)
                    tile_add(g, co, Mp, Ct, MR)
rng = np.random.default_rng(0)
x = rng.standard_normal((N, K), dtype=np.float32).reshape(-1); W = rng.standard_normal((K, M), dtype=np.float32).reshape(-1)
Mp = M
Wp = np.empty(K*Mp, np.float32)
c.pack_w(Wp, W, K, M, 0, K)
g = np.empty(N*Mp, np.float32); Ct = np.empty(MR*NR, np.float32)
nb = N//MC; nh = Mp//NR; gh = (nh+JH-1)//JH
def run(KC):
    if KC < 0:   # pc outer: every item for one KC block, then the next
        KC = -KC
        for p0 in range(0, K, KC):
            for item in range(nb*gh):
                r0, j0 = item//gh*MC, item%gh*JH
                h_inplace(g[r0*Mp:], x, Wp, K, Mp, r0, MC, j0, min(JH, nh-j0), Ct, KC, p0, min(K, p0 + KC))
        return
    for item in range(nb*gh):
        r0, j0 = item//gh*MC, item%gh*JH
        h_inplace(g[r0*Mp:], x, Wp, K, Mp, r0, MC, j0, min(JH, nh-j0), Ct, KC, 0, K)
X = torch.from_numpy(x.reshape(N,K)); Wt = torch.from_numpy(W.reshape(K,M))
kcs = [int(a) for a in sys.argv[3].split(",")]
with jit.settings(slp=True, vector_bits=512):
    run(256)
res = {k: [] for k in kcs + [0]}
for r in range(int(sys.argv[4]) if len(sys.argv) > 4 else 8):
    t0 = time.perf_counter(); torch.mm(X[:nb*MC], Wt); tm = time.perf_counter()-t0
    res[0].append(tm)
    for k in kcs:
        t0 = time.perf_counter(); run(k); res[k].append((time.perf_counter()-t0)/tm)
fl = 2*nb*MC*K*M
run(256); ref = g.copy(); run(-256); assert np.array_equal(ref, g)
print(f"{n}^3 JH={JH}: mm {fl/np.median(res[0])/1e9:.0f} GF/s;", "  ".join(f"KC={k}: {np.median(res[k]):.2f}x mm" for k in kcs))
