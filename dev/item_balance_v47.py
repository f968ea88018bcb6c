"""A model of the three-pass driver's items (dev/products_v46.md 47b): for each pass (h, dx,
dW) the work of the busiest of two threads over the mean (rows × column panels, as
nests.shares assigns them) and the item count, per tile of the machine table; then, for
dx, what gx ± 1 column groups would give.  No kernel runs.

    python dev/item_balance_v47.py
"""
import numpy as np
from loopgrad.cpu import machine, tiled
DX_ITEMS, DX_COLS, H_ITEMS, JB = 16, 128, 6, 8
def item_at(i, nb, ng, rowwise): return (i // ng, i % ng) if rowwise else (i % nb, i // nb)
def shares(N, ncols, G, nthr, mb, rowwise):
    nb, ng = -(-N // mb), -(-ncols // G); total = N * ncols; own = []; done = 0
    for i in range(nb * ng):
        b, c = item_at(i, nb, ng, rowwise); cost = min(mb, N - b * mb) * min(G, ncols - c * G)
        own.append(nthr * (2 * done + cost) // (2 * total)); done += cost
    return own
def imb(N, ncols, G, nthr, mb, rowwise):
    own = shares(N, ncols, G, nthr, mb, rowwise); nb, ng = -(-N // mb), -(-ncols // G)
    w = [0] * nthr
    for i, o in enumerate(own):
        b, c = item_at(i, nb, ng, rowwise); w[o] += min(mb, N - b * mb) * min(G, ncols - c * G)
    return max(w) / (sum(w) / nthr), nb * ng
def model(N, K, M, isa, v, nthr=2, gxs=None):
    t = machine.TABLE[isa].tiles[v]; MR, NR, MC = t.MR, t.NR, t.MC
    Mp, Kp = -(-M // NR) * NR, -(-K // NR) * NR
    mb = tiled.h_rows(N, K, M, v, isa); rowwise = mb > 0; mb = mb if rowwise else MC
    nb = -(-N // mb); nh, nx = Mp // NR, Kp // NR
    jh = tiled.h_panels(NR, nb, nh, rowwise)
    h = imb(N, nh, jh, nthr, mb, rowwise)
    gx = min(nx, -(-DX_ITEMS // max(nb, 1)), max(1, nx * NR // DX_COLS))
    if rowwise: gx = min(nx, max(1, -(-nthr // max(nb, 1))))
    JX = -(-nx // gx); gx = -(-nx // JX)
    d = imb(N, nx, JX, nthr, mb, rowwise)
    nk = -(-K // MC); jw = JB
    while jw > 1 and nk * -(-nh // jw) < H_ITEMS: jw //= 2
    w = imb(K, nh, jw, nthr, MC, False)
    return f"h {h[0]:.3f}/{h[1]} dx {d[0]:.3f}/{d[1]} (gx {gx}) dW {w[0]:.3f}/{w[1]}"
shapes = [(256,)*3, (512,)*3, (1000,)*3, (1024,)*3, (1536, 768, 1280), (2048, 512, 2048), (2048,)*3,
          (10000, 1024, 1024), (100000, 256, 256), (100000, 128, 128), (4096, 256, 256), (3000, 700, 900)]
for isa, v in (("avx2", "float32"), ("avx512", "float32"), ("avx2", "float64"), ("avx512", "float64")):
    print(isa, v)
    for s in shapes: print("  ", "x".join(map(str, s)), model(*s, isa, v))
print("--- dx candidates")
for isa, v in (("avx2", "float32"), ("avx512", "float32"), ("avx2", "float64"), ("avx512", "float64")):
    for s in shapes + [(768,)*3, (640,)*3, (1200,)*3, (1500,)*3, (3000,)*3]:
        N, K, M = s; t = machine.TABLE[isa].tiles[v]; NR, MC = t.NR, t.MC
        mb = tiled.h_rows(N, K, M, v, isa)
        if mb: continue
        nb = -(-N // MC); nx = -(-K // NR)
        gx0 = min(nx, -(-DX_ITEMS // max(nb, 1)), max(1, nx * NR // DX_COLS))
        out = []
        for gx in sorted({max(1, gx0 - 1), gx0, min(nx, gx0 + 1)}):
            JX = -(-nx // gx); g2 = -(-nx // JX)
            out.append(f"gx {gx}->{g2} JX {JX}: {imb(N, nx, JX, 2, MC, False)[0]:.3f}")
        print(isa, v, s, "; ".join(out))
