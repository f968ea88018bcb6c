"""The training example (loopgrad/fit.py, examples/train.py, `loopgrad fit`): loopgrad's loop equals pure torch's."""

import pathlib
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from loopgrad import cli, fit  # noqa: E402

ROOT = pathlib.Path(__file__).parents[1]
N, K, M = 4000, 16, 16


@pytest.fixture(scope="module")
def data():
    return fit.make_data(N, K, M, seed=3)


@pytest.mark.parametrize("optimizer", fit.OPTIMIZERS)
def test_first_20_steps_equal_pure_torch(data, optimizer):
    x, y, _, W0 = data
    runs = fit.train(x, y, W0, optimizer, steps=20)
    lg, pt = runs
    assert len(lg.losses) == len(pt.losses) == 20
    tol_f, tol_W = fit.tolerances(N, M)
    for step, (a, b, Wa, Wb) in enumerate(zip(lg.losses, pt.losses, lg.Ws, pt.Ws)):
        assert abs(a - b) <= tol_f * b, (step, a, b)
        assert float((Wa - Wb).abs().max()) <= tol_W * float(Wb.abs().max()), step
    assert fit.compare(runs, N, M)["ok"]
    assert lg.losses[-1] < 0.5 * lg.losses[0]          # it does train
    assert not torch.equal(lg.Ws[-1], W0.double())


def test_notebook_form_and_float64(data):
    x, y, _, W0 = data
    runs = fit.train(x, y, W0, "sgd", steps=20, form="notebook")
    assert fit.compare(runs, N, M)["ok"]
    x64, y64, W64 = (t.double() for t in (x, y, W0))
    runs = fit.train(x64, y64, W64, "adam", steps=20)
    cmp = fit.compare(runs, N, M, "float64")
    assert cmp["ok"] and cmp["loss_tol"] < 1e-11


def test_a_slightly_wrong_gradient_is_caught(data, monkeypatch):
    # the same loss value, one element of dW nudged by 1e-4·f at every step: must be caught
    x, y, _, W0 = data
    right = fit.loopgrad_loss("sum")

    def wrong(form):
        def loss(x, W, y):
            f = right(x, W, y)
            return f + 1e-4 * f.detach() * (W[0, 0] - W[0, 0].detach())
        return loss
    monkeypatch.setattr(fit, "loopgrad_loss", wrong)
    for optimizer in fit.OPTIMIZERS:
        runs = fit.train(x, y, W0, optimizer, steps=20)
        assert not fit.compare(runs, N, M)["ok"], optimizer


def test_tolerances_follow_eps_and_N():
    f32, W32 = fit.tolerances(10**6, 16)
    assert f32 == pytest.approx(4 * 4000 * 2.0 ** -24) and W32 == pytest.approx(4 * 1000 * 2.0 ** -24)
    assert fit.tolerances(10, 1) == (64 * 2.0 ** -24, 64 * 2.0 ** -24)
    assert fit.tolerances(10**6, 16, "float64")[0] < 1e-11


def test_cli_fit(capsys):
    assert cli.main(["fit", "--n", "3000", "--steps", "5", "--no-progress", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("→ same") == 2 and "SGD" in out and "ADAM" in out and "ms/step" in out
    assert out.count("torch.compile:") == 2  # timed beside eager torch by default


def test_cli_fit_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    assert cli.main(["fit", "--n", "1000", "--steps", "3", "--no-progress", "--no-torch-compile",
                     "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_fit_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib raises ImportError
    png = tmp_path / "loss.png"
    assert cli.main(["fit", "--n", "1000", "--steps", "2", "--optimizer", "sgd", "--no-progress",
                     "--no-torch-compile", "--plot", str(png)]) == 0
    assert "no plot without matplotlib" in capsys.readouterr().err and not png.exists()


def test_example_script(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "train.py"), "--n", "1000",
                          "--steps", "3", "--optimizer", "adam", "--no-progress",
                          "--no-torch-compile"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "→ same" in run.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no plot without matplotlib" in run.stderr
    else:
        assert (tmp_path / "train_loss.png").is_file()


def test_loopgrad_steps_compute_W_gradient_alone(data, monkeypatch):
    # x and y do not require grad: every step asks loopgrad for dW alone (no dx, no dy)
    from loopgrad import api

    asked, real = [], api.grads

    def spy(*args, **kwargs):
        asked.append(kwargs["wrt"])
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "grads", spy)
    x, y, _, W0 = data
    fit.train(x, y, W0, "sgd", steps=3)
    assert asked == [("W",)] * 4  # the warm-up step and 3 steps


def test_train_times_torch_compile_too(data):
    x, y, _, W0 = data
    runs = fit.train(x, y, W0, "adam", steps=3, compiled=True)
    assert [r.name for r in runs] == ["loopgrad", "torch", "torch.compile"]
    assert len(runs[2].seconds) == 3 and fit.compare(runs, N, M)["ok"]
