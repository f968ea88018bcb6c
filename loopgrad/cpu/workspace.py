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
"""

import threading

import numpy as np

KEEP_BYTES = 256 << 20
_LINE = 64  # every buffer starts on a cache line: chunks' partials never share one

_lock = threading.Lock()
_free: list = []  # idle buffers, smallest first


def take(n: int, dtype) -> np.ndarray:
    """A 1-D array of at least n elements of dtype (contents undefined), aligned to a cache line."""
    dtype = np.dtype(dtype)
    with _lock:
        for i, buf in enumerate(_free):
            if buf.dtype == dtype and buf.size >= n:
                return _free.pop(i)
    raw = np.empty(max(n, 1) * dtype.itemsize + _LINE, np.uint8)
    skip = -raw.__array_interface__["data"][0] % _LINE
    return raw[skip:skip + max(n, 1) * dtype.itemsize].view(dtype)


def give(buf: np.ndarray) -> None:
    """Hand a buffer from `take` back for reuse (dropped if the kept total would pass KEEP_BYTES)."""
    with _lock:
        kept = sum(b.nbytes for b in _free)
        if buf.nbytes > KEEP_BYTES:
            return
        while _free and kept + buf.nbytes > KEEP_BYTES:
            kept -= _free.pop(0).nbytes  # the smallest go first
        _free.append(buf)
        _free.sort(key=lambda b: b.nbytes)


def release() -> None:
    """Free every kept buffer."""
    with _lock:
        _free.clear()


def kept_bytes() -> int:
    with _lock:
        return sum(b.nbytes for b in _free)
