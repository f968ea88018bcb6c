"""`out=`: the gradients written into the caller's arrays (NumPy's convention)."""

import numpy as np
import pytest

import loopgrad
from _helpers import draw

# a shape of each kernel family: general rows (in blocks of 8 on AVX2 and AVX-512:
# rowblocks.py), skinny rows, tiled fused, tiled three-pass
SHAPES = [(203, 2, 19), (1001, 3, 5), (301, 20, 37), (97, 150, 460)]


def poisoned(x, W, y):
    N, K = x.shape
    M = W.shape[1]
    return tuple(np.full(s, np.nan, x.dtype) for s in ((N, K), (K, M), (N, M)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,K,M", SHAPES)
def test_written_in_place_with_the_bits_of_a_fresh_call(rng, N, K, M, dtype):
    x, W, y = draw(rng, N, K, M, dtype)
    fresh = loopgrad.grads(x, W, y, relu_grad_at_zero=0.5)
    out = poisoned(x, W, y)
    got = loopgrad.grads(x, W, y, out=out, relu_grad_at_zero=0.5)
    assert got.f == fresh.f
    for a, o, b in zip(got[1:], out, fresh[1:]):
        assert a is o and a.tobytes() == b.tobytes()
    again = loopgrad.grads(x, W, y, out=out, relu_grad_at_zero=0.5)  # reused: same bits
    assert again.f == fresh.f and all(a.tobytes() == b.tobytes() for a, b in zip(again[1:], fresh[1:]))


def test_with_wrt_and_partly_given(rng):
    x, W, y = draw(rng, 301, 20, 37, np.float32)
    fresh = loopgrad.grads(x, W, y)
    dW = np.full((20, 37), np.nan, np.float32)
    got = loopgrad.grads(x, W, y, wrt="W", out=(None, dW, None))
    assert got.dx is None and got.dy is None and got.dW is dW
    assert dW.tobytes() == fresh.dW.tobytes()
    dx = np.full((301, 20), np.nan, np.float32)
    got = loopgrad.grads(x, W, y, out=[dx, None, None])  # a list, dW and dy allocated
    assert got.dx is dx and dx.tobytes() == fresh.dx.tobytes()
    assert got.dW.tobytes() == fresh.dW.tobytes() and got.dy.tobytes() == fresh.dy.tobytes()


def test_torch_tensors_as_out(rng):
    torch = pytest.importorskip("torch")
    x, W, y = draw(rng, 50, 6, 5, np.float64)
    out = tuple(torch.full(s, float("nan"), dtype=torch.float64) for s in ((50, 6), (6, 5), (50, 5)))
    got = loopgrad.grads(torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(y), out=out)
    fresh = loopgrad.grads(x, W, y)
    for a, o, b in zip(got[1:], out, fresh[1:]):
        assert a is o and a.numpy().tobytes() == b.tobytes()


def _bad_cases(x, W, y):
    N, K = x.shape
    M = W.shape[1]
    good = poisoned(x, W, y)
    f32 = np.full((N, M), np.nan, np.float32)
    ro = np.full((N, M), np.nan)
    ro.flags.writeable = False
    strided = np.full((N, 2 * M), np.nan)[:, ::2]
    big = np.full(N * K + N * M, np.nan)
    yield "shape", (good[0], good[1], np.full((N, M + 1), np.nan)), ValueError
    yield "dtype", (good[0], good[1], f32), ValueError
    yield "read-only", (good[0], good[1], ro), ValueError
    yield "non-contiguous", (good[0], good[1], strided), ValueError
    yield "overlaps", (good[0], good[1], y), ValueError                     # dy = y
    yield "overlaps", (good[0], good[1], y[::-1][::-1]), ValueError         # a view of y, which owns its memory
    yield "overlaps", (big[:N * K].reshape(N, K), good[1], big[N * K - 1:N * K - 1 + N * M].reshape(N, M)), ValueError
    yield "got ndarray", good[0], TypeError
    yield "of length 2", good[:2], TypeError
    yield "NumPy array", (good[0], good[1], "dy"), TypeError


@pytest.mark.parametrize("case", range(10))
def test_bad_out_is_refused_and_nothing_is_written(rng, case):
    x, W, y = draw(rng, 40, 5, 3, np.float64)
    assert y.flags.owndata  # the view-of-y case is against an array that owns its memory
    words, out, error = list(_bad_cases(x, W, y))[case]
    before = [None if not isinstance(a, np.ndarray) else a.copy()
              for a in (out if isinstance(out, tuple) else (out,))]
    with pytest.raises(error, match="out") as e:
        loopgrad.grads(x, W, y, out=out)
    assert words in str(e.value)
    for a, b in zip(out if isinstance(out, tuple) else (out,), before):
        if b is not None:
            np.testing.assert_array_equal(a, b)  # untouched (NaN stays NaN)


def test_out_for_a_gradient_not_asked_for_is_refused(rng):
    x, W, y = draw(rng, 40, 5, 3, np.float64)
    out = poisoned(x, W, y)
    with pytest.raises(ValueError, match="does not ask for x's gradient"):
        loopgrad.grads(x, W, y, wrt="W", out=out)
    assert np.isnan(out[1]).all()


# ------------------------------------------- fresh results on recycled buffers

# a shape of each kernel family whose dx and dy pass workspace's 1 MiB (float32): skinny
# rows, general rows, tiled fused, tiled three-pass
BIG = [(100000, 4, 4), (70000, 3, 5), (20000, 20, 37), (1200, 300, 290)]


@pytest.mark.parametrize("N,K,M", BIG)
def test_a_result_still_referenced_is_never_written_again(rng, N, K, M):
    # the gradients a call returns may sit on the buffers of earlier results nobody holds
    # (loopgrad/cpu/workspace.py): a result kept whole, or only through a view, a torch
    # tensor or a memoryview, must keep its bits through later calls on other inputs
    import torch

    x, W, y = draw(rng, N, K, M, np.float32)
    first = loopgrad.grads(x, W, y)
    kept = [a.copy() for a in first[1:]]
    view, tensor, mem = first.dx[1:], torch.from_numpy(first.dy), memoryview(first.dW)
    for _ in range(2):
        other = loopgrad.grads(*draw(rng, N, K, M, np.float32))
        assert all(np.array_equal(a, b) for a, b in zip(first[1:], kept))
    first = None  # only the view, the tensor and the memoryview hold it now
    for _ in range(3):
        other = loopgrad.grads(*draw(rng, N, K, M, np.float32))
        assert np.array_equal(view, kept[0][1:]) and np.array_equal(tensor.numpy(), kept[2])
        assert np.array_equal(np.asarray(mem), kept[1])
    assert other.dx.flags.c_contiguous and other.dx.flags.writeable


@pytest.mark.parametrize("N,K,M", BIG)
def test_a_dropped_result_serves_the_next_call_with_the_right_bits(rng, N, K, M):
    # the buffers of a result nobody holds are reused (no new pages to fault in and zero),
    # and the call on them gives the bits of a call into poisoned `out=` arrays
    from loopgrad.cpu import workspace

    workspace.release()  # no earlier test's buffers
    x, W, y = draw(rng, N, K, M, np.float32)
    where = loopgrad.grads(x, W, y).dy.ctypes.data  # the result dropped at once
    x2, W2, y2 = draw(rng, N, K, M, np.float32)
    got = loopgrad.grads(x2, W2, y2)
    # the same buffer (still held by the workspace: a new one could not overlap it), the
    # result placed within its first page by the new inputs' offsets (page_offset)
    assert abs(got.dy.ctypes.data - where) < workspace._PAGE
    out = poisoned(x2, W2, y2)
    want = loopgrad.grads(x2, W2, y2, out=out)
    assert got.f == want.f and all(a.tobytes() == b.tobytes() for a, b in zip(got[1:], out))


def test_past_the_bound_an_idle_then_the_smallest_remembered_result_goes(monkeypatch):
    # workspace.output remembers the buffers of the last results within RESULT_BYTES; past it
    # the oldest nobody holds is forgotten first (an earlier shape's), else the smallest (a
    # larger one would cost more new pages): a call whose dx and dy pass the bound together
    # keeps dx's buffer for the next call, and a stale large one makes way for them
    from loopgrad.cpu import workspace
    workspace.release()
    monkeypatch.setattr(workspace, "RESULT_BYTES", 3 << 20)
    dx, dy = workspace.output((2 << 20,), np.uint8), workspace.output((3 << 19,), np.uint8)
    assert [b.size for b in workspace._lent] == [(2 << 20) + workspace._PAGE]  # dy's forgotten
    where = dx.ctypes.data
    del dx, dy
    again = workspace.output((2 << 20,), np.uint8)
    assert again.ctypes.data == where
    assert workspace.output((1 << 20,), np.uint8).ctypes.data != where  # still referenced
    workspace.release()
    stale = workspace.output((5 << 19,), np.uint8)  # 2.5 MiB, then nobody holds it
    del stale
    dx, dy = workspace.output((1 << 20,), np.uint8), workspace.output((1 << 20,), np.uint8)
    assert [b.size for b in workspace._lent] == [(1 << 20) + workspace._PAGE] * 2  # the idle one went
    where = dx.ctypes.data, dy.ctypes.data
    del dx, dy
    dx, dy = workspace.output((1 << 20,), np.uint8), workspace.output((1 << 20,), np.uint8)
    assert {dx.ctypes.data, dy.ctypes.data} == set(where)
    workspace.release()


def test_no_result_is_remembered_with_a_bound_of_zero(monkeypatch):
    # RESULT_BYTES = 0: every large result on new memory, nothing held between calls
    from loopgrad.cpu import workspace
    workspace.release()
    monkeypatch.setattr(workspace, "RESULT_BYTES", 0)
    a = workspace.output((1 << 20,), np.uint8)
    assert workspace._lent == [] and a.shape == (1 << 20,)
    del a
    workspace.release()


def test_the_results_bound_follows_the_memory_the_process_may_use(tmp_path):
    # a sixteenth of the smaller of physical memory and a cgroup's limit, from KEEP_BYTES
    # to 2 GiB; a limit of "max" (cgroup v2: none) or garbage is no limit; without any
    # number, KEEP_BYTES
    from loopgrad.cpu import workspace
    ram = workspace.memory_bytes(limits=())
    if ram is None:
        pytest.skip("no sysconf for the physical memory here")
    v2, v1 = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    v2.write_text("max\n")
    v1.write_text(f"{1 << 30}\n")
    assert workspace.memory_bytes(limits=(str(v2),)) == ram
    assert workspace.memory_bytes(limits=(str(v2), str(v1))) == min(ram, 1 << 30)
    v2.write_text("garbage")
    assert workspace.memory_bytes(limits=(str(v2), str(tmp_path / "missing"))) == ram
    assert workspace.result_bound(None) == workspace.KEEP_BYTES
    assert workspace.result_bound(1 << 30) == workspace.KEEP_BYTES  # 64 MiB: raised
    assert workspace.result_bound(24 << 30) == 24 << 26  # 1.5 GiB
    assert workspace.result_bound(256 << 30) == 2 << 30
    assert workspace.RESULT_BYTES == workspace.result_bound(workspace.memory_bytes())


def test_the_scratch_kept_between_calls_stays_within_its_bound(monkeypatch):
    # workspace.take/give: buffers handed back are kept for the next call up to KEEP_BYTES in
    # all, the smallest dropped first; take serves the smallest kept one of the dtype that is
    # large enough; its running total is the kept buffers' bytes
    from loopgrad.cpu import workspace
    workspace.release()
    monkeypatch.setattr(workspace, "KEEP_BYTES", 10_000)
    a, b, c = (workspace.take(n, np.float64) for n in (300, 500, 700))  # 2400, 4000, 5600 bytes
    assert all(x.ctypes.data % 64 == 0 for x in (a, b, c))
    for buf, kept in ((b, 4000), (a, 6400), (c, 9600)):  # c drops a, the smallest
        workspace.give(buf)
        assert workspace.kept_bytes() == workspace._kept == kept
    assert workspace.take(400, np.float64) is b and workspace.kept_bytes() == 5600
    assert workspace.take(10, np.float32) is not c  # another dtype: a new buffer
    workspace.give(np.empty(20_000, np.uint8))  # past the bound: not kept
    assert workspace.kept_bytes() == workspace._kept == 5600
    assert workspace.take(700, np.float64) is c and workspace.kept_bytes() == 0
    workspace.release()


def _page(a):
    return a.__array_interface__["data"][0] % 4096


@pytest.mark.parametrize("offset", [0, 16, 48, 1000, 4080])
def test_fresh_results_start_on_a_line_away_from_their_inputs_within_a_page(rng, offset):
    # 4K aliasing: a row kernel's load of x's and y's rows waits on a pending store to dx or
    # dy at the same address modulo 4 KiB; fresh results at d = 48 bytes past x (NumPy's
    # malloc header) made 10⁶×4×4 streamed 4-5× slower on Zen 4.  Large fresh results now
    # start on a cache line at least a line past x and y modulo 4 KiB and on none of
    # their lines, whatever x's and y's offsets, with the bits of out=
    from loopgrad.cpu import workspace
    N, K, M = 70_001, 4, 4  # dx and dy past workspace._OUT_MIN
    x0, W, y0 = draw(rng, N, K, M, np.float32)
    raw = np.empty(2 * (x0.nbytes + 8192), np.uint8)
    x = raw[offset:offset + x0.nbytes].view(np.float32).reshape(N, K)
    y = raw[x0.nbytes + 4096 + (offset * 7 % 4096) // 4 * 4:][:y0.nbytes].view(np.float32)
    y = y.reshape(N, M)
    x[...], y[...] = x0, y0
    got = loopgrad.grads(x, W, y)
    assert got.dx.nbytes >= workspace._OUT_MIN
    for out in (got.dx, got.dy):
        assert _page(out) % 64 == 0
        for a in (x, y):
            assert 64 <= (_page(out) - _page(a)) % 4096 <= 4096 - 64, (offset, _page(out), _page(a))
    assert _page(got.dx) != _page(got.dy)
    out = poisoned(x, W, y)
    want = loopgrad.grads(x, W, y, out=out)
    assert got.f == want.f and all(a.tobytes() == b.tobytes() for a, b in zip(got[1:], out))


def test_page_offset_places_an_output_a_line_short_of_its_inputs():
    from loopgrad.cpu import workspace
    assert workspace.page_offset([]) == 0
    assert workspace.page_offset([16, 16]) == 4032      # d = 4016 past both
    assert workspace.page_offset([0]) == 4032           # d = 4032: the line before
    assert workspace.page_offset([16, 16, 4032]) == 3968  # and off dx's line
    for addresses in ([5, 77], [4095, 64, 2048], [123456789, 987654321]):
        at = workspace.page_offset(addresses)
        assert at % 64 == 0 and 0 <= at < 4096
        assert all((at - a) % 4096 >= 64 for a in addresses)
