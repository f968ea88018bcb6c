"""The three-pass kernel built two ways, both compiled in one process and called alternately
with the same arguments (dev/products_v19.md 20a–20l).

    [SET=PANELS=True,False] [THREADS=2] [DTYPE=float32] [WANT=7] python dev/three_ab_v19.py NxKxM ... [rounds=15]

SET=NAME=A,B: a setting of loopgrad.cpu.tiled that goes into the generated code (PANELS, H_COLS,
XT_TASK, ...; XA_GROUPS sets DTYPE's entry), KC3=A,B: the machine table's KC3 for DTYPE's tile, or HDR_NAME=A,B: a
literal of the generated header (tiled._HEADER's `NAME = ...` line, e.g. HDR_JB=4,8), or
TILE=6x32x96x256x128,12x16x96x256x0: DTYPE's tile in the machine table (MR×NR×MC×KC×KC3).  Prints, per shape,
each build's median ms, the paired median ratio A ÷ B, and whether they give the same bits.
WANT: the gradients asked, loopgrad._inputs's bits (4, dy alone: the h pass and its epilogue;
the outputs not asked are left unwritten: `same bits` then also compares what each build's held).
"""
import ast, os, sys, time
import numpy as np, numba
from loopgrad._inputs import WANT_ALL, STREAM
from loopgrad.cpu import tiled, machine

args = [a for a in sys.argv[1:] if "x" in a]
rounds = int(next((a for a in sys.argv[1:] if "x" not in a), 15))
numba.set_num_threads(int(os.environ.get("THREADS", 2)))
DT = np.dtype(os.environ.get("DTYPE", "float32"))
isa = machine.entry().isa
NAME, values = os.environ.get("SET", "PANELS=True,False").split("=")
A, B = (v if NAME == "TILE" else ast.literal_eval(v) for v in values.split(","))


_XA_GROUPS = dict(tiled.XA_GROUPS)


def setting(value):
    if NAME == "TILE":  # SET=TILE=6x32x96x256x128,12x16x96x256x0: DTYPE's tile (dev/products_v25.md 26f)
        machine.TABLE[isa].tiles[DT.name] = machine.Tile(*(int(v) for v in value.split("x")))
    elif NAME == "KC3":
        t = machine.TABLE[isa].tiles[DT.name]
        machine.TABLE[isa].tiles[DT.name] = machine.Tile(t.MR, t.NR, t.MC, t.KC, value)
    elif NAME.startswith("HDR_"):  # a literal of the generated header: SET=HDR_JB=4,8
        import re
        key = NAME[4:]
        tiled._HEADER = re.sub(rf"^{key} = \S+", f"{key} = {value}", tiled._HEADER, flags=re.M)
    elif NAME == "XA_GROUPS":  # by dtype size (dev/products_v38.md 39a): DTYPE's entry
        setattr(tiled, NAME, {**_XA_GROUPS, DT.itemsize: value})
    else:
        setattr(tiled, NAME, value)
    for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
        f.cache_clear()


def build(value):
    setting(value)
    return {v: tiled.kernel("grads", v, True)
            for v in {tiled.variant(*(int(s) for s in a.split("x")[1:]), DT) for a in args}}


kern = {A: build(A), B: build(B)}
for a in args:
    N, K, M = (int(s) for s in a.split("x"))
    v = tiled.variant(K, M, DT)
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(DT) for s in ((N, K), (K, M), (N, M)))
    sizes = []
    for value in (A, B):  # scratch for either build
        setting(value)
        sizes.append(tiled.scratch("grads", v, N, K, M, 1))
    ws64, wsT = np.empty(max(s[0] for s in sizes)), np.empty(max(s[1] for s in sizes), DT)
    outs = {p: [np.empty_like(x), np.empty_like(W), np.empty_like(y)] for p in kern}
    nthr = numba.get_num_threads()
    want = int(os.environ.get("WANT", WANT_ALL)) | STREAM  # WANT: the _inputs bits (WANT_DY alone: the h pass)
    call = {p: (lambda p=p: kern[p][v](*outs[p], x, W, y, 0.0, nthr, 1, ws64, wsT, want))
            for p in kern}
    fs = {p: call[p]() for p in kern}
    same = fs[A] == fs[B] and all(np.array_equal(u, w) for u, w in zip(outs[A], outs[B]))
    ts = {p: [] for p in kern}
    for r in range(rounds):
        for p in (A, B) if r % 2 else (B, A):
            s = time.perf_counter(); call[p](); ts[p].append(time.perf_counter() - s)
    ratio = np.median(np.array(ts[A]) / np.array(ts[B]))
    print(f"{a} {v} {nthr} threads: {NAME}={A} {np.median(ts[A])*1e3:.2f} ms, {NAME}={B} "
          f"{np.median(ts[B])*1e3:.2f} ms, paired ratio {ratio:.3f}, same bits {same}", flush=True)
