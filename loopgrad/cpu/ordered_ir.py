"""ordered.py's loops, written as LLVM IR and compiled by llvmlite: 0.3 s where Numba took 3–5.

A cold call's kernel must compile fast: Numba spends 0.5–0.7 s setting itself up
and 0.3–1 s more on each function (its typing and lowering, before LLVM sees
the code): 3–5 s for these loops written as Numba functions (dev/cold_v12.md
16h).  Written directly as LLVM IR, the module is optimized and compiled by LLVM
alone, for the CPU and features Numba compiles for (machine.llvm_target()):
0.3 s a dtype on a 2-core VM.

Every operation is the one the tiled kernels perform, spelled out: llvm.fmuladd
where their code has a product meeting a sum (`contract`: the micro-kernel's
llvm.fmuladd, FMA where the CPU has it, on both sides), and plain fadd, fmul,
fsub, fcmp and selects elsewhere, with no fast-math flag: LLVM's vectorizers may
not reorder any of it.  Each function follows the kernels' code it names below
(nests.py, guards.py; tests/test_tiled.py compares the results with the kernels
bit for bit):

    product(A, sa, sp, B, C, acc, m, P, KC, i0, i1)
        C[i, :] = Σ_p A[i·sa + p·sp]·B[p, :] (B: P rows of m; C: rows of m), rows
        i0 ≤ i < i1, by KC-term blocks: each a chain of multiply-adds from 0 along p
        (four steps a pass over acc), the first block stored in C, the others added
    epilogue(h, y, dy, a0, segs, s0, s1, M, want_grads, want_dy, zz, f, fseg)
        nests.forward_block's epilogue for segments s0 ≤ s < s1 of segs (5 int64 each:
        r0, rows, c0, c1, flat): z, dy, g over h, and f (16 partial sums) into fseg[s]
    dw(x, g, dW, K, M, k0, k1, pieces, npieces, fused, tile, part, total)
        rows k0 ≤ k < k1 of dW = xᵀg: chains over pieces (3 int64 each: r0, r1, chunk),
        added in float64 per chunk, chunks in order, then rounded
    sum_squares(a, n, lanes) -> Σ float64(a[i])² in guards.sum_squares's order
    nonfinite(a, n) -> Σ (a[i] − a[i]): 0 where every a[i] is finite
"""

import contextlib
import ctypes
import functools

from llvmlite import ir

from . import machine

EPI = 512  # the epilogue's z² a buffer at a time (a multiple of 16: each gives the same f)
JB = 512   # columns of C per pass over a KC-row block of B (256 KiB of float32 in L2)
I64, F64 = ir.IntType(64), ir.DoubleType()


@contextlib.contextmanager
def _loop(b, start, stop, step=1):
    """for (i = start; i < stop; i += step), step an int or an i64 value: the body goes
    inside; yields the counter, which after the loop holds its exit value."""
    pre = b.block
    head, body, end = (b.append_basic_block() for _ in range(3))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, stop), body, end)
    b.position_at_end(body)
    yield i
    i.add_incoming(b.add(i, I64(step) if isinstance(step, int) else step), b.block)
    b.branch(head)
    b.position_at_end(end)


def _min(b, u, v):
    return b.select(b.icmp_signed("<", u, v), u, v)


def _load(b, ptr, i):
    return b.load(b.gep(ptr, [i]))


def _store(b, v, ptr, i):
    b.store(v, b.gep(ptr, [i]))


def _add(b, *terms):
    # an integer sum (index arithmetic)
    v = terms[0]
    for t in terms[1:]:
        v = b.add(v, I64(t) if isinstance(t, int) else t)
    return v


def _wide(b, T, v):
    # float64(v) for a value of the input dtype (exact)
    return v if T == F64 else b.fpext(v, F64)


def _narrow(b, T, v):
    # the input dtype's value nearest to float64 v (as Numba stores a float64 into T)
    return v if T == F64 else b.fptrunc(v, T)


def _function(module, name, ret, args):
    # args: (type, whether noalias); noalias only on distinct arrays (the vectorizer then
    # needs no run-time overlap checks)
    fn = ir.Function(module, ir.FunctionType(ret, [t for t, _ in args]), name)
    for arg, (_, noalias) in zip(fn.args, args):
        if noalias:
            arg.add_attribute("noalias")
    return fn, ir.IRBuilder(fn.append_basic_block())


def _chains(b, fmuladd, acc, n, steps):
    # acc[j] = fmuladd(a_s, row_s[j], ...) for j < n, the steps (a_s, row_s) in order
    with _loop(b, I64(0), n) as j:
        v = _load(b, acc, j)
        for a, row in steps:
            v = b.call(fmuladd, [a, _load(b, row, j), v])
        _store(b, v, acc, j)


def _product(module, T, fmuladd):
    P_ = T.as_pointer()
    fn, b = _function(module, "product", ir.VoidType(), [
        (P_, True), (I64, False), (I64, False), (P_, True), (P_, True), (P_, True),
        (I64, False), (I64, False), (I64, False), (I64, False), (I64, False)])
    A, sa, sp, B, C, acc, m, P, KC, i0, i1 = fn.args
    with _loop(b, I64(0), m, JB) as j0:
        jn = _min(b, I64(JB), b.sub(m, j0))
        with _loop(b, I64(0), P, KC) as b0:
            b1 = _min(b, b.add(b0, KC), P)
            with _loop(b, i0, i1) as i:
                with _loop(b, I64(0), jn) as j:
                    _store(b, T(0), acc, j)
                base = b.mul(i, sa)
                with _loop(b, b0, b.sub(b1, I64(3)), 4) as p:  # while p + 4 <= b1
                    steps = []
                    for t in range(4):
                        q = b.add(p, I64(t))
                        a = _load(b, A, b.add(base, b.mul(q, sp)))
                        steps.append((a, b.gep(B, [b.add(b.mul(q, m), j0)])))
                    _chains(b, fmuladd, acc, jn, steps)
                with _loop(b, p, b1) as q:  # the last b1 − p < 4 steps
                    a = _load(b, A, b.add(base, b.mul(q, sp)))
                    _chains(b, fmuladd, acc, jn, [(a, b.gep(B, [b.add(b.mul(q, m), j0)]))])
                row = b.gep(C, [b.add(b.mul(i, m), j0)])
                with b.if_else(b.icmp_signed("==", b0, I64(0))) as (first, then):
                    with first:
                        with _loop(b, I64(0), jn) as j:
                            _store(b, _load(b, acc, j), row, j)
                    with then:
                        with _loop(b, I64(0), jn) as j:
                            _store(b, b.fadd(_load(b, row, j), _load(b, acc, j)), row, j)
    b.ret_void()


def _relu_backward(b, hd, z, a0):
    # loopgrad._scalar.relu_backward, operation for operation (h as float64: exact)
    zero = F64(0.0)
    t = b.fmul(F64(2.0), z)
    at_tie = b.select(b.fcmp_ordered("==", a0, zero), zero, b.fmul(a0, t))
    at_nan = b.select(b.fcmp_ordered("==", a0, F64(1.0)), zero, t)
    below = b.select(b.fcmp_ordered("<", hd, zero), zero, at_nan)
    return b.select(b.fcmp_ordered(">", hd, zero), t,
                    b.select(b.fcmp_ordered("==", hd, zero), at_tie, below))


def _tree(b, f, seventeenth=False):
    # ((f0+f1)+(f2+f3)) + ((f4+f5)+(f6+f7)) ... over 16 partial sums, then + f[16] where
    # there is a seventeenth (guards.sum_squares's tail)
    v = [_load(b, f, I64(q)) for q in range(16)]
    while len(v) > 1:
        v = [b.fadd(v[k], v[k + 1]) for k in range(0, len(v), 2)]
    return b.fadd(v[0], _load(b, f, I64(16))) if seventeenth else v[0]


def _epilogue(module, T):
    P_, P64, PI = T.as_pointer(), F64.as_pointer(), I64.as_pointer()
    fn, b = _function(module, "epilogue", ir.VoidType(), [
        (P_, True), (P_, True), (P_, True), (F64, False), (PI, True), (I64, False),
        (I64, False), (I64, False), (I64, False), (I64, False), (P64, True), (P64, True),
        (P64, True)])
    h, y, dy, a0, segs, s0, s1, M, want_grads, want_dy, zz, f, fseg = fn.args
    zero = F64(0.0)
    with _loop(b, s0, s1) as s:
        r0, rows, c0, c1, flat = (_load(b, segs, _add(b, b.mul(s, I64(5)), k)) for k in range(5))
        flat = b.icmp_signed("!=", flat, I64(0))
        for q in range(16):
            _store(b, zero, f, I64(q))
        length = b.select(flat, b.mul(rows, M), b.sub(c1, c0))
        with _loop(b, I64(0), b.select(flat, I64(1), rows)) as n:
            start = b.add(b.mul(b.add(r0, n), M), c0)
            end = b.add(start, length)
            with _loop(b, start, end, EPI) as c:
                mm = _min(b, I64(EPI), b.sub(end, c))
                with _loop(b, I64(0), mm) as j:
                    e = b.add(c, j)
                    hd = _wide(b, T, _load(b, h, e))
                    z = b.fsub(b.select(b.fcmp_ordered("<", hd, zero), zero, hd),
                               _wide(b, T, _load(b, y, e)))
                    zf = _wide(b, T, _narrow(b, T, z))  # f's z: in the input dtype
                    _store(b, b.fmul(zf, zf), zz, j)
                    with b.if_then(b.icmp_signed("!=", want_dy, I64(0))):
                        _store(b, _narrow(b, T, b.fmul(F64(-2.0), z)), dy, e)
                    with b.if_then(b.icmp_signed("!=", want_grads, I64(0))):
                        _store(b, _narrow(b, T, _relu_backward(b, hd, z, a0)), h, e)
                m16 = b.sub(mm, b.srem(mm, I64(16)))
                with _loop(b, I64(0), m16, 16) as i:
                    for q in range(16):
                        _store(b, b.fadd(_load(b, f, I64(q)), _load(b, zz, b.add(i, I64(q)))),
                               f, I64(q))
                with _loop(b, m16, mm) as i:  # the chunk's last mm − m16, sums 0, 1, ...
                    q = b.sub(i, m16)
                    _store(b, b.fadd(_load(b, f, q), _load(b, zz, i)), f, q)
        _store(b, _tree(b, f), fseg, s)
    b.ret_void()


def _dw(module, T, fmuladd):
    P_, P64, PI = T.as_pointer(), F64.as_pointer(), I64.as_pointer()
    fn, b = _function(module, "dw", ir.VoidType(), [
        (P_, True), (P_, True), (P_, True), (I64, False), (I64, False), (I64, False),
        (I64, False), (PI, True), (I64, False), (I64, False), (P_, True), (P64, True),
        (P64, True)])
    x, g, dW, K, M, k0, k1, pieces, npieces, fused, tile, part, total = fn.args
    nkm = b.mul(b.sub(k1, k0), M)
    chunk = b.alloca(I64)  # the chunk of the pieces so far (−1: none yet)
    b.store(I64(-1), chunk)

    def fold():
        # the chunk's partial into the total (the first chunk's is the total, its bits)
        first = b.icmp_signed("==", b.load(chunk), I64(0))
        with _loop(b, I64(0), nkm) as i:
            p = _load(b, part, i)
            _store(b, b.select(first, p, b.fadd(_load(b, total, i), p)), total, i)

    with _loop(b, I64(0), npieces) as q:
        r0, r1, c = (_load(b, pieces, _add(b, b.mul(q, I64(3)), k)) for k in range(3))
        new = b.icmp_signed("!=", c, b.load(chunk))
        with b.if_then(b.and_(new, b.icmp_signed(">=", b.load(chunk), I64(0)))):
            fold()
        b.store(c, chunk)
        with _loop(b, k0, k1) as k:
            with _loop(b, I64(0), M) as m:
                _store(b, T(0), tile, m)
            with _loop(b, r0, b.sub(r1, I64(3)), 4) as n:  # while n + 4 <= r1
                steps = []
                for t in range(4):
                    r = b.add(n, I64(t))
                    steps.append((_load(b, x, b.add(b.mul(r, K), k)), b.gep(g, [b.mul(r, M)])))
                _chains(b, fmuladd, tile, M, steps)
            with _loop(b, n, r1) as r:
                _chains(b, fmuladd, tile, M,
                        [(_load(b, x, b.add(b.mul(r, K), k)), b.gep(g, [b.mul(r, M)]))])
            row = b.gep(part, [b.mul(b.sub(k, k0), M)])
            with _loop(b, I64(0), M) as m:
                t = _wide(b, T, _load(b, tile, m))
                begin = b.select(b.icmp_signed("!=", fused, I64(0)), b.fadd(F64(0.0), t), t)
                _store(b, b.select(new, begin, b.fadd(_load(b, row, m), t)), row, m)
    with b.if_then(b.icmp_signed(">=", b.load(chunk), I64(0))):
        fold()
    out = b.gep(dW, [b.mul(k0, M)])
    with _loop(b, I64(0), nkm) as i:
        _store(b, _narrow(b, T, _load(b, total, i)), out, i)
    b.ret_void()


def _guards(module, T):
    P_, P64 = T.as_pointer(), F64.as_pointer()
    fn, b = _function(module, "sum_squares", F64, [(P_, True), (I64, False), (P64, True)])
    a, n, lanes = fn.args
    n16 = b.sub(n, b.srem(n, I64(16)))
    for q in range(16):
        _store(b, F64(0.0), lanes, I64(q))
    with _loop(b, I64(0), n16, 16) as i:
        for q in range(16):
            v = _wide(b, T, _load(b, a, b.add(i, I64(q))))
            _store(b, b.fadd(_load(b, lanes, I64(q)), b.fmul(v, v)), lanes, I64(q))
    _store(b, F64(0.0), lanes, I64(16))
    with _loop(b, n16, n) as i:
        v = _wide(b, T, _load(b, a, i))
        _store(b, b.fadd(_load(b, lanes, I64(16)), b.fmul(v, v)), lanes, I64(16))
    b.ret(_tree(b, lanes, seventeenth=True))

    fn, b = _function(module, "nonfinite", F64, [(P_, True), (I64, False)])
    a, n = fn.args
    bad = b.alloca(F64)
    b.store(F64(0.0), bad)
    with _loop(b, I64(0), n) as i:
        v = _wide(b, T, _load(b, a, i))
        b.store(b.fadd(b.load(bad), b.fsub(v, v)), bad)
    b.ret(b.load(bad))


def _build(dtype: str) -> str:
    """The module's IR text for dtype ("float32" or "float64")."""
    T = ir.FloatType() if dtype == "float32" else F64
    module = ir.Module(name=f"loopgrad_ordered_{dtype}")
    module.triple = machine.llvm_target()[0]
    fmuladd = ir.Function(module, ir.FunctionType(T, [T, T, T]),
                          "llvm.fmuladd." + ("f32" if dtype == "float32" else "f64"))
    _product(module, T, fmuladd)
    _epilogue(module, T)
    _dw(module, T, fmuladd)
    _guards(module, T)
    return str(module)


_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
_SIGNATURES = {
    "product": (None, [_P, _I, _I, _P, _P, _P, _I, _I, _I, _I, _I]),
    "epilogue": (None, [_P, _P, _P, _D, _P, _I, _I, _I, _I, _I, _P, _P, _P]),
    "dw": (None, [_P, _P, _P, _I, _I, _I, _I, _P, _I, _I, _P, _P, _P]),
    "sum_squares": (_D, [_P, _I, _P]),
    "nonfinite": (_D, [_P, _I]),
}


@functools.lru_cache(maxsize=None)
def functions(dtype: str) -> dict:
    """{name: ctypes function} of the compiled module for dtype, for this process's life
    (ctypes releases the GIL while they run)."""
    from llvmlite import binding as ll

    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    triple, cpu, features = machine.llvm_target()
    tm = ll.Target.from_triple(triple).create_target_machine(cpu=cpu, features=features, opt=3)
    mod = ll.parse_assembly(_build(dtype))
    mod.verify()
    pto = ll.create_pipeline_tuning_options(3)
    pto.loop_vectorization = pto.slp_vectorization = True
    pb = ll.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    engine = ll.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    fns = {name: ctypes.CFUNCTYPE(ret, *args)(engine.get_function_address(name))
           for name, (ret, args) in _SIGNATURES.items()}
    fns["_engine"] = engine  # kept alive with the functions
    return fns
