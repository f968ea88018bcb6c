"""rowvec.py's row intrinsic with and without its knobs (dx and dy stored non-temporally:
stream, with the STREAM flag always passed; x's and y's rows prefetched pf bytes ahead), two threads' chunks
in a prange driver, the variants alternating in one process (dev/products_v26.md 27a).

    python dev/rowvec_nt_v26.py N K M rounds VARIANT... [fresh]
    VARIANT: base, or knobs joined by +: nt, pfD (D bytes ahead), nar (float32 arithmetic),
    nob (dW row by row: no dw_block), blk (dw_block 32), perm (lanes by shuffles, no stack
    slot: slot_past 99; dev/products_v41.md 42f), one8 (float32 sums in one chain up to 8
    terms, as before 42g: THIN_ONE_CHAIN 8 while its driver compiles), parts (partial rows
    stored as power-of-two parts, not masked: dev/products_v42.md 43a), acr (float32 dW
    along x's rows, row by row: dw_across, dev/products_v43.md 44b)
"""
import sys, time
import numpy as np
from numba import njit, prange, get_num_threads
from loopgrad.cpu import machine, rowvec
from loopgrad.cpu.intrinsics import pointer

N, K, M, rounds = (int(a) for a in sys.argv[1:5])
names = [a for a in sys.argv[5:] if a != "fresh"]
fresh = "fresh" in sys.argv[5:]
bits = machine.entry().vector_bits
dw = rowvec.dw_rows(K, M, bits)


def knobs(name):
    # "base": no knob; else "+"-joined: nt (stream), pfD (prefetch D bytes), nar (narrow)
    parts = [] if name == "base" else name.split("+")
    pf = next((int(p[2:]) for p in parts if p.startswith("pf")), 0)
    return dict(stream="nt" in parts, pf=pf, narrow="nar" in parts,
                dw_block=0 if "nob" in parts else 32 if "blk" in parts else dw,
                slot_past=99 if "perm" in parts else 4, masked_store="parts" not in parts,
                dw_across="acr" in parts)


def driver(r):
    @njit(parallel=True)
    def drive(dx, dWp, dy, x, W, y, a0, nchunks):
        n = x.shape[0]
        per = (n + nchunks - 1) // nchunks
        fs = np.zeros(nchunks)
        for c in prange(nchunks):
            s = c * per
            e = min(n, s + per)
            fs[c] = r(pointer(dx), pointer(dWp[c]), pointer(dy), pointer(x), pointer(W),
                      pointer(y), a0, s, e, 8)
        return fs.sum()
    return drive


rng = np.random.default_rng(0)
DT = np.dtype(__import__("os").environ.get("DT", "float32"))
x = rng.standard_normal((N, K)).astype(DT)
W = rng.standard_normal((K, M)).astype(DT)
y = rng.standard_normal((N, M)).astype(DT)
T = get_num_threads()
C = int(__import__("os").environ.get("CHUNKS", T))
drv = {}
dx, dy, dWp = np.empty_like(x), np.empty_like(y), np.zeros((C, K * M))
for nm in names:
    drv[nm] = driver(rowvec.row_vectors(K, M, 7, **knobs(nm)))
    kept = rowvec.THIN_ONE_CHAIN
    rowvec.THIN_ONE_CHAIN = 8 if "one8" in nm.split("+") else kept
    drv[nm](dx, dWp, dy, x, W, y, 0.5, C)  # compiles under the chain length asked
    rowvec.THIN_ONE_CHAIN = kept
ref = None
for nm in names:
    dx[:] = np.nan; dy[:] = np.nan
    f = drv[nm](dx, dWp, dy, x, W, y, 0.5, C)
    out = (f, dx.copy(), dy.copy(), dWp.sum(0))
    if ref is None:
        ref = out
    same = out[0] == ref[0] and all(np.array_equal(a, b) for a, b in zip(out[1:], ref[1:]))
    err = [float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)) for a, b in zip(out[1:], ref[1:])]
    print(nm, "same bits" if same else f"DIFFERENT: f rel {abs(out[0] / ref[0] - 1):.2e}, "
          f"dx, dy, dW max rel to max {err[0]:.2e} {err[1]:.2e} {err[2]:.2e}", flush=True)
times = {nm: [] for nm in names}
for r in range(rounds):
    for nm in names:
        ts = []
        for _ in range(15):
            if fresh:
                dx, dy = np.empty_like(x), np.empty_like(y)
            t0 = time.perf_counter()
            drv[nm](dx, dWp, dy, x, W, y, 0.5, C)
            ts.append(time.perf_counter() - t0)
        times[nm].append(np.median(ts) * 1e3)
for nm in names:
    t = times[nm]
    print(f"{nm:8s} {np.median(t):7.3f} ms  ({min(t):.3f}-{max(t):.3f})  x base {np.median(np.array(t)/np.array(times[names[0]])):.3f}")
