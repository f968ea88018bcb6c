"""The h product alone, x read in place against x packed into MR-row panels (dev/products_v9.md 12a).

    python dev/alias_v9.py 1024 [rounds] [variants]    # N=K=M=1024; one thread; entry from the CPU
    python dev/alias_v9.py 1000x1024x1000 0 inplace    # one call of one variant (for cachegrind)

The items of the three-pass driver (MC rows × JH column panels, tiled.py), the
micro-kernel and W's packed panels of the machine table's entry in use (force
one with NUMBA_CPU_NAME / NUMBA_CPU_FEATURES, see `loopgrad bench --isa`).
`packed`: x copied into MR-row micro-panels once (Xp[(ir·K + p)·MR + i]), outside
the timing, then the same items read it with lda = MR, ldi = 1.  Prints each
variant's GFLOP/s (median of the rounds) and checks both give the same bits.
"""
import sys, time
import numpy as np, numba
from numba import njit
from loopgrad.cpu import tiled, jit, machine
from loopgrad.cpu.intrinsics import pointer

numba.set_num_threads(1)
a = sys.argv[1]
N, K, M = (int(v) for v in a.split("x")) if "x" in a else (int(a),) * 3
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
variants = sys.argv[3].split(",") if len(sys.argv) > 3 else ["inplace", "packed"]
e = machine.entry()
t = e.tiles["float32"]
MR, NR, MC, KC = t.MR, t.NR, t.MC, t.KC
JH = 4
c = tiled.module("float32", e.isa)
mk, tile_add = c.mk, c.tile_add


@njit(nogil=True)
def h_item(g2, A2, Wp2, K, Mp, r0, rows, j0, nj, Ct2, packed):
    g, A, Wp, Ct = pointer(g2), pointer(A2), pointer(Wp2), pointer(Ct2)
    for pc in range(0, K, KC):
        kc = min(KC, K - pc)
        for jr in range(j0, j0 + nj):
            bo = (jr * K + pc) * NR
            for ir in range(rows // MR):
                co = ir * MR * Mp + jr * NR
                C, c0, ldc = (g, co, Mp) if pc == 0 else (Ct, 0, NR)
                if packed:
                    mk(kc, A, ((r0 // MR + ir) * K + pc) * MR, MR, 1, Wp, bo, NR, C, c0, ldc)
                else:
                    mk(kc, A, (r0 + ir * MR) * K + pc, 1, K, Wp, bo, NR, C, c0, ldc)
                if pc > 0:
                    tile_add(g, co, Mp, Ct, MR)


N = N // MC * MC  # whole blocks of whole panels: no edge code
Mp = -(-M // NR) * NR
rng = np.random.default_rng(0)
x = rng.standard_normal((N, K), dtype=np.float32).reshape(-1)
W = rng.standard_normal((K, M), dtype=np.float32).reshape(-1)
Wp = np.empty(K * Mp, np.float32)
c.pack_w(Wp, W, K, M, 0, K)
Xp = x.reshape(N // MR, MR, K).transpose(0, 2, 1).copy().reshape(-1)  # MR-row panels
g = np.empty(N * Mp, np.float32)
Ct = np.empty(MR * NR, np.float32)
nb, nh = N // MC, Mp // NR
gh = -(-nh // JH)


def run(v):
    packed = v == "packed"
    for item in range(nb * gh):
        r0, j0 = item // gh * MC, item % gh * JH
        h_item(g[r0 * Mp:], Xp if packed else x, Wp, K, Mp, r0, MC, j0, min(JH, nh - j0), Ct,
               packed)


with jit.settings(slp=True, vector_bits=e.vector_bits):
    outs = {}
    for v in variants:
        run(v)
        outs[v] = g.copy()
assert all(np.array_equal(outs[variants[0]], o) for o in outs.values())
if rounds == 0:
    run(variants[0])
    sys.exit()
res = {v: [] for v in variants}
for r in range(rounds):
    for v in variants:
        t0 = time.perf_counter()
        run(v)
        res[v].append(time.perf_counter() - t0)
fl = 2 * N * K * M
print(f"{e.isa} {MR}x{NR} {N}x{K}x{M}, one thread: " +
      "  ".join(f"{v} {fl / np.median(s) / 1e9:.1f} GF/s" for v, s in res.items()), flush=True)
