"""Shared fixtures."""

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    # a fresh, reproducible stream per test (seeded by the test's name)
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
