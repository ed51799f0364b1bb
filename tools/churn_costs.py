#!/usr/bin/env python3
"""The cost of membership changes and massive failure, for both finger rules, with
`overlay simulate` (no sockets): the tables of docs/CHURN.md.

    tools/churn_costs.py [--samples S] [--lookups L] [--seed S]

Prints two Markdown tables: per join and per leave, the nodes whose tables change and the
entries that change, for N = 64, 1,024 and 10,000, next to log2^2 N (the order of the messages
Chord's own join protocol sends); and, at 10,000 nodes, a fraction p = 0.1..0.5 of the nodes
killed at once, lookups from live nodes routed with stale tables plus backup entries before any
repair, and the registry's repair of all of them in one change (live nodes that get a new table,
entries that change in them). The binary is OVERLAY_BIN, or target/release/overlay built with `cargo build --release`.
"""

import argparse
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = ["positions", "chord"]


def simulate(binary, args):
    out = subprocess.run([binary, "simulate", "--json", *args], check=True, capture_output=True)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--lookups", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    binary = os.environ.get("OVERLAY_BIN", os.path.join(ROOT, "target/release/overlay"))
    seed = str(args.seed)

    print("| N | finger rule | per join: nodes changed (max) | entries changed (max) "
          "| per leave: nodes changed (max) | entries changed (max) | log2^2 N |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for nodes in [64, 1024, 10000]:
        for rule in RULES:
            report = simulate(binary, ["--nodes", str(nodes), "--rule", rule, "--lookups", "0",
                                       "--churn", str(args.samples), "--seed", seed])
            churn = report["churn"]
            cells = []
            for change in ["join", "leave"]:
                cost = churn[change]
                cells.append(f"{cost['nodes_changed_mean']:,.1f} ({cost['nodes_changed_max']:,})")
                cells.append(f"{cost['entries_changed_mean']:,.1f} "
                             f"({cost['entries_changed_max']:,})")
            print(f"| {nodes:,} | {rule} | {' | '.join(cells)} "
                  f"| {churn['chord_join_messages']:.0f} |")
    print()
    fractions = "0.1,0.2,0.3,0.4,0.5"
    for rule in RULES:
        report = simulate(binary, ["--nodes", "10000", "--rule", rule, "--lookups",
                                   str(args.lookups), "--fail", fractions, "--seed", seed])
        r, r_log2 = report["backups"]
        print(f"{rule} fingers, 10,000 nodes, {args.lookups:,} lookups per row:")
        print()
        print(f"| p | killed | owner killed | stuck, r = {r} | stuck, r = {r_log2} "
              f"| stuck, no backups | mean hops (r = {r}) | repair: new tables (entries) |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in report["failures"]:
            repair = ("too few left" if row["repair_nodes_changed"] is None else
                      f"{row['repair_nodes_changed']:,} ({row['repair_entries_changed']:,})")
            print(f"| {row['p']:.1f} | {row['killed']:,} | {100 * row['owner_failed']:.2f}% "
                  f"| {100 * row['stuck']:.3f}% | {100 * row['stuck_log2_backups']:.3f}% "
                  f"| {100 * row['stuck_without_backups']:.2f}% | {row['mean_hops']:.2f} "
                  f"| {repair} |")
        print()


if __name__ == "__main__":
    main()
