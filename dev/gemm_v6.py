"""Variant 6: the register-tiled micro-kernel that loopgrad/cpu/tiled.py is built on.

A BLIS-style float32 product C = A·B: B packed once in 32-column panels, A
packed per block of MC = 96 rows and KC = 512 steps in 12-row panels, and a
generated micro-kernel holding a 12×32 tile of C in 384 scalar accumulators.

Prediction: with LLVM's SLP vectorizer on (Numba leaves it off) the 384
scalars become 24 zmm accumulators, 24 FMAs per k step, and one core should
reach most of Zen 5's 2 × 16-lane FMA peak: 200+ GFLOP/s in L1, 300–400 on
two cores at 1024³ (OpenBLAS at full speed: ~450).

Measured (2026-11-26, this 2-core EPYC, `python dev/gemm_v6.py`):
- micro-kernel alone, one core, in L1: 6 GFLOP/s without SLP (scalar), 47
  with SLP but signed indices (Numba's negative-index selects turn the B
  loads into gathers), 260 with SLP and unsigned indices.  A zero written as
  `A[0] * 0` typed the accumulators float64 (int literal): vaddpd, 22 GFLOP/s.
- whole product, 2 threads, 1024³: 206–299 GFLOP/s (crude packing), NumPy here
  98–229 with this machine's default OPENBLAS_CORETYPE=Haswell (noisy).
Adopted, with the fusions and the measurements of dev/tiled_v7.md.

Run: python dev/gemm_v6.py [n]       (SLP=0 to see the scalar version)
"""
import os
import sys
import time

import numpy as np
from numba import njit, prange
from numba.core import config

MR, NR = 12, 32
FM = {"contract"}  # not reassoc: LLVM would vectorize the k sum instead (55 GFLOP/s)


def source():
    L = ["def mk(kc, Ap, ao, Bp, bo, Ct):"]
    L += [f"    c{i}_{j} = np.float32(0.0)" for i in range(MR) for j in range(NR)]
    L += ["    for p in range(np.uint64(0), kc):",
          f"        ap = ao + p * np.uint64({MR})",
          f"        bp = bo + p * np.uint64({NR})"]
    L += [f"        b{j} = Bp[bp + np.uint64({j})]" for j in range(NR)]
    for i in range(MR):
        L.append(f"        a = Ap[ap + np.uint64({i})]")
        L += [f"        c{i}_{j} += a * b{j}" for j in range(NR)]
    L += [f"    Ct[np.uint64({i * NR + j})] = c{i}_{j}" for i in range(MR) for j in range(NR)]
    return "\n".join(L)


ns = {"np": np}
exec(source(), ns)
config.SLP_VECTORIZE = int(os.environ.get("SLP", 1))  # read when a function compiles
mk = njit(fastmath=FM)(ns["mk"])


@njit(fastmath=FM)
def repeat(reps, kc, A, B, C):
    for _ in range(reps):
        mk(np.uint64(kc), A, np.uint64(0), B, np.uint64(0), C)


@njit(fastmath=FM, parallel=True)
def gemm(A, B, C, MC, KC):
    N, K = A.shape
    M = B.shape[1]
    u = np.uint64
    nj = (M + NR - 1) // NR
    Bp = np.zeros(nj * NR * K, A.dtype)  # [jr][p][NR]
    for jr in prange(nj):
        for p in range(K):
            for j in range(NR):
                if jr * NR + j < M:
                    Bp[(jr * K + p) * NR + j] = B[p, jr * NR + j]
    for ib in prange((N + MC - 1) // MC):
        Ap = np.empty(MC * KC, A.dtype)
        Ct = np.empty(MR * NR, A.dtype)
        i0 = ib * MC
        mc = min(MC, N - i0)
        nir = (mc + MR - 1) // MR
        for pc in range(0, K, KC):
            kc = min(KC, K - pc)
            for ir in range(nir):
                for p in range(kc):
                    for i in range(MR):
                        r = i0 + ir * MR + i
                        Ap[(ir * kc + p) * MR + i] = A[r, pc + p] if r < N else 0
            for jr in range(nj):
                for ir in range(nir):
                    mk(u(kc), Ap, u(ir * kc * MR), Bp, u((jr * K + pc) * NR), Ct)
                    for i in range(min(MR, mc - ir * MR)):
                        for j in range(min(NR, M - jr * NR)):
                            v = Ct[i * NR + j]
                            C[i0 + ir * MR + i, jr * NR + j] = v if pc == 0 else \
                                C[i0 + ir * MR + i, jr * NR + j] + v


def main():
    kc = 512
    A, B, C = np.ones(MR * kc, np.float32), np.ones(NR * kc, np.float32), np.empty(MR * NR, np.float32)
    repeat(1, kc, A, B, C)
    t = time.perf_counter()
    repeat(20000, kc, A, B, C)
    print(f"micro-kernel, one core, in L1: {20000 * 2 * MR * NR * kc / (time.perf_counter() - t) / 1e9:.0f} GFLOP/s")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    C = np.empty((n, n), np.float32)
    gemm(A, B, C, 96, 512)
    assert np.allclose(C, A @ B, rtol=1e-3, atol=1e-2)
    best = min(_timed(lambda: gemm(A, B, C, 96, 512)) for _ in range(5))
    print(f"{n}³ product, all threads: {2 * n**3 / best / 1e9:.0f} GFLOP/s "
          f"(NumPy: {2 * n**3 / min(_timed(lambda: A @ B) for _ in range(3)) / 1e9:.0f})")


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
