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
def trusted(f, W, dW, check_dW, big):
    """f if the input-dtype arithmetic (largest value `big`) cannot have overflowed where
    float64 would not, else NaN.  W, dW flat; dW checked where it was computed.

    f finite: h and z were finite.  Then |g| ≤ 2·√f, and each of dx's partial sums
    is at most ‖g[n,:]‖·‖W[k,:]‖ ≤ 2·√f·‖W‖ (Cauchy–Schwarz); an overflow in dW's
    sums would have left a non-finite dW, which d − d (NaN for inf and NaN) finds.
    """
    if not f - f == 0.0:
        return np.nan
    if 2.0 * np.sqrt(f) * max(np.sqrt(sum_squares(W)), 1.0) > 0.5 * big:
        return np.nan
    # a count of the elements where d − d is not 0 (inf and NaN): an integer sum, which
    # LLVM vectorizes; the float sum of d − d it replaces was one chain of dependent adds
    # (0.93 → 0.24 ms at 1024², serial after the kernel's parallel passes)
    bad = 0
    for i in range(dW.shape[0] if check_dW else 0):
        v = np.float64(dW[i])
        bad += (v - v) != 0.0
    return f if bad == 0 else np.nan
