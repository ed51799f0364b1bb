#!/usr/bin/env python3
"""Draws what a registry measured, as SVG or PNG (by the output's extension).

    tools/plot.py progress PROGRESS.csv [-o progress.svg]
    tools/plot.py hops RESULT.json [-o hops.svg]
    tools/plot.py latency RESULT.json [-o latency.svg]
    tools/plot.py load RESULT.json [-o load.svg]
    tools/plot.py all PROGRESS.csv RESULT.json -d DIR [--name SUFFIX]

progress (overlay registry --csv): packets received per second, packets received and relayed
so far, and (when the CSV has them) the end-to-end latency p50/p99 of the packets delivered
since the previous row, over time, one line per run.

hops (overlay registry --json): the share of packets by hops from source to sink (1 = straight
to a table entry), measured, next to the exact expectation of the position fingers for the
run's N and NR with uniform sinks: a packet to a node d places ahead takes
floor(d / 2^(NR-1)) + popcount(d mod 2^(NR-1)) hops, and d is uniform over 1..N-1.

latency: the end-to-end latency CDF of every run in the result (its quantiles, from the sinks'
HDR histograms), log time axis.

load: packets each node relayed in the last run, in ring order, against the mean, with Jain's
fairness index (1 = every node relays the same).

all: the four pictures into DIR, named progress-SUFFIX.svg, hops-SUFFIX.svg, ...

matplotlib is needed; on first use, if it cannot be imported, the script creates a virtual
environment under ~/.cache/overlay/plot-venv (or $XDG_CACHE_HOME), installs matplotlib there
with pip, and runs itself again with it. Set OVERLAY_PLOT_NO_INSTALL=1 to refuse instead.
"""

import argparse
import csv
import json
import os
import sys

from plotenv import ensure_matplotlib

CSV_COLUMNS = [
    "run",
    "elapsed_s",
    "packets_sent",
    "packets_received",
    "packets_relayed",
    "rate_pps",
    "latency_p50_us",
    "latency_p99_us",
]


def read_csv(path):
    runs = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS[:6] if c not in (reader.fieldnames or [])]
        if missing:
            sys.exit(f"plot.py: {path} is not a progress CSV (no {', '.join(missing)})")
        for row in reader:
            runs.setdefault(int(row["run"]), []).append(
                {
                    "t": float(row["elapsed_s"]),
                    "received": int(row["packets_received"]),
                    "relayed": int(row["packets_relayed"]),
                    "rate": float(row["rate_pps"]),
                    # Older CSVs have no latency columns.
                    "p50": float(row.get("latency_p50_us") or 0),
                    "p99": float(row.get("latency_p99_us") or 0),
                }
            )
    if not runs:
        sys.exit(f"plot.py: {path} has no rows")
    return runs


def read_result(path):
    with open(path) as f:
        result = json.load(f)
    if "verdict" not in result:
        sys.exit(f"plot.py: {path} is not a result file (overlay registry --json)")
    return result


def runs_of(result):
    """The runs of a result file (or the result itself, for one run printed alone)."""
    return result.get("runs") or [result]


def transmissions(distance, nr):
    largest = 1 << (nr - 1)
    return distance // largest + bin(distance % largest).count("1")


def expected_hops(nodes, nr):
    """Share of packets by hops (index 0 = 1 hop) for uniform sinks, position fingers."""
    counts = {}
    for distance in range(1, nodes):
        hops = transmissions(distance, nr)
        counts[hops] = counts.get(hops, 0) + 1
    top = max(counts)
    return [counts.get(h, 0) / (nodes - 1) for h in range(1, top + 1)]


def plot_progress(plt, runs, output):
    latency = any(r["p50"] > 0 for rows in runs.values() for r in rows)
    panels = 3 if latency else 2
    fig, axes = plt.subplots(panels, 1, figsize=(8, 3 * panels), constrained_layout=True)
    rate_ax, count_ax = axes[0], axes[1]
    for run, rows in sorted(runs.items()):
        t = [0.0] + [r["t"] for r in rows]
        rate_ax.step(t, [rows[0]["rate"]] + [r["rate"] for r in rows], where="pre", label=f"run {run}")
        count_ax.plot(t, [0] + [r["received"] for r in rows], label=f"run {run} received")
        count_ax.plot(t, [0] + [r["relayed"] for r in rows], "--", label=f"run {run} relayed")
    rate_ax.set_title("Packets received per second (since the previous row)")
    rate_ax.set_ylabel("packets/s")
    top = max(r["rate"] for rows in runs.values() for r in rows)
    rate_ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    rate_ax.legend(loc="lower right", fontsize="small")
    count_ax.set_title("Packets received and relayed so far")
    count_ax.set_ylabel("packets")
    count_ax.legend(loc="upper left", fontsize="small")
    for ax in (rate_ax, count_ax):
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 3))
    if latency:
        latency_ax = axes[2]
        for run, rows in sorted(runs.items()):
            t = [r["t"] for r in rows]
            latency_ax.plot(t, [r["p50"] for r in rows], marker=".", label=f"run {run} p50")
            latency_ax.plot(t, [r["p99"] for r in rows], "--", marker=".", label=f"run {run} p99")
        latency_ax.set_title("End-to-end latency of the packets delivered since the previous row")
        latency_ax.set_ylabel("microseconds")
        latency_ax.set_yscale("log")
        latency_ax.legend(loc="upper left", fontsize="small")
    for ax in axes:
        ax.set_xlabel("seconds since start")
        ax.grid(alpha=0.3)
    save(fig, output)


def plot_hops(plt, result, output):
    run = runs_of(result)[-1]
    nodes, nr = run["nodes"], run["nr"]
    rule = (result.get("settings") or {}).get("finger_rule", "positions")
    by_relays = run["stats"]["packets_by_relays"]
    total = sum(by_relays)
    if total == 0:
        sys.exit("plot.py: the last run delivered no packets")
    measured = [c / total for c in by_relays]
    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    width = 0.4
    hops = range(1, len(measured) + 1)
    ax.bar([h - width / 2 for h in hops], measured, width, label=f"measured ({total:,} packets)")
    title = f"Hops per packet, {nodes} nodes, NR {nr}"
    if rule == "positions" and nodes >= 2:
        expected = expected_hops(nodes, nr)
        mean = sum((h + 1) * p for h, p in enumerate(expected))
        ax.bar(
            [h + 1 + width / 2 for h in range(len(expected))],
            expected,
            width,
            label=f"exact expectation (mean {mean:.2f})",
        )
        title += " (position fingers)"
    got = sum((h + 1) * p for h, p in enumerate(measured))
    ax.set_title(f"{title}: measured mean {got:.2f}")
    ax.set_xlabel("hops (transmissions from source to sink)")
    ax.set_ylabel("share of packets")
    ax.set_xticks(list(range(1, max(len(measured), len(expected_hops(nodes, nr)) if rule == "positions" else 0) + 1)))
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    save(fig, output)


def plot_latency(plt, result, output):
    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    drawn = 0
    for index, run in enumerate(runs_of(result), start=1):
        points = run["stats"].get("latency_quantiles_ns") or []
        if not points:
            continue
        drawn += 1
        ax.plot([ns / 1e3 for _, ns in points], [q for q, _ in points], label=f"run {index}")
    if not drawn:
        sys.exit("plot.py: no latency quantiles in the result (classic wire, or an older result)")
    ax.set_xscale("log")
    ax.set_title("End-to-end latency, cumulative distribution")
    ax.set_xlabel("microseconds")
    ax.set_ylabel("share of packets at or below")
    ax.set_ylim(0, 1.01)
    if drawn <= 10:
        ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3, which="both")
    save(fig, output)


def plot_load(plt, result, output):
    run = runs_of(result)[-1]
    rows = sorted(run["node"], key=lambda n: n["id"])
    relayed = [n["packets_relayed"] for n in rows]
    if not relayed:
        sys.exit("plot.py: the result has no node rows")
    mean = sum(relayed) / len(relayed)
    squares = sum(r * r for r in relayed)
    jain = (sum(relayed) ** 2) / (len(relayed) * squares) if squares else 1.0
    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    ax.bar(range(len(rows)), relayed, color="tab:green")
    ax.axhline(mean, color="black", linestyle="--", label=f"mean {mean:,.0f}")
    ax.set_title(
        f"Packets relayed per node, {len(rows)} nodes in ring order\n"
        f"Jain's fairness index {jain:.4f} (1: all equal); min {min(relayed):,}, max {max(relayed):,}"
    )
    ax.set_xlabel("node ID")
    ax.set_ylabel("packets relayed")
    if len(rows) <= 32:
        ax.set_xticks(range(len(rows)), [str(n["id"]) for n in rows])
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    save(fig, output)


def save(fig, output):
    fig.savefig(output)
    print(f"plot.py: wrote {output}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Run with a subcommand and --help for its arguments; the module text has more.",
    )
    sub = parser.add_subparsers(dest="what", required=True)
    progress = sub.add_parser("progress", help="progress over time, from --csv")
    progress.add_argument("csv", help="progress CSV written by overlay registry --csv")
    progress.add_argument("-o", "--output", default="progress.svg")
    for name, what in [
        ("hops", "hop-count distribution against the exact expectation"),
        ("latency", "end-to-end latency CDF"),
        ("load", "relay load per node (fairness)"),
    ]:
        p = sub.add_parser(name, help=f"{what}, from --json")
        p.add_argument("json", help="result written by overlay registry --json")
        p.add_argument("-o", "--output", default=f"{name}.svg")
    every = sub.add_parser("all", help="all four pictures into a directory")
    every.add_argument("csv")
    every.add_argument("json")
    every.add_argument("-d", "--dir", default=".")
    every.add_argument("--name", default="run", help="suffix of the file names")
    args = parser.parse_args()

    ensure_matplotlib(__file__)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # SVGs that do not change when nothing they show changed (docs are regenerated in git).
    plt.rcParams["svg.hashsalt"] = "overlay"
    plt.rcParams["svg.fonttype"] = "none"
    if args.what == "progress":
        plot_progress(plt, read_csv(args.csv), args.output)
    elif args.what == "hops":
        plot_hops(plt, read_result(args.json), args.output)
    elif args.what == "latency":
        plot_latency(plt, read_result(args.json), args.output)
    elif args.what == "load":
        plot_load(plt, read_result(args.json), args.output)
    else:
        runs, result = read_csv(args.csv), read_result(args.json)
        out = lambda kind: os.path.join(args.dir, f"{kind}-{args.name}.svg")  # noqa: E731
        plot_progress(plt, runs, out("progress"))
        plot_hops(plt, result, out("hops"))
        plot_latency(plt, result, out("latency"))
        plot_load(plt, result, out("load"))


if __name__ == "__main__":
    main()
