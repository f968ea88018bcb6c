"""Which inputs live in GPU memory, told without importing numba.cuda (nor torch).

loopgrad.api asks it of every call that is not three NumPy arrays (through
loopgrad.cuda.on_gpu); host.py, of the inputs it views on the device.
"""

from .. import _inputs


def is_numba_device_array(a) -> bool:
    """True for numba's device arrays, the simulator's fake ones (without the interface) too."""
    return type(a).__module__.startswith("numba.cuda") and hasattr(a, "copy_to_host")


def on_gpu(a) -> bool:
    """True when `a` lives in GPU memory (torch CUDA tensor, CuPy or numba device array)."""
    if _inputs.is_torch_tensor(a):
        return a.device.type == "cuda"
    # look on the type: evaluating the interface can raise or synchronise
    return (getattr(type(a), "__cuda_array_interface__", None) is not None
            or is_numba_device_array(a))
