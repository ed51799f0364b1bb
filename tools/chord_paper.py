#!/usr/bin/env python3
"""Reproduces Stoica et al., SIGCOMM 2001 (Chord), Fig. 10 and Fig. 8 with `overlay simulate`,
for both finger rules, and writes a table and a plot into docs/.

    tools/chord_paper.py [--lookups L] [--seed S] [--out DIR]

Fig. 10(a): for N = 2^k, k = 3..14, the mean, 1st and 99th percentile of the path length,
next to (1/2) log2 N. Fig. 10(b): the distribution at N = 2^12. Fig. 8: keys per node for
10^4 nodes and 10^5..10^6 keys. Writes DIR/chord-paper.md (the tables) and DIR/chord-paper.svg
(the plot); DIR defaults to docs/ of this repository. The binary is OVERLAY_BIN, or
target/release/overlay built with `cargo build --release`.

matplotlib is needed for the plot; if it cannot be imported, the script creates a virtual
environment under ~/.cache/overlay/plot-venv (or $XDG_CACHE_HOME), the one tools/plot.py uses,
installs matplotlib there with pip, and runs itself again with it. Set
OVERLAY_PLOT_NO_INSTALL=1 to refuse instead (the script then stops with that message).
"""

import argparse
import json
import math
import os
import subprocess
import sys

from plotenv import ensure_matplotlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KS = range(3, 15)
PDF_K = 12
LOAD_NODES = 10_000
LOAD_KEYS = [k * 100_000 for k in range(1, 11)]


def binary():
    path = os.environ.get("OVERLAY_BIN")
    if path:
        return path
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "overlay")


def simulate(overlay, *args):
    out = subprocess.run(
        [overlay, "simulate", "--json", *map(str, args)], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(f"chord_paper.py: overlay simulate {' '.join(map(str, args))}: {out.stderr}")
    return json.loads(out.stdout)


def stats(d):
    return f"{d['mean']:.3f} ({d['p1']}, {d['p99']})"


def pdf(d):
    total = sum(d["counts"])
    return [c / total for c in d["counts"]]


def write_table(path, rows, load, lookups, seed):
    lines = [
        "<!-- Written by tools/chord_paper.py; do not edit by hand. -->",
        f"`tools/chord_paper.py --lookups {lookups} --seed {seed}`: 160-bit random identifiers,",
        f"{lookups} random lookups per N (Chord: random source, random key; positions: random",
        "source, random other node, NR = log2 N). Each cell: mean (1st percentile, 99th",
        "percentile). *Path length* is the Chord paper's count (nodes a query is forwarded to",
        "before the key's predecessor answers), *hops* ours (transmissions to the key's owner).",
        "",
        "| k | N | (1/2) log2 N | Chord path length | Chord hops | positions hops | positions exact mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, chord, positions in rows:
        lines.append(
            f"| {k} | {2**k} | {k / 2:.1f} | {stats(chord['path_length'])} | "
            f"{stats(chord['hops'])} | {stats(positions['hops'])} | "
            f"{positions['exact_mean_hops']:.3f} |"
        )
    chord12 = next(c for k, c, _ in rows if k == PDF_K)
    positions12 = next(p for k, _, p in rows if k == PDF_K)
    lines += [
        "",
        f"Distribution at N = 2^{PDF_K} (share of lookups, %):",
        "",
        "| count | Chord path length | Chord hops | positions hops |",
        "|---|---|---|---|",
    ]
    columns = [pdf(chord12["path_length"]), pdf(chord12["hops"]), pdf(positions12["hops"])]
    for h in range(max(len(c) for c in columns)):
        cells = [f"{100 * c[h]:.2f}" if h < len(c) else "0.00" for c in columns]
        lines.append(f"| {h} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Keys per node, {LOAD_NODES} nodes (Chord's successor(key), random identifiers):",
        "",
        "| keys | mean | min | p1 | p50 | p99 | max | p99 / mean | max / mean |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in load:
        lines.append(
            f"| {entry['keys']} | {entry['mean']:.0f} | {entry['min']} | {entry['p1']} | "
            f"{entry['p50']} | {entry['p99']} | {entry['max']} | "
            f"{entry['p99'] / entry['mean']:.2f} | {entry['max'] / entry['mean']:.2f} |"
        )
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(path, rows, load):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The same numbers give the same file: no date, fixed element IDs.
    plt.rcParams["svg.hashsalt"] = "chord-paper"

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.8))
    ks = [k for k, _, _ in rows]
    nodes = [2**k for k in ks]

    def bars(axis, series, label, offset, marker):
        means = [d["mean"] for d in series]
        low = [d["mean"] - d["p1"] for d in series]
        high = [d["p99"] - d["mean"] for d in series]
        xs = [n * 2**offset for n in nodes]
        axis.errorbar(xs, means, yerr=[low, high], label=label, marker=marker, capsize=3)

    bars(a, [c["path_length"] for _, c, _ in rows], "Chord: path length (paper's count)", -0.08, "o")
    bars(a, [c["hops"] for _, c, _ in rows], "Chord: hops to the owner", 0.0, "s")
    bars(a, [p["hops"] for _, _, p in rows], "positions: hops (NR = log2 N)", 0.08, "^")
    a.plot(nodes, [k / 2 for k in ks], "k--", label="(1/2) log2 N")
    a.set_xscale("log", base=2)
    a.set_xlabel("nodes N")
    a.set_ylabel("mean, 1st and 99th percentile")
    a.set_title("(a) path length vs. N (Fig. 10a)")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)

    chord12 = next(c for k, c, _ in rows if k == PDF_K)
    positions12 = next(p for k, _, p in rows if k == PDF_K)
    for series, label, marker in [
        (chord12["path_length"], "Chord: path length", "o"),
        (chord12["hops"], "Chord: hops", "s"),
        (positions12["hops"], "positions: hops", "^"),
    ]:
        shares = pdf(series)
        b.plot(range(len(shares)), shares, marker=marker, label=label)
    b.axvline(PDF_K / 2, color="k", linestyle="--", label="(1/2) log2 N")
    b.set_xlabel("path length / hops")
    b.set_ylabel("PDF")
    b.set_title(f"(b) distribution at N = 2^{PDF_K} (Fig. 10b)")
    b.legend(fontsize=8)
    b.grid(alpha=0.3)

    keys = [e["keys"] / 1e5 for e in load]
    c.errorbar(
        keys,
        [e["mean"] for e in load],
        yerr=[[e["mean"] - e["p1"] for e in load], [e["p99"] - e["mean"] for e in load]],
        marker="o",
        capsize=3,
        label="mean, 1st and 99th percentile",
    )
    c.plot(keys, [e["max"] for e in load], "x", label="max")
    c.set_xlabel("total keys (x 10^5)")
    c.set_ylabel("keys per node")
    c.set_title(f"keys per node, {LOAD_NODES} nodes (Fig. 8a)")
    c.legend(fontsize=8)
    c.grid(alpha=0.3)

    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = parser.parse_args()
    ensure_matplotlib(__file__)
    overlay = binary()
    rows = []
    for k in KS:
        common = ["--nodes", 2**k, "--lookups", args.lookups, "--seed", args.seed]
        chord = simulate(overlay, *common)
        positions = simulate(overlay, *common, "--rule", "positions")
        rows.append((k, chord, positions))
        print(
            f"k={k:2} N={2**k:6}  (1/2)log2N={k / 2:4.1f}  Chord path length "
            f"{stats(chord['path_length'])}  hops {stats(chord['hops'])}  positions hops "
            f"{stats(positions['hops'])}",
            file=sys.stderr,
        )
    load = []
    for keys in LOAD_KEYS:
        report = simulate(
            overlay, "--nodes", LOAD_NODES, "--lookups", 0, "--keys", keys, "--seed", args.seed
        )
        load.append(report["load"])
    table = os.path.join(args.out, "chord-paper.md")
    figure = os.path.join(args.out, "chord-paper.svg")
    write_table(table, rows, load, args.lookups, args.seed)
    plot(figure, rows, load)
    print(f"wrote {table} and {figure}", file=sys.stderr)


if __name__ == "__main__":
    main()
