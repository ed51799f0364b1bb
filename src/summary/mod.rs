//! The run summary: the table the reference prints, its verdict, and the JSON result.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use crate::limits::TOTAL_FAILURES_MAX;
use crate::stats::{LatencySummary, RunStats, StatsSummary};
use crate::wire::{Counters, LinkCount, NodeId};

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

/// Runs of more nodes than this are summed up by the smallest, mean and largest per-node
/// figures, not a row per node (the JSON result always has every node).
pub const SUMMARY_ROWS_MAX: usize = 32;
/// Most path-length classes listed one by one on a summary line.
const HOP_CLASSES_SHOWN_MAX: usize = 12;

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
    /// Table entries per node (position fingers), or the most fingers any node has (Chord).
    pub nr: usize,
    /// "positions" (entry i = the node 2^i positions ahead) or "chord" (Chord's fingers).
    pub finger_rule: &'static str,
    /// Chord fingers: the identifiers' bits m.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chord_bits: Option<u32>,
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
    /// Packets received per second over `measured_s`.
    pub packets_per_s: f64,
    /// Relays (forwarding transmissions) per second over `measured_s`.
    pub relays_per_s: f64,
    /// A run by time: the nodes originated for this long (`packets_per_node` is then 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_goal_s: Option<f64>,
    /// `stop` or Ctrl-C ended origination this long after the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_after_s: Option<f64>,
    /// Seconds the rates (and the latency) are measured over: `duration_s` unless `excluded`.
    pub measured_s: f64,
    /// What the rates and the latency leave out (a warm-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
    /// Classic wire: the wait after the last task finished that `duration_s` and the rates
    /// include (classic nodes cannot be polled, so when the last packet arrived is unknown:
    /// between `all_sent_s` and `all_sent_s + settle_s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_s: Option<f64>,
    /// Classic wire: seconds from the start until every node had sent all its packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_sent_s: Option<f64>,
    /// "PASS"; "STOPPED": stopped early, everything sent was received with matching sums (a
    /// verdict on what was sent, not on the count asked for); or "FAIL".
    pub verdict: &'static str,
    /// Why the run failed (empty on PASS).
    pub failures: Vec<String>,
    /// Packets by relays passed, end-to-end and per-hop latency (from the sinks' histograms).
    pub stats: StatsSummary,
    pub node: Vec<NodeResult>,
    /// Where every packet went, link by link (native format; absent for the classic one and
    /// for the total of several runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounting: Option<Accounting>,
    /// The histograms behind `stats`, to add runs together.
    #[serde(skip)]
    pub raw_stats: RunStats,
}

/// The per-link account of a run: the nodes that reported can say where each packet they
/// handled went, including the packets they handed to nodes that were lost.
///
/// Each reporting node's conservation (everything it originated or took from a link was
/// delivered, found corrupted, dropped, or handed to a link) gives, summed over them:
/// `sent + received_from_lost_nodes + foreign = received + corrupted + dropped +
/// handed_to_lost_nodes + lost_on_links`, and `unaccounted` is whatever is left (0 unless a
/// node miscounted).
///
/// Only what a node knows of its own links is believed: what it handed to each table entry,
/// and what it took from each link, named by the link's first data packet (a node's own link
/// can only start with a packet it originated or relayed, whose previous hop is itself;
/// `node/data_plane.rs`). A link whose first packet names no node that has the receiver in
/// its table is counted apart (the receiver's row for its own ID): foreign. An outsider can
/// add packets to what arrives, never take any away, so a link that brought more than its
/// sender handed to it carries foreign traffic, and one that brought fewer lost packets,
/// unless its receiver also took packets on links it could not name: then no link is blamed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// Nodes of the overlay that did not send a final report (killed, hung, or gone).
    pub lost_nodes: Vec<NodeId>,
    /// Data packets the reporting nodes handed to their links to lost nodes: delivered to those
    /// nodes, or lost with them (in them or in the kernel's buffers toward them).
    pub handed_to_lost_nodes: u64,
    /// Data packets the reporting nodes took from lost nodes' links (originated or relayed by
    /// them before they were lost).
    pub received_from_lost_nodes: u64,
    /// Data packets handed to a link between two reporting nodes that did not come out at
    /// the other end (a link that died with packets in the kernel's buffers).
    pub lost_on_links: u64,
    /// Data packets the reporting nodes took that no node handed to them: from links that
    /// are no node's, or more on a link than its sender handed to it (an outsider's packets).
    pub foreign: u64,
    /// What the counts above do not explain; 0 means every packet is accounted for.
    pub unaccounted: i64,
}

/// `foreign traffic: node 2 took 6 packets on links named node 1, which handed it 5`.
fn foreign_on_link(from: NodeId, to: NodeId, sent: u64, came: u64) -> String {
    format!(
        "foreign traffic: node {to} took {} packets on links named node {from}, which handed \
         it {}",
        thousands(came.into()),
        thousands(sent.into())
    )
}

/// How a run's origination was bounded and how it ended, and what its figures leave out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ending {
    /// A run by time: the nodes originated for this long.
    pub duration_goal_s: Option<f64>,
    /// `stop` or Ctrl-C ended origination this long after the start.
    pub stopped_after_s: Option<f64>,
    /// The rates are measured over part of the run only.
    pub measured: Option<Measured>,
    /// Classic wire: (the settle wait, seconds until every node had sent everything).
    pub settle: Option<(f64, f64)>,
}

/// Packets received and relayed over part of a run, and what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub seconds: f64,
    pub received: u64,
    pub relayed: u64,
    /// What was left out, for the summary: "a 2.0 s warm-up".
    pub excluded: String,
}

impl RunResult {
    /// Builds the result of a run by count, to its end, from per-node counters and checks it.
    /// `failures` holds problems found outside the counters (a lost node); the counters' own
    /// checks are added to it.
    pub fn new(
        nr: usize,
        packets_per_node: u64,
        extra_payload_bytes: u32,
        duration_s: f64,
        node: Vec<NodeResult>,
        failures: Vec<String>,
    ) -> RunResult {
        RunResult::ended(
            Ending::default(),
            nr,
            packets_per_node,
            extra_payload_bytes,
            duration_s,
            node,
            failures,
        )
    }

    /// [`RunResult::new`] for any run: by count or by time, stopped early or not, with its
    /// rates over part of it. A run stopped early is not held to its count: it is STOPPED when
    /// everything it sent arrived intact (PASS if it had sent its whole count anyway).
    pub fn ended(
        ending: Ending,
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
            finger_rule: "positions",
            chord_bits: None,
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
            duration_goal_s: ending.duration_goal_s,
            stopped_after_s: ending.stopped_after_s,
            measured_s: duration_s,
            excluded: None,
            settle_s: ending.settle.map(|(wait, _)| wait),
            all_sent_s: ending.settle.map(|(_, sent)| sent),
            verdict: "FAIL",
            failures: Vec::new(),
            stats: StatsSummary::default(),
            node,
            accounting: None,
            raw_stats: RunStats::default(),
        };
        // Saturating: the counts are what nodes reported, and a node may lie.
        for n in &total.node {
            total.packets_sent = total.packets_sent.saturating_add(n.packets_sent);
            total.packets_received = total.packets_received.saturating_add(n.packets_received);
            total.packets_relayed = total.packets_relayed.saturating_add(n.packets_relayed);
            total.sum_sent += i128::from(n.sum_sent);
            total.sum_received += i128::from(n.sum_received);
            total.corrupted = total.corrupted.saturating_add(n.corrupted);
            total.dropped = total.dropped.saturating_add(n.dropped);
        }
        let expected = packets_per_node.saturating_mul(total.nodes as u64);
        let counted = ending.duration_goal_s.is_none();
        let short =
            ending.stopped_after_s.is_some() && !(counted && total.packets_sent == expected);
        if counted && !short && total.packets_sent != expected {
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
        let (seconds, received, relayed) = match ending.measured {
            Some(measured) => {
                total.excluded = Some(measured.excluded);
                (measured.seconds, measured.received, measured.relayed)
            }
            None => (duration_s, total.packets_received, total.packets_relayed),
        };
        total.measured_s = seconds;
        if seconds > 0.0 {
            total.packets_per_s = received as f64 / seconds;
            total.relays_per_s = relayed as f64 / seconds;
        }
        total.verdict = if !failures.is_empty() {
            "FAIL"
        } else if short {
            "STOPPED"
        } else {
            "PASS"
        };
        total.failures = failures;
        total
    }

    /// Accounts for every packet from the per-link counts of the nodes that reported (`links`,
    /// by node), given the overlay's `members` when the run started. Nothing changes when no
    /// node reported link counts (the classic format).
    pub fn with_links(
        mut self,
        members: &[NodeId],
        links: &std::collections::BTreeMap<NodeId, Vec<LinkCount>>,
    ) -> RunResult {
        if links.values().all(Vec::is_empty) {
            return self;
        }
        let reported = |id: &NodeId| links.contains_key(id);
        let mut account = Accounting {
            lost_nodes: members.iter().copied().filter(|id| !reported(id)).collect(),
            ..Accounting::default()
        };
        // What each reporting node took from each reporting peer: (from, to) -> received.
        let mut arrived: std::collections::HashMap<(NodeId, NodeId), u64> =
            std::collections::HashMap::new();
        // What each reporting node took on links it could not name (its row for itself).
        let mut unnamed: BTreeMap<NodeId, u64> = BTreeMap::new();
        for (&node, rows) in links {
            for row in rows {
                if row.peer == node {
                    *unnamed.entry(node).or_default() += row.received;
                } else if reported(&row.peer) {
                    let count = arrived.entry((row.peer, node)).or_default();
                    *count = count.saturating_add(row.received);
                }
            }
        }
        let mut link_failures = Vec::new();
        let mut foreign_failures = Vec::new();
        for (&node, &count) in unnamed.iter().filter(|(_, count)| **count > 0) {
            account.foreign = account.foreign.saturating_add(count);
            foreign_failures.push(format!(
                "foreign traffic: node {node} took {} packets on links that are no node's",
                thousands(count.into())
            ));
        }
        for (&node, rows) in links {
            for row in rows.iter().filter(|row| row.peer != node) {
                if !reported(&row.peer) {
                    account.handed_to_lost_nodes =
                        account.handed_to_lost_nodes.saturating_add(row.sent);
                    account.received_from_lost_nodes = account
                        .received_from_lost_nodes
                        .saturating_add(row.received);
                    continue;
                }
                // Each link between reporting nodes, once, from its sending end.
                let came = arrived.remove(&(node, row.peer)).unwrap_or(0);
                if came > row.sent {
                    account.foreign = account.foreign.saturating_add(came - row.sent);
                    foreign_failures.push(foreign_on_link(node, row.peer, row.sent, came));
                } else if came < row.sent {
                    account.lost_on_links = account.lost_on_links.saturating_add(row.sent - came);
                    let line = format!(
                        "link node {node} -> node {}: {} packets handed over, {} arrived",
                        row.peer,
                        thousands(row.sent.into()),
                        thousands(came.into())
                    );
                    link_failures.push(match unnamed.get(&row.peer) {
                        Some(&other) if other > 0 => format!(
                            "{line}, but node {} also took {} packets on links it could not \
                             name, so the loss cannot be blamed on this link",
                            row.peer,
                            thousands(other.into())
                        ),
                        _ => line,
                    });
                }
            }
        }
        // Links a node received on that its peer never reported sending on.
        let mut unsent: Vec<_> = arrived.into_iter().filter(|(_, came)| *came > 0).collect();
        unsent.sort_unstable();
        for ((from, to), came) in unsent {
            account.foreign = account.foreign.saturating_add(came);
            foreign_failures.push(foreign_on_link(from, to, 0, came));
        }
        let explained = i128::from(self.packets_received)
            + i128::from(self.corrupted)
            + i128::from(self.dropped)
            + i128::from(account.handed_to_lost_nodes)
            + i128::from(account.lost_on_links);
        let entered = i128::from(self.packets_sent)
            + i128::from(account.received_from_lost_nodes)
            + i128::from(account.foreign);
        account.unaccounted =
            (entered - explained).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        if !account.lost_nodes.is_empty() {
            let names: Vec<String> = account
                .lost_nodes
                .iter()
                .map(|id| format!("node {id}"))
                .collect();
            self.failures.push(format!(
                "{} lost: the others handed {} packets to {it} (delivered there, or lost with \
                 {it}) and took {} from {it}{}",
                names.join(", "),
                thousands(account.handed_to_lost_nodes.into()),
                thousands(account.received_from_lost_nodes.into()),
                if account.unaccounted == 0 {
                    "; so every packet is accounted for"
                } else {
                    ""
                },
                it = if names.len() == 1 { "it" } else { "them" },
            ));
        }
        self.failures.extend(foreign_failures);
        self.failures.extend(link_failures);
        if account.unaccounted != 0 {
            self.failures.push(format!(
                "{} packets unaccounted for (sent plus received from lost nodes minus everything \
                 counted)",
                thousands(account.unaccounted.into())
            ));
        }
        if !self.failures.is_empty() {
            self.verdict = "FAIL";
        }
        self.accounting = Some(account);
        self
    }

    /// Records the finger rule (`"positions"` or `"chord"`) and Chord's identifier bits.
    pub fn with_fingers(mut self, finger_rule: &'static str, chord_bits: Option<u32>) -> RunResult {
        self.finger_rule = finger_rule;
        self.chord_bits = chord_bits;
        self
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

    /// `PASS: ...`, `STOPPED ...` or `FAIL: ...` in one line.
    pub fn verdict_line(&self) -> String {
        let over = match (&self.excluded, self.settle_s, self.all_sent_s) {
            (Some(what), ..) => format!(" over {:.3} s, {what} excluded", self.measured_s),
            (None, Some(settle), Some(sent)) => format!(
                " including the {settle:.1} s settle wait: classic nodes cannot be polled; every \
                 packet was sent by {sent:.3} s"
            ),
            _ => String::new(),
        };
        let rate = format!(
            "{} packets in {:.3} s ({} packets/s, {} relays/s{over}), {} corrupted, {} dropped",
            thousands(self.packets_received.into()),
            self.duration_s,
            thousands(self.packets_per_s.round() as i128),
            thousands(self.relays_per_s.round() as i128),
            self.corrupted,
            self.dropped
        );
        let goal = match self.duration_goal_s {
            Some(goal) => format!(" of {goal} s"),
            None => String::new(),
        };
        match (self.verdict, self.stopped_after_s) {
            ("PASS", _) => format!("PASS: sent == received and sums match; {rate}"),
            ("STOPPED", Some(after)) => {
                let of = match self.duration_goal_s {
                    Some(_) => String::new(),
                    None => format!(
                        " of {}",
                        thousands((u128::from(self.packets_per_node) * self.nodes as u128) as i128)
                    ),
                };
                format!(
                    "STOPPED after {after:.1} s{goal}: {} packets sent{of}, every one received \
                     and sums match; {rate}",
                    thousands(self.packets_sent.into())
                )
            }
            (_, Some(after)) => format!(
                "FAIL (stopped after {after:.1} s{goal}): {}; {rate}",
                self.failures.join("; ")
            ),
            (_, None) => format!("FAIL: {}; {rate}", self.failures.join("; ")),
        }
    }
}

/// Nanoseconds in the unit that suits them, as wrk prints them: `850ns`, `49.02us`,
/// `12.50ms`, `1.25s`.
pub fn duration(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.2}us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

fn latency_line(latency: &LatencySummary) -> String {
    format!(
        "p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
        duration(latency.p50),
        duration(latency.p90),
        duration(latency.p99),
        duration(latency.p999),
        duration(latency.max)
    )
}

/// Hops (transmissions) per packet over a run, from the packets counted by relays passed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HopSpread {
    mean: f64,
    p99: usize,
    max: usize,
}

impl HopSpread {
    /// `None` when no packet was counted.
    fn of(by_relays: &[u64]) -> Option<HopSpread> {
        let total: u64 = by_relays.iter().sum();
        if total == 0 {
            return None;
        }
        let weighted: f64 = by_relays
            .iter()
            .enumerate()
            .map(|(relays, count)| (relays + 1) as f64 * *count as f64)
            .sum();
        // The smallest hop count at or below which 99% of the packets lie.
        let mut below = 0u64;
        let p99 = by_relays
            .iter()
            .position(|count| {
                below += count;
                below * 100 >= total * 99
            })
            .unwrap_or(0)
            + 1;
        let max = by_relays.iter().rposition(|count| *count > 0).unwrap_or(0) + 1;
        Some(HopSpread {
            mean: weighted / total as f64,
            p99,
            max,
        })
    }
}

/// What a result was measured with: the registry's settings, and those of the overlay the last
/// run used (`None` before any setup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// The `overlay` version that measured it.
    pub version: &'static str,
    /// The registry's host name.
    pub host: String,
    /// When the registry started, RFC 3339 in UTC (`2026-12-01T17:20:31Z`).
    pub started_at: String,
    /// `native` or `classic`.
    pub wire: &'static str,
    /// `positions` (entry i = the node 2^i places ahead) or `chord`.
    pub finger_rule: Option<&'static str>,
    /// Routing-table entries per node.
    pub nr: Option<usize>,
    /// Node IDs are drawn from 0..2^id_bits.
    pub id_bits: u32,
    /// Bytes a source may have unacknowledged (0: the encoding has no window).
    pub window_bytes: Option<u64>,
    /// Packets per second each node originates at most (0: as fast as flow control allows).
    pub rate_per_s: u32,
    /// Extra payload bytes per packet of the last run.
    pub extra_payload_bytes: Option<u32>,
    /// The seed of the registry's random choices (node IDs; sinks are the nodes' own).
    pub seed: u64,
}

/// A registry's result file: the runs it kept, and every run of the session added together.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptResult {
    /// What the runs were measured with (filled in by the binary, which knows the host and
    /// the time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
    #[serde(flatten)]
    pub total: RunResult,
    /// Runs completed in the session; `runs` holds the last of them (all, unless there were
    /// more than the registry keeps).
    pub runs_completed: u32,
    pub runs: Vec<RunResult>,
}

/// One run as `--format json` prints it at the console: its number and settings with the
/// result.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport<'a> {
    pub run: u32,
    pub settings: &'a Settings,
    #[serde(flatten)]
    pub result: &'a RunResult,
}

impl ScriptResult {
    /// Adds the runs together (node rows by ID); the verdict is PASS only if every run passed.
    pub fn new(runs: Vec<RunResult>) -> Option<ScriptResult> {
        let mut totals = Totals::default();
        for run in &runs {
            totals.add(run);
        }
        totals.result(runs)
    }
}

/// Every run of a session added together, one run at a time, in bounded memory: node rows by
/// ID, the histograms merged, and at most [`TOTAL_FAILURES_MAX`] failure lines.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    runs: u32,
    nr: usize,
    finger_rule: &'static str,
    chord_bits: Option<u32>,
    extra_payload_bytes: u32,
    nodes_max: usize,
    packets_per_node: u64,
    duration_s: f64,
    node: BTreeMap<NodeId, NodeResult>,
    failures: Vec<String>,
    failures_left_out: usize,
    stats: RunStats,
    /// Goals of the runs by time, added up; whether any run was by time.
    goal_s: f64,
    timed: bool,
    /// Whether any run was stopped before its goal (its verdict is STOPPED or FAIL).
    stopped: bool,
    /// The rates' spans and what they counted, added up; whether any run excluded a part.
    measured_s: f64,
    measured_received: u64,
    measured_relayed: u64,
    /// What the runs' figures left out: the first run's words, or a general phrase when runs
    /// differ.
    excluded: Option<String>,
}

impl Totals {
    /// Adds a run (whose `raw_stats` still hold its histograms).
    pub fn add(&mut self, run: &RunResult) {
        self.runs += 1;
        if self.runs == 1 {
            self.nr = run.nr;
            self.finger_rule = run.finger_rule;
            self.chord_bits = run.chord_bits;
            self.extra_payload_bytes = run.extra_payload_bytes;
        }
        self.nodes_max = self.nodes_max.max(run.nodes);
        self.packets_per_node = self.packets_per_node.saturating_add(run.packets_per_node);
        self.duration_s += run.duration_s;
        if let Some(goal) = run.duration_goal_s {
            self.timed = true;
            self.goal_s += goal;
        }
        self.stopped |= run.stopped_after_s.is_some() && run.verdict != "PASS";
        if let Some(what) = &run.excluded {
            self.excluded = Some(match &self.excluded {
                Some(before) if before != what => "what its runs left out".to_string(),
                _ => what.clone(),
            });
        }
        self.measured_s += run.measured_s;
        // The counts a run's rates were measured on, back from the rates.
        self.measured_received = self
            .measured_received
            .saturating_add((run.packets_per_s * run.measured_s).round() as u64);
        self.measured_relayed = self
            .measured_relayed
            .saturating_add((run.relays_per_s * run.measured_s).round() as u64);
        for n in &run.node {
            self.node
                .entry(n.id)
                .and_modify(|m| {
                    m.packets_sent = m.packets_sent.saturating_add(n.packets_sent);
                    m.packets_received = m.packets_received.saturating_add(n.packets_received);
                    m.packets_relayed = m.packets_relayed.saturating_add(n.packets_relayed);
                    m.sum_sent = m.sum_sent.wrapping_add(n.sum_sent);
                    m.sum_received = m.sum_received.wrapping_add(n.sum_received);
                    m.corrupted = m.corrupted.saturating_add(n.corrupted);
                    m.dropped = m.dropped.saturating_add(n.dropped);
                })
                .or_insert_with(|| n.clone());
        }
        for failure in &run.failures {
            if self.failures.len() < TOTAL_FAILURES_MAX {
                self.failures.push(format!("run {}: {failure}", self.runs));
            } else {
                self.failures_left_out += 1;
            }
        }
        self.stats.add(&run.raw_stats);
    }

    /// The hop counts and latency histograms of every run added.
    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// Runs added so far.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// The total as a result file with `kept`, the last runs in full; `None` before any run.
    pub fn result(&self, kept: Vec<RunResult>) -> Option<ScriptResult> {
        if self.runs == 0 {
            return None;
        }
        let mut failures = self.failures.clone();
        if self.failures_left_out > 0 {
            failures.push(format!("and {} more failures", self.failures_left_out));
        }
        let ending = Ending {
            duration_goal_s: self.timed.then_some(self.goal_s),
            stopped_after_s: self.stopped.then_some(self.duration_s),
            measured: self.excluded.as_ref().map(|excluded| Measured {
                seconds: self.measured_s,
                received: self.measured_received,
                relayed: self.measured_relayed,
                excluded: excluded.clone(),
            }),
            settle: None,
        };
        let mut total = RunResult::ended(
            ending,
            self.nr,
            self.packets_per_node,
            self.extra_payload_bytes,
            self.duration_s,
            self.node.values().cloned().collect(),
            failures,
        )
        .with_stats(self.stats.clone())
        .with_fingers(self.finger_rule, self.chord_bits);
        total.nodes = self.nodes_max;
        Some(ScriptResult {
            settings: None,
            total,
            runs_completed: self.runs,
            runs: kept,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A run stopped early is STOPPED when everything it sent arrived intact (not FAIL for
    /// its count, not PASS), FAIL when something is wrong, PASS when it had sent everything;
    /// a run by time is held to no count; rates over a part of the run say what they leave out.
    #[test]
    fn stopped_timed_and_measured_runs() {
        let stopped = |after: f64, nodes: Vec<NodeResult>| {
            RunResult::ended(
                Ending {
                    stopped_after_s: Some(after),
                    ..Ending::default()
                },
                3,
                5,
                0,
                2.0,
                nodes,
                vec![],
            )
        };
        let clean = stopped(1.25, vec![node(1, 3, 3, 7)]);
        assert_eq!(clean.verdict, "STOPPED");
        assert!(!clean.passed());
        assert_eq!(
            clean.verdict_line(),
            "STOPPED after 1.2 s: 3 packets sent of 5, every one received and sums match; 3 \
             packets in 2.000 s (2 packets/s, 1 relays/s), 0 corrupted, 0 dropped"
        );
        let lossy = stopped(1.25, vec![node(1, 3, 2, 7)]);
        assert!(
            lossy
                .verdict_line()
                .starts_with("FAIL (stopped after 1.2 s): 3 packets sent but 2 received"),
            "{}",
            lossy.verdict_line()
        );
        assert!(
            stopped(1.25, vec![node(1, 5, 5, 7)]).passed(),
            "sent it all anyway"
        );

        let timed = RunResult::ended(
            Ending {
                duration_goal_s: Some(2.0),
                measured: Some(Measured {
                    seconds: 1.0,
                    received: 100,
                    relayed: 50,
                    excluded: "a 1.0 s warm-up".into(),
                }),
                ..Ending::default()
            },
            3,
            0,
            0,
            2.0,
            vec![node(1, 150, 150, 7)],
            vec![],
        );
        assert!(timed.passed(), "{}", timed.verdict_line());
        assert_eq!(timed.packets_per_s, 100.0);
        assert_eq!(timed.measured_s, 1.0);
        assert!(
            timed
                .verdict_line()
                .contains("(100 packets/s, 50 relays/s over 1.000 s, a 1.0 s warm-up excluded)"),
            "{}",
            timed.verdict_line()
        );
        let json = serde_json::to_value(&timed).unwrap();
        assert_eq!(json["duration_goal_s"], 2.0);
        assert_eq!(json["excluded"], "a 1.0 s warm-up");
        assert!(json.get("stopped_after_s").is_none());

        // A session with a stopped run: the total is STOPPED too, not FAIL for its count.
        let total = ScriptResult::new(vec![
            RunResult::new(3, 5, 0, 1.0, vec![node(1, 5, 5, 7)], vec![])
                .with_stats(RunStats::default()),
            clean.clone(),
        ])
        .unwrap();
        assert_eq!(
            total.total.verdict,
            "STOPPED",
            "{}",
            total.total.verdict_line()
        );
    }

    #[test]
    fn durations_switch_units() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(49_020), "49.02us");
        assert_eq!(duration(12_500_000), "12.50ms");
        assert_eq!(duration(1_250_000_000), "1.25s");
    }

    #[test]
    fn hop_spread() {
        assert_eq!(HopSpread::of(&[]), None);
        assert_eq!(HopSpread::of(&[0, 0]), None);
        // 1 packet direct (1 hop), 98 with one relay (2 hops), 1 with three relays (4 hops).
        let spread = HopSpread::of(&[1, 98, 0, 1]).unwrap();
        assert_eq!(spread.p99, 2);
        assert_eq!(spread.max, 4);
        assert!((spread.mean - (1.0 + 196.0 + 4.0) / 100.0).abs() < 1e-9);
    }

    #[test]
    fn large_runs_get_a_compact_table() {
        let small: Vec<NodeResult> = (0..4).map(|i| node(i, 5, 5, 7)).collect();
        let large: Vec<NodeResult> = (0..100).map(|i| node(i, 5 + u64::from(i), 5, 7)).collect();
        let table = |nodes: Vec<NodeResult>| RunResult::new(3, 5, 0, 0.5, nodes, vec![]).table();
        let small = table(small);
        assert_eq!(
            small.lines().filter(|l| l.starts_with("Node ")).count(),
            4,
            "{small}"
        );
        let large = table(large);
        let rows: Vec<&str> = large.lines().filter(|l| l.starts_with("Node ")).collect();
        assert_eq!(rows.len(), 3, "{large}");
        assert!(
            rows[0].starts_with("Node min") && rows[0].contains(" 5 "),
            "{large}"
        );
        assert!(
            rows[2].starts_with("Node max") && rows[2].contains(" 104 "),
            "{large}"
        );
        assert!(large.contains("100 nodes"), "{large}");
    }

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

    /// (peer, sent, received) rows of one node.
    type Rows<'a> = &'a [(NodeId, u64, u64)];

    fn links(rows: &[(NodeId, Rows)]) -> BTreeMap<NodeId, Vec<LinkCount>> {
        rows.iter()
            .map(|(node, links)| {
                let links = links
                    .iter()
                    .map(|&(peer, sent, received)| LinkCount {
                        peer,
                        sent,
                        received,
                    })
                    .collect();
                (*node, links)
            })
            .collect()
    }

    #[test]
    fn link_counts_account_for_every_packet() {
        // Healthy: 1 sends 5 to 2 over one link, 2 sends 5 to 1 over another.
        let healthy = RunResult::new(
            3,
            5,
            0,
            0.5,
            vec![node(1, 5, 5, 0), node(2, 5, 5, 0)],
            vec![],
        )
        .with_links(&[1, 2], &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 5)])]));
        assert!(healthy.passed(), "{}", healthy.verdict_line());
        assert_eq!(healthy.accounting.as_ref().unwrap().unaccounted, 0);

        // Rows are (peer, sent to it, received from it). A link between live nodes that lost 2
        // packets in the kernel: named, and accounted.
        let cut = RunResult::new(
            3,
            5,
            0,
            0.5,
            vec![node(1, 5, 5, 0), node(2, 5, 3, 0)],
            vec![],
        )
        .with_links(&[1, 2], &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 3)])]));
        let account = cut.accounting.clone().unwrap();
        assert_eq!((account.lost_on_links, account.unaccounted), (2, 0));
        assert!(
            cut.verdict_line()
                .contains("link node 1 -> node 2: 5 packets handed over, 3 arrived"),
            "{}",
            cut.verdict_line()
        );

        // Node 3 lost: 1 handed it 4 packets and took 2 from it (relayed or its own); of the 5
        // + 2 that reached or started at 1 and 2, 3 were received.
        let lost = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 3, 0)], vec![])
            .with_links(&[1, 3], &links(&[(1, &[(3, 4, 2)])]));
        let account = lost.accounting.clone().unwrap();
        assert_eq!(account.lost_nodes, vec![3]);
        assert_eq!(
            (
                account.handed_to_lost_nodes,
                account.received_from_lost_nodes
            ),
            (4, 2)
        );
        assert_eq!(account.unaccounted, 0);
        assert!(
            lost.verdict_line()
                .contains("so every packet is accounted for"),
            "{}",
            lost.verdict_line()
        );

        // A node that miscounted: the difference is reported, not hidden.
        let wrong = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 3, 0)], vec![])
            .with_links(&[1, 3], &links(&[(1, &[(3, 1, 0)])]));
        assert_eq!(wrong.accounting.as_ref().unwrap().unaccounted, 1);
        assert!(!wrong.passed());

        // One forged packet that node 2 took on a link of its own and delivered: foreign
        // traffic at node 2, every packet accounted for, no link blamed.
        let forged = RunResult::new(
            3,
            5,
            0,
            0.5,
            vec![node(1, 5, 5, 0), node(2, 5, 6, 0)],
            vec![],
        )
        .with_links(
            &[1, 2],
            &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 5), (2, 0, 1)])]),
        );
        let account = forged.accounting.clone().unwrap();
        assert_eq!((account.foreign, account.unaccounted), (1, 0));
        let verdict = forged.verdict_line();
        assert!(
            verdict.contains("foreign traffic: node 2 took 1 packets on links that are no node's")
                && !verdict.contains("link node"),
            "{verdict}"
        );

        // Forged packets whose trace names node 1 (an outsider's link to node 2, named by its
        // first packet, or node 1's own link relaying them): more arrived than node 1 handed
        // over. Foreign traffic at node 2; node 1's link is not blamed.
        let named = RunResult::new(
            3,
            5,
            0,
            0.5,
            vec![node(1, 5, 5, 0), node(2, 5, 7, 0)],
            vec![],
        )
        .with_links(&[1, 2], &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 7)])]));
        let account = named.accounting.clone().unwrap();
        assert_eq!(
            (account.foreign, account.lost_on_links, account.unaccounted),
            (2, 0, 0)
        );
        assert!(
            named.verdict_line().contains(
                "foreign traffic: node 2 took 7 packets on links named node 1, which handed it 5"
            ),
            "{}",
            named.verdict_line()
        );

        // Node 2 lost 2 packets of node 1's link and took 2 on links it could not name (say
        // node 1's link, whose first packet was an outsider's with a full trace): the loss
        // is not blamed on the link.
        let unsure = RunResult::new(
            3,
            5,
            0,
            0.5,
            vec![node(1, 5, 5, 0), node(2, 5, 5, 0)],
            vec![],
        )
        .with_links(
            &[1, 2],
            &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 3), (2, 0, 2)])]),
        );
        let account = unsure.accounting.clone().unwrap();
        assert_eq!(
            (account.foreign, account.lost_on_links, account.unaccounted),
            (2, 2, 0)
        );
        assert!(
            unsure
                .verdict_line()
                .contains("so the loss cannot be blamed on this link"),
            "{}",
            unsure.verdict_line()
        );

        // The classic format reports no links: nothing changes.
        let classic = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 5, 0)], vec![])
            .with_links(&[1], &links(&[(1, &[])]));
        assert!(classic.accounting.is_none() && classic.passed());
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
