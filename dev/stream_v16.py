"""loopgrad.grads with dx and dy stored past the caches (non-temporal) or not, in one process,
alternating: the threshold loopgrad.cpu._stream_from set to 0 (always) or past every call
(never).  2 threads, fresh results and out= (dev/products_v16.md 17g).

    python dev/stream_v16.py 1000000x16x16,100000x256x256 [rounds]
"""
import sys, time, numpy as np, numba
import loopgrad
import loopgrad.cpu as lc
from loopgrad.cpu import background
shapes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[1].split(",")]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 11
rng = np.random.default_rng(0)
for N, K, M in shapes:
    x, W, y = (rng.standard_normal(s, dtype=np.float32) for s in ((N, K), (K, M), (N, M)))
    out = tuple(np.empty(s, np.float32) for s in ((N, K), (K, M), (N, M)))
    loopgrad.grads(x, W, y); background.wait()
    T = {}
    for r in range(rounds):
        for mode, thr in (("cached", 1 << 62), ("streamed", 0)):
            lc._stream_from = thr
            for how, kw in (("out=", dict(out=out)), ("fresh", {})):
                loopgrad.grads(x, W, y, **kw) if r == 0 else None
                t = time.perf_counter(); loopgrad.grads(x, W, y, **kw)
                T.setdefault((mode, how), []).append(time.perf_counter() - t)
    lc._stream_from = None
    line = ", ".join(f"{m} {h} {np.median(v) * 1e3:.2f}" for (m, h), v in T.items())
    ratio = np.median(np.array(T["streamed", "out="]) / np.array(T["cached", "out="]))
    print(f"{N}x{K}x{M} ({numba.get_num_threads()} threads), ms: {line}; streamed/cached (out=) {ratio:.3f}")
