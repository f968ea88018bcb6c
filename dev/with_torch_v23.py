"""loopgrad.grads at 256³ (2 threads), timed in three trials each after 20 torch matmuls and a
sleep (SLEEP, 0.25 s: the bench's settle), in a process that has imported torch
(dev/products_v23.md 24h).

    [SLEEP=0.25] python dev/with_torch_v23.py
"""
import os, sys, time, numpy as np, numba
import torch
import loopgrad
from loopgrad.cpu import background
numba.set_num_threads(2)
N = K = M = 256
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
loopgrad.grads(x, W, y); background.wait()
a = torch.randn(512, 512)
res = []
for trial in range(3):
    for _ in range(20): a @ a          # torch's threads busy
    time.sleep(float(os.environ.get("SLEEP", "0.25")))
    ts = []
    for _ in range(60):
        t = time.perf_counter(); loopgrad.grads(x, W, y, relu_grad_at_zero=0.5); ts.append(time.perf_counter() - t)
    res.append(f"{np.median(ts)*1e3:.3f}")
print("after torch:", " ".join(res))
