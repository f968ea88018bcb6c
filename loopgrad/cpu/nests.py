"""The tiled kernels as Python: the loop nests around the micro-kernel, and the drivers.

Never imported.  tiled.py copies each part below (from its `# part NAME` line to the
next) into a generated module per tile of the machine table, after a header that sets
the tile's constants (MR, NR, MC, KC, T, ...) and defines the micro-kernel `mk` and the
tile adds (tiled._HEADER, tiled._MK, tiled._tile_adds): only those depend on the tile
in the text.  Numba freezes a module's globals into the code it compiles, so each
tile's copy is compiled with its own sizes as constants: the micro-kernel's strides are
literals where it is inlined.  The part names are tiled.PARTS's modules: "common"
(imported by the other three), "fused", "three", "loss".  Each of the last three ends
with its kernel's parallel driver, `_<name>_parallel`, and tiled.py appends the serial
one, the same text with range for prange (tiled._serial).

The lines before the first part stand in for that header, with the AVX-512 entry's
float32 tile, so that this file is ordinary Python to a linter or an editor.  What the
pieces compute, and why so, is in tiled.py's docstring and the comments here.
"""
import numpy as np
from numba import njit, prange, types as nt

from loopgrad._inputs import STREAM, WANT_DW, WANT_DX, WANT_DY
from loopgrad.cpu.guards import decide as _decide, nonfinite, sum_squares, trusted as _trusted
from loopgrad.cpu.intrinsics import (copier, epilogue, line_streamer, microkernel, pointer,
                                      prefetch, prefetch_l2, tail_kernel, transposer,
                                      wide_kernel, zeros16)

T = np.float32
I, P, P64 = nt.int64, nt.CPointer(nt.float32), nt.CPointer(nt.float64)
A1, R1, A64 = nt.Array(nt.float32, 1, "C"), nt.Array(nt.float32, 1, "C", readonly=True), \
    nt.Array(nt.float64, 1, "C")
MR, NR, MC, KC = 8, 32, 96, 256
KC3 = 256
LINE = 64 // np.dtype(T).itemsize
BIG = float(np.finfo(T).max)
PF_K, PF_AHEAD, PACK_X_M, JB, DWB, JH, H_ITEMS = 64, 4096, 128, 8, 4, 8, 6
ROWS_BYTES = 4 << 20
XA_BYTES, XA_GROUPS = 4 << 20, 5
ROW_CALLS = 128
PF_Y = 0  # the avx512 entry's (machine.Entry.pf_y)
PF_NEXT = 1
PF_SHARE, PF_BLOCK = 64, 256 << 10
STAGE_PANELS = 2
DX_ITEMS, DX_COLS = 16, 128
XT_COLS = 4 * MR
FIRST, MIDDLE, LAST, ONLY = 0, 1, 2, 3
INPLACE, PACKED, PREPACKED = 0, 1, 2
G_PANELS = True
_FM = {"contract"}
mk = microkernel("float32", MR, NR, 16)
mks = microkernel("float32", MR, NR, 16, stream=True)
mkh = microkernel("float32", MR // 2, NR, 16)
TAILS, TAIL = ((16, 16, 1),), 16  # the last panels' kernels (TAIL 0: none, mkt is mk)
mkt = tail_kernel("float32", MR, NR, TAILS)
CUT = 16  # the widest last panel stored straight, cut (0: none; tiled._MK)
mktc = tail_kernel("float32", MR, NR, TAILS, cut=True)
WTAILS, WTAIL = ((16, 16, 1),), 16  # the last panels beside a whole one (WTAIL 0: none)
mkw = wide_kernel("float32", MR, NR, 16, WTAILS)
HALF = 16  # the columns of half a tile row, for dw_transposed (0: a row is one vector)
epi = epilogue("float32", NR, parts=False)
cpr, cpm = copier("float32", NR), copier("float32", MR)
cpn = copier("float32", NR, masked=True, parts=False)
cpl = line_streamer("float32")
TR = min(8, NR)
tpw = transposer("float32", TR, 16)
TRANSPOSE = True  # pack_wt through tpw: float32 only (tiled._MK)
TA = 8  # pack_a's and pack_gp's MR×TA transposes (tiled._MK: a 32-byte vector a row)
tpa = transposer("float32", MR, TA)
tile_add = tile_add64 = tile_set64 = tile_fold = None  # generated for NR (tiled._tile_adds)


# part common

@njit(nogil=True, cache=True, fastmath=_FM, inline="always")
def pack_a(Ap, src, ld, r0, nrows, c0, kc):
    # rows [r0, r0+nrows), columns [c0, c0+kc) of src (row stride ld) → MR-row micro-panels,
    # zero-padded: a whole micro-panel's steps as MR×TA blocks transposed in registers
    # (tpa), the rest a loop
    for ir in range((nrows + MR - 1) // MR):
        base = ir * kc * MR
        done = kc // TA * TA if (ir + 1) * MR <= nrows else 0
        for p in range(0, done, TA):
            tpa(Ap, base + p * MR, MR, src, (r0 + ir * MR) * ld + c0 + p, ld)
        for p in range(done, kc):
            for i in range(MR):
                r = ir * MR + i
                Ap[base + p * MR + i] = src[(r0 + r) * ld + c0 + p] if r < nrows else T(0.0)


@njit(nogil=True, cache=True, fastmath=_FM, inline="always")
def pack_at(Ap, src, ld, c0, ncols, r0, kc, p0, p1):
    # the transpose: columns [c0, c0+ncols) of rows [r0 + p0, r0 + p1) of the block of kc
    # rows from r0 → its MR-column micro-panels (panel ir at ir·kc·MR, row p at p·MR),
    # MR elements of a row a vector copy (cpm; a loop moved them one at a time), row by row:
    # the rows lie ld·size bytes apart, in a few L1 sets, and a loop over the panels first
    # fetched each row again for each panel (dev/products_v20.md 21a)
    for p in range(p0, p1):
        for ir in range(ncols // MR):
            cpm(Ap, ir * kc * MR + p * MR, src, (r0 + p) * ld + c0 + ir * MR)
    for ir in range(ncols // MR, (ncols + MR - 1) // MR):  # the last, zero-padded
        base = ir * kc * MR
        for p in range(p0, p1):
            row = (r0 + p) * ld + c0
            for i in range(MR):
                c = ir * MR + i
                Ap[base + p * MR + i] = src[row + c] if c < ncols else T(0.0)


@njit(nt.void(A1, R1, I, I, I, I), nogil=True, cache=True, fastmath=_FM)
def pack_w(Wp2, W2, K, M, p0, p1):
    # rows [p0, p1) of W (K×M) into all its column panels Wp[jr][p][NR], zero-padded: B of
    # h = x·W.  Row by row, each read whole and in order: a panel at a time read NR
    # elements of every row, rows 4 KiB apart at M = 1024, one page each, which the
    # hardware prefetcher does not follow (3× a copy's time, dev/products_v10.md 13f)
    # (A panel's row a vector copy, cpr: a loop moved it one element at a time)
    Wp, W = pointer(Wp2), pointer(W2)
    for p in range(p0, p1):
        for jr in range(M // NR):
            cpr(Wp, (jr * K + p) * NR, W, p * M + jr * NR)
        for jr in range(M // NR, (M + NR - 1) // NR):  # the last, zero-padded
            for j in range(NR):
                c = jr * NR + j
                Wp[(jr * K + p) * NR + j] = W[p * M + c] if c < M else T(0.0)


@njit(nt.void(A1, R1, I, I, I), nogil=True, cache=True, fastmath=_FM)
def pack_wt(Wtp2, W2, K, M, jr):
    # column panel jr of Wᵀ (M×K), rows [jr·NR, jr·NR + NR) of W → Wtp[jr][p][NR], zero-padded:
    # B of dx = g·Wᵀ.  In float32, blocks of TR rows × 16 columns transposed in registers
    # (tpw; one element at a time, the pack was 1.2-1.4× slower); in float64 the loop
    # below is 1.1-1.6× faster than tpw from 512² up (dev/products_v18.md 19f)
    Wtp, W = pointer(Wtp2), pointer(W2)
    base = jr * M * NR
    done = 0
    if TRANSPOSE and (jr + 1) * NR <= K:  # a whole panel: no padding
        done = M // 16 * 16
        for p0 in range(0, done, 16):
            for jg in range(0, NR, TR):
                tpw(Wtp, base + p0 * NR + jg, NR, W, (jr * NR + jg) * M + p0, M)
    for p in range(done, M):
        for j in range(NR):
            c = jr * NR + j
            Wtp[base + p * NR + j] = W[c * M + p] if c < K else T(0.0)


@njit(nt.void(P, I, I, I, P, I, I, P, I, I, I, nt.float64, nt.boolean, P64, nt.boolean),
      nogil=True, cache=True)
def epilogue_rows(g, gb, ldg, pstr, y, yb, ldy, dy, db, rows, m, a0, want_grads, f, stream):
    # forward_block's epilogue over `rows` rows of m elements (intrinsics.epilogue), in a
    # function of its own without fast-math flags: under forward_block's `contract`, Numba
    # flags every float operation, and LLVM fused z² into its partial sum (an FMA), which
    # f's order does not have (f 1 ulp off the ordered loops)
    # (g's element j of row n at gb + n·ldg + (j // NR)·pstr + j % NR: pstr = NR where g is
    # whole rows; y's and dy's at yb + n·ldy + j and db + n·ldy + j)
    epi(g, gb, ldg, pstr, y, yb, ldy, dy, db, rows, m, a0, want_grads, f, stream)


@njit(nt.boolean(I, I), nogil=True, cache=True)
def packs_x(K, Mp):
    # whether the three-pass kernel's h items (and the loss kernel's blocks) pack their rows
    # of x into micro-panels, a KC block at a time (forward_block's `pack`): rows longer
    # than the fused kernel's prefetched ones (PF_K) and at least PACK_X_M columns to reuse
    # each packed element over (dev/products_v9.md 12b, dev/products_v17.md 18a)
    return K > PF_K and Mp >= PACK_X_M


@njit(nogil=True, cache=True, fastmath=_FM, inline="always")
def tile_out(C, co, ldc, Ct, nrow, ncol, first):
    # the first nrow × ncol of a tile buffer Ct into C (row stride ldc): set by the first
    # KC block of a sum (first), added by the others; a whole tile of a later block by
    # tile_add's vector rows
    if nrow == MR and ncol == NR and not first:
        tile_add(C, co, ldc, Ct, MR)
        return
    for i in range(nrow):
        if first:  # the row's first ncol elements, one masked vector store
            cpn(C, co + i * ldc, Ct, i * NR, ncol)
        else:
            for j in range(ncol):
                C[co + i * ldc + j] += Ct[i * NR + j]


@njit(nt.void(P, I, I, P, I), nogil=True, cache=True, fastmath=_FM)
def tile_cut_add(C, co, ldc, Ct, ncol):
    # forward_block's `cut` tiles of a KC block after the first: tile_out's add of each
    # row's first ncol elements, in a function of its own: inlined in forward_block it made
    # the tiled kernels' compile 40 % longer; the first block's masked stores stay inline
    # (a call a tile cost 10 % at float64's 2·10⁵×20×20, dev/products_v25.md 26i)
    tile_out(C, co, ldc, Ct, MR, ncol, False)


@njit(nt.UniTuple(I, 3)(I, I, I, I, I), nogil=True, cache=True)
def next_lines(K, M, n0, n1, calls):
    # the fused kernel's next block, rows [n0, n1) of x and y, as the lines its products'
    # `calls` calls ask for into L2 (`ask_next`): x's, then y's, and each call's share, at
    # most PF_SHARE (where a block has few calls more held the fill buffers its products
    # need: dev/products_v37.md 38a, 38f).  None where h already asks for both ahead (K ≤
    # PF_K with PF_Y: the AVX2 entry's 10⁶×24×40 2 % slower), nor y's where it asks for y
    # (dev/products_v36.md 37f)
    on = PF_NEXT and (K > PF_K or PF_Y == 0)
    nxl = ((n1 - n0) * K + LINE - 1) // LINE if on else 0
    nyl = ((n1 - n0) * M + LINE - 1) // LINE if on and PF_Y == 0 else 0
    return nxl, nyl, min(PF_SHARE, (nxl + nyl + calls - 1) // max(calls, 1))


@njit(nogil=True, cache=True, inline="always")
def ask_next(x, y, K, M, n0, nxl, nyl, call, share):
    # call number `call`'s share of next_lines's lines (x's from x[n0·K], then y's from
    # y[n0·M]) into L2: the next block's memory asked for under this one's products, not
    # waited for in its h (dev/products_v36.md 37f).  Inlined, as put_share: a call in the
    # loops around the micro-kernel, even one that does nothing, cost 10⁵×24×40's h 4–5 %
    # (a quarter where the shape is constant: shaped.py; dev/products_v54.md 55a)
    for q in range(call * share, min(call * share + share, nxl + nyl)):
        if q < nxl:
            prefetch_l2(x, n0 * K + q * LINE)
        else:
            prefetch_l2(y, n0 * M + (q - nxl) * LINE)


@njit(nogil=True, cache=True, inline="always")
def put_share(D, d0, S, n, head, call, share):
    # call number `call`'s share of a staged block's way out, S[0:n] → D[d0:d0+n]: its whole
    # cache lines past the caches (cpl), `share` lines a call, from D[d0 + head] (head: the
    # elements before D's first line), and with the first call the head and the tail past
    # the last whole line by ordinary stores (lines other blocks share)
    lines = (n - head) // LINE if n > head else 0
    if call == 0:
        for i in range(min(head, n)):
            D[d0 + i] = S[i]
        for i in range(head + lines * LINE, n):
            D[d0 + i] = S[i]
    for q in range(call * share, min(call * share + share, lines)):
        cpl(D, d0 + head + q * LINE, S, head + q * LINE)


@njit(nt.float64(A1, A1, R1, A1, R1, nt.float64, I, I, I, I, I, I, I, I, I, I, A1, A1,
                 nt.boolean, I, I, nt.boolean, I, I, A1, A1, I, I, I), nogil=True, cache=True,
      fastmath=_FM)
def forward_block(g2, dy2, x2, Wp2, y2, a0, K, M, Mp, ldg, pstr, kcb, r0, rows, j0, nj, Ap2,
                  Ct2, want_grads, dshift, pack, stream, q0, q1, D2, S2, d0, nd, head):
    # rows [r0, r0+rows), column panels [j0, j0+nj): h = x·W into g (the block's rows,
    # whole panels of MR rows; element (n, m) at n·ldg + (m // NR)·pstr + m % NR: rows of
    # ldg ≥ M (pstr = NR: Mp or more, or M itself, the fused kernel's, whose last panel's
    # tiles are cut to the row), or by column panels (ldg = NR, pstr = the panel's size:
    # the three-pass kernel, `g_panels`)), then the epilogue: returns f = Σ z² over those
    # columns; with want_grads writes dy (y's element i at dy[i − dshift]: dshift = 0, or
    # r0·M into a sink of MC·M where dy is not wanted, the same loop either way, so
    # f has the same bits), and g over h in place (g's columns past M hold junk that
    # nothing reads as g).  pack: the block's rows of x packed into Ap's micro-panels
    # for each block of kcb ≤ KC steps of K (BLIS's packed A; `packs_x`: KC, or the
    # three-pass kernel's KC3) where pack = 1, read in place where 0; where 2 (PREPACKED),
    # Ap holds them already, packed by the three-pass driver (`pack_x`): the block of
    # steps from pc at pc·rp (rp: the rows' whole panels), the next row block's after the
    # last, the next block asked into L2 over this one's calls.  stream:
    # dy's stores past the caches (a large call, loopgrad.cpu.streams; epilogue's chunks
    # that start on a cache line).  q0, q1: rows [q0, q1) of x and y asked for into L2, a
    # share before each call, at most PF_SHARE lines (`ask_next`: the next block's, where
    # nothing after h would: the loss, dy alone; dev/products_v37.md 38b).  D, S, d0, nd,
    # head: S[0:nd] sent out to D[d0:] a share before each call (`put_share`: the fused
    # kernel's previous block's dx, staged; head: D's elements from d0 up to a line; nd = 0:
    # nothing; dev/products_v37.md 38d)
    g, dy, x, Wp, y = pointer(g2), pointer(dy2), pointer(x2), pointer(Wp2), pointer(y2)
    Ap, Ct = pointer(Ap2), pointer(Ct2)
    D, S = pointer(D2), pointer(S2)
    nir = (rows + MR - 1) // MR
    calls = max((K + kcb - 1) // kcb * nj * nir, 1)
    nxl, nyl, share = next_lines(K, M, q0, q1, calls)
    out = ((nd - head) // LINE + calls - 1) // calls if nd > head else 0
    call = 0
    # the panels before `full` read x in place, a last partial one too (its extra rows
    # give rows of the tile that are never stored) unless it would read past the end of
    # x; the rest are packed, all of them where `pack`
    full = 0 if pack else (nir if (r0 + nir * MR) * K <= x2.shape[0] else rows // MR)
    col0, col1 = j0 * NR, min(M, (j0 + nj) * NR)  # the item's columns
    rp = nir * MR
    # K in one block of steps and a last panel of at most WTAIL columns: that panel's tiles
    # of rows read in place with the panel before's, in one pass over them (mkw: x's
    # elements broadcast once, the cut panel masked straight into g; dev/products_v47.md
    # 48b)
    last = j0 + nj - 1
    wide = WTAIL > 0 and nj > 1 and kcb >= K and col1 - last * NR <= WTAIL
    for pc in range(0, K, kcb):
        kc = min(kcb, K - pc)
        # Ap's block; PREPACKED: the next one, its lines and the share of them a call asks for
        ab, nxt, lines, pfl = 0, 0, 0, 0
        if pack == PREPACKED:
            ab, nxt = pc * rp, (pc + kc) * rp
            lines = max(0, min(kcb * rp, Ap2.shape[0] - nxt)) // LINE
            pfl = (lines + nj * nir - 1) // (nj * nir)
        elif full < nir:
            pack_a(Ap, x, K, r0 + full * MR, rows - full * MR, pc, kc)
        for jr in range(j0, j0 + nj):
            bo = (jr * K + pc) * NR
            # rows M apart (ldg < the panel's end): the panel's tiles through Ct, each row cut
            # to its `cut` columns, so as not to write into the next row (a micro-kernel of
            # its own storing them cut, another copy inlined, made the compile 30 % longer)
            cut = ldg - jr * NR if pstr == NR and (jr + 1) * NR > ldg else 0
            direct = pc == 0 and cut == 0  # the tile straight into g
            for ir in range(nir):
                co = ir * MR * ldg + jr * pstr
                C, c0, ldc = (g, co, ldg) if direct else (Ct, 0, NR)
                if pfl:  # PREPACKED: the next block into L2, a share a call
                    c = (jr - j0) * nir + ir
                    for q in range(c * pfl, min(c * pfl + pfl, lines)):
                        prefetch_l2(Ap, nxt + q * LINE)
                ask_next(x, y, K, M, q0, nxl, nyl, call, share)
                put_share(D, d0, S, nd, head, call, out)
                call += 1
                if WTAIL and wide and jr == last and ir < full:  # done beside the one before
                    continue
                if ir >= full:  # a packed micro-panel (pack_a); one call, A's strides literals
                    mk(kc, Ap, ab + (ir - full) * kc * MR, MR, 1, Wp, bo, NR, C, c0, ldc)
                else:
                    if jr == j0 and K <= PF_K:
                        # x's rows PF_AHEAD elements ahead into L2 (into L1, 16 KiB ahead in
                        # float32 and 32 in float64, they evicted the block's own lines: as
                        # AVX2 2–10 % slower, float64 5–17 %; dev/products_v48.md 49a)
                        ahead = (r0 + ir * MR) * K + PF_AHEAD
                        for q in range(0, MR * K, LINE):
                            prefetch_l2(x, ahead + q)
                        # and y's rows PF_Y ahead, this item's columns, into L2
                        # (machine.Entry.pf_y; dev/products_v21.md 22c)
                        for i in range(MR if PF_Y else 0):
                            ya = (r0 + ir * MR + i + PF_Y) * M + col0
                            for q in range(0, col1 - col0, LINE):
                                prefetch_l2(y, ya + q)
                    # a last panel of at most TAIL columns: its live columns alone (the
                    # rest of W's panel is padding, zeros: the same tile)
                    if WTAIL and wide and jr == last - 1:  # and the last panel's (straight)
                        mkw(col1 - last * NR, kc, x, (r0 + ir * MR) * K + pc, 1, K, Wp, bo, NR,
                            bo + K * NR, C, c0, ldc, ir * MR * ldg + last * pstr)
                    elif CUT and 0 < cut <= CUT and pc == 0:
                        # a last panel straight into g, each row cut to its `cut` columns
                        # (masked stores, or AVX2's in parts; its live columns are at most
                        # those)
                        mktc(cut, kc, x, (r0 + ir * MR) * K + pc, 1, K, Wp, bo, NR, g, co, ldg)
                        continue
                    elif TAIL and col1 - jr * NR <= TAIL:
                        mkt(col1 - jr * NR, kc, x, (r0 + ir * MR) * K + pc, 1, K, Wp, bo, NR,
                            C, c0, ldc)
                    else:
                        mk(kc, x, (r0 + ir * MR) * K + pc, 1, K, Wp, bo, NR, C, c0, ldc)
                if cut == 0:
                    if pc > 0:
                        tile_add(g, co, ldg, Ct, MR)
                elif pc == 0:
                    for i in range(MR):  # each row's first `cut` elements, one masked store
                        cpn(g, co + i * ldg, Ct, i * NR, cut)
                else:
                    tile_cut_add(g, co, ldg, Ct, cut)
    # the epilogue runs along rows, or along the whole block as one run where g's rows are
    # M apart and the columns are all of them (one call either way, intrinsics.epilogue): z,
    # dy, g, and z² into 16 partial sums, element j of a run (a row's columns col0..col1, or
    # the block) in sum j mod 16, in j's order, a last partial step of 16 masked; the sums
    # added in a fixed tree at the end.  No fast-math flag touches these sums (the
    # intrinsic's IR has none): f's bits follow from this order, which
    # loopgrad/cpu/ordered.py repeats in plain loops (dev/cold_v12.md 16b, 16f)
    # (g by panels: a row's NR columns of a panel lie together, the epilogue's 16-element
    # steps inside them.  Lane j mod 16 of a row's elements is the same either way, and so
    # are f's bits)
    flat = ldg == M and col0 == 0 and col1 == M and pstr == NR
    runs, length = (1, rows * M) if flat else (rows, col1 - col0)
    fs = zeros16()
    yb = r0 * M + col0
    if length >= ROW_CALLS:  # a call a run (the same bits): see tiled.ROW_CALLS
        for n in range(runs):
            epilogue_rows(g, j0 * pstr + n * ldg, ldg, pstr, y, yb + n * M, M, dy,
                          yb + n * M - dshift, 1, length, a0, want_grads, fs, stream)
    else:
        epilogue_rows(g, j0 * pstr, ldg, pstr, y, yb, M, dy, yb - dshift, runs, length, a0,
                      want_grads, fs, stream)
    f = (((fs[0] + fs[1]) + (fs[2] + fs[3])) + ((fs[4] + fs[5]) + (fs[6] + fs[7]))) \
        + (((fs[8] + fs[9]) + (fs[10] + fs[11])) + ((fs[12] + fs[13]) + (fs[14] + fs[15])))
    return f


@njit(nt.void(A1, A1, A1, I, I, I, I, I, I, I, A1, nt.boolean, R1, R1, I, I), nogil=True,
      cache=True, fastmath=_FM)
def dx_block(dx2, g2, Wtp2, K, M, ldg, r0, rows, j0, nj, Ct2, stream, x2, y2, n0, n1):
    # rows [r0, r0+rows), column panels [j0, j0+nj) of dx = g·Wᵀ (g: the block's rows,
    # ldg elements apart, read in place: its buffer has whole panels of rows):
    # h[n,m] += x[n,k]·W[k,m]  →  dx[n,k] += g[n,m]·W[k,m]
    # stream: whole tiles stored into dx past the caches (mks, where its rows are lines);
    # x, y, n0, n1: the next block's rows of the fused kernel's chunk, asked for into L2
    # a share before each call (`ask_next`), at most PF_SHARE lines (at wide M a block has
    # few calls: dev/products_v37.md 38f)
    dx, g, Wtp, Ct = pointer(dx2), pointer(g2), pointer(Wtp2), pointer(Ct2)
    x, y = pointer(x2), pointer(y2)
    nir = (rows + MR - 1) // MR
    nxl, nyl, share = next_lines(K, M, n0, n1, (M + KC - 1) // KC * nj * nir)
    call = 0
    for pc in range(0, M, KC):
        kc = min(KC, M - pc)
        for jr in range(j0, j0 + nj):
            ncol = min(NR, K - jr * NR)
            bo = (jr * M + pc) * NR
            for ir in range(nir):
                ask_next(x, y, K, M, n0, nxl, nyl, call, share)
                call += 1
                nrow = min(MR, rows - ir * MR)
                b = (r0 + ir * MR) * K + jr * NR
                # a whole tile of the first KC block straight into dx, else into Ct; one
                # call (the micro-kernel inlined once: compile time).  Streamed where it is
                # the tile's last (M ≤ KC): a later block would read it back
                straight = nrow == MR and ncol == NR and pc == 0
                C, c0, ldc = (dx, b, K) if straight else (Ct, 0, NR)
                if CUT and ncol <= CUT and nrow == MR and pc == 0:
                    # a last panel of at most CUT columns, its first block: straight into
                    # dx, each row cut to its ncol columns (masked stores, or AVX2's in
                    # parts; dev/products_v47.md 48e)
                    mktc(ncol, kc, g, ir * MR * ldg + pc, 1, ldg, Wtp, bo, NR, dx, b, K)
                    continue
                if TAIL and ncol <= TAIL:  # a last panel of at most TAIL columns
                    mkt(ncol, kc, g, ir * MR * ldg + pc, 1, ldg, Wtp, bo, NR, Ct, 0, NR)
                else:
                    mks(kc, g, ir * MR * ldg + pc, 1, ldg, Wtp, bo, NR, C, c0, ldc,
                        stream and straight and kc == M)
                if not straight:
                    tile_out(dx, b, K, Ct, nrow, ncol, pc == 0)


@njit(nt.float64(nt.float64, R1, A1, nt.boolean), nogil=True, cache=True)
def trusted(f, W, dW, check_dW):
    # f, or NaN where T arithmetic could have overflowed (loopgrad.cpu.guards: its sums
    # in fixed partial sums, so loopgrad.cpu.ordered decides with the same bits)
    return _trusted(f, W, dW, check_dW, BIG)


# trusted's parts, for the three-pass kernel to take in parallel (compiled with the module)
@njit(nt.float64(R1), nogil=True, cache=True)
def w_squares(W):
    return sum_squares(W)


@njit(I(A1), nogil=True, cache=True)
def count_nonfinite(d):
    return nonfinite(d)


@njit(nt.float64(nt.float64, nt.float64, I), nogil=True, cache=True)
def decide(f, w2, bad):
    return _decide(f, w2, bad, BIG)


# part fused

@njit(I(A1, I), nogil=True, cache=True)
def lead(D2, d):
    # D's elements from D[d] up to its first cache line (D[d + lead] starts one)
    size = 64 // LINE
    return (64 - (D2.ctypes.data + d * size) % 64) % 64 // size


@njit(nt.void(A1, A1, I, I), nogil=True, cache=True)
def flush(D2, S2, d0, nd):
    # S[0:nd] out to D[d0:] at once, as put_share sends it: a chunk's last staged dx
    put_share(pointer(D2), d0, pointer(S2), nd, lead(D2, d0), 0, nd)


@njit(I(I, I), nogil=True, cache=True)
def g_stride(M, Mp):
    # the fused kernel's row stride of g, its block of h and then g (Mp: M padded to panels).
    # g's rows M apart where M is not a multiple of NR, so that the epilogue runs a block's
    # rows as one run of 16-element steps where each row's last step was a masked part
    # (h's last panel cut to the row: forward_block's `cut`; dx reads M columns a row, and
    # dW's last panel reads past M into the next row, columns of its tile never stored:
    # dev/products_v25.md 26i).  Else a line more apart where Mp·size is a multiple of 512
    # bytes: dW's B, a block's rows of one column panel, lay in 8 of the L1's 64 sets at
    # M = 256 and left it before the next micro-panel of x came (10⁵×256² 4 %, float64
    # 3-4 % at 128² to 256², dev/products_v20.md 21a); the epilogue then runs row by row
    # (rows of a multiple of 16 elements: the same bits as one run)
    return M if Mp != M else (Mp + LINE if Mp % (8 * LINE) == 0 else Mp)


@njit(nt.void(A64, R1, A1, I, I, I, I, I, I, I, I, A1, A1, R1, I, I), nogil=True,
      cache=True, fastmath=_FM)
def dw_block(part2, x2, g2, K, M, Mp, ldg, n0, n1, k0, krows, Ap2, Ct2, y2, q0, q1):
    # part[k, :] += Σ_{n0≤n<n1} x[n,k]·g[n−n0, :] for k in [k0, k0+krows):
    # dW[k,m] += x[n,k]·g[n,m], in T over blocks of KC rows, in float64 across them
    # (g's rows ldg elements apart, part's Mp; a last panel of at most TAIL columns of M
    # by its live columns, its other columns of part, never read, left as they are).
    # y, q0, q1: rows [q0, q1) of x and y asked for into L2, a share before each call
    # (`ask_next`: the next block's, where no dx_block does), at most PF_SHARE lines a call
    # (these blocks have few calls: dev/products_v37.md 38a)
    part, x, g, Ap, Ct = pointer(part2), pointer(x2), pointer(g2), pointer(Ap2), pointer(Ct2)
    y, Cw = pointer(y2), pointer(Ct2[MR * NR:])
    nir = (krows + MR - 1) // MR
    whole = krows // MR  # panels that read x's rows in place
    nxl, nyl, share = next_lines(K, M, q0, q1, nir * (Mp // NR))
    # a last panel of at most WTAIL columns of M: with the panel before, in one pass over
    # x's whole panels of rows (mkw, its tile in Ct's second half: x's elements broadcast
    # once, and its few accumulators no longer a call's alone, a chain of FMAs each, bound
    # by their latency; dev/products_v54.md 55c)
    last = Mp // NR - 1
    wide = WTAIL > 0 and last > 0 and M - last * NR <= WTAIL
    call = 0  # (the block's rows are at most MC ≤ KC: one block of KC)
    for pc in range(n0, n1, KC):
        kc = min(KC, n1 - pc)
        # a last partial panel reads in place too (its extra columns of x give rows
        # of the tile that are never stored) unless it would run past the end of x
        inside = whole < nir and (pc + kc - 1) * K + k0 + nir * MR <= x2.shape[0]
        if whole < nir and not inside:
            pack_at(Ap, x, K, k0 + whole * MR, krows - whole * MR, pc, kc, 0, kc)
        for jr in range(Mp // NR):
            bo = (pc - n0) * ldg + jr * NR
            for ir in range(whole):
                ask_next(x, y, K, M, q0, nxl, nyl, call, share)
                call += 1
                if WTAIL and wide and jr == last:  # done beside the panel before
                    continue
                if WTAIL and wide and jr == last - 1:
                    mkw(M - last * NR, kc, x, pc * K + k0 + ir * MR, K, 1, g, bo, ldg, bo + NR,
                        Ct, 0, NR, MR * NR)
                    tile_add64(part, (k0 + ir * MR) * Mp + last * NR, Mp, Cw, MR)
                elif TAIL and M - jr * NR <= TAIL:
                    mkt(M - jr * NR, kc, x, pc * K + k0 + ir * MR, K, 1, g, bo, ldg, Ct, 0, NR)
                else:
                    mk(kc, x, pc * K + k0 + ir * MR, K, 1, g, bo, ldg, Ct, 0, NR)
                tile_add64(part, (k0 + ir * MR) * Mp + jr * NR, Mp, Ct, MR)
            if whole < nir:
                ask_next(x, y, K, M, q0, nxl, nyl, call, share)
                call += 1
                A, ao, lda = (x, pc * K + k0 + whole * MR, K) if inside else (Ap, 0, MR)
                if krows - whole * MR <= MR // 2:  # at most half a tile's rows
                    mkh(kc, A, ao, lda, 1, g, bo, ldg, Ct, 0, NR)
                else:
                    mk(kc, A, ao, lda, 1, g, bo, ldg, Ct, 0, NR)
                tile_add64(part, (k0 + whole * MR) * Mp + jr * NR, Mp, Ct, krows - whole * MR)


@njit(nt.boolean(I, I), nogil=True, cache=True)
def dw_transposed(K, M):
    # whether the fused kernel sums dW as dWᵀ = gᵀ·x (dw_block_t): tiles of MR m's × NR
    # k's, where that pads fewer products than dw_block's MR k's × NR m's (M of 17 to 24 on
    # the 8×32 tile: 24 rows of m for 32 columns), and K is whole panels of NR, so that x
    # read in place as B never reads past a row (dev/products_v34.md 35d).  Decided against
    # a last panel summed by its half, as measured there, whatever tails mkt has: where
    # those pad as few products as the transposed tiles (on Zen 4, 17 to 24 columns in
    # 256-bit vectors), the transposed tiles' fewer tile adds still win (10⁵×64×17, 64×20
    # 0.95×; dev/products_v44.md 45d)
    if K % NR != 0 or M % NR == 0:
        return False
    Mp = (M + NR - 1) // NR * NR
    live = Mp - NR + (HALF if HALF and M - (Mp - NR) <= HALF else NR)  # dw_block's columns
    return (M + MR - 1) // MR * MR < live


@njit(nt.void(A64, R1, A1, I, I, I, I, I, A1, R1, I, I), nogil=True, cache=True,
      fastmath=_FM)
def dw_block_t(part2, x2, g2, K, M, ldg, n0, n1, Ct2, y2, q0, q1):
    # dw_block's sums laid as dWᵀ (`dw_transposed`; sum_chunks reads them so): part[m, k]
    # += Σ_{n0≤n<n1} g[n−n0, m]·x[n,k], in T over blocks of KC rows, in float64 across
    # them: the same products in the same order as dw_block's, so the same bits.  g's rows
    # read in place as A (the tile's rows past M read the next row, or the buffer's NR
    # elements past the block: rows of the tile never stored), x's as B (K a multiple of
    # NR); part's rows K apart.  y, q0, q1: as dw_block's
    part, x, g, Ct = pointer(part2), pointer(x2), pointer(g2), pointer(Ct2)
    y = pointer(y2)
    nxl, nyl, share = next_lines(K, M, q0, q1,
                                 (n1 - n0 + KC - 1) // KC * (K // NR) * ((M + MR - 1) // MR))
    call = 0
    for pc in range(n0, n1, KC):
        kc = min(KC, n1 - pc)
        for jr in range(K // NR):
            for ir in range((M + MR - 1) // MR):
                ask_next(x, y, K, M, q0, nxl, nyl, call, share)
                call += 1
                mk(kc, g, (pc - n0) * ldg + ir * MR, ldg, 1, x, pc * K + jr * NR, K, Ct, 0,
                   NR)
                tile_add64(part, ir * MR * K + jr * NR, K, Ct, min(MR, M - ir * MR))


@njit(nt.void(A1, A64, I, I, I, I, I, I, nt.boolean), nogil=True, cache=True)
def sum_chunks(dW2, part2, nchunks, K, M, Mp, r0, r1, tr):
    # rows [r0, r1) of the chunks' partials, Σ_c part[c], in chunk order, the sum over c
    # kept in chunk 0's rows, then written to dW: rows of dW (K × Mp), or where tr, laid as
    # dWᵀ (dw_block_t: M × K), columns of dW (the driver spreads the rows over the threads:
    # serial, it took 2-3 ms of 10⁵×128×128's 40, dev/products_v17.md 18d)
    dW, part = pointer(dW2), pointer(part2)
    L, n = (K, K) if tr else (Mp, M)  # a partial row's length, and its elements in dW
    for c in range(1, nchunks):
        for i in range(r0 * L, r1 * L):
            part[i] += part[c * K * Mp + i]
    for r in range(r0, r1):
        for j in range(n):
            dW[j * M + r if tr else r * M + j] = part[r * L + j]


# The fused kernel's driver (tiled.py adds its serial copy: prange → range).  Drivers only
# loop, slice and add in float64, so the serial one also runs as plain Python over the
# compiled pieces (tiled.driver).
def _grads_fused_parallel(dx2, dW2, dy2, x2, W2, y2, a0, nchunks, chunk_rows, ws64, wsT, want):
    # one pass over chunks of rows; per block of MC rows: h, epilogue, dx, and the
    # block's dW added to the chunk's float64 partial (K·Mp small: it stays in cache);
    # the gradients not wanted are not computed (dy goes to a block-sized sink)
    N, K, M = x2.shape[0], x2.shape[1], W2.shape[1]
    dx, dW, dy = dx2.reshape(-1), dW2.reshape(-1), dy2.reshape(-1)
    x, W, y = x2.reshape(-1), W2.reshape(-1), y2.reshape(-1)
    Mp = (M + NR - 1) // NR * NR
    Kp = (K + NR - 1) // NR * NR
    # the gradients asked for (want: WANT_* bits); g is needed for dx or dW
    wdx, wdw, wdy = (want & WANT_DX) != 0, (want & WANT_DW) != 0, (want & WANT_DY) != 0
    wg = wdx or wdw
    stream = (want & STREAM) != 0  # dx and dy stored past the caches (a large call)
    # scratch from the caller (workspace.py; sizes: `scratch`): W packed (twice for dx)
    nwt = M * Kp if wdx else 0
    Wp = wsT[:K * Mp]                    # B of h = x·W
    Wtp = wsT[K * Mp:K * Mp + nwt]       # B of dx = g·Wᵀ
    part = ws64[:nchunks * K * Mp if wdw else 0]  # dW's float64 partials
    lg = g_stride(M, Mp)  # g's row stride
    tr = dw_transposed(K, M)  # dW's tiles laid as dWᵀ's
    # where dx is streamed and has STAGE_PANELS column panels or more, each block's dx is
    # staged in a cached buffer (Sb, two blocks' worth) and sent out past the caches a share
    # under each of the next block's h calls (`put_share`; the chunk's last after it), so
    # that its memory traffic runs under h's arithmetic rather than in bursts after each
    # tile of dx (dev/products_v37.md 38d)
    stage = STAGE_PANELS and stream and wdx and Kp // NR >= STAGE_PANELS
    for jr in range(Kp // NR):  # NR rows of W, a panel of Wᵀ
        pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
        if wdx:
            pack_wt(Wtp, W, K, M, jr)
    nc, R = nchunks, chunk_rows
    fc = np.empty(nc)
    for c in prange(nc):
        n0 = c * R
        n1 = min(N, n0 + R)
        Ap = np.empty(MC * KC, T)
        Ct = np.empty(2 * MR * NR, T)  # a tile, or two (dw_block's wide calls)
        g = np.empty(MC * lg + NR, T)   # MC: whole panels of MR rows; NR: dW's reads past M
        g[MC * lg:] = 0.0  # (columns never stored; zeros, not whatever the memory held)
        sink = np.empty(0 if wdy else MC * M, T)
        Sb = np.empty(2 * MC * K if stage else 0, T)  # two blocks' dx, staged
        pr0, prows = 0, 0  # the rows of the previous block's, staged
        pc = part[c * K * Mp:(c + 1) * K * Mp]
        pc[:] = 0.0
        f = 0.0
        for r0 in range(n0, n1, MC):
            rows = min(MC, n1 - r0)
            # the next block's rows of x and y, asked for into L2 under dx's calls, or
            # where there are none, under dW's, or else h's (dev/products_v36.md 37f,
            # dev/products_v37.md 38a, 38b)
            q0, q1 = min(n1, r0 + MC), min(n1, r0 + 2 * MC)
            bi = (r0 - n0) // MC % 2  # this block's half of Sb
            f += forward_block(g, dy if wdy else sink, x, Wp, y, a0, K, M, Mp, lg, NR, KC, r0,
                               rows, 0, Mp // NR, Ap, Ct, True, 0 if wdy else r0 * M, INPLACE,
                               stream and wdy, q0, q0 if wg else q1, dx, Sb[(1 - bi) * MC * K:],
                               pr0 * K, prows * K, lead(dx, pr0 * K))
            if wdx:  # into dx, or staged in Sb (its rows from 0, cached)
                dx_block(Sb[bi * MC * K:] if stage else dx, g, Wtp, K, M, lg,
                         0 if stage else r0, rows, 0, Kp // NR, Ct, stream and not stage, x, y,
                         q0, q1)
                q1 = q0
                if stage:
                    pr0, prows = r0, rows
            if wdw and tr:
                dw_block_t(pc, x, g, K, M, lg, r0, r0 + rows, Ct, y, q0, q1)
            elif wdw:
                nk = (K + MC - 1) // MC  # a share of the rows a call of dw_block
                for k0 in range(0, K, MC):
                    i = k0 // MC
                    dw_block(pc, x, g, K, M, Mp, lg, r0, r0 + rows, k0, min(MC, K - k0), Ap, Ct,
                             y, q0 + (q1 - q0) * i // nk, q0 + (q1 - q0) * (i + 1) // nk)
        if prows:  # the chunk's last block's dx, staged: out now
            flush(dx, Sb[(pr0 - n0) // MC % 2 * MC * K:], pr0 * K, prows * K)
        fc[c] = f
    if wdw:  # the chunks' partials added row by row (dWᵀ's where tr), each row's in order
        pr = M if tr else K
        for b in prange((pr + 7) // 8):
            sum_chunks(dW, part, nc, K, M, Mp, b * 8, min(pr, b * 8 + 8), tr)
    f = 0.0
    for c in range(nc):
        f += fc[c]
    return trusted(f, W, dW, wdw)


# part three

@njit(nt.UniTuple(I, 2)(I, I, I, nt.boolean), nogil=True, cache=True)
def item_at(i, nb, ng, rowwise):
    # item i's (row block, column group) of nb × ng, in the order the passes run them
    if rowwise:
        return i // ng, i % ng
    return i % nb, i // nb


@njit(nt.Array(nt.int64, 1, "C")(I, I, I, I, I, nt.boolean), nogil=True, cache=True)
def shares(N, ncols, G, nthr, mb, rowwise):
    # the thread of each item of mb rows × G column panels (ncols in all), the items column
    # group by column group (`rowwise`: row block by row block, see h_rows): runs of
    # consecutive items, each of about 1/nthr of the rows × panels, an item going where the
    # middle of its own share falls.  Equal parts of the item count left a thread 1.2-1.4×
    # the other's work where the last row block or column group is short (256³'s three h
    # items, 512³'s dx items, dev/products_v15.md)
    nb, ng = (N + mb - 1) // mb, (ncols + G - 1) // G
    total = N * ncols
    own = np.empty(nb * ng, np.int64)
    done = 0
    for i in range(own.shape[0]):
        b, c = item_at(i, nb, ng, rowwise)
        cost = min(mb, N - b * mb) * min(G, ncols - c * G)
        own[i] = nthr * (2 * done + cost) // (2 * total)
        done += cost
    return own


@njit(I(I, I, I, I, I, nt.boolean), nogil=True, cache=True)
def busiest(N, ncols, G, nthr, mb, rowwise):
    # the most work (rows × panels) `shares` gives one thread, items of mb rows × G panels
    own = shares(N, ncols, G, nthr, mb, rowwise)
    nb, ng = (N + mb - 1) // mb, (ncols + G - 1) // G
    work = np.zeros(max(nthr, 1), np.int64)
    for i in range(own.shape[0]):
        b, c = item_at(i, nb, ng, rowwise)
        work[own[i]] += min(mb, N - b * mb) * min(G, ncols - c * G)
    return work.max()


@njit(I(I, I, I), nogil=True, cache=True)
def h_rows(N, K, M):
    # the rows of an h and a dx item where the shape is small (tiled.h_rows): N in a
    # multiple of four blocks of at most MC rows, whole micro-panels, where x, y and W
    # come to at most ROWS_BYTES and W to at most half of x and g; else 0 (MC rows an
    # item, column group by column group)
    if (N * K + N * M + K * M) * (64 // LINE) > ROWS_BYTES or N * (K + M) < 2 * K * M:
        return 0
    nb = 4 * max(1, (N + 4 * MC - 1) // (4 * MC))
    return max(MR, ((N + nb - 1) // nb + MR - 1) // MR * MR)


@njit(nogil=True, cache=True, fastmath=_FM, inline="always")
def pack_gp(Ap, g, pstr, nrows, c0, kc):
    # columns [c0, c0+kc) of rows [0, nrows) of g by column panels (element (n, m) at
    # n·NR + (m // NR)·pstr + m % NR, c0 a panel's first column) → MR-row micro-panels,
    # zero-padded: A of dx.  A panel's MR rows lie together, an MR×NR block: its MR×TA
    # blocks transposed in registers (tpa), a last partial micro-panel or block a loop
    for ir in range((nrows + MR - 1) // MR):
        base = ir * kc * MR
        for q in range(0, kc, NR):
            src = ir * MR * NR + (c0 + q) // NR * pstr
            w = min(NR, kc - q)
            done = w // TA * TA if (ir + 1) * MR <= nrows else 0
            for p0 in range(0, done, TA):
                tpa(Ap, base + (q + p0) * MR, MR, g, src + p0, NR)
            for p in range(done, w):
                for i in range(MR):
                    Ap[base + (q + p) * MR + i] = g[src + i * NR + p] \
                        if ir * MR + i < nrows else T(0.0)


@njit(nt.void(A1, A1, A1, I, I, I, I, I, I, I, I, I, A1, A1, A1, nt.boolean, I), nogil=True,
      cache=True, fastmath=_FM)
def dx_packed(dx2, g2, Wtp2, K, M, ldg, pstr, kb, r0, rows, j0, nj, Ct2, Ap2, Cb2, stream, nn):
    # dx_block over blocks of kb ≤ KC steps (the driver's KB), with g's rows packed: each
    # block of the item's rows of g into Ap's micro-panels, once for all nj column panels
    # (rows of g read in place lay Mp·size bytes apart: 4 KiB at M = 1024, all in one L1
    # set, dev/products_v9.md 12a).  g's
    # layout as forward_block's (ldg, pstr): whole rows, or by column panels (ldg = NR).
    # Where M takes more than one block, a whole tile's sum so far stays in Cb (the item's
    # tiles, MR·NR elements each, together) and only its last block writes dx: dx's rows
    # lie K·size bytes apart (4 KiB at K = 1024), a tile's rows in a few L1 sets, and
    # each block had read and written them (dev/products_v19.md 20f).
    # The same products in the same order: the same bits as dx_block.  nn: the next item's
    # rows of g, those after this item's, asked into L2 a share before each call (0: none)
    dx, g, Wtp, Ct, Ap = pointer(dx2), pointer(g2), pointer(Wtp2), pointer(Ct2), pointer(Ap2)
    Cb = pointer(Cb2)
    nir = (rows + MR - 1) // MR
    lp = (nn * NR + LINE - 1) // LINE  # the next rows' lines a panel (g by panels)
    nl = lp * ((M + NR - 1) // NR) if ldg == NR else (nn * ldg + LINE - 1) // LINE
    share = min(PF_SHARE, (nl + nir * nj - 1) // (nir * nj) if nn else 0)
    call = 0
    for pc in range(0, M, kb):
        kc = min(kb, M - pc)
        last = pc + kc == M
        if ldg == NR:
            pack_gp(Ap, g, pstr, rows, pc, kc)
        else:
            pack_a(Ap, g, ldg, 0, rows, pc, kc)
        for jr in range(j0, j0 + nj):
            ncol = min(NR, K - jr * NR)
            bo = (jr * M + pc) * NR
            for ir in range(nir):
                nrow = min(MR, rows - ir * MR)
                b = (r0 + ir * MR) * K + jr * NR
                cb = ((jr - j0) * MC + ir * MR) * NR  # the tile in Cb
                # a whole tile's first block straight into dx where it is the only one
                # (streamed where asked), else into Cb; later blocks into Ct, added to Cb,
                # the last one's sum into dx; one call (the micro-kernel inlined once:
                # compile time), A's strides literals.  A part of a tile: Ct, then dx.
                for q in range(call * share, min(call * share + share, nl)):
                    prefetch_l2(g, rows * ldg + q * LINE if ldg != NR else
                                rows * NR + q // lp * pstr + q % lp * LINE)
                call += 1
                whole = nrow == MR and ncol == NR
                if whole and pc == 0:
                    C, c0, ldc = (dx, b, K) if last else (Cb, cb, NR)
                else:
                    C, c0, ldc = Ct, 0, NR
                mks(kc, Ap, ir * kc * MR, MR, 1, Wtp, bo, NR, C, c0, ldc,
                    stream and whole and last and pc == 0)
                if not whole:
                    tile_out(dx, b, K, Ct, nrow, ncol, pc == 0)
                elif pc > 0 and last:
                    tile_add_to(dx, b, K, Cb, cb, NR, Ct, MR)
                elif pc > 0:
                    tile_add(Cb, cb, NR, Ct, MR)


@njit(nt.void(A1, A1, I, I, I, I), nogil=True, cache=True, fastmath=_FM)
def pack_g(Gp2, g2, Mp, pc, kc, jr):
    # rows [pc, pc+kc) of g's column panel jr → Gp[jr][p][NR]: B of dW = xᵀ·g.  Its rows
    # lie Mp elements apart, beyond the hardware prefetcher's page at M ≥ 1024: the row 16
    # ahead is asked for (the pack 25-35 % faster, dev/products_v17.md 18b)
    Gp, g = pointer(Gp2), pointer(g2)
    for p in range(kc):
        for q in range(0, NR, LINE):
            prefetch(g, (pc + p + 16) * Mp + jr * NR + q)
        cpr(Gp, (jr * kc + p) * NR, g, (pc + p) * Mp + jr * NR)


@njit(nt.void(A1, R1, I, I, I, I, I), nogil=True, cache=True, fastmath=_FM)
def pack_xt(Xp2, x2, K, pc, kc, p0, p1):
    # rows [pc + p0, pc + p1) of x's block [pc, pc+kc), all K columns → its MR-column
    # micro-panels (panel ir at Xp[ir·kc·MR:], row p at p·MR), zero-padded: A of one KC
    # block of dW = xᵀ·g, packed once for every item.  A task's rows read whole and in
    # order (by columns, XT_COLS of each row, the reads waited on memory:
    # dev/products_v45.md 46e)
    pack_at(pointer(Xp2), pointer(x2), K, 0, K, pc, kc, p0, p1)


@njit(nt.void(A1, R1, I, I, I, I, I), nogil=True, cache=True, fastmath=_FM)
def pack_x(Xa2, x2, K, r0, rows, pc, kc):
    # rows [r0, r0+rows) of x, columns [pc, pc+kc) → MR-row micro-panels at Xa: A of one
    # KC block of an h item, packed before the items (forward_block's PREPACKED)
    pack_a(pointer(Xa2), pointer(x2), K, r0, rows, pc, kc)


@njit(I(I, I, I, I, I), nogil=True, cache=True)
def xa_rows(N, K, Mp, gh, mb):
    # rows of x a chunk of the h pass packs before its items (tiled.xa_rows): whole blocks
    # of mb rows (the items'), as many as keep the chunk's panels within about XA_BYTES
    # (the chunks equal); 0, the items packing their own rows, where x is read in place or
    # h has fewer than XA_GROUPS column groups
    if not packs_x(K, Mp) or gh < XA_GROUPS or N == 0 or XA_BYTES == 0:
        return 0
    nb = (N + mb - 1) // mb
    nxc = ((N + MR - 1) // MR * MR * K * (64 // LINE) + XA_BYTES - 1) // XA_BYTES
    return mb * ((nb + nxc - 1) // nxc)


@njit(nt.void(A64, A1, A1, A1, I, I, I, I, I, I, I, I, I, I, I, A1), nogil=True,
      cache=True, fastmath=_FM)
def dw_item(part2, dW2, Xp2, Gp2, gstr, M, pld, kp, jp, kc, k0, krows, jr0, njr, block, Ct2):
    # one KC block of dW = xᵀ·g (both operands packed: rows of x and g lie 4 KiB or more
    # apart; g's panel jr at Gp[jr·gstr:], its kc rows NR elements apart: pack_g's, or
    # g itself where it lies by column panels) for rows [k0, k0+krows) and column panels
    # [jr0, jr0+njr) of dW, the tile
    # of Σ_{pc≤n<pc+kc} x[n,k]·g[n,:] summed in float64 into part; `block` says which:
    # FIRST sets part, MIDDLE adds, LAST writes dW = T(part + tile), ONLY dW = tile
    # (no partial to zero beforehand and copy afterwards: 15 % of 1024³, dev 9a).
    # part holds each tile's MR×NR float64s together, tile (k, jr) at (k − kp)·pld +
    # (jr − jp)·MR·NR for k a multiple of MR: all of dW's (kp = jp = 0, pld = Mp), or the
    # item's alone (kp = k0, jp = jr0, pld its panels' columns: the driver's `local`).
    # In dW's layout a tile's rows lay Mp·8 bytes apart (8 KiB at M = 1024), all in the
    # same few L1 sets (by tile: 1-2.5 % off the dW items at 1024³, 2048×512×2048 and
    # 10⁴×1024², dev/products_v18.md 19b)
    part, dW, Xp, Gp, Ct = pointer(part2), pointer(dW2), pointer(Xp2), pointer(Gp2), pointer(Ct2)
    nir = (krows + MR - 1) // MR
    for jr in range(jr0, jr0 + njr):
        cols = min(NR, M - jr * NR)
        for ir in range(nir):
            rows = min(MR, krows - ir * MR)
            o = (k0 - kp + ir * MR) * pld + (jr - jp) * MR * NR
            d = (k0 + ir * MR) * M + jr * NR
            # the tile of part, and dW's rows (M elements apart, beyond the hardware
            # prefetcher): asked for while mk runs (dev/products_v10.md)
            if block != ONLY:
                for q in range(0, rows * NR, 8):  # 8 float64s a line
                    prefetch(part, o + q)
            if block == LAST or block == ONLY:
                for i in range(rows):
                    for q in range(0, NR, LINE):
                        prefetch(dW, d + i * M + q)
            if block == ONLY and rows == MR and cols == NR:  # straight into dW
                mk(kc, Xp, (k0 + ir * MR) * kc, MR, 1, Gp, jr * gstr, NR, dW, d, M)
                continue
            mk(kc, Xp, (k0 + ir * MR) * kc, MR, 1, Gp, jr * gstr, NR, Ct, 0, NR)
            if block == FIRST:
                tile_set64(part, o, NR, Ct, rows)
            elif block == MIDDLE:
                tile_add64(part, o, NR, Ct, rows)
            elif block == LAST and cols == NR:
                tile_fold(dW, d, M, part, o, NR, Ct, rows)
            else:  # a last panel's columns past M are padding; ONLY's last rows
                for i in range(rows):
                    for j in range(cols):
                        t = np.float64(Ct[i * NR + j])
                        dW[d + i * M + j] = t if block == ONLY else t + part[o + i * NR + j]


# The three-pass kernel's driver (tiled.py adds its serial copy: prange → range)
def _grads_parallel(dx2, dW2, dy2, x2, W2, y2, a0, nthr, chunk_rows, ws64, wsT, want):
    # three passes for wide K·M, their sums in blocks of KB steps (below): blocks of MC
    # rows (h, epilogue, dx) with g kept whole, then dW = xᵀ·g block by block; the
    # gradients not wanted are not computed, and g is kept only for dx or dW.  nthr (the
    # fused kernel's nchunks): the threads that share each pass's items (`shares`; Numba's
    # get_num_threads in here would keep the kernel out of the disk cache); chunk_rows is
    # not used
    N, K, M = x2.shape[0], x2.shape[1], W2.shape[1]
    dx, dW, dy = dx2.reshape(-1), dW2.reshape(-1), dy2.reshape(-1)
    x, W, y = x2.reshape(-1), W2.reshape(-1), y2.reshape(-1)
    Mp = (M + NR - 1) // NR * NR
    Kp = (K + NR - 1) // NR * NR
    # the steps of each block of the three products' sums: KC3 where K and M exceed KC
    # (machine.Tile.kc3: float64's 6×32 B panel of KC steps outgrows L1), else KC
    KB = KC3 if min(K, M) > KC else KC
    # the gradients asked for (want: WANT_* bits); g is needed for dx or dW
    wdx, wdw, wdy = (want & WANT_DX) != 0, (want & WANT_DW) != 0, (want & WANT_DY) != 0
    wg = wdx or wdw
    stream = (want & STREAM) != 0  # dx and dy stored past the caches (a large call)
    # scratch from the caller (workspace.py; sizes: `scratch`): W packed (twice for dx),
    # then the rest
    nwt = M * Kp if wdx else 0
    Wp = wsT[:K * Mp]                    # B of h = x·W
    Wtp = wsT[K * Mp:K * Mp + nwt]       # B of dx = g·Wᵀ
    part = ws64[:(K + MR - 1) // MR * MR * Mp if wdw else 0]  # dW's float64 partials, by tile
    # tasks: NR rows of W and a panel of Wᵀ each, and a last one, ‖W‖² for the guard
    # (`decide`; serial after the passes, it and dW's check had cost 0.05 of a torch.mm
    # at 1024³, dev/products_v17.md 18c)
    w2 = np.empty(1)
    for jr in prange(Kp // NR + 1):
        if jr < Kp // NR:
            pack_w(Wp, W, K, M, jr * NR, min(K, jr * NR + NR))
            if wdx:
                pack_wt(Wtp, W, K, M, jr)
        else:
            w2[0] = w_squares(W)
    rest = wsT[K * Mp + nwt:]
    Np = (N + MR - 1) // MR * MR  # whole panels of MR rows for dx
    ng = Np * Mp if wg else 0
    g = rest[:ng]
    # g by column panels (G_PANELS): element (n, m) at (m // NR)·Np·NR + n·NR + m % NR, so
    # that a tile of h is MR·NR elements together, dx packs its rows from them, and dW
    # reads g's panels in place with no pack of its own (whole rows: Mp·size bytes apart,
    # 4 KiB at M = 1024, their tiles' rows in a few L1 sets; dev/products_v19.md 20a)
    ldg, pstr = (NR, Np * NR) if G_PANELS else (Mp, NR)
    # h and its epilogue, then dx, by items of MC rows × JH column panels, enough to keep
    # every thread busy.  Items run column group by column group: a thread's next item
    # reuses the W panels in its core's L2 (row block by row block, each item fetched its
    # panels from L3, and the micro-kernel waits on B's first pass over each: 8-15 %,
    # dev/products_v14.md).  f's partials keep the row-major order, so f's bits do not
    # depend on the order the items run in.  Small shapes (`h_rows`: x, y and W within
    # ROWS_BYTES, W at most half of x and g) take items of a quarter of N or less × all of
    # JH, row block by row block, the threads runs of rows: each thread's dx then reads the
    # g its own h wrote, from its own core's L2 (2-10 %, dev/products_v39.md 40e, 40g)
    mb = h_rows(N, K, M)
    rowwise = mb > 0
    mb = mb if rowwise else MC
    nb = (N + mb - 1) // mb
    nh, nx = Mp // NR, Kp // NR
    jh = JH  # halved while there are fewer than H_ITEMS items (tiled.h_panels, as ordered.py)
    while jh > 1 and nb * ((nh + jh - 1) // jh) < H_ITEMS and nb > 0 and not rowwise:
        jh //= 2
    gh = (nh + jh - 1) // jh
    fb = np.empty(nb * gh)
    # x's rows are packed into MR-row micro-panels (BLIS's packed A) where they are long
    # (`packs_x`).  Where h has XA_GROUPS column groups or more, before the items, a chunk
    # of rows of about XA_BYTES at a time (`xa_rows`, into Xa past dW's blocks), each
    # block of KB steps once, the items reading theirs back with the next block asked
    # into L2: packed by each item for its own columns, x was packed once a group, and
    # the packs waited on x's rows (the h pass 2-10 % slower at 1536×768×1280 to 2048³,
    # level at 1024³'s four groups: dev/products_v36.md 37a).  Else by each item, a block
    # at a time into its own Ap (all of x packed at once had cost 0.25 of a torch.mm at
    # 10⁵×256×256, one column group: x 100 MB written and read again, dev/products_v17.md 18a)
    nbc = min(DWB, (N + KB - 1) // KB)  # dW's blocks a chunk: scratch past g (below)
    xpb = (K + MR - 1) // MR * MR * KB  # one block's xᵀ panels
    ngp = 0 if G_PANELS else nbc * KB * Mp  # pack_g's blocks, where g is whole rows
    rc = xa_rows(N, K, Mp, gh, mb)
    Xa = rest[ng + (ngp + nbc * xpb if wdw else 0):]
    if Xa.shape[0] < min(rc, Np) * K:  # never: `scratch` makes room for it
        rc = 0
    pack = INPLACE if not packs_x(K, Mp) else (PREPACKED if rc else PACKED)
    step = rc if rc else max(N, 1)  # one chunk of all the rows where nothing is packed before
    for c0 in range(0, N, step):
        c1 = min(N, c0 + step)
        cb = (c1 - c0 + mb - 1) // mb  # the chunk's row blocks
        if pack == PREPACKED:  # tasks: a block of mb rows × KB steps each
            nkb = (K + KB - 1) // KB
            for t in prange(cb * nkb):
                b, pc = t // nkb, t % nkb * KB
                rows = min(mb, c1 - c0 - b * mb)
                pack_x(Xa[b * mb * K + pc * ((rows + MR - 1) // MR * MR):], x, K, c0 + b * mb,
                       rows, pc, min(KB, K - pc))
        # each thread a run of the chunk's items of about equal work (`shares`: which
        # thread runs an item changes no bit)
        own = shares(c1 - c0, nh, jh, nthr, mb, rowwise)
        for w in prange(nthr):
            for item in range(cb * gh):
                if own[item] != w:
                    continue
                b, c = item_at(item, cb, gh, rowwise)
                r0, j0 = c0 + b * mb, c * jh
                # without dx and dW, h lives in the item's own block; without dy, dy in a sink
                gi = g[r0 * ldg:] if wg else np.empty(MC * Mp, T)
                slot = (c0 // mb + b) * gh + c  # f's partial in row-major order
                Ap = Xa[b * mb * K:] if pack == PREPACKED else np.empty(MC * KC, T)
                # where the items pack their own rows and take all of h's columns (one
                # column group), the thread's next item's rows of x (and y) asked into L2
                # under this one's products (`ask_next`; with more groups x is read again
                # from L3 a group: level at 1000³ and 2048×512×2048, dev/products_v45.md 46b)
                q0 = q1 = 0
                if pack == PACKED and gh == 1 and item + 1 < cb and own[item + 1] == w:
                    q0, q1 = r0 + mb, min(c1, r0 + 2 * mb)
                fb[slot] = forward_block(gi, dy if wdy else np.empty(MC * M, T), x, Wp, y, a0,
                                         K, M, Mp, ldg if wg else Mp, pstr if wg else NR, KB,
                                         r0, min(mb, N - r0), j0, min(jh, nh - j0), Ap,
                                         np.empty(MR * NR, T), True, 0 if wdy else r0 * M,
                                         pack, stream and wdy, q0, q1, Ap, Ap, 0, 0, 0)
    # (the passes not wanted are skipped by `if`: a parallel loop whose count is a
    # conditional expression ran 1024³ 20 % slower, dev/machines_v8.md 11b)
    if wdx:
        # dx by items of MC rows × JX column panels, at least DX_ITEMS of them (enough
        # to keep the threads busy) unless that makes them narrower than DX_COLS columns:
        # each packs its rows of g once per KC block, for all its panels (256³ as AVX2,
        # 32 columns an item, packed g 8 times: its dx pass 1.4× slower, dev/products_v15.md).
        # The items write disjoint parts of dx: their shape changes no bit.
        # Column group by column group, as h's: a thread's next item reuses Wᵀ's panels
        # from L2 (3-6 % off the pass, dev/products_v14.md 15f); small shapes (rowwise) by
        # whole rows, enough for the threads, each thread's rows those of its h items
        widest = min(nx, max(1, nx * NR // DX_COLS))  # the most groups DX_COLS allows
        gx = min(widest, (DX_ITEMS + nb - 1) // max(nb, 1))
        if rowwise:
            gx = min(nx, max(1, (nthr + nb - 1) // max(nb, 1)))
        JX = (nx + gx - 1) // gx
        # one column group more where that leaves the busiest thread less work (1000³ as
        # AVX2: 7 row blocks × 3 groups, one thread's share 4.5 % over the mean, its dx
        # items ending 1 ms after the other's; × 4 groups 1.6 %: dev/products_v46.md 47b),
        # unless that makes the items narrower than DX_COLS
        if not rowwise and gx < widest:
            J2 = (nx + gx) // (gx + 1)
            if busiest(N, nx, J2, nthr, mb, False) < busiest(N, nx, JX, nthr, mb, False):
                JX = J2
        gx = (nx + JX - 1) // JX
        own = shares(N, nx, JX, nthr, mb, rowwise)
        for w in prange(nthr):
            Cb = np.empty(MC * JX * NR if M > KB else 0, T)  # an item's tiles (dx_packed)
            for item in range(nb * gx):
                if own[item] == w:
                    b, c = item_at(item, nb, gx, rowwise)
                    r0, j0 = b * mb, c * JX
                    # one column group: the thread's next item's rows of g asked into L2
                    # under this one's products (dev/products_v45.md 46c)
                    nn = min(mb, N - r0 - mb) if gx == 1 and item + 1 < nb and \
                        own[item + 1] == w else 0
                    dx_packed(dx, g[r0 * ldg:], Wtp, K, M, ldg, pstr, KB, r0, min(mb, N - r0),
                              j0, min(JX, nx - j0), np.empty(MR * NR, T),
                              np.empty(MC * KC, T), Cb, stream, nn)
    # dW = xᵀ·g by chunks of DWB blocks of KB rows: the chunk's g by column panels (where
    # g is not so already) and xᵀ by MC rows of dW packed once for all threads, then
    # (MC rows × jw·NR columns of dW) items, each summing the chunk's blocks in turn into
    # its part of the float64 partial, which stays in its core's L2 (block by block for all
    # items, the partial came from L3 each block: 25 % slower, dev/products_v10.md).  Each
    # tile's sum is the same.
    nk = (K + MC - 1) // MC
    jw = JB  # panels a dW item, fewer where that leaves fewer than H_ITEMS items (as jh)
    while jw > 1 and nk * ((nh + jw - 1) // jw) < H_ITEMS:
        jw //= 2
    njb = (nh + jw - 1) // jw
    if N == 0 and wdw:  # no block of rows: dW = 0
        dW[:] = 0.0
    Gp = rest[ng:][:ngp]
    Xp = rest[ng + ngp:][:nbc * xpb]
    # one chunk of blocks (N ≤ DWB·KB) and room in part for a region per thread: each
    # thread's items sum into its own region (see dw_item's `part`)
    lsize = MC * jw * NR
    local = N <= DWB * KB and nthr * lsize <= part.shape[0]
    if wdw:
        ownw = shares(K, nh, jw, nthr, MC, False)  # dW's items: MC rows of dW × jw panels
        for c0 in range(0, N, DWB * KB):
            nbk = min(DWB, (N - c0 + KB - 1) // KB)
            # tasks: g's column panels (where g is in rows) and xᵀ's, as many a block as
            # XT_COLS columns of x make (by MC, 256³'s three tasks had left one thread all
            # of them after the panels' eight no-ops; dev/products_v19.md 20l), each a run
            # of the block's rows (pack_xt)
            npg = 0 if G_PANELS else Mp // NR
            nxt = (K + XT_COLS - 1) // XT_COLS
            for t in prange(nbk * (npg + nxt)):
                b, u = t // (npg + nxt), t % (npg + nxt)
                pc = c0 + b * KB
                kc = min(KB, N - pc)
                if u < npg:
                    pack_g(Gp[b * KB * Mp:], g, Mp, pc, kc, u)
                else:
                    r = u - npg  # the task's run of the block's rows
                    pack_xt(Xp[b * xpb:], x, K, pc, kc, kc * r // nxt, kc * (r + 1) // nxt)
            for w in prange(nthr):  # column group by column group, as h's and dx's
                Ct = np.empty(MR * NR, T)
                # one chunk: each item sums all its blocks in turn, so its partial can
                # live in a region of the thread's own, reused item after item (it stays
                # in L2), rather than in its place in all of dW's (8 MiB at 1024³, from
                # memory: 1-3 % of a call on one thread, dev/products_v24.md 25b)
                pw = part[w * lsize:(w + 1) * lsize] if local else part
                for item in range(nk * njb):
                    if ownw[item] != w:
                        continue
                    kb, jb = item % nk, item // nk
                    pld, kp, jp = (jw * NR, kb * MC, jb * jw) if local else (Mp, 0, 0)
                    for b in range(nbk):
                        pc = c0 + b * KB
                        kc = min(KB, N - pc)
                        last = pc + kc == N
                        block = (ONLY if last else FIRST) if pc == 0 else \
                            (LAST if last else MIDDLE)
                        # B: g's panels in place (G_PANELS), else pack_g's
                        G, gs = (g[pc * NR:], Np * NR) if G_PANELS else (Gp[b * KB * Mp:], kc * NR)
                        dw_item(pw, dW, Xp[b * xpb:], G, gs, M, pld, kp, jp, kc, kb * MC,
                                min(MC, K - kb * MC), jb * jw, min(jw, nh - jb * jw), block,
                                Ct)
    f = 0.0
    for b in range(nb * gh):
        f += fb[b]
    # the guard's count of dW's non-finite elements, split among the threads (an integer
    # sum: the same count)
    bad = np.zeros(nthr, np.int64)
    if wdw:
        for w in prange(nthr):
            bad[w] = count_nonfinite(dW[w * dW.shape[0] // nthr:(w + 1) * dW.shape[0] // nthr])
    return decide(f, w2[0], bad.sum())


# part loss

@njit(nt.float64(R1, A1, R1, I, I, I, I, I, I), nogil=True, cache=True, fastmath=_FM)
def loss_block(x2, Wp2, y2, K, M, Mp, r0, rows, nxt):
    # f of rows [r0, r0+rows) for the loss kernel.  The block's rows of x are packed where
    # the grads kernel packs them (`packs_x`, dev/products_v10.md 13d); forward_block sees
    # the block as rows from 0 of x and y.  The same products as in place: the same f.
    # h's rows M apart, as the fused kernel's g: its epilogue one run (dev/products_v25.md
    # 26i).  The next block's nxt rows asked for into L2 under h's calls (dev/products_v37.md
    # 38b)
    h = np.empty(MC * M, T)
    return forward_block(h, h, x2[r0 * K:], Wp2, y2[r0 * M:], 0.0, K, M, Mp, M, NR, KC, 0,
                         rows, 0, Mp // NR, np.empty(MC * KC, T), np.empty(MR * NR, T), False, 0,
                         PACKED if packs_x(K, Mp) else INPLACE, False, rows, rows + nxt, h, h, 0,
                         0, 0)


# The loss kernel's driver (tiled.py adds its serial copy: prange → range)
def _loss_parallel(x2, W2, y2, wsT):
    N, K, M = x2.shape[0], x2.shape[1], W2.shape[1]
    x, W, y = x2.reshape(-1), W2.reshape(-1), y2.reshape(-1)
    Mp = (M + NR - 1) // NR * NR
    Wp = wsT[:K * Mp]
    pack_w(Wp, W, K, M, 0, K)  # serial: one parallel loop less to compile
    nb = (N + MC - 1) // MC
    fb = np.empty(nb)
    # each block asks for the next block's rows under its calls where they are at most
    # PF_BLOCK bytes (dev/products_v37.md 38b)
    ask = MC * (K + M) * (64 // LINE) <= PF_BLOCK
    for b in prange(nb):  # one call a block: a short parallel body compiles fast
        r0 = b * MC
        fb[b] = loss_block(x, Wp, y, K, M, Mp, r0, min(MC, N - r0),
                           min(MC, max(0, N - r0 - MC)) if ask else 0)
    f = 0.0
    for b in range(nb):
        f += fb[b]
    return f if f - f == 0.0 else np.nan  # not finite: the caller recomputes in float64
