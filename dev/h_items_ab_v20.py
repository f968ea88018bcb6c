"""The three-pass kernel's h items alone (forward_block as the driver calls it, x packed, g by
panels, one thread), built two ways over a setting of loopgrad.cpu.tiled and called
alternately (dev/products_v20.md 21e, 21f).

    SET=NAME=A,B python dev/h_items_ab_v20.py NxKxM [rounds=9]
"""
import ast, os, sys, time
import numpy as np, numba
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x"))
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
NAME, values = os.environ["SET"].split("=")
A, B = (ast.literal_eval(v) for v in values.split(","))
e = machine.entry()
mods = {}
for v in (A, B):
    setattr(tiled, NAME, v)
    for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
        f.cache_clear()
    mods[v] = tiled.module("float32", e.isa)
c = mods[B]
MR, NR, MC, KC, JH = c.MR, c.NR, c.MC, c.KC, c.JH
T = np.float32
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=T).reshape(-1) for s in ((N, K), (K, M), (N, M)))
dy = np.empty(N * M, T)
Mp = (M + NR - 1) // NR * NR; Np = (N + MR - 1) // MR * MR
Wp = np.empty(K * Mp, T)
for jr in range(Mp // NR):
    c.pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
g = np.empty(Np * Mp, T)
ldg, pstr = NR, Np * NR
pack = c.packs_x(K, Mp)
Ap, Ct = np.empty(MC * KC, T), np.empty(MR * NR, T)
nb = (N + MC - 1) // MC; nh = Mp // NR; gh = (nh + JH - 1) // JH


def items(m):
    f = 0.0
    for item in range(nb * gh):
        r0, j0 = item % nb * MC, item // nb * JH
        f += m.forward_block(g[r0 * ldg:], dy, x, Wp, y, 0.0, K, M, Mp, ldg, pstr, KC, r0,
                             min(MC, N - r0), j0, min(JH, nh - j0), Ap, Ct, True, 0, pack, False)
    return f


fs = {v: items(m) for v, m in mods.items()}
ts = {v: [] for v in mods}
for r in range(rounds):
    for v in ((A, B) if r % 2 else (B, A)):
        t = time.perf_counter(); items(mods[v]); ts[v].append(time.perf_counter() - t)
print(f"{sys.argv[1]} h items, one thread, ms: {NAME}={A} {np.median(ts[A])*1e3:.2f}, {NAME}={B} "
      f"{np.median(ts[B])*1e3:.2f}, paired ratio {np.median(np.array(ts[A]) / np.array(ts[B])):.3f}, "
      f"same f {fs[A] == fs[B]}")
