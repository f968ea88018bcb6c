"""The fused kernel built two ways, both compiled in one process and called alternately with
the same arguments and tiled.plan's chunks (dev/products_v20.md).

    SET=NAME=A,B [THREADS=2] [DTYPE=float32] [A0=0.5] [WANT=15] python dev/fused_ab_v20.py NxKxM ... [rounds=15]

SET=NAME=A,B: a setting of loopgrad.cpu.tiled that goes into the generated code, or
HDR_NAME=A,B: a literal of the generated header (tiled._HEADER's `NAME = ...` line, e.g.
HDR_PF_Y=256,0, dev/products_v25.md 26h).  Prints, per
shape, each build's median ms, the paired median ratio A ÷ B, and whether the bits agree.
WANT: loopgrad._inputs's bits (default all three gradients | STREAM; 10 = dW alone, as
`wrt="W"` in a large call, dev/products_v37.md 38a).
"""
import ast, os, sys, time
import numpy as np, numba
from loopgrad._inputs import WANT_ALL, STREAM
from loopgrad.cpu import tiled

args = [a for a in sys.argv[1:] if "x" in a]
rounds = int(next((a for a in sys.argv[1:] if "x" not in a), 15))
numba.set_num_threads(int(os.environ.get("THREADS", 2)))
DT = np.dtype(os.environ.get("DTYPE", "float32"))
A0 = float(os.environ.get("A0", "0"))  # relu'(0): the bench's is 0.5
NAME, values = os.environ["SET"].split("=")
A, B = (ast.literal_eval(v) for v in values.split(","))


def setting(value):
    if NAME.startswith("HDR_"):  # a literal of the generated header: SET=HDR_PF_Y=256,0
        import re
        tiled._HEADER = re.sub(rf"^{NAME[4:]} = \S+", f"{NAME[4:]} = {value}", tiled._HEADER,
                               flags=re.M)
    else:
        setattr(tiled, NAME, value)
    for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
        f.cache_clear()


for a in args:
    N, K, M = (int(s) for s in a.split("x"))
    name, v, nch, rows = tiled.plan(N, K, M, DT)
    if name != "grads_fused":
        print(f"{a}: the plan runs {name}, not the fused kernel; measured fused anyway")
        name = "grads_fused"
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
    kern, sizes = {}, []
    for value in (A, B):
        setting(value)
        kern[value] = tiled.kernel(name, v, True)
        sizes.append(tiled.scratch(name, v, N, K, M, nch))
    ws64, wsT = np.empty(max(s[0] for s in sizes)), np.empty(max(s[1] for s in sizes), DT)
    # the same outputs for both builds (their own arrays lay elsewhere in memory, and that
    # alone moved the paired ratio of identical code by up to 4 %: dev/products_v25.md 26i)
    shared = [np.empty_like(x), np.empty_like(W), np.empty_like(y)]
    outs = {p: shared for p in kern}
    want = int(os.environ.get("WANT", WANT_ALL | STREAM))
    call = {p: (lambda p=p: kern[p](*outs[p], x, W, y, A0, nch, rows, ws64, wsT, want))
            for p in kern}
    fs, got = {}, {}
    for p in kern:
        fs[p] = call[p]()
        got[p] = [o.copy() for o in shared]
    # bitwise (outputs not asked for hold what the memory held, NaN patterns included)
    same = np.float64(fs[A]).tobytes() == np.float64(fs[B]).tobytes() and \
        all(u.tobytes() == w.tobytes() for u, w in zip(got[A], got[B]))
    ts = {p: [] for p in kern}
    for r in range(rounds):
        for p in (A, B) if r % 2 else (B, A):
            s = time.perf_counter(); call[p](); ts[p].append(time.perf_counter() - s)
    ratio = np.median(np.array(ts[A]) / np.array(ts[B]))
    print(f"{a} {v} {numba.get_num_threads()} threads, {nch} chunks of {rows}: {NAME}={A} "
          f"{np.median(ts[A])*1e3:.3f} ms, {NAME}={B} {np.median(ts[B])*1e3:.3f} ms, "
          f"paired ratio {ratio:.3f}, same bits {same}", flush=True)
