//! Membership that changes while traffic flows (docs/ARCHITECTURE.md, "Membership that
//! changes"): joins, graceful leaves and the repair after a lost node, one at a time, each
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
//! - **Lost node** (its registry connection closed): `Gone` at once.
//!
//! A change waits for the acknowledgements of the nodes it asked, at most the stall timeout;
//! past that it goes on, naming the nodes that did not answer.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::Registry;
use crate::chord::Id;
use crate::limits::{BACKUP_ENTRIES, JOIN_SETUP_TIMEOUT_NS, NODES_MAX};
use crate::machine::Nanos;
use crate::routing::{self, ChordLayout, Fingers, Ring};
use crate::wire::{
    Change, ChordIds, Codec, Control, Manifest, ManifestEntry, MembershipChange, NewTable, NodeId,
    Status,
};

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
    /// Every node stops picking the leaver as a sink, and counts what it sent it.
    Leave,
    /// The leaver receives what was sent to it.
    Drain,
    /// The other nodes switch to tables without the node.
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
    stage: Stage,
    version: u32,
    /// Nodes whose acknowledgement of `version` the stage waits for.
    waiting: BTreeSet<NodeId>,
    /// Leave: packets originated toward the leaver, summed over the acknowledgements.
    sent_to_leaver: u64,
    /// The stage gives up waiting then.
    deadline: Nanos,
    started_at: Nanos,
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
}

impl Changes {
    /// Whether a change is being carried out or waiting.
    pub(super) fn busy(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// Whether node `id` is joining or leaving (or queued to).
    pub(super) fn concerns(&self, id: NodeId) -> bool {
        self.current.as_ref().is_some_and(|c| c.node == id)
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
            }
            Queued::Join(_) | Queued::Leave(_) => self.queue.push_back(change),
        }
    }
}

impl<C: Codec> Registry<C> {
    /// Node `id` registered while the overlay is live: it joins, and until its links are up
    /// it is outside the run ([`Changes::joiners`]).
    pub(super) fn queue_join(&mut self, now: Nanos, id: NodeId) {
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.joiners.insert(id);
        }
        self.queue_change(now, Queued::Join(id));
    }

    /// Whether node `id` is registered but outside the run for now (joining).
    pub(super) fn is_joiner(&self, id: NodeId) -> bool {
        self.overlay
            .as_ref()
            .is_some_and(|o| o.changes.joiners.contains(&id))
    }

    /// Node `id` is no joiner any more (in the run now, or gone); whether it was.
    pub(super) fn end_joiner(&mut self, id: NodeId) -> bool {
        self.overlay
            .as_mut()
            .is_some_and(|o| o.changes.joiners.remove(&id))
    }

    /// The registered nodes a run counts on: all but the joiners.
    pub(super) fn run_nodes(&self) -> usize {
        let joiners = self.overlay.as_ref().map_or(0, |o| o.changes.joiners.len());
        self.nodes.len() - joiners
    }

    /// Their IDs.
    pub(super) fn run_node_ids(&self) -> Vec<NodeId> {
        self.nodes
            .keys()
            .copied()
            .filter(|&id| !self.is_joiner(id))
            .collect()
    }

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
        if overlay.changes.queue.len() < NODES_MAX && !overlay.changes.concerns(change.node()) {
            overlay.changes.enqueue(change);
        } else if let Queued::Lost(id) = change {
            // A node lost while it joins or leaves: the change in progress takes care of it.
            self.lost_during_change(now, id);
            return;
        }
        self.next_change(now);
    }

    /// The identifier node `id` joins with (Chord mode): drawn at random (or hashed from
    /// its address) once, when it registers, and kept until it has joined, so that the
    /// check at registration and the join itself see the same membership.
    fn identifier_for(&mut self, id: NodeId) -> Result<Option<Id>, String> {
        let overlay = self.overlay.as_ref().ok_or("no overlay")?;
        let (Fingers::Chord { hashed, .. }, Some(layout)) = (overlay.fingers, &overlay.chord)
        else {
            return Ok(None);
        };
        if let Some(&identifier) = overlay.changes.identifiers.get(&id) {
            return Ok(Some(identifier));
        }
        let space = layout.space();
        let mut taken: BTreeSet<Id> = (0..overlay.ring.len()).map(|p| layout.id(p)).collect();
        taken.extend(overlay.changes.identifiers.values().copied());
        let identifier = if hashed {
            let addr = self
                .nodes
                .get(&id)
                .ok_or("not registered")?
                .addr
                .to_string();
            let mut identifier = space.hash(addr.as_bytes());
            let mut counter = 0u64;
            while taken.contains(&identifier) {
                counter += 1;
                let mut salted = addr.as_bytes().to_vec();
                salted.extend_from_slice(&counter.to_be_bytes());
                identifier = space.hash(&salted);
            }
            identifier
        } else {
            if space.bits() < 64 && taken.len() as u64 >= 1u64 << space.bits() {
                return Err(format!(
                    "every identifier of the {}-bit space is taken",
                    space.bits()
                ));
            }
            loop {
                let identifier = space.random(&mut self.rng);
                if !taken.contains(&identifier) {
                    break identifier;
                }
            }
        };
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.identifiers.insert(id, identifier);
        }
        Ok(Some(identifier))
    }

    /// The membership of the overlay with `newcomers` added (with their identifiers), its
    /// tables checked; `Err` says why it cannot be.
    fn with_members(&mut self, newcomers: &[NodeId]) -> Result<(Ring, Option<Vec<Id>>), String> {
        let mut identifiers = Vec::with_capacity(newcomers.len());
        for &id in newcomers {
            identifiers.push((id, self.identifier_for(id)?));
        }
        let overlay = self.overlay.as_ref().ok_or("no overlay")?;
        let mut ids = overlay.ring.ids().to_vec();
        ids.extend_from_slice(newcomers);
        let ring = Ring::new(ids);
        let identifiers = overlay.chord.as_ref().map(|layout| {
            ring.ids()
                .iter()
                .map(|&member| match overlay.ring.position(member) {
                    Some(p) => layout.id(p),
                    None => identifiers
                        .iter()
                        .find(|(id, _)| *id == member)
                        .and_then(|(_, identifier)| *identifier)
                        .unwrap_or(Id::ZERO),
                })
                .collect()
        });
        overlay.tables_for(&ring, identifiers.clone())?;
        Ok((ring, identifiers))
    }

    /// The membership without `id`.
    fn without_member(&self, id: NodeId) -> Option<(Ring, Option<Vec<Id>>)> {
        self.without_members(&BTreeSet::from([id]))
    }

    /// The membership without the nodes `gone`.
    fn without_members(&self, gone: &BTreeSet<NodeId>) -> Option<(Ring, Option<Vec<Id>>)> {
        let overlay = self.overlay.as_ref()?;
        let stays = |p: &usize| !gone.contains(&overlay.ring.ids()[*p]);
        let ring = Ring::new(
            (0..overlay.ring.len())
                .filter(stays)
                .map(|p| overlay.ring.ids()[p])
                .collect(),
        );
        let identifiers = overlay.chord.as_ref().map(|layout| {
            (0..overlay.ring.len())
                .filter(stays)
                .map(|p| layout.id(p))
                .collect()
        });
        Some((ring, identifiers))
    }

    /// Whether node `id` may leave gracefully during a run (`Err`: the members that would be
    /// left, and why not): the members left once it and every node leaving or lost before it
    /// are gone must still fill the tables and fit the traces. A leave that does not is
    /// refused, so the run goes on.
    pub(super) fn leave_fits(&self, id: NodeId) -> Result<(), (usize, String)> {
        let Some(overlay) = self.overlay.as_ref() else {
            return Ok(());
        };
        let mut gone: BTreeSet<NodeId> = overlay
            .changes
            .queue
            .iter()
            .filter_map(|queued| match queued {
                Queued::Leave(node) | Queued::Lost(node) => Some(*node),
                Queued::Join(_) => None,
            })
            .collect();
        if let Some(current) = overlay.changes.current.as_ref().filter(|c| {
            !matches!(
                c.stage,
                Stage::JoinSetup | Stage::JoinPrepare | Stage::JoinCommit
            )
        }) {
            gone.insert(current.node);
        }
        gone.insert(id);
        let Some((ring, identifiers)) = self.without_members(&gone) else {
            return Ok(());
        };
        let left = ring.len();
        overlay
            .tables_for(&ring, identifiers)
            .map(|_| ())
            .map_err(|why| (left, why))
    }

    /// Whether a node that registers now could join the overlay while a run goes (`Err`:
    /// why not). Between runs a join that does not fit makes the overlay be set up again.
    pub(super) fn join_fits(&mut self, id: NodeId) -> Result<(), String> {
        // With every join queued before it: they all join during the run.
        let mut newcomers: Vec<NodeId> = self
            .overlay
            .as_ref()
            .map(|o| {
                o.changes
                    .queue
                    .iter()
                    .filter_map(|q| match q {
                        Queued::Join(id) => Some(*id),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        newcomers.push(id);
        let fits = self.with_members(&newcomers).map(|_| ());
        if fits.is_err()
            && let Some(overlay) = self.overlay.as_mut()
        {
            overlay.changes.identifiers.remove(&id);
        }
        fits
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

    /// Starts `change`; false if there was nothing to do (the next one may start).
    fn start_change(&mut self, now: Nanos, change: Queued) -> bool {
        match change {
            Queued::Join(id) if self.nodes.contains_key(&id) => self.start_join(now, id),
            Queued::Join(_) => false,
            Queued::Leave(id) => self.start_leave(now, id, false),
            Queued::Lost(id) => self.start_leave(now, id, true),
        }
    }

    /// A leave, or the repair after a lost node: first every node stops picking it as a
    /// sink (and, from its first change on, checks routes by rule only), so that no node
    /// switches its tables while another still checks a route against the old ones.
    fn start_leave(&mut self, now: Nanos, id: NodeId, lost: bool) -> bool {
        if let Some(Err(why)) = self.without_member(id).map(|(ring, identifiers)| {
            self.overlay
                .as_ref()
                .map(|o| o.tables_for(&ring, identifiers).map(|_| ()))
                .unwrap_or(Ok(()))
        }) {
            // The overlay cannot do without it: as before live membership, it must be set up
            // again (and a run fails).
            if lost {
                self.overlay_changed(format!("node {id} left, and {why}"));
            } else {
                self.let_go_unrepaired(now, id, &why);
            }
            return false;
        }
        let Some(overlay) = self.overlay.as_mut() else {
            return false;
        };
        if overlay.ring.position(id).is_none() {
            return false;
        }
        overlay.version += 1;
        let version = overlay.version;
        let waiting: BTreeSet<NodeId> = overlay
            .ring
            .ids()
            .iter()
            .copied()
            .filter(|&node| !lost || node != id)
            .collect();
        self.begin(now, id, lost, Stage::Leave, version, waiting.clone());
        if let Some(run) = self.run.as_mut() {
            run.leaving(id);
        }
        if !lost {
            self.say(format!(
                "Node {id} is leaving: nobody picks it as a sink any more; waiting for what is \
                 on its way to it"
            ));
        }
        self.announce(version, Change::Leave { id }, waiting);
        self.check_stage_done(now);
        true
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
                stage,
                version,
                waiting,
                sent_to_leaver: 0,
                deadline,
                started_at: now,
                tables_changed: 0,
            });
        }
    }

    /// A join: the tables with the newcomer, its manifest; the others hear of it once it is
    /// connected.
    fn start_join(&mut self, now: Nanos, id: NodeId) -> bool {
        let (ring, identifiers) = match self.with_members(&[id]) {
            Ok(membership) => membership,
            Err(why) => {
                // Only between runs (a registration during a run is refused when it does not
                // fit with the joins queued before it): the overlay is set up again, as before
                // live membership.
                self.overlay_changed(format!("node {id} joined, and {why}"));
                return true;
            }
        };
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.identifiers.remove(&id);
        }
        let Some(overlay) = self.overlay.as_mut() else {
            return false;
        };
        let Ok((tables, chord)) = overlay.tables_for(&ring, identifiers) else {
            return false;
        };
        overlay.version += 1;
        let version = overlay.version;
        let position = ring.position(id).expect("the newcomer is in the ring");
        let backups = backups_of::<C>(&ring, chord.as_ref(), &tables);
        // Repairs go first (`Changes::enqueue`), so every member is registered; were one not,
        // the newcomer is let go rather than given a table naming a node that is gone.
        if let Some(gone) = tables[position]
            .iter()
            .chain(&backups[position])
            .find(|entry| !self.nodes.contains_key(entry))
            .copied()
        {
            if let Some(conn) = self.nodes.get(&id).map(|n| n.conn) {
                self.refuse_and_close(
                    now,
                    conn,
                    format!("node {id} could not join: its table names node {gone}, which is gone"),
                );
            }
            self.end_joiner(id);
            return false;
        }
        let entry_of = |&entry: &NodeId| ManifestEntry {
            id: entry,
            addr: self.nodes[&entry].addr,
        };
        let manifest = Manifest {
            entries: tables[position].iter().map(entry_of).collect(),
            backups: backups[position].iter().map(entry_of).collect(),
            all_ids: ring.ids().into(),
            chord: chord.as_ref().map(|layout| {
                Arc::new(ChordIds {
                    bits: layout.space().bits(),
                    ids: (0..ring.len()).map(|p| layout.id(p)).collect(),
                })
            }),
            trace_slots: overlay.trace_slots as u8,
            window_bytes: overlay.window_bytes,
            epoch: overlay.epoch,
        };
        // The overlay's tables are the ones being switched to from now on.
        let previous_tables = std::mem::replace(&mut overlay.tables, tables);
        let previous_backups = std::mem::replace(&mut overlay.backups, backups);
        let previous_ring = std::mem::replace(&mut overlay.ring, ring);
        let previous_chord = std::mem::replace(&mut overlay.chord, chord);
        overlay.nr = overlay.tables.iter().map(Vec::len).max().unwrap_or(0);
        overlay.previous = Some((
            previous_ring,
            previous_tables,
            previous_backups,
            previous_chord,
        ));
        self.begin(
            now,
            id,
            false,
            Stage::JoinSetup,
            version,
            BTreeSet::from([id]),
        );
        // The newcomer's setup is a connection and a handshake per entry, all at once: past
        // the handshake timeout it is not coming, and the changes queued behind it go on.
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.deadline = current.deadline.min(now + JOIN_SETUP_TIMEOUT_NS);
        }
        self.send_to_node(id, &Control::Manifest(manifest));
        true
    }

    /// The node `id` leaves the tables: every other node switches to tables without it.
    fn start_gone(&mut self, now: Nanos, id: NodeId, lost: bool) -> bool {
        let Some((ring, identifiers)) = self.without_member(id) else {
            return false;
        };
        let Some(overlay) = self.overlay.as_ref() else {
            return false;
        };
        if overlay.ring.position(id).is_none() {
            return false;
        }
        let (tables, chord) = match overlay.tables_for(&ring, identifiers) {
            Ok(built) => built,
            Err(why) => {
                self.overlay_changed(format!("node {id} left, and {why}"));
                return false;
            }
        };
        let Some(overlay) = self.overlay.as_mut() else {
            return false;
        };
        overlay.version += 1;
        let version = overlay.version;
        let backups = backups_of::<C>(&ring, chord.as_ref(), &tables);
        let old_ring = std::mem::replace(&mut overlay.ring, ring);
        let old_tables = std::mem::replace(&mut overlay.tables, tables);
        let old_backups = std::mem::replace(&mut overlay.backups, backups);
        overlay.chord = chord;
        overlay.nr = overlay.tables.iter().map(Vec::len).max().unwrap_or(0);
        let messages = changed_links(
            (&overlay.ring, &overlay.tables, &overlay.backups),
            (&old_ring, &old_tables, &old_backups),
            None,
        );
        let waiting = overlay.ring.ids().iter().copied().collect();
        self.begin(now, id, lost, Stage::Gone, version, waiting);
        self.send_tables(version, Change::Gone { id }, messages);
        true
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

    /// Node `id` acknowledged change `version` (with `count`, what the change asked for).
    pub(super) fn on_membership_ack(&mut self, now: Nanos, id: NodeId, version: u32, count: u64) {
        let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        else {
            let line = format!(
                "{}: a membership acknowledgement outside a change",
                self.describe(id)
            );
            self.warn_node(id, &line);
            return;
        };
        if current.version != version || !current.waiting.remove(&id) {
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
    pub(super) fn on_joiner_setup(
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
                // From now on it is part of the run: the others learn of it next. A
                // registrant that never gets this far is never polled (it cannot hold up a
                // run), and its join ends at the stage's deadline.
                self.end_joiner(id);
                if let Some(run) = self.run.as_mut() {
                    run.joined(id);
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
                self.abandon_join(now, id);
            }
        }
        true
    }

    /// The stage is complete (or gave up waiting): the next one.
    fn advance(&mut self, now: Nanos) {
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
                current.deadline = now + timeout;
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
                current.deadline = now + timeout;
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
                overlay.changes.current = None;
                if self.start_gone(now, id, true) {
                    self.continue_change(began);
                }
            }
            Stage::Leave => {
                let expected = current.sent_to_leaver;
                current.stage = Stage::Drain;
                current.deadline = now + timeout;
                current.waiting = BTreeSet::from([id]);
                self.announce(version, Change::Drain { id, expected }, [id]);
            }
            Stage::Drain => {
                let began = current.started_at;
                overlay.changes.current = None;
                if self.start_gone(now, id, false) {
                    self.continue_change(began);
                } else {
                    self.let_go_unrepaired(now, id, "its tables could not be repaired");
                }
            }
            Stage::Gone if current.lost => {
                self.change_done(now, format!("Node {id} is out of every table"));
            }
            Stage::Gone => {
                current.stage = Stage::Close;
                current.deadline = now + timeout;
                current.waiting = BTreeSet::from([id]);
                self.announce(version, Change::Close { id }, [id]);
            }
            Stage::Close => {
                current.stage = Stage::Final;
                current.deadline = now + timeout;
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
    fn check_stage_done(&mut self, now: Nanos) {
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
    pub(super) fn on_leaver_summary(
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
    fn let_go(&mut self, now: Nanos, id: NodeId) {
        let count = self.nodes.len().saturating_sub(1);
        self.send_to_node(
            id,
            &Control::DeregisterStatus {
                status: Status::Ok(id),
                info: format!(
                    "Deregistration request successful. The number of messaging nodes \
                     currently constituting the overlay is ({count})"
                ),
            },
        );
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
    fn let_go_unrepaired(&mut self, now: Nanos, id: NodeId, why: &str) {
        let count = self.nodes.len().saturating_sub(1);
        self.send_to_node(
            id,
            &Control::DeregisterStatus {
                status: Status::Ok(id),
                info: format!(
                    "Deregistration request successful. The number of messaging nodes \
                     currently constituting the overlay is ({count})"
                ),
            },
        );
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.current = None;
        }
        self.remove_node(now, id, format!("deregistered, and without it {why}"));
    }

    /// The change's `Gone` stage began as a new change (`start_gone`): it is still the change
    /// that began at `began` (its time until every table reflects it counts from then).
    fn continue_change(&mut self, began: Nanos) {
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.started_at = began;
        }
    }

    /// The change is over: said, with its cost, and the next one starts.
    fn change_done(&mut self, now: Nanos, what: String) {
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

    /// A join that cannot be: the overlay's tables go back to what they were; nobody else
    /// heard of it.
    fn abandon_join(&mut self, now: Nanos, id: NodeId) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        if let Some((ring, tables, backups, chord)) = overlay.previous.take() {
            overlay.ring = ring;
            overlay.tables = tables;
            overlay.backups = backups;
            overlay.chord = chord;
            overlay.nr = overlay.tables.iter().map(Vec::len).max().unwrap_or(0);
        }
        overlay.changes.current = None;
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
    fn lost_during_change(&mut self, now: Nanos, id: NodeId) {
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
                // Queued only: it is gone, and its departure queued instead.
                overlay.changes.enqueue(Queued::Lost(id));
                self.next_change(now);
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

    /// A node that a change waits for is gone: it waits for it no more.
    pub(super) fn forget_waiting(&mut self, now: Nanos, id: NodeId) {
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
    pub(super) fn change_tick(&mut self, now: Nanos) {
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
    pub(super) fn move_change_deadline(&mut self, lost: Nanos) {
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.deadline = current.deadline.saturating_add(lost);
        }
    }

    /// When a change next needs the tick.
    pub(super) fn change_deadline(&self) -> Option<Nanos> {
        self.overlay
            .as_ref()
            .and_then(|o| o.changes.current.as_ref())
            .map(|c| c.deadline)
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
