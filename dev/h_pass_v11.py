"""Where the three-pass h pass's time goes, one thread, against torch.mm (dev/products_v11.md).

    python dev/h_pass_v11.py 1024 [rounds] [sweep] [jh=2,4]   # N = K = M = 1024; NUMBA_CPU_NAME/FEATURES force an entry

x packed into micro-panels as the kernel does (pack_x), W by pack_w.  Times, medians (and bests) as
multiples of torch.mm's in the same rounds (the VM's speed drifts):
  pass      the kernel's items: forward_block with its epilogue (z, f, dy, g), as the driver
  nograd    the same with want_grads False: the epilogue sums f only
  epilogue, epi nograd   the same two with K = 0: the epilogue alone
  prod KC/JH  the product alone in a copy of forward_block's loop nest (x packed), KC and JH
            as given, items as the driver's
  l1        the micro-kernel on one A micro-panel and one B panel, over and over: its peak
"""
import sys, time, numpy as np, numba, torch
from numba import njit
from loopgrad.cpu import tiled, machine, jit
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1); torch.set_num_threads(1)
e = machine.entry(); t = e.tiles["float32"]; MR, NR, MC, KC = t.MR, t.NR, t.MC, t.KC
c = tiled.module("float32", e.isa)
mk, tile_add = c.mk, c.tile_add
N = K = M = int(sys.argv[1]); Mp = M


@njit(nogil=True)
def prod(g2, Xp2, Wp2, K, Mp, r0, rows, j0, nj, Ct2, KC):
    g, Xp, Wp, Ct = pointer(g2), pointer(Xp2), pointer(Wp2), pointer(Ct2)
    nir = rows // MR
    for pc in range(0, K, KC):
        kc = min(KC, K - pc)
        for jr in range(j0, j0 + nj):
            bo = (jr * K + pc) * NR
            for ir in range(nir):
                co = ir * MR * Mp + jr * NR
                ao = ((r0 // MR + ir) * K + pc) * MR
                if pc == 0:
                    mk(kc, Xp, ao, MR, 1, Wp, bo, NR, g, co, Mp)
                else:
                    mk(kc, Xp, ao, MR, 1, Wp, bo, NR, Ct, 0, NR)
                    tile_add(g, co, Mp, Ct, MR)


@njit(nogil=True)
def prod_swap(g2, Xp2, Wp2, K, Mp, r0, rows, j0, nj, Ct2, KC):
    # the same with ir outer, jr inner: A's micro-panel stays in L1, B's panels stream
    g, Xp, Wp, Ct = pointer(g2), pointer(Xp2), pointer(Wp2), pointer(Ct2)
    nir = rows // MR
    for pc in range(0, K, KC):
        kc = min(KC, K - pc)
        for ir in range(nir):
            ao = ((r0 // MR + ir) * K + pc) * MR
            for jr in range(j0, j0 + nj):
                bo = (jr * K + pc) * NR
                co = ir * MR * Mp + jr * NR
                if pc == 0:
                    mk(kc, Xp, ao, MR, 1, Wp, bo, NR, g, co, Mp)
                else:
                    mk(kc, Xp, ao, MR, 1, Wp, bo, NR, Ct, 0, NR)
                    tile_add(g, co, Mp, Ct, MR)


@njit(nogil=True)
def l1(reps, Xp2, Wp2, Ct2, KC):
    Xp, Wp, Ct = pointer(Xp2), pointer(Wp2), pointer(Ct2)
    for r in range(reps):
        mk(KC, Xp, 0, MR, 1, Wp, 0, NR, Ct, 0, NR)


rng = np.random.default_rng(0)
x = rng.standard_normal(N * K, dtype=np.float32); W = rng.standard_normal(K * M, dtype=np.float32)
y = rng.standard_normal(N * M, dtype=np.float32)
Wp = np.empty(K * Mp, np.float32); c.pack_w(Wp, W, K, M, 0, K)
Xp = np.empty((N + MR - 1) // MR * MR * K, np.float32)
for ir in range((N + MR - 1) // MR):
    c.pack_x(Xp, x, N, K, ir)
g = np.empty(N * Mp, np.float32); dy = np.empty(N * M, np.float32)
Ct = np.empty(MR * NR, np.float32); Ap = np.empty(MC * KC, np.float32)
nb, nh = N // MC, Mp // NR


def items(JH):
    gh = (nh + JH - 1) // JH
    return [(i // gh * MC, i % gh * JH, min(JH, nh - i % gh * JH)) for i in range(nb * gh)]


def run_pass(want, K=K, m=c):  # K = 0: the epilogue alone
    for r0, j0, nj in items(c.JH):
        m.forward_block(g[r0 * Mp:], dy, x, Wp, y, 0.0, K, M, Mp, r0, MC, j0, nj, Ap, Ct, want,
                      0, Xp)


variants = {"pass": lambda: run_pass(True), "nograd": lambda: run_pass(False),
            "epilogue": lambda: run_pass(True, 0), "epi nograd": lambda: run_pass(False, 0)}
for kc in (KC,) + ((KC // 2, 2 * KC) if 'sweep' in sys.argv else ()):
    jhs = [a[3:] for a in sys.argv if a.startswith("jh=")]
    for jh in tuple(int(j) for j in jhs[0].split(",")) if jhs else \
            (c.JH,) + ((2 * c.JH, 16) if 'sweep' in sys.argv else ()):
        def v(kc=kc, jh=jh):
            for r0, j0, nj in items(jh):
                prod(g[r0 * Mp:], Xp, Wp, K, Mp, r0, MC, j0, nj, Ct, kc)
        variants[f"prod {kc}/{jh}"] = v
        def v(kc=kc, jh=jh):
            for r0, j0, nj in items(jh):
                prod_swap(g[r0 * Mp:], Xp, Wp, K, Mp, r0, MC, j0, nj, Ct, kc)
        variants[f"swap {kc}/{jh}"] = v
reps = (nb * MC // MR) * nh * (K // KC)
variants["l1"] = lambda: l1(reps, Xp, Wp, Ct, KC)
for f in variants.values():
    f()
X = torch.from_numpy(x.reshape(N, K)[:nb * MC]); Wt = torch.from_numpy(W.reshape(K, M))
for r in range(3):
    torch.mm(X, Wt)
res = {k: [] for k in variants}
tm = []
for r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 15):
    t0 = time.perf_counter(); torch.mm(X, Wt); tm.append(time.perf_counter() - t0)
    for k, f in variants.items():
        t0 = time.perf_counter(); f(); res[k].append(time.perf_counter() - t0)
fl = 2 * nb * MC * K * M
print(f"{machine.target()['cpu_name']} {e.isa} float32 {MR}x{NR} MC {MC} KC {KC} JH {c.JH}, "
      f"{N}^3, one thread: torch.mm {fl / np.median(tm) / 1e9:.0f} GF/s (best {fl / min(tm) / 1e9:.0f})")
for k in variants:
    print(f"  {k:14s} {np.median(res[k]) / np.median(tm):.2f} x mm (best {min(res[k]) / min(tm):.2f})")
# ratios round by round (the variants of a round ran next to each other)
for a, b in (("pass", f"prod {KC}/{c.JH}"), ("nograd", f"prod {KC}/{c.JH}"),
             (f"swap {KC}/{c.JH}", f"prod {KC}/{c.JH}")):
    r = np.array(res[a]) / np.array(res[b])
    print(f"  {a} / {b}, paired by round: median {np.median(r):.3f} ({r.min():.3f}-{r.max():.3f})")
