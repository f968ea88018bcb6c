"""LLVM intrinsics for the Numba kernels.

prefetch(a, i): a hint to the CPU to load a[i]'s cache line soon.

LLVM's llvm.prefetch intrinsic (read, keep in all cache levels, data).  A
hint only: it never faults, so it may point past the end of `a`, and it
changes no result.  The tiled kernels use it where a micro-kernel call reads
only a few contiguous rows of x and the hardware prefetcher cannot get ahead
(10⁶×16×16: the forward product's x reads 7.0 → 2.6 ms, dev/tiled_v7.md).
"""

from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# opaque pointers from LLVM 15 on: the intrinsic's name lost its pointee type
_NAME = "llvm.prefetch.p0" if binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@intrinsic
def prefetch(typingctx, a, i):
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), _NAME)
        builder.call(fn, [builder.bitcast(builder.gep(ary.data, [args[1]]), i8p),
                          i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(a, i), codegen
