"""Compiles that run behind the caller: a cold call does not wait for its kernel.

On an empty cache a tiled kernel takes 10–15 s to compile on 2 cores, a parallel
row kernel 2 s.  loopgrad.cpu runs such a call with something that needs little or
no compile and gives bitwise the kernel's results (the ordered loops, the tiled
kernel's interpreted driver over its cached pieces, or the serial row kernel), and
has the kernel compiled here for the calls after.

In a child process (`start` with argv: `python -m loopgrad.cpu.compile_one ...`),
which writes the kernel into Numba's disk cache, where the caller's next call
finds it.  Not in a thread of the caller's: Numba's typing and lowering hold
the GIL, so the calls made meanwhile waited on them: 10× the warm serial kernel
(issue 21).  The child's stderr goes to a temporary file, read only if it fails.
Where no child can be started (no interpreter to run: an embedded or frozen
Python), the compile runs in a daemon thread as before.

A compile that fails is kept (`failed`): the caller compiles it in the
foreground then, where the error reaches the user.  A process that is about to
exit waits for its compiles (atexit), so that they land in the disk cache: a
one-shot script compiles once, after its first call instead of inside it.  A
forked child forgets its parent's compiles (they are not its children), and a
fork while a thread compiles waits for it: the child would inherit Numba's
compiler lock held, by no thread (os.register_at_fork).
"""

import atexit
import os
import subprocess
import tempfile
import threading

_lock = threading.Lock()
_running: dict = {}  # key → thread or (process, its stderr file)
_failed: dict = {}   # key → the exception its compile raised (or the child's stderr)
_done: set = set()   # keys whose compile ended without error
_held: list = []     # the compiler lock, taken by _before_fork


def start(key, compile_fn, argv=None) -> None:
    """Compile for key behind the caller, unless a compile for it runs already: the command
    argv in a child process with the caller's environment, loopgrad's folder first on its
    PYTHONPATH (compile_fn in a daemon thread where argv is None or no child can start)."""
    with _lock:
        if key in _running:
            return
        if argv is not None:
            err = tempfile.TemporaryFile()
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=_environment(),
                                        stdout=subprocess.DEVNULL, stderr=err)
            except OSError:
                err.close()
            else:
                _running[key] = (proc, err)
                return
        t = threading.Thread(target=_run, args=(key, compile_fn), daemon=True,
                             name=f"loopgrad compile {key}")
        _running[key] = t
    t.start()


def _environment() -> dict:
    # the caller's, with the folder this loopgrad was imported from first on the path: the
    # child imports the same loopgrad however the caller found it
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))


def _run(key, compile_fn) -> None:
    try:
        compile_fn()
    except Exception as e:  # noqa: BLE001 - kept: the caller compiles in the foreground then
        _failed[key] = e
    else:
        _done.add(key)
    finally:
        with _lock:
            _running.pop(key, None)


def _reap(key, job) -> bool:
    # under _lock: whether job (a child process) has ended; records how, and forgets it
    proc, err = job
    code = proc.poll()
    if code is None:
        return False
    if code == 0:
        _done.add(key)
    else:
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-20:]
        _failed[key] = RuntimeError(f"the background compile of {key} exited with status "
                                    f"{code}:\n" + "\n".join(tail))
    err.close()
    _running.pop(key, None)
    return True


def busy(key) -> bool:
    """Whether a compile for key is running now."""
    with _lock:
        job = _running.get(key)
        if isinstance(job, tuple):
            return not _reap(key, job)
        return job is not None


def done(key) -> bool:
    """Whether a compile for key ended here without error (its kernel is in the disk cache,
    or, from a thread, compiled in this process)."""
    busy(key)
    return key in _done


def failed(key) -> Exception | None:
    """The exception a compile for key raised here, if one did (the caller should then
    compile in the foreground, where the error reaches the user, rather than start again)."""
    busy(key)
    return _failed.get(key)


def running() -> list:
    """The keys of the compiles still running."""
    with _lock:
        for key, job in list(_running.items()):
            if isinstance(job, tuple):
                _reap(key, job)
        return list(_running)


def wait(timeout: float | None = None) -> bool:
    """Wait for the running compiles; whether they all ended within timeout seconds."""
    with _lock:
        jobs = list(_running.values())
    for job in jobs:
        if isinstance(job, tuple):
            try:
                job[0].wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        else:
            job.join(timeout)
    return not running()


def _compiler_lock():
    from numba.core.compiler_lock import global_compiler_lock
    return global_compiler_lock


def _threads() -> bool:
    return any(isinstance(job, threading.Thread) for job in list(_running.values()))


def _before_fork() -> None:
    if _threads():  # the child must not inherit a compile's lock, held
        _compiler_lock().acquire()
        _held.append(True)


def _after_fork(child: bool) -> None:
    global _lock
    if child:  # no thread of the parent's runs here, and its children are not ours
        _lock = threading.Lock()
        _running.clear()
    if _held:
        _held.pop()
        _compiler_lock().release()


os.register_at_fork(before=_before_fork, after_in_parent=lambda: _after_fork(False),
                    after_in_child=lambda: _after_fork(True))
atexit.register(wait)
