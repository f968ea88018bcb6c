"""Run tests/cuda under Numba's CUDA simulator, in a subprocess.

NUMBA_ENABLE_CUDASIM must be set before numba is imported, and this process
has imported it already.
"""

import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent


def test_cuda_kernels_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(HERE / "cuda")], env=env, capture_output=True, text=True,
                         cwd=HERE.parent, timeout=900)
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout.splitlines()[-1], tail
