"""loopgrad.dask: the in-memory results, one pass over the chunks, on every Dask scheduler.

N rows, K inputs, M outputs, chunked along N.  Small arrays throughout: what
matters is the number of chunks and their awkward sizes, not the bytes.
"""

import os
import pathlib
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest

import loopgrad
from _helpers import assert_matches_torch, draw
from loopgrad import reference

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
lgd = pytest.importorskip("loopgrad.dask")

ROOT = pathlib.Path(__file__).parent.parent
N, K, M, ROWS = 20_011, 3, 5, 1_999   # 11 chunks, the last one short (20011 = 10·1999 + 21)


@pytest.fixture
def data(rng):
    return draw(rng, N, K, M)


def chunked(x, W, y, rows=ROWS):
    return da.from_array(x, chunks=(rows, -1)), W, da.from_array(y, chunks=(rows, -1))


def assert_same_as_in_memory(got, x, W, y, relu_grad_at_zero=0.0):
    """got = computed (f, dx, dW, dy) of loopgrad.dask; checked against loopgrad.grads and torch."""
    want = loopgrad.grads(x, W, y, relu_grad_at_zero=relu_grad_at_zero)
    ref = assert_matches_torch(got, x, W, y, relu_grad_at_zero)  # the accuracy contract itself
    # f and dW are the same sums in another order: as close to the in-memory
    # result as either is to the exact one
    bounds = reference.error_bounds(x, W, y, ref)
    reference.check("f vs in-memory", got[0], want.f, bounds[0])
    reference.check("dW vs in-memory", got[2], want.dW, bounds[2])
    assert isinstance(got[0], float) and got[2].dtype == x.dtype and got[2].shape == W.shape
    # dx and dy are row-local (no sum crosses rows): the same kernel gives the same bits
    for name, g, w in (("dx", got[1], want.dx), ("dy", got[3], want.dy)):
        assert g.dtype == w.dtype and g.flags.c_contiguous, name
        assert np.array_equal(g, w), f"{name}: {np.sum(g != w)} element(s) differ from in-memory"


def assert_bitwise(a, b):
    assert a[0] == b[0]
    for u, v in zip(a[1:], b[1:]):
        assert u.dtype == v.dtype and u.tobytes() == v.tobytes()


def test_import_loopgrad_does_not_import_dask():
    code = "import sys, loopgrad; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------ local schedulers

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_sync_and_processes_agree_with_in_memory_and_each_other(rng, dtype):
    x, W, y = draw(rng, N, K, M, dtype)
    g = lgd.grads(*chunked(x, W, y))
    assert [a.shape for a in g[1:]] == [x.shape, W.shape, y.shape]
    assert g.dx.chunks == g.dy.chunks[:1] + ((K,),) and g.dx.chunks[0][-1] == 21
    first = dask.compute(*g, scheduler="threads")
    assert_same_as_in_memory(first, x, W, y)
    for scheduler in ("threads", "sync", "processes"):
        assert_bitwise(dask.compute(*g, scheduler=scheduler), first)


def test_relu_grad_at_zero_and_loss(rng):
    x, W, y = draw(rng, N, K, M)
    x[::7] = 0  # exact ties h = 0 on every seventh row
    for a0 in (0.0, 0.5, 1.0):
        got = dask.compute(*lgd.grads(*chunked(x, W, y), relu_grad_at_zero=a0), scheduler="threads")
        assert_same_as_in_memory(got, x, W, y, a0)
    f = lgd.loss(*chunked(x, W, y))
    assert f.shape == () and f.dtype == np.float64
    got = f.compute(scheduler="threads")
    assert got == f.compute(scheduler="processes")
    assert abs(got - loopgrad.loss(x, W, y)) <= 1e-12 * got


def _counted(block, directory, block_info=None):
    # one empty file per call: how often each chunk was read, in any process
    i = block_info[0]["chunk-location"][0]
    (directory / f"{i}-{uuid.uuid4().hex}").touch()
    return block


def counted(a, directory, rows=ROWS):
    directory.mkdir()
    return da.from_array(a, chunks=(rows, -1)).map_blocks(_counted, directory, dtype=a.dtype)


def reads_per_chunk(directory):
    names = [p.name.split("-")[0] for p in directory.iterdir()]
    return sorted(names.count(i) for i in set(names))


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_one_pass_reads_each_chunk_once(data, tmp_path, scheduler):
    x, W, y = data
    g = lgd.grads(counted(x, tmp_path / "x"), W, counted(y, tmp_path / "y"))
    got = dask.compute(*g, scheduler=scheduler)
    assert reads_per_chunk(tmp_path / "x") == reads_per_chunk(tmp_path / "y") == [1] * 11
    assert_same_as_in_memory(got, x, W, y)


def test_one_kernel_call_per_chunk(data, monkeypatch):
    x, W, y = data
    calls = []
    real = loopgrad.api.grads

    def spy(*args, **kwargs):
        calls.append(args[0].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(loopgrad.api, "grads", spy)
    dask.compute(*lgd.grads(*chunked(x, W, y)), scheduler="threads")
    assert sorted(calls) == sorted([ROWS] * 10 + [21])


def test_chunks_reach_the_kernel_without_a_copy(rng, monkeypatch):
    # blockwise's concatenate=True would copy every x and y chunk on its way in
    made = []

    def make(block_info=None):
        made.append(rng.standard_normal(block_info[None]["chunk-shape"]).astype(np.float32))
        return made[-1]

    def spy(x, W, y, **kwargs):
        assert any(x is a for a in made) and any(y is a for a in made)
        return real(x, W, y, **kwargs)

    real = loopgrad.api.grads
    monkeypatch.setattr(loopgrad.api, "grads", spy)
    rows, meta = ((ROWS,) * 3,), np.empty((0, 0), np.float32)
    xd = da.map_blocks(make, chunks=rows + ((K,),), dtype=np.float32, meta=meta)
    yd = da.map_blocks(make, chunks=rows + ((M,),), dtype=np.float32, meta=meta)
    W = rng.standard_normal((K, M)).astype(np.float32)
    dx = dask.compute(lgd.grads(xd, W, yd).dx, scheduler="sync")[0]
    assert len(made) == 6 and dx.shape == (3 * ROWS, K)


def tree_sum(fs, order=1):
    # the documented tree: groups of SPLIT_EVERY consecutive partials, each added left to right
    while len(fs) > 1:
        fs = [sum(fs[i:i + lgd.SPLIT_EVERY][::order][1:], fs[i:i + lgd.SPLIT_EVERY][::order][0])
              for i in range(0, len(fs), lgd.SPLIT_EVERY)]
    return fs[0]


def test_tree_adds_in_a_fixed_order(rng):
    # 100 one-row chunks whose f spans 16 decades in random order: the order of the sum shows
    x, W, y = draw(rng, 100, 2, 2, np.float64)
    y *= 10.0 ** rng.uniform(-8, 8, (100, 1))
    g = lgd.grads(*chunked(x, W, y, rows=1))
    results = {dask.compute(*g, scheduler=s)[0] for s in ["threads"] * 5 + ["sync"]}
    fs = [loopgrad.grads(x[i:i + 1], W, y[i:i + 1]).f for i in range(100)]
    assert results == {tree_sum(fs)} == {lgd.loss(*chunked(x, W, y, rows=1)).compute()}
    assert tree_sum(fs, order=-1) != tree_sum(fs)  # the data can tell the orders apart


def test_numba_threads_per_task(data, monkeypatch):
    import numba

    x, W, y = data
    seen = []
    real = loopgrad.api.grads

    def spy(*args, **kwargs):
        seen.append(numba.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(loopgrad.api, "grads", spy)
    from dask.system import CPU_COUNT as cores
    with dask.config.set(num_workers=1):  # one Dask thread: Numba may use every core
        omp = int(os.environ.get("OMP_NUM_THREADS", cores))
        assert lgd.numba_threads_per_task() == min(cores, omp)
    with dask.config.set(num_workers=cores):
        assert lgd.numba_threads_per_task() == 1
        dask.compute(*lgd.grads(*chunked(x, W, y)), scheduler="threads")
    assert seen == [1] * 11
    seen.clear()
    before = numba.get_num_threads()
    dask.compute(*lgd.grads(*chunked(x, W, y), numba_threads=1), scheduler="sync")
    assert seen == [1] * 11 and numba.get_num_threads() == before  # the caller's thread restored


# The workqueue layer aborts the process on concurrent parallel regions
# unless loopgrad serialises them; two Numba threads per task on Dask's
# threaded scheduler make sure parallel regions do run concurrently.  Then
# the processes scheduler with fork, after the parent ran a parallel region
# (GNU OpenMP kills such children unless loopgrad goes serial there).
_LAYER_CHILD = """
import dask, dask.array as da, numba, numpy as np, loopgrad, loopgrad.dask as lgd
if __name__ == "__main__":
    rng = np.random.default_rng(1)
    x, W, y = (rng.standard_normal(s).astype(np.float32)
               for s in ((400_000, 4), (4, 4), (400_000, 4)))
    want = loopgrad.grads(x, W, y)
    g = lgd.grads(da.from_array(x, chunks=(50_000, 4)), W, da.from_array(y, chunks=(50_000, 4)),
                  numba_threads=2)
    runs = [dict(scheduler="threads", num_workers=4)] * 3
    runs += [dict(scheduler="processes", num_workers=2)]
    with dask.config.set({"multiprocessing.context": "fork"}):
        for kwargs in runs:
            f, dx, dW, dy = dask.compute(*g, **kwargs)
            assert abs(f - want.f) <= 1e-12 * f and np.array_equal(dx, want.dx), kwargs
            assert np.array_equal(dy, want.dy), kwargs
    print(numba.threading_layer())
"""


@pytest.mark.parametrize("layer", ["workqueue", "omp", "tbb"])
def test_threads_and_forked_processes_under_every_threading_layer(layer):
    if layer == "tbb":
        pytest.importorskip("tbb")
    out = subprocess.run([sys.executable, "-c", _LAYER_CHILD], capture_output=True, text=True,
                         timeout=300, cwd=ROOT, env={**os.environ, "NUMBA_THREADING_LAYER": layer})
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.split() == [layer]


# ----------------------------------------------------------- chunking, errors

def test_row_chunks_of_y_follow_x(data):
    x, W, y = data
    g = lgd.grads(da.from_array(x, chunks=(ROWS, -1)), W, da.from_array(y, chunks=(3_001, -1)))
    assert g.dy.chunks[0] == g.dx.chunks[0] == da.from_array(x, chunks=(ROWS, -1)).chunks[0]
    assert_same_as_in_memory(dask.compute(*g, scheduler="threads"), x, W, y)


def test_numpy_inputs_are_wrapped(data):
    x, W, y = data
    for args in ((x, W, y), (x, W, da.from_array(y, chunks=(ROWS, -1))),
                 (da.from_array(x, chunks=(ROWS, -1)), da.from_array(W), y)):
        g = lgd.grads(*args)
        assert all(isinstance(a, da.Array) for a in g)
        assert_same_as_in_memory(dask.compute(*g, scheduler="threads"), x, W, y)
    assert lgd.grads(x, W, da.from_array(y, chunks=(ROWS, -1))).dx.chunks[0][0] == ROWS


def test_chunks_across_columns_are_merged_with_a_warning(data):
    x, W, y = data
    cases = [(da.from_array(x, chunks=(ROWS, 2)), W, da.from_array(y, chunks=(ROWS, -1)), "x"),
             (da.from_array(x, chunks=(ROWS, -1)), W, da.from_array(y, chunks=(ROWS, 2)), "y"),
             (da.from_array(x, chunks=(ROWS, -1)), da.from_array(W, chunks=(1, 2)),
              da.from_array(y, chunks=(ROWS, -1)), "W")]
    for xd, Wd, yd, name in cases:
        with pytest.warns(da.PerformanceWarning, match=f"^{name} has .* chunks across its"):
            g = lgd.grads(xd, Wd, yd)
        assert g.dx.chunks[1] == (K,) and g.dy.chunks[1] == (M,)
        assert_same_as_in_memory(dask.compute(*g, scheduler="threads"), x, W, y)


def test_bad_inputs_raise_clear_errors(data):
    x, W, y = data
    xd, yd = da.from_array(x, chunks=(ROWS, -1)), da.from_array(y, chunks=(ROWS, -1))
    with pytest.raises(ValueError, match="shapes do not match"):
        lgd.grads(xd[:-1], W, yd)
    with pytest.raises(ValueError, match="shapes do not match"):
        lgd.loss(xd, W[:-1], yd)
    with pytest.raises(TypeError, match="same dtype"):
        lgd.grads(xd, W.astype(np.float64), yd)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        lgd.grads(xd.astype(np.int32), W, yd)
    with pytest.raises(ValueError, match="y must be 2-D"):
        lgd.grads(xd, W, yd[:, 0])
    with pytest.raises(ValueError, match="unknown chunk sizes.*compute_chunk_sizes"):
        lgd.grads(xd[xd[:, 0] > 0], W, yd)
    with pytest.raises(ValueError, match="relu_grad_at_zero"):
        lgd.grads(xd, W, yd, relu_grad_at_zero=2.0)
    with pytest.raises(ValueError, match="numba_threads"):
        lgd.grads(xd, W, yd, numba_threads=0)


def test_empty_rows(rng):
    x, W, y = draw(rng, 0, K, M)
    got = dask.compute(*lgd.grads(x, W, y), scheduler="threads")
    assert got[0] == 0.0 and got[1].shape == (0, K) and np.array_equal(got[2], np.zeros((K, M)))
    assert lgd.loss(x, W, y).compute() == 0.0


# ----------------------------------------------------------- dask.distributed

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # A worker that dies while running a task marks that task suspicious;
    # past allowed-failures the task is declared failed instead of retried.
    # One death must be retried, a crash loop must not be.
    with dask.config.set({"distributed.scheduler.allowed-failures": 2}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as c:
                yield c


def compute_on(client, collections):
    return tuple(client.gather(client.compute(list(collections)), direct=False))


def test_local_cluster_matches_in_memory_and_reads_each_chunk_once(client, data, tmp_path):
    import distributed

    x, W, y = data
    assert list(client.run(lgd.numba_threads_per_task).values()) == [1, 1]
    g = lgd.grads(counted(x, tmp_path / "x"), W, counted(y, tmp_path / "y"))
    with distributed.get_task_stream(client) as stream:
        got = compute_on(client, g)
    assert reads_per_chunk(tmp_path / "x") == reads_per_chunk(tmp_path / "y") == [1] * 11
    ran = [t["key"][0] for t in stream.data if isinstance(t["key"], tuple)]
    assert sum(k.startswith("loopgrad-grads") for k in ran) == 11  # one kernel task per chunk
    assert_same_as_in_memory(got, x, W, y)
    assert_bitwise(got, dask.compute(*lgd.grads(*chunked(x, W, y)), scheduler="threads"))
    assert_bitwise(compute_on(client, lgd.grads(*chunked(x, W, y))), got)
    assert compute_on(client, [lgd.loss(*chunked(x, W, y))])[0] == \
        dask.compute(lgd.loss(*chunked(x, W, y)), scheduler="threads")[0]


def _kill_worker_once(block, marker, block_info=None):
    # chunk 5, first time anywhere: the worker process dies in the middle of the compute
    if block_info[0]["chunk-location"][0] == 5:
        try:
            marker.open("x").close()
        except FileExistsError:
            return block
        os.kill(os.getpid(), signal.SIGKILL)
    return block


def test_a_worker_killed_mid_compute_is_retried(client, data, tmp_path):
    x, W, y = data
    marker = tmp_path / "killed"
    xd = da.from_array(x, chunks=(ROWS, -1)).map_blocks(_kill_worker_once, marker, dtype=x.dtype)
    before = set(client.scheduler_info()["workers"])
    got = compute_on(client, lgd.grads(xd, W, da.from_array(y, chunks=(ROWS, -1))))
    assert marker.exists()  # a worker did die
    assert_same_as_in_memory(got, x, W, y)
    client.wait_for_workers(2, timeout=60)
    assert set(client.scheduler_info()["workers"]) != before  # the nanny replaced it


@pytest.mark.parametrize("wrt", [(), "W", ("x", "y"), ("x", "W")])
def test_wrt_passes_through(data, monkeypatch, wrt):
    # the gradients asked for have the bits of the full call; no chunk computes the others
    x, W, y = data
    xd, Wd, yd = chunked(x, W, y)
    full = dask.compute(*lgd.grads(xd, Wd, yd))
    asked, real = [], loopgrad.api.grads

    def spy(*args, **kwargs):
        asked.append(kwargs["wrt"])
        return real(*args, **kwargs)

    monkeypatch.setattr(loopgrad.api, "grads", spy)
    g = lgd.grads(xd, Wd, yd, wrt=wrt)
    names = ("x", "W", "y")
    assert [a is None for a in g[1:]] == [n not in wrt for n in names]
    got = dask.compute(*(a for a in g if a is not None), scheduler="sync")
    want = [full[0]] + [full[1 + i] for i, n in enumerate(names) if n in wrt]
    for a, b in zip(got, want):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    expect = tuple(n for n in names if n in wrt)
    assert len(asked) == 11 and set(asked) == {expect}  # every chunk, once, asking for wrt
