"""The skinny rows vectorized along each row, in LLVM IR: K, M ≤ 8 on 256- and 512-bit vectors
(AVX2, AVX-512), from K·M = 8 on 256-bit ones and from K·M = 16 (or M = 8) on 512-bit ones;
past K = 8 up to 16 with 3 ≤ M ≤ 8 on 512-bit ones and 15 with M = 3, 4 on 256-bit ones;
past M = 8 up to 16 with 4 ≤ K ≤ 64 on 512-bit ones (float64 inputs to 14), and to 32
with 4 ≤ K ≤ 12, and K = 17 to 24 at M = 6 to 8 (float32 inputs: `applies`); M = 9 to 15
at K = 1 to 3 on both (`short_x`), and M = 5 to 7 at K = 1.

skinny.py's row functions leave the vectorizing to LLVM, which runs them over vectors of
rows: lane i of every value is row n + i.  x's and y's rows then come in interleaved and
are shuffled apart, dx and dy shuffled back, and at 4×4 the 16 dW accumulators fill the
16 ymm registers of an AVX2 machine (the loop spills).  There 10⁶×4×4 ran at 6.4 ms a
thread against 3.8 with AVX-512 (dev/products_v16.md 17a, 17e).  Past K·M = 16 that way
needs more accumulators than a machine has registers; those shapes took the tiled
kernels, whose 16-wide tiles are mostly padding at K, M ≤ 8 (10⁶×8×8 and 10⁶×5×7 12.5 ms,
as AVX2 20 and 17), or for K ≤ 3 the general row kernel (10⁶×3×8 17.4 ms;
dev/products_v22.md 23b, 23c).

Here a vector is one row, where a row of x and of y fits one vector of up to 8 lanes
(float64: two registers on AVX2; 5–7 elements as 8 lanes, loaded and stored masked), or
x's or y's row one of 16 lanes (9–15 elements masked; two registers on AVX2, or in
float64), and with y's row in 16 lanes x's one of 32 or 64 (17–63 elements masked; two or
four registers), or y's row one of 32 (17–31 masked, two registers).  On AVX2 such a
partial row is stored as its power-of-two parts, not masked: VMASKMOVPS's store costs
AMD's Zen far more (as AVX2 on Zen 4 10⁶×6×6 7.3 → 4.1 ms, dev/products_v42.md 43a).
Then:
h = Σ_k x[n,k]·W[k,:] with x[n,k] broadcast, z, f's M partial sums, g and dy along the row,
dx = Σ_m g[n,m]·W[:,m] (at K = 1 but M = 1, 2, 4, 8 one sum across g·W's row, its lanes
added in halves; float32's K of them side by side at K = 2, 3 where `dx_across`), and dW's
K row vectors of accumulators += x[n,k]·g (or its M column vectors += g[n,m]·x's row,
float32's on AVX2 where those FMAs are fewer: `dw_across`).  Rows loaded and stored whole;
no shuffle but the broadcasts.  Past 4 lanes x's row (float64) and g are stored to a stack
slot and each lane broadcast from there (a load), where permutes from a register took the
port the FMAs need (8×8 in cache: 14.4 → 12.0 ns a row); float32 x's lanes are broadcast
from x itself.  x's and y's rows are prefetched PF_BYTES ahead; where a call asks (the
STREAM bit of `flags`, loopgrad.cpu.streams) dx's and dy's rows go past the caches, where a
row is a multiple of 16 bytes and the array starts on 16 bytes (dev/products_v26.md 27a), a
row that fills part of its vector as its 16-byte parts (12 of 16 lanes, 24 of 32;
dev/products_v33.md 34c).  A row stored by a masked store (AVX-512: a part of its vector)
and not past the caches has its line PF_BYTES ahead asked for writing (PREFETCHW): such
stores do not fetch their lines ahead as plain ones do, and on Zen 5 from memory they had
run 10⁶×6×6, 5×7, 9×5 1.2–1.35× slower (rowdots.py's dx rows of 10×1 1.9×; AVX2's rows of
parts as plain stores level without it: dev/products_v51.md 52d).  Float32 rows of 17 to 24
in 32 lanes convert only their first 24 for f (16 and 8; in L2 the loss at 12×24 27–28 → 22
cycles a row: dev/products_v34.md 35b), and on AVX2 rows of 9 to 12 in 16 lanes their first
12 (8 and 4: `f_parts`).

    row_vectors(K, M, want)(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop,
                            flags) -> f
    row_vectors(K, M, 0, loss=True)(x, W, y, start, stop) -> f

are intrinsics for the row functions skinny.py generates (pointers to x's dtype; dW_part
float64): rows [start, stop) → dx and dy rows and dW_part[:K·M] = Σ x[n,k]·g[n,m], the
gradients `want` (WANT_* bits) names; the result is Σ z².

Float64 inputs take skinny.py's arithmetic: each h and dx sum from its first product on
in k's and m's order (past K = 8 h's even k's and odd k's as two sums, added last: one
chain of K dependent steps a row bound those rows, in cache 16×8 43 → 36.5 cycles a row,
dev/products_v28.md 29d; past M = 8 dx's even m's and odd m's the same way,
dev/products_v30.md 31d), g by loopgrad._scalar.relu_backward's cases, f summed in M
partial sums, lane m over the rows in order, added in halves (((s0 + s1) + (s2 + s3)) at M = 4);
dW's sums each in row order.  A product and a sum each step: an FMA would hide a
product's overflow.

Float32 inputs take float32 arithmetic, as the tiled kernels do (and torch and BLAS): h's
and dx's sums by float32 FMAs in the same order, but split into even and odd terms from 5
of them (THIN_ONE_CHAIN); z = max(h, 0) − y in float32 (the exact
difference rounded once), g and dy = −2·z from it; dW's sums by float32 FMAs over blocks of
NARROW_BLOCK rows from the chunk's first (dw_block's where given), each block's sum added
to a float64 one in block order; f the same float64 partial sums of z², each the exact
square of that float32 z (one FMA; dev/products_v35.md 36a).  A row of 8 is one 256-bit
register where float64 took two, and there are no conversions: as AVX2 10⁶×8×8 8.7 → 6.0 ms
and 10⁶×5×7 8.0 → 4.6, natively 5.6 → 4.5 and 4.5 → 3.7 (27b).  Float32 sums can overflow
where float64's would not, so the intrinsic returns NaN unless its chunk's f is finite,
2·√f·max(‖W‖, 1) ≤ ½ float32's largest value (every dx sum is within it: |g[n,:]| ≤ 2·√f,
Cauchy–Schwarz) and its dW sums are finite: guards.py's test, chunk by chunk.  loopgrad.cpu
then runs the call again on the same rows with narrow=False (float64 arithmetic:
skinny.py's `rows_exact`, 5–10× faster than the general rows the tiled kernels fall back
to); one without dW cannot see dW's overflow.

The same code for every `want` and for the loss, so f has the same bits whichever
gradients a call asks for.
"""

import functools

import numpy as np

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._inputs import STREAM, WANT_DW, WANT_DX, WANT_DY
from .intrinsics import (_PART, _acrosses, _madd, _masked, _prefetch, _splat,
                         _store_streamed_parts, _streams, relu_grad_at)

WIDE = 8      # lanes of float64 in a 512-bit vector: K and M up to this on AVX-512
LONG = 16     # lanes of float32 in a 512-bit vector: x's row up to this past WIDE (`applies`)
# x's and y's rows are prefetched this many bytes ahead of the row at work: the hardware
# prefetcher alone left the loop waiting on them (10⁶×8×8 6.0 → 5.6 ms, 10⁶×5×7 5.2 → 4.4,
# float64 8×8 10.1 → 8.7; as AVX2 4×4 3.4 → 3.0; 1–4 KiB alike; dev/products_v26.md 27a)
PF_BYTES = 2048
NARROW_BLOCK = 32  # rows a block of dW's float32 sums takes (float32 inputs)
# y's row in 16 lanes (M = 9 to 16, AVX-512) up to this K, by the inputs' dtype: float32's
# rows to 16 (10⁶×16×16 13.8–14.2 → 12.3–12.9 ms, 10⁶×15×16 15.4–15.9 → 12.3–12.4 against
# the 16×16 tile), and past it x's row in 32 or 64 lanes (two or four registers) to 64
# (10⁶×17×9 15.6–16.0 → 10.9–11.4 ms, 24×12 19.4–20.1 → 14.9–15.8, 32×16 26.8–26.9 →
# 19.0–20.6, 64×16 52.7–53.4 → 36.0–38.5, 64×9 51 → 29–32: dev/products_v33.md 34a);
# float64's to 14: at 16 its rows, W's rows and columns two registers each, lost to the
# 8×16 tile (10⁶×16×16 24.0 → 28.4, 10⁶×16×10 22.2 → 26.8), at 15 level
# (dev/products_v30.md 31c, 31d; dev/products_v31.md 32a)
Y_LONG_K = {"float32": 64, "float64": 14}
# y's row in 16 lanes (two registers; float64's four) on 256-bit entries (AVX2), at
# 4 ≤ K ≤ 8, up to this M by the inputs' dtype, where the 6×16 and 6×8 tiles had them (as
# AVX2 on the Zen 4 guest, 2 threads, ms: float32 10⁶×4×12 13.6 → 8.3, 7×11 12.1 → 9.9,
# 5×16 10.4 → 8.6, 8×16 level; float64 6×9 17.1 → 13.0, 8×12 19.3 → 15.4, 8×13 19.3 →
# 17.9, 4×14 17.4 → 12.6, but 5×16 18.8 → 21.0, 8×16 20.0 → 26.0; past K = 8 level or
# slower: float32 16×10 10.7 → 14.7, 12×12 12.8 → 11.7; dev/products_v42.md 43e)
Y_LONG_M256 = {"float32": 16, "float64": 13}
# y's row in 32 lanes (M = 17 to 32, AVX-512, float32) up to this K, which took the 8×32
# tile: 10⁶×4×17 12.3–12.7 → 8.1–8.4 ms, 4×32 16.0–16.6 → 10.3–10.6, 8×20 14.6–14.7 →
# 11.5–11.9, 8×32 16.6–18.8 → 12.4, 12×24 15.9–16.9 → 14.9–15.3; from K = 16 level or
# slower (16×24, 16×20, 17×32; 32×32 and 64×20 1.08–1.09×: the one-row loop is bound by
# loads of W's rows and columns, which the tile shares among 8 rows), and y's row in 64
# lanes too (10⁶×4×64 1.2×, 4×40 level: dev/products_v33.md 34b)
Y_WIDE, Y_WIDE_K = 32, 12
# x's row in 32 lanes with y's in 8 (M = 6 to 8, AVX-512, float32) up to this K, where
# rowdots.py's dot products had them: 10⁶×17×8 10.2–11.0 → 8.4–8.8 ms, 20×8 10.5–11.5 →
# 8.2–8.6, 24×8 0.85, 17×6 0.89, 20×6 0.84, 18×7 0.86; from K = 28 level or slower, and
# at M = 5 (24×5 1.19: dev/products_v33.md 34g)
X_WIDE_K, X_WIDE_M = 24, 6
# where K or M is past LONG, h's and dx's sums in this many chains (i mod CHAINS; two from
# 9 terms):
# in L2 32×12 90 → 84 cycles a row, 24×12 73 → 68 (34a)
CHAINS = 4
# float32's h and dx sums in one chain up to this many terms, past it the even and the odd
# terms apart (float64's keep skinny.py's order, one chain up to WIDE): a chain of 8
# dependent FMAs a row left the out-of-order window few rows to overlap.  The intrinsic
# alone at 10⁶×8×8 on the Zen 4 guest 4.32 → 3.83 ms on two threads, 8.65 → 7.74 on one
# (dev/products_v41.md 42g)
THIN_ONE_CHAIN = 4
# dW's blocked sums take at most this many rows of accumulators (registers) a pass over
# a block's rows: K = 17 to 64 along y's rows is K of them
PASS = 16
# from this K, at M = 9 to 16, dW's sums by blocks of rows (`dw_rows`)
DW_FROM = 9
FLOAT32_MAX = 3.4028234663852886e38  # the guard's (module doc)


def _padded(n: int) -> int:
    # the lanes a row of n elements takes: 5–7 as 8 (masked loads and stores), where LLVM's
    # own vectors of 5–7 lanes split badly on AVX2 (10⁶×6×6 16.2 ms against 8×8's 10.0);
    # 9–15 as 16, 17–31 as 32, 33–63 as 64 (48 lanes had run 40×16 and 48×16 1.05–1.5×
    # slower in L2: 34a)
    return WIDE if 4 < n < WIDE else LONG if WIDE < n < LONG else \
        n if n <= LONG else 1 << (n - 1).bit_length()


def partial(K: int, M: int) -> bool:
    """Whether x's or y's row fills only part of its vector (`_padded`): loaded masked,
    stored masked or in parts (`row_vectors`' masked_store)."""
    return _padded(K) != K or _padded(M) != M


class _VolatileLoad(ir.instructions.LoadInstr):
    # `load volatile`, which llvmlite's builder does not write: LLVM keeps it a load of
    # its own (no forwarding from the store before it back into a permute), so the
    # broadcast of it is one vbroadcastsd from memory or an FMA's {1toN} operand
    def descr(self, buf):
        [ptr] = self.operands
        align = getattr(self, "align", 8)
        buf.append(f"load volatile {self.type}, {ptr.type} {ptr.get_reference()}, align {align}\n")


def _load_volatile(builder, ptr, align=8):
    instr = _VolatileLoad(builder.block, ptr, typ=ptr.type.pointee)
    instr.align = align
    builder._insert(instr)
    return instr


def applies(K: int, M: int, vector_bits: int, dtype=None) -> bool:
    """Whether skinny.py builds the (K, M) row functions on these intrinsics for an entry of
    vector_bits (256 or more), K, M ≤ 8: past K·M = 16, where LLVM's vectors of rows would
    need more accumulators than there are registers; and below it where these rows, with
    their prefetch and streamed stores, were measured faster than LLVM's vectors of rows
    (dev/products_v26.md 27f): on 256-bit vectors from K·M = 8 (10⁶×2×8 7.5 → 3.2 ms,
    10⁶×2×4 3.3 → 2.2; at 2×2, 4×1 and 1×2 14–31 % slower), on 512-bit ones from K·M = 16
    and where y's row is 8 (10⁶×4×4 2.9 → 2.2, 10⁶×1×8 3.7 → 2.6; below, float32's rows of
    few lanes lose to LLVM's 16 rows a vector: 2×4 15 %, 8×1 14 %, 2×2 68 % slower).
    On 512-bit vectors also 9 ≤ K ≤ 16 with M ≥ 3 (x's row in 16 lanes), which took the
    tiled kernels, 16-wide tiles of 3–8 columns (10⁶×9×5 10–15 → 6.4–7.6 ms, 10⁶×13×7 12–13
    → 7.9–8.1, 10⁶×12×6 12 → 7.6–8.5; 16×8 12.3–12.5 → 10.6–11.1), and rowdots.py's M = 3
    and 4 below K = 16 (9×3 7.4–8.6 → 5.7–6.1, 12×4 12 → 7.2–7.5; dev/products_v28.md
    29c), which from K = 10 at M = 3 and 12 at M = 4 are faster since and are taken first
    (skinny.py; dev/products_v30.md 31j), as are its M = 5 to 7 at K = 16 (dev/products_v31.md
    32c).  On 256-bit ones
    9 ≤ K ≤ 15 at M = 3 and 4 (as AVX2, in cache, cycles a row against the 6×16 tile: 9×3
    34 → 22, 10×4 33 → 24, 12×4 34 → 28, 15×4 39–44 → 37–38; in memory 10⁶×9×3 12.5–13.1
    → 6.5–6.8 ms; at K = 16, level: 29f; rowdots.py's dot products take them first since
    dev/products_v52.md 53c), and 9 ≤ K ≤ 16 at M = 5 to 8, level with the tile
    until partial rows went out as their parts (float32 10⁶×9×5 10.6 → 5.3 ms, 13×7 16.5
    → 7.3, 15×8 12.9 → 8.7, 16×8 11.7 → 9.2; float64 9×8 16.8 → 13.7; rowdots.py's float64
    M = 5 and 6 are taken first: dev/products_v42.md 43d).  On 512-bit
    ones also 9 ≤ M ≤ 16 with 4 ≤ K ≤ Y_LONG_K[dtype] (y's row in 16 lanes), which took the
    16×16 tile: 10⁶×4×9 8.6–10 → 4.5–5.1 ms, 10⁶×8×16 11.6–16.6 → 8.6–9.1, 10⁶×12×16
    14.8–15.5 → 10.6–10.7, 10⁶×14×16 14.2–14.4 → 11.9–12.8; float64 10⁶×4×12 13.1 → 10.0,
    10⁶×9×9 18.6–19.3 → 16.1–16.3, 10⁶×12×16 level (dev/products_v30.md 31c, 31d); float32
    past K = 16 to 64 (10⁶×17×9 1.4×, 32×16 1.4×, 64×9 1.7× faster: dev/products_v33.md
    34a), and float32's 17 ≤ M ≤ Y_WIDE at 4 ≤ K ≤ Y_WIDE_K (y's row in 32 lanes), which
    took the 8×32 tile (10⁶×4×17 1.5×, 8×32 1.4× faster: 34b), and float32's 17 ≤ K ≤
    X_WIDE_K at X_WIDE_M ≤ M ≤ 8 (x's row in 32 lanes), which rowdots.py's dot products
    took (10⁶×20×8 1.25× faster: 34g).  Those (K, M) past 16 are 552 modules, which
    skinny.shapes leaves to the first call that asks for one (about a second's compile,
    then the disk cache) rather than to `loopgrad compile`.  On 256-bit ones also 4 ≤ K ≤ 8
    at M = 9 to Y_LONG_M256[dtype] (y's row in 16 lanes, two registers), which took the
    6×16 and 6×8 tiles.

    On both, x's rows of 1 with y's of 5 to 7, which LLVM's vectors of rows had (dx one sum
    across g·W's row, as past M = 8): as AVX2 10⁶×1×5 1.49×, 1×6 1.79×, 1×7 2.02×, natively
    1×6 1.17×, 1×7 1.80×, 1×5 level (0.97×; float64 1.36×: dev/products_v51.md 52g); and
    x's rows of 1 to 3 with y's of 9 to 15 (`short_x`).  On 256-bit ones also 2×3 and 3×2
    (as AVX2 10⁶ rows 1.41–1.43×, 10⁵ 1.41×, float64 1.03–1.06×: dev/products_v51.md 52i;
    float32's rowgroups.py's padded rows since dev/products_v52.md 53e).

    The rows of an entry are the same for both dtypes but at the bounds by dtype: dtype, the
    inputs' (float32 or float64), picks the kernel a call runs; None asks whether the rows
    are built for either (skinny.py's modules, which hold both dtypes' row functions, and
    float32's exact rerun in float64 arithmetic)."""
    if K < 1 or M < 1:  # an empty row (x's or y's): the general rows' (M = 8 had come here)
        return False
    if vector_bits >= 512 and LONG < M <= Y_WIDE:  # y's row in 32 lanes: float32's
        return 4 <= K <= Y_WIDE_K and (dtype is None or np.dtype(dtype) == np.float32)
    if vector_bits >= 512 and WIDE < M <= LONG:  # y's row in 16 lanes
        return (4 <= K or short_x(K, M, dtype)) and K <= (
            max(Y_LONG_K.values()) if dtype is None else Y_LONG_K[np.dtype(dtype).name])
    if vector_bits == 256 and WIDE < M <= LONG:  # y's row in 16 lanes, two registers
        return (4 <= K or short_x(K, M, dtype)) and K <= WIDE and M <= (
            max(Y_LONG_M256.values()) if dtype is None else Y_LONG_M256[np.dtype(dtype).name])
    if vector_bits >= 512 and LONG < K <= X_WIDE_K and X_WIDE_M <= M <= WIDE:  # x's row
        return dtype is None or np.dtype(dtype) == np.float32                # in 32 lanes
    if vector_bits < 256 or K > LONG or M > WIDE:
        return False
    if K > WIDE:  # x's row in 16 lanes (two registers on 256-bit vectors)
        return M >= 3 if vector_bits >= 512 else 3 <= M <= 4 and K < LONG or M >= 5
    if vector_bits == 256:
        return K * M >= 8 or K == 1 and M >= 5 or K * M == 6 and M > 1
    return K * M >= 16 or M == WIDE or K == 1 and M >= 5


def short_x(K: int, M: int, dtype=None) -> bool:
    """Whether (K, M) is a row of x of 1 to 3 elements with y's of 9 to 15 (y's row in 16
    lanes) that these rows take for inputs of dtype (None: either) on 256- and 512-bit
    entries, where rowblocks.py's blocks of 8 had them (M at run time, a partial last block,
    dW's float64 sums loaded and stored a row): natively, 2 threads, 10⁶ rows, float32 2×9
    2.77×, 3×9 2.83×, 2×13 2.15×, 3×15 1.77× faster, as AVX2 3×9 1.79×, 2×15 1.31×; at K = 1,
    with dx one sum across g·W's row (M broadcasts of g's elements had lost to the blocks
    from M = 12), 1×9 to 1×15 1.1–2.3× natively, 1.45–1.9× as AVX2; at M = 16, whole blocks,
    the blocks stay (1×16 0.86×, 2×16 0.89× natively).  Float64's from K = 2 to M = 14
    (natively 2×10 1.42×, 3×14 1.51×, 2×15 0.94×; as AVX2 to 13 by Y_LONG_M256, 3×9 1.41×,
    2×10 1.17×; at K = 1 level).  dev/products_v51.md 52e, 52f."""
    if dtype is None:
        return short_x(K, M, np.float32) or short_x(K, M, np.float64)
    if np.dtype(dtype) == np.float64:
        return 2 <= K <= 3 and WIDE < M < LONG - 1
    return 1 <= K <= 3 and WIDE < M < LONG


def dw_rows(K: int, M: int, vector_bits: int) -> int:
    """Rows a block of dW's updates takes on an entry of vector_bits (0: each row's own, in
    the row loop).  On 256-bit vectors a row of more than 4 lanes is two registers, and dW's
    K rows of accumulators then 2·K of the 16 (with W's rows and columns beside them): past
    K = 4 the loop kept them on the stack, a load and a store each a row.  There x's and g's
    rows of a block go to a buffer, and dW's sums run over the block after it, half a row's
    lanes at a time: K registers.  The same sums in the same order: the same bits.  As AVX2
    10⁶×8×8 10.0–10.3 → 9.2–9.3 ms; 8 to 64 rows a block alike (dev/products_v23.md 24e).
    With AVX-512 at M = 9 to 16 from K = DW_FROM, dW's K accumulators beside W's 2·K rows
    and columns: in L2 16×16 dW alone 41–57 → 33–35 cycles a row, 10⁶×16×9 12.1 → 10.6
    ms (dev/products_v30.md 31d)."""
    if vector_bits >= 512 and (M > WIDE and K >= DW_FROM or max(K, M) > LONG):
        return 32
    return 32 if vector_bits == 256 and _padded(M) > 4 and K > 4 else 0


def dw_across(K: int, M: int, vector_bits: int) -> bool:
    """Whether float32 arithmetic's dW sums run row by row along x's rows (`row_vectors`'
    dw_across) where `dw_rows` gives blocks: on 256-bit vectors with x's row one register
    (5 ≤ K ≤ 8), where M FMAs a row (M accumulators of K lanes) are no more than the
    blocks' K·(y's registers a row), which also broadcast x's K elements again and keep
    both rows in buffers; g's broadcasts are the ones dx's sums take.  As AVX2 on Zen 4,
    the intrinsic alone at 10⁶ rows, 2 threads: 8×8 5.17 → 4.84 ms, 8×5 4.47 → 3.83, 7×5
    0.89×, 7×6 0.89×, 6×6 0.94×, 6×9 0.92×, 7×11 0.81×, 8×16 0.83–0.85×; where M FMAs
    are more, level or slower (5×8 1.01–1.04×, 6×8 0.98×, 5×16 1.03–1.06×), as with x's
    row in two registers (13×7 1.14×) and K ≤ 4's own rows, which share x's broadcasts
    with h (4×8 1.08×; dev/products_v43.md 44b)."""
    return (vector_bits == 256 and 4 < K <= WIDE and dw_rows(K, M, vector_bits) > 0
            and M <= K * -(-_padded(M) // WIDE))


def dx_across(K: int, M: int, vector_bits: int) -> bool:
    """Whether float32 arithmetic's dx of a row of x of 2 or 3 with y's of 9 to 15
    (`short_x`; on AVX2 also 2×7, 2×8 and 3×8) is K sums across g·W's rows (`row_codegen`'s
    dx_across: W's row k times g, its lanes added in halves, the K sums side by side:
    intrinsics._acrosses), where M broadcasts of g's elements and M FMAs into x's row (K
    of 4 lanes live) cost more: on
    the Zen 5 guest, one thread in cache, cycles a row, as AVX2 2×9 to 2×15 29.5–40.7 →
    24.1–27.3 (1.2–1.6×), 3×12 to 3×15 40–45 → 35–39 (1.1–1.2×; 3×9 to 3×11 level); natively
    2×11 to 2×15 20.8–27.0 → 19.1–20.4 (1.07–1.38×; 2×9, 2×10 0.93–0.97×), 3×15 28.8–30.9 →
    25.3–25.4 (3×9 to 3×14 0.75–1.0×).  dev/products_v52.md 53a.  As AVX2 with y's row one
    register: 2×8 19.1–19.6 → 14.0–14.4 (10⁶ rows 2.16–2.34 → 1.57–1.82 ms), 2×7 17.1–18.0 →
    16.1–16.2, 3×8 20.8–23.9 → 19.3–20.2 (2×5, 3×5, 3×6 slower, 2×6, 3×7 level; 53d)."""
    if vector_bits == 256 and M <= WIDE:  # y's row one register
        return K == 2 and M >= 7 or K == 3 and M == WIDE
    if not (WIDE < M < LONG):
        return False
    if vector_bits == 256:
        return K == 2 or K == 3 and M >= 12
    return K == 2 and M >= 11 or K == 3 and M == 15


def f_parts(M: int, vector_bits: int) -> bool:
    """Whether float32 arithmetic's f of a row of y of 9 to 12 (16 lanes) keeps its float64
    partial sums in 8 and 4 lanes, not 16 (`row_codegen`'s f_parts; the same sums, the lanes
    past M never read): on 256-bit entries, where that is three registers of float64, not
    four, and a conversion less a row: as AVX2 in cache, cycles a row, 3×12 35.2–35.4 →
    32.2–33.1, 1×10 19.9–20.3 → 18.6, 6×9 48 → 43–45, 8×10 53 → 50–51, 2×10, 2×9, 4×12
    level; natively (16 lanes one register) level or 1–3 % slower.  dev/products_v52.md 53b."""
    return vector_bits == 256 and WIDE < M <= WIDE + 4


def guarded(builder, f, W, size, sums=()):
    """f (a chunk's float64 Σ z²) where float32 sums of h, dx and dW cannot have overflowed
    where float64's would not, else NaN: f finite, 2·√f·max(‖W‖, 1) ≤ ½ float32's largest
    value (W a pointer to its `size` float32s, an i64), and every lane of the float64
    vectors `sums` (dW's) finite."""
    d = ir.DoubleType()
    w2 = cgutils.alloca_once_value(builder, d(0.0))
    with cgutils.for_range(builder, size) as e:
        w = builder.fpext(builder.load(builder.gep(W, [e.index])), d)
        builder.store(builder.fadd(builder.load(w2), builder.fmul(w, w)), w2)
    sqrt = cgutils.get_or_insert_function(builder.module, ir.FunctionType(d, [d]),
                                          "llvm.sqrt.f64")
    norm = builder.call(sqrt, [builder.load(w2)])
    norm = builder.select(builder.fcmp_ordered(">", norm, d(1.0)), norm, d(1.0))
    bound = builder.fmul(builder.fmul(d(2.0), builder.call(sqrt, [f])), norm)
    ok = builder.and_(builder.fcmp_ordered("==", builder.fsub(f, f), d(0.0)),
                      builder.fcmp_ordered("<=", bound, d(0.5 * FLOAT32_MAX)))
    for v in sums:
        fin = builder.fcmp_ordered("==", builder.fsub(v, v), ir.Constant(v.type, None))
        n = v.type.count
        ok = builder.and_(ok, builder.icmp_unsigned(
            "==", builder.bitcast(fin, ir.IntType(n)), ir.IntType(n)((1 << n) - 1)))
    return builder.select(ok, f, d(float("nan")))


@functools.lru_cache(maxsize=None)
def row_vectors(K: int, M: int, want: int, loss: bool = False, dw_block: int = 0,
                stream: bool = True, pf: int = PF_BYTES, narrow: bool = True,
                dw_lanes: int = 4, slot_past: int = 4, masked_store: bool = True,
                dw_across: bool = False, dx_across: bool = False, f_parts: bool = False):
    """The intrinsic for (K, M) and the gradients `want` names, or the loss's: row_codegen's
    rows (the arguments are its) as an intrinsic."""
    return _wrap(row_codegen(K, M, want, loss, dw_block, stream, pf, narrow, dw_lanes,
                             slot_past, masked_store, dw_across, dx_across, f_parts),
                 loss)


def row_codegen(K: int, M: int, want: int, loss: bool = False, dw_block: int = 0,
                stream: bool = True, pf: int = PF_BYTES, narrow: bool = True,
                dw_lanes: int = 4, slot_past: int = 4, masked_store: bool = True,
                dw_across: bool = False, dx_across: bool = False, f_parts: bool = False):
    """The code (for Numba's @intrinsic) of the rows for (K, M) and the gradients `want`
    names, or the loss's (see the module's doc; rowgroups.py takes it for float64 inputs);
    dw_block: dW's updates by blocks of that many rows (`dw_rows`), else row by row;
    stream: the code that stores rows past the caches where `flags` asks; pf: x's and y's
    rows prefetched that many bytes ahead (0: none); narrow: float32 inputs in float32
    arithmetic (else float64; the module's doc); dw_lanes: the float64
    lanes a part of dW's blocked sums takes (4, an AVX2 register; 8 on 512-bit entries);
    slot_past: rows longer than this broadcast their lanes from a stack slot, shorter ones
    by shuffles (the slot 1.2-1.3× faster at 8×8 on Zen 4 as on Intel: dev/products_v41.md
    42f); masked_store: a row that fills part of its vector stored by one masked store,
    else as its power-of-two parts (4, 2, 1 lanes: 7 = 4 + 2 + 1); dw_across: float32
    arithmetic's dW sums row by row along x's rows, M accumulators of K lanes += g[n,m]·x's
    row, g's broadcasts the ones dx takes (dw_block then for float64 arithmetic alone);
    dx_across: float32 arithmetic's dx as K sums across g·W's rows (`dx_across`); f_parts:
    float32 arithmetic's f of a row of 9 to 12 in 16 lanes in partial sums of 8 and 4
    lanes (`f_parts`)."""
    most = max(Y_LONG_K.values()) if M > WIDE else X_WIDE_K
    if not (1 <= K <= most and 1 <= M <= Y_WIDE):
        raise ValueError(f"row_vectors takes M ≤ {Y_WIDE} and, at M = {M}, K ≤ {most}; got "
                         f"K = {K}")
    from_slot = max(K, M) > slot_past  # broadcasts from a stack slot (the module's doc)
    wdx, wdw, wdy = bool(want & WANT_DX), bool(want & WANT_DW), bool(want & WANT_DY)

    def codegen(context, builder, sig, args):
        if loss:
            (x, W, y, start, stop), tx = args, sig.args[0]
            a0 = ir.DoubleType()(0.0)
        else:
            (dx, dwp, dy, x, W, y, a0, start, stop, flags), tx = args, sig.args[3]
        size, fused = tx.dtype.bitwidth // 8, tx.dtype == types.float32
        et, d, i64, i32 = context.get_value_type(tx.dtype), ir.DoubleType(), ir.IntType(64), \
            ir.IntType(32)
        # the arithmetic's type: float64, or float32 for float32 inputs where narrow
        ct = et if narrow and fused else d
        thin = ct != d
        Kp, Mp = _padded(K), _padded(M)
        vm, vk = ir.VectorType(ct, Mp), ir.VectorType(ct, Kp)
        vm64 = ir.VectorType(d, Mp)
        csize = 4 if thin else 8
        # dW's updates by blocks of rows: where asked, and always in float32 (its float32
        # sums then last one block, added in float64 after it)
        blk = dw_block or (NARROW_BLOCK if thin else 0)
        blocked = bool(dw_block) and wdw and not loss and not (thin and dw_across)
        stepped = thin and wdw and not loss and not blocked  # dW per row, float32 a block
        # stepped along x's rows: dW's M rows of K lanes (dWᵀ's), g's broadcasts shared
        # with dx's sums (the same products in the same order: the same bits)
        turned = stepped and dw_across

        def vec(ptr, at, n):  # a pointer to the n elements of x's dtype at ptr[at]
            return builder.bitcast(builder.gep(ptr, [at]), ir.VectorType(et, n).as_pointer())

        def lanes_below(n, p):
            return ir.Constant(ir.VectorType(ir.IntType(1), p), [i < n for i in range(p)])

        def load_row(ptr, at, n, p):  # n elements as p lanes of ct (the others 0)
            if p == n:
                v = builder.load(vec(ptr, at, n), align=size)
            else:
                v = _masked(builder, "load", ir.VectorType(et, p), vec(ptr, at, p), size,
                            lanes_below(n, p), ir.Constant(ir.VectorType(et, p), [0.0] * p))
            return v if et == ct else builder.fpext(v, ir.VectorType(ct, p))

        def store_first(v, ptr, at, n):
            # v's first n lanes (of more): one masked store, or n's power-of-two parts as
            # plain stores, largest first (masked_store: row_vectors' doc)
            if masked_store:
                p = v.type.count
                _masked(builder, "store", v.type, vec(ptr, at, p), size, lanes_below(n, p), v)
                return
            o = 0
            for b in reversed(range(n.bit_length())):
                if n >> b & 1:
                    builder.store(lanes(v, o, o + (1 << b)),
                                  vec(ptr, builder.add(at, i64(o)), 1 << b), align=size)
                    o += 1 << b

        def store_row(v, ptr, at, n, streamed=None):
            # the first n of v's lanes; past the caches where `streamed` (an i1) is true
            p = v.type.count
            v = v if et == ct else builder.fptrunc(v, ir.VectorType(et, p))
            if p == n and streamed is not None and n * size % _PART == 0:
                with builder.if_else(streamed) as (past, cached):
                    with past:
                        _store_streamed_parts(builder, v, vec(ptr, at, n))
                    with cached:
                        builder.store(v, vec(ptr, at, n), align=size)
            elif p == n:
                builder.store(v, vec(ptr, at, n), align=size)
            elif streamed is not None and n * size % _PART == 0:
                # a row of whole 16-byte parts in a padded vector (12, 20, 24, 28 of 16 or
                # 32 lanes): its first n lanes as those parts, past the caches
                with builder.if_else(streamed) as (past, cached):
                    with past:
                        _store_streamed_parts(builder, lanes(v, 0, n), vec(ptr, at, n))
                    with cached:
                        store_first(v, ptr, at, n)
            else:
                store_first(v, ptr, at, n)

        splat = functools.partial(_splat, builder)           # splat(s, n): n lanes of s
        madd = functools.partial(_madd, builder, fused)      # c + a·b (module doc)

        def lane(v, i):
            return builder.extract_element(v, i32(i))

        def lanes(v, lo, hi):  # v's lanes [lo, hi) as a vector of their own (v if all)
            if hi - lo == v.type.count:
                return v
            return builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), ir.Constant(
                ir.VectorType(i32, hi - lo), list(range(lo, hi))))

        # W's rows (M lanes) and columns (K lanes) in ct, once
        Wrow = [load_row(W, i64(k * M), M, Mp) for k in range(K)]
        Wcol = []
        for m in range(M):
            c = ir.Constant(vk, [0.0] * Kp)
            for k in range(K):
                w = builder.load(builder.gep(W, [i64(k * M + m)]))
                c = builder.insert_element(c, w if et == ct else builder.fpext(w, ct), i32(k))
            Wcol.append(c)
        # dx's and dy's rows past the caches: asked for, and on 16-byte boundaries
        sx = sy = None
        if stream and not loss:
            asked = builder.icmp_unsigned("!=", builder.and_(flags, i64(STREAM)), i64(0))
            sx, sy = (_streams(builder, asked, p, align=_PART) for p in (dx, dy))
        zero, two = ir.Constant(vm, [0.0] * Mp), ir.Constant(vm, [2.0] * Mp)
        a0v = splat(builder.fptrunc(a0, ct) if thin else a0, Mp)
        a0_zero, drop_nan = builder.fcmp_ordered("==", a0, d(0.0)), \
            builder.fcmp_ordered("==", a0, d(1.0))  # torch.clamp's rule: NaN h, g = 0
        # f's partial sums, in vectors of lanes [lo, hi) of y's row: float32's rows of 17 to
        # 24 in 32 lanes as 16 and 8 (three registers of float64 where four converted the
        # padding), of 9 to 12 in 16 as 8 and 4 where asked (`f_parts`), else the row's
        # vector (the lanes past M, never read, hold zeros)
        fparts = [(0, LONG), (LONG, LONG + WIDE)] if thin and Mp > LONG and M <= LONG + WIDE \
            else [(0, WIDE), (WIDE, WIDE + 4)] if thin and f_parts and Mp == LONG \
            and M <= WIDE + 4 else [(0, Mp)]
        fs = [cgutils.alloca_once_value(builder, ir.Constant(ir.VectorType(d, hi - lo),
                                                             [0.0] * (hi - lo)))
              for lo, hi in fparts]
        vd, vd64 = (vk, ir.VectorType(d, Kp)) if turned else (vm, vm64)  # dW's accumulators
        dzero = ir.Constant(vd, [0.0] * vd.count)
        dW = [] if blocked else [cgutils.alloca_once_value(builder, dzero)
                                 for _ in range(M if turned else K)]
        dW64 = [cgutils.alloca_once_value(builder, ir.Constant(vd64, [0.0] * vd.count))
                for _ in dW] if stepped else dW

        def flush():  # stepped: a block's float32 sums of dW added to the float64 ones
            for acc, acc64 in zip(dW, dW64):
                wide = builder.fpext(builder.load(acc), vd64)
                builder.store(builder.fadd(builder.load(acc64), wide), acc64)
                builder.store(dzero, acc)
        xslot, gslot = cgutils.alloca_once(builder, vk), cgutils.alloca_once(builder, vm)
        xd, gd = (builder.bitcast(v, ct.as_pointer()) for v in (xslot, gslot))
        # blocked: a block's rows of x and g (ct) for dW's sums after it, and those sums as
        # accumulators of HW lanes, a part of a row's lanes at a time (dw_rows: dw_lanes of
        # float64); in float32 a whole row (up to 16 lanes), its block's sums then added to
        # float64 ones.  With y's row in 16 lanes where M < K, along x's rows instead
        # (dW's columns: `across`): M broadcasts of g's elements a row where K of x's were
        # more; each sum the same products in the same order, so the same bits.  In L2
        # 16×9 49 → 34 cycles a row, 10⁶×16×9 9.3–9.8 → 7.9–8.9 ms; on AVX2's blocks of
        # M ≤ 8 slower (float64 7×5, 8×7 12–15 %; dev/products_v32.md 33b)
        # Past K = LONG x's row is two to four parts of 16 lanes, each a pass over the rows
        # with M broadcasts: along x's rows only where those are fewer than K (32×9, 33×9;
        # at 17×9 and 32×16 along y's rows, K of them in passes of PASS: in L2 32×16 108 →
        # 92 cycles a row, 34a)
        across = blocked and WIDE < M < K and (K <= LONG or -(-K // LONG) * M < K)
        O, L = (M, Kp) if across else (K, Mp)  # accumulators' rows, and their lanes
        HW = min(L, LONG) if thin else min(L, dw_lanes)
        parts = -(-min(L, K if across else M) // HW) if blocked else 0
        vh, vh64 = ir.VectorType(ct, HW), ir.VectorType(d, HW)
        stride = max(WIDE, Kp, Mp)  # a buffer's rows: WIDE elements, or 16, 32, 64
        if blocked:
            xbuf = cgutils.alloca_once(builder, ct, size=blk * stride)
            gbuf = cgutils.alloca_once(builder, ct, size=blk * stride)
            sbuf, vbuf = (gbuf, xbuf) if across else (xbuf, gbuf)  # splat, vector
            dWh = [[cgutils.alloca_once_value(builder, ir.Constant(vh64, [0.0] * HW))
                    for _ in range(parts)] for _ in range(O)]
            dWb = [[cgutils.alloca_once(builder, vh) for _ in range(parts)]
                   for _ in range(O)] if thin else dWh

        def buffered(buf, slot, j, t):  # a pointer to element j of the buffer's row slot
            at = builder.gep(buf, [builder.add(builder.mul(slot, i64(stride)), i64(j))])
            return builder.bitcast(at, t.as_pointer()) if t is not ct else at

        def dw_sums(count):
            # dW[k, part] += x[n,k]·g[n, part] (across: dW[part, m] += g[n,m]·x[n, part])
            # over the block's `count` rows in order (in float32: a sum of the block's rows
            # from 0, then added to the float64 one), PASS rows of accumulators a pass over
            # the rows (past K = 16: K rows of them, or x's row in two to four parts)
            for q in range(parts):
                for o0 in range(0, O, PASS):
                    group = range(o0, min(O, o0 + PASS))
                    for o in group if thin else ():
                        builder.store(ir.Constant(vh, [0.0] * HW), dWb[o][q])
                    with cgutils.for_range(builder, count) as r:
                        vq = builder.load(buffered(vbuf, r.index, q * HW, vh), align=csize)
                        for o in group:
                            so = splat(_load_volatile(builder, buffered(sbuf, r.index, o, ct),
                                                      csize), HW)
                            builder.store(madd(so, vq, builder.load(dWb[o][q])), dWb[o][q])
                    for o in group if thin else ():
                        wide = builder.fpext(builder.load(dWb[o][q]), vh64)
                        builder.store(builder.fadd(builder.load(dWh[o][q]), wide), dWh[o][q])

        def split(chain, n):
            # Σ over n terms: one chain up to WIDE terms (float32's THIN_ONE_CHAIN), else
            # the even and the odd apart,
            # and where K or M is past LONG CHAINS of them (i mod 4, added ((c0 + c1) +
            # (c2 + c3)))
            if n <= (THIN_ONE_CHAIN if thin else WIDE):
                return chain(range(n))
            nc = CHAINS if max(K, M) > LONG else 2
            c = [chain(range(i, n, nc)) for i in range(nc)]
            while len(c) > 1:
                c = [builder.fadd(c[i], c[i + 1]) for i in range(0, len(c), 2)]
            return c[0]

        def row_body(row, slot):
            # one row: h, z, f, dy, g, dx; dW's update, or x's and g's rows into the
            # block's buffers at `slot` (blocked)
            for ptr, n in ((x, K), (y, M)) if pf else ():  # rows pf bytes ahead
                ahead = builder.add(builder.mul(row, i64(n)), i64(pf // size))
                _prefetch(builder, builder.gep(ptr, [ahead]))
            # rows stored by a masked store (a part of their vector), where not past the
            # caches: their lines asked for ahead for writing, which AVX-512's masked stores
            # do not do as plain stores do (module doc)
            for ptr, n, w, s in ((dx, K, wdx, sx), (dy, M, wdy, sy)) if pf and not loss \
                    else ():
                if not (w and masked_store and _padded(n) != n):
                    continue
                at = builder.gep(ptr, [builder.add(builder.mul(row, i64(n)), i64(pf // size))])
                if s is None or n * size % _PART:  # never streamed
                    _prefetch(builder, at, write=True)
                else:
                    with builder.if_then(builder.not_(s)):
                        _prefetch(builder, at, write=True)
            xr = load_row(x, builder.mul(row, i64(K)), K, Kp)
            if thin:  # x's elements broadcast from x itself
                xs = [splat(_load_volatile(builder, builder.gep(x, [builder.add(
                    builder.mul(row, i64(K)), i64(k))]), size), Mp) for k in range(K)]
            elif from_slot:
                builder.store(xr, xslot)
                xs = [splat(_load_volatile(builder, builder.gep(xd, [i64(k)])), Mp)
                      for k in range(K)]
            else:
                xs = [splat(lane(xr, k), Mp) for k in range(K)]
            def chain(ks):  # Σ_k x[n,k]·W[k,m] over ks, in their order
                c = builder.fmul(xs[ks[0]], Wrow[ks[0]])
                for k in ks[1:]:
                    c = madd(xs[k], Wrow[k], c)
                return c
            # h[n,m] = Σ_k x[n,k]·W[k,m]; past K = 8 the even k's and the odd k's apart (`split`)
            h = split(chain, K)
            yb = builder.mul(row, i64(M))
            below = builder.fcmp_ordered("<", h, zero)  # max(h, 0) that keeps NaN
            r, yr = builder.select(below, zero, h), load_row(y, yb, M, Mp)
            z = builder.fsub(r, yr)  # in float32: the exact difference rounded once
            for (lo, hi), acc in zip(fparts, fs):  # z² into f's partial sums
                wide = ir.VectorType(d, hi - lo)
                # f's z: float32's, its square exact in float64 (one FMA)
                z64 = builder.fpext(lanes(z, lo, hi), wide) if thin else z
                builder.store(_madd(builder, fused, z64, z64, builder.load(acc)), acc)
            t = builder.fmul(two, z)
            if wdy:
                store_row(builder.fneg(t), dy, yb, M, sy)
            if wdx or wdw:  # g = 2·z·relu'(h), loopgrad._scalar.relu_backward's cases
                g = relu_grad_at(builder, a0_zero, drop_nan, a0v, h, zero, t)
            # dx one sum across g·W's row at K = 1 but where rowgroups.py's rows (K, M powers
            # of two to 8) keep these rows' order as theirs, and K of them where asked
            one_dx = K == 1 and (M > WIDE or M & (M - 1)) or dx_across and thin
            if wdx and not one_dx or turned:  # g's lanes
                if from_slot:
                    builder.store(g, gslot)
                    gs = [_load_volatile(builder, builder.gep(gd, [i64(m)]), csize)
                          for m in range(M)]
                else:
                    gs = [lane(g, m) for m in range(M)]
                gks = [splat(gm, Kp) for gm in gs]  # each for dx and dWᵀ
            if wdx:  # dx[n,k] = Σ_m g[n,m]·W[k,m]
                def dx_chain(ms):  # Σ_m g[n,m]·W[:,m] over ms, in their order
                    c = builder.fmul(gks[ms[0]], Wcol[ms[0]])
                    for m in ms[1:]:
                        c = madd(gks[m], Wcol[m], c)
                    return c
                # past M = 8 the even m's and the odd m's apart, as h's k's past K = 8
                if one_dx:  # g's lanes past M 0 (x·0 there is NaN where x is infinite)
                    gm = g if Mp == M else builder.select(lanes_below(M, Mp), g, zero)
                    s = _acrosses(builder, [builder.fmul(gm, Wrow[k]) for k in range(K)])
                    if s.type.count != Kp:  # K = 3: the sums' first 3 of 4 lanes
                        s = builder.shuffle_vector(s, s, ir.Constant(ir.VectorType(i32, Kp),
                                                                     list(range(Kp))))
                else:
                    s = split(dx_chain, M)
                store_row(s, dx, builder.mul(row, i64(K)), K, sx)
            if blocked:  # x's and g's rows kept for the block's dW sums
                builder.store(xr, buffered(xbuf, slot, 0, vk), align=csize)
                builder.store(g, buffered(gbuf, slot, 0, vm), align=csize)
            elif turned:  # dWᵀ[m,k] += g[n,m]·x[n,k]
                for m in range(M):
                    builder.store(madd(gks[m], xr, builder.load(dW[m])), dW[m])
            elif wdw:  # dW[k,m] += x[n,k]·g[n,m]
                for k in range(K):
                    builder.store(madd(xs[k], g, builder.load(dW[k])), dW[k])

        if blocked or stepped:  # blocks of blk rows, then their dW sums
            nrows = builder.sub(stop, start)
            nblocks = builder.sdiv(builder.add(nrows, i64(blk - 1)), i64(blk))
            with cgutils.for_range(builder, nblocks) as block:
                r0 = builder.add(start, builder.mul(block.index, i64(blk)))
                left = builder.sub(stop, r0)
                count = builder.select(builder.icmp_signed("<", left, i64(blk)), left,
                                       i64(blk))
                with cgutils.for_range(builder, count) as loop:
                    row_body(builder.add(r0, loop.index), loop.index)
                dw_sums(count) if blocked else flush()
        else:
            with cgutils.for_range(builder, builder.sub(stop, start)) as loop:
                row_body(builder.add(start, loop.index), None)
        for k in range(K if wdw else 0):
            for m in range(M):
                v = (lane(builder.load(dWh[m][k // HW]), k % HW) if across else
                     lane(builder.load(dWh[k][m // HW]), m % HW)) if blocked else \
                    lane(builder.load(dW64[m]), k) if turned else lane(builder.load(dW64[k]), m)
                builder.store(v, builder.gep(dwp, [i64(k * M + m)]))
        sums = [builder.load(acc) for acc in fs]

        def tree(lo, hi):  # f's lanes [lo, hi) added in halves: ((s0 + s1) + (s2 + s3)) at 4
            if hi - lo == 1:
                q = max(i for i, (a, _) in enumerate(fparts) if a <= lo)
                return lane(sums[q], lo - fparts[q][0])
            mid = lo + (hi - lo + 1) // 2
            return builder.fadd(tree(lo, mid), tree(mid, hi))
        total = tree(0, M)
        if not thin:
            return total
        # float32's guard (the module's doc): NaN unless this chunk's f is finite, dx's sums
        # are bounded below float32's overflow (|g| ≤ 2·√f, Cauchy–Schwarz) and dW's are finite
        sums = [v for row in dWh for v in row] if blocked else dW64 if stepped else []
        return guarded(builder, total, W, i64(K * M), [builder.load(acc) for acc in sums])

    return codegen


def _wrap(codegen, loss: bool):
    # an intrinsic of row_vectors' signature (or, where `loss`, its loss's) on codegen
    if loss:
        @intrinsic
        def rows_loss(typingctx, x, W, y, start, stop):
            return types.float64(x, W, y, start, stop), codegen
        return rows_loss

    @intrinsic
    def rows(typingctx, dx, dW_part, dy, x, W, y, a0, start, stop, flags):
        return types.float64(dx, dW_part, dy, x, W, y, a0, start, stop, flags), codegen
    return rows
