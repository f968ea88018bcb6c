"""`python -m loopgrad.cpu.compile_one NAME VARIANT PARALLEL ISA`: compile one tiled kernel
into Numba's disk cache and exit (0, or 1 with the error on stderr).

The child process background.py starts for a cold first call; it inherits the
caller's environment (NUMBA_CACHE_DIR, NUMBA_CPU_NAME, LOOPGRAD_CPU_ISA), so it
compiles what the caller's next call looks up.
"""

import logging
import sys


def main(argv) -> int:
    name, variant, parallel, isa = argv
    logging.getLogger("loopgrad").setLevel(logging.ERROR)  # the caller said what compiles
    from . import tiled

    tiled.kernel(name, variant, parallel == "1", isa)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
