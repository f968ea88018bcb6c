"""The fused kernel's parallel driver with its per-chunk body compiled once, as a C function
called by its address (intrinsics.call, as chunks.py calls the skinny rows), against
tiled.kernel's driver, whose gufunc links and optimizes the pieces again.  Both texts come
from the fused driver's own (nests.py through tiled._nests): its prange loop's body as the
chunk's function, the rest as the driver around the call
(dev/products_v56.md 57e, 57f).  Times both compiles on an empty cache, checks the outputs
bitwise at a few shapes and times the two kernels in alternation.

    [ISA env] python dev/chunk_call_v56.py [float32|float64] [NxKxM ...]
"""
import os, re, sys, tempfile, time
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="lgcc")
import numpy as np, numba  # noqa: E401
from numba import cfunc, carray, types as nt
from loopgrad.cpu import jit, machine, tiled
from loopgrad.cpu.intrinsics import call, pointer

v = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1][0].isdigit() else "float32"
shapes = [a for a in sys.argv[1:] if a[0].isdigit()] or ["100000x24x40", "20000x64x64",
                                                          "3000x17x33"]
isa = machine.entry().isa
t = time.perf_counter()
fu = tiled.module(v, isa, "fused")
print(f"{isa} {v}: modules {time.perf_counter() - t:.2f} s")
T = fu.T
P, P64, I = nt.CPointer(nt.float32 if v.startswith("float32") else nt.float64), \
    nt.CPointer(nt.float64), nt.int64

# the fused driver's text (tiled._nests, as shaped.py takes it): its prange loop's body
# becomes one chunk's function, and the driver calls that by its address instead
part = tiled._nests("fused")
lines = part[re.search(r"^def _grads_fused_parallel\(", part, re.M).start():].split("\n")
head = lines.index("    for c in prange(nc):")
tail = lines.index("        fc[c] = f")
body = "\n".join(line[4:] for line in lines[head + 1:tail])
SRC = """
def _chunk(c, dxp, dyp, xp, yp, Wpp, Wtpp, partp, N, K, M, a0, R, want):
    # the driver's values its loop body reads, and its arrays from their pointers
    Mp = (M + NR - 1) // NR * NR
    Kp = (K + NR - 1) // NR * NR
    wdx, wdw, wdy = (want & WANT_DX) != 0, (want & WANT_DW) != 0, (want & WANT_DY) != 0
    wg = wdx or wdw
    stream = (want & STREAM) != 0
    dx = carray(dxp, N * K if wdx else 0)
    dy = carray(dyp, N * M if wdy else 0)
    x = carray(xp, N * K)
    y = carray(yp, N * M)
    Wp = carray(Wpp, K * Mp)
    Wtp = carray(Wtpp, M * Kp if wdx else 0)
    part = carray(partp, (c + 1) * K * Mp if wdw else 0)
    lg = g_stride(M, Mp)
    tr = dw_transposed(K, M)
    stage = STAGE_PANELS and stream and wdx and Kp // NR >= STAGE_PANELS
""" + body + """
    return f


""" + "\n".join(lines[:head + 1]).replace(
    "def _grads_fused_parallel(", "def _driver(chunk, ", 1) + """
        fc[c] = call(chunk, c, pointer(dx), pointer(dy), pointer(x), pointer(y), pointer(Wp),
                     pointer(Wtp), pointer(part), N, K, M, a0, R, want)
""" + "\n".join(lines[tail + 1:])
ns = dict(vars(fu), carray=carray, call=call)
exec(compile(SRC, "<chunk_call_v56>", "exec"), ns)
settings = lambda: jit.settings(slp=True, vector_bits=machine.entry().vector_bits)  # _kernel
with settings():
    t = time.perf_counter()
    chunk = cfunc(nt.float64(I, P, P, P, P, P, P, P64, I, I, I, nt.float64, I, I),
                  nopython=True)(ns["_chunk"])
    t_chunk = time.perf_counter() - t
drv = numba.njit(parallel=True, nogil=True)(ns["_driver"])
ser = numba.njit(nogil=True)(ns["_driver"])  # prange runs as range without parallel=True
t = time.perf_counter()
kern = tiled.kernel("grads_fused", v, True)
print(f"compile: tiled.kernel's parallel driver {time.perf_counter() - t:.2f} s; "
      f"the chunk body {t_chunk:.2f} s", flush=True)
first = True
for s in shapes:
    N, K, M = (int(q) for q in s.split("x"))
    name, _, nchunks, R = tiled.plan(N, K, M, T)
    if name != "grads_fused":
        print(s, "plans", name)
        continue
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(sh).astype(T) for sh in ((N, K), (K, M), (N, M)))
    n64, nT = tiled.scratch("grads_fused", v, N, K, M, nchunks)
    ws64, wsT = np.empty(n64), np.empty(nT, T)
    runs = {"old": lambda o: kern(*o, x, W, y, 0.5, nchunks, R, ws64, wsT, 7),
            "new": lambda o: drv(chunk.address, *o, x, W, y, 0.5, nchunks, R, ws64, wsT, 7),
            "new serial": lambda o: ser(chunk.address, *o, x, W, y, 0.5, nchunks, R, ws64,
                                        wsT, 7)}
    outs = {}
    for tag, run in runs.items():  # outputs poisoned first; the new drivers' first calls
        o = (np.full((N, K), np.nan, T), np.full((K, M), np.nan, T), np.full((N, M), np.nan, T))
        with settings():
            t = time.perf_counter(); f = run(o); dt = time.perf_counter() - t
        if first and tag != "old":
            print(f"compile: the {tag} driver (its first call) {dt:.2f} s", flush=True)
        outs[tag] = (f, o)
    first = False
    same = all(outs[tag][0] == outs["old"][0] and all(
        np.array_equal(a, b) for a, b in zip(outs[tag][1], outs["old"][1]))
        for tag in ("new", "new serial"))
    ts = {"old": [], "new": []}
    for _ in range(max(5, int(3e8 / (6 * N * K * M)))):
        for tag in ts:
            t = time.perf_counter(); runs[tag](outs[tag][1]); ts[tag].append(time.perf_counter() - t)
    print(f"{s}: bitwise the same {same}; best ms old {min(ts['old']) * 1e3:.3f} new "
          f"{min(ts['new']) * 1e3:.3f}, median {np.median(ts['old']) * 1e3:.3f} / "
          f"{np.median(ts['new']) * 1e3:.3f}")
