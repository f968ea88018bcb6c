"""f's and dW's bits across the 8 choices of `want` for the generated skinny rows that LLVM
vectorizes (skinny.family None on this entry: 30 (K, M) with AVX-512, 16 with AVX2, 50
generic), both dtypes, one chunk of N rows for N = 1..70; prints the (K, M, dtype) whose
bits move and the range of N (dev/products_v40.md 41a).

    [ISA env] python dev/want_bits_v40.py [start step]
"""
import sys, numpy as np
from loopgrad import cpu
from loopgrad.cpu import skinny, rows
from loopgrad._inputs import WANT_ALL, WANT_DW, WANT_DX, WANT_DY
rng = np.random.default_rng(3)
wants = [w for w in range(8)]
bad = []
shapes = [(K, M) for K in range(1, 17) for M in range(1, 17) if K * M <= 16 and skinny.family(K, M) is None]
if len(sys.argv) > 1: shapes = shapes[int(sys.argv[1])::int(sys.argv[2])]
for K, M in shapes:
    for dt in (np.float64, np.float32):
        kerns = {w: cpu.row_kernel("grads", dt, False, K, M, w) for w in wants}
        for N in range(1, 71):
            x, W, y = (rng.standard_normal(s).astype(dt) for s in ((N, K), (K, M), (N, M)))
            res = {}
            for w in wants:
                outs = [np.full(s, np.nan, dt) for s in ((N, K), (K, M), (N, M))]
                partials = np.full((1, rows.plan(N, K, M)[2]), np.nan)
                f = kerns[w](*outs, partials, x, W, y, 0.5, N, w)
                res[w] = (f, outs[1] if w & WANT_DW else None)
            f0, dw0 = res[WANT_ALL]
            for w, (f, dw) in res.items():
                if f != f0 or (dw is not None and dw.tobytes() != dw0.tobytes()):
                    bad.append((K, M, np.dtype(dt).name, N, w))
byshape = {}
for K, M, d, N, w in bad:
    byshape.setdefault((K, M, d), set()).add(N)
for k, v in sorted(byshape.items()):
    print(k, "N:", min(v), "-", max(v), f"({len(v)})")
print("shapes", len(shapes), "bad cases", len(bad))
