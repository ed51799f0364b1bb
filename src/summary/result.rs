//! A run's result: the counters of every node added up and checked, and its verdict.

use std::net::SocketAddr;

use serde::Serialize;

use super::accounting::Accounting;
use super::format::thousands;
use crate::stats::{RunStats, StatsSummary};
use crate::wire::{Counters, NodeId};

/// One node's counters in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeResult {
    pub id: NodeId,
    pub address: String,
    /// Chord fingers: the node's identifier, in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chord_id: Option<String>,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_relayed: u64,
    pub sum_sent: i64,
    pub sum_received: i64,
    pub corrupted: u64,
    pub dropped: u64,
    /// Packets of an earlier run that reached this node as sink, dropped (`Counters::stale`).
    pub stale: u64,
    /// Inbound links this node cut for the relay bound (`Counters::links_cut`).
    pub links_cut: u64,
    /// Frames this node dropped for the relay bound (`Counters::relay_bound_drops`).
    pub relay_bound_drops: u64,
}

impl NodeResult {
    pub fn new(id: NodeId, address: SocketAddr, counters: &Counters) -> NodeResult {
        NodeResult {
            id,
            address: address.to_string(),
            chord_id: None,
            packets_sent: counters.sent,
            packets_received: counters.received,
            packets_relayed: counters.relayed,
            sum_sent: counters.sum_sent,
            sum_received: counters.sum_received,
            corrupted: counters.corrupted,
            dropped: counters.dropped,
            stale: counters.stale,
            links_cut: counters.links_cut,
            relay_bound_drops: counters.relay_bound_drops,
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
    /// "nodes" (each packet to a random other node) or "keys" (to a random key, delivered at
    /// its owner).
    pub targets: &'static str,
    /// Packets each node was told to send.
    pub packets_per_node: u64,
    pub extra_payload_bytes: u32,
    /// Packets the run was to send in all (each node's count, less what nodes that left
    /// during the run did not send, and nothing from nodes that joined during it).
    pub packets_expected: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_relayed: u64,
    /// Sums over nodes, in i128 so that no total can overflow.
    pub sum_sent: i128,
    pub sum_received: i128,
    pub corrupted: u64,
    pub dropped: u64,
    /// Packets of earlier runs that arrived during this one: dropped by their sinks, not
    /// counted as received, foreign or lost (a run ended by `stop` or by a failure leaves
    /// some on their way).
    pub stale: u64,
    /// Inbound links the nodes cut for asking one node to queue more than the relay bound.
    pub links_cut: u64,
    /// Frames the nodes dropped because their inbound links together had the relay bound
    /// queued.
    pub relay_bound_drops: u64,
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
    /// verdict on what was sent, not on the count asked for); [`PASS_WITH_CRASHES`]: nodes
    /// crashed during the run and every packet is accounted for (delivered intact, or handed
    /// to a crashed node: delivered there or lost with it), nothing else went wrong; or "FAIL".
    pub verdict: &'static str,
    /// Nodes lost during the run (killed, or their connection gone) while the others went on
    /// routing around them; their packets are in `accounting`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crashed: Vec<NodeId>,
    /// Why the run failed (empty on PASS).
    pub failures: Vec<String>,
    /// What happened that is no failure by itself: stale packets, links cut for the relay
    /// bound (a flood from a peer that is no honest node).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
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
    /// Nodes lost during the run that the others went on without: the counts of the nodes
    /// that reported cannot add up by themselves, and only a per-link account
    /// ([`RunResult::with_links`]) can say that every packet is accounted for.
    pub crashed: Vec<NodeId>,
    /// Packets the nodes were to send in all, when not every node had the whole run to send
    /// its count (nodes that joined during it send from the next run; nodes that left sent
    /// what they had when they left); `None`: every node's count.
    pub expected_sent: Option<u64>,
}

/// The verdict of a run with crashes in which every packet is accounted for.
pub const PASS_WITH_CRASHES: &str = "PASS_WITH_CRASHES";

/// A run with crashes fails until its per-link account says otherwise.
pub(super) const CRASHES_NOT_ACCOUNTED: &str =
    "nodes crashed during the run, and no per-link counts account for their packets";

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
            targets: "nodes",
            packets_per_node,
            extra_payload_bytes,
            packets_expected: 0,
            packets_sent: 0,
            packets_received: 0,
            packets_relayed: 0,
            sum_sent: 0,
            sum_received: 0,
            corrupted: 0,
            dropped: 0,
            stale: 0,
            links_cut: 0,
            relay_bound_drops: 0,
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
            crashed: ending.crashed,
            failures: Vec::new(),
            notes: Vec::new(),
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
            total.stale = total.stale.saturating_add(n.stale);
            total.links_cut = total.links_cut.saturating_add(n.links_cut);
            total.relay_bound_drops = total.relay_bound_drops.saturating_add(n.relay_bound_drops);
        }
        // What the relay bound did, by node: a run that fails for a flood says so.
        for n in &total.node {
            if n.relay_bound_drops > 0 {
                failures.push(format!(
                    "node {} dropped {} frames to relay: its inbound links together had more \
                     queued than honest traffic ever has (a flood from a peer that is no honest \
                     node)",
                    n.id,
                    thousands(n.relay_bound_drops.into())
                ));
            }
            if n.links_cut > 0 {
                total.notes.push(format!(
                    "node {} cut {} inbound links that asked it alone to queue more than honest \
                     traffic ever does (no honest node's links)",
                    n.id,
                    thousands(n.links_cut.into())
                ));
            }
        }
        if total.stale > 0 {
            total.notes.push(format!(
                "{} stale packets of an earlier run arrived and were dropped (not counted)",
                thousands(total.stale.into())
            ));
        }
        let expected = ending
            .expected_sent
            .unwrap_or_else(|| packets_per_node.saturating_mul(total.nodes as u64));
        total.packets_expected = expected;
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
        if !total.crashed.is_empty() {
            // Packets to and from the crashed nodes: only the per-link account can tell.
            failures.push(CRASHES_NOT_ACCOUNTED.to_string());
        } else if total.packets_received != total.packets_sent {
            failures.push(format!(
                "{} packets sent but {} received",
                thousands(total.packets_sent.into()),
                thousands(total.packets_received.into())
            ));
        }
        if total.sum_received != total.sum_sent && total.crashed.is_empty() {
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

    /// Records the finger rule (`"positions"` or `"chord"`) and Chord's identifier bits.
    pub fn with_fingers(mut self, finger_rule: &'static str, chord_bits: Option<u32>) -> RunResult {
        self.finger_rule = finger_rule;
        self.chord_bits = chord_bits;
        self
    }

    /// Records what the packets were addressed to (`"nodes"` or `"keys"`).
    pub fn with_targets(mut self, targets: &'static str) -> RunResult {
        self.targets = targets;
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

    /// PASS, or PASS with crashes: every packet accounted for, nothing else wrong.
    pub fn accounted_for(&self) -> bool {
        self.passed() || self.verdict == PASS_WITH_CRASHES
    }
}
