//! The JSON results: a registry's result file, its settings, and one run at the console.

use serde::Serialize;

use super::{RunResult, Totals};

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
    /// What the last run's packets were addressed to: "nodes" or "keys".
    pub targets: Option<&'static str>,
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
