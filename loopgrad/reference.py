"""Reference implementations and the accuracy contract, shared by tests and benchmarks.

N rows, K inputs, M outputs.   x (N,K)  W (K,M)  y (N,M)

These use array libraries on purpose: they are what loopgrad is checked
against, never its compute path.

- `torch_autograd`: autograd of the notebook expression (the oracle).
- `numpy_hand`: the hand-derived formula in NumPy.
- `error_bounds`: how far a correct implementation may be from the exact
  answer, element by element, from the dtype and the reduction lengths.
- `check`: compare one output against the reference within its bound, with a
  diagnosable message.
"""

import numpy as np

# Tie conventions torch offers directly: relu'(0) = 0 (torch.relu), 0.5
# (torch.maximum splits ties, as in the notebook) and 1 (torch.clamp(min=0)).
_TORCH_RELU = {
    0.0: lambda h, torch: torch.relu(h),
    0.5: lambda h, torch: torch.maximum(h, torch.zeros((), dtype=h.dtype)),
    1.0: lambda h, torch: torch.clamp(h, min=0),
}

# The accuracy contract: the long sums (dW over rows, f over all elements)
# may run in the input dtype over blocks of at most this many terms, and must
# be carried in float64 across blocks.  loopgrad's CPU kernels use float64
# throughout, which is well inside it.
SUM_BLOCK = 512


def torch_autograd(x, W, y, relu_grad_at_zero=0.0, dtype="float64", form="trace"):
    """(f, dx, dW, dy) as NumPy arrays: torch autograd of the notebook expression.

    z = relu(x·W) − y, f = trace(zᵀz) (form="trace", the notebook's) or
    f = Σ z² (form="sum": the same function, but with an infinite z the
    trace's products with the identity make inf·0 = NaN across the row, where
    Σ z² keeps IEEE's answer; loopgrad follows Σ z²), with the relu whose subgradient at 0 is
    relu_grad_at_zero (any value in [0, 1]: the three torch ops for 0, 0.5 and
    1; otherwise a blend a·clamp + (1−a)·relu, whose subgradient at 0 is a).
    Computed in `dtype` (float64 by default) from the inputs as given.
    """
    import torch

    tdt = getattr(torch, dtype)
    xt, Wt, yt = (torch.as_tensor(np.ascontiguousarray(a)).to(tdt).requires_grad_()
                  for a in (x, W, y))
    h = torch.matmul(xt, Wt)
    a = float(relu_grad_at_zero)
    if a in _TORCH_RELU:
        r = _TORCH_RELU[a](h, torch)
    else:
        r = a * torch.clamp(h, min=0) + (1 - a) * torch.relu(h)
    z = r - yt
    f = torch.trace(torch.matmul(z.T, z)) if form == "trace" else torch.sum(z * z)
    f.backward()
    return (float(f.detach()), xt.grad.numpy(), Wt.grad.numpy(), yt.grad.numpy())


def numpy_hand(x, W, y, relu_grad_at_zero=0.0):
    """(f, dx, dW, dy): the hand-derived formula in NumPy, in the inputs' dtype."""
    h = x @ W
    z = np.maximum(h, 0) - y
    d = np.where(h > 0, 1.0, np.where(h == 0, relu_grad_at_zero, 0.0)).astype(h.dtype)
    g = 2 * z * d
    return (float(np.sum(z.astype(np.float64) ** 2)), g @ W.T, x.T @ g, -2 * z)


def _gamma(n, u):
    # Higham's γ_n = n·u / (1 − n·u): the relative error bound of an n-term sum of products
    nu = n * u
    return nu / (1 - nu) if nu < 1 else np.inf


def _exactly_integer(x, W, mantissa_bits):
    # True when every partial sum of x·W is an integer below 2^p: h is exact in any order
    if not (np.all(np.mod(x, 1) == 0) and np.all(np.mod(W, 1) == 0)):
        return False
    return bool((np.abs(x) @ np.abs(W)).max(initial=0) < 2.0 ** mantissa_bits)


_CHUNK = 1 << 14    # rows of x a pass of error_bounds takes: its N×M temporaries stay in cache


_NEAR_OVERFLOW = np.finfo(np.float64).max / 4  # a product sum past it may overflow


def error_bounds(x, W, y, ref):
    """Per-element bounds (f, dx, dW, dy) on |computed − exact| for a correct implementation.

    The model: h and dx are sums of K and M products in the input dtype; z, g
    and dy round once each; dW and f are sums carried in float64 across blocks
    of at most SUM_BLOCK terms (see above).  Each bound is Higham's worst case
    γ_n·Σ|terms| for that sum, plus the bound of the float64 reference `ref`
    itself (the same model with float64's unit roundoff), each rounding also an
    absolute η of half the smallest subnormal (gradual underflow).  Where h is within
    its error of 0 the ReLU mask is not decided by the inputs, and the bound
    admits either side.  Inputs made of integers whose products sum exactly
    (|x|·|W| < 2^mantissa) have exact h and no ambiguity, which lets tie tests
    check relu'(0) exactly.
    """
    # Non-finite inputs give non-finite outputs, which check() compares by
    # pattern; the finite outputs beside them are bounded by the finite inputs.
    x64, W64, y64 = (np.nan_to_num(np.asarray(a, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
                     for a in (x, W, y))
    # z not finite where y is not: there an undecided ReLU mask (below) leaves g anything
    # from 0 to ±inf, and the outputs summed from it are not bounded at all
    y_bad = ~np.isfinite(np.asarray(y, np.float64))
    info = np.finfo(np.asarray(x).dtype)
    exact_h = _exactly_integer(x64, W64, info.nmant + 1)
    N, K = x64.shape
    M = W64.shape[1]
    u64 = np.finfo(np.float64).eps / 2
    units = (info.eps / 2, u64)          # ours (the input dtype), then the reference's
    # gradual underflow: a rounding into the subnormals errs by up to half the smallest
    # subnormal, an absolute η beside the relative u (Higham, §2.1)
    etas = (float(info.smallest_subnormal) / 2, float(np.finfo(np.float64).smallest_subnormal) / 2)
    nb = min(N, SUM_BLOCK)
    aW = np.abs(W64)
    # per unit roundoff: γ of h's K terms, of dx's M terms, and of dW's and f's long sums
    # (SUM_BLOCK terms in that dtype, float64 across the blocks)
    gammas = [(u, eta, _gamma(K, u), _gamma(M, u),
               _gamma(nb, u) + _gamma(-(-N // max(nb, 1)), u64)) for u, eta in zip(units, etas)]
    g_amb = 0.0 if exact_h else _gamma(K, u64)
    g_f = _gamma(N * M, u64)
    f_bound = 0.0
    dx_bound, dy_bound = np.zeros((N, K)), np.zeros((N, M))
    dW_bound = np.zeros((K, M))
    # row chunks: every term but dW's is row by row, and dW's sums over the rows
    for r0 in range(0, N, _CHUNK):
        r1 = min(r0 + _CHUNK, N)
        ax = np.abs(x64[r0:r1])
        A = ax @ aW                      # |x|·|W| ≥ |h|
        Z = A + np.abs(y64[r0:r1])       # ≥ |z|
        ah = np.abs(x64[r0:r1] @ W64)
        ZZ = np.sum(Z * Z)
        for u, eta, g_K, g_M, sum_gamma in gammas:
            eh = 0.0 if exact_h else g_K * A + K * eta
            ez = eh + u * Z + eta        # relu and the subtraction round once
            # Where |h| is within h's own error of 0, the sign of relu'(h) is not
            # determined by the inputs at this precision: either choice is correct,
            # and g may be anything from 0 to 2z there.
            amb = ah <= eh + g_amb * A
            eg = 2 * (ez + u * Z + eta) + np.where(amb, 2 * (Z + ez), 0.0)
            eg = np.where(amb & y_bad[r0:r1], np.inf, eg)
            G = 2 * Z + eg               # ≥ |ĝ|
            f_bound += float(np.sum(2 * Z * ez + ez * ez) + g_f * ZZ)
            with np.errstate(invalid="ignore", over="ignore"):  # an unbounded g times a
                # zero of W or x: a NaN bound, which check() reads as unbounded
                dx_bound[r0:r1] += (eg + g_M * G) @ aW.T + M * eta
                dW_bound += ax.T @ (eg + sum_gamma * G) + (r1 - r0) * eta
                # where Σ|g||W| or Σ|x||g| itself overflows, a term's magnitude does, and
                # the answer depends on whether each product is fused with its sum (the
                # bound above, γ taken first, stays finite there): unbounded, as check()
                # admits (only where some such sum can reach the overflow threshold)
                if G.max(initial=0) * aW.max(initial=0) * M > _NEAR_OVERFLOW:
                    dx_bound[r0:r1] = np.where(np.isinf(G @ aW.T), np.inf, dx_bound[r0:r1])
                if ax.max(initial=0) * G.max(initial=0) * (r1 - r0) > _NEAR_OVERFLOW:
                    dW_bound = np.where(np.isinf(ax.T @ G), np.inf, dW_bound)
            dy_bound[r0:r1] += 2 * ez + 2 * u * Z + eta
    f, dx, dW, _ = ref
    for u in units:                      # the rounding of each output itself
        dx_bound += u * np.abs(dx)
        dW_bound += u * np.abs(dW)
    return f_bound, dx_bound, dW_bound, dy_bound


def check(name, got, ref, bound):
    """Raise AssertionError unless |got − ref| ≤ bound everywhere (NaN/inf must match exactly).

    The message names the output, its dtype and shape, the largest error, the
    largest error-to-bound ratio and the first mismatching elements.
    """
    got = np.asarray(got)
    g64 = got.astype(np.float64)
    ref = np.asarray(ref, np.float64)
    if g64.shape != ref.shape:
        raise AssertionError(f"{name}: shape {g64.shape}, expected {ref.shape}")
    bound = np.asarray(bound, np.float64)
    if (np.isfinite(ref).all() and np.isfinite(g64).all() and np.isfinite(bound).all()
            and np.all(np.abs(g64 - ref) <= bound * (1 + 1e-9))):
        return      # the common case, in fewer passes than the general one below
    finite = np.isfinite(ref)
    with np.errstate(invalid="ignore"):  # inf − inf where both are infinite: compared below
        err = np.where(finite, np.abs(g64 - ref), 0.0)
    same_special = np.where(finite, True, (g64 == ref) | (np.isnan(g64) & np.isnan(ref)))
    ok = same_special & np.where(finite, err <= bound * (1 + 1e-9), True)
    ok &= np.where(finite, np.isfinite(g64), True)
    # Where the bound is not finite (inf, or NaN from inf·0) the magnitudes of the terms
    # overflow, and the answer of a correct implementation depends on whether a product is
    # fused with its sum: 1.6e308 + 2·(−1.6e308) is −1.6e308 with an FMA (torch's BLAS)
    # and −inf with the product rounded first; inf + (−1.6e308)·1.6e308 is inf or NaN.
    # The contract bounds nothing there, and any result is admitted.
    ok |= ~np.isfinite(bound)
    if np.all(ok):
        return
    bad = np.argwhere(~ok) if ok.ndim else [()]
    ratio = np.where(finite, err / np.maximum(bound, np.finfo(np.float64).tiny), np.inf)
    pairs = ", ".join(f"{tuple(int(i) for i in ix)}: got {g64[tuple(ix)]!r} want "
                      f"{ref[tuple(ix)]!r}" for ix in bad[:4])
    raise AssertionError(
        f"{name} ({got.dtype}, shape {got.shape}): {len(bad)} element(s) out of bound; "
        f"max |err| {np.max(err):.3e}, max err/bound {np.max(ratio):.3e}; {pairs}")


def error_ratios(compute, N, K, M, seeds=(0, 1)):
    """Each output's error against torch float64 over torch float32's own, as a (4, 2) array
    of (mean, largest) ratios for f, dx, dW, dy, summed over standard normal float32 draws
    of x (N,K), W (K,M), y (N,M) with these seeds; compute(x, W, y) → (f, dx, dW, dy).

    The accuracy target of the tiled kernels (CPU and CUDA) is every ratio ≤ 1.5."""
    ours, theirs = np.zeros((4, 2)), np.zeros((4, 2))
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        got = compute(x, W, y)
        ref = torch_autograd(x, W, y, form="sum")
        t32 = torch_autograd(x, W, y, dtype="float32", form="sum")
        for i in range(4):
            e = np.abs(np.asarray(got[i], np.float64) - ref[i])
            t = np.abs(np.asarray(t32[i], np.float64) - ref[i])
            ours[i] += e.mean(), e.max()
            theirs[i] += t.mean(), t.max()
    return ours / theirs
