"""loopgrad.torch.loss on torch CUDA tensors (real GPU only), against torch autograd in float64."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import loopgrad.torch as lt  # noqa: E402
from loopgrad import fit, reference  # noqa: E402
from loopgrad.cuda import host  # noqa: E402
from _helpers import OUTPUTS, draw  # noqa: E402

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="torch has no CUDA device here"),
]
COMBOS = [c for c in itertools.product((False, True), repeat=3) if any(c)]


def on_gpu(arrays, requires=(True, True, True)):
    return [torch.from_numpy(a).cuda().requires_grad_(r) for a, r in zip(arrays, requires)]


@pytest.mark.parametrize("N,K,M", [(7, 3, 2), (37, 5, 3), (9, 20, 3)])   # fused and tiled kernels
def test_gradcheck_cuda(rng, N, K, M):
    arrays = draw(rng, N, K, M, np.float64)
    while np.abs(arrays[0] @ arrays[1]).min() < 1e-4:   # no h within gradcheck's reach of 0
        arrays = draw(rng, N, K, M, np.float64)
    x, W, y = on_gpu(arrays)
    assert torch.autograd.gradcheck(lt.loss, (x, W, y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("requires", COMBOS, ids=lambda c: "".join("xWy"[i] for i in range(3) if c[i]))
def test_each_requires_grad_combination_cuda(rng, dtype, requires):
    arrays = draw(rng, 1000, 8, 6, dtype)
    ts = on_gpu(arrays, requires)
    f = lt.loss(*ts, relu_grad_at_zero=0.5)
    assert f.device == ts[0].device and f.dtype == ts[0].dtype and f.shape == ()
    (-2 * f).backward()
    ref = reference.torch_autograd(*arrays, 0.5)
    bounds = reference.error_bounds(*arrays, ref)
    reference.check("f", f.item(), ref[0], bounds[0])
    for name, t, r, b, req in zip(OUTPUTS[1:], ts, ref[1:], bounds[1:], requires):
        assert (t.grad is not None) == req
        if req:
            assert t.grad.device == t.device and t.grad.dtype == t.dtype
            reference.check(name, t.grad.cpu().numpy() / -2, r, b)


def test_no_grad_retain_graph_and_double_backward_cuda(rng):
    x, W, y = on_gpu(draw(rng, 500, 4, 4, np.float32))
    with torch.no_grad():
        f0 = lt.loss(x, W, y)
    assert f0.grad_fn is None and f0.is_cuda
    f = lt.loss(x, W, y)
    assert f.item() == f0.item()
    f.backward(retain_graph=True)
    once = W.grad.clone()
    f.backward()
    torch.testing.assert_close(W.grad, 2 * once, rtol=1e-6, atol=0)
    dW, = torch.autograd.grad(lt.loss(x, W, y), W, create_graph=True)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        dW.sum().backward()


def test_inputs_read_in_place_on_the_gpu(rng, monkeypatch):
    # the kernels get the tensors' own addresses: no copy, no conversion
    seen = []
    run = host._run

    def spy(lib, like, stream, outs, ops, *rest):
        seen.append({o.p for o in ops})
        return run(lib, like, stream, outs, ops, *rest)
    monkeypatch.setattr(host, "_run", spy)
    x, W, y = on_gpu(draw(rng, 300, 5, 3, np.float32))
    lt.loss(x, W, y).backward()
    assert seen and {x.data_ptr(), W.data_ptr(), y.data_ptr()} <= seen[0]


@pytest.mark.parametrize("optimizer", fit.OPTIMIZERS)
def test_training_first_20_steps_cuda(optimizer):
    N, K, M = 20_000, 16, 16
    x, y, _, W0 = fit.make_data(N, K, M, seed=5, device="cuda")
    runs = fit.train(x, y, W0, optimizer, steps=20)
    cmp = fit.compare(runs, N, M)
    assert cmp["ok"], cmp
    assert runs[0].losses[-1] < runs[0].losses[0]
