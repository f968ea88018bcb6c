"""rowvec.py's float32 rows in cache, one thread: the module's options against variants,
compiled in one process and timed in alternation; ns and cycles a row (the clock read
from a chain of imul + xor, 4 cycles an iteration), each variant's outputs against float64
(dev/products_v56.md 57a).

    [ISA env] [A0=0.5] [WANT=7] [ASM=prefix] python dev/rows_incache_v56.py K M \
        [rows=8192] [calls=300] [rounds=5] VARIANT ...

A VARIANT is row_vectors' keyword arguments ('diagonals=True', 'dw_across=False'), after
"NAME=value;" rowvec.py's or intrinsics.py's module globals set while it compiles
('THIN_ONE_CHAIN=8;'), or 'groups=512': rowgroups.py's rows on vectors of that many bits.
'module' is the options the generated module would pass.  ASM: each variant's assembly to
prefix.<i>.s.  The `diagonals` option is dev/diagonals_v56.diff's (apply it first).
"""
import os, sys, time, numpy as np, numba
from loopgrad.cpu import rowvec, skinny, jit, machine, intrinsics
from loopgrad.cpu.intrinsics import pointer
from loopgrad._inputs import WANT_ALL

bits = machine.entry().vector_bits


def module_options(K, M, bits):  # the row_vectors options skinny._on_intrinsics passes
    o = dict(dw_block=rowvec.dw_rows(K, M, bits), dw_across=rowvec.dw_across(K, M, bits),
             dx_across=rowvec.dx_across(K, M, bits), f_parts=rowvec.f_parts(M, bits))
    if o["dw_block"] and bits >= 512:
        o["dw_lanes"] = 8
    if hasattr(rowvec, "diagonals"):  # with dev/diagonals_v56.diff
        o["diagonals"] = rowvec.diagonals(K, M, bits)
    if bits < 512 and rowvec.partial(K, M):
        o["masked_store"] = False
    return o


def parse(arg):  # a VARIANT: (row_vectors' options, module globals)
    g, _, kw = arg.rpartition(";")
    return eval(f"dict({kw})"), eval(f"dict({g})") if g else {}


def build(K, M, want, opts, globs, compile_it):
    # the intrinsic for a variant, compiled (compile_it(intr)) with its globals set
    mods = {k: intrinsics if hasattr(intrinsics, k) and not hasattr(rowvec, k) else rowvec
            for k in globs}
    old = {k: getattr(mods[k], k) for k in globs}
    for k, v in globs.items():
        setattr(mods[k], k, v)
    try:
        opts = dict(opts)
        if "groups" in opts:
            from loopgrad.cpu import rowgroups
            intr = rowgroups.row_groups(K, M, opts.pop("groups"), want)
        else:
            intr = rowvec.row_vectors(K, M, want, **{**module_options(K, M, bits), **opts})
        with jit.settings(vector_bits=bits, llvm=skinny._llvm_options(K, M, bits)):
            return compile_it(intr)
    finally:
        for k, v in old.items():
            setattr(mods[k], k, v)


def in_process(intr):
    @numba.njit
    def run(dx, dW, dy, x, W, y, a0, start, stop, flags):
        return intr(pointer(dx), pointer(dW), pointer(dy), pointer(x), pointer(W), pointer(y),
                    a0, start, stop, flags)
    run.compile("(float32[:, ::1], float64[::1], float32[:, ::1], float32[:, ::1], "
                "float32[:, ::1], float32[:, ::1], float64, int64, int64, int64)")
    return run


@numba.njit
def chain(n, a):
    x = a
    for i in range(n):
        x = (x * a) ^ i
    return x


def clock_ghz():
    chain(10, 3)
    best = 1e9
    for _ in range(5):
        s = time.perf_counter(); chain(20_000_000, 12345); best = min(best, time.perf_counter() - s)
    return 4 * 20e6 / best / 1e9


if __name__ == "__main__":
    K, M = int(sys.argv[1]), int(sys.argv[2])
    N, CALLS, ROUNDS = (int(v) for v in
                        (sys.argv[3:6] + ["8192", "300", "5"][len(sys.argv[3:6]):]))
    WANT, A0 = int(os.environ.get("WANT", WANT_ALL)), float(os.environ.get("A0", 0.5))
    ghz = clock_ghz()
    kern = {}
    for name in ["module"] + sys.argv[6:]:
        kern[name] = build(K, M, WANT, *(({}, {}) if name == "module" else parse(name)),
                           in_process)
        if os.environ.get("ASM"):
            open(f"{os.environ['ASM']}.{len(kern) - 1}.s", "w").write(
                next(iter(kern[name].inspect_asm().values())))
    rng = np.random.default_rng(0)
    x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
    h = x.astype(np.float64) @ W
    z = np.maximum(h, 0) - y
    g = 2 * z * np.where(h > 0, 1.0, np.where(h == 0, A0, 0.0))
    ref = {"f": (z * z).sum(), "dx": g @ W.T.astype(np.float64),
           "dW": x.T.astype(np.float64) @ g, "dy": -2 * z}
    for name, run in kern.items():  # outputs poisoned first
        dx, dy, dW = np.full((N, K), np.nan, np.float32), np.full((N, M), np.nan, np.float32), \
            np.full(K * M, np.nan)
        f = run(dx, dW, dy, x, W, y, A0, 0, N, 0)
        got = {"f": f, "dx": dx, "dW": dW.reshape(K, M), "dy": dy}
        err = {k: float(np.max(np.abs(got[k] - ref[k])) / max(1.0, float(np.max(np.abs(ref[k])))))
               for k in ref}
        print(name, "relative errors", {k: f"{v:.1e}" for k, v in err.items()})
    ts = {n: [] for n in kern}
    for r in range(ROUNDS):
        for name, run in kern.items():
            best = 1e9
            for _ in range(CALLS):
                s = time.perf_counter(); run(dx, dW, dy, x, W, y, A0, 0, N, 0)
                best = min(best, time.perf_counter() - s)
            ts[name].append(best / N * 1e9)
    print(f"K={K} M={M} {bits}-bit, {N} rows, clock {ghz:.2f} GHz; best of {CALLS} calls a round:")
    for name, v in ts.items():
        print(f"  {name:>24}: ns a row {' '.join(f'{t:.2f}' for t in v)}  cycles {min(v) * ghz:.1f}")
