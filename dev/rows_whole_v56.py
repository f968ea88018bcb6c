"""rowvec.py's float32 rows as whole kernels (chunks.py's parallel driver, all Numba threads,
10⁶ rows from memory by default): the module's options against variants (VARIANTs as
dev/rows_incache_v56.py takes them), called in alternation call by call in one process;
best, median and the median of the paired ratios (dev/products_v56.md 57a).

    [ISA env] [A0=0.5] [STREAM=1] python dev/rows_whole_v56.py K M [rows=1000000] \
        [calls=100] VARIANT ...
"""
import os, sys, time, numpy as np, numba
from numba import cfunc
from loopgrad.cpu import chunks, rows
from loopgrad._inputs import WANT_ALL, STREAM
sys.path.insert(0, os.path.dirname(__file__))
from rows_incache_v56 import build, parse  # noqa: E402

K, M = int(sys.argv[1]), int(sys.argv[2])
N, CALLS = (int(v) for v in (sys.argv[3:5] + ["1000000", "100"][len(sys.argv[3:5]):]))
A0 = float(os.environ.get("A0", 0.5))
sig = chunks.row_signature("grads", np.float32)
drv = chunks.driver("grads", np.float32, True)


def as_row_function(intr):  # the C row function the drivers call
    def row(dx, dW, dy, x, W, y, a0, start, stop, K_, M_, want_):
        return intr(dx, dW, dy, x, W, y, a0, start, stop, want_)
    return cfunc(sig, nopython=True)(row)


kern = {name: build(K, M, WANT_ALL, *(({}, {}) if name == "module" else parse(name)),
                    as_row_function).address for name in ["module"] + sys.argv[5:]}
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
chunk_rows, nchunks, stride = rows.plan(N, K, M)
partials = rows.partials_buffer(nchunks, stride)
outs = (np.empty_like(x), np.empty_like(W), np.empty_like(y))
want = WANT_ALL | (STREAM if os.environ.get("STREAM", "1") == "1" else 0)
fs = {name: drv(addr, *outs, partials, x, W, y, A0, chunk_rows, want)
      for name, addr in kern.items()}
ts = {n: [] for n in kern}
for _ in range(CALLS):
    for name, addr in kern.items():
        s = time.perf_counter(); drv(addr, *outs, partials, x, W, y, A0, chunk_rows, want)
        ts[name].append(time.perf_counter() - s)
print(f"{N}x{K}x{M}, {numba.get_num_threads()} threads, a0 {A0}, {CALLS} calls each:")
for name, v in ts.items():
    r = np.median(np.array(ts["module"]) / np.array(v))
    v = np.array(v) * 1e3
    print(f"  {name:>28}: best {v.min():.3f} median {np.median(v):.3f} ms, paired "
          f"module/this {r:.3f}, f {fs[name]:.6g}")
