"""The loss kernel built two ways, both compiled in one process and called alternately
with the same arguments (dev/products_v37.md 38b).

    SET=NAME=A,B [THREADS=2] [DTYPE=float32] python dev/loss_ab_v37.py NxKxM ... [rounds=15]

SET=NAME=A,B: a setting of loopgrad.cpu.tiled that goes into the generated code, or
HDR_NAME=A,B: a literal of the generated header (tiled._HEADER's `NAME = ...` line).
Prints, per shape, each build's median ms, the paired median ratio A ÷ B, and whether f
has the same bits.
"""
import ast, os, re, sys, time
import numpy as np, numba
from loopgrad.cpu import tiled

args = [a for a in sys.argv[1:] if "x" in a]
rounds = int(next((a for a in sys.argv[1:] if "x" not in a), 15))
numba.set_num_threads(int(os.environ.get("THREADS", 2)))
DT = np.dtype(os.environ.get("DTYPE", "float32"))
NAME, values = os.environ["SET"].split("=")
A, B = (ast.literal_eval(v) for v in values.split(","))


def setting(value):
    if NAME.startswith("HDR_"):
        tiled._HEADER = re.sub(rf"^{NAME[4:]} = \S+", f"{NAME[4:]} = {value}", tiled._HEADER,
                               flags=re.M)
    else:
        setattr(tiled, NAME, value)
    for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
        f.cache_clear()


for a in args:
    N, K, M = (int(s) for s in a.split("x"))
    _, v, nch, rows = tiled.plan(N, K, M, DT)
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
    kern, sizes = {}, []
    for value in (A, B):
        setting(value)
        kern[value] = tiled.kernel("loss", v, True)
        sizes.append(tiled.scratch("loss", v, N, K, M, nch))
    wsT = np.empty(max(s[1] for s in sizes), DT)
    fs = {p: kern[p](x, W, y, wsT) for p in kern}
    same = np.float64(fs[A]).tobytes() == np.float64(fs[B]).tobytes()
    ts = {p: [] for p in kern}
    for r in range(rounds):
        for p in (A, B) if r % 2 else (B, A):
            s = time.perf_counter(); kern[p](x, W, y, wsT); ts[p].append(time.perf_counter() - s)
    ratio = np.median(np.array(ts[A]) / np.array(ts[B]))
    print(f"{a} {v} {numba.get_num_threads()} threads: {NAME}={A} {np.median(ts[A])*1e3:.3f} ms, "
          f"{NAME}={B} {np.median(ts[B])*1e3:.3f} ms, paired ratio {ratio:.3f}, same f bits {same}",
          flush=True)
