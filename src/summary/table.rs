//! The summary table the reference prints, with the hop counts and latencies under it.

use std::fmt::Write as _;

use super::format::{duration, latency_line, thousands};
use super::hops::HopSpread;
use super::{NodeResult, RunResult};

/// Runs of more nodes than this are summed up by the smallest, mean and largest per-node
/// figures, not a row per node (the JSON result always has every node).
pub const SUMMARY_ROWS_MAX: usize = 32;
/// Most path-length classes listed one by one on a summary line.
const HOP_CLASSES_SHOWN_MAX: usize = 12;

impl RunResult {
    /// The reference's table (a row per node, then `Sum`; for more than [`SUMMARY_ROWS_MAX`]
    /// nodes the smallest, mean and largest per-node figures instead of a row each), the hop
    /// counts and latencies, and a one-line verdict.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<12} {:>16} {:>18} {:>18} {:>24} {:>24}",
            "",
            "Packets Sent",
            "Packets Received",
            "Packets Relayed",
            "Sum Values Sent",
            "Sum Values Received"
        );
        let mut row = |name: &str, sent: u64, received: u64, relayed: u64, s: i128, r: i128| {
            let _ = writeln!(
                out,
                "{:<12} {:>16} {:>18} {:>18} {:>24} {:>24}",
                name,
                thousands(sent.into()),
                thousands(received.into()),
                thousands(relayed.into()),
                thousands(s),
                thousands(r)
            );
        };
        if self.node.len() <= SUMMARY_ROWS_MAX {
            for n in &self.node {
                row(
                    &format!("Node {}", n.id),
                    n.packets_sent,
                    n.packets_received,
                    n.packets_relayed,
                    n.sum_sent.into(),
                    n.sum_received.into(),
                );
            }
        } else {
            let spread = |pick: fn(&NodeResult) -> i128| {
                let values = self.node.iter().map(pick);
                let total: i128 = values.clone().sum();
                (
                    values.clone().min().unwrap_or(0),
                    total / self.node.len() as i128,
                    values.max().unwrap_or(0),
                )
            };
            let sent = spread(|n| n.packets_sent.into());
            let received = spread(|n| n.packets_received.into());
            let relayed = spread(|n| n.packets_relayed.into());
            let sum_sent = spread(|n| n.sum_sent.into());
            let sum_received = spread(|n| n.sum_received.into());
            let unsigned = |v: i128| u64::try_from(v).unwrap_or(0);
            for (name, pick) in [("Node min", 0usize), ("Node mean", 1), ("Node max", 2)] {
                let at = |t: (i128, i128, i128)| [t.0, t.1, t.2][pick];
                row(
                    name,
                    unsigned(at(sent)),
                    unsigned(at(received)),
                    unsigned(at(relayed)),
                    at(sum_sent),
                    at(sum_received),
                );
            }
        }
        row(
            "Sum",
            self.packets_sent,
            self.packets_received,
            self.packets_relayed,
            self.sum_sent,
            self.sum_received,
        );
        if self.node.len() > SUMMARY_ROWS_MAX {
            let _ = writeln!(
                out,
                "({} nodes: min, mean and max per node; every node's row is in the JSON result, \
                 --json)",
                self.node.len()
            );
        }
        let by_relays = &self.stats.packets_by_relays;
        if let Some(hops) = HopSpread::of(by_relays) {
            let nodes = self.node.len().max(2) as f64;
            let _ = writeln!(
                out,
                "Hops per packet: mean {:.2}, p99 {}, max {} (log2 of {} nodes = {:.2})",
                hops.mean,
                hops.p99,
                hops.max,
                self.node.len(),
                nodes.log2()
            );
            let classes: Vec<String> = by_relays
                .iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(|(relays, count)| format!("{relays}: {}", thousands((*count).into())))
                .collect();
            if classes.len() <= HOP_CLASSES_SHOWN_MAX {
                let _ = writeln!(out, "Packets by relays passed: {}", classes.join(", "));
            }
        }
        if self.stats.latency_ns.count > 0 {
            let _ = writeln!(
                out,
                "Latency end to end: {}",
                latency_line(&self.stats.latency_ns)
            );
            // Path lengths that carry at least 1% of the packets, when there are many.
            let total = self.stats.latency_ns.count;
            let hops = &self.stats.latency_per_hop_ns;
            let per_hop: Vec<String> = hops
                .iter()
                .filter(|hop| {
                    hops.len() <= HOP_CLASSES_SHOWN_MAX
                        || by_relays.get(hop.relays).copied().unwrap_or(0) * 100 >= total
                })
                .map(|hop| {
                    let transmissions = hop.relays + 1;
                    format!(
                        "{transmissions} {} p50 {}",
                        if transmissions == 1 { "hop" } else { "hops" },
                        duration(hop.per_hop.p50)
                    )
                })
                .collect();
            let _ = writeln!(out, "Latency per hop: {}", per_hop.join(", "));
        }
        let _ = write!(out, "{}", self.verdict_line());
        out
    }
}
