//! Leaves and repairs: whether the tables can do without the nodes that go, a graceful
//! leave's start, the repair of nodes lost together (and a loss taken into a repair being set
//! up), and the switch to tables without them (their stages are in `stages.rs`).

use super::*;

impl<C: Codec> Registry<C> {
    /// Whether the overlay's tables can do without the nodes `gone` (`Err`: why not).
    pub(super) fn fits_without(&self, gone: &BTreeSet<NodeId>) -> Result<(), String> {
        match (self.without_members(gone), self.overlay.as_ref()) {
            (Some((ring, identifiers)), Some(overlay)) => {
                overlay.tables_for(&ring, identifiers).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// A graceful leave: first every node stops picking the leaver as a sink (and, from its
    /// first change on, checks routes by rule only), so that no node switches its tables
    /// while another still checks a route against the old ones.
    pub(super) fn start_leave(&mut self, now: Nanos, id: NodeId) -> bool {
        if let Err(why) = self.fits_without(&BTreeSet::from([id])) {
            // The overlay cannot do without it: as before live membership, it must be set up
            // again (and a run fails).
            self.let_go_unrepaired(now, id, &why);
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
        let waiting: BTreeSet<NodeId> = overlay.ring.ids().iter().copied().collect();
        self.begin(now, id, false, Stage::Leave, version, waiting.clone());
        if let Some(run) = self.run.as_mut() {
            run.leaving(id);
        }
        self.say(format!(
            "Node {id} is leaving: nobody picks it as a sink any more; waiting for what is on \
             its way to it"
        ));
        self.announce(version, Change::Leave { id }, waiting);
        self.check_stage_done(now);
        true
    }

    /// The repair after nodes lost together (`gone`): as a leave without the hand-over, for
    /// all of them at once. First every other node stops picking them as sinks (`Lost`),
    /// then all switch to tables without them (`Repair`).
    pub(super) fn start_repair(&mut self, now: Nanos, gone: BTreeSet<NodeId>) -> bool {
        let Some(overlay) = self.overlay.as_ref() else {
            return false;
        };
        let gone: BTreeSet<NodeId> = gone
            .into_iter()
            .filter(|&id| overlay.ring.position(id).is_some())
            .collect();
        let Some(&first) = gone.first() else {
            return false;
        };
        if let Err(why) = self.fits_without(&gone) {
            // The overlay cannot do without them: as before live membership, it must be set
            // up again (and a run fails).
            self.overlay_changed(now, format!("{} left, and {why}", named(&gone).0));
            return false;
        }
        let Some(overlay) = self.overlay.as_mut() else {
            return false;
        };
        overlay.version += 1;
        let version = overlay.version;
        let waiting: BTreeSet<NodeId> = overlay
            .ring
            .ids()
            .iter()
            .copied()
            .filter(|node| !gone.contains(node))
            .collect();
        self.begin(now, first, true, Stage::Leave, version, waiting.clone());
        if let Some(run) = self.run.as_mut() {
            for &id in &gone {
                run.leaving(id);
            }
        }
        let ids = gone.iter().copied().collect();
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.nodes = gone;
        }
        self.announce(version, Change::Lost { ids }, waiting);
        self.check_stage_done(now);
        true
    }

    /// Node `id` was lost while the repair of others was being set up (its `Lost` stage):
    /// that repair takes it in, with a newer version of the stage; false if there is no such
    /// repair, or it cannot (`id`'s own repair is queued then).
    pub(super) fn merge_lost(&mut self, now: Nanos, id: NodeId) -> bool {
        let timeout = self.change_timeout();
        let Some(overlay) = self.overlay.as_ref() else {
            return false;
        };
        let Some(current) = overlay.changes.current.as_ref() else {
            return false;
        };
        if !(current.lost && current.stage == Stage::Leave)
            || current.nodes.len() >= REPAIR_NODES_MAX
            || overlay.ring.position(id).is_none()
        {
            return false;
        }
        let mut gone = current.nodes.clone();
        gone.insert(id);
        if self.fits_without(&gone).is_err() {
            return false;
        }
        let Some(overlay) = self.overlay.as_mut() else {
            return false;
        };
        overlay.version += 1;
        let version = overlay.version;
        let nodes = &self.nodes;
        let waiting: BTreeSet<NodeId> = overlay
            .ring
            .ids()
            .iter()
            .copied()
            .filter(|node| !gone.contains(node) && nodes.contains_key(node))
            .collect();
        let Some(current) = overlay.changes.current.as_mut() else {
            return false;
        };
        current.version = version;
        current.waiting = waiting.clone();
        current.restart(now + timeout);
        current.nodes = gone.clone();
        if let Some(run) = self.run.as_mut() {
            run.leaving(id);
        }
        let ids = gone.into_iter().collect();
        self.announce(version, Change::Lost { ids }, waiting);
        self.check_stage_done(now);
        true
    }

    /// The nodes `gone` (a leaver, or nodes lost together) leave the tables: every other
    /// node switches to tables without them.
    pub(super) fn start_gone(&mut self, now: Nanos, gone: BTreeSet<NodeId>, lost: bool) -> bool {
        let Some((ring, identifiers)) = self.without_members(&gone) else {
            return false;
        };
        let Some(overlay) = self.overlay.as_ref() else {
            return false;
        };
        let Some(&id) = gone.first() else {
            return false;
        };
        if gone.iter().any(|&id| overlay.ring.position(id).is_none()) {
            return false;
        }
        let (tables, chord) = match overlay.tables_for(&ring, identifiers) {
            Ok(built) => built,
            Err(why) => {
                self.overlay_changed(now, format!("{} left, and {why}", named(&gone).0));
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
        let change = if lost {
            Change::Repair {
                ids: gone.iter().copied().collect(),
            }
        } else {
            Change::Gone { id }
        };
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.nodes = gone;
        }
        self.send_tables(version, change, messages);
        true
    }
}
