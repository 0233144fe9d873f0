#!/usr/bin/env python3
"""Plot or tabulate attnkit benchmark results (Google Benchmark JSON).

    bench_attention --benchmark_out=attention.json --benchmark_out_format=json [...]
    python3 bench/plot.py attention.json                 # PNGs next to the JSON
    python3 bench/plot.py attention.json --out-dir plots # PNGs in plots/
    python3 bench/plot.py attention.json --table         # markdown tables on stdout

Benchmark names are parsed as BM_<kernel>/<variant>/.../<key>:<value>/... (e.g.
BM_flash_causal/N:1024/d:64/threads:2/real_time, BM_decode/bf16/bshd/Sq:1/L:4096/threads:1):
the kernel is the first component without "BM_" plus any variant components ("decode/bf16/bshd"),
every key:value component is a parameter, real_time / process_time / manual_time are ignored.
Benchmarks sharing the same x parameter (N, else Sk) and the same other parameter names form a
suite; each suite gets one PNG per metric (GFLOP/s, ceiling, GB/s, bw_ceiling), one panel per
combination of the other parameters (rows: first key, e.g. d; columns: second, e.g. threads) and
one line per kernel.

Block-sparse runs (bench_serving's BM_block_sparse/N:/density:/threads: with BM_flash/dense of the
same N and threads) also get <stem>_block_sparse_density.png: time relative to dense flash against
the visited fraction of blocks (ideal: the diagonal), with causal flash and the causal
block layout as reference points.

With repetitions (--benchmark_repetitions=R) the median is used: the "median" aggregate when the
JSON has it, else the median of the repetitions. The SGEMM and read-bandwidth ceilings come from
BM_sgemm_ceiling / BM_read_bandwidth (their "ceiling_GFLOP/s" / "bw_ceiling_GB/s" counters: the
best of several runs measured in the same process).

Plotting needs matplotlib (Debian: apt-get install python3-matplotlib, then run with
/usr/bin/python3); --table needs only the standard library.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

X_KEYS = ("N", "Sk", "S", "L")  # first one present is the x axis
METRICS = {  # counter -> (axis label, file slug)
    "GFLOP/s": ("GFLOP/s", "gflops"),
    "ceiling": ("fraction of SGEMM ceiling", "ceiling"),
    "GB/s": ("GB/s (K + V read)", "gbs"),
    "bw_ceiling": ("fraction of read-bandwidth ceiling", "bw_ceiling"),
}
CEILING_OF = {"GFLOP/s": "ceiling_GFLOP/s", "GB/s": "bw_ceiling_GB/s"}  # dashed reference line
TIME_SCALE = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}  # -> milliseconds
PARAM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(-?\d+(?:\.\d+)?)$")


TIMING_PARTS = ("real_time", "process_time", "manual_time")


def parse_name(run_name: str):
    """BM_decode/bf16/bshd/Sq:1/L:4096/threads:1/real_time -> ("decode/bf16/bshd", {Sq, L, threads})."""
    parts = run_name.split("/")
    kernel = [parts[0][3:] if parts[0].startswith("BM_") else parts[0]]
    params = {}
    for p in parts[1:]:
        m = PARAM_RE.match(p)
        if m:
            v = m.group(2)
            params[m.group(1)] = float(v) if "." in v else int(v)
        elif p not in TIMING_PARTS and ":" not in p:
            kernel.append(p)  # a variant (dtype, layout, ...): part of the line's name
    return "/".join(kernel), params


def load(path: str):
    """One record per benchmark run_name: kernel, params, median metrics, repetitions."""
    with open(path) as f:
        data = json.load(f)
    iters, medians, labels = defaultdict(list), {}, {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            print(f"warning: {b['name']}: {b.get('error_message', 'error')}", file=sys.stderr)
            continue
        rn = b.get("run_name", b["name"])
        if b.get("label"):
            labels[rn] = b["label"]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[rn] = b
        else:
            iters[rn].append(b)
    records = []
    for rn in list(dict.fromkeys(list(iters) + list(medians))):
        runs = iters.get(rn, [])
        src = [medians[rn]] if rn in medians else runs
        if not src:
            continue
        kernel, params = parse_name(rn)
        rec = {"run_name": rn, "kernel": kernel, "params": params, "label": labels.get(rn, ""),
               "reps": max(len(runs), int(src[0].get("repetitions", 1)))}
        keys = set(METRICS) | set(CEILING_OF.values()) | {"real_time", "density"}
        for k in keys:
            vals = [r[k] for r in src if isinstance(r.get(k), (int, float))]
            if vals:
                v = statistics.median(vals)
                if k == "real_time":
                    v *= TIME_SCALE.get(src[0].get("time_unit", "ns"), 1e-6)
                    k = "ms"
                rec[k] = v
        records.append(rec)
    return data.get("context", {}), records


def ceilings(context, records):
    """{'sgemm': {threads: GFLOP/s}, 'read': {threads: GB/s}, 'backend': str}."""
    out = {"sgemm": {}, "read": {}, "backend": context.get("sgemm_backend", "")}
    for r in records:
        t = r["params"].get("threads")
        if r["kernel"] == "sgemm_ceiling" and "ceiling_GFLOP/s" in r:
            out["sgemm"][t] = r["ceiling_GFLOP/s"]
            out["backend"] = out["backend"] or r["label"]
        elif r["kernel"] == "read_bandwidth" and "bw_ceiling_GB/s" in r:
            out["read"][t] = r["bw_ceiling_GB/s"]
    # Kernels carry the ceiling too, in case the ceiling benchmarks were filtered out.
    for r in records:
        t = r["params"].get("threads")
        if "ceiling_GFLOP/s" in r:
            out["sgemm"].setdefault(t, r["ceiling_GFLOP/s"])
        if "bw_ceiling_GB/s" in r:
            out["read"].setdefault(t, r["bw_ceiling_GB/s"])
    return out


def suites(records):
    """{(x_key, other_keys): [records]} for every record with an x parameter."""
    out = defaultdict(list)
    for r in records:
        if r["kernel"] in ("sgemm_ceiling", "read_bandwidth"):
            continue
        x = next((k for k in X_KEYS if k in r["params"]), None)
        if x is None:
            continue
        others = tuple(k for k in r["params"] if k != x)
        out[(x, others)].append(r)
    return out


def fmt(v, digits=3):
    if v is None:
        return ""
    if isinstance(v, int):
        return str(v)
    if v == 0 or abs(v) >= 100:
        return f"{v:.0f}" if abs(v) >= 100 else "0"
    return f"{v:.{max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))}f}"


def print_tables(context, records):
    c = ceilings(context, records)
    lines = []
    if c["sgemm"]:
        per = ", ".join(f"{t} thread{'s' if t != 1 else ''}: {g:.1f} GFLOP/s" for t, g in sorted(c["sgemm"].items(), key=lambda kv: kv[0] or 0))
        lines.append(f"SGEMM ceiling ({c['backend'] or 'unknown backend'}, same run, best of several): {per}  ")
    if c["read"]:
        per = ", ".join(f"{t} thread{'s' if t != 1 else ''}: {g:.1f} GB/s" for t, g in sorted(c["read"].items(), key=lambda kv: kv[0] or 0))
        lines.append(f"Read-bandwidth ceiling (same run): {per}  ")
    reps = sorted({r["reps"] for r in records})
    if reps:
        lines.append(f"Values are medians over {'/'.join(map(str, reps))} repetition(s).")
    print("\n".join(lines))
    for (x, others), recs in suites(records).items():
        metrics = [m for m in METRICS if any(m in r for r in recs)]
        cols = ["kernel", x, *others, "ms", *metrics]
        print()
        print("| " + " | ".join(cols) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
        order = sorted(recs, key=lambda r: (*[r["params"].get(k, 0) for k in others], r["params"][x], r["kernel"]))
        for r in order:
            row = [r["kernel"], fmt(r["params"][x]), *[fmt(r["params"].get(k)) for k in others], fmt(r.get("ms"))]
            row += [fmt(r.get(m)) for m in metrics]
            print("| " + " | ".join(row) + " |")


def plot(context, records, out_dir: Path, stem: str):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py: matplotlib is missing (Debian: apt-get install python3-matplotlib, then run with "
                 "/usr/bin/python3), or use --table")
    out_dir.mkdir(parents=True, exist_ok=True)
    c = ceilings(context, records)
    written = []
    for (x, others), recs in suites(records).items():
        if len({r["params"][x] for r in recs}) < 2:
            continue  # a single x value is no line (e.g. bench_serving's block-sparse runs: see plot_sparse)
        panel_vals = [sorted({r["params"].get(k) for r in recs}) for k in others]
        if len(others) >= 2:
            rows_v, cols_v = panel_vals[0], panel_vals[1]
            rest = others[2:]
        elif len(others) == 1:
            rows_v, cols_v, rest = [None], panel_vals[0], ()
        else:
            rows_v, cols_v, rest = [None], [None], ()
        # One line per kernel (and per value of any parameter beyond the two panel keys).
        def line_of(r):
            return r["kernel"] + "".join(f" {k}={r['params'].get(k)}" for k in rest)

        lines = sorted({line_of(r) for r in recs})
        colors = {k: plt.cm.tab10(i % 10) for i, k in enumerate(lines)}
        for metric, (ylabel, slug) in METRICS.items():
            if not any(metric in r for r in recs):
                continue
            fig, axes = plt.subplots(len(rows_v), len(cols_v), figsize=(max(4.6 * len(cols_v), 8.0), 3.6 * len(rows_v) + 0.4),
                                     squeeze=False, sharex=True, sharey=True)
            for i, rv in enumerate(rows_v):
                for j, cv in enumerate(cols_v):
                    ax = axes[i][j]
                    keys = others[:2]
                    vals = [rv, cv] if len(keys) == 2 else [cv]
                    sel = dict(zip(keys, vals))
                    for ln in lines:
                        pts = sorted((r["params"][x], r[metric]) for r in recs
                                     if line_of(r) == ln and metric in r
                                     and all(r["params"].get(k) == v for k, v in sel.items()))
                        if pts:
                            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=colors[ln], label=ln)
                    t = sel.get("threads")
                    if metric in CEILING_OF:
                        ref = (c["sgemm"] if metric == "GFLOP/s" else c["read"]).get(t)
                        if ref:
                            name = f"SGEMM {c['backend']}".strip() if metric == "GFLOP/s" else "DRAM read"
                            ax.axhline(ref, color="gray", ls="--", lw=1, label=f"{name} ceiling ({ref:.0f})")
                    elif metric in ("ceiling", "bw_ceiling"):
                        ax.axhline(1.0, color="gray", ls="--", lw=1)
                    ax.set_xscale("log", base=2)
                    xs = sorted({r["params"][x] for r in recs})
                    ax.set_xticks(xs)
                    ax.set_xticklabels([str(v) for v in xs])
                    ax.set_ylim(bottom=0)
                    ax.grid(True, alpha=0.3)
                    ax.set_title(", ".join(f"{k}={v}" for k, v in sel.items()) or stem, fontsize=10)
                    if i == len(rows_v) - 1:
                        ax.set_xlabel(x)
                    if j == 0:
                        ax.set_ylabel(ylabel)
            handles, labels = {}, []
            for ax in axes.flat:
                for h, l in zip(*ax.get_legend_handles_labels()):
                    key = l.split(" (")[0] if "ceiling" in l else l
                    if key not in handles:
                        handles[key] = (h, l)
            height = fig.get_figheight()  # inches; title and legend get a fixed band on top
            fig.legend([h for h, _ in handles.values()], [l.split(" (")[0] for _, l in handles.values()],
                       loc="upper center", bbox_to_anchor=(0.5, 1 - 0.3 / height), ncol=min(6 if len(cols_v) > 1 else 3, len(handles)),
                       fontsize=9, frameon=False)
            suite = f"{stem}: {ylabel} vs {x}"
            if c["sgemm"] and metric in ("GFLOP/s", "ceiling"):
                suite += "  (SGEMM ceiling " + ", ".join(f"{t}T {g:.0f}" for t, g in sorted(c["sgemm"].items(), key=lambda kv: kv[0] or 0)) + " GFLOP/s)"
            fig.suptitle(suite, y=1 - 0.08 / height, fontsize=10, va="top")
            fig.tight_layout(rect=(0, 0, 1, 1 - 0.65 / height))
            path = out_dir / f"{stem}_{x}_{slug}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    sp = plot_sparse(records, out_dir, stem, plt)
    if sp:
        written.append(sp)
    for p in written:
        print(p)
    if not written:
        print("plot.py: nothing to plot (no benchmark with an N or Sk parameter)", file=sys.stderr)


def plot_sparse(records, out_dir: Path, stem: str, plt):
    """Block-sparse time / dense flash time vs visited density, one line per (N, threads)."""
    dense = {(r["params"].get("N"), r["params"].get("threads")): r["ms"] for r in records
             if r["kernel"] == "flash/dense" and "ms" in r}
    groups = defaultdict(list)
    for r in records:
        key = (r["params"].get("N"), r["params"].get("threads"))
        if r["kernel"] == "block_sparse" and key in dense and "ms" in r:
            groups[key].append((r.get("density", r["params"].get("density")), r["ms"] / dense[key]))
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for i, (key, pts) in enumerate(sorted(groups.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=plt.cm.tab10(i % 10),
                label=f"block_sparse N={key[0]} threads={key[1]}")
        for kern, marker in (("flash/causal", "s"), ("flash/causal_layout", "^")):
            c = [r for r in records if r["kernel"] == kern and (r["params"].get("N"), r["params"].get("threads")) == key]
            if c and "ms" in c[0]:
                n = key[0] // 64 if key[0] else 0  # causal visits (n + 1) / (2 n) of the 64 x 64 blocks
                dens = (n + 1) / (2 * n) if n else 0.5
                ax.plot([dens], [c[0]["ms"] / dense[key]], marker, color=plt.cm.tab10(i % 10), mfc="none", ms=8,
                        label=f"{kern} N={key[0]} threads={key[1]}")
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="ideal (time = density x dense)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, None)
    ax.set_xlabel("density (visited fraction of 64 x 64 blocks)")
    ax.set_ylabel("time / dense flash time (same run)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"{stem}: block-sparse speed vs density", fontsize=10)
    fig.tight_layout()
    path = out_dir / f"{stem}_block_sparse_density.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", help="Google Benchmark JSON (--benchmark_out=FILE --benchmark_out_format=json)")
    ap.add_argument("--table", action="store_true", help="print markdown tables instead of plotting")
    ap.add_argument("--out-dir", default=None, help="where the PNGs go (default: next to the JSON)")
    ap.add_argument("--prefix", default=None, help="PNG file name prefix (default: the JSON's stem)")
    a = ap.parse_args()
    context, records = load(a.json)
    if a.table:
        print_tables(context, records)
    else:
        src = Path(a.json)
        plot(context, records, Path(a.out_dir) if a.out_dir else src.parent, a.prefix or src.stem)


if __name__ == "__main__":
    main()
