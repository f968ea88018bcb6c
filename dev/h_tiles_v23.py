"""h = x·W alone for 4096 rows REP times (in cache, one thread), by tile: 8×32 panels,
8×32 with an 8×16 last panel, 8×48, 8×16, 8×64 (dev/products_v23.md 24a).

    python dev/h_tiles_v23.py K M [REP]
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu.intrinsics import microkernel, pointer
numba.set_num_threads(1)
N, K, M, REP = 4096, int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 25
T = np.float32; MR = 8
mk32 = microkernel("float32", MR, 32, 16)
mk16 = microkernel("float32", MR, 16, 16)
mk48 = microkernel("float32", MR, 48, 16)
mk64 = microkernel("float32", MR, 64, 16)
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K, dtype=T)
def packed(NR):
    Mp = -(-M // NR) * NR
    W = np.zeros((K, Mp), T); W[:, :M] = rng.standard_normal((K, M), dtype=T)
    # panels of NR columns: panel j at j*K*NR, row k at k*NR
    return np.ascontiguousarray(W.reshape(K, Mp // NR, NR).transpose(1, 0, 2)).reshape(-1), Mp
W32, Mp32 = packed(32); W16, Mp16 = packed(16); W48, Mp48 = packed(48); W64, Mp64 = packed(64)
g = np.zeros(96 * 128, T)

@njit
def run(mode, x2, W2, g2):
    x, Wp, gg = pointer(x2), pointer(W2), pointer(g2)
    for r in range(REP):
        for r0 in range(0, N - 95, 96):
            for ir in range(12):
                a = (r0 + ir * MR) * K
                if mode == 0:  # 8x32 panels
                    for jr in range(Mp32 // 32):
                        mk32(K, x, a, 1, K, Wp, jr * K * 32, 32, gg, ir * MR * Mp32 + jr * 32, Mp32)
                elif mode == 1:  # 8x32 then 8x16 for the tail
                    for jr in range(M // 32):
                        mk32(K, x, a, 1, K, Wp, jr * K * 32, 32, gg, ir * MR * Mp32 + jr * 32, Mp32)
                    if M % 32:
                        if M % 32 <= 16:
                            mk16(K, x, a, 1, K, Wp, (M // 32) * K * 32, 32, gg, ir * MR * Mp32 + (M // 32) * 32, Mp32)
                        else:
                            mk32(K, x, a, 1, K, Wp, (M // 32) * K * 32, 32, gg, ir * MR * Mp32 + (M // 32) * 32, Mp32)
                elif mode == 2:  # 8x48
                    for jr in range(Mp48 // 48):
                        mk48(K, x, a, 1, K, Wp, jr * K * 48, 48, gg, ir * MR * Mp48 + jr * 48, Mp48)
                elif mode == 3:  # 8x16
                    for jr in range(Mp16 // 16):
                        mk16(K, x, a, 1, K, Wp, jr * K * 16, 16, gg, ir * MR * Mp16 + jr * 16, Mp16)
                else:
                    for jr in range(Mp64 // 64):
                        mk64(K, x, a, 1, K, Wp, jr * K * 64, 64, gg, ir * MR * Mp64 + jr * 64, Mp64)
    return 0
modes = [(0, W32), (1, W32), (2, W48), (3, W16), (4, W64)]
for m, W in modes: run(m, x, W, g)
ts = {m: [] for m, _ in modes}
for _ in range(7):
    for m, W in modes:
        t = time.perf_counter(); run(m, x, W, g); ts[m].append(time.perf_counter() - t)
flops = 2 * N * REP * K * M
names = ["8x32", "8x32+8x16", "8x48", "8x16", "8x64"]
print(f"K={K} M={M}:", "  ".join(f"{names[m]} {np.median(v)*1e3:.2f}ms ({flops/np.median(v)/1e9:.0f} GF/s useful)" for m, v in ts.items()))
