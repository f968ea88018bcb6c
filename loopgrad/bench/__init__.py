"""`loopgrad bench`: f and its three gradients timed implementation by implementation.

    engine.py     cells: inputs, the check against the float64 reference, timing, JSON
    impls.py      the implementations (loopgrad, torch, torch.compile, JAX, NumPy, CUDA)
    report.py     the table, the Markdown section for benchmarks/RESULTS.md, the plot
    ceilings.py   the machine's memory-copy and matmul ceilings (--ceilings)
    isa.py        --isa: the run as on a machine of another vector ISA, in a child process
"""

from .engine import DESCRIPTION, add_arguments, run

__all__ = ["DESCRIPTION", "add_arguments", "run"]
