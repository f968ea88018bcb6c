"""The three-pass kernel's h items (forward_block's loops, one thread, as the driver runs
them) as variants, each compiled as a function of its own: EPI (the epilogue after the
item), PACK (x packed per KC block), ADD (tile_add for pc > 0), MK (the micro-kernel
calls), HOT (1: y and dy at the first rows, 2: y, 3: dy), PFY (y's tiles to L2 in the last
block; 3: NTA), PFB (the next B panel to L2 or L1), PFX (the next block's x rows to L2),
EPIT / EPIP (the epilogue tile by tile, or panel by panel, right after its last KC block;
f's partials shared, so only the time means anything) (dev/products_v24.md 25a, 25c);
PIPE (x's next KC block packed during this block's calls, a micro-panel every PIPE calls),
PONCE (the row block's x packed once for all its column groups: with ORDER=rows only, the
items row block by row block), PACKX (the pack's pieces), PACKNTA (the next micro-panel's
rows asked for first), INPLACE (x read in place) (dev/products_v25.md 26c, 26d, 26g); the
`hot` set: y's or dy's rows hot against the prefetch of y (dev/products_v35.md 36c).

    [ORDER=rows] [DTYPE=float64] python dev/h_parts_v24.py NxKxM [rounds] [parts|prefetch|epilogue|pipe|once|packx|nta|inplace|hot]

DTYPE=float64: the float64 tile's items over its KC3 steps (dev/products_v38.md 39a; the
sets that write float32 zeros themselves, once and packx, are float32's alone).
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu import intrinsics, tiled, machine
from loopgrad.cpu.intrinsics import pointer
numba.set_num_threads(1)
N, K, M = (int(v) for v in sys.argv[1].split("x"))
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
DT = __import__("os").environ.get("DTYPE", "float32")
e = machine.entry(); c = tiled.module(DT, e.isa)
MR, NR, MC, KC, JH = c.MR, c.NR, c.MC, c.KC3 if DT == "float64" else c.KC, c.JH
mk, pack_a, tile_add, epilogue_rows = c.mk, c.pack_a, c.tile_add, c.epilogue_rows
T = np.dtype(DT).type
SRC = '''
@njit
def fb(g2, dy2, x2, Wp2, y2, K, M, Mp, ldg, pstr, r0, rows, j0, nj, Ap2, Ct2, gp2, pr0, pj0, prows):
    g, dy, x, Wp, y = pointer(g2), pointer(dy2), pointer(x2), pointer(Wp2), pointer(y2)
    gp = pointer(gp2)  # PIPEEPI: the previous item's g, rows [pr0, pr0 + prows), panels from pj0
    pn = 0
    pcol0, pcol1 = pj0 * NR, min(M, (pj0 + nj) * NR)
    fsq2 = np.zeros(16)
    fsq = pointer(fsq2)
    Ap, Ct = pointer(Ap2), pointer(Ct2)
    fsp2 = np.zeros(16)
    fsp = pointer(fsp2)
    sink = np.float32(0.0)
    nir = (rows + MR - 1) // MR
    col0, col1 = j0 * NR, min(M, (j0 + nj) * NR)
    if PONCE and j0 == 0:  # 26c: all of the row block's K blocks, once for its groups
        for pc in range(0, K, KC):
            kc = min(KC, K - pc)
            for ir in range((rows + MR - 1) // MR):
                base = pc * MC + ir * kc * MR
                for p in range(kc):
                    for i in range(MR):
                        r = ir * MR + i
                        Ap[base + p * MR + i] = x[(r0 + r) * K + pc + p] if r < rows else np.float32(0.0)
    if PIPE:  # 26d: block 0 packed first; block b+1's micro-panels during block b's calls
        pack_a(Ap, x, K, r0, rows, 0, min(KC, K))
    for pc in range(0, K, KC):
        kc = min(KC, K - pc)
        if PACKX & 4:  # the pack's stores alone: its Ap block set to zero
            for i in range(((rows + MR - 1) // MR) * MR * kc):
                Ap[i] = np.float32(0.0)
        elif PACKX & 8:  # the pack's loads alone: the block of x copied, NR at a time, to one line
            for i in range(rows):
                for p in range(0, kc - NR + 1, NR):
                    cpr(Ct, 0, x, (r0 + i) * K + pc + p)
        elif PACKNTA:  # 26g: each micro-panel packed after asking for the next one's rows
            nirp = (rows + MR - 1) // MR   # (PACKNTA 1: prefetchnta, 2: to L2, 3: to L1)
            for q in range(nirp):
                if q + 1 < nirp:
                    for i in range(MR):
                        rr = (q + 1) * MR + i
                        if rr < rows:
                            for l in range(0, kc, 16):
                                if PACKNTA == 1:
                                    prefetch_nta(x, (r0 + rr) * K + pc + l)
                                elif PACKNTA == 2:
                                    prefetch_l2(x, (r0 + rr) * K + pc + l)
                                else:
                                    prefetch_l1(x, (r0 + rr) * K + pc + l)
                pack_a(pointer(Ap2[q * kc * MR:]), x, K, r0 + q * MR, min(MR, rows - q * MR), pc, kc)
        elif PACK:
            # PACKX 1: from the first row block's x (hot); PACKX 2: into a second buffer
            # that the micro-kernel does not read; 3: both (26g)
            pack_a(pointer(Ap2[MC * KC:]) if PACKX & 2 else Ap, x, K, 0 if PACKX & 1 else r0,
                   rows, pc, kc)
        for jr in range(j0, j0 + nj):
            bo = (jr * K + pc) * NR
            for ir in range(nir):
                co = ir * MR * ldg + jr * pstr
                C, c0, ldc = (g, co, ldg) if pc == 0 else (Ct, 0, NR)
                if PFY and pc + kc == K:
                    for i in range(MR):
                        ya = (r0 + ir * MR + i) * M + jr * NR
                        for q in range(0, NR, 16):
                            if PFY == 3:
                                prefetch_nta(y, ya + q)
                            else:
                                prefetch_l2(y, ya + q)
                if PFB:
                    # the next panel's B (this block's jr + 1) into L2 over this panel's calls
                    if jr + 1 < j0 + nj:
                        nb_ = ((jr + 1) * K + pc) * NR
                        per = (kc * NR // 16 + nir - 1) // nir
                        for l in range(ir * per, min(ir * per + per, kc * NR // 16)):
                            PFBF(Wp, nb_ + l * 16)
                if PFX:
                    # the next block's x rows (this item's next KC block, or the next
                    # row block's first) into L2, 16 lines a call
                    call = (jr - j0) * nir + ir
                    if pc + kc < K:
                        rn, pn = r0, pc + kc
                    else:
                        rn, pn = r0 + MC, 0
                    for l in range(call * PFX, call * PFX + PFX):
                        row = l // 16
                        if row < MC and rn + row < NROWS:
                            PFF(x, (rn + row) * K + pn + (l % 16) * 16)
                if PIPE and pc + kc < K:
                    call = (jr - j0) * nir + ir
                    q = call // PIPE
                    if call % PIPE == 0 and q < nir:
                        pcn = pc + kc
                        kcn = min(KC, K - pcn)
                        boff = ((pcn // KC) % 2) * MC * KC + q * kcn * MR
                        pack_a(pointer(Ap2[boff:]), x, K, r0 + q * MR, min(MR, rows - q * MR), pcn, kcn)
                if INPLACE:  # 26g: x read in place, rows K apart (the fused kernel's way)
                    mk(kc, x, (r0 + ir * MR) * K + pc, 1, K, Wp, bo, NR, C, c0, ldc)
                elif MK:
                    abuf = ((pc // KC) % 2) * MC * KC if PIPE else 0
                    mk(kc, Ap, abuf + (pc * MC if PONCE else 0) + ir * kc * MR, MR, 1, Wp, bo, NR, C, c0, ldc)
                if PIPEEPI and pn < prows:  # a row of the previous item's epilogue
                    pa = (pr0 + pn) * M + pcol0
                    epilogue_rows(gp, pj0 * pstr + pn * ldg, ldg, pstr, y, pa, M, dy, pa, 1,
                                  pcol1 - pcol0, 0.0, True, fsq, STRM == 1)
                    pn += 1
                if pc > 0 and ADD:
                    tile_add(g, co, ldg, Ct, MR)
                if EPIT and pc + kc == K:  # the tile's epilogue, 8 rows × 32 columns
                    ya = (r0 + ir * MR) * M + jr * NR
                    epilogue_rows(g, co, ldg, pstr, y, ya, M, dy, ya, min(MR, rows - ir * MR),
                                  min(NR, M - jr * NR), 0.0, True, fsp, False)
            if EPIP and pc + kc == K:  # the panel's 32 columns of the item's rows
                for n in range(rows):
                    ya = (r0 + n) * M + jr * NR
                    epilogue_rows(g, jr * pstr + n * ldg, ldg, pstr, y, ya, M, dy, ya, 1,
                                  min(NR, M - jr * NR), 0.0, True, fsp, False)
    fs2 = np.zeros(16)
    fs = pointer(fs2)
    yb = r0 * M + col0
    db = yb
    if HOT == 1 or HOT == 2:
        yb = col0
    if HOT == 1 or HOT == 3:
        db = col0
    while PIPEEPI and pn < prows:
        pa = (pr0 + pn) * M + pcol0
        epilogue_rows(gp, pj0 * pstr + pn * ldg, ldg, pstr, y, pa, M, dy, pa, 1,
                      pcol1 - pcol0, 0.0, True, fsq, STRM == 1)
        pn += 1
    if EPI and not PIPEEPI:
        for n in range(rows):
            epilogue_rows(g, j0 * pstr + n * ldg, ldg, pstr, y, yb + n * M, M, dy,
                          db + n * M, 1, col1 - col0, 0.0, True, fs, STRM == 1)
    return fs[0] + sink
'''
FLAGS = dict(PIPEEPI=0, STRM=0, PACKNTA=0, INPLACE=0, PACKX=0, PIPE=0, PONCE=0, PACK=1, MK=1, ADD=1, EPI=1, HOT=0, PFY=0, PFB=0, PFX=0, EPIT=0, EPIP=0)


def build(PFF=None, PFBF=None, **flags):
    # the h items with FLAGS changed by `flags`; PFF, PFBF: PFX's and PFB's prefetch
    ns = dict(njit=njit, pointer=pointer, np=np, cpr=c.cpr, MR=MR, NR=NR, KC=KC, MC=MC, NROWS=N, mk=mk,
              pack_a=pack_a, tile_add=tile_add, epilogue_rows=epilogue_rows,
              prefetch_l2=c.prefetch_l2, prefetch_nta=intrinsics._prefetcher(0), prefetch_l1=c.prefetch,
              PFF=PFF or c.prefetch_l2, PFBF=PFBF or c.prefetch_l2, **{**FLAGS, **flags})
    exec(SRC, ns)
    return ns["fb"]


SETS = {
    "parts": lambda: {"all": build(), "no epi": build(EPI=0), "no add": build(EPI=0, ADD=0),
                      "no pack": build(EPI=0, ADD=0, PACK=0), "pack only": build(EPI=0, ADD=0, MK=0),
                      "epi only": build(PACK=0, MK=0, ADD=0), "epi only, hot": build(PACK=0, MK=0, ADD=0, HOT=1),
                      "y dy hot": build(HOT=1)},
    "prefetch": lambda: {"all": build(), "y to L2": build(PFY=1), "y NTA": build(PFY=3),
                         "pfb L2": build(PFB=1), "pfb L1": build(PFB=1, PFBF=c.prefetch),
                         "pfx 16 L2": build(PFX=16)},
    "pipe": lambda: {"all": build(), "pipe 1": build(PACK=0, PIPE=1), "pipe 4": build(PACK=0, PIPE=4),
                     "pipe 8": build(PACK=0, PIPE=8), "no pack": build(PACK=0)},
    "packx": lambda: {"all": build(), "pack hot x": build(PACKX=1), "pack elsewhere": build(PACKX=2),
                      "pack hot x elsewhere": build(PACKX=3), "no pack": build(PACK=0),
                      "pack only": build(EPI=0, ADD=0, MK=0), "stores only": build(PACKX=4),
                      "loads only": build(PACKX=8), "stores alone": build(PACKX=4, EPI=0, ADD=0, MK=0),
                      "loads alone": build(PACKX=8, EPI=0, ADD=0, MK=0)},
    "inplace": lambda: {"all": build(), "x in place": build(PACK=0, INPLACE=1), "no pack": build(PACK=0)},
    "nta": lambda: {"all": build(), "pack, next NTA": build(PACKNTA=1), "pack, next L2": build(PACKNTA=2),
                    "pack, next L1": build(PACKNTA=3), "no pack": build(PACK=0)},
    "hot": lambda: {"all": build(), "y hot": build(HOT=2), "dy hot": build(HOT=3),
                    "both hot": build(HOT=1), "y to L2": build(PFY=1), "no epi": build(EPI=0),
                    "dy streamed": build(STRM=1), "dy streamed, y hot": build(STRM=1, HOT=2),
                    "epilogue a row a call, next item": build(STRM=1, PIPEEPI=1)},
    "once": lambda: {"all": build(), "pack once": build(PACK=0, PONCE=1), "no pack": build(PACK=0)},
    "epilogue": lambda: {"all": build(), "no epi": build(EPI=0), "epi by tile": build(EPI=0, EPIT=1),
                         "epi by panel": build(EPI=0, EPIP=1)},
}
variants = SETS[sys.argv[3] if len(sys.argv) > 3 else "parts"]()
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=T).reshape(-1) for s in ((N, K), (K, M), (N, M)))
dy = np.empty(N * M, T)
Mp = (M + NR - 1) // NR * NR; Np = (N + MR - 1) // MR * MR
Wp = np.empty(K * Mp, T)
for jr in range(Mp // NR):
    c.pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
g = np.empty(Np * Mp, T)
ldg, pstr = NR, Np * NR
Ap, Ct = np.zeros(MC * max(K, 2 * KC), T), np.empty(MR * NR, T)
nb = (N + MC - 1) // MC; nh = Mp // NR; gh = (nh + JH - 1) // JH
ROWS_FIRST = __import__("os").environ.get("ORDER") == "rows"  # 26c: items row block by row block


def items(fb):
    prev = (0, 0, 0)  # PIPEEPI: the previous item's rows, first panel and row count
    for item in range(nb * gh):
        r0, j0 = item % nb * MC, item // nb * JH
        if ROWS_FIRST:
            r0, j0 = item // gh * MC, item % gh * JH
        fb(g[r0 * ldg:], dy, x, Wp, y, K, M, Mp, ldg, pstr, r0, min(MC, N - r0), j0, min(JH, nh - j0), Ap, Ct,
           g[prev[0] * ldg:], prev[0], prev[1], prev[2])
        prev = (r0, j0, min(MC, N - r0))
    fb(g, dy, x, Wp, y, K, M, Mp, ldg, pstr, 0, 0, 0, 0, Ap, Ct, g[prev[0] * ldg:], prev[0], prev[1], prev[2])
for f in variants.values(): items(f)
ts = {k: [] for k in variants}
for r in range(rounds):
    for k, f in variants.items():
        t = time.perf_counter(); items(f); ts[k].append(time.perf_counter() - t)
RATE = 180 if DT == "float32" else 90  # GFLOP/s: about the micro-kernel's in-L1 rate
print(sys.argv[1], DT, "; ".join(f"{k} {np.median(v)*1e3:.2f}" for k, v in ts.items()),
      f"ms; mk ideal at {RATE}:", f"{2*N*K*M/RATE/1e6:.2f}")
