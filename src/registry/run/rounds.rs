//! A run's progress rounds: each node's counters asked for, the round complete when every
//! node answered, its totals judged (accounted for, progressing, stalled).

use super::*;

impl Run {
    pub(super) fn poll_now(&mut self, now: Nanos) -> Step {
        self.poll.next_at = None;
        self.poll.not_asked = 0;
        self.poll.sent_at = Some(now);
        self.handing = Some(now);
        self.poll.sent_counts_final = matches!(self.phase, Phase::Draining);
        self.poll.replies.clear();
        self.poll.links.clear();
        self.poll.window.reset();
        Step::PollAll
    }

    /// A progress reply (counters kept) from node `id`, with its per-link counts if the poll
    /// asked for them.
    pub fn on_progress(
        &mut self,
        now: Nanos,
        id: NodeId,
        counters: Counters,
        stats: Option<RunStats>,
        links: Vec<LinkCount>,
        nodes: usize,
    ) -> Step {
        self.catch_up(now);
        if self.poll.sent_at.is_none() || matches!(self.phase, Phase::Collecting { .. }) {
            return Step::Nothing;
        }
        if self.poll.replies.insert(id, counters).is_none()
            && let Some(stats) = stats
        {
            if let Some(latency) = &mut self.node_hop_latency {
                latency.entry(id).or_default().add_stats(&stats);
            }
            self.poll.window.add(&stats);
        }
        if !links.is_empty() {
            self.poll.links.insert(id, links);
        }
        if self.poll.replies.len() + self.poll.not_asked < nodes {
            return Step::Nothing;
        }
        self.complete_round(now)
    }

    /// Whether the packets of a round with these `totals` are all accounted for: each
    /// received, corrupted or dropped; or, once nodes crashed, by the per-link account of
    /// the round's replies (every reply with its counts): nothing in flight between the
    /// nodes left, nothing unexplained, the rest handed to the crashed nodes or taken from
    /// them (`summary::account`).
    pub(super) fn accounted(&self, totals: &Totals) -> bool {
        if self.crashed.is_empty() {
            return totals.accounted();
        }
        self.poll.links.len() == self.poll.replies.len()
            && crate::summary::account(
                &self.members,
                &self.round_links(),
                totals.sent,
                totals.counted(),
                self.round_stale(),
            )
            .balanced()
    }

    /// The per-link counts of this round's replies, and the final ones of the nodes that
    /// left during the run (their counters are in every round's totals).
    pub(super) fn round_links(&self) -> BTreeMap<NodeId, Vec<LinkCount>> {
        let mut links = self.poll.links.clone();
        for id in self.left.keys() {
            if let Some(rows) = self.links.get(id) {
                links.insert(*id, rows.clone());
            }
        }
        links
    }

    /// Packets of an earlier run the sinks dropped, by this round's replies and the final
    /// counters of the nodes that left.
    pub(super) fn round_stale(&self) -> u64 {
        self.poll
            .replies
            .values()
            .chain(self.left.values())
            .map(|c| c.stale)
            .sum()
    }

    /// What a run with crashes that stopped moving still misses, by the per-link account of
    /// the last round: its totals cannot say (the crashed nodes' packets are in neither).
    pub(super) fn crashed_stall_text(&self, totals: &Totals) -> String {
        if self.poll.links.len() < self.poll.replies.len() {
            return "nodes crashed, and the per-link counts of the last round incomplete".into();
        }
        let account = crate::summary::account(
            &self.members,
            &self.round_links(),
            totals.sent,
            totals.counted(),
            self.round_stale(),
        )
        .accounting;
        format!(
            "{} packets sent by the nodes left; by the per-link account {} were on links among \
             them and {} more are missing",
            totals.sent, account.lost_on_links, account.unaccounted
        )
    }

    /// Every node answered the round in flight.
    pub(super) fn complete_round(&mut self, now: Nanos) -> Step {
        let round_sent_at = self.poll.sent_at.take().unwrap_or(now);
        let sent_counts_final = self.poll.sent_counts_final;
        let totals = Totals::of(self.poll.replies.values().chain(self.left.values()));
        let sending = matches!(self.phase, Phase::Sending { .. });
        if let Some(warmup) = self.warmup.as_mut().filter(|w| w.mark.is_none() && sending) {
            warmup.before.add(&self.poll.window);
            if round_sent_at >= warmup.until {
                warmup.mark = Some((round_sent_at, totals));
            }
        }
        self.last_totals = Some(totals);
        self.rounds += 1;
        self.last_window = self.poll.window.latency_summary();
        self.last_round.clone_from(&self.poll.replies);
        // The window is reset before the next round is asked for: swapped, not copied.
        std::mem::swap(&mut self.last_round_stats, &mut self.poll.window);
        let same = self.poll.previous == Some(totals);
        self.poll.previous = Some(totals);
        if !same {
            self.poll.progress_at = now;
        }
        if let Phase::Stopping { failures, until } = &mut self.phase {
            if (same && now.saturating_sub(self.poll.progress_at) >= QUIET_AFTER_FAILURE_NS)
                || now >= *until
            {
                let failures = std::mem::take(failures);
                return self.collect(now, failures);
            }
            self.poll.interval =
                (self.poll.interval * 2).min(self.timing.drain_interval * DRAIN_POLL_BACKOFF_MAX);
            self.poll.next_at = Some(now + self.poll.interval);
            return Step::Nothing;
        }
        match self.phase {
            // Every node had sent all its packets when the round went out, so `sent` is
            // final, and each packet is counted once where it ends: more counted than sent
            // are packets no node sent. (A round sent earlier may count a node's `sent`
            // before its last packets, and their arrival after.)
            Phase::Draining
                if sent_counts_final
                    && self.crashed.is_empty()
                    && totals.counted() > totals.sent =>
            {
                return self.fail(
                    now,
                    format!(
                        "foreign traffic: every node has sent all its packets and {} more \
                         were counted (received, corrupted or dropped) than were sent",
                        totals.counted() - totals.sent
                    ),
                );
            }
            Phase::Draining if same && self.accounted(&totals) => {
                tracing::debug!(
                    "run {}: quiet after {} us",
                    self.number,
                    now.saturating_sub(self.started_at) / 1000
                );
                return self.collect(now, Vec::new());
            }
            Phase::Draining => {
                self.poll.interval = if same {
                    (self.poll.interval * 2)
                        .min(self.timing.drain_interval * DRAIN_POLL_BACKOFF_MAX)
                } else {
                    self.timing.drain_interval
                };
            }
            _ => {}
        }
        if now.saturating_sub(self.poll.progress_at) >= self.timing.stall_timeout {
            let stalled = if self.crashed.is_empty() {
                totals.unaccounted_text()
            } else {
                self.crashed_stall_text(&totals)
            };
            return self.fail(
                now,
                format!(
                    "no progress for {} s with {stalled}",
                    self.timing.stall_timeout / 1_000_000_000,
                ),
            );
        }
        let due = self.poll.next_at.unwrap_or(now + self.poll.interval);
        let mut next = due.min(now + self.poll.interval);
        if let Some(warmup) = self.warmup.as_ref().filter(|w| w.mark.is_none() && sending) {
            // The round that marks the end of the warm-up goes out when it ends (at once, if
            // this round was sent before and came back after).
            next = next.min(warmup.until.max(now));
        }
        self.poll.next_at = Some(next);
        Step::Nothing
    }
}
