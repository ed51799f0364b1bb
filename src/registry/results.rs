//! The results a registry keeps: every run added into one total, and the last runs in full,
//! within a bound however many runs an operator starts at the console or asks of a script.

use std::collections::VecDeque;

use crate::limits::{RESULTS_KEPT_NODE_ROWS_MAX, RESULTS_KEPT_RUNS_MAX};
use crate::stats::RunStats;
use crate::summary::{RunResult, ScriptResult, Totals};

/// Completed runs: a total of all of them and the most recent in full.
#[derive(Debug, Default)]
pub struct Results {
    totals: Totals,
    /// The most recent runs, oldest first, without their histograms (the total holds those).
    recent: VecDeque<RunResult>,
    /// Node rows in `recent`.
    rows: usize,
    all_passed: bool,
    /// Every run passed, or passed with crashes.
    all_accounted: bool,
}

impl Results {
    /// Adds a completed run; drops the oldest kept runs beyond the bounds (always keeping
    /// this one).
    pub fn push(&mut self, mut result: RunResult) {
        self.all_passed = (self.totals.runs() == 0 || self.all_passed) && result.passed();
        self.all_accounted =
            (self.totals.runs() == 0 || self.all_accounted) && result.accounted_for();
        self.totals.add(&result);
        result.raw_stats = RunStats::default();
        self.rows += result.node.len();
        self.recent.push_back(result);
        while self.recent.len() > 1
            && (self.recent.len() > RESULTS_KEPT_RUNS_MAX || self.rows > RESULTS_KEPT_NODE_ROWS_MAX)
        {
            if let Some(old) = self.recent.pop_front() {
                self.rows -= old.node.len();
            }
        }
    }

    /// Runs completed so far.
    pub fn completed(&self) -> u32 {
        self.totals.runs()
    }

    /// True before the first run completed.
    pub fn is_empty(&self) -> bool {
        self.completed() == 0
    }

    /// Whether at least one run completed and every one passed.
    pub fn all_passed(&self) -> bool {
        !self.is_empty() && self.all_passed
    }

    /// Whether every run passed or passed with crashes (every packet accounted for), and
    /// there was at least one.
    pub fn all_accounted(&self) -> bool {
        !self.is_empty() && self.all_accounted
    }

    /// The hop counts and latency histograms of every completed run, added together.
    pub fn stats(&self) -> &RunStats {
        self.totals.stats()
    }

    /// The kept runs, oldest first: the last `recent().len()` of `completed()`.
    pub fn recent(&self) -> &VecDeque<RunResult> {
        &self.recent
    }

    /// The session's result file: the total and the kept runs; `None` before any run.
    pub fn file(&self) -> Option<ScriptResult> {
        self.totals.result(self.recent.iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::NodeResult;
    use crate::wire::Counters;

    fn run(nodes: u32, passed: bool) -> RunResult {
        let rows = (0..nodes)
            .map(|id| {
                NodeResult::new(
                    id,
                    "127.0.0.1:1".parse().unwrap(),
                    &Counters {
                        sent: 5,
                        received: 5,
                        ..Counters::default()
                    },
                )
            })
            .collect();
        let failures = if passed { vec![] } else { vec!["no".into()] };
        RunResult::new(3, 5, 0, 1.0, rows, failures)
    }

    #[test]
    fn many_runs_keep_a_bounded_tail_and_a_whole_total() {
        let mut results = Results::default();
        assert!(results.is_empty() && !results.all_passed() && results.file().is_none());
        let count = RESULTS_KEPT_RUNS_MAX as u32 + 10;
        for _ in 0..count {
            results.push(run(4, true));
        }
        assert_eq!(results.completed(), count);
        assert_eq!(results.recent().len(), RESULTS_KEPT_RUNS_MAX);
        assert!(results.all_passed());
        let file = results.file().unwrap();
        assert_eq!(file.runs_completed, count);
        assert_eq!(file.runs.len(), RESULTS_KEPT_RUNS_MAX);
        assert_eq!(file.total.packets_sent, 4 * 5 * u64::from(count));
        assert!(file.total.passed());
        results.push(run(4, false));
        assert!(!results.all_passed());
        results.push(run(4, true));
        assert!(!results.all_passed(), "one failed run fails the session");
    }

    #[test]
    fn large_overlays_keep_fewer_runs_but_always_the_last() {
        let mut results = Results::default();
        let nodes = (RESULTS_KEPT_NODE_ROWS_MAX / 2 + 1) as u32;
        results.push(run(nodes, true));
        results.push(run(nodes, true));
        assert_eq!(results.recent().len(), 1);
        let huge = (RESULTS_KEPT_NODE_ROWS_MAX + 1) as u32;
        results.push(run(huge, true));
        assert_eq!(results.recent().len(), 1);
        assert_eq!(results.recent()[0].node.len(), huge as usize);
        assert_eq!(results.completed(), 3);
    }
}
