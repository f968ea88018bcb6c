"""Output of `loopgrad bench`: the plain table, the Markdown section and the plot.

Everything here reads the record `loopgrad.bench` builds (the same object
`--json` writes), so the three outputs never disagree with the JSON.
"""

import os

COLUMNS = ("shape N×K×M", "dtype", "implementation", "check", "compile", "median",
           "p20–p80", "GFLOP/s", "GB/s", "vs torch")
_RIGHT = {"compile", "median", "p20–p80", "GFLOP/s", "GB/s", "vs torch", "roofline",
          "in rounds"}


def _unit(s):
    return (1e-6, "µs") if s < 1e-3 else (1e-3, "ms") if s < 1 else (1.0, "s")


def _g3(v) -> str:
    # three significant digits, never in exponent form for large values
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def fmt_time(s) -> str:
    if s is None:
        return "—"
    scale, unit = _unit(s)
    return f"{_g3(s / scale)} {unit}"


def _spread(r) -> str:
    if r["median_s"] is None:
        return "—"
    scale, unit = _unit(r["median_s"])
    return f"{_g3(r['p20_s'] / scale)}–{_g3(r['p80_s'] / scale)} {unit}"


def _num(v, suffix="") -> str:
    return "—" if v is None else _g3(v) + suffix


def _check_cell(r) -> str:
    if r["status"] == "skipped":
        return f"skipped: {r['reason']}"
    if r["status"] == "error":
        return f"ERROR: {r['reason']}"
    if r["status"] == "mismatch":
        errs = r["errors"] or {}
        if not errs:
            return f"MISMATCH: {r['reason']}"
        name, e = max(errs.items(), key=lambda kv: kv[1]["err_over_bound"])
        return (f"MISMATCH {name}: max |err| {e['max_abs_err']:.2e} = "
                f"{e['err_over_bound']:.3g}× bound")
    if r["check"] == "ok*" and r["errors"]:
        name, e = max(r["errors"].items(), key=lambda kv: kv[1]["err_over_bound"])
        return f"ok* {name} {_g3(e['err_over_bound'])}×"
    return r["check"]


def columns(record) -> tuple:
    """The table's columns: COLUMNS, "roofline" where the run measured its ceilings, and
    "in rounds" where it measured them in each shape's rounds too."""
    return COLUMNS + (("roofline",) if "ceilings" in record else ()) \
        + (("in rounds",) if _in_rounds(record) else ())


def _in_rounds(record) -> list:
    return (record.get("ceilings") or {}).get("in_rounds") or []


def _share(v) -> str:
    return "—" if v is None else f"{100 * v:.0f} %"


def rows(record) -> list:
    """One list of strings per result, in `columns` order."""
    out = []
    roof, again = "ceilings" in record, bool(_in_rounds(record))
    for r in record["results"]:
        N, K, M = r["shape"]
        speed = r["speedup_vs_torch"]
        out.append([f"{N}×{K}×{M}", r["dtype"], r["impl"], _check_cell(r),
                    ("0" if r["compile_s"] == 0 else fmt_time(r["compile_s"]))
                    if r["median_s"] else "—",
                    fmt_time(r["median_s"]), _spread(r), _num(r["gflops"]), _num(r["gbps"]),
                    _num(speed, "×")] + ([_share(r.get("roofline"))] if roof else [])
                   + ([_share(r.get("roofline_rounds"))] if again else []))
    return out


def isa_forced(record) -> "str | None":
    """ "ISA forced: avx2 (Numba znver3 without AVX-512, OpenBLAS Haswell, ...)" under
    `--isa`, None without it."""
    forced = record["machine"].get("isa_forced")
    if not forced:
        return None
    return f"ISA forced: {forced['isa']} ({forced['how']})"


def _isa_mismatch(record) -> "str | None":
    # OPENBLAS_CORETYPE is honoured only by OpenBLAS builds for several targets (DYNAMIC_ARCH)
    forced = record["machine"].get("isa_forced")
    want = (forced or {}).get("env", {}).get("OPENBLAS_CORETYPE")
    got = [d.get("architecture") for d in record["blas"]["loaded"] or ()
           if d.get("internal_api") == "openblas" and "numpy" in d.get("filepath", "")]
    if want and got and any(str(a).lower() != want.lower() for a in got):
        return (f"warning: OPENBLAS_CORETYPE={want}, but NumPy's OpenBLAS runs "
                f"{', '.join(map(str, got))} kernels")
    return None


def _notes(record, md) -> list:
    code = (lambda s: f"`{s}`") if md else (lambda s: s)
    lines = []
    if isa_forced(record):
        from .isa import CAVEAT

        lines.append(f"{code('--isa ' + record['machine']['isa_forced']['isa'])}: {CAVEAT}")
        mismatch = _isa_mismatch(record)
        if mismatch:
            lines.append(mismatch)
    for s in record["skipped"]:
        lines.append(f"skipped: {code(s['impl'])} ({s['label']}): {s['reason']}")
    if any(r["check"] == "ok*" for r in record["results"]):
        lines.append("ok* X n×: output X is n times beyond loopgrad's accuracy contract "
                     "(reference.error_bounds: long sums carried in float64) but within the "
                     "worst case of summing in the input dtype; every error is in the JSON")
    lines.append("vs torch: torch autograd's median / this median, at the same shape "
                 "(> 1 is faster)")
    if "ceilings" in record:
        lines.append("roofline: the share of the shape's least time reached, max(bytes / "
                     "memory copy, flops / " + ("dgemm" if "dgemm" in record["ceilings"]
                                                  else "sgemm") + ") / median (100 % = at "
                     "the ceilings below)")
    if _in_rounds(record):
        lines.append("in rounds: the same share from ceilings timed in the shape's own rounds "
                     "(after each round's cells one copy and one product, a settle apart, as "
                     "below; their medians against the cell's): on a host whose speed "
                     "drifts, the minutes the cells met")
    kernels = {}
    for r in record["results"]:
        if r.get("kernel") and r["impl"] == "loopgrad":
            kernels.setdefault("×".join(map(str, r["shape"])), r["kernel"])
    if kernels:
        lines.append("loopgrad's kernels: " + "; ".join(f"{k} {v}" for k, v in kernels.items()))
    other = record["machine"]["other_load"]
    if other is not None and other > 0.05:
        lines.append(f"warning: other processes kept {other:.0%} of the "
                     f"{record['machine']['cores']} cores busy during the run: timings are "
                     "noisy")
    return lines


_CEILINGS = (  # key in record["ceilings"], name, figure's key and unit
    ("memory_copy", "memory copy", "gbps", "GB/s"),
    ("sgemm", "sgemm", "gflops", "GFLOP/s"),
    ("dgemm", "dgemm", "gflops", "GFLOP/s"),
)


def _ceiling_how(name, c) -> str:
    if name == "memory_copy":
        return (f"bytes read + written per second copying {c['array_bytes'] / 2**20:g} MiB of "
                f"{c['dtype']}")
    return f"2·n³ / time of a {c['dtype']} n × n product, n = {c['n']}"


def _measurement_how(m) -> str:
    if m.get("reason"):
        return f"not measured: {m['reason']}"
    parts = {"numba-prange": ["@njit(parallel=True)"], "torch": ["this process"]}.get(
        m.get("key"), [])
    if m.get("env") is not None:  # NumPy in a fresh process
        pins = ", ".join(f"{k}={v}" for k, v in m["env"].items() if v is not None)
        parts.append("fresh process" + (f", {pins}" if pins else ""))
    blas = m.get("blas") or {}
    if blas.get("internal_api"):
        parts.append(" ".join(str(v) for v in (blas["internal_api"], blas.get("version"))
                              if v)
                     + (f", {blas['architecture']} kernels" if blas.get("architecture")
                        else ""))
    if m.get("threads"):
        parts.append(f"{m['threads']} thread{'s' if m['threads'] > 1 else ''}")
    return "; ".join(parts)


def ceiling_rows(record) -> list:
    """[(what, figure, how measured, is_ceiling)] for --ceilings, [] without it.

    One row per ceiling (the best of its measurements), then one per measurement.
    """
    ceilings = record.get("ceilings")
    if ceilings is None:
        return []
    out = []
    for name, what, key, unit in _CEILINGS:
        if name not in ceilings:  # dgemm: float64 runs only
            continue
        c = ceilings[name]
        if c is None:
            out.append((what, "—", "not measured (interrupted)", True))
            continue
        how = (f"{_ceiling_how(name, c)}; the best below, each the fastest of {c['repeat']} "
               "after a warm-up" if c[key] is not None else "nothing could be measured")
        out.append((what, _num(c[key], f" {unit}"), how, True))
        for m in c["measurements"]:
            out.append((m["label"], _num(m[key], f" {unit}"), _measurement_how(m), False))
    again = [c for c in _in_rounds(record) if c["gemm_gflops"] and c["copy_gbps"]]
    if not again:
        return out
    for key, what, unit, one in (("gemm_gflops", "gemm", "GFLOP/s", "NumPy product (this process)"),
                                 ("copy_gbps", "copy", "GB/s", "prange copy")):
        lo, hi = min(c[key] for c in again), max(c[key] for c in again)
        out.append((f"{what} in rounds", f"{_g3(lo)}–{_g3(hi)} {unit}",
                    f"per shape the median of one {one} after each of its rounds, over "
                    f"{len(again)} shapes (the JSON's ceilings.in_rounds)", True))
    return out


def _ceilings_block(record) -> list:
    body = ceiling_rows(record)
    if not body:
        return []
    w_what = max(len(r[0]) + (0 if r[3] else 2) for r in body)
    w_fig = max(len(r[1]) for r in body)
    out = ["", "ceilings (--ceilings): the best this machine does, to read GB/s and GFLOP/s "
               "above against"]
    for what, fig, how, top in body:
        what = what if top else "  " + what
        out.append(f"  {what.ljust(w_what)}  {fig.rjust(w_fig)}  {how}".rstrip())
    return out


def table(record) -> str:
    """The plain-text table for the terminal, with skips and notes below it."""
    body, cols = rows(record), columns(record)
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c)
              for i, c in enumerate(cols)]

    def line(cells):
        return "  ".join(c.rjust(w) if cols[i] in _RIGHT else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    s = record["settings"]
    m = record["machine"]
    head = (f"loopgrad bench: f, dx, dW, dy in {s['dtype']}; median of up to {s['repeat']} "
            f"calls (≤ {s['max_time_s']:g} s per cell{_rounds(s)}) after warm-up; "
            f"Numba {record['threads']['numba']} threads\n"
            f"{m['cpu_model']} (LLVM {m.get('llvm_cpu')}, {m.get('isa')}); loopgrad's table "
            f"entry {m.get('table_entry')}{' (forced)' if m.get('table_forced') else ''}")
    forced = isa_forced(record)
    if forced:
        head += "\n" + forced
    out = [head, "", line(cols), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    return "\n".join(out + [""] + _notes(record, md=False) + _ceilings_block(record))


def _rounds(settings) -> str:
    r = settings.get("rounds") or 1
    return (f", in {r} alternating rounds at each shape (warm-up and 1/{r} of the calls and "
            "seconds a round)") if r > 1 else ""


def _blas_line(record) -> str:
    b, env = record["blas"], record["env"]
    parts = []
    if b["numpy_build"]:
        parts.append(f"{b['numpy_build']['name']} {b['numpy_build']['version']}")
    for d in b["loaded"] or ():
        if d.get("user_api") == "blas" and "numpy" in d.get("filepath", ""):
            parts.append(f"{d.get('internal_api')} {d.get('version')}, "
                         f"{d.get('threading_layer')}, {d.get('num_threads')} threads, "
                         f"kernels for {d.get('architecture')}")
    parts.append(f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}, "
                 f"OPENBLAS_L2_SIZE={env['OPENBLAS_L2_SIZE']}")
    return "; ".join(parts)


def markdown(record, plot=None) -> str:
    """A dated Markdown section for benchmarks/RESULTS.md: context, table, notes, plot."""
    m, t, s, v = record["machine"], record["threads"], record["settings"], record["versions"]
    what = "custom shapes" if "--shapes" in record["command"] else f"preset {s['preset']}"
    mem = f", {m['memory_gib']:.0f} GiB" if m["memory_gib"] else ""
    git = f" (git {v['loopgrad_git']})" if v.get("loopgrad_git") else ""
    versions = ", ".join(f"{k} {val}{git if k == 'loopgrad' else ''}" for k, val in v.items()
                         if val and k not in ("loopgrad_git", "tqdm", "threadpoolctl"))
    forced = m.get("isa_forced")
    out = [
        f"## {record['date'][:10]} — `loopgrad bench`, {what}, {s['dtype']}"
        + (f", ISA forced: {forced['isa']}" if forced else ""),
        "",
        f"- Command: `{record['command']}` (run {record['date']})",
        *([f"- {isa_forced(record)}: loopgrad's kernels and the peers run as on a machine "
           f"of that ISA (`--isa {forced['isa']}`)"] if forced else []),
        f"- Machine: {m['cpu_model']} (LLVM `{m.get('llvm_cpu')}`, {m.get('isa')}), "
        f"{m['cores']} cores ({m['usable_cores']} usable){mem}; {m['platform']}",
        f"- loopgrad's kernels: machine-table entry {m.get('table_entry')}"
        f"{' (forced by LOOPGRAD_CPU_ISA)' if m.get('table_forced') else ''}, "
        f"{m.get('vector_bits')}-bit vectors, tiles "
        + ", ".join(f"{k} {v}" for k, v in (m.get("tiles") or {}).items())
        + ("; 512-bit operations as 256-bit halves (last panels in 256-bit tails)"
           if m.get("halves_512") else ""),
        f"- Threads: Numba {t['numba']} ({t['numba_threading_layer']}), torch {t['torch']}, "
        f"NumPy's BLAS {t['blas']}",
        f"- NumPy's BLAS: {_blas_line(record)}",
        f"- Versions: {versions}",
        f"- Checked against: {record['reference']}, relu'(0) = {s['relu_grad_at_zero']}",
        f"- Timing: first call (compile) apart, warm-up, then up to {s['repeat']} calls or "
        f"{s['max_time_s']:g} s per cell{_rounds(s)}; median and 20th–80th percentiles; "
        "GFLOP/s = 6·N·K·M / median, GB/s = bytes of x, W, y read and dx, dW, dy written / "
        "median",
        "",
        "| " + " | ".join(columns(record)) + " |",
        "|" + "|".join("---:" if c in _RIGHT else "---" for c in columns(record)) + "|",
    ]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows(record)]
    out += [""] + [f"- {n}" for n in _notes(record, md=True)]
    labels = {r["impl"]: r["label"] for r in record["results"]}
    out.append("- implementations: " + "; ".join(f"`{k}` {lab}" for k, lab in labels.items()))
    ceilings = ceiling_rows(record)
    if ceilings:
        out += ["", "Ceilings (`--ceilings`): the best this machine does, to read GB/s and "
                    "GFLOP/s above against", "",
                "| what | figure | how measured |", "|---|---:|---|"]
        for what, fig, how, top in ceilings:
            what, fig, how = (c.replace("|", "\\|") for c in (what, fig, how))
            out.append(f"| **{what}** | **{fig}** | {how} |" if top
                       else f"| ↳ {what} | {fig} | {how} |")
    if plot:
        out += ["", f"![time and GFLOP/s against work, per implementation]"
                    f"({os.path.basename(plot)})"]
    return "\n".join(out) + "\n"


def plot(record, path) -> None:
    """Median time and GFLOP/s against work (6·N·K·M), one colour per implementation.

    Square shapes (N = K = M) and the others (skinny: N ≫ K, M) are drawn as
    separate lines, solid and dotted: at equal work they stress different
    things (arithmetic against memory traffic), so one line through both
    would zigzag.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (ax_t, ax_g) = plt.subplots(1, 2, figsize=(13, 5.5), constrained_layout=True)
    impls = list(dict.fromkeys(r["impl"] for r in record["results"]))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, key in enumerate(impls):
        for square, style in ((True, dict(linestyle="-", marker="o")),
                              (False, dict(linestyle=":", marker="s"))):
            pts = sorted((r["flops"], r["median_s"], r["gflops"]) for r in record["results"]
                         if r["impl"] == key and r["median_s"]
                         and (len(set(r["shape"])) == 1) == square)
            if pts:
                fl, med, gf = zip(*pts)
                ax_t.plot(fl, med, color=colours[i % len(colours)], **style)
                ax_g.plot(fl, gf, color=colours[i % len(colours)], **style)
    for ax, ylabel in ((ax_t, "median time per call (s)"), (ax_g, "GFLOP/s (6·N·K·M / median)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("work per call: 6·N·K·M flops")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    # shape labels: square ones along the top, skinny ones along the bottom (they overlap in work)
    for r in {tuple(r["shape"]): r for r in record["results"]}.values():
        top = len(set(r["shape"])) == 1
        ax_g.annotate("×".join(map(str, r["shape"])), (r["flops"], 1.0 if top else 0.0),
                      xycoords=("data", "axes fraction"), rotation=90, fontsize=7, alpha=0.6,
                      xytext=(2, -4 if top else 4), textcoords="offset points",
                      va="top" if top else "bottom")
    handles = [Line2D([], [], color=colours[i % len(colours)], label=key)
               for i, key in enumerate(impls)]
    handles += [Line2D([], [], color="grey", linestyle="-", marker="o", label="square N=K=M"),
                Line2D([], [], color="grey", linestyle=":", marker="s", label="skinny")]
    ax_t.legend(handles=handles, fontsize=8)
    forced = isa_forced(record)
    fig.suptitle(f"loopgrad bench, f + dx, dW, dy, {record['settings']['dtype']}, "
                 f"{record['machine']['cpu_model']} ({record['machine']['cores']} cores), "
                 f"{record['date'][:10]}" + (f"\n{forced}" if forced else ""))
    fig.savefig(path, dpi=120)
    plt.close(fig)
