"""The three-pass h pass with MC 96, 144, 192, 288 rows an item (forward_block under a parallel
driver of its own, items column-group-major), paired (dev/products_v14.md 15c).

    python dev/h_mc_v14.py N ROUNDS THREADS
"""
import sys, time, os, numpy as np, numba, torch
from numba import njit, prange
from loopgrad.cpu import tiled, machine
T_ = int(sys.argv[3]); numba.set_num_threads(T_); torch.set_num_threads(T_)
e = machine.entry(); c = tiled.module("float32", e.isa)
fwd = c.forward_block
N=K=M=int(sys.argv[1]); NR=c.NR; Mp=(M+NR-1)//NR*NR; MR=c.MR; KC=c.KC; JH=c.JH
rng=np.random.default_rng(0)
x = rng.standard_normal(N*K, dtype=np.float32); W = rng.standard_normal(K*M, dtype=np.float32)
y = rng.standard_normal(N*M, dtype=np.float32); dy = np.empty(N*M, np.float32)
g = np.empty(((N+MR-1)//MR*MR)*Mp, np.float32)
Wp=np.empty(K*Mp,np.float32); c.pack_w(Wp, W, K, M, 0, K)
Xp=np.empty((N+MR-1)//MR*MR*K,np.float32)
for i_ in range((N+MR-1)//MR): c.pack_x(Xp, x, N, K, i_)
@njit(parallel=True)
def hpass(g, dy, x, Wp, y, K, M, Mp, N, Xp, MC):
    nb = (N + MC - 1) // MC; nh = Mp // NR; gh = (nh + JH - 1) // JH
    fb = np.empty(nb * gh)
    for item in prange(nb * gh):
        r0, j0 = item % nb * MC, item // nb * JH
        fb[item] = fwd(g[r0 * Mp:], dy, x, Wp, y, 0.0, K, M, Mp, r0, min(MC, N - r0), j0, min(JH, nh - j0),
                       np.empty(MC * KC, np.float32), np.empty(MR * NR, np.float32), True, 0, Xp)
    return fb.sum()
X=torch.from_numpy(x.reshape(N,K)); Wt=torch.from_numpy(W.reshape(K,M))
V = {"mm": lambda: torch.mm(X,Wt)}
for mc in (96, 144, 192, 288):
    V[f"MC{mc}"] = lambda mc=mc: hpass(g, dy, x, Wp, y, K, M, Mp, N, Xp, mc)
for f in V.values(): f()
res={k:[] for k in V}
for r in range(int(sys.argv[2])):
    for k,f in V.items():
        t0=time.perf_counter(); f(); res[k].append(time.perf_counter()-t0)
base=np.array(res["MC96"]); mm=np.array(res["mm"])
print(N, f"{T_} threads, mm {np.median(mm)*1e3:.2f} ms")
for k in V: print("  %-6s %.2f ms  ÷mm %.3f   ÷ MC96 (paired) %.3f" % (k, np.median(res[k])*1e3, np.median(np.array(res[k])/mm), np.median(np.array(res[k])/base)))
