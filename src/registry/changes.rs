//! Membership that changes while traffic flows (docs/ARCHITECTURE.md, "Membership that
//! changes"): joins, graceful leaves and the repair after nodes lost, one at a time, each
//! told to exactly the nodes it concerns.
//!
//! - **Join**: the newcomer gets its manifest and connects to its entries; then every other
//!   node learns of it (with its new table when that changes: it connects to the new
//!   entries) and acknowledges; then every node switches (`Commit`) and acknowledges; then
//!   every node may pick it as a sink (`Open`).
//! - **Leave**: every node stops picking the leaver and says how many packets it originated
//!   toward it; the leaver waits until that many reached it (`Drain`); every other node then
//!   routes around it (`Gone`, new tables to those whose tables change), switching once the
//!   links to its new entries are up and flushing the old ones before closing them; the
//!   leaver, in no table any more, waits until every link toward it has been closed by its
//!   owner (`Close`), then gives its final counters, which join the run's, and goes.
//! - **Lost nodes** (their registry connections closed): every other node stops picking them
//!   (`Lost`), then switches to tables without them (`Repair`). Nodes lost before their
//!   repair starts, or while its `Lost` stage waits, are repaired together: one new table per
//!   node for all of them.
//!
//! A change waits for the acknowledgements of the nodes it asked, at most the stall timeout;
//! past that it goes on, naming the nodes that did not answer.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::Registry;
use crate::chord::Id;
use crate::limits::{BACKUP_ENTRIES, JOIN_SETUP_TIMEOUT_NS, NODES_MAX, REPAIR_NODES_MAX};
use crate::machine::Nanos;
use crate::routing::{self, ChordLayout, Fingers, Ring};
use crate::wire::{
    Change, ChordIds, Codec, Control, Manifest, ManifestEntry, MembershipChange, NewTable, NodeId,
    Status,
};

mod fits;
mod joins;
mod leaves;
mod stages;

/// A node's table and backup entries.
type Links = (Vec<NodeId>, Vec<NodeId>);

/// Each node's backup entries in the membership `ring` with `tables` (Chord `layout`), by
/// ring position, as at setup: none without [`Codec::DETOURS`].
fn backups_of<C: Codec>(
    ring: &Ring,
    layout: Option<&ChordLayout>,
    tables: &[Vec<NodeId>],
) -> Vec<Vec<NodeId>> {
    (0..ring.len())
        .map(|position| {
            if C::DETOURS {
                routing::backups(ring, layout, position, BACKUP_ENTRIES, &tables[position])
            } else {
                Vec::new()
            }
        })
        .collect()
}

/// A change waiting its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queued {
    /// A node registered: it joins.
    Join(NodeId),
    /// A node asked to leave.
    Leave(NodeId),
    /// A node's registry connection closed: it is gone.
    Lost(NodeId),
}

impl Queued {
    fn node(self) -> NodeId {
        match self {
            Queued::Join(id) | Queued::Leave(id) | Queued::Lost(id) => id,
        }
    }
}

/// Where a change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The newcomer connects to its table entries.
    JoinSetup,
    /// The other nodes learn of the newcomer and connect to their new entries.
    JoinPrepare,
    /// The other nodes switch to tables with the newcomer.
    JoinCommit,
    /// Every node stops picking the leaver (or the nodes lost) as a sink, and counts what it
    /// sent it.
    Leave,
    /// The leaver receives what was sent to it.
    Drain,
    /// The other nodes switch to tables without the node (or the nodes lost).
    Gone,
    /// The leaver waits until every link toward it is closed.
    Close,
    /// The leaver's final counters.
    Final,
}

/// The change being carried out.
#[derive(Debug)]
struct InProgress {
    node: NodeId,
    /// The node left without a hand-over (its connection closed).
    lost: bool,
    /// The nodes the change is about: `node`, and for a repair every node lost with it.
    nodes: BTreeSet<NodeId>,
    stage: Stage,
    version: u32,
    /// The version the stage began with: a repair's `Leave` stage takes in nodes lost
    /// meanwhile with a newer version each, and acknowledgements of the versions before
    /// `version` are not waited for any more.
    stage_version: u32,
    /// Nodes whose acknowledgement of `version` the stage waits for.
    waiting: BTreeSet<NodeId>,
    /// Leave: packets originated toward the leaver, summed over the acknowledgements.
    sent_to_leaver: u64,
    /// The stage gives up waiting then.
    deadline: Nanos,
    /// The stage's messages are not known to have reached the kernel yet: its deadline counts
    /// again from when they have (`Registry::change_handed`).
    handing: bool,
    started_at: Nanos,
    /// A join: the epoch (count of final reports) its newcomer's manifest carried. A run that
    /// ends while the newcomer sets up asks the members only for their final reports, so the
    /// newcomer is behind by the difference once it is in (`on_joiner_setup`).
    manifest_epoch: Option<u32>,
    /// Nodes whose tables the change altered (they got a table with it).
    tables_changed: usize,
}

/// The membership changes of an overlay: the one being carried out and those waiting.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    current: Option<InProgress>,
    /// At most one per registered node (a node is queued once), so at most
    /// [`NODES_MAX`] entries.
    queue: VecDeque<Queued>,
    /// The identifiers queued joins will have (Chord mode; one per queued join at most).
    identifiers: std::collections::BTreeMap<NodeId, Id>,
    /// Registered nodes outside the overlay's runs for now: their join waits its turn, or they
    /// are connecting to their table entries. A run neither polls them nor waits for them
    /// (one that never gets further cannot hold a run up); each enters the run once its links
    /// are up, or is let go. At most one per registered node.
    joiners: BTreeSet<NodeId>,
    /// Graceful leaves put off until the run is over, since a node crashed during it (what
    /// the crash lost toward the leaver would never arrive: `Registry::park_leave`), with the
    /// membership version their change had begun with, if it had (its late acknowledgements
    /// are not warned about). At most one per registered node.
    parked: std::collections::BTreeMap<NodeId, Option<u32>>,
    /// Joins whose set-up failed so far, per joiner (tried again up to
    /// [`JOIN_SETUPS_MAX`](crate::limits::JOIN_SETUPS_MAX) set-ups in all). At most one per
    /// joiner.
    failed_setups: std::collections::BTreeMap<NodeId, u32>,
    /// Joins whose set-up failed while no lost node was known, with when they are queued
    /// again ([`JOIN_RETRY_PAUSE_NS`](crate::limits::JOIN_RETRY_PAUSE_NS) later), unless a
    /// loss queues them earlier, behind its repair. At most one per joiner.
    retries: std::collections::BTreeMap<NodeId, Nanos>,
}

impl super::setup::Overlay {
    /// A join that did not make it is undone: the membership before it comes back, and no
    /// change is under way.
    pub(super) fn undo_join(&mut self) {
        if let Some((ring, tables, backups, chord)) = self.previous.take() {
            self.ring = ring;
            self.tables = tables;
            self.backups = backups;
            self.chord = chord;
            self.nr = self.tables.iter().map(Vec::len).max().unwrap_or(0);
        }
        self.changes.current = None;
    }
}

impl InProgress {
    /// A stage begins: it gives up waiting at `deadline`, which counts again from when its
    /// messages have reached the kernel.
    fn restart(&mut self, deadline: Nanos) {
        self.deadline = deadline;
        self.handing = true;
    }
}

impl Changes {
    /// Whether a change is being carried out or waiting (a join to be tried again included).
    pub(super) fn busy(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty() || !self.retries.is_empty()
    }

    /// Whether a lost node's repair is queued.
    fn repair_queued(&self) -> bool {
        self.queue.iter().any(|q| matches!(q, Queued::Lost(_)))
    }

    /// The nodes that asked to leave gracefully and have not been let go: queued, under way
    /// (a repair of lost nodes is no leave), or put off until the run is over.
    pub(super) fn leavers(&self) -> BTreeSet<NodeId> {
        let queued = self.queue.iter().filter_map(|q| match q {
            Queued::Leave(id) => Some(*id),
            Queued::Join(_) | Queued::Lost(_) => None,
        });
        let current = self.current.as_ref().filter(|c| {
            !c.lost
                && matches!(
                    c.stage,
                    Stage::Leave | Stage::Drain | Stage::Gone | Stage::Close | Stage::Final
                )
        });
        queued
            .chain(current.map(|c| c.node))
            .chain(self.parked.keys().copied())
            .collect()
    }

    /// Whether node `id` is joining or leaving (or queued to).
    pub(super) fn concerns(&self, id: NodeId) -> bool {
        self.current.as_ref().is_some_and(|c| c.nodes.contains(&id))
            || self.queue.iter().any(|q| q.node() == id)
    }

    /// Queues `change`. A lost node's repair goes before the joins and leaves waiting (after
    /// the repairs queued before it): until it is repaired the tables they would be given
    /// name a node that is gone, and routes go around it.
    fn enqueue(&mut self, change: Queued) {
        match change {
            Queued::Lost(_) => {
                let at = self
                    .queue
                    .iter()
                    .position(|q| !matches!(q, Queued::Lost(_)))
                    .unwrap_or(self.queue.len());
                self.queue.insert(at, change);
                // A join whose set-up failed for want of this node goes after its repair.
                let retries = std::mem::take(&mut self.retries);
                self.queue.extend(retries.into_keys().map(Queued::Join));
            }
            Queued::Join(_) | Queued::Leave(_) => self.queue.push_back(change),
        }
    }
}

impl<C: Codec> Registry<C> {
    /// How long a stage of a change waits for its acknowledgements: the stall timeout.
    fn change_timeout(&self) -> Nanos {
        self.config
            .stall_timeout
            .unwrap_or_else(|| crate::limits::stall_timeout_for(self.nodes.len()))
    }

    /// Whether a membership change is being carried out or waits its turn.
    pub fn membership_changing(&self) -> bool {
        self.overlay.as_ref().is_some_and(|o| o.changes.busy())
    }

    /// Whether the overlay follows membership changes while it runs: set up and ready, with
    /// the native wire (the classic format's overlays stay as set up, as the reference's).
    pub(super) fn live_overlay(&self) -> bool {
        C::HELLO && self.overlay.as_ref().is_some_and(|o| o.ready)
    }

    /// Queues a change and starts it if none is under way.
    pub(super) fn queue_change(&mut self, now: Nanos, change: Queued) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        if let Queued::Lost(id) = change
            && !overlay.changes.concerns(id)
            && self.merge_lost(now, id)
        {
            return;
        }
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        if overlay.changes.queue.len() < NODES_MAX && !overlay.changes.concerns(change.node()) {
            overlay.changes.enqueue(change);
        } else if let Queued::Lost(id) = change {
            // A node lost while it joins or leaves: the change in progress takes care of it.
            self.lost_during_change(now, id);
            return;
        }
        self.next_change(now);
    }

    /// Starts the next queued change, if none is under way.
    pub(super) fn next_change(&mut self, now: Nanos) {
        loop {
            let Some(overlay) = self.overlay.as_mut() else {
                return;
            };
            if overlay.changes.current.is_some() {
                return;
            }
            let Some(next) = overlay.changes.queue.pop_front() else {
                return;
            };
            if self.start_change(now, next) {
                return;
            }
        }
    }

    /// Starts `change`; false if there was nothing to do (the next one may start). A lost
    /// node's repair takes in every lost node queued behind it (they are at the front).
    fn start_change(&mut self, now: Nanos, change: Queued) -> bool {
        match change {
            Queued::Join(id) if self.nodes.contains_key(&id) => self.start_join(now, id),
            Queued::Join(_) => false,
            Queued::Leave(id) if self.crashed_in_run() => self.park_leave(id, None),
            Queued::Leave(id) => self.start_leave(now, id),
            Queued::Lost(id) => {
                let mut gone = BTreeSet::from([id]);
                if let Some(overlay) = self.overlay.as_mut() {
                    while gone.len() < REPAIR_NODES_MAX
                        && let Some(&Queued::Lost(other)) = overlay.changes.queue.front()
                    {
                        overlay.changes.queue.pop_front();
                        gone.insert(other);
                    }
                }
                self.start_repair(now, gone)
            }
        }
    }

    fn begin(
        &mut self,
        now: Nanos,
        node: NodeId,
        lost: bool,
        stage: Stage,
        version: u32,
        waiting: BTreeSet<NodeId>,
    ) {
        let deadline = now + self.change_timeout();
        // Only registered nodes can answer: members whose connection closed already (crashed
        // with others at once) are gone, and their own repair is queued.
        let mut waiting = waiting;
        waiting.retain(|node| self.nodes.contains_key(node));
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.current = Some(InProgress {
                node,
                lost,
                nodes: BTreeSet::from([node]),
                stage,
                version,
                stage_version: version,
                waiting,
                sent_to_leaver: 0,
                deadline,
                handing: true,
                started_at: now,
                tables_changed: 0,
                manifest_epoch: None,
            });
        }
    }

    /// Sends `change` (membership version `version`, no new table) to each of `nodes`.
    fn announce(&mut self, version: u32, change: Change, nodes: impl IntoIterator<Item = NodeId>) {
        for node in nodes {
            self.send_to_node(
                node,
                &Control::Membership(MembershipChange {
                    version,
                    change: change.clone(),
                    table: None,
                }),
            );
        }
    }

    /// Sends `change` to each node, with its new table and backups when it has them.
    fn send_tables(
        &mut self,
        version: u32,
        change: Change,
        messages: Vec<(NodeId, Option<Links>)>,
    ) {
        let mut changed = 0;
        for (node, links) in messages {
            let entries_of = |ids: Vec<NodeId>| -> Vec<ManifestEntry> {
                ids.into_iter()
                    .map(|entry| ManifestEntry {
                        id: entry,
                        addr: self.nodes.get(&entry).map_or_else(
                            || std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                            |n| n.addr,
                        ),
                    })
                    .collect()
            };
            let table = links.map(|(table, backups)| {
                changed += 1;
                NewTable {
                    entries: entries_of(table),
                    backups: entries_of(backups),
                }
            });
            self.send_to_node(
                node,
                &Control::Membership(MembershipChange {
                    version,
                    change: change.clone(),
                    table,
                }),
            );
        }
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.tables_changed = changed;
        }
    }
}

/// "Node 3" or "Nodes 3, 5 and 9", and the verb's number ("is" or "are").
fn named(nodes: &BTreeSet<NodeId>) -> (String, &'static str) {
    let ids: Vec<String> = nodes.iter().map(NodeId::to_string).collect();
    match ids.as_slice() {
        [one] => (format!("Node {one}"), "is"),
        [rest @ .., last] => (format!("Nodes {} and {last}", rest.join(", ")), "are"),
        [] => ("No node".to_string(), "is"),
    }
}

/// A membership's ring, each node's table and each node's backups, by ring position.
type Membership<'a> = (&'a Ring, &'a [Vec<NodeId>], &'a [Vec<NodeId>]);

/// Each member of `new` but `except`, with its table and backups when they differ from those
/// it had in `old`.
fn changed_links(
    new: Membership<'_>,
    old: Membership<'_>,
    except: Option<NodeId>,
) -> Vec<(NodeId, Option<Links>)> {
    let ((ring, tables, backups), (old_ring, old_tables, old_backups)) = (new, old);
    ring.ids()
        .iter()
        .enumerate()
        .filter(|&(_, &node)| Some(node) != except)
        .map(|(position, &node)| {
            let (table, backups) = (&tables[position], &backups[position]);
            let same = old_ring
                .position(node)
                .is_some_and(|p| &old_tables[p] == table && &old_backups[p] == backups);
            (node, (!same).then(|| (table.clone(), backups.clone())))
        })
        .collect()
}
