"""The machine table: every kernel size that depends on the CPU's vector ISA, by ISA and dtype.

One entry per vector ISA, chosen at run time from the CPU that Numba compiles
for (LLVM's host CPU name and features, or NUMBA_CPU_NAME / NUMBA_CPU_FEATURES
where they are set), the way BLIS picks a configuration per microarchitecture
(its config/<arch>/bli_cntx_init_<arch>.c files).  The loop nests in tiled.py
and skinny.py know no chip; they take their sizes from here.

LOOPGRAD_CPU_ISA=avx512|avx2|generic forces an entry.  Code for a narrower
ISA runs anywhere (that is how the tests check every entry on one machine);
an entry wider than the CPU still gives the right answers, only slowly.  The
choice depends on the machine and the shape alone, so results are bitwise the
same run to run and for any thread count on one machine; another entry, or the
same entry on a CPU whose blocks take other rows (MC_512), may round differently
(its sums are grouped by other tile sizes).
"""

import functools
import hashlib
import os
from dataclasses import dataclass, field, replace

ENV = "LOOPGRAD_CPU_ISA"


@dataclass(frozen=True)
class Tile:
    """A register tile and its blocking: C is MR×NR, over KC steps, in blocks of MC rows;
    the three-pass kernel's products over KC3 steps where that is set (≤ KC) and K and M
    both exceed KC (`kc3`)."""

    MR: int
    NR: int
    MC: int
    KC: int
    KC3: int = 0

    def kc3(self, K: int, M: int) -> int:
        """The three-pass kernel's steps a block for K and M: KC3 where it is set and K and M
        both exceed KC, else KC (where one block of KC holds all of K, h's tiles are stored
        once; all of M, dx's tiles stream in large calls: 10⁵×256² float64 5 % slower at
        KC3 128, dev/products_v19.md 20e)."""
        return self.KC3 if self.KC3 and min(K, M) > self.KC else self.KC


@dataclass(frozen=True)
class Entry:
    isa: str
    vector_bits: int   # the width LLVM's vectorizers aim at (jit.settings)
    registers: int     # vector registers: the tile's accumulators must fit
    # dtype → tile; "float32-narrow": the tile for K or M up to its NR, where the wide
    # tile's columns would be mostly padding
    tiles: dict = field(hash=False)
    source: str = ""
    # the fused kernel's blocks ask for y's rows this many rows ahead into L2 (software
    # prefetch; 0: none), where x is read in place: as AVX2 the blocks' work outlasts the
    # hardware prefetcher's reach (dev/products_v21.md 22c)
    pf_y: int = 0


TABLE = {
    "avx512": Entry(
        "avx512", 512, 32,
        {"float32": Tile(8, 32, 96, 256), "float32-narrow": Tile(16, 16, 96, 256),
         "float64": Tile(6, 32, 96, 256, 128), "float64-narrow": Tile(8, 16, 96, 256)},
        "16 zmm accumulators of 32 registers; measured on Emerald Rapids, micro-kernel in "
        "L1 (dev/machines_v8.md 8d): float32 8×32 173, 16×16 158, 12×32 94 GFLOP/s a core "
        "(12×32, BLIS skx's 32×12 transposed, spills there); float64 8×16 73, 12×16 45. "
        "KC 256: sums of 256 terms (512 had 1.4× torch's error, 8h), as fast (8d).  Float64 "
        "6×32 (24 accumulators, 10 loads a step for 24 FMAs against 8×16's 10 for 16), 8×16 "
        "where K or M ≤ 16: on the rocketlake guest, 2 threads, 1024³ 53–57 → 46–54 ms, "
        "2048×512×2048 106–108 → 88–89, 10⁵×256×256 356–367 → 295–335; 2–12 % slower where "
        "M pads to 64 (10⁵×24×40 8.5 → 9.3–9.6; dev/products_v17.md 18g).  Its B panel of "
        "KC 256 steps is 64 KiB, past a 48 KiB L1: the three-pass kernel runs it over KC3 "
        "128 (2.5–8 % faster at 512³–2048×512×2048; the fused kernel stays at 256, where "
        "its dx streams only with kc = M; dev/products_v19.md 20e)"),
    "avx2": Entry(
        "avx2", 256, 16,
        {"float32": Tile(6, 16, 144, 256), "float64": Tile(6, 8, 72, 256)},
        "12 ymm accumulators of 16 registers, two vectors a row: BLIS haswell's sgemm 6×16 and "
        "dgemm 6×8 (MC 144/72, KC 256; 6 broadcasts and 2 loads of B a step).  As AVX2 on "
        "the rocketlake guest (2 load ports), 2 threads, against the 12×8 and 12×4 tiles "
        "(one vector a row, 12 broadcasts a step) chosen in dev/machines_v8.md 8d from the "
        "former scalar micro-kernel's in-L1 rates: float32 1024³ 38.3–38.9 → 31.1–32.2 ms, "
        "10⁵×64×64 18.2–18.5 → 14.0–14.6, 10⁵×256×256 251–257 → 218–219; float64 "
        "2048×512×2048 189–193 → 143–145 (dev/products_v17.md 18e).  Its rows are whole "
        "cache lines, so dx streams; MC 96–192 measured the same.  y's rows prefetched 256 "
        "rows ahead into L2: 10⁶×16×16 0.59×, 10⁵×64×64 0.89×, 10⁵×24×40 0.88× the time "
        "(natively, where the blocks run faster, 0.90× at 10⁶×16×16 and 1.03–1.05× slower "
        "at 2·10⁵×32×32 and 10⁵×24×40: none)", pf_y=256),
    "generic": Entry(
        "generic", 128, 16,
        {"float32": Tile(12, 4, 96, 256), "float64": Tile(12, 2, 96, 256)},
        "12 accumulators of 128 bits, one vector a row: fits any 16-register ISA (SSE2 "
        "without FMA needs 2 more; NEON has 32); a safe default, not tuned"),
}


# CPUs (the host's LLVM name, not the one Numba may be told to compile for) whose avx512
# float32 blocks take more rows than the table's MC 96: AMD's Zen 5 (48 KiB L1d, full
# 512-bit pipes).  On the Zen 5 guest, 2 threads, the trees before and after, three
# alternations: 10⁵×24×40 2.41–2.51 → 2.18–2.32 ms, 10⁵×64×64 6.17–6.53 → 5.91–6.01,
# 2·10⁵×32×20 3.06–3.17 → 2.81–2.89; 10⁵×128², 512³, 1000³ and 2048×512×2048 level
# (dev/products_v49.md 50d).  Zen 4 and Intel's keep 96 (not measured at 144).  An MC of
# its own changes dW's and f's bits on that CPU alone.
MC_512 = {"znver5": 144}


def table_for(host: str) -> dict:
    """TABLE for a host CPU (its LLVM name): the avx512 entry's float32 tile with
    MC_512's rows where the host has them, every other size as written above."""
    mc = MC_512.get(host)
    if mc is None:
        return dict(_TABLE)
    e = _TABLE["avx512"]
    tiles = {**e.tiles, "float32": replace(e.tiles["float32"], MC=mc)}
    return {**_TABLE, "avx512": replace(e, tiles=tiles)}


def _host_cpu() -> str:
    # the host CPU's LLVM name, whatever NUMBA_CPU_NAME tells Numba to compile for
    from llvmlite import binding as ll

    return ll.get_host_cpu_name()


_TABLE = TABLE  # as written: every CPU's sizes
TABLE = table_for(_host_cpu())  # this host's


def llvm_target() -> tuple[str, str, str]:
    """(triple, CPU name, features) that Numba compiles for."""
    from llvmlite import binding as ll
    from numba.core import codegen, config

    name = config.CPU_NAME or ll.get_host_cpu_name()
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None \
        else codegen.get_host_cpu_features()
    return ll.get_process_triple(), name, features


@functools.lru_cache(maxsize=None)
def fingerprint() -> str:
    """A digest of what Numba's disk cache keys compiled code by (target triple, CPU name and
    features, Numba's version): a marker of a cached kernel holds on this machine alone."""
    import numba

    return hashlib.sha256(repr((llvm_target(), numba.__version__)).encode()).hexdigest()[:12]


def detect(triple: str, features: str) -> str:
    """The table's ISA for an LLVM target triple and feature string ("+avx2,-avx512f,...")."""
    on = {f[1:] for f in features.split(",") if f.startswith("+")}
    if not triple.startswith(("x86_64", "i686", "i386")):
        return "generic"
    if {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= on:
        return "avx512"
    if {"avx2", "fma"} <= on:
        return "avx2"
    return "generic"


@functools.lru_cache(maxsize=1)
def target() -> dict:
    """What the kernels are built for: CPU name, detected ISA, and the entry in use (and why)."""
    triple, name, features = llvm_target()
    found = detect(triple, features)
    forced = os.environ.get(ENV, "").strip().lower() or None
    if forced is not None and forced not in TABLE:
        raise ValueError(f"{ENV} must be one of {', '.join(TABLE)} (or unset), got {forced!r}")
    return dict(cpu_name=name, triple=triple, isa=found, entry=forced or found,
                forced=forced is not None)


# rowvec.py's rows store dx and dy past the caches in large calls (loopgrad.cpu.streams):
# on the Xeon guest 10⁶×8×8 5.6-5.9 → 5.1-5.4 ms (dev/products_v26.md 27a).  On the
# Zen 4 guest, fresh results placed away from the inputs (workspace.page_offset), 2 threads,
# cached → streamed: natively 10⁶×4×4 3.10 → 3.07 ms, 8×8 6.53 → 7.00, 16×16 13.71 →
# 15.20, 12×9 9.54 → 11.48, 24×8 15.41 → 16.73; as AVX2 4×4 3.54 → 3.77, 8×8 8.54 → 8.74;
# while rowdots.py's long rows gained (10⁶×32×2 12.88 → 9.47, 64×4 44.34 → 25.43) and the
# tiled kernels too (10⁵×24×40 5.97 → 5.48, 10⁵×64×64 17.49 → 15.11; dev/products_v41.md
# 42e).  So on AMD's Zen, by the host's CPU (not the one Numba may be told to compile
# for), those rows stay cached.  Zen 4 measured; Zen 2, 3 and 5 taken to be alike.
SHORT_ROWS_CACHED = ("znver",)


@functools.lru_cache(maxsize=1)
def short_rows_stream() -> bool:
    """Whether rowvec.py's rows store dx and dy past the caches where a call is large: not
    where the host CPU's LLVM name starts with one of SHORT_ROWS_CACHED (rowgroups.py's
    vectors of rows and rowdots.py's long rows stream on every CPU)."""
    return not _host_cpu().startswith(SHORT_ROWS_CACHED)


# CPUs (the host's LLVM name) that run each 512-bit vector operation as two 256-bit halves,
# so that a 256-bit FMA costs half a 512-bit one: AMD's Zen 4.  There the tiled kernels'
# last panels of W also take 256-bit tails (tiled.tails): on the Zen 4 guest, in L1, an
# 8-row tile's step over 8 live columns 8.0 → 4.8 cycles as 256-bit vectors, over 24
# 14.9 → 11.9 (dev/products_v44.md 45a).  Zen 5 (full 512-bit pipes) and Intel's run a
# 256-bit FMA at a 512-bit one's cost (on the Zen 5 guest, 256-bit tails made the fused
# kernel's dx at K = 24 0.2 ms slower in L2, three vectors for two: dev/products_v49.md 50b).
SPLIT_512 = ("znver4",)


@functools.lru_cache(maxsize=1)
def splits_512() -> bool:
    """Whether the host CPU (its LLVM name, not the one Numba may be told to compile for)
    runs a 512-bit vector operation as two 256-bit halves: SPLIT_512."""
    return _host_cpu() in SPLIT_512


def halves_512(e: Entry) -> bool:
    """Whether entry e's vectors run as 256-bit halves here: a 512-bit entry on a host that
    `splits_512` (its tiles' last panels then also take 256-bit vectors, tiled.tails)."""
    return e.vector_bits == 512 and splits_512()


def entry() -> Entry:
    """The table entry the kernels use on this machine (LOOPGRAD_CPU_ISA forces one)."""
    return TABLE[target()["entry"]]


def summary() -> dict:
    """The facts a benchmark figure needs to name its machine: LLVM's CPU name, the ISA, the
    table entry in use (and whether LOOPGRAD_CPU_ISA forced it), its vector width and tiles,
    and whether its 512-bit vectors run as 256-bit halves here (halves_512: `splits_512`,
    for a 512-bit entry; the tiles' last panels then also take 256-bit vectors)."""
    t = target()
    e = TABLE[t["entry"]]
    tiles = {k: f"{v.MR}x{v.NR}" for k, v in e.tiles.items()}
    return dict(llvm_cpu=t["cpu_name"], isa=t["isa"], table_entry=t["entry"],
                table_forced=t["forced"], vector_bits=e.vector_bits, tiles=tiles,
                halves_512=halves_512(e))
