//! The run summary: the table the reference prints, its verdict, and the JSON result.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use crate::stats::{LatencySummary, RunStats, StatsSummary};
use crate::wire::{Counters, NodeId};

/// `1234567` -> `1,234,567`; `-1234` -> `-1,234`.
pub fn thousands(value: i128) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One node's counters in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeResult {
    pub id: NodeId,
    pub address: String,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_relayed: u64,
    pub sum_sent: i64,
    pub sum_received: i64,
    pub corrupted: u64,
    pub dropped: u64,
}

impl NodeResult {
    pub fn new(id: NodeId, address: SocketAddr, counters: &Counters) -> NodeResult {
        NodeResult {
            id,
            address: address.to_string(),
            packets_sent: counters.sent,
            packets_received: counters.received,
            packets_relayed: counters.relayed,
            sum_sent: counters.sum_sent,
            sum_received: counters.sum_received,
            corrupted: counters.corrupted,
            dropped: counters.dropped,
        }
    }
}

/// The outcome of one run, or of several added together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    pub nodes: usize,
    pub nr: usize,
    /// Packets each node was told to send.
    pub packets_per_node: u64,
    pub extra_payload_bytes: u32,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_relayed: u64,
    /// Sums over nodes, in i128 so that no total can overflow.
    pub sum_sent: i128,
    pub sum_received: i128,
    pub corrupted: u64,
    pub dropped: u64,
    /// From `start` to the verified summary.
    pub duration_s: f64,
    pub packets_per_s: f64,
    /// Relays (forwarding transmissions) per second.
    pub relays_per_s: f64,
    /// "PASS" or "FAIL".
    pub verdict: &'static str,
    /// Why the run failed (empty on PASS).
    pub failures: Vec<String>,
    /// Packets by relays passed, end-to-end and per-hop latency (from the sinks' histograms).
    pub stats: StatsSummary,
    pub node: Vec<NodeResult>,
    /// The histograms behind `stats`, to add runs together.
    #[serde(skip)]
    pub raw_stats: RunStats,
}

impl RunResult {
    /// Builds a result from per-node counters and checks it. `failures` holds problems found
    /// outside the counters (a lost node); the counters' own checks are added to it.
    pub fn new(
        nr: usize,
        packets_per_node: u64,
        extra_payload_bytes: u32,
        duration_s: f64,
        node: Vec<NodeResult>,
        mut failures: Vec<String>,
    ) -> RunResult {
        let mut total = RunResult {
            nodes: node.len(),
            nr,
            packets_per_node,
            extra_payload_bytes,
            packets_sent: 0,
            packets_received: 0,
            packets_relayed: 0,
            sum_sent: 0,
            sum_received: 0,
            corrupted: 0,
            dropped: 0,
            duration_s,
            packets_per_s: 0.0,
            relays_per_s: 0.0,
            verdict: "FAIL",
            failures: Vec::new(),
            stats: StatsSummary::default(),
            node,
            raw_stats: RunStats::default(),
        };
        for n in &total.node {
            total.packets_sent += n.packets_sent;
            total.packets_received += n.packets_received;
            total.packets_relayed += n.packets_relayed;
            total.sum_sent += i128::from(n.sum_sent);
            total.sum_received += i128::from(n.sum_received);
            total.corrupted += n.corrupted;
            total.dropped += n.dropped;
        }
        let expected = packets_per_node * total.nodes as u64;
        if total.packets_sent != expected {
            failures.push(format!(
                "{} packets sent, {} expected",
                thousands(total.packets_sent.into()),
                thousands(expected.into())
            ));
        }
        if total.packets_received != total.packets_sent {
            failures.push(format!(
                "{} packets sent but {} received",
                thousands(total.packets_sent.into()),
                thousands(total.packets_received.into())
            ));
        }
        if total.sum_received != total.sum_sent {
            failures.push(format!(
                "sum of values sent {} differs from sum received {}",
                thousands(total.sum_sent),
                thousands(total.sum_received)
            ));
        }
        if total.corrupted > 0 {
            failures.push(format!(
                "{} corrupted packets",
                thousands(total.corrupted.into())
            ));
        }
        if total.dropped > 0 {
            failures.push(format!(
                "{} dropped packets",
                thousands(total.dropped.into())
            ));
        }
        if duration_s > 0.0 {
            total.packets_per_s = total.packets_received as f64 / duration_s;
            total.relays_per_s = total.packets_relayed as f64 / duration_s;
        }
        total.verdict = if failures.is_empty() { "PASS" } else { "FAIL" };
        total.failures = failures;
        total
    }

    /// Attaches the sinks' hop counts and latency histograms.
    pub fn with_stats(mut self, stats: RunStats) -> RunResult {
        self.stats = stats.summary();
        self.raw_stats = stats;
        self
    }

    pub fn passed(&self) -> bool {
        self.verdict == "PASS"
    }

    /// The reference's table (a row per node, then `Sum`) and a one-line verdict.
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
        let mut row = |name: String, sent: u64, received: u64, relayed: u64, s: i128, r: i128| {
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
        for n in &self.node {
            row(
                format!("Node {}", n.id),
                n.packets_sent,
                n.packets_received,
                n.packets_relayed,
                n.sum_sent.into(),
                n.sum_received.into(),
            );
        }
        row(
            "Sum".to_string(),
            self.packets_sent,
            self.packets_received,
            self.packets_relayed,
            self.sum_sent,
            self.sum_received,
        );
        if !self.stats.packets_by_relays.is_empty() {
            let hops: Vec<String> = self
                .stats
                .packets_by_relays
                .iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(|(relays, count)| format!("{relays}: {}", thousands((*count).into())))
                .collect();
            let _ = writeln!(out, "Packets by relays passed: {}", hops.join(", "));
        }
        if self.stats.latency_ns.count > 0 {
            let _ = writeln!(
                out,
                "Latency end to end: {}",
                latency_line(&self.stats.latency_ns)
            );
            let per_hop: Vec<String> = self
                .stats
                .latency_per_hop_ns
                .iter()
                .map(|hop| format!("{} hops p50 {}", hop.relays + 1, micros(hop.per_hop.p50)))
                .collect();
            let _ = writeln!(out, "Latency per hop: {}", per_hop.join(", "));
        }
        let _ = write!(out, "{}", self.verdict_line());
        out
    }

    /// `PASS: ...` or `FAIL: ...` in one line.
    pub fn verdict_line(&self) -> String {
        let rate = format!(
            "{} packets in {:.3} s ({} packets/s, {} relays/s), {} corrupted, {} dropped",
            thousands(self.packets_received.into()),
            self.duration_s,
            thousands(self.packets_per_s.round() as i128),
            thousands(self.relays_per_s.round() as i128),
            self.corrupted,
            self.dropped
        );
        if self.passed() {
            format!("PASS: sent == received and sums match; {rate}")
        } else {
            format!("FAIL: {}; {rate}", self.failures.join("; "))
        }
    }
}

/// Nanoseconds as microseconds with one decimal.
fn micros(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1000.0)
}

fn latency_line(latency: &LatencySummary) -> String {
    format!(
        "p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
        micros(latency.p50),
        micros(latency.p90),
        micros(latency.p99),
        micros(latency.p999),
        micros(latency.max)
    )
}

/// A scripted registry's result file: every run, and all of them added together.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptResult {
    #[serde(flatten)]
    pub total: RunResult,
    pub runs: Vec<RunResult>,
}

impl ScriptResult {
    /// Adds the runs together (node rows by ID); the verdict is PASS only if every run passed.
    pub fn new(runs: Vec<RunResult>) -> Option<ScriptResult> {
        let first = runs.first()?;
        let mut nodes: Vec<NodeResult> = first.node.clone();
        for run in &runs[1..] {
            for n in &run.node {
                match nodes.iter_mut().find(|m| m.id == n.id) {
                    Some(m) => {
                        m.packets_sent += n.packets_sent;
                        m.packets_received += n.packets_received;
                        m.packets_relayed += n.packets_relayed;
                        m.sum_sent = m.sum_sent.wrapping_add(n.sum_sent);
                        m.sum_received = m.sum_received.wrapping_add(n.sum_received);
                        m.corrupted += n.corrupted;
                        m.dropped += n.dropped;
                    }
                    None => nodes.push(n.clone()),
                }
            }
        }
        let failures: Vec<String> = runs
            .iter()
            .enumerate()
            .flat_map(|(index, run)| {
                run.failures
                    .iter()
                    .map(move |f| format!("run {}: {f}", index + 1))
            })
            .collect();
        let duration_s = runs.iter().map(|r| r.duration_s).sum();
        let packets: u64 = runs.iter().map(|r| r.packets_per_node).sum();
        let mut stats = RunStats::default();
        for run in &runs {
            stats.add(&run.raw_stats);
        }
        let mut total = RunResult::new(
            first.nr,
            packets,
            first.extra_payload_bytes,
            duration_s,
            nodes,
            failures,
        )
        .with_stats(stats);
        total.nodes = runs.iter().map(|r| r.nodes).max().unwrap_or(0);
        Some(ScriptResult { total, runs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(375_000), "375,000");
        assert_eq!(thousands(-91_138_456_771), "-91,138,456,771");
    }

    fn node(id: NodeId, sent: u64, received: u64, sum: i64) -> NodeResult {
        NodeResult::new(
            id,
            "127.0.0.1:1".parse().unwrap(),
            &Counters {
                sent,
                received,
                relayed: 1,
                sum_sent: sum,
                sum_received: sum,
                corrupted: 0,
                dropped: 0,
            },
        )
    }

    #[test]
    fn verdicts() {
        let pass = RunResult::new(
            3,
            5,
            0,
            0.5,
            vec![node(1, 5, 5, -7), node(2, 5, 5, 7)],
            vec![],
        );
        assert!(pass.passed());
        assert_eq!(pass.sum_sent, 0);
        let table = pass.table();
        assert!(table.contains("Sum "), "{table}");
        assert!(table.lines().last().unwrap().starts_with("PASS"), "{table}");
        let fail = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 4, 1)], vec![]);
        assert!(!fail.passed());
        assert!(
            fail.verdict_line()
                .contains("5 packets sent but 4 received")
        );
        let lost = RunResult::new(
            3,
            5,
            0,
            0.5,
            vec![node(1, 5, 5, 1)],
            vec!["node 9 left".into()],
        );
        assert!(lost.verdict_line().starts_with("FAIL: node 9 left"));
    }

    #[test]
    fn script_results_add_runs() {
        let one = RunResult::new(
            3,
            5,
            0,
            1.0,
            vec![node(1, 5, 5, 3), node(2, 5, 5, 4)],
            vec![],
        );
        let total = ScriptResult::new(vec![one.clone(), one]).unwrap();
        assert!(total.total.passed());
        assert_eq!(total.total.packets_sent, 20);
        assert_eq!(total.total.node[0].packets_sent, 10);
        let json = serde_json::to_value(&total).unwrap();
        for key in [
            "nodes",
            "nr",
            "packets_sent",
            "packets_received",
            "packets_relayed",
            "sum_sent",
            "sum_received",
            "corrupted",
            "duration_s",
            "verdict",
            "node",
            "runs",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
        assert_eq!(json["verdict"], "PASS");
    }
}
