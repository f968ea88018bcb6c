"""The fused kernel's pieces, one thread, with the shape as the driver's constants
(dev/products_v16.md 17g): since stop 64 dev/fused_phases_v54.py with CONST=1, which holds
the options; this name runs it so, as the dev notes' commands of stops 16–63 ran it.
Those figures are the pieces specialized to the shape, not the generic kernel's
(dev/products_v54.md 55a).

    [REP=244] python dev/fused_phases_v16.py N K M [rounds]
"""
import os, runpy

os.environ["CONST"] = "1"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_phases_v54.py"),
               run_name="__main__")
