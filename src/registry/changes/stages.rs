//! A change under way, stage by stage: acknowledgements, the next stage, the end of a change
//! (done, abandoned, its node lost), and its deadline.

use super::*;
use crate::registry::membership::deregistered;

impl<C: Codec> Registry<C> {
    /// Node `id` acknowledged change `version` (with `count`, what the change asked for).
    pub(in crate::registry) fn on_membership_ack(
        &mut self,
        now: Nanos,
        id: NodeId,
        version: u32,
        count: u64,
    ) {
        let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        else {
            if self.parked_version(id, version) {
                return;
            }
            let line = format!(
                "{}: a membership acknowledgement outside a change",
                self.describe(id)
            );
            self.warn_node(id, &line);
            return;
        };
        if (current.stage_version..current.version).contains(&version) {
            // Of the stage before it took in more lost nodes: the newer version is waited for.
            return;
        }
        if current.version != version || !current.waiting.remove(&id) {
            if self.parked_version(id, version) {
                return;
            }
            let line = format!(
                "{}: an acknowledgement of membership change {version}, which is not waited for",
                self.describe(id)
            );
            self.warn_node(id, &line);
            return;
        }
        current.sent_to_leaver = current.sent_to_leaver.saturating_add(count);
        if current.waiting.is_empty() {
            self.advance(now);
        }
    }

    /// The newcomer's setup status (its table links up, or not).
    pub(in crate::registry) fn on_joiner_setup(
        &mut self,
        now: Nanos,
        id: NodeId,
        status: Status,
        info: String,
    ) -> bool {
        let joining = self
            .overlay
            .as_ref()
            .and_then(|o| o.changes.current.as_ref())
            .is_some_and(|c| c.node == id && c.stage == Stage::JoinSetup);
        if !joining {
            return false;
        }
        match status {
            Status::Ok(reported) if reported == id => {
                // Final requests of runs that ended since its manifest went out (to the
                // members only): it is that many final reports behind.
                let behind = self.overlay.as_ref().map_or(0, |o| {
                    o.changes
                        .current
                        .as_ref()
                        .and_then(|c| c.manifest_epoch)
                        .map_or(0, |given| o.epoch.wrapping_sub(given))
                });
                // From now on it is part of the run: the others learn of it next. A
                // registrant that never gets this far is never polled (it cannot hold up a
                // run), and its join ends at the stage's deadline.
                self.end_joiner(id);
                if let Some(run) = self.run.as_mut() {
                    run.joined(id);
                }
                if behind > 0 {
                    self.bring_level(id, behind);
                }
                if let Some(current) = self
                    .overlay
                    .as_mut()
                    .and_then(|o| o.changes.current.as_mut())
                {
                    current.waiting.remove(&id);
                }
                self.advance(now);
            }
            _ => {
                self.say(format!("Node {id} could not join: {info}"));
                if !self.retry_join(now, id) {
                    self.abandon_join(now, id);
                }
            }
        }
        true
    }

    /// The stage is complete (or gave up waiting): the next one.
    pub(super) fn advance(&mut self, now: Nanos) {
        let timeout = self.change_timeout();
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let Some(current) = overlay.changes.current.as_mut() else {
            return;
        };
        let id = current.node;
        let version = current.version;
        match current.stage {
            Stage::JoinSetup => {
                current.stage = Stage::JoinPrepare;
                current.restart(now + timeout);
                let Some((old_ring, old_tables, old_backups, _)) = overlay.previous.take() else {
                    return;
                };
                let identifier = overlay
                    .chord
                    .as_ref()
                    .and_then(|layout| overlay.ring.position(id).map(|p| layout.id(p)));
                let messages = changed_links(
                    (&overlay.ring, &overlay.tables, &overlay.backups),
                    (&old_ring, &old_tables, &old_backups),
                    Some(id),
                );
                current.waiting = messages
                    .iter()
                    .map(|(node, _)| *node)
                    .filter(|node| self.nodes.contains_key(node))
                    .collect();
                let addr = self.nodes.get(&id).map(|n| n.addr);
                let Some(addr) = addr else { return };
                self.send_tables(
                    version,
                    Change::Join {
                        id,
                        addr,
                        identifier,
                    },
                    messages,
                );
                self.check_stage_done(now);
            }
            Stage::JoinPrepare => {
                current.stage = Stage::JoinCommit;
                current.restart(now + timeout);
                let others: Vec<NodeId> = overlay
                    .ring
                    .ids()
                    .iter()
                    .copied()
                    .filter(|&n| n != id)
                    .collect();
                current.waiting = others
                    .iter()
                    .copied()
                    .filter(|node| self.nodes.contains_key(node))
                    .collect();
                self.announce(version, Change::Commit { id }, others);
                self.check_stage_done(now);
            }
            Stage::JoinCommit => {
                let others: Vec<NodeId> = overlay
                    .ring
                    .ids()
                    .iter()
                    .copied()
                    .filter(|&n| n != id)
                    .collect();
                self.announce(version, Change::Open { id }, others);
                self.change_done(now, format!("Node {id} joined"));
            }
            Stage::Leave if current.lost => {
                let began = current.started_at;
                let gone = std::mem::take(&mut current.nodes);
                overlay.changes.current = None;
                if self.start_gone(now, gone, true) {
                    self.continue_change(began);
                } else {
                    self.next_change(now);
                }
            }
            Stage::Leave => {
                let expected = current.sent_to_leaver;
                current.stage = Stage::Drain;
                current.restart(now + timeout);
                current.waiting = BTreeSet::from([id]);
                self.announce(version, Change::Drain { id, expected }, [id]);
            }
            Stage::Drain => {
                let began = current.started_at;
                overlay.changes.current = None;
                if self.start_gone(now, BTreeSet::from([id]), false) {
                    self.continue_change(began);
                } else {
                    self.let_go_unrepaired(now, id, "its tables could not be repaired");
                }
            }
            Stage::Gone if current.lost => {
                let (nodes, verb) = named(&current.nodes);
                self.change_done(now, format!("{nodes} {verb} out of every table"));
            }
            Stage::Gone => {
                current.stage = Stage::Close;
                current.restart(now + timeout);
                current.waiting = BTreeSet::from([id]);
                self.announce(version, Change::Close { id }, [id]);
            }
            Stage::Close => {
                current.stage = Stage::Final;
                current.restart(now + timeout);
                current.waiting = BTreeSet::from([id]);
                if self.run.is_some() {
                    self.send_to_node(
                        id,
                        &Control::SummaryRequest {
                            reset: true,
                            links: false,
                        },
                    );
                } else {
                    self.let_go(now, id);
                }
            }
            Stage::Final => self.let_go(now, id),
        }
    }

    /// A stage that asked nobody is done at once.
    pub(super) fn check_stage_done(&mut self, now: Nanos) {
        let empty = self
            .overlay
            .as_ref()
            .and_then(|o| o.changes.current.as_ref())
            .is_some_and(|c| c.waiting.is_empty());
        if empty {
            self.advance(now);
        }
    }

    /// The leaver's final counters, during its last stage: they join the run's. False if
    /// the summary is not the leaver's last.
    pub(in crate::registry) fn on_leaver_summary(
        &mut self,
        now: Nanos,
        id: NodeId,
        final_summary: (
            crate::wire::Counters,
            Option<crate::stats::RunStats>,
            Vec<crate::wire::LinkCount>,
        ),
    ) -> bool {
        let last = self
            .overlay
            .as_ref()
            .and_then(|o| o.changes.current.as_ref())
            .is_some_and(|c| c.node == id && c.stage == Stage::Final);
        if !last {
            return false;
        }
        let nodes = self.run_nodes() - 1;
        let (counters, stats, links) = final_summary;
        if let Some(run) = self.run.as_mut() {
            let step = run.left(id, counters, stats, links, nodes);
            self.let_go(now, id);
            self.apply_step(now, step);
        } else {
            self.let_go(now, id);
        }
        true
    }

    /// The leaver may go: it is told, and forgotten.
    pub(super) fn let_go(&mut self, now: Nanos, id: NodeId) {
        let count = self.nodes.len().saturating_sub(1);
        self.send_to_node(id, &deregistered(id, count));
        self.departed.insert(id);
        if let Some(node) = self.nodes.remove(&id)
            && let Some(connection) = self.connections.get_mut(&node.conn)
        {
            connection.node = None;
            connection.left = true;
        }
        self.change_done(now, format!("Node {id} left ({count} nodes)"));
    }

    /// A leaver the overlay cannot do without (its finger rule or traces would not fit the
    /// rest): it goes at once, and the overlay must be set up again (a run fails).
    pub(super) fn let_go_unrepaired(&mut self, now: Nanos, id: NodeId, why: &str) {
        let count = self.nodes.len().saturating_sub(1);
        self.send_to_node(id, &deregistered(id, count));
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.current = None;
        }
        self.remove_node(now, id, format!("deregistered, and without it {why}"));
    }

    /// The overlay is gone (it must be set up again), and with it the changes that would have
    /// answered the nodes `leavers` (their graceful leaves queued, under way or put off): each
    /// is let go at once, as a node that asks to leave when there is no overlay. Without this
    /// a leaver waited for an answer for ever (four nodes that asked to leave at once: the
    /// second leave left too few nodes for the tables, and the leaves queued behind it went
    /// with the overlay).
    pub(in crate::registry) fn let_go_leavers(&mut self, now: Nanos, leavers: BTreeSet<NodeId>) {
        for id in leavers {
            if !self.nodes.contains_key(&id) {
                continue;
            }
            let count = self.nodes.len() - 1;
            self.send_to_node(id, &deregistered(id, count));
            self.remove_node(now, id, "deregistered".to_string());
        }
    }

    /// The change's `Gone` stage began as a new change (`start_gone`): it is still the change
    /// that began at `began` (its time until every table reflects it counts from then).
    pub(super) fn continue_change(&mut self, began: Nanos) {
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.started_at = began;
        }
    }

    /// The change is over: said, with its cost, and the next one starts.
    pub(super) fn change_done(&mut self, now: Nanos, what: String) {
        let Some(current) = self.overlay.as_mut().and_then(|o| o.changes.current.take()) else {
            return;
        };
        let ms = now.saturating_sub(current.started_at) as f64 / 1e6;
        self.say(format!(
            "{what}: {} nodes got new tables; every table reflected it {ms:.1} ms after the \
             change began (membership version {})",
            current.tables_changed, current.version
        ));
        self.next_change(now);
    }

    /// Node `id`'s join set-up failed (it could not reach a table entry: most often a member
    /// that crashed while it connected): the membership goes back to what it was and the join
    /// is queued again, behind the repair of the nodes lost (repairs go before joins, so the
    /// newcomer then gets a table of live members), or, with no loss known yet, after
    /// [`JOIN_RETRY_PAUSE_NS`](crate::limits::JOIN_RETRY_PAUSE_NS) or at the next loss
    /// (`Changes::enqueue`), whichever comes first. Returns false, changing nothing, once the
    /// join has had [`JOIN_SETUPS_MAX`](crate::limits::JOIN_SETUPS_MAX) set-ups. Each set-up
    /// is answered by exactly one status (the node sends one per manifest), so no status of
    /// an earlier set-up can be taken for a later one's.
    pub(super) fn retry_join(&mut self, now: Nanos, id: NodeId) -> bool {
        let Some(overlay) = self.overlay.as_mut() else {
            return false;
        };
        let failed = overlay.changes.failed_setups.entry(id).or_insert(0);
        *failed += 1;
        if *failed >= crate::limits::JOIN_SETUPS_MAX {
            return false;
        }
        overlay.undo_join();
        if overlay.changes.repair_queued() {
            overlay.changes.enqueue(Queued::Join(id));
            self.say(format!(
                "Node {id} will try to join again once the nodes lost are repaired"
            ));
        } else {
            let at = now + crate::limits::JOIN_RETRY_PAUSE_NS;
            overlay.changes.retries.insert(id, at);
            self.say(format!(
                "Node {id} will try to join again in {} s, or once a lost node is repaired",
                crate::limits::JOIN_RETRY_PAUSE_NS / 1_000_000_000
            ));
        }
        self.next_change(now);
        true
    }

    /// The joins whose pause after a failed set-up is over are queued again.
    fn queue_retries(&mut self, now: Nanos) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let due: Vec<NodeId> = overlay
            .changes
            .retries
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(&id, _)| id)
            .collect();
        if due.is_empty() {
            return;
        }
        for id in due {
            overlay.changes.retries.remove(&id);
            overlay.changes.enqueue(Queued::Join(id));
        }
        self.next_change(now);
    }

    /// A join that cannot be: the overlay's tables go back to what they were; nobody else
    /// heard of it.
    pub(super) fn abandon_join(&mut self, now: Nanos, id: NodeId) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        overlay.undo_join();
        self.say(format!("Node {id} did not join the overlay"));
        // Registered outside the overlay it would be a member of no run: it is let go (and
        // may register again).
        if let Some(conn) = self.nodes.get(&id).map(|n| n.conn) {
            self.refuse_and_close(
                now,
                conn,
                format!("node {id} did not join the overlay; letting it go"),
            );
        }
        self.end_joiner(id);
        self.next_change(now);
    }

    /// Node `id`'s connection closed while a change concerned it (joining, leaving, or
    /// queued to).
    pub(super) fn lost_during_change(&mut self, now: Nanos, id: NodeId) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        overlay.changes.queue.retain(|q| q.node() != id);
        let stage = overlay
            .changes
            .current
            .as_ref()
            .filter(|c| c.node == id)
            .map(|c| c.stage);
        match stage {
            None => {
                // Queued only: it is gone, and its repair queued instead (or taken into one
                // being set up).
                if !self.merge_lost(now, id)
                    && let Some(overlay) = self.overlay.as_mut()
                {
                    overlay.changes.enqueue(Queued::Lost(id));
                    self.next_change(now);
                }
            }
            Some(Stage::JoinSetup) => self.abandon_join(now, id),
            Some(Stage::JoinPrepare | Stage::JoinCommit | Stage::Leave | Stage::Drain) => {
                // Others know it and route to it: it is gone without a hand-over.
                overlay.changes.current = None;
                overlay.changes.queue.push_front(Queued::Lost(id));
                self.next_change(now);
            }
            Some(Stage::Gone | Stage::Close | Stage::Final) => {
                // Already out of every table; what it held is lost with it.
                if let Some(current) = overlay.changes.current.as_mut() {
                    current.lost = true;
                    current.waiting.remove(&id);
                    if current.stage != Stage::Gone {
                        self.change_done(now, format!("Node {id} was lost while it left"));
                    } else {
                        self.check_stage_done(now);
                    }
                }
            }
        }
    }

    /// Whether a node crashed during the current run: a graceful leave then waits for its end.
    pub(super) fn crashed_in_run(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|run| !run.crashed().is_empty())
    }

    /// Puts node `id`'s graceful leave off until the run is over (its change had begun with
    /// membership `version`, if it had): a node crashed during the run, and what it held
    /// toward the leaver (its own packets, and those it relayed) never arrives, so a drain
    /// that counts what was sent toward the leaver would wait for it out the stall timeout,
    /// and every change behind it with it. How many were lost cannot be told by sink without
    /// counting every link's packets by sink; at the end of the run nothing is on its way
    /// any more (the run's end rule), what the crash lost is counted by the per-link account,
    /// and the leave's counts start from zero (each node's counts a leave waits for are kept
    /// since the last final report). Meanwhile the leaver stays in the tables and relays; if
    /// its leave had begun it originates nothing more and is picked as a sink no more. False:
    /// the next change may start.
    pub(super) fn park_leave(&mut self, id: NodeId, version: Option<u32>) -> bool {
        let crashed = self
            .run
            .as_ref()
            .map(|run| {
                run.crashed()
                    .iter()
                    .map(|id| format!("node {id}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.parked.insert(id, version);
        }
        self.say(format!(
            "Node {id} leaves once the run is over: {crashed} crashed during it, and what was \
             on its way to node {id} through a crashed node is lost with it (the run's account \
             counts it), so it cannot all arrive"
        ));
        false
    }

    /// Node `crashed` was lost: a graceful leave still waiting for what was sent toward its
    /// leaver (`Leave`, `Drain`) waits for the end of the run instead (`park_leave`), and the
    /// crash is repaired next. A parked leaver that crashed is a lost node like any other.
    pub(in crate::registry) fn crash_during_leave(&mut self, crashed: NodeId) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        overlay.changes.parked.remove(&crashed);
        let Some(current) = overlay.changes.current.as_ref() else {
            return;
        };
        if current.lost
            || current.node == crashed
            || !matches!(current.stage, Stage::Leave | Stage::Drain)
        {
            return;
        }
        let (id, version) = (current.node, current.version);
        overlay.changes.current = None;
        self.park_leave(id, Some(version));
    }

    /// Whether `version` is the change of a leave that was put off: node `id`'s
    /// acknowledgement of it comes late, and is not warned about.
    fn parked_version(&self, id: NodeId, version: u32) -> bool {
        let parked = self.overlay.as_ref().is_some_and(|o| {
            o.changes
                .parked
                .values()
                .any(|&parked| parked == Some(version))
        });
        if parked {
            tracing::debug!("node {id} acknowledged membership change {version}, put off");
        }
        parked
    }

    /// The run is over: the leaves put off during it are carried out.
    pub(in crate::registry) fn resume_parked_leaves(&mut self, now: Nanos) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let parked = std::mem::take(&mut overlay.changes.parked);
        for id in parked.into_keys() {
            if self.nodes.contains_key(&id) {
                self.queue_change(now, Queued::Leave(id));
            }
        }
    }

    /// A node that a change waits for is gone: it waits for it no more.
    pub(in crate::registry) fn forget_waiting(&mut self, now: Nanos, id: NodeId) {
        let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        else {
            return;
        };
        if current.node != id && current.waiting.remove(&id) {
            self.check_stage_done(now);
        }
    }

    /// A stage that waited longer than the stall timeout goes on, naming who did not answer.
    pub(in crate::registry) fn change_tick(&mut self, now: Nanos) {
        self.queue_retries(now);
        let timeout = self.change_timeout();
        let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        else {
            return;
        };
        if now < current.deadline {
            return;
        }
        if current.stage == Stage::JoinSetup {
            let id = current.node;
            let line = format!(
                "node {id} registered but did not report its links to its table entries up \
                 within {} s: its join is abandoned",
                JOIN_SETUP_TIMEOUT_NS.min(timeout) / 1_000_000_000
            );
            tracing::warn!("{line}");
            self.say(line);
            self.abandon_join(now, id);
            return;
        }
        let silent: Vec<String> = current
            .waiting
            .iter()
            .map(|id| format!("node {id}"))
            .collect();
        let line = format!(
            "membership change {} (node {}): no answer from {} within {} s; going on",
            current.version,
            current.node,
            silent.join(", "),
            timeout / 1_000_000_000
        );
        current.waiting.clear();
        tracing::warn!("{line}");
        self.say(line);
        self.advance(now);
    }

    /// The registry did not run for `lost` (`Registry::catch_up`): the current stage waits
    /// that much longer.
    pub(in crate::registry) fn move_change_deadline(&mut self, lost: Nanos) {
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.deadline = current.deadline.saturating_add(lost);
        }
    }

    /// Whether the stage under way waits to hear that its messages reached the kernel.
    pub(in crate::registry) fn change_handing(&self) -> bool {
        self.overlay
            .as_ref()
            .and_then(|o| o.changes.current.as_ref())
            .is_some_and(|c| c.handing)
    }

    /// Everything the registry sent has reached the kernel (the driver says so, `now` read
    /// after it): the stage under way waits its whole time from now, not from its decision,
    /// so a registry that did not run, or a kernel that took the messages late, blames no
    /// node for it (as a run's poll round, `Run::on_handed`).
    pub(in crate::registry) fn change_handed(&mut self, now: Nanos) {
        let timeout = self.change_timeout();
        let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
            .filter(|c| c.handing)
        else {
            return;
        };
        current.handing = false;
        let span = match current.stage {
            Stage::JoinSetup => timeout.min(JOIN_SETUP_TIMEOUT_NS),
            _ => timeout,
        };
        current.deadline = current.deadline.max(now.saturating_add(span));
    }

    /// When a change next needs the tick.
    pub(in crate::registry) fn change_deadline(&self) -> Option<Nanos> {
        self.overlay
            .as_ref()
            .and_then(|o| o.changes.current.as_ref())
            .map(|c| c.deadline)
    }

    /// When a join whose set-up failed is next queued again.
    pub(in crate::registry) fn join_retry_due(&self) -> Option<Nanos> {
        self.overlay
            .as_ref()
            .and_then(|o| o.changes.retries.values().min().copied())
    }
}
