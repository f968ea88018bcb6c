"""Peak resident memory of one call, against the bytes of its inputs and outputs.

    python benchmarks/memory.py --n 10000000 --impl loopgrad   # or torch

Linux only (reads /proc/self/status, resets the peak through
/proc/self/clear_refs).  Compiles first on a small call, then allocates the
inputs, resets the peak and makes one call: prints one JSON line with the
resident memory the call added at its peak, beside inputs and outputs.
"""

import argparse
import json

import numpy as np


def _kib(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _run(impl):
    if impl == "loopgrad":
        import loopgrad
        return lambda x, W, y: loopgrad.grads(x, W, y)
    import torch

    def notebook(x, W, y):
        xt, Wt, yt = (torch.from_numpy(a).requires_grad_() for a in (x, W, y))
        z = torch.maximum(torch.matmul(xt, Wt), torch.tensor(0)) - yt
        f = torch.trace(torch.matmul(z.T, z))
        f.backward()
        return f.item(), xt.grad, Wt.grad, yt.grad
    return notebook


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10**7)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--impl", choices=["loopgrad", "torch"], default="loopgrad")
    a = ap.parse_args()
    fn = _run(a.impl)
    rng = np.random.default_rng(0)
    fn(*(rng.standard_normal(s).astype(np.float32) for s in ((1000, a.k), (a.k, a.m), (1000, a.m))))
    base = _kib("VmRSS")
    x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((a.n, a.k), (a.k, a.m), (a.n, a.m)))
    inputs = x.nbytes + W.nbytes + y.nbytes
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current resident size
    out = fn(x, W, y)
    peak = _kib("VmHWM")
    outputs = sum(np.asarray(o).nbytes for o in out[1:])
    print(json.dumps({
        "impl": a.impl, "shape": [a.n, a.k, a.m], "inputs_mb": inputs / 2**20,
        "outputs_mb": outputs / 2**20, "peak_over_base_mb": (peak - base) / 2**10,
        "ratio": (peak - base) * 1024 / (inputs + outputs)}))


if __name__ == "__main__":
    main()
