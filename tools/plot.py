#!/usr/bin/env python3
"""Plots a run's progress CSV (overlay registry --csv) and, optionally, the hop-count histogram
from its JSON result (--json), as one SVG or PNG (by the output's extension).

    tools/plot.py progress.csv [--json result.json] [-o plot.svg]

Top panel: packets received per second over time, one line per run. Middle: packets received
and relayed so far. Bottom (with --json): how many packets passed 0, 1, 2, ... relays.

matplotlib is needed; on first use, if it cannot be imported, the script creates a virtual
environment under ~/.cache/overlay/plot-venv (or $XDG_CACHE_HOME), installs matplotlib there
with pip, and runs itself again with it. Set OVERLAY_PLOT_NO_INSTALL=1 to refuse instead.
"""

import argparse
import csv
import json
import sys

from plotenv import ensure_matplotlib


def read_csv(path):
    runs = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            run = int(row["run"])
            runs.setdefault(run, []).append(
                {
                    "t": float(row["elapsed_s"]),
                    "sent": int(row["packets_sent"]),
                    "received": int(row["packets_received"]),
                    "relayed": int(row["packets_relayed"]),
                    "rate": float(row["rate_pps"]),
                    # Older CSVs have no latency columns.
                    "p50": float(row.get("latency_p50_us") or 0),
                    "p99": float(row.get("latency_p99_us") or 0),
                }
            )
    if not runs:
        sys.exit(f"plot.py: {path} has no rows (did the run last a second?)")
    return runs


def hop_histogram(path):
    """The packets-by-relays counts of the JSON result (all runs added), or None."""
    with open(path) as f:
        result = json.load(f)
    hops = (result.get("stats") or {}).get("packets_by_relays")
    if hops is None:
        for key in ("packets_by_relays", "hops"):
            if isinstance(result.get(key), list):
                hops = result[key]
    return hops


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="progress CSV written by overlay registry --csv")
    parser.add_argument("--json", help="JSON result (overlay registry --json) for the hop histogram")
    parser.add_argument("-o", "--output", default="overlay-plot.svg", help="SVG or PNG file")
    args = parser.parse_args()

    ensure_matplotlib(__file__)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = read_csv(args.csv)
    hops = hop_histogram(args.json) if args.json else None
    latency = any(r["p50"] > 0 for rows in runs.values() for r in rows)
    panels = 2 + (1 if latency else 0) + (1 if hops else 0)
    fig, axes = plt.subplots(panels, 1, figsize=(8, 3 * panels), constrained_layout=True)

    rate_ax, count_ax = axes[0], axes[1]
    if latency:
        latency_ax = axes[2]
        for run, rows in sorted(runs.items()):
            t = [r["t"] for r in rows]
            latency_ax.plot(t, [r["p50"] for r in rows], marker=".", label=f"run {run} p50")
            latency_ax.plot(t, [r["p99"] for r in rows], "--", marker=".", label=f"run {run} p99")
        latency_ax.set_title("End-to-end latency of the packets delivered since the previous row")
        latency_ax.set_xlabel("seconds since start")
        latency_ax.set_ylabel("microseconds")
        latency_ax.set_yscale("log")
        latency_ax.legend(loc="upper left", fontsize="small")
        latency_ax.grid(alpha=0.3)
    for run, rows in sorted(runs.items()):
        t = [0.0] + [r["t"] for r in rows]
        rate_ax.step(t, [rows[0]["rate"]] + [r["rate"] for r in rows], where="pre", label=f"run {run}")
        count_ax.plot(t, [0] + [r["received"] for r in rows], label=f"run {run} received")
        count_ax.plot(t, [0] + [r["relayed"] for r in rows], "--", label=f"run {run} relayed")
    rate_ax.set_title("Packets received per second")
    rate_ax.set_xlabel("seconds since start")
    rate_ax.set_ylabel("packets/s")
    top = max(r["rate"] for rows in runs.values() for r in rows)
    rate_ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    rate_ax.legend(loc="lower right")
    count_ax.set_title("Packets received and relayed so far")
    count_ax.set_xlabel("seconds since start")
    count_ax.set_ylabel("packets")
    count_ax.legend(loc="upper left", fontsize="small")
    for ax in (rate_ax, count_ax):
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 3))

    if hops:
        hop_ax = axes[-1]
        hop_ax.bar(range(len(hops)), hops, color="tab:green")
        hop_ax.set_title("Packets by relays passed")
        hop_ax.set_xlabel("relays")
        hop_ax.set_ylabel("packets")
        hop_ax.set_xticks(range(len(hops)))
        hop_ax.grid(axis="y", alpha=0.3)

    fig.savefig(args.output)
    print(f"plot.py: wrote {args.output}")


if __name__ == "__main__":
    main()
