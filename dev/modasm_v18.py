"""Instruction counts of the generated tiled modules' functions, compiled (uncached) under the
kernels' settings: which loops LLVM left scalar (dev/products_v18.md 19e-19f).

    python dev/modasm_v18.py [variant]
"""
import numpy as np, collections, sys, types as pytypes
from loopgrad.cpu import tiled, jit, machine
e = machine.entry(); v = sys.argv[1] if len(sys.argv) > 1 else "float32"
src = tiled._source(e, v, "common").replace("cache=True", "cache=False")
mod = pytypes.ModuleType("lgcommon"); sys.modules["lgcommon"] = mod
with jit.settings(slp=True, vector_bits=e.vector_bits):
    exec(compile(src, "lgcommon", "exec"), mod.__dict__)
    src3 = tiled._source(e, v, "three", "lgcommon").replace("cache=True", "cache=False")
    i = src3.index("def _grads_parallel"); src3 = src3[:src3.rindex("\n\n", 0, i)]  # drop the drivers
    m3 = pytypes.ModuleType("lgthree"); exec(compile(src3, "lgthree", "exec"), m3.__dict__)
from numba.core.registry import CPUDispatcher
for m in (mod, m3):
    for name, f in m.__dict__.items():
        if isinstance(f, CPUDispatcher) and f.signatures:
            asm = list(f.inspect_asm().values())[0]
            ops = collections.Counter(l.split()[0] for l in asm.splitlines() if l.startswith('\t') and l.split()[0].startswith('v'))
            sc = sum(n for k, n in ops.items() if k.endswith(('ss', 'sd')) and not k.startswith(('vbroadcast', 'vmovnt')))
            print(f"{name:18s} scalar-ish {sc:4d}", ops.most_common(6))
