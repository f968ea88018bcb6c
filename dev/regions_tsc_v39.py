"""rdtsc as a Numba intrinsic (llvm.readcyclecounter), for dev/regions_v39.py."""
from numba import types as nt
from numba.extending import intrinsic
from llvmlite import ir

@intrinsic
def rdtsc(typingctx):
    def cg(context, builder, sig, args):
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=ir.FunctionType(ir.IntType(64), []))
        return builder.call(fn, [])
    return nt.int64(), cg
