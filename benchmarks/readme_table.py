"""The README's speed table, generated from committed `loopgrad bench` JSON files.

    python benchmarks/readme_table.py            # rewrite the table in README.md
    python benchmarks/readme_table.py --check    # exit 1 if README.md's table is not this

The table sits between the README's `<!-- speed-table -->` and `<!-- /speed-table -->`
lines; nothing else in the README is touched.  A column per file in SOURCES, a row
per shape in SHAPES: loopgrad's median and, in brackets, the fastest peer's median ÷
loopgrad's (above 1: loopgrad is faster), both from the same run.  Refresh a file
with the command its record holds, then rerun this.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
# (file, one-line label of the machine): the runs the README shows
SOURCES = ["benchmarks/results-rocketlake-full49.json", "benchmarks/results-rocketlake-avx2-full49.json",
           "benchmarks/results-znver5-full64.json", "benchmarks/results-znver5-avx2-full64.json"]
SHAPES = [(1000000, 4, 4), (1000000, 8, 8), (1000000, 16, 16), (100000, 64, 64), (100000, 256, 256),
          (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048)]
PEERS = ("numpy", "torch", "torch-hand", "torch-compile", "jax", "jax-jit")
START, END = "<!-- speed-table -->", "<!-- /speed-table -->"


def _label(record) -> str:
    m = record["machine"]
    cpu = m.get("cpu_model", "?").replace("(R)", "").replace(" Processor", "")
    forced = m.get("isa_forced")
    isa = (f"run as {forced['isa'].upper()}: {', '.join(forced['how'].split(', ')[:3])}"
           if forced else f"{m.get('isa', '?').upper().replace('AVX512', 'AVX-512')}, "
                          f"LLVM `{m.get('llvm_cpu', '?')}`")
    return f"{cpu}, {isa}; {m.get('cores', '?')} cores, {record['date'][:10]}"


def _time(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s >= 1e-3 else f"{s * 1e6:.3g} µs"


def _cell(record, shape) -> str:
    rows = [r for r in record["results"] if tuple(r["shape"]) == shape
            and r["dtype"] == "float32" and r["status"] == "timed" and r.get("check") == "ok"]
    ours = [r["median_s"] for r in rows if r["impl"] == "loopgrad"]
    peers = [r["median_s"] for r in rows if r["impl"] in PEERS]
    if not ours or not peers:
        return "—"
    return f"{_time(ours[0])} ({min(peers) / ours[0]:.2f}×)"


def table(root: str = ROOT) -> str:
    records = []
    for path in SOURCES:
        with open(os.path.join(root, path)) as fh:
            records.append(json.load(fh))
    head = ["N×K×M, float32"] + [f"{chr(65 + i)}" for i in range(len(records))]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * len(records)]
    for shape in SHAPES:
        name = "×".join(_dim(v) for v in shape)
        lines.append("| " + " | ".join([name] + [_cell(r, shape) for r in records]) + " |")
    lines.append("")
    for i, (path, rec) in enumerate(zip(SOURCES, records)):
        lines.append(f"{chr(65 + i)}: {_label(rec)} (`{path}`)  ")
    lines[-1] = lines[-1].rstrip()
    return "\n".join(lines)


def _dim(v: int) -> str:
    # 1000000 → 10⁶ (powers of ten from 1000 on), else the number
    digits = str(v)
    if v < 1000 or digits.strip("0") != "1":
        return digits
    return "10" + "".join("⁰¹²³⁴⁵⁶⁷⁸⁹"[int(c)] for c in str(len(digits) - 1))


def render(text: str, root: str = ROOT) -> str:
    """text (a README) with its table block replaced by `table()`."""
    if START not in text or END not in text:
        raise ValueError(f"README.md has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table(root)}\n{END}{tail}"


def main(argv) -> int:
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("README.md's speed table is not what benchmarks/readme_table.py generates: "
                  "run it", file=sys.stderr)
            return 1
        return 0
    with open(README, "w", encoding="utf-8") as fh:
        fh.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
