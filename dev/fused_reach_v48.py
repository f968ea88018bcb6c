"""A script run with the fused kernel's reach raised (tiled._FUSED_KM = FKM; 0: as it is),
so that shapes of K·Mp up to FKM take the fused kernel (dev/products_v48.md 49b):

    FKM=65536 python dev/fused_reach_v48.py dev/api_best_v48.py 100000x256x256

Compare alternating processes with FKM=0; DTYPE=float64 passes on to the script.
"""
import os, sys, runpy
from loopgrad.cpu import tiled
v = int(os.environ.get("FKM", "0"))
if v:
    tiled._FUSED_KM = v
for f in (tiled._generated, tiled.module, tiled._kernel, tiled._dispatcher, tiled._plan):
    f.cache_clear()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
