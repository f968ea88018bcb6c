"""loopgrad.torch.loss, the autograd Function, against torch autograd of the notebook expression.

Every case of the core suite (random shapes, ties, empty dimensions, NaN and
inf, layouts, the notebook) goes through the Function here too, and
gradcheck, the requires_grad combinations and the graph situations (no_grad,
retain_graph, twice in a graph, inside a larger graph, double backward).
"""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import loopgrad  # noqa: E402
import loopgrad.torch as lt  # noqa: E402
from loopgrad import api, cpu, reference  # noqa: E402
from _helpers import OUTPUTS, assert_matches_torch, draw  # noqa: E402
from test_notebook import notebook_inputs  # noqa: E402
from test_random import SHAPES  # noqa: E402
from test_ties import CONVENTIONS, integer_inputs  # noqa: E402

DTYPES = [np.float32, np.float64]
COMBOS = [c for c in itertools.product((False, True), repeat=3) if any(c)]


def through_function(x, W, y, a0=0.0, requires=(True, True, True), scale=1.0):
    """(f, dx, dW, dy) as NumPy, from backward of scale·loopgrad.torch.loss (None: no grad asked)."""
    ts = [torch.from_numpy(np.array(a)).requires_grad_(r) for a, r in zip((x, W, y), requires)]
    f = lt.loss(*ts, relu_grad_at_zero=a0)
    assert f.shape == () and f.dtype == ts[0].dtype and f.requires_grad
    (scale * f).backward()
    grads = []
    for t, r in zip(ts, requires):
        assert (t.grad is not None) == r
        if r:
            assert t.grad.dtype == t.dtype and t.grad.shape == t.shape
        grads.append(None if t.grad is None else t.grad.numpy() / scale)
    return (f.item(), *grads)


# ------------------------------------------------- the core suite, through the Function

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,K,M", SHAPES)
def test_core_shapes(rng, N, K, M, dtype):
    x, W, y = draw(rng, N, K, M, dtype)
    assert_matches_torch(through_function(x, W, y), x, W, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a0", CONVENTIONS)
def test_core_ties(rng, dtype, a0):
    x, W, y = integer_inputs(rng, 503, 3, 5, dtype)
    assert np.mean(x.astype(np.float64) @ W == 0) > 0.1
    assert_matches_torch(through_function(x, W, y, a0), x, W, y, a0)


@pytest.mark.parametrize("N,K,M", [(0, 3, 2), (4, 0, 2), (4, 3, 0), (0, 0, 0)])
@pytest.mark.parametrize("a0", [0.0, 0.5, 1.0])
def test_core_empty_dimensions(rng, N, K, M, a0):
    x, W, y = draw(rng, N, K, M, np.float64)
    assert_matches_torch(through_function(x, W, y, a0), x, W, y, a0)


@pytest.mark.parametrize("where,value", [("x", np.nan), ("x", np.inf), ("W", -np.inf),
                                         ("y", np.nan), ("y", np.inf)])
def test_core_nan_and_inf(rng, where, value):
    x, W, y = draw(rng, 9, 3, 4, np.float32)
    {"x": x, "W": W, "y": y}[where][1, 2] = value
    got = through_function(x, W, y, 0.5)
    assert_matches_torch(got, x, W, y, 0.5, form="sum")  # Σ z²: see tests/test_special.py
    assert not all(np.isfinite(a).all() for a in got)


@pytest.mark.parametrize("a0", [0.0, 0.5])
def test_core_notebook(a0):
    x, W, y = (t.numpy() for t in notebook_inputs())
    got = through_function(x, W, y, a0)
    assert round(got[0], 4) == 99.9048
    assert_matches_torch(got, x, W, y, a0)


def test_core_layouts(rng):
    # transposed, strided and non-leaf inputs: copied once by loopgrad, same numbers
    x, W, y = draw(rng, 301, 7, 5, np.float64)
    xt = torch.from_numpy(np.ascontiguousarray(x.T)).requires_grad_()
    Wb = torch.zeros(7, 15, dtype=torch.float64)
    Wb[:, ::3] = torch.from_numpy(W)
    Wb.requires_grad_()
    yt = torch.from_numpy(y).requires_grad_()
    f = lt.loss(xt.T, Wb[:, ::3], yt)
    f.backward()
    got = (f.item(), xt.grad.T.numpy(), Wb.grad[:, ::3].numpy(), yt.grad.numpy())
    assert_matches_torch(got, x, W, y)
    assert torch.count_nonzero(Wb.grad).item() == torch.count_nonzero(Wb.grad[:, ::3]).item()


# ------------------------------------------------------------- gradcheck, requires_grad

@pytest.mark.parametrize("N,K,M", [(1, 1, 1), (7, 3, 2), (10, 4, 4), (37, 5, 3)])
@pytest.mark.parametrize("a0", [0.0, 0.5, 1.0])
def test_gradcheck(rng, N, K, M, a0):
    # no h within reach of gradcheck's steps (1e-6) of 0, where finite differences break
    arrays = draw(rng, N, K, M, np.float64)
    while np.abs(arrays[0] @ arrays[1]).min() < 1e-4:
        arrays = draw(rng, N, K, M, np.float64)
    x, W, y = (torch.from_numpy(a).requires_grad_() for a in arrays)
    assert torch.autograd.gradcheck(lambda x, W, y: lt.loss(x, W, y, a0), (x, W, y))


@pytest.mark.parametrize("requires", COMBOS, ids=lambda c: "".join("xWy"[i] for i in range(3) if c[i]))
def test_gradcheck_each_requires_grad_combination(rng, requires):
    x, W, y = (torch.from_numpy(a).requires_grad_(r)
               for a, r in zip(draw(rng, 13, 4, 3, np.float64), requires))
    assert torch.autograd.gradcheck(lt.loss, (x, W, y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("requires", COMBOS, ids=lambda c: "".join("xWy"[i] for i in range(3) if c[i]))
@pytest.mark.parametrize("scale", [1.0, -2.5])
def test_each_requires_grad_combination(rng, dtype, requires, scale):
    x, W, y = draw(rng, 211, 6, 5, dtype)
    got = through_function(x, W, y, 0.5, requires, scale)
    ref = reference.torch_autograd(x, W, y, 0.5)
    bounds = reference.error_bounds(x, W, y, ref)
    for name, g, r, b in zip(OUTPUTS, got, ref, bounds):
        if g is not None:
            reference.check(name, g, r, b)
    # and the notebook expression's own autograd, in the inputs' dtype, to its rounding
    ts = [torch.from_numpy(a.copy()).requires_grad_(r) for a, r in zip((x, W, y), requires)]
    z = torch.maximum(ts[0] @ ts[1], torch.tensor(0, dtype=ts[0].dtype)) - ts[2]
    (scale * torch.trace(z.T @ z)).backward()
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for g, t, r in zip(got[1:], ts, ref[1:]):
        if g is not None:
            np.testing.assert_allclose(g, t.grad.numpy() / scale, rtol=rtol,
                                       atol=rtol * np.abs(r).max())


# ------------------------------------------------------------------------ graphs

def make(rng, N=50, K=4, M=3, dtype=np.float64, requires=True):
    return tuple(torch.from_numpy(a).requires_grad_(requires) for a in draw(rng, N, K, M, dtype))


def expression(x, W, y):
    return ((torch.relu(x @ W) - y) ** 2).sum()


def forbid_gradient_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("gradient work where only the forward was needed")
    monkeypatch.setattr(api, "grads", refuse)


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_grad_runs_the_forward_only(rng, monkeypatch, dtype):
    x, W, y = make(rng, dtype=dtype)
    with_grad = lt.loss(x, W, y).item()
    want = float(dtype(loopgrad.loss(x, W, y)))
    # loopgrad.loss and loopgrad.grads may add f's terms in different orders
    # (the generated kernels for K·M ≤ 16): equal to float64 rounding, not bitwise
    assert with_grad == pytest.approx(want, rel=float(4 * np.finfo(dtype).eps), abs=0)
    forbid_gradient_work(monkeypatch)
    for ctx in (torch.no_grad, torch.inference_mode):
        with ctx():
            f = lt.loss(x, W, y)
        assert not f.requires_grad and f.grad_fn is None
        assert f.dtype == x.dtype and f.item() == want
    f = lt.loss(*(t.detach() for t in (x, W, y)))  # grad mode on, nothing requires grad
    assert f.grad_fn is None and f.item() == want


def test_retain_graph(rng):
    x, W, y = make(rng)
    f = lt.loss(x, W, y)
    f.backward(retain_graph=True)
    first = [t.grad.clone() for t in (x, W, y)]
    f.backward(retain_graph=True)
    (2 * f).backward()           # a scaled third pass through the same saved gradients
    for t, g in zip((x, W, y), first):
        torch.testing.assert_close(t.grad, 4 * g, rtol=1e-14, atol=0)
    g = lt.loss(x, W, y)
    g.backward()
    with pytest.raises(RuntimeError, match="second time"):
        g.backward()             # without retain_graph the saved gradients are freed


def test_twice_in_one_graph(rng):
    x, W, y = make(rng)
    x2, _, y2 = make(rng)
    f = lt.loss(x, W, y) + 2 * lt.loss(x2, W, y2) + lt.loss(x, W, y)
    f.backward()
    ours = [t.grad.clone() for t in (x, W, y, x2, y2)]
    for t in (x, W, y, x2, y2):
        t.grad = None
    (2 * expression(x, W, y) + 2 * expression(x2, W, y2)).backward()
    for o, t in zip(ours, (x, W, y, x2, y2)):
        torch.testing.assert_close(o, t.grad, rtol=1e-12, atol=1e-12)


def test_part_of_a_larger_graph(rng):
    # x and W come out of other ops; the loss is scaled and added to another term
    a, B, y = make(rng, 40, 6, 5)
    B = B[:, :3].detach().requires_grad_()            # a (40,6) @ B (6,3) = x (40,3)
    V = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                    requires_grad=True)

    def total(loss_fn):
        x = torch.tanh(a @ B)
        W = V * 1.5
        return loss_fn(x, W, y) * 3 + (W ** 2).sum() + x.sum()

    total(lt.loss).backward()
    ours = [t.grad.clone() for t in (a, B, V, y)]
    for t in (a, B, V, y):
        t.grad = None
    total(expression).backward()
    for o, t in zip(ours, (a, B, V, y)):
        torch.testing.assert_close(o, t.grad, rtol=1e-12, atol=1e-12)


def test_double_backward_is_refused_clearly(rng):
    x, W, y = make(rng)
    dW, = torch.autograd.grad(lt.loss(x, W, y), W, create_graph=True)
    torch.testing.assert_close(dW.detach(), loopgrad.grads(x, W, y).dW)  # first order: fine
    with pytest.raises(RuntimeError, match="first derivatives only"):
        dW.sum().backward()
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.gradgradcheck(lt.loss, make(rng, 5, 2, 2))
    assert "double backward is not supported" in lt.loss.__doc__


# ------------------------------------------------------------- dtypes, memory, errors

@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_and_value_of_f(rng, dtype):
    x, W, y = make(rng, 3001, 5, 4, dtype)
    f = lt.loss(x, W, y)
    want = loopgrad.grads(x, W, y).f   # summed in float64, rounded once to the dtype
    assert f.dtype == x.dtype and f.device == x.device and f.item() == float(dtype(want))


def test_f_past_float32s_range_is_inf_as_in_torch(rng):
    # f is summed in float64 and rounded once to float32: past float32's range that is inf,
    # torch's own answer (torch.scalar_tensor had refused the value: a RuntimeError)
    x, W, y = (torch.from_numpy(a) for a in draw(rng, 30, 5, 4, np.float32, scale=1e12))
    assert loopgrad.grads(x, W, y).f > float(np.finfo(np.float32).max)
    assert torch.isinf(expression(x, W, y))
    f = lt.loss(x, W, y)  # the forward alone
    assert f.dtype == torch.float32 and torch.isinf(f)
    xr, Wr = x.clone().requires_grad_(), W.clone().requires_grad_()
    f = lt.loss(xr, Wr, y)
    f.backward()
    want = loopgrad.grads(x, W, y, wrt=("x", "W"))
    assert torch.isinf(f) and xr.grad.numpy().tobytes() == want.dx.numpy().tobytes() \
        and Wr.grad.numpy().tobytes() == want.dW.numpy().tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_contiguous_inputs_are_read_in_place(rng, monkeypatch, dtype):
    # the kernel receives the tensors' own memory: no copy on the way in
    seen = []
    kernel = cpu.row_kernel

    def spy(*args, **kwargs):
        k = kernel(*args, **kwargs)

        def run(*a):
            seen.append([v.ctypes.data for v in a if isinstance(v, np.ndarray)])
            return k(*a)
        return run
    monkeypatch.setattr(cpu, "row_kernel", spy)
    x, W, y = make(rng, 500, 3, 2, dtype)
    lt.loss(x, W, y).backward()
    with torch.no_grad():
        lt.loss(x, W, y)
    assert len(seen) == 2
    for ptrs in seen:
        assert ptrs[-3:] == [x.data_ptr(), W.data_ptr(), y.data_ptr()]


@pytest.mark.parametrize("dtype", DTYPES)
def test_grads_on_tensors_is_zero_copy(rng, monkeypatch, dtype):
    # loopgrad.grads on torch CPU tensors: torch tensors of the same dtype that share
    # memory with the NumPy arrays loopgrad allocated for the kernel to write
    allocated = []
    empty = np.empty

    def recording_empty(*args, **kwargs):
        a = empty(*args, **kwargs)
        allocated.append(a)
        return a
    x, W, y = make(rng, 400, 5, 3, dtype)
    monkeypatch.setattr(np, "empty", recording_empty)
    got = loopgrad.grads(x, W, y)
    monkeypatch.undo()
    outs = got[1:]
    for t, like in zip(outs, (x, W, y)):
        assert isinstance(t, torch.Tensor) and t.dtype == like.dtype and t.device == like.device
        assert not t.untyped_storage().resizable()   # external memory: not torch's allocator
        assert sum(np.shares_memory(t.numpy(), a) for a in allocated) == 1
    assert assert_matches_torch(got, *(t.detach().numpy() for t in (x, W, y))) is not None


def test_errors(rng):
    x, W, y = make(rng, 5, 3, 2)
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        lt.loss(x.detach().numpy(), W, y)
    with pytest.raises(ValueError, match="relu_grad_at_zero"):
        lt.loss(x, W, y, relu_grad_at_zero=2.0)
    with pytest.raises(TypeError, match="same dtype"):
        lt.loss(x, W.float(), y)
    with pytest.raises(ValueError, match="shapes do not match"):
        lt.loss(x, W, y[:, :1])


def test_inputs_untouched(rng):
    x, W, y = make(rng)
    before = [t.detach().clone() for t in (x, W, y)]
    lt.loss(x, W, y).backward()
    for t, b in zip((x, W, y), before):
        assert torch.equal(t.detach(), b)


def test_module_uses_real_torch():
    assert lt.torch is torch and loopgrad.torch is lt


# ------------------------------------------------------------- the registered op

@pytest.mark.parametrize("want", [7, 2, 5, 0])
def test_opcheck(rng, want):
    # schema, fake (meta) kernel, autograd registration, AOT dispatch (static and dynamic)
    x, W, y = make(rng, N=20, K=5, M=4)
    for a, bit in zip((x, W, y), (1, 2, 4)):
        a.requires_grad_(bool(want & bit))
    torch.library.opcheck(torch.ops.loopgrad.loss.default, (x, W, y, 0.5, want))


def test_gradcheck_through_the_op(rng):
    # the registered op's own autograd (eager calls take the Function; torch.compile the op)
    x, W, y = make(rng, N=12, K=5, M=4)
    assert torch.autograd.gradcheck(
        lambda a, b, c: torch.ops.loopgrad.loss(a, b, c, 0.0, 7)[0], (x, W, y))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_keeps_the_op_in_one_graph(rng, backend):
    x, W, y = make(rng, N=64, K=6, M=5)

    def step(x, W, y):  # loopgrad's loss among torch ops, inputs that come out of other ops
        return 0.5 * lt.loss(torch.tanh(x), 2.0 * W, y + 1.0) + (W ** 2).sum()

    explain = torch._dynamo.explain(step)(x, W, y)
    assert explain.graph_break_count == 0 and explain.graph_count == 1
    eager = torch.autograd.grad(step(x, W, y), (x, W, y))
    compiled = torch.compile(step, fullgraph=True, backend=backend)
    got = torch.autograd.grad(compiled(x, W, y), (x, W, y))
    for a, b in zip(got, eager):  # Inductor may fuse the torch ops around it differently
        assert torch.equal(a, b) if backend == "aot_eager" else torch.allclose(a, b, rtol=1e-12, atol=0)


def test_backward_computes_only_what_requires_grad(rng, monkeypatch):
    x, W, y = make(rng, N=40, K=6, M=5, requires=False)
    W.requires_grad_()
    asked = []
    real = api.grads

    def spy(*args, **kwargs):
        asked.append(kwargs["wrt"])
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "grads", spy)
    lt.loss(x, W, y).backward()
    assert asked == [("W",)] and x.grad is None and y.grad is None
    full = loopgrad.grads(x.detach(), W.detach(), y.detach())
    assert torch.equal(W.grad, full.dW)
