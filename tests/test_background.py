"""A cold parallel tiled kernel compiles behind a serial call (loopgrad/cpu/background.py)."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import loopgrad
from loopgrad import cpu
from loopgrad.cpu import background, tiled
from _helpers import assert_matches_torch, draw

N, K, M = 300, 64, 64  # the fused kernel, above the parallel threshold


def test_cold_parallel_kernel_compiles_behind_a_serial_call(monkeypatch, rng):
    x, W, y = draw(rng, N, K, M)
    name, variant, _, _ = tiled.plan(N, K, M, x.dtype)
    started = []
    start = background.start
    monkeypatch.setattr(background, "start", lambda key, fn: started.append(key) or start(key, fn))
    monkeypatch.setattr(tiled, "ready", lambda *a: False)  # as on an empty cache

    kern, par = cpu.tiled_kernel(name, variant, True)
    assert not par and kern is tiled.kernel(name, variant, False)
    first = loopgrad.grads(x, W, y)
    assert started == [(name, variant)] * 2
    assert background.wait(timeout=300)

    monkeypatch.undo()
    assert tiled.ready(name, variant, True)
    kern, par = cpu.tiled_kernel(name, variant, True)
    assert par and kern is tiled.kernel(name, variant, True)
    after = loopgrad.grads(x, W, y)
    assert_matches_torch(first, x, W, y)
    assert first.f == after.f
    for a, b in zip(first[1:], after[1:]):
        assert np.array_equal(a, b)  # serial and parallel: bitwise the same


def test_a_compile_runs_once_per_key():
    gate, calls = threading.Event(), []
    for _ in range(3):
        background.start("test-once", lambda: calls.append(1) or gate.wait(10))
    assert background.running() == ["test-once"]
    gate.set()
    assert background.wait(timeout=10) and calls == [1]


def test_a_failing_compile_is_dropped():
    background.start("test-fail", lambda: 1 / 0)
    assert background.wait(timeout=10) and background.running() == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_waits_for_a_background_compile():
    # a child forked while a compile holds Numba's lock would inherit it held, by no thread
    from numba.core.compiler_lock import global_compiler_lock

    holding = threading.Event()

    def compile_fn():
        with global_compiler_lock:
            holding.set()
            time.sleep(0.5)

    background.start("test-fork", compile_fn)
    assert holding.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: the lock must be free
        ok = global_compiler_lock._lock.acquire(timeout=5)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert background.wait(timeout=10)


def test_ready_reads_the_disk_cache():
    # compiled here (so cached on disk), then asked in a fresh process: ready, not compiled
    name, variant, _, _ = tiled.plan(N, K, M, np.float32)
    tiled.kernel(name, variant, True)
    code = ("from loopgrad.cpu import tiled\n"
            f"print(tiled.ready({name!r}, {variant!r}, True),"
            f" bool(tiled._dispatcher({name!r}, {variant!r}, True, tiled._isa(None))[0].overloads))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]
