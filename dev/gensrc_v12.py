"""Digests of every generated tiled module's source, to show a refactor leaves them byte for byte (dev/cold_v12.md 16c).

    python dev/gensrc_v12.py [folder]   # run from two checkouts (PYTHONPATH) and diff; folder: write the sources
"""
import sys, hashlib
from loopgrad.cpu import machine, tiled
for isa, e in machine.TABLE.items():
    for v in e.tiles:
        common = f"tiled_{isa}_{v}"
        for part in ("common", "fused", "three", "loss"):
            src = tiled._source(e, v, part, common if part != "common" else "")
            if len(sys.argv) > 1:
                open(f"{sys.argv[1]}/{isa}_{v}_{part}.py", "w").write(src)
            print(isa, v, part, hashlib.sha256(src.encode()).hexdigest()[:12])
