"""The kernels generated for small K·M (loopgrad/cpu/skinny.py), at kernel level."""

import functools
import os
import re

import numpy as np
import pytest
from numba import cfunc

import loopgrad
from loopgrad import cpu
from loopgrad.cpu import chunks, jit, machine, rows, skinny as _skinny
from loopgrad._inputs import WANT_ALL
from loopgrad import reference
from _helpers import OUTPUTS, assert_matches_torch, draw, past_a_line

# rows LLVM vectorizes with its default options (4×4, 3×5, 1×1, 5×3) and those that need
# skinny.LLVM_OPTIONS (2×8, 16×1: more than 16 overflow checks; 1×12: an interleave group of 12)
SHAPES = [(1, 1), (4, 4), (3, 5), (2, 8), (16, 1), (5, 3), (1, 12)]


def run(name, x, W, y, parallel, a0=0.0):
    N, K = x.shape
    M = W.shape[1]
    chunk_rows, nchunks, stride = rows.plan(N, K, M)
    chunk_rows = max(1, chunk_rows // 7)  # more, smaller chunks than the API would make
    nchunks = -(-N // chunk_rows)
    partials = rows.partials_buffer(nchunks, stride)
    partials.fill(np.nan)
    kern = _skinny.kernel(name, K, M, x.dtype, parallel)
    if name == "loss":
        return kern(partials, x, W, y, chunk_rows)
    dx, dW, dy = (np.full(s, np.nan, x.dtype) for s in ((N, K), (K, M), (N, M)))
    f = kern(dx, dW, dy, partials, x, W, y, a0, chunk_rows, WANT_ALL)
    return f, dx, dW, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,M", SHAPES)
def test_generated_kernels(rng, K, M, dtype):
    x, W, y = draw(rng, 3001, K, M, dtype)
    par, ser = run("grads", x, W, y, True), run("grads", x, W, y, False)
    assert_matches_torch(par, x, W, y)           # a NaN left unwritten would fail here
    for a, b in zip(par, ser):
        assert np.array_equal(a, b)              # serial and parallel: the same bits
    assert run("loss", x, W, y, True) == run("loss", x, W, y, False)
    assert run("loss", x, W, y, True) == pytest.approx(par[0], rel=1e-14)


@pytest.mark.parametrize("a0", [0.0, 0.5, 1.0])
def test_generated_ties_and_nan_rule(rng, a0):
    x = rng.integers(-2, 3, (400, 3)).astype(np.float32)
    W = rng.integers(-2, 3, (3, 4)).astype(np.float32)
    y = rng.integers(-3, 4, (400, 4)).astype(np.float32)
    x[7, 0], W[1, 2] = np.nan, np.inf           # a NaN h in row 7, infinities in column 2
    assert_matches_torch(run("grads", x, W, y, True, a0), x, W, y, a0, form="sum")



# a shape for each kind of row intrinsic, on 512-bit and on 256-bit entries and for either
# dtype: rowgroups.py (4×4), rowvec.py (6×6), rowdots.py (24×4), rowblocks.py (2×20); and
# 8×8, 16×6, 12×4, 3×12, which move between them with the entry and the dtype
ROW_KINDS = [(4, 4), (6, 6), (24, 4), (2, 20), (8, 8), (16, 6), (12, 4), (3, 12)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a0", [0.0, 0.5, 1.0, 0.25])
def test_row_intrinsics_give_a_nan_h_torchs_g(rng, dtype, a0):
    # g where h is NaN (x[7, 0]): 2z, NaN, for relu'(0) 0, ½ and 0.25, and 0 for 1 (torch's
    # clamp): dx's row 7 NaN or 0, and dW's rows past 0 NaN or finite.  The error bounds
    # admit any value where they are not finite, so NaN's places are compared on their own;
    # relu'(0) = 0 takes a branch of its own in the intrinsics (intrinsics.relu_grad_at).
    # Float32's rows refuse the chunk (f not finite) and answer from float64 arithmetic.
    kinds = set()
    for K, M in ROW_KINDS:
        x, W, y = draw(rng, 301, K, M, dtype)
        x[7, 0] = np.nan
        got = loopgrad.grads(x, W, y, relu_grad_at_zero=a0)
        ref = reference.torch_autograd(x, W, y, a0)
        for name, g, r in zip(OUTPUTS, got, ref):
            assert np.array_equal(np.isnan(g), np.isnan(r)), (name, K, M)
        assert np.isnan(got.dx[7]).all() == (a0 != 1.0)
        keep = np.ones(301, bool)
        keep[7] = False
        assert_matches_torch(loopgrad.grads(x[keep], W, y[keep], relu_grad_at_zero=a0),
                             x[keep], W, y[keep], a0)
        kinds.add(cpu.describe(301, K, M, dtype).partition("(")[2])
    if machine.entry().vector_bits >= 256:
        assert len({k.split(", ")[1] for k in kinds}) == 4, kinds  # the four kinds

def test_api_uses_them_and_agrees_with_the_general_kernel(rng):
    x, W, y = draw(rng, 50_000, 4, 4, np.float64)
    got = loopgrad.grads(x, W, y)
    chunk_rows, nchunks, stride = rows.plan(50_000, 4, 4)
    general = [np.empty(s) for s in ((50_000, 4), (4, 4), (50_000, 4))]
    f = rows.kernel("grads", np.float64, True)(*general, rows.partials_buffer(nchunks, stride),
                                               x, W, y, 0.0, chunk_rows, WANT_ALL)
    assert got.f == pytest.approx(f, rel=1e-13)
    for a, b in zip(got[1:], general):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    assert cpu.row_kernel("grads", np.float64, True, 4, 4) is _skinny.kernel("grads", 4, 4, np.float64, True)
    # past K·M = 16 the general one, but where the rows along the row take (K, M)
    general = rows.kernel("grads", np.float64, True)
    assert cpu.row_kernel("grads", np.float64, True, 17, 9) is general


def test_source_is_written_once(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "_MODULES", {})
    mod = _skinny.module(1, 3)  # LLVM's vectors of rows on every entry (2×3 is rowgroups.py's)
    path = mod.__file__
    assert path.startswith(str(tmp_path))
    mtime = os.stat(path).st_mtime_ns
    monkeypatch.setattr(jit, "_MODULES", {})
    assert _skinny.module(1, 3).__file__ == path and os.stat(path).st_mtime_ns == mtime
    src = open(path).read()
    assert "h2 = x0 * w0_2" in src and "dx[i + u0] =" in src


def test_no_writable_folder_falls_back_to_the_general_kernel(rng, monkeypatch):
    def nowhere():
        raise RuntimeError("no writable folder")
    monkeypatch.setattr(jit, "folder", nowhere)
    monkeypatch.setattr(jit, "_MODULES", {})
    monkeypatch.setattr(_skinny, "_COMPILED", {})
    monkeypatch.setattr(_skinny, "_ROWS", {})
    monkeypatch.setattr(cpu, "_CHOSEN", {})
    assert cpu.row_kernel("grads", np.float32, False, 2, 2) is rows.kernel("grads", np.float32, False)
    x, W, y = draw(rng, 100, 2, 2)
    assert_matches_torch(loopgrad.grads(x, W, y), x, W, y)


def _packed_float64_ops(K, M, llvm, tag):
    # the row function LLVM vectorizes over rows (the generated (K, M) module of an entry
    # without rows along the row: 128-bit vectors' source) compiled afresh for this entry's
    # vectors (no disk cache), with or without LLVM_OPTIONS: its count of packed float64
    # instructions on ymm/zmm registers
    bits = machine.entry().vector_bits
    mod = jit.load(f"test_llvm_options_{tag}_k{K}_m{M}", _skinny._source(K, M, 128))
    with jit.settings(vector_bits=bits, llvm=llvm):
        fn = cfunc(chunks.row_signature("grads", np.dtype(np.float64)),
                   fastmath=_skinny._FM)(mod.rows)
    asm = fn._library.get_asm_str()
    return len(re.findall(r"\tv\w+pd\t.*%[yz]mm", asm))


def test_llvm_options_vectorize_long_rows_and_are_put_back():
    if machine.entry().isa not in ("avx512", "avx2"):
        pytest.skip("counts x86 ymm/zmm instructions")
    assert _packed_float64_ops(2, 8, _skinny.LLVM_OPTIONS, "on") > 50
    after = _packed_float64_ops(2, 8, None, "after")  # compiled after the options were set back
    if after > 50:
        pytest.skip("this LLVM vectorizes 2×8 rows with its default options: nothing to tell")
    assert after < 10


def test_every_row_kernel_runs_one_set_of_drivers(rng):
    # chunks.py's drivers serve every (K, M) and the general kernel: a new shape compiles
    # its row function alone, and serial and parallel run the same compiled row code
    kernels = [_skinny.kernel("grads", 2, 3, np.float32, True),
               _skinny.kernel("grads", 3, 5, np.float32, True),
               rows.kernel("grads", np.float32, True)]
    assert {k.func for k in kernels} == {chunks.driver("grads", np.float32, True)}
    assert len({k.args for k in kernels}) == 3  # three row functions
    serial = _skinny.kernel("grads", 3, 5, np.float32, False)
    assert serial.func is chunks.driver("grads", np.float32, False)
    assert serial.args == kernels[1].args
    assert _skinny.cached("grads", 3, 5, np.float32, True)
    assert rows.cached("grads", np.float32, True)


def test_threads_asking_at_once_get_one_row_function(monkeypatch):
    # a kernel holds only its row function's address: threads that miss at once must share
    # the first one's function (Dask's first tasks), not each make and drop their own
    import threading

    monkeypatch.setattr(_skinny, "_ROWS", {})
    monkeypatch.setattr(rows, "_ROWS", {})
    got = {"skinny": [], "rows": []}

    def ask():
        got["skinny"].append(_skinny.row_function("grads", 3, 4, np.float32))
        got["rows"].append(rows.row_function("loss", np.float32))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [len(v) for v in got.values()] == [4, 4]
    assert all(len({id(f) for f in v}) == 1 for v in got.values())


# ------------------------------ rows as vectors (rowvec.py: K, M ≤ 8; rowblocks.py: K ≤ 3, M > 8)

def _row_vector_kernels(want, dtype, bits=256, tag="rv", K=4, M=4, edit=None):
    # the (K, M) row functions skinny.py generates for an entry of `bits`-bit vectors,
    # compiled here as the kernels compile them (whatever this machine's entry is: 512-bit
    # code runs on an AVX2 machine too, its vectors split in two), and a
    # grads(parallel, x, W, y, a0, chunk_rows) -> (f, dx, dW, dy) that runs them; edit: a
    # change to the generated source (a tag of its own)
    dt = np.dtype(dtype)  # the dtype's rows (at 9×3 with AVX-512 float32's are rowdots.py's)
    source = _skinny._source(K, M, bits, want, dt)
    mod = jit.load(f"test_{tag}_k{K}_m{M}_w{want}_{bits}", edit(source) if edit else source)
    with jit.settings(vector_bits=bits, llvm=_skinny._llvm_options(K, M, bits, dt)):
        fm = _skinny.fastmath(K, M, bits, dt)
        row = cfunc(chunks.row_signature("grads", dt), fastmath=fm)(mod.rows)
        loss = cfunc(chunks.row_signature("loss", dt), fastmath=fm)(mod.rows_loss)

    def grads(parallel, x, W, y, a0, chunk_rows, flags=0, skip=None):
        # flags: more bits for the kernel's `want` (STREAM); skip: dx and dy NaN-filled
        # that many elements past a cache line (None: wherever np.full puts them)
        N = x.shape[0]
        nchunks, stride = -(-N // chunk_rows), rows.plan(N, K, M)[2]
        partials = rows.partials_buffer(nchunks, stride)
        partials.fill(np.nan)
        # dx and dy with NaN past their ends, which no store may touch
        out = [np.full(s, np.nan, dt) if i == 1 else  # dW (by place: N = K = M = 3 at 3×3)
               np.full(N * s[1] + TAIL, np.nan, dt)[:N * s[1]].reshape(s) if skip is None
               else past_a_line(s, dt, skip) for i, s in enumerate(((N, K), (K, M), (N, M)))]
        f = chunks.driver("grads", dt, parallel)(row.address, *out, partials, x, W, y, a0,
                                                 chunk_rows, want | flags)
        for a in (out[0], out[2]):
            whole = a.base.ravel()
            end = (a.ctypes.data - whole.ctypes.data) // a.itemsize + a.size
            assert np.isnan(whole[end:end + TAIL]).all()  # nothing past the rows written
        lf = chunks.driver("loss", dt, parallel)(loss.address, partials, x, W, y, chunk_rows)
        return (f, *out), lf
    return grads


TAIL = 16  # elements past dx's and dy's ends that _row_vector_kernels checks


@pytest.mark.parametrize("K,M,dtype", [(6, 6, np.float32), (5, 7, np.float64), (12, 4, np.float32),
                                       (20, 12, np.float32)])
def test_row_vectors_partial_rows_stored_in_parts_or_masked_alike(rng, K, M, dtype):
    # rows that fill part of their vector (5-7 of 8 lanes, 12 of 16, 20 of 32): on AVX2
    # entries stored as power-of-two parts, on AVX-512 ones by masked stores (skinny.py's
    # choice, dev/products_v42.md 43a).  Either way, for either entry's code: the same
    # bits, every element of a row written and nothing past the last (the kernels' NaN
    # tail), in order and from two threads, cached and streamed
    from loopgrad._inputs import STREAM
    from loopgrad.cpu import rowvec
    assert rowvec.partial(K, M)
    x, W, y = draw(rng, 1001, K, M, dtype)
    x[:40] = np.round(x[:40])  # ties
    head = f"row_vectors({K}, {M}, 7"  # the rows' intrinsics (the loss's stores nothing)

    def masked(source):
        return source.replace(", masked_store=False", "")

    def parts(source):
        return masked(source).replace(head, head + ", masked_store=False")
    for bits in [b for b in (512, 256) if _skinny._along(K, M, b)]:
        source = _skinny._source(K, M, bits, 7, np.dtype(dtype))
        assert ("masked_store=False" in source) == (bits < 512)
        both = [_row_vector_kernels(7, dtype, bits=bits, tag=tag, K=K, M=M, edit=edit)
                for tag, edit in (("mk", masked), ("pt", parts))]
        for parallel, flags, skip in ((True, 0, None), (False, 0, None), (True, STREAM, 0),
                                      (True, STREAM, 1)):
            ref, got = (k(parallel, x, W, y, 0.5, 37, flags=flags, skip=skip)[0] for k in both)
            assert_matches_torch(got, x, W, y, 0.5, form="sum")
            assert got[0] == ref[0], (bits, parallel, flags, skip)
            for a, b in zip(got[1:], ref[1:]):
                assert np.array_equal(a, b), (bits, parallel, flags, skip)


def test_rows_several_a_vector_are_chosen_where_two_or_more_fill_a_vector():
    # rowgroups.py: K and M powers of two up to 8 with at least two rows a vector; float64
    # inputs only where rowvec.py's rows take them (through rowgroups.py's intrinsics)
    from loopgrad.cpu import rowgroups, rowvec
    for K, M, bits in ((4, 4, 512), (4, 4, 256), (2, 2, 512), (1, 1, 512), (8, 8, 512),
                       (2, 8, 512), (8, 1, 512), (1, 4, 256), (4, 2, 256), (2, 1, 256)):
        assert rowgroups.applies(K, M, bits) and rowgroups.applies(K, M, bits, np.float32)
        assert _skinny._along(K, M, bits, np.float32) is rowgroups
        assert f"row_groups({K}, {M}, {bits}, 7" in _skinny._source(K, M, bits, dtype=np.float32)
        f64 = rowvec.applies(K, M, bits, np.float64)
        assert rowgroups.applies(K, M, bits, np.float64) == f64
        assert _skinny._along(K, M, bits, np.float64) is (rowgroups if f64 else None)
    for K, M, bits in ((4, 4, 128), (8, 8, 256), (3, 5, 512), (4, 16, 512), (16, 1, 512),
                       (8, 2, 256), (6, 6, 512), (1, 16, 512), (1, 3, 256), (1, 3, 512),
                       (3, 1, 512), (5, 3, 512), (3, 8, 256), (3, 3, 128)):
        assert not rowgroups.applies(K, M, bits)
        assert _skinny._along(K, M, bits, np.float32) is not rowgroups
    # and rows with a 3 among K, M ≤ 4, padded to 4 lanes a row (dev/products_v52.md 53e)
    for K, M, bits in ((3, 3, 256), (3, 4, 256), (4, 3, 256), (2, 3, 256), (3, 2, 256),
                       (3, 1, 256), (3, 3, 512), (3, 4, 512), (4, 3, 512), (2, 3, 512),
                       (3, 2, 512)):
        assert rowgroups.applies(K, M, bits, np.float32), (K, M, bits)
        assert _skinny._along(K, M, bits, np.float32) is rowgroups
        assert f"row_groups({K}, {M}, {bits}, 7" in _skinny._source(K, M, bits, dtype=np.float32)


def test_short_x_rows_with_y_rows_of_9_to_15_take_rowvec_else_the_blocks():
    # rowvec.short_x: x's rows of 1 to 3 with y's of 9 to 15 are rowvec.py's on both entries
    # (float64's from K = 2 to M = 14, and to 13 on 256 bits), the rest of K ≤ 3 past M = 8
    # rowblocks.py's, whose modules serve every M of a K
    from loopgrad.cpu import rowblocks, rowgroups, rowvec
    for bits in (512, 256):
        for K, M, dtype in ((1, 9, np.float32), (1, 15, np.float32), (2, 10, np.float32),
                            (3, 15, np.float32), (2, 9, np.float64), (3, 13, np.float64)):
            assert _skinny._along(K, M, bits, dtype) is rowvec, (K, M, bits, dtype)
            assert _skinny._along(K, M, bits) is rowvec  # the module is rowvec.py's
        for K, M, dtype in ((1, 16, np.float32), (1, 17, np.float32),
                            (2, 16, np.float32), (3, 17, np.float32), (1, 10, np.float64),
                            (2, 15, np.float64), (3, 16, np.float64)):
            assert _skinny._along(K, M, bits, dtype) is rowblocks, (K, M, bits, dtype)
    assert _skinny._along(3, 14, 512, np.float64) is rowvec
    assert _skinny._along(3, 14, 256, np.float64) is rowblocks  # Y_LONG_M256's 13
    for bits in (512, 256):  # x's row of 1 with y's of 5 to 7 too (dx one sum across g·W's
        for M in (5, 6, 7):  # row, as past M = 8: dev/products_v51.md 52g)
            assert _skinny._along(1, M, bits, np.float32) is rowvec
            assert _skinny._along(1, M, bits, np.float64) is rowvec
        assert _skinny._along(1, 3, bits) is not rowvec
        for K, M in ((2, 3), (3, 2)):  # and K·M = 6 on AVX2 (52i): float64's; float32's
            assert rowvec.applies(K, M, bits, np.float64) == (bits == 256)  # rowgroups.py's,
            assert _skinny._along(K, M, bits, np.float32) is rowgroups  # padded (53e)
    # float32's dx at K = 2, 3 as K sums across g·W's rows (dev/products_v52.md 53a, 53d): on
    # AVX2 K = 2 from M = 7, K = 3 at M = 8 and from 12, with AVX-512 K = 2 from M = 11 and
    # 3×15; in the modules' source, so the choice holds for the rows a call runs
    across = {256: [(2, M) for M in range(7, 16)] + [(3, M) for M in range(12, 16)] + [(3, 8)],
              512: [(2, M) for M in range(11, 16)] + [(3, 15)]}
    for bits in (512, 256):
        for K in range(1, 5):
            for M in range(1, 18):
                assert rowvec.dx_across(K, M, bits) == ((K, M) in across[bits]), (K, M, bits)
        made = dict(line.split(" = ", 1) for line in _skinny._source(2, 13, bits).splitlines()
                    if line.startswith("_rows") or line.startswith("_loss"))
        assert "dx_across=True" in made["_rows"]  # float64 arithmetic's rerun: the chains
        assert not any("dx_across" in made[k] for k in ("_rows_exact", "_loss", "_loss_exact"))
        assert "dx_across" not in _skinny._source(3, 9, bits)
    # and on AVX2 f's float64 partial sums of a row of 9 to 12 in 8 and 4 lanes, rows and
    # loss alike (53b)
    for bits in (512, 256):
        for M in range(1, 34):
            assert rowvec.f_parts(M, bits) == (bits == 256 and 9 <= M <= 12), (M, bits)
    made = [line for line in _skinny._source(1, 11, 256).splitlines() if "f_parts=True" in line]
    assert [line.split(" = ")[0] for line in made] == ["_rows", "_loss"]


@pytest.mark.parametrize("K,M,bits", [(4, 4, 512), (4, 4, 256), (2, 2, 512), (1, 1, 512),
                                      (8, 2, 512), (2, 8, 512), (1, 4, 256), (4, 1, 256),
                                      (3, 3, 256), (3, 4, 256), (4, 3, 256), (2, 3, 256),
                                      (3, 2, 256), (3, 1, 256), (4, 3, 512)])
def test_rows_several_a_vector_have_rowvecs_bits(rng, K, M, bits):
    # rowgroups.py: rows of K and M powers of two, R = lanes ÷ max(K, M) of them a vector (16
    # at 1×1 on 512 bits, 2 at 8×2), or with a 3 padded to 4 lanes (3×3 to 4×3, 3×1, 53e:
    # y spread, dy gathered back); h's and dx's sums as rowvec.py's rows (a vector a row)
    # sum them: dx and dy the same bits; f's and dW's sums in other orders, both within
    # torch's bounds.  Every remainder of rows past whole vectors (chunks of 37 rows, and of
    # 1: all masked), ties, from two threads and one, cached and streamed (chunks that start
    # off 16 bytes: past the caches only where they do not), dx and dy starting off a line;
    # float64 inputs, where they come here, rowvec.py's own rows
    from loopgrad._inputs import STREAM
    from loopgrad.cpu import rowgroups
    head = f"row_groups({K}, {M}, {bits}, "

    def one_a_vector(source):  # the same module on rowvec.py's rows
        return source.replace("from loopgrad.cpu.rowgroups import row_groups",
                              "from loopgrad.cpu.rowvec import row_vectors") \
            .replace(head, f"row_vectors({K}, {M}, ")
    for dtype in [d for d in (np.float32, np.float64) if rowgroups.applies(K, M, bits, d)]:
        grouped, single = (_row_vector_kernels(7, dtype, bits=bits, tag=tag, K=K, M=M, edit=edit)
                           for tag, edit in (("grp", None), ("sg", one_a_vector)))
        for N in (1003, 1000, 1001, 1002, 3):
            x, W, y = draw(rng, N, K, M, dtype)
            x[:40] = np.round(x[:40])  # ties
            W[:] = np.round(W * 2) / 2
            for parallel, chunk_rows, flags, skip in ((True, 37, 0, None), (False, 37, 0, None),
                                                      (True, 1, 0, None), (True, 37, STREAM, 0),
                                                      (True, 64, STREAM, 1)):
                (got, lf), (ref, _) = (k(parallel, x, W, y, 0.5, chunk_rows, flags=flags, skip=skip)
                                       for k in (grouped, single))
                assert_matches_torch(got, x, W, y, 0.5, form="sum")
                assert lf == got[0]  # the loss: f's bits
                case = (dtype, N, parallel, chunk_rows, flags, skip)
                assert np.array_equal(got[1], ref[1]) and np.array_equal(got[3], ref[3]), case
                if dtype == np.float64:  # rowvec.py's rows themselves
                    assert got[0] == ref[0] and np.array_equal(got[2], ref[2]), case


@pytest.mark.parametrize("K,M,want", [(8, 8, 7), (7, 11, 2)])  # 2: dW alone
def test_row_vectors_dw_along_x_rows_has_the_blocks_bits(rng, K, M, want):
    # AVX2's float32 rows of 5 to 8 inputs sum dW row by row along x's rows where the
    # blocks' FMAs would be more (rowvec.dw_across, dev/products_v43.md 44b): the same
    # products in the same order as the blocks', so their bits, whatever is asked; the
    # blocks of 32 rows run across chunks of 37 and end in a partial one
    from loopgrad.cpu import rowvec
    assert rowvec.dw_across(K, M, 256) and not rowvec.dw_across(K, M, 512)
    assert not rowvec.dw_across(5, 16, 256) and not rowvec.dw_across(13, 7, 256)
    x, W, y = draw(rng, 1001, K, M, np.float32)
    x[:40] = np.round(x[:40])  # ties
    source = _skinny._source(K, M, 256, want, np.dtype(np.float32))
    assert ", dw_across=True" in source
    both = [_row_vector_kernels(want, np.float32, bits=256, tag=tag, K=K, M=M, edit=edit)
            for tag, edit in (("ac", None), ("bk", lambda s: s.replace(", dw_across=True", "")))]
    for parallel in (True, False):
        got, ref = (k(parallel, x, W, y, 0.5, 37)[0] for k in both)
        if want == 7:
            assert_matches_torch(got, x, W, y, 0.5, form="sum")
        assert got[0] == ref[0], parallel
        for a, b in zip(got[1:], ref[1:]):
            assert np.array_equal(a, b, equal_nan=True), parallel


@pytest.mark.parametrize("K,M,dtype", [(8, 8, np.float32), (8, 4, np.float32),
                                       (4, 8, np.float64), (5, 7, np.float32),
                                       (16, 1, np.float32), (20, 1, np.float32),
                                       (12, 1, np.float64), (9, 1, np.float32),
                                       (36, 2, np.float32), (20, 4, np.float32),
                                       (20, 3, np.float32), (16, 8, np.float32),
                                       (12, 6, np.float32), (20, 5, np.float32),
                                       (32, 3, np.float32), (48, 6, np.float32),
                                       (6, 6, np.float64), (24, 12, np.float32),
                                       (8, 20, np.float32), (17, 9, np.float32)])
def test_row_vectors_streamed_stores_change_no_bit(rng, K, M, dtype):
    # want | STREAM has the row functions store dx's and dy's rows past the caches where a
    # row is a multiple of 16 bytes and the array starts on 16 bytes: outputs on a line,
    # 16 bytes past one and one element past (ordinary stores); rows of 8, 4 and (masked,
    # never streamed) 5 and 7 elements, 512- and 256-bit code; rowdots.py's dx rows of whole
    # vectors, of a partial last one streamed in 16-byte parts (20, 12 float64, 36×2, 20×4,
    # 20×3) and never streamed (9); at M ≥ 3 a vector of x's row at a time for a block's
    # rows where dx's rows lie on whole lines (32×3, 48×6 on a line), else row by row;
    # rowvec.py's rows of 16 lanes (16×8) and rows of whole 16-byte parts in a padded
    # vector, streamed in those parts (12 in 16: 12×6; 6 float64s in 8: 6×6; 24 in 32:
    # 24×12; y's 20 in 32: 8×20), and never streamed (17 in 32: 17×9; dev/products_v33.md
    # 34c).  Every bit as without, nothing left unwritten
    from loopgrad._inputs import STREAM
    x, W, y = draw(rng, 1001, K, M, dtype)
    x[:40] = np.round(x[:40])  # ties
    for bits in [b for b in (512, 256) if _skinny._along(K, M, b)]:  # 20×4: 512 only
        grads = _row_vector_kernels(7, dtype, bits=bits, tag="nt", K=K, M=M)
        ref, _ = grads(True, x, W, y, 0.5, 128)
        assert_matches_torch(ref, x, W, y, 0.5, form="sum")
        for skip in (0, 16 // np.dtype(dtype).itemsize, 1):
            got, _ = grads(True, x, W, y, 0.5, 128, flags=STREAM, skip=skip)
            assert got[0] == ref[0], (bits, skip)
            for a, b in zip(got[1:], ref[1:]):
                assert np.array_equal(a, b), (bits, skip)  # a NaN left would differ


@pytest.mark.parametrize("M", [9, 20])
def test_row_blocks_lanes_past_m_add_nothing(rng, M):
    # rowblocks.py's last block reads W and y as 0 past M, where x·0 is NaN for an infinite
    # x: f must stay inf there (torch's), not NaN; the bounds leave non-finite cases unchecked
    x, W, y = draw(rng, 301, 2, M, np.float64)
    W[:] = np.abs(W) + 0.5                   # h = +inf in every column of row 5
    x[5] = (np.inf, 1.0)
    got, _ = _row_vector_kernels(7, np.float64, bits=512, tag="rb", K=2, M=M)(
        True, x, W, y, 0.0, 64)
    ref = assert_matches_torch(got, x, W, y, 0.0, form="sum")
    assert got[0] == ref[0] == np.inf and np.isinf(got[1][5]).all()


@pytest.mark.parametrize("K,M,bits,dtype", [(16, 1, 512, np.float32), (23, 1, 256, np.float64),
                                            (9, 1, 512, np.float64), (8, 1, 256, np.float32),
                                            (20, 2, 512, np.float32), (20, 4, 512, np.float64), (21, 7, 512, np.float32),
                                            (17, 3, 512, np.float32), (16, 3, 256, np.float64)])
def test_row_dots_blocks_cut_anywhere_keep_each_rows_bits(rng, K, M, bits, dtype):
    # rowdots.py runs blocks of rows (a vector's lanes of y) from each chunk's first, the last
    # one partial (its rows past the chunk read the last row again and drop it): chunks of
    # 256 rows (whole blocks), of 37 and of 1 (a partial block each) give dx and dy the same
    # bits, row by row, and f and dW (sums over chunks) agree with torch either way
    x, W, y = draw(rng, 1001, K, M, dtype)
    x[:40] = np.round(x[:40])  # ties
    grads = _row_vector_kernels(7, dtype, bits=bits, tag="rd", K=K, M=M)
    whole, lf = grads(True, x, W, y, 0.5, 256)
    assert_matches_torch(whole, x, W, y, 0.5, form="sum")
    assert lf == whole[0]
    for chunk_rows in (37, 1):
        cut, lf = grads(True, x, W, y, 0.5, chunk_rows)
        assert_matches_torch(cut, x, W, y, 0.5, form="sum")
        assert lf == cut[0]
        assert np.array_equal(cut[1], whole[1]) and np.array_equal(cut[3], whole[3])


def test_rows_as_vectors_are_chosen_where_a_row_fills_a_vector():
    from loopgrad.cpu import rowvec
    assert "row_groups(4, 4, 256, 7)" in _skinny._source(4, 4, 256)  # several a vector (below)
    assert "row_vectors(8, 3, 7)" in _skinny._source(8, 3, 512)
    assert "row_vectors(6, 7, 7, dw_block=32, masked_store=False)" in _skinny._source(6, 7, 256)
    for K, M, bits in ((3, 5, 256), (6, 8, 512), (5, 8, 256),  # from K·M = 16 or M = 8; 8 on
                       # AVX2 (but K and M powers of two, two rows a vector, and with a 3
                       # among K, M ≤ 4: rowgroups.py's)
                       (9, 3, 512), (12, 6, 512), (16, 8, 512),  # x's row in 16 lanes (on
                       (12, 5, 256), (16, 8, 256), (9, 7, 256),  # AVX2 at M = 3, 4 rowdots')
                       (4, 9, 512), (8, 9, 512), (14, 16, 512), (14, 9, 512), (5, 13, 512),
                       (15, 9, 512), (16, 16, 512),  # K = 15, 16 past M = 8: float32 only
                       (17, 9, 512), (24, 12, 512), (33, 9, 512), (64, 16, 512),  # (x's row
                       (4, 17, 512), (12, 32, 512)):  # in 32 or 64 lanes; y's in 32)
        assert rowvec.applies(K, M, bits) and rowvec.applies(K, M, bits, np.float32)
        assert rowvec.applies(K, M, bits, np.float64) == (K <= 14 and M <= 16 or M <= 8)
        dt = next(d for d in (np.float64, np.float32)  # the dtype that takes these rows
                  if _skinny._along(K, M, bits, d) is rowvec)  # (9×3: float32's dot products)
        assert "row_vectors" in _skinny._source(K, M, bits, dtype=dt)
    for K, M, bits in ((2, 4, 512), (8, 1, 512), (3, 5, 512), (9, 2, 512), (3, 16, 512),
                       (3, 1, 256), (1, 4, 256), (1, 16, 256), (8, 8, 128), (4, 4, 128),
                       (12, 2, 256), (17, 5, 512), (65, 9, 512), (4, 33, 512), (13, 17, 512),
                       (16, 4, 256),
                       (17, 5, 256), (9, 9, 256), (8, 17, 256), (16, 16, 256)):
        assert not any(rowvec.applies(K, M, bits, d) for d in (None, np.float32, np.float64))
        assert "row_vectors" not in _skinny._source(K, M, bits)
    for K, M in ((4, 9), (7, 11), (8, 13), (8, 16)):  # y's row in 16 lanes on AVX2, float64's
        assert rowvec.applies(K, M, 256, np.float32)    # to M = 13 (dev/products_v42.md 43e)
        assert rowvec.applies(K, M, 256, np.float64) == (M <= 13)
        assert "row_vectors" in _skinny._source(K, M, 256)
    wide = machine.entry().vector_bits >= 256  # this machine's entry: 3×8 rows or tiles
    avx512 = machine.entry().vector_bits >= 512
    for dt in (np.float32, np.float64):
        assert cpu.is_tiled(8, 8, dt) != wide and cpu.is_tiled(4, 8, dt) != wide
        assert cpu.is_tiled(65, 9, dt) and cpu.is_tiled(4, 33, dt) and not cpu.is_tiled(4, 4, dt)
        assert cpu.is_tiled(4, 9, dt) != wide  # y's row in 16 lanes
        assert cpu.is_tiled(9, 8, dt) != wide  # 16 lanes of x's row (AVX2 too: 43d); dot
        assert cpu.is_tiled(17, 8, dt) != avx512  # products past K = 16 (AVX2's M = 8 from 20)
        assert cpu.is_tiled(24, 8, dt) != wide and cpu.is_tiled(19, 8, dt) != avx512
        for K, M in ((15, 9), (16, 16), (17, 9), (64, 16), (4, 17), (12, 32)):  # y's row in
            # 16 or 32 lanes: float64's stop at K = 14 and M = 16
            assert cpu.is_tiled(K, M, dt) == (dt == np.float64 or not avx512)
            assert ("a vector a row" in cpu.describe(10, K, M, dt)) != cpu.is_tiled(K, M, dt)
    assert ("a vector a row" in cpu.describe(10, 3, 8, np.float32)) == wide
    # with AVX-512 rowdots.py takes M = 3 from K = 10 first, though rowvec.applies there too
    assert ("dot products" in cpu.describe(10, 10, 3, np.float32)) == avx512
    from loopgrad.cpu import rowblocks  # K ≤ 3 past M = 8: blocks of 8 lanes, M at run time
    assert "row_blocks(2, 7)" in _skinny._source(2, 20, 512)  # (but rowvec.short_x's rows)
    assert _skinny._source(2, 17, 256, 7) == _skinny._source(2, 500, 256, 7)  # one module a K
    assert rowblocks.applies(1, 9, 512) and rowblocks.applies(1, 16, 256)  # K·M ≤ 16 too
    for K, M, bits in ((1, 8, 512), (4, 9, 512), (3, 8, 256), (3, 9, 128)):
        assert not rowblocks.applies(K, M, bits)
    assert ("blocks of 8" in cpu.describe(10, 3, 40, np.float32)) == wide
    from loopgrad.cpu import rowdots  # M = 1 to 4: dot products along a row, K at run time
    assert "row_dots(512, 1, 7)" in _skinny._source(9, 1, 512)
    assert "row_dots(256, 1, 5" in _skinny._source(8, 1, 256, 5)  # before rowvec.py's 8×1
    assert "row_dots(256, 2, 7" in _skinny._source(9, 2, 256)
    assert "row_dots(512, 4, 7)" in _skinny._source(16, 4, 512)
    assert "row_dots(512, 3, 7)" in _skinny._source(16, 3, 512)
    assert "row_dots(256, 3, 7" in _skinny._source(16, 3, 256)
    assert "row_dots(512, 8, 7)" in _skinny._source(17, 8, 512)  # from K = 17 (31i); float32's
    assert "row_dots(512, 8, 7)" in _skinny._source(25, 8, 512, dtype=np.float32)  # from 25,
    assert "row_vectors(17, 8, 7, dw_block=32" in _skinny._source(17, 8, 512, dtype=np.float32)
    assert ("a vector a row" in cpu.describe(10, 24, 6, np.float32)) == avx512  # (34g)
    assert "row_dots(256, 4, 7" in _skinny._source(16, 4, 256)
    assert rowdots.applies(512, 8, 512) and not rowdots.applies(513, 8, 512)  # W's copy
    assert rowdots.applies(1024, 4, 256) and not rowdots.applies(1025, 4, 256)
    assert rowdots.applies(1025, 4, 512) and rowdots.applies(5000, 3, 256)  # W shuffled
    for K, M in ((16, 5), (16, 6), (18, 7), (20, 8), (512, 8), (819, 5)):  # AVX2's M = 5 to 8
        assert rowdots.applies(K, M, 256) and f"row_dots(256, {M}, 7" in _skinny._source(K, M, 256)
    assert not rowdots.applies(513, 8, 256) and not rowdots.applies(820, 5, 256)
    for M in (1, 2):  # one module an M (M = 5 to 8: K up to COPIED // M)
        assert _skinny._source(16, M, 512, 7) == _skinny._source(3000, M, 512, 7)
    for M, bits in ((3, 512), (4, 512), (3, 256)):  # two: within W's copy and past it
        within, past = (_skinny._source(K, M, bits, 7) for K in (16, 3000))
        assert within == _skinny._source(rowdots.COPIED // M, M, bits, 7) and within != past
        assert past == _skinny._source(rowdots.COPIED // M + 1, M, bits, 7)
        assert "copy=False" in past and "copy=False" not in within
    for K, M, bits in ((8, 1, 512), (5, 1, 256), (8, 2, 512), (12, 5, 512), (7, 4, 256),
                       (8, 3, 512), (8, 4, 512), (7, 3, 256), (7, 2, 256), (15, 8, 512),
                       (16, 1, 128), (8, 5, 256), (9, 6, 256), (15, 7, 256), (19, 8, 256),
                       (17, 9, 512)):
        assert not rowdots.applies(K, M, bits)
    # float64 alone from a lower K at M = 8 with AVX-512 and M = 5 to 7 on AVX2 (32f)
    for K, M, bits in ((16, 8, 512), (9, 5, 256), (15, 5, 256), (10, 6, 256), (15, 6, 256),
                       (16, 7, 256), (17, 7, 256)):
        assert rowdots.applies(K, M, bits, np.float64) and rowdots.applies(K, M, bits)
        assert not rowdots.applies(K, M, bits, np.float32)
    # float32 alone from a lower K at M = 3 to 5 (32e), where float64 keeps rowvec.py's rows
    for K, M, bits in ((9, 3, 512), (9, 4, 512), (11, 4, 512), (13, 5, 512), (15, 5, 512)):
        assert rowdots.applies(K, M, bits, np.float32) and rowdots.applies(K, M, bits)
        assert not rowdots.applies(K, M, bits, np.float64)
        assert "row_dots" in _skinny._source(K, M, bits, dtype=np.float32)
        assert "row_vectors" in _skinny._source(K, M, bits, dtype=np.float64)
    # and on AVX2 M = 2 to 4 from K = 8 for both, float32's M = 1 from 6 (float64's LLVM's
    # rows below 8), where they took rowvec.py's rows (53c)
    for K, M in ((6, 1), (7, 1), (8, 2), (8, 3), (12, 3), (8, 4), (12, 4), (13, 3), (15, 4)):
        for dt in (np.float32, np.float64):
            assert rowdots.applies(K, M, 256, dt) == (M > 1 or dt == np.float32), (K, M, dt)
            assert ("row_dots" in _skinny._source(K, M, 256, dtype=dt)) \
                == rowdots.applies(K, M, 256, dt)
    for K, M in ((5, 1), (7, 2), (7, 3), (7, 4)):
        assert not rowdots.applies(K, M, 256)
    assert rowdots.applies(16, 5, 512) and rowdots.applies(16, 7, 512)  # from K = 16 (32c)
    assert ("dot products along a row" in cpu.describe(10, 20, 2, np.float32)) == wide
    assert cpu.is_tiled(20, 1, np.float32) != wide and cpu.is_tiled(1000, 2, np.float64) != wide


# (K, M, bits, dtype, a0): AVX2's 4×4 every way; rows of up to 8 lanes on both entries:
# rows of 5–7 elements masked into 8 lanes (5×7, 6×5), of 3 in LLVM's own vectors, and x's
# or g's broadcasts from the stack slot (past 4 lanes)
ROW_VECTORS = [(4, 4, 256, d, a) for d in (np.float32, np.float64) for a in (0.0, 0.5, 1.0)] + \
    [(4, 4, 512, np.float32, 0.5), (4, 4, 512, np.float64, 1.0)] + \
    [(8, 8, 512, np.float32, 0.0), (5, 7, 512, np.float64, 0.5), (3, 8, 512, np.float32, 1.0),
     (8, 3, 512, np.float64, 0.0), (6, 5, 256, np.float32, 0.5), (8, 8, 256, np.float64, 1.0)] + \
    [(3, 16, 512, np.float32, 0.5), (2, 33, 256, np.float64, 1.0), (1, 17, 512, np.float64, 0.0),
     (3, 9, 256, np.float32, 0.0)] + \
    [(16, 1, 512, np.float32, 0.5), (9, 1, 512, np.float64, 0.0), (37, 1, 256, np.float32, 1.0),
     (8, 1, 256, np.float64, 0.5), (100, 1, 512, np.float32, 0.0), (16, 2, 512, np.float32, 0.5),
     (21, 2, 256, np.float64, 1.0), (9, 2, 256, np.float32, 0.0), (33, 4, 512, np.float32, 1.0),
     (16, 4, 512, np.float64, 0.5), (16, 3, 512, np.float32, 0.5), (40, 3, 512, np.float64, 1.0),
     (19, 3, 256, np.float32, 0.0)] + \
    [(9, 3, 512, np.float32, 0.5), (11, 4, 512, np.float64, 1.0), (13, 7, 512, np.float32, 0.0),
     (16, 8, 512, np.float64, 0.5), (13, 4, 256, np.float64, 0.5), (9, 3, 256, np.float32, 1.0)] + \
    [(17, 5, 512, np.float32, 0.5), (40, 8, 512, np.float64, 1.0), (33, 6, 512, np.float32, 0.0),
     (24, 7, 512, np.float64, 0.5)] + \
    [(16, 4, 256, np.float32, 0.5), (33, 4, 256, np.float64, 1.0), (1100, 4, 512, np.float32, 0.0),
     (1400, 3, 256, np.float64, 0.5)] + \
    [(14, 16, 512, np.float32, 0.5), (4, 9, 512, np.float64, 1.0), (12, 13, 512, np.float32, 0.0),
     (7, 16, 512, np.float64, 0.5), (14, 11, 512, np.float64, 0.0), (8, 12, 512, np.float32, 1.0)] + \
    [(17, 5, 256, np.float64, 1.0), (20, 6, 256, np.float32, 0.5), (41, 7, 256, np.float64, 0.0),
     (40, 8, 256, np.float32, 1.0), (100, 8, 256, np.float64, 0.5), (19, 8, 512, np.float32, 0.5),
     (10, 3, 512, np.float32, 1.0), (12, 4, 512, np.float64, 0.0)] + \
    [(16, 16, 512, np.float32, 0.5), (15, 9, 512, np.float32, 1.0), (16, 12, 512, np.float64, 0.0)] + \
    [(13, 7, 256, np.float32, 0.5), (9, 8, 256, np.float64, 1.0)] + \
    [(7, 11, 256, np.float32, 0.0), (8, 13, 256, np.float64, 1.0)] + \
    [(2, 11, 512, np.float32, 1.0), (1, 11, 256, np.float32, 0.5), (3, 14, 512, np.float64, 0.0),
     (2, 13, 256, np.float64, 0.5), (1, 9, 512, np.float32, 0.0), (1, 15, 256, np.float32, 1.0),
     (1, 13, 512, np.float64, 0.5), (1, 6, 256, np.float32, 0.0), (1, 7, 512, np.float64, 0.5),
     (1, 5, 512, np.float32, 1.0), (2, 3, 256, np.float32, 0.5), (3, 2, 256, np.float64, 1.0),
     (3, 13, 256, np.float32, 0.5), (2, 8, 256, np.float32, 0.0), (3, 4, 256, np.float32, 0.5),
     (4, 3, 512, np.float32, 0.0)] + \
    [(16, 10, 512, np.float32, 0.0)] + \
    [(19, 6, 512, np.float64, 1.0), (21, 5, 256, np.float32, 0.5)] + \
    [(17, 9, 512, np.float32, 0.5), (33, 9, 512, np.float32, 1.0), (64, 16, 512, np.float32, 0.0),
     (31, 13, 512, np.float32, 0.5), (4, 17, 512, np.float32, 1.0), (12, 32, 512, np.float32, 0.0),
     (9, 23, 512, np.float32, 0.5), (20, 8, 512, np.float32, 1.0), (24, 6, 512, np.float32, 0.0),
     (17, 7, 512, np.float32, 0.5), (27, 8, 512, np.float32, 0.0)]
# rowdots.py: M = 1 to 4, whole vectors of a row and a partial last one; blocks of rows
# (M = 3: a padding lane) and a partial last block; rowvec.py's rows of x in 16 lanes (9–15
# of them masked; two registers on AVX2); rowdots.py's M = 5 to 8 from W's transposed copy;
# M = 4 on AVX2 (W's copy, 30g), M = 3 and 4 past the copy's bound (W's columns shuffled);
# rowvec.py's x rows of 9 to 16 in 16 lanes at M = 5 to 8 on AVX2 (dev/products_v42.md 43d)
# and y's rows of 9 to 16 at K = 4 to 8 (43e);
# M = 5 to 8 on AVX2 (float64: a row's y over two vectors, 31a); rowvec.py's y's rows of 9
# to 16 in 16 lanes (31c) and at K = 1 to 3 (dev/products_v51.md 52e; float32's dx at K = 2
# and 3 as sums across g·W's rows, 2×11 and 3×13, on AVX2 2×8 too: dev/products_v52.md
# 53a, 53d; rowgroups.py's rows with a 3 padded to 4 lanes, 3×4 and 4×3: 53e), at K = 15, 16 float32's route and float64 arithmetic's exact
# rerun of it (32a); dW's sums along x's rows where 8 < M < K (15×9, 16×10, float64 14×11 and
# 16×12: 33b); blocks of one row with h's last terms one by one (20×6, 17×5, 41×7, 100×8
# on AVX2, float64 19×6 with AVX-512) or, past TERMS, a masked vector (21×5: 33d); past
# K = 16 at M = 9 to 16, float32's x rows in 32 or 64 lanes, dW's sums along y's rows
# (17×9, 64×16: in passes of 16) or x's (33×9: three parts), and float64 arithmetic's
# rerun of them (dev/products_v33.md 34a); y's rows of 17 to 32 in 32 lanes (4×17,
# 9×23, 12×32: 34b); x's rows of 17 to 24 with y's of 6 to 8 (20×8, 24×6, 17×7) and
# float32's dot products at M = 8 from K = 25 (27×8: 34g)


@pytest.mark.parametrize("K,M,bits,dtype,a0", ROW_VECTORS)
def test_rows_as_vectors_match_torch_for_every_want(rng, K, M, bits, dtype, a0):
    x, W, y = draw(rng, 3001, K, M, dtype)
    x[:40] = np.round(x[:40])                 # integer rows: ties (h == 0) among them
    W[:] = np.round(W * 2) / 2
    x[7, 0], W[K - 1, min(2, M - 1)], y[11, M - 1] = np.nan, np.inf, np.inf  # NaN h (row 7), inf
    # in h, y
    x[9, 0] = np.inf  # ±inf h in row 9, and x·0 = NaN in lanes past M (rowblocks' last block)
    chunk_rows = 256
    kernels = functools.partial(_row_vector_kernels, dtype=dtype, bits=bits, K=K, M=M)
    (full, lf) = kernels(7)(True, x, W, y, a0, chunk_rows)
    narrow = dtype == np.float32 and _skinny._along(K, M, bits) is not None  # float32 arithmetic
    if narrow:  # which refuses inputs that are not finite (f NaN, rowvec.py's guard) ...
        assert np.isnan(full[0]) and np.isnan(lf)
        # ... and the API answers from float64 arithmetic (or its own kernel)
        assert_matches_torch(loopgrad.grads(x, W, y, relu_grad_at_zero=a0), x, W, y, a0,
                             form="sum")
        x, W, y = (np.nan_to_num(a, nan=0.5, posinf=2.0) for a in (x, W, y))
        (full, lf) = kernels(7)(True, x, W, y, a0, chunk_rows)
    assert_matches_torch(full, x, W, y, a0, form="sum")  # an unwritten NaN would fail here
    serial, _ = kernels(7)(False, x, W, y, a0, chunk_rows)
    for a, b in zip(full, serial):
        assert np.array_equal(a, b, equal_nan=True)      # serial and parallel: the same bits
    assert np.array_equal(lf, full[0], equal_nan=True)   # the loss: f's bits
    finite = [np.nan_to_num(a, nan=0.5, posinf=2.0) for a in (x, W, y)]  # f not NaN here
    assert_matches_torch(kernels(7)(True, *finite, a0, chunk_rows)[0], *finite, a0, form="sum")
    finite[0][9, 0] = np.inf  # row 9's h ±inf (NaN where W is 0): f inf or NaN as torch's,
    got = kernels(7)(True, *finite, a0, chunk_rows)[0]  # which the bounds leave unchecked
    if narrow:  # (refused in float32)
        assert np.isnan(got[0])
    else:  # (finite where every h of row 9 is −inf: then within the bounds)
        ref = assert_matches_torch(got, *finite, a0, form="sum")[0]
        assert np.isfinite(ref) or np.array_equal(got[0], ref, equal_nan=True)
    # f alone ... dx and dy: every want where relu'(0) = ½ (about a third of the cases, every
    # kind of row among them), f alone elsewhere — each want a module to compile, and CI's
    # run on 2 cores is near its 15 minutes
    for want in (0, 1, 2, 4, 5) if a0 == 0.5 else (0,):
        got, _ = kernels(want)(True, x, W, y, a0, chunk_rows)
        assert np.array_equal(got[0], full[0], equal_nan=True)
        for bit, i in ((1, 1), (2, 2), (4, 3)):
            if want & bit:
                assert np.array_equal(got[i], full[i], equal_nan=True)
            else:
                assert np.isnan(got[i]).all()             # not asked for: not written


@pytest.mark.parametrize("K,M", [(8, 8), (5, 7), (4, 4), (3, 16), (1, 17), (16, 1), (40, 1),
                                 (10, 2), (12, 4), (16, 16)])
def test_float32_row_vectors_refuse_sums_float32_cannot_hold(K, M):
    # float32 rows as vectors (and in blocks of 8, K ≤ 3) return NaN, and the API runs the
    # same rows in float64 arithmetic, where a float32 sum overflows and float64's would not: dW[0, :]
    # = 3e38·(−1 − 1 + 2) (0 in float64, −inf in float32: f finite, W zero, so only the dW
    # check sees it; rowblocks.py sums dW in float64 and has no such case), from rows 0, 4
    # and 8, which rowgroups.py's vectors of 2 or 4 rows also sum in one lane; h = 1e20·1e20
    # (f's z inf); and dx's bound (f finite, 2·√f·‖W‖ past half of float32's max).  The
    # API's answers are float64 arithmetic's (torch's in float64, rounded as stored)
    N = 300
    x, W, y = (np.zeros(s, np.float32) for s in ((N, K), (K, M), (N, M)))
    x[[0, 4, 8], 0] = 3e38
    y[[0, 4]], y[8] = 1.0, -2.0       # g = −y (h = 0, relu'(0) = ½)
    h_big = [np.ones(s, np.float32) for s in ((N, K), (K, M), (N, M))]
    h_big[0][5, 0], h_big[1][0, 0] = 1e20, 1e20
    dx_big = [np.ones(s, np.float32) for s in ((N, K), (K, M), (N, M))]
    dx_big[2][7, min(1, M - 1)], dx_big[1][0, 0] = -1e19, 1e19  # z ≈ 1e19 (f 1e38), ‖W‖ 1e19
    from loopgrad.cpu import rowblocks
    for bits in [b for b in (512, 256) if _skinny._along(K, M, b)]:  # 4×4: rowgroups.py's
        grads = _row_vector_kernels(7, np.float32, bits=bits, tag="guard", K=K, M=M)
        # (dW's float32 sums: rowvec.py's and rowdots.py's; rowblocks.py sums it in float64)
        for case in ([(x, W, y)] if _skinny._along(K, M, bits) is not rowblocks else []) + \
                [h_big, dx_big]:
            assert np.isnan(grads(True, *case, 0.5, 128)[0][0]), bits
        ok = [np.full(s, 0.5, np.float32) for s in ((N, K), (K, M), (N, M))]
        assert not np.isnan(grads(True, *ok, 0.5, 128)[0][0])  # and ordinary inputs pass
    got = loopgrad.grads(x, W, y, relu_grad_at_zero=0.5)
    assert got.f == 6.0 * M and np.array_equal(got.dW, np.zeros((K, M), np.float32))
    if cpu.narrow_rows(K, M, np.float32):  # the same rows in float64 arithmetic answer
        assert cpu._float64_rows("grads", np.float32, False, K, M) is \
            _skinny.kernel("grads", K, M, np.float32, False, exact=True)
    nan = [a.copy() for a in h_big]
    nan[0][3, 0] = np.nan  # refused by both the float32 rows and the float64 ones' f: NaN
    assert np.isnan(loopgrad.loss(*nan)) and np.isnan(loopgrad.grads(*nan).f)
    from loopgrad import reference
    for case in (h_big, dx_big):
        got = loopgrad.grads(*case, relu_grad_at_zero=0.5)
        if cpu.narrow_rows(K, M, np.float32):  # the loss rows refuse as the grads rows do:
            assert loopgrad.loss(*case) == got.f  # both answered by float64 arithmetic
        # (where (K, M) is tiled, as 16×16 on AVX2, the tiled loss has no dx to refuse
        # and keeps its float32 h: f within the contract, checked below, not these bits)
        with np.errstate(all="ignore"):
            ref = reference.torch_autograd(*case, 0.5, form="sum")
            bounds = reference.error_bounds(*case, ref)
        for name, g, r, b in zip(("f", "dx", "dW", "dy"), got, ref, bounds):
            if name != "f":
                with np.errstate(over="ignore"):
                    r = np.asarray(r).astype(np.float32).astype(np.float64)  # as stored
            reference.check(name, g, r, b)
        reference.check("f", loopgrad.loss(*case), ref[0], bounds[0])


@pytest.mark.parametrize("K,M,dtype,bits", [(8, 8, np.float32, 256), (6, 5, np.float64, 256),
                                          (5, 8, np.float32, 256), (12, 16, np.float32, 512),
                                          (9, 11, np.float64, 512)])
def test_row_vectors_dw_by_blocks_has_the_row_loops_bits(rng, monkeypatch, K, M, dtype, bits):
    # on 256-bit vectors past K = 4 and 4 lanes, and on 512-bit ones past M = 8 from K = 9
    # (y's row in 16 lanes: float64's sums 8 lanes a part), dW's sums run over blocks of
    # rows after them (rowvec.dw_rows): the same sums in the same order as row by row, so
    # every output has the row loop's bits; chunks of 100 rows end inside a block of 32
    from loopgrad.cpu import rowvec
    assert rowvec.dw_rows(K, M, bits) == 32 and "dw_block=32" in _skinny._source(K, M, bits)
    if bits == 256:
        assert not rowvec.dw_rows(K, M, 512) and "dw_block" not in _skinny._source(K, M, 512)
    assert not rowvec.dw_rows(4, 8, 256) and not rowvec.dw_rows(8, 4, 256)
    assert not rowvec.dw_rows(8, 16, 512) and not rowvec.dw_rows(16, 8, 512)
    x, W, y = draw(rng, 1000, K, M, dtype)
    x[:40] = np.round(x[:40])  # ties
    kernels = functools.partial(_row_vector_kernels, 7, dtype, bits=bits, K=K, M=M)
    blocks, _ = kernels(tag="blk")(True, x, W, y, 0.5, 100)
    monkeypatch.setattr(rowvec, "dw_rows", lambda K, M, bits: 0)
    assert "dw_block" not in _skinny._source(K, M, bits)
    rowwise, _ = kernels(tag="row")(True, x, W, y, 0.5, 100)
    assert_matches_torch(blocks, x, W, y, 0.5, form="sum")
    for a, b in zip(blocks, rowwise):
        assert np.array_equal(a, b)


def test_rows_as_vectors_have_the_lanes_arithmetic(rng):
    # for float64 inputs the same operations as the row function LLVM vectorizes over rows:
    # h, dy and dx have its bits; f and dW are sums in another order: close, not equal.
    # (Float32 inputs take float32 arithmetic here: rowvec.py's doc, the tests above.)
    dtype = np.float64
    x, W, y = draw(rng, 5000, 4, 4, dtype)
    got, _ = _row_vector_kernels(7, dtype)(True, x, W, y, 0.0, 512)
    lanes = run("grads", x, W, y, True) if machine.entry().vector_bits != 256 else \
        _row_vector_kernels(7, dtype, bits=512, tag="lanes")(True, x, W, y, 0.0, 512)[0]
    assert np.array_equal(got[3], lanes[3])
    assert np.array_equal(got[1], lanes[1])
    assert got[0] == pytest.approx(lanes[0], rel=1e-13)
    np.testing.assert_allclose(got[2], lanes[2], rtol=1e-12)
