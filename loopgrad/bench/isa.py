"""`loopgrad bench --isa avx512|avx2|generic`: the whole run as on a machine of that ISA.

Every entry of loopgrad's machine table (loopgrad/cpu/machine.py) can then be
measured on one machine, against peers held to the same vectors.  The
libraries read these settings when they load, so the bench runs itself again
in a child process with the environment set (`reexec`):

    Numba       NUMBA_CPU_NAME, NUMBA_CPU_FEATURES: the host's feature string with
                what the ISA lacks switched from + to -; a NUMBA_CACHE_DIR of its own
    NumPy       OPENBLAS_CORETYPE (OpenBLAS's kernels)
    torch       MKL_ENABLE_INSTRUCTIONS (MKL), ONEDNN_MAX_CPU_ISA and DNNL_MAX_CPU_ISA (oneDNN)
    JAX         --xla_cpu_max_isa in XLA_FLAGS

ATEN_CPU_CAPABILITY is left alone (in one try it made torch.compile's answers
wrong), so the elementwise code torch.compile generates may still use the
host's widest vectors.

Nothing here imports Numba at module level: `loopgrad bench --help` stays light.
"""

import os
import signal
import subprocess
import sys
import threading

ISAS = ("native", "avx512", "avx2", "generic")
MARK = "LOOPGRAD_BENCH_ISA"  # set in the child: the ISA it runs as; it does not run itself again
_RANK = {"generic": 0, "avx2": 1, "avx512": 2}
_AVX512 = ("avx512f", "avx512vl", "avx512bw", "avx512dq")  # machine.detect's avx512 entry

# the peers' own names for each ISA
OPENBLAS = {"avx512": "SkylakeX", "avx2": "Haswell", "generic": "Nehalem"}
MKL = {"avx512": "AVX512", "avx2": "AVX2", "generic": "SSE4_2"}
ONEDNN = {"avx512": "AVX512_CORE", "avx2": "AVX2", "generic": "SSE41"}
XLA = {"avx512": "AVX512", "avx2": "AVX2", "generic": "SSE4_2"}

# every variable --isa sets (the child's record lists those present) or takes away
VARIABLES = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_CACHE_DIR", "OPENBLAS_CORETYPE",
             "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "XLA_FLAGS",
             MARK)
CAVEAT = ("torch.compile's generated elementwise code may still use the host's widest vectors "
          "(ATEN_CPU_CAPABILITY is not set)")


class Unsupported(ValueError):
    """The host cannot run the ISA asked for (or it means nothing on this host)."""


def _x86(triple: str) -> bool:
    return triple.startswith(("x86_64", "i686", "i386"))


def _off_avx512(name: str) -> bool:
    # AVX-512 and what is built on it: LLVM turns a feature's prerequisites back on when it
    # enables the feature, so "+avx512vl" after "-avx512f" would bring avx512f back
    return name.startswith(("avx512", "amx", "avx10")) or name == "evex512"


def _off_avx(name: str) -> bool:
    # everything encoded with VEX/EVEX, or that LLVM says needs AVX (sha512, sm4: AVX2; sm3: AVX)
    return _off_avx512(name) or name.startswith("avx") or name in (
        "fma", "fma4", "f16c", "xop", "vaes", "vpclmulqdq", "gfni", "sha512", "sm3", "sm4")


def features_for(isa: str, host_features: str) -> str:
    """The host's LLVM feature string with the features `isa` lacks switched off."""
    off = {"avx2": _off_avx512, "generic": _off_avx}.get(isa, lambda name: False)
    out = []
    for f in (f.strip() for f in host_features.split(",")):
        if f:
            out.append("-" + f[1:] if f[0] == "+" and off(f[1:]) else f)
    return ",".join(out)


def environment(isa: str, host_cpu_name: str, host_features: str, triple: str,
                vendor: "str | None" = None, xla_flags: str = "") -> dict:
    """The environment variables that make a process run as on an `isa` machine.

    host_cpu_name, host_features, triple: LLVM's (llvmlite's get_host_cpu_name,
    Numba's get_host_cpu_features, get_process_triple); vendor: /proc/cpuinfo's
    vendor_id ("AuthenticAMD" picks znver3 for avx2; a host named znver* is AMD
    too); xla_flags: XLA_FLAGS as it is, which gets --xla_cpu_max_isa appended.

    Numba's CPU is set only where the host has features `isa` lacks: avx2
    compiles for znver3 (AMD) or haswell with every avx512*, amx*, avx10* and
    evex512 feature off; generic for nehalem with AVX, FMA and the rest off
    too.  Otherwise (avx512 always) Numba compiles for the host.
    {} for native, and for generic on a host that is not x86 (it is generic).
    Raises Unsupported when the host cannot run `isa` code.
    """
    from ..cpu import machine

    if isa not in ISAS:
        raise Unsupported(f"unknown ISA {isa!r}: choose from {', '.join(ISAS)}")
    if isa == "native":
        return {}
    if not _x86(triple):
        if isa == "generic":
            return {}  # loopgrad's only entry here; the peers' kernels are the host's own
        raise Unsupported(f"--isa {isa}: this CPU ({triple.split('-')[0]}) is not x86; "
                          "only native and generic are valid here")
    host = machine.detect(triple, host_features)
    if _RANK[isa] > _RANK[host]:
        on = {f[1:] for f in host_features.split(",") if f.startswith("+")}
        if isa == "avx512":
            lacks = [f for f in _AVX512 if f not in on]
            raise Unsupported(f"--isa avx512: this CPU ({host_cpu_name}) cannot run AVX-512 "
                              f"code (it lacks {', '.join(lacks)})")
        lacks = [f for f in ("avx2", "fma") if f not in on]
        raise Unsupported(f"--isa {isa}: this CPU ({host_cpu_name}) cannot run {isa.upper()} "
                          f"code (it lacks {', '.join(lacks)}); its widest is {host}")
    env = {}
    features = features_for(isa, host_features)
    if features != host_features:  # the host has features `isa` lacks
        amd = host_cpu_name.startswith("znver") or (vendor or "").strip() == "AuthenticAMD"
        name = "nehalem" if isa == "generic" else "znver3" if amd else "haswell"
        got = machine.detect(triple, features)
        if got != isa:  # a feature list the switches above do not cover
            raise Unsupported(f"--isa {isa}: the host's features with {isa}'s missing ones "
                              f"switched off still give loopgrad's {got} entry")
        env.update(NUMBA_CPU_NAME=name, NUMBA_CPU_FEATURES=features)
    flags = [f for f in xla_flags.split() if not f.startswith("--xla_cpu_max_isa")]
    env.update(OPENBLAS_CORETYPE=OPENBLAS[isa], MKL_ENABLE_INSTRUCTIONS=MKL[isa],
               ONEDNN_MAX_CPU_ISA=ONEDNN[isa], DNNL_MAX_CPU_ISA=ONEDNN[isa],
               XLA_FLAGS=" ".join(flags + [f"--xla_cpu_max_isa={XLA[isa]}"]))
    return env


def how(isa: str, env: dict, host_cpu_name: "str | None" = None) -> str:
    """One line saying how `isa` was forced, from the variables set (`environment`'s and
    the child's): "Numba znver3 without AVX-512, OpenBLAS Haswell, MKL AVX2, ..."."""
    if "NUMBA_CPU_NAME" in env:
        numba = f"Numba {env['NUMBA_CPU_NAME']} without " + \
            ("AVX-512" if isa == "avx2" else "AVX" if isa == "generic" else "wider features")
    else:
        numba = f"Numba as the host{f' ({host_cpu_name})' if host_cpu_name else ''}"
    parts = [numba]
    for var, lib in (("OPENBLAS_CORETYPE", "OpenBLAS"), ("MKL_ENABLE_INSTRUCTIONS", "MKL"),
                     ("ONEDNN_MAX_CPU_ISA", "oneDNN")):
        if env.get(var):
            parts.append(f"{lib} {env[var]}")
    if "--xla_cpu_max_isa=" in env.get("XLA_FLAGS", ""):
        parts.append("XLA " + env["XLA_FLAGS"].rsplit("--xla_cpu_max_isa=", 1)[1].split()[0])
    return ", ".join(parts)


# ------------------------------------------------------------ the host, the child

def host() -> tuple:
    """(LLVM's host CPU name, Numba's host feature string, the process triple, vendor):
    the real host's, whatever NUMBA_CPU_NAME / NUMBA_CPU_FEATURES say."""
    from llvmlite import binding as ll
    from numba.core import codegen

    from ..info import cpuinfo

    return (ll.get_host_cpu_name(), codegen.get_host_cpu_features(), ll.get_process_triple(),
            cpuinfo("vendor_id"))


def cache_dir(isa: str, environ=None) -> str:
    """NUMBA_CACHE_DIR for runs forced to `isa`: <base>/loopgrad/bench-isa-<isa>/numba, with
    the base loopgrad.cpu.jit.folder takes (NUMBA_CACHE_DIR, else XDG_CACHE_HOME, else
    ~/.cache; the temporary folder where none is writable)."""
    from ..cpu.jit import writable

    # where none is writable Numba caches nothing (each process compiles afresh), as elsewhere
    return writable(os.path.join(f"bench-isa-{isa}", "numba"), environ)


def child_environment(isa: str, environ=None) -> "dict | None":
    """The child's whole environment for --isa `isa`, or None where nothing is forced
    (native; generic on a host that is not x86).  Raises Unsupported."""
    environ = dict(os.environ if environ is None else environ)
    name, features, triple, vendor = host()
    env = environment(isa, name, features, triple, vendor, environ.get("XLA_FLAGS", ""))
    if not env:
        return None
    for var in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
        environ.pop(var, None)  # not set by --isa: Numba compiles for the host
    environ.update(env)
    environ["NUMBA_CACHE_DIR"] = cache_dir(isa, environ)
    environ[MARK] = isa
    return environ


def forced(isa: str) -> "dict | None":
    """In the child: the record's machine.isa_forced, {isa, how, env}; None in a run that
    forces nothing."""
    if isa == "native" or os.environ.get(MARK) != isa:
        return None
    env = {k: os.environ[k] for k in VARIABLES if k in os.environ}
    return dict(isa=isa, how=how(isa, env, host()[0]), env=env)


def reexec(argv: list, env: dict) -> int:
    """Run `python -m loopgrad <argv>` with env, stdout and stderr inherited; its exit status.

    The child gets a process group of its own and this process passes it each
    SIGINT, SIGTERM, SIGHUP and SIGQUIT it gets: a Ctrl-C reaches the child
    once (it then prints the cells measured so far), whether it came from the
    terminal or a `kill` of this process.  Ctrl-Z stops both, and `fg`/`bg`
    continues both.
    """
    group = dict(process_group=0) if sys.version_info >= (3, 11) else \
        dict(preexec_fn=os.setpgrp)
    child = subprocess.Popen([sys.executable, "-m", "loopgrad", *argv], env=env, **group)
    main = threading.current_thread() is threading.main_thread()
    before = {}

    def send(signum):
        try:
            os.kill(child.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def forward(signum, frame):
        send(signum)

    def stop(signum, frame):
        send(signal.SIGTSTP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT
        signal.signal(signal.SIGTSTP, stop)

    def cont(signum, frame):
        send(signal.SIGCONT)

    if main:
        for name, handler in (("SIGINT", forward), ("SIGTERM", forward), ("SIGHUP", forward),
                              ("SIGQUIT", forward), ("SIGTSTP", stop), ("SIGCONT", cont)):
            signum = getattr(signal, name, None)
            if signum is not None:
                before[signum] = signal.signal(signum, handler)
    try:
        while True:
            try:
                rc = child.wait()
                break
            except KeyboardInterrupt:  # a handler that raises (not ours): keep waiting
                send(signal.SIGINT)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    return rc if rc >= 0 else 128 - rc
