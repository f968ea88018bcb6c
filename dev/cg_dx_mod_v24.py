"""Loops for dev/cg_dx_v24.py: dx's items (the compiled dx_packed) and the bare micro-kernel nest
with the same operands (one item's blocks and panels), AVX2 entry."""
import numpy as np
from numba import njit
from loopgrad.cpu import tiled, machine
from loopgrad.cpu.intrinsics import pointer
c = tiled.module("float32", machine.entry().isa)
th = tiled.module("float32", machine.entry().isa, "three")
MR, NR, MC, KC = c.MR, c.NR, c.MC, c.KC
mk = c.mk
dx_packed = th.dx_packed


@njit(cache=True)
def bare(Ap2, Wtp2, Cb2, M, nblk, j0, nj, nir, reps):
    # an item's blocks × panels × micro-panels, A one block's micro-panels (L2), C its tiles
    Ap, Wtp, Cb = pointer(Ap2), pointer(Wtp2), pointer(Cb2)
    for r in range(reps):
        for pc in range(0, nblk * KC, KC):
            for jr in range(j0, j0 + nj):
                bo = (jr * M + pc) * NR
                for ir in range(nir):
                    mk(KC, Ap, ir * KC * MR, MR, 1, Wtp, bo, NR, Cb, ((jr - j0) * MC + ir * MR) * NR, NR)
    return 0
