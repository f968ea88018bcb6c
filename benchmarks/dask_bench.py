"""loopgrad.dask on a LocalCluster at N = 10⁸, against one process's loopgrad.grads at N = 10⁷.

    pip install -e ".[dask]"
    python benchmarks/dask_bench.py                      # N = 10⁸, 2 workers × 1 thread
    python benchmarks/dask_bench.py --n 20000000 --markdown

x (N,K), y (N,M) float32 standard normal, generated chunk by chunk on the
workers with dask.array.random (never whole in one process); W (K,M) in
memory.  Steps:

1. check: at N = 10⁶ on the same cluster, the Dask result against in-memory
   loopgrad.grads on the same numbers (dx, dy bitwise; f, dW to summation
   order); this also warms the workers (Numba's cache, imports).
2. generate only: the same chunks, each reduced to its first row: what
   producing the data costs without loopgrad.
3. grads: f, dW, dx and dy in one `dask.compute` (dx, dy cut to their
   first row per chunk, so that no N-row result is gathered): every chunk
   generated once, one kernel call per chunk.
4. one process: loopgrad.grads on N = 10⁷ in memory, in a child process
   (its own peak memory), Numba with all cores and with one.

The compute seconds of each task group in the last run of 2 and 3 (from
Dask's task stream, both workers summed) say where the time goes.

Times are medians of --repeat runs; peak memory per worker is VmHWM from
/proc/self/status, reset (clear_refs) before the timed runs.  Prints one
JSON object, or with --markdown a dated section for benchmarks/RESULTS.md.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from loopgrad.info import cpu_model
from memory import _kib  # benchmarks/memory.py, beside this script

GIB = 2**30
MIB = 2**20


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # VmHWM := the current resident size
    return _kib("VmRSS")


def _peak_kib():
    return _kib("VmHWM")


def _rows(n):
    # 100000000 -> 10⁸; anything else with thousands separators
    e = len(str(n)) - 1
    if n != 10**e:
        return f"{n:,}"
    return "10" + str(e).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def single_process(n, k, m, repeat):
    """loopgrad.grads on n rows in this process: median time and the peak memory the call adds."""
    import numba

    import loopgrad

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    x = rng.standard_normal((n, k), dtype=np.float32)
    y = rng.standard_normal((n, m), dtype=np.float32)
    generate_s = time.perf_counter() - t0
    W = rng.standard_normal((k, m), dtype=np.float32)
    loopgrad.grads(x[:1000], W, y[:1000])  # compile / load the cached kernels
    out = {"n": n, "generate_s": generate_s, "inputs_mib": (x.nbytes + y.nbytes) / MIB}
    for threads in (numba.get_num_threads(), 1):
        numba.set_num_threads(threads)
        loopgrad.grads(x, W, y)  # warm-up: the parallel region's threads, the page cache
        base = _reset_peak()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            g = loopgrad.grads(x, W, y)
            times.append(time.perf_counter() - t)
            del g
        out[f"threads_{threads}"] = {"median_s": statistics.median(times), "times_s": times,
                                     "rss_before_mib": base / 1024, "peak_mib": _peak_kib() / 1024}
    out["numba_threads"] = max(int(k.split("_")[1]) for k in out if k.startswith("threads_"))
    return out


def _data(n, k, m, rows, seed, layout="separate"):
    """x, W, y; x and y from two random arrays ("separate"), or the columns of one ("together")."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    W = np.random.default_rng(seed + 1).standard_normal((k, m), dtype=np.float32)
    if layout == "together":  # each chunk's x and y rows made by one task, on one worker
        z = rng.standard_normal(size=(n, k + m), chunks=(rows, k + m), dtype=np.float32)
        return z[:, :k], W, z[:, k:]
    x = rng.standard_normal(size=(n, k), chunks=(rows, k), dtype=np.float32)
    y = rng.standard_normal(size=(n, m), chunks=(rows, m), dtype=np.float32)
    return x, W, y


def check(client, k, m, seed):
    """The Dask result against in-memory loopgrad.grads on the same numbers; raises on a mismatch."""
    import dask

    import loopgrad
    import loopgrad.dask

    x, W, y = _data(10**6, k, m, 200_000, seed)
    got = dask.compute(*loopgrad.dask.grads(x, W, y))
    xs, ys = dask.compute(x, y)
    want = loopgrad.grads(xs, W, ys)
    # dx, dy are row-local: the same bits; f and dW are the same float64 sums
    # in another order (dW also rounded to float32 per chunk): a few float32 ulps
    errs = {"f_rel": abs(got[0] - want.f) / want.f,
            "dW_max_abs_over_max": float(np.max(np.abs(got[2] - want.dW)) / np.max(np.abs(want.dW)))}
    ok = (np.array_equal(got[1], want.dx) and np.array_equal(got[3], want.dy)
          and errs["f_rel"] <= 1e-12 and errs["dW_max_abs_over_max"] <= 8 * np.finfo(np.float32).eps)
    if not ok:
        raise SystemExit(f"MISMATCH between loopgrad.dask and loopgrad.grads: {errs}")
    return errs


def _task_seconds(stream):
    # seconds per task group (key name without its token) and action (compute; transfer:
    # fetching its inputs from the other worker), both workers summed; 10 ms and more
    total = {}
    for t in stream:
        name = t["key"][0] if isinstance(t["key"], tuple) else t["key"]
        group = name.rsplit("-", 1)[0] if "-" in name else name
        for s in t["startstops"]:
            label = group if s["action"] == "compute" else f"{group} {s['action']}"
            total[label] = total.get(label, 0.0) + s["stop"] - s["start"]
    return {k: v for k, v in sorted(total.items(), key=lambda kv: -kv[1]) if v >= 0.01}


def _timed(client, a, layout):
    import dask
    import distributed

    import loopgrad.dask

    out = {}
    x, W, y = _data(a.n, a.k, a.m, a.rows, a.seed, layout)
    # 2. the data alone: each chunk generated, then cut to its first row
    gen_only = [x[::a.rows], y[::a.rows]]
    # 3. the whole thing; dx and dy computed in full on the workers, one row per chunk gathered
    g = loopgrad.dask.grads(x, W, y)
    full = [g.f, g.dW, g.dx[::a.rows], g.dy[::a.rows]]
    out["worker_rss_before_mib"] = sorted(v / 1024 for v in client.run(_reset_peak).values())
    times = {"generate": [], "grads": []}
    for i in range(a.repeat):
        for label, work in (("generate", gen_only), ("grads", full)):
            with distributed.get_task_stream(client) as stream:
                t = time.perf_counter()
                res = dask.compute(*work)
                times[label].append(time.perf_counter() - t)
            if i == a.repeat - 1:
                out[f"task_seconds_{label}"] = _task_seconds(stream.data)
    out["worker_peak_mib"] = sorted(v / 1024 for v in client.run(_peak_kib).values())
    out["f"] = float(res[0])
    out["dW"] = np.asarray(res[1]).tolist()
    out["times_s"] = times
    out["median_s"] = {k: statistics.median(v) for k, v in times.items()}
    out["chunks"] = len(x.chunks[0])
    return out


def cluster_run(a):
    import distributed

    import loopgrad.dask
    from loopgrad.bench.engine import _BusyMeter  # other processes' share of the cores, from /proc/stat

    out = {}
    with distributed.LocalCluster(n_workers=a.workers, threads_per_worker=a.threads_per_worker,
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        t = time.perf_counter()
        out["check"] = check(client, a.k, a.m, a.seed)
        out["check_s"] = time.perf_counter() - t
        per_task = client.run(loopgrad.dask.numba_threads_per_task)
        out["numba_threads_per_task"] = sorted(per_task.values())
        meter = _BusyMeter()
        for layout in a.layouts.split(","):
            out[layout] = _timed(client, a, layout)
        out["other_load"] = meter.other()
    return out


_LAYOUT = {
    "separate": "x and y two random arrays (a chunk's x and y may be made on different workers)",
    "together": "x and y the column slices of one random array (made by one task; Dask's "
                "getitem copies each slice out of its chunk)",
}


def markdown(r):
    a, c, s = r["settings"], r["cluster"], r["single"]
    rows, n = a["n"], _rows(a["n"])
    layouts = a["layouts"].split(",")
    first = c[layouts[0]]
    lines = [
        f"## {r['date'][:10]} — loopgrad.dask: N = {n} on a {a['workers']}-worker LocalCluster "
        f"({r['machine']['cores']}-core {r['machine']['cpu']})",
        "",
        f"x ({n}×{a['k']}), y ({n}×{a['m']}) float32 standard normal from `dask.array.random`, "
        f"{first['chunks']} row chunks of {a['rows']:,} rows, generated on the workers and never "
        f"gathered; W {a['k']}×{a['m']} in memory. LocalCluster: {a['workers']} worker processes × "
        f"{a['threads_per_worker']} thread, Numba threads per task {c['numba_threads_per_task']} "
        f"(the default: worker threads × Numba threads ≤ cores). Medians of {a['repeat']} runs; "
        f"peak memory is each worker process's VmHWM over the timed runs (resident size before "
        f"them in brackets).",
        "",
        "| run | rows | median | rows/s | peak memory per worker |",
        "|---|---|---|---|---|",
    ]
    for layout in layouts:
        lc = c[layout]
        med = lc["median_s"]
        peaks = " and ".join(f"{p:.0f}" for p in lc["worker_peak_mib"])
        before = " and ".join(f"{p:.0f}" for p in lc["worker_rss_before_mib"])
        lines += [
            f"| Dask, {layout}: generate x, y only (each chunk cut to one row) | {n} | "
            f"{med['generate']:.2f} s | {rows / med['generate']:.3g} | |",
            f"| Dask, {layout}: generate + `loopgrad.dask.grads` (f, dW, dx, dy in one pass; "
            f"one row per chunk of dx, dy gathered) | {n} | {med['grads']:.2f} s | "
            f"{rows / med['grads']:.3g} | {peaks} MiB ({before}) |",
            f"| Dask, {layout}: difference, loopgrad's share | {n} | "
            f"{med['grads'] - med['generate']:.2f} s | "
            f"{rows / max(med['grads'] - med['generate'], 1e-9):.3g} | |",
        ]
    for t in sorted({s["numba_threads"], 1}, reverse=True):
        one = s[f"threads_{t}"]
        lines.append(
            f"| one process: `loopgrad.grads` in memory, {t} Numba thread{'s' * (t > 1)} | "
            f"{_rows(s['n'])} | {one['median_s'] * 1e3:.1f} ms | {s['n'] / one['median_s']:.3g} | "
            f"{one['peak_mib']:.0f} MiB ({one['rss_before_mib']:.0f}) |")
    lines += [
        f"| one process: NumPy generating x, y (one thread) | {_rows(s['n'])} | "
        f"{s['generate_s']:.2f} s | {s['n'] / s['generate_s']:.3g} | |",
        "",
        "Layouts: " + "; ".join(f"{k}: {_LAYOUT[k]}" for k in layouts) + ".",
        "",
        "Seconds per task group in the last grads run (both workers summed; 'transfer': "
        "fetching inputs from the other worker): "
        + "; ".join(f"{layout}: " + ", ".join(f"{k} {v:.2f} s" for k, v in
                                               c[layout]["task_seconds_grads"].items())
                    for layout in layouts) + ".",
        "",
        f"Check first (N = 10⁶, same cluster): dx, dy bitwise equal to in-memory `loopgrad.grads`, "
        f"f relative difference {c['check']['f_rel']:.1e}, dW max difference "
        f"{c['check']['dW_max_abs_over_max']:.1e} of max |dW|. f = {first['f']:.6e} at N = {n}. "
        f"Other processes used {c['other_load'] * 100:.0f}% of the cores during the timed runs "
        f"(the machine is shared with other engineers' jobs).",
        "",
        f"Command: `{r['command']}`; {r['date']}; Python {r['versions']['python']}, "
        f"numba {r['versions']['numba']}, dask {r['versions']['dask']}, distributed "
        f"{r['versions']['distributed']}, NumPy {r['versions']['numpy']}.",
    ]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10**8, help="rows on the cluster")
    ap.add_argument("--single-n", type=int, default=10**7, help="rows in one process")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows per chunk")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layouts", default="separate,together",
                    help="separate: x and y from two random arrays; together: the columns of one")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--single-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.single_only:
        print(json.dumps(single_process(a.single_n, a.k, a.m, a.repeat)))
        return
    import dask
    import distributed
    import numba

    # the single-process figure first, in a child: its own memory, no cluster beside it
    child = subprocess.run([sys.executable, __file__, "--single-only", "--single-n",
                            str(a.single_n), "--k", str(a.k), "--m", str(a.m),
                            "--repeat", str(max(a.repeat, 5))],
                           capture_output=True, text=True, check=True)
    single = json.loads(child.stdout)
    cluster = cluster_run(a)
    r = {"command": " ".join(["python", "benchmarks/dask_bench.py", *(argv or sys.argv[1:])]),
         "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
         "settings": vars(a),
         "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                     "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                                         * os.sysconf("SC_PHYS_PAGES") / GIB, 1)},
         "versions": {"python": platform.python_version(), "numba": numba.__version__,
                      "dask": dask.__version__, "distributed": distributed.__version__,
                      "numpy": np.__version__},
         "single": single, "cluster": cluster}
    print(markdown(r) if a.markdown else json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
