"""LLVM intrinsics for the Numba kernels.

pointer(a): a's data as a typed pointer (types.CPointer), for the tiled kernels'
    generated code.  Indexing a pointer p[i] is a plain load or store: no
    negative-index wraparound (the select Numba puts on every signed array
    index, which stops LLVM's vectorizers; hence the np.uint64 indices of the
    row kernels) and no shape to carry.  The array must outlive the pointer:
    take pointers of a function's own arguments, which the caller keeps alive.

prefetch(p, i): a hint to the CPU to load p[i]'s cache line soon.  LLVM's
    llvm.prefetch intrinsic (read, keep in all cache levels, data).  A hint
    only: it never faults, so it may point past the end of the data, and it
    changes no result.  The tiled kernels use it where a micro-kernel call
    reads only a few contiguous rows of x and the hardware prefetcher cannot
    get ahead (10⁶×16×16: the forward product's x reads 7.0 → 2.6 ms,
    dev/tiled_v7.md).
"""

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
def prefetch(typingctx, p, i):
    if not isinstance(p, types.CPointer):
        return None

    def codegen(context, builder, sig, args):
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), _NAME)
        builder.call(fn, [builder.bitcast(builder.gep(args[0], [args[1]]), i8p),
                          i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(p, i), codegen
