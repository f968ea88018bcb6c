"""The three-pass h pass (forward_block with its epilogue) under a parallel driver of its own,
2 threads: JH 4, 8, 16 column panels an item, items row-major or column-group-major
(dev/products_v14.md 15d).

    python dev/h_items_v14.py N ROUNDS THREADS   # NUMBA_CPU_NAME/FEATURES force an entry;
    VAR=float64 (a tile of the entry), JHS=8,16 (panels an item; the first is the base)
"""
import sys, time, numpy as np, numba, torch
from numba import njit, prange
from loopgrad.cpu import tiled, machine
T_ = int(sys.argv[3]); numba.set_num_threads(T_); torch.set_num_threads(T_)
import os
e = machine.entry(); c = tiled.module(os.environ.get("VAR", "float32"), e.isa)
DT = np.float64 if os.environ.get("VAR", "float32").startswith("float64") else np.float32
fwd = c.forward_block
N=K=M=int(sys.argv[1]); NR=c.NR; Mp=(M+NR-1)//NR*NR; MC=c.MC; MR=c.MR; KC=c.KC
rng=np.random.default_rng(0)
x = rng.standard_normal(N*K, dtype=DT); W = rng.standard_normal(K*M, dtype=DT)
y = rng.standard_normal(N*M, dtype=DT); dy = np.empty(N*M, DT)
g = np.empty(((N+MR-1)//MR*MR)*Mp, DT)
Wp=np.empty(K*Mp,DT); c.pack_w(Wp, W, K, M, 0, K)
Xp=np.empty((N+MR-1)//MR*MR*K,DT)
for i_ in range((N+MR-1)//MR): c.pack_x(Xp, x, N, K, i_)
@njit(parallel=True)
def hpass(g, dy, x, Wp, y, K, M, Mp, N, Xp, JH, colmajor):
    nb = (N + MC - 1) // MC; nh = Mp // NR; gh = (nh + JH - 1) // JH
    fb = np.empty(nb * gh)
    for item in prange(nb * gh):
        if colmajor:
            r0, j0 = item % nb * MC, item // nb * JH
        else:
            r0, j0 = item // gh * MC, item % gh * JH
        fb[item] = fwd(g[r0 * Mp:], dy, x, Wp, y, 0.0, K, M, Mp, r0, min(MC, N - r0), j0, min(JH, nh - j0),
                       np.empty(MC * KC, DT), np.empty(MR * NR, DT), True, 0, Xp)
    return fb.sum()
X=torch.from_numpy(x.reshape(N,K)); Wt=torch.from_numpy(W.reshape(K,M))
V = {"mm": lambda: torch.mm(X,Wt)}
for jh in [int(j) for j in os.environ.get('JHS', '4,8,16').split(',')]:
    for cm in (False, True):
        V[f"JH{jh} {'col' if cm else 'row'}"] = lambda jh=jh, cm=cm: hpass(g, dy, x, Wp, y, K, M, Mp, N, Xp, jh, cm)
for f in V.values(): f()
res={k:[] for k in V}
for r in range(int(sys.argv[2])):
    for k,f in V.items():
        t0=time.perf_counter(); f(); res[k].append(time.perf_counter()-t0)
base=np.array(res[list(V)[1]]); mm=np.array(res["mm"])
print(N, f"{T_} threads, mm {np.median(mm)*1e3:.2f} ms")
for k in V: print("  %-10s %.2f ms  ÷mm %.3f   ÷ first (paired) %.3f" % (k, np.median(res[k])*1e3, np.median(np.array(res[k])/mm), np.median(np.array(res[k])/base)))
