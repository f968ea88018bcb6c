"""The CPU's cache geometry, read at run time: size, ways, line and sets of L1d, L2 and L3.

From Linux's sysfs (/sys/devices/system/cpu/cpu0/cache/index*/), else from
sysconf (glibc's _SC_LEVEL1_DCACHE_SIZE and the rest), else from defaults
(a typical x86 core's), each level saying which in `source`.  Reading never
raises: a file that is missing or holds garbage falls back, level by level.

Nothing here imports Numba: it stays cheap to import and to call.
"""

import functools
import os
import re

ROOT = "/sys/devices/system/cpu/cpu0/cache"
LEVELS = ("L1d", "L2", "L3")
_KIB, _MIB = 2**10, 2**20

# a cache's geometry where neither sysfs nor sysconf says: {level: (bytes, ways, line)}
DEFAULTS = {"L1d": (32 * _KIB, 8, 64), "L2": (512 * _KIB, 8, 64), "L3": (8 * _MIB, 16, 64)}
# glibc's sysconf names per level: size, associativity, line size
_SYSCONF = {
    "L1d": ("SC_LEVEL1_DCACHE_SIZE", "SC_LEVEL1_DCACHE_ASSOC", "SC_LEVEL1_DCACHE_LINESIZE"),
    "L2": ("SC_LEVEL2_CACHE_SIZE", "SC_LEVEL2_CACHE_ASSOC", "SC_LEVEL2_CACHE_LINESIZE"),
    "L3": ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL3_CACHE_ASSOC", "SC_LEVEL3_CACHE_LINESIZE"),
}
_UNITS = {"": 1, "B": 1, "K": _KIB, "KB": _KIB, "KIB": _KIB, "M": _MIB, "MB": _MIB, "MIB": _MIB,
          "G": 2**30, "GB": 2**30, "GIB": 2**30}


def _text(path: str) -> "str | None":
    try:
        with open(path, errors="replace") as fh:
            return fh.read(4096).strip()
    except (OSError, ValueError):
        return None


def _int(text) -> "int | None":
    try:
        v = int(str(text).strip())
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


def _size(text) -> "int | None":
    # sysfs writes "48K", "2048K", "105M"
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?I?B?)\s*", str(text or ""), re.I)
    if not m or m.group(2).upper() not in _UNITS:
        return None
    v = int(m.group(1)) * _UNITS[m.group(2).upper()]
    return v if v > 0 else None


def _cpus(text) -> "int | None":
    # shared_cpu_list: "0", "0-1", "0,2,4-7"
    n = 0
    for part in str(text or "").strip().split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*", part)
        if not m:
            return None
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            return None
        n += hi - lo + 1
    return n or None


def _level(text_level, text_type) -> "str | None":
    # index*/level and index*/type → "L1d", "L2", "L3"; instruction caches (and L4) → None
    level, kind = _int(text_level), (text_type or "").strip().lower()
    if kind not in ("data", "unified"):
        return None
    return {1: "L1d", 2: "L2", 3: "L3"}.get(level)


def _entry(nbytes, ways, line, sets, shared, source) -> dict:
    if sets is None and ways and line:
        sets = nbytes // (ways * line) or None  # sysconf and defaults give no sets
    return {"bytes": nbytes, "ways": ways, "line": line, "sets": sets, "shared_cpus": shared,
            "source": source}


def _from_sysfs(root: str) -> dict:
    found = {}
    try:
        names = sorted(os.listdir(root))
    except (OSError, TypeError, ValueError):
        return found
    for name in names:
        if not re.fullmatch(r"index\d+", name):
            continue
        d = os.path.join(root, name)
        level = _level(_text(os.path.join(d, "level")), _text(os.path.join(d, "type")))
        nbytes = _size(_text(os.path.join(d, "size")))
        if level is None or level in found or nbytes is None:
            continue
        found[level] = _entry(nbytes, _int(_text(os.path.join(d, "ways_of_associativity"))),
                              _int(_text(os.path.join(d, "coherency_line_size"))),
                              _int(_text(os.path.join(d, "number_of_sets"))),
                              _cpus(_text(os.path.join(d, "shared_cpu_list"))), "sysfs")
    return found


def _sysconf(name: str) -> "int | None":
    try:
        return _int(os.sysconf(name))
    except (ValueError, OSError, AttributeError, TypeError):  # unknown name, no sysconf
        return None


def _from_sysconf(level: str) -> "dict | None":
    size, ways, line = (_sysconf(n) for n in _SYSCONF[level])
    if size is None:
        return None
    return _entry(size, ways, line, None, None, "sysconf")


def read(root: str = ROOT) -> dict:
    """{"L1d": {...}, "L2": {...}, "L3": {...}}, each {"bytes", "ways", "line", "sets",
    "shared_cpus", "source"}: from sysfs under root, else sysconf, else DEFAULTS
    (source "sysfs", "sysconf" or "default"); None where a figure is unknown."""
    try:
        found = _from_sysfs(root)
    except Exception:  # noqa: BLE001 - never fail over a cache size: fall back
        found = {}
    out = {}
    for level in LEVELS:
        got = found.get(level) or _from_sysconf(level)
        if got is None:
            got = _entry(*DEFAULTS[level], None, None, "default")
        out[level] = got
    return out


@functools.lru_cache(maxsize=1)
def geometry() -> dict:
    """This machine's caches (read() of cpu0's sysfs), read once per process."""
    return read()


def _bytes(n: int) -> str:
    if n % _MIB == 0:
        return f"{n // _MIB} MiB"
    if n % _KIB == 0:
        return f"{n // _KIB} KiB"
    return f"{n} B"


def describe(g: dict) -> str:
    """One line: "L1d 48 KiB 12-way, L2 2 MiB 16-way, L3 105 MiB 15-way (sysfs)"."""
    sources = {g[lv]["source"] for lv in LEVELS if lv in g}
    parts = []
    for lv in LEVELS:
        c = g.get(lv)
        if not c:
            continue
        s = f"{lv} {_bytes(c['bytes'])}" + (f" {c['ways']}-way" if c.get("ways") else "")
        parts.append(s + (f" ({c['source']})" if len(sources) > 1 else ""))
    return ", ".join(parts) + (f" ({sources.pop()})" if len(sources) == 1 else "")
