"""Compiles that run behind the caller: a cold first call does not wait for its kernel's driver.

On an empty cache, a tiled kernel's driver is the slowest part to compile
(the parallel one 5–7 s of a 10–13 s first call on 2 cores, dev/machines_v8.md
9c).  loopgrad.cpu.tiled_kernel then runs the call with the generated serial
driver in the interpreter, over the compiled pieces (bitwise the same result),
and compiles the kernel here, in a daemon thread, for the calls after.

Numba compiles under one process-wide lock, so another compile in the
process waits for a background one to finish, as it would for any compile.
A fork while one runs would copy the held lock into the child, where no
thread would release it: before a fork, the process waits for the compile
to end (os.register_at_fork).  A process that is about to exit waits for
it too (atexit), so that it lands in the disk cache: a one-shot script
compiles it once, after its first call instead of inside it.  A compile
that fails is kept (`failed`): the caller compiles it in the foreground then,
where the error reaches the user.
"""

import atexit
import os
import threading

_lock = threading.Lock()
_running: dict = {}  # key → thread
_failed: dict = {}   # key → the exception its compile raised
_held: list = []     # the compiler lock, taken by _before_fork


def start(key, compile_fn) -> None:
    """Run compile_fn() in a daemon thread unless a compile for key is already running."""
    with _lock:
        if key in _running:
            return
        t = threading.Thread(target=_run, args=(key, compile_fn), daemon=True,
                             name=f"loopgrad compile {key}")
        _running[key] = t
    t.start()


def _run(key, compile_fn) -> None:
    try:
        compile_fn()
    except Exception as e:  # noqa: BLE001 - kept: the caller compiles in the foreground then
        _failed[key] = e
    finally:
        with _lock:
            _running.pop(key, None)


def failed(key) -> Exception | None:
    """The exception a compile for key raised here, if one did (the caller should then
    compile in the foreground, where the error reaches the user, rather than start again)."""
    return _failed.get(key)


def running() -> list:
    """The keys of the compiles still running."""
    with _lock:
        return list(_running)


def wait(timeout: float | None = None) -> bool:
    """Wait for the running compiles; whether they all ended within timeout seconds."""
    with _lock:
        threads = list(_running.values())
    for t in threads:
        t.join(timeout)
    return not running()


def _compiler_lock():
    from numba.core.compiler_lock import global_compiler_lock
    return global_compiler_lock


def _before_fork() -> None:
    if _running:  # the child must not inherit a compile's lock, held
        _compiler_lock().acquire()
        _held.append(True)


def _after_fork(child: bool) -> None:
    global _lock
    if child:  # no thread of the parent's runs here
        _lock = threading.Lock()
        _running.clear()
    if _held:
        _held.pop()
        _compiler_lock().release()


os.register_at_fork(before=_before_fork, after_in_parent=lambda: _after_fork(False),
                    after_in_child=lambda: _after_fork(True))
atexit.register(wait)
