"""The rows of K ≤ 3 and M > 8 in LLVM IR: each row's M columns in blocks of 8 lanes, M a
run-time value (one module per K and `want`, not per (K, M)).

Past K·M = 16 these rows took the general row kernel (rows.py, scalar float64): 10⁶×3×16
25 ms, 10⁶×1×64 66, against 5.7 and 19.6 ms of memory traffic (dev/products_v22.md 23e);
below it (1×9 to 1×16) skinny.py's vectors of rows, now slower (`applies`).
rowvec.py's rows of one vector stop at 8 lanes; here a row is ⌈M/8⌉ blocks of 8 lanes,
the last masked (its lanes past M neither read nor written):

    h = Σ_k x[n,k]·W[k, j:j+8]         x[n,k] broadcast, W's rows read from memory (L1)
    z, f's 8 lane sums, g, dy          as rowvec.py, lane l of f summing columns l mod 8
    dx_acc[k] += g·W[k, j:j+8]         K vectors, added across their lanes at the row's end
    dW_part[k, j:j+8] += x[n,k]·g      the chunk's float64 partial, in memory

    row_blocks(K, want)(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, M) -> f
    row_blocks(K, 0, loss=True)(x, W, y, start, stop, M) -> f

are intrinsics for the row functions skinny.py generates for K ≤ 3 (pointers to x's
dtype; dW_part float64, zeroed here): rows [start, stop) → dx and dy rows and
dW_part[:K·M] = Σ x[n,k]·g[n,m], the gradients `want` (WANT_* bits) names; the result is
Σ z².  x's and y's rows are prefetched PF_BYTES ahead.

The arithmetic is rowvec.py's: float64 inputs in float64 (a product and a sum a step),
float32 inputs in float32 (h's and dx's sums by FMAs, z, g and dy from the rounded h, f
from float32's z, squared exactly in float64), with dx's sum in 8 lanes (columns m ≡ l mod
8 in order) added as ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), and f's 8 lanes the
same way.  dW's sums stay float64 (its partial is in memory: each step x[n,k]·g in float64,
exact, by one FMA for float32 inputs), so rowvec.py's guard here checks f and dx's bound
only, and float32 inputs' chunks that fail it return NaN (loopgrad.cpu then runs the same
rows in float64 arithmetic, narrow=False).  Float32 arithmetic as AVX2 10⁶×2×32 20–22 →
16.2–16.5 ms, 10⁶×3×16 13.7–13.9 → 10.2–11.2, natively 10⁶×3×16 9.4 → 8.1–8.4, the longer
rows the same (dev/products_v26.md 27e).  The same code for every `want` and for the loss:
f has the same bits whichever gradients a call asks for.
"""

import functools

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._inputs import WANT_DW, WANT_DX, WANT_DY
from .intrinsics import (_across, _load_vector, _madd, _prefetch, _splat, _store_vector,
                         relu_grad_at)
from .rowvec import PF_BYTES, guarded

LANES = 8     # lanes a block
MAX_K = 3     # K up to this (from 4 on, K, M ≤ 8 take rowvec.py and wider the tiles)
# x's and y's rows are prefetched rowvec.PF_BYTES ahead: 10⁶×3×16 11.6–11.8 → 9.4 ms,
# 10⁶×2×32 16.5–17.9 → 13.1, 10⁶×1×64 26–27 → 22–24; as AVX2 18–19 → 13.7–14.3, 27–29 → 21,
# 42 → 30–32; the same in the L3 (10⁵×3×16).  Same bits (dev/products_v26.md 27c)


def applies(K: int, M: int, vector_bits: int) -> bool:
    """Whether skinny.py builds the (K, M) row functions on these intrinsics for an entry of
    vector_bits: K ≤ 3 and M > 8, on 256- and 512-bit vectors (from K·M = 16 down, 1×9 to
    1×16, they are faster than LLVM's vectors of rows: 10⁶×1×16 10.3 → 5.4 ms, as AVX2
    13.3 → 6.3; 10⁶×1×12 the same natively, 11.0 → 8.3 as AVX2; dev/products_v26.md 27f),
    but where rowvec.py's rows take x's rows of 1 to 3 with y's of 9 to 15 for the call's
    dtype (`rowvec.short_x`: skinny._along asks rowvec.applies first)."""
    return vector_bits >= 256 and 1 <= K <= MAX_K and M > LANES


@functools.lru_cache(maxsize=None)
def row_blocks(K: int, want: int, loss: bool = False, narrow: bool = True,
               masked_store: bool = True):
    """The intrinsic for K and the gradients `want` names, or the loss's (the module's doc);
    narrow: float32 inputs in float32 arithmetic (else float64); masked_store: a row's last,
    partial, block stored by masked stores, else as plain stores of its power-of-two parts
    (AVX2 entries: skinny.py)."""
    if not 1 <= K <= MAX_K:
        raise ValueError(f"row_blocks takes K ≤ {MAX_K}, got K = {K}")
    wdx, wdw, wdy = bool(want & WANT_DX), bool(want & WANT_DW), bool(want & WANT_DY)
    L = LANES

    def codegen(context, builder, sig, args):
        if loss:
            (x, W, y, start, stop, M), tx = args, sig.args[0]
            a0 = ir.DoubleType()(0.0)
        else:
            (dx, dwp, dy, x, W, y, a0, start, stop, M), tx = args, sig.args[3]
        size, fused = tx.dtype.bitwidth // 8, tx.dtype == types.float32
        et, d, i64, i32 = context.get_value_type(tx.dtype), ir.DoubleType(), ir.IntType(64), \
            ir.IntType(32)
        vd, ve = ir.VectorType(d, L), ir.VectorType(et, L)
        thin = narrow and fused  # float32 arithmetic (the module's doc)
        vc = ve if thin else vd  # the arithmetic's vectors
        zero, two = ir.Constant(vc, [0.0] * L), ir.Constant(vc, [2.0] * L)
        zero64 = ir.Constant(vd, [0.0] * L)

        def wide(v):  # into the arithmetic's type
            return v if v.type == vc else builder.fpext(v, vc)

        def to64(v):
            return v if v.type == vd else builder.fpext(v, vd)

        def rounded(v):  # into x's dtype
            return v if v.type == ve else builder.fptrunc(v, ve)

        def load(ptr, i, mask, t=ve):  # mask: None (all lanes) or the lanes to read (others 0)
            return _load_vector(builder, ptr, i, t, mask)

        def store(v, ptr, i, mask):  # mask: None, or `tail` (its first `left` lanes)
            _store_vector(builder, v, ptr, i, mask,
                          None if masked_store or mask is None else left)

        madd = functools.partial(_madd, builder, fused)  # c + a·b (rowvec.py's rule)

        across = functools.partial(_across, builder)  # v's 8 lanes added in halves

        a0v = _splat(builder, builder.fptrunc(a0, et) if thin else a0, L)
        a0_zero, drop_nan = builder.fcmp_ordered("==", a0, d(0.0)), \
            builder.fcmp_ordered("==", a0, d(1.0))  # torch.clamp's rule: NaN h, g = 0
        full = builder.mul(builder.udiv(M, i64(L)), i64(L))  # columns in whole blocks
        left = builder.sub(M, full)  # the last, partial, block's columns
        tail = builder.icmp_unsigned(  # its lanes j < left
            "<", ir.Constant(ir.VectorType(i64, L), list(range(L))), _splat(builder, left, L))
        f = cgutils.alloca_once_value(builder, zero64)
        if not loss and wdw:  # the chunk's partial of dW, summed in place
            with cgutils.for_range(builder, builder.mul(M, i64(K))) as e:
                builder.store(d(0.0), builder.gep(dwp, [e.index]))

        def block(row, xs, xs64, acc, j, mask):
            # columns [j, j + 8) of row `row` (mask: the lanes of a partial block, or None)
            yb = builder.add(builder.mul(row, M), j)
            _prefetch(builder, builder.gep(y, [builder.add(yb, i64(PF_BYTES // size))]))
            Wk = [wide(load(W, builder.add(builder.mul(i64(k), M), j), mask)) for k in range(K)]
            h = builder.fmul(xs[0], Wk[0])  # h[n,m] = Σ_k x[n,k]·W[k,m]
            for k in range(1, K):
                h = madd(xs[k], Wk[k], h)
            below = builder.fcmp_ordered("<", h, zero)  # max(h, 0) that keeps NaN
            r, yv = builder.select(below, zero, h), wide(load(y, yb, mask))
            z = builder.fsub(r, yv)  # in float32: the exact difference rounded once
            z64 = to64(z) if thin else z  # f's z: float32's, its square exact in float64
            if mask is not None:  # lanes past M: 0 (x·0 is NaN where x is infinite), and so
                z = builder.select(mask, z, zero)  # are t and g there
                z64 = builder.select(mask, z64, zero64) if thin else z
            builder.store(_madd(builder, fused, z64, z64, builder.load(f)), f)
            t = builder.fmul(two, z)
            if wdy:
                store(rounded(builder.fneg(t)), dy, yb, mask)
            if wdx or wdw:  # g = 2·z·relu'(h), loopgrad._scalar.relu_backward's cases
                # 0 past M, where t is
                g = relu_grad_at(builder, a0_zero, drop_nan, a0v, h, zero, t)
            for k in range(K if wdx else 0):  # dx[n,k] = Σ_m g[n,m]·W[k,m], by lanes
                builder.store(madd(g, Wk[k], builder.load(acc[k])), acc[k])
            g64 = to64(g) if wdw else None  # dW's sums stay float64, in the chunk's partial
            for k in range(K if wdw else 0):  # dW[k,m] += x[n,k]·g[n,m]
                e = builder.add(builder.mul(i64(k), M), j)
                store(_madd(builder, fused, xs64[k], g64, load(dwp, e, mask, vd)), dwp, e, mask)

        acc = [cgutils.alloca_once(builder, vc) for _ in range(K)]
        with cgutils.for_range(builder, builder.sub(stop, start)) as loop:
            row = builder.add(start, loop.index)
            xb = builder.mul(row, i64(K))
            _prefetch(builder, builder.gep(x, [builder.add(xb, i64(PF_BYTES // size))]))
            xk = [builder.load(builder.gep(x, [builder.add(xb, i64(k))])) for k in range(K)]
            xs64 = [_splat(builder, v if et == d else builder.fpext(v, d), L) for v in xk]
            xs = [_splat(builder, v, L) for v in xk] if thin else xs64
            for a in acc:
                builder.store(zero, a)
            with cgutils.for_range(builder, builder.udiv(M, i64(L))) as b:
                block(row, xs, xs64, acc, builder.mul(b.index, i64(L)), None)
            with builder.if_then(builder.icmp_unsigned("<", full, M)):
                block(row, xs, xs64, acc, full, tail)
            for k in range(K if wdx else 0):
                s = across(builder.load(acc[k]))
                builder.store(s if s.type == et else builder.fptrunc(s, et),
                              builder.gep(dx, [builder.add(xb, i64(k))]))
        total = across(builder.load(f))
        if not thin:
            return total
        # float32's guard (rowvec.py's, dW's sums being float64 here): NaN unless the chunk's
        # f is finite and 2·√f·max(‖W‖, 1) ≤ ½ float32's largest value
        return guarded(builder, total, W, builder.mul(M, i64(K)))

    if loss:
        @intrinsic
        def blocks_loss(typingctx, x, W, y, start, stop, M):
            return types.float64(x, W, y, start, stop, M), codegen
        return blocks_loss

    @intrinsic
    def blocks(typingctx, dx, dW_part, dy, x, W, y, a0, start, stop, M):
        return types.float64(dx, dW_part, dy, x, W, y, a0, start, stop, M), codegen
    return blocks
