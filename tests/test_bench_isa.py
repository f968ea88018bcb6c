"""`loopgrad bench --isa`: the environment that makes a run look like an avx2 or generic machine
(loopgrad/bench/isa.py), its wiring into the command, and one run end to end."""

import json
import os
import re
import subprocess
import sys

import pytest

from loopgrad import cli
from loopgrad.bench import ceilings as bench_ceilings, engine as bench, isa, \
    report as bench_report
from loopgrad.cpu import machine

X86 = "x86_64-unknown-linux-gnu"
# LLVM's features of an Emerald Rapids (Numba's get_host_cpu_features() there)
SPR = ("+64bit,+adx,+aes,-amx-avx512,+amx-bf16,-amx-complex,-amx-fp16,+amx-int8,+amx-tile,+avx,"
       "-avx10.1,-avx10.2,+avx2,+avx512bf16,+avx512bitalg,+avx512bw,+avx512cd,+avx512dq,"
       "+avx512f,+avx512fp16,+avx512ifma,+avx512vbmi,+avx512vbmi2,+avx512vl,+avx512vnni,"
       "-avx512vp2intersect,+avx512vpopcntdq,-avxifma,-avxneconvert,+avxvnni,-avxvnniint16,"
       "-avxvnniint8,+bmi,+bmi2,+cldemote,+clflushopt,+clwb,-clzero,+cmov,+crc32,+cx16,+cx8,"
       "+evex512,+f16c,+fma,-fma4,+fsgsbase,+fxsr,+gfni,+invpcid,+lzcnt,+mmx,+movbe,+pclmul,"
       "+popcnt,+prfchw,+rdrnd,+rdseed,+sahf,+serialize,+sha,-sha512,+shstk,-sm3,-sm4,+sse,"
       "+sse2,+sse3,+sse4.1,+sse4.2,-sse4a,+ssse3,+vaes,+vpclmulqdq,-xop,+xsave,+xsaveopt")
# a Zen 3: AVX2 and FMA, no AVX-512
ZEN3 = ("+64bit,+adx,+aes,+avx,+avx2,-avx512f,-avx512vl,-avx512bw,-avx512dq,+bmi2,+f16c,+fma,"
        "+sse4.2,+vaes,+vpclmulqdq,-xop")
NEHALEM = "+64bit,-avx,-avx2,-fma,+sse4.2,+popcnt,-avx512f"


def _on(features):
    return {f[1:] for f in features.split(",") if f.startswith("+")}


def _switched(before, after):
    # the features a + in before and a - in after
    return _on(before) - _on(after)


def test_avx2_from_avx512_turns_off_exactly_the_avx512_features():
    env = isa.environment("avx2", "sapphirerapids", SPR, X86, vendor="GenuineIntel")
    off = _switched(SPR, env["NUMBA_CPU_FEATURES"])
    assert off == {f for f in _on(SPR)
                   if f.startswith(("avx512", "amx", "avx10")) or f == "evex512"}
    assert {"avx512f", "avx512vl", "amx-tile", "evex512", "avx512fp16"} <= off
    assert _on(env["NUMBA_CPU_FEATURES"]) == _on(SPR) - off  # nothing else changed, none added
    assert len(env["NUMBA_CPU_FEATURES"].split(",")) == len(SPR.split(","))
    assert machine.detect(X86, env["NUMBA_CPU_FEATURES"]) == "avx2"
    assert env["NUMBA_CPU_NAME"] == "haswell"
    assert (env["OPENBLAS_CORETYPE"], env["MKL_ENABLE_INSTRUCTIONS"], env["ONEDNN_MAX_CPU_ISA"],
            env["DNNL_MAX_CPU_ISA"], env["XLA_FLAGS"]) == \
        ("Haswell", "AVX2", "AVX2", "AVX2", "--xla_cpu_max_isa=AVX2")
    assert "ATEN_CPU_CAPABILITY" not in env  # it made torch.compile's answers wrong once
    assert isa.how("avx2", env) == ("Numba haswell without AVX-512, OpenBLAS Haswell, MKL AVX2, "
                                    "oneDNN AVX2, XLA AVX2")


@pytest.mark.parametrize("name, vendor", [("znver4", None), ("znver5", "AuthenticAMD"),
                                          ("x86-64", "AuthenticAMD")])
def test_avx2_on_amd_compiles_for_znver3(name, vendor):
    env = isa.environment("avx2", name, SPR, X86, vendor=vendor)
    assert env["NUMBA_CPU_NAME"] == "znver3"
    assert machine.detect(X86, env["NUMBA_CPU_FEATURES"]) == "avx2"


def test_generic_turns_off_avx_fma_and_what_needs_them():
    env = isa.environment("generic", "sapphirerapids", SPR, X86, vendor="GenuineIntel")
    feats = env["NUMBA_CPU_FEATURES"]
    assert machine.detect(X86, feats) == "generic"
    assert env["NUMBA_CPU_NAME"] == "nehalem"
    left = _on(feats)
    assert not {f for f in left if f.startswith(("avx", "amx"))}
    assert not left & {"fma", "f16c", "vaes", "vpclmulqdq", "gfni", "evex512"}
    assert {"sse4.2", "popcnt", "bmi2", "aes", "pclmul"} <= left  # what Nehalem-class code keeps
    assert (env["OPENBLAS_CORETYPE"], env["MKL_ENABLE_INSTRUCTIONS"],
            env["ONEDNN_MAX_CPU_ISA"]) == ("Nehalem", "SSE4_2", "SSE41")
    assert "--xla_cpu_max_isa=SSE4_2" in env["XLA_FLAGS"]


def test_generic_from_an_avx2_host():
    env = isa.environment("generic", "znver3", ZEN3, X86)
    assert machine.detect(X86, env["NUMBA_CPU_FEATURES"]) == "generic"
    assert _switched(ZEN3, env["NUMBA_CPU_FEATURES"]) == {"avx", "avx2", "fma", "f16c", "vaes",
                                                           "vpclmulqdq"}


def test_the_hosts_own_isa_leaves_numba_alone():
    # avx512 on an AVX-512 host, avx2 on an AVX2 one: Numba compiles for the host
    env = isa.environment("avx512", "sapphirerapids", SPR, X86)
    assert "NUMBA_CPU_NAME" not in env and "NUMBA_CPU_FEATURES" not in env
    assert (env["OPENBLAS_CORETYPE"], env["MKL_ENABLE_INSTRUCTIONS"],
            env["ONEDNN_MAX_CPU_ISA"]) == ("SkylakeX", "AVX512", "AVX512_CORE")
    assert isa.how("avx512", env, "sapphirerapids").startswith(
        "Numba as the host (sapphirerapids), OpenBLAS SkylakeX")
    env = isa.environment("avx2", "znver3", ZEN3, X86)
    assert "NUMBA_CPU_NAME" not in env and env["OPENBLAS_CORETYPE"] == "Haswell"
    # Knights Landing: AVX-512F without VL/BW/DQ is loopgrad's avx2 entry, but its 512-bit
    # code must still go for an avx2 run
    knl = "+avx,+avx2,+fma,+avx512f,+avx512cd,-avx512vl"
    env = isa.environment("avx2", "knl", knl, X86)
    assert env["NUMBA_CPU_FEATURES"] == "+avx,+avx2,+fma,-avx512f,-avx512cd,-avx512vl"


@pytest.mark.parametrize("want, name, features, message", [
    ("avx512", "znver3", ZEN3, "cannot run AVX-512 code (it lacks avx512f, avx512vl, "
                               "avx512bw, avx512dq)"),
    ("avx512", "knl", "+avx2,+fma,+avx512f,+avx512cd", "lacks avx512vl, avx512bw, avx512dq"),
    ("avx2", "nehalem", NEHALEM, "cannot run AVX2 code (it lacks avx2, fma); its widest is "
                                 "generic"),
])
def test_an_isa_wider_than_the_host_is_refused(want, name, features, message):
    with pytest.raises(isa.Unsupported, match=re.escape(message)):
        isa.environment(want, name, features, X86)


def test_not_x86():
    arm = "aarch64-unknown-linux-gnu"
    assert isa.environment("generic", "neoverse-v2", "+neon,+sve", arm) == {}  # it is generic
    assert isa.environment("native", "neoverse-v2", "+neon", arm) == {}
    for want in ("avx2", "avx512"):
        with pytest.raises(isa.Unsupported, match="not x86; only native and generic"):
            isa.environment(want, "neoverse-v2", "+neon,+sve", arm)


def test_native_sets_nothing_and_xla_flags_are_kept():
    assert isa.environment("native", "sapphirerapids", SPR, X86) == {}
    env = isa.environment("avx2", "sapphirerapids", SPR, X86,
                          xla_flags="--xla_cpu_enable_fast_math=false --xla_cpu_max_isa=AVX512")
    assert env["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false --xla_cpu_max_isa=AVX2"


def _llvm_vectors(cpu, features):
    # the vector registers LLVM's x86 backend uses for a <16 x float> multiply-add
    from llvmlite import binding as ll

    ll.initialize_all_targets()
    ll.initialize_all_asmprinters()
    try:
        target = ll.Target.from_triple(X86)
    except RuntimeError:
        pytest.skip("this llvmlite has no x86 backend")
    mod = ll.parse_assembly("""
        define void @f(ptr %a, ptr %b) {
          %x = load <16 x float>, ptr %a
          %y = load <16 x float>, ptr %b
          %m = fmul <16 x float> %x, %y
          %z = fadd <16 x float> %m, %y
          store <16 x float> %z, ptr %a
          ret void
        }""")
    asm = target.create_target_machine(cpu=cpu, features=features).emit_assembly(mod)
    return set(re.findall(r"%([xyz]mm)\d+", asm))


def test_llvm_really_compiles_for_the_narrower_isa():
    # LLVM turns a feature's prerequisites back on when a later "+" needs them, so switching
    # off avx512f alone would still give zmm code; the whole families must go
    assert _llvm_vectors("sapphirerapids", SPR) == {"zmm"}
    for want, regs in (("avx2", {"ymm"}), ("generic", {"xmm"})):
        env = isa.environment(want, "sapphirerapids", SPR, X86)
        assert _llvm_vectors(env["NUMBA_CPU_NAME"], env["NUMBA_CPU_FEATURES"]) == regs, want


def test_cache_dir_is_apart_and_follows_the_users_cache(tmp_path):
    got = isa.cache_dir("avx2", {"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert got == str(tmp_path / "xdg" / "loopgrad" / "bench-isa-avx2" / "numba")
    assert os.path.isdir(got)
    got = isa.cache_dir("generic", {"NUMBA_CACHE_DIR": str(tmp_path / "nc"),
                                    "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert got == str(tmp_path / "nc" / "loopgrad" / "bench-isa-generic" / "numba")


# ------------------------------------------------------------- the command's wiring

def _fake_host(monkeypatch, name, features, vendor="GenuineIntel"):
    monkeypatch.setattr(isa, "host", lambda: (name, features, X86, vendor))


def test_bench_runs_itself_again_with_the_environment(monkeypatch, tmp_path):
    _fake_host(monkeypatch, "sapphirerapids", SPR)
    calls = []
    monkeypatch.setattr(isa, "reexec", lambda argv, env: calls.append((argv, env)) or 7)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv(isa.MARK, raising=False)
    monkeypatch.delenv("LOOPGRAD_CPU_ISA", raising=False)
    monkeypatch.setenv("NUMBA_CPU_NAME", "icelake-server")  # the user's: replaced or dropped
    argv = ["bench", "--isa", "avx2", "--shapes", "5x2x3", "--impl", "numpy"]
    assert cli.main(argv) == 7  # the child's exit status
    (got_argv, env), = calls
    assert got_argv == argv
    assert env[isa.MARK] == "avx2" and env["NUMBA_CPU_NAME"] == "haswell"
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "loopgrad" / "bench-isa-avx2" / "numba")
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["PATH"] == os.environ["PATH"]
    calls.clear()
    assert cli.main(["bench", "--isa", "avx512"]) == 7
    (_, env), = calls
    assert "NUMBA_CPU_NAME" not in env and env["OPENBLAS_CORETYPE"] == "SkylakeX"


@pytest.mark.parametrize("name, features, argv, env, message", [
    ("znver3", ZEN3, ["--isa", "avx512"], {}, "cannot run AVX-512 code"),
    ("nehalem", NEHALEM, ["--isa", "avx2"], {}, "cannot run AVX2 code"),
    ("sapphirerapids", SPR, ["--isa", "avx2"], {"LOOPGRAD_CPU_ISA": "avx512"},
     "--isa avx2 with LOOPGRAD_CPU_ISA=avx512"),
    ("sapphirerapids", SPR, ["--isa", "sse"], {}, "invalid choice: 'sse'"),
])
def test_isa_errors_are_usage_errors(monkeypatch, capsys, name, features, argv, env, message):
    _fake_host(monkeypatch, name, features)
    monkeypatch.setattr(isa, "reexec", lambda argv, env: pytest.fail("ran anyway"))
    monkeypatch.delenv(isa.MARK, raising=False)
    monkeypatch.delenv("LOOPGRAD_CPU_ISA", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: loopgrad bench" in err and message in err, err


def test_sgemm_ceiling_under_a_forced_isa_runs_only_pinned(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    mm = bench_ceilings.sgemm(n=16, repeat=1, with_torch=False, forced_isa="avx2")
    numpy, unpinned = mm["measurements"]
    assert numpy["env"]["OPENBLAS_CORETYPE"] == "Haswell" and numpy["gflops"] > 0
    assert unpinned["gflops"] is None and "not under --isa avx2" in unpinned["reason"]
    assert mm["best"] == numpy["label"]


def test_the_child_records_and_reports_what_was_forced(monkeypatch, capsys, tmp_path):
    # this process as the child of `--isa <the host's ISA>`: nothing to switch off in Numba,
    # so it runs here, and the record, the table and the Markdown say what was forced
    here = machine.target()["isa"]
    monkeypatch.setenv(isa.MARK, here)
    monkeypatch.setenv("OPENBLAS_CORETYPE", isa.OPENBLAS[here])
    monkeypatch.setattr(bench, "_SETTLE_S", 0.0)
    monkeypatch.setattr(bench_ceilings, "COPY_MIB", 1)
    monkeypatch.setattr(bench_ceilings, "SGEMM_N", 32)
    monkeypatch.setattr(bench_ceilings, "REPEAT", 2)
    monkeypatch.setattr(isa, "reexec", lambda argv, env: pytest.fail("ran itself again"))
    path = tmp_path / "r.json"
    assert cli.main(["bench", "--isa", here, "--shapes", "5x2x3", "--repeat", "3",
                     "--max-time", "0.01", "--no-progress", "--impl", "loopgrad,numpy",
                     "--ceilings", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    rec = json.loads(path.read_text())
    forced = rec["machine"]["isa_forced"]
    assert rec["settings"]["isa"] == here and forced["isa"] == here
    assert forced["env"][isa.MARK] == here and forced["how"].startswith("Numba as the host")
    assert f"OpenBLAS {isa.OPENBLAS[here]}" in forced["how"]
    assert rec["env"][isa.MARK] == here
    head = out.split("\n\n")[0].splitlines()
    assert head[-1] == f"ISA forced: {here} ({forced['how']})"  # the line above the table
    assert f"--isa {here}: {isa.CAVEAT}" in out
    unpinned = rec["ceilings"]["sgemm"]["measurements"][1]
    assert unpinned["key"] == "numpy-unpinned" and f"--isa {here}" in unpinned["reason"]
    md = bench_report.markdown(rec)
    assert md.splitlines()[0].endswith(f", ISA forced: {here}")
    assert f"- ISA forced: {here} ({forced['how']})" in md
    assert bench_report.isa_forced(dict(rec, machine=dict(rec["machine"],
                                                          isa_forced=None))) is None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    seen = []
    real_savefig = __import__("matplotlib.figure").figure.Figure.savefig
    monkeypatch.setattr("matplotlib.figure.Figure.savefig",
                        lambda fig, path, **kw: seen.append(fig._suptitle.get_text())
                        or real_savefig(fig, path, **kw))
    bench_report.plot(rec, str(tmp_path / "r.png"))
    assert seen and seen[0].endswith(f"\nISA forced: {here} ({forced['how']})")


# --------------------------------------------------------------------- end to end

def _host_isa():
    from loopgrad.bench.isa import host

    name, features, triple, _ = host()
    return machine.detect(triple, features)


@pytest.mark.skipif(_host_isa() not in ("avx2", "avx512"), reason="the host has no AVX2")
def test_isa_avx2_end_to_end(tmp_path):
    # a fresh process, a cache of its own: the skinny row kernels compile for avx2 (~10 s)
    path = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOOPGRAD_CPU_ISA", isa.MARK, "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES",
                        "OPENBLAS_CORETYPE")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    run = subprocess.run([sys.executable, "-m", "loopgrad", "bench", "--isa", "avx2", "--shapes",
                          "2000x4x4", "--impl", "loopgrad,numpy", "--max-time", "0.1",
                          "--repeat", "3", "--no-progress", "--json", str(path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rec = json.loads(path.read_text())
    m = rec["machine"]
    assert m["table_entry"] == "avx2" and m["isa"] == "avx2" and m["vector_bits"] == 256
    assert m["llvm_cpu"] in ("haswell", "znver3")
    forced = m["isa_forced"]
    assert forced["isa"] == "avx2" and rec["settings"]["isa"] == "avx2"
    e = forced["env"]
    assert e["NUMBA_CPU_NAME"] == m["llvm_cpu"] and e[isa.MARK] == "avx2"
    assert machine.detect("x86_64", e["NUMBA_CPU_FEATURES"]) == "avx2"
    assert e["NUMBA_CACHE_DIR"] == str(tmp_path / "numba" / "loopgrad" / "bench-isa-avx2" /
                                       "numba")
    assert (e["OPENBLAS_CORETYPE"], e["MKL_ENABLE_INSTRUCTIONS"]) == ("Haswell", "AVX2")
    assert rec["env"]["NUMBA_CPU_FEATURES"] == e["NUMBA_CPU_FEATURES"]  # in env too
    assert list((tmp_path / "numba" / "loopgrad" / "bench-isa-avx2").rglob("*.nbi"))
    assert [r["status"] for r in rec["results"]] == ["timed", "timed"]
    assert "(256-bit" in [r["kernel"] for r in rec["results"]][0]  # the rows on the avx2 entry
    blas = [d for d in rec["blas"]["loaded"] or () if d.get("internal_api") == "openblas"]
    assert all(d["architecture"].lower() == "haswell" for d in blas), blas  # NumPy follows
    assert f"ISA forced: avx2 ({forced['how']})" in run.stdout
