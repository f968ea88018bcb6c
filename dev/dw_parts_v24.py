"""The three-pass kernel's dW items at N×K×M, K = M (one thread, one chunk of KC blocks or
all of N's): pack_xt, dw_item as built, the micro-kernel alone over the same loops, and a
copy of dw_item (`dwv`) with its pieces switched by `mode` bits (1 part's prefetches, 2
the tile adds, 4 every add into one tile (hot), 8 the partial in the item's own region),
warm and with the caches flushed ("cold": 64 MiB touched first) (dev/products_v24.md 25a,
25b); last, `dwd`: each tile's blocks in turn into one hot float64 tile (26b).

    [KCD=256] [NT=7] python dev/dw_parts_v24.py K [kb_inner|kb_outer] [N]
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu.intrinsics import microkernel, pointer
from loopgrad.cpu import tiled, machine
numba.set_num_threads(1)
T = np.float32
N = K = M = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
if len(sys.argv) > 3: N = int(sys.argv[3])
v = tiled.variant(K, M, T)
th = tiled.module(v, machine.entry().isa, "three")
MR, NR, MC, KC = th.MR, th.NR, th.MC, int(__import__("os").environ.get("KCD", th.KC))
mk = microkernel("float32", MR, NR, 16)
Mp = (M + NR - 1) // NR * NR; Np = N
rng = np.random.default_rng(0)
x = rng.standard_normal(N * K).astype(T)
g = rng.standard_normal(Np * Mp).astype(T)  # by column panels
dW = np.empty(K * M, T); part = np.zeros((K + MR - 1) // MR * MR * Mp); Ct = np.empty(MR * NR, T)
nbk = N // KC
xpb = (K + MR - 1) // MR * MR * KC
Xp = np.empty(nbk * xpb, T)
JW = 8
def packs():
    for b in range(nbk):
        for k0 in range(0, K, 4 * MR):
            th.pack_xt(Xp[b * xpb:], x, K, b * KC, KC, k0, min(4 * MR, K - k0))
FIRST, MIDDLE, LAST, ONLY = th.FIRST, th.MIDDLE, th.LAST, th.ONLY


@njit
def mk_only(Xp2, g2, Ct2, dW2, K, M, Np, nbk, xpb, into_dw):
    # the items' micro-kernel calls alone (whole row blocks only), into Ct or into dW
    Xp, g, Ct, dW = pointer(Xp2), pointer(g2), pointer(Ct2), pointer(dW2)
    for kb in range(0, K - MC + 1, MC):
        for jb in range(0, M // NR, JW):
            for b in range(nbk):
                for jr in range(jb, jb + JW):
                    for ir in range(MC // MR):
                        C, co, ldc = (dW, (kb + ir * MR) * M + jr * NR, M) if into_dw else (Ct, 0, NR)
                        mk(KC, Xp, b * xpb + (kb + ir * MR) * KC, MR, 1, g,
                           jr * Np * NR + b * KC * NR, NR, C, co, ldc)


def item_order():
    # (kb, jb) of the items: column group by column group (the driver's), or kb_outer
    nk = (K + MC - 1) // MC
    its = [(i % nk * MC, i // nk * JW) for i in range(nk * (M // NR // JW))]
    return sorted(its) if len(sys.argv) > 2 and sys.argv[2] == "kb_outer" else its


def block(b):
    return FIRST if b == 0 else (LAST if b == nbk - 1 else MIDDLE)


def items():
    for kb, jb in item_order():
        for b in range(nbk):
            th.dw_item(part, dW, Xp[b * xpb:], g[b * KC * NR:], Np * NR, M, Mp, 0, 0, KC, kb,
                       min(MC, K - kb), jb, JW, block(b), Ct)
def t(f, n=int(__import__("os").environ.get("NT", 7))):
    f(); ts = []
    for _ in range(n):
        s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
    return np.median(ts) * 1e3
packs()
big = np.ones(64 << 20 >> 2, T)
def cold(f):
    def run():
        big[::16] += 1.0; f()
    return run
r = dict(cold_items=t(cold(items)) - t(cold(lambda: None)), pack=t(packs), items=t(items), mk_ct=t(lambda: mk_only(Xp, g, Ct, dW, K, M, Np, nbk, xpb, False)),
         mk_dw=t(lambda: mk_only(Xp, g, Ct, dW, K, M, Np, nbk, xpb, True)))
fl = 2 * N * K * M / 1e9
print(N, {k: f"{v:.2f} ms" for k, v in r.items()}, "items GFLOP/s", round(fl / r["items"] * 1e3), "mk_ct", round(fl / r["mk_ct"] * 1e3))

tile_set64, tile_add64, tile_fold, prefetch = th.tile_set64, th.tile_add64, th.tile_fold, th.prefetch
LINE = 16
@njit
def dwv(part2, dW2, Xp2, Gp2, gstr, M, Mp, kc, k0, krows, jr0, njr, block, Ct2, mode):
    part, dW, Xp, Gp, Ct = pointer(part2), pointer(dW2), pointer(Xp2), pointer(Gp2), pointer(Ct2)
    nir = (krows + MR - 1) // MR
    for jr in range(jr0, jr0 + njr):
        for ir in range(nir):
            rows = min(MR, krows - ir * MR)
            o = (k0 + ir * MR) * Mp + jr * MR * NR
            d = (k0 + ir * MR) * M + jr * NR
            if mode & 4:  # every add into one tile, which stays in L1
                o = d = 0
            if mode & 8:  # the item's own region
                o = ir * MR * (njr * NR) + (jr - jr0) * MR * NR
            if mode & 1:
                if block != ONLY:
                    for q in range(0, rows * NR, 8):
                        prefetch(part, o + q)
                if block == LAST or block == ONLY:
                    for i in range(rows):
                        for q in range(0, NR, LINE):
                            prefetch(dW, d + i * M + q)
            mk(kc, Xp, (k0 + ir * MR) * kc, MR, 1, Gp, jr * gstr, NR, Ct, 0, NR)
            if mode & 2:
                if block == FIRST:
                    tile_set64(part, o, NR, Ct, rows)
                elif block == MIDDLE:
                    tile_add64(part, o, NR, Ct, rows)
                elif block == LAST:
                    tile_fold(dW, d, M, part, o, NR, Ct, rows)
def items_v(mode):
    def run():
        for kb, jb in item_order():
            for b in range(nbk):
                dwv(part, dW, Xp[b * xpb:], g[b * KC * NR:], Np * NR, M, Mp, KC, kb,
                    min(MC, K - kb), jb, JW, block(b), Ct, mode)
    return run


for rep in range(2):
    print("dwv by mode, ms:", {m: f"{t(items_v(m)):.2f}" for m in (3, 2, 1, 6, 0, 11)}, "(warm)",
          {m: f"{t(cold(items_v(m))) - t(cold(lambda: None)):.2f}" for m in (3, 11)}, "(cold)")


# 26b: the tile's KC blocks innermost (its float64 partial one hot tile in L1), B's panel
# of all N rows read from L2 for each tile: `order` 0 jr outer, 1 ir outer
hot = np.zeros(MR * NR)
@njit
def dwd(hot2, dW2, Xp2, Gp2, gstr, M, kc, nbk, xpb, k0, krows, jr0, njr, Ct2, order):
    hot, dW, Xp, Gp, Ct = pointer(hot2), pointer(dW2), pointer(Xp2), pointer(Gp2), pointer(Ct2)
    nir = (krows + MR - 1) // MR
    for t in range(njr * nir):
        jr, ir = (jr0 + t // nir, t % nir) if order == 0 else (jr0 + t % njr, t // njr)
        rows = min(MR, krows - ir * MR)
        d = (k0 + ir * MR) * M + jr * NR
        for b in range(nbk):
            mk(kc, Xp, b * xpb + (k0 + ir * MR) * kc, MR, 1, Gp, jr * gstr + b * kc * NR, NR, Ct, 0, NR)
            if b == 0:
                tile_set64(hot, 0, NR, Ct, rows)
            elif b < nbk - 1:
                tile_add64(hot, 0, NR, Ct, rows)
            else:
                tile_fold(dW, d, M, hot, 0, NR, Ct, rows)
def items_d(order):
    def run():
        for kb, jb in item_order():
            dwd(hot, dW, Xp, g, Np * NR, M, KC, nbk, xpb, kb, min(MC, K - kb), jb, JW, Ct, order)
    return run
items(); ref = dW.copy(); items_d(0)(); same0 = np.array_equal(ref, dW); items_d(1)(); same1 = np.array_equal(ref, dW)
for rep in range(2):
    print("26c: items", f"{t(items):.2f}", "tile-inner jr outer", f"{t(items_d(0)):.2f}", "ir outer",
          f"{t(items_d(1)):.2f}", "ms (warm); same bits", same0, same1)
