"""The skinny row function with dW's sums in loops of their own (dev/products_v16.md 17a).

    python dev/skinny_split_v16.py K M [rounds] [B]

The generated row function of skinny.py keeps K·M dW accumulators live across its row
loop: at 4×4 on AVX2 (16 ymm registers) they fill the register file, and the loop spills
(a 1.7 KiB stack frame, 56 stack operands in 315 instructions for 4 rows).  The variant
here runs blocks of B rows: the row loop without dW, storing x and g as float64 columns
of two block buffers, then one loop per k over the block, with M accumulators.  Both
row functions through chunks.py's serial driver, one thread, N = 10⁶, alternating; also the
generated kernels without dW (nodW) and for f alone (f), for scale.  SHOW=1 prints the
split source.  Under /tmp/runavx2.sh-style forcing (loopgrad.bench.isa.child_environment
("avx2")) it measures the AVX2 entry.
"""
import importlib.util, os, sys, tempfile, time
import numpy as np
from loopgrad.cpu import chunks, jit, machine, rows, skinny

K, M = int(sys.argv[1]), int(sys.argv[2])
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 9
B = int(sys.argv[4]) if len(sys.argv) > 4 else 256
bits = machine.entry().vector_bits


def split_source(K, M, B):
    src = skinny._source(K, M, bits)
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


from numba import cfunc
sig = chunks.row_signature("grads", np.dtype(np.float32))
fns = {}
with jit.settings(vector_bits=bits, llvm=skinny._llvm_options(K, M)):
    for name, src in (("now", skinny._source(K, M, bits)), ("split", split_source(K, M, B)), ("nodW", skinny._source(K, M, bits, 5)), ("f", skinny._source(K, M, bits, 0))):
        if name == "split" and os.environ.get("SHOW"):
            print(src)
        fns[name] = cfunc(sig, fastmath=skinny._FM)(load(f"sk_{name}", src).rows)
drv = chunks.driver("grads", np.float32, False)
N = 10 ** 6
rng = np.random.default_rng(0)
x, W, y = (rng.standard_normal(s, dtype=np.float32) for s in ((N, K), (K, M), (N, M)))
R, nc, stride = rows.plan(N, K, M)
res = {}
for name, fn in fns.items():
    outs = [np.full(a.shape, np.nan, np.float32) for a in (x, W, y)]
    part = np.full((nc, stride), np.nan)
    f = drv(fn.address, outs[0], outs[1], outs[2], part, x, W, y, 0.0, R, 7)
    res[name] = (f, *outs)
a, b = res["now"], res["split"]
print("split against as is: f", a[0], b[0], "rel", abs(a[0] - b[0]) / a[0],
      "dx same" if np.array_equal(a[1], b[1]) else "dx DIFF", "dy same" if np.array_equal(a[3], b[3]) else "dy DIFF",
      "dW max rel %.2e" % np.max(np.abs(a[2] - b[2]) / np.abs(a[2])))
times = {k: [] for k in fns}
outs = [np.empty(a.shape, np.float32) for a in (x, W, y)]
part = np.empty((nc, stride))
for r in range(rounds):
    for name, fn in fns.items():
        t = time.perf_counter()
        drv(fn.address, outs[0], outs[1], outs[2], part, x, W, y, 0.0, R, 7)
        times[name].append(time.perf_counter() - t)
for name in fns:
    print(f"{name:6s} {np.median(times[name]) * 1e3:7.2f} ms  (min {min(times[name]) * 1e3:.2f})")
print("split / now, paired median: %.3f" % np.median(np.array(times["split"]) / np.array(times["now"])))
