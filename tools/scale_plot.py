#!/usr/bin/env python3
"""Draws tools/scale.sh's table (scale.csv) as one SVG or PNG (by the output's extension).

    tools/scale_plot.py scale.csv [-o scale.svg]

Runs that passed only. Left: packets delivered and transmissions (deliveries plus relays) per second against the
number of nodes. Right: mean and p99 hops per packet, measured and exact for each size's NR,
with log2 N for reference. matplotlib as for tools/plot.py (tools/plotenv.py).
"""

import argparse
import csv
import math

from plotenv import ensure_matplotlib


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("-o", "--output", default="scale.svg")
    args = parser.parse_args()
    ensure_matplotlib(__file__)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(args.csv, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("verdict") == "PASS"]
    if not rows:
        raise SystemExit(f"scale_plot.py: {args.csv} has no run that passed")
    nodes = [int(row["nodes"]) for row in rows]
    figure, (rate, hops) = plt.subplots(1, 2, figsize=(11, 4.2))
    rate.plot(nodes, [float(r["packets_per_s"]) for r in rows], "o-", label="packets/s")
    rate.plot(nodes, [float(r["transmissions_per_s"]) for r in rows], "s-",
              label="transmissions/s")
    rate.set_xscale("log", base=2)
    rate.set_yscale("log")
    rate.set_xlabel("nodes")
    rate.set_title("throughput")
    rate.legend()
    rate.grid(True, which="both", alpha=0.3)
    hops.plot(nodes, [float(r["hops_mean"]) for r in rows], "o-", label="mean, measured")
    hops.plot(nodes, [float(r["hops_mean_exact"]) for r in rows], "k--", label="mean, exact")
    hops.plot(nodes, [float(r["hops_p99"]) for r in rows], "s-", label="p99, measured")
    hops.plot(nodes, [float(r["hops_p99_exact"]) for r in rows], "k:", label="p99, exact")
    hops.plot(nodes, [math.log2(n) for n in nodes], color="grey", alpha=0.5, label="log2 N")
    hops.set_xscale("log", base=2)
    hops.set_xlabel("nodes")
    hops.set_title("hops per packet (NR = ceil(log2 N))")
    hops.legend()
    hops.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
