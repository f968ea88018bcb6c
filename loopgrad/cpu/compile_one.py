"""`python -m loopgrad.cpu.compile_one NAME VARIANT PARALLEL ISA` (a tiled kernel),
`python -m loopgrad.cpu.compile_one shaped VARIANT PARALLEL ISA K M` (the fused kernel
specialized to a shape, shaped.py) or
`python -m loopgrad.cpu.compile_one rows NAME DTYPE K M WANT` (a parallel row kernel):
compile one kernel into Numba's disk cache and exit (0, or 1 with the error on stderr).

The child process background.py starts for a cold call; it inherits the caller's
environment (NUMBA_CACHE_DIR, NUMBA_CPU_NAME, LOOPGRAD_CPU_ISA), so it compiles what
the caller's next call looks up.
"""

import logging
import os
import sys


def main(argv) -> int:
    logging.getLogger("loopgrad").setLevel(logging.ERROR)  # the caller said what compiles
    if argv[0] == "rows":
        from . import _compile_rows

        name, dtype, K, M, want = argv[1:]
        _compile_rows(name, dtype, True, int(K), int(M), int(want))
        return 0
    if argv[0] == "shaped":
        from . import shaped

        # an optimization of calls that run meanwhile on every core: it takes the time
        # they leave (at 10⁵×24×40 on 2 cores, at the default priority the calls during
        # its compile ran 2.5× slower)
        try:
            os.nice(19)
        except OSError:
            pass
        variant, parallel, isa, K, M = argv[1:]
        shaped.kernel(variant, int(K), int(M), parallel == "1", isa)
        return 0
    from . import tiled

    name, variant, parallel, isa = argv
    tiled.kernel(name, variant, parallel == "1", isa)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
