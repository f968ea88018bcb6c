"""The tiled kernels of the machine table's other entries, compiled for this CPU (code for a
narrower ISA runs anywhere; a wider one's, here, where the CPU has it), against torch:
test_tiled.py's first test for the entries this CPU does not run natively.  A file of its
own so that pytest-xdist's `--dist loadfile` runs it beside test_tiled.py: their kernels'
compiles were half of that file's time, the longest of the suite (CI's 15 minutes)."""

import pytest

from loopgrad.cpu import machine
from test_tiled import SHAPES, test_both_kernels_match_torch as _check

OTHERS = [(isa, v) for isa, e in machine.TABLE.items() if isa != machine.entry().isa
          for v in e.tiles]


@pytest.mark.parametrize("isa,variant", OTHERS)
@pytest.mark.parametrize("N,K,M", SHAPES)
def test_other_entries_match_torch(rng, N, K, M, isa, variant):
    _check(rng, N, K, M, isa, variant)
