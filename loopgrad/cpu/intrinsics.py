"""LLVM intrinsics for the Numba kernels.

pointer(a): a's data as a typed pointer (types.CPointer), for the tiled kernels'
    generated code.  Indexing a pointer p[i] is a plain load or store: no
    negative-index wraparound (the select Numba puts on every signed array
    index, which stops LLVM's vectorizers; hence the np.uint64 indices of the
    row kernels) and no shape to carry.  The array must outlive the pointer:
    take pointers of a function's own arguments, which the caller keeps alive.

zeros16(): a pointer to 16 float64 zeros in the calling function's stack frame
    (forward_block's partial sums of f; np.zeros(16) was a heap allocation a block,
    dev/products_v49.md 50e).  Valid until that function returns.

prefetch(p, i): a hint to the CPU to load p[i]'s cache line soon.  LLVM's
    llvm.prefetch intrinsic (read, keep in all cache levels, data).  A hint
    only: it never faults, so it may point past the end of the data, and it
    changes no result.  The tiled kernels use it where a micro-kernel call
    reads only a few contiguous rows of x and the hardware prefetcher cannot
    get ahead (10⁶×16×16: the forward product's x reads 7.0 → 2.6 ms,
    dev/tiled_v7.md).  prefetch_l2(p, i): the same into L2 only (locality 2, PREFETCHT1
    on x86): x's rows ahead of those reads (dev/products_v48.md 49a), y's rows far ahead
    in the AVX2 entry's fused blocks (machine.Entry.pf_y).

call(address, *args): a float64 from the C function at `address` (an integer: a cfunc's,
    jit.cfunc) called with args, whose Numba types give the C types.  A plain call
    through a pointer, so the function is compiled once, on its own, and every caller
    runs the same code: the row kernels' drivers call their row functions so
    (chunks.py).

select(c, a, b): a if c else b, for float64 a and b, as one LLVM select: no branch for
    Numba to build blocks from.  The generated skinny rows pick h's ReLU and g's
    case so; as conditional expressions, 16 columns of them made 150 blocks, whose
    typing and SSA passes took 1.5 s of a 1×16 row function's 2.9 s compile.  LLVM
    turned those branches into the same selects (the same code after).

microkernel(T, MR, NR, VW): the tiled kernels' micro-kernel for one tile, an
    intrinsic that writes its vector code straight in LLVM IR:
    mk(kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc) sets the MR×NR tile
    C[co + i·ldc + j] = Σ_p A[ao + p·lda + i·ldi] · B[bo + p·ldb + j], each sum a
    chain of multiply-adds in p's order from zero (llvm.fmuladd: one FMA where
    the target has FMA, as the `contract` flag gives, else a product and a sum),
    in MR·NR/VW vectors of VW lanes (the accumulators: registers), with NR/VW
    vector loads of B and MR broadcasts of A a step.  The arithmetic of the
    straight-line scalar source it replaces, which LLVM's SLP vectorizer turned
    into the same vectors: bitwise the same results on every table entry, as
    fast, and 2.5–3 s less compile for each tile (dev/cold_v12.md).
    microkernel(..., stream=True) gives mks, with one more argument, a boolean: store the
    tile past the caches (non-temporal, no read of the lines first), which it does where
    the tile's rows are whole cache lines and start on one, in 16-byte parts where they
    start 16 bytes past one and lie end to end (ldc = NR), else as mk.
    microkernel(..., live=n) sums only the first n vectors of each tile row and stores
    the others as zeros: a last panel of W that is padding past them.  tail_kernel(T,
    MR, NR, tails) gives mkt(ncol, ...), such a kernel picked by the panel's live
    columns from a few (tiled.tails: fewer vectors, or narrower ones).

copier(T, n): cp(dst, do, src, so) copies n elements as one vector load and store (with
masked=True, cpn(..., count) stores only the first count of them), line_streamer(T):
cpl(dst, do, src, so) one cache line with a non-temporal store, and
transposer(T, R, VW): tp(dst, do, ldo, src, so, lds) an R×VW block transposed through
    registers: the tiled kernels' packs (a row of a panel, W's transpose for dx), which
    as loops LLVM left one element at a time (dev/products_v18.md 19f).

squares_by_lane(a, n16, lanes): lanes[j] = Σ_i float64(a[16·i + j])² over 16·i < n16,
    for j < 16 (a, lanes: C-contiguous 1-D arrays, n16 a multiple of 16), each sum in
    i's order.  One <16 x double> accumulator in LLVM IR: a vector load of 16 elements a
    step, fpext, fmul, fadd, no fast-math flag, so each lane's operations are those of
    `s[j] += v * v` in a scalar loop, bit for bit.  Numba's scalar loop over an array of
    16 sums ran unvectorized, 0.6 ms for a 1024² float32 W (guards.sum_squares, serial
    after the tiled kernels' passes); this runs at memory speed.

epilogue(T)(g, gb, ldg, pstr, y, yb, ldy, dy, db, rows, m, a0, want_grads, f, stream): the
    tiled kernels' epilogue over `rows` rows of m elements, in LLVM IR: for row n < rows
    and j < m, with h = g[gb + n·ldg + j] (float64), z = (0 if h < 0 else h) −
    y[yb + n·ldy + j]; z² into f's 16 partial sums, lane j mod 16 of f[0:16], in (n, j)'s
    order; with want_grads, dy[db + n·ldy + j] = −2z and g's element = relu_backward(h, z,
    a0) (loopgrad._scalar), stored in T.  Sixteen elements a step as <16 x double>
    vectors, each operation the one the scalar source performs (fmul, fadd, fsub, selects;
    no fast-math flag): the same bits as that source, which Numba's vectorizers had left at
    0.6 ns an element (its 16 sums in 2-lane vectors, dev/products_v15.md).  A row's last
    m mod 16 elements are one step more with the other lanes masked (llvm.masked.load and
    .store: nothing past the row read or written, 0.0 added to their sums, which leaves
    the sums' bits): rows shorter than 16 had run one element at a time, and the fused
    kernel's 10⁶×8×8 took 2.4× 10⁶×16×16's time (dev/products_v21.md 22b).  stream: dy's
    vector stores go past the caches where its row starts on a cache line, or in 16-byte
    parts where it starts 16 bytes past one and the rows lie end to end or the run is
    4 KiB or more (g's stay: the kernels read it; a masked step's stay too).
    For float32 with a0 0, ½ or 1, dy and g are computed in float32 from h − y rounded once,
    which gives the same bits (see element32) in about half the vector operations: the
    epilogue's grads 5.3 → 3.3 ms a thread at 10⁶×16×16, 10.6 → 4.5 as AVX2
    (dev/products_v16.md 17h).  For a0 0, 1 and ½ (either dtype) g's selects are folded to
    one or two compares (relu_grad_fixed; the same values): a step with dy and g 15–25 %
    shorter (dev/products_v23.md 24d).
    epilogue(T, piece)(...): the same with g in pieces of `piece` elements (a power of
    two), `pstr` apart: h = g[gb + n·ldg + (j // piece)·pstr + j % piece], and g's stores
    there (the three-pass kernel's g by column panels, nests.py); epilogue(T) ignores
    pstr.  A vector step's 16 elements must lie together: piece a multiple of 16, or
    pstr = piece (g whole).
"""

import functools

from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# opaque pointers from LLVM 15 on: the intrinsic's name lost its pointee type
_NAME = "llvm.prefetch.p0" if binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@intrinsic
def pointer(typingctx, a):
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, sig, args):
        return context.make_array(sig.args[0])(context, builder, args[0]).data
    return types.CPointer(a.dtype)(a), codegen


@intrinsic
def zeros16(typingctx):
    """A pointer to 16 float64 zeros in the caller's stack frame (forward_block's partial
    sums of f: np.zeros(16) there was a heap allocation a block)."""
    def codegen(context, builder, sig, args):
        at = ir.ArrayType(ir.DoubleType(), 16)
        buf = cgutils.alloca_once(builder, at)
        builder.store(ir.Constant(at, [0.0] * 16), buf)
        return builder.bitcast(buf, ir.DoubleType().as_pointer())
    return types.CPointer(types.float64)(), codegen


def _prefetch(builder, ptr, locality=3, write=False):
    # llvm.prefetch of the line at ptr (data; a read, or a write: PREFETCHW) for the cache
    # levels `locality` names
    i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), _NAME)
    builder.call(fn, [builder.bitcast(ptr, i8p), i32(int(write)), i32(locality), i32(1)])


def _prefetcher(locality):
    @intrinsic
    def prefetch(typingctx, p, i):
        if not isinstance(p, types.CPointer):
            return None

        def codegen(context, builder, sig, args):
            _prefetch(builder, builder.gep(args[0], [args[1]]), locality)
            return context.get_dummy_value()
        return types.void(p, i), codegen
    return prefetch


prefetch = _prefetcher(3)
prefetch_l2 = _prefetcher(2)


@functools.lru_cache(maxsize=None)
def copier(T: str, n: int, masked: bool = False, parts: bool = False):
    """cp(dst, do, src, so): dst[do:do+n] = src[so:so+n] for pointers to dtype name T, as
    one vector load and one vector store of n elements (LLVM splits them into the
    target's registers).  The packs' row copies: as loops, or as straight-line code
    whose stores might alias its later loads, LLVM left them one element at a time.
    masked=True: cp(dst, do, src, so, count) stores only the first count ≤ n of them
    (llvm.masked.store: nothing past them written; src's n elements are read): the tile
    buffer's rows cut to a tile's columns (nests.tile_out, 8×24 of dx at K = 24: as a
    loop, a fifth of dx's time, dev/products_v23.md 24c); parts=True: those count as plain
    stores of their power-of-two parts (`_store_first`: AVX2 entries)."""
    nbt = {"float32": types.float32, "float64": types.float64}[T]
    P, I = types.CPointer(nbt), types.int64

    def codegen(context, builder, sig, args):
        dst, do, src, so = args[:4]
        vt = ir.VectorType(context.get_value_type(nbt), n)
        size = nbt.bitwidth // 8
        v = builder.load(builder.bitcast(builder.gep(src, [so]), vt.as_pointer()), align=size)
        to = builder.bitcast(builder.gep(dst, [do]), vt.as_pointer())
        if not masked:
            builder.store(v, to, align=size)
            return context.get_dummy_value()
        i64 = ir.IntType(64)
        if parts:
            _store_first(builder, v, to, args[4], size)
            return context.get_dummy_value()
        lanes = ir.Constant(ir.VectorType(i64, n), list(range(n)))
        _masked(builder, "store", vt, to, size,
                builder.icmp_signed("<", lanes, _splat(builder, args[4], n)), v)
        return context.get_dummy_value()

    if masked:
        @intrinsic
        def cpn(typingctx, dst, do, src, so, count):
            return types.void(P, I, P, I, I), codegen
        return cpn

    @intrinsic
    def cp(typingctx, dst, do, src, so):
        return types.void(P, I, P, I), codegen
    return cp


@functools.lru_cache(maxsize=None)
def line_streamer(T: str):
    """cpl(dst, do, src, so): one cache line (64 bytes) of dtype name T from src[so:] to
    dst[do:], one vector load (any alignment) and one non-temporal store, which needs
    dst + do on a line: the fused kernel's dx, staged a block at a time in a cached
    buffer, sent out line by line under the next block's h products (nests.put_share)."""
    nbt = {"float32": types.float32, "float64": types.float64}[T]
    P, I = types.CPointer(nbt), types.int64
    n = _LINE * 8 // nbt.bitwidth

    def codegen(context, builder, sig, args):
        dst, do, src, so = args
        vt = ir.VectorType(context.get_value_type(nbt), n)
        v = builder.load(builder.bitcast(builder.gep(src, [so]), vt.as_pointer()),
                         align=nbt.bitwidth // 8)
        _store_streamed(builder, v, builder.bitcast(builder.gep(dst, [do]), vt.as_pointer()))
        return context.get_dummy_value()

    @intrinsic
    def cpl(typingctx, dst, do, src, so):
        return types.void(P, I, P, I), codegen
    return cpl


@functools.lru_cache(maxsize=None)
def transposer(T: str, R: int, VW: int):
    """tp(dst, do, ldo, src, so, lds): dst[do + p·ldo + i] = src[so + i·lds + p] for i < R,
    p < VW (pointers to dtype name T): an R×VW block transposed, as R vector loads, one
    shuffle of their concatenation and VW vector stores of R elements.  pack_wt's
    transpose of W: as a loop over the 32 rows of a panel, one element at a time."""
    nbt = {"float32": types.float32, "float64": types.float64}[T]
    P, I = types.CPointer(nbt), types.int64

    def codegen(context, builder, sig, args):
        dst, do, ldo, src, so, lds = args
        et, i32 = context.get_value_type(nbt), ir.IntType(32)
        size = nbt.bitwidth // 8
        vt, ot = ir.VectorType(et, VW), ir.VectorType(et, R)
        rows = [builder.load(builder.bitcast(builder.gep(src, [builder.add(so, builder.mul(
            lds, ir.IntType(64)(i)))]), vt.as_pointer()), align=size) for i in range(R)]
        while len(rows) > 1:  # [row 0 | row 1 | ...], two at a time
            if len(rows) % 2:
                rows.append(ir.Constant(rows[0].type, ir.Undefined))
            n = rows[0].type.count
            rows = [builder.shuffle_vector(rows[a], rows[a + 1], ir.Constant(
                ir.VectorType(i32, 2 * n), list(range(2 * n)))) for a in range(0, len(rows), 2)]
        whole = rows[0]
        for p in range(VW):  # element (i, p) of the block lies at i·VW + p
            out = builder.shuffle_vector(whole, ir.Constant(whole.type, ir.Undefined), ir.Constant(
                ir.VectorType(i32, R), [i * VW + p for i in range(R)]))
            at = builder.add(do, builder.mul(ldo, ir.IntType(64)(p)))
            builder.store(out, builder.bitcast(builder.gep(dst, [at]), ot.as_pointer()),
                          align=size)
        return context.get_dummy_value()

    @intrinsic
    def tp(typingctx, dst, do, ldo, src, so, lds):
        return types.void(P, I, I, P, I, I), codegen
    return tp


@intrinsic
def call(typingctx, address, *args):
    if not isinstance(address, types.Integer):
        return None
    sig = types.float64(address, types.StarArgTuple.from_types(args))

    def codegen(context, builder, sig, llargs):
        argtypes = sig.args[1].types  # the arguments arrive as one tuple
        fnty = ir.FunctionType(ir.DoubleType(), [context.get_value_type(t) for t in argtypes])
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        return builder.call(fn, [builder.extract_value(llargs[1], i)
                                 for i in range(len(argtypes))])
    return sig, codegen


@intrinsic
def select(typingctx, c, a, b):
    if not isinstance(c, types.Boolean):
        return None

    def codegen(context, builder, sig, args):
        ca, cb = (context.cast(builder, v, t, types.float64)
                  for v, t in zip(args[1:], sig.args[1:]))
        return builder.select(args[0], ca, cb)
    return types.float64(c, a, b), codegen


@intrinsic
def squares_by_lane(typingctx, a, n16, lanes):
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
            and isinstance(lanes, types.Array) and lanes.dtype == types.float64
            and lanes.layout == "C" and isinstance(n16, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ta = sig.args[0]
        src = context.make_array(ta)(context, builder, args[0]).data
        out = context.make_array(sig.args[2])(context, builder, args[2]).data
        n16 = context.cast(builder, args[1], sig.args[1], types.int64)
        et, f64 = context.get_value_type(ta.dtype), ir.DoubleType()
        vt, wt = ir.VectorType(et, 16), ir.VectorType(f64, 16)
        acc = cgutils.alloca_once_value(builder, ir.Constant(wt, None))
        with cgutils.for_range(builder, builder.sdiv(n16, n16.type(16))) as loop:
            at = builder.gep(src, [builder.mul(loop.index, n16.type(16))])
            v = builder.load(builder.bitcast(at, vt.as_pointer()), align=ta.dtype.bitwidth // 8)
            w = v if et == f64 else builder.fpext(v, wt)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(w, w)), acc)
        total = builder.load(acc)
        for j in range(16):
            builder.store(builder.extract_element(total, ir.IntType(32)(j)),
                          builder.gep(out, [ir.IntType(64)(j)]))
        return context.get_dummy_value()
    return types.void(a, n16, lanes), codegen


def relu_grad(builder, h, zero, t, tie, nan):
    """g of loopgrad._scalar.relu_backward as selects (scalars or vectors alike): t where
    h > 0, tie where h == 0, 0 where h < 0, nan where h is NaN."""
    return builder.select(builder.fcmp_ordered(">", h, zero), t, builder.select(
        builder.fcmp_ordered("==", h, zero), tie,
        builder.select(builder.fcmp_ordered("<", h, zero), zero, nan)))


def relu_grad_fixed(builder, case, h, zero, t, half):
    """relu_grad where relu'(0) is `case`, 0, 1 or ½, its selects folded (half(): g's value
    at a tie for ½).  0 (the API's default): tie 0 and NaN's value t, so t where h > 0 or h
    is NaN (one unordered compare), else +0; 1: tie t and NaN's value 0, so t where h ≥ 0
    (ordered), else +0; ½: t where h > 0 or NaN, half() where h == 0, else +0.  One or two
    compares and selects where relu_grad has three of each (dev/products_v23.md 24d)."""
    if case == 1:
        return builder.select(builder.fcmp_ordered(">=", h, zero), t, zero)
    rest = zero if case == 0 else \
        builder.select(builder.fcmp_ordered("==", h, zero), half(), zero)
    return builder.select(builder.fcmp_unordered(">", h, zero), t, rest)


def relu_grad_at(builder, a0_zero, drop_nan, a0v, h, zero, t):
    """relu_grad for a relu'(0) known only at run time (a0v: it, splat as t; a0_zero,
    drop_nan: i1s, whether it is 0 or 1): where it is 0, the API's default,
    relu_grad_fixed's one compare, else relu_grad's three.  A branch between the two each
    time it runs, which always goes the same way: the skinny rows' g, whose loops over the
    rows would double their code if versioned whole (as AVX2 in cache 8×8 37–38 → 36, 6×6
    26–28 → 25 cycles a row, dev/products_v51.md 52a)."""
    def general():
        tie = builder.select(a0_zero, zero, builder.fmul(a0v, t))
        return relu_grad(builder, h, zero, t, tie, builder.select(drop_nan, zero, t))
    return by_cases(builder, [(a0_zero, lambda: relu_grad_fixed(builder, 0, h, zero, t, None)),
                              (None, general)])


def by_cases(builder, cases):
    """The value (or values) of the first of `cases`, (condition, fn), whose i1 condition
    holds (None: always; the last), each fn's code in a block of its own, joined by phis:
    the branches between them go the same way wherever the conditions are the same."""
    cond, fn = cases[0]
    if cond is None:
        return fn()
    with builder.if_else(cond) as (yes, no):
        with yes:
            a = fn()
            ba = builder.basic_block
        with no:
            b = by_cases(builder, cases[1:])
            bb = builder.basic_block
    single = not isinstance(a, (tuple, list))
    a, b = ([a], [b]) if single else (a, b)
    out = [builder.phi(v.type) for v in a]
    for phi, va, vb in zip(out, a, b):
        phi.add_incoming(va, ba)
        phi.add_incoming(vb, bb)
    return out[0] if single else out


def _splat(builder, value, lanes):
    # a vector of `lanes` copies of a scalar
    vt = ir.VectorType(value.type, lanes)
    one = builder.insert_element(ir.Constant(vt, ir.Undefined), value, ir.IntType(32)(0))
    return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), lanes), None))


def _across(builder, v):
    # v's lanes added in halves (the first half plus the second, until one): at 8 lanes
    # ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), log2(lanes) shuffles and adds
    return builder.extract_element(_acrosses(builder, [v]), ir.IntType(32)(0))


def _acrosses(builder, vs):
    # each of the vectors vs added across in _across's order, all at once: lane i of the
    # result (len(vs) rounded up to a power of two lanes) is vs[i]'s sum; a vector of lanes
    # short of a power of two (3) as if zeros filled it
    i32, n = ir.IntType(32), vs[0].type.count
    if n & (n - 1):  # lanes not a power of two (3): zeros past them, which add nothing
        p, zeros = 1 << n.bit_length(), ir.Constant(vs[0].type, [0.0] * n)
        vs = [builder.shuffle_vector(v, zeros, ir.Constant(ir.VectorType(i32, p), list(
            range(n)) + [n] * (p - n))) for v in vs]
        n = p
    P = 1 << (len(vs) - 1).bit_length()
    vs = list(vs) + [ir.Constant(vs[0].type, ir.Undefined)] * (P - len(vs))
    while len(vs) > 1:  # the vectors side by side, two at a time
        vs = [builder.shuffle_vector(vs[i], vs[i + 1], ir.Constant(
            ir.VectorType(i32, 2 * vs[i].type.count), list(range(2 * vs[i].type.count))))
            for i in range(0, len(vs), 2)]
    v = vs[0]
    while n > 1:
        n //= 2
        lo, hi = (builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, P * n), [
            i * 2 * n + o + j for i in range(P) for j in range(n)])) for o in (0, n))
        v = builder.fadd(lo, hi)
    return v


def _madd(builder, fused, a, b, c):
    # c + a·b for vectors of float64 (or float32): one FMA (llvm.fma) where fused (the row kernels'
    # float32 inputs: a product of float32s is exact in float64), else a product and a sum
    # (float64 inputs: an FMA would hide a product's overflow); rowvec.py's module doc
    if not fused:
        return builder.fadd(c, builder.fmul(a, b))
    t = a.type
    bits = 64 if isinstance(t.element, ir.DoubleType) else 32
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t] * 3),
                                         f"llvm.fma.v{t.count}f{bits}")
    return builder.call(fma, [a, b, c])


def _vector_at(builder, ptr, i, vt):
    # a pointer to the vector of type vt at ptr[i]
    return builder.bitcast(builder.gep(ptr, [i]), vt.as_pointer())


def _load_vector(builder, ptr, i, vt, mask=None):
    # the vector of type vt at ptr[i], aligned to its elements; mask: None (all lanes) or
    # the lanes to read (the others 0, nothing past them read)
    align = 8 if isinstance(vt.element, ir.DoubleType) else 4
    if mask is None:
        return builder.load(_vector_at(builder, ptr, i, vt), align=align)
    return _masked(builder, "load", vt, _vector_at(builder, ptr, i, vt), align, mask,
                   ir.Constant(vt, [0.0] * vt.count))


def _store_vector(builder, v, ptr, i, mask=None, count=None):
    # v to ptr[i] as _load_vector reads it (mask: None, or the lanes to write, the first
    # `count` of them where count is given: then as plain stores, `_store_first`)
    vt = v.type
    align = 8 if isinstance(vt.element, ir.DoubleType) else 4
    if mask is None:
        builder.store(v, _vector_at(builder, ptr, i, vt), align=align)
    elif count is not None:
        _store_first(builder, v, _vector_at(builder, ptr, i, vt), count, align)
    else:
        _masked(builder, "store", vt, _vector_at(builder, ptr, i, vt), align, mask, v)


def _masked(builder, op, vt, ptr, align, mask, value):
    # llvm.masked.load (value: the masked lanes' result) or llvm.masked.store (value: what
    # to store) of vector type vt at ptr: only mask's lanes are read or written
    bits = 64 if isinstance(vt.element, ir.DoubleType) else 32
    name = f"llvm.masked.{op}.v{vt.count}f{bits}." + \
        ("p0" if binding.llvm_version_info[0] >= 15 else f"p0v{vt.count}f{bits}")
    i32, mt = ir.IntType(32), mask.type
    if op == "load":
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vt, [vt.as_pointer(), i32, mt, vt]), name)
        return builder.call(fn, [ptr, i32(align), mask, value])
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vt, vt.as_pointer(), i32, mt]), name)
    builder.call(fn, [value, ptr, i32(align), mask])


def _store_first(builder, v, ptr, count, align):
    # v's first `count` lanes (an i64 from 0 to all of them; v's lanes a power of two) to
    # ptr as plain stores, where a masked store would be VMASKMOVPS: AVX2's, which AMD's
    # Zen runs as microcode, about 10 cycles a store on Zen 4 (dev/products_v42.md 43a,
    # 43b).  All of v at once where count is all of them; else v through a stack slot,
    # each power-of-two part b whose bit count has copied from offset count & −2b (a
    # branch each, which goes the same way every row a call site stores)
    vt, i64 = v.type, ir.IntType(64)
    n = vt.count
    whole = builder.icmp_unsigned("==", count, i64(n))
    with builder.if_else(whole) as (all_lanes, some):
        with all_lanes:
            builder.store(v, ptr, align=align)
        with some:
            slot = cgutils.alloca_once(builder, vt)
            builder.store(v, slot)
            src, dst = (builder.bitcast(p, vt.element.as_pointer()) for p in (slot, ptr))
            b = n // 2
            while b:
                with builder.if_then(builder.icmp_unsigned("!=", builder.and_(count, i64(b)),
                                                           i64(0))):
                    o, t = builder.and_(count, i64(-2 * b)), ir.VectorType(vt.element, b)
                    part = builder.load(builder.bitcast(builder.gep(src, [o]), t.as_pointer()),
                                        align=align)
                    builder.store(part, builder.bitcast(builder.gep(dst, [o]), t.as_pointer()),
                                  align=align)
                b //= 2


_LINE = 64  # bytes: a streamed store writes whole lines, from an address aligned to one
_PART = 16  # bytes: where a row is not on a line, its vector goes out as non-temporal stores
            # of this many bytes (MOVNTPS xmm), which need that alignment only


def _streams(builder, stream, ptr, *strides_bytes, align=_LINE):
    # i1: stream, and ptr (and every stride) aligned to `align` bytes (a cache line)
    i64 = ir.IntType(64)
    ok = builder.icmp_unsigned("==", builder.and_(builder.ptrtoint(ptr, i64), i64(align - 1)),
                               i64(0))
    for s in strides_bytes:
        ok = builder.and_(ok, builder.icmp_unsigned("==", builder.and_(s, i64(align - 1)),
                                                    i64(0)))
    return builder.and_(stream, ok)


def _store_streamed(builder, value, ptr):
    # a non-temporal store (MOVNT on x86): past the caches, no read of the line first
    st = builder.store(value, ptr, align=_LINE)
    st.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))


def _store_streamed_parts(builder, value, ptr):
    # value to ptr (aligned to _PART bytes) as non-temporal stores of _PART bytes each: a
    # row that starts 16 bytes past a line (np.empty's large arrays) still goes past the
    # caches, its lines filled in order in the write-combining buffers
    vt = value.type
    n = _PART // (4 if isinstance(vt.element, ir.FloatType) else 8)   # lanes a store
    part = ir.VectorType(vt.element, n)
    md = builder.module.add_metadata([ir.IntType(32)(1)])
    base = builder.bitcast(ptr, vt.element.as_pointer())
    for c in range(vt.count // n):
        sub = builder.shuffle_vector(value, ir.Constant(vt, ir.Undefined),
                                     ir.Constant(ir.VectorType(ir.IntType(32), n),
                                                 list(range(c * n, c * n + n))))
        q = builder.bitcast(builder.gep(base, [ir.IntType(64)(c * n)]), part.as_pointer())
        st = builder.store(sub, q, align=_PART)
        st.set_metadata("nontemporal", md)


def _stream_choice(builder, on_line, in_parts, emit):
    # emit(how): how = _store_streamed where on_line, _store_streamed_parts where in_parts,
    # else None (ordinary stores)
    with builder.if_else(on_line) as (line, other):
        with line:
            emit(_store_streamed)
        with other:
            with builder.if_else(in_parts) as (parts, cached):
                with parts:
                    emit(_store_streamed_parts)
                with cached:
                    emit(None)


@functools.lru_cache(maxsize=None)
def epilogue(T: str, piece: int = 0, parts: bool = False):
    """The epilogue intrinsic for dtype name T, g whole or in pieces (see the module's doc);
    parts=True: a row's last partial step stored as plain stores of its power-of-two
    parts (`_store_first`: AVX2 entries), not masked."""
    nbt = {"float32": types.float32, "float64": types.float64}[T]
    P, PD, I = types.CPointer(nbt), types.CPointer(types.float64), types.int64
    lanes = 16

    def codegen(context, builder, sig, args):
        g, gb, ldg, pstr, y, yb, ldy, dy, db, rows, m, a0, want, f, stream = args
        et, d, i64 = context.get_value_type(nbt), ir.DoubleType(), ir.IntType(64)
        vt, dt = ir.VectorType(et, lanes), ir.VectorType(d, lanes)
        a0v = _splat(builder, a0, lanes)

        def const(v):
            return ir.Constant(dt, [v] * lanes)

        def element(h, yv, case=None):
            # f's z (its square goes into f), −2z and g of loopgrad._scalar.relu_backward,
            # operation for operation
            wide = (lambda v: v) if et == d else (lambda v: builder.fpext(v, dt))
            hd, zero = wide(h), const(0.0)
            z = builder.fsub(builder.select(builder.fcmp_ordered("<", hd, zero), zero, hd),
                             wide(yv))
            t = builder.fmul(const(2.0), z)
            if case is not None:
                gv = relu_grad_fixed(builder, case, hd, zero, t,
                                     lambda: builder.fmul(const(0.5), t))
            else:
                tie = builder.select(builder.fcmp_ordered("==", a0, d(0.0)), zero,
                                     builder.fmul(a0v, t))
                nan = builder.select(builder.fcmp_ordered("==", a0, d(1.0)), zero, t)
                gv = relu_grad(builder, hd, zero, t, tie, nan)
            narrow = (lambda v: v) if et == d else (lambda v: builder.fptrunc(v, vt))
            # f's z: float32 inputs' z rounded to float32 as element32's (so that f does
            # not depend on relu'(0))
            return wide(narrow(z)), narrow(builder.fmul(const(-2.0), z)), narrow(gv)

        def element32(h, yv, case=None):
            # float32 inputs, relu'(0) 0, ½ or 1: f's z, dy and g in float32, with
            # element's bits.  z = max(h, 0) − y rounds once to float32 as it does
            # through float64 (exact there unless the exponents differ by more than 29,
            # and then far from a float32 midpoint); ×2 and ×−2 commute with
            # rounding (a difference of float32s in the subnormal range is exact); a tie
            # gives 0 (a0 0), z (a0 ½: ½·2z, which 2z past the range would not give) or
            # 2z (a0 1).  About half the epilogue's vector operations.
            zero32 = ir.Constant(vt, [0.0] * lanes)
            below = builder.fcmp_ordered("<", h, zero32)
            hp = builder.select(below, zero32, h)
            z32 = builder.fsub(hp, yv)
            t = builder.fmul(ir.Constant(vt, [2.0] * lanes), z32)
            if case is not None:  # a tie's g at ½: z, as below
                gv = relu_grad_fixed(builder, case, h, zero32, t, lambda: z32)
            else:
                tie = builder.select(builder.fcmp_ordered("==", a0, d(0.0)), zero32,
                                     builder.select(builder.fcmp_ordered("==", a0, d(0.5)),
                                                    z32, t))
                nan = builder.select(builder.fcmp_ordered("==", a0, d(1.0)), zero32, t)
                gv = relu_grad(builder, h, zero32, t, tie, nan)
            return builder.fpext(z32, dt), builder.fneg(t), gv

        def at(ptr, base, j):
            # a vector of 16 elements from ptr[base + j]
            return builder.bitcast(builder.gep(ptr, [builder.add(base, j)]), vt.as_pointer())

        def at_g(gr, j):
            # g's element j of a row from gr: gr + j whole, gr + (j // piece)·pstr + j % piece
            # in pieces
            if piece:
                j = builder.add(builder.mul(builder.lshr(j, i64(piece.bit_length() - 1)), pstr),
                                builder.and_(j, i64(piece - 1)))
            return at(g, gr, j)

        size = nbt.bitwidth // 8
        fv = builder.bitcast(f, dt.as_pointer())
        acc = cgutils.alloca_once_value(builder, builder.load(fv, align=8))
        m16 = builder.sub(m, builder.srem(m, i64(lanes)))
        # the tail's lanes: j − m16 < m − m16 of a last, masked, step
        tail = builder.icmp_unsigned("<", ir.Constant(ir.VectorType(i64, lanes),
                                                      list(range(lanes))),
                                     _splat(builder, builder.sub(m, m16), lanes))
        zeros = ir.Constant(vt, [0.0] * lanes)
        # relu'(0) 0, 1 or ½, each with g's selects folded (relu_grad_fixed), float32's with dy
        # and g in float32 (element32); another relu'(0) through float64 (element).  The
        # cases in turn, each a step's own code (the branch between them always goes the
        # same way)
        fn = element32 if et != d else element
        cases = [(builder.fcmp_ordered("==", a0, d(c)),
                  (lambda h, yv, c=c: fn(h, yv, c))) for c in (0.0, 1.0, 0.5)] + \
            [(None, element)]

        def step(gr, yr, dr, j, mask, streamed):
            # 16 elements from j of a row (g's from gr, y's from yr, dy's from dr); mask: the
            # lanes of a last partial step (the others neither read nor written, and their
            # z² not added), or None; streamed: None (dy cached), or the i1 pair (on a
            # line: whole vectors past the caches, else 16 bytes past one: in parts)
            def load(ptr):
                if mask is None:
                    return builder.load(ptr, align=size)
                return _masked(builder, "load", vt, ptr, size, mask, zeros)

            def store(value, ptr):
                if mask is None:
                    builder.store(value, ptr, align=size)
                elif parts:
                    _store_first(builder, value, ptr, builder.sub(m, m16), size)
                else:
                    _masked(builder, "store", vt, ptr, size, mask, value)
            hv, yv = load(at_g(gr, j)), load(at(y, yr, j))
            zf, dyv, gv = by_cases(builder, [(c, lambda fn=fn: fn(hv, yv)) for c, fn in cases])
            if mask is not None:  # + 0.0 where masked: the sum's bits (never −0) unchanged
                zf = builder.select(mask, zf, const(0.0))
            # z² into f's sums: a float32 z's square is exact in float64, so one FMA gives
            # the product-then-sum's bits with half the operations (float64 inputs: the
            # two roundings)
            builder.store(_madd(builder, et != d, zf, zf, builder.load(acc)), acc)
            def put_dy(how):
                if how is None:
                    store(dyv, at(dy, dr, j))
                else:
                    how(builder, dyv, at(dy, dr, j))
            with builder.if_then(want):
                if streamed is None:
                    put_dy(None)
                else:
                    _stream_choice(builder, *streamed, put_dy)
                store(gv, at_g(gr, j))

        # dy in 16-byte parts (a row 16 bytes past a line) only where the lines it writes are
        # whole but for a few: rows end to end (ldy = m), or a run of 4 KiB and more (a flat
        # block); not a part of a row, whose two end lines other items write (see the
        # micro-kernel's `parts`).  And only rows with no masked tail: the tail's ordinary
        # store shares a line with the next row's first part, and a line written both past
        # the caches and through them costs a trip to memory each (10⁵×24×40, whose rows of
        # 160 bytes are all 16-byte aligned: 5.3 → 22 ms, stop 32)
        whole_lines = builder.and_(
            builder.icmp_signed("==", m16, m),
            builder.or_(builder.icmp_signed("==", ldy, m),
                        builder.icmp_signed(">=", m, i64(4096 // size))))
        with cgutils.for_range(builder, rows) as row:
            gr = builder.add(gb, builder.mul(row.index, ldg))
            yr = builder.add(yb, builder.mul(row.index, ldy))
            dr = builder.add(db, builder.mul(row.index, ldy))
            # dy streamed past the caches where asked and its row starts on a line (a step's
            # 16 elements are whole lines); g, the kernels' scratch, stays in cache
            streamed = _streams(builder, stream, at(dy, dr, i64(0)))
            streamed_parts = builder.and_(
                _streams(builder, stream, at(dy, dr, i64(0)), align=_PART), whole_lines)
            with cgutils.for_range(builder, builder.sdiv(m16, i64(lanes))) as loop:
                step(gr, yr, dr, builder.mul(loop.index, i64(lanes)), None,
                     (streamed, streamed_parts))
            with builder.if_then(builder.icmp_signed("<", m16, m)):
                step(gr, yr, dr, m16, tail, None)
        builder.store(builder.load(acc), fv, align=8)
        return context.get_dummy_value()

    assert piece & (piece - 1) == 0, "piece: a power of two"

    @intrinsic
    def epi(typingctx, g, gb, ldg, pstr, y, yb, ldy, dy, db, rows, m, a0, want_grads, f, stream):
        return types.void(P, I, I, I, P, I, I, P, I, I, I, types.float64, types.boolean, PD,
                          types.boolean), codegen
    return epi


def _pair_b(builder, B, at, vt, size, paired=True):
    # a step's B for a tile's VW/2 columns past its whole vectors, VW the lanes of vt:
    # paired, [B[at:at+VW/2] | B[at:at+VW/2]] for its pair vectors (_pair_fma: one broadcast
    # load, VBROADCASTF32X8); else [B[at:at+VW/2] | zeros] for one vector a row (a load of
    # half a vector, the upper lanes zero)
    VW, i32 = vt.count, ir.IntType(32)
    ht = ir.VectorType(vt.element, VW // 2)
    bh = builder.load(builder.bitcast(builder.gep(B, [at]), ht.as_pointer()), align=size)
    other = bh if paired else ir.Constant(ht, None)
    lanes = list(range(VW // 2)) * 2 if paired else list(range(VW))
    return builder.shuffle_vector(bh, other, ir.Constant(ir.VectorType(i32, VW), lanes))


def _pair_fma(builder, fma, bh, a0, a1, acc):
    # one step of a pair vector: acc += [a0 × VW/2 | a1 × VW/2] · bh (_pair_b): two rows'
    # VW/2 columns in one vector, each element the same chain of FMAs as in a vector of
    # its own (dev/products_v53.md 54a).  a0, a1: the rows' a, broadcast (vectors of VW
    # lanes, which the tile's whole vectors use too: their halves one two-source shuffle,
    # VPERMT2PS), or scalars that lie side by side in A (a tile of pair vectors alone: one
    # vector of the two, one load, spread by one shuffle)
    vt, i32 = bh.type, ir.IntType(32)
    VW, H = vt.count, vt.count // 2
    if isinstance(a0.type, ir.VectorType):
        a = builder.shuffle_vector(a0, a1, ir.Constant(ir.VectorType(i32, VW), list(
            range(H)) + list(range(VW, VW + H))))
    else:
        two = ir.Constant(ir.VectorType(vt.element, 2), ir.Undefined)
        two = builder.insert_element(builder.insert_element(two, a0, i32(0)), a1, i32(1))
        a = builder.shuffle_vector(two, two, ir.Constant(ir.VectorType(i32, VW),
                                                         [0] * H + [1] * H))
    builder.store(builder.call(fma, [a, bh, builder.load(acc)]), acc)


def _pair_row(builder, pairs, i):
    # row i's VW/2 columns of its pair vector (_pair_fma) in a vector of VW lanes, zeros
    # past them
    v = builder.load(pairs[i // 2])
    VW, i32 = v.type.count, ir.IntType(32)
    H = VW // 2
    return builder.shuffle_vector(v, ir.Constant(v.type, None), ir.Constant(
        ir.VectorType(i32, VW), [i % 2 * H + j for j in range(H)] + [VW] * H))


def _microkernel_ir(T: str, MR: int, NR: int, VW: int, stream: bool, live: int,
                    cut: bool = False, in_parts: bool = False, pair: bool = False):
    # microkernel's code generator: codegen(context, builder, sig, args) writes the tile's
    # loop and stores for args (kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc[, streamed]);
    # cut (with live): args end with ncol, and only each row's first ncol columns are
    # stored, by masked stores of the live vectors (the others not stored), or where
    # `in_parts`, plain stores of their power-of-two parts (_store_first: AVX2 entries);
    # pair: after the `live` whole vectors (0 or more) the next VW/2 columns, two rows a
    # vector (_pair_fma)
    if NR % VW:
        raise ValueError(f"VW must divide NR, got NR = {NR}, VW = {VW}")
    nbt = {"float32": types.float32, "float64": types.float64}[T]
    NV, size = NR // VW, 4 if T == "float32" else 8
    if not 0 <= live < NV or (live or pair) and stream or pair and (MR % 2 or VW % 2):
        raise ValueError(f"live must be 0 or below NR/VW = {NV}, and not streamed, and a pair "
                         f"needs MR and VW even, got live {live}, pair {pair}, MR {MR}, VW {VW}")
    NL = live if live or pair else NV  # the whole vectors summed

    def codegen(context, builder, sig, args):
        kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc = args[:11]
        vt = ir.VectorType(context.get_value_type(nbt), VW)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fmuladd.v{VW}f{8 * size}")
        undef, lane0 = ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(i32, VW), None)

        def vector(ptr, at):
            return builder.bitcast(builder.gep(ptr, [at]), vt.as_pointer())

        def tile(paired):
            # the loop; returns value(i, v), row i's vector v.  A pair kind not `paired`
            # (its rows apart in A, no whole vectors: _pair_fma's pairs would take two
            # shuffles each) sums its VW/2 columns as one more vector a row, of B's half
            # and zeros past it (a load of half a vector, the upper lanes zero)
            nl = NL + (pair and not paired)
            # accumulators in allocas: LLVM's SROA turns them into registers (loop phis)
            acc = [[cgutils.alloca_once_value(builder, ir.Constant(vt, None))
                    for _ in range(nl)] for _ in range(MR)]
            pairs = [cgutils.alloca_once_value(builder, ir.Constant(vt, None))
                     for _ in range(MR // 2 if paired else 0)]
            with cgutils.for_range(builder, kc) as loop:
                p = loop.index
                bp = builder.add(bo, builder.mul(p, ldb))
                b = [builder.load(vector(B, builder.add(bp, i64(v * VW))), align=size)
                     for v in range(NL)]
                if nl > NL:
                    b.append(_pair_b(builder, B, builder.add(bp, i64(NL * VW)), vt, size,
                                     paired=False))
                bh = _pair_b(builder, B, builder.add(bp, i64(NL * VW)), vt, size) \
                    if paired else None
                ap = builder.add(ao, builder.mul(p, lda))
                rows = []  # each row's a: broadcast for the whole vectors, else as it is
                for i in range(MR):
                    a = builder.load(builder.gep(A, [builder.add(ap, builder.mul(i64(i),
                                                                                 ldi))]))
                    if nl:
                        a = builder.shuffle_vector(builder.insert_element(undef, a, i32(0)),
                                                   undef, lane0)
                    for v in range(nl):
                        builder.store(builder.call(fma, [a, b[v], builder.load(acc[i][v])]),
                                      acc[i][v])
                    rows.append(a)
                    if paired and i % 2:
                        _pair_fma(builder, fma, bh, rows[i - 1], a, pairs[i // 2])

            def value(i, v):  # its accumulator, or its half of its pair's
                return _pair_row(builder, pairs, i) if paired and v == NL else \
                    builder.load(acc[i][v])
            return value

        def stores(value, how):
            # how: None (cached), _store_streamed (on lines) or _store_streamed_parts
            for i in range(MR):
                r = builder.add(co, builder.mul(i64(i), ldc))
                for v in range(NV):
                    p = vector(C, builder.add(r, i64(v * VW)))
                    if cut and v < NL + pair and in_parts:  # the row's first ncol columns alone
                        count = builder.sub(args[11], i64(v * VW))
                        count = builder.select(builder.icmp_signed("<", count, i64(0)), i64(0),
                                               builder.select(builder.icmp_signed(
                                                   ">", count, i64(VW)), i64(VW), count))
                        _store_first(builder, value(i, v), p, count, size)
                    elif cut and v < NL + pair:
                        mask = builder.icmp_signed(
                            "<", ir.Constant(ir.VectorType(i64, VW),
                                             [v * VW + j for j in range(VW)]),
                            _splat(builder, args[11], VW))
                        _masked(builder, "store", vt, p, size, mask, value(i, v))
                    elif cut:
                        continue
                    elif v >= NL + pair:  # past the live vectors: zeros
                        builder.store(ir.Constant(vt, None), p, align=size)
                    elif how is None:
                        builder.store(value(i, v), p, align=size)
                    else:
                        how(builder, value(i, v), p)

        if pair and not NL:  # pairs where A's rows lie side by side (ldi 1), else not
            with builder.if_else(builder.icmp_signed("==", ldi, i64(1))) as (side, apart):
                with side:
                    stores(tile(True), None)
                with apart:
                    stores(tile(False), None)
            return context.get_dummy_value()
        value = tile(pair)
        if not stream or NR * size % _LINE:  # rows of parts of lines: never streamed
            stores(value, None)
            return context.get_dummy_value()
        ok = _streams(builder, args[11], builder.gep(C, [co]), builder.mul(ldc, i64(size)))
        # in parts only where the tile's rows lie end to end (ldc = NR), so that its lines,
        # but for its first and last, are filled whole by these stores; rows apart, each
        # row's two end lines were shared with other tiles' stores, written partly at two
        # times: as AVX2 10⁶×32×32 into np.empty arrays went 48 → 55 ms (stop 31)
        parts = builder.and_(_streams(builder, args[11], builder.gep(C, [co]), align=_PART),
                             builder.icmp_signed("==", ldc, i64(NR)))
        _stream_choice(builder, ok, parts, lambda how: stores(value, how))
        return context.get_dummy_value()

    return codegen


@functools.lru_cache(maxsize=None)
def microkernel(T: str, MR: int, NR: int, VW: int, stream: bool = False, live: int = 0):
    """The micro-kernel intrinsic for an MR×NR tile of dtype name T, VW lanes a vector (see
    the module's doc); VW must divide NR.  stream=True: one more argument, a boolean, that
    asks for the tile's stores to go past the caches (non-temporal), which they do where
    the tile's rows are whole cache lines (NR elements a multiple of 64 bytes; C[co] and
    ldc aligned to them).  live = n (0 < n < NR/VW): only the tile's first n vectors of
    each row are summed (B's others never read), the rest stored as zeros: the whole
    tile as mk stores it where those columns of B are zero, for a panel's last columns
    past the data (the padding that W's packs fill with zeros)."""
    codegen = _microkernel_ir(T, MR, NR, VW, stream, live)
    I, P = types.int64, types.CPointer({"float32": types.float32, "float64": types.float64}[T])

    if stream:
        @intrinsic
        def mks(typingctx, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc, streamed):
            return types.void(I, P, I, I, I, P, I, I, P, I, I, types.boolean), codegen
        return mks

    @intrinsic
    def mk(typingctx, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc):
        return types.void(I, P, I, I, I, P, I, I, P, I, I), codegen
    return mk


def _wide_ir(T: str, MR: int, NR: int, VW: int, VWt: int, nt: int, pair: bool = False):
    # wide_kernel's code for one tail kind: args (kc, A, ao, lda, ldi, B, bo, ldb, bo2, C, co,
    # ldc, co2, ncol): the NR // VW vectors of a whole panel from B[bo + p·ldb] and nt
    # vectors of VWt lanes from the next panel's, B[bo2 + p·ldb] (then, where `pair`, its
    # next VWt/2 columns two rows a vector: _pair_fma), each row's sums as mk's; stored at
    # C[co + i·ldc] and, masked to the first ncol columns, C[co2 + i·ldc]
    nbt = {"float32": types.float32, "float64": types.float64}[T]
    NV, size = NR // VW, 4 if T == "float32" else 8

    def codegen(context, builder, sig, args):
        kc, A, ao, lda, ldi, B, bo, ldb, bo2, C, co, ldc, co2, ncol = args
        et = context.get_value_type(nbt)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        groups = [(ir.VectorType(et, VW), NV, bo, co), (ir.VectorType(et, VWt), nt, bo2, co2)]

        def fma(vt):
            return cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vt, [vt, vt, vt]),
                f"llvm.fmuladd.v{vt.count}f{8 * size}")

        def vector(ptr, at, vt):
            return builder.bitcast(builder.gep(ptr, [at]), vt.as_pointer())

        # accumulators in allocas (SROA: registers), a row's whole-panel vectors, then its tail's
        acc = [[[cgutils.alloca_once_value(builder, ir.Constant(vt, None)) for _ in range(n)]
                for vt, n, _, _ in groups] for _ in range(MR)]
        tt = groups[1][0]
        pairs = [cgutils.alloca_once_value(builder, ir.Constant(tt, None))
                 for _ in range(MR // 2 if pair else 0)]
        with cgutils.for_range(builder, kc) as loop:
            p = loop.index
            b = [[builder.load(vector(B, builder.add(builder.add(b0, builder.mul(p, ldb)),
                                                     i64(v * vt.count)), vt), align=size)
                  for v in range(n)] for vt, n, b0, _ in groups]
            ap = builder.add(ao, builder.mul(p, lda))
            bh = _pair_b(builder, B, builder.add(builder.add(bo2, builder.mul(p, ldb)),
                                                 i64(nt * VWt)), tt, size) if pair else None
            at = []  # the rows' broadcasts in the tail's lanes, for its pairs
            for i in range(MR):
                a = builder.load(builder.gep(A, [builder.add(ap, builder.mul(i64(i), ldi))]))
                for g, (vt, n, _, _) in enumerate(groups):
                    undef = ir.Constant(vt, ir.Undefined)
                    lane0 = ir.Constant(ir.VectorType(i32, vt.count), None)
                    av = builder.shuffle_vector(builder.insert_element(undef, a, i32(0)),
                                                undef, lane0)
                    for v in range(n):
                        builder.store(builder.call(fma(vt), [av, b[g][v],
                                                             builder.load(acc[i][g][v])]),
                                      acc[i][g][v])
                at.append(av)
                if pair and i % 2:
                    _pair_fma(builder, fma(tt), bh, at[i - 1], av, pairs[i // 2])
        for i in range(MR):
            for g, (vt, n, _, c0) in enumerate(groups):
                r = builder.add(c0, builder.mul(i64(i), ldc))
                for v in range(n + (pair and g == 1)):
                    ptr = vector(C, builder.add(r, i64(v * vt.count)), vt)
                    value = _pair_row(builder, pairs, i) if v == n else \
                        builder.load(acc[i][g][v])
                    if g == 0:
                        builder.store(value, ptr, align=size)
                        continue
                    mask = builder.icmp_signed(
                        "<", ir.Constant(ir.VectorType(i64, vt.count),
                                         [v * vt.count + j for j in range(vt.count)]),
                        _splat(builder, ncol, vt.count))
                    _masked(builder, "store", vt, ptr, size, mask, value)
        return context.get_dummy_value()

    return codegen


def _by_columns(gens, ncol_last: bool):
    # the code of an intrinsic whose first argument is ncol: the first of gens ((columns,
    # codegen), columns ascending) whose columns hold ncol, the last one's where none does,
    # each given the other arguments (and ncol after them where ncol_last)
    def codegen(context, builder, sig, args):
        ncol, rest = args[0], list(args[1:]) + ([args[0]] if ncol_last else [])

        def emit(k):  # the kinds from k on
            if k == len(gens) - 1:
                gens[k][1](context, builder, sig, rest)
                return
            fits = builder.icmp_signed("<=", ncol, ir.Constant(ncol.type, gens[k][0]))
            with builder.if_else(fits) as (then, other):
                with then:
                    gens[k][1](context, builder, sig, rest)
                with other:
                    emit(k + 1)
        emit(0)
        return context.get_dummy_value()

    return codegen


def _kinds(tails):
    # tails, checked: (columns, VW, live) ascending, columns VW·live, or VW·live + VW/2
    # where the live vectors are followed by a pair vector (_pair_fma)
    if not tails or list(tails) != sorted(tails) or any(
            c not in (vw * n, vw * n + vw // 2) or c < 1 for c, vw, n in tails):
        raise ValueError(f"tails: (columns, VW, live) with columns = VW·live or VW·live + "
                         f"VW/2, ascending, got {tails!r}")
    return tails


@functools.lru_cache(maxsize=None)
def wide_kernel(T: str, MR: int, NR: int, VW: int, tails: tuple):
    """mkw(ncol, kc, A, ao, lda, ldi, B, bo, ldb, bo2, C, co, ldc, co2): a whole panel's
    MR×NR tile and the next, last, panel's first ncol columns in one pass over A: the
    whole panel's B from bo, the last's from bo2 (each step's rows ldb apart in both),
    stored at C[co + i·ldc] and C[co2 + i·ldc], the last panel's to its ncol columns (a
    masked store: nothing past them written).  The last panel's vectors as the first of
    `tails` ((columns, lanes, live vectors), ascending, as tail_kernel's) that holds ncol.
    Each element the same chain of FMAs as mk's and mkt's tiles give it: the same bits,
    with A's elements broadcast once for both panels and no tile buffer for the cut last
    panel (where the registers hold MR rows of both: tiled.wide_tails)."""
    gens = [(c, _wide_ir(T, MR, NR, VW, vw, n, c != vw * n)) for c, vw, n in _kinds(tails)]
    I, P = types.int64, types.CPointer({"float32": types.float32, "float64": types.float64}[T])

    codegen = _by_columns(gens, ncol_last=True)

    @intrinsic
    def mkw(typingctx, ncol, kc, A, ao, lda, ldi, B, bo, ldb, bo2, C, co, ldc, co2):
        return types.void(I, I, P, I, I, I, P, I, I, I, P, I, I, I), codegen
    return mkw


@functools.lru_cache(maxsize=None)
def tail_kernel(T: str, MR: int, NR: int, tails: tuple, cut: bool = False,
                parts: bool = False):
    """mkt(ncol, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc): the MR×NR tile of a last panel
    of W with ncol live columns (the rest zeros), as microkernel(T, MR, NR, VW, live=n) of
    the first of `tails` ((columns, VW, n), columns ascending, each n·VW, or n·VW + VW/2:
    then the n vectors and the next VW/2 columns two rows a vector) with columns ≥ ncol,
    the last one's where none has: mk's tile, bitwise (each element's sum is the same
    chain of FMAs whatever the vector), from fewer or narrower vectors (tiled.tails).
    cut=True: only each row's first ncol columns stored (masked stores; where `parts`,
    plain stores of power-of-two parts), nothing past them: the tile straight where it
    belongs, in a row no wider than ncol."""
    gens = [(c, _microkernel_ir(T, MR, NR, vw, False, n, cut, parts, c != vw * n))
            for c, vw, n in _kinds(tails)]
    I, P = types.int64, types.CPointer({"float32": types.float32, "float64": types.float64}[T])

    codegen = _by_columns(gens, ncol_last=cut)

    @intrinsic
    def mkt(typingctx, ncol, kc, A, ao, lda, ldi, B, bo, ldb, C, co, ldc):
        return types.void(I, I, P, I, I, I, P, I, I, P, I, I), codegen
    return mkt
