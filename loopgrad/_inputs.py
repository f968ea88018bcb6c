"""Input checking shared by every backend: arrays in, clear errors out.

Nothing here computes; it only turns what the user passed into arrays the
kernels accept, or raises naming the argument, what was expected and what came.
"""

import numbers
import sys

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def is_torch_tensor(a) -> bool:
    """True for a torch.Tensor, decided without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def host_array(name: str, a) -> np.ndarray:
    """`a` as a 2-D float32/float64 NumPy array in native byte order (a view where possible)."""
    if type(a) is np.ndarray:
        pass  # the common case first
    elif is_torch_tensor(a):
        if a.device.type != "cpu":
            raise ValueError(f"{name} is a torch tensor on {a.device}; the CPU backend needs "
                             f"tensors on the CPU (move it with {name}.cpu())")
        a = torch_detached(name, a).numpy()
    elif not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except Exception as e:  # noqa: BLE001 - anything NumPy cannot read is the caller's error
            raise TypeError(f"{name} must be an array (NumPy array or torch tensor), "
                            f"got {type(a).__name__} that NumPy cannot convert: {e}") from None
        if a.dtype == object:
            raise TypeError(f"{name} must be an array of float32 or float64, "
                            f"got {type(a).__name__} that converts to dtype object")
    else:
        a = np.asarray(a)  # a memmap or other subclass becomes a plain view
    check_meta(name, a.shape, a.dtype)
    return a


def check_meta(name: str, shape: tuple, dtype: np.dtype) -> None:
    """Raise unless an array of this shape and dtype is 2-D, float32/float64 and native-endian."""
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D, got {len(shape)}-D array of shape {tuple(shape)}")
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must have dtype float32 or float64, got {dtype} "
                        f"(cast it with {name}.astype(np.float64))")
    if not dtype.isnative:
        raise TypeError(f"{name} has non-native byte order ({dtype.str}); cast it with "
                        f"{name}.astype({name}.dtype.newbyteorder('='))")


def torch_detached(name: str, t):
    """A float32/float64 torch tensor, detached from autograd (no copy)."""
    torch = sys.modules["torch"]
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got torch {t.dtype} "
                        f"(cast it with {name}.float() or {name}.double())")
    return t.detach().resolve_conj().resolve_neg()


def check_shapes(x: np.ndarray, W: np.ndarray, y: np.ndarray) -> tuple[int, int, int]:
    """(N, K, M) for x (N,K), W (K,M), y (N,M); ValueError listing all three shapes."""
    N, K = x.shape
    K2, M = W.shape
    if K2 != K or y.shape != (N, M):
        raise ValueError(f"shapes do not match: x {x.shape} must be (N, K), W {W.shape} (K, M) "
                         f"and y {y.shape} (N, M)")
    if not (x.dtype == W.dtype == y.dtype):
        raise TypeError(f"x, W and y must have the same dtype, got {x.dtype}, {W.dtype} and "
                        f"{y.dtype} (cast them all to one of float32, float64)")
    return N, K, M


def check_relu_grad_at_zero(a) -> float:
    """The subgradient at h == 0 as a float in [0, 1]."""
    if type(a) is float and 0.0 <= a <= 1.0:  # the common case, without the ABC check
        return a
    if isinstance(a, bool) or not isinstance(a, numbers.Real):
        raise TypeError(f"relu_grad_at_zero must be a real number in [0, 1], got {a!r}")
    v = float(a)
    if not (0.0 <= v <= 1.0):  # also rejects NaN
        raise ValueError(f"relu_grad_at_zero must be in [0, 1], got {v!r}")
    return v


# Which gradients a call computes, as the bits of one int (the kernels take it as is)
WANT_DX, WANT_DW, WANT_DY = 1, 2, 4
WANT_ALL = WANT_DX | WANT_DW | WANT_DY
# not a gradient: a bit the CPU backend adds to a tiled kernel's `want` to have it store dx
# and dy past the caches (loopgrad.cpu.streams); it changes no value
STREAM = 8
_WRT_BITS = {"x": WANT_DX, "W": WANT_DW, "y": WANT_DY}
WRT_ALL = ("x", "W", "y")


# wrt's names for each value of the WANT_* bits (the inverse of check_wrt)
WRT_NAMES = tuple(tuple(n for n, b in _WRT_BITS.items() if want & b) for want in range(8))


def check_wrt(wrt) -> int:
    """`wrt` (a name or names among "x", "W", "y") as the WANT_* bits of the gradients to compute."""
    if wrt is WRT_ALL:  # the default, without the loop
        return WANT_ALL
    names = (wrt,) if isinstance(wrt, str) else wrt
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"wrt must be a name or a tuple of names among 'x', 'W', 'y', "
                        f"got {wrt!r}") from None
    want = 0
    for n in names:
        bit = _WRT_BITS.get(n) if isinstance(n, str) else None
        if bit is None:
            raise ValueError(f"wrt must name inputs among 'x', 'W', 'y' (case matters: 'W'), "
                             f"got {n!r} in wrt={wrt!r}")
        want |= bit
    return want


def check_out(out, want: int, x: np.ndarray, W: np.ndarray, y: np.ndarray) -> tuple:
    """`out` (None, or (dx, dW, dy) arrays to write into, None for any to allocate) as a
    triple of validated C-contiguous writable host arrays or None; raises before anything
    is written: wrong shapes, dtypes, layouts, read-only arrays, arrays overlapping the
    inputs or each other, or an array given for a gradient `want` does not name."""
    if out is None:
        return None, None, None
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise TypeError(f"out must be None or a tuple (dx, dW, dy) of arrays or None, got "
                        f"{type(out).__name__}" + (f" of length {len(out)}"
                                                   if isinstance(out, (tuple, list)) else ""))
    N, K = x.shape
    M = W.shape[1]
    arrays = []
    # what each output must not overlap, and whether it owns its memory (_may_overlap)
    named = [(x, "x", x.flags.owndata), (W, "W", W.flags.owndata), (y, "y", y.flags.owndata)]
    for name, a, shape, bit, wrt in (("dx", out[0], (N, K), WANT_DX, "x"),
                                     ("dW", out[1], (K, M), WANT_DW, "W"),
                                     ("dy", out[2], (N, M), WANT_DY, "y")):
        if a is None:
            arrays.append(None)
            continue
        if not want & bit:
            raise ValueError(f"out gives {name} an array, but wrt does not ask for {wrt}'s "
                             f"gradient: pass None there")
        if is_torch_tensor(a):
            if a.device.type != "cpu" or a.requires_grad:
                raise ValueError(f"out's {name} must be a CPU tensor that does not require "
                                 f"grad, got one on {a.device} (requires_grad={a.requires_grad})")
            a = a.numpy()
        if not isinstance(a, np.ndarray):
            raise TypeError(f"out's {name} must be a NumPy array (or torch CPU tensor) or None, "
                            f"got {type(a).__name__}")
        if a.shape != shape or a.dtype != x.dtype:
            raise ValueError(f"out's {name} must have shape {shape} and dtype {x.dtype}, got "
                             f"shape {a.shape} and dtype {a.dtype}")
        if not (a.flags.c_contiguous and a.flags.writeable):
            raise ValueError(f"out's {name} must be C-contiguous and writable, got "
                             f"{'a read-only' if not a.flags.writeable else 'a non-contiguous'} "
                             f"array (np.empty({shape}, {x.dtype.name}) makes one)")
        owns = a.flags.owndata
        for other, oname, other_owns in named:
            if _may_overlap(a, owns, other, other_owns):
                raise ValueError(f"out's {name} overlaps {oname} in memory: the outputs must be "
                                 f"arrays of their own")
        named.append((a, name, owns))
        arrays.append(a)
    return tuple(arrays)


def _may_overlap(a: np.ndarray, a_owns: bool, b: np.ndarray, b_owns: bool) -> bool:
    # Two arrays that each own their memory (flags.owndata: NumPy allocated it, as np.empty's;
    # not views, not wrapping a buffer or a pointer) are two allocations and cannot
    # overlap; anything else asks NumPy's bounds check.  The shortcut took check_out from
    # 5.1 to 2.4 µs (a 10×4×4 call takes 4.4 µs without out=).
    if a is b:
        return True
    return not (a_owns and b_owns) and np.may_share_memory(a, b)


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)  # NumPy's own (native) instances


def inputs(x, W, y) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Validate x, W, y; C-contiguous native float arrays (copies only where needed) and (N, K, M)."""
    # The common case in a few attribute reads (a third of a 10×4×4 call's
    # time went here): three C-contiguous 2-D float arrays of one native dtype
    # that fit together.  Anything else takes the full checks below.
    if type(x) is type(W) is type(y) is np.ndarray:
        dt = x.dtype
        if ((dt is _F32 or dt is _F64) and W.dtype is dt and y.dtype is dt
                and x.ndim == W.ndim == y.ndim == 2):
            N, K = x.shape
            K2, M = W.shape
            if (K2 == K and y.shape == (N, M) and x.flags.c_contiguous
                    and W.flags.c_contiguous and y.flags.c_contiguous):
                return x, W, y, (N, K, M)
    xa, Wa, ya = host_array("x", x), host_array("W", W), host_array("y", y)
    nkm = check_shapes(xa, Wa, ya)
    # The kernels read C-contiguous rows; other layouts are copied once here.
    return (*(a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in (xa, Wa, ya)), nkm)
