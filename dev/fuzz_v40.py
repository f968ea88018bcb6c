"""A fuzz of loopgrad.grads against torch autograd (float64) for a time budget: random shapes
across every kernel family (K, M log-uniform to 700, N to 3·10⁵ within 4·10⁶ elements a row
times N), both dtypes, relu'(0) 0, ½, 1, random `wrt`, inputs C-ordered, Fortran-ordered,
strided or transposed views, ties (small integers: h == 0 exactly), now and then a NaN or
an infinity in one input, inputs scaled up to where float32's sums overflow, or an empty
dimension; per case: torch's bounds, the `wrt` call's bits against the full call's, one
thread's against all threads', `out=`'s against fresh results, `loopgrad.loss` against
the full call's f to float64 rounding, and now and then loopgrad.torch's op (f and
backward) against `grads`' bits.  Prints FAIL lines and a count (dev/products_v40.md
41a, 41b).

    [ISA env: loopgrad.bench.isa.child_environment] [KM=5:8,5:16] python dev/fuzz_v40.py SEED SECONDS
"""
import os, sys, time, numpy as np, numba
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import loopgrad
from loopgrad import cpu
from loopgrad import reference
import torch
from loopgrad import torch as lt
seed, budget = int(sys.argv[1]), float(sys.argv[2])
rng = np.random.default_rng(seed)
t_end = time.time() + budget
n = 0
def logu(a, b):
    return int(np.exp(rng.uniform(np.log(a), np.log(b + 1))))
def layout(a):
    k = rng.integers(4)
    if k == 0: return a
    if k == 1: return np.asfortranarray(a)          # transposed storage
    if k == 2:                                      # strided rows and columns
        big = np.full((a.shape[0] * 2, a.shape[1] * 3), np.nan, a.dtype)
        big[::2, ::3] = a
        return big[::2, ::3]
    return np.ascontiguousarray(a.T).T              # a transposed view
while time.time() < t_end:
    dtype = [np.float32, np.float64][rng.integers(2)]
    K, M = logu(1, 700), logu(1, 700)
    if os.environ.get("KM"):  # KM=5:8,5:16: K and M uniform in those ranges (44b's rows)
        (k0, k1), (m0, m1) = (map(int, r.split(":")) for r in os.environ["KM"].split(","))
        K, M = int(rng.integers(k0, k1 + 1)), int(rng.integers(m0, m1 + 1))
    cap = int(4e6 / max(K + M, 1))
    N = logu(1, max(1, min(300000, cap)))
    x = rng.standard_normal((N, K)); W = rng.standard_normal((K, M)); y = rng.standard_normal((N, M))
    if rng.random() < 0.3:  # ties: small integers make exact zeros of h likely
        x = rng.integers(-2, 3, (N, K)).astype(float); W = rng.integers(-1, 2, (K, M)).astype(float)
    u = rng.random()
    if u < 0.08:  # one NaN or infinity in x, W or y
        a = [x, W, y][rng.integers(3)]
        if a.size:
            a.flat[rng.integers(a.size)] = rng.choice([np.nan, np.inf, -np.inf])
    elif u < 0.16:  # large values: float32's h, dx or dW sums near or past overflow
        s = 10.0 ** rng.uniform(8, 19)
        x, W = x * s, W * s ** 0.5
    elif u < 0.2:  # an empty dimension
        i = rng.integers(3)
        N, K, M = (0 if j == i else v for j, v in enumerate((N, K, M)))
        x, W, y = x[:N, :K], W[:K, :M], y[:N, :M]
    x, W, y = (a.astype(dtype) for a in (x, W, y))
    # float32 sums that may overflow: a call with dW recomputes in float64, one without (and
    # loss) keeps float32's h, so f differs by h's rounding (grads' and loss's docstrings)
    risky = dtype == np.float32 and 0.08 <= u < 0.16
    a0 = float(rng.choice([0.0, 0.5, 1.0]))
    wrt = [w for w in ("x", "W", "y") if rng.random() < 0.7]
    xs, Ws, ys = layout(x), layout(W), layout(y)
    desc = f"{N}x{K}x{M} {np.dtype(dtype).name} a0={a0} wrt={wrt} kernel={cpu.describe(N, K, M, dtype)}"
    try:
        r = loopgrad.grads(xs, Ws, ys, wrt=tuple(wrt), relu_grad_at_zero=a0)
        loopgrad.cpu.background.wait()
        full = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
        got = (full.f, full.dx, full.dW, full.dy)
        # autograd of Σ z² where an input is not finite (the notebook's trace(zᵀz) spreads
        # NaN over a row with an infinite z: docs/api.md's NaN rule); no torch check where
        # a true result passes float32's range (inf is then float32's answer)
        finite = all(np.isfinite(a).all() for a in (x, W, y))
        # float32's own h kept by a call without dW (and by loss) where the full call
        # recomputed in float64: sums that may overflow, or an infinite input
        loose = risky or (dtype == np.float32 and not finite)
        ref = reference.torch_autograd(x, W, y, a0, form="trace" if finite else "sum")
        top = max((np.abs(np.where(np.isfinite(a), a, 0)).max(initial=0) for a in
                   map(np.asarray, ref[1:])), default=0)
        checked = not (dtype == np.float32 and top > np.finfo(np.float32).max / 2)
        bounds = reference.error_bounds(x, W, y, ref)
        if checked:
            for name, g, rf, b in zip(("f", "dx", "dW", "dy"), got, ref, bounds):
                reference.check(name, g, rf, b)
        # the subset call: f and its gradients bitwise those of the full call
        same_f = np.array_equal(np.float64(r.f), np.float64(full.f), equal_nan=True)
        assert same_f or (loose and "W" not in wrt and np.isclose(r.f, full.f, rtol=2.0 ** -20)), \
            f"f differs with wrt: {r.f!r} against {full.f!r}"
        for name, g, gf in (("x", r.dx, full.dx), ("W", r.dW, full.dW), ("y", r.dy, full.dy)):
            if name in wrt and loose and "W" not in wrt:
                i = "xWy".index(name)  # float32's own sums: torch's bounds, not the bits
                if checked:
                    reference.check("d" + name, g, ref[1 + i], bounds[1 + i])
                else:  # past float32's range somewhere: the full call's to float32 rounding
                    a, b = np.asarray(g, np.float64), np.asarray(gf, np.float64)
                    ok = np.isfinite(a) & np.isfinite(b)
                    top = np.abs(b[ok]).max(initial=0)
                    assert np.allclose(a[ok], b[ok], rtol=2.0 ** -18, atol=2.0 ** -18 * top), \
                        f"d{name} far from the full call's"
            elif name in wrt:
                assert np.array_equal(g, gf, equal_nan=True), f"d{name} differs with wrt/layout"
            else:
                assert g is None, f"d{name} computed though not asked"
        # determinism across thread counts
        numba.set_num_threads(1)
        one = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        for a, b, nm in zip((one.f, one.dx, one.dW, one.dy), got, ("f", "dx", "dW", "dy")):
            assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True), f"{nm} differs on one thread"
        # out=
        outs = tuple(np.full(s, np.nan, dtype) for s in ((N, K), (K, M), (N, M)))
        o = loopgrad.grads(x, W, y, relu_grad_at_zero=a0, out=outs)
        for a, b, nm in zip((o.dx, o.dW, o.dy), got[1:], ("dx", "dW", "dy")):
            assert np.array_equal(a, b, equal_nan=True), f"{nm} differs with out="
        # the loss: full.f to float64 rounding (its own order of the same float64 terms)
        lf = loopgrad.loss(x, W, y)
        assert np.isclose(lf, full.f, rtol=2.0 ** -20 if loose else 4 * (N * M + 1) * 2.0 ** -53,
                          atol=0.0) or (
            np.isnan(lf) and np.isnan(full.f)) or lf == full.f, f"loss {lf!r} against f {full.f!r}"
        if rng.random() < 0.1:  # through loopgrad.torch: the op's f and backward
            ts = [torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(v in wrt)
                  for v, a in zip("xWy", (x, W, y))]
            tf = lt.loss(*ts, relu_grad_at_zero=a0)
            sub = loopgrad.grads(x, W, y, wrt=tuple(wrt), relu_grad_at_zero=a0)
            with np.errstate(over="ignore"):  # summed in float64, rounded once
                want_f = dtype(sub.f if wrt else lf)
            assert np.array_equal(tf.item(), want_f, equal_nan=True), f"torch op f {tf.item()!r}"
            if wrt:
                tf.backward()
                for v, t, g in zip("xWy", ts, sub[1:]):
                    if v in wrt:
                        assert np.array_equal(t.grad.numpy(), g, equal_nan=True), f"torch op d{v}"
    except Exception as e:
        print("FAIL", desc, type(e).__name__, str(e)[:300], flush=True)
        if os.environ.get("FUZZ_KEEP"):  # the failing case's inputs, for a reproduction
            np.savez(os.path.join(os.environ["FUZZ_KEEP"], f"fail_{seed}_{n}.npz"), x=x, W=W,
                     y=y, a0=a0, wrt=",".join(wrt))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    else:
        n += 1
        if n % 20 == 0:
            print("ok", n, desc, flush=True)
print("done", n, "cases", flush=True)
