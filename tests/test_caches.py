"""loopgrad/cpu/caches.py: the cache geometry read from sysfs, else sysconf, else defaults."""

import pytest

from loopgrad.cpu import caches

KIB, MIB = 2**10, 2**20


def _sysfs(root, *indexes):
    # indexes: dicts of file name → content, as in /sys/devices/system/cpu/cpu0/cache/indexN/
    root.mkdir(parents=True, exist_ok=True)
    for i, files in enumerate(indexes):
        d = root / f"index{i}"
        d.mkdir()
        for name, text in files.items():
            (d / name).write_text(f"{text}\n")
    (root / "uevent").write_text("")  # not an index dir: ignored
    return str(root)


def _index(level, kind, size, ways, sets, shared, line=64):
    return dict(level=level, type=kind, size=size, ways_of_associativity=ways,
                coherency_line_size=line, number_of_sets=sets, shared_cpu_list=shared)


# an Emerald Rapids VM: 48K L1d (the 32K L1i is skipped), 2M L2, 105M L3 shared by both CPUs
INTEL = [_index(1, "Data", "48K", 12, 64, "0"), _index(1, "Instruction", "32K", 8, 64, "0"),
         _index(2, "Unified", "2048K", 16, 2048, "0"), _index(3, "Unified", "107520K", 15, 114688,
                                                             "0-1")]
# a Zen 4 core: L1i listed first, L3 32M shared by a CCD's 16 CPUs (a list with ranges)
AMD = [_index(1, "Instruction", "32K", 8, 64, "0,16"), _index(1, "Data", "32K", 8, 64, "0,16"),
       _index(2, "Unified", "1024K", 8, 2048, "0,16"), _index(3, "Unified", "32768K", 16, 32768,
                                                           "0-7,16-23")]


@pytest.fixture
def no_sysconf(monkeypatch):
    # the fallbacks below sysfs, made predictable: sysconf knows nothing
    monkeypatch.setattr(caches, "_sysconf", lambda name: None)


def test_intel_like_sysfs(tmp_path, no_sysconf):
    g = caches.read(_sysfs(tmp_path / "cache", *INTEL))
    assert g == {
        "L1d": dict(bytes=48 * KIB, ways=12, line=64, sets=64, shared_cpus=1, source="sysfs"),
        "L2": dict(bytes=2 * MIB, ways=16, line=64, sets=2048, shared_cpus=1, source="sysfs"),
        "L3": dict(bytes=105 * MIB, ways=15, line=64, sets=114688, shared_cpus=2,
                   source="sysfs"),
    }
    assert caches.describe(g) == "L1d 48 KiB 12-way, L2 2 MiB 16-way, L3 105 MiB 15-way (sysfs)"


def test_amd_like_sysfs(tmp_path, no_sysconf):
    g = caches.read(_sysfs(tmp_path / "cache", *AMD))
    assert g["L1d"] == dict(bytes=32 * KIB, ways=8, line=64, sets=64, shared_cpus=2,
                            source="sysfs")  # the data cache, not the instruction cache
    assert g["L2"]["bytes"] == MIB and g["L2"]["ways"] == 8
    assert g["L3"] == dict(bytes=32 * MIB, ways=16, line=64, sets=32768, shared_cpus=16,
                           source="sysfs")
    assert caches.describe(g) == "L1d 32 KiB 8-way, L2 1 MiB 8-way, L3 32 MiB 16-way (sysfs)"


def test_missing_sysfs_falls_back_to_sysconf_then_defaults(tmp_path, monkeypatch):
    known = {"SC_LEVEL1_DCACHE_SIZE": 48 * KIB, "SC_LEVEL1_DCACHE_ASSOC": 12,
             "SC_LEVEL1_DCACHE_LINESIZE": 64, "SC_LEVEL2_CACHE_SIZE": 2 * MIB,
             "SC_LEVEL2_CACHE_ASSOC": 0,  # glibc's "unknown"
             "SC_LEVEL3_CACHE_SIZE": 0}   # no L3 known: the default
    monkeypatch.setattr(caches, "_sysconf", lambda name: known.get(name) or None)
    g = caches.read(str(tmp_path / "nothing-here"))
    assert g["L1d"] == dict(bytes=48 * KIB, ways=12, line=64, sets=64, shared_cpus=None,
                            source="sysconf")  # sets derived: 48 KiB / (12 · 64)
    assert g["L2"] == dict(bytes=2 * MIB, ways=None, line=None, sets=None, shared_cpus=None,
                           source="sysconf")
    assert g["L3"] == dict(bytes=8 * MIB, ways=16, line=64, sets=8192, shared_cpus=None,
                           source="default")
    assert caches.describe(g) == ("L1d 48 KiB 12-way (sysconf), L2 2 MiB (sysconf), "
                                  "L3 8 MiB 16-way (default)")


def test_nothing_known_gives_the_defaults(tmp_path, no_sysconf):
    g = caches.read(str(tmp_path / "nothing-here"))
    assert {lv: (c["bytes"], c["ways"], c["line"], c["source"]) for lv, c in g.items()} == {
        "L1d": (32 * KIB, 8, 64, "default"), "L2": (512 * KIB, 8, 64, "default"),
        "L3": (8 * MIB, 16, 64, "default")}
    assert g["L1d"]["sets"] == 64 and g["L2"]["sets"] == 1024


def test_the_real_sysconf_is_read_where_sysfs_is_missing(tmp_path):
    g = caches.read(str(tmp_path / "nothing-here"))
    assert set(g) == {"L1d", "L2", "L3"}
    for c in g.values():
        assert c["source"] in ("sysconf", "default") and c["bytes"] > 0


@pytest.mark.parametrize("garbage", [
    dict(size="lots"), dict(size=""), dict(size="-48K"), dict(size="48Q"),
    dict(level="one"), dict(type="Instruction"), dict(level="4"),
])
def test_garbage_falls_back_and_never_raises(tmp_path, no_sysconf, garbage):
    l1 = {**INTEL[0], **garbage}
    g = caches.read(_sysfs(tmp_path / "cache", l1, *INTEL[1:]))
    assert g["L1d"]["source"] == "default" and g["L1d"]["bytes"] == 32 * KIB
    assert g["L2"]["source"] == g["L3"]["source"] == "sysfs"


def test_garbage_in_the_details_keeps_the_size(tmp_path, no_sysconf):
    l1 = {**INTEL[0], "ways_of_associativity": "0", "number_of_sets": "x",
          "coherency_line_size": "", "shared_cpu_list": "0-a"}
    l2 = {k: v for k, v in INTEL[2].items() if k != "number_of_sets"}  # sets derived
    root = tmp_path / "cache"
    _sysfs(root, l1, l2)  # no L3 but index9's, unreadable: the default
    (root / "index7").mkdir()                            # an empty index dir
    (root / "index8").write_text("not a directory\n")    # a file where a dir should be
    (root / "index9").mkdir()
    (root / "index9" / "level").write_text("3\n")
    (root / "index9" / "type").write_text("Unified\n")
    (root / "index9" / "size").mkdir()                   # a dir where a file should be
    g = caches.read(str(root))
    assert g["L1d"] == dict(bytes=48 * KIB, ways=None, line=None, sets=None, shared_cpus=None,
                            source="sysfs")
    assert g["L2"]["sets"] == 2048 and g["L3"]["source"] == "default"
    assert caches.describe(g) == ("L1d 48 KiB (sysfs), L2 2 MiB 16-way (sysfs), "
                                  "L3 8 MiB 16-way (default)")


def test_unreadable_root_is_not_an_error(tmp_path, no_sysconf):
    f = tmp_path / "a-file"
    f.write_text("x")
    assert caches.read(str(f))["L2"]["source"] == "default"
    assert caches.read("\0bad")["L3"]["source"] == "default"


def test_geometry_is_this_machines_read_once():
    g = caches.geometry()
    assert caches.geometry() is g and g == caches.read()
    assert all(c["bytes"] > 0 for c in g.values())


def test_info_prints_the_caches_line(capsys):
    from loopgrad import cli

    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    line = [s for s in out.splitlines() if s.startswith("caches:")]
    assert line == [f"{'caches:':19s} {caches.describe(caches.geometry())}"]
    assert "L1d " in line[0] and ", L2 " in line[0] and ", L3 " in line[0]


def test_importing_caches_imports_no_numba():
    import subprocess
    import sys

    # loopgrad.cpu's __init__ imports Numba; the module itself must not need it
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('caches', sys.argv[1])\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "m.describe(m.read())\n"
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, caches.__file__], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
