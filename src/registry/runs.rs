//! Runs from the registry's side: `start`, then what the nodes report (task finished, counter
//! replies, final summaries) fed to the run's end rule (`run.rs`), the steps it answers carried
//! out, and the result reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::Registry;
use super::export::Traffic;
use super::progress::ProgressSample;
use super::run::{Goal, PollTiming, Run, Step};
use crate::limits::{
    PACKETS_PER_NODE_MAX, PAYLOAD_BYTES_MAX, TASK_UNTIL_STOPPED, stall_timeout_for,
};
use crate::machine::{Effect, Nanos};
use crate::routing::Fingers;
use crate::stats::RunStats;
use crate::summary::{Ending, Measured, NodeResult, RunResult, thousands};
use crate::wire::{Codec, Control, Counters, LinkCount, NodeId, Targets};

fn seconds(ns: Nanos) -> f64 {
    ns as f64 / 1e9
}

/// What a node whose count of final reports is behind the others' still owes
/// (`Registry::owed_finals`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Owed {
    /// The run whose final request it has not answered (the last that ended).
    run: u32,
    /// Final summaries still to come: one for a node given up on at the end of a run; for a
    /// newcomer, one per run that ended while it set up (at most one: no run starts while a
    /// membership change is under way).
    answers: u32,
    /// A newcomer that was setting up when the run ended (asked when its join went through),
    /// rather than a member given up on.
    joined: bool,
}

impl<C: Codec> Registry<C> {
    /// `start N` or `start Ts`: refused during a run, before the overlay is ready, for a count
    /// above [`PACKETS_PER_NODE_MAX`], a warm-up as long as the run, or when the encoding cannot
    /// carry the task; otherwise every node is told to send N packets, or to send until the
    /// registry says stop; to random nodes, or (`keys`) to random keys of the overlay's space:
    /// Chord's identifiers, or the node-ID space under position fingers.
    pub(super) fn start(&mut self, now: Nanos, goal: Goal, extra_payload_bytes: u32, keys: bool) {
        if self.run.is_some() {
            self.say("start refused: a run is in progress (stop ends it)");
            return;
        }
        let warmup = self.config.warmup;
        let packets = match goal {
            Goal::Packets(packets) if packets > PACKETS_PER_NODE_MAX => {
                self.say(format!(
                    "start refused: {} packets per node is more than a run may send ({}, more \
                     than half a day at ten million packets/s); for a long run give a duration, like \
                     start 3600s",
                    thousands(packets.into()),
                    thousands(PACKETS_PER_NODE_MAX.into())
                ));
                return;
            }
            Goal::Packets(packets) => packets,
            Goal::Duration(_) if !C::PROGRESS_POLLS => {
                self.say(
                    "start refused: a run by time needs the native wire (nodes written to the \
                     classic format cannot be told to stop); give a number of packets",
                );
                return;
            }
            Goal::Duration(duration) if warmup >= duration => {
                self.say(format!(
                    "start refused: the warm-up ({} s) must be shorter than the run ({} s)",
                    seconds(warmup),
                    seconds(duration)
                ));
                return;
            }
            Goal::Duration(_) => TASK_UNTIL_STOPPED,
        };
        // A node that left since is no longer waited for.
        let nodes = &self.nodes;
        self.owed_finals.retain(|id, _| nodes.contains_key(id));
        if let Some((id, owed)) = self.owed_finals.first_key_value() {
            let owing: Vec<String> = self
                .owed_finals
                .keys()
                .map(|id| format!("node {id}"))
                .collect();
            self.say(format!(
                "start refused: {} not answered the final request of run {} yet ({}); until \
                 {}, {} count of runs is behind the others' and would drop this run's packets \
                 as stale. Start again once the registry says it answered, or end {}",
                match owing.len() {
                    1 => format!("node {id} has"),
                    _ => format!("{} have", owing.join(", ")),
                },
                owed.run,
                if owed.joined {
                    "it was joining when that run ended, and was asked once its join went \
                     through"
                } else {
                    "given up on when that run ended: stopped, hung or starved"
                },
                if owing.len() == 1 {
                    "it does"
                } else {
                    "they do"
                },
                if owing.len() == 1 { "its" } else { "their" },
                if owing.len() == 1 { "it" } else { "them" },
            ));
            return;
        }
        let Some(overlay) = self.overlay.as_ref().filter(|o| o.ready) else {
            self.say("start refused: the overlay is not set up (run setup-overlay and wait for \"Registry now ready to initiate tasks.\")");
            return;
        };
        if overlay.changes.busy() {
            self.say(
                "start refused: the membership is changing (a node joins or leaves); start \
                 again once it says so",
            );
            return;
        }
        if extra_payload_bytes as usize > PAYLOAD_BYTES_MAX - 4 {
            self.say(format!(
                "start refused: extra payload of {extra_payload_bytes} bytes exceeds {}",
                PAYLOAD_BYTES_MAX - 4
            ));
            return;
        }
        let targets = match (keys, overlay.fingers) {
            (false, _) => Targets::Nodes,
            (true, Fingers::Chord { bits, .. }) => Targets::Keys { bits },
            (true, Fingers::Positions { .. }) => Targets::Keys {
                bits: self.config.id_bits,
            },
        };
        let number = self.runs_started + 1;
        let initiate = Control::TaskInitiate {
            run: number,
            packets,
            extra_payload_bytes,
            rate_per_s: self.config.rate_per_s,
            targets,
        };
        if let Err(error) = C::encodable(&initiate) {
            self.say(format!("start refused: {error}"));
            return;
        }
        self.runs_started = number;
        self.run_fingers = overlay.fingers;
        let timing = PollTiming {
            progress_interval: match self.config.interval {
                Some(interval) => interval.min(self.config.progress_interval),
                None => self.config.progress_interval,
            },
            drain_interval: self.config.poll_interval,
            stall_timeout: self
                .config
                .stall_timeout
                .unwrap_or_else(|| stall_timeout_for(self.nodes.len())),
            settle: (!C::PROGRESS_POLLS).then_some(self.config.settle),
        };
        let mut run = Run::new(
            number,
            packets,
            extra_payload_bytes,
            overlay.nr,
            self.nodes.keys().copied().collect(),
            now,
            timing,
        )
        .with_warmup(if C::PROGRESS_POLLS { warmup } else { 0 });
        if self.config.node_latency {
            run.node_hop_latency = Some(BTreeMap::new());
        }
        run.targets = targets;
        let mut what = match goal {
            Goal::Packets(packets) => format!("send {} packets each", thousands(packets.into())),
            Goal::Duration(duration) => {
                run = run.by_time(duration);
                format!("send for {} s", seconds(duration))
            }
        };
        if let Targets::Keys { bits } = targets {
            what += &format!(", each to a random key of {bits} bits, delivered at its owner");
        }
        let warmup_note = match run.warmup() {
            Some(warmup) => format!(" (the first {} s are a warm-up)", seconds(warmup)),
            None => String::new(),
        };
        self.run = Some(run);
        self.intervals.start(number);
        self.say(format!(
            "Run {number}: {} nodes {what}{warmup_note}",
            self.nodes.len()
        ));
        self.broadcast(&initiate);
    }

    /// `stop` (or Ctrl-C in scripted mode): ends the run early with its report.
    pub(super) fn stop(&mut self, now: Nanos) {
        let ids = self.run_node_ids();
        let Some(run) = self.run.as_mut() else {
            self.say("stop: no run in progress");
            return;
        };
        let (step, line) = run.stop(now, &ids);
        self.say(line);
        self.apply_step(now, step);
    }

    /// A node originated all its packets.
    pub(super) fn on_task_finished(&mut self, now: Nanos, id: NodeId) {
        let nodes = self.run_nodes();
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
        if reset && self.on_leaver_summary(now, id, (counters, stats.clone(), links.clone())) {
            return;
        }
        if let Some(owed) = self.owed_finals.get_mut(&id) {
            // Answers to the requests of a run that ended without this node's final summary:
            // the final one brings its count of runs level with the others'.
            let run = owed.run;
            if !reset {
                tracing::debug!("{}: a late counter reply of run {run}", self.describe(id));
                return;
            }
            owed.answers = owed.answers.saturating_sub(1);
            if owed.answers > 0 {
                return;
            }
            let joined = owed.joined;
            self.owed_finals.remove(&id);
            let may_start = if self.owed_finals.is_empty() {
                "; a run may start"
            } else {
                ""
            };
            if joined {
                // Asked as its join went through: nothing of the run passed it, so its
                // answer is a formality, told only to the log.
                tracing::info!(
                    "{}: answered the final request of run {run}, which ended while it joined",
                    self.describe(id)
                );
            } else {
                self.say(format!(
                    "{} answered the final request of run {run} at last: its count of runs is \
                     level with the others' again{may_start}",
                    self.describe(id),
                ));
            }
            return;
        }
        let nodes = self.run_nodes();
        let Some(run) = self.run.as_mut() else {
            let line = format!("{}: a traffic summary nobody asked for", self.describe(id));
            self.warn_node(id, &line);
            return;
        };
        let step = if reset {
            run.on_final(id, counters, stats, links, nodes)
        } else {
            let rounds = run.rounds;
            let step = run.on_progress(now, id, counters, stats, links, nodes);
            if run.rounds != rounds
                && let Some(totals) = run.last_totals
            {
                self.rounds += 1;
                let elapsed = now.saturating_sub(run.started_at);
                let goal = run.goal();
                if let Some(line) = self.intervals.observe(
                    elapsed,
                    totals,
                    &run.last_round_stats,
                    goal,
                    nodes,
                    run.warmup(),
                ) {
                    self.effects.push(Effect::Print(line));
                }
                self.progress = Some(ProgressSample {
                    round: self.rounds,
                    run: run.number,
                    elapsed,
                    expected: match goal {
                        Goal::Packets(packets) => packets.saturating_mul(nodes as u64),
                        Goal::Duration(_) => 0,
                    },
                    duration_goal: match goal {
                        Goal::Packets(_) => None,
                        Goal::Duration(duration) => Some(duration),
                    },
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

    /// Newcomer `id` was setting up (its manifest out) when the final requests of `behind`
    /// runs went to the members, and is in now: it is asked for them, so that it counts the
    /// next run with the same run tag as the others, and no run starts until it answered.
    /// Without this each side drops the other's packets of the next run as stale, and that
    /// run stalls. Its answers carry nothing of those runs (it was in none of them).
    pub(super) fn bring_level(&mut self, id: NodeId, behind: u32) {
        for _ in 0..behind {
            self.send_to_node(
                id,
                &Control::SummaryRequest {
                    reset: true,
                    links: false,
                },
            );
        }
        self.owed_finals.insert(
            id,
            Owed {
                run: self.runs_started,
                answers: behind,
                joined: true,
            },
        );
    }

    /// Tells every node to stop sending: a task of no packets (docs/PROTOCOL.md).
    fn broadcast_stop(&mut self) {
        let run = self.run.as_ref().map_or(0, |run| run.number);
        self.broadcast(&Control::TaskInitiate {
            run,
            packets: 0,
            extra_payload_bytes: 0,
            rate_per_s: 0,
            targets: Targets::Nodes,
        });
    }

    /// Carries out what the run decided.
    pub(super) fn apply_step(&mut self, now: Nanos, step: Step) {
        match step {
            Step::Nothing => {}
            Step::PollAll => {
                debug_assert!(C::PROGRESS_POLLS, "a poll without progress polls");
                if C::PROGRESS_POLLS {
                    let links = self.run.as_ref().is_some_and(Run::polls_links);
                    self.broadcast(&Control::SummaryRequest {
                        reset: false,
                        links,
                    });
                }
            }
            Step::CollectAll => {
                // Every node starts the window's next epoch with its final report.
                if let Some(overlay) = self.overlay.as_mut() {
                    overlay.epoch = overlay.epoch.wrapping_add(1);
                }
                self.broadcast(&Control::SummaryRequest {
                    reset: true,
                    links: false,
                })
            }
            Step::StopSending => {
                // A task of no packets is the stop: each node originates nothing more and
                // reports task finished (docs/PROTOCOL.md).
                self.broadcast_stop();
            }
            Step::StopAll => {
                // A task of no packets ends each node's run at once; what is in flight still
                // arrives (or is dropped) and is counted before the final summaries.
                self.broadcast_stop();
                if C::PROGRESS_POLLS {
                    let links = self.run.as_ref().is_some_and(Run::polls_links);
                    self.broadcast(&Control::SummaryRequest {
                        reset: false,
                        links,
                    });
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
        let Some(mut run) = self.run.take() else {
            return;
        };
        // Every packet of the run is counted: the IDs of the nodes that left may be given again.
        self.departed.clear();
        // The nodes asked for a final summary (the run's, still here) that sent none.
        for id in &run.members {
            if self.nodes.contains_key(id)
                && !replies.contains_key(id)
                && !run.left.contains_key(id)
            {
                self.owed_finals.insert(
                    *id,
                    Owed {
                        run: run.number,
                        answers: 1,
                        joined: false,
                    },
                );
            }
        }
        // The nodes that left during the run: their final counters are the run's too.
        let mut replies = replies;
        replies.extend(std::mem::take(&mut run.left));
        let node = replies
            .iter()
            .map(|(id, counters)| {
                let addr = self
                    .nodes
                    .get(id)
                    .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |n| n.addr);
                let mut row = NodeResult::new(*id, addr, counters);
                row.chord_id = self.chord_identifier(*id).map(|id| format!("{id:x}"));
                row
            })
            .collect();
        let duration_s = seconds(now.saturating_sub(run.started_at));
        if let Some(line) = self.intervals.finish() {
            self.say(line);
        }
        let received: u64 = replies.values().map(|c| c.received).sum();
        let relayed: u64 = replies.values().map(|c| c.relayed).sum();
        let mut stats = std::mem::take(&mut run.stats);
        let measured = if let Some(mark) = run.warmup_mark() {
            stats.remove_latency_of(mark.before);
            Some(Measured {
                seconds: seconds(now.saturating_sub(mark.at)),
                received: received.saturating_sub(mark.totals.received),
                relayed: relayed.saturating_sub(mark.totals.relayed),
                excluded: format!(
                    "a {:.1} s warm-up",
                    seconds(mark.at.saturating_sub(run.started_at))
                ),
            })
        } else {
            None
        };
        if let (Some(warmup), None) = (run.warmup(), run.warmup_mark()) {
            self.say(format!(
                "Run {}: the nodes stopped sending before the {} s warm-up ended: nothing was \
                 left out of the figures",
                run.number,
                seconds(warmup)
            ));
        }
        let ending = Ending {
            duration_goal_s: match run.goal() {
                Goal::Duration(duration) => Some(seconds(duration)),
                Goal::Packets(_) => None,
            },
            stopped_after_s: run
                .stopped_early_at
                .map(|at| seconds(at.saturating_sub(run.started_at))),
            measured,
            // Without polls the end of a run is a wait, and the rates include it.
            expected_sent: run.expected_sent(&replies),
            settle: match (C::PROGRESS_POLLS, run.all_finished_at) {
                (false, Some(finished)) => Some((
                    seconds(now.saturating_sub(finished)),
                    seconds(finished.saturating_sub(run.started_at)),
                )),
                _ => None,
            },
            crashed: run.crashed().to_vec(),
        };
        let packets_per_node = match run.goal() {
            Goal::Packets(packets) => packets,
            Goal::Duration(_) => 0,
        };
        let result = RunResult::ended(
            ending,
            run.nr,
            packets_per_node,
            run.extra_payload_bytes,
            duration_s,
            node,
            failures,
        )
        .with_links(&run.members, &run.links)
        .with_stats(stats)
        .with_targets(run.targets.name())
        .with_fingers(
            self.run_fingers.name(),
            match self.run_fingers {
                Fingers::Chord { bits, .. } => Some(bits),
                Fingers::Positions { .. } => None,
            },
        );
        self.say(format!("Run {} summary:\n{}", run.number, result.table()));
        // What each link carried, for `export-overlay`: the run's own rows, moved (none from
        // nodes that count no links: the classic format).
        if let Some(overlay) = self.overlay.as_mut()
            && run.links.values().any(|rows| !rows.is_empty())
        {
            let packets = std::mem::take(&mut run.links)
                .into_iter()
                .flat_map(|(node, rows)| {
                    rows.into_iter()
                        .filter(move |row| row.peer != node)
                        .map(move |row| ((node, row.peer), row.sent))
                })
                .collect();
            overlay.traffic = Some(Traffic {
                run: run.number,
                packets,
            });
        }
        self.results.push(result);
        self.resume_parked_leaves(now);
        self.script_next();
    }

    /// Node `id` was lost during the run (`why`): with progress polls the run goes on without
    /// it, since the others route around it at once (backup entries, `chord::churn`), and its
    /// end accounts for every packet, those it held included (`Run::on_crash`); without them
    /// (the classic format, whose nodes cannot say what they handed it) the run fails.
    pub(super) fn lost_during_run(&mut self, now: Nanos, id: NodeId, why: String) {
        if !C::PROGRESS_POLLS {
            self.fail_run(now, why);
            return;
        }
        let nodes = self.run_nodes();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let number = run.number;
        let step = run.on_crash(now, id, nodes);
        self.say(format!(
            "Run {number}: {why}; the run goes on without it (the others route around it), \
             and its end accounts for the packets it held"
        ));
        self.apply_step(now, step);
    }

    /// Ends the current run as FAIL (a node left): the surviving nodes are asked for their
    /// final summaries, so the report shows what they counted.
    pub(super) fn fail_run(&mut self, now: Nanos, why: String) {
        let nodes = self.run_nodes();
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
