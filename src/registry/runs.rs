//! Runs from the registry's side: `start`, then what the nodes report (task finished, counter
//! replies, final summaries) fed to the run's end rule (`run.rs`), the steps it answers carried
//! out, and the result reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::Registry;
use super::progress::ProgressSample;
use super::run::{PollTiming, Run, Step};
use crate::limits::PAYLOAD_BYTES_MAX;
use crate::machine::Nanos;
use crate::stats::RunStats;
use crate::summary::{NodeResult, RunResult};
use crate::wire::{Codec, Control, Counters, LinkCount, NodeId};

impl<C: Codec> Registry<C> {
    /// `start N`: refused during a run, before the overlay is ready, or when the encoding
    /// cannot carry the task; otherwise every node is told to send N packets.
    pub(super) fn start(&mut self, now: Nanos, packets: u64, extra_payload_bytes: u32) {
        if self.run.is_some() {
            self.say("start refused: a run is in progress");
            return;
        }
        let Some(overlay) = self.overlay.as_ref().filter(|o| o.ready) else {
            self.say("start refused: the overlay is not set up (run setup-overlay and wait for \"Registry now ready to initiate tasks.\")");
            return;
        };
        if extra_payload_bytes as usize > PAYLOAD_BYTES_MAX - 4 {
            self.say(format!(
                "start refused: extra payload of {extra_payload_bytes} bytes exceeds {}",
                PAYLOAD_BYTES_MAX - 4
            ));
            return;
        }
        let number = self.runs_started + 1;
        let initiate = Control::TaskInitiate {
            run: number,
            packets,
            extra_payload_bytes,
            rate_per_s: self.config.rate_per_s,
        };
        if let Err(error) = C::encodable(&initiate) {
            self.say(format!("start refused: {error}"));
            return;
        }
        self.runs_started = number;
        let timing = PollTiming {
            progress_interval: self.config.progress_interval,
            drain_interval: self.config.poll_interval,
            stall_timeout: self.config.stall_timeout,
            settle: (!C::PROGRESS_POLLS).then_some(self.config.settle),
        };
        self.run = Some(Run::new(
            number,
            packets,
            extra_payload_bytes,
            overlay.nr,
            self.nodes.keys().copied().collect(),
            now,
            timing,
        ));
        self.say(format!(
            "Run {number}: {} nodes send {packets} packets each",
            self.nodes.len()
        ));
        self.broadcast(&initiate);
    }

    /// A node originated all its packets.
    pub(super) fn on_task_finished(&mut self, now: Nanos, id: NodeId) {
        let nodes = self.nodes.len();
        let Some(run) = self.run.as_mut() else {
            let line = format!("{}: task finished outside a run", self.describe(id));
            self.warn_node(id, &line);
            return;
        };
        let step = run.on_finished(now, id, nodes);
        self.apply_step(now, step);
    }

    /// A node's counters: a progress reply (`reset` false: kept) or its final summary.
    pub(super) fn on_summary(
        &mut self,
        now: Nanos,
        id: NodeId,
        reset: bool,
        counters: Counters,
        stats: Option<RunStats>,
        links: Vec<LinkCount>,
    ) {
        let nodes = self.nodes.len();
        let Some(run) = self.run.as_mut() else {
            let line = format!("{}: a traffic summary nobody asked for", self.describe(id));
            self.warn_node(id, &line);
            return;
        };
        let step = if reset {
            run.on_final(id, counters, stats, links, nodes)
        } else {
            let rounds = run.rounds;
            let step = run.on_progress(now, id, counters, stats, nodes);
            if run.rounds != rounds
                && let Some(totals) = run.last_totals
            {
                self.rounds += 1;
                self.progress = Some(ProgressSample {
                    round: self.rounds,
                    run: run.number,
                    elapsed: now.saturating_sub(run.started_at),
                    expected: run.packets.saturating_mul(nodes as u64),
                    sent: totals.sent,
                    received: totals.received,
                    relayed: totals.relayed,
                    corrupted: totals.corrupted,
                    dropped: totals.dropped,
                    latency: run.last_window,
                });
            }
            step
        };
        self.apply_step(now, step);
    }

    /// Carries out what the run decided.
    pub(super) fn apply_step(&mut self, now: Nanos, step: Step) {
        match step {
            Step::Nothing => {}
            Step::PollAll => {
                debug_assert!(C::PROGRESS_POLLS, "a poll without progress polls");
                if C::PROGRESS_POLLS {
                    self.broadcast(&Control::SummaryRequest { reset: false });
                }
            }
            Step::CollectAll => self.broadcast(&Control::SummaryRequest { reset: true }),
            Step::StopAll => {
                // A task of no packets ends each node's run at once; what is in flight still
                // arrives (or is dropped) and is counted before the final summaries.
                let run = self.run.as_ref().map_or(0, |run| run.number);
                self.broadcast(&Control::TaskInitiate {
                    run,
                    packets: 0,
                    extra_payload_bytes: 0,
                    rate_per_s: 0,
                });
                if C::PROGRESS_POLLS {
                    self.broadcast(&Control::SummaryRequest { reset: false });
                }
            }
            Step::Finish { replies, failures } => self.finish_run(now, replies, failures),
        }
    }

    /// The run is over: its result is printed and kept, and a script goes on.
    fn finish_run(
        &mut self,
        now: Nanos,
        replies: BTreeMap<NodeId, Counters>,
        failures: Vec<String>,
    ) {
        let Some(run) = self.run.take() else {
            return;
        };
        let node = replies
            .iter()
            .map(|(id, counters)| {
                let addr = self
                    .nodes
                    .get(id)
                    .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |n| n.addr);
                NodeResult::new(*id, addr, counters)
            })
            .collect();
        let duration_s = now.saturating_sub(run.started_at) as f64 / 1e9;
        let result = RunResult::new(
            run.nr,
            run.packets,
            run.extra_payload_bytes,
            duration_s,
            node,
            failures,
        )
        .with_links(&run.members, &run.links)
        .with_stats(run.stats);
        self.say(format!("Run {} summary:\n{}", run.number, result.table()));
        self.results.push(result);
        self.script_next();
    }

    /// Ends the current run as FAIL (a node left): the surviving nodes are asked for their
    /// final summaries, so the report shows what they counted.
    pub(super) fn fail_run(&mut self, now: Nanos, why: String) {
        let nodes = self.nodes.len();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let number = run.number;
        let first = run.fail(now, why.clone());
        let collected = run.check_collected(nodes);
        self.say(format!("Run {number} FAIL: {why}"));
        self.apply_step(now, first);
        self.apply_step(now, collected);
    }
}
