"""When Numba's parallel kernels are safe to run, and how.

Two hazards depend on the threading layer Numba picked (tbb, omp or
workqueue, whichever loads first unless NUMBA_THREADING_LAYER says):

- workqueue is not thread-safe: two parallel regions at once, from two
  Python threads, abort the whole process.  Parallel calls are serialised by
  a lock while the layer is workqueue or not yet known (the first call).
- GNU OpenMP (the omp layer on Linux) is not fork-safe: a child forked after
  a parallel region dies at its first parallel region ("fork() called from a
  process already using GNU OpenMP").  A process forked from one that ran an
  omp parallel region uses the serial kernels, which give bitwise the same
  results (the chunking is the same; only who runs the chunks changes).

tbb is both thread- and fork-safe and needs neither measure.
"""

import contextlib
import os
import sys
import threading

_lock = threading.Lock()
_unguarded = contextlib.nullcontext()
_serial_only = False


def layer() -> str | None:
    """The threading layer in use, or None before the process's first parallel region."""
    numba = sys.modules.get("numba")
    if numba is None:
        return None
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return None


def forks_serial() -> bool:
    """Whether a child forked now would run the serial kernels: the layer is GNU OpenMP."""
    return sys.platform.startswith("linux") and layer() == "omp"


def _after_fork_in_child() -> None:
    global _serial_only
    if forks_serial():
        _serial_only = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def allowed() -> bool:
    """False in a child forked after a GNU OpenMP parallel region: use the serial kernels."""
    return not _serial_only


def guard(parallel: bool):
    """The context to run a kernel in: a process-wide lock for parallel kernels unless the layer is thread-safe."""
    if parallel and layer() not in ("omp", "tbb"):
        return _lock
    return _unguarded
