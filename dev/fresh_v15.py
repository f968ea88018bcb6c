"""Fresh outputs against out=, 2 and 1 threads, one process (dev/products_v15.md 16h).

    python dev/fresh_v15.py 1000000x16x16
"""
import sys, time, numpy as np, numba, loopgrad
from loopgrad.cpu import background
N,K,M = map(int, sys.argv[1].split('x'))
rng=np.random.default_rng(0)
x,W,y=(rng.standard_normal(s,dtype=np.float32) for s in ((N,K),(K,M),(N,M)))
loopgrad.grads(x,W,y); background.wait()
out=(np.empty((N,K),np.float32),np.empty((K,M),np.float32),np.empty((N,M),np.float32))
res={}
for T in (2,1):
    numba.set_num_threads(T)
    for mode in ("fresh","out="):
        f=(lambda: loopgrad.grads(x,W,y)) if mode=="fresh" else (lambda: loopgrad.grads(x,W,y,out=out))
        for i in range(3): f()
        ts=[]
        for i in range(15):
            t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
        res[f"{T}t {mode}"]=np.median(ts)*1e3
print(loopgrad.__file__.split('/')[2], " ".join(f"{k} {v:.2f}" for k,v in res.items()))
