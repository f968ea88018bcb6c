"""The machine table (loopgrad/cpu/machine.py): the ISA read off LLVM's target, the entries, the override."""

import os
import subprocess
import sys

import numpy as np
import pytest

from loopgrad import reference
from loopgrad.cpu import machine

X86 = "x86_64-unknown-linux-gnu"
AVX512 = "+avx,+avx2,+fma,+avx512f,+avx512vl,+avx512bw,+avx512dq,+sse4.2"
# what NUMBA_ENABLE_AVX=0 or a Zen 3 gives: the AVX-512 flags off
AVX2 = "+avx,+avx2,+fma,-avx512f,-avx512vl,-avx512bw,-avx512dq,+sse4.2"


@pytest.mark.parametrize("triple,features,isa", [
    (X86, AVX512, "avx512"),
    (X86, AVX2, "avx2"),
    (X86, "+avx,+avx2,-fma,+sse4.2", "generic"),        # AVX2 without FMA
    (X86, "+avx512f,+avx2,+fma", "avx2"),                # AVX-512F alone: no VL/BW/DQ
    (X86, "", "generic"),                                # NUMBA_CPU_NAME=generic
    ("aarch64-unknown-linux-gnu", "+neon,+fp-armv8,+avx2", "generic"),  # never x86's entries
    ("arm64-apple-darwin23.0.0", "+neon", "generic"),
])
def test_detect(triple, features, isa):
    assert machine.detect(triple, features) == isa


def test_target_names_this_cpu():
    t = machine.target()
    assert t["isa"] in machine.TABLE and t["entry"] in machine.TABLE and t["cpu_name"]
    assert machine.entry().isa == t["entry"]


@pytest.mark.parametrize("isa", sorted(machine.TABLE))
def test_entries_are_consistent(isa):
    e = machine.TABLE[isa]
    assert e.isa == isa and e.source
    for name, t in e.tiles.items():
        lanes = e.vector_bits // (8 * np.dtype(name.split("-")[0]).itemsize)
        assert t.NR % lanes == 0, (name, t)                      # whole vectors a row
        assert t.MR * t.NR // lanes + 2 <= e.registers, (name, t)  # accumulators + B + A fit
        assert t.MC % t.MR == 0, (name, t)                       # blocks of whole panels
        # dW's input-dtype sums run over at most KC rows: the accuracy contract's block
        assert t.KC <= reference.SUM_BLOCK, (name, t)
        assert 0 <= t.KC3 <= t.KC, (name, t)  # the three-pass kernel's steps: buffers of KC
    assert {"float32", "float64"} <= set(e.tiles)


@pytest.mark.parametrize("host,mc", [("znver5", 144), ("znver4", 96), ("sapphirerapids", 96),
                                     ("znver3", 96), ("neoverse-v2", 96)])
def test_the_table_takes_the_hosts_block_rows(host, mc):
    # the avx512 float32 tile's MC by the host CPU (machine.MC_512), every other size as written
    t = machine.table_for(host)
    assert t["avx512"].tiles["float32"].MC == mc
    assert t["avx512"].tiles["float32"].MC % t["avx512"].tiles["float32"].MR == 0
    for isa, e in t.items():
        for name, tile in e.tiles.items():
            if (isa, name) != ("avx512", "float32"):
                assert tile == machine._TABLE[isa].tiles[name], (isa, name)
    assert machine.TABLE == machine.table_for(machine._host_cpu())


_CHILD = """
import numpy as np, loopgrad
from loopgrad import reference
from loopgrad.cpu import machine
rng = np.random.default_rng(5)
for K, M in ((37, 45), (4, 4)):     # a tiled shape and a skinny one
    x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((20003, K), (K, M), (20003, M)))
    got = loopgrad.grads(x, W, y)
    ref = reference.torch_autograd(x, W, y)
    for name, g, r, b in zip(("f", "dx", "dW", "dy"), got, ref, reference.error_bounds(x, W, y, ref)):
        reference.check(name, g, r, b)
print(machine.target()["entry"], machine.target()["forced"])
"""


def test_environment_forces_an_entry(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), **{machine.ENV: "generic"})
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["generic", "True"]


def test_a_bad_override_names_the_variable(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), **{machine.ENV: "avx1024"})
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode != 0
    assert f"ValueError: {machine.ENV} must be one of avx512, avx2, generic" in out.stderr
    assert "'avx1024'" in out.stderr
