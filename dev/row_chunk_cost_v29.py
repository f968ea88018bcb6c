# The fixed cost of one row chunk (dev/products_v29.md 30a): a serial row kernel over N = 2048
# rows as one chunk and as 128 chunks of 16 rows; cycles at 2.6 GHz, one thread, in L2
import sys, time, numpy as np
from loopgrad import cpu
from loopgrad.cpu import rows
from loopgrad._inputs import WANT_ALL
GHZ = 2.6
for s in sys.argv[1:]:
    K, M = map(int, s.split("x")); N = 2048
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, K)).astype(np.float32); W = rng.standard_normal((K, M)).astype(np.float32)
    y = rng.standard_normal((N, M)).astype(np.float32)
    kern = cpu.row_kernel("grads", np.dtype("float32"), False, K, M, WANT_ALL)
    stride = rows.plan(N, K, M)[2]
    dx, dW, dy = np.empty_like(x), np.empty_like(W), np.empty_like(y)
    res = {}
    for cr in (N, 16):
        nch = -(-N // cr); part = rows.partials_buffer(nch, stride)
        for _ in range(20): kern(dx, dW, dy, part, x, W, y, 0.0, cr, WANT_ALL)
        best = 1e9
        for _ in range(200):
            t0 = time.perf_counter(); kern(dx, dW, dy, part, x, W, y, 0.0, cr, WANT_ALL); best = min(best, time.perf_counter() - t0)
        res[cr] = best
    per = (res[16] - res[N]) / (N // 16 - 1) * 1e9 * GHZ
    print(f"{K}x{M}: whole {res[N]/N*1e9*GHZ:.0f} cycles/row; a chunk costs {per:.0f} cycles = {per/(K*M):.2f} per K*M element")
