"""The README and the user guide in docs/: every Python example runs and prints what the
text shows, and the README's speed table is the generator's.

An example is a ```python block.  A page's blocks run in order in one fresh Python
process and one namespace.  A ```text block right after a python block (blank lines
between at most) is its expected output, compared as doctest compares (ELLIPSIS: `...`
matches anything; NORMALIZE_WHITESPACE).  Comments on the lines right before a block:

    <!-- test: replace "100_000" "1_000" -->   run the block with a literal replaced
                                              (the text shows the large size)

and anywhere on a page `<!-- examples: env NAME=VALUE ... -->` sets variables for its
process (NUMBA_ENABLE_CUDASIM=1: the GPU page under Numba's simulator).
"""
import doctest
import glob
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, ROOT)
                               for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_REPLACE = re.compile(r'<!-- test: replace "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)" -->')
_ENV = re.compile(r"<!-- examples: env ([^>]*?) -->")

_RUNNER = r"""
import contextlib, io, json, sys, traceback
blocks = json.load(open(sys.argv[1]))
out, ns = [], {"__name__": "__main__"}
for code in blocks:
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "<example>", "exec"), ns)
    except BaseException:
        out.append({"stdout": buf.getvalue(), "error": traceback.format_exc()})
        break
    out.append({"stdout": buf.getvalue(), "error": None})
json.dump(out, open(sys.argv[2], "w"))
"""


def examples(text: str) -> list:
    """[(line, code to run, expected output or None)] of a Markdown page."""
    found, blocks = [], list(_FENCE.finditer(text))
    for i, m in enumerate(blocks):
        if m.group(1) != "python":
            continue
        code = m.group(2)
        before = text[:m.start()].rstrip("\n").split("\n")
        while before and _REPLACE.search(before[-1]):
            old, new = _REPLACE.search(before.pop()).groups()
            if old not in code:
                raise AssertionError(f"a test: replace marker's {old!r} is not in its block")
            code = code.replace(old, new)
        want = None
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if nxt is not None and nxt.group(1) == "text" and not text[m.end():nxt.start()].strip():
            want = nxt.group(2)
        found.append((text[:m.start()].count("\n") + 1, code, want))
    return found


def test_the_parser_finds_blocks_outputs_and_markers():
    page = ('# T\n\n<!-- test: replace "10_000" "10" -->\n```python\nprint(10_000)\n```\n\n'
            '```text\n10000\n```\n\n```bash\nls\n```\n\n```python\nx = 1\n```\n')
    got = examples(page)
    assert [(line, code) for line, code, _ in got] == [(4, "print(10)\n"), (16, "x = 1\n")]
    assert [want for _, _, want in got] == ["10000\n", None]


@pytest.mark.parametrize("page", PAGES)
def test_examples_run_and_print_what_the_page_shows(page, tmp_path):
    with open(os.path.join(ROOT, page), encoding="utf-8") as fh:
        text = fh.read()
    found = examples(text)
    if not found:
        pytest.skip(f"{page} has no Python example")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for m in _ENV.finditer(text):
        env.update(kv.split("=", 1) for kv in m.group(1).split())
    (tmp_path / "blocks.json").write_text(json.dumps([code for _, code, _ in found]))
    subprocess.run([sys.executable, "-c", _RUNNER, "blocks.json", "out.json"], cwd=tmp_path,
                   env=env, check=True, timeout=600)
    results = json.loads((tmp_path / "out.json").read_text())
    checker, flags = doctest.OutputChecker(), doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    for (line, code, want), res in zip(found, results):
        where = f"{page}:{line}"
        assert res["error"] is None, f"the example at {where} fails:\n{code}\n{res['error']}"
        if want is not None and not checker.check_output(want, res["stdout"], flags):
            pytest.fail(f"the example at {where} printed\n{res['stdout']}\nwhere the page "
                        f"shows\n{want}")
    assert len(results) == len(found)


def _readme_table():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "readme_table", os.path.join(ROOT, "benchmarks", "readme_table.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_speed_table_is_generated_from_the_committed_json():
    mod = _readme_table()
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    assert mod.render(text) == text, "run python benchmarks/readme_table.py"


def test_readme_table_generator_replaces_only_its_block(tmp_path):
    mod = _readme_table()
    page = f"# x\nbefore\n{mod.START}\nstale\n{mod.END}\nafter\n"
    got = mod.render(page)
    assert got.startswith("# x\nbefore\n") and got.endswith(f"{mod.END}\nafter\n")
    assert "stale" not in got and "10⁶×16×16" in got
    with pytest.raises(ValueError, match="no <!-- speed-table -->"):
        mod.render("# no block\n")


def test_readme_is_a_front_door():
    # what, how and how fast on the first screens; the rest is in docs/
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    assert len(lines) <= 160, f"README.md has {len(lines)} lines: move detail into docs/"
