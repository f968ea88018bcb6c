"""dx of one three-pass item, g in place against packed, by column panels per item (dev/products_v9.md 12c).

    python dev/dx_pass_v9.py 1024     # MC rows of g, K = M = 1024; force an entry with NUMBA_CPU_NAME/FEATURES

Times the generated dx_block (in place; the fused kernel's) and dx_packed (the three-pass
kernel's) over JX column panels at a time, one thread, and the pack alone.
"""
import sys, time, numpy as np
from loopgrad.cpu import tiled, machine, jit
e = machine.entry(); t = e.tiles["float32"]; MR, NR, MC, KC = t.MR, t.NR, t.MC, t.KC
c = tiled.module("float32", e.isa)
c3 = tiled.module("float32", e.isa, "three")
N = K = M = int(sys.argv[1]); Mp = Kp = M
rng = np.random.default_rng(0)
g = rng.standard_normal(MC * Mp).astype(np.float32)
W = rng.standard_normal(K * M).astype(np.float32)
Wtp = np.empty(M * Kp, np.float32)
for jr in range(Kp // NR): c.pack_wt(Wtp, W, K, M, jr)
dx = np.empty(N * K, np.float32); Ct = np.empty(MR*NR, np.float32); Ap = np.empty(MC*KC, np.float32)
nx = Kp // NR
def run(packed, JX):
    for j0 in range(0, nx, JX):
        (c3.dx_packed(dx, g, Wtp, K, M, Mp, 0, MC, j0, min(JX, nx - j0), Ct, Ap) if packed else c.dx_block(dx, g, Wtp, K, M, Mp, 0, MC, j0, min(JX, nx - j0), Ct))
for packed in (False, True):
    for JX in (4, 16, 64, 128):
        run(packed, JX); ts = []
        for r in range(5):
            t0 = time.perf_counter(); run(packed, JX); ts.append(time.perf_counter() - t0)
        print(f"packed={packed} JX={JX}: {2*MC*K*M/np.median(ts)/1e9:.1f} GF/s")
# pack alone
ts=[]
for r in range(5):
    t0 = time.perf_counter()
    for pc in range(0, M, KC): c3.dx_packed(dx, g, Wtp, K, M, Mp, 0, MC, 0, 0, Ct, Ap)
    ts.append(time.perf_counter() - t0)
print(f"pack of g's block alone: {np.median(ts)*1e3:.2f} ms, {MC*M/np.median(ts)/1e9:.2f} G elements/s")
