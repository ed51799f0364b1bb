//! One run, from `start` to its result: which nodes finished, the counter polls, and the rule
//! that decides the overlay is quiet (docs/ARCHITECTURE.md, "The end of a run").
//!
//! The registry polls every node's counters (without resetting them) all through a run: once
//! a second while nodes are sending (progress, and a hung node is noticed), then every
//! millisecond or so once all have finished (backing off while nothing changes). Two
//! consecutive rounds after the last task-finished with equal totals, and every packet sent
//! accounted for, end the run: then the final summaries are collected. A round some node
//! never answers, or totals that stop changing, for `stall_timeout` end it as FAIL.
//!
//! With an encoding that has no progress polls (the classic one: every summary request resets
//! the node's counters) there is nothing to poll: the run waits for every task-finished, then
//! for the settle time, then collects the final summaries. A node that has not finished
//! `stall_timeout` after the last task-finished of the others fails the run, naming it.
//!
//! Every deadline is counted in time the registry ran, never in time it was stopped
//! (SIGSTOP, Ctrl-Z) or starved. `now` is CLOCK_MONOTONIC, which keeps counting while the
//! process is stopped: a registry stopped for longer than the stall timeout would wake with its
//! round's deadline past, before it read the replies waiting in its sockets (or even before the
//! poll it decided on last left it), and blame nodes that answered at once. The run asks its
//! loop to be woken by [`Run::next_tick`]; when it is entered more than
//! [`REGISTRY_LATE_NS_MAX`] after that time, the registry did not run for a while, and since it
//! cannot tell which part of the time since it last ran was lost, it counts none of it: every
//! pending deadline and time mark moves by the whole time since its previous call
//! ([`Run::catch_up`]). The run then goes on as if the clock had stopped with the registry:
//! a round sent just before the pause gets its full stall timeout again, now that the registry
//! runs to hear the answers. A node that is truly silent is still named, once the registry has
//! run for the rest of its stall timeout; a registry that is late for a deadline every time by
//! more than [`REGISTRY_LATE_NS_MAX`] is not running, and judges no one. A pause too short to
//! be told from scheduling noise is not discounted, but the replies that came during it are
//! read before the tick that judges them (the driver's rule: `io::event_loop`).
//!
//! That holds only for a pause after the request left. A request decided just before a pause
//! leaves when the registry runs again, so its round's deadline cannot count from the
//! decision: a pause that ended less than [`REGISTRY_LATE_NS_MAX`] after that deadline would
//! be judged at once, before any node could answer. So a counter poll's and the final
//! summaries' deadline counts from when the driver says that everything the registry sent has
//! reached the kernel ([`Run::on_handed`]: every send started, none held back, each one's
//! completion in; `now` read after). Each node then has the whole stall timeout with the
//! request in its socket, and what it answered in that time is read before the tick that
//! judges it: no pause of the registry, wherever it falls, takes time from it. Until the
//! driver says so (a peer that does not read holds it back), the deadline counts from the
//! decision, as without the driver's word (the simulator).

use std::collections::{BTreeMap, BTreeSet};

use crate::limits::{DRAIN_POLL_BACKOFF_MAX, QUIET_AFTER_FAILURE_NS, REGISTRY_LATE_NS_MAX};
use crate::machine::Nanos;
use crate::stats::{HopLatencyBuckets, LatencySummary, RunStats};
use crate::wire::{Counters, LinkCount, NodeId, Targets};

/// What a run is asked to do: send a number of packets from every node, or send for a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Every node originates this many packets.
    Packets(u64),
    /// Every node originates until this long after the start, when the registry tells it to
    /// stop (a task of 0 packets); then the run drains and verifies like any other.
    Duration(Nanos),
}

/// Timing of the polls.
#[derive(Debug, Clone, Copy)]
pub struct PollTiming {
    /// Between progress rounds while nodes are still sending.
    pub progress_interval: Nanos,
    /// First pause between rounds once all have finished (doubles while nothing changes, up to
    /// [`DRAIN_POLL_BACKOFF_MAX`] times this).
    pub drain_interval: Nanos,
    /// A round unanswered, totals unchanged, or final summaries missing for this long fail
    /// the run.
    pub stall_timeout: Nanos,
    /// `Some`: no polls at all (the encoding has none); after the last task-finished wait
    /// this long, then collect the final summaries.
    pub settle: Option<Nanos>,
}

/// Totals of one round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    pub relayed: u64,
    pub corrupted: u64,
    pub dropped: u64,
}

impl Totals {
    fn of<'a>(counters: impl Iterator<Item = &'a Counters>) -> Totals {
        counters.fold(Totals::default(), |mut t, c| {
            t.sent += c.sent;
            t.received += c.received;
            t.relayed += c.relayed;
            t.corrupted += c.corrupted;
            t.dropped += c.dropped;
            t
        })
    }

    /// Packets that arrived somewhere: received or found corrupted at a sink, or dropped.
    pub fn counted(&self) -> u64 {
        self.received + self.corrupted + self.dropped
    }

    /// Every packet sent is received, corrupted or dropped.
    pub fn accounted(&self) -> bool {
        self.counted() == self.sent
    }

    /// `N packets unaccounted for`, or `N packets more counted than sent (foreign traffic)`.
    fn unaccounted_text(&self) -> String {
        let counted = self.counted();
        if counted > self.sent {
            format!(
                "{} packets more counted than sent (foreign traffic)",
                counted - self.sent
            )
        } else {
            format!("{} packets unaccounted for", self.sent - counted)
        }
    }
}

#[derive(Debug)]
enum Phase {
    /// Nodes are originating; these have finished.
    Sending { finished: BTreeSet<NodeId> },
    /// Every node finished; polling until the overlay is quiet.
    Draining,
    /// Every node finished and there is no poll: waiting for the settle time to pass.
    Settling { until: Nanos },
    /// The run failed: every node was told to stop originating; waiting until what is still
    /// in flight has arrived or been dropped (totals unchanged for [`QUIET_AFTER_FAILURE_NS`]), or
    /// the settle time has passed, so that nothing of this run leaks into the next one.
    Stopping {
        failures: Vec<String>,
        /// Collect by then whatever happens (settle mode: when the settle time is over).
        until: Nanos,
    },
    /// Final summaries requested, after a quiet overlay or after a failure.
    Collecting {
        replies: BTreeMap<NodeId, Counters>,
        failures: Vec<String>,
        deadline: Nanos,
    },
}

/// What the registry must do next for the run.
#[derive(Debug, PartialEq)]
pub enum Step {
    Nothing,
    /// Ask every node for its counters without reset.
    PollAll,
    /// Ask every node for its final summary (reset).
    CollectAll,
    /// Tell every node to stop originating (a task of 0 packets), and poll if there are polls.
    StopAll,
    /// Tell every node to stop originating (the time of a run by time is up, or `stop`); each
    /// reports task finished, and the run ends by the usual rule.
    StopSending,
    /// The run is over: these final counters, these failures.
    Finish {
        replies: BTreeMap<NodeId, Counters>,
        failures: Vec<String>,
    },
}

/// The counter polls.
#[derive(Debug)]
struct Poll {
    replies: BTreeMap<NodeId, Counters>,
    /// The per-link counts of this round's replies (asked for once a node crashed).
    links: BTreeMap<NodeId, Vec<LinkCount>>,
    /// Latency of the packets delivered since the previous round, from this round's replies.
    window: RunStats,
    /// When the round in progress was sent.
    sent_at: Option<Nanos>,
    /// The round in progress was sent once every node had finished sending, so every reply
    /// to it counts the node's final `sent` (a node reports task-finished before it answers
    /// a later poll on the same connection).
    sent_counts_final: bool,
    /// When the next round is due.
    next_at: Option<Nanos>,
    /// Totals of the previous round (of the current phase).
    previous: Option<Totals>,
    /// Nodes that registered after the round in progress (or the collection) was asked
    /// for: they answer only the next one.
    not_asked: usize,
    /// Last time the totals changed.
    progress_at: Nanos,
    interval: Nanos,
}

/// A warm-up: the first part of a run, left out of its rate and latency. A counter poll is
/// sent when it ends; the totals of that round mark where the figures start, and the latency
/// histograms of every round up to it are taken out of the run's.
#[derive(Debug)]
struct Warmup {
    until: Nanos,
    /// Latency histograms of the rounds up to the mark.
    before: RunStats,
    /// When the marking round was sent, and its totals.
    mark: Option<(Nanos, Totals)>,
}

/// Where a warm-up ended: the figures of a run count from here.
#[derive(Debug, Clone, Copy)]
pub struct WarmupMark<'a> {
    pub at: Nanos,
    pub totals: Totals,
    /// Latency histograms of the packets delivered before the mark.
    pub before: &'a RunStats,
}

/// A run in progress.
#[derive(Debug)]
pub struct Run {
    pub number: u32,
    pub packets: u64,
    pub extra_payload_bytes: u32,
    /// Node IDs, or keys (`start N keys`).
    pub targets: Targets,
    pub started_at: Nanos,
    pub nr: usize,
    timing: PollTiming,
    phase: Phase,
    poll: Poll,
    /// Totals of the last complete round (for progress reports).
    pub last_totals: Option<Totals>,
    /// Complete rounds so far (a new value means a new round).
    pub rounds: u64,
    /// Latency of the packets delivered between the last two rounds.
    pub last_window: LatencySummary,
    /// Each node's counters in the last complete round.
    pub last_round: BTreeMap<NodeId, Counters>,
    /// Hop counts and latencies of the packets delivered between the last two rounds.
    pub last_round_stats: RunStats,
    /// `--metrics`: each node's latency per hop over the run, from its progress replies
    /// (`None`: not kept). One entry per node of the overlay: at most `NODES_MAX`.
    pub node_hop_latency: Option<BTreeMap<NodeId, HopLatencyBuckets>>,
    /// The last task-finished (settle mode: a node silent for the stall timeout after it
    /// fails the run).
    last_finished_at: Option<Nanos>,
    /// Hop counts and latencies from the final summaries, added up.
    pub stats: RunStats,
    /// The overlay's nodes when the run started, then those that joined during it.
    pub members: Vec<NodeId>,
    /// The nodes that originate this run's packets: those of its start.
    sources: BTreeSet<NodeId>,
    /// The final counters of the nodes that left during the run (their hand-over done).
    pub left: BTreeMap<NodeId, Counters>,
    /// Nodes that began to leave during the run: they stopped originating then.
    leavers: BTreeSet<NodeId>,
    /// Each node's data packets per link, from its final summary.
    pub links: BTreeMap<NodeId, Vec<LinkCount>>,
    /// Nodes lost during the run that the others went on without ([`Run::on_crash`]).
    crashed: Vec<NodeId>,
    /// The last time the registry called into the run ([`Run::catch_up`]).
    seen: Nanos,
    /// A request to every node (a counter poll, the final summaries) was decided at this
    /// time and is not known to have reached the kernel yet ([`Run::on_handed`]).
    handing: Option<Nanos>,
    /// A run by time: when the nodes are told to stop originating. Wall-clock time like the
    /// nodes' sending, so a pause of the registry does not move it.
    stop_at: Option<Nanos>,
    /// The nodes were told to stop originating (at `stop_at`, or by `stop`).
    stop_sent: bool,
    /// `stop` ended origination before the run's goal, at this time.
    pub stopped_early_at: Option<Nanos>,
    /// When the last node reported task finished (all had).
    pub all_finished_at: Option<Nanos>,
    warmup: Option<Warmup>,
}

impl Run {
    pub fn new(
        number: u32,
        packets: u64,
        extra_payload_bytes: u32,
        nr: usize,
        members: Vec<NodeId>,
        now: Nanos,
        timing: PollTiming,
    ) -> Run {
        Run {
            number,
            packets,
            extra_payload_bytes,
            targets: Targets::Nodes,
            started_at: now,
            nr,
            timing,
            phase: Phase::Sending {
                finished: BTreeSet::new(),
            },
            poll: Poll {
                replies: BTreeMap::new(),
                links: BTreeMap::new(),
                window: RunStats::default(),
                sent_at: None,
                sent_counts_final: false,
                next_at: match timing.settle {
                    Some(_) => None,
                    None => Some(now + timing.progress_interval),
                },
                previous: None,
                not_asked: 0,
                progress_at: now,
                interval: timing.progress_interval,
            },
            last_totals: None,
            rounds: 0,
            last_window: LatencySummary::default(),
            last_round: BTreeMap::new(),
            last_round_stats: RunStats::default(),
            node_hop_latency: None,
            stats: RunStats::default(),
            last_finished_at: None,
            sources: members.iter().copied().collect(),
            left: BTreeMap::new(),
            leavers: BTreeSet::new(),
            members,
            links: BTreeMap::new(),
            crashed: Vec::new(),
            seen: now,
            handing: None,
            stop_at: None,
            stop_sent: false,
            stopped_early_at: None,
            all_finished_at: None,
            warmup: None,
        }
    }

    /// A run by time: the nodes are told to stop `duration` after the start (the task they
    /// were sent must be [`TASK_UNTIL_STOPPED`](crate::limits::TASK_UNTIL_STOPPED) packets).
    pub fn by_time(mut self, duration: Nanos) -> Run {
        self.stop_at = Some(self.started_at.saturating_add(duration));
        self
    }

    /// The first `warmup` of the run is left out of its rate and latency (only with polls: the
    /// mark is a counter poll).
    pub fn with_warmup(mut self, warmup: Nanos) -> Run {
        if warmup > 0 && self.timing.settle.is_none() {
            let until = self.started_at.saturating_add(warmup);
            self.poll.next_at = self.poll.next_at.map(|at| at.min(until));
            self.warmup = Some(Warmup {
                until,
                before: RunStats::default(),
                mark: None,
            });
        }
        self
    }

    /// The run's goal as the nodes were told it.
    pub fn goal(&self) -> Goal {
        match self.stop_at {
            Some(at) => Goal::Duration(at - self.started_at),
            None => Goal::Packets(self.packets),
        }
    }

    /// The warm-up asked for, if any.
    pub fn warmup(&self) -> Option<Nanos> {
        self.warmup
            .as_ref()
            .map(|w| w.until.saturating_sub(self.started_at))
    }

    /// Where the warm-up ended, once a counter poll marked it while the nodes were sending.
    pub fn warmup_mark(&self) -> Option<WarmupMark<'_>> {
        let warmup = self.warmup.as_ref()?;
        let (at, totals) = warmup.mark?;
        Some(WarmupMark {
            at,
            totals,
            before: &warmup.before,
        })
    }

    /// `stop`: ends the run early. While nodes send, they are told to stop and the run ends
    /// by the usual rule once what is on its way has arrived; a second `stop` (or one after
    /// every node finished) does not wait for that: the final summaries are asked for at once
    /// (collected within the stall timeout), or, while they are being collected, the run ends
    /// with those that came. Returns the step and a line for the operator.
    pub fn stop(&mut self, now: Nanos, node_ids: &[NodeId]) -> (Step, String) {
        self.catch_up(now);
        match &mut self.phase {
            Phase::Sending { .. } if !self.stop_sent => {
                self.stop_sent = true;
                self.stopped_early_at = Some(now);
                (
                    Step::StopSending,
                    format!(
                        "Run {}: stopping after {:.1} s; the report follows once the packets on \
                         their way have arrived (stop again not to wait)",
                        self.number,
                        now.saturating_sub(self.started_at) as f64 / 1e9
                    ),
                )
            }
            Phase::Collecting {
                replies, failures, ..
            } => {
                let missing: Vec<NodeId> = node_ids
                    .iter()
                    .filter(|id| !replies.contains_key(id))
                    .copied()
                    .collect();
                failures.push(format!(
                    "stopped before {} sent a final summary",
                    names(&missing)
                ));
                (
                    self.finish_if_collected(0),
                    format!("Run {}: stopped while collecting", self.number),
                )
            }
            Phase::Sending { .. }
            | Phase::Draining
            | Phase::Settling { .. }
            | Phase::Stopping { .. } => {
                let failures = match &mut self.phase {
                    Phase::Stopping { failures, .. } => std::mem::take(failures),
                    _ => Vec::new(),
                };
                (
                    self.collect(now, failures),
                    format!(
                        "Run {}: collecting the final summaries now; packets still on their way \
                         are not counted",
                        self.number
                    ),
                )
            }
        }
    }

    /// Called first on every entry with a time: when the registry comes later than the tick
    /// it asked for by more than [`REGISTRY_LATE_NS_MAX`], it was stopped or starved, and
    /// every pending deadline moves by the time since its previous call (module comment).
    fn catch_up(&mut self, now: Nanos) {
        let due = self.next_tick();
        self.catch_up_after(now, due, "the registry did not run");
    }

    /// As [`Run::catch_up`], for a call that was `due` then; `late` says what was late.
    fn catch_up_after(&mut self, now: Nanos, due: Option<Nanos>, late: &str) {
        let lost = now.saturating_sub(self.seen);
        if let Some(due) = due
            && now > due.saturating_add(REGISTRY_LATE_NS_MAX)
        {
            tracing::warn!(
                "run {}: {late} for {} ms (stopped or starved); its deadlines move by that \
                 much, so that no node is blamed for it",
                self.number,
                lost / 1_000_000
            );
            let poll = &mut self.poll;
            let phase_deadline = match &mut self.phase {
                Phase::Settling { until } | Phase::Stopping { until, .. } => Some(until),
                Phase::Collecting { deadline, .. } => Some(deadline),
                Phase::Sending { .. } | Phase::Draining => None,
            };
            let marks = [
                poll.sent_at.as_mut(),
                poll.next_at.as_mut(),
                Some(&mut poll.progress_at),
                self.last_finished_at.as_mut(),
                phase_deadline,
            ];
            for at in marks.into_iter().flatten() {
                *at = at.saturating_add(lost);
            }
        }
        self.seen = self.seen.max(now);
    }

    /// Whether a request to every node waits to be known in the kernel ([`Run::on_handed`]).
    pub fn handing(&self) -> bool {
        self.handing.is_some()
    }

    /// Everything the registry sent has reached the kernel (the driver says so, with `now`
    /// read after it): the request decided last counts its deadline from now, not from when
    /// it was decided (module comment). The driver says so at once when the registry runs;
    /// later than [`REGISTRY_LATE_NS_MAX`] after the decision, the registry did not run in
    /// between, and its other deadlines move too ([`Run::catch_up`]).
    pub fn on_handed(&mut self, now: Nanos) {
        let Some(decided) = self.handing.take() else {
            return;
        };
        self.catch_up_after(
            now,
            Some(decided),
            "what the registry sent reached the kernel late: it did not run, or a peer did not \
             read,",
        );
        if let Some(sent_at) = self.poll.sent_at.as_mut() {
            *sent_at = (*sent_at).max(now);
        }
        if let Phase::Collecting { deadline, .. } = &mut self.phase {
            *deadline = (*deadline).max(now.saturating_add(self.timing.stall_timeout));
        }
    }

    /// Node `id` originated all its packets; `nodes` are in the run.
    pub fn on_finished(&mut self, now: Nanos, id: NodeId, nodes: usize) -> Step {
        self.catch_up(now);
        let Phase::Sending { finished } = &mut self.phase else {
            return Step::Nothing;
        };
        finished.insert(id);
        self.last_finished_at = Some(now);
        if finished.len() < nodes {
            return Step::Nothing;
        }
        self.all_finished(now)
    }

    /// Every node (left) has originated all its packets.
    fn all_finished(&mut self, now: Nanos) -> Step {
        self.all_finished_at = Some(now);
        if let Some(settle) = self.timing.settle {
            self.phase = Phase::Settling {
                until: now + settle,
            };
            return Step::Nothing;
        }
        tracing::debug!(
            "run {}: every node finished sending after {} us",
            self.number,
            now.saturating_sub(self.started_at) / 1000
        );
        self.phase = Phase::Draining;
        self.poll.previous = None;
        self.poll.interval = self.timing.drain_interval;
        self.poll.progress_at = now;
        if self.poll.sent_at.is_some() {
            // The round in flight finishes first; the next one follows at once.
            self.poll.next_at = Some(now);
            Step::Nothing
        } else {
            self.poll_now(now)
        }
    }

    /// A final reply (counters reset) from node `id`, with its hop and latency statistics.
    pub fn on_final(
        &mut self,
        id: NodeId,
        counters: Counters,
        stats: Option<RunStats>,
        links: Vec<LinkCount>,
        nodes: usize,
    ) -> Step {
        let Phase::Collecting { replies, .. } = &mut self.phase else {
            return Step::Nothing;
        };
        if replies.insert(id, counters).is_none() {
            if let Some(stats) = stats {
                self.stats.add(&stats);
            }
            self.links.insert(id, links);
        }
        self.finish_if_collected(nodes)
    }

    fn finish_if_collected(&mut self, nodes: usize) -> Step {
        match &mut self.phase {
            Phase::Collecting {
                replies, failures, ..
            } if replies.len() + self.poll.not_asked >= nodes => Step::Finish {
                replies: std::mem::take(replies),
                failures: std::mem::take(failures),
            },
            _ => Step::Nothing,
        }
    }

    fn collect(&mut self, now: Nanos, failures: Vec<String>) -> Step {
        self.poll.next_at = None;
        self.poll.sent_at = None;
        self.poll.not_asked = 0;
        self.phase = Phase::Collecting {
            replies: BTreeMap::new(),
            failures,
            deadline: now + self.timing.stall_timeout,
        };
        self.handing = Some(now);
        Step::CollectAll
    }

    /// The run fails (a node lost, a node hung): stop every node, wait until nothing of the
    /// run is in flight, then collect what the nodes counted.
    pub fn fail(&mut self, now: Nanos, why: String) -> Step {
        self.catch_up(now);
        match &mut self.phase {
            Phase::Collecting { failures, .. } | Phase::Stopping { failures, .. } => {
                failures.push(why);
                Step::Nothing
            }
            _ => {
                let until = now + self.timing.settle.unwrap_or(self.timing.stall_timeout);
                self.phase = Phase::Stopping {
                    failures: vec![why],
                    until,
                };
                if self.timing.settle.is_none() {
                    // A fresh round: the one in flight may wait for the node that is gone.
                    self.poll.previous = None;
                    self.poll.progress_at = now;
                    self.poll.interval = self.timing.drain_interval;
                    self.poll_now(now);
                }
                Step::StopAll
            }
        }
    }

    /// After a node left during collection, the run may be complete.
    pub fn check_collected(&mut self, nodes: usize) -> Step {
        self.finish_if_collected(nodes)
    }

    /// Timers: the next poll, an unanswered round, missing final summaries.
    pub fn on_tick(&mut self, now: Nanos, node_ids: &[NodeId]) -> Step {
        self.catch_up(now);
        let stall_s = self.timing.stall_timeout / 1_000_000_000;
        if let Phase::Collecting {
            replies,
            failures,
            deadline,
        } = &mut self.phase
        {
            if *deadline <= now {
                let missing: Vec<NodeId> = node_ids
                    .iter()
                    .filter(|id| !replies.contains_key(id))
                    .copied()
                    .collect();
                failures.push(format!(
                    "no final summary from {} within {stall_s} s",
                    names(&missing)
                ));
                return self.finish_if_collected(0);
            }
            return Step::Nothing;
        }
        if let Phase::Stopping { failures, until } = &mut self.phase {
            let round_lost = self
                .poll
                .sent_at
                .is_some_and(|at| now.saturating_sub(at) >= self.timing.stall_timeout);
            if *until <= now || round_lost {
                let failures = std::mem::take(failures);
                return self.collect(now, failures);
            }
            if self.poll.sent_at.is_none() && self.poll.next_at.is_some_and(|at| at <= now) {
                return self.poll_now(now);
            }
            return Step::Nothing;
        }
        if matches!(self.phase, Phase::Sending { .. })
            && !self.stop_sent
            && self.stop_at.is_some_and(|at| at <= now)
        {
            self.stop_sent = true;
            return Step::StopSending;
        }
        match &self.phase {
            Phase::Settling { until } if *until <= now => return self.collect(now, Vec::new()),
            Phase::Settling { .. } => return Step::Nothing,
            Phase::Sending { finished } if self.timing.settle.is_some() => {
                if let Some(last) = self.last_finished_at
                    && now.saturating_sub(last) >= self.timing.stall_timeout
                {
                    let unfinished: Vec<NodeId> = node_ids
                        .iter()
                        .filter(|id| !finished.contains(id))
                        .copied()
                        .collect();
                    return self.fail(
                        now,
                        format!(
                            "{} did not report task finished within {stall_s} s of the last \
                             node that did",
                            names(&unfinished)
                        ),
                    );
                }
                return Step::Nothing;
            }
            _ => {}
        }
        if let Some(sent_at) = self.poll.sent_at {
            if now.saturating_sub(sent_at) >= self.timing.stall_timeout {
                let silent: Vec<NodeId> = node_ids
                    .iter()
                    .filter(|id| !self.poll.replies.contains_key(id))
                    .copied()
                    .collect();
                return self.fail(
                    now,
                    format!(
                        "{} did not answer a counter poll within {stall_s} s",
                        names(&silent)
                    ),
                );
            }
            return Step::Nothing;
        }
        if self.poll.next_at.is_some_and(|at| at <= now) {
            return self.poll_now(now);
        }
        Step::Nothing
    }

    /// When `on_tick` must run next.
    pub fn next_tick(&self) -> Option<Nanos> {
        let stop = self
            .stop_at
            .filter(|_| !self.stop_sent && matches!(self.phase, Phase::Sending { .. }));
        let tick = self.next_poll_tick();
        match (stop, tick) {
            (Some(stop), Some(tick)) => Some(stop.min(tick)),
            (stop, tick) => stop.or(tick),
        }
    }

    fn next_poll_tick(&self) -> Option<Nanos> {
        match &self.phase {
            Phase::Collecting { deadline, .. } => Some(*deadline),
            Phase::Settling { until } => Some(*until),
            Phase::Stopping { until, .. } => Some(match (self.poll.sent_at, self.poll.next_at) {
                (Some(sent_at), _) => (*until).min(sent_at + self.timing.stall_timeout),
                (None, Some(next)) => (*until).min(next),
                (None, None) => *until,
            }),
            Phase::Sending { .. } if self.timing.settle.is_some() => self
                .last_finished_at
                .map(|at| at + self.timing.stall_timeout),
            _ => match self.poll.sent_at {
                Some(sent_at) => Some(sent_at + self.timing.stall_timeout),
                None => self.poll.next_at,
            },
        }
    }
}

/// `node 5, node 9`.
fn names(ids: &[NodeId]) -> String {
    let names: Vec<String> = ids.iter().map(|id| format!("node {id}")).collect();
    names.join(", ")
}

mod members;
mod rounds;
#[cfg(test)]
mod tests;
