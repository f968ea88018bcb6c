"""A fuzz of the extremes dev/fuzz_v40.py leaves out: float64 inputs scaled by 10¹⁰⁰–10¹⁶⁰
(gradients near float64's overflow), read-only inputs with `out=` partly given, torch
tensors (x a transposed view) through `grads` and through loopgrad.torch's op and
backward; each against torch autograd's bounds (Σ z²'s form) or the full call's bits
(dev/products_v40.md 41h).

    python dev/fuzz_extremes_v40.py SEED SECONDS
"""
import sys, time, numpy as np, torch, loopgrad
from loopgrad import reference
from loopgrad import torch as lt
rng = np.random.default_rng(int(sys.argv[1])); t_end = time.time() + float(sys.argv[2]); n = 0
def logu(a, b): return int(np.exp(rng.uniform(np.log(a), np.log(b + 1))))
while time.time() < t_end:
    dt = [np.float32, np.float64][rng.integers(2)]
    K, M = logu(1, 300), logu(1, 300); N = logu(1, max(1, min(50000, int(2e6 / (K + M)))))
    x, W, y = (rng.standard_normal(s) for s in ((N, K), (K, M), (N, M)))
    if dt == np.float64 and rng.random() < 0.5:
        s = 10.0 ** rng.uniform(100, 160); x, W = x * s, W * s
    x, W, y = (a.astype(dt) for a in (x, W, y))
    a0 = float(rng.choice([0.0, 0.5, 1.0]))
    desc = f"{N}x{K}x{M} {np.dtype(dt).name} a0={a0}"
    try:
        full = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
        with np.errstate(all="ignore"):
            ref = reference.torch_autograd(x, W, y, a0, form="sum")
            b = reference.error_bounds(x, W, y, ref)
        for nm, g, r, bb in zip(("f", "dx", "dW", "dy"), full, ref, b):
            reference.check(nm, g, r, bb)
        # read-only inputs, out= partly given
        xr, Wr, yr = (a.copy() for a in (x, W, y))
        for a in (xr, Wr, yr): a.setflags(write=False)
        dW = np.full((K, M), np.nan, dt)
        o = loopgrad.grads(xr, Wr, yr, relu_grad_at_zero=a0, out=(None, dW, None))
        assert o.dW is dW and np.array_equal(dW, full.dW, equal_nan=True) and np.array_equal(o.dx, full.dx, equal_nan=True)
        # torch tensors, a transposed view of x, through grads and the op
        xt = torch.from_numpy(np.ascontiguousarray(x.T)).T
        tg = loopgrad.grads(xt, torch.from_numpy(W), torch.from_numpy(y), relu_grad_at_zero=a0)
        assert np.array_equal(tg.dW.numpy(), full.dW, equal_nan=True) and (tg.f == full.f or np.isnan(full.f))
        ts = [xt.clone().requires_grad_(), torch.from_numpy(W).requires_grad_(), torch.from_numpy(y)]
        f = lt.loss(*ts, relu_grad_at_zero=a0); f.backward()
        assert np.array_equal(ts[0].grad.numpy(), full.dx, equal_nan=True) and np.array_equal(ts[1].grad.numpy(), full.dW, equal_nan=True)
    except Exception as e:
        print("FAIL", desc, type(e).__name__, str(e)[:300], flush=True)
    else:
        n += 1
        if n % 50 == 0: print("ok", n, desc, flush=True)
print("done", n)
