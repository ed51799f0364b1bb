//! The nodes that join, leave or crash during a run: who the run counts on, and what it
//! expects of those that went.

use super::*;

impl Run {
    /// Node `id` registered during the run: it relays and receives from the moment the
    /// others know of it, and originates from the next run; it is polled from now on.
    pub fn joined(&mut self, id: NodeId) {
        if let Phase::Sending { finished } = &mut self.phase {
            finished.insert(id);
        }
        if matches!(self.phase, Phase::Collecting { .. }) {
            // The overlay was quiet when the final reports were asked for: nothing of this
            // run passes the newcomer, which is not asked.
            self.poll.not_asked += 1;
            return;
        }
        if self.poll.sent_at.is_some() {
            self.poll.not_asked += 1;
        }
        self.members.push(id);
    }

    /// Node `id` begins to leave: it originates nothing more in this run.
    pub fn leaving(&mut self, id: NodeId) {
        self.leavers.insert(id);
    }

    /// Node `id` left during the run, with these final counters (it is no longer one of the
    /// `nodes` the registry polls): they count in every round's totals from now on, and in
    /// the run's.
    pub fn left(
        &mut self,
        id: NodeId,
        counters: Counters,
        stats: Option<RunStats>,
        links: Vec<LinkCount>,
        nodes: usize,
    ) -> Step {
        if let Phase::Sending { finished } = &mut self.phase {
            finished.remove(&id);
        }
        self.poll.replies.remove(&id);
        self.left.insert(id, counters);
        self.leavers.insert(id);
        if let Some(stats) = stats {
            self.stats.add(&stats);
        }
        self.links.insert(id, links);
        if let Phase::Collecting { replies, .. } = &mut self.phase {
            replies.remove(&id);
            return self.finish_if_collected(nodes);
        }
        Step::Nothing
    }

    /// Packets the run was to send in all: the count of every node that started it and
    /// stayed, plus what those that left (or began to) had sent when they stopped; `None`
    /// when that is every node's count.
    pub fn expected_sent(&self, replies: &BTreeMap<NodeId, Counters>) -> Option<u64> {
        if self.leavers.is_empty()
            && self.crashed.is_empty()
            && self.members.len() == self.sources.len()
        {
            return None;
        }
        // A crashed node's count is in no reply: only the per-link account tells its part.
        let stayed = self
            .sources
            .iter()
            .filter(|id| !self.leavers.contains(id) && !self.crashed.contains(id))
            .count() as u64;
        let left: u64 = self
            .leavers
            .iter()
            .filter(|id| !self.crashed.contains(id))
            .filter_map(|id| replies.get(id))
            .map(|c| c.sent)
            .sum();
        Some(self.packets.saturating_mul(stayed).saturating_add(left))
    }

    /// The nodes lost during the run that the others went on without, in the order they were.
    pub fn crashed(&self) -> &[NodeId] {
        &self.crashed
    }

    /// Node `id` was lost during the run (its connection closed: killed, or gone); `nodes`
    /// are left. The others route around it, so the run goes on without it: it is no longer
    /// waited for (to finish, to answer a poll, to send a final summary), and from now on the
    /// polls ask for the per-link counts, by which the end of the run accounts for the
    /// packets it held (docs/ARCHITECTURE.md, "The end of a run"). Only with progress polls:
    /// without them a crash fails the run ([`Run::fail`]).
    pub fn on_crash(&mut self, now: Nanos, id: NodeId, nodes: usize) -> Step {
        self.catch_up(now);
        if !self.crashed.contains(&id) {
            self.crashed.push(id);
        }
        self.poll.replies.remove(&id);
        self.poll.links.remove(&id);
        if nodes == 0 {
            return self.fail(now, "every node of the run was lost".to_string());
        }
        match &mut self.phase {
            Phase::Sending { finished } => {
                finished.remove(&id);
                if finished.len() >= nodes {
                    return self.all_finished(now);
                }
            }
            Phase::Collecting { .. } => return self.finish_if_collected(nodes),
            Phase::Draining | Phase::Settling { .. } | Phase::Stopping { .. } => {}
        }
        // A round in flight waited for its answer too.
        if self.poll.sent_at.is_some() && self.poll.replies.len() + self.poll.not_asked >= nodes {
            return self.complete_round(now);
        }
        Step::Nothing
    }

    /// Whether the polls ask for the per-link counts (a node crashed).
    pub fn polls_links(&self) -> bool {
        !self.crashed.is_empty()
    }
}
