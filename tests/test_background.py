"""A cold tiled kernel compiles in a child process behind calls that run the ordered loops, then its
serial driver in the interpreter (loopgrad.cpu.tiled_kernel, loopgrad/cpu/background.py)."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import loopgrad
from loopgrad import cpu
from loopgrad.cpu import background, ordered, tiled
from loopgrad._inputs import WANT_ALL
from _helpers import assert_matches_torch, draw

N, K, M = 300, 64, 64  # the fused kernel, above the parallel threshold


def test_cold_kernel_compiles_behind_the_ordered_loops(monkeypatch, rng):
    x, W, y = draw(rng, N, K, M)
    name, variant, _, _ = tiled.plan(N, K, M, x.dtype)
    started = []
    start = background.start
    monkeypatch.setattr(background, "start",
                        lambda key, fn, argv=None: started.append((key, argv)) or
                        start(key, fn, argv))
    monkeypatch.setattr(tiled, "ready", lambda *a: False)  # as on an empty cache
    # ...and as in a process that has not compiled it behind an earlier test's calls
    assert background.wait(timeout=300)
    monkeypatch.setattr(background, "_done", set())
    monkeypatch.setattr(background, "_failed", {})

    monkeypatch.setattr(cpu, "_READY", set())
    monkeypatch.setattr(tiled, "pieces_ready", lambda *a: False)
    kern, par = cpu.tiled_kernel(name, variant, True)
    # the ordered loops (in Python threads: not a parallel kernel of Numba's)
    assert not par and kern.func is ordered._grads
    key = (name, variant, True)
    # in a child process: no thread of this one compiles (it would hold the GIL)
    assert started[0][0] == key and started[0][1][1:3] == ["-m", "loopgrad.cpu.compile_one"]
    assert not any(t.name.startswith("loopgrad compile") for t in threading.enumerate())
    first = loopgrad.grads(x, W, y)
    assert [k for k, _ in started] in ([key], [key] * 2)  # once more if the child had ended
    # once the child has the kernel's pieces in the disk cache: its interpreted driver
    monkeypatch.setattr(tiled, "pieces_ready", lambda *a: True)
    if background.busy(key):
        assert cpu.tiled_kernel(name, variant, True) == (tiled.driver(name, variant), False)
    assert background.wait(timeout=300)
    assert background.done(key) and background.failed(key) is None

    monkeypatch.undo()
    assert tiled.ready(name, variant, True)
    kern, par = cpu.tiled_kernel(name, variant, True)
    assert par and kern is tiled.kernel(name, variant, True)
    assert (name, variant, True) in cpu._READY  # asked once, then a set lookup
    after = loopgrad.grads(x, W, y)
    assert_matches_torch(first, x, W, y)
    assert first.f == after.f
    for a, b in zip(first[1:], after[1:]):
        assert np.array_equal(a, b)  # serial and parallel: bitwise the same


COLD_CALL = """
import json, sys
import numpy as np
import loopgrad
from numba.core import event
from loopgrad.cpu import background

compiled = []

class Compiles(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)

    def on_end(self, ev):
        pass

event.register("numba:compile", Compiles())
rng = np.random.default_rng(5)
x, W, y = (rng.standard_normal(s).astype(np.float32) for s in (({N}, {K}), ({K}, {M}), ({N}, {M})))
r = loopgrad.grads(x, W, y)
generated = [m for m in sys.modules if m.startswith("loopgrad._generated")]
np.savez(sys.argv[1], f=r.f, dx=r.dx, dW=r.dW, dy=r.dy)
print(json.dumps(dict(compiled=compiled, generated=generated, running=len(background.running()))))
assert background.wait(600)
"""


def test_a_cold_call_compiles_nothing_and_has_the_kernels_bits(tmp_path):
    # an empty cache: the first call compiles nothing with Numba and imports no generated
    # module (the ordered loops, llvmlite's), while a child compiles the tiled kernel; a
    # second process, on the cache the child filled, gets the same bits from the kernel
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    # the fused kernel (the three-pass one's bits against the loops: test_tiled, in-process;
    # its compile here would add a minute to CI's longest file)
    code = COLD_CALL.format(N=300, K=64, M=64)
    cold = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cold.npz")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert cold.returncode == 0, cold.stderr
    seen = json.loads(cold.stdout.splitlines()[-1])
    assert seen == dict(compiled=[], generated=[], running=1), seen
    warm = subprocess.run([sys.executable, "-c", code, str(tmp_path / "warm.npz")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert warm.returncode == 0, warm.stderr
    seen = json.loads(warm.stdout.splitlines()[-1])
    assert seen["running"] == 0 and seen["generated"], seen  # the kernel, from the cache
    a, b = np.load(tmp_path / "cold.npz"), np.load(tmp_path / "warm.npz")
    for name in ("f", "dx", "dW", "dy"):
        assert np.array_equal(a[name], b[name]), name


def test_a_child_compile_is_a_process_and_its_failure_is_kept():
    ok = [sys.executable, "-c", "import time; time.sleep(0.3)"]
    background.start("test-child", None, ok)
    assert background.busy("test-child") and background.running() == ["test-child"]
    assert background.wait(timeout=30) and background.done("test-child")
    assert not background.busy("test-child") and background.failed("test-child") is None
    bad = [sys.executable, "-c", "import sys; sys.stderr.write('no such kernel'); sys.exit(3)"]
    background.start("test-child-fails", None, bad)
    assert background.wait(timeout=30) and not background.done("test-child-fails")
    err = background.failed("test-child-fails")
    assert isinstance(err, RuntimeError) and "status 3" in str(err) and "no such kernel" in str(err)


def test_a_child_that_cannot_start_compiles_in_a_thread():
    ran = []
    background.start("test-no-child", lambda: ran.append(1), ["/no/such/python", "-c", "0"])
    assert background.wait(timeout=10) and ran == [1] and background.done("test-no-child")


def test_the_child_compiles_what_the_caller_looks_up(tmp_path):
    # a fresh cache: the child (loopgrad.cpu.compile_one, the caller's environment) fills
    # it, and a process with the same environment finds the kernel ready
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    name, variant = "loss", "float32"
    code = ("import sys\nfrom loopgrad.cpu import background, machine, tiled\n"
            f"key = ({name!r}, {variant!r}, False)\n"
            f"print(tiled.ready({name!r}, {variant!r}, False))\n"
            "background.start(key, None, [sys.executable, '-m', 'loopgrad.cpu.compile_one', "
            f"{name!r}, {variant!r}, '0', machine.entry().isa])\n"
            "assert background.wait(600) and background.done(key), background.failed(key)\n"
            f"print(tiled.ready({name!r}, {variant!r}, False))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=900, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_a_compile_runs_once_per_key():
    gate, calls = threading.Event(), []
    for _ in range(3):
        background.start("test-once", lambda: calls.append(1) or gate.wait(10))
    assert background.running() == ["test-once"]
    gate.set()
    assert background.wait(timeout=10) and calls == [1]


def test_a_failing_compile_is_kept_for_the_foreground(monkeypatch):
    background.start("test-fail", lambda: 1 / 0)
    assert background.wait(timeout=10) and background.running() == []
    assert isinstance(background.failed("test-fail"), ZeroDivisionError)
    # through the router: the failed kernel is compiled in the foreground, where it raises
    monkeypatch.setattr(cpu, "_READY", set())
    monkeypatch.setattr(tiled, "ready", lambda *a: False)
    monkeypatch.setattr(background, "_failed", {("grads", "float32", True): ValueError("x")})

    def broken(*a):
        raise RuntimeError("the compile's error")

    monkeypatch.setattr(tiled, "kernel", broken)
    with pytest.raises(RuntimeError, match="the compile's error"):
        cpu.tiled_kernel("grads", "float32", True)
    assert background.running() == []  # and nothing started again


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


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_forgets_the_parents_compiles():
    background.start("test-fork-child", None, [sys.executable, "-c", "import time; time.sleep(1)"])
    pid = os.fork()
    if pid == 0:  # not this process's child: nothing to wait for, at exit or asked
        os._exit(0 if background.running() == [] and background.wait(0.1) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert background.running() == ["test-fork-child"] and background.wait(timeout=30)


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


@pytest.mark.parametrize("N,K,M", [(0, 12, 40), (1, 8, 3), (97, 13, 33), (300, 64, 64),
                                   (1100, 40, 17), (50, 300, 300), (130, 9, 530)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interpreted_driver_is_bitwise_the_kernel(rng, N, K, M, dtype):
    # the driver the first call runs on an empty cache, against the compiled kernels
    x, W, y = draw(rng, N, K, M, dtype)
    x[:, 0] = 0.0  # ties: h == 0 on some rows
    for name in ("grads_fused", "grads", "loss"):
        _, variant, nchunks, rows = tiled.plan(N, K, M, dtype)
        if name == "grads":
            nchunks, rows = 1, -(-max(N, 1) // 256) * 256
        n64, nT = tiled.scratch(name, variant, N, K, M, nchunks)
        got = []
        for fn in (tiled.driver(name, variant), tiled.kernel(name, variant, True)):
            ws64, wsT = np.full(n64, np.nan), np.full(nT, np.nan, dtype)
            if name == "loss":
                got.append((fn(x, W, y, wsT),))
                continue
            outs = [np.full(s, np.nan, dtype) for s in ((N, K), (K, M), (N, M))]
            got.append((fn(*outs, x, W, y, 0.5, nchunks, rows, ws64, wsT, WANT_ALL), *outs))
        assert got[0][0] == got[1][0] or (got[0][0] != got[0][0] and got[1][0] != got[1][0])
        for a, b in zip(got[0][1:], got[1][1:]):
            assert np.array_equal(a, b)
        if name != "loss":
            assert_matches_torch((got[0][0], *got[0][1:]), x, W, y, 0.5)


def test_threads_asking_for_one_kernel_at_once_all_get_it():
    # Dask's first tasks ask for a kernel together: before jit.compile took Numba's
    # compiler lock, all but the first raised "compilation disabled" (checked)
    from numba import njit, types

    from loopgrad.cpu import jit

    def triple_sum(a):
        s = 0.0
        for i in range(a.shape[0]):
            s += 3.0 * a[i]
        return s

    disp = njit(nogil=True)(triple_sum)
    sig = types.float64(types.Array(types.float64, 1, "C"))
    errors = []

    def ask():
        try:
            jit.compile(disp, sig)
        except Exception as e:  # noqa: BLE001 - what the test looks for
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert disp(np.ones(5)) == 15.0


@pytest.mark.parametrize("K,M", [(2, 8), (3, 40)])  # a generated skinny kernel, the general one
def test_a_cold_parallel_row_kernel_compiles_behind_the_serial_one(monkeypatch, rng, K, M):
    # not in the disk cache: the call gets the serial kernel (bitwise the parallel one's
    # results) while a child compiles the parallel one; after it, the parallel kernel
    from loopgrad.cpu import rows, skinny

    x, W, y = draw(rng, 20000, K, M)
    key = ("rows", "grads", "float32", K, M, WANT_ALL)
    monkeypatch.setattr(cpu, "_CHOSEN", {})
    monkeypatch.setattr(skinny, "cached", lambda *a: False)
    monkeypatch.setattr(rows, "cached", lambda *a: False)
    background._done.discard(key)
    started = []
    start = background.start
    monkeypatch.setattr(background, "start", lambda k, fn, argv=None: started.append(argv) or
                        start(k, fn, argv))
    kern = cpu.row_kernel("grads", x.dtype, True, K, M)
    assert kern is cpu.row_kernel("grads", x.dtype, False, K, M)  # the serial kernel
    assert started and started[0][1:4] == ["-m", "loopgrad.cpu.compile_one", "rows"]
    first = loopgrad.grads(x, W, y)
    assert background.wait(timeout=300) and background.done(key), background.failed(key)
    kern = cpu.row_kernel("grads", x.dtype, True, K, M)
    assert kern is not cpu.row_kernel("grads", x.dtype, False, K, M)  # the parallel one now
    after = loopgrad.grads(x, W, y)
    assert_matches_torch(first, x, W, y)
    assert first.f == after.f and all(np.array_equal(a, b) for a, b in zip(first[1:], after[1:]))
