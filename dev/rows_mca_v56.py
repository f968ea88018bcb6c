"""llvm-mca's cycles a row for the 8×8 float32 rows' loop (rowvec.py, 256-bit), without and
with the diagonals of dev/diagonals_v56.diff (apply it first), on other CPUs' models
(dev/products_v56.md 57a).  The loop compiled with relu'(0)'s general selects (no
branches between cases), no streamed stores and no prefetches, then taken out of the
assembly as the one path around it (header to the latch's exit test) for llvm-mca-14.

    [ISA env] python dev/rows_mca_v56.py znver3 haswell skylake ...
"""
import os, re, subprocess, sys, numba
from loopgrad.cpu import rowvec, skinny, jit, machine
from loopgrad.cpu.intrinsics import pointer, relu_grad
from loopgrad._inputs import WANT_ALL


def general(builder, a0_zero, drop_nan, a0v, h, zero, t):  # relu_grad_at without its cases
    tie = builder.select(a0_zero, zero, builder.fmul(a0v, t))
    return relu_grad(builder, h, zero, t, tie, builder.select(drop_nan, zero, t))


rowvec.relu_grad_at = general
bits = machine.entry().vector_bits
sys.path.insert(0, os.path.dirname(__file__))
from rows_incache_v56 import module_options  # noqa: E402


def loop(asm):
    # the latch: a block whose exit test (je) falls through into the loop's header
    L = asm.split("\n")
    for i, line in enumerate(L):
        if re.match(r"^\.LBB0_\d+:", line) and i and re.match(r"\s*je\s", L[i - 1]):
            j = i - 1
            while not re.match(r"^\.LBB0_\d+:", L[j]):
                j -= 1
            latch, tail = L[j][:-1], L[j + 1:i]
            if sum("vfmadd231ps" in x for x in tail) < 5:
                continue
            k, head = i + 1, []
            while not re.search(r"\bjmp\s+" + re.escape(latch) + r"\s*$", L[k]):
                head.append(L[k])
                k += 1
            return [x for x in head + tail if x.startswith("\t") and
                    not x.strip().startswith(".") and not re.match(r"\s*j\w+\s", x)]


for diag in (False, True) if hasattr(rowvec, "diagonals") else (False,):
    opts = dict(diagonals=diag) if hasattr(rowvec, "diagonals") else {}
    intr = rowvec.row_vectors(8, 8, WANT_ALL, **{**module_options(8, 8, bits), **opts},
                              stream=False, pf=0)

    def make(intr):
        @numba.njit
        def run(dx, dW, dy, x, W, y, a0, start, stop, flags):
            return intr(pointer(dx), pointer(dW), pointer(dy), pointer(x), pointer(W),
                        pointer(y), a0, start, stop, flags)
        return run
    with jit.settings(vector_bits=bits, llvm=skinny._llvm_options(8, 8, bits)):
        run = make(intr)
        run.compile("(float32[:, ::1], float64[::1], float32[:, ::1], float32[:, ::1], "
                    "float32[:, ::1], float32[:, ::1], float64, int64, int64, int64)")
    body = loop(next(iter(run.inspect_asm().values())))
    path = f"/tmp/rows_mca_{int(diag)}.s"
    open(path, "w").write("\n".join(body) + "\n")
    print(f"diagonals={diag}: {len(body)} instructions a row")
    for cpu in sys.argv[1:]:
        out = subprocess.run(["llvm-mca-14", f"-mcpu={cpu}", "-iterations=200", path],
                             capture_output=True, text=True).stdout
        cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1)) / 200
        rt = re.search(r"Block RThroughput:\s+([\d.]+)", out).group(1)
        print(f"  {cpu:>14}: {cycles:.1f} cycles a row (block throughput {rt})")
