"""Threads, forked processes, the disk cache, memory: loopgrad must never crash its host.

Most checks run in child processes: a threading layer or a cache folder is
chosen once per process, and a failure here is an abort, not an exception.
"""

import json
import os
import pathlib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import loopgrad
from _helpers import draw

ROOT = pathlib.Path(__file__).parent.parent

# big enough for the parallel kernel (several chunks), small enough to be quick
SETUP = """
import numpy as np, loopgrad
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((200_000, 4), (4, 4), (200_000, 4)))
want = loopgrad.grads(x, W, y)
def same(g):
    return g.f == want.f and all(np.array_equal(a, b) for a, b in zip(g[1:], want[1:]))
"""


def run_child(code, **env):
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, f"child exited {out.returncode}: {out.stderr[-2000:]}"
    return out.stdout


def test_concurrent_threads(rng):
    x, W, y = draw(rng, 200_000, 4, 4)
    want = loopgrad.grads(x, W, y)
    results = []

    def work():
        g = loopgrad.grads(x, W, y)
        results.append(g.f == want.f and all(np.array_equal(a, b) for a, b in zip(g[1:], want[1:])))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with ThreadPoolExecutor(4) as ex:
        results += list(ex.map(lambda _: loopgrad.loss(x, W, y) == want.f, range(16)))
    assert results == [True] * 24


def test_workqueue_layer_is_serialised():
    # workqueue aborts the process on concurrent parallel regions (measured:
    # "The workqueue threading layer is not threadsafe ..."), so calls queue up
    out = run_child(SETUP + """
import numba
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(8) as ex:
    ok = all(ex.map(lambda _: same(loopgrad.grads(x, W, y)), range(32)))
print(numba.threading_layer(), ok)
""", NUMBA_THREADING_LAYER="workqueue")
    assert out.split() == ["workqueue", "True"]


def test_forked_child_after_a_parallel_call():
    # GNU OpenMP kills such a child at its first parallel region; it must
    # take the serial kernels and get the same bits
    out = run_child(SETUP + """
import multiprocessing as mp
def child(q):
    q.put(same(loopgrad.grads(x, W, y)) and loopgrad.loss(x, W, y) == want.f)
ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start()
p.join(120)
print(p.exitcode, q.get(timeout=10) if p.exitcode == 0 else None)
""")
    assert out.split() == ["0", "True"]


def test_forked_child_finds_its_serial_kernels_loaded():
    # The child must load no compiled code: LLVM registers its unwind tables under libgcc's
    # lock, which a thread of the parent's may hold at the fork (one exiting), and the
    # child would hang (loopgrad.cpu._load_twins).  The parent runs the parallel row
    # kernel and a parallel tiled one; a first child compiles their serial counterparts
    # into the disk cache if they are not there, and the parent loads them at the next fork.
    out = run_child(SETUP + """
import os, multiprocessing as mp
from numba.core.codegen import JitEngine
shapes = ((20_000, 16), (16, 24), (20_000, 24))
xt, Wt, yt = (rng.standard_normal(s).astype(np.float32) for s in shapes)
tiled_want = loopgrad.grads(xt, Wt, yt)
def child(q):
    loads = []
    finalize = JitEngine.finalize_object
    JitEngine.finalize_object = lambda self: (loads.append(1), finalize(self))[1]
    t = loopgrad.grads(xt, Wt, yt)
    ok = same(loopgrad.grads(x, W, y)) and t.f == tiled_want.f \
        and np.array_equal(t.dW, tiled_want.dW)
    q.put((ok, len(loads)))
ctx = mp.get_context("fork")
for _ in range(2):
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    p.join(120)
    print(p.exitcode, *q.get(timeout=10))
""", NUMBA_THREADING_LAYER="omp")
    assert out.split()[3:] == ["0", "True", "0"], out  # the second child: no code loaded


def test_dask_threaded_scheduler(rng):
    dask = pytest.importorskip("dask")
    x, W, y = draw(rng, 150_000, 3, 5)
    want = loopgrad.grads(x, W, y).f
    tasks = [dask.delayed(lambda: loopgrad.grads(x, W, y).f)() for _ in range(8)]
    assert dask.compute(*tasks, scheduler="threads") == (want,) * 8


def test_no_writable_cache_folder_falls_back_to_compiling():
    # Numba refuses cache=True when no folder can take the cache (read-only
    # install, no home); simulate that by giving it no locator at all
    out = run_child("""
import numba.core.caching as caching
caching.CacheImpl._locator_classes = []
""" + SETUP + """
from loopgrad.cpu import rows, skinny
# the general row kernel, by name (K = 3, K·M = 60, which on AVX2 and AVX-512 takes rowblocks.py)
x3, W3 = np.ascontiguousarray(x[:, :3]), np.ascontiguousarray(np.hstack([W[:3]] * 5))
y3 = np.ascontiguousarray(np.hstack([y] * 5))
chunk_rows, nchunks, stride = rows.plan(x3.shape[0], 3, W3.shape[1])
f = rows.kernel("grads", x3.dtype, True)(np.empty_like(x3), np.empty_like(W3), np.empty_like(y3),
                                         rows.partials_buffer(nchunks, stride), x3, W3, y3,
                                         0.0, chunk_rows, 7)
print(type(rows._chunk_grads._cache).__name__, same(loopgrad.grads(x, W, y)), np.isfinite(f),
      sorted(k[:3] for k in skinny._ROWS), sorted(k[0] for k in rows._ROWS))
""")
    # the generated 4×4 kernel (not the general one in its place) and the general one, uncached
    assert out.split() == ["NullCache", "True", "True", "[('grads',", "4,", "4)]", "['grads']"]


def test_numba_cache_dir_is_honoured_and_safe_under_concurrent_first_calls(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    code = SETUP + "print(same(loopgrad.grads(x, W, y)), want.f)"
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert len({o[0] for o in outs}) == 1 and outs[0][0].startswith("True")
    assert list(tmp_path.rglob("*.nbi")), "no kernels cached in NUMBA_CACHE_DIR"
    assert run_child(code, **env) == outs[0][0]  # a later process loads them intact


def test_peak_memory_is_inputs_plus_outputs():
    out = run_child(f"import runpy, sys; sys.argv = ['memory.py', '--n', '2000000']; "
                    f"runpy.run_path({str(ROOT / 'benchmarks' / 'memory.py')!r}, run_name='__main__')")
    ratio = json.loads(out)["ratio"]
    assert 0.9 < ratio <= 1.10, out


def test_info_command():
    out = run_child("from loopgrad import cli; cli.main(['info'])")
    for label in ("loopgrad:", "CPU:", "kernel table:", "threading layer:", "kernel cache:",
                  "memory kept:", "generated kernels:", "shaped kernels:", "CUDA:"):
        assert label in out
    from loopgrad.cpu import machine

    m = machine.summary()
    assert f"CPU:                LLVM {m['llvm_cpu']}, vector ISA {m['isa']}" in out
    forced = " (forced by LOOPGRAD_CPU_ISA)" if m["table_forced"] else ""  # the tests run forced too
    assert f"kernel table:       entry {m['table_entry']}{forced}: {m['vector_bits']}-bit vectors" in out
    # 512-bit operations as 256-bit halves (Zen 4, a 512-bit entry): said on that line alone
    line = next(ln for ln in out.splitlines() if ln.startswith("kernel table:"))
    assert line.endswith("256-bit tails") is m["halves_512"], line
    assert "layer:  None" not in out
