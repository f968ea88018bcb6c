"""A fuzz of loopgrad.grads against torch autograd (float64) for a time budget: random shapes
across every kernel family (K, M log-uniform to 700, N to 3·10⁵ within 4·10⁶ elements a row
times N), both dtypes, relu'(0) 0, ½, 1, random `wrt`, inputs C-ordered, Fortran-ordered,
strided or transposed views, ties (small integers: h == 0 exactly); per case: torch's
bounds, the `wrt` call's bits against the full call's, one thread's against all threads',
`out=`'s against fresh results.  Prints FAIL lines and a count (dev/products_v40.md 41a).

    [ISA env: loopgrad.bench.isa.child_environment] python dev/fuzz_v40.py SEED SECONDS
"""
import os, sys, time, numpy as np, numba
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import loopgrad
from loopgrad import cpu
from _helpers import assert_matches_torch
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
    cap = int(4e6 / max(K + M, 1))
    N = logu(1, max(1, min(300000, cap)))
    x = rng.standard_normal((N, K)); W = rng.standard_normal((K, M)); y = rng.standard_normal((N, M))
    if rng.random() < 0.3:  # ties: small integers make exact zeros of h likely
        x = rng.integers(-2, 3, (N, K)).astype(float); W = rng.integers(-1, 2, (K, M)).astype(float)
    x, W, y = (a.astype(dtype) for a in (x, W, y))
    a0 = float(rng.choice([0.0, 0.5, 1.0]))
    wrt = [w for w in ("x", "W", "y") if rng.random() < 0.7]
    xs, Ws, ys = layout(x), layout(W), layout(y)
    desc = f"{N}x{K}x{M} {np.dtype(dtype).name} a0={a0} wrt={wrt} kernel={cpu.describe(N, K, M, dtype)}"
    try:
        r = loopgrad.grads(xs, Ws, ys, wrt=tuple(wrt), relu_grad_at_zero=a0)
        loopgrad.cpu.background.wait()
        full = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
        got = (full.f, full.dx, full.dW, full.dy)
        assert_matches_torch(got, x, W, y, relu_grad_at_zero=a0)
        # the subset call: f and its gradients bitwise those of the full call
        assert np.array_equal(np.float64(r.f), np.float64(full.f)) or (np.isnan(r.f) and np.isnan(full.f)), "f differs with wrt"
        for name, g, gf in (("x", r.dx, full.dx), ("W", r.dW, full.dW), ("y", r.dy, full.dy)):
            if name in wrt:
                assert np.array_equal(g, gf), f"d{name} differs with wrt/layout"
            else:
                assert g is None, f"d{name} computed though not asked"
        # determinism across thread counts
        numba.set_num_threads(1)
        one = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        for a, b, nm in zip((one.f, one.dx, one.dW, one.dy), got, ("f", "dx", "dW", "dy")):
            assert np.array_equal(np.asarray(a), np.asarray(b)), f"{nm} differs on one thread"
        # out=
        outs = tuple(np.full(s, np.nan, dtype) for s in ((N, K), (K, M), (N, M)))
        o = loopgrad.grads(x, W, y, relu_grad_at_zero=a0, out=outs)
        for a, b, nm in zip((o.dx, o.dW, o.dy), got[1:], ("dx", "dW", "dy")):
            assert np.array_equal(a, b), f"{nm} differs with out="
    except Exception as e:
        print("FAIL", desc, type(e).__name__, str(e)[:300], flush=True)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    else:
        n += 1
        if n % 20 == 0:
            print("ok", n, desc, flush=True)
print("done", n, "cases", flush=True)
