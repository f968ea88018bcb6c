"""Float32 rows of K = M = 4 as several rows a vector, in LLVM IR: four rows a 512-bit
vector, two a 256-bit one.

rowvec.py's rows take a vector a row: at 4×4, 4 of a 512-bit vector's 16 lanes live, and
its loop is bound by its instructions (10⁶×4×4 natively at 75–77 % of the copy on Zen 5,
13.6 cycles a row a core: dev/products_v49.md 50c).  Here lane r·4 + j of a vector is
element j of row n + r: the R = lanes ÷ 4 rows from n lie one after the other in x, y, dx
and dy, and each is one load or store.  A vector of rows:

    xb_k   x[n+r, k] in row r's lanes (an in-lane shuffle), k < K
    h      Σ_k xb_k·W_k, W_k W's row k in every row's lanes
    z, f, g, dy   rowvec.py's, lane for lane
    dx     Σ_m gb_m·V_m, gb_m g[n+r, m] in row r's lanes, V_m W's column m in each
    dW     K accumulators += xb_k·g: lane (r, m) of accumulator k sums x[·,k]·g[·,m] over
           the rows r, r + R, r + 2R, ... of a block

h's and dx's sums are rowvec.py's, term for term in the same order (one chain of FMAs:
THIN_ONE_CHAIN), so h, z, g, dx and dy have rowvec.py's bits.  f and dW are summed in
other orders: f in R·M float64 partial sums (lane (r, m) over the rows n ≡ r), added at
the end by rows, then by columns, in halves; dW's float32 sums over blocks of
NARROW_BLOCK rows from the chunk's first, each lane then added to a float64 one, and the
R lanes of each (k, m) added last in halves.  A chunk's rows past its last whole vector
are one vector loaded and stored masked, its missing rows zeros (h = 0, z = 0, g = 0:
nothing added but zeros).  rowvec.guarded refuses a chunk whose float32 sums may have
overflowed, as for rowvec.py's rows.  Float64 inputs, and narrow=False (float32's rerun
in float64 arithmetic), take rowvec.py's own rows.

    quad_rows(K, M, vector_bits, want)(dx, dW_part, dy, x, W, y, relu_grad_at_zero,
                                       start, stop, flags) -> f
    quad_rows(K, M, vector_bits, 0, loss=True)(x, W, y, start, stop) -> f

take row_vectors' arguments (rowvec.py's module doc).
"""

import functools

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._inputs import STREAM, WANT_DW, WANT_DX, WANT_DY
from .intrinsics import (_PART, _madd, _masked, _prefetch, _splat, _store_streamed_parts,
                         _streams, relu_grad)
from .rowvec import NARROW_BLOCK, PF_BYTES, THIN_ONE_CHAIN, guarded, row_codegen

ROW = 4  # x's and y's elements a row: K = M = ROW


def applies(K: int, M: int, vector_bits: int) -> bool:
    """Whether the (K, M) rows on an entry of vector_bits are these (float32 inputs; float64
    ones take rowvec.py's rows through the same intrinsic)."""
    return K == M == ROW and vector_bits in (256, 512)


@functools.lru_cache(maxsize=None)
def quad_rows(K: int, M: int, vector_bits: int, want: int, loss: bool = False,
              narrow: bool = True, **rowvec_args):
    """The intrinsic for (K, M) = (4, 4) on vectors of vector_bits and the gradients `want`
    names, or the loss's: float32 inputs several rows a vector (module doc) where narrow,
    else rowvec.row_codegen's rows with rowvec_args."""
    if not applies(K, M, vector_bits):
        raise ValueError(f"quad_rows takes K = M = {ROW} on 256- or 512-bit vectors; got K = "
                         f"{K}, M = {M}, {vector_bits} bits")
    own = _codegen(vector_bits // 32, want, loss) if narrow else None
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


def _codegen(lanes: int, want: int, loss: bool):
    # the code of the float32 rows, R = lanes ÷ ROW rows a vector of `lanes` float32s
    K = M = ROW
    R = lanes // ROW
    wdx, wdw, wdy = (bool(want & b) and not loss for b in (WANT_DX, WANT_DW, WANT_DY))

    def codegen(context, builder, sig, args):
        if loss:
            (x, W, y, start, stop) = args
            a0 = ir.DoubleType()(0.0)
        else:
            (dx, dwp, dy, x, W, y, a0, start, stop, flags) = args
        f32, d, i64, i32 = ir.FloatType(), ir.DoubleType(), ir.IntType(64), ir.IntType(32)
        vt, vd = ir.VectorType(f32, lanes), ir.VectorType(d, lanes)
        zero, two = ir.Constant(vt, [0.0] * lanes), ir.Constant(vt, [2.0] * lanes)
        undef = ir.Constant(vt, ir.Undefined)

        def shuffle(v, idx):
            return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(i32, len(idx)), idx))

        def at(ptr, row):  # the vector of x's (or y's, dx's, dy's) rows from `row`
            p = builder.gep(ptr, [builder.mul(row, i64(ROW))])
            return builder.bitcast(p, vt.as_pointer())

        def first(rows):  # the lanes of a vector's first `rows` rows (an i64)
            idx = ir.Constant(ir.VectorType(i64, lanes), [j // ROW for j in range(lanes)])
            return builder.icmp_signed("<", idx, _splat(builder, rows, lanes))

        def load(ptr, row, rows):  # R rows, or the first `rows` of them (others 0)
            if rows is None:
                return builder.load(at(ptr, row), align=4)
            return _masked(builder, "load", vt, at(ptr, row), 4, first(rows), zero)

        def store(v, ptr, row, rows, streamed):
            if rows is not None:
                _masked(builder, "store", vt, at(ptr, row), 4, first(rows), v)
            elif streamed is None:
                builder.store(v, at(ptr, row), align=4)
            else:
                with builder.if_else(streamed) as (past, cached):
                    with past:
                        _store_streamed_parts(builder, v, at(ptr, row))
                    with cached:
                        builder.store(v, at(ptr, row), align=4)

        def madd(a, b, c):
            return _madd(builder, True, a, b, c)

        # W's rows and columns in every row's lanes, once
        w = [[builder.load(builder.gep(W, [i64(k * M + m)])) for m in range(M)] for k in range(K)]

        def repeated(vals):  # lane r·ROW + j: vals[j]
            v = undef
            for j in range(lanes):
                v = builder.insert_element(v, vals[j % ROW], i32(j))
            return v
        Wrow = [repeated(w[k]) for k in range(K)]
        Wcol = [repeated([w[k][m] for k in range(K)]) for m in range(M)]
        sx = sy = None
        if not loss:  # dx's and dy's rows past the caches: asked for, on 16-byte boundaries
            asked = builder.icmp_unsigned("!=", builder.and_(flags, i64(STREAM)), i64(0))
            sx, sy = (_streams(builder, asked, p, align=_PART) for p in (dx, dy))
        a0v = _splat(builder, builder.fptrunc(a0, f32), lanes)
        a0_zero, drop_nan = builder.fcmp_ordered("==", a0, d(0.0)), \
            builder.fcmp_ordered("==", a0, d(1.0))  # torch.clamp's rule: NaN h, g = 0
        fs = cgutils.alloca_once_value(builder, ir.Constant(vd, [0.0] * lanes))
        dW = [cgutils.alloca_once_value(builder, zero) for _ in range(K if wdw else 0)]
        dW64 = [cgutils.alloca_once_value(builder, ir.Constant(vd, [0.0] * lanes)) for _ in dW]

        def flush():  # a block's float32 sums of dW added to the float64 ones
            for acc, acc64 in zip(dW, dW64):
                builder.store(builder.fadd(builder.load(acc64),
                                           builder.fpext(builder.load(acc), vd)), acc64)
                builder.store(zero, acc)

        def chain(a, b):  # Σ_i a[i]·b[i] in i's order (rowvec.py's: one chain up to 4 terms)
            assert len(a) <= THIN_ONE_CHAIN
            c = builder.fmul(a[0], b[0])
            for ai, bi in zip(a[1:], b[1:]):
                c = madd(ai, bi, c)
            return c

        def body(row, rows):
            # R rows from `row` (rows: None, or the first `rows` of them, an i64)
            for ptr in (x, y) if PF_BYTES else ():
                _prefetch(builder, builder.gep(ptr, [builder.add(builder.mul(row, i64(ROW)),
                                                                 i64(PF_BYTES // 4))]))
            xr, yr = load(x, row, rows), load(y, row, rows)
            xb = [shuffle(xr, [j // ROW * ROW + k for j in range(lanes)]) for k in range(K)]
            h = chain(xb, Wrow)
            below = builder.fcmp_ordered("<", h, zero)  # max(h, 0) that keeps NaN
            z = builder.fsub(builder.select(below, zero, h), yr)
            z64 = builder.fpext(z, vd)  # f's z: float32's, its square exact in float64
            builder.store(madd(z64, z64, builder.load(fs)), fs)
            if loss:
                return
            t = builder.fmul(two, z)
            if wdy:
                store(builder.fneg(t), dy, row, rows, sy)
            if not (wdx or wdw):
                return
            tie = builder.select(a0_zero, zero, builder.fmul(a0v, t))
            g = relu_grad(builder, h, zero, t, tie, builder.select(drop_nan, zero, t))
            if wdx:
                gb = [shuffle(g, [j // ROW * ROW + m for j in range(lanes)]) for m in range(M)]
                store(chain(gb, Wcol), dx, row, rows, sx)
            for k in range(len(dW)):  # dW[k,m] += x[n,k]·g[n,m]
                builder.store(madd(xb[k], g, builder.load(dW[k])), dW[k])

        nrows = builder.sub(stop, start)
        whole = builder.sdiv(nrows, i64(R))  # vectors of R rows
        per = NARROW_BLOCK // R  # vectors a block of dW's float32 sums
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
                builder.store(halves([lane(acc, r * ROW + m) for r in range(R)]),
                              builder.gep(dwp, [i64(k * M + m)]))
        f = builder.load(fs)
        total = halves([halves([lane(f, r * ROW + m) for r in range(R)]) for m in range(M)])
        return guarded(builder, total, W, i64(K * M), sums)
    return codegen
