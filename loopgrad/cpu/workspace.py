"""Scratch memory for the tiled kernels, kept between calls for reuse.

The tiled kernels need scratch arrays: W packed twice, g for the three-pass
kernel (N×M), dW's float64 partials.  Allocated afresh inside a kernel (Numba's
np.empty: malloc, 4 KiB pages), an array beyond glibc's 32 MiB mmap threshold
comes back as new pages every call, which the OS faults in and zeroes inside the
parallel region: 0.32 ms per MiB measured on the Emerald Rapids machine
(dev/machines_v8.md 8g).  So the wrapper takes them from here:
NumPy arrays (NumPy asks for huge pages on large ones), handed back after the
call and reused by the next, up to KEEP_BYTES in all.  Concurrent calls each
take their own.  `release()` frees what is kept.

The gradients a call returns come from here too (`output`), where they are large:
glibc hands a freed block of many MiB back to the OS (beyond its mmap threshold, or
trimmed off the heap's top), so a loop that drops each call's results got new pages
every call, faulted in and zeroed inside the kernel: 10⁶×4×4 float32 took 10.2 ms a
call against 2.0 with `out=` (dev/products_v15.md 16h).  The buffers of the last
results are remembered, and one whose arrays nobody holds any more (no view, tensor or
other reference: its reference count says so) serves the next call.  An array still
referenced anywhere is never reused.  They are remembered up to RESULT_BYTES: a
sixteenth of the memory the process may use (the machine's, or its cgroup's limit where
lower), from 256 MiB to 2 GiB, so that a loop at 10⁶×64×64 float32 (dx and dy 512 MB)
faults in no new pages either: 127-130 → 104 ms a call, 10⁶×64×17 53-54 → 46
(dev/products_v38.md 39e).  Set RESULT_BYTES lower to hold less between calls (0: none).
"""

import bisect
import os
import sys
import threading

import numpy as np

KEEP_BYTES = 256 << 20
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_bytes(limits=_CGROUP_LIMITS) -> "int | None":
    """The memory this process may use: physical memory (sysconf), or a cgroup's limit
    where lower (v2's memory.max, v1's memory.limit_in_bytes); None where neither says."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        pass
    for path in limits:
        try:
            with open(path) as fh:
                sizes.append(int(fh.read(64).strip()))  # "max" (no limit) raises
        except (OSError, ValueError):
            pass
    sizes = [n for n in sizes if n > 0]
    return min(sizes) if sizes else None


def result_bound(memory: "int | None") -> int:
    """RESULT_BYTES for a process that may use `memory` bytes: a sixteenth, from
    KEEP_BYTES to 2 GiB (KEEP_BYTES where unknown)."""
    return KEEP_BYTES if memory is None else min(max(memory // 16, KEEP_BYTES), 2 << 30)


RESULT_BYTES = result_bound(memory_bytes())
_LINE = 64  # every buffer starts on a cache line: chunks' partials never share one

_lock = threading.Lock()
_free: list = []  # idle buffers, smallest first
_kept = 0         # their bytes


def take(n: int, dtype) -> np.ndarray:
    """A 1-D array of at least n elements of dtype (contents undefined), aligned to a cache line."""
    global _kept
    dtype = np.dtype(dtype)
    with _lock:
        for i, buf in enumerate(_free):
            if buf.dtype == dtype and buf.size >= n:
                _kept -= buf.nbytes
                return _free.pop(i)
    raw = np.empty(max(n, 1) * dtype.itemsize + _LINE, np.uint8)
    skip = -raw.__array_interface__["data"][0] % _LINE
    return raw[skip:skip + max(n, 1) * dtype.itemsize].view(dtype)


def give(buf: np.ndarray) -> None:
    """Hand a buffer from `take` back for reuse (dropped if the kept total would pass KEEP_BYTES)."""
    global _kept
    if buf.nbytes > KEEP_BYTES:
        return
    with _lock:
        while _free and _kept + buf.nbytes > KEEP_BYTES:
            _kept -= _free.pop(0).nbytes  # the smallest go first
        # a running total and an insert in order (a sum and a sort here had cost 0.3 µs)
        bisect.insort(_free, buf, key=_nbytes)
        _kept += buf.nbytes


_OUT_MIN = 1 << 20  # outputs smaller than this come from np.empty (no pages to save)
_OUT_KEEP = 12       # the buffers of the last results remembered
_lent: list = []     # (oldest first) buffers behind arrays `output` returned


def output(shape, dtype, apart=()) -> np.ndarray:
    """A new C-contiguous array of shape and dtype (contents undefined) for a call to return:
    from np.empty where small, else on the buffer of an earlier result that nobody
    references any more (see the module's doc), or a new one; there it starts on a cache
    line placed within its 4 KiB page (`page_offset`) so that it does not alias, modulo
    4 KiB, the arrays `apart` (those a kernel reads as it writes this one)."""
    dtype = np.dtype(dtype)
    need = dtype.itemsize
    for n in shape:
        need *= n
    if need < _OUT_MIN:
        return np.empty(shape, dtype)
    raw = None
    with _lock:
        for i in range(len(_lent)):
            # references: _lent's and getrefcount's argument; any more is an array, view or
            # tensor on it somewhere (no local name for it here: that would be one more)
            if need + _PAGE <= _lent[i].size <= 2 * need + _PAGE \
                    and sys.getrefcount(_lent[i]) == 2:
                raw = _lent.pop(i)
                break
    if raw is None:
        raw = np.empty(need + _PAGE, np.uint8)
    at = page_offset([a.__array_interface__["data"][0] for a in apart])
    skip = (at - raw.__array_interface__["data"][0]) % _PAGE
    out = raw[skip:skip + need].view(dtype).reshape(shape)
    with _lock:
        _lent.append(raw)
        while len(_lent) > _OUT_KEEP:
            _lent.pop(0)  # forgotten: freed once nobody holds its arrays
        while _lent and sum(b.size for b in _lent) > RESULT_BYTES:
            # the oldest that nobody holds forgotten first (an earlier shape's), else the
            # smallest: a buffer's new pages cost in proportion to its size (10⁶×64×8
            # float32: dx's 256 MB and dy's 32 MB pass 256 MiB; with the oldest, dx,
            # forgotten every call, dx took new pages each time, 48–56 ms a call against 26
            # into `out=`; dev/products_v29.md 30e)
            idle = [i for i in range(len(_lent)) if sys.getrefcount(_lent[i]) == 2]
            _lent.pop(idle[0] if idle else min(range(len(_lent)), key=lambda i: _lent[i].size))
    return out


# A store and a later load whose addresses agree modulo 4 KiB: the load waits on the store
# (4K aliasing), and the row kernels load row n of x and y while the stores of rows n − 1,
# n − 2, ... to dx and dy are still pending.  An output d bytes past its input modulo
# 4 KiB (K = M: rows of one length, d constant) meets the store of d / row bytes rows
# back.  Fresh results started on the line after a NumPy array's 16-byte malloc header:
# d = 48.  On the Zen 4 guest, 10⁶×4×4 float32 with dx and dy streamed, ms by d: 16 28.4,
# 48 12.4, 112 4.0, 496 2.9, 2048 2.5, 4032 2.5; cached 2.3-2.8 at every d, but 10⁶×8×8
# cached 7.5-8.6 from d = 32 to 1024 against 5.1-5.5 from 2048, 6.5 at d = 0 (the same L1
# sets as its input; dev/products_v41.md 42c, 42d).  So an output starts as far past its inputs
# as a page allows: on the line before theirs (d up to _PAGE − _LINE), the store it meets
# 4032 / row bytes rows back.
_PAGE = 4096


def page_offset(addresses) -> int:
    """The start, within a 4 KiB page, of an output whose rows a kernel stores as it loads
    the rows of arrays at `addresses`: a multiple of a cache line as far past each of them,
    modulo 4 KiB, as the others allow, and not on a line of theirs (0 where there are none)."""
    if not addresses:
        return 0

    def worst(o):  # the least distance past an address, -1 on a line of one
        return min(d if _LINE <= (d := (o - a) % _PAGE) <= _PAGE - _LINE else -1
                   for a in addresses)

    return max(((a - _LINE) // _LINE * _LINE % _PAGE for a in addresses), key=worst)


def _nbytes(b: np.ndarray) -> int:
    return b.nbytes


def release() -> None:
    """Free every kept buffer (the remembered outputs' too, once nobody holds them)."""
    global _kept
    with _lock:
        _free.clear()
        _kept = 0
        _lent.clear()


def kept_bytes() -> int:
    with _lock:
        return sum(b.nbytes for b in _free)
