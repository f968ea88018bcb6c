"""Interleaved A/B of the generated skinny row kernels compiled without and with skinny.LLVM_OPTIONS.

    python dev/skinny_llvm_ab.py [float32|float64] ["2x8 1x16 ..."]

Every K·M ≤ 16 at N = 10⁶ unless shapes are given; parallel kernel, outputs reused, the two
builds timed alternately (median of 10 after a warm-up).  benchmarks/RESULTS.md, 2026-12-02.
"""
import sys, time, numpy as np
from numba import njit
from loopgrad.cpu import skinny, rows, jit, machine
T = np.dtype(sys.argv[1] if len(sys.argv) > 1 else "float32")
SH = [tuple(map(int, s.split("x"))) for s in sys.argv[2].split()] if len(sys.argv) > 2 else [(K, M) for K in range(1, 17) for M in range(1, 17) if K * M <= 16]
N = 10**6
bits = machine.entry().vector_bits
def build(K, M, llvm, tag):
    src = skinny._source(K, M, bits).replace("cache=True", "cache=False")
    mod = jit.load(f"skab_{tag}_{K}_{M}", src + f"\n# {tag}\n")
    with jit.settings(vector_bits=bits, llvm=llvm):
        return njit(rows.signature("grads", T), parallel=True)(mod._grads_parallel)
tot = {"old": 0.0, "new": 0.0}
for K, M in SH:
    ks = {"old": build(K, M, None, "old"), "new": build(K, M, skinny.LLVM_OPTIONS, "new")}
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(T) for s in ((N, K), (K, M), (N, M)))
    out = tuple(np.empty(s, T) for s in ((N, K), (K, M), (N, M)))
    R, nparts, stride = rows.plan(N, K, M)
    parts = rows.partials_buffer(nparts, stride)
    ts = {k: [] for k in ks}
    for r in range(11):
        for k, f in ks.items():
            t0 = time.perf_counter(); f(*out, parts, x, W, y, 0.0, R); ts[k].append(time.perf_counter() - t0)
    gb = T.itemsize * N * (2 * K + 2 * M) / 1e9
    m = {k: np.median(v[1:]) for k, v in ts.items()}
    ratio = np.median(np.array(ts["new"][1:]) / np.array(ts["old"][1:]))
    for k in m: tot[k] += m[k]
    print(f"{K}x{M}: old {m['old']*1e3:6.2f} ms {gb/m['old']:5.1f} GB/s  new {m['new']*1e3:6.2f} ms {gb/m['new']:5.1f} GB/s  new/old {ratio:.2f}", flush=True)
print("total ms", {k: round(v * 1e3, 1) for k, v in tot.items()})
