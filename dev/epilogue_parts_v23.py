"""The epilogue's step with parts of it changed (in cache, one thread, ns a 16-element step):
base (intrinsics.epilogue as it is), nof (no f), half (z² of the float32 z: other bits), g1
(g = t where h > 0, else 0: other bits at ties and NaN), zero (g as relu'(0) = 0 alone gives
it, valid for A0=0), noacc (f's sum replaced).  dev/products_v23.md 24d.

    [A0=0.5] python dev/epilogue_parts_v23.py base|nof|half|g1|zero|noacc
"""
import os, re, sys, time, inspect, numpy as np, numba
from numba import njit, types as nt
import loopgrad.cpu.intrinsics as I
src = inspect.getsource(I.epilogue).replace("@functools.lru_cache(maxsize=None)\n", "")
MODE = sys.argv[1]; A0 = float(os.environ.get("A0", "0.5"))
if MODE == "nof":
    src = src.replace("return builder.fmul(z, z), builder.fneg(t), gv", "return const(0.0), builder.fneg(t), gv")
    src = src.replace("z = builder.fsub(builder.fpext(hp, dt), builder.fpext(yv, dt))", "z = None")
elif MODE == "half":  # z² of the float32 z (2 converts, not 4): other bits
    src = src.replace("z = builder.fsub(builder.fpext(hp, dt), builder.fpext(yv, dt))", "z = None")
    src = src.replace("return builder.fmul(z, z), builder.fneg(t), gv", "return builder.fpext(builder.fmul(z32, z32), dt), builder.fneg(t), gv")
elif MODE == "zero":
    src = src.replace("gv = relu_grad(builder, h, zero32, t, tie, nan)", "gv = builder.select(builder.fcmp_unordered('>', h, zero32), t, zero32)")
elif MODE == "g1":
    src = src.replace("gv = relu_grad(builder, h, zero32, t, tie, nan)", "gv = builder.select(builder.fcmp_ordered('>', h, zero32), t, zero32)")
elif MODE == "noacc":  # z² computed, f's sum replaced by a store-free max (no chain)
    src = src.replace("builder.store(builder.fadd(builder.load(acc), zz), acc)", "builder.store(builder.fadd(zz, zz), acc)")
ns = dict(vars(I)); exec(src, ns)
epi = ns["epilogue"]("float32", 32)
P, PD, Ii = nt.CPointer(nt.float32), nt.CPointer(nt.float64), nt.int64
REP = 1000
@njit
def run(g2, y2, dy2, m, ldg, rows, want, a0):
    g, y, dy = I.pointer(g2), I.pointer(y2), I.pointer(dy2)
    fs2 = np.zeros(16); fs = I.pointer(fs2)
    for r in range(REP):
        epi(g, 0, ldg, 32, y, 0, m, dy, 0, rows, m, a0, want, fs, False)
    return fs2.sum()
rng = np.random.default_rng(0)
out = []
for m, ldg, rows in [(40, 64, 96), (64, 64, 96), (1536, 1536, 1)]:
    g = rng.standard_normal(96 * 64).astype(np.float32); y = rng.standard_normal(96 * 64).astype(np.float32); dy = np.empty_like(y)
    for want in (False, True):
        run(g.copy(), y, dy, m, ldg, rows, want, A0)
        ts = []
        for _ in range(9):
            gg = g.copy(); t = time.perf_counter(); run(gg, y, dy, m, ldg, rows, want, A0); ts.append(time.perf_counter() - t)
        out.append(f"m{m}{'g' if want else 'f'} {np.median(ts) / REP / (rows * -(-m // 16)) * 1e9:.2f}")
print(f"{MODE:6s}", " ".join(out), "ns/step")
