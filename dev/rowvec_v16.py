"""The skinny rows vectorized along each row (loopgrad/cpu/rowvec.py) against skinny.py's
generated row function, through chunks.py's serial driver, one thread, N = 10⁶, the two
alternating (dev/products_v16.md 17e).  Compares dx and dy bits (the same arithmetic
without FMA: float64 inputs) and f and dW (another order of their sums).  Before its
FMA for float32 inputs, rowvec's intrinsic took a flag, and this script timed both.
CONTRACT=1 adds skinny's row function compiled with `contract` (FMA) as well; SPLIT=B
the variant of 17a (first dev/skinny_split_v16.py): blocks of B rows, the row loop
without dW, storing x and g as float64 columns, then one loop a k with M accumulators.
"lanes" is always the row function LLVM vectorizes over rows (rowvec's choice turned off
while its source is made).

    python dev/rowvec_v16.py K M [rounds] [float32|float64]
"""
import importlib.util, os, sys, tempfile, time
import numpy as np
from numba import cfunc
from loopgrad.cpu import chunks, jit, machine, rows, skinny, rowvec

K, M = int(sys.argv[1]), int(sys.argv[2])
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 9
dt = np.dtype(sys.argv[4] if len(sys.argv) > 4 else "float32")
bits = machine.entry().vector_bits
_rv = rowvec.row_vectors(K, M, 7)


def by_row(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop, K_, M_, want_):
    return _rv(dx, dW_part, dy, x, W, y, relu_grad_at_zero, start, stop)


def lanes_source():
    # skinny's source over rows, even where it would take rowvec's intrinsics
    applies, rowvec.applies = rowvec.applies, lambda *a: False
    try:
        return skinny._source(K, M, bits)
    finally:
        rowvec.applies = applies


def split_source(K, M, B):
    src = lanes_source()
    head, tail = src.split("\n\ndef rows_loss")
    lines = head.splitlines()
    out = []
    for ln in lines:
        if ln.startswith("    f = 0.0"):
            out += [ln, f"    xs = np.empty({K * B})", f"    gs = np.empty({M * B})",
                    f"    for b0 in range(np.uint64(start), np.uint64(stop), np.uint64({B})):",
                    f"        b1 = min(b0 + np.uint64({B}), np.uint64(stop))"]
            continue
        if ln.startswith("    for n in range(np.uint64(start)"):
            out.append("        for n in range(b0, b1):")
            continue
        if ln.startswith("        d") and "+=" in ln:
            continue  # dW moves to the k loops
        if ln.startswith("        ") and not ln.startswith("        for"):
            out.append("    " + ln)
            continue
        out.append(ln)
    # the x and g stores at the end of the row loop, then the k loops, before dW_part's
    i = next(j for j, ln in enumerate(out) if ln.startswith("    dW_part["))
    ins = ["            r = n - b0"]
    ins += [f"            xs[r + np.uint64({k * B})] = x{k}" for k in range(K)]
    ins += [f"            gs[r + np.uint64({m * B})] = g{m}" for m in range(M)]
    for k in range(K):
        ins += ["        for r in range(b1 - b0):", f"            xk = xs[r + np.uint64({k * B})]"]
        ins += [f"            d{k}_{m} += xk * gs[r + np.uint64({m * B})]" for m in range(M)]
    out[i:i] = ins
    return "\n".join(out) + "\n\ndef rows_loss" + tail


def load(name, src):
    path = os.path.join(tempfile.mkdtemp(), name + ".py")
    open(path, "w").write(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


sig = chunks.row_signature("grads", dt)
with jit.settings(vector_bits=bits, llvm=skinny._llvm_options(K, M)):
    fns = {"lanes": cfunc(sig, fastmath=skinny._FM)(load("sk_now", lanes_source()).rows),
           "by_row": cfunc(sig)(by_row)}
    if os.environ.get("CONTRACT"):  # skinny's row function with FMA (contract), for scale
        fns["lanes+fma"] = cfunc(sig, fastmath=skinny._FM | {"contract"})(
            load("sk_fma", lanes_source()).rows)
    if os.environ.get("SPLIT"):
        fns["split"] = cfunc(sig, fastmath=skinny._FM)(
            load("sk_split", split_source(K, M, int(os.environ["SPLIT"]))).rows)
drv = chunks.driver("grads", dt, False)
N = 10 ** 6
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s).astype(dt) for s in ((N, K), (K, M), (N, M)))
x[5, 0], x[9, :] = np.nan, 0.0  # a NaN h in row 5, ties in row 9
R, nc, stride = rows.plan(N, K, M)
res = {}
for name, fn in fns.items():
    outs = [np.full(a.shape, np.nan, dt) for a in (x, W, y)]
    part = np.full((nc, stride), np.nan)
    f = drv(fn.address, outs[0], outs[1], outs[2], part, x, W, y, 0.5, R, 7)
    res[name] = (f, *outs)
a, b = res["lanes"], res["by_row"]
eq = lambda u, v: np.array_equal(u, v, equal_nan=True)
print("f", a[0], b[0], "| dx same" if eq(a[1], b[1]) else "| dx DIFF", "| dy same" if eq(a[3], b[3]) else "| dy DIFF",
      "| dW max rel %.2e" % np.nanmax(np.abs(a[2] - b[2]) / np.abs(a[2])), "| NaN left:", any(np.isnan(o).sum() > (N * 2 if o.shape[0] == N else 0) for o in b[1:]))
times = {k: [] for k in fns}
outs = [np.empty(a.shape, dt) for a in (x, W, y)]
part = np.empty((nc, stride))
x[5, 0] = 0.0
for r in range(rounds):
    for name, fn in fns.items():
        t = time.perf_counter()
        drv(fn.address, outs[0], outs[1], outs[2], part, x, W, y, 0.0, R, 7)
        times[name].append(time.perf_counter() - t)
for name in fns:
    print(f"{name:7s} {np.median(times[name]) * 1e3:7.2f} ms  (min {min(times[name]) * 1e3:.2f})")
for name in fns:
    print(f"{name} / lanes, paired median: %.3f" % np.median(np.array(times[name]) / np.array(times["lanes"])))
if os.environ.get("ASM"):
    open(os.environ["ASM"], "w").write(fns["by_row"]._library.get_asm_str())
