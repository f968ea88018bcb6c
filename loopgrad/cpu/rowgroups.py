"""Float32 rows of K and M up to 8 (powers of two) in groups, several rows a vector, in LLVM
IR: R = lanes ÷ max(K, M) rows a vector (four 4×4 rows a 512-bit vector, two a 256-bit
one; sixteen 1×1 rows, two 8×8); and rows with a 3 among K and M up to 4 (`PADDED`) as if
that 3 were 4: R = lanes ÷ max(Kw, Mw), Kw and Mw the powers of two from K and M, y's, h's,
z's and g's lanes of row r [r·Mw, r·Mw + M) (y's rows loaded end to end and spread, a zero
in the lane past M; dy's gathered back before their store), x's and dx's rows end to end
in R·K lanes, W's rows with a zero past M.

rowvec.py's rows take a vector a row: at 4×4, 4 of a 512-bit vector's 16 lanes live, and
its loop is bound by its instructions (10⁶×4×4 natively at 75–77 % of the copy on Zen 5,
13.6 cycles a row a core: dev/products_v49.md 50c); LLVM's vectors of rows (skinny.py's
scalar rows, below K·M = 16) shuffle their rows in and out.  Here the R rows from n lie one
after the other in x (R·K lanes), y, dx and dy, each one load or store, and lane r·M + m of
h, z and g (r·Mw + m where padded) is element m of row n + r:

    xb_k   x[n+r, k] in row r's M lanes (a shuffle), k < K
    h      Σ_k xb_k·W_k, W_k W's row k in every row's lanes
    z, f, g, dy   rowvec.py's, lane for lane
    dx     Σ_m gb_m·V_m in R·K lanes, gb_m g[n+r, m] in row r's K lanes, V_m W's column m
    dW     K accumulators += xb_k·g: lane (r, m) of accumulator k sums x[·,k]·g[·,m] over
           the rows r, r + R, r + 2R, ... of a block

h's and dx's sums are rowvec.py's, term for term in the same order (one chain of FMAs up
to THIN_ONE_CHAIN terms, else the even and the odd terms apart), so h, z, g, dx and dy
have rowvec.py's bits.  f and dW are summed in other orders: f in R·Mw float64 partial sums
(lane (r, m) over the rows n ≡ r), added at the end by rows, then by columns, in halves;
dW's float32 sums over blocks of NARROW_BLOCK rows from the chunk's first, each lane then
added to a float64 one, and the R lanes of each (k, m) added last in halves.  A chunk's
rows past its last whole vector are one vector loaded and stored masked, its missing rows
zeros (h = 0, z = 0, g = 0: nothing added but zeros).  dx's and dy's vectors go past the
caches where a call asks (STREAM) and the chunk's first row and each vector lie on 16-byte
boundaries.  rowvec.guarded refuses a chunk whose float32 sums may have overflowed, as
for rowvec.py's rows.  Float64 inputs, and narrow=False (float32's rerun in float64
arithmetic), take rowvec.py's own rows; float64 ones come here only where those are
rowvec.py's (`applies`), else they stay LLVM's vectors of rows.

On the Zen 5 guest, 2 threads, 10⁶ rows, `out=`, best ms before → after: natively 1×1
0.135 → 0.121, 1×4 0.77 → 0.51, 2×2 0.52 → 0.35, 4×2 0.95 → 0.67, 4×4 1.88 → 0.97, 8×2
2.19 → 1.46, 8×8 3.09 → 2.94, 4×8 2.23 → 2.16 (1.03–1.94×); as AVX2 (K, M ≤ 4) 1×1 0.220
→ 0.139, 2×2 1.04 → 0.42, 2×4 1.34 → 1.00, 4×4 1.87 → 1.32 (1.34–2.45×;
dev/products_v50.md 51b).

    row_groups(K, M, vector_bits, want)(dx, dW_part, dy, x, W, y, relu_grad_at_zero,
                                       start, stop, flags) -> f
    row_groups(K, M, vector_bits, 0, loss=True)(x, W, y, start, stop) -> f

take row_vectors' arguments (rowvec.py's module doc).
"""

import functools

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._inputs import STREAM, WANT_DW, WANT_DX, WANT_DY
from .intrinsics import (_PART, _madd, _masked, _prefetch, _splat, _store_streamed_parts,
                         _streams, relu_grad_at)
from . import rowvec
from .rowvec import NARROW_BLOCK, PF_BYTES, THIN_ONE_CHAIN, guarded, row_codegen

SIZES = (1, 2, 4, 8)  # K and M: whole rows in a vector's lanes, a power of two each
# (K, M) of 3 by the entry's vector bits whose rows take padded lanes (module doc): as AVX2
# in cache, one thread, cycles a row, 3×3 12.8 → 11.5, 3×4 12.4 → 10.6, 4×3 14.5 → 11.0,
# 2×3 10.8 → 10.2, 3×2 10.4 → 7.9, 3×1 8.7 → 6.1; natively 3×3 9.3 → 8.5, 3×4 10.2 → 7.8,
# 4×3 10.4 → 8.1, 2×3 8.4 → 7.4, 3×2 7.9 → 6.1 (3×1, 1×3 level there; 1×3 on AVX2 1.2×,
# but rowvec.py sums its dx across g·W's row: not taken; dev/products_v52.md 53e)
PADDED = {256: ((3, 1), (2, 3), (3, 2), (3, 3), (3, 4), (4, 3)),
          512: ((2, 3), (3, 2), (3, 3), (3, 4), (4, 3))}


def applies(K: int, M: int, vector_bits: int, dtype=None) -> bool:
    """Whether skinny.py builds the (K, M) row functions on these intrinsics for an entry
    of vector_bits and inputs of dtype (None: either): K and M in SIZES with at least two
    rows a vector (R = lanes ÷ max(K, M)), on 256- and 512-bit entries, and PADDED's (K, M)
    (as AVX2 10⁶ rows, 2 threads, 3×3 1.39 → 1.15–1.19 ms, 4×3 1.53–1.56 → 1.10–1.12, 3×2
    0.97–1.02 → 0.63, 3×1 0.86–0.87 → 0.57; natively 3×4 1.07–1.13 → 0.75, 4×3 1.01–1.15 →
    0.69–0.72, 3×2 0.63–0.68 → 0.45–0.46, 3×3 1.07×; 53e); float64 inputs only
    where they take rowvec.py's rows (the intrinsics pass them on)."""
    if dtype is not None and np.dtype(dtype) == np.float64 \
            and not rowvec.applies(K, M, vector_bits, np.float64):
        return False
    if (K, M) in PADDED.get(vector_bits, ()):
        return True
    return K in SIZES and M in SIZES and vector_bits in (256, 512) \
        and vector_bits // 32 >= 2 * max(K, M)


@functools.lru_cache(maxsize=None)
def row_groups(K: int, M: int, vector_bits: int, want: int, loss: bool = False,
              narrow: bool = True, **rowvec_args):
    """The intrinsic for (K, M) on vectors of vector_bits and the gradients `want` names,
    or the loss's: float32 inputs several rows a vector (module doc) where narrow, else
    rowvec.row_codegen's rows with rowvec_args."""
    if not applies(K, M, vector_bits):
        raise ValueError(f"row_groups takes K and M in {SIZES}, at least two rows a vector of "
                         f"{vector_bits} bits; got K = {K}, M = {M}")
    own = _codegen(vector_bits // 32, K, M, want, loss) if narrow else None
    other = row_codegen(K, M, want, loss, narrow=narrow, **rowvec_args)

    def pick(x):  # x's pointer type: float32 inputs take these rows where narrow
        return own if own is not None and x.dtype == types.float32 else other

    if loss:
        @intrinsic
        def rows_loss(typingctx, x, W, y, start, stop):
            return types.float64(x, W, y, start, stop), pick(x)
        return rows_loss

    @intrinsic
    def rows(typingctx, dx, dW_part, dy, x, W, y, a0, start, stop, flags):
        return types.float64(dx, dW_part, dy, x, W, y, a0, start, stop, flags), pick(x)
    return rows


def _codegen(lanes: int, K: int, M: int, want: int, loss: bool):
    # the code of the float32 rows, R = lanes ÷ max(Kw, Mw) rows a vector: x's rows in R·K
    # lanes, y's (and h's, z's, g's) in R·Mw (R·M where M is a power of two)
    Kw, Mw = (1 << (n - 1).bit_length() for n in (K, M))  # each row's lanes: M of Mw
    R = lanes // max(Kw, Mw)
    wdx, wdw, wdy = (bool(want & b) and not loss for b in (WANT_DX, WANT_DW, WANT_DY))

    def codegen(context, builder, sig, args):
        if loss:
            (x, W, y, start, stop) = args
            a0 = ir.DoubleType()(0.0)
        else:
            (dx, dwp, dy, x, W, y, a0, start, stop, flags) = args
        f32, d, i64, i32 = ir.FloatType(), ir.DoubleType(), ir.IntType(64), ir.IntType(32)
        vm, vd = ir.VectorType(f32, R * Mw), ir.VectorType(d, R * Mw)  # h, z, g; f's partial sums
        zero, two = ir.Constant(vm, [0.0] * (R * Mw)), ir.Constant(vm, [2.0] * (R * Mw))

        def shuffle(v, idx):
            return builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined),
                                          ir.Constant(ir.VectorType(i32, len(idx)), idx))

        def at(ptr, row, n):  # the vector of R rows of n elements from `row`
            p = builder.gep(ptr, [builder.mul(row, i64(n))])
            return builder.bitcast(p, ir.VectorType(f32, R * n).as_pointer())

        def first(rows, n):  # the lanes of a vector's first `rows` rows of n (rows an i64)
            idx = ir.Constant(ir.VectorType(i64, R * n), [j // n for j in range(R * n)])
            return builder.icmp_signed("<", idx, _splat(builder, rows, R * n))

        def load(ptr, row, rows, n):  # R rows of n, or the first `rows` of them (others 0)
            vt = ir.VectorType(f32, R * n)
            if rows is None:
                return builder.load(at(ptr, row, n), align=4)
            return _masked(builder, "load", vt, at(ptr, row, n), 4, first(rows, n),
                           ir.Constant(vt, [0.0] * (R * n)))

        def store(v, ptr, row, rows, n, streamed):
            if rows is not None:
                _masked(builder, "store", v.type, at(ptr, row, n), 4, first(rows, n), v)
            elif streamed is None or R * n * 4 % _PART:
                builder.store(v, at(ptr, row, n), align=4)
            else:
                with builder.if_else(streamed) as (past, cached):
                    with past:
                        _store_streamed_parts(builder, v, at(ptr, row, n))
                    with cached:
                        builder.store(v, at(ptr, row, n), align=4)

        def madd(a, b, c):
            return _madd(builder, True, a, b, c)

        def spread(v):  # R rows of M end to end → each row in its Mw lanes (padding 0)
            if Mw == M:
                return v
            zeros = ir.Constant(v.type, [0.0] * (R * M))
            return builder.shuffle_vector(v, zeros, ir.Constant(ir.VectorType(i32, R * Mw), [
                j // Mw * M + j % Mw if j % Mw < M else R * M for j in range(R * Mw)]))

        def packed(v):  # spread's inverse: each row's first M lanes, end to end
            if Mw == M:
                return v
            return builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), ir.Constant(
                ir.VectorType(i32, R * M), [r * Mw + m for r in range(R) for m in range(M)]))

        # W's rows (lane r·Mw + m: W[k,m], 0 past M) and columns (lane r·K + k: W[k,m]), once
        w = [[builder.load(builder.gep(W, [i64(k * M + m)])) for m in range(M)] for k in range(K)]

        def repeated(vals):  # vals in each row's lanes
            n = len(vals)
            v = ir.Constant(ir.VectorType(f32, R * n), ir.Undefined)
            for j in range(R * n):
                v = builder.insert_element(v, vals[j % n], i32(j))
            return v
        Wrow = [repeated(w[k] + [f32(0.0)] * (Mw - M)) for k in range(K)]
        Wcol = [repeated([w[k][m] for k in range(K)]) for m in range(M)]
        sx = sy = None
        if not loss:  # dx's and dy's rows past the caches: asked for, and each vector on
            # 16-byte boundaries (the chunk's first row there, and whole 16-byte parts a vector)
            asked = builder.icmp_unsigned("!=", builder.and_(flags, i64(STREAM)), i64(0))
            sx, sy = (_streams(builder, asked, builder.gep(p, [builder.mul(start, i64(n))]),
                               align=_PART) for p, n in ((dx, K), (dy, M)))
        a0v = _splat(builder, builder.fptrunc(a0, f32), R * Mw)
        a0_zero, drop_nan = builder.fcmp_ordered("==", a0, d(0.0)), \
            builder.fcmp_ordered("==", a0, d(1.0))  # torch.clamp's rule: NaN h, g = 0
        fs = cgutils.alloca_once_value(builder, ir.Constant(vd, [0.0] * (R * Mw)))
        dW = [cgutils.alloca_once_value(builder, zero) for _ in range(K if wdw else 0)]
        dW64 = [cgutils.alloca_once_value(builder, ir.Constant(vd, [0.0] * (R * Mw))) for _ in dW]

        def flush():  # a block's float32 sums of dW added to the float64 ones
            for acc, acc64 in zip(dW, dW64):
                builder.store(builder.fadd(builder.load(acc64),
                                           builder.fpext(builder.load(acc), vd)), acc64)
                builder.store(zero, acc)

        def split(a, b):
            # Σ_i a[i]·b[i]: rowvec.py's order (`split`): one chain of FMAs in i's order up
            # to THIN_ONE_CHAIN terms, else the even i's and the odd i's apart, then added
            def chain(ids):
                c = builder.fmul(a[ids[0]], b[ids[0]])
                for i in ids[1:]:
                    c = madd(a[i], b[i], c)
                return c
            n = len(a)
            if n <= THIN_ONE_CHAIN:
                return chain(list(range(n)))
            return builder.fadd(chain(list(range(0, n, 2))), chain(list(range(1, n, 2))))

        def body(row, rows):
            # R rows from `row` (rows: None, or the first `rows` of them, an i64)
            for ptr, n in ((x, K), (y, M)) if PF_BYTES else ():
                _prefetch(builder, builder.gep(ptr, [builder.add(builder.mul(row, i64(n)),
                                                                 i64(PF_BYTES // 4))]))
            xr, yr = load(x, row, rows, K), spread(load(y, row, rows, M))
            xb = [shuffle(xr, [j // Mw * K + k for j in range(R * Mw)]) for k in range(K)]
            h = split(xb, Wrow)
            below = builder.fcmp_ordered("<", h, zero)  # max(h, 0) that keeps NaN
            z = builder.fsub(builder.select(below, zero, h), yr)
            z64 = builder.fpext(z, vd)  # f's z: float32's, its square exact in float64
            builder.store(madd(z64, z64, builder.load(fs)), fs)
            if loss:
                return
            t = builder.fmul(two, z)
            if wdy:
                store(packed(builder.fneg(t)), dy, row, rows, M, sy)
            if not (wdx or wdw):
                return
            g = relu_grad_at(builder, a0_zero, drop_nan, a0v, h, zero, t)
            if wdx:
                gb = [shuffle(g, [j // K * Mw + m for j in range(R * K)]) for m in range(M)]
                store(split(gb, Wcol), dx, row, rows, K, sx)
            for k in range(len(dW)):  # dW[k,m] += x[n,k]·g[n,m]
                builder.store(madd(xb[k], g, builder.load(dW[k])), dW[k])

        nrows = builder.sub(stop, start)
        whole = builder.sdiv(nrows, i64(R))  # vectors of R rows
        per = max(1, NARROW_BLOCK // R)  # vectors a block of dW's float32 sums
        nblocks = builder.sdiv(builder.add(whole, i64(per - 1)), i64(per))
        with cgutils.for_range(builder, nblocks) as block:
            v0 = builder.mul(block.index, i64(per))
            left = builder.sub(whole, v0)
            count = builder.select(builder.icmp_signed("<", left, i64(per)), left, i64(per))
            with cgutils.for_range(builder, count) as loop:
                body(builder.add(start, builder.mul(builder.add(v0, loop.index), i64(R))), None)
            flush()
        rest = builder.sub(nrows, builder.mul(whole, i64(R)))
        with builder.if_then(builder.icmp_signed(">", rest, i64(0))):
            body(builder.add(start, builder.mul(whole, i64(R))), rest)
            flush()

        def halves(vals):  # added in halves: ((v0 + v1) + (v2 + v3)) for four
            while len(vals) > 1:
                vals = [builder.fadd(vals[i], vals[i + 1]) if i + 1 < len(vals) else vals[i]
                        for i in range(0, len(vals), 2)]
            return vals[0]

        def lane(v, j):
            return builder.extract_element(v, i32(j))
        sums = [builder.load(acc) for acc in dW64]
        for k, acc in enumerate(sums):
            for m in range(M):
                builder.store(halves([lane(acc, r * Mw + m) for r in range(R)]),
                              builder.gep(dwp, [i64(k * M + m)]))
        f = builder.load(fs)
        total = halves([halves([lane(f, r * Mw + m) for r in range(R)]) for m in range(M)])
        return guarded(builder, total, W, i64(K * M), sums)
    return codegen
