//! The scripted mode (`--nodes N --start P` or `--duration S`): wait for the nodes, set up the
//! overlay, run, report, exit (status 0 only if every run passed; 1 if the overlay is not ready
//! in time; 130 after Ctrl-C, unless a run failed).

use super::{Goal, Registry};
use crate::machine::{Effect, Nanos};
use crate::routing::Fingers;
use crate::summary::RunResult;
use crate::wire::Codec;

/// A scripted session: wait for nodes, set up, run, report, exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub nodes: usize,
    /// The finger rule (and NR, or the identifiers) `setup-overlay` is given.
    pub fingers: Fingers,
    pub goal: Goal,
    pub runs: u32,
    pub extra_payload_bytes: u32,
    /// Each packet to a random key (`--targets keys`) instead of a random node.
    pub keys: bool,
    /// The overlay must be registered and set up within this long after start.
    pub ready_timeout: Nanos,
    /// `--export-overlay FILE`: after the last run, the overlay as `export-overlay FILE`
    /// writes it, with that run's traffic.
    pub export_overlay: Option<String>,
}

impl<C: Codec> Registry<C> {
    /// Sets the overlay up once the scripted number of nodes registered (exit 2 if that is
    /// refused).
    pub(super) fn maybe_script_setup(&mut self) {
        if let Some(script) = &self.config.script
            && self.nodes.len() == script.nodes
            && self.overlay.is_none()
            && self.results.is_empty()
        {
            let fingers = script.fingers;
            self.setup_overlay(fingers);
            if self.overlay.is_none() {
                self.effects.push(Effect::Exit(2));
            }
        }
    }

    /// The first scripted run starts once the overlay is ready.
    pub(super) fn maybe_script_start(&mut self) {
        if let Some(script) = self.config.script.clone()
            && self.results.is_empty()
            && self.run.is_none()
        {
            // Started by the next tick (due at once), after the rest of the events at hand.
            self.pending_script_start =
                Some((script.goal, script.extra_payload_bytes, script.keys));
        }
    }

    /// Ctrl-C in scripted mode (the driver's signal handling calls this). The first ends the
    /// current run early with its report, and the session after it; between runs, or the
    /// second time, the registry exits at once. Exit status 130 (128 + SIGINT, as shells
    /// report an interrupted command) unless a run failed.
    pub fn interrupt(&mut self, now: Nanos) {
        self.interrupts += 1;
        self.pending_script_start = None;
        if self.interrupts == 1 && self.run.is_some() {
            self.say(
                "Interrupted: the run ends early with its report (Ctrl-C again exits at once)",
            );
            self.stop(now);
            return;
        }
        self.say(if self.interrupts == 1 {
            "Interrupted: exiting"
        } else {
            "Interrupted again: exiting at once"
        });
        self.effects.push(Effect::Exit(130));
    }

    /// After a run: the next scripted one, or exit (0 only if every run passed).
    pub(super) fn script_next(&mut self) {
        let Some(script) = self.config.script.clone() else {
            return;
        };
        let all_passed = self.results.all_passed();
        let last = self.interrupts > 0 || !(self.results.completed() < script.runs && all_passed);
        if let (true, Some(path)) = (last, script.export_overlay) {
            self.export_overlay(path);
        }
        if self.interrupts > 0 {
            let failed = self
                .results
                .recent()
                .back()
                .is_some_and(|run| run.verdict == "FAIL");
            self.effects
                .push(Effect::Exit(if failed { 1 } else { 130 }));
        } else if self.results.completed() < script.runs && all_passed {
            self.pending_script_start =
                Some((script.goal, script.extra_payload_bytes, script.keys));
        } else {
            // 3: every run accounted for every packet, but nodes crashed (docs/USAGE.md).
            let code = if all_passed {
                0
            } else if self.results.all_accounted() {
                3
            } else {
                1
            };
            // After the changes under way (a leave put off until the run's end: each stage
            // waits at most the stall timeout), by the next tick.
            self.pending_script_exit = Some(code);
        }
    }

    /// Gives up when the overlay is not ready by the deadline (one FAIL result, exit 1); true
    /// if it did.
    pub(super) fn give_up_unless_ready(&mut self, now: Nanos) -> bool {
        if self.is_ready() || !self.results.is_empty() {
            self.ready_deadline = None;
        }
        if let (Some(deadline), Some(script)) = (self.ready_deadline, self.config.script.clone())
            && now >= deadline
        {
            self.ready_deadline = None;
            let why = format!(
                "the overlay was not ready within {} s: {} of {} nodes registered{}",
                script.ready_timeout as f64 / 1e9,
                self.nodes.len(),
                script.nodes,
                match &self.overlay {
                    Some(overlay) =>
                        format!(", {} had not reported setup success", overlay.waiting.len()),
                    None => String::new(),
                }
            );
            let nr = match script.fingers {
                Fingers::Positions { nr } => nr,
                Fingers::Chord { .. } => 0,
            };
            let result = RunResult::new(
                nr,
                match script.goal {
                    Goal::Packets(packets) => packets,
                    Goal::Duration(_) => 0,
                },
                script.extra_payload_bytes,
                0.0,
                Vec::new(),
                vec![why],
            );
            self.say(result.verdict_line());
            self.results.push(result);
            self.effects.push(Effect::Exit(1));
            return true;
        }
        false
    }
}
