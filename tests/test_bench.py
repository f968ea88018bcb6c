"""`loopgrad bench`: runs end to end, checks before it times, documents its JSON, rejects bad options."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from loopgrad import cli
from loopgrad.bench import ceilings as bench_ceilings, engine as bench, impls as bench_impls, \
    report as bench_report

torch = pytest.importorskip("torch")
# raised inside torch while torch.compile sets up, not by loopgrad
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

TINY = ["--shapes", "7x3x2,50x4x5", "--repeat", "3", "--max-time", "0.05", "--no-progress"]
CPU_FAST = "loopgrad,loopgrad-1t,torch,torch-hand,jax,numpy"
BENCH_DOC = Path(__file__).resolve().parents[1] / "docs" / "bench.md"  # the JSON documented


@pytest.fixture(autouse=True)
def _short_settle(monkeypatch):
    # the pause between cells only matters for real timings
    monkeypatch.setattr(bench, "_SETTLE_S", 0.0)


@pytest.fixture
def tiny_ceilings(monkeypatch):
    # --ceilings at sizes that take milliseconds: a 1 MiB copy, a 32 x 32 product
    monkeypatch.setattr(bench_ceilings, "COPY_MIB", 1)
    monkeypatch.setattr(bench_ceilings, "SGEMM_N", 32)
    monkeypatch.setattr(bench_ceilings, "REPEAT", 2)


def _bench(capsys, *args):
    rc = cli.main(["bench", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _table_rows(stdout):
    # rows of the plain table: "7×3×2  float32  impl  check ..."
    return [line.split() for line in stdout.splitlines() if re.match(r"\d+×\d+×\d+\s", line)]


def _documented_fields():
    # the field names listed in the bench module docstring's JSON section
    doc = bench.__doc__.split("JSON (--json FILE)")[1]
    top, _, res = doc.partition("    results ")
    top_names = re.findall(r"^    (\w+)\s", top, re.M) + ["results"]
    res_names = []
    for m in re.finditer(r"^        (\w[\w, ]*?)(?:\s{2,}|$)", res, re.M):
        res_names += [n.strip() for n in m.group(1).split(",")]
    return top_names, res_names


def test_tiny_run_end_to_end(capsys, tmp_path):
    path = tmp_path / "r.json"
    rc, out, err = _bench(capsys, *TINY, "--impl", CPU_FAST, "--json", str(path))
    assert rc == 0, out + err
    rec = json.loads(path.read_text())
    want = [i for i in CPU_FAST.split(",")
            if not (i == "jax" and any(s["impl"] == "jax" for s in rec["skipped"]))]
    rows = _table_rows(out)
    assert [(r[0], r[2]) for r in rows] == [(s, i) for s in ("7×3×2", "50×4×5") for i in want]
    assert "ceilings" not in rec and "ceilings" not in out  # only with --ceilings
    assert "roofline" not in out and all(r["roofline"] is None for r in rec["results"])
    assert all(r[3] == "ok" for r in rows), out
    by = {(tuple(r["shape"]), r["impl"]): r for r in rec["results"]}
    for r in rec["results"]:
        assert r["status"] == "timed" and r["check"] == "ok", r
        assert r["samples"] >= 3
        assert 0 < r["p20_s"] <= r["median_s"] <= r["p80_s"]
        assert r["first_call_s"] > 0 and r["compile_s"] >= 0
        N, K, M = r["shape"]
        assert r["flops"] == 6 * N * K * M
        assert r["bytes"] == 4 * 2 * (N * K + K * M + N * M)
        assert r["gflops"] == pytest.approx(r["flops"] / r["median_s"] / 1e9)
        assert r["gbps"] == pytest.approx(r["bytes"] / r["median_s"] / 1e9)
        base = by[tuple(r["shape"]), "torch"]["median_s"]
        assert r["speedup_vs_torch"] == pytest.approx(base / r["median_s"])
        # loopgrad's own rows are held to its accuracy contract
        if r["impl"].startswith("loopgrad"):
            assert max(e["err_over_bound"] for e in r["errors"].values()) <= 1


def test_json_has_exactly_the_documented_fields(capsys, tmp_path, tiny_ceilings):
    path = tmp_path / "r.json"
    rc, out, _ = _bench(capsys, "--shapes", "5x2x3", "--repeat", "3", "--max-time", "0.01",
                        "--no-progress", "--impl", "loopgrad,numpy,torch-cuda", "--threads", "1",
                        "--ceilings", "--json", str(path))
    assert rc == 0
    rec = json.loads(path.read_text())
    top, res = _documented_fields()
    assert sorted(rec) == sorted(top)
    for r in rec["results"]:
        assert sorted(r) == sorted(res)
    doc = BENCH_DOC.read_text()
    for name in top + res:
        assert name in doc, f"docs/bench.md does not document the JSON field {name!r}"
    import numba
    import os

    assert rec["schema"] == bench.SCHEMA
    assert rec["command"].startswith("loopgrad bench --shapes 5x2x3")
    assert rec["settings"]["shapes"] == [[5, 2, 3]] and rec["settings"]["threads"] == 1
    assert rec["threads"]["numba"] == 1 and rec["threads"]["torch"] == 1
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored afterwards
    assert rec["machine"]["cores"] == os.cpu_count()
    from loopgrad.cpu import machine

    m = machine.summary()  # which CPU and which of loopgrad's table entries made the figures
    assert {k: rec["machine"][k] for k in m} == m and m["table_entry"] in machine.TABLE
    from loopgrad.cpu import workspace

    assert rec["machine"]["memory_kept"] == {"scratch_bytes": workspace.KEEP_BYTES,
                                             "results_bytes": workspace.RESULT_BYTES}
    kernels = {r["impl"]: r["kernel"] for r in rec["results"]}
    from loopgrad import cpu  # the kernel the call ran, as loopgrad.cpu.describe names it (2×3:
    # rowgroups.py's padded rows, several a vector, on both entries since 53e)
    assert kernels["loopgrad"] == cpu.describe(5, 2, 3, np.float32)
    assert kernels["loopgrad"].startswith("skinny rows K=2 M=3 (%d-bit" % m["vector_bits"])
    assert kernels["numpy"] is None
    assert f"loopgrad's kernels: 5×2×3 {kernels['loopgrad']}" in out
    assert f"(LLVM {m['llvm_cpu']}, {m['isa']}); loopgrad's table entry {m['table_entry']}" in out
    assert rec["versions"]["numpy"] == np.__version__
    assert rec["versions"]["torch"] == torch.__version__
    assert rec["env"]["OPENBLAS_CORETYPE"] == os.environ.get("OPENBLAS_CORETYPE")
    assert rec["env"]["OPENBLAS_L2_SIZE"] == os.environ.get("OPENBLAS_L2_SIZE")
    pytest.importorskip("threadpoolctl")
    blas = [d for d in rec["blas"]["loaded"] if d["user_api"] == "blas"]
    assert blas and rec["threads"]["blas"] == [1]  # --threads limits NumPy's BLAS too
    # --ceilings: both measured, with --threads 1 in force, and printed after the table
    ceil = rec["ceilings"]
    _check_memory_copy(ceil["memory_copy"])
    _check_sgemm(ceil["sgemm"])
    assert all(m["threads"] == 1 for c in ceil.values() for m in c["measurements"]
               if m["gbps" if "gbps" in m else "gflops"] is not None)
    assert out.index("ceilings (--ceilings)") > out.index("5×2×3")
    assert re.search(r"^  memory copy\s+[\d.]+ GB/s  ", out, re.M)
    assert re.search(r"^  sgemm\s+[\d.]+ GFLOP/s  ", out, re.M)
    # the roofline: each timed cell's least time from the ceilings, and its share reached
    for r in rec["results"]:
        if r["median_s"]:
            least = max(r["bytes"] / (ceil["memory_copy"]["gbps"] * 1e9),
                        r["flops"] / (ceil["sgemm"]["gflops"] * 1e9))
            assert r["roofline_s"] == pytest.approx(least)
            assert r["roofline"] == pytest.approx(least / r["median_s"])
            assert f"{100 * r['roofline']:.0f} %" in out
        else:
            assert r["roofline"] is None
    assert re.search(r"vs torch\s+roofline$", out, re.M)
    # one round: no ceilings in rounds
    assert "in_rounds" not in ceil and all(r["roofline_rounds"] is None for r in rec["results"])
    md = bench_report.markdown(rec)
    assert "| vs torch | roofline |" in md
    assert "| what | figure | how measured |" in md
    assert re.search(r"^\| \*\*sgemm\*\* \| \*\*[\d.]+ GFLOP/s\*\* \|", md, re.M)
    assert re.search(r"^\| ↳ NumPy np\.copyto \| [\d.]+ GB/s \| 1 thread \|$", md, re.M)


def _positive(v):
    return isinstance(v, float) and np.isfinite(v) and v > 0


def _check_memory_copy(c):
    assert sorted(c) == sorted(["gbps", "best", "array_bytes", "bytes_per_copy", "dtype",
                                "repeat", "measurements"])
    assert [m["key"] for m in c["measurements"]] == ["numpy-copyto", "numba-prange"]
    for m in c["measurements"]:
        assert sorted(m) == sorted(["key", "label", "threads", "best_s", "gbps", "reason"])
        assert m["reason"] is None and _positive(m["best_s"]) and _positive(m["gbps"])
        assert m["gbps"] == pytest.approx(c["bytes_per_copy"] / m["best_s"] / 1e9)
    assert c["bytes_per_copy"] == 2 * c["array_bytes"]
    assert c["gbps"] == max(m["gbps"] for m in c["measurements"])
    assert c["best"] in [m["label"] for m in c["measurements"] if m["gbps"] == c["gbps"]]


def _check_sgemm(c):
    assert sorted(c) == sorted(["gflops", "best", "n", "dtype", "repeat", "measurements"])
    assert [m["key"] for m in c["measurements"]] == ["numpy", "numpy-unpinned", "torch"]
    n = c["n"]
    for m in c["measurements"]:
        assert sorted(m) == sorted(["key", "label", "env", "blas", "threads", "best_s",
                                    "gflops", "reason"])
        if m["key"] == "numpy-unpinned" and m["reason"]:
            continue  # neither variable set here: nothing to remove
        assert m["reason"] is None and _positive(m["best_s"]) and _positive(m["gflops"])
        assert m["gflops"] == pytest.approx(2 * n**3 / m["best_s"] / 1e9)
    assert _positive(c["gflops"])
    assert c["gflops"] == max(m["gflops"] for m in c["measurements"] if m["gflops"])


def test_ceilings_at_tiny_sizes(monkeypatch):
    copy = bench_ceilings.memory_copy(mib=1, repeat=2)
    _check_memory_copy(copy)
    assert copy["array_bytes"] == 2**20 and copy["repeat"] == 2
    # NumPy's product runs twice in fresh processes: as the environment is, and without
    # the two variables that pin OpenBLAS's kernels (set to Haswell and 512 on some machines)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "512")
    mm = bench_ceilings.sgemm(n=32, repeat=2, timeout=60)
    _check_sgemm(mm)
    numpy, unpinned, _ = mm["measurements"]
    assert numpy["env"] == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    assert unpinned["env"] == {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}
    if numpy["blas"]:  # threadpoolctl in the subprocess: which kernels OpenBLAS chose
        assert numpy["blas"]["internal_api"] == "openblas"
        assert numpy["blas"]["architecture"].lower() == "haswell"
    # neither set: the second run would repeat the first, so it is not made
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    monkeypatch.delenv("OPENBLAS_L2_SIZE")
    mm = bench_ceilings.sgemm(n=16, repeat=1, with_torch=False, dtype="float64")
    assert mm["dtype"] == "float64" and mm["gflops"] > 0   # dgemm, for float64 runs
    mm = bench_ceilings.sgemm(n=16, repeat=1, with_torch=False)
    assert [m["key"] for m in mm["measurements"]] == ["numpy", "numpy-unpinned"]
    assert mm["measurements"][1]["gflops"] is None and "neither" in mm["measurements"][1]["reason"]
    assert mm["best"] == mm["measurements"][0]["label"] and _positive(mm["gflops"])


def test_ceilings_subprocess_failures_are_reported(monkeypatch):
    monkeypatch.setattr(bench_ceilings, "_CHILD", "raise SystemExit('no BLAS here')")
    mm = bench_ceilings.sgemm(n=8, repeat=1, with_torch=False)
    assert mm["gflops"] is None and mm["best"] is None
    assert "the subprocess failed: no BLAS here" in mm["measurements"][0]["reason"]
    monkeypatch.setattr(bench_ceilings, "_CHILD", "import time; time.sleep(30)")
    mm = bench_ceilings.sgemm(n=8, repeat=1, timeout=0.5, with_torch=False)
    assert mm["measurements"][0]["reason"] == "timed out after 0.5 s"


def test_ctrl_c_during_the_ceilings_keeps_what_was_measured(capsys, tmp_path, monkeypatch,
                                                          tiny_ceilings):
    def interrupted(**_):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_ceilings, "sgemm", interrupted)
    path = tmp_path / "r.json"
    rc, out, err = _bench(capsys, "--shapes", "5x2x3", "--repeat", "3", "--max-time", "0.01",
                          "--no-progress", "--impl", "loopgrad", "--ceilings",
                          "--json", str(path))
    assert rc == 130 and "interrupted:" in err
    rec = json.loads(path.read_text())
    assert rec["interrupted"] is True and rec["results"][0]["status"] == "timed"
    _check_memory_copy(rec["ceilings"]["memory_copy"])
    assert rec["ceilings"]["sgemm"] is None
    assert re.search(r"^  sgemm\s+—  not measured \(interrupted\)$", out, re.M)


def test_ctrl_c_swallowed_mid_cell_still_stops_at_the_next_cell(capsys, tmp_path, monkeypatch):
    # SIGINT while Numba compiles can land in a ctypes callback, where Python prints
    # the KeyboardInterrupt and drops it; the run must still stop, after that cell
    import os
    import signal

    time_cell = bench._time_cell
    calls = []

    def swallowing(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # the handler runs here and raises ...
            except KeyboardInterrupt:
                pass             # ... and the "callback" drops it
        return time_cell(*a, **k)

    monkeypatch.setattr(bench, "_time_cell", swallowing)
    path = tmp_path / "r.json"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs in the background
    rc, out, err = _bench(capsys, "--shapes", "5x2x3,6x2x3,7x2x3", "--repeat", "3",
                          "--max-time", "0.01", "--no-progress", "--impl", "loopgrad",
                          "--json", str(path))
    assert rc == 130 and "interrupted: 1 cell(s)" in err
    assert len(calls) == 1 and json.loads(path.read_text())["interrupted"] is True
    assert signal.getsignal(signal.SIGINT) is before  # put back


@pytest.mark.parametrize("args, message", [
    (["--shapes", "3x4"], "invalid shape '3x4'"),
    (["--shapes", "10x0x4"], "invalid shape '10x0x4'"),
    (["--dtype", "int8"], "invalid choice: 'int8'"),
    (["--impl", "nope"], "unknown implementation 'nope'"),
    (["--preset", "nope"], "invalid choice: 'nope'"),
    (["--threads", "0"], "expected a positive int"),
    (["--repeat", "x"], "expected a positive int"),
])
def test_bad_options_are_usage_errors(capsys, args, message):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "usage: loopgrad bench" in err and message in err


def test_too_many_threads_is_a_usage_error(capsys):
    import numba

    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--threads", str(numba.config.NUMBA_NUM_THREADS + 1)])
    assert e.value.code == 2 and "NUMBA_NUM_THREADS" in capsys.readouterr().err


class _Wrong(bench_impls.Loopgrad):
    key, label = "wrong", "loopgrad with dW off by 1%"
    calls = 0

    def prepare(self, x, W, y):
        inner = super().prepare(x, W, y)

        def run():
            type(self).calls += 1
            f, dx, dW, dy = inner.run()
            return f, dx, dW * np.float32(1.01), dy

        return bench_impls.Prepared(run, inner.host)


class _Broken(bench_impls.Impl):
    key, label, skip_on_error = "broken", "fails on its first call, like torch.compile can", True

    def prepare(self, x, W, y):
        def run():
            raise RuntimeError("no C++ compiler")

        return bench_impls.Prepared(run, tuple)


class _Absent(bench_impls.Impl):
    key, label = "absent", "a peer that is not installed"

    def unavailable(self):
        return "absentlib not installed"


def test_wrong_is_a_mismatch_not_timed_and_missing_peers_are_skipped(capsys, tmp_path,
                                                                       monkeypatch):
    extra = [_Wrong(), _Broken(), _Absent()]
    reg = bench_impls.registry
    monkeypatch.setattr(bench_impls, "registry", lambda: reg() + extra)
    monkeypatch.setattr(bench_impls, "KEYS", bench_impls.KEYS + tuple(i.key for i in extra))
    monkeypatch.setitem(sys.modules, "jax", None)  # JAX absent, whether installed or not
    _Wrong.calls = 0
    path = tmp_path / "r.json"
    rc, out, _ = _bench(capsys, *TINY, "--impl", "loopgrad,torch,jax,loopgrad-cuda,wrong,"
                        "broken,absent", "--json", str(path))
    assert rc == 1  # a mismatch fails the command
    rec = json.loads(path.read_text())
    wrong = [r for r in rec["results"] if r["impl"] == "wrong"]
    assert len(wrong) == 2 and _Wrong.calls == 2  # one checked call per shape, none timed
    for r in wrong:
        assert r["status"] == "mismatch" and r["check"] == "mismatch"
        assert r["median_s"] is None and r["samples"] == 0 and r["speedup_vs_torch"] is None
        assert "dW" in r["reason"]
        assert r["errors"]["dW"]["err_over_bound"] > 1 >= r["errors"]["dx"]["err_over_bound"]
    assert re.search(r"wrong\s+MISMATCH dW: max \|err\| \S+ = \S+× bound", out)
    broken = [r for r in rec["results"] if r["impl"] == "broken"]
    assert [r["status"] for r in broken] == ["skipped", "skipped"]
    assert all("no C++ compiler" in r["reason"] for r in broken)
    skipped = {s["impl"]: s["reason"] for s in rec["skipped"]}
    assert skipped["absent"] == "absentlib not installed"
    assert "JAX not installed" in skipped["jax"]
    if not torch.cuda.is_available():
        assert skipped["loopgrad-cuda"] == "no CUDA GPU"
    for key in skipped:
        assert re.search(rf"^skipped: {re.escape(key)} \(.*\): ", out, re.M)
    assert {r["impl"] for r in rec["results"]} == {"loopgrad", "torch", "wrong", "broken"}
    assert all(r["status"] == "timed" for r in rec["results"]
               if r["impl"] in ("loopgrad", "torch"))


def test_torch_compile_is_timed_or_skipped_with_its_compile_time(capsys, tmp_path):
    path = tmp_path / "r.json"
    rc, out, _ = _bench(capsys, "--shapes", "7x3x2", "--repeat", "3", "--max-time", "0.01",
                        "--no-progress", "--impl", "torch,torch-compile", "--json", str(path))
    assert rc == 0
    (r,) = [r for r in json.loads(path.read_text())["results"] if r["impl"] == "torch-compile"]
    if r["status"] == "skipped":  # a machine where torch.compile cannot work
        assert r["reason"]
    else:
        assert r["check"] == "ok" and r["compile_s"] > 0 and r["first_call_s"] > r["median_s"]


def test_markdown_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "r.png"
    rc, out, _ = _bench(capsys, "--shapes", "6x2x2,40x3x2", "--repeat", "3", "--max-time", "0.01",
                        "--no-progress", "--impl", "loopgrad,torch", "--markdown",
                        "--plot", str(png))
    assert rc == 0
    assert re.match(r"## \d{4}-\d\d-\d\d — `loopgrad bench`", out)
    assert "- Command: `loopgrad bench --shapes 6x2x2,40x3x2" in out
    assert "OPENBLAS_CORETYPE=" in out and f"numpy {np.__version__}" in out
    from loopgrad.cpu import machine

    m = machine.summary()
    assert f"(LLVM `{m['llvm_cpu']}`, {m['isa']})" in out
    assert f"- loopgrad's kernels: machine-table entry {m['table_entry']}" in out
    kernels = next(ln for ln in out.splitlines() if ln.startswith("- loopgrad's kernels:"))
    assert kernels.endswith("(last panels in 256-bit tails)") is m["halves_512"]
    lines = [line for line in out.splitlines() if line.startswith("| 6×2×2") or
             line.startswith("| 40×3×2")]
    assert len(lines) == 4 and all(line.split(" | ")[3] == "ok" for line in lines)
    assert "![time and GFLOP/s" in out and "(r.png)" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shapes_and_presets():
    assert bench._shapes("10x4x4,1e6X4x4") == [(10, 4, 4), (1_000_000, 4, 4)]
    quick = bench.PRESETS["quick"][0]
    assert (10, 4, 4) in quick
    assert any(N >= 100 * max(K, M) for N, K, M in quick)  # a skinny, memory-bound shape
    assert any(N == K == M >= 256 for N, K, M in quick)     # a square, compute-bound shape
    full = bench.PRESETS["full"][0]
    assert set(full) == set(bench.PRESETS["skinny"][0]) | set(bench.PRESETS["square"][0]) \
        | set(bench.PRESETS["compute"][0])


def test_help_imports_nothing_heavy():
    code = ("import sys, loopgrad.cli\n"
            "for argv in (['--help'], ['bench', '--help']):\n"
            "    try:\n        loopgrad.cli.main(argv)\n    except SystemExit:\n        pass\n"
            "heavy = ('torch', 'jax', 'matplotlib', 'tqdm', 'numba', 'threadpoolctl')\n"
            "sys.stderr.write(repr(sorted(m for m in heavy if m in sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "bench" in run.stdout and "--preset" in run.stdout
    assert run.stderr.strip() == "[]"


def test_check_tiers(rng):
    # ok within loopgrad's contract; ok* within the worst case of a float32 sum; else mismatch
    from loopgrad import reference

    x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((20_000, 3), (3, 4),
                                                                    (20_000, 4)))
    ref = reference.torch_autograd(x, W, y, 0.5)
    bounds = reference.error_bounds(x, W, y, ref)
    loose = bench._loose_bounds(x, ref, bounds)
    got = [ref[0], *(a.astype(np.float32) for a in ref[1:])]
    assert bench._check(got, ref, bounds, loose)[0] == "ok"
    f_err = 1e-4 * ref[0]  # torch's float32 trace(zᵀz) is off by about this much at N = 1e6
    assert bounds[0] < f_err < loose[0]
    check, reason, errors = bench._check([ref[0] + f_err, *got[1:]], ref, bounds, loose)
    assert check == "ok*" and reason.startswith("f ") and errors["f"]["err_over_bound"] > 1
    assert bench._check([ref[0] * 1.1, *got[1:]], ref, bounds, loose)[0] == "mismatch"
    assert bench._check([got[0], -got[1], *got[2:]], ref, bounds, loose)[0] == "mismatch"


def test_ctrl_c_reports_the_cells_measured_so_far(tmp_path):
    # a real SIGINT into a running `loopgrad bench`: it must print what it has,
    # write the JSON marked interrupted, and exit 130 (not a traceback)
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopgrad", "bench", "--shapes", "3x2x2," + ",".join(["400x3x3"] * 40),
         "--impl", "loopgrad,numpy", "--repeat", "3", "--max-time", "0.05", "--no-progress",
         "--json", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # 41 shapes take over 20 s (a settling pause between cells); interrupt after a few
    # (8 s: with a test file on each core, the start-up alone took more than 4 s once)
    time.sleep(8.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    # no traceback but the report Python prints when the signal lands in a ctypes
    # callback (Numba compiling) and is dropped there; bench stops after that cell
    dropped = "Exception ignored on calling ctypes callback function"
    assert err.count("Traceback") == err.count(dropped) and "interrupted:" in err, err[-2000:]
    rec = json.loads(path.read_text())
    assert rec["interrupted"] is True
    assert 0 < len(rec["results"]) < 2 * 41
    assert all(r["status"] == "timed" for r in rec["results"])
    assert _table_rows(out)


def test_no_timed_call_runs_a_kernel_in_transition(rng):
    # an implementation whose first call leaves a compile behind it (as loopgrad's cold
    # tiled kernels do): its calls are slow until settle() has waited for it; the wait is
    # the first call's, in `compile`, and the median is the fast kernel's
    from loopgrad import reference

    x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((50, 3), (3, 4), (50, 4)))
    ref = reference.torch_autograd(x, W, y, 0.5)
    bounds = reference.error_bounds(x, W, y, ref)
    loose = bench._loose_bounds(x, ref, bounds)
    compiled = []

    class InTransition(bench_impls.Impl):
        key, label = "transition", "slow until its compile has landed"

        def prepare(self, x, W, y):
            def run():
                time.sleep(0.0005 if compiled else 0.05)
                return ref[0], ref[1].astype(np.float32), ref[2].astype(np.float32), \
                    ref[3].astype(np.float32)

            def settle():
                time.sleep(0.2)
                compiled.append(True)

            return bench_impls.Prepared(run, bench_impls._host4, settle)

    cell = bench._time_cell(InTransition(), x, W, y, ref, bounds, loose, 0.3, 20)
    assert cell["status"] == "timed" and compiled
    assert cell["median_s"] < 0.01 and cell["first_call_s"] >= 0.25 and cell["compile_s"] >= 0.2


def test_loopgrad_settles_by_waiting_for_its_background_compiles(rng):
    from loopgrad.cpu import background

    x, W, y = (rng.standard_normal(s).astype(np.float32) for s in ((5, 2), (2, 3), (5, 3)))
    prep = bench_impls.Loopgrad().prepare(x, W, y)
    background.start("test-settle", None, [sys.executable, "-c", "import time; time.sleep(0.5)"])
    assert background.running() == ["test-settle"]
    prep.settle()
    assert background.running() == [] and background.done("test-settle")


def test_rounds_alternate_the_implementations_and_pool_their_calls(capsys, tmp_path, monkeypatch):
    # --rounds 3: every implementation's first call and check first, then its timed calls
    # in three rounds taken in turn (NumPy last in each), the median over all of them
    order = []
    samples = bench._samples

    def recording(run, max_time, repeat):
        got = samples(run, max_time, repeat)
        order.append((run, len(got), max_time))
        return got

    monkeypatch.setattr(bench, "_samples", recording)
    path = tmp_path / "r.json"
    rc, out, _ = _bench(capsys, "--shapes", "9x3x4", "--impl", "loopgrad,numpy", "--rounds", "3",
                        "--repeat", "7", "--max-time", "0.3", "--no-progress", "--json", str(path))
    assert rc == 0
    rec = json.loads(path.read_text())
    assert rec["settings"]["rounds"] == 3
    runs = [r for r, _, _ in order]
    assert len(runs) == 6 and runs[0::2] == [runs[0]] * 3 and runs[1::2] == [runs[1]] * 3
    assert runs[0] is not runs[1]
    assert [n for _, n, _ in order] == [3] * 6  # ceil(7 / 3) calls a round
    assert all(t == pytest.approx(0.1) for _, _, t in order)  # a third of the seconds
    cells = {r["impl"]: r for r in rec["results"]}
    assert list(cells) == ["loopgrad", "numpy"]
    assert all(c["status"] == "timed" and c["samples"] == 9 for c in cells.values())
    assert "in 3 alternating rounds" in out


def test_ceilings_in_rounds_meet_each_shapes_minutes(capsys, tmp_path, tiny_ceilings,
                                                     monkeypatch):
    # --ceilings --rounds 3: after each round's cells one product and one copy
    # (ceilings.InRounds), their medians per shape beside the cells' medians
    order = []
    sample = bench_ceilings.InRounds.sample

    def recording(self, settle=0.0):
        order.append("probe")
        sample(self, settle)

    samples = bench._samples

    def cells(run, max_time, repeat):
        order.append("cell")
        return samples(run, max_time, repeat)

    monkeypatch.setattr(bench_ceilings.InRounds, "sample", recording)
    monkeypatch.setattr(bench, "_samples", cells)
    path = tmp_path / "r.json"
    rc, out, _ = _bench(capsys, "--shapes", "9x3x4,40x30x20", "--impl", "loopgrad,numpy",
                        "--rounds", "3", "--repeat", "6", "--max-time", "0.3", "--threads", "1",
                        "--no-progress", "--ceilings", "--json", str(path))
    assert rc == 0
    # the warm-up's sample, then per shape three rounds of (two cells, a probe)
    assert order == ["probe"] + ["cell", "cell", "probe"] * 6
    rec = json.loads(path.read_text())
    again = rec["ceilings"]["in_rounds"]
    assert [c["shape"] for c in again] == [[9, 3, 4], [40, 30, 20]]
    for c in again:
        assert c["samples"] == 3 and _positive(c["gemm_gflops"]) and _positive(c["copy_gbps"])
    shares = []
    for r in rec["results"]:
        c = again[0 if r["shape"] == [9, 3, 4] else 1]
        least = max(r["bytes"] / (c["copy_gbps"] * 1e9), r["flops"] / (c["gemm_gflops"] * 1e9))
        assert r["roofline_rounds"] == pytest.approx(least / r["median_s"])
        assert r["roofline"] is not None  # the run's best ceilings as well
        shares.append(rf"{100 * r['roofline']:.0f} %\s+{100 * r['roofline_rounds']:.0f} %")
    assert re.search(r"vs torch\s+roofline\s+in rounds$", out, re.M)
    assert all(re.search(r"\s" + sh + "$", out, re.M) for sh in shares), out
    assert re.search(r"^  gemm in rounds\s+[\d.]+–[\d.]+ GFLOP/s  .*over 2 shapes", out, re.M)
    assert re.search(r"^  copy in rounds\s+[\d.]+–[\d.]+ GB/s  ", out, re.M)
    md = bench_report.markdown(rec)
    assert "| roofline | in rounds |" in md and "| **gemm in rounds** |" in md


def test_a_call_that_fails_in_a_later_round_makes_only_its_cell_an_error(capsys, tmp_path,
                                                                          monkeypatch):
    rounds = []
    samples = bench._samples

    def counting(run, max_time, repeat):
        rounds.append(getattr(run, "__name__", ""))
        return samples(run, max_time, repeat)

    class FailsLater(bench_impls.Impl):
        key, label = "fails-later", "right first, then raises in its second round"

        def prepare(self, x, W, y):
            good = bench_impls.NumpyHand().prepare(x, W, y)

            def fails_later():
                if rounds.count("fails_later") > 1:
                    raise RuntimeError("broke in round two")
                return good.run()

            return bench_impls.Prepared(fails_later, good.host)

    monkeypatch.setattr(bench, "_samples", counting)
    monkeypatch.setattr(bench_impls, "registry", lambda: [bench_impls.Loopgrad(), FailsLater()])
    monkeypatch.setattr(bench_impls, "KEYS", ("loopgrad", "fails-later"))
    path = tmp_path / "r.json"
    rc, out, _ = _bench(capsys, "--shapes", "9x3x4", "--rounds", "3", "--repeat", "6",
                        "--max-time", "0.3", "--no-progress", "--json", str(path))
    cells = {r["impl"]: r for r in json.loads(path.read_text())["results"]}
    assert rc == 1
    assert rounds.count("fails_later") == 2  # no third round for it
    assert cells["loopgrad"]["status"] == "timed" and cells["loopgrad"]["samples"] == 6
    assert cells["fails-later"]["status"] == "error"
    assert "broke in round two" in cells["fails-later"]["reason"]
    assert cells["fails-later"]["median_s"] is None
