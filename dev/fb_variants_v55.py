"""forward_block's text compiled again beside the tile module's, with edits, and timed
against it and the shape's kernel's (dev/products_v55.md 56a).  One thread, x and y in L2
(REP passes over N rows, as dev/h_piece_v54.py), h without grads, ns a row (best).

    [REP=25] python dev/fb_variants_v55.py N K M [rounds] [edits.py ...]

Each edits file defines EDITS = [(old, new), ...], replacements in forward_block's text
(nests.py; each `old` must occur); its name labels the column.  The copies compile with
forward_block's own signature and settings, in the generated module's globals, so an
empty EDITS list times the same text as the module's (the 'copy' column: a check on the
method).  'shaped' is the kernel compiled for the shape (shaped.py), which passes want_grads
True: it writes dy and g as well.  'calls' is the micro-kernel calls alone over the same
tiles (x in place, straight into g, mktc on a cut last panel; no wide panels), with the
epilogue and x's and y's rows asked for ahead as forward_block does.
"""
import os, re, sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import jit, machine, shaped, tiled
from loopgrad.cpu.intrinsics import pointer, prefetch_l2, zeros16
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1:4])
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 7
files = sys.argv[5:]
REP = int(os.environ.get("REP", "25"))
e = machine.entry(); T = np.float32
v = tiled.variant(K, M, T)
c = tiled.module(v, e.isa)
MR, NR, MC, KC, CUT = c.MR, c.NR, c.MC, c.KC, c.CUT
Mp = -(-M // NR) * NR
LG = M if Mp != M else Mp
nj = Mp // NR
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=T).reshape(-1) for s in ((N, K), (K, M), (N, M)))
dy, Wp = np.empty(N * M, T), np.empty(K * Mp, T)
for jr in range(nj):
    c.pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))

# forward_block's text with its decorator, from the generated module's source
src = tiled._nests("common")
start = src.index("@njit(nt.float64(A1, A1, R1, A1, R1, nt.float64")
text = src[start:src.index("\n@njit", start + 10)].replace("cache=True", "cache=False")
copies = {"copy": text}
for f in files:
    ns = {}
    exec(open(f).read(), ns)
    t = text
    for old, new in ns["EDITS"]:
        assert old in t, (f, old[:60])
        t = t.replace(old, new)
    copies[os.path.splitext(os.path.basename(f))[0]] = t
fns = {"generic": c.forward_block}
shaped.kernel(v, K, M, False)
fns["shaped"] = jit.load(*shaped._generated(v, e.isa, K, M)).forward_block
for name, t in copies.items():
    ns = dict(vars(c))
    exec(compile(t.replace("def forward_block(", "def fb_copy("), name, "exec"), ns)
    fns[name] = ns["fb_copy"]


@njit
def run(fb, x, Wp, y, dy, sh):
    # the shape and flags from an array: at run time, as the fused driver passes them
    Ap = np.empty(MC * KC, T); Ct = np.empty(2 * MR * NR, T); g = np.zeros(MC * LG + NR, T)
    f = 0.0
    for b in range(REP * ((N + MC - 1) // MC)):
        r0 = b % ((N + MC - 1) // MC) * MC
        f += fb(g, dy, x, Wp, y, 0.0, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], r0,
                min(MC, N - r0), sh[6], sh[7], Ap, Ct, sh[8] > 0, sh[6], sh[6], sh[8] > 0,
                sh[6], sh[6], Ap, Ap, sh[6], sh[6], sh[6])
    return f


@njit
def calls(x, Wp, y, dy):
    Ap = np.empty(MC * KC, T); g = np.zeros(MC * LG + NR, T)
    xp, gp, Wpp, yp, dyp = pointer(x), pointer(g), pointer(Wp), pointer(y), pointer(dy)
    fs = zeros16()
    for b in range(REP * ((N + MC - 1) // MC)):
        r0 = b % ((N + MC - 1) // MC) * MC
        rows = min(MC, N - r0)
        for jr in range(nj):
            for ir in range(rows // MR):
                if jr == 0 and K <= c.PF_K:
                    for q in range(0, MR * K, c.LINE):
                        prefetch_l2(xp, (r0 + ir * MR) * K + c.PF_AHEAD + q)
                    for i in range(MR if c.PF_Y else 0):
                        for q in range(0, M, c.LINE):
                            prefetch_l2(yp, (r0 + ir * MR + i + c.PF_Y) * M + q)
                a, co = (r0 + ir * MR) * K, ir * MR * LG + jr * NR
                if CUT and 0 < LG - jr * NR < NR:
                    c.mktc(LG - jr * NR, K, xp, a, 1, K, Wpp, jr * K * NR, NR, gp, co, LG)
                else:
                    c.mk(K, xp, a, 1, K, Wpp, jr * K * NR, NR, gp, co, LG)
        if LG == M:
            c.epilogue_rows(gp, 0, LG, NR, yp, r0 * M, M, dyp, r0 * M, 1, rows * M, 0.0, False,
                            fs, False)
        else:
            for n in range(rows):
                c.epilogue_rows(gp, n * LG, LG, NR, yp, (r0 + n) * M, M, dyp, (r0 + n) * M, 1, M,
                                0.0, False, fs, False)
    return fs[0]


sh = np.array([K, M, Mp, LG, NR, KC, 0, nj, 0], np.int64)
for fb in fns.values():
    run(fb, x, Wp, y, dy, sh)
calls(x, Wp, y, dy)
ts = {k: [] for k in list(fns) + ["calls"]}
for r in range(rounds):
    for k, fb in fns.items():
        t = time.perf_counter(); run(fb, x, Wp, y, dy, sh); ts[k].append(time.perf_counter() - t)
    t = time.perf_counter(); calls(x, Wp, y, dy); ts["calls"].append(time.perf_counter() - t)
print(f"{N}x{K}x{M} ({e.isa}, {v} {MR}x{NR}, MC {MC}), one thread, ns a row (best): "
      + " ".join(f"{k} {min(t) / (REP * N) * 1e9:.2f}" for k, t in ts.items()))
