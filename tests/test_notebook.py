"""The notebook (../shared/reference/notebook.txt), rebuilt from torch.manual_seed(0)."""

import numpy as np
import pytest

import loopgrad
from loopgrad import _notebook, cli

from _helpers import assert_matches_torch

torch = pytest.importorskip("torch")

# What the notebook printed (4 decimals; y.grad in 5 significant digits, and
# only its first rows and a half: the notebook's output is cut there).
F = 99.9048
W_GRAD = [[18.2980, 2.7573, 2.3914, -0.1974],
          [11.0817, 6.6428, 2.5163, -20.3225],
          [-8.6662, 3.4506, -1.8979, -3.3608],
          [-21.1681, -6.6739, -1.0693, 27.0278]]
X_GRAD = [[1.1002, 0.0860, 5.3377, 0.2788],
          [0.9583, 10.4633, -13.5234, -16.3639],
          [-0.8712, -0.9272, -0.7764, 2.0790],
          [-1.4504, 5.6914, 0.7613, -0.9693],
          [-1.2892, -3.4714, -1.9788, 4.8091],
          [-4.0523, -4.3127, -3.6114, 9.6703],
          [-0.7312, -0.7782, -0.6516, 1.7449],
          [-0.8191, -0.8718, -0.7300, 1.9547],
          [1.0350, 2.9930, -6.6743, -7.5333],
          [-2.4616, -2.4243, -2.1164, 5.7128]]
Y_GRAD_PRINTED = [2.8885e+00, 4.1639e+00, 3.4134e+00, 3.0501e+00,
                  -1.0589e+01, -2.7045e+00, -2.1849e+00, -1.7039e-01,
                  6.5523e-01, -1.5214e+00, -3.1982e+00, -1.5687e+00,
                  -1.5009e+00, -3.8551e+00, 4.9843e-01, 1.2764e+00,
                  -6.6077e-03, -1.0689e+00, 1.8791e+00]


def notebook_inputs():
    torch.manual_seed(0)
    return torch.randn(10, 4), torch.randn(4, 4), torch.randn(10, 4)


def test_stored_inputs_are_the_seed0_draws():
    for stored, drawn in zip(_notebook.inputs(), notebook_inputs()):
        assert np.array_equal(stored.view(np.uint32), drawn.numpy().view(np.uint32))


@pytest.mark.parametrize("a0", [0.0, 0.5])  # d_relu (the hand formula) and torch.maximum
def test_every_printed_digit(a0):
    f, dx, dW, dy = loopgrad.grads(*notebook_inputs(), relu_grad_at_zero=a0)
    assert round(f, 4) == F
    # a printed value with d decimals is the true value rounded: within half a unit
    assert np.all(np.abs(dW.numpy() - np.array(W_GRAD)) <= 0.5e-4 + 1e-6)
    assert np.all(np.abs(dx.numpy() - np.array(X_GRAD)) <= 0.5e-4 + 1e-6)
    printed = np.array(Y_GRAD_PRINTED)
    half_unit = 0.5 * 10.0 ** (np.floor(np.log10(np.abs(printed))) - 4)
    assert np.all(np.abs(dy.numpy().ravel()[:printed.size] - printed) <= half_unit * (1 + 1e-6))


def test_agrees_with_autograd_of_the_notebook_expression():
    x, W, y = (t.requires_grad_() for t in notebook_inputs())
    z = torch.maximum(torch.matmul(x, W), torch.tensor(0)) - y
    f = torch.trace(torch.matmul(z.T, z))
    f.backward()
    ours = loopgrad.grads(x, W, y, relu_grad_at_zero=0.5)
    # notebook float32 vs ours: both within float32 rounding of the float64 answer
    assert_matches_torch(ours, x.detach().numpy(), W.detach().numpy(), y.detach().numpy(), 0.5)
    for o, t in zip(ours[1:], (x.grad, W.grad, y.grad)):
        assert torch.allclose(o, t, rtol=1e-5, atol=1e-5)  # float32 autograd's own rounding
    assert abs(ours.f - f.item()) <= 1e-5 * f.item()


def test_demo_prints_the_notebook(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "f = 99.9048" in out
    assert "[[ 18.2980,   2.7573,   2.3914,  -0.1974]," in out
    assert "[-2.4616,  -2.4243,  -2.1164,   5.7128]]" in out.replace("[ -2.4616", "[-2.4616")
    assert "[[ 2.8885e+00,  4.1639e+00,  3.4134e+00,  3.0501e+00]," in out
    assert "agrees with torch autograd in float64" in out
