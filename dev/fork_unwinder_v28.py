"""A thread inside libgcc's unwinder at the fork: does the child hang loading compiled code?

dev/products_v28.md 29a.  The parent runs a parallel tiled call under GNU OpenMP (whose
forked children run the serial kernels), a thread calls _Unwind_Find_FDE (which takes
libgcc's object lock once any unwind tables are registered, as LLVM's are) in a loop, and
the parent forks `tries` children that each make the same call, with a 10 s alarm.  The
child asserts that it loaded no kernel (after the fix; before it, each loaded one).

    python dev/fork_unwinder_v28.py 300
"""
import os, sys, time, threading, signal, ctypes
import numpy as np, loopgrad
rng = np.random.default_rng(0)
x = rng.standard_normal((10_000, 16), dtype=np.float32)
W = rng.standard_normal((16, 16), dtype=np.float32)
y = rng.standard_normal((10_000, 16), dtype=np.float32)
alone = loopgrad.grads(x, W, y)
import numba; print("layer", numba.threading_layer(), flush=True)
gcc = ctypes.CDLL("libgcc_s.so.1")
find = gcc._Unwind_Find_FDE
find.restype, find.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]
bases = (ctypes.c_void_p * 3)()
pc = ctypes.cast(gcc._Unwind_Find_FDE, ctypes.c_void_p).value
stop = False
def hammer():
    while not stop:
        for _ in range(1000): find(pc, bases)
th = threading.Thread(target=hammer, daemon=True); th.start()
hung = 0
tries = int(sys.argv[1])
t0 = time.time()
for t in range(tries):
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)
        from loopgrad.cpu import tiled; n0 = len(tiled._COMPILED); g = loopgrad.grads(x, W, y); assert len(tiled._COMPILED) == n0, "loaded"
        os._exit(0 if g.f == alone.f else 3)
    _, st = os.waitpid(pid, 0)
    if os.WIFSIGNALED(st): hung += 1
    elif os.WEXITSTATUS(st): print("bad exit", st)
print("tries", tries, "hung", hung, f"{time.time()-t0:.1f}s")
