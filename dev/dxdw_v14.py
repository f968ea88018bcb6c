"""The three-pass dx and dW passes under parallel drivers of the script's own, items row-major or
column-group-major, JX 8, dW's packs and items apart (dev/products_v14.md 15f).

    python dev/dxdw_v14.py N ROUNDS THREADS
"""
import sys, time, numpy as np, numba, torch
from numba import njit, prange
from loopgrad.cpu import tiled, machine
T_ = int(sys.argv[3]); numba.set_num_threads(T_); torch.set_num_threads(T_)
e = machine.entry(); m = tiled.module("float32", e.isa, "three")
dx_packed, pack_g, pack_xt, dw_item, pack_wt = m.dx_packed, m.pack_g, m.pack_xt, m.dw_item, m.pack_wt
MR, NR, MC, KC, JB, DWB, DX_ITEMS = m.MR, m.NR, m.MC, m.KC, m.JB, m.DWB, m.DX_ITEMS
FIRST, MIDDLE, LAST, ONLY = m.FIRST, m.MIDDLE, m.LAST, m.ONLY
N=K=M=int(sys.argv[1]); Mp=(M+NR-1)//NR*NR; Kp=(K+NR-1)//NR*NR
rng=np.random.default_rng(0)
x = rng.standard_normal(N*K, dtype=np.float32); W = rng.standard_normal(K*M, dtype=np.float32)
g = np.zeros(((N+MR-1)//MR*MR)*Mp, np.float32); g[:N*Mp] = rng.standard_normal(N*Mp, dtype=np.float32)
dx = np.empty(N*K, np.float32); dW = np.empty(K*M, np.float32); part = np.empty(K*Mp)
Wtp = np.empty(M*Kp, np.float32)
for jr in range(Kp//NR): pack_wt(Wtp, W, K, M, jr)
@njit(parallel=True)
def dxpass(dx, g, Wtp, K, M, Mp, N, colmajor, JXf):
    nb = (N + MC - 1) // MC; nx = Kp // NR
    gx = min(nx, (DX_ITEMS + nb - 1) // max(nb, 1)) if JXf == 0 else (nx + JXf - 1) // JXf
    JX = (nx + gx - 1) // gx
    gx = (nx + JX - 1) // JX
    for item in prange(nb * gx):
        if colmajor:
            r0, j0 = item % nb * MC, item // nb * JX
        else:
            r0, j0 = item // gx * MC, item % gx * JX
        dx_packed(dx, g[r0 * Mp:], Wtp, K, M, Mp, r0, min(MC, N - r0), j0,
                  min(JX, nx - j0), np.empty(MR * NR, np.float32), np.empty(MC * KC, np.float32))
@njit(parallel=True)
def dwpass(part, dW, x, g, Gp, Xp, K, M, Mp, N, colmajor, JBx, dopack=True, doitems=True):
    nk = (K + MC - 1) // MC
    njb = (Mp // NR + JBx - 1) // JBx
    xpb = (K + MR - 1) // MR * MR * KC
    for c0 in range(0, N, DWB * KC):
        nbk = min(DWB, (N - c0 + KC - 1) // KC)
        npk = nbk * (Mp // NR + nk)
        if not dopack:
            npk = 0
        for t in prange(npk):
            b, u = t // (Mp // NR + nk), t % (Mp // NR + nk)
            pc = c0 + b * KC
            kc = min(KC, N - pc)
            if u < Mp // NR:
                pack_g(Gp[b * KC * Mp:], g, Mp, pc, kc, u)
            else:
                k0 = (u - Mp // NR) * MC
                pack_xt(Xp[b * xpb:], x, K, pc, kc, k0, min(MC, K - k0))
        nit = nk * njb
        if not doitems:
            nit = 0
        for item in prange(nit):
            if colmajor:
                kb, jb = item % nk, item // nk
            else:
                kb, jb = item // njb, item % njb
            Ct = np.empty(MR * NR, np.float32)
            for b in range(nbk):
                pc = c0 + b * KC
                kc = min(KC, N - pc)
                last = pc + kc == N
                block = (ONLY if last else FIRST) if pc == 0 else (LAST if last else MIDDLE)
                dw_item(part, dW, Xp[b * xpb:], Gp[b * KC * Mp:], M, Mp, kc, kb * MC,
                        min(MC, K - kb * MC), jb * JBx, min(JBx, Mp // NR - jb * JBx), block, Ct)
nbc = min(DWB, (N + KC - 1) // KC)
Gp = np.empty(nbc * KC * Mp, np.float32); Xp = np.empty(nbc * (K + MR - 1) // MR * MR * KC, np.float32)
G=torch.from_numpy(g[:N*Mp].reshape(N,Mp)[:, :M].copy()); Wt=torch.from_numpy(W.reshape(K,M)); X=torch.from_numpy(x.reshape(N,K))
V = {"mm": lambda: torch.mm(G, Wt.T)}
V["dx row"] = lambda: dxpass(dx, g, Wtp, K, M, Mp, N, False, 0)
V["dx col"] = lambda: dxpass(dx, g, Wtp, K, M, Mp, N, True, 0)
V["dx col JX8"] = lambda: dxpass(dx, g, Wtp, K, M, Mp, N, True, 8)
V["dW row"] = lambda: dwpass(part, dW, x, g, Gp, Xp, K, M, Mp, N, False, JB)
V["dW col"] = lambda: dwpass(part, dW, x, g, Gp, Xp, K, M, Mp, N, True, JB)
V["dW packs"] = lambda: dwpass(part, dW, x, g, Gp, Xp, K, M, Mp, N, True, JB, True, False)
V["dW items"] = lambda: dwpass(part, dW, x, g, Gp, Xp, K, M, Mp, N, True, JB, False, True)
for f in V.values(): f()
res={k:[] for k in V}
for r in range(int(sys.argv[2])):
    for k,f in V.items():
        t0=time.perf_counter(); f(); res[k].append(time.perf_counter()-t0)
mm=np.array(res["mm"])
print(N, f"{e.isa} {T_} threads, mm {np.median(mm)*1e3:.2f} ms")
for k in V:
    base = np.array(res[k.split()[0] + " row"]) if k != "mm" else mm
    print("  %-12s %.2f ms  ÷mm %.3f   paired ÷ row %.3f" % (k, np.median(res[k])*1e3, np.median(np.array(res[k])/mm), np.median(np.array(res[k])/base)))
