//! Every run of a session added together, in bounded memory.

use std::collections::BTreeMap;

use super::result::PASS_WITH_CRASHES;
use super::{Ending, Measured, NodeResult, RunResult, ScriptResult};
use crate::limits::TOTAL_FAILURES_MAX;
use crate::stats::RunStats;
use crate::wire::NodeId;

/// Every run of a session added together, one run at a time, in bounded memory: node rows by
/// ID, the histograms merged, and at most [`TOTAL_FAILURES_MAX`] failure lines.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    runs: u32,
    nr: usize,
    finger_rule: &'static str,
    chord_bits: Option<u32>,
    targets: &'static str,
    extra_payload_bytes: u32,
    nodes_max: usize,
    packets_per_node: u64,
    packets_expected: u64,
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
    /// Nodes that crashed in some run (each once; at most every node of the overlay).
    crashed: Vec<NodeId>,
}

impl Totals {
    /// Adds a run (whose `raw_stats` still hold its histograms).
    pub fn add(&mut self, run: &RunResult) {
        self.runs += 1;
        if self.runs == 1 {
            self.nr = run.nr;
            self.finger_rule = run.finger_rule;
            self.chord_bits = run.chord_bits;
            self.targets = run.targets;
            self.extra_payload_bytes = run.extra_payload_bytes;
        }
        self.nodes_max = self.nodes_max.max(run.nodes);
        self.packets_per_node = self.packets_per_node.saturating_add(run.packets_per_node);
        self.packets_expected = self.packets_expected.saturating_add(run.packets_expected);
        self.duration_s += run.duration_s;
        if let Some(goal) = run.duration_goal_s {
            self.timed = true;
            self.goal_s += goal;
        }
        self.stopped |= run.stopped_after_s.is_some() && !run.accounted_for();
        for id in &run.crashed {
            if !self.crashed.contains(id) {
                self.crashed.push(*id);
            }
        }
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
                    m.stale = m.stale.saturating_add(n.stale);
                    m.links_cut = m.links_cut.saturating_add(n.links_cut);
                    m.relay_bound_drops = m.relay_bound_drops.saturating_add(n.relay_bound_drops);
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
            crashed: Vec::new(),
            expected_sent: Some(self.packets_expected),
        };
        let run_failures = failures.clone();
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
        .with_fingers(self.finger_rule, self.chord_bits)
        .with_targets(self.targets);
        total.nodes = self.nodes_max;
        if !self.crashed.is_empty() {
            // Runs with crashes account for their packets each on its own (per link); their
            // sums do not add up together. The session is theirs: PASS with crashes when
            // every run passed or passed with crashes.
            total.crashed = self.crashed.clone();
            total.verdict = if run_failures.is_empty() {
                PASS_WITH_CRASHES
            } else {
                "FAIL"
            };
            total.failures = run_failures;
        }
        Some(ScriptResult {
            settings: None,
            total,
            runs_completed: self.runs,
            runs: kept,
        })
    }
}
