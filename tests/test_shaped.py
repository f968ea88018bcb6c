"""The fused kernel compiled for one (K, M) (loopgrad/cpu/shaped.py): bitwise the generic
kernel, and what loopgrad.cpu does with it."""

import numpy as np
import pytest

import loopgrad
from loopgrad import cpu
from loopgrad.cpu import background, machine, shaped, tiled
from loopgrad._inputs import STREAM, WANT_ALL, WANT_DW, WANT_DX, WANT_DY
from _helpers import assert_matches_torch, draw, past_a_line

# Each shape sits where a literal changes what the pieces do (each costs its kernel's
# compile, 5–10 s): h's and dW's last panels beside a whole one (mkw) and dx's in a pair
# tail (24×40); dW's tiles laid as dWᵀ's (64×17 on AVX-512 and AVX2); K past MC, dW's rows
# of K in two calls (200×20); g's rows a line longer than M (M a multiple of 8·NR·4 bytes:
# 20×128, nests.g_stride); float64
SHAPES = [(301, 24, 40, np.float32), (257, 64, 17, np.float32), (301, 200, 20, np.float32),
          (150, 20, 128, np.float32), (203, 13, 70, np.float64)]
WANTS = [WANT_ALL, WANT_ALL | STREAM, WANT_DX, WANT_DW, WANT_DY, WANT_DX | WANT_DY]


def _kernels(N, K, M, dtype, parallel=False):
    name, variant, nchunks, rows = tiled.plan(N, K, M, dtype)
    assert name == "grads_fused" and shaped.applies(K, M)
    return (tiled.kernel(name, variant, parallel), shaped.kernel(variant, K, M, parallel),
            variant, nchunks, rows)


def _call(kern, variant, x, W, y, a0, nchunks, rows, want, skip=0):
    N, K = x.shape
    M = W.shape[1]
    n64, nT = tiled.scratch("grads_fused", variant, N, K, M, nchunks, want=want)
    ws64, wsT = np.full(n64 + 3, np.nan), np.full(nT + 3, np.nan, x.dtype)  # poisoned
    out = [past_a_line(s, x.dtype, skip) for s in ((N, K), (K, M), (N, M))]
    f = kern(*out, x, W, y, a0, nchunks, rows, ws64, wsT, want)
    return f, *out


@pytest.mark.parametrize("N,K,M,dtype", SHAPES)
def test_bitwise_the_generic_kernel(rng, N, K, M, dtype):
    generic, own, variant, nchunks, rows = _kernels(N, K, M, dtype)
    x, W, y = draw(rng, N, K, M, dtype)
    x[::7] = 0.0  # rows whose h is exactly 0: relu'(0) = a0 decides their g
    for want in WANTS:
        for a0 in (0.0, 0.5):
            for skip in (0, 3):  # outputs on a cache line (streamed) and off it
                a = _call(generic, variant, x, W, y, a0, nchunks, rows, want, skip)
                b = _call(own, variant, x, W, y, a0, nchunks, rows, want, skip)
                assert a[0] == b[0], (want, a0)
                for u, v in zip(a[1:], b[1:]):  # gradients not wanted: NaN in both
                    assert np.array_equal(u, v, equal_nan=True), (want, a0, skip)
    f, dx, dW, dy = _call(own, variant, x, W, y, 0.0, nchunks, rows, WANT_ALL)
    assert_matches_torch((f, dx, dW, dy), x, W, y)


def test_a_fresh_random_shape_and_chunking(rng):
    # K, M drawn where the fused kernel runs on every entry (not the skinny rows), chunks of
    # any length: bitwise the generic kernel's
    K, M = int(rng.integers(9, 48)), int(rng.integers(17, 60))
    N = int(rng.integers(200, 900))
    generic, own, variant, _, _ = _kernels(N, K, M, np.float32)
    x, W, y = draw(rng, N, K, M, np.float32)
    for rows in (tiled.plan(N, K, M, np.float32)[3], 97, N):
        nchunks = -(-N // rows)
        a = _call(generic, variant, x, W, y, 0.0, nchunks, rows, WANT_ALL)
        b = _call(own, variant, x, W, y, 0.0, nchunks, rows, WANT_ALL)
        assert a[0] == b[0] and all(np.array_equal(u, v) for u, v in zip(a[1:], b[1:])), \
            (N, K, M, rows)


def test_the_literals_are_the_drivers_arguments():
    # the wrappers pass, for each piece, what the fused driver passes: the text of each
    # call in nests.py names those arguments so (a change there must change _LITERALS)
    part = tiled._nests("fused")
    driver = part[part.index("def _grads_fused_parallel("):]
    assert "lg = g_stride(M, Mp)" in driver
    assert "forward_block(g, dy if wdy else sink, x, Wp, y, a0, K, M, Mp, lg, NR, KC, r0,\n" \
        "                               rows, 0, Mp // NR, Ap, Ct, True," in driver
    assert "dx_block(Sb[bi * MC * K:] if stage else dx, g, Wtp, K, M, lg,\n" \
        "                         0 if stage else r0, rows, 0, Kp // NR, Ct," in driver
    assert "dw_block_t(pc, x, g, K, M, lg, r0, r0 + rows, Ct, y, q0, q1)" in driver
    assert "dw_block(pc, x, g, K, M, Mp, lg, r0, r0 + rows, k0, min(MC, K - k0), Ap, Ct," \
        in driver and "for k0 in range(0, K, MC):" in driver
    name, src = shaped._generated(tiled.variant(24, 40, np.float32), machine.entry().isa,
                                  24, 40)
    assert "KK, MM = 24, 40" in src and src.count("inline=\"always\"") == 4


def test_a_hot_shape_gets_its_kernel_and_the_same_bits(monkeypatch, rng):
    N, K, M = 3001, 24, 40  # the first test's kernels (serial: this size runs in parallel)
    monkeypatch.setattr(shaped, "HOT_S", 0.0)
    monkeypatch.delenv(shaped.ENV, raising=False)
    x, W, y = draw(rng, N, K, M, np.float32)
    first = loopgrad.grads(x, W, y)
    background.wait()
    for _ in range(3):  # the generic kernel ready, then the shape's compile started, then it
        loopgrad.grads(x, W, y)
        background.wait()
    par = N * K * M >= cpu.TILED_PARALLEL_WORK and cpu.parallel.allowed()
    variant = tiled.plan(N, K, M, np.float32)[1]
    assert ("shaped", variant, par, K, M) in cpu._READY
    again = loopgrad.grads(x, W, y)
    assert again.f == first.f
    for a, b in zip(again[1:], first[1:]):
        assert np.array_equal(a, b)


def test_specialize_compiles_now_and_the_switch_turns_it_off(monkeypatch, rng):
    N, K, M = 3001, 24, 40
    monkeypatch.delenv(shaped.ENV, raising=False)
    assert cpu.specialize(N, K, M, np.float32)
    assert "compiled for K, M" in cpu.describe(N, K, M, np.float32)
    assert not cpu.specialize(10, 4, 4, np.float32)        # the skinny rows
    assert not cpu.specialize(50, 300, 300, np.float32)    # three-pass
    assert not cpu.specialize(1000, 100, 100, np.float32)  # K·M past MAX_KM
    monkeypatch.setenv(shaped.ENV, "0")
    assert not shaped.enabled() and not cpu.specialize(N, K, M, np.float32)
    assert "compiled for K, M" not in cpu.describe(N, K, M, np.float32)
    monkeypatch.setattr(shaped, "HOT_S", 0.0)
    spent = dict(cpu._SPENT)
    x, W, y = draw(rng, N, 20, 36, np.float32)
    for _ in range(3):
        loopgrad.grads(x, W, y)
    assert cpu._SPENT == spent  # not even counted
