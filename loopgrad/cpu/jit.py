"""Compile helpers for the CPU kernels: Numba's jit with a cache fallback, scoped
compiler settings, and generated source loaded as modules.

Nothing here computes; the kernel modules call these to build their kernels.
"""

import contextlib
import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
import threading

from numba import njit
from numba.core import compiler

from .._version import __version__
from . import machine


def jit(fn=None, **options):
    """njit with nogil and the disk cache, or without the cache where no folder can take it.

    Numba caches beside the source, else in NUMBA_CACHE_DIR or the user's
    cache folder; when none is writable (a read-only install, no home), it
    refuses cache=True outright.  Then every process compiles afresh.
    """
    def deco(f):
        try:
            return njit(nogil=True, cache=True, **options)(f)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(nogil=True, **options)(f)
    return deco(fn) if fn is not None else deco


def cfunc(py, signature, what: str, **options):
    """Numba's cfunc of py for signature (a C function: its `address` is what a kernel calls,
    intrinsics.call), from the disk cache where it is there, else compiled and put there;
    without the cache where no folder can take it, as `jit`.  A compile that runs longer
    than NOTICE_AFTER_S says so once (`notice`'s line: Numba's compile events leave cfuncs
    out)."""
    from numba import cfunc as _cfunc
    from numba.core.caching import FunctionCache

    try:
        path = FunctionCache(py)._cache_path  # as cfunc(cache=True): refused where no folder
        make, fresh = _cfunc(signature, cache=True, **options), not cached(py, signature)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        path, make, fresh = "memory only (no writable folder)", _cfunc(signature, **options), True
    timer = None
    if fresh and what not in _noticed:
        timer = threading.Timer(NOTICE_AFTER_S, announce, (what, path))
        timer.daemon = True
        timer.start()
    try:
        return make(py)
    finally:
        if timer is not None:
            timer.cancel()


def cfunc_once(store: dict, key, py, signature, what: str, **options):
    """store[key], made by `cfunc` if it is not there: under Numba's (re-entrant) compiler
    lock, so that threads asking at once get one C function, the first's.  A kernel holds
    only its address, and the dict keeps the function (its code) alive."""
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        fn = store.get(key)
        if fn is None:
            fn = store[key] = cfunc(py, signature, what, **options)
    return fn


def compile(disp, signature):
    """Compile (or load from the disk cache) a dispatcher of `jit`'s, made without a
    signature, for signature and for it alone, as njit(signature) does; disp.

    Threads that ask for one kernel at once (Dask's tasks, say) wait for the first: under
    Numba's compiler lock (re-entrant, and the one that compiling takes anyway, so no
    lock order to get wrong) the others find it compiled.
    """
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        if getattr(disp, "_can_compile", True):
            disp.compile(signature)
            disp.disable_compile()
    return disp


def cached(py, signature, **options) -> bool:
    """Whether `jit(py, **options)` compiled for signature would load from Numba's disk
    cache: its index read through Numba's internals, nothing compiled.  Where they differ
    (another Numba) True: the caller compiles in the foreground, as it would without asking.
    """
    disp = jit(py, **options)  # no signature: nothing compiles
    cache = getattr(disp, "_cache", None)
    try:
        key = cache._index_key(signature, disp.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - no cache (NullCache), or Numba's internals moved
        return type(cache).__name__ != "NullCache"


def has_disk_cache(disp) -> bool:
    """Whether dispatcher disp keeps what it compiles in Numba's disk cache."""
    return type(getattr(disp, "_cache", None)).__name__ not in ("NullCache", "NoneType")


class StraightLine(compiler.CompilerBase):
    """Numba's nopython pipeline without SSA reconstruction, for generated straight-line code
    (the tiled kernels' tile adds).

    The reconstruction costs (variables assigned more than once × statements):
    the former straight-line 16×16 micro-kernel's 256 accumulators, each updated in
    the loop, spent most of their compile in it (4.1 → 1.4 s without;
    dev/machines_v8.md 8c).
    Type inference unifies a variable's assignments without it, as Numba did
    before 0.50; the generated code gives each variable one type.
    """

    def define_pipelines(self):
        self.state.flags.enable_ssa = False
        return [compiler.DefaultPassBuilder.define_nopython_pipeline(self.state)]


@contextlib.contextmanager
def settings(slp: bool = False, vector_bits: int | None = None, llvm: dict | None = None):
    """Numba's and LLVM's compiler settings for what compiles inside, put back after.

    slp: LLVM's SLP vectorizer on (Numba's config.SLP_VECTORIZE, off by
    default), which turns the tiled kernels' straight-line tiles into vector
    code.  vector_bits: the vector width LLVM's vectorizers aim at in every
    function compiled inside (the "prefer-vector-width" function attribute, as
    clang's -mprefer-vector-width sets it): LLVM tunes Intel's AVX-512 chips
    for 256-bit vectors, which halves the FMA rate and makes a tile sized for
    32 zmm registers spill (dev/machines_v8.md).  llvm: LLVM command-line options,
    {name: (value inside, LLVM's default)}, set with llvmlite's set_option and set back
    to the default after (LLVM has no call that reads an option; loopgrad sets only
    options its kernels need, see skinny.LLVM_OPTIONS).

    All are process-wide, so they are set under Numba's (re-entrant)
    compiler lock: no other thread compiles while they hold, and other Numba
    code in the process compiles as it would without loopgrad.  (While one of
    loopgrad's compiles runs, in the background too, numba.config reads its
    SLP setting; a compile elsewhere waits for the lock, as for any compile.)
    """
    from numba.core import codegen, config
    from numba.core.compiler_lock import global_compiler_lock

    library = codegen.CPUCodeLibrary

    def add_with_width(self, ir_module):
        for fn in ir_module.functions:
            if not fn.is_declaration:
                # AttributeSet.add accepts only llvmlite's known names; a string attribute
                # is written out as it is
                set.add(fn.attributes, f'"prefer-vector-width"="{vector_bits}"')
        return add_ir_module(self, ir_module)

    with global_compiler_lock:  # what to put back is read under the lock too (another
        add_ir_module = library.add_ir_module  # thread's settings may hold until then)
        before = config.SLP_VECTORIZE
        config.SLP_VECTORIZE = int(slp) or before
        if vector_bits:
            library.add_ir_module = add_with_width
        try:
            _llvm_options({k: v for k, (v, _) in (llvm or {}).items()})
            yield
        finally:
            config.SLP_VECTORIZE = before
            library.add_ir_module = add_ir_module
            _llvm_options({k: default for k, (_, default) in (llvm or {}).items()})


def _llvm_options(options: dict) -> None:
    # LLVM reads these when its passes run; an option LLVM lacks is ignored (llvmlite
    # passes LLVM a null error stream), so an older or newer LLVM only misses the speed
    from llvmlite import binding as ll

    for name, value in options.items():
        ll.set_option("loopgrad", f"-{name}={value}")


NOTICE_AFTER_S = 2.0
_log = logging.getLogger("loopgrad")
_noticed: set = set()


@contextlib.contextmanager
def notice(what: str, ahead: str = "`loopgrad compile`"):
    """One line on stderr (logger "loopgrad", level WARNING) if what compiles inside runs
    longer than NOTICE_AFTER_S: what is compiling, that it happens once for this CPU, and
    where Numba caches it (and `ahead`, the command that compiles it ahead of time).

    Numba's "numba:compile" event comes only when its disk cache has missed, so a
    cached kernel says nothing.  Said once per `what` in a process.  Held under
    Numba's compiler lock, so the events in the window are ours.
    """
    from numba.core import event
    from numba.core.compiler_lock import global_compiler_lock

    if what in _noticed:
        yield
        return
    timer = None

    def say(path):
        announce(what, path, ahead=ahead)

    class Listener(event.Listener):
        def on_start(self, ev):
            nonlocal timer
            if timer is None:
                cache = getattr(ev.data["dispatcher"], "_cache", None)
                path = getattr(cache, "_cache_path", None) or "memory only (no writable folder)"
                timer = threading.Timer(NOTICE_AFTER_S, say, (path,))
                timer.daemon = True
                timer.start()

        def on_end(self, ev):
            pass

    try:
        with global_compiler_lock, event.install_listener("numba:compile", Listener()):
            yield
    finally:
        if timer is not None:
            timer.cancel()


def announce(what: str, path: str, how: str = "", ahead: str = "`loopgrad compile`") -> None:
    """notice's line, now (once per `what` in a process): what compiles for this CPU, `how`
    (e.g. "in a background process"), and where it is cached."""
    if what in _noticed:
        return
    _noticed.add(what)
    t = machine.target()
    _log.warning("loopgrad: compiling %s for this CPU (%s, table entry %s)%s: once per "
                 "machine and loopgrad version, cached in %s; %s does it ahead of time",
                 what, t["cpu_name"], t["entry"], how and " " + how, path, ahead)


def writable(name: str, environ=None) -> str:
    """<base>/loopgrad/<name>, made if need be, with base NUMBA_CACHE_DIR, else
    XDG_CACHE_HOME, else ~/.cache, and the temporary folder where that is not writable;
    the last path tried where neither is (the caller decides what that means)."""
    environ = os.environ if environ is None else environ
    base = environ.get("NUMBA_CACHE_DIR") or environ.get("XDG_CACHE_HOME") \
        or os.path.join(os.path.expanduser("~"), ".cache")
    for root in (base, tempfile.gettempdir()):
        path = os.path.join(root, "loopgrad", name)
        try:
            os.makedirs(path, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    return path


GENERATED_FOLDER = f"generated-{__version__}"


def folder() -> str:
    """A writable folder for generated modules: beside Numba's cache if set, else the user's."""
    path = writable(GENERATED_FOLDER)
    if not os.access(path, os.W_OK):
        raise RuntimeError("no writable folder for loopgrad's generated kernels")
    return path


_MODULES: dict = {}


def load(name: str, src: str):
    """Module `name` with source `src`, written (atomically, once) into `folder()` and imported.

    The file name carries a digest of the source, so a changed generator
    writes a new file and Numba's cache (keyed by file and mtime) follows it.
    """
    file = stem(name, src)
    mod = _MODULES.get(file)
    if mod is not None:
        return mod
    path = os.path.join(folder(), f"{file}.py")
    if not os.path.exists(path):  # rewriting would change its mtime and void Numba's cache
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(src)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(f"{GENERATED}.{file}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    _MODULES[file] = mod
    return mod


GENERATED = "loopgrad._generated"  # the package name the generated modules import as


def stem(name: str, src: str) -> str:
    """The file name (without .py) under which `load` writes module `name` with source src:
    the name and a digest of the source."""
    return f"{name}_{hashlib.sha256(src.encode()).hexdigest()[:12]}"


def mark(what: str) -> None:
    """Leave a marker file in `folder()` saying `what` (a name made by the caller, e.g. of
    a kernel that reached Numba's disk cache), for `marked` in any process.  Best effort: a
    folder that refuses it only costs a later question its answer."""
    try:
        path = os.path.join(folder(), "ready", what)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8"):
                pass
    except (OSError, RuntimeError):
        pass


def marked(what: str) -> bool:
    """Whether some process has `mark`ed what (in this folder)."""
    try:
        return os.path.exists(os.path.join(folder(), "ready", what))
    except RuntimeError:  # no writable folder: nothing was marked
        return False
