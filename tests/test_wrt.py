"""Gradients on request (`wrt=`): each of the 8 choices, in every kernel family.

Against torch autograd in float64, and bitwise against the call with all three
gradients: f and every gradient asked for have the same bits, the others are
None, and (kernel level) the kernels never write them.
"""

import itertools

import numpy as np
import pytest

import loopgrad
from loopgrad import cpu
from loopgrad._inputs import WANT_ALL, WANT_DW, WANT_DX, WANT_DY, check_wrt
from loopgrad.cpu import rows, tiled
from _helpers import assert_matches_torch, draw

CHOICES = [c for r in range(4) for c in itertools.combinations(("x", "W", "y"), r)]
# one shape per kernel family (awkward sizes: no multiple of a tile or a vector)
FAMILIES = {
    "general rows": (203, 2, 19),     # K ≤ 3, K·M > 16 (in blocks of 8 on AVX2, AVX-512)
    "skinny": (1001, 3, 5),           # K·M ≤ 16: generated per choice
    # LLVM interleaves 1×1's all-gradients row loop 4 vectors a step: without the
    # interleave count fixed (skinny._llvm_options), the lighter choices differ in f's bits
    "skinny 1×1": (1001, 1, 1),
    "tiled fused": (301, 20, 37),
    # dW without dx asks for the next block under dW's calls (dev/products_v37.md 38a):
    # with its tiles laid as dWᵀ's (nests.dw_transposed: 64×17 on AVX-512 and AVX2), and
    # K past MC (dW's rows in three calls a block, each asking for its share)
    "tiled fused dWᵀ": (301, 64, 17),
    "tiled fused K past MC": (301, 200, 20),
    "tiled three-pass": (97, 150, 460),  # K·Mp > 65536 (tiled.fused_limit)
}
if cpu.rowvec.applies(6, 7, cpu.machine.entry().vector_bits):  # AVX2, AVX-512: K, M ≤ 8
    FAMILIES["skinny as vectors"] = (1001, 6, 7)


def _inputs(rng, family, dtype):
    x, W, y = draw(rng, *FAMILIES[family], dtype)
    W[:, 0] = 0.0  # exact ties: h == 0 in column 0
    return x, W, y


def test_the_shapes_reach_their_families():
    for family, (N, K, M) in FAMILIES.items():
        kernel = cpu.describe(N, K, M, np.float32)
        first = family.split()[0]
        if family == "general rows" and cpu.skinny.covers(K, M):  # rowblocks.py
            first = "skinny"
        assert kernel.startswith(first), kernel
        if family.startswith("tiled"):
            assert ("fused" in kernel) == family.startswith("tiled fused"), kernel
        isa = cpu.machine.entry().isa
        if family == "tiled fused dWᵀ" and isa in ("avx512", "avx2"):
            _, variant, _, _ = tiled.plan(N, K, M, np.float32)
            assert tiled.module(variant, isa, "fused").dw_transposed(K, M)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_choice_matches_torch_and_the_full_call(rng, family):
    x, W, y = _inputs(rng, family, np.float64)
    full = loopgrad.grads(x, W, y, relu_grad_at_zero=0.5)
    assert_matches_torch(full, x, W, y, 0.5)
    for wrt in CHOICES:
        got = loopgrad.grads(x, W, y, wrt=wrt, relu_grad_at_zero=0.5)
        assert got.f == full.f, wrt
        for name, a, b in zip("xWy", got[1:], full[1:]):
            if name in wrt:
                assert a.tobytes() == b.tobytes(), (wrt, name)
            else:
                assert a is None, (wrt, name)


def _kernel_call(family, x, W, y, want, parallel):
    # the family's grads kernel on NaN-poisoned outputs of full size, whatever `want` is:
    # the ones not wanted must come back untouched
    N, K = x.shape
    M = W.shape[1]
    outs = [np.full(s, np.nan, x.dtype) for s in ((N, K), (K, M), (N, M))]
    if family.startswith("tiled"):
        name, variant, nchunks, chunk_rows = tiled.plan(N, K, M, x.dtype)
        n64, nT = tiled.scratch(name, variant, N, K, M, nchunks, want=want)
        ws64, wsT = np.full(n64, np.nan), np.full(nT, np.nan, x.dtype)  # exactly `scratch`
        f = tiled.kernel(name, variant, parallel)(*outs, x, W, y, 0.5, nchunks, chunk_rows,
                                                  ws64, wsT, want)
    else:
        chunk_rows, nchunks, stride = rows.plan(N, K, M)
        chunk_rows = -(-N // 3)  # three chunks, so that parallel runs in parallel
        partials = np.full((3, stride), np.nan)
        kern = cpu.row_kernel("grads", x.dtype, parallel, K, M, want)
        f = kern(*outs, partials, x, W, y, 0.5, chunk_rows, want)
    return f, outs


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("family", FAMILIES)
def test_kernels_write_only_what_is_asked(rng, family, parallel):
    x, W, y = _inputs(rng, family, np.float32)
    f_all, full = _kernel_call(family, x, W, y, WANT_ALL, parallel)
    assert not any(np.isnan(a).any() for a in full)
    if parallel:  # the API's own call, for the same bits (one chunking: tiled kernels)
        if family.startswith("tiled"):
            assert loopgrad.grads(x, W, y, relu_grad_at_zero=0.5).f == f_all
    for wrt in CHOICES:
        want = check_wrt(wrt)
        f, outs = _kernel_call(family, x, W, y, want, parallel)
        assert f == f_all, wrt
        for bit, a, b in zip((WANT_DX, WANT_DW, WANT_DY), outs, full):
            if want & bit:
                assert a.tobytes() == b.tobytes(), (wrt, bit)
            else:
                assert np.isnan(a).all(), (wrt, bit)  # never written


def test_serial_and_parallel_agree_for_a_subset(rng):
    for family in ("general rows", "skinny", "skinny 1×1", "tiled three-pass"):
        x, W, y = _inputs(rng, family, np.float32)
        serial = _kernel_call(family, x, W, y, WANT_DW, False)
        par = _kernel_call(family, x, W, y, WANT_DW, True)
        assert serial[0] == par[0] and serial[1][1].tobytes() == par[1][1].tobytes(), family


# LLVM vectorizes the generated skinny rows over rows, f and dW summed in lanes of rows: each
# `want`'s kernel must start its vector loop at the same chunk length, or chunks of 8 to 31
# rows gave other bits of f and dW by `want` (skinny._llvm_options; the 1×1 rows take 32 a
# step).  One chunk of N rows, N = 1 to 40, every kernel on NaN-poisoned outputs
@pytest.mark.parametrize("K,M,dtype", [(1, 1, np.float64), (2, 2, np.float64), (3, 1, np.float32)])
def test_short_chunks_of_generated_rows_keep_their_bits(rng, K, M, dtype):
    if cpu.skinny.family(K, M, dtype) is not None:
        pytest.skip(f"{K}×{M} rows are on intrinsics on this entry")
    wants = (WANT_ALL, WANT_DX | WANT_DW, WANT_DW, 0)
    kernels = {w: cpu.row_kernel("grads", dtype, False, K, M, w) for w in wants}
    stride = rows.plan(1, K, M)[2]
    for N in range(1, 41):
        x, W, y = draw(rng, N, K, M, dtype)
        got = {}
        for w, kern in kernels.items():
            dW = np.full((K, M), np.nan, dtype)
            f = kern(np.full((N, K), np.nan, dtype), dW, np.full((N, M), np.nan, dtype),
                     np.full((1, stride), np.nan), x, W, y, 0.5, N, w)
            got[w] = (f, dW.tobytes() if w & WANT_DW else None)
        f_all, dW_all = got[WANT_ALL]
        assert np.isfinite(f_all)
        for w, (f, dW) in got.items():
            assert f == f_all, (N, w)
            assert dW is None or dW == dW_all, (N, w)


def test_torch_tensors_and_strided_inputs(rng):
    torch = pytest.importorskip("torch")
    x, W, y = draw(rng, 120, 9, 7, np.float64)
    xt = np.ascontiguousarray(x.T).T  # a transposed view: copied once, same values
    ys = np.zeros((120, 14))[:, ::2]
    ys[:] = y
    got = loopgrad.grads(torch.from_numpy(xt), torch.from_numpy(W), torch.from_numpy(ys), wrt="W")
    assert got.dx is None and got.dy is None and isinstance(got.dW, torch.Tensor)
    full = loopgrad.grads(x, W, y)
    assert got.f == full.f and got.dW.numpy().tobytes() == full.dW.tobytes()


def test_spellings_of_wrt(rng):
    x, W, y = draw(rng, 50, 5, 6, np.float64)
    a = loopgrad.grads(x, W, y, wrt="W")
    for same in (("W",), ["W"], ("W", "W")):
        b = loopgrad.grads(x, W, y, wrt=same)
        assert b.dx is None and b.dy is None and b.dW.tobytes() == a.dW.tobytes()
    c = loopgrad.grads(x, W, y, wrt=("y", "x"))  # order does not matter
    assert c.dW is None and c.dx is not None and c.dy is not None
    assert loopgrad.grads(x, W, y, wrt=()).f == loopgrad.grads(x, W, y).f


@pytest.mark.parametrize("wrt, error, words", [
    ("w", ValueError, "'W'"),
    (("x", "z"), ValueError, "'z'"),
    (("x", 1), ValueError, "1"),
    (3, TypeError, "wrt must be"),
    (None, TypeError, "wrt must be"),
])
def test_bad_wrt_is_refused(rng, wrt, error, words):
    x, W, y = draw(rng, 5, 2, 2, np.float64)
    with pytest.raises(error, match="wrt") as e:
        loopgrad.grads(x, W, y, wrt=wrt)
    assert words in str(e.value)
