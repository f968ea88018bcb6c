"""The three-pass kernel's phases, one thread, as the serial driver runs them (dev/products_v15.md).

    python dev/phases_v15.py N|NxKxM [rounds]

Environment: AGAIN=1 the h items twice a round (REPACK=w|y|evictN[+what] between);
DWONLY=1 every dW block as ONLY (timing only); KCW=512 dW in blocks of 512 rows
(dev/products_v16.md 17c); NOPACKX=1 the h items read x in place (dev/products_v17.md 18a).

A copy of nests.py's `_grads_parallel` in Python over the compiled pieces (serial), with a
clock between its phases: packs of W and Wᵀ, h items (product + epilogue, x packed),
dx items, dW packs, dW items, the guard; against one torch.mm and the serial kernel whole.
"""
import sys, time, numpy as np, numba, torch
from loopgrad.cpu import tiled, machine, background
import os as _os
if _os.environ.get("HCOLS"):  # HCOLS=512: h items of 512 columns (tiled.H_COLS; dev/products_v17.md)
    tiled.H_COLS = int(_os.environ["HCOLS"])
import loopgrad
numba.set_num_threads(1); torch.set_num_threads(1)
import os
AGAIN = os.environ.get("AGAIN") == "1"  # AGAIN=1: the h items twice a round
DWONLY = os.environ.get("DWONLY") == "1"  # DWONLY=1: dW items without their float64 partial (timing only)
N, K, M = (int(v) for v in (sys.argv[1] + ("x" + sys.argv[1]) * 2).split("x")[:3]) if "x" not in sys.argv[1] else (int(v) for v in sys.argv[1].split("x"))
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
DT = np.dtype(os.environ.get("DTYPE", "float32")).type  # DTYPE=float64: that dtype's tile
e = machine.entry(); variant = tiled.variant(K, M, DT)
c = tiled.module(variant, e.isa); t3 = tiled.module(variant, e.isa, "three")
MR, NR, MC, KC, JH, T = c.MR, c.NR, c.MC, c.KC, c.JH, DT
KC = c.KC3 if min(K, M) > c.KC else c.KC  # the three-pass kernel's steps (its KB)
rng = np.random.default_rng(0)
x2, W2, y2 = (rng.standard_normal(s, dtype=DT) for s in ((N, K), (K, M), (N, M)))
x, W, y = x2.reshape(-1), W2.reshape(-1), y2.reshape(-1)
dx, dW, dy = (np.empty(a.size, DT) for a in (x, W, y))
Mp = (M + NR - 1) // NR * NR; Kp = (K + NR - 1) // NR * NR
pack = c.packs_x(K, Mp) and not os.environ.get('NOPACKX')  # NOPACKX=1: x read in place
Wp, Wtp = np.empty(K * Mp, T), np.empty(M * Kp, T)
part = np.empty((K + MR - 1) // MR * MR * Mp); g = np.empty((N + MR - 1) // MR * MR * Mp, T)
Np = (N + MR - 1) // MR * MR
ldg, pstr = (NR, Np * NR) if t3.G_PANELS else (Mp, NR)  # g's layout, as the driver's (dev/products_v19.md 20a)
KW = int(os.environ.get('KCW', KC))  # KCW=512: dW's blocks of 512 rows (dev/products_v16.md)
nbc = min(c.DWB * KC // KW, (N + KW - 1) // KW); xpb = (K + MR - 1) // MR * MR * KW
Gp, Xp = np.empty(nbc * KW * Mp, T), np.empty(nbc * xpb, T)
RP = os.environ.get("REPACK", "")
big = np.empty(int(RP.split("+")[0][5:] or 0) << 18 if RP.startswith("evict") else 0)  # evictN[+what]: N MiB, then warm what
def phases():
    t = [time.perf_counter()]
    for jr in range(Kp // NR):
        c.pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR)); c.pack_wt(Wtp, W, K, M, jr)
    t.append(time.perf_counter())
    nb = (N + MC - 1) // MC; nh, nx = Mp // NR, Kp // NR; gh = (nh + JH - 1) // JH
    f = 0.0
    Ap, Ct = np.empty(MC * KC, T), np.empty(MR * NR, T)
    for item in range(nb * gh):
        r0, j0 = item % nb * MC, item // nb * JH
        f += c.forward_block(g[r0 * ldg:], dy, x, Wp, y, 0.0, K, M, Mp, ldg, pstr, KC, r0, min(MC, N - r0), j0,
                             min(JH, nh - j0), Ap, Ct, True, 0, pack, False)
    t.append(time.perf_counter())
    if AGAIN:  # the h items once more, straight after (their data warm)
        if os.environ.get("REPACK") == "w":
            for jr in range(Kp // NR):
                c.pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
        if os.environ.get("REPACK") == "x":  # (x is packed in the items since 18a: a no-op)
            pass
        if RP.startswith("evict"):
            big[:] = 1.0
            warm = RP.split("+")[1] if "+" in RP else ""
            for name, a in (("y", y), ("d", dy), ("g", g), ("w", Wp), ("x", x)):
                if name in warm:
                    a.sum()
        if os.environ.get("REPACK") == "y":
            y[:] = y; dy[:] = 0; g[:] = 0
        t.append(time.perf_counter())
        for item in range(nb * gh):
            r0, j0 = item % nb * MC, item // nb * JH
            c.forward_block(g[r0 * ldg:], dy, x, Wp, y, 0.0, K, M, Mp, ldg, pstr, KC, r0, min(MC, N - r0), j0,
                            min(JH, nh - j0), Ap, Ct, True, 0, pack, False)
        t.append(time.perf_counter())
    gx = min(nx, (c.DX_ITEMS + nb - 1) // max(nb, 1), max(1, nx * NR // c.DX_COLS)); JX = (nx + gx - 1) // gx; gx = (nx + JX - 1) // JX
    Cb = np.empty(MC * JX * NR, T)  # dx_packed's tile buffer (dev/products_v19.md 20f)
    for item in range(nb * gx):
        r0, j0 = item % nb * MC, item // nb * JX
        t3.dx_packed(dx, g[r0 * ldg:], Wtp, K, M, ldg, pstr, KC, r0, min(MC, N - r0), j0, min(JX, nx - j0), Ct, Ap, Cb, False)
    t.append(time.perf_counter())
    nk = (K + MC - 1) // MC; njb = (Mp // NR + c.JB - 1) // c.JB
    tp = ti = 0.0
    for c0 in range(0, N, c.DWB * KC):  # chunks of DWB·KC rows, in blocks of KW (KCW=...)
        s = time.perf_counter()
        nbk = min(c.DWB * KC // KW, (N - c0 + KW - 1) // KW)
        for tt in range(nbk * (Mp // NR + nk)):
            b, u = tt // (Mp // NR + nk), tt % (Mp // NR + nk)
            pc = c0 + b * KW; kc = min(KW, N - pc)
            if u < Mp // NR:
                if not t3.G_PANELS: t3.pack_g(Gp[b * KW * Mp:], g, Mp, pc, kc, u)
            else:
                k0 = (u - Mp // NR) * MC; t3.pack_xt(Xp[b * xpb:], x, K, pc, kc, k0, min(MC, K - k0))
        s2 = time.perf_counter(); tp += s2 - s
        for item in range(nk * njb):
            kb, jb = item % nk, item // nk
            for b in range(nbk):
                pc = c0 + b * KW; kc = min(KW, N - pc); last = pc + kc == N
                block = (c.ONLY if last else c.FIRST) if pc == 0 else (c.LAST if last else c.MIDDLE)
                if DWONLY:  # every block as ONLY: no float64 tile, whole tiles straight into dW
                    block = c.ONLY
                G, gs = (g[pc * NR:], Np * NR) if t3.G_PANELS else (Gp[b * KW * Mp:], kc * NR)
                t3.dw_item(part, dW, Xp[b * xpb:], G, gs, M, Mp, kc, kb * MC,
                           min(MC, K - kb * MC), jb * c.JB, min(c.JB, Mp // NR - jb * c.JB), block, Ct)
        ti += time.perf_counter() - s2
    t.append(t[-1] + tp); t.append(t[-1] + ti)
    t.append(time.perf_counter())
    c.trusted(f, W, dW, True)
    t.append(time.perf_counter())
    return np.diff(t)
names = ["pack W,Wt", "h items"] + (["repack", "h again"] if AGAIN else []) + ["dx items", "dW packs", "dW items", "(py)", "guard"]
X, Wt = torch.from_numpy(x2), torch.from_numpy(W2)
out = (dx.reshape(N, K), dW.reshape(K, M), dy.reshape(N, M))
whole = lambda: loopgrad.grads(x2, W2, y2, out=out)
whole(); background.wait(); whole(); phases(); torch.mm(X, Wt)
R = {k: [] for k in names + ["whole", "mm"]}
for r in range(rounds):
    t0 = time.perf_counter(); torch.mm(X, Wt); R["mm"].append(time.perf_counter() - t0)
    for k, v in zip(names, phases()): R[k].append(v)
    t0 = time.perf_counter(); whole(); R["whole"].append(time.perf_counter() - t0)
mm = np.array(R["mm"])
for k in R: print(f"  {k:10s} {np.median(R[k]) * 1e3:8.3f} ms  ÷ mm {np.median(np.array(R[k]) / mm):.3f}")
