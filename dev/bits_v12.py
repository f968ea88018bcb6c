"""The tiled kernels' bits, as digests, for comparing two checkouts (dev/cold_v12.md).

    python dev/bits_v12.py [native|avx2|generic]

Runs each variant's serial drivers (tiled.driver: bitwise the kernels, nothing to compile
but the pieces) on fixed inputs through the fused, three-pass and loss paths, odd shapes,
exact ties, and prints one digest per (variant, kernel, shape).  Run from two checkouts
(PYTHONPATH) and diff.  The ISA is forced as `loopgrad bench --isa` forces it.
"""
import hashlib, os, subprocess, sys  # noqa: E401

isa = sys.argv[1] if len(sys.argv) > 1 else "native"
if isa != "native" and "LG_BITS_CHILD" not in os.environ:
    from loopgrad.bench import isa as bisa
    env = {**bisa.child_environment(isa), "LG_BITS_CHILD": "1"}
    sys.exit(subprocess.call([sys.executable, *sys.argv], env=env))

import numpy as np  # noqa: E402
from loopgrad import _inputs  # noqa: E402
from loopgrad.cpu import machine, tiled  # noqa: E402

e = machine.entry()
SHAPES = [(1000, 64, 64), (203, 37, 45), (300, 200, 150), (257, 130, 260), (97, 16, 40),
          (1001, 8, 200)]
for v in e.tiles:
    T = np.dtype(v.split("-")[0])
    for N, K, M in SHAPES:
        if tiled.variant(K, M, T) != v:
            continue
        r = np.random.default_rng(N * K + M)
        x = r.standard_normal((N, K)).astype(T)
        W = r.standard_normal((K, M)).astype(T)
        x[:, 0] = 0.0
        W[:, :3] = 0.0  # h == 0 exactly in three columns: ties
        y = r.standard_normal((N, M)).astype(T)
        name, _, nchunks, rows = tiled.plan(N, K, M, T)
        for kname in (name, "grads" if name == "grads_fused" else "grads_fused", "loss"):
            d = tiled.driver(kname, v)
            if kname == "loss":
                wsT = np.full(tiled.scratch("loss", v, N, K, M, 1)[1], np.nan, T)
                out = [d(x, W, y, wsT)]
            else:
                nc, cr = (nchunks, rows) if kname == name else \
                    (1, -(-N // e.tiles[v].KC) * e.tiles[v].KC) if kname == "grads" else (2, -(-N // 2 // e.tiles[v].MC) * e.tiles[v].MC)
                n64, nT = tiled.scratch(kname, v, N, K, M, nc)
                dx, dW, dy = (np.full(s, np.nan, T) for s in ((N, K), (K, M), (N, M)))
                f = d(dx, dW, dy, x, W, y, 0.0, nc, cr, np.full(n64, np.nan), np.full(nT, np.nan, T),
                      _inputs.WANT_ALL)
                out = [f, dx, dW, dy]
            h = hashlib.sha256(b"".join(np.asarray(o).tobytes() for o in out)).hexdigest()[:16]
            print(e.isa, v, kname, f"{N}x{K}x{M}", h, f"f={out[0]!r}")
