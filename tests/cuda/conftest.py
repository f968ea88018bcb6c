"""CUDA tests: collected only where the kernels can run.

That is a real GPU, or Numba's simulator: NUMBA_ENABLE_CUDASIM=1 set before
numba is imported, as tests/test_cuda_simulator.py does in a subprocess.
"""

import pytest

import loopgrad.cuda

try:
    loopgrad.cuda.kernels()
    USABLE, WHY = True, ""
except RuntimeError as e:
    USABLE, WHY = False, str(e)

collect_ignore_glob = [] if USABLE else ["test_*.py"]


def pytest_collection_modifyitems(config, items):
    from numba import config as numba_config

    if numba_config.ENABLE_CUDASIM:
        skip = pytest.mark.skip(reason="needs a real GPU (running in the CUDA simulator)")
        for item in items:
            if item.get_closest_marker("cuda"):
                item.add_marker(skip)
