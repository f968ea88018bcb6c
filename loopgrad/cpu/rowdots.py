"""The rows of one to eight outputs (M = 1 to 8) in LLVM IR: each row's h[n, m] a dot
product along x's row, K a run-time value (one module for every K), from K = 9, 16 or 17
by M and the entry (`min_k`).

With few outputs, h[n, :] = x[n, :]·W is M dot products and dx[n, :] = Σ_m g[n, m]·W[:, m]
M scalings of W's columns.  Before, M = 1 with 9 ≤ K ≤ 16 took skinny.py's vectors of
rows (lane i row n + i, x's rows shuffled apart) and everything else the tiled kernels,
whose 16-wide tiles are 15/16 padding at M = 1: 10⁶×16×1 9.4 ms, 10⁶×64×1 40, 10⁵×256×1
17 on the 2-core Xeon guest, half its copy ceiling, and 10⁶×64×4 at 23 % of its roofline
(dev/products_v27.md 28a, 28d).  A dot product a row reached the ceiling from K = 16 but
took 33 cycles a row in cache, compute-bound below (28b): the sum across a vector's lanes,
the scalar z and g and the broadcast back are a long chain for one row's work.  So the
rows go in blocks of R = L // M rows (L: the arithmetic's lanes, 16 float32 on 512-bit
vectors; 8 float64 at M = 5 to 8 on 256-bit ones, two vectors: R = 1), whose R·M ≤ L
elements of y lie together (M = 3: 5 rows in 15 of 16 lanes, the last lane padding), each
block

    h      R·M accumulators, row r's column m += x[r, j:j+L]·W[j:j+L, m], a vector of x's
           row at a time (a last partial vector masked: nothing past the row read); W's
           columns from a transposed copy of W a chunk makes on the stack from M = 3
           while K·M ≤ COPIED (`copies`; its rows padded with zeros to whole vectors,
           read unmasked), else from its rows by shuffles (`columns`); in blocks of one
           row a last partial vector of at most TERMS elements is that many broadcasts
           of x's elements into W's rows after the fold instead
    fold   the R·M vectors into one of the block's h, lane r·M + m (y's order): each sum's
           lanes added in halves, ((l0 + l8) + (l4 + l12)) + ... at 16 (intrinsics._across's
           order)
    z, f, g, dy   vectors of y's block; f's float64 lane a sums the blocks' elements a

The blocks go in groups (rows of up to SHORT_ROW bytes about SHORT_GROUP rows a group,
longer ones GROUP rows from M = 6, else one block: the constants' comment); after a
group's blocks

    dx     Σ_m g[r, m]·W[j:j+L, m] in m's order; at M ≥ 3 a vector of x's row at a time
           for the group's rows (W's columns once a group) where dx's rows are not
           streamed or lie on whole lines, else row by row (each row's lines in order)
    dW     a vector of x's row at a time over the group's rows in order, its M columns'
           float64 sums in registers from the chunk's partial and back (in two passes
           over the rows where they would take more than 12 of AVX2's 16 registers),
           where they wait column by column until the chunk's end puts them in dW's row
           order (the last partial vector's stay in registers across groups)

(28c, 28d: 10⁶×16×1 9.5 → 3.3 ms, 10⁶×32×1 24 → 7.9, 10⁶×32×2 25 → 8.3, 10⁶×64×4 54 →
26; as AVX2 10⁶×16×1 9.6 → 4.3; M = 3, dev/products_v28.md 29b: 10⁶×32×3 28–32 → 11,
10⁵×256×3 26–27 → 10–11, as AVX2 10⁶×32×3 23 → 13).  A chunk's last block may be
partial: its missing rows read the last row again and their lanes are dropped (f's z
masked to 0, y and dy masked, dx and dW over its rows only).  A row's dx and dy do not
depend on where its block starts; f and dW are sums over the chunks, which are a function
of the shape alone.

    row_dots(bits, M, want)(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, K,
                            flags) -> f
    row_dots(bits, M, 0, loss=True)(x, W, y, start, stop, K) -> f

are intrinsics for the row functions skinny.py generates for an entry of `bits`-bit
vectors (256 or 512; pointers to x's dtype, dW_part float64, zeroed here): rows
[start, stop) → dx and dy rows and dW_part[:K·M] = Σ x[n,k]·g[n,m], the gradients `want`
(WANT_* bits) names; the result is Σ z².

The arithmetic is rowvec.py's: float64 inputs in float64 (a product and a sum a step),
float32 inputs in float32 (h's and dx's sums by FMAs, z, g and dy from the rounded h, f the
float64 sum of the exact squares of float32's z).  dW's sums are float64 across a chunk's
groups; within a group float32 arithmetic sums its rows' x[n,k]·g[n,m] from 0 by FMAs (the
tiled kernels' rule, over 3 to 16 rows where they take 256), float64 arithmetic adds them
to the chunk's sums one by one (dW's float64 FMAs had been half the rows' work at short
rows: 10⁶×24×6 13.5 → 12.2 ms, 10⁶×17×8 14.1 → 12.4, as AVX2 10⁶×48×6 20.8 → 18.7;
dev/products_v31.md 32b).  For float32 inputs rowvec.guarded checks f, dx's bound and every
dW sum of the chunk finite, and a chunk that fails it returns NaN (loopgrad.cpu runs the
call again with narrow=False: the same rows in float64).  x's rows are prefetched
rowvec.PF_BYTES ahead, y's a block at a time; where `flags` asks (the STREAM bit) dx's rows
go past the caches where a row is a multiple of 16 bytes and dx starts on 16 bytes, a last
partial vector in 16-byte parts (a line written both streamed and by a masked store is
flushed each time, dev/products_v26.md 27e).  The same code for every `want` and for the
loss: f has the same bits whichever gradients a call asks for.
"""

import functools

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._inputs import STREAM, WANT_DW, WANT_DX, WANT_DY
from .intrinsics import (_PART, _across, _load_vector, _madd, _prefetch, _splat,
                         _store_streamed_parts, _store_vector, _streams, _vector_at,
                         relu_grad_at)
from .rowvec import PF_BYTES, guarded

MS = (1, 2, 3, 4, 5, 6, 7, 8)  # the M these rows take: y's block is R·M ≤ L lanes, R = L // M
# From M = COPY_FROM W's columns come from a transposed copy of W on the stack (a
# chunk's), of at most COPIED elements (32 KiB in float64): past M = 4 `applies` keeps K·M
# within it, at M = 3, 4 longer rows shuffle W's columns out of its rows (a second module,
# `row_dots(copy=False)`).  AVX2's cross-lane shuffles had been the rows' cost
# (as AVX2 10⁵×256×4 16.7 → 9.3–9.9 ms, 10⁶×32×4 20.4 → 11.3; natively 10⁶×64×4 22.2 →
# 18.4, 10⁶×20×4 11.2 → 9.5; M = 2 level: dev/products_v29.md 30g)
COPIED = 4096
COPY_FROM = 3
# A group's blocks run h, z, g and dy, then its dx, then its dW, whose sums of a vector of
# x's row stay in registers over the group's rows: added to (float32 arithmetic's) or
# loaded from and stored to (float64's) the chunk's partial once a group.  Rows of more
# than SHORT_ROW bytes go in groups of GROUP rows from M = 6, or where a block is one row:
# at M = 8 a block's 16 stores a vector of x's row were dW's bound (10⁶×32×8 18.5–19 → 16.2–16.4 ms, 30c); with fewer sums a row
# the stores are not the bound, and groups measured slower where memory sets the pace
# (10⁵×256×4 10.6 → 11.7–12.2 ms, float64 10⁵×256×3 13.3 → 14.8–15.4).  Shorter rows, in
# groups of SHORT_GROUP rows at every M, have their dx and dW chains side by side: 10⁶×20×5
# 13.6 → 11.6 ms, 10⁶×17×3 10.0 → 8.6, as AVX2 13.4 → 11.4 (dev/products_v29.md 30f)
GROUP = 8
SHORT_ROW = 256
SHORT_GROUP = 16
# Blocks of one row (R = 1: AVX2's float32 and float64 at M = 5 to 8, float64's with
# AVX-512) take h's last K mod L terms one by one after the fold where they are at most
# this many: a masked vector's M FMAs and loads for 1–4 elements had cost as much as a
# whole one (as AVX2 10⁶×17×5 9.9–10.6 → 9.2–10.2 ms, 18×7 12.4–13.2 → 11.8–12.2; at 5 and
# 7 terms level; dW's last terms the same way gained nothing more: dev/products_v32.md 33d)
TERMS = 4


def min_k(vector_bits: int, M: int = 1, dtype=None) -> int:
    """The least K these rows take on an entry of vector_bits for M outputs, as measured
    against the kernels they replace (dev/products_v27.md 28b, 28d; dev/products_v28.md
    29b, 29c): M = 1 from a row of a vector of float32 on 256-bit entries (K = 8:
    rowvec.py's 8×1 took 3.4 ms at 10⁶ rows as AVX2, these 2.1) and from K = 9 on 512-bit
    ones (10⁶×8×1 2.3–2.9 ms with LLVM's vectors of 16 rows, these 2.8–2.9); M = 2 past
    K = 8 (to 8, rowvec.py's rows).  M = 3 and 4 from K = 16 on 256-bit entries, and with
    AVX-512 M = 3 from K = 10 and M = 4 from 12: below, rowvec.py's rows of x in 16 lanes
    had been faster (9×3 7.4–8.6 → 5.7–6.1 ms, 12×4 12 → 7.2–7.5; 29c), until the rows'
    groups and W's copy on lines (10⁶×10×3 5.2–5.5 → 4.3–4.5, 10⁶×12×4 6.2–6.9 → 5.9–6.2,
    10⁶×15×3 7.7–8.1 → 5.5–6.0; float64 12×4 10.6–11 → 9.7–9.8; at 9×3 float64 and at
    11×4 float64 and 9×4 float32 slower: dev/products_v30.md 31j), and as AVX2 a block of
    2 rows loses to the 6×16 tile where K leaves a partial vector of 8 (9×3 8.6 → 12.4 ms,
    14×3 12 → 13; 15×3 level, 16×3 9.4–10.7 → 8.0–8.5, 17×3 15–16 → 14–15).  M = 5 to 8
    past K = 16 (rowvec.py's rows to 16): 10⁶×32×5 29 → 14.5 ms, 10⁶×20×5 19 → 14.4,
    10⁵×256×8 29–32 → 17, 10⁶×24×6 22.5 → 17.7; 17×6 and 20×7 level (29g); M = 8 from
    K = 24 until the rows' groups and W's copy on lines (17×8 had been 19.3 → 23.3, blocks
    of 2 rows, a partial vector as dear as a whole one): now 10⁶×17×8 18.0 → 14.3 ms,
    10⁶×23×8 20.6 → 15.9, float64 28.5 → 23.2 and 34.2 → 30.2 (dev/products_v30.md 31i).  On
    256-bit entries, with W's copy from M = 3 (30g), M = 4 from K = 16 (the 6×16 tile's time
    first: 10⁶×16×4 9.7 → 7.0 ms, 10⁶×32×4 23.4 → 11.3, 10⁵×256×4 23.5 → 9.3); M = 5 and 6
    from K = 17, 7 from 20, 8 from 22, in blocks of one row (float64's over two vectors),
    where the float32 rows first match the 6×16 tile (dev/products_v30.md 31a, 31h, with
    dW's passes and W's copy on lines: 17×5 15.3–15.8 ms against 15.7–17.6, 17×6 15.4–15.7
    against 16.1–16.3, 20×7 18.1–18.2 against 18.1–18.2, 22×8 19.4 against 18.9–19.5;
    18×7 17.6–17.8 against 14.8–16, 20×8 19.1 against 16.8–18.5; 24×8 16.8 against 19.7,
    32×8 19.4–19.8 against 24–24.4, from K = 48 1.2–2.9× faster) and float64's are 1.2–2×
    faster from K = 17.  Since dW's float32 sums (dev/products_v31.md 32b) one K lower on
    both entries at M = 5 to 7 and two on AVX2 at 7 and 8, where both dtypes are faster
    (32c): natively 10⁶×16×5 7.7–8.1 → 6.8 ms, float64 15.1–15.3 → 12.4–12.7, 16×6 and
    16×7 float32 level, float64 16.1 → 13.8 and 16.5 → 14.6; as AVX2 10⁶×16×5 10.0–10.4 →
    8.6, 16×6 10.5–10.7 → 9.3–9.4, 18×7 15.6–16.4 → 15.2–15.3, 20×8 17.4–18.3 → 16.2–16.4,
    float64 26 → 13.4–13.8, 27–34 → 15, 31 → 26, 31 → 30.  (Lower K wins for float32 alone
    and loses for float64, e.g. natively 9×3, 11×4, 13×5 and 15×5: the route is by shape
    there.)

    By the inputs' dtype (None: the least of the two, the first K of the module both
    share): float32 inputs, whose dW sums are float32 since 32b, take M = 3 and 4 from
    K = 9 with AVX-512 and 13 on AVX2, and 5 from 13 with AVX-512, where float64's rows
    stay rowvec.py's (dev/products_v31.md 32e); float64 inputs take M = 8 from K = 16
    with AVX-512 (10⁶×16×8 16.8 → 15.8 ms, float32's 3 % slower) and on AVX2 M = 5 from 9,
    6 from 10 and 7 from 16, where the 6×8 tile had them (10⁶×9×5 17.1 → 15.0, 12×5 19.0 →
    15.0, 14×6 24.6 → 18.3, 16×7 26.8 → 18.4; 10×7 and 17×8 slower: 32f).  Float32 inputs
    with AVX-512 take M = 6 to 8 from K = 25, where rowvec.py's rows with x in 32 lanes are
    faster below (10⁶×20×8 10.0–11.0 → 8.1–8.3 ms, 17×8 0.83, 24×8 0.87, 20×6 0.87, 18×7
    0.89; 16×6 and 16×7 level: dev/products_v33.md 34g).  On AVX2 float32 inputs take M = 1
    from K = 6 (from LLVM's vectors of rows), M = 2 from 8 and M = 3 and 4 from 8 (from
    rowvec.py's rows) since the rows' groups and W's copy: as AVX2 on the Zen 5 guest, 10⁶
    rows, 2 threads, 6×1 2.01–2.06 → 1.62–1.66 ms, 7×1 2.33–2.53 → 1.71, 8×2 2.79–3.17 →
    1.97, 8×3 3.13–3.16 → 2.58–2.62, 11×3 4.86–4.91 → 3.62–3.84, 12×3 5.41 → 3.87–3.90,
    8×4 3.07–3.17 → 2.90–3.04, 9×4 1.04–1.06×, 12×4 5.50–5.68 → 4.56–4.61; below, slower
    (in cache 5×1 14 → 16 cycles a row, 5×2 16 → 18.5, 6×2 0.95×, 6×3 0.93×, 7×3, 7×4
    level); float64 inputs M = 2 to 4 from K = 8 too (10⁶×8×2 4.14–4.19 → 2.89, 8×3
    4.56–4.64 → 3.70–3.73, 12×3 6.84–7.08 → 4.77–4.80, 8×4 1.08×, 12×4 1.31×, 15×3 1.12×;
    7×2 to 7×4 and M = 1 below 8 slower: dev/products_v52.md 53c)."""
    wide = vector_bits >= 512
    if dtype is None:
        return min(_FIRST_K[wide, d][M - 1] for d in ("float32", "float64"))
    return _FIRST_K[wide, np.dtype(dtype).name][M - 1]


# min_k's table: (512-bit entry, the inputs' dtype) → the first K at M = 1 to 8
_FIRST_K = {(True, "float32"): (9, 9, 9, 9, 13, 25, 25, 25),
            (True, "float64"): (9, 9, 10, 12, 16, 16, 16, 16),
            (False, "float32"): (6, 8, 8, 8, 16, 16, 18, 20),
            (False, "float64"): (8, 8, 8, 8, 9, 10, 16, 20)}


def applies(K: int, M: int, vector_bits: int, dtype=None) -> bool:
    """Whether skinny.py builds the (K, M) row functions on these intrinsics for an entry of
    vector_bits and inputs of dtype (None: either): M in MS and K ≥ min_k, on 256- and
    512-bit vectors, within W's copy of COPIED elements from M = 5 and at M = 4 on 256-bit
    entries (there the shuffles of longer rows were slower than the tiles: 29e); where it
    applies, it is taken before rowvec.py's rows (skinny.py)."""
    return vector_bits >= 256 and M in MS \
        and K >= min_k(vector_bits, M, dtype) \
        and (M <= 3 or (M == 4 and vector_bits >= 512) or K * M <= COPIED)


def copies(K: int, M: int) -> bool:
    """Whether the (K, M) rows take W's columns from a transposed copy (`row_dots`'s copy):
    from M = COPY_FROM while K·M ≤ COPIED."""
    return M >= COPY_FROM and K * M <= COPIED


def module_k(K: int, M: int, vector_bits: int, dtype=None) -> int:
    """The first K of the module that takes the (K, M) rows: min_k, or at M = 3, 4 past
    W's copy (`copies`) the first K past it."""
    k0 = min_k(vector_bits, M, dtype)
    return k0 if copies(K, M) == copies(k0, M) else COPIED // M + 1


@functools.lru_cache(maxsize=None)
def row_dots(vector_bits: int, M: int, want: int, loss: bool = False, narrow: bool = True,
             copy: bool = True, masked_store: bool = True):
    """The intrinsic for an entry of vector_bits, M outputs (1 to 8) and the gradients
    `want` names, or the loss's (the module's doc); narrow: float32 inputs in float32
    arithmetic (else float64); copy: W's columns from a transposed copy from M = COPY_FROM
    (K·M ≤ COPIED: `copies`), else shuffled out of W's rows (M ≤ 4 only); masked_store:
    partial vectors (a block's dy, a row's last part of dx) stored by masked stores, else
    as plain stores of their power-of-two parts (AVX2 entries: skinny.py)."""
    if M not in MS:
        raise ValueError(f"row_dots takes M in {MS}, got M = {M}")
    if not copy and M > 4:
        raise ValueError(f"row_dots takes W's columns from its copy past M = 4, got M = {M}")
    wdx, wdw, wdy = bool(want & WANT_DX), bool(want & WANT_DW), bool(want & WANT_DY)

    def codegen(context, builder, sig, args):
        if loss:
            (x, W, y, start, stop, K), tx = args, sig.args[0]
            a0 = ir.DoubleType()(0.0)
        else:
            (dx, dwp, dy, x, W, y, a0, start, stop, K, flags), tx = args, sig.args[3]
        size, fused = tx.dtype.bitwidth // 8, tx.dtype == types.float32
        et, d, i64, i32 = context.get_value_type(tx.dtype), ir.DoubleType(), ir.IntType(64), \
            ir.IntType(32)
        thin = narrow and fused  # float32 arithmetic (the module's doc)
        ct = et if thin else d
        L = vector_bits // (32 if thin else 64)  # lanes of the arithmetic's vectors
        L = L if L >= M else 2 * L  # float64 on 256 bits, M ≥ 5: a row's y over two vectors
        R = L // M                               # rows a block: R·M ≤ L lanes, y's block
        copied = copy and M >= COPY_FROM  # W's columns from a transposed copy
        # blocks a group, chosen at run time by K (the constants' comment)
        grouped = (wdx or wdw) and not loss
        S_short = max(1, SHORT_GROUP // R) if grouped else 1
        S_long = GROUP // R if grouped and wdw and (M >= 6 or R == 1) else 1
        S_most = max(S_short, S_long)
        vc, ve, vd = ir.VectorType(ct, L), ir.VectorType(et, L), ir.VectorType(d, L)
        zero, zero64 = ir.Constant(vc, [0.0] * L), ir.Constant(vd, [0.0] * L)
        madd = functools.partial(_madd, builder, fused)  # c + a·b (rowvec.py's rule)

        def wide(v, t=ct):  # into the arithmetic's type (or t)
            return v if v.type.element == t else builder.fpext(v, ir.VectorType(t, L))

        def load(ptr, i, mask, t=ve):  # mask: None (all lanes) or the lanes to read (others 0)
            return _load_vector(builder, ptr, i, t, mask)

        counts = {}  # lanes_below's masks: the count of their lanes (0 to L)

        def store(v, ptr, i, mask):  # where masked_store is False, as plain stores
            _store_vector(builder, v, ptr, i, mask,
                          None if masked_store or mask is None else counts[mask])

        def lanes_below(n):  # <L x i1>: lanes j < n (n an i64, negative: none)
            # compared as i32 lanes, n clamped to L: one compare of a vector's width, where
            # i64 lanes took two and a pack each time a block used it (as AVX2)
            n = builder.select(builder.icmp_signed(">", n, i64(L)), i64(L), n)
            mask = builder.icmp_signed("<", ir.Constant(ir.VectorType(i32, L), list(range(L))),
                                       _splat(builder, builder.trunc(n, i32), L))
            counts[mask] = builder.select(builder.icmp_signed("<", n, i64(0)), i64(0), n)
            return mask

        def rounded(v):  # into x's dtype
            n = v.type.count
            return v if v.type.element == et else builder.fptrunc(v, ir.VectorType(et, n))

        def gather(srcs, picks):
            # a vector whose lane l is lane picks[l][1] of srcs[picks[l][0]]: a tree of
            # two-source shuffles (no arithmetic: the values move, bits unchanged)
            nodes = [(srcs[s], {l: ln for l, (si, ln) in enumerate(picks) if si == s})
                     for s in sorted({si for si, _ in picks})]
            while len(nodes) > 1:
                pairs = [(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
                merged = [(builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, L), [
                    ma[l] if l in ma else L + mb[l] if l in mb else 0 for l in range(L)])),
                    {l: l for l in (*ma, *mb)}) for (a, ma), (b, mb) in pairs]
                nodes = merged + nodes[len(pairs) * 2:]
            v, m = nodes[0]
            if any(m[l] != l for l in range(L)):
                v = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, L),
                                                             [m[l] for l in range(L)]))
            return v

        def columns(vs):  # M vectors of L rows of a K×M matrix (row-major) → its M columns
            return [gather(vs, [divmod(i * M + m, L) for i in range(L)]) for m in range(M)]

        def rows_of(cols):  # the inverse of columns
            return [gather(cols, [((v * L + l) % M, (v * L + l) // M) for l in range(L)])
                    for v in range(M)]

        def matrix_masks(j, mask):  # the masks of the M vectors at rows [j, j + L) of a K×M
            if mask is None:          # matrix (None: all whole)
                return [None] * M
            left = builder.mul(builder.sub(K, j), i64(M))
            return [lanes_below(builder.sub(left, i64(v * L))) for v in range(M)]

        def w_columns(j, mask):  # W[j:j+L, m] for each m, in the arithmetic's type
            if copied:  # plain loads of W's transposed copy (its padding 0: no mask)
                return [load(Wt, builder.add(builder.mul(i64(m), kt), j), None, vc)
                        for m in range(M)]
            vs = [wide(load(W, builder.add(builder.mul(j, i64(M)), i64(v * L)), mv))
                  for v, mv in enumerate(matrix_masks(j, mask))]
            return columns(vs)

        def fold(vs):
            # L vectors of L lanes → one vector whose lane a is the sum of vs[a]'s lanes, added
            # in halves ((l0 + l8) + (l4 + l12)) + ... at 16: pairs of vectors, each a group
            # of G lanes a sum, into one with G/2 lanes a sum (each group's first half plus
            # its second), until one lane a sum, in vs's order
            G = L
            while len(vs) > 1:
                half = G // 2
                lo_ix = [g * G + i for g in range(L // G) for i in range(half)]
                lo_ix += [L + ix for ix in lo_ix]
                hi_ix = [ix + half for ix in lo_ix]
                vs = [builder.fadd(*(builder.shuffle_vector(a, b, ir.Constant(
                    ir.VectorType(i32, L), ix)) for ix in (lo_ix, hi_ix)))
                    for a, b in zip(vs[0::2], vs[1::2])]
                G = half
            return vs[0]

        if copied:  # W's columns as the M rows of a copy on the stack, in the arithmetic's
            # type: shuffling them out of W's rows each block would take M·(M − 1) a vector.
            # Its rows padded to whole vectors from a line, so that no load of a column
            # splits a line (loss in L2 at 24×6 34 → 22 cycles a row, 10⁶×32×8 16.5–17.1 →
            # 15.5–16.1 ms; dev/products_v30.md 31g)
            kt = builder.mul(builder.udiv(builder.add(K, i64(L - 1)), i64(L)), i64(L))
            Wt = builder.alloca(ct, size=builder.mul(kt, i64(M)))
            Wt.align = 64
            with cgutils.for_range(builder, K) as k:
                for m in range(M):
                    w = builder.load(builder.gep(W, [builder.add(builder.mul(k.index, i64(M)),
                                                                 i64(m))]))
                    builder.store(w if et == ct else builder.fpext(w, ct), builder.gep(
                        Wt, [builder.add(builder.mul(i64(m), kt), k.index)]))
            with cgutils.for_range(builder, builder.sub(kt, K)) as k:  # the padding: 0
                for m in range(M):
                    builder.store(ct(0.0), builder.gep(
                        Wt, [builder.add(builder.mul(i64(m), kt), builder.add(K, k.index))]))
        nfull = builder.udiv(K, i64(L))
        full = builder.mul(nfull, i64(L))  # x's columns in whole vectors
        ragged = builder.icmp_unsigned("<", full, K)
        tail = lanes_below(builder.sub(K, full))  # the last, partial, vector's lanes
        # blocks of one row (R = 1): h's last K − full terms, where they are at most TERMS,
        # by broadcasts of x's elements into W's rows (a copy, each padded to L lanes with
        # zeros) after the fold (`terms`: their count, else 0); more, a masked vector
        by_terms = R == 1
        if by_terms:
            few = builder.icmp_unsigned("<=", builder.sub(K, full), i64(TERMS))
            terms = builder.select(few, builder.sub(K, full), i64(0))
            Wr = builder.alloca(ct, size=i64(TERMS * L))
            Wr.align = 64
            with cgutils.for_range(builder, i64(TERMS * L)) as e:
                builder.store(ct(0.0), builder.gep(Wr, [e.index]))
            with cgutils.for_range(builder, terms) as t:
                for m in range(M):
                    w = builder.load(builder.gep(W, [builder.add(builder.mul(
                        builder.add(full, t.index), i64(M)), i64(m))]))
                    builder.store(w if et == ct else builder.fpext(w, ct), builder.gep(
                        Wr, [builder.add(builder.mul(t.index, i64(L)), i64(m))]))
        if not loss and wdw:  # the chunk's partial of dW, summed in place
            with cgutils.for_range(builder, builder.mul(K, i64(M))) as e:
                builder.store(d(0.0), builder.gep(dwp, [e.index]))
        sx = None  # dx's rows past the caches: asked for, rows of 16-byte parts on 16 bytes
        if not loss and wdx:
            asked = builder.icmp_unsigned("!=", builder.and_(flags, i64(STREAM)), i64(0))
            sx = _streams(builder, asked, dx, builder.mul(K, i64(size)), align=_PART)
            dx_slot = cgutils.alloca_once(builder, ve)  # a last partial vector, streamed from
            part = ir.VectorType(et, _PART // size)  # here in 16-byte parts
            # dx a vector of x's row at a time for a group's rows (M ≥ 3): unless streamed,
            # where each store must fill a whole line (512-bit vectors, rows on whole lines)
            by_vectors = builder.not_(sx)
            if vector_bits >= 512:
                by_vectors = builder.or_(by_vectors, _streams(
                    builder, sx, dx, builder.mul(K, i64(size))))
        a0v = _splat(builder, builder.fptrunc(a0, ct) if thin else a0, L)
        two = ir.Constant(vc, [2.0] * L)
        a0_zero, drop_nan = builder.fcmp_ordered("==", a0, d(0.0)), \
            builder.fcmp_ordered("==", a0, d(1.0))  # torch.clamp's rule: NaN h, g = 0
        f = cgutils.alloca_once_value(builder, zero64)  # lane a: the blocks' y elements a
        acc = [cgutils.alloca_once(builder, vc) for _ in range(R * M)]  # h's: row r, column m
        # dW's column sums: the last partial vector of rows' (across blocks), a whole one's
        dw_tail = [cgutils.alloca_once_value(builder, zero64) for _ in range(M)]
        sums = [cgutils.alloca_once(builder, vd) for _ in range(M)]
        gsp = cgutils.alloca_once(builder, ct, size=S_most * R * M + L)  # a group's g: dx's
        gsp64 = gsp if thin else cgutils.alloca_once(  # and dW's (float64 arithmetic's;
            builder, d, size=S_most * R * M + L)       # float32's sums take dx's)

        def g_of(row, m, p):  # g[row, m] (row in p's block or group), broadcast
            at_g = builder.add(builder.mul(row, i64(M)), i64(m))
            return _splat(builder, builder.load(builder.gep(p, [at_g])), L)

        def each_vector(body, rest=None):
            # body(j, mask) over x's row: whole vectors, then the rest where `rest` (an i1;
            # None: ragged) holds
            with cgutils.for_range(builder, nfull) as b:
                body(builder.mul(b.index, i64(L)), None)
            with builder.if_then(ragged if rest is None else rest):
                body(full, tail)

        def block(r0, count, b):
            # rows [r0, r0 + count), count ≤ R, block b of its group: h for all (rows past
            # count read row r0 + count − 1 again, their lanes dropped), then z, f, dy, g as
            # vectors of R rows' M columns (y's block; g kept at the group's b·R·M for its
            # dx and dW)
            xrow = [builder.mul(builder.add(r0, builder.select(
                builder.icmp_unsigned("<", i64(r), count), i64(r), builder.sub(count, i64(1)))),
                K) for r in range(R)]
            yb = builder.mul(r0, i64(M))
            _prefetch(builder, builder.gep(y, [builder.add(yb, i64(PF_BYTES // size))]))
            if wdy and masked_store and R * M < L:  # dy's block, a part of its vector (M = 3,
                # 5 to 7), stored masked: its line asked for ahead for writing (rowvec.py's doc)
                _prefetch(builder, builder.gep(dy, [builder.add(yb, i64(PF_BYTES // size))]),
                          write=True)
            for a in acc:
                builder.store(zero, a)

            def dot(j, mask):  # h[r, m]'s lanes += x[r, j:j+L]·W[j:j+L, m]
                wc = w_columns(j, mask)
                for r in range(R):
                    at_x = builder.add(xrow[r], j)
                    _prefetch(builder, builder.gep(x, [builder.add(at_x, i64(PF_BYTES // size))]))
                    xv = wide(load(x, at_x, mask))
                    for m in range(M):
                        a = acc[r * M + m]
                        builder.store(madd(xv, wc[m], builder.load(a)), a)
            # (blocks of one row: the partial vector only past TERMS elements)
            each_vector(dot, builder.and_(ragged, builder.not_(few)) if by_terms else None)
            # lane r·M + m: h[r0 + r, m] (lanes past R·M, M = 3: 0, dropped as rows past count)
            h = fold([builder.load(a) for a in acc] + [zero] * (L - R * M))
            if by_terms:  # h[m] += x[r0, k]·W[k, m] for k from full on, in k's order
                hp = cgutils.alloca_once_value(builder, h)
                with cgutils.for_range(builder, terms) as t:
                    xk = builder.load(builder.gep(x, [builder.add(xrow[0],
                                                                  builder.add(full, t.index))]))
                    xk = _splat(builder, xk if et == ct else builder.fpext(xk, ct), L)
                    wr = load(Wr, builder.mul(t.index, i64(L)), None, vc)
                    builder.store(madd(xk, wr, builder.load(hp)), hp)
                h = builder.load(hp)
            rows = lanes_below(builder.mul(count, i64(M)))
            relu = builder.select(builder.fcmp_ordered("<", h, zero), zero, h)  # max(h, 0)
            yv = wide(load(y, yb, rows))
            z = builder.fsub(relu, yv)  # in float32: the exact difference rounded once
            z64 = wide(z, d) if thin else z  # f's z: float32's, its square exact in float64
            z64 = builder.select(rows, z64, zero64)
            builder.store(_madd(builder, fused, z64, z64, builder.load(f)), f)
            t = builder.fmul(two, z)
            if wdy:
                store(rounded(builder.fneg(t)), dy, yb, rows)
            if not (wdx or wdw):
                return
            g = relu_grad_at(builder, a0_zero, drop_nan, a0v, h, zero, t)
            store(g, gsp, builder.mul(b, i64(R * M)), None)
            if wdw and not thin:
                store(wide(g, d), gsp64, builder.mul(b, i64(R * M)), None)

        def dx_rows(r0, count):
            # dx[n, :] = Σ_m g[n, m]·W[:, m] in m's order over a group's rows [r0, r0 + count)
            def scale(q, j, mask, wc):  # dx[r0 + q, j:j+L]
                gb = [g_of(q, m, gsp) for m in range(M)]
                v = builder.fmul(gb[0], wc[0])
                for m in range(1, M):
                    v = madd(gb[m], wc[m], v)
                v, at_x = rounded(v), builder.add(builder.mul(builder.add(r0, q), K), j)
                with builder.if_else(sx) as (past, cached):
                    with past:
                        if mask is None:
                            _store_streamed_parts(builder, v, _vector_at(builder, dx, at_x, ve))
                        else:  # the row's last 16-byte parts
                            builder.store(v, dx_slot)
                            n = builder.udiv(builder.sub(K, full), i64(_PART // size))
                            with cgutils.for_range(builder, n) as c:
                                e = builder.mul(c.index, i64(_PART // size))
                                pv = builder.load(builder.bitcast(builder.gep(
                                    builder.bitcast(dx_slot, et.as_pointer()), [e]),
                                    part.as_pointer()), align=size)
                                _store_streamed_parts(builder, pv, builder.bitcast(
                                    builder.gep(dx, [builder.add(at_x, e)]),
                                    part.as_pointer()))
                    with cached:
                        if mask is not None and masked_store:  # a row's last vector, masked:
                            _prefetch(builder, builder.gep(dx, [builder.add(  # its line asked
                                at_x, i64(PF_BYTES // size))]), write=True)  # for ahead
                        store(v, dx, at_x, mask)  # for writing (rowvec.py's doc)

            def by_rows():  # row by row, each row's lines in order
                with cgutils.for_range(builder, count) as q:
                    each_vector(lambda j, mask: scale(q.index, j, mask, w_columns(j, mask)))
            if M >= 3:  # a vector of x's row at a time for the group's rows: W's columns
                # loaded or shuffled once a group, not once a row (30b); but streamed rows
                # row by row unless each store fills a line: interleaved, each row's line
                # split across two stores waits in a write-combining buffer for the next,
                # and the rows' lines flush part-written (10⁶×64×3 into np.empty's arrays,
                # 16 bytes past a line: 18.7 → 48–53 ms, 30d; as AVX2 with 32-byte vectors
                # on whole lines 10⁶×32×4 11 → 44 ms, 30h)
                def rows_at(j, mask):
                    wc = w_columns(j, mask)
                    with cgutils.for_range(builder, count) as q:
                        scale(q.index, j, mask, wc)
                with builder.if_else(by_vectors) as (vectors, rows_):
                    with vectors:
                        each_vector(rows_at)
                    with rows_:
                        by_rows()
            else:  # up to 16 rows a block, each row's lines in order
                by_rows()

        # dW's columns in passes over a group's rows, each pass's sums in at most 16 of
        # AVX-512's 32 registers and 12 of AVX2's 16: float64 arithmetic's at M = 7, 8 on
        # AVX2 in two passes, where 14 or 16 registers of sums spilled (in L2 256×8 690–730
        # → 580–620 cycles a row, 64×8 230–275 → 200–225; dev/products_v30.md 31b); float32
        # arithmetic's sums, a register a column, in one
        per_reg = max(1, L * (32 if thin else 64) // vector_bits)  # registers a column's sums
        npass = -(-M * per_reg // (16 if vector_bits >= 512 else 12))
        dw_passes = [range(M * p // npass, M * (p + 1) // npass) for p in range(npass)]

        def dw_rows(r0, count, ahead=None):
            # dW[j:j+L, m] += x[n, j:j+L]·g[n, m] over a group's rows [r0, r0 + count) in
            # order: M vectors of sums in registers for S·R rows (30c; float32 arithmetic's
            # from 0, then added to the float64 sums, 32b); the last partial vector's float64
            # sums stay in registers across groups.  ahead: x's elements that far on are
            # prefetched (a whole group's: the next group's rows, which no load asks for
            # while dW's rows run)
            def update(j, mask):
                # whole vectors' sums wait in the partial column by column
                at_j = [builder.add(builder.mul(j, i64(M)), i64(m * L)) for m in range(M)]
                if thin:  # float32 sums over the group's rows from 0, then into float64's
                    sm = [cgutils.alloca_once_value(builder, zero) for _ in range(M)]
                elif mask is None:
                    for s_m, at_m in zip(sums, at_j):
                        builder.store(load(dwp, at_m, None, vd), s_m)
                    sm = sums
                else:
                    sm = dw_tail
                for p, cols in enumerate(dw_passes):
                    with cgutils.for_range(builder, count) as q:
                        at_x = builder.add(builder.mul(builder.add(r0, q.index), K), j)
                        if ahead and p == 0:
                            _prefetch(builder, builder.gep(x, [builder.add(at_x, ahead)]))
                        xv = wide(load(x, at_x, mask))  # the arithmetic's type (ct)
                        for m in cols:
                            builder.store(madd(xv, g_of(q.index, m, gsp64),
                                               builder.load(sm[m])), sm[m])
                for m, at_m in enumerate(at_j if mask is None or thin else ()):
                    v = wide(builder.load(sm[m]), d)
                    if not thin:
                        store(v, dwp, at_m, None)
                    elif mask is None:
                        store(builder.fadd(load(dwp, at_m, None, vd), v), dwp, at_m, None)
                    else:
                        builder.store(builder.fadd(builder.load(dw_tail[m]), v), dw_tail[m])
            each_vector(update)

        S = builder.select(builder.icmp_unsigned("<=", builder.mul(K, i64(size)),
                                                 i64(SHORT_ROW)), i64(S_short), i64(S_long))
        nrows, G = builder.sub(stop, start), builder.mul(S, i64(R))  # G rows a group: S
        with cgutils.for_range(builder, builder.udiv(builder.add(  # blocks, their dx, dW
                nrows, builder.sub(G, i64(1))), G)) as grp:
            r0 = builder.add(start, builder.mul(grp.index, G))
            left = builder.sub(stop, r0)
            with builder.if_else(builder.icmp_unsigned(">=", left, G)) as (whole, short):
                with whole:  # blocks of R rows: the code for a constant count (no clamps)
                    with cgutils.for_range(builder, S) as b:
                        block(builder.add(r0, builder.mul(b.index, i64(R))), i64(R), b.index)
                    if wdx:
                        dx_rows(r0, G)
                    if wdw:  # x's next group prefetched, where groups are more than a block
                        dw_rows(r0, G, builder.mul(G, K) if S_most > 1 else None)
                with short:  # the chunk's last rows: blocks of R, the last one partial
                    with cgutils.for_range(builder, builder.udiv(builder.add(
                            left, i64(R - 1)), i64(R))) as b:
                        done = builder.mul(b.index, i64(R))
                        rest = builder.sub(left, done)
                        block(builder.add(r0, done), builder.select(builder.icmp_unsigned(
                            "<", rest, i64(R)), rest, i64(R)), b.index)
                    if wdx:
                        dx_rows(r0, left)
                    if wdw:
                        dw_rows(r0, left)
        if not loss and wdw and M > 1:  # each vector of rows' M·L sums, held column by
            with cgutils.for_range(builder, nfull) as b:  # column, put in dW's row order
                at_j = builder.mul(builder.mul(b.index, i64(L)), i64(M))
                cols = [load(dwp, builder.add(at_j, i64(m * L)), None, vd) for m in range(M)]
                for v, c in enumerate(rows_of(cols)):
                    store(c, dwp, builder.add(at_j, i64(v * L)), None)
        if not loss and wdw:
            with builder.if_then(ragged):
                masks = matrix_masks(full, tail)
                for v, c in enumerate(rows_of([builder.load(s) for s in dw_tail])):
                    store(c, dwp, builder.add(builder.mul(full, i64(M)), i64(v * L)), masks[v])
        total = _across(builder, builder.load(f))  # f's lanes in halves
        if not thin:
            return total
        # float32's guard (rowvec.py's): NaN unless the chunk's f is finite and
        # 2·√f·max(‖W‖, 1) ≤ ½ float32's largest value
        if not wdw:
            return guarded(builder, total, W, builder.mul(K, i64(M)))
        # and dW's float32 sums not overflowed: Σ (s − s) over the chunk's partial, 0 where
        # every sum is finite, else NaN
        bad = cgutils.alloca_once_value(builder, d(0.0))
        with cgutils.for_range(builder, builder.mul(K, i64(M))) as e:
            s_e = builder.load(builder.gep(dwp, [e.index]))
            builder.store(builder.fadd(builder.load(bad), builder.fsub(s_e, s_e)), bad)
        return guarded(builder, total, W, builder.mul(K, i64(M)),
                       [builder.insert_element(ir.Constant(ir.VectorType(d, 1), None),
                                               builder.load(bad), i32(0))])

    if loss:
        @intrinsic
        def dots_loss(typingctx, x, W, y, start, stop, K):
            return types.float64(x, W, y, start, stop, K), codegen
        return dots_loss

    @intrinsic
    def dots(typingctx, dx, dW_part, dy, x, W, y, a0, start, stop, K, flags):
        return types.float64(dx, dW_part, dy, x, W, y, a0, start, stop, K, flags), codegen
    return dots
