"""The tiled kernels' overflow guard, shared by their generated code and loopgrad.cpu.ordered.

The tiled kernels sum h, dx and dW in the input dtype; where that could have
overflowed and float64 would not, they return NaN and loopgrad.cpu recomputes
the call with the float64 row kernels.  `trusted` decides it.  Its sums are
written out in 16 partial sums, with no fast-math flag, so that its decision has
the same bits in every kernel that calls it (a cold call's ordered kernel and
the compiled tiled kernel must not decide differently near the threshold).
"""

import numpy as np
from numba import njit

from .intrinsics import squares_by_lane


@njit(nogil=True, cache=True)
def sum_squares(a):
    """Σ float64(a[i])², element i in partial sum i mod 16 (the last len mod 16 in a
    seventeenth), the sums added in a fixed tree: the same bits wherever it is compiled.
    The 16 sums in one vector (intrinsics.squares_by_lane: 4× faster than a scalar loop)."""
    n = a.shape[0]
    n16 = n - n % 16
    s = np.empty(16)
    squares_by_lane(a, n16, s)
    t = 0.0
    for i in range(n16, n):
        v = np.float64(a[i])
        t += v * v
    return ((((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])))
            + (((s[8] + s[9]) + (s[10] + s[11])) + ((s[12] + s[13]) + (s[14] + s[15])))) + t


@njit(nogil=True, cache=True)
def nonfinite(d):
    """The count of d's elements (flat) where d − d is not 0: inf and NaN.  An integer sum,
    which LLVM vectorizes, and whose value no order of the elements or split changes (the
    float sum of d − d it replaces was one chain of dependent adds: 0.93 → 0.24 ms at
    1024², serial after the kernel's parallel passes)."""
    bad = 0
    for i in range(d.shape[0]):
        v = np.float64(d[i])
        bad += (v - v) != 0.0
    return bad


@njit(nogil=True, cache=True)
def decide(f, w2, bad, big):
    """f if the input-dtype arithmetic (largest value `big`) cannot have overflowed where
    float64 would not, else NaN: w2 = sum_squares(W), bad = nonfinite(dW) where dW was
    computed (else 0).

    f finite: h and z were finite.  Then |g| ≤ 2·√f, and each of dx's partial sums
    is at most ‖g[n,:]‖·‖W[k,:]‖ ≤ 2·√f·‖W‖ (Cauchy–Schwarz); an overflow in dW's
    sums would have left a non-finite dW, which d − d (NaN for inf and NaN) finds.
    """
    if not f - f == 0.0:
        return np.nan
    if 2.0 * np.sqrt(f) * max(np.sqrt(w2), 1.0) > 0.5 * big:
        return np.nan
    return f if bad == 0 else np.nan


@njit(nogil=True, cache=True)
def trusted(f, W, dW, check_dW, big):
    """`decide` from W and dW (flat; dW checked where check_dW).  The three-pass kernel
    takes its two parts in parallel instead: ‖W‖² beside W's packs, dW's count split
    among the threads (the same decision)."""
    if not f - f == 0.0:
        return np.nan
    return decide(f, sum_squares(W), nonfinite(dW) if check_dW else 0, big)
