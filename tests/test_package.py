"""The package itself: light import, version, CLI entry points, docstring examples."""

import doctest
import pathlib
import subprocess
import sys

import loopgrad
import loopgrad.api


def test_import_is_light():
    code = ("import sys, loopgrad; "
            "print(sorted(m for m in ('torch', 'numba', 'numba.cuda') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_and_help():
    for args, want in ((["--version"], f"loopgrad {loopgrad.__version__}"), (["--help"], "demo")):
        out = subprocess.run([sys.executable, "-m", "loopgrad", *args], capture_output=True,
                             text=True, check=True)
        assert want in out.stdout
    bad = subprocess.run([sys.executable, "-m", "loopgrad", "nonsense"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_docstring_examples():
    result = doctest.testmod(loopgrad.api)
    assert result.attempted > 0 and result.failed == 0


def test_public_api_is_typed_and_documented():
    for fn in (loopgrad.grads, loopgrad.loss):
        assert fn.__doc__ and fn.__annotations__["return"] is not None
    assert (pathlib.Path(loopgrad.__file__).parent / "py.typed").is_file()
